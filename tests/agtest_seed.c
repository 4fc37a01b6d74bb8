/*  =========================================================================
    agtest_seed - the guide's modes: local agents, to_dist, child servers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agtest.h"

//  ---------------------------------------------------------------------
//  Seed parity: local agents, to_dist, child mode, create on server


static const ag_class_t *
s_class (const char *name)
{
    return agc_class_load (agt_plugin, name);
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
        sum += agt_int_result (futures [i]);
        agc_future_destroy (&futures [i]);
    }
    return sum;
}

int
agt_test_zero_migration (const char *endpoint)
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

int
agt_test_to_dist_child (const char *unused)
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
        if (agt_verbose)
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

int
agt_test_to_dist_independent (const char *endpoint)
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
int
agt_test_init_once (const char *endpoint)
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
int
agt_test_shared_child (const char *unused)
{
    agc_conn_t *conn = agc_conn_spawn (agt_plugin);
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

int
agt_test_child_errors (const char *unused)
{
    //  A class linked into this program: a child server cannot load it
    agc_agent_t *agent = agc_agent_new_local (&agt_tally_class, NULL);
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
    CHECK (agc_conn_spawn (agt_plugin) == NULL);
    CHECK (agc_status () == AG_UNREACHABLE);
    CHECK (strstr (agc_reason (), "/nonexistent/agentd"));
    setenv ("AGENTD", saved, 1);
    free (saved);
    //  A plugin the child cannot load
    CHECK (agc_conn_spawn ("/nonexistent/plugin.so") == NULL);
    CHECK (strstr (agc_reason (), "did not start"));
    //  Unknown classes and plugins
    CHECK (agc_class_load (agt_plugin, "Nope") == NULL);
    CHECK (agc_status () == AG_NO_CLASS);
    CHECK (agc_class_load ("/nonexistent/plugin.so", "Counter") == NULL);
    return 0;
}

//  Children die with their parent, even one killed with SIGKILL
int
agt_test_orphans (const char *unused)
{
    char agtest [300];
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", agt_build);
    const char *argv [] = { agtest, "--orphan-parent", agt_build, NULL };
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
int
agt_orphan_parent (void)
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

int
agt_test_agentbase (const char *endpoint)
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
int
agt_test_seed_programs (const char *endpoint)
{
    char dist_main [300], example [300], plugin [300];
    snprintf (dist_main, sizeof dist_main, "%s/examples/dist_main", agt_build);
    snprintf (example, sizeof example, "%s/examples/example", agt_build);
    snprintf (plugin, sizeof plugin, "%s/plugins/seed.so", agt_build);
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
        if (agt_verbose)
            printf ("    mode %d: init %.4f s, sequential %.3f s,"
                    " distributed %.3f s\n", mode, init, sequential,
                    distributed);
        CHECK (init >= 0 && init < 1.0 * agt_slow);
        CHECK (sequential >= 1.99);
        CHECK (distributed >= 0.39 && distributed < 1.0 * agt_slow);
    }
    const char *run_example [] = { example, "--plugin", plugin, NULL };
    CHECK (s_run_program (run_example, out, sizeof out, 30000) == 0);
    double sync_cost = s_figure (out, "Sync func cost: ");
    double async_cost = s_figure (out, "Async func cost: ");
    CHECK (sync_cost >= 0.99 && sync_cost < 2.0 * agt_slow);
    CHECK (async_cost >= 0 && async_cost < 0.2 * agt_slow);
    CHECK (strstr (out, "{\"a\": 1, \"b\": 2, \"c\": \"hello world\"}"));
    //  The pipeline: three stages on two child servers, chained by
    //  futures; the caller only sends
    char pipeline [300];
    snprintf (pipeline, sizeof pipeline, "%s/examples/pipeline", agt_build);
    const char *run_pipeline [] = { pipeline, "--plugin", plugin,
                                    "--delay-ms", "200", NULL };
    CHECK (s_run_program (run_pipeline, out, sizeof out, 30000) == 0);
    CHECK (strstr (out, "[render] page_1 -> parse -> check -> render\n"));
    double blocked = s_figure (out, "caller blocked: ");
    double total = s_figure (out, "total: ");
    if (agt_verbose)
        printf ("    pipeline: caller blocked %.6f s, total %.3f s\n",
                blocked, total);
    CHECK (blocked >= 0 && blocked < 0.1 * agt_slow);
    CHECK (total >= 0.59 && total < 5.0 * agt_slow);
    return 0;
}
