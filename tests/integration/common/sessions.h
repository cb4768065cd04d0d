/* sessions: the SDK set-up the integration tests share — clients, session configurations, one
 * streamed session from open to close, metrics. */
#ifndef STENO_TESTS_COMMON_SESSIONS_H
#define STENO_TESTS_COMMON_SESSIONS_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "accounting.h"
#include "audio.h"
#include "events.h"
#include "steno/steno.h"

/* Defaults for the tests: ws://127.0.0.1:port/v1/listen, allow_no_auth, 16 kHz mono, 100 ms
 * chunks, on_event = h_on_event with the collector, quick liveness (ping 250 ms, dead after
 * 1500 ms, healthy after 300 ms), retry base 100 ms cap 1000 ms. */
void h_session_defaults(steno_session_config *sc, char *url, size_t url_len, int port,
                        h_collector *col);
/* Lets the session send at up to `speed` x real time (send_speed_permille) instead of the
 * provider's 1.25x, so long streams take less wall time; returns speed. */
double h_fast_send(steno_session_config *sc, double speed);
/* A client with its log lines routed to stderr at WARN (or RES_LOG=info|debug). */
steno_client *h_client_open(steno_client_config *cc);
/* The clients' log_fn: one SDK log line on stderr, named for the test. */
void h_sdk_log(void *user, steno_log_level level, const char *line);
/* Watches SDK log lines for a secret: h_leak_log is a log_fn whose user is a h_leak_watch; it
 * counts every line and those that hold the secret (printed as LEAK), and passes warnings and
 * errors on to stderr. */
typedef struct h_leak_watch {
    const char *secret;
    atomic_int lines, leaks;
} h_leak_watch;
void h_leak_log(void *user, steno_log_level level, const char *line);
/* Reads one metric (first sample line with that name and optional label match). */
double h_metric(steno_client *c, const char *name, const char *label);

/*
 * One session under test: its configuration, the events it reports and the
 * capture thread that feeds it. h_run_init fills sc with h_session_defaults
 * (events into col); the test adjusts sc, then opens.
 */
typedef struct h_run {
    steno_session_config sc;
    char url[128];
    h_collector col;
    steno_session *s;
    h_producer prod;
} h_run;

void h_run_init(h_run *r, const char *name, int port);
/* Opens the session with r->sc; exits when it cannot. */
void h_run_open(h_run *r, steno_client *cl);
/* Starts the capture thread: pcm[0..frames) in 20 ms pieces at speed x real time (pcm must
 * outlive the session). */
void h_run_stream(h_run *r, const int16_t *pcm, size_t frames, double speed);
/* Closes the session, which must end cleanly (STENO_OK) within timeout_ms. */
void h_run_close(h_run *r, uint32_t timeout_ms);
/* h_check_accounting for this session's chunk size; exits with the reason when it fails. */
void h_run_check_accounting(h_run *r, const int16_t *pcm, uint64_t written, const cJSON *records,
                            h_accounting *out);
/* Destroys the session and frees its events. */
void h_run_free(h_run *r);

#endif
