/*  =========================================================================
    sectest - integration tests of CURVE, key files and safe defaults

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  sectest BUILD_DIR [-v] [-n NAME]: starts real agentd processes (and
//  embedded servers) with and without CURVE, and drives them through
//  libagentclient and agentctl. Keys are made by agentctl keygen into a
//  fresh directory. Nothing waits on a sleep: readiness is the
//  "listening on" line, log lines are read from agentd's stderr as they
//  come, exits are pidfds, and replies are futures with timeouts. Every
//  daemon binds an ephemeral port, and only on loopback (a daemon bound
//  to 0.0.0.0 is only asked on 127.0.0.1). Ends with "N passed, N
//  failed".
//  @end

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "../common/ag_cert.h"
#include "testlib.h"
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

static const char *s_build = "build";
static bool s_verbose;
static bool s_valgrind;
static int s_slow = 1;              //  time bounds multiply by this
static char s_dir [64];             //  this run's keys and files
static char s_plugin [300];         //  testclasses.so

//  ---------------------------------------------------------------------
//  Processes

typedef tl_proc_t daemon_t;

static char *
s_path (char *buffer, size_t size, const char *name)
{
    snprintf (buffer, size, "%s/%s", s_dir, name);
    return buffer;
}

//  The agentd of this build, run under valgrind when asked; argv holds
//  64 entries
static int
s_agentd_argv (const char **argv, const char *const *args)
{
    static char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    return tl_agentd_argv (argv, 64, agentd, s_valgrind, args);
}

//  Start agentd with these arguments (after the program name), its
//  stderr on a pipe; returns 0 once it has printed its first endpoint
static int
s_daemon_start (daemon_t *self, const char *const *args)
{
    const char *argv [64];
    s_agentd_argv (argv, args);
    return tl_agentd_start (self, argv, NULL, TL_ERR_PIPE, -1,
                            30000 * s_slow);
}

//  Read agentd's log until a line holds every one of the words (NULL
//  ended), within msecs. Returns 0 when found.
static int
s_daemon_log (daemon_t *self, int msecs, ...)
{
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    char line [1024];
    while (true) {
        int left = (int) ((deadline - ag_usecs ()) / 1000);
        if (left <= 0 || tl_read_line (self->err, line, sizeof line, left) < 0)
            return -1;
        if (s_verbose)
            printf ("    log: %s\n", line);
        bool all = true;
        va_list list;
        va_start (list, msecs);
        const char *word;
        while ((word = va_arg (list, const char *)))
            if (!strstr (line, word))
                all = false;
        va_end (list);
        if (all)
            return 0;
    }
}

//  SIGTERM, and the exit status (0 expected; 99 is valgrind's verdict)
static int
s_daemon_stop (daemon_t *self)
{
    return tl_proc_stop (self, 30000 * s_slow);
}

//  Run a program to its end; its exit status, and the first line of its
//  stdout and of its stderr (either may be NULL)
static int
s_run (const char *const *argv, const char *const *env, const char *cwd,
       char *out, size_t out_size, char *err, size_t err_size)
{
    char line [1024];
    int status = tl_run (argv, env, cwd, out, out_size, line, sizeof line,
                         30000 * s_slow);
    if (err)
        snprintf (err, err_size, "%s", line);
    if (s_verbose && line [0])
        printf ("    stderr: %s\n", line);
    return status;
}

//  Run agentd, expecting it to stop at start; its exit status and the
//  first line of its stderr
static int
s_agentd_fails (char *message, size_t size, const char *const *args)
{
    const char *argv [64];
    s_agentd_argv (argv, args);
    return s_run (argv, NULL, NULL, NULL, 0, message, size);
}

static int
s_agentctl (char *out, size_t out_size, char *err, size_t err_size,
            const char *const *env, const char *const *args)
{
    char agentctl [300];
    snprintf (agentctl, sizeof agentctl, "%s/agentctl", s_build);
    const char *argv [32];
    int argc = 0;
    argv [argc++] = agentctl;
    while (*args && argc < 31)
        argv [argc++] = *args++;
    argv [argc] = NULL;
    return s_run (argv, env, NULL, out, out_size, err, err_size);
}

//  ---------------------------------------------------------------------
//  Helpers

static int
s_copy (const char *from, const char *to, int mode)
{
    FILE *in = fopen (from, "r");
    if (!in)
        return -1;
    int fd = open (to, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        fclose (in);
        return -1;
    }
    char buffer [4096];
    size_t got;
    int rc = 0;
    while ((got = fread (buffer, 1, sizeof buffer, in)) > 0)
        if (write (fd, buffer, got) != (ssize_t) got)
            rc = -1;
    fchmod (fd, (mode_t) mode);
    close (fd);
    fclose (in);
    return rc;
}

static int
s_write_file (const char *path, const char *text, int mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    ssize_t rc = write (fd, text, strlen (text));
    fchmod (fd, (mode_t) mode);
    close (fd);
    return rc == (ssize_t) strlen (text)? 0: -1;
}

static char *
s_public_key (const char *cert_path, char *key)
{
    ag_cert_t cert;
    char error [512];
    if (ag_cert_load_public (&cert, cert_path, error, sizeof error))
        return NULL;
    memcpy (key, cert.public_key, 41);
    return key;
}

//  Create a Counter on a connection and add to it; the total, or -1
static int64_t
s_counter_sum (agc_conn_t *conn, int64_t start, int64_t add)
{
    ag_value_t *args = ag_value_new ("{s:i}", "start", start);
    agc_agent_t *agent = agc_agent_new (conn, "Counter", args, NULL);
    ag_value_destroy (&args);
    if (!agent)
        return -1;
    ag_value_t *amount = ag_value_new ("i", add);
    ag_value_t *sum = agc_agent_call_value (agent, "add", amount);
    ag_value_destroy (&amount);
    int64_t total = sum? ag_obj_int (ag_value_object (sum), -1): -1;
    ag_value_destroy (&sum);
    agc_agent_delete (&agent);
    return total;
}

//  The secured daemon most cases use: CURVE, with alice allowed
static daemon_t s_secure;

static int
s_secure_start (void)
{
    char key [300], allow [300];
    const char *args [] = {
        "-f", "-e", "tcp://127.0.0.1:*", "--plugin", s_plugin,
        "--curve-key", s_path (key, sizeof key, "server"),
        "--curve-allow", s_path (allow, sizeof allow, "allow"), NULL
    };
    if (s_daemon_start (&s_secure, args))
        return -1;
    //  Its start lines, and so its log is read from here on
    return s_daemon_log (&s_secure, 10000 * s_slow, "started", NULL);
}

//  ---------------------------------------------------------------------
//  Cases

//  agentctl keygen writes both files in zcert format, the secret one
//  private, never overwrites, and czmq reads what it writes
static int
s_test_keygen (void)
{
    char path [300], out [1024], err [1024];
    const char *names [] = { "server", "alice", "mallory", NULL };
    for (int i = 0; names [i]; i++) {
        const char *args [] = { "keygen", s_path (path, sizeof path,
                                                   names [i]), NULL };
        CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, args) == 0);
        CHECK (strstr (out, path));
        struct stat info;
        CHECK (stat (path, &info) == 0);
        CHECK ((info.st_mode & 0777) == 0644);
        char secret [320];
        snprintf (secret, sizeof secret, "%s_secret", path);
        CHECK (stat (secret, &info) == 0);
        CHECK ((info.st_mode & 0777) == 0600);
        ag_cert_t cert;
        CHECK (ag_cert_load_secret (&cert, path, err, sizeof err) == 0);
        //  czmq reads it, and finds the same keys
        zcert_t *zcert = zcert_load (path);
        CHECK (zcert);
        CHECK (streq (zcert_public_txt (zcert), cert.public_key));
        CHECK (streq (zcert_secret_txt (zcert), cert.secret_key));
        zcert_destroy (&zcert);
        ag_cert_wipe (&cert);
    }
    //  Never overwrites: the files stay as they were
    char before [41], after [41];
    s_path (path, sizeof path, "alice");
    CHECK (s_public_key (path, before));
    const char *again [] = { "keygen", path, NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, again) == 1);
    CHECK (strstr (err, path) && strstr (err, "exists already"));
    CHECK (s_public_key (path, after) && streq (before, after));
    //  What czmq writes, we read
    zcert_t *zcert = zcert_new ();
    CHECK (zcert_save (zcert, s_path (path, sizeof path, "czmq")) == 0);
    ag_cert_t cert;
    CHECK (ag_cert_load_secret (&cert, path, err, sizeof err) == 0);
    CHECK (streq (cert.public_key, zcert_public_txt (zcert)));
    CHECK (streq (cert.secret_key, zcert_secret_txt (zcert)));
    ag_cert_wipe (&cert);
    zcert_destroy (&zcert);
    //  The allowed clients: alice
    char allow [300], alice [300], copy [320];
    CHECK (mkdir (s_path (allow, sizeof allow, "allow"), 0755) == 0);
    snprintf (copy, sizeof copy, "%s/alice", allow);
    CHECK (s_copy (s_path (alice, sizeof alice, "alice"), copy, 0644) == 0);
    return 0;
}

//  An allowed client creates and calls agents over CURVE
static int
s_test_allowed (void)
{
    CHECK (s_secure_start () == 0);
    char server [300], alice [300];
    s_path (server, sizeof server, "server");
    s_path (alice, sizeof alice, "alice");
    agc_conn_t *conn = agc_conn_new_secure (s_secure.endpoint, server, alice);
    CHECK (conn);
    CHECK (agc_conn_ping (conn) > 0);
    CHECK (s_counter_sum (conn, 5, 2) == 7);
    agc_conn_destroy (&conn);
    //  The secret file named directly does as well
    char alice_secret [320];
    snprintf (alice_secret, sizeof alice_secret, "%s_secret", alice);
    conn = agc_conn_new_secure (s_secure.endpoint, server, alice_secret);
    CHECK (conn);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    //  Certificates that cannot be read fail at once, naming the file
    CHECK (agc_conn_new_secure (s_secure.endpoint, "/nonexistent/server",
                                alice) == NULL);
    CHECK (agc_status () == AG_BAD_REQUEST);
    CHECK (strstr (agc_reason (), "/nonexistent/server"));
    CHECK (agc_conn_new_secure (s_secure.endpoint, server, NULL) == NULL);
    return 0;
}

//  Unchanged code, and the library's own connections (to_dist), use
//  CURVE when the environment names the certificates
static int
s_test_environment (void)
{
    char server [300], alice [300];
    setenv ("AGENTD_SERVER_KEY", s_path (server, sizeof server, "server"), 1);
    setenv ("AGENTD_CLIENT_CERT", s_path (alice, sizeof alice, "alice"), 1);
    agc_conn_t *conn = agc_conn_new (s_secure.endpoint);
    CHECK (conn);
    CHECK (s_counter_sum (conn, 1, 1) == 2);
    agc_conn_destroy (&conn);

    const ag_class_t *counter = agc_class_load (s_plugin, "Counter");
    CHECK (counter);
    ag_value_t *args = ag_value_new ("{s:i}", "start", (int64_t) 40);
    agc_agent_t *agent = agc_agent_new_local (counter, args);
    ag_value_destroy (&args);
    CHECK (agent);
    CHECK (agc_agent_to_dist (agent, s_secure.endpoint) == 0);
    CHECK (!agc_agent_is_local (agent));
    ag_value_t *two = ag_value_new ("i", (int64_t) 2);
    ag_value_t *sum = agc_agent_call_value (agent, "add", two);
    ag_value_destroy (&two);
    CHECK (sum && ag_obj_int (ag_value_object (sum), 0) == 42);
    ag_value_destroy (&sum);
    CHECK (agc_agent_delete (&agent) == 0);

    //  One of the two alone is an error that names the other
    unsetenv ("AGENTD_CLIENT_CERT");
    CHECK (agc_conn_new (s_secure.endpoint) == NULL);
    CHECK (agc_status () == AG_BAD_REQUEST);
    CHECK (strstr (agc_reason (), "AGENTD_CLIENT_CERT"));
    //  A certificate that cannot be read names the variable and the file
    setenv ("AGENTD_CLIENT_CERT", "/nonexistent/alice", 1);
    CHECK (agc_conn_new (s_secure.endpoint) == NULL);
    CHECK (strstr (agc_reason (), "AGENTD_CLIENT_CERT")
        && strstr (agc_reason (), "/nonexistent/alice_secret"));
    unsetenv ("AGENTD_SERVER_KEY");
    unsetenv ("AGENTD_CLIENT_CERT");
    return 0;
}

//  A client whose key is not allowed is refused at once, and the
//  refusal is logged with its address and key; once its key is allowed
//  (SIGHUP re-reads the directory), the same connection gets in
static int
s_test_unknown_key (void)
{
    char server [300], mallory [300], key [41];
    s_path (server, sizeof server, "server");
    s_path (mallory, sizeof mallory, "mallory");
    CHECK (s_public_key (mallory, key));
    agc_conn_t *conn = agc_conn_new_secure (s_secure.endpoint, server,
                                            mallory);
    CHECK (conn);
    agc_conn_set_timeout (conn, 5000 * s_slow);
    int64_t start = ag_usecs ();
    CHECK (agc_conn_ping (conn) == -1);
    CHECK (agc_status () == AG_DENIED);
    CHECK (strstr (agc_reason (), "refused"));
    //  Told by the handshake, not by the timeout
    CHECK (tl_seconds_since (start) < 4.0 * s_slow);
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "refused CURVE client",
                         key, "127.0.0.1", NULL) == 0);
    //  A later request tries again, and is refused again
    CHECK (agc_conn_ping (conn) == -1);
    CHECK (agc_status () == AG_DENIED);
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "refused CURVE client",
                         key, NULL) == 0);

    char allowed [300];
    snprintf (allowed, sizeof allowed, "%s/allow/mallory", s_dir);
    CHECK (s_copy (mallory, allowed, 0644) == 0);
    kill (s_secure.pid, SIGHUP);
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "SIGHUP",
                         "2 client keys allowed", NULL) == 0);
    CHECK (agc_conn_ping (conn) > 0);
    CHECK (s_counter_sum (conn, 3, 3) == 6);
    agc_conn_destroy (&conn);
    CHECK (unlink (allowed) == 0);
    kill (s_secure.pid, SIGHUP);
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "SIGHUP",
                         "1 client key allowed", NULL) == 0);
    //  A directory that no longer reads keeps the keys as they were
    char junk [300];
    snprintf (junk, sizeof junk, "%s/allow/junk", s_dir);
    CHECK (s_write_file (junk, "not a certificate\n", 0644) == 0);
    kill (s_secure.pid, SIGHUP);
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "SIGHUP", junk,
                         "stay as they were", NULL) == 0);
    CHECK (unlink (junk) == 0);
    return 0;
}

//  A client without CURVE, and one with the wrong server key, are
//  refused: their calls fail within the timeout
static int
s_test_without_curve (void)
{
    agc_conn_t *conn = agc_conn_new (s_secure.endpoint);
    CHECK (conn);
    agc_conn_set_timeout (conn, 1000);
    int64_t start = ag_usecs ();
    CHECK (agc_conn_ping (conn) == -1);
    CHECK (agc_status () == AG_UNREACHABLE);
    CHECK (tl_seconds_since (start) < 3.0 * s_slow);
    agc_conn_destroy (&conn);

    char alice [300], alice_public [300];
    s_path (alice, sizeof alice, "alice");
    s_path (alice_public, sizeof alice_public, "mallory");
    conn = agc_conn_new_secure (s_secure.endpoint, alice_public, alice);
    CHECK (conn);
    agc_conn_set_timeout (conn, 1000);
    start = ag_usecs ();
    CHECK (agc_conn_ping (conn) == -1);
    CHECK (agc_status () == AG_UNREACHABLE);
    CHECK (tl_seconds_since (start) < 3.0 * s_slow);
    agc_conn_destroy (&conn);
    return 0;
}

//  agentctl talks to the secured daemon with --server-key and --cert,
//  or the environment
static int
s_test_agentctl (void)
{
    char server [300], alice [300], mallory [300], out [1024], err [1024];
    s_path (server, sizeof server, "server");
    s_path (alice, sizeof alice, "alice");
    s_path (mallory, sizeof mallory, "mallory");
    const char *ping [] = { "-e", s_secure.endpoint, "--server-key", server,
                            "--cert", alice, "ping", NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, ping) == 0);
    CHECK (atoi (out) > 0);
    const char *status [] = { "-e", s_secure.endpoint, "--server-key", server,
                              "--cert", alice, "status", NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, status) == 0);
    CHECK (strstr (out, "version"));
    const char *refused [] = { "-e", s_secure.endpoint, "--server-key",
                               server, "--cert", mallory, "ping", NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, refused) == 3);
    CHECK (strstr (err, "access denied"));
    CHECK (s_daemon_log (&s_secure, 10000 * s_slow, "refused CURVE client",
                         NULL) == 0);
    const char *plain [] = { "-e", s_secure.endpoint, "-t", "1000", "ping",
                             NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, plain) == 3);
    const char *half [] = { "-e", s_secure.endpoint, "--server-key", server,
                            "ping", NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, NULL, half) == 2);
    CHECK (strstr (err, "--cert"));
    char server_env [320], client_env [320];
    snprintf (server_env, sizeof server_env, "AGENTD_SERVER_KEY=%s", server);
    snprintf (client_env, sizeof client_env, "AGENTD_CLIENT_CERT=%s", alice);
    const char *env [] = { server_env, client_env, NULL };
    const char *env_ping [] = { "-e", s_secure.endpoint, "ping", NULL };
    CHECK (s_agentctl (out, sizeof out, err, sizeof err, env, env_ping) == 0);
    return 0;
}

//  Key files that are not private, missing or unreadable stop agentd at
//  start with status 2 and a message naming the file
static int
s_test_bad_keys (void)
{
    char server [300], loose [300], allow [300], junk [300], message [1024];
    s_path (server, sizeof server, "server_secret");
    s_path (loose, sizeof loose, "loose_secret");
    s_path (allow, sizeof allow, "allow");
    s_path (junk, sizeof junk, "junk_secret");
    CHECK (s_copy (server, loose, 0640) == 0);
    const char *group [] = { "-f", "--curve-key", loose, "--curve-allow",
                             allow, NULL };
    CHECK (s_agentd_fails (message, sizeof message, group) == 2);
    CHECK (strstr (message, loose) && strstr (message, "0640"));
    CHECK (chmod (loose, 0604) == 0);
    CHECK (s_agentd_fails (message, sizeof message, group) == 2);
    CHECK (strstr (message, loose));

    const char *missing [] = { "-f", "--curve-key", "/nonexistent/server",
                               "--curve-allow", allow, NULL };
    CHECK (s_agentd_fails (message, sizeof message, missing) == 2);
    CHECK (strstr (message, "/nonexistent/server_secret"));
    CHECK (s_write_file (junk, "hello\n", 0600) == 0);
    const char *unparsable [] = { "-f", "--curve-key", junk, "--curve-allow",
                                  allow, NULL };
    CHECK (s_agentd_fails (message, sizeof message, unparsable) == 2);
    CHECK (strstr (message, junk) && strstr (message, "not a CURVE"));
    const char *no_dir [] = { "-f", "--curve-key", server, "--curve-allow",
                              "/nonexistent/clients", NULL };
    CHECK (s_agentd_fails (message, sizeof message, no_dir) == 2);
    CHECK (strstr (message, "/nonexistent/clients"));
    const char *alone [] = { "-f", "--curve-key", server, NULL };
    CHECK (s_agentd_fails (message, sizeof message, alone) == 2);
    CHECK (strstr (message, "security/curve_allow_dir"));

    //  From a configuration file, the message names its line
    char config [300], text [1024];
    s_path (config, sizeof config, "agentd.conf");
    snprintf (text, sizeof text, "server\n    endpoint = tcp://127.0.0.1:*\n"
              "security\n    curve_secret_key = %s\n"
              "    curve_allow_dir = %s\n", loose, allow);
    CHECK (s_write_file (config, text, 0644) == 0);
    const char *from_file [] = { "-f", "-c", config, NULL };
    CHECK (s_agentd_fails (message, sizeof message, from_file) == 2);
    CHECK (strstr (message, "agentd.conf:4") && strstr (message, loose));
    unlink (config);
    unlink (loose);
    unlink (junk);
    return 0;
}

//  Without CURVE, an endpoint other machines can reach needs --insecure
static int
s_test_bind_scope (void)
{
    char message [1024];
    const char *open [] = { "-f", "-e", "tcp://0.0.0.0:*", NULL };
    CHECK (s_agentd_fails (message, sizeof message, open) == 2);
    CHECK (strstr (message, "tcp://0.0.0.0:*")
        && strstr (message, "--insecure"));
    const char *star [] = { "-f", "-e", "tcp://*:*", NULL };
    CHECK (s_agentd_fails (message, sizeof message, star) == 2);

    //  Said explicitly, it starts (and is asked on loopback only)
    daemon_t daemon;
    const char *insecure [] = { "-f", "-e", "tcp://0.0.0.0:*", "--insecure",
                                NULL };
    CHECK (s_daemon_start (&daemon, insecure) == 0);
    CHECK (strncmp (daemon.endpoint, "tcp://0.0.0.0:", 14) == 0);
    char local [340];
    snprintf (local, sizeof local, "tcp://127.0.0.1:%s", daemon.endpoint + 14);
    agc_conn_t *conn = agc_conn_new (local);
    CHECK (conn);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    CHECK (s_daemon_stop (&daemon) == 0);

    //  With CURVE it starts without being told
    char key [300], allow [300];
    const char *curve [] = { "-f", "-e", "tcp://0.0.0.0:*",
                             "--curve-key", s_path (key, sizeof key, "server"),
                             "--curve-allow", s_path (allow, sizeof allow,
                                                      "allow"), NULL };
    CHECK (s_daemon_start (&daemon, curve) == 0);
    CHECK (s_daemon_stop (&daemon) == 0);

    //  ipc:// is of this machine
    char ipc [300];
    snprintf (ipc, sizeof ipc, "ipc://%s/agentd.sock", s_dir);
    const char *local_ipc [] = { "-f", "-e", ipc, NULL };
    CHECK (s_daemon_start (&daemon, local_ipc) == 0);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

//  A plugin named without a '/' is looked for in the plugin directory
//  only: never in the current directory, nor through LD_LIBRARY_PATH
static int
s_test_plugin_paths (void)
{
    char agentd [PATH_MAX], plugins [PATH_MAX], library_path [PATH_MAX + 32];
    char message [1024], name [300];
    snprintf (name, sizeof name, "%s/agentd", s_build);
    CHECK (realpath (name, agentd));
    snprintf (name, sizeof name, "%s/plugins", s_build);
    CHECK (realpath (name, plugins));
    snprintf (library_path, sizeof library_path, "LD_LIBRARY_PATH=%s",
              plugins);
    const char *argv [] = { agentd, "-f", "--plugin", "testclasses.so", NULL };
    const char *env [] = { library_path, NULL };
    int status = s_run (argv, env, plugins, NULL, 0, message, sizeof message);
    CHECK (status == 1);
    CHECK (strstr (message, AG_PLUGINDIR "/testclasses.so"));
    return 0;
}

//  Servers embedded in one process, each with its own allowed keys:
//  the one ZAP handler tells them apart
static int
s_test_embedded (void)
{
    char server [300], allow [300], other [300], alice [300], mallory [300];
    char copy [320];
    s_path (server, sizeof server, "server");
    s_path (allow, sizeof allow, "allow");
    s_path (other, sizeof other, "allow-mallory");
    s_path (alice, sizeof alice, "alice");
    s_path (mallory, sizeof mallory, "mallory");
    CHECK (mkdir (other, 0755) == 0);
    snprintf (copy, sizeof copy, "%s/mallory", other);
    CHECK (s_copy (mallory, copy, 0644) == 0);

    agd_server_t *first = agd_server_new ();
    agd_server_t *second = agd_server_new ();
    CHECK (first && second);
    CHECK (agd_server_load_plugin (first, s_plugin) == 0);
    CHECK (agd_server_load_plugin (second, s_plugin) == 0);
    CHECK (agd_server_set_curve (first, server, allow) == 0);
    CHECK (agd_server_set_curve (second, server, other) == 0);
    agd_server_set_log_level (first, AGD_LOG_ERROR);
    agd_server_set_log_level (second, AGD_LOG_ERROR);
    CHECK (agd_server_start (first) == 0);
    CHECK (agd_server_start (second) == 0);
    const char *first_endpoint = agd_server_endpoint (first, 0);
    const char *second_endpoint = agd_server_endpoint (second, 0);
    agc_conn_t *conn = agc_conn_new_secure (first_endpoint, server, alice);
    CHECK (s_counter_sum (conn, 1, 2) == 3);
    agc_conn_destroy (&conn);
    conn = agc_conn_new_secure (second_endpoint, server, alice);
    CHECK (agc_conn_ping (conn) == -1 && agc_status () == AG_DENIED);
    agc_conn_destroy (&conn);
    conn = agc_conn_new_secure (second_endpoint, server, mallory);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    //  One stops; the other still answers
    agd_server_stop (first);
    agd_server_wait (first);
    agd_server_destroy (&first);
    conn = agc_conn_new_secure (second_endpoint, server, mallory);
    CHECK (agc_conn_ping (conn) > 0);
    agc_conn_destroy (&conn);
    agd_server_stop (second);
    agd_server_wait (second);
    agd_server_destroy (&second);

    //  The same rules as agentd's
    agd_server_t *embedded = agd_server_new ();
    char loose [300];
    s_path (loose, sizeof loose, "embedded_secret");
    char secret [320];
    snprintf (secret, sizeof secret, "%s_secret", server);
    CHECK (s_copy (secret, loose, 0644) == 0);
    CHECK (agd_server_set_curve (embedded, loose, allow) == -1);
    CHECK (strstr (agd_server_error (embedded), loose));
    agd_server_bind (embedded, "tcp://0.0.0.0:*");
    CHECK (agd_server_start (embedded) == -1);
    CHECK (strstr (agd_server_error (embedded), "not loopback"));
    agd_server_set_insecure (embedded, true);
    agd_server_set_log_level (embedded, AGD_LOG_ERROR);
    CHECK (agd_server_start (embedded) == 0);
    agd_server_stop (embedded);
    agd_server_wait (embedded);
    agd_server_destroy (&embedded);
    unlink (loose);
    unlink (copy);
    rmdir (other);
    return 0;
}

//  With CURVE a client is its key: its limits hold across every
//  connection and routing id it uses, and another key keeps its own
static int
s_test_one_key (void)
{
    char key [300], allow [300], server [300], alice [300], mallory [300];
    s_path (server, sizeof server, "server");
    s_path (alice, sizeof alice, "alice");
    s_path (mallory, sizeof mallory, "mallory");
    //  mallory is allowed here too, as a second identity
    char mallory_allowed [320];
    snprintf (mallory_allowed, sizeof mallory_allowed, "%s/mallory",
              s_path (allow, sizeof allow, "allow"));
    CHECK (s_copy (mallory, mallory_allowed, 0644) == 0);
    const char *args [] = {
        "-f", "-e", "tcp://127.0.0.1:*", "--plugin", s_plugin,
        "--curve-key", s_path (key, sizeof key, "server"),
        "--curve-allow", allow, "--max-pending", "10", NULL
    };
    daemon_t daemon;
    int rc = s_daemon_start (&daemon, args);
    unlink (mallory_allowed);
    CHECK (rc == 0);
    //  Three connections of alice's, each with a routing id of its own:
    //  one agent blocked in a nap, and 30 calls queued behind it over
    //  the three
    agc_conn_t *conns [3];
    for (int i = 0; i < 3; i++)
        CHECK ((conns [i] = agc_conn_new_secure (daemon.endpoint, server,
                                                 alice)));
    agc_agent_t *agent = agc_agent_new (conns [0], "Counter", NULL, NULL);
    CHECK (agent);
    ag_value_t *nap = ag_value_new ("[s, {s:i}]", "nap", "ms",
                                    (int64_t) 1000 * s_slow);
    agc_future_t *blocked = agc_conn_request (conns [0], AGP_CALL,
                                              agc_agent_id (agent), 0,
                                              ag_value_data (nap),
                                              ag_value_size (nap));
    ag_value_destroy (&nap);
    agc_future_t *futures [30];
    ag_value_t *add = ag_value_new ("[s, i]", "add", (int64_t) 1);
    for (int i = 0; i < 30; i++)
        futures [i] = agc_conn_request (conns [i % 3], AGP_CALL,
                                        agc_agent_id (agent), 0,
                                        ag_value_data (add),
                                        ag_value_size (add));
    ag_value_destroy (&add);
    //  mallory, meanwhile, is not held back by alice's limit
    agc_conn_t *other = agc_conn_new_secure (daemon.endpoint, server,
                                             mallory);
    CHECK (other);
    CHECK (s_counter_sum (other, 1, 1) == 2);
    CHECK (agc_future_wait_all (futures, 30, 20000 * s_slow) == 0);
    int ok = 0, busy = 0;
    for (int i = 0; i < 30; i++) {
        int status = agc_future_status (futures [i]);
        if (status == AG_BUSY) {
            busy++;
            CHECK (strstr (agc_future_reason (futures [i]),
                           "server/max_pending_per_client"));
            CHECK (strstr (agc_future_reason (futures [i]), "key "));
        }
        ok += status == AG_OK;
        agc_future_destroy (&futures [i]);
    }
    if (s_verbose)
        printf ("    over 3 connections of one key: %d done, %d refused\n",
                ok, busy);
    //  Ten pending at most for the key: the nap and nine calls
    CHECK (ok == 9 && busy == 21);
    CHECK (agc_future_wait (blocked, 10000 * s_slow) == 0);
    agc_future_destroy (&blocked);
    agc_agent_delete (&agent);
    agc_conn_destroy (&other);
    for (int i = 0; i < 3; i++)
        agc_conn_destroy (&conns [i]);
    CHECK (s_daemon_stop (&daemon) == 0);
    return 0;
}

static int
s_test_secure_stop (void)
{
    CHECK (s_daemon_stop (&s_secure) == 0);
    return 0;
}

//  ---------------------------------------------------------------------

#define NEEDS_NOTHING   0
#define NEEDS_KEYS      1           //  keygen passed
#define NEEDS_DAEMON    2           //  the secured daemon runs

typedef struct {
    const char *name;
    int (*test) (void);
    int needs;
} case_t;

//  In order: keygen makes the keys the rest use, allowed starts the
//  secured daemon, secure_stop stops it
static const case_t s_cases [] = {
    { "keygen", s_test_keygen, NEEDS_NOTHING },
    { "allowed", s_test_allowed, NEEDS_KEYS },
    { "environment", s_test_environment, NEEDS_DAEMON },
    { "unknown_key", s_test_unknown_key, NEEDS_DAEMON },
    { "without_curve", s_test_without_curve, NEEDS_DAEMON },
    { "agentctl", s_test_agentctl, NEEDS_DAEMON },
    { "one_key", s_test_one_key, NEEDS_KEYS },
    { "secure_stop", s_test_secure_stop, NEEDS_DAEMON },
    { "bad_keys", s_test_bad_keys, NEEDS_KEYS },
    { "bind_scope", s_test_bind_scope, NEEDS_KEYS },
    { "plugin_paths", s_test_plugin_paths, NEEDS_NOTHING },
    { "embedded", s_test_embedded, NEEDS_KEYS },
    { NULL, NULL, 0 }
};

//  Remove this run's directory and what is in it
static void
s_cleanup (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
            continue;
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat info;
        if (lstat (path, &info) == 0 && S_ISDIR (info.st_mode))
            s_cleanup (path);
        else
            unlink (path);
    }
    closedir (handle);
    rmdir (dir);
}

int
main (int argc, char *argv [])
{
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "-v"))
            s_verbose = true;
        else
        if (argv [i][0] != '-')
            s_build = argv [i];
        else {
            fprintf (stderr, "usage: sectest [BUILD_DIR] [-v]\n");
            return 2;
        }
    }
    //  Child servers run this build's agentd; the environment starts
    //  without CURVE settings
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", s_build);
    setenv ("AGENTD", agentd, 1);
    unsetenv ("AGENTD_SERVER_KEY");
    unsetenv ("AGENTD_CLIENT_CERT");
    snprintf (s_plugin, sizeof s_plugin, "%s/plugins/testclasses.so",
              s_build);
    s_valgrind = getenv ("AGTEST_VALGRIND") != NULL;
    if (s_valgrind)
        s_slow = 4;
    snprintf (s_dir, sizeof s_dir, "/tmp/sectest-XXXXXX");
    if (!mkdtemp (s_dir)) {
        fprintf (stderr, "sectest: cannot make a directory in /tmp\n");
        printf ("0 passed, 1 failed\n");
        return 1;
    }
    //  A case whose keys or daemon an earlier case failed to make is
    //  counted as failed, not run
    int passed = 0, failed = 0;
    bool keys = false;
    for (const case_t *test = s_cases; test->name; test++) {
        printf (" * %s: ", test->name);
        if (s_verbose)
            printf ("\n");
        fflush (stdout);
        if ((test->needs == NEEDS_KEYS && !keys)
        ||  (test->needs == NEEDS_DAEMON && !s_secure.pid)) {
            printf ("FAILED: not run, what it needs failed before\n");
            failed++;
            continue;
        }
        int64_t start = ag_usecs ();
        int rc = test->test ();
        if (rc == 0 && test->test == s_test_keygen)
            keys = true;
        if (rc == 0) {
            printf ("OK (%.2f s)\n", tl_seconds_since (start));
            passed++;
        }
        else {
            printf ("FAILED: %s at %s", tl_failed_check, tl_failed_detail);
            if (agc_status () != AG_OK)
                printf (" (last client error %d: %s)", agc_status (),
                        agc_reason ());
            printf ("\n");
            failed++;
        }
        fflush (stdout);            //  a leak report at exit skips stdio
    }
    if (s_secure.pid) {
        kill (s_secure.pid, SIGKILL);
        tl_proc_reap (&s_secure, 10000);
    }
    s_cleanup (s_dir);
    printf ("%d passed, %d failed\n", passed, failed);
    fflush (stdout);
    return failed? 1: 0;
}
