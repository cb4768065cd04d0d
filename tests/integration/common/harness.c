/* harness: what every C integration test needs — failing, logging, witness processes and their
 * HTTP control APIs; includes the rest of the shared harness. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- failing, logging, time ---- */

#define MAX_WITNESSES 16

static char g_name[64] = "test";
static uint64_t g_t0;
/* pids, not h_server pointers: a witness may be started from a helper's local variable */
static pid_t g_pids[MAX_WITNESSES];
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double h_log_time(uint64_t t)
{
    return (double)((int64_t)t - (int64_t)g_t0) / 1000.0;
}

double h_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void h_deadline_ts(struct timespec *ts, uint32_t timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&g_log_mu);
    uint64_t t = h_now_ms() - g_t0;
    fprintf(stdout, "[%s %3" PRIu64 ".%03" PRIu64 "] %s", g_name, t / 1000, t % 1000, prefix);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g_log_mu);
}

void h_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void h_leak_log(void *user, steno_log_level level, const char *line)
{
    h_leak_watch *w = user;
    atomic_fetch_add(&w->lines, 1);
    if (strstr(line, w->secret)) {
        atomic_fetch_add(&w->leaks, 1);
        fprintf(stderr, "LEAK: %s\n", line);
    } else if (level <= STENO_LOG_WARN) {
        fprintf(stderr, "sdk: %s\n", line);
    }
}

void h_sdk_log(void *user, steno_log_level level, const char *line)
{
    FILE *f = user ? (FILE *)user : stderr; /* user: a log file of the caller's */
    static const char *names[] = {"?", "error", "warn", "info", "debug"};
    pthread_mutex_lock(&g_log_mu);
    uint64_t t = h_now_ms() - g_t0;
    fprintf(f, "[%s %3" PRIu64 ".%03" PRIu64 " steno %s] %s\n", g_name, t / 1000, t % 1000,
            names[level >= 1 && level <= 4 ? level : 0], line);
    pthread_mutex_unlock(&g_log_mu);
}

void h_fail(const char *file, int line, const char *fmt, ...)
{
    char where[256];
    snprintf(where, sizeof where, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vlog(where, fmt, ap);
    va_end(ap);
    exit(1);
}

void h_fail_check(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char where[1024];
    snprintf(where, sizeof where, "FAIL %s:%d: check failed: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vlog(where, fmt, ap);
    va_end(ap);
    exit(1);
}

/* SIGTERM, then waits for the exit (SIGKILL after 5 s); logs an unclean end. */
static void stop_pid(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    uint64_t deadline = h_now_ms() + 5000u;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && h_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL); /* polling a child's exit: there is no event to await */
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        h_log("pid %d did not stop on SIGTERM: killed", (int)pid);
    } else if (r > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        h_log("warning: pid %d ended with status 0x%x", (int)pid, st);
    }
    for (size_t i = 0; i < MAX_WITNESSES; i++)
        if (g_pids[i] == pid)
            g_pids[i] = 0;
}

static void at_exit(void)
{
    for (size_t i = 0; i < MAX_WITNESSES; i++)
        if (g_pids[i] > 0)
            stop_pid(g_pids[i]);
}

static void on_signal(int sig)
{
    /* async-signal-safe only: the witnesses must not outlive a test killed by its timeout */
    for (size_t i = 0; i < MAX_WITNESSES; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The exit and signal handlers, once: by h_init, or by the first witness started. */
static void install_handlers(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    if (!g_t0)
        g_t0 = h_now_ms();
    atexit(at_exit);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

void h_init(const char *test_name)
{
    snprintf(g_name, sizeof g_name, "%s", test_name);
    g_t0 = h_now_ms();
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_handlers();
}

int h_pass(void)
{
    at_exit();
    h_log("PASS");
    return 0;
}

const char *h_env_required(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        h_log("environment variable %s is not set (run through meson test)", name);
        exit(1);
    }
    return v;
}

uint32_t h_slow(void)
{
    const char *v = getenv("RES_SLOW");
    long n = v ? strtol(v, NULL, 10) : 1;
    return n >= 1 && n <= 100 ? (uint32_t)n : 1;
}

/* ---- witnesses ---- */

static void spawn(h_server *p, char *const argv[])
{
    install_handlers();
    size_t slot = 0;
    while (slot < MAX_WITNESSES && g_pids[slot] > 0)
        slot++;
    H_CHECK(slot < MAX_WITNESSES, "more than %d witnesses at once", MAX_WITNESSES);
    int pfd[2];
    H_CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    H_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* the witness dies with us, even when we are killed by a timeout */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], STDOUT_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    p->pid = pid;
    p->out_fd = pfd[0];
    g_pids[slot] = pid;

    /* the first line says the ports; wait for it with a deadline */
    size_t len = 0;
    uint64_t deadline = h_now_ms() + 60000u;
    for (;;) {
        char *nl = memchr(p->line, '\n', len);
        if (nl) {
            *nl = '\0';
            break;
        }
        uint64_t now = h_now_ms();
        H_CHECK(now < deadline, "%s printed no first line within 60 s", argv[0]);
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        int n = poll(&pf, 1, (int)(deadline - now));
        if (n <= 0)
            continue;
        ssize_t r = read(p->out_fd, p->line + len, sizeof p->line - 1 - len);
        H_CHECK(r > 0, "%s exited before printing its ports", argv[0]);
        len += (size_t)r;
        p->line[len] = '\0';
        H_CHECK(len < sizeof p->line - 1, "first line too long");
    }
}

/* The ports from the first line, the data port first:
 *   "steno-server listening on HOST:PORT control 127.0.0.1:CPORT"
 *   "listening HOST:PORT upstream HOST:PORT control HOST:CPORT seed N" (steno-chaos) */
static void take_ports(h_server *p, const char *who)
{
    const char *data = strstr(p->line, "listening ");
    const char *ctl = strstr(p->line, " control ");
    const char *colon = data ? strchr(data, ':') : NULL;
    const char *ccolon = ctl ? strchr(ctl + 9, ':') : NULL;
    H_CHECK(colon && ccolon, "unexpected first line from %s: %s", who, p->line);
    p->port = atoi(colon + 1);
    p->control_port = atoi(ccolon + 1);
    H_CHECK(p->port > 0 && p->control_port > 0, "bad ports in: %s", p->line);
    snprintf(p->url, sizeof p->url, "ws://127.0.0.1:%d/v1/listen", p->port);
    h_log("%s pid %d: %s", who, (int)p->pid, p->line);
}

void h_server_start(h_server *p, const char *const *extra)
{
    memset(p, 0, sizeof *p);
    char *argv[48];
    size_t n = 0;
    argv[n++] = (char *)h_env_required("STENO_SERVER");
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--control-port";
    argv[n++] = "0";
    for (size_t i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    spawn(p, argv);
    take_ports(p, "steno-server");
}

void h_chaos_start(h_server *p, int upstream_port)
{
    memset(p, 0, sizeof *p);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", upstream_port);
    char *argv[] = {(char *)h_env_required("STENO_CHAOS"),
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    up,
                    "--control",
                    "127.0.0.1:0",
                    "--seed",
                    "1",
                    NULL};
    spawn(p, argv);
    take_ports(p, "steno-chaos");
}

void h_server_stop(h_server *p)
{
    if (p->pid <= 0)
        return;
    stop_pid(p->pid);
    p->pid = 0;
    if (p->out_fd > 0)
        close(p->out_fd);
    p->out_fd = -1;
}

/* ---- HTTP ---- */

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        H_CHECK(w > 0, "control API send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Decodes a chunked body in place; returns its length. */
static size_t dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        if (!crlf || sz == 0)
            break;
        in = (size_t)(crlf + 2 - b);
        if (in + sz > n)
            sz = n - in;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = '\0';
    return out;
}

int h_http_raw(int port, const char *method, const char *path, const char *body, char **out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    H_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    H_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to control port %d: %s",
            port, strerror(errno));
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, port, blen);
    H_CHECK(hl > 0 && (size_t)hl < sizeof head, "request line too long: %s %s", method, path);
    write_all(fd, head, (size_t)hl);
    if (blen)
        write_all(fd, body, blen);

    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    H_CHECK(buf, "out of memory");
    long content_length = -1;
    char *hdr_end = NULL;
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            H_CHECK(buf, "out of memory");
            hdr_end = NULL; /* the buffer moved: find the header end again */
        }
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        H_CHECK(r >= 0, "control API %s %s on port %d: %s", method, path, port, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n")) != NULL) {
            content_length = -1;
            for (char *l = strstr(buf, "\r\n"); l && l < hdr_end; l = strstr(l + 2, "\r\n"))
                if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
                    content_length = strtol(l + 17, NULL, 10);
        }
        if (hdr_end && content_length >= 0 &&
            len >= (size_t)(hdr_end + 4 - buf) + (size_t)content_length)
            break;
    }
    close(fd);
    buf[len] = '\0';
    hdr_end = strstr(buf, "\r\n\r\n");
    H_CHECK(hdr_end && strncmp(buf, "HTTP/1.", 7) == 0, "bad HTTP response to %s %s: %.200s",
            method, path, buf);
    int status = atoi(buf + 9);
    char *b = hdr_end + 4;
    size_t bl = len - (size_t)(b - buf);
    *hdr_end = '\0';
    if (strcasestr(buf, "transfer-encoding: chunked"))
        bl = dechunk(b, bl);
    else if (content_length >= 0 && (size_t)content_length < bl)
        bl = (size_t)content_length;
    b[bl] = '\0';
    memmove(buf, b, bl + 1);
    *out = buf;
    return status;
}

int h_control(const h_server *p, const char *method, const char *path, const char *body, char *out,
              size_t outlen)
{
    char *b = NULL;
    int status = h_http_raw(p->control_port, method, path, body, &b);
    if (out && outlen)
        snprintf(out, outlen, "%s", b);
    free(b);
    return status;
}

cJSON *h_http(int port, const char *method, const char *path, const char *body, int *status)
{
    char *b = NULL;
    *status = h_http_raw(port, method, path, body, &b);
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

cJSON *h_http_ok(int port, const char *method, const char *path, const char *body)
{
    int st = 0;
    cJSON *j = h_http(port, method, path, body, &st);
    if (st < 200 || st > 299 || !j) {
        char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
        h_fail(__FILE__, __LINE__, "%s %s (%s) on port %d answered %d %s", method, path,
               body ? body : "", port, st, txt ? txt : "(no JSON)");
    }
    return j;
}

/* POSTs the printf-formatted JSON body (also left in body) to path; the answer must be 2xx
 * JSON. */
static cJSON *post_fmt(int port, const char *path, char *body, size_t cap, const char *fmt,
                       va_list ap)
{
    vsnprintf(body, cap, fmt, ap);
    return h_http_ok(port, "POST", path, body);
}

void h_fault(const h_server *srv, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    cJSON *j = post_fmt(srv->control_port, "/faults", body, sizeof body, fmt, ap);
    va_end(ap);
    H_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")), "fault %s not accepted", body);
    cJSON_Delete(j);
}

void h_toxic_add(const h_server *chaos, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    cJSON_Delete(post_fmt(chaos->control_port, "/toxics", body, sizeof body, fmt, ap));
    va_end(ap);
}

void h_toxic_remove(const h_server *chaos, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/toxics/%s", name);
    cJSON_Delete(h_http_ok(chaos->control_port, "DELETE", path, NULL));
}

void h_chaos_reset_all(const h_server *chaos)
{
    cJSON_Delete(h_http_ok(chaos->control_port, "POST", "/reset-all", NULL));
}

int h_chaos_open_conn(const h_server *chaos)
{
    cJSON *j = h_http_ok(chaos->control_port, "GET", "/connections", NULL);
    int id = -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (strcmp(h_jstr(c, "state"), "open") == 0 && h_jnum(c, "id", -1) > id)
            id = (int)h_jnum(c, "id", -1);
    }
    cJSON_Delete(j);
    return id;
}

cJSON *h_server_records(const h_server *srv)
{
    cJSON *j = h_http_ok(srv->control_port, "GET", "/connections", NULL);
    H_CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "connections")),
            "GET /connections: no array");
    return j;
}

int h_server_record_count(const h_server *srv)
{
    cJSON *j = h_server_records(srv);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "connections"));
    cJSON_Delete(j);
    return n;
}

bool h_server_wait_idle(const h_server *srv, uint32_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        cJSON *j = h_http_ok(srv->control_port, "GET", "/connections?active=1", NULL);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "connections");
        const cJSON *first = cJSON_GetArrayItem(arr, 0);
        int id = first ? (int)h_jnum(first, "id", -1) : -1;
        cJSON_Delete(j);
        if (id < 0)
            return true;
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        /* the server's long poll answers when that connection ends */
        char path[96];
        snprintf(path, sizeof path, "/connections/%d?wait_closed_ms=%" PRIu64, id, deadline - now);
        int st;
        cJSON_Delete(h_http(srv->control_port, "GET", path, NULL, &st));
    }
}

const cJSON *h_record_by_rid(const cJSON *records, const char *rid)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(records, "connections");
    const cJSON *r;
    if (!rid || !*rid)
        return NULL;
    cJSON_ArrayForEach(r, arr)
    {
        if (strcmp(h_jstr(r, "request_id"), rid) == 0)
            return r;
    }
    return NULL;
}

double h_jnum(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

const char *h_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}
