/*  =========================================================================
    ag_idmap - a hash from 64-bit ids to pointers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Open addressing with linear probing and backward-shift deletion. Ids
//  are mixed with a multiplicative hash so sequential ids (correlation
//  ids, agent ids) spread evenly. Used on the hot path of every request,
//  where zhashx's string keys would cost an allocation per lookup.
//  @end

#include "ag_common.h"

typedef struct {
    uint64_t id;                    //  0 = empty slot
    void *item;
} slot_t;

struct _ag_idmap_t {
    slot_t *slots;                  //  table, a power of two long
    size_t mask;                    //  slots - 1
    size_t size;                    //  items held
};

static size_t
s_hash (uint64_t id, size_t mask)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t) id & mask;
}

ag_idmap_t *
ag_idmap_new (void)
{
    ag_idmap_t *self = (ag_idmap_t *) calloc (1, sizeof (ag_idmap_t));
    if (!self)
        return NULL;
    self->slots = (slot_t *) calloc (16, sizeof (slot_t));
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->mask = 15;
    return self;
}

void
ag_idmap_destroy (ag_idmap_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->slots);
        free (*self_p);
        *self_p = NULL;
    }
}

static int
s_grow (ag_idmap_t *self)
{
    size_t old_count = self->mask + 1;
    size_t new_count = old_count * 2;
    slot_t *slots = (slot_t *) calloc (new_count, sizeof (slot_t));
    if (!slots)
        return -1;
    slot_t *old = self->slots;
    self->slots = slots;
    self->mask = new_count - 1;
    for (size_t i = 0; i < old_count; i++)
        if (old [i].id) {
            size_t index = s_hash (old [i].id, self->mask);
            while (slots [index].id)
                index = (index + 1) & self->mask;
            slots [index] = old [i];
        }
    free (old);
    return 0;
}

int
ag_idmap_insert (ag_idmap_t *self, uint64_t id, void *item)
{
    if (id == 0)
        return -1;
    //  Keep the load under 3/4
    if ((self->size + 1) * 4 > (self->mask + 1) * 3 && s_grow (self))
        return -1;
    size_t index = s_hash (id, self->mask);
    while (self->slots [index].id && self->slots [index].id != id)
        index = (index + 1) & self->mask;
    if (!self->slots [index].id)
        self->size++;
    self->slots [index].id = id;
    self->slots [index].item = item;
    return 0;
}

void *
ag_idmap_lookup (ag_idmap_t *self, uint64_t id)
{
    if (id == 0)
        return NULL;
    size_t index = s_hash (id, self->mask);
    while (self->slots [index].id) {
        if (self->slots [index].id == id)
            return self->slots [index].item;
        index = (index + 1) & self->mask;
    }
    return NULL;
}

void *
ag_idmap_delete (ag_idmap_t *self, uint64_t id)
{
    if (id == 0)
        return NULL;
    size_t index = s_hash (id, self->mask);
    while (self->slots [index].id && self->slots [index].id != id)
        index = (index + 1) & self->mask;
    if (!self->slots [index].id)
        return NULL;
    void *item = self->slots [index].item;
    //  Shift back later entries of the probe run so lookups still
    //  find them without tombstones
    size_t hole = index;
    size_t next = (hole + 1) & self->mask;
    while (self->slots [next].id) {
        size_t home = s_hash (self->slots [next].id, self->mask);
        //  Move next into the hole unless its home lies after the hole
        //  (cyclically) and at or before next
        bool stays = (hole <= next)? (home > hole && home <= next)
                                   : (home > hole || home <= next);
        if (!stays) {
            self->slots [hole] = self->slots [next];
            hole = next;
        }
        next = (next + 1) & self->mask;
    }
    self->slots [hole].id = 0;
    self->slots [hole].item = NULL;
    self->size--;
    return item;
}

size_t
ag_idmap_size (ag_idmap_t *self)
{
    return self->size;
}

uint64_t
ag_hash (const void *data, size_t size, uint64_t basis)
{
    uint64_t hash = basis;
    const uint8_t *p = (const uint8_t *) data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ p [i]) * 0x100000001b3ULL;
    return hash? hash: 1;
}

void *
ag_idmap_next (ag_idmap_t *self, size_t *cursor, uint64_t *id)
{
    while (*cursor <= self->mask) {
        slot_t *slot = &self->slots [(*cursor)++];
        if (slot->id) {
            if (id)
                *id = slot->id;
            return slot->item;
        }
    }
    return NULL;
}

void
ag_idmap_test (bool verbose)
{
    printf (" * ag_idmap: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    ag_idmap_t *map = ag_idmap_new ();
    assert (map);
    assert (ag_idmap_insert (map, 0, map) == -1);
    for (uint64_t id = 1; id <= 10000; id++)
        assert (ag_idmap_insert (map, id * 7919, (void *) (uintptr_t) id) == 0);
    assert (ag_idmap_size (map) == 10000);
    for (uint64_t id = 1; id <= 10000; id += 2)
        assert (ag_idmap_delete (map, id * 7919) == (void *) (uintptr_t) id);
    for (uint64_t id = 1; id <= 10000; id++) {
        void *item = ag_idmap_lookup (map, id * 7919);
        assert (item == ((id % 2)? NULL: (void *) (uintptr_t) id));
    }
    size_t cursor = 0, walked = 0;
    uint64_t id;
    while (ag_idmap_next (map, &cursor, &id))
        walked++;
    assert (walked == 5000);
    assert (ag_idmap_delete (map, 12345) == NULL);
    ag_idmap_destroy (&map);
    ag_idmap_destroy (&map);
    //  @end
    printf ("OK\n");
}
