/*  =========================================================================
    agc_future - what a request's future tells, and what can be done to it

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A future is filed under its correlation id on its connection until a
//  reply, a failure of the connection, its deadline or its cancel
//  resolves it (agc_conn.c); these are the calls on it from then, or
//  instead: reading its outcome, taking its value, the reference that
//  stands for its value, cancelling it and destroying it.
//  @end

#include "agc.h"

agc_future_t *
agc_future_resolved (int status, const char *reason, ag_value_t *value)
{
    agc_future_t *self = (agc_future_t *) calloc (1, sizeof (agc_future_t));
    if (!self) {
        ag_value_destroy (&value);
        return NULL;
    }
    self->status = status;
    self->reason = reason && *reason? strdup (reason): NULL;
    self->value = value;
    atomic_store (&self->done, true);
    return self;
}

bool
agc_future_ready (agc_future_t *self)
{
    return atomic_load (&self->done)
        || (self->deadline && agc_future_expire (self, ag_usecs ()));
}

int
agc_future_status (agc_future_t *self)
{
    return agc_future_ready (self)? self->status: AG_PENDING;
}

int
agc_future_cancel (agc_future_t *self)
{
    if (!self)
        return agc_set_error (AG_BAD_REQUEST, "no future to cancel");
    agc_conn_t *conn = self->conn;
    if (!conn || atomic_load (&self->done)
    ||  !agc_future_give_up (self, AG_CANCELLED, "was cancelled by its caller"))
        return agc_set_error (AG_GONE, "the future was resolved already");
    //  Tell the server, which answers the call (dropped: nobody waits
    //  for it now) and the CANCEL (dropped too)
    if (self->command == AGP_CALL || self->command == AGP_GETATTR) {
        uint8_t body [9];
        size_t size = 0;
        uint64_t corr = self->corr;
        body [size++] = 0xcf;       //  msgpack uint 64
        for (int shift = 56; shift >= 0; shift -= 8)
            body [size++] = (uint8_t) (corr >> shift);
        agc_conn_post (conn, AGP_CANCEL, self->agent, body, size);
    }
    return 0;
}

const char *
agc_future_reason (agc_future_t *self)
{
    if (!atomic_load (&self->done))
        return "result not ready";
    return self->reason? self->reason: "";
}

const ag_value_t *
agc_future_value (agc_future_t *self)
{
    return atomic_load (&self->done) && self->status == AG_OK? self->value: NULL;
}

ag_value_t *
agc_future_result (agc_future_t *self, int msecs)
{
    if (agc_future_wait (self, msecs))
        return NULL;
    if (self->status != AG_OK) {
        agc_set_error_from (self);
        return NULL;
    }
    ag_value_t *value = self->value;
    self->value = NULL;
    if (!value)
        agc_set_error (AG_GONE, "the value was already taken");
    return value;
}

uint64_t
agc_future_id (agc_future_t *self)
{
    return self->corr;
}

ag_value_t *
agc_future_ref (agc_future_t *self)
{
    if (!self || !self->kept || !self->conn) {
        agc_set_error (AG_BAD_REQUEST, "only the future of an async call"
                       " on a server can stand for its value");
        return NULL;
    }
    //  The reference: where the result is kept, and under which key
    const char *endpoint = self->conn->endpoint;
    agp_ref_t ref = {
        { endpoint, strlen (endpoint) },
        { (const char *) self->conn->identity, sizeof self->conn->identity },
        self->corr
    };
    msgpack_sbuffer outer;
    msgpack_sbuffer_init (&outer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &outer, msgpack_sbuffer_write);
    if (agp_ref_encode (&packer, &ref)) {
        msgpack_sbuffer_destroy (&outer);
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = ag_value_decode (outer.data, outer.size);
    msgpack_sbuffer_destroy (&outer);
    if (!value)
        agc_set_error (AG_INTERNAL, "out of memory");
    return value;
}

void
agc_future_destroy (agc_future_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agc_future_t *self = *self_p;
    *self_p = NULL;
    agc_conn_t *conn = self->conn;
    if (conn) {
        //  Still pending: forget it, so a late reply finds nothing. The
        //  future's reference keeps the connection alive until here.
        if (!atomic_load (&self->done)) {
            pthread_mutex_lock (&conn->lock);
            if (!atomic_load (&self->done))
                ag_idmap_delete (conn->pending, self->corr);
            pthread_mutex_unlock (&conn->lock);
        }
        agc_conn_destroy (&conn);
    }
    ag_value_destroy (&self->value);
    free (self->reason);
    free (self);
}

