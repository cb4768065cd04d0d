/* harness: start a steno-server for an engine test, talk to its control API, check audio. */
#ifndef STENO_TEST_ENGINE_HARNESS_H
#define STENO_TEST_ENGINE_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

/*
 * A steno-server child process (STENO_SERVER names the binary). The server
 * prints "steno-server listening on HOST:PORT control 127.0.0.1:CPORT" as its
 * first stdout line once it accepts connections.
 */
typedef struct h_server {
    pid_t pid;
    int port;
    int control_port;
    char url[128]; /* ws://127.0.0.1:PORT/v1/listen */
} h_server;

/* Starts it with extra arguments (NULL-terminated list, may be NULL). Exits the test on error. */
void h_server_start(h_server *srv, const char *const *extra_args);
void h_server_stop(h_server *srv);

/* HTTP request to the control API; returns the status and writes the body (NUL-terminated). */
int h_control(const h_server *srv, const char *method, const char *path, const char *body,
              char *out, size_t outlen);

/* FNV-1a 64, as the null engine hashes each span's bytes. */
uint64_t h_fnv1a64(const void *data, size_t len);

/* Deterministic test audio: sample i of the stream (any i), never all-zero. */
int16_t h_sample(uint64_t i);

/* Monotonic milliseconds. */
uint64_t h_now_ms(void);

#define H_CHECK(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
