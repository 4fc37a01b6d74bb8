/*  =========================================================================
    agd_registry - the classes a server knows, and their plugins

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Classes come from the embedding program or from plugin shared objects.
//  A plugin that does not load, speaks another ABI or brings a class
//  whose name is taken is refused whole, with a reason that names it.
//  @end

#include "agd.h"
#include <dlfcn.h>

#define MAX_CLASSES 4096

struct _agd_registry_t {
    const ag_class_t **classes;     //  in registration order
    size_t size;                    //  classes held
    size_t capacity;                //  room in classes
    const char **paths;             //  each class's plugin, or NULL
    zlist_t *plugins;               //  dlopen handles
    zlist_t *plugin_paths;          //  their full paths, in load order
};

agd_registry_t *
agd_registry_new (void)
{
    agd_registry_t *self = (agd_registry_t *) zmalloc (sizeof (agd_registry_t));
    self->plugins = zlist_new ();
    self->plugin_paths = zlist_new ();
    zlist_autofree (self->plugin_paths);
    return self;
}

void
agd_registry_destroy (agd_registry_t **self_p)
{
    if (self_p && *self_p) {
        agd_registry_t *self = *self_p;
        void *handle = zlist_first (self->plugins);
        while (handle) {
            dlclose (handle);
            handle = zlist_next (self->plugins);
        }
        zlist_destroy (&self->plugins);
        zlist_destroy (&self->plugin_paths);
        free (self->classes);
        free (self->paths);
        free (self);
        *self_p = NULL;
    }
}

const ag_class_t *
agd_registry_find (agd_registry_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->size; i++)
        if (strlen (self->classes [i]->name) == len
        &&  memcmp (self->classes [i]->name, name, len) == 0)
            return self->classes [i];
    return NULL;
}

int
agd_registry_add (agd_registry_t *self, const ag_class_t *cls,
                  const char *origin, char *reason, size_t size)
{
    char why [256];
    if (ag_class_check (cls, why, sizeof why)) {
        snprintf (reason, size, "%s: %s", origin, why);
        return -1;
    }
    if (agd_registry_find (self, cls->name, strlen (cls->name))) {
        snprintf (reason, size, "%s: class '%s' is already registered",
                  origin, cls->name);
        return -1;
    }
    if (self->size == MAX_CLASSES) {
        snprintf (reason, size, "%s: more than %d classes", origin,
                  MAX_CLASSES);
        return -1;
    }
    if (self->size == self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: 16;
        const ag_class_t **classes = (const ag_class_t **)
            realloc (self->classes, capacity * sizeof (ag_class_t *));
        if (classes)
            self->classes = classes;
        const char **paths = (const char **)
            realloc (self->paths, capacity * sizeof (char *));
        if (paths)
            self->paths = paths;
        if (!classes || !paths) {
            snprintf (reason, size, "%s: out of memory", origin);
            return -1;
        }
        self->capacity = capacity;
    }
    self->paths [self->size] = NULL;
    self->classes [self->size++] = cls;
    return 0;
}

int
agd_registry_load (agd_registry_t *self, const char *path,
                   char *reason, size_t size)
{
    //  A bare name is a plugin in the plugin directory, never one found
    //  through the library search path
    char full [1024];
    if (!strchr (path, '/')) {
        snprintf (full, sizeof full, "%s/%s", AG_PLUGINDIR, path);
        path = full;
    }
    void *handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf (reason, size, "plugin %s: %s", path, dlerror ());
        return -1;
    }
    //  Where it is, for a host process to load the same file
    char *real = realpath (path, NULL);
    if (!real) {
        snprintf (reason, size, "plugin %s: %s", path, strerror (errno));
        dlclose (handle);
        return -1;
    }
    const int *abi = (const int *) dlsym (handle, "ag_plugin_abi");
    const ag_class_t *const *classes =
        (const ag_class_t *const *) dlsym (handle, "ag_plugin_classes");
    if (!abi || !classes) {
        snprintf (reason, size, "plugin %s: not an agent plugin"
                  " (no ag_plugin_abi/ag_plugin_classes; use AG_PLUGIN)",
                  path);
        dlclose (handle);
        return -1;
    }
    if (*abi != AG_ABI_VERSION) {
        snprintf (reason, size, "plugin %s: built for plugin ABI %d, this"
                  " server has ABI %d; rebuild it", path, *abi,
                  AG_ABI_VERSION);
        dlclose (handle);
        return -1;
    }
    //  All or nothing: a plugin half loaded is worse than none
    size_t before = self->size;
    char origin [1100];
    snprintf (origin, sizeof origin, "plugin %s", path);
    for (size_t i = 0; classes [i]; i++)
        if (agd_registry_add (self, classes [i], origin, reason, size)) {
            self->size = before;
            dlclose (handle);
            free (real);
            return -1;
        }
    if (self->size == before) {
        snprintf (reason, size, "plugin %s: lists no classes", path);
        dlclose (handle);
        free (real);
        return -1;
    }
    zlist_append (self->plugins, handle);
    zlist_append (self->plugin_paths, real);
    const char *kept = (const char *) zlist_last (self->plugin_paths);
    free (real);
    for (size_t i = before; i < self->size; i++)
        self->paths [i] = kept;
    return 0;
}

const char *
agd_registry_plugin (agd_registry_t *self, const ag_class_t *cls)
{
    for (size_t i = 0; i < self->size; i++)
        if (self->classes [i] == cls)
            return self->paths [i];
    return NULL;
}

size_t
agd_registry_plugins (agd_registry_t *self)
{
    return zlist_size (self->plugin_paths);
}

const char *
agd_registry_plugin_at (agd_registry_t *self, size_t index)
{
    const char *path = (const char *) zlist_first (self->plugin_paths);
    while (path && index--)
        path = (const char *) zlist_next (self->plugin_paths);
    return path;
}

size_t
agd_registry_size (agd_registry_t *self)
{
    return self->size;
}

const ag_class_t *
agd_registry_at (agd_registry_t *self, size_t index)
{
    return index < self->size? self->classes [index]: NULL;
}

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t len = strlen (s);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, s, len);
}

void
agd_registry_pack_class (msgpack_packer *pk, const ag_class_t *cls)
{
    //  Count the public entries first: msgpack wants sizes up front, and
    //  an inherited entry that the class overrides appears once
    size_t methods = 0, attrs = 0;
    for (const ag_class_t *c = cls; c; c = c->base) {
        for (const ag_method_t *m = c->methods; m && m->name; m++)
            if (ag_class_method (cls, m->name, strlen (m->name)) == m)
                methods++;
        for (const ag_attr_t *a = c->attrs; a && a->name; a++)
            if (ag_class_attr (cls, a->name, strlen (a->name)) == a)
                attrs++;
    }
    msgpack_pack_map (pk, 4);
    s_pack_str (pk, "name");
    s_pack_str (pk, cls->name);
    s_pack_str (pk, "base");
    if (cls->base)
        s_pack_str (pk, cls->base->name);
    else
        msgpack_pack_nil (pk);
    s_pack_str (pk, "methods");
    msgpack_pack_map (pk, methods);
    for (const ag_class_t *c = cls; c; c = c->base)
        for (const ag_method_t *m = c->methods; m && m->name; m++)
            if (ag_class_method (cls, m->name, strlen (m->name)) == m) {
                s_pack_str (pk, m->name);
                s_pack_str (pk, m->mode == AG_ASYNC? "async": "sync");
            }
    s_pack_str (pk, "attrs");
    msgpack_pack_array (pk, attrs);
    for (const ag_class_t *c = cls; c; c = c->base)
        for (const ag_attr_t *a = c->attrs; a && a->name; a++)
            if (ag_class_attr (cls, a->name, strlen (a->name)) == a)
                s_pack_str (pk, a->name);
}

//  ---------------------------------------------------------------------
//  Selftest

static int
s_noop (void *state, const msgpack_object *args, ag_call_t *call)
{
    return 0;
}

static int
s_get (void *state, ag_call_t *call)
{
    return ag_call_return (call, "i", (int64_t) 1);
}

void
agd_registry_test (bool verbose)
{
    printf (" * agd_registry: ");
    if (verbose)
        printf ("\n");
    //  @selftest
    static const ag_method_t base_methods [] = {
        { "observe", s_noop, AG_SYNC }, { "reply", s_noop, AG_ASYNC }, { NULL }
    };
    static const ag_attr_t base_attrs [] = { { "name", s_get }, { NULL } };
    static const ag_class_t base = {
        .name = "Base", .methods = base_methods, .attrs = base_attrs
    };
    static const ag_method_t methods [] = {
        { "reply", s_noop, AG_SYNC }, { "extra", s_noop, AG_ASYNC }, { NULL }
    };
    static const ag_class_t derived = {
        .name = "Derived", .base = &base, .methods = methods
    };
    agd_registry_t *registry = agd_registry_new ();
    char reason [256];
    assert (agd_registry_add (registry, &base, "test", reason,
                              sizeof reason) == 0);
    assert (agd_registry_add (registry, &derived, "test", reason,
                              sizeof reason) == 0);
    assert (agd_registry_add (registry, &base, "test", reason,
                              sizeof reason) == -1);
    assert (strstr (reason, "already registered"));
    assert (agd_registry_find (registry, "Derived", 7) == &derived);
    assert (agd_registry_find (registry, "Deriv", 5) == NULL);
    assert (agd_registry_size (registry) == 2);

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    agd_registry_pack_class (&pk, &derived);
    ag_value_t *face = ag_value_decode (buffer.data, buffer.size);
    assert (face);
    const msgpack_object *m = ag_obj_get (ag_value_object (face), "methods");
    assert (ag_obj_count (m) == 3);
    assert (ag_obj_streq (ag_obj_get (m, "reply"), "sync"));
    assert (ag_obj_streq (ag_obj_get (m, "extra"), "async"));
    assert (ag_obj_streq (ag_obj_get (m, "observe"), "sync"));
    assert (ag_obj_count (ag_obj_get (ag_value_object (face), "attrs")) == 1);
    ag_value_destroy (&face);
    msgpack_sbuffer_destroy (&buffer);

    assert (agd_registry_load (registry, "/nonexistent/plugin.so", reason,
                               sizeof reason) == -1);
    assert (strstr (reason, "/nonexistent/plugin.so"));
    agd_registry_destroy (&registry);
    agd_registry_destroy (&registry);
    //  @end
    printf ("OK\n");
}
