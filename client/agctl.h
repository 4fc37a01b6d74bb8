/*  =========================================================================
    agctl.h - private header of agentctl, shared by its files

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  agentctl inspects and drives a running agentd over the public AGP/1
//  protocol, through libagentclient alone. An agent named on the command
//  line is found in the server's LIST and reached through a handle
//  attached to it; a handle is released, never destroyed, unless the
//  command is delete, so agents outlive agentctl.
//
//  Every command returns an exit status (AGCTL_ codes) and has printed
//  its own message on failure; only main () exits.
//  @end

#ifndef AGCTL_H_INCLUDED
#define AGCTL_H_INCLUDED

#include <agentclient.h>
#include <jansson.h>

//  Exit statuses
#define AGCTL_OK            0       //  success
#define AGCTL_FAILED        1       //  any other failure
#define AGCTL_USAGE         2       //  bad command line or JSON argument
#define AGCTL_UNREACHABLE   3       //  no answer from the server in time
#define AGCTL_REMOTE        4       //  the server answered with an error

#define AGCTL_DEFAULT_ENDPOINT  "tcp://127.0.0.1:12345"
#define AGCTL_DEFAULT_TIMEOUT   5000

//  Largest JSON argument read from standard input, in octets
#define AGCTL_MAX_INPUT     (64 * 1024 * 1024)

//  One run of agentctl: what the command line asked for, and the
//  connection, opened when a command first needs it
typedef struct {
    const char *endpoint;           //  server endpoint
    int timeout;                    //  ms of server silence that is fatal
    bool json;                      //  print JSON rather than text
    const char *name;               //  create --name, or NULL
    int deadline;                   //  call --deadline in ms, or -1
    const char *server_key;         //  --server-key: CURVE, or NULL
    const char *cert;               //  --cert: our certificate, or NULL
    agc_conn_t *conn;               //  server connection, or NULL
} agctl_t;

//  A command: its arguments are those after its name. Returns the exit
//  status, having printed why on failure.
typedef int (agctl_command_fn) (agctl_t *self, int argc, char **argv);

//  ---------------------------------------------------------------------
//  Commands (agctl_info.c, agctl_agent.c)

agctl_command_fn agctl_status, agctl_list, agctl_show, agctl_ping;
agctl_command_fn agctl_call, agctl_getattr, agctl_create, agctl_delete;

//  keygen NAME (agctl_keygen.c): write a CURVE certificate, NAME and
//  NAME_secret, in czmq's zcert format. Needs no server.
agctl_command_fn agctl_keygen;

//  ---------------------------------------------------------------------
//  Runs, errors and agents (agctl_run.c)

//  End a run: close its connection and make sure its output was
//  written. Returns the exit status: rc, or AGCTL_FAILED if standard
//  output could not be written.
int
    agctl_finish (agctl_t *self, int rc);

//  Open the libagentclient connection (self->conn) if not yet open.
//  Returns AGCTL_OK, or an exit status after printing why.
int
    agctl_open_conn (agctl_t *self);

//  Print "agentctl: " and the message to stderr. Returns code.
int
    agctl_fail (int code, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  The exit status for an AG_ status: 0 for AG_OK, AGCTL_UNREACHABLE
//  when the server did not answer, AGCTL_REMOTE for its errors.
int
    agctl_exit_code (int status);

//  Report a failed status: "agentctl: error N name: reason". Returns
//  the exit status for it.
int
    agctl_fail_status (int status, const char *reason);

//  Read a JSON argument (text, or "-" for standard input) into a value.
//  NULL text gives nil. Returns AGCTL_OK with *value set (caller owns),
//  or AGCTL_USAGE after printing what is wrong with it.
int
    agctl_read_args (const char *text, ag_value_t **value);

//  Attach to an agent by id (decimal) or name: an id first, then a
//  name, as the server's LIST has them. Returns AGCTL_OK with *agent a
//  handle (release it with agc_agent_release, or destroy it to delete
//  the agent), or an exit status after printing why.
int
    agctl_find_agent (agctl_t *self, const char *text, agc_agent_t **agent);

//  ---------------------------------------------------------------------
//  JSON (agctl_json.c)

//  A msgpack object as JSON. Maps become objects (a key that is not a
//  string is written as its JSON text), bin becomes {"$bin": base64},
//  ext {"$ext": [type, base64]}, an integer above 2^63-1 a string of
//  its digits, a NaN or infinity null; octets of a str that are not
//  UTF-8 become the text \xHH. NULL only when out of memory.
json_t *
    agctl_json_from_object (const msgpack_object *object);

//  A JSON document as a value: the inverse of the above ({"$bin": ...}
//  and {"$ext": ...} objects become bin and ext). Refuses documents
//  nested deeper than 31 or with more than AGCTL_MAX_ELEMENTS elements,
//  so that they still fit a request body. Returns NULL with a reason.
ag_value_t *
    agctl_json_to_value (const json_t *json, char *reason, size_t size);

#define AGCTL_MAX_DEPTH     31
#define AGCTL_MAX_ELEMENTS  ((1 << 20) - 16)

//  Write a JSON document and a newline: indented when pretty, else on
//  one line. Reals take the fewest digits that read back exactly.
//  Returns 0, or -1 on a write error.
int
    agctl_json_print (const json_t *json, bool pretty, FILE *file);

//  A JSON document as one line of text. Caller frees; NULL when out
//  of memory.
char *
    agctl_json_text (const json_t *json);

//  The octets of a string made valid UTF-8: an octet that is not part
//  of a well-formed sequence becomes the four characters \xHH, and so,
//  when controls is true, does every C0 control character and DEL.
//  Returns a new NUL-terminated string (its length in *length if not
//  NULL; it may contain NULs when controls is false), or NULL when out
//  of memory.
char *
    agctl_utf8_clean (const char *data, size_t size, bool controls,
                      size_t *length);

//  ---------------------------------------------------------------------
//  Text output (agctl_text.c)

typedef struct _agctl_table_t agctl_table_t;

//  A table of columns, printed aligned.
agctl_table_t *
    agctl_table_new (size_t columns);

//  Destroy a table. Accepts NULL; sets *self_p to NULL.
void
    agctl_table_destroy (agctl_table_t **self_p);

//  Align a column to the right (numbers).
void
    agctl_table_right (agctl_table_t *self, size_t column);

//  Add a row: one cell per column (copied; NULL prints "-"). Returns
//  0, or -1 when out of memory.
int
    agctl_table_add (agctl_table_t *self, ...);

//  Print the rows, columns two spaces apart, with indent spaces first.
void
    agctl_table_print (agctl_table_t *self, int indent, FILE *file);

//  A duration for people: "850ms", "12.3s", "5m02s", "3h05m", "2d03h".
//  Writes into buffer (at least 16 octets) and returns it.
char *
    agctl_duration (int64_t msecs, char *buffer, size_t size);

//  A msgpack object as one table cell: a str as its text (controls
//  escaped), nil as "-", anything else as one-line JSON. Caller frees;
//  NULL when out of memory.
char *
    agctl_cell (const msgpack_object *object);

//  Print items separated by ", " after a label, wrapping at width
//  columns with continuation lines indented under the first item.
void
    agctl_print_list (const char *label, int label_width, char **items,
                      size_t count, int width, FILE *file);

//  Print a value in its readable form: a str as it is, anything else
//  as indented JSON; a newline follows. Returns 0 or -1.
int
    agctl_print_value (const msgpack_object *object, FILE *file);

#endif
