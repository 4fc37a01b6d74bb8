/*  =========================================================================
    agd_watch - clients that go, and the agents they leave

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A connection that drops may be a client that has gone for good,
//  with agents that nobody will delete. ZeroMQ does not say whose
//  connection dropped, so every client owning agents becomes a suspect;
//  after the client grace time each suspect not heard from is probed (a
//  message it ignores, which ZMQ_ROUTER_MANDATORY refuses when the
//  client has no connection), and the agents of those gone are deleted.
//  @end

#include "agd_broker.h"

//  Requests

//  How long after a drop its suspects are probed
int64_t
agd_watch_grace_us (agd_broker_t *self)
{
    return MAX ((int64_t) self->config.client_grace_ms * 1000,
                PROBE_AFTER_US);
}

//  Look at the suspects no later than due
void
agd_watch_check_by (agd_broker_t *self, int64_t due)
{
    if (!self->next_client_check || self->next_client_check > due)
        self->next_client_check = due;
}

//  ---------------------------------------------------------------------
//  Suspects, probes and orphans

static void
s_clients_suspect (agd_broker_t *self)
{
    //  At most once a probe interval: a storm of connections that come
    //  and go costs one walk of the clients per interval, not per drop
    if (self->last_suspect
    &&  self->now - self->last_suspect < PROBE_AFTER_US) {
        self->suspect_again = true;
        agd_watch_check_by (self, self->last_suspect + PROBE_AFTER_US);
        return;
    }
    self->last_suspect = self->now;
    self->suspect_again = false;
    size_t cursor = 0;
    agd_client_t *client = NULL;
    while ((client = agd_clients_next (self->clients, &cursor, client)))
        if (client->owned && !client->suspect_since) {
            client->suspect_since = self->now;
            agd_watch_check_by (self, self->now + agd_watch_grace_us (self));
        }
}

//  True unless the client has no connection to us
static bool
s_reachable (agd_broker_t *self, agd_client_t *client)
{
    agp_envelope_t env = { .command = AGP_PING | AGP_REPLY, .word = AG_OK };
    zmq_msg_t routing;
    if (zmq_msg_init_size (&routing, client->id_size))
        return true;
    memcpy (zmq_msg_data (&routing), client->id, client->id_size);
    int rc = agp_send (self->frontend, &routing, &env, NULL, 0, NULL,
                       ZMQ_DONTWAIT);
    bool reachable = rc == 0 || zmq_errno () != EHOSTUNREACH;
    zmq_msg_close (&routing);
    return reachable;
}

//  Delete the agents of the clients this check found gone, as if each
//  had sent DELETE for them: a walk of what they owned, however many
//  agents others have. Returns true if some are left (out of memory),
//  their owners suspects again.
static bool
s_clients_orphan (agd_broker_t *self, zlist_t *gone)
{
    size_t count = 0, clients = zlist_size (gone);
    bool left = false;
    agd_client_t *client;
    while ((client = (agd_client_t *) zlist_pop (gone))) {
        //  Deleting unlinks the agent from its owner; the entry itself
        //  stays until a sweep
        while (client->agents) {
            agd_agent_t *agent = client->agents;
            agd_job_t *job = agd_broker_job_new (self);
            if (!job) {
                client->suspect_since = self->now;
                left = true;
                break;
            }
            job->env.command = AGP_DELETE;
            job->env.agent = agent->id;
            job->answered = true;   //  nobody to answer
            agd_agents_deleting (self, agent);
            agd_pool_enqueue (self, agent, job);
            count++;
        }
    }
    AGD_LOG (self->config, AGD_LOG_NOTICE, zsys_notice,
             "%zu client%s gone for %d ms: deleting the %zu agents they"
             " owned", clients, clients == 1? "": "s",
             self->config.client_grace_ms, count);
    return left;
}

void
agd_watch_check (agd_broker_t *self)
{
    if (self->suspect_again)
        s_clients_suspect (self);
    int64_t wait = agd_watch_grace_us (self);
    self->checks++;
    self->next_client_check = 0;
    zlist_t *gone = zlist_new ();
    size_t cursor = 0;
    agd_client_t *client = NULL;
    //  Probing changes nothing in the table; orphaning, after, may
    while ((client = agd_clients_next (self->clients, &cursor, client))) {
        if (!client->suspect_since)
            continue;
        if (self->now - client->suspect_since < wait) {
            agd_watch_check_by (self, client->suspect_since + wait);
            continue;
        }
        client->suspect_since = 0;
        if (client->agents && !s_reachable (self, client))
            zlist_append (gone, client);
    }
    if (zlist_size (gone) && s_clients_orphan (self, gone))
        agd_watch_check_by (self, self->now + wait);
    zlist_destroy (&gone);
    //  A drop seen too soon after the last walk is still to be handled
    if (self->suspect_again)
        agd_watch_check_by (self, self->last_suspect + PROBE_AFTER_US);
}

//  Connection events: a drop makes owners suspects; a peer that does
//  not speak ZeroMQ is refused by libzmq, and logged here
void
agd_watch_monitor (agd_broker_t *self)
{
    bool dropped = false;
    while (true) {
        //  Each event is two frames: event number and value, then the
        //  endpoint it happened on
        zmq_msg_t event, address;
        zmq_msg_init (&event);
        zmq_msg_init (&address);
        if (zmq_msg_recv (&event, self->monitor, ZMQ_DONTWAIT) == -1
        ||  !zmq_msg_more (&event)
        ||  zmq_msg_recv (&address, self->monitor, 0) == -1) {
            zmq_msg_close (&event);
            zmq_msg_close (&address);
            break;
        }
        uint16_t number = 0;
        if (zmq_msg_size (&event) >= 2)
            memcpy (&number, zmq_msg_data (&event), 2);
        uint32_t value = 0;
        if (zmq_msg_size (&event) >= 6)
            memcpy (&value, (uint8_t *) zmq_msg_data (&event) + 2, 4);
        if (number == ZMQ_EVENT_DISCONNECTED) {
            dropped = true;
            //  Whoever comes on that descriptor next proves itself anew
            agd_clients_dropped (self->clients, (int) value);
        }
        else
        if (number == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        ||  number == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                     "refused a connection on %.*s: %s",
                     (int) zmq_msg_size (&address),
                     (char *) zmq_msg_data (&address),
                     number == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                     ? "it does not speak ZeroMQ (ZMTP) correctly"
                     : "its handshake failed");
        zmq_msg_close (&event);
        zmq_msg_close (&address);
    }
    if (dropped)
        s_clients_suspect (self);
}

//  ---------------------------------------------------------------------