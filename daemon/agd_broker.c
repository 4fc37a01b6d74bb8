/*  =========================================================================
    agd_broker - the ROUTER broker: routes requests to agent mailboxes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The broker owns the public ROUTER socket, the agent table and every
//  mailbox. It reads only envelopes (and a CREATE body, to learn the
//  class), never runs agent code and never blocks: a request becomes a
//  job in its agent's mailbox, and an agent with work and no worker goes
//  on the ready queue. Idle workers are handed ready agents, each agent's
//  queued calls in one chain and up to AGD_BATCH agents at once, so a
//  busy server wakes a worker once for many jobs. A chain the worker has
//  not started when it turns out to be blocked (nothing back from it for
//  a while) is taken back and handed to another thread. When no thread
//  is idle the pool grows, up to its maximum, and threads idle for long
//  enough are let go. Replies go back through the same socket,
//  with ZMQ_ROUTER_MANDATORY and no high-water mark, so a reply is never
//  dropped silently: only a peer that has gone loses it, and that is
//  logged.
//  @end

#include "agd_broker.h"
#include <sodium.h>

#define BATCH           256         //  messages per socket per wakeup
#define TICK_MS         1000        //  housekeeping interval

//  ---------------------------------------------------------------------
//  Jobs

agd_job_t *
agd_broker_job_new (agd_broker_t *self)
{
    agd_job_t *job = self->free_jobs;
    if (job) {
        self->free_jobs = job->next;
        self->free_count--;
    }
    else {
        job = (agd_job_t *) malloc (sizeof (agd_job_t));
        if (!job)
            return NULL;
    }
    memset (job, 0, offsetof (agd_job_t, routing));
    zmq_msg_init (&job->routing);
    zmq_msg_init (&job->body);
    job->framed = false;
    job->producing = false;
    job->state = AGD_JOB_QUEUED;
    job->refs = NULL;
    job->resolved = false;
    job->status = 0;
    job->answered = false;
    job->plain = false;
    job->restore = false;
    job->host_corr = 0;
    job->forwarded = 0;
    job->host_prev = job->host_next = NULL;
    return job;
}

void
agd_broker_unkeep (agd_broker_t *self, agd_job_t *job, int status,
                   const char *reason)
{
    if (!job->producing)
        return;
    zmq_msg_t body;
    if (agd_frame_reason (&body, reason) == 0) {
        agd_store_complete (self->store, zmq_msg_data (&job->routing),
                            zmq_msg_size (&job->routing), job->env.corr,
                            status, &body, self->now, agd_broker_deliver,
                            self);
        zmq_msg_close (&body);
    }
    job->producing = false;
}

void
agd_broker_job_free (agd_broker_t *self, agd_job_t *job)
{
    //  A kept call going without a result (cannot happen): its fetchers
    //  must not wait for ever
    agd_broker_unkeep (self, job, AG_INTERNAL, "the call left no result");
    if (job->timed)
        agd_cancel_untime (self, job);
    agd_future_free (&job->refs);
    job->resolved = false;
    agd_admit_release (self, job);
    zmq_msg_close (&job->routing);
    zmq_msg_close (&job->body);
    if (self->free_count < 1024) {
        job->next = self->free_jobs;
        self->free_jobs = job;
        self->free_count++;
    }
    else
        free (job);
}

//  A result a job waited for is in: a FETCH's answer, a new frame with
//  the FETCH's envelope (the kept one may be shared)
void
agd_broker_deliver (void *arg, agd_job_t *job, uint32_t index, int status,
                    zmq_msg_t *body)
{
    agd_broker_t *self = (agd_broker_t *) arg;
    if (!job)
        return;
    if (job->env.command != AGP_FETCH) {
        agd_refs_deliver (self, job, index, status, body);
        return;
    }
    if (status != AG_GONE && status != AG_STOPPING)
        self->fetched++;
    agd_broker_reply (self, job, status, 0, agp_msg_body (body),
                      agp_msg_body_size (body));
    agd_broker_job_free (self, job);
}

//  ---------------------------------------------------------------------
//  Management replies, packed by the broker

static void
s_pack_info (agd_broker_t *self)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    agd_registry_t *registry = self->args->registry;
    msgpack_pack_map (pk, 17);
    agd_pack_str (pk, "isolation");
    agd_pack_str (pk, self->config.isolation == AGD_ISOLATE_PROCESS
                      ? "process": "thread");
    agd_pack_str (pk, "hosts");
    agd_hosts_pack (self, pk);
    agd_pack_str (pk, "version");
    agd_pack_str (pk, AG_VERSION_STRING);
    agd_pack_str (pk, "protocol");
    agd_pack_str (pk, AGP_SIGNATURE);
    agd_pack_str (pk, "instance");
    agd_pack_str (pk, self->instance);
    agd_pack_str (pk, "uptime_ms");
    msgpack_pack_uint64 (pk, (uint64_t) (ag_usecs () - self->started) / 1000);
    agd_pack_str (pk, "endpoints");
    msgpack_pack_array (pk, zlist_size (self->args->bound));
    const char *endpoint = (const char *) zlist_first (self->args->bound);
    while (endpoint) {
        agd_pack_str (pk, endpoint);
        endpoint = (const char *) zlist_next (self->args->bound);
    }
    agd_pack_str (pk, "agents");
    msgpack_pack_uint64 (pk, ag_idmap_size (self->agents));
    agd_pack_str (pk, "classes");
    msgpack_pack_array (pk, agd_registry_size (registry));
    for (size_t i = 0; i < agd_registry_size (registry); i++)
        agd_registry_pack_class (pk, agd_registry_at (registry, i));
    agd_pack_str (pk, "threads");
    ag_pack (pk, "{s:u, s:u, s:u}",
             "busy", (uint64_t) self->workers_busy,
             "total", (uint64_t) self->workers_total,
             "max", (uint64_t) self->config.threads_max);
    agd_pack_str (pk, "calls");
    ag_pack (pk, "{s:u, s:u}", "served", self->served,
             "failed", self->failed);
    agd_pack_str (pk, "pending");
    msgpack_pack_uint64 (pk, self->jobs_pending);
    agd_pack_str (pk, "waiting");
    msgpack_pack_uint64 (pk, self->waiting);
    agd_pack_str (pk, "results");
    msgpack_pack_uint64 (pk, agd_store_size (self->store));
    agd_pack_str (pk, "clients");
    msgpack_pack_uint64 (pk, agd_clients_size (self->clients));
    agd_pack_str (pk, "fetched");
    msgpack_pack_uint64 (pk, self->fetched);
    agd_pack_str (pk, "memory");
    ag_pack (pk, "{s:u, s:u, s:u, s:u, s:u}",
             "requests", (uint64_t) self->queued,
             "replies", (uint64_t) agd_accounts_out (self->accounts),
             "max", (uint64_t) self->config.max_bytes,
             "results", (uint64_t) agd_store_bytes (self->store),
             "results_max", (uint64_t) self->config.retention_bytes);
}

static void
s_handle_fetch (agd_broker_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_fetch_t fetch;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_fetch_decode (&fetch, &body, &reason)) {
        agd_broker_error (self, job, AG_BAD_REQUEST, "FETCH: %s", reason);
        agd_broker_job_free (self, job);
        return;
    }
    //  A FETCH that waits holds what a queued request holds
    if (agd_admit (self, job)) {
        agd_broker_job_free (self, job);
        return;
    }
    int status;
    zmq_msg_t result;
    zmq_msg_init (&result);
    int found = agd_store_fetch (self->store, job->account, fetch.owner.ptr,
                                 fetch.owner.len, fetch.corr, job, 0, &status,
                                 &result);
    if (found == AG_OK) {
        self->fetched++;
        agd_broker_reply (self, job, status, 0, agp_msg_body (&result),
                          agp_msg_body_size (&result));
    }
    else
    if (found == AG_GONE)
        agd_broker_error (self, job, AG_GONE, "the result of call %" PRIu64
                          " is gone: results are kept %d ms, at most %zu of"
                          " them", fetch.corr, self->config.retention_ms,
                          self->config.retention_max);
    else
    if (found == AG_BUSY)
        agd_broker_error (self, job, AG_BUSY, "too many fetches wait already"
                          " for call %" PRIu64 ", or for calls this server"
                          " has not seen", fetch.corr);
    zmq_msg_close (&result);
    //  AG_PENDING: the store answers when the result comes in
    if (found != AG_PENDING)
        agd_broker_job_free (self, job);
}

static void
s_handle_request (agd_broker_t *self, agd_job_t *job)
{
    agp_envelope_t *env = &job->env;
    if (self->next_client_check)
        job->client->suspect_since = 0;     //  heard from: not gone
    if (self->config.log_level >= AGD_LOG_INFO)
        zsys_info ("request command=%s corr=%" PRIu64 " agent=%" PRIu64
                   " size=%zu", agp_command_name (env->command), env->corr,
                   env->agent, agp_msg_body_size (&job->body));
    if (env->command == AGP_PING) {
        agd_broker_reply (self, job, AG_OK, 0, self->pong, self->pong_size);
        agd_broker_job_free (self, job);
        return;
    }
    if (env->command == AGP_INFO) {
        s_pack_info (self);
        agd_broker_send_packed (self, job);
        agd_broker_job_free (self, job);
        return;
    }
    if (env->command == AGP_LIST) {
        agd_agents_list (self, job);
        return;
    }
    if (env->command == AGP_FETCH) {
        s_handle_fetch (self, job);
        return;
    }
    if (env->command == AGP_LOOKUP) {
        agd_agents_lookup (self, job);
        return;
    }
    if (env->command == AGP_CANCEL) {
        agd_cancel_request (self, job);
        return;
    }
    if (self->stopping) {
        agd_broker_error (self, job, AG_STOPPING, "server is stopping");
        agd_broker_job_free (self, job);
        return;
    }
    if (agd_admit (self, job)) {
        agd_broker_job_free (self, job);
        return;
    }
    if (env->command == AGP_CREATE) {
        agd_agents_create (self, job);
        return;
    }
    //  CALL, GETATTR, DELETE: to an agent's mailbox
    agd_agent_t *agent = (agd_agent_t *) ag_idmap_lookup (self->agents,
                                                          env->agent);
    if (!agent || agent->deleting) {
        agd_broker_error (self, job, AG_NO_AGENT, "no agent %" PRIu64
                          " on this server", env->agent);
        agd_broker_job_free (self, job);
        return;
    }
    if (env->command == AGP_DELETE) {
        //  Answered now: from here on the agent takes no requests. The
        //  calls queued before this one are cancelled; its fini runs
        //  once the one running (if any) returns.
        agd_agents_deleting (self, agent);
        agd_broker_reply (self, job, AG_OK, env->agent, NULL, 0);
        job->answered = true;
    }
    else
    if (env->command == AGP_CALL && (env->word & AGP_FLAG_KEEP)) {
        if (agd_store_expect (self->store, job->account,
                              zmq_msg_data (&job->routing),
                              zmq_msg_size (&job->routing), env->corr, job)
            == 0)
            job->producing = true;
        else
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                     "result store full (%zu held): call %" PRIu64 " of %s"
                     " runs but its result is not kept",
                     agd_store_size (self->store), env->corr,
                     job->account->name);
    }
    uint32_t timeout_ms;
    if (env->command == AGP_CALL
    &&  agp_call_timeout (agp_msg_body (&job->body),
                          agp_msg_body_size (&job->body), &timeout_ms)) {
        job->deadline = job->arrived + (int64_t) timeout_ms * 1000;
        agd_cancel_time (self, job);
    }
    agd_pool_enqueue (self, agent, job);
    //  Calls may wait for this one's result already (their reference
    //  came first): one this call cannot reach fails now
    if (job->producing && self->waiting)
        agd_refs_arrived (self, job);
}

//  Read one message from the frontend. Returns 0, or -1 if none is
//  waiting.
static int
s_frontend_recv (agd_broker_t *self)
{
    agd_job_t *job = agd_broker_job_new (self);
    if (!job)
        return -1;
    if (zmq_msg_recv (&job->routing, self->frontend, ZMQ_DONTWAIT) == -1) {
        agd_broker_job_free (self, job);
        return -1;
    }
    //  Read every part: the request is one frame; count any others
    int parts = 1;
    bool more = zmq_msg_more (&job->routing);
    if (more && zmq_msg_recv (&job->body, self->frontend, 0) != -1) {
        parts++;
        more = zmq_msg_more (&job->body);
    }
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init (&extra);
        if (zmq_msg_recv (&extra, self->frontend, 0) == -1)
            break;
        parts++;
        more = zmq_msg_more (&extra);
        zmq_msg_close (&extra);
    }
    int rc = agp_envelope_decode (&job->env, zmq_msg_data (&job->body),
                                  zmq_msg_size (&job->body));
    if (rc == -1 || (rc == -3 && job->env.corr == 0)) {
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "dropped a message that is not AGP (%d parts)", parts);
        agd_broker_job_free (self, job);
        return 0;
    }
    //  Whatever it is, its reply is charged to its sender
    if (agd_admit_identify (self, job)) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error,
                 "out of memory: dropped a request");
        agd_broker_job_free (self, job);
        return 0;
    }
    if (rc == -2) {
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "refused a peer of another protocol version");
        job->env.command = AGP_PING;
        agd_broker_error (self, job, AG_BAD_VERSION,
                          "this server speaks " AGP_SIGNATURE " only");
        agd_broker_job_free (self, job);
        return 0;
    }
    if (rc == -3 || (job->env.command & AGP_REPLY)) {
        job->env.command &= (uint8_t) ~AGP_REPLY;
        if (job->env.command < AGP_PING || job->env.command > AGP_LAST_COMMAND)
            job->env.command = AGP_PING;
        agd_broker_error (self, job, AG_BAD_REQUEST, "bad envelope: unknown"
                          " command, or shorter than %d octets",
                          AGP_ENVELOPE_SIZE);
        agd_broker_job_free (self, job);
        return 0;
    }
    if (parts != 2) {
        agd_broker_error (self, job, AG_BAD_REQUEST, "a request is 1 frame"
                          " (envelope and body), not %d", parts - 1);
        agd_broker_job_free (self, job);
        return 0;
    }
    if (agp_msg_body_size (&job->body) > self->config.max_message) {
        agd_broker_error (self, job, AG_TOO_LARGE, "body of %zu bytes is over"
                          " the limit of %zu", agp_msg_body_size (&job->body),
                          self->config.max_message);
        agd_broker_job_free (self, job);
        return 0;
    }
    job->arrived = self->now;
    s_handle_request (self, job);
    return 0;
}

//  ---------------------------------------------------------------------
//  Housekeeping and stopping

static void
s_begin_stop (agd_broker_t *self)
{
    if (self->stopping)
        return;
    self->stopping = true;
    self->stop_deadline = ag_usecs () + (int64_t) self->config.grace_ms * 1000;
    AGD_LOG (self->config, AGD_LOG_NOTICE, zsys_notice,
             "stopping: pending=%zu grace_ms=%d", self->jobs_pending,
             self->config.grace_ms);
}

//  Grace is over (or nothing is left): refuse what is still queued
static void
s_finish_stop (agd_broker_t *self)
{
    //  Chains no thread has started are not going to run now, nor calls
    //  waiting for their arguments
    agd_pool_revoke_all (self);
    agd_refs_stop (self);
    size_t cursor = 0;
    agd_agent_t *agent;
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        if (agent->head)
            agd_agents_flush (self, agent, AG_STOPPING,
                              "server stopped before this request ran");
    size_t running = agd_pool_running (self);
    if (running)
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "stopped with %zu calls still running after the grace time",
                 running);
    self->stopped = true;
    zstr_send (self->pipe, "STOPPED");
}

static void
s_teardown (agd_broker_t *self)
{
    while (agd_agents_serve_lists (self))
        ;                           //  LISTs are answered to the end
    agd_hosts_stop (self);
    agd_pool_stop (self);
    //  Finalise the agents no worker holds. The broker runs fini here,
    //  once it no longer serves anyone.
    size_t cursor = 0;
    agd_agent_t *agent;
    zlist_t *agents = zlist_new ();
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        zlist_append (agents, agent);
    while ((agent = (agd_agent_t *) zlist_pop (agents))) {
        if (agent->busy)
            continue;               //  still in a worker's hands
        //  A host runs its agents' fini as it stops
        ag_fini_fn *fini = ag_class_fini (agent->cls);
        if (agent->alive && fini && !agent->host)
            fini (agent->state);
        free (agent->state);
        agd_agents_free (self, agent);
    }
    zlist_destroy (&agents);
    agd_hosts_destroy (self);
    //  Threads still running agent code keep the plugins loaded
    self->args->abandoned = agd_pool_running (self);
}

//  ---------------------------------------------------------------------
//  Actor

static agd_broker_t *
s_self_new (zsock_t *pipe, agd_broker_args_t *args)
{
    agd_broker_t *self = (agd_broker_t *) zmalloc (sizeof (agd_broker_t));
    self->pipe = pipe;
    self->args = args;
    self->config = args->config;
    self->agents = ag_idmap_new ();
    self->names = zhashx_new ();
    self->listed = agd_index_new ();
    self->workers = ag_idmap_new ();
    self->accounts = agd_accounts_new ();
    self->store = agd_store_new (self->accounts, self->config.retention_ms,
                                 self->config.retention_max,
                                 self->config.retention_bytes);
    self->clients = agd_clients_new (self->accounts);

    msgpack_sbuffer_init (&self->buffer);
    msgpack_packer_init (&self->packer, &self->buffer, msgpack_sbuffer_write);
    msgpack_zone_init (&self->zone, 2048);
    self->started = self->now = ag_usecs ();
    //  A new id at each start: a client that finds another one behind a
    //  connection knows its pending requests died with the old server
    uint8_t random [8];
    if (sodium_init () < 0)
        zsys_warning ("libsodium cannot initialise");
    randombytes_buf (random, sizeof random);
    for (size_t i = 0; i < sizeof random; i++)
        snprintf (self->instance + 2 * i, 3, "%02x", random [i]);
    msgpack_sbuffer_clear (&self->buffer);
    ag_pack (&self->packer, "{s:s}", "instance", self->instance);
    memcpy (self->pong, self->buffer.data, self->buffer.size);
    self->pong_size = self->buffer.size;
    //  Agent ids are never reused, not even across restarts: they start
    //  from the start time in microseconds, so a handle from before a
    //  restart finds no agent rather than somebody else's. A server
    //  creates agents far slower than one a microsecond, so its ids stay
    //  below the start of the next one, even one started at once.
    struct timespec clock;
    clock_gettime (CLOCK_REALTIME, &clock);
    self->next_agent_id = (uint64_t) clock.tv_sec * 1000000
                        + (uint64_t) clock.tv_nsec / 1000;
    return self;
}

static void
s_self_destroy (agd_broker_t **self_p)
{
    agd_broker_t *self = *self_p;
    if (!self)
        return;
    while (self->free_jobs) {
        agd_job_t *job = self->free_jobs;
        self->free_jobs = job->next;
        free (job);
    }
    //  Workers still running own their worker_t until they say bye;
    //  those left behind after teardown are freed here, their threads
    //  no longer talk to us
    size_t cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL))) {
        //  A thread left running may still read its batch: it stays
        if (!worker->open)
            free (worker->batch);
        free (worker);
    }
    ag_idmap_destroy (&self->workers);
    ag_idmap_destroy (&self->agents);
    zhashx_destroy (&self->names);
    agd_index_destroy (&self->listed);
    agd_store_destroy (&self->store);
    agd_clients_destroy (&self->clients);
    agd_cancel_destroy (self);
    if (self->monitor) {
        zmq_socket_monitor (self->frontend, NULL, 0);
        zmq_close (self->monitor);
    }
    msgpack_sbuffer_destroy (&self->buffer);
    msgpack_zone_destroy (&self->zone);
    zsock_destroy (&self->backend_sock);
    zsock_destroy (&self->frontend_sock);
    //  The replies libzmq still held go with the socket, on its thread:
    //  their accounts must outlive them
    agd_accounts_drain (self->accounts, 2000);
    agd_accounts_destroy (&self->accounts);
    free (self);
    *self_p = NULL;
}

static int
s_bind (agd_broker_t *self)
{
    agd_broker_args_t *args = self->args;
    self->frontend_sock = zsock_new (ZMQ_ROUTER);
    if (!self->frontend_sock) {
        snprintf (args->error, sizeof args->error, "cannot create socket");
        return -1;
    }
    self->frontend = zsock_resolve (self->frontend_sock);
    int on = 1, zero = 0;
    zmq_setsockopt (self->frontend, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    //  Outbound, a queue per connection that only a client reading
    //  nothing fills; then its replies are dropped, and logged
    zmq_setsockopt (self->frontend, ZMQ_SNDHWM, &self->config.outbound_hwm,
                    sizeof (int));
    //  Inbound, a bounded queue per connection: a client that sends
    //  faster than we read is held back by TCP, not buffered here
    zmq_setsockopt (self->frontend, ZMQ_RCVHWM, &self->config.inbound_hwm,
                    sizeof (int));
    zmq_setsockopt (self->frontend, ZMQ_LINGER, &zero, sizeof zero);
    //  Hard cap in libzmq, above the limit we answer with TOO_LARGE, so
    //  an absurd frame is cut off before it is ever buffered
    int64_t cap = (int64_t) self->config.max_message * 2 + 4096;
    zmq_setsockopt (self->frontend, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    if (self->config.heartbeat_ms) {
        zmq_setsockopt (self->frontend, ZMQ_HEARTBEAT_IVL,
                        &self->config.heartbeat_ms, sizeof (int));
        int timeout = self->config.heartbeat_timeout_ms?
                      self->config.heartbeat_timeout_ms
                    : self->config.heartbeat_ms * 10;
        zmq_setsockopt (self->frontend, ZMQ_HEARTBEAT_TIMEOUT, &timeout,
                        sizeof timeout);
    }
    if (args->curve_secret) {
        //  CURVE: libzmq asks the ZAP handler (agd_auth) about each
        //  client, under our domain
        if (zmq_setsockopt (self->frontend, ZMQ_CURVE_SERVER, &on, sizeof on)
        ||  zmq_setsockopt (self->frontend, ZMQ_CURVE_SECRETKEY,
                            args->curve_secret, strlen (args->curve_secret))
        ||  zmq_setsockopt (self->frontend, ZMQ_ZAP_DOMAIN, args->zap_domain,
                            strlen (args->zap_domain))) {
            snprintf (args->error, sizeof args->error, "cannot enable"
                      " CURVE: %s (is libzmq built with CURVE?)",
                      zmq_strerror (zmq_errno ()));
            return -1;
        }
    }
    const char *endpoint = (const char *) zlist_first (args->endpoints);
    while (endpoint) {
        if (zmq_bind (self->frontend, endpoint)) {
            snprintf (args->error, sizeof args->error, "cannot bind %s: %s",
                      endpoint, zmq_strerror (zmq_errno ()));
            return -1;
        }
        char bound [256];
        size_t size = sizeof bound;
        zmq_getsockopt (self->frontend, ZMQ_LAST_ENDPOINT, bound, &size);
        zlist_append (args->bound, bound);   //  autofree: copied
        endpoint = (const char *) zlist_next (args->endpoints);
    }
    self->backend_sock = zsock_new (ZMQ_ROUTER);
    self->backend = zsock_resolve (self->backend_sock);
    zmq_setsockopt (self->backend, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (self->backend, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (self->backend, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    snprintf (self->backend_endpoint, sizeof self->backend_endpoint,
              "inproc://agd-workers-%p", (void *) self);
    if (zmq_bind (self->backend, self->backend_endpoint)) {
        snprintf (args->error, sizeof args->error, "cannot bind %s: %s",
                  self->backend_endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

void
agd_broker (zsock_t *pipe, void *args_)
{
    agd_broker_args_t *args = (agd_broker_args_t *) args_;
    agd_broker_t *self = s_self_new (pipe, args);
    if (s_bind (self)) {
        s_self_destroy (&self);
        zsock_signal (pipe, 1);
        //  Wait for $TERM so the actor's destroy finds us where it expects
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    //  Dropped connections, to notice clients that go, and refused ones
    snprintf (self->monitor_endpoint, sizeof self->monitor_endpoint,
              "inproc://agd-monitor-%p", (void *) self);
    if (zmq_socket_monitor (self->frontend, self->monitor_endpoint,
                            ZMQ_EVENT_DISCONNECTED
                          | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                          | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
        self->monitor = zmq_socket (zsys_init (), ZMQ_PAIR);
        if (self->monitor
        &&  zmq_connect (self->monitor, self->monitor_endpoint)) {
            zmq_close (self->monitor);
            self->monitor = NULL;
        }
    }
    if (!self->monitor)
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "cannot watch connections: agents of clients that go"
                 " stay until deleted");
    agd_refs_init (self);
    if (agd_hosts_new (self)) {
        agd_hosts_destroy (self);
        s_self_destroy (&self);
        zsock_signal (pipe, 1);
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    agd_hosts_start (self);
    for (int i = 0; i < self->config.threads_min; i++)
        agd_pool_spawn (self);
    zsock_signal (pipe, 0);

    //  Then the sockets of the servers we fetch from, as many as there are
    zmq_pollitem_t items [5 + 2 * 16 + 3 * AGD_MAX_HOSTS] = {
        { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
        { self->frontend, 0, ZMQ_POLLIN, 0 },
        { self->backend, 0, ZMQ_POLLIN, 0 },
        { NULL, args->stop_fd, ZMQ_POLLIN, 0 },
        { self->monitor, 0, ZMQ_POLLIN, 0 }
    };
    int base_count = self->monitor? 5: 4;
    self->next_tick = ag_usecs () + TICK_MS * 1000;
    while (!self->terminated || !self->stopped) {
        int64_t now = ag_usecs ();
        int64_t timeout = (self->next_tick - now) / 1000;
        if (self->stopping && !self->stopped)
            timeout = MIN (timeout, (self->stop_deadline - now) / 1000);
        timeout = MIN (timeout, agd_pool_timeout (self, now));
        timeout = MIN (timeout, agd_refs_timeout (self, now));
        timeout = MIN (timeout, agd_cancel_timeout (self, now));
        timeout = MIN (timeout, agd_hosts_timeout (self, now));
        if (self->next_client_check && !self->stopping)
            timeout = MIN (timeout, (self->next_client_check - now + 999)
                                    / 1000);
        if (self->lists_waiting)
            timeout = 0;            //  pages still to pack
        if (timeout < 0)
            timeout = 0;
        if (self->host_count)
            agd_hosts_flush (self);
        int peer_count = (int) agd_peers_items (self->peers,
            items + base_count, 2 * 16);
        int host_base = base_count + peer_count;
        int item_count = host_base + (int) agd_hosts_items (self,
            items + host_base, 3 * AGD_MAX_HOSTS);
        int rc = zmq_poll (items, item_count, (long) timeout);
        if (rc == -1 && zmq_errno () != EINTR)
            break;                  //  context terminated
        //  One clock reading serves this pass: what it handles is
        //  stamped with it
        self->now = ag_usecs ();
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM")) {
                self->terminated = true;
                s_begin_stop (self);
            }
            else
            if (streq (command, "PING"))
                zstr_send (pipe, "PONG");
            else
            if (strncmp (command, "LOGLEVEL ", 9) == 0)
                self->config.log_level = atoi (command + 9);
            zstr_free (&command);
        }
        if (items [3].revents & ZMQ_POLLIN) {
            char byte;
            if (read (args->stop_fd, &byte, 1) < 0 && errno != EAGAIN)
                AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                         "stop pipe: %s", strerror (errno));
            s_begin_stop (self);
        }
        //  Connection events before requests: a client whose connection
        //  dropped proves itself again with its next message
        if (base_count > 4 && (items [4].revents & ZMQ_POLLIN))
            agd_watch_monitor (self);
        //  Workers first: each result frees a worker for what follows
        for (int i = 0; i < BATCH && agd_pool_recv (self) == 0; i++)
            ;
        for (int i = 0; i < BATCH && s_frontend_recv (self) == 0; i++)
            ;
        if (peer_count)
            agd_peers_recv (self->peers, self->now, agd_broker_deliver,
                            self);
        if (self->host_count) {
            agd_hosts_poll (self, items + host_base);
            agd_hosts_tick (self);
        }
        if (self->waiting_head)
            agd_refs_expire (self);
        if (self->timed_count)
            agd_cancel_expire (self);
        if (self->next_client_check && self->now >= self->next_client_check
        &&  !self->stopping)
            agd_watch_check (self);
        agd_pool_dispatch (self);
        self->lists_waiting = agd_agents_serve_lists (self);

        now = self->now;
        if (now >= self->next_tick) {
            agd_store_expire (self->store, now, agd_broker_deliver, self);
            agd_pool_reap (self, now);
            agd_clients_sweep (self->clients);
            agd_accounts_sweep (self->accounts);
            self->next_tick = now + TICK_MS * 1000;
        }
        if (self->stopping && !self->stopped
        &&  (self->jobs_pending == 0 || now >= self->stop_deadline))
            s_finish_stop (self);
    }
    s_teardown (self);
    agd_refs_destroy (self);
    agd_store_flush (self->store, AG_STOPPING, "server stopped",
                     agd_broker_deliver, self);
    s_self_destroy (&self);
}