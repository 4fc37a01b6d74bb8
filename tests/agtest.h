/*  =========================================================================
    agtest.h - what agtest's files share: the run, daemons and helpers

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  agtest's cases are grouped by area, a file each: agtest_calls.c
//  (agents, calls, lists, and what the wire refuses), agtest_server.c
//  (the server's life: kills, stops, fetches, threads, the pool),
//  agtest_faults.c (clients that go, restarts, limits, floods, futures
//  across servers), agtest_seed.c (the guide's modes: local, to_dist,
//  child servers) and agtest_ops.c (configuration, signals, systemd).
//  agtest.c holds the run: its settings, the daemons it starts, the
//  helpers every area uses, and the table of cases.
//  @end

#ifndef AGTEST_H_INCLUDED
#define AGTEST_H_INCLUDED

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "testlib.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

typedef tl_proc_t daemon_t;

//  The run (agtest.c)
extern const char *agt_build;       //  the build directory
extern bool agt_verbose;
extern bool agt_valgrind;           //  every agentd under valgrind
extern int agt_slow;                //  time bounds multiply by this
extern bool agt_capture_stderr;     //  the next daemon's stderr on a pipe
extern char agt_plugin [300];       //  testclasses.so
extern const ag_class_t agt_tally_class;    //  linked in, not a plugin

int
    agt_daemon_spawn (daemon_t *self, const char *const *args,
                      const char *const *env);

int
    agt_daemon_start (daemon_t *self, const char *endpoint, ...);

int
    agt_daemon_stop (daemon_t *self);

void
    agt_daemon_kill (daemon_t *self);

int
    agt_agentd_run (char *message, size_t size, const char *const *args);

agc_agent_t *
    agt_counter (agc_conn_t *conn, int64_t start);

int64_t
    agt_info_int (agc_conn_t *conn, const char *section, const char *key);

int64_t
    agt_int_result (agc_future_t *future);

int
    agt_hold (const char *endpoint);

int
    agt_lookup_mode (const char *endpoint, const char *name);

int
    agt_orphan_parent (void);

int
    agt_raw (void *dealer, const void *env, size_t env_size, const void *body,
             size_t body_size, int parts, int msecs, char *reason,
             size_t size);

int
    agt_test_actor_semantics (const char *endpoint);

int
    agt_test_agentbase (const char *endpoint);

int
    agt_test_big_value (const char *endpoint);

int
    agt_test_child_errors (const char *unused);

int
    agt_test_client_gone (const char *unused);

int
    agt_test_closed_lingering (const char *unused);

int
    agt_test_command_line (const char *unused);

int
    agt_test_config (const char *unused);

int
    agt_test_deep_burst (const char *endpoint);

int
    agt_test_embedded (const char *unused);

int
    agt_test_errors (const char *endpoint);

int
    agt_test_fetch (const char *unused);

int
    agt_test_flood (const char *unused);

int
    agt_test_futures (const char *endpoint);

int
    agt_test_garbage (const char *unused);

int
    agt_test_graceful_stop (const char *unused);

int
    agt_test_head_of_line (const char *unused);

int
    agt_test_hostile_input (const char *unused);

int
    agt_test_hundred_agents (const char *endpoint);

int
    agt_test_init_once (const char *endpoint);

int
    agt_test_ipc (const char *unused);

int
    agt_test_killed_server (const char *unused);

int
    agt_test_lifecycle (const char *endpoint);

int
    agt_test_limits (const char *unused);

int
    agt_test_list_pages (const char *unused);

int
    agt_test_named_across (const char *endpoint);

int
    agt_test_notify (const char *unused);

int
    agt_test_orphans (const char *unused);

int
    agt_test_placement (const char *unused);

int
    agt_test_pool (const char *unused);

int
    agt_test_restart (const char *unused);

int
    agt_test_restart_behind (const char *unused);

int
    agt_test_seed_example (const char *endpoint);

int
    agt_test_seed_programs (const char *endpoint);

int
    agt_test_shared_child (const char *unused);

int
    agt_test_small_hwm (const char *unused);

int
    agt_test_stop_fast (const char *unused);

int
    agt_test_threads (const char *endpoint);

int
    agt_test_to_dist_child (const char *unused);

int
    agt_test_to_dist_independent (const char *endpoint);

int
    agt_test_waiting (const char *endpoint);

int
    agt_test_zero_migration (const char *endpoint);

#endif
