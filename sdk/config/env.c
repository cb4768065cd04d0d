/* env: read STENO_* environment variables into client and session configs (see steno/env.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "steno/env.h"

static steno_status bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static steno_status bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return STENO_ERR_CONFIG;
}

/* The variable's value, or NULL when unset or empty (both mean "not set"). */
static const char *var(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/* Decimal integer in [lo, hi], surrounding blanks tolerated. */
static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

/* Applies one numeric variable: in DEFAULTS mode only to a zero field. */
static steno_status num(const char *name, uint32_t lo, uint32_t hi, uint32_t *field,
                        steno_env_mode mode, char *err, size_t errlen)
{
    const char *v = var(name);
    if (!v)
        return STENO_OK;
    uint32_t x;
    if (parse_u32(v, lo, hi, &x))
        return bad(err, errlen, "%s=\"%s\" is invalid: expected a whole number in %u..%u", name, v,
                   lo, hi);
    if (mode == STENO_ENV_OVERRIDE || *field == 0)
        *field = x;
    return STENO_OK;
}

static void str(const char *name, const char **field, steno_env_mode mode)
{
    const char *v = var(name);
    if (v && (mode == STENO_ENV_OVERRIDE || !*field || !**field))
        *field = v;
}

steno_status steno_client_config_from_env(steno_client_config *cfg, steno_env_mode mode, char *err,
                                          size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cfg || (mode != STENO_ENV_DEFAULTS && mode != STENO_ENV_OVERRIDE))
        return STENO_ERR_INVALID_ARG;
    steno_client_config t = *cfg; /* all or nothing */
    steno_status rc;
    str("STENO_CA_FILE", &t.ca_file, mode);
    if ((rc =
             num("STENO_MAX_CONNECTS", 1, 100000, &t.max_concurrent_connects, mode, err, errlen)) ||
        (rc = num("STENO_BREAKER_THRESHOLD", 1, 1000, &t.breaker_failure_threshold, mode, err,
                  errlen)) ||
        (rc = num("STENO_BREAKER_OPEN_MS", 1, 3600000, &t.breaker_open_ms, mode, err, errlen)))
        return rc;
    const char *v = var("STENO_RETRY_BUDGET");
    if (v) {
        if (strcasecmp(v, "off") == 0) {
            if (mode == STENO_ENV_OVERRIDE || (!t.retry_budget_capacity && !t.retry_budget_disable))
                t.retry_budget_disable = 1;
        } else {
            if ((rc = num("STENO_RETRY_BUDGET", 1, 1000000, &t.retry_budget_capacity, mode, err,
                          errlen)))
                return bad(err, errlen,
                           "STENO_RETRY_BUDGET=\"%s\" is invalid: expected a token count in "
                           "1..1000000 or \"off\"",
                           v);
            if (mode == STENO_ENV_OVERRIDE)
                t.retry_budget_disable = 0;
        }
    }
    v = var("STENO_LOG");
    if (v) {
        static const char *names[] = {"error", "warn", "info", "debug"};
        int lvl = 0;
        for (int i = 0; i < 4; i++)
            if (strcasecmp(v, names[i]) == 0 || (v[0] == '1' + i && v[1] == '\0'))
                lvl = i + 1;
        if (strcasecmp(v, "warning") == 0)
            lvl = STENO_LOG_WARN;
        if (!lvl)
            return bad(err, errlen,
                       "STENO_LOG=\"%s\" is invalid: expected error, warn, info or debug (or 1..4)",
                       v);
        if (mode == STENO_ENV_OVERRIDE || t.log_level == 0)
            t.log_level = (steno_log_level)lvl;
    }
    *cfg = t;
    return STENO_OK;
}

steno_status steno_session_config_from_env(steno_session_config *cfg, steno_env_mode mode,
                                           char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cfg || (mode != STENO_ENV_DEFAULTS && mode != STENO_ENV_OVERRIDE))
        return STENO_ERR_INVALID_ARG;
    steno_session_config t = *cfg;
    steno_status rc;
    str("STENO_PROVIDER", &t.provider, mode);
    str("STENO_URL", &t.url, mode);
    /* STENO_API_KEY wins over the provider's own variable. */
    const char *key = var("STENO_API_KEY");
    if (!key)
        key = var("DEEPGRAM_API_KEY");
    if (key && (mode == STENO_ENV_OVERRIDE || !t.api_key || !*t.api_key))
        t.api_key = key;
    struct {
        const char *name;
        uint32_t lo, hi;
        uint32_t *field;
    } nums[] = {
        {"STENO_SAMPLE_RATE", 8000, 192000, &t.sample_rate},
        {"STENO_CHANNELS", 1, 8, &t.channels},
        {"STENO_CHUNK_MS", 10, 1000, &t.chunk_ms},
        {"STENO_RING_CHUNKS", 2, 100000, &t.ring_chunks},
        {"STENO_RETRY_BASE_MS", 1, 3600000, &t.retry.base_ms},
        {"STENO_RETRY_CAP_MS", 1, 3600000, &t.retry.cap_ms},
        {"STENO_KEEPALIVE_MS", 100, 3600000, &t.keepalive_ms},
        {"STENO_PING_MS", 100, 3600000, &t.ping_interval_ms},
        {"STENO_PONG_TIMEOUT_MS", 100, 3600000, &t.pong_timeout_ms},
        {"STENO_DEAD_AFTER_MS", 100, 3600000, &t.dead_after_ms},
        {"STENO_CONNECT_TIMEOUT_MS", 100, 3600000, &t.connect_timeout_ms},
        {"STENO_CLOSE_TIMEOUT_MS", 100, 3600000, &t.close_timeout_ms},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if ((rc = num(nums[i].name, nums[i].lo, nums[i].hi, nums[i].field, mode, err, errlen)))
            return rc;
    /* 0 is meaningful here (unlimited), so DEFAULTS cannot tell "unset" from "0": the
     * variable then applies only while the field still holds 0. */
    const char *v = var("STENO_RETRY_MAX_ATTEMPTS");
    if (v) {
        uint32_t x;
        if (parse_u32(v, 0, 1000000, &x))
            return bad(err, errlen,
                       "STENO_RETRY_MAX_ATTEMPTS=\"%s\" is invalid: expected a whole number in "
                       "0..1000000 (0 = unlimited)",
                       v);
        if (mode == STENO_ENV_OVERRIDE || t.retry.max_attempts == 0)
            t.retry.max_attempts = x;
    }
    v = var("STENO_MAX_OUTAGE_MS");
    if (v) {
        uint32_t x;
        if (strcasecmp(v, "unlimited") == 0)
            x = UINT32_MAX;
        else if (parse_u32(v, 1, UINT32_MAX - 1, &x))
            return bad(err, errlen,
                       "STENO_MAX_OUTAGE_MS=\"%s\" is invalid: expected milliseconds (1..%u) or "
                       "\"unlimited\"",
                       v, UINT32_MAX - 1);
        if (mode == STENO_ENV_OVERRIDE || t.retry.max_outage_ms == 0)
            t.retry.max_outage_ms = x;
    }
    /* 0 turns backfill off (the field's own 0 means the default, 1). */
    v = var("STENO_MAX_BACKFILL_CONNECTIONS");
    if (v) {
        uint32_t x;
        if (parse_u32(v, 0, 16, &x))
            return bad(err, errlen,
                       "STENO_MAX_BACKFILL_CONNECTIONS=\"%s\" is invalid: expected 0 (off) to 16",
                       v);
        if (mode == STENO_ENV_OVERRIDE || t.max_backfill_connections == 0)
            t.max_backfill_connections = x ? x : STENO_BACKFILL_OFF;
    }
    v = var("STENO_AUTO_FINALIZE_MS");
    if (v) {
        uint32_t x;
        if (strcasecmp(v, "off") == 0)
            x = STENO_AUTO_FINALIZE_OFF;
        else if (parse_u32(v, 100, 3600000, &x))
            return bad(err, errlen,
                       "STENO_AUTO_FINALIZE_MS=\"%s\" is invalid: expected milliseconds "
                       "(100..3600000) or \"off\"",
                       v);
        if (mode == STENO_ENV_OVERRIDE || t.auto_finalize_ms == 0)
            t.auto_finalize_ms = x;
    }
    v = var("STENO_ORDERED_FINALS");
    if (v) {
        uint32_t x;
        if (parse_u32(v, 0, 1, &x))
            return bad(err, errlen, "STENO_ORDERED_FINALS=\"%s\" is invalid: expected 0 or 1", v);
        if (mode == STENO_ENV_OVERRIDE || t.ordered_finals == 0)
            t.ordered_finals = (int)x;
    }
    v = var("STENO_RETRY_MULTIPLIER");
    if (v) {
        errno = 0;
        char *end;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < 1.0 || x > 100.0)
            return bad(err, errlen,
                       "STENO_RETRY_MULTIPLIER=\"%s\" is invalid: expected a number in 1.0..100.0",
                       v);
        if (mode == STENO_ENV_OVERRIDE || t.retry.multiplier == 0)
            t.retry.multiplier = x;
    }
    *cfg = t;
    return STENO_OK;
}
