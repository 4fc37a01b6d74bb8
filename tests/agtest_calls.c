/*  =========================================================================
    agtest_calls - agents, calls, lists, and what the wire refuses

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agtest.h"

//  Cases. Each gets an endpoint of a shared agentd started for the run.

int
agt_test_lifecycle (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    CHECK (conn);
    agc_agent_t *agent = agt_counter (conn, 5);
    CHECK (agent);
    CHECK (agc_agent_id (agent) > 0);
    CHECK (streq (agc_agent_class (agent), "Counter"));
    CHECK (!agc_agent_is_async (agent, "add"));
    CHECK (agc_agent_is_async (agent, "slow"));

    ag_value_t *three = ag_value_new ("i", (int64_t) 3);
    agc_future_t *future = agc_agent_call (agent, "add", three);
    //  A sync call has run by the time it returns
    CHECK (agc_future_ready (future));
    CHECK (agc_future_status (future) == AG_OK);
    CHECK (agt_int_result (future) == 8);
    agc_future_destroy (&future);
    ag_value_destroy (&three);

    ag_value_t *count = agc_agent_getattr (agent, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 8);
    ag_value_destroy (&count);
    ag_value_t *label = agc_agent_getattr (agent, "label");
    CHECK (ag_obj_streq (ag_value_object (label), "c"));
    ag_value_destroy (&label);

    //  Two agents of one class keep separate state
    agc_agent_t *other = agt_counter (conn, 100);
    CHECK (other && agc_agent_id (other) != agc_agent_id (agent));
    count = agc_agent_getattr (other, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 100);
    ag_value_destroy (&count);

    //  The server lists both
    ag_value_t *list = agc_conn_list (conn);
    CHECK (list && ag_obj_count (ag_value_object (list)) >= 2);
    ag_value_destroy (&list);

    //  After delete, the id is gone for good
    uint64_t id = agc_agent_id (agent);
    agc_future_t *late = agc_conn_request (conn, AGP_GETATTR, id, 0,
                                           "\xa5" "count", 6);
    CHECK (agc_agent_destroy (&agent) == 0);
    CHECK (agent == NULL);
    CHECK (agc_future_wait (late, 5000) == 0);
    //  Sent before the delete: it had run, or it is cancelled
    CHECK (agc_future_status (late) == AG_OK
        || agc_future_status (late) == AG_CANCELLED);
    agc_future_destroy (&late);
    late = agc_conn_roundtrip (conn, AGP_GETATTR, id, "\xa5" "count", 6);
    CHECK (agc_future_status (late) == AG_NO_AGENT);
    CHECK (strstr (agc_future_reason (late), "no agent"));
    agc_future_destroy (&late);
    //  A confirmed delete reports an agent already gone
    agc_agent_t *twin = agt_counter (conn, 0);
    agc_agent_t *again = agc_agent_attach (conn, agc_agent_id (twin));
    CHECK (twin && again);
    CHECK (agc_agent_delete (&twin) == 0);
    CHECK (twin == NULL);
    CHECK (agc_agent_delete (&again) == -1);
    CHECK (agc_status () == AG_NO_AGENT);
    CHECK (again == NULL);
    //  Deletes sent just before their connection closes still arrive:
    //  another connection sees the agents go
    agc_conn_t *conn2 = agc_conn_new (endpoint);
    agc_conn_t *brief = agc_conn_new (endpoint);
    agc_agent_t *doomed [500];
    for (int i = 0; i < 500; i++) {
        doomed [i] = agt_counter (brief, 0);
        CHECK (doomed [i]);
    }
    int64_t first_id = (int64_t) agc_agent_id (doomed [0]);
    uint64_t last_id = agc_agent_id (doomed [499]);
    for (int i = 0; i < 500; i++)
        CHECK (agc_agent_destroy (&doomed [i]) == 0);
    agc_conn_destroy (&brief);
    int64_t deadline = ag_usecs () + 10000000LL * agt_slow;
    agc_agent_t *seen;
    while ((seen = agc_agent_attach (conn2, last_id))
    &&     ag_usecs () < deadline)
        agc_agent_release (&seen);
    if (agt_verbose && seen)
        printf ("   agent %" PRIu64 " still there after %.1f s\n", last_id,
                tl_seconds_since (deadline - 10000000LL * agt_slow));
    else
    if (agt_verbose && agc_status () != AG_NO_AGENT)
        printf ("   attach failed: %d %s\n", agc_status (), agc_reason ());
    CHECK (seen == NULL && agc_status () == AG_NO_AGENT);
    ag_value_t *left = agc_conn_list (conn2);
    const msgpack_object *agents = ag_value_object (left);
    if (agt_verbose && !agents)
        printf ("   list failed: %d %s\n", agc_status (), agc_reason ());
    CHECK (agents);
    for (size_t i = 0; i < ag_obj_count (agents); i++) {
        int64_t listed = ag_obj_int (ag_obj_get (ag_obj_at (agents, i), "id"),
                                     0);
        CHECK (listed < first_id || listed > (int64_t) last_id);
    }
    ag_value_destroy (&left);

    //  Futures keep their connection open: one resolved before the last
    //  handle went, and one still pending then, which still completes
    agc_agent_t *sleeper = agt_counter (conn2, 0);
    ag_value_t *nap = ag_value_new ("[s, {s:i}]", "slow", "ms", (int64_t) 500);
    agc_future_t *done = agc_agent_call (other, "add", NULL);
    agc_future_t *pending = agc_conn_request (conn, AGP_CALL,
        agc_agent_id (sleeper), 0, ag_value_data (nap), ag_value_size (nap));
    ag_value_destroy (&nap);
    CHECK (agc_agent_destroy (&other) == 0);
    agc_conn_destroy (&conn);
    CHECK (agc_future_ready (done));
    CHECK (agc_future_status (done) == AG_BAD_ARGS);
    CHECK (agc_future_wait (pending, 10000 * agt_slow) == 0);
    CHECK (agc_future_status (pending) == AG_OK);
    agc_agent_destroy (&sleeper);
    agc_conn_destroy (&conn2);
    agc_future_destroy (&done);
    agc_future_destroy (&pending);
    return 0;
}

//  LIST comes in pages of at most 1000 agents, in ascending id order,
//  each after the id the client names; the client library joins them
int
agt_test_list_pages (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    int total = agt_valgrind? 1200: 2345;
    agc_agent_t **agents = (agc_agent_t **) calloc ((size_t) total,
                                                    sizeof *agents);
    CHECK (agents);
    for (int i = 0; i < total; i++)
        CHECK ((agents [i] = agt_counter (conn, i)));
    ag_value_t *all = agc_conn_list (conn);
    CHECK (all);
    const msgpack_object *items = ag_value_object (all);
    CHECK (items->type == MSGPACK_OBJECT_ARRAY
        && items->via.array.size == (uint32_t) total);
    for (int i = 0; i < total; i++)
        CHECK (ag_obj_int (ag_obj_get (&items->via.array.ptr [i], "id"), 0)
               == (int64_t) agc_agent_id (agents [i]));
    ag_value_destroy (&all);
    //  A page: at most 1000, after an id, and the next after one gone
    ag_value_t *page = agc_conn_list_page (conn, 0, 5000);
    CHECK (page && ag_value_object (page)->via.array.size == 1000);
    ag_value_destroy (&page);
    uint64_t gone = agc_agent_id (agents [10]);
    agc_agent_delete (&agents [10]);
    page = agc_conn_list_page (conn, gone, 3);
    CHECK (page && ag_value_object (page)->via.array.size == 3);
    CHECK (ag_obj_int (ag_obj_get (&ag_value_object (page)->via.array.ptr [0],
                                   "id"), 0)
           == (int64_t) agc_agent_id (agents [11]));
    ag_value_destroy (&page);
    page = agc_conn_list_page (conn, agc_agent_id (agents [total - 1]), 10);
    CHECK (page && ag_value_object (page)->via.array.size == 0);
    ag_value_destroy (&page);
    //  A body that is not {after, limit}: 400
    const char *bad [] = { "\x93\x01\x02\x03", "\x81\xa5" "limit" "\x00",
                           "\x81\xa5" "after" "\xa1" "x", NULL };
    size_t bad_size [] = { 4, 8, 9 };
    for (int i = 0; bad [i]; i++) {
        agc_future_t *refused = agc_conn_request (conn, AGP_LIST, 0, 0,
                                                  bad [i], bad_size [i]);
        CHECK (agc_future_wait (refused, 5000 * agt_slow) == 0);
        CHECK (agc_future_status (refused) == AG_BAD_REQUEST);
        CHECK (strstr (agc_future_reason (refused), "LIST:"));
        agc_future_destroy (&refused);
    }
    for (int i = 0; i < total; i++)
        agc_agent_destroy (&agents [i]);
    free (agents);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

int
agt_test_seed_example (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *example = agc_agent_new (conn, "Example", NULL, NULL);
    CHECK (example);
    int64_t start = ag_usecs ();
    agc_future_t *sync = agc_agent_call (example, "sync_method", NULL);
    double sync_cost = tl_seconds_since (start);
    CHECK (agc_future_ready (sync));
    CHECK (ag_obj_streq (ag_value_object (agc_future_value (sync)), "sync"));
    CHECK (sync_cost >= 0.99 && sync_cost < 3.0 * agt_slow);

    start = ag_usecs ();
    agc_future_t *async = agc_agent_call (example, "async_method", NULL);
    double async_cost = tl_seconds_since (start);
    CHECK (async_cost < 0.5 * agt_slow);
    CHECK (!agc_future_ready (async));
    ag_value_t *value = agc_future_result (async, 10000 * agt_slow);
    CHECK (ag_obj_streq (ag_value_object (value), "async"));
    ag_value_destroy (&value);

    agc_future_t *complex = agc_agent_call (example, "complex_result", NULL);
    CHECK (agc_future_wait (complex, 10000 * agt_slow) == 0);
    const msgpack_object *map = ag_value_object (agc_future_value (complex));
    CHECK (ag_obj_int (ag_obj_get (map, "a"), 0) == 1);
    CHECK (ag_obj_int (ag_obj_get (map, "b"), 0) == 2);
    CHECK (ag_obj_streq (ag_obj_get (map, "c"), "hello world"));
    if (agt_verbose)
        printf ("    sync %.3f s, async %.6f s\n", sync_cost, async_cost);
    agc_future_destroy (&sync);
    agc_future_destroy (&async);
    agc_future_destroy (&complex);
    agc_agent_destroy (&example);
    agc_conn_destroy (&conn);
    return 0;
}

//  4 calls of 1 s on one agent run one after another (about 4 s); the
//  same on 4 agents run at once (about 1 s)
int
agt_test_actor_semantics (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [4];
    for (int i = 0; i < 4; i++) {
        agents [i] = agt_counter (conn, 0);
        CHECK (agents [i]);
    }
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 1000);
    agc_future_t *futures [4];
    int64_t start = ag_usecs ();
    for (int i = 0; i < 4; i++)
        futures [i] = agc_agent_call (agents [0], "slow", args);
    CHECK (agc_future_wait_all (futures, 4, 20000 * agt_slow) == 0);
    double one_agent = tl_seconds_since (start);
    for (int i = 0; i < 4; i++)
        agc_future_destroy (&futures [i]);
    start = ag_usecs ();
    for (int i = 0; i < 4; i++)
        futures [i] = agc_agent_call (agents [i], "slow", args);
    CHECK (agc_future_wait_all (futures, 4, 20000 * agt_slow) == 0);
    double four_agents = tl_seconds_since (start);
    for (int i = 0; i < 4; i++)
        agc_future_destroy (&futures [i]);
    ag_value_destroy (&args);
    if (agt_verbose)
        printf ("    one agent %.3f s, four agents %.3f s\n", one_agent,
                four_agents);
    CHECK (one_agent >= 3.99);
    CHECK (four_agents >= 0.99 && four_agents < 2.0 * agt_slow);
    ag_value_t *overlaps = agc_agent_getattr (agents [0], "overlaps");
    CHECK (ag_obj_int (ag_value_object (overlaps), -1) == 0);
    ag_value_destroy (&overlaps);

    //  Requests to one agent run in the order they arrived
    agc_future_t *records [50];
    for (int64_t i = 0; i < 50; i++) {
        ag_value_t *value = ag_value_new ("i", i);
        records [i] = agc_agent_call (agents [1], "record", value);
        ag_value_destroy (&value);
    }
    CHECK (agc_future_wait_all (records, 50, 10000 * agt_slow) == 0);
    for (int i = 0; i < 50; i++)
        agc_future_destroy (&records [i]);
    ag_value_t *log = agc_agent_getattr (agents [1], "log");
    CHECK (ag_obj_count (ag_value_object (log)) == 50);
    for (size_t i = 0; i < 50; i++)
        CHECK (ag_obj_int (ag_obj_at (ag_value_object (log), i), -1)
               == (int64_t) i);
    ag_value_destroy (&log);
    for (int i = 0; i < 4; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    return 0;
}

//  100 agents each blocking 1 s, called at once: the pool grows
int
agt_test_hundred_agents (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [100];
    for (int i = 0; i < 100; i++) {
        agents [i] = agt_counter (conn, i);
        CHECK (agents [i]);
    }
    agc_future_t *futures [100];
    int64_t start = ag_usecs ();
    for (int64_t i = 0; i < 100; i++) {
        ag_value_t *args = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 1000,
                                         "tag", i);
        futures [i] = agc_agent_call (agents [i], "slow", args);
        ag_value_destroy (&args);
    }
    CHECK (agc_future_wait_all (futures, 100, 30000 * agt_slow) == 0);
    double elapsed = tl_seconds_since (start);
    if (agt_verbose)
        printf ("    100 agents x 1 s: %.3f s\n", elapsed);
    CHECK (elapsed < 2.0 * agt_slow);
    for (int i = 0; i < 100; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        CHECK (agt_int_result (futures [i]) == i);
        agc_future_destroy (&futures [i]);
        agc_agent_destroy (&agents [i]);
    }
    agc_conn_destroy (&conn);
    return 0;
}

static int
s_expect_status (agc_future_t *future, int status, const char *words)
{
    int rc = agc_future_status (future) == status
          && strstr (agc_future_reason (future), words)? 0: -1;
    if (rc && agt_verbose)
        printf ("    got %d '%s', wanted %d '%s'\n", agc_future_status (future),
                agc_future_reason (future), status, words);
    return rc;
}

int
agt_test_errors (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    CHECK (agc_agent_new (conn, "NoSuchClass", NULL, NULL) == NULL);
    CHECK (agc_status () == AG_NO_CLASS);
    CHECK (strstr (agc_reason (), "NoSuchClass"));

    //  A Counter refuses to overflow (found by fuzzing)
    agc_agent_t *full = agt_counter (conn, INT64_MAX - 1);
    ag_value_t *unit = ag_value_new ("i", (int64_t) 1);
    agc_future_t *total = agc_agent_call (full, "add", unit);
    CHECK (agc_future_status (total) == AG_OK);
    agc_future_destroy (&total);
    total = agc_agent_call (full, "add", unit);
    CHECK (agc_future_status (total) == AG_BAD_ARGS);
    agc_future_destroy (&total);
    ag_value_destroy (&unit);
    agc_agent_destroy (&full);
    CHECK (agc_agent_new (conn, "Broken", NULL, NULL) == NULL);
    CHECK (agc_status () == AG_INIT_FAILED);
    CHECK (strstr (agc_reason (), "cannot open the database"));

    ag_value_t *bad = ag_value_new ("{s:i}", "label", (int64_t) 5);
    CHECK (agc_agent_new (conn, "Counter", bad, NULL) == NULL);
    CHECK (agc_status () == AG_BAD_ARGS);
    ag_value_destroy (&bad);

    agc_agent_t *named = agc_agent_new (conn, "Counter", NULL, "unique-1");
    CHECK (named);
    CHECK (agc_agent_new (conn, "Counter", NULL, "unique-1") == NULL);
    CHECK (agc_status () == AG_NAME_TAKEN);

    agc_future_t *future = agc_agent_call (named, "no_such", NULL);
    CHECK (s_expect_status (future, AG_NO_METHOD, "no public method 'no_such'") == 0);
    agc_future_destroy (&future);
    future = agc_agent_call (named, "_secret", NULL);
    CHECK (s_expect_status (future, AG_NO_METHOD, "_secret") == 0);
    agc_future_destroy (&future);
    future = agc_agent_call (named, "fail", NULL);
    CHECK (s_expect_status (future, AG_AGENT_ERROR, "failed on purpose") == 0);
    agc_future_destroy (&future);
    ag_value_t *text = ag_value_new ("s", "three");
    future = agc_agent_call (named, "add", text);
    CHECK (s_expect_status (future, AG_BAD_ARGS, "integer") == 0);
    agc_future_destroy (&future);
    ag_value_destroy (&text);
    CHECK (agc_agent_getattr (named, "nothing") == NULL);
    CHECK (agc_status () == AG_NO_ATTR);
    CHECK (agc_agent_getattr (named, "_state") == NULL);
    CHECK (agc_status () == AG_NO_ATTR);

    //  The agent is still fine after all that
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    ag_value_t *sum = agc_agent_call_value (named, "add", one);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 1);
    ag_value_destroy (&sum);
    ag_value_destroy (&one);

    //  Another handle on the same agent, by name or id, from another
    //  connection; releasing it leaves the agent
    agc_conn_t *other = agc_conn_new (endpoint);
    agc_agent_t *found = agc_agent_lookup (other, "unique-1");
    CHECK (found && agc_agent_id (found) == agc_agent_id (named));
    CHECK (!agc_agent_is_async (found, "add"));
    CHECK (agc_agent_is_async (found, "slow"));
    ag_value_t *two = ag_value_new ("i", (int64_t) 2);
    sum = agc_agent_call_value (found, "add", two);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 3);
    ag_value_destroy (&sum);
    ag_value_destroy (&two);
    agc_agent_release (&found);
    CHECK (found == NULL);
    found = agc_agent_attach (other, agc_agent_id (named));
    CHECK (found);
    ag_value_t *count = agc_agent_getattr (found, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 3);
    ag_value_destroy (&count);
    agc_agent_release (&found);
    CHECK (agc_agent_lookup (other, "nobody") == NULL);
    CHECK (agc_status () == AG_NO_AGENT);
    CHECK (agc_agent_attach (other, 12345) == NULL);
    CHECK (agc_status () == AG_NO_AGENT);
    agc_conn_destroy (&other);
    //  Deleting frees the name
    CHECK (agc_agent_destroy (&named) == 0);
    named = agc_agent_new (conn, "Counter", NULL, "unique-1");
    CHECK (named);
    agc_agent_destroy (&named);
    agc_conn_destroy (&conn);
    return 0;
}

//  Send a raw message on a DEALER and return the reply's status, or -1
//  if no reply came within msecs. The message is one frame of env and
//  body; parts 2 sends them as two frames, parts 3 adds an empty third.
int
agt_raw (void *dealer, const void *env, size_t env_size, const void *body,
       size_t body_size, int parts, int msecs, char *reason, size_t size)
{
    if (parts == 1) {
        uint8_t *frame = (uint8_t *) malloc (env_size + body_size + 1);
        memcpy (frame, env, env_size);
        if (body_size)
            memcpy (frame + env_size, body, body_size);
        zmq_send (dealer, frame, env_size + body_size, 0);
        free (frame);
    }
    else {
        zmq_send (dealer, env, env_size, ZMQ_SNDMORE);
        zmq_send (dealer, body, body_size, parts > 2? ZMQ_SNDMORE: 0);
        if (parts > 2)
            zmq_send (dealer, "", 0, 0);
    }
    zmq_pollitem_t item = { dealer, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, msecs) <= 0)
        return -1;
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    zmq_msg_recv (&reply, dealer, 0);
    agp_envelope_t renv;
    int rc = agp_envelope_decode (&renv, zmq_msg_data (&reply),
                                  zmq_msg_size (&reply));
    if (rc == 0 && reason) {
        ag_value_t *value = ag_value_decode (agp_msg_body (&reply),
                                             agp_msg_body_size (&reply));
        char *text = ag_obj_strdup (ag_value_object (value));
        snprintf (reason, size, "%s", text? text: "");
        free (text);
        ag_value_destroy (&value);
    }
    zmq_msg_close (&reply);
    return rc? -2: renv.word;
}

int
agt_test_hostile_input (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--max-message", "4096", NULL) == 0);
    void *context = zmq_ctx_new ();
    void *dealer = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect (dealer, daemon.endpoint);
    char reason [256];
    uint8_t env [AGP_ENVELOPE_SIZE];
    agp_envelope_t e = { .command = AGP_PING, .corr = 1 };

    //  Not AGP at all: dropped without a reply
    CHECK (agt_raw (dealer, "GET / HTTP/1.1", 14, "", 0, 1, 300, NULL, 0) == -1);
    CHECK (agt_raw (dealer, "x", 1, NULL, 0, 1, 300, NULL, 0) == -1);
    //  Another version: told so
    agp_envelope_encode (&e, env);
    env [4] = '9';
    CHECK (agt_raw (dealer, env, sizeof env, "", 0, 1, 5000, reason,
                  sizeof reason) == AG_BAD_VERSION);
    CHECK (strstr (reason, AGP_SIGNATURE));
    //  Unknown command
    agp_envelope_encode (&e, env);
    env [5] = 0x55;
    CHECK (agt_raw (dealer, env, sizeof env, "", 0, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  A frame shorter than an envelope, with a readable correlation id
    agp_envelope_encode (&e, env);
    CHECK (agt_raw (dealer, env, 20, "", 0, 1, 5000, reason, sizeof reason)
           == AG_BAD_REQUEST);
    CHECK (strstr (reason, "shorter than 24"));
    //  The envelope alone is a request with a nil body
    CHECK (agt_raw (dealer, env, sizeof env, NULL, 0, 1, 5000, NULL, 0)
           == AG_OK);
    //  More than one frame
    CHECK (agt_raw (dealer, env, sizeof env, "", 0, 2, 5000, reason,
                  sizeof reason) == AG_BAD_REQUEST);
    CHECK (strstr (reason, "1 frame"));
    CHECK (agt_raw (dealer, env, sizeof env, "", 0, 3, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  Bad msgpack bodies for CREATE
    e.command = AGP_CREATE;
    agp_envelope_encode (&e, env);
    const uint8_t lying [] = { 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0 };
    CHECK (agt_raw (dealer, env, sizeof env, lying, sizeof lying, 1, 5000,
                  reason, sizeof reason) == AG_BAD_REQUEST);
    CHECK (strstr (reason, "count larger than the message"));
    CHECK (agt_raw (dealer, env, sizeof env, "\xc1", 1, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    CHECK (agt_raw (dealer, env, sizeof env, "\x92\x01", 2, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  Over the size limit
    char big [5000];
    memset (big, 0xc0, sizeof big);
    CHECK (agt_raw (dealer, env, sizeof env, big, sizeof big, 1, 5000, reason,
                  sizeof reason) == AG_TOO_LARGE);
    CHECK (strstr (reason, "4096"));
    //  Calls on agents that do not exist, and a bad CALL body
    e.command = AGP_CALL;
    e.agent = 424242;
    agp_envelope_encode (&e, env);
    CHECK (agt_raw (dealer, env, sizeof env, "\x92\xa1x\xc0", 4, 1, 5000,
                  NULL, 0) == AG_NO_AGENT);
    //  Random noise in every frame, many times
    for (int i = 0; i < 2000; i++) {
        uint8_t noise [40];
        for (size_t j = 0; j < sizeof noise; j++)
            noise [j] = (uint8_t) random ();
        if (i % 3 == 0)
            memcpy (noise, AGP_SIGNATURE, 5);
        zmq_send (dealer, noise, (size_t) (random () % 30), ZMQ_SNDMORE);
        zmq_send (dealer, noise + 10, (size_t) (random () % 30), 0);
    }
    //  Still serving: an honest client gets through
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    CHECK (agc_conn_ping (conn) > 0);
    agc_agent_t *agent = agt_counter (conn, 1);
    CHECK (agent);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    zmq_close (dealer);
    zmq_ctx_term (context);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  Read the daemon's stderr until a line holds one of the words;
//  true if one did within msecs
static bool
s_log_has (daemon_t *daemon, const char *word1, const char *word2,
           int msecs)
{
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    char line [1024];
    while (ag_usecs () < deadline) {
        int left = (int) ((deadline - ag_usecs ()) / 1000);
        if (tl_read_line (daemon->err, line, sizeof line, left) < 0)
            return false;
        if (agt_verbose)
            printf ("   log: %s\n", line);
        if (strstr (line, word1) || (word2 && strstr (line, word2)))
            return true;
    }
    return false;
}

//  Bytes on the daemon's TCP port from something that is not a ZeroMQ
//  peer: refused and logged; clients already connected are unaffected
int
agt_test_garbage (const char *unused)
{
    daemon_t daemon;
    agt_capture_stderr = true;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    CHECK (daemon.err >= 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agent = agt_counter (conn, 3);
    CHECK (agent);
    const char *port = strrchr (daemon.endpoint, ':');
    CHECK (port);
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_port = htons ((uint16_t) atoi (port + 1));
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    uint8_t noise [4096];
    for (size_t i = 0; i < sizeof noise; i++)
        noise [i] = (uint8_t) random ();
    //  A greeting's signature, then nonsense where the version goes
    uint8_t greeting [64] = { 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 9, 9 };
    const struct { const void *data; size_t size; } junk [] = {
        { http, strlen (http) }, { noise, sizeof noise },
        { greeting, sizeof greeting }
    };
    for (size_t i = 0; i < 3; i++) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        CHECK (fd >= 0);
        CHECK (connect (fd, (struct sockaddr *) &address, sizeof address)
               == 0);
        CHECK (write (fd, junk [i].data, junk [i].size) > 0);
        //  Wait for the server to hang up (or give up after a while)
        struct pollfd item = { fd, POLLIN, 0 };
        char sink [256];
        while (poll (&item, 1, 500 * agt_slow) == 1
        &&     read (fd, sink, sizeof sink) > 0)
            ;
        close (fd);
    }
    CHECK (s_log_has (&daemon, "refused a connection", "not AGP",
                      10000 * agt_slow));
    //  The honest client never noticed
    ag_value_t *count = agc_agent_getattr (agent, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 3);
    ag_value_destroy (&count);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}
