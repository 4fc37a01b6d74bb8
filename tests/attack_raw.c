/*  =========================================================================
    attack_raw - the attackers' raw AGP, and the calls sent with it

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The attackers speak AGP (PROTOCOL.md) on raw ZeroMQ sockets, with no
//  client library in between: sockets whose sends give up after a while,
//  request frames sent and replies received with deadlines, Counters
//  created in bulk, CALL bodies holding future references built by hand,
//  and calls_t, which times a batch of CALLs and sorts their replies.
//  @end

#include "attack.h"

//  ---------------------------------------------------------------------
//  Raw sockets: the attackers' AGP, from PROTOCOL.md

static void
s_raw_close (void *socket)
{
    zmq_close (socket);
}

void *
at_raw_new (int type, const char *endpoint, const void *id, size_t id_size,
            int rcvhwm)
{
    void *socket = zmq_socket (at_context, type);
    if (!socket)
        return NULL;
    int zero = 0, timeout = 10000 * at_slow;
    zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (id)
        zmq_setsockopt (socket, ZMQ_ROUTING_ID, id, id_size);
    if (rcvhwm > 0)
        zmq_setsockopt (socket, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (endpoint && zmq_connect (socket, endpoint)) {
        zmq_close (socket);
        return NULL;
    }
    at_defer (s_raw_close, socket);
    return socket;
}

void
at_raw_destroy (void *socket)
{
    if (socket) {
        at_undefer (socket);
        zmq_close (socket);
    }
}

int
at_raw_send (void *socket, uint8_t command, uint16_t flags, uint64_t corr,
             uint64_t agent, const void *body, size_t size)
{
    agp_envelope_t env = {
        .command = command, .word = flags, .corr = corr, .agent = agent
    };
    return agp_send (socket, NULL, &env, body, size, NULL, 0);
}

int
at_raw_send_value (void *socket, uint8_t command, uint16_t flags,
                   uint64_t corr, uint64_t agent, const ag_value_t *body)
{
    return at_raw_send (socket, command, flags, corr, agent,
                        ag_value_data (body), ag_value_size (body));
}

int
at_raw_recv (void *socket, int msecs, agp_envelope_t *env, zmq_msg_t *frame)
{
    zmq_msg_init (frame);
    if (zmq_msg_recv (frame, socket, ZMQ_DONTWAIT) == -1) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        if (msecs <= 0 || zmq_poll (&item, 1, msecs) <= 0
        ||  zmq_msg_recv (frame, socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (frame);
            return -1;
        }
    }
    bool more = zmq_msg_more (frame);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init (&extra);
        if (zmq_msg_recv (&extra, socket, 0) == -1)
            break;
        more = zmq_msg_more (&extra);
        zmq_msg_close (&extra);
    }
    memset (env, 0, sizeof *env);
    if (agp_envelope_decode (env, zmq_msg_data (frame), zmq_msg_size (frame)))
        env->command = 0;
    return 0;
}

//  The reason a failed reply carries
static void
s_reason (zmq_msg_t *frame, char *reason, size_t size)
{
    ag_value_t *value = zmq_msg_size (frame) > AGP_ENVELOPE_SIZE?
        ag_value_decode (agp_msg_body (frame), agp_msg_body_size (frame)):
        NULL;
    char *text = ag_obj_strdup (ag_value_object (value));
    snprintf (reason, size, "%s", text? text: "");
    free (text);
    ag_value_destroy (&value);
}

int
at_left_ms (int64_t deadline)
{
    int64_t left = (deadline - ag_usecs () + 999) / 1000;
    return left < 0? 0: left > INT32_MAX? INT32_MAX: (int) left;
}

size_t
at_create_many (void *dealer, size_t count, bool detached, uint64_t *ids,
                size_t window, int msecs, int *failure, char *reason,
                size_t size)
{
    ag_value_t *body = detached?
        ag_value_new ("{s:s, s:b}", "class", "Counter", "detached", 1):
        ag_value_new ("{s:s}", "class", "Counter");
    *failure = 0;
    reason [0] = 0;
    size_t sent = 0, done = 0, created = 0;
    uint64_t first = at_corr + 1;
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    while (done < count && ag_usecs () < deadline) {
        while (sent < count && sent - done < window) {
            if (at_raw_send_value (dealer, AGP_CREATE, 0, ++at_corr, 0, body))
                break;
            sent++;
        }
        agp_envelope_t env;
        zmq_msg_t frame;
        if (at_raw_recv (dealer, at_left_ms (deadline), &env, &frame))
            break;
        if (env.command == (AGP_CREATE | AGP_REPLY)
        &&  env.corr >= first && env.corr < first + sent) {
            done++;
            if (env.word == AG_OK) {
                if (ids)
                    ids [created] = env.agent;
                created++;
            }
            else
            if (!*failure) {
                *failure = env.word;
                s_reason (&frame, reason, size);
            }
        }
        zmq_msg_close (&frame);
    }
    ag_value_destroy (&body);
    return created;
}

uint64_t
at_create_one (void *dealer)
{
    uint64_t agent = 0;
    int failure;
    char reason [256];
    if (at_create_many (dealer, 1, false, &agent, 1, 10000 * at_slow,
                        &failure, reason, sizeof reason) != 1) {
        fprintf (stderr, "    cannot create an agent: %d %s\n", failure,
                 reason);
        return 0;
    }
    return agent;
}

ag_value_t *
at_ref_call (const char *method, const char *endpoint, const void *owner,
             size_t owner_size, uint64_t corr)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, 2);
    msgpack_pack_str_with_body (&packer, method, strlen (method));
    agp_ref_t ref = {
        .endpoint = { endpoint, strlen (endpoint) },
        .owner = { (const char *) owner, owner_size },
        .corr = corr
    };
    ag_value_t *value = agp_ref_encode (&packer, &ref) == 0?
        ag_value_decode (buffer.data, buffer.size): NULL;
    msgpack_sbuffer_destroy (&buffer);
    return value;
}

//  OS error text a reason should never hold
static bool
s_os_text (const char *reason)
{
    return strstr (reason, "refused") || strstr (reason, "Connection")
        || strstr (reason, "errno");
}

//  ---------------------------------------------------------------------
//  Calls sent on a raw socket, and their replies

calls_t *
at_calls_new (size_t count)
{
    calls_t *self = (calls_t *) calloc (1, sizeof (calls_t));
    self->first = at_corr + 1;
    at_corr += count;
    self->count = count;
    self->sent = (int64_t *) calloc (count, sizeof (int64_t));
    self->status = (int *) calloc (count, sizeof (int));
    self->took = (int64_t *) calloc (count, sizeof (int64_t));
    self->reason = (char **) calloc (count, sizeof (char *));
    return self;
}

void
at_calls_destroy (calls_t **self_p)
{
    calls_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free (self->reason [i]);
    free (self->sent);
    free (self->status);
    free (self->took);
    free (self->reason);
    free (self);
    *self_p = NULL;
}

int
at_calls_send (calls_t *self, size_t i, void *socket, uint64_t agent,
               uint16_t flags, const ag_value_t *body)
{
    self->sent [i] = ag_usecs ();
    return at_raw_send_value (socket, AGP_CALL, flags, self->first + i, agent,
                              body);
}

size_t
at_calls_collect (calls_t *self, void *socket, int64_t deadline)
{
    while (self->answered < self->count && ag_usecs () < deadline) {
        agp_envelope_t env;
        zmq_msg_t frame;
        if (at_raw_recv (socket, at_left_ms (deadline), &env, &frame))
            break;
        if (env.command == (AGP_CALL | AGP_REPLY) && env.corr >= self->first
        &&  env.corr < self->first + self->count) {
            size_t i = (size_t) (env.corr - self->first);
            if (!self->status [i]) {
                self->status [i] = env.word ? env.word: 1;
                self->took [i] = ag_usecs () - self->sent [i];
                self->answered++;
                if (env.word != AG_OK) {
                    char reason [1100];
                    s_reason (&frame, reason, sizeof reason);
                    self->reason [i] = strdup (reason);
                }
            }
        }
        zmq_msg_close (&frame);
    }
    return self->answered;
}

size_t
at_calls_with (calls_t *self, int status)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count; i++)
        count += self->status [i] == status;
    return count;
}

double
at_calls_max_took (calls_t *self)
{
    int64_t most = 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->status [i])
            most = MAX (most, self->took [i]);
    return most / 1e6;
}

size_t
at_calls_saying (calls_t *self, const char *word)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count; i++)
        count += self->reason [i] && strstr (self->reason [i], word);
    return count;
}

size_t
at_calls_os_text (calls_t *self)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count; i++)
        count += self->reason [i] && s_os_text (self->reason [i]);
    return count;
}

void
at_calls_say (calls_t *self, const char *what)
{
    char line [600] = "";
    size_t len = 0;
    int seen [16];
    size_t kinds = 0;
    const char *sample = NULL;
    for (size_t i = 0; i < self->count; i++) {
        int status = self->status [i];
        if (!status)
            continue;
        if (!sample && self->reason [i])
            sample = self->reason [i];
        size_t k;
        for (k = 0; k < kinds && seen [k] != status; k++)
            ;
        if (k == kinds && kinds < 16) {
            seen [kinds++] = status;
            len += (size_t) snprintf (line + len, sizeof line - len,
                                      "%s%d x %zu", len? ", ": "",
                                      status == 1? 0: status,
                                      at_calls_with (self, status));
            if (len >= sizeof line)
                len = sizeof line - 1;
        }
    }
    at_say ("%s: %zu of %zu answered (%s), slowest %.3f s%s%.300s", what,
            self->answered, self->count, len? line: "none",
            at_calls_max_took (self), sample? "; a reason: ": "",
            sample? sample: "");
    if (self->answered < self->count || sample)
        at_notef ("%s: %zu of %zu answered (%s), slowest %.3f s%s%.200s",
                  what, self->answered, self->count, len? line: "none",
                  at_calls_max_took (self), sample? ", reason: ": "",
                  sample? sample: "");
}
