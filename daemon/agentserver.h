/*  =========================================================================
    agentserver.h - the embeddable agent server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A program serves its own agent classes with this API, as agentd does:
//
//      agd_server_t *server = agd_server_new ();
//      agd_server_add_class (server, &webagent_class);
//      agd_server_bind (server, "tcp://127.0.0.1:12345");
//      agd_server_start (server);      //  serves from background threads
//      agd_server_wait (server);       //  until agd_server_stop
//      agd_server_destroy (&server);
//
//  The server never installs signal handlers, and its threads block
//  asynchronous signals, which belong to the program. A program that
//  wants SIGINT/SIGTERM to stop the server blocks them before starting
//  it, takes them with sigwait, and calls agd_server_stop (agentd does
//  this), or calls agd_server_stop from its own handler: it is
//  async-signal-safe. If the program installed czmq's handler, a signal
//  it records also stops a server that is in agd_server_wait.
//  @end

#ifndef AGENTSERVER_H_INCLUDED
#define AGENTSERVER_H_INCLUDED

#include "agent.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _agd_server_t agd_server_t;

//  Create a server with default settings. NULL if out of memory.
AG_EXPORT agd_server_t *
    agd_server_new (void);

//  Stop (if running) and destroy. Agents still alive are finalised.
//  Accepts NULL; sets *self_p to NULL.
AG_EXPORT void
    agd_server_destroy (agd_server_t **self_p);

//  How many calls servers destroyed in this process left running after
//  their grace time. Their threads still use ZeroMQ: a program that
//  exits now should _exit, as ending the ZeroMQ context (czmq does it at
//  exit) waits for those calls to return.
AG_EXPORT size_t
    agd_server_abandoned (void);

//  Register a class (borrowed: it must outlive the server). Fails if
//  the descriptor is invalid or its name is taken. Before start only.
AG_EXPORT int
    agd_server_add_class (agd_server_t *self, const ag_class_t *cls);

//  Load every class a plugin shared object lists. A path without a '/'
//  is looked for in the plugin directory (PREFIX/lib/agentd). Fails, with
//  a reason
//  from agd_server_error, if the file cannot be loaded, is not a plugin
//  of this ABI, or names a class already registered. Before start only.
AG_EXPORT int
    agd_server_load_plugin (agd_server_t *self, const char *path);

//  Add an endpoint to bind (tcp://host:port, tcp://host:*, ipc://path).
//  Binding happens in agd_server_start. Before start only.
AG_EXPORT int
    agd_server_bind (agd_server_t *self, const char *endpoint);

//  Let the server fetch the results that futures given as arguments
//  name from peer: an endpoint (tcp://host:port, ipc://path),
//  tcp://host:* for any port of that host, "local" for any ipc:// or
//  loopback tcp endpoint, or "any". Results kept by the server itself
//  are always taken from its own store; with no peer allowed (the
//  default) that is all it resolves, and a reference to any other
//  server fails with AG_DEP_FAILED. Host names are compared as written,
//  never looked up. Before start only. Returns 0, or -1 with a reason.
AG_EXPORT int
    agd_server_allow_peer (agd_server_t *self, const char *peer);
//  Settings (before start only):
//  how long a call may wait for the futures among its arguments before
//  it fails with AG_DEP_FAILED (default 30000 ms);
AG_EXPORT void
    agd_server_set_future_timeout (agd_server_t *self, int msecs);
//  most worker threads (default 512), fewest kept when idle (default 2);
AG_EXPORT void
    agd_server_set_threads (agd_server_t *self, int min, int max);
//  how long a thread above the minimum may idle before it exits
//  (default 30000 ms);
AG_EXPORT void
    agd_server_set_idle (agd_server_t *self, int msecs);
//  how long results of async calls stay fetchable (default 300000 ms)
//  and how many are kept at most (default 10000; 0 keeps the current
//  bound): whichever limit comes first ends a result's life, oldest
//  first;
AG_EXPORT void
    agd_server_set_retention (agd_server_t *self, int msecs, size_t max);
//  bytes of kept results at most (default 64 MiB; 0 leaves it as it is):
//  no client's results push out another's while it holds no more than
//  its share;
AG_EXPORT void
    agd_server_set_retention_bytes (agd_server_t *self, size_t bytes);
//  bytes held for clients' requests (queued, running, waiting) and
//  replies not yet read: for all clients (default 256 MiB, at least a
//  largest request) and for one (default 64 MiB). Past them requests get
//  AG_BUSY; a client whose unread replies pass its share is
//  disconnected. 0 leaves one as it is;
AG_EXPORT void
    agd_server_set_memory (agd_server_t *self, size_t bytes,
                           size_t client_bytes);
//  largest accepted request body (default 64 MiB);
AG_EXPORT void
    agd_server_set_max_message (agd_server_t *self, size_t bytes);
//  ZeroMQ heartbeats to clients every msecs, dropping a connection
//  silent for timeout msecs (default 10000 and 30000; msecs 0: none;
//  timeout 0: 10 x msecs). A client dropped so is gone, as if it had
//  closed its connection;
AG_EXPORT void
    agd_server_set_heartbeat (agd_server_t *self, int msecs, int timeout);
//  grace time for running calls at stop (default 10000 ms);
AG_EXPORT void
    agd_server_set_grace (agd_server_t *self, int msecs);
//  limits, each answered with AG_BUSY when reached: agents on the
//  server (default 1000000), agents one client made, detached ones too
//  (default a tenth of the first), requests one client has queued,
//  running or not yet answered (default 200000); 0 leaves a limit as it
//  is. A client is what its connection proves: its CURVE key, the
//  process at the other end of an ipc socket, else the connection;
AG_EXPORT void
    agd_server_set_limits (agd_server_t *self, size_t agents,
                           size_t agents_per_client,
                           size_t pending_per_client);
//  how long a client that owns agents may be gone (its connection
//  closed or unreachable) before its agents are deleted; detached
//  agents are never (default 10000 ms);
AG_EXPORT void
    agd_server_set_client_grace (agd_server_t *self, int msecs);
//  requests queued per client connection before TCP holds the client
//  back; nothing is dropped (default 10000; 0: no limit);
AG_EXPORT void
    agd_server_set_inbound_hwm (agd_server_t *self, int messages);
//  replies queued per client connection; past it, a client that reads
//  nothing is disconnected, and that logged (default 1000000; 0: no
//  limit);
AG_EXPORT void
    agd_server_set_outbound_hwm (agd_server_t *self, int messages);
//  the deepest msgpack nesting (1..32, default 32) and the most objects
//  in one body (1..16777216, default 1048576) accepted; past them a
//  request is answered 400. These apply to every msgpack check in the
//  process, the client library's too, from agd_server_start on. 0 leaves
//  one as it is. Returns 0, or -1 if out of range;
AG_EXPORT int
    agd_server_set_msgpack_limits (agd_server_t *self, int depth,
                                   size_t elements);
//  which messages to log (default AGD_LOG_NOTICE: start, stop, and
//  trouble; AGD_LOG_INFO adds every request, AGD_LOG_DEBUG adds replies
//  dropped for clients that left). Unlike the others, these two may also
//  be changed while the server runs, from the thread that owns it.
#define AGD_LOG_ERROR       0
#define AGD_LOG_WARNING     1
#define AGD_LOG_NOTICE      2
#define AGD_LOG_INFO        3
#define AGD_LOG_DEBUG       4
AG_EXPORT void
    agd_server_set_log_level (agd_server_t *self, int level);
//  verbose: AGD_LOG_INFO, else AGD_LOG_NOTICE.
AG_EXPORT void
    agd_server_set_verbose (agd_server_t *self, bool verbose);

//  Security (before start only). CURVE encrypts every connection and
//  lets in only the clients whose public keys are in allow_dir.
//  secret_cert is the server's certificate in czmq's zcert format: the
//  secret file NAME_secret, or its public twin NAME (NAME_secret is
//  then read); it must not be readable by group or others. allow_dir
//  holds one public certificate per allowed client (hidden files and
//  *_secret files are skipped). Both are read now: returns 0, or -1
//  with a reason from agd_server_error naming the file at fault. At
//  start the server registers with the process's ZAP handler, which it
//  starts if need be; it logs every refused client at AGD_LOG_WARNING,
//  with the client's address and key. The handler serves every czmq
//  socket of the process and refuses requests for ZAP domains that no
//  agent server registered, so a program must not run czmq's zauth
//  beside a server with CURVE.
AG_EXPORT int
    agd_server_set_curve (agd_server_t *self, const char *secret_cert,
                          const char *allow_dir);
//  Without CURVE, agd_server_start refuses endpoints other machines
//  can reach (anything but ipc:// and tcp:// on 127.0.0.0/8, ::1 or
//  localhost; tcp://*:port and tcp://0.0.0.0:port among them) unless
//  this was set to true. Default false.
AG_EXPORT void
    agd_server_set_insecure (agd_server_t *self, bool insecure);
//  Read allow_dir again, while the server runs: clients whose keys are
//  in it now may connect, others no longer may (connections already
//  made stay). Returns the number of keys allowed, or -1 with a reason
//  (the keys allowed before stay allowed). From the thread that owns
//  the server.
AG_EXPORT int
    agd_server_reload_keys (agd_server_t *self);

//  Where the code of plugin classes runs: "thread" (this process's
//  worker threads; the default for a server in a program) or "process"
//  (a host process per plugin, each an agentd started in its host role:
//  a crash there fails the calls it was running with 521 and its agents
//  are made again in a new host). The program's own classes always run
//  in threads. "process" runs $AGENTD, or the installed agentd. Returns
//  0, or -1 for another mode.
AG_EXPORT int
    agd_server_set_isolation (agd_server_t *self, const char *mode);
//  With process isolation: an agent is restarted at most max times
//  within window_ms (then it is failed: its calls get 522 until it is
//  deleted); a second restart within the window waits backoff_ms, and
//  each after it twice as long as the one before. Defaults 5, 60000, 100.
AG_EXPORT void
    agd_server_set_restarts (agd_server_t *self, int max, int window_ms,
                             int backoff_ms);
//  With process isolation: a host running one call longer than msecs is
//  killed, and its agents restarted (0, the default: no limit)
AG_EXPORT void
    agd_server_set_call_limit (agd_server_t *self, int msecs);
//  With process isolation: the call limit for the agents of one class,
//  in place of the server's (0: none for this class). Set again for the
//  same class, it replaces the first. Returns 0, or -1 (see
//  agd_server_error) if more than 32 classes have one. agd_server_start
//  fails if cls names no class the server has.
AG_EXPORT int
    agd_server_set_class_call_limit (agd_server_t *self, const char *cls,
                                     int msecs);
//  With process isolation: each host's address space, in MiB (0, the
//  default: no limit). Past it, the host's allocations fail.
AG_EXPORT void
    agd_server_set_host_memory (agd_server_t *self, int megabytes);

//  Bind every endpoint and start serving. Returns 0, or -1 with a reason
//  from agd_server_error (for example, an endpoint in use, or one that
//  is not loopback without CURVE or agd_server_set_insecure). With no
//  endpoint added, binds tcp://127.0.0.1:* .
AG_EXPORT int
    agd_server_start (agd_server_t *self);

//  Number of bound endpoints, and each one as bound (with the real port
//  where ':*' was asked). Borrowed. After start.
AG_EXPORT size_t
    agd_server_endpoints (agd_server_t *self);
AG_EXPORT const char *
    agd_server_endpoint (agd_server_t *self, size_t index);

//  Block until the server stops: agd_server_stop from another thread, or
//  SIGINT/SIGTERM seen by czmq's signal handler.
AG_EXPORT void
    agd_server_wait (agd_server_t *self);

//  Ask the server to stop: it refuses new requests (status 303), lets
//  running and queued calls finish within the grace time and replies to
//  them; calls still queued at the end of the grace time get 303, and a
//  call still running then gets no reply. Safe from any thread, from a
//  signal handler, and more than once.
AG_EXPORT void
    agd_server_stop (agd_server_t *self);

//  Check that the server's broker answers within msecs (for watchdogs).
//  Returns 0, or -1. From the thread that started the server.
AG_EXPORT int
    agd_server_ping (agd_server_t *self, int msecs);

//  Reason for the last failure of a server function. Borrowed.
AG_EXPORT const char *
    agd_server_error (agd_server_t *self);

#ifdef __cplusplus
}
#endif

#endif
