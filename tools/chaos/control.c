/* control: the HTTP/1.1 control API (toxics, connections, health) on its own port. */
#include "control.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_HEAD 16384
#define MAX_BODY 65536
#define MAX_CLIENTS 64
#define IDLE_NS (10 * NS_PER_S)

struct client {
    struct watch w;
    struct control *ctl;
    struct client *prev, *next;
    int fd;
    char *in;
    size_t inlen;
    char *out;
    size_t outlen, outoff;
    bool replied, sent_continue, writable;
    int64_t deadline;
};

struct control {
    struct loop *loop;
    struct proxy *proxy;
    struct loop_hook hook;
    struct watch lw;
    int lfd;
    struct client *clients;
    struct client *dropped; /* freed at the next tick */
    size_t nclients;
    char name[64];
};

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- routing ---- */

static char *json_text(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t)
        return s;
    t[n] = '\n';
    t[n + 1] = '\0';
    return t;
}

static void reply(struct control_reply *r, int status, cJSON *o)
{
    r->status = status;
    r->body = json_text(o);
    if (!r->body)
        r->status = 500;
}

static void reply_error(struct control_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct control_reply *r, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    reply(r, status, o);
}

static void reply_count(struct control_reply *r, const char *key, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddNumberToObject(o, key, (double)n);
    reply(r, 200, o);
}

/* A connection id: decimal digits, no sign, not zero. */
static bool parse_id(const char *s, size_t len, uint64_t *id)
{
    if (len == 0 || len > 15)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *id = v;
    return v != 0;
}

static bool method_is(const char *method, const char *allowed, struct control_reply *r)
{
    if (!strcmp(method, allowed))
        return true;
    r->allow = allowed;
    reply_error(r, 405, "method %s not allowed here; use %s", method, allowed);
    return false;
}

static void add_toxic(struct proxy *p, const char *body, size_t body_len, struct control_reply *r)
{
    char err[200];
    cJSON *in = cJSON_ParseWithLength(body, body_len);
    if (!in) {
        reply_error(r, 400, "body is not valid JSON");
        return;
    }
    struct toxic t;
    int rc = steno__toxic_from_json(in, &t, err, sizeof(err));
    cJSON_Delete(in);
    if (rc) {
        reply_error(r, 400, "%s", err);
        return;
    }
    rc = steno__proxy_add_toxic(p, &t);
    if (rc == -EEXIST)
        reply_error(r, 409, "a toxic named '%s' exists", t.name);
    else if (rc == -ENOSPC)
        reply_error(r, 409, "too many toxics");
    else if (rc)
        reply_error(r, 500, "%s", strerror(-rc));
    else
        reply(r, 201, steno__toxic_to_json(&t));
}

void steno__control_route(struct proxy *p, const char *method, const char *path, const char *body,
                          size_t body_len, struct control_reply *r)
{
    r->status = 500;
    r->body = NULL;
    r->allow = NULL;
    uint64_t id;

    if (!strcmp(path, "/health")) {
        if (method_is(method, "GET", r))
            reply(r, 200, steno__proxy_health_json(p));
    } else if (!strcmp(path, "/connections")) {
        if (method_is(method, "GET", r))
            reply(r, 200, steno__proxy_connections_json(p));
    } else if (!strncmp(path, "/connections/", 13)) {
        const char *rest = path + 13;
        const char *slash = strchr(rest, '/');
        size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
        if (slash && strcmp(slash, "/reset")) {
            reply_error(r, 404, "no such endpoint: %.100s", path);
        } else if (!parse_id(rest, idlen, &id)) {
            reply_error(r, 400, "connection id must be a positive integer");
        } else if (slash) {
            if (!method_is(method, "POST", r))
                return;
            if (steno__proxy_reset_connection(p, id))
                reply_error(r, 404, "no live connection %llu", (unsigned long long)id);
            else
                reply_count(r, "reset", 1);
        } else if (method_is(method, "GET", r)) {
            cJSON *c = steno__proxy_connection_json(p, id);
            if (c)
                reply(r, 200, c);
            else
                reply_error(r, 404, "no live connection %llu", (unsigned long long)id);
        }
    } else if (!strcmp(path, "/reset-all")) {
        if (method_is(method, "POST", r))
            reply_count(r, "reset", steno__proxy_reset_all(p));
    } else if (!strcmp(path, "/toxics")) {
        if (!strcmp(method, "GET"))
            reply(r, 200, steno__proxy_toxics_json(p));
        else if (!strcmp(method, "POST"))
            add_toxic(p, body, body_len, r);
        else if (!strcmp(method, "DELETE"))
            reply_count(r, "removed", steno__proxy_clear_toxics(p));
        else {
            r->allow = "GET, POST, DELETE";
            reply_error(r, 405, "method %s not allowed here; use GET, POST or DELETE", method);
        }
    } else if (!strncmp(path, "/toxics/", 8)) {
        const char *name = path + 8;
        if (!method_is(method, "DELETE", r))
            return;
        if (steno__proxy_remove_toxic(p, name))
            reply_error(r, 404, "no toxic named '%.64s'", name);
        else
            reply_count(r, "removed", 1);
    } else {
        reply_error(r, 404,
                    "no such endpoint: %.100s (try /health, /connections, /toxics, /reset-all)",
                    path);
    }
}

/* ---- HTTP over the socket ---- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Internal Server Error";
    }
}

/*
 * Closes the socket now but keeps the memory until the loop's batch of events
 * is over: another event in the same batch may still point at this client.
 */
static void client_drop(struct client *cl)
{
    struct control *ctl = cl->ctl;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        ctl->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    ctl->nclients--;
    close(cl->fd);
    cl->fd = -1;
    cl->next = ctl->dropped;
    ctl->dropped = cl;
}

static void free_dropped(struct control *ctl)
{
    while (ctl->dropped) {
        struct client *cl = ctl->dropped;
        ctl->dropped = cl->next;
        free(cl->in);
        free(cl->out);
        free(cl);
    }
}

static void set_reply(struct client *cl, struct control_reply *r)
{
    const char *body = r->body ? r->body : "{\"error\":\"out of memory\"}\n";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n%s%s%sConnection: close\r\n\r\n",
                     r->status, reason(r->status), strlen(body), r->allow ? "Allow: " : "",
                     r->allow ? r->allow : "", r->allow ? "\r\n" : "");
    size_t blen = strlen(body);
    free(cl->out);
    cl->out = malloc((size_t)n + blen);
    if (cl->out) {
        memcpy(cl->out, head, (size_t)n);
        memcpy(cl->out + n, body, blen);
        cl->outlen = (size_t)n + blen;
    } else {
        cl->outlen = 0;
    }
    cl->outoff = 0;
    cl->replied = true;
    free(r->body);
}

static void set_error(struct client *cl, int status, const char *msg)
{
    struct control_reply r = {.status = status};
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    r.body = json_text(o);
    set_reply(cl, &r);
}

/* Case-insensitive header lookup inside the head (which ends with an empty line). */
static const char *header(const char *head, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (!strncasecmp(line, name, nlen) && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *end = strstr(v, "\r\n");
            *len = (size_t)(end - v);
            while (*len && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
                (*len)--;
            return v;
        }
    }
    return NULL;
}

/* Returns true once a reply is ready, false to wait for more bytes. */
static bool handle_request(struct client *cl)
{
    char *end = memmem(cl->in, cl->inlen, "\r\n\r\n", 4);
    if (!end || end - cl->in > MAX_HEAD) {
        if (end || cl->inlen >= MAX_HEAD) {
            set_error(cl, 431, "request head too large");
            return true;
        }
        return false;
    }
    size_t head_len = (size_t)(end - cl->in) + 4;
    end[2] = '\0'; /* the head is now a string ending in one CRLF */
    if (memchr(cl->in, '\0', head_len - 2)) {
        set_error(cl, 400, "NUL byte in request head");
        return true;
    }

    char method[16], target[1024], version[16];
    const char *eol = strstr(cl->in, "\r\n");
    size_t line_len = (size_t)(eol - cl->in);
    char line[1100];
    if (line_len >= sizeof(line)) {
        set_error(cl, 400, "request line too long");
        return true;
    }
    memcpy(line, cl->in, line_len);
    line[line_len] = '\0';
    char extra;
    if (sscanf(line, "%15[A-Z] %1023[^ ] %15s %c", method, target, version, &extra) != 3 ||
        strncmp(version, "HTTP/1.", 7) || target[0] != '/') {
        set_error(cl, 400, "malformed request line; expected: METHOD /path HTTP/1.1");
        return true;
    }
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';

    size_t vlen, body_len = 0;
    if (header(cl->in, "Transfer-Encoding", &vlen)) {
        set_error(cl, 400, "chunked bodies are not supported; send Content-Length");
        return true;
    }
    const char *cl_hdr = header(cl->in, "Content-Length", &vlen);
    if (cl_hdr) {
        char num[24];
        char *numend;
        if (vlen == 0 || vlen >= sizeof(num)) {
            set_error(cl, 400, "bad Content-Length");
            return true;
        }
        memcpy(num, cl_hdr, vlen);
        num[vlen] = '\0';
        errno = 0;
        unsigned long long v = strtoull(num, &numend, 10);
        if (*numend || errno || !isdigit((unsigned char)num[0])) {
            set_error(cl, 400, "bad Content-Length");
            return true;
        }
        if (v > MAX_BODY) {
            set_error(cl, 413, "body too large");
            return true;
        }
        body_len = (size_t)v;
    }
    if (cl->inlen < head_len + body_len) {
        const char *expect = header(cl->in, "Expect", &vlen);
        end[2] = '\r'; /* restore: the head is parsed again when the body arrives */
        if (expect && !cl->sent_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            cl->sent_continue = true;
            if (send(cl->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0) {
                /* The client will send the body anyway after its own timeout. */
            }
        }
        return false;
    }

    struct control_reply r;
    steno__control_route(cl->ctl->proxy, method, target, cl->in + head_len, body_len, &r);
    set_reply(cl, &r);
    return true;
}

/* Returns false when the client is gone. */
static bool client_flush(struct client *cl)
{
    while (cl->outoff < cl->outlen) {
        ssize_t n = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                cl->writable = false;
                return true;
            }
            return false;
        }
        cl->outoff += (size_t)n;
    }
    return false; /* all sent: the reply says Connection: close */
}

static void client_event(struct watch *w, uint32_t ev)
{
    struct client *cl = container_of(w, struct client, w);
    if (cl->fd < 0)
        return;
    if (ev & EPOLLOUT)
        cl->writable = true;
    if (!cl->replied && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        for (;;) {
            if (cl->inlen == MAX_HEAD + MAX_BODY) {
                set_error(cl, 413, "request too large");
                break;
            }
            if (!cl->in && !(cl->in = malloc(MAX_HEAD + MAX_BODY + 1))) {
                client_drop(cl);
                return;
            }
            ssize_t n = recv(cl->fd, cl->in + cl->inlen, MAX_HEAD + MAX_BODY - cl->inlen, 0);
            if (n > 0) {
                cl->inlen += (size_t)n;
                cl->in[cl->inlen] = '\0';
                if (handle_request(cl))
                    break;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            /* EOF or error before a whole request: nothing to answer. */
            client_drop(cl);
            return;
        }
    }
    if (cl->replied && cl->writable && !client_flush(cl))
        client_drop(cl);
}

static void listen_event(struct watch *w, uint32_t ev)
{
    struct control *ctl = container_of(w, struct control, lw);
    for (;;) {
        int fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        /* Control is for a test harness, not for crowds: the oldest idle client makes room. */
        if (ctl->nclients >= MAX_CLIENTS) {
            struct client *old = ctl->clients;
            while (old->next)
                old = old->next;
            client_drop(old);
        }
        struct client *cl = calloc(1, sizeof(*cl));
        if (!cl) {
            close(fd);
            continue;
        }
        cl->w.fn = client_event;
        cl->ctl = ctl;
        cl->fd = fd;
        cl->deadline = steno__loop_now() + IDLE_NS;
        cl->next = ctl->clients;
        if (ctl->clients)
            ctl->clients->prev = cl;
        ctl->clients = cl;
        ctl->nclients++;
        if (steno__loop_add(ctl->loop, fd, &cl->w) < 0)
            client_drop(cl);
    }
}

static int64_t control_tick(struct loop_hook *h, int64_t now)
{
    struct control *ctl = container_of(h, struct control, hook);
    int64_t deadline = NEVER;
    free_dropped(ctl);
    for (struct client *cl = ctl->clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->deadline <= now)
            client_drop(cl);
        else if (cl->deadline < deadline)
            deadline = cl->deadline;
    }
    return deadline;
}

struct control *steno__control_open(struct loop *l, struct proxy *p,
                                    const struct sockaddr_storage *addr, socklen_t len, char *err,
                                    size_t errlen)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    if (!ctl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctl->loop = l;
    ctl->proxy = p;
    ctl->lw.fn = listen_event;
    ctl->hook.tick = control_tick;
    int one = 1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    ctl->lfd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->lfd < 0 || setsockopt(ctl->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(ctl->lfd, (const struct sockaddr *)addr, len) < 0 || listen(ctl->lfd, 64) < 0 ||
        getsockname(ctl->lfd, (struct sockaddr *)&bound, &blen) < 0 ||
        steno__loop_add(l, ctl->lfd, &ctl->lw) < 0) {
        snprintf(err, errlen, "control listen: %s", strerror(errno));
        if (ctl->lfd >= 0)
            close(ctl->lfd);
        free(ctl);
        return NULL;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (bound.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&bound;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(ctl->name, sizeof(ctl->name), "%s:%u", host, ntohs(a->sin_port));
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&bound;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(ctl->name, sizeof(ctl->name), "[%s]:%u", host, ntohs(a->sin6_port));
    }
    steno__loop_add_hook(l, &ctl->hook);
    return ctl;
}

void steno__control_close(struct control *ctl)
{
    if (!ctl)
        return;
    while (ctl->clients)
        client_drop(ctl->clients);
    free_dropped(ctl);
    close(ctl->lfd);
    free(ctl);
}

const char *steno__control_name(const struct control *ctl)
{
    return ctl->name;
}
