/*  =========================================================================
    seed - the agent classes of the distributed-mode guide, in C

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  WebAgent: reply (async) takes a Msg whose content holds "url" and
//  "query", "crawls" the page (sleeps 5 s, or the "delay_ms" given at
//  init) and answers with a Msg "Answer from <url>".
//
//  Example: sync_method (1 s, "sync"), async_method (1 s, "async"),
//  complex_result (1 s, {"a": 1, "b": 2, "c": "hello world"}). The
//  guide's _protected_method is deliberately absent from the table, so
//  it cannot be called from outside.
//
//  Stage: reply (async) takes a Msg, works (sleeps "delay_ms"), and
//  answers with a Msg whose content is the input's with " -> <name>"
//  added: one step of contrib/examples/pipeline.
//
//  Build as a plugin (agentd --plugin seed.so), or link it into a
//  program that serves or runs these classes itself.
//  @end

#include <agent.h>
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

//  ---------------------------------------------------------------------
//  WebAgent

typedef struct {
    char name [64];                 //  agent name, "W0"...
    int64_t delay_ms;               //  how long a page takes
} webagent_t;

//  init args: "W0", or {"name": "W0", "delay_ms": 5000}
static int
s_webagent_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    webagent_t *self = (webagent_t *) state;
    const msgpack_object *name = ag_obj_is_str (args)? args
                                                     : ag_obj_get (args, "name");
    if (!ag_obj_is_str (name) || name->via.str.size == 0
    ||  name->via.str.size >= sizeof self->name)
        return ag_call_error (call, AG_BAD_ARGS,
                              "WebAgent needs a name of 1 to 63 bytes");
    memcpy (self->name, name->via.str.ptr, name->via.str.size);
    self->delay_ms = ag_obj_int (ag_obj_get (args, "delay_ms"), 5000);
    if (self->delay_ms < 0 || self->delay_ms > 3600000)
        return ag_call_error (call, AG_BAD_ARGS,
                              "delay_ms must be 0 to 3600000");
    return 0;
}

//  get_answer (sync): {"url": str, "query": str} -> "Answer from <url>"
static int
s_webagent_get_answer (void *state, const msgpack_object *args,
                       ag_call_t *call)
{
    webagent_t *self = (webagent_t *) state;
    const msgpack_object *url = ag_obj_get (args, "url");
    if (!ag_obj_is_str (url))
        return ag_call_error (call, AG_BAD_ARGS, "get_answer needs a url");
    s_sleep_ms (self->delay_ms);
    char answer [300];
    snprintf (answer, sizeof answer, "Answer from %.*s",
              (int) (url->via.str.size > 200? 200: url->via.str.size),
              url->via.str.ptr);
    return ag_call_return (call, "s", answer);
}

//  reply (async): Msg with content {"url", "query"} -> Msg from this agent
static int
s_webagent_reply (void *state, const msgpack_object *args, ag_call_t *call)
{
    webagent_t *self = (webagent_t *) state;
    const msgpack_object *content = ag_obj_get (args, "content");
    const msgpack_object *url = ag_obj_get (content, "url");
    if (!ag_obj_is_str (url))
        return ag_call_error (call, AG_BAD_ARGS,
                              "reply needs a Msg whose content has a url");
    s_sleep_ms (self->delay_ms);
    char answer [300];
    snprintf (answer, sizeof answer, "Answer from %.*s",
              (int) (url->via.str.size > 200? 200: url->via.str.size),
              url->via.str.ptr);
    return ag_call_return (call, "{s:s, s:s, s:s}", "name", self->name,
                           "role", "assistant", "content", answer);
}

static int
s_webagent_name (void *state, ag_call_t *call)
{
    return ag_call_return (call, "s", ((webagent_t *) state)->name);
}

static const ag_method_t s_webagent_methods [] = {
    { "get_answer", s_webagent_get_answer, AG_SYNC },
    { "reply", s_webagent_reply, AG_ASYNC },
    { NULL }
};

static const ag_attr_t s_webagent_attrs [] = {
    { "name", s_webagent_name },
    { NULL }
};

const ag_class_t webagent_class = {
    .name = "WebAgent",
    .state_size = sizeof (webagent_t),
    .init = s_webagent_init,
    .methods = s_webagent_methods,
    .attrs = s_webagent_attrs
};

//  ---------------------------------------------------------------------
//  Example

typedef struct {
    int64_t delay_ms;               //  1000 unless init says otherwise
} example_t;

//  init args: nil, or {"delay_ms": N}
static int
s_example_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    example_t *self = (example_t *) state;
    self->delay_ms = ag_obj_int (ag_obj_get (args, "delay_ms"), 1000);
    if (self->delay_ms < 0 || self->delay_ms > 3600000)
        return ag_call_error (call, AG_BAD_ARGS,
                              "delay_ms must be 0 to 3600000");
    return 0;
}

static int
s_example_sync_method (void *state, const msgpack_object *args,
                       ag_call_t *call)
{
    s_sleep_ms (((example_t *) state)->delay_ms);
    return ag_call_return (call, "s", "sync");
}

static int
s_example_async_method (void *state, const msgpack_object *args,
                        ag_call_t *call)
{
    s_sleep_ms (((example_t *) state)->delay_ms);
    return ag_call_return (call, "s", "async");
}

static int
s_example_complex_result (void *state, const msgpack_object *args,
                          ag_call_t *call)
{
    s_sleep_ms (((example_t *) state)->delay_ms);
    return ag_call_return (call, "{s:i, s:i, s:s}", "a", (int64_t) 1,
                           "b", (int64_t) 2, "c", "hello world");
}

static const ag_method_t s_example_methods [] = {
    { "sync_method", s_example_sync_method, AG_SYNC },
    { "async_method", s_example_async_method, AG_ASYNC },
    { "complex_result", s_example_complex_result, AG_ASYNC },
    { NULL }
};

const ag_class_t example_class = {
    .name = "Example",
    .state_size = sizeof (example_t),
    .init = s_example_init,
    .methods = s_example_methods
};

//  ---------------------------------------------------------------------
//  Stage: one step of a pipeline (contrib/examples/pipeline)

typedef struct {
    char name [64];                 //  stage name
    int64_t delay_ms;               //  how long its work takes
} stage_t;

//  init args: {"name": "parse", "delay_ms": 500}
static int
s_stage_init (void *state, const msgpack_object *args, ag_call_t *call)
{
    stage_t *self = (stage_t *) state;
    const msgpack_object *name = ag_obj_get (args, "name");
    if (!ag_obj_is_str (name) || name->via.str.size == 0
    ||  name->via.str.size >= sizeof self->name)
        return ag_call_error (call, AG_BAD_ARGS,
                              "Stage needs a name of 1 to 63 bytes");
    memcpy (self->name, name->via.str.ptr, name->via.str.size);
    self->delay_ms = ag_obj_int (ag_obj_get (args, "delay_ms"), 500);
    if (self->delay_ms < 0 || self->delay_ms > 3600000)
        return ag_call_error (call, AG_BAD_ARGS,
                              "delay_ms must be 0 to 3600000");
    return 0;
}

//  reply (async): Msg -> Msg from this stage, its content the input's
//  with " -> <name>" added, after delay_ms of work
static int
s_stage_reply (void *state, const msgpack_object *args, ag_call_t *call)
{
    stage_t *self = (stage_t *) state;
    const msgpack_object *content = ag_obj_get (args, "content");
    if (!ag_obj_is_str (content))
        return ag_call_error (call, AG_BAD_ARGS,
                              "reply needs a Msg with text content");
    s_sleep_ms (self->delay_ms);
    char text [1024];
    snprintf (text, sizeof text, "%.*s -> %s",
              (int) (content->via.str.size > 900? 900
                                                 : content->via.str.size),
              content->via.str.ptr, self->name);
    return ag_call_return (call, "{s:s, s:s, s:s}", "name", self->name,
                           "role", "assistant", "content", text);
}

static const ag_method_t s_stage_methods [] = {
    { "reply", s_stage_reply, AG_ASYNC },
    { NULL }
};

const ag_class_t stage_class = {
    .name = "Stage",
    .state_size = sizeof (stage_t),
    .init = s_stage_init,
    .methods = s_stage_methods
};

AG_PLUGIN (&webagent_class, &example_class, &stage_class)
