/*  =========================================================================
    agd_cancel - calls whose callers no longer wait for them

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A call is cancelled by its caller (CANCEL) or because its agent is
//  deleted (DELETE, or its owner gone). Where the call is decides what
//  cancelling it does:
//
//  - in its agent's mailbox: taken out and answered 499 (AG_CANCELLED)
//    at once; it never runs;
//  - waiting for its argument futures: the waits stop, and it is
//    answered 499 at once;
//  - handed to a worker: its cancel flag is set. A worker that has not
//    started it yet answers 499 without running it; a method that runs
//    sees ag_call_cancelled (), and whatever it returns, the call is
//    answered 499 (and a kept result is that 499), so that whoever
//    fetches the result sees what the caller saw.
//
//  Deadlines: a call's deadline is read from the end of its frame as it
//  arrives (PROTOCOL.md 4.4), without decoding it, and the call goes on
//  a min-heap of deadlines. At its deadline a call still in its agent's
//  mailbox, or held by a worker (running, or behind a call that blocks
//  that worker), is answered 504, and what the worker later makes of it
//  is dropped: one that has not started never runs, and leaves the
//  mailbox at its turn. One waiting for its argument futures stops
//  waiting and is answered 504. The worker
//  compares the deadline with the time before it runs a call and after,
//  and the argument futures of a call wait no longer than its deadline
//  (agd_refs.c). A job leaves the heap when it goes, so the heap holds
//  no more than the calls pending.
//  @end

#include "agd_broker.h"

static bool
s_cancellable (agd_job_t *job)
{
    return job->env.command == AGP_CALL || job->env.command == AGP_GETATTR;
}

static bool
s_matches (agd_job_t *job, agd_job_t *request, uint64_t corr)
{
    return s_cancellable (job) && job->env.corr == corr
        && zmq_msg_size (&job->routing) == zmq_msg_size (&request->routing)
        && memcmp (zmq_msg_data (&job->routing),
                   zmq_msg_data (&request->routing),
                   zmq_msg_size (&job->routing)) == 0;
}

static const char *
s_why (int cancel)
{
    return cancel == AGD_CANCEL_DELETED? "as its agent was deleted"
                                       : "by its caller";
}

//  Take a queued job out of its agent's mailbox (prev is the job before
//  it, or NULL)
static void
s_unlink (agd_broker_t *self, agd_agent_t *agent, agd_job_t *prev,
          agd_job_t *job)
{
    if (prev)
        prev->next = job->next;
    else
        agent->head = job->next;
    if (agent->tail == job)
        agent->tail = prev;
    job->next = NULL;
    agent->queued--;
    if (!agent->head)
        agd_pool_unready (self, agent);
}

//  ... and answer it, cancelled
static void
s_unqueue (agd_broker_t *self, agd_agent_t *agent, agd_job_t *prev,
           agd_job_t *job, int cancel)
{
    s_unlink (self, agent, prev, job);
    char reason [128];
    snprintf (reason, sizeof reason, "call %" PRIu64 " was cancelled %s"
              " before it ran", job->env.corr, s_why (cancel));
    agd_pool_fail (self, job, AG_CANCELLED, reason);
}

//  Fail the job waiting for its argument futures
static void
s_unwait (agd_broker_t *self, agd_job_t *job, int cancel)
{
    char reason [128];
    snprintf (reason, sizeof reason, "call %" PRIu64 " was cancelled %s"
              " while its argument futures resolved", job->env.corr,
              s_why (cancel));
    agd_refs_cancel (self, job, AG_CANCELLED, reason);
}

void
agd_cancel_agent (agd_broker_t *self, agd_agent_t *agent)
{
    for (agd_job_t *job = agent->chain; job; job = job->next)
        if (s_cancellable (job)) {
            atomic_store (&job->cancel, AGD_CANCEL_DELETED);
            if (job->host_corr)
                agd_hosts_cancel (self, job);
        }
    //  A CREATE waiting for its futures is not cancelled: failing it
    //  would free the agent under its DELETE
    if (agent->waiting && s_cancellable (agent->waiting))
        s_unwait (self, agent->waiting, AGD_CANCEL_DELETED);
    agd_job_t *prev = NULL;
    agd_job_t *job = agent->head;
    while (job) {
        agd_job_t *next = job->next;
        if (s_cancellable (job) && job->state == AGD_JOB_QUEUED)
            s_unqueue (self, agent, prev, job, AGD_CANCEL_DELETED);
        else
            prev = job;
        job = next;
    }
}

void
agd_cancel_request (agd_broker_t *self, agd_job_t *request)
{
    msgpack_object body;
    const char *reason;
    uint64_t corr;
    //  A corr is at most 9 octets of msgpack: nothing longer is decoded
    if (agp_msg_body_size (&request->body) > 9) {
        agd_broker_error (self, request, AG_BAD_REQUEST, "CANCEL body must"
                          " be the correlation id of a call (a positive"
                          " integer)");
        agd_broker_job_free (self, request);
        return;
    }
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&request->body),
                           agp_msg_body_size (&request->body),
                           &self->zone, &body, &reason)
    ||  agp_cancel_decode (&corr, &body, &reason)) {
        agd_broker_error (self, request, AG_BAD_REQUEST, "%s",
                          reason);
        agd_broker_job_free (self, request);
        return;
    }
    uint64_t id = request->env.agent;
    agd_agent_t *agent = (agd_agent_t *) ag_idmap_lookup (self->agents, id);
    if (!agent || agent->deleting) {
        agd_broker_error (self, request, AG_NO_AGENT, "no agent %" PRIu64
                          " on this server", id);
        agd_broker_job_free (self, request);
        return;
    }
    const char *found = NULL;
    for (agd_job_t *job = agent->chain; job && !found; job = job->next)
        if (s_matches (job, request, corr)) {
            atomic_store (&job->cancel, AGD_CANCEL_CALLER);
            if (job->host_corr)
                agd_hosts_cancel (self, job);
            found = "running";
        }
    if (!found && agent->waiting && s_matches (agent->waiting, request,
                                               corr)) {
        s_unwait (self, agent->waiting, AGD_CANCEL_CALLER);
        found = "queued";
    }
    agd_job_t *prev = NULL;
    for (agd_job_t *job = agent->head; job && !found; job = job->next) {
        if (s_matches (job, request, corr) && job->state == AGD_JOB_QUEUED) {
            s_unqueue (self, agent, prev, job, AGD_CANCEL_CALLER);
            found = "queued";
            break;
        }
        prev = job;
    }
    AGD_LOG (self->config, AGD_LOG_INFO, zsys_info,
             "cancel corr=%" PRIu64 " agent=%" PRIu64 " client=%s: %s", corr,
             id, request->account->name, found? found: "not pending");
    msgpack_sbuffer_clear (&self->buffer);
    if (found)
        agd_pack_str (&self->packer, found);
    else
        msgpack_pack_nil (&self->packer);
    request->env.agent = id;
    agd_broker_send_packed (self, request);
    agd_broker_job_free (self, request);
}

//  ---------------------------------------------------------------------
//  The heap of deadlines: job->timed is a job's place in it, plus one

static void
s_place (agd_broker_t *self, size_t index, agd_job_t *job)
{
    self->timed [index] = job;
    job->timed = index + 1;
}

static void
s_sift_up (agd_broker_t *self, size_t index)
{
    agd_job_t *job = self->timed [index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (self->timed [parent]->deadline <= job->deadline)
            break;
        s_place (self, index, self->timed [parent]);
        index = parent;
    }
    s_place (self, index, job);
}

static void
s_sift_down (agd_broker_t *self, size_t index)
{
    agd_job_t *job = self->timed [index];
    while (true) {
        size_t child = 2 * index + 1;
        if (child >= self->timed_count)
            break;
        if (child + 1 < self->timed_count
        &&  self->timed [child + 1]->deadline < self->timed [child]->deadline)
            child++;
        if (job->deadline <= self->timed [child]->deadline)
            break;
        s_place (self, index, self->timed [child]);
        index = child;
    }
    s_place (self, index, job);
}

int
agd_cancel_time (agd_broker_t *self, agd_job_t *job)
{
    if (self->timed_count == self->timed_alloc) {
        size_t alloc = self->timed_alloc? self->timed_alloc * 2: 64;
        agd_job_t **timed = (agd_job_t **) realloc (self->timed,
                                                    alloc * sizeof *timed);
        if (!timed)
            return -1;
        self->timed = timed;
        self->timed_alloc = alloc;
    }
    self->timed [self->timed_count] = job;
    s_sift_up (self, self->timed_count++);
    return 0;
}

void
agd_cancel_untime (agd_broker_t *self, agd_job_t *job)
{
    size_t index = job->timed - 1;
    job->timed = 0;
    agd_job_t *last = self->timed [--self->timed_count];
    if (index == self->timed_count)
        return;
    s_place (self, index, last);
    if (index > 0 && self->timed [(index - 1) / 2]->deadline > last->deadline)
        s_sift_up (self, index);
    else
        s_sift_down (self, index);
}

void
agd_cancel_expire (agd_broker_t *self)
{
    while (self->timed_count && self->timed [0]->deadline <= self->now) {
        agd_job_t *job = self->timed [0];
        agd_cancel_untime (self, job);
        char reason [160];
        //  Handed to a worker: it may be running, or queued behind a
        //  method that blocks the worker. It is answered now, and the
        //  worker's own check (which does not run it, or answers 504
        //  after it ran) stays unseen.
        if (job->state == AGD_JOB_HANDED && !job->answered) {
            snprintf (reason, sizeof reason, "call %" PRIu64 " did not"
                      " finish by its deadline (%" PRId64 " ms after it"
                      " arrived)", job->env.corr,
                      (job->deadline - job->arrived) / 1000);
            agd_broker_error (self, job, AG_DEADLINE, "%s", reason);
            agd_broker_unkeep (self, job, AG_DEADLINE, reason);
            job->answered = true;
            continue;
        }
        //  Waiting for its argument futures: those waits stop
        if (job->state == AGD_JOB_WAITING) {
            snprintf (reason, sizeof reason, "call %" PRIu64 " had not"
                      " started by its deadline (%" PRId64 " ms after it"
                      " arrived): its argument futures were not all"
                      " resolved by then", job->env.corr,
                      (job->deadline - job->arrived) / 1000);
            agd_refs_cancel (self, job, AG_DEADLINE, reason);
            continue;
        }
        //  In its mailbox: answered now, in O(1); it leaves the mailbox
        //  at its turn, when the worker sees the deadline has passed and
        //  does not run it
        if (job->answered)
            continue;
        snprintf (reason, sizeof reason, "call %" PRIu64 " had not started"
                  " by its deadline (%" PRId64 " ms after it arrived)",
                  job->env.corr, (job->deadline - job->arrived) / 1000);
        agd_broker_error (self, job, AG_DEADLINE, "%s", reason);
        agd_broker_unkeep (self, job, AG_DEADLINE, reason);
        job->answered = true;
    }
}

int64_t
agd_cancel_timeout (agd_broker_t *self, int64_t now)
{
    if (!self->timed_count)
        return INT64_MAX;
    int64_t due = self->timed [0]->deadline - now;
    return due > 0? (due + 999) / 1000: 0;
}

void
agd_cancel_destroy (agd_broker_t *self)
{
    free (self->timed);
    self->timed = NULL;
    self->timed_count = self->timed_alloc = 0;
}
