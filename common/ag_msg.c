/*  =========================================================================
    ag_msg - the Msg value, and AgentBase, the base class of agents

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A Msg is a plain msgpack map, so it crosses the wire as it is and any
//  language can read it. AgentBase gives agent classes a name and a
//  memory of Msgs; derived classes add reply and whatever else they do.
//  Its state can be saved and loaded, so an agent built on it moves to a
//  server with its memory.
//  @end

#include "ag_common.h"
#include <sodium.h>

#define MAX_MEMORY 65536            //  Msgs an agent remembers at most

static void
s_pack_msg_head (msgpack_packer *pk, const char *name, const char *role)
{
    uint8_t random [16];
    randombytes_buf (random, sizeof random);
    char id [33];
    for (int i = 0; i < 16; i++)
        snprintf (id + 2 * i, 3, "%02x", random [i]);
    time_t now = time (NULL);
    struct tm tm;
    localtime_r (&now, &tm);
    char timestamp [32];
    strftime (timestamp, sizeof timestamp, "%Y-%m-%d %H:%M:%S", &tm);
    msgpack_pack_map (pk, 7);
    ag_pack (pk, "s:s, s:s, s:s, s:n, s:n, s:s", "id", id, "name", name,
             "role", role, "url", "metadata", "timestamp", timestamp);
    ag_pack (pk, "s", "content");
}

static ag_value_t *
s_finish (msgpack_sbuffer *buffer)
{
    size_t size = buffer->size;
    return ag_value_decode_owned (msgpack_sbuffer_release (buffer), size);
}

ag_value_t *
ag_msg_new (const char *name, const char *role, const ag_value_t *content)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    s_pack_msg_head (&pk, name, role);
    ag_pack (&pk, "v", content);
    return s_finish (&buffer);
}

ag_value_t *
ag_msg_newf (const char *name, const char *role, const char *picture, ...)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    s_pack_msg_head (&pk, name, role);
    va_list args;
    va_start (args, picture);
    int rc = ag_packv (&pk, picture, args);
    va_end (args);
    if (rc) {
        msgpack_sbuffer_destroy (&buffer);
        return NULL;
    }
    return s_finish (&buffer);
}

const msgpack_object *
ag_msg_field (const msgpack_object *msg, const char *field)
{
    return ag_obj_get (msg, field);
}

int
ag_msg_check (const msgpack_object *msg, char *reason, size_t size)
{
    if (!msg || msg->type != MSGPACK_OBJECT_MAP) {
        snprintf (reason, size, "a Msg is a map");
        return -1;
    }
    const char *strings [] = { "name", "role" };
    for (int i = 0; i < 2; i++)
        if (!ag_obj_is_str (ag_obj_get (msg, strings [i]))) {
            snprintf (reason, size, "a Msg needs \"%s\", a string",
                      strings [i]);
            return -1;
        }
    if (!ag_obj_get (msg, "content")) {
        snprintf (reason, size, "a Msg needs \"content\"");
        return -1;
    }
    const char *optional [] = { "id", "timestamp", "url" };
    for (int i = 0; i < 3; i++) {
        const msgpack_object *field = ag_obj_get (msg, optional [i]);
        if (field && field->type != MSGPACK_OBJECT_NIL && !ag_obj_is_str (field)) {
            snprintf (reason, size, "a Msg's \"%s\" is a string or nil",
                      optional [i]);
            return -1;
        }
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  AgentBase

int
ag_agentbase_remember (ag_agentbase_t *self, const msgpack_object *msg)
{
    if (self->memory_size == MAX_MEMORY)
        return -1;
    if (self->memory_size == self->memory_room) {
        size_t room = self->memory_room? self->memory_room * 2: 16;
        ag_value_t **memory = (ag_value_t **)
            realloc (self->memory, room * sizeof *memory);
        if (!memory)
            return -1;
        self->memory = memory;
        self->memory_room = room;
    }
    ag_value_t *copy = ag_value_from_object (msg);
    if (!copy)
        return -1;
    self->memory [self->memory_size++] = copy;
    return 0;
}

int
ag_agentbase_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    ag_agentbase_t *self = (ag_agentbase_t *) state;
    const msgpack_object *name = ag_obj_is_str (args)? args
                                                     : ag_obj_get (args, "name");
    if (!ag_obj_is_str (name) || name->via.str.size == 0
    ||  name->via.str.size >= sizeof self->name)
        return ag_call_error (call, AG_BAD_ARGS,
                              "an agent needs a name of 1 to 63 bytes");
    memcpy (self->name, name->via.str.ptr, name->via.str.size);
    self->name [name->via.str.size] = 0;
    return 0;
}

void
ag_agentbase_fini (void *state)
{
    ag_agentbase_t *self = (ag_agentbase_t *) state;
    for (size_t i = 0; i < self->memory_size; i++)
        ag_value_destroy (&self->memory [i]);
    free (self->memory);
    self->memory = NULL;
    self->memory_size = self->memory_room = 0;
}

//  observe (sync): a Msg, an array of Msgs, or nil
static int
s_observe (void *state, const msgpack_object *args, ag_call_t *call)
{
    ag_agentbase_t *self = (ag_agentbase_t *) state;
    if (!args || args->type == MSGPACK_OBJECT_NIL)
        return 0;
    size_t count = args->type == MSGPACK_OBJECT_ARRAY? args->via.array.size: 1;
    for (size_t i = 0; i < count; i++) {
        const msgpack_object *msg = args->type == MSGPACK_OBJECT_ARRAY?
                                    &args->via.array.ptr [i]: args;
        char reason [128];
        if (ag_msg_check (msg, reason, sizeof reason))
            return ag_call_error (call, AG_BAD_ARGS, "observe: %s", reason);
    }
    for (size_t i = 0; i < count; i++)
        if (ag_agentbase_remember (self, args->type == MSGPACK_OBJECT_ARRAY?
                                         &args->via.array.ptr [i]: args))
            return ag_call_error (call, AG_AGENT_ERROR,
                                  "memory full (%d Msgs)", MAX_MEMORY);
    return 0;
}

static int
s_reply (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_error (call, AG_NO_METHOD, "reply is not implemented by"
                          " this agent's class");
}

static int
s_get_name (void *state, ag_call_t *call)
{
    return ag_call_return (call, "s", ((ag_agentbase_t *) state)->name);
}

static void
s_pack_memory (ag_agentbase_t *self, msgpack_packer *pk)
{
    msgpack_pack_array (pk, self->memory_size);
    for (size_t i = 0; i < self->memory_size; i++)
        ag_pack (pk, "v", self->memory [i]);
}

static int
s_get_memory (void *state, ag_call_t *call)
{
    s_pack_memory ((ag_agentbase_t *) state, ag_call_packer (call));
    return 0;
}

static int
s_save (void *state, ag_call_t *call)
{
    msgpack_packer *pk = ag_call_packer (call);
    msgpack_pack_map (pk, 1);
    ag_pack (pk, "s", "memory");
    s_pack_memory ((ag_agentbase_t *) state, pk);
    return 0;
}

static int
s_load (void *state, const msgpack_object *saved, ag_call_t *call)
{
    ag_agentbase_t *self = (ag_agentbase_t *) state;
    const msgpack_object *memory = ag_obj_get (saved, "memory");
    for (size_t i = 0; i < ag_obj_count (memory); i++)
        if (ag_agentbase_remember (self, ag_obj_at (memory, i)))
            return ag_call_error (call, AG_AGENT_ERROR, "cannot load memory");
    return 0;
}

static const ag_method_t s_methods [] = {
    { "observe", s_observe, AG_SYNC },
    { "reply", s_reply, AG_ASYNC },
    { NULL }
};

static const ag_attr_t s_attrs [] = {
    { "name", s_get_name },
    { "memory", s_get_memory },
    { NULL }
};

const ag_class_t ag_agentbase_class = {
    .name = "AgentBase",
    .state_size = sizeof (ag_agentbase_t),
    .init = ag_agentbase_init,
    .fini = ag_agentbase_fini,
    .methods = s_methods,
    .attrs = s_attrs,
    .save = s_save,
    .load = s_load
};

//  ---------------------------------------------------------------------
//  Selftest

void
ag_msg_test (bool verbose)
{
    printf (" * ag_msg: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    ag_value_t *msg = ag_msg_newf ("system", "system", "{s:s, s:s}",
                                   "url", "page_1", "query", "q");
    assert (msg);
    const msgpack_object *object = ag_value_object (msg);
    char reason [128];
    assert (ag_msg_check (object, reason, sizeof reason) == 0);
    assert (ag_obj_streq (ag_msg_field (object, "name"), "system"));
    assert (ag_obj_streq (ag_obj_get (ag_msg_field (object, "content"), "url"),
                          "page_1"));
    assert (ag_obj_is_str (ag_msg_field (object, "id")));
    assert (ag_obj_is_str (ag_msg_field (object, "timestamp")));
    assert (ag_msg_field (object, "url")->type == MSGPACK_OBJECT_NIL);

    //  Memory: observe, save, load into another
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    ag_call_t call;
    ag_agentbase_t one, two;
    memset (&one, 0, sizeof one);
    memset (&two, 0, sizeof two);
    ag_value_t *args = ag_value_new ("s", "W0");
    ag_call_init (&call, &buffer);
    assert (ag_agentbase_init (&one, ag_value_object (args), &call) == 0);
    assert (streq (one.name, "W0"));
    ag_call_init (&call, &buffer);
    assert (s_observe (&one, object, &call) == 0);
    assert (one.memory_size == 1);
    ag_call_init (&call, &buffer);
    assert (s_save (&one, &call) == 0);
    assert (ag_call_finish (&call, 0) == AG_OK);
    ag_value_t *saved = ag_value_decode (buffer.data, buffer.size);
    ag_call_init (&call, &buffer);
    assert (s_load (&two, ag_value_object (saved), &call) == 0);
    assert (two.memory_size == 1);
    ag_value_destroy (&saved);
    ag_agentbase_fini (&one);
    ag_agentbase_fini (&two);
    ag_value_destroy (&args);

    //  Bad Msgs are refused with a reason
    ag_value_t *bad = ag_value_new ("{s:i}", "name", (int64_t) 1);
    assert (ag_msg_check (ag_value_object (bad), reason, sizeof reason) == -1);
    assert (strstr (reason, "name"));
    ag_call_init (&call, &buffer);
    assert (s_observe (&one, ag_value_object (bad), &call) == -1);
    assert (call.status == AG_BAD_ARGS);
    ag_value_destroy (&bad);
    ag_value_destroy (&msg);
    msgpack_sbuffer_destroy (&buffer);
    //  @end
    printf ("OK\n");
}
