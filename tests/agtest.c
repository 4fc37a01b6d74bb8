/*  =========================================================================
    agtest - integration tests against real agentd processes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  agtest BUILD_DIR [-v] [-n NAME]: each case starts what it needs (an
//  agentd on an ephemeral port, or an embedded server) and drives it
//  through libagentclient, or through a raw ZeroMQ socket where the case
//  is about hostile input. Nothing waits on a sleep: readiness is the
//  "listening on" line on a pipe, process exit is a pidfd, and replies
//  are futures with timeouts. With AGTEST_VALGRIND=1 every agentd runs
//  under valgrind and must exit clean. Ends with "N passed, N failed".
//  @end

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "testlib.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

//  A class linked into this program (not a plugin): for the embedded
//  server, and to show a child server cannot load such a class
typedef struct {
    int64_t count;
} tally_t;

static int
s_tally_add (void *state, const msgpack_object *args, ag_call_t *call)
{
    tally_t *self = (tally_t *) state;
    self->count += ag_obj_int (args, 0);
    return ag_call_return (call, "i", self->count);
}

static int
s_tally_count (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((tally_t *) state)->count);
}

static const ag_method_t s_tally_methods [] = {
    { "add", s_tally_add, AG_SYNC },
    { "later", s_tally_add, AG_ASYNC },
    { NULL }
};

static const ag_attr_t s_tally_attrs [] = {
    { "count", s_tally_count }, { NULL }
};

static const ag_class_t s_tally_class = {
    .name = "Tally",
    .state_size = sizeof (tally_t),
    .methods = s_tally_methods,
    .attrs = s_tally_attrs
};

static const char *s_build = "build";
static bool s_verbose;
static bool s_valgrind;
static int s_slow = 1;              //  time bounds multiply by this

//  ---------------------------------------------------------------------
//  Daemons

typedef tl_proc_t daemon_t;

//  The next daemon started has its stderr captured in daemon_t.err
static bool s_capture_stderr;

//  Every agentd started here watches this pipe (as its fd 3), so none
//  outlives a test program that crashed or returned early
static int s_lifeline [2] = { -1, -1 };

//  Start agentd with exactly these arguments (after the program name)
//  and extra environment entries (NULL-ended; may be NULL). Returns 0
//  once it has printed its first endpoint.
static int
s_daemon_spawn (daemon_t *self, const char *const *args,
                const char *const *env)
{
    if (s_lifeline [0] < 0) {
        //  Out of the way of the low descriptors the child is given
        int ends [2];
        if (pipe (ends))
            return -1;
        for (int i = 0; i < 2; i++) {
            s_lifeline [i] = fcntl (ends [i], F_DUPFD_CLOEXEC, 100);
            close (ends [i]);
        }
    }
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    const char *lifeline [] = { "--parent-fd", "3", NULL };
    const char *argv [64];
    int argc = tl_agentd_argv (argv, 64, agentd, s_valgrind, lifeline);
    while (*args && argc < 63)
        argv [argc++] = *args++;
    argv [argc] = NULL;
    int err_to = s_capture_stderr? TL_ERR_PIPE
               : s_verbose? TL_ERR_INHERIT: TL_ERR_NULL;
    s_capture_stderr = false;
    return tl_agentd_start (self, argv, env, err_to, s_lifeline [0],
                            30000 * s_slow);
}

//  Start agentd with the test plugins, an endpoint (NULL: an ephemeral
//  loopback port) and extra arguments (NULL-ended)
static int
s_daemon_start (daemon_t *self, const char *endpoint, ...)
{
    const char *args [48];
    int argc = 0;
    char plugin1 [300], plugin2 [300];
    snprintf (plugin1, sizeof plugin1, "%s/plugins/testclasses.so", s_build);
    snprintf (plugin2, sizeof plugin2, "%s/plugins/seed.so", s_build);
    args [argc++] = "-f";
    args [argc++] = "-e";
    args [argc++] = endpoint? endpoint: "tcp://127.0.0.1:*";
    args [argc++] = "--plugin";
    args [argc++] = plugin1;
    args [argc++] = "--plugin";
    args [argc++] = plugin2;
    va_list list;
    va_start (list, endpoint);
    const char *arg;
    while ((arg = va_arg (list, const char *)) && argc < 46)
        args [argc++] = arg;
    va_end (list);
    args [argc] = NULL;
    return s_daemon_spawn (self, args, NULL);
}

//  SIGTERM, and the exit status (0 expected; 99 is valgrind's verdict)
static int
s_daemon_stop (daemon_t *self)
{
    return tl_proc_stop (self, 30000 * s_slow);
}

static void
s_daemon_kill (daemon_t *self)
{
    if (self->pid) {
        kill (self->pid, SIGKILL);
        tl_proc_reap (self, 10000);
    }
}

//  Run agentd with arguments and no plugins; return its exit status and
//  the first line of its stderr
static int
s_agentd_run (char *message, size_t size, const char *const *args)
{
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    const char *argv [16];
    tl_agentd_argv (argv, 16, agentd, false, args);
    return tl_run (argv, NULL, NULL, NULL, 0, message, size, 10000);
}

//  ---------------------------------------------------------------------
//  Helpers

static agc_agent_t *
s_counter (agc_conn_t *conn, int64_t start)
{
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "start", start,
                                     "label", "c");
    agc_agent_t *agent = agc_agent_new (conn, "Counter", args, NULL);
    ag_value_destroy (&args);
    return agent;
}

//  A figure from the server's INFO (in section, if not NULL), or -1
static int64_t
s_info_int (agc_conn_t *conn, const char *section, const char *key)
{
    ag_value_t *info = agc_conn_info (conn);
    const msgpack_object *root = ag_value_object (info);
    int64_t value = ag_obj_int (section? ag_obj_get (ag_obj_get (root,
                                section), key): ag_obj_get (root, key), -1);
    ag_value_destroy (&info);
    return value;
}

static int64_t
s_int_result (agc_future_t *future)
{
    const ag_value_t *value = agc_future_value (future);
    return ag_obj_int (ag_value_object (value), INT64_MIN);
}

//  ---------------------------------------------------------------------
//  Cases. Each gets an endpoint of a shared agentd started for the run.

static int
s_test_lifecycle (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    CHECK (conn);
    agc_agent_t *agent = s_counter (conn, 5);
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
    CHECK (s_int_result (future) == 8);
    agc_future_destroy (&future);
    ag_value_destroy (&three);

    ag_value_t *count = agc_agent_getattr (agent, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 8);
    ag_value_destroy (&count);
    ag_value_t *label = agc_agent_getattr (agent, "label");
    CHECK (ag_obj_streq (ag_value_object (label), "c"));
    ag_value_destroy (&label);

    //  Two agents of one class keep separate state
    agc_agent_t *other = s_counter (conn, 100);
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
    agc_agent_t *twin = s_counter (conn, 0);
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
        doomed [i] = s_counter (brief, 0);
        CHECK (doomed [i]);
    }
    int64_t first_id = (int64_t) agc_agent_id (doomed [0]);
    uint64_t last_id = agc_agent_id (doomed [499]);
    for (int i = 0; i < 500; i++)
        CHECK (agc_agent_destroy (&doomed [i]) == 0);
    agc_conn_destroy (&brief);
    int64_t deadline = ag_usecs () + 10000000LL * s_slow;
    agc_agent_t *seen;
    while ((seen = agc_agent_attach (conn2, last_id))
    &&     ag_usecs () < deadline)
        agc_agent_release (&seen);
    if (s_verbose && seen)
        printf ("   agent %" PRIu64 " still there after %.1f s\n", last_id,
                tl_seconds_since (deadline - 10000000LL * s_slow));
    else
    if (s_verbose && agc_status () != AG_NO_AGENT)
        printf ("   attach failed: %d %s\n", agc_status (), agc_reason ());
    CHECK (seen == NULL && agc_status () == AG_NO_AGENT);
    ag_value_t *left = agc_conn_list (conn2);
    const msgpack_object *agents = ag_value_object (left);
    if (s_verbose && !agents)
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
    agc_agent_t *sleeper = s_counter (conn2, 0);
    ag_value_t *nap = ag_value_new ("[s, {s:i}]", "slow", "ms", (int64_t) 500);
    agc_future_t *done = agc_agent_call (other, "add", NULL);
    agc_future_t *pending = agc_conn_request (conn, AGP_CALL,
        agc_agent_id (sleeper), 0, ag_value_data (nap), ag_value_size (nap));
    ag_value_destroy (&nap);
    CHECK (agc_agent_destroy (&other) == 0);
    agc_conn_destroy (&conn);
    CHECK (agc_future_ready (done));
    CHECK (agc_future_status (done) == AG_BAD_ARGS);
    CHECK (agc_future_wait (pending, 10000 * s_slow) == 0);
    CHECK (agc_future_status (pending) == AG_OK);
    agc_agent_destroy (&sleeper);
    agc_conn_destroy (&conn2);
    agc_future_destroy (&done);
    agc_future_destroy (&pending);
    return 0;
}

//  LIST comes in pages of at most 1000 agents, in ascending id order,
//  each after the id the client names; the client library joins them
static int
s_test_list_pages (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    int total = s_valgrind? 1200: 2345;
    agc_agent_t **agents = (agc_agent_t **) calloc ((size_t) total,
                                                    sizeof *agents);
    CHECK (agents);
    for (int i = 0; i < total; i++)
        CHECK ((agents [i] = s_counter (conn, i)));
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
        CHECK (agc_future_wait (refused, 5000 * s_slow) == 0);
        CHECK (agc_future_status (refused) == AG_BAD_REQUEST);
        CHECK (strstr (agc_future_reason (refused), "LIST:"));
        agc_future_destroy (&refused);
    }
    for (int i = 0; i < total; i++)
        agc_agent_destroy (&agents [i]);
    free (agents);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

static int
s_test_seed_example (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *example = agc_agent_new (conn, "Example", NULL, NULL);
    CHECK (example);
    int64_t start = ag_usecs ();
    agc_future_t *sync = agc_agent_call (example, "sync_method", NULL);
    double sync_cost = tl_seconds_since (start);
    CHECK (agc_future_ready (sync));
    CHECK (ag_obj_streq (ag_value_object (agc_future_value (sync)), "sync"));
    CHECK (sync_cost >= 0.99 && sync_cost < 3.0 * s_slow);

    start = ag_usecs ();
    agc_future_t *async = agc_agent_call (example, "async_method", NULL);
    double async_cost = tl_seconds_since (start);
    CHECK (async_cost < 0.5 * s_slow);
    CHECK (!agc_future_ready (async));
    ag_value_t *value = agc_future_result (async, 10000 * s_slow);
    CHECK (ag_obj_streq (ag_value_object (value), "async"));
    ag_value_destroy (&value);

    agc_future_t *complex = agc_agent_call (example, "complex_result", NULL);
    CHECK (agc_future_wait (complex, 10000 * s_slow) == 0);
    const msgpack_object *map = ag_value_object (agc_future_value (complex));
    CHECK (ag_obj_int (ag_obj_get (map, "a"), 0) == 1);
    CHECK (ag_obj_int (ag_obj_get (map, "b"), 0) == 2);
    CHECK (ag_obj_streq (ag_obj_get (map, "c"), "hello world"));
    if (s_verbose)
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
static int
s_test_actor_semantics (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [4];
    for (int i = 0; i < 4; i++) {
        agents [i] = s_counter (conn, 0);
        CHECK (agents [i]);
    }
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 1000);
    agc_future_t *futures [4];
    int64_t start = ag_usecs ();
    for (int i = 0; i < 4; i++)
        futures [i] = agc_agent_call (agents [0], "slow", args);
    CHECK (agc_future_wait_all (futures, 4, 20000 * s_slow) == 0);
    double one_agent = tl_seconds_since (start);
    for (int i = 0; i < 4; i++)
        agc_future_destroy (&futures [i]);
    start = ag_usecs ();
    for (int i = 0; i < 4; i++)
        futures [i] = agc_agent_call (agents [i], "slow", args);
    CHECK (agc_future_wait_all (futures, 4, 20000 * s_slow) == 0);
    double four_agents = tl_seconds_since (start);
    for (int i = 0; i < 4; i++)
        agc_future_destroy (&futures [i]);
    ag_value_destroy (&args);
    if (s_verbose)
        printf ("    one agent %.3f s, four agents %.3f s\n", one_agent,
                four_agents);
    CHECK (one_agent >= 3.99);
    CHECK (four_agents >= 0.99 && four_agents < 2.0 * s_slow);
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
    CHECK (agc_future_wait_all (records, 50, 10000 * s_slow) == 0);
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
static int
s_test_hundred_agents (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [100];
    for (int i = 0; i < 100; i++) {
        agents [i] = s_counter (conn, i);
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
    CHECK (agc_future_wait_all (futures, 100, 30000 * s_slow) == 0);
    double elapsed = tl_seconds_since (start);
    if (s_verbose)
        printf ("    100 agents x 1 s: %.3f s\n", elapsed);
    CHECK (elapsed < 2.0 * s_slow);
    for (int i = 0; i < 100; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        CHECK (s_int_result (futures [i]) == i);
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
    if (rc && s_verbose)
        printf ("    got %d '%s', wanted %d '%s'\n", agc_future_status (future),
                agc_future_reason (future), status, words);
    return rc;
}

static int
s_test_errors (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    CHECK (agc_agent_new (conn, "NoSuchClass", NULL, NULL) == NULL);
    CHECK (agc_status () == AG_NO_CLASS);
    CHECK (strstr (agc_reason (), "NoSuchClass"));

    //  A Counter refuses to overflow (found by fuzzing)
    agc_agent_t *full = s_counter (conn, INT64_MAX - 1);
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
static int
s_raw (void *dealer, const void *env, size_t env_size, const void *body,
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

static int
s_test_hostile_input (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--max-message", "4096", NULL) == 0);
    void *context = zmq_ctx_new ();
    void *dealer = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect (dealer, daemon.endpoint);
    char reason [256];
    uint8_t env [AGP_ENVELOPE_SIZE];
    agp_envelope_t e = { .command = AGP_PING, .corr = 1 };

    //  Not AGP at all: dropped without a reply
    CHECK (s_raw (dealer, "GET / HTTP/1.1", 14, "", 0, 1, 300, NULL, 0) == -1);
    CHECK (s_raw (dealer, "x", 1, NULL, 0, 1, 300, NULL, 0) == -1);
    //  Another version: told so
    agp_envelope_encode (&e, env);
    env [4] = '9';
    CHECK (s_raw (dealer, env, sizeof env, "", 0, 1, 5000, reason,
                  sizeof reason) == AG_BAD_VERSION);
    CHECK (strstr (reason, AGP_SIGNATURE));
    //  Unknown command
    agp_envelope_encode (&e, env);
    env [5] = 0x55;
    CHECK (s_raw (dealer, env, sizeof env, "", 0, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  A frame shorter than an envelope, with a readable correlation id
    agp_envelope_encode (&e, env);
    CHECK (s_raw (dealer, env, 20, "", 0, 1, 5000, reason, sizeof reason)
           == AG_BAD_REQUEST);
    CHECK (strstr (reason, "shorter than 24"));
    //  The envelope alone is a request with a nil body
    CHECK (s_raw (dealer, env, sizeof env, NULL, 0, 1, 5000, NULL, 0)
           == AG_OK);
    //  More than one frame
    CHECK (s_raw (dealer, env, sizeof env, "", 0, 2, 5000, reason,
                  sizeof reason) == AG_BAD_REQUEST);
    CHECK (strstr (reason, "1 frame"));
    CHECK (s_raw (dealer, env, sizeof env, "", 0, 3, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  Bad msgpack bodies for CREATE
    e.command = AGP_CREATE;
    agp_envelope_encode (&e, env);
    const uint8_t lying [] = { 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0 };
    CHECK (s_raw (dealer, env, sizeof env, lying, sizeof lying, 1, 5000,
                  reason, sizeof reason) == AG_BAD_REQUEST);
    CHECK (strstr (reason, "count larger than the message"));
    CHECK (s_raw (dealer, env, sizeof env, "\xc1", 1, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    CHECK (s_raw (dealer, env, sizeof env, "\x92\x01", 2, 1, 5000, NULL, 0)
           == AG_BAD_REQUEST);
    //  Over the size limit
    char big [5000];
    memset (big, 0xc0, sizeof big);
    CHECK (s_raw (dealer, env, sizeof env, big, sizeof big, 1, 5000, reason,
                  sizeof reason) == AG_TOO_LARGE);
    CHECK (strstr (reason, "4096"));
    //  Calls on agents that do not exist, and a bad CALL body
    e.command = AGP_CALL;
    e.agent = 424242;
    agp_envelope_encode (&e, env);
    CHECK (s_raw (dealer, env, sizeof env, "\x92\xa1x\xc0", 4, 1, 5000,
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
    agc_agent_t *agent = s_counter (conn, 1);
    CHECK (agent);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    zmq_close (dealer);
    zmq_ctx_term (context);
    CHECK (s_daemon_stop (&daemon) == 0);
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
        if (s_verbose)
            printf ("   log: %s\n", line);
        if (strstr (line, word1) || (word2 && strstr (line, word2)))
            return true;
    }
    return false;
}

//  Bytes on the daemon's TCP port from something that is not a ZeroMQ
//  peer: refused and logged; clients already connected are unaffected
static int
s_test_garbage (const char *unused)
{
    daemon_t daemon;
    s_capture_stderr = true;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    CHECK (daemon.err >= 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agent = s_counter (conn, 3);
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
        while (poll (&item, 1, 500 * s_slow) == 1
        &&     read (fd, sink, sizeof sink) > 0)
            ;
        close (fd);
    }
    CHECK (s_log_has (&daemon, "refused a connection", "not AGP",
                      10000 * s_slow));
    //  The honest client never noticed
    ag_value_t *count = agc_agent_getattr (agent, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 3);
    ag_value_destroy (&count);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  A server killed mid-call: the pending future fails within the timeout
static int
s_test_killed_server (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 1000);
    agc_agent_t *agent = s_counter (conn, 0);
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
    s_daemon_kill (&daemon);
    start = ag_usecs ();
    CHECK (agc_future_wait (future, 10000) == 0);
    elapsed = tl_seconds_since (start);
    CHECK (agc_future_status (future) == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (future), "dropped"));
    CHECK (elapsed < 0.5 * s_slow);
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
static int
s_test_closed_lingering (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *working = agc_conn_new (daemon.endpoint);
    CHECK (working);
    agc_conn_set_timeout (working, 3000 * s_slow);
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
    agc_conn_set_timeout (closed, 1500 * s_slow);
    CHECK (agc_conn_post (closed, AGP_PING, 0, NULL, 0) == 0);
    agc_conn_destroy (&closed);
    //  Now it connects, again and again, and each connection is dropped
    CHECK (listen (listener, 16) == 0);
    for (int i = 0; i < 3; i++) {
        struct pollfd item = { listener, POLLIN, 0 };
        CHECK (poll (&item, 1, 5000 * s_slow) == 1);
        int peer = accept (listener, NULL, NULL);
        CHECK (peer >= 0);
        close (peer);
    }
    close (listener);
    if (agc_conn_ping (working) < 0) {
        //  Its context could not end either: leave it
        fprintf (stderr, "    the other connection is not served: %s\n",
                 agc_reason ());
        s_daemon_kill (&daemon);
        return -1;
    }
    agc_conn_destroy (&working);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  Results of async calls can be fetched again, by anyone holding the
//  caller's identity and the call's id, until they expire
static int
s_test_fetch (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--retention-ms", "1500", NULL) == 0);
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
    agc_agent_t *agent = s_counter (conn, 0);
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
    CHECK (s_raw (caller, env, sizeof env, NULL, 0, 1, 5000, NULL, 0)
           == AG_OK);

    //  Another socket fetches it while it still runs: the fetch waits
    ag_value_t *fetch = ag_value_new ("[B, u]", "Cfetch-test", (size_t) 11,
                                      (uint64_t) 7);
    e = (agp_envelope_t) { .command = AGP_FETCH, .corr = 1 };
    agp_envelope_encode (&e, env);
    char reason [256];
    CHECK (s_raw (other, env, sizeof env, ag_value_data (fetch),
                  ag_value_size (fetch), 1, 5000, reason, sizeof reason)
           == AG_OK);
    CHECK (streq (reason, "kept"));
    //  And again, now that it is done
    CHECK (s_raw (other, env, sizeof env, ag_value_data (fetch),
                  ag_value_size (fetch), 1, 5000, NULL, 0) == AG_OK);
    //  The caller got its own reply too
    zmq_pollitem_t item = { caller, 0, ZMQ_POLLIN, 0 };
    CHECK (zmq_poll (&item, 1, 5000) == 1);
    //  Unknown call: gone, once it has had a while to come
    ag_value_t *unknown = ag_value_new ("[B, u]", "Cfetch-test", (size_t) 11,
                                        (uint64_t) 8);
    CHECK (s_raw (other, env, sizeof env, ag_value_data (unknown),
                  ag_value_size (unknown), 1, 10000 * s_slow, reason,
                  sizeof reason) == AG_GONE);
    CHECK (strstr (reason, "no result of call 8 here"));
    ag_value_destroy (&unknown);
    //  After the retention time it is gone too: ask until it is
    int status = AG_OK;
    int64_t deadline = ag_usecs () + 10000000;
    while (status == AG_OK && ag_usecs () < deadline) {
        zmq_pollitem_t none = { other, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&none, 1, 200);   //  pace the questions, nothing comes
        status = s_raw (other, env, sizeof env, ag_value_data (fetch),
                        ag_value_size (fetch), 1, 10000 * s_slow, NULL, 0);
    }
    CHECK (status == AG_GONE);
    ag_value_destroy (&fetch);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    zmq_close (caller);
    zmq_close (other);
    zmq_ctx_term (context);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  A stop takes milliseconds, every time: nothing of the server's is
//  left open for czmq's exit handler to wait 200 ms on
static int
s_test_stop_fast (const char *unused)
{
#if defined (__SANITIZE_ADDRESS__)
    bool timed = false;             //  the leak check at exit takes time
#else
    bool timed = !s_valgrind;
#endif
    int runs = timed? 50: 3;
    double slowest = 0;
    for (int i = 0; i < runs; i++) {
        daemon_t daemon;
        CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
        int64_t start = ag_usecs ();
        CHECK (s_daemon_stop (&daemon) == 0);
        double took = tl_seconds_since (start) * 1000;
        if (took > slowest)
            slowest = took;
    }
    if (s_verbose)
        printf ("    %d stops, the slowest %.1f ms\n", runs, slowest);
    //  Generous: a stop takes about 1 ms; the defect was 200 ms
    if (timed)
        CHECK (slowest < 150);
    return 0;
}

//  SIGTERM lets a running call finish and answers it
static int
s_test_graceful_stop (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 1000);
    agc_agent_t *agent = s_counter (conn, 0);
    CHECK (agent);
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "ms", (int64_t) 700,
                                     "tag", "finished");
    agc_future_t *future = agc_agent_call (agent, "slow", args);
    ag_value_destroy (&args);
    //  Make sure it has started before the signal: a thread is busy
    int64_t until = ag_usecs () + 10000000LL * s_slow;
    while (s_info_int (conn, "threads", "busy") != 1 && ag_usecs () < until)
        ;
    CHECK (s_info_int (conn, "threads", "busy") == 1);
    kill (daemon.pid, SIGTERM);
    CHECK (agc_future_wait (future, 10000 * s_slow) == 0);
    CHECK (agc_future_status (future) == AG_OK);
    CHECK (ag_obj_streq (ag_value_object (agc_future_value (future)),
                         "finished"));
    agc_future_destroy (&future);
    CHECK (tl_proc_reap (&daemon, 20000 * s_slow) == 0);
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
static int
s_test_threads (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agents [2] = { s_counter (conn, 0), s_counter (conn, 0) };
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
static int
s_test_deep_burst (const char *endpoint)
{
    int calls = s_valgrind? 20000: 100000;
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = s_counter (conn, 0);
    CHECK (agent);
    agc_future_t **futures = (agc_future_t **) calloc ((size_t) calls, sizeof *futures);
    for (int64_t i = 0; i < calls; i++) {
        ag_value_t *args = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 0,
                                         "tag", i);
        futures [i] = agc_agent_call (agent, "slow", args);
        ag_value_destroy (&args);
    }
    CHECK (agc_future_wait_all (futures, (size_t) calls, 120000 * s_slow) == 0);
    for (int64_t i = 0; i < calls; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        CHECK (s_int_result (futures [i]) == i);
        agc_future_destroy (&futures [i]);
    }
    free (futures);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return 0;
}

//  A 1 MiB argument goes there and back intact
static int
s_test_big_value (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = s_counter (conn, 0);
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

static int
s_test_ipc (const char *unused)
{
    char endpoint [128];
    snprintf (endpoint, sizeof endpoint, "ipc:///tmp/agtest-%d.sock",
              getpid ());
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, endpoint, NULL) == 0);
    CHECK (streq (daemon.endpoint, endpoint));
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = s_counter (conn, 41);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    ag_value_t *sum = agc_agent_call_value (agent, "add", one);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 42);
    ag_value_destroy (&sum);
    ag_value_destroy (&one);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

static int
s_test_command_line (const char *unused)
{
    char message [512];
    char plugin [300];
    snprintf (plugin, sizeof plugin, "%s/plugins/seed.so", s_build);
    const char *missing [] = { "-f", "--plugin", "/nonexistent/x.so", NULL };
    CHECK (s_agentd_run (message, sizeof message, missing) == 1);
    CHECK (strstr (message, "/nonexistent/x.so"));
    const char *twice [] = { "-f", "--plugin", plugin, "--plugin", plugin,
                             NULL };
    CHECK (s_agentd_run (message, sizeof message, twice) == 1);
    CHECK (strstr (message, "already registered"));
    const char *not_plugin [] = { "-f", "--plugin", "/lib/x86_64-linux-gnu/libc.so.6",
                                  NULL };
    if (access (not_plugin [2], R_OK) == 0) {
        CHECK (s_agentd_run (message, sizeof message, not_plugin) == 1);
        CHECK (strstr (message, "not an agent plugin"));
    }
    const char *bogus [] = { "--bogus", NULL };
    CHECK (s_agentd_run (message, sizeof message, bogus) == 2);
    const char *endpoint [] = { "-f", "-e", "http://nope", NULL };
    CHECK (s_agentd_run (message, sizeof message, endpoint) == 2);
    CHECK (strstr (message, "http://nope"));
    const char *number [] = { "-f", "--threads-max", "lots", NULL };
    CHECK (s_agentd_run (message, sizeof message, number) == 2);
    CHECK (strstr (message, "server/threads_max"));
    //  A port already in use stops the start, naming the endpoint
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    const char *clash [] = { "-f", "-e", daemon.endpoint, NULL };
    CHECK (s_agentd_run (message, sizeof message, clash) == 1);
    CHECK (strstr (message, "cannot bind"));
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  The embedded server: a program serving classes linked into it
static int
s_test_embedded (const char *unused)
{
    agd_server_t *server = agd_server_new ();
    CHECK (agd_server_add_class (server, &s_tally_class) == 0);
    CHECK (agd_server_add_class (server, &s_tally_class) == -1);
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
static int
s_test_waiting (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, 300);
    agc_agent_t *agent = s_counter (conn, 0);
    CHECK (agent);
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "ms", (int64_t) 1200,
                                     "tag", "late");
    agc_future_t *future = agc_agent_call (agent, "slow", args);
    int64_t start = ag_usecs ();
    CHECK (agc_future_wait (future, 100) == -1);
    CHECK (agc_status () == AG_TIMEOUT);
    CHECK (tl_seconds_since (start) < 1.0 * s_slow);
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
    CHECK (s_daemon_start (&other, NULL, NULL) == 0);
    agc_conn_t *conn2 = agc_conn_new (other.endpoint);
    agc_agent_t *agent2 = s_counter (conn2, 0);
    CHECK (agent2);
    ag_value_t *slow = ag_value_new ("{s:i}", "ms", (int64_t) 2000);
    ag_value_t *quick = ag_value_new ("{s:i}", "ms", (int64_t) 200);
    agc_future_t *futures [2] = {
        agc_agent_call (agent, "slow", slow),
        agc_agent_call (agent2, "slow", quick)
    };
    CHECK (agc_future_wait_any (futures, 2, 10000 * s_slow) == 1);
    CHECK (!agc_future_ready (futures [0]));
    CHECK (agc_future_wait_all (futures, 2, 10000 * s_slow) == 0);
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
    CHECK (s_daemon_stop (&other) == 0);
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
static int
s_test_pool (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--threads-min", "1",
                           "--threads-max", "8", "--idle-ms", "300",
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agents [12];
    for (int i = 0; i < 12; i++) {
        agents [i] = s_counter (conn, 0);
        CHECK (agents [i]);
    }
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 500);
    agc_future_t *futures [12];
    int64_t start = ag_usecs ();
    for (int i = 0; i < 12; i++)
        futures [i] = agc_agent_call (agents [i], "slow", args);
    CHECK (s_threads_total (conn) <= 8);                //  never past the max
    CHECK (agc_future_wait_all (futures, 12, 20000 * s_slow) == 0);
    double elapsed = tl_seconds_since (start);
    //  12 calls of 0.5 s on 8 threads: two rounds, not twelve (one thread)
    //  nor one (no maximum)
    CHECK (elapsed >= 0.99 && elapsed < 2.5 * s_slow);
    for (int i = 0; i < 12; i++) {
        CHECK (agc_future_status (futures [i]) == AG_OK);
        agc_future_destroy (&futures [i]);
    }
    ag_value_destroy (&args);
    //  Idle threads go, down to the minimum: ask until they have
    int64_t total = 8;
    int64_t deadline = ag_usecs () + 20000000LL * s_slow;
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
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  A blocked method holds up only its own agent: calls to other agents
//  that reached the server with it run on other threads meanwhile
static int
s_test_head_of_line (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--threads-min", "1",
                           "--threads-max", "4", NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *agents [8];
    for (int i = 0; i < 8; i++) {
        agents [i] = s_counter (conn, 0);
        CHECK (agents [i]);
    }
    int64_t ms = 4000 * s_slow;
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
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  ---------------------------------------------------------------------
//  Faults and limits

//  The client the client_gone test kills: three agents it owns and one
//  detached, their ids on stdout, then wait
static int
s_hold (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    for (int i = 0; i < 4; i++) {
        agc_agent_t *agent = i < 3? agc_agent_new (conn, "Counter", NULL, NULL)
                                  : agc_agent_new_detached (conn, "Counter",
                                                            NULL, NULL);
        if (!agent)
            return 1;
        printf ("%" PRIu64 "\n", agc_agent_id (agent));
        fflush (stdout);
    }
    while (true)
        pause ();
}

//  Another process, for the named-agent test: find NAME, add 7 to it,
//  try to make another agent of that name, and print what happened
static int
s_lookup_mode (const char *endpoint, const char *name)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *agent = agc_agent_lookup (conn, name);
    if (!agent) {
        printf ("lookup failed %d %s\n", agc_status (), agc_reason ());
        agc_conn_destroy (&conn);
        return 1;
    }
    ag_value_t *seven = ag_value_new ("i", (int64_t) 7);
    ag_value_t *sum = agc_agent_call_value (agent, "add", seven);
    printf ("id %" PRIu64 " sum %" PRId64 "\n", agc_agent_id (agent),
            ag_obj_int (ag_value_object (sum), -1));
    agc_agent_t *again = agc_agent_new (conn, "Counter", NULL, name);
    printf ("create %d\n", again? AG_OK: agc_status ());
    //  By a cluster holding this server among others, too
    agc_cluster_t *cluster = agc_cluster_new (getenv ("AGTEST_CLUSTER"),
                                              AGC_ROUND_ROBIN);
    agc_agent_t *placed = cluster? agc_cluster_lookup (cluster, "placed")
                                 : NULL;
    printf ("placed %" PRIu64 "\n", placed? agc_agent_id (placed): 0);
    agc_agent_release (&placed);
    agc_cluster_destroy (&cluster);
    agc_agent_destroy (&again);
    ag_value_destroy (&sum);
    ag_value_destroy (&seven);
    agc_agent_release (&agent);
    agc_conn_destroy (&conn);
    return 0;
}

//  Run this program with the arguments given (after its name) and the
//  environment entry env (may be NULL); its output goes to out. Returns
//  its exit status, or -1 if it did not exit within msecs.
static int
s_run_self (const char *const *args, const char *env, char *out,
            size_t size, int msecs)
{
    char agtest [300];
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", s_build);
    const char *argv [16] = { agtest };
    for (int i = 0; args [i] && i < 14; i++)
        argv [i + 1] = args [i];
    const char *envp [] = { env, NULL };
    tl_proc_t run;
    if (tl_proc_spawn (&run, argv, envp, NULL, TL_ERR_INHERIT, -1))
        return -1;
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    tl_read_all (run.out, out, size, msecs);
    close (run.out);
    run.out = -1;
    int64_t left = MAX (0, (deadline - ag_usecs ()) / 1000);
    int status = tl_proc_reap (&run, (int) left);
    if (status == -1) {
        kill (run.pid, SIGKILL);
        tl_proc_reap (&run, 10000);
    }
    return status;
}

//  A named agent made by this process, reached by name from another:
//  its handle calls the same agent, the name stays taken, agentctl
//  lists it; placed through a cluster, another process finds it too
static int
s_test_named_across (const char *endpoint)
{
    daemon_t other;
    CHECK (s_daemon_start (&other, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *ledger = s_counter (conn, 0);
    agc_agent_destroy (&ledger);
    ag_value_t *args = ag_value_new ("{s:i}", "start", (int64_t) 5);
    ledger = agc_agent_new (conn, "Counter", args, "ledger");
    CHECK (ledger);
    char list [700], env [800];
    snprintf (list, sizeof list, "%s,%s", other.endpoint, endpoint);
    snprintf (env, sizeof env, "AGTEST_CLUSTER=%s", list);
    agc_cluster_t *cluster = agc_cluster_new (list, AGC_LEAST_LOADED);
    CHECK (cluster);
    agc_agent_t *placed = agc_cluster_create (cluster, "Counter", NULL,
                                              "placed");
    CHECK (placed);

    char out [1000];
    const char *argv [] = { "--lookup", endpoint, "ledger", s_build, NULL };
    CHECK (s_run_self (argv, env, out, sizeof out, 20000 * s_slow) == 0);
    if (s_verbose)
        printf ("   the other process said: %s", out);
    char expect [200];
    snprintf (expect, sizeof expect, "id %" PRIu64 " sum 12\ncreate %d\n"
              "placed %" PRIu64 "\n", agc_agent_id (ledger), AG_NAME_TAKEN,
              agc_agent_id (placed));
    CHECK (streq (out, expect));
    //  The other process's add went to this very agent
    ag_value_t *count = agc_agent_getattr (ledger, "count");
    CHECK (ag_obj_int (ag_value_object (count), -1) == 12);
    ag_value_destroy (&count);

    //  agentctl, a third process, lists the name and calls by it
    char command [600];
    snprintf (command, sizeof command, "%s/agentctl -e %s list", s_build,
              endpoint);
    FILE *ctl = popen (command, "r");
    CHECK (ctl);
    bool listed = false;
    char line [300];
    while (fgets (line, sizeof line, ctl))
        listed |= strstr (line, " ledger ") != NULL
               && strstr (line, "Counter") != NULL;
    CHECK (pclose (ctl) == 0);
    CHECK (listed);

    //  Deleted, the name is free, and gone for the other process too
    CHECK (agc_agent_delete (&ledger) == 0);
    CHECK (s_run_self (argv, NULL, out, sizeof out, 20000 * s_slow) == 1);
    CHECK (strstr (out, "lookup failed 404 no agent named 'ledger'"));
    ledger = agc_agent_new (conn, "Counter", args, "ledger");
    CHECK (ledger);
    agc_agent_destroy (&ledger);
    agc_agent_destroy (&placed);
    agc_cluster_destroy (&cluster);
    ag_value_destroy (&args);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&other) == 0);
    return 0;
}

//  How many agents each server of a cluster holds
static void
s_agents_held (agc_cluster_t *cluster, int64_t *held)
{
    for (size_t i = 0; i < agc_cluster_size (cluster); i++)
        held [i] = s_info_int (agc_cluster_conn (cluster, i), NULL,
                               "agents");
}

//  Placement over three servers: round robin spreads evenly; least
//  loaded avoids the server with work pending; a dead server is passed
//  over; names go by hash, the same from any list order
static int
s_test_placement (const char *unused)
{
    daemon_t daemons [3];
    char list [1000] = "", reversed [1000] = "";
    for (int i = 0; i < 3; i++) {
        CHECK (s_daemon_start (&daemons [i], NULL, NULL) == 0);
        snprintf (list + strlen (list), sizeof list - strlen (list), "%s%s",
                  i? ", ": "", daemons [i].endpoint);
    }
    for (int i = 2; i >= 0; i--)
        snprintf (reversed + strlen (reversed),
                  sizeof reversed - strlen (reversed), "%s%s",
                  i < 2? " ": "", daemons [i].endpoint);
    //  Bad lists
    CHECK (agc_cluster_new ("", AGC_ROUND_ROBIN) == NULL);
    CHECK (agc_status () == AG_BAD_REQUEST);
    CHECK (agc_cluster_new ("tcp://127.0.0.1:1,http://x", AGC_ROUND_ROBIN)
           == NULL);
    CHECK (agc_status () == AG_BAD_REQUEST);
    char twice [700];
    snprintf (twice, sizeof twice, "%s %s", daemons [0].endpoint,
              daemons [0].endpoint);
    CHECK (agc_cluster_new (twice, AGC_ROUND_ROBIN) == NULL);
    CHECK (strstr (agc_reason (), "twice"));
    CHECK (agc_cluster_new (list, (agc_placement_t) 7) == NULL);

    //  Round robin: 9 agents, 3 on each
    agc_cluster_t *cluster = agc_cluster_new (list, AGC_ROUND_ROBIN);
    CHECK (cluster && agc_cluster_size (cluster) == 3);
    agc_agent_t *agents [9];
    for (int i = 0; i < 9; i++)
        CHECK ((agents [i] = agc_cluster_create (cluster, "Counter", NULL,
                                                 NULL)));
    int64_t held [3];
    s_agents_held (cluster, held);
    CHECK (held [0] == 3 && held [1] == 3 && held [2] == 3);
    //  An error that would be the same anywhere is not tried elsewhere
    ag_value_t *bad = ag_value_new ("{s:i}", "label", (int64_t) 5);
    CHECK (agc_cluster_create (cluster, "Counter", bad, NULL) == NULL);
    CHECK (agc_status () == AG_BAD_ARGS);
    ag_value_destroy (&bad);
    for (int i = 0; i < 9; i++)
        CHECK (agc_agent_delete (&agents [i]) == 0);
    agc_cluster_destroy (&cluster);

    //  Least loaded: four slow calls pending on the first server, so new
    //  agents go to the other two, in turn
    cluster = agc_cluster_new (list, AGC_LEAST_LOADED);
    CHECK (cluster);
    agc_future_t *busy [4];
    agc_agent_t *workers [4];
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 1500 * s_slow);
    for (int i = 0; i < 4; i++) {
        CHECK ((workers [i] = s_counter (agc_cluster_conn (cluster, 0), 0)));
        busy [i] = agc_agent_call (workers [i], "slow", nap);
    }
    CHECK (s_info_int (agc_cluster_conn (cluster, 0), NULL, "pending") > 0);
    for (int i = 0; i < 4; i++)
        CHECK ((agents [i] = agc_cluster_create (cluster, "Counter", NULL,
                                                 NULL)));
    s_agents_held (cluster, held);
    if (s_verbose)
        printf ("   least loaded: agents held %" PRId64 ", %" PRId64 ", %"
                PRId64 "\n", held [0], held [1], held [2]);
    CHECK (held [0] == 4 && held [1] == 2 && held [2] == 2);
    CHECK (agc_future_wait_all (busy, 4, 20000 * s_slow) == 0);
    for (int i = 0; i < 4; i++) {
        agc_future_destroy (&busy [i]);
        CHECK (agc_agent_delete (&workers [i]) == 0);
        CHECK (agc_agent_delete (&agents [i]) == 0);
    }
    ag_value_destroy (&nap);

    //  Named: the home is the same whatever the order of the list;
    //  the name is unique across the cluster
    agc_cluster_t *other = agc_cluster_new (reversed, AGC_ROUND_ROBIN);
    CHECK (other);
    agc_agent_t *named [6];
    for (int i = 0; i < 6; i++) {
        char name [32];
        snprintf (name, sizeof name, "n%d", i);
        CHECK ((named [i] = agc_cluster_create (cluster, "Counter", NULL,
                                                name)));
        agc_agent_t *found = agc_cluster_lookup (other, name);
        CHECK (found && agc_agent_id (found) == agc_agent_id (named [i]));
        CHECK (streq (agc_conn_endpoint (agc_agent_conn (found)),
                      agc_conn_endpoint (agc_agent_conn (named [i]))));
        agc_agent_release (&found);
        CHECK (agc_cluster_create (other, "Counter", NULL, name) == NULL);
        CHECK (agc_status () == AG_NAME_TAKEN);
    }
    //  A name made on a server directly is found too
    agc_agent_t *direct [3];
    for (int i = 0; i < 3; i++) {
        char name [32];
        snprintf (name, sizeof name, "direct%d", i);
        CHECK ((direct [i] = agc_agent_new (agc_cluster_conn (cluster, i),
                                            "Counter", NULL, name)));
        agc_agent_t *found = agc_cluster_lookup (other, name);
        CHECK (found && agc_agent_id (found) == agc_agent_id (direct [i]));
        agc_agent_release (&found);
        CHECK (agc_agent_delete (&direct [i]) == 0);
    }
    CHECK (agc_cluster_lookup (other, "nobody") == NULL);
    CHECK (agc_status () == AG_NO_AGENT);
    for (int i = 0; i < 6; i++)
        CHECK (agc_agent_delete (&named [i]) == 0);
    agc_cluster_destroy (&other);
    agc_cluster_destroy (&cluster);

    //  A dead server is passed over: every create lands on a live one
    char dead [400];
    snprintf (dead, sizeof dead, "%s", daemons [1].endpoint);
    CHECK (s_daemon_stop (&daemons [1]) == 0);
    for (int placement = 0; placement < 2; placement++) {
        cluster = agc_cluster_new (list, (agc_placement_t) placement);
        agc_cluster_set_timeout (cluster, 1000 * s_slow);
        for (int i = 0; i < 4; i++) {
            CHECK ((agents [i] = agc_cluster_create (cluster, "Counter",
                                                     NULL, NULL)));
            CHECK (!streq (agc_conn_endpoint (agc_agent_conn (agents [i])),
                           dead));
        }
        for (int i = 0; i < 4; i++)
            CHECK (agc_agent_delete (&agents [i]) == 0);
        agc_cluster_destroy (&cluster);
    }
    //  Lookups with a server dead: a name is found wherever it is, and
    //  one nobody has is not claimed absent from the dead server
    cluster = agc_cluster_new (list, AGC_ROUND_ROBIN);
    agc_cluster_set_timeout (cluster, 1000 * s_slow);
    agc_agent_t *live = agc_agent_new (agc_cluster_conn (cluster, 2),
                                       "Counter", NULL, "live-one");
    CHECK (live);
    agc_agent_t *found = agc_cluster_lookup (cluster, "live-one");
    CHECK (found && agc_agent_id (found) == agc_agent_id (live));
    agc_agent_release (&found);
    CHECK (agc_cluster_lookup (cluster, "nobody") == NULL);
    if (s_verbose)
        printf ("   lookup with a server dead: %d %s\n", agc_status (),
                agc_reason ());
    CHECK (agc_status () == AG_NO_AGENT || agc_status () == AG_UNREACHABLE);
    CHECK (strstr (agc_reason (), dead));
    CHECK (agc_agent_delete (&live) == 0);
    agc_cluster_destroy (&cluster);
    //  All dead: the error says so, naming each
    for (int placement = 0; placement < 2; placement++) {
        cluster = agc_cluster_new (dead, (agc_placement_t) placement);
        agc_cluster_set_timeout (cluster, 500 * s_slow);
        CHECK (agc_cluster_create (cluster, "Counter", NULL, NULL) == NULL);
        CHECK (agc_status () == AG_UNREACHABLE);
        CHECK (strstr (agc_reason (), "no server in the cluster took the"
                       " agent"));
        CHECK (strstr (agc_reason (), dead));
        agc_cluster_destroy (&cluster);
    }
    CHECK (s_daemon_stop (&daemons [0]) == 0);
    CHECK (s_daemon_stop (&daemons [2]) == 0);
    return 0;
}

//  True if the agent exists on the server
static bool
s_exists (agc_conn_t *conn, uint64_t id)
{
    agc_agent_t *agent = agc_agent_attach (conn, id);
    bool exists = agent != NULL;
    agc_agent_release (&agent);
    return exists;
}

//  A client killed while it owns agents: they go after the client grace
//  time, not before; its detached agent stays, and so do the agents of
//  a client still connected
static int
s_test_client_gone (const char *unused)
{
    int grace_ms = 1500 * s_slow;
    char grace [16];
    snprintf (grace, sizeof grace, "%d", grace_ms);
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--client-grace-ms", grace,
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *mine = s_counter (conn, 7);
    CHECK (mine);

    char agtest [300];
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", s_build);
    const char *argv [] = { agtest, "--hold", daemon.endpoint, s_build, NULL };
    tl_proc_t holder;
    CHECK (tl_proc_spawn (&holder, argv, NULL, NULL, TL_ERR_INHERIT, -1)
           == 0);
    uint64_t ids [4];
    char line [64];
    for (int i = 0; i < 4; i++) {
        CHECK (tl_read_line (holder.out, line, sizeof line, 20000 * s_slow)
               > 0);
        ids [i] = strtoull (line, NULL, 10);
        CHECK (s_exists (conn, ids [i]));
    }
    kill (holder.pid, SIGKILL);
    tl_proc_reap (&holder, 10000);
    int64_t killed = ag_usecs ();
    //  Within the grace time they are all still there
    for (int i = 0; i < 4; i++)
        CHECK (s_exists (conn, ids [i]) || tl_seconds_since (killed) * 1000
                                           >= grace_ms);
    //  Then the owned ones go
    int64_t deadline = killed + (int64_t) (grace_ms + 20000 * s_slow) * 1000;
    while (s_exists (conn, ids [2]) && ag_usecs () < deadline)
        ;
    CHECK (tl_seconds_since (killed) * 1000 >= grace_ms);
    for (int i = 0; i < 3; i++)
        CHECK (!s_exists (conn, ids [i]));
    CHECK (s_exists (conn, ids [3]));
    //  The live client's agent stays, and works
    ag_value_t *count = agc_agent_getattr (mine, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 7);
    ag_value_destroy (&count);
    agc_agent_t *detached = agc_agent_attach (conn, ids [3]);
    CHECK (agc_agent_delete (&detached) == 0);
    agc_agent_destroy (&mine);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  agentd killed and started again on the same endpoint: the client
//  reconnects, new calls work, old agents are gone
static int
s_test_restart (const char *unused)
{
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, NULL) == 0);
    char endpoint [320];
    snprintf (endpoint, sizeof endpoint, "%s", daemon.endpoint);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, 2000 * s_slow);
    agc_agent_t *before = s_counter (conn, 1);
    CHECK (before);
    //  A call pending when the server dies does not wait for the new one
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 60000);
    agc_future_t *lost = agc_agent_call (before, "slow", nap);
    ag_value_destroy (&nap);
    CHECK (agc_future_wait (lost, 200) == -1);
    kill (daemon.pid, SIGKILL);
    CHECK (tl_proc_reap (&daemon, 10000 * s_slow) == 128 + SIGKILL);
    CHECK (s_daemon_start (&daemon, endpoint, NULL) == 0);
    CHECK (streq (daemon.endpoint, endpoint));
    CHECK (agc_future_wait (lost, AGC_FOREVER) == 0);
    CHECK (agc_future_status (lost) == AG_UNREACHABLE);
    agc_future_destroy (&lost);
    agc_agent_t *after = s_counter (conn, 5);
    CHECK (after);
    ag_value_t *count = agc_agent_getattr (after, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 5);
    ag_value_destroy (&count);
    agc_future_t *future = agc_agent_call (before, "add", NULL);
    CHECK (agc_future_status (future) == AG_NO_AGENT);
    agc_future_destroy (&future);
    agc_agent_release (&before);
    agc_agent_destroy (&after);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  A fake server that answers only PING, naming one instance in its
//  first answer and another in the rest: a server restarted behind a
//  connection that did not drop (a proxy, a NAT)
typedef struct {
    void *socket;
    atomic_bool stop;
} fake_t;

static void *
s_fake_server (void *arg)
{
    fake_t *fake = (fake_t *) arg;
    int pongs = 0;
    while (!atomic_load (&fake->stop)) {
        zmq_pollitem_t item = { fake->socket, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        zmq_msg_t routing, frame;
        zmq_msg_init (&routing);
        zmq_msg_init (&frame);
        zmq_msg_recv (&routing, fake->socket, 0);
        zmq_msg_recv (&frame, fake->socket, 0);
        agp_envelope_t env;
        if (agp_envelope_decode (&env, zmq_msg_data (&frame),
                                 zmq_msg_size (&frame)) == 0
        &&  env.command == AGP_PING) {
            ag_value_t *pong = ag_value_new ("{s:s}", "instance",
                                             pongs++? "bbbbbbbbbbbbbbbb"
                                                    : "aaaaaaaaaaaaaaaa");
            agp_envelope_t reply = { .command = AGP_PING | AGP_REPLY,
                                     .word = AG_OK, .corr = env.corr };
            agp_send (fake->socket, &routing, &reply, ag_value_data (pong),
                      ag_value_size (pong), NULL, 0);
            ag_value_destroy (&pong);
        }
        else
            zmq_msg_close (&routing);
        zmq_msg_close (&frame);
    }
    return NULL;
}

static int
s_test_restart_behind (const char *unused)
{
    fake_t fake;
    fake.socket = zmq_socket (zsys_init (), ZMQ_ROUTER);
    atomic_init (&fake.stop, false);
    int zero = 0;
    zmq_setsockopt (fake.socket, ZMQ_LINGER, &zero, sizeof zero);
    CHECK (zmq_bind (fake.socket, "tcp://127.0.0.1:*") == 0);
    char endpoint [256];
    size_t size = sizeof endpoint;
    zmq_getsockopt (fake.socket, ZMQ_LAST_ENDPOINT, endpoint, &size);
    pthread_t thread;
    CHECK (pthread_create (&thread, NULL, s_fake_server, &fake) == 0);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, 400 * s_slow);
    //  The first request goes with a ping, answered by the first
    //  instance; the ping after a quarter of the timeout of silence is
    //  answered by another, and the call fails then, not at the timeout
    agc_future_t *lost = agc_conn_request (conn, AGP_CALL, 1, 0,
                                           "\x92\xa3" "add" "\x01", 6);
    int64_t start = ag_usecs ();
    CHECK (agc_future_wait (lost, AGC_FOREVER) == 0);
    double waited = tl_seconds_since (start);
    if (s_verbose)
        printf ("   failed after %.3f s: %s\n", waited,
                agc_future_reason (lost));
    CHECK (agc_future_status (lost) == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (lost), "restarted"));
    CHECK (strstr (agc_future_reason (lost), "aaaaaaaaaaaaaaaa"));
    CHECK (waited < 0.4 * s_slow);
    agc_future_destroy (&lost);
    agc_conn_destroy (&conn);
    atomic_store (&fake.stop, true);
    pthread_join (thread, NULL);
    zmq_close (fake.socket);
    return 0;
}

//  Each limit answers 302 with the setting's name, and frees up again
static int
s_test_limits (const char *unused)
{
    char path [] = "/tmp/agtest_limits_XXXXXX";
    int fd = mkstemp (path);
    CHECK (fd >= 0);
    const char *text = "server\n    max_agents_per_client = 3\n"
                       "    max_depth = 4\n    max_elements = 100\n";
    CHECK (write (fd, text, strlen (text)) == (ssize_t) strlen (text));
    close (fd);
    daemon_t daemon;
    int rc = s_daemon_start (&daemon, NULL, "-c", path, "--max-agents", "5",
                             "--max-pending", "100", NULL);
    unlink (path);
    CHECK (rc == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_t *other = agc_conn_new (daemon.endpoint);

    //  Agents one client made; detached ones count too
    agc_agent_t *agents [6] = { NULL };
    for (int i = 0; i < 3; i++)
        CHECK ((agents [i] = s_counter (conn, 0)));
    CHECK (s_counter (conn, 0) == NULL);
    CHECK (agc_status () == AG_BUSY);
    CHECK (strstr (agc_reason (), "server/max_agents_per_client"));
    CHECK (!agc_agent_new_detached (conn, "Counter", NULL, NULL));
    CHECK (strstr (agc_reason (), "server/max_agents_per_client"));
    agc_agent_t *spare = s_counter (other, 0);
    CHECK (spare);
    agc_agent_delete (&spare);
    CHECK ((agents [3] = agc_agent_new_detached (other, "Counter", NULL,
                                                 NULL)));
    //  Agents on the server
    CHECK ((agents [4] = s_counter (other, 0)));
    CHECK (s_counter (other, 0) == NULL);
    CHECK (agc_status () == AG_BUSY);
    CHECK (strstr (agc_reason (), "server/max_agents"));
    agc_agent_delete (&agents [4]);
    CHECK ((agents [4] = s_counter (other, 0)));

    //  Requests one client has pending: one call blocks the agent, 99
    //  more fit behind it, the next 100 are refused at once
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 1000 * s_slow);
    agc_future_t *futures [200];
    futures [0] = agc_agent_call (agents [0], "slow", nap);
    ag_value_destroy (&nap);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    for (int i = 1; i < 200; i++)
        futures [i] = agc_agent_call (agents [0], "bump", one);
    ag_value_destroy (&one);
    CHECK (agc_future_wait_all (futures, 200, 20000 * s_slow) == 0);
    int ok = 0, busy = 0;
    for (int i = 0; i < 200; i++) {
        int status = agc_future_status (futures [i]);
        if (status == AG_BUSY) {
            busy++;
            CHECK (strstr (agc_future_reason (futures [i]),
                           "server/max_pending_per_client"));
        }
        else
            ok += status == AG_OK;
        agc_future_destroy (&futures [i]);
    }
    CHECK (ok == 100 && busy == 100);
    //  msgpack nesting and element counts: the body [method, args] is
    //  one level and one element more than args
    ag_value_t *deep = ag_value_new ("[[[i]]]", (int64_t) 1);
    agc_future_t *refused = agc_agent_call (agents [1], "echo", deep);
    CHECK (agc_future_status (refused) == AG_BAD_REQUEST);
    CHECK (strstr (agc_future_reason (refused), "nested too deep"));
    agc_future_destroy (&refused);
    ag_value_destroy (&deep);
    deep = ag_value_new ("[[i]]", (int64_t) 1);
    agc_future_t *echoed = agc_agent_call (agents [1], "echo", deep);
    CHECK (agc_future_status (echoed) == AG_OK);
    agc_future_destroy (&echoed);
    ag_value_destroy (&deep);
    msgpack_sbuffer wide;
    msgpack_sbuffer_init (&wide);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &wide, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, 2);
    msgpack_pack_str_with_body (&packer, "echo", 4);
    msgpack_pack_array (&packer, 98);
    for (int i = 0; i < 98; i++)
        msgpack_pack_int (&packer, i);
    refused = agc_conn_request (conn, AGP_CALL, agc_agent_id (agents [1]), 0,
                                wide.data, wide.size);
    CHECK (agc_future_wait (refused, 10000 * s_slow) == 0);
    CHECK (agc_future_status (refused) == AG_BAD_REQUEST);
    CHECK (strstr (agc_future_reason (refused), "too many elements"));
    agc_future_destroy (&refused);
    msgpack_sbuffer_destroy (&wide);

    //  Another client is not held back by it, and the first recovers
    ag_value_t *count = agc_agent_getattr (agents [4], "count");
    CHECK (count);
    ag_value_destroy (&count);
    count = agc_agent_getattr (agents [0], "count");
    CHECK (count);
    ag_value_destroy (&count);
    for (int i = 0; i < 6; i++)
        agc_agent_delete (&agents [i]);
    agc_conn_destroy (&other);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  One client sends a million requests as fast as it can: every one is
//  answered, with its result or busy, and the daemon's memory stays
//  bounded by the limits, not by the flood
static int
s_test_flood (const char *unused)
{
    int calls = s_valgrind? 50000: 1000000;
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--max-pending", "10000",
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 60000 * s_slow);
    agc_agent_t *agents [4];
    for (int i = 0; i < 4; i++)
        CHECK ((agents [i] = s_counter (conn, 0)));
    int64_t base_kib = tl_peak_rss_kib (daemon.pid);
    agc_future_t **futures = (agc_future_t **)
        calloc ((size_t) calls, sizeof *futures);
    CHECK (futures);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    for (int i = 0; i < calls; i++)
        futures [i] = agc_agent_call (agents [i % 4], "bump", one);
    ag_value_destroy (&one);
    CHECK (agc_future_wait_all (futures, (size_t) calls, 300000 * s_slow) == 0);
    int64_t ok = 0, busy = 0, other = 0;
    for (int i = 0; i < calls; i++) {
        int status = agc_future_status (futures [i]);
        ok += status == AG_OK;
        busy += status == AG_BUSY;
        other += status != AG_OK && status != AG_BUSY;
        agc_future_destroy (&futures [i]);
    }
    free (futures);
    int64_t peak_kib = tl_peak_rss_kib (daemon.pid);
    //  What the counters say was added matches what was answered OK
    int64_t total = 0;
    for (int i = 0; i < 4; i++) {
        ag_value_t *count = agc_agent_getattr (agents [i], "count");
        total += ag_obj_int (ag_value_object (count), -1000000);
        ag_value_destroy (&count);
    }
    if (s_verbose)
        printf ("   flood: %d calls, %" PRId64 " ok, %" PRId64 " busy, daemon"
                " peak RSS %" PRId64 " KiB (%" PRId64 " KiB before)\n",
                calls, ok, busy, peak_kib, base_kib);
    CHECK (other == 0 && ok + busy == calls && ok > 0);
    CHECK (total == ok);
    //  64 MiB; AddressSanitizer keeps 256 MiB of freed memory in
    //  quarantine, and valgrind a queue of its own
    int64_t bound_kib = 64 * 1024;
#if defined (__SANITIZE_ADDRESS__)
    bound_kib += 512 * 1024;
#endif
    if (s_valgrind)
        bound_kib += 256 * 1024;
    CHECK (peak_kib > 0 && peak_kib - base_kib < bound_kib);
    for (int i = 0; i < 4; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  The served count INFO reports
static int64_t
s_served (agc_conn_t *conn)
{
    ag_value_t *info = agc_conn_info (conn);
    int64_t served = ag_obj_int (ag_obj_get (ag_obj_get (
        ag_value_object (info), "calls"), "served"), -1);
    ag_value_destroy (&info);
    return served;
}

//  A million calls across 100 agents through a deliberately small
//  inbound queue: each answered once, with its own result
static int
s_test_small_hwm (const char *unused)
{
    int calls = s_valgrind? 50000: 1000000;
    int window = 20000;
    daemon_t daemon;
    CHECK (s_daemon_start (&daemon, NULL, "--inbound-hwm", "16", NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 60000 * s_slow);
    agc_agent_t *agents [100];
    for (int i = 0; i < 100; i++)
        CHECK ((agents [i] = s_counter (conn, 0)));
    int64_t served = s_served (conn);
    agc_future_t **ring = (agc_future_t **) calloc ((size_t) window,
                                                    sizeof *ring);
    int64_t checked = 0;
    for (int64_t i = 0; i < calls + window; i++) {
        agc_future_t **slot = &ring [i % window];
        if (*slot) {
            CHECK (agc_future_wait (*slot, 60000 * s_slow) == 0);
            CHECK (agc_future_status (*slot) == AG_OK);
            CHECK (ag_obj_int (ag_value_object (agc_future_value (*slot)),
                               -1) == i - window);
            agc_future_destroy (slot);
            checked++;
        }
        if (i < calls) {
            ag_value_t *args = ag_value_new ("i", i);
            *slot = agc_agent_call (agents [i % 100], "echo_async", args);
            ag_value_destroy (&args);
        }
    }
    free (ring);
    CHECK (checked == calls);
    //  The server sent one reply for each: none twice (INFO answers
    //  itself before it counts)
    CHECK (s_served (conn) - served == calls + 1);
    for (int i = 0; i < 100; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  Futures as arguments across three servers: y = a (x), z = b (y),
//  w = c (z) go out at once, and the values flow a -> b -> c directly
static int
s_test_futures (const char *endpoint)
{
    daemon_t one, two;
    CHECK (s_daemon_start (&one, NULL, "--peer", "local", NULL) == 0);
    CHECK (s_daemon_start (&two, NULL, "--peer", "local", NULL) == 0);
    agc_conn_t *conns [3] = {
        agc_conn_new (one.endpoint), agc_conn_new (two.endpoint),
        agc_conn_new (endpoint)
    };
    agc_agent_t *a = s_counter (conns [0], 0);
    agc_agent_t *b = s_counter (conns [1], 0);
    agc_agent_t *c = s_counter (conns [2], 0);
    CHECK (a && b && c);
    int64_t fetched [3];
    for (int i = 0; i < 3; i++)
        fetched [i] = s_info_int (conns [i], NULL, "fetched");

    int64_t start = ag_usecs ();
    ag_value_t *x = ag_value_new ("{s:i, s:s}", "ms", (int64_t) 300,
                                  "tag", "hello");
    agc_future_t *y = agc_agent_call (a, "slow", x);
    ag_value_t *ref_y = agc_future_ref (y);
    CHECK (ref_y);
    agc_future_t *z = agc_agent_call (b, "echo_async", ref_y);
    ag_value_t *ref_z = agc_future_ref (z);
    //  Inside a value, too: a Msg-like map
    ag_value_t *msg = ag_value_new ("{s:s, s:v}", "role", "user",
                                    "content", ref_z);
    agc_future_t *w = agc_agent_call (c, "echo_async", msg);
    double sent = tl_seconds_since (start);
    CHECK (!agc_future_ready (w));
    CHECK (agc_future_wait (w, 10000 * s_slow) == 0);
    double total = tl_seconds_since (start);
    if (s_verbose)
        printf ("   sent in %.4f s, result after %.3f s\n", sent, total);
    CHECK (sent < 0.25 && total >= 0.29);
    CHECK (agc_future_status (w) == AG_OK);
    const msgpack_object *result = ag_value_object (agc_future_value (w));
    CHECK (ag_obj_streq (ag_obj_get (result, "content"), "hello"));
    CHECK (ag_obj_streq (ag_obj_get (result, "role"), "user"));
    //  b fetched from a, and c from b: one and two each delivered a
    //  result to a FETCH; the caller fetched nothing
    CHECK (s_info_int (conns [0], NULL, "fetched") == fetched [0] + 1);
    CHECK (s_info_int (conns [1], NULL, "fetched") == fetched [1] + 1);
    CHECK (s_info_int (conns [2], NULL, "fetched") == fetched [2]);
    agc_future_destroy (&w);
    agc_future_destroy (&z);
    agc_future_destroy (&y);
    ag_value_destroy (&msg);
    ag_value_destroy (&ref_z);
    ag_value_destroy (&ref_y);
    ag_value_destroy (&x);

    //  A failed future fails the call it is given to, naming the failure
    ag_value_t *bad = ag_value_new ("{s:i}", "ms", (int64_t) -1);
    agc_future_t *failing = agc_agent_call (a, "slow", bad);
    ag_value_t *ref = agc_future_ref (failing);
    agc_future_t *dependent = agc_agent_call (b, "echo_async", ref);
    CHECK (agc_future_wait (dependent, 10000 * s_slow) == 0);
    CHECK (agc_future_status (dependent) == AG_DEP_FAILED);
    CHECK (strstr (agc_future_reason (dependent), "ms must be 0..60000"));
    CHECK (strstr (agc_future_reason (dependent), "(422)"));
    agc_future_destroy (&dependent);
    agc_future_destroy (&failing);
    ag_value_destroy (&ref);
    ag_value_destroy (&bad);
    //  In a CREATE's arguments: init on two gets the value made on one
    int64_t before = s_info_int (conns [0], NULL, "fetched");
    ag_value_t *seed = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 100,
                                     "tag", (int64_t) 41);
    agc_future_t *made = agc_agent_call (a, "slow", seed);
    ag_value_t *ref_made = agc_future_ref (made);
    ag_value_t *init = ag_value_new ("{s:v, s:s}", "start", ref_made,
                                     "label", "from-a");
    agc_agent_t *d = agc_agent_new (conns [1], "Counter", init, NULL);
    CHECK (d);
    ag_value_t *count = agc_agent_getattr (d, "count");
    CHECK (ag_obj_int (ag_value_object (count), -1) == 41);
    ag_value_destroy (&count);
    CHECK (s_info_int (conns [0], NULL, "fetched") == before + 1);
    agc_agent_destroy (&d);
    agc_future_destroy (&made);
    ag_value_destroy (&init);
    ag_value_destroy (&ref_made);
    ag_value_destroy (&seed);
    //  A failed future in a CREATE: no agent, 424 naming the failure
    bad = ag_value_new ("{s:i}", "ms", (int64_t) -1);
    failing = agc_agent_call (a, "slow", bad);
    ref = agc_future_ref (failing);
    init = ag_value_new ("{s:v}", "start", ref);
    CHECK (agc_agent_new (conns [1], "Counter", init, "never") == NULL);
    CHECK (agc_status () == AG_DEP_FAILED);
    CHECK (strstr (agc_reason (), "ms must be 0..60000"));
    CHECK (agc_agent_lookup (conns [1], "never") == NULL);
    CHECK (agc_status () == AG_NO_AGENT);
    agc_future_destroy (&failing);
    ag_value_destroy (&init);
    ag_value_destroy (&ref);
    ag_value_destroy (&bad);
    //  A reference outlives its result: after the producing server's
    //  retention time it fails the call, naming the 410
    daemon_t brief;
    CHECK (s_daemon_start (&brief, NULL, "--retention-ms", "100", NULL)
           == 0);
    agc_conn_t *brief_conn = agc_conn_new (brief.endpoint);
    agc_agent_t *e = s_counter (brief_conn, 0);
    ag_value_t *word = ag_value_new ("s", "fleeting");
    agc_future_t *kept = agc_agent_call (e, "echo_async", word);
    CHECK (agc_future_wait (kept, 10000 * s_slow) == 0);
    ag_value_t *ref_kept = agc_future_ref (kept);
    int status = AG_OK;
    int64_t deadline = ag_usecs () + 10000000 * s_slow;
    while (status == AG_OK && ag_usecs () < deadline) {
        agc_future_t *late = agc_agent_call (b, "echo", ref_kept);
        status = agc_future_status (late);
        if (status == AG_OK)
            CHECK (ag_obj_streq (ag_value_object (agc_future_value (late)),
                                 "fleeting"));
        else {
            if (s_verbose)
                printf ("   after expiry: %s\n", agc_future_reason (late));
            CHECK (strstr (agc_future_reason (late), "is gone"));
            CHECK (strstr (agc_future_reason (late), "(410)"));
        }
        agc_future_destroy (&late);
    }
    CHECK (status == AG_DEP_FAILED);
    agc_future_destroy (&kept);
    ag_value_destroy (&ref_kept);
    ag_value_destroy (&word);
    agc_agent_destroy (&e);
    agc_conn_destroy (&brief_conn);
    CHECK (s_daemon_stop (&brief) == 0);
    //  A server fetches only from the servers it is told it may: brief
    //  may not fetch from one, and says only that
    CHECK (s_daemon_start (&brief, NULL, NULL) == 0);
    brief_conn = agc_conn_new (brief.endpoint);
    e = s_counter (brief_conn, 0);
    word = ag_value_new ("s", "elsewhere");
    kept = agc_agent_call (a, "echo_async", word);
    ref_kept = agc_future_ref (kept);
    CHECK (agc_future_wait (kept, 10000 * s_slow) == 0);
    before = s_info_int (conns [0], NULL, "fetched");
    agc_future_t *refused = agc_agent_call (e, "echo", ref_kept);
    CHECK (agc_future_status (refused) == AG_DEP_FAILED);
    CHECK (strstr (agc_future_reason (refused), "not allowed"));
    CHECK (strstr (agc_future_reason (refused), "server/peer"));
    CHECK (s_info_int (conns [0], NULL, "fetched") == before);
    agc_future_destroy (&refused);
    agc_future_destroy (&kept);
    ag_value_destroy (&ref_kept);
    ag_value_destroy (&word);
    agc_agent_destroy (&e);
    agc_conn_destroy (&brief_conn);
    CHECK (s_daemon_stop (&brief) == 0);
    //  A sync call's future is not kept, so cannot stand for its value
    agc_future_t *done = agc_agent_call (a, "add", NULL);
    CHECK (agc_future_ref (done) == NULL);
    CHECK (agc_status () == AG_BAD_REQUEST);
    agc_future_destroy (&done);

    agc_agent_destroy (&a);
    agc_agent_destroy (&b);
    agc_agent_destroy (&c);
    for (int i = 0; i < 3; i++)
        agc_conn_destroy (&conns [i]);
    CHECK (s_daemon_stop (&one) == 0);
    CHECK (s_daemon_stop (&two) == 0);
    return 0;
}


//  ---------------------------------------------------------------------
//  Seed parity: local agents, to_dist, child mode, create on server

static char s_plugin [300];          //  testclasses.so

static const ag_class_t *
s_class (const char *name)
{
    return agc_class_load (s_plugin, name);
}

//  Exits when the process is gone; false if still there after msecs
static bool
s_pid_gone (int pid, int msecs)
{
    int pidfd = tl_pidfd (pid);
    if (pidfd < 0)
        return errno == ESRCH;
    struct pollfd item = { pidfd, POLLIN, 0 };
    bool gone = poll (&item, 1, msecs) == 1;
    close (pidfd);
    return gone;
}

//  The guide's run (): written once, for any kind of agent
static int64_t
s_workload (agc_agent_t **agents, int count)
{
    agc_future_t *futures [8];
    int64_t sum = 0;
    for (int64_t i = 0; i < count; i++) {
        ag_value_t *args = ag_value_new ("i", i + 1);
        ag_value_t *total = agc_agent_call_value (agents [i], "add", args);
        sum += ag_obj_int (ag_value_object (total), -1000);
        ag_value_destroy (&total);
        ag_value_destroy (&args);
        args = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 10, "tag", i * 10);
        futures [i] = agc_agent_call (agents [i], "slow", args);
        ag_value_destroy (&args);
    }
    agc_future_wait_all (futures, (size_t) count, 10000);
    for (int i = 0; i < count; i++) {
        sum += s_int_result (futures [i]);
        agc_future_destroy (&futures [i]);
    }
    return sum;
}

static int
s_test_zero_migration (const char *endpoint)
{
    const ag_class_t *counter = s_class ("Counter");
    CHECK (counter);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *local [4], *remote [4];
    for (int i = 0; i < 4; i++) {
        ag_value_t *args = ag_value_new ("{s:i}", "start", (int64_t) 100 * i);
        local [i] = agc_agent_new_local (counter, args);
        remote [i] = agc_agent_new (conn, "Counter", args, NULL);
        ag_value_destroy (&args);
        CHECK (local [i] && remote [i]);
        CHECK (agc_agent_is_local (local [i]));
        CHECK (!agc_agent_is_local (remote [i]));
    }
    int64_t local_sum = s_workload (local, 4);
    int64_t remote_sum = s_workload (remote, 4);
    CHECK (local_sum == 600 + 10 + 60);
    CHECK (local_sum == remote_sum);
    //  Errors look the same too
    agc_future_t *one = agc_agent_call (local [0], "nope", NULL);
    agc_future_t *two = agc_agent_call (remote [0], "nope", NULL);
    CHECK (agc_future_status (one) == AG_NO_METHOD);
    CHECK (agc_future_status (two) == AG_NO_METHOD);
    CHECK (streq (agc_future_reason (one), agc_future_reason (two)));
    agc_future_destroy (&one);
    agc_future_destroy (&two);
    CHECK (agc_agent_is_async (local [0], "slow") == agc_agent_is_async (
           remote [0], "slow"));
    for (int i = 0; i < 4; i++) {
        CHECK (agc_agent_destroy (&local [i]) == 0);
        CHECK (agc_agent_destroy (&remote [i]) == 0);
    }
    agc_conn_destroy (&conn);
    return 0;
}

static int
s_test_to_dist_child (const char *unused)
{
    const ag_class_t *counter = s_class ("Counter");
    const ag_class_t *keeper = s_class ("Keeper");
    CHECK (counter && keeper);
    ag_value_t *args = ag_value_new ("{s:i}", "start", (int64_t) 5);
    ag_value_t *three = ag_value_new ("i", (int64_t) 3);
    agc_agent_t *plain = agc_agent_new_local (counter, args);
    agc_agent_t *kept = agc_agent_new_local (keeper, args);
    ag_value_destroy (&args);
    for (int i = 0; i < 2; i++) {
        agc_agent_t *agent = i? kept: plain;
        ag_value_t *sum = agc_agent_call_value (agent, "add", three);
        CHECK (ag_obj_int (ag_value_object (sum), 0) == 8);
        ag_value_destroy (&sum);
        int64_t start = ag_usecs ();
        CHECK (agc_agent_to_dist (agent, NULL) == 0);
        if (s_verbose)
            printf ("    child mode to_dist: %.1f ms\n",
                    (double) (ag_usecs () - start) / 1000);
        CHECK (!agc_agent_is_local (agent));
        CHECK (agc_conn_pid (agc_agent_conn (agent)) > 0);
    }
    CHECK (agc_conn_pid (agc_agent_conn (plain))
           != agc_conn_pid (agc_agent_conn (kept)));
    //  Re-created from its init args: the state after creation stays
    ag_value_t *count = agc_agent_getattr (plain, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 5);
    ag_value_destroy (&count);
    //  ... unless the class saves and loads it
    count = agc_agent_getattr (kept, "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 8);
    ag_value_destroy (&count);
    //  Inherited methods work on the server as they did here
    ag_value_t *sum = agc_agent_call_value (kept, "add", three);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 11);
    ag_value_destroy (&sum);
    ag_value_destroy (&three);
    //  Already distributed: refused, clearly
    CHECK (agc_agent_to_dist (plain, NULL) == -1);
    CHECK (agc_status () == AG_BAD_REQUEST);
    CHECK (strstr (agc_reason (), "already distributed"));
    //  Destroying the last handle stops the child
    int pids [2] = { agc_conn_pid (agc_agent_conn (plain)),
                     agc_conn_pid (agc_agent_conn (kept)) };
    CHECK (agc_agent_destroy (&plain) == 0);
    CHECK (agc_agent_destroy (&kept) == 0);
    CHECK (s_pid_gone (pids [0], 5000) && s_pid_gone (pids [1], 5000));
    return 0;
}

static int
s_test_to_dist_independent (const char *endpoint)
{
    const ag_class_t *keeper = s_class ("Keeper");
    agc_agent_t *agents [2];
    for (int i = 0; i < 2; i++) {
        agents [i] = agc_agent_new_local (keeper, NULL);
        CHECK (agents [i]);
        ag_value_t *seven = ag_value_new ("i", (int64_t) 7);
        ag_value_t *sum = agc_agent_call_value (agents [i], "add", seven);
        ag_value_destroy (&sum);
        ag_value_destroy (&seven);
        CHECK (agc_agent_to_dist (agents [i], endpoint) == 0);
    }
    //  One connection serves both
    CHECK (agc_agent_conn (agents [0]) == agc_agent_conn (agents [1]));
    CHECK (agc_conn_pid (agc_agent_conn (agents [0])) == 0);
    ag_value_t *count = agc_agent_getattr (agents [1], "count");
    CHECK (ag_obj_int (ag_value_object (count), 0) == 7);
    ag_value_destroy (&count);
    for (int i = 0; i < 2; i++)
        CHECK (agc_agent_destroy (&agents [i]) == 0);
    return 0;
}

//  Create on the server: init runs once, there, never here
static int
s_test_init_once (const char *endpoint)
{
    const ag_class_t *once = s_class ("Once");
    CHECK (once);
    //  A local agent counts the inits run in this process
    agc_agent_t *local = agc_agent_new_local (once, NULL);
    CHECK (local);
    ag_value_t *inits = agc_agent_getattr (local, "inits");
    int64_t before = ag_obj_int (ag_value_object (inits), -1);
    ag_value_destroy (&inits);
    CHECK (before >= 1);
    agc_agent_t *child = agc_agent_new_dist (once, NULL, NULL);
    CHECK (child);
    CHECK (agc_conn_pid (agc_agent_conn (child)) > 0);
    agc_agent_t *independent = agc_agent_new_dist (once, NULL, endpoint);
    CHECK (independent);
    //  None ran here
    inits = agc_agent_getattr (local, "inits");
    CHECK (ag_obj_int (ag_value_object (inits), -1) == before);
    ag_value_destroy (&inits);
    //  One ran in the child, which has no other agent
    inits = agc_agent_getattr (child, "inits");
    CHECK (ag_obj_int (ag_value_object (inits), 0) == 1);
    ag_value_destroy (&inits);
    //  Created on a server: to_dist makes no sense, and says so
    CHECK (agc_agent_to_dist (child, endpoint) == -1);
    CHECK (strstr (agc_reason (), "created on a server"));
    agc_agent_destroy (&local);
    int pid = agc_conn_pid (agc_agent_conn (child));
    agc_agent_destroy (&child);
    agc_agent_destroy (&independent);
    CHECK (s_pid_gone (pid, 5000));
    return 0;
}

//  Several agents in one child; the child lives while any handle does
static int
s_test_shared_child (const char *unused)
{
    agc_conn_t *conn = agc_conn_spawn (s_plugin);
    CHECK (conn);
    int pid = agc_conn_pid (conn);
    CHECK (pid > 0);
    const ag_class_t *counter = s_class ("Counter");
    agc_agent_t *agents [3];
    for (int i = 0; i < 3; i++) {
        agents [i] = agc_agent_new_local (counter, NULL);
        CHECK (agc_agent_to_conn (agents [i], conn) == 0);
    }
    agc_conn_destroy (&conn);
    CHECK (!s_pid_gone (pid, 0));
    ag_value_t *list = agc_conn_list (agc_agent_conn (agents [2]));
    CHECK (ag_obj_count (ag_value_object (list)) == 3);
    ag_value_destroy (&list);
    agc_agent_destroy (&agents [0]);
    agc_agent_destroy (&agents [1]);
    CHECK (!s_pid_gone (pid, 0));
    agc_agent_destroy (&agents [2]);
    CHECK (s_pid_gone (pid, 5000));
    return 0;
}

static int
s_test_child_errors (const char *unused)
{
    //  A class linked into this program: a child server cannot load it
    agc_agent_t *agent = agc_agent_new_local (&s_tally_class, NULL);
    CHECK (agent);
    CHECK (agc_agent_to_dist (agent, NULL) == -1);
    CHECK (agc_status () == AG_NO_CLASS);
    CHECK (strstr (agc_reason (), "not an agent plugin"));
    CHECK (agc_agent_is_local (agent));         //  still usable here
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    ag_value_t *sum = agc_agent_call_value (agent, "add", one);
    CHECK (ag_obj_int (ag_value_object (sum), 0) == 1);
    ag_value_destroy (&sum);
    ag_value_destroy (&one);
    agc_agent_destroy (&agent);
    //  No agentd to run
    char *saved = strdup (getenv ("AGENTD"));
    setenv ("AGENTD", "/nonexistent/agentd", 1);
    CHECK (agc_conn_spawn (s_plugin) == NULL);
    CHECK (agc_status () == AG_UNREACHABLE);
    CHECK (strstr (agc_reason (), "/nonexistent/agentd"));
    setenv ("AGENTD", saved, 1);
    free (saved);
    //  A plugin the child cannot load
    CHECK (agc_conn_spawn ("/nonexistent/plugin.so") == NULL);
    CHECK (strstr (agc_reason (), "did not start"));
    //  Unknown classes and plugins
    CHECK (agc_class_load (s_plugin, "Nope") == NULL);
    CHECK (agc_status () == AG_NO_CLASS);
    CHECK (agc_class_load ("/nonexistent/plugin.so", "Counter") == NULL);
    return 0;
}

//  Children die with their parent, even one killed with SIGKILL
static int
s_test_orphans (const char *unused)
{
    char agtest [300];
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", s_build);
    const char *argv [] = { agtest, "--orphan-parent", s_build, NULL };
    tl_proc_t parent;
    CHECK (tl_proc_spawn (&parent, argv, NULL, NULL, TL_ERR_INHERIT, -1)
           == 0);
    int children [2];
    char line [64];
    for (int i = 0; i < 2; i++) {
        CHECK (tl_read_line (parent.out, line, sizeof line, 20000) > 0);
        children [i] = atoi (line);
        CHECK (children [i] > 0 && !s_pid_gone (children [i], 0));
    }
    kill (parent.pid, SIGKILL);
    tl_proc_reap (&parent, 10000);
    for (int i = 0; i < 2; i++)
        CHECK (s_pid_gone (children [i], 10000));
    return 0;
}

//  The parent the orphans test kills: two child-mode agents, then wait
static int
s_orphan_parent (void)
{
    const ag_class_t *counter = s_class ("Counter");
    for (int i = 0; i < 2; i++) {
        agc_agent_t *agent = agc_agent_new_dist (counter, NULL, NULL);
        if (!agent)
            return 1;
        printf ("%d\n", agc_conn_pid (agc_agent_conn (agent)));
        fflush (stdout);
    }
    while (true)
        pause ();
}

static int
s_test_agentbase (const char *endpoint)
{
    const ag_class_t *echoer = s_class ("Echoer");
    CHECK (echoer);
    ag_value_t *args = ag_value_new ("{s:s}", "name", "E1");
    agc_agent_t *local = agc_agent_new_local (echoer, args);
    agc_agent_t *remote = agc_agent_new_dist (echoer, args, endpoint);
    ag_value_destroy (&args);
    CHECK (local && remote);
    agc_agent_t *agents [2] = { local, remote };
    for (int i = 0; i < 2; i++) {
        agc_agent_t *agent = agents [i];
        ag_value_t *name = agc_agent_getattr (agent, "name");
        CHECK (ag_obj_streq (ag_value_object (name), "E1"));
        ag_value_destroy (&name);
        ag_value_t *hello = ag_msg_newf ("user", "user", "s", "hello");
        agc_future_t *future = agc_agent_call (agent, "observe", hello);
        CHECK (agc_future_status (future) == AG_OK);
        agc_future_destroy (&future);
        CHECK (agc_agent_is_async (agent, "reply"));
        future = agc_agent_reply (agent, hello);      //  agent (hello)
        CHECK (agc_future_wait (future, 5000) == 0);
        const msgpack_object *reply = ag_value_object (
            agc_future_value (future));
        char reason [128];
        CHECK (ag_msg_check (reply, reason, sizeof reason) == 0);
        CHECK (ag_obj_streq (ag_msg_field (reply, "name"), "E1"));
        const msgpack_object *content = ag_msg_field (reply, "content");
        CHECK (ag_obj_int (ag_obj_get (content, "seen"), 0) == 2);
        CHECK (ag_obj_streq (ag_obj_get (content, "last"), "hello"));
        agc_future_destroy (&future);
        ag_value_t *memory = agc_agent_getattr (agent, "memory");
        CHECK (ag_obj_count (ag_value_object (memory)) == 2);
        ag_value_destroy (&memory);
        //  Not a Msg: a clear error
        ag_value_t *junk = ag_value_new ("{s:i}", "name", (int64_t) 3);
        future = agc_agent_call (agent, "observe", junk);
        CHECK (agc_future_status (future) == AG_BAD_ARGS);
        CHECK (strstr (agc_future_reason (future), "name"));
        agc_future_destroy (&future);
        ag_value_destroy (&junk);
        ag_value_destroy (&hello);
    }
    //  An AgentBase with its memory moves with it
    CHECK (agc_agent_to_dist (local, endpoint) == 0);
    ag_value_t *memory = agc_agent_getattr (local, "memory");
    CHECK (ag_obj_count (ag_value_object (memory)) == 2);
    ag_value_destroy (&memory);
    agc_agent_destroy (&local);
    agc_agent_destroy (&remote);
    return 0;
}


//  Run a program, collect its stdout; returns its exit status
static int
s_run_program (const char *const *argv, char *out, size_t size, int msecs)
{
    tl_proc_t run;
    if (tl_proc_spawn (&run, argv, NULL, NULL, TL_ERR_INHERIT, -1))
        return -1;
    tl_read_all (run.out, out, size, msecs);
    close (run.out);
    run.out = -1;
    int status = tl_proc_reap (&run, 5000);
    if (status == -1) {
        kill (run.pid, SIGKILL);
        status = tl_proc_reap (&run, 10000);
    }
    return status;
}

static double
s_figure (const char *out, const char *label)
{
    const char *at = strstr (out, label);
    return at? atof (at + strlen (label)): -1;
}

//  The guide's programs, in every mode they have
static int
s_test_seed_programs (const char *endpoint)
{
    char dist_main [300], example [300], plugin [300];
    snprintf (dist_main, sizeof dist_main, "%s/examples/dist_main", s_build);
    snprintf (example, sizeof example, "%s/examples/example", s_build);
    snprintf (plugin, sizeof plugin, "%s/plugins/seed.so", s_build);
    const char *modes [3][8] = {
        { dist_main, "--plugin", plugin, "--delay-ms", "400", NULL },
        { dist_main, "--plugin", plugin, "--delay-ms", "400", "--server",
          endpoint },
        { dist_main, "--plugin", plugin, "--delay-ms", "400",
          "--create-on-server", NULL }
    };
    static char out [4096];
    for (int mode = 0; mode < 3; mode++) {
        CHECK (s_run_program (modes [mode], out, sizeof out, 30000) == 0);
        for (int i = 0; i < 5; i++) {
            char line [64];
            snprintf (line, sizeof line, "[W%d] Answer from page_%d\n", i,
                      i + 1);
            const char *first = strstr (out, line);
            CHECK (first && strstr (first + 1, line));  //  twice
        }
        double init = s_figure (out, "init time: ");
        double sequential = s_figure (out, "sequential: ");
        double distributed = s_figure (out, "distributed: ");
        if (s_verbose)
            printf ("    mode %d: init %.4f s, sequential %.3f s,"
                    " distributed %.3f s\n", mode, init, sequential,
                    distributed);
        CHECK (init >= 0 && init < 1.0 * s_slow);
        CHECK (sequential >= 1.99);
        CHECK (distributed >= 0.39 && distributed < 1.0 * s_slow);
    }
    const char *run_example [] = { example, "--plugin", plugin, NULL };
    CHECK (s_run_program (run_example, out, sizeof out, 30000) == 0);
    double sync_cost = s_figure (out, "Sync func cost: ");
    double async_cost = s_figure (out, "Async func cost: ");
    CHECK (sync_cost >= 0.99 && sync_cost < 2.0 * s_slow);
    CHECK (async_cost >= 0 && async_cost < 0.2 * s_slow);
    CHECK (strstr (out, "{\"a\": 1, \"b\": 2, \"c\": \"hello world\"}"));
    //  The pipeline: three stages on two child servers, chained by
    //  futures; the caller only sends
    char pipeline [300];
    snprintf (pipeline, sizeof pipeline, "%s/examples/pipeline", s_build);
    const char *run_pipeline [] = { pipeline, "--plugin", plugin,
                                    "--delay-ms", "200", NULL };
    CHECK (s_run_program (run_pipeline, out, sizeof out, 30000) == 0);
    CHECK (strstr (out, "[render] page_1 -> parse -> check -> render\n"));
    double blocked = s_figure (out, "caller blocked: ");
    double total = s_figure (out, "total: ");
    if (s_verbose)
        printf ("    pipeline: caller blocked %.6f s, total %.3f s\n",
                blocked, total);
    CHECK (blocked >= 0 && blocked < 0.1 * s_slow);
    CHECK (total >= 0.59 && total < 5.0 * s_slow);
    return 0;
}

//  ---------------------------------------------------------------------
//  Operations: the configuration file, signals, systemd

static int
s_write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    fputs (text, file);
    fclose (file);
    return 0;
}

static int
s_test_config (const char *unused)
{
    char dir [] = "/tmp/agtest-config-XXXXXX";
    CHECK (mkdtemp (dir));
    char file [300], plugins [300], link [400], target [400], text [1200];
    snprintf (file, sizeof file, "%s/agentd.conf", dir);
    snprintf (plugins, sizeof plugins, "%s/plugins", dir);
    CHECK (mkdir (plugins, 0755) == 0);
    snprintf (link, sizeof link, "%s/testclasses.so", plugins);
    CHECK (realpath (s_plugin, target));
    CHECK (symlink (target, link) == 0);
    snprintf (text, sizeof text,
              "#   agentd.conf for a test\n"
              "server\n"
              "    endpoint = \"tcp://127.0.0.1:*\"    # any port\n"
              "    plugin_dir = %s\n"
              "    threads_max = 4\n"
              "    retention_ms = 1000\n"
              "log\n"
              "    level = warning\n", plugins);
    CHECK (s_write_file (file, text) == 0);

    //  The file's settings are used
    daemon_t daemon;
    const char *args [] = { "-f", "-c", file, NULL };
    CHECK (s_daemon_spawn (&daemon, args, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    CHECK (s_info_int (conn, "threads", "max") == 4);
    agc_agent_t *agent = s_counter (conn, 1);       //  from plugin_dir
    CHECK (agent);
    agc_agent_destroy (&agent);
    //  SIGHUP re-reads the file; the daemon carries on
    kill (daemon.pid, SIGHUP);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);

    //  The command line overrides the file
    const char *over [] = { "-f", "-c", file, "--threads-max", "8", NULL };
    CHECK (s_daemon_spawn (&daemon, over, NULL) == 0);
    conn = agc_conn_new (daemon.endpoint);
    CHECK (s_info_int (conn, "threads", "max") == 8);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);

    //  Bad files stop the start, naming file, line and key
    struct {
        const char *text;
        const char *words;
    } bad [] = {
        { "server\n    threads_max = 4\n    colour = blue\n",
          "agentd.conf:3: unknown key 'server/colour'" },
        { "server\n    threads_max = 0\n", "agentd.conf:2: server/threads_max:"
          " 0 is out of range" },
        { "server\n    retention_ms = soon\n", "agentd.conf:2:"
          " server/retention_ms: 'soon' is not a whole number" },
        { "log\n    level = chatty\n", "agentd.conf:2: log/level" },
        { "server\n    endpoint = udp://x\n", "agentd.conf:2: server/endpoint" },
        { "server\nthreads_max = 4\n", "agentd.conf:2: expected a section" },
        { "server\n    threads_min = 9\n    threads_max = 4\n",
          "threads_min 9 is more than server/threads_max 4" },
        { NULL, NULL }
    };
    char message [512];
    for (int i = 0; bad [i].text; i++) {
        CHECK (s_write_file (file, bad [i].text) == 0);
        const char *run [] = { "-f", "-c", file, NULL };
        int status = s_agentd_run (message, sizeof message, run);
        if (s_verbose)
            printf ("    exit %d: %s\n", status, message);
        CHECK (status == 2);
        CHECK (strstr (message, bad [i].words));
    }
    const char *missing [] = { "-f", "-c", "/nonexistent/agentd.conf", NULL };
    CHECK (s_agentd_run (message, sizeof message, missing) == 2);
    CHECK (strstr (message, "/nonexistent/agentd.conf"));
    unlink (file);
    unlink (link);
    rmdir (plugins);
    rmdir (dir);
    return 0;
}

//  Wait for a datagram on a unix socket; returns its length or -1
static int
s_recv_state (int fd, char *state, size_t size, int msecs)
{
    struct pollfd item = { fd, POLLIN, 0 };
    if (poll (&item, 1, msecs) <= 0)
        return -1;
    ssize_t len = recv (fd, state, size - 1, 0);
    if (len < 0)
        return -1;
    state [len] = 0;
    return (int) len;
}

//  systemd's notify protocol, with a socket of the test's own
static int
s_test_notify (const char *unused)
{
    char path [108];
    snprintf (path, sizeof path, "/tmp/agtest-notify-%d.sock", getpid ());
    unlink (path);
    int fd = socket (AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf (address.sun_path, sizeof address.sun_path, "%s", path);
    CHECK (bind (fd, (struct sockaddr *) &address, sizeof address) == 0);
    char notify [160], watchdog [64];
    snprintf (notify, sizeof notify, "NOTIFY_SOCKET=%s", path);
    snprintf (watchdog, sizeof watchdog, "WATCHDOG_USEC=%d", 200000 * s_slow);
    const char *env [] = { notify, watchdog, NULL };
    const char *args [] = { "-f", "-e", "tcp://127.0.0.1:*", NULL };
    daemon_t daemon;
    CHECK (s_daemon_spawn (&daemon, args, env) == 0);
    char state [256];
    //  READY=1 comes once the endpoint is bound: it answers by then
    CHECK (s_recv_state (fd, state, sizeof state, 10000 * s_slow) > 0);
    CHECK (streq (state, "READY=1"));
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    //  The watchdog is fed while the broker answers
    int watchdogs = 0;
    while (watchdogs < 2
    &&     s_recv_state (fd, state, sizeof state, 2000 * s_slow) > 0)
        if (streq (state, "WATCHDOG=1"))
            watchdogs++;
    CHECK (watchdogs == 2);
    kill (daemon.pid, SIGTERM);
    bool stopping = false;
    while (!stopping && s_recv_state (fd, state, sizeof state, 10000) > 0)
        stopping = streq (state, "STOPPING=1");
    CHECK (stopping);
    CHECK (tl_proc_reap (&daemon, 20000 * s_slow) == 0);
    close (fd);
    unlink (path);
    return 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*test) (const char *endpoint);
} case_t;

static const case_t s_cases [] = {
    { "lifecycle", s_test_lifecycle },
    { "list_pages", s_test_list_pages },
    { "seed_example", s_test_seed_example },
    { "actor_semantics", s_test_actor_semantics },
    { "hundred_agents", s_test_hundred_agents },
    { "errors", s_test_errors },
    { "threads", s_test_threads },
    { "waiting", s_test_waiting },
    { "pool", s_test_pool },
    { "head_of_line", s_test_head_of_line },
    { "client_gone", s_test_client_gone },
    { "restart", s_test_restart },
    { "restart_behind", s_test_restart_behind },
    { "limits", s_test_limits },
    { "flood", s_test_flood },
    { "small_hwm", s_test_small_hwm },
    { "deep_burst", s_test_deep_burst },
    { "big_value", s_test_big_value },
    { "hostile_input", s_test_hostile_input },
    { "garbage", s_test_garbage },
    { "killed_server", s_test_killed_server },
    { "closed_lingering", s_test_closed_lingering },
    { "fetch", s_test_fetch },
    { "futures", s_test_futures },
    { "graceful_stop", s_test_graceful_stop },
    { "stop_fast", s_test_stop_fast },
    { "ipc", s_test_ipc },
    { "command_line", s_test_command_line },
    { "embedded", s_test_embedded },
    { "zero_migration", s_test_zero_migration },
    { "to_dist_child", s_test_to_dist_child },
    { "to_dist_independent", s_test_to_dist_independent },
    { "init_once", s_test_init_once },
    { "shared_child", s_test_shared_child },
    { "child_errors", s_test_child_errors },
    { "orphans", s_test_orphans },
    { "agentbase", s_test_agentbase },
    { "seed_programs", s_test_seed_programs },
    { "config", s_test_config },
    { "notify", s_test_notify },
    { "named_across", s_test_named_across },
    { "placement", s_test_placement },
    { NULL, NULL }
};

int
main (int argc, char *argv [])
{
    const char *only = NULL;
    const char *hold = NULL;
    const char *lookup = NULL, *lookup_name = NULL;
    bool orphan_parent = false;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "-v"))
            s_verbose = true;
        else
        if (streq (argv [i], "-n") && i + 1 < argc)
            only = argv [++i];
        else
        if (streq (argv [i], "--orphan-parent"))
            orphan_parent = true;
        else
        if (streq (argv [i], "--hold") && i + 1 < argc)
            hold = argv [++i];
        else
        if (streq (argv [i], "--lookup") && i + 2 < argc) {
            lookup = argv [++i];
            lookup_name = argv [++i];
        }
        else
        if (argv [i][0] != '-')
            s_build = argv [i];
        else {
            fprintf (stderr, "usage: agtest [BUILD_DIR] [-v] [-n NAME]\n");
            return 2;
        }
    }
    //  Child servers run this build's agentd
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    setenv ("AGENTD", agentd, 1);
    snprintf (s_plugin, sizeof s_plugin, "%s/plugins/testclasses.so", s_build);
    if (orphan_parent)
        return s_orphan_parent ();
    if (hold)
        return s_hold (hold);
    if (lookup)
        return s_lookup_mode (lookup, lookup_name);
    s_valgrind = getenv ("AGTEST_VALGRIND") != NULL;
    if (s_valgrind)
        s_slow = 4;
    //  The shared daemon most cases use (futures fetched from it and
    //  others on this machine)
    daemon_t shared;
    if (s_daemon_start (&shared, NULL, "--peer", "local", NULL)) {
        fprintf (stderr, "agtest: cannot start %s/agentd\n", s_build);
        printf ("0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0;
    for (const case_t *test = s_cases; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        printf (" * %s: ", test->name);
        if (s_verbose)
            printf ("\n");
        fflush (stdout);
        int64_t start = ag_usecs ();
        if (test->test (shared.endpoint) == 0) {
            printf ("OK (%.2f s)\n", tl_seconds_since (start));
            passed++;
        }
        else {
            printf ("FAILED: %s at %s\n", tl_failed_check, tl_failed_detail);
            failed++;
        }
        //  Shown now: a leak report at exit ends the process before
        //  stdio would flush
        fflush (stdout);
    }
    int status = s_daemon_stop (&shared);
    printf (" * shared daemon exit: %s (%d)\n", status == 0? "OK": "FAILED",
            status);
    if (status == 0)
        passed++;
    else
        failed++;
    printf ("%d passed, %d failed\n", passed, failed);
    fflush (stdout);
    return failed? 1: 0;
}
