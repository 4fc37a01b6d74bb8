/*  =========================================================================
    agtest_faults - clients that go, restarts, limits, floods, futures across servers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agtest.h"

//  ---------------------------------------------------------------------
//  Faults and limits

//  The client the client_gone test kills: three agents it owns and one
//  detached, their ids on stdout, then wait
int
agt_hold (const char *endpoint)
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
int
agt_lookup_mode (const char *endpoint, const char *name)
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
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", agt_build);
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
int
agt_test_named_across (const char *endpoint)
{
    daemon_t other;
    CHECK (agt_daemon_start (&other, NULL, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_agent_t *ledger = agt_counter (conn, 0);
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
    const char *argv [] = { "--lookup", endpoint, "ledger", agt_build, NULL };
    CHECK (s_run_self (argv, env, out, sizeof out, 20000 * agt_slow) == 0);
    if (agt_verbose)
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
    snprintf (command, sizeof command, "%s/agentctl -e %s list", agt_build,
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
    CHECK (s_run_self (argv, NULL, out, sizeof out, 20000 * agt_slow) == 1);
    CHECK (strstr (out, "lookup failed 404 no agent named 'ledger'"));
    ledger = agc_agent_new (conn, "Counter", args, "ledger");
    CHECK (ledger);
    agc_agent_destroy (&ledger);
    agc_agent_destroy (&placed);
    agc_cluster_destroy (&cluster);
    ag_value_destroy (&args);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&other) == 0);
    return 0;
}

//  How many agents each server of a cluster holds
static void
s_agents_held (agc_cluster_t *cluster, int64_t *held)
{
    for (size_t i = 0; i < agc_cluster_size (cluster); i++)
        held [i] = agt_info_int (agc_cluster_conn (cluster, i), NULL,
                               "agents");
}

//  Placement over three servers: round robin spreads evenly; least
//  loaded avoids the server with work pending; a dead server is passed
//  over; names go by hash, the same from any list order
int
agt_test_placement (const char *unused)
{
    daemon_t daemons [3];
    char list [1000] = "", reversed [1000] = "";
    for (int i = 0; i < 3; i++) {
        CHECK (agt_daemon_start (&daemons [i], NULL, NULL) == 0);
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
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 1500 * agt_slow);
    for (int i = 0; i < 4; i++) {
        CHECK ((workers [i] = agt_counter (agc_cluster_conn (cluster, 0), 0)));
        busy [i] = agc_agent_call (workers [i], "slow", nap);
    }
    CHECK (agt_info_int (agc_cluster_conn (cluster, 0), NULL, "pending") > 0);
    for (int i = 0; i < 4; i++)
        CHECK ((agents [i] = agc_cluster_create (cluster, "Counter", NULL,
                                                 NULL)));
    s_agents_held (cluster, held);
    if (agt_verbose)
        printf ("   least loaded: agents held %" PRId64 ", %" PRId64 ", %"
                PRId64 "\n", held [0], held [1], held [2]);
    CHECK (held [0] == 4 && held [1] == 2 && held [2] == 2);
    CHECK (agc_future_wait_all (busy, 4, 20000 * agt_slow) == 0);
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
    CHECK (agt_daemon_stop (&daemons [1]) == 0);
    for (int placement = 0; placement < 2; placement++) {
        cluster = agc_cluster_new (list, (agc_placement_t) placement);
        agc_cluster_set_timeout (cluster, 1000 * agt_slow);
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
    agc_cluster_set_timeout (cluster, 1000 * agt_slow);
    agc_agent_t *live = agc_agent_new (agc_cluster_conn (cluster, 2),
                                       "Counter", NULL, "live-one");
    CHECK (live);
    agc_agent_t *found = agc_cluster_lookup (cluster, "live-one");
    CHECK (found && agc_agent_id (found) == agc_agent_id (live));
    agc_agent_release (&found);
    CHECK (agc_cluster_lookup (cluster, "nobody") == NULL);
    if (agt_verbose)
        printf ("   lookup with a server dead: %d %s\n", agc_status (),
                agc_reason ());
    CHECK (agc_status () == AG_NO_AGENT || agc_status () == AG_UNREACHABLE);
    CHECK (strstr (agc_reason (), dead));
    CHECK (agc_agent_delete (&live) == 0);
    agc_cluster_destroy (&cluster);
    //  All dead: the error says so, naming each
    for (int placement = 0; placement < 2; placement++) {
        cluster = agc_cluster_new (dead, (agc_placement_t) placement);
        agc_cluster_set_timeout (cluster, 500 * agt_slow);
        CHECK (agc_cluster_create (cluster, "Counter", NULL, NULL) == NULL);
        CHECK (agc_status () == AG_UNREACHABLE);
        CHECK (strstr (agc_reason (), "no server in the cluster took the"
                       " agent"));
        CHECK (strstr (agc_reason (), dead));
        agc_cluster_destroy (&cluster);
    }
    CHECK (agt_daemon_stop (&daemons [0]) == 0);
    CHECK (agt_daemon_stop (&daemons [2]) == 0);
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
int
agt_test_client_gone (const char *unused)
{
    int grace_ms = 1500 * agt_slow;
    char grace [16];
    snprintf (grace, sizeof grace, "%d", grace_ms);
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--client-grace-ms", grace,
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_agent_t *mine = agt_counter (conn, 7);
    CHECK (mine);

    char agtest [300];
    snprintf (agtest, sizeof agtest, "%s/tests/agtest", agt_build);
    const char *argv [] = { agtest, "--hold", daemon.endpoint, agt_build, NULL };
    tl_proc_t holder;
    CHECK (tl_proc_spawn (&holder, argv, NULL, NULL, TL_ERR_INHERIT, -1)
           == 0);
    uint64_t ids [4];
    char line [64];
    for (int i = 0; i < 4; i++) {
        CHECK (tl_read_line (holder.out, line, sizeof line, 20000 * agt_slow)
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
    int64_t deadline = killed + (int64_t) (grace_ms + 20000 * agt_slow) * 1000;
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
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  agentd killed and started again on the same endpoint: the client
//  reconnects, new calls work, old agents are gone
int
agt_test_restart (const char *unused)
{
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, NULL) == 0);
    char endpoint [320];
    snprintf (endpoint, sizeof endpoint, "%s", daemon.endpoint);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, 2000 * agt_slow);
    agc_agent_t *before = agt_counter (conn, 1);
    CHECK (before);
    //  A call pending when the server dies does not wait for the new one
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 60000);
    agc_future_t *lost = agc_agent_call (before, "slow", nap);
    ag_value_destroy (&nap);
    CHECK (agc_future_wait (lost, 200) == -1);
    kill (daemon.pid, SIGKILL);
    CHECK (tl_proc_reap (&daemon, 10000 * agt_slow) == 128 + SIGKILL);
    CHECK (agt_daemon_start (&daemon, endpoint, NULL) == 0);
    CHECK (streq (daemon.endpoint, endpoint));
    CHECK (agc_future_wait (lost, AGC_FOREVER) == 0);
    CHECK (agc_future_status (lost) == AG_UNREACHABLE);
    agc_future_destroy (&lost);
    agc_agent_t *after = agt_counter (conn, 5);
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
    CHECK (agt_daemon_stop (&daemon) == 0);
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

int
agt_test_restart_behind (const char *unused)
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
    agc_conn_set_timeout (conn, 400 * agt_slow);
    //  The first request goes with a ping, answered by the first
    //  instance; the ping after a quarter of the timeout of silence is
    //  answered by another, and the call fails then, not at the timeout
    agc_future_t *lost = agc_conn_request (conn, AGP_CALL, 1, 0,
                                           "\x92\xa3" "add" "\x01", 6);
    int64_t start = ag_usecs ();
    CHECK (agc_future_wait (lost, AGC_FOREVER) == 0);
    double waited = tl_seconds_since (start);
    if (agt_verbose)
        printf ("   failed after %.3f s: %s\n", waited,
                agc_future_reason (lost));
    CHECK (agc_future_status (lost) == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (lost), "restarted"));
    CHECK (strstr (agc_future_reason (lost), "aaaaaaaaaaaaaaaa"));
    CHECK (waited < 0.4 * agt_slow);
    agc_future_destroy (&lost);
    agc_conn_destroy (&conn);
    atomic_store (&fake.stop, true);
    pthread_join (thread, NULL);
    zmq_close (fake.socket);
    return 0;
}

//  Each limit answers 302 with the setting's name, and frees up again
int
agt_test_limits (const char *unused)
{
    char path [] = "/tmp/agtest_limits_XXXXXX";
    int fd = mkstemp (path);
    CHECK (fd >= 0);
    const char *text = "server\n    max_agents_per_client = 3\n"
                       "    max_depth = 4\n    max_elements = 100\n";
    CHECK (write (fd, text, strlen (text)) == (ssize_t) strlen (text));
    close (fd);
    daemon_t daemon;
    int rc = agt_daemon_start (&daemon, NULL, "-c", path, "--max-agents", "5",
                             "--max-pending", "100", NULL);
    unlink (path);
    CHECK (rc == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_t *other = agc_conn_new (daemon.endpoint);

    //  Agents one client made; detached ones count too
    agc_agent_t *agents [6] = { NULL };
    for (int i = 0; i < 3; i++)
        CHECK ((agents [i] = agt_counter (conn, 0)));
    CHECK (agt_counter (conn, 0) == NULL);
    CHECK (agc_status () == AG_BUSY);
    CHECK (strstr (agc_reason (), "server/max_agents_per_client"));
    CHECK (!agc_agent_new_detached (conn, "Counter", NULL, NULL));
    CHECK (strstr (agc_reason (), "server/max_agents_per_client"));
    agc_agent_t *spare = agt_counter (other, 0);
    CHECK (spare);
    agc_agent_delete (&spare);
    CHECK ((agents [3] = agc_agent_new_detached (other, "Counter", NULL,
                                                 NULL)));
    //  Agents on the server
    CHECK ((agents [4] = agt_counter (other, 0)));
    CHECK (agt_counter (other, 0) == NULL);
    CHECK (agc_status () == AG_BUSY);
    CHECK (strstr (agc_reason (), "server/max_agents"));
    agc_agent_delete (&agents [4]);
    CHECK ((agents [4] = agt_counter (other, 0)));

    //  Requests one client has pending: one call blocks the agent, 99
    //  more fit behind it, the next 100 are refused at once
    ag_value_t *nap = ag_value_new ("{s:i}", "ms", (int64_t) 1000 * agt_slow);
    agc_future_t *futures [200];
    futures [0] = agc_agent_call (agents [0], "slow", nap);
    ag_value_destroy (&nap);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    for (int i = 1; i < 200; i++)
        futures [i] = agc_agent_call (agents [0], "bump", one);
    ag_value_destroy (&one);
    CHECK (agc_future_wait_all (futures, 200, 20000 * agt_slow) == 0);
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
    CHECK (agc_future_wait (refused, 10000 * agt_slow) == 0);
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
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  One client sends a million requests as fast as it can: every one is
//  answered, with its result or busy, and the daemon's memory stays
//  bounded by the limits, not by the flood
int
agt_test_flood (const char *unused)
{
    int calls = agt_valgrind? 50000: 1000000;
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--max-pending", "10000",
                           NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 60000 * agt_slow);
    agc_agent_t *agents [4];
    for (int i = 0; i < 4; i++)
        CHECK ((agents [i] = agt_counter (conn, 0)));
    int64_t base_kib = tl_peak_rss_kib (daemon.pid);
    agc_future_t **futures = (agc_future_t **)
        calloc ((size_t) calls, sizeof *futures);
    CHECK (futures);
    ag_value_t *one = ag_value_new ("i", (int64_t) 1);
    for (int i = 0; i < calls; i++)
        futures [i] = agc_agent_call (agents [i % 4], "bump", one);
    ag_value_destroy (&one);
    CHECK (agc_future_wait_all (futures, (size_t) calls, 300000 * agt_slow) == 0);
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
    if (agt_verbose)
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
    if (agt_valgrind)
        bound_kib += 256 * 1024;
    CHECK (peak_kib > 0 && peak_kib - base_kib < bound_kib);
    for (int i = 0; i < 4; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);
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
int
agt_test_small_hwm (const char *unused)
{
    int calls = agt_valgrind? 50000: 1000000;
    int window = 20000;
    daemon_t daemon;
    CHECK (agt_daemon_start (&daemon, NULL, "--inbound-hwm", "16", NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    agc_conn_set_timeout (conn, 60000 * agt_slow);
    agc_agent_t *agents [100];
    for (int i = 0; i < 100; i++)
        CHECK ((agents [i] = agt_counter (conn, 0)));
    int64_t served = s_served (conn);
    agc_future_t **ring = (agc_future_t **) calloc ((size_t) window,
                                                    sizeof *ring);
    int64_t checked = 0;
    for (int64_t i = 0; i < calls + window; i++) {
        agc_future_t **slot = &ring [i % window];
        if (*slot) {
            CHECK (agc_future_wait (*slot, 60000 * agt_slow) == 0);
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
    CHECK (agt_daemon_stop (&daemon) == 0);
    return 0;
}

//  Futures as arguments across three servers: y = a (x), z = b (y),
//  w = c (z) go out at once, and the values flow a -> b -> c directly
int
agt_test_futures (const char *endpoint)
{
    daemon_t one, two;
    CHECK (agt_daemon_start (&one, NULL, "--peer", "local", NULL) == 0);
    CHECK (agt_daemon_start (&two, NULL, "--peer", "local", NULL) == 0);
    agc_conn_t *conns [3] = {
        agc_conn_new (one.endpoint), agc_conn_new (two.endpoint),
        agc_conn_new (endpoint)
    };
    agc_agent_t *a = agt_counter (conns [0], 0);
    agc_agent_t *b = agt_counter (conns [1], 0);
    agc_agent_t *c = agt_counter (conns [2], 0);
    CHECK (a && b && c);
    int64_t fetched [3];
    for (int i = 0; i < 3; i++)
        fetched [i] = agt_info_int (conns [i], NULL, "fetched");

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
    CHECK (agc_future_wait (w, 10000 * agt_slow) == 0);
    double total = tl_seconds_since (start);
    if (agt_verbose)
        printf ("   sent in %.4f s, result after %.3f s\n", sent, total);
    CHECK (sent < 0.25 && total >= 0.29);
    CHECK (agc_future_status (w) == AG_OK);
    const msgpack_object *result = ag_value_object (agc_future_value (w));
    CHECK (ag_obj_streq (ag_obj_get (result, "content"), "hello"));
    CHECK (ag_obj_streq (ag_obj_get (result, "role"), "user"));
    //  b fetched from a, and c from b: one and two each delivered a
    //  result to a FETCH; the caller fetched nothing
    CHECK (agt_info_int (conns [0], NULL, "fetched") == fetched [0] + 1);
    CHECK (agt_info_int (conns [1], NULL, "fetched") == fetched [1] + 1);
    CHECK (agt_info_int (conns [2], NULL, "fetched") == fetched [2]);
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
    CHECK (agc_future_wait (dependent, 10000 * agt_slow) == 0);
    CHECK (agc_future_status (dependent) == AG_DEP_FAILED);
    CHECK (strstr (agc_future_reason (dependent), "ms must be 0..60000"));
    CHECK (strstr (agc_future_reason (dependent), "(422)"));
    agc_future_destroy (&dependent);
    agc_future_destroy (&failing);
    ag_value_destroy (&ref);
    ag_value_destroy (&bad);
    //  In a CREATE's arguments: init on two gets the value made on one
    int64_t before = agt_info_int (conns [0], NULL, "fetched");
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
    CHECK (agt_info_int (conns [0], NULL, "fetched") == before + 1);
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
    CHECK (agt_daemon_start (&brief, NULL, "--retention-ms", "100", NULL)
           == 0);
    agc_conn_t *brief_conn = agc_conn_new (brief.endpoint);
    agc_agent_t *e = agt_counter (brief_conn, 0);
    ag_value_t *word = ag_value_new ("s", "fleeting");
    agc_future_t *kept = agc_agent_call (e, "echo_async", word);
    CHECK (agc_future_wait (kept, 10000 * agt_slow) == 0);
    ag_value_t *ref_kept = agc_future_ref (kept);
    int status = AG_OK;
    int64_t deadline = ag_usecs () + 10000000 * agt_slow;
    while (status == AG_OK && ag_usecs () < deadline) {
        agc_future_t *late = agc_agent_call (b, "echo", ref_kept);
        status = agc_future_status (late);
        if (status == AG_OK)
            CHECK (ag_obj_streq (ag_value_object (agc_future_value (late)),
                                 "fleeting"));
        else {
            if (agt_verbose)
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
    CHECK (agt_daemon_stop (&brief) == 0);
    //  A server fetches only from the servers it is told it may: brief
    //  may not fetch from one, and says only that
    CHECK (agt_daemon_start (&brief, NULL, NULL) == 0);
    brief_conn = agc_conn_new (brief.endpoint);
    e = agt_counter (brief_conn, 0);
    word = ag_value_new ("s", "elsewhere");
    kept = agc_agent_call (a, "echo_async", word);
    ref_kept = agc_future_ref (kept);
    CHECK (agc_future_wait (kept, 10000 * agt_slow) == 0);
    before = agt_info_int (conns [0], NULL, "fetched");
    agc_future_t *refused = agc_agent_call (e, "echo", ref_kept);
    CHECK (agc_future_status (refused) == AG_DEP_FAILED);
    CHECK (strstr (agc_future_reason (refused), "not allowed"));
    CHECK (strstr (agc_future_reason (refused), "server/peer"));
    CHECK (agt_info_int (conns [0], NULL, "fetched") == before);
    agc_future_destroy (&refused);
    agc_future_destroy (&kept);
    ag_value_destroy (&ref_kept);
    ag_value_destroy (&word);
    agc_agent_destroy (&e);
    agc_conn_destroy (&brief_conn);
    CHECK (agt_daemon_stop (&brief) == 0);
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
    CHECK (agt_daemon_stop (&one) == 0);
    CHECK (agt_daemon_stop (&two) == 0);
    return 0;
}
