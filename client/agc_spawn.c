/*  =========================================================================
    agc_spawn - start a child agent server (child mode)

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A child server is an agentd started with fork and an immediate exec:
//  between the two the child only moves file descriptors and resets its
//  signal mask, so nothing of this process's ZeroMQ context or threads
//  runs in it. It reports readiness with its "listening on" line on a
//  pipe. It also watches the read end of a second pipe whose write end
//  only this process holds: when this process goes, however it goes,
//  the pipe closes and the child stops itself. (PR_SET_PDEATHSIG would
//  fire when the spawning thread exits, not the process.)
//  @end

#include "agc.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#ifndef AG_AGENTD_PATH
#   define AG_AGENTD_PATH "/usr/local/sbin/agentd"
#endif

#define START_TIMEOUT_MS    10000

//  Which agentd to run
static const char *
s_agentd_path (void)
{
    const char *path = getenv ("AGENTD");
    if (path && *path)
        return path;
    if (access (AG_AGENTD_PATH, X_OK) == 0)
        return AG_AGENTD_PATH;
    return "agentd";
}

int
agc_spawn_agentd (const char *plugin, char *endpoint, size_t size,
                  int *watch_fd)
{
    const char *agentd = s_agentd_path ();
    int out [2], watch [2];
    if (pipe2 (out, O_CLOEXEC))
        return agc_set_error (AG_INTERNAL, "pipe: %s", strerror (errno));
    if (pipe2 (watch, O_CLOEXEC)) {
        close (out [0]);
        close (out [1]);
        return agc_set_error (AG_INTERNAL, "pipe: %s", strerror (errno));
    }
    //  Everything the child needs is prepared before fork: after it, the
    //  child may only make async-signal-safe calls
    char watch_arg [16];
    snprintf (watch_arg, sizeof watch_arg, "%d", 3);
    //  A child may fetch futures from the other servers of this machine:
    //  a program's children pass them to one another. A child is a
    //  process of its own for one program's agent already: its plugin
    //  code runs in its threads, and it starts as fast as it can.
    const char *argv [] = {
        agentd, "-f", "-e", "tcp://127.0.0.1:*", "--parent-fd", watch_arg,
        "--peer", "local", "--isolation", "thread",
        plugin? "--plugin": NULL, plugin, NULL
    };
    bool keep_log = getenv ("AGC_CHILD_LOG") != NULL;
    int null = open ("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid = fork ();
    if (pid == 0) {
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        dup2 (out [1], 1);
        dup2 (watch [0], 3);
        if (!keep_log && null >= 0)
            dup2 (null, 2);
        execvp (agentd, (char *const *) argv);
        _exit (127);
    }
    close (out [1]);
    close (watch [0]);
    if (null >= 0)
        close (null);
    if (pid < 0) {
        close (out [0]);
        close (watch [1]);
        return agc_set_error (AG_INTERNAL, "fork: %s", strerror (errno));
    }
    //  Wait for the ready line (or the child's end)
    char line [320];
    size_t len = 0;
    int64_t deadline = ag_usecs () + START_TIMEOUT_MS * 1000LL;
    bool ready = false;
    while (len + 1 < sizeof line) {
        int left = (int) ((deadline - ag_usecs ()) / 1000);
        struct pollfd item = { out [0], POLLIN, 0 };
        if (left <= 0 || poll (&item, 1, left) <= 0)
            break;
        char ch;
        if (read (out [0], &ch, 1) != 1)
            break;
        if (ch == '\n') {
            ready = true;
            break;
        }
        line [len++] = ch;
    }
    line [len] = 0;
    close (out [0]);
    if (!ready || strncmp (line, "listening on ", 13) != 0) {
        close (watch [1]);
        kill (pid, SIGKILL);
        int status = 0;
        waitpid (pid, &status, 0);
        if (WIFEXITED (status) && WEXITSTATUS (status) == 127)
            return agc_set_error (AG_UNREACHABLE, "cannot run %s (set"
                                  " AGENTD to the agentd program)", agentd);
        return agc_set_error (AG_UNREACHABLE, "child server %s did not"
                              " start%s%s (exit %d; AGC_CHILD_LOG=1 shows"
                              " its log)", agentd, plugin? " with plugin ": "",
                              plugin? plugin: "",
                              WIFEXITED (status)? WEXITSTATUS (status): -1);
    }
    snprintf (endpoint, size, "%s", line + 13);
    *watch_fd = watch [1];
    return pid;
}
