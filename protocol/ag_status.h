/*  =========================================================================
    ag_status - status codes of the AGP protocol

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Every reply carries a status. 2xx is success, 3xx a condition worth
//  retrying, 4xx the caller's fault, 5xx a failure on the server side or
//  on the way to it. PROTOCOL.md defines each code; this is its one copy
//  in C. The 5xx codes from 590 up never cross the wire: the client
//  library produces them locally.
//  @end

#ifndef AG_STATUS_H_INCLUDED
#define AG_STATUS_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  Public symbols are marked; everything else is hidden by the build.
#ifndef AG_EXPORT
#   define AG_EXPORT __attribute__ ((visibility ("default")))
#endif

#define AG_OK                200    //  success
#define AG_PENDING           301    //  result not ready yet
#define AG_BUSY              302    //  server over a limit; try later
#define AG_STOPPING          303    //  server is shutting down
#define AG_BAD_REQUEST       400    //  malformed envelope or body
#define AG_NO_AGENT          404    //  no such agent
#define AG_NO_METHOD         405    //  no such (public) method
#define AG_NO_CLASS          406    //  no such agent class
#define AG_NO_ATTR           407    //  no such attribute
#define AG_NAME_TAKEN        409    //  agent name already used
#define AG_GONE              410    //  result expired or never existed
#define AG_TOO_LARGE         413    //  message over the size limit
#define AG_BAD_ARGS          422    //  arguments rejected by the agent
#define AG_DEP_FAILED        424    //  a future given as argument failed
#define AG_BAD_VERSION       426    //  peer speaks another protocol version
#define AG_CANCELLED         499    //  the call was cancelled: by its caller,
                                    //  or as its agent was deleted
#define AG_INTERNAL          500    //  bug or resource failure in server
#define AG_INIT_FAILED       502    //  class init reported an error
#define AG_DEADLINE          504    //  the call's deadline passed
#define AG_AGENT_ERROR       520    //  method reported an error
#define AG_CRASHED           521    //  the agent's host process died while
                                    //  the call ran: it may have run in part
#define AG_FAILED            522    //  the agent crashed past its restart
                                    //  budget; it answers nothing until
                                    //  deleted
#define AG_UNREACHABLE       590    //  client: server dead or unreachable
#define AG_TIMEOUT           591    //  client: wait timed out
#define AG_CLOSED            592    //  client: connection closed locally
#define AG_DENIED            593    //  client: server refused our key

//  Return a constant, human-readable name for a status code, such as
//  "no such agent". Unknown codes give "unknown status".
AG_EXPORT const char *
    ag_status_str (int status);

#ifdef __cplusplus
}
#endif

#endif
