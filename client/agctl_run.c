/*  =========================================================================
    agctl_run - agentctl's connections, errors, arguments and agent lookup

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  What every command needs: the connection, opened on first use; one
//  way to report a failure and map it to an exit status; JSON arguments
//  read and checked before anything is sent; and a handle on an agent
//  named by id or name.
//  @end

#include "agctl.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Errors

int
agctl_fail (int code, const char *format, ...)
{
    char message [2048];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    //  Messages quote the server and the user: one line, whatever they
    //  held
    char *clean = agctl_utf8_clean (message, strlen (message), true, NULL);
    fprintf (stderr, "agentctl: %s\n", clean? clean: message);
    free (clean);
    return code;
}

int
agctl_exit_code (int status)
{
    if (status == AG_OK)
        return AGCTL_OK;
    if (status == AG_UNREACHABLE || status == AG_TIMEOUT
    ||  status == AG_DENIED)
        return AGCTL_UNREACHABLE;
    //  Local conditions of the client library, not answers from the server
    if (status == AG_PENDING || status == AG_BUSY || status == AG_CLOSED)
        return AGCTL_FAILED;
    return AGCTL_REMOTE;
}

int
agctl_fail_status (int status, const char *reason)
{
    const char *name = ag_status_str (status);
    if (!reason || !*reason || strcmp (reason, name) == 0)
        agctl_fail (0, "error %d %s", status, name);
    else
        agctl_fail (0, "error %d %s: %s", status, name, reason);
    return agctl_exit_code (status);
}

//  ---------------------------------------------------------------------
//  Connections

int
agctl_open_conn (agctl_t *self)
{
    if (self->conn)
        return AGCTL_OK;
    //  --server-key and --cert, else whatever the environment says
    self->conn = self->server_key
               ? agc_conn_new_secure (self->endpoint, self->server_key,
                                      self->cert)
               : agc_conn_new (self->endpoint);
    if (!self->conn)
        return agctl_fail (agc_status () == AG_BAD_REQUEST? AGCTL_USAGE
                                                          : AGCTL_FAILED,
                           "%s", agc_reason ());
    agc_conn_set_timeout (self->conn, self->timeout);
    return AGCTL_OK;
}

int
agctl_finish (agctl_t *self, int rc)
{
    agc_conn_destroy (&self->conn);
    if (fflush (stdout) || ferror (stdout))
        return agctl_fail (AGCTL_FAILED, "cannot write the output: %s",
                           strerror (errno));
    return rc;
}

//  ---------------------------------------------------------------------
//  JSON arguments

//  Read standard input, up to AGCTL_MAX_INPUT octets. Caller frees.
static char *
s_read_stdin (size_t *size)
{
    size_t room = 4096, used = 0;
    char *text = (char *) malloc (room);
    while (text) {
        if (used == room) {
            room *= 2;
            char *grown = used < AGCTL_MAX_INPUT? (char *) realloc (text, room)
                                                : NULL;
            if (!grown) {
                free (text);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread (text + used, 1, room - used, stdin);
        used += got;
        if (got == 0)
            break;
    }
    if (text && ferror (stdin)) {
        free (text);
        return NULL;
    }
    *size = used;
    return text;
}

int
agctl_read_args (const char *text, ag_value_t **value)
{
    *value = NULL;
    if (!text) {
        *value = ag_value_new ("n");
        return *value? AGCTL_OK: agctl_fail (AGCTL_FAILED, "out of memory");
    }
    char *input = NULL;
    size_t size = strlen (text);
    if (strcmp (text, "-") == 0) {
        input = s_read_stdin (&size);
        if (!input)
            return agctl_fail (AGCTL_USAGE, "bad JSON argument: cannot read"
                               " standard input, or it is over %d bytes",
                               AGCTL_MAX_INPUT);
        text = input;
    }
    json_error_t error;
    json_t *json = json_loadb (text, size, JSON_DECODE_ANY
                               | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                               &error);
    int rc = AGCTL_OK;
    if (!json)
        rc = agctl_fail (AGCTL_USAGE, "bad JSON argument '%.60s%s': %s"
                         " (line %d, column %d)%s", input? "-": text,
                         !input && size > 60? "...": "", error.text,
                         error.line, error.column, isalpha (
                         (unsigned char) *text)? "; a string needs quotes,"
                         " as in '\"text\"'": "");
    else {
        char reason [256];
        *value = agctl_json_to_value (json, reason, sizeof reason);
        if (!*value)
            rc = agctl_fail (AGCTL_USAGE, "bad JSON argument: %s", reason);
    }
    json_decref (json);
    free (input);
    return rc;
}

//  ---------------------------------------------------------------------
//  Agents

//  A whole decimal number that fits a uint64
static bool
s_number (const char *text, uint64_t *number)
{
    if (!isdigit ((unsigned char) *text))
        return false;
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || *end)
        return false;
    *number = (uint64_t) value;
    return true;
}

int
agctl_find_agent (agctl_t *self, const char *text, agc_agent_t **agent)
{
    *agent = NULL;
    int rc = agctl_open_conn (self);
    if (rc)
        return rc;
    //  An id first, then a name
    uint64_t number = 0;
    bool is_number = s_number (text, &number);
    if (is_number)
        *agent = agc_agent_attach (self->conn, number);
    if (!*agent && (!is_number || agc_status () == AG_NO_AGENT))
        *agent = agc_agent_lookup (self->conn, text);
    if (*agent)
        return AGCTL_OK;
    if (agc_status () != AG_NO_AGENT)
        return agctl_fail_status (agc_status (), agc_reason ());
    char reason [600];
    snprintf (reason, sizeof reason, "no agent has the %s '%.255s' on"
              " %.255s", is_number? "id or name": "name", text,
              self->endpoint);
    return agctl_fail_status (AG_NO_AGENT, reason);
}
