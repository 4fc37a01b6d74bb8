/*  =========================================================================
    dist_main - the guide's dist_main.py in C

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  dist_main [--server ENDPOINT] [--create-on-server] [--plugin PATH]
//            [--delay-ms N]
//
//  Five WebAgents each "crawl" a page (5 s) to answer a query. The same
//  run () is used for local agents and for distributed ones: locally the
//  five pages take 25 s one after the other; distributed they take 5 s,
//  at once. The distributed agents are made as in the guide: a local
//  WebAgent moved with to_dist (); in child mode (the default) each gets
//  a child server, with --server ENDPOINT they go to a running server
//  (independent mode). --create-on-server creates them there directly,
//  so their init never runs here (the guide's to_dist init argument).
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

//  The guide's run (agents): one function for local and distributed
//  agents. reply is async: on distributed agents the five requests go
//  out at once; the answers are then read in order.
static double
s_run (agc_agent_t **agents)
{
    double start = s_now ();
    agc_future_t *results [AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *msg = ag_msg_newf ("system", "system", "{s:s, s:s}",
                                       "url", URLS [i], "query", QUERY);
        results [i] = agc_agent_reply (agents [i], msg);
        ag_value_destroy (&msg);
    }
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *reply = agc_future_result (results [i], AGC_FOREVER);
        if (reply) {
            const msgpack_object *msg = ag_value_object (reply);
            char *name = ag_obj_strdup (ag_msg_field (msg, "name"));
            char *content = ag_obj_strdup (ag_msg_field (msg, "content"));
            printf ("[%s] %s\n", name? name: "?", content? content: "?");
            free (name);
            free (content);
        }
        else
            printf ("[W%d] error %d: %s\n", i, agc_status (), agc_reason ());
        fflush (stdout);
        ag_value_destroy (&reply);
        agc_future_destroy (&results [i]);
    }
    return s_now () - start;
}

static ag_value_t *
s_args (int i, long delay_ms)
{
    char name [16];
    snprintf (name, sizeof name, "W%d", i);
    return ag_value_new ("{s:s, s:i}", "name", name,
                         "delay_ms", (int64_t) delay_ms);
}

//  init_without_dist
static int
s_init_without_dist (const ag_class_t *cls, long delay_ms,
                     agc_agent_t **agents)
{
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *args = s_args (i, delay_ms);
        agents [i] = agc_agent_new_local (cls, args);
        ag_value_destroy (&args);
        if (!agents [i])
            return -1;
    }
    return 0;
}

//  init_with_dist: WebAgent (...).to_dist (), or created on the server
static int
s_init_with_dist (const ag_class_t *cls, long delay_ms, const char *server,
                  bool on_server, agc_agent_t **agents)
{
    for (int i = 0; i < AGENTS; i++) {
        ag_value_t *args = s_args (i, delay_ms);
        if (on_server)
            agents [i] = agc_agent_new_dist (cls, args, server);
        else {
            agents [i] = agc_agent_new_local (cls, args);
            if (agents [i] && agc_agent_to_dist (agents [i], server))
                agc_agent_destroy (&agents [i]);
        }
        ag_value_destroy (&args);
        if (!agents [i])
            return -1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    const char *server = NULL;
    const char *plugin = AG_PLUGINDIR "/seed.so";
    bool on_server = false;
    long delay_ms = 5000;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--server") == 0 && i + 1 < argc)
            server = argv [++i];
        else
        if (strcmp (argv [i], "--plugin") == 0 && i + 1 < argc)
            plugin = argv [++i];
        else
        if (strcmp (argv [i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = atol (argv [++i]);
        else
        if (strcmp (argv [i], "--create-on-server") == 0)
            on_server = true;
        else {
            fprintf (stderr, "usage: dist_main [--server ENDPOINT]"
                     " [--create-on-server] [--plugin PATH] [--delay-ms N]\n");
            return 2;
        }
    }
    const ag_class_t *webagent = agc_class_load (plugin, "WebAgent");
    if (!webagent) {
        fprintf (stderr, "dist_main: %s\n", agc_reason ());
        return 1;
    }
    agc_agent_t *simple_agents [AGENTS], *dist_agents [AGENTS];
    double start = s_now ();
    if (s_init_without_dist (webagent, delay_ms, simple_agents)
    ||  s_init_with_dist (webagent, delay_ms, server, on_server,
                          dist_agents)) {
        fprintf (stderr, "dist_main: cannot create the agents: %s\n",
                 agc_reason ());
        return 1;
    }
    printf ("init time: %.6f s\n", s_now () - start);
    fflush (stdout);
    printf ("sequential: %.6f s\n", s_run (simple_agents));
    printf ("distributed: %.6f s\n", s_run (dist_agents));
    for (int i = 0; i < AGENTS; i++) {
        agc_agent_destroy (&simple_agents [i]);
        agc_agent_destroy (&dist_agents [i]);
    }
    return 0;
}
