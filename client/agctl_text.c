/*  =========================================================================
    agctl_text - agentctl's output for people: tables, lists, durations

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Everything the server sends is data, names included: a cell shows a
//  string with its control characters and stray octets escaped, so a
//  name can never move the cursor or break a table's alignment. Widths
//  count characters (UTF-8 sequences), not octets.
//  @end

#include "agctl.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct _agctl_table_t {
    size_t columns;                 //  cells per row
    bool *right;                    //  per column: align to the right
    char **cells;                   //  rows * columns cells, row by row
    size_t rows;                    //  rows added
    size_t room;                    //  rows the cells array can hold
};

//  Characters in a UTF-8 string: octets that do not continue a sequence
static size_t
s_width (const char *text)
{
    size_t width = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if ((*p & 0xC0) != 0x80)
            width++;
    return width;
}

//  ---------------------------------------------------------------------
//  Tables

agctl_table_t *
agctl_table_new (size_t columns)
{
    agctl_table_t *self = (agctl_table_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->columns = columns;
    self->right = (bool *) calloc (columns, sizeof (bool));
    if (!self->right) {
        free (self);
        return NULL;
    }
    return self;
}

void
agctl_table_destroy (agctl_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agctl_table_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->rows * self->columns; i++)
        free (self->cells [i]);
    free (self->cells);
    free (self->right);
    free (self);
}

void
agctl_table_right (agctl_table_t *self, size_t column)
{
    if (column < self->columns)
        self->right [column] = true;
}

int
agctl_table_add (agctl_table_t *self, ...)
{
    if (self->rows == self->room) {
        size_t room = self->room? self->room * 2: 16;
        char **cells = (char **) realloc (self->cells,
                                          room * self->columns * sizeof *cells);
        if (!cells)
            return -1;
        self->cells = cells;
        self->room = room;
    }
    char **row = self->cells + self->rows * self->columns;
    va_list args;
    va_start (args, self);
    int rc = 0;
    for (size_t column = 0; column < self->columns; column++) {
        const char *cell = va_arg (args, const char *);
        row [column] = strdup (cell? cell: "-");
        if (!row [column])
            rc = -1;
    }
    va_end (args);
    if (rc) {
        for (size_t column = 0; column < self->columns; column++)
            free (row [column]);
        return -1;
    }
    self->rows++;
    return 0;
}

void
agctl_table_print (agctl_table_t *self, int indent, FILE *file)
{
    size_t *widths = (size_t *) calloc (self->columns, sizeof (size_t));
    if (!widths)
        return;
    for (size_t row = 0; row < self->rows; row++)
        for (size_t column = 0; column < self->columns; column++) {
            size_t width = s_width (self->cells [row * self->columns + column]);
            if (width > widths [column])
                widths [column] = width;
        }
    for (size_t row = 0; row < self->rows; row++) {
        fprintf (file, "%*s", indent, "");
        for (size_t column = 0; column < self->columns; column++) {
            const char *cell = self->cells [row * self->columns + column];
            size_t pad = widths [column] - s_width (cell);
            bool last = column + 1 == self->columns;
            if (self->right [column])
                fprintf (file, "%*s%s", (int) pad, "", cell);
            else
                fprintf (file, "%s%*s", cell, last? 0: (int) pad, "");
            if (!last)
                fputs ("  ", file);
        }
        fputc ('\n', file);
    }
    free (widths);
}

//  ---------------------------------------------------------------------
//  Cells, lists, values

char *
agctl_duration (int64_t msecs, char *buffer, size_t size)
{
    if (msecs < 0)
        msecs = 0;
    int64_t secs = msecs / 1000;
    if (msecs < 1000)
        snprintf (buffer, size, "%" PRId64 "ms", msecs);
    else
    if (secs < 60)
        snprintf (buffer, size, "%" PRId64 ".%" PRId64 "s", secs,
                  msecs % 1000 / 100);
    else
    if (secs < 3600)
        snprintf (buffer, size, "%" PRId64 "m%02" PRId64 "s", secs / 60,
                  secs % 60);
    else
    if (secs < 86400)
        snprintf (buffer, size, "%" PRId64 "h%02" PRId64 "m", secs / 3600,
                  secs % 3600 / 60);
    else
        snprintf (buffer, size, "%" PRId64 "d%02" PRId64 "h", secs / 86400,
                  secs % 86400 / 3600);
    return buffer;
}

char *
agctl_cell (const msgpack_object *object)
{
    if (!object || object->type == MSGPACK_OBJECT_NIL)
        return strdup ("-");
    if (object->type == MSGPACK_OBJECT_STR)
        return agctl_utf8_clean (object->via.str.ptr, object->via.str.size,
                                 true, NULL);
    json_t *json = agctl_json_from_object (object);
    char *text = json? agctl_json_text (json): NULL;
    json_decref (json);
    return text;                    //  JSON escapes control characters
}

void
agctl_print_list (const char *label, int label_width, char **items,
                  size_t count, int width, FILE *file)
{
    int column = fprintf (file, "%-*s", label_width, label);
    int start = column;
    if (count == 0)
        fputs ("none", file);
    for (size_t i = 0; i < count; i++) {
        int item = (int) s_width (items [i]) + (i + 1 < count? 1: 0);
        if (i > 0) {
            if (column + 1 + item > width) {
                fprintf (file, "\n%*s", start, "");
                column = start;
            }
            else {
                fputc (' ', file);
                column++;
            }
        }
        fprintf (file, "%s%s", items [i], i + 1 < count? ",": "");
        column += item;
    }
    fputc ('\n', file);
}

int
agctl_print_value (const msgpack_object *object, FILE *file)
{
    if (object->type == MSGPACK_OBJECT_STR) {
        if (object->via.str.size)
            fwrite (object->via.str.ptr, 1, object->via.str.size, file);
        return fputc ('\n', file) == EOF? -1: 0;
    }
    json_t *json = agctl_json_from_object (object);
    if (!json)
        return -1;
    int rc = agctl_json_print (json, true, file);
    json_decref (json);
    return rc;
}
