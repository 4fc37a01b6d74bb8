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

#include "agd.h"
#include <pthread.h>

#define BATCH           256         //  messages per socket per wakeup
#define CHAIN           256         //  jobs of one agent per hand-off
#define GROW_AFTER_US   1000        //  agents wait this long before the
                                    //  pool grows for them
#define TICK_MS         1000        //  housekeeping interval
#define PROBE_AFTER_US  100000      //  clients are probed no sooner after
                                    //  a drop: the socket has seen it end

typedef struct _worker_t worker_t;
struct _worker_t {
    uint32_t id;                    //  routing id is 'W' + id
    bool idle;                      //  on the idle list
    bool leaving;                   //  told to terminate
    uint32_t outstanding;           //  jobs handed to it and not back,
                                    //  plus one for the batch's END
    agd_batch_t *batch;             //  its hand-off, ours when not open
    bool open;                      //  batch handed, END not yet back
    bool revocable;                 //  its batch may hold unclaimed chains
    int64_t progress;               //  ag_usecs () of hand-off or result
    int64_t idle_since;             //  ag_usecs () when it went idle
    worker_t *prev, *next;          //  idle list (most recent first)
};

typedef struct {
    zsock_t *pipe;                  //  actor pipe
    agd_broker_args_t *args;        //  what the server gave us
    agd_config_t config;            //  settings
    zsock_t *frontend_sock;         //  public ROUTER
    void *frontend;                 //  its libzmq handle
    zsock_t *backend_sock;          //  inproc ROUTER to workers
    void *backend;                  //  its libzmq handle
    char backend_endpoint [64];     //  where workers connect
    ag_idmap_t *agents;             //  id -> agd_agent_t
    zhashx_t *names;                //  name -> agd_agent_t
    uint64_t next_agent_id;         //  ids are never reused
    ag_idmap_t *workers;            //  id -> worker_t
    worker_t *idle_head;            //  most recently idle
    worker_t *idle_tail;            //  longest idle
    size_t workers_total;           //  alive or starting
    size_t workers_starting;        //  not yet ready
    size_t workers_busy;            //  holding a batch
    size_t workers_idle;            //  on the idle list
    size_t batches_revocable;       //  open batches that may hold
                                    //  unclaimed chains
    int64_t next_scan;              //  when to look for blocked batches
    uint32_t next_worker_id;        //  for routing ids
    agd_agent_t *ready_head;        //  agents with work, no worker
    agd_agent_t *ready_tail;
    size_t ready_count;
    int64_t starved_since;          //  agents waiting, no thread idle; or 0
    int64_t last_done;              //  ag_usecs () a job last completed
    agd_job_t *free_jobs;           //  recycled jobs
    size_t free_count;
    agd_store_t *store;             //  kept results
    agd_clients_t *clients;         //  clients with work or agents here
    size_t agents_counted;          //  agents not deleted
    void *monitor;                  //  frontend's connection events
    char monitor_endpoint [64];
    int64_t next_client_check;      //  when to look at suspects, or 0
    int64_t last_suspect;           //  when owners were last made suspects
    bool suspect_again;             //  a drop since: do it at the check
    uint64_t checks;                //  client checks made
    msgpack_sbuffer buffer;         //  for bodies the broker writes
    msgpack_packer packer;
    msgpack_zone zone;              //  for CREATE bodies
    int64_t started;                //  ag_usecs () at start
    int64_t now;                    //  ag_usecs () this pass of the loop
    int64_t next_tick;              //  next housekeeping
    bool stopping;                  //  refusing new work
    bool stopped;                   //  STOPPED sent; waiting for $TERM
    bool terminated;                //  $TERM received
    int64_t stop_deadline;          //  end of grace
    size_t jobs_pending;            //  queued or running
    uint64_t served;                //  requests answered
    uint64_t failed;                //  of which with an error status
    uint64_t fetched;               //  results delivered to FETCH
} self_t;

//  ---------------------------------------------------------------------
//  Jobs

static agd_job_t *
s_job_new (self_t *self)
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
    job->status = 0;
    job->answered = false;
    job->next = NULL;
    job->agent = NULL;
    return job;
}

static void
s_job_free (self_t *self, agd_job_t *job)
{
    if (job->client) {
        job->client->pending--;
        agd_clients_release (self->clients, job->client);
        job->client = NULL;
    }
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

//  ---------------------------------------------------------------------
//  Replies

//  Send a reply: a new frame of envelope and a copy of body, or the
//  frame msg (a worker's reply, with room for the envelope: it is
//  written there; the frame may share its buffer with a kept copy in the
//  store, which only ever reads past the envelope)
static void
s_send_reply (self_t *self, zmq_msg_t *routing, uint8_t command,
              int status, uint64_t corr, uint64_t agent,
              const void *body, size_t size, zmq_msg_t *body_msg)
{
    agp_envelope_t env = {
        .command = (uint8_t) (command | AGP_REPLY),
        .word = (uint16_t) status,
        .corr = corr,
        .agent = agent
    };
    //  The routing frame may be needed again (kept results' waiters)
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, routing);
    if (agp_send (self->frontend, &copy, &env, body, size, body_msg,
                  ZMQ_DONTWAIT)) {
        int error = zmq_errno ();
        if (error == EHOSTUNREACH) {
            if (self->config.log_level >= AGD_LOG_DEBUG)
                zsys_debug ("reply dropped: client gone command=%s"
                            " corr=%" PRIu64, agp_command_name (env.command),
                            corr);
        }
        else
        if (error == EAGAIN)
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                     "reply dropped: the client reads nothing, %d replies"
                     " wait for it (server/outbound_hwm) command=%s"
                     " corr=%" PRIu64, self->config.outbound_hwm,
                     agp_command_name (env.command), corr);
        else
            AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                     "reply dropped: %s command=%s corr=%" PRIu64,
                     zmq_strerror (error), agp_command_name (env.command),
                     corr);
    }
    zmq_msg_close (&copy);
    self->served++;
    if (status >= 300)
        self->failed++;
}

//  Reply with an error: the body is the reason, a msgpack string
static void
s_send_error (self_t *self, zmq_msg_t *routing, const agp_envelope_t *env,
              int status, const char *format, ...)
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
                   status, agp_command_name (env->command), env->corr,
                   reason);
    s_send_reply (self, routing, env->command, status, env->corr, env->agent,
                  self->buffer.data, self->buffer.size, NULL);
}

//  Reply with what the broker packed into self->buffer
static void
s_send_packed (self_t *self, zmq_msg_t *routing, const agp_envelope_t *env)
{
    s_send_reply (self, routing, env->command, AG_OK, env->corr, env->agent,
                  self->buffer.data, self->buffer.size, NULL);
}

//  Deliver a kept result to a fetcher that waited for it: a new frame,
//  as the kept one may be shared
static void
s_deliver_fetch (void *arg, zmq_msg_t *routing, uint64_t corr, int status,
                 zmq_msg_t *kept)
{
    self_t *self = (self_t *) arg;
    if (status != AG_GONE)
        self->fetched++;
    s_send_reply (self, routing, AGP_FETCH, status, corr, 0,
                  agp_msg_body (kept), agp_msg_body_size (kept), NULL);
}

//  ---------------------------------------------------------------------
//  Workers

static void
s_idle_push (self_t *self, worker_t *worker)
{
    worker->idle = true;
    self->workers_idle++;
    worker->idle_since = self->now;
    worker->prev = NULL;
    worker->next = self->idle_head;
    if (self->idle_head)
        self->idle_head->prev = worker;
    else
        self->idle_tail = worker;
    self->idle_head = worker;
}

static void
s_idle_remove (self_t *self, worker_t *worker)
{
    if (worker->prev)
        worker->prev->next = worker->next;
    else
        self->idle_head = worker->next;
    if (worker->next)
        worker->next->prev = worker->prev;
    else
        self->idle_tail = worker->prev;
    worker->prev = worker->next = NULL;
    worker->idle = false;
    self->workers_idle--;
}

static void
s_worker_send (self_t *self, worker_t *worker, const void *data, size_t size)
{
    uint8_t identity [5] = { 'W' };
    memcpy (identity + 1, &worker->id, 4);
    zmq_send (self->backend, identity, sizeof identity, ZMQ_SNDMORE);
    zmq_send (self->backend, data, size, 0);
}

static void
s_worker_spawn (self_t *self)
{
    worker_t *worker = (worker_t *) zmalloc (sizeof (worker_t));
    worker->batch = (agd_batch_t *) zmalloc (sizeof (agd_batch_t));
    worker->id = ++self->next_worker_id;
    agd_worker_args_t *args = (agd_worker_args_t *)
        zmalloc (sizeof (agd_worker_args_t));
    snprintf (args->endpoint, sizeof args->endpoint, "%s",
              self->backend_endpoint);
    args->id = worker->id;
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create (&thread, &attr, agd_worker_main, args);
    pthread_attr_destroy (&attr);
    if (rc) {
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error,
                 "cannot start worker thread: %s (threads=%zu)",
                 strerror (rc), self->workers_total);
        free (args);
        free (worker->batch);
        free (worker);
        return;
    }
    ag_idmap_insert (self->workers, worker->id, worker);
    self->workers_total++;
    self->workers_starting++;
}

//  Take the next agent off the ready queue, and its calls off its
//  mailbox into a slot: one hop to the worker for many jobs. CREATE and
//  DELETE go alone, since they change whether the agent exists at all.
//  Returns the number of jobs in the slot.
static uint32_t
s_fill_slot (self_t *self, agd_slot_t *slot)
{
    agd_agent_t *agent = self->ready_head;
    self->ready_head = agent->next_ready;
    if (!self->ready_head)
        self->ready_tail = NULL;
    self->ready_count--;
    agent->ready = false;
    agent->next_ready = NULL;

    agd_job_t *job = agent->head;
    agd_job_t *last = job;
    uint32_t count = 1;
    if (job->env.command == AGP_CALL || job->env.command == AGP_GETATTR)
        while (last->next && count < CHAIN
        &&    (last->next->env.command == AGP_CALL
           ||  last->next->env.command == AGP_GETATTR)) {
            last = last->next;
            count++;
        }
    agent->head = last->next;
    if (!agent->head)
        agent->tail = NULL;
    last->next = NULL;
    agent->queued -= count;
    agent->running = count;
    agent->busy = true;
    slot->chain = job;
    slot->last = last;
    slot->count = count;
    //  The send of the batch publishes this to the worker
    atomic_store_explicit (&slot->state, AGD_SLOT_HANDED,
                           memory_order_relaxed);
    return count;
}

//  Hand ready agents to idle workers, a fair share each: as many as
//  wait, spread over the threads idle or starting
static void
s_hand_out (self_t *self)
{
    while (self->ready_head && self->idle_head) {
        size_t takers = self->workers_idle + self->workers_starting;
        size_t share = (self->ready_count + takers - 1) / takers;
        if (share > AGD_BATCH)
            share = AGD_BATCH;
        worker_t *worker = self->idle_head;
        s_idle_remove (self, worker);
        agd_batch_t *batch = worker->batch;
        batch->count = 0;
        worker->outstanding = 1;    //  the END
        while (batch->count < share && self->ready_head)
            worker->outstanding += s_fill_slot (
                self, &batch->slots [batch->count++]);
        worker->open = true;
        worker->progress = self->now;
        worker->revocable = batch->count > 1;
        if (worker->revocable)
            self->batches_revocable++;
        self->workers_busy++;
        s_worker_send (self, worker, &batch, sizeof batch);
    }
}

//  Take back every chain of a worker's batch that it has not started,
//  and put their agents at the head of the ready queue, in their order.
//  Returns how many were taken back.
static size_t
s_revoke (self_t *self, worker_t *worker)
{
    size_t revoked = 0;
    agd_batch_t *batch = worker->batch;
    for (uint32_t i = batch->count; i-- > 0; ) {
        agd_slot_t *slot = &batch->slots [i];
        int handed = AGD_SLOT_HANDED;
        if (!atomic_compare_exchange_strong (&slot->state, &handed,
                                             AGD_SLOT_REVOKED))
            continue;
        agd_agent_t *agent = slot->chain->agent;
        slot->last->next = agent->head;
        agent->head = slot->chain;
        if (!agent->tail)
            agent->tail = slot->last;
        agent->queued += slot->count;
        agent->running -= slot->count;
        agent->busy = false;
        worker->outstanding -= slot->count;
        agent->ready = true;
        agent->next_ready = self->ready_head;
        self->ready_head = agent;
        if (!self->ready_tail)
            self->ready_tail = agent;
        self->ready_count++;
        revoked++;
    }
    //  Nothing is left to claim, or to take back
    if (worker->revocable) {
        worker->revocable = false;
        self->batches_revocable--;
    }
    return revoked;
}

//  Take back the unstarted chains of workers that have sent nothing for
//  a while: they are blocked in a method, and the agents behind it in
//  their batch should not wait for it
static void
s_revoke_stalled (self_t *self, int64_t now)
{
    size_t cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        if (worker->open && worker->revocable
        &&  now - worker->progress >= GROW_AFTER_US)
            s_revoke (self, worker);
}

//  Hand ready agents to idle workers; grow the pool if agents still wait
static void
s_dispatch (self_t *self)
{
    s_hand_out (self);
    int64_t now = self->now;
    if (self->batches_revocable) {
        if (now >= self->next_scan) {
            s_revoke_stalled (self, now);
            self->next_scan = now + GROW_AFTER_US;
            s_hand_out (self);
        }
    }
    //  Agents still wait, every thread is busy. Threads that finish
    //  quickly will take them soon; threads that block (sleep, I/O, a
    //  model call) will not. Grow only when agents have waited and no
    //  job has completed for a while: then the threads are blocked, not
    //  working. Quick calls keep few threads (as many as there are
    //  cores to run them), blocking calls still get a thread each.
    if (!self->ready_head || self->ready_count <= self->workers_starting) {
        self->starved_since = 0;
        return;
    }
    if (!self->starved_since)
        self->starved_since = now;
    if (now - self->starved_since < GROW_AFTER_US
    ||  now - self->last_done < GROW_AFTER_US)
        return;
    //  At most doubling the pool each time: many agents that only look
    //  blocked (slow calls, a slow machine) do not make the broker start
    //  hundreds of threads at once, and blocked ones still get theirs in
    //  a few rounds
    size_t room = MAX (self->workers_total, 1);
    while (room-- && self->ready_count > self->workers_starting
    &&     self->workers_total < (size_t) self->config.threads_max) {
        size_t before = self->workers_total;
        s_worker_spawn (self);
        if (self->workers_total == before)
            break;                  //  the system refused a thread
    }
    self->starved_since = 0;
}

static void
s_make_ready (self_t *self, agd_agent_t *agent)
{
    if (agent->busy || agent->ready || !agent->head)
        return;
    agent->ready = true;
    agent->next_ready = NULL;
    if (self->ready_tail)
        self->ready_tail->next_ready = agent;
    else
        self->ready_head = agent;
    self->ready_tail = agent;
    self->ready_count++;
}

static void
s_enqueue (self_t *self, agd_agent_t *agent, agd_job_t *job)
{
    job->agent = agent;
    job->next = NULL;
    if (agent->tail)
        agent->tail->next = job;
    else
        agent->head = job;
    agent->tail = job;
    agent->queued++;
    self->jobs_pending++;
    s_make_ready (self, agent);
}

//  ---------------------------------------------------------------------
//  Agents

//  An agent leaves the counts its limits are checked against: when
//  deleted (before its fini has run), or when freed
static void
s_agent_uncount (self_t *self, agd_agent_t *agent)
{
    if (agent->deleting)
        return;                     //  done already
    self->agents_counted--;
    if (agent->owner) {
        agent->owner->owned--;
        agd_clients_release (self->clients, agent->owner);
        agent->owner = NULL;
    }
}

static void
s_agent_free (self_t *self, agd_agent_t *agent)
{
    s_agent_uncount (self, agent);
    ag_idmap_delete (self->agents, agent->id);
    if (agent->name) {
        if (zhashx_lookup (self->names, agent->name) == agent)
            zhashx_delete (self->names, agent->name);
        free (agent->name);
    }
    free (agent);
}

//  From now on the agent takes no requests, and its name is free
static void
s_agent_deleting (self_t *self, agd_agent_t *agent)
{
    s_agent_uncount (self, agent);
    agent->deleting = true;
    if (agent->name) {
        zhashx_delete (self->names, agent->name);
        free (agent->name);
        agent->name = NULL;
    }
}

//  Answer every job still in an agent's mailbox with an error
static void
s_agent_flush (self_t *self, agd_agent_t *agent, int status,
               const char *reason)
{
    while (agent->head) {
        agd_job_t *job = agent->head;
        agent->head = job->next;
        agent->queued--;
        self->jobs_pending--;
        if (!job->answered)
            s_send_error (self, &job->routing, &job->env, status, "%s",
                          reason);
        if (job->env.word & AGP_FLAG_KEEP) {
            msgpack_sbuffer_clear (&self->buffer);
            ag_pack (&self->packer, "s", reason);
            zmq_msg_t body;
            agp_msg_init (&body, &job->env, self->buffer.data,
                          self->buffer.size);
            agd_store_complete (self->store, zmq_msg_data (&job->routing),
                                zmq_msg_size (&job->routing), job->env.corr,
                                status, &body, self->now, s_deliver_fetch,
                                self);
            zmq_msg_close (&body);
        }
        s_job_free (self, job);
    }
    agent->tail = NULL;
    if (agent->ready) {
        //  Take it off the ready queue
        agd_agent_t **link = &self->ready_head;
        agd_agent_t *prev = NULL;
        while (*link != agent) {
            prev = *link;
            link = &(*link)->next_ready;
        }
        *link = agent->next_ready;
        if (self->ready_tail == agent)
            self->ready_tail = prev;
        self->ready_count--;
        agent->ready = false;
    }
}

//  ---------------------------------------------------------------------
//  Management replies, packed by the broker

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t len = strlen (s);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, s, len);
}

static void
s_pack_info (self_t *self)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    agd_registry_t *registry = self->args->registry;
    msgpack_pack_map (pk, 12);
    s_pack_str (pk, "version");
    s_pack_str (pk, AG_VERSION_STRING);
    s_pack_str (pk, "protocol");
    s_pack_str (pk, AGP_SIGNATURE);
    s_pack_str (pk, "uptime_ms");
    msgpack_pack_uint64 (pk, (uint64_t) (ag_usecs () - self->started) / 1000);
    s_pack_str (pk, "endpoints");
    msgpack_pack_array (pk, zlist_size (self->args->bound));
    const char *endpoint = (const char *) zlist_first (self->args->bound);
    while (endpoint) {
        s_pack_str (pk, endpoint);
        endpoint = (const char *) zlist_next (self->args->bound);
    }
    s_pack_str (pk, "agents");
    msgpack_pack_uint64 (pk, ag_idmap_size (self->agents));
    s_pack_str (pk, "classes");
    msgpack_pack_array (pk, agd_registry_size (registry));
    for (size_t i = 0; i < agd_registry_size (registry); i++)
        agd_registry_pack_class (pk, agd_registry_at (registry, i));
    s_pack_str (pk, "threads");
    ag_pack (pk, "{s:u, s:u, s:u}",
             "busy", (uint64_t) self->workers_busy,
             "total", (uint64_t) self->workers_total,
             "max", (uint64_t) self->config.threads_max);
    s_pack_str (pk, "calls");
    ag_pack (pk, "{s:u, s:u}", "served", self->served,
             "failed", self->failed);
    s_pack_str (pk, "pending");
    msgpack_pack_uint64 (pk, self->jobs_pending);
    s_pack_str (pk, "results");
    msgpack_pack_uint64 (pk, agd_store_size (self->store));
    s_pack_str (pk, "clients");
    msgpack_pack_uint64 (pk, agd_clients_size (self->clients));
    s_pack_str (pk, "fetched");
    msgpack_pack_uint64 (pk, self->fetched);
}

static void
s_pack_list (self_t *self)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    int64_t now = ag_usecs ();
    size_t count = 0, cursor = 0;
    agd_agent_t *agent;
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        if (agent->alive && !agent->deleting)
            count++;
    msgpack_pack_array (pk, count);
    cursor = 0;
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        if (agent->alive && !agent->deleting)
            ag_pack (pk, "{s:u, s:s, s:s, s:u, s:u, s:u, s:b}",
                     "id", agent->id, "name", agent->name,
                     "class", agent->cls->name,
                     "served", agent->served,
                     "queued", (uint64_t) agent->queued,
                     "age_ms", (uint64_t) (now - agent->created) / 1000,
                     "busy", (int) agent->busy);
}

static void
s_pack_created (self_t *self, agd_agent_t *agent)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "id");
    msgpack_pack_uint64 (pk, agent->id);
    s_pack_str (pk, "name");
    if (agent->name)
        s_pack_str (pk, agent->name);
    else
        msgpack_pack_nil (pk);
    s_pack_str (pk, "class");
    agd_registry_pack_class (pk, agent->cls);
}

//  ---------------------------------------------------------------------
//  Requests

//  How long after a drop its suspects are probed
static int64_t
s_grace_us (self_t *self)
{
    return MAX ((int64_t) self->config.client_grace_ms * 1000,
                PROBE_AFTER_US);
}

//  Look at the suspects no later than due
static void
s_check_by (self_t *self, int64_t due)
{
    if (!self->next_client_check || self->next_client_check > due)
        self->next_client_check = due;
}

static void
s_handle_create (self_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_create_t create;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_create_decode (&create, &body, &reason)) {
        s_send_error (self, &job->routing, &job->env, AG_BAD_REQUEST,
                      "CREATE: %s", reason);
        s_job_free (self, job);
        return;
    }
    const ag_class_t *cls = agd_registry_find (self->args->registry,
        create.class_name.ptr, create.class_name.len);
    if (!cls) {
        s_send_error (self, &job->routing, &job->env, AG_NO_CLASS,
                      "no class '%.*s' on this server",
                      (int) create.class_name.len, create.class_name.ptr);
        s_job_free (self, job);
        return;
    }
    char *name = NULL;
    if (create.name.ptr) {
        name = strndup (create.name.ptr, create.name.len);
        if (zhashx_lookup (self->names, name)) {
            s_send_error (self, &job->routing, &job->env, AG_NAME_TAKEN,
                          "an agent named '%s' already exists", name);
            free (name);
            s_job_free (self, job);
            return;
        }
    }
    agd_client_t *client = job->client;
    const char *limit = NULL;
    size_t count = 0;
    if (self->agents_counted >= self->config.max_agents) {
        limit = "this server holds %zu agents, its limit"
                " (server/max_agents)";
        count = self->agents_counted;
    }
    else
    if (!create.detached
    &&  client->owned >= self->config.max_agents_per_client) {
        limit = "this client owns %zu agents, the limit"
                " (server/max_agents_per_client)";
        count = client->owned;
    }
    if (limit) {
        s_send_error (self, &job->routing, &job->env, AG_BUSY, limit, count);
        free (name);
        s_job_free (self, job);
        return;
    }
    agd_agent_t *agent = (agd_agent_t *) zmalloc (sizeof (agd_agent_t));
    agent->id = ++self->next_agent_id;
    agent->cls = cls;
    agent->name = name;
    self->agents_counted++;
    if (!create.detached) {
        agent->owner = client;
        client->owned++;
        //  A connection that dropped just now may be this client's,
        //  its CREATE read after the drop was seen: a suspect too
        if (self->last_suspect && !client->suspect_since
        &&  self->now - self->last_suspect < PROBE_AFTER_US) {
            client->suspect_since = self->now;
            s_check_by (self, self->now + s_grace_us (self));
        }
    }
    agent->created = ag_usecs ();
    ag_idmap_insert (self->agents, agent->id, agent);
    if (name)
        zhashx_insert (self->names, name, agent);
    job->env.agent = agent->id;
    s_enqueue (self, agent, job);
}

//  LOOKUP: an agent by name or id, answered as its CREATE was
static void
s_handle_lookup (self_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_lookup_t lookup;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_lookup_decode (&lookup, &body, &reason)) {
        s_send_error (self, &job->routing, &job->env, AG_BAD_REQUEST,
                      "LOOKUP: %s", reason);
        s_job_free (self, job);
        return;
    }
    agd_agent_t *agent;
    if (lookup.name.ptr) {
        char name [AGP_MAX_NAME + 1];
        memcpy (name, lookup.name.ptr, lookup.name.len);
        name [lookup.name.len] = 0;
        agent = (agd_agent_t *) zhashx_lookup (self->names, name);
        if (!agent)
            s_send_error (self, &job->routing, &job->env, AG_NO_AGENT,
                          "no agent named '%s' on this server", name);
    }
    else {
        agent = (agd_agent_t *) ag_idmap_lookup (self->agents, lookup.id);
        if (agent && agent->deleting)
            agent = NULL;
        if (!agent)
            s_send_error (self, &job->routing, &job->env, AG_NO_AGENT,
                          "no agent %" PRIu64 " on this server", lookup.id);
    }
    if (agent) {
        job->env.agent = agent->id;
        s_pack_created (self, agent);
        s_send_packed (self, &job->routing, &job->env);
    }
    s_job_free (self, job);
}

static void
s_handle_fetch (self_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_fetch_t fetch;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_fetch_decode (&fetch, &body, &reason)) {
        s_send_error (self, &job->routing, &job->env, AG_BAD_REQUEST,
                      "FETCH: %s", reason);
        s_job_free (self, job);
        return;
    }
    int status;
    zmq_msg_t result;
    zmq_msg_init (&result);
    int found = agd_store_fetch (self->store, fetch.owner.ptr, fetch.owner.len,
                                 fetch.corr, &job->routing, job->env.corr,
                                 &status, &result);
    if (found == AG_OK)
        self->fetched++;
    if (found == AG_OK)
        s_send_reply (self, &job->routing, AGP_FETCH, status, job->env.corr,
                      0, agp_msg_body (&result), agp_msg_body_size (&result),
                      NULL);
    else
    if (found == AG_GONE)
        s_send_error (self, &job->routing, &job->env, AG_GONE,
                      "the result of call %" PRIu64 " is gone: results are"
                      " kept %d ms, at most %zu of them", fetch.corr,
                      self->config.retention_ms, self->config.retention_max);
    else
    if (found == AG_BUSY)
        s_send_error (self, &job->routing, &job->env, AG_BUSY,
                      "too many fetchers already wait for call %" PRIu64,
                      fetch.corr);
    //  AG_PENDING: the store answers when the result comes in
    zmq_msg_close (&result);
    s_job_free (self, job);
}

//  Count a request that goes to a mailbox against its client. Returns
//  0, or -1 having answered it (the client is over its limit).
static int
s_admit (self_t *self, agd_job_t *job)
{
    agd_client_t *client = agd_clients_get (self->clients,
        zmq_msg_data (&job->routing), zmq_msg_size (&job->routing));
    if (!client) {
        s_send_error (self, &job->routing, &job->env, AG_INTERNAL,
                      "out of memory");
        return -1;
    }
    if (client->pending >= self->config.max_pending_per_client) {
        s_send_error (self, &job->routing, &job->env, AG_BUSY,
                      "this client has %zu requests pending, the limit"
                      " (server/max_pending_per_client)", client->pending);
        agd_clients_release (self->clients, client);
        return -1;
    }
    client->pending++;
    job->client = client;
    return 0;
}

static void
s_handle_request (self_t *self, agd_job_t *job)
{
    agp_envelope_t *env = &job->env;
    if (self->next_client_check) {
        //  A client heard from is not gone
        agd_client_t *client = agd_clients_find (self->clients,
            zmq_msg_data (&job->routing), zmq_msg_size (&job->routing));
        if (client)
            client->suspect_since = 0;
    }
    if (self->config.log_level >= AGD_LOG_INFO)
        zsys_info ("request command=%s corr=%" PRIu64 " agent=%" PRIu64
                   " size=%zu", agp_command_name (env->command), env->corr,
                   env->agent, agp_msg_body_size (&job->body));
    if (env->command == AGP_PING) {
        s_send_reply (self, &job->routing, AGP_PING, AG_OK, env->corr, 0,
                      NULL, 0, NULL);
        s_job_free (self, job);
        return;
    }
    if (env->command == AGP_INFO || env->command == AGP_LIST) {
        if (env->command == AGP_INFO)
            s_pack_info (self);
        else
            s_pack_list (self);
        s_send_packed (self, &job->routing, env);
        s_job_free (self, job);
        return;
    }
    if (env->command == AGP_FETCH) {
        s_handle_fetch (self, job);
        return;
    }
    if (env->command == AGP_LOOKUP) {
        s_handle_lookup (self, job);
        return;
    }
    if (self->stopping) {
        s_send_error (self, &job->routing, env, AG_STOPPING,
                      "server is stopping");
        s_job_free (self, job);
        return;
    }
    if (s_admit (self, job)) {
        s_job_free (self, job);
        return;
    }
    if (env->command == AGP_CREATE) {
        s_handle_create (self, job);
        return;
    }
    //  CALL, GETATTR, DELETE: to an agent's mailbox
    agd_agent_t *agent = (agd_agent_t *) ag_idmap_lookup (self->agents,
                                                          env->agent);
    if (!agent || agent->deleting) {
        s_send_error (self, &job->routing, env, AG_NO_AGENT,
                      "no agent %" PRIu64 " on this server", env->agent);
        s_job_free (self, job);
        return;
    }
    if (env->command == AGP_DELETE) {
        //  Answered now: from here on the agent takes no requests. Its
        //  fini runs after the calls queued before this one.
        s_agent_deleting (self, agent);
        s_send_reply (self, &job->routing, AGP_DELETE, AG_OK, env->corr,
                      env->agent, NULL, 0, NULL);
        job->answered = true;
    }
    else
    if (env->command == AGP_CALL && (env->word & AGP_FLAG_KEEP)
    &&  agd_store_expect (self->store, zmq_msg_data (&job->routing),
                          zmq_msg_size (&job->routing), env->corr))
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "result store full (%zu pending): call %" PRIu64
                 " runs but its result is not kept",
                 agd_store_size (self->store), env->corr);
    s_enqueue (self, agent, job);
}

//  Read one message from the frontend. Returns 0, or -1 if none is
//  waiting.
static int
s_frontend_recv (self_t *self)
{
    agd_job_t *job = s_job_new (self);
    if (!job)
        return -1;
    if (zmq_msg_recv (&job->routing, self->frontend, ZMQ_DONTWAIT) == -1) {
        s_job_free (self, job);
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
        s_job_free (self, job);
        return 0;
    }
    if (rc == -2) {
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "refused a peer of another protocol version");
        job->env.command = AGP_PING;
        s_send_error (self, &job->routing, &job->env, AG_BAD_VERSION,
                      "this server speaks " AGP_SIGNATURE " only");
        s_job_free (self, job);
        return 0;
    }
    if (rc == -3 || (job->env.command & AGP_REPLY)) {
        job->env.command &= (uint8_t) ~AGP_REPLY;
        if (job->env.command < AGP_PING || job->env.command > AGP_LAST_COMMAND)
            job->env.command = AGP_PING;
        s_send_error (self, &job->routing, &job->env, AG_BAD_REQUEST,
                      "bad envelope: unknown command, or shorter than %d"
                      " octets", AGP_ENVELOPE_SIZE);
        s_job_free (self, job);
        return 0;
    }
    if (parts != 2) {
        s_send_error (self, &job->routing, &job->env, AG_BAD_REQUEST,
                      "a request is 1 frame (envelope and body), not %d",
                      parts - 1);
        s_job_free (self, job);
        return 0;
    }
    if (agp_msg_body_size (&job->body) > self->config.max_message) {
        s_send_error (self, &job->routing, &job->env, AG_TOO_LARGE,
                      "body of %zu bytes is over the limit of %zu",
                      agp_msg_body_size (&job->body),
                      self->config.max_message);
        s_job_free (self, job);
        return 0;
    }
    s_handle_request (self, job);
    return 0;
}

//  ---------------------------------------------------------------------
//  Results from workers

static void
s_job_done (self_t *self, agd_job_t *job)
{
    agd_agent_t *agent = job->agent;
    agent->busy = --agent->running > 0;
    self->jobs_pending--;
    int command = job->env.command;
    if (command == AGP_CREATE) {
        if (job->status == AG_OK) {
            agent->alive = true;
            s_pack_created (self, agent);
            s_send_packed (self, &job->routing, &job->env);
            if (self->config.log_level >= AGD_LOG_INFO)
                zsys_info ("created agent=%" PRIu64 " class=%s", agent->id,
                           agent->cls->name);
        }
        else {
            s_send_reply (self, &job->routing, command, job->status,
                          job->env.corr, 0, NULL, 0, &job->body);
            s_agent_flush (self, agent, AG_NO_AGENT,
                           "agent init failed; it does not exist");
            s_agent_free (self, agent);
            agent = NULL;
        }
    }
    else
    if (command == AGP_DELETE) {
        s_agent_flush (self, agent, AG_NO_AGENT, "agent deleted");
        s_agent_free (self, agent);
        agent = NULL;
    }
    else {
        agent->served++;
        if (job->status >= 300)
            agent->failed++;
        if (command == AGP_CALL && (job->env.word & AGP_FLAG_KEEP))
            agd_store_complete (self->store, zmq_msg_data (&job->routing),
                                zmq_msg_size (&job->routing), job->env.corr,
                                job->status, &job->body, self->now,
                                s_deliver_fetch, self);
        s_send_reply (self, &job->routing, command, job->status,
                      job->env.corr, job->env.agent, NULL, 0, &job->body);
    }
    s_job_free (self, job);
    if (agent)
        s_make_ready (self, agent);
}

//  One thing less outstanding for a worker; idle when nothing is
static void
s_worker_less (self_t *self, worker_t *worker)
{
    if (--worker->outstanding)
        return;
    worker->open = false;
    if (worker->revocable) {
        worker->revocable = false;
        self->batches_revocable--;
    }
    self->workers_busy--;
    s_idle_push (self, worker);
}

static int
s_backend_recv (self_t *self)
{
    uint8_t identity [5];
    int size = zmq_recv (self->backend, identity, sizeof identity,
                         ZMQ_DONTWAIT);
    if (size == -1)
        return -1;
    uint8_t frame [8];
    int frame_size = zmq_recv (self->backend, frame, sizeof frame, 0);
    uint32_t id;
    memcpy (&id, identity + 1, 4);
    worker_t *worker = (worker_t *) ag_idmap_lookup (self->workers, id);
    if (!worker || size != 5)
        return 0;                   //  cannot happen: inproc, our threads
    if (frame_size == sizeof (agd_job_t *)) {
        agd_job_t *job;
        memcpy (&job, frame, sizeof job);
        self->last_done = worker->progress = self->now;
        s_job_done (self, job);
        s_worker_less (self, worker);
    }
    else
    if (frame_size == 1 && frame [0] == AGD_WORKER_END)
        s_worker_less (self, worker);
    else
    if (frame_size == 1 && frame [0] == AGD_WORKER_READY) {
        self->workers_starting--;
        s_idle_push (self, worker);
    }
    else
    if (frame_size == 1 && frame [0] == AGD_WORKER_BYE) {
        if (worker->idle)
            s_idle_remove (self, worker);
        if (worker->open) {
            //  It could not send (the context is going): what it had
            //  not started goes back to the ready queue
            s_revoke (self, worker);
            worker->open = false;
            self->workers_busy--;
        }
        ag_idmap_delete (self->workers, id);
        free (worker->batch);
        free (worker);
        self->workers_total--;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Clients that go
//
//  A connection that drops may be a client that has gone for good,
//  with agents that nobody will delete. ZeroMQ does not say whose
//  connection dropped, so every client owning agents becomes a suspect;
//  after the client grace time each suspect not heard from is probed (a
//  message it ignores, which ZMQ_ROUTER_MANDATORY refuses when the
//  client has no connection), and the agents of those gone are deleted.


static void
s_clients_suspect (self_t *self)
{
    //  At most once a probe interval: a storm of connections that come
    //  and go costs one walk of the clients per interval, not per drop
    if (self->last_suspect
    &&  self->now - self->last_suspect < PROBE_AFTER_US) {
        self->suspect_again = true;
        s_check_by (self, self->last_suspect + PROBE_AFTER_US);
        return;
    }
    self->last_suspect = self->now;
    self->suspect_again = false;
    size_t cursor = 0;
    agd_client_t *client = NULL;
    while ((client = agd_clients_next (self->clients, &cursor, client)))
        if (client->owned && !client->suspect_since) {
            client->suspect_since = self->now;
            s_check_by (self, self->now + s_grace_us (self));
        }
}

//  True unless the client has no connection to us
static bool
s_reachable (self_t *self, agd_client_t *client)
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
//  had sent DELETE for them: one walk of the agents, however many
//  clients went. Returns true if some are left (out of memory), their
//  owners suspects again.
static bool
s_clients_orphan (self_t *self, size_t gone)
{
    size_t count = 0, cursor = 0;
    bool left = false;
    agd_agent_t *agent;
    zlist_t *owned = zlist_new ();
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        if (agent->owner && agent->owner->gone_in == self->checks
        &&  !agent->deleting)
            zlist_append (owned, agent);
    while ((agent = (agd_agent_t *) zlist_pop (owned))) {
        agd_job_t *job = s_job_new (self);
        if (!job) {
            agent->owner->suspect_since = self->now;
            left = true;
            continue;
        }
        job->env.command = AGP_DELETE;
        job->env.agent = agent->id;
        job->answered = true;       //  nobody to answer
        //  This may free the owner's entry, with its last agent
        s_agent_deleting (self, agent);
        s_enqueue (self, agent, job);
        count++;
    }
    zlist_destroy (&owned);
    AGD_LOG (self->config, AGD_LOG_NOTICE, zsys_notice,
             "%zu client%s gone for %d ms: deleting the %zu agents they"
             " owned", gone, gone == 1? "": "s",
             self->config.client_grace_ms, count);
    return left;
}

static void
s_clients_check (self_t *self)
{
    if (self->suspect_again)
        s_clients_suspect (self);
    int64_t wait = s_grace_us (self);
    self->checks++;
    self->next_client_check = 0;
    size_t gone = 0, cursor = 0;
    agd_client_t *client = NULL;
    //  Probing changes nothing in the table; orphaning, after, may
    while ((client = agd_clients_next (self->clients, &cursor, client))) {
        if (!client->suspect_since)
            continue;
        if (self->now - client->suspect_since < wait) {
            s_check_by (self, client->suspect_since + wait);
            continue;
        }
        client->suspect_since = 0;
        if (!s_reachable (self, client)) {
            client->gone_in = self->checks;
            gone++;
        }
    }
    if (gone && s_clients_orphan (self, gone))
        s_check_by (self, self->now + wait);
    //  A drop seen too soon after the last walk is still to be handled
    if (self->suspect_again)
        s_check_by (self, self->last_suspect + PROBE_AFTER_US);
}

//  Connection events: a drop makes owners suspects; a peer that does
//  not speak ZeroMQ is refused by libzmq, and logged here
static void
s_monitor_recv (self_t *self)
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
        if (number == ZMQ_EVENT_DISCONNECTED)
            dropped = true;
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
//  Housekeeping and stopping

static void
s_reap_workers (self_t *self, int64_t now)
{
    while (self->idle_tail
    &&     self->workers_total > (size_t) self->config.threads_min
    &&     now - self->idle_tail->idle_since
           >= (int64_t) self->config.idle_ms * 1000) {
        worker_t *worker = self->idle_tail;
        s_idle_remove (self, worker);
        worker->leaving = true;
        char command = AGD_WORKER_TERM;
        s_worker_send (self, worker, &command, 1);
        //  Counted out when it says bye
    }
}

static void
s_begin_stop (self_t *self)
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
//  Workers holding a job not back yet (a worker whose last job is back
//  but whose END is not, runs no agent code)
static size_t
s_workers_running (self_t *self)
{
    size_t running = 0, cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        running += worker->open && worker->outstanding > 1;
    return running;
}

static void
s_finish_stop (self_t *self)
{
    //  Chains no thread has started are not going to run now
    size_t cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        if (worker->open)
            s_revoke (self, worker);
    cursor = 0;
    agd_agent_t *agent;
    while ((agent = (agd_agent_t *) ag_idmap_next (self->agents, &cursor,
                                                   NULL)))
        if (agent->head)
            s_agent_flush (self, agent, AG_STOPPING,
                           "server stopped before this request ran");
    size_t running = s_workers_running (self);
    if (running)
        AGD_LOG (self->config, AGD_LOG_WARNING, zsys_warning,
                 "stopped with %zu calls still running after the grace time",
                 running);
    self->stopped = true;
    zstr_send (self->pipe, "STOPPED");
}

static void
s_teardown (self_t *self)
{
    //  Tell every idle worker to go, and wait a little for them; a busy
    //  one (still running after the grace time) is left to finish alone
    int64_t deadline = ag_usecs () + 2000000;
    while (self->workers_total > self->workers_busy
    &&     ag_usecs () < deadline) {
        while (self->idle_head) {
            worker_t *worker = self->idle_head;
            s_idle_remove (self, worker);
            worker->leaving = true;
            char command = AGD_WORKER_TERM;
            s_worker_send (self, worker, &command, 1);
        }
        zmq_pollitem_t item = { self->backend, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) > 0)
            while (s_backend_recv (self) == 0)
                ;
    }
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
        ag_fini_fn *fini = ag_class_fini (agent->cls);
        if (agent->alive && fini)
            fini (agent->state);
        free (agent->state);
        s_agent_free (self, agent);
    }
    zlist_destroy (&agents);
    //  Threads still running agent code keep the plugins loaded
    self->args->abandoned = s_workers_running (self);
}

//  ---------------------------------------------------------------------
//  Actor

static self_t *
s_self_new (zsock_t *pipe, agd_broker_args_t *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->pipe = pipe;
    self->args = args;
    self->config = args->config;
    self->agents = ag_idmap_new ();
    self->names = zhashx_new ();
    self->workers = ag_idmap_new ();
    self->store = agd_store_new (self->config.retention_ms,
                                 self->config.retention_max);
    self->clients = agd_clients_new ();

    msgpack_sbuffer_init (&self->buffer);
    msgpack_packer_init (&self->packer, &self->buffer, msgpack_sbuffer_write);
    msgpack_zone_init (&self->zone, 2048);
    self->started = self->now = ag_usecs ();
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
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
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
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor, NULL))) {
        //  A thread left running may still read its batch: it stays
        if (!worker->open)
            free (worker->batch);
        free (worker);
    }
    ag_idmap_destroy (&self->workers);
    ag_idmap_destroy (&self->agents);
    zhashx_destroy (&self->names);
    agd_store_destroy (&self->store);
    agd_clients_destroy (&self->clients);

    if (self->monitor) {
        zmq_socket_monitor (self->frontend, NULL, 0);
        zmq_close (self->monitor);
    }
    msgpack_sbuffer_destroy (&self->buffer);
    msgpack_zone_destroy (&self->zone);
    zsock_destroy (&self->backend_sock);
    zsock_destroy (&self->frontend_sock);
    free (self);
    *self_p = NULL;
}

static int
s_bind (self_t *self)
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
    self_t *self = s_self_new (pipe, args);
    if (s_bind (self)) {
        s_self_destroy (&self);
        zsock_signal (pipe, 1);
        //  Wait for $TERM so zactor_destroy finds us where it expects
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
    for (int i = 0; i < self->config.threads_min; i++)
        s_worker_spawn (self);
    zsock_signal (pipe, 0);

    zmq_pollitem_t items [] = {
        { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
        { self->frontend, 0, ZMQ_POLLIN, 0 },
        { self->backend, 0, ZMQ_POLLIN, 0 },
        { NULL, args->stop_fd, ZMQ_POLLIN, 0 },
        { self->monitor, 0, ZMQ_POLLIN, 0 }
    };
    int item_count = self->monitor? 5: 4;
    self->next_tick = ag_usecs () + TICK_MS * 1000;
    while (!self->terminated || !self->stopped) {
        int64_t now = ag_usecs ();
        int64_t timeout = (self->next_tick - now) / 1000;
        if (self->stopping && !self->stopped)
            timeout = MIN (timeout, (self->stop_deadline - now) / 1000);
        if (self->batches_revocable)
            timeout = MIN (timeout, (self->next_scan - now + 999) / 1000);
        if (self->starved_since)
            timeout = MIN (timeout, (MAX (self->starved_since,
                                          self->last_done)
                                     + GROW_AFTER_US - now + 999) / 1000);
        if (self->next_client_check && !self->stopping)
            timeout = MIN (timeout, (self->next_client_check - now + 999)
                                    / 1000);
        if (timeout < 0)
            timeout = 0;
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
        //  Workers first: each result frees a worker for what follows
        for (int i = 0; i < BATCH && s_backend_recv (self) == 0; i++)
            ;
        for (int i = 0; i < BATCH && s_frontend_recv (self) == 0; i++)
            ;
        if (item_count > 4 && (items [4].revents & ZMQ_POLLIN))
            s_monitor_recv (self);
        if (self->next_client_check && self->now >= self->next_client_check
        &&  !self->stopping)
            s_clients_check (self);
        s_dispatch (self);

        now = self->now;
        if (now >= self->next_tick) {
            agd_store_expire (self->store, now, s_deliver_fetch, self);
            s_reap_workers (self, now);
            self->next_tick = now + TICK_MS * 1000;
        }
        if (self->stopping && !self->stopped
        &&  (self->jobs_pending == 0 || now >= self->stop_deadline))
            s_finish_stop (self);
    }
    s_teardown (self);
    s_self_destroy (&self);
}
