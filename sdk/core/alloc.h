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

/* Secrets (API keys, tokens, header values holding them): zero n bytes in a way the compiler
 * may not drop as a dead store, so a key does not outlive its use in freed memory. */
void steno__wipe(void *p, size_t n);
/* Wipes the NUL-terminated string s, then frees it. */
void steno__free_secret(const steno_allocator *a, char *s);

#endif
