/*  =========================================================================
    testclasses - agent classes the integration tests drive

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Counter: a stateful agent with sync and async methods, attributes, a
//  method that fails, a private method that must stay unreachable, and a
//  probe that notices if two calls ever run on one agent at once.
//  Keeper: a Counter whose state moves with it (save/load), inheriting
//  everything else. Once: counts how often its init ran in this process,
//  so a test can tell where init ran. Echoer: an AgentBase whose reply
//  answers with what it has seen. Broken: its init always fails.
//  @end

#include <agent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
s_sleep_ms (int64_t msecs)
{
    struct timespec ts = { msecs / 1000, (msecs % 1000) * 1000000 };
    while (nanosleep (&ts, &ts) == -1)
        ;
}

typedef struct {
    int64_t count;                  //  running total
    char label [32];                //  from init args
    atomic_int running;             //  calls inside the agent right now
    int64_t overlaps;               //  times a call found another running
    int64_t log [64];               //  values given to record, in order
    int log_size;
} counter_t;

static int
s_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    counter_t *self = (counter_t *) state;
    self->count = ag_obj_int (ag_obj_get (args, "start"), 0);
    const msgpack_object *label = ag_obj_get (args, "label");
    if (label && !ag_obj_is_str (label))
        return ag_call_error (call, AG_BAD_ARGS, "label must be a string");
    if (label)
        snprintf (self->label, sizeof self->label, "%.*s",
                  (int) label->via.str.size, label->via.str.ptr);
    return 0;
}

//  Note entry and exit, so overlapping calls on one agent show up
static void
s_enter (counter_t *self)
{
    if (atomic_fetch_add (&self->running, 1) != 0)
        self->overlaps++;
}

static void
s_leave (counter_t *self)
{
    atomic_fetch_sub (&self->running, 1);
}

//  add (sync) and bump (async): n -> new total
static int
s_add (void *state, const msgpack_object *args, ag_call_t *call)
{
    counter_t *self = (counter_t *) state;
    if (!args || (args->type != MSGPACK_OBJECT_POSITIVE_INTEGER
               && args->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return ag_call_error (call, AG_BAD_ARGS, "add needs an integer");
    int64_t total;
    if (__builtin_add_overflow (self->count, ag_obj_int (args, 0), &total))
        return ag_call_error (call, AG_BAD_ARGS, "add would overflow the"
                              " count");
    s_enter (self);
    self->count = total;
    s_leave (self);
    return ag_call_return (call, "i", self->count);
}

//  echo (sync): returns its argument as it came
static int
s_echo (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_return_object (call, args);
}

//  nap (sync) and slow (async): {"ms": N, "tag": any} -> tag, after N ms
static int
s_nap (void *state, const msgpack_object *args, ag_call_t *call)
{
    counter_t *self = (counter_t *) state;
    int64_t ms = ag_obj_int (ag_obj_get (args, "ms"), 0);
    if (ms < 0 || ms > 60000)
        return ag_call_error (call, AG_BAD_ARGS, "ms must be 0..60000");
    s_enter (self);
    if (ms > 0)
        s_sleep_ms (ms);
    s_leave (self);
    const msgpack_object *tag = ag_obj_get (args, "tag");
    return tag? ag_call_return_object (call, tag): 0;
}

//  record (async): appends an integer to the log, in arrival order
static int
s_record (void *state, const msgpack_object *args, ag_call_t *call)
{
    counter_t *self = (counter_t *) state;
    s_enter (self);
    if (self->log_size < 64)
        self->log [self->log_size++] = ag_obj_int (args, -1);
    s_leave (self);
    return 0;
}

//  fail (sync): always reports an agent error
static int
s_fail (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_error (call, AG_AGENT_ERROR, "failed on purpose");
}

//  blob (sync): {"size": N} -> N bytes of binary
static int
s_blob (void *state, const msgpack_object *args, ag_call_t *call)
{
    int64_t size = ag_obj_int (ag_obj_get (args, "size"), 0);
    if (size < 0 || size > 16 * 1024 * 1024)
        return ag_call_error (call, AG_BAD_ARGS, "size must be 0..16 MiB");
    char *data = (char *) calloc (1, (size_t) size + 1);
    if (!data)
        return ag_call_error (call, AG_AGENT_ERROR, "out of memory");
    memset (data, 'x', (size_t) size);
    int rc = ag_call_return (call, "B", data, (size_t) size);
    free (data);
    return rc;
}

//  A method of the class in C, deliberately left out of its public table
static int __attribute__ ((unused))
s_secret (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_return (call, "s", "should never be reachable");
}

static int
s_get_count (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((counter_t *) state)->count);
}

static int
s_get_label (void *state, ag_call_t *call)
{
    return ag_call_return (call, "s", ((counter_t *) state)->label);
}

static int
s_get_overlaps (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((counter_t *) state)->overlaps);
}

static int
s_get_log (void *state, ag_call_t *call)
{
    counter_t *self = (counter_t *) state;
    msgpack_packer *pk = ag_call_packer (call);
    msgpack_pack_array (pk, (size_t) self->log_size);
    for (int i = 0; i < self->log_size; i++)
        msgpack_pack_int64 (pk, self->log [i]);
    return 0;
}

static const ag_method_t s_counter_methods [] = {
    { "add", s_add, AG_SYNC },
    { "bump", s_add, AG_ASYNC },
    { "echo", s_echo, AG_SYNC },
    { "echo_async", s_echo, AG_ASYNC },
    { "nap", s_nap, AG_SYNC },
    { "slow", s_nap, AG_ASYNC },
    { "record", s_record, AG_ASYNC },
    { "fail", s_fail, AG_SYNC },
    { "blob", s_blob, AG_SYNC },
    { NULL }
};

static const ag_attr_t s_counter_attrs [] = {
    { "count", s_get_count },
    { "label", s_get_label },
    { "overlaps", s_get_overlaps },
    { "log", s_get_log },
    { NULL }
};

const ag_class_t counter_class = {
    .name = "Counter",
    .state_size = sizeof (counter_t),
    .init = s_init,
    .methods = s_counter_methods,
    .attrs = s_counter_attrs
};

static int
s_broken_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_error (call, AG_AGENT_ERROR, "cannot open the database");
}

const ag_class_t broken_class = {
    .name = "Broken",
    .init = s_broken_init
};

//  Keeper: Counter plus save and load
static int
s_keeper_save (void *state, ag_call_t *call)
{
    return ag_call_return (call, "{s:i}", "count", ((counter_t *) state)->count);
}

static int
s_keeper_load (void *state, const msgpack_object *saved, ag_call_t *call)
{
    const msgpack_object *count = ag_obj_get (saved, "count");
    if (!count)
        return ag_call_error (call, AG_BAD_ARGS, "saved state has no count");
    ((counter_t *) state)->count = ag_obj_int (count, 0);
    return 0;
}

const ag_class_t keeper_class = {
    .name = "Keeper",
    .base = &counter_class,
    .state_size = sizeof (counter_t),
    .save = s_keeper_save,
    .load = s_keeper_load
};

//  Once: inits in this process, readable by the test through dlsym
AG_EXPORT int testclasses_inits;

static int
s_once_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    __atomic_add_fetch (&testclasses_inits, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int
s_once_inits (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", (int64_t) __atomic_load_n (
                           &testclasses_inits, __ATOMIC_SEQ_CST));
}

static const ag_attr_t s_once_attrs [] = {
    { "inits", s_once_inits }, { NULL }
};

const ag_class_t once_class = {
    .name = "Once",
    .init = s_once_init,
    .attrs = s_once_attrs
};

//  Echoer: AgentBase with a reply that reports what it has observed
typedef struct {
    ag_agentbase_t base;            //  first: the base class's state
    int64_t replies;
} echoer_t;

static int
s_echoer_reply (void *state, const msgpack_object *args, ag_call_t *call)
{
    echoer_t *self = (echoer_t *) state;
    char reason [128];
    if (ag_msg_check (args, reason, sizeof reason))
        return ag_call_error (call, AG_BAD_ARGS, "reply: %s", reason);
    if (ag_agentbase_remember (&self->base, args))
        return ag_call_error (call, AG_AGENT_ERROR, "memory full");
    self->replies++;
    msgpack_packer *pk = ag_call_packer (call);
    msgpack_pack_map (pk, 3);
    ag_pack (pk, "s:s, s:s, s", "name", self->base.name, "role", "assistant",
             "content");
    ag_pack (pk, "{s:u, s:o}", "seen", (uint64_t) self->base.memory_size,
             "last", ag_msg_field (args, "content"));
    return 0;
}

static const ag_method_t s_echoer_methods [] = {
    { "reply", s_echoer_reply, AG_ASYNC }, { NULL }
};

const ag_class_t echoer_class = {
    .name = "Echoer",
    .base = &ag_agentbase_class,
    .state_size = sizeof (echoer_t),
    .methods = s_echoer_methods
};

//  Spinner: a method that runs for a while, and stops early once its
//  caller no longer waits
typedef struct {
    int64_t started;                //  spins that began
    int64_t finished;               //  ... and returned
} spinner_t;

//  spin (sync) and spin_async (async): {"ms": N} runs up to N ms, less
//  if cancelled -> {"cancelled": bool, "deadline_ms": ag_call_deadline
//  at the start, "ran_ms": how long it ran}
static int
s_spin (void *state, const msgpack_object *args, ag_call_t *call)
{
    spinner_t *self = (spinner_t *) state;
    int64_t ms = ag_obj_int (ag_obj_get (args, "ms"), 0);
    if (ms < 0 || ms > 60000)
        return ag_call_error (call, AG_BAD_ARGS, "ms must be 0..60000");
    self->started++;
    int64_t deadline = ag_call_deadline (call);
    struct timespec start, now;
    clock_gettime (CLOCK_MONOTONIC, &start);
    int64_t ran = 0;
    bool cancelled = false;
    while (ran < ms) {
        if (ag_call_cancelled (call)) {
            cancelled = true;
            break;
        }
        s_sleep_ms (1);
        clock_gettime (CLOCK_MONOTONIC, &now);
        ran = (now.tv_sec - start.tv_sec) * 1000
            + (now.tv_nsec - start.tv_nsec) / 1000000;
    }
    self->finished++;
    return ag_call_return (call, "{s:b, s:i, s:i}", "cancelled", cancelled,
                           "deadline_ms", deadline, "ran_ms", ran);
}

static int
s_get_started (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((spinner_t *) state)->started);
}

static int
s_get_finished (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((spinner_t *) state)->finished);
}

static const ag_method_t s_spinner_methods [] = {
    { "spin", s_spin, AG_SYNC },
    { "spin_async", s_spin, AG_ASYNC },
    { NULL }
};

static const ag_attr_t s_spinner_attrs [] = {
    { "started", s_get_started },
    { "finished", s_get_finished },
    { NULL }
};

const ag_class_t spinner_class = {
    .name = "Spinner",
    .state_size = sizeof (spinner_t),
    .methods = s_spinner_methods,
    .attrs = s_spinner_attrs
};

//  Crasher: methods that take the process down, as agent code can
static int
s_deep (int64_t depth, int64_t limit)
{
    volatile char pad [1024];
    pad [0] = (char) depth;
    return depth >= limit? 0: s_deep (depth + 1, limit) + pad [0];
}

//  segv: writes through the null pointer it is given (nil: 0)
static int
s_segv (void *state, const msgpack_object *args, ag_call_t *call)
{
    volatile int *target = (volatile int *) (uintptr_t) ag_obj_int (args, 0);
    *target = 1;
    return 0;
}

static int
s_abort (void *state, const msgpack_object *args, ag_call_t *call)
{
    abort ();
}

//  overflow: recurses until the stack runs out
static int
s_overflow (void *state, const msgpack_object *args, ag_call_t *call)
{
    return ag_call_return (call, "i", (int64_t) s_deep (0, INT64_MAX));
}

//  exit: {"code": N}
static int
s_exit (void *state, const msgpack_object *args, ag_call_t *call)
{
    exit ((int) ag_obj_int (ag_obj_get (args, "code"), 3));
}

//  hog: allocates (and touches) a MiB at a time until allocation
//  fails, then aborts, as most C does when out of memory
static int
s_hog (void *state, const msgpack_object *args, ag_call_t *call)
{
    while (true) {
        char *block = (char *) malloc (1024 * 1024);
        if (!block)
            abort ();
        memset (block, 1, 1024 * 1024);
    }
}

//  hang: never returns, and looks at no flag (only killing its process
//  stops it)
static int
s_hang (void *state, const msgpack_object *args, ag_call_t *call)
{
    for (;;) {
        struct timespec pause = { 1, 0 };
        nanosleep (&pause, NULL);
    }
    return 0;
}

//  tick: counts the calls that ran since the agent was made
typedef struct {
    int64_t ticks;
} crasher_t;

static int
s_tick (void *state, const msgpack_object *args, ag_call_t *call)
{
    crasher_t *self = (crasher_t *) state;
    return ag_call_return (call, "i", ++self->ticks);
}

static int
s_get_ticks (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", ((crasher_t *) state)->ticks);
}

static const ag_method_t s_crasher_methods [] = {
    { "segv", s_segv, AG_SYNC },
    { "segv_async", s_segv, AG_ASYNC },
    { "abort", s_abort, AG_SYNC },
    { "overflow", s_overflow, AG_SYNC },
    { "exit", s_exit, AG_SYNC },
    { "hog", s_hog, AG_SYNC },
    { "hang", s_hang, AG_SYNC },
    { "tick", s_tick, AG_ASYNC },
    { NULL }
};

static const ag_attr_t s_crasher_attrs [] = {
    { "ticks", s_get_ticks },
    { NULL }
};

const ag_class_t crasher_class = {
    .name = "Crasher",
    .state_size = sizeof (crasher_t),
    .methods = s_crasher_methods,
    .attrs = s_crasher_attrs
};

AG_PLUGIN (&counter_class, &broken_class, &keeper_class, &once_class,
           &echoer_class, &spinner_class, &crasher_class)
