/*  =========================================================================
    fuzz.h - what the libFuzzer harnesses share

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  The harnesses check what they see against PROTOCOL.md, read here
//  independently of the codec: so they read big-endian fields with their
//  own reader, and a failed expectation aborts, whatever NDEBUG says, so
//  that libFuzzer keeps the input.
//  @end

#ifndef FUZZ_H_INCLUDED
#define FUZZ_H_INCLUDED

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond) \
    do { if (!(cond)) fuzz_fail (__FILE__, __LINE__, #cond); } while (0)

static inline void
fuzz_fail (const char *file, int line, const char *what)
{
    fprintf (stderr, "%s:%d: expectation failed: %s\n", file, line, what);
    abort ();
}

//  An unsigned big-endian field of bytes octets
static inline uint64_t
fuzz_get_be (const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = (value << 8) | p [i];
    return value;
}

#endif
