/*  =========================================================================
    selftest - runs the selftest of every class

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  selftest [-v] [-n NAME]: runs every class's selftest, or one. Each
//  runs in a child process, so one failing assert is one failed test and
//  the rest still run. Ends with "N passed, N failed".
//  @end

#include "../daemon/agd.h"
#include "../client/agc.h"
#include "../common/ag_cert.h"
#include <sys/wait.h>

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} test_t;

static const test_t s_tests [] = {
    { "ag_value", ag_value_test },
    { "ag_idmap", ag_idmap_test },
    { "ag_proto", ag_proto_test },
    { "ag_class", ag_class_test },
    { "ag_msg", ag_msg_test },
    { "ag_cert", ag_cert_test },
    { "agd_config", agd_config_test },
    { "agd_registry", agd_registry_test },
    { "agd_store", agd_store_test },
    { "agd_clients", agd_clients_test },
    { "agd_accounts", agd_accounts_test },
    { "agd_index", agd_index_test },
    { "agd_auth", agd_auth_test },
    { "agd_server", agd_server_test },
    { "agc_conn", agc_conn_test },
    { NULL, NULL }
};

int
main (int argc, char *argv [])
{
    bool verbose = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "-v"))
            verbose = true;
        else
        if (streq (argv [i], "-n") && i + 1 < argc)
            only = argv [++i];
        else {
            fprintf (stderr, "usage: selftest [-v] [-n NAME]\n");
            return 2;
        }
    }
    int passed = 0, failed = 0;
    for (const test_t *test = s_tests; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        fflush (stdout);
        pid_t pid = fork ();
        if (pid == 0) {
            test->test (verbose);
            fflush (stdout);
            _exit (0);
        }
        int status = 0;
        waitpid (pid, &status, 0);
        if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
            passed++;
        else {
            failed++;
            printf ("FAILED: %s (%s %d)\n", test->name,
                    WIFSIGNALED (status)? "signal": "exit",
                    WIFSIGNALED (status)? WTERMSIG (status)
                                        : WEXITSTATUS (status));
        }
    }
    if (only && passed + failed == 0) {
        fprintf (stderr, "selftest: no test named '%s'\n", only);
        return 2;
    }
    printf ("%d passed, %d failed\n", passed, failed);
    return failed? 1: 0;
}
