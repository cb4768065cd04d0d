/* openai: the OpenAI Realtime API adapter, transcription sessions (GA protocol,
 * wss://api.openai.com/v1/realtime?intent=transcription).
 *
 * Follows specs/openai/openapi-realtime.yml (the Realtime part of OpenAI's openapi.yaml in the
 * openai/openai-openapi repository at commit f85dbe223d40e1a31cba812ab2d755c7e98a92a3) and the
 * protocol notes beside it. Where those call a behaviour unconfirmed, the choice made here is
 * the safe one and the comment at the place says so.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "json.h"
#include "provider.h"
#include "rateconv.h"
#include "steno/status.h"

/*
 * How audio is acknowledged. Turns are manual (turn_detection null): every commit is the
 * engine's finalize_text, so the client alone decides where items begin and end, and the
 * engine knows exactly which audio each commit covered (STENO__FIN_ANSWER_NEXT_FINAL: the
 * answer covers everything sent before the commit). Server VAD would cut items where the
 * server likes and the engine could not tell a VAD item's completion from its commit's
 * answer. The answer to a commit is the completion of the item it created, or the error the
 * service sends for a commit of less than ~100 ms (input_audio_buffer_commit_empty).
 *
 * input_audio_buffer.committed fixes the order of the items; completions may arrive out of
 * order, so each answer is held in a queue in commit order and released (parse, then
 * next_message) only when every answer before it is in: finals reach the engine in audio
 * order. A failed transcription releases an ERROR (logged, kept as the provider error) and a
 * GO_AWAY, and nothing after it: the engine moves to a new connection and replays the item's
 * audio, which was never acknowledged. When the same audio fails FAIL_LIMIT times in a row,
 * the item is declared lost instead (an ERROR saying so, and its answer with no text), so a
 * transcription that always fails cannot reconnect forever.
 */

#define OAI_RATE 24000u
#define DEFAULT_MODEL "gpt-live-transcribe"
#define QUEUE_MAX 64 /* answers awaited at once; the engine keeps one or two outstanding */
#define FAIL_LIMIT 3
#define MAX_TEXT (1u << 20)

/* ---- options ---- */

static const char *const models[] = {"whisper-1",
                                     "gpt-transcribe",
                                     "gpt-live-transcribe",
                                     "gpt-4o-mini-transcribe",
                                     "gpt-4o-mini-transcribe-2025-12-15",
                                     "gpt-4o-transcribe",
                                     "gpt-4o-transcribe-diarize",
                                     "gpt-realtime-whisper"};

enum opt_kind { K_MODEL, K_LANGUAGE, K_STRING, K_NOISE, K_RESERVED };

struct opt_def {
    const char *key;
    enum opt_kind kind;
};

static const struct opt_def opts[] = {
    {"model", K_MODEL},           {"language", K_LANGUAGE},       {"prompt", K_STRING},
    {"noise_reduction", K_NOISE}, {"turn_detection", K_RESERVED}, {"sample_rate", K_RESERVED},
    {"encoding", K_RESERVED},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

static int oai_check_option(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !*key) {
        snprintf(err, errlen, "an openai option has an empty name");
        return STENO_ERR_CONFIG;
    }
    const struct opt_def *d = find_opt(key);
    if (!d) {
        snprintf(err, errlen,
                 "unknown openai option '%s' (known options: model, language, prompt, "
                 "noise_reduction)",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_RESERVED) {
        snprintf(err, errlen,
                 "openai option '%s' is set by steno: audio goes as audio/pcm at 24 kHz "
                 "(resampled from the session's rate) and turns are committed by steno "
                 "(turn_detection null), which is how it knows what each transcript covers",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (!value)
        return STENO_OK; /* removal */
    if (!*value) {
        snprintf(err, errlen, "openai option '%s' has an empty value", key);
        return STENO_ERR_CONFIG;
    }
    switch (d->kind) {
    case K_MODEL:
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
            if (strcmp(value, models[i]) == 0)
                return STENO_OK;
        snprintf(err, errlen,
                 "openai option 'model' must be one of whisper-1, gpt-transcribe, "
                 "gpt-live-transcribe, gpt-4o-mini-transcribe, gpt-4o-mini-transcribe-2025-12-15, "
                 "gpt-4o-transcribe, gpt-4o-transcribe-diarize, gpt-realtime-whisper, not \"%s\"",
                 value);
        return STENO_ERR_CONFIG;
    case K_LANGUAGE: {
        size_t n = strlen(value);
        int ok = n == 2 || n == 3;
        for (size_t i = 0; ok && i < n; i++)
            ok = value[i] >= 'a' && value[i] <= 'z';
        if (!ok) {
            snprintf(err, errlen,
                     "openai option 'language' must be an ISO-639-1 code such as \"en\", not "
                     "\"%s\"",
                     value);
            return STENO_ERR_CONFIG;
        }
        return STENO_OK;
    }
    case K_NOISE:
        if (strcmp(value, "near_field") && strcmp(value, "far_field")) {
            snprintf(err, errlen,
                     "openai option 'noise_reduction' must be near_field or far_field, not "
                     "\"%s\"",
                     value);
            return STENO_ERR_CONFIG;
        }
        return STENO_OK;
    default:
        if (strlen(value) > 16384) {
            snprintf(err, errlen, "openai option '%s' is longer than 16384 bytes", key);
            return STENO_ERR_CONFIG;
        }
        return STENO_OK;
    }
}

static int oai_check_set(const steno__opts *o, char *err, size_t errlen)
{
    int rc = steno__opts_check_each(o, "openai", oai_check_option, NULL, err, errlen);
    if (rc)
        return rc;
    const char *model = steno__opts_get(o, "model");
    if (model && strcmp(model, "gpt-realtime-whisper") == 0 && steno__opts_get(o, "prompt")) {
        snprintf(err, errlen, "openai option 'prompt' is not supported by gpt-realtime-whisper");
        return STENO_ERR_CONFIG;
    }
    return STENO_OK;
}

/* ---- URL, headers ---- */

static int oai_build_url(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                         steno__sb *out)
{
    (void)o; /* every setting travels in session.update */
    if (!base_url || !ap || ap->sample_rate == 0)
        return STENO_ERR_INVALID_ARG;
    /* audio/pcm is mono; more channels would need a session each */
    if (ap->channels != 1 || ap->encoding != STENO_ENCODING_LINEAR16)
        return STENO_ERR_FORMAT;
    if (ap->sample_rate < 8000 || ap->sample_rate > 48000)
        return STENO_ERR_FORMAT;
    size_t blen = strcspn(base_url, "#");
    const char *q = memchr(base_url, '?', blen);
    /* Without intent=transcription the service opens a conversation session, which refuses
     * a transcription session.update. */
    int has_intent = 0;
    for (const char *p = q; p && !has_intent;
         p = memchr(p + 1, '&', blen - (size_t)(p + 1 - base_url)))
        has_intent = p + 21 <= base_url + blen && strncmp(p + 1, "intent=transcription", 20) == 0 &&
                     (p + 21 == base_url + blen || p[21] == '&');
    if (has_intent) {
        steno__sb_append(out, base_url, blen);
    } else {
        steno__url_begin_query(out, base_url);
        steno__sb_puts(out, "intent=transcription");
    }
    return steno__sb_status(out);
}

static int oai_handshake_headers(const char *credential, steno__header_fn add, void *ctx)
{
    if (!credential || !*credential)
        return STENO_OK;
    if (strpbrk(credential, "\r\n"))
        return STENO_ERR_CONFIG;
    if (strlen(credential) > 4096)
        return STENO_ERR_TOO_LARGE;
    /* A bare key (sk-..., or an ephemeral ek_... secret) or a full "Bearer ..." value. The
     * vendor's browser path sends ephemeral secrets as the subprotocol
     * "openai-insecure-api-key.<secret>", which this hook cannot set: lws offers subprotocols
     * only from the connect info (the engine's), and rejects a server's subprotocol answer to a
     * header it did not record as offered. They go as a Bearer header too. */
    if (strncasecmp(credential, "Bearer ", 7) == 0)
        return add(ctx, "authorization:", credential) ? STENO_ERR_INTERNAL : STENO_OK;
    char v[4200];
    snprintf(v, sizeof v, "Bearer %s", credential);
    int rc = add(ctx, "authorization:", v) ? STENO_ERR_INTERNAL : STENO_OK;
    steno__wipe(v, sizeof v);
    return rc;
}

/* ---- session.update ---- */

/* The transcription object of session.update, from the options. */
static int add_transcription(cJSON *input, const steno__opts *o)
{
    cJSON *tr = cJSON_AddObjectToObject(input, "transcription");
    if (!tr)
        return STENO_ERR_NOMEM;
    const char *model = o ? steno__opts_get(o, "model") : NULL;
    const char *lang = o ? steno__opts_get(o, "language") : NULL;
    const char *prompt = o ? steno__opts_get(o, "prompt") : NULL;
    if (!cJSON_AddStringToObject(tr, "model", model ? model : DEFAULT_MODEL) ||
        (lang && !cJSON_AddStringToObject(tr, "language", lang)) ||
        (prompt && !cJSON_AddStringToObject(tr, "prompt", prompt)))
        return STENO_ERR_NOMEM;
    return STENO_OK;
}

static int print_to(cJSON *j, int rc, steno__sb *out)
{
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

/* session.update with the whole session: transcription type, 24 kHz PCM, manual turns. */
static int session_update(const steno__opts *o, int full, steno__sb *out)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *s = j ? cJSON_AddObjectToObject(j, "session") : NULL;
    cJSON *audio = s ? cJSON_AddObjectToObject(s, "audio") : NULL;
    cJSON *input = audio ? cJSON_AddObjectToObject(audio, "input") : NULL;
    int rc = input && cJSON_AddStringToObject(j, "type", "session.update") &&
                     cJSON_AddStringToObject(s, "type", "transcription")
                 ? STENO_OK
                 : STENO_ERR_NOMEM;
    if (rc == STENO_OK && full) {
        cJSON *fmt = cJSON_AddObjectToObject(input, "format");
        if (!fmt || !cJSON_AddStringToObject(fmt, "type", "audio/pcm") ||
            !cJSON_AddNumberToObject(fmt, "rate", OAI_RATE) ||
            !cJSON_AddNullToObject(input, "turn_detection"))
            rc = STENO_ERR_NOMEM;
    }
    if (rc == STENO_OK)
        rc = add_transcription(input, o);
    const char *nr = o ? steno__opts_get(o, "noise_reduction") : NULL;
    if (rc == STENO_OK && nr) {
        cJSON *n = cJSON_AddObjectToObject(input, "noise_reduction");
        if (!n || !cJSON_AddStringToObject(n, "type", nr))
            rc = STENO_ERR_NOMEM;
    }
    return print_to(j, rc, out);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/*
 * A live change: session.update changes only the fields present. Language and prompt change on
 * the open connection; a new model or noise reduction, and removing a language or prompt, take
 * a new connection (whether a transcription session may swap them, or how a field is cleared,
 * is unconfirmed).
 */
static int oai_configure_message(const steno__opts *old, const steno__opts *next, steno__sb *out)
{
    static const char *const fixed[] = {"model", "noise_reduction"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!same(old ? steno__opts_get(old, fixed[i]) : NULL,
                  next ? steno__opts_get(next, fixed[i]) : NULL))
            return STENO_ERR_UNSUPPORTED;
    static const char *const live[] = {"language", "prompt"};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (old && steno__opts_get(old, live[i]) && !(next && steno__opts_get(next, live[i])))
            return STENO_ERR_UNSUPPORTED;
    return session_update(next, 0, out);
}

/* ---- per-session and per-connection state ---- */

typedef struct oai_session {
    unsigned fail_streak; /* failed transcriptions in a row, across connections */
} oai_session;

enum entry_state {
    E_WAITING,   /* committed, transcription not in */
    E_COMPLETED, /* text in */
    E_FAILED,    /* transcription failed */
    E_EMPTY,     /* a commit refused as too small: answered, nothing transcribed */
};

typedef struct oai_entry {
    enum entry_state state;
    char *item_id;
    char *text;    /* COMPLETED: transcript; FAILED: the error text */
    char *partial; /* deltas so far */
} oai_entry;

typedef struct oai_conn {
    const steno_allocator *a;
    oai_session *sess;
    uint32_t rate;
    steno__rateconv rc;
    int16_t *buf; /* converted samples of one frame, grown to the largest frame */
    size_t buf_cap;
    uint64_t frames_sent; /* session-rate samples appended on this connection */
    oai_entry q[QUEUE_MAX];
    size_t head, n;
    int poisoned;     /* an item failed: nothing after it is released */
    int go_away_next; /* release a GO_AWAY next */
} oai_conn;

static void *oai_session_new(const steno_allocator *a)
{
    return steno__calloc(a, 1, sizeof(oai_session));
}

static void oai_session_free(const steno_allocator *a, void *sess)
{
    steno__free(a, sess);
}

static void *oai_conn_new(const steno_allocator *a, void *sess, const steno__audio_params *ap,
                          const steno__opts *o, int backfill)
{
    (void)o;
    (void)backfill;
    oai_conn *c = steno__calloc(a, 1, sizeof *c);
    if (!c)
        return NULL;
    c->a = a;
    c->sess = sess;
    c->rate = ap ? ap->sample_rate : OAI_RATE;
    steno__rateconv_init(&c->rc, c->rate, OAI_RATE);
    return c;
}

static void entry_clear(const steno_allocator *a, oai_entry *e)
{
    steno__free(a, e->item_id);
    steno__free(a, e->text);
    steno__free(a, e->partial);
    memset(e, 0, sizeof *e);
}

static void oai_conn_free(const steno_allocator *a, void *conn)
{
    oai_conn *c = conn;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        entry_clear(a, &c->q[(c->head + i) % QUEUE_MAX]);
    steno__free(a, c->buf);
    steno__free(a, c);
}

static char *dup_str(const steno_allocator *a, const char *s)
{
    size_t n = strlen(s);
    char *d = steno__alloc(a, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* ---- setup and audio ---- */

static int oai_initial_message(void *conn, const steno__audio_params *ap, const steno__opts *o,
                               steno__sb *out)
{
    (void)conn;
    (void)ap;
    return session_update(o, 1, out);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_append(steno__sb *out, const uint8_t *p, size_t n)
{
    char blk[256];
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            w |= p[i + 2];
        blk[k++] = b64chars[(w >> 18) & 63];
        blk[k++] = b64chars[(w >> 12) & 63];
        blk[k++] = i + 1 < n ? b64chars[(w >> 6) & 63] : '=';
        blk[k++] = i + 2 < n ? b64chars[w & 63] : '=';
        if (k == sizeof blk) {
            steno__sb_append(out, blk, k);
            k = 0;
        }
    }
    steno__sb_append(out, blk, k);
}

/* input_audio_buffer.append with the frame at 24 kHz, base64 (little-endian samples). */
static int oai_frame_audio(void *conn, const uint8_t *pcm, size_t bytes, steno__sb *out)
{
    oai_conn *c = conn;
    if (!c || (bytes & 1))
        return STENO_ERR_INVALID_ARG;
    size_t n = bytes / 2;
    size_t need = steno__rateconv_max_out(&c->rc, n);
    if (need > c->buf_cap) {
        /* grows to the largest frame once; later frames reuse it */
        int16_t *b = steno__alloc(c->a, need * sizeof *b);
        if (!b)
            return STENO_ERR_NOMEM;
        steno__free(c->a, c->buf);
        c->buf = b;
        c->buf_cap = need;
    }
    /* The ring's bytes are little-endian; read them so, whatever the host's order. */
    int16_t tmp[512];
    size_t done = 0, k = 0;
    while (done < n) {
        size_t m = n - done < 512 ? n - done : 512;
        for (size_t i = 0; i < m; i++)
            tmp[i] = (int16_t)(uint16_t)(pcm[2 * (done + i)] | pcm[2 * (done + i) + 1] << 8);
        k += steno__rateconv_run(&c->rc, tmp, m, c->buf + k);
        done += m;
    }
    c->frames_sent += n;
    uint8_t *le = (uint8_t *)c->buf; /* rewritten in place as little-endian bytes */
    for (size_t i = 0; i < k; i++) {
        uint16_t v = (uint16_t)c->buf[i];
        le[2 * i] = (uint8_t)(v & 0xff);
        le[2 * i + 1] = (uint8_t)(v >> 8);
    }
    steno__sb_puts(out, "{\"type\":\"input_audio_buffer.append\",\"audio\":\"");
    b64_append(out, le, 2 * k);
    steno__sb_puts(out, "\"}");
    return steno__sb_status(out);
}

/* ---- the answer queue ---- */

static oai_entry *find_item(oai_conn *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++) {
        oai_entry *e = &c->q[(c->head + i) % QUEUE_MAX];
        if (e->item_id && strcmp(e->item_id, id) == 0)
            return e;
    }
    return NULL;
}

static oai_entry *push(oai_conn *c, enum entry_state st)
{
    if (c->n == QUEUE_MAX)
        return NULL;
    oai_entry *e = &c->q[(c->head + c->n) % QUEUE_MAX];
    memset(e, 0, sizeof *e);
    e->state = st;
    c->n++;
    return e;
}

static void pop(oai_conn *c)
{
    entry_clear(c->a, &c->q[c->head]);
    c->head = (c->head + 1) % QUEUE_MAX;
    c->n--;
}

/* A final for the engine: its span is left to the engine (NEXT_FINAL extends it to the
 * commit's position), since the service reports none for a committed item. */
static void final_msg(steno__msg *m, char *text)
{
    m->type = STENO__MSG_RESULTS;
    m->is_final = m->speech_final = 1;
    m->start = m->duration = 0;
    m->confidence = 0;
    m->raw_ = text; /* released with the message */
    m->transcript = text ? text : "";
}

/* Fills m with the next message the queue may release: 1, or 0 when none. */
static int release(oai_conn *c, steno__msg *m)
{
    /* what it hands over was allocated through the connection's allocator */
    const steno_allocator *a = c->a;
    memset(m, 0, sizeof *m);
    m->a_ = a;
    if (c->go_away_next) {
        c->go_away_next = 0;
        m->type = STENO__MSG_GO_AWAY;
        m->time_left_s = 0;
        return 1;
    }
    if (c->poisoned || !c->n)
        return 0;
    oai_entry *e = &c->q[c->head];
    switch (e->state) {
    case E_WAITING:
        return 0;
    case E_COMPLETED:
    case E_EMPTY:
        if (e->state == E_COMPLETED && c->sess)
            c->sess->fail_streak = 0;
        final_msg(m, e->text);
        e->text = NULL;
        pop(c);
        return 1;
    case E_FAILED:
        break;
    }
    /* A failed item: say so, then either replay it on a new connection or, after
     * FAIL_LIMIT failures in a row, declare its audio lost and go on. */
    unsigned streak = c->sess ? ++c->sess->fail_streak : FAIL_LIMIT;
    m->type = STENO__MSG_ERROR;
    m->error_code = "transcription_failed";
    char msg[600];
    if (streak >= FAIL_LIMIT) {
        snprintf(msg, sizeof msg,
                 "transcription of item %s failed %u times in a row (%s): its audio is declared "
                 "lost",
                 e->item_id ? e->item_id : "?", streak, e->text ? e->text : "");
        e->state = E_EMPTY; /* released next, as an answer without text */
        steno__free(a, e->text);
        e->text = NULL;
        if (c->sess)
            c->sess->fail_streak = 0;
    } else {
        snprintf(msg, sizeof msg,
                 "transcription of item %s failed (%s): replaying its audio on a new connection",
                 e->item_id ? e->item_id : "?", e->text ? e->text : "");
        c->poisoned = 1;
        c->go_away_next = 1;
    }
    m->raw_ = dup_str(a, msg);
    m->error_message = m->raw_ ? m->raw_ : "transcription failed";
    return 1;
}

static int oai_next_message(const steno_allocator *a, void *conn, steno__msg *out)
{
    oai_conn *c = conn;
    (void)a; /* the connection's own allocator (the engine's: the same) */
    return c ? release(c, out) : 0;
}

/* ---- parsing ---- */

static int req_str(const cJSON *o, const char *name, const char **out)
{
    *out = NULL;
    return steno__json_opt_str(o, name, out) || !*out ? -1 : 0;
}

/* audio_start_ms / audio_end_ms: ms of this connection's buffer -> seconds. */
static int req_ms(const cJSON *o, const char *name, double *out)
{
    double v = 0;
    if (steno__json_req_num(o, name, &v) || v < 0 || v > 3.2e13)
        return -1;
    *out = v / 1000.0;
    return 0;
}

/* Concatenates b onto *a (an allocator string, or NULL). */
static int append_text(const steno_allocator *al, char **a, const char *b)
{
    size_t la = *a ? strlen(*a) : 0, lb = strlen(b);
    if (la + lb > MAX_TEXT)
        return STENO_ERR_PARSE;
    char *s = steno__alloc(al, la + lb + 1);
    if (!s)
        return STENO_ERR_NOMEM;
    if (la)
        memcpy(s, *a, la);
    memcpy(s + la, b, lb + 1);
    steno__free(al, *a);
    *a = s;
    return STENO_OK;
}

static int on_committed(oai_conn *c, const cJSON *root)
{
    const char *id = NULL, *prev = NULL;
    if (req_str(root, "item_id", &id) || steno__json_opt_str(root, "previous_item_id", &prev))
        return STENO_ERR_PARSE;
    if (!c || c->poisoned || find_item(c, id))
        return STENO_OK;
    oai_entry *e = push(c, E_WAITING);
    if (!e) {
        /* more commits awaited than anything sends: start over on a new connection */
        c->poisoned = c->go_away_next = 1;
        return STENO_OK;
    }
    if (!(e->item_id = dup_str(c->a, id))) {
        c->n--;
        return STENO_ERR_NOMEM;
    }
    return STENO_OK;
}

/* An interim of an item: the deltas so far, over the audio sent on this connection. */
static int on_delta(oai_conn *c, const steno_allocator *a, const cJSON *root, steno__msg *m)
{
    const char *id = NULL, *delta = "";
    if (req_str(root, "item_id", &id) || steno__json_opt_str(root, "delta", &delta))
        return STENO_ERR_PARSE;
    if (!delta)
        delta = "";
    oai_entry *e = c ? find_item(c, id) : NULL;
    char *text = NULL;
    if (e && e->state == E_WAITING) {
        int rc = append_text(c->a, &e->partial, delta);
        if (rc)
            return rc;
        text = dup_str(a, e->partial);
    } else {
        text = dup_str(a, delta);
    }
    if (!text)
        return STENO_ERR_NOMEM;
    m->type = STENO__MSG_RESULTS;
    m->raw_ = text;
    m->transcript = text;
    m->start = 0;
    m->duration = c ? (double)c->frames_sent / c->rate : 0;
    return STENO_OK;
}

static int on_completed(oai_conn *c, const cJSON *root)
{
    const char *id = NULL, *t = NULL;
    if (req_str(root, "item_id", &id) || req_str(root, "transcript", &t))
        return STENO_ERR_PARSE;
    if (strlen(t) > MAX_TEXT)
        return STENO_ERR_PARSE;
    oai_entry *e = c ? find_item(c, id) : NULL;
    if (!e || e->state != E_WAITING)
        return STENO_OK; /* not an item this connection committed: nothing it acknowledges */
    if (!(e->text = dup_str(c->a, t)))
        return STENO_ERR_NOMEM;
    e->state = E_COMPLETED;
    return STENO_OK;
}

static int on_failed(oai_conn *c, const cJSON *root)
{
    const char *id = NULL, *msg = NULL, *code = NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (req_str(root, "item_id", &id) || (err && !cJSON_IsObject(err)) ||
        steno__json_opt_str(err, "message", &msg) || steno__json_opt_str(err, "code", &code))
        return STENO_ERR_PARSE;
    oai_entry *e = c ? find_item(c, id) : NULL;
    if (!e || e->state != E_WAITING)
        return STENO_OK;
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s%.400s", code ? code : "", code && msg ? ": " : "",
             msg ? msg : "");
    if (!(e->text = dup_str(c->a, buf)))
        return STENO_ERR_NOMEM;
    e->state = E_FAILED;
    return STENO_OK;
}

static int on_error(oai_conn *c, const cJSON *root, steno__msg *m)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *msg = NULL, *code = NULL, *type = NULL;
    if (!cJSON_IsObject(err) || req_str(err, "message", &msg) ||
        steno__json_opt_str(err, "code", &code) || steno__json_opt_str(err, "type", &type))
        return STENO_ERR_PARSE;
    if (code && strcmp(code, "input_audio_buffer_commit_empty") == 0) {
        /* The answer to a commit with (next to) nothing in the buffer: nothing to
         * transcribe. It keeps its place among the answers. */
        if (c && !c->poisoned && !push(c, E_EMPTY))
            c->poisoned = c->go_away_next = 1;
        m->type = STENO__MSG_IGNORED;
        return STENO_OK;
    }
    m->type = STENO__MSG_ERROR;
    m->error_code = code ? code : (type ? type : "");
    m->error_message = msg;
    if (code && strcmp(code, "session_expired") == 0 && c)
        c->go_away_next = 1; /* the service closes next: move to a new session now */
    return STENO_OK;
}

static int oai_parse(const steno_allocator *a, void *conn, const char *text, size_t len,
                     steno__msg *m)
{
    oai_conn *c = conn;
    cJSON *root = NULL;
    int brc = steno__msg_begin(a, text, len, m, &root);
    if (brc != STENO_OK)
        return brc;
    int rc = STENO_ERR_PARSE;
    const char *type = NULL;
    if (req_str(root, "type", &type))
        goto fail;
    m->type = STENO__MSG_IGNORED;
    if (strcmp(type, "conversation.item.input_audio_transcription.completed") == 0) {
        rc = on_completed(c, root);
    } else if (strcmp(type, "conversation.item.input_audio_transcription.delta") == 0) {
        rc = on_delta(c, a, root, m);
    } else if (strcmp(type, "input_audio_buffer.committed") == 0) {
        rc = on_committed(c, root);
    } else if (strcmp(type, "conversation.item.input_audio_transcription.failed") == 0) {
        rc = on_failed(c, root);
    } else if (strcmp(type, "error") == 0) {
        rc = on_error(c, root, m);
    } else if (strcmp(type, "session.created") == 0) {
        /* the session id names this connection */
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "session");
        m->type = STENO__MSG_METADATA;
        m->request_id = NULL;
        if (!cJSON_IsObject(s) || req_str(s, "id", &m->request_id))
            goto fail;
        rc = steno__msg_keep_raw(a, text, len, m);
    } else if (strcmp(type, "input_audio_buffer.speech_started") == 0) {
        m->type = STENO__MSG_SPEECH_STARTED;
        rc = req_ms(root, "audio_start_ms", &m->timestamp) ? STENO_ERR_PARSE : STENO_OK;
    } else {
        rc = STENO_OK; /* session.updated, conversation.item.*, rate_limits.updated, ... */
    }
    if (rc != STENO_OK)
        goto fail;
    if (m->type == STENO__MSG_IGNORED && c) {
        /* This message may have completed the answer at the head of the queue. */
        steno__msg_release(m);
        if (release(c, m) == 0) {
            memset(m, 0, sizeof *m);
            m->a_ = a;
            m->type = STENO__MSG_IGNORED;
        }
        return STENO_OK;
    }
    return STENO_OK;
fail:
    return steno__msg_fail(m, rc);
}

const steno__provider steno__openai = {
    .name = "openai",
    .default_url = "wss://api.openai.com/v1/realtime?intent=transcription",
    /* No pacing rule is documented (unconfirmed): real time, the safe choice; catch-up rests
     * on replay and backfill at that pace. */
    .speed_permille = 1000,
    .burst_ms = 1000,
    .error_header = NULL,
    .request_id_header = NULL,
    /* There is no keepalive message; WebSocket pings keep the connection checked. */
    .keepalive_text = NULL,
    .finalize_text = "{\"type\":\"input_audio_buffer.commit\"}",
    /* The protocol has no end-of-stream message and the service does not close on any
     * client event: a last commit is the closest thing (finalize_before_close has already
     * asked for every final, so it commits at most a refused sliver). The engine then waits
     * close_timeout_ms for a close that does not come. */
    .close_text = "{\"type\":\"input_audio_buffer.commit\"}",
    .finalize_answer = STENO__FIN_ANSWER_NEXT_FINAL,
    .finalize_before_close = 1,
    /* 15 MiB per event: a chunk (at most 1 s) at 24 kHz is 64 KiB of base64. */
    .min_chunk_ms = 0,
    .max_chunk_ms = 0,
    .check_option = oai_check_option,
    .check_set = oai_check_set,
    .build_url = oai_build_url,
    .handshake_headers = oai_handshake_headers,
    .credential_query = NULL,
    .session_new = oai_session_new,
    .session_free = oai_session_free,
    .conn_new = oai_conn_new,
    .conn_free = oai_conn_free,
    .initial_message = oai_initial_message,
    .frame_audio = oai_frame_audio,
    .configure_message = oai_configure_message,
    .parse = oai_parse,
    .next_message = oai_next_message,
};
