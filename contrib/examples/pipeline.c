/*  =========================================================================
    pipeline - three agents on two servers, chained by futures

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  pipeline [--plugin PATH] [--delay-ms N] [ENDPOINT1 ENDPOINT2]
//
//  Three Stage agents (seed.so) form a pipeline: "parse" and "render" on
//  one server, "check" on another. Each stage's reply is asked for at
//  once, with the previous stage's future as its argument:
//
//      y = parse.reply (x);  z = check.reply (y);  w = render.reply (z)
//
//  so the caller sends three requests without waiting, and the values go
//  from server to server, never back through it. It prints the time the
//  caller spent sending (near zero) against the time to the result (the
//  three stages' work, one after the other). With no endpoints, it starts
//  two child servers; with two, it uses those running servers.
//  @end

#include <agentclient.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static agc_agent_t *
s_stage (agc_conn_t *conn, const char *name, int64_t delay_ms)
{
    ag_value_t *args = ag_value_new ("{s:s, s:i}", "name", name,
                                     "delay_ms", delay_ms);
    agc_agent_t *agent = agc_agent_new (conn, "Stage", args, NULL);
    ag_value_destroy (&args);
    if (!agent)
        fprintf (stderr, "pipeline: cannot create stage %s: %s\n", name,
                 agc_reason ());
    return agent;
}

int
main (int argc, char *argv [])
{
    const char *plugin = "seed.so";
    const char *endpoints [2] = { NULL, NULL };
    int given = 0;
    int64_t delay_ms = 500;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--plugin") == 0 && i + 1 < argc)
            plugin = argv [++i];
        else
        if (strcmp (argv [i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = atoll (argv [++i]);
        else
        if (argv [i][0] != '-' && given < 2)
            endpoints [given++] = argv [i];
        else {
            fprintf (stderr, "usage: pipeline [--plugin PATH] [--delay-ms N]"
                     " [ENDPOINT1 ENDPOINT2]\n");
            return 2;
        }
    }
    if (given == 1 || delay_ms < 0 || delay_ms > 60000) {
        fprintf (stderr, "pipeline: give two endpoints or none, and a"
                 " delay of 0 to 60000 ms\n");
        return 2;
    }
    agc_conn_t *servers [2];
    for (int i = 0; i < 2; i++) {
        servers [i] = given? agc_conn_new (endpoints [i])
                           : agc_conn_spawn (plugin);
        if (!servers [i]) {
            fprintf (stderr, "pipeline: cannot reach a server: %s\n",
                     agc_reason ());
            return 1;
        }
        printf ("server %d: %s\n", i + 1, agc_conn_endpoint (servers [i]));
    }
    agc_agent_t *parse = s_stage (servers [0], "parse", delay_ms);
    agc_agent_t *check = s_stage (servers [1], "check", delay_ms);
    agc_agent_t *render = s_stage (servers [0], "render", delay_ms);
    if (!parse || !check || !render)
        return 1;

    double start = s_now ();
    ag_value_t *x = ag_msg_newf ("user", "user", "s", "page_1");
    agc_future_t *y = agc_agent_reply (parse, x);
    ag_value_t *ref_y = agc_future_ref (y);
    agc_future_t *z = agc_agent_reply (check, ref_y);
    ag_value_t *ref_z = agc_future_ref (z);
    agc_future_t *w = agc_agent_reply (render, ref_z);
    double blocked = s_now () - start;
    ag_value_t *result = agc_future_result (w, AGC_FOREVER);
    double total = s_now () - start;
    int rc = 0;
    if (result) {
        const msgpack_object *msg = ag_value_object (result);
        char *name = ag_obj_strdup (ag_msg_field (msg, "name"));
        char *content = ag_obj_strdup (ag_msg_field (msg, "content"));
        printf ("[%s] %s\n", name? name: "?", content? content: "?");
        free (name);
        free (content);
    }
    else {
        fprintf (stderr, "pipeline: %s\n", agc_reason ());
        rc = 1;
    }
    printf ("caller blocked: %.6f s\n", blocked);
    printf ("total: %.6f s (3 stages of %.3f s)\n", total,
            (double) delay_ms / 1000);
    ag_value_destroy (&result);
    agc_future_destroy (&w);
    agc_future_destroy (&z);
    agc_future_destroy (&y);
    ag_value_destroy (&ref_z);
    ag_value_destroy (&ref_y);
    ag_value_destroy (&x);
    agc_agent_destroy (&parse);
    agc_agent_destroy (&check);
    agc_agent_destroy (&render);
    for (int i = 0; i < 2; i++)
        agc_conn_destroy (&servers [i]);
    return rc;
}
