/*  =========================================================================
    attack - what the files of attacktest share

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The private header of attacktest: the run's settings and bounds, the
//  types the cases see into, and the helpers, file by file: attack_lib.c
//  (the run, cleanups, daemons, requests through libagentclient, the
//  victim), attack_raw.c (raw sockets and the calls sent on them) and
//  attack_fake.c (fake servers). The cases are in attack_futures.c,
//  attack_memory.c, attack_clients.c and attacktest.c, whose table runs
//  them all.
//  @end

#ifndef ATTACK_H_INCLUDED
#define ATTACK_H_INCLUDED

#include "../client/agc.h"
#include "testlib.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

//  ---------------------------------------------------------------------
//  The run: set by main (), read everywhere

extern const char *at_build;        //  BUILD_DIR: agentd and the plugins
extern bool at_verbose;             //  -v: figures printed
extern bool at_valgrind;            //  agentd runs under valgrind
extern bool at_old;                 //  agentd predates the new options
extern int at_slow;                 //  time bounds multiply by this
extern char at_plugin [300];        //  testclasses.so
extern char at_dir [64];            //  this run's ipc sockets and files
extern void *at_context;            //  for the raw sockets
extern uint64_t at_corr;            //  raw requests' correlation ids
extern char at_note [2048];         //  figures shown with a failure

#define MIB             (1024 * 1024)
#define VICTIM_BOUND_MS 1000        //  victim's PING and CALL, each
#define VICTIM_PACE_MS  20          //  between two probes
#define DEFAULT_CLIENT_BYTES (64 * MIB)
#define THREAD_LIMIT_S  600         //  a helper thread stops by itself

//  The victim's bound, and the other time bounds, widened under valgrind
int64_t
    at_victim_bound_us (void);

//  When a helper thread started now stops, even if never told to
int64_t
    at_thread_until (void);

//  Print a figure under -v
void
    at_say (const char *format, ...);

//  Add to what a failure shows
void
    at_notef (const char *format, ...);

//  ---------------------------------------------------------------------
//  Cleanups: what a case started is undone, even after a CHECK returned
//  early

typedef void (cleanup_fn) (void *arg);

//  Undo arg with fn when the case ends, whatever its outcome
void
    at_defer (cleanup_fn *fn, void *arg);

//  arg was undone by the case itself
void
    at_undefer (void *arg);

//  Undo, last first, what the case left to undo
void
    at_cleanup_all (void);

//  ---------------------------------------------------------------------
//  Daemons

typedef tl_proc_t daemon_t;

//  Start agentd on endpoint (NULL: an ephemeral loopback port) with the
//  test classes and extra arguments (NULL-ended, or NULL). NULL if it
//  did not start.
daemon_t *
    at_daemon_start (const char *endpoint, const char *const *extra);

//  SIGTERM, and its exit status (0 expected; 99 is valgrind's verdict)
int
    at_daemon_stop (daemon_t *self);

//  Peak RSS growth since base, checked against a bound in MiB (plus the
//  sanitizers' margin); prints it. 0 if within.
int
    at_rss_within (daemon_t *daemon, int64_t base_kib, int64_t bound_mib);

//  ---------------------------------------------------------------------
//  Requests through libagentclient, each with a deadline

//  Send a request and wait up to msecs for it. Returns its status
//  (AG_TIMEOUT if not answered); the value if asked (caller owns) and
//  the reason of a failure
int
    at_roundtrip (agc_conn_t *conn, uint8_t command, uint64_t agent,
                  uint16_t flags, const ag_value_t *body, int msecs,
                  ag_value_t **value, char *reason, size_t size);

//  Create a Counter; its id, or 0 (status and reason tell why)
uint64_t
    at_create (agc_conn_t *conn, bool detached, int *status, char *reason,
               size_t size);

//  A new client creates an agent and calls it, each answered in time
int
    at_serves (const char *endpoint);

//  ---------------------------------------------------------------------
//  The victim: a client of its own with an idle Counter, whose PING and
//  sync CALL add (1) are timed over and over while the attack runs

typedef struct {
    agc_conn_t *conn;
    uint64_t agent;
    pthread_t thread;
    int stop [2];                   //  written to: stop probing
    int probes;
    int64_t ping_max;               //  usecs
    int64_t call_max;
    int late;                       //  probes over the bound, or failed
    int first_status;               //  of the first that failed
    char first_reason [200];
} victim_t;

//  Connect, create the victim's agent, and start probing
victim_t *
    at_victim_start (const char *endpoint);

//  Stop probing; 0 if every probe was answered within the bound
int
    at_victim_stop (victim_t *self);

//  ---------------------------------------------------------------------
//  Raw sockets: the attackers' AGP, from PROTOCOL.md

//  A socket of this type, connected to endpoint (if not NULL), with the
//  routing id (if not NULL) and receive high-water mark (if above 0).
//  Sends give up after a while, so none blocks for ever.
void *
    at_raw_new (int type, const char *endpoint, const void *id, size_t id_size,
                int rcvhwm);

//  Close a socket of at_raw_new; NULL is a no-op
void
    at_raw_destroy (void *socket);

//  Send one request frame: envelope and body. 0, or -1.
int
    at_raw_send (void *socket, uint8_t command, uint16_t flags, uint64_t corr,
                 uint64_t agent, const void *body, size_t size);

//  at_raw_send with a value as the body
int
    at_raw_send_value (void *socket, uint8_t command, uint16_t flags,
                       uint64_t corr, uint64_t agent, const ag_value_t *body);

//  Receive one message within msecs into frame (initialised here, the
//  caller closes it; extra parts are dropped) and its envelope. 0, or
//  -1 if none came. A frame that is not AGP has command 0.
int
    at_raw_recv (void *socket, int msecs, agp_envelope_t *env,
                 zmq_msg_t *frame);

//  Milliseconds left until deadline (usecs), at least 0
int
    at_left_ms (int64_t deadline);

//  Create count Counters through a raw DEALER, window CREATEs at most in
//  flight, all within msecs; their ids into ids (if not NULL). Returns
//  how many were created; the first failure's status and reason in
//  failure and reason.
size_t
    at_create_many (void *dealer, size_t count, bool detached, uint64_t *ids,
                    size_t window, int msecs, int *failure, char *reason,
                    size_t size);

//  Create one Counter through a raw DEALER. Returns its id, or 0 (the
//  failure printed).
uint64_t
    at_create_one (void *dealer);

//  A CALL body [method, reference] whose argument is a future reference
//  (PROTOCOL.md 4.10) to the result (owner, corr) on endpoint
ag_value_t *
    at_ref_call (const char *method, const char *endpoint, const void *owner,
                 size_t owner_size, uint64_t corr);

//  ---------------------------------------------------------------------
//  Calls sent on a raw socket, and their replies

typedef struct {
    uint64_t first;                 //  corr of the first
    size_t count;
    int64_t *sent;                  //  usecs each went out
    int *status;                    //  0 until answered
    int64_t *took;                  //  usecs from sending to the reply
    char **reason;                  //  of each failure
    size_t answered;
} calls_t;

//  count calls, with correlation ids of their own
calls_t *
    at_calls_new (size_t count);

void
    at_calls_destroy (calls_t **self_p);

//  Send call i: a CALL to agent with body and flags
int
    at_calls_send (calls_t *self, size_t i, void *socket, uint64_t agent,
                   uint16_t flags, const ag_value_t *body);

//  Read replies until every call is answered or the deadline (usecs)
//  has passed. Returns how many are answered.
size_t
    at_calls_collect (calls_t *self, void *socket, int64_t deadline);

//  How many got status (0: none yet)
size_t
    at_calls_with (calls_t *self, int status);

//  The longest time to a reply, in seconds
double
    at_calls_max_took (calls_t *self);

//  How many failures' reasons hold word
size_t
    at_calls_saying (calls_t *self, const char *word);

//  How many failures' reasons hold OS error text
size_t
    at_calls_os_text (calls_t *self);

//  A line on the replies: statuses and counts, the slowest, a reason
void
    at_calls_say (calls_t *self, const char *what);

//  ---------------------------------------------------------------------
//  Fake servers, each a thread until told to stop

typedef enum {
    FAKE_TCP_TARPIT,                //  accepts, sends a junk byte a second
    FAKE_ROUTER_SILENT,             //  ZeroMQ ROUTER that answers nothing
    FAKE_ROUTER_JUNK,               //  answers junk frames every 100 ms
    FAKE_ROUTER_HUGE                //  answers FETCH with a huge value
} fake_kind_t;

//  A frame too big to copy per send: one buffer, sent again once
//  ZeroMQ has let go of it (an eventfd says so)
typedef struct {
    uint8_t *data;
    size_t size;
    int released;                   //  eventfd, written when let go
    bool in_use;
} bigframe_t;

typedef struct {
    fake_kind_t kind;
    char endpoint [300];
    int stop [2];
    pthread_t thread;
    int listener;                   //  TCP tarpit
    void *router;                   //  ROUTER kinds
    bigframe_t *huge;               //  FAKE_ROUTER_HUGE's answer
    //  What it saw and did
    atomic_size_t connections;      //  accepted (TCP), peers (ROUTER)
    atomic_size_t messages;         //  received
    atomic_size_t fetches;
    atomic_size_t sent;             //  bytes or frames sent
    atomic_size_t skipped;          //  FETCHes not answered (frame busy)
} fake_t;

//  A frame of size octets: an envelope, then body_head (the first
//  octets of the body), then zeros
bigframe_t *
    at_bigframe_new (size_t size, const void *body_head, size_t head_size);

void
    at_bigframe_destroy (bigframe_t **self_p);

//  Wait up to msecs until ZeroMQ no longer holds the frame; 0 if so
int
    at_bigframe_wait (bigframe_t *self, int msecs);

//  Send the frame with this envelope, after a routing id if given
//  (ROUTER). 0, or -1.
int
    at_bigframe_send (bigframe_t *self, void *socket, const void *routing,
                      size_t routing_size, const agp_envelope_t *env);

//  A fake server of this kind, started; NULL if it did not start
fake_t *
    at_fake_start (fake_kind_t kind);

//  Stop a fake server (arg) and free it
void
    at_fake_destroy (void *arg);

//  A loopback TCP listener on an ephemeral port; the fd, and its
//  endpoint into endpoint
int
    at_tcp_listener (char *endpoint, size_t size);

//  ---------------------------------------------------------------------
//  The cases, each 0 if it passed, or -1 from the CHECK that failed

//  attack_futures.c: references to futures
int
    at_test_self_reference (void);
int
    at_test_cycle (void);
int
    at_test_tarpit (void);
int
    at_test_huge_value (void);
int
    at_test_not_allowed (void);

//  attack_memory.c: what a client makes the server hold
int
    at_test_never_reads (void);
int
    at_test_unread_lists (void);
int
    at_test_queued_bytes (void);

//  attack_clients.c: what one client may take
int
    at_test_many_routing_ids (void);
int
    at_test_agents_per_client (void);
int
    at_test_fetch_flood (void);

#endif
