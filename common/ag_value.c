/*  =========================================================================
    ag_value - msgpack values, pictures, and the checks on hostile input

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  An ag_value_t owns one msgpack encoding and its decoded object. Every
//  byte that came from outside goes through ag_msgpack_check before
//  msgpack-c sees it: msgpack-c allocates an array as soon as it reads a
//  count, so a five-byte body claiming four billion elements must be
//  refused before it is unpacked.
//  @end

#include "ag_common.h"
#include <stdatomic.h>
#include <math.h>

struct _ag_value_t {
    char *data;                     //  msgpack bytes: owned, or inline
    size_t size;                    //  length of data
    bool has_zone;                  //  zone in use (containers only)
    msgpack_zone zone;              //  holds the decoded arrays and maps
    msgpack_object object;          //  decoded root; borrows data
    char inline_data [];            //  data, when allocated with the value
};

#define ZONE_CHUNK 256

//  ---------------------------------------------------------------------
//  The check: one object, well formed, within depth and element limits.

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    size_t elements;
    const char *reason;
} check_t;

static int
s_need (check_t *c, size_t bytes)
{
    if (c->size - c->pos < bytes) {
        c->reason = "truncated msgpack";
        return -1;
    }
    return 0;
}

static uint64_t
s_read_be (const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = (value << 8) | p [i];
    return value;
}

//  Process-wide, set before serving: relaxed atomics, as checks on other
//  threads may read them at any time
static atomic_int s_max_depth = AG_MAX_DEPTH;
static atomic_size_t s_max_elements = AG_MAX_ELEMENTS;

int
ag_msgpack_set_limits (int depth, size_t elements)
{
    if (depth < 0 || depth > AG_MAX_DEPTH || elements > AG_MAX_ELEMENTS_CAP)
        return -1;
    if (depth)
        atomic_store_explicit (&s_max_depth, depth, memory_order_relaxed);
    if (elements)
        atomic_store_explicit (&s_max_elements, elements,
                               memory_order_relaxed);
    return 0;
}

static int
s_check_object (check_t *c, int depth)
{
    if (depth > atomic_load_explicit (&s_max_depth, memory_order_relaxed)) {
        c->reason = "msgpack nested too deep";
        return -1;
    }
    if (++c->elements > atomic_load_explicit (&s_max_elements,
                                              memory_order_relaxed)) {
        c->reason = "msgpack has too many elements";
        return -1;
    }
    if (s_need (c, 1))
        return -1;
    uint8_t tag = c->data [c->pos++];
    uint64_t skip = 0;              //  payload bytes to skip
    uint64_t items = 0;             //  child objects that follow
    int len_bytes = 0;              //  length field size, for str/bin/ext

    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
        return 0;
    if (tag >= 0x80 && tag <= 0x8f)
        items = 2 * (uint64_t) (tag & 0x0f);
    else
    if (tag >= 0x90 && tag <= 0x9f)
        items = tag & 0x0f;
    else
    if (tag >= 0xa0 && tag <= 0xbf)
        skip = tag & 0x1f;
    else
    switch (tag) {
        case 0xc4: case 0xd9: len_bytes = 1; break;
        case 0xc5: case 0xda: len_bytes = 2; break;
        case 0xc6: case 0xdb: len_bytes = 4; break;
        case 0xc7: len_bytes = 1; skip = 1; break;
        case 0xc8: len_bytes = 2; skip = 1; break;
        case 0xc9: len_bytes = 4; skip = 1; break;
        case 0xca: skip = 4; break;
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: case 0xdd: case 0xde: case 0xdf: {
            int bytes = (tag == 0xdc || tag == 0xde)? 2: 4;
            if (s_need (c, bytes))
                return -1;
            items = s_read_be (c->data + c->pos, bytes);
            c->pos += bytes;
            if (tag >= 0xde)
                items *= 2;
            break;
        }
        default:
            c->reason = "invalid msgpack type byte";
            return -1;
    }
    if (len_bytes) {
        if (s_need (c, len_bytes))
            return -1;
        skip += s_read_be (c->data + c->pos, len_bytes);
        c->pos += len_bytes;
    }
    if (skip) {
        if (skip > c->size - c->pos) {
            c->reason = "truncated msgpack";
            return -1;
        }
        c->pos += skip;
    }
    //  Each child takes at least one byte: a count larger than what is
    //  left is a lie, and is refused before anything is allocated.
    if (items > c->size - c->pos) {
        c->reason = "msgpack count larger than the message";
        return -1;
    }
    for (uint64_t i = 0; i < items; i++)
        if (s_check_object (c, depth + 1))
            return -1;
    return 0;
}

int
ag_msgpack_check (const void *data, size_t size, const char **reason)
{
    check_t c = { .data = data, .size = size };
    if (size == 0) {
        c.reason = "empty msgpack";
        goto fail;
    }
    if (s_check_object (&c, 1))
        goto fail;
    if (c.pos != size) {
        c.reason = "trailing bytes after msgpack object";
        goto fail;
    }
    return 0;
fail:
    if (reason)
        *reason = c.reason;
    return -1;
}

int
ag_msgpack_unpack (const void *data, size_t size, msgpack_zone *zone,
                   msgpack_object *object, const char **reason)
{
    if (ag_msgpack_check (data, size, reason))
        return -1;
    size_t offset = 0;
    msgpack_unpack_return rc =
        msgpack_unpack ((const char *) data, size, &offset, zone, object);
    if (rc != MSGPACK_UNPACK_SUCCESS || offset != size) {
        if (reason)
            *reason = "msgpack could not be decoded";
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Pictures

//  Count the items at this level of a picture, up to the matching close
//  bracket. Returns -1 if the brackets do not balance.
static int
s_picture_items (const char *p, char close)
{
    int items = 0;
    int depth = 0;
    for (; *p; p++) {
        char ch = *p;
        if (ch == ' ' || ch == ',' || ch == ':')
            continue;
        if (depth == 0 && ch == close)
            return items;
        if (ch == '[' || ch == '{') {
            if (depth == 0)
                items++;
            depth++;
        }
        else
        if (ch == ']' || ch == '}') {
            if (--depth < 0)
                return -1;
        }
        else
        if (depth == 0)
            items++;
    }
    return -1;
}

static int
s_pack_object (msgpack_packer *pk, const msgpack_object *o)
{
    return msgpack_pack_object (pk, *o);
}

int
ag_packv (msgpack_packer *pk, const char *picture, va_list args)
{
    //  Brackets are checked before anything is packed
    const char *p = picture;
    while (*p) {
        char ch = *p++;
        if (ch == ' ' || ch == ',' || ch == ':')
            continue;
        switch (ch) {
            case 'n': msgpack_pack_nil (pk); break;
            case 'b':
                if (va_arg (args, int))
                    msgpack_pack_true (pk);
                else
                    msgpack_pack_false (pk);
                break;
            case 'i': msgpack_pack_int64 (pk, va_arg (args, int64_t)); break;
            case 'u': msgpack_pack_uint64 (pk, va_arg (args, uint64_t)); break;
            case 'd': msgpack_pack_double (pk, va_arg (args, double)); break;
            case 's': {
                const char *s = va_arg (args, const char *);
                if (s) {
                    size_t len = strlen (s);
                    msgpack_pack_str (pk, len);
                    msgpack_pack_str_body (pk, s, len);
                }
                else
                    msgpack_pack_nil (pk);
                break;
            }
            case 'S': {
                const char *s = va_arg (args, const char *);
                size_t len = va_arg (args, size_t);
                msgpack_pack_str (pk, len);
                msgpack_pack_str_body (pk, s, len);
                break;
            }
            case 'B': {
                const void *b = va_arg (args, const void *);
                size_t len = va_arg (args, size_t);
                msgpack_pack_bin (pk, len);
                msgpack_pack_bin_body (pk, b, len);
                break;
            }
            case 'o': {
                const msgpack_object *o = va_arg (args, const msgpack_object *);
                if (o)
                    s_pack_object (pk, o);
                else
                    msgpack_pack_nil (pk);
                break;
            }
            case 'v': {
                const ag_value_t *v = va_arg (args, const ag_value_t *);
                //  The encoding is already msgpack: append it as it is
                if (v)
                    msgpack_pack_str_body (pk, v->data, v->size);
                else
                    msgpack_pack_nil (pk);
                break;
            }
            case '[': {
                int items = s_picture_items (p, ']');
                if (items < 0)
                    return -1;
                msgpack_pack_array (pk, items);
                break;
            }
            case '{': {
                int items = s_picture_items (p, '}');
                if (items < 0 || items % 2)
                    return -1;
                msgpack_pack_map (pk, items / 2);
                break;
            }
            case ']': case '}':
                break;
            default:
                return -1;
        }
    }
    return 0;
}

int
ag_pack (msgpack_packer *pk, const char *picture, ...)
{
    va_list args;
    va_start (args, picture);
    int rc = ag_packv (pk, picture, args);
    va_end (args);
    return rc;
}

//  A picture must also hold exactly one top-level item.
static int
s_picture_valid (const char *picture)
{
    size_t len = strlen (picture);
    char *wrapped = (char *) malloc (len + 2);
    if (!wrapped)
        return -1;
    memcpy (wrapped, picture, len);
    wrapped [len] = ']';
    wrapped [len + 1] = 0;
    int items = s_picture_items (wrapped, ']');
    free (wrapped);
    return items == 1? 0: -1;
}

//  ---------------------------------------------------------------------
//  Values

//  Decode data into self: checked first, never trusted. A scalar needs
//  no zone, and gets none (most results are scalars or strings).
static int
s_value_unpack (ag_value_t *self)
{
    if (ag_msgpack_check (self->data, self->size, NULL))
        return -1;
    uint8_t tag = (uint8_t) self->data [0];
    bool container = (tag >= 0x80 && tag <= 0x9f) || (tag >= 0xdc && tag <= 0xdf);
    if (container) {
        if (!msgpack_zone_init (&self->zone, ZONE_CHUNK))
            return -1;
        self->has_zone = true;
    }
    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack (self->data, self->size,
        &offset, &self->zone, &self->object);
    return rc == MSGPACK_UNPACK_SUCCESS && offset == self->size? 0: -1;
}

static void
s_value_free (ag_value_t *self)
{
    if (self->has_zone)
        msgpack_zone_destroy (&self->zone);
    if (self->data != self->inline_data)
        free (self->data);
    free (self);
}

static ag_value_t *
s_value_adopt (char *data, size_t size)
{
    ag_value_t *self = (ag_value_t *) calloc (1, sizeof (ag_value_t));
    if (!self) {
        free (data);
        return NULL;
    }
    self->data = data;
    self->size = size;
    if (s_value_unpack (self)) {
        s_value_free (self);
        return NULL;
    }
    return self;
}

ag_value_t *
ag_value_newv (const char *picture, va_list args)
{
    if (!picture || s_picture_valid (picture))
        return NULL;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    if (ag_packv (&pk, picture, args)) {
        msgpack_sbuffer_destroy (&buffer);
        return NULL;
    }
    size_t size = buffer.size;
    return s_value_adopt (msgpack_sbuffer_release (&buffer), size);
}

ag_value_t *
ag_value_new (const char *picture, ...)
{
    va_list args;
    va_start (args, picture);
    ag_value_t *self = ag_value_newv (picture, args);
    va_end (args);
    return self;
}

ag_value_t *
ag_value_decode_owned (void *data, size_t size)
{
    if (size == 0) {
        free (data);
        return ag_value_new ("n");
    }
    return s_value_adopt ((char *) data, size);
}

ag_value_t *
ag_value_decode (const void *data, size_t size)
{
    if (size == 0)
        return ag_value_new ("n");
    //  One allocation holds the value and a copy of its bytes
    ag_value_t *self = (ag_value_t *) calloc (1, sizeof (ag_value_t) + size);
    if (!self)
        return NULL;
    self->data = self->inline_data;
    self->size = size;
    memcpy (self->data, data, size);
    if (s_value_unpack (self)) {
        s_value_free (self);
        return NULL;
    }
    return self;
}

ag_value_t *
ag_value_from_object (const msgpack_object *object)
{
    return ag_value_new ("o", object);
}

ag_value_t *
ag_value_dup (const ag_value_t *self)
{
    return self? ag_value_decode (self->data, self->size): NULL;
}

void
ag_value_destroy (ag_value_t **self_p)
{
    if (self_p && *self_p) {
        s_value_free (*self_p);
        *self_p = NULL;
    }
}

const msgpack_object *
ag_value_object (const ag_value_t *self)
{
    return self? &self->object: NULL;
}

const void *
ag_value_data (const ag_value_t *self)
{
    return self? self->data: NULL;
}

size_t
ag_value_size (const ag_value_t *self)
{
    return self? self->size: 0;
}

//  ---------------------------------------------------------------------
//  Printing

static void
s_print_string (const char *s, size_t len, FILE *file)
{
    fputc ('"', file);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s [i];
        if (ch == '"' || ch == '\\')
            fprintf (file, "\\%c", ch);
        else
        if (ch == '\n')
            fputs ("\\n", file);
        else
        if (ch < 0x20)
            fprintf (file, "\\u%04x", ch);
        else
            fputc (ch, file);
    }
    fputc ('"', file);
}

void
ag_obj_fprint (const msgpack_object *o, FILE *file)
{
    switch (o->type) {
        case MSGPACK_OBJECT_NIL: fputs ("null", file); break;
        case MSGPACK_OBJECT_BOOLEAN:
            fputs (o->via.boolean? "true": "false", file);
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            fprintf (file, "%" PRIu64, o->via.u64);
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            fprintf (file, "%" PRId64, o->via.i64);
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            fprintf (file, "%.17g", o->via.f64);
            break;
        case MSGPACK_OBJECT_STR:
            s_print_string (o->via.str.ptr, o->via.str.size, file);
            break;
        case MSGPACK_OBJECT_BIN:
            fprintf (file, "<%" PRIu32 " bytes>", o->via.bin.size);
            break;
        case MSGPACK_OBJECT_EXT:
            fprintf (file, "<ext %d, %" PRIu32 " bytes>",
                     o->via.ext.type, o->via.ext.size);
            break;
        case MSGPACK_OBJECT_ARRAY:
            fputc ('[', file);
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (i)
                    fputs (", ", file);
                ag_obj_fprint (&o->via.array.ptr [i], file);
            }
            fputc (']', file);
            break;
        case MSGPACK_OBJECT_MAP:
            fputc ('{', file);
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                if (i)
                    fputs (", ", file);
                ag_obj_fprint (&o->via.map.ptr [i].key, file);
                fputs (": ", file);
                ag_obj_fprint (&o->via.map.ptr [i].val, file);
            }
            fputc ('}', file);
            break;
    }
}

void
ag_value_print (const ag_value_t *self, FILE *file)
{
    if (self)
        ag_obj_fprint (&self->object, file);
    else
        fputs ("(none)", file);
}

char *
ag_value_str (const ag_value_t *self)
{
    char *text = NULL;
    size_t size = 0;
    FILE *file = open_memstream (&text, &size);
    if (!file)
        return NULL;
    ag_value_print (self, file);
    fclose (file);
    return text;
}

//  ---------------------------------------------------------------------
//  Reading objects

const msgpack_object *
ag_obj_get (const msgpack_object *self, const char *key)
{
    if (!self || self->type != MSGPACK_OBJECT_MAP || !key)
        return NULL;
    size_t len = strlen (key);
    for (uint32_t i = 0; i < self->via.map.size; i++) {
        const msgpack_object *k = &self->via.map.ptr [i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len
        &&  (len == 0 || memcmp (k->via.str.ptr, key, len) == 0))
            return &self->via.map.ptr [i].val;
    }
    return NULL;
}

const msgpack_object *
ag_obj_at (const msgpack_object *self, size_t index)
{
    if (!self || self->type != MSGPACK_OBJECT_ARRAY
    ||  index >= self->via.array.size)
        return NULL;
    return &self->via.array.ptr [index];
}

size_t
ag_obj_count (const msgpack_object *self)
{
    if (self && self->type == MSGPACK_OBJECT_ARRAY)
        return self->via.array.size;
    if (self && self->type == MSGPACK_OBJECT_MAP)
        return self->via.map.size;
    return 0;
}

bool
ag_obj_is_str (const msgpack_object *self)
{
    return self && self->type == MSGPACK_OBJECT_STR;
}

bool
ag_obj_streq (const msgpack_object *self, const char *text)
{
    if (!ag_obj_is_str (self) || !text)
        return false;
    //  msgpack-c leaves ptr NULL for an empty string: no memcmp then
    size_t len = strlen (text);
    return self->via.str.size == len
        && (len == 0 || memcmp (self->via.str.ptr, text, len) == 0);
}

char *
ag_obj_strdup (const msgpack_object *self)
{
    if (!self)
        return NULL;
    const char *ptr;
    size_t len;
    if (self->type == MSGPACK_OBJECT_STR) {
        ptr = self->via.str.ptr;
        len = self->via.str.size;
    }
    else
    if (self->type == MSGPACK_OBJECT_BIN) {
        ptr = self->via.bin.ptr;
        len = self->via.bin.size;
    }
    else
        return NULL;
    char *copy = (char *) malloc (len + 1);
    if (copy) {
        if (len)                    //  ptr may be NULL when len is 0
            memcpy (copy, ptr, len);
        copy [len] = 0;
    }
    return copy;
}

int64_t
ag_obj_int (const msgpack_object *self, int64_t fallback)
{
    if (!self)
        return fallback;
    if (self->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return self->via.u64 > INT64_MAX? fallback: (int64_t) self->via.u64;
    if (self->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return self->via.i64;
    if ((self->type == MSGPACK_OBJECT_FLOAT64
    ||   self->type == MSGPACK_OBJECT_FLOAT32)
    &&  self->via.f64 == floor (self->via.f64)
    &&  fabs (self->via.f64) < 9.2e18)
        return (int64_t) self->via.f64;
    return fallback;
}

double
ag_obj_double (const msgpack_object *self, double fallback)
{
    if (!self)
        return fallback;
    if (self->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double) self->via.u64;
    if (self->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double) self->via.i64;
    if (self->type == MSGPACK_OBJECT_FLOAT64
    ||  self->type == MSGPACK_OBJECT_FLOAT32)
        return self->via.f64;
    return fallback;
}

bool
ag_obj_bool (const msgpack_object *self, bool fallback)
{
    if (self && self->type == MSGPACK_OBJECT_BOOLEAN)
        return self->via.boolean;
    return fallback;
}

int64_t
ag_usecs (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  ---------------------------------------------------------------------
//  Selftest

void
ag_value_test (bool verbose)
{
    printf (" * ag_value: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    //  An empty fixstr decodes with a NULL pointer: the readers cope
    ag_value_t *empty = ag_value_decode ("\x81\xa0\xa0", 3);
    assert (empty);
    const msgpack_object *pair = ag_value_object (empty);
    char *nothing = ag_obj_strdup (ag_obj_get (pair, ""));
    assert (nothing && streq (nothing, ""));
    free (nothing);
    assert (ag_obj_streq (ag_obj_get (pair, ""), ""));
    assert (!ag_obj_streq (ag_obj_get (pair, ""), "x"));
    ag_value_destroy (&empty);

    ag_value_t *value = ag_value_new ("{s:s, s:[i, d, b], s:n, s:B}",
        "name", "W0", "list", (int64_t) -5, 2.5, 1, "none",
        "blob", "\x01\x02", (size_t) 2);
    assert (value);
    const msgpack_object *root = ag_value_object (value);
    assert (ag_obj_count (root) == 4);
    assert (ag_obj_streq (ag_obj_get (root, "name"), "W0"));
    const msgpack_object *list = ag_obj_get (root, "list");
    assert (ag_obj_count (list) == 3);
    assert (ag_obj_int (ag_obj_at (list, 0), 0) == -5);
    assert (ag_obj_double (ag_obj_at (list, 1), 0) == 2.5);
    assert (ag_obj_bool (ag_obj_at (list, 2), false));
    assert (ag_obj_at (list, 3) == NULL);
    assert (ag_obj_get (root, "missing") == NULL);
    assert (ag_obj_get (ag_obj_get (root, "missing"), "x") == NULL);
    char *name = ag_obj_strdup (ag_obj_get (root, "name"));
    assert (streq (name, "W0"));
    free (name);
    char *text = ag_value_str (value);
    assert (streq (text,
        "{\"name\": \"W0\", \"list\": [-5, 2.5, true], \"none\": null,"
        " \"blob\": <2 bytes>}"));
    free (text);

    //  Values nest inside pictures, and copy deeply
    ag_value_t *outer = ag_value_new ("[v, o, s]", value, root, NULL);
    assert (outer);
    ag_value_t *copy = ag_value_dup (outer);
    ag_value_destroy (&outer);
    assert (ag_obj_streq (ag_obj_get (ag_obj_at (ag_value_object (copy), 1),
                                      "name"), "W0"));
    assert (ag_value_object (copy)->via.array.ptr [2].type
            == MSGPACK_OBJECT_NIL);
    ag_value_destroy (&copy);
    ag_value_destroy (&value);
    ag_value_destroy (&value);      //  twice is safe
    //  @end

    //  Bad pictures are refused
    assert (ag_value_new ("[i", (int64_t) 1) == NULL);
    assert (ag_value_new ("{s}", "k") == NULL);
    assert (ag_value_new ("i i", (int64_t) 1, (int64_t) 2) == NULL);
    assert (ag_value_new ("x") == NULL);
    assert (ag_value_new ("") == NULL);

    //  Hostile bytes: every prefix of a good encoding is refused, and
    //  lying counts are refused before any allocation
    value = ag_value_new ("{s:[s,i,{s:d}]}", "k", "abc", (int64_t) 70000,
                          "f", 1.5);
    const uint8_t *data = (const uint8_t *) ag_value_data (value);
    size_t size = ag_value_size (value);
    for (size_t cut = 1; cut < size; cut++)
        assert (ag_value_decode (data, cut) == NULL);
    ag_value_t *again = ag_value_decode (data, size);
    assert (again);
    ag_value_destroy (&again);
    ag_value_destroy (&value);

    const uint8_t huge_array [] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
    assert (ag_value_decode (huge_array, sizeof huge_array) == NULL);
    const uint8_t huge_str [] = { 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a' };
    assert (ag_value_decode (huge_str, sizeof huge_str) == NULL);
    const uint8_t bad_tag [] = { 0xc1 };
    assert (ag_value_decode (bad_tag, 1) == NULL);
    const uint8_t trailing [] = { 0x01, 0x02 };
    assert (ag_value_decode (trailing, 2) == NULL);
    uint8_t deep [64];
    memset (deep, 0x91, sizeof deep);   //  [[[[...
    deep [63] = 0x01;
    const char *reason = NULL;
    assert (ag_msgpack_check (deep, sizeof deep, &reason) == -1);
    assert (streq (reason, "msgpack nested too deep"));
    assert (ag_msgpack_check (deep + 64 - 20, 20, NULL) == 0);

    //  Random garbage never crashes
    uint8_t noise [64];
    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + (size_t) (random () % sizeof noise);
        for (size_t i = 0; i < len; i++)
            noise [i] = (uint8_t) random ();
        ag_value_t *maybe = ag_value_decode (noise, len);
        ag_value_destroy (&maybe);
    }
    printf ("OK\n");
}
