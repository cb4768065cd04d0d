/* local_server: start a steno-server (pocketsphinx engine) for --local, and stop it. */
#include "local_server.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int find_server(const char *argv0, char *path, size_t len)
{
    const char *env = getenv("STENO_SERVER");
    if (env && *env) {
        snprintf(path, len, "%s", env);
        return access(path, X_OK) == 0 ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *dir = dirname(self);
        /* the build tree (build/samples/ beside build/tools/), then an install's bindir */
        snprintf(path, len, "%s/../tools/steno-server", dir);
        if (access(path, X_OK) == 0)
            return 0;
        snprintf(path, len, "%s/steno-server", dir);
        if (access(path, X_OK) == 0)
            return 0;
    }
    const char *p = getenv("PATH");
    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t l = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(path, len, "%.*s/steno-server", (int)l, p);
        if (l && access(path, X_OK) == 0)
            return 0;
        p = colon ? colon + 1 : NULL;
    }
    (void)argv0;
    return -1;
}

int local_server_start(local_server *s, const char *argv0, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    char path[PATH_MAX + 32];
    if (find_server(argv0, path, sizeof path) != 0) {
        snprintf(err, errlen,
                 "--local needs steno-server: set STENO_SERVER to its path or put it on PATH");
        return -1;
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "--local: pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    char *args[] = {path, "--engine", "pocketsphinx", "--host", "127.0.0.1", "--port", "0", NULL};
    int rc = posix_spawn(&s->pid, path, &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        snprintf(err, errlen, "--local: cannot start %s: %s", path, strerror(rc));
        s->pid = 0;
        return -1;
    }
    /* "steno-server listening on HOST:PORT control HOST:CPORT"; loading the
     * recognizer's model takes a moment */
    char line[256];
    size_t used = 0;
    while (used < sizeof line - 1) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, 1, 30000) <= 0)
            break;
        ssize_t n = read(out[0], line + used, 1);
        if (n <= 0 || line[used] == '\n')
            break;
        used++;
    }
    line[used] = '\0';
    close(out[0]);
    char listen[96];
    if (sscanf(line, "steno-server listening on %95s", listen) != 1) {
        snprintf(err, errlen, "--local: %s did not start (said '%s')", path, line);
        local_server_stop(s, 1);
        return -1;
    }
    snprintf(s->url, sizeof s->url, "ws://%s/v1/listen", listen);
    return 0;
}

void local_server_stop(local_server *s, int wait)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    if (wait) {
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        s->pid = 0;
    }
}
