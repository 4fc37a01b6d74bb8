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
#define HOST_BACKOFF_MAX_MS 10000

struct _agd_host_t {
    uint32_t index;                 //  in the broker's table, from 1
    char *plugin;                   //  the plugin it runs
    const char *plugin_name;        //  its file name, for logs
    pid_t pid;                      //  0 when not running
    int pidfd;                      //  readable once it has ended
    int out_fd;                     //  its stdout: the ready line
    int watch_fd;                   //  it stops when this closes
    char line [320];                //  ready line so far
    size_t line_len;
    void *sock;                     //  DEALER to it, once ready
    char endpoint [256];
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
    bool killed;                    //  by us, past the call limit
    char kill_reason [600];
    int item_sock, item_pid, item_out;  //  in this pass's poll items
};

//  agd_hostcall.c: the requests out at hosts, and what a crash does to
//  them and to the agents. A reply from host; make the agents of a host
//  that is up again whose wait is over, and send what is queued; the
//  host has ended (how, for reasons): fail what it ran, restart the
//  rest; the server stops: fail what is still out; and the method or
//  attribute a request names, for reasons (into name).
void
    agd_hostcall_reply (agd_broker_t *self, agd_host_t *host,
                        zmq_msg_t *msg);
void
    agd_hostcall_restore (agd_broker_t *self, agd_host_t *host);
void
    agd_hostcall_crashed (agd_broker_t *self, agd_host_t *host, pid_t pid,
                          const char *how);
void
    agd_hostcall_abandon (agd_broker_t *self, agd_host_t *host);
void
    agd_hostcall_what (agd_broker_t *self, agd_job_t *job, char *name,
                       size_t size);

#endif
