/*  =========================================================================
    ag_cert - CURVE certificates in czmq's zcert format, read without czmq

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A certificate is two files, as czmq's zcert writes them: NAME holds
//  the public key, NAME_secret the public and the secret key. Both are
//  ZPL text; their "curve" section has `public-key` and (the secret file
//  only) `secret-key`, each 40 characters of Z85. The server and the
//  client library read them with this code, which uses libzmq alone, so
//  the client library stays free of czmq.
//  @end

#ifndef AG_CERT_H_INCLUDED
#define AG_CERT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Largest certificate file read, in octets
#define AG_CERT_MAX_FILE    65536

typedef struct {
    char public_key [41];           //  Z85, 40 characters and a NUL
    char secret_key [41];           //  Z85, or "" when not read
} ag_cert_t;

//  Read a public certificate (a secret one will do too: its public-key
//  is read, its secret-key ignored). Returns 0, or -1 with a reason
//  that names the file.
int
    ag_cert_load_public (ag_cert_t *self, const char *path, char *error,
                         size_t size);

//  Read a secret certificate. path is the secret file (NAME_secret) or
//  its public twin (NAME, and then NAME_secret is read). The secret
//  file must be a regular file that neither group nor others may read
//  or write, and its public-key must be the one its secret-key gives.
//  Returns 0, or -1 with a reason that names the file.
int
    ag_cert_load_secret (ag_cert_t *self, const char *path, char *error,
                         size_t size);

//  Overwrite the keys in memory.
void
    ag_cert_wipe (ag_cert_t *self);

//  True if text is a 40-character Z85 key.
bool
    ag_cert_is_z85 (const char *text);

//  Selftest
void ag_cert_test (bool verbose);

#endif
