/*  =========================================================================
    agc_agent - a handle on an agent, local or on a server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  One handle type for both kinds of agent, so code written for local
//  agents runs unchanged on distributed ones. A local agent's state
//  lives here and its calls run in the caller's thread, one at a time;
//  its futures come back resolved. A distributed agent's handle keeps
//  what the server said when it created the agent: its id, and its
//  class's public face (methods with their sync/async mark). A call to
//  a sync method waits for its reply; a call to an async method returns
//  the future at once and asks the server to keep the result.
//
//  to_dist re-creates a local agent on a server from its init arguments
//  (and its saved state, when the class can save it) and turns the
//  handle into a proxy, as the guide's to_dist () does.
//  @end

#include "agc.h"
#include <dlfcn.h>
#include <pthread.h>

struct _agc_agent_t {
    //  Distributed
    agc_conn_t *conn;               //  server connection (a reference)
    uint64_t id;                    //  id on the server
    ag_value_t *face;               //  CREATE reply
    const msgpack_object *methods;  //  name -> "sync"/"async", in face
    bool made_remote;               //  created on the server directly
    //  Local
    const ag_class_t *cls;          //  class, while local
    void *state;                    //  state, while local
    ag_value_t *init_args;          //  init arguments, kept for to_dist
    pthread_mutex_t lock;           //  one local call at a time
    //  Both
    char *class_name;               //  class name
};

//  ---------------------------------------------------------------------
//  Classes

const ag_class_t *
agc_class_load (const char *plugin, const char *name)
{
    if (!plugin || !name) {
        agc_set_error (AG_BAD_REQUEST, "agc_class_load needs a plugin and"
                       " a class name");
        return NULL;
    }
    //  A bare name is a plugin in the plugin directory
    char full [1024];
    if (!strchr (plugin, '/')) {
        snprintf (full, sizeof full, "%s/%s", AG_PLUGINDIR, plugin);
        plugin = full;
    }
    //  Loaded for good: classes must outlive every agent made from them
    void *handle = dlopen (plugin, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        agc_set_error (AG_NO_CLASS, "plugin %s: %s", plugin, dlerror ());
        return NULL;
    }
    const int *abi = (const int *) dlsym (handle, "ag_plugin_abi");
    const ag_class_t *const *classes =
        (const ag_class_t *const *) dlsym (handle, "ag_plugin_classes");
    if (!abi || !classes || *abi != AG_ABI_VERSION) {
        agc_set_error (AG_NO_CLASS, "plugin %s: not an agent plugin of ABI"
                       " %d", plugin, AG_ABI_VERSION);
        return NULL;
    }
    for (size_t i = 0; classes [i]; i++)
        if (streq (classes [i]->name, name))
            return classes [i];
    agc_set_error (AG_NO_CLASS, "plugin %s has no class '%s'", plugin, name);
    return NULL;
}

//  The plugin a class comes from, so a child server can load it too
static int
s_plugin_of (const ag_class_t *cls, char *path, size_t size)
{
    Dl_info info;
    if (!dladdr (cls, &info) || !info.dli_fname)
        return agc_set_error (AG_NO_CLASS, "cannot tell where class %s is"
                              " defined", cls->name);
    void *handle = dlopen (info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    const ag_class_t *const *classes = handle?
        (const ag_class_t *const *) dlsym (handle, "ag_plugin_classes"): NULL;
    bool listed = false;
    for (size_t i = 0; classes && classes [i]; i++)
        if (classes [i] == cls)
            listed = true;
    if (handle)
        dlclose (handle);           //  drops only the NOLOAD reference
    if (!listed)
        return agc_set_error (AG_NO_CLASS, "class %s is defined in %s, which"
                              " is not an agent plugin listing it; a child"
                              " server loads classes from plugins only: build"
                              " the class into a shared object with"
                              " AG_PLUGIN and get it with agc_class_load",
                              cls->name, info.dli_fname);
    snprintf (path, size, "%s", info.dli_fname);
    return 0;
}

//  ---------------------------------------------------------------------
//  Construction

static agc_agent_t *
s_new (const char *class_name)
{
    agc_agent_t *self = (agc_agent_t *) calloc (1, sizeof (agc_agent_t));
    if (!self)
        return NULL;
    self->class_name = strdup (class_name);
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

static void
s_free (agc_agent_t *self)
{
    ag_value_destroy (&self->face);
    ag_value_destroy (&self->init_args);
    pthread_mutex_destroy (&self->lock);
    free (self->class_name);
    free (self);
}

//  Create the agent on the server: body {class, args, name, state,
//  detached}. Fills in the remote half of the handle. Returns 0 or -1.
static int
s_create_remote (agc_agent_t *self, agc_conn_t *conn, const char *class_name,
                 const ag_value_t *args, const char *name,
                 const ag_value_t *state, bool detached)
{
    //  A moved agent (with state) is never detached
    ag_value_t *body = state?
        ag_value_new ("{s:s, s:v, s:s, s:v}", "class", class_name,
                      "args", args, "name", name, "state", state):
    detached?
        ag_value_new ("{s:s, s:v, s:s, s:b}", "class", class_name,
                      "args", args, "name", name, "detached", 1):
        ag_value_new ("{s:s, s:v, s:s}", "class", class_name,
                      "args", args, "name", name);
    if (!body)
        return agc_set_error (AG_INTERNAL, "out of memory");
    agc_future_t *future = agc_conn_roundtrip (conn, AGP_CREATE, 0,
        ag_value_data (body), ag_value_size (body));
    ag_value_destroy (&body);
    if (!future)
        return agc_set_error (AG_INTERNAL, "out of memory");
    ag_value_t *face = agc_future_result (future, 0);
    agc_future_destroy (&future);
    if (!face)
        return -1;
    const msgpack_object *root = ag_value_object (face);
    const msgpack_object *id = ag_obj_get (root, "id");
    const msgpack_object *cls = ag_obj_get (root, "class");
    if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !cls) {
        ag_value_destroy (&face);
        return agc_set_error (AG_INTERNAL, "server sent a malformed CREATE"
                              " reply");
    }
    self->conn = agc_conn_ref (conn);
    self->id = id->via.u64;
    self->face = face;
    self->methods = ag_obj_get (cls, "methods");
    return 0;
}

static agc_agent_t *
s_agent_new (agc_conn_t *conn, const char *class_name,
             const ag_value_t *args, const char *name, bool detached)
{
    if (!conn || !class_name) {
        agc_set_error (AG_BAD_REQUEST, "creating an agent needs a connection"
                       " and a class name");
        return NULL;
    }
    agc_agent_t *self = s_new (class_name);
    if (!self || s_create_remote (self, conn, class_name, args, name, NULL,
                                  detached)) {
        if (self)
            s_free (self);
        return NULL;
    }
    self->made_remote = true;
    return self;
}

agc_agent_t *
agc_agent_new (agc_conn_t *conn, const char *class_name,
               const ag_value_t *args, const char *name)
{
    return s_agent_new (conn, class_name, args, name, false);
}

agc_agent_t *
agc_agent_new_detached (agc_conn_t *conn, const char *class_name,
                        const ag_value_t *args, const char *name)
{
    return s_agent_new (conn, class_name, args, name, true);
}

agc_future_t *
agc_lookup_send (agc_conn_t *conn, uint64_t id, const char *name)
{
    //  No agent can have these: answered here, as the server would
    size_t len = name? strlen (name): 0;
    if (name? len == 0 || len > AGP_MAX_NAME: id == 0) {
        char reason [400];
        if (name)
            snprintf (reason, sizeof reason, "no agent named '%.40s%s' on"
                      " %s: not a valid name (1 to %d bytes)", name,
                      len > 40? "...": "", agc_conn_endpoint (conn),
                      AGP_MAX_NAME);
        else
            snprintf (reason, sizeof reason, "no agent 0 on %s: ids start"
                      " at 1", agc_conn_endpoint (conn));
        return agc_future_resolved (AG_NO_AGENT, reason, NULL);
    }
    ag_value_t *body = name? ag_value_new ("s", name)
                           : ag_value_new ("u", id);
    agc_future_t *future = body?
        agc_conn_request (conn, AGP_LOOKUP, 0, 0, ag_value_data (body),
                          ag_value_size (body)): NULL;
    ag_value_destroy (&body);
    return future;
}

agc_agent_t *
agc_lookup_handle (agc_conn_t *conn, agc_future_t **future_p)
{
    agc_future_t *future = *future_p;
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *face = agc_future_result (future, AGC_FOREVER);
    int status = agc_future_status (future);
    char reason [400];
    snprintf (reason, sizeof reason, "%s",
              agc_future_reason (future)? agc_future_reason (future): "");
    agc_future_destroy (future_p);
    if (!face) {
        if (status == AG_NO_AGENT && strstr (reason, "on this server")) {
            //  Say which server
            char *here = strstr (reason, "this server");
            *here = 0;
            agc_set_error (AG_NO_AGENT, "%s%s", reason,
                           agc_conn_endpoint (conn));
        }
        else
        if (status == AG_BAD_REQUEST
        &&  strstr (reason, "unknown command"))
            agc_set_error (AG_BAD_REQUEST, "%s cannot look agents up: its"
                           " agentd is older than this library (%s)",
                           agc_conn_endpoint (conn), reason);
        else
            agc_set_error (status, "%s", reason);
        return NULL;
    }
    const msgpack_object *root = ag_value_object (face);
    const msgpack_object *found = ag_obj_get (root, "id");
    const msgpack_object *cls = ag_obj_get (root, "class");
    char *class_name = ag_obj_strdup (ag_obj_get (cls, "name"));
    agc_agent_t *self = class_name? s_new (class_name): NULL;
    free (class_name);
    if (!self || !found || found->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (self)
            s_free (self);
        ag_value_destroy (&face);
        agc_set_error (AG_INTERNAL, "server sent a malformed LOOKUP reply");
        return NULL;
    }
    self->conn = agc_conn_ref (conn);
    self->id = found->via.u64;
    self->face = face;
    self->methods = ag_obj_get (cls, "methods");
    self->made_remote = true;
    return self;
}

agc_agent_t *
agc_agent_attach (agc_conn_t *conn, uint64_t id)
{
    if (!conn) {
        agc_set_error (AG_BAD_REQUEST, "attaching needs a connection");
        return NULL;
    }
    agc_future_t *future = agc_lookup_send (conn, id, NULL);
    return agc_lookup_handle (conn, &future);
}

agc_agent_t *
agc_agent_lookup (agc_conn_t *conn, const char *name)
{
    if (!conn || !name) {
        agc_set_error (AG_BAD_REQUEST, "a lookup needs a connection and a"
                       " name");
        return NULL;
    }
    agc_future_t *future = agc_lookup_send (conn, 0, name);
    return agc_lookup_handle (conn, &future);
}

//  Run user code of a local agent with a fresh call context. Returns the
//  status; on success *value gets the result (if value is not NULL).
static int
s_run_local (ag_call_t *call, msgpack_sbuffer *buffer, int rc,
             ag_value_t **value)
{
    int status = ag_call_finish (call, rc);
    if (status == AG_OK && value) {
        *value = ag_value_decode (buffer->data, buffer->size);
        if (!*value) {
            ag_call_error (call, AG_INTERNAL, "out of memory");
            status = AG_INTERNAL;
        }
    }
    return status;
}

agc_agent_t *
agc_agent_new_local (const ag_class_t *cls, const ag_value_t *args)
{
    char reason [256];
    if (!cls || ag_class_check (cls, reason, sizeof reason)) {
        agc_set_error (AG_NO_CLASS, "%s", cls? reason: "no class given");
        return NULL;
    }
    agc_agent_t *self = s_new (cls->name);
    if (!self) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    self->init_args = args? ag_value_dup (args): ag_value_new ("n");
    self->state = cls->state_size? calloc (1, cls->state_size): NULL;
    if (cls->state_size && !self->state) {
        s_free (self);
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    ag_call_t call;
    ag_call_init (&call, &buffer);
    ag_init_fn *init = ag_class_init (cls);
    int rc = init? init (self->state, ag_value_object (self->init_args), &call)
                 : 0;
    int status = s_run_local (&call, &buffer, rc, NULL);
    msgpack_sbuffer_destroy (&buffer);
    if (status != AG_OK) {
        agc_set_error (status == AG_BAD_ARGS? AG_BAD_ARGS: AG_INIT_FAILED,
                       "%s init failed: %s", cls->name, call.reason);
        free (self->state);
        s_free (self);
        return NULL;
    }
    self->cls = cls;
    return self;
}

//  Finalise a local agent's state
static void
s_local_fini (agc_agent_t *self)
{
    ag_fini_fn *fini = ag_class_fini (self->cls);
    if (fini)
        fini (self->state);
    free (self->state);
    self->state = NULL;
    self->cls = NULL;
}

int
agc_agent_to_conn (agc_agent_t *self, agc_conn_t *conn)
{
    if (!self->cls)
        return agc_set_error (AG_BAD_REQUEST, "agent of class %s is already"
                              " distributed%s", self->class_name,
                              self->made_remote? " (it was created on a"
                              " server)": "");
    if (!conn)
        return agc_set_error (AG_BAD_REQUEST, "no connection given");
    pthread_mutex_lock (&self->lock);
    //  The state moves too when the class can save it
    ag_value_t *state = NULL;
    ag_save_fn *save = ag_class_save (self->cls);
    if (save) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        ag_call_t call;
        ag_call_init (&call, &buffer);
        int status = s_run_local (&call, &buffer, save (self->state, &call),
                                  &state);
        msgpack_sbuffer_destroy (&buffer);
        if (status != AG_OK) {
            pthread_mutex_unlock (&self->lock);
            return agc_set_error (status, "%s save failed: %s",
                                  self->class_name, call.reason);
        }
    }
    int rc = s_create_remote (self, conn, self->class_name, self->init_args,
                              NULL, state, false);
    ag_value_destroy (&state);
    if (rc == 0)
        s_local_fini (self);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

int
agc_agent_to_dist (agc_agent_t *self, const char *endpoint)
{
    if (!self->cls)
        return agc_agent_to_conn (self, NULL);      //  says why
    char plugin [1024];
    if (!endpoint && s_plugin_of (self->cls, plugin, sizeof plugin))
        return -1;
    agc_conn_t *conn = endpoint? agc_conn_shared (endpoint)
                               : agc_conn_spawn (plugin);
    if (!conn)
        return -1;
    int rc = agc_agent_to_conn (self, conn);
    agc_conn_destroy (&conn);       //  the agent holds its own reference
    return rc;
}

agc_agent_t *
agc_agent_new_dist (const ag_class_t *cls, const ag_value_t *args,
                    const char *endpoint)
{
    if (!cls) {
        agc_set_error (AG_NO_CLASS, "no class given");
        return NULL;
    }
    char plugin [1024];
    if (!endpoint && s_plugin_of (cls, plugin, sizeof plugin))
        return NULL;
    agc_conn_t *conn = endpoint? agc_conn_shared (endpoint)
                               : agc_conn_spawn (plugin);
    if (!conn)
        return NULL;
    agc_agent_t *self = agc_agent_new (conn, cls->name, args, NULL);
    agc_conn_destroy (&conn);
    return self;
}

void
agc_agent_release (agc_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agc_agent_t *self = *self_p;
    if (self->cls) {
        agc_agent_destroy (self_p);
        return;
    }
    *self_p = NULL;
    agc_conn_destroy (&self->conn);
    s_free (self);
}

//  Free a handle and its agent; wait for the server to confirm the
//  delete or not
static int
s_destroy (agc_agent_t **self_p, bool confirm)
{
    if (!self_p || !*self_p)
        return 0;
    agc_agent_t *self = *self_p;
    *self_p = NULL;
    int rc = 0;
    if (self->cls) {
        pthread_mutex_lock (&self->lock);
        s_local_fini (self);
        pthread_mutex_unlock (&self->lock);
    }
    else
    if (confirm) {
        agc_future_t *future = agc_conn_roundtrip (self->conn, AGP_DELETE,
                                                   self->id, NULL, 0);
        if (!future || agc_future_status (future) != AG_OK) {
            if (future)
                agc_set_error_from (future);
            else
                agc_set_error (AG_INTERNAL, "out of memory");
            rc = -1;
        }
        agc_future_destroy (&future);
    }
    else
        rc = agc_conn_post (self->conn, AGP_DELETE, self->id, NULL, 0);
    if (!self->cls)
        agc_conn_destroy (&self->conn);
    s_free (self);
    return rc;
}

int
agc_agent_destroy (agc_agent_t **self_p)
{
    return s_destroy (self_p, false);
}

int
agc_agent_delete (agc_agent_t **self_p)
{
    return s_destroy (self_p, true);
}

//  ---------------------------------------------------------------------
//  Properties

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
agc_agent_is_local (agc_agent_t *self)
{
    return self->cls != NULL;
}

agc_conn_t *
agc_agent_conn (agc_agent_t *self)
{
    return self->conn;
}

bool
agc_agent_is_async (agc_agent_t *self, const char *method)
{
    if (!method)
        return false;
    pthread_mutex_lock (&self->lock);
    bool async;
    if (self->cls) {
        const ag_method_t *m = ag_class_method (self->cls, method,
                                                strlen (method));
        async = m && m->mode == AG_ASYNC;
    }
    else
        async = ag_obj_streq (ag_obj_get (self->methods, method), "async");
    pthread_mutex_unlock (&self->lock);
    return async;
}

//  ---------------------------------------------------------------------
//  Calls

//  Call a local agent; self->lock held, self->cls set
static agc_future_t *
s_local_call (agc_agent_t *self, const char *method, const ag_value_t *args,
              int64_t deadline)
{
    const ag_method_t *m = ag_class_method (self->cls, method, strlen (method));
    if (!m) {
        char reason [320];
        snprintf (reason, sizeof reason, "%s has no public method '%s'",
                  self->class_name, method);
        return agc_future_resolved (AG_NO_METHOD, reason, NULL);
    }
    msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    ag_call_t call;
    ag_call_init (&call, &buffer);
    call.deadline = deadline;
    ag_value_t *value = NULL;
    if (deadline && ag_usecs () >= deadline) {
        msgpack_sbuffer_destroy (&buffer);
        return agc_future_resolved (AG_DEADLINE, "the call's deadline had"
                                    " passed before it ran", NULL);
    }
    ag_call_t *outer = ag_call_enter (&call);
    int rc = m->fn (self->state, args? ag_value_object (args): &nil, &call);
    ag_call_enter (outer);
    int status = s_run_local (&call, &buffer, rc, &value);
    msgpack_sbuffer_destroy (&buffer);
    //  As on a server: a call that ran past its deadline has failed
    if (deadline && ag_usecs () >= deadline) {
        ag_value_destroy (&value);
        return agc_future_resolved (AG_DEADLINE, "the call ran past its"
                                    " deadline", NULL);
    }
    return agc_future_resolved (status, status == AG_OK? "": call.reason,
                                value);
}

//  A pack buffer that starts on the stack: most CALL bodies are small,
//  and an 8 KiB heap buffer per call showed in profiles
typedef struct {
    char *data;
    size_t size;
    size_t room;
    char local [256];
} packbuf_t;

static int
s_packbuf_write (void *data, const char *buf, size_t len)
{
    packbuf_t *self = (packbuf_t *) data;
    if (self->size + len > self->room) {
        size_t room = (self->size + len) * 2;
        char *grown = (char *) malloc (room);
        if (!grown)
            return -1;
        memcpy (grown, self->data, self->size);
        if (self->data != self->local)
            free (self->data);
        self->data = grown;
        self->room = room;
    }
    memcpy (self->data + self->size, buf, len);
    self->size += len;
    return 0;
}

//  Pack [method, args] for a CALL, or [method, args, timeout_ms] for
//  one with a deadline (timeout_ms >= 0)
static void
s_pack_call (packbuf_t *buffer, const char *method, const ag_value_t *args,
             int64_t timeout_ms)
{
    buffer->data = buffer->local;
    buffer->size = 0;
    buffer->room = sizeof buffer->local;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, s_packbuf_write);
    size_t len = strlen (method);
    msgpack_pack_array (&pk, timeout_ms >= 0? 3: 2);
    msgpack_pack_str (&pk, len);
    msgpack_pack_str_body (&pk, method, len);
    if (args)
        s_packbuf_write (buffer, (const char *) ag_value_data (args),
                         ag_value_size (args));
    else
        msgpack_pack_nil (&pk);
    //  As uint 32 whatever its value: the server reads it at the end
    if (timeout_ms >= 0)
        msgpack_pack_fix_uint32 (&pk, (uint32_t) timeout_ms);
}

//  The deadline of a call made now: msecs from now (AGC_FOREVER: none),
//  and no later than the deadline of the call this thread runs user code
//  for, if any. Returns ag_usecs () or 0.
static int64_t
s_deadline (int msecs, int64_t now)
{
    int64_t deadline = msecs >= 0? now + (int64_t) msecs * 1000: 0;
    ag_call_t *outer = ag_call_current ();
    if (outer && outer->deadline && (!deadline || outer->deadline < deadline))
        deadline = outer->deadline;
    return deadline;
}

static agc_future_t *
s_call (agc_agent_t *self, const char *method, const ag_value_t *args,
        int msecs)
{
    if (!method || !*method)
        return agc_future_resolved (AG_NO_METHOD, "no method name given",
                                    NULL);
    int64_t now = ag_usecs ();
    int64_t deadline = s_deadline (msecs, now);
    //  Under the lock: another thread may be moving the agent to a server
    pthread_mutex_lock (&self->lock);
    if (self->cls) {
        agc_future_t *future = s_local_call (self, method, args, deadline);
        pthread_mutex_unlock (&self->lock);
        return future;
    }
    pthread_mutex_unlock (&self->lock);
    bool async = agc_agent_is_async (self, method);
    int64_t timeout_ms = -1;
    if (deadline) {
        timeout_ms = deadline > now? (deadline - now) / 1000: 0;
        if (timeout_ms > AGP_TIMEOUT_MAX)
            timeout_ms = AGP_TIMEOUT_MAX;
    }
    packbuf_t buffer;
    s_pack_call (&buffer, method, args, timeout_ms);
    agc_future_t *future = agc_conn_request_by (self->conn, AGP_CALL,
        self->id, async? AGP_FLAG_KEEP: 0, buffer.data, buffer.size,
        deadline);
    if (buffer.data != buffer.local)
        free (buffer.data);
    //  A sync method blocks its caller until it has run, or its deadline
    if (future && !async)
        agc_future_wait (future, AGC_FOREVER);
    return future;
}

agc_future_t *
agc_agent_call (agc_agent_t *self, const char *method, const ag_value_t *args)
{
    return s_call (self, method, args, AGC_FOREVER);
}

agc_future_t *
agc_agent_call_within (agc_agent_t *self, const char *method,
                       const ag_value_t *args, int msecs)
{
    if (msecs < 0 && msecs != AGC_FOREVER)
        return agc_future_resolved (AG_BAD_REQUEST, "a deadline is 0 or"
                                    " more milliseconds, or AGC_FOREVER",
                                    NULL);
    return s_call (self, method, args, msecs);
}

agc_future_t *
agc_agent_reply (agc_agent_t *self, const ag_value_t *msg)
{
    return agc_agent_call (self, "reply", msg);
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

//  Read a local agent's attribute; self->lock held, self->cls set
static ag_value_t *
s_local_getattr (agc_agent_t *self, const char *name)
{
    const ag_attr_t *attr = ag_class_attr (self->cls, name, strlen (name));
    if (!attr) {
        agc_set_error (AG_NO_ATTR, "%s has no public attribute '%s'",
                       self->class_name, name);
        return NULL;
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    ag_call_t call;
    ag_call_init (&call, &buffer);
    ag_value_t *value = NULL;
    int status = s_run_local (&call, &buffer, attr->get (self->state, &call),
                              &value);
    msgpack_sbuffer_destroy (&buffer);
    if (status != AG_OK)
        agc_set_error (status, "%s", call.reason);
    return value;
}

ag_value_t *
agc_agent_getattr (agc_agent_t *self, const char *attr)
{
    if (!attr || !*attr) {
        agc_set_error (AG_NO_ATTR, "no attribute name given");
        return NULL;
    }
    pthread_mutex_lock (&self->lock);
    if (self->cls) {
        ag_value_t *value = s_local_getattr (self, attr);
        pthread_mutex_unlock (&self->lock);
        return value;
    }
    pthread_mutex_unlock (&self->lock);
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
