/*  =========================================================================
    agc_conn - a connection to an agent server, and its futures

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  One DEALER socket per server. Requests carry a fresh correlation id;
//  the reply resolves the future filed under it, in any order.
//
//  There is no I/O thread. A thread that waits becomes the connection's
//  reader if it has none: it polls the socket's file descriptor and
//  drains every reply that arrives, resolving futures and waking the
//  threads that wait for them through their eventfd. When its own future
//  is done it hands the reader role to another waiting thread. A sync
//  call is thus sent and read by the same thread, with no hop.
//
//  The socket is used only under the connection's lock. ZMQ_FD is edge
//  triggered and any send may consume its readiness, so after each send
//  the sender checks ZMQ_EVENTS and, if a reply is waiting, wakes the
//  reader. While futures are pending and the server is silent, the
//  reader pings it; a server silent for the timeout fails them all.
//
//  A connection also reads its socket's monitor. A dropped connection
//  fails what is pending on it with AG_UNREACHABLE at once: the server
//  drops replies due to a connection that has gone, so none will come.
//  With CURVE it also tells the handshake's outcome: ZeroMQ gives no
//  error on the socket when the server refuses the client's key, and no
//  longer reconnects. The reader (or a sender) sees the event, fails
//  what is pending with AG_DENIED, and the next request connects again,
//  so a key allowed later on the server gets in without a new
//  connection object.
//  @end

#include "agc.h"
#include "../common/ag_cert.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sodium.h>

#define DEFAULT_TIMEOUT_MS  10000

struct _agc_waiter_t {
    int fd;                         //  eventfd: written to wake this thread
};

//  A waiting thread's entry in a connection's list of waiters
typedef struct _node_t node_t;
struct _node_t {
    agc_waiter_t *waiter;
    node_t *next;
};

struct _agc_conn_t {
    char *endpoint;                 //  as given
    void *socket;                   //  DEALER
    int fd;                         //  its ZMQ_FD
    pthread_mutex_t lock;           //  guards everything below
    uint64_t next_corr;             //  last correlation id used
    ag_idmap_t *pending;            //  corr -> future
    agc_waiter_t *reader;           //  thread reading replies, or NULL
    node_t *waiters;                //  threads waiting on this connection
    int timeout;                    //  ms of silence that means dead
    int64_t quiet_from;             //  usecs: start of current silence
    uint64_t ping_corr;             //  outstanding ping, or 0
    uint64_t hello_corr;            //  first ping, for the instance id
    bool hello_sent;                //  that ping has gone out
    char instance [17];             //  the server's instance id, or ""
    int64_t ping_sent;              //  usecs it went out
    uint8_t identity [16];          //  our routing id
    int refs;                       //  the creator's, plus one per handle
    size_t orphans;                 //  pending requests nobody waits for
    bool shared;                    //  listed in s_shared
    int child;                      //  child server's pid, or 0
    int watch_fd;                   //  child's watch pipe, or -1
    bool curve;                     //  the socket uses CURVE
    bool connected;                 //  a connection's handshake is done,
                                    //  and it has not dropped since
    void *monitor;                  //  PAIR on the socket's events (a
                                    //  drop; the handshake's, for CURVE)
    int monitor_fd;                 //  its ZMQ_FD
    bool refused;                   //  the server refused our key:
                                    //  connect again before sending
};

//  Monitors are told apart by a number
static atomic_uint s_monitor_count;

//  Connections the library made for endpoints, shared by the agents
//  moved there
static pthread_mutex_t s_shared_lock = PTHREAD_MUTEX_INITIALIZER;
static agc_conn_t *s_shared [256];
static size_t s_shared_count;

//  ---------------------------------------------------------------------
//  Process-wide: the ZeroMQ context, and each thread's waiter and error

static pthread_mutex_t s_context_lock = PTHREAD_MUTEX_INITIALIZER;
static void *s_context;
static size_t s_context_users;

static pthread_key_t s_waiter_key;
static pthread_once_t s_waiter_once = PTHREAD_ONCE_INIT;
static __thread agc_waiter_t *s_me;
static __thread int s_status = AG_OK;
static __thread char s_reason [512];

static void
s_waiter_free (void *arg)
{
    agc_waiter_t *waiter = (agc_waiter_t *) arg;
    close (waiter->fd);
    free (waiter);
}

static void
s_waiter_key_new (void)
{
    pthread_key_create (&s_waiter_key, s_waiter_free);
}

static agc_waiter_t *
s_waiter (void)
{
    if (!s_me) {
        pthread_once (&s_waiter_once, s_waiter_key_new);
        agc_waiter_t *waiter = (agc_waiter_t *) calloc (1, sizeof *waiter);
        if (!waiter)
            return NULL;
        waiter->fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (waiter->fd < 0) {
            free (waiter);
            return NULL;
        }
        s_me = waiter;
        pthread_setspecific (s_waiter_key, waiter);
    }
    return s_me;
}

static void
s_wake (agc_waiter_t *waiter)
{
    uint64_t one = 1;
    ssize_t rc = write (waiter->fd, &one, sizeof one);
    (void) rc;                      //  a full counter is still a wakeup
}

int
agc_set_error (int status, const char *format, ...)
{
    s_status = status;
    va_list args;
    va_start (args, format);
    vsnprintf (s_reason, sizeof s_reason, format, args);
    va_end (args);
    return -1;
}

void
agc_set_error_from (agc_future_t *future)
{
    agc_set_error (future->status, "%s", future->reason? future->reason
                                       : ag_status_str (future->status));
}

int
agc_status (void)
{
    return s_status;
}

const char *
agc_reason (void)
{
    return s_reason;
}

//  ---------------------------------------------------------------------
//  Futures

agc_future_t *
agc_future_resolved (int status, const char *reason, ag_value_t *value)
{
    agc_future_t *self = (agc_future_t *) calloc (1, sizeof (agc_future_t));
    if (!self) {
        ag_value_destroy (&value);
        return NULL;
    }
    self->status = status;
    self->reason = reason && *reason? strdup (reason): NULL;
    self->value = value;
    atomic_store (&self->done, true);
    return self;
}

//  Resolve a pending future. Called with the connection locked, after
//  the future has left the pending map.
static void
s_resolve (agc_future_t *future, int status, char *reason, ag_value_t *value)
{
    if (future->orphan) {
        future->conn->orphans--;
        ag_value_destroy (&value);
        free (reason);
        free (future);
        return;
    }
    future->status = status;
    future->reason = reason;        //  NULL on success
    future->value = value;
    //  done is written last: a thread that sees it reads the fields above
    agc_waiter_t *waiter = future->waiter;
    atomic_store (&future->done, true);
    if (waiter && waiter != s_me)
        s_wake (waiter);
}

static void
s_fail_all (agc_conn_t *self, int status, const char *reason)
{
    //  In batches: resolving must not run while the map is walked
    while (ag_idmap_size (self->pending)) {
        agc_future_t *batch [256];
        size_t taken = 0, cursor = 0;
        agc_future_t *future;
        while (taken < 256
        &&    (future = (agc_future_t *) ag_idmap_next (self->pending,
                                                        &cursor, NULL)))
            batch [taken++] = future;
        for (size_t i = 0; i < taken; i++) {
            ag_idmap_delete (self->pending, batch [i]->corr);
            s_resolve (batch [i], status, strdup (reason), NULL);
        }
    }
}

//  Read the reason an error reply carries (a msgpack string)
static char *
s_reason_of (int status, const void *data, size_t size)
{
    ag_value_t *value = ag_value_decode (data, size);
    char *reason = ag_obj_strdup (ag_value_object (value));
    ag_value_destroy (&value);
    return reason? reason: strdup (ag_status_str (status));
}

//  A PING reply names the server's instance (a new one at each start).
//  Another instance behind the same connection means the server
//  restarted: what was pending there died with the old one, and no
//  reply will come for it. Connection locked.
static void
s_instance_seen (agc_conn_t *self, const uint8_t *body, size_t size)
{
    ag_value_t *value = ag_value_decode (body, size);
    const msgpack_object *id = ag_obj_get (ag_value_object (value),
                                           "instance");
    if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0
    ||  id->via.str.size >= sizeof self->instance) {
        ag_value_destroy (&value);
        return;                     //  a server that has none
    }
    char seen [sizeof self->instance];
    memcpy (seen, id->via.str.ptr, id->via.str.size);
    seen [id->via.str.size] = 0;
    ag_value_destroy (&value);
    if (self->instance [0] && !streq (seen, self->instance)) {
        char reason [400];
        snprintf (reason, sizeof reason, "server at %s restarted (instance"
                  " %s, now %s): requests pending there were lost",
                  self->endpoint, self->instance, seen);
        s_fail_all (self, AG_UNREACHABLE, reason);
    }
    memcpy (self->instance, seen, sizeof seen);
}

//  Read the socket's events. A dropped connection lost what was asked on
//  it: the server drops the replies due to a connection that has gone
//  (and closes one whose client does not read them), so no reply will
//  come for what was pending. Connection locked.
static void
s_monitor_drain (agc_conn_t *self)
{
    if (!self->monitor)
        return;
    while (true) {
        zmq_msg_t head, address;
        zmq_msg_init (&head);
        if (zmq_msg_recv (&head, self->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&head);
            break;
        }
        zmq_msg_init (&address);
        if (zmq_msg_more (&head))
            zmq_msg_recv (&address, self->monitor, 0);
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size (&head) == 6) {
            memcpy (&event, zmq_msg_data (&head), 2);
            memcpy (&value, (uint8_t *) zmq_msg_data (&head) + 2, 4);
        }
        zmq_msg_close (&head);
        zmq_msg_close (&address);
        char reason [400];
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            self->connected = true;
        else
        if (event == ZMQ_EVENT_DISCONNECTED) {
            //  A connection that never completed its handshake carried
            //  nothing: what is pending waits in ZeroMQ for the next
            if (self->connected && ag_idmap_size (self->pending)) {
                snprintf (reason, sizeof reason, "the connection to %s"
                          " dropped: what was pending there may or may not"
                          " have run", self->endpoint);
                s_fail_all (self, AG_UNREACHABLE, reason);
            }
            self->connected = false;
        }
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            //  ZeroMQ does not reconnect after this; we do, on the next
            //  request
            snprintf (reason, sizeof reason, "%s refused this client's"
                      " CURVE key (ZAP status %u): it is not among the"
                      " server's allowed client certificates",
                      self->endpoint, (unsigned) value);
            self->refused = true;
            s_fail_all (self, AG_DENIED, reason);
        }
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            snprintf (reason, sizeof reason, "CURVE handshake with %s"
                      " failed: %s", self->endpoint,
                      value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                      ? "the server does not use CURVE"
                      : "protocol error");
            s_fail_all (self, AG_UNREACHABLE, reason);
        }
    }
}

//  Before a request goes out: take in the handshake's news, and after a
//  refusal connect again, so the request is a new attempt. Connection
//  locked.
static void
s_prepare_send (agc_conn_t *self)
{
    if (!self->curve)
        return;
    s_monitor_drain (self);
    if (self->refused) {
        zmq_disconnect (self->socket, self->endpoint);
        zmq_connect (self->socket, self->endpoint);
        self->refused = false;
    }
}

//  Read every message waiting on the socket. Connection locked.
static void
s_drain (agc_conn_t *self)
{
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, self->socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            break;
        }
        //  A reply is one frame; drop any parts beyond it
        int parts = 1;
        bool more = zmq_msg_more (&frame);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            if (zmq_msg_recv (&extra, self->socket, 0) == -1)
                break;
            parts++;
            more = zmq_msg_more (&extra);
            zmq_msg_close (&extra);
        }
        agp_envelope_t env;
        int rc = agp_envelope_decode (&env, zmq_msg_data (&frame),
                                      zmq_msg_size (&frame));
        //  Only an AGP reply is a sign of life: a peer that sends
        //  anything else is not answering
        bool reply = (rc == 0 || rc == -2) && parts == 1
                  && (env.command & AGP_REPLY);
        if (reply)
            self->quiet_from = ag_usecs ();
        const uint8_t *body = agp_msg_body (&frame);
        size_t size = agp_msg_body_size (&frame);
        bool pong = reply && rc == 0 && env.command == (AGP_PING | AGP_REPLY)
                 && env.word == AG_OK;
        if (env.corr && (env.corr == self->ping_corr
                      || env.corr == self->hello_corr)) {
            if (env.corr == self->ping_corr)
                self->ping_corr = 0;
            else
                self->hello_corr = 0;
            if (pong)
                s_instance_seen (self, body, size);
            zmq_msg_close (&frame);
            continue;
        }
        agc_future_t *future = (agc_future_t *)
            ag_idmap_delete (self->pending, env.corr);
        if (!future) {
            //  A late reply to a destroyed or failed future: dropped
            zmq_msg_close (&frame);
            continue;
        }
        if (rc == -2)
            s_resolve (future, AG_BAD_VERSION, strdup ("server speaks"
                       " another protocol version"), NULL);
        else
        if (rc != 0 || parts != 1 || !(env.command & AGP_REPLY))
            s_resolve (future, AG_INTERNAL, strdup ("malformed reply from"
                       " server"), NULL);
        else
        if (env.word == AG_OK) {
            ag_value_t *value = ag_value_decode (body, size);
            if (value)
                s_resolve (future, AG_OK, NULL, value);
            else
                s_resolve (future, AG_INTERNAL, strdup ("server sent a"
                           " result that is not valid msgpack"), NULL);
        }
        else
            s_resolve (future, env.word, s_reason_of (env.word, body, size),
                       NULL);
        if (pong)
            s_instance_seen (self, body, size);
        zmq_msg_close (&frame);
    }
}

static int
s_send (agc_conn_t *self, uint8_t command, uint64_t corr, uint64_t agent,
        uint16_t flags, const void *body, size_t size)
{
    agp_envelope_t env = {
        .command = command, .word = flags, .corr = corr, .agent = agent
    };
    int rc = agp_send (self->socket, NULL, &env, body, size, NULL,
                       ZMQ_DONTWAIT);
    //  The send may have consumed the edge another thread's poll waits
    //  for. With no reader there is nobody to wake: whoever reads next
    //  drains the socket before it polls.
    if (self->reader && self->reader != s_me) {
        int events = 0;
        size_t events_size = sizeof events;
        zmq_getsockopt (self->socket, ZMQ_EVENTS, &events, &events_size);
        if (events & ZMQ_POLLIN)
            s_wake (self->reader);
    }
    return rc;
}

//  Keep the server under watch while replies are awaited. Connection
//  locked; called by the reader. Returns ms until it needs calling again.
static int
s_heartbeat (agc_conn_t *self, int64_t now)
{
    if (ag_idmap_size (self->pending) == 0) {
        self->ping_corr = 0;
        return self->timeout;
    }
    int64_t timeout = (int64_t) self->timeout * 1000;
    int64_t interval = timeout / 4;
    if (now - self->quiet_from >= timeout) {
        char reason [300];
        snprintf (reason, sizeof reason, "no reply from %s for %d ms",
                  self->endpoint, self->timeout);
        s_fail_all (self, AG_UNREACHABLE, reason);
        self->ping_corr = 0;
        return self->timeout;
    }
    if (now - self->quiet_from >= interval
    &&  (!self->ping_corr || now - MAX (self->ping_sent, self->quiet_from)
                             >= interval)) {
        self->ping_corr = ++self->next_corr;
        self->ping_sent = now;
        s_send (self, AGP_PING, self->ping_corr, 0, 0, NULL, 0);
        //  The send may have taken the edge our poll would wait for:
        //  read what is there now
        s_drain (self);
    }
    //  Next: the end of the silence, or the next ping, counted from the
    //  later of the last ping and the last word from the server
    int64_t base = self->ping_corr? MAX (self->ping_sent, self->quiet_from)
                                  : self->quiet_from;
    int64_t next = MIN (self->quiet_from + timeout, base + interval);
    int64_t msecs = (next - now + 999) / 1000;
    return msecs < 1? 1: (int) msecs;
}

//  ---------------------------------------------------------------------
//  Waiting

typedef struct {
    agc_conn_t *conn;
    node_t node;                    //  our entry in conn->waiters
    bool reading;                   //  we are its reader
    bool events;                    //  its monitor has something to read
} slot_t;

static bool
s_is_done (agc_future_t *future)
{
    return atomic_load (&future->done);
}

//  Wait for all (or any) of the futures. Returns 0 or the index found
//  (any), or -1 on timeout.
static int
s_wait (agc_future_t **futures, size_t count, bool any, int msecs)
{
    //  Done already (a pipeline often finds it so): no locks, no calls
    size_t ready = 0;
    for (size_t i = 0; i < count; i++)
        if (!futures [i] || s_is_done (futures [i])) {
            if (any)
                return (int) i;
            ready++;
        }
    if (!any && ready == count)
        return 0;
    agc_waiter_t *me = s_waiter ();
    if (!me)
        return agc_set_error (AG_INTERNAL, "cannot create eventfd");
    int64_t deadline = msecs < 0? INT64_MAX: ag_usecs () + (int64_t) msecs * 1000;

    //  The distinct connections involved
    slot_t local [4];
    slot_t *slots = local;
    size_t slot_count = 0;
    if (count > 4) {
        slots = (slot_t *) calloc (count, sizeof (slot_t));
        if (!slots)
            return agc_set_error (AG_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        if (!futures [i] || s_is_done (futures [i]))
            continue;
        agc_conn_t *conn = futures [i]->conn;
        size_t s;
        for (s = 0; s < slot_count && slots [s].conn != conn; s++)
            ;
        if (s == slot_count) {
            slots [s] = (slot_t) { .conn = conn, .node = { me, NULL } };
            slot_count++;
            pthread_mutex_lock (&conn->lock);
            slots [s].node.next = conn->waiters;
            conn->waiters = &slots [s].node;
            pthread_mutex_unlock (&conn->lock);
        }
    }
    //  Each connection's socket and, with CURVE, its monitor
    struct pollfd local_fds [9];
    struct pollfd *fds = local_fds;
    if (2 * slot_count + 1 > 9)
        fds = (struct pollfd *) calloc (2 * slot_count + 1, sizeof *fds);

    int result = -1;
    while (true) {
        //  Take up reading where nobody reads; read what is there
        int64_t now = ag_usecs ();
        int poll_ms = INT32_MAX;
        for (size_t s = 0; s < slot_count; s++) {
            agc_conn_t *conn = slots [s].conn;
            pthread_mutex_lock (&conn->lock);
            for (size_t i = 0; i < count; i++)
                if (futures [i] && !s_is_done (futures [i])
                &&  futures [i]->conn == conn)
                    futures [i]->waiter = me;
            if (!conn->reader || conn->reader == me) {
                //  Free, or handed to us by the thread that read before
                if (!slots [s].reading) {
                    int64_t interval = (int64_t) conn->timeout * 250;
                    if (now - conn->quiet_from > interval)
                        conn->quiet_from = now - interval;
                }
                conn->reader = me;
                slots [s].reading = true;
            }
            if (slots [s].reading) {
                //  The monitor is read when the poll says so: reading it
                //  costs, and a sync call must not pay for nothing
                if (slots [s].events) {
                    s_monitor_drain (conn);
                    slots [s].events = false;
                }
                s_drain (conn);
                int next = s_heartbeat (conn, now);
                poll_ms = MIN (poll_ms, next);
            }
            pthread_mutex_unlock (&conn->lock);
        }
        size_t done = 0;
        int first = -1;
        for (size_t i = 0; i < count; i++)
            if (!futures [i] || s_is_done (futures [i])) {
                done++;
                if (first < 0)
                    first = (int) i;
            }
        if (any? done > 0: done == count) {
            result = any? first: 0;
            break;
        }
        if (now >= deadline) {
            agc_set_error (AG_TIMEOUT, "timed out after %d ms", msecs);
            break;
        }
        int64_t left = (deadline - now + 999) / 1000;
        if (left < poll_ms)
            poll_ms = (int) left;
        if (poll_ms < 0)
            poll_ms = 0;
        size_t nfds = 0;
        fds [nfds++] = (struct pollfd) { me->fd, POLLIN, 0 };
        for (size_t s = 0; s < slot_count; s++)
            if (slots [s].reading) {
                fds [nfds++] = (struct pollfd) { slots [s].conn->fd, POLLIN, 0 };
                if (slots [s].conn->monitor)
                    fds [nfds++] = (struct pollfd) {
                        slots [s].conn->monitor_fd, POLLIN, 0 };
            }
        if (poll (fds, nfds, poll_ms) > 0) {
            if (fds [0].revents & POLLIN) {
                uint64_t counter;
                ssize_t rc = read (me->fd, &counter, sizeof counter);
                (void) rc;
            }
            //  Which monitors have news, in the order the fds went in
            size_t at = 1;
            for (size_t s = 0; s < slot_count; s++)
                if (slots [s].reading) {
                    at++;
                    if (slots [s].conn->monitor
                    &&  (fds [at++].revents & POLLIN))
                        slots [s].events = true;
                }
        }
    }
    //  Leave: unlist, and hand reading on to another waiter
    for (size_t s = 0; s < slot_count; s++) {
        agc_conn_t *conn = slots [s].conn;
        pthread_mutex_lock (&conn->lock);
        node_t **link = &conn->waiters;
        while (*link && *link != &slots [s].node)
            link = &(*link)->next;
        if (*link)
            *link = slots [s].node.next;
        for (size_t i = 0; i < count; i++)
            if (futures [i] && futures [i]->conn == conn
            &&  futures [i]->waiter == me)
                futures [i]->waiter = NULL;
        if (conn->reader == me) {
            //  Hand reading to another waiter, by name: a thread merely
            //  woken could be on its way out, and the role would be lost
            conn->reader = conn->waiters? conn->waiters->waiter: NULL;
            if (conn->reader)
                s_wake (conn->reader);
        }
        pthread_mutex_unlock (&conn->lock);
    }
    if (slots != local)
        free (slots);
    if (fds != local_fds)
        free (fds);
    return result;
}

int
agc_future_wait (agc_future_t *self, int msecs)
{
    return s_wait (&self, 1, false, msecs);
}

int
agc_future_wait_all (agc_future_t **futures, size_t count, int msecs)
{
    return s_wait (futures, count, false, msecs);
}

int
agc_future_wait_any (agc_future_t **futures, size_t count, int msecs)
{
    if (count == 0)
        return agc_set_error (AG_BAD_REQUEST, "no futures to wait for");
    return s_wait (futures, count, true, msecs);
}

bool
agc_future_ready (agc_future_t *self)
{
    return s_is_done (self);
}

int
agc_future_status (agc_future_t *self)
{
    return s_is_done (self)? self->status: AG_PENDING;
}

const char *
agc_future_reason (agc_future_t *self)
{
    if (!s_is_done (self))
        return "result not ready";
    return self->reason? self->reason: "";
}

const ag_value_t *
agc_future_value (agc_future_t *self)
{
    return s_is_done (self) && self->status == AG_OK? self->value: NULL;
}

ag_value_t *
agc_future_result (agc_future_t *self, int msecs)
{
    if (agc_future_wait (self, msecs))
        return NULL;
    if (self->status != AG_OK) {
        agc_set_error_from (self);
        return NULL;
    }
    ag_value_t *value = self->value;
    self->value = NULL;
    if (!value)
        agc_set_error (AG_GONE, "the value was already taken");
    return value;
}

uint64_t
agc_future_id (agc_future_t *self)
{
    return self->corr;
}

ag_value_t *
agc_future_ref (agc_future_t *self)
{
    if (!self || !self->kept || !self->conn) {
        agc_set_error (AG_BAD_REQUEST, "only the future of an async call"
                       " on a server can stand for its value");
        return NULL;
    }
    //  The reference: where the result is kept, and under which key
    const char *endpoint = self->conn->endpoint;
    agp_ref_t ref = {
        { endpoint, strlen (endpoint) },
        { (const char *) self->conn->identity, sizeof self->conn->identity },
        self->corr
    };
    msgpack_sbuffer outer;
    msgpack_sbuffer_init (&outer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &outer, msgpack_sbuffer_write);
    if (agp_ref_encode (&packer, &ref)) {
        msgpack_sbuffer_destroy (&outer);
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = ag_value_decode (outer.data, outer.size);
    msgpack_sbuffer_destroy (&outer);
    if (!value)
        agc_set_error (AG_INTERNAL, "out of memory");
    return value;
}

void
agc_future_destroy (agc_future_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agc_future_t *self = *self_p;
    *self_p = NULL;
    agc_conn_t *conn = self->conn;
    if (conn) {
        //  Still pending: forget it, so a late reply finds nothing. The
        //  future's reference keeps the connection alive until here.
        if (!s_is_done (self)) {
            pthread_mutex_lock (&conn->lock);
            if (!s_is_done (self))
                ag_idmap_delete (conn->pending, self->corr);
            pthread_mutex_unlock (&conn->lock);
        }
        agc_conn_destroy (&conn);
    }
    ag_value_destroy (&self->value);
    free (self->reason);
    free (self);
}

//  ---------------------------------------------------------------------
//  Connections

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

//  Read the socket's events: a dropped connection, and with CURVE the
//  handshake's outcome. Returns 0, or -1 with the thread's error set.
static int
s_monitor_start (agc_conn_t *self, void *context)
{
    //  The monitor's queue is bounded: an event a full queue drops comes
    //  when no request is pending, for no thread reads it then
    char name [64];
    snprintf (name, sizeof name, "inproc://agc-monitor-%u",
              atomic_fetch_add (&s_monitor_count, 1));
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
    if (self->curve)
        events |= ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor (self->socket, name, events))
        return agc_set_error (AG_INTERNAL, "cannot monitor the socket: %s",
                              zmq_strerror (zmq_errno ()));
    self->monitor = zmq_socket (context, ZMQ_PAIR);
    int zero = 0, queue = 1000;
    zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->monitor, ZMQ_RCVHWM, &queue, sizeof queue);
    if (zmq_connect (self->monitor, name))
        return agc_set_error (AG_INTERNAL, "cannot read the socket's"
                              " monitor: %s", zmq_strerror (zmq_errno ()));
    size_t fd_size = sizeof self->monitor_fd;
    zmq_getsockopt (self->monitor, ZMQ_FD, &self->monitor_fd, &fd_size);
    //  Its descriptor signals only after a read has found nothing
    s_monitor_drain (self);
    return 0;
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
    pthread_mutex_lock (&s_context_lock);
    if (!s_context)
        s_context = zmq_ctx_new ();
    if (s_context)
        s_context_users++;
    void *context = s_context;
    pthread_mutex_unlock (&s_context_lock);
    if (!context) {
        agc_set_error (AG_INTERNAL, "cannot create ZeroMQ context");
        return NULL;
    }
    agc_conn_t *self = (agc_conn_t *) calloc (1, sizeof (agc_conn_t));
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
    ||  s_monitor_start (self, context)) {
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
    pthread_mutex_lock (&self->lock);
    //  Pending futures hold references, so only posted requests can be
    //  left. Those are not lost: the socket lingers to deliver them (a
    //  child server is stopped anyway, with all it holds).
    if (self->orphans && !self->child) {
        int linger = self->timeout;
        zmq_setsockopt (self->socket, ZMQ_LINGER, &linger, sizeof linger);
    }
    s_fail_all (self, AG_CLOSED, "connection closed");
    pthread_mutex_unlock (&self->lock);
    zmq_close (self->socket);
    if (self->monitor)
        zmq_close (self->monitor);
    s_stop_child (self);
    ag_idmap_destroy (&self->pending);
    pthread_mutex_destroy (&self->lock);
    free (self->endpoint);
    free (self);
    //  The last connection ends the context. Terminating may wait for a
    //  lingering socket, so it happens outside the lock: a thread making
    //  a new connection meanwhile gets a new context.
    void *ending = NULL;
    pthread_mutex_lock (&s_context_lock);
    if (--s_context_users == 0) {
        ending = s_context;
        s_context = NULL;
    }
    pthread_mutex_unlock (&s_context_lock);
    if (ending)
        zmq_ctx_term (ending);
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

//  Send a request, pending under a new correlation id. An orphan is one
//  nobody waits for: it holds no reference to the connection, and is
//  freed when answered. A send that fails resolves the future (and sets
//  the thread's error); an orphan's then is NULL, gone. NULL also out of
//  memory.
static agc_future_t *
s_request (agc_conn_t *self, uint8_t command, uint64_t agent, uint16_t flags,
           const void *body, size_t size, bool orphan)
{
    agc_future_t *future = (agc_future_t *) calloc (1, sizeof *future);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    future->conn = self;
    future->command = command;
    future->kept = (flags & AGP_FLAG_KEEP) != 0;
    future->orphan = orphan;
    pthread_mutex_lock (&self->lock);
    s_prepare_send (self);
    future->corr = ++self->next_corr;
    if (ag_idmap_size (self->pending) == 0 && !self->reader)
        self->quiet_from = ag_usecs ();
    if (!self->hello_sent) {
        //  The first request of a connection goes with a ping, whose
        //  reply names the server's instance
        self->hello_sent = true;
        self->hello_corr = ++self->next_corr;
        s_send (self, AGP_PING, self->hello_corr, 0, 0, NULL, 0);
    }
    if (ag_idmap_insert (self->pending, future->corr, future)) {
        pthread_mutex_unlock (&self->lock);
        free (future);
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    //  A future someone waits on keeps its connection open: that thread
    //  must not find the connection freed under it
    if (orphan)
        self->orphans++;
    else
        self->refs++;
    if (s_send (self, command, future->corr, agent, flags, body, size)) {
        int error = zmq_errno ();
        int status = error == EAGAIN? AG_BUSY: AG_UNREACHABLE;
        ag_idmap_delete (self->pending, future->corr);
        char reason [300];
        snprintf (reason, sizeof reason, "cannot send to %s: %s",
                  self->endpoint, error == EAGAIN? "send queue full"
                                                 : zmq_strerror (error));
        agc_set_error (status, "%s", reason);
        s_resolve (future, status, strdup (reason), NULL);
        if (orphan)
            future = NULL;          //  freed as it resolved
    }
    pthread_mutex_unlock (&self->lock);
    return future;
}

agc_future_t *
agc_conn_request (agc_conn_t *self, uint8_t command, uint64_t agent,
                  uint16_t flags, const void *body, size_t size)
{
    return s_request (self, command, agent, flags, body, size, false);
}

int
agc_conn_post (agc_conn_t *self, uint8_t command, uint64_t agent,
               const void *body, size_t size)
{
    return s_request (self, command, agent, 0, body, size, true)? 0: -1;
}

agc_future_t *
agc_conn_roundtrip (agc_conn_t *self, uint8_t command, uint64_t agent,
                    const void *body, size_t size)
{
    agc_future_t *future = agc_conn_request (self, command, agent, 0, body,
                                             size);
    if (future)
        agc_future_wait (future, AGC_FOREVER);
    return future;
}

//  Round trip a body-less management request; returns its value
static ag_value_t *
s_query (agc_conn_t *self, uint8_t command)
{
    agc_future_t *future = agc_conn_roundtrip (self, command, 0, NULL, 0);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, 0);
    agc_future_destroy (&future);
    return value;
}

int64_t
agc_conn_ping (agc_conn_t *self)
{
    int64_t start = ag_usecs ();
    ag_value_t *value = s_query (self, AGP_PING);
    if (!value)
        return -1;
    ag_value_destroy (&value);
    return ag_usecs () - start;
}

ag_value_t *
agc_conn_info (agc_conn_t *self)
{
    return s_query (self, AGP_INFO);
}

ag_value_t *
agc_conn_list_page (agc_conn_t *self, uint64_t after, size_t limit)
{
    ag_value_t *body = ag_value_new ("{s:u, s:u}", "after", after,
                                     "limit", (uint64_t) MAX (limit, 1));
    if (!body) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    agc_future_t *future = agc_conn_roundtrip (self, AGP_LIST, 0,
                                               ag_value_data (body),
                                               ag_value_size (body));
    ag_value_destroy (&body);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, 0);
    if (!value)
        agc_set_error_from (future);
    agc_future_destroy (&future);
    return value;
}

ag_value_t *
agc_conn_list (agc_conn_t *self)
{
    //  The server answers in pages: ask for the next until one comes
    //  short, and join them into one array
    ag_value_t **pages = NULL;
    size_t count = 0, alloc = 0, total = 0;
    uint64_t after = 0;
    bool failed = false;
    while (true) {
        ag_value_t *page = agc_conn_list_page (self, after, AGC_LIST_PAGE);
        if (!page) {
            failed = true;
            break;
        }
        if (count == alloc) {
            alloc = alloc? alloc * 2: 8;
            ag_value_t **more = (ag_value_t **) realloc (pages, alloc
                                                 * sizeof (ag_value_t *));
            if (!more) {
                agc_set_error (AG_INTERNAL, "out of memory");
                ag_value_destroy (&page);
                failed = true;
                break;
            }
            pages = more;
        }
        pages [count++] = page;
        const msgpack_object *items = ag_value_object (page);
        size_t size = items->type == MSGPACK_OBJECT_ARRAY
                    ? items->via.array.size: 0;
        total += size;
        if (size < AGC_LIST_PAGE)
            break;
        after = (uint64_t) ag_obj_int (ag_obj_get (&items->via.array.ptr
                                                   [size - 1], "id"), 0);
        if (after == 0)
            break;                  //  a page without ids: the last one
    }
    ag_value_t *list = NULL;
    if (!failed) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_array (&packer, total);
        for (size_t p = 0; p < count; p++) {
            const msgpack_object *items = ag_value_object (pages [p]);
            for (uint32_t i = 0; items->type == MSGPACK_OBJECT_ARRAY
                                 && i < items->via.array.size; i++)
                msgpack_pack_object (&packer, items->via.array.ptr [i]);
        }
        list = ag_value_decode (buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
        if (!list)
            agc_set_error (AG_INTERNAL, "out of memory");
    }
    for (size_t p = 0; p < count; p++)
        ag_value_destroy (&pages [p]);
    free (pages);
    return list;
}
