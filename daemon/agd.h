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

//  Settings the broker runs with; copied from the server at start.
typedef struct {
    int threads_min;                //  worker threads kept when idle
    int threads_max;                //  worker threads at most
    int idle_ms;                    //  idle time before a thread exits
    int retention_ms;               //  how long kept results live
    size_t retention_max;           //  how many kept results at most
    size_t max_message;             //  largest request body
    int heartbeat_ms;               //  ZMQ heartbeats to clients, or 0
    int heartbeat_timeout_ms;       //  their timeout, or 0 (10 x interval)
    int grace_ms;                   //  time running calls get at stop
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
} agd_config_t;

//  Log through czmq when level is at or below the configured one
#define AGD_LOG(config, level, fn, ...) \
    do { if ((config).log_level >= (level)) fn (__VA_ARGS__); } while (0)

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
typedef struct _agd_agent_t agd_agent_t;
typedef struct _agd_client_t agd_client_t;

struct _agd_agent_t {
    uint64_t id;                    //  unique on this server, never reused
    const ag_class_t *cls;          //  class
    void *state;                    //  touched only by the worker running it
    char *name;                     //  unique name, or NULL
    agd_client_t *owner;            //  client that owns it, or NULL
    agd_job_t *head;                //  mailbox: jobs in arrival order
    agd_job_t *tail;
    size_t queued;                  //  jobs in the mailbox
    bool busy;                      //  a worker holds some of its jobs
    uint32_t running;               //  jobs handed out, not yet returned
    bool ready;                     //  on the broker's ready queue
    bool alive;                     //  init has succeeded
    bool deleting;                  //  DELETE queued: refuse new requests
    agd_agent_t *next_ready;        //  ready queue link
    int64_t created;                //  ag_usecs () at CREATE
    uint64_t served;                //  requests completed
    uint64_t failed;                //  of which failed
};

struct _agd_job_t {
    agd_job_t *next;                //  mailbox link
    agd_agent_t *agent;             //  target
    agd_client_t *client;           //  requester, counted; or NULL
    zmq_msg_t routing;              //  requester's routing id
    agp_envelope_t env;             //  request envelope
    zmq_msg_t body;                 //  request body in, reply body out
    uint16_t status;                //  reply status, set by the worker
    bool answered;                  //  replied to already (DELETE)
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
//  agd_store: results of calls kept for FETCH.

typedef struct _agd_store_t agd_store_t;

//  Called for each fetcher waiting on a result when it arrives.
typedef void (agd_store_deliver_fn) (void *arg, zmq_msg_t *routing,
                                     uint64_t corr, int status,
                                     zmq_msg_t *body);

agd_store_t *
    agd_store_new (int retention_ms, size_t max);
void
    agd_store_destroy (agd_store_t **self_p);
//  A kept call has started: note it as pending. Returns 0 or -1.
int
    agd_store_expect (agd_store_t *self, const void *owner, size_t owner_size,
                      uint64_t corr);
//  A kept call finished at now (ag_usecs): keep a copy of its reply,
//  and deliver it to fetchers waiting for it.
void
    agd_store_complete (agd_store_t *self, const void *owner,
                        size_t owner_size, uint64_t corr, int status,
                        zmq_msg_t *body, int64_t now,
                        agd_store_deliver_fn *deliver, void *arg);
//  Look up a result. Returns AG_OK with status/body (a copy) when done;
//  AG_PENDING after adding routing/corr as a waiter, also for a call not
//  seen yet (AG_BUSY when too many wait already); AG_GONE if it expired
//  (for a while after: a minute, or the retention time).
int
    agd_store_fetch (agd_store_t *self, const void *owner, size_t owner_size,
                     uint64_t corr, zmq_msg_t *routing, uint64_t fetch_corr,
                     int *status, zmq_msg_t *body);
//  Drop expired results and ghosts, and answer fetches that waited in
//  vain. Returns the ms until the next expiry, or -1.
int
    agd_store_expire (agd_store_t *self, int64_t now,
                      agd_store_deliver_fn *deliver, void *arg);
//  Number of results held (pending and done).
size_t
    agd_store_size (agd_store_t *self);

//  ---------------------------------------------------------------------
//  agd_broker: the actor that owns the ROUTER socket.

typedef struct {
    agd_config_t config;            //  settings
    agd_registry_t *registry;       //  classes (borrowed)
    zlist_t *endpoints;             //  to bind (borrowed, strings)
    zlist_t *bound;                 //  filled by the broker: as bound
    int stop_fd;                    //  readable when asked to stop
    const char *curve_secret;       //  Z85 secret key: CURVE; NULL: none
    const char *zap_domain;         //  ZAP domain of our handler (CURVE)
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

//  ---------------------------------------------------------------------
//  agd_clients: what the broker knows of each client, by routing id.
//  An entry lives while its client has requests pending or owns agents.

struct _agd_client_t {
    uint64_t key;                   //  hash of the routing id
    agd_client_t *chain;            //  entries with the same key
    size_t pending;                 //  requests in mailboxes, running, or
                                    //  replied to not yet
    size_t owned;                   //  agents it created, not detached
    int64_t suspect_since;          //  a connection dropped since, or 0
    uint64_t gone_in;               //  the check that found it gone
    size_t id_size;
    uint8_t id [];                  //  routing id
};

typedef struct _agd_clients_t agd_clients_t;

agd_clients_t *
    agd_clients_new (void);
void
    agd_clients_destroy (agd_clients_t **self_p);
//  The entry for a routing id, or NULL
agd_client_t *
    agd_clients_find (agd_clients_t *self, const void *id, size_t size);
//  The entry for a routing id, made if new; NULL out of memory
agd_client_t *
    agd_clients_get (agd_clients_t *self, const void *id, size_t size);
//  Free the entry if it holds nothing (no pending, no owned); accepts NULL
void
    agd_clients_release (agd_clients_t *self, agd_client_t *client);
size_t
    agd_clients_size (agd_clients_t *self);
//  Walk the entries: the first with *cursor 0 and client NULL, then the
//  next after client; NULL at the end. The table must not change
//  meanwhile.
agd_client_t *
    agd_clients_next (agd_clients_t *self, size_t *cursor,
                      agd_client_t *client);

//  ---------------------------------------------------------------------
//  agd_future: futures given as arguments (worker side).

//  Copy in to out with every future reference replaced by the value it
//  stands for, fetched from the server that holds it (in needs no copy
//  when it holds none). Containers are copied into zone; fetched values
//  are held by the calling thread until agd_future_release. Returns 0,
//  or -1 with a status and reason.
int
    agd_future_resolve (const msgpack_object *in, msgpack_zone *zone,
                        msgpack_object *out, int *status, char *reason,
                        size_t size);
//  Drop the values fetched for the call that has run
void
    agd_future_release (void);
//  Close the calling thread's connections to other servers
void
    agd_future_thread_end (void);

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

//  Selftests
void agd_auth_test (bool verbose);
void agd_config_test (bool verbose);
void agd_registry_test (bool verbose);
void agd_store_test (bool verbose);
void agd_clients_test (bool verbose);
void agd_server_test (bool verbose);

#endif
