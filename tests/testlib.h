/*  =========================================================================
    testlib - child processes for the integration tests

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  What agtest and sectest share to run programs, agentd above all. A
//  child is started with posix_spawn, its stdout (and its stderr, when
//  asked) on a pipe, and a pidfd that becomes readable when it exits.
//  Every wait has a bound: lines are read with a timeout, readiness is
//  agentd's "listening on" line, and a child is reaped with a timeout.
//  @end

#ifndef TESTLIB_H_INCLUDED
#define TESTLIB_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/types.h>

//  A test case returns 0, or -1 through CHECK, which notes the failed
//  condition and where it is
extern const char *tl_failed_check;
extern char tl_failed_detail [512];

#define CHECK(cond) do { if (!(cond)) { \
    tl_failed_check = #cond; \
    snprintf (tl_failed_detail, sizeof tl_failed_detail, "%s:%d", \
              __FILE__, __LINE__); \
    return -1; } } while (0)

//  Seconds since start (ag_usecs), for what the cases print
double
    tl_seconds_since (int64_t start);

//  Where a child's stderr goes
#define TL_ERR_INHERIT  0           //  to this program's stderr
#define TL_ERR_NULL     1           //  to /dev/null
#define TL_ERR_PIPE     2           //  to a pipe, read from tl_proc_t.err

//  A child process, held by the caller (on its stack, as a rule). The
//  functions below fill it in, and close its descriptors when they reap
//  it.
typedef struct {
    pid_t pid;                      //  0 once reaped
    int pidfd;                      //  readable when the process exits
    int out;                        //  its stdout, or -1
    int err;                        //  its stderr, if on a pipe, or -1
    char endpoint [320];            //  agentd: first endpoint it listens on
} tl_proc_t;

//  Read a line from fd within msecs, without its newline, into line
//  (size octets, a longer line is cut). Returns its length, or -1 on
//  timeout or end of file.
int
    tl_read_line (int fd, char *line, size_t size, int msecs);

//  Read from fd into out (size octets, with a closing NUL) until end of
//  file, out is full, or msecs have passed. Returns the length read.
int
    tl_read_all (int fd, char *out, size_t size, int msecs);

//  Open a pidfd of the process, readable once it exits. Returns it (the
//  caller closes it), or -1.
int
    tl_pidfd (pid_t pid);

//  Start a program: argv [0] is the program (looked up in PATH if it has
//  no '/'), env extra environment entries (NULL-ended, or NULL), cwd the
//  directory it starts in (or NULL). Its stdout is on a pipe, its stderr
//  goes where err_to says (TL_ERR_*). If fd3 is not -1, the child gets it
//  as its fd 3; fd3 must be above 3. Returns 0, or -1 if it did not
//  start.
int
    tl_proc_spawn (tl_proc_t *self, const char *const *argv,
                   const char *const *env, const char *cwd, int err_to,
                   int fd3);

//  Wait for the process to exit within msecs, then reap it and close its
//  descriptors. Returns its exit status, 128+signal, or -1 on timeout
//  (it is left as it was).
int
    tl_proc_reap (tl_proc_t *self, int msecs);

//  Send SIGTERM, and wait msecs for the process to exit, reading its
//  stderr meanwhile (if on a pipe) so it never blocks on a full pipe;
//  SIGKILL if it did not exit. Returns as tl_proc_reap, or -1 if it was
//  not running.
int
    tl_proc_stop (tl_proc_t *self, int msecs);

//  Run a program to its end (arguments as tl_proc_spawn's), with its
//  stdout and stderr on pipes, each read through to its end. Copies the
//  first line of each into out and err (either may be NULL; "" if there
//  was none). Each wait is bounded by msecs; a program that does not exit
//  is killed. Returns its exit status as tl_proc_reap, or -1.
int
    tl_run (const char *const *argv, const char *const *env, const char *cwd,
            char *out, size_t out_size, char *err, size_t err_size,
            int msecs);

//  Fill argv (size entries) with the command line that runs the agentd
//  program at path, under valgrind if asked (quiet, and exiting with 99
//  on a definite leak or any error), then the arguments args (NULL-ended,
//  cut to fit). Returns the number of entries before the closing NULL.
int
    tl_agentd_argv (const char **argv, size_t size, const char *path,
                    bool valgrind, const char *const *args);

//  Start agentd with the command line argv (see tl_agentd_argv), the
//  rest as tl_proc_spawn's, and wait msecs for its first line, "listening
//  on ENDPOINT"; keeps ENDPOINT in self->endpoint. Returns 0, or -1 once
//  a daemon that printed something else, or nothing, is killed and
//  reaped.
int
    tl_agentd_start (tl_proc_t *self, const char *const *argv,
                     const char *const *env, int err_to, int fd3, int msecs);

//  A process's peak resident memory (VmHWM), in KiB, or -1
int64_t
    tl_peak_rss_kib (pid_t pid);

#endif
