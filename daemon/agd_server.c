/*  =========================================================================
    agd_server - the embeddable agent server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The server is a registry of classes, some settings, and a broker actor
//  once started. agentd is a thin main over this API, and any program can
//  serve its own classes with it (the seed's RpcAgentServerLauncher).
//  Stopping is a byte written to a pipe the broker polls: safe from any
//  thread, and from a signal handler.
//
//  With CURVE set, the server checks its secret key and its directory of
//  client certificates when told, and at start registers with the ZAP
//  handler (agd_auth) before the broker binds. Without CURVE it binds
//  only endpoints this machine alone can reach, unless told it may be
//  insecure.
//  @end

#include "agd.h"
#include "../common/ag_cert.h"
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>

struct _agd_server_t {
    agd_config_t config;            //  settings
    agd_registry_t *registry;       //  classes
    zlist_t *endpoints;             //  to bind
    zlist_t *peers;                 //  may fetch futures from
    zlist_t *bound;                 //  as bound
    agd_actor_t *broker;            //  running broker, or NULL
    agd_broker_args_t *args;        //  the broker's arguments
    int stop_pipe [2];              //  write end: agd_server_stop
    char *curve_secret;             //  Z85 secret key, or NULL: no CURVE
    char *curve_allow;              //  client certificate directory
    bool insecure;                  //  may bind beyond loopback unencrypted
    char *host_program;             //  agentd, to start hosts with
    agd_auth_t *auth;               //  our ZAP domain, once started
    bool started;                   //  start succeeded
    bool stopped;                   //  broker said STOPPED
    char error [512];               //  last failure
};

//  A library must leave its host's signal handling alone. czmq installs
//  SIGINT/SIGTERM handlers when first used unless told not to; we tell
//  it not to, unless the program has set up handlers of its own already
//  (which may well be czmq's, wanted).
static void
s_quiet_once (void)
{
    struct sigaction interrupt, terminate;
    sigaction (SIGINT, NULL, &interrupt);
    sigaction (SIGTERM, NULL, &terminate);
    if (interrupt.sa_handler == SIG_DFL && terminate.sa_handler == SIG_DFL) {
        //  We are czmq's first user here: keep it off the signals, and
        //  log to stderr, never to the program's stdout
        zsys_handler_set (NULL);
        zsys_set_logstream (stderr);
    }
    zsys_init ();
}

static void
s_quiet_czmq (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_quiet_once);
}

//  Calls left running by servers destroyed in this process
static atomic_size_t s_abandoned;

agd_server_t *
agd_server_new (void)
{
    s_quiet_czmq ();
    agd_server_t *self = (agd_server_t *) zmalloc (sizeof (agd_server_t));
    self->config = (agd_config_t) {
        .threads_min = 2,
        .threads_max = 512,
        .idle_ms = 30000,
        .retention_ms = 300000,
        .retention_max = 10000,
        .max_message = 64 * 1024 * 1024,
        .max_bytes = 256 * 1024 * 1024,
        .max_client_bytes = 64 * 1024 * 1024,
        .retention_bytes = 64 * 1024 * 1024,
        .grace_ms = 10000,
        .future_timeout_ms = 30000,
        .max_agents = 1000000,
        .max_agents_per_client = 0,     //  a tenth of max_agents
        .max_pending_per_client = 200000,
        .client_grace_ms = 10000,
        .heartbeat_ms = 10000,
        .heartbeat_timeout_ms = 30000,
        .inbound_hwm = 10000,
        .outbound_hwm = 1000000,
        .restart_max = 5,
        .restart_window_ms = 60000,
        .restart_backoff_ms = 100,
        .max_depth = AG_MAX_DEPTH,
        .max_elements = AG_MAX_ELEMENTS,
        .log_level = AGD_LOG_NOTICE
    };
    self->registry = agd_registry_new ();
    self->endpoints = zlist_new ();
    zlist_autofree (self->endpoints);
    self->peers = zlist_new ();
    zlist_autofree (self->peers);
    self->bound = zlist_new ();
    zlist_autofree (self->bound);
    if (pipe (self->stop_pipe)) {
        agd_registry_destroy (&self->registry);
        zlist_destroy (&self->endpoints);
        zlist_destroy (&self->peers);
        zlist_destroy (&self->bound);
        free (self);
        return NULL;
    }
    fcntl (self->stop_pipe [0], F_SETFL, O_NONBLOCK);
    fcntl (self->stop_pipe [1], F_SETFL, O_NONBLOCK);
    fcntl (self->stop_pipe [0], F_SETFD, FD_CLOEXEC);
    fcntl (self->stop_pipe [1], F_SETFD, FD_CLOEXEC);
    return self;
}

void
agd_server_destroy (agd_server_t **self_p)
{
    if (self_p && *self_p) {
        agd_server_t *self = *self_p;
        //  The destroy sends $TERM: the broker finishes its grace
        //  period, replies to everyone, and tears down
        agd_actor_destroy (&self->broker);
        //  Threads still running agent code after the grace time need
        //  their classes: then the plugins stay loaded (and the registry
        //  with them) for the life of the process
        if (self->args && self->args->abandoned) {
            zsys_warning ("%zu calls still running: plugins stay loaded",
                          self->args->abandoned);
            atomic_fetch_add (&s_abandoned, self->args->abandoned);
        }
        else
            agd_registry_destroy (&self->registry);
        free (self->args);
        //  The socket it served is closed: the ZAP domain can go
        agd_auth_destroy (&self->auth);
        if (self->curve_secret)
            sodium_memzero (self->curve_secret, strlen (self->curve_secret));
        free (self->curve_secret);
        free (self->curve_allow);
        free (self->host_program);
        zlist_destroy (&self->endpoints);
        zlist_destroy (&self->peers);
        zlist_destroy (&self->bound);
        close (self->stop_pipe [0]);
        close (self->stop_pipe [1]);
        free (self);
        *self_p = NULL;
    }
}

size_t
agd_server_abandoned (void)
{
    return atomic_load (&s_abandoned);
}

static int
s_not_started (agd_server_t *self, const char *what)
{
    if (self->started) {
        snprintf (self->error, sizeof self->error,
                  "%s: the server has already started", what);
        return -1;
    }
    return 0;
}

int
agd_server_add_class (agd_server_t *self, const ag_class_t *cls)
{
    if (s_not_started (self, "add class"))
        return -1;
    return agd_registry_add (self->registry, cls, "class", self->error,
                             sizeof self->error);
}

int
agd_server_load_plugin (agd_server_t *self, const char *path)
{
    if (s_not_started (self, "load plugin"))
        return -1;
    return agd_registry_load (self->registry, path, self->error,
                              sizeof self->error);
}

int
agd_server_bind (agd_server_t *self, const char *endpoint)
{
    if (s_not_started (self, "bind"))
        return -1;
    if (!endpoint || !(strncmp (endpoint, "tcp://", 6) == 0
                    || strncmp (endpoint, "ipc://", 6) == 0)) {
        snprintf (self->error, sizeof self->error,
                  "endpoint '%s' is not tcp://host:port or ipc://path",
                  endpoint? endpoint: "(null)");
        return -1;
    }
    zlist_append (self->endpoints, (void *) endpoint);
    return 0;
}

int
agd_server_allow_peer (agd_server_t *self, const char *peer)
{
    if (s_not_started (self, "allow a peer"))
        return -1;
    if (!peer || !(streq (peer, "any") || streq (peer, "local")
                || strncmp (peer, "tcp://", 6) == 0
                || strncmp (peer, "ipc://", 6) == 0)) {
        snprintf (self->error, sizeof self->error, "peer '%s' is not an"
                  " endpoint, tcp://host:*, local or any",
                  peer? peer: "(null)");
        return -1;
    }
    zlist_append (self->peers, (void *) peer);
    return 0;
}

void
agd_server_set_future_timeout (agd_server_t *self, int msecs)
{
    if (msecs > 0)
        self->config.future_timeout_ms = msecs;
}

void
agd_server_set_threads (agd_server_t *self, int min, int max)
{
    if (max < 1)
        max = 1;
    if (min < 0)
        min = 0;
    if (min > max)
        min = max;
    self->config.threads_min = min;
    self->config.threads_max = max;
}

void
agd_server_set_idle (agd_server_t *self, int msecs)
{
    self->config.idle_ms = msecs < 0? 0: msecs;
}

void
agd_server_set_retention (agd_server_t *self, int msecs, size_t max)
{
    self->config.retention_ms = msecs < 0? 0: msecs;
    if (max)
        self->config.retention_max = max;
}

void
agd_server_set_retention_bytes (agd_server_t *self, size_t bytes)
{
    if (bytes)
        self->config.retention_bytes = bytes;
}

void
agd_server_set_max_message (agd_server_t *self, size_t bytes)
{
    self->config.max_message = bytes;
}

void
agd_server_set_memory (agd_server_t *self, size_t bytes, size_t client_bytes)
{
    if (bytes)
        self->config.max_bytes = bytes;
    if (client_bytes)
        self->config.max_client_bytes = client_bytes;
}

void
agd_server_set_grace (agd_server_t *self, int msecs)
{
    self->config.grace_ms = msecs < 0? 0: msecs;
}

void
agd_server_set_limits (agd_server_t *self, size_t agents,
                       size_t agents_per_client, size_t pending_per_client)
{
    if (agents)
        self->config.max_agents = agents;
    if (agents_per_client)
        self->config.max_agents_per_client = agents_per_client;
    if (pending_per_client)
        self->config.max_pending_per_client = pending_per_client;
}

void
agd_server_set_client_grace (agd_server_t *self, int msecs)
{
    self->config.client_grace_ms = msecs < 0? 0: msecs;
}

void
agd_server_set_inbound_hwm (agd_server_t *self, int messages)
{
    self->config.inbound_hwm = messages < 0? 0: messages;
}

void
agd_server_set_outbound_hwm (agd_server_t *self, int messages)
{
    self->config.outbound_hwm = messages < 0? 0: messages;
}

int
agd_server_set_msgpack_limits (agd_server_t *self, int depth,
                               size_t elements)
{
    if (depth < 0 || depth > AG_MAX_DEPTH
    ||  elements > AG_MAX_ELEMENTS_CAP) {
        snprintf (self->error, sizeof self->error, "msgpack limits: depth"
                  " must be 1..%d and elements 1..%d", AG_MAX_DEPTH,
                  AG_MAX_ELEMENTS_CAP);
        return -1;
    }
    if (depth)
        self->config.max_depth = depth;
    if (elements)
        self->config.max_elements = elements;
    return 0;
}

void
agd_server_set_heartbeat (agd_server_t *self, int msecs, int timeout)
{
    self->config.heartbeat_ms = msecs < 0? 0: msecs;
    self->config.heartbeat_timeout_ms = timeout < 0? 0: timeout;
}

void
agd_server_set_log_level (agd_server_t *self, int level)
{
    if (level < AGD_LOG_ERROR)
        level = AGD_LOG_ERROR;
    if (level > AGD_LOG_DEBUG)
        level = AGD_LOG_DEBUG;
    self->config.log_level = level;
    if (self->started && !self->stopped)
        zstr_sendf (agd_actor_sock (self->broker), "LOGLEVEL %d", level);
    if (self->auth)
        agd_auth_set_log_level (self->auth, level);
}

void
agd_server_set_verbose (agd_server_t *self, bool verbose)
{
    agd_server_set_log_level (self, verbose? AGD_LOG_INFO: AGD_LOG_NOTICE);
}

int
agd_server_set_curve (agd_server_t *self, const char *secret_cert,
                      const char *allow_dir)
{
    if (s_not_started (self, "set CURVE"))
        return -1;
    if (!secret_cert || !allow_dir) {
        snprintf (self->error, sizeof self->error, "CURVE needs both the"
                  " server's secret certificate and a directory of client"
                  " certificates");
        return -1;
    }
    ag_cert_t cert;
    if (ag_cert_load_secret (&cert, secret_cert, self->error,
                             sizeof self->error))
        return -1;
    char reason [512];
    if (agd_auth_check_dir (allow_dir, reason, sizeof reason) < 0) {
        snprintf (self->error, sizeof self->error, "%s", reason);
        ag_cert_wipe (&cert);
        return -1;
    }
    if (self->curve_secret)
        sodium_memzero (self->curve_secret, strlen (self->curve_secret));
    free (self->curve_secret);
    free (self->curve_allow);
    self->curve_secret = strdup (cert.secret_key);
    //  Absolute, so a reload finds it after agentd detaches to /
    self->curve_allow = realpath (allow_dir, NULL);
    if (!self->curve_allow)
        self->curve_allow = strdup (allow_dir);
    ag_cert_wipe (&cert);
    return 0;
}

void
agd_server_set_insecure (agd_server_t *self, bool insecure)
{
    self->insecure = insecure;
}

int
agd_server_set_isolation (agd_server_t *self, const char *mode)
{
    if (mode && streq (mode, "thread"))
        self->config.isolation = AGD_ISOLATE_THREAD;
    else
    if (mode && streq (mode, "process"))
        self->config.isolation = AGD_ISOLATE_PROCESS;
    else {
        snprintf (self->error, sizeof self->error, "isolation '%s' is not"
                  " process or thread", mode? mode: "(null)");
        return -1;
    }
    return 0;
}

void
agd_server_set_restarts (agd_server_t *self, int max, int window_ms,
                         int backoff_ms)
{
    self->config.restart_max = MAX (max, 0);
    self->config.restart_window_ms = MAX (window_ms, 1);
    self->config.restart_backoff_ms = MAX (backoff_ms, 0);
}

void
agd_server_set_call_limit (agd_server_t *self, int msecs)
{
    self->config.call_limit_ms = MAX (msecs, 0);
}

int
agd_server_set_class_call_limit (agd_server_t *self, const char *cls,
                                 int msecs)
{
    assert (cls);
    agd_config_t *config = &self->config;
    int i = 0;
    while (i < config->class_limit_count
    &&     !streq (config->class_limits [i].name, cls))
        i++;
    if (strlen (cls) > AGP_MAX_NAME || i == AGD_CLASS_LIMITS) {
        snprintf (self->error, sizeof self->error, "%s", i == AGD_CLASS_LIMITS
                  ? "call limits for more than 32 classes"
                  : "a class name is at most 255 octets");
        return -1;
    }
    snprintf (config->class_limits [i].name,
              sizeof config->class_limits [i].name, "%s", cls);
    config->class_limits [i].ms = MAX (msecs, 0);
    if (i == config->class_limit_count)
        config->class_limit_count++;
    return 0;
}

void
agd_server_set_host_memory (agd_server_t *self, int megabytes)
{
    self->config.host_memory_mb = MAX (megabytes, 0);
}

void
agd_server_set_host_program (agd_server_t *self, const char *program)
{
    free (self->host_program);
    self->host_program = program? strdup (program): NULL;
}

int
agd_server_reload_keys (agd_server_t *self)
{
    if (!self->auth) {
        snprintf (self->error, sizeof self->error, "reload keys: the"
                  " server is not running with CURVE");
        return -1;
    }
    return agd_auth_reload (self->auth, self->error, sizeof self->error);
}

int
agd_server_ping (agd_server_t *self, int msecs)
{
    if (!self->started || self->stopped)
        return -1;
    zsock_t *pipe = agd_actor_sock (self->broker);
    zstr_send (pipe, "PING");
    zpoller_t *poller = zpoller_new (pipe, NULL);
    zpoller_set_nonstop (poller, true);
    int rc = -1;
    int64_t deadline = zclock_mono () + msecs;
    while (rc == -1) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0 || !zpoller_wait (poller, (int) left))
            break;
        char *message = zstr_recv (pipe);
        if (message && streq (message, "PONG"))
            rc = 0;
        else
        if (message && streq (message, "STOPPED"))
            self->stopped = true;
        zstr_free (&message);
    }
    zpoller_destroy (&poller);
    return rc;
}

int
agd_server_start (agd_server_t *self)
{
    if (s_not_started (self, "start"))
        return -1;
    if (zlist_size (self->endpoints) == 0)
        zlist_append (self->endpoints, "tcp://127.0.0.1:*");
    //  Without CURVE, nothing another machine can reach, unless asked
    const char *endpoint = (const char *) zlist_first (self->endpoints);
    for (; endpoint && !self->curve_secret && !self->insecure;
           endpoint = (const char *) zlist_next (self->endpoints))
        if (!agd_endpoint_is_local (endpoint)) {
            snprintf (self->error, sizeof self->error, "endpoint %s is not"
                      " loopback and CURVE is not set: other machines could"
                      " reach it unencrypted and unauthenticated (set CURVE"
                      " keys, or say insecure explicitly)", endpoint);
            return -1;
        }
    if (self->config.max_bytes < self->config.max_message + AGD_JOB_COST
                                  + AGP_MAX_NAME) {
        snprintf (self->error, sizeof self->error, "server/max_bytes %zu is"
                  " less than a request of server/max_message %zu needs: the"
                  " largest request could never be taken",
                  self->config.max_bytes, self->config.max_message);
        return -1;
    }
    for (int i = 0; i < self->config.class_limit_count; i++) {
        const char *cls = self->config.class_limits [i].name;
        if (!agd_registry_find (self->registry, cls, strlen (cls))) {
            int used = snprintf (self->error, sizeof self->error, "a call"
                                 " limit for class '%s', which no plugin"
                                 " has (classes:", cls);
            size_t count = agd_registry_size (self->registry);
            for (size_t c = 0; c < count && used > 0
                               && (size_t) used < sizeof self->error; c++)
                used += snprintf (self->error + used,
                                  sizeof self->error - (size_t) used, "%s %s",
                                  c? ",": "",
                                  agd_registry_at (self->registry, c)->name);
            if (used > 0 && (size_t) used < sizeof self->error)
                snprintf (self->error + used,
                          sizeof self->error - (size_t) used,
                          "%s)", count? "": " none");
            return -1;
        }
    }
    ag_msgpack_set_limits (self->config.max_depth,
                           self->config.max_elements);
    self->args = (agd_broker_args_t *) zmalloc (sizeof (agd_broker_args_t));
    self->args->config = self->config;
    if (!self->args->config.max_agents_per_client)
        self->args->config.max_agents_per_client =
            MAX (self->config.max_agents / 10, 1);
    self->args->registry = self->registry;
    self->args->endpoints = self->endpoints;
    self->args->peers = self->peers;
    self->args->bound = self->bound;
    self->args->stop_fd = self->stop_pipe [0];
    if (!self->host_program) {
        const char *agentd = getenv ("AGENTD");
        if (agentd && *agentd)
            self->host_program = strdup (agentd);
#ifdef AG_AGENTD_PATH
        else
            self->host_program = strdup (AG_AGENTD_PATH);
#endif
    }
    self->args->host_program = self->host_program;
    //  The server's threads take no asynchronous signals: those belong
    //  to the program. The broker, and the workers it starts, inherit
    //  this mask.
    sigset_t all, old;
    sigfillset (&all);
    sigdelset (&all, SIGSEGV);
    sigdelset (&all, SIGBUS);
    sigdelset (&all, SIGFPE);
    sigdelset (&all, SIGILL);
    pthread_sigmask (SIG_BLOCK, &all, &old);
    //  CURVE: the ZAP handler knows our domain before the socket binds
    if (self->curve_secret && !self->auth) {
        self->auth = agd_auth_new (self->curve_allow, self->config.log_level,
                                   self->error, sizeof self->error);
        if (!self->auth) {
            pthread_sigmask (SIG_SETMASK, &old, NULL);
            return -1;
        }
    }
    if (self->auth) {
        self->args->curve_secret = self->curve_secret;
        self->args->zap_domain = agd_auth_domain (self->auth);
    }
    self->broker = agd_actor_new (agd_broker, self->args);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (!self->broker) {
        snprintf (self->error, sizeof self->error, "cannot start broker");
        return -1;
    }
    //  agd_actor_new returned after the broker's signal; a failed bind
    //  left its reason in args
    if (self->args->error [0]) {
        snprintf (self->error, sizeof self->error, "%s", self->args->error);
        agd_actor_destroy (&self->broker);
        zlist_purge (self->bound);
        return -1;
    }
    self->started = true;
    return 0;
}

size_t
agd_server_endpoints (agd_server_t *self)
{
    return zlist_size (self->bound);
}

const char *
agd_server_endpoint (agd_server_t *self, size_t index)
{
    const char *endpoint = (const char *) zlist_first (self->bound);
    while (endpoint && index--)
        endpoint = (const char *) zlist_next (self->bound);
    return endpoint;
}

void
agd_server_stop (agd_server_t *self)
{
    //  write(2) is async-signal-safe; a full pipe means a stop is queued
    char byte = 'S';
    ssize_t rc = write (self->stop_pipe [1], &byte, 1);
    (void) rc;
}

void
agd_server_wait (agd_server_t *self)
{
    if (!self->started || self->stopped)
        return;
    zsock_t *pipe = agd_actor_sock (self->broker);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    //  A signal must not end the wait early: it asks for a stop, and the
    //  wait goes on until the broker has finished stopping
    zpoller_set_nonstop (poller, true);
    bool asked = false;
    while (!self->stopped) {
        //  Wakes for the broker, or every 100 ms to see whether czmq's
        //  own handler (if the program installed it) saw a signal
        void *which = zpoller_wait (poller, 100);
        if (which == pipe) {
            char *message = zstr_recv (pipe);
            if (message && streq (message, "STOPPED"))
                self->stopped = true;
            zstr_free (&message);
        }
        else
        if (zsys_interrupted && !asked) {
            agd_server_stop (self);
            asked = true;
        }
    }
    zpoller_destroy (&poller);
}

const char *
agd_server_error (agd_server_t *self)
{
    return self->error;
}

//  ---------------------------------------------------------------------
//  Selftest

void
agd_server_test (bool verbose)
{
    printf (" * agd_server: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    agd_server_t *server = agd_server_new ();
    assert (server);
    assert (agd_server_bind (server, "http://x") == -1);
    assert (strstr (agd_server_error (server), "http://x"));
    assert (agd_server_bind (server, "tcp://127.0.0.1:*") == 0);
    assert (agd_server_start (server) == 0);
    assert (agd_server_endpoints (server) == 1);
    const char *endpoint = agd_server_endpoint (server, 0);
    assert (strncmp (endpoint, "tcp://127.0.0.1:", 16) == 0);
    assert (!streq (endpoint, "tcp://127.0.0.1:*"));
    assert (agd_server_bind (server, "tcp://127.0.0.1:*") == -1);

    //  A second server cannot bind the same port, and says so
    agd_server_t *clash = agd_server_new ();
    agd_server_bind (clash, endpoint);
    assert (agd_server_start (clash) == -1);
    assert (strstr (agd_server_error (clash), "cannot bind"));
    agd_server_destroy (&clash);

    agd_server_stop (server);
    agd_server_wait (server);
    agd_server_destroy (&server);
    agd_server_destroy (&server);
    //  @end
    printf ("OK\n");
}
