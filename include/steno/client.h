/* steno_client: one network thread and connection pool shared by many sessions. */
#ifndef STENO_CLIENT_H
#define STENO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "steno/alloc.h"
#include "steno/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A client is like curl's multi handle: it owns one libwebsockets context and
 * the thread that services it, and every session opened on it shares that
 * thread. It also owns what must be shared for an outage to stay polite:
 *
 *  - a circuit breaker per endpoint (scheme://host:port/path): after
 *    repeated failures the breaker opens; while it is open sessions wait,
 *    and when it half-opens ONE session probes while the others wait on the
 *    probe's outcome instead of each dialing;
 *  - a retry budget (token bucket) for the whole client: each retry after a
 *    failed attempt costs tokens, each success pays some back; when the
 *    bucket is empty, sessions fail with STENO_ERR_BUDGET_EXHAUSTED rather
 *    than retry forever in a storm;
 *  - a limit on concurrent connection attempts (TCP+TLS+WebSocket
 *    handshakes in flight); more wait in line.
 *
 * Thread safety: every steno_client_* call may be made from any thread,
 * except steno_client_destroy (see there).
 *
 * Sharing the process with other libwebsockets users: libwebsockets 4.1
 * keeps its OpenSSL bookkeeping indices in process-wide variables that every
 * context created with LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT reallocates.
 * steno asks for that global init only for the first client of the process,
 * so any number of clients coexist and free everything. An application that
 * creates its own libwebsockets contexts with that option while steno
 * clients exist makes libwebsockets lose track of those clients' TLS state:
 * about 350 KB (the CA store) stays allocated per client, and a TLS
 * handshake in progress at that moment can fail its certificate check as if
 * the certificate were untrusted.
 */
typedef struct steno_client steno_client;

/* Log levels for steno_client_config.log_fn. */
typedef enum steno_log_level {
    STENO_LOG_ERROR = 1,
    STENO_LOG_WARN = 2,
    STENO_LOG_INFO = 3,
    STENO_LOG_DEBUG = 4,
} steno_log_level;

/* Receives steno's diagnostic lines (and libwebsockets' at the same level). Called on
 * any steno thread; must be thread-safe and must not call back into steno. A line about one
 * session starts "session N: ", N being 1 for the client's first steno_session_open, 2 for
 * the second, and so on. */
typedef void (*steno_log_fn)(void *user, steno_log_level level, const char *line);

/*
 * Client configuration. Every field's zero value means "the default" (listed
 * in brackets), so `steno_client_config cfg = {0};` or designated
 * initialisers work; steno_client_config_init() fills the same defaults in
 * explicitly.
 */
typedef struct steno_client_config {
    /* Allocator for everything steno allocates for this client and its
     * sessions [malloc/free]. libwebsockets and cJSON keep their own
     * process-wide allocators (changing those would affect the host app). */
    steno_allocator allocator;

    /* PEM file of CA certificates trusted for wss:// endpoints [the system
     * default trust store]. When set, only its CAs are trusted: it replaces
     * the system store (like curl --cacert). Copied at open; a file without a
     * PEM certificate is STENO_ERR_CONFIG. */
    const char *ca_file;

    /* Connection attempts (TCP + TLS + WebSocket handshake) in flight at
     * once across all sessions; more wait in line [16]. */
    uint32_t max_concurrent_connects;

    /* Backfill connections (parallel catch-up after an outage, see
     * steno_session_config.max_backfill_connections) open at once across all
     * sessions; sessions beyond it replay their backlog on their live
     * connection instead [64]. */
    uint32_t max_backfill_connections;

    /* Circuit breaker per endpoint: consecutive connect failures that open
     * it [5], and how long it stays open before one probe is let through
     * [2000 ms; it doubles on the first failed probe and stays there: one probe
     * per 4 s by default while the endpoint is down]. */
    uint32_t breaker_failure_threshold;
    uint32_t breaker_open_ms;

    /* Retry budget per client (token bucket, as aws-c-io's standard retry
     * strategy): capacity in tokens [500]; a retry after a network failure
     * or timeout leases 10 tokens, after throttling or a server error 5; a
     * connection that then succeeds returns its lease, one that needed no
     * retry adds 1. Reconnecting after a HEALTHY connection dropped is free
     * (a new stream, not a retry: one server restart seen by hundreds of
     * sessions must not empty the bucket). An empty bucket fails the
     * session that needs a retry (STENO_ERR_BUDGET_EXHAUSTED), unless the
     * endpoint's circuit breaker is open: that session then waits for the
     * breaker's probe, which already stops it retrying. Set
     * retry_budget_disable to 1 to turn the budget off. */
    uint32_t retry_budget_capacity;
    int retry_budget_disable;

    /* Diagnostics [none: steno never prints]. log_level is the most verbose
     * level delivered [STENO_LOG_WARN]. Note: libwebsockets' log level and
     * log sink are process-wide; a client with log_fn routes them to it,
     * a client without one silences libwebsockets' own logging. */
    steno_log_fn log_fn;
    void *log_user;
    steno_log_level log_level;
} steno_client_config;

/* Fills *cfg with the defaults (all documented above). */
void steno_client_config_init(steno_client_config *cfg);

/*
 * Creates a client and starts its network thread. On failure *out is NULL,
 * and when err is not NULL a message saying what to fix is written to it
 * (NUL-terminated, truncated to errlen). cfg may be NULL for all defaults.
 * Errors: STENO_ERR_INVALID_ARG, STENO_ERR_CONFIG (e.g. an unreadable
 * ca_file), STENO_ERR_NOMEM, STENO_ERR_INTERNAL (lws context or thread
 * creation failed).
 */
steno_status steno_client_open(const steno_client_config *cfg, steno_client **out, char *err,
                               size_t errlen);

/*
 * Destroys every session still open on the client (as steno_session_destroy
 * would: no drain), stops the network thread and frees everything. NULL is a
 * no-op. Call it from an application thread, never from an event callback,
 * and not concurrently with other calls on the same client or its sessions.
 */
void steno_client_destroy(steno_client *c);

/*
 * Writes the client's metrics, and those of its sessions, in the Prometheus
 * text exposition format (version 0.0.4) into buf (NUL-terminated).
 * *needed (when not NULL) receives the full length without the NUL. Returns
 * STENO_ERR_TOO_LARGE when len is too small (buf then holds nothing useful;
 * retry with *needed + 1 bytes or more; values can change between the
 * two calls, so loop while it says STENO_ERR_TOO_LARGE). buf may be NULL when len is 0.
 *
 * Metric families (all prefixed steno_), summed over the client's sessions:
 * connect_attempts_total, connect_successes_total,
 * connect_failures_total{class="retry"|"retry_after"|"fatal_auth"|
 * "fatal_request"|"fatal_protocol"}, disconnects_total,
 * dead_connections_total, reconnects_total, reconnect_duration_seconds
 * (histogram: outage from losing a connection to the next handshake),
 * chunks_buffered, chunks_sent_total, chunks_replayed_total,
 * chunks_dropped_total{side="producer"|"evicted"}, samples_written_total,
 * samples_acked_total, bytes_sent_total, bytes_received_total,
 * breaker_state{endpoint=...} (0 closed, 1 open, 2 half-open),
 * breaker_waits_total, rate_limit_waits_total, pacing_waits_total,
 * budget_tokens, budget_exhausted_total, parse_errors_total,
 * sessions_active, transcripts_final_total, transcripts_interim_total,
 * last_message_timestamp_seconds, last_message_age_seconds (-1: none yet).
 * One session's own counters: steno_session_metrics_text() or
 * steno_session_stats_get().
 */
steno_status steno_client_metrics_text(steno_client *c, char *buf, size_t len, size_t *needed);

/* The library version string ("0.1.0"). */
const char *steno_version(void);

#ifdef __cplusplus
}
#endif

#endif /* STENO_CLIENT_H */
