/* options: an owned, ordered multimap of provider options (key/value strings). */
#include "options.h"

#include <string.h>

#include "alloc.h"
#include "steno/status.h"

static char *dupstr(const steno_allocator *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = steno__alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void steno__opts_free(const steno_allocator *a, steno__opts *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        steno__free(a, (void *)o->v[i].key);
        steno__free(a, (void *)o->v[i].value);
    }
    steno__free(a, o->v);
    o->v = NULL;
    o->n = 0;
}

/* Appends a copy of (key, value) to o, whose array has room. */
static int push(const steno_allocator *a, steno__opts *o, const char *key, const char *value)
{
    char *k = dupstr(a, key);
    char *v = dupstr(a, value);
    if (!k || !v) {
        steno__free(a, k);
        steno__free(a, v);
        return STENO_ERR_NOMEM;
    }
    o->v[o->n].key = k;
    o->v[o->n].value = v;
    o->n++;
    return STENO_OK;
}

int steno__opts_copy(const steno_allocator *a, const steno_option *src, size_t n, steno__opts *out)
{
    out->v = NULL;
    out->n = 0;
    if (n && !src)
        return STENO_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (!src[i].key)
            return STENO_ERR_INVALID_ARG;
    if (n == 0)
        return STENO_OK;
    out->v = steno__calloc(a, n, sizeof *out->v);
    if (!out->v)
        return STENO_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!src[i].value)
            continue;
        int rc = push(a, out, src[i].key, src[i].value);
        if (rc) {
            steno__opts_free(a, out);
            return rc;
        }
    }
    return STENO_OK;
}

int steno__opts_dup(const steno_allocator *a, const steno__opts *src, steno__opts *out)
{
    return steno__opts_copy(a, src->v, src->n, out);
}

static int named_in(const steno_option *changes, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(changes[i].key, key) == 0)
            return 1;
    return 0;
}

int steno__opts_apply(const steno_allocator *a, const steno__opts *cur, const steno_option *changes,
                      size_t n, steno__opts *out)
{
    out->v = NULL;
    out->n = 0;
    if (n && !changes)
        return STENO_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (!changes[i].key)
            return STENO_ERR_INVALID_ARG;
    size_t total = cur->n + n;
    if (total == 0)
        return STENO_OK;
    out->v = steno__calloc(a, total, sizeof *out->v);
    if (!out->v)
        return STENO_ERR_NOMEM;
    int rc = STENO_OK;
    for (size_t i = 0; i < cur->n && !rc; i++)
        if (!named_in(changes, n, cur->v[i].key))
            rc = push(a, out, cur->v[i].key, cur->v[i].value);
    for (size_t i = 0; i < n && !rc; i++)
        if (changes[i].value)
            rc = push(a, out, changes[i].key, changes[i].value);
    if (rc)
        steno__opts_free(a, out);
    return rc;
}

size_t steno__opts_count(const steno__opts *o, const char *key)
{
    size_t c = 0;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->v[i].key, key) == 0)
            c++;
    return c;
}

const char *steno__opts_get(const steno__opts *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->v[i].key, key) == 0)
            return o->v[i].value;
    return NULL;
}
