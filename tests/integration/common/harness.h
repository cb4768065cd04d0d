/* harness: what every C integration test needs — failing, logging, witness processes and their
 * HTTP control APIs; includes the rest of the shared harness. */
#ifndef STENO_TESTS_COMMON_HARNESS_H
#define STENO_TESTS_COMMON_HARNESS_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/*
 * The integration tests drive the public SDK against two independent
 * witnesses that share no code with it: steno-server (a Deepgram-compatible
 * server whose null engine names the exact sample span and checksum of every
 * final, and whose control API records every connection and injects faults)
 * and steno-chaos (a fault-injecting TCP proxy). Both run as child processes
 * on free loopback ports and never outlive the test: not when a check fails,
 * not when the test is killed by its timeout. A test awaits conditions on
 * the events a session reports (events.h: mutex + condvar, with deadlines),
 * never a fixed sleep, and proves from the finals and the server's records
 * that every sample written was transcribed exactly once, in order, or
 * reported dropped (accounting.h).
 *
 * Environment: STENO_SERVER and STENO_CHAOS name the witnesses (meson sets
 * them); RES_SLOW multiplies generous deadlines, RES_LOG=info|debug raises
 * the SDK's log level, RES_VERBOSE logs every transcript.
 */

/* ---- failing, logging, clocks ---- */

/* Prints file:line and the message, stops the witnesses, exits 1. Any thread may call it. */
void h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* The same for a failed H_CHECK: names the condition too. */
void h_fail_check(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
#define H_CHECK(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            h_fail_check(__FILE__, __LINE__, #cond, __VA_ARGS__);                                  \
    } while (0)
/* For checkers that report instead of exiting (bool f(..., char *err, size_t errlen)): write
 * the reason into err, set the local `ok` to false and jump to the function's `out:` label. */
#define H_ERR_OUT(...)                                                                             \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        ok = false;                                                                                \
        goto out;                                                                                  \
    } while (0)
/* The exit status meson counts as a skip. */
#define H_SKIP 77

/* Names the test in log lines (optional; "test" otherwise). */
void h_init(const char *test_name);
/* A log line on stdout, prefixed with the test's name and the seconds since it started. */
void h_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Monotonic milliseconds. */
uint64_t h_now_ms(void);
/* Seconds from h_init to t (an h_now_ms() value): the clock of h_log's lines. */
double h_log_time(uint64_t t);
/* Wall-clock seconds since the epoch, comparable to the server's record times. */
double h_wall_s(void);
/* The CLOCK_REALTIME instant timeout_ms from now, for pthread_cond_timedwait. */
void h_deadline_ts(struct timespec *ts, uint32_t timeout_ms);
/* The environment variable, or exits with a message when it is unset. */
const char *h_env_required(const char *name);
/* Scale for sanitizer builds: RES_SLOW (default 1). */
uint32_t h_slow(void);

/* ---- witnesses ---- */

/* A witness child process: steno-server, or steno-chaos in front of one. */
typedef struct h_server {
    pid_t pid;
    int port;         /* the data port: /v1/listen, or the proxy's listening port */
    int control_port; /* the HTTP control API */
    int out_fd;       /* the read end of its stdout, kept open so late writes never fail */
    char url[128];    /* ws://127.0.0.1:PORT/v1/listen */
    char line[512];   /* the first stdout line */
} h_server;

/* Starts steno-server ($STENO_SERVER; null engine unless the extra arguments say otherwise)
 * on free ports with extra arguments (NULL-terminated, may be NULL); returns once it printed
 * its first line. Call it before any SDK thread exists (fork in a threaded process is not
 * safe under TSan). */
void h_server_start(h_server *p, const char *const *extra);
/* Starts steno-chaos ($STENO_CHAOS) forwarding to 127.0.0.1:upstream_port. */
void h_chaos_start(h_server *p, int upstream_port);
/* SIGTERM, then waits for the exit (SIGKILL after 5 s). Idempotent. */
void h_server_stop(h_server *p);
/* Stops every witness, logs PASS and returns 0: the last line of a passing test. */
int h_pass(void);

/* ---- HTTP control APIs (one request per connection, JSON bodies) ---- */

/* Sends one request to 127.0.0.1:port; returns the status and the body (malloc'd,
 * NUL-terminated, chunked encoding undone). Exits on transport errors. */
int h_http_raw(int port, const char *method, const char *path, const char *body, char **out);
/* The same on a witness's control API, the body copied (truncated) into out. */
int h_control(const h_server *p, const char *method, const char *path, const char *body, char *out,
              size_t outlen);
/* The parsed JSON body (NULL when it is not JSON) and the status in *status. */
cJSON *h_http(int port, const char *method, const char *path, const char *body, int *status);
/* Like h_http but the status must be 2xx and the body JSON. */
cJSON *h_http_ok(int port, const char *method, const char *path, const char *body);
/* POST /faults on the server with a printf-formatted JSON body; it must be accepted. */
void h_fault(const h_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* POST /toxics on the proxy with a printf-formatted JSON body (name it to remove it later). */
void h_toxic_add(const h_server *chaos, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void h_toxic_remove(const h_server *chaos, const char *name);
/* POST /reset-all on the proxy: every connection through it is reset. */
void h_chaos_reset_all(const h_server *chaos);
/* The proxy connection id of the newest connection in state "open", or -1. */
int h_chaos_open_conn(const h_server *chaos);
/* GET /connections on the server: the whole body; the array is its "connections". */
cJSON *h_server_records(const h_server *srv);
/* The number of connection records the server holds. */
int h_server_record_count(const h_server *srv);
/* Waits until the server reports no open connection (deadline ms); false on timeout. */
bool h_server_wait_idle(const h_server *srv, uint32_t timeout_ms);
/* The record with this request id in an h_server_records() body, or NULL. */
const cJSON *h_record_by_rid(const cJSON *records, const char *rid);
/* Number field of a JSON object, or def when absent / not a number. */
double h_jnum(const cJSON *o, const char *key, double def);
const char *h_jstr(const cJSON *o, const char *key); /* "" when absent */

#include "accounting.h"
#include "audio.h"
#include "compound.h"
#include "events.h"
#include "librivox.h"
#include "sessions.h"
#include "wer.h"

#endif
