/*  =========================================================================
    attack_futures - attacks through references to futures

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The cases whose calls take future references as arguments: a call on
//  its own result (self_reference), two on each other's (cycle), results
//  "on" fake servers that never give them (tarpit) or give 512 MiB
//  (huge_value), and a result on a peer that is not allowed
//  (not_allowed). Each call fails 424 in time, holding no thread, while
//  the victim is served.
//  @end

#include "attack.h"

//  512 KEEP calls, each on its own agent, each whose argument is its own
//  result: none can ever run. Each is answered 424 at once, saying so,
//  and holds no thread meanwhile.
int
at_test_self_reference (void)
{
    size_t calls = at_valgrind? 128: 512;
    const char *args [] = { "--threads-max", "64", NULL };
    daemon_t *daemon = at_daemon_start (NULL, at_valgrind? args: NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    char id [32];
    snprintf (id, sizeof id, "Aself-%d", (int) getpid ());
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, id,
                                 strlen (id), 0);
    CHECK (attacker);
    uint64_t *agents = (uint64_t *) calloc (calls, sizeof *agents);
    int failure;
    char reason [256];
    size_t created = at_create_many (attacker, calls, false, agents, 1000,
                                     30000 * at_slow, &failure, reason,
                                     sizeof reason);
    if (created < calls)
        at_notef ("created %zu agents of %zu: %d %s", created, calls, failure,
                  reason);
    CHECK (created == calls);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    calls_t *sent = at_calls_new (calls);
    for (size_t i = 0; i < calls; i++) {
        ag_value_t *body = at_ref_call ("bump", daemon->endpoint, id,
                                        strlen (id), sent->first + i);
        CHECK (at_calls_send (sent, i, attacker, agents [i], AGP_FLAG_KEEP,
                              body) == 0);
        ag_value_destroy (&body);
    }
    at_calls_collect (sent, attacker, ag_usecs () + 10000000LL * at_slow);
    at_calls_say (sent, "self-referring calls");
    int victim_rc = at_victim_stop (victim);
    int rss_rc = at_rss_within (daemon, base, 64);
    int serves_rc = at_serves (daemon->endpoint);
    CHECK (sent->answered == calls);
    CHECK (at_calls_with (sent, AG_DEP_FAILED) == calls);
    CHECK (at_calls_saying (sent, "never") == calls);
    CHECK (at_calls_max_took (sent) < 1.0 * at_slow);
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    at_calls_destroy (&sent);
    free (agents);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  Two KEEP calls whose arguments refer to each other's results, on one
//  agent and on two: both 424 at once
int
at_test_cycle (void)
{
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    char id [32];
    snprintf (id, sizeof id, "Acycle-%d", (int) getpid ());
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, id,
                                 strlen (id), 0);
    CHECK (attacker);
    uint64_t agents [3];
    int failure;
    char reason [256];
    CHECK (at_create_many (attacker, 3, false, agents, 3, 10000 * at_slow,
                           &failure, reason, sizeof reason) == 3);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    //  One agent: the first waits for the second, queued behind it; two
    //  agents: each waits for the other
    calls_t *variants [2];
    const char *names [2] = { "cycle on one agent", "cycle on two agents" };
    for (int v = 0; v < 2; v++) {
        calls_t *pair = variants [v] = at_calls_new (2);
        for (size_t i = 0; i < 2; i++) {
            ag_value_t *body = at_ref_call ("bump", daemon->endpoint, id,
                                            strlen (id),
                                            pair->first + (1 - i));
            uint64_t agent = v == 0? agents [0]: agents [1 + i];
            CHECK (at_calls_send (pair, i, attacker, agent, AGP_FLAG_KEEP,
                                  body) == 0);
            ag_value_destroy (&body);
        }
        at_calls_collect (pair, attacker, ag_usecs () + 5000000LL * at_slow);
        at_calls_say (pair, names [v]);
    }
    int victim_rc = at_victim_stop (victim);
    int rss_rc = at_rss_within (daemon, base, 64);
    int serves_rc = at_serves (daemon->endpoint);
    for (int v = 0; v < 2; v++) {
        CHECK (variants [v]->answered == 2);
        CHECK (at_calls_with (variants [v], AG_DEP_FAILED) == 2);
        CHECK (at_calls_saying (variants [v], "never") == 2);
        CHECK (at_calls_max_took (variants [v]) < 1.0 * at_slow);
        at_calls_destroy (&variants [v]);
    }
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  Figures of one run against a fake server
typedef struct {
    const char *name;
    bool ran;
    size_t count, answered, failed_dep, os_text, late;
    double slowest;
    int victim;
    int rss;
    int serves;
} tarpit_run_t;

//  600 calls, each on its own agent, each waiting for a result "on" a
//  fake server that never gives one
static int
s_tarpit_run (fake_kind_t kind, tarpit_run_t *run)
{
    size_t calls = at_valgrind? 150: 600;
    const char *args [] = { "--peer", "local", "--future-timeout-ms", "2000",
                            at_valgrind? "--threads-max": NULL, "64", NULL };
    fake_t *fake = at_fake_start (kind);
    CHECK (fake);
    daemon_t *daemon = at_daemon_start (NULL, args);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    char id [32];
    snprintf (id, sizeof id, "Atarpit-%d", (int) getpid ());
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, id,
                                 strlen (id), 0);
    CHECK (attacker);
    uint64_t *agents = (uint64_t *) calloc (calls, sizeof *agents);
    int failure;
    char reason [256];
    CHECK (at_create_many (attacker, calls, false, agents, 1000,
                           30000 * at_slow, &failure, reason, sizeof reason)
           == calls);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    calls_t *sent = at_calls_new (calls);
    for (size_t i = 0; i < calls; i++) {
        ag_value_t *body = at_ref_call ("echo", fake->endpoint, "Cowner", 6,
                                        i + 1);
        CHECK (at_calls_send (sent, i, attacker, agents [i], 0, body) == 0);
        ag_value_destroy (&body);
    }
    //  Long enough to see what an unbounded wait does, then no more
    at_calls_collect (sent, attacker, ag_usecs () + 25000000LL * at_slow);
    at_calls_say (sent, run->name);
    run->ran = true;
    run->count = calls;
    run->answered = sent->answered;
    run->failed_dep = at_calls_with (sent, AG_DEP_FAILED);
    run->os_text = at_calls_os_text (sent);
    run->slowest = at_calls_max_took (sent);
    double bound = 2.0 + 3.0 * at_slow;
    for (size_t i = 0; i < calls; i++)
        run->late += !sent->status [i] || sent->took [i] / 1e6 >= bound;
    at_say ("fake server: %zu connections, %zu messages, %zu sent",
            (size_t) fake->connections, (size_t) fake->messages,
            (size_t) fake->sent);
    run->victim = at_victim_stop (victim);
    run->rss = at_rss_within (daemon, base, 64);
    run->serves = at_serves (daemon->endpoint);
    at_calls_destroy (&sent);
    free (agents);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    at_fake_destroy (fake);
    return 0;
}

//  References to results "on" a TCP tarpit, a ROUTER that answers
//  nothing, and one that answers junk: each call fails 424 within the
//  future timeout (2 s) plus a margin, with no OS error text, while more
//  calls wait than there are threads
int
at_test_tarpit (void)
{
    tarpit_run_t runs [3] = {
        { .name = "TCP tarpit" }, { .name = "silent ROUTER" },
        { .name = "junk ROUTER" }
    };
    fake_kind_t kinds [3] = {
        FAKE_TCP_TARPIT, FAKE_ROUTER_SILENT, FAKE_ROUTER_JUNK
    };
    for (int i = 0; i < 3; i++) {
        at_say ("against a %s:", runs [i].name);
        CHECK (s_tarpit_run (kinds [i], &runs [i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        tarpit_run_t *run = &runs [i];
        CHECK (run->answered == run->count);
        CHECK (run->failed_dep == run->count);
        CHECK (run->late == 0);
        CHECK (run->os_text == 0);
        CHECK (run->victim == 0);
        CHECK (run->rss == 0);
        CHECK (run->serves == 0);
    }
    return 0;
}

//  A fake server answers every FETCH with a 512 MiB value: the call
//  fails 424, and agentd never holds the value
int
at_test_huge_value (void)
{
    fake_t *fake = at_fake_start (FAKE_ROUTER_HUGE);
    CHECK (fake);
    const char *args [] = { "--peer", "local", NULL };
    daemon_t *daemon = at_daemon_start (NULL, args);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Ahuge", 5, 0);
    CHECK (attacker);
    uint64_t agent = at_create_one (attacker);
    CHECK (agent);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    calls_t *sent = at_calls_new (1);
    ag_value_t *body = at_ref_call ("add", fake->endpoint, "Cowner", 6, 1);
    CHECK (at_calls_send (sent, 0, attacker, agent, 0, body) == 0);
    ag_value_destroy (&body);
    at_calls_collect (sent, attacker, ag_usecs () + 60000000LL * at_slow);
    at_calls_say (sent, "call on a huge value");
    at_say ("fake server: %zu FETCHes, answered %zu with 512 MiB, %zu while"
            " the last was still on its way", (size_t) fake->fetches,
            (size_t) fake->sent, (size_t) fake->skipped);
    int victim_rc = at_victim_stop (victim);
    int serves_rc = at_serves (daemon->endpoint);
    int rss_rc = at_rss_within (daemon, base, 128);
    CHECK (sent->answered == 1);
    CHECK (sent->status [0] == AG_DEP_FAILED);
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    at_calls_destroy (&sent);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    at_fake_destroy (fake);
    return 0;
}

//  With no --peer, a reference to another endpoint on loopback fails at
//  once, and the server never connects there
int
at_test_not_allowed (void)
{
    char endpoint [64];
    int listener = at_tcp_listener (endpoint, sizeof endpoint);
    CHECK (listener >= 0);
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Apeer", 5, 0);
    CHECK (attacker);
    uint64_t agent = at_create_one (attacker);
    CHECK (agent);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    calls_t *sent = at_calls_new (1);
    ag_value_t *body = at_ref_call ("echo", endpoint, "Cowner", 6, 1);
    CHECK (at_calls_send (sent, 0, attacker, agent, 0, body) == 0);
    ag_value_destroy (&body);
    at_calls_collect (sent, attacker, ag_usecs () + 20000000LL * at_slow);
    at_calls_say (sent, "reference to a peer not allowed");
    //  A connection attempt would be waiting in the listen queue
    struct pollfd item = { listener, POLLIN, 0 };
    bool connected = poll (&item, 1, 1000 * at_slow) > 0;
    at_say ("the listener %s a connection", connected? "saw": "never saw");
    if (connected)
        at_notef ("agentd connected to %s", endpoint);
    close (listener);
    int victim_rc = at_victim_stop (victim);
    int rss_rc = at_rss_within (daemon, base, 64);
    int serves_rc = at_serves (daemon->endpoint);
    CHECK (sent->answered == 1);
    CHECK (sent->status [0] == AG_DEP_FAILED);
    CHECK (at_calls_saying (sent, "not allowed") == 1);
    CHECK (at_calls_os_text (sent) == 0);
    CHECK (at_calls_max_took (sent) < 1.0 * at_slow);
    CHECK (!connected);
    CHECK (victim_rc == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    at_calls_destroy (&sent);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}
