/*  =========================================================================
    example - the guide's Example class, driven from C

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  example [--server ENDPOINT] [--plugin PATH]: Example (to_dist=True),
//  created on a child server (or the one given): sync_method blocks its
//  caller for about 1 s, async_method returns at once and its future
//  gives "async", complex_result gives {"a": 1, "b": 2, "c": "hello
//  world"}.
//  @end

#include <agentclient.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_fail (const char *what)
{
    fprintf (stderr, "example: %s: %s\n", what, agc_reason ());
    return 1;
}

int
main (int argc, char *argv [])
{
    const char *server = NULL;
    const char *plugin = AG_PLUGINDIR "/seed.so";
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--server") == 0 && i + 1 < argc)
            server = argv [++i];
        else
        if (strcmp (argv [i], "--plugin") == 0 && i + 1 < argc)
            plugin = argv [++i];
        else {
            fprintf (stderr, "usage: example [--server ENDPOINT]"
                     " [--plugin PATH]\n");
            return 2;
        }
    }
    const ag_class_t *cls = agc_class_load (plugin, "Example");
    if (!cls)
        return s_fail ("load");
    agc_agent_t *example = agc_agent_new_dist (cls, NULL, server);
    if (!example)
        return s_fail ("create");

    double t1 = s_now ();
    ag_value_t *sync_result = agc_agent_call_value (example, "sync_method",
                                                    NULL);
    double t2 = s_now ();
    if (!ag_obj_streq (ag_value_object (sync_result), "sync"))
        return s_fail ("sync_method");
    printf ("Sync func cost: %.6f s\n", t2 - t1);

    double t3 = s_now ();
    agc_future_t *async_result = agc_agent_call (example, "async_method",
                                                 NULL);
    double t4 = s_now ();
    printf ("Async func cost: %.6f s\n", t4 - t3);
    ag_value_t *value = agc_future_result (async_result, AGC_FOREVER);
    if (!ag_obj_streq (ag_value_object (value), "async"))
        return s_fail ("async_method");

    ag_value_t *complex = agc_agent_call_value (example, "complex_result",
                                                NULL);
    const msgpack_object *map = ag_value_object (complex);
    if (ag_obj_int (ag_obj_get (map, "a"), 0) != 1
    ||  ag_obj_int (ag_obj_get (map, "b"), 0) != 2
    ||  !ag_obj_streq (ag_obj_get (map, "c"), "hello world"))
        return s_fail ("complex_result");
    printf ("complex_result: ");
    ag_value_print (complex, stdout);
    printf ("\n");

    ag_value_destroy (&complex);
    ag_value_destroy (&value);
    ag_value_destroy (&sync_result);
    agc_future_destroy (&async_result);
    agc_agent_destroy (&example);
    return 0;
}
