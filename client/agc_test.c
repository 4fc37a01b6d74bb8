/*  =========================================================================
    agc_test - selftest of the client library against an embedded server

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Kept apart from agc_conn.c so the library itself never links the
//  server; the selftest runner links both.
//  @end

#include "agc.h"


void
agc_conn_test (bool verbose)
{
    printf (" * agc_conn: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    agd_server_t *server = agd_server_new ();
    assert (agd_server_bind (server, "tcp://127.0.0.1:*") == 0);
    assert (agd_server_start (server) == 0);
    agc_conn_t *conn = agc_conn_new (agd_server_endpoint (server, 0));
    assert (conn);
    assert (agc_conn_ping (conn) > 0);
    ag_value_t *info = agc_conn_info (conn);
    assert (info);
    assert (ag_obj_streq (ag_obj_get (ag_value_object (info), "protocol"),
                          AGP_SIGNATURE));
    ag_value_destroy (&info);

    //  Unknown class: a clear error, and the thread's error says why
    assert (agc_agent_new (conn, "Nope", NULL, NULL) == NULL);
    assert (agc_status () == AG_NO_CLASS);
    assert (strstr (agc_reason (), "Nope"));

    //  Futures resolve by id: many pipelined pings
    agc_future_t *futures [100];
    for (int i = 0; i < 100; i++)
        futures [i] = agc_conn_request (conn, AGP_PING, 0, 0, NULL, 0);
    assert (agc_future_wait_all (futures, 100, 5000) == 0);
    for (int i = 0; i < 100; i++) {
        assert (agc_future_status (futures [i]) == AG_OK);
        agc_future_destroy (&futures [i]);
    }
    agc_conn_destroy (&conn);
    agd_server_destroy (&server);

    //  Nothing listening: the call fails within the timeout
    conn = agc_conn_new ("ipc:///nonexistent-dir/agentd.sock");
    assert (conn);
    agc_conn_set_timeout (conn, 300);
    int64_t start = ag_usecs ();
    assert (agc_conn_ping (conn) == -1);
    assert (agc_status () == AG_UNREACHABLE);
    assert (ag_usecs () - start < 5000000);
    agc_conn_destroy (&conn);
    assert (agc_conn_new ("http://example") == NULL);
    assert (agc_status () == AG_BAD_REQUEST);
    //  @end
    printf ("OK\n");
}
