/* deepgram: the Deepgram live transcription adapter (wss://api.deepgram.com/v1/listen). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "json.h"
#include "provider.h"
#include "steno/status.h"

/* How each known query parameter is validated. The list follows Deepgram's
 * AsyncAPI description of /v1/listen. */
enum opt_kind {
    K_STRING,        /* any non-empty string */
    K_BOOL,          /* "true" | "false" */
    K_UINT,          /* decimal integer >= 0 */
    K_UINT_OR_FALSE, /* endpointing: milliseconds, or "false" to disable */
    K_RESERVED,      /* derived from the audio format by the engine */
    K_FALSE_ONLY,    /* a feature the engine does not support yet: only "false" */
};

struct opt_def {
    const char *key;
    enum opt_kind kind;
    int repeatable;
};

static const struct opt_def opts[] = {
    {"model", K_STRING, 0},
    {"language", K_STRING, 0},
    {"version", K_STRING, 0},
    {"interim_results", K_BOOL, 0},
    {"punctuate", K_BOOL, 0},
    {"smart_format", K_BOOL, 0},
    {"endpointing", K_UINT_OR_FALSE, 0},
    {"utterance_end_ms", K_UINT, 0},
    {"vad_events", K_BOOL, 0},
    {"keywords", K_STRING, 1},
    {"keyterm", K_STRING, 1},
    {"diarize", K_BOOL, 0},
    {"diarize_model", K_STRING, 0},
    {"numerals", K_BOOL, 0},
    {"profanity_filter", K_BOOL, 0},
    {"redact", K_STRING, 1},
    {"replace", K_STRING, 1},
    {"search", K_STRING, 1},
    {"tag", K_STRING, 1},
    {"extra", K_STRING, 1},
    {"multichannel", K_FALSE_ONLY, 0},
    {"detect_entities", K_BOOL, 0},
    {"dictation", K_BOOL, 0},
    {"mip_opt_out", K_BOOL, 0},
    {"callback", K_STRING, 0},
    {"callback_method", K_STRING, 0},
    {"encoding", K_RESERVED, 0},
    {"sample_rate", K_RESERVED, 0},
    {"channels", K_RESERVED, 0},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

static void known_list(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_OPTS && off < len; i++) {
        if (opts[i].kind == K_RESERVED)
            continue;
        int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", opts[i].key);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static int is_uint(const char *v)
{
    if (!*v || strlen(v) > 9)
        return 0;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

static int dg_check_option(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !*key) {
        snprintf(err, errlen, "a deepgram option has an empty name");
        return STENO_ERR_CONFIG;
    }
    const struct opt_def *d = find_opt(key);
    if (!d) {
        char known[600];
        known_list(known, sizeof known);
        snprintf(err, errlen, "unknown deepgram option '%s' (known options: %s)", key, known);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_RESERVED) {
        snprintf(err, errlen,
                 "deepgram option '%s' is derived from the session's audio format: set the "
                 "session config's encoding/sample_rate/channels instead",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (!value)
        return STENO_OK; /* removal */
    if (!*value) {
        snprintf(err, errlen, "deepgram option '%s' has an empty value", key);
        return STENO_ERR_CONFIG;
    }
    switch (d->kind) {
    case K_BOOL:
        if (strcmp(value, "true") && strcmp(value, "false")) {
            snprintf(err, errlen, "deepgram option '%s' must be \"true\" or \"false\", not \"%s\"",
                     key, value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_FALSE_ONLY:
        if (strcmp(value, "false")) {
            snprintf(err, errlen,
                     "deepgram option '%s' is not supported by steno yet (one transcript timeline "
                     "per session): only \"false\" is accepted",
                     key);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_UINT:
        if (!is_uint(value)) {
            snprintf(err, errlen,
                     "deepgram option '%s' must be a whole number of milliseconds, not \"%s\"", key,
                     value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_UINT_OR_FALSE:
        if (strcmp(value, "false") && !is_uint(value)) {
            snprintf(err, errlen,
                     "deepgram option '%s' must be milliseconds of silence or \"false\", not "
                     "\"%s\"",
                     key, value);
            return STENO_ERR_CONFIG;
        }
        break;
    default:
        break;
    }
    return STENO_OK;
}

static int dg_repeatable(const char *key)
{
    const struct opt_def *d = find_opt(key);
    return d && d->repeatable;
}

static int dg_check_set(const steno__opts *o, char *err, size_t errlen)
{
    return steno__opts_check_each(o, "deepgram", dg_check_option, dg_repeatable, err, errlen);
}

static int dg_build_url(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                        steno__sb *out)
{
    if (!base_url || !ap || ap->sample_rate == 0 || ap->channels == 0)
        return STENO_ERR_INVALID_ARG;
    steno__url_begin_query(out, base_url);
    steno__sb_printf(out, "encoding=linear16&sample_rate=%u&channels=%u", ap->sample_rate,
                     ap->channels);
    steno__url_append_opts(out, o, NULL);
    return steno__sb_status(out);
}

static int has_scheme(const char *cred, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncasecmp(cred, scheme, n) == 0 && cred[n] == ' ';
}

static int dg_handshake_headers(const char *credential, steno__header_fn add, void *ctx)
{
    if (!credential || !*credential)
        return STENO_OK; /* an endpoint without authentication */
    /* A header value must not smuggle in another header. */
    if (strpbrk(credential, "\r\n"))
        return STENO_ERR_CONFIG;
    char value[4096 + 16];
    if (has_scheme(credential, "Token") || has_scheme(credential, "Bearer")) {
        if (strlen(credential) >= sizeof value)
            return STENO_ERR_TOO_LARGE;
        snprintf(value, sizeof value, "%s", credential);
    } else {
        if (strlen(credential) > 4096)
            return STENO_ERR_TOO_LARGE;
        snprintf(value, sizeof value, "Token %s", credential);
    }
    int rc = add(ctx, "authorization:", value);
    steno__wipe(value, sizeof value); /* the key must not linger on the stack */
    return rc ? STENO_ERR_INTERNAL : STENO_OK;
}

/* ---- parsing ---- */

/* Words beyond this many make the message suspicious rather than useful. */
#define MAX_WORDS 100000

static int parse_words(const steno_allocator *a, const cJSON *arr, steno__msg *m)
{
    if (!arr || cJSON_IsNull(arr))
        return STENO_OK;
    if (!cJSON_IsArray(arr))
        return STENO_ERR_PARSE;
    int n = cJSON_GetArraySize(arr);
    if (n <= 0)
        return STENO_OK;
    if (n > MAX_WORDS)
        return STENO_ERR_PARSE;
    m->words = steno__calloc(a, (size_t)n, sizeof *m->words);
    if (!m->words)
        return STENO_ERR_NOMEM;
    const cJSON *w;
    size_t i = 0;
    cJSON_ArrayForEach(w, arr)
    {
        steno__pword *pw = &m->words[i];
        if (!cJSON_IsObject(w))
            return STENO_ERR_PARSE;
        pw->word = NULL;
        if (steno__json_opt_str(w, "word", &pw->word) || !pw->word)
            return STENO_ERR_PARSE;
        pw->punctuated_word = pw->word;
        if (steno__json_opt_str(w, "punctuated_word", &pw->punctuated_word))
            return STENO_ERR_PARSE;
        if (steno__json_req_num(w, "start", &pw->start) || steno__json_req_num(w, "end", &pw->end))
            return STENO_ERR_PARSE;
        if (pw->end < pw->start)
            pw->end = pw->start;
        pw->confidence = 0;
        if (steno__json_opt_num(w, "confidence", &pw->confidence))
            return STENO_ERR_PARSE;
        double spk = -1;
        if (steno__json_opt_num(w, "speaker", &spk))
            return STENO_ERR_PARSE;
        pw->speaker = (spk >= 0 && spk < 1e6) ? (int)spk : -1;
        i++;
        m->n_words = i;
    }
    return STENO_OK;
}

static int parse_results(const steno_allocator *a, const cJSON *root, steno__msg *m)
{
    m->type = STENO__MSG_RESULTS;
    if (steno__json_opt_bool(root, "is_final", &m->is_final) ||
        steno__json_opt_bool(root, "speech_final", &m->speech_final) ||
        steno__json_opt_bool(root, "from_finalize", &m->from_finalize))
        return STENO_ERR_PARSE;
    if (steno__json_req_num(root, "start", &m->start) ||
        steno__json_req_num(root, "duration", &m->duration))
        return STENO_ERR_PARSE;
    if (m->duration < 0)
        return STENO_ERR_PARSE;
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(root, "channel_index");
    if (ci && !cJSON_IsNull(ci)) {
        if (!cJSON_IsArray(ci))
            return STENO_ERR_PARSE;
        const cJSON *c0 = cJSON_GetArrayItem(ci, 0);
        if (c0) {
            if (!cJSON_IsNumber(c0) || !isfinite(c0->valuedouble))
                return STENO_ERR_PARSE;
            m->channel =
                (c0->valuedouble >= 0 && c0->valuedouble < 1024) ? (int)c0->valuedouble : 0;
        }
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "channel");
    if (!cJSON_IsObject(ch))
        return STENO_ERR_PARSE;
    const cJSON *alts = cJSON_GetObjectItemCaseSensitive(ch, "alternatives");
    if (!cJSON_IsArray(alts))
        return STENO_ERR_PARSE;
    m->transcript = "";
    const cJSON *alt = cJSON_GetArrayItem(alts, 0);
    if (!alt)
        return STENO_OK; /* no hypothesis: an empty result over [start, start+duration] */
    if (!cJSON_IsObject(alt))
        return STENO_ERR_PARSE;
    if (steno__json_opt_str(alt, "transcript", &m->transcript) ||
        steno__json_opt_num(alt, "confidence", &m->confidence))
        return STENO_ERR_PARSE;
    return parse_words(a, cJSON_GetObjectItemCaseSensitive(alt, "words"), m);
}

static int dg_parse(const steno_allocator *a, void *conn, const char *text, size_t len,
                    steno__msg *m)
{
    (void)conn; /* stateless: every Results message carries its own span */
    cJSON *root = NULL;
    int brc = steno__msg_begin(a, text, len, m, &root);
    if (brc != STENO_OK)
        return brc;
    int rc = STENO_ERR_PARSE;
    const char *type = NULL;
    if (steno__json_opt_str(root, "type", &type) || !type)
        goto fail;
    if (strcmp(type, "Results") == 0) {
        rc = parse_results(a, root, m);
    } else if (strcmp(type, "UtteranceEnd") == 0) {
        m->type = STENO__MSG_UTTERANCE_END;
        rc = steno__json_req_num(root, "last_word_end", &m->last_word_end) ? STENO_ERR_PARSE
                                                                           : STENO_OK;
    } else if (strcmp(type, "SpeechStarted") == 0) {
        m->type = STENO__MSG_SPEECH_STARTED;
        rc = steno__json_req_num(root, "timestamp", &m->timestamp) ? STENO_ERR_PARSE : STENO_OK;
    } else if (strcmp(type, "Metadata") == 0) {
        m->type = STENO__MSG_METADATA;
        m->request_id = "";
        rc = (steno__json_opt_str(root, "request_id", &m->request_id) ||
              steno__json_opt_num(root, "duration", &m->meta_duration))
                 ? STENO_ERR_PARSE
                 : STENO_OK;
        if (!rc)
            rc = steno__msg_keep_raw(a, text, len, m);
    } else if (strcmp(type, "Error") == 0) {
        m->type = STENO__MSG_ERROR;
        m->error_code = "";
        m->error_message = "";
        /* Deepgram has used several spellings over time; take what is there. */
        if (steno__json_opt_str(root, "err_code", &m->error_code) ||
            steno__json_opt_str(root, "variant", &m->error_code) ||
            steno__json_opt_str(root, "code", &m->error_code) ||
            steno__json_opt_str(root, "err_msg", &m->error_message) ||
            steno__json_opt_str(root, "message", &m->error_message) ||
            steno__json_opt_str(root, "description", &m->error_message))
            rc = STENO_ERR_PARSE;
        else
            rc = STENO_OK;
    } else {
        m->type = STENO__MSG_IGNORED;
        rc = STENO_OK;
    }
    if (rc == STENO_OK)
        return STENO_OK;
fail:
    return steno__msg_fail(m, rc);
}

const steno__provider steno__deepgram = {
    .name = "deepgram",
    .default_url = "wss://api.deepgram.com/v1/listen",
    /* Deepgram accepts up to 1.25x real time, measured from the first audio frame of a
     * connection, with some burst; keep 200 ms of the burst as margin for network jitter. */
    .speed_permille = 1250,
    .burst_ms = 1800,
    .error_header = "dg-error:",
    .request_id_header = "dg-request-id:",
    .keepalive_text = "{\"type\":\"KeepAlive\"}",
    .finalize_text = "{\"type\":\"Finalize\"}",
    .close_text = "{\"type\":\"CloseStream\"}",
    /* Finalize's answer says so (from_finalize), and CloseStream flushes every final. */
    .finalize_answer = STENO__FIN_ANSWER_FLAGGED,
    .finalize_before_close = 0,
    .min_chunk_ms = 0,
    .max_chunk_ms = 0,
    .check_option = dg_check_option,
    .check_set = dg_check_set,
    .build_url = dg_build_url,
    .handshake_headers = dg_handshake_headers,
    .credential_query = NULL, /* keys and tokens both go in Authorization */
    .initial_message = NULL,
    .frame_audio = NULL,
    .configure_message = NULL,
    .parse = dg_parse,
};
