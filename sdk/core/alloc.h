/* alloc: the one place that turns a steno_allocator into memory. */
#ifndef STENO_CORE_ALLOC_H
#define STENO_CORE_ALLOC_H

#include <stddef.h>

#include "steno/alloc.h"

/* NULL or an all-NULL allocator means malloc/free. */
void *steno__alloc(const steno_allocator *a, size_t size);
/* Zeroed; returns NULL on overflow of n * size. */
void *steno__calloc(const steno_allocator *a, size_t n, size_t size);
void steno__free(const steno_allocator *a, void *p);

#endif
