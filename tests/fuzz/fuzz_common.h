/* fuzz_common: what every fuzz target shares: checks, an input reader, a counting allocator. */
#ifndef STENO_TESTS_FUZZ_COMMON_H
#define STENO_TESTS_FUZZ_COMMON_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steno/alloc.h"

/* The entry point of every target: libFuzzer's, or driver.c's. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A failed property aborts, so libFuzzer saves the input as a crash artifact
 * and the standalone driver dumps it. Unlike assert(), it stays on in every
 * build type.
 */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- reading structured values out of the fuzz input ---- */

/* Consumes the input front to back; once it runs dry every read yields zeros,
 * so any byte string is a valid (if short) program. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline bool fz_empty(const fz_in *in)
{
    return in->n == 0;
}

static inline uint8_t fz_u8(fz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint64_t fz_bytes_le(fz_in *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)fz_u8(in) << (8 * i);
    return v;
}

static inline uint16_t fz_u16(fz_in *in)
{
    return (uint16_t)fz_bytes_le(in, 2);
}

static inline uint32_t fz_u32(fz_in *in)
{
    return (uint32_t)fz_bytes_le(in, 4);
}

static inline uint64_t fz_u64(fz_in *in)
{
    return fz_bytes_le(in, 8);
}

/* A value in [lo, hi] (hi >= lo), from as few bytes as the range needs. */
static inline uint64_t fz_range(fz_in *in, uint64_t lo, uint64_t hi)
{
    uint64_t span = hi - lo;
    int bytes = 0;
    for (uint64_t s = span; s; s >>= 8)
        bytes++;
    uint64_t v = fz_bytes_le(in, bytes);
    return span == UINT64_MAX ? v : lo + v % (span + 1);
}

/* Doubles a provider could send and the ones that break arithmetic: mostly
 * ordinary times in seconds, sometimes the raw bit patterns. */
static inline double fz_double(fz_in *in)
{
    static const double special[] = {
        0.0,      -0.0,      0.5,  1.0,      -1.0,   1e-9,    -1e-9,    0.0000625,
        1e300,    -1e300,    1e15, 9.007e15, 1.8e19, -1.8e19, 2.5e-324, 1.7976931348623157e308,
        INFINITY, -INFINITY, NAN,  -NAN,     3600.0, 86400.0, 4.9e-324, 0.1,
    };
    uint8_t k = fz_u8(in);
    if (k < 128) /* an ordinary time: 0 .. 655.35 s in 10 ms steps, sometimes negative */
        return (k & 1 ? -1.0 : 1.0) * (k & 2 ? 0.001 : 1.0) * (double)fz_u16(in) / 100.0;
    if (k < 224)
        return special[k % (sizeof special / sizeof special[0])];
    uint64_t bits = fz_u64(in);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* The next string: bytes up to a NUL (consumed) or the end. Returns a malloc'd
 * copy (never NULL unless out of memory) and its length in *len (optional). */
static inline char *fz_str(fz_in *in, size_t *len)
{
    const uint8_t *z = memchr(in->p, 0, in->n);
    size_t n = z ? (size_t)(z - in->p) : in->n;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, in->p, n);
        s[n] = '\0';
    }
    in->p += n;
    in->n -= n;
    if (z) {
        in->p++;
        in->n--;
    }
    if (len)
        *len = n;
    return s;
}

/* ---- an allocator that counts, and fails on request ---- */

/*
 * Every target runs the code under test through this allocator: live == 0
 * after the cleanup proves nothing leaked even in builds without LeakSanitizer,
 * and fail_at makes the Nth allocation fail, so the out-of-memory paths run too.
 */
typedef struct fz_alloc {
    steno_allocator a;
    uint64_t calls;   /* allocations attempted */
    uint64_t fail_at; /* the fail_at-th call returns NULL; 0 = never */
    int64_t live;     /* allocations not yet freed */
    bool failed;      /* an allocation was refused */
} fz_alloc;

static inline void *fz_alloc_fn(void *opaque, size_t size)
{
    fz_alloc *f = opaque;
    f->calls++;
    if (f->fail_at && f->calls == f->fail_at) {
        f->failed = true;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        f->live++;
    return p;
}

static inline void fz_free_fn(void *opaque, void *p)
{
    fz_alloc *f = opaque;
    FUZZ_CHECK(p != NULL, "free of NULL through the allocator");
    f->live--;
    free(p);
}

static inline void fz_alloc_init(fz_alloc *f, uint64_t fail_at)
{
    memset(f, 0, sizeof *f);
    f->a.alloc_fn = fz_alloc_fn;
    f->a.free_fn = fz_free_fn;
    f->a.opaque = f;
    f->fail_at = fail_at;
}

#define FZ_CHECK_NO_LEAK(f)                                                                        \
    FUZZ_CHECK((f)->live == 0, "%lld allocation(s) leaked", (long long)(f)->live)

#endif
