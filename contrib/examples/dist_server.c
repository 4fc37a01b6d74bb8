/*  =========================================================================
    dist_server - the guide's dist_server.py in C: an agent server that
    serves the program's own classes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  dist_server [-e ENDPOINT]: serve WebAgent and Example (linked into
//  this program, not loaded from a plugin) until SIGINT or SIGTERM. The
//  default endpoint is the guide's localhost:12345. Compare:
//
//      launcher = RpcAgentServerLauncher(host="localhost", port=12345,
//                                        custom_agent_classes=[WebAgent])
//      launcher.launch(in_subprocess=False)
//      launcher.wait_until_terminate()
//  @end

#include <agentserver.h>
#include <signal.h>
#include <string.h>

extern const ag_class_t webagent_class;
extern const ag_class_t example_class;

int
main (int argc, char *argv [])
{
    const char *endpoint = "tcp://127.0.0.1:12345";
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "-e") == 0 && i + 1 < argc)
            endpoint = argv [++i];
        else {
            fprintf (stderr, "usage: dist_server [-e ENDPOINT]\n");
            return 2;
        }
    }
    //  The signals that end the server are taken by sigwait below; block
    //  them before the server starts its threads, which inherit the mask
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);

    agd_server_t *server = agd_server_new ();
    if (agd_server_add_class (server, &webagent_class)
    ||  agd_server_add_class (server, &example_class)
    ||  agd_server_bind (server, endpoint)
    ||  agd_server_start (server)) {
        fprintf (stderr, "dist_server: %s\n", agd_server_error (server));
        agd_server_destroy (&server);
        return 1;
    }
    printf ("listening on %s\n", agd_server_endpoint (server, 0));
    fflush (stdout);

    int signal;
    sigwait (&signals, &signal);
    agd_server_stop (server);
    agd_server_wait (server);
    agd_server_destroy (&server);
    return 0;
}
