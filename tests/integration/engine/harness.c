/* harness: start a steno-server for an engine test, talk to its control API, check audio. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A failing check exits the test: the server must not outlive it (meson would wait for it). */
static pid_t started[8];

static void stop_all(void)
{
    for (int i = 0; i < 8; i++)
        if (started[i] > 0) {
            kill(started[i], SIGTERM);
            waitpid(started[i], NULL, 0);
            started[i] = 0;
        }
}

void h_server_start(h_server *srv, const char *const *extra)
{
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(stop_all);
    }
    const char *exe = getenv("STENO_SERVER");
    if (!exe || access(exe, X_OK) != 0) {
        fprintf(stderr, "STENO_SERVER must name the steno-server binary\n");
        exit(1);
    }
    int fds[2];
    H_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "--engine";
    argv[n++] = "null";
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    H_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    H_CHECK(f && fgets(line, sizeof line, f), "steno-server printed nothing");
    /* keep the pipe open (the server may print more); it is closed at exit */
    memset(srv, 0, sizeof *srv);
    srv->pid = pid;
    for (int i = 0; i < 8; i++)
        if (started[i] <= 0) {
            started[i] = pid;
            break;
        }
    H_CHECK(sscanf(line, "steno-server listening on %*[^:]:%d control %*[^:]:%d", &srv->port,
                   &srv->control_port) == 2,
            "unexpected first line: %s", line);
    snprintf(srv->url, sizeof srv->url, "ws://127.0.0.1:%d/v1/listen", srv->port);
}

void h_server_stop(h_server *srv)
{
    if (srv->pid > 0) {
        kill(srv->pid, SIGTERM);
        waitpid(srv->pid, NULL, 0);
        for (int i = 0; i < 8; i++)
            if (started[i] == srv->pid)
                started[i] = 0;
        srv->pid = 0;
    }
}

int h_control(const h_server *srv, const char *method, const char *path, const char *body,
              char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    H_CHECK(fd >= 0, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->control_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    H_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "control connect: %s",
            strerror(errno));
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    int rn = snprintf(req, sizeof req,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      method, path, blen, body ? body : "");
    H_CHECK(rn > 0 && (size_t)rn < sizeof req, "request too long");
    H_CHECK(write(fd, req, (size_t)rn) == rn, "control write");
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    H_CHECK(buf, "oom");
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    buf[len] = '\0';
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    if (out && outlen)
        snprintf(out, outlen, "%s", b ? b + 4 : "");
    free(buf);
    return status;
}

uint64_t h_fnv1a64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int16_t h_sample(uint64_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 29;
    return (int16_t)((x & 0x7fff) | 1);
}
