/*  =========================================================================
    ag_proto - the AGP wire codec, shared by server and client

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "../common/ag_common.h"

static void
s_put_be (uint8_t *p, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p [i] = (uint8_t) value;
        value >>= 8;
    }
}

static uint64_t
s_get_be (const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = (value << 8) | p [i];
    return value;
}

void
agp_envelope_encode (const agp_envelope_t *self, uint8_t *buffer)
{
    memcpy (buffer, AGP_SIGNATURE, AGP_SIGNATURE_SIZE);
    buffer [5] = self->command;
    s_put_be (buffer + 6, self->word, 2);
    s_put_be (buffer + 8, self->corr, 8);
    s_put_be (buffer + 16, self->agent, 8);
}

static bool
s_command_valid (int command)
{
    int base = command & ~AGP_REPLY;
    return base >= AGP_PING && base <= AGP_LAST_COMMAND;
}

int
agp_envelope_decode (agp_envelope_t *self, const void *data, size_t size)
{
    const uint8_t *p = (const uint8_t *) data;
    memset (self, 0, sizeof *self);
    if (size < 3 || memcmp (p, "AGP", 3) != 0)
        return -1;
    if (size < AGP_SIGNATURE_SIZE
    ||  memcmp (p, AGP_SIGNATURE, AGP_SIGNATURE_SIZE) != 0) {
        //  Another version: still try to read the correlation id, which
        //  sits at the same place in every version's envelope
        if (size >= 16)
            self->corr = s_get_be (p + 8, 8);
        return -2;
    }
    if (size < AGP_ENVELOPE_SIZE) {
        //  Too short: still read the correlation id when it is there,
        //  so the error can be matched to the request
        if (size >= 16)
            self->corr = s_get_be (p + 8, 8);
        return -3;
    }
    self->command = p [5];
    self->word = (uint16_t) s_get_be (p + 6, 2);
    self->corr = s_get_be (p + 8, 8);
    self->agent = s_get_be (p + 16, 8);
    if (!s_command_valid (self->command))
        return -3;
    return 0;
}

const char *
agp_command_name (int command)
{
    static const char *names [] = {
        "?", "PING", "INFO", "CREATE", "CALL", "GETATTR", "DELETE", "LIST",
        "FETCH", "LOOKUP", "CANCEL"
    };
    static const char *reply_names [] = {
        "?", "PING-REPLY", "INFO-REPLY", "CREATE-REPLY", "CALL-REPLY",
        "GETATTR-REPLY", "DELETE-REPLY", "LIST-REPLY", "FETCH-REPLY",
        "LOOKUP-REPLY", "CANCEL-REPLY"
    };
    if (!s_command_valid (command))
        return "?";
    if (command & AGP_REPLY)
        return reply_names [command & ~AGP_REPLY];
    return names [command];
}

static int
s_str (agp_str_t *str, const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0
    ||  o->via.str.size > AGP_MAX_NAME
    ||  memchr (o->via.str.ptr, 0, o->via.str.size))
        return -1;
    str->ptr = o->via.str.ptr;
    str->len = o->via.str.size;
    return 0;
}

int
agp_create_decode (agp_create_t *self, const msgpack_object *body,
                   const char **reason)
{
    memset (self, 0, sizeof *self);
    if (!body || body->type != MSGPACK_OBJECT_MAP) {
        *reason = "CREATE body must be a map";
        return -1;
    }
    if (s_str (&self->class_name, ag_obj_get (body, "class"))) {
        *reason = "CREATE needs \"class\": a string of 1 to 255 bytes";
        return -1;
    }
    const msgpack_object *name = ag_obj_get (body, "name");
    if (name && name->type != MSGPACK_OBJECT_NIL
    &&  s_str (&self->name, name)) {
        *reason = "CREATE \"name\" must be a string of 1 to 255 bytes";
        return -1;
    }
    const msgpack_object *detached = ag_obj_get (body, "detached");
    if (detached && detached->type != MSGPACK_OBJECT_NIL
    &&  detached->type != MSGPACK_OBJECT_BOOLEAN) {
        *reason = "CREATE \"detached\" must be true or false";
        return -1;
    }
    self->detached = detached && detached->type == MSGPACK_OBJECT_BOOLEAN
                  && detached->via.boolean;
    self->args = ag_obj_get (body, "args");
    self->state = ag_obj_get (body, "state");
    if (self->state && self->state->type == MSGPACK_OBJECT_NIL)
        self->state = NULL;
    return 0;
}

int
agp_call_decode (agp_call_t *self, const msgpack_object *body,
                 const char **reason)
{
    memset (self, 0, sizeof *self);
    if (!body || body->type != MSGPACK_OBJECT_ARRAY
    ||  body->via.array.size < 2 || body->via.array.size > 3) {
        *reason = "CALL body must be [method, args] or [method, args,"
                  " timeout_ms]";
        return -1;
    }
    if (s_str (&self->method, &body->via.array.ptr [0])) {
        *reason = "CALL method must be a string of 1 to 255 bytes";
        return -1;
    }
    self->args = &body->via.array.ptr [1];
    if (body->via.array.size == 3) {
        const msgpack_object *timeout = &body->via.array.ptr [2];
        if (timeout->type != MSGPACK_OBJECT_POSITIVE_INTEGER
        ||  timeout->via.u64 > AGP_TIMEOUT_MAX) {
            *reason = "CALL timeout_ms must be an integer from 0 to"
                      " 2147483647";
            return -1;
        }
        self->timed = true;
        self->timeout_ms = (uint32_t) timeout->via.u64;
    }
    return 0;
}

bool
agp_call_timeout (const void *body, size_t size, uint32_t *timeout_ms)
{
    const uint8_t *data = (const uint8_t *) body;
    if (!data || size < 7 || data [0] != 0x93 || data [size - 5] != 0xce)
        return false;
    const uint8_t *tail = data + size - 4;
    *timeout_ms = (uint32_t) tail [0] << 24 | (uint32_t) tail [1] << 16
                | (uint32_t) tail [2] << 8 | (uint32_t) tail [3];
    return true;
}

int
agp_cancel_decode (uint64_t *corr, const msgpack_object *body,
                   const char **reason)
{
    if (!body || body->type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  body->via.u64 == 0) {
        *reason = "CANCEL body must be the correlation id of a call (a"
                  " positive integer)";
        return -1;
    }
    *corr = body->via.u64;
    return 0;
}

int
agp_getattr_decode (agp_str_t *self, const msgpack_object *body,
                    const char **reason)
{
    if (s_str (self, body)) {
        *reason = "GETATTR body must be a string of 1 to 255 bytes";
        return -1;
    }
    return 0;
}

//  A kept result's key: the caller's routing id (bin, 1 to 255 octets)
//  and the call's correlation id
static int
s_result_key (agp_str_t *owner_out, uint64_t *corr_out,
              const msgpack_object *owner, const msgpack_object *corr)
{
    if (!owner || !corr
    ||  owner->type != MSGPACK_OBJECT_BIN
    ||  owner->via.bin.size == 0 || owner->via.bin.size > 255
    ||  corr->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    owner_out->ptr = owner->via.bin.ptr;
    owner_out->len = owner->via.bin.size;
    *corr_out = corr->via.u64;
    return 0;
}

int
agp_fetch_decode (agp_fetch_t *self, const msgpack_object *body,
                  const char **reason)
{
    memset (self, 0, sizeof *self);
    if (ag_obj_count (body) != 2
    ||  s_result_key (&self->owner, &self->corr, ag_obj_at (body, 0),
                      ag_obj_at (body, 1))) {
        *reason = "FETCH body must be [owner: bin 1..255, corr: uint]";
        return -1;
    }
    return 0;
}

int
agp_lookup_decode (agp_lookup_t *self, const msgpack_object *body,
                   const char **reason)
{
    memset (self, 0, sizeof *self);
    if (body && body->type == MSGPACK_OBJECT_POSITIVE_INTEGER
    &&  body->via.u64 > 0) {
        self->id = body->via.u64;
        return 0;
    }
    if (s_str (&self->name, body)) {
        *reason = "the body must be an agent name (a string of 1 to 255"
                  " bytes) or id (an integer above 0)";
        return -1;
    }
    return 0;
}

int
agp_ref_decode (agp_ref_t *self, const msgpack_object *ext,
                msgpack_zone *zone, const char **reason)
{
    memset (self, 0, sizeof *self);
    msgpack_object ref;
    const char *unpacked;
    if (!ext || ext->type != MSGPACK_OBJECT_EXT
    ||  ext->via.ext.type != AGP_EXT_FUTURE
    ||  ag_msgpack_unpack (ext->via.ext.ptr, ext->via.ext.size, zone, &ref,
                           &unpacked)
    ||  ref.type != MSGPACK_OBJECT_ARRAY || ref.via.array.size != 3) {
        *reason = "a future reference must be [endpoint, owner, corr]";
        return -1;
    }
    if (s_str (&self->endpoint, &ref.via.array.ptr [0])
    ||  s_result_key (&self->owner, &self->corr, &ref.via.array.ptr [1],
                      &ref.via.array.ptr [2])) {
        memset (self, 0, sizeof *self);
        *reason = "a future reference must be [endpoint: str 1..255,"
                  " owner: bin 1..255, corr: uint]";
        return -1;
    }
    return 0;
}

int
agp_ref_encode (msgpack_packer *packer, const agp_ref_t *ref)
{
    msgpack_sbuffer inner;
    msgpack_sbuffer_init (&inner);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &inner, msgpack_sbuffer_write);
    int rc = msgpack_pack_array (&pk, 3)
          || msgpack_pack_str_with_body (&pk, ref->endpoint.ptr,
                                         ref->endpoint.len)
          || msgpack_pack_bin_with_body (&pk, ref->owner.ptr,
                                         ref->owner.len)
          || msgpack_pack_uint64 (&pk, ref->corr)
          || msgpack_pack_ext_with_body (packer, inner.data, inner.size,
                                         AGP_EXT_FUTURE);
    msgpack_sbuffer_destroy (&inner);
    return rc? -1: 0;
}

int
agp_msg_init (zmq_msg_t *msg, const agp_envelope_t *env, const void *body,
              size_t body_size)
{
    if (!body)
        body_size = 0;
    if (zmq_msg_init_size (msg, AGP_ENVELOPE_SIZE + body_size))
        return -1;
    uint8_t *data = (uint8_t *) zmq_msg_data (msg);
    agp_envelope_encode (env, data);
    if (body_size)
        memcpy (data + AGP_ENVELOPE_SIZE, body, body_size);
    return 0;
}

void
agp_msg_set_envelope (zmq_msg_t *msg, const agp_envelope_t *env)
{
    agp_envelope_encode (env, (uint8_t *) zmq_msg_data (msg));
}

const uint8_t *
agp_msg_body (zmq_msg_t *msg)
{
    return (const uint8_t *) zmq_msg_data (msg) + AGP_ENVELOPE_SIZE;
}

size_t
agp_msg_body_size (zmq_msg_t *msg)
{
    size_t size = zmq_msg_size (msg);
    return size > AGP_ENVELOPE_SIZE? size - AGP_ENVELOPE_SIZE: 0;
}

int
agp_send (void *socket, zmq_msg_t *routing, const agp_envelope_t *env,
          const void *body, size_t body_size, zmq_msg_t *msg, int flags)
{
    zmq_msg_t made;
    if (msg)
        agp_msg_set_envelope (msg, env);
    else {
        if (agp_msg_init (&made, env, body, body_size))
            return -1;
        msg = &made;
    }
    if (routing && zmq_msg_send (routing, socket, flags | ZMQ_SNDMORE) == -1) {
        zmq_msg_close (msg);
        return -1;
    }
    //  Once the routing frame is out, libzmq takes the rest of the
    //  message too
    if (zmq_msg_send (msg, socket, flags) == -1) {
        zmq_msg_close (msg);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Selftest

static ag_value_t *
s_body (const void *data, size_t size, msgpack_zone *zone,
        msgpack_object *object)
{
    ag_value_t *value = ag_value_decode (data, size);
    if (value)
        *object = *ag_value_object (value);
    (void) zone;
    return value;
}

void
ag_proto_test (bool verbose)
{
    printf (" * ag_proto: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    //  Every command's envelope round-trips
    for (int command = AGP_PING; command <= AGP_LAST_COMMAND; command++)
        for (int reply = 0; reply < 2; reply++) {
            agp_envelope_t env = {
                .command = (uint8_t) (command | (reply? AGP_REPLY: 0)),
                .word = reply? AG_NO_METHOD: AGP_FLAG_KEEP,
                .corr = 0x0102030405060708ULL + (uint64_t) command,
                .agent = 0xfffffffffffffff0ULL
            };
            uint8_t buffer [AGP_ENVELOPE_SIZE];
            agp_envelope_encode (&env, buffer);
            agp_envelope_t back;
            assert (agp_envelope_decode (&back, buffer, sizeof buffer) == 0);
            assert (back.command == env.command);
            assert (back.word == env.word);
            assert (back.corr == env.corr);
            assert (back.agent == env.agent);
            assert (!streq (agp_command_name (back.command), "?"));
            //  Every truncation is refused
            for (size_t cut = 0; cut < sizeof buffer; cut++)
                assert (agp_envelope_decode (&back, buffer, cut) != 0);
            //  A body may follow
            uint8_t longer [AGP_ENVELOPE_SIZE + 3];
            memcpy (longer, buffer, sizeof buffer);
            assert (agp_envelope_decode (&back, longer, sizeof longer) == 0);
        }
    //  @end

    //  Other versions and garbage are told apart
    uint8_t buffer [AGP_ENVELOPE_SIZE + 8];
    agp_envelope_t env = { .command = AGP_CALL, .corr = 77 };
    agp_envelope_encode (&env, buffer);
    buffer [4] = '2';               //  "AGP02"
    agp_envelope_t back;
    assert (agp_envelope_decode (&back, buffer, AGP_ENVELOPE_SIZE) == -2);
    assert (back.corr == 77);
    assert (agp_envelope_decode (&back, "HTTP/1.1", 8) == -1);
    agp_envelope_encode (&env, buffer);
    assert (agp_envelope_decode (&back, buffer, 20) == -3);
    assert (back.corr == 77);
    buffer [5] = 0x42;              //  unknown command
    assert (agp_envelope_decode (&back, buffer, AGP_ENVELOPE_SIZE) == -3);
    buffer [5] = 0;
    assert (agp_envelope_decode (&back, buffer, AGP_ENVELOPE_SIZE) == -3);
    uint8_t noise [AGP_ENVELOPE_SIZE];
    for (int round = 0; round < 10000; round++) {
        for (size_t i = 0; i < sizeof noise; i++)
            noise [i] = (uint8_t) random ();
        if (round % 2)
            memcpy (noise, AGP_SIGNATURE, AGP_SIGNATURE_SIZE);
        agp_envelope_decode (&back, noise, (size_t) (random () % 25));
    }

    //  Bodies: good ones decode, bad ones give a reason
    msgpack_zone zone;
    msgpack_object body;
    const char *reason = NULL;
    ag_value_t *value = ag_value_new ("{s:s, s:[i], s:s}", "class", "WebAgent",
                                      "args", (int64_t) 1, "name", "W0");
    ag_value_t *held = s_body (ag_value_data (value), ag_value_size (value),
                               &zone, &body);
    agp_create_t create;
    assert (agp_create_decode (&create, &body, &reason) == 0);
    assert (create.class_name.len == 8);
    assert (memcmp (create.class_name.ptr, "WebAgent", 8) == 0);
    assert (create.name.len == 2);
    assert (ag_obj_count (create.args) == 1);
    ag_value_destroy (&held);
    ag_value_destroy (&value);

    ag_value_t *bad_creates [] = {
        ag_value_new ("[s]", "class"),
        ag_value_new ("{s:i}", "class", (int64_t) 1),
        ag_value_new ("{s:s, s:i}", "class", "X", "name", (int64_t) 5),
        ag_value_new ("{s:s}", "class", ""),
        ag_value_new ("n")
    };
    for (size_t i = 0; i < sizeof bad_creates / sizeof *bad_creates; i++) {
        assert (bad_creates [i]);
        reason = NULL;
        assert (agp_create_decode (&create, ag_value_object (bad_creates [i]),
                                   &reason) == -1);
        assert (reason);
        ag_value_destroy (&bad_creates [i]);
    }
    char long_name [300];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    value = ag_value_new ("{s:s}", "class", long_name);
    assert (agp_create_decode (&create, ag_value_object (value),
                               &reason) == -1);
    ag_value_destroy (&value);

    agp_call_t call;
    value = ag_value_new ("[s, {s:s}]", "reply", "url", "page_1");
    assert (agp_call_decode (&call, ag_value_object (value), &reason) == 0);
    assert (call.method.len == 5);
    assert (ag_obj_streq (ag_obj_get (call.args, "url"), "page_1"));
    ag_value_destroy (&value);
    value = ag_value_new ("[s]", "reply");
    assert (agp_call_decode (&call, ag_value_object (value), &reason) == -1);
    ag_value_destroy (&value);
    value = ag_value_new ("[i, n]", (int64_t) 3);
    assert (agp_call_decode (&call, ag_value_object (value), &reason) == -1);
    ag_value_destroy (&value);
    value = ag_value_new ("[S, n]", "a\0b", (size_t) 3);
    assert (agp_call_decode (&call, ag_value_object (value), &reason) == -1);
    ag_value_destroy (&value);

    agp_str_t attr;
    value = ag_value_new ("s", "name");
    assert (agp_getattr_decode (&attr, ag_value_object (value), &reason) == 0);
    assert (attr.len == 4);
    ag_value_destroy (&value);
    value = ag_value_new ("n");
    assert (agp_getattr_decode (&attr, ag_value_object (value), &reason) == -1);
    ag_value_destroy (&value);

    agp_fetch_t fetch;
    value = ag_value_new ("[B, u]", "\x41\x01", (size_t) 2, (uint64_t) 9);
    assert (agp_fetch_decode (&fetch, ag_value_object (value), &reason) == 0);
    assert (fetch.owner.len == 2 && fetch.corr == 9);
    ag_value_destroy (&value);
    value = ag_value_new ("[s, i]", "x", (int64_t) -1);
    assert (agp_fetch_decode (&fetch, ag_value_object (value), &reason) == -1);
    ag_value_destroy (&value);

    agp_lookup_t lookup;
    value = ag_value_new ("s", "ledger");
    assert (agp_lookup_decode (&lookup, ag_value_object (value),
                               &reason) == 0);
    assert (lookup.name.len == 6 && lookup.id == 0);
    ag_value_destroy (&value);
    value = ag_value_new ("u", (uint64_t) 12);
    assert (agp_lookup_decode (&lookup, ag_value_object (value),
                               &reason) == 0);
    assert (lookup.name.ptr == NULL && lookup.id == 12);
    ag_value_destroy (&value);
    value = ag_value_new ("u", (uint64_t) 0);
    assert (agp_lookup_decode (&lookup, ag_value_object (value),
                               &reason) == -1);
    ag_value_destroy (&value);
    assert (agp_lookup_decode (&lookup, NULL, &reason) == -1);

    //  Future references: encoded, decoded, and the bad ones refused
    msgpack_sbuffer refbuf;
    msgpack_sbuffer_init (&refbuf);
    msgpack_packer refpk;
    msgpack_packer_init (&refpk, &refbuf, msgpack_sbuffer_write);
    agp_ref_t ref = { { "tcp://h:1", 9 }, { "\x41\x01", 2 }, 77 }, ref_back;
    assert (agp_ref_encode (&refpk, &ref) == 0);
    msgpack_zone refzone;
    msgpack_zone_init (&refzone, 256);
    msgpack_object ext;
    assert (ag_msgpack_unpack (refbuf.data, refbuf.size, &refzone, &ext,
                               &reason) == 0);
    assert (agp_ref_decode (&ref_back, &ext, &refzone, &reason) == 0);
    assert (ref_back.endpoint.len == 9
         && memcmp (ref_back.endpoint.ptr, "tcp://h:1", 9) == 0);
    assert (ref_back.owner.len == 2 && ref_back.corr == 77);
    ref.endpoint.len = 0;           //  an empty endpoint is no endpoint
    msgpack_sbuffer_clear (&refbuf);
    assert (agp_ref_encode (&refpk, &ref) == 0);
    assert (ag_msgpack_unpack (refbuf.data, refbuf.size, &refzone, &ext,
                               &reason) == 0);
    assert (agp_ref_decode (&ref_back, &ext, &refzone, &reason) == -1);
    value = ag_value_new ("[s, i]", "x", (int64_t) 1);
    assert (agp_ref_decode (&ref_back, ag_value_object (value), &refzone,
                            &reason) == -1);
    ag_value_destroy (&value);
    msgpack_zone_destroy (&refzone);
    msgpack_sbuffer_destroy (&refbuf);

    //  Bodies over the element limit are refused before decoding
    size_t size = 5 + AG_MAX_ELEMENTS + 1;
    uint8_t *big = (uint8_t *) malloc (size);
    assert (big);
    big [0] = 0xdd;
    uint32_t count = AG_MAX_ELEMENTS + 1;
    s_put_be (big + 1, count, 4);
    memset (big + 5, 0xc0, size - 5);
    assert (ag_msgpack_check (big, size, &reason) == -1);
    assert (streq (reason, "msgpack has too many elements"));
    free (big);

    //  A message really goes out as one frame: envelope, then body
    zsock_t *pull = zsock_new_pull ("inproc://ag_proto_test");
    zsock_t *push = zsock_new_push (">inproc://ag_proto_test");
    assert (pull && push);
    env = (agp_envelope_t) { .command = AGP_PING, .corr = 5 };
    assert (agp_send (zsock_resolve (push), NULL, &env, "\xc0", 1, NULL, 0)
            == 0);
    zmsg_t *msg = zmsg_recv (pull);
    assert (zmsg_size (msg) == 1);
    zframe_t *frame = zmsg_first (msg);
    assert (zframe_size (frame) == AGP_ENVELOPE_SIZE + 1);
    assert (agp_envelope_decode (&back, zframe_data (frame),
                                 zframe_size (frame)) == 0);
    assert (back.command == AGP_PING && back.corr == 5);
    assert (zframe_data (frame) [AGP_ENVELOPE_SIZE] == 0xc0);
    zmsg_destroy (&msg);
    zsock_destroy (&push);
    zsock_destroy (&pull);
    assert (streq (ag_status_str (AG_NO_AGENT), "no such agent"));
    assert (streq (ag_status_str (12345), "unknown status"));
    printf ("OK\n");
}
