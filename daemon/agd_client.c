/*  =========================================================================
    agd_client - what the broker knows of each client

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A client entry is a routing id: what replies are addressed to, what
//  owns agents and what goes when its connection does. Who the client is
//  (the account its requests are charged to) is proven by the connection
//  its messages come on, so an entry also remembers that connection's
//  descriptor and the account it was found to be; a message on another
//  connection, or after that one dropped, is looked at again.
//
//  An entry lives while its client has requests pending or owns agents,
//  and a little longer: one that comes to hold nothing waits on an idle
//  list and is freed at the second sweep after, unless used again. A
//  client making one sync call after another so keeps its entry, and the
//  table stays bounded by the work the server holds and the clients of
//  the last second, not by how many clients ever came.
//  @end

#include "agd.h"

struct _agd_clients_t {
    ag_idmap_t *index;              //  key -> first entry of its chain
    ag_idmap_t *by_fd;              //  descriptor + 1 -> entry bound to it
    agd_accounts_t *accounts;       //  what entries are charged to
    agd_client_t *idle;             //  entries holding nothing
    uint64_t sweeps;                //  sweeps made
    size_t size;
};

static uint64_t
s_key (const void *id, size_t size)
{
    return ag_hash (id, size, AG_HASH_BASIS);
}

agd_clients_t *
agd_clients_new (agd_accounts_t *accounts)
{
    agd_clients_t *self = (agd_clients_t *) zmalloc (sizeof (agd_clients_t));
    self->index = ag_idmap_new ();
    self->by_fd = ag_idmap_new ();
    self->accounts = accounts;
    return self;
}

void
agd_clients_destroy (agd_clients_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_clients_t *self = *self_p;
    *self_p = NULL;
    //  Collect first: freeing while walking would move slots
    zlist_t *all = zlist_new ();
    size_t cursor = 0;
    agd_client_t *client;
    while ((client = (agd_client_t *) ag_idmap_next (self->index, &cursor,
                                                     NULL)))
        for (; client; client = client->chain)
            zlist_append (all, client);
    while ((client = (agd_client_t *) zlist_pop (all))) {
        agd_accounts_release (self->accounts, client->account);
        free (client);
    }
    zlist_destroy (&all);
    ag_idmap_destroy (&self->by_fd);
    ag_idmap_destroy (&self->index);
    free (self);
}

agd_client_t *
agd_clients_find (agd_clients_t *self, const void *id, size_t size)
{
    agd_client_t *client = (agd_client_t *)
        ag_idmap_lookup (self->index, s_key (id, size));
    while (client && !(client->id_size == size
                    && memcmp (client->id, id, size) == 0))
        client = client->chain;
    return client;
}

static void
s_idle_remove (agd_clients_t *self, agd_client_t *client)
{
    if (!client->idle)
        return;
    if (client->idle_prev)
        client->idle_prev->idle_next = client->idle_next;
    else
        self->idle = client->idle_next;
    if (client->idle_next)
        client->idle_next->idle_prev = client->idle_prev;
    client->idle_prev = client->idle_next = NULL;
    client->idle = false;
}

agd_client_t *
agd_clients_get (agd_clients_t *self, const void *id, size_t size)
{
    agd_client_t *client = agd_clients_find (self, id, size);
    if (client) {
        s_idle_remove (self, client);
        return client;
    }
    client = (agd_client_t *) calloc (1, sizeof (agd_client_t) + size);
    if (!client)
        return NULL;
    client->key = s_key (id, size);
    client->fd = -1;
    client->id_size = size;
    memcpy (client->id, id, size);
    client->chain = (agd_client_t *) ag_idmap_lookup (self->index,
                                                      client->key);
    if (ag_idmap_insert (self->index, client->key, client)) {
        free (client);
        return NULL;
    }
    self->size++;
    return client;
}

void
agd_clients_release (agd_clients_t *self, agd_client_t *client)
{
    if (!client || client->pending || client->owned || client->idle)
        return;
    client->idle = true;
    client->idle_mark = self->sweeps;
    client->idle_prev = NULL;
    client->idle_next = self->idle;
    if (self->idle)
        self->idle->idle_prev = client;
    self->idle = client;
}

static void
s_unbind (agd_clients_t *self, agd_client_t *client)
{
    if (client->fd >= 0
    &&  ag_idmap_lookup (self->by_fd, (uint64_t) client->fd + 1) == client)
        ag_idmap_delete (self->by_fd, (uint64_t) client->fd + 1);
    client->fd = -1;
    client->bound = false;
}

static void
s_free (agd_clients_t *self, agd_client_t *client)
{
    s_idle_remove (self, client);
    s_unbind (self, client);
    agd_client_t *first = (agd_client_t *) ag_idmap_lookup (self->index,
                                                            client->key);
    if (first == client) {
        if (client->chain)
            ag_idmap_insert (self->index, client->key, client->chain);
        else
            ag_idmap_delete (self->index, client->key);
    }
    else {
        while (first->chain != client)
            first = first->chain;
        first->chain = client->chain;
    }
    self->size--;
    agd_accounts_release (self->accounts, client->account);
    free (client);
}

void
agd_clients_sweep (agd_clients_t *self)
{
    agd_client_t *client = self->idle;
    while (client) {
        agd_client_t *next = client->idle_next;
        if (client->idle_mark < self->sweeps)
            s_free (self, client);
        client = next;
    }
    self->sweeps++;
}

void
agd_clients_bind (agd_clients_t *self, agd_client_t *client, int fd,
                  agd_account_t *account, uint64_t peer_tag)
{
    s_unbind (self, client);
    if (account != client->account) {
        agd_accounts_use (self->accounts, account);
        agd_accounts_release (self->accounts, client->account);
        client->account = account;
    }
    client->fd = fd;
    client->peer_tag = peer_tag;
    client->cut = false;
    //  Without a descriptor there is no drop to hear of: the client
    //  proves itself with each message
    client->bound = fd >= 0;
    if (fd >= 0)
        ag_idmap_insert (self->by_fd, (uint64_t) fd + 1, client);
}

void
agd_clients_dropped (agd_clients_t *self, int fd)
{
    agd_client_t *client = (agd_client_t *)
        ag_idmap_lookup (self->by_fd, (uint64_t) fd + 1);
    if (client)
        s_unbind (self, client);
}

size_t
agd_clients_size (agd_clients_t *self)
{
    return self->size;
}

agd_client_t *
agd_clients_next (agd_clients_t *self, size_t *cursor, agd_client_t *client)
{
    if (client && client->chain)
        return client->chain;
    return (agd_client_t *) ag_idmap_next (self->index, cursor, NULL);
}

//  ---------------------------------------------------------------------
//  Selftest

void
agd_clients_test (bool verbose)
{
    printf (" * agd_clients: ");
    //  @selftest
    agd_accounts_t *accounts = agd_accounts_new ();
    agd_clients_t *clients = agd_clients_new (accounts);
    assert (agd_clients_find (clients, "C1", 2) == NULL);
    agd_client_t *one = agd_clients_get (clients, "C1", 2);
    agd_client_t *two = agd_clients_get (clients, "C22", 3);
    assert (one && two && one != two);
    assert (agd_clients_get (clients, "C1", 2) == one);
    assert (agd_clients_size (clients) == 2);
    //  Bound to an account, and to a descriptor until it drops
    agd_account_t *account = agd_accounts_get (accounts, "A", 1, "A");
    agd_clients_bind (clients, one, 7, account, 0);
    assert (one->account == account && one->fd == 7 && one->bound);
    agd_clients_dropped (clients, 7);
    assert (one->fd == -1 && !one->bound && one->account == account);
    //  An entry holding something stays; one holding nothing goes at the
    //  second sweep, unless used meanwhile
    one->pending = 1;
    agd_clients_release (clients, one);
    agd_clients_sweep (clients);
    agd_clients_sweep (clients);
    assert (agd_clients_find (clients, "C1", 2) == one);
    one->pending = 0;
    agd_clients_release (clients, one);
    agd_clients_sweep (clients);
    assert (agd_clients_get (clients, "C1", 2) == one);
    agd_clients_release (clients, one);
    agd_clients_sweep (clients);
    agd_clients_sweep (clients);
    assert (agd_clients_find (clients, "C1", 2) == NULL);
    assert (agd_clients_size (clients) == 1);
    //  Its account went idle with it
    agd_accounts_sweep (accounts);
    assert (agd_accounts_size (accounts) == 0);
    //  Many, some released, the rest still found
    char id [16];
    for (int i = 0; i < 5000; i++) {
        snprintf (id, sizeof id, "K%d", i);
        agd_client_t *client = agd_clients_get (clients, id, strlen (id));
        assert (client);
        client->owned = i % 2;
    }
    for (int i = 0; i < 5000; i++) {
        snprintf (id, sizeof id, "K%d", i);
        agd_clients_release (clients, agd_clients_find (clients, id,
                                                        strlen (id)));
    }
    agd_clients_sweep (clients);
    agd_clients_sweep (clients);
    assert (agd_clients_size (clients) == 2501);
    size_t walked = 0, cursor = 0;
    agd_client_t *client = NULL;
    while ((client = agd_clients_next (clients, &cursor, client)))
        walked++;
    assert (walked == 2501);
    for (int i = 0; i < 5000; i++) {
        snprintf (id, sizeof id, "K%d", i);
        client = agd_clients_find (clients, id, strlen (id));
        assert ((client != NULL) == (i % 2 == 1));
    }
    agd_clients_destroy (&clients);
    assert (clients == NULL);
    agd_accounts_destroy (&accounts);
    //  @end
    printf ("OK\n");
}
