/*  =========================================================================
    agtest_server - the server's life: kills, stops, fetches, threads and the pool

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agtest.h"

//  A server killed mid-call: the pending future fails within the timeout
int
agt_test_killed_server (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 1000);
    agc_agent_t *agent = agt_counter (conn, 0);
    CHECK (agent);
    //  A server that is there but says nothing (stopped): the pending
    //  call fails after the connection's timeout of silence
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 30000);
    agc_future_t *future = agc_agent_call (agent, "slow", args);
    kill (daemon.pid, SIGSTOP);
    int64_t start = ag_usecs ();
    CHECK (agc_future_wait (future, 10000) == 0);
    double elapsed = tl_seconds_since (start);
    kill (daemon.pid, SIGCONT);
    CHECK (agc_future_status (future) == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (future), "no reply from"));
    CHECK (elapsed > 0.9 && elapsed < 2.0);
    agc_future_destroy (&future);
    //  A server that dies: its connection drops, and the pending call
    //  fails at once
    future = agc_agent_call (agent, "slow", args);
    ag_value_destroy (&args);
    CHECK (agc_future_wait (future, 100) == -1);
    agt_daemon_kill (&daemon);
    start = ag_usecs ();
    CHECK (agc_future_wait (future, 10000) == 0);
    elapsed = tl_seconds_since (start);
    CHECK (agc_future_status (future) == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (future), "dropped"));
    CHECK (elapsed < 0.5 * agt_slow);
    agc_future_destroy (&future);
    //  A sync call on the dead server fails too, and does not hang
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    future = agc_agent_call (agent, "add", one);
    ag_value_destroy (&one);
    CHECK (agc_future_status (future) == AG_UNREACHABLE);
    agc_future_destroy (&future);
    CHECK (agc_agent_delete (&agent) == -1);
    agc_conn_destroy (&conn);
    return 0;
}

//  A connection closed with a request still to deliver lingers to send
//  it. If its server appears meanwhile and drops it, the process's other
//  connections are still served: libzmq's I/O thread, which they share,
//  is never left writing an event to a monitor that nobody reads.
int
agt_test_closed_lingering (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *working = agc_conn_new (daemon.endpoint);
    CHECK (working);
    agc_conn_set_timeout (working, 3000 * agt_slow);
    CHECK (agc_conn_ping (working) >= 0);
    //  A port that nobody listens on yet
    int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)
    };
    socklen_t size = sizeof address;
    CHECK (bind (listener, (struct sockaddr *) &address, sizeof address) == 0);
    CHECK (getsockname (listener, (struct sockaddr *) &address, &size) == 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d",
              ntohs (address.sin_port));
    agc_conn_t *closed = agc_conn_new (endpoint);
    CHECK (closed);
    agc_conn_set_timeout (closed, 1500 * agt_slow);
    CHECK (agc_conn_post (closed, AGP_PING, 0, NULL, 0) == 0);
    agc_conn_destroy (&closed);
    //  Now it connects, again and again, and each connection is dropped
    CHECK (listen (listener, 16) == 0);
    for (int i = 0; i < 3; i++) {
        struct pollfd item = { listener, POLLIN, 0 };
        CHECK (poll (&item, 1, 5000 * agt_slow) == 1);
        int peer = accept (listener, NULL, NULL);
        CHECK (peer >= 0);
        close (peer);
    }
    close (listener);
    if (agc_conn_ping (working) < 0) {
        //  Its context could not end either: leave it
        fprintf (stderr, "    the other connection is not served: %s\n",
                 agc_reason ());
        agt_daemon_kill (&daemon);
        return -1;
    }
    agc_conn_destroy (&working);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  Results of async calls can be fetched again, by anyone holding the
//  caller's identity and the call's id, until they expire
int
agt_test_fetch (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--retention-ms", "1500", NULL) == 0);
    void *context = zmq_ctx_new ();
    void *caller = zmq_socket (context, ZMQ_DEALER);
    void *other = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (caller, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (other, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (caller, ZMQ_ROUTING_ID, "Cfetch-test", 11);
    zmq_connect (caller, daemon.endpoint);
    zmq_connect (other, daemon.endpoint);

    //  An agent made through the library, called through the raw socket
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agent = agt_counter (conn, 0);
    CHECK (agent);
    uint8_t env [AGP_ENVELOPE_SIZE];
    ag_value_t *call = ag_value_new ("[s, {s:i, s:s}]", "slow", "ms",
                                     (int64_t) 300, "tag", "kept");
    agp_envelope_t e = { .command = AGP_CALL, .corr = 7,
                         .agent = agc_agent_id (agent),
                         .word = AGP_FLAG_KEEP };
    agp_envelope_encode (&e, env);
    zmq_msg_t request;
    agp_msg_init (&request, &e, ag_value_data (call), ag_value_size (call));
    zmq_msg_send (&request, caller, 0);
    ag_value_destroy (&call);
    //  Messages on one connection are handled in order: once a PING sent
    //  after the CALL is answered, the server has the CALL
    e = (agp_envelope_t) { .command = AGP_PING, .corr = 8 };
    agp_envelope_encode (&e, env);
    CHECK (agt_raw (caller, env, sizeof env, NULL, 0, 1, 5000, NULL, 0)
           == AG_OK);

    //  Another socket fetches it while it still runs: the fetch waits
    ag_value_t *fetch = ag_value_new ("[B, u]", "Cfetch-test", (size_t) 11,
                                      (uint64_t) 7);
    e = (agp_envelope_t) { .command = AGP_FETCH, .corr = 1 };
    agp_envelope_encode (&e, env);
    char reason [256];
    CHECK (agt_raw (other, env, sizeof env, ag_value_data (fetch),
                  ag_value_size (fetch), 1, 5000, reason, sizeof reason)
           == AG_OK);
    CHECK (streq (reason, "kept"));
    //  And again, now that it is done
    CHECK (agt_raw (other, env, sizeof env, ag_value_data (fetch),
                  ag_value_size (fetch), 1, 5000, NULL, 0) == AG_OK);
    //  The caller got its own reply too
    zmq_pollitem_t item = { caller, 0, ZMQ_POLLIN, 0 };
    CHECK (zmq_poll (&item, 1, 5000) == 1);
    //  Unknown call: gone, once it has had a while to come
    ag_value_t *unknown = ag_value_new ("[B, u]", "Cfetch-test", (size_t) 11,
                                        (uint64_t) 8);
    CHECK (agt_raw (other, env, sizeof env, ag_value_data (unknown),
                  ag_value_size (unknown), 1, 10000 * agt_slow, reason,
                  sizeof reason) == AG_GONE);
    CHECK (strstr (reason, "no result of call 8 here"));
    ag_value_destroy (&unknown);
    //  After the retention time it is gone too: ask until it is
    int status = AG_OK;
    int64_t deadline = ag_usecs () + 10000000;
    while (status == AG_OK && ag_usecs () < deadline) {
        zmq_pollitem_t none = { other, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&none, 1, 200);   //  pace the questions, nothing comes
        status = agt_raw (other, env, sizeof env, ag_value_data (fetch),
                        ag_value_size (fetch), 1, 10000 * agt_slow, NULL, 0);
    }
    CHECK (status == AG_GONE);
    ag_value_destroy (&fetch);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    zmq_close (caller);
    zmq_close (other);
    zmq_ctx_term (context);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  A stop takes milliseconds, every time: nothing of the server's is
//  left open for czmq's exit handler to wait 200 ms on
int
agt_test_stop_fast (const char *unused)
{
#if defined (__SANITIZE_ADDRESS__)
    bool timed = false;             //  the leak check at exit takes time
#else
    bool timed = !agt_valgrind;
#endif
    int runs = timed? 50: 3;
    double slowest = 0;
    for (int i = 0; i < runs; i++) {
        daemon_t daemon;
        CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
        int64_t start = ag_usecs ();
        CHECK (agt_daemon_stop (&daemon) == 0);
        double took = tl_seconds_since (start) * 1000;
        if (took > slowest)
            slowest = took;
    }
    if (agt_verbose)
        printf ("    %d stops, the slowest %.1f ms\n", runs, slowest);
    //  Generous: a stop takes about 1 ms; the defect was 200 ms
    if (timed)
        CHECK (slowest < 150);
    return 0;
}

//  SIGTERM lets a running call finish and answers it
int
agt_test_graceful_stop (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 1000);
    agc_agent_t *agent = agt_counter (conn, 0);
    CHECK (agent);
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "ms", (int64_t) 700,
                                     "tag", "finished");
    agc_future_t *future = agc_agent_call (agent, "slow", args);
    ag_value_destroy (&args);
    //  Make sure it is running before the signal: LIST shows the agent
    //  busy (in a pool thread, or out at its host)
    int64_t until = ag_usecs () + 10000000LL * agt_slow;
    bool busy = false;
    while (!busy && ag_usecs () < until) {
        ag_value_t *list = agc_conn_list (conn);
        const msgpack_object *agents = ag_value_object (list);
        for (size_t i = 0; i < ag_obj_count (agents); i++)
            if ((uint64_t) ag_obj_int (ag_obj_get (ag_obj_at (agents, i),
                                       "id"), 0) == agc_agent_id (agent))
                busy = ag_obj_bool (ag_obj_get (ag_obj_at (agents, i),
                                                "busy"), false);
        ag_value_destroy (&list);
    }
    CHECK (busy);
    kill (daemon.pid, SIGTERM);
    CHECK (agc_future_wait (future, 10000 * agt_slow) == 0);
    CHECK (agc_future_status (future) == AG_OK);
    CHECK (ag_obj_streq (ag_value_object (agc_future_value (future)),
                         "finished"));
    agc_future_destroy (&future);
    CHECK (tl_proc_reap (&daemon, 20000 * agt_slow) == 0);
    //  The server is gone: deleting fails, within the timeout
    CHECK (agc_agent_delete (&agent) == -1);
    CHECK (agc_status () == AG_UNREACHABLE);
    agc_conn_destroy (&conn);
    return 0;
}

typedef struct {
    agc_agent_t *agent;
    int calls;
    int failures;
} thread_args_t;

static void *
s_adder (void *arg)
{
    thread_args_t *args = (thread_args_t *) arg;
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    for (int i = 0; i < args->calls; i++) {
        agc_future_t *future = agc_agent_call (args->agent, "add", one);
        if (!future || agc_future_status (future) != AG_OK)
            args->failures++;
        agc_future_destroy (&future);
    }
    ag_value_destroy (&one);
    return NULL;
}

//  Many threads share one connection
int
agt_test_threads (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [2] = { agt_counter (conn, 0), agt_counter (conn, 0) };
    CHECK (agents [0] && agents [1]);
    pthread_t threads [6];
    thread_args_t args [6];
    for (int i = 0; i < 6; i++) {
        args [i] = (thread_args_t) { agents [i % 2], 300, 0 };
        pthread_create (&threads [i], NULL, s_adder, &args [i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join (threads [i], NULL);
        CHECK (args [i].failures == 0);
    }
    for (int i = 0; i < 2; i++) {
        ag_value_t *count = agc_agent_getattr (agents [i], "count");
        CHECK (ag_obj_int (ag_value_object (count), 0) == 900);
        ag_value_destroy (&count);
        agc_agent_destroy (&agents [i]);
    }
    agc_conn_destroy (&conn);
    return 0;
}

//  A deep pipeline, 100,000 calls sent before any reply is read: nothing
//  lost, nothing duplicated, each reply matched to its own call
int
agt_test_deep_burst (const char *endpoint)
{
    int calls = agt_valgrind? 20000: 100000;
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = agt_counter (conn, 0);
    CHECK (agent);
    agc_future_t **futures = (agc_future_t **) calloc ((size_t) calls, sizeof *futures);
    for (int64_t i = 0; i < calls; i++) {
        ag_value_t *args = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 0,
                                         "tag", i);
        futures [i] = agc_agent_call (agent, "slow", args);
        ag_value_destroy (&args);
    }
    CHECK (agc_future_wait_all (futures, (size_t) calls, 120000 * agt_slow) == 0);
    for (int64_t i = 0; i < calls; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        CHECK (agt_int_result (futures [i]) == i);
        agc_future_destroy (&futures [i]);
    }
    free (futures);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return 0;
}

//  A 1 MiB argument goes there and back intact
int
agt_test_big_value (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = agt_counter (conn, 0);
    size_t size = 1024 * 1024;
    char *data = (char *) malloc (size);
    for (size_t i = 0; i < size; i++)
        data [i] = (char) (i * 7);
    ag_value_t *args = ag_value_new ("B", data, size);
    ag_value_t *back = agc_agent_call_value (agent, "echo", args);
    CHECK (back);
    const msgpack_object *object = ag_value_object (back);
    CHECK (object->type == MSGPACK_OBJECT_BIN);
    CHECK (object->via.bin.size == size);
    CHECK (memcmp (object->via.bin.ptr, data, size) == 0);
    ag_value_destroy (&back);
    ag_value_destroy (&args);
    free (data);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return 0;
}

int
agt_test_ipc (const char *unused)
{
    char endpoint [128];
    snprintf (endpoint, sizeof endpoint, "ipc:///tmp/agtest-%d.sock",
              getpid ());
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, endpoint, NULL) == 0);
    CHECK (streq (daemon.endpoint, endpoint));
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = agt_counter (conn, 41);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    ag_value_t *sum = agc_agent_call_value (agent, "add", one);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 42);
    ag_value_destroy (&sum);
    ag_value_destroy (&one);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

int
agt_test_command_line (const char *unused)
{
    char message [512];
    char plugin [300];
    snprintf (plugin, sizeof plugin, "%s/plugins/seed.so", agt_build);
    const char *missing [] = { "-f", "--plugin", "/nonexistent/x.so", NULL };
    CHECK (agt_agentd_run (message, sizeof message, missing) == 1);
    CHECK (strstr (message, "/nonexistent/x.so"));
    const char *twice [] = { "-f", "--plugin", plugin, "--plugin", plugin,
                             NULL };
    CHECK (agt_agentd_run (message, sizeof message, twice) == 1);
    CHECK (strstr (message, "already registered"));
    const char *not_plugin [] = { "-f", "--plugin", "/lib/x86_64-linux-gnu/libc.so.6",
                                  NULL };
    if (access (not_plugin [2], R_OK) == 0) {
        CHECK (agt_agentd_run (message, sizeof message, not_plugin) == 1);
        CHECK (strstr (message, "not an agent plugin"));
    }
    const char *bogus [] = { "--bogus", NULL };
    CHECK (agt_agentd_run (message, sizeof message, bogus) == 2);
    const char *endpoint [] = { "-f", "-e", "http://nope", NULL };
    CHECK (agt_agentd_run (message, sizeof message, endpoint) == 2);
    CHECK (strstr (message, "http://nope"));
    const char *number [] = { "-f", "--threads-max", "lots", NULL };
    CHECK (agt_agentd_run (message, sizeof message, number) == 2);
    CHECK (strstr (message, "server/threads_max"));
    //  A port already in use stops the start, naming the endpoint
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    const char *clash [] = { "-f", "-e", daemon.endpoint, NULL };
    CHECK (agt_agentd_run (message, sizeof message, clash) == 1);
    CHECK (strstr (message, "cannot bind"));
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  The embedded server: a program serving classes linked into it
int
agt_test_embedded (const char *unused)
{
    agd_server_t *server = agd_server_new ();
    CHECK (agd_server_add_class (server, &agt_tally_class) == 0);
    CHECK (agd_server_add_class (server, &agt_tally_class) == -1);
    CHECK (agd_server_start (server) == 0);
    agc_conn_t *conn = agc_conn_new (agd_server_endpoint (server, 0));
    ag_value_t *info = agc_conn_info (conn);
    const msgpack_object *classes = ag_obj_get (ag_value_object (info),
                                                "classes");
    CHECK (ag_obj_count (classes) == 1);
    CHECK (ag_obj_streq (ag_obj_get (ag_obj_at (classes, 0), "name"),
                         "Tally"));
    const msgpack_object *methods = ag_obj_get (ag_obj_at (classes, 0),
                                                "methods");
    CHECK (ag_obj_streq (ag_obj_get (methods, "later"), "async"));
    CHECK (ag_obj_streq (ag_obj_get (methods, "add"), "sync"));
    ag_value_destroy (&info);
    agc_agent_t *agent = agc_agent_new (conn, "Tally", NULL, NULL);
    CHECK (agent);
    ag_value_t *two = ag_value_new ("i", (int64_t) 2);
    ag_value_t *sum = agc_agent_call_value (agent, "add", two);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 2);
    ag_value_destroy (&sum);
    ag_value_destroy (&two);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    agd_server_stop (server);
    agd_server_wait (server);
    agd_server_destroy (&server);
    return 0;
}


//  Waiting with a timeout; a call longer than the heartbeat timeout on a
//  live server; wait_any across two servers
int
agt_test_waiting (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, 300);
    agc_agent_t *agent = agt_counter (conn, 0);
    CHECK (agent);
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "ms", (int64_t) 1200,
                                     "tag", "late");
    agc_future_t *future = agc_agent_call (agent, "slow", args);
    int64_t start = ag_usecs ();
    CHECK (agc_future_wait (future, 100) == -1);
    CHECK (agc_status () == AG_TIMEOUT);
    CHECK (tl_seconds_since (start) < 1.0 * agt_slow);
    CHECK (!agc_future_ready (future));
    CHECK (agc_future_status (future) == AG_PENDING);
    CHECK (agc_future_value (future) == NULL);
    //  The server is alive and answers pings: four timeouts' worth of
    //  waiting is fine
    ag_value_t *value = agc_future_result (future, AGC_FOREVER);
    CHECK (value && ag_obj_streq (ag_value_object (value), "late"));
    CHECK (agc_future_result (future, 0) == NULL);      //  taken already
    ag_value_destroy (&value);
    agc_future_destroy (&future);
    ag_value_destroy (&args);

    //  wait_any across two servers returns the first to finish
    daemon_t other;
    CHECK (agt_daemon_start (&other, NULL, NULL) == 0);
    agc_conn_t *conn2 = agc_conn_new (other.endpoint);
    agc_agent_t *agent2 = agt_counter (conn2, 0);
    CHECK (agent2);
    ag_value_t *slow = ag_value_new ("{s:i}", "ms", (int64_t) 2000);
    ag_value_t *quick = ag_value_new ("{s:i}", "ms", (int64_t) 200);
    agc_future_t *futures [2] = {
        agc_agent_call (agent, "slow", slow),
        agc_agent_call (agent2, "slow", quick)
    };
    CHECK (agc_future_wait_any (futures, 2, 10000 * agt_slow) == 1);
    CHECK (!agc_future_ready (futures [0]));
    CHECK (agc_future_wait_all (futures, 2, 10000 * agt_slow) == 0);
    CHECK (agc_future_status (futures [0]) == AG_OK);
    for (int i = 0; i < 2; i++)
        agc_future_destroy (&futures [i]);
    //  Destroying a pending future is safe; its late reply is dropped
    future = agc_agent_call (agent, "slow", quick);
    agc_future_destroy (&future);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    ag_value_t *sum = agc_agent_call_value (agent, "add", one);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 1);
    ag_value_destroy (&sum);
    ag_value_destroy (&one);
    ag_value_destroy (&slow);
    ag_value_destroy (&quick);
    agc_agent_destroy (&agent2);
    agc_conn_destroy (&conn2);
    CHECK (agt_daemon_stop (&other) == 0);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return 0;
}

static int64_t
s_threads_total (agc_conn_t *conn)
{
    ag_value_t *info = agc_conn_info (conn);
    int64_t total = ag_obj_int (ag_obj_get (ag_obj_get (ag_value_object (info),
                                "threads"), "total"), -1);
    ag_value_destroy (&info);
    return total;
}

//  The pool grows while every thread is busy and shrinks when idle
int
agt_test_pool (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--threads-min", "1",
                           "--threads-max", "8", "--idle-ms", "300",
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agents [12];
    for (int i = 0; i < 12; i++) {
        agents [i] = agt_counter (conn, 0);
        CHECK (agents [i]);
    }
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 500);
    agc_future_t *futures [12];
    int64_t start = ag_usecs ();
    for (int i = 0; i < 12; i++)
        futures [i] = agc_agent_call (agents [i], "slow", args);
    CHECK (s_threads_total (conn) <= 8);                //  never past the max
    CHECK (agc_future_wait_all (futures, 12, 20000 * agt_slow) == 0);
    double elapsed = tl_seconds_since (start);
    //  12 calls of 0.5 s on 8 threads: two rounds, not twelve (one thread)
    //  nor one (no maximum)
    CHECK (elapsed >= 0.99 && elapsed < 2.5 * agt_slow);
    for (int i = 0; i < 12; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        agc_future_destroy (&futures [i]);
    }
    ag_value_destroy (&args);
    //  Idle threads go, down to the minimum: ask until they have
    int64_t total = 8;
    int64_t deadline = ag_usecs () + 20000000LL * agt_slow;
    while (total > 1 && ag_usecs () < deadline) {
        agc_future_t *pause = agc_agent_call (agents [0], "nap",
                                              NULL);      //  a round trip
        agc_future_destroy (&pause);
        total = s_threads_total (conn);
    }
    CHECK (total == 1);
    for (int i = 0; i < 12; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  A blocked method holds up only its own agent: calls to other agents
//  that reached the server with it run on other threads meanwhile
int
agt_test_head_of_line (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--threads-min", "1",
                           "--threads-max", "4", NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agents [8];
    for (int i = 0; i < 8; i++) {
        agents [i] = agt_counter (conn, 0);
        CHECK (agents [i]);
    }
    int64_t ms = 4000 * agt_slow;
    ag_value_t *args = ag_value_new ("{s:i}", "ms", ms);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    int64_t start = ag_usecs ();
    agc_future_t *slow = agc_agent_call (agents [0], "slow", args);
    agc_future_t *quick [7];
    for (int i = 0; i < 7; i++)
        quick [i] = agc_agent_call (agents [i + 1], "add", one);
    CHECK (agc_future_wait_all (quick, 7, (int) ms) == 0);
    CHECK (tl_seconds_since (start) < 0.5 * (double) ms / 1000);
    for (int i = 0; i < 7; i++) {
        CHECK (agc_future_status (quick [i]) == AG_OK);
        agc_future_destroy (&quick [i]);
    }
    CHECK (!agc_future_ready (slow));
    CHECK (agc_future_wait (slow, (int) ms * 3) == 0);
    CHECK (agc_future_status (slow) == AG_OK);
    agc_future_destroy (&slow);
    ag_value_destroy (&args);
    ag_value_destroy (&one);
    for (int i = 0; i < 8; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}
