/*  =========================================================================
    agc_watch - every connection's socket events, read by one thread

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A connection reads its socket's monitor to learn of a dropped
//  connection (what was pending there fails at once: the server drops
//  the replies due to a connection that has gone, so none will come)
//  and, with CURVE, of the handshake's outcome (ZeroMQ gives no error on
//  the socket when the server refuses the client's key, and no longer
//  reconnects).
//
//  libzmq's I/O thread writes those events with a blocking send. A
//  monitor that nobody reads would, once its queue filled, stop that
//  thread, and with it every connection of the process; so would one
//  event written after the monitor's reader had closed. So one thread
//  per ZeroMQ context, the watcher, reads every monitor as its events
//  come, also while no request is pending and no thread waits; and a
//  connection stops its monitor before it closes its socket.
//
//  The watcher polls the monitors of the connections it was given and
//  an eventfd that tells it the set changed. A connection leaving waits
//  until the watcher polls a set without it: after that, the watcher
//  never touches it again.
//  @end

#include "agc.h"
#include <signal.h>
#include <sys/eventfd.h>

struct _agc_watcher_t {
    pthread_t thread;
    int wake_fd;                    //  eventfd: the set changed, or stop
    pthread_mutex_t lock;           //  guards everything below
    pthread_cond_t moved;           //  the watcher took a new set
    agc_conn_t **conns;             //  connections watched
    size_t count;
    size_t alloc;
    uint64_t changes;               //  changes made to the set
    uint64_t taken;                 //  changes the watcher polls with
    bool stopping;
};

//  Monitors are told apart by a number
static atomic_uint s_monitor_count;

//  Act on the events waiting on a connection's monitor. Connection
//  locked.
static void
s_read_events (agc_conn_t *self)
{
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
                agc_conn_fail_all (self, AG_UNREACHABLE, reason);
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
            agc_conn_fail_all (self, AG_DENIED, reason);
        }
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            snprintf (reason, sizeof reason, "CURVE handshake with %s"
                      " failed: %s", self->endpoint,
                      value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                      ? "the server does not use CURVE"
                      : "protocol error");
            agc_conn_fail_all (self, AG_UNREACHABLE, reason);
        }
    }
}

static void
s_wake (agc_watcher_t *self)
{
    uint64_t one = 1;
    ssize_t rc = write (self->wake_fd, &one, sizeof one);
    (void) rc;                      //  a full counter wakes it anyway
}

static void *
s_watch (void *arg)
{
    agc_watcher_t *self = (agc_watcher_t *) arg;
    zmq_pollitem_t *items = NULL;
    agc_conn_t **conns = NULL;
    size_t alloc = 0;
    pthread_mutex_lock (&self->lock);
    while (!self->stopping) {
        //  Take the set as it is now
        size_t count = self->count;
        if (count > alloc) {
            size_t more = self->alloc;
            zmq_pollitem_t *new_items = (zmq_pollitem_t *)
                realloc (items, (more + 1) * sizeof *items);
            if (new_items)
                items = new_items;
            agc_conn_t **new_conns = (agc_conn_t **)
                realloc (conns, more * sizeof *conns);
            if (new_conns)
                conns = new_conns;
            if (new_items && new_conns)
                alloc = more;
        }
        //  Out of memory: poll none, and try again soon
        zmq_pollitem_t wake_only;
        zmq_pollitem_t *polled = items? items: &wake_only;
        if (count > alloc)
            count = 0;
        polled [0] = (zmq_pollitem_t) { NULL, self->wake_fd, ZMQ_POLLIN, 0 };
        for (size_t i = 0; i < count; i++) {
            conns [i] = self->conns [i];
            polled [i + 1] = (zmq_pollitem_t) {
                conns [i]->monitor, 0, ZMQ_POLLIN, 0 };
        }
        long timeout = count < self->count? 100: -1;
        self->taken = self->changes;
        pthread_cond_broadcast (&self->moved);
        pthread_mutex_unlock (&self->lock);

        if (zmq_poll (polled, (int) count + 1, timeout) > 0) {
            if (polled [0].revents & ZMQ_POLLIN) {
                uint64_t counter;
                ssize_t rc = read (self->wake_fd, &counter, sizeof counter);
                (void) rc;
            }
            //  A connection that asks to leave meanwhile waits for the
            //  next set: until then it is here to be read
            for (size_t i = 0; i < count; i++)
                if (polled [i + 1].revents & ZMQ_POLLIN) {
                    pthread_mutex_lock (&conns [i]->lock);
                    s_read_events (conns [i]);
                    pthread_mutex_unlock (&conns [i]->lock);
                }
        }
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    free (items);
    free (conns);
    return NULL;
}

agc_watcher_t *
agc_watcher_new (void)
{
    agc_watcher_t *self = (agc_watcher_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->wake_fd < 0) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->moved, NULL);
    //  The watcher takes no signals: they are the application's
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    int rc = pthread_create (&self->thread, NULL, s_watch, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy (&self->moved);
        pthread_mutex_destroy (&self->lock);
        close (self->wake_fd);
        free (self);
        return NULL;
    }
    return self;
}

void
agc_watcher_destroy (agc_watcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agc_watcher_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    s_wake (self);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_cond_destroy (&self->moved);
    pthread_mutex_destroy (&self->lock);
    close (self->wake_fd);
    free (self->conns);
    free (self);
}

int
agc_watcher_add (agc_watcher_t *self, agc_conn_t *conn, void *context)
{
    char name [64];
    snprintf (name, sizeof name, "inproc://agc-monitor-%u",
              atomic_fetch_add (&s_monitor_count, 1));
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
    if (conn->curve)
        events |= ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor (conn->socket, name, events))
        return agc_set_error (AG_INTERNAL, "cannot monitor the socket: %s",
                              zmq_strerror (zmq_errno ()));
    conn->monitor = zmq_socket (context, ZMQ_PAIR);
    int zero = 0;
    if (conn->monitor)
        zmq_setsockopt (conn->monitor, ZMQ_LINGER, &zero, sizeof zero);
    if (!conn->monitor || zmq_connect (conn->monitor, name)) {
        agc_set_error (AG_INTERNAL, "cannot read the socket's monitor: %s",
                       zmq_strerror (zmq_errno ()));
        zmq_socket_monitor (conn->socket, NULL, 0);
        if (conn->monitor)
            zmq_close (conn->monitor);
        conn->monitor = NULL;
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    if (self->count == self->alloc) {
        size_t alloc = self->alloc? self->alloc * 2: 16;
        agc_conn_t **conns = (agc_conn_t **)
            realloc (self->conns, alloc * sizeof *conns);
        if (!conns) {
            pthread_mutex_unlock (&self->lock);
            agc_set_error (AG_INTERNAL, "out of memory");
            zmq_socket_monitor (conn->socket, NULL, 0);
            zmq_close (conn->monitor);
            conn->monitor = NULL;
            return -1;
        }
        self->conns = conns;
        self->alloc = alloc;
    }
    //  From here on the monitor belongs to the watcher's thread (the
    //  lock hands it over)
    self->conns [self->count++] = conn;
    self->changes++;
    s_wake (self);
    pthread_mutex_unlock (&self->lock);
    conn->watcher = self;
    return 0;
}

void
agc_watcher_remove (agc_watcher_t *self, agc_conn_t *conn)
{
    if (!conn->monitor)
        return;
    //  No more events, so none is written after the monitor closes (we
    //  do not ask for the stop's own). The watcher reads until then.
    zmq_socket_monitor (conn->socket, NULL, 0);
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < self->count; i++)
        if (self->conns [i] == conn) {
            self->conns [i] = self->conns [--self->count];
            break;
        }
    uint64_t change = ++self->changes;
    s_wake (self);
    while (self->taken < change)
        pthread_cond_wait (&self->moved, &self->lock);
    pthread_mutex_unlock (&self->lock);
    zmq_close (conn->monitor);
    conn->monitor = NULL;
    conn->watcher = NULL;
}
