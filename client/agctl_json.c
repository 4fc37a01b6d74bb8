/*  =========================================================================
    agctl_json - msgpack values to JSON and back, for agentctl

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Replies arrive as msgpack; people and scripts read JSON; arguments are
//  typed as JSON and sent as msgpack. msgpack has types JSON lacks (bin,
//  ext, unsigned integers to 2^64-1, non-string map keys, strings that
//  are not UTF-8), so the mapping is spelled out in agctl.h and in
//  agentctl(1). bin and ext map to one-key objects that map back, so a
//  binary result can be given back as an argument.
//
//  Jansson writes a real with 17 significant digits unless told fewer,
//  which turns 0.1 into 0.10000000000000001. agctl_json_print asks for
//  the fewest digits with which every real of the document reads back
//  exactly.
//  @end

#include "agctl.h"
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  UTF-8

//  Length of the well-formed UTF-8 sequence at data (RFC 3629: no
//  overlong forms, no surrogates, nothing above U+10FFFF), or 0
static size_t
s_utf8_sequence (const uint8_t *data, size_t size)
{
    uint8_t c = data [0];
    if (c < 0x80)
        return 1;
    size_t length;
    uint8_t low = 0x80, high = 0xBF;    //  bounds of the second octet
    if (c >= 0xC2 && c <= 0xDF)
        length = 2;
    else
    if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0)
            low = 0xA0;
        if (c == 0xED)
            high = 0x9F;
    }
    else
    if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0)
            low = 0x90;
        if (c == 0xF4)
            high = 0x8F;
    }
    else
        return 0;
    if (size < length || data [1] < low || data [1] > high)
        return 0;
    for (size_t i = 2; i < length; i++)
        if (data [i] < 0x80 || data [i] > 0xBF)
            return 0;
    return length;
}

char *
agctl_utf8_clean (const char *data, size_t size, bool controls,
                  size_t *length)
{
    const uint8_t *in = (const uint8_t *) data;
    //  Each octet grows to four characters at most
    char *out = (char *) malloc (size * 4 + 1);
    if (!out)
        return NULL;
    size_t used = 0;
    size_t pos = 0;
    while (pos < size) {
        size_t sequence = s_utf8_sequence (in + pos, size - pos);
        bool control = in [pos] < 0x20 || in [pos] == 0x7F;
        if (sequence == 0 || (controls && control)) {
            used += (size_t) sprintf (out + used, "\\x%02x", in [pos]);
            pos++;
        }
        else {
            memcpy (out + used, in + pos, sequence);
            used += sequence;
            pos += sequence;
        }
    }
    out [used] = 0;
    if (length)
        *length = used;
    return out;
}

//  ---------------------------------------------------------------------
//  msgpack to JSON

static json_t *
s_base64 (const void *data, size_t size)
{
    size_t room = sodium_base64_ENCODED_LEN (size,
                                             sodium_base64_VARIANT_ORIGINAL);
    char *text = (char *) malloc (room);
    if (!text)
        return NULL;
    sodium_bin2base64 (text, room, (const unsigned char *) data, size,
                       sodium_base64_VARIANT_ORIGINAL);
    json_t *json = json_string (text);
    free (text);
    return json;
}

static json_t *
s_string (const char *data, size_t size)
{
    size_t length;
    char *text = agctl_utf8_clean (data, size, false, &length);
    if (!text)
        return NULL;
    json_t *json = json_stringn (text, length);
    free (text);
    return json;
}

//  A float32 as the double of its shortest decimal form, so that 0.1f
//  shows as 0.1 and not as 0.100000001490116
static double
s_float32 (float real)
{
    char text [40];
    for (int digits = 1; digits < 9; digits++) {
        snprintf (text, sizeof text, "%.*g", digits, (double) real);
        if (strtof (text, NULL) == real)
            return strtod (text, NULL);
    }
    return (double) real;
}

//  A map key: a string as it is, anything else as its JSON text
static int
s_object_set (json_t *object, const msgpack_object *key, json_t *value)
{
    if (!value)
        return -1;
    json_t *name = agctl_json_from_object (key);
    if (!name) {
        json_decref (value);
        return -1;
    }
    int rc;
    if (json_is_string (name))
        rc = json_object_setn_new (object, json_string_value (name),
                                   json_string_length (name), value);
    else {
        char *text = agctl_json_text (name);
        rc = text? json_object_set_new (object, text, value): -1;
        if (!text)
            json_decref (value);
        free (text);
    }
    json_decref (name);
    return rc;
}

json_t *
agctl_json_from_object (const msgpack_object *object)
{
    switch (object->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null ();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean (object->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (object->via.u64 > INT64_MAX) {
                //  Beyond json_int_t: the digits, as a string
                char digits [24];
                snprintf (digits, sizeof digits, "%" PRIu64, object->via.u64);
                return json_string (digits);
            }
            return json_integer ((json_int_t) object->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer ((json_int_t) object->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
            if (!isfinite (object->via.f64))
                return json_null ();
            return json_real (s_float32 ((float) object->via.f64));
        case MSGPACK_OBJECT_FLOAT64:
            if (!isfinite (object->via.f64))
                return json_null ();
            return json_real (object->via.f64);
        case MSGPACK_OBJECT_STR:
            return s_string (object->via.str.ptr, object->via.str.size);
        case MSGPACK_OBJECT_BIN: {
            json_t *data = s_base64 (object->via.bin.ptr, object->via.bin.size);
            return data? json_pack ("{s:o}", "$bin", data): NULL;
        }
        case MSGPACK_OBJECT_EXT: {
            json_t *data = s_base64 (object->via.ext.ptr, object->via.ext.size);
            return data? json_pack ("{s:[i,o]}", "$ext",
                                    (int) object->via.ext.type, data): NULL;
        }
        case MSGPACK_OBJECT_ARRAY: {
            json_t *array = json_array ();
            for (uint32_t i = 0; array && i < object->via.array.size; i++)
                if (json_array_append_new (array, agctl_json_from_object (
                                           &object->via.array.ptr [i]))) {
                    json_decref (array);
                    array = NULL;
                }
            return array;
        }
        case MSGPACK_OBJECT_MAP: {
            json_t *map = json_object ();
            for (uint32_t i = 0; map && i < object->via.map.size; i++) {
                const msgpack_object_kv *kv = &object->via.map.ptr [i];
                if (s_object_set (map, &kv->key,
                                  agctl_json_from_object (&kv->val))) {
                    json_decref (map);
                    map = NULL;
                }
            }
            return map;
        }
    }
    return json_null ();
}

//  ---------------------------------------------------------------------
//  JSON to msgpack

typedef struct {
    msgpack_packer packer;          //  writes into buffer
    msgpack_sbuffer buffer;         //  the msgpack made so far
    size_t elements;                //  objects packed
    char *reason;                   //  where to say what is wrong
    size_t size;                    //  its size
} pack_t;

static int
s_pack_fail (pack_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_pack_fail (pack_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, self->size, format, args);
    va_end (args);
    return -1;
}

//  Decode base64 text; returns a malloc'ed buffer, or NULL
static unsigned char *
s_unbase64 (const char *text, size_t length, size_t *size)
{
    unsigned char *data = (unsigned char *) malloc (length / 4 * 3 + 3);
    if (!data)
        return NULL;
    if (sodium_base642bin (data, length / 4 * 3 + 3, text, length, NULL,
                           size, NULL, sodium_base64_VARIANT_ORIGINAL)) {
        free (data);
        return NULL;
    }
    return data;
}

//  {"$bin": "base64"} and {"$ext": [type, "base64"]}: returns 1 if the
//  object was one of these and was packed, 0 if it is an ordinary
//  object, -1 if it is one of these but malformed
static int
s_pack_special (pack_t *self, const json_t *json)
{
    if (json_object_size (json) != 1)
        return 0;
    const json_t *bin = json_object_get (json, "$bin");
    const json_t *ext = json_object_get (json, "$ext");
    if (!bin && !ext)
        return 0;
    const json_t *text = bin? bin: json_array_get (ext, 1);
    if (ext && (json_array_size (ext) != 2
            ||  !json_is_integer (json_array_get (ext, 0))))
        return s_pack_fail (self, "$ext needs [type, \"base64\"]");
    if (!json_is_string (text))
        return s_pack_fail (self, "%s needs a base64 string",
                            bin? "$bin": "$ext");
    size_t size;
    unsigned char *data = s_unbase64 (json_string_value (text),
                                      json_string_length (text), &size);
    if (!data)
        return s_pack_fail (self, "%s: \"%.40s\" is not base64",
                            bin? "$bin": "$ext", json_string_value (text));
    if (bin) {
        msgpack_pack_bin (&self->packer, size);
        msgpack_pack_bin_body (&self->packer, data, size);
    }
    else {
        json_int_t type = json_integer_value (json_array_get (ext, 0));
        if (type < -128 || type > 127) {
            free (data);
            return s_pack_fail (self, "$ext type %lld is not -128..127",
                                (long long) type);
        }
        msgpack_pack_ext (&self->packer, size, (int8_t) type);
        msgpack_pack_ext_body (&self->packer, data, size);
    }
    free (data);
    return 1;
}

static int
s_pack (pack_t *self, const json_t *json, int depth)
{
    if (depth > AGCTL_MAX_DEPTH)
        return s_pack_fail (self, "nested deeper than %d levels",
                            AGCTL_MAX_DEPTH);
    if (++self->elements > AGCTL_MAX_ELEMENTS)
        return s_pack_fail (self, "more than %d elements", AGCTL_MAX_ELEMENTS);
    msgpack_packer *pk = &self->packer;
    switch (json_typeof (json)) {
        case JSON_NULL:
            return msgpack_pack_nil (pk);
        case JSON_TRUE:
            return msgpack_pack_true (pk);
        case JSON_FALSE:
            return msgpack_pack_false (pk);
        case JSON_INTEGER:
            return msgpack_pack_int64 (pk, json_integer_value (json));
        case JSON_REAL:
            return msgpack_pack_double (pk, json_real_value (json));
        case JSON_STRING: {
            size_t length = json_string_length (json);
            msgpack_pack_str (pk, length);
            return msgpack_pack_str_body (pk, json_string_value (json), length);
        }
        case JSON_ARRAY: {
            size_t count = json_array_size (json);
            msgpack_pack_array (pk, count);
            for (size_t i = 0; i < count; i++)
                if (s_pack (self, json_array_get (json, i), depth + 1))
                    return -1;
            return 0;
        }
        case JSON_OBJECT: {
            int special = s_pack_special (self, json);
            if (special)
                return special < 0? -1: 0;
            msgpack_pack_map (pk, json_object_size (json));
            const char *key;
            size_t length;
            json_t *value;
            json_object_keylen_foreach ((json_t *) json, key, length, value) {
                if (++self->elements > AGCTL_MAX_ELEMENTS)
                    return s_pack_fail (self, "more than %d elements",
                                        AGCTL_MAX_ELEMENTS);
                msgpack_pack_str (pk, length);
                msgpack_pack_str_body (pk, key, length);
                if (s_pack (self, value, depth + 1))
                    return -1;
            }
            return 0;
        }
    }
    return s_pack_fail (self, "unknown JSON type");
}

ag_value_t *
agctl_json_to_value (const json_t *json, char *reason, size_t size)
{
    pack_t pack = { .reason = reason, .size = size };
    msgpack_sbuffer_init (&pack.buffer);
    msgpack_packer_init (&pack.packer, &pack.buffer, msgpack_sbuffer_write);
    ag_value_t *value = NULL;
    if (s_pack (&pack, json, 1) == 0) {
        value = ag_value_decode (pack.buffer.data, pack.buffer.size);
        if (!value)
            snprintf (reason, size, "cannot convert it to msgpack");
    }
    msgpack_sbuffer_destroy (&pack.buffer);
    return value;
}

//  ---------------------------------------------------------------------
//  Writing JSON

//  Fewest significant digits with which a real reads back exactly
static int
s_digits (double real)
{
    char text [40];
    for (int digits = 1; digits < 17; digits++) {
        snprintf (text, sizeof text, "%.*g", digits, real);
        if (strtod (text, NULL) == real)
            return digits;
    }
    return 17;
}

static int
s_max (int a, int b)
{
    return a > b? a: b;
}

//  The most digits any real of a document needs
static int
s_precision (const json_t *json)
{
    int precision = 1;
    if (json_is_real (json))
        precision = s_digits (json_real_value (json));
    else
    if (json_is_array (json)) {
        for (size_t i = 0; i < json_array_size (json) && precision < 17; i++)
            precision = s_max (precision,
                               s_precision (json_array_get (json, i)));
    }
    else
    if (json_is_object (json)) {
        const char *key;
        json_t *value;
        json_object_foreach ((json_t *) json, key, value)
            if (precision < 17)
                precision = s_max (precision, s_precision (value));
    }
    return precision;
}

static size_t
s_flags (const json_t *json, bool pretty)
{
    return JSON_ENCODE_ANY | JSON_REAL_PRECISION (s_precision (json))
         | (pretty? JSON_INDENT (2): 0);
}

int
agctl_json_print (const json_t *json, bool pretty, FILE *file)
{
    if (json_dumpf (json, file, s_flags (json, pretty)))
        return -1;
    return fputc ('\n', file) == EOF? -1: 0;
}

char *
agctl_json_text (const json_t *json)
{
    return json_dumps (json, s_flags (json, false));
}
