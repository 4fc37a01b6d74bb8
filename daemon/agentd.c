/*  =========================================================================
    agentd - the agent server daemon

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A thin main over the embeddable server: read the settings (the
//  configuration file, then the command line over it), load plugins,
//  bind, report the endpoints, tell systemd, and wait for a signal.
//  Signals are blocked in every thread and taken here with sigwait, so
//  no handler runs in the middle of anything.
//  @end

#include "agd.h"
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

//  In its host role agentd runs another agentd's agents (agd_hostrun.c),
//  over the socket it was given as fd 3
static bool s_host_role;

static void
s_usage (FILE *file)
{
    fprintf (file,
"usage: agentd [OPTION]...\n"
"Serve agents of the classes in the given plugins.\n"
"\n"
"  -c, --config FILE        read settings from FILE (see agentd.conf(5));\n"
"                           the options below override it\n"
"  -e, --endpoint ENDPOINT  bind tcp://host:port, tcp://host:* or ipc://path\n"
"                           (repeatable; default tcp://127.0.0.1:12345)\n"
"  -p, --plugin PATH        load agent classes from a plugin (repeatable)\n"
"  -f, --foreground         stay in the foreground, log to stderr\n"
"  -v, --verbose            log every request (log level info)\n"
"      --insecure           allow endpoints beyond loopback without CURVE\n"
"      --parent-fd FD       stop when FD (a pipe from the parent) closes\n"
"      --set KEY=VALUE      set any setting of agentd.conf(5) (repeatable)\n"
"      --settings           print every setting, its default and meaning\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"and a setting each, as agentd.conf(5) describes them:\n");
    agd_settings_usage (file);
    fprintf (file,
"\n"
"Once every endpoint is bound agentd prints 'listening on ENDPOINT' for\n"
"each, with the real port where ':*' was given, and tells systemd it is\n"
"ready. SIGINT or SIGTERM stops it gracefully; SIGHUP re-reads log/level\n"
"from the configuration file, and the --curve-allow directory. Without\n"
"CURVE, an endpoint other machines can reach needs --insecure. See\n"
"agentd(8).\n");
}

//  A child server watches a pipe from its parent: when the parent goes,
//  the pipe closes, and the server stops as if sent SIGTERM
static void *
s_watch_parent (void *arg)
{
    int fd = (int) (intptr_t) arg;
    while (true) {
        struct pollfd item = { fd, POLLIN, 0 };
        if (poll (&item, 1, -1) < 0 && errno == EINTR)
            continue;
        char byte;
        ssize_t rc = read (fd, &byte, 1);
        if (rc == 0 || (rc < 0 && errno != EINTR && errno != EAGAIN))
            break;
    }
    zsys_notice ("parent gone: stopping");
    kill (getpid (), SIGTERM);
    return NULL;
}

//  Detach from the terminal. The parent stays until the child reports
//  (through a pipe) whether it started, and exits with that.
static int
s_detach (int *report_fd)
{
    int fds [2];
    if (pipe (fds))
        return -1;
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close (fds [1]);
        char status = 1;
        if (read (fds [0], &status, 1) != 1)
            status = 1;
        _exit (status);
    }
    close (fds [0]);
    setsid ();
    umask (022);
    if (chdir ("/")) {
        //  Not fatal: paths in the settings were made absolute by the user
    }
    *report_fd = fds [1];
    return 0;
}

//  SIGHUP: re-read the client keys, and the one setting that applies
//  while running
static void
s_reload (agd_server_t *server, const char *config, agd_settings_t *cli,
          bool curve)
{
    if (curve) {
        int count = agd_server_reload_keys (server);
        if (count < 0)
            zsys_warning ("SIGHUP: %s; the client keys allowed stay as they"
                          " were", agd_server_error (server));
        else
            zsys_notice ("SIGHUP: %d client key%s allowed", count,
                         count == 1? "": "s");
    }
    if (!config) {
        zsys_notice ("SIGHUP: no configuration file to re-read");
        return;
    }
    char error [512];
    agd_settings_t *fresh = agd_settings_new ();
    if (agd_settings_load (fresh, config, error, sizeof error)) {
        zsys_warning ("SIGHUP: %s; keeping the running settings", error);
        agd_settings_destroy (&fresh);
        return;
    }
    agd_settings_merge (fresh, cli);
    const char *level = agd_settings_get (fresh, "log/level");
    agd_server_set_log_level (server, agd_log_level_of (level));
    zsys_notice ("SIGHUP: re-read %s: log/level=%s (other settings take"
                 " effect at restart)", config, level);
    agd_settings_destroy (&fresh);
}

//  The host role: the plugins, the limits, then serve the broker on fd
//  3 until it goes. No ZeroMQ, no systemd, no signals of its own: the
//  broker decides when it ends.
static int
s_host (agd_settings_t *settings)
{
    unsetenv ("NOTIFY_SOCKET");
    signal (SIGINT, SIG_IGN);
    signal (SIGTERM, SIG_IGN);
    signal (SIGHUP, SIG_IGN);
    signal (SIGPIPE, SIG_IGN);
    long megabytes = atol (agd_settings_get (settings,
                                             "server/host_memory_mb"));
    if (megabytes > 0) {
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max = (rlim_t) megabytes << 20;
        if (setrlimit (RLIMIT_AS, &limit))
            fprintf (stderr, "agentd: host memory limit: %s\n",
                     strerror (errno));
    }
    if (fcntl (3, F_GETFD) == -1) {
        fprintf (stderr, "agentd: --host needs the broker's socket as fd"
                 " 3\n");
        return 2;
    }
    agd_registry_t *registry = agd_registry_new ();
    char error [1024];
    const char *plugin = agd_settings_get (settings, "server/plugin");
    if (plugin && agd_registry_load (registry, plugin, error, sizeof error)) {
        fprintf (stderr, "agentd: %s\n", error);
        return 1;
    }
    agd_hostrun_config_t config = {
        .threads_min = atoi (agd_settings_get (settings,
                                               "server/threads_min")),
        .threads_max = atoi (agd_settings_get (settings,
                                               "server/threads_max")),
        .idle_ms = atoi (agd_settings_get (settings, "server/idle_ms")),
        .max_message = (size_t) atoll (agd_settings_get (settings,
                                           "server/max_message")),
        .log_level = agd_log_level_of (agd_settings_get (settings,
                                                         "log/level"))
    };
    ag_msgpack_set_limits (atoi (agd_settings_get (settings,
                                                   "server/max_depth")),
                           (size_t) atoll (agd_settings_get (settings,
                                               "server/max_elements")));
    int status = agd_hostrun (3, registry, &config);
    //  Threads may still be in agent code: no exit handlers, no unloading
    fflush (NULL);
    _exit (status);
}

int
main (int argc, char *argv [])
{
    //  agentd's own options, then one for each setting that has one
    struct option options [80] = {
        { "config", required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "plugin", required_argument, NULL, 'p' },
        { "foreground", no_argument, NULL, 'f' },
        { "verbose", no_argument, NULL, 'v' },
        { "parent-fd", required_argument, NULL, 7 },
        { "settings", no_argument, NULL, 8 },
        { "insecure", no_argument, NULL, 22 },
        { "set", required_argument, NULL, 23 },
        { "host", no_argument, NULL, 24 },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' }
    };
    size_t own = 12;
    agd_settings_options (options + own, 80 - own);
    //  A crash in agent code, or its exit (), names the agent in the log
    agd_fatal_install ();
    //  Signals are taken by sigwait below; block them before any thread
    //  exists so every thread inherits the mask
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);

    agd_settings_t *cli = agd_settings_new ();
    agd_settings_t *settings = agd_settings_new ();
    agd_server_t *server = NULL;
    const char *config = NULL;
    char *config_path = NULL;
    bool foreground = false;
    bool endpoint_given = false;
    int parent_fd = -1;
    int status = 0;
    char error [1024];
    int option;
    while ((option = getopt_long (argc, argv, "c:e:p:fvVh", options, NULL))
           != -1) {
        int rc = 0;
        switch (option) {
            case 'c':
                //  Absolute, so SIGHUP finds it after a detach to /
                free (config_path);
                config_path = realpath (optarg, NULL);
                config = config_path? config_path: optarg;
                break;
            case 'e':
                //  The first -e replaces the file's endpoints, the rest add
                rc = agd_settings_set (cli, "server/endpoint", optarg,
                                       "command line", !endpoint_given,
                                       error, sizeof error);
                endpoint_given = true;
                break;
            case 'p':
                rc = agd_settings_set (cli, "server/plugin", optarg,
                                       "command line", false, error,
                                       sizeof error);
                break;
            case 'f': foreground = true; break;
            case 'v':
                rc = agd_settings_set (cli, "log/level", "info",
                                       "command line", true, error,
                                       sizeof error);
                break;
            case 22:
                rc = agd_settings_set (cli, "security/insecure", "1",
                                       "command line", true, error,
                                       sizeof error);
                break;
            case 23: {
                char key [128];
                const char *equals = strchr (optarg, '=');
                if (!equals || equals == optarg
                ||  (size_t) (equals - optarg) >= sizeof key) {
                    snprintf (error, sizeof error, "--set %s: not KEY=VALUE",
                              optarg);
                    rc = -1;
                    break;
                }
                memcpy (key, optarg, (size_t) (equals - optarg));
                key [equals - optarg] = 0;
                rc = agd_settings_set (cli, key, equals + 1, "command line",
                                       true, error, sizeof error);
                break;
            }
            case 24:
                s_host_role = true;
                break;
            case 7: {
                char *end;
                long fd = strtol (optarg, &end, 10);
                if (*end || end == optarg || fd < 0 || fd > INT32_MAX
                ||  fcntl ((int) fd, F_GETFD) == -1) {
                    snprintf (error, sizeof error, "--parent-fd %s: not an"
                              " open file descriptor", optarg);
                    rc = -1;
                }
                parent_fd = (int) fd;
                break;
            }
            case 8:
                agd_settings_print (stdout);
                goto done;
            case 'V':
                printf ("agentd %s\n", AG_VERSION_STRING);
                goto done;
            case 'h':
                s_usage (stdout);
                goto done;
            default:
                if (option >= AGD_OPTION_BASE) {
                    rc = agd_settings_set_option (cli, option, optarg, error,
                                                  sizeof error);
                    break;
                }
                s_usage (stderr);
                status = 2;
                goto done;
        }
        if (rc) {
            fprintf (stderr, "agentd: %s\n", error);
            status = 2;
            goto done;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "agentd: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        status = 2;
        goto done;
    }
    //  The file first, the command line over it
    if (config && agd_settings_load (settings, config, error, sizeof error)) {
        fprintf (stderr, "agentd: %s\n", error);
        status = 2;
        goto done;
    }
    agd_settings_merge (settings, cli);
    if (agd_settings_check (settings, error, sizeof error)) {
        fprintf (stderr, "agentd: %s\n", error);
        status = 2;
        goto done;
    }
    if (s_host_role) {
        status = s_host (settings);
        goto done;
    }
    server = agd_server_new ();
    if (!server || agd_settings_apply (settings, server, error, sizeof error)) {
        fprintf (stderr, "agentd: %s\n", server? error: "out of memory");
        status = 1;
        goto done;
    }
    //  Hosts run this very program: the file it was started as (under
    //  valgrind, /proc/self/exe is valgrind's), else /proc/self/exe
    char *self_path = strchr (argv [0], '/')? realpath (argv [0], NULL)
                                            : NULL;
    if (!self_path) {
        self_path = (char *) malloc (4096);
        ssize_t length = self_path? readlink ("/proc/self/exe", self_path,
                                              4095): -1;
        if (length > 0)
            self_path [length] = 0;
        else {
            free (self_path);
            self_path = NULL;
        }
    }
    if (self_path)
        agd_server_set_host_program (server, self_path);
    free (self_path);
    zsys_set_logident ("agentd");
    int report_fd = -1;
    if (!foreground) {
        //  Detach before any thread starts: fork only copies this one
        if (s_detach (&report_fd)) {
            fprintf (stderr, "agentd: cannot detach: %s\n", strerror (errno));
            status = 1;
            goto done;
        }
        zsys_set_logsystem (true);
    }
    else
        zsys_set_logstream (stderr);

    if (agd_server_start (server)) {
        fprintf (stderr, "agentd: %s\n", agd_server_error (server));
        status = 1;
        goto done;
    }
    agd_fatal_watch_exit ();
    if (parent_fd >= 0) {
        pthread_t watcher;
        if (pthread_create (&watcher, NULL, s_watch_parent,
                            (void *) (intptr_t) parent_fd)) {
            fprintf (stderr, "agentd: cannot start a thread to watch"
                     " --parent-fd\n");
            status = 1;
            goto done;
        }
        pthread_detach (watcher);
    }
    for (size_t i = 0; i < agd_server_endpoints (server); i++)
        printf ("listening on %s\n", agd_server_endpoint (server, i));
    fflush (stdout);
    zsys_notice ("started version=%s pid=%d config=%s", AG_VERSION_STRING,
                 getpid (), config? config: "(none)");
    agd_notify ("READY=1");
    if (report_fd >= 0) {
        char ok = 0;
        if (write (report_fd, &ok, 1) != 1)
            zsys_warning ("cannot report start to parent");
        close (report_fd);
        int null = open ("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2 (null, 0);
            dup2 (null, 1);
            dup2 (null, 2);
            close (null);
        }
    }
    //  Wait for signals; under a systemd watchdog, check the broker
    //  answers at half its interval and say so
    int64_t watchdog = agd_notify_watchdog_usec ();
    while (true) {
        int signal = 0;
        if (watchdog) {
            struct timespec wait = { (time_t) (watchdog / 2000000),
                                     (long) (watchdog / 2 % 1000000) * 1000 };
            signal = sigtimedwait (&signals, NULL, &wait);
            if (signal < 0) {
                if (errno == EAGAIN
                &&  agd_server_ping (server, (int) (watchdog / 4000)) == 0)
                    agd_notify ("WATCHDOG=1");
                continue;
            }
        }
        else
        if (sigwait (&signals, &signal))
            break;
        if (signal == SIGHUP) {
            s_reload (server, config, cli, agd_settings_get (settings,
                      "security/curve_secret_key") != NULL);
            continue;
        }
        zsys_notice ("signal=%s: stopping", strsignal (signal));
        break;
    }
    agd_notify ("STOPPING=1");
    agd_server_stop (server);
    agd_server_wait (server);
    zsys_notice ("stopped");
done:
    agd_server_destroy (&server);
    agd_settings_destroy (&settings);
    agd_settings_destroy (&cli);
    free (config_path);
    if (agd_server_abandoned ()) {
        //  Calls still running past the grace time: exit now, rather
        //  than wait for them in the ZeroMQ context's end
        fflush (NULL);
        _exit (status);
    }
    return status;
}
