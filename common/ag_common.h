/*  =========================================================================
    ag_common.h - private umbrella header for code both sides share

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#ifndef AG_COMMON_H_INCLUDED
#define AG_COMMON_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>
#include <stdatomic.h>
#include "agent.h"

//  Limits on any msgpack we decode: nesting depth, and objects in total
//  (each costs a msgpack_object of 24 bytes when unpacked, so this also
//  bounds the memory a hostile body can make us allocate). These are the
//  defaults and the most allowed: msgpack-c unpacks no deeper than 32.
#define AG_MAX_DEPTH        32
#define AG_MAX_ELEMENTS     (1 << 20)
#define AG_MAX_ELEMENTS_CAP (1 << 24)

//  Lower the depth (1..AG_MAX_DEPTH) or change the element limit
//  (1..AG_MAX_ELEMENTS_CAP) for every check in this process; 0 leaves
//  one as it is. Returns 0, or -1 if a value is out of range.
int
    ag_msgpack_set_limits (int depth, size_t elements);

//  Check that data holds exactly one well-formed msgpack object within
//  the limits above. Returns 0, or -1 with a reason (static string).
int
    ag_msgpack_check (const void *data, size_t size, const char **reason);

//  Unpack checked bytes into zone (the object borrows data). Returns 0,
//  or -1 if the bytes are malformed (checked again, never trusted).
int
    ag_msgpack_unpack (const void *data, size_t size, msgpack_zone *zone,
                       msgpack_object *object, const char **reason);

//  Print an object as JSON-like text.
void
    ag_obj_fprint (const msgpack_object *self, FILE *file);

//  A call context on the stack of whoever runs user code: the worker,
//  or a local agent's caller.
struct _ag_call_t {
    msgpack_sbuffer *buffer;        //  result bytes (reused per thread)
    msgpack_packer packer;          //  packs into buffer
    bool has_result;                //  something was packed
    int status;                     //  AG_OK, or the error reported
    char reason [256];              //  reason for the error
    int64_t deadline;               //  ag_usecs () its caller waits until,
                                    //  or 0: no deadline
    const _Atomic int *cancel;      //  non-zero once cancelled, or NULL
};

//  The call the calling thread runs user code for, or NULL; set around
//  each method, so that calls made from inside it inherit its deadline.
//  Returns the one it replaces.
ag_call_t *
    ag_call_enter (ag_call_t *call);
ag_call_t *
    ag_call_current (void);

//  Prepare a call context writing into buffer (cleared).
void
    ag_call_init (ag_call_t *self, msgpack_sbuffer *buffer);

//  After user code returned rc: settle status (-1 without an error set
//  becomes AG_AGENT_ERROR), pack nil if no result. Returns the status.
int
    ag_call_finish (ag_call_t *self, int rc);

//  Monotonic clock in microseconds.
int64_t
    ag_usecs (void);

//  Selftests
void ag_value_test (bool verbose);
void ag_idmap_test (bool verbose);
void ag_proto_test (bool verbose);
void ag_class_test (bool verbose);
void ag_msg_test (bool verbose);

#include "ag_idmap.h"
#include "../protocol/ag_proto.h"

#endif
