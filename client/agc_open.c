/*  =========================================================================
    agc_open - opening and closing connections to agent servers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A connection owns its DEALER socket, the PAIR that reads the socket's
//  monitor, and a child server if it started one. All connections of a
//  process share one ZeroMQ context and the watcher that reads their
//  monitors, made by the first and ended by the last. Agents moved to
//  the same endpoint share one connection.
//  @end

#include "agc.h"
#include "../common/ag_cert.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sodium.h>

#define DEFAULT_TIMEOUT_MS  10000

//  Connections the library made for endpoints, shared by the agents
//  moved there
static pthread_mutex_t s_shared_lock = PTHREAD_MUTEX_INITIALIZER;
static agc_conn_t *s_shared [256];
static size_t s_shared_count;

//  The process's ZeroMQ context, its watcher, and the connections using
//  them
static pthread_mutex_t s_context_lock = PTHREAD_MUTEX_INITIALIZER;
static void *s_context;
static agc_watcher_t *s_watcher;
static size_t s_context_users;

static void
    s_close (agc_conn_t *self);

//  Set CURVE on a connection's socket, with the server's public key and
//  the client's own certificate. origin prefixes reasons
//  ("AGENTD_CLIENT_CERT", or NULL). Returns 0, or -1 with the thread's
//  error set.
static int
s_curve (agc_conn_t *self, const char *server_cert,
         const char *server_origin, const char *client_cert,
         const char *client_origin)
{
    char error [512];
    ag_cert_t server, client;
    if (ag_cert_load_public (&server, server_cert, error, sizeof error))
        return agc_set_error (AG_BAD_REQUEST, "%s%s%s", server_origin?
                              server_origin: "", server_origin? ": ": "",
                              error);
    if (ag_cert_load_secret (&client, client_cert, error, sizeof error))
        return agc_set_error (AG_BAD_REQUEST, "%s%s%s", client_origin?
                              client_origin: "", client_origin? ": ": "",
                              error);
    int rc = zmq_setsockopt (self->socket, ZMQ_CURVE_SERVERKEY,
                             server.public_key, 40);
    if (rc == 0)
        rc = zmq_setsockopt (self->socket, ZMQ_CURVE_PUBLICKEY,
                             client.public_key, 40);
    if (rc == 0)
        rc = zmq_setsockopt (self->socket, ZMQ_CURVE_SECRETKEY,
                             client.secret_key, 40);
    ag_cert_wipe (&client);
    ag_cert_wipe (&server);
    if (rc)
        return agc_set_error (AG_INTERNAL, "cannot set CURVE keys: %s (is"
                              " libzmq built with CURVE?)",
                              zmq_strerror (zmq_errno ()));
    self->curve = true;
    return 0;
}

//  Take the context and its watcher, making them if nobody has. Returns
//  the context, or NULL with the thread's error set.
static void *
s_context_take (agc_watcher_t **watcher)
{
    pthread_mutex_lock (&s_context_lock);
    if (!s_context) {
        s_context = zmq_ctx_new ();
        s_watcher = s_context? agc_watcher_new (): NULL;
        if (s_context && !s_watcher) {
            zmq_ctx_term (s_context);
            s_context = NULL;
        }
    }
    if (s_context)
        s_context_users++;
    void *context = s_context;
    *watcher = s_watcher;
    pthread_mutex_unlock (&s_context_lock);
    if (!context)
        agc_set_error (AG_INTERNAL, "cannot create ZeroMQ context and the"
                       " thread that watches its sockets");
    return context;
}

//  The last connection ends the context, and its watcher. Terminating
//  may wait for a lingering socket, so it happens outside the lock: a
//  thread making a new connection meanwhile gets a new context.
static void
s_context_release (void)
{
    void *ending = NULL;
    agc_watcher_t *watcher = NULL;
    pthread_mutex_lock (&s_context_lock);
    if (--s_context_users == 0) {
        ending = s_context;
        watcher = s_watcher;
        s_context = NULL;
        s_watcher = NULL;
    }
    pthread_mutex_unlock (&s_context_lock);
    if (ending) {
        agc_watcher_destroy (&watcher);
        zmq_ctx_term (ending);
    }
}

//  Open a connection, with CURVE if server_cert is not NULL
static agc_conn_t *
s_open (const char *endpoint, const char *server_cert,
        const char *server_origin, const char *client_cert,
        const char *client_origin)
{
    if (!endpoint || !(strncmp (endpoint, "tcp://", 6) == 0
                    || strncmp (endpoint, "ipc://", 6) == 0)) {
        agc_set_error (AG_BAD_REQUEST, "endpoint '%s' is not tcp://host:port"
                       " or ipc://path", endpoint? endpoint: "(null)");
        return NULL;
    }
    agc_watcher_t *watcher;
    void *context = s_context_take (&watcher);
    if (!context)
        return NULL;
    agc_conn_t *self = (agc_conn_t *) calloc (1, sizeof (agc_conn_t));
    if (!self) {
        agc_set_error (AG_INTERNAL, "out of memory");
        s_context_release ();
        return NULL;
    }
    self->refs = 1;
    self->watch_fd = -1;
    self->endpoint = strdup (endpoint);
    self->socket = zmq_socket (context, ZMQ_DEALER);
    self->pending = ag_idmap_new ();
    self->timeout = DEFAULT_TIMEOUT_MS;
    self->quiet_from = ag_usecs ();
    pthread_mutex_init (&self->lock, NULL);
    //  A routing id of our own, random, so a result can be fetched back
    //  by (identity, correlation id) even after a reconnect
    self->identity [0] = 'C';
    if (sodium_init () < 0) {
        agc_set_error (AG_INTERNAL, "libsodium cannot initialise");
        s_close (self);             //  not listed anywhere yet
        return NULL;
    }
    randombytes_buf (self->identity + 1, sizeof self->identity - 1);
    zmq_setsockopt (self->socket, ZMQ_ROUTING_ID, self->identity,
                    sizeof self->identity);
    int zero = 0, deep = 1000000;
    zmq_setsockopt (self->socket, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_SNDHWM, &deep, sizeof deep);
    size_t fd_size = sizeof self->fd;
    zmq_getsockopt (self->socket, ZMQ_FD, &self->fd, &fd_size);
    if ((server_cert && s_curve (self, server_cert, server_origin,
                                 client_cert, client_origin))
    ||  agc_watcher_add (watcher, self, context)) {
        s_close (self);             //  not listed anywhere yet
        return NULL;
    }
    if (zmq_connect (self->socket, endpoint)) {
        agc_set_error (AG_BAD_REQUEST, "cannot connect to %s: %s", endpoint,
                       zmq_strerror (zmq_errno ()));
        s_close (self);             //  not listed anywhere yet
        return NULL;
    }
    return self;
}

agc_conn_t *
agc_conn_new (const char *endpoint)
{
    //  Programs written without CURVE in mind reach a server that
    //  requires it through these
    const char *server_cert = getenv ("AGENTD_SERVER_KEY");
    const char *client_cert = getenv ("AGENTD_CLIENT_CERT");
    if (server_cert && !*server_cert)
        server_cert = NULL;
    if (client_cert && !*client_cert)
        client_cert = NULL;
    if (!server_cert != !client_cert) {
        agc_set_error (AG_BAD_REQUEST, "%s is set but %s is not: CURVE"
                       " needs the server's public certificate and this"
                       " client's certificate",
                       server_cert? "AGENTD_SERVER_KEY": "AGENTD_CLIENT_CERT",
                       server_cert? "AGENTD_CLIENT_CERT": "AGENTD_SERVER_KEY");
        return NULL;
    }
    return s_open (endpoint, server_cert, "AGENTD_SERVER_KEY", client_cert,
                   "AGENTD_CLIENT_CERT");
}

agc_conn_t *
agc_conn_new_secure (const char *endpoint, const char *server_cert,
                     const char *client_cert)
{
    if (!server_cert || !client_cert) {
        agc_set_error (AG_BAD_REQUEST, "CURVE needs the server's public"
                       " certificate and this client's certificate");
        return NULL;
    }
    return s_open (endpoint, server_cert, NULL, client_cert, NULL);
}

//  Stop a child server: it sees its watch pipe close, and gets SIGTERM;
//  wait for it to exit (SIGKILL if it has not within 5 s)
static void
s_stop_child (agc_conn_t *self)
{
    if (!self->child)
        return;
    close (self->watch_fd);
    kill (self->child, SIGTERM);
    int pidfd = (int) syscall (SYS_pidfd_open, self->child, 0);
    struct pollfd item = { pidfd, POLLIN, 0 };
    if (pidfd < 0 || poll (&item, 1, 5000) <= 0)
        kill (self->child, SIGKILL);
    if (pidfd >= 0)
        close (pidfd);
    waitpid (self->child, NULL, 0);
    self->child = 0;
}

static void
s_close (agc_conn_t *self)
{
    //  Before the socket closes: its close must not write an event that
    //  nobody reads
    if (self->watcher)
        agc_watcher_remove (self->watcher, self);
    pthread_mutex_lock (&self->lock);
    //  Pending futures hold references, so only posted requests can be
    //  left. Those are not lost: the socket lingers to deliver them (a
    //  child server is stopped anyway, with all it holds).
    if (self->orphans && !self->child) {
        int linger = self->timeout;
        zmq_setsockopt (self->socket, ZMQ_LINGER, &linger, sizeof linger);
    }
    agc_conn_fail_all (self, AG_CLOSED, "connection closed");
    pthread_mutex_unlock (&self->lock);
    zmq_close (self->socket);
    s_stop_child (self);
    ag_idmap_destroy (&self->pending);
    pthread_mutex_destroy (&self->lock);
    free (self->endpoint);
    free (self);
    s_context_release ();
}

agc_conn_t *
agc_conn_ref (agc_conn_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->refs++;
    pthread_mutex_unlock (&self->lock);
    return self;
}

void
agc_conn_destroy (agc_conn_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agc_conn_t *self = *self_p;
    *self_p = NULL;
    if (!self->shared) {
        //  Not listed (shared is set before anyone else sees the
        //  connection): only its own lock is needed
        pthread_mutex_lock (&self->lock);
        bool last = --self->refs == 0;
        pthread_mutex_unlock (&self->lock);
        if (last)
            s_close (self);
        return;
    }
    //  A shared connection leaves the list under the list's lock, so no
    //  one finds it again between the last release and the close
    pthread_mutex_lock (&s_shared_lock);
    pthread_mutex_lock (&self->lock);
    bool last = --self->refs == 0;
    pthread_mutex_unlock (&self->lock);
    if (last && self->shared)
        for (size_t i = 0; i < s_shared_count; i++)
            if (s_shared [i] == self) {
                s_shared [i] = s_shared [--s_shared_count];
                break;
            }
    pthread_mutex_unlock (&s_shared_lock);
    if (last)
        s_close (self);
}

agc_conn_t *
agc_conn_shared (const char *endpoint)
{
    pthread_mutex_lock (&s_shared_lock);
    for (size_t i = 0; i < s_shared_count; i++)
        if (streq (s_shared [i]->endpoint, endpoint)) {
            agc_conn_t *conn = agc_conn_ref (s_shared [i]);
            pthread_mutex_unlock (&s_shared_lock);
            return conn;
        }
    agc_conn_t *conn = agc_conn_new (endpoint);
    if (conn && s_shared_count < sizeof s_shared / sizeof *s_shared) {
        conn->shared = true;
        s_shared [s_shared_count++] = conn;
    }
    pthread_mutex_unlock (&s_shared_lock);
    return conn;
}

void
agc_conn_adopt_child (agc_conn_t *self, int pid, int watch_fd)
{
    self->child = pid;
    self->watch_fd = watch_fd;
}

agc_conn_t *
agc_conn_spawn (const char *plugin)
{
    char endpoint [256];
    int watch_fd;
    int pid = agc_spawn_agentd (plugin, endpoint, sizeof endpoint, &watch_fd);
    if (pid < 0)
        return NULL;
    //  A child listens on loopback, without CURVE, whatever the
    //  environment says about other servers
    agc_conn_t *self = s_open (endpoint, NULL, NULL, NULL, NULL);
    if (!self) {
        close (watch_fd);
        kill (pid, SIGKILL);
        waitpid (pid, NULL, 0);
        return NULL;
    }
    agc_conn_adopt_child (self, pid, watch_fd);
    return self;
}

int
agc_conn_pid (agc_conn_t *self)
{
    return self->child;
}

const char *
agc_conn_endpoint (agc_conn_t *self)
{
    return self->endpoint;
}

void
agc_conn_set_timeout (agc_conn_t *self, int msecs)
{
    pthread_mutex_lock (&self->lock);
    self->timeout = msecs < 10? 10: msecs;
    pthread_mutex_unlock (&self->lock);
}
