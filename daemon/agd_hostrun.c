/*  =========================================================================
    agd_hostrun - agentd's host role: running another agentd's agents

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A host (agd_host.c starts it) talks to its broker over one stream
//  socket, the end of a socketpair it was given: each message a 4-octet
//  little-endian length and an AGP frame. It needs no broker of its own.
//  One thread at a time leads: it reads what the socket holds, queues
//  the requests, and runs the first itself; a thread done with a request
//  takes the next queued one, and a follower is woken to lead while the
//  others run. An agent's requests run one at a time, in the order they
//  came: whether a request's agent is taken is decided as it leaves the
//  queue, and one that finds it taken waits in the agent's own queue;
//  the agent's next request then takes its turn at the back of the
//  common queue, so that one thread runs many agents' requests in a row.
//
//  Replies are held a little (FLUSH_AFTER_US, or until the thread has
//  nothing more to run) to go many in one write; but an agent's reply
//  is in the socket before its next request starts. What is in the
//  socket survives the host: the broker reads it even after the host
//  has died, so the requests of an agent it has no reply to are exactly
//  the one that may have run and those that never started.
//
//  The pool is elastic as the broker's own: a watcher (the main thread)
//  starts threads when requests have waited a millisecond and none has
//  completed meanwhile (the threads are blocked, not busy), up to
//  threads_max; threads idle for idle_ms beyond threads_min go. The host
//  ends when the socket does (the broker stopped or died).
//  @end

#include "agd.h"
#include <poll.h>

#define FRAME_MAX_EXTRA     (1024 * 1024)   //  a frame beyond max_message

#define GROW_AFTER_US       1000    //  requests wait this long before the
                                    //  pool grows for them

typedef struct _request_t request_t;
struct _request_t {
    request_t *next;
    zmq_msg_t frame;
    agp_envelope_t env;
    bool turn;                      //  its agent's next, from its queue
    void *hosted;                   //  its agent, taken with it
    bool known;                     //  in the table of requests, by corr
    _Atomic int cancel;             //  CANCEL came before it ran
    agd_job_t *job;                 //  while it runs
};

//  An agent here: what agd_job_run sees, and the requests that came
//  while it ran (the broker sends a few at once; they run in order)
typedef struct {
    agd_agent_t agent;
    request_t *head, *tail;
    bool owned;                     //  a thread runs it, or its next
                                    //  request waits its turn
    bool unflushed;                 //  a reply of it is not written yet
} hosted_t;

#define FLUSH_AFTER_US      100     //  replies wait for others this long
#define FLUSH_BYTES         (256 * 1024)

typedef struct {
    int fd;
    agd_registry_t *registry;
    agd_hostrun_config_t config;
    uint8_t *in;                    //  read, not yet a whole frame (the
    size_t in_size, in_alloc;       //  leader's)
    pthread_mutex_t lock;           //  all below
    pthread_cond_t lead;            //  followers wait for the lead here
    pthread_cond_t watch;           //  the watcher waits here
    bool led;                       //  a thread leads
    bool watcher_asleep;            //  the watcher waits for work
    bool ending;                    //  the socket has ended
    size_t threads, idle;
    request_t *head, *tail;         //  requests read, not yet taken
    int64_t queued_since;           //  the queue is not empty since, or 0
    int64_t last_done;              //  a request last completed then
    ag_idmap_t *agents;             //  id -> hosted_t
    ag_idmap_t *requests;           //  corr -> request_t, for CANCEL
    pthread_mutex_t write_lock;     //  the replies below, the socket
    uint8_t *out;                   //  replies not written yet
    size_t out_size, out_alloc;
    int64_t out_since;              //  the first of them came then
    hosted_t **flagged;             //  the agents they are of
    size_t flagged_count, flagged_alloc;
} host_t;

static void
s_log (int level, host_t *self, const char *format, ...)
{
    if (self->config.log_level < level)
        return;
    char text [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    fprintf (stderr, "%s: (agentd host %d) %s\n", level == AGD_LOG_ERROR
             ? "E": level == AGD_LOG_WARNING? "W": "I", (int) getpid (),
             text);
}

//  ---------------------------------------------------------------------
//  The socket

static int
s_write_all (int fd, const void *data, size_t size)
{
    const uint8_t *at = (const uint8_t *) data;
    while (size) {
        ssize_t rc = write (fd, at, size);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        at += rc;
        size -= (size_t) rc;
    }
    return 0;
}

//  Read what the socket holds (waiting for it), and make each whole
//  frame a request: into a list (head, tail). Returns 0, or -1 at the
//  socket's end or on a frame no broker sends.
static int
s_read_frames (host_t *self, request_t **head, request_t **tail)
{
    *head = *tail = NULL;
    if (self->in_alloc - self->in_size < 65536) {
        size_t alloc = MAX (self->in_alloc * 2, 262144);
        uint8_t *in = (uint8_t *) realloc (self->in, alloc);
        if (!in)
            return -1;
        self->in = in;
        self->in_alloc = alloc;
    }
    ssize_t rc;
    do
        rc = read (self->fd, self->in + self->in_size,
                   self->in_alloc - self->in_size);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return -1;
    self->in_size += (size_t) rc;
    size_t at = 0;
    while (self->in_size - at >= 4) {
        const uint8_t *data = self->in + at;
        size_t size = (size_t) data [0] | (size_t) data [1] << 8
                    | (size_t) data [2] << 16 | (size_t) data [3] << 24;
        if (size < AGP_ENVELOPE_SIZE
        ||  size > self->config.max_message + FRAME_MAX_EXTRA) {
            s_log (AGD_LOG_ERROR, self, "a frame of %zu bytes from the"
                   " broker", size);
            return -1;
        }
        if (self->in_size - at - 4 < size) {
            //  Room for the rest of a large one
            if (4 + size > self->in_alloc) {
                uint8_t *in = (uint8_t *) realloc (self->in, 4 + size);
                if (!in)
                    return -1;
                self->in = in;
                self->in_alloc = 4 + size;
            }
            break;
        }
        request_t *request = (request_t *) malloc (sizeof (request_t));
        if (!request || zmq_msg_init_size (&request->frame, size)) {
            free (request);
            return -1;
        }
        memcpy (zmq_msg_data (&request->frame), data + 4, size);
        request->next = NULL;
        request->known = false;
        request->turn = false;
        request->hosted = NULL;
        request->job = NULL;
        atomic_init (&request->cancel, 0);
        if (agp_envelope_decode (&request->env, data + 4, size)
        ||  (request->env.command & AGP_REPLY)) {
            s_log (AGD_LOG_ERROR, self, "a frame that is no request from"
                   " the broker");
            zmq_msg_close (&request->frame);
            free (request);
            return -1;
        }
        if (*tail)
            (*tail)->next = request;
        else
            *head = request;
        *tail = request;
        at += 4 + size;
    }
    memmove (self->in, self->in + at, self->in_size - at);
    self->in_size -= at;
    return 0;
}

//  Write the replies held (with the write lock held). Returns 0, or -1
//  if the broker is gone.
static int
s_flush_locked (host_t *self)
{
    int rc = self->out_size? s_write_all (self->fd, self->out,
                                          self->out_size): 0;
    self->out_size = 0;
    self->out_since = 0;
    for (size_t i = 0; i < self->flagged_count; i++)
        self->flagged [i]->unflushed = false;
    self->flagged_count = 0;
    if (self->out_alloc > 4 * FLUSH_BYTES) {
        free (self->out);
        self->out = NULL;
        self->out_alloc = 0;
    }
    return rc;
}

//  Write the replies held: all of them; or only if one is of hosted, or
//  they have waited long enough
static void
s_flush (host_t *self, hosted_t *hosted, bool always)
{
    pthread_mutex_lock (&self->write_lock);
    if (self->out_size
    &&  (always || (hosted && hosted->unflushed)
      || ag_usecs () - self->out_since >= FLUSH_AFTER_US))
        s_flush_locked (self);
    pthread_mutex_unlock (&self->write_lock);
}

//  A reply: env, then the body of frame (which has room for the envelope
//  first). Replies are held a little, to go many in one write; but one
//  of an agent is written before its next request runs (s_take), so a
//  reply that would be lost with the host is one to a request that may
//  have run. Returns 0, or -1 if the broker is gone.
static int
s_reply_of (host_t *self, hosted_t *hosted, agp_envelope_t *env,
            zmq_msg_t *frame)
{
    agp_msg_set_envelope (frame, env);
    size_t size = zmq_msg_size (frame);
    pthread_mutex_lock (&self->write_lock);
    int rc = 0;
    if (self->out_size + 4 + size > self->out_alloc) {
        size_t alloc = MAX (self->out_size + 4 + size, 2 * self->out_alloc);
        uint8_t *out = (uint8_t *) realloc (self->out, alloc);
        if (out) {
            self->out = out;
            self->out_alloc = alloc;
        }
        else
        if ((rc = s_flush_locked (self)) == 0) {
            //  No room to hold it: written alone
            uint8_t head [4] = {
                (uint8_t) size, (uint8_t) (size >> 8),
                (uint8_t) (size >> 16), (uint8_t) (size >> 24)
            };
            rc = s_write_all (self->fd, head, 4);
            if (rc == 0)
                rc = s_write_all (self->fd, zmq_msg_data (frame), size);
            pthread_mutex_unlock (&self->write_lock);
            return rc;
        }
    }
    if (rc == 0) {
        uint8_t *at = self->out + self->out_size;
        at [0] = (uint8_t) size;
        at [1] = (uint8_t) (size >> 8);
        at [2] = (uint8_t) (size >> 16);
        at [3] = (uint8_t) (size >> 24);
        memcpy (at + 4, zmq_msg_data (frame), size);
        if (!self->out_size)
            self->out_since = ag_usecs ();
        self->out_size += 4 + size;
        if (hosted && !hosted->unflushed) {
            if (self->flagged_count == self->flagged_alloc) {
                size_t alloc = MAX (self->flagged_alloc * 2, 64);
                hosted_t **flagged = (hosted_t **) realloc (self->flagged,
                                                 alloc * sizeof *flagged);
                if (flagged) {
                    self->flagged = flagged;
                    self->flagged_alloc = alloc;
                }
            }
            if (self->flagged_count < self->flagged_alloc) {
                hosted->unflushed = true;
                self->flagged [self->flagged_count++] = hosted;
            }
            else
                rc = s_flush_locked (self);     //  cannot note it: now
        }
        if (self->out_size >= FLUSH_BYTES)
            rc = s_flush_locked (self);
    }
    pthread_mutex_unlock (&self->write_lock);
    return rc;
}

static int
s_reply (host_t *self, agp_envelope_t *env, zmq_msg_t *frame)
{
    return s_reply_of (self, NULL, env, frame);
}

static int
s_reply_error (host_t *self, agp_envelope_t *request, int status,
               const char *reason)
{
    zmq_msg_t frame;
    if (agd_frame_reason (&frame, reason))
        return -1;
    agp_envelope_t env = {
        .command = (uint8_t) (request->command | AGP_REPLY),
        .word = (uint16_t) status, .corr = request->corr,
        .agent = request->agent
    };
    int rc = s_reply (self, &env, &frame);
    zmq_msg_close (&frame);
    return rc;
}

//  ---------------------------------------------------------------------
//  Requests

//  CREATE: {id, class, args, state, detached}; the agent gets the id the
//  broker gave it
static hosted_t *
s_new_agent (host_t *self, zmq_msg_t *frame, msgpack_zone *zone,
             char *reason, size_t size)
{
    msgpack_object body;
    const char *why;
    msgpack_zone_clear (zone);
    if (ag_msgpack_unpack (agp_msg_body (frame), agp_msg_body_size (frame),
                           zone, &body, &why)) {
        snprintf (reason, size, "CREATE: %s", why);
        return NULL;
    }
    const msgpack_object *id = ag_obj_get (&body, "id");
    const msgpack_object *name = ag_obj_get (&body, "class");
    if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !id->via.u64
    ||  !name || name->type != MSGPACK_OBJECT_STR) {
        snprintf (reason, size, "CREATE: no id or class");
        return NULL;
    }
    const ag_class_t *cls = agd_registry_find (self->registry,
                                               name->via.str.ptr,
                                               name->via.str.size);
    if (!cls) {
        snprintf (reason, size, "no class '%.*s' in this host",
                  (int) MIN (name->via.str.size, AGP_MAX_NAME),
                  name->via.str.ptr);
        return NULL;
    }
    hosted_t *hosted = (hosted_t *) calloc (1, sizeof (hosted_t));
    if (!hosted) {
        snprintf (reason, size, "out of memory");
        return NULL;
    }
    hosted->agent.id = id->via.u64;
    hosted->agent.cls = cls;
    return hosted;
}

//  A request is done with
static void
s_request_free (host_t *self, request_t *request)
{
    if (request->known) {
        pthread_mutex_lock (&self->lock);
        ag_idmap_delete (self->requests, request->env.corr);
        pthread_mutex_unlock (&self->lock);
    }
    zmq_msg_close (&request->frame);
    free (request);
}

//  Run a request of an agent here (hosted is NULL for a CREATE), and
//  answer it. Returns true if the agent is gone (its DELETE ran, or its
//  CREATE failed).
static bool
s_run (host_t *self, hosted_t *hosted, request_t *request,
       msgpack_sbuffer *buffer, msgpack_zone *zone)
{
    agp_envelope_t env = request->env;
    int command = env.command;
    char reason [512];
    if (command == AGP_CREATE) {
        hosted = s_new_agent (self, &request->frame, zone, reason,
                              sizeof reason);
        if (!hosted) {
            s_reply_error (self, &env, AG_BAD_REQUEST, reason);
            s_request_free (self, request);
            return true;
        }
        env.agent = hosted->agent.id;
    }
    agd_agent_t *agent = &hosted->agent;
    agd_job_t job;
    memset (&job, 0, sizeof job);
    job.env = env;
    job.agent = agent;
    job.plain = true;               //  the broker resolved the futures
    job.arrived = ag_usecs ();
    zmq_msg_init (&job.routing);
    zmq_msg_init (&job.body);
    zmq_msg_move (&job.body, &request->frame);
    uint32_t timeout_ms;
    if (command == AGP_CALL
    &&  agp_call_timeout (agp_msg_body (&job.body),
                          agp_msg_body_size (&job.body), &timeout_ms))
        job.deadline = job.arrived + (int64_t) timeout_ms * 1000;
    pthread_mutex_lock (&self->lock);
    atomic_store (&job.cancel, atomic_load (&request->cancel));
    request->job = &job;
    pthread_mutex_unlock (&self->lock);

    agd_job_run (&job, buffer, zone);

    pthread_mutex_lock (&self->lock);
    request->job = NULL;
    if (command == AGP_CREATE && job.status == AG_OK) {
        agent->alive = true;
        ag_idmap_insert (self->agents, agent->id, hosted);
    }
    else
    if (command == AGP_DELETE)
        ag_idmap_delete (self->agents, agent->id);
    pthread_mutex_unlock (&self->lock);
    if (command == AGP_CREATE && job.status == AG_OK) {
        //  The broker answers the CREATE; it needs the id only
        msgpack_sbuffer_clear (buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
        ag_pack (&packer, "{s:u}", "id", agent->id);
        zmq_msg_close (&job.body);
        job.framed = agd_frame_init (&job.body, buffer->data, buffer->size)
                     == 0;
        msgpack_sbuffer_clear (buffer);
    }
    agp_envelope_t reply = {
        .command = (uint8_t) (command | AGP_REPLY),
        .word = job.framed? job.status: AG_INTERNAL,
        .corr = env.corr, .agent = env.agent
    };
    bool gone = (command == AGP_CREATE && job.status != AG_OK)
             || command == AGP_DELETE;
    if (job.framed)
        s_reply_of (self, gone? NULL: hosted, &reply, &job.body);
    else
        s_reply_error (self, &env, AG_INTERNAL, "the host made no reply");
    agd_future_free (&job.refs);
    zmq_msg_close (&job.body);
    zmq_msg_close (&job.routing);
    s_request_free (self, request);
    if (gone) {
        //  Nothing comes after a DELETE; were it so, it finds no agent
        while (hosted->head) {
            request_t *next = hosted->head->next;
            s_reply_error (self, &hosted->head->env, AG_NO_AGENT,
                           "agent deleted");
            s_request_free (self, hosted->head);
            hosted->head = next;
        }
        //  Its replies are noted by address: out before it goes
        s_flush (self, NULL, true);
        free (hosted);
    }
    return gone;
}

//  Take a request read from the socket: a CANCEL at once; a request to
//  an agent that runs another behind that one; the rest now, and then
//  what came for the same agent meanwhile
static void
s_take (host_t *self, request_t *request, bool more,
        msgpack_sbuffer *buffer, msgpack_zone *zone)
{
    int command = request->env.command;
    if (command == AGP_CANCEL) {
        //  The corr of the call to flag, as a msgpack uint 64
        const uint8_t *body = agp_msg_body (&request->frame);
        if (agp_msg_body_size (&request->frame) == 9 && body [0] == 0xcf) {
            uint64_t corr = 0;
            for (int i = 1; i < 9; i++)
                corr = corr << 8 | body [i];
            pthread_mutex_lock (&self->lock);
            request_t *target = (request_t *) ag_idmap_lookup (
                self->requests, corr);
            if (target && target->env.agent == request->env.agent) {
                atomic_store (&target->cancel, AGD_CANCEL_CALLER);
                if (target->job)
                    atomic_store (&target->job->cancel, AGD_CANCEL_CALLER);
            }
            pthread_mutex_unlock (&self->lock);
        }
        s_request_free (self, request);
        return;
    }
    if (command != AGP_CREATE && command != AGP_CALL
    &&  command != AGP_GETATTR && command != AGP_DELETE) {
        s_reply_error (self, &request->env, AG_BAD_REQUEST, "a host runs"
                       " CREATE, CALL, GETATTR, DELETE and CANCEL only");
        s_request_free (self, request);
        return;
    }
    if (command == AGP_CREATE) {
        s_run (self, NULL, request, buffer, zone);
        return;
    }
    hosted_t *hosted = (hosted_t *) request->hosted;
    if (!hosted) {
        char reason [128];
        snprintf (reason, sizeof reason, "no agent %" PRIu64 " in this"
                  " host", request->env.agent);
        s_reply_error (self, &request->env, AG_NO_AGENT, reason);
        s_request_free (self, request);
        return;
    }
    //  Its last reply is in the socket before this starts; and all that
    //  are held, unless this thread has more to run after it (this one
    //  may take long)
    s_flush (self, hosted, !more);
    if (s_run (self, hosted, request, buffer, zone))
        return;
    //  Its next request takes its turn in the queue, behind the others
    //  waiting: the replies of many agents then go in one write
    pthread_mutex_lock (&self->lock);
    request = hosted->head;
    if (request) {
        hosted->head = request->next;
        if (!hosted->head)
            hosted->tail = NULL;
        request->next = NULL;
        request->turn = true;
        if (self->tail)
            self->tail->next = request;
        else {
            self->head = request;
            self->queued_since = ag_usecs ();
        }
        self->tail = request;
    }
    else
        hosted->owned = hosted->agent.busy = false;
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------
//  Threads

static void *s_thread (void *arg);

//  One thread more (with the lock held). Returns 0 or -1.
static int
s_spawn (host_t *self)
{
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create (&thread, &attr, s_thread, self);
    pthread_attr_destroy (&attr);
    if (rc)
        return -1;
    self->threads++;
    return 0;
}

static void *
s_thread (void *arg)
{
    host_t *self = (host_t *) arg;
    void *altstack = agd_fatal_altstack ();
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    pthread_mutex_lock (&self->lock);
    while (!self->ending) {
        //  Work first: the next request read
        if (self->head) {
            request_t *request = self->head;
            self->head = request->next;
            if (!self->head) {
                self->tail = NULL;
                self->queued_since = 0;
            }
            //  Its agent is taken with it, or it waits behind the one
            //  that agent runs: decided as it leaves the queue, so that
            //  one agent's requests run in the order they came
            int command = request->env.command;
            if (command == AGP_CALL || command == AGP_GETATTR
            ||  command == AGP_DELETE) {
                hosted_t *hosted = (hosted_t *) ag_idmap_lookup (
                    self->agents, request->env.agent);
                if (hosted && hosted->owned && !request->turn) {
                    request->next = NULL;
                    if (hosted->tail)
                        hosted->tail->next = request;
                    else
                        hosted->head = request;
                    hosted->tail = request;
                    continue;
                }
                if (hosted)
                    hosted->owned = hosted->agent.busy = true;
                request->hosted = hosted;
            }
            bool more = self->head != NULL;
            pthread_mutex_unlock (&self->lock);
            s_take (self, request, more, &buffer, &zone);
            pthread_mutex_lock (&self->lock);
            self->last_done = ag_usecs ();
            continue;
        }
        //  Nothing to run: what is held goes out first
        pthread_mutex_unlock (&self->lock);
        s_flush (self, NULL, true);
        pthread_mutex_lock (&self->lock);
        if (self->head)
            continue;
        //  Then the lead, if nobody has it
        if (!self->led) {
            self->led = true;
            pthread_mutex_unlock (&self->lock);
            request_t *head, *tail;
            int rc = s_read_frames (self, &head, &tail);
            pthread_mutex_lock (&self->lock);
            self->led = false;
            if (rc) {
                while (head) {
                    request_t *next = head->next;
                    zmq_msg_close (&head->frame);
                    free (head);
                    head = next;
                }
                self->ending = true;
                pthread_cond_broadcast (&self->lead);
                pthread_cond_signal (&self->watch);
                break;
            }
            //  Calls are found by corr, for their CANCEL
            for (request_t *request = head; request; request = request->next)
                if (request->env.command == AGP_CALL
                ||  request->env.command == AGP_GETATTR) {
                    request->known = true;
                    ag_idmap_insert (self->requests, request->env.corr,
                                     request);
                }
            if (head) {
                if (self->tail)
                    self->tail->next = head;
                else {
                    self->head = head;
                    self->queued_since = ag_usecs ();
                }
                self->tail = tail;
            }
            //  A follower leads while this thread runs what it read; the
            //  watcher sees that the threads keep up
            if (self->idle)
                pthread_cond_signal (&self->lead);
            if (self->watcher_asleep && (self->head || !self->idle))
                pthread_cond_signal (&self->watch);
            continue;
        }
        //  Follow; a spare thread idle too long goes
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += self->config.idle_ms / 1000;
        until.tv_nsec += (long) (self->config.idle_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        self->idle++;
        int rc = pthread_cond_timedwait (&self->lead, &self->lock, &until);
        self->idle--;
        if (rc == ETIMEDOUT && !self->head
        &&  self->threads > (size_t) self->config.threads_min)
            break;
    }
    self->threads--;
    pthread_mutex_unlock (&self->lock);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&buffer);
    agd_fatal_altstack_free (altstack);
    return NULL;
}

//  The watcher: while requests wait (queued, or in the socket with no
//  thread to read them), and none has completed for a while, the
//  threads are blocked, not busy: start more, at most doubling the pool
//  each time
static void
s_watch (host_t *self)
{
    pthread_mutex_lock (&self->lock);
    while (!self->ending) {
        bool waiting = self->head || (!self->led && !self->idle);
        if (!waiting) {
            self->watcher_asleep = true;
            pthread_cond_wait (&self->watch, &self->lock);
            self->watcher_asleep = false;
            continue;
        }
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += GROW_AFTER_US * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->watch, &self->lock, &until);
        //  Replies held while every thread runs something long go out
        pthread_mutex_unlock (&self->lock);
        s_flush (self, NULL, false);
        pthread_mutex_lock (&self->lock);
        int64_t now = ag_usecs ();
        bool starved = false;
        if (self->head && now - self->queued_since >= GROW_AFTER_US)
            starved = true;
        else
        if (!self->head && !self->led && !self->idle) {
            struct pollfd item = { self->fd, POLLIN, 0 };
            starved = poll (&item, 1, 0) > 0;
        }
        if (!starved || now - self->last_done < GROW_AFTER_US
        ||  self->threads >= (size_t) self->config.threads_max)
            continue;
        size_t more = MIN (self->threads,
                           (size_t) self->config.threads_max - self->threads);
        for (size_t i = 0; i < MAX (more, 1); i++)
            if (s_spawn (self))
                break;
        self->last_done = now;      //  give them a while to take it
    }
    pthread_mutex_unlock (&self->lock);
}

int
agd_hostrun (int fd, agd_registry_t *registry,
             const agd_hostrun_config_t *config)
{
    host_t *self = (host_t *) calloc (1, sizeof (host_t));
    if (!self)
        return 1;
    self->fd = fd;
    self->registry = registry;
    self->config = *config;
    if (self->config.threads_min < 1)
        self->config.threads_min = 1;
    if (self->config.threads_max < self->config.threads_min)
        self->config.threads_max = self->config.threads_min;
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->write_lock, NULL);
    pthread_cond_init (&self->lead, NULL);
    pthread_cond_init (&self->watch, NULL);
    self->agents = ag_idmap_new ();
    self->requests = ag_idmap_new ();
    pthread_mutex_lock (&self->lock);
    for (int i = 0; i < self->config.threads_min; i++)
        if (s_spawn (self)) {
            s_log (AGD_LOG_ERROR, self, "cannot start a thread");
            pthread_mutex_unlock (&self->lock);
            return 1;
        }
    pthread_mutex_unlock (&self->lock);
    //  Ready: the broker sends requests from now on
    zmq_msg_t frame;
    agp_envelope_t ready = { .command = AGP_PING | AGP_REPLY,
                             .word = AG_OK };
    if (agd_frame_init (&frame, NULL, 0) == 0) {
        s_reply (self, &ready, &frame);
        zmq_msg_close (&frame);
    }
    s_flush (self, NULL, true);
    s_watch (self);
    pthread_mutex_lock (&self->lock);
    //  The broker has gone: the agents no thread runs are finalised;
    //  a thread still in agent code goes with the process
    size_t cursor = 0;
    hosted_t *hosted;
    while ((hosted = (hosted_t *) ag_idmap_next (self->agents, &cursor,
                                                 NULL))) {
        agd_agent_t *agent = &hosted->agent;
        if (!agent->busy && agent->alive) {
            ag_fini_fn *fini = ag_class_fini (agent->cls);
            agd_fatal_enter (agent->id, agent->cls->name, "fini", NULL, 0, 0);
            if (fini)
                fini (agent->state);
            agd_fatal_leave ();
            agent->alive = false;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return 0;
}
