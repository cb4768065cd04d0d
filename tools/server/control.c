/* control: the loopback HTTP/1.1 JSON API for observation and fault control. */
#include "control.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "listen.h"
#include "proto.h"
#include "server.h"
#include "timers.h"
#include "util.h"

#define BODY_MAX (1u << 20)
#define CHUNK 16384

typedef struct ctl_pss {
    struct lws *wsi;
    int method;
    char path[256];
    char query[1024];
    char *body;
    size_t body_len;
    int body_too_big;

    char *resp;
    size_t resp_len, resp_sent;
    int status;
    int ready, headers_sent;

    /* long poll for GET /connections/ID?wait_closed_ms= */
    uint64_t wait_id;
    int waiting;
    struct ctl_pss *wait_next;
    srv_timer wait_timer; /* in timers.c's heap, with one slot reserved while waiting */
} ctl_pss;

static ctl_pss *waiters;

static void unwait(ctl_pss *p)
{
    if (!p->waiting)
        return;
    for (ctl_pss **pp = &waiters; *pp; pp = &(*pp)->wait_next) {
        if (*pp == p) {
            *pp = p->wait_next;
            break;
        }
    }
    p->waiting = 0;
    p->wait_next = NULL;
    srv_timer_cancel(&p->wait_timer);
    srv_timers_unreserve(1);
}

static void respond_text(ctl_pss *p, int status, char *text)
{
    free(p->resp);
    p->resp = text;
    p->resp_len = text ? strlen(text) : 0;
    p->resp_sent = 0;
    p->status = status;
    p->ready = 1;
    p->headers_sent = 0;
    lws_callback_on_writable(p->wsi);
}

static void respond(ctl_pss *p, int status, cJSON *o)
{
    char *t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!t) {
        t = strdup("{\"error\":\"out of memory\"}");
        status = 500;
    }
    respond_text(p, status, t);
}

static void respond_error(ctl_pss *p, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    respond(p, status, o);
}

/* Value of `name` in the request's query, or NULL. */
static const char *query_get(ctl_pss *p, const char *name, char *buf, size_t len)
{
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(p->wsi, buf, (int)len, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            return NULL;
        size_t nl = strlen(name);
        if (!strncmp(buf, name, nl) && buf[nl] == '=')
            return buf + nl + 1;
    }
}

static int query_u64(ctl_pss *p, const char *name, uint64_t *out)
{
    char buf[128];
    const char *v = query_get(p, name, buf, sizeof(buf));
    if (!v)
        return 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || *end)
        return -1;
    *out = n;
    return 1;
}

static cJSON *health_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "engine", srv_g.engine_ops->name);
    if (srv_g.proto != &srv_proto_deepgram)
        cJSON_AddStringToObject(o, "protocol", srv_g.proto->name);
    cJSON_AddNumberToObject(o, "port", srv_g.port);
    cJSON_AddNumberToObject(o, "control_port", srv_g.control_port);
    return o;
}

static cJSON *stats_json(void)
{
    const srv_stats *s = &srv_g.stats;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "connections_total", (double)s->connections_total);
    cJSON_AddNumberToObject(o, "connections_active", (double)srv_g.n_active);
    cJSON_AddNumberToObject(o, "handshakes_rejected", (double)s->handshakes_rejected);
    cJSON_AddNumberToObject(o, "audio_bytes", (double)s->audio_bytes);
    cJSON_AddNumberToObject(o, "audio_frames", (double)s->audio_frames);
    cJSON_AddNumberToObject(o, "text_messages", (double)s->text_messages);
    cJSON_AddNumberToObject(o, "messages_sent", (double)s->messages_sent);
    cJSON_AddNumberToObject(o, "results_sent", (double)s->results_sent);
    cJSON_AddNumberToObject(o, "finals_sent", (double)s->finals_sent);
    cJSON *c = cJSON_AddObjectToObject(o, "closes");
    for (int i = 0; i < 5000; i++) {
        if (s->closes[i]) {
            char k[8];
            snprintf(k, sizeof(k), "%d", i);
            cJSON_AddNumberToObject(c, k, (double)s->closes[i]);
        }
    }
    return o;
}

static void list_connections(ctl_pss *p)
{
    uint64_t since = 0, active = 0;
    char rid[64];
    const char *want_rid = query_get(p, "request_id", rid, sizeof(rid));
    if (query_u64(p, "since", &since) < 0 || query_u64(p, "active", &active) < 0) {
        respond_error(p, 400, "bad query");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "connections");
    for (srv_record *r = srv_g.rec_head; r; r = r->next) {
        if (r->id <= since || (active && !srv_record_live_conn(r)))
            continue;
        if (want_rid && strcmp(want_rid, r->request_id))
            continue;
        cJSON_AddItemToArray(a, srv_rec_json(r));
    }
    respond(p, 200, o);
}

static void wait_timeout(srv_timer *t)
{
    ctl_pss *p = lws_container_of(t, ctl_pss, wait_timer);
    srv_record *r = srv_rec_find(p->wait_id);
    unwait(p);
    if (r)
        respond(p, 200, srv_rec_json(r));
    else
        respond_error(p, 404, "no such connection");
}

static void get_connection(ctl_pss *p, const char *rest)
{
    char *end;
    uint64_t id = strtoull(rest, &end, 10);
    if (end == rest || (*end && strcmp(end, "/frames"))) {
        respond_error(p, 404, "not found");
        return;
    }
    srv_record *r = srv_rec_find(id);
    if (!r) {
        respond_error(p, 404, "no such connection");
        return;
    }
    if (*end) {
        respond(p, 200, srv_rec_frames_json(r));
        return;
    }
    uint64_t wait_ms = 0;
    if (query_u64(p, "wait_closed_ms", &wait_ms) < 0) {
        respond_error(p, 400, "bad wait_closed_ms");
        return;
    }
    int live = r->state == SRV_REC_OPEN || r->state == SRV_REC_HANDSHAKE;
    if (wait_ms && live) {
        if (wait_ms > 600000)
            wait_ms = 600000;
        if (srv_timers_reserve(1)) {
            respond_error(p, 503, "out of memory");
            return;
        }
        p->wait_id = id;
        p->waiting = 1;
        p->wait_next = waiters;
        waiters = p;
        srv_timer_set(&p->wait_timer, wait_timeout, (int64_t)wait_ms * 1000);
        return;
    }
    respond(p, 200, srv_rec_json(r));
}

static void post_faults(ctl_pss *p)
{
    char err[256];
    if (p->body_too_big) {
        respond_error(p, 413, "body too large");
        return;
    }
    cJSON *body = cJSON_ParseWithLength(p->body ? p->body : "", p->body_len);
    if (!body) {
        respond_error(p, 400, "body is not JSON");
        return;
    }
    cJSON *resp = cJSON_CreateObject();
    if (srv_faults_post(body, resp, err, sizeof(err))) {
        cJSON_Delete(resp);
        respond_error(p, 400, err);
    } else {
        cJSON_AddTrueToObject(resp, "ok");
        respond(p, 200, resp);
    }
    cJSON_Delete(body);
}

static cJSON *ok_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    return o;
}

static void route(ctl_pss *p)
{
    const char *path = p->path;
    int get = p->method == LWSHUMETH_GET, post = p->method == LWSHUMETH_POST,
        del = p->method == LWSHUMETH_DELETE;

    if (!strcmp(path, "/health") && get) {
        respond(p, 200, health_json());
    } else if (!strcmp(path, "/stats") && get) {
        respond(p, 200, stats_json());
    } else if (!strcmp(path, "/connections") && get) {
        list_connections(p);
    } else if (!strcmp(path, "/connections") && del) {
        srv_rec_clear_ended();
        respond(p, 200, ok_json());
    } else if (!strncmp(path, "/connections/", 13) && get) {
        get_connection(p, path + 13);
    } else if (!strcmp(path, "/faults") && get) {
        respond(p, 200, srv_faults_json());
    } else if (!strcmp(path, "/faults") && post) {
        post_faults(p);
    } else if (!strcmp(path, "/faults") && del) {
        srv_faults_clear();
        respond(p, 200, ok_json());
    } else if (!strcmp(path, "/health") || !strcmp(path, "/stats") ||
               !strcmp(path, "/connections") || !strcmp(path, "/faults") ||
               !strncmp(path, "/connections/", 13)) {
        respond_error(p, 405, "method not allowed");
    } else {
        respond_error(p, 404, "not found");
    }
}

static int write_some(struct lws *wsi, ctl_pss *p)
{
    if (!p->ready)
        return 0;
    if (!p->headers_sent) {
        unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *q = start,
                                          *end = buf + sizeof(buf) - 1;
        if (lws_add_http_common_headers(wsi, (unsigned int)p->status, "application/json",
                                        (lws_filepos_t)p->resp_len, &q, end) ||
            lws_finalize_write_http_header(wsi, start, &q, end))
            return -1;
        p->headers_sent = 1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    size_t left = p->resp_len - p->resp_sent, n = left > CHUNK ? CHUNK : left;
    unsigned char buf[LWS_PRE + CHUNK];
    memcpy(buf + LWS_PRE, p->resp + p->resp_sent, n);
    int last = n == left;
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    p->resp_sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    free(p->resp);
    p->resp = NULL;
    p->ready = 0;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void reset_request(ctl_pss *p)
{
    unwait(p);
    free(p->body);
    free(p->resp);
    memset(p, 0, sizeof(*p));
}

int srv_control_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    ctl_pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        char *uri = NULL;
        int ulen = 0;
        reset_request(p);
        p->wsi = wsi;
        p->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
        snprintf(p->path, sizeof(p->path), "%s", in ? (const char *)in : "/");
        if (p->method == LWSHUMETH_POST) {
            char cl[32];
            if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                strtoul(cl, NULL, 10) > 0)
                return 0; /* answered once the body is complete */
        }
        route(p);
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY: {
        if (p->body_len + len > BODY_MAX) {
            p->body_too_big = 1;
            return 0;
        }
        if (!len)
            return 0;
        char *b = realloc(p->body, p->body_len + len + 1);
        if (!b)
            return -1;
        p->body = b;
        memcpy(p->body + p->body_len, in, len);
        p->body_len += len;
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        route(p);
        free(p->body);
        p->body = NULL;
        p->body_len = 0;
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_some(wsi, p);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* Either may be the last word on a connection, depending on how it
         * ended; both are safe to repeat. */
        if (p)
            reset_request(p);
        return 0;
    default:
        break;
    }
    return 0;
}

void srv_control_record_ended(uint64_t id)
{
    ctl_pss **pp = &waiters;
    while (*pp) {
        ctl_pss *p = *pp;
        if (p->wait_id != id) {
            pp = &p->wait_next;
            continue;
        }
        *pp = p->wait_next;
        p->waiting = 0;
        p->wait_next = NULL;
        srv_timer_cancel(&p->wait_timer);
        srv_timers_unreserve(1);
        srv_record *r = srv_rec_find(id);
        if (r)
            respond(p, 200, srv_rec_json(r));
    }
}

size_t srv_control_pss_size(void)
{
    return sizeof(ctl_pss);
}
