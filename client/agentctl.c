/*  =========================================================================
    agentctl - inspect and drive a running agentd

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include <agentclient.h>

int
main (int argc, char *argv [])
{
    fprintf (stderr, "agentctl: not built yet\n");
    return 2;
}
