/*  =========================================================================
    agd_config - agentd's settings: one table, read from file and flags

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Every setting agentd has, with its default and its bounds, is one row
//  of s_keys below; man/agentd.conf.5 documents that table. The same rows
//  check a value whether it comes from the configuration file or from the
//  command line, so both give the same messages.
//
//  The file is ZPL (the ZeroMQ property language), in the two levels
//  agentd needs: a section name at the start of a line, then its keys
//  indented by four spaces, `key = value`. `#` starts a comment; values
//  may be quoted. The reader is our own rather than zconfig because a bad
//  line must be reported with its number, and zconfig keeps none.
//  @end

#include "agd.h"
#include "../common/ag_cert.h"
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>

typedef enum {
    KEY_INT,                        //  whole number within bounds
    KEY_STRING,                     //  text
    KEY_LIST                        //  text, repeatable
} key_type_t;

typedef struct {
    const char *path;               //  section/name
    key_type_t type;
    const char *fallback;           //  default, as text (NULL: none)
    int64_t min, max;               //  bounds of a KEY_INT
    const char *flag;               //  agentd's command-line option
    const char *doc;                //  one line, for humans
} cfg_key_t;

//  The table. Order is the order of agd_settings_t's values array.
static const cfg_key_t s_keys [] = {
    { "server/endpoint", KEY_LIST, "tcp://127.0.0.1:12345", 0, 0, "-e",
      "endpoint to bind (repeatable): tcp://host:port, tcp://host:*,"
      " ipc://path" },
    { "server/plugin", KEY_LIST, NULL, 0, 0, "-p",
      "plugin to load agent classes from (repeatable)" },
    { "server/plugin_dir", KEY_STRING, NULL, 0, 0, NULL,
      "directory whose *.so plugins are all loaded, in name order" },
    { "server/threads_min", KEY_INT, "2", 0, 4096, "--threads-min",
      "worker threads kept when idle" },
    { "server/threads_max", KEY_INT, "512", 1, 4096, "--threads-max",
      "worker threads at most" },
    { "server/idle_ms", KEY_INT, "30000", 0, 86400000, "--idle-ms",
      "idle time before a spare worker thread exits" },
    { "server/retention_ms", KEY_INT, "300000", 0, 86400000,
      "--retention-ms", "how long results of async calls stay fetchable" },
    { "server/retention_max", KEY_INT, "10000", 1, 10000000, NULL,
      "how many results are kept at most" },
    { "server/retention_bytes", KEY_INT, "67108864", 1024, 68719476736,
      "--retention-bytes", "bytes of kept results at most; no client's"
      " push out another's within its share" },
    { "server/max_message", KEY_INT, "67108864", 64, 1073741824,
      "--max-message", "largest request body, in bytes" },
    { "server/max_bytes", KEY_INT, "268435456", 65536, 1099511627776,
      "--max-bytes", "bytes held for all clients: requests queued, running"
      " or waiting, and replies not yet read" },
    { "server/max_client_bytes", KEY_INT, "67108864", 1024, 1099511627776,
      "--max-client-bytes", "bytes held for one client; past it requests"
      " get 302, and a client not reading its replies is disconnected" },
    { "server/future_timeout_ms", KEY_INT, "30000", 1, 3600000,
      "--future-timeout-ms", "how long a call may wait for the futures"
      " among its arguments before it fails with 424" },
    { "server/peer", KEY_LIST, NULL, 0, 0, "--peer",
      "a server futures may be fetched from (repeatable): an endpoint,"
      " tcp://host:*, local (ipc and loopback) or any; none: only this"
      " server's own results" },
    { "server/grace_ms", KEY_INT, "10000", 0, 3600000, "--grace-ms",
      "time running calls get to finish at stop" },
    { "server/max_agents", KEY_INT, "1000000", 1, 100000000, "--max-agents",
      "agents on this server at most" },
    { "server/max_agents_per_client", KEY_INT, "0", 0, 100000000,
      "--max-agents-per-client", "agents one client makes at most,"
      " detached ones too (0: a tenth of server/max_agents)" },
    { "server/max_pending_per_client", KEY_INT, "200000", 1, 100000000,
      "--max-pending", "requests one client has queued or running at most" },
    { "server/client_grace_ms", KEY_INT, "10000", 0, 86400000,
      "--client-grace-ms", "how long a client may be gone before the"
      " agents it owns are deleted" },
    { "server/inbound_hwm", KEY_INT, "10000", 0, 10000000, "--inbound-hwm",
      "requests queued per client connection before TCP holds the client"
      " back (0: no limit)" },
    { "server/max_depth", KEY_INT, "32", 1, 32, NULL,
      "deepest msgpack nesting accepted in a request" },
    { "server/max_elements", KEY_INT, "1048576", 1, 16777216, NULL,
      "most msgpack objects accepted in one request body" },
    { "server/outbound_hwm", KEY_INT, "1000000", 0, 100000000, NULL,
      "replies queued per client connection; past it a client that reads"
      " nothing is disconnected (0: no limit)" },
    { "server/heartbeat_ms", KEY_INT, "10000", 0, 3600000, NULL,
      "ZeroMQ heartbeat interval to clients (0: none)" },
    { "server/heartbeat_timeout_ms", KEY_INT, "30000", 0, 3600000, NULL,
      "silence after which a client's connection is dropped (0: 10 x"
      " heartbeat_ms)" },
    { "security/curve_secret_key", KEY_STRING, NULL, 0, 0, "--curve-key",
      "the server's CURVE certificate (zcert): NAME_secret, or NAME to"
      " read NAME_secret; mode 600" },
    { "security/curve_allow_dir", KEY_STRING, NULL, 0, 0, "--curve-allow",
      "directory of the certificates of the clients allowed in; SIGHUP"
      " re-reads it" },
    { "security/insecure", KEY_INT, "0", 0, 1, "--insecure",
      "1: bind endpoints beyond loopback without CURVE, unencrypted" },
    { "server/isolation", KEY_STRING, "process", 0, 0, "--isolation",
      "where plugin code runs: process (a host process per plugin, which"
      " may crash alone) or thread (this process's worker threads)" },
    { "server/restart_max", KEY_INT, "5", 0, 1000, "--restart-max",
      "restarts of one agent within server/restart_window_ms; one more"
      " crash and the agent is failed (process isolation)" },
    { "server/restart_window_ms", KEY_INT, "60000", 1, 86400000, NULL,
      "the time server/restart_max counts restarts in" },
    { "server/restart_backoff_ms", KEY_INT, "100", 0, 60000, NULL,
      "wait before an agent's second restart in its window, doubling for"
      " each one after (the first is at once)" },
    { "server/call_limit_ms", KEY_INT, "0", 0, 86400000, "--call-limit-ms",
      "a host running one call longer is killed and its agents restarted"
      " (0: no limit; process isolation)" },
    { "server/class_call_limit", KEY_LIST, NULL, 0, 0, "--class-call-limit",
      "CLASS=MS: the call limit of one class's agents, in place of"
      " server/call_limit_ms (repeatable; MS 0: none for that class)" },
    { "server/host_memory_mb", KEY_INT, "0", 0, 16777216,
      "--host-memory-mb", "address space of each host process, in MiB"
      " (0: no limit); past it allocation fails" },
    { "log/level", KEY_STRING, "notice", 0, 0, "-v",
      "error, warning, notice, info (every request) or debug; -v sets"
      " info; SIGHUP re-reads it" },
    { NULL }
};

#define KEY_COUNT (sizeof s_keys / sizeof *s_keys - 1)

typedef struct {
    zlist_t *items;                 //  values given, as text
    const char *origin;             //  "FILE:LINE" or "command line"
    char origin_text [300];
} slot_t;

struct _agd_settings_t {
    slot_t slots [KEY_COUNT];       //  one per key
};

static int
s_find (const char *path)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (streq (s_keys [i].path, path))
            return (int) i;
    return -1;
}

agd_settings_t *
agd_settings_new (void)
{
    agd_settings_t *self = (agd_settings_t *) zmalloc (sizeof *self);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        self->slots [i].items = zlist_new ();
        zlist_autofree (self->slots [i].items);
    }
    return self;
}

void
agd_settings_destroy (agd_settings_t **self_p)
{
    if (self_p && *self_p) {
        for (size_t i = 0; i < KEY_COUNT; i++)
            zlist_destroy (&(*self_p)->slots [i].items);
        free (*self_p);
        *self_p = NULL;
    }
}

int
agd_log_level_of (const char *name)
{
    const char *names [] = { "error", "warning", "notice", "info", "debug" };
    for (int level = 0; level < 5; level++)
        if (streq (name, names [level]))
            return level;
    return -1;
}

//  A server/class_call_limit value, CLASS=MS: MS, with CLASS into cls
//  (if given), or -1 with why
static int
s_class_limit (const char *value, char *cls, size_t cls_size, char *why,
               size_t size)
{
    const char *equals = strrchr (value, '=');
    char *end = NULL;
    long long ms = -1;
    if (equals) {
        errno = 0;
        ms = strtoll (equals + 1, &end, 10);
        if (errno || end == equals + 1 || *end)
            ms = -1;
    }
    if (!equals || equals == value || ms < 0 || ms > 86400000) {
        snprintf (why, size, "'%s' is not CLASS=MS, MS 0..86400000", value);
        return -1;
    }
    if ((size_t) (equals - value) > AGP_MAX_NAME) {
        snprintf (why, size, "a class name is at most %d octets",
                  AGP_MAX_NAME);
        return -1;
    }
    if (cls)
        snprintf (cls, cls_size, "%.*s", (int) (equals - value), value);
    return (int) ms;
}

//  Check a value against its key's type and bounds
static int
s_check (const cfg_key_t *key, const char *value, char *why, size_t size)
{
    if (key->type == KEY_INT) {
        char *end;
        errno = 0;
        long long number = strtoll (value, &end, 10);
        if (errno || end == value || *end) {
            snprintf (why, size, "'%s' is not a whole number", value);
            return -1;
        }
        if (number < key->min || number > key->max) {
            snprintf (why, size, "%lld is out of range %lld..%lld", number,
                      (long long) key->min, (long long) key->max);
            return -1;
        }
    }
    else {
        if (*value == 0) {
            snprintf (why, size, "an empty value");
            return -1;
        }
        if (streq (key->path, "server/endpoint")
        &&  strncmp (value, "tcp://", 6) != 0
        &&  strncmp (value, "ipc://", 6) != 0) {
            snprintf (why, size, "'%s' is not tcp://host:port or ipc://path",
                      value);
            return -1;
        }
        if (streq (key->path, "server/peer")
        &&  !streq (value, "local") && !streq (value, "any")
        &&  strncmp (value, "tcp://", 6) != 0
        &&  strncmp (value, "ipc://", 6) != 0) {
            snprintf (why, size, "'%s' is not tcp://host:port, tcp://host:*,"
                      " ipc://path, local or any", value);
            return -1;
        }
        if (streq (key->path, "server/class_call_limit")
        &&  s_class_limit (value, NULL, 0, why, size) < 0)
            return -1;
        if (streq (key->path, "server/isolation")
        &&  !streq (value, "process") && !streq (value, "thread")) {
            snprintf (why, size, "'%s' is not process or thread", value);
            return -1;
        }
        if (streq (key->path, "log/level") && agd_log_level_of (value) < 0) {
            snprintf (why, size, "'%s' is not error, warning, notice, info"
                      " or debug", value);
            return -1;
        }
    }
    return 0;
}

int
agd_settings_set (agd_settings_t *self, const char *path, const char *value,
                  const char *origin, bool replace, char *error, size_t size)
{
    int index = s_find (path);
    if (index < 0) {
        snprintf (error, size, "%s: unknown key '%s'", origin, path);
        return -1;
    }
    const cfg_key_t *key = &s_keys [index];
    slot_t *slot = &self->slots [index];
    char why [256];
    if (s_check (key, value, why, sizeof why)) {
        snprintf (error, size, "%s: %s: %s", origin, path, why);
        return -1;
    }
    if (key->type != KEY_LIST && zlist_size (slot->items) && !replace) {
        snprintf (error, size, "%s: %s given twice (first at %s)", origin,
                  path, slot->origin);
        return -1;
    }
    if (replace || key->type != KEY_LIST)
        zlist_purge (slot->items);
    zlist_append (slot->items, (void *) value);
    snprintf (slot->origin_text, sizeof slot->origin_text, "%s", origin);
    slot->origin = slot->origin_text;
    return 0;
}

//  Strip a comment (outside quotes) and trailing blanks
static void
s_strip (char *line)
{
    bool quoted = false;
    for (char *p = line; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else
        if (*p == '#' && !quoted) {
            *p = 0;
            break;
        }
    }
    size_t len = strlen (line);
    while (len && isspace ((unsigned char) line [len - 1]))
        line [--len] = 0;
}

static bool
s_is_name (const char *text)
{
    if (!*text)
        return false;
    for (const char *p = text; *p; p++)
        if (!isalnum ((unsigned char) *p) && *p != '_' && *p != '-')
            return false;
    return true;
}

int
agd_settings_load (agd_settings_t *self, const char *file, char *error,
                   size_t size)
{
    FILE *handle = fopen (file, "r");
    if (!handle) {
        snprintf (error, size, "%s: %s", file, strerror (errno));
        return -1;
    }
    //  Everything in a file is new: a key given twice in it is an error
    agd_settings_t *fresh = agd_settings_new ();
    char line [1024];
    char section [64] = "";
    int number = 0;
    int rc = 0;
    while (rc == 0 && fgets (line, sizeof line, handle)) {
        number++;
        char origin [300];
        snprintf (origin, sizeof origin, "%s:%d", file, number);
        if (!strchr (line, '\n') && !feof (handle)) {
            snprintf (error, size, "%s: line longer than %zu bytes", origin,
                      sizeof line - 2);
            rc = -1;
            break;
        }
        if (strchr (line, '\t')) {
            snprintf (error, size, "%s: a tab; indent with spaces", origin);
            rc = -1;
            break;
        }
        s_strip (line);
        size_t indent = strspn (line, " ");
        char *text = line + indent;
        if (*text == 0)
            continue;
        if (indent == 0) {
            //  A section
            if (!s_is_name (text) || strlen (text) >= sizeof section) {
                snprintf (error, size, "%s: expected a section name, got"
                          " '%s'", origin, text);
                rc = -1;
                break;
            }
            memcpy (section, text, strlen (text) + 1);   //  length checked
            continue;
        }
        if (indent != 4 || !*section) {
            snprintf (error, size, "%s: keys are indented by 4 spaces under"
                      " a section", origin);
            rc = -1;
            break;
        }
        char *equals = strchr (text, '=');
        if (!equals) {
            snprintf (error, size, "%s: expected 'key = value', got '%s'",
                      origin, text);
            rc = -1;
            break;
        }
        *equals = 0;
        char *name = text;
        char *value = equals + 1;
        size_t name_len = strlen (name);
        while (name_len && name [name_len - 1] == ' ')
            name [--name_len] = 0;
        value += strspn (value, " ");
        size_t value_len = strlen (value);
        if (value_len >= 2 && value [0] == '"' && value [value_len - 1] == '"') {
            value [value_len - 1] = 0;
            value++;
        }
        else
        if (strchr (value, '"')) {
            snprintf (error, size, "%s: unbalanced quotes", origin);
            rc = -1;
            break;
        }
        char path [sizeof section + sizeof line];
        snprintf (path, sizeof path, "%s/%s", section, name);
        rc = agd_settings_set (fresh, path, value, origin, false, error,
                               size);
    }
    fclose (handle);
    if (rc == 0)
        for (size_t i = 0; i < KEY_COUNT; i++)
            if (zlist_size (fresh->slots [i].items)) {
                slot_t *slot = &self->slots [i];
                zlist_purge (slot->items);
                const char *item = (const char *) zlist_first (
                                                   fresh->slots [i].items);
                while (item) {
                    zlist_append (slot->items, (void *) item);
                    item = (const char *) zlist_next (fresh->slots [i].items);
                }
                snprintf (slot->origin_text, sizeof slot->origin_text, "%s",
                          fresh->slots [i].origin);
                slot->origin = slot->origin_text;
            }
    agd_settings_destroy (&fresh);
    return rc;
}

void
agd_settings_merge (agd_settings_t *self, agd_settings_t *over)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        slot_t *from = &over->slots [i];
        if (zlist_size (from->items) == 0)
            continue;
        slot_t *to = &self->slots [i];
        //  Plugins add up; every other key is replaced
        if (!streq (s_keys [i].path, "server/plugin"))
            zlist_purge (to->items);
        const char *item = (const char *) zlist_first (from->items);
        for (; item; item = (const char *) zlist_next (from->items))
            zlist_append (to->items, (void *) item);
        snprintf (to->origin_text, sizeof to->origin_text, "%s",
                  from->origin);
        to->origin = to->origin_text;
    }
}

//  The value of a key: as given, else its default; NULL if none
const char *
agd_settings_get (agd_settings_t *self, const char *path)
{
    int index = s_find (path);
    if (index < 0)
        return NULL;
    const char *value = (const char *) zlist_first (self->slots [index].items);
    return value? value: s_keys [index].fallback;
}

static int64_t
s_int (agd_settings_t *self, const char *path)
{
    return strtoll (agd_settings_get (self, path), NULL, 10);
}

//  Load every *.so in a directory, in name order
static int
s_load_dir (agd_server_t *server, const char *dir, char *error, size_t size)
{
    struct dirent **names;
    int count = scandir (dir, &names, NULL, alphasort);
    if (count < 0) {
        snprintf (error, size, "plugin_dir %s: %s", dir, strerror (errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < count; i++) {
        const char *name = names [i]->d_name;
        size_t len = strlen (name);
        if (rc == 0 && len > 3 && streq (name + len - 3, ".so")) {
            char path [1024];
            snprintf (path, sizeof path, "%s/%s", dir, name);
            if (agd_server_load_plugin (server, path)) {
                snprintf (error, size, "%s", agd_server_error (server));
                rc = -1;
            }
        }
        free (names [i]);
    }
    free (names);
    return rc;
}

//  CURVE needs both its settings, and files that read well and are
//  private where they must be; without it, only endpoints of this
//  machine, unless insecure is set
static int
s_check_security (agd_settings_t *self, char *error, size_t size)
{
    int secret_index = s_find ("security/curve_secret_key");
    int allow_index = s_find ("security/curve_allow_dir");
    const char *secret = agd_settings_get (self, "security/curve_secret_key");
    const char *allow = agd_settings_get (self, "security/curve_allow_dir");
    char why [512];
    if (secret && !allow) {
        snprintf (error, size, "%s: security/curve_secret_key is set but"
                  " security/curve_allow_dir is not: CURVE needs both",
                  self->slots [secret_index].origin);
        return -1;
    }
    if (allow && !secret) {
        snprintf (error, size, "%s: security/curve_allow_dir is set but"
                  " security/curve_secret_key is not: CURVE needs both",
                  self->slots [allow_index].origin);
        return -1;
    }
    if (secret) {
        ag_cert_t cert;
        if (ag_cert_load_secret (&cert, secret, why, sizeof why)) {
            snprintf (error, size, "%s: security/curve_secret_key: %s",
                      self->slots [secret_index].origin, why);
            return -1;
        }
        ag_cert_wipe (&cert);
        if (agd_auth_check_dir (allow, why, sizeof why) < 0) {
            snprintf (error, size, "%s: security/curve_allow_dir: %s",
                      self->slots [allow_index].origin, why);
            return -1;
        }
        return 0;
    }
    if (s_int (self, "security/insecure"))
        return 0;
    int index = s_find ("server/endpoint");
    slot_t *slot = &self->slots [index];
    const char *endpoint = (const char *) zlist_first (slot->items);
    if (!endpoint)
        endpoint = s_keys [index].fallback;
    while (endpoint) {
        if (!agd_endpoint_is_local (endpoint)) {
            snprintf (error, size, "%s: server/endpoint %s is not loopback"
                      " and CURVE is not set: set security/curve_secret_key"
                      " and security/curve_allow_dir (--curve-key,"
                      " --curve-allow), or security/insecure = 1"
                      " (--insecure) to serve it unencrypted to anyone who"
                      " can reach it", slot->origin? slot->origin: "default",
                      endpoint);
            return -1;
        }
        endpoint = (const char *) zlist_next (slot->items);
    }
    return 0;
}

int
agd_settings_check (agd_settings_t *self, char *error, size_t size)
{
    int64_t bytes = s_int (self, "server/max_bytes");
    int64_t message = s_int (self, "server/max_message");
    if (bytes < message + AGD_JOB_COST + AGP_MAX_NAME) {
        snprintf (error, size, "server/max_bytes %lld is less than a request"
                  " of server/max_message %lld needs: the largest request"
                  " could never be taken", (long long) bytes,
                  (long long) message);
        return -1;
    }
    int64_t min = s_int (self, "server/threads_min");
    int64_t max = s_int (self, "server/threads_max");
    if (min > max) {
        snprintf (error, size, "server/threads_min %lld is more than"
                  " server/threads_max %lld", (long long) min,
                  (long long) max);
        return -1;
    }
    return s_check_security (self, error, size);
}

int
agd_settings_apply (agd_settings_t *self, agd_server_t *server, char *error,
                    size_t size)
{
    if (agd_settings_check (self, error, size))
        return -1;
    int index = s_find ("server/plugin");
    const char *item = (const char *) zlist_first (self->slots [index].items);
    for (; item; item = (const char *) zlist_next (self->slots [index].items))
        if (agd_server_load_plugin (server, item)) {
            snprintf (error, size, "%s", agd_server_error (server));
            return -1;
        }
    const char *dir = agd_settings_get (self, "server/plugin_dir");
    if (dir && s_load_dir (server, dir, error, size))
        return -1;
    index = s_find ("server/endpoint");
    if (zlist_size (self->slots [index].items) == 0)
        agd_server_bind (server, s_keys [index].fallback);
    item = (const char *) zlist_first (self->slots [index].items);
    for (; item; item = (const char *) zlist_next (self->slots [index].items))
        if (agd_server_bind (server, item)) {
            snprintf (error, size, "%s", agd_server_error (server));
            return -1;
        }
    agd_server_set_threads (server, (int) s_int (self, "server/threads_min"),
                            (int) s_int (self, "server/threads_max"));
    agd_server_set_idle (server, (int) s_int (self, "server/idle_ms"));
    agd_server_set_retention (server, (int) s_int (self, "server/retention_ms"),
                              (size_t) s_int (self, "server/retention_max"));
    agd_server_set_max_message (server,
                                (size_t) s_int (self, "server/max_message"));
    agd_server_set_memory (server, (size_t) s_int (self, "server/max_bytes"),
                           (size_t) s_int (self, "server/max_client_bytes"));
    agd_server_set_retention_bytes (server,
        (size_t) s_int (self, "server/retention_bytes"));
    agd_server_set_grace (server, (int) s_int (self, "server/grace_ms"));
    agd_server_set_future_timeout (server,
        (int) s_int (self, "server/future_timeout_ms"));
    index = s_find ("server/peer");
    item = (const char *) zlist_first (self->slots [index].items);
    for (; item; item = (const char *) zlist_next (self->slots [index].items))
        if (agd_server_allow_peer (server, item)) {
            snprintf (error, size, "%s: %s", self->slots [index].origin,
                      agd_server_error (server));
            return -1;
        }
    agd_server_set_limits (server,
        (size_t) s_int (self, "server/max_agents"),
        (size_t) s_int (self, "server/max_agents_per_client"),
        (size_t) s_int (self, "server/max_pending_per_client"));
    agd_server_set_client_grace (server,
        (int) s_int (self, "server/client_grace_ms"));
    agd_server_set_inbound_hwm (server,
        (int) s_int (self, "server/inbound_hwm"));
    agd_server_set_outbound_hwm (server,
        (int) s_int (self, "server/outbound_hwm"));
    agd_server_set_msgpack_limits (server,
        (int) s_int (self, "server/max_depth"),
        (size_t) s_int (self, "server/max_elements"));
    agd_server_set_heartbeat (server, (int) s_int (self, "server/heartbeat_ms"),
        (int) s_int (self, "server/heartbeat_timeout_ms"));
    const char *secret = agd_settings_get (self, "security/curve_secret_key");
    if (secret && agd_server_set_curve (server, secret,
                      agd_settings_get (self, "security/curve_allow_dir"))) {
        snprintf (error, size, "%s", agd_server_error (server));
        return -1;
    }
    agd_server_set_insecure (server, s_int (self, "security/insecure") != 0);
    agd_server_set_restarts (server,
        (int) s_int (self, "server/restart_max"),
        (int) s_int (self, "server/restart_window_ms"),
        (int) s_int (self, "server/restart_backoff_ms"));
    agd_server_set_call_limit (server,
        (int) s_int (self, "server/call_limit_ms"));
    index = s_find ("server/class_call_limit");
    item = (const char *) zlist_first (self->slots [index].items);
    for (; item; item = (const char *) zlist_next (self->slots [index].items)) {
        char cls [AGP_MAX_NAME + 1], why [300];
        int ms = s_class_limit (item, cls, sizeof cls, why, sizeof why);
        if (ms < 0 || agd_server_set_class_call_limit (server, cls, ms)) {
            snprintf (error, size, "%s: server/class_call_limit: %s",
                      self->slots [index].origin,
                      ms < 0? why: agd_server_error (server));
            return -1;
        }
    }
    agd_server_set_host_memory (server,
        (int) s_int (self, "server/host_memory_mb"));
    if (agd_server_set_isolation (server,
            agd_settings_get (self, "server/isolation"))) {
        snprintf (error, size, "%s", agd_server_error (server));
        return -1;
    }
    agd_server_set_log_level (server,
        agd_log_level_of (agd_settings_get (self, "log/level")));
    return 0;
}

//  A setting the command line gives with a long option of its own and a
//  value: -e, -p, -v and --insecure are agentd's to handle
static bool
s_is_option (const cfg_key_t *key)
{
    return key->flag && strncmp (key->flag, "--", 2) == 0
        && !streq (key->flag, "--insecure");
}

size_t
agd_settings_options (struct option *options, size_t size)
{
    size_t count = 0;
    for (size_t i = 0; i < KEY_COUNT && count + 1 < size; i++)
        if (s_is_option (&s_keys [i]))
            options [count++] = (struct option) {
                s_keys [i].flag + 2, required_argument, NULL,
                AGD_OPTION_BASE + (int) i
            };
    options [count] = (struct option) { NULL, 0, NULL, 0 };
    return count;
}

int
agd_settings_set_option (agd_settings_t *self, int option, const char *value,
                         char *error, size_t size)
{
    size_t index = (size_t) (option - AGD_OPTION_BASE);
    if (option < AGD_OPTION_BASE || index >= KEY_COUNT) {
        snprintf (error, size, "no setting for option %d", option);
        return -1;
    }
    //  A repeated option replaces a value, and adds to a list (which
    //  replaces the file's list when the two are merged)
    const cfg_key_t *key = &s_keys [index];
    return agd_settings_set (self, key->path, value, "command line",
                             key->type != KEY_LIST, error, size);
}

void
agd_settings_usage (FILE *file)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const cfg_key_t *key = &s_keys [i];
        if (!s_is_option (key))
            continue;
        size_t path_len = strlen (key->path);
        const char *metavar = key->type == KEY_INT? "N"
            : path_len > 4 && streq (key->path + path_len - 4, "_dir")? "DIR"
            : path_len > 4 && streq (key->path + path_len - 4, "_key")? "FILE"
            : "VALUE";
        char head [40];
        snprintf (head, sizeof head, "%s %s", key->flag, metavar);
        if (strlen (head) > 19) {
            fprintf (file, "      %s\n", head);
            head [0] = 0;
        }
        //  The meaning, folded to 80 columns after a 27-column head
        char text [400];
        snprintf (text, sizeof text, "%s%s%s%s", key->doc,
                  key->fallback? " (default ": "",
                  key->fallback? key->fallback: "",
                  key->fallback? ")": "");
        const char *rest = text;
        bool first = true;
        while (*rest) {
            size_t width = 52;
            size_t len = strlen (rest);
            if (len > width) {
                len = width;
                while (len > 0 && rest [len] != ' ')
                    len--;
                if (len == 0)
                    len = width;
            }
            fprintf (file, "      %-20s %.*s\n", first? head: "", (int) len,
                     rest);
            rest += len;
            while (*rest == ' ')
                rest++;
            first = false;
        }
    }
}

void
agd_settings_print (FILE *file)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        fprintf (file, "%-28s %-22s %s\n", s_keys [i].path,
                 s_keys [i].fallback? s_keys [i].fallback: "(none)",
                 s_keys [i].doc);
}

//  ---------------------------------------------------------------------
//  Selftest

static int
s_try (const char *text, char *error, size_t size)
{
    char path [] = "/tmp/agd_config_test_XXXXXX";
    int fd = mkstemp (path);
    if (fd < 0)
        return -2;
    ssize_t rc = write (fd, text, strlen (text));
    close (fd);
    agd_settings_t *settings = agd_settings_new ();
    int result = rc < 0? -2: agd_settings_load (settings, path, error, size);
    agd_settings_destroy (&settings);
    unlink (path);
    return result;
}

void
agd_config_test (bool verbose)
{
    printf (" * agd_config: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    char error [512];
    agd_settings_t *settings = agd_settings_new ();
    assert (streq (agd_settings_get (settings, "server/threads_max"), "512"));
    assert (agd_settings_set (settings, "server/threads_max", "8",
                              "command line", true, error, sizeof error) == 0);
    assert (streq (agd_settings_get (settings, "server/threads_max"), "8"));
    assert (agd_settings_set (settings, "server/threads_max", "lots",
                              "command line", true, error, sizeof error) == -1);
    assert (strstr (error, "not a whole number"));
    assert (agd_settings_set (settings, "server/nothing", "1", "x", true,
                              error, sizeof error) == -1);
    assert (strstr (error, "unknown key 'server/nothing'"));
    agd_settings_destroy (&settings);

    assert (s_try ("server\n    threads_max = 4   # four\n"
                   "    endpoint = \"ipc:///tmp/x\"\n"
                   "    endpoint = tcp://127.0.0.1:*\n"
                   "log\n    level = info\n", error, sizeof error) == 0);
    //  Every kind of mistake names the line
    struct {
        const char *text;
        const char *words;
    } bad [] = {
        { "server\n    threads = 4\n", ":2: unknown key 'server/threads'" },
        { "servers\n    threads_max = 4\n", ":2: unknown key" },
        { "server\n    threads_max = many\n", ":2: server/threads_max: 'many'"
          " is not a whole number" },
        { "server\n    threads_max = 0\n", "out of range 1..4096" },
        { "server\n    threads_max = 4\n    threads_max = 5\n",
          ":3: server/threads_max given twice (first at" },
        { "server\n    endpoint = http://x\n", "not tcp://host:port" },
        { "log\n    level = loud\n", "'loud' is not error, warning" },
        { "    threads_max = 4\n", ":1: keys are indented by 4 spaces under" },
        { "server\n  threads_max = 4\n", ":2: keys are indented" },
        { "server\n\tthreads_max = 4\n", ":2: a tab" },
        { "server\n    threads_max\n", ":2: expected 'key = value'" },
        { "server\n    endpoint = \"tcp://x\n", ":2: unbalanced quotes" },
        { "server x\n", ":1: expected a section name" },
        { "server\n    plugin =\n", ":2: server/plugin: an empty value" },
        { NULL, NULL }
    };
    for (int i = 0; bad [i].text; i++) {
        error [0] = 0;
        assert (s_try (bad [i].text, error, sizeof error) == -1);
        if (!strstr (error, bad [i].words)) {
            printf ("case %d: '%s'\n", i, error);
            assert (false);
        }
    }
    //  The example that ships is valid, and lists every key
    settings = agd_settings_new ();
    if (access ("contrib/agentd.conf", R_OK) == 0) {
        assert (agd_settings_load (settings, "contrib/agentd.conf", error,
                                   sizeof error) == 0);
        for (size_t i = 0; i < KEY_COUNT; i++)
            assert (zlist_size (settings->slots [i].items) > 0
                ||  streq (s_keys [i].path, "server/plugin_dir")
                ||  streq (s_keys [i].path, "server/peer")
                ||  streq (s_keys [i].path, "server/class_call_limit")
                ||  streq (s_keys [i].path, "security/curve_secret_key")
                ||  streq (s_keys [i].path, "security/curve_allow_dir"));
    }
    agd_settings_destroy (&settings);
    settings = agd_settings_new ();
    assert (agd_settings_load (settings, "/nonexistent/agentd.conf", error,
                               sizeof error) == -1);
    assert (strstr (error, "/nonexistent/agentd.conf: No such file"));
    agd_settings_destroy (&settings);
    //  @end
    printf ("OK\n");
}
