/*  =========================================================================
    agd_host - host processes: agent code outside the broker's process

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  With process isolation, the classes of each plugin run in a host
//  process of their own: agentd itself, started (posix_spawn: no fork of
//  a process with ZeroMQ threads) in its host role (agd_hostrun.c), with
//  threads of its own. The broker talks to it over a socketpair, which
//  nothing else can reach: length-prefixed AGP frames, written and read
//  by the broker's thread without blocking. The host says it is ready
//  with a frame of its own; it ends when the socket does. It keeps what
//  outlives a host: the agent table, names, ownership, mailboxes,
//  deadlines, kept results and budgets, and each agent's init arguments.
//
//  An agent's calls go to its host a few at a time (agd_hostcall.c); the
//  host runs them in order and answers each before it starts the next.
//  When a host dies (a signal, exit, the memory limit, the call limit)
//  the broker sees it at once on a pidfd, reads what the socket still
//  holds, and then:
//
//  - the first call out for each of its agents, the one that may have
//    run, fails with 521 (AG_CRASHED), naming the agent, class, method
//    and how the host ended; those behind it never started, and go back
//    to the mailbox;
//  - a new host is started, and each agent is made again there from its
//    init arguments, marked restarted, when its restart budget allows
//    (at most restart_max restarts within restart_window_ms, each after
//    a wait that doubles from restart_backoff_ms); past the budget it is
//    failed: its calls get 522 (AG_FAILED) until it is deleted.
//
//  Agents of other hosts, and of the classes the program registered
//  itself (they run in the broker process's pool), go on untouched.
//
//  This file keeps the processes: starting them, seeing them ready and
//  seeing them end, the call limit, stopping them. agd_hostcall.c
//  keeps the requests out there and the restarts.
//  @end

#include "agd_host.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>

extern char **environ;

static void s_out_clear (agd_host_t *host);

//  ---------------------------------------------------------------------
//  The table

int
agd_hosts_new (agd_broker_t *self)
{
    if (self->config.isolation != AGD_ISOLATE_PROCESS)
        return 0;
    agd_registry_t *registry = self->args->registry;
    size_t count = agd_registry_plugins (registry);
    if (count == 0)
        return 0;
    if (!self->args->host_program) {
        snprintf (self->args->error, sizeof self->args->error,
                  "process isolation needs the agentd program to start"
                  " hosts with");
        return -1;
    }
    if (count > AGD_MAX_HOSTS) {
        snprintf (self->args->error, sizeof self->args->error,
                  "process isolation: %zu plugins, more than the %d hosts"
                  " a server runs", count, AGD_MAX_HOSTS);
        return -1;
    }
    self->hosts = (agd_host_t **) zmalloc (count * sizeof (agd_host_t *));
    self->host_jobs = ag_idmap_new ();
    for (size_t i = 0; i < count; i++) {
        agd_host_t *host = (agd_host_t *) zmalloc (sizeof (agd_host_t));
        host->index = (uint32_t) i + 1;
        host->plugin = strdup (agd_registry_plugin_at (registry, i));
        const char *slash = strrchr (host->plugin, '/');
        host->plugin_name = slash? slash + 1: host->plugin;
        host->pidfd = host->fd = -1;
        host->backoff_ms = 100;
        self->hosts [self->host_count++] = host;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Starting a host

static void
s_host_close (agd_host_t *self)
{
    if (self->fd >= 0)
        close (self->fd);
    if (self->pidfd >= 0)
        close (self->pidfd);
    self->fd = self->pidfd = -1;
    self->in_size = 0;
    s_out_clear (self);
}

//  The arguments a host runs with: its plugin, and the settings that
//  bound what it reads and runs
static void
s_host_spawn (agd_broker_t *self, agd_host_t *host)
{
    agd_config_t *config = &self->config;
    char sets [5][96];
    int n = 0;
    snprintf (sets [n++], 96, "server/max_message=%zu", config->max_message);
    snprintf (sets [n++], 96, "server/max_depth=%d", config->max_depth);
    snprintf (sets [n++], 96, "server/max_elements=%zu",
              config->max_elements);
    snprintf (sets [n++], 96, "server/host_memory_mb=%d",
              config->host_memory_mb);
    //  A host's starts and stops are ours to log: at the default level
    //  it says only what is wrong
    static const char *levels [] = {
        "error", "warning", "notice", "info", "debug"
    };
    int level = config->log_level == AGD_LOG_NOTICE? AGD_LOG_WARNING
                                                   : config->log_level;
    snprintf (sets [n++], 96, "log/level=%s",
              levels [level < 0? 0: level > 4? 4: level]);
    char threads_min [16], threads_max [16], idle [16];
    snprintf (threads_min, sizeof threads_min, "%d", config->threads_min);
    snprintf (threads_max, sizeof threads_max, "%d", config->threads_max);
    snprintf (idle, sizeof idle, "%d", config->idle_ms);
    const char *argv [32];
    int argc = 0;
    argv [argc++] = self->args->host_program;
    argv [argc++] = "--host";
    argv [argc++] = "--plugin";
    argv [argc++] = host->plugin;
    argv [argc++] = "--threads-min";
    argv [argc++] = threads_min;
    argv [argc++] = "--threads-max";
    argv [argc++] = threads_max;
    argv [argc++] = "--idle-ms";
    argv [argc++] = idle;
    for (int i = 0; i < n; i++) {
        argv [argc++] = "--set";
        argv [argc++] = sets [i];
    }
    argv [argc] = NULL;

    int pair [2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " socketpair: %s", host->index, host->plugin_name,
                 strerror (errno));
        goto failed;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, pair [1], 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    //  A clean signal mask; and a process group of its own, so that a
    //  terminal's ^C reaches only us: we stop our hosts
    sigset_t none;
    sigemptyset (&none);
    posix_spawnattr_setsigmask (&attr, &none);
    posix_spawnattr_setpgroup (&attr, 0);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK
                                   | POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawn (&pid, self->args->host_program, &actions, &attr,
                          (char *const *) argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attr);
    close (pair [1]);
    if (rc) {
        close (pair [0]);
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " cannot run %s: %s", host->index, host->plugin_name,
                 self->args->host_program, strerror (rc));
        goto failed;
    }
    host->pid = pid;
    host->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
    //  Without pidfds (valgrind knows none), the end of the socket tells
    //  that the host has ended, and waitpid how
    if (host->pidfd < 0 && errno != ENOSYS) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " pidfd_open: %s", host->index, host->plugin_name,
                 strerror (errno));
        close (pair [0]);
        kill (pid, SIGKILL);
        waitpid (pid, NULL, 0);
        host->pid = 0;
        goto failed;
    }
    fcntl (pair [0], F_SETFL, O_NONBLOCK);
    host->fd = pair [0];
    host->state = HOST_STARTING;
    host->started = self->now;
    host->starts++;
    AGD_LOG (self->config, AGD_LOG_INFO, zsys_info, "host %u (%s) started:"
             " pid %d", host->index, host->plugin_name, (int) pid);
    return;

failed:
    if (++host->start_failures >= START_FAILURES)
        agd_hostcall_unstartable (self, host, "could not be started");
    host->state = HOST_DOWN;
    host->next_start = self->now + (int64_t) host->backoff_ms * 1000;
    host->backoff_ms = MIN (host->backoff_ms * 2, HOST_BACKOFF_MAX_MS);
}

void
agd_hosts_start (agd_broker_t *self)
{
    self->now = ag_usecs ();
    for (size_t i = 0; i < self->host_count; i++)
        s_host_spawn (self, self->hosts [i]);
}

//  ---------------------------------------------------------------------
//  The socket

//  A host that breaks the rules of its socket is killed: its end is then
//  handled as any other
static void
s_host_kill (agd_host_t *host, const char *reason)
{
    if (host->pid && !host->killed) {
        host->killed = true;
        snprintf (host->kill_reason, sizeof host->kill_reason, "%s", reason);
        kill (host->pid, SIGKILL);
    }
}

//  What waits to be written to a host: runs of octets (frames, copied),
//  and large request bodies sent from their frames, in order
#define SHARE_MIN       65536       //  bodies this large are not copied
#define SEG_ROOM        65536       //  a run of octets holds this much

typedef struct _agd_outseg_t agd_outseg_t;
struct _agd_outseg_t {
    agd_outseg_t *next;
    bool shared;                    //  msg's octets from offset, else bytes
    zmq_msg_t msg;
    size_t offset;
    uint8_t *bytes;
    size_t size, sent, alloc;
};

static void
s_seg_free (agd_outseg_t *seg)
{
    if (seg->shared)
        zmq_msg_close (&seg->msg);
    free (seg->bytes);
    free (seg);
}

static void
s_out_clear (agd_host_t *host)
{
    while (host->segs) {
        agd_outseg_t *next = host->segs->next;
        s_seg_free (host->segs);
        host->segs = next;
    }
    host->segs_last = NULL;
}

static agd_outseg_t *
s_seg_push (agd_host_t *host)
{
    agd_outseg_t *seg = (agd_outseg_t *) calloc (1, sizeof (agd_outseg_t));
    if (!seg)
        return NULL;
    if (host->segs_last)
        host->segs_last->next = seg;
    else
        host->segs = seg;
    host->segs_last = seg;
    return seg;
}

//  Room for size more octets at the end of the last run
static uint8_t *
s_out_room (agd_host_t *host, size_t size)
{
    agd_outseg_t *seg = host->segs_last;
    if (!seg || seg->shared || seg->size + size > seg->alloc) {
        if (seg && !seg->shared && seg->sent == seg->size
        &&  seg == host->segs && size <= seg->alloc) {
            seg->size = seg->sent = 0;      //  written out: used again
        }
        else {
            seg = s_seg_push (host);
            if (!seg)
                return NULL;
            seg->alloc = MAX (size, SEG_ROOM);
            seg->bytes = (uint8_t *) malloc (seg->alloc);
            if (!seg->bytes)
                return NULL;        //  left empty: written as nothing
        }
    }
    uint8_t *at = seg->bytes + seg->size;
    seg->size += size;
    return at;
}

//  Write what waits for the host, as much as it takes now
static void
s_host_flush (agd_host_t *host)
{
    while (host->fd >= 0 && host->segs) {
        agd_outseg_t *seg = host->segs;
        const uint8_t *data = seg->shared
            ? (const uint8_t *) zmq_msg_data (&seg->msg) + seg->offset
            : seg->bytes;
        if (seg->sent < seg->size) {
            ssize_t rc = send (host->fd, data + seg->sent,
                               seg->size - seg->sent, MSG_NOSIGNAL);
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    s_host_kill (host, "could not be written to");
                return;
            }
            seg->sent += (size_t) rc;
            if (seg->sent < seg->size)
                continue;
        }
        //  Done: a run is kept for what comes next, if it is the last
        if (!seg->next && !seg->shared && seg->alloc <= SEG_ROOM) {
            seg->size = seg->sent = 0;
            return;
        }
        host->segs = seg->next;
        if (!host->segs)
            host->segs_last = NULL;
        s_seg_free (seg);
    }
}

static bool
s_out_pending (agd_host_t *host)
{
    return host->segs && (host->segs->next
                              || host->segs->sent < host->segs->size);
}

int
agd_host_send (agd_host_t *host, int command, uint64_t corr, uint64_t agent,
               const void *body, size_t size, zmq_msg_t *share)
{
    if (host->fd < 0)
        return -1;
    bool shared = share && size >= SHARE_MIN;
    size_t frame = AGP_ENVELOPE_SIZE + size;
    uint8_t *at = s_out_room (host, 4 + AGP_ENVELOPE_SIZE
                                    + (shared? 0: size));
    if (!at)
        return -1;
    at [0] = (uint8_t) frame;
    at [1] = (uint8_t) (frame >> 8);
    at [2] = (uint8_t) (frame >> 16);
    at [3] = (uint8_t) (frame >> 24);
    agp_envelope_t env = {
        .command = (uint8_t) command, .word = 0, .corr = corr, .agent = agent
    };
    agp_envelope_encode (&env, at + 4);
    if (!shared) {
        if (size)
            memcpy (at + 4 + AGP_ENVELOPE_SIZE, body, size);
        return 0;                   //  written at the end of the pass
    }
    agd_outseg_t *seg = s_seg_push (host);
    if (!seg)
        return -1;
    seg->shared = true;
    zmq_msg_init (&seg->msg);
    if (zmq_msg_copy (&seg->msg, share)) {
        //  Cannot happen (a frame of ours): sent as nothing would break
        //  the stream, so the host goes
        s_host_kill (host, "was killed: out of memory for its requests");
        return -1;
    }
    seg->offset = (size_t) ((const uint8_t *) body
                            - (const uint8_t *) zmq_msg_data (share));
    seg->size = size;
    return 0;
}

void
agd_hosts_flush (agd_broker_t *self)
{
    for (size_t i = 0; i < self->host_count; i++)
        if (s_out_pending (self->hosts [i]))
            s_host_flush (self->hosts [i]);
}

//  Read what the host wrote, and handle each frame in it. Returns 0, or
//  -1 once the socket has ended (the host has, or will have).
static int
s_host_read (agd_broker_t *self, agd_host_t *host)
{
    while (host->fd >= 0) {
        if (host->in_alloc - host->in_size < 65536) {
            size_t alloc = MAX (host->in_alloc * 2, 131072);
            uint8_t *in = (uint8_t *) realloc (host->in, alloc);
            if (!in) {
                s_host_kill (host, "was killed: out of memory for its"
                             " replies");
                return -1;
            }
            host->in = in;
            host->in_alloc = alloc;
        }
        ssize_t rc = recv (host->fd, host->in + host->in_size,
                           host->in_alloc - host->in_size, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (rc <= 0)
            return -1;
        host->in_size += (size_t) rc;
        //  Every whole frame
        size_t at = 0;
        while (host->in_size - at >= 4) {
            const uint8_t *head = host->in + at;
            size_t size = (size_t) head [0] | (size_t) head [1] << 8
                        | (size_t) head [2] << 16 | (size_t) head [3] << 24;
            if (size < AGP_ENVELOPE_SIZE
            ||  size > self->config.max_message + FRAME_SLACK) {
                s_host_kill (host, "was killed: it sent a frame no host"
                             " sends");
                return -1;
            }
            if (host->in_size - at - 4 < size)
                break;
            agd_hostcall_reply (self, host, head + 4, size);
            at += 4 + size;
            if (host->fd < 0)
                return -1;
        }
        memmove (host->in, host->in + at, host->in_size - at);
        host->in_size -= at;
        //  A buffer grown for a large reply shrinks once it is through
        if (host->in_size == 0 && host->in_alloc > 4 * 1024 * 1024) {
            free (host->in);
            host->in = NULL;
            host->in_alloc = 0;
        }
    }
    return -1;
}

//  ---------------------------------------------------------------------
//  When a host ends

//  How a host ended, from its wait status
static void
s_describe_end (agd_host_t *host, int status, char *text, size_t size)
{
    if (host->killed)
        snprintf (text, size, "%s", host->kill_reason);
    else
    if (WIFSIGNALED (status))
        snprintf (text, size, "was killed by signal %d (%s%s)",
                  WTERMSIG (status),
                  strsignal (WTERMSIG (status)), WTERMSIG (status) == SIGKILL
                  ? "; the kernel's OOM killer sends it too": "");
    else
    if (WIFEXITED (status))
        snprintf (text, size, "exited with status %d", WEXITSTATUS (status));
    else
        snprintf (text, size, "ended");
}

static void
s_host_ended (agd_broker_t *self, agd_host_t *host, int status)
{
    char how [640];
    s_describe_end (host, status, how, sizeof how);
    pid_t pid = host->pid;
    bool was_up = host->state == HOST_UP;
    s_host_close (host);
    host->pid = 0;
    host->state = HOST_DOWN;
    host->deaths++;
    host->killed = false;
    host->closed_at = 0;
    AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s, pid %d)"
             " %s; its agents (%zu) are made again in a new one", host->index,
             host->plugin_name, (int) pid, how, host->agents);
    agd_hostcall_crashed (self, host, pid, how);
    //  A host that dies as it starts is started again later, and later;
    //  one that agent code brought down, at once (the agent that did it
    //  waits its own backoff)
    if (!was_up) {
        host->next_start = self->now + (int64_t) host->backoff_ms * 1000;
        host->backoff_ms = MIN (host->backoff_ms * 2, HOST_BACKOFF_MAX_MS);
        //  One that never comes up fails what waits for it, rather than
        //  have it wait for ever; it is still tried, later and later
        if (++host->start_failures >= START_FAILURES)
            agd_hostcall_unstartable (self, host, how);
    }
    else {
        host->next_start = self->now;
        host->backoff_ms = 100;
    }
    if (!self->stopping && host->next_start <= self->now)
        s_host_spawn (self, host);
}

//  ---------------------------------------------------------------------
//  The broker's loop

size_t
agd_hosts_items (agd_broker_t *self, zmq_pollitem_t *items, size_t size)
{
    size_t count = 0;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        host->item_fd = host->item_pid = -1;
        if (count + 2 > size)
            continue;
        if (host->fd >= 0) {
            host->item_fd = (int) count;
            items [count++] = (zmq_pollitem_t) { NULL, host->fd, (short)
                (ZMQ_POLLIN | (s_out_pending (host)? ZMQ_POLLOUT: 0)), 0 };
        }
        if (host->pidfd >= 0) {
            host->item_pid = (int) count;
            items [count++] = (zmq_pollitem_t) { NULL, host->pidfd,
                                                 ZMQ_POLLIN, 0 };
        }
    }
    return count;
}

void
agd_hosts_poll (agd_broker_t *self, zmq_pollitem_t *items)
{
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        short events = host->item_fd >= 0? items [host->item_fd].revents: 0;
        if (events & ZMQ_POLLOUT)
            s_host_flush (host);
        //  Replies before the end: what the host wrote before it died
        //  is still in the socket, and counts
        if (((events & (ZMQ_POLLIN | ZMQ_POLLERR))
        ||  (host->item_pid >= 0 && (items [host->item_pid].revents
                                      & ZMQ_POLLIN)))
        &&  host->fd >= 0 && s_host_read (self, host)) {
            //  Its end, as a rule: the pidfd says how, now or soon
            close (host->fd);
            host->fd = -1;
            host->closed_at = self->now;
        }
        if (host->pid && ((host->item_pid >= 0
                           && (items [host->item_pid].revents & ZMQ_POLLIN))
                       || (host->pidfd < 0 && host->closed_at))) {
            int status = 0;
            if (waitpid (host->pid, &status, WNOHANG) == host->pid)
                s_host_ended (self, host, status);
        }
    }
}

//  The call limit: the first call out for each agent has run at most
//  since it was sent or since the call before it was answered, which
//  ever came later. Looked at every LIMIT_CHECK_US (or as often as the
//  shortest limit), and only with a limit set.
#define LIMIT_CHECK_US      10000

//  The shortest call limit in force, in us, or 0 if none is
static int64_t
s_shortest_limit (agd_broker_t *self)
{
    int64_t shortest = (int64_t) self->config.call_limit_ms * 1000;
    for (int i = 0; i < self->config.class_limit_count; i++) {
        int64_t limit = (int64_t) self->config.class_limits [i].ms * 1000;
        if (limit && (!shortest || limit < shortest))
            shortest = limit;
    }
    return shortest;
}

static void
s_check_limit (agd_broker_t *self, agd_host_t *host)
{
    host->next_limit_check = self->now + MIN (LIMIT_CHECK_US,
                                              s_shortest_limit (self));
    for (agd_job_t *job = host->out_head; job; job = job->host_next) {
        agd_agent_t *agent = job->agent;
        int64_t limit = (int64_t) agent->call_limit_ms * 1000;
        if (!limit || job != agent->chain || job->restore
        ||  job->env.command == AGP_DELETE
        ||  self->now - job->forwarded < limit)
            continue;
        const char *setting = "server/call_limit_ms";
        for (int i = 0; i < self->config.class_limit_count; i++)
            if (streq (self->config.class_limits [i].name, agent->cls->name))
                setting = "server/class_call_limit";
        char what [300];
        agd_hostcall_what (self, job, what, sizeof what);
        host->killed = true;
        snprintf (host->kill_reason, sizeof host->kill_reason, "was killed:"
                  " agent %" PRIu64 "'s %s ran past the call limit of %d ms"
                  " (%s)", agent->id, what, agent->call_limit_ms, setting);
        kill (host->pid, SIGKILL);
        return;
    }
}

//  Timers: hosts to start again, agents to make again, calls over the
//  hard limit, hosts that do not come up
void
agd_hosts_tick (agd_broker_t *self)
{
    int64_t now = self->now;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->state == HOST_DOWN && !self->stopping
        &&  host->next_start <= now)
            s_host_spawn (self, host);
        else
        if (host->closed_at && host->pid) {
            int status = 0;
            if (host->pidfd < 0
            &&  waitpid (host->pid, &status, WNOHANG) == host->pid)
                s_host_ended (self, host, status);
            else
            if (now - host->closed_at > 1000000)
                s_host_kill (host, "was killed: it closed its socket");
        }
        else
        if (host->state == HOST_STARTING && !host->killed
        &&  now - host->started > START_TIMEOUT_US) {
            host->killed = true;
            snprintf (host->kill_reason, sizeof host->kill_reason,
                      "did not start within %d s", START_TIMEOUT_US / 1000000);
            kill (host->pid, SIGKILL);
        }
        else
        if (host->state == HOST_UP) {
            if (host->next_restore && host->next_restore <= now)
                agd_hostcall_restore (self, host);
            if (host->out_head && now >= host->next_limit_check
            &&  !host->killed && s_shortest_limit (self))
                s_check_limit (self, host);
        }
    }
}

int64_t
agd_hosts_timeout (agd_broker_t *self, int64_t now)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->closed_at && host->pid)
            due = MIN (due, host->pidfd < 0? now + 1000
                                           : host->closed_at + 1001000);
        if (host->state == HOST_DOWN && !self->stopping)
            due = MIN (due, host->next_start);
        else
        if (host->state == HOST_STARTING)
            due = MIN (due, host->started + START_TIMEOUT_US + 1000);
        else {
            if (host->next_restore)
                due = MIN (due, host->next_restore);
            if (host->out_head && s_shortest_limit (self))
                due = MIN (due, host->next_limit_check);
        }
    }
    if (due == INT64_MAX)
        return INT64_MAX;
    return MAX (0, (due - now + 999) / 1000);
}

//  ---------------------------------------------------------------------
//  Figures, for INFO and LIST

void
agd_hosts_pack (agd_broker_t *self, msgpack_packer *pk)
{
    msgpack_pack_array (pk, self->host_count);
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        ag_pack (pk, "{s:s, s:u, s:s, s:u, s:u}",
                 "plugin", host->plugin, "pid", (uint64_t) host->pid,
                 "state", host->state == HOST_UP? "up"
                        : host->state == HOST_STARTING? "starting": "down",
                 "agents", (uint64_t) host->agents,
                 "starts", host->starts);
    }
}

int
agd_hosts_pid (agd_agent_t *agent)
{
    return agent->host? (int) agent->host->pid: 0;
}

//  ---------------------------------------------------------------------
//  Stopping

void
agd_hosts_stop (agd_broker_t *self)
{
    //  Calls still out after the grace time end here
    for (size_t i = 0; i < self->host_count; i++)
        agd_hostcall_abandon (self, self->hosts [i]);
    //  A host stops when its socket closes; those slow to are killed
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->fd >= 0) {
            close (host->fd);
            host->fd = -1;
        }
    }
    int64_t deadline = ag_usecs () + STOP_WAIT_MS * 1000;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (!host->pid)
            continue;
        bool gone = false;
        while (!gone && ag_usecs () < deadline) {
            int left = (int) ((deadline - ag_usecs ()) / 1000);
            if (host->pidfd >= 0) {
                zmq_pollitem_t item = { NULL, host->pidfd, ZMQ_POLLIN, 0 };
                if (zmq_poll (&item, 1, left) <= 0)
                    break;
            }
            else {
                //  No pidfd: look again every millisecond
                struct timespec pause = { 0, 1000000 };
                nanosleep (&pause, NULL);
            }
            gone = waitpid (host->pid, NULL, WNOHANG) == host->pid;
        }
        if (!gone) {
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning, "host %u"
                     " (pid %d) did not stop: killed", host->index,
                     (int) host->pid);
            kill (host->pid, SIGKILL);
            waitpid (host->pid, NULL, 0);
        }
        host->pid = 0;
        s_host_close (host);
        host->state = HOST_DOWN;
    }
}

void
agd_hosts_destroy (agd_broker_t *self)
{
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->pid) {
            kill (host->pid, SIGKILL);
            waitpid (host->pid, NULL, 0);
        }
        s_host_close (host);
        free (host->in);
        free (host->plugin);
        free (host);
    }
    free (self->hosts);
    self->hosts = NULL;
    self->host_count = 0;
    ag_idmap_destroy (&self->host_jobs);
}
