/* backoff: how long to wait before the next reconnect attempt, and when to give up. */
#ifndef STENO_CORE_BACKOFF_H
#define STENO_CORE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "steno/status.h"

/*
 * The only source of randomness in the pure core: returns uniformly random
 * 64-bit values. The engine passes a real generator; tests pass a fixed
 * sequence so delays are exact.
 */
typedef uint64_t (*steno__rand_fn)(void *ctx);

/*
 * Defaults (steno__backoff_config_default): base 250 ms, cap 30 s,
 * multiplier 2.0, unlimited attempts, unlimited outage, Retry-After capped at
 * 60 s.
 */
typedef struct steno__backoff_config {
    uint64_t base_ms;            /* ceiling of the first jittered delay; > 0 */
    uint64_t cap_ms;             /* ceiling of every jittered delay; >= base_ms */
    double multiplier;           /* ceiling growth per attempt; >= 1.0, finite */
    uint32_t max_attempts;       /* give up after this many retries per outage; 0 = unlimited */
    uint64_t max_outage_ms;      /* give up when the outage would exceed this; 0 = unlimited */
    uint64_t retry_after_cap_ms; /* Retry-After / pushback is honoured up to this; 0 = ignore it */
} steno__backoff_config;

/*
 * State of one session's reconnect schedule. Embed it by value; the fields
 * are private to backoff.c (exposed only so no allocation is needed). Not
 * thread-safe: one session, one (network) thread.
 *
 * An "outage" starts at the first failure after a healthy connection (or at
 * the first failure ever) and lasts until a connection is reported healthy
 * again. A connection that opens but dies before it was healthy does NOT end
 * the outage: a flapping endpoint keeps escalating and keeps the give-up
 * clock running.
 */
typedef struct steno__backoff {
    steno__backoff_config cfg;
    steno__rand_fn rand;
    void *rand_ctx;
    uint32_t attempts;      /* retries scheduled in this outage (next() successes) */
    uint32_t jittered;      /* of those, how many used a jittered delay (the exponent) */
    bool immediate_pending; /* previous connection was healthy: next retry is immediate */
    bool in_outage;         /* outage_start_ms is valid */
    bool connected;         /* between on_connected and on_disconnect */
    bool gave_up;           /* sticky RETRIES_EXHAUSTED until reset/healthy */
    uint64_t outage_start_ms;
    uint64_t connected_at_ms;
} steno__backoff;

/* Fills cfg with the defaults above. */
void steno__backoff_config_default(steno__backoff_config *cfg);

/*
 * cfg NULL means defaults; rand must not be NULL. The config is copied.
 * STENO_ERR_INVALID_ARG for NULL b/rand or base_ms 0, cap_ms < base_ms,
 * multiplier < 1.0 or not finite.
 */
int steno__backoff_init(steno__backoff *b, const steno__backoff_config *cfg, steno__rand_fn rand,
                        void *rand_ctx);

/* Forget everything: a fresh schedule (as after init). */
void steno__backoff_reset(steno__backoff *b);

/* The WebSocket handshake completed at now_ms. Does not end the outage by itself. */
void steno__backoff_on_connected(steno__backoff *b, uint64_t now_ms);

/*
 * The open connection ended at now_ms. was_healthy is the engine's judgement
 * (e.g. it stayed up long enough and delivered results). A healthy one resets
 * the attempt counter, starts a new outage at now_ms and makes the next retry
 * immediate (delay 0, unless Retry-After says otherwise); an unhealthy one
 * continues the current outage (or starts one at now_ms if none).
 */
void steno__backoff_on_disconnect(steno__backoff *b, uint64_t now_ms, bool was_healthy);

/*
 * Decide the delay before the next attempt, called once per failure (a
 * failed connect/handshake, or after on_disconnect). now_ms is monotonic.
 * retry_after_ms is the server's pushback in ms (steno__retry_after_parse or
 * the classifier), -1 for none.
 *
 *   jittered = 0 for the first retry after a healthy connection, else
 *              rand() % (ceil + 1), ceil = min(cap, base * mult^n), n = the
 *              number of jittered retries already made in this outage
 *   delay    = max(jittered, min(retry_after_ms, retry_after_cap_ms))
 *
 * Returns STENO_OK with *delay_ms set and the attempt counted, or
 * STENO_ERR_RETRIES_EXHAUSTED when max_attempts retries were already made
 * in this outage, or (now - outage start) + delay would exceed max_outage_ms.
 * Exhaustion is sticky until a reset or a healthy connection.
 * STENO_ERR_INVALID_ARG for NULL pointers.
 */
int steno__backoff_next(steno__backoff *b, uint64_t now_ms, int64_t retry_after_ms,
                        uint64_t *delay_ms);

/* Retries scheduled in the current outage. */
uint32_t steno__backoff_attempts(const steno__backoff *b);

/*
 * Parse an HTTP Retry-After value (RFC 9110 10.2.3) into a delay in ms.
 * Accepts delta-seconds ("120") and HTTP-date in IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), obsolete RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994")
 * forms, with optional surrounding whitespace. Dates are relative to
 * now_unix (wall clock, seconds since the epoch); a date in the past gives 0.
 * Huge values saturate at INT64_MAX ms (the backoff caps them). Returns -1 for
 * NULL, empty, negative, fractional or otherwise malformed values.
 *
 * A clock in whole seconds makes a date's delay up to 999 ms too long (never
 * too short): callers with a finer clock use steno__retry_after_parse_ms.
 */
int64_t steno__retry_after_parse(const char *value, int64_t now_unix);

/*
 * The same with the wall clock in ms since the epoch (any value, including
 * negative): an HTTP-date gives exactly date - now in ms (0 once it is past),
 * so a wait ends on the second the server named, not up to 1 s later.
 * Delta-seconds do not depend on the clock.
 */
int64_t steno__retry_after_parse_ms(const char *value, int64_t now_unix_ms);

#endif /* STENO_CORE_BACKOFF_H */
