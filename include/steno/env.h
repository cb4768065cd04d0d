/* steno env: read STENO_* environment variables into client and session configs. */
#ifndef STENO_ENV_H
#define STENO_ENV_H

#include <stddef.h>

#include "steno/client.h"
#include "steno/session.h"
#include "steno/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The application decides whether the environment may override its own
 * settings:
 *   STENO_ENV_DEFAULTS  a variable only fills a field the app left at zero/NULL
 *                       (the app's explicit settings win);
 *   STENO_ENV_OVERRIDE  every variable that is set wins over the field.
 * Unset or empty variables never change anything.
 *
 * Client variables:
 *   STENO_CA_FILE                   ca_file
 *   STENO_MAX_CONNECTS              max_concurrent_connects (1..100000)
 *   STENO_BREAKER_THRESHOLD         breaker_failure_threshold (1..1000)
 *   STENO_BREAKER_OPEN_MS           breaker_open_ms (1..3600000)
 *   STENO_RETRY_BUDGET              retry_budget_capacity (1..1000000), or "off"
 *   STENO_LOG                       log_level: error|warn|info|debug (or 1..4)
 *                                   (lines go to log_fn; steno never prints)
 *
 * Session variables:
 *   STENO_PROVIDER                  provider ("deepgram")
 *   STENO_URL                       url (ws:// or wss://)
 *   STENO_API_KEY, DEEPGRAM_API_KEY api_key (STENO_API_KEY first)
 *   STENO_SAMPLE_RATE               sample_rate (8000..192000)
 *   STENO_CHANNELS                  channels (1..8)
 *   STENO_CHUNK_MS                  chunk_ms (10..1000)
 *   STENO_RING_CHUNKS               ring_chunks (2..100000)
 *   STENO_RETRY_BASE_MS             retry.base_ms (1..3600000)
 *   STENO_RETRY_CAP_MS              retry.cap_ms (1..3600000)
 *   STENO_RETRY_MULTIPLIER          retry.multiplier (1.0..100.0)
 *   STENO_RETRY_MAX_ATTEMPTS        retry.max_attempts (0 = unlimited)
 *   STENO_MAX_OUTAGE_MS             retry.max_outage_ms ("unlimited" or 1..UINT32_MAX-1)
 *   STENO_KEEPALIVE_MS              keepalive_ms (100..3600000)
 *   STENO_PING_MS                   ping_interval_ms (100..3600000)
 *   STENO_PONG_TIMEOUT_MS           pong_timeout_ms (100..3600000)
 *   STENO_MAX_BACKFILL_CONNECTIONS  max_backfill_connections (0 = off, 1..16)
 *   STENO_AUTO_FINALIZE_MS          auto_finalize_ms ("off" or 100..3600000)
 *   STENO_ORDERED_FINALS            ordered_finals (0 or 1)
 *   STENO_DEAD_AFTER_MS             dead_after_ms (100..3600000)
 *   STENO_CONNECT_TIMEOUT_MS        connect_timeout_ms (100..3600000)
 *   STENO_CLOSE_TIMEOUT_MS          close_timeout_ms (100..3600000)
 *
 * Numbers are decimal integers (STENO_RETRY_MULTIPLIER a decimal number);
 * anything else, or a value out of range, is STENO_ERR_CONFIG with a message
 * in err naming the variable and the allowed range, and then cfg is left
 * unchanged. String fields point into the process environment: they stay
 * valid until that variable is changed (setenv/unsetenv); steno copies them
 * at open.
 */
/*
 * Note on STENO_ENV_DEFAULTS: zero/NULL means "unset", so apply it to a
 * zeroed config (`= {0}`) before setting the app's own values, not after
 * steno_*_config_init() (whose explicit defaults count as set). Fields
 * still zero at open get the library defaults.
 */
typedef enum steno_env_mode {
    STENO_ENV_DEFAULTS = 0,
    STENO_ENV_OVERRIDE = 1,
} steno_env_mode;

steno_status steno_client_config_from_env(steno_client_config *cfg, steno_env_mode mode, char *err,
                                          size_t errlen);
steno_status steno_session_config_from_env(steno_session_config *cfg, steno_env_mode mode,
                                           char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* STENO_ENV_H */
