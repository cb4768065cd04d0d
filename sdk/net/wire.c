/* wire: what every connection of a session does on the wire (connect, headers, frames, close
 * payloads). */
#include "wire.h"

#include <string.h>
#include <sys/ioctl.h>

#include "alloc.h"

#define ST_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->st.field, (n), memory_order_relaxed)

struct lws *steno__wire_connect(steno_session *s, steno__link *l, const char *cred,
                                struct lws **pwsi)
{
    steno__sb path;
    steno__sb_init(&path, s->a);
    if (s->prov->credential_query && cred && *cred) {
        steno__sb q;
        steno__sb_init(&q, s->a);
        int rc = s->prov->credential_query(cred, &q);
        if (rc == STENO_OK && q.len) {
            steno__sb_puts(&path, s->url.path);
            steno__sb_puts(&path, strchr(s->url.path, '?') ? "&" : "?");
            steno__sb_append(&path, q.p, q.len);
        }
        if (q.p)
            steno__wipe(q.p, q.cap);
        steno__sb_free(&q);
        if (rc != STENO_OK || steno__sb_status(&path)) {
            if (path.p)
                steno__wipe(path.p, path.cap);
            steno__sb_free(&path);
            *pwsi = NULL;
            return NULL;
        }
    }
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = s->c->ctx;
    i.address = s->url.host;
    i.port = s->url.port;
    i.path = path.len ? steno__sb_cstr(&path) : s->url.path;
    i.host = s->url.hostport;
    i.origin = s->url.hostport;
    i.ssl_connection = s->url.tls ? LCCSCF_USE_SSL : 0;
    i.local_protocol_name = steno__protocols[0].name;
    i.protocol = NULL;
    i.pwsi = pwsi;
    i.opaque_user_data = l;
    /* steno checks liveness itself (a ping a second, pong_timeout_ms, dead_after_ms): lws's
     * own validity timer would only cost a sorted insert per pong per connection, which at
     * 10,000 connections is most of the network thread (0 = no validity timer) */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    i.retry_and_idle_policy = &no_validity;
    *pwsi = NULL;
    struct lws *w = lws_client_connect_via_info(&i);
    /* lws keeps its own copy of the path: the token must not linger in ours */
    if (path.p)
        steno__wipe(path.p, path.cap);
    steno__sb_free(&path);
    return w;
}

struct hdr_ctx {
    struct lws *wsi;
    unsigned char **p, *end;
};

static int add_header(void *ctx, const char *name, const char *value)
{
    struct hdr_ctx *h = ctx;
    return lws_add_http_header_by_name(h->wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), h->p,
                                       h->end);
}

int steno__wire_headers(steno_session *s, char **cred, struct lws *wsi, unsigned char **p,
                        unsigned char *end)
{
    struct hdr_ctx h = {wsi, p, end};
    int rc = s->prov->handshake_headers(*cred ? *cred : "", add_header, &h);
    steno__free_secret(s->a, *cred);
    *cred = NULL;
    return rc == STENO_OK ? 0 : -1;
}

int steno__wire_send_text(steno_session *s, struct lws *wsi, const char *text)
{
    size_t n = strlen(text);
    if (n + LWS_PRE > s->scratch_cap)
        return -1;
    memcpy(s->scratch + LWS_PRE, text, n);
    if (lws_write(wsi, s->scratch + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
        return -1;
    ST_ADD(s, bytes_sent, n);
    steno__counter_add(s->c->m.bytes_sent, n);
    return 0;
}

int steno__wire_send_finalize(steno_session *s, struct lws *wsi, void *pconn)
{
    if (!s->prov->finalize_message)
        return steno__wire_send_text(s, wsi, s->prov->finalize_text);
    steno__sb_reset(&s->tx);
    if (s->prov->finalize_message(pconn, &s->tx) != STENO_OK)
        return -1;
    return steno__wire_send_text(s, wsi, steno__sb_cstr(&s->tx));
}

uint32_t steno__wire_pad_frames(const steno_session *s, const steno__chunk *ch)
{
    uint64_t min = (uint64_t)s->cfg.sample_rate * s->prov->min_chunk_ms / 1000u;
    return ch->frames < min ? (uint32_t)(min - ch->frames) : 0;
}

int steno__wire_send_audio(steno_session *s, struct lws *wsi, void *pconn, const steno__chunk *ch,
                           uint32_t pad_frames, uint32_t *wire_bytes)
{
    uint32_t n = ch->bytes;
    if (pad_frames && s->prov->frame_audio)
        return -1; /* no provider frames text and has a minimum length */
    if (s->prov->frame_audio) {
        steno__sb_reset(&s->tx);
        if (s->prov->frame_audio(pconn, ch->data, ch->bytes, &s->tx) != STENO_OK ||
            s->tx.len + LWS_PRE > s->scratch_cap)
            return -1;
        memcpy(s->scratch + LWS_PRE, s->tx.p, s->tx.len);
        n = (uint32_t)s->tx.len;
        if (lws_write(wsi, s->scratch + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
    } else {
        size_t pad = (size_t)pad_frames * s->cfg.channels * sizeof(int16_t);
        if (LWS_PRE + (size_t)ch->bytes + pad > s->scratch_cap)
            return -1;
        memcpy(s->scratch + LWS_PRE, ch->data, ch->bytes);
        memset(s->scratch + LWS_PRE + ch->bytes, 0, pad); /* s16le silence */
        n += (uint32_t)pad;
        if (lws_write(wsi, s->scratch + LWS_PRE, n, LWS_WRITE_BINARY) < (int)n)
            return -1;
    }
    ST_ADD(s, bytes_sent, n);
    steno__counter_add(s->c->m.bytes_sent, n);
    *wire_bytes = n;
    return 0;
}

bool steno__wire_peer_waiting(struct lws *wsi)
{
    int n = 0;
    lws_sockfd_type fd = wsi ? lws_get_socket_fd(wsi) : LWS_SOCK_INVALID;
    return fd != LWS_SOCK_INVALID && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

void steno__wire_peer_close(const uint8_t *payload, size_t len, int *code, char *reason, size_t cap)
{
    if (len >= 2) {
        *code = (payload[0] << 8) | payload[1];
        size_t n = len - 2 < cap - 1 ? len - 2 : cap - 1;
        memcpy(reason, payload + 2, n);
        reason[n] = '\0';
    } else {
        *code = 1005; /* no status received */
        reason[0] = '\0';
    }
}

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) { /* JSON is mostly ASCII: eight bytes per step while it is */
            uint64_t w;
            memcpy(&w, p + i, sizeof w);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

bool steno__wire_rx(steno_session *s, struct lws *wsi, steno__sb *rx, bool *skip, const void *in,
                    size_t len)
{
    ST_ADD(s, bytes_received, len);
    steno__counter_add(s->c->m.bytes_received, len);
    steno__client_note_rx(s->c);
    if (lws_frame_is_binary(wsi)) {
        /* no binary messages in these protocols: counted once per message, ignored */
        rx->len = 0;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            steno__slog(s, STENO_LOG_DEBUG, "binary server message: ignored");
            ST_ADD(s, parse_errors, 1);
            steno__counter_inc(s->c->m.parse_errors);
        }
        return false;
    }
    steno__sb_append(rx, in, len);
    if (steno__sb_status(rx)) {
        /* Larger than any sane message: the peer is broken. Count it and move on. */
        steno__slog(s, STENO_LOG_WARN, "server message too large or out of memory: dropped");
        ST_ADD(s, parse_errors, 1);
        steno__counter_inc(s->c->m.parse_errors);
        steno__sb_reset(rx);
        *skip = true;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return false;
    if (*skip || !rx->len) {
        steno__wire_rx_done(rx, skip);
        return false;
    }
    if (!utf8_valid((const uint8_t *)rx->p, rx->len)) {
        /* RFC 6455 text is UTF-8; the app must never be handed anything else as a transcript */
        steno__slog(s, STENO_LOG_DEBUG, "server text message is not UTF-8 (%zu bytes): ignored",
                    rx->len);
        ST_ADD(s, parse_errors, 1);
        steno__counter_inc(s->c->m.parse_errors);
        steno__wire_rx_done(rx, skip);
        return false;
    }
    return true;
}

void steno__wire_rx_done(steno__sb *rx, bool *skip)
{
    *skip = false;
    if (rx->cap > 65536)
        steno__sb_free(rx); /* do not keep a huge buffer for one odd message */
    steno__sb_reset(rx);
}

void steno__wire_copy_header(struct lws *wsi, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!name)
        return;
    int n = lws_hdr_custom_copy(wsi, buf, (int)len, name, (int)strlen(name));
    if (n < 0)
        buf[0] = '\0';
}
