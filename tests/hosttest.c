/*  =========================================================================
    hosttest - agent code in host processes: crashes that stay small

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  hosttest BUILD_DIR [-v] [-n NAME]: agentd with --isolation process,
//  the test classes in one host and the relay plugin's in another, and
//  agent code that really crashes its host: a null pointer, abort (),
//  exit (), a stack overflow, an allocation past the host's memory
//  limit, a method that never returns past the call limit. For each:
//  agentd stays up; the call resolves with AG_CRASHED naming the agent,
//  class, method and signal or exit status, within a second; agents of
//  the other host keep their state; agents of the same host answer
//  again, made again from their init arguments and counted as restarted;
//  calls queued behind the crash run once each after the restart; a
//  crash loop ends with the agent failed, and a failed agent can be
//  deleted; a call limit can be a class's own; a host that cannot start
//  fails what waits for it. Every
//  wait is bounded; nothing waits on a sleep. Ends with
//  "N passed, N failed".
//  @end

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "testlib.h"
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>

static const char *s_build = "build";
static bool s_verbose;
static bool s_valgrind;
static int s_slow = 1;
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

typedef struct {
    tl_proc_t daemon;
    agc_conn_t *conn;
} server_t;

//  agentd in process isolation, with extra arguments (NULL-ended)
static int
s_server_start (server_t *self, const char *const *extra)
{
    memset (self, 0, sizeof *self);
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
    const char *args [32] = { "--parent-fd", "3", "-f", "-e",
                              "tcp://127.0.0.1:*", "--plugin", plugin,
                              "--plugin", relay, "--isolation", "process" };
    size_t count = 11;
    for (size_t i = 0; extra && extra [i] && count < 31; i++)
        args [count++] = extra [i];
    args [count] = NULL;
    const char *argv [64];
    tl_agentd_argv (argv, 64, agentd, s_valgrind, args);
    if (tl_agentd_start (&self->daemon, argv, NULL, s_verbose
                         ? TL_ERR_INHERIT: TL_ERR_NULL, s_lifeline [0],
                         30000 * s_slow))
        return -1;
    self->conn = agc_conn_new (self->daemon.endpoint);
    if (self->conn)
        agc_conn_set_timeout (self->conn, 10000 * s_slow);
    return self->conn? 0: -1;
}

static int
s_server_stop (server_t *self)
{
    agc_conn_destroy (&self->conn);
    return self->daemon.pid? tl_proc_stop (&self->daemon, 30000 * s_slow)
                           : 0;
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

static int64_t
s_call_int (agc_agent_t *agent, const char *method, int64_t n)
{
    ag_value_t *args = ag_value_new ("{s:i}", "n", n);
    agc_future_t *future = agc_agent_call (agent, method, args);
    ag_value_destroy (&args);
    agc_future_wait (future, 10000 * s_slow);
    int64_t value = agc_future_status (future) == AG_OK
                  ? ag_obj_int (ag_value_object (agc_future_value (future)),
                                INT64_MIN)
                  : INT64_MIN;
    agc_future_destroy (&future);
    return value;
}

//  An agent's LIST entry field: an integer, or a string into text
static int64_t
s_entry (agc_conn_t *conn, uint64_t id, const char *field, char *text,
         size_t size)
{
    ag_value_t *list = agc_conn_list (conn);
    const msgpack_object *agents = ag_value_object (list);
    int64_t value = INT64_MIN;
    if (text)
        text [0] = 0;
    for (size_t i = 0; i < ag_obj_count (agents); i++) {
        const msgpack_object *entry = ag_obj_at (agents, i);
        if ((uint64_t) ag_obj_int (ag_obj_get (entry, "id"), 0) != id)
            continue;
        const msgpack_object *what = ag_obj_get (entry, field);
        if (what && what->type == MSGPACK_OBJECT_STR && text)
            snprintf (text, size, "%.*s", (int) what->via.str.size,
                      what->via.str.ptr);
        else
            value = ag_obj_int (what, INT64_MIN);
    }
    ag_value_destroy (&list);
    return value;
}

static double
s_ms_since (int64_t start)
{
    return (double) (ag_usecs () - start) / 1000.0;
}

//  ---------------------------------------------------------------------
//  Each fault, in a server of its own

typedef struct {
    const char *method;
    const char *says;               //  in the reason, how the host ended
    const char *sanitized;          //  ... in a sanitizer build
    int within_ms;                  //  answered within, from the call
} fault_t;

static int
s_one_fault (const fault_t *fault, const char *const *extra)
{
    server_t server;
    int rc = s_server_start (&server, extra);
    if (rc) {
        s_server_stop (&server);
        CHECK (rc == 0);
    }
    agc_agent_t *tally = agc_agent_new (server.conn, "Tally", NULL, NULL);
    agc_agent_t *counter = agc_agent_new (server.conn, "Counter", NULL, NULL);
    agc_agent_t *crasher = agc_agent_new (server.conn, "Crasher", NULL, NULL);
    rc = -1;
    if (!tally || !counter || !crasher)
        goto done;
    if (s_call_int (tally, "add", 7) != 7)
        goto done;
    ag_value_t *five = ag_value_new ("i", (int64_t) 5);
    agc_future_t *added = agc_agent_call (counter, "add", five);
    ag_value_destroy (&five);
    int added_status = agc_future_status (added);
    agc_future_destroy (&added);
    if (added_status != AG_OK)
        goto done;

    int64_t start = ag_usecs ();
    agc_future_t *future = agc_agent_call (crasher, fault->method, NULL);
    double took = s_ms_since (start);
    int status = agc_future_status (future);
    char reason [1024];
    snprintf (reason, sizeof reason, "%s", agc_future_reason (future)
                                           ? agc_future_reason (future): "");
    agc_future_destroy (&future);
    s_say ("%s: %d after %.1f ms: %s", fault->method, status, took, reason);
    char method [64], agent [64];
    snprintf (method, sizeof method, "method '%s'", fault->method);
    snprintf (agent, sizeof agent, "agent %" PRIu64 " (class Crasher)",
              agc_agent_id (crasher));
    bool named = strstr (reason, method) && strstr (reason, agent)
              && (strstr (reason, fault->says)
              ||  (s_sanitized && strstr (reason, fault->sanitized)));
    //  The crashed agent answers again, made again in a new host; the
    //  server answers; the other host's agent kept its state; the same
    //  host's other agents are back too
    start = ag_usecs ();
    int64_t ticks = s_call_int (crasher, "tick", 1);
    double recovered = s_ms_since (start);
    int pinged = agc_conn_ping (server.conn);
    int64_t total = s_attr (tally, "total");
    int64_t count = s_attr (counter, "count");
    int64_t restarts = s_entry (server.conn, agc_agent_id (counter),
                                "restarts", NULL, 0);
    char state [32];
    s_entry (server.conn, agc_agent_id (crasher), "state", state,
             sizeof state);
    s_say ("after: crasher tick %" PRId64 " %.1f ms after the crash's answer"
           " (%s); ping %d, tally %" PRId64 ", counter %" PRId64 " (%" PRId64
           " restarts)", ticks, recovered, state, pinged, total, count,
           restarts);
    if (status != AG_CRASHED || !named || took >= fault->within_ms * s_slow
    ||  pinged < 0 || total != 7 || count != 0 || restarts != 1
    ||  ticks != 1 || !streq (state, "running")) {
        tl_failed_check = "the crash stayed in its host, named";
        snprintf (tl_failed_detail, sizeof tl_failed_detail, "%s: status %d"
                  " after %.1f ms (%.200s); ping %d, tally %" PRId64 ", counter %"
                  PRId64 " restarts %" PRId64 ", tick %" PRId64 " %s",
                  fault->method, status, took, reason, pinged, total, count,
                  restarts, ticks, state);
        goto done;
    }
    rc = 0;
done:
    agc_agent_release (&tally);
    agc_agent_release (&counter);
    agc_agent_release (&crasher);
    int stopped = s_server_stop (&server);
    if (rc == 0 && stopped != 0) {
        tl_failed_check = "agentd exited cleanly";
        snprintf (tl_failed_detail, sizeof tl_failed_detail, "status %d",
                  stopped);
        rc = -1;
    }
    return rc;
}

static int
s_crash_contained (void)
{
    static const fault_t faults [] = {
        { "segv", "was killed by signal 11", "exited with status 1", 1000 },
        { "abort", "was killed by signal 6", "exited with status 1", 1000 },
        { "exit", "exited with status 3", "exited with status 3", 1000 },
        { "overflow", "was killed by signal 11", "exited with status 1",
          1000 },
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults [0]; i++)
        if (s_one_fault (&faults [i], NULL))
            return -1;
    return 0;
}

//  An allocation past the host's memory limit: its allocations fail,
//  and the method aborts, as most C does
static int
s_memory_limit (void)
{
    //  Writing 512 MiB before the limit is met takes most of a second
    //  on a busy machine: the answer then comes as fast as for a crash
    static const fault_t hog = {
        "hog", "was killed by signal 6", "exited with status 1", 3000
    };
    const char *extra [] = { "--host-memory-mb", "512", NULL };
    return s_one_fault (&hog, extra);
}

//  A method that never returns and looks at no flag, past the call
//  limit: its host is killed, and its agents are made again. Calls that
//  each stay within the limit are not, however long they queue.
static int
s_call_limit (void)
{
    const char *extra [] = { "--call-limit-ms", "300", NULL };
    server_t server;
    int rc = s_server_start (&server, extra);
    agc_agent_t *counter = rc? NULL: agc_agent_new (server.conn, "Counter",
                                                    NULL, NULL);
    int ok = 0;
    int64_t start = ag_usecs ();
    if (counter) {
        //  Ten of 100 ms, sent at once: 1 s in all, each within 300 ms
        ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 100);
        agc_future_t *naps [10];
        for (int i = 0; i < 10; i++)
            naps [i] = agc_agent_call (counter, "slow", args);
        ag_value_destroy (&args);
        for (int i = 0; i < 10; i++) {
            agc_future_wait (naps [i], 10000 * s_slow);
            ok += agc_future_status (naps [i]) == AG_OK;
            agc_future_destroy (&naps [i]);
        }
    }
    int64_t restarts = counter? s_entry (server.conn, agc_agent_id (counter),
                                         "restarts", NULL, 0): -1;
    s_say ("10 calls of 100 ms in a row: %d OK after %.1f ms, %" PRId64
           " restarts", ok, s_ms_since (start), restarts);
    agc_agent_release (&counter);
    s_server_stop (&server);
    CHECK (rc == 0);
    CHECK (ok == 10 && restarts == 0);
    static const fault_t hang = {
        "hang", "ran past the call limit of 300 ms",
        "ran past the call limit of 300 ms", 1000
    };
    return s_one_fault (&hang, extra);
}

//  A call limit of one class's own: its agents are held to it, agents
//  of other classes in the same host are not
static int
s_class_call_limit (void)
{
    const char *extra [] = { "--class-call-limit", "Crasher=300", NULL };
    server_t server;
    int rc = s_server_start (&server, extra);
    agc_agent_t *counter = rc? NULL: agc_agent_new (server.conn, "Counter",
                                                    NULL, NULL);
    int status = -1;
    int64_t start = ag_usecs ();
    if (counter) {
        ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 700);
        agc_future_t *nap = agc_agent_call (counter, "nap", args);
        ag_value_destroy (&args);
        agc_future_wait (nap, 10000 * s_slow);
        status = agc_future_status (nap);
        agc_future_destroy (&nap);
    }
    int64_t restarts = counter? s_entry (server.conn, agc_agent_id (counter),
                                         "restarts", NULL, 0): -1;
    s_say ("a Counter call of 700 ms: %d after %.1f ms, %" PRId64
           " restarts", status, s_ms_since (start), restarts);
    agc_agent_release (&counter);
    s_server_stop (&server);
    CHECK (rc == 0);
    CHECK (status == AG_OK && restarts == 0);
    static const fault_t hang = {
        "hang", "ran past the call limit of 300 ms (server/class_call_limit)",
        "ran past the call limit of 300 ms (server/class_call_limit)", 1000
    };
    return s_one_fault (&hang, extra);
}

//  ---------------------------------------------------------------------
//  What was queued behind the crash

static int
s_queued_survive (server_t *server)
{
    agc_agent_t *crasher = agc_agent_new (server->conn, "Crasher", NULL,
                                          NULL);
    CHECK (crasher);
    //  The crash, then five calls queued behind it (one goes to the host
    //  at a time: these never began)
    agc_future_t *crash = agc_agent_call (crasher, "segv_async", NULL);
    agc_future_t *ticks [5];
    for (int i = 0; i < 5; i++)
        ticks [i] = agc_agent_call (crasher, "tick", NULL);
    CHECK (agc_future_wait (crash, 5000 * s_slow) == 0);
    s_say ("the crash: %d %s", agc_future_status (crash),
           agc_future_reason (crash));
    CHECK (agc_future_status (crash) == AG_CRASHED);
    for (int i = 0; i < 5; i++) {
        CHECK (agc_future_wait (ticks [i], 5000 * s_slow) == 0);
        CHECK (agc_future_status (ticks [i]) == AG_OK);
        int64_t n = ag_obj_int (ag_value_object (agc_future_value (
                                ticks [i])), -1);
        s_say ("tick %d after the restart: %" PRId64, i + 1, n);
        CHECK (n == i + 1);
    }
    //  Each ran once, in order, on the new agent
    ag_value_t *ticked = agc_agent_getattr (crasher, "ticks");
    s_say ("ticks: %" PRId64 " (%d %s)", ag_obj_int (ag_value_object (ticked),
           -1), agc_status (), agc_reason ());
    CHECK (ag_obj_int (ag_value_object (ticked), -1) == 5);
    ag_value_destroy (&ticked);
    agc_future_destroy (&crash);
    for (int i = 0; i < 5; i++)
        agc_future_destroy (&ticks [i]);
    agc_agent_destroy (&crasher);
    return 0;
}

//  Past its restart budget the agent is failed: its calls say so, LIST
//  shows it, and it can be deleted
static int
s_crash_loop (server_t *server)
{
    agc_agent_t *crasher = agc_agent_new (server->conn, "Crasher", NULL,
                                          NULL);
    CHECK (crasher);
    uint64_t id = agc_agent_id (crasher);
    //  Budget 2: two restarts, then the third crash fails it
    for (int i = 0; i < 3; i++) {
        agc_future_t *future = agc_agent_call (crasher, "segv", NULL);
        s_say ("crash %d: %d %s", i + 1, agc_future_status (future),
               agc_future_reason (future));
        CHECK (agc_future_status (future) == AG_CRASHED);
        agc_future_destroy (&future);
    }
    agc_future_t *future = agc_agent_call (crasher, "tick", NULL);
    CHECK (agc_future_wait (future, 5000 * s_slow) == 0);
    s_say ("after the budget: %d %s", agc_future_status (future),
           agc_future_reason (future));
    CHECK (agc_future_status (future) == AG_FAILED);
    CHECK (strstr (agc_future_reason (future), "restarted 2 times"));
    agc_future_destroy (&future);
    char state [32], crash [512];
    s_entry (server->conn, id, "state", state, sizeof state);
    s_entry (server->conn, id, "last_crash", crash, sizeof crash);
    s_say ("LIST: state %s, last crash: %s", state, crash);
    CHECK (streq (state, "failed"));
    CHECK (strstr (crash, "signal 11") || (s_sanitized
                                       && strstr (crash, "status 1")));
    CHECK (s_entry (server->conn, id, "restarts", NULL, 0) == 2);
    //  Deleted like any other
    CHECK (agc_agent_delete (&crasher) == 0);
    agc_agent_t *gone = agc_agent_attach (server->conn, id);
    future = gone? agc_agent_call (gone, "tick", NULL): NULL;
    CHECK (!gone || agc_future_status (future) == AG_NO_AGENT);
    agc_future_destroy (&future);
    agc_agent_release (&gone);
    return 0;
}

//  Deadlines and cancellation hold with hosts as with threads
static int
s_deadline_cancel (server_t *server)
{
    agc_agent_t *spinner = agc_agent_new (server->conn, "Spinner", NULL,
                                          NULL);
    CHECK (spinner);
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 10000);
    int64_t start = ag_usecs ();
    agc_future_t *future = agc_agent_call_within (spinner, "spin", args, 100);
    double took = s_ms_since (start);
    s_say ("10 s spin with a 100 ms deadline: %d after %.1f ms",
           agc_future_status (future), took);
    CHECK (agc_future_status (future) == AG_DEADLINE);
    CHECK (took >= 95 && took < 2000 * s_slow);
    agc_future_destroy (&future);
    //  The host's method saw the deadline: the agent answers long
    //  before 10 s
    CHECK (s_attr (spinner, "finished") == 1);
    //  A running call, cancelled, then one queued behind it
    agc_future_t *running = agc_agent_call (spinner, "spin_async", args);
    agc_future_t *queued = agc_agent_call (spinner, "spin_async", args);
    CHECK (agc_future_cancel (queued) == 0);
    CHECK (agc_future_wait (queued, 1000 * s_slow) == 0);
    CHECK (agc_future_status (queued) == AG_CANCELLED);
    CHECK (agc_future_cancel (running) == 0);
    CHECK (agc_future_wait (running, 1000 * s_slow) == 0);
    CHECK (agc_future_status (running) == AG_CANCELLED);
    start = ag_usecs ();
    int64_t started = s_attr (spinner, "started");
    int64_t finished = s_attr (spinner, "finished");
    s_say ("after cancelling: started %" PRId64 ", finished %" PRId64 ", %.1f"
           " ms later", started, finished, s_ms_since (start));
    //  The queued one never ran (it never left the broker); the running
    //  one, had it started in its host, stopped at the flag, not after
    //  10 s
    CHECK (started <= 2 && finished == started);
    CHECK (s_ms_since (start) < 5000 * s_slow);
    agc_future_destroy (&running);
    agc_future_destroy (&queued);
    ag_value_destroy (&args);
    agc_agent_destroy (&spinner);
    return 0;
}

//  A host that cannot start (here: an address space too small to load
//  anything) fails what waits for it after a few tries, and agentd
//  answers on
static int
s_host_unstartable (server_t *server)
{
    int64_t start = ag_usecs ();
    agc_agent_t *agent = agc_agent_new (server->conn, "Counter", NULL, NULL);
    s_say ("CREATE with a host that does not start: %d after %.1f ms: %s",
           agc_status (), s_ms_since (start), agc_reason ());
    CHECK (!agent);
    CHECK (agc_status () == AG_INTERNAL);
    CHECK (strstr (agc_reason (), "does not start"));
    CHECK (agc_conn_ping (server->conn) >= 0);
    return 0;
}

//  INFO names the hosts; at stop they go with agentd
static int
s_hosts_stop (server_t *server)
{
    ag_value_t *info = agc_conn_info (server->conn);
    CHECK (info);
    const msgpack_object *hosts = ag_obj_get (ag_value_object (info),
                                              "hosts");
    s_say ("INFO: %zu hosts", ag_obj_count (hosts));
    CHECK (ag_obj_count (hosts) == 2);
    pid_t pids [2];
    for (size_t i = 0; i < 2; i++)
        pids [i] = (pid_t) ag_obj_int (ag_obj_get (ag_obj_at (hosts, i),
                                                   "pid"), 0);
    ag_value_destroy (&info);
    //  Up by now: the two CREATEs below wait for their hosts
    agc_agent_t *a = agc_agent_new (server->conn, "Counter", NULL, NULL);
    agc_agent_t *b = agc_agent_new (server->conn, "Tally", NULL, NULL);
    CHECK (a && b);
    agc_agent_release (&a);
    agc_agent_release (&b);
    int fds [2];
    for (size_t i = 0; i < 2; i++) {
        CHECK (pids [i] > 0);
        fds [i] = tl_pidfd (pids [i]);
        CHECK (fds [i] >= 0);
    }
    int64_t start = ag_usecs ();
    CHECK (s_server_stop (server) == 0);
    s_say ("agentd stopped in %.1f ms", s_ms_since (start));
    for (size_t i = 0; i < 2; i++) {
        struct pollfd item = { fds [i], POLLIN, 0 };
        int ended = poll (&item, 1, 5000 * s_slow);
        close (fds [i]);
        CHECK (ended == 1);
    }
    return 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*alone) (void);            //  starts its own servers
    int (*test) (server_t *server);
    const char *extra [4];          //  the server's extra arguments
} case_t;

static const case_t s_cases [] = {
    { "crash_contained", s_crash_contained, NULL, { NULL } },
    { "memory_limit", s_memory_limit, NULL, { NULL } },
    { "call_limit", s_call_limit, NULL, { NULL } },
    { "class_call_limit", s_class_call_limit, NULL, { NULL } },
    { "queued_survive", NULL, s_queued_survive, { NULL } },
    { "crash_loop", NULL, s_crash_loop, { "--restart-max", "2", NULL } },
    { "deadline_cancel", NULL, s_deadline_cancel, { NULL } },
    { "hosts_stop", NULL, s_hosts_stop, { NULL } },
    { "host_unstartable", NULL, s_host_unstartable,
      { "--host-memory-mb", "1", NULL } },
    { NULL }
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
            fprintf (stderr, "usage: hosttest [BUILD_DIR] [-v] [-n NAME]\n");
            return 2;
        }
    }
    signal (SIGPIPE, SIG_IGN);
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
        //  Under valgrind only agentd runs in it, not its hosts: their
        //  crashes are real. A memory limit leaves no room for a
        //  sanitizer's shadow memory.
        if (test->alone == s_memory_limit && s_sanitized) {
            printf ("skipped under the sanitizers\n");
            continue;
        }
        int64_t start = ag_usecs ();
        int rc;
        if (test->alone)
            rc = test->alone ();
        else {
            server_t server;
            rc = s_server_start (&server, test->extra);
            if (rc) {
                tl_failed_check = "agentd started";
                snprintf (tl_failed_detail, sizeof tl_failed_detail,
                          "%s:%d", __FILE__, __LINE__);
            }
            else
                rc = test->test (&server);
            int status = s_server_stop (&server);
            if (rc == 0 && status != 0) {
                tl_failed_check = "agentd exited cleanly";
                snprintf (tl_failed_detail, sizeof tl_failed_detail,
                          "status %d", status);
                rc = -1;
            }
        }
        if (rc == 0) {
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
