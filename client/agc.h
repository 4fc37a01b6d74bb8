/*  =========================================================================
    agc.h - private umbrella header of libagentclient

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#ifndef AGC_H_INCLUDED
#define AGC_H_INCLUDED

#include "../common/ag_common.h"
#include <pthread.h>
#include <stdatomic.h>
#include "agentclient.h"
#include "../daemon/agentserver.h"

typedef struct _agc_waiter_t agc_waiter_t;
typedef struct _agc_watcher_t agc_watcher_t;

//  A waiting thread's entry in a connection's list of waiters
typedef struct _agc_node_t agc_node_t;
struct _agc_node_t {
    agc_waiter_t *waiter;
    agc_node_t *next;
};

//  A connection: agc_open.c opens and closes it, agc_conn.c sends and
//  reads on it
struct _agc_conn_t {
    char *endpoint;                 //  as given
    void *socket;                   //  DEALER
    int fd;                         //  its ZMQ_FD
    pthread_mutex_t lock;           //  guards everything below
    uint64_t next_corr;             //  last correlation id used
    ag_idmap_t *pending;            //  corr -> future
    agc_waiter_t *reader;           //  thread reading replies, or NULL
    agc_node_t *waiters;            //  threads waiting on this connection
    int timeout;                    //  ms of silence that means dead
    int64_t quiet_from;             //  usecs: start of current silence
    uint64_t ping_corr;             //  outstanding ping, or 0
    uint64_t hello_corr;            //  first ping, for the instance id
    bool hello_sent;                //  that ping has gone out
    char instance [17];             //  the server's instance id, or ""
    int64_t ping_sent;              //  usecs it went out
    uint8_t identity [16];          //  our routing id
    int refs;                       //  the creator's, plus one per handle
    size_t orphans;                 //  pending requests nobody waits for
    bool shared;                    //  listed among the shared (agc_open.c)
    int child;                      //  child server's pid, or 0
    int watch_fd;                   //  child's watch pipe, or -1
    bool curve;                     //  the socket uses CURVE
    bool connected;                 //  a connection's handshake is done,
                                    //  and it has not dropped since
    void *monitor;                  //  PAIR on the socket's events (a
                                    //  drop; the handshake's, for CURVE),
                                    //  read by the watcher's thread
    agc_watcher_t *watcher;         //  the thread that reads it
    bool refused;                   //  the server refused our key:
                                    //  connect again before sending
};

//  Fail every pending future of a connection with status and reason.
//  Connection locked.
void
    agc_conn_fail_all (agc_conn_t *self, int status, const char *reason);

//  The thread that reads every connection's socket events (agc_watch.c):
//  one per ZeroMQ context. Destroy it once no connection is added.
agc_watcher_t *
    agc_watcher_new (void);

void
    agc_watcher_destroy (agc_watcher_t **self_p);

//  Monitor a connection's socket, and hand the monitor to the watcher.
//  Returns 0, or -1 with the thread's error set.
int
    agc_watcher_add (agc_watcher_t *self, agc_conn_t *conn, void *context);

//  Stop monitoring a connection's socket; returns once the watcher no
//  longer touches the connection. Connection not locked.
void
    agc_watcher_remove (agc_watcher_t *self, agc_conn_t *conn);

struct _agc_future_t {
    agc_conn_t *conn;               //  used only while not done
    uint64_t corr;                  //  correlation id
    uint8_t command;                //  request command
    atomic_bool done;               //  resolved: the fields below are set
    int status;                     //  AG_ status once done
    char *reason;                   //  reason for a failed status
    ag_value_t *value;              //  value when status is AG_OK
    agc_waiter_t *waiter;           //  thread waiting for it, or NULL
    bool orphan;                    //  nobody waits: freed when resolved
    bool kept;                      //  the server keeps its result
    uint64_t agent;                 //  the request's target agent
    int64_t deadline;               //  ag_usecs () it fails by, or 0
};

//  Record the calling thread's last error. Returns -1.
int
    agc_set_error (int status, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Copy a failed future's status and reason into the thread's error.
void
    agc_set_error_from (agc_future_t *future);

//  Fail a pending future now, unless a reply has resolved it (what comes
//  for it later is dropped), with the reason "call N " + what. Returns
//  true if this failed it. Connection not locked.
bool
    agc_future_give_up (agc_future_t *future, int status, const char *what);

//  A future past its deadline fails (AG_DEADLINE). Returns true if the
//  future is done.
bool
    agc_future_expire (agc_future_t *future, int64_t now);

//  A future that is already resolved (local failures).
agc_future_t *
    agc_future_resolved (int status, const char *reason, ag_value_t *value);

//  Send a request; the returned future resolves with its reply. Never
//  NULL except out of memory: a send failure resolves the future.
agc_future_t *
    agc_conn_request (agc_conn_t *self, uint8_t command, uint64_t agent,
                      uint16_t flags, const void *body, size_t size);

//  Same, for a request with a deadline (ag_usecs; 0 none): the future
//  fails with AG_DEADLINE then, if no reply came
agc_future_t *
    agc_conn_request_by (agc_conn_t *self, uint8_t command, uint64_t agent,
                         uint16_t flags, const void *body, size_t size,
                         int64_t deadline);

//  Send a request whose reply nobody waits for: it is read and
//  dropped. The connection, when closed, lingers up to its timeout to
//  deliver it. Returns 0, or -1 if it could not be sent.
int
    agc_conn_post (agc_conn_t *self, uint8_t command, uint64_t agent,
                   const void *body, size_t size);

//  Send a request and wait for its reply. Returns the future (resolved,
//  caller owns), or NULL out of memory.
agc_future_t *
    agc_conn_roundtrip (agc_conn_t *self, uint8_t command, uint64_t agent,
                        const void *body, size_t size);

//  Ask a server for an agent by id, or (name not NULL) by name: the
//  LOOKUP request, sent. Never NULL except out of memory; an id of 0 or a
//  name no agent can have resolves the future with AG_NO_AGENT at once.
agc_future_t *
    agc_lookup_send (agc_conn_t *conn, uint64_t id, const char *name);

//  The handle a LOOKUP's future stands for, once it resolves (waiting as
//  long as the connection allows). Destroys the future. NULL with the
//  thread's error set if there is no such agent or it could not be
//  asked; the error names the connection's endpoint.
agc_agent_t *
    agc_lookup_handle (agc_conn_t *conn, agc_future_t **future_p);

//  Take a reference to a connection (each agent handle holds one).
agc_conn_t *
    agc_conn_ref (agc_conn_t *self);

//  A connection made by the library for an endpoint, shared by the
//  agents moved there: one reference, released with agc_conn_destroy.
agc_conn_t *
    agc_conn_shared (const char *endpoint);

//  The connection owns a child server: stop it when the connection
//  closes. watch_fd is the write end of the pipe the child watches.
void
    agc_conn_adopt_child (agc_conn_t *self, int pid, int watch_fd);

//  Start a child agentd loading plugin. Returns its pid, the endpoint it
//  listens on and the write end of its watch pipe, or -1.
int
    agc_spawn_agentd (const char *plugin, char *endpoint, size_t size,
                      int *watch_fd);

void agc_conn_test (bool verbose);

#endif
