/* listen: the WebSocket endpoint's machinery: handshake checks, audio and
 * text messages in, results out, timers, and fault actions on connections.
 * What the messages mean belongs to the protocol module (srv_g.proto). */
#include "listen.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conn.h"
#include "control.h"
#include "faults.h"
#include "http.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "timers.h"
#include "util.h"

/* A text message's limit: JSON control messages, and audio carried as base64 in JSON
 * (1 s of 48 kHz 16-bit mono is 128 KiB of base64). */
#define TEXT_MAX (256 * 1024)
/* Stop reading a connection whose audio waits for a worker beyond this. */
#define BACKLOG_HIGH (4u << 20)
#define MAX_ARGS 256
/* Results waiting for a client that does not read: beyond this it is cut off. */
#define QUEUE_MAX (16u << 20)

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

void srv_conn_close(srv_conn *c, int code, const char *reason, const char *cause, int after_flush)
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

void srv_conn_close_with(srv_conn *c, int code, const char *reason, const char *cause, char *text,
                         srv_msg_type type)
{
    if (c->close_pending) {
        free(text);
        return;
    }
    srv_out *o = text ? srv_out_new(text, strlen(text)) : NULL;
    free(text);
    if (o) {
        o->kind = SRV_OUT_MSG;
        o->type = type;
        c->last_msg = o;
    }
    srv_conn_close(c, code, reason, cause, 0);
}

void srv_conn_send_now(srv_conn *c, char *text, srv_msg_type type)
{
    srv_out *o = text && !c->close_pending ? srv_out_new(text, strlen(text)) : NULL;
    free(text);
    if (!o)
        return;
    o->kind = SRV_OUT_MSG;
    o->type = type;
    push_out(&c->inj_head, &c->inj_tail, o);
    lws_callback_on_writable(c->wsi);
}

double srv_conn_audio_s(const srv_conn *c)
{
    const srv_record *r = c->rec;
    if (r->rate <= 0 || r->channels <= 0 || r->sample_bytes <= 0)
        return 0;
    return (double)r->audio_bytes / r->sample_bytes / r->channels / r->rate;
}

double srv_conn_audio_elapsed_s(const srv_conn *c)
{
    return c->first_audio_us ? (double)(srv_mono_us() - c->first_audio_us) / 1e6 : 0;
}

static void due_cb(srv_timer *t)
{
    srv_conn *c = lws_container_of(t, srv_conn, t_due);
    lws_callback_on_writable(c->wsi);
}

static void idle_cb(srv_timer *t)
{
    srv_conn *c = lws_container_of(t, srv_conn, t_idle);
    int64_t now = srv_mono_us(), limit = (int64_t)c->idle_ms * 1000;
    if (c->close_pending)
        return;
    /* After CloseStream the client is waiting on us (the engine may still be working through a
     * backlog on a loaded machine): nothing it could send would count, so do not call it idle. */
    if (c->input_done)
        return;
    if (c->stalled) {
        srv_timer_set(&c->t_idle, idle_cb, limit);
        return;
    }
    int64_t idle = now - c->last_activity_us;
    if (idle >= limit) {
        srv_g.proto->fail(c, SRV_FAIL_IDLE);
        return;
    }
    srv_timer_set(&c->t_idle, idle_cb, limit - idle);
}

static void limit_cb(srv_timer *t)
{
    srv_conn *c = lws_container_of(t, srv_conn, t_limit);
    if (!c->close_pending)
        srv_g.proto->fail(c, SRV_FAIL_SESSION_LIMIT);
}

static void touch(srv_conn *c, int64_t now)
{
    c->last_activity_us = now;
}

/* --- handshake ------------------------------------------------------------- */

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

static void record_headers(struct lws *wsi, srv_record *r)
{
    char name[64];
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const char *tn = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        size_t n = tn ? strlen(tn) : 0;
        /* Only real header names ("host:"), not methods or pseudo-headers. */
        if (n < 2 || n >= sizeof(name) || tn[n - 1] != ':' || tn[0] == ':')
            continue;
        char *v = srv_http_dup_header(wsi, (enum lws_token_indexes)t);
        if (!v)
            continue;
        for (size_t i = 0; i < n - 1; i++)
            name[i] = (char)tolower((unsigned char)tn[i]);
        name[n - 1] = 0;
        char *red = srv_g.proto->redact_header
                        ? srv_g.proto->redact_header((enum lws_token_indexes)t, v)
                        : NULL;
        if (red) {
            free(v);
            v = red;
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
    int rc = srv_g.proto->http_error(wsi, status, r->request_id, err, retry_after);
    srv_rec_ended(r);
    srv_control_record_ended(r->id);
    /* >0: we answered; lws completes the transaction. <0: just hang up. */
    return rc ? -1 : 1;
}

static void fill_msginfo(srv_conn *c)
{
    srv_msginfo *mi = &c->mi;
    const srv_record *r = c->rec;
    snprintf(mi->request_id, sizeof(mi->request_id), "%s", r->request_id);
    snprintf(mi->model_version, sizeof(mi->model_version), "steno-%s-1", srv_g.engine_ops->name);
    snprintf(mi->model_arch, sizeof(mi->model_arch), "steno-%s", srv_g.engine_ops->name);
    char seed[96];
    snprintf(seed, sizeof(seed), "%s/%s", srv_g.engine_ops->name, mi->model_name);
    srv_uuid_from_name(seed, mi->model_uuid);
    srv_iso8601(r->start_wall, mi->created);
    mi->channels = r->channels;
    mi->sample_rate = r->rate;
    mi->start_mono_us = r->start_mono;
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
    const srv_proto *P = srv_g.proto;
    char err[512];
    int rc;

    if (!r)
        return -1;
    lws_get_peer_simple(wsi, r->peer, sizeof(r->peer));
    r->path = srv_http_dup_header(wsi, WSI_TOKEN_GET_URI);
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
    /* The record's copy of the query, with credentials hidden. */
    char *shown[MAX_ARGS];
    for (size_t i = 0; i < nargs; i++) {
        shown[i] = P->redact_arg ? P->redact_arg(args[i]) : NULL;
        qlen += shown[i] ? strlen(shown[i]) + 1 : 0;
    }
    r->query = malloc(qlen + 1);
    if (r->query) {
        r->query[0] = 0;
        for (size_t i = 0; i < nargs; i++) {
            if (i)
                strcat(r->query, "&");
            strcat(r->query, shown[i] ? shown[i] : args[i]);
        }
    }
    for (size_t i = 0; i < nargs; i++)
        free(shown[i]);
    size_t plen = strlen(P->path);

    srv_faults *f = &srv_g.faults;
    if (P->path_ok ? !P->path_ok(r->path)
                   : (!r->path || strncmp(r->path, P->path, plen) ||
                      (r->path[plen] && strcmp(r->path + plen, "/")))) {
        snprintf(err, sizeof(err), "Not found: this server serves %s", P->path);
        rc = reject(wsi, r, 404, err, NULL);
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
    } else {
        srv_admit a = {0};
        P->admit(wsi, r, (const char *const *)args, nargs, too_many, &a);
        srv_conn *c = a.status ? NULL : calloc(1, sizeof(*c));
        if (a.status) {
            rc = reject(wsi, r, a.status, a.err, NULL);
        } else if (!c) {
            rc = reject(wsi, r, 503, "Out of memory", NULL);
        } else {
            c->rec = r;
            c->delay_ms = -1;
            c->rx_on = 1;
            if (a.close_code) {
                c->open_close_code = a.close_code;
                c->open_close_reason = strdup(a.err);
            }
            r->conn = c;
            r->handshake_status = 101;
            lws_set_opaque_user_data(wsi, c);
            rc = 0;
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
    c->last_activity_us = srv_mono_us();
    /* idle, limit and due: room in the heap now, so setting them later cannot fail */
    if (srv_timers_reserve(3)) {
        srv_g.proto->fail(c, SRV_FAIL_ENGINE);
        return 0;
    }
    c->timers_reserved = 1;
    if (srv_g.cfg.verbose)
        lwsl_user("connection %llu open\n", (unsigned long long)r->id);
    if (srv_g.faults.mute_next > 0) {
        /* the mute fault: upgraded, then never reads or speaks (a peer that hung) */
        srv_g.faults.mute_next--;
        srv_rec_add_fault(r, "mute");
        c->stalled = 1;
        update_rx(c);
    }
    if (c->open_close_code) {
        /* admit() accepted the upgrade only to refuse the session over it. */
        srv_g.proto->close_error(c, c->open_close_code,
                                 c->open_close_reason ? c->open_close_reason : "", "refused");
        return 0;
    }
    srv_stream_params sp = {
        .sample_rate = (uint32_t)r->rate,
        .channels = (uint32_t)r->channels,
        .null_span_s = srv_g.cfg.null_span_ms / 1000.0,
        .no_digests = srv_g.cfg.no_digests,
    };
    srv_g.proto->setup(r, &sp, &c->mi);
    fill_msginfo(c);
    c->job = srv_job_open(srv_g.pool, &sp, &c->mi, c);
    c->idle_ms = srv_g.cfg.idle_timeout_ms;
    if (!c->job) {
        srv_g.proto->fail(c, SRV_FAIL_ENGINE);
        return 0;
    }
    if (srv_g.proto->opened)
        srv_g.proto->opened(c);
    if (c->idle_ms > 0)
        srv_timer_set(&c->t_idle, idle_cb, (int64_t)c->idle_ms * 1000);
    if (c->limit_ms > 0)
        srv_timer_set(&c->t_limit, limit_cb, (int64_t)c->limit_ms * 1000);
    return 0;
}

static void conn_destroy(struct lws *wsi, srv_conn *c)
{
    srv_record *r = c->rec;
    srv_timer_cancel(&c->t_idle);
    srv_timer_cancel(&c->t_due);
    srv_timer_cancel(&c->t_limit);
    if (c->timers_reserved)
        srv_timers_unreserve(3);
    free_list(&c->q_head, &c->q_tail);
    free_list(&c->inj_head, &c->inj_tail);
    srv_out_free(c->last_msg);
    free(c->open_close_reason);
    free(c->text);
    srv_job_release(c->job);
    lws_set_opaque_user_data(wsi, NULL);
    if (c->established && c->msg_open) {
        /* The connection ended inside a binary message (a client that gave up on a stalled
         * connection while lws still held the rest of a frame). A provider never sees an
         * incomplete message: the record's audio is what it held before that message. */
        r->audio_bytes = c->msg_offset;
        r->audio_fnv = c->rec_fnv_at_msg;
        c->msg_open = 0;
    }
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

void srv_conn_control_seen(srv_conn *c, srv_control_kind k)
{
    srv_record *r = c->rec;
    r->control[k]++;
    if (r->n_control_log < SRV_CONTROL_LOG_MAX)
        r->control_log[r->n_control_log++] = (uint8_t)k;
}

void srv_conn_end_stream(srv_conn *c, const char *cause)
{
    if (c->input_done)
        return;
    c->input_done = 1;
    c->end_cause = cause;
    srv_job_close(c->job, 1);
}

static void on_text(srv_conn *c)
{
    srv_record *r = c->rec;
    r->text_messages++;
    srv_g.stats.text_messages++;
    srv_g.proto->on_text(c, c->text ? c->text : "", c->text_len);
}

/* G.711 mu-law to 16-bit linear PCM. */
static int16_t mulaw_decode(uint8_t u)
{
    u = (uint8_t)~u;
    int t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    return (int16_t)((u & 0x80) ? 0x84 - t : t - 0x84);
}

static void audio_bytes(srv_conn *c, const uint8_t *d, size_t n)
{
    uint8_t pair[2];
    if (!n)
        return;
    if (c->rec->sample_bytes == 1) {
        /* The engines take linear PCM. */
        int16_t pcm[1024];
        size_t pending = 0;
        while (n) {
            size_t k = n < 1024 ? n : 1024;
            for (size_t i = 0; i < k; i++)
                pcm[i] = mulaw_decode(d[i]);
            pending = srv_job_audio(c->job, pcm, k * 2);
            d += k;
            n -= k;
        }
        if (pending > BACKLOG_HIGH && !c->backlogged) {
            c->backlogged = 1;
            update_rx(c);
            srv_job_want_resume(c->job, BACKLOG_HIGH / 4);
        }
        return;
    }
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
        srv_g.proto->fail(c, SRV_FAIL_TOO_BIG);
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
        if (srv_conn_audio_s(c) > allowed)
            srv_g.proto->fail(c, SRV_FAIL_RATE);
    }
}

static void on_binary_end(srv_conn *c, int64_t now)
{
    srv_record *r = c->rec;
    if (srv_g.proto->audio_message && srv_g.proto->audio_message(c, c->msg_bytes))
        return;
    if (c->have_carry) {
        srv_g.proto->fail(c, SRV_FAIL_BAD_AUDIO);
        return;
    }
    if (c->msg_bytes == 0) {
        /* Deepgram's legacy end-of-stream signal. */
        srv_conn_control_seen(c, SRV_CTL_EMPTY_BINARY);
        srv_conn_end_stream(c, "CloseStream");
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
    srv_faults_on_audio(c, srv_conn_audio_s(c));
}

int srv_conn_audio(srv_conn *c, const uint8_t *pcm, size_t bytes)
{
    if (!bytes)
        return 0; /* an empty payload is not Deepgram's end-of-stream signal here */
    int64_t now = srv_mono_us();
    c->msg_bytes = 0;
    c->msg_offset = c->rec->audio_bytes;
    c->msg_fnv = SRV_FNV1A64_INIT;
    c->msg_start_us = now;
    c->have_carry = 0;
    on_binary_fragment(c, pcm, bytes, now);
    if (c->close_pending)
        return -1;
    on_binary_end(c, now);
    return c->close_pending ? -1 : 0;
}

static int on_receive(struct lws *wsi, srv_conn *c, const uint8_t *in, size_t len)
{
    int64_t now = srv_mono_us();
    if (lws_is_first_fragment(wsi)) {
        c->msg_binary = lws_frame_is_binary(wsi);
        c->msg_open = c->msg_binary;
        c->rec_fnv_at_msg = c->rec->audio_fnv;
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
        if (final)
            c->msg_open = 0;
        if (final && !c->close_pending)
            on_binary_end(c, now);
        return 0;
    }

    if (c->text_len + len > TEXT_MAX) {
        srv_g.proto->fail(c, SRV_FAIL_TOO_BIG);
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
    case SRV_MSG_BEGIN:
        r->begin_sent++;
        break;
    case SRV_MSG_TERMINATION:
        r->termination_sent++;
        break;
    case SRV_MSG_ERROR:
        r->error_sent++;
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
        if (c->last_msg) {
            /* One write per callback: the close frame follows on the next. */
            srv_out *o = c->last_msg;
            c->last_msg = NULL;
            int n = lws_write(wsi, o->data, o->len, LWS_WRITE_TEXT);
            account_sent(c, o);
            srv_out_free(o);
            if (n < 0)
                return -1;
            lws_callback_on_writable(wsi);
            return 0;
        }
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
            if (!srv_timer_pending(&c->t_due))
                srv_timer_set(&c->t_due, due_cb, o->due_us - now);
            return 0;
        }
        pop_out(&c->q_head, &c->q_tail);
        c->q_bytes -= o->len;
    }
    int n = lws_write(wsi, o->data, o->len, o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
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
                srv_g.proto->fail(c, SRV_FAIL_SEND_QUEUE);
            else
                lws_callback_on_writable(c->wsi);
        } else {
            if (o->kind == SRV_OUT_ERROR)
                srv_g.proto->fail(c, SRV_FAIL_ENGINE);
            else if (o->kind == SRV_OUT_CLOSE_DONE)
                srv_conn_close(c, 1000, "", c->end_cause ? c->end_cause : "CloseStream", 1);
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
    const srv_proto *P = srv_g.proto;
    char *path = srv_http_dup_header(wsi, WSI_TOKEN_GET_URI);
    int listen_path =
        P->path_ok ? P->path_ok(path) : path && !strncmp(path, P->path, strlen(P->path));
    free(path);
    srv_uuid4(&srv_g.rng, id);
    if (P->http_error(wsi, listen_path ? 426 : 404, id,
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
        if (c && srv_g.proto->add_headers &&
            srv_g.proto->add_headers(wsi, c->rec, (struct lws_process_html_args *)in))
            return -1;
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
        srv_loop_on_cancel();
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
            srv_conn_close(r->conn, code, reason, "shutdown", 0);
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
    srv_conn_close(c, code, reason, "fault_close", 0);
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
    /* On libev lws serves a timer due now only after it has handled I/O: wake it. */
    lws_cancel_service(srv_g.ctx);
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
    return srv_conn_fault_send_frame(c, text, len, 0);
}

int srv_conn_fault_send_frame(srv_conn *c, char *data, size_t len, int binary)
{
    srv_out *o = c->close_pending ? NULL : srv_out_new(data, len);
    free(data);
    if (!o)
        return -1;
    o->binary = binary;
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
