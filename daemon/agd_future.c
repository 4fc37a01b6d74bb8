/*  =========================================================================
    agd_future - futures given as arguments, resolved server to server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A client may pass the future of an async call, on any server, as an
//  argument: on the wire it is a msgpack ext (AGP_EXT_FUTURE) naming the
//  server that holds the result and its key there. Before the method
//  runs, the worker replaces each such reference with the result, which
//  it FETCHes from that server itself, waiting for it if the call has not
//  finished (or even arrived) there yet. The value so goes from server to
//  server, never through the caller. A failed future fails the call with
//  AG_DEP_FAILED, naming the original failure.
//
//  Each worker thread keeps its own connections to the servers it has
//  fetched from (a few, the oldest closed first), and the values it
//  fetched for the call it runs, until the call is done.
//  @end

#include "agd.h"
#include "../client/agc.h"

#define MAX_CONNS       16          //  servers a worker stays connected to
#define MAX_REFS        64          //  futures in one call's arguments

typedef struct {
    char *endpoint;
    agc_conn_t *conn;
} link_t;

typedef struct {
    link_t links [MAX_CONNS];
    size_t link_count;
    ag_value_t *held [MAX_REFS];    //  values fetched for this call
    size_t held_count;
    msgpack_zone *zone;             //  for the copied containers
    int status;                     //  of the first failure
    char *reason;
    size_t reason_size;
} fetcher_t;

static __thread fetcher_t s_fetcher;

//  True if the object holds a future reference anywhere
static bool
s_has_ref (const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_EXT)
        return o->via.ext.type == AGP_EXT_FUTURE;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_has_ref (&o->via.array.ptr [i]))
                return true;
    }
    else
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (s_has_ref (&o->via.map.ptr [i].key)
            ||  s_has_ref (&o->via.map.ptr [i].val))
                return true;
    }
    return false;
}

static int
s_fail (fetcher_t *self, int status, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, self->reason_size, format, args);
    va_end (args);
    self->status = status;
    return -1;
}

//  A connection to endpoint, kept for the next fetch; NULL on failure
static agc_conn_t *
s_link (fetcher_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->link_count; i++)
        if (streq (self->links [i].endpoint, endpoint))
            return self->links [i].conn;
    agc_conn_t *conn = agc_conn_new (endpoint);
    if (!conn)
        return NULL;
    if (self->link_count == MAX_CONNS) {
        //  Full: the oldest goes
        agc_conn_destroy (&self->links [0].conn);
        free (self->links [0].endpoint);
        memmove (self->links, self->links + 1,
                 sizeof (link_t) * (MAX_CONNS - 1));
        self->link_count--;
    }
    self->links [self->link_count].endpoint = strdup (endpoint);
    self->links [self->link_count].conn = conn;
    self->link_count++;
    return conn;
}

//  Fetch the value a reference stands for into *out
static int
s_fetch (fetcher_t *self, const msgpack_object *ext, msgpack_object *out)
{
    if (self->held_count == MAX_REFS)
        return s_fail (self, AG_BAD_REQUEST, "more than %d futures in one"
                       " call's arguments", MAX_REFS);
    agp_ref_t ref;
    const char *reason;
    if (agp_ref_decode (&ref, ext, self->zone, &reason))
        return s_fail (self, AG_BAD_REQUEST, "%s", reason);
    char endpoint [AGP_MAX_NAME + 1];
    memcpy (endpoint, ref.endpoint.ptr, ref.endpoint.len);
    endpoint [ref.endpoint.len] = 0;
    agc_conn_t *conn = s_link (self, endpoint);
    if (!conn)
        return s_fail (self, AG_DEP_FAILED, "argument future %" PRIu64
                       " from %s: %s", ref.corr, endpoint, agc_reason ());
    ag_value_t *body = ag_value_new ("[B, u]", ref.owner.ptr,
                                     ref.owner.len, ref.corr);
    agc_future_t *future = body?
        agc_conn_request (conn, AGP_FETCH, 0, 0, ag_value_data (body),
                          ag_value_size (body)): NULL;
    ag_value_destroy (&body);
    if (!future)
        return s_fail (self, AG_INTERNAL, "out of memory");
    //  However long it takes: a server that stops answering fails it
    //  within the connection's timeout
    agc_future_wait (future, AGC_FOREVER);
    int rc = 0;
    if (agc_future_status (future) == AG_OK) {
        ag_value_t *value = agc_future_result (future, 0);
        self->held [self->held_count++] = value;
        *out = *ag_value_object (value);
    }
    else
        rc = s_fail (self, AG_DEP_FAILED, "argument future %" PRIu64
                     " from %s failed: %s (%d)", ref.corr, endpoint,
                     agc_future_reason (future), agc_future_status (future));
    agc_future_destroy (&future);
    return rc;
}

//  Copy in to out, each reference replaced with its value; what holds
//  none is shared, not copied
static int
s_copy (fetcher_t *self, const msgpack_object *in, msgpack_object *out)
{
    if (!s_has_ref (in)) {
        *out = *in;
        return 0;
    }
    if (in->type == MSGPACK_OBJECT_EXT)
        return s_fetch (self, in, out);
    *out = *in;
    if (in->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t size = in->via.array.size;
        out->via.array.ptr = (msgpack_object *) msgpack_zone_malloc (
            self->zone, sizeof (msgpack_object) * size);
        if (!out->via.array.ptr)
            return s_fail (self, AG_INTERNAL, "out of memory");
        for (uint32_t i = 0; i < size; i++)
            if (s_copy (self, &in->via.array.ptr [i],
                        &out->via.array.ptr [i]))
                return -1;
    }
    else {
        uint32_t size = in->via.map.size;
        out->via.map.ptr = (msgpack_object_kv *) msgpack_zone_malloc (
            self->zone, sizeof (msgpack_object_kv) * size);
        if (!out->via.map.ptr)
            return s_fail (self, AG_INTERNAL, "out of memory");
        for (uint32_t i = 0; i < size; i++)
            if (s_copy (self, &in->via.map.ptr [i].key,
                        &out->via.map.ptr [i].key)
            ||  s_copy (self, &in->via.map.ptr [i].val,
                        &out->via.map.ptr [i].val))
                return -1;
    }
    return 0;
}

int
agd_future_resolve (const msgpack_object *in, msgpack_zone *zone,
                    msgpack_object *out, int *status, char *reason,
                    size_t size)
{
    fetcher_t *self = &s_fetcher;
    if (!s_has_ref (in)) {
        *out = *in;
        return 0;
    }
    self->zone = zone;
    self->reason = reason;
    self->reason_size = size;
    self->status = 0;
    if (s_copy (self, in, out)) {
        *status = self->status;
        agd_future_release ();
        return -1;
    }
    return 0;
}

void
agd_future_release (void)
{
    fetcher_t *self = &s_fetcher;
    while (self->held_count)
        ag_value_destroy (&self->held [--self->held_count]);
}

void
agd_future_thread_end (void)
{
    fetcher_t *self = &s_fetcher;
    agd_future_release ();
    while (self->link_count) {
        self->link_count--;
        agc_conn_destroy (&self->links [self->link_count].conn);
        free (self->links [self->link_count].endpoint);
    }
}
