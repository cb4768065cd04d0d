/* bench_sink: a bare epoll WebSocket server that takes frames and drops them. */
#include "bench_sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#define HS_MAX 4096u
#define MAXEV 512

typedef struct sconn {
    int fd;
    int open; /* the upgrade was answered */
    uint32_t hs_len;
    /* the frame being parsed */
    uint8_t hdr[14];
    uint32_t hdr_len, hdr_need;
    uint64_t skip;     /* payload bytes of a data frame still to drop */
    uint8_t opcode;    /* of a small frame being kept (control or text) */
    uint8_t mask[4];   /* ... and its mask */
    uint32_t keep_len; /* its length */
    uint32_t kept;     /* bytes of it received */
    uint8_t keep[256]; /* control payloads are <= 125; texts longer than this are dropped */
    char hs[HS_MAX + 1];
} sconn;

static void sink_close(int ep, sconn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Small replies (pong, close): a full socket drops them, which only a test of the sink would
 * notice. */
static void send_frame(sconn *c, uint8_t opcode, const uint8_t *p, uint32_t n)
{
    uint8_t out[2 + 125];
    if (n > 125)
        n = 125;
    out[0] = (uint8_t)(0x80 | opcode);
    out[1] = (uint8_t)n;
    memcpy(out + 2, p, n);
    if (write(c->fd, out, 2 + n) < 0)
        return;
}

static int answer_upgrade(sconn *c)
{
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end)
        return c->hs_len < HS_MAX ? 0 : -1;
    static const char name[] = "\r\nSec-WebSocket-Key:";
    char *k = NULL;
    for (char *p = c->hs; (p = strstr(p, "\r\n")) && p < end; p += 2)
        if (!strncasecmp(p, name, sizeof name - 1)) {
            k = p + sizeof name - 1;
            break;
        }
    if (!k)
        return -1;
    while (*k == ' ')
        k++;
    char *ke = strstr(k, "\r\n");
    size_t kl = (size_t)(ke - k);
    if (kl > 64)
        return -1;
    char cat[128];
    memcpy(cat, k, kl);
    memcpy(cat + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[20], acc[64];
    size_t al = 0;
    if (mbedtls_sha1_ret((unsigned char *)cat, kl + 36, sha) != 0 ||
        mbedtls_base64_encode(acc, sizeof acc - 1, &al, sha, sizeof sha) != 0)
        return -1;
    acc[al] = '\0';
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     (const char *)acc);
    if (write(c->fd, resp, (size_t)n) != n)
        return -1;
    c->open = 1;
    c->hdr_need = 2;
    return 0;
}

/* A kept frame is complete: -1 ends the connection. */
static int on_frame(sconn *c)
{
    for (uint32_t i = 0; i < c->keep_len; i++)
        c->keep[i] ^= c->mask[i & 3];
    if (c->opcode == 0x9) {
        send_frame(c, 0xA, c->keep, c->keep_len);
    } else if (c->opcode == 0x8) {
        send_frame(c, 0x8, c->keep, c->keep_len >= 2 ? 2 : 0);
        return -1;
    } else if (c->opcode == 0x1 && c->keep_len < sizeof c->keep) {
        c->keep[c->keep_len] = '\0';
        if (strstr((const char *)c->keep, "CloseStream")) {
            static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000 */
            send_frame(c, 0x8, normal, 2);
            return -1;
        }
    }
    return 0;
}

/* Parses what arrived: -1 ends the connection. */
static int on_bytes(sconn *c, const uint8_t *p, size_t n)
{
    while (n) {
        if (c->skip) {
            size_t k = n < c->skip ? n : (size_t)c->skip;
            c->skip -= k, p += k, n -= k;
            continue;
        }
        if (c->kept < c->keep_len) {
            size_t k = c->keep_len - c->kept;
            if (k > n)
                k = n;
            memcpy(c->keep + c->kept, p, k);
            c->kept += (uint32_t)k, p += k, n -= k;
            if (c->kept == c->keep_len && on_frame(c))
                return -1;
            continue;
        }
        c->hdr[c->hdr_len++] = *p++, n--;
        if (c->hdr_len == 2) {
            uint8_t l7 = c->hdr[1] & 0x7f;
            c->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
        }
        if (c->hdr_len < c->hdr_need)
            continue;
        uint8_t l7 = c->hdr[1] & 0x7f;
        uint64_t len = l7;
        uint32_t at = 2;
        if (l7 == 126) {
            len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            at = 4;
        } else if (l7 == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | c->hdr[2 + i];
            at = 10;
        }
        memset(c->mask, 0, sizeof c->mask);
        if (c->hdr[1] & 0x80)
            memcpy(c->mask, c->hdr + at, 4);
        c->opcode = c->hdr[0] & 0x0f;
        c->hdr_len = 0;
        c->hdr_need = 2;
        c->kept = c->keep_len = 0;
        if (c->opcode >= 0x8 || (c->opcode == 0x1 && len < sizeof c->keep)) {
            c->keep_len = (uint32_t)len;
            if (!len && on_frame(c))
                return -1;
        } else {
            c->skip = len; /* audio: dropped unread */
        }
    }
    return 0;
}

static void sink_main(int lfd)
{
    bench_raise_nofile();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) != 0)
        bench_die("sink: epoll: %s", strerror(errno));
    static uint8_t buf[65536];
    struct epoll_event evs[MAXEV];
    for (;;) {
        int k = epoll_wait(ep, evs, MAXEV, -1);
        if (k < 0 && errno != EINTR)
            bench_die("sink: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++) {
            sconn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    sconn *nc = calloc(1, sizeof *nc);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            ssize_t got;
            int end = 0;
            while (!end &&
                   (got = c->open ? read(c->fd, buf, sizeof buf)
                                  : read(c->fd, c->hs + c->hs_len, HS_MAX - c->hs_len)) > 0) {
                if (c->open) {
                    end = on_bytes(c, buf, (size_t)got) != 0;
                } else {
                    c->hs_len += (uint32_t)got;
                    c->hs[c->hs_len] = '\0';
                    end = answer_upgrade(c) != 0;
                }
                if ((size_t)got < (c->open ? sizeof buf : 1))
                    break; /* drained: saves the read that would say EAGAIN */
            }
            if (end || got == 0 || (got < 0 && errno != EAGAIN))
                sink_close(ep, c);
        }
    }
}

void bench_sink_start(bench_server *srv)
{
    memset(srv, 0, sizeof *srv);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        bench_die("sink: listen: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        bench_die("sink: fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives the bench */
        sink_main(lfd);
        _exit(0);
    }
    close(lfd);
    srv->pid = pid;
    srv->port = ntohs(a.sin_port);
    snprintf(srv->url, sizeof srv->url, "ws://127.0.0.1:%d/v1/listen", srv->port);
}
