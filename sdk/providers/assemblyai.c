/* assemblyai: the AssemblyAI Universal Streaming v3 adapter (wss://streaming.assemblyai.com/v3/ws).
 *
 * Follows specs/assemblyai/usm-streaming.yml and streaming-token.yml of AssemblyAI's
 * assemblyai-api-spec repository at commit 3fcf678dc009e6331077ddef1d829acb6e4611fb, and the
 * protocol notes beside them. Where those call a behaviour unconfirmed, the choice made here is
 * the safe one and the comment at the place says so.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json.h"
#include "provider.h"
#include "steno/status.h"

#define DEFAULT_MODEL "universal-streaming-english"

enum opt_kind {
    K_MODEL,    /* one of the speech models */
    K_BOOL,     /* "true" | "false" (the spec's spelling; other cases are unconfirmed) */
    K_UNIT,     /* a number in [0, 1] */
    K_MS,       /* whole milliseconds */
    K_RANGE,    /* a whole number in [lo, hi] */
    K_JSON_STR, /* a JSON array of strings (keyterms_prompt, one parameter, as the docs send it) */
    K_STRING,   /* any non-empty string */
    K_RESERVED, /* derived by the engine: audio format, credential */
};

struct opt_def {
    const char *key;
    enum opt_kind kind;
    unsigned lo, hi;
    int live; /* UpdateConfiguration may change it */
};

static const struct opt_def opts[] = {
    {"speech_model", K_MODEL, 0, 0, 0},
    {"format_turns", K_BOOL, 0, 0, 0},
    {"end_of_turn_confidence_threshold", K_UNIT, 0, 0, 1},
    {"min_turn_silence", K_MS, 0, 0, 1},
    {"max_turn_silence", K_MS, 0, 0, 1},
    {"vad_threshold", K_UNIT, 0, 0, 0},
    {"inactivity_timeout", K_RANGE, 5, 3600, 0},
    {"keyterms_prompt", K_JSON_STR, 0, 0, 1},
    {"prompt", K_STRING, 0, 0, 1},
    {"language_detection", K_BOOL, 0, 0, 0},
    {"speaker_labels", K_BOOL, 0, 0, 0},
    {"max_speakers", K_RANGE, 1, 10, 0},
    {"language", K_STRING, 0, 0, 0},
    {"sample_rate", K_RESERVED, 0, 0, 0},
    {"encoding", K_RESERVED, 0, 0, 0},
    {"token", K_RESERVED, 0, 0, 0},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static const char *const models[] = {"universal-streaming-english",
                                     "universal-streaming-multilingual", "whisper-rt", "u3-rt-pro"};

static const struct opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

static int is_uint(const char *v, unsigned long *out)
{
    if (!*v || strlen(v) > 9)
        return 0;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    *out = strtoul(v, NULL, 10);
    return 1;
}

static int is_unit(const char *v)
{
    char *end = NULL;
    double d = strtod(v, &end);
    return end && end != v && !*end && isfinite(d) && d >= 0 && d <= 1;
}

static int is_string_array(const char *v)
{
    cJSON *j = cJSON_Parse(v);
    int ok = cJSON_IsArray(j);
    const cJSON *e;
    cJSON_ArrayForEach(e, j) if (!cJSON_IsString(e)) ok = 0;
    cJSON_Delete(j);
    return ok;
}

static int aai_check_option(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !*key) {
        snprintf(err, errlen, "an assemblyai option has an empty name");
        return STENO_ERR_CONFIG;
    }
    const struct opt_def *d = find_opt(key);
    if (!d) {
        char known[600];
        size_t off = 0;
        known[0] = '\0';
        for (size_t i = 0; i < N_OPTS && off < sizeof known; i++) {
            if (opts[i].kind == K_RESERVED)
                continue;
            int n = snprintf(known + off, sizeof known - off, "%s%s", off ? ", " : "", opts[i].key);
            if (n < 0)
                break;
            off += (size_t)n;
        }
        snprintf(err, errlen, "unknown assemblyai option '%s' (known options: %s)", key, known);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_RESERVED) {
        snprintf(err, errlen,
                 "assemblyai option '%s' is set by steno: the audio format comes from the "
                 "session config's sample_rate/encoding, a temporary token from token_cb "
                 "(\"Bearer <token>\")",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (!value)
        return STENO_OK; /* removal */
    if (!*value) {
        snprintf(err, errlen, "assemblyai option '%s' has an empty value", key);
        return STENO_ERR_CONFIG;
    }
    unsigned long n = 0;
    switch (d->kind) {
    case K_MODEL:
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
            if (strcmp(value, models[i]) == 0)
                return STENO_OK;
        snprintf(err, errlen,
                 "assemblyai option 'speech_model' must be universal-streaming-english, "
                 "universal-streaming-multilingual, whisper-rt or u3-rt-pro, not \"%s\"",
                 value);
        return STENO_ERR_CONFIG;
    case K_BOOL:
        if (strcmp(value, "true") && strcmp(value, "false")) {
            snprintf(err, errlen,
                     "assemblyai option '%s' must be \"true\" or \"false\", not \"%s\"", key,
                     value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_UNIT:
        if (!is_unit(value)) {
            snprintf(err, errlen, "assemblyai option '%s' must be a number from 0 to 1, not \"%s\"",
                     key, value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_MS:
        if (!is_uint(value, &n)) {
            snprintf(err, errlen,
                     "assemblyai option '%s' must be a whole number of milliseconds, not \"%s\"",
                     key, value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_RANGE:
        if (!is_uint(value, &n) || n < d->lo || n > d->hi) {
            snprintf(err, errlen,
                     "assemblyai option '%s' must be a whole number from %u to %u, "
                     "not \"%s\"",
                     key, d->lo, d->hi, value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_JSON_STR:
        if (!is_string_array(value)) {
            snprintf(err, errlen,
                     "assemblyai option '%s' must be a JSON array of strings, e.g. "
                     "[\"steno\",\"AssemblyAI\"]",
                     key);
            return STENO_ERR_CONFIG;
        }
        break;
    default:
        break;
    }
    return STENO_OK;
}

static int aai_check_set(const steno__opts *o, char *err, size_t errlen)
{
    /* Whether a repeated parameter is accepted is unconfirmed: every key is given once. */
    return steno__opts_check_each(o, "assemblyai", aai_check_option, NULL, err, errlen);
}

static int aai_build_url(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                         steno__sb *out)
{
    if (!base_url || !ap || ap->sample_rate == 0)
        return STENO_ERR_INVALID_ARG;
    /* One channel per session: the docs' advice for multichannel audio is one session each. */
    if (ap->channels != 1 || ap->encoding != STENO_ENCODING_LINEAR16)
        return STENO_ERR_FORMAT;
    steno__url_begin_query(out, base_url);
    const char *model = o ? steno__opts_get(o, "speech_model") : NULL;
    /* speech_model is always sent: the spec leaves it required, the docs call English the
     * default. */
    steno__sb_printf(out, "sample_rate=%u&encoding=pcm_s16le&speech_model=", ap->sample_rate);
    steno__sb_append_escaped(out, model ? model : DEFAULT_MODEL);
    steno__url_append_opts(out, o, "speech_model");
    return steno__sb_status(out);
}

/* The raw key in Authorization, with no scheme (the vendor's SDK sends it so); a temporary
 * token as token= in the query. */
static int aai_handshake_headers(const char *credential, steno__header_fn add, void *ctx)
{
    return steno__key_header(credential, "authorization:", add, ctx);
}

/* 1 when key has the same value (or is absent) in both sets. */
static int same_value(const steno__opts *a, const steno__opts *b, const char *key)
{
    const char *x = steno__opts_get(a, key), *y = steno__opts_get(b, key);
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* UpdateConfiguration with every live setting of next. A change to anything else (the model,
 * formatting, the language...) is fixed at setup, and a live setting removed has no "back to
 * the default" in the message: both need a new connection (STENO_ERR_UNSUPPORTED). */
static int aai_configure_message(const steno__opts *old, const steno__opts *o, steno__sb *out)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (same_value(old, o, opts[i].key))
            continue;
        if (!opts[i].live || !steno__opts_get(o, opts[i].key))
            return STENO_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; o && i < o->n; i++)
        if (!find_opt(o->v[i].key))
            return STENO_ERR_UNSUPPORTED; /* validated sets hold known keys only */
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "type", "UpdateConfiguration")) {
        cJSON_Delete(j);
        return STENO_ERR_NOMEM;
    }
    int rc = STENO_OK;
    for (size_t i = 0; o && i < o->n && rc == STENO_OK; i++) {
        const struct opt_def *d = find_opt(o->v[i].key);
        if (!d || !d->live)
            continue;
        cJSON *v = NULL;
        if (d->kind == K_JSON_STR)
            v = cJSON_Parse(o->v[i].value);
        else if (d->kind == K_STRING)
            v = cJSON_CreateString(o->v[i].value);
        else
            v = cJSON_CreateNumber(strtod(o->v[i].value, NULL));
        if (!v || !cJSON_AddItemToObject(j, d->key, v)) {
            cJSON_Delete(v);
            rc = STENO_ERR_NOMEM;
        }
    }
    char *s = rc == STENO_OK ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (rc == STENO_OK && !s)
        rc = STENO_ERR_NOMEM;
    if (s) {
        steno__sb_puts(out, s);
        free(s);
        rc = steno__sb_status(out);
    }
    return rc;
}

/* ---- parsing ---- */

/* A time in ms: present, finite, not negative, and not absurd (past ~1000 years). */
static int req_ms(const cJSON *o, const char *name, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < 0 ||
        j->valuedouble > 3.2e13)
        return -1;
    *out = j->valuedouble / 1000.0;
    return 0;
}

#define MAX_WORDS 100000

/*
 * A Turn: interim while end_of_turn is false, final when true. Its span runs from its first
 * word's start to its last word's end (ms on this connection -> seconds); a Turn without
 * words spans nothing. An interim's text is all its words (the transcript field holds only
 * the final ones); a final's is the transcript field, formatted when format_turns is on.
 */
static int parse_turn(const steno_allocator *a, const cJSON *root, steno__msg *m)
{
    m->type = STENO__MSG_RESULTS;
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(root, "turn_order");
    if (!cJSON_IsNumber(order) || !isfinite(order->valuedouble) || order->valuedouble < 0)
        return STENO_ERR_PARSE;
    if (steno__json_req_bool(root, "end_of_turn", &m->is_final))
        return STENO_ERR_PARSE;
    m->speech_final = m->is_final;
    m->transcript = "";
    if (steno__json_opt_str(root, "transcript", &m->transcript) || !m->transcript)
        return STENO_ERR_PARSE;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "words");
    if (!cJSON_IsArray(arr))
        return STENO_ERR_PARSE;
    int n = cJSON_GetArraySize(arr);
    if (n > MAX_WORDS)
        return STENO_ERR_PARSE;
    if (n > 0) {
        m->words = steno__calloc(a, (size_t)n, sizeof *m->words);
        if (!m->words)
            return STENO_ERR_NOMEM;
    }
    const cJSON *w;
    size_t text_len = 0;
    double conf_sum = 0, prev_start = 0;
    cJSON_ArrayForEach(w, arr)
    {
        steno__pword *pw = &m->words[m->n_words];
        if (!cJSON_IsObject(w))
            return STENO_ERR_PARSE;
        pw->word = NULL;
        if (steno__json_opt_str(w, "text", &pw->word) || !pw->word)
            return STENO_ERR_PARSE;
        pw->punctuated_word = pw->word;
        if (req_ms(w, "start", &pw->start) || req_ms(w, "end", &pw->end))
            return STENO_ERR_PARSE;
        if (pw->end < pw->start || pw->start < prev_start)
            return STENO_ERR_PARSE; /* words out of order cannot be mapped onto a timeline */
        prev_start = pw->start;
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(w, "word_is_final");
        if (fin && !cJSON_IsNull(fin) && !cJSON_IsBool(fin))
            return STENO_ERR_PARSE;
        pw->confidence = 0;
        if (steno__json_opt_num(w, "confidence", &pw->confidence))
            return STENO_ERR_PARSE;
        pw->speaker = -1;
        conf_sum += pw->confidence;
        text_len += strlen(pw->word) + 1;
        m->n_words++;
    }
    if (m->n_words) {
        m->start = m->words[0].start;
        m->duration = m->words[m->n_words - 1].end - m->start;
        if (m->duration < 0)
            return STENO_ERR_PARSE;
        m->confidence = conf_sum / (double)m->n_words;
    }
    if (!m->is_final && m->n_words) {
        m->raw_ = steno__alloc(a, text_len);
        if (!m->raw_)
            return STENO_ERR_NOMEM;
        size_t at = 0;
        for (size_t i = 0; i < m->n_words; i++) {
            size_t k = strlen(m->words[i].word);
            if (i)
                m->raw_[at++] = ' ';
            memcpy(m->raw_ + at, m->words[i].word, k);
            at += k;
        }
        m->raw_[at] = '\0';
        m->transcript = m->raw_;
    }
    return STENO_OK;
}

/* Per connection: the session's expiry from Begin, handed on as a GO_AWAY after the Begin's
 * METADATA, so that the engine moves to a new connection shortly before the 3 h limit instead
 * of being cut off by close 3008. */
typedef struct aai_conn {
    double expires_at; /* unix seconds; 0: none pending */
} aai_conn;

static void *aai_conn_new(const steno_allocator *a, void *sess, const steno__audio_params *ap,
                          const steno__opts *o, int backfill)
{
    (void)sess, (void)ap, (void)o, (void)backfill;
    return steno__calloc(a, 1, sizeof(aai_conn));
}

static void aai_conn_free(const steno_allocator *a, void *conn)
{
    steno__free(a, conn);
}

static int aai_next_message(const steno_allocator *a, void *conn, steno__msg *m)
{
    aai_conn *c = conn;
    if (!c || !(c->expires_at > 0))
        return 0;
    memset(m, 0, sizeof *m);
    m->a_ = a;
    m->type = STENO__MSG_GO_AWAY;
    m->time_left_s = -1;
    m->expires_unix_s = c->expires_at;
    c->expires_at = 0;
    return 1;
}

static int aai_parse(const steno_allocator *a, void *conn, const char *text, size_t len,
                     steno__msg *m)
{
    cJSON *root = NULL;
    int brc = steno__msg_begin(a, text, len, m, &root);
    if (brc != STENO_OK)
        return brc;
    int rc = STENO_ERR_PARSE;
    const char *type = NULL;
    if (steno__json_opt_str(root, "type", &type))
        goto fail;
    if (!type) {
        /* {"error": "...", "error_code": n}: the vendor's SDK reads this as an error; the
         * spec defines no such message (unconfirmed), so only this exact shape counts. */
        const char *e = NULL;
        double code = 0;
        if (steno__json_opt_str(root, "error", &e) || !e ||
            steno__json_opt_num(root, "error_code", &code))
            goto fail;
        m->type = STENO__MSG_ERROR;
        m->error_message = e;
        m->error_code = "";
        if (cJSON_GetObjectItemCaseSensitive(root, "error_code")) {
            m->raw_ = steno__alloc(a, 24);
            if (!m->raw_) {
                rc = STENO_ERR_NOMEM;
                goto fail;
            }
            snprintf(m->raw_, 24, "%.0f", code);
            m->error_code = m->raw_;
        }
        return STENO_OK;
    }
    if (strcmp(type, "Turn") == 0) {
        rc = parse_turn(a, root, m);
    } else if (strcmp(type, "Begin") == 0) {
        /* The session id is the request id of this connection. */
        m->type = STENO__MSG_METADATA;
        m->request_id = NULL;
        double exp = 0;
        if (steno__json_opt_str(root, "id", &m->request_id) || !m->request_id ||
            steno__json_opt_num(root, "expires_at", &exp) || !isfinite(exp))
            goto fail;
        rc = steno__msg_keep_raw(a, text, len, m);
        if (rc == STENO_OK && conn && exp > 0)
            ((aai_conn *)conn)->expires_at = exp;
    } else if (strcmp(type, "Termination") == 0) {
        m->type = STENO__MSG_METADATA;
        m->request_id = "";
        if (steno__json_opt_num(root, "audio_duration_seconds", &m->meta_duration) ||
            m->meta_duration < 0)
            goto fail;
        rc = steno__msg_keep_raw(a, text, len, m);
    } else if (strcmp(type, "SpeechStarted") == 0) {
        m->type = STENO__MSG_SPEECH_STARTED;
        rc = req_ms(root, "timestamp", &m->timestamp) ? STENO_ERR_PARSE : STENO_OK;
    } else {
        m->type = STENO__MSG_IGNORED; /* Warning, Heartbeat, ...: nothing the engine needs */
        rc = STENO_OK;
    }
    if (rc == STENO_OK)
        return STENO_OK;
fail:
    return steno__msg_fail(m, rc);
}

const steno__provider steno__assemblyai = {
    .name = "assemblyai",
    .default_url = "wss://streaming.assemblyai.com/v3/ws",
    /* No audio faster than real time (close 3007); the tolerated burst is undocumented. 1 s
     * of burst (one largest frame) keeps 0.5 s of margin under steno-server's 1.5 s. */
    .speed_permille = 1000,
    .burst_ms = 1000,
    .error_header = NULL,
    .request_id_header = NULL,
    /* The spec has no keepalive; the vendor's SDK sends {"type":"KeepAlive"}, but an unknown
     * message may close the session with 3006 (unconfirmed): none is sent. Without
     * inactivity_timeout the spec says no idle timeout applies. */
    .keepalive_text = NULL,
    .finalize_text = "{\"type\":\"ForceEndpoint\"}",
    .close_text = "{\"type\":\"Terminate\"}",
    /* ForceEndpoint's answer is an ordinary end-of-turn Turn (nothing marks it), and whether
     * Terminate flushes every Turn before Termination is unconfirmed: ForceEndpoint first. */
    .finalize_answer = STENO__FIN_ANSWER_NEXT_FINAL,
    .finalize_before_close = 1,
    .unasked_finals = 1,
    .min_chunk_ms = 50,
    .max_chunk_ms = 1000,
    .check_option = aai_check_option,
    .check_set = aai_check_set,
    .build_url = aai_build_url,
    .handshake_headers = aai_handshake_headers,
    .credential_query = steno__token_query,
    .conn_new = aai_conn_new,
    .conn_free = aai_conn_free,
    .initial_message = NULL,
    .frame_audio = NULL,
    .configure_message = aai_configure_message,
    .parse = aai_parse,
    .next_message = aai_next_message,
};
