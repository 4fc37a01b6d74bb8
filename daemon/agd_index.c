/*  =========================================================================
    agd_index - agents in the order of their ids, for paged listing

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  LIST answers in pages: the agents after a given id, in ascending
//  order. The agent table is a hash, whose order means nothing, so the
//  listed agents are also kept here, sorted: a short array of chunks,
//  each a sorted run of up to CHUNK ids. Finding where a page starts is
//  two binary searches, a page costs what it holds, and inserting or
//  removing one agent moves at most a chunk's entries (and, when a
//  chunk fills or empties, the chunk pointers). Ids mostly come in
//  rising order, so the common insert is an append to the last chunk.
//  @end

#include "agd.h"

#define CHUNK           128         //  ids per chunk at most

typedef struct {
    size_t count;
    uint64_t ids [CHUNK];
    void *items [CHUNK];
} chunk_t;

struct _agd_index_t {
    chunk_t **chunks;               //  in id order
    size_t count;                   //  chunks in use
    size_t alloc;                   //  chunk pointers allocated
    size_t size;                    //  ids held
};

agd_index_t *
agd_index_new (void)
{
    return (agd_index_t *) zmalloc (sizeof (agd_index_t));
}

void
agd_index_destroy (agd_index_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_index_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free (self->chunks [i]);
    free (self->chunks);
    free (self);
    *self_p = NULL;
}

//  The chunk id belongs in: the last whose first id is not above it
static size_t
s_chunk_of (agd_index_t *self, uint64_t id)
{
    size_t low = 0, high = self->count;
    while (high - low > 1) {
        size_t mid = (low + high) / 2;
        if (self->chunks [mid]->ids [0] <= id)
            low = mid;
        else
            high = mid;
    }
    return low;
}

//  The first position in chunk whose id is not below id
static size_t
s_position (chunk_t *chunk, uint64_t id)
{
    size_t low = 0, high = chunk->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (chunk->ids [mid] < id)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

static int
s_add_chunk (agd_index_t *self, size_t at)
{
    if (self->count == self->alloc) {
        size_t alloc = self->alloc? self->alloc * 2: 16;
        chunk_t **chunks = (chunk_t **) realloc (self->chunks,
                                                 alloc * sizeof (chunk_t *));
        if (!chunks)
            return -1;
        self->chunks = chunks;
        self->alloc = alloc;
    }
    chunk_t *chunk = (chunk_t *) malloc (sizeof (chunk_t));
    if (!chunk)
        return -1;
    chunk->count = 0;
    memmove (self->chunks + at + 1, self->chunks + at,
             (self->count - at) * sizeof (chunk_t *));
    self->chunks [at] = chunk;
    self->count++;
    return 0;
}

int
agd_index_insert (agd_index_t *self, uint64_t id, void *item)
{
    if (self->count == 0 && s_add_chunk (self, 0))
        return -1;
    size_t at = s_chunk_of (self, id);
    chunk_t *chunk = self->chunks [at];
    size_t position = s_position (chunk, id);
    if (position < chunk->count && chunk->ids [position] == id) {
        chunk->items [position] = item;
        return 0;
    }
    if (chunk->count == CHUNK) {
        //  Full: an id past its end starts the next chunk; else the
        //  chunk splits in two
        if (position == CHUNK) {
            if (s_add_chunk (self, at + 1))
                return -1;
            chunk = self->chunks [at + 1];
            position = 0;
        }
        else {
            if (s_add_chunk (self, at + 1))
                return -1;
            chunk_t *next = self->chunks [at + 1];
            size_t half = CHUNK / 2;
            memcpy (next->ids, chunk->ids + half,
                    (CHUNK - half) * sizeof (uint64_t));
            memcpy (next->items, chunk->items + half,
                    (CHUNK - half) * sizeof (void *));
            next->count = CHUNK - half;
            chunk->count = half;
            if (position > half) {
                chunk = next;
                position -= half;
            }
        }
    }
    memmove (chunk->ids + position + 1, chunk->ids + position,
             (chunk->count - position) * sizeof (uint64_t));
    memmove (chunk->items + position + 1, chunk->items + position,
             (chunk->count - position) * sizeof (void *));
    chunk->ids [position] = id;
    chunk->items [position] = item;
    chunk->count++;
    self->size++;
    return 0;
}

void
agd_index_remove (agd_index_t *self, uint64_t id)
{
    if (self->count == 0)
        return;
    size_t at = s_chunk_of (self, id);
    chunk_t *chunk = self->chunks [at];
    size_t position = s_position (chunk, id);
    if (position == chunk->count || chunk->ids [position] != id)
        return;
    memmove (chunk->ids + position, chunk->ids + position + 1,
             (chunk->count - position - 1) * sizeof (uint64_t));
    memmove (chunk->items + position, chunk->items + position + 1,
             (chunk->count - position - 1) * sizeof (void *));
    chunk->count--;
    self->size--;
    if (chunk->count == 0) {
        free (chunk);
        memmove (self->chunks + at, self->chunks + at + 1,
                 (self->count - at - 1) * sizeof (chunk_t *));
        self->count--;
    }
}

size_t
agd_index_after (agd_index_t *self, uint64_t after, void **items,
                 size_t max)
{
    if (self->count == 0 || max == 0)
        return 0;
    size_t at = after == UINT64_MAX? self->count: s_chunk_of (self, after);
    size_t position = at < self->count
                    ? s_position (self->chunks [at], after): 0;
    if (at < self->count && position < self->chunks [at]->count
    &&  self->chunks [at]->ids [position] == after)
        position++;
    size_t taken = 0;
    while (at < self->count && taken < max) {
        chunk_t *chunk = self->chunks [at];
        while (position < chunk->count && taken < max)
            items [taken++] = chunk->items [position++];
        at++;
        position = 0;
    }
    return taken;
}

size_t
agd_index_size (agd_index_t *self)
{
    return self->size;
}

//  ---------------------------------------------------------------------
//  Selftest

void
agd_index_test (bool verbose)
{
    printf (" * agd_index: ");
    //  @selftest
    agd_index_t *index = agd_index_new ();
    void *page [1000];
    assert (agd_index_after (index, 0, page, 10) == 0);
    //  Ids in rising order, and some out of it, and some removed
    for (uintptr_t id = 1; id <= 10000; id++)
        assert (agd_index_insert (index, id * 10, (void *) id) == 0);
    for (uintptr_t id = 1; id <= 10000; id += 7)
        assert (agd_index_insert (index, id * 10 + 5, (void *) (id + 100000))
                == 0);
    for (uintptr_t id = 2; id <= 10000; id += 3)
        agd_index_remove (index, id * 10);
    agd_index_remove (index, 12345678);
    size_t expected = 10000 - (10000 - 2) / 3 - 1 + (10000 - 1) / 7 + 1;
    assert (agd_index_size (index) == expected);
    //  Paged, every id once, in order
    uint64_t after = 0, last = 0;
    size_t seen = 0;
    while (true) {
        size_t count = agd_index_after (index, after, page, 1000);
        if (count == 0)
            break;
        for (size_t i = 0; i < count; i++) {
            uintptr_t item = (uintptr_t) page [i];
            uint64_t id = item > 100000? (item - 100000) * 10 + 5
                                       : item * 10;
            assert (id > last);
            last = id;
        }
        seen += count;
        after = last;
    }
    assert (seen == expected);
    //  A page may start after an id no longer there
    assert (agd_index_after (index, 20, page, 1) == 1
         && (uintptr_t) page [0] == 3);
    //  Emptied, it holds nothing
    for (uintptr_t id = 1; id <= 10000; id++) {
        agd_index_remove (index, id * 10);
        agd_index_remove (index, id * 10 + 5);
    }
    assert (agd_index_size (index) == 0);
    assert (agd_index_after (index, 0, page, 10) == 0);
    agd_index_destroy (&index);
    agd_index_destroy (&index);
    //  @end
    printf ("OK\n");
}
