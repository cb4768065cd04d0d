/* classify: turn how a connection failed into what to do next (retry, wait, or fail). */
#include "classify.h"

#include <stdio.h>
#include <string.h>

#include "backoff.h"

/*
 * Sources for the table below:
 *  - RFC 6455 7.4.1 and the IANA WebSocket close code registry (1000-1015;
 *    3000 Unauthorized, 3003 Forbidden, 3008 Timeout).
 *  - Deepgram live streaming: handshake failures carry dg-error; retry on
 *    408/429/499/5xx, fatal on 400/401/402/403/404. In-stream errors close
 *    with a code and a payload: DATA-0000 (audio cannot be decoded; sent with
 *    1008 today, 1002 in older documentation), NET-0000 (the service sent no
 *    results within its timeout), NET-0001 (the service received no audio
 *    within its timeout, ~10 s), both with 1011 ("STT Troubleshooting
 *    WebSocket, NET, and DATA Errors", developers.deepgram.com).
 *  - AssemblyAI Universal Streaming v3 ("Common session errors and
 *    closures", assemblyai.com/docs/streaming): 3005 Session Cancelled
 *    (unknown server error), 3006 Invalid Message Type / Invalid JSON /
 *    Invalid Message, 3007 Input duration violation (chunks outside
 *    50-1000 ms) or Audio Transmission Rate Exceeded, 3008 Session Expired
 *    (3-hour limit), 3009 Unauthorized Connection: Too many concurrent
 *    sessions; earlier revisions sent "Unauthorized Connection: ..." with
 *    1008, which is still recognised.
 *  - Gemini Live API (specs/gemini README; no code is documented, all observed): 1007 for an
 *    invalid argument or an invalid/expired API key (the reason says which), 1008 for a model or
 *    feature the endpoint does not support, 1011 for internal errors and for an exhausted quota
 *    ("You exceeded your current quota..."); a refused session resumption handle is read from
 *    its reason ("resumption handle") and retried, as the adapter then starts a new session.
 *  - OpenAI Realtime (specs/openai/README.md): errors are `error` events before the close,
 *    whose code the adapter keeps as the provider error: invalid_api_key (then close 3000)
 *    is fatal whatever the close code; session_expired (the 60-minute limit, then a close
 *    whose code is unconfirmed) is retried at once, even during a close, since the server
 *    ended the session, not our end of stream.
 *  - steno-server (the local test server) closes with 1008 'RATE-0000 audio
 *    faster than Kx real time' when audio arrives faster than its --max-rate.
 *  - Private codes 4400-4599 are read as 4000 + an HTTP status (a common
 *    convention, e.g. 4401, 4429); other 4000-4999 codes are unknown
 *    provider codes and are retried (bounded by backoff, breaker, budget).
 */

struct rule {
    steno__verdict verdict;
    steno_status status;
    steno__failure_class cls;
};

static const struct rule RETRY_TRANSIENT = {STENO__RETRY, STENO_ERR_CLOSED,
                                            STENO__FAILURE_TRANSIENT};

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive substring test (strcasestr is not in ISO C). */
static bool contains(const char *hay, const char *needle)
{
    if (!hay)
        return false;
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && lower(hay[i]) == lower(needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static bool either_contains(const steno__failure_info *in, const char *needle)
{
    return contains(in->close_reason, needle) || contains(in->provider_error, needle);
}

/* Append printable ASCII of s (others become '?') to out[len..cap), keeping the NUL. */
static size_t append(char *out, size_t len, size_t cap, const char *s)
{
    if (!s)
        return len;
    for (; *s && len + 1 < cap; s++)
        out[len++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    out[len] = '\0';
    return len;
}

/* "head: detail note", or "close N detail note" for close frames (detail is
 * then the reason text, read as part of the code: "close 1011 NET-0001"). */
static void set_cause(steno__classification *out, const char *head, const char *detail,
                      const char *note)
{
    size_t len = append(out->cause, 0, sizeof(out->cause), head);
    if (detail && *detail) {
        len = append(out->cause, len, sizeof(out->cause), strncmp(head, "close ", 6) ? ": " : " ");
        len = append(out->cause, len, sizeof(out->cause), detail);
    }
    if (note)
        append(out->cause, len, sizeof(out->cause), note);
}

static void apply(steno__classification *out, struct rule r)
{
    out->verdict = r.verdict;
    out->status = r.status;
    out->failure_class = r.cls;
}

static struct rule http_rule(int status)
{
    switch (status) {
    case 400:
    case 404:
        return (struct rule){STENO__FATAL_REQUEST, STENO_ERR_REQUEST, STENO__FAILURE_SERVER};
    case 401:
    case 402: /* Deepgram: payment required (no credit) */
    case 403:
        return (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
    case 408:
        return (struct rule){STENO__RETRY, STENO_ERR_TIMEOUT, STENO__FAILURE_TRANSIENT};
    case 429:
        return (struct rule){STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED, STENO__FAILURE_SERVER};
    case 499: /* the request was cut off before the server answered */
        return (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_TRANSIENT};
    }
    if (status >= 500 && status <= 599)
        return (struct rule){STENO__RETRY, STENO_ERR_SERVER, STENO__FAILURE_SERVER};
    if (status >= 400 && status <= 499)
        return (struct rule){STENO__FATAL_REQUEST, STENO_ERR_REQUEST, STENO__FAILURE_SERVER};
    /* 1xx/2xx/3xx where an upgrade was expected, or nonsense: not a
     * WebSocket server we can talk to; retrying will not change that. */
    return (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
}

/* Sets the rule for a close code and returns a parenthetical note (or NULL). */
static const char *close_rule(const steno__failure_info *in, struct rule *r, bool *pacing)
{
    int code = in->close_code;

    /* Deepgram's payload codes decide whatever the close code. */
    if (either_contains(in, "DATA-0000")) {
        *r = (struct rule){STENO__FATAL_REQUEST, STENO_ERR_AUDIO_REJECTED, STENO__FAILURE_SERVER};
        return " (audio not decodable)";
    }
    if (either_contains(in, "NET-0001")) {
        *r = (struct rule){STENO__RETRY, STENO_ERR_TIMEOUT, STENO__FAILURE_TRANSIENT};
        return " (idle timeout)";
    }
    if (either_contains(in, "NET-0000")) {
        *r = (struct rule){STENO__RETRY, STENO_ERR_SERVER, STENO__FAILURE_SERVER};
        return " (no results from server)";
    }

    /* Gemini: the reason tells a credential or a handle from a bad request (all 1007), and a
     * quota from an internal error (both 1011). */
    if (code == 1007 && (either_contains(in, "API key") || either_contains(in, "API_KEY"))) {
        *r = (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
        return " (credential rejected)";
    }
    if (code == 1007 && either_contains(in, "resumption handle")) {
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return " (session resumption refused: a new session follows)";
    }
    if (code == 1011 && either_contains(in, "quota")) {
        *r = (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
        return " (quota exhausted: check the plan and billing)";
    }
    if (code == 1011 && either_contains(in, "resource has been exhausted")) {
        *r = (struct rule){STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED, STENO__FAILURE_SERVER};
        return " (resource exhausted)";
    }
    if (contains(in->provider_error, "invalid_api_key")) {
        *r = (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
        return " (invalid API key)";
    }
    if (contains(in->provider_error, "session_expired")) {
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return " (session expired)";
    }

    switch (code) {
    case 1000: /* normal: fine if we asked for it, else the server ended the stream */
        if (in->phase == STENO__PHASE_CLOSING) {
            *r = (struct rule){STENO__DONE, STENO_OK, STENO__FAILURE_SERVER};
            return NULL;
        }
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return " (server ended the stream)";
    case 1001: /* going away: server restart or deploy */
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return " (going away)";
    case 1005: /* no status in the close frame */
    case 1006: /* abnormal: no close frame, the TCP connection just ended */
        *r = RETRY_TRANSIENT;
        return code == 1006 ? " (abnormal closure)" : NULL;
    case 1002: /* protocol error */
    case 1003: /* unsupported data */
    case 1007: /* invalid payload data */
    case 1010: /* mandatory extension */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
        return NULL;
    case 1008: /* policy violation */
        if (contains(in->close_reason, "too many concurrent") ||
            contains(in->provider_error, "too many concurrent")) {
            *r = (struct rule){STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED, STENO__FAILURE_SERVER};
            return NULL;
        }
        if (either_contains(in, "unauthorized")) {
            *r = (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
            return NULL;
        }
        /* The stream broke a rule of the server's: a close, not a rejected request (no HTTP
         * 400/404 happened), so the status must not send the user to the endpoint path.
         * Fatal: retrying sends the same stream the same way. */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
        if (either_contains(in, "RATE-0000")) {
            *pacing = true;
            /* steno-server --max-rate: the server accepts less than the pacing sends; a retry
             * would replay the backlog at the same speed and be closed again. */
            return " (policy violation: sending too fast; lower send_speed_permille)";
        }
        return " (policy violation)";
    case 1009: /* message too big: we sent a frame the server will never accept */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_TOO_LARGE, STENO__FAILURE_SERVER};
        return " (message too big)";
    case 1011: /* internal error */
    case 1014: /* bad gateway */
        *r = (struct rule){STENO__RETRY, STENO_ERR_SERVER, STENO__FAILURE_SERVER};
        return NULL;
    case 1012: /* service restart */
        *r = (struct rule){STENO__RETRY, STENO_ERR_SERVER, STENO__FAILURE_SERVER};
        return " (service restart)";
    case 1013: /* try again later: pushback without a time */
        *r = (struct rule){STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED, STENO__FAILURE_SERVER};
        return " (try again later)";
    case 1015: /* TLS handshake failure (reported locally, never sent) */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_TLS, STENO__FAILURE_SERVER};
        return NULL;
    case 3000: /* IANA: Unauthorized */
    case 3003: /* IANA: Forbidden */
        *r = (struct rule){STENO__FATAL_AUTH, STENO_ERR_AUTH, STENO__FAILURE_SERVER};
        return NULL;
    case 3005: /* AssemblyAI: session cancelled, server error */
        *r = (struct rule){STENO__RETRY, STENO_ERR_SERVER, STENO__FAILURE_SERVER};
        return " (server error)";
    case 3006: /* AssemblyAI: invalid message: we sent something it does not understand */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
        return " (invalid message)";
    case 3007:
        /* AssemblyAI: "Input duration violation" (a frame outside 50-1000 ms) is a client
         * bug that a retry repeats. Anything else with 3007 ("Audio Transmission Rate
         * Exceeded") is the pacing's: like steno-server's RATE-0000 it is fatal on the live
         * connection (a retry replays the backlog at the same speed) and retried on a
         * backfill connection. */
        *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
        if (either_contains(in, "duration"))
            return " (audio frame length outside 50-1000 ms)";
        *pacing = true;
        return " (sending too fast; lower send_speed_permille)";
    case 3008: /* AssemblyAI: session expired (max duration); IANA: timeout */
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return " (session expired)";
    case 3009: /* AssemblyAI: too many concurrent sessions */
        *r = (struct rule){STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED, STENO__FAILURE_SERVER};
        return " (too many concurrent sessions)";
    }
    if (code >= 4400 && code <= 4599) {
        *r = http_rule(code - 4000);
        return NULL;
    }
    if (code >= 1000 && code <= 4999) {
        /* Reserved, unregistered or private codes we do not know: the
         * connection is gone and nothing says retrying is futile. */
        *r = (struct rule){STENO__RETRY, STENO_ERR_CLOSED, STENO__FAILURE_SERVER};
        return NULL;
    }
    /* RFC 6455 7.4.2: codes below 1000 or above 4999 are never valid. */
    *r = (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL, STENO__FAILURE_SERVER};
    return " (invalid close code)";
}

void steno__classify(const steno__failure_info *in, steno__classification *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (!in) {
        apply(out,
              (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_INVALID_ARG, STENO__FAILURE_SERVER});
        set_cause(out, "no failure information", NULL, NULL);
        return;
    }

    char head[32];
    if (in->tls == STENO__TLS_CERTIFICATE) {
        /* A certificate that does not verify is a configuration problem
         * (CA file, server name, clock, interception): retrying forever would
         * only hide it. */
        apply(out, (struct rule){STENO__FATAL_PROTOCOL, STENO_ERR_TLS, STENO__FAILURE_SERVER});
        set_cause(out, "TLS certificate verification failed", in->provider_error, NULL);
    } else if (in->http_status > 0 && in->http_status != 101) {
        apply(out, http_rule(in->http_status));
        snprintf(head, sizeof(head), "HTTP %d", in->http_status);
        set_cause(out, head, in->provider_error, NULL);
    } else if (in->close_code != 0) {
        struct rule r;
        const char *note = close_rule(in, &r, &out->pacing);
        apply(out, r);
        snprintf(head, sizeof(head), "close %d", in->close_code);
        const char *detail =
            in->close_reason && *in->close_reason ? in->close_reason : in->provider_error;
        set_cause(out, head, detail, note);
    } else if (in->tls == STENO__TLS_INTERRUPTED) {
        /* Reset or EOF mid-handshake: the network, not the configuration. */
        apply(out, (struct rule){STENO__RETRY, STENO_ERR_TLS, STENO__FAILURE_TRANSIENT});
        set_cause(out, "TLS handshake interrupted", in->provider_error, NULL);
    } else if (in->connect_timeout || in->liveness_timeout) {
        apply(out, (struct rule){STENO__RETRY, STENO_ERR_TIMEOUT, STENO__FAILURE_TRANSIENT});
        set_cause(out, in->connect_timeout ? "connect timeout" : "liveness timeout (no frames)",
                  in->provider_error, NULL);
    } else if (either_contains(in, "DATA-0000")) {
        /* A provider Error message arrived but the close frame was lost. */
        apply(out,
              (struct rule){STENO__FATAL_REQUEST, STENO_ERR_AUDIO_REJECTED, STENO__FAILURE_SERVER});
        set_cause(out, "provider error", in->provider_error, " (audio not decodable)");
    } else if (in->phase == STENO__PHASE_HANDSHAKE) {
        apply(out, (struct rule){STENO__RETRY, STENO_ERR_NETWORK, STENO__FAILURE_TRANSIENT});
        set_cause(out, "TCP/DNS connect failed", in->provider_error, NULL);
    } else {
        /* Open or closing, and the connection vanished without a word: the
         * engine reconnects (while closing, to finalize the unacked tail). */
        apply(out, RETRY_TRANSIENT);
        set_cause(out, "connection dropped", in->provider_error, NULL);
    }

    if (!steno__verdict_is_fatal(out->verdict) && out->verdict != STENO__DONE) {
        out->retry_after_ms = in->now_unix_ms
                                  ? steno__retry_after_parse_ms(in->retry_after, in->now_unix_ms)
                                  : steno__retry_after_parse(in->retry_after, in->now_unix);
        if (out->retry_after_ms >= 0) {
            out->verdict = STENO__RETRY_AFTER;
            out->failure_class = STENO__FAILURE_SERVER;
        }
    }
}

bool steno__verdict_is_fatal(steno__verdict v)
{
    return v == STENO__FATAL_AUTH || v == STENO__FATAL_REQUEST || v == STENO__FATAL_PROTOCOL;
}

const char *steno__verdict_name(steno__verdict v)
{
    switch (v) {
    case STENO__RETRY:
        return "retry";
    case STENO__RETRY_AFTER:
        return "retry_after";
    case STENO__FATAL_AUTH:
        return "fatal_auth";
    case STENO__FATAL_REQUEST:
        return "fatal_request";
    case STENO__FATAL_PROTOCOL:
        return "fatal_protocol";
    case STENO__DONE:
        return "done";
    }
    return "unknown";
}
