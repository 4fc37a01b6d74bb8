/*  =========================================================================
    ag_cert - CURVE certificates in czmq's zcert format, read without czmq

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The reader knows as much ZPL as a certificate needs: comments, a
//  section name at the start of a line, and `name = value` lines
//  indented under it, the value quoted or bare. Only the two keys of the
//  "curve" section are read; metadata and anything else are skipped. A
//  mistake is reported with the file's name, and with the line where
//  there is one.
//  @end

#include "ag_cert.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <assert.h>
#include <sodium.h>
#include <zmq.h>

bool
ag_cert_is_z85 (const char *text)
{
    uint8_t binary [32];
    return text && strlen (text) == 40
        && zmq_z85_decode (binary, text) != NULL;
}

//  Read a whole file, checking what kind of file it is. Returns the
//  text (caller frees), or NULL with a reason.
static char *
s_read (const char *path, bool secret, char *error, size_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf (error, size, "%s: %s", path, strerror (errno));
        return NULL;
    }
    struct stat info;
    if (fstat (fd, &info)) {
        snprintf (error, size, "%s: %s", path, strerror (errno));
        close (fd);
        return NULL;
    }
    if (!S_ISREG (info.st_mode)) {
        snprintf (error, size, "%s: not a regular file", path);
        close (fd);
        return NULL;
    }
    if (secret && (info.st_mode & (S_IRWXG | S_IRWXO))) {
        snprintf (error, size, "%s: secret key file is open to group or"
                  " others (mode %04o); make it private with chmod 600",
                  path, (unsigned) (info.st_mode & 07777));
        close (fd);
        return NULL;
    }
    if (info.st_size > AG_CERT_MAX_FILE) {
        snprintf (error, size, "%s: larger than %d octets: not a"
                  " certificate", path, AG_CERT_MAX_FILE);
        close (fd);
        return NULL;
    }
    char *text = (char *) malloc ((size_t) info.st_size + 1);
    if (!text) {
        snprintf (error, size, "%s: out of memory", path);
        close (fd);
        return NULL;
    }
    size_t length = 0;
    while (length < (size_t) info.st_size) {
        ssize_t got = read (fd, text + length, (size_t) info.st_size - length);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf (error, size, "%s: %s", path, strerror (errno));
            sodium_memzero (text, length);
            free (text);
            close (fd);
            return NULL;
        }
        if (got == 0)
            break;
        length += (size_t) got;
    }
    text [length] = 0;
    close (fd);
    if (strlen (text) != length) {
        snprintf (error, size, "%s: not a certificate (binary data)", path);
        sodium_memzero (text, length);
        free (text);
        return NULL;
    }
    return text;
}

//  Cut a comment (outside quotes) and trailing blanks off a line
static void
s_strip (char *line)
{
    char quote = 0;
    for (char *p = line; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
        }
        else
        if (*p == '"' || *p == '\'')
            quote = *p;
        else
        if (*p == '#') {
            *p = 0;
            break;
        }
    }
    size_t len = strlen (line);
    while (len && isspace ((unsigned char) line [len - 1]))
        line [--len] = 0;
}

//  Parse a certificate's text into self. Returns 0, or -1 with a reason.
static int
s_parse (ag_cert_t *self, const char *path, char *text, bool secret,
         char *error, size_t size)
{
    char section [64] = "";
    int number = 0;
    int found_public = 0, found_secret = 0;
    char *next = text;
    while (next && *next) {
        char *line = next;
        next = strchr (line, '\n');
        if (next)
            *next++ = 0;
        number++;
        s_strip (line);
        size_t indent = strspn (line, " ");
        char *body = line + indent;
        if (*body == 0)
            continue;
        if (indent == 0) {
            size_t name_len = strcspn (body, " =");
            if (name_len >= sizeof section)
                name_len = sizeof section - 1;
            memcpy (section, body, name_len);
            section [name_len] = 0;
            continue;
        }
        if (indent != 4 || strcmp (section, "curve") != 0)
            continue;               //  metadata, or deeper levels
        char *equals = strchr (body, '=');
        if (!equals) {
            snprintf (error, size, "%s:%d: expected 'name = value' in the"
                      " curve section", path, number);
            return -1;
        }
        char *name_end = equals;
        while (name_end > body && name_end [-1] == ' ')
            name_end--;
        *name_end = 0;
        char *value = equals + 1;
        value += strspn (value, " ");
        if (*value == '"' || *value == '\'') {
            char *close = strchr (value + 1, *value);
            if (!close || close [1]) {
                snprintf (error, size, "%s:%d: curve/%s: unbalanced quotes",
                          path, number, body);
                return -1;
            }
            *close = 0;
            value++;
        }
        char *target = NULL;
        if (strcmp (body, "public-key") == 0) {
            target = self->public_key;
            found_public++;
        }
        else
        if (strcmp (body, "secret-key") == 0) {
            if (!secret)
                continue;           //  a public reader has no use for it
            target = self->secret_key;
            found_secret++;
        }
        else
            continue;
        if (found_public > 1 || found_secret > 1) {
            snprintf (error, size, "%s:%d: curve/%s given twice", path,
                      number, body);
            return -1;
        }
        if (!ag_cert_is_z85 (value)) {
            snprintf (error, size, "%s:%d: curve/%s is not a 40-character"
                      " Z85 key", path, number, body);
            return -1;
        }
        memcpy (target, value, 41);
    }
    if (!found_public) {
        snprintf (error, size, "%s: not a CURVE certificate (no public-key"
                  " in a curve section)", path);
        return -1;
    }
    if (secret && !found_secret) {
        snprintf (error, size, "%s: no secret-key in its curve section:"
                  " a public certificate, where the secret one is needed",
                  path);
        return -1;
    }
    if (secret) {
        char derived [41];
        if (zmq_curve_public (derived, self->secret_key) != 0) {
            snprintf (error, size, "%s: cannot derive the public key: %s",
                      path, zmq_strerror (zmq_errno ()));
            return -1;
        }
        if (strcmp (derived, self->public_key) != 0) {
            snprintf (error, size, "%s: public-key does not belong to"
                      " secret-key", path);
            return -1;
        }
    }
    return 0;
}

static int
s_load (ag_cert_t *self, const char *path, bool secret, char *error,
        size_t size)
{
    memset (self, 0, sizeof *self);
    char *text = s_read (path, secret, error, size);
    if (!text)
        return -1;
    size_t length = strlen (text);
    int rc = s_parse (self, path, text, secret, error, size);
    sodium_memzero (text, length);
    free (text);
    if (rc)
        ag_cert_wipe (self);
    return rc;
}

int
ag_cert_load_public (ag_cert_t *self, const char *path, char *error,
                     size_t size)
{
    return s_load (self, path, false, error, size);
}

int
ag_cert_load_secret (ag_cert_t *self, const char *path, char *error,
                     size_t size)
{
    size_t len = strlen (path);
    if (len >= 7 && strcmp (path + len - 7, "_secret") == 0)
        return s_load (self, path, true, error, size);
    char *secret_path = (char *) malloc (len + 8);
    if (!secret_path) {
        snprintf (error, size, "%s: out of memory", path);
        return -1;
    }
    memcpy (secret_path, path, len);
    memcpy (secret_path + len, "_secret", 8);
    int rc = s_load (self, secret_path, true, error, size);
    free (secret_path);
    return rc;
}

void
ag_cert_wipe (ag_cert_t *self)
{
    sodium_memzero (self, sizeof *self);
}

//  ---------------------------------------------------------------------
//  Selftest

static int
s_write (const char *path, const char *text, int mode)
{
    unlink (path);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return -1;
    ssize_t rc = write (fd, text, strlen (text));
    fchmod (fd, (mode_t) mode);
    close (fd);
    return rc < 0? -1: 0;
}

void
ag_cert_test (bool verbose)
{
    printf (" * ag_cert: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    char dir [] = "/tmp/ag_cert_test_XXXXXX";
    assert (mkdtemp (dir));
    char name [64], secret_name [80], text [1024], error [512];
    snprintf (name, sizeof name, "%s/cert", dir);
    snprintf (secret_name, sizeof secret_name, "%s/cert_secret", dir);
    char public_key [41], secret_key [41];
    assert (zmq_curve_keypair (public_key, secret_key) == 0);
    //  As czmq writes them: a '#' inside a quoted key is no comment
    snprintf (text, sizeof text,
              "#   ZeroMQ CURVE Public Certificate\n\nmetadata\n"
              "    name = \"test\"   # a comment\n"
              "curve\n    public-key = \"%s\"\n", public_key);
    assert (s_write (name, text, 0644) == 0);
    snprintf (text, sizeof text,
              "#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\n"
              "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
              public_key, secret_key);
    assert (s_write (secret_name, text, 0600) == 0);

    ag_cert_t cert;
    assert (ag_cert_load_public (&cert, name, error, sizeof error) == 0);
    assert (strcmp (cert.public_key, public_key) == 0);
    assert (cert.secret_key [0] == 0);
    assert (ag_cert_load_secret (&cert, name, error, sizeof error) == 0);
    assert (strcmp (cert.secret_key, secret_key) == 0);
    assert (ag_cert_load_secret (&cert, secret_name, error, sizeof error)
            == 0);
    assert (strcmp (cert.public_key, public_key) == 0);
    ag_cert_wipe (&cert);
    assert (cert.secret_key [0] == 0);

    //  A secret others may read is refused, naming the file
    assert (chmod (secret_name, 0640) == 0);
    assert (ag_cert_load_secret (&cert, name, error, sizeof error) == -1);
    assert (strstr (error, secret_name) && strstr (error, "mode 0640"));
    assert (chmod (secret_name, 0600) == 0);

    //  Every kind of mistake names the file
    struct {
        const char *text;
        bool secret;
        const char *words;
    } bad [] = {
        { "curve\n    public-key = \"short\"\n", false,
          ":2: curve/public-key is not a 40-character Z85 key" },
        { "metadata\n    public-key = \"x\"\n", false,
          "not a CURVE certificate" },
        { "curve\n    public-key\n", false, ":2: expected 'name = value'" },
        { "curve\n    public-key = \"abc\n", false, "unbalanced quotes" },
        { NULL, true, "no secret-key" },
        { NULL, false, NULL }
    };
    for (int i = 0; bad [i].words; i++) {
        if (bad [i].text)
            assert (s_write (name, bad [i].text, 0644) == 0);
        else {
            snprintf (text, sizeof text, "curve\n    public-key = \"%s\"\n",
                      public_key);
            assert (s_write (secret_name, text, 0600) == 0);
        }
        int rc = bad [i].secret
               ? ag_cert_load_secret (&cert, name, error, sizeof error)
               : ag_cert_load_public (&cert, name, error, sizeof error);
        if (rc != -1 || !strstr (error, dir) || !strstr (error, bad [i].words)) {
            printf ("case %d: '%s'\n", i, error);
            assert (false);
        }
    }
    //  A secret key that does not give the public key is refused
    char other_public [41], other_secret [41];
    assert (zmq_curve_keypair (other_public, other_secret) == 0);
    snprintf (text, sizeof text, "curve\n    public-key = \"%s\"\n"
              "    secret-key = \"%s\"\n", public_key, other_secret);
    assert (s_write (secret_name, text, 0600) == 0);
    assert (ag_cert_load_secret (&cert, secret_name, error, sizeof error)
            == -1);
    assert (strstr (error, "does not belong"));
    assert (ag_cert_load_public (&cert, "/nonexistent/cert", error,
                                 sizeof error) == -1);
    assert (strstr (error, "/nonexistent/cert: No such file"));
    assert (ag_cert_load_public (&cert, dir, error, sizeof error) == -1);
    assert (strstr (error, "not a regular file"));
    unlink (name);
    unlink (secret_name);
    rmdir (dir);
    //  @end
    printf ("OK\n");
}
