/* proto_deepgram: Deepgram's live API (/v1/listen) on steno-server's machinery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "http.h"
#include "params.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

/* "token KEY" / "Bearer KEY" (Authorization) or "token, KEY" (the
 * Sec-WebSocket-Protocol form browsers use): the scheme's length, or 0. */
static size_t auth_scheme(const char *v)
{
    if (!strncasecmp(v, "token", 5) && (v[5] == ' ' || v[5] == ','))
        return 5;
    if (!strncasecmp(v, "bearer", 6) && (v[6] == ' ' || v[6] == ','))
        return 6;
    return 0;
}

static int credential_matches(const char *v, const char *key)
{
    size_t n = v ? auth_scheme(v) : 0;
    if (!n)
        return 0;
    v += n;
    while (*v == ' ' || *v == ',')
        v++;
    return !strcmp(v, key);
}

static int check_auth(struct lws *wsi)
{
    const char *key = srv_g.cfg.api_key;
    if (!key)
        return 0;
    char *a = srv_http_dup_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    char *p = srv_http_dup_header(wsi, WSI_TOKEN_PROTOCOL);
    int ok = credential_matches(a, key) || credential_matches(p, key);
    free(a);
    free(p);
    return ok ? 0 : -1;
}

/* Keeps the scheme, hides the credential. */
static char *dg_redact_header(enum lws_token_indexes t, const char *v)
{
    if (!(t == WSI_TOKEN_HTTP_AUTHORIZATION || (t == WSI_TOKEN_PROTOCOL && auth_scheme(v))))
        return NULL;
    size_t n = auth_scheme(v);
    if (!n) {
        const char *sp = strchr(v, ' ');
        n = sp ? (size_t)(sp - v) : 0;
    }
    char *out = malloc(n + 16);
    if (out)
        snprintf(out, n + 16, "%.*s%s<redacted>", (int)n, v, n ? (v[n] == ',' ? ", " : " ") : "");
    return out;
}

/* Deepgram's failed handshakes: dg-request-id, dg-error and a JSON body. */
static int dg_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                         const char *retry_after)
{
    char safe_err[512];
    size_t i;

    /* A header value must stay on one line. */
    for (i = 0; err[i] && i < sizeof(safe_err) - 1; i++)
        safe_err[i] = (err[i] == '\r' || err[i] == '\n') ? ' ' : err[i];
    safe_err[i] = 0;

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "err_code", srv_http_status_text(status));
    cJSON_AddStringToObject(body, "err_msg", safe_err);
    cJSON_AddStringToObject(body, "request_id", request_id);
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    const char *headers[] = {"dg-request-id:", request_id, "dg-error:", safe_err, NULL};
    int rc = srv_http_respond(wsi, status, headers, b, retry_after);
    free(b);
    return rc;
}

static int dg_add_headers(struct lws *wsi, const srv_record *r, struct lws_process_html_args *a)
{
    return lws_add_http_header_by_name(
        wsi, (const unsigned char *)"dg-request-id:", (const unsigned char *)r->request_id, 36,
        (unsigned char **)&a->p, (unsigned char *)a->p + a->max_len);
}

static void dg_admit(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                     int too_many, srv_admit *out)
{
    if (check_auth(wsi)) {
        out->status = 401;
        snprintf(out->err, sizeof(out->err), "Invalid credentials.");
        return;
    }
    if (too_many) {
        out->status = 400;
        snprintf(out->err, sizeof(out->err), "Too many query parameters");
        return;
    }
    srv_params_rules rules = {
        .strict = srv_g.cfg.strict_params,
        .english_only = strcmp(srv_g.engine_ops->name, "null") != 0,
    };
    if (srv_params_parse(&r->params, args, nargs, &rules, out->err, sizeof(out->err))) {
        srv_params_free(&r->params);
        out->status = 400;
        return;
    }
    r->params_ok = 1;
    r->rate = r->params.sample_rate;
    r->channels = r->params.channels;
    r->sample_bytes = 2;
    if (srv_g.cfg.max_connections > 0 && srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
        out->status = 429;
        snprintf(out->err, sizeof(out->err), "Too many concurrent connections");
    }
}

static void dg_setup(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi)
{
    const srv_params *p = &r->params;
    snprintf(mi->model_name, sizeof(mi->model_name), "%s", p->model);
    sp->interim_results = p->interim_results;
    sp->endpointing_ms = p->endpointing_ms;
    sp->utterance_end_ms = p->utterance_end_ms;
    sp->vad_events = p->vad_events;
}

static void dg_on_text(srv_conn *c, const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (type && !strcmp(type, "KeepAlive")) {
        srv_conn_control_seen(c, SRV_CTL_KEEPALIVE);
    } else if (type && !strcmp(type, "Finalize")) {
        srv_conn_control_seen(c, SRV_CTL_FINALIZE);
        if (!c->input_done)
            srv_job_finalize(c->job);
    } else if (type && !strcmp(type, "CloseStream")) {
        srv_conn_control_seen(c, SRV_CTL_CLOSESTREAM);
        if (!c->input_done)
            srv_conn_end_stream(c, "CloseStream");
    } else {
        c->rec->invalid_text++;
        srv_conn_close(c, 1008, "DATA-0001 unrecognised text message", "bad_text", 0);
    }
    cJSON_Delete(j);
}

static void dg_fail(srv_conn *c, srv_fail why)
{
    char reason[96];
    switch (why) {
    case SRV_FAIL_IDLE:
        srv_conn_close(c, 1011, "NET-0001", "idle", 0);
        break;
    case SRV_FAIL_BAD_AUDIO:
        srv_conn_close(c, 1008, "DATA-0000", "bad_audio", 0);
        break;
    case SRV_FAIL_TOO_BIG:
        srv_conn_close(c, 1009, "message too big", "too_big", 0);
        break;
    case SRV_FAIL_RATE:
        snprintf(reason, sizeof(reason), "RATE-0000 audio faster than %gx real time",
                 srv_g.cfg.max_rate);
        srv_conn_close(c, 1008, reason, "rate", 0);
        break;
    case SRV_FAIL_ENGINE:
        srv_conn_close(c, 1011, "ENGINE-0000 recognition engine failed", "engine", 0);
        break;
    case SRV_FAIL_SEND_QUEUE:
        srv_conn_close(c, 1011, "NET-0000 client is not reading", "send_queue", 0);
        break;
    case SRV_FAIL_SESSION_LIMIT:
        srv_conn_close(c, 1011, "NET-0000 session limit reached", "session_limit", 0);
        break;
    }
}

/* Deepgram documents no session limit; an explicit --session-limit-s makes the server end
 * each connection that old anyway (the way any server may end a stream), for tests. */
static void dg_opened(srv_conn *c)
{
    if (srv_g.cfg.session_limit_set)
        c->limit_ms = srv_g.cfg.session_limit_s * 1000;
}

static void dg_on_event(void *st, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                        void *ctx)
{
    (void)st;
    switch (ev->kind) {
    case SRV_EV_RESULT:
        post(ctx, SRV_MSG_RESULTS, srv_msg_results(mi, ev), ev->is_final, ev->start + ev->duration);
        break;
    case SRV_EV_SPEECH_STARTED:
        post(ctx, SRV_MSG_SPEECH_STARTED, srv_msg_speech_started(mi, ev->start), 0, 0);
        break;
    case SRV_EV_UTTERANCE_END:
        post(ctx, SRV_MSG_UTTERANCE_END, srv_msg_utterance_end(mi, ev->last_word_end), 0, 0);
        break;
    }
}

static void dg_on_end(void *st, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                      srv_post_fn post, void *ctx)
{
    (void)st;
    post(ctx, SRV_MSG_METADATA, srv_msg_metadata(mi, sha256_hex, audio_s), 0, 0);
}

static const char *const dg_malformed[] = {
    /* truncated JSON */
    "{\"type\":\"Results\",\"channel_index\":[0,1],\"duration\":1.0,\"start\":0.0,\"is_fi",
    /* a Results whose fields all have the wrong types */
    "{\"type\":\"Results\",\"channel_index\":\"zero\",\"duration\":\"1.0\",\"start\":null,"
    "\"is_final\":\"yes\",\"speech_final\":1,\"channel\":{\"alternatives\":\"none\"},"
    "\"metadata\":7}",
    /* a message type Deepgram never sends */
    "{\"type\":\"Bogus\"}",
};

static const srv_control_kind dg_controls[] = {SRV_CTL_KEEPALIVE, SRV_CTL_FINALIZE,
                                               SRV_CTL_CLOSESTREAM, SRV_CTL_EMPTY_BINARY};

static cJSON *dg_params_json(const srv_record *r)
{
    return srv_params_json(&r->params);
}

const srv_proto srv_proto_deepgram = {
    .name = "deepgram",
    .path = "/v1/listen",
    .http_error = dg_http_error,
    .add_headers = dg_add_headers,
    .redact_header = dg_redact_header,
    .admit = dg_admit,
    .setup = dg_setup,
    .opened = dg_opened,
    .on_text = dg_on_text,
    .fail = dg_fail,
    .on_event = dg_on_event,
    .on_end = dg_on_end,
    .malformed = dg_malformed,
    .oversized = srv_msg_oversized,
    .result_message = srv_msg_results,
    .controls = dg_controls,
    .n_controls = sizeof(dg_controls) / sizeof(dg_controls[0]),
    .params_json = dg_params_json,
};
