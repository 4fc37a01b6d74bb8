/*  =========================================================================
    attack_memory - clients that would have the server hold their bytes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The cases that try to make agentd keep memory for one client: a
//  client that never reads its 8 MiB replies (never_reads), nor the LISTs
//  of 50,000 agents it asks for (unread_lists), and 32 MiB calls queued
//  behind one that naps (queued_bytes). Memory stays within the client's
//  budget. A raw client's connection is watched, through its socket's
//  monitor and its TCP socket, to see the server close it.
//  @end

#include "attack.h"

//  The connection of a raw client, watched: its socket's monitor tells
//  when it connects (and the descriptor of its TCP socket) and when it
//  is disconnected
typedef struct {
    void *socket;                   //  the socket watched
    void *monitor;                  //  PAIR on the socket's events
    int fd;                         //  its TCP socket, once connected
    bool closed;
} watch_t;

static void
s_watch_destroy (void *arg)
{
    watch_t *self = (watch_t *) arg;
    at_undefer (self);
    //  Before the socket closes: libzmq's I/O thread would block writing
    //  its close's event to a monitor nobody reads
    zmq_socket_monitor (self->socket, NULL, 0);
    zmq_close (self->monitor);
    free (self);
}

//  Watch socket, which must not be connected yet (its connection event
//  would be missed)
static watch_t *
s_watch_new (void *socket, const char *name)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://attacktest-%s", name);
    if (zmq_socket_monitor (socket, endpoint, ZMQ_EVENT_CONNECTED
                                            | ZMQ_EVENT_DISCONNECTED))
        return NULL;
    watch_t *self = (watch_t *) calloc (1, sizeof (watch_t));
    self->fd = -1;
    self->socket = socket;
    self->monitor = zmq_socket (at_context, ZMQ_PAIR);
    int zero = 0;
    zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect (self->monitor, endpoint)) {
        zmq_socket_monitor (socket, NULL, 0);
        zmq_close (self->monitor);
        free (self);
        return NULL;
    }
    at_defer (s_watch_destroy, self);
    return self;
}

//  Wait until the connection is closed by the server, by the deadline
//  (usecs); true if it was. ZeroMQ reports the close (DISCONNECTED)
//  only once it reads the socket, and a client that takes nothing in
//  (its receive queue full) never does: the TCP socket itself is looked
//  at too, for the peer's FIN or RST. Only a look, nothing is read.
static bool
s_watch_closed (watch_t *self, int64_t deadline)
{
    while (!self->closed) {
        if (self->fd >= 0) {
            struct pollfd item = { self->fd, POLLRDHUP, 0 };
            if (poll (&item, 1, 0) > 0
            &&  (item.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                self->closed = true;
        }
        if (self->closed || ag_usecs () >= deadline)
            break;
        zmq_pollitem_t item = { self->monitor, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, MIN (at_left_ms (deadline), 50)) <= 0)
            continue;
        //  Each event: number (2 octets) and value (4), then an address
        zmq_msg_t event, address;
        zmq_msg_init (&event);
        zmq_msg_init (&address);
        uint16_t number = 0;
        uint32_t value = 0;
        if (zmq_msg_recv (&event, self->monitor, 0) >= 0
        &&  zmq_msg_size (&event) >= 6) {
            memcpy (&number, zmq_msg_data (&event), 2);
            memcpy (&value, (uint8_t *) zmq_msg_data (&event) + 2, 4);
        }
        if (zmq_msg_more (&event))
            zmq_msg_recv (&address, self->monitor, 0);
        zmq_msg_close (&event);
        zmq_msg_close (&address);
        if (number == ZMQ_EVENT_CONNECTED)
            self->fd = (int) value;
        else
        if (number == ZMQ_EVENT_DISCONNECTED) {
            self->closed = true;
            self->fd = -1;
        }
    }
    return self->closed;
}

//  Wait until an agent named name exists (a request sent after the
//  attack's has arrived), or the watched connection (if not NULL) is
//  closed, by the deadline. 1 if the agent exists, 2 if the connection
//  was closed, 0 if neither.
static int
s_wait_handled (agc_conn_t *conn, const char *name, watch_t *watch,
                int64_t deadline)
{
    ag_value_t *body = ag_value_new ("s", name);
    int rc = 0;
    while (!rc && ag_usecs () < deadline) {
        int status = at_roundtrip (conn, AGP_LOOKUP, 0, 0, body,
                                   at_left_ms (deadline), NULL, NULL, 0);
        if (status == AG_OK)
            rc = 1;
        else
        if (watch && s_watch_closed (watch, MIN (deadline,
                                                 ag_usecs () + 50000)))
            rc = 2;
        else
        if (!watch) {
            //  Asked again in a while; nothing else comes on this pipe
            struct pollfd none = { -1, 0, 0 };
            poll (&none, 1, 50);
        }
    }
    ag_value_destroy (&body);
    return rc;
}

//  A named CREATE, sent after the attack on the attacker's socket
static int
s_send_sentinel (void *socket, const char *name)
{
    ag_value_t *body = ag_value_new ("{s:s, s:s, s:b}", "class", "Counter",
                                     "name", name, "detached", 1);
    int rc = at_raw_send_value (socket, AGP_CREATE, 0, ++at_corr, 0, body);
    ag_value_destroy (&body);
    return rc;
}

//  A client that never reads its replies, asking for 8 MiB ones: it is
//  disconnected, and agentd's memory stays within its budget
int
at_test_never_reads (void)
{
    //  Under valgrind, which runs one thread at a time, workers building
    //  8 MiB results take the broker's turns for seconds: smaller ones,
    //  still far more than the client's budget
    size_t calls = at_valgrind? 200: 400;
    int64_t blob = at_valgrind? 1 * MIB: 8 * MIB;
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    void *attacker = at_raw_new (ZMQ_DEALER, NULL, "Ablob", 5, 1);
    CHECK (attacker);
    watch_t *watch = s_watch_new (attacker, "never-reads");
    CHECK (watch);
    CHECK (zmq_connect (attacker, daemon->endpoint) == 0);
    uint64_t agent = at_create_one (attacker);
    CHECK (agent);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    int64_t start = ag_usecs ();
    ag_value_t *body = ag_value_new ("[s, {s:i}]", "blob", "size", blob);
    size_t sent = 0;
    for (size_t i = 0; i < calls; i++)
        if (at_raw_send_value (attacker, AGP_CALL, 0, ++at_corr, agent,
                               body) == 0)
            sent++;
    ag_value_destroy (&body);
    bool dropped = s_watch_closed (watch, start + 30000000LL * at_slow);
    at_say ("%zu CALLs of blob %d MiB sent; the server %s", sent,
            (int) (blob / MIB), dropped? "closed the connection"
                                       : "kept the connection");
    if (dropped)
        at_say ("closed after %.3f s", tl_seconds_since (start));
    else {
        //  What waits unread in the client's socket, for the record
        int unread = -1;
        if (watch->fd < 0 || ioctl (watch->fd, FIONREAD, &unread))
            unread = -1;
        at_notef ("the server kept the connection of a client that reads"
                  " nothing (no close seen on its TCP socket, %d octets"
                  " unread there)", unread);
    }
    //  The margin: the calls running meanwhile, each with its 8 MiB
    //  result built and copied into its reply, and what the allocator
    //  keeps of those buffers once freed
    int rss_rc = at_rss_within (daemon, base, DEFAULT_CLIENT_BYTES / MIB + 96);
    int victim_rc = at_victim_stop (victim);
    int serves_rc = at_serves (daemon->endpoint);
    s_watch_destroy (watch);
    at_raw_destroy (attacker);
    CHECK (sent == calls);
    CHECK (dropped);
    CHECK (rss_rc == 0);
    CHECK (victim_rc == 0);
    CHECK (serves_rc == 0);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  50,000 agents, and a client that never reads sends 300 LISTs
int
at_test_unread_lists (void)
{
    size_t agents = at_valgrind? 12500: 50000;
    size_t lists = 300;
    const char *args [] = { "--max-agents", "1000000",
                            "--max-agents-per-client", "100000", NULL };
    daemon_t *daemon = at_daemon_start (NULL, args);
    CHECK (daemon);
    void *creator = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Acreator", 8,
                                0);
    CHECK (creator);
    int failure;
    char reason [256];
    int64_t start = ag_usecs ();
    size_t created = at_create_many (creator, agents, true, NULL, 2000,
                                     120000 * at_slow, &failure, reason,
                                     sizeof reason);
    at_say ("%zu agents created in %.2f s", created, tl_seconds_since (start));
    if (created < agents)
        at_notef ("created %zu agents: %d %s", created, failure, reason);
    CHECK (created == agents);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    agc_conn_t *watcher = agc_conn_new (daemon->endpoint);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    void *attacker = at_raw_new (ZMQ_DEALER, NULL, "Alists", 6, 1);
    CHECK (attacker);
    watch_t *watch = s_watch_new (attacker, "unread-lists");
    CHECK (watch);
    CHECK (zmq_connect (attacker, daemon->endpoint) == 0);
    start = ag_usecs ();
    size_t sent = 0;
    for (size_t i = 0; i < lists; i++)
        sent += at_raw_send (attacker, AGP_LIST, 0, ++at_corr, 0, NULL, 0) == 0;
    CHECK (s_send_sentinel (attacker, "after-the-lists") == 0);
    //  Every LIST read (the named CREATE after them has arrived), or the
    //  client that reads nothing disconnected
    int handled = s_wait_handled (watcher, "after-the-lists", watch,
                                  start + 60000000LL * at_slow);
    at_say ("%zu LISTs sent; after %.2f s %s", sent, tl_seconds_since (start),
            handled == 1? "all read": handled == 2? "the server closed the"
            " connection": "not all read, connection open");
    if (!handled)
        at_notef ("LISTs not all read after %.2f s", tl_seconds_since (start));
    int rss_rc = at_rss_within (daemon, base, DEFAULT_CLIENT_BYTES / MIB + 64);
    int victim_rc = at_victim_stop (victim);
    int serves_rc = at_serves (daemon->endpoint);
    at_raw_destroy (attacker);
    s_watch_destroy (watch);
    at_raw_destroy (creator);
    agc_conn_destroy (&watcher);
    CHECK (sent == lists && handled);
    CHECK (rss_rc == 0);
    CHECK (victim_rc == 0);
    CHECK (serves_rc == 0);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}

//  48 calls of 32 MiB queued behind one that naps: most are refused 302
//  naming server/max_client_bytes, and the mailbox stays in its budget
int
at_test_queued_bytes (void)
{
    size_t calls = 48;
    size_t arg_size = 32 * (size_t) MIB;
    daemon_t *daemon = at_daemon_start (NULL, NULL);
    CHECK (daemon);
    victim_t *victim = at_victim_start (daemon->endpoint);
    CHECK (victim);
    void *attacker = at_raw_new (ZMQ_DEALER, daemon->endpoint, "Abytes", 6, 0);
    CHECK (attacker);
    uint64_t agent = at_create_one (attacker);
    CHECK (agent);
    int64_t base = tl_peak_rss_kib (daemon->pid);
    //  The nap first, then the big ones behind it
    calls_t *sent = at_calls_new (1 + calls);
    //  Long enough for all 48 to arrive while it naps (under valgrind
    //  their sending alone takes longer than 5 s)
    ag_value_t *nap = ag_value_new ("[s, {s:i}]", "nap", "ms",
                                    (int64_t) 5000 * at_slow);
    CHECK (at_calls_send (sent, 0, attacker, agent, 0, nap) == 0);
    ag_value_destroy (&nap);
    //  ["add", bin 32 of 32 MiB], in two frames sent in turn
    uint8_t head [10] = { 0x92, 0xa3, 'a', 'd', 'd', 0xc6,
                          (uint8_t) (arg_size >> 24),
                          (uint8_t) (arg_size >> 16),
                          (uint8_t) (arg_size >> 8), (uint8_t) arg_size };
    bigframe_t *frames [2];
    for (int i = 0; i < 2; i++) {
        frames [i] = at_bigframe_new (AGP_ENVELOPE_SIZE + sizeof head
                                      + arg_size, head, sizeof head);
        CHECK (frames [i]);
        //  Written, so each send reads real pages, as a client's would
        memset (frames [i]->data + AGP_ENVELOPE_SIZE + sizeof head, 'x',
                arg_size);
    }
    int64_t start = ag_usecs ();
    size_t put = 0;
    for (size_t i = 0; i < calls; i++) {
        bigframe_t *frame = frames [i % 2];
        if (at_bigframe_wait (frame, 30000 * at_slow))
            break;
        agp_envelope_t env = { .command = AGP_CALL,
                               .corr = sent->first + 1 + i, .agent = agent };
        sent->sent [1 + i] = ag_usecs ();
        if (at_bigframe_send (frame, attacker, NULL, 0, &env))
            break;
        put++;
    }
    at_say ("%zu calls of 32 MiB sent in %.2f s", put,
            tl_seconds_since (start));
    at_calls_collect (sent, attacker, ag_usecs () + 60000000LL * at_slow);
    at_calls_say (sent, "nap and 32 MiB calls");
    //  The budget, and two 32 MiB frames on their way in (ZeroMQ's)
    int rss_rc = at_rss_within (daemon, base, DEFAULT_CLIENT_BYTES / MIB + 96);
    int victim_rc = at_victim_stop (victim);
    int serves_rc = at_serves (daemon->endpoint);
    size_t busy = 0, named = 0;
    for (size_t i = 1; i <= calls; i++)
        if (sent->status [i] == AG_BUSY) {
            busy++;
            named += strstr (sent->reason [i], "server/max_client_bytes")
                     != NULL;
        }
    at_say ("%zu refused 302, %zu of them naming server/max_client_bytes",
            busy, named);
    for (int i = 0; i < 2; i++) {
        at_bigframe_wait (frames [i], 30000 * at_slow);
        at_bigframe_destroy (&frames [i]);
    }
    CHECK (put == calls);
    CHECK (sent->answered == 1 + calls);
    CHECK (busy >= calls - 4);
    CHECK (named == busy);
    CHECK (rss_rc == 0);
    CHECK (victim_rc == 0);
    CHECK (serves_rc == 0);
    at_calls_destroy (&sent);
    at_raw_destroy (attacker);
    CHECK (at_daemon_stop (daemon) == 0);
    return 0;
}
