/* harness: what every resilience test needs — witnesses, control APIs, audio, events, accounting.
 */
#ifndef STENO_TESTS_RESILIENCE_HARNESS_H
#define STENO_TESTS_RESILIENCE_HARNESS_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steno/steno.h"

/*
 * The resilience tests drive the public SDK against two independent
 * witnesses that share no code with it: steno-server (a Deepgram-compatible
 * server whose null engine names the exact sample span and checksum of every
 * final, and whose control API records every connection and injects faults)
 * and steno-chaos (a fault-injecting TCP proxy). Both run as child processes
 * on free loopback ports. A test awaits conditions on the events the session
 * reports (mutex + condvar, with deadlines), never a fixed sleep, and at the
 * end proves from the finals and the server's records that every sample the
 * application wrote was transcribed exactly once, in order, or reported
 * dropped.
 */

/* ---- failing ---- */

/* Prints file:line and the message, stops the witnesses, exits 1. */
void res_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define RES_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            res_fail(__FILE__, __LINE__, "check failed: " #cond ": " __VA_ARGS__);                 \
    } while (0)
#define RES_SKIP 77

/* Call first: names the test in log lines, installs the exit and signal handlers. */
void res_init(const char *test_name);
/* A log line on stdout, prefixed with the seconds since res_init. */
void res_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Monotonic milliseconds. */
uint64_t res_now_ms(void);
/* Wall-clock seconds since the epoch, comparable to the server's record times. */
double res_wall_s(void);
/* The environment variable, or exits with a message when it is unset. */
const char *res_env_required(const char *name);
/* Scale for sanitizer builds: RES_SLOW (default 1) multiplies generous deadlines. */
uint32_t res_slow(void);

/* ---- witnesses ---- */

typedef struct res_proc {
    pid_t pid;
    int port;         /* the data port: /v1/listen, or the proxy's listening port */
    int control_port; /* the HTTP control API */
    int out_fd;       /* the read end of its stdout, kept open so late writes never fail */
    char line[512];   /* the first stdout line */
} res_proc;

/* Starts steno-server ($STENO_SERVER) on free ports with extra arguments (NULL-terminated,
 * may be NULL); returns once it printed its first line. Must be called before any SDK thread
 * exists (fork in a threaded process is not safe under TSan). */
void res_server_start(res_proc *p, const char *const *extra);
/* Starts steno-chaos ($STENO_CHAOS) forwarding to 127.0.0.1:upstream_port. */
void res_chaos_start(res_proc *p, int upstream_port);
/* SIGTERM, then waits for the exit (SIGKILL after 5 s). Idempotent. */
void res_proc_stop(res_proc *p);

/* ---- HTTP control APIs (one request per connection, JSON bodies) ---- */

/* Sends one request to 127.0.0.1:port; returns the parsed JSON body (NULL when the body is
 * not JSON) and the status in *status. Exits on transport errors. */
cJSON *res_http(int port, const char *method, const char *path, const char *body, int *status);
/* Like res_http but the status must be 2xx and the body JSON. */
cJSON *res_http_ok(int port, const char *method, const char *path, const char *body);
/* POST /faults on the server with a printf-formatted JSON body. */
void res_fault(const res_proc *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* POST /toxics on the proxy with a printf-formatted JSON body (name it to remove it later). */
void res_toxic_add(const res_proc *chaos, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void res_toxic_remove(const res_proc *chaos, const char *name);
/* The proxy connection id of the newest connection in state "open", or -1. */
int res_chaos_open_conn(const res_proc *chaos);
/* GET /connections on the server: the whole body; the array is its "connections". */
cJSON *res_server_records(const res_proc *srv);
/* Waits until the server reports no open connection (deadline ms); false on timeout. */
bool res_server_wait_idle(const res_proc *srv, uint32_t timeout_ms);
/* The record with this request id in a res_server_records() body, or NULL. */
const cJSON *res_record_by_rid(const cJSON *records, const char *rid);
/* Number field of a JSON object, or def when absent / not a number. */
double res_jnum(const cJSON *o, const char *key, double def);
const char *res_jstr(const cJSON *o, const char *key); /* "" when absent */

/* ---- audio ---- */

#define RES_FNV_INIT 0xcbf29ce484222325ull
uint64_t res_fnv1a64(uint64_t h, const void *p, size_t n);
/* A deterministic, non-repeating test signal: sample i of stream `seed`. */
int16_t res_pattern_sample(uint32_t seed, uint64_t i);
/* Fills out[0..n) with samples first..first+n of stream seed. */
void res_pattern(uint32_t seed, uint64_t first, size_t n, int16_t *out);
/* Loads a mono 16-bit WAV (libsndfile); exits on error. *pcm is malloc'ed. */
void res_wav_load(const char *path, int16_t **pcm, size_t *frames, uint32_t *rate);

/*
 * A capture thread: writes pcm[0..frames) into the session in pieces of piece_frames at
 * `speed` times real time (0 = as fast as possible), like an audio callback would. It stops
 * early when res_producer_stop() is called. The session must outlive the thread.
 */
typedef struct res_producer {
    steno_session *s;
    const int16_t *pcm;
    size_t frames, piece_frames;
    uint32_t rate;
    double speed;
    pthread_t th;
    int started;
    _Atomic size_t written; /* frames handed to steno_session_write so far */
    _Atomic int stop;
    _Atomic int done;
    _Atomic uint64_t full_returns; /* STENO_ERR_FULL results */
    _Atomic int bad_status;        /* first unexpected status, 0 if none */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} res_producer;
void res_producer_start(res_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                        uint32_t rate, size_t piece_frames, double speed);
/* Waits for the end (or a stop); returns the frames written. */
size_t res_producer_join(res_producer *p);
void res_producer_stop(res_producer *p);
/* Frames written so far. */
size_t res_producer_written(res_producer *p);
/* Waits until at least `frames` were written; false on timeout. */
bool res_producer_wait(res_producer *p, size_t frames, uint32_t timeout_ms);

/* ---- events ---- */

typedef struct res_ev {
    steno_event_type type;
    uint64_t seq;
    uint64_t t_ms; /* res_now_ms() at arrival */
    double wall;   /* res_wall_s() at arrival */
    /* TRANSCRIPT */
    int is_final, from_finalize;
    double start, end;
    uint64_t first_sample, end_sample;
    char *text;
    /* CONNECTING / RECONNECTING */
    uint32_t attempt, delay_ms;
    steno_status cause;
    int http_status, close_code;
    char *message;
    /* CONNECTED / RECONNECTED */
    uint32_t attempts, downtime_ms, replayed_chunks;
    char *request_id;
    /* AUDIO_DROPPED */
    uint64_t drop_first, drop_last, drop_samples;
    int producer_side;
    /* FAILED / CLOSED */
    steno_status status;
    uint64_t unfinalized;
} res_ev;

typedef struct res_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    res_ev *ev;
    size_t n, cap;
    char name[32];
    int quiet;       /* 1: do not log state events (many sessions) */
    uint64_t acked;  /* max end_sample of finals so far */
    uint64_t finals; /* non-empty finals */
    int terminal;    /* CLOSED or FAILED seen */
    int order_error; /* seq not increasing by 1 */
    uint64_t last_seq;
} res_collector;

void res_collector_init(res_collector *c, const char *name);
void res_collector_free(res_collector *c);
/* The session's on_event callback; user = the collector. */
void res_on_event(void *user, const steno_event *ev);

/* Waits (deadline in ms) until pred(c, arg) holds; pred runs with the lock held. */
bool res_wait(res_collector *c, bool (*pred)(res_collector *, void *), void *arg,
              uint32_t timeout_ms);
/* Waits until at least n events of type were collected; gives up early once the session
 * ended (CLOSED/FAILED) without them. */
bool res_wait_type(res_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms);
/* Waits until finals acknowledged audio up to at least `frames` (or the session ended). */
bool res_wait_acked(res_collector *c, uint64_t frames, uint32_t timeout_ms);
size_t res_count(res_collector *c, steno_event_type type);
/* Index of the first event of type at or after index from, or (size_t)-1 (lock held or after
 * the session ended). */
size_t res_find(const res_collector *c, steno_event_type type, size_t from);

/* ---- accounting ---- */

typedef struct res_accounting {
    uint64_t written;   /* frames the application wrote */
    uint64_t covered;   /* frames covered by exactly one final */
    uint64_t dropped;   /* frames reported by AUDIO_DROPPED */
    size_t finals;      /* non-empty finals */
    size_t connections; /* connections that received audio */
    size_t drop_events;
    uint64_t replayed; /* frames sent more than once (sum over connections of overlap) */
} res_accounting;

/*
 * Proves invariants 1-3 for one ended session from its events, the audio it was given
 * (pcm[0..written)), the chunk size and the server's records (a res_server_records() body):
 *  - every final names (null engine) a span whose checksum matches the written audio at the
 *    session samples [first_sample, end_sample) the SDK mapped it to, and whose connection
 *    offsets agree with one base per connection;
 *  - finals and AUDIO_DROPPED ranges are disjoint and tile [0, written) exactly;
 *  - each connection's audio (server record by request id: sample count and checksum of all
 *    its bytes) is a contiguous slice of the written stream (skipping dropped ranges) that
 *    starts exactly at the first chunk not yet acknowledged when it was established;
 *  - transcript times are monotonic, agree with the sample ranges, and no interim regresses
 *    behind a final.
 * Returns true, or false with the reason in err.
 */
bool res_check_accounting(res_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                          uint32_t chunk_frames, const cJSON *records, res_accounting *out,
                          char *err, size_t errlen);
/* The same for a recognising engine (finals name words, not spans): only the per-connection
 * slices, the replay start and the timeline checks; no tiling. */
bool res_check_connections(res_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                           uint32_t chunk_frames, const cJSON *records, res_accounting *out,
                           char *err, size_t errlen);

/* ---- sessions ---- */

/* Defaults for the tests: ws://127.0.0.1:port/v1/listen, allow_no_auth, 16 kHz mono, on_event
 * = res_on_event with the collector, quick liveness (ping 250 ms, dead after 1500 ms,
 * healthy after 300 ms), retry base 100 ms cap 1000 ms. */
void res_session_defaults(steno_session_config *sc, char *url, size_t url_len, int port,
                          res_collector *col);
/* Lets the session send at up to `speed` x real time (send_speed_permille) instead of the
 * provider's 1.25x, so long streams take less wall time; returns speed. */
double res_fast_send(steno_session_config *sc, double speed);
/* A client with its log lines routed to stderr at WARN (or RES_LOG=info|debug). */
steno_client *res_client_open(steno_client_config *cc);
/* Reads one metric (first sample line with that name and optional label match). */
double res_metric(steno_client *c, const char *name, const char *label);

/* ---- word error rate ---- */

/* Lower-case words of text, punctuation stripped; returns the count, words in *out (free
 * with res_words_free). */
size_t res_words(const char *text, char ***out);
void res_words_free(char **w, size_t n);
/* Levenshtein distance over words / reference length, in percent. */
double res_wer(char **ref, size_t nref, char **hyp, size_t nhyp);

#endif
