/* bench_floor: a bare epoll WebSocket client, the floor steno's cost is compared against. */
#include "bench_floor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "bench_util.h"

#define RATE 16000u
#define TICK_FRAMES 320u   /* 20 ms: what the application hands over */
#define FRAME_HEADER 8u    /* 0x82, 126, 16-bit length, mask */
#define MAX_HANDSHAKES 64u /* in flight, as bench-sessions' steno client */

enum { ST_CONNECTING, ST_TLS, ST_HANDSHAKE_SENT, ST_OPEN };

typedef struct conn {
    int fd, state;
    mbedtls_net_context net;
    mbedtls_ssl_context *ssl;  /* NULL: plain ws:// */
    uint32_t out_off, out_len; /* a frame the socket did not take at once */
    uint32_t hs_len;           /* response bytes read during the handshake */
    uint8_t *chunk;            /* chunk_bytes */
    uint8_t *out;              /* FRAME_HEADER + chunk_bytes */
    char hs[512];
} conn;

static uint32_t chunk_bytes; /* this run's chunk: ticks_per_chunk ticks of audio */
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t next_mask(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

/* wss://: one configuration for every connection */
static struct {
    int on;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} tls;

static void tls_init(const char *ca_file)
{
    mbedtls_ssl_config_init(&tls.conf);
    mbedtls_x509_crt_init(&tls.ca);
    mbedtls_entropy_init(&tls.entropy);
    mbedtls_ctr_drbg_init(&tls.drbg);
    if (mbedtls_ctr_drbg_seed(&tls.drbg, mbedtls_entropy_func, &tls.entropy, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&tls.ca, ca_file) != 0 ||
        mbedtls_ssl_config_defaults(&tls.conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        bench_die("floor: TLS set-up failed (CA file %s)", ca_file);
    mbedtls_ssl_conf_authmode(&tls.conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&tls.conf, &tls.ca, NULL);
    mbedtls_ssl_conf_rng(&tls.conf, mbedtls_ctr_drbg_random, &tls.drbg);
    tls.on = 1;
}

static void tls_free(void)
{
    if (!tls.on)
        return;
    mbedtls_ssl_config_free(&tls.conf);
    mbedtls_x509_crt_free(&tls.ca);
    mbedtls_ctr_drbg_free(&tls.drbg);
    mbedtls_entropy_free(&tls.entropy);
    tls.on = 0;
}

/* Plain or TLS I/O: >0 bytes, 0 closed, -1 would block (events says which way), -2 failed. */
static ssize_t io_write(conn *c, const void *buf, size_t len, uint32_t *events)
{
    if (!c->ssl) {
        ssize_t w = write(c->fd, buf, len);
        if (w < 0 && errno == EAGAIN) {
            *events = EPOLLIN | EPOLLOUT;
            return -1;
        }
        return w < 0 ? -2 : w;
    }
    int w = mbedtls_ssl_write(c->ssl, buf, len);
    if (w == MBEDTLS_ERR_SSL_WANT_WRITE || w == MBEDTLS_ERR_SSL_WANT_READ) {
        *events = EPOLLIN | (w == MBEDTLS_ERR_SSL_WANT_WRITE ? EPOLLOUT : 0);
        return -1;
    }
    return w < 0 ? -2 : w;
}

static ssize_t io_read(conn *c, void *buf, size_t len)
{
    if (!c->ssl) {
        ssize_t r = read(c->fd, buf, len);
        return r < 0 ? (errno == EAGAIN ? -1 : -2) : r;
    }
    int r = mbedtls_ssl_read(c->ssl, buf, len);
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return -1;
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return 0;
    return r < 0 ? -2 : r;
}

static void set_events(int ep, conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
        bench_die("floor: epoll_ctl: %s", strerror(errno));
}

static void start_connect(int ep, conn *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        bench_die("floor: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        bench_die("floor: connect: %s", strerror(errno));
    c->state = ST_CONNECTING;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) != 0)
        bench_die("floor: epoll_ctl: %s", strerror(errno));
}

/* Handshake progress; returns 1 when the connection just opened. */
static int on_handshake_event(int ep, conn *c, int port)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err)
            bench_die("floor: connect: %s", strerror(err));
        if (tls.on) {
            c->ssl = malloc(sizeof *c->ssl);
            if (!c->ssl)
                bench_die("floor: out of memory");
            mbedtls_ssl_init(c->ssl);
            c->net.fd = c->fd;
            if (mbedtls_ssl_setup(c->ssl, &tls.conf) != 0 ||
                mbedtls_ssl_set_hostname(c->ssl, "127.0.0.1") != 0)
                bench_die("floor: TLS session set-up failed");
            mbedtls_ssl_set_bio(c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
            c->state = ST_TLS;
        }
    }
    if (c->state == ST_TLS) {
        int h = mbedtls_ssl_handshake(c->ssl);
        if (h == MBEDTLS_ERR_SSL_WANT_READ || h == MBEDTLS_ERR_SSL_WANT_WRITE) {
            set_events(ep, c, h == MBEDTLS_ERR_SSL_WANT_READ ? EPOLLIN : EPOLLOUT);
            return 0;
        }
        if (h != 0) {
            char why[128];
            mbedtls_strerror(h, why, sizeof why);
            bench_die("floor: TLS handshake: %s", why);
        }
        c->state = ST_CONNECTING; /* TLS is up: the WebSocket handshake next */
    }
    if (c->state == ST_CONNECTING) {
        char req[384];
        int n =
            snprintf(req, sizeof req,
                     "GET /v1/listen?encoding=linear16&sample_rate=16000&channels=1 HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     port);
        uint32_t ev = 0;
        if (io_write(c, req, (size_t)n, &ev) != n) /* fits any fresh socket or TLS record */
            bench_die("floor: handshake write failed");
        c->state = ST_HANDSHAKE_SENT;
        set_events(ep, c, EPOLLIN);
        return 0;
    }
    ssize_t r = io_read(c, c->hs + c->hs_len, sizeof c->hs - 1 - c->hs_len);
    if (r == -1)
        return 0;
    if (r <= 0)
        bench_die("floor: handshake read: %s", r ? "failed" : "closed");
    c->hs_len += (uint32_t)r;
    c->hs[c->hs_len] = '\0';
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hs_len + 1 >= sizeof c->hs)
            bench_die("floor: handshake response too long");
        return 0;
    }
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0)
        bench_die("floor: handshake refused: %.40s", c->hs);
    c->state = ST_OPEN;
    return 1;
}

static void flush(int ep, conn *c)
{
    while (c->out_off < c->out_len) {
        uint32_t ev = 0;
        ssize_t w = io_write(c, c->out + c->out_off, c->out_len - c->out_off, &ev);
        if (w == -1) { /* TLS: called again with the same bytes, as mbedTLS requires */
            set_events(ep, c, ev);
            return;
        }
        if (w <= 0)
            bench_die("floor: write failed");
        c->out_off += (uint32_t)w;
    }
    c->out_off = c->out_len = 0;
}

static void send_chunk(int ep, conn *c)
{
    if (c->out_len)
        bench_die("floor: the previous frame is still unsent: the floor client fell behind");
    uint8_t *f = c->out;
    uint32_t mask = next_mask();
    f[0] = 0x82; /* FIN, binary */
    f[1] = 0x80 | 126;
    f[2] = (uint8_t)(chunk_bytes >> 8);
    f[3] = (uint8_t)(chunk_bytes & 0xff);
    memcpy(f + 4, &mask, 4);
    uint64_t m8 = (uint64_t)mask | (uint64_t)mask << 32, w;
    for (uint32_t i = 0; i < chunk_bytes; i += 8) {
        memcpy(&w, c->chunk + i, 8);
        w ^= m8;
        memcpy(f + 8 + i, &w, 8);
    }
    c->out_len = FRAME_HEADER + chunk_bytes;
    flush(ep, c);
}

void bench_floor_run(int port, uint32_t n, double seconds, uint32_t ticks_per_chunk,
                     const char *ca_file, bench_floor_result *r)
{
    memset(r, 0, sizeof *r);
    if (ticks_per_chunk < 1 || ticks_per_chunk > BENCH_FLOOR_MAX_TICKS_PER_CHUNK)
        bench_die("floor: %u ticks per chunk is out of range", ticks_per_chunk);
    chunk_bytes = TICK_FRAMES * 2u * ticks_per_chunk; /* whole 8-byte words: 640 per tick */
    if (ca_file)
        tls_init(ca_file);
    conn *cs = calloc(n, sizeof *cs);
    uint8_t *bufs = malloc((size_t)n * (2u * chunk_bytes + FRAME_HEADER));
    int16_t *audio = malloc(TICK_FRAMES * sizeof *audio);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || !bufs || !audio || ep < 0)
        bench_die("floor: out of memory or epoll");
    for (uint32_t i = 0; i < n; i++) {
        cs[i].chunk = bufs + (size_t)i * (2u * chunk_bytes + FRAME_HEADER);
        cs[i].out = cs[i].chunk + chunk_bytes;
    }
    for (uint32_t i = 0; i < TICK_FRAMES; i++)
        audio[i] = (int16_t)((i * 37u) & 0xff);

    /* connect, at most MAX_HANDSHAKES at a time */
    enum { MAXEV = 256 };
    struct epoll_event evs[MAXEV];
    uint32_t started = 0, open = 0;
    uint64_t deadline = bench_now_ms() + 120000;
    while (open < n) {
        while (started < n && started - open < MAX_HANDSHAKES)
            start_connect(ep, &cs[started++], port);
        int k = epoll_wait(ep, evs, MAXEV, 1000);
        if (k < 0 && errno != EINTR)
            bench_die("floor: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++)
            open += (uint32_t)on_handshake_event(ep, evs[i].data.ptr, port);
        if (bench_now_ms() > deadline)
            bench_die("floor: %u of %u connections open after 120 s", open, n);
    }

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event te = {.events = EPOLLIN, .data.ptr = NULL};
    if (tfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &te) != 0)
        bench_die("floor: timerfd: %s", strerror(errno));
    uint64_t ticks = (uint64_t)(seconds * RATE / TICK_FRAMES + 0.5), tick = 0;
    uint64_t tick_ns = (uint64_t)TICK_FRAMES * 1000000000u / RATE;
    static uint8_t sink[65536];
    BENCH_WINDOW_BEGIN();
    double cpu0 = bench_cpu_process_s();
    struct itimerspec its = {.it_interval = {0, (long)tick_ns}, .it_value = {0, (long)tick_ns}};
    timerfd_settime(tfd, 0, &its, NULL);
    while (tick < ticks) {
        int k = epoll_wait(ep, evs, MAXEV, -1);
        if (k < 0 && errno != EINTR)
            bench_die("floor: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) { /* the 20 ms tick: the application's audio for every connection */
                uint64_t expirations = 0;
                if (read(tfd, &expirations, sizeof expirations) != sizeof expirations)
                    continue;
                if (expirations > 1)
                    r->late_ticks++;
                for (uint64_t e = 0; e < expirations && tick < ticks; e++, tick++) {
                    uint32_t slot = (uint32_t)(tick % ticks_per_chunk);
                    for (uint32_t j = 0; j < n; j++) {
                        memcpy(cs[j].chunk + slot * TICK_FRAMES * 2, audio, TICK_FRAMES * 2);
                        if (slot == ticks_per_chunk - 1) {
                            send_chunk(ep, &cs[j]);
                            r->frames_sent++;
                        }
                    }
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                flush(ep, c);
                if (!c->out_len)
                    set_events(ep, c, EPOLLIN);
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t got;
                while ((got = io_read(c, sink, sizeof sink)) > 0)
                    r->bytes_rx += (uint64_t)got;
                if (got == 0 || got == -2)
                    bench_die("floor: the server closed a connection");
            }
        }
    }
    r->cpu_s = bench_cpu_process_s() - cpu0;
    BENCH_WINDOW_END("floor-streaming");
    r->seconds = (double)(ticks * TICK_FRAMES) / RATE;
    for (uint32_t i = 0; i < n; i++) {
        if (cs[i].ssl) {
            mbedtls_ssl_free(cs[i].ssl);
            free(cs[i].ssl);
        }
        close(cs[i].fd);
    }
    tls_free();
    close(tfd);
    close(ep);
    free(cs);
    free(bufs);
    free(audio);
}
