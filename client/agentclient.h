/*  =========================================================================
    agentclient.h - libagentclient: connections, agent handles, futures

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  An application connects to an agent server (agentd, or a program that
//  embeds the server), creates agents there and calls them through
//  handles. A sync method blocks the caller until it has run; an async
//  method returns a future at once. Replies are matched to futures by
//  correlation id, in whatever order they arrive.
//
//  Every function here is thread-safe on a shared connection. A thread
//  that waits reads the replies itself: there is no I/O thread.
//
//  Errors: functions returning a pointer return NULL on failure, int
//  functions return -1. Either way agc_status () and agc_reason () tell
//  the calling thread what went wrong, like errno.
//  @end

#ifndef AGENTCLIENT_H_INCLUDED
#define AGENTCLIENT_H_INCLUDED

#include "agent.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _agc_conn_t agc_conn_t;
typedef struct _agc_agent_t agc_agent_t;
typedef struct _agc_future_t agc_future_t;

//  Wait forever (only where a function says it accepts this).
#define AGC_FOREVER (-1)

//  ---------------------------------------------------------------------
//  Last error of the calling thread.

//  Status of the last failed call in this thread (an AG_ code), or
//  AG_OK if none failed yet.
AG_EXPORT int
    agc_status (void);

//  Reason of the last failed call in this thread. Borrowed; valid until
//  this thread's next libagentclient call.
AG_EXPORT const char *
    agc_reason (void);

//  ---------------------------------------------------------------------
//  Connections.

//  Connect to a server endpoint (tcp://host:port or ipc://path). Returns
//  at once; the connection is made in the background and a server that
//  cannot be reached shows up as AG_UNREACHABLE on the first call.
//  Returns NULL if the endpoint is malformed.
//  When the environment sets AGENTD_SERVER_KEY (the path of the server's
//  public certificate) and AGENTD_CLIENT_CERT (the path of this client's
//  certificate, whose secret half is that path with _secret added), the
//  connection uses CURVE with them, as agc_conn_new_secure: so do the
//  connections the library makes itself (agc_agent_to_dist and
//  agc_agent_new_dist to an endpoint), and a program written without
//  CURVE reaches a server that requires it. One of the two set without
//  the other, or a certificate that cannot be read, is an error
//  (AG_BAD_REQUEST, the reason naming the variable and the file).
AG_EXPORT agc_conn_t *
    agc_conn_new (const char *endpoint);

//  Connect with CURVE: the connection is encrypted, and the server
//  knows this client by its key. server_cert is the server's public
//  certificate (czmq's zcert format, as agentctl keygen writes it);
//  client_cert is this client's certificate: its public file NAME or
//  its secret file NAME_secret, which is read either way and must not
//  be readable by group or others. The environment is not consulted.
//  Returns NULL if the endpoint is malformed or a certificate cannot be
//  read (AG_BAD_REQUEST, the reason naming the file).
//  A server that refuses this client's key gives it no reply: ZeroMQ
//  reports the refusal only as an event on the socket, which the
//  library watches. Requests pending then fail with AG_DENIED, and so do
//  requests sent before the refusal was seen; each later request
//  connects again, so a key the server allows later gets in. A wrong
//  server key shows as AG_UNREACHABLE after the connection's timeout (the
//  server cannot decrypt the handshake and drops it), and a server
//  without CURVE as AG_UNREACHABLE at once.
AG_EXPORT agc_conn_t *
    agc_conn_new_secure (const char *endpoint, const char *server_cert,
                         const char *client_cert);

//  Start a child agent server for this process (child mode): an agentd
//  that loads the given plugin (NULL: none) and listens on an ephemeral
//  loopback port, and connect to it. Returns once the child is ready.
//  The child dies with this process, even if it is killed, and stops
//  when the connection and every handle made on it are destroyed. The
//  agentd program is $AGENTD if set, else the installed one, else agentd
//  on the PATH. NULL on failure (agc_status tells why). The child
//  listens on loopback without CURVE, whatever AGENTD_SERVER_KEY says.
AG_EXPORT agc_conn_t *
    agc_conn_spawn (const char *plugin);

//  The child server's process id, or 0 if this connection has none.
AG_EXPORT int
    agc_conn_pid (agc_conn_t *self);

//  Give up this reference to a connection. It closes (and its child
//  server, if any, stops) once no agent handle and no future made on it
//  remains. Accepts NULL; sets *self_p to NULL.
AG_EXPORT void
    agc_conn_destroy (agc_conn_t **self_p);

//  The endpoint this connection was made to. Borrowed.
AG_EXPORT const char *
    agc_conn_endpoint (agc_conn_t *self);

//  How long a server may stay silent while replies are awaited before
//  every pending future on this connection fails with AG_UNREACHABLE.
//  The client pings the server after a quarter of this without word
//  from it. Default 10000 ms.
AG_EXPORT void
    agc_conn_set_timeout (agc_conn_t *self, int msecs);

//  Round trip to the server. Returns the time in microseconds, or -1.
AG_EXPORT int64_t
    agc_conn_ping (agc_conn_t *self);

//  Ask the server about itself (INFO): version, classes with their
//  methods, counters. Caller owns the value; NULL on failure.
AG_EXPORT ag_value_t *
    agc_conn_info (agc_conn_t *self);

//  List the server's agents (LIST): an array of maps (id, name, class,
//  served, queued, age_ms, busy) in ascending id order, asked for in
//  pages of AGC_LIST_PAGE. Caller owns the value; NULL on failure.
AG_EXPORT ag_value_t *
    agc_conn_list (agc_conn_t *self);
//  One page of it: up to limit agents (the server sends AGC_LIST_PAGE at
//  most) whose ids are above after (0: from the first). A page shorter
//  than asked for is the last. Caller owns the value; NULL on failure.
#define AGC_LIST_PAGE 1000
AG_EXPORT ag_value_t *
    agc_conn_list_page (agc_conn_t *self, uint64_t after, size_t limit);

//  ---------------------------------------------------------------------
//  Several servers: where agents go.

typedef struct _agc_cluster_t agc_cluster_t;

typedef enum {
    AGC_ROUND_ROBIN = 0,            //  each server in turn
    AGC_LEAST_LOADED = 1            //  the fewest requests pending, then
                                    //  the fewest agents (INFO figures)
} agc_placement_t;

//  A set of servers to create agents on: endpoints separated by commas
//  or white space ("tcp://a:5670, tcp://b:5670"), each connected as by
//  agc_conn_new (so the environment's CURVE settings apply). NULL if the
//  list is empty, holds an endpoint twice or a malformed one
//  (AG_BAD_REQUEST, naming it).
AG_EXPORT agc_cluster_t *
    agc_cluster_new (const char *endpoints, agc_placement_t placement);

//  Close the cluster's connections. Agents made through it keep their
//  own references and stay usable. Accepts NULL; sets *self_p to NULL.
AG_EXPORT void
    agc_cluster_destroy (agc_cluster_t **self_p);

//  Create an agent on one of the servers, as agc_agent_new.
//  Unnamed, it goes where the placement says. AGC_LEAST_LOADED asks each
//  server for its INFO (all at once) and picks the fewest requests
//  pending, then the fewest agents; equal servers take turns, and one
//  whose INFO fails as below is passed over this time. If the
//  server cannot take the agent (AG_UNREACHABLE, AG_STOPPING, AG_BUSY,
//  AG_NO_CLASS, AG_DENIED), the next in order is tried, until each has
//  been tried once; an error that would be the same anywhere
//  (AG_BAD_ARGS, AG_INIT_FAILED, ...) is returned at once. A server
//  found unreachable is tried last for the cluster's timeout.
//  Named, it goes to the server its name hashes to (rendezvous hashing
//  over the endpoints), whatever the placement: every process with the
//  same list of endpoints puts and finds that name on the same server,
//  and that server's check makes the name unique in the cluster. If that
//  server cannot take it, the create fails (no other is tried).
AG_EXPORT agc_agent_t *
    agc_cluster_create (agc_cluster_t *self, const char *class_name,
                        const ag_value_t *args, const char *name);

//  A handle on a named agent anywhere in the cluster: asked first of the
//  server the name hashes to, then of all the others at once (except
//  those found unreachable within the cluster's timeout). NULL with
//  AG_NO_AGENT if none has it (the reason names any server that could
//  not be asked), or with the error of the server the name hashes to if
//  that one could not be asked.
AG_EXPORT agc_agent_t *
    agc_cluster_lookup (agc_cluster_t *self, const char *name);

//  How many servers the cluster has.
AG_EXPORT size_t
    agc_cluster_size (agc_cluster_t *self);

//  The connection to a server of the cluster, in the order given
//  (borrowed), NULL past the end: for INFO, LIST, or agc_agent_new on a
//  server of your choice.
AG_EXPORT agc_conn_t *
    agc_cluster_conn (agc_cluster_t *self, size_t index);

//  agc_conn_set_timeout on every connection of the cluster; also how
//  long an unreachable server is tried last. Default 10000 ms.
AG_EXPORT void
    agc_cluster_set_timeout (agc_cluster_t *self, int msecs);

//  ---------------------------------------------------------------------
//  Classes.

//  Load a plugin into this process (once; it stays loaded) and find a
//  class in it, for local agents and child servers. A path without a
//  '/' is looked for in the plugin directory (PREFIX/lib/agentd).
//  Returns the class (borrowed, valid for the life of the process), or
//  NULL.
AG_EXPORT const ag_class_t *
    agc_class_load (const char *plugin, const char *name);

//  ---------------------------------------------------------------------
//  Agent handles. One handle type for local and distributed agents:
//  agc_agent_call, agc_agent_getattr and agc_agent_destroy work the same
//  on both, so code written for local agents runs unchanged on
//  distributed ones.

//  A handle on an agent that already exists on the server, by id or by
//  name: one LOOKUP request, answered from the server's index. The agent
//  stays when the handle is released; agc_agent_destroy deletes it. NULL
//  if there is no such agent (AG_NO_AGENT) or the server cannot be asked.
AG_EXPORT agc_agent_t *
    agc_agent_attach (agc_conn_t *conn, uint64_t id);
AG_EXPORT agc_agent_t *
    agc_agent_lookup (agc_conn_t *conn, const char *name);

//  Drop a handle, leaving its agent alive (on its server; a local agent
//  is finalised, having nowhere else to live). Accepts NULL; sets
//  *self_p to NULL.
AG_EXPORT void
    agc_agent_release (agc_agent_t **self_p);

//  Create a local agent: its class's init runs here, now, and calls run
//  in the calling thread (one at a time). NULL if init fails.
AG_EXPORT agc_agent_t *
    agc_agent_new_local (const ag_class_t *cls, const ag_value_t *args);

//  Move a local agent to a server, the guide's to_dist (): the agent is
//  re-created there from the init arguments it was created with, plus
//  its current state when its class can save and load it; the local
//  object is finalised, and the handle becomes a proxy. endpoint NULL:
//  child mode, a new child server for this agent (its class must come
//  from a plugin); otherwise independent mode, the server at endpoint.
//  Fails (the agent stays local) if the agent is already distributed.
AG_EXPORT int
    agc_agent_to_dist (agc_agent_t *self, const char *endpoint);

//  Move a local agent onto a connection, as above (for example, a child
//  from agc_conn_spawn that several agents share).
AG_EXPORT int
    agc_agent_to_conn (agc_agent_t *self, agc_conn_t *conn);

//  Create an agent directly on a server, the guide's to_dist init
//  argument: init runs once, there, never here. endpoint NULL: a new
//  child server. NULL on failure.
AG_EXPORT agc_agent_t *
    agc_agent_new_dist (const ag_class_t *cls, const ag_value_t *args,
                        const char *endpoint);

//  True if the agent runs in this process.
AG_EXPORT bool
    agc_agent_is_local (agc_agent_t *self);

//  The connection of a distributed agent (borrowed), NULL if local.
AG_EXPORT agc_conn_t *
    agc_agent_conn (agc_agent_t *self);

//  Create an agent of a class on the server. The class's init runs once,
//  there, with args (borrowed; NULL means nil). name, if not NULL, must
//  be unique on the server. Blocks until init has run. Returns the
//  handle, or NULL (agc_status: AG_NO_CLASS, AG_NAME_TAKEN,
//  AG_INIT_FAILED, AG_UNREACHABLE, ...).
AG_EXPORT agc_agent_t *
    agc_agent_new (agc_conn_t *conn, const char *class_name,
                   const ag_value_t *args, const char *name);

//  The agents a connection creates belong to it: when the client has
//  gone (its connection closed, or unreachable) for the server's
//  client grace time, they are deleted. A detached agent belongs to no
//  one and stays until deleted. Otherwise as agc_agent_new.
AG_EXPORT agc_agent_t *
    agc_agent_new_detached (agc_conn_t *conn, const char *class_name,
                            const ag_value_t *args, const char *name);

//  Destroy a handle and its agent: a local agent's fini runs now; a
//  distributed one is deleted on its server, which cancels the calls
//  still queued for it (they fail with AG_CANCELLED, never run) and
//  flags the one running; fini runs once that has returned. The
//  delete is sent, not waited for: requests
//  sent after it on the same connection see the agent gone, and a
//  connection being closed lingers up to its timeout to deliver it.
//  Accepts NULL; sets *self_p to NULL. Returns 0, or -1 if the delete
//  could not be sent (the handle is freed in any case).
AG_EXPORT int
    agc_agent_destroy (agc_agent_t **self_p);

//  The same, but wait until the server confirms the delete. Returns 0,
//  or -1 (agc_status: AG_NO_AGENT if the agent was already gone,
//  AG_UNREACHABLE, ...); the handle is freed in any case.
AG_EXPORT int
    agc_agent_delete (agc_agent_t **self_p);

//  The agent's id on its server; 0 for a local agent.
AG_EXPORT uint64_t
    agc_agent_id (agc_agent_t *self);

//  The agent's class name. Borrowed.
AG_EXPORT const char *
    agc_agent_class (agc_agent_t *self);

//  True if the named method is async (returns a future at once). False
//  for sync and for unknown methods.
AG_EXPORT bool
    agc_agent_is_async (agc_agent_t *self, const char *method);

//  Call a method with args (borrowed; NULL means nil). A sync method
//  blocks until the agent has run it and returns a resolved future; an
//  async method returns a pending future at once. Either way, read the
//  outcome with agc_future_status () and agc_future_value (). Returns
//  NULL only when out of memory. Caller owns the future.
AG_EXPORT agc_future_t *
    agc_agent_call (agc_agent_t *self, const char *method,
                    const ag_value_t *args);

//  The same, with a deadline msecs from now (AGC_FOREVER: none; a
//  negative value is AG_BAD_REQUEST). The call fails with AG_DEADLINE
//  if its result has not come by then: a sync method blocks no longer, an
//  async one's future resolves then. A call still queued on the server
//  at its deadline never runs; a running one sees ag_call_cancelled (),
//  and if it returns after its deadline, its result is AG_DEADLINE for
//  everyone (a future reference to it included). Called from inside a
//  method that has a deadline, agc_agent_call and this get no more time
//  than that method has left.
AG_EXPORT agc_future_t *
    agc_agent_call_within (agc_agent_t *self, const char *method,
                           const ag_value_t *args, int msecs);

//  The guide's agent (x): call the agent's reply method with a Msg (as
//  agc_agent_call (self, "reply", msg)).
AG_EXPORT agc_future_t *
    agc_agent_reply (agc_agent_t *self, const ag_value_t *msg);

//  Call a method and wait for its value, whatever its mode. Returns the
//  value (caller owns), or NULL on failure (agc_status tells why).
AG_EXPORT ag_value_t *
    agc_agent_call_value (agc_agent_t *self, const char *method,
                          const ag_value_t *args);

//  Read an attribute. Caller owns the value; NULL on failure
//  (AG_NO_ATTR, AG_NO_AGENT, ...).
AG_EXPORT ag_value_t *
    agc_agent_getattr (agc_agent_t *self, const char *attr);

//  ---------------------------------------------------------------------
//  Futures. A future belongs to one thread at a time.

//  Wait until the future is resolved or msecs pass (AGC_FOREVER: no
//  limit; a dead server still fails it after the connection timeout).
//  Returns 0 when resolved (successfully or not), -1 on timeout
//  (agc_status AG_TIMEOUT) or if the thread cannot wait (AG_INTERNAL).
//  A future keeps its connection open until it is destroyed.
AG_EXPORT int
    agc_future_wait (agc_future_t *self, int msecs);

//  True once resolved.
AG_EXPORT bool
    agc_future_ready (agc_future_t *self);

//  The outcome: AG_OK, a remote status, or a local one (AG_UNREACHABLE,
//  AG_CLOSED). AG_PENDING while not resolved.
AG_EXPORT int
    agc_future_status (agc_future_t *self);

//  The reason for a failed status. Borrowed; "" on success.
AG_EXPORT const char *
    agc_future_reason (agc_future_t *self);

//  The value, once resolved with AG_OK; NULL otherwise. Borrowed.
AG_EXPORT const ag_value_t *
    agc_future_value (agc_future_t *self);

//  Wait (as agc_future_wait), then take the value out: caller owns it.
//  NULL on failure or timeout; agc_status () tells which.
AG_EXPORT ag_value_t *
    agc_future_result (agc_future_t *self, int msecs);

//  The correlation id the request went out with.
AG_EXPORT uint64_t
    agc_future_id (agc_future_t *self);

//  A value that stands for the future's result, to pass to a call on any
//  agent, on any server, as an argument or inside one (a Msg's content,
//  say), or to agc_agent_new as the init arguments or inside them: the
//  server that runs that call (or init) fetches the result itself,
//  directly from the server that produces it, and waits for it if need
//  be; a call is sent at once. If the future fails, so does the call (or
//  the create), with AG_DEP_FAILED and the original failure in its
//  reason. Only the
//  future of an async call on a server will do (its result is kept
//  there for the server's retention time); NULL otherwise. Caller owns
//  the value; the future may be destroyed meanwhile.
AG_EXPORT ag_value_t *
    agc_future_ref (agc_future_t *self);

//  Cancel the call a pending future stands for: the future resolves
//  with AG_CANCELLED at once, and the server is told. A call still
//  queued there never runs; a running one sees ag_call_cancelled (), and
//  whatever it returns, its result is AG_CANCELLED for everyone. Returns
//  0, or -1 if the future was resolved already (agc_status AG_GONE; the
//  future is unchanged).
AG_EXPORT int
    agc_future_cancel (agc_future_t *self);

//  Destroy a future, pending or not (a late reply is dropped). Accepts
//  NULL; sets *self_p to NULL.
AG_EXPORT void
    agc_future_destroy (agc_future_t **self_p);

//  Wait until all futures are resolved. Returns 0, or -1 on timeout.
AG_EXPORT int
    agc_future_wait_all (agc_future_t **futures, size_t count, int msecs);

//  Wait until any future is resolved. Returns its index, or -1 on
//  timeout.
AG_EXPORT int
    agc_future_wait_any (agc_future_t **futures, size_t count, int msecs);

#ifdef __cplusplus
}
#endif

#endif
