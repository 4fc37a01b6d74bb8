/*  =========================================================================
    agd_host - host processes: agent code outside the broker's process

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  With process isolation, the classes of each plugin run in a host
//  process of their own: agentd itself, started (posix_spawn: no fork of
//  a process with ZeroMQ threads) in its host role, bound to an ipc
//  socket in a directory only this user can enter, with an elastic pool
//  of its own. The broker is the host's only client. It keeps what
//  outlives a host: the agent table, names, ownership, mailboxes,
//  deadlines, kept results and budgets, and each agent's init arguments.
//
//  An agent's requests go to its host one at a time, each when the one
//  before is answered: a request still in the mailbox has not started,
//  wherever the host is. When a host dies (a signal, exit, the memory
//  limit, the call limit) the broker sees it at once on a pidfd:
//
//  - the one call in flight for each of its agents fails with 521
//    (AG_CRASHED), naming the agent, class, method and how the host
//    ended; the calls behind it stay queued;
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
#include <dirent.h>

extern char **environ;

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
    //  The hosts' sockets, where only this user may reach them
    const char *base = getenv ("RUNTIME_DIRECTORY");
    if (!base || !*base || strchr (base, ':'))
        base = getenv ("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf (self->host_dir, sizeof self->host_dir, "%s/agentd.XXXXXX",
              base);
    if (strlen (self->host_dir) > 80 || !mkdtemp (self->host_dir)) {
        snprintf (self->args->error, sizeof self->args->error,
                  "process isolation: cannot make a directory for host"
                  " sockets in %s: %s", base, strlen (self->host_dir) > 80
                  ? "the path is too long": strerror (errno));
        self->host_dir [0] = 0;
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
        host->pidfd = host->out_fd = host->watch_fd = -1;
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
    if (self->sock) {
        zmq_close (self->sock);
        self->sock = NULL;
    }
    if (self->out_fd >= 0)
        close (self->out_fd);
    if (self->watch_fd >= 0)
        close (self->watch_fd);
    if (self->pidfd >= 0)
        close (self->pidfd);
    self->out_fd = self->watch_fd = self->pidfd = -1;
    self->line_len = 0;
}

//  The arguments a host runs with: its plugin, its socket, and the
//  settings that bound what it reads and runs
static void
s_host_spawn (agd_broker_t *self, agd_host_t *host)
{
    agd_config_t *config = &self->config;
    snprintf (host->endpoint, sizeof host->endpoint, "ipc://%s/host-%u.%"
              PRIu64, self->host_dir, host->index, host->starts + 1);
    char sets [12][96];
    int n = 0;
    snprintf (sets [n++], 96, "server/max_message=%zu", config->max_message);
    snprintf (sets [n++], 96, "server/max_depth=%d", config->max_depth);
    snprintf (sets [n++], 96, "server/max_elements=%zu",
              config->max_elements);
    //  The broker is the host's only client: the host's limits are the
    //  whole server's, and the broker's budgets bound what it sends
    snprintf (sets [n++], 96, "server/max_bytes=%zu", config->max_bytes
              + config->max_message);
    snprintf (sets [n++], 96, "server/max_client_bytes=%zu",
              config->max_bytes + config->max_message);
    snprintf (sets [n++], 96, "server/max_agents=%zu", config->max_agents);
    snprintf (sets [n++], 96, "server/max_agents_per_client=%zu",
              config->max_agents);
    snprintf (sets [n++], 96, "server/max_pending_per_client=100000000");
    snprintf (sets [n++], 96, "server/inbound_hwm=0");
    snprintf (sets [n++], 96, "server/retention_max=1");
    snprintf (sets [n++], 96, "server/host_memory_mb=%d",
              config->host_memory_mb);
    char threads_min [16], threads_max [16], idle [16], level [32];
    snprintf (threads_min, sizeof threads_min, "%d", config->threads_min);
    snprintf (threads_max, sizeof threads_max, "%d", config->threads_max);
    snprintf (idle, sizeof idle, "%d", config->idle_ms);
    static const char *levels [] = {
        "error", "warning", "notice", "info", "debug"
    };
    //  A host's starts and stops are ours to log: at the default level
    //  it says only what is wrong
    int host_level = config->log_level == AGD_LOG_NOTICE
                   ? AGD_LOG_WARNING: config->log_level;
    snprintf (level, sizeof level, "log/level=%s", levels [host_level < 0? 0
              : host_level > 4? 4: host_level]);
    const char *argv [64];
    int argc = 0;
    argv [argc++] = self->args->host_program;
    argv [argc++] = "--host";
    argv [argc++] = "-f";
    argv [argc++] = "-e";
    argv [argc++] = host->endpoint;
    argv [argc++] = "--parent-fd";
    argv [argc++] = "3";
    argv [argc++] = "--plugin";
    argv [argc++] = host->plugin;
    argv [argc++] = "--threads-min";
    argv [argc++] = threads_min;
    argv [argc++] = "--threads-max";
    argv [argc++] = threads_max;
    argv [argc++] = "--idle-ms";
    argv [argc++] = idle;
    argv [argc++] = "--grace-ms";
    argv [argc++] = "0";
    argv [argc++] = "--set";
    argv [argc++] = level;
    for (int i = 0; i < n; i++) {
        argv [argc++] = "--set";
        argv [argc++] = sets [i];
    }
    argv [argc] = NULL;

    int out [2] = { -1, -1 }, watch [2] = { -1, -1 };
    if (pipe2 (out, O_CLOEXEC) || pipe2 (watch, O_CLOEXEC)) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " pipe: %s", host->index, host->plugin_name,
                 strerror (errno));
        goto failed;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, out [1], 1);
    posix_spawn_file_actions_adddup2 (&actions, watch [0], 3);
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
    close (out [1]);
    close (watch [0]);
    out [1] = watch [0] = -1;
    if (rc) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " cannot run %s: %s", host->index, host->plugin_name,
                 self->args->host_program, strerror (rc));
        goto failed;
    }
    host->pid = pid;
    host->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
    if (host->pidfd < 0) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u (%s):"
                 " pidfd_open: %s", host->index, host->plugin_name,
                 strerror (errno));
        kill (pid, SIGKILL);
        waitpid (pid, NULL, 0);
        host->pid = 0;
        goto failed;
    }
    fcntl (out [0], F_SETFL, O_NONBLOCK);
    host->out_fd = out [0];
    host->watch_fd = watch [1];
    host->state = HOST_STARTING;
    host->started = self->now;
    host->starts++;
    AGD_LOG (self->config, AGD_LOG_INFO, zsys_info, "host %u (%s) started:"
             " pid %d", host->index, host->plugin_name, (int) pid);
    return;

failed:
    for (int i = 0; i < 2; i++) {
        if (out [i] >= 0)
            close (out [i]);
        if (watch [i] >= 0)
            close (watch [i]);
    }
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
    }
    else {
        host->next_start = self->now;
        host->backoff_ms = 100;
    }
    if (!self->stopping && host->next_start <= self->now)
        s_host_spawn (self, host);
}

//  The ready line: "listening on ENDPOINT"
static void
s_host_output (agd_broker_t *self, agd_host_t *host)
{
    char data [256];
    ssize_t size = read (host->out_fd, data, sizeof data);
    if (size <= 0) {
        if (size == 0 || (errno != EAGAIN && errno != EINTR)) {
            close (host->out_fd);
            host->out_fd = -1;
        }
        return;
    }
    if (host->state != HOST_STARTING)
        return;                     //  the host writes nothing else
    for (ssize_t i = 0; i < size; i++) {
        if (data [i] != '\n') {
            if (host->line_len + 1 < sizeof host->line)
                host->line [host->line_len++] = data [i];
            continue;
        }
        host->line [host->line_len] = 0;
        host->line_len = 0;
        if (strncmp (host->line, "listening on ", 13))
            continue;
        void *sock = zmq_socket (zsys_init (), ZMQ_DEALER);
        int zero = 0;
        if (sock) {
            zmq_setsockopt (sock, ZMQ_SNDHWM, &zero, sizeof zero);
            zmq_setsockopt (sock, ZMQ_RCVHWM, &zero, sizeof zero);
            zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
        }
        if (!sock || zmq_connect (sock, host->line + 13)) {
            AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "host %u: "
                     "cannot connect to %s: %s", host->index, host->line + 13,
                     zmq_strerror (zmq_errno ()));
            if (sock)
                zmq_close (sock);
            host->killed = true;
            snprintf (host->kill_reason, sizeof host->kill_reason,
                      "could not be reached");
            kill (host->pid, SIGKILL);
            return;
        }
        host->sock = sock;
        host->state = HOST_UP;
        AGD_LOG (self->config, AGD_LOG_INFO, zsys_info, "host %u (%s, pid"
                 " %d) ready in %" PRId64 " us", host->index,
                 host->plugin_name, (int) host->pid,
                 self->now - host->started);
        agd_hostcall_restore (self, host);
        return;
    }
}

//  ---------------------------------------------------------------------
//  The broker's loop

size_t
agd_hosts_items (agd_broker_t *self, zmq_pollitem_t *items, size_t size)
{
    size_t count = 0;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        host->item_sock = host->item_pid = host->item_out = -1;
        if (count + 3 > size)
            continue;
        if (host->sock) {
            host->item_sock = (int) count;
            items [count++] = (zmq_pollitem_t) { host->sock, 0, ZMQ_POLLIN,
                                                 0 };
        }
        if (host->pidfd >= 0) {
            host->item_pid = (int) count;
            items [count++] = (zmq_pollitem_t) { NULL, host->pidfd,
                                                 ZMQ_POLLIN, 0 };
        }
        if (host->out_fd >= 0) {
            host->item_out = (int) count;
            items [count++] = (zmq_pollitem_t) { NULL, host->out_fd,
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
        //  Replies before the end: what the host answered counts
        if (host->item_sock >= 0 && (items [host->item_sock].revents
                                     & ZMQ_POLLIN))
            for (int n = 0; n < 256 && host->sock; n++) {
                zmq_msg_t msg;
                zmq_msg_init (&msg);
                if (zmq_msg_recv (&msg, host->sock, ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close (&msg);
                    break;
                }
                agd_hostcall_reply (self, host, &msg);
                zmq_msg_close (&msg);
            }
        if (host->item_out >= 0 && host->out_fd >= 0
        &&  (items [host->item_out].revents & ZMQ_POLLIN))
            s_host_output (self, host);
        if (host->item_pid >= 0 && host->pid
        &&  (items [host->item_pid].revents & ZMQ_POLLIN)) {
            int status = 0;
            if (waitpid (host->pid, &status, WNOHANG) == host->pid)
                s_host_ended (self, host, status);
        }
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
            agd_job_t *oldest = host->out_head;
            //  The oldest call out has run at most since it was sent
            if (self->config.call_limit_ms && oldest && !host->killed
            &&  !oldest->restore && oldest->env.command != AGP_DELETE
            &&  now - oldest->forwarded
                >= (int64_t) self->config.call_limit_ms * 1000) {
                char what [300];
                agd_hostcall_what (self, oldest, what, sizeof what);
                host->killed = true;
                snprintf (host->kill_reason, sizeof host->kill_reason,
                          "was killed: agent %" PRIu64 "'s %s ran past the"
                          " call limit of %d ms (server/call_limit_ms)",
                          oldest->agent->id, what, self->config.call_limit_ms);
                kill (host->pid, SIGKILL);
            }
        }
    }
}

int64_t
agd_hosts_timeout (agd_broker_t *self, int64_t now)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->state == HOST_DOWN && !self->stopping)
            due = MIN (due, host->next_start);
        else
        if (host->state == HOST_STARTING)
            due = MIN (due, host->started + START_TIMEOUT_US + 1000);
        else {
            if (host->next_restore)
                due = MIN (due, host->next_restore);
            if (self->config.call_limit_ms && host->out_head)
                due = MIN (due, host->out_head->forwarded
                           + (int64_t) self->config.call_limit_ms * 1000);
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
    //  A host stops when the pipe from us closes; those slow to are
    //  killed
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (host->sock) {
            zmq_close (host->sock);
            host->sock = NULL;
        }
        if (host->watch_fd >= 0) {
            close (host->watch_fd);
            host->watch_fd = -1;
        }
    }
    int64_t deadline = ag_usecs () + STOP_WAIT_MS * 1000;
    for (size_t i = 0; i < self->host_count; i++) {
        agd_host_t *host = self->hosts [i];
        if (!host->pid)
            continue;
        while (host->pidfd >= 0) {
            int left = (int) ((deadline - ag_usecs ()) / 1000);
            zmq_pollitem_t item = { NULL, host->pidfd, ZMQ_POLLIN, 0 };
            if (left <= 0 || zmq_poll (&item, 1, left) > 0)
                break;
        }
        if (waitpid (host->pid, NULL, WNOHANG) != host->pid) {
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
        free (host->plugin);
        free (host);
    }
    free (self->hosts);
    self->hosts = NULL;
    self->host_count = 0;
    ag_idmap_destroy (&self->host_jobs);
    if (self->host_dir [0]) {
        //  Sockets the hosts left
        DIR *dir = opendir (self->host_dir);
        struct dirent *entry;
        while (dir && (entry = readdir (dir)))
            if (entry->d_name [0] != '.')
                unlinkat (dirfd (dir), entry->d_name, 0);
        if (dir)
            closedir (dir);
        rmdir (self->host_dir);
        self->host_dir [0] = 0;
    }
}
