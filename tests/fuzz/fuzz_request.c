/*  =========================================================================
    fuzz_request - libFuzzer harness for the server's request handling

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Runs one agent server in this process (the embeddable API, with the
//  test classes of testclasses.so), bound to an ipc:// endpoint in a
//  fresh temporary directory, and keeps one Counter agent alive on it.
//  Each input is sent as one frame on a DEALER socket. An input of 24
//  octets or more is then sent again with its envelope made valid (the
//  AGP01 signature, a known command, a fresh correlation id) and
//  addressed to the live agent, so that its body reaches the worker's
//  decoding and the method dispatch.
//
//  Where PROTOCOL.md says a reply comes, the harness waits for it (2 s
//  at most) and checks it: one frame, a reply envelope, the command,
//  correlation id and status the spec gives, a body of the right form.
//  A reply the broker owes at once that does not come, a reply nobody
//  asked for, or a broker that no longer answers PING after an input
//  aborts the harness, and libFuzzer keeps the input. Agents an input
//  creates are deleted at once, and the live agent is made again when
//  an input deletes it, so every input meets the same server.
//
//  Future references among a call's or a create's arguments go where
//  the server may fetch: in the input as sent, to endpoints no server
//  here may reach (refused at once); in the patched input, to a fake
//  peer in this process, which answers FETCH with a value, an error,
//  junk, a value that is not msgpack, one over the size limit, or
//  nothing, by the reference's correlation id, and every other one to
//  the server itself (its own store, where the key is unknown). The
//  server waits 300 ms at most for them.
//
//  The plugin is AGENTD_FUZZ_PLUGIN, or else ../plugins/testclasses.so
//  from the directory of the executable.
//  @end

#include "ag_common.h"
#include "fuzz.h"
#include "agentserver.h"
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#define REPLY_MS        2000        //  longest wait for a reply
#define MAX_BODY        1024        //  body limit the server is given
#define MAX_FRAME       (2 * MAX_BODY + 4096)
                                    //  libzmq drops a peer sending more
#define CORR_OWN        0xf0f0000000000000ULL
                                    //  correlation ids of our own requests
#define ROUTING_ID      "Cfuzz-request"
#define LIVE_NAME       "fuzz-live"
#define CHECK_EVERY     1024        //  inputs between server checks
#define MAX_AGENTS      8           //  agents the server may hold then

static agd_server_t *s_server;      //  the server under test
static void *s_dealer;              //  our connection to it
static char s_dir [PATH_MAX];       //  temporary directory of the endpoint
static char s_socket [PATH_MAX];    //  ipc socket file, or empty
static uint64_t s_live;             //  id of the Counter kept alive
static uint64_t s_corr;             //  last of our correlation ids
static size_t s_late;               //  replies that did not come in time
                                    //  and may still arrive
static bool s_unknown_agents;       //  a CREATE's reply never came: an
                                    //  agent may exist that we do not know
static size_t s_inputs;             //  inputs run
static char s_endpoint [PATH_MAX + 16];     //  the server's, as bound
static char s_peer_endpoint [PATH_MAX + 16];    //  the fake peer's
static pthread_t s_peer_thread;
static atomic_bool s_peer_stop;
static atomic_size_t s_peer_fetches;  //  FETCHes the fake peer had
static void *s_peer_ready;          //  PAIR: the peer says it is bound

static void
s_dump (const char *label, const uint8_t *data, size_t size)
{
    fprintf (stderr, "%s (%zu octets):", label, size);
    for (size_t i = 0; i < size && i < 256; i++)
        fprintf (stderr, "%s%02x", i % 24? " ": "\n   ", data [i]);
    fprintf (stderr, "%s\n", size > 256? " ...": "");
}

//  The server broke the protocol: say how, and abort
static void
s_die (const char *why, const uint8_t *request, size_t request_size,
       zmq_msg_t *reply)
{
    fprintf (stderr, "fuzz_request: %s\n", why);
    if (request)
        s_dump ("request", request, request_size);
    if (reply)
        s_dump ("reply", (const uint8_t *) zmq_msg_data (reply),
                zmq_msg_size (reply));
    abort ();
}

static uint64_t
s_next_corr (void)
{
    return CORR_OWN | ++s_corr;
}

//  ---------------------------------------------------------------------
//  What the spec says must come back (PROTOCOL.md sections 3, 4 and 8)

typedef struct {
    bool reply;                     //  a reply must come
    bool prompt;                    //  the broker owes it at once
    uint8_t command;                //  the request's command
    uint8_t reply_command;          //  the reply's command
    uint64_t corr;                  //  its correlation id
    uint64_t agent;                 //  the request's target agent
    int status;                     //  its status, or 0: any allowed one
    const int *allowed;             //  statuses allowed, 0-terminated
    bool agent_zero;                //  its agent field must be 0
} expect_t;

static const int s_call_statuses [] = {
    AG_OK, AG_BAD_REQUEST, AG_NO_METHOD, AG_BAD_ARGS, AG_AGENT_ERROR,
    AG_DEP_FAILED, AG_DEADLINE, 0
};
static const int s_getattr_statuses [] = {
    AG_OK, AG_BAD_REQUEST, AG_NO_ATTR, 0
};
static const int s_list_statuses [] = {
    AG_OK, AG_BAD_REQUEST, 0
};
static const int s_lookup_statuses [] = {
    AG_OK, AG_BAD_REQUEST, AG_NO_AGENT, 0
};
static const int s_cancel_statuses [] = {
    AG_OK, AG_BAD_REQUEST, 0
};
static const int s_cancel_unknown_statuses [] = {
    AG_BAD_REQUEST, AG_NO_AGENT, 0
};
static const int s_create_statuses [] = {
    AG_OK, AG_BAD_REQUEST, AG_NO_CLASS, AG_NAME_TAKEN, AG_BAD_ARGS,
    AG_INIT_FAILED, AG_DEP_FAILED, 0
};

static expect_t
s_expect (const uint8_t *data, size_t size)
{
    expect_t expect = { .reply_command = AGP_PING | AGP_REPLY };
    //  Not AGP at all: dropped
    if (size < 3 || memcmp (data, "AGP", 3) != 0)
        return expect;
    uint64_t corr = size >= 16? fuzz_get_be (data + 8, 8): 0;
    //  Another version: 426
    if (size < AGP_SIGNATURE_SIZE
    ||  memcmp (data, AGP_SIGNATURE, AGP_SIGNATURE_SIZE) != 0) {
        expect.reply = expect.prompt = expect.agent_zero = true;
        expect.corr = corr;
        expect.status = AG_BAD_VERSION;
        return expect;
    }
    //  Too short: 400 if the correlation id is there, else dropped
    if (size < AGP_ENVELOPE_SIZE) {
        expect.reply = expect.prompt = expect.agent_zero = corr != 0;
        expect.corr = corr;
        expect.status = AG_BAD_REQUEST;
        return expect;
    }
    uint8_t command = data [5];
    int base = command & ~AGP_REPLY;
    expect.corr = corr;
    if (base < AGP_PING || base > AGP_CANCEL) {
        //  Unknown command: 400 if the correlation id is not 0
        expect.reply = expect.prompt = corr != 0;
        expect.status = AG_BAD_REQUEST;
        return expect;
    }
    expect.reply = true;
    expect.reply_command = command | AGP_REPLY;
    if (command & AGP_REPLY) {
        //  A reply sent as a request: 400, with its command as sent
        expect.prompt = true;
        expect.status = AG_BAD_REQUEST;
        return expect;
    }
    expect.command = command;
    expect.agent = fuzz_get_be (data + 16, 8);
    if (size - AGP_ENVELOPE_SIZE > MAX_BODY) {
        expect.prompt = true;
        expect.status = AG_TOO_LARGE;
        return expect;
    }
    switch (command) {
        case AGP_PING:
            expect.agent_zero = true;
            //  fall through
        case AGP_INFO:
            expect.prompt = true;
            expect.status = AG_OK;
            break;
        case AGP_LIST:
            //  A body other than nil or {after, limit} is refused
            expect.prompt = true;
            if (size == AGP_ENVELOPE_SIZE)
                expect.status = AG_OK;
            else
                expect.allowed = s_list_statuses;
            break;
        case AGP_CREATE:
            expect.allowed = s_create_statuses;
            break;
        case AGP_FETCH:
            //  Answered when the kept call completes: maybe later
            break;
        case AGP_LOOKUP:
            expect.prompt = true;
            expect.allowed = s_lookup_statuses;
            break;
        case AGP_CANCEL:
            //  The body is checked first, then the agent
            if (expect.agent == s_live) {
                expect.prompt = true;
                expect.allowed = s_cancel_statuses;
            }
            else
            if (!s_unknown_agents) {
                expect.prompt = true;
                expect.allowed = s_cancel_unknown_statuses;
            }
            break;
        default:
            if (expect.agent == s_live) {
                if (command == AGP_DELETE) {
                    expect.prompt = true;
                    expect.status = AG_OK;
                }
                else
                    expect.allowed = command == AGP_CALL? s_call_statuses
                                                        : s_getattr_statuses;
            }
            else
            if (!s_unknown_agents) {
                expect.prompt = true;
                expect.status = AG_NO_AGENT;
            }
            break;
    }
    return expect;
}

//  ---------------------------------------------------------------------
//  Replies

//  A body is one msgpack object within the limits, or nothing; an error
//  reason is a str of at most 1024 octets (PROTOCOL.md 5). Returns what
//  is wrong, or NULL.
static const char *
s_check_body (int status, const uint8_t *body, size_t size)
{
    if (size == 0)
        return status >= 300? "error reply without a reason": NULL;
    if (ag_msgpack_check (body, size, NULL))
        return "reply body is not one valid msgpack object";
    if (status < 300)
        return NULL;
    uint8_t tag = body [0];
    size_t len = SIZE_MAX;
    if (tag >= 0xa0 && tag <= 0xbf)
        len = tag & 0x1f;
    else
    if (tag == 0xd9 || tag == 0xda || tag == 0xdb)
        len = size - 1 - (tag == 0xd9? 1: tag == 0xda? 2: 4);
    if (len == SIZE_MAX)
        return "error reason is not a str";
    if (len > 1024)
        return "error reason longer than 1024 octets";
    return NULL;
}

//  What is wrong with a 200 body for its command, or NULL
static const char *
s_check_ok_body (int command, const agp_envelope_t *env, const uint8_t *body,
                 size_t size)
{
    if (command == AGP_DELETE)
        return size? "reply body should be empty": NULL;
    if (command == AGP_CANCEL) {
        //  "queued", "running", or nil
        bool nil = size == 1 && body [0] == 0xc0;
        bool queued = size == 7 && memcmp (body, "\xa6queued", 7) == 0;
        bool running = size == 8 && memcmp (body, "\xa7running", 8) == 0;
        return nil || queued || running? NULL
             : "CANCEL reply is not \"queued\", \"running\" or nil";
    }
    if (command != AGP_INFO && command != AGP_LIST && command != AGP_CREATE
    &&  command != AGP_LOOKUP && command != AGP_PING)
        return NULL;
    ag_value_t *value = ag_value_decode (body, size);
    const msgpack_object *root = ag_value_object (value);
    const char *why = NULL;
    if (command == AGP_PING) {
        const msgpack_object *id = ag_obj_get (root, "instance");
        if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size != 16)
            why = "PING reply has no instance id of 16 digits";
    }
    else
    if (command == AGP_INFO) {
        if (!ag_obj_streq (ag_obj_get (root, "protocol"), AGP_SIGNATURE))
            why = "INFO reply has no protocol AGP01";
    }
    else
    if (command == AGP_LIST) {
        if (!root || root->type != MSGPACK_OBJECT_ARRAY)
            why = "LIST reply is not an array";
    }
    else {
        const msgpack_object *id = ag_obj_get (root, "id");
        if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER
        ||  id->via.u64 != env->agent || env->agent == 0)
            why = "CREATE or LOOKUP reply id missing, or not the"
                  " envelope's agent";
        else
        if (!ag_obj_get (root, "class"))
            why = "CREATE or LOOKUP reply has no class face";
    }
    ag_value_destroy (&value);
    return why;
}

//  Check a reply against what was expected; returns its status
static int
s_check_reply (const expect_t *expect, const uint8_t *request,
               size_t request_size, zmq_msg_t *reply)
{
    const uint8_t *data = (const uint8_t *) zmq_msg_data (reply);
    size_t size = zmq_msg_size (reply);
    agp_envelope_t env;
    const char *why = NULL;
    FUZZ_CHECK (agp_envelope_decode (&env, data, size) == 0);
    int status = env.word;
    if (env.command != expect->reply_command)
        why = "reply has the wrong command";
    else
    if (status < 200 || status >= AG_UNREACHABLE || status == AG_PENDING)
        why = "reply status is not one the wire may carry";
    else
    if (expect->status && status != expect->status)
        why = "reply status is not the one the spec gives";
    else
    if (expect->agent_zero && env.agent != 0)
        why = "reply agent field is not 0";
    else
        why = s_check_body (status, data + AGP_ENVELOPE_SIZE,
                            size - AGP_ENVELOPE_SIZE);
    if (!why && expect->allowed) {
        why = "reply status is not one this request can get";
        for (const int *allowed = expect->allowed; *allowed; allowed++)
            if (status == *allowed)
                why = NULL;
    }
    if (!why && status == AG_OK)
        why = s_check_ok_body (expect->command, &env,
                               data + AGP_ENVELOPE_SIZE,
                               size - AGP_ENVELOPE_SIZE);
    if (why) {
        fprintf (stderr, "fuzz_request: status %d, expected %d\n", status,
                 expect->status);
        s_die (why, request, request_size, reply);
    }
    return status;
}

//  Wait for the reply with this correlation id. Replies to requests
//  that timed out earlier are dropped on the way; any other reply is
//  one nobody asked for. Returns 0, or -1 if none came in time.
static int
s_wait (uint64_t corr, zmq_msg_t *reply, int msecs)
{
    int64_t deadline = zclock_mono () + msecs;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = { s_dealer, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) left);
        if (rc == -1 && zmq_errno () == EINTR)
            continue;
        FUZZ_CHECK (rc >= 0);
        if (rc == 0)
            continue;
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        FUZZ_CHECK (zmq_msg_recv (&msg, s_dealer, ZMQ_DONTWAIT) >= 0);
        if (zmq_msg_more (&msg))
            s_die ("reply of more than one frame", NULL, 0, &msg);
        agp_envelope_t env;
        if (agp_envelope_decode (&env, zmq_msg_data (&msg),
                                 zmq_msg_size (&msg)) != 0
        ||  !(env.command & AGP_REPLY))
            s_die ("reply without a valid reply envelope", NULL, 0, &msg);
        if (env.corr == corr) {
            zmq_msg_move (reply, &msg);
            zmq_msg_close (&msg);
            return 0;
        }
        if (s_late == 0)
            s_die ("reply that no request is waiting for", NULL, 0, &msg);
        s_late--;
        zmq_msg_close (&msg);
    }
}

static void
s_send (const void *frame, size_t size)
{
    if (zmq_send (s_dealer, frame, size, 0) != (int) size) {
        fprintf (stderr, "fuzz_request: cannot send: %s\n",
                 zmq_strerror (zmq_errno ()));
        abort ();
    }
}

//  ---------------------------------------------------------------------
//  Our own requests

//  Send a request of ours, and return its checked reply's status; the
//  reply, if wanted, in reply (the caller closes it)
static int
s_own (uint8_t command, uint64_t agent, const void *body, size_t body_size,
       zmq_msg_t *reply)
{
    uint8_t frame [AGP_ENVELOPE_SIZE + 256];
    FUZZ_CHECK (body_size <= sizeof frame - AGP_ENVELOPE_SIZE);
    agp_envelope_t env = {
        .command = command, .corr = s_next_corr (), .agent = agent
    };
    agp_envelope_encode (&env, frame);
    if (body_size)
        memcpy (frame + AGP_ENVELOPE_SIZE, body, body_size);
    size_t size = AGP_ENVELOPE_SIZE + body_size;
    expect_t expect = s_expect (frame, size);
    if (command == AGP_DELETE) {
        //  We delete only agents that exist
        expect.prompt = true;
        expect.status = AG_OK;
    }
    s_send (frame, size);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (s_wait (env.corr, &msg, REPLY_MS)) {
        fprintf (stderr, "fuzz_request: no reply to our %s\n",
                 agp_command_name (command));
        s_die ("the server stopped answering", frame, size, NULL);
    }
    int status = s_check_reply (&expect, frame, size, &msg);
    if (reply)
        zmq_msg_move (reply, &msg);
    zmq_msg_close (&msg);
    return status;
}

//  The broker must answer PING, whatever its agents are doing
static void
s_ping (void)
{
    s_own (AGP_PING, 0, NULL, 0, NULL);
}

//  Make the live Counter agent
static void
s_create_live (void)
{
    ag_value_t *body = ag_value_new ("{s:s, s:s, s:{s:i, s:s}}",
                                     "class", "Counter", "name", LIVE_NAME,
                                     "args", "start", (int64_t) 0,
                                     "label", "live");
    FUZZ_CHECK (body);
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    int status = s_own (AGP_CREATE, 0, ag_value_data (body),
                        ag_value_size (body), &reply);
    if (status != AG_OK)
        s_die ("cannot create the live agent", NULL, 0, &reply);
    agp_envelope_t env;
    agp_envelope_decode (&env, zmq_msg_data (&reply), zmq_msg_size (&reply));
    s_live = env.agent;
    zmq_msg_close (&reply);
    ag_value_destroy (&body);
}

//  The server holds what it should: the live agent runs one call at a
//  time, and agents the inputs created are gone
static void
s_check_server (void)
{
    static const char overlaps [] = "\xa8" "overlaps";
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    if (s_own (AGP_GETATTR, s_live, overlaps, sizeof overlaps - 1,
               &reply) == AG_OK) {
        ag_value_t *value = ag_value_decode (agp_msg_body (&reply),
                                             agp_msg_body_size (&reply));
        if (ag_obj_int (ag_value_object (value), -1) != 0)
            s_die ("two calls ran on the live agent at once", NULL, 0,
                   &reply);
        ag_value_destroy (&value);
    }
    zmq_msg_close (&reply);
    if (s_unknown_agents)
        return;
    zmq_msg_init (&reply);
    s_own (AGP_INFO, 0, NULL, 0, &reply);
    ag_value_t *info = ag_value_decode (agp_msg_body (&reply),
                                        agp_msg_body_size (&reply));
    int64_t agents = ag_obj_int (ag_obj_get (ag_value_object (info),
                                             "agents"), -1);
    if (agents < 1 || agents > MAX_AGENTS) {
        fprintf (stderr, "fuzz_request: INFO says %" PRId64 " agents\n",
                 agents);
        s_die ("the server holds agents it should not", NULL, 0, &reply);
    }
    ag_value_destroy (&info);
    zmq_msg_close (&reply);
}

//  ---------------------------------------------------------------------
//  Inputs

//  True if the object holds a future reference (msgpack ext 0x41)
static bool
s_has_future (const msgpack_object *o)
{
    if (!o)
        return false;
    if (o->type == MSGPACK_OBJECT_EXT)
        return o->via.ext.type == AGP_EXT_FUTURE;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_has_future (&o->via.array.ptr [i]))
                return true;
    if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (s_has_future (&o->via.map.ptr [i].key)
            ||  s_has_future (&o->via.map.ptr [i].val))
                return true;
    return false;
}

//  Calls not made: the test classes can sleep for up to a minute (nap,
//  slow) or build results of 16 MiB (blob), and one such call would
//  hold the live agent, and every input after it. Nor well-formed
//  FETCHes, which wait for their call.
static bool
s_skipped (const uint8_t *frame, size_t size)
{
    if (size <= AGP_ENVELOPE_SIZE
    ||  (frame [5] != AGP_CALL && frame [5] != AGP_FETCH))
        return false;
    bool skip = false;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object body;
    const char *reason;
    agp_call_t call;
    agp_fetch_t fetch;
    if (frame [5] == AGP_FETCH)
        //  A well-formed FETCH of a call never made waits 2 s for it
        skip = ag_msgpack_unpack (frame + AGP_ENVELOPE_SIZE,
                                  size - AGP_ENVELOPE_SIZE, &zone, &body,
                                  &reason) == 0
            && agp_fetch_decode (&fetch, &body, &reason) == 0;
    else
    if (frame [5] == AGP_CALL
    &&  ag_msgpack_unpack (frame + AGP_ENVELOPE_SIZE,
                           size - AGP_ENVELOPE_SIZE, &zone, &body,
                           &reason) == 0
    &&  agp_call_decode (&call, &body, &reason) == 0) {
        const char *method = call.method.ptr;
        size_t len = call.method.len;
        if ((len == 3 && memcmp (method, "nap", 3) == 0)
        ||  (len == 4 && memcmp (method, "slow", 4) == 0))
            skip = ag_obj_int (ag_obj_get (call.args, "ms"), 0) > 10;
        else
        if (len == 4 && memcmp (method, "blob", 4) == 0)
            skip = ag_obj_int (ag_obj_get (call.args, "size"), 0) > 65536;
    }
    msgpack_zone_destroy (&zone);
    return skip;
}

//  Send one frame, check what comes back, and put the server back as it
//  was: an agent it created is deleted, the live agent made again
static void
s_request (const uint8_t *frame, size_t size)
{
    if (s_skipped (frame, size))
        return;
    expect_t expect = s_expect (frame, size);
    s_send (frame, size);
    if (!expect.reply)
        return;
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    if (s_wait (expect.corr, &reply, REPLY_MS)) {
        if (expect.prompt)
            s_die ("no reply in time to a request the broker answers"
                   " at once", frame, size, NULL);
        //  An agent's code may take its time; the PING that follows
        //  tells whether the server is still there
        s_late++;
        if (expect.command == AGP_CREATE)
            s_unknown_agents = true;
        zmq_msg_close (&reply);
        return;
    }
    int status = s_check_reply (&expect, frame, size, &reply);
    agp_envelope_t env;
    agp_envelope_decode (&env, zmq_msg_data (&reply), zmq_msg_size (&reply));
    zmq_msg_close (&reply);
    if (status != AG_OK)
        return;
    if (expect.command == AGP_CREATE
    &&  s_own (AGP_DELETE, env.agent, NULL, 0, NULL) != AG_OK)
        s_die ("cannot delete an agent just created", frame, size, NULL);
    if (expect.command == AGP_DELETE && expect.agent == s_live)
        s_create_live ();
}

//  Pack o with every well-formed future reference in it pointing at the
//  fake peer or, every other one, the server itself; what is not a
//  reference, or not a well-formed one, as it was
static void
s_pack_rewritten (msgpack_packer *pk, const msgpack_object *o,
                  msgpack_zone *zone, size_t *refs)
{
    if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == AGP_EXT_FUTURE) {
        agp_ref_t ref;
        const char *reason;
        if (agp_ref_decode (&ref, o, zone, &reason) == 0) {
            const char *endpoint = (*refs)++ % 2? s_endpoint
                                                : s_peer_endpoint;
            ref.endpoint.ptr = endpoint;
            ref.endpoint.len = strlen (endpoint);
            agp_ref_encode (pk, &ref);
            return;
        }
    }
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_array (pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_pack_rewritten (pk, &o->via.array.ptr [i], zone, refs);
    }
    else
    if (o->type == MSGPACK_OBJECT_MAP) {
        msgpack_pack_map (pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            s_pack_rewritten (pk, &o->via.map.ptr [i].key, zone, refs);
            s_pack_rewritten (pk, &o->via.map.ptr [i].val, zone, refs);
        }
    }
    else
        msgpack_pack_object (pk, *o);
}

//  The input with a valid envelope, to the live agent: octet 5 picks the
//  command, octets 6-7 may set KEEP, and the body is the input's, with
//  its future references pointed where the server may fetch. Returns
//  the frame's size.
static size_t
s_patch (const uint8_t *data, size_t size, uint8_t *frame)
{
    memcpy (frame, data, size);
    agp_envelope_t env = {
        .command = (uint8_t) (((data [5] - 1) & 7) + 1),
        .word = (uint16_t) (data [7] & AGP_FLAG_KEEP),
        .corr = s_next_corr (),
        .agent = s_live
    };
    agp_envelope_encode (&env, frame);
    if (env.command != AGP_CALL && env.command != AGP_CREATE)
        return size;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object body;
    const char *reason;
    if (ag_msgpack_unpack (data + AGP_ENVELOPE_SIZE, size - AGP_ENVELOPE_SIZE,
                           &zone, &body, &reason) == 0
    &&  s_has_future (&body)) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        size_t refs = 0;
        s_pack_rewritten (&packer, &body, &zone, &refs);
        if (AGP_ENVELOPE_SIZE + buffer.size <= MAX_FRAME) {
            memcpy (frame + AGP_ENVELOPE_SIZE, buffer.data, buffer.size);
            size = AGP_ENVELOPE_SIZE + buffer.size;
        }
        msgpack_sbuffer_destroy (&buffer);
    }
    msgpack_zone_destroy (&zone);
    return size;
}

//  ---------------------------------------------------------------------
//  The fake peer: a server the futures of patched inputs are fetched
//  from, which answers as a hostile one might

static void
s_peer_answer (void *socket, zmq_msg_t *routing, const agp_envelope_t *env,
               int status, const void *body, size_t size)
{
    agp_envelope_t reply = {
        .command = (uint8_t) (env->command | AGP_REPLY),
        .word = (uint16_t) status, .corr = env->corr
    };
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, routing);
    agp_send (socket, &copy, &reply, body, size, NULL, ZMQ_DONTWAIT);
    zmq_msg_close (&copy);
}

static void *
s_peer_main (void *arg)
{
    void *socket = zmq_socket (zsys_init (), ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
    const char *bind = (const char *) arg;
    int rc = zmq_bind (socket, bind);
    size_t size = sizeof s_peer_endpoint;
    zmq_getsockopt (socket, ZMQ_LAST_ENDPOINT, s_peer_endpoint, &size);
    void *ready = zmq_socket (zsys_init (), ZMQ_PAIR);
    zmq_connect (ready, "inproc://fuzz-peer-ready");
    zmq_send (ready, rc? "x": "", rc? 1: 0, 0);
    zmq_close (ready);
    //  Every FETCH gets one of six answers, by the reference's corr
    static uint8_t big [MAX_BODY + 16];
    big [0] = 0xc6;                 //  bin 32, MAX_BODY + 10 octets
    big [3] = (uint8_t) ((MAX_BODY + 10) >> 8);
    big [4] = (uint8_t) (MAX_BODY + 10);
    while (!rc && !atomic_load (&s_peer_stop)) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        zmq_msg_t routing, frame;
        zmq_msg_init (&routing);
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&routing, socket, 0) == -1
        ||  !zmq_msg_more (&routing)
        ||  zmq_msg_recv (&frame, socket, 0) == -1) {
            zmq_msg_close (&routing);
            zmq_msg_close (&frame);
            continue;
        }
        agp_envelope_t env;
        if (agp_envelope_decode (&env, zmq_msg_data (&frame),
                                 zmq_msg_size (&frame)) == 0) {
            if (env.command == AGP_PING) {
                static const uint8_t pong [] = "\x81\xa8" "instance"
                                               "\xb0" "f0f0f0f0f0f0f0f0";
                s_peer_answer (socket, &routing, &env, AG_OK, pong,
                               sizeof pong - 1);
            }
            else
            if (env.command == AGP_FETCH) {
                ag_value_t *body = ag_value_decode (agp_msg_body (&frame),
                                                    agp_msg_body_size (&frame));
                const msgpack_object *key = ag_value_object (body);
                uint64_t corr = key && key->type == MSGPACK_OBJECT_ARRAY
                             && key->via.array.size == 2
                              ? (uint64_t) ag_obj_int (&key->via.array.ptr [1],
                                                       0): 0;
                ag_value_destroy (&body);
                atomic_fetch_add (&s_peer_fetches, 1);
                switch (corr % 6) {
                    case 0:
                        s_peer_answer (socket, &routing, &env, AG_OK,
                                       "\x2a", 1);
                        break;
                    case 1:
                        s_peer_answer (socket, &routing, &env, AG_BAD_ARGS,
                                       "\xa4nope", 5);
                        break;
                    case 2: {
                        zmq_msg_t copy;
                        zmq_msg_init (&copy);
                        zmq_msg_copy (&copy, &routing);
                        zmq_msg_send (&copy, socket, ZMQ_SNDMORE);
                        zmq_send (socket, "junk", 4, ZMQ_DONTWAIT);
                        break;
                    }
                    case 3:
                        break;      //  nothing: the server's deadline
                    case 4:
                        s_peer_answer (socket, &routing, &env, AG_OK,
                                       "\xc1", 1);
                        break;
                    default:
                        s_peer_answer (socket, &routing, &env, AG_OK, big,
                                       MAX_BODY + 15);
                        break;
                }
            }
        }
        zmq_msg_close (&routing);
        zmq_msg_close (&frame);
    }
    zmq_close (socket);
    return NULL;
}

//  On loopback tcp: the server connects to it only when an input first
//  needs it, and no socket file is left if the harness dies
static void
s_peer_start (void)
{
    static char bind [] = "tcp://127.0.0.1:*";
    s_peer_ready = zmq_socket (zsys_init (), ZMQ_PAIR);
    FUZZ_CHECK (zmq_bind (s_peer_ready, "inproc://fuzz-peer-ready") == 0);
    FUZZ_CHECK (pthread_create (&s_peer_thread, NULL, s_peer_main, bind)
                == 0);
    char answer [4];
    FUZZ_CHECK (zmq_recv (s_peer_ready, answer, sizeof answer, 0) == 0);
    zmq_close (s_peer_ready);
}

//  ---------------------------------------------------------------------
//  libFuzzer entry points

static void
s_cleanup (void)
{
    if (s_dealer) {
        zmq_close (s_dealer);
        s_dealer = NULL;
    }
    agd_server_destroy (&s_server);
    if (*s_peer_endpoint) {
        atomic_store (&s_peer_stop, true);
        pthread_join (s_peer_thread, NULL);
        *s_peer_endpoint = 0;
        fprintf (stderr, "fuzz_request: the fake peer had %zu fetches\n",
                 atomic_load (&s_peer_fetches));
    }
    if (*s_socket)
        unlink (s_socket);
    if (*s_dir)
        rmdir (s_dir);
}

static void
s_plugin_path (char *path, size_t size, const char *argv0)
{
    const char *given = getenv ("AGENTD_FUZZ_PLUGIN");
    if (given && *given) {
        snprintf (path, size, "%s", given);
        return;
    }
    char exe [PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0)
        exe [len] = 0;
    else
        snprintf (exe, sizeof exe, "%s", argv0);
    snprintf (path, size, "%s/../plugins/testclasses.so", dirname (exe));
}

int
LLVMFuzzerInitialize (int *argc, char ***argv);
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    char plugin [PATH_MAX];
    s_plugin_path (plugin, sizeof plugin, (*argv) [0]);

    //  An ipc endpoint in a directory of our own; tcp on loopback, any
    //  port, if the path would be too long for a socket address
    const char *tmp = getenv ("TMPDIR");
    snprintf (s_dir, sizeof s_dir, "%s/agentd-fuzz-XXXXXX",
              tmp && *tmp? tmp: "/tmp");
    if (!mkdtemp (s_dir)) {
        fprintf (stderr, "fuzz_request: cannot make %s: %s\n", s_dir,
                 strerror (errno));
        exit (1);
    }
    char endpoint [PATH_MAX + 16];
    snprintf (s_socket, sizeof s_socket, "%s/agentd", s_dir);
    if (strlen (s_socket) < 100)
        snprintf (endpoint, sizeof endpoint, "ipc://%s", s_socket);
    else {
        *s_socket = 0;
        snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:*");
    }

    //  The peer first: the server is told it may fetch from it
    s_peer_start ();
    s_server = agd_server_new ();
    FUZZ_CHECK (s_server);
    FUZZ_CHECK (agd_server_allow_peer (s_server, s_peer_endpoint) == 0);
    agd_server_set_future_timeout (s_server, 300);
    agd_server_set_log_level (s_server, AGD_LOG_ERROR);
    agd_server_set_threads (s_server, 2, 16);
    agd_server_set_grace (s_server, 1000);
    agd_server_set_retention (s_server, 10000, 256);
    agd_server_set_max_message (s_server, MAX_BODY);
    //  AGENTD_FUZZ_ISOLATION=process: the plugin's agents live in host
    //  processes ($AGENTD), and what the broker does for them (futures
    //  resolved and put in place, replies read from hosts) meets the
    //  inputs too
    const char *isolation = getenv ("AGENTD_FUZZ_ISOLATION");
    if (isolation && agd_server_set_isolation (s_server, isolation)) {
        fprintf (stderr, "fuzz_request: %s\n", agd_server_error (s_server));
        exit (1);
    }
    if (agd_server_load_plugin (s_server, plugin)
    ||  agd_server_bind (s_server, endpoint)
    ||  agd_server_start (s_server)) {
        fprintf (stderr, "fuzz_request: %s\n", agd_server_error (s_server));
        agd_server_destroy (&s_server);
        rmdir (s_dir);
        exit (1);
    }
    //  Connect to the endpoint as bound (the real port, for tcp)
    snprintf (endpoint, sizeof endpoint, "%s",
              agd_server_endpoint (s_server, 0));
    snprintf (s_endpoint, sizeof s_endpoint, "%s", endpoint);
    s_dealer = zmq_socket (zsys_init (), ZMQ_DEALER);
    FUZZ_CHECK (s_dealer);
    int zero = 0, timeout = REPLY_MS;
    zmq_setsockopt (s_dealer, ZMQ_ROUTING_ID, ROUTING_ID,
                    strlen (ROUTING_ID));
    zmq_setsockopt (s_dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (s_dealer, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    FUZZ_CHECK (zmq_connect (s_dealer, endpoint) == 0);
    atexit (s_cleanup);
    s_create_live ();
    //  Connected, and answered: the socket file and its directory can
    //  go now, so that nothing is left behind even when the harness dies
    //  without running its exit handlers
    if (*s_socket) {
        unlink (s_socket);
        rmdir (s_dir);
        *s_socket = *s_dir = 0;
    }
    fprintf (stderr, "fuzz_request: server at %s, plugin %s, agent %" PRIu64
             "\n", endpoint, plugin, s_live);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A frame over libzmq's cap closes the connection: nothing to see
    if (size > MAX_FRAME)
        return -1;
    s_request (data, size);
    if (size >= AGP_ENVELOPE_SIZE) {
        uint8_t frame [MAX_FRAME];
        s_request (frame, s_patch (data, size, frame));
    }
    if (++s_inputs % CHECK_EVERY == 0)
        s_check_server ();
    s_ping ();
    return 0;
}
