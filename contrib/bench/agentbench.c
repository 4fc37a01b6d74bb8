/*  =========================================================================
    agentbench - agentd's speed, against raw ZeroMQ measured in the same run

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  agentbench [--quick] [--csv FILE] [BUILD_DIR]
//
//  Absolute times drift on shared machines, so each figure is printed
//  next to a baseline measured in the same run: a raw ZeroMQ DEALER ->
//  ROUTER broker -> inproc worker echo (2 workers, 64-byte payload, same
//  transport), served by this program re-executed as a separate process,
//  just as agentd is; create + delete is against agentd's own sync call
//  round trip. Each scenario runs after a warm-up, several times;
//  a line gives the median, the min-max, the baseline, the ratio, the
//  target and PASS or FAIL. The last line is "bench: K of N targets met".
//  @end

#include <agentclient.h>
#include <zmq.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *s_build = "build";
static bool s_quick;
static const char *s_only;          //  run only scenarios matching this
static FILE *s_csv;
static int s_met, s_targets;

static int64_t
s_usecs (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

static double
s_percentile (double *values, size_t count, double p)
{
    qsort (values, count, sizeof *values, s_compare);
    size_t index = (size_t) (p * (double) (count - 1) + 0.5);
    return values [index];
}

//  ---------------------------------------------------------------------
//  Baseline server: ROUTER broker with two inproc echo workers

static void *
s_echo_worker (void *context)
{
    void *socket = zmq_socket (context, ZMQ_DEALER);
    zmq_connect (socket, "inproc://baseline-workers");
    while (true) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, socket, 0) == -1)
            break;
        int more = zmq_msg_more (&part);
        zmq_msg_send (&part, socket, more? ZMQ_SNDMORE: 0);
    }
    zmq_close (socket);
    return NULL;
}

//  Forward one whole message from one socket to another; -1 if none
static int
s_forward (void *from, void *to)
{
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, from, ZMQ_DONTWAIT) == -1)
        return -1;
    while (true) {
        int more = zmq_msg_more (&part);
        zmq_msg_send (&part, to, more? ZMQ_SNDMORE: 0);
        if (!more)
            break;
        zmq_msg_init (&part);
        zmq_msg_recv (&part, from, 0);
    }
    return 0;
}

static int
s_serve_baseline (int count, char **endpoints)
{
    void *context = zmq_ctx_new ();
    void *frontend = zmq_socket (context, ZMQ_ROUTER);
    void *backend = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (frontend, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (frontend, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (backend, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (backend, ZMQ_RCVHWM, &zero, sizeof zero);
    for (int i = 0; i < count; i++)
        if (zmq_bind (frontend, endpoints [i]))
            return 1;
    if (zmq_bind (backend, "inproc://baseline-workers"))
        return 1;
    pthread_t workers [2];
    for (int i = 0; i < 2; i++)
        pthread_create (&workers [i], NULL, s_echo_worker, context);
    char bound [256];
    size_t size = sizeof bound;
    zmq_getsockopt (frontend, ZMQ_LAST_ENDPOINT, bound, &size);
    printf ("listening on %s\n", bound);
    fflush (stdout);
    //  A broker in the Majordomo shape: requests to workers, replies
    //  back, everything waiting handled on each wakeup (as agentd does)
    zmq_pollitem_t items [] = {
        { frontend, 0, ZMQ_POLLIN, 0 }, { backend, 0, ZMQ_POLLIN, 0 }
    };
    while (zmq_poll (items, 2, -1) >= 0) {
        for (int i = 0; i < 256 && s_forward (backend, frontend) == 0; i++)
            ;
        for (int i = 0; i < 256 && s_forward (frontend, backend) == 0; i++)
            ;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Child processes

typedef struct {
    pid_t pid;
    char endpoint [300];
} child_t;

static int
s_child_start (child_t *self, char *const argv [])
{
    int fds [2];
    if (pipe (fds))
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, fds [1], 1);
    posix_spawn_file_actions_addclose (&actions, fds [0]);
    posix_spawn_file_actions_addopen (&actions, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn (&self->pid, argv [0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    close (fds [1]);
    if (rc) {
        close (fds [0]);
        return -1;
    }
    FILE *out = fdopen (fds [0], "r");
    char line [300];
    struct pollfd item = { fds [0], POLLIN, 0 };
    if (poll (&item, 1, 20000) <= 0 || !fgets (line, sizeof line, out)
    ||  strncmp (line, "listening on ", 13) != 0) {
        kill (self->pid, SIGKILL);
        waitpid (self->pid, NULL, 0);
        fclose (out);
        return -1;
    }
    line [strcspn (line, "\n")] = 0;
    snprintf (self->endpoint, sizeof self->endpoint, "%s", line + 13);
    fclose (out);
    return 0;
}

static void
s_child_stop (child_t *self)
{
    kill (self->pid, SIGTERM);
    waitpid (self->pid, NULL, 0);
}

//  ---------------------------------------------------------------------
//  Measurements

#define PAYLOAD 64

//  Raw sync round trips: returns p50 (p99 in *p99), in usecs
static double
s_raw_roundtrip (const char *endpoint, int count, double *p99)
{
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_DEALER);
    zmq_connect (socket, endpoint);
    char payload [PAYLOAD];
    memset (payload, 'p', sizeof payload);
    double *times = (double *) malloc (sizeof (double) * (size_t) count);
    for (int i = -count / 10; i < count; i++) {
        int64_t start = s_usecs ();
        zmq_send (socket, payload, sizeof payload, 0);
        char reply [PAYLOAD];
        zmq_recv (socket, reply, sizeof reply, 0);
        if (i >= 0)
            times [i] = (double) (s_usecs () - start);
    }
    double p50 = s_percentile (times, (size_t) count, 0.5);
    *p99 = s_percentile (times, (size_t) count, 0.99);
    free (times);
    zmq_close (socket);
    zmq_ctx_term (context);
    return p50;
}

//  Raw pipelined requests per second with a window
static double
s_raw_pipelined (const char *endpoint, int count, int window)
{
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (socket, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (socket, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_connect (socket, endpoint);
    char payload [PAYLOAD];
    memset (payload, 'p', sizeof payload);
    int64_t start = s_usecs ();
    int sent = 0, received = 0;
    while (received < count) {
        while (sent < count && sent - received < window) {
            zmq_send (socket, payload, sizeof payload, 0);
            sent++;
        }
        char reply [PAYLOAD];
        zmq_recv (socket, reply, sizeof reply, 0);
        received++;
    }
    double rate = (double) count * 1e6 / (double) (s_usecs () - start);
    zmq_close (socket);
    zmq_ctx_term (context);
    return rate;
}

static double
s_agent_roundtrip (agc_agent_t *agent, int count, double *p99)
{
    char payload [PAYLOAD + 1];
    memset (payload, 'p', PAYLOAD);
    payload [PAYLOAD] = 0;
    ag_value_t *args = ag_value_new ("s", payload);
    double *times = (double *) malloc (sizeof (double) * (size_t) count);
    for (int i = -count / 10; i < count; i++) {
        int64_t start = s_usecs ();
        agc_future_t *future = agc_agent_call (agent, "echo", args);
        if (agc_future_status (future) != AG_OK) {
            fprintf (stderr, "agentbench: echo failed: %s\n",
                     agc_future_reason (future));
            exit (1);
        }
        agc_future_destroy (&future);
        if (i >= 0)
            times [i] = (double) (s_usecs () - start);
    }
    ag_value_destroy (&args);
    double p50 = s_percentile (times, (size_t) count, 0.5);
    *p99 = s_percentile (times, (size_t) count, 0.99);
    free (times);
    return p50;
}

//  Async calls pipelined with a window, spread over agents
static double
s_agent_pipelined (agc_agent_t **agents, int agent_count, int count,
                   int window)
{
    char payload [PAYLOAD + 1];
    memset (payload, 'p', PAYLOAD);
    payload [PAYLOAD] = 0;
    ag_value_t *args = ag_value_new ("s", payload);
    agc_future_t **ring = (agc_future_t **) calloc ((size_t) window,
                                                    sizeof *ring);
    int64_t start = s_usecs ();
    for (int i = 0; i < count + window; i++) {
        agc_future_t **slot = &ring [i % window];
        if (*slot) {
            if (agc_future_wait (*slot, 30000)
            ||  agc_future_status (*slot) != AG_OK) {
                fprintf (stderr, "agentbench: pipelined call failed\n");
                exit (1);
            }
            agc_future_destroy (slot);
        }
        if (i < count)
            *slot = agc_agent_call (agents [i % agent_count], "echo_async",
                                    args);
    }
    double rate = (double) count * 1e6 / (double) (s_usecs () - start);
    free (ring);
    ag_value_destroy (&args);
    return rate;
}

//  Create and delete agents one after another: p50 of the time the
//  caller spends. The delete is sent and not waited for, unless confirm.
static double
s_create_delete (agc_conn_t *conn, int count, bool confirm)
{
    double *times = (double *) malloc (sizeof (double) * (size_t) count);
    for (int i = -count / 10; i < count; i++) {
        int64_t start = s_usecs ();
        agc_agent_t *agent = agc_agent_new (conn, "Counter", NULL, NULL);
        if (confirm)
            agc_agent_delete (&agent);
        else
            agc_agent_destroy (&agent);
        if (i >= 0)
            times [i] = (double) (s_usecs () - start);
    }
    double p50 = s_percentile (times, (size_t) count, 0.5);
    free (times);
    return p50;
}


typedef struct {
    agc_agent_t *agent;
    int calls;
    double rate;
} thread_job_t;

static void *
s_sync_thread (void *arg)
{
    thread_job_t *job = (thread_job_t *) arg;
    ag_value_t *args = ag_value_new ("s", "ping");
    int64_t start = s_usecs ();
    for (int i = 0; i < job->calls; i++) {
        agc_future_t *future = agc_agent_call (job->agent, "echo", args);
        agc_future_destroy (&future);
    }
    job->rate = (double) job->calls * 1e6 / (double) (s_usecs () - start);
    ag_value_destroy (&args);
    return NULL;
}

//  Sync calls per second from threads sharing one connection, each to
//  its own agent
static double
s_threads_rate (agc_agent_t **agents, int threads, int calls)
{
    pthread_t ids [8];
    thread_job_t jobs [8];
    int64_t start = s_usecs ();
    for (int i = 0; i < threads; i++) {
        jobs [i] = (thread_job_t) { agents [i], calls, 0 };
        pthread_create (&ids [i], NULL, s_sync_thread, &jobs [i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join (ids [i], NULL);
    return (double) threads * calls * 1e6 / (double) (s_usecs () - start);
}

//  Child mode: spawn a server and create 5 agents on it, in ms
static double
s_child_mode (const char *plugin)
{
    int64_t start = s_usecs ();
    agc_conn_t *conn = agc_conn_spawn (plugin);
    agc_agent_t *agents [5];
    for (int i = 0; i < 5; i++)
        agents [i] = conn? agc_agent_new (conn, "Counter", NULL, NULL): NULL;
    double elapsed = (double) (s_usecs () - start) / 1000;
    if (!conn || !agents [4]) {
        fprintf (stderr, "agentbench: child mode failed: %s\n", agc_reason ());
        exit (1);
    }
    for (int i = 0; i < 5; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    return elapsed;
}

//  Child mode, one server: spawn it, create an agent, have it answer;
//  in ms
static double
s_child_one (const char *plugin)
{
    int64_t start = s_usecs ();
    agc_conn_t *conn = agc_conn_spawn (plugin);
    agc_agent_t *agent = conn? agc_agent_new (conn, "Counter", NULL, NULL)
                             : NULL;
    double p99;
    if (!agent || s_agent_roundtrip (agent, 1, &p99) < 0) {
        fprintf (stderr, "agentbench: child mode failed: %s\n", agc_reason ());
        exit (1);
    }
    double elapsed = (double) (s_usecs () - start) / 1000;
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return elapsed;
}

//  Process isolation: a method crashes its host; how long until an
//  agent of that host answers again (made again in a new host), in ms.
//  A new crasher each time: an agent that crashes again soon waits its
//  restart backoff, which is not what this measures.
static double
s_crash_recovery (agc_conn_t *conn, agc_agent_t *other)
{
    agc_agent_t *crasher = agc_agent_new (conn, "Crasher", NULL, NULL);
    if (!crasher) {
        fprintf (stderr, "agentbench: no crasher: %s\n", agc_reason ());
        exit (1);
    }
    int64_t start = s_usecs ();
    agc_future_t *future = agc_agent_call (crasher, "segv", NULL);
    int status = agc_future_status (future);
    agc_future_destroy (&future);
    double p99;
    if (status != AG_CRASHED || s_agent_roundtrip (other, 1, &p99) < 0) {
        fprintf (stderr, "agentbench: the crash gave %d\n", status);
        exit (1);
    }
    double elapsed = (double) (s_usecs () - start) / 1000;
    agc_agent_destroy (&crasher);
    return elapsed;
}

//  100 agents each sleeping 1 s, called at once: seconds of wall time
static double
s_hundred_sleepers (agc_conn_t *conn)
{
    agc_agent_t *agents [100];
    agc_future_t *futures [100];
    for (int i = 0; i < 100; i++)
        agents [i] = agc_agent_new (conn, "Counter", NULL, NULL);
    ag_value_t *args = ag_value_new ("{s:i}", "ms", (int64_t) 1000);
    int64_t start = s_usecs ();
    for (int i = 0; i < 100; i++)
        futures [i] = agc_agent_call (agents [i], "slow", args);
    agc_future_wait_all (futures, 100, 60000);
    double elapsed = (double) (s_usecs () - start) / 1e6;
    for (int i = 0; i < 100; i++) {
        agc_future_destroy (&futures [i]);
        agc_agent_destroy (&agents [i]);
    }
    ag_value_destroy (&args);
    return elapsed;
}

static long
s_rss_kib (int pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    long rss = -1;
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            rss = atol (line + 6);
    if (file)
        fclose (file);
    return rss;
}

//  Bytes of daemon memory per idle agent (a class with no state)
static double
s_idle_agents (const char *endpoint, int pid, int count)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t **agents = (agc_agent_t **) calloc ((size_t) count,
                                                    sizeof *agents);
    long before = s_rss_kib (pid);
    for (int i = 0; i < count; i++) {
        agents [i] = agc_agent_new (conn, "Once", NULL, NULL);
        if (!agents [i]) {
            fprintf (stderr, "agentbench: create failed: %s\n",
                     agc_reason ());
            exit (1);
        }
    }
    long after = s_rss_kib (pid);
    for (int i = 0; i < count; i++)
        agc_agent_destroy (&agents [i]);
    free (agents);
    agc_conn_destroy (&conn);
    return (double) (after - before) * 1024 / count;
}

//  MB/s of a 1 MiB argument echoed by a sync call (counted once)
static double
s_big_argument (agc_agent_t *agent, int calls)
{
    size_t size = 1024 * 1024;
    char *data = (char *) malloc (size);
    memset (data, 'b', size);
    ag_value_t *args = ag_value_new ("B", data, size);
    free (data);
    int64_t start = s_usecs ();
    for (int i = 0; i < calls; i++) {
        agc_future_t *future = agc_agent_call (agent, "echo", args);
        agc_future_destroy (&future);
    }
    double seconds = (double) (s_usecs () - start) / 1e6;
    ag_value_destroy (&args);
    return (double) size * calls / seconds / 1e6;
}

//  ---------------------------------------------------------------------
//  Reporting

//  True if the scenario is to run (--only WORD matches its name)
static bool
s_want (const char *scenario)
{
    return !s_only || strstr (scenario, s_only);
}

static double
s_median (double *runs, int count, double *min, double *max)
{
    double sorted [16];
    memcpy (sorted, runs, sizeof (double) * (size_t) count);
    qsort (sorted, (size_t) count, sizeof (double), s_compare);
    *min = sorted [0];
    *max = sorted [count - 1];
    return sorted [count / 2];
}

//  One line. lower_is_better: the figure must be at most target (times
//  ratio to the baseline, or absolute when baseline is 0).
static void
s_report (const char *scenario, const char *unit, double *runs, int count,
          double baseline, double target, bool lower_is_better)
{
    double min, max;
    double median = s_median (runs, count, &min, &max);
    double ratio = baseline > 0? median / baseline: 0;
    bool pass;
    char target_text [64];
    if (target < 0) {
        //  A figure shown for comparison, with no target of its own
        printf ("%-40s %10.1f %-6s [%.1f-%.1f]  (no target)\n", scenario,
                median, unit, min, max);
        if (s_csv)
            fprintf (s_csv, "%s,%s,%.3f,%.3f,%.3f,,,,\n", scenario, unit,
                     median, min, max);
        fflush (stdout);
        return;
    }
    if (baseline > 0) {
        pass = lower_is_better? ratio <= target: ratio >= target;
        snprintf (target_text, sizeof target_text, "%s%.2fx",
                  lower_is_better? "<=": ">=", target);
    }
    else {
        pass = lower_is_better? median <= target: median >= target;
        snprintf (target_text, sizeof target_text, "%s%g %s",
                  lower_is_better? "<=": ">=", target, unit);
    }
    s_targets++;
    if (pass)
        s_met++;
    printf ("%-40s %10.1f %-6s [%.1f-%.1f]", scenario, median, unit, min,
            max);
    if (baseline > 0)
        printf ("  baseline %.1f  ratio %.2f", baseline, ratio);
    printf ("  target %s  %s\n", target_text, pass? "PASS": "FAIL");
    if (s_csv)
        fprintf (s_csv, "%s,%s,%.3f,%.3f,%.3f,%.3f,%.3f,%s,%s\n", scenario,
                 unit, median, min, max, baseline, ratio, target_text,
                 pass? "PASS": "FAIL");
    fflush (stdout);
}

int
main (int argc, char *argv [])
{
    if (argc >= 3 && strcmp (argv [1], "--serve-baseline") == 0)
        return s_serve_baseline (argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--quick") == 0)
            s_quick = true;
        else
        if (strcmp (argv [i], "--only") == 0 && i + 1 < argc)
            s_only = argv [++i];
        else
        if (strcmp (argv [i], "--csv") == 0 && i + 1 < argc) {
            s_csv = fopen (argv [++i], "w");
            if (!s_csv) {
                fprintf (stderr, "agentbench: cannot write %s\n", argv [i]);
                return 2;
            }
            fprintf (s_csv, "scenario,unit,median,min,max,baseline,ratio,"
                     "target,result\n");
        }
        else
        if (argv [i][0] != '-')
            s_build = argv [i];
        else {
            fprintf (stderr, "usage: agentbench [--quick] [--csv FILE]"
                     " [--only WORD] [BUILD_DIR]\n");
            return 2;
        }
    }
    char self [300], agentd [300], plugin [300];
    snprintf (self, sizeof self, "%s/bench/agentbench", s_build);
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    snprintf (plugin, sizeof plugin, "%s/plugins/testclasses.so", s_build);
    setenv ("AGENTD", agentd, 1);
    char base_ipc [128], agentd_ipc [128];
    snprintf (base_ipc, sizeof base_ipc, "ipc:///tmp/agentbench-%d-raw",
              getpid ());
    snprintf (agentd_ipc, sizeof agentd_ipc, "ipc:///tmp/agentbench-%d-agentd",
              getpid ());
    child_t baseline, daemon;
    //  Each binds ipc first, then tcp, whose real port it reports
    char *baseline_argv [] = { self, "--serve-baseline", base_ipc,
                               "tcp://127.0.0.1:*", NULL };
    char *daemon_argv [] = { agentd, "-f", "-e", agentd_ipc,
                             "-e", "tcp://127.0.0.1:*", "--plugin", plugin,
                             "--isolation", "thread", NULL };
    if (s_child_start (&baseline, baseline_argv)
    ||  s_child_start (&daemon, daemon_argv)) {
        fprintf (stderr, "agentbench: cannot start %s or %s\n", self, agentd);
        return 1;
    }
    //  agentd printed its ipc endpoint first; ask it for the tcp one
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    ag_value_t *info = agc_conn_info (conn);
    const msgpack_object *endpoints = ag_obj_get (ag_value_object (info),
                                                  "endpoints");
    char *tcp = ag_obj_strdup (ag_obj_at (endpoints, 1));
    ag_value_destroy (&info);
    agc_conn_destroy (&conn);
    if (!tcp) {
        fprintf (stderr, "agentbench: agentd did not report its endpoints\n");
        return 1;
    }
    int runs = s_quick? 3: 5;
    int calls = s_quick? 2000: 20000;
    int piped = s_quick? 20000: 200000;
    conn = agc_conn_new (tcp);
    agc_conn_t *ipc_conn = agc_conn_new (agentd_ipc);
    agc_agent_t *agents [64];
    for (int i = 0; i < 64; i++)
        agents [i] = agc_agent_new (conn, "Counter", NULL, NULL);
    agc_agent_t *ipc_agent = agc_agent_new (ipc_conn, "Counter", NULL, NULL);
    if (!agents [63] || !ipc_agent) {
        fprintf (stderr, "agentbench: cannot create agents: %s\n",
                 agc_reason ());
        return 1;
    }
    printf ("agentbench: median of %d runs; baseline: raw ZeroMQ DEALER ->"
            " ROUTER broker -> 2 inproc workers, %d-byte echo, same run\n",
            runs, PAYLOAD);

    double base [16], ours [16], spread [16], base99 [16], ours99 [16];
    double min, max;
    if (s_want ("sync call round trip, tcp")) {
    for (int r = 0; r < runs; r++) {
        base [r] = s_raw_roundtrip (baseline.endpoint, calls, &base99 [r]);
        ours [r] = s_agent_roundtrip (agents [0], calls, &ours99 [r]);
    }
    double base_p50 = s_median (base, runs, &min, &max);
    double base_p99 = s_median (base99, runs, &min, &max);
    s_report ("sync call round trip p50, tcp", "us", ours, runs, base_p50,
              1.15, true);
    s_report ("sync call round trip p99, tcp", "us", ours99, runs, base_p99,
              2.0, true);
    }
    if (s_want ("sync call round trip, ipc")) {
    for (int r = 0; r < runs; r++) {
        base [r] = s_raw_roundtrip (base_ipc, calls, &base99 [r]);
        ours [r] = s_agent_roundtrip (ipc_agent, calls, &ours99 [r]);
    }
    s_report ("sync call round trip p50, ipc", "us", ours, runs,
              s_median (base, runs, &min, &max), 1.15, true);
    }
    if (s_want ("async pipelined")) {

    //  Interleaved, so that each run of ours has a baseline run next to
    //  it: the machine's speed drifts between runs
    for (int r = 0; r < runs; r++) {
        base [r] = s_raw_pipelined (baseline.endpoint, piped, 1000);
        ours [r] = s_agent_pipelined (agents, 1, piped, 1000);
        spread [r] = s_agent_pipelined (agents, 64, piped, 1000);
    }
    double base_rate = s_median (base, runs, &min, &max);
    s_report ("async pipelined, 1 agent, window 1000", "req/s", ours, runs,
              base_rate, 0.60, false);
    s_report ("async pipelined, 64 agents", "req/s", spread, runs,
              base_rate, 0.60, false);
    }
    if (s_want ("4 threads on one connection, sync")) {

    for (int r = 0; r < runs; r++) {
        base [r] = s_threads_rate (agents, 1, calls);
        ours [r] = s_threads_rate (agents, 4, calls / 4);
    }
    s_report ("4 threads on one connection, sync", "call/s", ours, runs,
              s_median (base, runs, &min, &max), 2.0, false);
    }
    if (s_want ("create + delete an agent p50")) {

    //  A create is one round trip, its delete one more message: against
    //  the sync call round trip measured next to it (an absolute bound
    //  would say more about the machine than the code)
    for (int r = 0; r < runs; r++) {
        double base_p99;
        base [r] = s_agent_roundtrip (agents [0], calls / 4, &base_p99);
        ours [r] = s_create_delete (conn, calls / 4, false);
        spread [r] = s_create_delete (conn, calls / 4, true);
    }
    s_report ("create + delete an agent p50", "us", ours, runs,
              s_median (base, runs, &min, &max), 1.50, true);
    s_report ("create + delete, delete confirmed, p50", "us", spread, runs,
              0, -1, true);
    }
    if (s_want ("child mode: spawn + create 5 agents")) {

    for (int r = 0; r < runs; r++)
        ours [r] = s_child_mode (plugin);
    s_report ("child mode: spawn + create 5 agents", "ms", ours, runs, 0, 30,
              true);
    }
    if (s_want ("100 agents sleeping 1 s, at once")) {

    int sleeper_runs = s_quick? 1: 3;
    for (int r = 0; r < sleeper_runs; r++)
        ours [r] = s_hundred_sleepers (conn);
    s_report ("100 agents sleeping 1 s, at once", "s", ours, sleeper_runs, 0,
              1.1, true);
    }
    if (s_want ("1 MiB argument, sync call")) {

    for (int r = 0; r < runs; r++)
        ours [r] = s_big_argument (agents [1], s_quick? 20: 100);
    s_report ("1 MiB argument, sync call", "MB/s", ours, runs, 0, 500, false);
    }

    if (s_want ("process isolation")) {
    //  The same calls to a second agentd whose agents live in a host
    //  process, against this one's, run for run
    char *isolated_argv [] = { agentd, "-f", "-e", "tcp://127.0.0.1:*",
                               "--plugin", plugin, "--isolation", "process",
                               "--restart-max", "1000", NULL };
    child_t isolated;
    if (s_child_start (&isolated, isolated_argv)) {
        fprintf (stderr, "agentbench: cannot start agentd --isolation"
                 " process\n");
        return 1;
    }
    agc_conn_t *iso_conn = agc_conn_new (isolated.endpoint);
    agc_agent_t *hosted [64];
    for (int i = 0; i < 64; i++)
        hosted [i] = agc_agent_new (iso_conn, "Counter", NULL, NULL);
    if (!hosted [63]) {
        fprintf (stderr, "agentbench: cannot create hosted agents: %s\n",
                 agc_reason ());
        return 1;
    }
    for (int r = 0; r < runs; r++) {
        base [r] = s_agent_roundtrip (agents [0], calls, &base99 [r]);
        ours [r] = s_agent_roundtrip (hosted [0], calls, &ours99 [r]);
    }
    s_report ("process isolation: sync p50 vs thread", "us", ours, runs,
              s_median (base, runs, &min, &max), 1.30, true);
    for (int r = 0; r < runs; r++) {
        base [r] = s_agent_pipelined (agents, 64, piped, 1000);
        ours [r] = s_agent_pipelined (hosted, 64, piped, 1000);
    }
    s_report ("process isolation: 64 agents pipelined vs thread", "req/s",
              ours, runs, s_median (base, runs, &min, &max), 0.60, false);
    for (int r = 0; r < runs; r++) {
        base [r] = s_child_one (plugin);
        ours [r] = s_crash_recovery (iso_conn, hosted [1]);
    }
    s_report ("process isolation: crash to answering vs child start", "ms",
              ours, runs, s_median (base, runs, &min, &max), 2.0, true);
    for (int i = 0; i < 64; i++)
        agc_agent_destroy (&hosted [i]);
    agc_conn_destroy (&iso_conn);
    s_child_stop (&isolated);
    }

    //  Last: it grows the daemon
    if (s_want ("idle agents: daemon RSS each")) {
    ours [0] = s_idle_agents (tcp, daemon.pid, s_quick? 20000: 100000);
    s_report (s_quick? "20,000 idle agents: daemon RSS each"
                     : "100,000 idle agents: daemon RSS each", "bytes",
              ours, 1, 0, 1024, true);
    }

    for (int i = 0; i < 64; i++)
        agc_agent_destroy (&agents [i]);
    agc_agent_destroy (&ipc_agent);
    agc_conn_destroy (&ipc_conn);
    agc_conn_destroy (&conn);
    free (tcp);
    s_child_stop (&daemon);
    s_child_stop (&baseline);
    printf ("bench: %d of %d targets met\n", s_met, s_targets);
    if (s_csv)
        fclose (s_csv);
    return 0;
}
