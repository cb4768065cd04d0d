/* gemini: the Gemini Live API adapter for input-audio transcription
 * (wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService
 * .BidiGenerateContent).
 *
 * Follows google/ai/generativelanguage/v1beta/generative_service.proto and content.proto of
 * googleapis/googleapis at commit f8291d2b89f0017ab078a4c7378069bae5686f6f (JSON mapping on the
 * wire), and the protocol notes beside them. Where those call a behaviour unconfirmed, the choice
 * made here is the safe one and the comment at the place says so.
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
#include "steno/status.h"

/*
 * What acknowledges audio. The API gives input transcription no times and no audio offsets:
 * serverContent.inputTranscription carries text fragments, serverContent.turnComplete ends a
 * turn. So steno turns off automatic activity detection and brackets the audio itself: the first
 * audio frame of a connection, and the first one after each activityEnd, carries activityStart;
 * the engine's flush (finalize_message) is activityEnd, and with STENO__FIN_ANSWER_NEXT_FINAL the
 * next turnComplete is its answer, acknowledging every sample sent before that activityEnd. The
 * final carries the turn's fragments as one transcript without words (there are no word times),
 * spanning the audio the turn acknowledges. A turn cut by a reconnect was never acknowledged: its
 * audio is sent again, whole, on the next connection and transcribed once there; a late
 * turnComplete of the old connection carries no span and is dropped by the timeline.
 *
 * One turn answers each activityEnd, in order; fragments that arrive before a turnComplete belong
 * to that turn (the proto does not promise the order of inputTranscription and turnComplete;
 * steno-server keeps it, the service is unconfirmed).
 */

#define DEFAULT_MODEL "gemini-3.5-transcribe-live"
#define MIME "audio/pcm;rate=16000"
#define MAX_HANDLE 2048       /* a resumption handle; longer ones are refused as malformed */
#define MAX_TURN_TEXT 1000000 /* one turn's transcript */

/* ---- options: the setup fields steno lets an application choose ---- */

enum opt_kind {
    K_MODEL,    /* a model id, with or without "models/" */
    K_STRING,   /* any non-empty text */
    K_MODALITY, /* TEXT | AUDIO */
    K_BOOL,     /* true | false */
    K_RESERVED, /* the engine's: credentials, the audio format */
};

struct opt_def {
    const char *key;
    enum opt_kind kind;
};

static const struct opt_def opts[] = {
    {"model", K_MODEL},
    {"system_instruction", K_STRING},
    {"response_modality", K_MODALITY},
    {"context_window_compression", K_BOOL},
    {"key", K_RESERVED},
    {"access_token", K_RESERVED},
    {"sample_rate", K_RESERVED},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

static int gm_check_option(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !*key) {
        snprintf(err, errlen, "a gemini option has an empty name");
        return STENO_ERR_CONFIG;
    }
    const struct opt_def *d = find_opt(key);
    if (!d) {
        snprintf(err, errlen,
                 "unknown gemini option '%s' (known options: model, system_instruction, "
                 "response_modality, context_window_compression)",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (d->kind == K_RESERVED) {
        snprintf(err, errlen,
                 "gemini option '%s' is set by steno: the API key comes from api_key or "
                 "token_cb (an ephemeral token as \"Token <name>\"), the audio is 16 kHz PCM",
                 key);
        return STENO_ERR_CONFIG;
    }
    if (!value)
        return STENO_OK; /* removal */
    if (!*value) {
        snprintf(err, errlen, "gemini option '%s' has an empty value", key);
        return STENO_ERR_CONFIG;
    }
    switch (d->kind) {
    case K_MODEL:
        if (strpbrk(value, "\"\\ \t\r\n") ||
            strchr(value + (strncmp(value, "models/", 7) ? 0 : 7), '/')) {
            snprintf(err, errlen, "gemini option 'model' must be a model id such as %s, not \"%s\"",
                     DEFAULT_MODEL, value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_MODALITY:
        if (strcmp(value, "TEXT") && strcmp(value, "AUDIO")) {
            snprintf(err, errlen,
                     "gemini option 'response_modality' must be TEXT or AUDIO, not \"%s\"", value);
            return STENO_ERR_CONFIG;
        }
        break;
    case K_BOOL:
        if (strcmp(value, "true") && strcmp(value, "false")) {
            snprintf(err, errlen, "gemini option '%s' must be \"true\" or \"false\", not \"%s\"",
                     key, value);
            return STENO_ERR_CONFIG;
        }
        break;
    default:
        break;
    }
    return STENO_OK;
}

static int gm_check_set(const steno__opts *o, char *err, size_t errlen)
{
    return steno__opts_check_each(o, "gemini", gm_check_option, NULL, err, errlen);
}

/* Everything is in the setup message: the URL is the endpoint (without a fragment). */
static int gm_build_url(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                        steno__sb *out)
{
    (void)o;
    if (!base_url || !ap || ap->sample_rate == 0)
        return STENO_ERR_INVALID_ARG;
    /* audio/pcm;rate=16000 is the input format the notes confirm (other rates are said to be
     * resampled: unconfirmed). */
    if (ap->channels != 1 || ap->encoding != STENO_ENCODING_LINEAR16 || ap->sample_rate != 16000)
        return STENO_ERR_FORMAT;
    steno__sb_append(out, base_url, strcspn(base_url, "#"));
    return steno__sb_status(out);
}

/* "Token <name>": an ephemeral token. */
static const char *ephemeral_token(const char *cred)
{
    return strncasecmp(cred, "Token ", 6) == 0 ? cred + 6 : NULL;
}

/* An API key goes in x-goog-api-key (what Google's Python SDK sends): it then appears in no URL,
 * not even a proxy's. */
static int gm_handshake_headers(const char *credential, steno__header_fn add, void *ctx)
{
    if (!credential || !*credential || ephemeral_token(credential))
        return STENO_OK; /* no authentication, or a token in the URL */
    if (strpbrk(credential, "\r\n"))
        return STENO_ERR_CONFIG;
    if (strlen(credential) > 4096)
        return STENO_ERR_TOO_LARGE;
    return add(ctx, "x-goog-api-key:", credential) ? STENO_ERR_INTERNAL : STENO_OK;
}

/* An ephemeral token as access_token= (the documented form, on the ...Constrained endpoint). */
static int gm_credential_query(const char *credential, steno__sb *out)
{
    const char *tok = credential ? ephemeral_token(credential) : NULL;
    if (!tok)
        return STENO_OK;
    if (!*tok || strlen(tok) > 4096)
        return STENO_ERR_CONFIG;
    steno__sb_puts(out, "access_token=");
    steno__sb_append_escaped(out, tok);
    return steno__sb_status(out);
}

/* ---- session and connection state ---- */

typedef struct gm_session {
    char handle[MAX_HANDLE + 1]; /* the live session's latest resumable handle, or "" */
} gm_session;

typedef struct gm_conn {
    gm_session *sess;
    const steno_allocator *a;
    int backfill;
    int activity_open; /* an activityStart went out and no turnComplete since */
    int setup_done;
    int resumed;    /* the setup presented sess->handle */
    steno__sb text; /* the open turn's transcription fragments */
} gm_conn;

static void *gm_session_new(const steno_allocator *a)
{
    return steno__calloc(a, 1, sizeof(gm_session));
}

static void gm_session_free(const steno_allocator *a, void *sess)
{
    steno__free(a, sess);
}

static void *gm_conn_new(const steno_allocator *a, void *sess, const steno__audio_params *ap,
                         const steno__opts *o, int backfill)
{
    (void)ap;
    (void)o;
    gm_conn *c = steno__calloc(a, 1, sizeof *c);
    if (!c)
        return NULL;
    c->sess = sess;
    c->a = a;
    c->backfill = backfill;
    steno__sb_init(&c->text, a);
    c->text.max = MAX_TURN_TEXT;
    return c;
}

static void gm_conn_free(const steno_allocator *a, void *conn)
{
    gm_conn *c = conn;
    if (!c)
        return;
    /* A connection that presented a handle and never got setupComplete: the handle may be the
     * reason (expired after 2 h, or refused), so the next connection starts a new session
     * instead of failing the same way. */
    if (c->resumed && !c->setup_done && c->sess)
        c->sess->handle[0] = '\0';
    steno__sb_free(&c->text);
    steno__free(a, c);
}

/* ---- client messages ---- */

static int add_obj(cJSON *parent, const char *name, cJSON **out)
{
    *out = cJSON_AddObjectToObject(parent, name);
    return *out ? 0 : -1;
}

static int gm_initial_message(void *conn, const steno__audio_params *ap, const steno__opts *o,
                              steno__sb *out)
{
    gm_conn *c = conn;
    (void)ap;
    const char *model = o ? steno__opts_get(o, "model") : NULL;
    const char *sys = o ? steno__opts_get(o, "system_instruction") : NULL;
    const char *mod = o ? steno__opts_get(o, "response_modality") : NULL;
    const char *cwc = o ? steno__opts_get(o, "context_window_compression") : NULL;
    if (!model)
        model = DEFAULT_MODEL;
    cJSON *root = cJSON_CreateObject(), *s, *gc, *ric, *aad, *x;
    int bad = !root || add_obj(root, "setup", &s);
    char mname[300];
    snprintf(mname, sizeof mname, "%s%s", strncmp(model, "models/", 7) ? "models/" : "", model);
    bad = bad || !cJSON_AddStringToObject(s, "model", mname) || add_obj(s, "generationConfig", &gc);
    cJSON *mods = bad ? NULL : cJSON_AddArrayToObject(gc, "responseModalities");
    bad = bad || !mods;
    if (!bad)
        cJSON_AddItemToArray(mods, cJSON_CreateString(mod ? mod : "TEXT"));
    if (!bad && sys) {
        cJSON *si, *parts = NULL, *p = cJSON_CreateObject();
        bad = add_obj(s, "systemInstruction", &si) ||
              !(parts = cJSON_AddArrayToObject(si, "parts")) || !p ||
              !cJSON_AddStringToObject(p, "text", sys);
        if (parts && p)
            cJSON_AddItemToArray(parts, p);
        else
            cJSON_Delete(p);
    }
    /* The client delimits activity (see the first comment); the model's reply never interrupts,
     * and the turn is all audio of the activity, silence included. */
    bad = bad || add_obj(s, "realtimeInputConfig", &ric) ||
          add_obj(ric, "automaticActivityDetection", &aad) ||
          !cJSON_AddBoolToObject(aad, "disabled", 1) ||
          !cJSON_AddStringToObject(ric, "activityHandling", "NO_INTERRUPTION") ||
          !cJSON_AddStringToObject(ric, "turnCoverage", "TURN_INCLUDES_ALL_INPUT");
    /* The live connection keeps the session (and its context) across connections; a backfill
     * connection is a session of its own and never resumes the live one. */
    if (!bad && !c->backfill) {
        bad = add_obj(s, "sessionResumption", &x);
        if (!bad && c->sess && c->sess->handle[0]) {
            bad = !cJSON_AddStringToObject(x, "handle", c->sess->handle);
            c->resumed = 1;
        }
    }
    /* Without compression an audio-only session ends at 15 minutes. */
    if (!bad && (!cwc || strcmp(cwc, "false"))) {
        cJSON *sw;
        bad = add_obj(s, "contextWindowCompression", &sw) || add_obj(sw, "slidingWindow", &x);
    }
    bad = bad || add_obj(s, "inputAudioTranscription", &x);
    char *txt = bad ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt)
        return STENO_ERR_NOMEM;
    steno__sb_puts(out, txt);
    free(txt);
    return steno__sb_status(out);
}

static void append_base64(steno__sb *out, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[v >> 18 & 63];
        q[1] = tab[v >> 12 & 63];
        q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        steno__sb_append(out, q, 4);
    }
}

static int gm_frame_audio(void *conn, const uint8_t *pcm, size_t bytes, steno__sb *out)
{
    gm_conn *c = conn;
    if (!c || (!pcm && bytes))
        return STENO_ERR_INVALID_ARG;
    /* activityStart rides with the audio it opens: the engine sends no message of the adapter's
     * own, so a separate one cannot go out. */
    steno__sb_puts(out, c->activity_open ? "{\"realtimeInput\":{\"audio\":{\"data\":\""
                                         : "{\"realtimeInput\":{\"activityStart\":{},\"audio\":{"
                                           "\"data\":\"");
    append_base64(out, pcm, bytes);
    steno__sb_puts(out, "\",\"mimeType\":\"" MIME "\"}}}");
    int rc = steno__sb_status(out);
    if (rc == STENO_OK)
        c->activity_open = 1;
    return rc;
}

/* The flush: activityEnd closes the activity, so the next audio (sent before its turn may have
 * completed) opens the next one at once instead of going out with no activity open. */
static int gm_finalize_message(void *conn, steno__sb *out)
{
    gm_conn *c = conn;
    if (!c)
        return STENO_ERR_INVALID_ARG;
    steno__sb_puts(out, "{\"realtimeInput\":{\"activityEnd\":{}}}");
    int rc = steno__sb_status(out);
    if (rc == STENO_OK)
        c->activity_open = 0;
    return rc;
}

/* ---- server messages ---- */

/* google.protobuf.Duration in JSON: "12s", "1.5s", "-0.25s". */
static int parse_duration(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!end || end == s || strcmp(end, "s") || !isfinite(v) || v < 0 || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

static int bool_or_absent(const cJSON *o, const char *name, int *out)
{
    *out = 0;
    return steno__json_opt_bool(o, name, out);
}

static int parse_server_content(gm_conn *c, const cJSON *sc, steno__msg *m)
{
    int turn_complete, b;
    if (!cJSON_IsObject(sc) || bool_or_absent(sc, "turnComplete", &turn_complete) ||
        bool_or_absent(sc, "generationComplete", &b) || bool_or_absent(sc, "interrupted", &b) ||
        bool_or_absent(sc, "waitingForInput", &b))
        return STENO_ERR_PARSE;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(sc, "inputTranscription");
    if (it && !cJSON_IsNull(it)) {
        const char *t = NULL;
        if (!cJSON_IsObject(it) || steno__json_opt_str(it, "text", &t))
            return STENO_ERR_PARSE;
        if (t) {
            /* A fragment that would take the turn's text over 1 MB is hostile: refused alone,
             * before it touches the buffer, whose errors are sticky. Appended and failed, it
             * would empty the turn's text and refuse every later fragment of it, and the turn's
             * final, which acknowledges all of its audio, would carry nothing. */
            if (strlen(t) + 1 > MAX_TURN_TEXT - c->text.len)
                return STENO_ERR_PARSE;
            steno__sb_puts(&c->text, t);
            if (steno__sb_status(&c->text))
                return STENO_ERR_PARSE;
        }
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(sc, "modelTurn");
    if (mt && !cJSON_IsNull(mt) && !cJSON_IsObject(mt))
        return STENO_ERR_PARSE;
    m->type = STENO__MSG_IGNORED;
    if (!turn_complete)
        return STENO_OK;
    /* The turn's text, as one final with no words and no span of its own: the engine makes it
     * the answer to the oldest outstanding activityEnd and extends it over the audio sent before
     * that (STENO__FIN_ANSWER_NEXT_FINAL). */
    const char *t = steno__sb_cstr(&c->text);
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        n--;
    m->raw_ = steno__alloc(m->a_, n + 1);
    if (!m->raw_)
        return STENO_ERR_NOMEM;
    memcpy(m->raw_, t, n);
    m->raw_[n] = '\0';
    steno__sb_reset(&c->text);
    m->type = STENO__MSG_RESULTS;
    m->is_final = m->speech_final = 1;
    m->transcript = m->raw_;
    m->start = m->duration = 0;
    m->confidence = 0; /* the API gives none */
    return STENO_OK;
}

static int parse_resumption(gm_conn *c, const cJSON *u)
{
    const char *h = NULL;
    int resumable = 0;
    if (!cJSON_IsObject(u) || steno__json_opt_str(u, "newHandle", &h) ||
        bool_or_absent(u, "resumable", &resumable))
        return STENO_ERR_PARSE;
    if (h && strlen(h) > MAX_HANDLE)
        return STENO_ERR_PARSE;
    /* Only the live connection's session is resumed; a handle that is not resumable says the
     * state at this point could not be restored, so the previous one is kept. */
    if (!c->backfill && c->sess && resumable && h && *h)
        snprintf(c->sess->handle, sizeof c->sess->handle, "%s", h);
    return STENO_OK;
}

static int gm_parse(const steno_allocator *a, void *conn, const char *text, size_t len,
                    steno__msg *m)
{
    gm_conn *c = conn;
    if (!c)
        return STENO_ERR_INVALID_ARG;
    cJSON *root = NULL;
    int brc = steno__msg_begin(a, text, len, m, &root);
    if (brc != STENO_OK)
        return brc;
    static const char *const kinds[] = {"setupComplete", "serverContent",
                                        "toolCall",      "toolCallCancellation",
                                        "goAway",        "sessionResumptionUpdate"};
    const cJSON *body = NULL;
    int which = -1, n = 0;
    for (int i = 0; i < 6; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, kinds[i]);
        if (v && !cJSON_IsNull(v)) {
            body = v;
            which = i;
            n++;
        }
    }
    int rc = STENO_OK;
    m->type = STENO__MSG_IGNORED;
    if (n > 1) {
        rc = STENO_ERR_PARSE; /* one oneof, two members */
    } else if (n == 0) {
        rc = STENO_OK; /* usageMetadata alone, or a message type newer than the proto */
    } else if (!cJSON_IsObject(body)) {
        rc = STENO_ERR_PARSE;
    } else if (which == 0) {
        c->setup_done = 1;
    } else if (which == 1) {
        rc = parse_server_content(c, body, m);
    } else if (which == 4) {
        const char *left = NULL;
        m->type = STENO__MSG_GO_AWAY;
        m->time_left_s = -1;
        if (steno__json_opt_str(body, "timeLeft", &left) ||
            (left && parse_duration(left, &m->time_left_s)))
            rc = STENO_ERR_PARSE;
    } else if (which == 5) {
        rc = parse_resumption(c, body);
    }
    if (rc == STENO_OK)
        return STENO_OK;
    return steno__msg_fail(m, rc);
}

const steno__provider steno__gemini = {
    .name = "gemini",
    .default_url = "wss://generativelanguage.googleapis.com/ws/"
                   "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
    /* No pace limit is documented (unconfirmed): real time, as for AssemblyAI; a backlog is
     * caught up by backfill connections. */
    .speed_permille = 1000,
    .burst_ms = 1000,
    .error_header = NULL,
    .request_id_header = NULL,
    .keepalive_text = NULL, /* none exists; WebSocket pings keep the connection */
    .finalize_text = "{\"realtimeInput\":{\"activityEnd\":{}}}",
    .finalize_message = gm_finalize_message,
    /* The service has no end-of-session message and is not known to close on any client
     * message; audioStreamEnd is the nearest (steno-server ends the session on it). */
    .close_text = "{\"realtimeInput\":{\"audioStreamEnd\":true}}",
    .finalize_answer = STENO__FIN_ANSWER_NEXT_FINAL,
    .finalize_before_close = 1,
    .client_closes = 1,
    .min_chunk_ms = 0,
    .max_chunk_ms = 0,
    .check_option = gm_check_option,
    .check_set = gm_check_set,
    .build_url = gm_build_url,
    .handshake_headers = gm_handshake_headers,
    .credential_query = gm_credential_query,
    .session_new = gm_session_new,
    .session_free = gm_session_free,
    .conn_new = gm_conn_new,
    .conn_free = gm_conn_free,
    .initial_message = gm_initial_message,
    .frame_audio = gm_frame_audio,
    .configure_message = NULL,
    .parse = gm_parse,
    .next_message = NULL,
};
