/* params_elevenlabs: parses and validates ElevenLabs realtime speech-to-text query parameters. */
#include "params_elevenlabs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The parameters are those of specs/elevenlabs/README.md (the stored AsyncAPI file models no
 * query). Ranges are the vendor SDKs' client-side checks; the service's own limits are
 * unconfirmed, so this server enforces the SDKs' (a client that passes here passes there).
 */

#define MAX_LIST 50
#define MAX_KEYTERM_LEN 20

enum kind { K_MODEL, K_FORMAT, K_STR, K_STRATEGY, K_NUM, K_MS, K_BOOL, K_LIST, K_TOKEN, K_IGNORE };

struct def {
    const char *name;
    enum kind kind;
    double lo, hi;
};

static const struct def defs[] = {
    {"model_id", K_MODEL, 0, 0},
    {"audio_format", K_FORMAT, 0, 0},
    {"language_code", K_STR, 0, 0},
    {"commit_strategy", K_STRATEGY, 0, 0},
    {"vad_silence_threshold_secs", K_NUM, 0.3, 3.0},
    {"vad_threshold", K_NUM, 0.1, 0.9},
    {"min_speech_duration_ms", K_MS, 50, 2000},
    {"min_silence_duration_ms", K_MS, 50, 2000},
    {"include_timestamps", K_BOOL, 0, 0},
    {"include_language_detection", K_BOOL, 0, 0},
    {"no_verbatim", K_BOOL, 0, 0},
    {"filter_background_audio", K_BOOL, 0, 0},
    {"enable_logging", K_BOOL, 0, 0},
    {"transcript_edit", K_BOOL, 0, 0}, /* the JS SDK's; accepted, not acted on */
    {"secondary_languages", K_LIST, 0, 0},
    {"keyterms", K_LIST, 0, 0},
    {"entity_detection", K_LIST, 0, 0},
    {"token", K_TOKEN, 0, 0},
};

#define N_DEFS (sizeof defs / sizeof defs[0])

static const char *const models[] = {"scribe_v2_realtime", NULL};

static const struct {
    const char *name;
    int rate, bytes;
} formats[] = {{"pcm_8000", 8000, 2},   {"pcm_16000", 16000, 2}, {"pcm_22050", 22050, 2},
               {"pcm_24000", 24000, 2}, {"pcm_44100", 44100, 2}, {"pcm_48000", 48000, 2},
               {"ulaw_8000", 8000, 1}};

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int list_add(srv_el_list *l, const char *v)
{
    char **n = realloc(l->v, (l->n + 1) * sizeof(*n));
    if (!n)
        return -1;
    l->v = n;
    if (!(n[l->n] = strdup(v)))
        return -1;
    l->n++;
    return 0;
}

static void list_free(srv_el_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static cJSON *list_json(const srv_el_list *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < l->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
    return a;
}

static int number(const char *v, double lo, double hi, int whole, double *out)
{
    char *end;
    if (!*v || *v == ' ')
        return -1;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || !isfinite(d) || d < lo || d > hi || (whole && d != floor(d)))
        return -1;
    *out = d;
    return 0;
}

static int *bool_field(srv_el_params *p, const char *name)
{
    if (!strcmp(name, "include_timestamps"))
        return &p->include_timestamps;
    if (!strcmp(name, "include_language_detection"))
        return &p->include_language_detection;
    if (!strcmp(name, "no_verbatim"))
        return &p->no_verbatim;
    if (!strcmp(name, "filter_background_audio"))
        return &p->filter_background_audio;
    if (!strcmp(name, "enable_logging"))
        return &p->enable_logging;
    return &p->transcript_edit;
}

static srv_el_list *list_field(srv_el_params *p, const char *name)
{
    if (!strcmp(name, "secondary_languages"))
        return &p->secondary_languages;
    if (!strcmp(name, "keyterms"))
        return &p->keyterms;
    return &p->entity_detection;
}

static int apply(srv_el_params *p, const struct def *d, const char *v, char *err, size_t errlen)
{
    double x;
    switch (d->kind) {
    case K_MODEL:
        for (int i = 0; models[i]; i++)
            if (!strcmp(v, models[i])) {
                snprintf(p->model_id, sizeof(p->model_id), "%s", v);
                return 0;
            }
        return bad(err, errlen, "Invalid model_id '%.60s': expected scribe_v2_realtime", v);
    case K_FORMAT:
        for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
            if (!strcmp(v, formats[i].name)) {
                snprintf(p->audio_format, sizeof(p->audio_format), "%s", v);
                p->sample_rate = formats[i].rate;
                p->sample_bytes = formats[i].bytes;
                return 0;
            }
        return bad(err, errlen,
                   "Invalid audio_format '%.60s': expected pcm_8000, pcm_16000, pcm_22050, "
                   "pcm_24000, pcm_44100, pcm_48000 or ulaw_8000",
                   v);
    case K_STR:
        if (!*v || strlen(v) >= sizeof(p->language_code))
            return bad(err, errlen, "Invalid language_code '%.60s'", v);
        snprintf(p->language_code, sizeof(p->language_code), "%s", v);
        return 0;
    case K_STRATEGY:
        if (strcmp(v, "manual") && strcmp(v, "vad"))
            return bad(err, errlen, "Invalid commit_strategy '%.60s': expected manual or vad", v);
        p->vad = !strcmp(v, "vad");
        return 0;
    case K_NUM:
    case K_MS:
        if (number(v, d->lo, d->hi, d->kind == K_MS, &x))
            return bad(err, errlen, "Invalid %s '%.60s': expected %s %g..%g", d->name, v,
                       d->kind == K_MS ? "a whole number" : "a number", d->lo, d->hi);
        if (!strcmp(d->name, "vad_silence_threshold_secs"))
            p->vad_silence_threshold_secs = x;
        else if (!strcmp(d->name, "vad_threshold"))
            p->vad_threshold = x;
        else if (!strcmp(d->name, "min_speech_duration_ms"))
            p->min_speech_duration_ms = (int)x;
        else
            p->min_silence_duration_ms = (int)x;
        return 0;
    case K_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false"))
            return bad(err, errlen, "Invalid %s '%.60s': expected true or false", d->name, v);
        *bool_field(p, d->name) = !strcmp(v, "true");
        return 0;
    case K_LIST: {
        srv_el_list *l = list_field(p, d->name);
        if (!*v)
            return bad(err, errlen, "Invalid %s: an empty value", d->name);
        if (l->n >= MAX_LIST)
            return bad(err, errlen, "Invalid %s: more than %d values", d->name, MAX_LIST);
        if (l == &p->keyterms && strlen(v) > MAX_KEYTERM_LEN)
            return bad(err, errlen, "Invalid keyterms '%.60s': longer than %d characters", v,
                       MAX_KEYTERM_LEN);
        return list_add(l, v) ? bad(err, errlen, "out of memory") : 0;
    }
    case K_TOKEN:
        free(p->token);
        return (p->token = strdup(v)) ? 0 : bad(err, errlen, "out of memory");
    case K_IGNORE:
        return 0;
    }
    return 0;
}

int srv_el_params_parse(srv_el_params *p, const char *const *args, size_t nargs, int strict,
                        char *err, size_t errlen)
{
    unsigned seen = 0;
    memset(p, 0, sizeof(*p));
    snprintf(p->audio_format, sizeof(p->audio_format), "pcm_16000");
    p->sample_rate = 16000;
    p->sample_bytes = 2;
    p->vad_silence_threshold_secs = 1.5;
    p->vad_threshold = 0.4;
    p->min_speech_duration_ms = 100;
    p->min_silence_duration_ms = 100;
    p->enable_logging = 1;

    for (size_t i = 0; i < nargs; i++) {
        const char *eq = strchr(args[i], '=');
        size_t nl = eq ? (size_t)(eq - args[i]) : strlen(args[i]);
        const char *v = eq ? eq + 1 : "";
        if (nl == 0 && !*v)
            continue; /* "a=1&&b=2" or a trailing '&' */
        size_t k = 0;
        while (k < N_DEFS && (strlen(defs[k].name) != nl || strncmp(defs[k].name, args[i], nl)))
            k++;
        if (k == N_DEFS) {
            if (strict)
                return bad(err, errlen, "Unknown query parameter '%.*s'", (int)(nl > 60 ? 60 : nl),
                           args[i]);
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(nl > 63 ? 63 : nl), args[i]);
            if (p->ignored.n < 200 && list_add(&p->ignored, name))
                return bad(err, errlen, "out of memory");
            continue;
        }
        if (defs[k].kind != K_LIST) {
            if (seen & (1u << k))
                return bad(err, errlen, "Invalid %s: given more than once", defs[k].name);
            seen |= 1u << k;
        }
        if (apply(p, &defs[k], v, err, errlen))
            return -1;
    }
    if (!p->model_id[0])
        return bad(err, errlen, "Missing required query parameter model_id");
    if (p->filter_background_audio && p->include_timestamps)
        return bad(err, errlen,
                   "filter_background_audio cannot be combined with include_timestamps");
    return 0;
}

void srv_el_params_free(srv_el_params *p)
{
    list_free(&p->secondary_languages);
    list_free(&p->keyterms);
    list_free(&p->entity_detection);
    list_free(&p->ignored);
    free(p->token);
    memset(p, 0, sizeof(*p));
}

cJSON *srv_el_params_config(const srv_el_params *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sample_rate", p->sample_rate);
    cJSON_AddStringToObject(o, "audio_format", p->audio_format);
    if (p->language_code[0])
        cJSON_AddStringToObject(o, "language_code", p->language_code);
    cJSON_AddItemToObject(o, "secondary_languages", list_json(&p->secondary_languages));
    cJSON_AddStringToObject(o, "timestamps_granularity", p->include_timestamps ? "word" : "none");
    cJSON_AddStringToObject(o, "vad_commit_strategy", p->vad ? "vad" : "manual");
    cJSON_AddNumberToObject(o, "vad_silence_threshold_secs", p->vad_silence_threshold_secs);
    cJSON_AddNumberToObject(o, "vad_threshold", p->vad_threshold);
    cJSON_AddNumberToObject(o, "min_speech_duration_ms", p->min_speech_duration_ms);
    cJSON_AddNumberToObject(o, "min_silence_duration_ms", p->min_silence_duration_ms);
    cJSON_AddStringToObject(o, "model_id", p->model_id);
    cJSON_AddBoolToObject(o, "enable_logging", p->enable_logging);
    cJSON_AddBoolToObject(o, "include_language_detection", p->include_language_detection);
    cJSON_AddItemToObject(o, "keyterms", list_json(&p->keyterms));
    cJSON_AddBoolToObject(o, "no_verbatim", p->no_verbatim);
    cJSON_AddItemToObject(o, "entity_detection", list_json(&p->entity_detection));
    cJSON_AddBoolToObject(o, "filter_background_audio", p->filter_background_audio);
    return o;
}

cJSON *srv_el_params_json(const srv_el_params *p)
{
    cJSON *o = srv_el_params_config(p);
    cJSON_AddBoolToObject(o, "include_timestamps", p->include_timestamps);
    cJSON_AddBoolToObject(o, "transcript_edit", p->transcript_edit);
    cJSON_AddBoolToObject(o, "token", p->token != NULL);
    cJSON_AddItemToObject(o, "ignored", list_json(&p->ignored));
    return o;
}
