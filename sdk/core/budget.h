/* budget: the client's retry token bucket, so failing sessions cannot retry without bound. */
#ifndef STENO_CORE_BUDGET_H
#define STENO_CORE_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "steno/status.h"

/*
 * Modelled on aws-c-io's standard retry strategy (retry quota bucket): a
 * retry leases tokens from a shared bucket, more for failures that suggest
 * an unhealthy endpoint; a connection that then succeeds returns its lease;
 * one that succeeds without needing a retry adds a small payback, so a
 * drained bucket refills once the endpoint works again. An empty bucket
 * means "too many failures across sessions": stop retrying, fail the session
 * (the engine lets a session whose endpoint's breaker is open wait for the
 * breaker instead: see schedule_retry).
 */

/* What kind of failure a retry follows; decides its cost. */
typedef enum steno__failure_class {
    STENO__FAILURE_TRANSIENT = 0, /* network, DNS, TLS reset, timeout, abnormal close: cost 10 */
    STENO__FAILURE_SERVER,        /* throttling and server errors (429, 5xx, 1011, 1013): cost 5 */
} steno__failure_class;

/* Defaults (steno__budget_config_default): capacity 500, costs 10 / 5, payback 1. */
typedef struct steno__budget_config {
    uint32_t capacity;        /* tokens when full, and the ceiling; > 0 */
    uint32_t transient_cost;  /* tokens a retry after a TRANSIENT failure leases; <= capacity */
    uint32_t server_cost;     /* tokens a retry after a SERVER failure leases; <= capacity */
    uint32_t success_payback; /* tokens added by a success that needed no retry */
} steno__budget_config;

/*
 * What a session holds between acquiring a retry and learning its outcome.
 * Zero-initialise it ({0}) for a session's first attempt. A new acquire
 * replaces the lease: the earlier one stays spent (a failed retry keeps its
 * cost), as in aws-c-io.
 */
typedef struct steno__retry_token {
    uint32_t cost; /* tokens leased by the latest retry; 0 = none */
} steno__retry_token;

/*
 * One client's bucket. Embed by value; fields private to budget.c. NOT
 * thread-safe: used only from the client's network thread.
 */
typedef struct steno__budget {
    steno__budget_config cfg;
    uint32_t tokens;
    uint64_t acquired; /* retries granted */
    uint64_t refused;  /* retries refused: STENO_ERR_BUDGET_EXHAUSTED */
} steno__budget;

/* Fills cfg with the defaults above. */
void steno__budget_config_default(steno__budget_config *cfg);

/*
 * cfg NULL means defaults; copied; the bucket starts full.
 * STENO_ERR_INVALID_ARG for NULL b, capacity 0, a cost of 0 or above capacity.
 */
int steno__budget_init(steno__budget *b, const steno__budget_config *cfg);

/*
 * Lease tokens for a retry after a failure of class cls. STENO_OK: the cost
 * is taken and recorded in *tok. STENO_ERR_BUDGET_EXHAUSTED: fewer tokens
 * than the cost remain; nothing is taken, *tok unchanged.
 * STENO_ERR_INVALID_ARG for NULL pointers or an unknown class.
 */
int steno__budget_acquire(steno__budget *b, steno__failure_class cls, steno__retry_token *tok);

/*
 * The attempt succeeded (handshake completed). With a lease (tok->cost > 0)
 * the lease is returned; without one (tok NULL or cost 0) success_payback is
 * added. Never beyond capacity. *tok is cleared.
 */
void steno__budget_on_success(steno__budget *b, steno__retry_token *tok);

/* Tokens currently available. */
uint32_t steno__budget_available(const steno__budget *b);

/* Cost of a retry after a failure of class cls (0 for an unknown class). */
uint32_t steno__budget_cost(const steno__budget *b, steno__failure_class cls);

#endif /* STENO_CORE_BUDGET_H */
