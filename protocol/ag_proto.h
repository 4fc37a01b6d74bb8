/*  =========================================================================
    ag_proto - the AGP wire codec, shared by server and client

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Every AGP message is one ZeroMQ frame: a 24-octet envelope followed
//  by a msgpack body (PROTOCOL.md is normative). The envelope carries
//  all the broker routes on (signature and version, command, correlation
//  id, target agent) at fixed offsets, so dispatch never decodes
//  msgpack. One frame rather than two halves the parts every hop moves.
//  The body decoders here check every field they return: their output
//  can be trusted, their input never is.
//  @end

#ifndef AG_PROTO_H_INCLUDED
#define AG_PROTO_H_INCLUDED

#define AGP_SIGNATURE       "AGP01"
#define AGP_SIGNATURE_SIZE  5
#define AGP_ENVELOPE_SIZE   24

//  Requests. A reply repeats the command with AGP_REPLY set.
#define AGP_PING            0x01
#define AGP_INFO            0x02
#define AGP_CREATE          0x03
#define AGP_CALL            0x04
#define AGP_GETATTR         0x05
#define AGP_DELETE          0x06
#define AGP_LIST            0x07
#define AGP_FETCH           0x08
#define AGP_LOOKUP          0x09
#define AGP_CANCEL          0x0A
#define AGP_LAST_COMMAND    AGP_CANCEL
#define AGP_REPLY           0x80

//  Request flags
#define AGP_FLAG_KEEP       0x0001  //  keep the result for FETCH

//  A future passed as a value: msgpack ext of this type, whose data is
//  the msgpack array [endpoint: str, owner: bin, corr: uint]
#define AGP_EXT_FUTURE      0x41

//  Longest name (class, method, attribute, agent) accepted
#define AGP_MAX_NAME        255

typedef struct {
    uint8_t command;                //  AGP_ command, AGP_REPLY set on replies
    uint16_t word;                  //  request flags, or reply status
    uint64_t corr;                  //  correlation id, chosen by the client
    uint64_t agent;                 //  target agent id, 0 for none
} agp_envelope_t;

//  Write an envelope into 24 octets.
void
    agp_envelope_encode (const agp_envelope_t *self, uint8_t *buffer);

//  Read the envelope at the start of a message frame (size is the whole
//  frame's). Returns 0; -1 if this is not AGP at all; -2 if it is AGP of
//  another version (corr is then read if the frame is long enough, so an
//  error can still be matched); -3 for a frame too short or an unknown
//  command (corr read when there).
int
    agp_envelope_decode (agp_envelope_t *self, const void *data, size_t size);

//  Make a message frame: envelope, then a copy of body (NULL/empty: nil).
//  Returns 0, or -1 out of memory.
int
    agp_msg_init (zmq_msg_t *msg, const agp_envelope_t *env,
                  const void *body, size_t body_size);

//  Write an envelope over the first 24 octets of a message frame this
//  side owns alone (not yet sent, not shared by zmq_msg_copy).
void
    agp_msg_set_envelope (zmq_msg_t *msg, const agp_envelope_t *env);

//  The body of a message frame, and its size.
const uint8_t *
    agp_msg_body (zmq_msg_t *msg);
size_t
    agp_msg_body_size (zmq_msg_t *msg);

//  Name of a command, for logs ("CALL", "CALL-REPLY"), or "?".
const char *
    agp_command_name (int command);

//  A length-counted string borrowed from a decoded body.
typedef struct {
    const char *ptr;
    size_t len;
} agp_str_t;

//  CREATE body: {"class": str, "args": any, "name": str, "state": any}
typedef struct {
    agp_str_t class_name;           //  required
    agp_str_t name;                 //  ptr NULL when absent
    const msgpack_object *args;     //  NULL when absent
    const msgpack_object *state;    //  saved state to load; NULL if absent
    bool detached;                  //  belongs to no client
} agp_create_t;

//  CALL body: [method: str, args: any], or [method, args, timeout_ms:
//  uint] for a call with a deadline
#define AGP_TIMEOUT_MAX     2147483647  //  timeout_ms at most (24.8 days)
typedef struct {
    agp_str_t method;
    const msgpack_object *args;
    bool timed;                     //  a timeout was given
    uint32_t timeout_ms;            //  the deadline, from its arrival
} agp_call_t;

//  FETCH body: [owner: bin, corr: uint]
typedef struct {
    agp_str_t owner;                //  routing id of the caller that made it
    uint64_t corr;
} agp_fetch_t;

//  LOOKUP body: an agent's name (str) or id (uint)
typedef struct {
    agp_str_t name;                 //  ptr NULL when looking up by id
    uint64_t id;
} agp_lookup_t;

//  A future reference (PROTOCOL.md 4.10): the data of a msgpack ext of
//  type AGP_EXT_FUTURE, [endpoint: str, owner: bin, corr: uint]
typedef struct {
    agp_str_t endpoint;             //  1..255 octets, no zero octet
    agp_str_t owner;                //  routing id, 1..255 octets
    uint64_t corr;
} agp_ref_t;

//  Decode bodies. Each returns 0, or -1 with a reason (static string).
int
    agp_create_decode (agp_create_t *self, const msgpack_object *body,
                       const char **reason);
int
    agp_call_decode (agp_call_t *self, const msgpack_object *body,
                     const char **reason);
int
    agp_getattr_decode (agp_str_t *self, const msgpack_object *body,
                        const char **reason);
int
    agp_fetch_decode (agp_fetch_t *self, const msgpack_object *body,
                      const char **reason);
int
    agp_lookup_decode (agp_lookup_t *self, const msgpack_object *body,
                       const char **reason);
//  A timed CALL's body is a fixarray of 3 (0x93) whose last element is
//  timeout_ms encoded as a uint 32 (0xce and four octets, big-endian),
//  so the server reads it at the end of the frame without decoding the
//  body. Returns true with *timeout_ms set if the body has that form.
bool
    agp_call_timeout (const void *body, size_t size, uint32_t *timeout_ms);

//  CANCEL body: the corr of the caller's call to cancel (uint)
int
    agp_cancel_decode (uint64_t *corr, const msgpack_object *body,
                       const char **reason);

//  Decode a future reference from an ext object of type AGP_EXT_FUTURE,
//  unpacking its data into zone (the strings point into the ext's data).
int
    agp_ref_decode (agp_ref_t *self, const msgpack_object *ext,
                    msgpack_zone *zone, const char **reason);

//  Pack a future reference, the ext whole. Returns 0, or -1 out of
//  memory.
int
    agp_ref_encode (msgpack_packer *packer, const agp_ref_t *ref);

//  Send one message: [routing id] frame. routing may be NULL (DEALER
//  side). With msg given, that frame is sent (emptied), its envelope
//  written first; otherwise a frame is made of env and a copy of body
//  (msgpack; NULL/empty for nil). Returns 0, or -1 with errno from
//  zmq_send. Never blocks when ZMQ_DONTWAIT is in flags.
int
    agp_send (void *socket, zmq_msg_t *routing, const agp_envelope_t *env,
              const void *body, size_t body_size, zmq_msg_t *msg,
              int flags);

#endif
