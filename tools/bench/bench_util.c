/* bench_util: what every benchmark needs — a steno-server child, its control API, clocks,
 * memory and CPU readings. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t running_server;

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (running_server > 0)
        kill(running_server, SIGTERM);
    _exit(1);
}

void bench_server_start(bench_server *srv, const char *exe, const char *const *extra)
{
    if (!exe)
        exe = getenv("STENO_SERVER");
    if (!exe || access(exe, X_OK) != 0)
        bench_die("no steno-server: pass --server PATH or set STENO_SERVER");
    int fds[2];
    if (pipe(fds) != 0)
        bench_die("pipe: %s", strerror(errno));
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "--engine";
    argv[n++] = "null";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--control-port";
    argv[n++] = "0";
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    running_server = pid;
    char line[256];
    size_t len = 0;
    while (len + 1 < sizeof line) { /* byte by byte: later output stays in the pipe */
        ssize_t r = read(fds[0], line + len, 1);
        if (r <= 0 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    memset(srv, 0, sizeof *srv);
    srv->pid = pid;
    if (sscanf(line, "steno-server listening on %*[^:]:%d control %*[^:]:%d", &srv->port,
               &srv->control_port) != 2)
        bench_die("unexpected first line from %s: '%s'", exe, line);
    snprintf(srv->url, sizeof srv->url, "ws://127.0.0.1:%d/v1/listen", srv->port);
    /* fds[0] stays open: a late log line on stdout must not kill the server with SIGPIPE */
}

void bench_server_stop(bench_server *srv)
{
    if (srv->pid > 0) {
        kill(srv->pid, SIGTERM);
        waitpid(srv->pid, NULL, 0);
        if (running_server == srv->pid)
            running_server = 0;
        srv->pid = 0;
    }
}

int bench_http(const bench_server *srv, const char *method, const char *path, const char *json,
               char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        bench_die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->control_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        bench_die("control API connect: %s", strerror(errno));
    size_t jlen = json ? strlen(json) : 0;
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, jlen);
    if (hn <= 0 || (size_t)hn >= sizeof head || write(fd, head, (size_t)hn) != hn ||
        (jlen && write(fd, json, jlen) != (ssize_t)jlen))
        bench_die("control API write failed");
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        bench_die("out of memory");
    for (;;) {
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                bench_die("out of memory");
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    if (body) {
        const char *b = strstr(buf, "\r\n\r\n");
        *body = strdup(b ? b + 4 : "");
        if (!*body)
            bench_die("out of memory");
    }
    free(buf);
    return status;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ms(void)
{
    return bench_now_ns() / 1000000u;
}

double bench_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep_until_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

uint64_t bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double bench_cpu_process_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

double bench_cpu_thread_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

double bench_cpu_pid_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int bench_parse_list(const char *s, uint32_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > 1000000)
            bench_die("bad number list '%s'", s);
        out[n++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            bench_die("bad number list near '%s'", end);
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_max(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] > m)
            m = v[i];
    return m;
}

void bench_print_command(int argc, char **argv)
{
    printf("reproduce:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
}

int bench_in_child(void (*fn)(void *arg, void *out), void *arg, void *out, size_t size)
{
    int p[2];
    if (pipe(p) != 0)
        bench_die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        close(p[0]);
        fn(arg, out);
        _exit(write(p[1], out, size) == (ssize_t)size ? 0 : 1);
    }
    close(p[1]);
    memset(out, 0, size);
    size_t got = 0;
    ssize_t n;
    while (got < size && (n = read(p[0], (char *)out + got, size - got)) > 0)
        got += (size_t)n;
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == size && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static char cert_dir[64];

static void remove_cert_dir(void)
{
    char p[128];
    const char *names[] = {"cert.pem", "key.pem", "openssl.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", cert_dir, names[i]);
        unlink(p);
    }
    rmdir(cert_dir);
}

void bench_make_cert(char *cert, size_t cert_len, char *key, size_t key_len)
{
    snprintf(cert_dir, sizeof cert_dir, "/tmp/steno-bench-XXXXXX");
    if (!mkdtemp(cert_dir))
        bench_die("mkdtemp: %s", strerror(errno));
    atexit(remove_cert_dir);
    snprintf(cert, cert_len, "%s/cert.pem", cert_dir);
    snprintf(key, key_len, "%s/key.pem", cert_dir);
    char log[128];
    snprintf(log, sizeof log, "%s/openssl.log", cert_dir);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("openssl", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
               /* mbedTLS 2.28 matches hosts against DNS names only */
               "-addext", "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1", "-keyout", key, "-out", cert,
               (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("openssl req failed (is the openssl command installed? see %s)", log);
}

void bench_server_use_tls(bench_server *srv)
{
    snprintf(srv->url, sizeof srv->url, "wss://127.0.0.1:%d/v1/listen", srv->port);
}
