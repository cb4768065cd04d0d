/* classify: turn how a connection failed into what to do next (retry, wait, or fail). */
#ifndef STENO_CORE_CLASSIFY_H
#define STENO_CORE_CLASSIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "budget.h"
#include "steno/status.h"

/* Where in a connection's life the failure happened. */
typedef enum steno__conn_phase {
    STENO__PHASE_HANDSHAKE = 0, /* TCP/TLS/HTTP upgrade not yet complete */
    STENO__PHASE_OPEN,          /* streaming; we had not asked to close */
    STENO__PHASE_CLOSING,       /* we sent CloseStream / a close frame and await the end */
} steno__conn_phase;

/* How the TLS layer failed, if it did. */
typedef enum steno__tls_failure {
    STENO__TLS_OK = 0,      /* no TLS failure */
    STENO__TLS_INTERRUPTED, /* handshake cut by a reset/EOF/timeout: the network, retry */
    STENO__TLS_CERTIFICATE, /* verification failed (bad/expired cert, wrong name, no CA):
                               configuration, retrying cannot fix it: fatal */
} steno__tls_failure;

/* What to do about the failure. */
typedef enum steno__verdict {
    STENO__RETRY = 0,      /* reconnect following the backoff */
    STENO__RETRY_AFTER,    /* the server pushed back: reconnect no sooner than retry_after_ms
                              (when >= 0), counted as throttling */
    STENO__FATAL_AUTH,     /* credentials rejected: fail the session now */
    STENO__FATAL_REQUEST,  /* the request or its audio is invalid: fail now */
    STENO__FATAL_PROTOCOL, /* the peer does not speak the protocol we expect, or closed over
                              what we sent (1002/1003/1007, a 1008 policy violation): fail now */
    STENO__DONE,           /* not a failure: the close we asked for (phase CLOSING, 1000) */
} steno__verdict;

/*
 * Everything the shell knows about one failed or ended connection. Zero
 * (= {0}) means "not known / did not happen" for every field, so fill only
 * what applies.
 */
typedef struct steno__failure_info {
    steno__conn_phase phase;
    int http_status; /* handshake HTTP status; 0 = none (TCP/DNS failure or not
                        reached); 101 = upgraded */
    steno__tls_failure tls;
    const char *retry_after;    /* Retry-After header value, or NULL */
    int64_t now_unix;           /* wall clock (s since epoch) for HTTP-date Retry-After */
    int64_t now_unix_ms;        /* the same in ms, for a date's delay exact to the ms; 0 = not
                                   known: now_unix is used (up to 999 ms too long) */
    int close_code;             /* WebSocket close code; 0 = no close frame seen */
    const char *close_reason;   /* close frame reason text, or NULL */
    const char *provider_error; /* dg-error header / provider Error message or code, or NULL */
    bool connect_timeout;       /* our connect/handshake deadline passed */
    bool liveness_timeout;      /* the open connection went silent past dead_after_ms */
} steno__failure_info;

#define STENO__CAUSE_MAX 128

typedef struct steno__classification {
    steno__verdict verdict;
    steno_status status;                /* the error an app would see; STENO_OK for DONE */
    steno__failure_class failure_class; /* what a retry costs in the budget */
    int64_t retry_after_ms;             /* server pushback in ms; -1 = none */
    bool pacing; /* closed for sending audio faster than the provider accepts (steno-server's
                    1008 RATE-0000, AssemblyAI's 3007 rate): fatal on the live connection, whose
                    pace is the session's; a backfill connection retries its job */
    char cause[STENO__CAUSE_MAX]; /* short, human: "HTTP 503",
                                     "close 1011 NET-0001 (idle timeout)" */
} steno__classification;

/*
 * Pure and total: every input yields a verdict. Precedence: a certificate
 * failure, then the HTTP status (if the handshake got a non-101 answer),
 * then the close code, then an interrupted TLS handshake, then our own
 * timeouts, then the phase alone (no data: a dropped TCP connection, retry).
 * Both pointers must be non-NULL (otherwise out, if any, gets
 * FATAL_PROTOCOL / STENO_ERR_INVALID_ARG). The table and its sources are in
 * classify.c.
 */
void steno__classify(const steno__failure_info *in, steno__classification *out);

/* True for FATAL_AUTH, FATAL_REQUEST, FATAL_PROTOCOL. */
bool steno__verdict_is_fatal(steno__verdict v);

/* "retry", "retry_after", "fatal_auth", "fatal_request", "fatal_protocol", "done"; "unknown". */
const char *steno__verdict_name(steno__verdict v);

#endif /* STENO_CORE_CLASSIFY_H */
