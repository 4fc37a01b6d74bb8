/*  =========================================================================
    agd_notify - tell systemd how the service is doing (sd_notify)

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The notify protocol is one datagram to the unix socket $NOTIFY_SOCKET
//  ("@name" for the abstract namespace). Thirty lines of our own keep
//  libsystemd from being a dependency.
//  @end

#include "agd.h"
#include <sys/socket.h>
#include <sys/un.h>

int
agd_notify (const char *state)
{
    const char *path = getenv ("NOTIFY_SOCKET");
    if (!path || (path [0] != '/' && path [0] != '@'))
        return 0;                   //  not under systemd: nothing to do
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    size_t len = strlen (path);
    if (len >= sizeof address.sun_path)
        return -1;
    memcpy (address.sun_path, path, len);
    if (path [0] == '@')
        address.sun_path [0] = 0;
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t sent = sendto (fd, state, strlen (state), MSG_NOSIGNAL,
                           (struct sockaddr *) &address,
                           (socklen_t) (offsetof (struct sockaddr_un, sun_path)
                                        + len));
    close (fd);
    return sent < 0? -1: 0;
}

int64_t
agd_notify_watchdog_usec (void)
{
    const char *usec = getenv ("WATCHDOG_USEC");
    const char *pid = getenv ("WATCHDOG_PID");
    if (!usec || (pid && atol (pid) != (long) getpid ()))
        return 0;
    long long value = atoll (usec);
    return value > 0? value: 0;
}
