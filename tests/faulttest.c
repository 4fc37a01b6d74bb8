/*  =========================================================================
    faulttest - agent code that runs long, is cancelled, or crashes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  faulttest BUILD_DIR [-v] [-n NAME]: what a caller relies on when an
//  agent's code misbehaves, against real agentd processes. A call with a
//  deadline resolves with AG_DEADLINE at its deadline whatever the
//  method does; one queued past its deadline never runs; a cancelled
//  call resolves at once and, if it had not started, never runs; a
//  running one sees the flag; DELETE cancels what is queued for a busy
//  agent; a method's calls to other agents inherit its deadline. Agent
//  code that crashes the server or calls exit () is named in its log,
//  and its callers hear of it at once. Each case starts what it needs;
//  every wait is bounded, nothing waits on a sleep. With
//  AGTEST_VALGRIND=1 every agentd runs under valgrind (and the crashes
//  are not run: valgrind reports them its own way). Ends with "N passed,
//  N failed".
//  @end

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "testlib.h"
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

static const char *s_build = "build";
static bool s_verbose;
static bool s_valgrind;
static int s_slow = 1;              //  time bounds multiply by this
static int s_lifeline [2] = { -1, -1 };
#if defined (__SANITIZE_ADDRESS__)
static const bool s_sanitized = true;
#else
static const bool s_sanitized = false;
#endif

static void
s_say (const char *format, ...)
{
    if (!s_verbose)
        return;
    va_list args;
    va_start (args, format);
    printf ("    ");
    vprintf (format, args);
    printf ("\n");
    va_end (args);
    fflush (stdout);
}

//  agentd with the test classes (and the relay class) on an ephemeral
//  loopback port, watching our lifeline; its stderr on a pipe when
//  asked (err_to)
static int
s_daemon_start_to (tl_proc_t *self, int err_to)
{
    if (s_lifeline [0] < 0) {
        int ends [2];
        if (pipe (ends))
            return -1;
        for (int i = 0; i < 2; i++) {
            s_lifeline [i] = fcntl (ends [i], F_DUPFD_CLOEXEC, 100);
            close (ends [i]);
        }
    }
    char agentd [300], plugin [300], relay [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    snprintf (plugin, sizeof plugin, "%s/plugins/testclasses.so", s_build);
    snprintf (relay, sizeof relay, "%s/plugins/relay.so", s_build);
    //  Thread isolation: these are its faults (hosttest has the hosts')
    const char *args [] = { "--parent-fd", "3", "-f", "-e",
                            "tcp://127.0.0.1:*", "--plugin", plugin,
                            "--plugin", relay, "--isolation", "thread",
                            NULL };
    const char *argv [48];
    tl_agentd_argv (argv, 48, agentd, s_valgrind, args);
    return tl_agentd_start (self, argv, NULL, err_to, s_lifeline [0],
                            30000 * s_slow);
}

static int
s_daemon_start (tl_proc_t *self)
{
    return s_daemon_start_to (self, s_verbose? TL_ERR_INHERIT: TL_ERR_NULL);
}

//  The server a case talks to, and its connection
typedef struct {
    tl_proc_t daemon;
    agc_conn_t *conn;
} server_t;

static int
s_server_start (server_t *self)
{
    memset (self, 0, sizeof *self);
    if (s_daemon_start (&self->daemon))
        return -1;
    self->conn = agc_conn_new (self->daemon.endpoint);
    agc_conn_set_timeout (self->conn, 10000 * s_slow);
    return self->conn? 0: -1;
}

//  Stop it; 0 if it exited cleanly (valgrind's verdict included)
static int
s_server_stop (server_t *self)
{
    agc_conn_destroy (&self->conn);
    return self->daemon.pid? tl_proc_stop (&self->daemon, 30000 * s_slow)
                           : 0;
}

//  Runs a case against a fresh server, and stops it even when a CHECK
//  returned early
typedef int (case_fn) (server_t *server);

static int
s_with_server (case_fn *fn)
{
    server_t server;
    if (s_server_start (&server)) {
        tl_failed_check = "agentd started";
        snprintf (tl_failed_detail, sizeof tl_failed_detail, "%s:%d",
                  __FILE__, __LINE__);
        s_server_stop (&server);
        return -1;
    }
    int rc = fn (&server);
    int status = s_server_stop (&server);
    if (rc == 0 && status != 0) {
        tl_failed_check = "agentd exited cleanly";
        snprintf (tl_failed_detail, sizeof tl_failed_detail, "status %d",
                  status);
        return -1;
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Helpers

static agc_future_t *
s_spin (agc_agent_t *agent, const char *method, int ms, int deadline)
{
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) ms);
    agc_future_t *future = deadline >= 0
        ? agc_agent_call_within (agent, method, args, deadline)
        : agc_agent_call (agent, method, args);
    ag_value_destroy (&args);
    return future;
}

//  An integer attribute, or INT64_MIN
static int64_t
s_attr (agc_agent_t *agent, const char *name)
{
    ag_value_t *value = agc_agent_getattr (agent, name);
    int64_t n = ag_obj_int (ag_value_object (value), INT64_MIN);
    ag_value_destroy (&value);
    return n;
}

//  Wait until the server has busy threads at work (a spin has started:
//  the agent's own attributes would queue behind it). INFO, asked over
//  and over, within msecs.
static bool
s_wait_busy (agc_conn_t *conn, int64_t busy, int msecs)
{
    int64_t until = ag_usecs () + (int64_t) msecs * 1000;
    while (ag_usecs () < until) {
        ag_value_t *info = agc_conn_info (conn);
        int64_t now_busy = ag_obj_int (ag_obj_get (ag_obj_get (
            ag_value_object (info), "threads"), "busy"), -1);
        ag_value_destroy (&info);
        if (now_busy == busy)
            return true;
    }
    return false;
}

static double
s_ms_since (int64_t start)
{
    return (double) (ag_usecs () - start) / 1000.0;
}

//  ---------------------------------------------------------------------
//  Deadlines

//  A 10 s method called with a 100 ms deadline: the caller has its
//  answer at about 100 ms, the method sees the deadline and stops
static int
s_deadline_running (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    int64_t start = ag_usecs ();
    agc_future_t *future = s_spin (spinner, "spin", 10000, 100);
    double took = s_ms_since (start);
    s_say ("sync spin of 10 s with a 100 ms deadline: %d after %.1f ms: %s",
           agc_future_status (future), took, agc_future_reason (future));
    CHECK (agc_future_status (future) == AG_DEADLINE);
    CHECK (took >= 95 && took < 2000 * s_slow);
    agc_future_destroy (&future);
    //  The method stopped early: its agent answers long before 10 s
    start = ag_usecs ();
    CHECK (s_attr (spinner, "finished") == 1);
    s_say ("the method saw its deadline: finished after %.1f ms more",
           s_ms_since (start));
    CHECK (s_ms_since (start) < 5000);

    //  Async: the future resolves at the deadline. Its kept result is
    //  the same failure for whoever fetches it.
    start = ag_usecs ();
    future = s_spin (spinner, "spin_async", 10000, 100);
    CHECK (agc_future_wait (future, 5000 * s_slow) == 0);
    took = s_ms_since (start);
    s_say ("async spin: %d after %.1f ms", agc_future_status (future), took);
    CHECK (agc_future_status (future) == AG_DEADLINE);
    CHECK (took >= 95 && took < 2000 * s_slow);
    ag_value_t *ref = agc_future_ref (future);
    CHECK (ref);
    agc_agent_t *counter = agc_agent_new (server->conn, "Counter", NULL,
                                          NULL);
    CHECK (counter);
    agc_future_t *echo = agc_agent_call (counter, "echo", ref);
    s_say ("a call given its result: %d %s", agc_future_status (echo),
           agc_future_reason (echo));
    CHECK (agc_future_status (echo) == AG_DEP_FAILED);
    CHECK (strstr (agc_future_reason (echo), "deadline"));
    agc_future_destroy (&echo);
    ag_value_destroy (&ref);
    agc_future_destroy (&future);
    CHECK (s_attr (spinner, "started") == 2);
    CHECK (s_attr (spinner, "finished") == 2);

    //  A deadline long enough changes nothing but what the method reads
    future = s_spin (spinner, "spin", 10, 5000 * s_slow);
    CHECK (agc_future_status (future) == AG_OK);
    int64_t left = ag_obj_int (ag_obj_get (ag_value_object (
        agc_future_value (future)), "deadline_ms"), -2);
    s_say ("with a %d ms deadline, the method read %" PRId64 " ms left",
           5000 * s_slow, left);
    CHECK (left > 0 && left <= 5000 * s_slow);
    agc_future_destroy (&future);
    future = s_spin (spinner, "spin", 1, -1);
    CHECK (agc_future_status (future) == AG_OK);
    CHECK (ag_obj_int (ag_obj_get (ag_value_object (
        agc_future_value (future)), "deadline_ms"), -2) == -1);
    agc_future_destroy (&future);
    agc_agent_destroy (&counter);
    agc_agent_destroy (&spinner);
    return 0;
}

//  A call still queued at its deadline never runs
static int
s_deadline_queued (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    agc_future_t *busy = s_spin (spinner, "spin_async", 500, -1);
    int64_t start = ag_usecs ();
    agc_future_t *late = s_spin (spinner, "spin_async", 1, 100);
    CHECK (agc_future_wait (late, 5000 * s_slow) == 0);
    double took = s_ms_since (start);
    s_say ("queued behind a 500 ms call, with a 100 ms deadline: %d after"
           " %.1f ms", agc_future_status (late), took);
    CHECK (agc_future_status (late) == AG_DEADLINE);
    CHECK (took >= 95 && took < 2000 * s_slow);
    CHECK (agc_future_wait (busy, 5000 * s_slow) == 0);
    CHECK (agc_future_status (busy) == AG_OK);
    //  The late one's turn has come and gone: it did not run
    CHECK (s_attr (spinner, "started") == 1);
    agc_future_destroy (&late);
    agc_future_destroy (&busy);

    //  Behind a method that ignores its callers (a sleep), the server
    //  answers the queued call at its deadline, not after the sleep: it
    //  no longer counts as pending well before the sleep ends
    agc_agent_t *counter = agc_agent_new (server->conn, "Counter", NULL,
                                          NULL);
    CHECK (counter);
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 3000);
    agc_future_t *sleeping = agc_agent_call (counter, "slow", nap);
    ag_value_destroy (&nap);
    //  Sent as is, without a deadline on the client's side: the future
    //  resolves when the server answers
    const uint8_t timed [] = { 0x93, 0xa3, 'a', 'd', 'd', 0x01,
                               0xce, 0, 0, 0, 100 };
    for (int round = 0; round < 2; round++) {
        start = ag_usecs ();
        agc_future_t *behind = agc_conn_request (server->conn, AGP_CALL,
            agc_agent_id (counter), 0, timed, sizeof timed);
        CHECK (agc_future_wait (behind, 2500 * s_slow) == 0);
        took = s_ms_since (start);
        s_say ("behind a 3 s sleep, a call with 100 ms: the server answered"
               " %d after %.1f ms: %s", agc_future_status (behind), took,
               agc_future_reason (behind));
        CHECK (agc_future_status (behind) == AG_DEADLINE);
        CHECK (took >= 95 && took < 2500);
        agc_future_destroy (&behind);
    }
    CHECK (agc_future_wait (sleeping, 10000 * s_slow) == 0);
    CHECK (agc_future_status (sleeping) == AG_OK);
    agc_future_destroy (&sleeping);
    agc_agent_destroy (&counter);

    //  A deadline of 0 has passed before the call arrives
    agc_future_t *none = s_spin (spinner, "spin_async", 1, 0);
    CHECK (agc_future_wait (none, 5000 * s_slow) == 0);
    CHECK (agc_future_status (none) == AG_DEADLINE);
    agc_future_destroy (&none);
    CHECK (s_attr (spinner, "started") == 1);
    agc_agent_destroy (&spinner);
    return 0;
}

//  Relay.relay: spin for ms on the spinner, called from inside relay's
//  method, which has a deadline of deadline ms (-1: none)
static agc_future_t *
s_relay (server_t *server, agc_agent_t *relay, agc_agent_t *spinner, int ms,
         int deadline)
{
    ag_value_t *args = ag_value_new ("{s:s, s:u, s:i}", "endpoint",
                                     server->daemon.endpoint, "agent",
                                     agc_agent_id (spinner), "ms",
                                     (int64_t) ms);
    agc_future_t *future = deadline >= 0
        ? agc_agent_call_within (relay, "relay", args, deadline)
        : agc_agent_call (relay, "relay", args);
    ag_value_destroy (&args);
    return future;
}

//  A method's calls to other agents get no more time than it has left
static int
s_deadline_inherited (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    agc_agent_t *relay = agc_agent_new (server->conn, "Relay", NULL, NULL);
    CHECK (spinner && relay);
    //  With 2 s: the inner call sees at most that
    agc_future_t *future = s_relay (server, relay, spinner, 1,
                                    2000 * s_slow);
    CHECK (agc_future_status (future) == AG_OK);
    const msgpack_object *got = ag_value_object (agc_future_value (future));
    int64_t left = ag_obj_int (ag_obj_get (ag_obj_get (got, "value"),
                                           "deadline_ms"), -2);
    s_say ("relay with %d ms: inner status %" PRId64 ", inner deadline %"
           PRId64 " ms", 2000 * s_slow, ag_obj_int (ag_obj_get (got,
           "status"), 0), left);
    CHECK (ag_obj_int (ag_obj_get (got, "status"), 0) == AG_OK);
    CHECK (left > 0 && left <= 2000 * s_slow);
    agc_future_destroy (&future);

    //  Without one, none
    future = s_relay (server, relay, spinner, 1, -1);
    CHECK (agc_future_status (future) == AG_OK);
    got = ag_value_object (agc_future_value (future));
    CHECK (ag_obj_int (ag_obj_get (ag_obj_get (got, "value"),
                                   "deadline_ms"), -2) == -1);
    agc_future_destroy (&future);

    //  With 300 ms and an inner call of 10 s: the inner method stops
    int64_t start = ag_usecs ();
    future = s_relay (server, relay, spinner, 10000, 300);
    s_say ("relay of a 10 s call with 300 ms: %d after %.1f ms",
           agc_future_status (future), s_ms_since (start));
    CHECK (agc_future_status (future) == AG_DEADLINE);
    agc_future_destroy (&future);
    CHECK (s_attr (spinner, "finished") == 3);
    s_say ("the inner method had stopped %.1f ms after the call began",
           s_ms_since (start));
    CHECK (s_ms_since (start) < 5000);
    agc_agent_destroy (&relay);
    agc_agent_destroy (&spinner);
    return 0;
}

//  A local agent keeps the same rules
static int
s_deadline_local (server_t *server)
{
    char plugin [300];
    snprintf (plugin, sizeof plugin, "%s/plugins/testclasses.so", s_build);
    const ag_class_t *cls = agc_class_load (plugin, "Spinner");
    CHECK (cls);
    agc_agent_t *spinner = agc_agent_new_local (cls, NULL);
    CHECK (spinner);
    int64_t start = ag_usecs ();
    agc_future_t *future = s_spin (spinner, "spin", 10000, 100);
    double took = s_ms_since (start);
    s_say ("local spin of 10 s with 100 ms: %d after %.1f ms",
           agc_future_status (future), took);
    CHECK (agc_future_status (future) == AG_DEADLINE);
    CHECK (took >= 95 && took < 5000);
    agc_future_destroy (&future);
    future = s_spin (spinner, "spin", 1, 5000);
    CHECK (agc_future_status (future) == AG_OK);
    agc_future_destroy (&future);
    //  A local future is resolved: there is nothing to cancel
    future = s_spin (spinner, "spin", 1, -1);
    CHECK (agc_future_cancel (future) == -1);
    CHECK (agc_status () == AG_GONE);
    CHECK (agc_future_status (future) == AG_OK);
    agc_future_destroy (&future);
    future = agc_agent_call_within (spinner, "spin", NULL, -5);
    CHECK (agc_future_status (future) == AG_BAD_REQUEST);
    agc_future_destroy (&future);
    agc_agent_destroy (&spinner);
    return 0;
}

//  ---------------------------------------------------------------------
//  Cancellation

//  Cancelling a queued call: it resolves at once and never runs
static int
s_cancel_queued (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    agc_future_t *busy = s_spin (spinner, "spin_async", 500, -1);
    agc_future_t *queued = s_spin (spinner, "spin_async", 1, -1);
    CHECK (agc_future_cancel (queued) == 0);
    CHECK (agc_future_ready (queued));
    CHECK (agc_future_status (queued) == AG_CANCELLED);
    s_say ("cancelled: %s", agc_future_reason (queued));
    //  Twice is refused, and changes nothing
    CHECK (agc_future_cancel (queued) == -1 && agc_status () == AG_GONE);
    CHECK (agc_future_status (queued) == AG_CANCELLED);
    CHECK (agc_future_wait (busy, 5000 * s_slow) == 0);
    CHECK (agc_future_status (busy) == AG_OK);
    CHECK (s_attr (spinner, "started") == 1);
    //  A resolved future cannot be cancelled
    CHECK (agc_future_cancel (busy) == -1 && agc_status () == AG_GONE);
    CHECK (agc_future_status (busy) == AG_OK);
    agc_future_destroy (&queued);
    agc_future_destroy (&busy);
    CHECK (agc_future_cancel (NULL) == -1);
    agc_agent_destroy (&spinner);
    return 0;
}

//  Cancelling a running call: it resolves at once, the method sees the
//  flag and stops
static int
s_cancel_running (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    agc_future_t *running = s_spin (spinner, "spin_async", 10000, -1);
    CHECK (s_wait_busy (server->conn, 1, 5000 * s_slow));
    int64_t start = ag_usecs ();
    CHECK (agc_future_cancel (running) == 0);
    CHECK (agc_future_status (running) == AG_CANCELLED);
    s_say ("cancelled while running, resolved in %.3f ms: %s",
           s_ms_since (start), agc_future_reason (running));
    CHECK (s_attr (spinner, "finished") == 1);
    s_say ("the method saw the flag: it had returned %.1f ms after",
           s_ms_since (start));
    CHECK (s_ms_since (start) < 5000);
    CHECK (s_attr (spinner, "started") == 1);
    agc_future_destroy (&running);
    agc_agent_destroy (&spinner);
    return 0;
}

//  DELETE of a busy agent: what is queued is cancelled, never run; the
//  running call is flagged, and answered cancelled once it returns
static int
s_delete_busy (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    agc_agent_t *watcher = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner && watcher);
    agc_future_t *running = s_spin (spinner, "spin_async", 10000, -1);
    CHECK (s_wait_busy (server->conn, 1, 5000 * s_slow));
    agc_future_t *queued [3];
    for (int i = 0; i < 3; i++)
        queued [i] = s_spin (spinner, "spin_async", 1, -1);
    int64_t start = ag_usecs ();
    CHECK (agc_agent_destroy (&spinner) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK (agc_future_wait (queued [i], 5000 * s_slow) == 0);
        CHECK (agc_future_status (queued [i]) == AG_CANCELLED);
        agc_future_destroy (&queued [i]);
    }
    s_say ("3 queued calls cancelled after %.1f ms", s_ms_since (start));
    CHECK (agc_future_wait (running, 5000 * s_slow) == 0);
    s_say ("the running one: %d after %.1f ms: %s",
           agc_future_status (running), s_ms_since (start),
           agc_future_reason (running));
    CHECK (agc_future_status (running) == AG_CANCELLED);
    CHECK (s_ms_since (start) < 5000);
    agc_future_destroy (&running);
    //  The server goes on: the other agent answers, and nothing is busy
    agc_future_t *after = s_spin (watcher, "spin", 1, -1);
    CHECK (agc_future_status (after) == AG_OK);
    agc_future_destroy (&after);
    CHECK (s_wait_busy (server->conn, 0, 5000 * s_slow));
    agc_agent_destroy (&watcher);
    return 0;
}

typedef struct {
    agc_conn_t *conn;
    ag_value_t *args;
    int status;
} creator_t;

static void *
s_creator (void *arg)
{
    creator_t *self = (creator_t *) arg;
    agc_agent_t *agent = agc_agent_new (self->conn, "Counter", self->args,
                                        "unborn");
    self->status = agent? AG_OK: agc_status ();
    agc_agent_release (&agent);
    return NULL;
}

//  DELETE of an agent whose CREATE waits for a future among its init
//  arguments: the CREATE is not a call to cancel; init runs, then fini
static int
s_delete_creating (server_t *server)
{
    agc_agent_t *counter = agc_agent_new (server->conn, "Counter", NULL,
                                          NULL);
    CHECK (counter);
    ag_value_t *nap = ag_value_new ("{s:i, s:i}", "ms", (int64_t) 300,
                                    "tag", (int64_t) 5);
    agc_future_t *slow = agc_agent_call (counter, "slow", nap);
    ag_value_destroy (&nap);
    ag_value_t *ref = agc_future_ref (slow);
    CHECK (ref);
    creator_t creator = { server->conn, ag_value_new ("{s:v}", "start", ref),
                          -1 };
    ag_value_destroy (&ref);
    pthread_t thread;
    CHECK (pthread_create (&thread, NULL, s_creator, &creator) == 0);
    //  Its name is taken as the CREATE arrives
    agc_agent_t *unborn = NULL;
    int64_t until = ag_usecs () + 5000000LL * s_slow;
    while (!unborn && ag_usecs () < until)
        unborn = agc_agent_lookup (server->conn, "unborn");
    int deleted = unborn? agc_agent_delete (&unborn): -1;
    pthread_join (thread, NULL);
    ag_value_destroy (&creator.args);
    s_say ("deleted while its init waited: %d; the CREATE: %d", deleted,
           creator.status);
    CHECK (deleted == 0);
    CHECK (creator.status == AG_OK);
    CHECK (agc_future_wait (slow, 5000 * s_slow) == 0);
    CHECK (agc_future_status (slow) == AG_OK);
    agc_future_destroy (&slow);
    CHECK (agc_conn_ping (server->conn) >= 0);
    CHECK (!agc_agent_lookup (server->conn, "unborn")
           && agc_status () == AG_NO_AGENT);
    agc_agent_destroy (&counter);
    return 0;
}

//  CANCEL and a timed CALL on the wire, malformed or aimed wrong
static int
s_cancel_wire (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    uint64_t id = agc_agent_id (spinner);
    struct {
        uint64_t agent;
        ag_value_t *body;
        int status;
        const char *what;
    } cases [] = {
        { id, ag_value_new ("s", "1"), AG_BAD_REQUEST, "a string corr" },
        { id, ag_value_new ("i", (int64_t) 0), AG_BAD_REQUEST, "corr 0" },
        { id, ag_value_new ("n"), AG_BAD_REQUEST, "no body" },
        { id + 1000, ag_value_new ("u", (uint64_t) 5), AG_NO_AGENT,
          "no such agent" },
        { id, ag_value_new ("u", (uint64_t) 123456), AG_OK,
          "a call never made" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        agc_future_t *future = agc_conn_request (server->conn, AGP_CANCEL,
            cases [i].agent, 0, ag_value_data (cases [i].body),
            ag_value_size (cases [i].body));
        CHECK (agc_future_wait (future, 5000 * s_slow) == 0);
        s_say ("CANCEL with %s: %d %s", cases [i].what,
               agc_future_status (future), agc_future_reason (future));
        CHECK (agc_future_status (future) == cases [i].status);
        if (cases [i].status == AG_OK)
            CHECK (ag_value_object (agc_future_value (future))->type
                   == MSGPACK_OBJECT_NIL);
        agc_future_destroy (&future);
        ag_value_destroy (&cases [i].body);
    }
    //  Timeouts that are not 0..2^31-1 ms, or not a uint 32 at the end
    //  (the fourth is 1 << 31, the fifth 5 in one octet)
    const char *bodies [] = { "[s, n, s]", "[s, n, i]", "[s, n, u]",
                              "[s, n, u, n]", "[s, n, i]" };
    for (size_t i = 0; i < 5; i++) {
        ag_value_t *body = i == 0? ag_value_new (bodies [i], "spin", "x")
                         : i == 1? ag_value_new (bodies [i], "spin",
                                                 (int64_t) -1)
                         : i == 4? ag_value_new (bodies [i], "spin",
                                                 (int64_t) 5)
                         : ag_value_new (bodies [i], "spin",
                                         (uint64_t) 1 << 31);
        agc_future_t *future = agc_conn_request (server->conn, AGP_CALL, id,
            0, ag_value_data (body), ag_value_size (body));
        CHECK (agc_future_wait (future, 5000 * s_slow) == 0);
        s_say ("CALL body %s: %d %s", bodies [i], agc_future_status (future),
               agc_future_reason (future));
        CHECK (agc_future_status (future) == AG_BAD_REQUEST);
        agc_future_destroy (&future);
        ag_value_destroy (&body);
    }
    CHECK (s_attr (spinner, "started") == 0);
    agc_agent_destroy (&spinner);
    return 0;
}

//  ---------------------------------------------------------------------
//  Crashes

//  Agent code that crashes the server, or calls exit (): the caller
//  hears at once that the connection dropped, and the log names the
//  agent, its class, the method and the call
static int
s_crash_named (server_t *unused)
{
    struct {
        const char *method;
        const char *says;
        int status;
    } faults [] = {
        { "segv", "agentd: SIGSEGV in agent ", 128 + SIGSEGV },
        { "abort", "agentd: SIGABRT in agent ", 128 + SIGABRT },
        { "overflow", "agentd: SIGSEGV in agent ", 128 + SIGSEGV },
        { "exit", "agentd: exit (3) called in agent ", 3 },
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults [0]; i++) {
        tl_proc_t daemon;
        CHECK (s_daemon_start_to (&daemon, TL_ERR_PIPE) == 0);
        agc_conn_t *conn = agc_conn_new (daemon.endpoint);
        agc_conn_set_timeout (conn, 10000 * s_slow);
        agc_agent_t *crasher = agc_agent_new (conn, "Crasher", NULL, NULL);
        if (!crasher)
            tl_proc_stop (&daemon, 10000);
        CHECK (crasher);
        char expected [256];
        snprintf (expected, sizeof expected, "%s%" PRIu64 " (class Crasher,"
                  " method %s, call ", faults [i].says, agc_agent_id (crasher),
                  faults [i].method);
        int64_t start = ag_usecs ();
        agc_future_t *future = agc_agent_call (crasher, faults [i].method,
                                               NULL);
        double took = s_ms_since (start);
        int status = agc_future_status (future);
        agc_future_destroy (&future);
        agc_agent_release (&crasher);
        agc_conn_destroy (&conn);
        char err [4096] = "";
        tl_read_all (daemon.err, err, sizeof err, 10000 * s_slow);
        int exit_status = tl_proc_reap (&daemon, 10000 * s_slow);
        if (exit_status < 0)
            tl_proc_stop (&daemon, 1000);
        s_say ("%s: the caller got %d after %.1f ms; agentd exited %d; it"
               " said: %s", faults [i].method, status, took, exit_status,
               err);
        CHECK (status == AG_UNREACHABLE);
        CHECK (took < 1000 * s_slow);
        CHECK (exit_status == faults [i].status);
        CHECK (strstr (err, expected));
    }
    return 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    case_fn *test;
} case_t;

static const case_t s_cases [] = {
    { "deadline_running", s_deadline_running },
    { "deadline_queued", s_deadline_queued },
    { "deadline_inherited", s_deadline_inherited },
    { "deadline_local", s_deadline_local },
    { "cancel_queued", s_cancel_queued },
    { "cancel_running", s_cancel_running },
    { "delete_busy", s_delete_busy },
    { "delete_creating", s_delete_creating },
    { "cancel_wire", s_cancel_wire },
    { "crash_named", NULL },
    { NULL, NULL }
};

int
main (int argc, char *argv [])
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "-v"))
            s_verbose = true;
        else
        if (streq (argv [i], "-n") && i + 1 < argc)
            only = argv [++i];
        else
        if (argv [i][0] != '-')
            s_build = argv [i];
        else {
            fprintf (stderr, "usage: faulttest [BUILD_DIR] [-v] [-n NAME]\n");
            return 2;
        }
    }
    signal (SIGPIPE, SIG_IGN);
    //  The crashes are on purpose: no core files for them
    struct rlimit no_core = { 0, 0 };
    setrlimit (RLIMIT_CORE, &no_core);
    s_valgrind = getenv ("AGTEST_VALGRIND") != NULL;
    if (s_valgrind)
        s_slow = 4;
    int passed = 0, failed = 0;
    for (const case_t *test = s_cases; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        printf (" * %s: ", test->name);
        if (s_verbose)
            printf ("\n");
        fflush (stdout);
        //  A case without a server of its own starts its own daemons.
        //  Crashes are valgrind's to report under valgrind, and the
        //  sanitizers': there they end otherwise.
        if (!test->test && (s_valgrind || s_sanitized)) {
            printf ("skipped under %s\n", s_valgrind? "valgrind"
                                                    : "the sanitizers");
            fflush (stdout);
            continue;
        }
        int64_t start = ag_usecs ();
        if ((test->test? s_with_server (test->test): s_crash_named (NULL))
            == 0) {
            printf ("OK (%.2f s)\n", tl_seconds_since (start));
            passed++;
        }
        else {
            printf ("FAILED: %s at %s\n", tl_failed_check, tl_failed_detail);
            failed++;
        }
        fflush (stdout);
    }
    printf ("%d passed, %d failed\n", passed, failed);
    return failed? 1: 0;
}
