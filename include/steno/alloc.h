/* steno_allocator: per-object allocator hooks, carried by each client and session. */
#ifndef STENO_ALLOC_H
#define STENO_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Like zstd's customMem: the allocator travels with the object, so two users
 * of steno in one process never step on each other. All three fields NULL
 * means malloc/free. alloc_fn must return memory aligned for any type.
 */
typedef struct steno_allocator {
    void *(*alloc_fn)(void *opaque, size_t size);
    void (*free_fn)(void *opaque, void *ptr);
    void *opaque;
} steno_allocator;

#ifdef __cplusplus
}
#endif

#endif /* STENO_ALLOC_H */
