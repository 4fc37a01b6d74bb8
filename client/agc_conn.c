/*  =========================================================================
    agc_conn - requests on a connection to an agent server, and waiting

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  One DEALER socket per server. Requests carry a fresh correlation id;
//  the reply resolves the future filed under it, in any order.
//
//  Replies are read by no thread of ours. A thread that waits becomes
//  the connection's reader if it has none: it polls the socket's file
//  descriptor and drains every reply that arrives, resolving futures and
//  waking the threads that wait for them through their eventfd. When its
//  own future is done it hands the reader role to another waiting
//  thread. A sync call is thus sent and read by the same thread, with no
//  hop.
//
//  The socket is used only under the connection's lock. ZMQ_FD is edge
//  triggered and any send may consume its readiness, so after each send
//  the sender checks ZMQ_EVENTS and, if a reply is waiting, wakes the
//  reader. While futures are pending and the server is silent, the
//  reader pings it; a server silent for the timeout fails them all.
//
//  The socket's events (a dropped connection, a CURVE key refused) are
//  read by the watcher (agc_watch.c), which fails what is pending with
//  them; after a refusal the next request connects again, so a key
//  allowed later on the server gets in without a new connection object.
//  @end

#include "agc.h"
#include <poll.h>
#include <sys/eventfd.h>

//  ---------------------------------------------------------------------
//  Process-wide: each thread's waiter and error

static pthread_key_t s_waiter_key;
static pthread_once_t s_waiter_once = PTHREAD_ONCE_INIT;
static __thread agc_waiter_t *s_me;
static __thread int s_status = AG_OK;
static __thread char s_reason [512];

struct _agc_waiter_t {
    int fd;                         //  eventfd: written to wake this thread
};

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

void
agc_conn_fail_all (agc_conn_t *self, int status, const char *reason)
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
        agc_conn_fail_all (self, AG_UNREACHABLE, reason);
    }
    memcpy (self->instance, seen, sizeof seen);
}

//  Before a request goes out: after a refusal of our CURVE key (the
//  watcher saw it), connect again, so the request is a new attempt.
//  Connection locked.
static void
s_prepare_send (agc_conn_t *self)
{
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
        agc_conn_fail_all (self, AG_UNREACHABLE, reason);
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
    agc_node_t node;                //  our entry in conn->waiters
    bool reading;                   //  we are its reader
} slot_t;

static bool
s_is_done (agc_future_t *future)
{
    return atomic_load (&future->done);
}

bool
agc_future_give_up (agc_future_t *future, int status, const char *what)
{
    agc_conn_t *conn = future->conn;
    bool failed = false;
    pthread_mutex_lock (&conn->lock);
    if (!s_is_done (future)
    &&  ag_idmap_lookup (conn->pending, future->corr) == future) {
        ag_idmap_delete (conn->pending, future->corr);
        char reason [128];
        snprintf (reason, sizeof reason, "call %" PRIu64 " %s",
                  future->corr, what);
        s_resolve (future, status, strdup (reason), NULL);
        failed = true;
    }
    pthread_mutex_unlock (&conn->lock);
    return failed;
}

bool
agc_future_expire (agc_future_t *future, int64_t now)
{
    if (s_is_done (future))
        return true;
    if (!future->deadline || now < future->deadline)
        return false;
    agc_future_give_up (future, AG_DEADLINE, "did not finish by its deadline");
    return s_is_done (future);
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

    //  The distinct connections involved; to poll, our eventfd and the
    //  socket of each connection we read
    slot_t local [4];
    slot_t *slots = local;
    struct pollfd local_fds [5];
    struct pollfd *fds = local_fds;
    size_t slot_count = 0;
    if (count > 4) {
        slots = (slot_t *) calloc (count, sizeof (slot_t));
        fds = (struct pollfd *) calloc (count + 1, sizeof *fds);
        if (!slots || !fds) {
            free (slots);
            free (fds);
            return agc_set_error (AG_INTERNAL, "out of memory");
        }
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
                s_drain (conn);
                int next = s_heartbeat (conn, now);
                poll_ms = MIN (poll_ms, next);
            }
            pthread_mutex_unlock (&conn->lock);
        }
        size_t done = 0;
        int first = -1;
        for (size_t i = 0; i < count; i++)
            if (!futures [i] || agc_future_expire (futures [i], now)) {
                done++;
                if (first < 0)
                    first = (int) i;
            }
            else
            if (futures [i]->deadline) {
                int64_t due = (futures [i]->deadline - now + 999) / 1000;
                if (due < poll_ms)
                    poll_ms = (int) due;
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
            if (slots [s].reading)
                fds [nfds++] = (struct pollfd) { slots [s].conn->fd, POLLIN, 0 };
        if (poll (fds, nfds, poll_ms) > 0 && (fds [0].revents & POLLIN)) {
            uint64_t counter;
            ssize_t rc = read (me->fd, &counter, sizeof counter);
            (void) rc;
        }
    }
    //  Leave: unlist, and hand reading on to another waiter
    for (size_t s = 0; s < slot_count; s++) {
        agc_conn_t *conn = slots [s].conn;
        pthread_mutex_lock (&conn->lock);
        agc_node_t **link = &conn->waiters;
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

//  ---------------------------------------------------------------------
//  Requests

//  Send a request, pending under a new correlation id. An orphan is one
//  nobody waits for: it holds no reference to the connection, and is
//  freed when answered. A send that fails resolves the future (and sets
//  the thread's error); an orphan's then is NULL, gone. NULL also out of
//  memory.
static agc_future_t *
s_request (agc_conn_t *self, uint8_t command, uint64_t agent, uint16_t flags,
           const void *body, size_t size, bool orphan, int64_t deadline)
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
    future->agent = agent;
    future->deadline = deadline;
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
    return s_request (self, command, agent, flags, body, size, false, 0);
}

agc_future_t *
agc_conn_request_by (agc_conn_t *self, uint8_t command, uint64_t agent,
                     uint16_t flags, const void *body, size_t size,
                     int64_t deadline)
{
    return s_request (self, command, agent, flags, body, size, false,
                      deadline);
}

int
agc_conn_post (agc_conn_t *self, uint8_t command, uint64_t agent,
               const void *body, size_t size)
{
    return s_request (self, command, agent, 0, body, size, true, 0)? 0: -1;
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
