/* tls_harness: what the TLS tests share — throwaway certificates, a wss:// steno-server, events.
 */
#ifndef STENO_TESTS_TLS_HARNESS_H
#define STENO_TESTS_TLS_HARNESS_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steno/steno.h"

/*
 * The TLS tests drive the public SDK over real TLS (lws + OpenSSL) against
 * steno-server started with --tls-cert/--tls-key. Every certificate is made
 * at test time with the openssl command into a private temporary directory
 * that is removed at exit: nothing is checked in, nothing expires in the
 * repository. Tests await events (mutex + condvar with deadlines), never a
 * fixed sleep.
 */

/* ---- failing and logging ---- */

#define TH_SKIP 77

void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define TH_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            th_fail(__FILE__, __LINE__, "check failed: " #cond ": " __VA_ARGS__);                  \
    } while (0)

/* Call first: names the test in log lines, installs the exit and signal handlers. */
void th_init(const char *test_name);
void th_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t th_now_ms(void);

/* ---- certificates (openssl CLI; skips the test with 77 when it is missing) ---- */

typedef struct th_certs {
    char dir[128];
    char ca[192];        /* the test CA the client trusts (PEM) */
    char ca_der[192];    /* the same CA certificate in DER (binary), not PEM */
    char other_ca[192];  /* a second CA nobody trusts */
    char good_cert[192]; /* signed by ca: IP 127.0.0.1 and DNS localhost */
    char good_key[192];
    char foreign_cert[192]; /* the same names, signed by other_ca */
    char foreign_key[192];
    char expired_cert[192]; /* signed by ca, the right names, valid 2020-01-01..02 */
    char expired_key[192];
    char wrong_cert[192]; /* signed by ca for DNS wrong.example only */
    char wrong_key[192];
} th_certs;

/* Makes all of them in a fresh temporary directory, removed at exit. Call before any SDK
 * thread exists (it forks). */
void th_certs_make(th_certs *c);
/* Writes `len` bytes of data to dir/name; returns the path in path. */
void th_write_file(const th_certs *c, const char *name, const void *data, size_t len, char *path,
                   size_t pathlen);

/* ---- the witness: steno-server (null engine) serving wss:// ---- */

typedef struct th_server {
    pid_t pid;
    int port;
    int control_port;
    int out_fd;
    char line[256];
} th_server;

/* Starts $STENO_SERVER --tls-cert cert --tls-key key on free ports; returns once it printed its
 * ports. Call before any SDK thread exists (fork under TSan). */
void th_server_start(th_server *srv, const char *cert, const char *key);
void th_server_stop(th_server *srv);

/* One plain-HTTP request to the control API; returns the parsed JSON body (exits when the status
 * is not 2xx or the body is not JSON). */
cJSON *th_control(const th_server *srv, const char *method, const char *path, const char *body);
double th_jnum(const cJSON *o, const char *key, double def);
const char *th_jstr(const cJSON *o, const char *key); /* "" when absent */

/* ---- audio ---- */

#define TH_RATE 16000u
#define TH_FNV_INIT 0xcbf29ce484222325ull
uint64_t th_fnv1a64(uint64_t h, const void *p, size_t n);
/* Deterministic, non-repeating audio: fills out[0..n) with samples 0..n. */
void th_pattern(int16_t *out, size_t n);

/* A capture thread writing pcm[0..frames) in 20 ms pieces at `speed` x real time. */
typedef struct th_producer {
    steno_session *s;
    const int16_t *pcm;
    size_t frames;
    double speed;
    pthread_t th;
    _Atomic size_t written;
    _Atomic int bad_status; /* the first status other than STENO_OK, 0 if none */
} th_producer;
void th_producer_start(th_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                       double speed);
/* Waits for the end; returns the frames written. */
size_t th_producer_join(th_producer *p);

/* ---- sessions and events ---- */

typedef struct th_ev {
    steno_event_type type;
    steno_status status; /* FAILED / CLOSED status, RECONNECTING cause */
    int is_final;
    uint32_t attempt;
    uint32_t replayed_chunks;
    uint64_t first_sample, end_sample;
    int http_status;
    char text[400]; /* transcript, or the FAILED / RECONNECTING message */
} th_ev;

typedef struct th_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    th_ev *ev;
    size_t n, cap;
    uint64_t acked; /* max end_sample of the finals so far */
    int terminal;   /* CLOSED or FAILED seen */
} th_collector;

void th_collector_init(th_collector *c);
void th_collector_free(th_collector *c);
/* The session's on_event callback (user = the collector). */
void th_on_event(void *user, const steno_event *ev);
/* Waits until there are at least n events of type (false on timeout or when the session ended
 * without them). */
bool th_wait_type(th_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms);
/* Waits until finals acknowledged at least `frames` (false on timeout or session end). */
bool th_wait_acked(th_collector *c, uint64_t frames, uint32_t timeout_ms);
/* Waits for CLOSED or FAILED. */
bool th_wait_terminal(th_collector *c, uint32_t timeout_ms);
size_t th_count(th_collector *c, steno_event_type type);

/* A client that trusts ca_file (NULL: the system store), its log lines on stderr. */
steno_client *th_client_open(const char *ca_file);
/* Session defaults for the tests: url, no auth, 16 kHz mono, events to col, 4x send pacing,
 * quick retries and liveness. */
void th_session_defaults(steno_session_config *sc, const char *url, th_collector *col);

/*
 * Proves, for an ended session, that every written sample was transcribed exactly once: the
 * non-empty finals tile [0, written) in order; each names (null engine: "span A-B fnv1a64=H",
 * offsets in its connection's audio) a span whose checksum equals that of the written audio at
 * the session samples the SDK mapped it to, with one offset base per connection. The bases go to
 * bases[0..*nconn) (connections in order, -1 for one without finals). Returns false with the
 * reason in err.
 */
bool th_check_coverage(th_collector *c, const int16_t *pcm, uint64_t written, int64_t *bases,
                       size_t *nconn, char *err, size_t errlen);

#endif
