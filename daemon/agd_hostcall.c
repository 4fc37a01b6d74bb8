/*  =========================================================================
    agd_hostcall - requests to agents in host processes, and restarts

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  An agent in a host (agd_host.c) gets its calls and attribute reads
//  up to HOST_WINDOW at once, a CREATE or a DELETE alone; the host runs
//  them in order and answers each before it starts the next. Futures
//  among the arguments are resolved here first (agd_refs.c), in the
//  call's turn, and the host gets their values. What the host answers
//  completes the job as a worker's result does. When the host dies, the
//  first request out for each agent fails with 521, the rest go back to
//  the mailbox, and the agents are made again in a new host from the
//  CREATE each was made with, within a restart budget; past it an agent
//  is failed and answers 522 until it is deleted.
//  @end

#include "agd_host.h"

static agd_host_t *
s_host_for (agd_broker_t *self, const char *plugin)
{
    for (size_t i = 0; i < self->host_count; i++)
        if (streq (self->hosts [i]->plugin, plugin))
            return self->hosts [i];
    return NULL;
}

//  ---------------------------------------------------------------------
//  Sending

//  Does a body hold a msgpack ext anywhere, perhaps? Every ext starts
//  with one of these octets, so a body without any holds no future
//  reference: the common case costs a scan, not a decode.
static bool
s_may_hold_ext (const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (data [i] >= 0xc7 && (data [i] <= 0xc9
                             || (data [i] >= 0xd4 && data [i] <= 0xd8)))
            return true;
    return false;
}

//  The arguments object of a CALL or CREATE body (decoded into zone)
static const msgpack_object *
s_args_of (agd_job_t *job, const uint8_t *data, size_t size,
           msgpack_zone *zone, msgpack_object *body, const char **reason)
{
    if (ag_msgpack_unpack (data, size, zone, body, reason))
        return NULL;
    if (job->env.command == AGP_CREATE) {
        static msgpack_object none = { .type = MSGPACK_OBJECT_NIL };
        const msgpack_object *args = ag_obj_get (body, "args");
        return args? args: &none;
    }
    if (body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size < 2) {
        *reason = "CALL body is not [method, args]";
        return NULL;
    }
    return &body->via.array.ptr [1];
}

//  A body with the futures its arguments name replaced by their values,
//  packed into the broker's buffer. Returns 0, or -1 with a reason.
static int
s_substitute (agd_broker_t *self, agd_job_t *job, const uint8_t *data,
              size_t size, char *reason, size_t reason_size)
{
    msgpack_zone_clear (&self->zone);
    msgpack_object body;
    const char *why;
    const msgpack_object *args = s_args_of (job, data, size, &self->zone,
                                            &body, &why);
    if (!args) {
        snprintf (reason, reason_size, "%s", why);
        return -1;
    }
    msgpack_object replaced;
    if (agd_future_replace (args, job->refs, &self->zone, &replaced, reason,
                            reason_size))
        return -1;
    //  The object is a copy: put the values in where args was
    *(msgpack_object *) args = replaced;
    msgpack_sbuffer_clear (&self->buffer);
    msgpack_pack_object (&self->packer, body);
    return 0;
}

//  Futures among a request's arguments are resolved by the broker, as
//  the pool's workers have it do for theirs: returns 1 if the job went
//  to wait for them, -1 if it failed, 0 if it goes to the host now
static int
s_check_refs (agd_broker_t *self, agd_job_t *job, const uint8_t *data,
              size_t size)
{
    if (job->resolved || job->plain || !s_may_hold_ext (data, size))
        return 0;
    msgpack_zone_clear (&self->zone);
    msgpack_object body;
    const char *why;
    char reason [512];
    const msgpack_object *args = s_args_of (job, data, size, &self->zone,
                                            &body, &why);
    if (!args) {
        agd_pool_fail (self, job, AG_BAD_REQUEST, why);
        return -1;
    }
    if (agd_future_find (args, &self->zone, &job->refs, reason,
                         sizeof reason)) {
        agd_pool_fail (self, job, AG_BAD_REQUEST, reason);
        return -1;
    }
    if (!job->refs) {
        job->plain = true;
        return 0;
    }
    agd_refs_start (self, job);
    return 1;
}

static void
s_out_link (agd_host_t *host, agd_job_t *job)
{
    job->host_next = NULL;
    job->host_prev = host->out_tail;
    if (host->out_tail)
        host->out_tail->host_next = job;
    else
        host->out_head = job;
    host->out_tail = job;
}

static void
s_out_unlink (agd_host_t *host, agd_job_t *job)
{
    if (job->host_prev)
        job->host_prev->host_next = job->host_next;
    else
        host->out_head = job->host_next;
    if (job->host_next)
        job->host_next->host_prev = job->host_prev;
    else
        host->out_tail = job->host_prev;
    job->host_prev = job->host_next = NULL;
}

//  The job goes to the host: it is the agent's one request out
static void
s_forward (agd_broker_t *self, agd_agent_t *agent, agd_job_t *job,
           const uint8_t *data, size_t size)
{
    agd_host_t *host = agent->host;
    uint64_t corr = ++self->host_corr;
    zmq_msg_t *share = data && data == agp_msg_body (&job->body)
                     ? &job->body: NULL;
    if (agd_host_send (host, job->env.command, corr, agent->host_id, data,
                       size, share)) {
        agd_pool_fail (self, job, AG_INTERNAL, "cannot send to the agent's"
                       " host process");
        return;
    }
    job->state = AGD_JOB_HANDED;
    job->host_corr = corr;
    job->forwarded = self->now;
    ag_idmap_insert (self->host_jobs, corr, job);
    s_out_link (host, job);
    //  Its agent's requests out, in order
    job->next = NULL;
    if (agent->chain)
        agent->chain_tail->next = job;
    else
        agent->chain = job;
    agent->chain_tail = job;
    agent->running++;
    agent->out_bytes += agp_msg_body_size (&job->body);
    agent->busy = true;
}

//  A request is back, or given up: off its agent's chain and the host's
//  list of requests out
static void
s_unforward (agd_broker_t *self, agd_host_t *host, agd_job_t *job)
{
    agd_agent_t *agent = job->agent;
    ag_idmap_delete (self->host_jobs, job->host_corr);
    s_out_unlink (host, job);
    job->host_corr = 0;
    agd_job_t **link = &agent->chain, *prev = NULL;
    while (*link && *link != job) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link) {
        *link = job->next;
        if (agent->chain_tail == job)
            agent->chain_tail = prev;
        agent->running--;
        agent->out_bytes -= agp_msg_body_size (&job->body);
        //  The next may start now: the call limit counts from here
        if (agent->chain && agent->chain->forwarded < self->now)
            agent->chain->forwarded = self->now;
    }
    job->next = NULL;
    agent->busy = agent->running > 0;
}

//  A CALL body for the host: a deadline says the time left
static void
s_call_body (agd_broker_t *self, agd_job_t *job, const uint8_t **data,
             size_t *size)
{
    if (!job->deadline || *size < 5)
        return;
    if (*data != (const uint8_t *) self->buffer.data) {
        msgpack_sbuffer_clear (&self->buffer);
        msgpack_sbuffer_write (&self->buffer, (const char *) *data, *size);
    }
    int64_t left = (job->deadline - self->now + 999) / 1000;
    uint32_t ms = (uint32_t) MAX (left, 1);
    uint8_t *tail = (uint8_t *) self->buffer.data + self->buffer.size - 4;
    tail [0] = (uint8_t) (ms >> 24);
    tail [1] = (uint8_t) (ms >> 16);
    tail [2] = (uint8_t) (ms >> 8);
    tail [3] = (uint8_t) ms;
    *data = (const uint8_t *) self->buffer.data;
    *size = self->buffer.size;
}

//  A failed agent answers nothing but its DELETE
static void
s_failed_flush (agd_broker_t *self, agd_agent_t *agent)
{
    if (agent->deleting) {
        agd_agents_flush (self, agent, AG_NO_AGENT, "agent deleted");
        agd_agents_free (self, agent);
        return;
    }
    char reason [512];
    snprintf (reason, sizeof reason, "agent %" PRIu64 " (class %s) has"
              " failed: %s; delete it", agent->id, agent->cls->name,
              agent->last_crash? agent->last_crash: "restarted past its"
              " budget");
    agd_agents_flush (self, agent, AG_FAILED, reason);
}

//  One request to the host. Returns false if it did not go (it waits for
//  its futures, or failed).
static bool
s_send_next (agd_broker_t *self, agd_agent_t *agent)
{
    agd_job_t *job = agent->head;
    agent->head = job->next;
    if (!agent->head)
        agent->tail = NULL;
    job->next = NULL;
    agent->queued--;
    int command = job->env.command;
    const uint8_t *data;
    size_t size;
    if (command == AGP_CREATE) {
        data = agent->init;
        size = agent->init_size;
    }
    else
    if (command == AGP_DELETE) {
        data = NULL;
        size = 0;
    }
    else {
        data = agp_msg_body (&job->body);
        size = agp_msg_body_size (&job->body);
    }
    if (command == AGP_CREATE || command == AGP_CALL) {
        if (s_check_refs (self, job, data, size))
            return false;           //  waits for its futures, or failed
        if (job->refs) {
            char reason [512];
            if (s_substitute (self, job, data, size, reason,
                              sizeof reason)) {
                agd_pool_fail (self, job, AG_DEP_FAILED, reason);
                return false;
            }
            data = (const uint8_t *) self->buffer.data;
            size = self->buffer.size;
            if (command == AGP_CREATE) {
                //  Made again from the values, not the references
                uint8_t *init = (uint8_t *) malloc (size);
                if (init) {
                    memcpy (init, data, size);
                    free (agent->init);
                    agent->init = init;
                    agent->init_size = size;
                }
            }
        }
        if (command == AGP_CALL)
            s_call_body (self, job, &data, &size);
    }
    s_forward (self, agent, job, data, size);
    return true;
}

//  The agent's next requests go to its host: calls and attribute reads
//  up to HOST_WINDOW at once and HOST_WINDOW_BYTES of bodies, or one of
//  any size (the host runs them one at a time, in order, and answers
//  each before it starts the next); a CREATE or a
//  DELETE alone; a call that may name futures only with nothing out
//  before it, so that they are resolved in its turn
void
agd_hosts_ready (agd_broker_t *self, agd_agent_t *agent)
{
    if (!agent->head || agent->waiting)
        return;
    if (!agent->busy && agent->life == AGD_LIFE_FAILED) {
        s_failed_flush (self, agent);
        return;
    }
    if (agent->life == AGD_LIFE_RESTARTING) {
        //  Deleted before it was made again: nothing runs its fini
        if (agent->deleting && !agent->busy) {
            agd_agents_flush (self, agent, AG_NO_AGENT, "agent deleted");
            agd_agents_free (self, agent);
        }
        return;                     //  the rest waits for the restart
    }
    if (agent->host->state != HOST_UP || agent->life != AGD_LIFE_RUNNING)
        return;
    if (agent->busy) {
        int out = agent->chain->env.command;
        if ((out != AGP_CALL && out != AGP_GETATTR) || agent->chain->restore)
            return;
    }
    while (agent->head && agent->running < HOST_WINDOW && !agent->waiting) {
        agd_job_t *job = agent->head;
        int command = job->env.command;
        bool alone = command != AGP_CALL && command != AGP_GETATTR;
        if (agent->busy) {
            if (alone)
                break;
            //  A large call waits in the mailbox, where it is charged,
            //  not in the host's memory as well, behind one that runs
            if (agent->out_bytes + agp_msg_body_size (&job->body)
                > HOST_WINDOW_BYTES)
                break;
            if (command == AGP_CALL && !job->resolved && !job->plain
            &&  s_may_hold_ext (agp_msg_body (&job->body),
                                agp_msg_body_size (&job->body)))
                break;
        }
        if (!s_send_next (self, agent) || alone)
            break;
    }
}

//  ---------------------------------------------------------------------
//  Agents

int
agd_hosts_place (agd_broker_t *self, agd_agent_t *agent,
                 const agp_create_t *create)
{
    if (!self->host_count)
        return 0;
    const char *plugin = agd_registry_plugin (self->args->registry,
                                              agent->cls);
    agd_host_t *host = plugin? s_host_for (self, plugin): NULL;
    if (!host)
        return 0;                   //  the program's own class: threads
    //  What the host makes it with, again after a crash: its id (the
    //  host's logs name agents as ours do), class, arguments and state,
    //  without its name (the broker keeps names)
    msgpack_sbuffer_clear (&self->buffer);
    msgpack_packer *pk = &self->packer;
    msgpack_pack_map (pk, 3 + (create->args? 1: 0) + (create->state? 1: 0));
    agd_pack_str (pk, "id");
    msgpack_pack_uint64 (pk, agent->id);
    agd_pack_str (pk, "class");
    agd_pack_str (pk, agent->cls->name);
    agd_pack_str (pk, "detached");
    msgpack_pack_true (pk);
    if (create->args) {
        agd_pack_str (pk, "args");
        msgpack_pack_object (pk, *create->args);
    }
    if (create->state) {
        agd_pack_str (pk, "state");
        msgpack_pack_object (pk, *create->state);
    }
    agent->init = (uint8_t *) malloc (self->buffer.size);
    if (!agent->init)
        return -1;
    memcpy (agent->init, self->buffer.data, self->buffer.size);
    agent->init_size = self->buffer.size;
    agent->call_limit_ms = self->config.call_limit_ms;
    for (int i = 0; i < self->config.class_limit_count; i++)
        if (streq (self->config.class_limits [i].name, agent->cls->name))
            agent->call_limit_ms = self->config.class_limits [i].ms;
    agent->host = host;
    agent->host_prev = NULL;
    agent->host_next = host->head;
    if (host->head)
        host->head->host_prev = agent;
    host->head = agent;
    host->agents++;
    return 0;
}

void
agd_hosts_forget (agd_broker_t *self, agd_agent_t *agent)
{
    (void) self;
    agd_host_t *host = agent->host;
    if (!host)
        return;
    if (agent->host_prev)
        agent->host_prev->host_next = agent->host_next;
    else
        host->head = agent->host_next;
    if (agent->host_next)
        agent->host_next->host_prev = agent->host_prev;
    host->agents--;
    agent->host = NULL;
    free (agent->init);
    agent->init = NULL;
    free (agent->last_crash);
    agent->last_crash = NULL;
}

void
agd_hosts_cancel (agd_broker_t *self, agd_job_t *job)
{
    agd_host_t *host = job->agent? job->agent->host: NULL;
    if (!host || !job->host_corr || host->state != HOST_UP)
        return;
    uint8_t body [9];
    //  A msgpack uint 64: 0xcf and eight octets
    body [0] = 0xcf;
    for (int i = 0; i < 8; i++)
        body [1 + i] = (uint8_t) (job->host_corr >> (56 - 8 * i));
    //  Its reply matches no request and is dropped
    agd_host_send (host, AGP_CANCEL, ++self->host_corr, job->agent->host_id,
                   body, sizeof body, NULL);
}

//  ---------------------------------------------------------------------
//  Replies

//  The id a host's CREATE reply gives, or 0
static uint64_t
s_created_id (agd_broker_t *self, const uint8_t *frame, size_t size)
{
    msgpack_zone_clear (&self->zone);
    msgpack_object body;
    const char *reason;
    if (ag_msgpack_unpack (frame + AGP_ENVELOPE_SIZE,
                           size - AGP_ENVELOPE_SIZE,
                           &self->zone, &body, &reason))
        return 0;
    const msgpack_object *id = ag_obj_get (&body, "id");
    return id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER? id->via.u64: 0;
}

//  The reason a host's error reply gives, for the log
static void
s_reason_of (agd_broker_t *self, const uint8_t *frame, size_t frame_size,
             char *reason, size_t size)
{
    msgpack_zone_clear (&self->zone);
    msgpack_object body;
    const char *why;
    snprintf (reason, size, "no reason given");
    if (ag_msgpack_unpack (frame + AGP_ENVELOPE_SIZE,
                           frame_size - AGP_ENVELOPE_SIZE,
                           &self->zone, &body, &why) == 0
    &&  body.type == MSGPACK_OBJECT_STR)
        snprintf (reason, size, "%.*s", (int) body.via.str.size,
                  body.via.str.ptr);
}

static void
s_restored (agd_broker_t *self, agd_agent_t *agent, int status,
            const uint8_t *frame, size_t size)
{
    uint64_t id = status == AG_OK? s_created_id (self, frame, size): 0;
    if (id) {
        agent->host_id = id;
        agent->life = AGD_LIFE_RUNNING;
        agent->restarts++;
        AGD_LOG (self->config, AGD_LOG_NOTICE, zsys_notice, "agent=%" PRIu64
                 " class=%s restarted (%u times) in host %u (pid %d)",
                 agent->id, agent->cls->name, agent->restarts,
                 agent->host->index, (int) agent->host->pid);
        agd_pool_make_ready (self, agent);
        return;
    }
    char reason [300];
    s_reason_of (self, frame, size, reason, sizeof reason);
    char text [400];
    snprintf (text, sizeof text, "it could not be made again (%d: %s)",
              status, reason);
    free (agent->last_crash);
    agent->last_crash = strdup (text);
    agent->life = AGD_LIFE_FAILED;
    AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "agent=%" PRIu64
             " class=%s failed: %s", agent->id, agent->cls->name, text);
    s_failed_flush (self, agent);
}

//  One reply from a host
void
agd_hostcall_reply (agd_broker_t *self, agd_host_t *host,
                    const uint8_t *frame, size_t size)
{
    agp_envelope_t env;
    if (agp_envelope_decode (&env, frame, size)
    ||  !(env.command & AGP_REPLY))
        return;
    //  The host is ready: its agents are made there, their requests go
    if (env.command == (AGP_PING | AGP_REPLY) && env.corr == 0) {
        if (host->state == HOST_STARTING) {
            host->state = HOST_UP;
            host->start_failures = 0;
            AGD_LOG (self->config, AGD_LOG_INFO, zsys_info, "host %u (%s,"
                     " pid %d) ready in %" PRId64 " us", host->index,
                     host->plugin_name, (int) host->pid,
                     self->now - host->started);
            agd_hostcall_restore (self, host);
        }
        return;
    }
    agd_job_t *job = (agd_job_t *) ag_idmap_lookup (self->host_jobs,
                                                    env.corr);
    //  A CANCEL's reply, or one for a request the host was never sent
    if (!job || !job->agent || job->agent->host != host
    ||  (env.command & ~AGP_REPLY) != job->env.command)
        return;
    agd_agent_t *agent = job->agent;
    s_unforward (self, host, job);
    self->last_done = self->now;
    int status = env.word;
    if (job->restore) {
        agd_broker_job_free (self, job);
        s_restored (self, agent, status, frame, size);
        return;
    }
    if (job->env.command == AGP_CREATE && status == AG_OK) {
        agent->host_id = s_created_id (self, frame, size);
        if (!agent->host_id)
            status = AG_INTERNAL;
    }
    zmq_msg_close (&job->body);
    job->framed = agd_frame_init (&job->body, frame + AGP_ENVELOPE_SIZE,
                                  size - AGP_ENVELOPE_SIZE) == 0;
    if (!job->framed) {
        zmq_msg_init (&job->body);
        status = AG_INTERNAL;
    }
    job->status = (uint16_t) status;
    agd_pool_finish (self, job);
}

//  ---------------------------------------------------------------------
//  When a host ends

//  The method a CALL body names, into name
void
agd_hostcall_what (agd_broker_t *self, agd_job_t *job, char *name, size_t size)
{
    snprintf (name, size, "?");
    if (job->env.command == AGP_CREATE) {
        snprintf (name, size, "init");
        return;
    }
    msgpack_zone_clear (&self->zone);
    msgpack_object body;
    const char *reason;
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body), &self->zone,
                           &body, &reason))
        return;
    const msgpack_object *what = NULL;
    if (job->env.command == AGP_CALL && body.type == MSGPACK_OBJECT_ARRAY
    &&  body.via.array.size >= 1)
        what = &body.via.array.ptr [0];
    else
    if (job->env.command == AGP_GETATTR)
        what = &body;
    if (what && what->type == MSGPACK_OBJECT_STR)
        snprintf (name, size, "%s '%.*s'", job->env.command == AGP_CALL
                  ? "method": "attribute", (int) MIN (what->via.str.size,
                  AGP_MAX_NAME), what->via.str.ptr);
}

//  The budget: at most restart_max restarts within restart_window_ms
//  of the first; each after a wait doubling from restart_backoff_ms.
//  Only an agent that was running code when its host died is charged
//  (suspect): the others are made again at once.
static void
s_agent_crashed (agd_broker_t *self, agd_agent_t *agent, const char *how,
                 bool suspect)
{
    agent->host_id = 0;
    if (!agent->alive && agent->head && agent->head->env.command
                                        == AGP_CREATE)
        return;                     //  not made yet: its CREATE is queued
    free (agent->last_crash);
    agent->last_crash = strdup (how);
    agent->last_crash_at = self->now;
    if (agent->life == AGD_LIFE_FAILED)
        return;
    if (!suspect) {
        agent->life = AGD_LIFE_RESTARTING;
        agent->restart_at = self->now;
        return;
    }
    if (self->now - agent->window_start
        > (int64_t) self->config.restart_window_ms * 1000) {
        agent->window_start = self->now;
        agent->window_restarts = 0;
    }
    if ((int) agent->window_restarts >= self->config.restart_max) {
        agent->life = AGD_LIFE_FAILED;
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "agent=%" PRIu64
                 " class=%s failed: %u restarts within %d ms"
                 " (server/restart_max)", agent->id, agent->cls->name,
                 agent->window_restarts, self->config.restart_window_ms);
        char text [800];
        snprintf (text, sizeof text, "its host %s; it was restarted %u"
                  " times within %d ms, its budget (server/restart_max)",
                  how, agent->window_restarts,
                  self->config.restart_window_ms);
        free (agent->last_crash);
        agent->last_crash = strdup (text);
        s_failed_flush (self, agent);
        return;
    }
    int64_t wait_ms = 0;
    if (agent->window_restarts > 0)
        wait_ms = (int64_t) self->config.restart_backoff_ms
                  << MIN (agent->window_restarts - 1, 20);
    agent->window_restarts++;
    agent->life = AGD_LIFE_RESTARTING;
    agent->restart_at = self->now + wait_ms * 1000;
}

void
agd_hostcall_crashed (agd_broker_t *self, agd_host_t *host, pid_t pid,
                      const char *how)
{
    //  Of each agent's requests out, the first may have run, in part:
    //  it fails. The host answered each before it started the next, and
    //  those answers were read before this: the rest never started, and
    //  go back to the mailbox, in order.
    for (agd_agent_t *agent = host->head; agent; agent = agent->host_next) {
        agd_job_t *first = agent->chain;
        if (!first || !first->next)
            continue;
        agd_job_t *rest = first->next, *last = rest;
        uint32_t count = 0;
        for (agd_job_t *job = rest; job; job = job->next) {
            ag_idmap_delete (self->host_jobs, job->host_corr);
            s_out_unlink (host, job);
            job->host_corr = 0;
            job->state = AGD_JOB_QUEUED;
            last = job;
            count++;
        }
        last->next = agent->head;
        agent->head = rest;
        if (!agent->tail)
            agent->tail = last;
        agent->queued += count;
        first->next = NULL;
        agent->chain_tail = first;
        agent->running = 1;
        agent->out_bytes = agp_msg_body_size (&first->body);
    }
    while (host->out_head) {
        agd_job_t *job = host->out_head;
        agd_agent_t *agent = job->agent;
        s_unforward (self, host, job);
        if (job->restore) {
            //  Its init brought the host down: charged as a crash
            agd_broker_job_free (self, job);
            s_agent_crashed (self, agent, how, true);
            continue;
        }
        if (job->env.command == AGP_DELETE) {
            job->status = AG_OK;
            agd_pool_finish (self, job);
            continue;
        }
        char what [300];
        agd_hostcall_what (self, job, what, sizeof what);
        char reason [1200];
        snprintf (reason, sizeof reason, "agent %" PRIu64 " (class %s)"
                  " crashed in %s: its host process (pid %d, plugin %s) %s",
                  agent->id, agent->cls->name, what, (int) pid,
                  host->plugin_name, how);
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error, "call failed"
                 " corr=%" PRIu64 ": %s", job->env.corr, reason);
        int command = job->env.command;
        agd_pool_fail (self, job, AG_CRASHED, reason);
        //  A CREATE that failed took its agent with it
        if (command != AGP_CREATE)
            s_agent_crashed (self, agent, how, true);
    }
    //  The others lose only their state
    agd_agent_t *agent = host->head;
    while (agent) {
        agd_agent_t *next = agent->host_next;
        if (agent->host_id)
            s_agent_crashed (self, agent, how, false);
        agent = next;
    }
}

//  Make agents again whose wait is over
void
agd_hostcall_restore (agd_broker_t *self, agd_host_t *host)
{
    host->next_restore = 0;
    for (agd_agent_t *agent = host->head; agent; ) {
        agd_agent_t *next = agent->host_next;
        if (agent->life == AGD_LIFE_RESTARTING && !agent->busy) {
            if (agent->deleting) {
                agd_agents_flush (self, agent, AG_NO_AGENT, "agent deleted");
                agd_agents_free (self, agent);
            }
            else
            if (agent->restart_at <= self->now) {
                agd_job_t *job = agd_broker_job_new (self);
                if (job) {
                    job->restore = true;
                    job->agent = agent;
                    job->env.command = AGP_CREATE;
                    s_forward (self, agent, job, agent->init,
                               agent->init_size);
                }
            }
            else
            if (!host->next_restore || agent->restart_at < host->next_restore)
                host->next_restore = agent->restart_at;
        }
        else
        if (agent->life == AGD_LIFE_RUNNING)
            agd_hosts_ready (self, agent);
        agent = next;
    }
}

void
agd_hostcall_unstartable (agd_broker_t *self, agd_host_t *host,
                          const char *how)
{
    char reason [900];
    snprintf (reason, sizeof reason, "the host process for plugin %s does"
              " not start (it %s, %u times in a row); agentd's log says"
              " more", host->plugin_name, how, host->start_failures);
    agd_agent_t *agent = host->head;
    while (agent) {
        agd_agent_t *next = agent->host_next;
        if (!agent->busy && agent->head) {
            bool made = agent->alive;
            agd_agents_flush (self, agent, AG_INTERNAL, reason);
            if (!made)
                agd_agents_free (self, agent);
        }
        agent = next;
    }
}

//  The server stops: what is still out ends here
void
agd_hostcall_abandon (agd_broker_t *self, agd_host_t *host)
{
    host->state = HOST_DOWN;        //  nothing more goes there
    while (host->out_head) {
        agd_job_t *job = host->out_head;
        s_unforward (self, host, job);
        if (job->restore)
            agd_broker_job_free (self, job);
        else
        if (job->env.command == AGP_DELETE) {
            job->status = AG_OK;
            agd_pool_finish (self, job);
        }
        else
            agd_pool_fail (self, job, AG_STOPPING, "server stopped"
                           " while this call ran");
    }
}
