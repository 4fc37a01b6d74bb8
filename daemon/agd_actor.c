/*  =========================================================================
    agd_actor - a thread with a pipe, that is gone when it is destroyed

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  czmq's zactor, with one difference that matters at exit: destroying
//  it returns only once the thread has closed its end of the pipe and
//  ended (it is joined). A zactor's thread closes its pipe after it has
//  signalled that it is done, so a program that destroys its actors and
//  returns from main can find a socket still open when czmq's exit
//  handler runs, and that handler then sleeps 200 ms "to let actors
//  close their sockets": every stop of agentd, and every child server's,
//  took 200 ms in most runs. The handler runs as a zactor's does: it
//  signals once it has started, and returns on "$TERM".
//  @end

#include "agd.h"

struct _agd_actor_t {
    zsock_t *pipe;                  //  our end
    zsock_t *theirs;                //  the thread's end, closed by it
    zactor_fn *handler;
    void *args;
    pthread_t thread;
};

static void *
s_run (void *arg)
{
    agd_actor_t *self = (agd_actor_t *) arg;
    self->handler (self->theirs, self->args);
    //  As zactor: a signal that the handler is done, then its end goes
    zsock_signal (self->theirs, 0);
    zsock_destroy (&self->theirs);
    return NULL;
}

agd_actor_t *
agd_actor_new (zactor_fn *handler, void *args)
{
    agd_actor_t *self = (agd_actor_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->handler = handler;
    self->args = args;
    self->pipe = zsys_create_pipe (&self->theirs);
    if (!self->pipe) {
        free (self);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_run, self)) {
        zsock_destroy (&self->theirs);
        zsock_destroy (&self->pipe);
        free (self);
        return NULL;
    }
    //  The handler's first signal: it has started
    zsock_wait (self->pipe);
    return self;
}

void
agd_actor_destroy (agd_actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agd_actor_t *self = *self_p;
    *self_p = NULL;
    //  Tell it to end, wait for the end of its handler, then for the
    //  thread; only then is its end of the pipe closed for sure
    //  A handler that has returned already (its context terminated)
    //  reads nothing: the send must not wait for it
    zsock_set_sndtimeo (self->pipe, 0);
    if (zstr_send (self->pipe, "$TERM") == 0)
        zsock_wait (self->pipe);
    pthread_join (self->thread, NULL);
    zsock_destroy (&self->pipe);
    free (self);
}

zsock_t *
agd_actor_sock (agd_actor_t *self)
{
    return self->pipe;
}
