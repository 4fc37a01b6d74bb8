/*  =========================================================================
    agent.h - writing agent classes: descriptors, values, calls

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  An agent class is a C descriptor: a name, the size of one agent's
//  state, init and fini functions, a table of methods each marked sync or
//  async, and a table of readable attributes. Only what the tables name
//  can be reached from outside. Values cross the wire as msgpack; a method
//  reads its arguments as a msgpack_object and writes its result through
//  the call context it is given.
//
//  A plugin is a shared object that lists its classes with AG_PLUGIN ().
//  It leaves the ag_ functions undefined: the host (agentd, an embedded
//  server, or an application using libagentclient) provides them. A host
//  linked with the shared library does so as it is; a host linked with
//  a static one must take all of it and export it (-Wl,--whole-archive
//  and -rdynamic).
//  @end

#ifndef AGENT_H_INCLUDED
#define AGENT_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <msgpack.h>

#include "ag_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_VERSION_MAJOR 0
#define AG_VERSION_MINOR 1
#define AG_VERSION_PATCH 0
#define AG_VERSION_STRING "0.1.0"

//  Bumped whenever ag_class_t or the plugin entry points change shape.
#define AG_ABI_VERSION 1

//  ---------------------------------------------------------------------
//  Values: one msgpack object with the memory that holds it.

typedef struct _ag_value_t ag_value_t;

//  Build a value from a picture and arguments. Picture characters:
//    n        nil                       b   bool (int)
//    i        int64_t                   u   uint64_t
//    d        double                    s   string (const char *; NULL packs nil)
//    S        string (const char *, size_t)
//    B        binary (const void *, size_t)
//    o        a msgpack_object (const msgpack_object *; NULL packs nil)
//    v        a value (const ag_value_t *; NULL packs nil)
//    [ ... ]  an array of the items inside
//    { ... }  a map: items inside alternate key, value
//  Spaces, commas and colons are ignored. Returns NULL if the picture is
//  malformed (unbalanced brackets, odd map, unknown character).
//  Caller owns the value.
AG_EXPORT ag_value_t *
    ag_value_new (const char *picture, ...);

//  Same, with a va_list.
AG_EXPORT ag_value_t *
    ag_value_newv (const char *picture, va_list args);

//  Copy msgpack bytes into a new value. The bytes must hold exactly one
//  well-formed msgpack object nested at most 32 deep, with at most
//  1048576 objects in all, and no count larger than the bytes left;
//  returns NULL otherwise (a malformed or hostile buffer is never
//  trusted, and is refused before anything is allocated for it). An
//  empty buffer is nil.
AG_EXPORT ag_value_t *
    ag_value_decode (const void *data, size_t size);

//  Same, but take ownership of a malloc'ed buffer (freed on failure too).
AG_EXPORT ag_value_t *
    ag_value_decode_owned (void *data, size_t size);

//  Deep copy of a msgpack object. Caller owns the value.
AG_EXPORT ag_value_t *
    ag_value_from_object (const msgpack_object *object);

//  Destroy a value. Accepts NULL; sets *self_p to NULL.
AG_EXPORT void
    ag_value_destroy (ag_value_t **self_p);

//  Duplicate a value. Accepts NULL (returns NULL).
AG_EXPORT ag_value_t *
    ag_value_dup (const ag_value_t *self);

//  The decoded object. Borrowed; valid while the value lives.
AG_EXPORT const msgpack_object *
    ag_value_object (const ag_value_t *self);

//  The msgpack encoding. Borrowed; valid while the value lives.
AG_EXPORT const void *
    ag_value_data (const ag_value_t *self);
AG_EXPORT size_t
    ag_value_size (const ag_value_t *self);

//  Print the value in a JSON-like form, for humans.
AG_EXPORT void
    ag_value_print (const ag_value_t *self, FILE *file);

//  Return the value as a newly allocated JSON-like string. Caller frees.
AG_EXPORT char *
    ag_value_str (const ag_value_t *self);

//  Pack a picture (as ag_value_new) into a msgpack packer. Returns 0, or
//  -1 if the picture is malformed (the packer then holds a partial value).
AG_EXPORT int
    ag_pack (msgpack_packer *packer, const char *picture, ...);
AG_EXPORT int
    ag_packv (msgpack_packer *packer, const char *picture, va_list args);

//  ---------------------------------------------------------------------
//  Reading msgpack objects. Each accepts NULL and objects of the wrong
//  type, returning the "not found" answer, so lookups can be chained.

//  Map lookup by string key; NULL if not a map or key absent.
AG_EXPORT const msgpack_object *
    ag_obj_get (const msgpack_object *self, const char *key);

//  Array element; NULL if not an array or out of range.
AG_EXPORT const msgpack_object *
    ag_obj_at (const msgpack_object *self, size_t index);

//  Number of elements of an array or map; 0 otherwise.
AG_EXPORT size_t
    ag_obj_count (const msgpack_object *self);

//  True if the object is a string.
AG_EXPORT bool
    ag_obj_is_str (const msgpack_object *self);

//  True if the object is a string equal to text.
AG_EXPORT bool
    ag_obj_streq (const msgpack_object *self, const char *text);

//  New NUL-terminated copy of a string (or binary) object; NULL if the
//  object is neither. Caller frees.
AG_EXPORT char *
    ag_obj_strdup (const msgpack_object *self);

//  Integer value (int or whole float), or fallback.
AG_EXPORT int64_t
    ag_obj_int (const msgpack_object *self, int64_t fallback);

//  Number as double, or fallback.
AG_EXPORT double
    ag_obj_double (const msgpack_object *self, double fallback);

//  Boolean, or fallback.
AG_EXPORT bool
    ag_obj_bool (const msgpack_object *self, bool fallback);

//  ---------------------------------------------------------------------
//  The call context a method (or init, or an attribute getter) is given.

typedef struct _ag_call_t ag_call_t;

//  Set the result from a picture (as ag_value_new). Returns 0, or -1 if
//  the picture is malformed. Calling it again replaces the result.
AG_EXPORT int
    ag_call_return (ag_call_t *self, const char *picture, ...);

//  Set the result to a copy of a msgpack object.
AG_EXPORT int
    ag_call_return_object (ag_call_t *self, const msgpack_object *object);

//  Give the result to the caller as raw packer: pack exactly one object
//  into it. Any earlier result is discarded.
AG_EXPORT msgpack_packer *
    ag_call_packer (ag_call_t *self);

//  Report a failure with a status (AG_BAD_ARGS, AG_AGENT_ERROR, ...)
//  and a printf-style reason. Always returns -1, so a method can end
//  with `return ag_call_error (call, AG_BAD_ARGS, "url missing");`.
AG_EXPORT int
    ag_call_error (ag_call_t *self, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Deadlines and cancellation. A call may carry a deadline (its caller
//  waits so long and no longer), and may be cancelled: by its caller, or
//  because its agent is deleted. A call whose time has come before it
//  started never runs. A running method is never stopped by force: one
//  that may run long looks now and then, and returns early. Whatever it
//  returns then reaches nobody; the caller has had its answer.

//  True once the call's caller no longer waits: it cancelled the call,
//  the agent was deleted, or the deadline passed. False for a call
//  nobody can cancel and without a deadline (init, load, save).
AG_EXPORT bool
    ag_call_cancelled (const ag_call_t *self);

//  Milliseconds left before the call's deadline (0 once it has passed),
//  or -1 if it has none. Calls the method makes to other agents through
//  libagentclient, and futures among its arguments that the server
//  resolves, get no more time than this.
AG_EXPORT int64_t
    ag_call_deadline (const ag_call_t *self);

//  ---------------------------------------------------------------------
//  Class descriptors (the RpcMeta of C).

//  A method: reads args, writes its result into call. Returns 0 on
//  success, -1 after ag_call_error (). Returning -1 without an error set
//  reports AG_AGENT_ERROR "method failed".
typedef int (ag_method_fn) (void *state, const msgpack_object *args,
                            ag_call_t *call);

//  Init: state is zeroed memory of the class's state_size. args are the
//  init arguments the creator gave (nil if none). Returns 0 or -1.
typedef int (ag_init_fn) (void *state, const msgpack_object *args,
                          ag_call_t *call);

//  Fini: release what init acquired. The state memory itself is freed by
//  the runtime.
typedef void (ag_fini_fn) (void *state);

//  Attribute getter: write the attribute's value with ag_call_return ().
typedef int (ag_getattr_fn) (void *state, ag_call_t *call);

//  Save: pack the agent's current state (one object) with
//  ag_call_return (), so it can move to a server with the agent.
typedef int (ag_save_fn) (void *state, ag_call_t *call);

//  Load: after init, restore what save packed. Returns 0 or -1.
typedef int (ag_load_fn) (void *state, const msgpack_object *saved,
                          ag_call_t *call);

//  A sync method blocks its caller until it returns; an async method
//  returns a future at once.
typedef enum {
    AG_SYNC = 0,
    AG_ASYNC = 1
} ag_mode_t;

typedef struct {
    const char *name;               //  public name; NULL ends the table
    ag_method_fn *fn;               //  implementation
    ag_mode_t mode;                 //  AG_SYNC or AG_ASYNC
} ag_method_t;

typedef struct {
    const char *name;               //  public name; NULL ends the table
    ag_getattr_fn *get;             //  getter
} ag_attr_t;

typedef struct _ag_class_t ag_class_t;
//  A class that names a base inherits its methods and attributes (its
//  own entries override), and its init, fini, save and load where it
//  leaves them NULL. Its state must begin with the base's state.
struct _ag_class_t {
    const char *name;               //  unique class name
    const ag_class_t *base;         //  inherited class, or NULL
    size_t state_size;              //  bytes of state per agent (>= base's)
    ag_init_fn *init;               //  NULL: the base's, or none
    ag_fini_fn *fini;               //  NULL: the base's, or none
    const ag_method_t *methods;     //  NULL-terminated table, or NULL
    const ag_attr_t *attrs;         //  NULL-terminated table, or NULL
    ag_save_fn *save;               //  NULL: the base's, or state can't move
    ag_load_fn *load;               //  NULL: the base's, or none
};

//  Find a public method, searching base classes after the class itself.
//  Names starting with '_' are never public. NULL if none.
AG_EXPORT const ag_method_t *
    ag_class_method (const ag_class_t *self, const char *name, size_t len);

//  Find a readable attribute, as above. NULL if none.
AG_EXPORT const ag_attr_t *
    ag_class_attr (const ag_class_t *self, const char *name, size_t len);

//  The init, fini, save and load that apply to a class: its own, else
//  the nearest base's. NULL if none in the chain.
AG_EXPORT ag_init_fn *
    ag_class_init (const ag_class_t *self);
AG_EXPORT ag_fini_fn *
    ag_class_fini (const ag_class_t *self);
AG_EXPORT ag_save_fn *
    ag_class_save (const ag_class_t *self);
AG_EXPORT ag_load_fn *
    ag_class_load (const ag_class_t *self);

//  Check a descriptor for mistakes (no name, private or duplicate method
//  names, state smaller than the base's). Returns 0, or -1 with a reason
//  in reason (at least 128 bytes).
AG_EXPORT int
    ag_class_check (const ag_class_t *self, char *reason, size_t size);

//  ---------------------------------------------------------------------
//  Msg: the message agents pass each other, a msgpack map with the keys
//  id (str), name (str), role (str), content (any), url (str or nil),
//  metadata (any), timestamp (str, "YYYY-MM-DD HH:MM:SS").

//  Build a Msg: name and role as given (NULL: nil), content (borrowed;
//  NULL: nil), a fresh random id and the current time. url and metadata
//  are nil. Caller owns the value.
AG_EXPORT ag_value_t *
    ag_msg_new (const char *name, const char *role, const ag_value_t *content);

//  Same, with content from a picture (as ag_value_new).
AG_EXPORT ag_value_t *
    ag_msg_newf (const char *name, const char *role, const char *picture, ...);

//  Check that an object is a well-formed Msg: a map with name and role
//  strings and a content key, whose id, timestamp and url (when present)
//  are strings or nil. Returns 0, or -1 with a reason.
AG_EXPORT int
    ag_msg_check (const msgpack_object *msg, char *reason, size_t size);

//  A field of a Msg (one of the keys above); NULL if absent or not a map.
AG_EXPORT const msgpack_object *
    ag_msg_field (const msgpack_object *msg, const char *field);

//  ---------------------------------------------------------------------
//  AgentBase: the base class of agents (the guide's AgentBase). It has a
//  name and a memory of Msgs. Methods: observe (sync: add a Msg, or an
//  array of Msgs, to memory) and reply (async: derived classes override
//  it; the base's reports that it is not implemented). Attributes: name,
//  memory. Init args: "NAME" or {"name": NAME}. A derived class sets
//  .base = &ag_agentbase_class, starts its state with an ag_agentbase_t
//  and, if it has an init of its own, calls ag_agentbase_init first.

typedef struct {
    char name [64];                 //  the agent's name
    ag_value_t **memory;            //  Msgs observed, oldest first
    size_t memory_size;             //  Msgs held
    size_t memory_room;             //  room allocated
} ag_agentbase_t;

AG_EXPORT extern const ag_class_t ag_agentbase_class;

AG_EXPORT int
    ag_agentbase_init (void *state, const msgpack_object *args,
                       ag_call_t *call);
AG_EXPORT void
    ag_agentbase_fini (void *state);

//  Add a copy of a Msg to an agent's memory. Returns 0 or -1.
AG_EXPORT int
    ag_agentbase_remember (ag_agentbase_t *self, const msgpack_object *msg);

//  ---------------------------------------------------------------------
//  Plugins. In a plugin's source, after its class descriptors:
//
//      AG_PLUGIN (&webagent_class, &example_class)
//
//  The host reads the symbols ag_plugin_abi and ag_plugin_classes.

#define AG_PLUGIN(...) \
    AG_EXPORT const int ag_plugin_abi = AG_ABI_VERSION; \
    AG_EXPORT const ag_class_t *const ag_plugin_classes [] = { \
        __VA_ARGS__, NULL };

#ifdef __cplusplus
}
#endif

#endif
