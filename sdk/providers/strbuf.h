/* strbuf: a growable string through a steno_allocator, with URL percent-escaping. */
#ifndef STENO_PROVIDERS_STRBUF_H
#define STENO_PROVIDERS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "steno/alloc.h"

/*
 * Errors are sticky: after an allocation failure or a size above max every
 * append is a no-op and steno__sb_status() reports it, so builders can
 * append unconditionally and check once at the end.
 */
typedef struct steno__sb {
    const steno_allocator *a;
    char *p; /* NUL-terminated when len > 0 or after steno__sb_cstr */
    size_t len;
    size_t cap;
    size_t max; /* refuse to grow beyond this many bytes (0 = 1 MiB) */
    int status; /* STENO_OK, STENO_ERR_NOMEM or STENO_ERR_TOO_LARGE */
} steno__sb;

void steno__sb_init(steno__sb *b, const steno_allocator *a);
void steno__sb_free(steno__sb *b);
void steno__sb_reset(steno__sb *b); /* len = 0, keeps memory and clears the error */
void steno__sb_append(steno__sb *b, const char *s, size_t n);
void steno__sb_puts(steno__sb *b, const char *s);
void steno__sb_printf(steno__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* RFC 3986: everything but unreserved characters (ALPHA DIGIT - . _ ~) as %XX. */
void steno__sb_append_escaped(steno__sb *b, const char *s);
int steno__sb_status(const steno__sb *b);
/* Never NULL: "" for an empty buffer (or one that failed). */
const char *steno__sb_cstr(const steno__sb *b);
/* Hands the buffer to the caller (free with steno__free(b->a, p)); b is reset to empty. NULL on
 * error. */
char *steno__sb_take(steno__sb *b);

#endif
