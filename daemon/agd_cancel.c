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
//  Deadlines need nothing here: the worker compares a call's deadline
//  with the time before it runs it and after, and the argument futures
//  of a call wait no longer than its deadline (agd_refs.c).
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
//  it, or NULL) and answer it
static void
s_unqueue (agd_broker_t *self, agd_agent_t *agent, agd_job_t *prev,
           agd_job_t *job, int cancel)
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
        if (s_cancellable (job))
            atomic_store (&job->cancel, AGD_CANCEL_DELETED);
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
