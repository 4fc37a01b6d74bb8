/*  =========================================================================
    agd_admit - who a request comes from, what it may hold, and replies

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Every message is charged to an account: what the transport proves of
//  its sender. With CURVE that is the client's key, over ipc the process
//  at the other end (its pid and uid, from the socket's peer
//  credentials), and otherwise the connection itself: over plain tcp
//  nothing more is proven, and a routing id alone, which the client
//  picks, proves nothing. The proof is taken again only when a client's
//  messages come on another connection, or after its connection dropped.
//
//  A request that stays (in a mailbox, running, or waiting for a result)
//  holds its bytes until it is answered, and every reply holds its bytes
//  until libzmq has written it out (agd_account's frames). Admission
//  bounds both, for the account and for the server: an account holding
//  something may not pass server/max_client_bytes, and may hold no more
//  than what is still free of server/max_bytes. A client that keeps
//  sending can so take at most its share, while one that comes late
//  always finds room; past them, 302 names the setting. A client that
//  does not read its replies is not buffered without end: once they hold
//  more than its share, the broker closes its connection (shutdown on
//  the descriptor libzmq reported for it, after checking it still leads
//  to the same peer) and logs it.
//  @end

#include "agd_broker.h"
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define OUT_SLACK       (1024 * 1024)   //  replies a reading client may
                                        //  have in flight, always

//  ---------------------------------------------------------------------
//  Identity

//  What names the peer of a connection: its pid (ipc) or its address
//  and port (tcp), to tell whether a descriptor still leads to it
static uint64_t
s_peer_tag (int fd, int *domain, struct ucred *cred, char *address,
            size_t size)
{
    *domain = AF_UNSPEC;
    socklen_t len = sizeof *domain;
    if (fd < 0 || getsockopt (fd, SOL_SOCKET, SO_DOMAIN, domain, &len))
        return 0;
    if (*domain == AF_UNIX) {
        len = sizeof *cred;
        if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, cred, &len))
            return 0;
        return (uint64_t) cred->pid + 1;
    }
    struct sockaddr_storage peer;
    len = sizeof peer;
    if (getpeername (fd, (struct sockaddr *) &peer, &len))
        return 0;
    if (address) {
        char host [INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (peer.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *) &peer;
            inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs (in->sin_port);
        }
        else
        if (peer.ss_family == AF_INET6) {
            struct sockaddr_in6 *in = (struct sockaddr_in6 *) &peer;
            inet_ntop (AF_INET6, &in->sin6_addr, host, sizeof host);
            port = ntohs (in->sin6_port);
        }
        snprintf (address, size, "%s:%d", host, port);
    }
    return ag_hash (&peer, len, AG_HASH_BASIS);
}

int
agd_admit_identify (agd_broker_t *self, agd_job_t *job)
{
    agd_client_t *client = agd_clients_get (self->clients,
        zmq_msg_data (&job->routing), zmq_msg_size (&job->routing));
    if (!client)
        return -1;
    job->client = client;
    //  Proven on its connection already: it stays so until that drops
    //  (agd_clients_dropped, from the socket's events, which the broker
    //  reads before requests)
    if (client->account && client->bound && self->monitor)
        return 0;
    int fd = zmq_msg_get (&job->body, ZMQ_SRCFD);
    int domain;
    struct ucred cred = { 0 };
    char address [64] = "";
    uint64_t tag = s_peer_tag (fd, &domain, &cred, address, sizeof address);
    uint8_t id [1 + 255];
    size_t size;
    char name [128];
    const char *key = self->args->curve_secret
                    ? zmq_msg_gets (&job->body, "User-Id")
                    : NULL;
    if (key && *key && strlen (key) < sizeof id - 1) {
        id [0] = 'K';
        size = strlen (key);
        memcpy (id + 1, key, size++);
        snprintf (name, sizeof name, "key %s", key);
    }
    else
    if (domain == AF_UNIX && tag) {
        id [0] = 'P';
        memcpy (id + 1, &cred.pid, sizeof cred.pid);
        memcpy (id + 1 + sizeof cred.pid, &cred.uid, sizeof cred.uid);
        size = 1 + sizeof cred.pid + sizeof cred.uid;
        snprintf (name, sizeof name, "ipc process %d (uid %u)",
                  (int) cred.pid, (unsigned) cred.uid);
    }
    else {
        //  Nothing proven but the connection: its routing id stands for it
        id [0] = 'R';
        size = MIN (zmq_msg_size (&job->routing), sizeof id - 1);
        memcpy (id + 1, zmq_msg_data (&job->routing), size++);
        char hex [17] = "";
        const uint8_t *raw = (const uint8_t *) zmq_msg_data (&job->routing);
        for (size_t i = 0; i < 8 && i < zmq_msg_size (&job->routing); i++)
            snprintf (hex + 2 * i, 3, "%02x", raw [i]);
        snprintf (name, sizeof name, "connection %s (routing id %s%s)",
                  *address? address: "?", hex,
                  zmq_msg_size (&job->routing) > 8? "...": "");
    }
    agd_account_t *account = agd_accounts_get (self->accounts, id, size,
                                               name);
    if (!account)
        return -1;
    agd_clients_bind (self->clients, client, fd, account, tag);
    return 0;
}

//  ---------------------------------------------------------------------
//  Admission

//  Bytes held for every client: requests, and replies not yet out;
//  exact, or at most this (which reads nothing libzmq's thread writes)
static size_t
s_held (agd_broker_t *self, bool exact)
{
    return self->queued + (exact? agd_accounts_out (self->accounts)
                                : agd_accounts_out_bound (self->accounts));
}

//  Bytes an account holds: exact, or at most this
static size_t
s_mine (agd_account_t *account, bool exact)
{
    return account->queued + (exact? agd_account_out (account)
                                   : agd_account_out_bound (account));
}

//  True if the account may take charge more: first with the bounds,
//  which cost nothing; only if they say no, with what is exact. Sets
//  why to the setting that says no.
static bool
s_fits (agd_broker_t *self, agd_account_t *account, size_t charge,
        size_t *mine, size_t *held, const char **why)
{
    for (int exact = 0; exact < 2; exact++) {
        *mine = s_mine (account, exact);
        *held = s_held (self, exact);
        size_t free = *held < self->config.max_bytes
                    ? self->config.max_bytes - *held: 0;
        if (*mine && *mine + charge > self->config.max_client_bytes)
            *why = "server/max_client_bytes";
        else
        if (*mine + charge > free)
            *why = "server/max_bytes";
        else
            return true;
    }
    return false;
}

int
agd_admit (agd_broker_t *self, agd_job_t *job)
{
    agd_client_t *client = job->client;
    agd_account_t *account = client->account;
    size_t charge = agp_msg_body_size (&job->body)
                  + zmq_msg_size (&job->routing) + AGD_JOB_COST;
    if (account->pending >= self->config.max_pending_per_client) {
        agd_broker_error (self, job, AG_BUSY, "this client (%s) has %zu"
                          " requests pending, the limit"
                          " (server/max_pending_per_client)", account->name,
                          account->pending);
        return -1;
    }
    size_t mine, held;
    const char *why;
    if (!s_fits (self, account, charge, &mine, &held, &why)) {
        if (streq (why, "server/max_client_bytes"))
            agd_broker_error (self, job, AG_BUSY, "this client (%s) holds %zu"
                              " bytes of requests and replies here; %zu more"
                              " would pass its limit of %zu"
                              " (server/max_client_bytes)", account->name,
                              mine, charge, self->config.max_client_bytes);
        else
            agd_broker_error (self, job, AG_BUSY, "this server holds %zu of"
                              " its %zu bytes for clients (server/max_bytes);"
                              " this client (%s) may hold no more than is"
                              " left, and holds %zu, this request %zu", held,
                              self->config.max_bytes, account->name, mine,
                              charge);
        return -1;
    }
    job->account = account;
    job->charge = charge;
    job->counted = true;
    agd_accounts_use (self->accounts, account);
    account->pending++;
    account->queued += charge;
    self->queued += charge;
    client->pending++;
    return 0;
}

const char *
agd_admit_more (agd_broker_t *self, agd_job_t *job, size_t size)
{
    agd_account_t *account = job->account;
    if (!job->counted)
        return "a request that holds nothing";
    size_t mine, held;
    const char *why;
    if (!s_fits (self, account, size, &mine, &held, &why))
        return why;
    job->charge += size;
    account->queued += size;
    self->queued += size;
    return NULL;
}

void
agd_admit_release (agd_broker_t *self, agd_job_t *job)
{
    if (job->counted) {
        agd_account_t *account = job->account;
        account->pending--;
        account->queued -= job->charge;
        self->queued -= job->charge;
        job->client->pending--;
        agd_accounts_release (self->accounts, account);
        job->account = NULL;
        job->counted = false;
    }
    agd_clients_release (self->clients, job->client);
    job->client = NULL;
}

//  ---------------------------------------------------------------------
//  Replies

//  Close the connection of a client that does not read its replies
static void
s_cut (agd_broker_t *self, agd_client_t *client, size_t out, const char *why)
{
    client->cut = true;
    int domain;
    struct ucred cred;
    bool same = client->fd >= 0 && client->peer_tag
             && s_peer_tag (client->fd, &domain, &cred, NULL, 0)
                == client->peer_tag;
    if (same) {
        //  An abortive close, a reset: a FIN would wait behind the very
        //  replies the client does not read, as long as the kernel
        //  kept trying to send them
        struct linger abort = { 1, 0 };
        setsockopt (client->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        shutdown (client->fd, SHUT_RDWR);
    }
    AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
             "%s the connection of client %s: %zu bytes of replies it has"
             " not read (%s); its replies are dropped until it comes back",
             same? "closed": "cannot close", client->account->name, out,
             why);
}

//  True if a client's unread replies are past what it may hold: its
//  own limit, or what is left of the server's
static const char *
s_over (agd_broker_t *self, size_t out)
{
    if (out <= OUT_SLACK)
        return NULL;
    if (out > self->config.max_client_bytes)
        return "server/max_client_bytes";
    size_t held = s_held (self, true);
    if (held >= self->config.max_bytes || out > self->config.max_bytes - held)
        return "server/max_bytes";
    return NULL;
}

//  Send frame (ours, with room for the envelope; charged already if
//  charged is true) to the job's requester, and count it
static void
s_send (agd_broker_t *self, agd_job_t *job, agp_envelope_t *env,
        zmq_msg_t *frame, bool charged)
{
    self->served++;
    if (env->word >= 300)
        self->failed++;
    agd_client_t *client = job->client;
    agd_account_t *account = client? client->account: NULL;
    if (client && !client->cut && account
    &&  agd_account_out_bound (account) > OUT_SLACK) {
        size_t out = agd_account_out (account);
        const char *why = s_over (self, out);
        if (why)
            s_cut (self, client, out, why);
    }
    if (client && client->cut) {
        zmq_msg_close (frame);
        return;
    }
    if (account && !charged)
        agd_frame_charge (frame, self->accounts, account);
    //  The routing frame may be needed again (the job's, for instance)
    zmq_msg_t routing;
    zmq_msg_init (&routing);
    zmq_msg_copy (&routing, &job->routing);
    if (agp_send (self->frontend, &routing, env, NULL, 0, frame,
                  ZMQ_DONTWAIT)) {
        int error = zmq_errno ();
        if (error == EHOSTUNREACH) {
            if (self->config.log_level >= AGD_LOG_DEBUG)
                zsys_debug ("reply dropped: client gone command=%s"
                            " corr=%" PRIu64, agp_command_name (env->command),
                            env->corr);
        }
        else
        if (error == EAGAIN && client)
            s_cut (self, client, account? agd_account_out (account): 0,
                   "server/outbound_hwm");
        else
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                     "reply dropped: %s command=%s corr=%" PRIu64,
                     zmq_strerror (error), agp_command_name (env->command),
                     env->corr);
    }
    zmq_msg_close (&routing);
}

void
agd_broker_reply (agd_broker_t *self, agd_job_t *job, int status,
                  uint64_t agent, const void *body, size_t size)
{
    agp_envelope_t env = {
        .command = (uint8_t) (job->env.command | AGP_REPLY),
        .word = (uint16_t) status,
        .corr = job->env.corr,
        .agent = agent
    };
    zmq_msg_t frame;
    if (agd_frame_init (&frame, body, size)) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error,
                 "out of memory for a reply of %zu bytes", size);
        return;
    }
    s_send (self, job, &env, &frame, false);
}

void
agd_broker_reply_frame (agd_broker_t *self, agd_job_t *job, uint64_t agent,
                        bool shared)
{
    if (!job->framed) {
        //  Not a reply frame (cannot happen): say so rather than send it
        agd_broker_error (self, job, AG_INTERNAL, "no reply was made");
        return;
    }
    agp_envelope_t env = {
        .command = (uint8_t) (job->env.command | AGP_REPLY),
        .word = job->status,
        .corr = job->env.corr,
        .agent = agent
    };
    //  The envelope goes in the frame's first octets (agp_send writes
    //  it), which a kept copy sharing them never reads
    zmq_msg_t frame;
    agd_account_t *account = job->client? job->client->account: NULL;
    if (shared) {
        if (agd_frame_share (&frame, &job->body, self->accounts, account)) {
            AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error,
                     "out of memory for a reply");
            return;
        }
    }
    else {
        zmq_msg_init (&frame);
        zmq_msg_move (&frame, &job->body);
        job->framed = false;
    }
    s_send (self, job, &env, &frame, shared);
}

void
agd_broker_error (agd_broker_t *self, agd_job_t *job, int status,
                  const char *format, ...)
{
    char reason [512];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    msgpack_sbuffer_clear (&self->buffer);
    ag_pack (&self->packer, "s", reason);
    if (self->config.log_level >= AGD_LOG_INFO)
        zsys_info ("error status=%d command=%s corr=%" PRIu64 " reason='%s'",
                   status, agp_command_name (job->env.command), job->env.corr,
                   reason);
    agd_broker_reply (self, job, status, job->env.agent, self->buffer.data,
                      self->buffer.size);
}

void
agd_broker_send_packed (agd_broker_t *self, agd_job_t *job)
{
    agd_broker_reply (self, job, AG_OK, job->env.agent, self->buffer.data,
                      self->buffer.size);
}
