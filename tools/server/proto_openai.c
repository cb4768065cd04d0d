/* proto_openai: OpenAI Realtime transcription sessions (GA, /v1/realtime?intent=transcription) on
 * steno-server's machinery: session.created/updated, base64 audio appends, client commits,
 * committed/delta/completed items, error events. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "http.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "util.h"

/*
 * Only manual turns (turn_detection null) are reproduced: the client's
 * input_audio_buffer.commit makes the audio appended since the previous
 * commit one item. The lws thread answers the commit at once with
 * input_audio_buffer.committed (as the service does) and asks the engine to
 * flush; the worker numbers the flushes in the same order, so the engine's
 * from_finalize final closes the same item: its text (every final since the
 * previous flush) goes out as transcription deltas and then one completed
 * event. A commit of less than 100 ms of audio is refused with the service's
 * input_audio_buffer_commit_empty error and creates no item.
 * Audio is audio/pcm: 16-bit mono at 24 kHz, the only rate the service takes.
 */

#define OAI_RATE 24000
#define OAI_MIN_COMMIT_S 0.1
#define OAI_CLOSE_REASON_MAX 123

/* Per-connection state of the lws thread (the record's pparams). */
typedef struct oai_conn {
    unsigned items;     /* items committed so far */
    double committed_s; /* audio seconds at the last commit */
    unsigned events;    /* server event ids issued by this thread */
    char model[48];     /* transcription model */
    char language[16];  /* "" = none */
    char *prompt;       /* NULL = none */
    int update_seen;    /* a session.update was applied */
} oai_conn;

static void item_id(char *out, size_t cap, unsigned n)
{
    snprintf(out, cap, "item_%08u", n);
}

/* --- handshake -------------------------------------------------------------- */

static int oai_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                          const char *retry_after)
{
    (void)request_id;
    cJSON *body = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(body, "error");
    cJSON_AddStringToObject(e, "message", err);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    int rc = srv_http_respond(wsi, status, NULL, b, retry_after);
    free(b);
    return rc;
}

static char *oai_redact_header(enum lws_token_indexes t, const char *v)
{
    (void)v;
    return t == WSI_TOKEN_HTTP_AUTHORIZATION || t == WSI_TOKEN_PROTOCOL ? strdup("<redacted>")
                                                                        : NULL;
}

static int has_arg(const char *const *args, size_t nargs, const char *kv)
{
    for (size_t i = 0; i < nargs; i++)
        if (!strcmp(args[i], kv))
            return 1;
    return 0;
}

static void oai_admit(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                      int too_many, srv_admit *out)
{
    const char *key = srv_g.cfg.api_key;
    if (key) {
        /* "Bearer <key>"; the service upgrades, then refuses with an error event and 3000. */
        char *a = srv_http_dup_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
        int ok = a && !strncmp(a, "Bearer ", 7) && !strcmp(a + 7, key);
        free(a);
        if (!ok) {
            out->close_code = 3000;
            snprintf(out->err, sizeof(out->err),
                     "Incorrect API key provided. You can find your API key at your account's "
                     "API keys page.");
            return;
        }
    }
    if (too_many || !has_arg(args, nargs, "intent=transcription")) {
        /* ?model= opens a conversation session, which refuses transcription updates. */
        out->close_code = 1008;
        snprintf(out->err, sizeof(out->err),
                 "This server serves transcription sessions only: connect to "
                 "/v1/realtime?intent=transcription");
        return;
    }
    oai_conn *p = calloc(1, sizeof(*p));
    if (!p) {
        out->status = 503;
        snprintf(out->err, sizeof(out->err), "Out of memory");
        return;
    }
    snprintf(p->model, sizeof(p->model), "gpt-4o-transcribe");
    r->pparams = p;
    r->params_ok = 1;
    r->rate = OAI_RATE;
    r->channels = 1;
    r->sample_bytes = 2;
    if (srv_g.cfg.max_connections > 0 && srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
        out->close_code = 1013;
        snprintf(out->err, sizeof(out->err), "Too many concurrent sessions");
    }
}

/* --- events ----------------------------------------------------------------- */

static void event_id(char *out, size_t cap, char who, unsigned n)
{
    snprintf(out, cap, "event_%c%08u", who, n);
}

static char *error_event(const char *eid, const char *type, const char *code, const char *message,
                         const char *param, const char *client_event_id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", eid);
    cJSON_AddStringToObject(o, "type", "error");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "type", type);
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    cJSON_AddStringToObject(e, "message", message);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (client_event_id)
        cJSON_AddStringToObject(e, "event_id", client_event_id);
    else
        cJSON_AddNullToObject(e, "event_id");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void next_eid(srv_conn *c, char *out, size_t cap)
{
    oai_conn *p = c->rec->pparams;
    event_id(out, cap, 'L', p ? ++p->events : 0);
}

/* An error event; the session stays open, as for most of the service's errors. */
static void send_error(srv_conn *c, const char *code, const char *message, const char *param,
                       const char *client_event_id)
{
    char eid[32];
    next_eid(c, eid, sizeof(eid));
    srv_conn_send_now(
        c, error_event(eid, "invalid_request_error", code, message, param, client_event_id),
        SRV_MSG_ERROR);
}

/* An error event, then the close frame (whose reason is cut to what it holds). */
static void oai_close_error_typed(srv_conn *c, int code, const char *etype, const char *ecode,
                                  const char *reason, const char *cause)
{
    char eid[32];
    next_eid(c, eid, sizeof(eid));
    const char *shown = strlen(reason) > OAI_CLOSE_REASON_MAX ? "see the error event" : reason;
    srv_conn_close_with(c, code, shown, cause, error_event(eid, etype, ecode, reason, NULL, NULL),
                        SRV_MSG_ERROR);
}

static void oai_close_error(srv_conn *c, int code, const char *reason, const char *cause)
{
    oai_close_error_typed(c, code, "invalid_request_error",
                          code == 3000 ? "invalid_api_key" : "invalid_request", reason, cause);
}

static cJSON *session_json(const srv_conn *c)
{
    const oai_conn *p = c->rec->pparams;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "transcription");
    cJSON_AddStringToObject(s, "id", c->rec->request_id);
    cJSON_AddStringToObject(s, "object", "realtime.transcription_session");
    cJSON_AddNumberToObject(s, "expires_at",
                            floor(c->rec->start_wall) + (double)srv_g.cfg.session_limit_s);
    cJSON_AddArrayToObject(s, "include");
    cJSON *in = cJSON_AddObjectToObject(cJSON_AddObjectToObject(s, "audio"), "input");
    cJSON *f = cJSON_AddObjectToObject(in, "format");
    cJSON_AddStringToObject(f, "type", "audio/pcm");
    cJSON_AddNumberToObject(f, "rate", OAI_RATE);
    cJSON *t = cJSON_AddObjectToObject(in, "transcription");
    cJSON_AddStringToObject(t, "model", p->model);
    if (p->language[0])
        cJSON_AddStringToObject(t, "language", p->language);
    if (p->prompt)
        cJSON_AddStringToObject(t, "prompt", p->prompt);
    cJSON_AddNullToObject(in, "turn_detection");
    return s;
}

static void send_session(srv_conn *c, const char *type)
{
    char eid[32];
    next_eid(c, eid, sizeof(eid));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", eid);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddItemToObject(o, "session", session_json(c));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    srv_conn_send_now(c, s, SRV_MSG_BEGIN);
}

/* --- connection ------------------------------------------------------------- */

static void oai_setup(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi)
{
    const oai_conn *p = r->pparams;
    snprintf(mi->model_name, sizeof(mi->model_name), "%s", p->model);
    sp->interim_results = 0; /* deltas carry final text only */
    sp->endpointing_ms = 10; /* the engine's own pauses split an item's text */
}

static void oai_opened(srv_conn *c)
{
    c->idle_ms = 0; /* no idle timeout is documented */
    c->limit_ms = srv_g.cfg.session_limit_s * 1000;
    send_session(c, "session.created");
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Applies a session.update; an error event for what this server does not take. */
static void session_update(srv_conn *c, const cJSON *j, const char *ceid)
{
    oai_conn *p = c->rec->pparams;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "session");
    if (!cJSON_IsObject(s)) {
        send_error(c, "missing_required_parameter", "Missing required parameter: 'session'.",
                   "session", ceid);
        return;
    }
    const char *type = str_field(s, "type");
    if (!type || strcmp(type, "transcription")) {
        send_error(c, "invalid_value",
                   "Passing a realtime session update event to a transcription session is not "
                   "allowed: session.type must be 'transcription'.",
                   "session.type", ceid);
        return;
    }
    const cJSON *in =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "audio"), "input");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(in, "format");
    if (fmt) {
        const char *ft = str_field(fmt, "type");
        const cJSON *rate = cJSON_GetObjectItemCaseSensitive(fmt, "rate");
        if (!ft || strcmp(ft, "audio/pcm") ||
            (rate && !(cJSON_IsNumber(rate) && rate->valuedouble == OAI_RATE))) {
            send_error(c, "invalid_value",
                       "This server takes audio/pcm at 24000 Hz only (16-bit mono).",
                       "session.audio.input.format", ceid);
            return;
        }
    }
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(in, "turn_detection");
    if (td && !cJSON_IsNull(td)) {
        send_error(c, "unsupported_value",
                   "This server reproduces manual turns only: set turn_detection to null and "
                   "commit with input_audio_buffer.commit.",
                   "session.audio.input.turn_detection", ceid);
        return;
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(in, "transcription");
    if (tr && !cJSON_IsObject(tr)) {
        send_error(c, "invalid_type", "Invalid type for 'session.audio.input.transcription'.",
                   "session.audio.input.transcription", ceid);
        return;
    }
    const char *model = str_field(tr, "model"), *lang = str_field(tr, "language"),
               *prompt = str_field(tr, "prompt");
    if (model)
        snprintf(p->model, sizeof(p->model), "%s", model);
    if (lang)
        snprintf(p->language, sizeof(p->language), "%s", lang);
    if (prompt) {
        char *d = strdup(prompt);
        if (d) {
            free(p->prompt);
            p->prompt = d;
        }
    }
    p->update_seen = 1;
    srv_record *r = c->rec;
    if (!r->config_updates)
        r->config_updates = cJSON_CreateArray();
    if (r->config_updates && cJSON_GetArraySize(r->config_updates) < SRV_CONTROL_LOG_MAX)
        cJSON_AddItemToArray(r->config_updates, cJSON_Duplicate(j, 1));
    send_session(c, "session.updated");
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Strict standard base64 (padded, no whitespace): the byte count, or -1. */
static long b64_decode(const char *in, size_t n, uint8_t *out)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
        if (pad == 1 && in[i + 2] == '=')
            return -1; /* "x=y=" */
        int v[4] = {0, 0, 0, 0};
        for (int k = 0; k < 4 - pad; k++)
            if ((v[k] = b64_value(in[i + k])) < 0)
                return -1;
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

static void append(srv_conn *c, const cJSON *j, const char *ceid)
{
    const char *b64 = str_field(j, "audio");
    if (!b64) {
        send_error(c, "missing_required_parameter", "Missing required parameter: 'audio'.", "audio",
                   ceid);
        return;
    }
    size_t n = strlen(b64);
    uint8_t *pcm = malloc(n / 4 * 3 + 3);
    if (!pcm) {
        oai_close_error_typed(c, 1011, "server_error", NULL, "The server had an error", "nomem");
        return;
    }
    long got = b64_decode(b64, n, pcm);
    if (got < 0) {
        free(pcm);
        send_error(c, "invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.",
                   "audio", ceid);
        return;
    }
    srv_conn_audio(c, pcm, (size_t)got);
    free(pcm);
}

static void commit(srv_conn *c, const char *ceid)
{
    oai_conn *p = c->rec->pparams;
    double now_s = srv_conn_audio_s(c);
    double have = now_s - p->committed_s;
    if (have < OAI_MIN_COMMIT_S - 1e-9) {
        /* The service's refusal; the buffer keeps its audio for the next commit. */
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "Error committing input audio buffer: buffer too small. Expected at least "
                 "100ms of audio, but buffer only has %.2fms of audio.",
                 have * 1000.0);
        send_error(c, "input_audio_buffer_commit_empty", msg, NULL, ceid);
        return;
    }
    p->committed_s = now_s;
    char eid[32], id[32], prev[32];
    next_eid(c, eid, sizeof(eid));
    item_id(id, sizeof(id), p->items);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", eid);
    cJSON_AddStringToObject(o, "type", "input_audio_buffer.committed");
    if (p->items) {
        item_id(prev, sizeof(prev), p->items - 1);
        cJSON_AddStringToObject(o, "previous_item_id", prev);
    } else {
        cJSON_AddNullToObject(o, "previous_item_id");
    }
    cJSON_AddStringToObject(o, "item_id", id);
    p->items++;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    srv_conn_send_now(c, s, SRV_MSG_RESULTS);
    srv_job_finalize(c->job);
}

static void oai_on_text(srv_conn *c, const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    const char *type = cJSON_IsObject(j) ? str_field(j, "type") : NULL;
    const char *ceid = cJSON_IsObject(j) ? str_field(j, "event_id") : NULL;
    if (!j) {
        c->rec->invalid_text++;
        send_error(c, "invalid_json", "The server could not parse the event: it is not valid JSON.",
                   NULL, NULL);
    } else if (!type) {
        c->rec->invalid_text++;
        send_error(c, "missing_required_parameter", "Missing required parameter: 'type'.", "type",
                   ceid);
    } else if (!strcmp(type, "input_audio_buffer.append")) {
        append(c, j, ceid);
    } else if (!strcmp(type, "input_audio_buffer.commit")) {
        srv_conn_control_seen(c, SRV_CTL_OAI_COMMIT);
        if (!c->input_done)
            commit(c, ceid);
    } else if (!strcmp(type, "session.update")) {
        srv_conn_control_seen(c, SRV_CTL_OAI_SESSION_UPDATE);
        session_update(c, j, ceid);
    } else if (!strcmp(type, "input_audio_buffer.clear")) {
        srv_conn_control_seen(c, SRV_CTL_OAI_CLEAR);
        /* The engine cannot take back audio it was fed. */
        send_error(c, "unsupported_event", "This server does not support input_audio_buffer.clear.",
                   "type", ceid);
    } else {
        c->rec->invalid_text++;
        char msg[160];
        snprintf(msg, sizeof(msg), "Invalid value: '%.80s'. Supported values are client events.",
                 type);
        send_error(c, "invalid_value", msg, "type", ceid);
    }
    cJSON_Delete(j);
}

static int oai_audio_message(srv_conn *c, uint64_t bytes)
{
    (void)bytes;
    if (c->msg_binary) {
        oai_close_error(c, 1003,
                        "Binary frames are not supported: send input_audio_buffer.append events",
                        "bad_audio");
        return -1;
    }
    return 0;
}

static void oai_fail(srv_conn *c, srv_fail why)
{
    char reason[128];
    switch (why) {
    case SRV_FAIL_IDLE:
        oai_close_error_typed(c, 1000, "invalid_request_error", "session_idle",
                              "The session was idle for too long", "idle");
        break;
    case SRV_FAIL_BAD_AUDIO:
        oai_close_error(c, 1007, "Invalid 'audio': not a whole number of 16-bit samples",
                        "bad_audio");
        break;
    case SRV_FAIL_TOO_BIG:
        oai_close_error(c, 1009, "The event is too large", "too_big");
        break;
    case SRV_FAIL_RATE:
        snprintf(reason, sizeof(reason), "RATE-0000 audio faster than %gx real time",
                 srv_g.cfg.max_rate);
        oai_close_error_typed(c, 1008, "invalid_request_error", "rate_limit_exceeded", reason,
                              "rate");
        break;
    case SRV_FAIL_ENGINE:
        oai_close_error_typed(c, 1011, "server_error", NULL, "The server had an error", "engine");
        break;
    case SRV_FAIL_SEND_QUEUE:
        oai_close_error_typed(c, 1011, "server_error", NULL, "The server had an error",
                              "send_queue");
        break;
    case SRV_FAIL_SESSION_LIMIT:
        snprintf(reason, sizeof(reason), "Your session hit the maximum duration of %d %s.",
                 srv_g.cfg.session_limit_s % 60 ? srv_g.cfg.session_limit_s
                                                : srv_g.cfg.session_limit_s / 60,
                 srv_g.cfg.session_limit_s % 60 ? "seconds" : "minutes");
        oai_close_error_typed(c, 1000, "invalid_request_error", "session_expired", reason,
                              "session_limit");
        break;
    }
}

/* --- worker: items ------------------------------------------------------------ */

typedef struct oai_state {
    unsigned item;   /* the item the next flush closes */
    unsigned events; /* server event ids issued by the worker */
    char *text;      /* the open item's final text so far */
    size_t len;
    double item_audio_s; /* audio seconds of the open item so far */
    double last_end_s;
} oai_state;

static void *oai_state_new(const srv_stream_params *sp, const srv_msginfo *mi)
{
    (void)sp;
    (void)mi;
    return calloc(1, sizeof(oai_state));
}

static void oai_state_free(void *p)
{
    oai_state *st = p;
    free(st->text);
    free(st);
}

static void add_text(oai_state *st, const char *t)
{
    if (!t || !*t)
        return;
    size_t n = strlen(t), extra = st->len ? 1 : 0;
    char *s = realloc(st->text, st->len + extra + n + 1);
    if (!s)
        return;
    if (extra)
        s[st->len] = ' ';
    memcpy(s + st->len + extra, t, n + 1);
    st->text = s;
    st->len += extra + n;
}

static cJSON *item_event(oai_state *st, const char *type)
{
    char eid[32], id[32];
    event_id(eid, sizeof(eid), 'W', ++st->events);
    item_id(id, sizeof(id), st->item);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", eid);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "item_id", id);
    cJSON_AddNumberToObject(o, "content_index", 0);
    return o;
}

static char *print(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void oai_on_event(void *p, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                         void *ctx)
{
    oai_state *st = p;
    (void)mi;
    if (ev->kind != SRV_EV_RESULT || !ev->is_final)
        return;
    add_text(st, ev->transcript);
    if (ev->start + ev->duration > st->last_end_s)
        st->last_end_s = ev->start + ev->duration;
    if (!ev->from_finalize)
        return;
    /* The commit's flush: the item's text as one delta, then its completion. */
    if (st->len) {
        cJSON *d = item_event(st, "conversation.item.input_audio_transcription.delta");
        cJSON_AddStringToObject(d, "delta", st->text);
        post(ctx, SRV_MSG_RESULTS, print(d), 0, 0);
    }
    cJSON *o = item_event(st, "conversation.item.input_audio_transcription.completed");
    cJSON_AddStringToObject(o, "transcript", st->len ? st->text : "");
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddStringToObject(u, "type", "duration");
    double end = ev->start + ev->duration;
    cJSON_AddNumberToObject(u, "seconds", round((end - st->item_audio_s) * 1000.0) / 1000.0);
    st->item_audio_s = end;
    post(ctx, SRV_MSG_RESULTS, print(o), 1, end);
    free(st->text);
    st->text = NULL;
    st->len = 0;
    st->item++;
}

static void oai_on_end(void *p, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                       srv_post_fn post, void *ctx)
{
    /* The protocol has no end-of-stream message: the client closes the socket. */
    (void)p;
    (void)mi;
    (void)sha256_hex;
    (void)audio_s;
    (void)post;
    (void)ctx;
}

/* --- faults and records ------------------------------------------------------ */

static const char *const oai_malformed[] = {
    /* truncated JSON */
    "{\"event_id\":\"event_X\",\"type\":\"conversation.item.input_audio_transcription.completed\","
    "\"item_id\":\"item_",
    /* a completion whose fields all have the wrong types */
    "{\"event_id\":1,\"type\":\"conversation.item.input_audio_transcription.completed\","
    "\"item_id\":7,\"content_index\":\"0\",\"transcript\":null,\"usage\":\"none\"}",
    /* an event type the service never sends */
    "{\"event_id\":\"event_X\",\"type\":\"bogus.event\"}",
};

static char *oai_oversized(const srv_msginfo *mi, size_t bytes)
{
    static const char marker[] = "@@PAD@@";
    (void)mi;
    oai_state st = {0};
    cJSON *o = item_event(&st, "conversation.item.input_audio_transcription.delta");
    cJSON_AddStringToObject(o, "delta", marker);
    return srv_msg_pad(print(o), marker, bytes);
}

static const srv_control_kind oai_controls[] = {SRV_CTL_OAI_SESSION_UPDATE, SRV_CTL_OAI_COMMIT,
                                                SRV_CTL_OAI_CLEAR};

static cJSON *oai_params_json(const srv_record *r)
{
    const oai_conn *p = r->pparams;
    if (!p)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", p->model);
    cJSON_AddStringToObject(o, "language", p->language);
    if (p->prompt)
        cJSON_AddStringToObject(o, "prompt", p->prompt);
    cJSON_AddNumberToObject(o, "items_committed", p->items);
    cJSON_AddBoolToObject(o, "session_updated", p->update_seen);
    return o;
}

static void oai_params_free(srv_record *r)
{
    oai_conn *p = r->pparams;
    if (p)
        free(p->prompt);
    free(p);
    r->pparams = NULL;
}

static void oai_record_json(const srv_record *r, cJSON *o)
{
    cJSON_AddStringToObject(o, "protocol", "openai");
    cJSON_AddNumberToObject(o, "session_events_sent", (double)r->begin_sent);
    cJSON_AddNumberToObject(o, "error_sent", (double)r->error_sent);
    cJSON_AddItemToObject(o, "config_updates",
                          r->config_updates ? cJSON_Duplicate(r->config_updates, 1)
                                            : cJSON_CreateArray());
}

const srv_proto srv_proto_openai = {
    .name = "openai",
    .path = "/v1/realtime",
    .http_error = oai_http_error,
    .redact_header = oai_redact_header,
    .admit = oai_admit,
    .setup = oai_setup,
    .opened = oai_opened,
    .on_text = oai_on_text,
    .audio_message = oai_audio_message,
    .close_error = oai_close_error,
    .fail = oai_fail,
    .job_state_new = oai_state_new,
    .job_state_free = oai_state_free,
    .on_event = oai_on_event,
    .on_end = oai_on_end,
    .malformed = oai_malformed,
    .oversized = oai_oversized,
    .controls = oai_controls,
    .n_controls = sizeof(oai_controls) / sizeof(oai_controls[0]),
    .params_json = oai_params_json,
    .params_free = oai_params_free,
    .record_json = oai_record_json,
};
