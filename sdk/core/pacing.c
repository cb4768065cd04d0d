/* pacing: how fast audio may be sent (live and replay), so providers never see it too fast. */
#include "pacing.h"

#include <stddef.h>
#include <string.h>

/* Credit is kept in millionths of a frame: refill per ms is then the integer
 * frame_rate × speed_permille, and nothing is ever rounded. */
#define UNITS_PER_FRAME 1000000

/* Limits that keep every product below 2^63 (see pacing.h). */
#define MAX_RATE_X_BURST 9000000000000ull /* frames/s × ms: 9e12 × 1000 < 2^63 */
#define MAX_SPEED_PERMILLE 1000000u

void steno__pacing_config_default(steno__pacing_config *cfg, uint32_t frame_rate)
{
    if (!cfg)
        return;
    cfg->frame_rate = frame_rate;
    cfg->speed_permille = STENO__PACING_DEFAULT_SPEED_PERMILLE;
    cfg->burst_ms = STENO__PACING_DEFAULT_BURST_MS;
}

int steno__pacing_init(steno__pacing *p, const steno__pacing_config *cfg, uint64_t now_ms)
{
    if (!p || !cfg)
        return STENO_ERR_INVALID_ARG;
    if (cfg->frame_rate == 0 || cfg->speed_permille == 0 || cfg->burst_ms == 0 ||
        cfg->speed_permille > MAX_SPEED_PERMILLE ||
        (uint64_t)cfg->frame_rate * cfg->burst_ms > MAX_RATE_X_BURST)
        return STENO_ERR_INVALID_ARG;
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    /* burst_ms of audio = frame_rate × burst_ms / 1000 frames. */
    p->capacity = (int64_t)((uint64_t)cfg->frame_rate * cfg->burst_ms * (UNITS_PER_FRAME / 1000));
    p->refill_per_ms = (uint64_t)cfg->frame_rate * cfg->speed_permille;
    steno__pacing_reset(p, now_ms);
    return STENO_OK;
}

void steno__pacing_reset(steno__pacing *p, uint64_t now_ms)
{
    if (!p)
        return;
    p->credit = p->capacity;
    p->last_ms = now_ms;
    p->waiting = false;
}

/* The credit at now_ms, never above capacity; time going backwards adds nothing. */
static int64_t credit_at(const steno__pacing *p, uint64_t now_ms)
{
    if (now_ms <= p->last_ms || p->credit >= p->capacity)
        return p->credit;
    uint64_t elapsed = now_ms - p->last_ms;
    uint64_t missing = (uint64_t)(p->capacity - p->credit);
    /* Compare before multiplying, so a huge jump cannot overflow. */
    if (elapsed >= missing / p->refill_per_ms + 1)
        return p->capacity;
    int64_t c = p->credit + (int64_t)(elapsed * p->refill_per_ms);
    return c < p->capacity ? c : p->capacity;
}

/* A chunk may go once the credit covers it, or covers a whole burst for a
 * chunk bigger than the burst (it then leaves a debt). */
static int64_t threshold(const steno__pacing *p, uint32_t frames)
{
    int64_t cost = (int64_t)frames * UNITS_PER_FRAME;
    return cost < p->capacity ? cost : p->capacity;
}

uint64_t steno__pacing_wait_ms(const steno__pacing *p, uint64_t now_ms, uint32_t frames)
{
    if (!p || frames == 0)
        return 0;
    int64_t c = credit_at(p, now_ms);
    int64_t need = threshold(p, frames);
    if (c >= need)
        return 0;
    uint64_t missing = (uint64_t)(need - c);
    return (missing + p->refill_per_ms - 1) / p->refill_per_ms;
}

bool steno__pacing_allow(steno__pacing *p, uint64_t now_ms, uint32_t frames)
{
    if (!p)
        return false;
    if (frames == 0)
        return true;
    p->credit = credit_at(p, now_ms);
    if (now_ms > p->last_ms)
        p->last_ms = now_ms;
    if (p->credit < threshold(p, frames)) {
        if (!p->waiting) {
            p->waiting = true;
            p->waits++;
        }
        return false;
    }
    p->credit -= (int64_t)frames * UNITS_PER_FRAME;
    p->waiting = false;
    return true;
}

uint64_t steno__pacing_waits(const steno__pacing *p)
{
    return p ? p->waits : 0;
}
