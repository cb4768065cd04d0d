/* tls_harness: what the TLS tests share — throwaway certificates, a wss:// steno-server, events.
 */
#include "tls_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- failing, logging, time ---- */

static char g_name[64] = "tls";
static uint64_t g_t0;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static th_server *g_servers[4];
static char g_tmpdir[128];

uint64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&g_log_mu);
    uint64_t t = th_now_ms() - g_t0;
    fprintf(stdout, "[%s %3" PRIu64 ".%03" PRIu64 "] %s", g_name, t / 1000, t % 1000, prefix);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g_log_mu);
}

void th_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
    char where[256];
    snprintf(where, sizeof where, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vlog(where, fmt, ap);
    va_end(ap);
    exit(1);
}

static void remove_tmpdir(void)
{
    if (!g_tmpdir[0])
        return;
    DIR *d = opendir(g_tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", g_tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(g_tmpdir);
    g_tmpdir[0] = '\0';
}

static void at_exit(void)
{
    for (size_t i = 0; i < sizeof g_servers / sizeof g_servers[0]; i++)
        if (g_servers[i])
            th_server_stop(g_servers[i]);
    remove_tmpdir();
}

static void on_signal(int sig)
{
    /* async-signal-safe only: the server must not outlive a test killed by its timeout */
    for (size_t i = 0; i < sizeof g_servers / sizeof g_servers[0]; i++)
        if (g_servers[i] && g_servers[i]->pid > 0)
            kill(g_servers[i]->pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

void th_init(const char *test_name)
{
    snprintf(g_name, sizeof g_name, "%s", test_name);
    g_t0 = th_now_ms();
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(at_exit);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- child processes ---- */

/* Runs argv in dir (stdout and stderr to dir/openssl.log); true when it exited 0. */
static bool run_in(const char *dir, char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    TH_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        int fd = open("openssl.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool have_openssl(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/openssl", d);
        if (access(p, X_OK) == 0)
            return true;
    }
    return false;
}

/* ---- certificates ---- */

/* One config for every step: the CA and leaf extensions, and `openssl ca` (only the expired
 * certificate needs it: `x509 -req` cannot back-date). EC P-256 keys are made in milliseconds. */
static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = unused\n"
                                  "[ca_ext]\n"
                                  "basicConstraints = critical,CA:TRUE\n"
                                  "keyUsage = critical,keyCertSign,cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[srv_ext]\n"
                                  "basicConstraints = critical,CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
                                  "[wrong_ext]\n"
                                  "basicConstraints = critical,CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = DNS:wrong.example\n"
                                  "[ca]\n"
                                  "default_ca = ca_sect\n"
                                  "[ca_sect]\n"
                                  "database = index.txt\n"
                                  "new_certs_dir = .\n"
                                  "serial = serial\n"
                                  "default_md = sha256\n"
                                  "policy = pol\n"
                                  "unique_subject = no\n"
                                  "copy_extensions = none\n"
                                  "[pol]\n"
                                  "commonName = supplied\n";

static void write_at(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    TH_CHECK(f, "cannot create %s: %s", path, strerror(errno));
    TH_CHECK(fwrite(data, 1, len, f) == len, "cannot write %s", path);
    TH_CHECK(fclose(f) == 0, "cannot write %s", path);
}

void th_write_file(const th_certs *c, const char *name, const void *data, size_t len, char *path,
                   size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", c->dir, name);
    write_at(path, data, len);
}

#define EC "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"

static void openssl(const th_certs *c, char *const argv[])
{
    if (!run_in(c->dir, argv)) {
        char log[256];
        snprintf(log, sizeof log, "%s/openssl.log", c->dir);
        FILE *f = fopen(log, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            th_log("openssl: %s", line);
        if (f)
            fclose(f);
        th_fail(__FILE__, __LINE__, "openssl %s failed", argv[1]);
    }
}

void th_certs_make(th_certs *c)
{
    memset(c, 0, sizeof *c);
    if (!have_openssl()) {
        th_log("the openssl command is not installed: skipping");
        exit(TH_SKIP);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/steno-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    TH_CHECK(mkdtemp(c->dir), "mkdtemp %s: %s", c->dir, strerror(errno));
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s", c->dir);

    char p[256];
    th_write_file(c, "openssl.cnf", openssl_cnf, sizeof openssl_cnf - 1, p, sizeof p);
    th_write_file(c, "index.txt", "", 0, p, sizeof p);
    th_write_file(c, "serial", "10\n", 3, p, sizeof p);

    uint64_t t0 = th_now_ms();
    char *ca[] = {"openssl",     "req",     "-x509",   "-config",
                  "openssl.cnf", "-newkey", EC,        "-nodes",
                  "-days",       "2",       "-subj",   "/CN=steno test CA",
                  "-extensions", "ca_ext",  "-keyout", "ca.key",
                  "-out",        "ca.pem",  NULL};
    openssl(c, ca);
    char *other[] = {"openssl",     "req",       "-x509",   "-config",
                     "openssl.cnf", "-newkey",   EC,        "-nodes",
                     "-days",       "2",         "-subj",   "/CN=steno other CA",
                     "-extensions", "ca_ext",    "-keyout", "other.key",
                     "-out",        "other.pem", NULL};
    openssl(c, other);
    static const char *const leaves[] = {"good", "foreign", "expired", "wrong"};
    for (size_t i = 0; i < 4; i++) {
        char subj[64], key[32], csr[32];
        snprintf(subj, sizeof subj, "/CN=steno %s", leaves[i]);
        snprintf(key, sizeof key, "%s.key", leaves[i]);
        snprintf(csr, sizeof csr, "%s.csr", leaves[i]);
        char *req[] = {"openssl", "req", "-new",   "-config", "openssl.cnf",
                       "-newkey", EC,    "-nodes", "-subj",   subj,
                       "-keyout", key,   "-out",   csr,       NULL};
        openssl(c, req);
    }
    char *good[] = {"openssl",     "x509",    "-req",   "-in",      "good.csr",
                    "-CA",         "ca.pem",  "-CAkey", "ca.key",   "-set_serial",
                    "2",           "-days",   "2",      "-extfile", "openssl.cnf",
                    "-extensions", "srv_ext", "-out",   "good.pem", NULL};
    openssl(c, good);
    char *wrong[] = {"openssl",     "x509",      "-req",   "-in",       "wrong.csr",
                     "-CA",         "ca.pem",    "-CAkey", "ca.key",    "-set_serial",
                     "3",           "-days",     "2",      "-extfile",  "openssl.cnf",
                     "-extensions", "wrong_ext", "-out",   "wrong.pem", NULL};
    openssl(c, wrong);
    char *foreign[] = {"openssl",     "x509",      "-req",   "-in",         "foreign.csr",
                       "-CA",         "other.pem", "-CAkey", "other.key",   "-set_serial",
                       "4",           "-days",     "2",      "-extfile",    "openssl.cnf",
                       "-extensions", "srv_ext",   "-out",   "foreign.pem", NULL};
    openssl(c, foreign);
    char *expired[] = {"openssl",     "ca",
                       "-batch",      "-notext",
                       "-config",     "openssl.cnf",
                       "-cert",       "ca.pem",
                       "-keyfile",    "ca.key",
                       "-in",         "expired.csr",
                       "-startdate",  "20200101000000Z",
                       "-enddate",    "20200102000000Z",
                       "-extfile",    "openssl.cnf",
                       "-extensions", "srv_ext",
                       "-out",        "expired.pem",
                       NULL};
    openssl(c, expired);
    char *der[] = {"openssl", "x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", NULL};
    openssl(c, der);

#define SET(field, name) snprintf(c->field, sizeof c->field, "%s/%s", c->dir, name)
    SET(ca, "ca.pem");
    SET(ca_der, "ca.der");
    SET(other_ca, "other.pem");
    SET(good_cert, "good.pem");
    SET(good_key, "good.key");
    SET(foreign_cert, "foreign.pem");
    SET(foreign_key, "foreign.key");
    SET(expired_cert, "expired.pem");
    SET(expired_key, "expired.key");
    SET(wrong_cert, "wrong.pem");
    SET(wrong_key, "wrong.key");
#undef SET
    th_log("certificates made in %" PRIu64 " ms", th_now_ms() - t0);
}

/* ---- the server ---- */

static void register_server(th_server *s)
{
    for (size_t i = 0; i < sizeof g_servers / sizeof g_servers[0]; i++) {
        if (!g_servers[i] || g_servers[i] == s) {
            g_servers[i] = s;
            return;
        }
    }
}

void th_server_start(th_server *srv, const char *cert, const char *key)
{
    memset(srv, 0, sizeof *srv);
    const char *exe = getenv("STENO_SERVER");
    TH_CHECK(exe && *exe, "STENO_SERVER is not set (run through meson test)");
    char *argv[] = {(char *)exe,  "--port",    "0",         "--control-port",
                    "0",          "--engine",  "null",      "--tls-cert",
                    (char *)cert, "--tls-key", (char *)key, NULL};
    int pfd[2];
    TH_CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    TH_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, even on a timeout kill */
        dup2(pfd[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    srv->pid = pid;
    srv->out_fd = pfd[0];
    register_server(srv);

    size_t len = 0;
    uint64_t deadline = th_now_ms() + 30000u;
    for (;;) {
        char *nl = memchr(srv->line, '\n', len);
        if (nl) {
            *nl = '\0';
            break;
        }
        uint64_t now = th_now_ms();
        TH_CHECK(now < deadline, "steno-server printed no first line within 30 s");
        struct pollfd pf = {.fd = srv->out_fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t r = read(srv->out_fd, srv->line + len, sizeof srv->line - 1 - len);
        TH_CHECK(r > 0, "steno-server exited before printing its ports");
        len += (size_t)r;
        srv->line[len] = '\0';
        TH_CHECK(len < sizeof srv->line - 1, "first line too long");
    }
    /* "steno-server listening on HOST:PORT control 127.0.0.1:CPORT" */
    const char *on = strstr(srv->line, " on ");
    const char *ctl = strstr(srv->line, " control ");
    TH_CHECK(on && ctl, "unexpected first line: %s", srv->line);
    const char *colon = strchr(on + 4, ':');
    const char *ccolon = strrchr(ctl, ':');
    TH_CHECK(colon && ccolon, "unexpected first line: %s", srv->line);
    srv->port = atoi(colon + 1);
    srv->control_port = atoi(ccolon + 1);
    TH_CHECK(srv->port > 0 && srv->control_port > 0, "bad ports in: %s", srv->line);
    th_log("steno-server (TLS, %s): %s", strrchr(cert, '/') + 1, srv->line);
}

void th_server_stop(th_server *srv)
{
    if (srv->pid <= 0)
        return;
    kill(srv->pid, SIGTERM);
    int st = 0;
    pid_t r;
    uint64_t deadline = th_now_ms() + 5000u;
    while ((r = waitpid(srv->pid, &st, WNOHANG)) == 0 && th_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL); /* polling a child's exit: there is no event to await */
    }
    if (r == 0) {
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, &st, 0);
    }
    srv->pid = 0;
    close(srv->out_fd);
    srv->out_fd = -1;
}

/* ---- control API ---- */

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        TH_CHECK(w > 0, "control API send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Decodes a chunked body in place. */
static void dechunk(char *b, size_t n)
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
}

cJSON *th_control(const th_server *srv, const char *method, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TH_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv->control_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    TH_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to control port: %s",
             strerror(errno));
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, srv->control_port, blen);
    send_all(fd, head, (size_t)hl);
    if (blen)
        send_all(fd, body, blen);

    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    TH_CHECK(buf, "out of memory");
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            TH_CHECK(buf, "out of memory");
        }
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        TH_CHECK(r >= 0, "control API %s %s: %s", method, path, strerror(errno));
        len += (size_t)r;
        buf[len] = '\0';
        if (r == 0)
            break;
        char *he = strstr(buf, "\r\n\r\n");
        const char *cl = he ? strcasestr(buf, "\r\ncontent-length:") : NULL;
        if (cl && cl < he && len >= (size_t)(he + 4 - buf) + strtoul(cl + 17, NULL, 10))
            break;
    }
    close(fd);
    int status = 0;
    int parsed = sscanf(buf, "HTTP/1.%*d %d", &status);
    TH_CHECK(parsed == 1, "bad control answer: %.80s", buf);
    char *he = strstr(buf, "\r\n\r\n");
    TH_CHECK(he, "control answer without a header end");
    char *b = he + 4;
    const char *te = strcasestr(buf, "\r\ntransfer-encoding: chunked");
    if (te && te < he)
        dechunk(b, len - (size_t)(b - buf));
    TH_CHECK(status >= 200 && status < 300, "%s %s answered %d: %s", method, path, status, b);
    cJSON *j = cJSON_Parse(b);
    TH_CHECK(j, "%s %s: body is not JSON: %.200s", method, path, b);
    free(buf);
    return j;
}

double th_jnum(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

const char *th_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* ---- audio ---- */

uint64_t th_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void th_pattern(int16_t *out, size_t n)
{
    /* a 32-bit LCG: every span of audio differs, so a replayed or skipped span changes a hash */
    uint32_t x = 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        out[i] = (int16_t)(x >> 16);
    }
}

static void *producer_main(void *arg)
{
    th_producer *p = arg;
    const size_t piece = TH_RATE / 50; /* 20 ms, like an audio callback */
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long step_ns = (long)(20e6 / p->speed);
    for (size_t off = 0; off < p->frames; off += piece) {
        size_t n = p->frames - off < piece ? p->frames - off : piece;
        steno_status rc = steno_session_write(p->s, p->pcm + off, n);
        if (rc != STENO_OK) {
            int expected = 0;
            atomic_compare_exchange_strong(&p->bad_status, &expected, (int)rc);
            break;
        }
        atomic_store(&p->written, off + n);
        /* pacing like a capture device (not synchronisation): sleep to the next period */
        next.tv_nsec += step_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    return NULL;
}

void th_producer_start(th_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                       double speed)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->pcm = pcm;
    p->frames = frames;
    p->speed = speed;
    TH_CHECK(pthread_create(&p->th, NULL, producer_main, p) == 0, "pthread_create");
}

size_t th_producer_join(th_producer *p)
{
    pthread_join(p->th, NULL);
    return atomic_load(&p->written);
}

/* ---- events ---- */

void th_collector_init(th_collector *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->cap = 4096;
    c->ev = calloc(c->cap, sizeof *c->ev);
    TH_CHECK(c->ev, "out of memory");
}

void th_collector_free(th_collector *c)
{
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

void th_on_event(void *user, const steno_event *ev)
{
    th_collector *c = user;
    th_ev e;
    memset(&e, 0, sizeof e);
    e.type = ev->type;
    switch (ev->type) {
    case STENO_EVENT_CONNECTING:
        e.attempt = ev->u.connecting.attempt;
        break;
    case STENO_EVENT_TRANSCRIPT:
        e.is_final = ev->u.transcript.is_final;
        e.first_sample = ev->u.transcript.first_sample;
        e.end_sample = ev->u.transcript.end_sample;
        snprintf(e.text, sizeof e.text, "%s", ev->u.transcript.text);
        break;
    case STENO_EVENT_RECONNECTING:
        e.attempt = ev->u.reconnecting.attempt;
        e.status = ev->u.reconnecting.cause;
        e.http_status = ev->u.reconnecting.http_status;
        snprintf(e.text, sizeof e.text, "%s", ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        e.attempt = ev->u.reconnected.attempts;
        e.replayed_chunks = ev->u.reconnected.replayed_chunks;
        break;
    case STENO_EVENT_FAILED:
        e.status = ev->u.failed.status;
        e.http_status = ev->u.failed.http_status;
        snprintf(e.text, sizeof e.text, "%s", ev->u.failed.message);
        break;
    case STENO_EVENT_CLOSED:
        e.status = ev->u.closed.status;
        break;
    default:
        break;
    }
    if (ev->type != STENO_EVENT_TRANSCRIPT)
        th_log("event %s%s%s", steno_event_type_name(ev->type), e.text[0] ? ": " : "", e.text);

    pthread_mutex_lock(&c->mu);
    if (c->n < c->cap)
        c->ev[c->n++] = e;
    else
        th_log("event collector full: event dropped");
    if (e.type == STENO_EVENT_TRANSCRIPT && e.is_final && e.end_sample > c->acked)
        c->acked = e.end_sample;
    if (e.type == STENO_EVENT_CLOSED || e.type == STENO_EVENT_FAILED)
        c->terminal = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static size_t count_locked(const th_collector *c, steno_event_type type)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        k += c->ev[i].type == type;
    return k;
}

size_t th_count(th_collector *c, steno_event_type type)
{
    pthread_mutex_lock(&c->mu);
    size_t k = count_locked(c, type);
    pthread_mutex_unlock(&c->mu);
    return k;
}

/* Waits until pred holds (checked with the lock held); false on timeout. */
static bool wait_until(th_collector *c, bool (*pred)(const th_collector *, const void *),
                       const void *arg, uint32_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000u;
    dl.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    bool ok;
    while (!(ok = pred(c, arg))) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) {
            ok = pred(c, arg);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

struct type_n {
    steno_event_type type;
    size_t n;
};

static bool pred_type(const th_collector *c, const void *arg)
{
    const struct type_n *t = arg;
    return count_locked(c, t->type) >= t->n || c->terminal;
}

bool th_wait_type(th_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms)
{
    struct type_n t = {type, n};
    wait_until(c, pred_type, &t, timeout_ms);
    return th_count(c, type) >= n;
}

static bool pred_acked(const th_collector *c, const void *arg)
{
    return c->acked >= *(const uint64_t *)arg || c->terminal;
}

bool th_wait_acked(th_collector *c, uint64_t frames, uint32_t timeout_ms)
{
    wait_until(c, pred_acked, &frames, timeout_ms);
    pthread_mutex_lock(&c->mu);
    bool ok = c->acked >= frames;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static bool pred_terminal(const th_collector *c, const void *arg)
{
    (void)arg;
    return c->terminal;
}

bool th_wait_terminal(th_collector *c, uint32_t timeout_ms)
{
    return wait_until(c, pred_terminal, NULL, timeout_ms);
}

/* ---- clients and sessions ---- */

static void log_line(void *user, steno_log_level level, const char *line)
{
    (void)user;
    static const char *const names[] = {"", "ERROR", "WARN", "INFO", "DEBUG"};
    th_log("steno %s: %s", names[level >= 1 && level <= 4 ? level : 0], line);
}

steno_client *th_client_open(const char *ca_file)
{
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = ca_file;
    cc.log_fn = log_line;
    const char *lv = getenv("TH_LOG");
    cc.log_level = lv && !strcmp(lv, "debug")  ? STENO_LOG_DEBUG
                   : lv && !strcmp(lv, "info") ? STENO_LOG_INFO
                                               : STENO_LOG_WARN;
    char err[512];
    steno_client *c = NULL;
    steno_status rc = steno_client_open(&cc, &c, err, sizeof err);
    TH_CHECK(rc == STENO_OK, "steno_client_open: %s: %s", steno_status_name(rc), err);
    return c;
}

void th_session_defaults(steno_session_config *sc, const char *url, th_collector *col)
{
    steno_session_config_init(sc);
    sc->url = url;
    sc->allow_no_auth = 1;
    sc->sample_rate = TH_RATE;
    sc->channels = 1;
    sc->on_event = th_on_event;
    sc->user = col;
    sc->send_speed_permille = 4000;
    sc->retry.base_ms = 100;
    sc->retry.cap_ms = 1000;
    sc->ping_interval_ms = 500;
    sc->dead_after_ms = 3000;
    sc->healthy_after_ms = 300;
}

/* ---- accounting ---- */

bool th_check_coverage(th_collector *c, const int16_t *pcm, uint64_t written, int64_t *bases,
                       size_t *nconn, char *err, size_t errlen)
{
    size_t conns = 0, cap = *nconn;
    uint64_t covered = 0;
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n && ok; i++) {
        const th_ev *e = &c->ev[i];
        if (e->type == STENO_EVENT_CONNECTED || e->type == STENO_EVENT_RECONNECTED) {
            if (conns < cap)
                bases[conns] = -1;
            conns++;
            continue;
        }
        if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final || e->end_sample == e->first_sample)
            continue;
        unsigned long long a, b;
        char hex[17];
        if (sscanf(e->text, "span %llu-%llu fnv1a64=%16s", &a, &b, hex) != 3) {
            snprintf(err, errlen, "final '%s' is not a null-engine span", e->text);
            ok = false;
        } else if (conns == 0 || conns > cap) {
            snprintf(err, errlen, "final '%s' outside a known connection", e->text);
            ok = false;
        } else if (e->first_sample != covered) {
            snprintf(err, errlen,
                     "final [%" PRIu64 ",%" PRIu64 ") ('%s') does not start where the previous "
                     "one ended (%" PRIu64 "): %s",
                     e->first_sample, e->end_sample, e->text, covered,
                     e->first_sample > covered ? "audio lost" : "audio transcribed twice");
            ok = false;
        } else if (b - a != e->end_sample - e->first_sample || e->end_sample > written) {
            snprintf(err, errlen, "final [%" PRIu64 ",%" PRIu64 ") of %" PRIu64 " written: '%s'",
                     e->first_sample, e->end_sample, written, e->text);
            ok = false;
        } else {
            int64_t base = (int64_t)e->first_sample - (int64_t)a;
            int64_t *cb = &bases[conns - 1];
            char want[17];
            snprintf(want, sizeof want, "%016" PRIx64,
                     th_fnv1a64(TH_FNV_INIT, pcm + e->first_sample,
                                (size_t)(e->end_sample - e->first_sample) * sizeof *pcm));
            if (*cb >= 0 && *cb != base) {
                snprintf(err, errlen,
                         "connection %zu: final '%s' at session sample %" PRIu64
                         " implies offset base %" PRId64 ", earlier finals %" PRId64,
                         conns, e->text, e->first_sample, base, *cb);
                ok = false;
            } else if (strcmp(hex, want) != 0) {
                snprintf(err, errlen,
                         "final '%s' mapped to [%" PRIu64 ",%" PRIu64 "): the server hashed "
                         "other audio than written there (%s)",
                         e->text, e->first_sample, e->end_sample, want);
                ok = false;
            } else {
                *cb = base;
                covered = e->end_sample;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (ok && covered != written) {
        snprintf(err, errlen, "finals cover [0,%" PRIu64 ") of %" PRIu64 " samples written",
                 covered, written);
        ok = false;
    }
    *nconn = conns;
    return ok;
}
