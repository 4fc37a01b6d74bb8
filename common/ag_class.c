/*  =========================================================================
    ag_class - agent class descriptors and the call context

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Lookups walk a class and then its bases, so a class overrides what it
//  inherits by naming it again. A name starting with '_' is private and
//  never found, whatever the tables say.
//  @end

#include "ag_common.h"

const ag_method_t *
ag_class_method (const ag_class_t *self, const char *name, size_t len)
{
    if (!name || len == 0 || name [0] == '_')
        return NULL;
    for (const ag_class_t *cls = self; cls; cls = cls->base)
        for (const ag_method_t *m = cls->methods; m && m->name; m++)
            if (strlen (m->name) == len && memcmp (m->name, name, len) == 0)
                return m;
    return NULL;
}

const ag_attr_t *
ag_class_attr (const ag_class_t *self, const char *name, size_t len)
{
    if (!name || len == 0 || name [0] == '_')
        return NULL;
    for (const ag_class_t *cls = self; cls; cls = cls->base)
        for (const ag_attr_t *a = cls->attrs; a && a->name; a++)
            if (strlen (a->name) == len && memcmp (a->name, name, len) == 0)
                return a;
    return NULL;
}

//  The nearest hook in the class chain
#define S_INHERITED(hook) \
    for (const ag_class_t *cls = self; cls; cls = cls->base) \
        if (cls->hook) \
            return cls->hook; \
    return NULL;

ag_init_fn *
ag_class_init (const ag_class_t *self)
{
    S_INHERITED (init)
}

ag_fini_fn *
ag_class_fini (const ag_class_t *self)
{
    S_INHERITED (fini)
}

ag_save_fn *
ag_class_save (const ag_class_t *self)
{
    S_INHERITED (save)
}

ag_load_fn *
ag_class_load (const ag_class_t *self)
{
    S_INHERITED (load)
}

static bool
s_name_ok (const char *name)
{
    size_t len = name? strlen (name): 0;
    return len > 0 && len <= AGP_MAX_NAME && name [0] != '_';
}

int
ag_class_check (const ag_class_t *self, char *reason, size_t size)
{
    if (!self || !s_name_ok (self->name)) {
        snprintf (reason, size, "class has no valid name");
        return -1;
    }
    if (self->base && self->state_size < self->base->state_size) {
        snprintf (reason, size,
                  "class %s: state_size %zu is smaller than base %s's %zu",
                  self->name, self->state_size, self->base->name,
                  self->base->state_size);
        return -1;
    }
    int depth = 0;
    for (const ag_class_t *cls = self->base; cls; cls = cls->base)
        if (++depth > 16) {
            snprintf (reason, size, "class %s: base chain too long or cyclic",
                      self->name);
            return -1;
        }
    for (const ag_method_t *m = self->methods; m && m->name; m++) {
        if (!s_name_ok (m->name) || !m->fn
        ||  (m->mode != AG_SYNC && m->mode != AG_ASYNC)) {
            snprintf (reason, size, "class %s: method '%s' is invalid"
                      " (empty, private, no function, or bad mode)",
                      self->name, m->name);
            return -1;
        }
        for (const ag_method_t *n = m + 1; n->name; n++)
            if (streq (m->name, n->name)) {
                snprintf (reason, size, "class %s: method '%s' listed twice",
                          self->name, m->name);
                return -1;
            }
    }
    for (const ag_attr_t *a = self->attrs; a && a->name; a++) {
        if (!s_name_ok (a->name) || !a->get) {
            snprintf (reason, size, "class %s: attribute '%s' is invalid",
                      self->name, a->name);
            return -1;
        }
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Call context

void
ag_call_init (ag_call_t *self, msgpack_sbuffer *buffer)
{
    self->buffer = buffer;
    msgpack_sbuffer_clear (buffer);
    msgpack_packer_init (&self->packer, buffer, msgpack_sbuffer_write);
    self->has_result = false;
    self->status = AG_OK;
    self->reason [0] = 0;
    self->deadline = 0;
    self->cancel = NULL;
}

static __thread ag_call_t *s_current;

ag_call_t *
ag_call_enter (ag_call_t *call)
{
    ag_call_t *previous = s_current;
    s_current = call;
    return previous;
}

ag_call_t *
ag_call_current (void)
{
    return s_current;
}

bool
ag_call_cancelled (const ag_call_t *self)
{
    if (!self)
        return false;
    if (self->cancel && atomic_load_explicit (self->cancel,
                                              memory_order_relaxed))
        return true;
    return self->deadline && ag_usecs () >= self->deadline;
}

int64_t
ag_call_deadline (const ag_call_t *self)
{
    if (!self || !self->deadline)
        return -1;
    int64_t left = self->deadline - ag_usecs ();
    return left > 0? left / 1000: 0;
}

int
ag_call_return (ag_call_t *self, const char *picture, ...)
{
    msgpack_sbuffer_clear (self->buffer);
    va_list args;
    va_start (args, picture);
    int rc = ag_packv (&self->packer, picture, args);
    va_end (args);
    if (rc) {
        msgpack_sbuffer_clear (self->buffer);
        self->has_result = false;
        return -1;
    }
    self->has_result = true;
    return 0;
}

int
ag_call_return_object (ag_call_t *self, const msgpack_object *object)
{
    return ag_call_return (self, "o", object);
}

msgpack_packer *
ag_call_packer (ag_call_t *self)
{
    msgpack_sbuffer_clear (self->buffer);
    self->has_result = true;
    return &self->packer;
}

int
ag_call_error (ag_call_t *self, int status, const char *format, ...)
{
    //  Codes from 590 up belong to the client library, never the wire
    if (status < 300 || status >= AG_UNREACHABLE)
        status = AG_AGENT_ERROR;
    self->status = status;
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof self->reason, format, args);
    va_end (args);
    return -1;
}

int
ag_call_finish (ag_call_t *self, int rc)
{
    if (rc != 0 || self->status != AG_OK) {
        if (self->status == AG_OK) {
            self->status = AG_AGENT_ERROR;
            snprintf (self->reason, sizeof self->reason, "method failed");
        }
        msgpack_sbuffer_clear (self->buffer);
        self->has_result = false;
        return self->status;
    }
    if (!self->has_result || self->buffer->size == 0) {
        msgpack_sbuffer_clear (self->buffer);
        msgpack_pack_nil (&self->packer);
    }
    //  Results are checked like anything else that will be decoded on
    //  the other side: a method that packed two objects, or none, is a bug
    //  the caller should hear about rather than a corrupt reply
    const char *reason;
    if (ag_msgpack_check (self->buffer->data, self->buffer->size, &reason)) {
        self->status = AG_AGENT_ERROR;
        snprintf (self->reason, sizeof self->reason,
                  "method packed an invalid result: %s", reason);
        msgpack_sbuffer_clear (self->buffer);
        return self->status;
    }
    return AG_OK;
}

//  ---------------------------------------------------------------------
//  Selftest

static int
s_hello (void *state, const msgpack_object *args, ag_call_t *call)
{
    (void) state;
    return ag_call_return (call, "[s, o]", "hello", args);
}

static int
s_fail (void *state, const msgpack_object *args, ag_call_t *call)
{
    (void) state; (void) args;
    return ag_call_error (call, AG_BAD_ARGS, "need %d args", 2);
}

static int
s_nothing (void *state, const msgpack_object *args, ag_call_t *call)
{
    (void) state; (void) args; (void) call;
    return 0;
}

void
ag_class_test (bool verbose)
{
    printf (" * ag_class: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    static const ag_method_t base_methods [] = {
        { "hello", s_hello, AG_SYNC },
        { "fail", s_fail, AG_ASYNC },
        { NULL }
    };
    static const ag_class_t base = {
        .name = "Base", .state_size = 8, .methods = base_methods
    };
    static const ag_method_t derived_methods [] = {
        { "hello", s_nothing, AG_ASYNC },
        { NULL }
    };
    static const ag_class_t derived = {
        .name = "Derived", .base = &base, .state_size = 16,
        .methods = derived_methods
    };
    char reason [256];
    assert (ag_class_check (&base, reason, sizeof reason) == 0);
    assert (ag_class_check (&derived, reason, sizeof reason) == 0);
    const ag_method_t *m = ag_class_method (&derived, "hello", 5);
    assert (m && m->fn == s_nothing && m->mode == AG_ASYNC);
    m = ag_class_method (&derived, "fail", 4);
    assert (m && m->fn == s_fail);
    assert (ag_class_method (&derived, "_hello", 6) == NULL);
    assert (ag_class_method (&derived, "hell", 4) == NULL);

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    ag_call_t call;
    ag_call_init (&call, &buffer);
    ag_value_t *args = ag_value_new ("i", (int64_t) 7);
    int rc = s_hello (NULL, ag_value_object (args), &call);
    assert (ag_call_finish (&call, rc) == AG_OK);
    ag_value_t *result = ag_value_decode (buffer.data, buffer.size);
    assert (ag_obj_int (ag_obj_at (ag_value_object (result), 1), 0) == 7);
    ag_value_destroy (&result);

    ag_call_init (&call, &buffer);
    rc = s_fail (NULL, ag_value_object (args), &call);
    assert (ag_call_finish (&call, rc) == AG_BAD_ARGS);
    assert (streq (call.reason, "need 2 args"));

    ag_call_init (&call, &buffer);
    rc = s_nothing (NULL, NULL, &call);
    assert (ag_call_finish (&call, rc) == AG_OK);
    assert (buffer.size == 1 && (uint8_t) buffer.data [0] == 0xc0);

    ag_call_init (&call, &buffer);
    assert (ag_call_finish (&call, -1) == AG_AGENT_ERROR);
    assert (streq (call.reason, "method failed"));

    //  Two objects packed is caught, not sent
    ag_call_init (&call, &buffer);
    msgpack_packer *pk = ag_call_packer (&call);
    msgpack_pack_int (pk, 1);
    msgpack_pack_int (pk, 2);
    assert (ag_call_finish (&call, 0) == AG_AGENT_ERROR);
    ag_value_destroy (&args);
    msgpack_sbuffer_destroy (&buffer);
    //  @end

    static const ag_method_t bad_methods [] = {
        { "_secret", s_hello, AG_SYNC }, { NULL }
    };
    static const ag_class_t bad = {
        .name = "Bad", .methods = bad_methods
    };
    assert (ag_class_check (&bad, reason, sizeof reason) == -1);
    static const ag_class_t small = {
        .name = "Small", .base = &base, .state_size = 4
    };
    assert (ag_class_check (&small, reason, sizeof reason) == -1);
    printf ("OK\n");
}
