/*  =========================================================================
    dist_main - the guide's dist_main.py in C, against a running server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  dist_main --server ENDPOINT [--delay-ms N]: create five WebAgents on
//  the server (independent mode), give each a page to answer, and print
//  the answers and the times. Each page takes 5 s (or N ms); the five
//  run at once, so the distributed run takes about one page's time.
//  @end

#include <agentclient.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AGENTS 5

static const char *QUERY = "example query";
static const char *URLS [AGENTS] = {
    "page_1", "page_2", "page_3", "page_4", "page_5"
};

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  The guide's run(): the same code serves local and distributed agents.
//  reply is async: the five requests go out at once, then the answers
//  are read in order.
static double
s_run (agc_agent_t **agents)
{
    double start = s_now ();
    agc_future_t *results [AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *msg = ag_value_new ("{s:s, s:s, s:{s:s, s:s}}",
            "name", "system", "role", "system",
            "content", "url", URLS [i], "query", QUERY);
        results [i] = agc_agent_call (agents [i], "reply", msg);
        ag_value_destroy (&msg);
    }
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *reply = agc_future_result (results [i], AGC_FOREVER);
        if (reply) {
            const msgpack_object *msg = ag_value_object (reply);
            char *name = ag_obj_strdup (ag_obj_get (msg, "name"));
            char *content = ag_obj_strdup (ag_obj_get (msg, "content"));
            printf ("[%s] %s\n", name? name: "?", content? content: "?");
            free (name);
            free (content);
        }
        else
            printf ("[W%d] error %d: %s\n", i, agc_status (), agc_reason ());
        ag_value_destroy (&reply);
        agc_future_destroy (&results [i]);
    }
    return s_now () - start;
}

int
main (int argc, char *argv [])
{
    const char *server = NULL;
    long delay_ms = 5000;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--server") == 0 && i + 1 < argc)
            server = argv [++i];
        else
        if (strcmp (argv [i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = atol (argv [++i]);
        else {
            fprintf (stderr, "usage: dist_main --server ENDPOINT"
                     " [--delay-ms N]\n");
            return 2;
        }
    }
    if (!server) {
        fprintf (stderr, "dist_main: give --server tcp://host:port\n");
        return 2;
    }
    agc_conn_t *conn = agc_conn_new (server);
    if (!conn) {
        fprintf (stderr, "dist_main: %s\n", agc_reason ());
        return 1;
    }
    double start = s_now ();
    agc_agent_t *agents [AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        char name [16];
        snprintf (name, sizeof name, "W%d", i);
        ag_value_t *args = ag_value_new ("{s:s, s:i}", "name", name,
                                         "delay_ms", (int64_t) delay_ms);
        agents [i] = agc_agent_new (conn, "WebAgent", args, NULL);
        ag_value_destroy (&args);
        if (!agents [i]) {
            fprintf (stderr, "dist_main: cannot create %s on %s: %s\n", name,
                     server, agc_reason ());
            return 1;
        }
    }
    printf ("init time: %.6f s\n", s_now () - start);
    printf ("distributed: %.6f s\n", s_run (agents));
    for (int i = 0; i < AGENTS; i++)
        agc_agent_destroy (&agents [i]);
    agc_conn_destroy (&conn);
    return 0;
}
