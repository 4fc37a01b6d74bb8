/*  =========================================================================
    agd_auth - the ZAP handler: which CURVE clients may connect

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  A server with CURVE sets ZMQ_CURVE_SERVER on its ROUTER socket, and
//  libzmq then asks the ZAP handler (RFC 27) about every client that
//  completes the CURVE handshake, giving the client's public key and
//  address. This is that handler: an actor with a REP socket bound to
//  inproc://zeromq.zap.01 in czmq's context, the one the server's
//  sockets live in. It allows a key found in the server's directory of
//  client certificates and refuses any other, and logs each decision:
//  refusals at warning level with the address and the key, admissions
//  at info level.
//
//  libzmq looks for the handler by that one name in each context, so one
//  handler serves the whole process. Each server registers a ZAP domain
//  of its own (agentd-N), which its socket sends with every request, and
//  the handler answers from that domain's keys; a request for a domain
//  nobody registered is refused. The handler starts with the first
//  domain and stops with the last. It must be bound before the socket it
//  serves accepts a connection: libzmq lets a CURVE client in without
//  asking when no handler is bound.
//
//  A client that does not speak CURVE at all, or encrypts its handshake
//  for another server key, fails before ZAP is asked: libzmq drops the
//  connection, and the handler never hears of it.
//
//  The handler owns what it reads from: domains come and go, and key
//  sets are replaced, through commands on its pipe, so it needs no lock.
//  @end

#include "agd.h"
#include "../common/ag_cert.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>

#define ZAP_ENDPOINT        "inproc://zeromq.zap.01"

struct _agd_auth_t {
    char domain [32];               //  ZAP domain, "agentd-N"
    char *dir;                      //  client certificates
    zhashx_t *keys;                 //  Z85 key -> certificate file name
                                    //  (the handler's while registered)
    atomic_int log_level;           //  AGD_LOG_*
};

//  The handler of this process: started with the first domain
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static agd_actor_t *s_handler;
static size_t s_domains;
static unsigned s_next_id;

//  ---------------------------------------------------------------------
//  Reading keys

static void
s_free_name (void **item)
{
    free (*item);
    *item = NULL;
}

//  Read every certificate in dir. Returns a new key set, or NULL with a
//  reason.
static zhashx_t *
s_load_keys (const char *dir, char *error, size_t size)
{
    struct stat info;
    if (stat (dir, &info)) {
        snprintf (error, size, "%s: %s", dir, strerror (errno));
        return NULL;
    }
    if (!S_ISDIR (info.st_mode)) {
        snprintf (error, size, "%s: not a directory (client certificates"
                  " go in a directory)", dir);
        return NULL;
    }
    if (info.st_mode & S_IWOTH) {
        snprintf (error, size, "%s: client certificate directory is"
                  " writable by others (mode %04o): anyone could add a key",
                  dir, (unsigned) (info.st_mode & 07777));
        return NULL;
    }
    struct dirent **names;
    int count = scandir (dir, &names, NULL, alphasort);
    if (count < 0) {
        snprintf (error, size, "%s: %s", dir, strerror (errno));
        return NULL;
    }
    zhashx_t *keys = zhashx_new ();
    zhashx_set_destructor (keys, s_free_name);
    int rc = 0;
    for (int i = 0; i < count; i++) {
        const char *name = names [i]->d_name;
        size_t len = strlen (name);
        char path [PATH_MAX];
        bool skip = name [0] == '.'
                 || (len >= 7 && streq (name + len - 7, "_secret"));
        if (rc == 0 && !skip) {
            snprintf (path, sizeof path, "%s/%s", dir, name);
            ag_cert_t cert;
            if (stat (path, &info)) {
                snprintf (error, size, "%s: %s", path, strerror (errno));
                rc = -1;
            }
            else
            if (!S_ISREG (info.st_mode))
                ;                   //  a subdirectory: not ours
            else
            if (info.st_mode & S_IWOTH) {
                snprintf (error, size, "%s: client certificate is writable"
                          " by others (mode %04o)", path,
                          (unsigned) (info.st_mode & 07777));
                rc = -1;
            }
            else
            if (ag_cert_load_public (&cert, path, error, size))
                rc = -1;
            else
            if (!zhashx_lookup (keys, cert.public_key))
                zhashx_insert (keys, cert.public_key, strdup (name));
        }
        free (names [i]);
    }
    free (names);
    if (rc)
        zhashx_destroy (&keys);
    return keys;
}

int
agd_auth_check_dir (const char *dir, char *error, size_t size)
{
    zhashx_t *keys = s_load_keys (dir, error, size);
    if (!keys)
        return -1;
    int count = (int) zhashx_size (keys);
    zhashx_destroy (&keys);
    return count;
}

//  ---------------------------------------------------------------------
//  The handler actor

typedef struct {
    int rc;                         //  0, or -1 if it could not bind
    char error [256];
} start_t;

typedef struct {
    zsock_t *pipe;                  //  actor pipe
    zsock_t *zap;                   //  REP, answers libzmq
    zpoller_t *poller;
    zlist_t *domains;               //  agd_auth_t, registered
    bool terminated;
} handler_t;

static agd_auth_t *
s_domain (handler_t *self, const char *name)
{
    agd_auth_t *domain = (agd_auth_t *) zlist_first (self->domains);
    while (domain && !(name && streq (domain->domain, name)))
        domain = (agd_auth_t *) zlist_next (self->domains);
    return domain;
}

static bool
s_logs (agd_auth_t *domain, int level)
{
    return atomic_load (&domain->log_level) >= level;
}

//  One ZAP request: version, request id, domain, address, routing id,
//  mechanism, credentials (for CURVE, the client's 32-octet key)
static void
s_answer (handler_t *self)
{
    zmsg_t *request = zmsg_recv (self->zap);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    zframe_t *sequence = zmsg_pop (request);
    char *name = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credential = zmsg_pop (request);
    char key [41] = "";
    if (credential && zframe_size (credential) == 32)
        zmq_z85_encode (key, zframe_data (credential), 32);
    const char *peer = address && *address? address: "(unknown address)";

    const char *status = "400";
    const char *text = "refused";
    agd_auth_t *domain = s_domain (self, name);
    if (!version || !streq (version, "1.0")) {
        status = "500";
        text = "ZAP version not supported";
        zsys_error ("ZAP request of version %s: not supported",
                    version? version: "(none)");
    }
    else
    if (!domain)
        zsys_warning ("refused a %s client from %s: ZAP domain '%s' is not"
                      " one of this process's servers",
                      mechanism? mechanism: "(unknown)", peer,
                      name? name: "");
    else
    if (!mechanism || !streq (mechanism, "CURVE") || !*key) {
        if (s_logs (domain, AGD_LOG_WARNING))
            zsys_warning ("refused a %s client from %s: only CURVE clients"
                          " are accepted", mechanism? mechanism: "(unknown)",
                          peer);
    }
    else {
        const char *file = (const char *) zhashx_lookup (domain->keys, key);
        if (file) {
            status = "200";
            text = "OK";
            if (s_logs (domain, AGD_LOG_INFO))
                zsys_info ("allowed CURVE client key %s from %s (%s/%s)",
                           key, peer, domain->dir, file);
        }
        else
        if (s_logs (domain, AGD_LOG_WARNING))
            zsys_warning ("refused CURVE client key %s from %s: not in %s",
                          key, peer, domain->dir);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (sequence)
        zmsg_append (reply, &sequence);
    else
        zmsg_addmem (reply, NULL, 0);
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, streq (status, "200")? key: "");
    zmsg_addmem (reply, NULL, 0);   //  no metadata
    zmsg_send (&reply, self->zap);

    zstr_free (&version);
    zstr_free (&name);
    zstr_free (&address);
    zstr_free (&mechanism);
    zframe_destroy (&sequence);
    zframe_destroy (&identity);
    zframe_destroy (&credential);
    zmsg_destroy (&request);
}

static void
s_command (handler_t *self)
{
    char *command = NULL;
    void *first = NULL, *second = NULL;
    if (zsock_recv (self->pipe, "spp", &command, &first, &second)
    ||  !command || streq (command, "$TERM")) {
        self->terminated = true;
        zstr_free (&command);
        return;
    }
    agd_auth_t *domain = (agd_auth_t *) first;
    if (streq (command, "ADD"))
        zlist_append (self->domains, domain);
    else
    if (streq (command, "REMOVE"))
        zlist_remove (self->domains, domain);
    else
    if (streq (command, "KEYS")) {
        zhashx_t *keys = domain->keys;
        domain->keys = (zhashx_t *) second;
        zhashx_destroy (&keys);
    }
    zstr_free (&command);
    zsock_signal (self->pipe, 0);
}

static void
s_zap_actor (zsock_t *pipe, void *args)
{
    start_t *start = (start_t *) args;
    handler_t self = { .pipe = pipe };
    self.zap = zsock_new (ZMQ_REP);
    if (!self.zap || zsock_bind (self.zap, "%s", ZAP_ENDPOINT) == -1) {
        start->rc = -1;
        snprintf (start->error, sizeof start->error, "cannot bind the ZAP"
                  " handler at %s: %s (does this process run another, such"
                  " as czmq's zauth?)", ZAP_ENDPOINT,
                  zmq_strerror (zmq_errno ()));
        zsock_destroy (&self.zap);
        zsock_signal (pipe, 0);
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    self.domains = zlist_new ();
    self.poller = zpoller_new (pipe, self.zap, NULL);
    zpoller_set_nonstop (self.poller, true);
    zsock_signal (pipe, 0);
    while (!self.terminated) {
        void *which = zpoller_wait (self.poller, -1);
        if (which == pipe)
            s_command (&self);
        else
        if (which == self.zap)
            s_answer (&self);
        else
        if (zpoller_terminated (self.poller))
            break;
    }
    //  Domains left are their owners' to free
    zlist_destroy (&self.domains);
    zpoller_destroy (&self.poller);
    zsock_destroy (&self.zap);
}

//  ---------------------------------------------------------------------
//  Domains

agd_auth_t *
agd_auth_new (const char *dir, int log_level, char *error, size_t size)
{
    zhashx_t *keys = s_load_keys (dir, error, size);
    if (!keys)
        return NULL;
    agd_auth_t *self = (agd_auth_t *) zmalloc (sizeof (agd_auth_t));
    self->dir = strdup (dir);
    self->keys = keys;
    atomic_init (&self->log_level, log_level);
    pthread_mutex_lock (&s_lock);
    unsigned id = ++s_next_id;
    snprintf (self->domain, sizeof self->domain, "agentd-%u", id);
    if (!s_handler) {
        start_t start = { 0, "" };
        s_handler = agd_actor_new (s_zap_actor, &start);
        if (!s_handler || start.rc) {
            snprintf (error, size, "%s", s_handler? start.error
                                       : "cannot start the ZAP handler");
            agd_actor_destroy (&s_handler);
            pthread_mutex_unlock (&s_lock);
            zhashx_destroy (&self->keys);
            free (self->dir);
            free (self);
            return NULL;
        }
    }
    zsock_send (agd_actor_sock (s_handler), "sp", "ADD", self);
    zsock_wait (agd_actor_sock (s_handler));
    s_domains++;
    pthread_mutex_unlock (&s_lock);
    size_t count = zhashx_size (keys);
    if (count == 0 && log_level >= AGD_LOG_WARNING)
        zsys_warning ("no client certificates in %s: every client will be"
                      " refused", dir);
    else
    if (log_level >= AGD_LOG_NOTICE)
        zsys_notice ("CURVE: %zu client key%s allowed from %s", count,
                     count == 1? "": "s", dir);
    return self;
}

void
agd_auth_destroy (agd_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_auth_t *self = *self_p;
    pthread_mutex_lock (&s_lock);
    zsock_send (agd_actor_sock (s_handler), "sp", "REMOVE", self);
    zsock_wait (agd_actor_sock (s_handler));
    if (--s_domains == 0)
        agd_actor_destroy (&s_handler);
    pthread_mutex_unlock (&s_lock);
    zhashx_destroy (&self->keys);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

const char *
agd_auth_domain (agd_auth_t *self)
{
    return self->domain;
}

int
agd_auth_reload (agd_auth_t *self, char *error, size_t size)
{
    zhashx_t *keys = s_load_keys (self->dir, error, size);
    if (!keys)
        return -1;
    int count = (int) zhashx_size (keys);
    pthread_mutex_lock (&s_lock);
    zsock_send (agd_actor_sock (s_handler), "spp", "KEYS", self, keys);
    zsock_wait (agd_actor_sock (s_handler));
    pthread_mutex_unlock (&s_lock);
    return count;
}

void
agd_auth_set_log_level (agd_auth_t *self, int level)
{
    atomic_store (&self->log_level, level);
}

bool
agd_endpoint_is_local (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "ipc://", 6) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host || (size_t) (colon - host) >= 256)
        return false;
    char name [256];
    size_t len = (size_t) (colon - host);
    memcpy (name, host, len);
    name [len] = 0;
    if (len >= 2 && name [0] == '[' && name [len - 1] == ']') {
        memmove (name, name + 1, len - 2);
        name [len - 2] = 0;
    }
    if (streq (name, "localhost"))
        return true;
    struct in_addr v4;
    if (inet_pton (AF_INET, name, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (inet_pton (AF_INET6, name, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK (&v6)
           || (IN6_IS_ADDR_V4MAPPED (&v6) && v6.s6_addr [12] == 127);
    //  A host name or an interface name: it may reach anywhere
    return false;
}

//  ---------------------------------------------------------------------
//  Selftest

//  Ask the handler as libzmq would; returns the status code ("200"...)
static char *
s_ask (zsock_t *client, const char *domain, const char *mechanism,
       const uint8_t *key)
{
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, "1.0");
    zmsg_addstr (request, "7");
    zmsg_addstr (request, domain);
    zmsg_addstr (request, "192.0.2.1");
    zmsg_addmem (request, NULL, 0);
    zmsg_addstr (request, mechanism);
    if (key)
        zmsg_addmem (request, key, 32);
    zmsg_send (&request, client);
    zmsg_t *reply = zmsg_recv (client);
    assert (reply && zmsg_size (reply) == 6);
    char *version = zmsg_popstr (reply);
    char *sequence = zmsg_popstr (reply);
    assert (streq (version, "1.0") && streq (sequence, "7"));
    char *status = zmsg_popstr (reply);
    zstr_free (&version);
    zstr_free (&sequence);
    zmsg_destroy (&reply);
    return status;
}

void
agd_auth_test (bool verbose)
{
    printf (" * agd_auth: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    assert (agd_endpoint_is_local ("ipc:///tmp/x"));
    assert (agd_endpoint_is_local ("tcp://127.0.0.1:*"));
    assert (agd_endpoint_is_local ("tcp://127.1.2.3:80"));
    assert (agd_endpoint_is_local ("tcp://localhost:12345"));
    assert (agd_endpoint_is_local ("tcp://[::1]:12345"));
    assert (agd_endpoint_is_local ("tcp://::1:12345"));
    assert (!agd_endpoint_is_local ("tcp://0.0.0.0:*"));
    assert (!agd_endpoint_is_local ("tcp://*:12345"));
    assert (!agd_endpoint_is_local ("tcp://[::]:12345"));
    assert (!agd_endpoint_is_local ("tcp://192.0.2.1:1"));
    assert (!agd_endpoint_is_local ("tcp://eth0:1"));
    assert (!agd_endpoint_is_local ("tcp://example.org:1"));
    assert (!agd_endpoint_is_local ("tcp://128.0.0.1:1"));

    //  A directory with one client certificate, and a secret beside it
    char dir [] = "/tmp/agd_auth_test_XXXXXX";
    assert (mkdtemp (dir));
    char public_key [41], secret_key [41], path [300], error [512];
    assert (zmq_curve_keypair (public_key, secret_key) == 0);
    snprintf (path, sizeof path, "%s/alice", dir);
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file, "metadata\ncurve\n    public-key = \"%s\"\n", public_key);
    fclose (file);
    snprintf (path, sizeof path, "%s/alice_secret", dir);
    file = fopen (path, "w");
    assert (file);
    fprintf (file, "rubbish\n");
    fclose (file);
    assert (agd_auth_check_dir (dir, error, sizeof error) == 1);
    assert (agd_auth_check_dir ("/nonexistent", error, sizeof error) == -1);
    assert (strstr (error, "/nonexistent"));

    agd_auth_t *auth = agd_auth_new (dir, AGD_LOG_ERROR, error, sizeof error);
    assert (auth);
    agd_auth_t *other = agd_auth_new (dir, AGD_LOG_ERROR, error,
                                      sizeof error);
    assert (other);
    assert (!streq (agd_auth_domain (auth), agd_auth_domain (other)));
    agd_auth_destroy (&other);

    zsock_t *client = zsock_new_req (">" ZAP_ENDPOINT);
    assert (client);
    uint8_t key [32], stranger [32];
    assert (zmq_z85_decode (key, public_key));
    memset (stranger, 7, sizeof stranger);
    char *status = s_ask (client, agd_auth_domain (auth), "CURVE", key);
    assert (streq (status, "200"));
    zstr_free (&status);
    status = s_ask (client, agd_auth_domain (auth), "CURVE", stranger);
    assert (streq (status, "400"));
    zstr_free (&status);
    status = s_ask (client, agd_auth_domain (auth), "NULL", NULL);
    assert (streq (status, "400"));
    zstr_free (&status);
    status = s_ask (client, "nobody", "CURVE", key);
    assert (streq (status, "400"));
    zstr_free (&status);

    //  A key added to the directory is allowed once it is re-read
    snprintf (path, sizeof path, "%s/bob", dir);
    char bob [41], bob_secret [41];
    assert (zmq_curve_keypair (bob, bob_secret) == 0);
    file = fopen (path, "w");
    assert (file);
    fprintf (file, "curve\n    public-key = \"%s\"\n", bob);
    fclose (file);
    assert (zmq_z85_decode (stranger, bob));
    status = s_ask (client, agd_auth_domain (auth), "CURVE", stranger);
    assert (streq (status, "400"));
    zstr_free (&status);
    assert (agd_auth_reload (auth, error, sizeof error) == 2);
    status = s_ask (client, agd_auth_domain (auth), "CURVE", stranger);
    assert (streq (status, "200"));
    zstr_free (&status);
    //  A bad certificate fails the reload, and the keys stay as they were
    file = fopen (path, "w");
    assert (file);
    fprintf (file, "curve\n    public-key = \"short\"\n");
    fclose (file);
    assert (agd_auth_reload (auth, error, sizeof error) == -1);
    assert (strstr (error, path));
    status = s_ask (client, agd_auth_domain (auth), "CURVE", stranger);
    assert (streq (status, "200"));
    zstr_free (&status);
    zsock_destroy (&client);
    agd_auth_destroy (&auth);
    agd_auth_destroy (&auth);

    unlink (path);
    snprintf (path, sizeof path, "%s/alice", dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/alice_secret", dir);
    unlink (path);
    rmdir (dir);
    //  @end
    printf ("OK\n");
}
