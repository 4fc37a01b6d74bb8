/*  =========================================================================
    agd_refs - the broker resolves the futures a call's arguments name

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A call whose arguments hold future references comes back from the
//  worker that found them (agd_future) before it runs. It is not
//  runnable yet, so it holds no thread: it waits at the head of its
//  agent's mailbox (the agent's later calls wait behind it, in order)
//  while the broker gets the values. A result kept on this server is
//  taken from its own store, waiting there if the call that makes it is
//  still to finish; one kept elsewhere is fetched from that server
//  (agd_peers), if server/peer allows connecting there. When every value
//  is in, the call goes back to a worker, which puts them in place.
//
//  Nothing waits without end. The values must be in by the deadline
//  server/future_timeout_ms; past it the call fails with 424, naming the
//  reference still out. A reference that can never resolve fails at
//  once: the call's own result, or one whose call waits, on this server,
//  for this call to finish, however many calls lie between (a cycle of
//  references, or a reference to a call queued behind this one on its
//  agent). A failed or missing value fails the call with 424 and the
//  reason. A value counts against the caller's memory (agd_admit) from
//  the moment it arrives.
//  @end

#include "agd_broker.h"
#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define CYCLE_STEPS     4096        //  jobs looked at for a cycle, at most

//  ---------------------------------------------------------------------
//  Endpoints: this server's own, and those it may connect to

//  Split tcp://host:port into host (no brackets) and port; false if not
static bool
s_tcp_parts (const char *endpoint, char *host, size_t size, char *port,
             size_t port_size)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *start = endpoint + 6;
    const char *colon = strrchr (start, ':');
    if (!colon || colon == start)
        return false;
    const char *end = colon;
    if (*start == '[' && end [-1] == ']') {
        start++;
        end--;
    }
    size_t len = (size_t) (end - start);
    if (len >= size || strlen (colon + 1) >= port_size)
        return false;
    memcpy (host, start, len);
    host [len] = 0;
    snprintf (port, port_size, "%s", colon + 1);
    return true;
}

static bool
s_is_loopback (const char *host)
{
    return strncmp (host, "127.", 4) == 0 || streq (host, "::1")
        || streq (host, "localhost");
}

static bool
s_is_wildcard (const char *host)
{
    return streq (host, "*") || streq (host, "0.0.0.0") || streq (host, "::");
}

//  True if host is an address of this machine's interfaces
static bool
s_is_mine (agd_broker_t *self, const char *host)
{
    if (s_is_loopback (host))
        return true;
    for (size_t i = 0; i < self->address_count; i++)
        if (streq (self->addresses [i], host))
            return true;
    return false;
}

void
agd_refs_init (agd_broker_t *self)
{
    //  Literal addresses only: nothing here may wait for DNS
    struct ifaddrs *list;
    if (getifaddrs (&list) == 0) {
        for (struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
            if (!ifa->ifa_addr
            ||  self->address_count == sizeof self->addresses
                                       / sizeof self->addresses [0])
                continue;
            char *text = self->addresses [self->address_count];
            size_t size = sizeof self->addresses [0];
            if (ifa->ifa_addr->sa_family == AF_INET
            &&  inet_ntop (AF_INET, &((struct sockaddr_in *)
                           ifa->ifa_addr)->sin_addr, text, size))
                self->address_count++;
            else
            if (ifa->ifa_addr->sa_family == AF_INET6
            &&  inet_ntop (AF_INET6, &((struct sockaddr_in6 *)
                           ifa->ifa_addr)->sin6_addr, text, size))
                self->address_count++;
        }
        freeifaddrs (list);
    }
    self->peers = agd_peers_new (self->config.max_message,
                                 MIN (self->config.future_timeout_ms,
                                      10000));
}

bool
agd_refs_is_self (agd_broker_t *self, const char *endpoint)
{
    char host [AGP_MAX_NAME + 1], port [16];
    bool tcp = s_tcp_parts (endpoint, host, sizeof host, port, sizeof port);
    const char *bound = (const char *) zlist_first (self->args->bound);
    for (; bound; bound = (const char *) zlist_next (self->args->bound)) {
        if (streq (bound, endpoint))
            return true;
        char bound_host [AGP_MAX_NAME + 1], bound_port [16];
        if (tcp && s_tcp_parts (bound, bound_host, sizeof bound_host,
                                bound_port, sizeof bound_port)
        &&  streq (port, bound_port)
        &&  (streq (host, bound_host)
          || (s_is_loopback (host) && s_is_loopback (bound_host))
          || (s_is_wildcard (bound_host) && s_is_mine (self, host))))
            return true;
    }
    return false;
}

bool
agd_refs_allowed (agd_broker_t *self, const char *endpoint)
{
    char host [AGP_MAX_NAME + 1], port [16];
    bool tcp = s_tcp_parts (endpoint, host, sizeof host, port, sizeof port);
    const char *peer = (const char *) zlist_first (self->args->peers);
    for (; peer; peer = (const char *) zlist_next (self->args->peers)) {
        if (streq (peer, "any") || streq (peer, endpoint))
            return true;
        if (streq (peer, "local")
        &&  (strncmp (endpoint, "ipc://", 6) == 0
          || (tcp && s_is_loopback (host))))
            return true;
        char peer_host [AGP_MAX_NAME + 1], peer_port [16];
        if (tcp && s_tcp_parts (peer, peer_host, sizeof peer_host, peer_port,
                                sizeof peer_port)
        &&  streq (peer_port, "*") && streq (peer_host, host))
            return true;
    }
    return false;
}

//  ---------------------------------------------------------------------
//  Waiting jobs, in deadline order (one timeout for all: arrival order;
//  a call's own earlier deadline is kept by agd_cancel.c's heap)

static void
s_list_remove (agd_broker_t *self, agd_refs_t *refs)
{
    if (refs->prev)
        refs->prev->refs->next = refs->next;
    else
        self->waiting_head = refs->next;
    if (refs->next)
        refs->next->refs->prev = refs->prev;
    else
        self->waiting_tail = refs->prev;
    refs->prev = refs->next = NULL;
    self->waiting--;
}

static void
s_list_insert (agd_broker_t *self, agd_job_t *job)
{
    agd_refs_t *refs = job->refs;
    refs->next = NULL;
    refs->prev = self->waiting_tail;
    if (self->waiting_tail)
        self->waiting_tail->refs->next = job;
    else
        self->waiting_head = job;
    self->waiting_tail = job;
    self->waiting++;
}

//  Stop every wait of a job's references still out
static void
s_cancel (agd_broker_t *self, agd_job_t *job)
{
    agd_refs_t *refs = job->refs;
    for (uint32_t i = 0; i < refs->count; i++) {
        agd_ref_t *ref = &refs->refs [i];
        if (ref->done)
            continue;
        if (ref->local)
            agd_store_cancel (self->store, ref->owner, ref->owner_size,
                              ref->corr, job, i);
        else
            agd_peers_cancel (self->peers, ref);
    }
}

//  The job fails: what it waited for no longer matters, its agent takes
//  the next call
static void
s_fail (agd_broker_t *self, agd_job_t *job, int status, const char *format,
        ...)
{
    char reason [512];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    AGD_LOG (self->config, AGD_LOG_INFO, zsys_info,
             "call failed before it ran status=%d corr=%" PRIu64 " agent=%"
             PRIu64 " reason='%s'", status, job->env.corr, job->env.agent,
             reason);
    s_cancel (self, job);
    s_list_remove (self, job->refs);
    job->agent->waiting = NULL;
    job->state = AGD_JOB_QUEUED;
    agd_pool_fail (self, job, status, reason);
}

//  ---------------------------------------------------------------------
//  Cycles

//  True if job, or what it waits behind, waits (on this server) for
//  target to finish: then target can never run
static bool
s_reaches (agd_broker_t *self, agd_job_t *job, agd_job_t *target,
           size_t *steps)
{
    while (job && (*steps)--) {
        if (job == target)
            return true;
        if (job->state == AGD_JOB_WAITING) {
            agd_refs_t *refs = job->refs;
            for (uint32_t i = 0; i < refs->count; i++) {
                agd_ref_t *ref = &refs->refs [i];
                if (ref->done || !ref->local)
                    continue;
                agd_job_t *producer = agd_store_producer (self->store,
                    ref->owner, ref->owner_size, ref->corr);
                if (producer && s_reaches (self, producer, target, steps))
                    return true;
            }
            return false;
        }
        //  Queued behind a call that waits: it waits for what that waits
        if (job->state == AGD_JOB_QUEUED && job->agent
        &&  job->agent->waiting && job->agent->waiting != job)
            job = job->agent->waiting;
        else
            return false;           //  it will run
    }
    return false;
}

//  Fail job at once if one of its local references can never resolve.
//  Returns true if it did.
static bool
s_check_cycles (agd_broker_t *self, agd_job_t *job)
{
    agd_refs_t *refs = job->refs;
    for (uint32_t i = 0; i < refs->count; i++) {
        agd_ref_t *ref = &refs->refs [i];
        if (ref->done || !ref->local)
            continue;
        agd_job_t *producer = agd_store_producer (self->store, ref->owner,
                                                  ref->owner_size, ref->corr);
        size_t steps = CYCLE_STEPS;
        if (producer && s_reaches (self, producer, job, &steps)) {
            s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                    PRIu64 " at %s) can never resolve: %s", i + 1, ref->corr,
                    ref->endpoint, producer == job
                    ? "it is this call's own result"
                    : "its call waits, on this server, for this one");
            return true;
        }
    }
    return false;
}

void
agd_refs_arrived (agd_broker_t *self, agd_job_t *producer)
{
    //  A failure may fail others in turn, and the producer with them (a
    //  CREATE that fails takes its agent's mailbox with it): after each,
    //  both are looked up again, by the result's key
    uint8_t owner [AGP_MAX_NAME];
    size_t owner_size = MIN (zmq_msg_size (&producer->routing),
                             sizeof owner);
    memcpy (owner, zmq_msg_data (&producer->routing), owner_size);
    uint64_t corr = producer->env.corr;
    bool failed = true;
    while (failed) {
        failed = false;
        producer = agd_store_producer (self->store, owner, owner_size, corr);
        if (!producer)
            break;
        agd_job_t *waiters [AGD_MAX_REFS];
        size_t count = agd_store_waiters (self->store, owner, owner_size,
                                          corr, waiters, AGD_MAX_REFS);
        for (size_t i = 0; i < count && !failed; i++) {
            agd_job_t *waiter = waiters [i];
            if (waiter->env.command == AGP_FETCH
            ||  waiter->state != AGD_JOB_WAITING)
                continue;
            size_t steps = CYCLE_STEPS;
            if (s_reaches (self, producer, waiter, &steps)) {
                s_fail (self, waiter, AG_DEP_FAILED, "an argument future"
                        " (call %" PRIu64 ") can never resolve: its call"
                        " waits, on this server, for this one", corr);
                failed = true;
            }
        }
    }
}

//  ---------------------------------------------------------------------
//  Resolving

//  Every value is in: the job runs, at the head of its agent's mailbox
static void
s_ready (agd_broker_t *self, agd_job_t *job)
{
    s_list_remove (self, job->refs);
    job->resolved = true;
    agd_agent_t *agent = job->agent;
    agent->waiting = NULL;
    job->state = AGD_JOB_QUEUED;
    job->next = agent->head;
    agent->head = job;
    if (!agent->tail)
        agent->tail = job;
    agent->queued++;
    agd_pool_make_ready (self, agent);
}

//  A value is in. Returns 0 if the job still waits, 1 if it is ready to
//  run, -1 if it failed (and is gone).
static int
s_deliver (agd_broker_t *self, agd_job_t *job, uint32_t index, int status,
           zmq_msg_t *body)
{
    agd_refs_t *refs = job->refs;
    if (job->state != AGD_JOB_WAITING || index >= refs->count
    ||  refs->refs [index].done)
        return 0;                   //  cannot happen: waits are cancelled
    agd_ref_t *ref = &refs->refs [index];
    ref->done = true;
    ref->peer = NULL;
    ref->status = status;
    refs->outstanding--;
    size_t size = agp_msg_body_size (body);
    if (status != AG_OK) {
        //  The value's reason, to pass on
        ag_value_t *value = ag_value_decode (agp_msg_body (body), size);
        char *why = ag_obj_strdup (ag_value_object (value));
        ag_value_destroy (&value);
        s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                PRIu64 " at %s) failed: %s (%d)", index + 1, ref->corr,
                ref->endpoint, why? why: ag_status_str (status), status);
        free (why);
        return -1;
    }
    //  The value is held until the call has run: it counts against the
    //  caller as the request does
    if (size > self->config.max_message) {
        s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                PRIu64 " at %s): its value of %zu bytes is over the limit of"
                " %zu (server/max_message)", index + 1, ref->corr,
                ref->endpoint, size, self->config.max_message);
        return -1;
    }
    const char *why = agd_admit_more (self, job, zmq_msg_size (body));
    if (why) {
        s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                PRIu64 " at %s): its value of %zu bytes would pass what this"
                " client may hold (%s)", index + 1, ref->corr, ref->endpoint,
                size, why);
        return -1;
    }
    //  A small value's frame may be the very reply its caller is sent, and
    //  counted against that caller until freed: the bytes are copied. A
    //  large one is shared (the store's copy, never counted)
    size_t frame_size = zmq_msg_size (body);
    if (frame_size > 1024)
        zmq_msg_copy (&ref->value, body);
    else
    if (zmq_msg_init_size (&ref->value, frame_size) == 0)
        memcpy (zmq_msg_data (&ref->value), zmq_msg_data (body), frame_size);
    if (refs->outstanding)
        return 0;
    s_ready (self, job);
    return 1;
}

void
agd_refs_deliver (agd_broker_t *self, agd_job_t *job, uint32_t index,
                  int status, zmq_msg_t *body)
{
    s_deliver (self, job, index, status, body);
}

void
agd_refs_start (agd_broker_t *self, agd_job_t *job)
{
    agd_refs_t *refs = job->refs;
    agd_agent_t *agent = job->agent;
    job->state = AGD_JOB_WAITING;
    agent->waiting = job;
    refs->outstanding = refs->count;
    refs->deadline = self->now + (int64_t) self->config.future_timeout_ms
                                 * 1000;
    s_list_insert (self, job);
    if (self->stopping) {
        s_fail (self, job, AG_STOPPING, "server is stopping");
        return;
    }
    //  Where each is, and whether it may be fetched, before any wait
    for (uint32_t i = 0; i < refs->count; i++) {
        agd_ref_t *ref = &refs->refs [i];
        ref->local = agd_refs_is_self (self, ref->endpoint);
        if (!ref->local && !agd_refs_allowed (self, ref->endpoint)) {
            s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                    PRIu64 " at %s): not allowed: this server fetches only"
                    " from the servers server/peer names", i + 1, ref->corr,
                    ref->endpoint);
            return;
        }
    }
    for (uint32_t i = 0; i < refs->count; i++) {
        agd_ref_t *ref = &refs->refs [i];
        if (ref->done)
            continue;
        if (ref->local) {
            int status;
            zmq_msg_t body;
            zmq_msg_init (&body);
            int found = agd_store_fetch (self->store, job->account,
                                         ref->owner, ref->owner_size,
                                         ref->corr, job, i, &status, &body);
            int rc = found == AG_OK? s_deliver (self, job, i, status, &body)
                                   : 0;
            zmq_msg_close (&body);
            if (rc)
                return;             //  failed, or all in and ready
            if (found == AG_GONE || found == AG_BUSY) {
                s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                        PRIu64 " at %s): %s", i + 1, ref->corr,
                        ref->endpoint, found == AG_GONE
                        ? "its result is gone (server/retention_ms)"
                        : "too many fetches wait for it already");
                return;
            }
        }
        else
        if (agd_peers_fetch (self->peers, ref, job, i, self->now)) {
            s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                    PRIu64 " at %s): unreachable", i + 1, ref->corr,
                    ref->endpoint);
            return;
        }
    }
    s_check_cycles (self, job);
}

void
agd_refs_expire (agd_broker_t *self)
{
    while (self->waiting_head
    &&     self->waiting_head->refs->deadline <= self->now) {
        agd_job_t *job = self->waiting_head;
        agd_refs_t *refs = job->refs;
        uint32_t out = 0;
        while (out < refs->count && refs->refs [out].done)
            out++;
        agd_ref_t *ref = &refs->refs [MIN (out, refs->count - 1)];
        s_fail (self, job, AG_DEP_FAILED, "argument future %u (call %"
                PRIu64 " at %s) not resolved within %d ms"
                " (server/future_timeout_ms)", out + 1, ref->corr,
                ref->endpoint, self->config.future_timeout_ms);
    }
}

void
agd_refs_cancel (agd_broker_t *self, agd_job_t *job, int status,
                 const char *reason)
{
    s_fail (self, job, status, "%s", reason);
}

int64_t
agd_refs_timeout (agd_broker_t *self, int64_t now)
{
    int64_t timeout = INT64_MAX;
    if (self->waiting_head)
        timeout = (self->waiting_head->refs->deadline - now + 999) / 1000;
    int64_t peers = agd_peers_tick (self->peers, now, agd_broker_deliver,
                                    self);
    if (peers >= 0)
        timeout = MIN (timeout, peers);
    return timeout;
}

void
agd_refs_stop (agd_broker_t *self)
{
    while (self->waiting_head)
        s_fail (self, self->waiting_head, AG_STOPPING, "server stopped"
                " before this call's argument futures were resolved");
}

void
agd_refs_destroy (agd_broker_t *self)
{
    agd_refs_stop (self);
    agd_peers_destroy (&self->peers);
}
