/*  =========================================================================
    agctl_agent - agentctl's commands on agents: create, call, getattr,
    delete

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Each command checks its JSON argument before it sends anything, so a
//  typing mistake is a usage error whether or not the server is up. An
//  agent is named by id or by name (agctl_find_agent), which gives a
//  handle on it. call waits for the method's value, sync or async alike;
//  for an async method the server also keeps the result for fetching, as
//  it does for any client. create and the other commands release their
//  handle, leaving the agent in place; delete destroys it.
//  @end

#include "agctl.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Print a value: JSON with --json, else its readable form. Returns the
//  exit status.
static int
s_print_value (agctl_t *self, const ag_value_t *value)
{
    const msgpack_object *object = ag_value_object (value);
    int rc;
    if (self->json) {
        json_t *json = agctl_json_from_object (object);
        rc = json? agctl_json_print (json, true, stdout): -1;
        json_decref (json);
    }
    else
        rc = agctl_print_value (object, stdout);
    return rc? agctl_fail (AGCTL_FAILED, "cannot write the output")
             : AGCTL_OK;
}

//  Print a value the library returned, or why it returned none. Takes
//  the value. Returns the exit status.
static int
s_print_result (agctl_t *self, ag_value_t *value)
{
    if (!value)
        return agctl_fail_status (agc_status (), agc_reason ());
    int rc = s_print_value (self, value);
    ag_value_destroy (&value);
    return rc;
}

//  ---------------------------------------------------------------------
//  create CLASS [JSON-ARGS] [--name NAME]

//  The document create --json prints: what the server replied to the
//  CREATE, the agent's id and name and its class's face, the face read
//  from INFO. Returns the exit status.
static int
s_print_created (agctl_t *self, agc_agent_t *agent)
{
    ag_value_t *info = agc_conn_info (self->conn);
    const msgpack_object *classes = ag_obj_get (ag_value_object (info),
                                                "classes");
    const msgpack_object *face = NULL;
    for (size_t i = 0; !face && i < ag_obj_count (classes); i++)
        if (ag_obj_streq (ag_obj_get (ag_obj_at (classes, i), "name"),
                          agc_agent_class (agent)))
            face = ag_obj_at (classes, i);
    int rc;
    if (!face) {
        char reason [600];
        snprintf (reason, sizeof reason, "agent %" PRIu64 " was created, but"
                  " its class cannot be described: %.400s",
                  agc_agent_id (agent), info? "the server does not list it"
                                            : agc_reason ());
        rc = agctl_fail_status (info? AG_INTERNAL: agc_status (), reason);
    }
    else {
        ag_value_t *created = ag_value_new ("{s:u, s:s, s:o}",
                                            "id", agc_agent_id (agent),
                                            "name", self->name,
                                            "class", face);
        rc = created? s_print_value (self, created)
                    : agctl_fail (AGCTL_FAILED, "out of memory");
        ag_value_destroy (&created);
    }
    ag_value_destroy (&info);
    return rc;
}

int
agctl_create (agctl_t *self, int argc, char **argv)
{
    ag_value_t *args;
    int rc = agctl_read_args (argc > 1? argv [1]: NULL, &args);
    if (rc == AGCTL_OK)
        rc = agctl_open_conn (self);
    agc_agent_t *agent = NULL;
    if (rc == AGCTL_OK) {
        agent = agc_agent_new_detached (self->conn, argv [0], args,
                                        self->name);
        if (!agent)
            rc = agctl_fail_status (agc_status (), agc_reason ());
    }
    ag_value_destroy (&args);
    if (rc)
        return rc;
    if (self->json)
        rc = s_print_created (self, agent);
    else {
        //  The id alone, and the name after it when there is one, so
        //  that a script can read them with the shell's read
        char *name = self->name? agctl_utf8_clean (self->name,
                                                   strlen (self->name),
                                                   true, NULL)
                               : NULL;
        printf ("%" PRIu64 "%s%s\n", agc_agent_id (agent), name? " ": "",
                name? name: "");
        free (name);
    }
    agc_agent_release (&agent);
    return rc;
}

//  ---------------------------------------------------------------------
//  call AGENT METHOD [JSON-ARGS]

int
agctl_call (agctl_t *self, int argc, char **argv)
{
    ag_value_t *args;
    int rc = agctl_read_args (argc > 2? argv [2]: NULL, &args);
    agc_agent_t *agent = NULL;
    if (rc == AGCTL_OK)
        rc = agctl_find_agent (self, argv [0], &agent);
    if (rc == AGCTL_OK && self->deadline < 0)
        rc = s_print_result (self, agc_agent_call_value (agent, argv [1],
                                                         args));
    else
    if (rc == AGCTL_OK) {
        agc_future_t *future = agc_agent_call_within (agent, argv [1], args,
                                                      self->deadline);
        rc = s_print_result (self, agc_future_result (future, AGC_FOREVER));
        agc_future_destroy (&future);
    }
    agc_agent_release (&agent);
    ag_value_destroy (&args);
    return rc;
}

//  ---------------------------------------------------------------------
//  getattr AGENT ATTR

int
agctl_getattr (agctl_t *self, int argc, char **argv)
{
    agc_agent_t *agent;
    int rc = agctl_find_agent (self, argv [0], &agent);
    if (rc == AGCTL_OK)
        rc = s_print_result (self, agc_agent_getattr (agent, argv [1]));
    agc_agent_release (&agent);
    return rc;
}

//  ---------------------------------------------------------------------
//  delete AGENT

int
agctl_delete (agctl_t *self, int argc, char **argv)
{
    agc_agent_t *agent;
    int rc = agctl_find_agent (self, argv [0], &agent);
    if (rc)
        return rc;
    msgpack_object deleted = {
        .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = agc_agent_id (agent)
    };
    if (agc_agent_delete (&agent))
        return agctl_fail_status (agc_status (), agc_reason ());
    if (self->json) {
        json_t *json = json_pack ("{s:o}", "deleted",
                                  agctl_json_from_object (&deleted));
        rc = json && agctl_json_print (json, true, stdout) == 0?
             AGCTL_OK: agctl_fail (AGCTL_FAILED, "cannot write the output");
        json_decref (json);
    }
    return rc;
}
