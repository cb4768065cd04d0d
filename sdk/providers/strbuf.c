/* strbuf: a growable string through a steno_allocator, with URL percent-escaping. */
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "steno/status.h"

#define SB_DEFAULT_MAX ((size_t)1 << 20)

void steno__sb_init(steno__sb *b, const steno_allocator *a)
{
    memset(b, 0, sizeof *b);
    b->a = a;
}

void steno__sb_free(steno__sb *b)
{
    steno__free(b->a, b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void steno__sb_reset(steno__sb *b)
{
    b->len = 0;
    b->status = STENO_OK;
    if (b->p)
        b->p[0] = '\0';
}

static int reserve(steno__sb *b, size_t extra)
{
    size_t max = b->max ? b->max : SB_DEFAULT_MAX;
    if (b->status)
        return -1;
    if (extra > max || b->len + extra + 1 > max) {
        b->status = STENO_ERR_TOO_LARGE;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max)
        ncap = max;
    char *np = steno__alloc(b->a, ncap);
    if (!np) {
        b->status = STENO_ERR_NOMEM;
        return -1;
    }
    if (b->len)
        memcpy(np, b->p, b->len);
    np[b->len] = '\0';
    steno__free(b->a, b->p);
    b->p = np;
    b->cap = ncap;
    return 0;
}

void steno__sb_append(steno__sb *b, const char *s, size_t n)
{
    if (reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void steno__sb_puts(steno__sb *b, const char *s)
{
    steno__sb_append(b, s, strlen(s));
}

void steno__sb_printf(steno__sb *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->status = STENO_ERR_INTERNAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        steno__sb_append(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void steno__sb_append_escaped(steno__sb *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            steno__sb_append(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            steno__sb_append(b, e, 3);
        }
    }
}

int steno__sb_status(const steno__sb *b)
{
    return b->status;
}

const char *steno__sb_cstr(const steno__sb *b)
{
    return (b->p && !b->status) ? b->p : "";
}

char *steno__sb_take(steno__sb *b)
{
    if (b->status) {
        steno__sb_free(b);
        b->status = STENO_OK;
        return NULL;
    }
    if (!b->p && reserve(b, 0))
        return NULL;
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
