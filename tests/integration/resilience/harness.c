/* harness: what every resilience test needs — witnesses, control APIs, audio, events, accounting.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sndfile.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- failing, logging, time ---- */

static char g_name[64] = "test";
static uint64_t g_t0;
static res_proc *g_procs[16];
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

uint64_t res_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double res_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&g_log_mu);
    uint64_t t = res_now_ms() - g_t0;
    fprintf(stdout, "[%s %3" PRIu64 ".%03" PRIu64 "] %s", g_name, t / 1000, t % 1000, prefix);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g_log_mu);
}

void res_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

static void kill_children(int sig)
{
    for (size_t i = 0; i < sizeof g_procs / sizeof g_procs[0]; i++)
        if (g_procs[i] && g_procs[i]->pid > 0)
            kill(g_procs[i]->pid, sig);
}

void res_fail(const char *file, int line, const char *fmt, ...)
{
    char where[256];
    snprintf(where, sizeof where, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vlog(where, fmt, ap);
    va_end(ap);
    exit(1);
}

static void at_exit(void)
{
    for (size_t i = 0; i < sizeof g_procs / sizeof g_procs[0]; i++)
        if (g_procs[i])
            res_proc_stop(g_procs[i]);
}

static void on_signal(int sig)
{
    /* async-signal-safe only: the witnesses must not outlive a test killed by its timeout */
    kill_children(SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

void res_init(const char *test_name)
{
    snprintf(g_name, sizeof g_name, "%s", test_name);
    g_t0 = res_now_ms();
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(at_exit);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

const char *res_env_required(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        res_log("environment variable %s is not set (run through meson test)", name);
        exit(1);
    }
    return v;
}

uint32_t res_slow(void)
{
    const char *v = getenv("RES_SLOW");
    long n = v ? strtol(v, NULL, 10) : 1;
    return n >= 1 && n <= 100 ? (uint32_t)n : 1;
}

/* ---- witnesses ---- */

static void register_proc(res_proc *p)
{
    for (size_t i = 0; i < sizeof g_procs / sizeof g_procs[0]; i++) {
        if (!g_procs[i] || g_procs[i] == p) {
            g_procs[i] = p;
            return;
        }
    }
}

static void spawn(res_proc *p, char *const argv[])
{
    int pfd[2];
    RES_CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    RES_CHECK(pid >= 0, "fork: %s", strerror(errno));
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
    register_proc(p);

    /* the first line says the ports; wait for it with a deadline */
    size_t len = 0;
    uint64_t deadline = res_now_ms() + 60000u;
    for (;;) {
        char *nl = memchr(p->line, '\n', len);
        if (nl) {
            *nl = '\0';
            break;
        }
        uint64_t now = res_now_ms();
        RES_CHECK(now < deadline, "%s printed no first line within 60 s", argv[0]);
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        int n = poll(&pf, 1, (int)(deadline - now));
        if (n <= 0)
            continue;
        ssize_t r = read(p->out_fd, p->line + len, sizeof p->line - 1 - len);
        RES_CHECK(r > 0, "%s exited before printing its ports", argv[0]);
        len += (size_t)r;
        p->line[len] = '\0';
        RES_CHECK(len < sizeof p->line - 1, "first line too long");
    }
}

void res_server_start(res_proc *p, const char *const *extra)
{
    memset(p, 0, sizeof *p);
    char *argv[48];
    size_t n = 0;
    argv[n++] = (char *)res_env_required("STENO_SERVER");
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--control-port";
    argv[n++] = "0";
    for (size_t i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    spawn(p, argv);
    /* "steno-server listening on HOST:PORT control 127.0.0.1:CPORT" */
    const char *on = strstr(p->line, " on ");
    const char *ctl = strstr(p->line, " control ");
    RES_CHECK(on && ctl, "unexpected first line from steno-server: %s", p->line);
    const char *colon = strchr(on + 4, ':');
    const char *ccolon = strrchr(ctl, ':');
    RES_CHECK(colon && ccolon, "unexpected first line from steno-server: %s", p->line);
    p->port = atoi(colon + 1);
    p->control_port = atoi(ccolon + 1);
    RES_CHECK(p->port > 0 && p->control_port > 0, "bad ports in: %s", p->line);
    res_log("steno-server pid %d: %s", (int)p->pid, p->line);
}

void res_chaos_start(res_proc *p, int upstream_port)
{
    memset(p, 0, sizeof *p);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", upstream_port);
    char *argv[] = {(char *)res_env_required("STENO_CHAOS"),
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
    /* "listening HOST:PORT upstream HOST:PORT control HOST:PORT seed N" */
    const char *ls = strstr(p->line, "listening ");
    const char *ctl = strstr(p->line, " control ");
    RES_CHECK(ls && ctl, "unexpected first line from steno-chaos: %s", p->line);
    const char *colon = strchr(ls, ':');
    const char *ccolon = strchr(ctl + 9, ':');
    RES_CHECK(colon && ccolon, "unexpected first line from steno-chaos: %s", p->line);
    p->port = atoi(colon + 1);
    p->control_port = atoi(ccolon + 1);
    RES_CHECK(p->port > 0 && p->control_port > 0, "bad ports in: %s", p->line);
    res_log("steno-chaos pid %d: %s", (int)p->pid, p->line);
}

void res_proc_stop(res_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    int st = 0;
    uint64_t deadline = res_now_ms() + 5000u;
    pid_t r;
    while ((r = waitpid(p->pid, &st, WNOHANG)) == 0 && res_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL); /* polling a child's exit: there is no event to await */
    }
    if (r == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        res_log("pid %d did not stop on SIGTERM: killed", (int)p->pid);
    } else if (r > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        res_log("warning: pid %d ended with status 0x%x", (int)p->pid, st);
    }
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
        RES_CHECK(w > 0, "control API send: %s", strerror(errno));
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

cJSON *res_http(int port, const char *method, const char *path, const char *body, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    RES_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    RES_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to control port %d: %s",
              port, strerror(errno));
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, port, blen);
    write_all(fd, head, (size_t)hl);
    if (blen)
        write_all(fd, body, blen);

    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    RES_CHECK(buf, "out of memory");
    long content_length = -1;
    char *hdr_end = NULL;
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            RES_CHECK(buf, "out of memory");
        }
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        RES_CHECK(r >= 0, "control API %s %s on port %d: %s", method, path, port, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n")) != NULL) {
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
    RES_CHECK(hdr_end && strncmp(buf, "HTTP/1.", 7) == 0, "bad HTTP response to %s %s: %.200s",
              method, path, buf);
    *status = atoi(buf + 9);
    char *b = hdr_end + 4;
    size_t bl = len - (size_t)(b - buf);
    *hdr_end = '\0';
    if (strcasestr(buf, "transfer-encoding: chunked"))
        bl = dechunk(b, bl);
    else if (content_length >= 0 && (size_t)content_length < bl)
        bl = (size_t)content_length;
    b[bl] = '\0';
    cJSON *j = cJSON_Parse(b);
    free(buf);
    return j;
}

cJSON *res_http_ok(int port, const char *method, const char *path, const char *body)
{
    int st = 0;
    cJSON *j = res_http(port, method, path, body, &st);
    if (st < 200 || st > 299 || !j) {
        char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
        res_fail(__FILE__, __LINE__, "%s %s (%s) on port %d answered %d %s", method, path,
                 body ? body : "", port, st, txt ? txt : "(no JSON)");
    }
    return j;
}

void res_fault(const res_proc *srv, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    cJSON *j = res_http_ok(srv->control_port, "POST", "/faults", body);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    RES_CHECK(cJSON_IsTrue(ok), "fault %s not accepted", body);
    cJSON_Delete(j);
}

void res_toxic_add(const res_proc *chaos, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    cJSON_Delete(res_http_ok(chaos->control_port, "POST", "/toxics", body));
}

void res_toxic_remove(const res_proc *chaos, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/toxics/%s", name);
    cJSON_Delete(res_http_ok(chaos->control_port, "DELETE", path, NULL));
}

int res_chaos_open_conn(const res_proc *chaos)
{
    cJSON *j = res_http_ok(chaos->control_port, "GET", "/connections", NULL);
    int id = -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (strcmp(res_jstr(c, "state"), "open") == 0 && res_jnum(c, "id", -1) > id)
            id = (int)res_jnum(c, "id", -1);
    }
    cJSON_Delete(j);
    return id;
}

cJSON *res_server_records(const res_proc *srv)
{
    cJSON *j = res_http_ok(srv->control_port, "GET", "/connections", NULL);
    RES_CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "connections")),
              "GET /connections: no array");
    return j;
}

bool res_server_wait_idle(const res_proc *srv, uint32_t timeout_ms)
{
    uint64_t deadline = res_now_ms() + timeout_ms;
    for (;;) {
        cJSON *j = res_http_ok(srv->control_port, "GET", "/connections?active=1", NULL);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "connections");
        const cJSON *first = cJSON_GetArrayItem(arr, 0);
        int id = first ? (int)res_jnum(first, "id", -1) : -1;
        cJSON_Delete(j);
        if (id < 0)
            return true;
        uint64_t now = res_now_ms();
        if (now >= deadline)
            return false;
        /* the server's long poll answers when that connection ends */
        char path[96];
        snprintf(path, sizeof path, "/connections/%d?wait_closed_ms=%" PRIu64, id, deadline - now);
        int st;
        cJSON_Delete(res_http(srv->control_port, "GET", path, NULL, &st));
    }
}

const cJSON *res_record_by_rid(const cJSON *records, const char *rid)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(records, "connections");
    const cJSON *r;
    if (!rid || !*rid)
        return NULL;
    cJSON_ArrayForEach(r, arr)
    {
        if (strcmp(res_jstr(r, "request_id"), rid) == 0)
            return r;
    }
    return NULL;
}

double res_jnum(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

const char *res_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* ---- audio ---- */

uint64_t res_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int16_t res_pattern_sample(uint32_t seed, uint64_t i)
{
    /* splitmix64 of (seed, index): no two chunks alike, so a misplaced one cannot match */
    uint64_t z = i + ((uint64_t)seed << 40) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (int16_t)(z & 0x3fff) - 0x2000; /* moderate level, like speech */
}

void res_pattern(uint32_t seed, uint64_t first, size_t n, int16_t *out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = res_pattern_sample(seed, first + k);
}

void res_wav_load(const char *path, int16_t **pcm, size_t *frames, uint32_t *rate)
{
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    RES_CHECK(f, "cannot open %s: %s", path, sf_strerror(NULL));
    RES_CHECK(info.channels == 1, "%s: %d channels, want mono", path, info.channels);
    *pcm = malloc((size_t)info.frames * sizeof **pcm + 1);
    RES_CHECK(*pcm, "out of memory");
    sf_count_t n = sf_readf_short(f, *pcm, info.frames);
    sf_close(f);
    RES_CHECK(n == info.frames, "%s: short read", path);
    *frames = (size_t)n;
    *rate = (uint32_t)info.samplerate;
}

/* ---- producer ---- */

static void *producer_main(void *arg)
{
    res_producer *p = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t off = 0;
    while (off < p->frames && !atomic_load(&p->stop)) {
        size_t n = p->frames - off < p->piece_frames ? p->frames - off : p->piece_frames;
        if (p->speed > 0) {
            /* like a capture callback: the piece is handed over once it "was recorded" */
            double due = (double)(off + n) / ((double)p->rate * p->speed);
            struct timespec ts = t0;
            ts.tv_sec += (time_t)due;
            ts.tv_nsec += (long)((due - floor(due)) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
        }
        steno_status rc = steno_session_write(p->s, p->pcm + off, n);
        if (rc == STENO_ERR_FULL)
            atomic_fetch_add(&p->full_returns, 1);
        else if (rc != STENO_OK && !atomic_load(&p->bad_status))
            atomic_store(&p->bad_status, (int)rc);
        off += n;
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->written, off);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->done, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void res_producer_start(res_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                        uint32_t rate, size_t piece_frames, double speed)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->pcm = pcm;
    p->frames = frames;
    p->rate = rate;
    p->piece_frames = piece_frames ? piece_frames : rate / 50;
    p->speed = speed;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    RES_CHECK(pthread_create(&p->th, NULL, producer_main, p) == 0, "pthread_create");
    p->started = 1;
}

size_t res_producer_join(res_producer *p)
{
    if (p->started) {
        pthread_join(p->th, NULL);
        p->started = 0;
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    return atomic_load(&p->written);
}

size_t res_producer_written(res_producer *p)
{
    return atomic_load(&p->written);
}

void res_producer_stop(res_producer *p)
{
    atomic_store(&p->stop, 1);
}

static void deadline_ts(struct timespec *ts, uint32_t timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool res_producer_wait(res_producer *p, size_t frames, uint32_t timeout_ms)
{
    struct timespec ts;
    deadline_ts(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (atomic_load(&p->written) < frames && !atomic_load(&p->done) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    bool ok = atomic_load(&p->written) >= frames;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* ---- events ---- */

void res_collector_init(res_collector *c, const char *name)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    snprintf(c->name, sizeof c->name, "%s", name);
}

void res_collector_free(res_collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ev[i].text);
        free(c->ev[i].message);
        free(c->ev[i].request_id);
    }
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    memset(c, 0, sizeof *c);
}

static char *dup_or_empty(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

void res_on_event(void *user, const steno_event *ev)
{
    res_collector *c = user;
    res_ev e;
    memset(&e, 0, sizeof e);
    e.type = ev->type;
    e.seq = ev->seq;
    e.t_ms = res_now_ms();
    e.wall = res_wall_s();
    switch (ev->type) {
    case STENO_EVENT_TRANSCRIPT:
        e.is_final = ev->u.transcript.is_final;
        e.from_finalize = ev->u.transcript.from_finalize;
        e.start = ev->u.transcript.start;
        e.end = ev->u.transcript.end;
        e.first_sample = ev->u.transcript.first_sample;
        e.end_sample = ev->u.transcript.end_sample;
        e.text = dup_or_empty(ev->u.transcript.text);
        break;
    case STENO_EVENT_CONNECTING:
        e.attempt = ev->u.connecting.attempt;
        break;
    case STENO_EVENT_CONNECTED:
        e.request_id = dup_or_empty(ev->u.connected.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        e.attempt = ev->u.reconnecting.attempt;
        e.delay_ms = ev->u.reconnecting.delay_ms;
        e.cause = ev->u.reconnecting.cause;
        e.http_status = ev->u.reconnecting.http_status;
        e.close_code = ev->u.reconnecting.close_code;
        e.message = dup_or_empty(ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        e.attempts = ev->u.reconnected.attempts;
        e.downtime_ms = ev->u.reconnected.downtime_ms;
        e.replayed_chunks = ev->u.reconnected.replayed_chunks;
        e.request_id = dup_or_empty(ev->u.reconnected.request_id);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        e.drop_first = ev->u.audio_dropped.first_sample;
        e.drop_last = ev->u.audio_dropped.last_sample;
        e.drop_samples = ev->u.audio_dropped.samples;
        e.producer_side = ev->u.audio_dropped.producer_side;
        break;
    case STENO_EVENT_FAILED:
        e.status = ev->u.failed.status;
        e.http_status = ev->u.failed.http_status;
        e.close_code = ev->u.failed.close_code;
        e.message = dup_or_empty(ev->u.failed.message);
        e.request_id = dup_or_empty(ev->u.failed.request_id);
        break;
    case STENO_EVENT_CLOSED:
        e.status = ev->u.closed.status;
        e.unfinalized = ev->u.closed.unfinalized_samples;
        break;
    default:
        break;
    }

    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        res_ev *v = realloc(c->ev, cap * sizeof *v);
        if (!v)
            abort();
        c->ev = v;
        c->cap = cap;
    }
    if (c->last_seq && ev->seq != c->last_seq + 1)
        c->order_error = 1;
    c->last_seq = ev->seq;
    if (e.type == STENO_EVENT_TRANSCRIPT && e.is_final && e.end_sample > e.first_sample) {
        c->finals++;
        if (e.end_sample > c->acked)
            c->acked = e.end_sample;
    }
    if (e.type == STENO_EVENT_CLOSED || e.type == STENO_EVENT_FAILED)
        c->terminal = 1;
    c->ev[c->n++] = e;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);

    if (c->quiet && e.type != STENO_EVENT_FAILED)
        return;
    switch (e.type) {
    case STENO_EVENT_CONNECTING:
        res_log("%s: CONNECTING attempt %u", c->name, e.attempt);
        break;
    case STENO_EVENT_CONNECTED:
        res_log("%s: CONNECTED %s", c->name, e.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        res_log("%s: RECONNECTING attempt %u in %u ms: %s (%s, http %d, close %d)", c->name,
                e.attempt, e.delay_ms, e.message, steno_status_name(e.cause), e.http_status,
                e.close_code);
        break;
    case STENO_EVENT_RECONNECTED:
        res_log("%s: RECONNECTED %s after %u attempts, down %u ms, replaying %u chunks", c->name,
                e.request_id, e.attempts, e.downtime_ms, e.replayed_chunks);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        res_log("%s: AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] %" PRIu64 " samples (%s)", c->name,
                e.drop_first, e.drop_last, e.drop_samples,
                e.producer_side ? "producer" : "evicted");
        break;
    case STENO_EVENT_FAILED:
        res_log("%s: FAILED %s http %d close %d: %s", c->name, steno_status_name(e.status),
                e.http_status, e.close_code, e.message);
        break;
    case STENO_EVENT_CLOSED:
        res_log("%s: CLOSED %s, %" PRIu64 " samples unfinalized", c->name,
                steno_status_name(e.status), e.unfinalized);
        break;
    case STENO_EVENT_TRANSCRIPT:
        if (getenv("RES_VERBOSE"))
            res_log("%s: %s [%" PRIu64 ", %" PRIu64 ") %.3f-%.3f %s", c->name,
                    e.is_final ? "FINAL" : "interim", e.first_sample, e.end_sample, e.start, e.end,
                    e.text);
        break;
    default:
        break;
    }
}

bool res_wait(res_collector *c, bool (*pred)(res_collector *, void *), void *arg,
              uint32_t timeout_ms)
{
    struct timespec ts;
    deadline_ts(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    bool ok;
    while (!(ok = pred(c, arg)) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

struct type_count {
    steno_event_type type;
    size_t n;
};

static size_t count_locked(const res_collector *c, steno_event_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->ev[i].type == type;
    return n;
}

static bool pred_type(res_collector *c, void *arg)
{
    const struct type_count *tc = arg;
    return count_locked(c, tc->type) >= tc->n || c->terminal;
}

bool res_wait_type(res_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms)
{
    struct type_count tc = {type, n};
    res_wait(c, pred_type, &tc, timeout_ms);
    pthread_mutex_lock(&c->mu);
    bool ok = count_locked(c, type) >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static bool pred_acked(res_collector *c, void *arg)
{
    return c->acked >= *(const uint64_t *)arg || c->terminal;
}

bool res_wait_acked(res_collector *c, uint64_t frames, uint32_t timeout_ms)
{
    res_wait(c, pred_acked, &frames, timeout_ms);
    pthread_mutex_lock(&c->mu);
    bool ok = c->acked >= frames;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

size_t res_count(res_collector *c, steno_event_type type)
{
    pthread_mutex_lock(&c->mu);
    size_t n = count_locked(c, type);
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t res_find(const res_collector *c, steno_event_type type, size_t from)
{
    for (size_t i = from; i < c->n; i++)
        if (c->ev[i].type == type)
            return i;
    return (size_t)-1;
}

/* ---- accounting ---- */

typedef struct conn_info {
    const char *rid;
    size_t ev_index;       /* its CONNECTED / RECONNECTED event */
    uint64_t ack_at_start; /* finals' high-water mark when it was established */
    bool base_known;
    uint64_t base; /* session sample of its first audio sample, from its finals */
    size_t finals;
} conn_info;

#define ERR(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        ok = false;                                                                                \
        goto out;                                                                                  \
    } while (0)

/* FNV over n samples of pcm from `from`, skipping dropped ones; *end = one past the last. */
static uint64_t fnv_skipping(const uint8_t *dropped, const int16_t *pcm, uint64_t written,
                             uint64_t from, uint64_t n, uint64_t *end, bool *overrun)
{
    uint64_t h = RES_FNV_INIT, i = from, left = n;
    *overrun = false;
    while (left) {
        if (i >= written) {
            *overrun = true;
            break;
        }
        if (dropped[i]) {
            i++;
            continue;
        }
        /* a run up to the next dropped sample or the end of the stream */
        uint64_t run = 1;
        while (run < left && i + run < written && !dropped[i + run])
            run++;
        h = res_fnv1a64(h, pcm + i, (size_t)run * sizeof *pcm);
        i += run;
        left -= run;
    }
    *end = i;
    return h;
}

static bool check(res_collector *c, bool spans, const int16_t *pcm, uint64_t written, uint32_t rate,
                  uint32_t chunk_frames, const cJSON *records, res_accounting *out, char *err,
                  size_t errlen)
{
    bool ok = true;
    uint8_t *cover = NULL, *dropped = NULL, *skip = NULL;
    conn_info *conns = NULL;
    size_t nconn = 0;
    res_accounting acc;
    memset(&acc, 0, sizeof acc);
    acc.written = written;
    err[0] = '\0';
    pthread_mutex_lock(&c->mu);

    cover = calloc(written + 1, 1);
    dropped = calloc(written + 1, 1);
    skip = calloc(written + 1, 1);
    conns = calloc(c->n + 1, sizeof *conns);
    if (!cover || !dropped || !skip || !conns)
        ERR("out of memory");
    if (c->order_error)
        ERR("event seq numbers are not 1, 2, 3, ... in emission order");

    /* dropped ranges: exact, inside the stream, never twice */
    for (size_t k = 0; k < c->n; k++) {
        const res_ev *e = &c->ev[k];
        if (e->type != STENO_EVENT_AUDIO_DROPPED)
            continue;
        acc.drop_events++;
        if (e->drop_last < e->drop_first || e->drop_last >= written)
            ERR("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] is not inside the %" PRIu64
                " written samples",
                e->drop_first, e->drop_last, written);
        if (!e->producer_side && e->drop_samples != e->drop_last - e->drop_first + 1)
            ERR("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] says %" PRIu64 " samples", e->drop_first,
                e->drop_last, e->drop_samples);
        if (e->drop_first % chunk_frames || (e->drop_last + 1) % chunk_frames)
            ERR("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] is not whole chunks of %u", e->drop_first,
                e->drop_last, chunk_frames);
        for (uint64_t i = e->drop_first; i <= e->drop_last; i++) {
            if (dropped[i])
                ERR("sample %" PRIu64 " reported dropped twice", i);
            dropped[i] = 1;
        }
        acc.dropped += e->drop_last - e->drop_first + 1;
    }

    /* walk the events in order: connections, finals, times */
    long cur = -1;
    uint64_t acked = 0, prev_final_end = 0;
    double prev_end_s = 0;
    for (size_t k = 0; k < c->n; k++) {
        const res_ev *e = &c->ev[k];
        if (e->type == STENO_EVENT_CONNECTED || e->type == STENO_EVENT_RECONNECTED) {
            conns[nconn].rid = e->request_id;
            conns[nconn].ev_index = k;
            conns[nconn].ack_at_start = acked;
            cur = (long)nconn++;
            continue;
        }
        if (e->type == STENO_EVENT_RECONNECTING || e->type == STENO_EVENT_FAILED) {
            cur = -1;
            continue;
        }
        if (e->type != STENO_EVENT_TRANSCRIPT)
            continue;
        if (e->end_sample < e->first_sample)
            ERR("transcript [%" PRIu64 ", %" PRIu64 ") runs backwards", e->first_sample,
                e->end_sample);
        if (fabs(e->start - (double)e->first_sample / rate) > 0.0011 ||
            fabs(e->end - (double)e->end_sample / rate) > 0.0011)
            ERR("transcript %.4f-%.4f s disagrees with samples [%" PRIu64 ", %" PRIu64 ")",
                e->start, e->end, e->first_sample, e->end_sample);
        if (!e->is_final) {
            if (e->end_sample > e->first_sample && e->first_sample < acked)
                ERR("interim [%" PRIu64 ", %" PRIu64 ") regresses behind the final end %" PRIu64,
                    e->first_sample, e->end_sample, acked);
            continue;
        }
        if (e->end_sample == e->first_sample)
            continue; /* an empty final (Finalize with nothing pending) */
        if (cur < 0)
            ERR("final [%" PRIu64 ", %" PRIu64 ") arrived outside a connection", e->first_sample,
                e->end_sample);
        if (e->first_sample < prev_final_end || e->start < prev_end_s - 1e-9)
            ERR("final [%" PRIu64 ", %" PRIu64 ") (%.3f s) overlaps or precedes the previous "
                "final ending at %" PRIu64 " (%.3f s)",
                e->first_sample, e->end_sample, e->start, prev_final_end, prev_end_s);
        prev_final_end = e->end_sample;
        prev_end_s = e->end;
        if (e->end_sample > acked)
            acked = e->end_sample;
        conns[cur].finals++;
        acc.finals++;
        if (e->end_sample > written)
            ERR("final [%" PRIu64 ", %" PRIu64 ") beyond the %" PRIu64 " written samples",
                e->first_sample, e->end_sample, written);
        if (!spans)
            continue;
        uint64_t a, b;
        char hex[32];
        if (sscanf(e->text, "span %" SCNu64 "-%" SCNu64 " fnv1a64=%31s", &a, &b, hex) != 3)
            ERR("final text is not a null-engine span: '%s'", e->text);
        uint64_t want = strtoull(hex, NULL, 16);
        uint64_t span_dropped = 0;
        for (uint64_t i = e->first_sample; i < e->end_sample; i++)
            span_dropped += dropped[i];
        if (b - a != e->end_sample - e->first_sample - span_dropped)
            ERR("final '%s' has %" PRIu64 " samples but the SDK mapped it to [%" PRIu64 ", %" PRIu64
                ") (%" PRIu64 " of them dropped)",
                e->text, b - a, e->first_sample, e->end_sample, span_dropped);
        if (e->first_sample < a)
            ERR("final '%s' mapped to %" PRIu64 ", before the connection could start", e->text,
                e->first_sample);
        uint64_t base = e->first_sample - a; /* exact when nothing dropped before it */
        if (!conns[cur].base_known) {
            conns[cur].base_known = true;
            conns[cur].base = base;
        }
        uint64_t end;
        bool over;
        uint64_t got = fnv_skipping(dropped, pcm, written, e->first_sample, b - a, &end, &over);
        if (over || got != want || end != e->end_sample)
            ERR("final '%s' mapped to [%" PRIu64 ", %" PRIu64 ") but that audio's checksum is "
                "%016" PRIx64 ": the SDK put it on the wrong part of the timeline",
                e->text, e->first_sample, e->end_sample, got);
        for (uint64_t i = e->first_sample; i < e->end_sample; i++) {
            if (dropped[i])
                continue;
            if (cover[i])
                ERR("sample %" PRIu64 " covered by two finals (second: '%s')", i, e->text);
            cover[i] = 1;
            acc.covered++;
        }
    }

    if (spans) {
        for (uint64_t i = 0; i < written; i++) {
            if (cover[i] + dropped[i] != 1) {
                uint64_t j = i;
                while (j < written && cover[j] + dropped[j] == cover[i] + dropped[i])
                    j++;
                ERR("samples [%" PRIu64 ", %" PRIu64 ") are %s (%" PRIu64 " covered, %" PRIu64
                    " dropped of %" PRIu64 " written)",
                    i, j,
                    cover[i] + dropped[i] ? "both covered and dropped"
                                          : "neither covered by a final nor reported dropped",
                    acc.covered, acc.dropped, written);
            }
        }
    }

    /* each connection: a contiguous slice starting at the first unacknowledged chunk */
    uint64_t prev_conn_end = 0;
    for (size_t k = 0; k < nconn; k++) {
        conn_info *ci = &conns[k];
        const cJSON *r = res_record_by_rid(records, ci->rid);
        if (!r)
            ERR("connection %zu (request id '%s') has no server record", k + 1, ci->rid);
        double samples_d = res_jnum(r, "audio_samples", -1);
        if (samples_d < 0)
            ERR("server record of '%s' has no audio_samples", ci->rid);
        uint64_t n = (uint64_t)samples_d;
        if (n == 0) {
            if (ci->finals)
                ERR("connection '%s' received no audio but produced %zu finals", ci->rid,
                    ci->finals);
            continue;
        }
        acc.connections++;
        /* what it cannot have received: chunks the producer dropped, and chunks evicted
         * before it opened (chunks evicted later may well have been sent on it) */
        memset(skip, 0, written + 1);
        for (size_t q = 0; q < c->n; q++) {
            const res_ev *e = &c->ev[q];
            if (e->type == STENO_EVENT_AUDIO_DROPPED && (e->producer_side || q < ci->ev_index))
                memset(skip + e->drop_first, 1, e->drop_last - e->drop_first + 1);
        }
        uint64_t base = ci->ack_at_start / chunk_frames * chunk_frames;
        while (base < written && skip[base])
            base++; /* evicted during the outage: replay starts after it */
        if (ci->base_known && ci->base != base)
            ERR("connection %zu ('%s'): its finals put its first sample at %" PRIu64
                ", but the first unacknowledged chunk when it opened began at %" PRIu64,
                k + 1, ci->rid, ci->base, base);
        uint64_t end;
        bool over;
        uint64_t h = fnv_skipping(skip, pcm, written, base, n, &end, &over);
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, h);
        if (over)
            ERR("connection %zu ('%s') received %" PRIu64 " samples from %" PRIu64
                ", more than was written (%" PRIu64 ")",
                k + 1, ci->rid, n, base, written);
        if (strcmp(hex, res_jstr(r, "audio_fnv1a64")) != 0)
            ERR("connection %zu ('%s'): the server's checksum of its %" PRIu64
                " samples is %s, but the written stream from %" PRIu64 " (first unacknowledged "
                "chunk) gives %s: audio was reordered, skipped or duplicated",
                k + 1, ci->rid, n, res_jstr(r, "audio_fnv1a64"), base, hex);
        if (prev_conn_end > base)
            acc.replayed += prev_conn_end - base;
        prev_conn_end = end;
    }
    if (spans && acc.covered + acc.dropped != written)
        ERR("covered %" PRIu64 " + dropped %" PRIu64 " != written %" PRIu64, acc.covered,
            acc.dropped, written);
out:
    pthread_mutex_unlock(&c->mu);
    free(cover);
    free(dropped);
    free(skip);
    free(conns);
    if (out)
        *out = acc;
    return ok;
}

bool res_check_accounting(res_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                          uint32_t chunk_frames, const cJSON *records, res_accounting *out,
                          char *err, size_t errlen)
{
    return check(c, true, pcm, written, rate, chunk_frames, records, out, err, errlen);
}

bool res_check_connections(res_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                           uint32_t chunk_frames, const cJSON *records, res_accounting *out,
                           char *err, size_t errlen)
{
    return check(c, false, pcm, written, rate, chunk_frames, records, out, err, errlen);
}

/* ---- sessions ---- */

void res_session_defaults(steno_session_config *sc, char *url, size_t url_len, int port,
                          res_collector *col)
{
    steno_session_config_init(sc);
    snprintf(url, url_len, "ws://127.0.0.1:%d/v1/listen", port);
    sc->url = url;
    sc->allow_no_auth = 1;
    sc->sample_rate = 16000;
    sc->channels = 1;
    sc->chunk_ms = 100;
    sc->ping_interval_ms = 250;
    sc->dead_after_ms = 1500;
    sc->connect_timeout_ms = 3000;
    sc->healthy_after_ms = 300;
    sc->retry.base_ms = 100;
    sc->retry.cap_ms = 1000;
    sc->close_timeout_ms = 20000;
    if (col) {
        sc->on_event = res_on_event;
        sc->user = col;
    }
}

double res_fast_send(steno_session_config *sc, double speed)
{
    /* the local server accepts any rate unless started with --max-rate */
    sc->send_speed_permille = (uint32_t)(speed * 1000.0 + 0.5);
    return speed;
}

static void log_fn(void *user, steno_log_level level, const char *line)
{
    (void)user;
    static const char *names[] = {"?", "error", "warn", "info", "debug"};
    pthread_mutex_lock(&g_log_mu);
    fprintf(stderr, "[%s steno %s] %s\n", g_name, names[level >= 1 && level <= 4 ? level : 0],
            line);
    pthread_mutex_unlock(&g_log_mu);
}

steno_client *res_client_open(steno_client_config *cc)
{
    steno_client_config local;
    if (!cc) {
        steno_client_config_init(&local);
        cc = &local;
    }
    cc->log_fn = log_fn;
    cc->log_level = STENO_LOG_WARN;
    const char *lv = getenv("RES_LOG");
    if (lv && strcmp(lv, "info") == 0)
        cc->log_level = STENO_LOG_INFO;
    else if (lv && strcmp(lv, "debug") == 0)
        cc->log_level = STENO_LOG_DEBUG;
    steno_client *c = NULL;
    char err[256] = "";
    steno_status rc = steno_client_open(cc, &c, err, sizeof err);
    RES_CHECK(rc == STENO_OK && c, "steno_client_open: %s: %s", steno_status_name(rc), err);
    return c;
}

double res_metric(steno_client *c, const char *name, const char *label)
{
    size_t need = 0;
    steno_client_metrics_text(c, NULL, 0, &need);
    char *buf = malloc(need + 1);
    RES_CHECK(buf, "out of memory");
    RES_CHECK(steno_client_metrics_text(c, buf, need + 1, &need) == STENO_OK, "metrics text");
    double v = NAN;
    size_t nl = strlen(name);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '#' || strncmp(l, name, nl) != 0 || (l[nl] != ' ' && l[nl] != '{'))
            continue;
        char *eol = strchr(l, '\n');
        if (eol)
            *eol = '\0';
        bool match = !label || strstr(l, label);
        char *sp = strrchr(l, ' ');
        if (match && sp) {
            v = strtod(sp + 1, NULL);
            break;
        }
        if (eol)
            *eol = '\n';
    }
    free(buf);
    return v;
}

/* ---- word error rate ---- */

size_t res_words(const char *text, char ***out)
{
    size_t n = 0, cap = 16;
    char **w = malloc(cap * sizeof *w);
    RES_CHECK(w, "out of memory");
    const char *p = text;
    while (*p) {
        while (*p && !(isalnum((unsigned char)*p) || *p == '\''))
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '\''))
            p++;
        if (n == cap) {
            cap *= 2;
            w = realloc(w, cap * sizeof *w);
            RES_CHECK(w, "out of memory");
        }
        char *word = strndup(s, (size_t)(p - s));
        RES_CHECK(word, "out of memory");
        for (char *q = word; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        w[n++] = word;
    }
    *out = w;
    return n;
}

void res_words_free(char **w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i]);
    free(w);
}

double res_wer(char **ref, size_t nref, char **hyp, size_t nhyp)
{
    size_t *prev = malloc((nhyp + 1) * sizeof *prev), *cur = malloc((nhyp + 1) * sizeof *cur);
    RES_CHECK(prev && cur, "out of memory");
    for (size_t j = 0; j <= nhyp; j++)
        prev[j] = j;
    for (size_t i = 1; i <= nref; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nhyp; j++) {
            size_t sub = prev[j - 1] + (strcmp(ref[i - 1], hyp[j - 1]) != 0);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    double d = (double)prev[nhyp];
    free(prev);
    free(cur);
    return nref ? 100.0 * d / (double)nref : (nhyp ? 100.0 : 0.0);
}
