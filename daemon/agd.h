/*  =========================================================================
    agd.h - private umbrella header of the agent server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#ifndef AGD_H_INCLUDED
#define AGD_H_INCLUDED

#include "../common/ag_common.h"
#include "agentserver.h"
#include <stdatomic.h>
#include <pthread.h>

#define AGD_CLASS_LIMITS    32      //  classes with a call limit of their own

//  Settings the broker runs with; copied from the server at start.
typedef struct {
    int threads_min;                //  worker threads kept when idle
    int threads_max;                //  worker threads at most
    int idle_ms;                    //  idle time before a thread exits
    int retention_ms;               //  how long kept results live
    size_t retention_max;           //  how many kept results at most
    size_t max_message;             //  largest request body
    size_t max_bytes;               //  bytes held for all clients
    size_t max_client_bytes;        //  bytes held for one client
    size_t retention_bytes;         //  bytes of kept results
    int heartbeat_ms;               //  ZMQ heartbeats to clients, or 0
    int heartbeat_timeout_ms;       //  their timeout, or 0 (10 x interval)
    int grace_ms;                   //  time running calls get at stop
    int future_timeout_ms;          //  argument futures resolve by then
    size_t max_agents;              //  agents on this server at most
    size_t max_agents_per_client;   //  agents one client owns at most
    size_t max_pending_per_client;  //  requests one client has pending
    int client_grace_ms;            //  a client gone this long loses its
                                    //  agents
    int inbound_hwm;                //  messages queued per connection
    int outbound_hwm;               //  replies queued per connection
    int max_depth;                  //  msgpack nesting, process-wide
    size_t max_elements;            //  msgpack objects, process-wide
    int log_level;                  //  AGD_LOG_ERROR .. AGD_LOG_DEBUG
    int isolation;                  //  AGD_ISOLATE_*: where plugin code runs
    int restart_max;                //  restarts of an agent within ...
    int restart_window_ms;          //  ... this time, at most
    int restart_backoff_ms;         //  the wait before a second restart,
                                    //  doubling for each one after
    int call_limit_ms;              //  a host running one call longer is
                                    //  killed; 0: no limit
    struct {                        //  the same for one class, in its place
        char name [AGP_MAX_NAME + 1];
        int ms;                     //  0: none for this class
    } class_limits [AGD_CLASS_LIMITS];
    int class_limit_count;
    int host_memory_mb;             //  a host's address space, or 0
} agd_config_t;

#define AGD_ISOLATE_THREAD  0       //  plugin code runs in pool threads
#define AGD_ISOLATE_PROCESS 1       //  ... in host processes, one per plugin

//  Log through czmq when level is at or below the configured one
#define AGD_LOG(config, level, fn, ...) \
    do { if ((config).log_level >= (level)) fn (__VA_ARGS__); } while (0)

//  ---------------------------------------------------------------------
//  agd_account: who a request is charged to (a CURVE key, a process at
//  the other end of an ipc socket, or a connection), what it holds, and
//  the reply frames whose bytes count against it until libzmq has
//  written them out.

typedef struct _agd_account_t agd_account_t;
typedef struct _agd_accounts_t agd_accounts_t;
typedef struct _agd_meter_t agd_meter_t;

#define AGD_FRAME_COST      96      //  what a reply frame costs beyond its
                                    //  bytes: libzmq's header and ours
#define AGD_JOB_COST        256     //  what a request costs beyond its body
#define AGD_FRAME_SMALL     32      //  frames this small live inside
                                    //  libzmq's message: not counted, the
                                    //  outbound high-water mark bounds them

struct _agd_account_t {
    //  Written by libzmq's I/O thread only, on a line of its own
    _Alignas (64) atomic_size_t drained;    //  reply bytes libzmq has let go
    _Alignas (64) uint64_t key;     //  hash of the identity
    agd_account_t *chain;           //  accounts with the same key
    agd_meter_t *meter;             //  the server's total of reply bytes
    size_t charged;                 //  reply bytes handed to libzmq
    size_t drained_seen;            //  drained, as last read
    size_t users;                   //  client entries, jobs, agents and
                                    //  results that name it
    bool idle;                      //  nobody uses it: on the idle list
    agd_account_t *idle_prev, *idle_next;
    size_t pending;                 //  requests queued, running or waiting
    size_t queued;                  //  bytes those requests hold
    size_t agents;                  //  agents it created, detached too
    size_t kept;                    //  results the store keeps for it
    size_t kept_bytes;              //  their bytes
    size_t awaited;                 //  fetches waiting for calls not seen
    void *kept_oldest;              //  its kept results (the store's)
    void *kept_newest;
    char name [128];                //  for logs: "key ...", "ipc ...", ...
    size_t id_size;
    uint8_t id [];                  //  the identity
};

agd_accounts_t *
    agd_accounts_new (void);
//  Destroy, once libzmq holds no frame of any account (see drain):
//  otherwise the accounts are left allocated, and that logged
void
    agd_accounts_destroy (agd_accounts_t **self_p);
//  The account of an identity, made if new (name is for logs). NULL out
//  of memory.
agd_account_t *
    agd_accounts_get (agd_accounts_t *self, const void *id, size_t size,
                      const char *name);
//  One user more; one user less (an account nobody uses is freed at the
//  next sweep once its replies are out). Release accepts NULL.
void
    agd_accounts_use (agd_accounts_t *self, agd_account_t *account);
void
    agd_accounts_release (agd_accounts_t *self, agd_account_t *account);
void
    agd_accounts_sweep (agd_accounts_t *self);
size_t
    agd_accounts_size (agd_accounts_t *self);
//  Bytes of reply frames libzmq holds, for all accounts or for one: at
//  most this (read without touching what libzmq's thread writes), and
//  exactly
size_t
    agd_accounts_out_bound (agd_accounts_t *self);
size_t
    agd_accounts_out (agd_accounts_t *self);
size_t
    agd_account_out_bound (agd_account_t *self);
size_t
    agd_account_out (agd_account_t *self);
//  Wait up to msecs for libzmq to let go of every frame (after the
//  socket is closed). Returns 0, or -1 if some are still held.
int
    agd_accounts_drain (agd_accounts_t *self, int msecs);

//  A reply frame: room for the envelope (zeroed), then a copy of body.
//  Returns 0, or -1 out of memory.
int
    agd_frame_init (zmq_msg_t *msg, const void *body, size_t size);
//  A reply frame whose body is reason, a msgpack str of at most 1024
//  octets. Returns 0, or -1 out of memory.
int
    agd_frame_reason (zmq_msg_t *msg, const char *reason);
//  Count a frame of agd_frame_init against an account from now until
//  libzmq frees it (once only; small ones are not counted).
void
    agd_frame_charge (zmq_msg_t *msg, agd_accounts_t *table,
                      agd_account_t *account);
//  A second frame over the bytes of in (which stay alive as long as
//  either does), counted against account (if not NULL) on its own: a
//  reply sent while the store keeps the same bytes (in itself is never
//  charged: its bytes would count until the store let them go). Returns
//  0 or -1.
int
    agd_frame_share (zmq_msg_t *out, zmq_msg_t *in, agd_accounts_t *table,
                     agd_account_t *account);

//  ---------------------------------------------------------------------
//  agd_registry: the classes a server knows, and the plugins they came
//  from. Read-only once the server starts, so every thread may read it.

typedef struct _agd_registry_t agd_registry_t;

agd_registry_t *
    agd_registry_new (void);
void
    agd_registry_destroy (agd_registry_t **self_p);
//  Add a class. Returns 0, or -1 with a reason.
int
    agd_registry_add (agd_registry_t *self, const ag_class_t *cls,
                      const char *origin, char *reason, size_t size);
//  Load a plugin and add its classes. Returns 0, or -1 with a reason.
int
    agd_registry_load (agd_registry_t *self, const char *path,
                       char *reason, size_t size);
//  Find a class by name; NULL if unknown.
const ag_class_t *
    agd_registry_find (agd_registry_t *self, const char *name, size_t len);
//  The full path of the plugin a class came from, or NULL (the program
//  registered it). The plugins loaded, and each in order of loading.
const char *
    agd_registry_plugin (agd_registry_t *self, const ag_class_t *cls);
size_t
    agd_registry_plugins (agd_registry_t *self);
const char *
    agd_registry_plugin_at (agd_registry_t *self, size_t index);
//  Number of classes, and each in order of registration.
size_t
    agd_registry_size (agd_registry_t *self);
const ag_class_t *
    agd_registry_at (agd_registry_t *self, size_t index);
//  Pack a class's public face: {"name", "base", "methods": {name: "sync"
//  or "async"}, "attrs": [name...]}, inherited entries included.
void
    agd_registry_pack_class (msgpack_packer *packer, const ag_class_t *cls);

//  ---------------------------------------------------------------------
//  agd_agent and agd_job: an agent's mailbox is a queue of jobs owned
//  by the broker; a worker holds one job (and so the agent) at a time.

typedef struct _agd_job_t agd_job_t;
typedef struct _agd_refs_t agd_refs_t;
typedef struct _agd_agent_t agd_agent_t;
typedef struct _agd_client_t agd_client_t;

struct _agd_agent_t {
    uint64_t id;                    //  unique on this server, never reused
    const ag_class_t *cls;          //  class
    void *state;                    //  touched only by the worker running it
    char *name;                     //  unique name, or NULL
    agd_client_t *owner;            //  client that owns it, or NULL
    agd_agent_t *owner_prev;        //  the owner's other agents
    agd_agent_t *owner_next;
    agd_account_t *creator;         //  charged with it (detached too)
    agd_job_t *head;                //  mailbox: jobs in arrival order
    agd_job_t *tail;
    size_t queued;                  //  jobs in the mailbox
    bool busy;                      //  a worker holds some of its jobs
    uint32_t running;               //  jobs handed out, not yet returned
    int call_limit_ms;              //  its class's, else the server's
    size_t out_bytes;               //  their bodies, at a host
    bool ready;                     //  on the broker's ready queue
    bool alive;                     //  init has succeeded
    bool deleting;                  //  DELETE queued: refuse new requests
    agd_job_t *waiting;             //  the job at its head waits for its
                                    //  argument futures: hold the rest
    agd_job_t *chain;               //  its jobs a worker holds, first not
                                    //  yet back (linked by next), or NULL
    agd_agent_t *next_ready;        //  ready queue links
    agd_agent_t *prev_ready;
    int64_t created;                //  ag_usecs () at CREATE
    uint64_t served;                //  requests completed
    uint64_t failed;                //  of which failed
    //  An agent in a host process (see agd_host.c); host is NULL for
    //  one the pool's threads run
    struct _agd_host_t *host;       //  the process it lives in
    agd_agent_t *host_prev;         //  the host's other agents
    agd_agent_t *host_next;
    uint64_t host_id;               //  its id there; 0 while it is not
    agd_job_t *chain_tail;          //  the last of its requests out there
    uint8_t *init;                  //  the CREATE it is made there with
    size_t init_size;
    uint8_t life;                   //  AGD_LIFE_*
    uint32_t restarts;              //  times it was made again
    uint32_t window_restarts;       //  ... since window_start
    int64_t window_start;           //  ag_usecs () of the first of those
    int64_t restart_at;             //  made again no sooner
    char *last_crash;               //  what ended its last host, or NULL
    int64_t last_crash_at;          //  ag_usecs () then
};

#define AGD_LIFE_RUNNING    0       //  answering (or being created)
#define AGD_LIFE_RESTARTING 1       //  its host died: made again soon
#define AGD_LIFE_FAILED     2       //  restarted past its budget

#define AGD_JOB_QUEUED      0       //  in its agent's mailbox
#define AGD_JOB_HANDED      1       //  given to a worker
#define AGD_JOB_WAITING     2       //  its argument futures are resolving

#define AGD_CANCEL_CALLER   1       //  its caller sent CANCEL
#define AGD_CANCEL_DELETED  2       //  its agent was deleted
struct _agd_job_t {
    agd_job_t *next;                //  mailbox link
    agd_agent_t *agent;             //  target
    agd_client_t *client;           //  requester; NULL for the broker's
    agd_account_t *account;         //  charged with it while counted
    size_t charge;                  //  bytes charged
    bool counted;                   //  in its client's and account's
                                    //  pending counts
    int64_t arrived;                //  ag_usecs () when it came in
    int64_t deadline;               //  its caller waits until then, or 0
    size_t timed;                   //  its place in the broker's heap of
                                    //  deadlines, plus one; 0: not there
    _Atomic int cancel;             //  AGD_CANCEL_*, or 0: set by the
                                    //  broker, read by the worker
    zmq_msg_t routing;              //  requester's routing id
    agp_envelope_t env;             //  request envelope
    zmq_msg_t body;                 //  request body in, reply body out
    bool framed;                    //  body is a reply (agd_frame_init)
    bool producing;                 //  the store's producer of its result
    uint8_t state;                  //  AGD_JOB_*
    agd_refs_t *refs;               //  futures among its arguments, or NULL
    bool resolved;                  //  ... and their values are in
    uint16_t status;                //  reply status, set by the worker
    bool answered;                  //  replied to already (DELETE)
    bool plain;                     //  its arguments hold no futures to
                                    //  resolve (a host's calls)
    bool restore;                   //  the broker's CREATE of an agent
                                    //  again, in a new host
    uint64_t host_corr;             //  its corr at its agent's host, or 0
    int64_t forwarded;              //  ag_usecs () it went there
    agd_job_t *host_prev;           //  the host's calls out, oldest first
    agd_job_t *host_next;
};

//  Run a job on the calling (worker) thread: decode the request, run the
//  agent's code, leave the reply in job->status and job->body. Never
//  fails: every problem becomes an error status with a reason.
void
    agd_job_run (agd_job_t *job, msgpack_sbuffer *buffer,
                 msgpack_zone *zone);

//  Replace a job's body with an error reason, and set its status.
void
    agd_job_fail (agd_job_t *job, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  agd_actor: a thread with a pipe, as czmq's zactor, but joined when
//  destroyed, so no socket of it is open once destroy returns
typedef struct _agd_actor_t agd_actor_t;
agd_actor_t *
    agd_actor_new (zactor_fn *handler, void *args);
void
    agd_actor_destroy (agd_actor_t **self_p);
zsock_t *
    agd_actor_sock (agd_actor_t *self);

//  agd_fatal: what agent code the calling thread runs, for the line
//  agentd writes when that code crashes the process or calls exit ()
void
    agd_fatal_enter (uint64_t agent, const char *cls, const char *kind,
                     const char *name, size_t name_len, uint64_t corr);
void
    agd_fatal_leave (void);
//  agentd's handlers for the fatal signals and exit (); never called
//  for a server embedded in another program
void
    agd_fatal_install (void);
//  ... and for exit (): call once czmq is running (exit handlers run
//  last registered first, and this one must run before czmq's)
void
    agd_fatal_watch_exit (void);
//  An alternate signal stack for the calling thread (so a stack
//  overflow can be reported), or NULL; and its release
void *
    agd_fatal_altstack (void);
void
    agd_fatal_altstack_free (void *memory);

//  Worker thread: connects to the broker's backend and runs the jobs it
//  is handed until told to stop. args is a malloc'ed agd_worker_args_t.
typedef struct {
    char endpoint [64];             //  backend endpoint to connect
    uint32_t id;                    //  worker id (routing id)
} agd_worker_args_t;

void *
    agd_worker_main (void *args);

//  A hand-off: several agents' chains of jobs for one worker. The
//  broker fills it and sends its address; the worker runs the chains in
//  order. A chain is the worker's only once it has claimed it (state
//  HANDED -> TAKEN); until then the broker may take it back (HANDED ->
//  REVOKED) and give it to another thread, if this one is held up by a
//  method that blocks. The batch is the broker's again once the worker
//  says END.
#define AGD_BATCH           16      //  agents per hand-off, at most
#define AGD_SLOT_HANDED     0
#define AGD_SLOT_TAKEN      1
#define AGD_SLOT_REVOKED    2

typedef struct {
    atomic_int state;               //  AGD_SLOT_*
    agd_job_t *chain;               //  first job; linked by next
    agd_job_t *last;                //  last job of the chain
    uint32_t count;                 //  jobs in the chain
} agd_slot_t;

typedef struct {
    uint32_t count;                 //  slots in use
    agd_slot_t slots [AGD_BATCH];
} agd_batch_t;

//  Commands between broker and worker, one frame each:
//  worker -> broker: "R" ready, "B" bye, "E" end of a batch, or an
//  8-byte job pointer (one per job, as each finishes, before the END)
//  broker -> worker: "T" terminate, or an 8-byte agd_batch_t pointer
#define AGD_WORKER_READY    'R'
#define AGD_WORKER_BYE      'B'
#define AGD_WORKER_END      'E'
#define AGD_WORKER_TERM     'T'

//  ---------------------------------------------------------------------
//  agd_index: agents in the order of their ids, for paged listing.

typedef struct _agd_index_t agd_index_t;

agd_index_t *
    agd_index_new (void);
void
    agd_index_destroy (agd_index_t **self_p);
//  Add (or replace) an item under id. Returns 0, or -1 out of memory.
int
    agd_index_insert (agd_index_t *self, uint64_t id, void *item);
void
    agd_index_remove (agd_index_t *self, uint64_t id);
//  Up to max items whose ids are above after, in ascending order, into
//  items. Returns how many.
size_t
    agd_index_after (agd_index_t *self, uint64_t after, void **items,
                     size_t max);
size_t
    agd_index_size (agd_index_t *self);

//  ---------------------------------------------------------------------
//  agd_store: results of calls kept for FETCH, each charged to the
//  account of the call that made it, none pushed out by another
//  account's.

typedef struct _agd_store_t agd_store_t;

//  Called for each job waiting on a result when it arrives (or, for a
//  FETCH of a call never seen, when its wait ends: AG_GONE). index is
//  the one the waiter gave.
typedef void (agd_store_deliver_fn) (void *arg, agd_job_t *waiter,
                                     uint32_t index, int status,
                                     zmq_msg_t *body);

//  At most max results, and max_bytes of them
agd_store_t *
    agd_store_new (agd_accounts_t *accounts, int retention_ms, size_t max,
                   size_t max_bytes);
void
    agd_store_destroy (agd_store_t **self_p);
//  A kept call has arrived, charged to account; producer is the job
//  that will complete it. Returns 0, or -1 if there is no room (the
//  call runs, but its result is not kept).
int
    agd_store_expect (agd_store_t *self, agd_account_t *account,
                      const void *owner, size_t owner_size, uint64_t corr,
                      agd_job_t *producer);
//  A kept call finished at now (ag_usecs): keep a copy of its reply,
//  and deliver it to those waiting for it. Returns true if the store
//  shares body's bytes (a large one), false if it copied them or did not
//  keep the result.
bool
    agd_store_complete (agd_store_t *self, const void *owner,
                        size_t owner_size, uint64_t corr, int status,
                        zmq_msg_t *body, int64_t now,
                        agd_store_deliver_fn *deliver, void *arg);
//  Look up a result for account. Returns AG_OK with status/body (a copy)
//  when done; AG_PENDING after adding (waiter, index) as a waiter, also
//  for a call not seen yet (that wait charged to account); AG_BUSY when
//  too many wait already; AG_GONE if it expired (for a while after: a
//  minute, or the retention time).
int
    agd_store_fetch (agd_store_t *self, agd_account_t *account,
                     const void *owner, size_t owner_size, uint64_t corr,
                     agd_job_t *waiter, uint32_t index, int *status,
                     zmq_msg_t *body);
//  Up to max jobs waiting for a result (a snapshot); returns how many
size_t
    agd_store_waiters (agd_store_t *self, const void *owner,
                       size_t owner_size, uint64_t corr, agd_job_t **jobs,
                       size_t max);
//  A waiter gives up (before its job goes)
void
    agd_store_cancel (agd_store_t *self, const void *owner,
                      size_t owner_size, uint64_t corr, agd_job_t *waiter,
                      uint32_t index);
//  The job that will complete a pending result, if known; else NULL
agd_job_t *
    agd_store_producer (agd_store_t *self, const void *owner,
                        size_t owner_size, uint64_t corr);
//  Drop expired results and ghosts, and answer fetches that waited in
//  vain. Returns the ms until the next expiry, or -1.
int
    agd_store_expire (agd_store_t *self, int64_t now,
                      agd_store_deliver_fn *deliver, void *arg);
//  Deliver status and reason to every waiter (the server stops)
void
    agd_store_flush (agd_store_t *self, int status, const char *reason,
                     agd_store_deliver_fn *deliver, void *arg);
//  Results held (pending and done), and the bytes of the done ones
size_t
    agd_store_size (agd_store_t *self);
size_t
    agd_store_bytes (agd_store_t *self);

//  ---------------------------------------------------------------------
//  agd_broker: the actor that owns the ROUTER socket.

typedef struct {
    agd_config_t config;            //  settings
    agd_registry_t *registry;       //  classes (borrowed)
    zlist_t *endpoints;             //  to bind (borrowed, strings)
    zlist_t *peers;                 //  may fetch from (borrowed, strings)
    zlist_t *bound;                 //  filled by the broker: as bound
    int stop_fd;                    //  readable when asked to stop
    const char *curve_secret;       //  Z85 secret key: CURVE; NULL: none
    const char *zap_domain;         //  ZAP domain of our handler (CURVE)
    const char *host_program;       //  agentd, for host processes
    size_t abandoned;               //  workers still running at the end
    char error [256];               //  filled by the broker on failure
} agd_broker_args_t;

//  Actor: binds, signals 0 (or -1 with args->error set), serves until
//  $TERM or stop_fd, then finishes the grace period and exits.
void
    agd_broker (zsock_t *pipe, void *args);

//  ---------------------------------------------------------------------
//  agd_settings: agentd's settings, from its configuration file and its
//  command line, checked against one table of keys (agd_config.c).

typedef struct _agd_settings_t agd_settings_t;

agd_settings_t *
    agd_settings_new (void);
void
    agd_settings_destroy (agd_settings_t **self_p);
//  Set a key ("section/name") from text. origin ("FILE:LINE", "command
//  line") goes into messages. replace: a repeated scalar replaces rather
//  than fails. Returns 0, or -1 with the reason in error.
int
    agd_settings_set (agd_settings_t *self, const char *path,
                      const char *value, const char *origin, bool replace,
                      char *error, size_t size);
//  Read a ZPL file; its keys replace those set before. Returns 0, or -1
//  with "FILE:LINE: ..." in error.
int
    agd_settings_load (agd_settings_t *self, const char *file, char *error,
                       size_t size);
//  Take every key set in over: plugins add to those here, any other key
//  replaces.
void
    agd_settings_merge (agd_settings_t *self, agd_settings_t *over);
//  A key's value as given, or its default; NULL if neither.
const char *
    agd_settings_get (agd_settings_t *self, const char *path);
//  Check what single keys cannot (threads_min <= threads_max). Returns
//  0, or -1 with a reason.
int
    agd_settings_check (agd_settings_t *self, char *error, size_t size);
//  Configure a server: plugins, endpoints, every setting. Returns 0, or
//  -1 with a reason.
int
    agd_settings_apply (agd_settings_t *self, agd_server_t *server,
                        char *error, size_t size);
//  The AGD_LOG_ level of a name ("notice"), or -1.
int
    agd_log_level_of (const char *name);
//  Print the table: key, default, meaning.
void
    agd_settings_print (FILE *file);
//  Long options (struct option of getopt.h) for the settings that have
//  one: fills options (size entries, the last all zero), each with the
//  val AGD_OPTION_BASE + its key's row. Returns how many.
#define AGD_OPTION_BASE     1000
struct option;
size_t
    agd_settings_options (struct option *options, size_t size);
//  Set the key of such an option from the command line. Returns 0, or
//  -1 with a reason.
int
    agd_settings_set_option (agd_settings_t *self, int option,
                             const char *value, char *error, size_t size);
//  Print those options for a usage text: flag, meaning, default.
void
    agd_settings_usage (FILE *file);

//  ---------------------------------------------------------------------
//  agd_clients: what the broker knows of each client, by routing id.
//  An entry lives while its client has requests pending or owns agents,
//  and about a second more.

struct _agd_client_t {
    uint64_t key;                   //  hash of the routing id
    agd_client_t *chain;            //  entries with the same key
    size_t pending;                 //  requests in mailboxes, running,
                                    //  waiting, or replied to not yet
    size_t owned;                   //  agents it owns (not detached)
    agd_agent_t *agents;            //  those agents, by owner_next
    agd_account_t *account;         //  who it is, as last proven; or NULL
    int fd;                         //  connection of that proof, or -1
    bool bound;                     //  ... and it has not dropped since
    uint64_t peer_tag;              //  that connection's peer, checked
                                    //  before the broker closes it
    bool cut;                       //  closed by the broker, not back yet
    int64_t suspect_since;          //  a connection dropped since, or 0
    bool idle;                      //  holds nothing: on the idle list
    uint64_t idle_mark;             //  the sweep it became idle before
    agd_client_t *idle_prev, *idle_next;
    size_t id_size;
    uint8_t id [];                  //  routing id
};

typedef struct _agd_clients_t agd_clients_t;

//  Entries are charged to accounts of this table
agd_clients_t *
    agd_clients_new (agd_accounts_t *accounts);
void
    agd_clients_destroy (agd_clients_t **self_p);
//  The entry for a routing id, or NULL
agd_client_t *
    agd_clients_find (agd_clients_t *self, const void *id, size_t size);
//  The entry for a routing id, made if new; NULL out of memory
agd_client_t *
    agd_clients_get (agd_clients_t *self, const void *id, size_t size);
//  The entry holds nothing now (no pending, no owned), perhaps: it goes
//  at the second sweep from now unless used again. Accepts NULL.
void
    agd_clients_release (agd_clients_t *self, agd_client_t *client);
//  Free the entries idle since before the last sweep
void
    agd_clients_sweep (agd_clients_t *self);
//  The entry's messages come on connection fd (or -1, unknown), and it
//  is account; peer_tag names the peer of that connection
void
    agd_clients_bind (agd_clients_t *self, agd_client_t *client, int fd,
                      agd_account_t *account, uint64_t peer_tag);
//  Connection fd has dropped: the entry bound to it must prove itself
//  again with its next message
void
    agd_clients_dropped (agd_clients_t *self, int fd);
size_t
    agd_clients_size (agd_clients_t *self);
//  Walk the entries: the first with *cursor 0 and client NULL, then the
//  next after client; NULL at the end. The table must not change
//  meanwhile.
agd_client_t *
    agd_clients_next (agd_clients_t *self, size_t *cursor,
                      agd_client_t *client);

//  ---------------------------------------------------------------------
//  agd_future: futures given as arguments (worker side). The broker
//  resolves them (agd_refs).

#define AGD_MAX_REFS        64      //  futures in one request's arguments

typedef struct {
    char endpoint [AGP_MAX_NAME + 1];   //  the server holding the result
    uint8_t owner [AGP_MAX_NAME];   //  its key there: caller's routing id
    size_t owner_size;
    uint64_t corr;                  //  ... and the call's correlation id
    bool done;                      //  resolved (the broker's)
    bool local;                     //  on this server (the broker's)
    int status;                     //  the kept call's status, once done
    zmq_msg_t value;                //  its reply frame, once done
    void *peer;                     //  fetching it from there, or NULL
    uint64_t fetch;                 //  that FETCH's correlation id
} agd_ref_t;

struct _agd_refs_t {
    uint32_t count;                 //  references, in the order met
    uint32_t outstanding;           //  not resolved yet (the broker's)
    int64_t deadline;               //  ag_usecs () they must be in by
    agd_job_t *prev, *next;         //  the broker's list of waiting jobs
    agd_ref_t refs [];
};

//  Find the future references in args (may be NULL), every one checked:
//  *refs_p is NULL if there are none, else a list of them for the broker
//  to resolve (the caller owns it). Returns 0, or -1 with a reason (a
//  malformed reference, more than AGD_MAX_REFS: status 400).
int
    agd_future_find (const msgpack_object *args, msgpack_zone *zone,
                     agd_refs_t **refs_p, char *reason, size_t size);
//  Copy in to out with every reference replaced by its resolved value
//  (decoded into zone; the values stay in refs). Returns 0, or -1 with a
//  reason (a value that is not valid msgpack: status 424).
int
    agd_future_replace (const msgpack_object *in, agd_refs_t *refs,
                        msgpack_zone *zone, msgpack_object *out,
                        char *reason, size_t size);
void
    agd_future_free (agd_refs_t **refs_p);

//  ---------------------------------------------------------------------
//  agd_peers: the broker's connections to other servers, for the FETCH
//  of results its calls' arguments name. Replies (a value, or the error
//  it ended with, or AG_UNREACHABLE) go to an agd_store_deliver_fn.

typedef struct _agd_peers_t agd_peers_t;

//  Values larger than max_message are refused; a peer silent timeout_ms
//  with fetches pending is unreachable
agd_peers_t *
    agd_peers_new (size_t max_message, int timeout_ms);
void
    agd_peers_destroy (agd_peers_t **self_p);
//  FETCH ref's result for (job, index). Returns 0, or -1 if no
//  connection can be had.
int
    agd_peers_fetch (agd_peers_t *self, agd_ref_t *ref, agd_job_t *job,
                     uint32_t index, int64_t now);
//  Forget ref's fetch (its job goes)
void
    agd_peers_cancel (agd_peers_t *self, agd_ref_t *ref);
//  The sockets to poll: fills items (size of them); returns how many
size_t
    agd_peers_items (agd_peers_t *self, zmq_pollitem_t *items, size_t size);
//  Read what the peers sent, delivering replies
void
    agd_peers_recv (agd_peers_t *self, int64_t now,
                    agd_store_deliver_fn *deliver, void *arg);
//  Ping silent peers, fail those silent too long. Returns the ms until
//  it needs calling again, or -1.
int64_t
    agd_peers_tick (agd_peers_t *self, int64_t now,
                    agd_store_deliver_fn *deliver, void *arg);
size_t
    agd_peers_size (agd_peers_t *self);

//  ---------------------------------------------------------------------
//  agd_notify: systemd's notify protocol.

//  Send a state ("READY=1", "STOPPING=1", "WATCHDOG=1") to $NOTIFY_SOCKET.
//  Returns 0 (also when there is none), or -1.
int
    agd_notify (const char *state);
//  The watchdog interval systemd asks for, in usecs, or 0.
int64_t
    agd_notify_watchdog_usec (void);

//  ---------------------------------------------------------------------
//  agd_auth: the ZAP handler (RFC 27) that decides which CURVE clients
//  may connect. One handler serves the process (ZeroMQ looks for it at
//  inproc://zeromq.zap.01 in the czmq context); each server with CURVE
//  registers a ZAP domain of its own, with the keys it allows.

typedef struct _agd_auth_t agd_auth_t;

//  Read the client certificates in dir (every file but hidden ones and
//  *_secret) and register them under a new domain, starting the
//  handler if it is not running. log_level decides which decisions are
//  logged (refusals at AGD_LOG_WARNING). Returns NULL with a reason.
agd_auth_t *
    agd_auth_new (const char *dir, int log_level, char *error, size_t size);
//  Unregister; the handler stops with its last domain.
void
    agd_auth_destroy (agd_auth_t **self_p);
//  The ZAP domain to set on the server's socket.
const char *
    agd_auth_domain (agd_auth_t *self);
//  Read the directory again and allow what it holds now. Returns the
//  number of keys, or -1 with a reason (the keys allowed stay as they
//  were).
int
    agd_auth_reload (agd_auth_t *self, char *error, size_t size);
//  Change the log level.
void
    agd_auth_set_log_level (agd_auth_t *self, int level);
//  Check a directory of client certificates as agd_auth_new would read
//  it. Returns the number of keys, or -1 with a reason.
int
    agd_auth_check_dir (const char *dir, char *error, size_t size);

//  True if an endpoint can only be reached from this machine: ipc://,
//  or tcp:// on a loopback address (127.0.0.0/8, ::1, localhost).
bool
    agd_endpoint_is_local (const char *endpoint);

//  agentd's own: the program that host processes run (default $AGENTD
//  or the installed agentd)
void
    agd_server_set_host_program (agd_server_t *self, const char *program);

//  agd_hostrun: agentd's host role. Runs the requests its broker sends
//  over fd (a stream socket) on threads of its own, with the classes of
//  registry, until the socket ends. Returns an exit status.
typedef struct {
    int threads_min;
    int threads_max;
    int idle_ms;
    size_t max_message;
    int log_level;
} agd_hostrun_config_t;

int
    agd_hostrun (int fd, agd_registry_t *registry,
                 const agd_hostrun_config_t *config);

//  Selftests
void agd_auth_test (bool verbose);
void agd_accounts_test (bool verbose);
void agd_index_test (bool verbose);
void agd_config_test (bool verbose);
void agd_registry_test (bool verbose);
void agd_store_test (bool verbose);
void agd_clients_test (bool verbose);
void agd_server_test (bool verbose);

#endif
