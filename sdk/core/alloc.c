/* alloc: the one place that turns a steno_allocator into memory. */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int custom(const steno_allocator *a)
{
    return a && a->alloc_fn && a->free_fn;
}

void *steno__alloc(const steno_allocator *a, size_t size)
{
    if (size == 0)
        size = 1;
    return custom(a) ? a->alloc_fn(a->opaque, size) : malloc(size);
}

void *steno__calloc(const steno_allocator *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = steno__alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void steno__wipe(void *p, size_t n)
{
    if (!p || !n)
        return;
    memset(p, 0, n);
    /* the barrier makes the stores observable: the memset cannot be elided */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void steno__free_secret(const steno_allocator *a, char *s)
{
    if (!s)
        return;
    steno__wipe(s, strlen(s));
    steno__free(a, s);
}

void steno__free(const steno_allocator *a, void *p)
{
    if (!p)
        return;
    if (custom(a))
        a->free_fn(a->opaque, p);
    else
        free(p);
}
