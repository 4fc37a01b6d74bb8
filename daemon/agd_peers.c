/*  =========================================================================
    agd_peers - the broker's connections to other servers, for FETCH

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A call's arguments may name results kept on other servers. The
//  broker fetches them itself, as a client of those servers, without a
//  thread of its own: each peer is a DEALER socket its loop polls, and a
//  FETCH is a request on it whose reply (the kept result, or the error
//  it ended with) is delivered to the job that waits for it.
//
//  Every peer is hostile until it answers as AGP says: only a well-formed
//  reply counts as a sign of life (a peer that sends junk, or accepts the
//  connection and says nothing, is not answering), a reply larger than
//  server/max_message does not get in (libzmq drops the connection, and
//  the fetches on it fail), and a peer silent for the liveness timeout,
//  or whose instance id changes (it restarted and lost what it was
//  asked), fails every fetch pending on it. None of this tells the
//  client more than "unreachable": the reasons hold no system error.
//
//  At most MAX_PEERS connections are kept, the longest unused closed
//  first; a peer with fetches pending is never closed for another.
//  Connections use the CURVE keys of the server's environment
//  (AGENTD_SERVER_KEY, AGENTD_CLIENT_CERT), if set.
//  @end

#include "agd.h"
#include "../common/ag_cert.h"

#define MAX_PEERS       16          //  connections kept at once

typedef struct {
    agd_job_t *job;                 //  waiting for the value
    uint32_t index;                 //  which of its references
} request_t;

typedef struct {
    char endpoint [AGP_MAX_NAME + 1];
    void *socket;                   //  DEALER
    void *monitor;                  //  PAIR: the socket's drops
    ag_idmap_t *pending;            //  FETCH corr -> request_t
    uint64_t next_corr;
    int64_t quiet_from;             //  last sign of life, or when
                                    //  fetches began to wait
    uint64_t ping_corr;             //  outstanding ping, or 0
    int64_t ping_sent;
    char instance [17];             //  the peer's instance id, or ""
    int64_t used;                   //  ag_usecs () of the last fetch
} peer_t;

struct _agd_peers_t {
    peer_t *peers [MAX_PEERS];
    size_t count;
    size_t max_message;             //  largest value accepted
    int timeout_ms;                 //  silence that means unreachable
    bool curve;                     //  keys below are set
    ag_cert_t server;               //  AGENTD_SERVER_KEY
    ag_cert_t client;               //  AGENTD_CLIENT_CERT
    uint32_t next_monitor;          //  monitors are told apart by number
};

agd_peers_t *
agd_peers_new (size_t max_message, int timeout_ms)
{
    agd_peers_t *self = (agd_peers_t *) zmalloc (sizeof (agd_peers_t));
    self->max_message = max_message;
    self->timeout_ms = MAX (timeout_ms, 10);
    const char *server = getenv ("AGENTD_SERVER_KEY");
    const char *client = getenv ("AGENTD_CLIENT_CERT");
    if (server && *server && client && *client) {
        char error [512];
        if (ag_cert_load_public (&self->server, server, error, sizeof error)
        ||  ag_cert_load_secret (&self->client, client, error,
                                 sizeof error))
            zsys_warning ("futures from servers with CURVE cannot be"
                          " fetched: %s", error);
        else
            self->curve = true;
    }
    return self;
}

static void
s_peer_destroy (peer_t **peer_p)
{
    peer_t *peer = *peer_p;
    size_t cursor = 0;
    request_t *request;
    while ((request = (request_t *) ag_idmap_next (peer->pending, &cursor,
                                                   NULL)))
        free (request);
    ag_idmap_destroy (&peer->pending);
    if (peer->monitor) {
        zmq_socket_monitor (peer->socket, NULL, 0);
        zmq_close (peer->monitor);
    }
    zmq_close (peer->socket);
    free (peer);
    *peer_p = NULL;
}

void
agd_peers_destroy (agd_peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_peers_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        s_peer_destroy (&self->peers [i]);
    ag_cert_wipe (&self->server);
    ag_cert_wipe (&self->client);
    free (self);
    *self_p = NULL;
}

//  Fail every fetch pending on a peer
static void
s_fail_all (peer_t *peer, const char *reason, agd_store_deliver_fn *deliver,
            void *arg)
{
    while (ag_idmap_size (peer->pending)) {
        size_t cursor = 0;
        uint64_t corr;
        request_t *request = (request_t *) ag_idmap_next (peer->pending,
                                                          &cursor, &corr);
        ag_idmap_delete (peer->pending, corr);
        zmq_msg_t frame;
        if (agd_frame_reason (&frame, reason))
            zmq_msg_init (&frame);
        deliver (arg, request->job, request->index, AG_UNREACHABLE, &frame);
        zmq_msg_close (&frame);
        free (request);
    }
    peer->ping_corr = 0;
}

static peer_t *
s_peer_new (agd_peers_t *self, const char *endpoint)
{
    peer_t *peer = (peer_t *) zmalloc (sizeof (peer_t));
    snprintf (peer->endpoint, sizeof peer->endpoint, "%s", endpoint);
    peer->pending = ag_idmap_new ();
    void *context = zsys_init ();
    peer->socket = zmq_socket (context, ZMQ_DEALER);
    if (!peer->socket) {
        ag_idmap_destroy (&peer->pending);
        free (peer);
        return NULL;
    }
    int zero = 0;
    zmq_setsockopt (peer->socket, ZMQ_LINGER, &zero, sizeof zero);
    //  A value larger than we accept never gets in: libzmq drops the
    //  connection rather than take it
    int64_t cap = (int64_t) self->max_message + AGP_ENVELOPE_SIZE;
    zmq_setsockopt (peer->socket, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    if (self->curve) {
        zmq_setsockopt (peer->socket, ZMQ_CURVE_SERVERKEY,
                        self->server.public_key, 40);
        zmq_setsockopt (peer->socket, ZMQ_CURVE_PUBLICKEY,
                        self->client.public_key, 40);
        zmq_setsockopt (peer->socket, ZMQ_CURVE_SECRETKEY,
                        self->client.secret_key, 40);
    }
    char name [64];
    snprintf (name, sizeof name, "inproc://agd-peer-%p-%u", (void *) self,
              self->next_monitor++);
    if (zmq_socket_monitor (peer->socket, name, ZMQ_EVENT_DISCONNECTED) == 0) {
        peer->monitor = zmq_socket (context, ZMQ_PAIR);
        if (peer->monitor && zmq_connect (peer->monitor, name)) {
            zmq_close (peer->monitor);
            peer->monitor = NULL;
        }
    }
    if (zmq_connect (peer->socket, endpoint)) {
        s_peer_destroy (&peer);
        return NULL;
    }
    return peer;
}

//  The peer for an endpoint, connected if new; NULL if none can be had
static peer_t *
s_peer (agd_peers_t *self, const char *endpoint, int64_t now)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->peers [i]->endpoint, endpoint))
            return self->peers [i];
    if (self->count == MAX_PEERS) {
        //  Full: the longest unused that waits for nothing goes
        size_t oldest = MAX_PEERS;
        for (size_t i = 0; i < self->count; i++)
            if (ag_idmap_size (self->peers [i]->pending) == 0
            &&  (oldest == MAX_PEERS
              || self->peers [i]->used < self->peers [oldest]->used))
                oldest = i;
        if (oldest == MAX_PEERS)
            return NULL;
        s_peer_destroy (&self->peers [oldest]);
        self->peers [oldest] = self->peers [--self->count];
    }
    peer_t *peer = s_peer_new (self, endpoint);
    if (peer)
        self->peers [self->count++] = peer;
    return peer;
}

int
agd_peers_fetch (agd_peers_t *self, agd_ref_t *ref, agd_job_t *job,
                 uint32_t index, int64_t now)
{
    peer_t *peer = s_peer (self, ref->endpoint, now);
    if (!peer)
        return -1;
    request_t *request = (request_t *) malloc (sizeof (request_t));
    if (!request)
        return -1;
    request->job = job;
    request->index = index;
    uint64_t corr = ++peer->next_corr;
    if (ag_idmap_insert (peer->pending, corr, request)) {
        free (request);
        return -1;
    }
    //  Silence counts from when something is awaited
    if (ag_idmap_size (peer->pending) == 1)
        peer->quiet_from = now;
    peer->used = now;
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, 2);
    msgpack_pack_bin_with_body (&packer, ref->owner, ref->owner_size);
    msgpack_pack_uint64 (&packer, ref->corr);
    agp_envelope_t env = { .command = AGP_FETCH, .corr = corr };
    int rc = agp_send (peer->socket, NULL, &env, body.data, body.size, NULL,
                       ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy (&body);
    if (rc) {
        ag_idmap_delete (peer->pending, corr);
        free (request);
        return -1;
    }
    ref->peer = peer;
    ref->fetch = corr;
    return 0;
}

void
agd_peers_cancel (agd_peers_t *self, agd_ref_t *ref)
{
    peer_t *peer = (peer_t *) ref->peer;
    if (!peer)
        return;
    for (size_t i = 0; i < self->count; i++)
        if (self->peers [i] == peer) {
            free (ag_idmap_delete (peer->pending, ref->fetch));
            break;
        }
    ref->peer = NULL;
}

//  A PING reply names the peer's instance: another than before means it
//  restarted, and what it was asked died with the one before
static void
s_pong (peer_t *peer, zmq_msg_t *frame, agd_store_deliver_fn *deliver,
        void *arg)
{
    ag_value_t *value = ag_value_decode (agp_msg_body (frame),
                                         agp_msg_body_size (frame));
    const msgpack_object *id = ag_obj_get (ag_value_object (value),
                                           "instance");
    if (id && id->type == MSGPACK_OBJECT_STR && id->via.str.size > 0
    &&  id->via.str.size < sizeof peer->instance) {
        char seen [sizeof peer->instance];
        memcpy (seen, id->via.str.ptr, id->via.str.size);
        seen [id->via.str.size] = 0;
        if (peer->instance [0] && !streq (seen, peer->instance))
            s_fail_all (peer, "unreachable: the server restarted", deliver,
                        arg);
        memcpy (peer->instance, seen, sizeof seen);
    }
    ag_value_destroy (&value);
}

//  Read what a peer sent; only well-formed replies count
static void
s_peer_recv (peer_t *peer, int64_t now, agd_store_deliver_fn *deliver,
             void *arg)
{
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, peer->socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            break;
        }
        bool more = zmq_msg_more (&frame);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            if (zmq_msg_recv (&extra, peer->socket, 0) == -1)
                break;
            more = zmq_msg_more (&extra);
            zmq_msg_close (&extra);
            zmq_msg_close (&frame);     //  not AGP: one frame it is not
            zmq_msg_init (&frame);
        }
        agp_envelope_t env;
        if (zmq_msg_size (&frame) < AGP_ENVELOPE_SIZE
        ||  agp_envelope_decode (&env, zmq_msg_data (&frame),
                                 zmq_msg_size (&frame))) {
            zmq_msg_close (&frame);
            continue;               //  junk: no sign of life
        }
        if (env.command == (AGP_PING | AGP_REPLY) && env.corr
        &&  env.corr == peer->ping_corr) {
            peer->quiet_from = now;
            peer->ping_corr = 0;
            if (env.word == AG_OK)
                s_pong (peer, &frame, deliver, arg);
        }
        else
        if (env.command == (AGP_FETCH | AGP_REPLY)) {
            request_t *request = (request_t *) ag_idmap_delete (
                peer->pending, env.corr);
            if (request) {
                peer->quiet_from = now;
                int status = env.word >= 200 && env.word <= 599
                           ? env.word: AG_INTERNAL;
                deliver (arg, request->job, request->index, status, &frame);
                free (request);
            }
        }
        zmq_msg_close (&frame);
    }
    if (!peer->monitor)
        return;
    bool dropped = false;
    while (true) {
        zmq_msg_t event;
        zmq_msg_init (&event);
        if (zmq_msg_recv (&event, peer->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&event);
            break;
        }
        bool more = zmq_msg_more (&event);
        zmq_msg_close (&event);
        if (more) {
            zmq_msg_t address;
            zmq_msg_init (&address);
            zmq_msg_recv (&address, peer->monitor, 0);
            zmq_msg_close (&address);
        }
        dropped = true;
    }
    //  A dropped connection lost what was asked on it; one the peer
    //  dropped as too large is dropped again if asked again
    if (dropped && ag_idmap_size (peer->pending))
        s_fail_all (peer, "unreachable: the connection dropped", deliver,
                    arg);
}

void
agd_peers_recv (agd_peers_t *self, int64_t now, agd_store_deliver_fn *deliver,
                void *arg)
{
    for (size_t i = 0; i < self->count; i++)
        s_peer_recv (self->peers [i], now, deliver, arg);
}

size_t
agd_peers_items (agd_peers_t *self, zmq_pollitem_t *items, size_t size)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count && count + 2 <= size; i++) {
        items [count++] = (zmq_pollitem_t) {
            self->peers [i]->socket, 0, ZMQ_POLLIN, 0 };
        if (self->peers [i]->monitor)
            items [count++] = (zmq_pollitem_t) {
                self->peers [i]->monitor, 0, ZMQ_POLLIN, 0 };
    }
    return count;
}

int64_t
agd_peers_tick (agd_peers_t *self, int64_t now, agd_store_deliver_fn *deliver,
                void *arg)
{
    int64_t timeout = (int64_t) self->timeout_ms * 1000;
    int64_t interval = timeout / 4;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < self->count; i++) {
        peer_t *peer = self->peers [i];
        if (ag_idmap_size (peer->pending) == 0)
            continue;
        if (now - peer->quiet_from >= timeout) {
            s_fail_all (peer, "unreachable", deliver, arg);
            continue;
        }
        if (now - peer->quiet_from >= interval
        &&  (!peer->ping_corr || now - peer->ping_sent >= interval)) {
            peer->ping_corr = ++peer->next_corr;
            peer->ping_sent = now;
            agp_envelope_t env = { .command = AGP_PING,
                                   .corr = peer->ping_corr };
            agp_send (peer->socket, NULL, &env, NULL, 0, NULL, ZMQ_DONTWAIT);
        }
        int64_t base = peer->ping_corr? MAX (peer->ping_sent,
                                              peer->quiet_from)
                                      : peer->quiet_from;
        next = MIN (next, MIN (peer->quiet_from + timeout, base + interval));
    }
    return next == INT64_MAX? -1: MAX ((next - now + 999) / 1000, 1);
}

size_t
agd_peers_size (agd_peers_t *self)
{
    return self->count;
}
