/* listen: the /v1/listen WebSocket endpoint: handshake validation, audio and
 * control messages in, results out, timers, and fault actions on connections. */
#include "listen.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "control.h"
#include "faults.h"
#include "pool.h"
#include "server.h"
#include "util.h"

#define TEXT_MAX 65536
/* Stop reading a connection whose audio waits for a worker beyond this. */
#define BACKLOG_HIGH (4u << 20)
#define MAX_ARGS 256
/* Results waiting for a client that does not read: beyond this it is cut off. */
#define QUEUE_MAX (16u << 20)

struct srv_conn {
    struct lws *wsi;
    srv_record *rec;
    srv_job *job;
    srv_msginfo mi;
    int established;

    srv_out *q_head, *q_tail; /* results, in order, each with a due time */
    size_t q_bytes;
    srv_out *inj_head, *inj_tail; /* fault frames: sent first, never delayed */
    lws_sorted_usec_list_t sul_idle, sul_due;
    int due_scheduled;
    int64_t last_activity_us, first_audio_us;

    /* the message being received */
    int msg_binary;
    uint64_t msg_bytes, msg_offset, msg_fnv;
    int64_t msg_start_us;
    uint8_t carry;
    int have_carry;
    char *text;
    size_t text_len;

    int stalled, backlogged, rx_on;
    int delay_ms;   /* -1: the global delay */
    int input_done; /* CloseStream seen, or closing: ignore further input */
    int close_pending, close_after_flush, close_code;
    int close_sent; /* returned -1 once: lws now owns the close handshake */
    int dropping;   /* abort without a close frame */
    char close_reason[124];
    const char *close_cause;
};

/* --- helpers -------------------------------------------------------------- */

static double conn_age_s(const srv_conn *c, int64_t now)
{
    return (double)(now - c->rec->start_mono) / 1e6;
}

static void update_rx(srv_conn *c)
{
    /* Keep reading while closing so the peer's close reply is seen. */
    int want = c->close_pending || !(c->stalled || c->backlogged);
    if (want != c->rx_on) {
        lws_rx_flow_control(c->wsi, want);
        c->rx_on = want;
    }
}

static void free_list(srv_out **head, srv_out **tail)
{
    srv_out *o = *head;
    while (o) {
        srv_out *n = o->next;
        srv_out_free(o);
        o = n;
    }
    *head = *tail = NULL;
}

static void push_out(srv_out **head, srv_out **tail, srv_out *o)
{
    o->next = NULL;
    if (*tail)
        (*tail)->next = o;
    else
        *head = o;
    *tail = o;
}

static srv_out *pop_out(srv_out **head, srv_out **tail)
{
    srv_out *o = *head;
    if (o) {
        *head = o->next;
        if (!*head)
            *tail = NULL;
        o->next = NULL;
    }
    return o;
}

/* Server-initiated close: `after_flush` lets queued results (and Metadata)
 * go out first, as after CloseStream; otherwise they are dropped. */
static void conn_close(srv_conn *c, int code, const char *reason, const char *cause,
                       int after_flush)
{
    if (c->close_pending)
        return;
    c->close_pending = 1;
    c->close_after_flush = after_flush;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    c->close_cause = cause;
    c->input_done = 1;
    c->stalled = 0;
    if (!after_flush) {
        free_list(&c->q_head, &c->q_tail);
        c->q_bytes = 0;
    }
    update_rx(c);
    lws_callback_on_writable(c->wsi);
}

static void due_cb(lws_sorted_usec_list_t *sul)
{
    srv_conn *c = lws_container_of(sul, srv_conn, sul_due);
    c->due_scheduled = 0;
    lws_callback_on_writable(c->wsi);
}

static void idle_cb(lws_sorted_usec_list_t *sul)
{
    srv_conn *c = lws_container_of(sul, srv_conn, sul_idle);
    int64_t now = srv_mono_us(), limit = (int64_t)srv_g.cfg.idle_timeout_ms * 1000;
    if (c->close_pending)
        return;
    /* After CloseStream the client is waiting on us (the engine may still be working through a
     * backlog on a loaded machine): nothing it could send would count, so do not call it idle. */
    if (c->input_done)
        return;
    if (c->stalled) {
        lws_sul_schedule(srv_g.ctx, 0, &c->sul_idle, idle_cb, limit);
        return;
    }
    int64_t idle = now - c->last_activity_us;
    if (idle >= limit) {
        conn_close(c, 1011, "NET-0001", "idle", 0);
        return;
    }
    lws_sul_schedule(srv_g.ctx, 0, &c->sul_idle, idle_cb, limit - idle);
}

static void touch(srv_conn *c, int64_t now)
{
    c->last_activity_us = now;
}

/* --- handshake ------------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Error";
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Writes a complete HTTP error response with Deepgram's headers and a JSON
 * body; the caller ends the transaction. */
static int send_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                           const char *retry_after)
{
    unsigned char buf[LWS_PRE + 4096], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf) - 1;
    char clen[24], safe_err[512];
    size_t i;

    /* A header value must stay on one line. */
    for (i = 0; err[i] && i < sizeof(safe_err) - 1; i++)
        safe_err[i] = (err[i] == '\r' || err[i] == '\n') ? ' ' : err[i];
    safe_err[i] = 0;

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "err_code", status_text(status));
    cJSON_AddStringToObject(body, "err_msg", safe_err);
    cJSON_AddStringToObject(body, "request_id", request_id);
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    size_t blen = strlen(b);
    snprintf(clen, sizeof(clen), "%zu", blen);

    /* Written by hand: before the upgrade is decided lws has not noted the
     * request's HTTP version and would answer "HTTP/1.0", which WebSocket
     * clients refuse to parse. */
    p += lws_snprintf((char *)p, (size_t)(end - p), "HTTP/1.1 %d %s\r\n", status,
                      status_text(status));
    if (add_header(wsi, "dg-request-id:", request_id, &p, end) ||
        add_header(wsi, "dg-error:", safe_err, &p, end) ||
        add_header(wsi, "content-type:", "application/json", &p, end) ||
        add_header(wsi, "content-length:", clen, &p, end) ||
        (retry_after && *retry_after && add_header(wsi, "retry-after:", retry_after, &p, end)) ||
        add_header(wsi, "connection:", "close", &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < blen) {
        free(b);
        return -1;
    }
    memcpy(p, b, blen);
    p += blen;
    free(b);
    return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
}

static char *dup_header(struct lws *wsi, enum lws_token_indexes t)
{
    int n = lws_hdr_total_length(wsi, t);
    if (n <= 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_copy(wsi, v, n + 1, t) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

static void rec_add_header(srv_record *r, const char *name, char *value)
{
    srv_kv *h = realloc(r->headers, (r->n_headers + 1) * sizeof(*h));
    if (!h) {
        free(value);
        return;
    }
    r->headers = h;
    h[r->n_headers].name = strdup(name);
    h[r->n_headers].value = value;
    if (!h[r->n_headers].name) {
        free(value);
        return;
    }
    r->n_headers++;
}

static size_t auth_scheme(const char *v);

/* Keeps the scheme, hides the credential. */
static char *redact_auth(const char *v)
{
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

static void record_headers(struct lws *wsi, srv_record *r)
{
    char name[64];
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const char *tn = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        size_t n = tn ? strlen(tn) : 0;
        /* Only real header names ("host:"), not methods or pseudo-headers. */
        if (n < 2 || n >= sizeof(name) || tn[n - 1] != ':' || tn[0] == ':')
            continue;
        char *v = dup_header(wsi, (enum lws_token_indexes)t);
        if (!v)
            continue;
        for (size_t i = 0; i < n - 1; i++)
            name[i] = (char)tolower((unsigned char)tn[i]);
        name[n - 1] = 0;
        if (t == WSI_TOKEN_HTTP_AUTHORIZATION || (t == WSI_TOKEN_PROTOCOL && auth_scheme(v))) {
            char *red = redact_auth(v);
            free(v);
            v = red;
            if (!v)
                continue;
        }
        rec_add_header(r, name, v);
    }
    for (size_t i = 0; i < srv_g.cfg.n_record_headers; i++) {
        const char *h = srv_g.cfg.record_headers[i];
        size_t n = strlen(h);
        if (n + 2 > sizeof(name))
            continue;
        for (size_t k = 0; k < n; k++)
            name[k] = (char)tolower((unsigned char)h[k]);
        name[n] = ':';
        name[n + 1] = 0;
        int vl = lws_hdr_custom_length(wsi, name, (int)n + 1);
        if (vl < 0)
            continue;
        char *v = malloc((size_t)vl + 1);
        if (!v)
            continue;
        if (lws_hdr_custom_copy(wsi, v, vl + 1, name, (int)n + 1) < 0) {
            free(v);
            continue;
        }
        name[n] = 0;
        rec_add_header(r, name, v);
    }
}

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
    char *a = dup_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    char *p = dup_header(wsi, WSI_TOKEN_PROTOCOL);
    int ok = credential_matches(a, key) || credential_matches(p, key);
    free(a);
    free(p);
    return ok ? 0 : -1;
}

static int reject(struct lws *wsi, srv_record *r, int status, const char *err,
                  const char *retry_after)
{
    r->state = SRV_REC_REJECTED;
    r->handshake_status = status;
    free(r->handshake_error);
    r->handshake_error = strdup(err);
    srv_g.stats.handshakes_rejected++;
    if (srv_g.cfg.verbose)
        lwsl_user("handshake %llu rejected: %d %s\n", (unsigned long long)r->id, status, err);
    int rc = send_http_error(wsi, status, r->request_id, err, retry_after);
    srv_rec_ended(r);
    srv_control_record_ended(r->id);
    /* >0: we answered; lws completes the transaction. <0: just hang up. */
    return rc ? -1 : 1;
}

static void fill_msginfo(srv_conn *c)
{
    srv_msginfo *mi = &c->mi;
    const srv_params *p = &c->rec->params;
    snprintf(mi->request_id, sizeof(mi->request_id), "%s", c->rec->request_id);
    snprintf(mi->model_name, sizeof(mi->model_name), "%s", p->model);
    snprintf(mi->model_version, sizeof(mi->model_version), "steno-%s-1", srv_g.engine_ops->name);
    snprintf(mi->model_arch, sizeof(mi->model_arch), "steno-%s", srv_g.engine_ops->name);
    char seed[96];
    snprintf(seed, sizeof(seed), "%s/%s", srv_g.engine_ops->name, p->model);
    srv_uuid_from_name(seed, mi->model_uuid);
    srv_iso8601(c->rec->start_wall, mi->created);
    mi->channels = p->channels;
    mi->sample_rate = p->sample_rate;
}

/* --max-handshake-rate: a token bucket holding at most one second of handshakes, so a server
 * coming back from an outage admits R per second however many clients are waiting. */
static int handshake_rate_exceeded(void)
{
    double rate = srv_g.cfg.max_handshake_rate;
    if (rate <= 0)
        return 0;
    int64_t now = srv_mono_us();
    double burst = rate < 1 ? 1 : rate;
    if (!srv_g.hs_refill_us)
        srv_g.hs_tokens = burst;
    else
        srv_g.hs_tokens += rate * (double)(now - srv_g.hs_refill_us) / 1e6;
    if (srv_g.hs_tokens > burst)
        srv_g.hs_tokens = burst;
    srv_g.hs_refill_us = now;
    if (srv_g.hs_tokens < 1)
        return 1;
    srv_g.hs_tokens -= 1;
    return 0;
}

static int handshake(struct lws *wsi)
{
    srv_record *r = srv_rec_new();
    char *args[MAX_ARGS];
    size_t nargs = 0, qlen = 0;
    char err[512];
    int rc;

    if (!r)
        return -1;
    lws_get_peer_simple(wsi, r->peer, sizeof(r->peer));
    r->path = dup_header(wsi, WSI_TOKEN_GET_URI);
    record_headers(wsi, r);

    /* Any one fragment fits in a buffer as long as all of them. */
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *frag = malloc(total > 0 ? (size_t)total + 1 : 1);
    int too_many = 0;
    for (int i = 0; frag && total > 0; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (nargs == MAX_ARGS) {
            too_many = 1;
            break;
        }
        if (!(args[nargs] = strdup(frag)))
            break;
        qlen += (size_t)n + 1;
        nargs++;
    }
    free(frag);
    r->query = malloc(qlen + 1);
    if (r->query) {
        r->query[0] = 0;
        for (size_t i = 0; i < nargs; i++) {
            if (i)
                strcat(r->query, "&");
            strcat(r->query, args[i]);
        }
    }

    srv_faults *f = &srv_g.faults;
    if (!r->path || (strcmp(r->path, "/v1/listen") && strcmp(r->path, "/v1/listen/"))) {
        rc = reject(wsi, r, 404, "Not found: this server serves /v1/listen", NULL);
    } else if (srv_g.shutting_down) {
        rc = reject(wsi, r, 503, "Server shutting down", NULL);
    } else if (f->down) {
        rc =
            reject(wsi, r, f->down_status, "Service unavailable (down fault)", f->down_retry_after);
    } else if (handshake_rate_exceeded()) {
        rc = reject(wsi, r, 429, "Too many handshakes: over the server's handshake rate", "1");
    } else if (f->reject_next > 0) {
        f->reject_next--;
        rc = reject(wsi, r, f->reject_status,
                    f->reject_error[0] ? f->reject_error : "Rejected by fault injection",
                    f->reject_retry_after);
    } else if (check_auth(wsi)) {
        rc = reject(wsi, r, 401, "Invalid credentials.", NULL);
    } else if (too_many) {
        rc = reject(wsi, r, 400, "Too many query parameters", NULL);
    } else {
        srv_params_rules rules = {
            .strict = srv_g.cfg.strict_params,
            .english_only = strcmp(srv_g.engine_ops->name, "null") != 0,
        };
        if (srv_params_parse(&r->params, (const char *const *)args, nargs, &rules, err,
                             sizeof(err))) {
            srv_params_free(&r->params);
            rc = reject(wsi, r, 400, err, NULL);
        } else if (r->params_ok = 1, srv_g.cfg.max_connections > 0 &&
                                         srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
            rc = reject(wsi, r, 429, "Too many concurrent connections", NULL);
        } else {
            srv_conn *c = calloc(1, sizeof(*c));
            if (!c) {
                rc = reject(wsi, r, 503, "Out of memory", NULL);
            } else {
                c->rec = r;
                c->delay_ms = -1;
                c->rx_on = 1;
                r->conn = c;
                r->handshake_status = 101;
                lws_set_opaque_user_data(wsi, c);
                rc = 0;
            }
        }
    }
    for (size_t i = 0; i < nargs; i++)
        free(args[i]);
    return rc;
}

/* --- established connections ---------------------------------------------- */

static int established(struct lws *wsi, srv_conn *c)
{
    srv_record *r = c->rec;
    c->wsi = wsi;
    c->established = 1;
    r->state = SRV_REC_OPEN;
    srv_g.n_active++;
    srv_g.stats.connections_total++;
    fill_msginfo(c);
    srv_stream_params sp = {
        .sample_rate = (uint32_t)r->params.sample_rate,
        .channels = (uint32_t)r->params.channels,
        .interim_results = r->params.interim_results,
        .endpointing_ms = r->params.endpointing_ms,
        .utterance_end_ms = r->params.utterance_end_ms,
        .vad_events = r->params.vad_events,
        .null_span_s = srv_g.cfg.null_span_ms / 1000.0,
        .no_digests = srv_g.cfg.no_digests,
    };
    c->job = srv_job_open(srv_g.pool, &sp, &c->mi, c);
    c->last_activity_us = srv_mono_us();
    if (srv_g.cfg.idle_timeout_ms > 0)
        lws_sul_schedule(srv_g.ctx, 0, &c->sul_idle, idle_cb,
                         (lws_usec_t)srv_g.cfg.idle_timeout_ms * 1000);
    if (!c->job)
        conn_close(c, 1011, "ENGINE-0000 out of memory", "engine", 0);
    if (srv_g.cfg.verbose)
        lwsl_user("connection %llu open\n", (unsigned long long)r->id);
    return 0;
}

static void conn_destroy(struct lws *wsi, srv_conn *c)
{
    srv_record *r = c->rec;
    lws_sul_cancel(&c->sul_idle);
    lws_sul_cancel(&c->sul_due);
    free_list(&c->q_head, &c->q_tail);
    free_list(&c->inj_head, &c->inj_tail);
    free(c->text);
    srv_job_release(c->job);
    lws_set_opaque_user_data(wsi, NULL);
    if (c->established) {
        if (!r->closed_by) {
            /* The TCP connection ended without a close frame either way. */
            r->closed_by = "none";
            r->close_cause = c->close_cause ? c->close_cause : "disconnect";
        }
        r->state = SRV_REC_CLOSED;
        srv_g.n_active--;
        srv_g.stats.closes[r->close_code >= 0 && r->close_code < 5000 ? r->close_code : 0]++;
        if (srv_g.cfg.verbose)
            lwsl_user("connection %llu closed: %d %s (%s)\n", (unsigned long long)r->id,
                      r->close_code, r->close_reason ? r->close_reason : "", r->close_cause);
    } else {
        /* lws refused the upgrade after we had accepted the request. */
        r->state = SRV_REC_REJECTED;
        r->handshake_status = 0;
        free(r->handshake_error);
        r->handshake_error = strdup("WebSocket upgrade failed");
        srv_g.stats.handshakes_rejected++;
    }
    free(c);
    srv_rec_ended(r);
    srv_control_record_ended(r->id);
}

static void control_seen(srv_conn *c, srv_control_kind k)
{
    srv_record *r = c->rec;
    r->control[k]++;
    if (r->n_control_log < SRV_CONTROL_LOG_MAX)
        r->control_log[r->n_control_log++] = (uint8_t)k;
}

static void end_of_stream(srv_conn *c)
{
    c->input_done = 1;
    srv_job_close(c->job, 1);
}

static void on_text(srv_conn *c)
{
    srv_record *r = c->rec;
    r->text_messages++;
    srv_g.stats.text_messages++;
    cJSON *j = cJSON_ParseWithLength(c->text ? c->text : "", c->text_len);
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (type && !strcmp(type, "KeepAlive")) {
        control_seen(c, SRV_CTL_KEEPALIVE);
    } else if (type && !strcmp(type, "Finalize")) {
        control_seen(c, SRV_CTL_FINALIZE);
        if (!c->input_done)
            srv_job_finalize(c->job);
    } else if (type && !strcmp(type, "CloseStream")) {
        control_seen(c, SRV_CTL_CLOSESTREAM);
        if (!c->input_done)
            end_of_stream(c);
    } else {
        r->invalid_text++;
        conn_close(c, 1008, "DATA-0001 unrecognised text message", "bad_text", 0);
    }
    cJSON_Delete(j);
}

static void audio_bytes(srv_conn *c, const uint8_t *d, size_t n)
{
    uint8_t pair[2];
    if (!n)
        return;
    if (c->have_carry) {
        pair[0] = c->carry;
        pair[1] = d[0];
        c->have_carry = 0;
        srv_job_audio(c->job, pair, 2);
        d++;
        n--;
    }
    size_t even = n & ~(size_t)1;
    size_t pending = even ? srv_job_audio(c->job, d, even) : 0;
    if (n & 1) {
        c->carry = d[n - 1];
        c->have_carry = 1;
    }
    if (pending > BACKLOG_HIGH && !c->backlogged) {
        c->backlogged = 1;
        update_rx(c);
        srv_job_want_resume(c->job, BACKLOG_HIGH / 4);
    }
}

static void on_binary_fragment(srv_conn *c, const uint8_t *d, size_t n, int64_t now)
{
    srv_record *r = c->rec;
    if (!c->first_audio_us && n)
        c->first_audio_us = now;
    c->msg_bytes += n;
    if (c->msg_bytes > srv_g.cfg.max_message_bytes) {
        conn_close(c, 1009, "message too big", "too_big", 0);
        return;
    }
    r->audio_bytes += n;
    if (!srv_g.cfg.no_digests) {
        r->audio_fnv = srv_fnv1a64(r->audio_fnv, d, n);
        c->msg_fnv = srv_fnv1a64(c->msg_fnv, d, n);
    }
    srv_g.stats.audio_bytes += n;
    audio_bytes(c, d, n);

    if (srv_g.cfg.max_rate > 0 && c->first_audio_us) {
        double elapsed = (double)(now - c->first_audio_us) / 1e6;
        double allowed = srv_g.cfg.burst_ms / 1000.0 + srv_g.cfg.max_rate * elapsed;
        double have = (double)r->audio_bytes / 2.0 / r->params.channels / r->params.sample_rate;
        if (have > allowed) {
            char reason[96];
            snprintf(reason, sizeof(reason), "RATE-0000 audio faster than %gx real time",
                     srv_g.cfg.max_rate);
            conn_close(c, 1008, reason, "rate", 0);
        }
    }
}

static void on_binary_end(srv_conn *c, int64_t now)
{
    srv_record *r = c->rec;
    if (c->have_carry) {
        conn_close(c, 1008, "DATA-0000", "bad_audio", 0);
        return;
    }
    if (c->msg_bytes == 0) {
        /* Deepgram's legacy end-of-stream signal. */
        control_seen(c, SRV_CTL_EMPTY_BINARY);
        end_of_stream(c);
        return;
    }
    double t = conn_age_s(c, c->msg_start_us);
    r->audio_frames++;
    srv_g.stats.audio_frames++;
    r->last_frame_offset = c->msg_offset;
    if (r->first_audio < 0)
        r->first_audio = t;
    r->last_audio = t;
    srv_rec_add_frame(r, c->msg_offset, (uint32_t)c->msg_bytes, c->msg_fnv, t);
    (void)now;
    srv_faults_on_audio(c,
                        (double)r->audio_bytes / 2.0 / r->params.channels / r->params.sample_rate);
}

static int on_receive(struct lws *wsi, srv_conn *c, const uint8_t *in, size_t len)
{
    int64_t now = srv_mono_us();
    if (lws_is_first_fragment(wsi)) {
        c->msg_binary = lws_frame_is_binary(wsi);
        c->msg_bytes = 0;
        c->msg_offset = c->rec->audio_bytes;
        c->msg_fnv = SRV_FNV1A64_INIT;
        c->msg_start_us = now;
        c->have_carry = 0;
        c->text_len = 0;
    }
    touch(c, now);
    if (c->input_done)
        return 0; /* after CloseStream or while closing, input is ignored */
    int final = lws_is_final_fragment(wsi);

    if (c->msg_binary) {
        on_binary_fragment(c, in, len, now);
        if (final && !c->close_pending)
            on_binary_end(c, now);
        return 0;
    }

    if (c->text_len + len > TEXT_MAX) {
        conn_close(c, 1009, "message too big", "too_big", 0);
        return 0;
    }
    if (!c->text && !(c->text = malloc(TEXT_MAX + 1)))
        return -1;
    memcpy(c->text + c->text_len, in, len);
    c->text_len += len;
    if (final)
        on_text(c);
    return 0;
}

static void account_sent(srv_conn *c, const srv_out *o)
{
    srv_record *r = c->rec;
    r->messages_sent++;
    srv_g.stats.messages_sent++;
    if (o->kind != SRV_OUT_MSG)
        return;
    switch (o->type) {
    case SRV_MSG_RESULTS:
        r->results_sent++;
        srv_g.stats.results_sent++;
        if (o->is_final) {
            r->finals_sent++;
            srv_g.stats.finals_sent++;
            if (o->end_s > r->last_final_end)
                r->last_final_end = o->end_s;
        } else {
            r->interims_sent++;
        }
        break;
    case SRV_MSG_SPEECH_STARTED:
        r->speech_started_sent++;
        break;
    case SRV_MSG_UTTERANCE_END:
        r->utterance_end_sent++;
        break;
    case SRV_MSG_METADATA:
        r->metadata_sent++;
        break;
    case SRV_MSG_RAW:
        break;
    }
}

static int on_writeable(struct lws *wsi, srv_conn *c)
{
    /* Once lws owns the close, a second -1 (say from a writable request
     * made before) would make it kill the socket before the peer has read
     * the close frame. */
    if (c->close_sent)
        return 0;
    if (c->dropping) {
        c->close_sent = 1;
        return -1; /* no close reason set: no close frame */
    }
    if (c->stalled && !c->close_pending)
        return 0;
    if (c->close_pending && (!c->close_after_flush || (!c->q_head && !c->inj_head))) {
        c->close_sent = 1;
        srv_record *r = c->rec;
        lws_close_reason(wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        if (!r->closed_by) {
            r->close_code = c->close_code;
            r->close_reason = strdup(c->close_reason);
            r->closed_by = "server";
            r->close_cause = c->close_cause;
        }
        return -1;
    }

    int64_t now = srv_mono_us();
    srv_out *o = c->inj_head;
    if (o) {
        pop_out(&c->inj_head, &c->inj_tail);
    } else {
        o = c->q_head;
        if (!o)
            return 0;
        if (o->due_us > now) {
            if (!c->due_scheduled) {
                c->due_scheduled = 1;
                lws_sul_schedule(srv_g.ctx, 0, &c->sul_due, due_cb, o->due_us - now);
            }
            return 0;
        }
        pop_out(&c->q_head, &c->q_tail);
        c->q_bytes -= o->len;
    }
    int n = lws_write(wsi, o->data, o->len, LWS_WRITE_TEXT);
    account_sent(c, o);
    srv_out_free(o);
    if (n < 0)
        return -1;
    if (c->inj_head || c->q_head || c->close_pending)
        lws_callback_on_writable(wsi);
    return 0;
}

static void peer_close(srv_conn *c, const uint8_t *in, size_t len)
{
    srv_record *r = c->rec;
    if (r->closed_by)
        return;
    r->closed_by = "client";
    r->close_cause = "client";
    r->close_code = len >= 2 ? (in[0] << 8 | in[1]) : 1005;
    r->close_reason = len > 2 ? strndup((const char *)in + 2, len - 2) : strdup("");
}

static void deliver(void)
{
    srv_out *o = srv_pool_drain(srv_g.pool);
    int64_t now = srv_mono_us();
    while (o) {
        srv_out *next = o->next;
        srv_conn *c = o->job ? srv_job_owner(o->job) : NULL;
        o->next = NULL;
        if (!c || (c->close_pending && !c->close_after_flush)) {
            srv_out_free(o);
        } else if (o->kind == SRV_OUT_MSG) {
            int delay = c->delay_ms >= 0 ? c->delay_ms : srv_g.faults.delay_results_ms;
            o->due_us = now + (int64_t)delay * 1000;
            c->q_bytes += o->len;
            push_out(&c->q_head, &c->q_tail, o);
            if (c->q_bytes > QUEUE_MAX)
                conn_close(c, 1011, "NET-0000 client is not reading", "send_queue", 0);
            else
                lws_callback_on_writable(c->wsi);
        } else {
            if (o->kind == SRV_OUT_ERROR)
                conn_close(c, 1011, "ENGINE-0000 recognition engine failed", "engine", 0);
            else if (o->kind == SRV_OUT_CLOSE_DONE)
                conn_close(c, 1000, "", "CloseStream", 1);
            else if (o->kind == SRV_OUT_RESUME && c->backlogged) {
                c->backlogged = 0;
                update_rx(c);
            }
            srv_out_free(o);
        }
        o = next;
    }
}

static int plain_http(struct lws *wsi)
{
    char id[37];
    char *path = dup_header(wsi, WSI_TOKEN_GET_URI);
    int listen_path = path && !strncmp(path, "/v1/listen", 10);
    free(path);
    srv_uuid4(&srv_g.rng, id);
    if (send_http_error(wsi, listen_path ? 426 : 404, id,
                        listen_path ? "WebSocket upgrade required" : "Not found", NULL))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int srv_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    srv_conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    (void)user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (!in || strcasecmp((const char *)in, "websocket"))
            return -1;
        return handshake(wsi);
    case LWS_CALLBACK_ADD_HEADERS:
        if (c) {
            struct lws_process_html_args *a = in;
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)"dg-request-id:",
                                            (const unsigned char *)c->rec->request_id, 36,
                                            (unsigned char **)&a->p,
                                            (unsigned char *)a->p + a->max_len))
                return -1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        return established(wsi, c);
    case LWS_CALLBACK_RECEIVE:
        if (!c)
            return -1;
        return on_receive(wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c)
            return 0;
        return on_writeable(wsi, c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c)
            peer_close(c, in, len);
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c)
            conn_destroy(wsi, c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv_g.pool)
            deliver();
        return 0;
    case LWS_CALLBACK_HTTP:
        return plain_http(wsi);
    default:
        break;
    }
    return 0;
}

/* --- fault actions and lookups -------------------------------------------- */

srv_conn *srv_record_live_conn(const srv_record *r)
{
    return r && r->conn && r->conn->established ? r->conn : NULL;
}

srv_conn *srv_listen_conn(uint64_t id)
{
    return srv_record_live_conn(srv_rec_find(id));
}

void srv_listen_close_all(int code, const char *reason)
{
    for (srv_record *r = srv_g.rec_head; r; r = r->next)
        if (r->conn && r->conn->established)
            conn_close(r->conn, code, reason, "shutdown", 0);
}

srv_record *srv_conn_record(srv_conn *c)
{
    return c->rec;
}

const srv_msginfo *srv_conn_msginfo(srv_conn *c)
{
    return &c->mi;
}

void srv_conn_fault_close(srv_conn *c, int code, const char *reason)
{
    conn_close(c, code, reason, "fault_close", 0);
}

void srv_conn_fault_drop(srv_conn *c)
{
    /* Linger 0: when lws closes the socket the kernel resets it instead of
     * a graceful FIN exchange; no close frame is ever sent. */
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    int fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    c->close_cause = "fault_drop";
    c->input_done = 1;
    c->close_pending = 1; /* nothing more goes out */
    c->dropping = 1;
    free_list(&c->q_head, &c->q_tail);
    free_list(&c->inj_head, &c->inj_tail);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void srv_conn_fault_stall(srv_conn *c, int stall)
{
    if (c->close_pending)
        return;
    c->stalled = stall;
    update_rx(c);
    if (!stall) {
        touch(c, srv_mono_us());
        lws_callback_on_writable(c->wsi);
    }
}

int srv_conn_is_stalled(const srv_conn *c)
{
    return c->stalled;
}

int srv_conn_fault_send(srv_conn *c, char *text, size_t len)
{
    srv_out *o = c->close_pending ? NULL : srv_out_new(text, len);
    free(text);
    if (!o)
        return -1;
    o->kind = SRV_OUT_MSG;
    o->type = SRV_MSG_RAW;
    push_out(&c->inj_head, &c->inj_tail, o);
    lws_callback_on_writable(c->wsi);
    return 0;
}

void srv_conn_set_delay(srv_conn *c, int ms)
{
    c->delay_ms = ms;
}
