/*  =========================================================================
    agentctl - inspect and drive a running agentd

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Parse the command line and run one command; the commands live in
//  agctl_*.c. Options may come before or after the command, up to a
//  "--", so that "agentctl list --json" works; an argument that starts
//  with '-' and a digit is a negative number, not an option.
//  @end

#include "agctl.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;               //  as typed; NULL ends the table
    agctl_command_fn *fn;           //  runs it
    int min_args;                   //  arguments it needs
    int max_args;                   //  arguments it accepts
    const char *args;               //  its arguments, for messages
} command_t;

static const command_t s_commands [] = {
    { "status",  agctl_status,  0, 0, "" },
    { "list",    agctl_list,    0, 0, "" },
    { "show",    agctl_show,    1, 1, " AGENT" },
    { "call",    agctl_call,    2, 3, " AGENT METHOD [JSON-ARGS]" },
    { "getattr", agctl_getattr, 2, 2, " AGENT ATTR" },
    { "create",  agctl_create,  1, 2, " CLASS [JSON-ARGS] [--name NAME]" },
    { "delete",  agctl_delete,  1, 1, " AGENT" },
    { "ping",    agctl_ping,    0, 0, "" },
    { "keygen",  agctl_keygen,  1, 1, " NAME" },
    { NULL }
};

static void
s_usage (void)
{
    printf (
"usage: agentctl [-e ENDPOINT] [--json] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
"Inspect and drive a running agentd.\n"
"\n"
"Commands:\n"
"  status                          server version, counters and classes\n"
"  list                            the agents the server holds\n"
"  show AGENT                      an agent and its attributes' values\n"
"  call AGENT METHOD [JSON-ARGS]   call a method; print its result\n"
"  getattr AGENT ATTR              print an attribute's value\n"
"  create CLASS [JSON-ARGS] [--name NAME]\n"
"                                  create an agent; print its id\n"
"  delete AGENT                    delete an agent\n"
"  ping                            round trip to the server, in us\n"
"  keygen NAME                     write a CURVE certificate: NAME (public)\n"
"                                  and NAME_secret (mode 600)\n"
"\n"
"AGENT is an agent's id or name. JSON-ARGS is one JSON document, or '-'\n"
"to read it from standard input; absent means null.\n"
"\n"
"Options:\n"
"  -e, --endpoint ENDPOINT  server endpoint (default $AGENTD_ENDPOINT,\n"
"                           else " AGCTL_DEFAULT_ENDPOINT ")\n"
"  -j, --json               print one JSON document\n"
"  -t, --timeout MS         give up on a server silent for MS ms (%d)\n"
"  -d, --deadline MS        call: fail the call if it has not finished\n"
"                           within MS ms (default: no deadline)\n"
"      --server-key FILE    the server's public certificate: use CURVE\n"
"                           (default $AGENTD_SERVER_KEY)\n"
"      --cert FILE          this client's certificate, FILE and FILE_secret\n"
"                           (default $AGENTD_CLIENT_CERT)\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Exit status: 0 success, 1 failure, 2 usage error, 3 server unreachable\n"
"(or refused this client's key), 4 error reported by the server. See\n"
"agentctl(1).\n",
        AGCTL_DEFAULT_TIMEOUT);
}

//  The value of an option: "-eX", "--endpoint=X", or the next argument
static const char *
s_value (int argc, char **argv, int *index, const char *brief,
         const char *name)
{
    const char *arg = argv [*index];
    size_t name_len = strlen (name);
    if (brief && strncmp (arg, brief, 2) == 0 && arg [2])
        return arg + 2;
    if (strncmp (arg, name, name_len) == 0 && arg [name_len] == '=')
        return arg + name_len + 1;
    if (*index + 1 < argc)
        return argv [++*index];
    return NULL;
}

//  Is this argument the option brief or name (possibly with its value
//  attached)?
static bool
s_is (const char *arg, const char *brief, const char *name, bool value)
{
    size_t name_len = strlen (name);
    if (brief && strncmp (arg, brief, 2) == 0 && (!arg [2] || value))
        return true;
    return strncmp (arg, name, name_len) == 0
        && (!arg [name_len] || (value && arg [name_len] == '='));
}

int
main (int argc, char *argv [])
{
    agctl_t ctl = {
        .endpoint = getenv ("AGENTD_ENDPOINT"),
        .timeout = AGCTL_DEFAULT_TIMEOUT,
        .deadline = -1
    };
    if (!ctl.endpoint || !*ctl.endpoint)
        ctl.endpoint = AGCTL_DEFAULT_ENDPOINT;
    char **args = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    if (!args)
        return agctl_fail (AGCTL_FAILED, "out of memory");
    int count = 0;
    bool options = true;
    int rc = AGCTL_OK;
    for (int i = 1; i < argc && rc == AGCTL_OK; i++) {
        const char *arg = argv [i];
        if (!options || arg [0] != '-' || !arg [1]
        ||  isdigit ((unsigned char) arg [1]))
            args [count++] = argv [i];
        else
        if (strcmp (arg, "--") == 0)
            options = false;
        else
        if (s_is (arg, "-h", "--help", false)) {
            s_usage ();
            free (args);
            return AGCTL_OK;
        }
        else
        if (s_is (arg, "-V", "--version", false)) {
            printf ("agentctl %s\n", AG_VERSION_STRING);
            free (args);
            return AGCTL_OK;
        }
        else
        if (s_is (arg, "-j", "--json", false))
            ctl.json = true;
        else
        if (s_is (arg, "-e", "--endpoint", true)) {
            ctl.endpoint = s_value (argc, argv, &i, "-e", "--endpoint");
            if (!ctl.endpoint || !*ctl.endpoint)
                rc = agctl_fail (AGCTL_USAGE, "-e needs an endpoint");
        }
        else
        if (s_is (arg, "-t", "--timeout", true)) {
            const char *text = s_value (argc, argv, &i, "-t", "--timeout");
            char *end = NULL;
            errno = 0;
            long timeout = text? strtol (text, &end, 10): 0;
            if (!text || errno || *end || timeout < 10 || timeout > INT_MAX)
                rc = agctl_fail (AGCTL_USAGE, "-t needs a number of"
                                 " milliseconds from 10 to %d, not '%s'",
                                 INT_MAX, text? text: "");
            ctl.timeout = (int) timeout;
        }
        else
        if (s_is (arg, NULL, "--server-key", true)) {
            ctl.server_key = s_value (argc, argv, &i, NULL, "--server-key");
            if (!ctl.server_key || !*ctl.server_key)
                rc = agctl_fail (AGCTL_USAGE, "--server-key needs the"
                                 " server's public certificate file");
        }
        else
        if (s_is (arg, NULL, "--cert", true)) {
            ctl.cert = s_value (argc, argv, &i, NULL, "--cert");
            if (!ctl.cert || !*ctl.cert)
                rc = agctl_fail (AGCTL_USAGE, "--cert needs this client's"
                                 " certificate file");
        }
        else
        if (s_is (arg, "-d", "--deadline", true)) {
            const char *text = s_value (argc, argv, &i, "-d", "--deadline");
            char *end;
            errno = 0;
            long deadline = text? strtol (text, &end, 10): -1;
            if (!text || errno || *end || deadline < 0
            ||  deadline > 2147483647L)
                rc = agctl_fail (AGCTL_USAGE, "--deadline needs a number of"
                                 " milliseconds, 0 to 2147483647");
            else
                ctl.deadline = (int) deadline;
        }
        else
        if (s_is (arg, NULL, "--name", true)) {
            ctl.name = s_value (argc, argv, &i, NULL, "--name");
            if (!ctl.name || !*ctl.name)
                rc = agctl_fail (AGCTL_USAGE, "--name needs a name");
        }
        else
            rc = agctl_fail (AGCTL_USAGE, "unknown option '%s' (agentctl"
                             " --help lists them)", arg);
    }
    const command_t *command = NULL;
    if (rc == AGCTL_OK && count == 0)
        rc = agctl_fail (AGCTL_USAGE, "no command given (agentctl --help"
                         " lists them)");
    for (size_t i = 0; rc == AGCTL_OK && !command && s_commands [i].name; i++)
        if (strcmp (args [0], s_commands [i].name) == 0)
            command = &s_commands [i];
    if (rc == AGCTL_OK && !command)
        rc = agctl_fail (AGCTL_USAGE, "unknown command '%s' (agentctl --help"
                         " lists them)", args [0]);
    if (rc == AGCTL_OK && (count - 1 < command->min_args
                        || count - 1 > command->max_args))
        rc = agctl_fail (AGCTL_USAGE, "usage: agentctl [OPTION]... %s%s",
                         command->name, command->args);
    if (rc == AGCTL_OK && ctl.name && command->fn != agctl_create)
        rc = agctl_fail (AGCTL_USAGE, "--name is an option of create only");
    if (rc == AGCTL_OK && ctl.deadline >= 0 && command->fn != agctl_call)
        rc = agctl_fail (AGCTL_USAGE, "--deadline is an option of call only");
    if (rc == AGCTL_OK && !ctl.server_key != !ctl.cert)
        rc = agctl_fail (AGCTL_USAGE, "--server-key and --cert go together:"
                         " CURVE needs the server's public certificate and"
                         " this client's certificate");
    if (rc == AGCTL_OK)
        rc = agctl_finish (&ctl, command->fn (&ctl, count - 1, args + 1));
    free (args);
    return rc;
}
