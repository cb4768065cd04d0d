/* steno_status: every error steno can return, as negative values (0 is success). */
#ifndef STENO_STATUS_H
#define STENO_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Errors are values: every fallible steno call returns a steno_status.
 * STENO_OK is 0, every error is negative, and steno_strerror() turns any value
 * into a sentence that says what went wrong and, where possible, what to fix.
 */
typedef enum steno_status {
    STENO_OK = 0,
    STENO_ERR_INVALID_ARG = -1,     /* a NULL or out-of-range argument */
    STENO_ERR_NOMEM = -2,           /* the allocator returned NULL */
    STENO_ERR_STATE = -3,           /* the call is not valid in the object's current state */
    STENO_ERR_FULL = -4,            /* the audio ring is full; the chunk was dropped and counted */
    STENO_ERR_AGAIN = -5,           /* nothing ready yet; try again later */
    STENO_ERR_CONFIG = -6,          /* an unknown option or an invalid configuration value */
    STENO_ERR_FORMAT = -7,          /* audio format unsupported or inconsistent */
    STENO_ERR_UNSUPPORTED = -8,     /* the provider or build does not support this */
    STENO_ERR_NETWORK = -9,         /* TCP connect, DNS or socket failure */
    STENO_ERR_TLS = -10,            /* TLS handshake or certificate verification failed */
    STENO_ERR_TIMEOUT = -11,        /* connect, drain or liveness timeout */
    STENO_ERR_AUTH = -12,           /* credentials rejected (HTTP 401/402/403) */
    STENO_ERR_REQUEST = -13,        /* the request was rejected as invalid (HTTP 400/404) */
    STENO_ERR_RATE_LIMITED = -14,   /* the provider throttled us (HTTP 429, pushback) */
    STENO_ERR_SERVER = -15,         /* the provider failed (HTTP 5xx, close 1011) */
    STENO_ERR_PROTOCOL = -16,       /* protocol or policy violation (close 1002/1003/1007/1008) */
    STENO_ERR_AUDIO_REJECTED = -17, /* the provider could not decode the audio (close 1008) */
    STENO_ERR_CLOSED = -18,         /* the connection closed unexpectedly */
    STENO_ERR_RETRIES_EXHAUSTED = -19, /* gave up: max attempts or max outage time reached */
    STENO_ERR_BREAKER_OPEN = -20,      /* the endpoint's circuit breaker is open */
    STENO_ERR_BUDGET_EXHAUSTED = -21,  /* the client's retry budget is spent */
    STENO_ERR_PARSE = -22,             /* a server message could not be parsed */
    STENO_ERR_TOO_LARGE = -23,         /* a size exceeded a configured or hard limit */
    STENO_ERR_INTERNAL = -24,          /* a bug in steno: please report it */
} steno_status;

/* The lowest (most negative) status value; every value in [STENO__STATUS_MIN, 0] is named. */
#define STENO__STATUS_MIN STENO_ERR_INTERNAL

/* A static, never-NULL English description of status; unknown values say so. */
const char *steno_strerror(int status);

/* The enumerator's name ("STENO_ERR_AUTH"), or "STENO_ERR_UNKNOWN". */
const char *steno_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* STENO_STATUS_H */
