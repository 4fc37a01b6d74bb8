/*  =========================================================================
    agentd - the agent server daemon

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A thin main over the embeddable server: parse the command line, load
//  plugins, bind, report the endpoints, and wait for a signal. Signals
//  are blocked in every thread and taken here with sigwait, so no
//  handler runs in the middle of anything.
//  @end

#include "agentserver.h"
#include <czmq.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:12345"

static void
s_usage (FILE *file)
{
    fprintf (file,
"usage: agentd [OPTION]...\n"
"Serve agents of the classes in the given plugins.\n"
"\n"
"  -e, --endpoint ENDPOINT  bind tcp://host:port, tcp://host:* or ipc://path\n"
"                           (repeatable; default " DEFAULT_ENDPOINT ")\n"
"  -p, --plugin PATH        load agent classes from a plugin (repeatable)\n"
"  -f, --foreground         stay in the foreground, log to stderr\n"
"  -v, --verbose            log every request\n"
"      --threads-min N      worker threads kept when idle (default 2)\n"
"      --threads-max N      worker threads at most (default 512)\n"
"      --idle-ms N          idle time before a spare thread exits (30000)\n"
"      --retention-ms N     keep async results N ms (default 300000)\n"
"      --max-message N      largest request body in bytes (default 64 MiB)\n"
"      --grace-ms N         time running calls get at stop (default 10000)\n"
"      --parent-fd FD       stop when FD (a pipe from the parent) closes\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Once every endpoint is bound agentd prints 'listening on ENDPOINT' for\n"
"each, with the real port where ':*' was given. SIGINT or SIGTERM stops it\n"
"gracefully. See agentd(8).\n");
}

//  Parse a whole non-negative number; -1 if it is not one
static long
s_number (const char *text)
{
    char *end;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno || end == text || *end || value < 0)
        return -1;
    return value;
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
//  (through a pipe) whether it bound its endpoints, and exits with that.
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
        //  Not fatal: plugins are already loaded
    }
    *report_fd = fds [1];
    return 0;
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "plugin", required_argument, NULL, 'p' },
        { "foreground", no_argument, NULL, 'f' },
        { "verbose", no_argument, NULL, 'v' },
        { "threads-min", required_argument, NULL, 1 },
        { "threads-max", required_argument, NULL, 2 },
        { "retention-ms", required_argument, NULL, 3 },
        { "max-message", required_argument, NULL, 4 },
        { "grace-ms", required_argument, NULL, 5 },
        { "idle-ms", required_argument, NULL, 6 },
        { "parent-fd", required_argument, NULL, 7 },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    //  Signals are taken by sigwait below; block them before any thread
    //  exists so every thread inherits the mask
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);

    agd_server_t *server = agd_server_new ();
    if (!server) {
        fprintf (stderr, "agentd: out of memory\n");
        return 1;
    }
    int status = 0;
    bool foreground = false;
    bool verbose = false;
    int endpoints = 0;
    long threads_min = 2, threads_max = 512;
    int parent_fd = -1;
    int option;
    while ((option = getopt_long (argc, argv, "e:p:fvVh", options, NULL))
           != -1) {
        long value = 0;
        if (option >= 1 && option <= 7) {
            value = s_number (optarg);
            if (value < 0 || value > INT32_MAX) {
                fprintf (stderr, "agentd: --%s: '%s' is not a whole number"
                         " from 0 to %d\n", options [option + 3].name,
                         optarg, INT32_MAX);
                status = 2;
                goto done;
            }
        }
        switch (option) {
            case 'e':
                if (agd_server_bind (server, optarg)) {
                    fprintf (stderr, "agentd: %s\n", agd_server_error (server));
                    status = 2;
                    goto done;
                }
                endpoints++;
                break;
            case 'p':
                if (agd_server_load_plugin (server, optarg)) {
                    fprintf (stderr, "agentd: %s\n", agd_server_error (server));
                    status = 1;
                    goto done;
                }
                break;
            case 'f': foreground = true; break;
            case 'v': verbose = true; break;
            case 1: threads_min = value; break;
            case 2: threads_max = value; break;
            case 3: agd_server_set_retention (server, (int) value, 0); break;
            case 4: agd_server_set_max_message (server, (size_t) value); break;
            case 5: agd_server_set_grace (server, (int) value); break;
            case 6: agd_server_set_idle (server, (int) value); break;
            case 7:
                parent_fd = (int) value;
                if (fcntl (parent_fd, F_GETFD) == -1) {
                    fprintf (stderr, "agentd: --parent-fd %d: not an open"
                             " file descriptor\n", parent_fd);
                    status = 2;
                    goto done;
                }
                break;
            case 'V':
                printf ("agentd %s\n", AG_VERSION_STRING);
                status = 0;
                goto done;
            case 'h':
                s_usage (stdout);
                status = 0;
                goto done;
            default:
                s_usage (stderr);
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
    if (threads_max < 1 || threads_min > threads_max) {
        fprintf (stderr, "agentd: need 1 <= --threads-max and"
                 " --threads-min <= --threads-max\n");
        status = 2;
        goto done;
    }
    agd_server_set_threads (server, (int) threads_min, (int) threads_max);
    agd_server_set_verbose (server, verbose);
    if (endpoints == 0)
        agd_server_bind (server, DEFAULT_ENDPOINT);

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
    if (parent_fd >= 0) {
        pthread_t watcher;
        if (pthread_create (&watcher, NULL, s_watch_parent,
                            (void *) (intptr_t) parent_fd)) {
            fprintf (stderr, "agentd: --parent-fd %d: cannot watch it\n",
                     parent_fd);
            status = 2;
            goto done;
        }
        pthread_detach (watcher);
    }
    for (size_t i = 0; i < agd_server_endpoints (server); i++)
        printf ("listening on %s\n", agd_server_endpoint (server, i));
    fflush (stdout);
    zsys_notice ("started version=%s pid=%d", AG_VERSION_STRING, getpid ());
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
    while (true) {
        int signal = 0;
        if (sigwait (&signals, &signal))
            break;
        if (signal == SIGHUP) {
            zsys_notice ("SIGHUP: nothing to reload");
            continue;
        }
        zsys_notice ("signal=%s: stopping", strsignal (signal));
        break;
    }
    agd_server_stop (server);
    agd_server_wait (server);
    zsys_notice ("stopped");
done:
    agd_server_destroy (&server);
    return status;
}
