/*  =========================================================================
    agc_cluster - placing agents over several servers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A cluster is a list of servers and a placement. Unnamed agents go
//  where the placement says: each server in turn, or the one with the
//  least work by its own INFO figures. A named agent goes where its name
//  hashes to (rendezvous hashing over the endpoints), so that every
//  process holding the same list puts and finds a name on the same
//  server, whose own check keeps the name unique.
//  @end

#include "agc.h"

#define MAX_SERVERS 256

typedef struct {
    char *endpoint;
    agc_conn_t *conn;
    int64_t down_until;             //  skip until then (usecs), 0 if up
} server_t;

struct _agc_cluster_t {
    pthread_mutex_t lock;           //  guards next, down_until, timeout
    agc_placement_t placement;
    server_t *servers;
    size_t count;
    size_t next;                    //  round robin cursor
    int timeout;                    //  msecs, as set on each connection
};

//  ---------------------------------------------------------------------
//  Construction

agc_cluster_t *
agc_cluster_new (const char *endpoints, agc_placement_t placement)
{
    if (!endpoints
    ||  (placement != AGC_ROUND_ROBIN && placement != AGC_LEAST_LOADED)) {
        agc_set_error (AG_BAD_REQUEST, "a cluster needs a list of endpoints"
                       " and a placement (AGC_ROUND_ROBIN or"
                       " AGC_LEAST_LOADED)");
        return NULL;
    }
    agc_cluster_t *self = (agc_cluster_t *) calloc (1, sizeof *self);
    char *list = strdup (endpoints);
    if (self)
        self->servers = (server_t *) calloc (MAX_SERVERS, sizeof (server_t));
    if (!self || !list || !self->servers) {
        free (list);
        if (self)
            free (self->servers);
        free (self);
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->placement = placement;
    self->timeout = 10000;
    char *saved = NULL;
    for (char *endpoint = strtok_r (list, ", \t\n", &saved); endpoint;
         endpoint = strtok_r (NULL, ", \t\n", &saved)) {
        bool twice = false;
        for (size_t i = 0; i < self->count; i++)
            twice |= streq (self->servers [i].endpoint, endpoint);
        if (twice || self->count == MAX_SERVERS) {
            if (twice)
                agc_set_error (AG_BAD_REQUEST, "%s is in the cluster's list"
                               " twice", endpoint);
            else
                agc_set_error (AG_BAD_REQUEST, "a cluster holds at most %d"
                               " servers", MAX_SERVERS);
            free (list);
            agc_cluster_destroy (&self);
            return NULL;
        }
        server_t *server = &self->servers [self->count];
        server->conn = agc_conn_new (endpoint);
        if (!server->conn) {
            //  agc_conn_new said why (a malformed endpoint, a
            //  certificate the environment names that cannot be read)
            free (list);
            agc_cluster_destroy (&self);
            return NULL;
        }
        server->endpoint = strdup (endpoint);
        self->count++;
        if (!server->endpoint) {
            agc_set_error (AG_INTERNAL, "out of memory");
            free (list);
            agc_cluster_destroy (&self);
            return NULL;
        }
    }
    free (list);
    if (self->count == 0) {
        agc_set_error (AG_BAD_REQUEST, "a cluster needs at least one"
                       " endpoint");
        agc_cluster_destroy (&self);
    }
    return self;
}

void
agc_cluster_destroy (agc_cluster_t **self_p)
{
    agc_cluster_t *self = self_p? *self_p: NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        agc_conn_destroy (&self->servers [i].conn);
        free (self->servers [i].endpoint);
    }
    free (self->servers);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

size_t
agc_cluster_size (agc_cluster_t *self)
{
    return self? self->count: 0;
}

agc_conn_t *
agc_cluster_conn (agc_cluster_t *self, size_t index)
{
    return self && index < self->count? self->servers [index].conn: NULL;
}

void
agc_cluster_set_timeout (agc_cluster_t *self, int msecs)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->timeout = msecs;
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < self->count; i++)
        agc_conn_set_timeout (self->servers [i].conn, msecs);
}

//  ---------------------------------------------------------------------
//  Placement

//  A name's weight on a server: the name (with its terminating zero, so
//  that no two pairs run together alike) and the endpoint hashed, then
//  a finaliser that spreads the bits
static uint64_t
s_weight (const char *name, const char *endpoint)
{
    uint64_t hash = ag_hash (name, strlen (name) + 1, AG_HASH_BASIS);
    hash = ag_hash (endpoint, strlen (endpoint), hash);
    hash ^= hash >> 30;
    hash *= 0xbf58476d1ce4e5b9ULL;
    hash ^= hash >> 27;
    hash *= 0x94d049bb133111ebULL;
    hash ^= hash >> 31;
    return hash;
}

//  The server a name belongs on
static size_t
s_home (agc_cluster_t *self, const char *name)
{
    size_t best = 0;
    uint64_t top = 0;
    for (size_t i = 0; i < self->count; i++) {
        uint64_t weight = s_weight (name, self->servers [i].endpoint);
        if (i == 0 || weight > top) {
            top = weight;
            best = i;
        }
    }
    return best;
}

static bool
s_is_down (agc_cluster_t *self, size_t index, int64_t now)
{
    return self->servers [index].down_until > now;
}

//  A server that could not be reached is left alone for a while
static void
s_mark_down (agc_cluster_t *self, size_t index)
{
    pthread_mutex_lock (&self->lock);
    self->servers [index].down_until = ag_usecs ()
                                     + (int64_t) self->timeout * 1000;
    pthread_mutex_unlock (&self->lock);
}

static void
s_mark_up (agc_cluster_t *self, size_t index)
{
    pthread_mutex_lock (&self->lock);
    self->servers [index].down_until = 0;
    pthread_mutex_unlock (&self->lock);
}

typedef struct {
    size_t index;                   //  the server
    size_t rank;                    //  its place in round robin order
    uint64_t pending;
    uint64_t agents;
} load_t;

static int
s_load_compare (const void *a, const void *b)
{
    const load_t *x = (const load_t *) a, *y = (const load_t *) b;
    if (x->pending != y->pending)
        return x->pending < y->pending? -1: 1;
    if (x->agents != y->agents)
        return x->agents < y->agents? -1: 1;
    //  Equal loads keep the round robin order they came in
    return x->rank < y->rank? -1: x->rank > y->rank;
}

//  A failure that another server may not have
static bool
s_try_elsewhere (int status)
{
    return status == AG_UNREACHABLE || status == AG_STOPPING
        || status == AG_BUSY || status == AG_NO_CLASS
        || status == AG_DENIED;
}

//  Why each server tried could not take an agent, for the error
typedef struct {
    char text [1024];
    size_t used;
    int status;                     //  the last one
} failures_t;

static void
s_failed (failures_t *self, const char *endpoint, int status,
          const char *reason)
{
    int wrote = snprintf (self->text + self->used,
                          sizeof self->text - self->used, "%s%s: %s",
                          self->used? "; ": "", endpoint, reason);
    if (wrote > 0)
        self->used = MIN (sizeof self->text - 1, self->used + (size_t) wrote);
    self->status = status;
}

//  The order to try servers in: the placement's, those marked down
//  last. A server that has just failed to answer INFO is left out, its
//  failure noted. Fills order, returns how many.
static size_t
s_order (agc_cluster_t *self, size_t *order, failures_t *failures)
{
    pthread_mutex_lock (&self->lock);
    size_t start = self->next++ % self->count;
    int64_t now = ag_usecs ();
    size_t up = 0, down = self->count;
    for (size_t k = 0; k < self->count; k++) {
        size_t i = (start + k) % self->count;
        if (s_is_down (self, i, now))
            order [--down] = i;
        else
            order [up++] = i;
    }
    pthread_mutex_unlock (&self->lock);
    //  Those down were put at the end backwards: put them in turn
    for (size_t a = up, b = self->count - 1; a < b; a++, b--) {
        size_t swap = order [a];
        order [a] = order [b];
        order [b] = swap;
    }
    if (self->placement != AGC_LEAST_LOADED || up == 0)
        return self->count;

    //  Ask every server that is up at once, then rank them by the
    //  requests they have pending, then by the agents they hold
    agc_future_t *asked [MAX_SERVERS];
    load_t loads [MAX_SERVERS];
    for (size_t k = 0; k < up; k++)
        asked [k] = agc_conn_request (self->servers [order [k]].conn,
                                      AGP_INFO, 0, 0, NULL, 0);
    size_t answered = 0, silent = 0;
    size_t unanswered [MAX_SERVERS];
    for (size_t k = 0; k < up; k++) {
        size_t i = order [k];
        ag_value_t *info = asked [k]? agc_future_result (asked [k],
                                                         AGC_FOREVER)
                                    : NULL;
        agc_future_destroy (&asked [k]);
        const msgpack_object *root = ag_value_object (info);
        const msgpack_object *pending = ag_obj_get (root, "pending");
        const msgpack_object *agents = ag_obj_get (root, "agents");
        if (info && pending && agents) {
            loads [answered].index = i;
            loads [answered].rank = k;
            loads [answered].pending = (uint64_t) ag_obj_int (pending, 0);
            loads [answered].agents = (uint64_t) ag_obj_int (agents, 0);
            answered++;
        }
        else
        if (!info && s_try_elsewhere (agc_status ())) {
            //  Down, stopping, refusing us: not worth a CREATE now
            if (agc_status () == AG_UNREACHABLE)
                s_mark_down (self, i);
            s_failed (failures, self->servers [i].endpoint, agc_status (),
                      agc_reason ());
        }
        else
            unanswered [silent++] = i;
        ag_value_destroy (&info);
    }
    qsort (loads, answered, sizeof (load_t), s_load_compare);
    //  The ranked, then the others that are up, then those marked down
    //  before
    size_t n = 0;
    for (size_t k = 0; k < answered; k++)
        order [n++] = loads [k].index;
    for (size_t k = 0; k < silent; k++)
        order [n++] = unanswered [k];
    for (size_t k = up; k < self->count; k++)
        order [n++] = order [k];
    return n;
}

agc_agent_t *
agc_cluster_create (agc_cluster_t *self, const char *class_name,
                    const ag_value_t *args, const char *name)
{
    if (!self || !class_name) {
        agc_set_error (AG_BAD_REQUEST, "creating an agent needs a cluster"
                       " and a class name");
        return NULL;
    }
    if (name) {
        //  A name has one home, and only its home will do
        size_t home = s_home (self, name);
        agc_agent_t *agent = agc_agent_new (self->servers [home].conn,
                                            class_name, args, name);
        if (agent)
            s_mark_up (self, home);
        else
        if (agc_status () == AG_UNREACHABLE)
            s_mark_down (self, home);
        return agent;
    }
    size_t order [MAX_SERVERS];
    failures_t failures = { .status = AG_UNREACHABLE };
    size_t count = s_order (self, order, &failures);
    for (size_t k = 0; k < count; k++) {
        size_t i = order [k];
        agc_agent_t *agent = agc_agent_new (self->servers [i].conn,
                                            class_name, args, NULL);
        if (agent) {
            s_mark_up (self, i);
            return agent;
        }
        int status = agc_status ();
        if (status == AG_UNREACHABLE)
            s_mark_down (self, i);
        if (!s_try_elsewhere (status))
            return NULL;            //  the caller's error: same anywhere
        s_failed (&failures, self->servers [i].endpoint, status,
                  agc_reason ());
    }
    agc_set_error (failures.status, "no server in the cluster took the"
                   " agent: %s", failures.text);
    return NULL;
}

agc_agent_t *
agc_cluster_lookup (agc_cluster_t *self, const char *name)
{
    if (!self || !name) {
        agc_set_error (AG_BAD_REQUEST, "a lookup needs a cluster and a"
                       " name");
        return NULL;
    }
    //  Its home first, where names made through a cluster are
    size_t home = s_home (self, name);
    agc_conn_t *conn = self->servers [home].conn;
    agc_future_t *future = agc_lookup_send (conn, 0, name);
    agc_agent_t *agent = agc_lookup_handle (conn, &future);
    if (agent)
        return agent;
    int home_status = agc_status ();
    char home_reason [300];
    snprintf (home_reason, sizeof home_reason, "%s", agc_reason ());
    if (home_status == AG_UNREACHABLE)
        s_mark_down (self, home);

    //  Then every other server at once, for a name made on one directly;
    //  those marked unreachable are not asked
    agc_future_t *asked [MAX_SERVERS] = { NULL };
    bool down [MAX_SERVERS] = { false };
    pthread_mutex_lock (&self->lock);
    int64_t now = ag_usecs ();
    for (size_t i = 0; i < self->count; i++)
        down [i] = s_is_down (self, i, now);
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < self->count; i++)
        if (i != home && !down [i])
            asked [i] = agc_lookup_send (self->servers [i].conn, 0, name);
    failures_t unasked = { .status = AG_NO_AGENT };
    for (size_t i = 0; i < self->count; i++) {
        if (i == home)
            continue;
        if (down [i]) {
            s_failed (&unasked, self->servers [i].endpoint, AG_UNREACHABLE,
                      "unreachable of late, not asked");
            continue;
        }
        agc_agent_t *found = agc_lookup_handle (self->servers [i].conn,
                                                &asked [i]);
        if (found && !agent)
            agent = found;
        else
        if (found)
            agc_agent_release (&found);     //  the first found will do
        else
        if (agc_status () != AG_NO_AGENT) {
            if (agc_status () == AG_UNREACHABLE)
                s_mark_down (self, i);
            s_failed (&unasked, self->servers [i].endpoint, agc_status (),
                      agc_reason ());
        }
    }
    if (agent)
        return agent;
    if (home_status != AG_NO_AGENT)
        //  Its home could not be asked: the name may well be there
        agc_set_error (home_status, "no agent named '%s' found; its server"
                       " %s: %s", name, self->servers [home].endpoint,
                       home_reason);
    else
    if (unasked.used)
        agc_set_error (AG_NO_AGENT, "no agent named '%s' on the servers that"
                       " answered; not asked: %s", name, unasked.text);
    else
        agc_set_error (AG_NO_AGENT, "no agent named '%s' on any server of"
                       " the cluster", name);
    return NULL;
}
