/*  =========================================================================
    agd_host.h - host processes, shared by agd_host.c and agd_hostcall.c

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#ifndef AGD_HOST_H_INCLUDED
#define AGD_HOST_H_INCLUDED

#include "agd_broker.h"

#define HOST_DOWN       0           //  not running
#define HOST_STARTING   1           //  spawned, not ready yet
#define HOST_UP         2           //  taking requests
#define START_TIMEOUT_US    (10 * 1000000)
#define STOP_WAIT_MS        2000    //  hosts get this long to go at stop
#define FRAME_SLACK         (1024 * 1024)   //  a reply beyond max_message
#define HOST_WINDOW         64      //  calls of one agent out at its host
#define HOST_WINDOW_BYTES   (1024 * 1024)   //  and their bodies, but one
#define HOST_BACKOFF_MAX_MS 10000
#define START_FAILURES      3       //  a host that fails to start this
                                    //  often fails what waits for it

struct _agd_host_t {
    uint32_t index;                 //  in the broker's table, from 1
    char *plugin;                   //  the plugin it runs
    const char *plugin_name;        //  its file name, for logs
    pid_t pid;                      //  0 when not running
    int pidfd;                      //  readable once it has ended
    int fd;                         //  our end of its socket, or -1
    uint8_t *in;                    //  read from it, not yet a frame
    size_t in_size, in_alloc;
    struct _agd_outseg_t *segs;     //  to write to it, in order
    struct _agd_outseg_t *segs_last;
    int state;                      //  HOST_*
    int64_t started;                //  ag_usecs () of the last spawn
    int64_t next_start;             //  started again no sooner
    int backoff_ms;                 //  wait after a quick death
    uint64_t starts;                //  times spawned
    uint64_t deaths;                //  times it ended
    size_t agents;                  //  agents it holds
    agd_agent_t *head;              //  those agents, by host_next
    agd_job_t *out_head;            //  requests out, oldest first
    agd_job_t *out_tail;
    int64_t next_restore;           //  an agent may be made again then
    int64_t next_limit_check;       //  calls are held to the limit then
    uint32_t start_failures;        //  ended before ready, in a row
    int64_t closed_at;              //  its socket ended then, or 0
    bool killed;                    //  by us, past the call limit
    char kill_reason [600];
    int item_fd, item_pid;          //  in this pass's poll items
};

//  agd_host.c: send a request to a host: 0, or -1 if it cannot be. A
//  large body that is a request frame's (share, its body after the
//  envelope) is sent from that frame, not copied.
int
    agd_host_send (agd_host_t *host, int command, uint64_t corr,
                   uint64_t agent, const void *body, size_t size,
                   zmq_msg_t *share);

//  agd_hostcall.c: the requests out at hosts, and what a crash does to
//  them and to the agents. A reply from host; make the agents of a host
//  that is up again whose wait is over, and send what is queued; the
//  host has ended (how, for reasons): fail what it ran, restart the
//  rest; the server stops: fail what is still out; and the method or
//  attribute a request names, for reasons (into name).
void
    agd_hostcall_reply (agd_broker_t *self, agd_host_t *host,
                        const uint8_t *frame, size_t size);
void
    agd_hostcall_restore (agd_broker_t *self, agd_host_t *host);
void
    agd_hostcall_crashed (agd_broker_t *self, agd_host_t *host, pid_t pid,
                          const char *how);
void
    agd_hostcall_abandon (agd_broker_t *self, agd_host_t *host);
//  The host does not start (how): fail what its agents have queued, and
//  the agents not made yet
void
    agd_hostcall_unstartable (agd_broker_t *self, agd_host_t *host,
                              const char *how);
void
    agd_hostcall_what (agd_broker_t *self, agd_job_t *job, char *name,
                       size_t size);

#endif
