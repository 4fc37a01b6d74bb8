/*  =========================================================================
    agd_broker.h - the broker's state, shared by the files that serve it

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The broker is one actor thread whose work is spread over files, each
//  a seam a newcomer can find: agd_broker.c (the socket, the loop,
//  reading requests and routing them, replies, stopping), agd_pool.c
//  (worker threads: handing out mailboxes, taking back what a blocked
//  thread has not started, growing and shrinking), agd_agents.c (the
//  agent table: create, look up, delete, list), agd_admit.c (who a
//  request comes from, what it may hold), agd_refs.c (futures given as
//  arguments), agd_cancel.c (calls whose callers no longer wait),
//  agd_watch.c (clients that go, and the agents they leave), and, with
//  process isolation, agd_host.c (host processes) and agd_hostcall.c
//  (the requests out at hosts, and restarts). All of it
//  runs on the broker's thread, so none of it locks, except for the
//  cancel flag a worker reads.
//  @end

#ifndef AGD_BROKER_H_INCLUDED
#define AGD_BROKER_H_INCLUDED

#include "agd.h"

#define GROW_AFTER_US   1000        //  agents wait this long before the
                                    //  pool grows for them
#define PROBE_AFTER_US  100000      //  clients are probed no sooner after
                                    //  a drop: the socket has seen it end

typedef struct _agd_broker_t agd_broker_t;
typedef struct _agd_host_t agd_host_t;
#define AGD_MAX_HOSTS   32          //  host processes a server runs
typedef struct _worker_t worker_t;
struct _worker_t {
    uint32_t id;                    //  routing id is 'W' + id
    bool idle;                      //  on the idle list
    bool leaving;                   //  told to terminate
    uint32_t outstanding;           //  jobs handed to it and not back,
                                    //  plus one for the batch's END
    agd_batch_t *batch;             //  its hand-off, ours when not open
    bool open;                      //  batch handed, END not yet back
    bool revocable;                 //  its batch may hold unclaimed chains
    int64_t progress;               //  ag_usecs () of hand-off or result
    int64_t idle_since;             //  ag_usecs () when it went idle
    worker_t *prev, *next;          //  idle list (most recent first)
};

struct _agd_broker_t {
    zsock_t *pipe;                  //  actor pipe
    agd_broker_args_t *args;        //  what the server gave us
    agd_config_t config;            //  settings
    zsock_t *frontend_sock;         //  public ROUTER
    void *frontend;                 //  its libzmq handle
    zsock_t *backend_sock;          //  inproc ROUTER to workers
    void *backend;                  //  its libzmq handle
    char backend_endpoint [64];     //  where workers connect
    ag_idmap_t *agents;             //  id -> agd_agent_t
    zhashx_t *names;                //  name -> agd_agent_t
    agd_index_t *listed;            //  agents LIST shows, in id order
    agd_job_t *lists_head;          //  LISTs waiting for their page
    agd_job_t *lists_tail;
    bool lists_waiting;             //  pages still to pack
    uint64_t next_agent_id;         //  ids are never reused
    ag_idmap_t *workers;            //  id -> worker_t
    worker_t *idle_head;            //  most recently idle
    worker_t *idle_tail;            //  longest idle
    size_t workers_total;           //  alive or starting
    size_t workers_starting;        //  not yet ready
    size_t workers_busy;            //  holding a batch
    size_t workers_idle;            //  on the idle list
    size_t batches_revocable;       //  open batches that may hold
                                    //  unclaimed chains
    int64_t next_scan;              //  when to look for blocked batches
    uint32_t next_worker_id;        //  for routing ids
    agd_agent_t *ready_head;        //  agents with work, no worker
    agd_agent_t *ready_tail;
    size_t ready_count;
    int64_t starved_since;          //  agents waiting, no thread idle; or 0
    int64_t last_done;              //  ag_usecs () a job last completed
    agd_job_t *free_jobs;           //  recycled jobs
    size_t free_count;
    agd_store_t *store;             //  kept results
    agd_accounts_t *accounts;       //  who requests are charged to
    agd_clients_t *clients;         //  clients with work or agents here
    size_t queued;                  //  bytes of requests held, for all
    agd_peers_t *peers;             //  other servers we fetch from
    agd_job_t **timed;              //  calls with deadlines: a min-heap
    size_t timed_count;
    size_t timed_alloc;
    agd_job_t *waiting_head;        //  calls waiting for argument futures,
    agd_job_t *waiting_tail;        //  in deadline order
    size_t waiting;
    char addresses [32][48];        //  this machine's interface addresses
    size_t address_count;
    size_t agents_counted;          //  agents not deleted
    void *monitor;                  //  frontend's connection events
    char monitor_endpoint [64];
    int64_t next_client_check;      //  when to look at suspects, or 0
    int64_t last_suspect;           //  when owners were last made suspects
    bool suspect_again;             //  a drop since: do it at the check
    uint64_t checks;                //  client checks made
    msgpack_sbuffer buffer;         //  for bodies the broker writes
    msgpack_packer packer;
    msgpack_zone zone;              //  for CREATE bodies
    int64_t started;                //  ag_usecs () at start
    char instance [17];             //  this start's id: 16 hex digits
    uint8_t pong [32];              //  PING reply body: {instance: id}
    size_t pong_size;
    int64_t now;                    //  ag_usecs () this pass of the loop
    int64_t next_tick;              //  next housekeeping
    bool stopping;                  //  refusing new work
    bool stopped;                   //  STOPPED sent; waiting for $TERM
    bool terminated;                //  $TERM received
    int64_t stop_deadline;          //  end of grace
    size_t jobs_pending;            //  queued or running
    uint64_t served;                //  requests answered
    uint64_t failed;                //  of which with an error status
    uint64_t fetched;               //  results delivered to FETCH
    agd_host_t **hosts;             //  host processes (agd_host.c)
    size_t host_count;
    ag_idmap_t *host_jobs;          //  corr at a host -> job out there
    uint64_t host_corr;             //  last corr used with hosts
};

//  agd_broker.c: jobs
agd_job_t *
    agd_broker_job_new (agd_broker_t *self);
void
    agd_broker_job_free (agd_broker_t *self, agd_job_t *job);
//  A kept call ends without running: its result, for those who fetch
//  it, is status and reason
void
    agd_broker_unkeep (agd_broker_t *self, agd_job_t *job, int status,
                       const char *reason);
//  A result a job was waiting for is in (agd_store_deliver_fn)
void
    agd_broker_deliver (void *arg, agd_job_t *waiter, uint32_t index,
                        int status, zmq_msg_t *body);

//  agd_admit.c: who a request comes from, what it may hold, replies
//  Find the job's client entry and the account its connection proves.
//  Returns 0, or -1 out of memory.
int
    agd_admit_identify (agd_broker_t *self, agd_job_t *job);
//  Count a request that stays against its client and account. Returns
//  0, or -1 having answered it (a limit is reached).
int
    agd_admit (agd_broker_t *self, agd_job_t *job);
//  Take a job's counts off its client and account (from job_free)
void
    agd_admit_release (agd_broker_t *self, agd_job_t *job);
//  Charge a job size bytes more (a value fetched for it). Returns NULL,
//  or the setting that refuses it (nothing charged then).
const char *
    agd_admit_more (agd_broker_t *self, agd_job_t *job, size_t size);
//  Reply to the job's requester: the request's command with AGP_REPLY,
//  its corr, status and agent, and a copy of body
void
    agd_broker_reply (agd_broker_t *self, agd_job_t *job, int status,
                      uint64_t agent, const void *body, size_t size);
//  Reply with the job's own reply frame (the worker's, status in
//  job->status); shared: the store keeps the same bytes
void
    agd_broker_reply_frame (agd_broker_t *self, agd_job_t *job,
                            uint64_t agent, bool shared);
//  Reply with an error: the body is the reason, a msgpack string
void
    agd_broker_error (agd_broker_t *self, agd_job_t *job, int status,
                      const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));
//  Reply 200 with what the broker packed into self->buffer
void
    agd_broker_send_packed (agd_broker_t *self, agd_job_t *job);

//  agd_pool.c: worker threads
void
    agd_pool_spawn (agd_broker_t *self);
//  Queue a job in its agent's mailbox
void
    agd_pool_enqueue (agd_broker_t *self, agd_agent_t *agent,
                      agd_job_t *job);
//  Put an agent with work and no worker on the ready queue
void
    agd_pool_make_ready (agd_broker_t *self, agd_agent_t *agent);
//  A job fails before it runs: answered as if it had run and failed
void
    agd_pool_fail (agd_broker_t *self, agd_job_t *job, int status,
                   const char *reason);
//  A job is done with (run, or failed before it could run): answer it,
//  and take its agent on to what is next
void
    agd_pool_finish (agd_broker_t *self, agd_job_t *job);
//  Take an agent off the ready queue, if it is on it
void
    agd_pool_unready (agd_broker_t *self, agd_agent_t *agent);
//  Hand ready agents to idle workers; grow the pool if agents still wait
void
    agd_pool_dispatch (agd_broker_t *self);
//  Take back what a worker's batch holds unstarted; returns how many
size_t
    agd_pool_revoke (agd_broker_t *self, worker_t *worker);
//  ... of every worker's batch
void
    agd_pool_revoke_all (agd_broker_t *self);
//  Read one message from a worker. Returns 0, or -1 if none is waiting.
int
    agd_pool_recv (agd_broker_t *self);
//  Let threads idle past their time go
void
    agd_pool_reap (agd_broker_t *self, int64_t now);
size_t
    agd_pool_running (agd_broker_t *self);
void
    agd_pool_stop (agd_broker_t *self);
int64_t
    agd_pool_timeout (agd_broker_t *self, int64_t now);

//  agd_agents.c: the agent table
void
    agd_agents_create (agd_broker_t *self, agd_job_t *job);
void
    agd_agents_lookup (agd_broker_t *self, agd_job_t *job);
//  From now on the agent takes no requests, and its name is free
void
    agd_agents_deleting (agd_broker_t *self, agd_agent_t *agent);
void
    agd_agents_free (agd_broker_t *self, agd_agent_t *agent);
//  Answer every job still in an agent's mailbox with an error
void
    agd_agents_flush (agd_broker_t *self, agd_agent_t *agent, int status,
                      const char *reason);
#define AGD_LIST_PAGE       1000    //  agents in a LIST reply at most
#define AGD_LIST_PER_PASS   2       //  LIST pages packed per loop pass
//  LIST: checked, and queued for its page
void
    agd_agents_list (agd_broker_t *self, agd_job_t *job);
//  Pack and send the pages due this pass. Returns true if more wait.
bool
    agd_agents_serve_lists (agd_broker_t *self);
//  An agent's init has succeeded: LIST shows it from now
void
    agd_agents_listed (agd_broker_t *self, agd_agent_t *agent);
void
    agd_agents_pack_created (agd_broker_t *self, agd_agent_t *agent);
void
    agd_pack_str (msgpack_packer *pk, const char *s);

//  agd_refs.c: the futures a call's arguments name, resolved
void
    agd_refs_init (agd_broker_t *self);
void
    agd_refs_destroy (agd_broker_t *self);
//  A job came back from its worker to have its futures resolved
void
    agd_refs_start (agd_broker_t *self, agd_job_t *job);
//  A value a waiting job needs is in (or failed)
void
    agd_refs_deliver (agd_broker_t *self, agd_job_t *job, uint32_t index,
                      int status, zmq_msg_t *body);
//  A kept call arrived whose result calls wait for: fail those it can
//  never reach
void
    agd_refs_arrived (agd_broker_t *self, agd_job_t *producer);
//  Fail the calls past their deadline; fail all (the server stops)
void
    agd_refs_expire (agd_broker_t *self);
void
    agd_refs_stop (agd_broker_t *self);
//  Fail a job waiting for its futures, now
void
    agd_refs_cancel (agd_broker_t *self, agd_job_t *job, int status,
                     const char *reason);
//  ms until a deadline or a peer needs the broker
int64_t
    agd_refs_timeout (agd_broker_t *self, int64_t now);
//  Is an endpoint this server's; may it connect there (server/peer)
bool
    agd_refs_is_self (agd_broker_t *self, const char *endpoint);
bool
    agd_refs_allowed (agd_broker_t *self, const char *endpoint);

//  agd_cancel.c: calls whose callers no longer wait
//  CANCEL: the caller's call on an agent, wherever it is
void
    agd_cancel_request (agd_broker_t *self, agd_job_t *request);
//  The agent is deleted: its queued calls are answered, its running one
//  flagged
void
    agd_cancel_agent (agd_broker_t *self, agd_agent_t *agent);
//  A call with a deadline has arrived: it is answered 504 at its
//  deadline if it is still queued then. Returns 0, or -1 out of memory
//  (then it is answered at its turn).
int
    agd_cancel_time (agd_broker_t *self, agd_job_t *job);
//  The job goes: forget its deadline
void
    agd_cancel_untime (agd_broker_t *self, agd_job_t *job);
//  Answer the queued calls past their deadlines; ms until the next one
void
    agd_cancel_expire (agd_broker_t *self);
int64_t
    agd_cancel_timeout (agd_broker_t *self, int64_t now);
void
    agd_cancel_destroy (agd_broker_t *self);

//  agd_host.c: host processes, for process isolation
//  The hosts, one per plugin (none with thread isolation). Returns 0, or
//  -1 with args->error set.
int
    agd_hosts_new (agd_broker_t *self);
//  Start them (they report ready later, in the loop)
void
    agd_hosts_start (agd_broker_t *self);
//  A new agent of a plugin's class lives in its host from now: keep
//  what it is made with there. Returns 0, or -1 out of memory.
int
    agd_hosts_place (agd_broker_t *self, agd_agent_t *agent,
                     const agp_create_t *create);
//  An agent goes: out of its host's list
void
    agd_hosts_forget (agd_broker_t *self, agd_agent_t *agent);
//  An agent in a host has work, perhaps: its next request goes there
void
    agd_hosts_ready (agd_broker_t *self, agd_agent_t *agent);
//  A call out at a host was cancelled: the host is told
void
    agd_hosts_cancel (agd_broker_t *self, agd_job_t *job);
//  Poll items: fills items (size of them); returns how many. Then the
//  pass handles what they report.
size_t
    agd_hosts_items (agd_broker_t *self, zmq_pollitem_t *items, size_t size);
void
    agd_hosts_poll (agd_broker_t *self, zmq_pollitem_t *items);
//  Write what waits for the hosts (at the end of each pass: one write
//  for many requests)
void
    agd_hosts_flush (agd_broker_t *self);
//  Timers: restarts, the call limit. And ms until they need it.
void
    agd_hosts_tick (agd_broker_t *self);
int64_t
    agd_hosts_timeout (agd_broker_t *self, int64_t now);
//  Figures for INFO: [{plugin, pid, state, agents, starts}]
void
    agd_hosts_pack (agd_broker_t *self, msgpack_packer *pk);
//  The pid of an agent's host, or 0
int
    agd_hosts_pid (agd_agent_t *agent);
//  At stop: answer calls still out, stop the hosts; then free them
void
    agd_hosts_stop (agd_broker_t *self);
void
    agd_hosts_destroy (agd_broker_t *self);

//  agd_watch.c: clients that go
int64_t
    agd_watch_grace_us (agd_broker_t *self);
void
    agd_watch_check_by (agd_broker_t *self, int64_t due);
void
    agd_watch_check (agd_broker_t *self);
void
    agd_watch_monitor (agd_broker_t *self);

#endif
