/* breaker: per-endpoint circuit breaker, so an outage gets a trickle of probes, not a storm. */
#include "breaker.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void steno__breaker_config_default(steno__breaker_config *cfg)
{
    if (!cfg)
        return;
    cfg->failure_threshold = 5;
    cfg->success_threshold = 2;
    cfg->open_ms = 5000;
    cfg->open_multiplier = 1.0;
    cfg->open_max_ms = 60000;
    cfg->probe_timeout_ms = 30000;
}

static bool config_valid(const steno__breaker_config *c)
{
    return c->failure_threshold > 0 && c->success_threshold > 0 && c->open_ms > 0 &&
           isfinite(c->open_multiplier) && c->open_multiplier >= 1.0 &&
           c->open_max_ms >= c->open_ms && c->probe_timeout_ms > 0;
}

int steno__breaker_init(steno__breaker *b, const steno__breaker_config *cfg)
{
    if (!b)
        return STENO_ERR_INVALID_ARG;
    steno__breaker_config c;
    if (cfg)
        c = *cfg;
    else
        steno__breaker_config_default(&c);
    if (!config_valid(&c))
        return STENO_ERR_INVALID_ARG;
    memset(b, 0, sizeof(*b));
    b->cfg = c;
    b->state = STENO__BREAKER_CLOSED;
    b->current_open_ms = c.open_ms;
    return STENO_OK;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void open_at(steno__breaker *b, uint64_t now_ms)
{
    b->state = STENO__BREAKER_OPEN;
    b->open_until_ms = sat_add(now_ms, b->current_open_ms);
    b->consecutive_failures = 0;
    b->probe_successes = 0;
    b->probe_in_flight = false;
    b->opened++;
}

int steno__breaker_allow(steno__breaker *b, uint64_t now_ms, bool *is_probe, uint64_t *retry_at_ms)
{
    if (is_probe)
        *is_probe = false;
    if (retry_at_ms)
        *retry_at_ms = now_ms;
    if (!b)
        return STENO_ERR_INVALID_ARG;

    if (b->state == STENO__BREAKER_OPEN) {
        if (now_ms < b->open_until_ms) {
            if (retry_at_ms)
                *retry_at_ms = b->open_until_ms;
            return STENO_ERR_BREAKER_OPEN;
        }
        b->state = STENO__BREAKER_HALF_OPEN;
        b->probe_successes = 0;
        b->probe_in_flight = false;
        b->half_opened++;
    }
    if (b->state == STENO__BREAKER_HALF_OPEN) {
        if (b->probe_in_flight) {
            uint64_t lost_at = sat_add(b->probe_started_ms, b->cfg.probe_timeout_ms);
            if (now_ms < lost_at) {
                if (retry_at_ms)
                    *retry_at_ms = lost_at;
                return STENO_ERR_BREAKER_OPEN;
            }
            /* The probe never reported (its session vanished without
             * abandoning it): presume it lost rather than wait forever. */
        }
        b->probe_in_flight = true;
        b->probe_started_ms = now_ms;
        if (is_probe)
            *is_probe = true;
    }
    return STENO_OK;
}

void steno__breaker_on_success(steno__breaker *b, uint64_t now_ms)
{
    if (!b)
        return;
    switch (b->state) {
    case STENO__BREAKER_CLOSED:
        b->consecutive_failures = 0;
        break;
    case STENO__BREAKER_HALF_OPEN:
        b->probe_in_flight = false;
        if (++b->probe_successes >= b->cfg.success_threshold) {
            b->state = STENO__BREAKER_CLOSED;
            b->consecutive_failures = 0;
            b->probe_successes = 0;
            b->current_open_ms = b->cfg.open_ms;
            b->closed++;
        }
        break;
    case STENO__BREAKER_OPEN:
        break;
    }
}

void steno__breaker_trip(steno__breaker *b, uint64_t now_ms)
{
    if (b && b->state == STENO__BREAKER_CLOSED)
        open_at(b, now_ms);
}

void steno__breaker_on_failure(steno__breaker *b, uint64_t now_ms)
{
    if (!b)
        return;
    switch (b->state) {
    case STENO__BREAKER_CLOSED:
        if (++b->consecutive_failures >= b->cfg.failure_threshold)
            open_at(b, now_ms);
        break;
    case STENO__BREAKER_HALF_OPEN: {
        /* The endpoint is still down: back off harder before the next probe. */
        double grown = (double)b->current_open_ms * b->cfg.open_multiplier;
        b->current_open_ms =
            grown >= (double)b->cfg.open_max_ms ? b->cfg.open_max_ms : (uint64_t)grown;
        open_at(b, now_ms);
        break;
    }
    case STENO__BREAKER_OPEN:
        break;
    }
}

void steno__breaker_probe_abandoned(steno__breaker *b)
{
    if (b && b->state == STENO__BREAKER_HALF_OPEN)
        b->probe_in_flight = false;
}

steno__breaker_state steno__breaker_get_state(const steno__breaker *b)
{
    return b ? b->state : STENO__BREAKER_CLOSED;
}

const char *steno__breaker_state_name(steno__breaker_state s)
{
    switch (s) {
    case STENO__BREAKER_CLOSED:
        return "closed";
    case STENO__BREAKER_OPEN:
        return "open";
    case STENO__BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
