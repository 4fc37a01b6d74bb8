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


#include "agtest.h"

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

const ag_class_t agt_tally_class = {
    .name = "Tally",
    .state_size = sizeof (tally_t),
    .methods = s_tally_methods,
    .attrs = s_tally_attrs
};

const char *agt_build = "build";
bool agt_verbose;
bool agt_valgrind;
int agt_slow = 1;              //  time bounds multiply by this

//  ---------------------------------------------------------------------
//  Daemons


//  The next daemon started has its stderr captured in daemon_t.err
bool agt_capture_stderr;

//  Every agentd started here watches this pipe (as its fd 3), so none
//  outlives a test program that crashed or returned early
static int s_lifeline [2] = { -1, -1 };

//  Start agentd with exactly these arguments (after the program name)
//  and extra environment entries (NULL-ended; may be NULL). Returns 0
//  once it has printed its first endpoint.
int
agt_daemon_spawn (daemon_t *self, const char *const *args,
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
    snprintf (agentd, sizeof agentd, "%s/agentd", agt_build);
    const char *lifeline [] = { "--parent-fd", "3", NULL };
    const char *argv [64];
    int argc = tl_agentd_argv (argv, 64, agentd, agt_valgrind, lifeline);
    while (*args && argc < 63)
        argv [argc++] = *args++;
    argv [argc] = NULL;
    int err_to = agt_capture_stderr? TL_ERR_PIPE
               : agt_verbose? TL_ERR_INHERIT: TL_ERR_NULL;
    agt_capture_stderr = false;
    return tl_agentd_start (self, argv, env, err_to, s_lifeline [0],
                            30000 * agt_slow);
}

//  Start agentd with the test plugins, an endpoint (NULL: an ephemeral
//  loopback port) and extra arguments (NULL-ended)
int
agt_daemon_start (daemon_t *self, const char *endpoint, ...)
{
    const char *args [48];
    int argc = 0;
    char plugin1 [300], plugin2 [300];
    snprintf (plugin1, sizeof plugin1, "%s/plugins/testclasses.so", agt_build);
    snprintf (plugin2, sizeof plugin2, "%s/plugins/seed.so", agt_build);
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
    return agt_daemon_spawn (self, args, NULL);
}

//  SIGTERM, and the exit status (0 expected; 99 is valgrind's verdict)
int
agt_daemon_stop (daemon_t *self)
{
    return tl_proc_stop (self, 30000 * agt_slow);
}

void
agt_daemon_kill (daemon_t *self)
{
    if (self->pid) {
        kill (self->pid, SIGKILL);
        tl_proc_reap (self, 10000);
    }
}

//  Run agentd with arguments and no plugins; return its exit status and
//  the first line of its stderr
int
agt_agentd_run (char *message, size_t size, const char *const *args)
{
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", agt_build);
    const char *argv [16];
    tl_agentd_argv (argv, 16, agentd, false, args);
    return tl_run (argv, NULL, NULL, NULL, 0, message, size, 10000);
}

//  ---------------------------------------------------------------------
//  Helpers

agc_agent_t *
agt_counter (agc_conn_t *conn, int64_t start)
{
    ag_value_t *args = ag_value_new ("{s:i, s:s}", "start", start,
                                     "label", "c");
    agc_agent_t *agent = agc_agent_new (conn, "Counter", args, NULL);
    ag_value_destroy (&args);
    return agent;
}

//  A figure from the server's INFO (in section, if not NULL), or -1
int64_t
agt_info_int (agc_conn_t *conn, const char *section, const char *key)
{
    ag_value_t *info = agc_conn_info (conn);
    const msgpack_object *root = ag_value_object (info);
    int64_t value = ag_obj_int (section? ag_obj_get (ag_obj_get (root,
                                section), key): ag_obj_get (root, key), -1);
    ag_value_destroy (&info);
    return value;
}

int64_t
agt_int_result (agc_future_t *future)
{
    const ag_value_t *value = agc_future_value (future);
    return ag_obj_int (ag_value_object (value), INT64_MIN);
}

//  ---------------------------------------------------------------------

char agt_plugin [300];          //  testclasses.so

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*test) (const char *endpoint);
} case_t;

static const case_t s_cases [] = {
    { "lifecycle", agt_test_lifecycle },
    { "list_pages", agt_test_list_pages },
    { "seed_example", agt_test_seed_example },
    { "actor_semantics", agt_test_actor_semantics },
    { "hundred_agents", agt_test_hundred_agents },
    { "errors", agt_test_errors },
    { "threads", agt_test_threads },
    { "waiting", agt_test_waiting },
    { "pool", agt_test_pool },
    { "head_of_line", agt_test_head_of_line },
    { "client_gone", agt_test_client_gone },
    { "restart", agt_test_restart },
    { "restart_behind", agt_test_restart_behind },
    { "limits", agt_test_limits },
    { "flood", agt_test_flood },
    { "small_hwm", agt_test_small_hwm },
    { "deep_burst", agt_test_deep_burst },
    { "big_value", agt_test_big_value },
    { "hostile_input", agt_test_hostile_input },
    { "garbage", agt_test_garbage },
    { "killed_server", agt_test_killed_server },
    { "closed_lingering", agt_test_closed_lingering },
    { "fetch", agt_test_fetch },
    { "futures", agt_test_futures },
    { "graceful_stop", agt_test_graceful_stop },
    { "stop_fast", agt_test_stop_fast },
    { "ipc", agt_test_ipc },
    { "command_line", agt_test_command_line },
    { "embedded", agt_test_embedded },
    { "zero_migration", agt_test_zero_migration },
    { "to_dist_child", agt_test_to_dist_child },
    { "to_dist_independent", agt_test_to_dist_independent },
    { "init_once", agt_test_init_once },
    { "shared_child", agt_test_shared_child },
    { "child_errors", agt_test_child_errors },
    { "orphans", agt_test_orphans },
    { "agentbase", agt_test_agentbase },
    { "seed_programs", agt_test_seed_programs },
    { "config", agt_test_config },
    { "notify", agt_test_notify },
    { "named_across", agt_test_named_across },
    { "placement", agt_test_placement },
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
            agt_verbose = true;
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
            agt_build = argv [i];
        else {
            fprintf (stderr, "usage: agtest [BUILD_DIR] [-v] [-n NAME]\n");
            return 2;
        }
    }
    //  Child servers run this build's agentd
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", agt_build);
    setenv ("AGENTD", agentd, 1);
    snprintf (agt_plugin, sizeof agt_plugin, "%s/plugins/testclasses.so", agt_build);
    if (orphan_parent)
        return agt_orphan_parent ();
    if (hold)
        return agt_hold (hold);
    if (lookup)
        return agt_lookup_mode (lookup, lookup_name);
    agt_valgrind = getenv ("AGTEST_VALGRIND") != NULL;
    if (agt_valgrind)
        agt_slow = 4;
    //  The shared daemon most cases use (futures fetched from it and
    //  others on this machine)
    daemon_t shared;
    if (agt_daemon_start (&shared, NULL, "--peer", "local", NULL)) {
        fprintf (stderr, "agtest: cannot start %s/agentd\n", agt_build);
        printf ("0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0;
    for (const case_t *test = s_cases; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        printf (" * %s: ", test->name);
        if (agt_verbose)
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
    int status = agt_daemon_stop (&shared);
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
