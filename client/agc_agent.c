/*  =========================================================================
    agc_agent - a handle on an agent that lives on a server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The handle keeps what the server said when it created the agent: its
//  id, and its class's public face (methods with their sync/async mark,
//  attributes). A call to a sync method waits for its reply; a call to
//  an async method returns the future at once and asks the server to
//  keep the result, so it can be fetched again.
//  @end

#include "agc.h"

struct _agc_agent_t {
    agc_conn_t *conn;               //  the server's connection
    uint64_t id;                    //  id on the server
    char *class_name;               //  class
    ag_value_t *face;               //  CREATE reply
    const msgpack_object *methods;  //  name -> "sync"/"async", in face
};

//  Pack [method, args] for a CALL
static void
s_pack_call (msgpack_sbuffer *buffer, const char *method,
             const ag_value_t *args)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, msgpack_sbuffer_write);
    size_t len = strlen (method);
    msgpack_pack_array (&pk, 2);
    msgpack_pack_str (&pk, len);
    msgpack_pack_str_body (&pk, method, len);
    if (args)
        msgpack_sbuffer_write (buffer, (const char *) ag_value_data (args),
                               ag_value_size (args));
    else
        msgpack_pack_nil (&pk);
}

agc_agent_t *
agc_agent_new (agc_conn_t *conn, const char *class_name,
               const ag_value_t *args, const char *name)
{
    if (!conn || !class_name) {
        agc_set_error (AG_BAD_REQUEST, "agc_agent_new needs a connection"
                       " and a class name");
        return NULL;
    }
    ag_value_t *body = ag_value_new ("{s:s, s:v, s:s}", "class", class_name,
                                     "args", args, "name", name);
    if (!body) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    agc_future_t *future = agc_conn_roundtrip (conn, AGP_CREATE, 0,
        ag_value_data (body), ag_value_size (body));
    ag_value_destroy (&body);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *face = agc_future_result (future, 0);
    agc_future_destroy (&future);
    if (!face)
        return NULL;

    const msgpack_object *root = ag_value_object (face);
    const msgpack_object *id = ag_obj_get (root, "id");
    const msgpack_object *cls = ag_obj_get (root, "class");
    if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !cls) {
        ag_value_destroy (&face);
        agc_set_error (AG_INTERNAL, "server sent a malformed CREATE reply");
        return NULL;
    }
    agc_agent_t *self = (agc_agent_t *) calloc (1, sizeof (agc_agent_t));
    self->conn = conn;
    self->id = id->via.u64;
    self->class_name = ag_obj_strdup (ag_obj_get (cls, "name"));
    if (!self->class_name)
        self->class_name = strdup (class_name);
    self->face = face;
    self->methods = ag_obj_get (cls, "methods");
    return self;
}

int
agc_agent_destroy (agc_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    agc_agent_t *self = *self_p;
    *self_p = NULL;
    int rc = 0;
    agc_future_t *future = agc_conn_roundtrip (self->conn, AGP_DELETE,
                                               self->id, NULL, 0);
    if (!future || agc_future_status (future) != AG_OK) {
        if (future)
            agc_set_error_from (future);
        rc = -1;
    }
    agc_future_destroy (&future);
    ag_value_destroy (&self->face);
    free (self->class_name);
    free (self);
    return rc;
}

uint64_t
agc_agent_id (agc_agent_t *self)
{
    return self->id;
}

const char *
agc_agent_class (agc_agent_t *self)
{
    return self->class_name;
}

bool
agc_agent_is_async (agc_agent_t *self, const char *method)
{
    return method && ag_obj_streq (ag_obj_get (self->methods, method),
                                   "async");
}

agc_future_t *
agc_agent_call (agc_agent_t *self, const char *method, const ag_value_t *args)
{
    if (!method || !*method)
        return agc_future_resolved (AG_NO_METHOD, "no method name given",
                                    NULL);
    bool async = agc_agent_is_async (self, method);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    s_pack_call (&buffer, method, args);
    agc_future_t *future = agc_conn_request (self->conn, AGP_CALL, self->id,
        async? AGP_FLAG_KEEP: 0, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    //  A sync method blocks its caller until it has run
    if (future && !async)
        agc_future_wait (future, AGC_FOREVER);
    return future;
}

ag_value_t *
agc_agent_call_value (agc_agent_t *self, const char *method,
                      const ag_value_t *args)
{
    agc_future_t *future = agc_agent_call (self, method, args);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, AGC_FOREVER);
    agc_future_destroy (&future);
    return value;
}

ag_value_t *
agc_agent_getattr (agc_agent_t *self, const char *attr)
{
    if (!attr || !*attr) {
        agc_set_error (AG_NO_ATTR, "no attribute name given");
        return NULL;
    }
    ag_value_t *body = ag_value_new ("s", attr);
    if (!body) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    agc_future_t *future = agc_conn_roundtrip (self->conn, AGP_GETATTR,
        self->id, ag_value_data (body), ag_value_size (body));
    ag_value_destroy (&body);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, 0);
    agc_future_destroy (&future);
    return value;
}
