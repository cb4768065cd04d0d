/* elevenlabs: the ElevenLabs realtime speech-to-text adapter (Scribe v2 Realtime,
 * wss://api.elevenlabs.io/v1/speech-to-text/realtime).
 *
 * Follows scribe.asyncapi.yaml of ElevenLabs' elevenlabs/packages repository
 * (packages/types/schemas/) at commit 2a9057eec7d18709306e3831385fc6e300f18b41, and the
 * protocol notes kept beside it. Where those call a behaviour unconfirmed, the choice made here
 * is the safe one and the comment at the place says so.
 *
 * What acknowledges audio: a committed transcript covers all audio sent before the commit.
 * The session is opened with commit_strategy=manual, so the only commits are the engine's own
 * (finalize_text, a chunk with "commit": true) and the answers come in their order
 * (STENO__FIN_ANSWER_NEXT_FINAL: the engine credits an answer with its words' span, or with all
 * audio sent before the commit when it has no words or answers the flush before the close).
 * With VAD commits the server would choose the commit points, and a VAD commit arriving after
 * a flush was asked for could not be told apart from the flush's answer: manual is the
 * stronger guarantee.
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

#define DEFAULT_MODEL "scribe_v2_realtime"
/* The rate of finalize_text's and close_text's sample_rate (see build_url). */
#define FIXED_RATE 16000
#define MAX_REPEATS 50 /* keyterms, secondary_languages, entity_detection (the SDKs' limit) */
#define MAX_KEYTERM 20 /* characters per keyterm (the JS SDK's doc comment) */
#define MAX_WORDS 100000
#define COMMIT_OVERLAP_S 0.01 /* rounding a committed word's start may undercut the last end */

enum opt_kind {
    K_STRING,   /* any non-empty string */
    K_BOOL,     /* "true" | "false" */
    K_LIST,     /* a repeatable string */
    K_RESERVED, /* set by steno */
};

struct opt_def {
    const char *key;
    enum opt_kind kind;
    const char *why; /* K_RESERVED: what sets it */
};

static const struct opt_def opts[] = {
    {"model_id", K_STRING, NULL},
    {"language_code", K_STRING, NULL},
    {"include_timestamps", K_BOOL, NULL},
    {"include_language_detection", K_BOOL, NULL},
    {"no_verbatim", K_BOOL, NULL},
    {"filter_background_audio", K_BOOL, NULL},
    {"enable_logging", K_BOOL, NULL},
    {"keyterms", K_LIST, NULL},
    {"secondary_languages", K_LIST, NULL},
    {"entity_detection", K_LIST, NULL},
    {"audio_format", K_RESERVED, "the audio format comes from the session config"},
    {"token", K_RESERVED, "a single-use token comes from token_cb as \"Bearer <token>\""},
    {"commit_strategy", K_RESERVED,
     "steno commits manually: each commit's answer then covers exactly the audio before it"},
    {"vad_silence_threshold_secs", K_RESERVED, "steno commits manually (no VAD commits)"},
    {"vad_threshold", K_RESERVED, "steno commits manually (no VAD commits)"},
    {"min_speech_duration_ms", K_RESERVED, "steno commits manually (no VAD commits)"},
    {"min_silence_duration_ms", K_RESERVED, "steno commits manually (no VAD commits)"},
};

#define N_OPTS (sizeof opts / sizeof opts[0])
/* The keys an app may set, in the table's order, for the unknown-option message. */
#define KNOWN_OPTIONS                                                                              \
    "model_id, language_code, include_timestamps, include_language_detection, no_verbatim, "       \
    "filter_background_audio, enable_logging, keyterms, secondary_languages, entity_detection"

static const struct opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

static int el_check_option(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !*key) {
        snprintf(err, errlen, "an elevenlabs option has an empty name");
        return STENO_ERR_CONFIG;
    }
    const struct opt_def *d = find_opt(key);
    if (!d) {
        snprintf(err, errlen, "unknown elevenlabs option '%s' (known options: %s)", key,
                 KNOWN_OPTIONS);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_RESERVED) {
        snprintf(err, errlen, "elevenlabs option '%s' is set by steno: %s", key, d->why);
        return STENO_ERR_CONFIG;
    }
    if (!value)
        return STENO_OK; /* removal */
    if (!*value) {
        snprintf(err, errlen, "elevenlabs option '%s' has an empty value", key);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_BOOL && strcmp(value, "true") && strcmp(value, "false")) {
        snprintf(err, errlen, "elevenlabs option '%s' must be \"true\" or \"false\", not \"%s\"",
                 key, value);
        return STENO_ERR_CONFIG;
    }
    if (strcmp(key, "keyterms") == 0 && strlen(value) > MAX_KEYTERM) {
        snprintf(err, errlen, "elevenlabs option 'keyterms': \"%s\" is longer than %d characters",
                 value, MAX_KEYTERM);
        return STENO_ERR_CONFIG;
    }
    return STENO_OK;
}

static int repeatable(const char *key)
{
    const struct opt_def *d = find_opt(key);
    return d && d->kind == K_LIST;
}

/* Word times come with include_timestamps, which steno asks for unless the app turns it off. */
static int wants_timestamps(const steno__opts *o)
{
    const char *v = o ? steno__opts_get(o, "include_timestamps") : NULL;
    return !v || strcmp(v, "false") != 0;
}

static int el_check_set(const steno__opts *o, char *err, size_t errlen)
{
    int rc = steno__opts_check_each(o, "elevenlabs", el_check_option, repeatable, err, errlen);
    if (rc != STENO_OK || !o)
        return rc;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].kind == K_LIST && steno__opts_count(o, opts[i].key) > MAX_REPEATS) {
            snprintf(err, errlen, "elevenlabs option '%s' is given more than %d times", opts[i].key,
                     MAX_REPEATS);
            return STENO_ERR_CONFIG;
        }
    const char *fb = steno__opts_get(o, "filter_background_audio");
    if (fb && strcmp(fb, "true") == 0 && wants_timestamps(o)) {
        snprintf(err, errlen,
                 "elevenlabs option 'filter_background_audio' cannot be combined with "
                 "include_timestamps, which steno turns on by default: set include_timestamps "
                 "to \"false\" as well");
        return STENO_ERR_CONFIG;
    }
    return STENO_OK;
}

static int el_build_url(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                        steno__sb *out)
{
    if (!base_url || !ap || ap->sample_rate == 0)
        return STENO_ERR_INVALID_ARG;
    /* Mono only. 16 kHz only: finalize_text and close_text are fixed strings, and every chunk
     * carries a sample_rate; whether the service checks it on an empty commit against the
     * audio_format is unconfirmed, so the safe choice is the one rate they can name. */
    if (ap->channels != 1 || ap->encoding != STENO_ENCODING_LINEAR16 ||
        ap->sample_rate != FIXED_RATE)
        return STENO_ERR_FORMAT;
    steno__url_begin_query(out, base_url);
    const char *model = o ? steno__opts_get(o, "model_id") : NULL;
    steno__sb_puts(out, "model_id=");
    steno__sb_append_escaped(out, model ? model : DEFAULT_MODEL);
    steno__sb_printf(out, "&audio_format=pcm_%u&commit_strategy=manual", ap->sample_rate);
    if (!o || !steno__opts_get(o, "include_timestamps"))
        steno__sb_puts(out, "&include_timestamps=true");
    steno__url_append_opts(out, o, "model_id"); /* repeatable keys repeat, as the SDKs send */
    return steno__sb_status(out);
}

/* The key in xi-api-key; a single-use token ("Bearer <token>") as token= in the query. */
static int el_handshake_headers(const char *credential, steno__header_fn add, void *ctx)
{
    return steno__key_header(credential, "xi-api-key:", add, ctx);
}

/* ---- per-connection state ---- */

typedef struct el_conn {
    int timestamps;      /* include_timestamps: the timestamped commit is the final */
    uint32_t rate;       /* sample_rate of every chunk */
    uint64_t sent_bytes; /* audio framed on this connection, replays included */
    double final_end;    /* end of the last committed word seen, s */
} el_conn;

static void *el_conn_new(const steno_allocator *a, void *sess, const steno__audio_params *ap,
                         const steno__opts *o, int backfill)
{
    (void)sess;
    (void)backfill;
    el_conn *c = steno__calloc(a, 1, sizeof *c);
    if (c) {
        c->timestamps = wants_timestamps(o);
        c->rate = ap ? ap->sample_rate : FIXED_RATE;
    }
    return c;
}

static void el_conn_free(const steno_allocator *a, void *conn)
{
    steno__free(a, conn);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int el_frame_audio(void *conn, const uint8_t *pcm, size_t bytes, steno__sb *out)
{
    el_conn *c = conn;
    if (!c || (!pcm && bytes))
        return STENO_ERR_INVALID_ARG;
    steno__sb_puts(out, "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":\"");
    char q[4];
    for (size_t i = 0; i < bytes; i += 3) {
        uint32_t w = (uint32_t)pcm[i] << 16;
        if (i + 1 < bytes)
            w |= (uint32_t)pcm[i + 1] << 8;
        if (i + 2 < bytes)
            w |= pcm[i + 2];
        q[0] = b64[w >> 18];
        q[1] = b64[(w >> 12) & 63];
        q[2] = i + 1 < bytes ? b64[(w >> 6) & 63] : '=';
        q[3] = i + 2 < bytes ? b64[w & 63] : '=';
        steno__sb_append(out, q, 4);
    }
    steno__sb_printf(out, "\",\"commit\":false,\"sample_rate\":%u}", c->rate);
    c->sent_bytes += bytes;
    return steno__sb_status(out);
}

/* ---- parsing ---- */

/* Seconds of audio framed so far on the connection. */
static double sent_s(const el_conn *c)
{
    return c && c->rate ? (double)c->sent_bytes / 2.0 / c->rate : 0;
}

/* A time in seconds: absent keeps *out and sets *have 0; present must be finite, >= 0 and not
 * absurd (past ~1000 years). */
static int opt_secs(const cJSON *o, const char *name, double *out, int *have)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    *have = j && !cJSON_IsNull(j);
    if (!*have)
        return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < 0 ||
        j->valuedouble > 3.2e10)
        return -1;
    *out = j->valuedouble;
    return 0;
}

/*
 * words[] of a *_with_timestamps message: "word" entries become words; "spacing" and
 * "audio_event" (laughter, footsteps) are not speech and are skipped. The schema makes start
 * and end optional: when any word lacks them the message keeps its text but no words (its span
 * is then the engine's: a commit's answer covers what was sent before the commit).
 */
static int parse_words(const steno_allocator *a, const cJSON *root, steno__msg *m)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "words");
    if (!arr || cJSON_IsNull(arr))
        return STENO_OK;
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
    int untimed = 0;
    double lp_sum = 0, prev_start = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, arr)
    {
        const char *text = NULL, *type = NULL;
        double lp = 0, st = 0, en = 0;
        int hs = 0, he = 0;
        if (!cJSON_IsObject(w) || steno__json_opt_str(w, "text", &text) || !text ||
            steno__json_opt_str(w, "type", &type) || !type ||
            steno__json_req_num(w, "logprob", &lp) || opt_secs(w, "start", &st, &hs) ||
            opt_secs(w, "end", &en, &he))
            return STENO_ERR_PARSE;
        if (strcmp(type, "word") && strcmp(type, "spacing") && strcmp(type, "audio_event"))
            return STENO_ERR_PARSE;
        if (hs && he && en < st)
            return STENO_ERR_PARSE;
        if (strcmp(type, "word"))
            continue;
        if (!hs || !he) {
            untimed = 1;
            continue;
        }
        if (st < prev_start)
            return STENO_ERR_PARSE; /* words out of order cannot be mapped onto a timeline */
        prev_start = st;
        steno__pword *pw = &m->words[m->n_words++];
        pw->word = pw->punctuated_word = text;
        pw->start = st;
        pw->end = en;
        pw->confidence = lp <= 0 ? exp(lp) : 1.0;
        pw->speaker = -1;
        lp_sum += lp <= 0 ? lp : 0;
    }
    if (untimed)
        m->n_words = 0;
    if (m->n_words) {
        m->start = m->words[0].start;
        m->duration = m->words[m->n_words - 1].end - m->start;
        if (m->duration < 0)
            return STENO_ERR_PARSE;
        m->confidence = exp(lp_sum / (double)m->n_words);
    }
    return STENO_OK;
}

/* A transcript message: text required, words when it has them. Without words its span runs
 * from the last committed word's end to what was sent so far (an interim's best guess; a
 * commit's answer gets its span from the engine). */
static int parse_transcript(const steno_allocator *a, el_conn *c, const cJSON *root, int is_final,
                            steno__msg *m)
{
    m->type = STENO__MSG_RESULTS;
    m->is_final = m->speech_final = is_final;
    m->transcript = NULL;
    if (steno__json_opt_str(root, "text", &m->transcript) || !m->transcript)
        return STENO_ERR_PARSE;
    const char *lang = NULL;
    if (steno__json_opt_str(root, "language_code", &lang))
        return STENO_ERR_PARSE;
    int rc = parse_words(a, root, m);
    if (rc != STENO_OK)
        return rc;
    /* Commits on a connection cover successive audio: a committed word before the end of the
     * last one committed is not this connection's (word times count from its first sample). */
    if (is_final && c && m->n_words && m->start < c->final_end - COMMIT_OVERLAP_S)
        return STENO_ERR_PARSE;
    if (!m->n_words) {
        double from = c ? c->final_end : 0, to = sent_s(c);
        m->start = from;
        m->duration = to > from ? to - from : 0;
        m->confidence = 0;
    } else if (is_final && c && m->start + m->duration > c->final_end) {
        c->final_end = m->start + m->duration;
    }
    return STENO_OK;
}

/* The error messages of the spec (each {"message_type": type, "error": text}). */
static const char *const error_types[] = {
    "error",
    "auth_error",
    "quota_exceeded",
    "commit_throttled",
    "transcriber_error",
    "unaccepted_terms",
    "rate_limited",
    "input_error",
    "invalid_request",
    "queue_overflow",
    "resource_exhausted",
    "chunk_size_exceeded",
    "insufficient_audio_activity",
};

static int is_error_type(const char *t)
{
    for (size_t i = 0; i < sizeof error_types / sizeof error_types[0]; i++)
        if (strcmp(t, error_types[i]) == 0)
            return 1;
    return 0;
}

static int el_parse(const steno_allocator *a, void *conn, const char *text, size_t len,
                    steno__msg *m)
{
    el_conn *c = conn;
    cJSON *root = NULL;
    int brc = steno__msg_begin(a, text, len, m, &root);
    if (brc != STENO_OK)
        return brc;
    int rc = STENO_ERR_PARSE;
    const char *type = NULL;
    if (steno__json_opt_str(root, "message_type", &type) || !type)
        goto fail;
    int timestamps = c ? c->timestamps : 0;
    if (strcmp(type, "partial_transcript") == 0 || strcmp(type, "final_transcript") == 0 ||
        strcmp(type, "final_transcript_with_timestamps") == 0) {
        /* final_transcript is settled text not yet committed: nothing acknowledges its audio
         * until the commit, so to the engine it is an interim. */
        rc = parse_transcript(a, c, root, 0, m);
    } else if (strcmp(type, "committed_transcript") == 0 && !timestamps) {
        rc = parse_transcript(a, c, root, 1, m);
    } else if (strcmp(type, "committed_transcript_with_timestamps") == 0 && timestamps) {
        rc = parse_transcript(a, c, root, 1, m);
    } else if (strcmp(type, "committed_transcript") == 0 ||
               strcmp(type, "committed_transcript_with_timestamps") == 0) {
        /* With include_timestamps each commit is answered twice, plain text first: only the
         * timestamped copy is the final, so one commit is one answer. Still checked. */
        const char *t = NULL;
        rc = steno__json_opt_str(root, "text", &t) || !t ? STENO_ERR_PARSE : STENO_OK;
        m->type = STENO__MSG_IGNORED;
    } else if (strcmp(type, "session_started") == 0) {
        m->type = STENO__MSG_METADATA;
        m->request_id = NULL;
        if (steno__json_opt_str(root, "session_id", &m->request_id) || !m->request_id ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "config")))
            goto fail;
        rc = steno__msg_keep_raw(a, text, len, m);
    } else if (strcmp(type, "session_time_limit_exceeded") == 0) {
        /* The session's end by its time limit: a planned, seamless reconnect, not a failure
         * (the close follows at once; what is not committed is replayed). */
        const char *e = NULL;
        if (steno__json_opt_str(root, "error", &e) || !e)
            goto fail;
        m->type = STENO__MSG_GO_AWAY;
        m->time_left_s = 0;
        rc = STENO_OK;
    } else if (is_error_type(type)) {
        m->type = STENO__MSG_ERROR;
        m->error_code = type;
        m->error_message = NULL;
        if (steno__json_opt_str(root, "error", &m->error_message) || !m->error_message)
            goto fail;
        rc = STENO_OK;
    } else {
        /* committed_transcript_entities, edited_transcript, newer types: the vendor's SDK
         * ignores unknown types too. */
        m->type = STENO__MSG_IGNORED;
        rc = STENO_OK;
    }
    if (rc == STENO_OK)
        return STENO_OK;
fail:
    return steno__msg_fail(m, rc);
}

/* The commit and the end of stream. Both carry FIXED_RATE (see build_url). */
#define CHUNK_TEXT(commit)                                                                         \
    "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":\"\",\"commit\":" commit            \
    ",\"sample_rate\":16000}"

const steno__provider steno__elevenlabs = {
    .name = "elevenlabs",
    .default_url = "wss://api.elevenlabs.io/v1/speech-to-text/realtime",
    /* No pace is documented (unconfirmed); the docs' examples send 1 s of audio per second.
     * 1.0x is the safe choice; catching up rests on parallel backfill connections. */
    .speed_permille = 1000,
    .burst_ms = 1000,
    .error_header = NULL,
    .request_id_header = NULL,
    /* No keepalive exists; silence sent to keep a session open would shift the provider's
     * timestamps off the session's audio. An idle session ends with
     * insufficient_audio_activity and is reconnected. */
    .keepalive_text = NULL,
    .finalize_text = CHUNK_TEXT("true"),
    /* The protocol has no end-of-stream message: the commit before it flushes (see
     * finalize_before_close), this empty chunk ends the sending, and steno closes the socket
     * (client_closes), as the vendor's SDKs do. */
    .close_text = CHUNK_TEXT("false"),
    /* A commit's answer is an ordinary committed transcript that names no position. */
    .finalize_answer = STENO__FIN_ANSWER_NEXT_FINAL,
    .finalize_before_close = 1,
    .client_closes = 1,
    /* 0.1-1 s per chunk is the docs' advice; steno-server refuses more than 1 s. No minimum:
     * the engine cannot pad a text-framed chunk. */
    .min_chunk_ms = 0,
    .max_chunk_ms = 1000,
    .check_option = el_check_option,
    .check_set = el_check_set,
    .build_url = el_build_url,
    .handshake_headers = el_handshake_headers,
    .credential_query = steno__token_query,
    .session_new = NULL,
    .session_free = NULL,
    .conn_new = el_conn_new,
    .conn_free = el_conn_free,
    .initial_message = NULL,
    .frame_audio = el_frame_audio,
    .configure_message = NULL,
    .parse = el_parse,
    .next_message = NULL,
};
