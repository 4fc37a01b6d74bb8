/*  =========================================================================
    fuzz_proto - libFuzzer harness for the AGP wire codec

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Feeds arbitrary octets to everything that decodes AGP input without a
//  socket: the envelope reader, the bounded msgpack check and unpack,
//  ag_value_decode, the body decoders of CREATE, CALL, GETATTR, FETCH and
//  LOOKUP, the future reference decoder (on every ext in a body), and the
//  Msg check agents apply to their arguments. An input that starts with a
//  full AGP01 envelope is a frame: envelope, then body. Any other input is
//  a body alone.
//
//  Each answer is compared with what PROTOCOL.md says it must be, read
//  independently here (sections 2, 8 and 9), and whatever decodes is
//  encoded again and must decode to the same thing. A disagreement is
//  reported and aborts, so libFuzzer keeps the input.
//  @end

#include "ag_common.h"
#include "fuzz.h"

//  Pack an object into a fresh buffer (caller destroys it)
static void
s_pack (msgpack_sbuffer *buffer, const msgpack_object *object)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_object (&packer, *object);
}

//  Two objects are the same value when they pack to the same octets
static bool
s_same_object (const msgpack_object *a, const msgpack_object *b)
{
    if (!a || !b)
        return a == b;
    msgpack_sbuffer first, second;
    s_pack (&first, a);
    s_pack (&second, b);
    bool same = first.size == second.size
             && memcmp (first.data, second.data, first.size) == 0;
    msgpack_sbuffer_destroy (&first);
    msgpack_sbuffer_destroy (&second);
    return same;
}

static bool
s_same_str (agp_str_t a, agp_str_t b)
{
    if (!a.ptr || !b.ptr)
        return a.ptr == b.ptr;
    return a.len == b.len && memcmp (a.ptr, b.ptr, a.len) == 0;
}

//  ---------------------------------------------------------------------
//  Envelope (PROTOCOL.md 2.1 and 8)

static void
s_check_envelope (const uint8_t *data, size_t size)
{
    //  What the reader must answer, from the spec: -1 not AGP, -2 another
    //  version, -3 too short or unknown command, 0 a usable envelope
    int expect;
    if (size < 3 || memcmp (data, "AGP", 3) != 0)
        expect = -1;
    else
    if (size < AGP_SIGNATURE_SIZE
    ||  memcmp (data, AGP_SIGNATURE, AGP_SIGNATURE_SIZE) != 0)
        expect = -2;
    else
    if (size < AGP_ENVELOPE_SIZE)
        expect = -3;
    else {
        int base = data [5] & ~AGP_REPLY;
        expect = base >= AGP_PING && base <= AGP_CANCEL? 0: -3;
    }
    //  The correlation id is read whenever the frame holds it, so that
    //  errors can be matched; never for what is not AGP at all
    uint64_t corr = expect != -1 && size >= 16? fuzz_get_be (data + 8, 8): 0;

    agp_envelope_t env;
    memset (&env, 0xa5, sizeof env);    //  the reader must clear it all
    int rc = agp_envelope_decode (&env, data, size);
    FUZZ_CHECK (rc == expect);
    FUZZ_CHECK (env.corr == corr);
    if (size >= AGP_ENVELOPE_SIZE && (expect == 0 || expect == -3)) {
        FUZZ_CHECK (env.command == data [5]);
        FUZZ_CHECK (env.word == fuzz_get_be (data + 6, 2));
        FUZZ_CHECK (env.agent == fuzz_get_be (data + 16, 8));
    }
    else {
        FUZZ_CHECK (env.command == 0);
        FUZZ_CHECK (env.word == 0);
        FUZZ_CHECK (env.agent == 0);
    }
    const char *name = agp_command_name (size > 5? data [5]: 0);
    FUZZ_CHECK (name && strlen (name) > 0);
    if (rc != 0)
        return;
    FUZZ_CHECK (strcmp (agp_command_name (env.command), "?") != 0);

    //  Encoding gives back the 24 octets it came from
    uint8_t again [AGP_ENVELOPE_SIZE];
    agp_envelope_encode (&env, again);
    FUZZ_CHECK (memcmp (again, data, AGP_ENVELOPE_SIZE) == 0);

    //  And so does a message frame made of envelope and body
    zmq_msg_t msg;
    size_t body_size = size - AGP_ENVELOPE_SIZE;
    FUZZ_CHECK (agp_msg_init (&msg, &env, data + AGP_ENVELOPE_SIZE,
                              body_size) == 0);
    FUZZ_CHECK (zmq_msg_size (&msg) == size);
    FUZZ_CHECK (memcmp (zmq_msg_data (&msg), data, size) == 0);
    FUZZ_CHECK (agp_msg_body_size (&msg) == body_size);
    FUZZ_CHECK (memcmp (agp_msg_body (&msg), data + AGP_ENVELOPE_SIZE,
                        body_size) == 0);
    agp_envelope_t other = env;
    other.word ^= 0xffff;
    other.corr = ~env.corr;
    agp_msg_set_envelope (&msg, &other);
    agp_envelope_t back;
    FUZZ_CHECK (agp_envelope_decode (&back, zmq_msg_data (&msg),
                                     zmq_msg_size (&msg)) == 0);
    FUZZ_CHECK (back.word == other.word && back.corr == other.corr);
    FUZZ_CHECK (memcmp (agp_msg_body (&msg), data + AGP_ENVELOPE_SIZE,
                        body_size) == 0);
    zmq_msg_close (&msg);
}

//  ---------------------------------------------------------------------
//  Decoded objects

static void
    s_check_ref (const msgpack_object *ext);

//  Every string the decoder returns points into the body it came from;
//  depth and element count are within the limits (PROTOCOL.md 9)
static void
s_walk (const msgpack_object *o, const uint8_t *body, size_t size,
        int depth, size_t *elements)
{
    FUZZ_CHECK (depth <= AG_MAX_DEPTH);
    FUZZ_CHECK (++*elements <= AG_MAX_ELEMENTS);
    const char *ptr = NULL;
    size_t len = 0;
    switch (o->type) {
        case MSGPACK_OBJECT_STR:
            ptr = o->via.str.ptr;
            len = o->via.str.size;
            break;
        case MSGPACK_OBJECT_BIN:
            ptr = o->via.bin.ptr;
            len = o->via.bin.size;
            break;
        case MSGPACK_OBJECT_EXT:
            ptr = o->via.ext.ptr;
            len = o->via.ext.size;
            s_check_ref (o);
            break;
        case MSGPACK_OBJECT_ARRAY:
            for (uint32_t i = 0; i < o->via.array.size; i++)
                s_walk (&o->via.array.ptr [i], body, size, depth + 1,
                        elements);
            break;
        case MSGPACK_OBJECT_MAP:
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                s_walk (&o->via.map.ptr [i].key, body, size, depth + 1,
                        elements);
                s_walk (&o->via.map.ptr [i].val, body, size, depth + 1,
                        elements);
            }
            break;
        default:
            break;
    }
    if (len) {
        FUZZ_CHECK ((const uint8_t *) ptr >= body);
        FUZZ_CHECK (len <= size);
        FUZZ_CHECK ((const uint8_t *) ptr + len <= body + size);
    }
    //  The readers take any object without harm
    (void) ag_obj_int (o, 0);
    (void) ag_obj_double (o, 0);
    (void) ag_obj_bool (o, false);
    (void) ag_obj_count (o);
    (void) ag_obj_at (o, 1);
    (void) ag_obj_get (o, "class");
    (void) ag_obj_streq (o, "count");
    char *copy = ag_obj_strdup (o);
    if (copy) {
        FUZZ_CHECK (o->type == MSGPACK_OBJECT_STR
                 || o->type == MSGPACK_OBJECT_BIN);
        FUZZ_CHECK (len == 0 || memcmp (copy, ptr, len) == 0);
        FUZZ_CHECK (copy [len] == 0);
        free (copy);
    }
}

//  Encoding a decoded object gives a body that passes the checks and
//  decodes to the same object; a second round changes nothing more
static void
s_roundtrip_object (const msgpack_object *object, size_t size)
{
    msgpack_sbuffer first;
    s_pack (&first, object);
    //  The shortest encoding is never longer than the one it came from
    FUZZ_CHECK (first.size <= size);
    const char *reason = NULL;
    FUZZ_CHECK (ag_msgpack_check (first.data, first.size, &reason) == 0);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object again;
    FUZZ_CHECK (ag_msgpack_unpack (first.data, first.size, &zone, &again,
                                   &reason) == 0);
    msgpack_sbuffer second;
    s_pack (&second, &again);
    FUZZ_CHECK (second.size == first.size);
    FUZZ_CHECK (memcmp (second.data, first.data, first.size) == 0);
    msgpack_sbuffer_destroy (&second);
    msgpack_zone_destroy (&zone);

    //  Values copy the same octets
    ag_value_t *value = ag_value_from_object (object);
    FUZZ_CHECK (value);
    FUZZ_CHECK (ag_value_size (value) == first.size);
    FUZZ_CHECK (memcmp (ag_value_data (value), first.data, first.size) == 0);
    ag_value_t *copy = ag_value_dup (value);
    FUZZ_CHECK (copy);
    FUZZ_CHECK (s_same_object (ag_value_object (copy), object));
    ag_value_destroy (&copy);
    ag_value_destroy (&value);
    msgpack_sbuffer_destroy (&first);
}

//  ---------------------------------------------------------------------
//  Body decoders (PROTOCOL.md 2.2 and 4)

//  A name: a str of 1 to 255 octets, no zero octet
static bool
s_is_name (const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_STR
        && o->via.str.size >= 1 && o->via.str.size <= AGP_MAX_NAME
        && !memchr (o->via.str.ptr, 0, o->via.str.size);
}

//  A name the decoder returns: checked, and borrowed from the body
static void
s_check_name (agp_str_t name, const uint8_t *body, size_t size)
{
    FUZZ_CHECK (name.ptr);
    FUZZ_CHECK (name.len >= 1 && name.len <= AGP_MAX_NAME);
    FUZZ_CHECK (!memchr (name.ptr, 0, name.len));
    FUZZ_CHECK ((const uint8_t *) name.ptr >= body
             && (const uint8_t *) name.ptr + name.len <= body + size);
}

//  Decode packed octets into zone, which must succeed
static void
s_unpack (msgpack_sbuffer *buffer, msgpack_zone *zone, msgpack_object *object)
{
    const char *reason = NULL;
    msgpack_zone_init (zone, 2048);
    FUZZ_CHECK (ag_msgpack_unpack (buffer->data, buffer->size, zone, object,
                                   &reason) == 0);
}

static void
s_check_create (const msgpack_object *body, const uint8_t *data, size_t size)
{
    const msgpack_object *name_obj = ag_obj_get (body, "name");
    bool valid = body && body->type == MSGPACK_OBJECT_MAP
              && s_is_name (ag_obj_get (body, "class"))
              && (!name_obj || name_obj->type == MSGPACK_OBJECT_NIL
                  || s_is_name (name_obj));
    agp_create_t create;
    const char *reason = NULL;
    int rc = agp_create_decode (&create, body, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        return;
    }
    s_check_name (create.class_name, data, size);
    if (create.name.ptr)
        s_check_name (create.name, data, size);
    FUZZ_CHECK (create.args == ag_obj_get (body, "args"));
    FUZZ_CHECK (!create.state || create.state->type != MSGPACK_OBJECT_NIL);

    //  Encode it as a client does, and decode it again
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1 + (create.name.ptr? 1: 0)
                         + (create.args? 1: 0) + (create.state? 1: 0));
    ag_pack (&pk, "s:S", "class", create.class_name.ptr,
             create.class_name.len);
    if (create.name.ptr)
        ag_pack (&pk, "s:S", "name", create.name.ptr, create.name.len);
    if (create.args)
        ag_pack (&pk, "s:o", "args", create.args);
    if (create.state)
        ag_pack (&pk, "s:o", "state", create.state);
    msgpack_zone zone;
    msgpack_object object;
    s_unpack (&buffer, &zone, &object);
    agp_create_t back;
    FUZZ_CHECK (agp_create_decode (&back, &object, &reason) == 0);
    FUZZ_CHECK (s_same_str (back.class_name, create.class_name));
    FUZZ_CHECK (s_same_str (back.name, create.name));
    FUZZ_CHECK (s_same_object (back.args, create.args));
    FUZZ_CHECK (s_same_object (back.state, create.state));
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&buffer);
}

static void
s_check_call (const msgpack_object *body, const uint8_t *data, size_t size)
{
    bool timed = body && body->type == MSGPACK_OBJECT_ARRAY
              && body->via.array.size == 3;
    bool valid = body && body->type == MSGPACK_OBJECT_ARRAY
              && (body->via.array.size == 2 || body->via.array.size == 3)
              && s_is_name (&body->via.array.ptr [0])
              && (!timed || (body->via.array.ptr [2].type
                             == MSGPACK_OBJECT_POSITIVE_INTEGER
                          && body->via.array.ptr [2].via.u64
                             <= AGP_TIMEOUT_MAX));
    agp_call_t call;
    const char *reason = NULL;
    int rc = agp_call_decode (&call, body, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        return;
    }
    s_check_name (call.method, data, size);
    FUZZ_CHECK (call.args == &body->via.array.ptr [1]);
    FUZZ_CHECK (call.timed == timed);
    if (timed)
        FUZZ_CHECK (call.timeout_ms == body->via.array.ptr [2].via.u64);

    ag_value_t *value = ag_value_new ("[S, o]", call.method.ptr,
                                      call.method.len, call.args);
    FUZZ_CHECK (value);
    agp_call_t back;
    FUZZ_CHECK (agp_call_decode (&back, ag_value_object (value),
                                 &reason) == 0);
    FUZZ_CHECK (s_same_str (back.method, call.method));
    FUZZ_CHECK (s_same_object (back.args, call.args));
    ag_value_destroy (&value);
}

static void
s_check_cancel (const msgpack_object *body)
{
    bool valid = body && body->type == MSGPACK_OBJECT_POSITIVE_INTEGER
              && body->via.u64 > 0;
    uint64_t corr = 0;
    const char *reason = NULL;
    int rc = agp_cancel_decode (&corr, body, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc)
        FUZZ_CHECK (reason && strlen (reason) > 0);
    else
        FUZZ_CHECK (corr == body->via.u64);
}

static void
s_check_getattr (const msgpack_object *body, const uint8_t *data,
                 size_t size)
{
    agp_str_t name = { NULL, 0 };
    const char *reason = NULL;
    int rc = agp_getattr_decode (&name, body, &reason);
    FUZZ_CHECK (rc == (s_is_name (body)? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        return;
    }
    s_check_name (name, data, size);
    ag_value_t *value = ag_value_new ("S", name.ptr, name.len);
    FUZZ_CHECK (value);
    agp_str_t back = { NULL, 0 };
    FUZZ_CHECK (agp_getattr_decode (&back, ag_value_object (value),
                                    &reason) == 0);
    FUZZ_CHECK (s_same_str (back, name));
    ag_value_destroy (&value);
}

static void
s_check_fetch (const msgpack_object *body, const uint8_t *data, size_t size)
{
    const msgpack_object *owner = ag_obj_at (body, 0);
    const msgpack_object *corr = ag_obj_at (body, 1);
    bool valid = ag_obj_count (body) == 2
              && body->type == MSGPACK_OBJECT_ARRAY
              && owner && owner->type == MSGPACK_OBJECT_BIN
              && owner->via.bin.size >= 1 && owner->via.bin.size <= 255
              && corr && corr->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    agp_fetch_t fetch;
    const char *reason = NULL;
    int rc = agp_fetch_decode (&fetch, body, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        return;
    }
    FUZZ_CHECK (fetch.owner.len >= 1 && fetch.owner.len <= 255);
    FUZZ_CHECK ((const uint8_t *) fetch.owner.ptr >= data
             && (const uint8_t *) fetch.owner.ptr + fetch.owner.len
                <= data + size);
    FUZZ_CHECK (fetch.corr == corr->via.u64);

    ag_value_t *value = ag_value_new ("[B, u]", fetch.owner.ptr,
                                      fetch.owner.len, fetch.corr);
    FUZZ_CHECK (value);
    agp_fetch_t back;
    FUZZ_CHECK (agp_fetch_decode (&back, ag_value_object (value),
                                  &reason) == 0);
    FUZZ_CHECK (s_same_str (back.owner, fetch.owner));
    FUZZ_CHECK (back.corr == fetch.corr);
    ag_value_destroy (&value);
}

//  LOOKUP body (PROTOCOL.md 4.11): a name, or an id above 0
static void
s_check_lookup (const msgpack_object *body, const uint8_t *data, size_t size)
{
    bool by_id = body->type == MSGPACK_OBJECT_POSITIVE_INTEGER
              && body->via.u64 > 0;
    bool valid = by_id || s_is_name (body);
    agp_lookup_t lookup;
    const char *reason = NULL;
    int rc = agp_lookup_decode (&lookup, body, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        return;
    }
    if (by_id)
        FUZZ_CHECK (lookup.id == body->via.u64 && lookup.name.ptr == NULL);
    else {
        FUZZ_CHECK (lookup.id == 0);
        s_check_name (lookup.name, data, size);
        FUZZ_CHECK (lookup.name.ptr == body->via.str.ptr
                 && lookup.name.len == body->via.str.size);
    }
}

//  A future reference (PROTOCOL.md 4.10): ext 0x41 whose data is
//  [endpoint: str 1..255 without a zero octet, owner: bin 1..255,
//  corr: uint]. Any other ext is refused.
static void
s_check_ref (const msgpack_object *ext)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    const char *reason = NULL;
    msgpack_object ref;
    bool valid = ext->via.ext.type == AGP_EXT_FUTURE
              && ag_msgpack_unpack (ext->via.ext.ptr, ext->via.ext.size,
                                    &zone, &ref, &reason) == 0
              && ref.type == MSGPACK_OBJECT_ARRAY
              && ref.via.array.size == 3
              && s_is_name (&ref.via.array.ptr [0])
              && ref.via.array.ptr [1].type == MSGPACK_OBJECT_BIN
              && ref.via.array.ptr [1].via.bin.size >= 1
              && ref.via.array.ptr [1].via.bin.size <= 255
              && ref.via.array.ptr [2].type
                 == MSGPACK_OBJECT_POSITIVE_INTEGER;
    agp_ref_t decoded;
    reason = NULL;
    int rc = agp_ref_decode (&decoded, ext, &zone, &reason);
    FUZZ_CHECK (rc == (valid? 0: -1));
    if (rc) {
        FUZZ_CHECK (reason && strlen (reason) > 0);
        msgpack_zone_destroy (&zone);
        return;
    }
    const uint8_t *data = (const uint8_t *) ext->via.ext.ptr;
    size_t size = ext->via.ext.size;
    s_check_name (decoded.endpoint, data, size);
    FUZZ_CHECK (decoded.owner.len >= 1 && decoded.owner.len <= 255);
    FUZZ_CHECK ((const uint8_t *) decoded.owner.ptr >= data
             && (const uint8_t *) decoded.owner.ptr + decoded.owner.len
                <= data + size);
    FUZZ_CHECK (decoded.corr == ref.via.array.ptr [2].via.u64);

    //  Encoded again, it decodes to the same reference
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    FUZZ_CHECK (agp_ref_encode (&packer, &decoded) == 0);
    msgpack_object again;
    FUZZ_CHECK (ag_msgpack_unpack (buffer.data, buffer.size, &zone, &again,
                                   &reason) == 0);
    agp_ref_t back;
    FUZZ_CHECK (agp_ref_decode (&back, &again, &zone, &reason) == 0);
    FUZZ_CHECK (s_same_str (back.endpoint, decoded.endpoint));
    FUZZ_CHECK (s_same_str (back.owner, decoded.owner));
    FUZZ_CHECK (back.corr == decoded.corr);
    msgpack_sbuffer_destroy (&buffer);
    msgpack_zone_destroy (&zone);
}

//  A Msg, as AgentBase and its subclasses check their arguments
static void
s_check_msg (const msgpack_object *body)
{
    char reason [128];
    if (ag_msg_check (body, reason, sizeof reason) == 0) {
        FUZZ_CHECK (body->type == MSGPACK_OBJECT_MAP);
        FUZZ_CHECK (ag_obj_is_str (ag_msg_field (body, "name")));
        FUZZ_CHECK (ag_obj_is_str (ag_msg_field (body, "role")));
        FUZZ_CHECK (ag_msg_field (body, "content"));
    }
    else
        FUZZ_CHECK (strlen (reason) > 0);
}

//  ---------------------------------------------------------------------
//  A body: checks, decodes, and every decoder on what it decodes to

static void
s_check_body (const uint8_t *data, size_t size)
{
    const char *check_reason = NULL;
    int checked = ag_msgpack_check (data, size, &check_reason);
    FUZZ_CHECK (checked == 0 || checked == -1);
    FUZZ_CHECK (checked == 0 || check_reason);
    FUZZ_CHECK (size > 0 || checked == -1);

    //  What passes the check must decode: the check is the only thing
    //  standing between hostile octets and msgpack-c, and the two must
    //  agree on what is well formed
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object object;
    const char *reason = NULL;
    int unpacked = ag_msgpack_unpack (data, size, &zone, &object, &reason);
    FUZZ_CHECK (unpacked == checked);
    FUZZ_CHECK (unpacked == 0 || reason);

    //  An empty body is nil (PROTOCOL.md 2): decoded as the worker does
    if (size == 0) {
        object.type = MSGPACK_OBJECT_NIL;
        unpacked = 0;
    }
    ag_value_t *value = ag_value_decode (data, size);
    FUZZ_CHECK ((value != NULL) == (unpacked == 0));
    void *owned = malloc (size? size: 1);
    FUZZ_CHECK (owned);
    memcpy (owned, data, size);
    ag_value_t *adopted = ag_value_decode_owned (owned, size);
    FUZZ_CHECK ((adopted != NULL) == (unpacked == 0));

    if (unpacked == 0) {
        size_t elements = 0;
        if (size)
            s_walk (&object, data, size, 1, &elements);
        FUZZ_CHECK (s_same_object (ag_value_object (value), &object));
        FUZZ_CHECK (s_same_object (ag_value_object (adopted), &object));
        if (size)
            s_roundtrip_object (&object, size);
        s_check_create (&object, data, size);
        s_check_call (&object, data, size);
        s_check_getattr (&object, data, size);
        s_check_fetch (&object, data, size);
        s_check_lookup (&object, data, size);
        s_check_cancel (&object);
        s_check_msg (&object);
        char *text = ag_value_str (value);
        FUZZ_CHECK (text);
        free (text);
    }
    //  Every decoder refuses nothing at all without harm
    const char *ignored;
    agp_create_t create;
    agp_call_t call;
    agp_str_t attr;
    agp_fetch_t fetch;
    FUZZ_CHECK (agp_create_decode (&create, NULL, &ignored) == -1);
    FUZZ_CHECK (agp_call_decode (&call, NULL, &ignored) == -1);
    FUZZ_CHECK (agp_getattr_decode (&attr, NULL, &ignored) == -1);
    FUZZ_CHECK (agp_fetch_decode (&fetch, NULL, &ignored) == -1);
    agp_ref_t ref;
    FUZZ_CHECK (agp_ref_decode (&ref, NULL, NULL, &ignored) == -1);
    agp_lookup_t lookup;
    FUZZ_CHECK (agp_lookup_decode (&lookup, NULL, &ignored) == -1);
    uint64_t corr;
    FUZZ_CHECK (agp_cancel_decode (&corr, NULL, &ignored) == -1);

    ag_value_destroy (&adopted);
    ag_value_destroy (&value);
    msgpack_zone_destroy (&zone);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv);
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_check_envelope (data, size);
    //  A frame with a full AGP01 envelope carries its body after it
    if (size >= AGP_ENVELOPE_SIZE
    &&  memcmp (data, AGP_SIGNATURE, AGP_SIGNATURE_SIZE) == 0)
        s_check_body (data + AGP_ENVELOPE_SIZE, size - AGP_ENVELOPE_SIZE);
    else
        s_check_body (data, size);
    return 0;
}
