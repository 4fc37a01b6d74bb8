/*  =========================================================================
    relay - a test class whose method calls another agent

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Relay.relay {"endpoint": E, "agent": ID, "ms": N} calls spin {"ms": N}
//  on agent ID at E, from inside the method, with agc_agent_call (no
//  deadline of its own), and returns {"status": S, "value": V}: what
//  came back. A deadline the relay call has is inherited by the call it
//  makes. The libagentclient functions come from the host (agentd).
//  Tally (add, total) is plain state, in a plugin of its own.
//  @end

#include <agentclient.h>
#include <stdlib.h>
#include <string.h>

static int
s_relay (void *state, const msgpack_object *args, ag_call_t *call)
{
    char *endpoint = ag_obj_strdup (ag_obj_get (args, "endpoint"));
    int64_t id = ag_obj_int (ag_obj_get (args, "agent"), 0);
    int64_t ms = ag_obj_int (ag_obj_get (args, "ms"), 0);
    if (!endpoint || id <= 0) {
        free (endpoint);
        return ag_call_error (call, AG_BAD_ARGS, "relay needs endpoint and"
                              " agent");
    }
    agc_conn_t *conn = agc_conn_new (endpoint);
    free (endpoint);
    agc_agent_t *agent = conn? agc_agent_attach (conn, (uint64_t) id): NULL;
    if (!agent) {
        agc_conn_destroy (&conn);
        return ag_call_error (call, AG_AGENT_ERROR, "cannot reach the agent:"
                              " %s", agc_reason ());
    }
    ag_value_t *spin_args = ag_value_new ("{s:i}", "ms", ms);
    agc_future_t *future = agc_agent_call (agent, "spin", spin_args);
    ag_value_destroy (&spin_args);
    int status = agc_future_status (future);
    const ag_value_t *value = agc_future_value (future);
    int rc = ag_call_return (call, "{s:i, s:v}", "status", (int64_t) status,
                             "value", value);
    agc_future_destroy (&future);
    agc_agent_release (&agent);
    agc_conn_destroy (&conn);
    return rc;
}

static const ag_method_t s_relay_methods [] = {
    { "relay", s_relay, AG_SYNC },
    { NULL }
};

static const ag_class_t relay_class = {
    .name = "Relay",
    .methods = s_relay_methods
};

//  Tally: a plugin's agent with state, to show it keeps that state while
//  another plugin's host crashes. add {"n": N} returns the total.
typedef struct {
    int64_t total;
} tally_t;

static int
s_tally_add (void *state, const msgpack_object *args, ag_call_t *call)
{
    tally_t *self = (tally_t *) state;
    self->total += ag_obj_int (ag_obj_get (args, "n"), 1);
    return ag_call_return (call, "i", self->total);
}

static int
s_tally_total (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((tally_t *) state)->total);
}

static const ag_method_t s_tally_methods [] = {
    { "add", s_tally_add, AG_SYNC },
    { NULL }
};

static const ag_attr_t s_tally_attrs [] = {
    { "total", s_tally_total },
    { NULL }
};

static const ag_class_t tally_class = {
    .name = "Tally",
    .state_size = sizeof (tally_t),
    .methods = s_tally_methods,
    .attrs = s_tally_attrs
};

AG_PLUGIN (&relay_class, &tally_class)
