/* provider: the registry of provider adapters, and what all of them share. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "alloc.h"

static const steno__provider *const providers[] = {
    &steno__deepgram,
    &steno__assemblyai,
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
    return "deepgram, assemblyai";
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
