/*  =========================================================================
    agctl_agent - agentctl's commands on agents: create, call, getattr,
    delete

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Each command checks its JSON argument before it sends anything, so a
//  typing mistake is a usage error whether or not the server is up. An
//  agent is named by id or by name (agctl_find_agent); the request then
//  goes to its id on the raw connection. A CALL reply comes once the
//  method has run, sync or async alike, so there is no future to wait
//  on and no result to keep on the server.
//  @end

#include "agctl.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Print a reply's value: JSON with --json, else its readable form.
//  Returns the exit status.
static int
s_print_reply (agctl_t *self, const agctl_reply_t *reply)
{
    if (reply->status != AG_OK)
        return agctl_fail_status (reply->status, reply->reason);
    const msgpack_object *object = ag_value_object (reply->value);
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

//  ---------------------------------------------------------------------
//  create CLASS [JSON-ARGS] [--name NAME]

int
agctl_create (agctl_t *self, int argc, char **argv)
{
    ag_value_t *args;
    int rc = agctl_read_args (argc > 1? argv [1]: NULL, &args);
    if (rc == AGCTL_OK)
        rc = agctl_open_wire (self);
    if (rc) {
        ag_value_destroy (&args);
        return rc;
    }
    agctl_reply_t reply;
    agctl_wire_create (self->wire, argv [0], args, self->name, &reply);
    ag_value_destroy (&args);
    const msgpack_object *face = ag_value_object (reply.value);
    const msgpack_object *id = ag_obj_get (face, "id");
    if (reply.status == AG_OK
    &&  !(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)) {
        agctl_reply_clear (&reply);
        reply.status = AG_INTERNAL;
        reply.reason = strdup ("server sent a malformed CREATE reply");
    }
    if (reply.status != AG_OK || self->json)
        rc = s_print_reply (self, &reply);
    else {
        //  The id alone, and the name after it when there is one, so
        //  that a script can read them with the shell's read
        const msgpack_object *name = ag_obj_get (face, "name");
        char *cell = ag_obj_is_str (name)? agctl_cell (name): NULL;
        printf ("%" PRIu64 "%s%s\n", id->via.u64, cell? " ": "",
                cell? cell: "");
        free (cell);
    }
    agctl_reply_clear (&reply);
    return rc;
}

//  ---------------------------------------------------------------------
//  call AGENT METHOD [JSON-ARGS]

int
agctl_call (agctl_t *self, int argc, char **argv)
{
    ag_value_t *args;
    int rc = agctl_read_args (argc > 2? argv [2]: NULL, &args);
    uint64_t id;
    if (rc == AGCTL_OK)
        rc = agctl_find_agent (self, argv [0], &id, NULL);
    if (rc == AGCTL_OK)
        rc = agctl_open_wire (self);
    if (rc == AGCTL_OK) {
        agctl_reply_t reply;
        agctl_wire_call (self->wire, id, argv [1], args, &reply);
        rc = s_print_reply (self, &reply);
        agctl_reply_clear (&reply);
    }
    ag_value_destroy (&args);
    return rc;
}

//  ---------------------------------------------------------------------
//  getattr AGENT ATTR

int
agctl_getattr (agctl_t *self, int argc, char **argv)
{
    uint64_t id;
    int rc = agctl_find_agent (self, argv [0], &id, NULL);
    if (rc == AGCTL_OK)
        rc = agctl_open_wire (self);
    if (rc == AGCTL_OK) {
        agctl_reply_t reply;
        agctl_wire_getattr (self->wire, id, argv [1], &reply);
        rc = s_print_reply (self, &reply);
        agctl_reply_clear (&reply);
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  delete AGENT

int
agctl_delete (agctl_t *self, int argc, char **argv)
{
    uint64_t id;
    int rc = agctl_find_agent (self, argv [0], &id, NULL);
    if (rc == AGCTL_OK)
        rc = agctl_open_wire (self);
    if (rc)
        return rc;
    agctl_reply_t reply;
    agctl_wire_delete (self->wire, id, &reply);
    if (reply.status != AG_OK)
        rc = agctl_fail_status (reply.status, reply.reason);
    else
    if (self->json) {
        msgpack_object deleted = {
            .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = id
        };
        json_t *json = json_pack ("{s:o}", "deleted",
                                  agctl_json_from_object (&deleted));
        rc = json && agctl_json_print (json, true, stdout) == 0?
             AGCTL_OK: agctl_fail (AGCTL_FAILED, "cannot write the output");
        json_decref (json);
    }
    agctl_reply_clear (&reply);
    return rc;
}
