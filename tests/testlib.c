/*  =========================================================================
    testlib - child processes for the integration tests

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  One implementation of spawning, reading and reaping for agtest and
//  sectest. Pipes are made with O_CLOEXEC, so a child keeps only the
//  descriptors it is given (its stdout, its stderr, its fd 3), never the
//  pipes of another child started before it.
//  @end

#include "testlib.h"
#include "../common/ag_common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *tl_failed_check;
char tl_failed_detail [512];

double
tl_seconds_since (int64_t start)
{
    return (double) (ag_usecs () - start) / 1e6;
}

//  ---------------------------------------------------------------------
//  Reading

//  Wait until fd is readable, or the deadline (as ag_usecs) has passed;
//  true if it is readable
static bool
s_readable (int fd, int64_t deadline)
{
    int64_t left = (deadline - ag_usecs ()) / 1000;
    struct pollfd item = { fd, POLLIN, 0 };
    return left > 0 && poll (&item, 1, (int) left) > 0;
}

int
tl_read_line (int fd, char *line, size_t size, int msecs)
{
    size_t len = 0;
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    while (len + 1 < size) {
        if (!s_readable (fd, deadline))
            return -1;
        char ch;
        if (read (fd, &ch, 1) != 1)
            return -1;
        if (ch == '\n')
            break;
        line [len++] = ch;
    }
    line [len] = 0;
    return (int) len;
}

int
tl_read_all (int fd, char *out, size_t size, int msecs)
{
    size_t len = 0;
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    while (len + 1 < size && s_readable (fd, deadline)) {
        ssize_t got = read (fd, out + len, size - 1 - len);
        if (got <= 0)
            break;
        len += (size_t) got;
    }
    out [len] = 0;
    return (int) len;
}

//  ---------------------------------------------------------------------
//  Processes

int
tl_pidfd (pid_t pid)
{
    return (int) syscall (SYS_pidfd_open, pid, 0);
}

int
tl_proc_spawn (tl_proc_t *self, const char *const *argv,
               const char *const *env, const char *cwd, int err_to, int fd3)
{
    self->pid = 0;
    self->pidfd = self->out = self->err = -1;
    const char *envp [256];
    int envc = 0;
    for (char **e = environ; *e && envc < 200; e++)
        envp [envc++] = *e;
    while (env && *env && envc < 255)
        envp [envc++] = *env++;
    envp [envc] = NULL;

    int out [2], err [2] = { -1, -1 };
    if (pipe2 (out, O_CLOEXEC))
        return -1;
    if (err_to == TL_ERR_PIPE && pipe2 (err, O_CLOEXEC)) {
        close (out [0]);
        close (out [1]);
        return -1;
    }
    //  dup2 clears O_CLOEXEC on the copy, so the child keeps exactly what
    //  is put on 1, 2 and 3
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, out [1], 1);
    if (err [1] >= 0)
        posix_spawn_file_actions_adddup2 (&actions, err [1], 2);
    else
    if (err_to == TL_ERR_NULL)
        posix_spawn_file_actions_addopen (&actions, 2, "/dev/null",
                                          O_WRONLY, 0);
    if (cwd)
        posix_spawn_file_actions_addchdir_np (&actions, cwd);
    //  Last: one of the pipe ends above may be fd 3 here, and has to be
    //  on 1 or 2 before 3 is replaced
    if (fd3 >= 0)
        posix_spawn_file_actions_adddup2 (&actions, fd3, 3);
    int rc = posix_spawnp (&self->pid, argv [0], &actions, NULL,
                           (char *const *) argv, (char *const *) envp);
    posix_spawn_file_actions_destroy (&actions);
    close (out [1]);
    if (err [1] >= 0)
        close (err [1]);
    if (rc) {
        close (out [0]);
        if (err [0] >= 0)
            close (err [0]);
        self->pid = 0;
        return -1;
    }
    self->out = out [0];
    self->err = err [0];
    self->pidfd = tl_pidfd (self->pid);
    return 0;
}

int
tl_proc_reap (tl_proc_t *self, int msecs)
{
    struct pollfd item = { self->pidfd, POLLIN, 0 };
    if (poll (&item, 1, msecs) <= 0)
        return -1;
    int status = 0;
    waitpid (self->pid, &status, 0);
    close (self->pidfd);
    if (self->out >= 0)
        close (self->out);
    if (self->err >= 0)
        close (self->err);
    self->pidfd = -1;
    self->out = -1;
    self->err = -1;
    self->pid = 0;
    return WIFSIGNALED (status)? 128 + WTERMSIG (status)
                               : WEXITSTATUS (status);
}

int
tl_proc_stop (tl_proc_t *self, int msecs)
{
    if (!self->pid)
        return -1;
    kill (self->pid, SIGTERM);
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    struct pollfd items [2] = {
        { self->pidfd, POLLIN, 0 }, { self->err, POLLIN, 0 }
    };
    while (ag_usecs () < deadline) {
        if (poll (items, 2, 1000) <= 0)
            continue;
        if (items [0].revents & POLLIN)
            break;
        char buffer [4096];
        if (items [1].revents && read (self->err, buffer, sizeof buffer) <= 0)
            items [1].fd = -1;      //  closed: no more to read
    }
    int status = tl_proc_reap (self, 1000);
    if (status == -1) {
        kill (self->pid, SIGKILL);
        status = tl_proc_reap (self, 10000);
    }
    return status;
}

int
tl_run (const char *const *argv, const char *const *env, const char *cwd,
        char *out, size_t out_size, char *err, size_t err_size, int msecs)
{
    if (out && out_size)
        out [0] = 0;
    if (err && err_size)
        err [0] = 0;
    tl_proc_t run;
    if (tl_proc_spawn (&run, argv, env, cwd, TL_ERR_PIPE, -1))
        return -1;
    char line [1024];
    if (tl_read_line (run.out, line, sizeof line, msecs) < 0)
        line [0] = 0;
    if (out)
        snprintf (out, out_size, "%s", line);
    if (tl_read_line (run.err, line, sizeof line, msecs) < 0)
        line [0] = 0;
    if (err)
        snprintf (err, err_size, "%s", line);
    //  Read the rest, so it never blocks on a full pipe
    char rest [4096];
    struct pollfd items [2] = {
        { run.out, POLLIN, 0 }, { run.err, POLLIN, 0 }
    };
    while (poll (items, 2, msecs) > 0) {
        ssize_t got = 0;
        for (int i = 0; i < 2; i++)
            if (items [i].revents) {
                ssize_t one = read (items [i].fd, rest, sizeof rest);
                if (one > 0)
                    got += one;
                else
                    items [i].fd = -1;
            }
        if (got == 0 && items [0].fd < 0 && items [1].fd < 0)
            break;
    }
    int status = tl_proc_reap (&run, msecs);
    if (status == -1) {
        kill (run.pid, SIGKILL);
        tl_proc_reap (&run, 10000);
    }
    return status;
}

//  ---------------------------------------------------------------------
//  agentd

int
tl_agentd_argv (const char **argv, size_t size, const char *path,
                bool valgrind, const char *const *args)
{
    size_t argc = 0;
    if (valgrind) {
        argv [argc++] = "valgrind";
        argv [argc++] = "-q";
        argv [argc++] = "--leak-check=full";
        argv [argc++] = "--show-leak-kinds=definite";
        argv [argc++] = "--errors-for-leak-kinds=definite";
        argv [argc++] = "--error-exitcode=99";
    }
    argv [argc++] = path;
    while (*args && argc + 1 < size)
        argv [argc++] = *args++;
    argv [argc] = NULL;
    return (int) argc;
}

int
tl_agentd_start (tl_proc_t *self, const char *const *argv,
                 const char *const *env, int err_to, int fd3, int msecs)
{
    if (tl_proc_spawn (self, argv, env, NULL, err_to, fd3))
        return -1;
    char line [300];
    if (tl_read_line (self->out, line, sizeof line, msecs) < 0
    ||  strncmp (line, "listening on ", 13) != 0) {
        kill (self->pid, SIGKILL);
        tl_proc_reap (self, 10000);
        return -1;
    }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", line + 13);
    return 0;
}

int64_t
tl_peak_rss_kib (pid_t pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    int64_t kib = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmHWM:", 6) == 0)
            kib = strtoll (line + 6, NULL, 10);
    fclose (file);
    return kib;
}
