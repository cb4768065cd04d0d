/* provider: the registry of provider adapters, and what all of them share. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

static const steno__provider *const providers[] = {
    &steno__deepgram,
    &steno__assemblyai,
    &steno__gemini,
    &steno__openai,
};

const steno__provider *steno__provider_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        if (strcmp(providers[i]->name, name) == 0)
            return providers[i];
    return NULL;
}

const char *steno__provider_names(void)
{
    return "deepgram, assemblyai, gemini, openai";
}

void steno__msg_release(steno__msg *m)
{
    if (!m)
        return;
    if (m->root_)
        cJSON_Delete(m->root_);
    steno__free(m->a_, m->words);
    steno__free(m->a_, m->raw_);
    m->root_ = NULL;
    m->words = NULL;
    m->raw_ = NULL;
    m->raw = NULL;
    m->n_words = 0;
}

void steno__url_begin_query(steno__sb *out, const char *base_url)
{
    size_t blen = strcspn(base_url, "#");
    steno__sb_append(out, base_url, blen);
    const char *q = memchr(base_url, '?', blen);
    char sep = q ? (q + 1 == base_url + blen ? 0 : '&') : '?';
    if (sep)
        steno__sb_append(out, &sep, 1);
}

void steno__url_append_opts(steno__sb *out, const steno__opts *o, const char *skip)
{
    for (size_t i = 0; o && i < o->n; i++) {
        if (skip && strcmp(o->v[i].key, skip) == 0)
            continue;
        steno__sb_puts(out, "&");
        steno__sb_append_escaped(out, o->v[i].key);
        steno__sb_puts(out, "=");
        steno__sb_append_escaped(out, o->v[i].value);
    }
}

int steno__opts_check_each(const steno__opts *o, const char *provider,
                           int (*check_option)(const char *key, const char *value, char *err,
                                               size_t errlen),
                           int (*repeatable)(const char *key), char *err, size_t errlen)
{
    for (size_t i = 0; i < o->n; i++) {
        int rc = check_option(o->v[i].key, o->v[i].value, err, errlen);
        if (rc)
            return rc;
        if ((!repeatable || !repeatable(o->v[i].key)) && steno__opts_count(o, o->v[i].key) > 1) {
            snprintf(err, errlen, "%s option '%s' may be given only once", provider, o->v[i].key);
            return STENO_ERR_CONFIG;
        }
    }
    return STENO_OK;
}
