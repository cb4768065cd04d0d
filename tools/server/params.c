/* params: parses and validates Deepgram /v1/listen query parameters. */
#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 200
#define MAX_ITEM_LEN 256

static const char *const models[] = {"nova-3",
                                     "nova-3-general",
                                     "nova-3-medical",
                                     "nova-2",
                                     "nova-2-general",
                                     "nova-2-meeting",
                                     "nova-2-finance",
                                     "nova-2-conversationalai",
                                     "nova-2-voicemail",
                                     "nova-2-video",
                                     "nova-2-medical",
                                     "nova-2-drivethru",
                                     "nova-2-automotive",
                                     "nova",
                                     "nova-general",
                                     "nova-phonecall",
                                     "nova-medical",
                                     "enhanced",
                                     "enhanced-general",
                                     "enhanced-meeting",
                                     "enhanced-phonecall",
                                     "enhanced-finance",
                                     "base",
                                     "meeting",
                                     "phonecall",
                                     "finance",
                                     "conversationalai",
                                     "voicemail",
                                     "video",
                                     "custom",
                                     NULL};

static const char *const encodings[] = {"linear16", "linear32", "flac",   "alaw",
                                        "mulaw",    "amr-nb",   "amr-wb", "opus",
                                        "ogg-opus", "speex",    "g729",   NULL};

static const char *const booleans[] = {"true", "false", NULL};

/* The other parameters of the /v1/listen binding in Deepgram's spec, with the
 * values its schema allows (NULL: any value). */
typedef struct spec_param {
    const char *name;
    const char *const *values;
    int repeatable;
} spec_param;

static const char *const callback_methods[] = {"POST", "GET", "PUT", "DELETE", NULL};
static const char *const diarize_models[] = {"latest", "v1", NULL};
static const char *const redact_values[] = {"true", "false", "pci", "numbers", "aggressive_numbers",
                                            "ssn",  NULL};

static const spec_param spec_params[] = {
    {"callback", NULL, 0},
    {"callback_method", callback_methods, 0},
    {"detect_entities", booleans, 0},
    {"diarize", booleans, 0},
    {"diarize_model", diarize_models, 0},
    {"dictation", booleans, 0},
    {"extra", NULL, 1},
    {"mip_opt_out", booleans, 0},
    {"multichannel", booleans, 0},
    {"numerals", booleans, 0},
    {"profanity_filter", booleans, 0},
    {"redact", redact_values, 1},
    {"replace", NULL, 1},
    {"search", NULL, 1},
    {"tag", NULL, 1},
    {"version", NULL, 0},
    {NULL, NULL, 0},
};

/* Parameters this module interprets itself; duplicates of these are errors. */
static const char *const core_names[] = {
    "model",     "language",     "encoding",    "sample_rate",      "channels",   "interim_results",
    "punctuate", "smart_format", "endpointing", "utterance_end_ms", "vad_events", NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int in_list(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(v, *list))
            return 1;
    return 0;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    if (!*v || !(isdigit((unsigned char)*v) || *v == '-'))
        return -1;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int parse_bool(const char *name, const char *v, int *out, char *err, size_t errlen)
{
    if (!strcmp(v, "true"))
        *out = 1;
    else if (!strcmp(v, "false"))
        *out = 0;
    else
        return fail(err, errlen, "Invalid value for '%s': '%s' (expected true or false)", name, v);
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

static int push_kv(srv_params *p, const char *name, const char *value)
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

static int valid_language(const char *v)
{
    size_t n = strlen(v);
    if (n < 2 || n >= 40)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '-')
            return 0;
    return isalpha((unsigned char)v[0]);
}

static int valid_keyword(const char *v)
{
    /* "word" or "word:boost" with a numeric boost. */
    const char *colon = strrchr(v, ':');
    if (!*v || colon == v)
        return 0;
    if (colon) {
        char *end;
        errno = 0;
        double b = strtod(colon + 1, &end);
        if (errno || *end || colon[1] == 0 || b < -100.0 || b > 100.0)
            return 0;
    }
    return 1;
}

static int apply(srv_params *p, const char *name, const char *v, const srv_params_rules *rules,
                 char *err, size_t errlen)
{
    long n;
    if (!strcmp(name, "model")) {
        if (!in_list(v, models))
            return fail(err, errlen, "No such model/language/tier combination found: model '%s'",
                        v);
        snprintf(p->model, sizeof(p->model), "%s", v);
    } else if (!strcmp(name, "language")) {
        if (!valid_language(v))
            return fail(err, errlen, "Invalid value for 'language': '%s'", v);
        snprintf(p->language, sizeof(p->language), "%s", v);
    } else if (!strcmp(name, "encoding")) {
        if (!in_list(v, encodings))
            return fail(err, errlen, "Invalid value for 'encoding': '%s'", v);
        snprintf(p->encoding, sizeof(p->encoding), "%s", v);
    } else if (!strcmp(name, "sample_rate")) {
        if (parse_int(v, 8000, 48000, &n))
            return fail(err, errlen, "Invalid value for 'sample_rate': '%s' (expected 8000..48000)",
                        v);
        p->sample_rate = (int)n;
    } else if (!strcmp(name, "channels")) {
        if (parse_int(v, 1, 64, &n))
            return fail(err, errlen, "Invalid value for 'channels': '%s'", v);
        p->channels = (int)n;
    } else if (!strcmp(name, "interim_results")) {
        return parse_bool(name, v, &p->interim_results, err, errlen);
    } else if (!strcmp(name, "punctuate")) {
        return parse_bool(name, v, &p->punctuate, err, errlen);
    } else if (!strcmp(name, "smart_format")) {
        return parse_bool(name, v, &p->smart_format, err, errlen);
    } else if (!strcmp(name, "vad_events")) {
        return parse_bool(name, v, &p->vad_events, err, errlen);
    } else if (!strcmp(name, "endpointing")) {
        if (!strcmp(v, "false"))
            p->endpointing_ms = -1;
        else if (!strcmp(v, "true"))
            p->endpointing_ms = 10;
        else if (!parse_int(v, 0, 60000, &n))
            p->endpointing_ms = (int)n;
        else
            return fail(err, errlen,
                        "Invalid value for 'endpointing': '%s' (expected false or 0..60000 ms)", v);
    } else if (!strcmp(name, "utterance_end_ms")) {
        if (parse_int(v, 1000, 60000, &n))
            return fail(err, errlen,
                        "Invalid value for 'utterance_end_ms': '%s' (expected 1000..60000)", v);
        p->utterance_end_ms = (int)n;
    } else if (!strcmp(name, "keywords") || !strcmp(name, "keyterm")) {
        int kw = name[3] == 'w';
        if (!*v || strlen(v) > MAX_ITEM_LEN || (kw && !valid_keyword(v)))
            return fail(err, errlen, "Invalid value for '%s': '%s'", name, v);
        if ((kw ? p->n_keywords : p->n_keyterm) >= MAX_LIST)
            return fail(err, errlen, "Too many '%s' values (at most %d)", name, MAX_LIST);
        if (kw ? push(&p->keywords, &p->n_keywords, v) : push(&p->keyterm, &p->n_keyterm, v))
            return fail(err, errlen, "out of memory");
    } else {
        const spec_param *sp = spec_params;
        while (sp->name && strcmp(sp->name, name))
            sp++;
        if (!sp->name) {
            if (rules->strict)
                return fail(err, errlen, "Unknown query parameter '%s'", name);
            if (push(&p->ignored, &p->n_ignored, name))
                return fail(err, errlen, "out of memory");
        } else if (sp->values && !in_list(v, sp->values)) {
            return fail(err, errlen, "Invalid value for '%s': '%s'", name, v);
        }
        if (p->n_other >= MAX_LIST)
            return fail(err, errlen, "Too many query parameters");
        if (push_kv(p, name, v))
            return fail(err, errlen, "out of memory");
    }
    return 0;
}

int srv_params_parse(srv_params *p, const char *const *args, size_t nargs,
                     const srv_params_rules *rules, char *err, size_t errlen)
{
    unsigned seen = 0; /* bit i: core_names[i] already given */

    memset(p, 0, sizeof(*p));
    snprintf(p->model, sizeof(p->model), "base");
    snprintf(p->language, sizeof(p->language), "en");
    p->channels = 1;
    p->endpointing_ms = 10;

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
        for (int k = 0; core_names[k]; k++) {
            if (!strcmp(name, core_names[k])) {
                if (seen & (1u << k))
                    return fail(err, errlen, "Duplicate query parameter '%s'", name);
                seen |= 1u << k;
            }
        }
        if (apply(p, name, v, rules, err, errlen))
            return -1;
    }

    if (!p->encoding[0])
        return fail(err, errlen,
                    "Missing 'encoding': this server accepts raw audio only (encoding=linear16)");
    if (strcmp(p->encoding, "linear16"))
        return fail(err, errlen, "Unsupported encoding '%s': this server accepts linear16 only",
                    p->encoding);
    if (!p->sample_rate)
        return fail(err, errlen, "Missing 'sample_rate': required with encoding=linear16");
    if (p->channels != 1)
        return fail(err, errlen, "Unsupported 'channels': %d (this server accepts 1)", p->channels);
    if (p->utterance_end_ms && !p->interim_results)
        return fail(err, errlen, "'utterance_end_ms' requires 'interim_results=true'");
    int nova3 = !strncmp(p->model, "nova-3", 6);
    if (p->n_keywords && nova3)
        return fail(err, errlen, "Keywords are not supported for Nova-3; use keyterm instead");
    if (p->n_keyterm && !nova3)
        return fail(err, errlen, "Keyterm prompting is only supported for Nova-3 models");
    if (rules->english_only && strcmp(p->language, "en") && strncmp(p->language, "en-", 3))
        return fail(err, errlen, "No such model/language/tier combination found: language '%s'",
                    p->language);
    return 0;
}

void srv_params_free(srv_params *p)
{
    for (size_t i = 0; i < p->n_keywords; i++)
        free(p->keywords[i]);
    for (size_t i = 0; i < p->n_keyterm; i++)
        free(p->keyterm[i]);
    for (size_t i = 0; i < p->n_other; i++) {
        free(p->other[i].name);
        free(p->other[i].value);
    }
    for (size_t i = 0; i < p->n_ignored; i++)
        free(p->ignored[i]);
    free(p->keywords);
    free(p->keyterm);
    free(p->other);
    free(p->ignored);
    memset(p, 0, sizeof(*p));
}
