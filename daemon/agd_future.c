/*  =========================================================================
    agd_future - futures given as arguments: found, then put in place

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A client may pass the future of an async call, on any server, as an
//  argument: on the wire it is a msgpack ext (AGP_EXT_FUTURE) naming the
//  server that holds the result and its key there. A worker that decodes
//  a request whose arguments hold such references finds all of them and
//  checks each, before any is fetched: a malformed one, or more than
//  AGD_MAX_REFS, fails the call at once. The call then goes back to the
//  broker, which resolves the references (agd_refs) without holding a
//  worker: from its own store for results on this server, else from the
//  server that holds them. When every value is in, a worker decodes the
//  call again and puts each value in place of its reference before the
//  method runs. The values go from server to server, never through the
//  caller.
//  @end

#include "agd.h"

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

//  Count the references, each checked; -1 with a reason on the first
//  that is malformed, or past the limit. Depth-first, in order: the same
//  order agd_future_replace walks.
static int
s_collect (const msgpack_object *o, msgpack_zone *zone, agd_refs_t *refs,
           uint32_t *count, const char **reason)
{
    if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == AGP_EXT_FUTURE) {
        if (*count == AGD_MAX_REFS) {
            *reason = "more than 64 futures in one request's arguments";
            return -1;
        }
        agp_ref_t ref;
        if (agp_ref_decode (&ref, o, zone, reason))
            return -1;
        if (ref.endpoint.len < 7
        ||  (memcmp (ref.endpoint.ptr, "tcp://", 6) != 0
          && memcmp (ref.endpoint.ptr, "ipc://", 6) != 0)) {
            *reason = "a future reference's endpoint must be tcp://host:port"
                      " or ipc://path";
            return -1;
        }
        if (refs) {
            agd_ref_t *slot = &refs->refs [*count];
            memcpy (slot->endpoint, ref.endpoint.ptr, ref.endpoint.len);
            slot->endpoint [ref.endpoint.len] = 0;
            memcpy (slot->owner, ref.owner.ptr, ref.owner.len);
            slot->owner_size = ref.owner.len;
            slot->corr = ref.corr;
            zmq_msg_init (&slot->value);
        }
        (*count)++;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_collect (&o->via.array.ptr [i], zone, refs, count, reason))
                return -1;
    }
    else
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (s_collect (&o->via.map.ptr [i].key, zone, refs, count, reason)
            ||  s_collect (&o->via.map.ptr [i].val, zone, refs, count,
                           reason))
                return -1;
    }
    return 0;
}

int
agd_future_find (const msgpack_object *args, msgpack_zone *zone,
                 agd_refs_t **refs_p, char *reason, size_t size)
{
    *refs_p = NULL;
    if (!args || !s_has_ref (args))
        return 0;
    //  Every reference checked before any is fetched: once to count,
    //  once to copy
    uint32_t count = 0;
    const char *why;
    if (s_collect (args, zone, NULL, &count, &why)) {
        snprintf (reason, size, "%s", why);
        return -1;
    }
    agd_refs_t *refs = (agd_refs_t *) calloc (1, sizeof (agd_refs_t)
                                              + count * sizeof (agd_ref_t));
    if (!refs) {
        snprintf (reason, size, "out of memory for %u futures", count);
        return -1;
    }
    refs->count = 0;
    s_collect (args, zone, refs, &refs->count, &why);
    *refs_p = refs;
    return 0;
}

void
agd_future_free (agd_refs_t **refs_p)
{
    agd_refs_t *refs = *refs_p;
    if (!refs)
        return;
    for (uint32_t i = 0; i < refs->count; i++)
        zmq_msg_close (&refs->refs [i].value);
    free (refs);
    *refs_p = NULL;
}

typedef struct {
    agd_refs_t *refs;
    uint32_t next;                  //  the next reference met
    msgpack_zone *zone;
    char *reason;
    size_t size;
} replacer_t;

//  Copy in to out, each reference replaced with its value; what holds
//  none is shared, not copied
static int
s_copy (replacer_t *self, const msgpack_object *in, msgpack_object *out)
{
    if (!s_has_ref (in)) {
        *out = *in;
        return 0;
    }
    if (in->type == MSGPACK_OBJECT_EXT) {
        agd_ref_t *ref = &self->refs->refs [self->next++];
        const char *why;
        if (ag_msgpack_unpack (agp_msg_body (&ref->value),
                               agp_msg_body_size (&ref->value), self->zone,
                               out, &why)) {
            snprintf (self->reason, self->size, "argument future %u (call %"
                      PRIu64 " at %s): its value is not valid msgpack: %s",
                      self->next, ref->corr, ref->endpoint, why);
            return -1;
        }
        return 0;
    }
    *out = *in;
    if (in->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t size = in->via.array.size;
        out->via.array.ptr = (msgpack_object *) msgpack_zone_malloc (
            self->zone, sizeof (msgpack_object) * size);
        if (!out->via.array.ptr) {
            snprintf (self->reason, self->size, "out of memory");
            return -1;
        }
        for (uint32_t i = 0; i < size; i++)
            if (s_copy (self, &in->via.array.ptr [i],
                        &out->via.array.ptr [i]))
                return -1;
    }
    else {
        uint32_t size = in->via.map.size;
        out->via.map.ptr = (msgpack_object_kv *) msgpack_zone_malloc (
            self->zone, sizeof (msgpack_object_kv) * size);
        if (!out->via.map.ptr) {
            snprintf (self->reason, self->size, "out of memory");
            return -1;
        }
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
agd_future_replace (const msgpack_object *in, agd_refs_t *refs,
                    msgpack_zone *zone, msgpack_object *out, char *reason,
                    size_t size)
{
    replacer_t self = { refs, 0, zone, reason, size };
    if (s_copy (&self, in, out))
        return -1;
    if (self.next != refs->count) {
        snprintf (reason, size, "the arguments hold %u futures, not the %u"
                  " resolved", self.next, refs->count);
        return -1;
    }
    return 0;
}
