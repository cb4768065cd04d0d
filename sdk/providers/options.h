/* options: an owned, ordered multimap of provider options (key/value strings). */
#ifndef STENO_PROVIDERS_OPTIONS_H
#define STENO_PROVIDERS_OPTIONS_H

#include <stddef.h>

#include "steno/alloc.h"
#include "steno/session.h"

/* Order is kept (it is the order of the query string) and keys may repeat. */
typedef struct steno__opts {
    steno_option *v; /* keys/values owned (allocated), n entries */
    size_t n;
} steno__opts;

/* Deep copy of src[0..n); entries with a NULL key are refused (STENO_ERR_INVALID_ARG),
 * entries with a NULL value are skipped. */
int steno__opts_copy(const steno_allocator *a, const steno_option *src, size_t n, steno__opts *out);
/* Deep copy of an option set. */
int steno__opts_dup(const steno_allocator *a, const steno__opts *src, steno__opts *out);
/*
 * configure() semantics: builds in *out a new set in which, for every key
 * named in changes, all old values are removed and the non-NULL values given
 * for it are appended (in the order given); other keys keep their place.
 */
int steno__opts_apply(const steno_allocator *a, const steno__opts *cur, const steno_option *changes,
                      size_t n, steno__opts *out);
void steno__opts_free(const steno_allocator *a, steno__opts *o);
/* How many entries have this key. */
size_t steno__opts_count(const steno__opts *o, const char *key);
/* The first value of key, or NULL. */
const char *steno__opts_get(const steno__opts *o, const char *key);

#endif
