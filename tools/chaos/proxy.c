/* proxy: accepts clients, dials upstream, and forwards bytes through the active toxics. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rng.h"

#define READ_CHUNK 16384
/* Per pipe: beyond this the proxy stops reading, so a slow reader pushes back on the sender. */
#define QUEUE_CAP (256 * 1024)
/* Before a reset-after-bytes RST, wait (this long at most) until the peer has ACKed the bytes. */
#define DRAIN_RESET_MAX_NS (2 * NS_PER_S)
#define DRAIN_POLL_NS NS_PER_MS
/* After a clean close, read and drop what peers still send (so close() does not RST). */
#define CLOSE_LINGER_NS NS_PER_S
#define CONNECT_TIMEOUT_NS (10 * NS_PER_S)
#define ACCEPT_PAUSE_NS (100 * NS_PER_MS)
/* Bandwidth is paced in slices of 1/50 s of the rate. */
#define BW_SLICES_PER_S 50
/* Read/write rounds per connection per loop iteration, so one busy pair cannot starve others. */
#define ROUNDS 8
#define DELAY_LOG 32
#define MAX_TOXICS 1024

enum { PIPE_UP = 0, PIPE_DOWN = 1 }; /* pipe i reads side i and writes side 1-i */
enum { SIDE_CLIENT = 0, SIDE_UP = 1 };

enum conn_state {
    CS_CONNECTING, /* upstream connect in progress; the client is not read yet */
    CS_OPEN,
    CS_DRAIN_RESET, /* a reset-after-bytes fired: waiting for the last bytes to be ACKed */
    CS_CLOSING,     /* FIN sent both ways; discarding input until the peers close */
    CS_DEAD,
};

static const char *const state_names[] = {"connecting", "open", "resetting", "closing", "dead"};

enum { BH_NONE, BH_STALL, BH_DISCARD };

struct chunk {
    struct chunk *next;
    int64_t release_ns;
    size_t len, off;
    unsigned char data[];
};

struct pipe {
    struct chunk *head, *tail;
    size_t queued;
    uint64_t bytes_in, bytes_out;
    int64_t bw_next_ns;
    int64_t last_release_ns;
    int64_t wait_ns; /* when a delayed or paced chunk may go next */
    uint64_t rng;
    bool eof_read, fin_sent;
    unsigned ndelays;
    int64_t delays_ms[DELAY_LOG]; /* the first latency delays applied, for replay checks */
};

struct conn;

struct side {
    struct watch w;
    struct conn *c;
    int fd;
    bool readable, writable, error;
};

/* A toxic as it applies to one connection: counted from when it attached. */
struct attach {
    const struct toxic *t;
    uint64_t base_out[2];
    int64_t base_ns;
};

struct conn {
    struct proxy *p;
    struct conn *prev, *next; /* live connections */
    struct conn *dirty_next;  /* dirty or dead list */
    bool dirty;
    uint64_t id;
    enum conn_state st;
    struct side s[2];
    struct pipe pp[2];
    int64_t accepted_ns, state_ns;
    int64_t deadline;
    unsigned drain_mask; /* sides whose send queue must empty before the RST */
    struct attach *att;
    size_t natt, catt;
    char client[64];
};

struct proxy {
    struct loop *loop;
    struct loop_hook hook;
    struct watch lw;
    int lfd;
    struct sockaddr_storage up;
    socklen_t uplen;
    uint64_t seed;
    bool verbose;
    struct conn *conns;
    size_t nconns;
    uint64_t next_id, accepted;
    struct conn *dirty, *dead;
    struct toxic *toxics; /* in insertion order */
    size_t ntoxics;
    uint64_t auto_names;
    int64_t accept_retry_ns;
    int64_t started_ns;
    char listen_name[64], upstream_name[64];
};

struct effect {
    int64_t latency_ms, jitter_ms, rate;
    int64_t rem_reset, rem_close; /* bytes still allowed before the toxic fires; -1: none */
    int blackhole;
};

enum { PUMP_OK, PUMP_ERROR, PUMP_RESET, PUMP_CLOSE };

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static void vlog(const struct proxy *p, const struct conn *c, const char *what)
{
    if (!p->verbose)
        return;
    fprintf(stderr, "steno-chaos: conn %llu %s: %s (up %llu, down %llu bytes)\n",
            (unsigned long long)c->id, c->client, what, (unsigned long long)c->pp[0].bytes_out,
            (unsigned long long)c->pp[1].bytes_out);
}

static void addr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "?");
    }
}

/* ---- connection lifecycle ---- */

static void mark_dirty(struct proxy *p, struct conn *c)
{
    if (c->dirty || c->st == CS_DEAD)
        return;
    c->dirty = true;
    c->dirty_next = p->dirty;
    p->dirty = c;
}

static void free_queue(struct pipe *pp)
{
    while (pp->head) {
        struct chunk *ch = pp->head;
        pp->head = ch->next;
        free(ch);
    }
    pp->tail = NULL;
    pp->queued = 0;
}

static void close_side(struct side *s, bool rst)
{
    if (s->fd < 0)
        return;
    if (rst) {
        /* SO_LINGER 0: close() sends RST and drops anything unsent. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(s->fd);
    s->fd = -1;
}

/* Unlinks c from the live list; the memory goes once the current loop iteration is over. */
static void conn_kill(struct proxy *p, struct conn *c, const char *why)
{
    vlog(p, c, why);
    close_side(&c->s[0], false);
    close_side(&c->s[1], false);
    free_queue(&c->pp[0]);
    free_queue(&c->pp[1]);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->nconns--;
    c->st = CS_DEAD;
    /* A dirty connection is still linked through dirty_next: the tick skips and frees it. */
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = p->dead;
        p->dead = c;
    }
}

static void conn_reset(struct proxy *p, struct conn *c, const char *why)
{
    close_side(&c->s[0], true);
    close_side(&c->s[1], true);
    conn_kill(p, c, why);
}

static void conn_begin_close(struct proxy *p, struct conn *c, int64_t now, const char *why)
{
    if (c->st == CS_CONNECTING)
        close_side(&c->s[SIDE_UP], false);
    for (int i = 0; i < 2; i++) {
        if (c->s[i].fd >= 0)
            shutdown(c->s[i].fd, SHUT_WR);
        free_queue(&c->pp[i]);
        /* Whatever is buffered may already hold the peer's FIN: look once more. */
        c->s[i].readable = true;
    }
    c->st = CS_CLOSING;
    c->state_ns = now;
    vlog(p, c, why);
}

static void attach_toxic(struct conn *c, const struct toxic *t, int64_t now)
{
    if (t->conn_id && t->conn_id != c->id)
        return;
    if (c->natt == c->catt) {
        size_t n = c->catt ? c->catt * 2 : 4;
        struct attach *a = realloc(c->att, n * sizeof(*a));
        if (!a)
            return; /* out of memory: the toxic just does not apply here */
        c->att = a;
        c->catt = n;
    }
    c->att[c->natt++] = (struct attach){
        .t = t, .base_out = {c->pp[0].bytes_out, c->pp[1].bytes_out}, .base_ns = now};
}

static void detach_toxic(struct conn *c, const struct toxic *t)
{
    for (size_t i = 0; i < c->natt; i++) {
        if (c->att[i].t == t) {
            memmove(&c->att[i], &c->att[i + 1], (c->natt - i - 1) * sizeof(c->att[0]));
            c->natt--;
            return;
        }
    }
}

/* ---- toxics as they apply to one connection ---- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t min_rem(int64_t cur, int64_t rem)
{
    return cur < 0 ? rem : min64(cur, rem);
}

static void effects(const struct conn *c, struct effect e[2], int64_t *reset_at, int64_t *close_at)
{
    for (int i = 0; i < 2; i++)
        e[i] = (struct effect){.rem_reset = -1, .rem_close = -1};
    *reset_at = *close_at = NEVER;
    for (size_t k = 0; k < c->natt; k++) {
        const struct attach *a = &c->att[k];
        const struct toxic *t = a->t;
        bool fatal = t->type == TOXIC_RESET || t->type == TOXIC_CLOSE;
        if (fatal) {
            int64_t *at = t->type == TOXIC_RESET ? reset_at : close_at;
            if (t->after_ms >= 0)
                *at = min64(*at, a->base_ns + t->after_ms * NS_PER_MS);
            else if (t->after_bytes < 0)
                *at = min64(*at, a->base_ns); /* neither: at once */
        }
        for (int i = 0; i < 2; i++) {
            if (!(t->dir & (1u << i)))
                continue;
            switch (t->type) {
            case TOXIC_LATENCY:
                e[i].latency_ms += t->latency_ms;
                e[i].jitter_ms += t->jitter_ms;
                break;
            case TOXIC_BANDWIDTH:
                e[i].rate = e[i].rate ? min64(e[i].rate, t->bytes_per_s) : t->bytes_per_s;
                break;
            case TOXIC_RESET:
            case TOXIC_CLOSE:
                if (t->after_bytes >= 0) {
                    uint64_t used = c->pp[i].bytes_out - a->base_out[i];
                    int64_t rem =
                        (uint64_t)t->after_bytes > used ? t->after_bytes - (int64_t)used : 0;
                    if (t->type == TOXIC_RESET)
                        e[i].rem_reset = min_rem(e[i].rem_reset, rem);
                    else
                        e[i].rem_close = min_rem(e[i].rem_close, rem);
                }
                break;
            case TOXIC_BLACKHOLE:
                if (e[i].blackhole != BH_DISCARD)
                    e[i].blackhole = t->discard ? BH_DISCARD : BH_STALL;
                break;
            }
        }
    }
}

/* ---- forwarding ---- */

static int64_t sample_delay_ms(struct pipe *pp, const struct effect *e)
{
    int64_t d = e->latency_ms;
    if (e->jitter_ms > 0) {
        uint64_t span = (uint64_t)e->jitter_ms * 2 + 1;
        d += (int64_t)(rng_next(&pp->rng) % span) - e->jitter_ms;
    }
    if (d < 0)
        d = 0;
    if (pp->ndelays < DELAY_LOG)
        pp->delays_ms[pp->ndelays++] = d;
    return d;
}

static int enqueue(struct pipe *pp, const unsigned char *buf, size_t n, const struct effect *e,
                   int64_t now)
{
    struct chunk *ch = malloc(sizeof(*ch) + n);
    if (!ch)
        return -1;
    int64_t release = now;
    if (e->latency_ms > 0 || e->jitter_ms > 0)
        release += sample_delay_ms(pp, e) * NS_PER_MS;
    /* TCP is a byte stream: a shorter jitter must not overtake earlier bytes. */
    if (release < pp->last_release_ns)
        release = pp->last_release_ns;
    pp->last_release_ns = release;
    ch->next = NULL;
    ch->release_ns = release;
    ch->len = n;
    ch->off = 0;
    memcpy(ch->data, buf, n);
    if (pp->tail)
        pp->tail->next = ch;
    else
        pp->head = ch;
    pp->tail = ch;
    pp->queued += n;
    return 0;
}

static size_t cap_size(size_t want, int64_t limit)
{
    return limit >= 0 && (uint64_t)limit < want ? (size_t)limit : want;
}

static int pipe_pump(struct conn *c, int i, struct effect *e, int64_t now, bool *progress)
{
    struct pipe *pp = &c->pp[i];
    struct side *src = &c->s[i], *dst = &c->s[1 - i];
    unsigned char buf[READ_CHUNK];
    bool read_error = false;

    pp->wait_ns = NEVER;
    if (!pp->eof_read && src->readable && e->blackhole != BH_STALL) {
        size_t budget = QUEUE_CAP;
        while (budget > 0 && (e->blackhole == BH_DISCARD || pp->queued < QUEUE_CAP)) {
            ssize_t n = recv(src->fd, buf, sizeof(buf), 0);
            if (n > 0) {
                *progress = true;
                pp->bytes_in += (uint64_t)n;
                budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
                if (e->blackhole != BH_DISCARD && enqueue(pp, buf, (size_t)n, e, now))
                    return PUMP_ERROR;
            } else if (n == 0) {
                pp->eof_read = true;
                *progress = true;
                break;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                src->readable = false;
                break;
            } else if (errno != EINTR) {
                /* Still deliver what was read before the error, then pass the reset on. */
                read_error = true;
                break;
            }
        }
    }

    if (e->blackhole == BH_NONE && !pp->fin_sent) {
        while (pp->head) {
            struct chunk *ch = pp->head;
            if (ch->release_ns > now) {
                pp->wait_ns = ch->release_ns;
                break;
            }
            if (e->rate && pp->bw_next_ns > now) {
                pp->wait_ns = pp->bw_next_ns;
                break;
            }
            if (!dst->writable)
                break;
            size_t want = ch->len - ch->off;
            if (e->rate) {
                int64_t slice = e->rate / BW_SLICES_PER_S;
                want = cap_size(want, slice > 0 ? slice : 1);
            }
            want = cap_size(want, e->rem_reset);
            want = cap_size(want, e->rem_close);
            if (want == 0)
                break;
            ssize_t n = send(dst->fd, ch->data + ch->off, want, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    dst->writable = false;
                    break;
                }
                return PUMP_ERROR;
            }
            *progress = true;
            ch->off += (size_t)n;
            pp->queued -= (size_t)n;
            pp->bytes_out += (uint64_t)n;
            if (e->rem_reset > 0)
                e->rem_reset -= n;
            if (e->rem_close > 0)
                e->rem_close -= n;
            if (e->rate)
                pp->bw_next_ns =
                    (pp->bw_next_ns > now ? pp->bw_next_ns : now) + (int64_t)n * NS_PER_S / e->rate;
            if (ch->off == ch->len) {
                pp->head = ch->next;
                if (!pp->head)
                    pp->tail = NULL;
                free(ch);
            }
        }
        if (!pp->head && pp->eof_read && e->rem_reset != 0 && e->rem_close != 0) {
            shutdown(dst->fd, SHUT_WR);
            pp->fin_sent = true;
            *progress = true;
        }
    }
    if (read_error)
        return PUMP_ERROR;
    if (e->rem_reset == 0)
        return PUMP_RESET;
    if (e->rem_close == 0)
        return PUMP_CLOSE;
    return PUMP_OK;
}

static void conn_pump(struct proxy *p, struct conn *c, struct effect e[2], int64_t now)
{
    int round;
    for (round = 0; round < ROUNDS; round++) {
        bool progress = false;
        for (int i = 0; i < 2; i++) {
            int r = pipe_pump(c, i, &e[i], now, &progress);
            if (r == PUMP_ERROR) {
                conn_reset(p, c, "peer error, reset passed on");
                return;
            }
            if (r == PUMP_RESET) {
                c->st = CS_DRAIN_RESET;
                c->state_ns = now;
                c->drain_mask = 1u << (1 - i);
                vlog(p, c, "reset after bytes");
                return;
            }
            if (r == PUMP_CLOSE) {
                conn_begin_close(p, c, now, "close after bytes");
                return;
            }
        }
        if (c->pp[0].fin_sent && c->pp[1].fin_sent) {
            conn_kill(p, c, "closed by peers");
            return;
        }
        if (!progress)
            break;
    }
    if (c->s[0].error || c->s[1].error) {
        conn_reset(p, c, "peer reset, passed on");
        return;
    }
    if (round == ROUNDS)
        c->deadline = now; /* more to do: come back after the others had a turn */
    for (int i = 0; i < 2; i++)
        c->deadline = min64(c->deadline, c->pp[i].wait_ns);
}

static void conn_drain_reset(struct proxy *p, struct conn *c, int64_t now)
{
    bool drained = true;
    for (int i = 0; i < 2; i++) {
        int q = 0;
        if ((c->drain_mask & (1u << i)) && c->s[i].fd >= 0 &&
            ioctl(c->s[i].fd, SIOCOUTQ, &q) == 0 && q > 0)
            drained = false;
    }
    if (drained || c->s[0].error || c->s[1].error || now - c->state_ns >= DRAIN_RESET_MAX_NS)
        conn_reset(p, c, "reset");
    else
        c->deadline = now + DRAIN_POLL_NS;
}

static void conn_closing(struct proxy *p, struct conn *c, int64_t now)
{
    unsigned char buf[READ_CHUNK];
    for (int i = 0; i < 2; i++) {
        struct side *s = &c->s[i];
        size_t budget = QUEUE_CAP;
        while (s->fd >= 0 && s->readable && budget > 0) {
            ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
            if (n > 0) {
                budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            } else if (n == 0) {
                close_side(s, false);
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                s->readable = false;
            } else if (errno != EINTR) {
                close_side(s, false);
            }
        }
        if (s->fd >= 0 && s->readable)
            c->deadline = now; /* budget spent */
    }
    if ((c->s[0].fd < 0 && c->s[1].fd < 0) || now - c->state_ns >= CLOSE_LINGER_NS)
        conn_kill(p, c, "closed");
    else
        c->deadline = min64(c->deadline, c->state_ns + CLOSE_LINGER_NS);
}

static void upstream_failed(struct proxy *p, struct conn *c, int err, int64_t now)
{
    if (p->verbose)
        fprintf(stderr, "steno-chaos: conn %llu: upstream %s: %s\n", (unsigned long long)c->id,
                p->upstream_name, strerror(err ? err : ETIMEDOUT));
    conn_begin_close(p, c, now, "upstream unreachable, client closed");
}

static void conn_service(struct proxy *p, struct conn *c, int64_t now)
{
    struct effect e[2];
    int64_t reset_at, close_at;
    effects(c, e, &reset_at, &close_at);
    c->deadline = NEVER;
    if (c->st == CS_CONNECTING || c->st == CS_OPEN) {
        if (reset_at <= now) {
            conn_reset(p, c, "reset toxic");
            return;
        }
        if (close_at <= now)
            conn_begin_close(p, c, now, "close toxic");
    }
    switch (c->st) {
    case CS_CONNECTING:
        if (c->s[SIDE_CLIENT].error) {
            conn_reset(p, c, "client reset while connecting");
            return;
        }
        if (now - c->accepted_ns >= CONNECT_TIMEOUT_NS) {
            upstream_failed(p, c, ETIMEDOUT, now);
            conn_closing(p, c, now);
            return;
        }
        c->deadline = min64(min64(reset_at, close_at), c->accepted_ns + CONNECT_TIMEOUT_NS);
        return;
    case CS_OPEN:
        conn_pump(p, c, e, now);
        if (c->st == CS_OPEN)
            c->deadline = min64(c->deadline, min64(reset_at, close_at));
        else if (c->st == CS_DRAIN_RESET)
            conn_drain_reset(p, c, now);
        else if (c->st == CS_CLOSING)
            conn_closing(p, c, now);
        return;
    case CS_DRAIN_RESET:
        conn_drain_reset(p, c, now);
        return;
    case CS_CLOSING:
        conn_closing(p, c, now);
        return;
    case CS_DEAD:
        return;
    }
}

static void side_event(struct watch *w, uint32_t ev)
{
    struct side *s = container_of(w, struct side, w);
    struct conn *c = s->c;
    struct proxy *p = c->p;
    if (c->st == CS_DEAD || s->fd < 0)
        return;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->readable = true;
    if (ev & (EPOLLOUT | EPOLLERR))
        s->writable = true;
    if (c->st == CS_CONNECTING && s == &c->s[SIDE_UP]) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            upstream_failed(p, c, err, steno__loop_now());
        } else if (ev & EPOLLOUT) {
            c->st = CS_OPEN;
            vlog(p, c, "upstream connected");
        }
    } else if (ev & EPOLLERR) {
        /* Forward what was read before it, then reset the other side (see conn_pump). */
        s->error = true;
    }
    mark_dirty(p, c);
}

static void set_nodelay(int fd)
{
    /* Forward small writes at once: the proxy must add only the delays it is told to. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_new(struct proxy *p, int cfd, const struct sockaddr_storage *peer, int64_t now)
{
    struct conn *c = calloc(1, sizeof(*c));
    int ufd = socket(p->up.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!c || ufd < 0) {
        if (p->verbose)
            fprintf(stderr, "steno-chaos: dropping a client: %s\n",
                    c ? strerror(errno) : "out of memory");
        free(c);
        if (ufd >= 0)
            close(ufd);
        close(cfd);
        return;
    }
    c->p = p;
    c->id = ++p->next_id;
    p->accepted++;
    c->st = CS_CONNECTING;
    c->accepted_ns = c->state_ns = now;
    c->deadline = now;
    addr_name(peer, c->client, sizeof(c->client));
    for (int i = 0; i < 2; i++) {
        c->s[i].w.fn = side_event;
        c->s[i].c = c;
        c->pp[i].rng = rng_stream(p->seed, c->id, (unsigned)i);
    }
    c->s[SIDE_CLIENT].fd = cfd;
    c->s[SIDE_UP].fd = ufd;
    set_nodelay(cfd);
    set_nodelay(ufd);

    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    for (const struct toxic *t = p->toxics; t; t = t->next)
        attach_toxic(c, t, now);
    vlog(p, c, "accepted");

    int r = connect(ufd, (const struct sockaddr *)&p->up, p->uplen);
    if (r == 0) {
        c->st = CS_OPEN;
    } else if (errno != EINPROGRESS) {
        int err = errno;
        close_side(&c->s[SIDE_UP], false);
        upstream_failed(p, c, err, now);
    }
    if (steno__loop_add(p->loop, cfd, &c->s[SIDE_CLIENT].w) < 0 ||
        (c->s[SIDE_UP].fd >= 0 && steno__loop_add(p->loop, ufd, &c->s[SIDE_UP].w) < 0)) {
        conn_reset(p, c, "epoll registration failed");
        return;
    }
    mark_dirty(p, c);
}

static void do_accept(struct proxy *p)
{
    int64_t now = steno__loop_now();
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(p->lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(p, fd, &peer, now);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Edge-triggered: the backlog will not signal again, so try again on a timer. */
            if (p->verbose)
                fprintf(stderr, "steno-chaos: accept: %s; pausing\n", strerror(errno));
            p->accept_retry_ns = now + ACCEPT_PAUSE_NS;
        }
        return;
    }
}

static void listen_event(struct watch *w, uint32_t ev)
{
    do_accept(container_of(w, struct proxy, lw));
}

static void free_conn(struct conn *c)
{
    free(c->att);
    free(c);
}

static int64_t proxy_tick(struct loop_hook *h, int64_t now)
{
    struct proxy *p = container_of(h, struct proxy, hook);
    if (p->accept_retry_ns <= now) {
        p->accept_retry_ns = NEVER;
        do_accept(p);
    }
    for (struct conn *c = p->conns; c; c = c->next)
        if (c->deadline <= now)
            mark_dirty(p, c);

    struct conn *list = p->dirty;
    p->dirty = NULL;
    while (list) {
        struct conn *c = list;
        list = c->dirty_next;
        c->dirty = false;
        if (c->st == CS_DEAD) {
            c->dirty = true;
            c->dirty_next = p->dead;
            p->dead = c;
            continue;
        }
        conn_service(p, c, now);
    }
    while (p->dead) {
        struct conn *c = p->dead;
        p->dead = c->dirty_next;
        free_conn(c);
    }

    int64_t deadline = p->accept_retry_ns;
    for (struct conn *c = p->conns; c; c = c->next)
        deadline = min64(deadline, c->deadline);
    return deadline;
}

/* ---- setup ---- */

struct proxy *steno__proxy_open(struct loop *l, const struct proxy_config *cfg, char *err,
                                size_t errlen)
{
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = l;
    p->seed = cfg->seed;
    p->verbose = cfg->verbose;
    p->up = cfg->upstream_addr;
    p->uplen = cfg->upstream_len;
    p->accept_retry_ns = NEVER;
    p->started_ns = steno__loop_now();
    p->lw.fn = listen_event;
    p->hook.tick = proxy_tick;
    addr_name(&p->up, p->upstream_name, sizeof(p->upstream_name));

    p->lfd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (p->lfd < 0 || setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(p->lfd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_len) < 0 ||
        listen(p->lfd, 4096) < 0 || getsockname(p->lfd, (struct sockaddr *)&bound, &blen) < 0 ||
        steno__loop_add(l, p->lfd, &p->lw) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        return NULL;
    }
    addr_name(&bound, p->listen_name, sizeof(p->listen_name));
    steno__loop_add_hook(l, &p->hook);
    return p;
}

void steno__proxy_close(struct proxy *p)
{
    if (!p)
        return;
    while (p->conns)
        conn_reset(p, p->conns, "proxy shutting down");
    /* Dead connections are on the dead list or still on the dirty list. */
    for (struct conn *list = p->dirty; list;) {
        struct conn *c = list;
        list = c->dirty_next;
        free_conn(c);
    }
    while (p->dead) {
        struct conn *c = p->dead;
        p->dead = c->dirty_next;
        free_conn(c);
    }
    while (p->toxics) {
        struct toxic *t = p->toxics;
        p->toxics = t->next;
        free(t);
    }
    close(p->lfd);
    free(p);
}

const char *steno__proxy_listen_name(const struct proxy *p)
{
    return p->listen_name;
}

const char *steno__proxy_upstream_name(const struct proxy *p)
{
    return p->upstream_name;
}

/* ---- control operations ---- */

static struct toxic *find_toxic(struct proxy *p, const char *name, struct toxic ***link)
{
    for (struct toxic **pp = &p->toxics; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->name, name)) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

int steno__proxy_add_toxic(struct proxy *p, struct toxic *t)
{
    if (p->ntoxics >= MAX_TOXICS)
        return -ENOSPC;
    if (!t->name[0]) {
        do
            snprintf(t->name, sizeof(t->name), "%s_%llu", steno__toxic_type_name(t->type),
                     (unsigned long long)++p->auto_names);
        while (find_toxic(p, t->name, NULL));
    } else if (find_toxic(p, t->name, NULL)) {
        return -EEXIST;
    }
    struct toxic *copy = malloc(sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    *copy = *t;
    copy->next = NULL;
    struct toxic **tail = &p->toxics;
    while (*tail)
        tail = &(*tail)->next;
    *tail = copy;
    p->ntoxics++;
    int64_t now = steno__loop_now();
    for (struct conn *c = p->conns; c; c = c->next) {
        attach_toxic(c, copy, now);
        mark_dirty(p, c);
    }
    return 0;
}

static void unlink_toxic(struct proxy *p, struct toxic **link)
{
    struct toxic *t = *link;
    for (struct conn *c = p->conns; c; c = c->next) {
        detach_toxic(c, t);
        mark_dirty(p, c); /* e.g. a lifted blackhole lets queued data go */
    }
    *link = t->next;
    p->ntoxics--;
    free(t);
}

int steno__proxy_remove_toxic(struct proxy *p, const char *name)
{
    struct toxic **link;
    if (!find_toxic(p, name, &link))
        return -ENOENT;
    unlink_toxic(p, link);
    return 0;
}

size_t steno__proxy_clear_toxics(struct proxy *p)
{
    size_t n = 0;
    while (p->toxics) {
        unlink_toxic(p, &p->toxics);
        n++;
    }
    return n;
}

int steno__proxy_reset_connection(struct proxy *p, uint64_t id)
{
    for (struct conn *c = p->conns; c; c = c->next) {
        if (c->id == id) {
            conn_reset(p, c, "reset by control");
            return 0;
        }
    }
    return -ENOENT;
}

size_t steno__proxy_reset_all(struct proxy *p)
{
    size_t n = 0;
    while (p->conns) {
        conn_reset(p, p->conns, "reset by control (all)");
        n++;
    }
    return n;
}

cJSON *steno__proxy_toxics_json(const struct proxy *p)
{
    cJSON *arr = cJSON_CreateArray();
    for (const struct toxic *t = p->toxics; arr && t; t = t->next)
        cJSON_AddItemToArray(arr, steno__toxic_to_json(t));
    return arr;
}

static cJSON *delays_json(const struct pipe *pp)
{
    cJSON *arr = cJSON_CreateArray();
    for (unsigned i = 0; arr && i < pp->ndelays; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)pp->delays_ms[i]));
    return arr;
}

static cJSON *conn_json(const struct conn *c, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)c->id);
    cJSON_AddStringToObject(o, "client", c->client);
    cJSON_AddStringToObject(o, "state", state_names[c->st]);
    cJSON_AddNumberToObject(o, "age_ms", (double)((now - c->accepted_ns) / NS_PER_MS));
    cJSON_AddNumberToObject(o, "bytes_up", (double)c->pp[PIPE_UP].bytes_out);
    cJSON_AddNumberToObject(o, "bytes_down", (double)c->pp[PIPE_DOWN].bytes_out);
    cJSON_AddNumberToObject(o, "received_up", (double)c->pp[PIPE_UP].bytes_in);
    cJSON_AddNumberToObject(o, "received_down", (double)c->pp[PIPE_DOWN].bytes_in);
    cJSON_AddNumberToObject(o, "queued_up", (double)c->pp[PIPE_UP].queued);
    cJSON_AddNumberToObject(o, "queued_down", (double)c->pp[PIPE_DOWN].queued);
    cJSON *names = cJSON_AddArrayToObject(o, "toxics");
    for (size_t k = 0; names && k < c->natt; k++)
        cJSON_AddItemToArray(names, cJSON_CreateString(c->att[k].t->name));
    cJSON *d = cJSON_AddObjectToObject(o, "delays_ms");
    if (d) {
        cJSON_AddItemToObject(d, "upstream", delays_json(&c->pp[PIPE_UP]));
        cJSON_AddItemToObject(d, "downstream", delays_json(&c->pp[PIPE_DOWN]));
    }
    return o;
}

cJSON *steno__proxy_connections_json(const struct proxy *p)
{
    int64_t now = steno__loop_now();
    cJSON *arr = cJSON_CreateArray();
    /* The live list is newest first; list oldest first. */
    const struct conn *last = p->conns;
    while (last && last->next)
        last = last->next;
    for (const struct conn *c = last; arr && c; c = c->prev)
        cJSON_AddItemToArray(arr, conn_json(c, now));
    return arr;
}

cJSON *steno__proxy_connection_json(const struct proxy *p, uint64_t id)
{
    for (const struct conn *c = p->conns; c; c = c->next)
        if (c->id == id)
            return conn_json(c, steno__loop_now());
    return NULL;
}

cJSON *steno__proxy_health_json(const struct proxy *p)
{
    char seed[24];
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)p->seed);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "listen", p->listen_name);
    cJSON_AddStringToObject(o, "upstream", p->upstream_name);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "connections", (double)p->nconns);
    cJSON_AddNumberToObject(o, "accepted", (double)p->accepted);
    cJSON_AddNumberToObject(o, "toxics", (double)p->ntoxics);
    cJSON_AddNumberToObject(o, "uptime_ms",
                            (double)((steno__loop_now() - p->started_ns) / NS_PER_MS));
    return o;
}
