/*  =========================================================================
    agd_pool - the worker threads, and how mailboxes are handed to them

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Idle workers are handed ready agents: each agent's queued calls in
//  one chain, and up to AGD_BATCH agents at once, so a busy server wakes
//  a worker once for many jobs. A chain the worker has not started when
//  it turns out to be blocked (nothing back from it for a while) is
//  taken back and handed to another thread. When no thread is idle the
//  pool grows, up to its maximum, and threads idle for long enough are
//  let go. Results come back one job at a time, so each reply leaves as
//  soon as its job is done.
//  @end

#include "agd_broker.h"

#define CHAIN           256         //  jobs of one agent per hand-off

//  Workers

static void
s_idle_push (agd_broker_t *self, worker_t *worker)
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
s_idle_remove (agd_broker_t *self, worker_t *worker)
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
s_worker_send (agd_broker_t *self, worker_t *worker, const void *data,
               size_t size)
{
    uint8_t identity [5] = { 'W' };
    memcpy (identity + 1, &worker->id, 4);
    zmq_send (self->backend, identity, sizeof identity, ZMQ_SNDMORE);
    zmq_send (self->backend, data, size, 0);
}

void
agd_pool_spawn (agd_broker_t *self)
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
s_fill_slot (agd_broker_t *self, agd_slot_t *slot)
{
    agd_agent_t *agent = self->ready_head;
    agd_pool_unready (self, agent);

    agd_job_t *job = agent->head;
    agd_job_t *last = job;
    uint32_t count = 1;
    job->state = AGD_JOB_HANDED;
    if (job->env.command == AGP_CALL || job->env.command == AGP_GETATTR)
        while (last->next && count < CHAIN
        &&    (last->next->env.command == AGP_CALL
           ||  last->next->env.command == AGP_GETATTR)) {
            last = last->next;
            last->state = AGD_JOB_HANDED;
            count++;
        }
    agent->head = last->next;
    if (!agent->head)
        agent->tail = NULL;
    last->next = NULL;
    agent->queued -= count;
    agent->running = count;
    agent->busy = true;
    agent->chain = job;
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
s_hand_out (agd_broker_t *self)
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
size_t
agd_pool_revoke (agd_broker_t *self, worker_t *worker)
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
        for (agd_job_t *job = slot->chain; job; job = job->next)
            job->state = AGD_JOB_QUEUED;
        slot->last->next = agent->head;
        agent->head = slot->chain;
        if (!agent->tail)
            agent->tail = slot->last;
        agent->queued += slot->count;
        agent->running -= slot->count;
        agent->busy = false;
        agent->chain = NULL;
        worker->outstanding -= slot->count;
        agent->ready = true;
        agent->prev_ready = NULL;
        agent->next_ready = self->ready_head;
        if (self->ready_head)
            self->ready_head->prev_ready = agent;
        else
            self->ready_tail = agent;
        self->ready_head = agent;
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
s_revoke_stalled (agd_broker_t *self, int64_t now)
{
    size_t cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        if (worker->open && worker->revocable
        &&  now - worker->progress >= GROW_AFTER_US)
            agd_pool_revoke (self, worker);
}

//  Hand ready agents to idle workers; grow the pool if agents still wait
void
agd_pool_dispatch (agd_broker_t *self)
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
        agd_pool_spawn (self);
        if (self->workers_total == before)
            break;                  //  the system refused a thread
    }
    self->starved_since = 0;
}

void
agd_pool_make_ready (agd_broker_t *self, agd_agent_t *agent)
{
    if (agent->host) {
        agd_hosts_ready (self, agent);
        return;
    }
    if (agent->busy || agent->ready || !agent->head || agent->waiting)
        return;
    agent->ready = true;
    agent->next_ready = NULL;
    agent->prev_ready = self->ready_tail;
    if (self->ready_tail)
        self->ready_tail->next_ready = agent;
    else
        self->ready_head = agent;
    self->ready_tail = agent;
    self->ready_count++;
}

void
agd_pool_unready (agd_broker_t *self, agd_agent_t *agent)
{
    if (!agent->ready)
        return;
    if (agent->prev_ready)
        agent->prev_ready->next_ready = agent->next_ready;
    else
        self->ready_head = agent->next_ready;
    if (agent->next_ready)
        agent->next_ready->prev_ready = agent->prev_ready;
    else
        self->ready_tail = agent->prev_ready;
    agent->prev_ready = agent->next_ready = NULL;
    agent->ready = false;
    self->ready_count--;
}

void
agd_pool_enqueue (agd_broker_t *self, agd_agent_t *agent, agd_job_t *job)
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
    agd_pool_make_ready (self, agent);
}

//  ---------------------------------------------------------------------
//  Results from workers

//  A job is done with (run by a worker or a host, or failed before it
//  could run): answer it, and take its agent on to what is next
void
agd_pool_finish (agd_broker_t *self, agd_job_t *job)
{
    agd_agent_t *agent = job->agent;
    self->jobs_pending--;
    int command = job->env.command;
    if (command == AGP_CREATE) {
        if (job->status == AG_OK) {
            agent->alive = true;
            if (!agent->deleting)
                agd_agents_listed (self, agent);
            agd_agents_pack_created (self, agent);
            agd_broker_send_packed (self, job);
            if (self->config.log_level >= AGD_LOG_INFO)
                zsys_info ("created agent=%" PRIu64 " class=%s", agent->id,
                           agent->cls->name);
        }
        else {
            agd_broker_reply_frame (self, job, 0, false);
            agd_agents_flush (self, agent, AG_NO_AGENT,
                              "agent init failed; it does not exist");
            agd_agents_free (self, agent);
            agent = NULL;
        }
    }
    else
    if (command == AGP_DELETE) {
        agd_agents_flush (self, agent, AG_NO_AGENT, "agent deleted");
        agd_agents_free (self, agent);
        agent = NULL;
    }
    else {
        //  Flagged after the worker's last look: answered cancelled, as
        //  the CANCEL's reply ("running") said
        int cancel = atomic_load (&job->cancel);
        if (cancel && job->status != AG_CANCELLED && !job->answered) {
            char reason [128];
            snprintf (reason, sizeof reason, "call %" PRIu64 " was cancelled"
                      " %s, while it ran", job->env.corr,
                      cancel == AGD_CANCEL_DELETED? "as its agent was deleted"
                                                  : "by its caller");
            zmq_msg_close (&job->body);
            job->framed = agd_frame_reason (&job->body, reason) == 0;
            if (!job->framed)
                zmq_msg_init (&job->body);
            job->status = AG_CANCELLED;
        }
        agent->served++;
        if (job->status >= 300)
            agent->failed++;
        bool shared = false;
        if (job->producing && job->framed) {
            shared = agd_store_complete (self->store,
                                         zmq_msg_data (&job->routing),
                                         zmq_msg_size (&job->routing),
                                         job->env.corr, job->status,
                                         &job->body, self->now,
                                         agd_broker_deliver, self);
            job->producing = false;
        }
        //  A call answered at its deadline while a worker held it has
        //  had its reply
        if (!job->answered)
            agd_broker_reply_frame (self, job, job->env.agent, shared);
    }
    agd_broker_job_free (self, job);
    if (agent)
        agd_pool_make_ready (self, agent);
}

void
agd_pool_fail (agd_broker_t *self, agd_job_t *job, int status,
               const char *reason)
{
    zmq_msg_close (&job->body);
    job->framed = agd_frame_reason (&job->body, reason) == 0;
    if (!job->framed)
        zmq_msg_init (&job->body);
    job->status = (uint16_t) status;
    agd_pool_finish (self, job);
}

//  A worker is done with a job. One whose arguments hold futures comes
//  back unrun, with the rest of its agent's chain: those go back to the
//  mailbox, in order, behind it while its futures resolve.
static void
s_job_done (agd_broker_t *self, worker_t *worker, agd_job_t *job)
{
    agd_agent_t *agent = job->agent;
    agent->running--;
    //  Jobs come back in the order of their chain
    if (agent->chain == job)
        agent->chain = agent->running? job->next: NULL;
    if (job->refs && !job->resolved) {
        agd_job_t *rest = job->next;
        job->next = NULL;
        agent->chain = NULL;
        if (rest) {
            agd_job_t *last = rest;
            uint32_t count = 1;
            last->state = AGD_JOB_QUEUED;
            while (last->next) {
                last = last->next;
                last->state = AGD_JOB_QUEUED;
                count++;
            }
            last->next = agent->head;
            agent->head = rest;
            if (!agent->tail)
                agent->tail = last;
            agent->queued += count;
            agent->running -= count;
            worker->outstanding -= count;
        }
        agent->busy = agent->running > 0;
        //  Cancelled since the worker looked: no futures are fetched
        if (atomic_load (&job->cancel)) {
            char reason [128];
            snprintf (reason, sizeof reason, "call %" PRIu64 " was cancelled"
                      " before it ran", job->env.corr);
            agd_pool_fail (self, job, AG_CANCELLED, reason);
            return;
        }
        agd_refs_start (self, job);
        return;
    }
    agent->busy = agent->running > 0;
    agd_pool_finish (self, job);
}

//  One thing less outstanding for a worker; idle when nothing is
static void
s_worker_less (agd_broker_t *self, worker_t *worker)
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

int
agd_pool_recv (agd_broker_t *self)
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
        s_job_done (self, worker, job);
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
            agd_pool_revoke (self, worker);
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
void
agd_pool_reap (agd_broker_t *self, int64_t now)
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

//  Workers holding a job not back yet (a worker whose last job is back
//  but whose END is not, runs no agent code)
size_t
agd_pool_running (agd_broker_t *self)
{
    size_t running = 0, cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        running += worker->open && worker->outstanding > 1;
    return running;
}

void
agd_pool_revoke_all (agd_broker_t *self)
{
    size_t cursor = 0;
    worker_t *worker;
    while ((worker = (worker_t *) ag_idmap_next (self->workers, &cursor,
                                                 NULL)))
        if (worker->open)
            agd_pool_revoke (self, worker);
}

//  Tell every idle worker to go, and wait a little for them; a busy one
//  (still running after the grace time) is left to finish alone
void
agd_pool_stop (agd_broker_t *self)
{
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
            while (agd_pool_recv (self) == 0)
                ;
    }
}

//  How long the broker may sleep before the pool needs it, in ms
int64_t
agd_pool_timeout (agd_broker_t *self, int64_t now)
{
    int64_t timeout = INT64_MAX;
    if (self->batches_revocable)
        timeout = MIN (timeout, (self->next_scan - now + 999) / 1000);
    if (self->starved_since)
        timeout = MIN (timeout, (MAX (self->starved_since, self->last_done)
                                 + GROW_AFTER_US - now + 999) / 1000);
    return timeout;
}
