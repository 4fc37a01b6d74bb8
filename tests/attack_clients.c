/*  =========================================================================
    attack_clients - one client posing as many, or taking too much

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The cases on what one client may take: 100 routing ids on one DEALER
//  (many_routing_ids), as many agents as it can create
//  (agents_per_client), and 20,000 FETCHes of keys nobody made
//  (fetch_flood). The limits hold that client back, and every other
//  client is still served.
//  @end

#include "attack.h"

//  Wait until LIST shows the agent busy (its call runs), by the deadline
static bool
s_wait_busy (agc_conn_t *conn, uint64_t agent, int64_t deadline)
{
    while (ag_usecs () < deadline) {
        ag_value_t *list;
        if (at_roundtrip (conn, AGP_LIST, 0, 0, NULL, at_left_ms (deadline),
                          &list, NULL, 0) == AG_OK) {
            const msgpack_object *agents = ag_value_object (list);
            for (size_t i = 0; i < ag_obj_count (agents); i++) {
                const msgpack_object *entry = ag_obj_at (agents, i);
                if ((uint64_t) ag_obj_int (ag_obj_get (entry, "id"), 0) == agent
                &&  ag_obj_bool (ag_obj_get (entry, "busy"), false)) {
                    ag_value_destroy (&list);
                    return true;
                }
            }
        }
        ag_value_destroy (&list);
        struct pollfd none = { -1, 0, 0 };
        poll (&none, 1, 10);        //  asked again in a while
    }
    return false;
}

typedef struct {
    const char *name;
    size_t count, answered, busy, named;
    int victim;
    int rss;
    int serves;
} routing_run_t;

//  One DEALER, 100 routing ids, 100 connections to one endpoint, and
//  calls to an agent that naps, sent over them all
static int
s_routing_run (bool ipc, routing_run_t *run)
{
    size_t calls = at_valgrind? 2500: 10000;
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/routing.sock", at_dir);
    //  Over ipc, a tcp endpoint as well, for the clients that are not
    //  the attacker
    const char *both [] = { "--max-pending", "100", "-e",
                            "tcp://127.0.0.1:*", NULL };
    const char *alone [] = { "--max-pending", "100", NULL };
    daemon_t *daemon = at_daemon_start (ipc? endpoint: NULL,
                                        ipc? both: alone);
    CHECK (daemon);
    char tcp [340];
    snprintf (tcp, sizeof tcp, "%s", daemon->endpoint);
    if (ipc) {
        char line [340];
        CHECK (tl_read_line (daemon->out, line, sizeof line, 10000 * at_slow)
               > 13);
        CHECK (strncmp (line, "listening on ", 13) == 0);
        snprintf (tcp, sizeof tcp, "%s", line + 13);
    }
    victim_t *victim = at_victim_start (tcp);
    CHECK (victim);
    //  An agent busy in a nap, made and called by another client
    agc_conn_t *helper = agc_conn_new (tcp);
    int status;
    char reason [256];
    uint64_t agent = at_create (helper, false, &status, reason, sizeof reason);
    CHECK (agent);
    ag_value_t *nap = ag_value_new ("[s, {s:i}]", "nap", "ms",
                                    (int64_t) 3000 * at_slow);
    agc_future_t *napping = agc_conn_request (helper, AGP_CALL, agent, 0,
                                              ag_value_data (nap),
                                              ag_value_size (nap));
    ag_value_destroy (&nap);
    CHECK (s_wait_busy (helper, agent, ag_usecs () + 10000000LL * at_slow));
    int64_t base = tl_peak_rss_kib (daemon->pid);
    void *attacker = at_raw_new (ZMQ_DEALER, NULL, NULL, 0, 0);
    CHECK (attacker);
    //  ZeroMQ connects once to an endpoint named twice: each of the 100
    //  names it differently. Over ipc a symbolic link to the socket;
    //  over tcp the same port from another loopback source address.
    for (int i = 0; i < 100; i++) {
        char id [32], path [300], spelling [400];
        snprintf (id, sizeof id, "Amany-%d-%03d", (int) getpid (), i);
        zmq_setsockopt (attacker, ZMQ_ROUTING_ID, id, strlen (id));
        if (ipc) {
            snprintf (path, sizeof path, "%s/routing-%03d", at_dir, i);
            unlink (path);
            CHECK (symlink ("routing.sock", path) == 0);
            snprintf (spelling, sizeof spelling, "ipc://%s", path);
        }
        else
            snprintf (spelling, sizeof spelling, "tcp://127.0.0.%d:0;%s",
                      i + 1, tcp + 6);
        CHECK (zmq_connect (attacker, spelling) == 0);
    }
    calls_t *sent = at_calls_new (calls);
    ag_value_t *add = ag_value_new ("[s, i]", "add", (int64_t) 1);
    for (size_t i = 0; i < calls; i++)
        CHECK (at_calls_send (sent, i, attacker, agent, 0, add) == 0);
    ag_value_destroy (&add);
    at_calls_collect (sent, attacker, ag_usecs () + 30000000LL * at_slow);
    at_calls_say (sent, run->name);
    run->count = calls;
    run->answered = sent->answered;
    run->busy = at_calls_with (sent, AG_BUSY);
    run->named = at_calls_saying (sent, "server/max_pending_per_client");
    at_say ("%zu refused 302, %zu naming server/max_pending_per_client",
            run->busy, run->named);
    CHECK (agc_future_wait (napping, 30000 * at_slow) == 0);
    agc_future_destroy (&napping);
    agc_conn_destroy (&helper);
    run->victim = at_victim_stop (victim);
    run->rss = at_rss_within (daemon, base, 64);
    run->serves = at_serves (tcp);
    at_calls_destroy (&sent);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  A client that takes 100 routing ids: over ipc the process is one
//  client, held to its limit of pending requests; over tcp each
//  connection is one, and the others are still served
int
at_test_many_routing_ids (void)
{
    routing_run_t runs [2] = {
        { .name = "calls over ipc, 100 routing ids" },
        { .name = "calls over tcp, 100 routing ids" }
    };
    for (int i = 0; i < 2; i++)
        CHECK (s_routing_run (i == 0, &runs [i]) == 0);
    for (int i = 0; i < 2; i++)
        at_notef ("%s: %zu of %zu answered, %zu refused 302", runs [i].name,
                  runs [i].answered, runs [i].count, runs [i].busy);
    //  ipc: at most 100 pending, and a few that ran before the nap
    CHECK (runs [0].answered == runs [0].count);
    CHECK (runs [0].busy >= runs [0].count - 200);
    CHECK (runs [0].named == runs [0].busy);
    for (int i = 0; i < 2; i++) {
        CHECK (runs [i].answered == runs [i].count);
        CHECK (runs [i].victim == 0);
        CHECK (runs [i].rss == 0);
        CHECK (runs [i].serves == 0);
    }
    return 0;
}

//  With --max-agents 1000 a client may own a tenth, detached agents
//  included; another client can still create
int
at_test_agents_per_client (void)
{
    const char *args [] = { "--max-agents", "1000", NULL };
    daemon_t *daemon = at_daemon_start (NULL, args);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    agc_conn_t *greedy = agc_conn_new (daemon->endpoint);
    int status = AG_OK;
    char reason [256] = "";
    int made = 0;
    while (made < 2000) {
        if (!at_create (greedy, made % 2 == 1, &status, reason, sizeof reason))
            break;
        made++;
    }
    at_say ("one client created %d agents (owned and detached in turn),"
            " then %d: %s", made, status, reason);
    agc_conn_t *other = agc_conn_new (daemon->endpoint);
    int other_status;
    char other_reason [256];
    uint64_t other_agent = at_create (other, false, &other_status,
                                      other_reason, sizeof other_reason);
    at_say ("another client then: %d %s", other_status, other_reason);
    if (made != 100 || !other_agent)
        at_notef ("created %d, then %d: %s; another client then %d: %s", made,
                  status, reason, other_status, other_reason);
    int victim_rc = at_victim_stop (victim);
    int rss_rc = at_rss_within (daemon, base, 64);
    int serves_rc = at_serves (daemon->endpoint);
    CHECK (made == 100);
    CHECK (status == AG_BUSY);
    CHECK (strstr (reason, "server/max_agents_per_client"));
    CHECK (other_agent);
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    agc_conn_destroy (&greedy);
    agc_conn_destroy (&other);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  The FETCH key (owner, corr) of a kept call's future
static int
s_fetch_key (agc_future_t *future, uint8_t *owner, size_t *owner_size,
             uint64_t *corr)
{
    ag_value_t *ref = agc_future_ref (future);
    if (!ref)
        return -1;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 512);
    agp_ref_t key;
    const char *reason;
    int rc = agp_ref_decode (&key, ag_value_object (ref), &zone, &reason);
    if (rc == 0) {
        memcpy (owner, key.owner.ptr, key.owner.len);
        *owner_size = key.owner.len;
        *corr = key.corr;
    }
    msgpack_zone_destroy (&zone);
    ag_value_destroy (&ref);
    return rc;
}

//  A KEEP call of the victim, waited for; its FETCH body into *fetch
static int
s_kept_call (agc_conn_t *conn, uint64_t agent, const char *tag,
             ag_value_t **fetch)
{
    ag_value_t *body = ag_value_new ("[s, s]", "echo_async", tag);
    agc_future_t *future = agc_conn_request (conn, AGP_CALL, agent,
                                             AGP_FLAG_KEEP,
                                             ag_value_data (body),
                                             ag_value_size (body));
    ag_value_destroy (&body);
    uint8_t owner [256];
    size_t owner_size;
    uint64_t corr;
    int rc = -1;
    if (agc_future_wait (future, 10000 * at_slow) == 0
    &&  agc_future_status (future) == AG_OK
    &&  s_fetch_key (future, owner, &owner_size, &corr) == 0) {
        *fetch = ag_value_new ("[B, u]", owner, owner_size, corr);
        rc = 0;
    }
    agc_future_destroy (&future);
    return rc;
}

//  FETCH a kept result: 0 if it is there and holds tag
static int
s_fetch_tag (agc_conn_t *conn, const ag_value_t *fetch, const char *tag)
{
    ag_value_t *value;
    char reason [256];
    int status = at_roundtrip (conn, AGP_FETCH, 0, 0, fetch, 10000 * at_slow,
                               &value, reason, sizeof reason);
    bool same = status == AG_OK && ag_obj_streq (ag_value_object (value),
                                                 tag);
    at_say ("FETCH of the victim's '%s': %d%s%s", tag, status,
            status == AG_OK? "": ", ", status == AG_OK? "": reason);
    if (!same)
        at_notef ("FETCH of the victim's '%s': %d %s", tag, status, reason);
    ag_value_destroy (&value);
    return same? 0: -1;
}

//  20,000 FETCHes of keys nobody made: the victim's kept results stay
int
at_test_fetch_flood (void)
{
    size_t fetches = 20000;
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    //  The victim's kept result, before the flood
    agc_conn_t *keeper = agc_conn_new (daemon->endpoint);
    int status;
    char reason [256];
    uint64_t agent = at_create (keeper, false, &status, reason, sizeof reason);
    CHECK (agent);
    ag_value_t *first = NULL, *during = NULL, *after = NULL;
    CHECK (s_kept_call (keeper, agent, "kept-before", &first) == 0);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Afetch", 6, 0);
    CHECK (attacker);
    int64_t start = ag_usecs ();
    size_t bytes = 0, sent = 0;
    for (size_t i = 0; i < fetches; i++) {
        uint8_t owner [16];
        owner [0] = 'C';
        for (size_t j = 1; j < sizeof owner; j++)
            owner [j] = (uint8_t) random ();
        ag_value_t *body = ag_value_new ("[B, u]", owner, sizeof owner,
                                         (uint64_t) random ());
        bytes += ag_value_size (body);
        sent += at_raw_send_value (attacker, AGP_FETCH, 0, ++at_corr, 0, body)
                == 0;
        ag_value_destroy (&body);
    }
    at_say ("%zu FETCHes of random keys sent (%zu KB of bodies) in %.2f s",
            sent, bytes / 1000, tl_seconds_since (start));
    //  A KEEP call while they wait
    int during_rc = s_kept_call (keeper, agent, "kept-during", &during);
    //  Every FETCH answered: 410 once it has waited for its call
    size_t answered = 0, gone = 0, busy = 0;
    int64_t deadline = ag_usecs () + 20000000LL * at_slow;
    while (answered < sent) {
        agp_envelope_t env;
        zmq_msg_t frame;
        if (at_raw_recv (attacker, at_left_ms (deadline), &env, &frame))
            break;
        if (env.command == (AGP_FETCH | AGP_REPLY)) {
            answered++;
            gone += env.word == AG_GONE;
            busy += env.word == AG_BUSY;
        }
        zmq_msg_close (&frame);
    }
    at_say ("%zu FETCHes answered in %.2f s: %zu 410, %zu 302", answered,
            tl_seconds_since (start), gone, busy);
    int after_rc = s_kept_call (keeper, agent, "kept-after", &after);
    int first_rc = s_fetch_tag (keeper, first, "kept-before");
    int during_fetch = during_rc? -1: s_fetch_tag (keeper, during,
                                                   "kept-during");
    int after_fetch = after_rc? -1: s_fetch_tag (keeper, after, "kept-after");
    int victim_rc = at_victim_stop (victim);
    int rss_rc = at_rss_within (daemon, base, 64);
    int serves_rc = at_serves (daemon->endpoint);
    CHECK (sent == fetches);
    CHECK (answered == sent);
    CHECK (first_rc == 0);
    CHECK (during_fetch == 0);
    CHECK (after_fetch == 0);
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    ag_value_destroy (&first);
    ag_value_destroy (&during);
    ag_value_destroy (&after);
    agc_conn_destroy (&keeper);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}
