/* local_server: start a steno-server (pocketsphinx engine) for --local, and stop it. */
#ifndef STENO_SAMPLES_LOCAL_SERVER_H
#define STENO_SAMPLES_LOCAL_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct local_server {
    pid_t pid;
    char url[128];
} local_server;

/*
 * Looks for steno-server in $STENO_SERVER, beside this program's build
 * directory (../tools/steno-server) and on PATH, starts it on a free
 * loopback port in its own process group (so the terminal's Ctrl-C reaches
 * only the CLI, which still needs the server to drain), and waits for its
 * "listening" line. Returns 0, or -1 with a message in err.
 */
int local_server_start(local_server *s, const char *argv0, char *err, size_t errlen);
/* Terminates and reaps it; async-signal-safe when `wait` is 0. */
void local_server_stop(local_server *s, int wait);

#endif
