/*  =========================================================================
    agd_client - what the broker knows of each client

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A client is known by its routing id. The broker keeps an entry only
//  while the client has requests in mailboxes or owns agents: that is
//  what the per-client limits count, and what is cleaned up when the
//  client goes. An entry with nothing left is freed at once, so the
//  table is bounded by the work the server holds, not by how many
//  clients ever came.
//  @end

#include "agd.h"

struct _agd_clients_t {
    ag_idmap_t *index;              //  key -> first entry of its chain
    size_t size;
};

static uint64_t
s_key (const void *id, size_t size)
{
    return ag_hash (id, size, AG_HASH_BASIS);
}

agd_clients_t *
agd_clients_new (void)
{
    agd_clients_t *self = (agd_clients_t *) zmalloc (sizeof (agd_clients_t));
    self->index = ag_idmap_new ();
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
    while ((client = (agd_client_t *) zlist_pop (all)))
        free (client);
    zlist_destroy (&all);
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

agd_client_t *
agd_clients_get (agd_clients_t *self, const void *id, size_t size)
{
    agd_client_t *client = agd_clients_find (self, id, size);
    if (client)
        return client;
    client = (agd_client_t *) calloc (1, sizeof (agd_client_t) + size);
    if (!client)
        return NULL;
    client->key = s_key (id, size);
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
    if (!client || client->pending || client->owned)
        return;
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
    free (client);
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
    agd_clients_t *clients = agd_clients_new ();
    assert (agd_clients_find (clients, "C1", 2) == NULL);
    agd_client_t *one = agd_clients_get (clients, "C1", 2);
    agd_client_t *two = agd_clients_get (clients, "C22", 3);
    assert (one && two && one != two);
    assert (agd_clients_get (clients, "C1", 2) == one);
    assert (agd_clients_size (clients) == 2);
    //  Released only when it holds nothing
    one->pending = 1;
    agd_clients_release (clients, one);
    assert (agd_clients_find (clients, "C1", 2) == one);
    one->pending = 0;
    agd_clients_release (clients, one);
    assert (agd_clients_find (clients, "C1", 2) == NULL);
    assert (agd_clients_size (clients) == 1);
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
    printf ("OK\n");
}
