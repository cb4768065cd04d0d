/* breaker: per-endpoint circuit breaker, so an outage gets a trickle of probes, not a storm. */
#ifndef STENO_CORE_BREAKER_H
#define STENO_CORE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "steno/status.h"

typedef enum steno__breaker_state {
    STENO__BREAKER_CLOSED = 0, /* attempts flow freely; failures are counted */
    STENO__BREAKER_OPEN,       /* attempts refused until open_until */
    STENO__BREAKER_HALF_OPEN,  /* one probe at a time decides: close or reopen */
} steno__breaker_state;

/*
 * Defaults (steno__breaker_config_default): open after 5 consecutive
 * failures, stay open 5 s (constant: multiplier 1.0, max 60 s), close after 2
 * probe successes, a probe that reports nothing for 30 s is presumed lost.
 */
typedef struct steno__breaker_config {
    uint32_t failure_threshold; /* consecutive failures in CLOSED that open it; > 0 */
    uint32_t success_threshold; /* probe successes in HALF_OPEN that close it; > 0 */
    uint64_t open_ms;           /* first OPEN period; > 0 */
    double open_multiplier;     /* each reopen from HALF_OPEN multiplies the period; >= 1.0 */
    uint64_t open_max_ms;       /* the period never grows beyond this; >= open_ms */
    uint64_t probe_timeout_ms;  /* a probe silent this long no longer blocks others; > 0 */
} steno__breaker_config;

/*
 * One endpoint's breaker. Embed by value; fields are private to breaker.c.
 *
 * NOT thread-safe: the client owns one per endpoint and calls it only from
 * its network thread. Readers on other threads must copy the counters out
 * through the engine, not read this struct.
 *
 * What counts: report a success when a handshake completes (the endpoint
 * works) and a failure when a connect or handshake fails for a retryable
 * reason (network, 5xx, 429, timeout). Fatal request/auth errors say nothing
 * about the endpoint's health: report neither.
 */
typedef struct steno__breaker {
    steno__breaker_config cfg;
    steno__breaker_state state;
    uint32_t consecutive_failures; /* in CLOSED */
    uint32_t probe_successes;      /* in HALF_OPEN */
    bool probe_in_flight;          /* in HALF_OPEN */
    uint64_t probe_started_ms;
    uint64_t open_until_ms;   /* in OPEN */
    uint64_t current_open_ms; /* the period used by the next open */
    uint64_t opened;          /* transitions into OPEN */
    uint64_t half_opened;     /* transitions into HALF_OPEN */
    uint64_t closed;          /* transitions into CLOSED (from HALF_OPEN) */
} steno__breaker;

/* Fills cfg with the defaults above. */
void steno__breaker_config_default(steno__breaker_config *cfg);

/* cfg NULL means defaults; copied. STENO_ERR_INVALID_ARG for NULL b or an invalid config. */
int steno__breaker_init(steno__breaker *b, const steno__breaker_config *cfg);

/*
 * May a connection attempt go out now? Advances OPEN -> HALF_OPEN once
 * now_ms >= open_until.
 *
 *   CLOSED:                 STENO_OK, *is_probe false.
 *   HALF_OPEN, no probe:    STENO_OK, *is_probe true; the caller now holds the
 *                           probe and must report its outcome (success,
 *                           failure or steno__breaker_probe_abandoned).
 *   OPEN, or probe in flight: STENO_ERR_BREAKER_OPEN; *retry_at_ms is when to
 *                           ask again: open_until for OPEN, or the time the
 *                           probe would be presumed lost. The engine should
 *                           also wake waiters as soon as a probe reports,
 *                           so sessions wait for the probe instead of dialing.
 *
 * is_probe and retry_at_ms may be NULL. On STENO_OK *retry_at_ms is now_ms.
 */
int steno__breaker_allow(steno__breaker *b, uint64_t now_ms, bool *is_probe, uint64_t *retry_at_ms);

/*
 * An attempt succeeded. CLOSED: clears the failure streak. HALF_OPEN: counts
 * a probe success and frees the probe slot; success_threshold of them close
 * the breaker (and reset the open period). OPEN: ignored (a stale attempt
 * started before the breaker opened).
 */
void steno__breaker_on_success(steno__breaker *b, uint64_t now_ms);

/*
 * An attempt failed. CLOSED: failure_threshold consecutive ones open the
 * breaker for the open period. HALF_OPEN: any failure reopens it, with the
 * period multiplied by open_multiplier (capped at open_max_ms). OPEN:
 * ignored (stale).
 */
void steno__breaker_on_failure(steno__breaker *b, uint64_t now_ms);

/*
 * Everyone using the endpoint is failing, though fewer of them than
 * failure_threshold: CLOSED opens now, as if the threshold had been reached
 * (the caller knows how many users there are; the breaker does not). Other
 * states: ignored.
 */
void steno__breaker_trip(steno__breaker *b, uint64_t now_ms);

/* The probe holder gave up without an outcome (session closed): free the slot. */
void steno__breaker_probe_abandoned(steno__breaker *b);

/* The stored state (time-based OPEN -> HALF_OPEN happens in allow()). */
steno__breaker_state steno__breaker_get_state(const steno__breaker *b);

/* "closed", "open", "half_open"; "unknown" for other values. */
const char *steno__breaker_state_name(steno__breaker_state s);

#endif /* STENO_CORE_BREAKER_H */
