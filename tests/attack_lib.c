/*  =========================================================================
    attack_lib - the run, daemons, requests and the victim

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  What every attack case stands on: the run's settings and figures, the
//  cleanups that undo what a case started even after a CHECK returned
//  early, agentd started with the test classes on a lifeline pipe (and
//  its peak RSS, read from /proc), requests through libagentclient, each
//  with a deadline, and the victim: a client of its own whose PING and
//  sync CALL are timed over and over while an attack runs.
//  @end

#include "attack.h"

//  ---------------------------------------------------------------------
//  The run

const char *at_build = "build";
bool at_verbose;
bool at_valgrind;
bool at_old;
int at_slow = 1;
char at_plugin [300];
char at_dir [64];
void *at_context;
uint64_t at_corr;
char at_note [2048];

int64_t
at_victim_bound_us (void)
{
    return (int64_t) VICTIM_BOUND_MS * 1000 * at_slow;
}

int64_t
at_thread_until (void)
{
    return ag_usecs () + (int64_t) THREAD_LIMIT_S * 1000000 * at_slow;
}

//  What AddressSanitizer's quarantine and valgrind's freed-block queue
//  add to a peak RSS, in KiB
static int64_t
s_margin_kib (void)
{
    int64_t kib = 0;
#if defined (__SANITIZE_ADDRESS__)
    kib += 512 * 1024;
#endif
    if (at_valgrind)
        kib += 256 * 1024;
    return kib;
}

void
at_say (const char *format, ...)
{
    if (!at_verbose)
        return;
    va_list args;
    va_start (args, format);
    printf ("    ");
    vprintf (format, args);
    printf ("\n");
    va_end (args);
    fflush (stdout);
}

void
at_notef (const char *format, ...)
{
    size_t len = strlen (at_note);
    if (len + 4 >= sizeof at_note)
        return;
    if (len)
        at_note [len++] = ';', at_note [len++] = ' ';
    va_list args;
    va_start (args, format);
    vsnprintf (at_note + len, sizeof at_note - len, format, args);
    va_end (args);
}

//  ---------------------------------------------------------------------
//  Cleanups: what a case started is undone, even after a CHECK returned
//  early

typedef struct {
    cleanup_fn *fn;
    void *arg;
} cleanup_t;

static cleanup_t s_cleanups [64];
static size_t s_cleanup_count;

void
at_defer (cleanup_fn *fn, void *arg)
{
    if (s_cleanup_count < 64)
        s_cleanups [s_cleanup_count++] = (cleanup_t) { fn, arg };
}

void
at_undefer (void *arg)
{
    for (size_t i = s_cleanup_count; i-- > 0; )
        if (s_cleanups [i].arg == arg) {
            memmove (&s_cleanups [i], &s_cleanups [i + 1],
                     (s_cleanup_count - i - 1) * sizeof (cleanup_t));
            s_cleanup_count--;
            return;
        }
}

void
at_cleanup_all (void)
{
    while (s_cleanup_count) {
        cleanup_t cleanup = s_cleanups [--s_cleanup_count];
        cleanup.fn (cleanup.arg);
    }
}

//  ---------------------------------------------------------------------
//  Daemons

//  Write a file in this run's directory; its path into path
static int
s_write_file (char *path, size_t size, const char *name, const char *text)
{
    snprintf (path, size, "%s/%s", at_dir, name);
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    int rc = fputs (text, file) < 0? -1: 0;
    fclose (file);
    return rc;
}

//  Every agentd started here watches this pipe (as its fd 3), so none
//  outlives a test program that crashed
static int s_lifeline [2] = { -1, -1 };

//  Options agentd has only with the budgets
static bool
s_new_option (const char *arg)
{
    return streq (arg, "--future-timeout-ms") || streq (arg, "--peer")
        || streq (arg, "--max-bytes") || streq (arg, "--max-client-bytes");
}

static void
s_daemon_kill (void *arg)
{
    daemon_t *self = (daemon_t *) arg;
    if (self->pid) {
        kill (self->pid, SIGKILL);
        tl_proc_reap (self, 10000);
    }
    free (self);
}

daemon_t *
at_daemon_start (const char *endpoint, const char *const *extra)
{
    if (s_lifeline [0] < 0) {
        int ends [2];
        if (pipe (ends))
            return NULL;
        for (int i = 0; i < 2; i++) {
            s_lifeline [i] = fcntl (ends [i], F_DUPFD_CLOEXEC, 100);
            close (ends [i]);
        }
    }
    const char *args [64];
    int argc = 0;
    args [argc++] = "--parent-fd";
    args [argc++] = "3";
    args [argc++] = "-f";
    args [argc++] = "-e";
    args [argc++] = endpoint? endpoint: "tcp://127.0.0.1:*";
    args [argc++] = "--plugin";
    args [argc++] = at_plugin;
    char config [300];
    while (extra && *extra && argc < 60) {
        if (at_old && streq (*extra, "--max-agents-per-client") && extra [1]) {
            //  Only in a configuration file there
            char text [128];
            snprintf (text, sizeof text, "server\n    max_agents_per_client"
                      " = %s\n", extra [1]);
            if (s_write_file (config, sizeof config, "per-client.conf", text))
                return NULL;
            args [argc++] = "-c";
            args [argc++] = config;
            extra += 2;
            continue;
        }
        if (at_old && s_new_option (*extra)) {
            extra += extra [1]? 2: 1;
            continue;
        }
        args [argc++] = *extra++;
    }
    args [argc] = NULL;
    char agentd [300];
    snprintf (agentd, sizeof agentd, "%s/agentd", at_build);
    const char *argv [80];
    tl_agentd_argv (argv, 80, agentd, at_valgrind, args);
    daemon_t *self = (daemon_t *) calloc (1, sizeof (daemon_t));
    if (!self)
        return NULL;
    int err_to = getenv ("ATTACKTEST_LOG")? TL_ERR_INHERIT: TL_ERR_NULL;
    if (tl_agentd_start (self, argv, NULL, err_to, s_lifeline [0],
                         30000 * at_slow)) {
        free (self);
        return NULL;
    }
    at_defer (s_daemon_kill, self);
    return self;
}

int
at_daemon_stop (daemon_t *self)
{
    at_undefer (self);
    int status = tl_proc_stop (self, 30000 * at_slow);
    free (self);
    return status;
}

int
at_rss_within (daemon_t *daemon, int64_t base_kib, int64_t bound_mib)
{
    int64_t peak = tl_peak_rss_kib (daemon->pid);
    int64_t bound = bound_mib * 1024 + s_margin_kib ();
    at_say ("daemon peak RSS %.1f MiB, grew %.1f MiB (bound %.0f MiB)",
            peak / 1024.0, (peak - base_kib) / 1024.0, bound / 1024.0);
    if (peak < 0 || peak - base_kib >= bound) {
        at_notef ("peak RSS grew %.1f MiB, bound %.0f MiB",
                  (peak - base_kib) / 1024.0, bound / 1024.0);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Requests through libagentclient, each with a deadline

int
at_roundtrip (agc_conn_t *conn, uint8_t command, uint64_t agent,
              uint16_t flags, const ag_value_t *body, int msecs,
              ag_value_t **value, char *reason, size_t size)
{
    if (value)
        *value = NULL;
    if (reason && size)
        reason [0] = 0;
    agc_future_t *future = agc_conn_request (conn, command, agent, flags,
        body? ag_value_data (body): NULL, body? ag_value_size (body): 0);
    if (!future)
        return AG_INTERNAL;
    int status = agc_future_wait (future, msecs) == 0?
                 agc_future_status (future): AG_TIMEOUT;
    if (value && status == AG_OK)
        *value = agc_future_result (future, 0);
    if (reason && size)
        snprintf (reason, size, "%s", status == AG_TIMEOUT?
                  "no reply in time": agc_future_reason (future));
    agc_future_destroy (&future);
    return status;
}

uint64_t
at_create (agc_conn_t *conn, bool detached, int *status, char *reason,
           size_t size)
{
    ag_value_t *body = ag_value_new ("{s:s, s:{s:i}, s:b}", "class",
                                     "Counter", "args", "start",
                                     (int64_t) 0, "detached", (int) detached);
    ag_value_t *value;
    *status = at_roundtrip (conn, AGP_CREATE, 0, 0, body, 10000 * at_slow,
                            &value, reason, size);
    ag_value_destroy (&body);
    uint64_t id = (uint64_t) ag_obj_int (ag_obj_get (ag_value_object (value),
                                                     "id"), 0);
    ag_value_destroy (&value);
    return *status == AG_OK? id: 0;
}

int
at_serves (const char *endpoint)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    if (!conn)
        return -1;
    int status;
    char reason [256];
    int rc = -1;
    uint64_t id = at_create (conn, false, &status, reason, sizeof reason);
    if (id) {
        ag_value_t *add = ag_value_new ("[s, i]", "add", (int64_t) 5);
        ag_value_t *value;
        status = at_roundtrip (conn, AGP_CALL, id, 0, add, 10000 * at_slow,
                               &value, reason, sizeof reason);
        if (status == AG_OK && ag_obj_int (ag_value_object (value), -1) == 5)
            rc = 0;
        ag_value_destroy (&value);
        ag_value_destroy (&add);
    }
    if (rc) {
        at_say ("afterwards a new client got %d: %s", status, reason);
        at_notef ("afterwards a new client got %d: %s", status, reason);
    }
    else
        at_say ("afterwards a new client is served");
    agc_conn_destroy (&conn);
    return rc;
}

//  ---------------------------------------------------------------------
//  The victim: a client of its own with an idle Counter, whose PING and
//  sync CALL add (1) are timed over and over while the attack runs

static bool
s_stop_asked (int fd)
{
    struct pollfd item = { fd, POLLIN, 0 };
    return poll (&item, 1, 0) > 0;
}

//  One request, timed: usecs to its reply, or to giving up
static int64_t
s_probe (victim_t *self, uint8_t command, const ag_value_t *body)
{
    int64_t bound = at_victim_bound_us ();
    int64_t start = ag_usecs ();
    int64_t deadline = start + 5 * bound;
    agc_future_t *future = agc_conn_request (self->conn, command,
        command == AGP_CALL? self->agent: 0, 0,
        body? ag_value_data (body): NULL, body? ag_value_size (body): 0);
    //  Waits in slices, to stop soon once asked and already late
    while (future && !agc_future_ready (future)) {
        int64_t now = ag_usecs ();
        if (now >= deadline
        ||  (now - start > bound && s_stop_asked (self->stop [0])))
            break;
        agc_future_wait (future, 50);
    }
    int64_t took = ag_usecs () - start;
    int status = future && agc_future_ready (future)?
                 agc_future_status (future): AG_TIMEOUT;
    if (status != AG_OK || took > bound) {
        if (!self->late) {
            self->first_status = status;
            snprintf (self->first_reason, sizeof self->first_reason,
                      "%s %s after %.3f s: %s", command == AGP_PING? "PING"
                      : "CALL", status == AG_OK? "answered": "failed",
                      took / 1e6, status == AG_TIMEOUT? "no reply"
                      : agc_future_reason (future));
        }
        self->late++;
    }
    agc_future_destroy (&future);
    return took;
}

static void *
s_victim_run (void *arg)
{
    victim_t *self = (victim_t *) arg;
    ag_value_t *add = ag_value_new ("[s, i]", "add", (int64_t) 1);
    int64_t until = at_thread_until ();
    for (int i = 0; i < 4000000 && ag_usecs () < until; i++) {
        int64_t took = s_probe (self, AGP_PING, NULL);
        self->ping_max = MAX (self->ping_max, took);
        took = s_probe (self, AGP_CALL, add);
        self->call_max = MAX (self->call_max, took);
        self->probes++;
        struct pollfd item = { self->stop [0], POLLIN, 0 };
        if (poll (&item, 1, VICTIM_PACE_MS) > 0)
            break;
    }
    ag_value_destroy (&add);
    return NULL;
}

static void
s_victim_abort (void *arg)
{
    victim_t *self = (victim_t *) arg;
    if (write (self->stop [1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    close (self->stop [0]);
    close (self->stop [1]);
    agc_conn_destroy (&self->conn);
    free (self);
}

victim_t *
at_victim_start (const char *endpoint)
{
    victim_t *self = (victim_t *) calloc (1, sizeof (victim_t));
    if (!self)
        return NULL;
    self->conn = agc_conn_new (endpoint);
    int status;
    char reason [256];
    if (self->conn)
        self->agent = at_create (self->conn, false, &status, reason,
                                 sizeof reason);
    if (!self->agent || pipe2 (self->stop, O_CLOEXEC)) {
        at_notef ("the victim could not start: %s", reason);
        agc_conn_destroy (&self->conn);
        free (self);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_victim_run, self)) {
        close (self->stop [0]);
        close (self->stop [1]);
        agc_conn_destroy (&self->conn);
        free (self);
        return NULL;
    }
    at_defer (s_victim_abort, self);
    return self;
}

int
at_victim_stop (victim_t *self)
{
    at_undefer (self);
    if (write (self->stop [1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    int64_t bound = at_victim_bound_us ();
    at_say ("victim: %d probes, PING max %.1f ms, CALL max %.1f ms, %d late"
            " or failed%s%s", self->probes, self->ping_max / 1000.0,
            self->call_max / 1000.0, self->late, self->late? ", first: ": "",
            self->late? self->first_reason: "");
    int rc = self->probes > 0 && self->late == 0 && self->ping_max <= bound
          && self->call_max <= bound? 0: -1;
    if (rc)
        at_notef ("victim: %d probes, %d late or failed, PING max %.3f s,"
                  " CALL max %.3f s%s%s", self->probes, self->late,
                  self->ping_max / 1e6, self->call_max / 1e6,
                  self->late? ", first: ": "",
                  self->late? self->first_reason: "");
    self->thread = 0;
    close (self->stop [0]);
    close (self->stop [1]);
    agc_conn_destroy (&self->conn);
    free (self);
    return rc;
}
