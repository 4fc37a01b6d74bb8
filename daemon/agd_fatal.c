/*  =========================================================================
    agd_fatal - naming the agent code that brought the process down

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Agent code runs in agentd's worker threads. When it crashes (a bad
//  pointer, abort (), a stack overflow) or calls exit (), the process
//  goes, and the log should say which agent, class and method did it,
//  and in which call. A worker notes what it runs in thread-local
//  storage before it enters agent code (a few stores, no formatting);
//  agentd's handler for the fatal signals, and an atexit handler, read
//  it and write one line to stderr with async-signal-safe calls only.
//  (on_exit (), a glibc extension, gives the handler the exit status.)
//  The signal then takes its default action (a core dump where enabled,
//  and the exit status of the signal), so supervisors see what they
//  always saw.
//
//  A stack overflow leaves no stack to run a handler on: each worker
//  thread has an alternate signal stack of its own.
//
//  Only agentd installs the handlers: a program that embeds the server
//  keeps its own signal dispositions. Nor does an AddressSanitizer
//  build, whose handler says more.
//  @end

#include "agd.h"
#include <signal.h>

typedef struct {
    uint64_t agent;                 //  0: no agent code runs
    const char *cls;
    const char *kind;               //  "init", "method", ...
    const char *name;               //  the method or attribute, or NULL
    size_t name_len;
    uint64_t corr;
} running_t;

static __thread running_t s_running;

#define ALTSTACK_SIZE   (64 * 1024)

void
agd_fatal_enter (uint64_t agent, const char *cls, const char *kind,
                 const char *name, size_t name_len, uint64_t corr)
{
    s_running.cls = cls;
    s_running.kind = kind;
    s_running.name = name;
    s_running.name_len = name_len;
    s_running.corr = corr;
    s_running.agent = agent;
}

void
agd_fatal_leave (void)
{
    s_running.agent = 0;
}

//  ---------------------------------------------------------------------
//  Writing a line without malloc or stdio

typedef struct {
    char text [512];
    size_t size;
} line_t;

static void
s_add (line_t *line, const char *text, size_t len)
{
    if (!text)
        return;
    for (size_t i = 0; i < len && text [i] && line->size + 1 < sizeof line->text;
         i++)
        line->text [line->size++] = text [i];
}

static void
s_add_str (line_t *line, const char *text)
{
    s_add (line, text, SIZE_MAX);
}

static void
s_add_uint (line_t *line, uint64_t value)
{
    char digits [24];
    size_t n = 0;
    do {
        digits [n++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        s_add (line, &digits [--n], 1);
}

static void
s_add_running (line_t *line)
{
    const running_t *running = &s_running;
    if (!running->agent) {
        s_add_str (line, " outside agent code");
        return;
    }
    s_add_str (line, " in agent ");
    s_add_uint (line, running->agent);
    s_add_str (line, " (class ");
    s_add_str (line, running->cls);
    s_add_str (line, ", ");
    s_add_str (line, running->kind);
    if (running->name) {
        s_add_str (line, " ");
        s_add (line, running->name, running->name_len);
    }
    if (running->corr) {
        s_add_str (line, ", call ");
        s_add_uint (line, running->corr);
    }
    s_add_str (line, ")");
}

static void
s_write (line_t *line)
{
    s_add_str (line, "\n");
    ssize_t rc = write (STDERR_FILENO, line->text, line->size);
    (void) rc;
}

static const char *
s_signal_name (int sig)
{
    switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS:  return "SIGBUS";
        case SIGFPE:  return "SIGFPE";
        case SIGILL:  return "SIGILL";
        case SIGABRT: return "SIGABRT";
        case SIGSYS:  return "SIGSYS";
        default:      return "a fatal signal";
    }
}

static void
s_on_signal (int sig, siginfo_t *info, void *context)
{
    (void) info;
    (void) context;
    line_t line = { .size = 0 };
    s_add_str (&line, "agentd: ");
    s_add_str (&line, s_signal_name (sig));
    s_add_running (&line);
    s_add_str (&line, ": the server dies");
    s_write (&line);
    //  The handler was reset (SA_RESETHAND): once this returns, the
    //  signal, still pending, takes its default action
    raise (sig);
}

//  exit () from agent code: named, and the process ends with that
//  status at once. The exit handlers registered before this one (czmq's
//  among them) would tear down sockets other threads are using.
static void
s_on_exit (int status, void *arg)
{
    (void) arg;
    if (!s_running.agent)
        return;
    line_t line = { .size = 0 };
    s_add_str (&line, "agentd: exit (");
    s_add_uint (&line, (uint64_t) (status & 0xff));
    s_add_str (&line, ") called");
    s_add_running (&line);
    s_add_str (&line, ": the server exits");
    s_write (&line);
    _exit (status);
}

void
agd_fatal_install (void)
{
#if defined (__SANITIZE_ADDRESS__)
    //  AddressSanitizer's own handler reports more than this one would
    return;
#endif
    static const int signals [] = {
        SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS
    };
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_sigaction = s_on_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset (&action.sa_mask);
    for (size_t i = 0; i < sizeof signals / sizeof signals [0]; i++)
        sigaction (signals [i], &action, NULL);
}

void
agd_fatal_watch_exit (void)
{
    on_exit (s_on_exit, NULL);
}

void *
agd_fatal_altstack (void)
{
    stack_t stack = { .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    stack.ss_sp = malloc (ALTSTACK_SIZE);
    if (!stack.ss_sp)
        return NULL;
    if (sigaltstack (&stack, NULL)) {
        free (stack.ss_sp);
        return NULL;
    }
    return stack.ss_sp;
}

void
agd_fatal_altstack_free (void *memory)
{
    if (!memory)
        return;
    stack_t none = { .ss_flags = SS_DISABLE };
    sigaltstack (&none, NULL);
    free (memory);
}
