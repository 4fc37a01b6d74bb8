/*  =========================================================================
    agctl_info - agentctl's read-only commands: status, list, show, ping

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  status prints the server's INFO, list its LIST, ping the round trip
//  of a PING, all through libagentclient. show joins the three things a
//  person wants to see of one agent: its LIST entry, the attributes its
//  class's face in INFO names, and the value of each, read through a
//  handle on the agent.
//
//  With --json each command prints one JSON document: status and list
//  the server's maps as they are, so scripts see every field, including
//  those a later server adds.
//  @end

#include "agctl.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Width of the labels of a class's lists
#define LABEL_WIDTH 16

//  Print a value as JSON, for --json. Returns the exit status.
static int
s_print_json (const msgpack_object *object)
{
    json_t *json = agctl_json_from_object (object);
    int rc = json? agctl_json_print (json, true, stdout): -1;
    json_decref (json);
    return rc? agctl_fail (AGCTL_FAILED, "cannot write the output")
             : AGCTL_OK;
}

//  Add a "label  value" row whose value is a field of a map
static void
s_add_field (agctl_table_t *table, const char *label,
             const msgpack_object *map, const char *key)
{
    char *cell = agctl_cell (ag_obj_get (map, key));
    agctl_table_add (table, label, cell);
    free (cell);
}

//  "N busy, N total, N max" and the like from a map of counters
static void
s_add_counters (agctl_table_t *table, const char *label,
                const msgpack_object *map, const char *const *keys)
{
    char text [200] = "";
    size_t used = 0;
    for (size_t i = 0; keys [i] && used < sizeof text; i++) {
        char *cell = agctl_cell (ag_obj_get (map, keys [i]));
        used += (size_t) snprintf (text + used, sizeof text - used, "%s%s %s",
                                   i? ", ": "", cell? cell: "-", keys [i]);
        free (cell);
    }
    agctl_table_add (table, label, text);
}

//  Print a list of cells, wrapped
static void
s_print_cells (const char *label, char **items, size_t count)
{
    agctl_print_list (label, LABEL_WIDTH, items, count, 80, stdout);
    for (size_t i = 0; i < count; i++)
        free (items [i]);
    free (items);
}

//  A class's face: its name and base, its methods with their mode, its
//  attributes
static void
s_print_class (const msgpack_object *face)
{
    char *name = agctl_cell (ag_obj_get (face, "name"));
    const msgpack_object *base = ag_obj_get (face, "base");
    if (base && base->type != MSGPACK_OBJECT_NIL) {
        char *base_name = agctl_cell (base);
        printf ("  %s (base %s)\n", name? name: "-", base_name? base_name: "-");
        free (base_name);
    }
    else
        printf ("  %s\n", name? name: "-");
    free (name);

    const msgpack_object *methods = ag_obj_get (face, "methods");
    size_t count = methods && methods->type == MSGPACK_OBJECT_MAP?
                   methods->via.map.size: 0;
    char **items = (char **) calloc (count + 1, sizeof (char *));
    size_t used = 0;
    for (size_t i = 0; items && i < count; i++) {
        char *method = agctl_cell (&methods->via.map.ptr [i].key);
        char *mode = agctl_cell (&methods->via.map.ptr [i].val);
        if (method && mode && (items [used] = (char *) malloc (
                               strlen (method) + strlen (mode) + 2)))
            sprintf (items [used++], "%s %s", method, mode);
        free (method);
        free (mode);
    }
    s_print_cells ("    methods", items, used);

    const msgpack_object *attrs = ag_obj_get (face, "attrs");
    count = ag_obj_count (attrs);
    items = (char **) calloc (count + 1, sizeof (char *));
    used = 0;
    for (size_t i = 0; items && i < count; i++)
        if ((items [used] = agctl_cell (ag_obj_at (attrs, i))))
            used++;
    s_print_cells ("    attributes", items, used);
}

//  ---------------------------------------------------------------------
//  status

static int
s_status_text (const msgpack_object *info)
{
    agctl_table_t *table = agctl_table_new (2);
    if (!table)
        return agctl_fail (AGCTL_FAILED, "out of memory");
    s_add_field (table, "version", info, "version");
    s_add_field (table, "protocol", info, "protocol");
    s_add_field (table, "instance", info, "instance");
    const msgpack_object *uptime = ag_obj_get (info, "uptime_ms");
    char duration [32];
    agctl_table_add (table, "uptime", uptime? agctl_duration (
                     ag_obj_int (uptime, 0), duration, sizeof duration): NULL);
    const msgpack_object *endpoints = ag_obj_get (info, "endpoints");
    for (size_t i = 0; i < ag_obj_count (endpoints) || i == 0; i++) {
        char *cell = agctl_cell (ag_obj_at (endpoints, i));
        agctl_table_add (table, i? "": "endpoints", cell);
        free (cell);
    }
    s_add_field (table, "agents", info, "agents");
    s_add_field (table, "isolation", info, "isolation");
    const msgpack_object *hosts = ag_obj_get (info, "hosts");
    for (size_t i = 0; i < ag_obj_count (hosts); i++) {
        const msgpack_object *host = ag_obj_at (hosts, i);
        char *plugin = agctl_cell (ag_obj_get (host, "plugin"));
        char *state = agctl_cell (ag_obj_get (host, "state"));
        char line [1200];
        snprintf (line, sizeof line, "%s: %s, pid %lld, %lld agents, %lld"
                  " starts", plugin? plugin: "?", state? state: "?",
                  (long long) ag_obj_int (ag_obj_get (host, "pid"), 0),
                  (long long) ag_obj_int (ag_obj_get (host, "agents"), 0),
                  (long long) ag_obj_int (ag_obj_get (host, "starts"), 0));
        agctl_table_add (table, i? "": "hosts", line);
        free (plugin);
        free (state);
    }
    static const char *const threads [] = { "busy", "total", "max", NULL };
    s_add_counters (table, "threads", ag_obj_get (info, "threads"), threads);
    static const char *const calls [] = { "served", "failed", NULL };
    s_add_counters (table, "calls", ag_obj_get (info, "calls"), calls);
    s_add_field (table, "pending", info, "pending");
    s_add_field (table, "waiting", info, "waiting");
    s_add_field (table, "results", info, "results");
    //  Bytes held for clients, as the server counts them
    static const char *const memory [] = { "requests", "replies", "max",
                                           "results", "results_max", NULL };
    s_add_counters (table, "bytes", ag_obj_get (info, "memory"), memory);
    agctl_table_print (table, 0, stdout);
    agctl_table_destroy (&table);

    const msgpack_object *classes = ag_obj_get (info, "classes");
    printf ("\nclasses (%zu)\n", ag_obj_count (classes));
    for (size_t i = 0; i < ag_obj_count (classes); i++)
        s_print_class (ag_obj_at (classes, i));
    return AGCTL_OK;
}

int
agctl_status (agctl_t *self, int argc, char **argv)
{
    int rc = agctl_open_conn (self);
    if (rc)
        return rc;
    ag_value_t *info = agc_conn_info (self->conn);
    if (!info)
        return agctl_fail_status (agc_status (), agc_reason ());
    rc = self->json? s_print_json (ag_value_object (info))
                   : s_status_text (ag_value_object (info));
    ag_value_destroy (&info);
    return rc;
}

//  ---------------------------------------------------------------------
//  list

//  An agent's id in its LIST entry, all 64 bits of it; 0 if it has none
static uint64_t
s_id (const msgpack_object *entry)
{
    const msgpack_object *id = ag_obj_get (entry, "id");
    return id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER? id->via.u64: 0;
}

//  Order agents by id, which is the order they were created in
static int
s_by_id (const void *a, const void *b)
{
    uint64_t id_a = s_id (*(const msgpack_object *const *) a);
    uint64_t id_b = s_id (*(const msgpack_object *const *) b);
    return id_a < id_b? -1: id_a > id_b;
}

static int
s_list_text (const msgpack_object *list)
{
    size_t count = ag_obj_count (list);
    const msgpack_object **agents = (const msgpack_object **) calloc (
                                    count + 1, sizeof *agents);
    if (!agents)
        return agctl_fail (AGCTL_FAILED, "out of memory");
    for (size_t i = 0; i < count; i++)
        agents [i] = ag_obj_at (list, i);
    qsort (agents, count, sizeof *agents, s_by_id);

    agctl_table_t *table = agctl_table_new (8);
    if (!table) {
        free (agents);
        return agctl_fail (AGCTL_FAILED, "out of memory");
    }
    for (size_t column = 3; column <= 5; column++)
        agctl_table_right (table, column);
    agctl_table_add (table, "ID", "NAME", "CLASS", "SERVED", "QUEUED", "AGE",
                     "BUSY", "STATE");
    for (size_t i = 0; i < count; i++) {
        const msgpack_object *agent = agents [i];
        char *id = agctl_cell (ag_obj_get (agent, "id"));
        char *name = agctl_cell (ag_obj_get (agent, "name"));
        char *class_name = agctl_cell (ag_obj_get (agent, "class"));
        char *served = agctl_cell (ag_obj_get (agent, "served"));
        char *queued = agctl_cell (ag_obj_get (agent, "queued"));
        const msgpack_object *age = ag_obj_get (agent, "age_ms");
        char duration [32];
        const msgpack_object *busy = ag_obj_get (agent, "busy");
        char *state = agctl_cell (ag_obj_get (agent, "state"));
        agctl_table_add (table, id, name, class_name, served, queued,
                         age? agctl_duration (ag_obj_int (age, 0), duration,
                                              sizeof duration): NULL,
                         busy? (ag_obj_bool (busy, false)? "yes": "no"): NULL,
                         state);
        free (state);
        free (id);
        free (name);
        free (class_name);
        free (served);
        free (queued);
    }
    agctl_table_print (table, 0, stdout);
    agctl_table_destroy (&table);
    free (agents);
    return AGCTL_OK;
}

int
agctl_list (agctl_t *self, int argc, char **argv)
{
    int rc = agctl_open_conn (self);
    if (rc)
        return rc;
    ag_value_t *list = agc_conn_list (self->conn);
    if (!list)
        return agctl_fail_status (agc_status (), agc_reason ());
    rc = self->json? s_print_json (ag_value_object (list))
                   : s_list_text (ag_value_object (list));
    ag_value_destroy (&list);
    return rc;
}

//  ---------------------------------------------------------------------
//  show

//  The face of a class, found in INFO
static const msgpack_object *
s_face (const msgpack_object *info, const msgpack_object *class_name)
{
    const msgpack_object *classes = ag_obj_get (info, "classes");
    for (size_t i = 0; class_name && i < ag_obj_count (classes); i++) {
        const msgpack_object *face = ag_obj_at (classes, i);
        const msgpack_object *name = ag_obj_get (face, "name");
        if (name && name->type == MSGPACK_OBJECT_STR
        &&  class_name->type == MSGPACK_OBJECT_STR
        &&  name->via.str.size == class_name->via.str.size
        &&  (name->via.str.size == 0
         ||  memcmp (name->via.str.ptr, class_name->via.str.ptr,
                     name->via.str.size) == 0))
            return face;
    }
    return NULL;
}

//  Read every attribute; print them as a table, or add them to the JSON
//  document. Returns the exit status of the first failure, or AGCTL_OK.
static int
s_show_attrs (agc_agent_t *agent, const msgpack_object *attrs,
              json_t *document)
{
    int status = AGCTL_OK;
    agctl_table_t *table = document? NULL: agctl_table_new (2);
    json_t *values = document? json_object (): NULL;
    json_t *errors = document? json_object (): NULL;
    if (document? !values || !errors: !table) {
        json_decref (values);
        json_decref (errors);
        return agctl_fail (AGCTL_FAILED, "out of memory");
    }
    if (table)
        agctl_table_add (table, "ATTRIBUTE", "VALUE");
    for (size_t i = 0; i < ag_obj_count (attrs); i++) {
        const msgpack_object *attr = ag_obj_at (attrs, i);
        char *name = ag_obj_is_str (attr)? ag_obj_strdup (attr): NULL;
        if (!name)
            continue;
        ag_value_t *result = agc_agent_getattr (agent, name);
        json_t *value = result?
            agctl_json_from_object (ag_value_object (result)): NULL;
        //  The library's error, kept before the next call replaces it
        int failure = result? AG_OK: agc_status ();
        char *why = result? NULL: strdup (agc_reason ());
        if (!result) {
            int rc = agctl_fail_status (failure, why);
            if (status == AGCTL_OK)
                status = rc;
        }
        if (document) {
            //  Names and reasons are the server's octets: made UTF-8
            char *key = agctl_utf8_clean (name, strlen (name), false, NULL);
            const char *text = why? why: "";
            char *reason = agctl_utf8_clean (text, strlen (text), false,
                                             NULL);
            if (key && value)
                json_object_set (values, key, value);
            else
            if (key && reason)
                json_object_set_new (errors, key, json_pack ("{s:i, s:s}",
                                     "status", failure, "reason", reason));
            free (key);
            free (reason);
        }
        else {
            char *cell = agctl_cell (attr);
            char *text = value? agctl_json_text (value): NULL;
            char failed [64];
            if (!value)
                snprintf (failed, sizeof failed, "(error %d)", failure);
            agctl_table_add (table, cell, value? text: failed);
            free (cell);
            free (text);
        }
        json_decref (value);
        ag_value_destroy (&result);
        free (why);
        free (name);
        if (status == AGCTL_UNREACHABLE)
            break;                  //  no point asking for the others
    }
    if (document) {
        json_object_set_new (document, "attrs", values);
        if (json_object_size (errors))
            json_object_set (document, "errors", errors);
        json_decref (errors);
    }
    else {
        if (ag_obj_count (attrs)) {
            printf ("\n");
            agctl_table_print (table, 0, stdout);
        }
        agctl_table_destroy (&table);
    }
    return status;
}

static int
s_show_entry (const msgpack_object *entry)
{
    agctl_table_t *table = agctl_table_new (2);
    if (!table)
        return agctl_fail (AGCTL_FAILED, "out of memory");
    s_add_field (table, "id", entry, "id");
    s_add_field (table, "name", entry, "name");
    s_add_field (table, "class", entry, "class");
    s_add_field (table, "served", entry, "served");
    s_add_field (table, "queued", entry, "queued");
    char duration [32];
    const msgpack_object *age = ag_obj_get (entry, "age_ms");
    agctl_table_add (table, "age", age? agctl_duration (ag_obj_int (age, 0),
                     duration, sizeof duration): NULL);
    const msgpack_object *busy = ag_obj_get (entry, "busy");
    agctl_table_add (table, "busy", busy? (ag_obj_bool (busy, false)? "yes"
                                                                    : "no")
                                        : NULL);
    //  Where it runs, and what became of it there
    s_add_field (table, "state", entry, "state");
    const msgpack_object *host = ag_obj_get (entry, "host");
    char pid [48];
    if (host && ag_obj_int (host, 0) > 0)
        snprintf (pid, sizeof pid, "pid %lld", (long long) ag_obj_int (host,
                                                                     0));
    else
        snprintf (pid, sizeof pid, "the server's own threads");
    agctl_table_add (table, "host", host? pid: NULL);
    s_add_field (table, "restarts", entry, "restarts");
    const msgpack_object *crash = ag_obj_get (entry, "last_crash");
    if (crash && crash->type == MSGPACK_OBJECT_STR) {
        char *text = agctl_cell (crash);
        const msgpack_object *since = ag_obj_get (entry, "last_crash_ms");
        char line [1400];
        snprintf (line, sizeof line, "%s ago: %s", since? agctl_duration (
                  ag_obj_int (since, 0), duration, sizeof duration): "?",
                  text? text: "");
        agctl_table_add (table, "last crash", line);
        free (text);
    }
    agctl_table_print (table, 0, stdout);
    agctl_table_destroy (&table);
    return AGCTL_OK;
}

//  The agent's entry in LIST, copied
static ag_value_t *
s_entry (const msgpack_object *list, uint64_t id)
{
    for (size_t i = 0; i < ag_obj_count (list); i++)
        if (s_id (ag_obj_at (list, i)) == id)
            return ag_value_from_object (ag_obj_at (list, i));
    return NULL;
}

int
agctl_show (agctl_t *self, int argc, char **argv)
{
    agc_agent_t *agent;
    int rc = agctl_find_agent (self, argv [0], &agent);
    if (rc)
        return rc;
    uint64_t id = agc_agent_id (agent);
    ag_value_t *list = agc_conn_list (self->conn);
    ag_value_t *entry = list? s_entry (ag_value_object (list), id): NULL;
    ag_value_t *info = entry? agc_conn_info (self->conn): NULL;
    if (!list || (entry && !info))
        rc = agctl_fail_status (agc_status (), agc_reason ());
    else
    if (!entry) {
        char reason [300];
        snprintf (reason, sizeof reason, "no agent with id %" PRIu64
                  " is listed on %.200s", id, self->endpoint);
        rc = agctl_fail_status (AG_NO_AGENT, reason);
    }
    const msgpack_object *face = s_face (ag_value_object (info),
        ag_obj_get (ag_value_object (entry), "class"));
    const msgpack_object *attrs = ag_obj_get (face, "attrs");
    json_t *document = NULL;
    if (rc == AGCTL_OK && self->json) {
        document = agctl_json_from_object (ag_value_object (entry));
        if (!document)
            rc = agctl_fail (AGCTL_FAILED, "out of memory");
    }
    else
    if (rc == AGCTL_OK)
        rc = s_show_entry (ag_value_object (entry));
    if (rc == AGCTL_OK) {
        rc = s_show_attrs (agent, attrs, document);
        if (document && agctl_json_print (document, true, stdout))
            rc = agctl_fail (AGCTL_FAILED, "cannot write the output");
    }
    json_decref (document);
    ag_value_destroy (&info);
    ag_value_destroy (&entry);
    ag_value_destroy (&list);
    agc_agent_release (&agent);
    return rc;
}

//  ---------------------------------------------------------------------
//  ping

int
agctl_ping (agctl_t *self, int argc, char **argv)
{
    int rc = agctl_open_conn (self);
    if (rc)
        return rc;
    int64_t usecs = agc_conn_ping (self->conn);
    if (usecs < 0)
        return agctl_fail_status (agc_status (), agc_reason ());
    if (self->json) {
        char *endpoint = agctl_utf8_clean (self->endpoint,
                                           strlen (self->endpoint), false,
                                           NULL);
        json_t *json = endpoint? json_pack ("{s:s, s:I}", "endpoint",
                                            endpoint, "usecs",
                                            (json_int_t) usecs): NULL;
        free (endpoint);
        rc = json? agctl_json_print (json, true, stdout): -1;
        json_decref (json);
        return rc? agctl_fail (AGCTL_FAILED, "cannot write the output")
                 : AGCTL_OK;
    }
    printf ("%" PRId64 "\n", usecs);
    return AGCTL_OK;
}
