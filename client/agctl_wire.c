/*  =========================================================================
    agctl_wire - a minimal AGP/1 client for agentctl

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  libagentclient gives a handle only on an agent the caller creates, and
//  deletes the agent when the handle goes. agentctl works on agents that
//  already exist, found by id or name, and leaves the agents it creates
//  in place; so CREATE, CALL, GETATTR and DELETE go out here, on a DEALER
//  socket of our own, exactly as PROTOCOL.md specifies: one frame, the
//  24-octet envelope and a msgpack body, using the protocol's own codec.
//
//  One request is outstanding at a time. While it waits, the server is
//  watched as section 10 of the protocol asks: after a quarter of the
//  timeout without word from it we PING, and after the whole timeout
//  without word the request fails with AG_UNREACHABLE. A call may run as
//  long as it likes while the server keeps answering.
//  @end

#include "../common/ag_common.h"
#include "agctl.h"
#include <sodium.h>

struct _agctl_wire_t {
    char *endpoint;                 //  as given
    void *context;                  //  our own ZeroMQ context
    void *socket;                   //  DEALER, connected to endpoint
    int timeout;                    //  ms of silence that means dead
    uint64_t next_corr;             //  last correlation id used
};

//  ---------------------------------------------------------------------
//  Replies

void
agctl_reply_clear (agctl_reply_t *self)
{
    ag_value_destroy (&self->value);
    free (self->reason);
    self->reason = NULL;
    self->status = AG_OK;
}

//  Fail a reply locally, with a reason
static void
s_reply_fail (agctl_reply_t *reply, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_reply_fail (agctl_reply_t *reply, int status, const char *format, ...)
{
    char reason [512];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    reply->status = status;
    reply->reason = strdup (reason);
}

//  Fill a reply from a reply frame that matched our request
static void
s_reply_take (agctl_reply_t *reply, int rc, const agp_envelope_t *env,
              int parts, zmq_msg_t *frame)
{
    const uint8_t *body = agp_msg_body (frame);
    size_t size = agp_msg_body_size (frame);
    if (rc == -2)
        s_reply_fail (reply, AG_BAD_VERSION, "server speaks another protocol"
                      " version");
    else
    if (rc != 0 || parts != 1 || !(env->command & AGP_REPLY))
        s_reply_fail (reply, AG_INTERNAL, "malformed reply from server");
    else
    if (env->word >= 200 && env->word <= 299) {
        reply->status = AG_OK;
        reply->value = ag_value_decode (body, size);
        if (!reply->value)
            s_reply_fail (reply, AG_INTERNAL, "server sent a result that is"
                          " not valid msgpack");
    }
    else {
        ag_value_t *text = ag_value_decode (body, size);
        char *reason = ag_obj_strdup (ag_value_object (text));
        ag_value_destroy (&text);
        reply->status = env->word;
        reply->reason = reason? reason: strdup (ag_status_str (env->word));
    }
}

//  ---------------------------------------------------------------------
//  Connection

agctl_wire_t *
agctl_wire_new (const char *endpoint, int timeout, char *reason, size_t size)
{
    if (!endpoint || !(strncmp (endpoint, "tcp://", 6) == 0
                    || strncmp (endpoint, "ipc://", 6) == 0)) {
        snprintf (reason, size, "endpoint '%s' is not tcp://host:port or"
                  " ipc://path", endpoint? endpoint: "");
        return NULL;
    }
    if (sodium_init () < 0) {
        snprintf (reason, size, "libsodium cannot initialise");
        return NULL;
    }
    agctl_wire_t *self = (agctl_wire_t *) calloc (1, sizeof *self);
    if (!self) {
        snprintf (reason, size, "out of memory");
        return NULL;
    }
    self->endpoint = strdup (endpoint);
    self->timeout = timeout < 10? 10: timeout;
    self->context = zmq_ctx_new ();
    self->socket = self->context? zmq_socket (self->context, ZMQ_DEALER)
                                : NULL;
    if (!self->endpoint || !self->socket) {
        snprintf (reason, size, "cannot create a ZeroMQ socket");
        agctl_wire_destroy (&self);
        return NULL;
    }
    //  A routing id of our own, as the protocol recommends: 'C' and 15
    //  random octets, like the library's
    uint8_t identity [16] = { 'C' };
    randombytes_buf (identity + 1, sizeof identity - 1);
    zmq_setsockopt (self->socket, ZMQ_ROUTING_ID, identity, sizeof identity);
    int zero = 0;
    zmq_setsockopt (self->socket, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_SNDTIMEO, &self->timeout,
                    sizeof self->timeout);
    if (zmq_connect (self->socket, endpoint)) {
        snprintf (reason, size, "cannot connect to %s: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        agctl_wire_destroy (&self);
        return NULL;
    }
    return self;
}

void
agctl_wire_destroy (agctl_wire_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agctl_wire_t *self = *self_p;
    *self_p = NULL;
    if (self->socket)
        zmq_close (self->socket);
    if (self->context)
        zmq_ctx_term (self->context);
    free (self->endpoint);
    free (self);
}

//  Send one frame: envelope and body. Returns 0, or -1 with errno.
static int
s_send (agctl_wire_t *self, uint8_t command, uint64_t corr, uint64_t agent,
        const void *body, size_t size)
{
    agp_envelope_t env = {
        .command = command, .word = 0, .corr = corr, .agent = agent
    };
    return agp_send (self->socket, NULL, &env, body, size, NULL, 0);
}

//  Send a request and wait for the reply with its correlation id,
//  pinging a silent server and giving up on it after the timeout
static void
s_request (agctl_wire_t *self, uint8_t command, uint64_t agent,
           const ag_value_t *body, agctl_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    uint64_t corr = ++self->next_corr;
    if (s_send (self, command, corr, agent, body? ag_value_data (body): NULL,
                body? ag_value_size (body): 0)) {
        int error = zmq_errno ();
        if (error == EAGAIN)
            s_reply_fail (reply, AG_UNREACHABLE, "cannot send to %s within"
                          " %d ms", self->endpoint, self->timeout);
        else
            s_reply_fail (reply, AG_UNREACHABLE, "cannot send to %s: %s",
                          self->endpoint, zmq_strerror (error));
        return;
    }
    int64_t timeout = (int64_t) self->timeout * 1000;
    int64_t interval = timeout / 4;
    int64_t quiet_from = ag_usecs ();
    int64_t ping_sent = 0;
    uint64_t ping_corr = 0;
    while (true) {
        int64_t now = ag_usecs ();
        if (now - quiet_from >= timeout) {
            s_reply_fail (reply, AG_UNREACHABLE, "no reply from %s for %d ms",
                          self->endpoint, self->timeout);
            return;
        }
        if (now - quiet_from >= interval
        &&  (!ping_corr || now - ping_sent >= interval)) {
            ping_corr = ++self->next_corr;
            ping_sent = now;
            s_send (self, AGP_PING, ping_corr, 0, NULL, 0);
        }
        int64_t next = MIN (quiet_from + timeout,
                            (ping_corr? ping_sent: quiet_from) + interval);
        zmq_pollitem_t item = { self->socket, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) ((next - now + 999) / 1000));
        if (rc == -1 && zmq_errno () != EINTR) {
            s_reply_fail (reply, AG_UNREACHABLE, "cannot read from %s: %s",
                          self->endpoint, zmq_strerror (zmq_errno ()));
            return;
        }
        if (rc <= 0)
            continue;
        //  Read every message waiting
        while (true) {
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            if (zmq_msg_recv (&frame, self->socket, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close (&frame);
                break;
            }
            //  A reply is one frame; count and drop any parts beyond it
            int parts = 1;
            bool more = zmq_msg_more (&frame);
            while (more) {
                zmq_msg_t extra;
                zmq_msg_init (&extra);
                if (zmq_msg_recv (&extra, self->socket, 0) == -1)
                    break;
                parts++;
                more = zmq_msg_more (&extra);
                zmq_msg_close (&extra);
            }
            quiet_from = ag_usecs ();
            agp_envelope_t env;
            int decoded = agp_envelope_decode (&env, zmq_msg_data (&frame),
                                               zmq_msg_size (&frame));
            if (decoded != -1 && env.corr == corr) {
                s_reply_take (reply, decoded, &env, parts, &frame);
                zmq_msg_close (&frame);
                return;
            }
            //  A ping's reply, or a reply to nothing we wait for
            if (env.corr && env.corr == ping_corr)
                ping_corr = 0;
            zmq_msg_close (&frame);
        }
    }
}

//  ---------------------------------------------------------------------
//  Requests

void
agctl_wire_create (agctl_wire_t *self, const char *class_name,
                   const ag_value_t *args, const char *name,
                   agctl_reply_t *reply)
{
    ag_value_t *body = ag_value_new ("{s:s, s:v, s:s}", "class", class_name,
                                     "args", args, "name", name);
    if (!body) {
        memset (reply, 0, sizeof *reply);
        s_reply_fail (reply, AG_INTERNAL, "out of memory");
        return;
    }
    s_request (self, AGP_CREATE, 0, body, reply);
    ag_value_destroy (&body);
}

void
agctl_wire_call (agctl_wire_t *self, uint64_t id, const char *method,
                 const ag_value_t *args, agctl_reply_t *reply)
{
    ag_value_t *body = ag_value_new ("[s, v]", method, args);
    if (!body) {
        memset (reply, 0, sizeof *reply);
        s_reply_fail (reply, AG_INTERNAL, "out of memory");
        return;
    }
    s_request (self, AGP_CALL, id, body, reply);
    ag_value_destroy (&body);
}

void
agctl_wire_getattr (agctl_wire_t *self, uint64_t id, const char *attr,
                    agctl_reply_t *reply)
{
    ag_value_t *body = ag_value_new ("s", attr);
    if (!body) {
        memset (reply, 0, sizeof *reply);
        s_reply_fail (reply, AG_INTERNAL, "out of memory");
        return;
    }
    s_request (self, AGP_GETATTR, id, body, reply);
    ag_value_destroy (&body);
}

void
agctl_wire_delete (agctl_wire_t *self, uint64_t id, agctl_reply_t *reply)
{
    s_request (self, AGP_DELETE, id, NULL, reply);
}
