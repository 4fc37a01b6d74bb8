/*  =========================================================================
    attack_fake - fake servers for references to point at

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The servers a future reference may send agentd to, each a thread
//  until told to stop (or until its time is up): a TCP tarpit that
//  accepts and drips a junk byte a second, and ZeroMQ ROUTERs that answer
//  nothing, junk, or each FETCH with a 512 MiB value. So big a frame is
//  one buffer, sent again only once ZeroMQ has let go of it.
//  @end

#include "attack.h"

//  ---------------------------------------------------------------------
//  Fake servers, each a thread until told to stop

static void
s_bigframe_free (void *data, void *hint)
{
    bigframe_t *self = (bigframe_t *) hint;
    uint64_t one = 1;
    if (write (self->released, &one, sizeof one) != sizeof one)
        fprintf (stderr, "attacktest: cannot signal a frame released\n");
}

bigframe_t *
at_bigframe_new (size_t size, const void *body_head, size_t head_size)
{
    bigframe_t *self = (bigframe_t *) calloc (1, sizeof (bigframe_t));
    if (!self)
        return NULL;
    //  Pages never written stay unallocated: the sender's RSS stays small
    self->data = (uint8_t *) calloc (1, size);
    self->size = size;
    self->released = eventfd (0, EFD_CLOEXEC);
    if (!self->data || self->released < 0) {
        free (self->data);
        free (self);
        return NULL;
    }
    memcpy (self->data + AGP_ENVELOPE_SIZE, body_head, head_size);
    return self;
}

void
at_bigframe_destroy (bigframe_t **self_p)
{
    bigframe_t *self = *self_p;
    if (!self)
        return;
    close (self->released);
    free (self->data);
    free (self);
    *self_p = NULL;
}

int
at_bigframe_wait (bigframe_t *self, int msecs)
{
    if (!self->in_use)
        return 0;
    struct pollfd item = { self->released, POLLIN, 0 };
    if (poll (&item, 1, msecs) <= 0)
        return -1;
    uint64_t count;
    if (read (self->released, &count, sizeof count) != sizeof count)
        return -1;
    self->in_use = false;
    return 0;
}

int
at_bigframe_send (bigframe_t *self, void *socket, const void *routing,
                  size_t routing_size, const agp_envelope_t *env)
{
    agp_envelope_encode (env, self->data);
    zmq_msg_t msg;
    if (zmq_msg_init_data (&msg, self->data, self->size, s_bigframe_free,
                           self))
        return -1;
    self->in_use = true;
    if ((routing && zmq_send (socket, routing, routing_size, ZMQ_SNDMORE)
                    == -1)
    ||  zmq_msg_send (&msg, socket, 0) == -1) {
        zmq_msg_close (&msg);       //  let go at once
        return -1;
    }
    return 0;
}

#define FAKE_PEERS 4096

static void *
s_tcp_tarpit (fake_t *self)
{
    int clients [FAKE_PEERS];
    size_t count = 0;
    int64_t next_drip = ag_usecs () + 1000000;
    int64_t until = at_thread_until ();
    while (ag_usecs () < until) {
        struct pollfd items [2] = {
            { self->stop [0], POLLIN, 0 }, { self->listener, POLLIN, 0 }
        };
        poll (items, 2, at_left_ms (next_drip));
        if (items [0].revents)
            break;
        if (items [1].revents & POLLIN)
            while (count < FAKE_PEERS) {
                int fd = accept4 (self->listener, NULL, NULL,
                                  SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                clients [count++] = fd;
                self->connections++;
            }
        if (ag_usecs () >= next_drip) {
            //  One junk byte to each; what they send is left unread
            for (size_t i = 0; i < count; ) {
                if (send (clients [i], "J", 1, MSG_NOSIGNAL | MSG_DONTWAIT)
                    == 1 || errno == EAGAIN) {
                    self->sent++;
                    i++;
                }
                else {
                    close (clients [i]);
                    clients [i] = clients [--count];
                }
            }
            next_drip += 1000000;
        }
    }
    for (size_t i = 0; i < count; i++)
        close (clients [i]);
    return NULL;
}

//  Junk that is not AGP: what a confused or hostile peer might send
static const char *s_junk [] = {
    "GET / HTTP/1.1\r\n\r\n", "AG", "\xff\x00\x00junk", "not an envelope at"
    " all, just text that goes on", NULL
};

static void *
s_router_fake (fake_t *self)
{
    typedef struct {
        uint8_t id [256];
        size_t size;
    } peer_t;
    peer_t *peers = (peer_t *) calloc (FAKE_PEERS, sizeof (peer_t));
    size_t count = 0;
    int64_t next_junk = ag_usecs () + 100000;
    size_t junk = 0;
    int64_t until = at_thread_until ();
    while (peers && ag_usecs () < until) {
        zmq_pollitem_t items [2] = {
            { NULL, self->stop [0], ZMQ_POLLIN, 0 },
            { self->router, 0, ZMQ_POLLIN, 0 }
        };
        int wait = self->kind == FAKE_ROUTER_JUNK? at_left_ms (next_junk)
                 : self->huge && self->huge->in_use? 50: 1000;
        zmq_poll (items, 2, wait);
        if (items [0].revents)
            break;
        //  Each message: the peer's routing id, then what it sent
        for (int n = 0; n < 1000; n++) {
            uint8_t id [256];
            int id_size = zmq_recv (self->router, id, sizeof id,
                                    ZMQ_DONTWAIT);
            if (id_size < 0)
                break;
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            bool more = true;
            size_t parts = 0;
            while (more && zmq_msg_recv (&frame, self->router, 0) >= 0) {
                more = zmq_msg_more (&frame);
                if (more)
                    zmq_msg_close (&frame), zmq_msg_init (&frame);
                parts++;
            }
            self->messages++;
            size_t p;
            for (p = 0; p < count; p++)
                if (peers [p].size == (size_t) id_size
                &&  memcmp (peers [p].id, id, (size_t) id_size) == 0)
                    break;
            if (p == count && count < FAKE_PEERS) {
                memcpy (peers [count].id, id, (size_t) id_size);
                peers [count++].size = (size_t) id_size;
                self->connections++;
            }
            agp_envelope_t env;
            if (self->kind == FAKE_ROUTER_HUGE && parts == 1
            &&  agp_envelope_decode (&env, zmq_msg_data (&frame),
                                     zmq_msg_size (&frame)) == 0) {
                agp_envelope_t reply = {
                    .command = (uint8_t) (env.command | AGP_REPLY),
                    .word = AG_OK, .corr = env.corr
                };
                if (env.command == AGP_FETCH) {
                    self->fetches++;
                    //  Once per FETCH, if the last send is done with
                    if (at_bigframe_wait (self->huge, 0) == 0
                    &&  at_bigframe_send (self->huge, self->router, id,
                                          (size_t) id_size, &reply) == 0)
                        self->sent++;
                    else
                        self->skipped++;
                }
                else {
                    //  PING and the rest: answered, empty
                    if (env.command != AGP_PING)
                        reply.word = AG_BAD_REQUEST;
                    zmq_send (self->router, id, (size_t) id_size,
                              ZMQ_SNDMORE | ZMQ_DONTWAIT);
                    agp_send (self->router, NULL, &reply, NULL, 0, NULL,
                              ZMQ_DONTWAIT);
                }
            }
            zmq_msg_close (&frame);
        }
        if (self->kind == FAKE_ROUTER_JUNK && ag_usecs () >= next_junk) {
            for (size_t p = 0; p < count; p++) {
                const char *text = s_junk [junk++ % 4];
                if (zmq_send (self->router, peers [p].id, peers [p].size,
                              ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
                    continue;
                zmq_send (self->router, text, strlen (text), ZMQ_DONTWAIT);
                self->sent++;
            }
            next_junk = ag_usecs () + 100000;
        }
        if (self->huge && self->huge->in_use)
            at_bigframe_wait (self->huge, 0);
    }
    free (peers);
    return NULL;
}

static void *
s_fake_run (void *arg)
{
    fake_t *self = (fake_t *) arg;
    return self->kind == FAKE_TCP_TARPIT? s_tcp_tarpit (self)
                                        : s_router_fake (self);
}

void
at_fake_destroy (void *arg)
{
    fake_t *self = (fake_t *) arg;
    at_undefer (self);
    if (write (self->stop [1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    close (self->stop [0]);
    close (self->stop [1]);
    if (self->listener >= 0)
        close (self->listener);
    if (self->router)
        zmq_close (self->router);
    if (self->huge) {
        //  ZeroMQ may still hold it on the way out
        at_bigframe_wait (self->huge, 10000);
        at_bigframe_destroy (&self->huge);
    }
    free (self);
}

int
at_tcp_listener (char *endpoint, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (bind (fd, (struct sockaddr *) &address, sizeof address)
    ||  listen (fd, 4096)
    ||  getsockname (fd, (struct sockaddr *) &address, &length)) {
        close (fd);
        return -1;
    }
    snprintf (endpoint, size, "tcp://127.0.0.1:%d", ntohs (address.sin_port));
    return fd;
}

fake_t *
at_fake_start (fake_kind_t kind)
{
    fake_t *self = (fake_t *) calloc (1, sizeof (fake_t));
    if (!self)
        return NULL;
    self->kind = kind;
    self->listener = -1;
    if (pipe2 (self->stop, O_CLOEXEC)) {
        free (self);
        return NULL;
    }
    int rc = 0;
    if (kind == FAKE_TCP_TARPIT) {
        self->listener = at_tcp_listener (self->endpoint,
                                          sizeof self->endpoint);
        rc = self->listener < 0? -1: 0;
    }
    else {
        self->router = zmq_socket (at_context, ZMQ_ROUTER);
        int zero = 0;
        zmq_setsockopt (self->router, ZMQ_LINGER, &zero, sizeof zero);
        size_t size = sizeof self->endpoint;
        if (zmq_bind (self->router, "tcp://127.0.0.1:*")
        ||  zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, self->endpoint,
                            &size))
            rc = -1;
    }
    if (kind == FAKE_ROUTER_HUGE) {
        //  200, and a msgpack bin 32 of 512 MiB
        size_t value = 512 * (size_t) MIB;
        uint8_t head [5] = { 0xc6, (uint8_t) (value >> 24),
                             (uint8_t) (value >> 16), (uint8_t) (value >> 8),
                             (uint8_t) value };
        self->huge = at_bigframe_new (AGP_ENVELOPE_SIZE + sizeof head + value,
                                      head, sizeof head);
        if (!self->huge)
            rc = -1;
    }
    if (rc == 0 && pthread_create (&self->thread, NULL, s_fake_run, self))
        rc = -1;
    if (rc) {
        close (self->stop [0]);
        close (self->stop [1]);
        if (self->listener >= 0)
            close (self->listener);
        if (self->router)
            zmq_close (self->router);
        at_bigframe_destroy (&self->huge);
        free (self);
        return NULL;
    }
    at_defer (at_fake_destroy, self);
    return self;
}
