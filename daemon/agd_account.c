/*  =========================================================================
    agd_account - who a request is charged to, and the bytes held for it

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A client's routing id is whatever the client says it is: one socket
//  can present a hundred of them. Limits are therefore kept per account,
//  the identity the transport proves (the broker decides which: a CURVE
//  key, the process at the other end of an ipc socket, else the
//  connection). An account counts what it holds on the broker's thread
//  (requests and their bytes, agents, kept results) and, atomically, the
//  bytes of its replies that libzmq has not written out yet: each reply
//  frame is a block of ours whose free function, run by libzmq's I/O
//  thread once the frame is on the wire (or dropped), takes its bytes off
//  the account and off the server's total. A frame holds a reference to
//  its account, so an account outlives the table's interest in it for as
//  long as libzmq holds its frames.
//  @end

#include "agd.h"

#define FRAME_MAGIC     0x6167646672616d65ULL   //  "agdframe"

//  The server's total of reply bytes let go by libzmq: written by its
//  I/O thread only, on a line of its own
struct _agd_meter_t {
    _Alignas (64) atomic_size_t drained;
};

struct _agd_accounts_t {
    ag_idmap_t *index;              //  key -> first account of its chain
    agd_meter_t *meter;
    size_t charged;                 //  reply bytes handed to libzmq
    size_t drained_seen;            //  meter->drained, as last read
    agd_account_t *idle;            //  nobody uses them; freed when their
                                    //  replies are out
    size_t size;
};

//  What a reply frame carries before its bytes
typedef struct {
    uint64_t magic;
    agd_account_t *account;         //  charged, or NULL
    size_t charge;                  //  bytes charged
    zmq_msg_t *shared;              //  the frame whose bytes these are, or
                                    //  NULL when they follow this header
} frame_t;

//  An account is freed only when libzmq holds none of its frames (all it
//  was charged has drained): the free function's add to drained is its
//  last touch of the account, so nothing reaches it after. The meter
//  lives until the table goes, after the socket has let go of all.

agd_accounts_t *
agd_accounts_new (void)
{
    agd_accounts_t *self = (agd_accounts_t *) zmalloc (sizeof *self);
    self->index = ag_idmap_new ();
    self->meter = (agd_meter_t *) aligned_alloc (64, sizeof (agd_meter_t));
    atomic_init (&self->meter->drained, 0);
    return self;
}

//  Read what libzmq has let go, for the table and for one account
static size_t
s_out (agd_accounts_t *self)
{
    self->drained_seen = atomic_load_explicit (&self->meter->drained,
                                               memory_order_acquire);
    return self->charged - self->drained_seen;
}

static size_t
s_account_out (agd_account_t *account)
{
    account->drained_seen = atomic_load_explicit (&account->drained,
                                                  memory_order_acquire);
    return account->charged - account->drained_seen;
}

int
agd_accounts_drain (agd_accounts_t *self, int msecs)
{
    int64_t deadline = ag_usecs () + (int64_t) msecs * 1000;
    while (s_out (self) && ag_usecs () < deadline) {
        struct timespec nap = { 0, 1000000 };
        nanosleep (&nap, NULL);
    }
    return s_out (self)? -1: 0;
}

void
agd_accounts_destroy (agd_accounts_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_accounts_t *self = *self_p;
    *self_p = NULL;
    if (s_out (self)) {
        //  libzmq still holds frames that will reach these accounts and
        //  the meter: they stay, rather than be reached once freed
        zsys_warning ("%zu bytes of replies still held at the end: their"
                      " accounts are left allocated", s_out (self));
        return;
    }
    //  Collect first: unlinking while walking would move slots
    zlist_t *all = zlist_new ();
    size_t cursor = 0;
    agd_account_t *account;
    while ((account = (agd_account_t *) ag_idmap_next (self->index, &cursor,
                                                       NULL)))
        for (; account; account = account->chain)
            zlist_append (all, account);
    while ((account = (agd_account_t *) zlist_pop (all)))
        free (account);
    zlist_destroy (&all);
    ag_idmap_destroy (&self->index);
    free (self->meter);
    free (self);
}

static uint64_t
s_key (const void *id, size_t size)
{
    uint64_t key = ag_hash (id, size, AG_HASH_BASIS);
    return key? key: 1;
}

static void
s_idle_remove (agd_accounts_t *self, agd_account_t *account)
{
    if (!account->idle)
        return;
    if (account->idle_prev)
        account->idle_prev->idle_next = account->idle_next;
    else
        self->idle = account->idle_next;
    if (account->idle_next)
        account->idle_next->idle_prev = account->idle_prev;
    account->idle_prev = account->idle_next = NULL;
    account->idle = false;
}

static void
s_idle_push (agd_accounts_t *self, agd_account_t *account)
{
    account->idle = true;
    account->idle_prev = NULL;
    account->idle_next = self->idle;
    if (self->idle)
        self->idle->idle_prev = account;
    self->idle = account;
}

agd_account_t *
agd_accounts_get (agd_accounts_t *self, const void *id, size_t size,
                  const char *name)
{
    uint64_t key = s_key (id, size);
    agd_account_t *account = (agd_account_t *) ag_idmap_lookup (self->index,
                                                                key);
    while (account && !(account->id_size == size
                     && memcmp (account->id, id, size) == 0))
        account = account->chain;
    if (account)
        return account;
    size_t bytes = sizeof (agd_account_t) + size;
    bytes = (bytes + 63) / 64 * 64;
    account = (agd_account_t *) aligned_alloc (64, bytes);
    if (!account)
        return NULL;
    memset (account, 0, bytes);
    atomic_init (&account->drained, 0);
    account->key = key;
    account->meter = self->meter;
    snprintf (account->name, sizeof account->name, "%s", name);
    account->id_size = size;
    memcpy (account->id, id, size);
    account->chain = (agd_account_t *) ag_idmap_lookup (self->index, key);
    if (ag_idmap_insert (self->index, key, account)) {
        free (account);
        return NULL;
    }
    self->size++;
    s_idle_push (self, account);    //  until somebody uses it
    return account;
}

void
agd_accounts_use (agd_accounts_t *self, agd_account_t *account)
{
    if (account->users++ == 0)
        s_idle_remove (self, account);
}

void
agd_accounts_release (agd_accounts_t *self, agd_account_t *account)
{
    if (account && --account->users == 0)
        s_idle_push (self, account);
}

void
agd_accounts_sweep (agd_accounts_t *self)
{
    agd_account_t *account = self->idle;
    while (account) {
        agd_account_t *next = account->idle_next;
        //  An account whose replies are not all out stays: a client that
        //  reads nothing must not get a fresh one by pausing
        if (s_account_out (account) == 0) {
            s_idle_remove (self, account);
            agd_account_t *first = (agd_account_t *)
                ag_idmap_lookup (self->index, account->key);
            if (first == account) {
                if (account->chain)
                    ag_idmap_insert (self->index, account->key,
                                     account->chain);
                else
                    ag_idmap_delete (self->index, account->key);
            }
            else {
                while (first->chain != account)
                    first = first->chain;
                first->chain = account->chain;
            }
            self->size--;
            free (account);
        }
        account = next;
    }
}

size_t
agd_accounts_size (agd_accounts_t *self)
{
    return self->size;
}

size_t
agd_accounts_out_bound (agd_accounts_t *self)
{
    return self->charged - self->drained_seen;
}

size_t
agd_accounts_out (agd_accounts_t *self)
{
    return s_out (self);
}

size_t
agd_account_out_bound (agd_account_t *self)
{
    return self->charged - self->drained_seen;
}

size_t
agd_account_out (agd_account_t *self)
{
    return s_account_out (self);
}

//  ---------------------------------------------------------------------
//  Reply frames

//  libzmq is done with a frame: on the wire, or dropped. Runs on its I/O
//  thread, or on the broker's.
static void
s_frame_free (void *data, void *hint)
{
    frame_t *frame = (frame_t *) hint;
    agd_account_t *account = frame->account;
    if (frame->shared)
        zmq_msg_close (frame->shared);
    size_t charge = frame->charge;
    free (frame);
    if (account) {
        atomic_fetch_add_explicit (&account->meter->drained, charge,
                                   memory_order_release);
        //  The last touch of the account
        atomic_fetch_add_explicit (&account->drained, charge,
                                   memory_order_release);
    }
}

int
agd_frame_init (zmq_msg_t *msg, const void *body, size_t size)
{
    if (!body)
        size = 0;
    if (AGP_ENVELOPE_SIZE + size <= AGD_FRAME_SMALL) {
        //  Held inside libzmq's message itself: nothing to count
        if (zmq_msg_init_size (msg, AGP_ENVELOPE_SIZE + size))
            return -1;
        uint8_t *data = (uint8_t *) zmq_msg_data (msg);
        memset (data, 0, AGP_ENVELOPE_SIZE);
        if (size)
            memcpy (data + AGP_ENVELOPE_SIZE, body, size);
        return 0;
    }
    frame_t *frame = (frame_t *) malloc (sizeof (frame_t)
                                         + AGP_ENVELOPE_SIZE + size);
    if (!frame)
        return -1;
    *frame = (frame_t) { .magic = FRAME_MAGIC };
    uint8_t *data = (uint8_t *) (frame + 1);
    memset (data, 0, AGP_ENVELOPE_SIZE);
    if (size)
        memcpy (data + AGP_ENVELOPE_SIZE, body, size);
    if (zmq_msg_init_data (msg, data, AGP_ENVELOPE_SIZE + size,
                           s_frame_free, frame)) {
        free (frame);
        return -1;
    }
    return 0;
}

int
agd_frame_reason (zmq_msg_t *msg, const char *reason)
{
    //  At most 1024 octets (PROTOCOL.md 5), cut where a character starts
    size_t len = strlen (reason);
    if (len > 1024) {
        len = 1024;
        while (len && ((uint8_t) reason [len] & 0xc0) == 0x80)
            len--;
    }
    uint8_t body [3 + 1024];
    size_t head = 1;
    if (len < 32)
        body [0] = (uint8_t) (0xa0 | len);      //  fixstr
    else
    if (len < 256) {
        body [0] = 0xd9;                        //  str 8
        body [1] = (uint8_t) len;
        head = 2;
    }
    else {
        body [0] = 0xda;                        //  str 16
        body [1] = (uint8_t) (len >> 8);
        body [2] = (uint8_t) len;
        head = 3;
    }
    memcpy (body + head, reason, len);
    return agd_frame_init (msg, body, head + len);
}

//  Charge a frame's bytes to an account (broker thread)
static void
s_charge (frame_t *frame, size_t size, agd_account_t *account,
          agd_accounts_t *table)
{
    assert (!frame->account);
    frame->account = account;
    frame->charge = size + AGD_FRAME_COST;
    account->charged += frame->charge;
    table->charged += frame->charge;
}

void
agd_frame_charge (zmq_msg_t *msg, agd_accounts_t *table,
                  agd_account_t *account)
{
    if (zmq_msg_size (msg) <= AGD_FRAME_SMALL)
        return;
    frame_t *frame = (frame_t *) zmq_msg_data (msg) - 1;
    assert (frame->magic == FRAME_MAGIC);
    s_charge (frame, zmq_msg_size (msg), account, table);
}

int
agd_frame_share (zmq_msg_t *out, zmq_msg_t *in, agd_accounts_t *table,
                 agd_account_t *account)
{
    if (zmq_msg_size (in) <= AGD_FRAME_SMALL) {
        zmq_msg_init (out);
        return zmq_msg_copy (out, in);
    }
    //  The header and the reference to in's bytes in one block
    frame_t *frame = (frame_t *) malloc (sizeof (frame_t)
                                         + sizeof (zmq_msg_t));
    if (!frame)
        return -1;
    zmq_msg_t *shared = (zmq_msg_t *) (frame + 1);
    *frame = (frame_t) { .magic = FRAME_MAGIC, .shared = shared };
    zmq_msg_init (shared);
    zmq_msg_copy (shared, in);
    if (zmq_msg_init_data (out, zmq_msg_data (shared), zmq_msg_size (shared),
                           s_frame_free, frame)) {
        zmq_msg_close (shared);
        free (frame);
        return -1;
    }
    if (account)
        s_charge (frame, zmq_msg_size (shared), account, table);
    return 0;
}

//  ---------------------------------------------------------------------
//  Selftest

void
agd_accounts_test (bool verbose)
{
    printf (" * agd_accounts: ");
    //  @selftest
    agd_accounts_t *accounts = agd_accounts_new ();
    agd_account_t *alice = agd_accounts_get (accounts, "alice", 5, "alice");
    agd_account_t *bob = agd_accounts_get (accounts, "bob", 3, "bob");
    assert (alice && bob && alice != bob);
    assert (agd_accounts_get (accounts, "alice", 5, "alice") == alice);
    agd_accounts_use (accounts, alice);

    //  A frame's bytes count against its account until it is freed
    char body [100] = "\xd9\x62";
    memset (body + 2, 'x', sizeof body - 2);
    zmq_msg_t reply, copy;
    assert (agd_frame_init (&reply, body, sizeof body) == 0);
    assert (zmq_msg_size (&reply) == AGP_ENVELOPE_SIZE + sizeof body);
    agd_frame_charge (&reply, accounts, alice);
    size_t charge = AGP_ENVELOPE_SIZE + sizeof body + AGD_FRAME_COST;
    assert (agd_account_out (alice) == charge);
    assert (agd_accounts_out (accounts) == charge);
    zmq_msg_close (&reply);
    assert (agd_account_out (alice) == 0);
    assert (agd_accounts_out (accounts) == 0);
    //  A small one lives in libzmq's message, and is not counted
    assert (agd_frame_init (&reply, "\xa2hi", 3) == 0);
    agd_frame_charge (&reply, accounts, alice);
    assert (agd_account_out (alice) == 0);
    zmq_msg_close (&reply);
    //  A share of a frame kept elsewhere (uncharged) is charged on its
    //  own, and keeps the bytes alive after the original goes
    zmq_msg_t kept;
    assert (agd_frame_init (&kept, body, sizeof body) == 0);
    assert (agd_frame_share (&copy, &kept, accounts, bob) == 0);
    assert (zmq_msg_data (&copy) == zmq_msg_data (&kept));
    assert (agd_account_out (bob) == charge);
    zmq_msg_close (&kept);
    assert (agd_accounts_out (accounts) == charge);
    assert (memcmp ((uint8_t *) zmq_msg_data (&copy) + AGP_ENVELOPE_SIZE,
                    body, sizeof body) == 0);

    //  An account nobody uses goes at a sweep, once its replies are out;
    //  the one in use stays
    agd_accounts_sweep (accounts);
    assert (agd_accounts_size (accounts) == 2);
    zmq_msg_close (&copy);
    assert (agd_accounts_out (accounts) == 0);
    agd_accounts_sweep (accounts);
    assert (agd_accounts_size (accounts) == 1);
    agd_accounts_release (accounts, alice);
    agd_accounts_sweep (accounts);
    assert (agd_accounts_size (accounts) == 0);

    //  The table waits for libzmq to let go of its frames before it goes
    alice = agd_accounts_get (accounts, "alice", 5, "alice");
    assert (agd_frame_init (&reply, body, sizeof body) == 0);
    agd_frame_charge (&reply, accounts, alice);
    assert (agd_accounts_drain (accounts, 10) == -1);
    zmq_msg_close (&reply);
    assert (agd_accounts_drain (accounts, 10) == 0);
    agd_accounts_destroy (&accounts);
    assert (accounts == NULL);
    //  @end
    printf ("OK\n");
}
