/*  =========================================================================
    agd_worker - a pool thread: runs one agent's job at a time

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A worker is handed a batch of jobs (a pointer, over inproc) and runs
//  each to the end: it decodes the request body, finds the method or
//  attribute, runs the agent's code and leaves the reply in the job. The broker keeps the
//  agent out of every other worker's hands meanwhile, so agent state
//  needs no lock. Decoding here rather than in the broker keeps msgpack
//  work, and any hostile body, off the thread that serves everyone.
//  @end

#include "agd.h"

//  Replace the job's frame with a reply frame: room for the envelope
//  (the broker writes it), then body
static void
s_set_reply (agd_job_t *job, int status, const void *body, size_t size)
{
    zmq_msg_close (&job->body);
    job->framed = agd_frame_init (&job->body, body, size) == 0;
    if (!job->framed) {
        zmq_msg_init (&job->body);
        status = AG_INTERNAL;       //  the broker says why
    }
    job->status = (uint16_t) status;
}

//  Reply with a msgpack string reason
static void
s_set_reason (agd_job_t *job, int status, const char *reason)
{
    zmq_msg_close (&job->body);
    job->framed = agd_frame_reason (&job->body, reason) == 0;
    if (!job->framed)
        zmq_msg_init (&job->body);
    job->status = (uint16_t) status;
}

void
agd_job_fail (agd_job_t *job, int status, const char *format, ...)
{
    char reason [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    s_set_reason (job, status, reason);
}

//  Move the call's result into the job's reply
static void
s_set_result (agd_job_t *job, msgpack_sbuffer *buffer)
{
    s_set_reply (job, AG_OK, buffer->data, buffer->size);
    msgpack_sbuffer_clear (buffer);
    //  A very large result leaves a very large buffer: let it go
    if (buffer->alloc > 1024 * 1024) {
        msgpack_sbuffer_destroy (buffer);
        msgpack_sbuffer_init (buffer);
    }
}

//  Settle a call context into the job's reply
static void
s_finish (agd_job_t *job, ag_call_t *call, int rc, msgpack_sbuffer *buffer)
{
    if (ag_call_finish (call, rc) == AG_OK)
        s_set_result (job, buffer);
    else
        s_set_reason (job, call->status, call->reason);
}

//  A call whose caller no longer waits: cancelled, its agent deleted,
//  or its deadline passed. Returns true with the job's reply set (its
//  reason says whether the method had run: ran).
static bool
s_abandoned (agd_job_t *job, bool ran)
{
    int cancel = atomic_load (&job->cancel);
    if (cancel) {
        agd_job_fail (job, AG_CANCELLED, "call %" PRIu64 " was cancelled"
                      " %s%s", job->env.corr, cancel == AGD_CANCEL_DELETED
                      ? "as its agent was deleted": "by its caller",
                      ran? ", while it ran": " before it ran");
        return true;
    }
    int64_t now = ag_usecs ();
    if (job->deadline && now >= job->deadline) {
        agd_job_fail (job, AG_DEADLINE, "call %" PRIu64 " %s its deadline"
                      " (%" PRId64 " ms after it arrived)", job->env.corr,
                      ran? "ran past": "had not started by",
                      (job->deadline - job->arrived) / 1000);
        return true;
    }
    return false;
}

//  The arguments to run with: args itself, or, when it holds futures,
//  a copy with their values in place once the broker has them. Returns
//  0 with *out set; 1 when the job goes back to the broker for them
//  (job->refs set); -1 with the job failed.
static int
s_arguments (agd_job_t *job, const msgpack_object *args, msgpack_zone *zone,
             msgpack_object *out)
{
    char reason [512];
    if (job->plain) {
        if (args)
            *out = *args;
        return 0;
    }
    if (job->resolved) {
        if (agd_future_replace (args, job->refs, zone, out, reason,
                                sizeof reason)) {
            s_set_reason (job, AG_DEP_FAILED, reason);
            return -1;
        }
        return 0;
    }
    if (agd_future_find (args, zone, &job->refs, reason, sizeof reason)) {
        s_set_reason (job, AG_BAD_REQUEST, reason);
        return -1;
    }
    if (job->refs)
        return 1;
    if (args)
        *out = *args;
    return 0;
}

static void
s_run_create (agd_job_t *job, const msgpack_object *body,
              msgpack_sbuffer *buffer, msgpack_zone *zone)
{
    agd_agent_t *agent = job->agent;
    const ag_class_t *cls = agent->cls;
    agp_create_t create;
    const char *reason;
    //  The broker has decoded this body once already; it cannot fail
    //  here, but a failure is still answered rather than assumed away
    if (agp_create_decode (&create, body, &reason)) {
        s_set_reason (job, AG_BAD_REQUEST, reason);
        return;
    }
    //  Futures among the init arguments: their values first
    msgpack_object args = { .type = MSGPACK_OBJECT_NIL };
    if (s_arguments (job, create.args, zone, &args))
        return;
    agent->state = cls->state_size? calloc (1, cls->state_size): NULL;
    if (cls->state_size && !agent->state) {
        s_set_reason (job, AG_INTERNAL, "out of memory for agent state");
        return;
    }
    ag_call_t call;
    ag_call_init (&call, buffer);
    ag_init_fn *init = ag_class_init (cls);
    agd_fatal_enter (agent->id, cls->name, "init", NULL, 0, job->env.corr);
    int rc = init? init (agent->state, &args, &call): 0;
    agd_fatal_leave ();
    if (ag_call_finish (&call, rc) != AG_OK) {
        char text [400];
        snprintf (text, sizeof text, "%s init failed: %s", cls->name,
                  call.reason);
        s_set_reason (job, call.status == AG_BAD_ARGS? AG_BAD_ARGS
                                                     : AG_INIT_FAILED, text);
        //  A failed init has released what it took; fini is not run
        free (agent->state);
        agent->state = NULL;
        return;
    }
    if (create.state) {
        //  The agent moves with its state: load it over the fresh init
        ag_load_fn *load = ag_class_load (cls);
        ag_call_init (&call, buffer);
        agd_fatal_enter (agent->id, cls->name, "load", NULL, 0,
                         job->env.corr);
        rc = load? load (agent->state, create.state, &call)
                 : ag_call_error (&call, AG_BAD_ARGS, "class %s cannot load"
                                  " a saved state (no load hook)", cls->name);
        agd_fatal_leave ();
        if (ag_call_finish (&call, rc) != AG_OK) {
            char text [400];
            snprintf (text, sizeof text, "%s load failed: %s", cls->name,
                      call.reason);
            ag_fini_fn *fini = ag_class_fini (cls);
            if (fini)
                fini (agent->state);
            free (agent->state);
            agent->state = NULL;
            s_set_reason (job, call.status == AG_BAD_ARGS? AG_BAD_ARGS
                                                         : AG_INIT_FAILED,
                          text);
            return;
        }
    }
    msgpack_sbuffer_clear (buffer);
    s_set_reply (job, AG_OK, NULL, 0);  //  the broker writes the body
}

static void
s_run_call (agd_job_t *job, const msgpack_object *body,
            msgpack_sbuffer *buffer, msgpack_zone *zone)
{
    agd_agent_t *agent = job->agent;
    agp_call_t request;
    const char *reason;
    if (agp_call_decode (&request, body, &reason)) {
        s_set_reason (job, AG_BAD_REQUEST, reason);
        return;
    }
    //  The broker read the deadline from the end of the frame; a timeout
    //  it could not read there is refused, not ignored
    uint32_t timeout_ms;
    if (request.timed
    &&  (!agp_call_timeout (agp_msg_body (&job->body),
                            agp_msg_body_size (&job->body), &timeout_ms)
      || timeout_ms != request.timeout_ms)) {
        s_set_reason (job, AG_BAD_REQUEST, "CALL with a timeout: the body"
                      " must be a fixarray of 3 (0x93) ending with"
                      " timeout_ms as a uint 32 (0xce)");
        return;
    }
    if (s_abandoned (job, false))
        return;
    const ag_method_t *method = ag_class_method (agent->cls,
        request.method.ptr, request.method.len);
    if (!method) {
        agd_job_fail (job, AG_NO_METHOD, "%s has no public method '%.*s'",
                      agent->cls->name, (int) request.method.len,
                      request.method.ptr);
        return;
    }
    //  Futures among the arguments: their values first
    msgpack_object args;
    if (s_arguments (job, request.args, zone, &args))
        return;
    ag_call_t call;
    ag_call_init (&call, buffer);
    call.deadline = job->deadline;
    call.cancel = &job->cancel;
    ag_call_t *outer = ag_call_enter (&call);
    agd_fatal_enter (agent->id, agent->cls->name, "method", method->name,
                     request.method.len, job->env.corr);
    int rc = method->fn (agent->state, request.args? &args: NULL, &call);
    agd_fatal_leave ();
    ag_call_enter (outer);
    //  What the caller no longer waits for reaches nobody else either:
    //  whoever fetches the result sees what the caller saw
    if (!s_abandoned (job, true))
        s_finish (job, &call, rc, buffer);
    else
        msgpack_sbuffer_clear (buffer);
}

static void
s_run_getattr (agd_job_t *job, const msgpack_object *body,
               msgpack_sbuffer *buffer)
{
    agd_agent_t *agent = job->agent;
    agp_str_t name;
    const char *reason;
    if (agp_getattr_decode (&name, body, &reason)) {
        s_set_reason (job, AG_BAD_REQUEST, reason);
        return;
    }
    if (s_abandoned (job, false))
        return;
    const ag_attr_t *attr = ag_class_attr (agent->cls, name.ptr, name.len);
    if (!attr) {
        agd_job_fail (job, AG_NO_ATTR, "%s has no public attribute '%.*s'",
                      agent->cls->name, (int) name.len, name.ptr);
        return;
    }
    ag_call_t call;
    ag_call_init (&call, buffer);
    call.cancel = &job->cancel;
    ag_call_t *outer = ag_call_enter (&call);
    agd_fatal_enter (agent->id, agent->cls->name, "attribute", attr->name,
                     name.len, job->env.corr);
    int rc = attr->get (agent->state, &call);
    agd_fatal_leave ();
    ag_call_enter (outer);
    if (!s_abandoned (job, true))
        s_finish (job, &call, rc, buffer);
    else
        msgpack_sbuffer_clear (buffer);
}

void
agd_job_run (agd_job_t *job, msgpack_sbuffer *buffer, msgpack_zone *zone)
{
    agd_agent_t *agent = job->agent;
    int command = job->env.command;
    if (command == AGP_DELETE) {
        ag_fini_fn *fini = ag_class_fini (agent->cls);
        agd_fatal_enter (agent->id, agent->cls->name, "fini", NULL, 0, 0);
        if (fini && agent->alive)
            fini (agent->state);
        agd_fatal_leave ();
        free (agent->state);
        agent->state = NULL;
        s_set_reply (job, AG_OK, NULL, 0);
        return;
    }
    msgpack_object body;
    const char *reason;
    msgpack_zone_clear (zone);
    size_t size = agp_msg_body_size (&job->body);
    if (size == 0)
        body.type = MSGPACK_OBJECT_NIL;
    else
    if (ag_msgpack_unpack (agp_msg_body (&job->body), size, zone, &body,
                           &reason)) {
        agd_job_fail (job, AG_BAD_REQUEST, "%s body: %s",
                      agp_command_name (command), reason);
        return;
    }
    //  The body object borrows the request frame: the handlers replace
    //  job->body only after they are done reading it
    if (command == AGP_CREATE)
        s_run_create (job, &body, buffer, zone);
    else
    if (command == AGP_CALL)
        s_run_call (job, &body, buffer, zone);
    else
    if (command == AGP_GETATTR)
        s_run_getattr (job, &body, buffer);
    else
        agd_job_fail (job, AG_INTERNAL, "worker cannot run %s",
                      agp_command_name (command));
}

//  ---------------------------------------------------------------------
//  The thread

void *
agd_worker_main (void *args_)
{
    agd_worker_args_t *args = (agd_worker_args_t *) args_;
    void *socket = zmq_socket (zsys_init (), ZMQ_DEALER);
    uint8_t identity [5] = { 'W' };
    memcpy (identity + 1, &args->id, 4);
    zmq_setsockopt (socket, ZMQ_ROUTING_ID, identity, sizeof identity);
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    int rc = zmq_connect (socket, args->endpoint);
    free (args);
    if (rc) {
        zsys_error ("worker: cannot connect to broker: %s",
                    zmq_strerror (zmq_errno ()));
        zmq_close (socket);
        return NULL;
    }
    char command = AGD_WORKER_READY;
    zmq_send (socket, &command, 1, 0);
    void *altstack = agd_fatal_altstack ();

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    while (true) {
        agd_batch_t *batch;
        uint8_t frame [sizeof batch];
        int size = zmq_recv (socket, frame, sizeof frame, 0);
        if (size == sizeof batch) {
            //  Chains of jobs, one per agent: each job goes back as soon
            //  as it is done, so its reply leaves at once; the link is
            //  read first, as the broker may recycle a job it has back.
            //  A chain the broker has taken back is skipped.
            memcpy (&batch, frame, sizeof batch);
            bool failed = false;
            for (uint32_t i = 0; i < batch->count && !failed; i++) {
                agd_slot_t *slot = &batch->slots [i];
                int handed = AGD_SLOT_HANDED;
                if (!atomic_compare_exchange_strong (&slot->state, &handed,
                                                     AGD_SLOT_TAKEN))
                    continue;
                agd_job_t *job = slot->chain;
                while (job && !failed) {
                    agd_job_t *next = job->next;
                    agd_job_run (job, &buffer, &zone);
                    //  A call whose arguments hold futures goes back to
                    //  the broker to have them resolved, with the rest
                    //  of its agent's chain (still linked to it), unrun
                    bool waits = job->refs && !job->resolved;
                    //  Never blocks: the broker's queue to us has no
                    //  limit, and a broker that has gone makes this fail
                    //  at once
                    failed = zmq_send (socket, &job, sizeof job,
                                       ZMQ_DONTWAIT) == -1;
                    job = waits? NULL: next;
                }
            }
            if (failed)
                break;
            command = AGD_WORKER_END;
            if (zmq_send (socket, &command, 1, ZMQ_DONTWAIT) == -1)
                break;
        }
        else
        if (size == 1 && frame [0] == AGD_WORKER_TERM)
            break;
        else
        if (size == -1 && zmq_errno () != EINTR)
            break;                  //  context terminated
    }
    command = AGD_WORKER_BYE;
    zmq_send (socket, &command, 1, ZMQ_DONTWAIT);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&buffer);
    zmq_close (socket);
    agd_fatal_altstack_free (altstack);
    return NULL;
}
