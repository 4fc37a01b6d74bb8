/*  =========================================================================
    ag_status - names of the AGP status codes

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "../common/ag_common.h"

const char *
ag_status_str (int status)
{
    switch (status) {
        case AG_OK:             return "ok";
        case AG_PENDING:        return "result not ready";
        case AG_BUSY:           return "server busy";
        case AG_STOPPING:       return "server stopping";
        case AG_BAD_REQUEST:    return "bad request";
        case AG_NO_AGENT:       return "no such agent";
        case AG_NO_METHOD:      return "no such method";
        case AG_NO_CLASS:       return "no such class";
        case AG_NO_ATTR:        return "no such attribute";
        case AG_NAME_TAKEN:     return "name taken";
        case AG_GONE:           return "result gone";
        case AG_TOO_LARGE:      return "message too large";
        case AG_BAD_ARGS:       return "bad arguments";
        case AG_DEP_FAILED:     return "a future given as argument failed";
        case AG_BAD_VERSION:    return "protocol version mismatch";
        case AG_CANCELLED:      return "cancelled";
        case AG_INTERNAL:       return "internal server error";
        case AG_INIT_FAILED:    return "agent init failed";
        case AG_DEADLINE:       return "deadline passed";
        case AG_AGENT_ERROR:    return "agent error";
        case AG_CRASHED:        return "agent crashed";
        case AG_FAILED:         return "agent failed";
        case AG_UNREACHABLE:    return "server unreachable";
        case AG_TIMEOUT:        return "timed out";
        case AG_CLOSED:         return "connection closed";
        case AG_DENIED:         return "access denied";
        default:                return "unknown status";
    }
}
