/* budget: the client's retry token bucket, so failing sessions cannot retry without bound. */
#include "budget.h"

#include <stddef.h>
#include <string.h>

void steno__budget_config_default(steno__budget_config *cfg)
{
    if (!cfg)
        return;
    /* aws-c-io standard retry strategy: 500 tokens; a retry after a
     * transient (network/timeout) failure leases 10, any other retry 5; a
     * success that needed no retry pays back 1. */
    cfg->capacity = 500;
    cfg->transient_cost = 10;
    cfg->server_cost = 5;
    cfg->success_payback = 1;
}

int steno__budget_init(steno__budget *b, const steno__budget_config *cfg)
{
    if (!b)
        return STENO_ERR_INVALID_ARG;
    steno__budget_config c;
    if (cfg)
        c = *cfg;
    else
        steno__budget_config_default(&c);
    if (c.capacity == 0 || c.transient_cost == 0 || c.server_cost == 0 ||
        c.transient_cost > c.capacity || c.server_cost > c.capacity)
        return STENO_ERR_INVALID_ARG;
    memset(b, 0, sizeof(*b));
    b->cfg = c;
    b->tokens = c.capacity;
    return STENO_OK;
}

uint32_t steno__budget_cost(const steno__budget *b, steno__failure_class cls)
{
    if (!b)
        return 0;
    switch (cls) {
    case STENO__FAILURE_TRANSIENT:
        return b->cfg.transient_cost;
    case STENO__FAILURE_SERVER:
        return b->cfg.server_cost;
    }
    return 0;
}

int steno__budget_acquire(steno__budget *b, steno__failure_class cls, steno__retry_token *tok)
{
    if (!b || !tok)
        return STENO_ERR_INVALID_ARG;
    uint32_t cost = steno__budget_cost(b, cls);
    if (cost == 0)
        return STENO_ERR_INVALID_ARG;
    if (b->tokens < cost) {
        b->refused++;
        return STENO_ERR_BUDGET_EXHAUSTED;
    }
    b->tokens -= cost;
    b->acquired++;
    tok->cost = cost;
    return STENO_OK;
}

void steno__budget_on_success(steno__budget *b, steno__retry_token *tok)
{
    if (!b)
        return;
    uint32_t back = tok && tok->cost ? tok->cost : b->cfg.success_payback;
    uint32_t room = b->cfg.capacity - b->tokens;
    b->tokens += back < room ? back : room;
    if (tok)
        tok->cost = 0;
}

uint32_t steno__budget_available(const steno__budget *b)
{
    return b ? b->tokens : 0;
}
