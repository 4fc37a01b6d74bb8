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
//  list. A result that expired leaves a ghost (its key, no body) for a
//  while, so that a late FETCH, of a future passed on, say, is told at
//  once that the result is gone, rather than waiting for a CALL that came
//  long ago. An evicted result leaves none (see s_make_room).
//
//  The store is shared by every client, and no client may push another's
//  results out of it. Each result is charged to the account of the call
//  that made it, and the count and bytes the store holds are bounded.
//  When a new result needs room, an account holding its fair share or
//  more (the bound over the number of accounts holding results) makes
//  room by dropping its own oldest finished result; one under its share
//  takes the room from an account over it. A FETCH waiting for a call
//  not seen yet is charged to the fetcher, bounded per account, and
//  never pushes a result out.
//
//  Who waits for a result is a job: a FETCH, answered when the result
//  arrives, or a call whose arguments name the result (index tells
//  which of them), which the broker lets run once its arguments are in.
//  @end

#include "agd.h"

#define INLINE          128         //  results this small live in the entry

typedef struct _waiter_t waiter_t;
struct _waiter_t {
    waiter_t *next;
    agd_job_t *job;                 //  a FETCH, or a call's argument
    uint32_t index;                 //  which argument of that call
};

typedef struct _entry_t entry_t;
struct _entry_t {
    uint64_t key;                   //  hash of owner and corr
    entry_t *chain;                 //  entries with the same key
    entry_t *prev, *next;           //  completion order (done entries),
                                    //  burial order (ghosts), arrival
                                    //  order (awaited)
    entry_t *mine_prev, *mine_next; //  its account's done entries
    agd_account_t *account;         //  charged to (a user of it)
    agd_job_t *producer;            //  the call that completes it, if known
    uint64_t corr;                  //  call's correlation id
    bool done;                      //  result is in
    bool ghost;                     //  expired: key only
    bool awaited;                   //  fetched before its CALL came
    size_t waiting;                 //  waiters
    int status;                     //  reply status
    zmq_msg_t body;                 //  reply frame, unless held inline
    size_t bytes;                   //  what the body is charged
    uint16_t inline_size;           //  a small reply's frame: its size,
    uint8_t inline_frame [INLINE];  //  and its octets (0: in body)
    int64_t expires;                //  ag_usecs () when it goes
    waiter_t *waiters;              //  jobs waiting for it
    size_t owner_size;
    uint8_t owner [];               //  caller's routing id
};

#define SMALL_OWNER     32          //  owners this long use recycled entries
#define MAX_WAITERS     64          //  waiters on one result
#define AWAIT_US        2000000     //  a FETCH waits this long for its CALL
#define MAX_AWAITED     1024        //  such fetches per account
#define AWAITED_TOTAL   65536       //  ... for all accounts
#define VICTIM_WALK     64          //  entries looked at for a victim
#define SHARE_FROM      1024        //  results larger are shared, not copied

struct _agd_store_t {
    ag_idmap_t *index;              //  key -> first entry of its chain
    agd_accounts_t *accounts;       //  what entries are charged to
    entry_t *spare;                 //  recycled small entries
    size_t spare_count;
    entry_t *oldest, *newest;       //  done entries, completion order
    entry_t *ghost_oldest, *ghost_newest;   //  ghosts, burial order
    entry_t *awaited_oldest, *awaited_newest;
    size_t size;                    //  results held, pending and done
    size_t bytes;                   //  bytes of done results
    size_t ghosts;                  //  ghosts held (at most max)
    size_t awaited;                 //  fetches waiting for their CALL
    size_t holders;                 //  accounts holding results
    int64_t retention;              //  usecs a done result lives
    size_t max;                     //  results at most
    size_t max_bytes;               //  bytes of results at most
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

//  The list an entry is on, by its state
static void
s_lists (agd_store_t *self, entry_t *entry, entry_t ***oldest,
         entry_t ***newest)
{
    if (entry->ghost) {
        *oldest = &self->ghost_oldest;
        *newest = &self->ghost_newest;
    }
    else
    if (entry->awaited) {
        *oldest = &self->awaited_oldest;
        *newest = &self->awaited_newest;
    }
    else {
        *oldest = &self->oldest;
        *newest = &self->newest;
    }
}

static void
s_append (agd_store_t *self, entry_t *entry)
{
    entry_t **oldest, **newest;
    s_lists (self, entry, &oldest, &newest);
    entry->next = NULL;
    entry->prev = *newest;
    if (*newest)
        (*newest)->next = entry;
    else
        *oldest = entry;
    *newest = entry;
}

static void
s_unlink (agd_store_t *self, entry_t *entry)
{
    entry_t **oldest, **newest;
    s_lists (self, entry, &oldest, &newest);
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

//  An account's own done results, oldest first
static void
s_mine_append (entry_t *entry)
{
    agd_account_t *account = entry->account;
    entry->mine_next = NULL;
    entry->mine_prev = (entry_t *) account->kept_newest;
    if (entry->mine_prev)
        entry->mine_prev->mine_next = entry;
    else
        account->kept_oldest = entry;
    account->kept_newest = entry;
}

static void
s_mine_unlink (entry_t *entry)
{
    agd_account_t *account = entry->account;
    if (entry->mine_prev)
        entry->mine_prev->mine_next = entry->mine_next;
    else
        account->kept_oldest = entry->mine_next;
    if (entry->mine_next)
        entry->mine_next->mine_prev = entry->mine_prev;
    else
        account->kept_newest = entry->mine_prev;
    entry->mine_prev = entry->mine_next = NULL;
}

//  Charge a result to an account
static void
s_hold (agd_store_t *self, entry_t *entry, agd_account_t *account)
{
    entry->account = account;
    agd_accounts_use (self->accounts, account);
    if (account->kept++ == 0)
        self->holders++;
    self->size++;
}

//  Take a result's charges off its account, and a done one off the lists
static void
s_unhold (agd_store_t *self, entry_t *entry)
{
    agd_account_t *account = entry->account;
    if (entry->done) {
        s_unlink (self, entry);
        s_mine_unlink (entry);
        account->kept_bytes -= entry->bytes;
        self->bytes -= entry->bytes;
        entry->bytes = 0;
    }
    if (--account->kept == 0)
        self->holders--;
    self->size--;
    agd_accounts_release (self->accounts, account);
    entry->account = NULL;
}

static void
s_unindex (agd_store_t *self, entry_t *entry)
{
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
}

static void
s_remove (agd_store_t *self, entry_t *entry)
{
    s_unindex (self, entry);
    if (entry->ghost) {
        s_unlink (self, entry);
        self->ghosts--;
    }
    else
    if (entry->awaited) {
        s_unlink (self, entry);
        self->awaited--;
        entry->account->awaited--;
        agd_accounts_release (self->accounts, entry->account);
    }
    else
        s_unhold (self, entry);
    while (entry->waiters) {
        waiter_t *waiter = entry->waiters;
        entry->waiters = waiter->next;
        free (waiter);
    }
    zmq_msg_close (&entry->body);
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
    s_unhold (self, entry);
    zmq_msg_close (&entry->body);
    zmq_msg_init (&entry->body);
    entry->inline_size = 0;
    entry->ghost = true;
    entry->expires = now + s_ghost_us (self);
    self->ghosts++;
    s_append (self, entry);
    while (self->ghosts > self->max)
        s_remove (self, self->ghost_oldest);
}

//  The done result to drop so that account may hold one more (or
//  more bytes): its own oldest when it holds its fair share already,
//  else the oldest of an account over its share; NULL if there is none
static entry_t *
s_victim (agd_store_t *self, agd_account_t *account, bool by_bytes)
{
    size_t holders = self->holders + (account->kept == 0);
    size_t bound = by_bytes? self->max_bytes: self->max;
    size_t fair = bound / MAX (holders, 1);
    size_t mine = by_bytes? account->kept_bytes: account->kept;
    if (mine >= fair)
        return (entry_t *) account->kept_oldest;
    entry_t *entry = self->oldest;
    for (int i = 0; entry && i < VICTIM_WALK; i++, entry = entry->next) {
        size_t theirs = by_bytes? entry->account->kept_bytes
                                : entry->account->kept;
        if (entry->account != account && theirs > fair)
            return entry;
    }
    //  None in reach: the account's own, failing that the oldest of all
    return account->kept_oldest? (entry_t *) account->kept_oldest
                               : self->oldest;
}

//  Room for one more result of account. No ghost for what is evicted:
//  at the rates that fill the store, twice the entries cost more than a
//  late FETCH's wait. Returns false if there is none to be had.
static bool
s_make_room (agd_store_t *self, agd_account_t *account)
{
    while (self->size >= self->max) {
        entry_t *victim = s_victim (self, account, false);
        if (!victim)
            return false;
        s_remove (self, victim);
    }
    return true;
}

agd_store_t *
agd_store_new (agd_accounts_t *accounts, int retention_ms, size_t max,
               size_t max_bytes)
{
    agd_store_t *self = (agd_store_t *) zmalloc (sizeof (agd_store_t));
    self->index = ag_idmap_new ();
    self->accounts = accounts;
    self->retention = (int64_t) retention_ms * 1000;
    self->max = MAX (max, 1);
    self->max_bytes = max_bytes;
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

//  A new entry, in the index only; NULL out of memory
static entry_t *
s_entry_new (agd_store_t *self, const void *owner, size_t owner_size,
             uint64_t corr, uint64_t key)
{
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
    return entry;
}

int
agd_store_expect (agd_store_t *self, agd_account_t *account,
                  const void *owner, size_t owner_size, uint64_t corr,
                  agd_job_t *producer)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    if (entry && !entry->awaited && !entry->done && !entry->ghost)
        return 0;                   //  id reused while pending: first wins
    if (entry && !entry->awaited)
        s_remove (self, entry);     //  reused after completion: replaced
    else
    if (entry) {
        //  Fetched first: the CALL is here, and the result is the
        //  caller's from now on
        s_unlink (self, entry);
        entry->awaited = false;
        self->awaited--;
        entry->account->awaited--;
        agd_accounts_release (self->accounts, entry->account);
        entry->account = NULL;
        if (!s_make_room (self, account)) {
            //  Its fetchers hear 410 when their wait ends
            entry->awaited = true;
            entry->account = account;
            agd_accounts_use (self->accounts, account);
            account->awaited++;
            self->awaited++;
            s_append (self, entry);
            return -1;
        }
        s_hold (self, entry, account);
        entry->producer = producer;
        return 0;
    }
    if (!s_make_room (self, account))
        return -1;
    entry = s_entry_new (self, owner, owner_size, corr, key);
    if (!entry)
        return -1;
    s_hold (self, entry, account);
    entry->producer = producer;
    return 0;
}

bool
agd_store_complete (agd_store_t *self, const void *owner, size_t owner_size,
                    uint64_t corr, int status, zmq_msg_t *body, int64_t now,
                    agd_store_deliver_fn *deliver, void *arg)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    if (!entry || entry->done || entry->awaited || entry->ghost)
        return false;               //  evicted while it ran, or not kept
    entry->done = true;
    entry->producer = NULL;
    entry->status = status;
    //  A small result is copied (into the entry itself, if it fits): its
    //  reply may then go out as it is; a large one is shared
    size_t size = zmq_msg_size (body);
    bool shared = size > SHARE_FROM;
    if (shared)
        zmq_msg_copy (&entry->body, body);
    else
    if (size <= INLINE) {
        memcpy (entry->inline_frame, zmq_msg_data (body), size);
        entry->inline_size = (uint16_t) size;
    }
    else
    if (zmq_msg_init_size (&entry->body, size) == 0)
        memcpy (zmq_msg_data (&entry->body), zmq_msg_data (body), size);
    entry->bytes = zmq_msg_size (body);
    entry->expires = now + self->retention;
    s_append (self, entry);
    s_mine_append (entry);
    agd_account_t *account = entry->account;
    account->kept_bytes += entry->bytes;
    self->bytes += entry->bytes;
    while (entry->waiters) {
        waiter_t *waiter = entry->waiters;
        entry->waiters = waiter->next;
        entry->waiting--;
        deliver (arg, waiter->job, waiter->index, status, body);
        free (waiter);
    }
    //  The bytes bound: what the result's account or others hold beyond
    //  their share goes, perhaps this very result (its waiters have it)
    while (self->bytes > self->max_bytes) {
        entry_t *victim = s_victim (self, account, true);
        if (!victim)
            break;
        s_remove (self, victim);
    }
    return shared;
}

int
agd_store_fetch (agd_store_t *self, agd_account_t *account,
                 const void *owner, size_t owner_size, uint64_t corr,
                 agd_job_t *waiter_job, uint32_t index, int *status,
                 zmq_msg_t *body)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    int64_t now = ag_usecs ();
    if (!entry) {
        //  Perhaps its CALL has not come yet: wait for it, a while, as
        //  the fetcher's charge
        if (account->awaited >= MAX_AWAITED || self->awaited >= AWAITED_TOTAL)
            return AG_BUSY;
        entry = s_entry_new (self, owner, owner_size, corr, key);
        if (!entry)
            return AG_BUSY;
        entry->awaited = true;
        entry->expires = now + AWAIT_US;
        entry->account = account;
        agd_accounts_use (self->accounts, account);
        account->awaited++;
        self->awaited++;
        s_append (self, entry);
    }
    if (entry->done && entry->expires <= now)
        s_bury (self, entry, now);  //  expired, not swept yet
    if (entry->ghost)
        return AG_GONE;
    if (entry->done) {
        *status = entry->status;
        if (entry->inline_size) {
            zmq_msg_close (body);
            if (zmq_msg_init_size (body, entry->inline_size))
                return AG_BUSY;
            memcpy (zmq_msg_data (body), entry->inline_frame,
                    entry->inline_size);
        }
        else
            zmq_msg_copy (body, &entry->body);
        return AG_OK;
    }
    if (entry->waiting >= MAX_WAITERS)
        return AG_BUSY;             //  a bound on what fetchers can make us hold
    waiter_t *waiter = (waiter_t *) calloc (1, sizeof (waiter_t));
    if (!waiter)
        return AG_BUSY;
    entry->waiting++;
    waiter->job = waiter_job;
    waiter->index = index;
    waiter->next = entry->waiters;
    entry->waiters = waiter;
    return AG_PENDING;
}

void
agd_store_cancel (agd_store_t *self, const void *owner, size_t owner_size,
                  uint64_t corr, agd_job_t *job, uint32_t index)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    if (!entry)
        return;
    waiter_t **link = &entry->waiters;
    while (*link && !((*link)->job == job && (*link)->index == index))
        link = &(*link)->next;
    if (*link) {
        waiter_t *waiter = *link;
        *link = waiter->next;
        entry->waiting--;
        free (waiter);
    }
}

size_t
agd_store_waiters (agd_store_t *self, const void *owner, size_t owner_size,
                   uint64_t corr, agd_job_t **jobs, size_t max)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    size_t count = 0;
    for (waiter_t *waiter = entry? entry->waiters: NULL;
         waiter && count < max; waiter = waiter->next)
        jobs [count++] = waiter->job;
    return count;
}

agd_job_t *
agd_store_producer (agd_store_t *self, const void *owner, size_t owner_size,
                    uint64_t corr)
{
    uint64_t key = s_key (owner, owner_size, corr);
    entry_t *entry = s_find (self, owner, owner_size, corr, key);
    return entry && !entry->done && !entry->awaited && !entry->ghost
         ? entry->producer: NULL;
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
    while (self->awaited_oldest && self->awaited_oldest->expires <= now) {
        entry_t *entry = self->awaited_oldest;
        char reason [128];
        int len = snprintf (reason, sizeof reason, "no result of call %"
                            PRIu64 " here: never made or not kept, or"
                            " dropped to keep at most %zu", entry->corr,
                            self->max);
        zmq_msg_t body;
        if (len < 0 || agd_frame_reason (&body, reason))
            zmq_msg_init (&body);
        while (entry->waiters) {
            waiter_t *waiter = entry->waiters;
            entry->waiters = waiter->next;
            entry->waiting--;
            deliver (arg, waiter->job, waiter->index, AG_GONE, &body);
            free (waiter);
        }
        zmq_msg_close (&body);
        s_remove (self, entry);
    }
    int64_t next = self->oldest? self->oldest->expires: 0;
    if (self->ghost_oldest
    &&  (!next || self->ghost_oldest->expires < next))
        next = self->ghost_oldest->expires;
    if (self->awaited_oldest
    &&  (!next || self->awaited_oldest->expires < next))
        next = self->awaited_oldest->expires;
    if (!next)
        return -1;
    return (int) ((next - now + 999) / 1000);
}

void
agd_store_flush (agd_store_t *self, int status, const char *reason,
                 agd_store_deliver_fn *deliver, void *arg)
{
    zmq_msg_t body;
    if (agd_frame_reason (&body, reason))
        zmq_msg_init (&body);
    size_t cursor = 0;
    entry_t *entry;
    zlist_t *waited = zlist_new ();
    while ((entry = (entry_t *) ag_idmap_next (self->index, &cursor, NULL)))
        for (; entry; entry = entry->chain)
            if (entry->waiters)
                zlist_append (waited, entry);
    while ((entry = (entry_t *) zlist_pop (waited)))
        while (entry->waiters) {
            waiter_t *waiter = entry->waiters;
            entry->waiters = waiter->next;
            entry->waiting--;
            deliver (arg, waiter->job, waiter->index, status, &body);
            free (waiter);
        }
    zlist_destroy (&waited);
    zmq_msg_close (&body);
}

size_t
agd_store_size (agd_store_t *self)
{
    return self->size;
}

size_t
agd_store_bytes (agd_store_t *self)
{
    return self->bytes;
}

//  ---------------------------------------------------------------------
//  Selftest

static int s_delivered;
static int s_gone;

static void
s_deliver (void *arg, agd_job_t *job, uint32_t index, int status,
           zmq_msg_t *body)
{
    if (index == 77) {
        assert (status == AG_GONE);
        assert (zmq_msg_size (body) > AGP_ENVELOPE_SIZE);
        s_gone++;
        return;
    }
    assert (index == 99 || index == 100);
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
    agd_accounts_t *accounts = agd_accounts_new ();
    agd_account_t *a = agd_accounts_get (accounts, "A", 1, "A");
    agd_account_t *b = agd_accounts_get (accounts, "B", 1, "B");
    agd_store_t *store = agd_store_new (accounts, 60000, 3, 1000);
    zmq_msg_t body, copy;
    zmq_msg_init_size (&body, 3);
    memcpy (zmq_msg_data (&body), "\xa2hi", 3);
    zmq_msg_init (&copy);
    int status;

    //  A fetch before its call waits for the call, then its result
    assert (agd_store_fetch (store, b, "A1", 2, 1, NULL, 99, &status, &copy)
            == AG_PENDING);
    assert (b->awaited == 1);
    assert (agd_store_expect (store, a, "A1", 2, 1, NULL) == 0);
    assert (b->awaited == 0 && a->kept == 1);
    //  A fetch before completion waits, and is answered at completion
    assert (agd_store_fetch (store, b, "A1", 2, 1, NULL, 99, &status, &copy)
            == AG_PENDING);
    agd_store_complete (store, "A1", 2, 1, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    assert (s_delivered == 2);
    assert (agd_store_fetch (store, b, "A1", 2, 1, NULL, 98, &status, &copy)
            == AG_OK);
    assert (status == AG_OK && zmq_msg_size (&copy) == 3);
    assert (agd_store_bytes (store) == 3 && a->kept_bytes == 3);
    //  Alone, an account may fill the store; the bound evicts its oldest
    //  finished result
    assert (agd_store_expect (store, a, "A1", 2, 2, NULL) == 0);
    assert (agd_store_expect (store, a, "A1", 2, 3, NULL) == 0);
    assert (agd_store_size (store) == 3);
    assert (agd_store_expect (store, a, "A1", 2, 4, NULL) == 0);
    assert (agd_store_size (store) == 3);
    //  All pending and full: refused
    assert (agd_store_expect (store, a, "A1", 2, 5, NULL) == -1);
    //  Fetchers of one pending result are bounded
    int answers [3] = { 0 };
    for (int i = 0; i < 70; i++) {
        int found = agd_store_fetch (store, b, "A1", 2, 4, NULL, 100,
                                     &status, &copy);
        answers [found == AG_PENDING? 0: found == AG_BUSY? 1: 2]++;
    }
    assert (answers [0] == 64 && answers [1] == 6 && answers [2] == 0);
    //  Another account's result takes room from the one over its share
    agd_store_complete (store, "A1", 2, 2, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    assert (agd_store_expect (store, b, "B1", 2, 1, NULL) == 0);
    assert (a->kept == 2 && b->kept == 1);
    agd_store_complete (store, "B1", 2, 1, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    //  ... but not the other way round: b at its share drops its own
    assert (agd_store_expect (store, b, "B1", 2, 2, NULL) == 0);
    assert (a->kept == 2 && b->kept == 1);
    assert (agd_store_fetch (store, a, "B1", 2, 1, NULL, 77, &status, &copy)
            == AG_PENDING);
    //  Expiry: done results after the retention time, leaving ghosts
    //  for a while; fetches whose call never came, after their wait,
    //  answered 410
    agd_store_complete (store, "B1", 2, 2, AG_OK, &body, ag_usecs (),
                        s_deliver, NULL);
    int64_t later = ag_usecs () + 61000000;
    s_gone = 0;
    assert (agd_store_expire (store, later, s_deliver, NULL) > 0);
    assert (s_gone == 1);
    assert (agd_store_size (store) == 2);   //  A1/3 and 4, still pending
    assert (agd_store_fetch (store, b, "B1", 2, 2, NULL, 77, &status, &copy)
            == AG_GONE);
    assert (agd_store_expire (store, later + 121000000, s_deliver,
                              NULL) == -1);
    //  The bytes bound: a result bigger than it all is delivered, not kept
    zmq_msg_t big;
    zmq_msg_init_size (&big, 2000);
    assert (agd_store_expect (store, b, "B1", 2, 3, NULL) == 0);
    agd_store_complete (store, "B1", 2, 3, AG_OK, &big, ag_usecs (),
                        s_deliver, NULL);
    assert (agd_store_bytes (store) == 0 && b->kept == 0);
    zmq_msg_close (&big);
    //  Fetches of calls not seen are bounded per account, and take no
    //  room from results
    int busy = 0;
    for (uint64_t corr = 1000; corr < 1000 + MAX_AWAITED + 10; corr++)
        busy += agd_store_fetch (store, b, "X", 1, corr, NULL, 77, &status,
                                 &copy) == AG_BUSY;
    assert (busy == 10 && b->awaited == MAX_AWAITED);
    assert (agd_store_size (store) == 2);
    s_gone = 0;
    agd_store_expire (store, later + 240000000, s_deliver, NULL);
    assert (s_gone == MAX_AWAITED);
    assert (b->awaited == 0);
    zmq_msg_close (&copy);
    zmq_msg_close (&body);
    agd_store_destroy (&store);
    agd_store_destroy (&store);
    agd_accounts_destroy (&accounts);
    //  @end
    printf ("OK\n");
}
