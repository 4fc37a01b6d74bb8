/*  =========================================================================
    attacktest - no client can wedge, flood or starve the server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  attacktest BUILD_DIR [-v] [-n NAME]: each case starts a real agentd,
//  a victim (a client of its own, with an idle Counter) and an attacker
//  speaking raw AGP over a raw ZeroMQ socket, or fake servers of its own
//  (a TCP tarpit, ROUTERs that answer nothing, junk or huge values).
//  While the attack runs the victim's PING and a sync CALL on its idle
//  agent must each be answered within 1 s, the daemon's peak RSS must
//  stay within the configured budget plus a margin, and afterwards a new
//  client must be served as usual. Nothing waits on a sleep: readiness is
//  agentd's "listening on" line, replies are polled for with deadlines,
//  the victim paces itself on a pipe that tells it to stop, fake servers
//  tick on poll timeouts, a connection's close is its socket monitor's
//  event or its TCP socket's state. Every daemon binds an ephemeral
//  loopback port or an ipc path (the restart case binds the same port
//  again), and every helper thread stops by itself after a while. With
//  AGTEST_VALGRIND=1 agentd runs under valgrind, loops are smaller and
//  bounds wider. ATTACKTEST_OLD=1 leaves out the options an agentd from
//  before the budgets does not know (--max-agents-per-client goes in a
//  configuration file), to measure one. -v prints the figures of each
//  case; ATTACKTEST_LOG=1 shows agentd's log. Ends with "N passed, N
//  failed". The helpers are in attack_lib.c, attack_raw.c and
//  attack_fake.c (declared in attack.h), the cases on future references
//  in attack_futures.c, on memory in attack_memory.c and on what one
//  client may take in attack_clients.c. This file holds the broker's
//  cost under 40 clients paging through a million agents (list_storm), a
//  restart on the same port (restart_same_port), the table of cases and
//  main.
//  @end

#include "attack.h"

//  40 clients paging through every agent with LIST, as fast as replies
//  come: one thread, one DEALER each
typedef struct {
    const char *endpoint;
    size_t clients;
    int stop [2];
    int started [2];                //  written once each got a reply
    pthread_t thread;
    atomic_uint_fast64_t pages;     //  replies
    atomic_uint_fast64_t rounds;    //  walks through all agents
    atomic_uint_fast64_t whole;     //  replies holding more than a page
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t entries;
} storm_t;


#define LIST_PAGE 1000

//  Reading a LIST page with as little work as can be, so the storm's
//  own thread takes little of the machine the daemon and the victim
//  share: the msgpack is walked, not decoded

//  A big-endian unsigned of size octets at *p, moved past; -1 if short
static int64_t
s_mp_uint (const uint8_t **p, const uint8_t *end, size_t size)
{
    if ((size_t) (end - *p) < size)
        return -1;
    uint64_t value = 0;
    for (size_t i = 0; i < size; i++)
        value = value << 8 | *(*p)++;
    return value > INT64_MAX? -1: (int64_t) value;
}

//  The element count of an array (or pairs of a map, if map) at *p,
//  moved past its header; -1 if it is not one
static int64_t
s_mp_count (const uint8_t **p, const uint8_t *end, bool map)
{
    if (*p >= end)
        return -1;
    uint8_t byte = *(*p)++;
    if ((byte & 0xf0) == (map? 0x80: 0x90))
        return byte & 0x0f;
    if (byte == (map? 0xde: 0xdc))
        return s_mp_uint (p, end, 2);
    if (byte == (map? 0xdf: 0xdd))
        return s_mp_uint (p, end, 4);
    return -1;
}

//  Move *p past one object; -1 if malformed
static int
s_mp_skip (const uint8_t **p, const uint8_t *end, int depth)
{
    if (*p >= end || depth > 32)
        return -1;
    uint8_t byte = **p;
    int64_t items = 0, octets = 0;
    if ((byte & 0xe0) == 0x80 || byte == 0xde || byte == 0xdf
    ||  (byte & 0xf0) == 0x90 || byte == 0xdc || byte == 0xdd) {
        bool map = (byte & 0xf0) == 0x80 || byte == 0xde || byte == 0xdf;
        items = s_mp_count (p, end, map);
        if (items < 0)
            return -1;
        items *= map? 2: 1;
        for (int64_t i = 0; i < items; i++)
            if (s_mp_skip (p, end, depth + 1))
                return -1;
        return 0;
    }
    (*p)++;
    if (byte <= 0x7f || byte >= 0xe0 || byte == 0xc0 || byte == 0xc2
    ||  byte == 0xc3)
        octets = 0;
    else
    if ((byte & 0xe0) == 0xa0)
        octets = byte & 0x1f;
    else
    switch (byte) {
        case 0xcc: case 0xd0: octets = 1; break;
        case 0xcd: case 0xd1: octets = 2; break;
        case 0xca: case 0xce: case 0xd2: octets = 4; break;
        case 0xcb: case 0xcf: case 0xd3: octets = 8; break;
        case 0xd4: octets = 2; break;
        case 0xd5: octets = 3; break;
        case 0xd6: octets = 5; break;
        case 0xd7: octets = 9; break;
        case 0xd8: octets = 17; break;
        case 0xc4: case 0xd9: octets = s_mp_uint (p, end, 1); break;
        case 0xc5: case 0xda: octets = s_mp_uint (p, end, 2); break;
        case 0xc6: case 0xdb: octets = s_mp_uint (p, end, 4); break;
        case 0xc7: octets = s_mp_uint (p, end, 1) + 1; break;
        case 0xc8: octets = s_mp_uint (p, end, 2) + 1; break;
        case 0xc9: octets = s_mp_uint (p, end, 4) + 1; break;
        default: return -1;
    }
    if (octets < 0 || octets > end - *p)
        return -1;
    *p += octets;
    return 0;
}

//  The "id" of an agent map at *p (moved past it), or -1
static int64_t
s_mp_agent_id (const uint8_t **p, const uint8_t *end)
{
    int64_t pairs = s_mp_count (p, end, true);
    int64_t id = -1;
    for (int64_t i = 0; i < pairs; i++) {
        const uint8_t *key = *p;
        if (s_mp_skip (p, end, 1))
            return -1;
        bool is_id = (*p - key == 3 && memcmp (key, "\xa2" "id", 3) == 0)
                  || (*p - key == 4 && memcmp (key, "\xd9\x02" "id", 4) == 0);
        if (is_id && *p < end) {
            uint8_t byte = **p;
            if (byte <= 0x7f) {
                id = byte;
                (*p)++;
                continue;
            }
            if (byte >= 0xcc && byte <= 0xcf) {
                (*p)++;
                id = s_mp_uint (p, end, (size_t) 1 << (byte - 0xcc));
                continue;
            }
        }
        if (s_mp_skip (p, end, 1))
            return -1;
    }
    return id;
}

//  A LIST reply's body: its number of agents (-1 if malformed), and the
//  id of its last agent into *last
static int64_t
s_list_page (const uint8_t *data, size_t size, uint64_t *last)
{
    const uint8_t *p = data, *end = data + size;
    int64_t count = s_mp_count (&p, end, false);
    *last = 0;
    if (count <= 0 || count > LIST_PAGE)
        return count;               //  empty, malformed, or not a page
    for (int64_t i = 0; i < count - 1; i++)
        if (s_mp_skip (&p, end, 1))
            return -1;
    int64_t id = s_mp_agent_id (&p, end);
    if (id <= 0 || p != end)
        return -1;
    *last = (uint64_t) id;
    return count;
}

//  The next LIST a client asks for: the page after its last id
static int
s_storm_ask (void *socket, uint64_t after, uint64_t corr)
{
    ag_value_t *body = after?
        ag_value_new ("{s:u, s:i}", "after", after, "limit",
                      (int64_t) LIST_PAGE):
        ag_value_new ("{s:i}", "limit", (int64_t) LIST_PAGE);
    int rc = at_raw_send_value (socket, AGP_LIST, 0, corr, 0, body);
    ag_value_destroy (&body);
    return rc;
}

static void *
s_storm_run (void *arg)
{
    storm_t *self = (storm_t *) arg;
    void *sockets [64];
    uint64_t after [64] = { 0 };
    bool replied [64] = { false };
    size_t replied_count = 0;
    zmq_pollitem_t items [65];
    items [0] = (zmq_pollitem_t) { NULL, self->stop [0], ZMQ_POLLIN, 0 };
    for (size_t i = 0; i < self->clients; i++) {
        sockets [i] = zmq_socket (at_context, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt (sockets [i], ZMQ_LINGER, &zero, sizeof zero);
        char id [32];
        snprintf (id, sizeof id, "Lstorm-%zu", i);
        zmq_setsockopt (sockets [i], ZMQ_ROUTING_ID, id, strlen (id));
        zmq_connect (sockets [i], self->endpoint);
        items [1 + i] = (zmq_pollitem_t) { sockets [i], 0, ZMQ_POLLIN, 0 };
        s_storm_ask (sockets [i], 0, 1);
    }
    uint64_t corr = 1;
    int64_t until = at_thread_until ();
    while (ag_usecs () < until) {
        if (zmq_poll (items, (int) self->clients + 1, 1000) < 0)
            break;
        if (items [0].revents)
            break;
        for (size_t i = 0; i < self->clients; i++) {
            if (!(items [1 + i].revents & ZMQ_POLLIN))
                continue;
            agp_envelope_t env;
            zmq_msg_t frame;
            if (at_raw_recv (sockets [i], 0, &env, &frame))
                continue;
            self->pages++;
            if (!replied [i]) {
                replied [i] = true;
                if (++replied_count == self->clients
                &&  write (self->started [1], "x", 1) != 1)
                    self->errors++;
            }
            uint64_t last = 0;
            int64_t count = env.word == AG_OK? s_list_page (
                agp_msg_body (&frame), agp_msg_body_size (&frame), &last): -1;
            if (count < 0) {
                self->errors++;
                after [i] = 0;
            }
            else
            if (count > LIST_PAGE) {
                //  Not paged: the whole table each time
                self->whole++;
                self->entries += (uint64_t) count;
                self->rounds++;
                after [i] = 0;
            }
            else {
                //  Pages go up: a page that does not is an error
                if (count && last <= after [i])
                    self->errors++;
                self->entries += (uint64_t) count;
                after [i] = last;
                if (count < LIST_PAGE) {
                    self->rounds++;
                    after [i] = 0;
                }
            }
            zmq_msg_close (&frame);
            s_storm_ask (sockets [i], after [i], ++corr);
        }
    }
    for (size_t i = 0; i < self->clients; i++)
        zmq_close (sockets [i]);
    return NULL;
}

static void
s_storm_stop (void *arg)
{
    storm_t *self = (storm_t *) arg;
    at_undefer (self);
    if (write (self->stop [1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    for (int i = 0; i < 2; i++) {
        close (self->stop [i]);
        close (self->started [i]);
    }
    free (self);
}

static storm_t *
s_storm_start (const char *endpoint, size_t clients)
{
    storm_t *self = (storm_t *) calloc (1, sizeof (storm_t));
    if (!self)
        return NULL;
    self->endpoint = endpoint;
    self->clients = clients;
    if (pipe2 (self->stop, O_CLOEXEC)) {
        free (self);
        return NULL;
    }
    if (pipe2 (self->started, O_CLOEXEC)
    ||  pthread_create (&self->thread, NULL, s_storm_run, self)) {
        close (self->stop [0]);
        close (self->stop [1]);
        free (self);
        return NULL;
    }
    at_defer (s_storm_stop, self);
    return self;
}

static int
s_compare_us (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y? -1: x > y;
}

//  The 99th percentile of count figures (sorted here)
static int64_t
s_p99 (int64_t *figures, size_t count)
{
    if (!count)
        return 0;
    qsort (figures, count, sizeof *figures, s_compare_us);
    size_t at = (count * 99 + 99) / 100;
    return figures [at? at - 1: 0];
}

//  PINGs one after another, each timed, up to count or until the
//  deadline; how many went out
static size_t
s_ping_times (agc_conn_t *conn, int64_t *figures, size_t count,
              int64_t deadline, size_t *failed)
{
    size_t done = 0;
    while (done < count && ag_usecs () < deadline) {
        int64_t start = ag_usecs ();
        int status = at_roundtrip (conn, AGP_PING, 0, 0, NULL,
                                   5000 * at_slow, NULL, NULL, 0);
        figures [done++] = ag_usecs () - start;
        *failed += status != AG_OK;
    }
    return done;
}

//  A million agents, and 40 clients paging through them with LIST
//  without pause: the victim's PING p99 stays within 20 times what it is
//  without them
static int
s_test_list_storm (void)
{
    size_t agents = at_valgrind? 20000: 1000000;
    size_t pings = at_valgrind? 200: 2000;
    const char *args [] = { "--max-agents", "2000000",
                            "--max-agents-per-client", "2000000", NULL };
    daemon_t *daemon = at_daemon_start (NULL, args);
    CHECK (daemon);
    void *creator = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Acreator", 8,
                                0);
    CHECK (creator);
    int failure;
    char reason [256];
    int64_t start = ag_usecs ();
    size_t created = at_create_many (creator, agents, true, NULL, 4000,
                                     300000 * at_slow, &failure, reason,
                                     sizeof reason);
    double took = tl_seconds_since (start);
    at_say ("%zu agents created in %.2f s (%.0f a second)", created, took,
            created / (took > 0? took: 1));
    if (created < agents)
        at_notef ("created %zu agents: %d %s", created, failure, reason);
    CHECK (created == agents);
    at_raw_destroy (creator);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    agc_conn_t *victim = agc_conn_new (daemon->endpoint);
    int64_t *before = (int64_t *) calloc (pings, sizeof (int64_t));
    int64_t *during = (int64_t *) calloc (pings, sizeof (int64_t));
    size_t failed_before = 0, failed_during = 0;
    //  Connected and warm first
    at_roundtrip (victim, AGP_PING, 0, 0, NULL, 10000 * at_slow, NULL, NULL, 0);
    size_t quiet = s_ping_times (victim, before, pings,
                                 ag_usecs () + 30000000LL * at_slow,
                                 &failed_before);
    storm_t *storm = s_storm_start (daemon->endpoint, 40);
    CHECK (storm);
    //  Once every client has had a reply, the storm is on
    struct pollfd item = { storm->started [0], POLLIN, 0 };
    bool on = poll (&item, 1, 60000 * at_slow) > 0;
    start = ag_usecs ();
    uint64_t pages = storm->pages;
    size_t busy = s_ping_times (victim, during, pings,
                                ag_usecs () + 60000000LL * at_slow,
                                &failed_during);
    double storm_took = tl_seconds_since (start);
    pages = storm->pages - pages;
    uint64_t whole = storm->whole, errors = storm->errors;
    at_say ("LIST clients: %" PRIu64 " replies, %" PRIu64 " of them the whole"
            " table, %" PRIu64 " failed, %" PRIu64 " walks through all",
            (uint64_t) storm->pages, whole, errors, (uint64_t) storm->rounds);
    s_storm_stop (storm);
    int64_t p99_before = s_p99 (before, quiet);
    int64_t p99_during = s_p99 (during, busy);
    int64_t max_during = busy? during [busy - 1]: 0;
    at_say ("PING p99 %.3f ms over %zu without LIST; %.3f ms (max %.3f ms)"
            " over %zu while 40 clients LIST (%.0f pages a second, %s)",
            p99_before / 1000.0, quiet, p99_during / 1000.0,
            max_during / 1000.0, busy, pages / (storm_took > 0? storm_took: 1),
            on? "all had replies": "not all had a reply");
    //  Under valgrind, which runs one of the daemon's threads at a time,
    //  a ratio of latencies says more about its scheduler than about the
    //  daemon: there the victim's bound applies instead
    int64_t bound = at_valgrind? at_victim_bound_us (): 20 * p99_before;
    if (p99_during > bound || busy < pings)
        at_notef ("PING p99 %.3f ms without LIST, %.3f ms with (%zu pings)",
                  p99_before / 1000.0, p99_during / 1000.0, busy);
    int rss_rc = at_rss_within (daemon, base, DEFAULT_CLIENT_BYTES / MIB + 64);
    int serves_rc = at_serves (daemon->endpoint);
    free (before);
    free (during);
    agc_conn_destroy (&victim);
    CHECK (quiet == pings && failed_before == 0);
    CHECK (on);
    CHECK (busy == pings && failed_during == 0);
    CHECK (p99_during <= bound);
    CHECK (whole == 0 && errors == 0);
    CHECK (rss_rc == 0);
    CHECK (serves_rc == 0);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  The instance id a server's PING reply carries, into id; 0 if it has
//  16 hex digits
static int
s_instance (const char *endpoint, char *id, size_t size)
{
    agc_conn_t *conn = agc_conn_new (endpoint);
    ag_value_t *value;
    int status = at_roundtrip (conn, AGP_PING, 0, 0, NULL, 10000 * at_slow,
                               &value, NULL, 0);
    char *text = ag_obj_strdup (ag_obj_get (ag_value_object (value),
                                            "instance"));
    snprintf (id, size, "%s", text? text: "");
    free (text);
    ag_value_destroy (&value);
    //  INFO says the same
    ag_value_t *info;
    if (status == AG_OK)
        status = at_roundtrip (conn, AGP_INFO, 0, 0, NULL, 10000 * at_slow,
                               &info, NULL, 0);
    bool same = status == AG_OK
             && ag_obj_streq (ag_obj_get (ag_value_object (info), "instance"),
                              id);
    if (status == AG_OK)
        ag_value_destroy (&info);
    agc_conn_destroy (&conn);
    if (strlen (id) != 16 || !same)
        return -1;
    for (int i = 0; i < 16; i++)
        if (!isxdigit ((unsigned char) id [i]))
            return -1;
    return 0;
}

//  A thread that waits for a future without a deadline
typedef struct {
    agc_future_t *future;
    int done [2];                   //  written when the wait returned
    int64_t returned;               //  usecs
} forever_t;

static void *
s_forever_run (void *arg)
{
    forever_t *self = (forever_t *) arg;
    agc_future_wait (self->future, AGC_FOREVER);
    self->returned = ag_usecs ();
    if (write (self->done [1], "x", 1) != 1)
        fprintf (stderr, "attacktest: cannot signal a wait's end\n");
    return NULL;
}

//  A call pending on a connection: a slow one, known to have arrived
static agc_future_t *
s_pending_slow (agc_conn_t *conn)
{
    int status;
    char reason [256];
    uint64_t agent = at_create (conn, false, &status, reason, sizeof reason);
    if (!agent)
        return NULL;
    ag_value_t *slow = ag_value_new ("[s, {s:i}]", "slow", "ms",
                                     (int64_t) 30000);
    agc_future_t *future = agc_conn_request (conn, AGP_CALL, agent,
                                             AGP_FLAG_KEEP,
                                             ag_value_data (slow),
                                             ag_value_size (slow));
    ag_value_destroy (&slow);
    //  A PING after it on the same connection: answered once it is in
    at_roundtrip (conn, AGP_PING, 0, 0, NULL, 10000 * at_slow, NULL, NULL, 0);
    return future;
}

//  agentd killed while calls are pending, and another started on its
//  port: the client fails them at once, whether it sees the connection
//  drop (it does, when the process dies) or a new instance behind it
//  (agtest's restart_behind has a server restarted behind a connection
//  that did not drop)
static int
s_test_restart_same_port (void)
{
    int timeout = 4000 * at_slow;
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    char endpoint [320];
    snprintf (endpoint, sizeof endpoint, "%s", daemon->endpoint);
    char first_id [64], second_id [64];
    int first_rc = s_instance (endpoint, first_id, sizeof first_id);
    agc_conn_t *conn = agc_conn_new (endpoint);
    agc_conn_set_timeout (conn, timeout);
    agc_future_t *pending = s_pending_slow (conn);
    CHECK (pending);
    //  A second client waits without a deadline
    static forever_t forever;
    forever = (forever_t) { .future = NULL };
    agc_conn_t *patient = agc_conn_new (endpoint);
    agc_conn_set_timeout (patient, timeout);
    forever.future = s_pending_slow (patient);
    CHECK (forever.future);
    CHECK (pipe2 (forever.done, O_CLOEXEC) == 0);
    pthread_t waiter;
    CHECK (pthread_create (&waiter, NULL, s_forever_run, &forever) == 0);

    kill (daemon->pid, SIGKILL);
    CHECK (tl_proc_reap (daemon, 10000 * at_slow) == 128 + SIGKILL);
    at_undefer (daemon);
    free (daemon);
    int64_t killed = ag_usecs ();
    daemon = at_daemon_start (endpoint, NULL);
    CHECK (daemon);
    CHECK (streq (daemon->endpoint, endpoint));
    //  Ready once a new client's PING is answered
    int second_rc = s_instance (endpoint, second_id, sizeof second_id);
    int64_t ready = ag_usecs ();
    at_say ("restarted on %s: up again %.3f s after the kill, instance %s"
            " then %s", endpoint, (ready - killed) / 1e6,
            first_id [0]? first_id: "(none)",
            second_id [0]? second_id: "(none)");
    //  Told within a ping interval of the new server answering, and a
    //  margin
    int64_t bound = (int64_t) timeout * 250 + 2000000LL * at_slow;
    agc_future_wait (pending, (int) ((bound + 8000000LL * at_slow) / 1000));
    int64_t failed = ag_usecs ();
    int status = agc_future_status (pending);
    char reason [300];
    snprintf (reason, sizeof reason, "%s", agc_future_reason (pending));
    struct pollfd item = { forever.done [0], POLLIN, 0 };
    bool returned = poll (&item, 1, (int) (bound / 1000)) > 0;
    int forever_status = returned? agc_future_status (forever.future): 0;
    at_say ("pending call: %d '%s' %.3f s after the new server was up",
            status, reason, (failed - ready) / 1e6);
    at_say ("the wait without deadline %s%s%s", returned? "returned: "
            : "still waits", returned? agc_future_reason (forever.future): "",
            "");
    bool told = strstr (reason, "restarted") || strstr (reason, "dropped");
    if (status != AG_UNREACHABLE || !told || failed - ready >= bound)
        at_notef ("pending call %d '%s' %.3f s after the new server was up",
                  status, reason, (failed - ready) / 1e6);
    if (!returned)
        at_notef ("a wait without deadline still waits");
    int serves_rc = at_serves (endpoint);
    CHECK (status == AG_UNREACHABLE);
    CHECK (told);
    CHECK (failed - ready < bound);
    CHECK (returned);
    pthread_join (waiter, NULL);
    CHECK (forever_status == AG_UNREACHABLE);
    CHECK (strstr (agc_future_reason (forever.future), "restarted")
        || strstr (agc_future_reason (forever.future), "dropped"));
    CHECK (first_rc == 0 && second_rc == 0);
    CHECK (!streq (first_id, second_id));
    agc_future_destroy (&pending);
    agc_future_destroy (&forever.future);
    close (forever.done [0]);
    close (forever.done [1]);
    agc_conn_destroy (&conn);
    agc_conn_destroy (&patient);
    CHECK (serves_rc == 0);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*test) (void);
} case_t;

static const case_t s_cases [] = {
    { "self_reference", at_test_self_reference },
    { "cycle", at_test_cycle },
    { "tarpit", at_test_tarpit },
    { "huge_value", at_test_huge_value },
    { "not_allowed", at_test_not_allowed },
    { "never_reads", at_test_never_reads },
    { "unread_lists", at_test_unread_lists },
    { "queued_bytes", at_test_queued_bytes },
    { "many_routing_ids", at_test_many_routing_ids },
    { "agents_per_client", at_test_agents_per_client },
    { "fetch_flood", at_test_fetch_flood },
    { "list_storm", s_test_list_storm },
    { "restart_same_port", s_test_restart_same_port },
    { NULL, NULL }
};

//  Remove this run's directory and what is in it
static void
s_remove_dir (const char *dir)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
            continue;
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink (path);
    }
    closedir (handle);
    rmdir (dir);
}

int
main (int argc, char *argv [])
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "-v"))
            at_verbose = true;
        else
        if (streq (argv [i], "-n") && i + 1 < argc)
            only = argv [++i];
        else
        if (argv [i][0] != '-')
            at_build = argv [i];
        else {
            fprintf (stderr, "usage: attacktest [BUILD_DIR] [-v] [-n NAME]\n");
            return 2;
        }
    }
    //  The tarpit writes to peers that may have gone
    signal (SIGPIPE, SIG_IGN);
    snprintf (at_plugin, sizeof at_plugin, "%s/plugins/testclasses.so",
              at_build);
    at_valgrind = getenv ("AGTEST_VALGRIND") != NULL;
    at_old = getenv ("ATTACKTEST_OLD") != NULL;
    if (at_valgrind)
        at_slow = 4;
    srandom ((unsigned) getpid ());
    snprintf (at_dir, sizeof at_dir, "/tmp/attacktest-XXXXXX");
    at_context = zmq_ctx_new ();
    if (!mkdtemp (at_dir) || !at_context) {
        fprintf (stderr, "attacktest: cannot make a directory in /tmp\n");
        printf ("0 passed, 1 failed\n");
        return 1;
    }
    zmq_ctx_set (at_context, ZMQ_MAX_SOCKETS, 4096);
    int passed = 0, failed = 0;
    for (const case_t *test = s_cases; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        printf (" * %s: ", test->name);
        if (at_verbose)
            printf ("\n");
        fflush (stdout);
        at_note [0] = 0;
        int64_t start = ag_usecs ();
        int rc = test->test ();
        at_cleanup_all ();
        if (rc == 0) {
            printf ("OK (%.2f s)\n", tl_seconds_since (start));
            passed++;
        }
        else {
            printf ("FAILED: %s at %s (%.2f s)", tl_failed_check,
                    tl_failed_detail, tl_seconds_since (start));
            if (at_note [0])
                printf (" [%s]", at_note);
            printf ("\n");
            failed++;
        }
        fflush (stdout);
    }
    if (only && passed + failed == 0) {
        fprintf (stderr, "attacktest: no case named %s\n", only);
        failed++;
    }
    s_remove_dir (at_dir);
    //  The context is left to the exit: a socket of a wait abandoned
    //  after a failure may still be open in it
    printf ("%d passed, %d failed\n", passed, failed);
    fflush (stdout);
    return failed? 1: 0;
}
