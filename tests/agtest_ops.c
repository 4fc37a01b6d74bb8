/*  =========================================================================
    agtest_ops - operations: the configuration file, signals, systemd

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agtest.h"

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

int
agt_test_config (const char *unused)
{
    char dir [] = "/tmp/agtest-config-XXXXXX";
    CHECK (mkdtemp (dir));
    char file [300], plugins [300], link [400], target [400], text [1200];
    snprintf (file, sizeof file, "%s/agentd.conf", dir);
    snprintf (plugins, sizeof plugins, "%s/plugins", dir);
    CHECK (mkdir (plugins, 0755) == 0);
    snprintf (link, sizeof link, "%s/testclasses.so", plugins);
    CHECK (realpath (agt_plugin, target));
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
    CHECK (agt_daemon_spawn (&daemon, args, NULL) == 0);
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    CHECK (agt_info_int (conn, "threads", "max") == 4);
    agc_agent_t *agent = agt_counter (conn, 1);       //  from plugin_dir
    CHECK (agent);
    agc_agent_destroy (&agent);
    //  SIGHUP re-reads the file; the daemon carries on
    kill (daemon.pid, SIGHUP);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);

    //  The command line overrides the file
    const char *over [] = { "-f", "-c", file, "--threads-max", "8", NULL };
    CHECK (agt_daemon_spawn (&daemon, over, NULL) == 0);
    conn = agc_conn_new (daemon.endpoint);
    CHECK (agt_info_int (conn, "threads", "max") == 8);
    agc_conn_destroy (&conn);
    CHECK (agt_daemon_stop (&daemon) == 0);

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
        { "server\n    class_call_limit = Counter\n", "agentd.conf:2:"
          " server/class_call_limit: 'Counter' is not CLASS=MS" },
        { NULL, NULL }
    };
    char message [512];
    for (int i = 0; bad [i].text; i++) {
        CHECK (s_write_file (file, bad [i].text) == 0);
        const char *run [] = { "-f", "-c", file, NULL };
        int status = agt_agentd_run (message, sizeof message, run);
        if (agt_verbose)
            printf ("    exit %d: %s\n", status, message);
        CHECK (status == 2);
        CHECK (strstr (message, bad [i].words));
    }
    //  A class limit for a class no plugin has: the start fails, naming
    //  it and the classes there are
    const char *unknown [] = { "-f", "-e", "tcp://127.0.0.1:*",
                               "--class-call-limit", "Countr=500",
                               "-p", agt_plugin, NULL };
    CHECK (agt_agentd_run (message, sizeof message, unknown) == 1);
    if (agt_verbose)
        printf ("    %s\n", message);
    CHECK (strstr (message, "class 'Countr', which no plugin has")
        && strstr (message, "Counter"));
    const char *missing [] = { "-f", "-c", "/nonexistent/agentd.conf", NULL };
    CHECK (agt_agentd_run (message, sizeof message, missing) == 2);
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
int
agt_test_notify (const char *unused)
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
    snprintf (watchdog, sizeof watchdog, "WATCHDOG_USEC=%d", 200000 * agt_slow);
    const char *env [] = { notify, watchdog, NULL };
    const char *args [] = { "-f", "-e", "tcp://127.0.0.1:*", NULL };
    daemon_t daemon;
    CHECK (agt_daemon_spawn (&daemon, args, env) == 0);
    char state [256];
    //  READY=1 comes once the endpoint is bound: it answers by then
    CHECK (s_recv_state (fd, state, sizeof state, 10000 * agt_slow) > 0);
    CHECK (streq (state, "READY=1"));
    agc_conn_t *conn = agc_conn_new (daemon.endpoint);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    //  The watchdog is fed while the broker answers
    int watchdogs = 0;
    while (watchdogs < 2
    &&     s_recv_state (fd, state, sizeof state, 2000 * agt_slow) > 0)
        if (streq (state, "WATCHDOG=1"))
            watchdogs++;
    CHECK (watchdogs == 2);
    kill (daemon.pid, SIGTERM);
    bool stopping = false;
    while (!stopping && s_recv_state (fd, state, sizeof state, 10000) > 0)
        stopping = streq (state, "STOPPING=1");
    CHECK (stopping);
    CHECK (tl_proc_reap (&daemon, 20000 * agt_slow) == 0);
    close (fd);
    unlink (path);
    return 0;
}
