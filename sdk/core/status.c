/* status: words for every steno_status value. */
#include "steno/status.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "errmsg.h"

struct status_entry {
    const char *name;
    const char *text;
};

/* Indexed by -status; the static assert below keeps it in step with the enum. */
static const struct status_entry entries[] = {
    {"STENO_OK", "success"},
    {"STENO_ERR_INVALID_ARG",
     "invalid argument: a required pointer was NULL or a value was out of range"},
    {"STENO_ERR_NOMEM", "out of memory: the allocator returned NULL"},
    {"STENO_ERR_STATE",
     "the call is not valid in the object's current state (e.g. write after close)"},
    {"STENO_ERR_FULL", "the audio ring is full: the chunk was dropped and counted; raise "
                       "ring_chunks or write slower"},
    {"STENO_ERR_AGAIN", "nothing is ready yet: try again later"},
    {"STENO_ERR_CONFIG",
     "unknown option or invalid configuration value: check the option name and its allowed range"},
    {"STENO_ERR_FORMAT", "unsupported or inconsistent audio format: use 16-bit PCM at the "
                         "configured rate and channels"},
    {"STENO_ERR_UNSUPPORTED", "not supported by this provider or build"},
    {"STENO_ERR_NETWORK",
     "network failure: TCP connect, DNS or socket error; check the endpoint URL and connectivity"},
    {"STENO_ERR_TLS", "TLS failure: handshake or certificate verification failed; check the CA "
                      "file and server name"},
    {"STENO_ERR_TIMEOUT", "timed out: connect, drain or liveness deadline passed"},
    {"STENO_ERR_AUTH",
     "authentication rejected (HTTP 401/402/403): check the API key or token callback"},
    {"STENO_ERR_REQUEST",
     "request rejected as invalid (HTTP 400/404): check the endpoint path and provider options"},
    {"STENO_ERR_RATE_LIMITED",
     "rate limited by the provider (HTTP 429 or pushback): retrying after the advised delay"},
    {"STENO_ERR_SERVER", "provider-side failure (HTTP 5xx or close 1011)"},
    {"STENO_ERR_PROTOCOL",
     "protocol or policy violation: the provider refused what it was sent (close "
     "1002/1003/1007/1008) or answered outside the protocol; see the close code and reason"},
    {"STENO_ERR_AUDIO_REJECTED", "the provider could not decode the audio (close 1008): check "
                                 "encoding, sample rate and channels"},
    {"STENO_ERR_CLOSED", "the connection closed unexpectedly"},
    {"STENO_ERR_RETRIES_EXHAUSTED",
     "gave up reconnecting: maximum attempts or maximum outage time reached"},
    {"STENO_ERR_BREAKER_OPEN", "the endpoint's circuit breaker is open after repeated failures"},
    {"STENO_ERR_BUDGET_EXHAUSTED",
     "the client's retry budget is spent: too many failures across sessions"},
    {"STENO_ERR_PARSE", "a server message could not be parsed"},
    {"STENO_ERR_TOO_LARGE", "a size exceeded a configured or hard limit"},
    {"STENO_ERR_INTERNAL", "internal error in steno: please report it"},
};

_Static_assert(sizeof(entries) / sizeof(entries[0]) == (size_t)(-STENO__STATUS_MIN) + 1,
               "every steno_status value needs an entry");

static const struct status_entry *lookup(int status)
{
    if (status > 0 || status < STENO__STATUS_MIN)
        return NULL;
    return &entries[-status];
}

const char *steno_strerror(int status)
{
    const struct status_entry *e = lookup(status);
    return e ? e->text : "unknown steno status value";
}

const char *steno_status_name(int status)
{
    const struct status_entry *e = lookup(status);
    return e ? e->name : "STENO_ERR_UNKNOWN";
}

void steno__verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
}

void steno__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    steno__verrf(err, errlen, fmt, ap);
    va_end(ap);
}

int steno__errf_rc(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    steno__verrf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}
