/* params_assemblyai: parses and validates AssemblyAI /v3/ws query parameters. */
#include "params_assemblyai.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEYTERMS 1000
#define MAX_KEYTERM_LEN 256
#define MAX_OTHER 200

/* The models of usm-streaming.yml; u3-rt-pro (its own spec) is refused:
 * its SpeechStarted and partial-turn rules are not implemented here. */
static const char *const models[] = {"universal-streaming-english",
                                     "universal-streaming-multilingual", "whisper-rt", NULL};

/* Query parameters the vendor's JS SDK sends besides the spec's: accepted
 * and recorded, not acted on. */
static const char *const known_other[] = {"session_heartbeat",
                                          "language_codes",
                                          "filter_profanity",
                                          "continuous_partials",
                                          "include_partial_turns",
                                          "prompt",
                                          NULL};

/* Every name this module interprets; each may be given once. */
static const char *const names[] = {"speech_model",
                                    "sample_rate",
                                    "encoding",
                                    "format_turns",
                                    "end_of_turn_confidence_threshold",
                                    "min_turn_silence",
                                    "max_turn_silence",
                                    "vad_threshold",
                                    "inactivity_timeout",
                                    "keyterms_prompt",
                                    "language_detection",
                                    "speaker_labels",
                                    "max_speakers",
                                    "token",
                                    "language",
                                    NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "User Input Validation Error: %s", msg);
    return -1;
}

static int index_of(const char *v, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(v, list[i]))
            return i;
    return -1;
}

static int parse_int(const char *v, long lo, long hi, int *out)
{
    char *end;
    if (!*v || !(isdigit((unsigned char)*v) || *v == '-'))
        return -1;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static int parse_unit(const char *v, double *out)
{
    char *end;
    if (!*v || isspace((unsigned char)*v))
        return -1;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || !isfinite(d) || d < 0 || d > 1)
        return -1;
    *out = d;
    return 0;
}

/* "true"/"false" in any case: the docs' Python examples send True/False. */
static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true"))
        *out = 1;
    else if (!strcasecmp(v, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int push(char ***list, size_t *n, const char *v)
{
    char **l = realloc(*list, (*n + 1) * sizeof(**list));
    if (!l)
        return -1;
    *list = l;
    if (!(l[*n] = strdup(v)))
        return -1;
    (*n)++;
    return 0;
}

/* keyterms_prompt is one JSON array of strings (the docs' form); a bare
 * word, as from repeated parameters, is refused like the service does. */
static int parse_keyterms(srv_aai_params *p, const char *v, char *err, size_t errlen)
{
    cJSON *a = cJSON_Parse(v);
    int rc = 0;
    if (!cJSON_IsArray(a)) {
        rc = fail(err, errlen, "Invalid 'keyterms_prompt': Invalid JSON array");
    } else if (cJSON_GetArraySize(a) > MAX_KEYTERMS) {
        rc = fail(err, errlen, "Invalid 'keyterms_prompt': more than %d terms", MAX_KEYTERMS);
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, a)
        {
            if (!cJSON_IsString(it) || !*it->valuestring ||
                strlen(it->valuestring) > MAX_KEYTERM_LEN) {
                rc = fail(err, errlen,
                          "Invalid 'keyterms_prompt': each term must be a string of 1..%d "
                          "characters",
                          MAX_KEYTERM_LEN);
                break;
            }
            if (push(&p->keyterms, &p->n_keyterms, it->valuestring)) {
                rc = fail(err, errlen, "out of memory");
                break;
            }
        }
    }
    cJSON_Delete(a);
    return rc;
}

static int apply(srv_aai_params *p, int k, const char *name, const char *v, char *err,
                 size_t errlen)
{
    switch (k) {
    case 0:
        if (index_of(v, models) < 0)
            return fail(err, errlen,
                        "Invalid 'speech_model': '%s' (expected universal-streaming-english, "
                        "universal-streaming-multilingual or whisper-rt)",
                        v);
        snprintf(p->speech_model, sizeof(p->speech_model), "%s", v);
        return 0;
    case 1:
        if (parse_int(v, 8000, 48000, &p->sample_rate))
            return fail(err, errlen, "Invalid 'sample_rate': '%s' (expected 8000..48000)", v);
        return 0;
    case 2:
        if (!strcmp(v, "pcm_s16le"))
            p->sample_bytes = 2;
        else if (!strcmp(v, "pcm_mulaw"))
            p->sample_bytes = 1;
        else
            return fail(err, errlen, "Invalid 'encoding': '%s' (expected pcm_s16le or pcm_mulaw)",
                        v);
        snprintf(p->encoding, sizeof(p->encoding), "%s", v);
        return 0;
    case 3:
    case 10:
    case 11: {
        int *b = k == 3 ? &p->format_turns : k == 10 ? &p->language_detection : &p->speaker_labels;
        if (parse_bool(v, b))
            return fail(err, errlen, "Invalid '%s': '%s' (expected true or false)", name, v);
        return 0;
    }
    case 4:
    case 7: {
        double *d = k == 4 ? &p->end_of_turn_confidence_threshold : &p->vad_threshold;
        if (parse_unit(v, d))
            return fail(err, errlen, "Invalid '%s': '%s' (expected a number in 0..1)", name, v);
        return 0;
    }
    case 5:
    case 6:
        if (parse_int(v, 0, 3600000, k == 5 ? &p->min_turn_silence : &p->max_turn_silence))
            return fail(err, errlen, "Invalid '%s': '%s' (expected milliseconds, 0..3600000)", name,
                        v);
        return 0;
    case 8:
        if (parse_int(v, 5, 3600, &p->inactivity_timeout))
            return fail(err, errlen, "Invalid 'inactivity_timeout': '%s' (expected 5..3600)", v);
        return 0;
    case 9:
        return parse_keyterms(p, v, err, errlen);
    case 12:
        if (parse_int(v, 1, 10, &p->max_speakers))
            return fail(err, errlen, "Invalid 'max_speakers': '%s' (expected 1..10)", v);
        return 0;
    case 13:
        free(p->token);
        if (!(p->token = strdup(v)))
            return fail(err, errlen, "out of memory");
        return 0;
    case 14:
        if (strcmp(v, "en") && strcmp(v, "multi"))
            return fail(err, errlen, "Invalid 'language': '%s' (expected en or multi)", v);
        snprintf(p->language, sizeof(p->language), "%s", v);
        return 0;
    }
    return 0;
}

static int push_other(srv_aai_params *p, const char *name, const char *value)
{
    srv_kv *o = realloc(p->other, (p->n_other + 1) * sizeof(*o));
    if (!o)
        return -1;
    p->other = o;
    o[p->n_other].name = strdup(name);
    o[p->n_other].value = strdup(value);
    p->n_other++;
    return o[p->n_other - 1].name && o[p->n_other - 1].value ? 0 : -1;
}

int srv_aai_params_parse(srv_aai_params *p, const char *const *args, size_t nargs, int strict,
                         char *err, size_t errlen)
{
    unsigned seen = 0;

    memset(p, 0, sizeof(*p));
    snprintf(p->speech_model, sizeof(p->speech_model), "universal-streaming-english");
    snprintf(p->encoding, sizeof(p->encoding), "pcm_s16le");
    p->sample_rate = 16000;
    p->sample_bytes = 2;
    p->end_of_turn_confidence_threshold = 0.4;
    p->vad_threshold = 0.4;
    p->min_turn_silence = 400;
    p->max_turn_silence = 1280;

    for (size_t i = 0; i < nargs; i++) {
        char name[64];
        const char *eq = strchr(args[i], '=');
        size_t nl = eq ? (size_t)(eq - args[i]) : strlen(args[i]);
        const char *v = eq ? eq + 1 : "";
        if (nl == 0 && !*v)
            continue; /* "a=1&&b=2" or a trailing '&' */
        if (nl == 0 || nl >= sizeof(name))
            return fail(err, errlen, "Invalid query parameter name");
        memcpy(name, args[i], nl);
        name[nl] = 0;
        int k = index_of(name, names);
        if (k >= 0) {
            if (seen & (1u << k))
                return fail(err, errlen, "Invalid '%s': given more than once", name);
            seen |= 1u << k;
            if (apply(p, k, name, v, err, errlen))
                return -1;
            continue;
        }
        if (index_of(name, known_other) < 0) {
            if (strict)
                return fail(err, errlen, "Unknown query parameter '%s'", name);
            if (push(&p->ignored, &p->n_ignored, name))
                return fail(err, errlen, "out of memory");
        }
        if (p->n_other >= MAX_OTHER)
            return fail(err, errlen, "Too many query parameters");
        if (push_other(p, name, v))
            return fail(err, errlen, "out of memory");
    }
    if (p->max_turn_silence < p->min_turn_silence)
        return fail(err, errlen,
                    "Invalid 'max_turn_silence': %d is less than min_turn_silence (%d)",
                    p->max_turn_silence, p->min_turn_silence);
    return 0;
}

void srv_aai_params_free(srv_aai_params *p)
{
    for (size_t i = 0; i < p->n_keyterms; i++)
        free(p->keyterms[i]);
    for (size_t i = 0; i < p->n_other; i++) {
        free(p->other[i].name);
        free(p->other[i].value);
    }
    for (size_t i = 0; i < p->n_ignored; i++)
        free(p->ignored[i]);
    free(p->keyterms);
    free(p->other);
    free(p->ignored);
    free(p->token);
    memset(p, 0, sizeof(*p));
}

cJSON *srv_aai_params_json(const srv_aai_params *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "speech_model", p->speech_model);
    cJSON_AddNumberToObject(o, "sample_rate", p->sample_rate);
    cJSON_AddStringToObject(o, "encoding", p->encoding);
    cJSON_AddBoolToObject(o, "format_turns", p->format_turns);
    cJSON_AddNumberToObject(o, "end_of_turn_confidence_threshold",
                            p->end_of_turn_confidence_threshold);
    cJSON_AddNumberToObject(o, "min_turn_silence", p->min_turn_silence);
    cJSON_AddNumberToObject(o, "max_turn_silence", p->max_turn_silence);
    cJSON_AddNumberToObject(o, "vad_threshold", p->vad_threshold);
    if (p->inactivity_timeout)
        cJSON_AddNumberToObject(o, "inactivity_timeout", p->inactivity_timeout);
    else
        cJSON_AddNullToObject(o, "inactivity_timeout");
    cJSON *k = cJSON_AddArrayToObject(o, "keyterms_prompt");
    for (size_t i = 0; i < p->n_keyterms; i++)
        cJSON_AddItemToArray(k, cJSON_CreateString(p->keyterms[i]));
    cJSON_AddBoolToObject(o, "language_detection", p->language_detection);
    cJSON_AddBoolToObject(o, "speaker_labels", p->speaker_labels);
    if (p->max_speakers)
        cJSON_AddNumberToObject(o, "max_speakers", p->max_speakers);
    else
        cJSON_AddNullToObject(o, "max_speakers");
    cJSON_AddBoolToObject(o, "token", p->token != NULL);
    cJSON *other = cJSON_AddObjectToObject(o, "other");
    for (size_t i = 0; i < p->n_other; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(other, p->other[i].name);
        cJSON_AddStringToObject(other, p->other[i].name, p->other[i].value);
    }
    cJSON *ig = cJSON_AddArrayToObject(o, "ignored");
    for (size_t i = 0; i < p->n_ignored; i++)
        cJSON_AddItemToArray(ig, cJSON_CreateString(p->ignored[i]));
    return o;
}
