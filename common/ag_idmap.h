/*  =========================================================================
    ag_idmap - a hash from 64-bit ids to pointers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#ifndef AG_IDMAP_H_INCLUDED
#define AG_IDMAP_H_INCLUDED

typedef struct _ag_idmap_t ag_idmap_t;

//  Create an empty map. NULL if out of memory.
ag_idmap_t *
    ag_idmap_new (void);

//  Destroy the map (not the items). Accepts NULL.
void
    ag_idmap_destroy (ag_idmap_t **self_p);

//  Insert or replace. Id 0 is reserved and refused. Returns 0 or -1.
int
    ag_idmap_insert (ag_idmap_t *self, uint64_t id, void *item);

//  Find an item; NULL if absent.
void *
    ag_idmap_lookup (ag_idmap_t *self, uint64_t id);

//  Remove and return an item; NULL if absent.
void *
    ag_idmap_delete (ag_idmap_t *self, uint64_t id);

//  Number of items.
size_t
    ag_idmap_size (ag_idmap_t *self);

//  A key for octets: 64-bit FNV-1a over data, from basis (AG_HASH_BASIS
//  to start afresh, or an earlier key to hash more octets into it).
//  Never 0, so it can be a key of the map.
#define AG_HASH_BASIS 0xcbf29ce484222325ULL
uint64_t
    ag_hash (const void *data, size_t size, uint64_t basis);

//  Iterate: start with *cursor = 0; returns the next item and its id, or
//  NULL at the end. The map must not change during the walk.
void *
    ag_idmap_next (ag_idmap_t *self, size_t *cursor, uint64_t *id);

#endif
