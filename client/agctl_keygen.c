/*  =========================================================================
    agctl_keygen - agentctl keygen: make a CURVE certificate

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A certificate is two files in czmq's zcert format: NAME, the public
//  key, to hand to the other side, and NAME_secret, the public and the
//  secret key, readable by its owner alone. The keys come from libzmq's
//  zmq_curve_keypair. Neither file is ever overwritten: both are created
//  exclusively, and if the second cannot be, the first is removed, so a
//  failed keygen leaves nothing behind.
//  @end

#include "agctl.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

//  Create path exclusively with mode, write text. Returns 0, or -1
//  having printed why (and removed a file it created).
static int
s_write (const char *path, int mode, const char *text)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW
                         | O_CLOEXEC, mode);
    if (fd < 0) {
        agctl_fail (0, "%s: %s%s", path, strerror (errno),
                    errno == EEXIST? " (keygen never overwrites a"
                    " certificate)": "");
        return -1;
    }
    //  The mode asked for, whatever the umask took away from the
    //  public file's; the secret file's is 600 at most anyway
    int rc = fchmod (fd, (mode_t) mode);
    size_t length = strlen (text), done = 0;
    while (rc == 0 && done < length) {
        ssize_t written = write (fd, text + done, length - done);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            rc = -1;
        else
            done += (size_t) written;
    }
    if (close (fd) && rc == 0)
        rc = -1;
    if (rc) {
        agctl_fail (0, "%s: %s", path, strerror (errno));
        unlink (path);
    }
    return rc;
}

int
agctl_keygen (agctl_t *self, int argc, char **argv)
{
    const char *name = argv [0];
    size_t length = strlen (name);
    if (length == 0 || name [length - 1] == '/')
        return agctl_fail (AGCTL_USAGE, "keygen needs a file name, not '%s'",
                           name);
    if (length >= 7 && strcmp (name + length - 7, "_secret") == 0)
        return agctl_fail (AGCTL_USAGE, "%s: name the certificate without"
                           " _secret; keygen writes NAME and NAME_secret",
                           name);
    char *secret_name = (char *) malloc (length + 8);
    if (!secret_name)
        return agctl_fail (AGCTL_FAILED, "out of memory");
    memcpy (secret_name, name, length);
    memcpy (secret_name + length, "_secret", 8);
    //  Refuse before writing anything when either exists
    struct stat info;
    const char *taken = lstat (name, &info) == 0? name
                      : lstat (secret_name, &info) == 0? secret_name: NULL;
    if (taken) {
        int rc = agctl_fail (AGCTL_FAILED, "%s: exists already (keygen"
                             " never overwrites a certificate)", taken);
        free (secret_name);
        return rc;
    }
    char public_key [41], secret_key [41];
    if (zmq_curve_keypair (public_key, secret_key)) {
        int rc = agctl_fail (AGCTL_FAILED, "cannot make a CURVE key pair:"
                             " %s (is libzmq built with CURVE?)",
                             zmq_strerror (zmq_errno ()));
        free (secret_name);
        return rc;
    }
    char stamp [32];
    time_t now = time (NULL);
    struct tm local;
    strftime (stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S",
              localtime_r (&now, &local));
    char secret_text [512], public_text [512];
    snprintf (secret_text, sizeof secret_text,
              "#   ****  Generated on %s by agentctl  ****\n"
              "#   ZeroMQ CURVE **Secret** Certificate\n"
              "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its"
              " permissions.\n"
              "\n"
              "metadata\n"
              "curve\n"
              "    public-key = \"%s\"\n"
              "    secret-key = \"%s\"\n", stamp, public_key, secret_key);
    snprintf (public_text, sizeof public_text,
              "#   ****  Generated on %s by agentctl  ****\n"
              "#   ZeroMQ CURVE Public Certificate\n"
              "#   Exchange securely, or use a secure mechanism to verify"
              " the contents\n"
              "#   of this file after exchange.\n"
              "\n"
              "metadata\n"
              "curve\n"
              "    public-key = \"%s\"\n", stamp, public_key);
    int rc = s_write (secret_name, 0600, secret_text);
    explicit_bzero (secret_text, sizeof secret_text);
    explicit_bzero (secret_key, sizeof secret_key);
    if (rc == 0 && s_write (name, 0644, public_text)) {
        unlink (secret_name);
        rc = -1;
    }
    if (rc) {
        free (secret_name);
        return AGCTL_FAILED;
    }
    if (self->json) {
        json_t *json = json_pack ("{s:s, s:s, s:s}", "public", name,
                                  "secret", secret_name, "public_key",
                                  public_key);
        rc = json? agctl_json_print (json, true, stdout): -1;
        json_decref (json);
    }
    else
        rc = printf ("wrote %s (public) and %s (secret, mode 600)\n"
                     "public key: %s\n", name, secret_name, public_key) < 0;
    free (secret_name);
    return rc? agctl_fail (AGCTL_FAILED, "cannot write the output")
             : AGCTL_OK;
}
