/*  =========================================================================
    agd_store - results of calls, kept for FETCH

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A result is known by the routing id of the client that made the call
//  and the call's correlation id. It is noted as pending when the call
//  arrives, so a FETCH that comes first waits for it rather than failing;
//  once done it stays for the retention time. A FETCH may even come
//  before its CALL (from another server, on another connection): it
//  waits for the CALL too, up to AWAIT_US, then gets 410. Results expire
//  in the order they completed, so expiry is a walk from the head of one
//  list. The count is bounded too: past it, the oldest results go first.
//  A result that expired leaves a ghost (its key, no body) for a while,
//  so that a late FETCH, of a future passed on, say, is told at once
//  that the result is gone, rather than waiting for a CALL that came
//  long ago. An evicted result leaves none (see s_entry_new).
//  @end

#include "agd.h"

typedef struct _waiter_t waiter_t;
struct _waiter_t {
    waiter_t *next;
    zmq_msg_t routing;              //  fetcher's routing id
    uint64_t corr;                  //  fetch request's correlation id
};

typedef struct _entry_t entry_t;
struct _entry_t {
    uint64_t key;                   //  hash of owner and corr
    entry_t *chain;                 //  entries with the same key
    entry_t *prev, *next;           //  completion order (done entries)
    uint64_t corr;                  //  call's correlation id
    bool done;                      //  result is in
    size_t waiting;                 //  fetchers in waiters
    int status;                     //  reply status
    zmq_msg_t body;                 //  reply body
    int64_t expires;                //  ag_usecs () when it goes
    bool ghost;                     //  expired or evicted: key only
    bool awaited;                   //  fetched before its CALL came
    entry_t *next_awaited;          //  awaited list
    waiter_t *waiters;              //  fetchers waiting for it
    size_t owner_size;
    uint8_t owner [];               //  caller's routing id
};

#define SMALL_OWNER 32              //  owners this long use recycled entries
#define MAX_WAITERS 64              //  fetchers waiting on one result
#define AWAIT_US    2000000         //  a FETCH waits this long for its CALL

struct _agd_store_t {
    ag_idmap_t *index;              //  key -> first entry of its chain
    entry_t *spare;                 //  recycled small entries
    size_t spare_count;
    entry_t *oldest, *newest;       //  done entries, completion order
    entry_t *ghost_oldest, *ghost_newest;   //  ghosts, in burial order
    entry_t *awaited;               //  fetched, CALL not seen, newest first
    size_t size;                    //  entries held, ghosts aside
    size_t ghosts;                  //  ghosts held (at most max)
    int64_t retention;              //  usecs a done result lives
    size_t max;                     //  entries at most
};

static uint64_t
s_key (const void *owner, size_t size, uint64_t corr)
{
    //  The owner hashed, folded with the correlation id; 0 is reserved by
    //  the index
    uint64_t hash = ag_hash (owner, size, AG_HASH_BASIS ^ corr)
                  ^ corr * 0x9e3779b97f4a7c15ULL;
    return hash? hash: 1;
}

static entry_t *
s_find (agd_store_t *self, const void *owner, size_t size, uint64_t corr,
        uint64_t key)
{
    entry_t *entry = (entry_t *) ag_idmap_lookup (self->index, key);
    while (entry && !(entry->corr == corr && entry->owner_size == size
                   && memcmp (entry->owner, owner, size) == 0))
        entry = entry->chain;
    return entry;
}

//  Unlink a done entry (or a ghost) from its list
static void
s_unlink_done (agd_store_t *self, entry_t *entry)
{
    entry_t **oldest = entry->ghost? &self->ghost_oldest: &self->oldest;
    entry_t **newest = entry->ghost? &self->ghost_newest: &self->newest;
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        *oldest = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        *newest = entry->prev;
    entry->prev = entry->next = NULL;
}

static void
s_unlink_awaited (agd_store_t *self, entry_t *entry)
{
    entry_t **link = &self->awaited;
    while (*link && *link != entry)
        link = &(*link)->next_awaited;
    if (*link)
        *link = entry->next_awaited;
    entry->next_awaited = NULL;
    entry->awaited = false;
}

static void
s_remove (agd_store_t *self, entry_t *entry)
{
    if (entry->awaited)
        s_unlink_awaited (self, entry);
    entry_t *first = (entry_t *) ag_idmap_lookup (self->index, entry->key);
    if (first == entry) {
        if (entry->chain)
            ag_idmap_insert (self->index, entry->key, entry->chain);
        else
            ag_idmap_delete (self->index, entry->key);
    }
    else {
        while (first->chain != entry)
            first = first->chain;
        first->chain = entry->chain;
    }
    if (entry->done)
        s_unlink_done (self, entry);
    while (entry->waiters) {
        waiter_t *waiter = entry->waiters;
        entry->waiters = waiter->next;
        zmq_msg_close (&waiter->routing);
        free (waiter);
    }
    zmq_msg_close (&entry->body);
    if (entry->ghost)
        self->ghosts--;
    else
        self->size--;
    if (entry->owner_size <= SMALL_OWNER && self->spare_count < 1024) {
        entry->next = self->spare;
        self->spare = entry;
        self->spare_count++;
    }
    else
        free (entry);
}

//  How long a ghost stays: the retention time, and at least a minute
static int64_t
s_ghost_us (agd_store_t *self)
{
    return MAX (self->retention, 60000000);
}

//  A done result expired: keep its key, free its body
static void
s_bury (agd_store_t *self, entry_t *entry, int64_t now)
{
    s_unlink_done (self, entry);
    zmq_msg_close (&entry->body);
    zmq_msg_init (&entry->body);
    entry->ghost = true;
    entry->expires = now + s_ghost_us (self);
    self->size--;
    self->ghosts++;
    entry->prev = self->ghost_newest;
    if (self->ghost_newest)
        self->ghost_newest->next = entry;
    else
        self->ghost_oldest = entry;
    self->ghost_newest = entry;
    while (self->ghosts > self->max)
        s_remove (self, self->ghost_oldest);
}

agd_store_t *
agd_store_new (int retention_ms, size_t max)
{
    agd_store_t *self = (agd_store_t *) zmalloc (sizeof (agd_store_t));
    self->index = ag_idmap_new ();
    self->retention = (int64_t) retention_ms * 1000;
    self->max = max;
    return self;
}

void
agd_store_destroy (agd_store_t **self_p)
{
    if (self_p && *self_p) {
        agd_store_t *self = *self_p;
        size_t cursor = 0;
        entry_t *entry;
        //  Collect chains first: removing while walking would move slots
        zlist_t *all = zlist_new ();
        while ((entry = (entry_t *) ag_idmap_next (self->index, &cursor, NULL)))
            for (; entry; entry = entry->chain)
                zlist_append (all, entry);
        while ((entry = (entry_t *) zlist_pop (all)))
            s_remove (self, entry);
        zlist_destroy (&all);
        while (self->spare) {
            entry = self->spare;
            self->spare = entry->next;
            free (entry);
        }
        ag_idmap_destroy (&self->index);
        free (self);
        *self_p = NULL;
    }
}

//  A new pending entry; NULL if there is no room
static entry_t *
s_entry_new (agd_store_t *self, const void *owner, size_t owner_size,
             uint64_t corr, uint64_t key)
{
    //  Make room by dropping the oldest finished results. No ghosts: at
    //  the rates that fill the store, twice the entries cost more than
    //  a late FETCH's wait
    while (self->size >= self->max && self->oldest)
        s_remove (self, self->oldest);
    if (self->size >= self->max)
        return NULL;
    entry_t *entry;
    if (owner_size <= SMALL_OWNER && self->spare) {
        entry = self->spare;
        self->spare = entry->next;
        self->spare_count--;
        memset (entry, 0, sizeof (entry_t));
    }
    else {
        entry = (entry_t *) calloc (1, sizeof (entry_t)
                                    + MAX (owner_size, SMALL_OWNER));
        if (!entry)
            return NULL;
    }
    entry->key = key;
    entry->corr = corr;
    entry->owner_size = owner_size;
    memcpy (entry->owner, owner, owner_size);
    zmq_msg_init (&entry->body);
    entry->chain = (entry_t *) ag_idmap_lookup (self->index, key);
    if (ag_idmap_insert (self->index, key, entry)) {
        zmq_msg_close (&entry->body);
        free (entry);
        return NULL;
    }
    self->size++;
    return entry;
}

int
agd_store_expect (agd_store_t *self, const void *owner, size_t owner_size,
                  uint64_t corr)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *old = s_find (self, owner, owner_size, corr, key);
    if (old && old->awaited) {
        s_unlink_awaited (self, old);   //  fetched first: the CALL is here
        return 0;
    }
    if (old && !old->done)
        return 0;                   //  id reused while pending: first wins
    if (old)
        s_remove (self, old);       //  reused after completion: replaced
    return s_entry_new (self, owner, owner_size, corr, key)? 0: -1;
}

void
agd_store_complete (agd_store_t *self, const void *owner, size_t owner_size,
                    uint64_t corr, int status, zmq_msg_t *body,
                    int64_t now, agd_store_deliver_fn *deliver, void *arg)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    if (!entry || entry->done)
        return;                     //  evicted while it ran
    entry->done = true;
    entry->status = status;
    zmq_msg_copy (&entry->body, body);
    entry->expires = now + self->retention;
    entry->prev = self->newest;
    if (self->newest)
        self->newest->next = entry;
    else
        self->oldest = entry;
    self->newest = entry;
    while (entry->waiters) {
        waiter_t *waiter = entry->waiters;
        entry->waiters = waiter->next;
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &entry->body);
        deliver (arg, &waiter->routing, waiter->corr, status, &copy);
        zmq_msg_close (&copy);
        zmq_msg_close (&waiter->routing);
        free (waiter);
    }
}

int
agd_store_fetch (agd_store_t *self, const void *owner, size_t owner_size,
                 uint64_t corr, zmq_msg_t *routing, uint64_t fetch_corr,
                 int *status, zmq_msg_t *body)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    if (!entry) {
        //  Perhaps its CALL has not come yet: wait for it, a while
        entry = s_entry_new (self, owner, owner_size, corr, key);
        if (!entry)
            return AG_BUSY;
        entry->awaited = true;
        entry->expires = ag_usecs () + AWAIT_US;
        entry->next_awaited = self->awaited;
        self->awaited = entry;
    }
    if (entry->done && !entry->ghost && entry->expires <= ag_usecs ())
        s_bury (self, entry, ag_usecs ());  //  expired, not swept yet
    if (entry->ghost)
        return AG_GONE;
    if (entry->done) {
        *status = entry->status;
        zmq_msg_copy (body, &entry->body);
        return AG_OK;
    }
    if (entry->waiting >= MAX_WAITERS)
        return AG_BUSY;             //  a bound on what fetchers can make us hold
    waiter_t *waiter = (waiter_t *) calloc (1, sizeof (waiter_t));
    if (!waiter)
        return AG_BUSY;
    entry->waiting++;
    zmq_msg_init (&waiter->routing);
    zmq_msg_copy (&waiter->routing, routing);
    waiter->corr = fetch_corr;
    waiter->next = entry->waiters;
    entry->waiters = waiter;
    return AG_PENDING;
}

int
agd_store_expire (agd_store_t *self, int64_t now,
                  agd_store_deliver_fn *deliver, void *arg)
{
    while (self->oldest && self->oldest->expires <= now)
        s_bury (self, self->oldest, now);
    while (self->ghost_oldest && self->ghost_oldest->expires <= now)
        s_remove (self, self->ghost_oldest);
    //  Fetches whose CALL never came: 410, with a reason
    entry_t **link = &self->awaited;
    while (*link) {
        entry_t *entry = *link;
        if (entry->expires > now) {
            link = &entry->next_awaited;
            continue;
        }
        char reason [128];
        int len = snprintf (reason, sizeof reason, "no result of call %"
                            PRIu64 " here: never made or not kept, or"
                            " dropped to keep at most %zu", entry->corr,
                            self->max);
        len = MIN (MAX (len, 0), (int) sizeof reason - 1);
        uint8_t text [134];
        text [0] = 0xd9;            //  str 8
        text [1] = (uint8_t) len;
        memcpy (text + 2, reason, (size_t) len);
        static const agp_envelope_t blank;
        zmq_msg_t body;
        agp_msg_init (&body, &blank, text, (size_t) len + 2);
        while (entry->waiters) {
            waiter_t *waiter = entry->waiters;
            entry->waiters = waiter->next;
            zmq_msg_t copy;
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, &body);
            deliver (arg, &waiter->routing, waiter->corr, AG_GONE, &copy);
            zmq_msg_close (&copy);
            zmq_msg_close (&waiter->routing);
            free (waiter);
        }
        zmq_msg_close (&body);
        *link = entry->next_awaited;
        entry->awaited = false;
        s_remove (self, entry);
    }
    int64_t next = self->oldest? self->oldest->expires: 0;
    if (self->ghost_oldest
    &&  (!next || self->ghost_oldest->expires < next))
        next = self->ghost_oldest->expires;
    if (!next)
        return -1;
    return (int) ((next - now + 999) / 1000);
}

size_t
agd_store_size (agd_store_t *self)
{
    return self->size;
}

//  ---------------------------------------------------------------------
//  Selftest

static int s_delivered;
static int s_gone;

static void
s_deliver (void *arg, zmq_msg_t *routing, uint64_t corr, int status,
           zmq_msg_t *body)
{
    if (corr == 77) {
        assert (status == AG_GONE);
        assert (zmq_msg_size (body) > AGP_ENVELOPE_SIZE);
        s_gone++;
        return;
    }
    assert (corr == 99 || corr == 100);
    assert (status == AG_OK);
    assert (zmq_msg_size (body) == 3);
    s_delivered++;
}

void
agd_store_test (bool verbose)
{
    printf (" * agd_store: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    agd_store_t *store = agd_store_new (60000, 3);
    zmq_msg_t routing, body, copy;
    zmq_msg_init_size (&routing, 2);
    zmq_msg_init_size (&body, 3);
    memcpy (zmq_msg_data (&body), "\xa2hi", 3);
    zmq_msg_init (&copy);
    int status;

    //  A fetch before its call waits for the call, then its result
    assert (agd_store_fetch (store, "A1", 2, 1, &routing, 99, &status, &copy)
            == AG_PENDING);
    assert (agd_store_expect (store, "A1", 2, 1) == 0);
    //  A fetch before completion waits, and is answered at completion
    assert (agd_store_fetch (store, "A1", 2, 1, &routing, 99, &status, &copy)
            == AG_PENDING);
    agd_store_complete (store, "A1", 2, 1, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    assert (s_delivered == 2);
    assert (agd_store_fetch (store, "A1", 2, 1, &routing, 98, &status, &copy)
            == AG_OK);
    assert (status == AG_OK && zmq_msg_size (&copy) == 3);
    //  The bound evicts the oldest finished result
    assert (agd_store_expect (store, "A1", 2, 2) == 0);
    assert (agd_store_expect (store, "A1", 2, 3) == 0);
    assert (agd_store_size (store) == 3);
    assert (agd_store_expect (store, "A1", 2, 4) == 0);
    assert (agd_store_size (store) == 3);
    //  All pending and full: refused, and so is a fetch that would wait
    //  for a call
    assert (agd_store_expect (store, "A1", 2, 5) == -1);
    assert (agd_store_fetch (store, "B1", 2, 1, &routing, 98, &status, &copy)
            == AG_BUSY);
    //  Fetchers of one pending result are bounded
    int answers [3] = { 0 };
    for (int i = 0; i < 70; i++) {
        int found = agd_store_fetch (store, "A1", 2, 4, &routing, 100,
                                     &status, &copy);
        answers [found == AG_PENDING? 0: found == AG_BUSY? 1: 2]++;
    }
    assert (answers [0] == 64 && answers [1] == 6 && answers [2] == 0);
    //  Expiry: done results after the retention time, leaving ghosts
    //  for a while; fetches whose call never came, after their wait,
    //  answered 410
    agd_store_complete (store, "A1", 2, 2, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    assert (agd_store_expire (store, ag_usecs (), s_deliver, NULL) > 0);
    size_t held = agd_store_size (store);
    int64_t later = ag_usecs () + 61000000;
    assert (agd_store_expire (store, later, s_deliver, NULL) > 0);
    assert (agd_store_size (store) == held - 1);
    assert (agd_store_fetch (store, "A1", 2, 2, &routing, 77, &status, &copy)
            == AG_GONE);
    assert (agd_store_expire (store, later + 121000000, s_deliver,
                              NULL) == -1);
    //  Its ghost gone too, a fetch waits for a call again
    assert (agd_store_fetch (store, "A1", 2, 2, &routing, 77, &status, &copy)
            == AG_PENDING);
    s_gone = 0;
    agd_store_expire (store, later + 240000000, s_deliver, NULL);
    assert (s_gone == 1);
    zmq_msg_close (&copy);
    zmq_msg_close (&body);
    zmq_msg_close (&routing);
    agd_store_destroy (&store);
    agd_store_destroy (&store);
    //  @end
    printf ("OK\n");
}
