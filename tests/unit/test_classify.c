/* test_classify: every handshake status, close code and provider error maps to the right verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"

#define HS STENO__PHASE_HANDSHAKE
#define OPEN STENO__PHASE_OPEN
#define CLOSING STENO__PHASE_CLOSING

#define RETRY STENO__RETRY
#define AFTER STENO__RETRY_AFTER
#define F_AUTH STENO__FATAL_AUTH
#define F_REQ STENO__FATAL_REQUEST
#define F_PROTO STENO__FATAL_PROTOCOL
#define DONE STENO__DONE

#define TRANS STENO__FAILURE_TRANSIENT
#define SERVER STENO__FAILURE_SERVER

#define T_1994 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */

struct row {
    steno__failure_info in;
    steno__verdict verdict;
    steno_status status;
    steno__failure_class cls;
    int64_t retry_after_ms;
    const char *cause;
};

/* clang-format off */
static const struct row rows[] = {
    /* ---- handshake HTTP status (Deepgram: retry 408/429/499/5xx, fatal 400-404) ---- */
    {{.phase = HS}, RETRY, STENO_ERR_NETWORK, TRANS, -1, "TCP/DNS connect failed"},
    {{.phase = HS, .http_status = 0, .provider_error = "ECONNREFUSED"}, RETRY, STENO_ERR_NETWORK, TRANS, -1,
     "TCP/DNS connect failed: ECONNREFUSED"},
    {{.phase = HS, .http_status = -1}, RETRY, STENO_ERR_NETWORK, TRANS, -1, "TCP/DNS connect failed"},
    {{.phase = HS, .http_status = 400, .provider_error = "Bad Request: unknown model"}, F_REQ,
     STENO_ERR_REQUEST, SERVER, -1, "HTTP 400: Bad Request: unknown model"},
    {{.phase = HS, .http_status = 401, .provider_error = "INVALID_AUTH"}, F_AUTH, STENO_ERR_AUTH,
     SERVER, -1, "HTTP 401: INVALID_AUTH"},
    {{.phase = HS, .http_status = 401, .retry_after = "5"}, F_AUTH, STENO_ERR_AUTH, SERVER, -1,
     "HTTP 401"}, /* fatal: a Retry-After changes nothing */
    {{.phase = HS, .http_status = 402}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "HTTP 402"},
    {{.phase = HS, .http_status = 403}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "HTTP 403"},
    {{.phase = HS, .http_status = 404}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 404"},
    {{.phase = HS, .http_status = 408}, RETRY, STENO_ERR_TIMEOUT, TRANS, -1, "HTTP 408"},
    {{.phase = HS, .http_status = 429}, AFTER, STENO_ERR_RATE_LIMITED, SERVER, -1, "HTTP 429"},
    {{.phase = HS, .http_status = 429, .retry_after = "30"}, AFTER, STENO_ERR_RATE_LIMITED, SERVER,
     30000, "HTTP 429"},
    {{.phase = HS, .http_status = 429, .retry_after = "Sun, 06 Nov 1994 08:49:37 GMT",
      .now_unix = T_1994 - 120}, AFTER, STENO_ERR_RATE_LIMITED, SERVER, 120000, "HTTP 429"},
    /* with the clock in ms the date's delay is exact: 120.25 s, not the 121 s of whole seconds */
    {{.phase = HS, .http_status = 429, .retry_after = "Sun, 06 Nov 1994 08:49:37 GMT",
      .now_unix = T_1994 - 121, .now_unix_ms = T_1994 * 1000ll - 120250}, AFTER,
     STENO_ERR_RATE_LIMITED, SERVER, 120250, "HTTP 429"},
    {{.phase = OPEN, .close_code = 1011, .retry_after = "Sun, 06 Nov 1994 08:49:37 GMT",
      .now_unix = T_1994 - 1, .now_unix_ms = T_1994 * 1000ll - 1}, AFTER, STENO_ERR_SERVER, SERVER,
     1, "close 1011"},
    {{.phase = HS, .http_status = 429, .retry_after = "soon"}, AFTER, STENO_ERR_RATE_LIMITED, SERVER,
     -1, "HTTP 429"},
    {{.phase = HS, .http_status = 429, .retry_after = "-3"}, AFTER, STENO_ERR_RATE_LIMITED, SERVER,
     -1, "HTTP 429"},
    {{.phase = HS, .http_status = 499}, RETRY, STENO_ERR_CLOSED, TRANS, -1, "HTTP 499"},
    {{.phase = HS, .http_status = 500}, RETRY, STENO_ERR_SERVER, SERVER, -1, "HTTP 500"},
    {{.phase = HS, .http_status = 502}, RETRY, STENO_ERR_SERVER, SERVER, -1, "HTTP 502"},
    {{.phase = HS, .http_status = 503}, RETRY, STENO_ERR_SERVER, SERVER, -1, "HTTP 503"},
    {{.phase = HS, .http_status = 503, .retry_after = "5"}, AFTER, STENO_ERR_SERVER, SERVER, 5000,
     "HTTP 503"},
    {{.phase = HS, .http_status = 504}, RETRY, STENO_ERR_SERVER, SERVER, -1, "HTTP 504"},
    {{.phase = HS, .http_status = 599}, RETRY, STENO_ERR_SERVER, SERVER, -1, "HTTP 599"},
    {{.phase = HS, .http_status = 408, .retry_after = "1"}, AFTER, STENO_ERR_TIMEOUT, SERVER, 1000,
     "HTTP 408"}, /* pushback counts as throttling */
    {{.phase = HS, .http_status = 405}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 405"},
    {{.phase = HS, .http_status = 409}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 409"},
    {{.phase = HS, .http_status = 410}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 410"},
    {{.phase = HS, .http_status = 413}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 413"},
    {{.phase = HS, .http_status = 418}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 418"},
    {{.phase = HS, .http_status = 426}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 426"},
    {{.phase = HS, .http_status = 451}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "HTTP 451"},
    {{.phase = HS, .http_status = 100}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "HTTP 100"},
    {{.phase = HS, .http_status = 200}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "HTTP 200"},
    {{.phase = HS, .http_status = 302}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "HTTP 302"},
    {{.phase = HS, .http_status = 600}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "HTTP 600"},
    {{.phase = HS, .http_status = 503, .connect_timeout = true}, RETRY, STENO_ERR_SERVER, SERVER, -1,
     "HTTP 503"}, /* the answer beats our own timer */

    /* ---- TLS ---- */
    {{.phase = HS, .tls = STENO__TLS_CERTIFICATE}, F_PROTO, STENO_ERR_TLS, SERVER, -1,
     "TLS certificate verification failed"},
    {{.phase = HS, .tls = STENO__TLS_CERTIFICATE, .provider_error = "certificate has expired"},
     F_PROTO, STENO_ERR_TLS, SERVER, -1,
     "TLS certificate verification failed: certificate has expired"},
    {{.phase = HS, .tls = STENO__TLS_INTERRUPTED}, RETRY, STENO_ERR_TLS, TRANS, -1,
     "TLS handshake interrupted"},

    /* ---- our own timers ---- */
    {{.phase = HS, .connect_timeout = true}, RETRY, STENO_ERR_TIMEOUT, TRANS, -1, "connect timeout"},
    {{.phase = OPEN, .liveness_timeout = true}, RETRY, STENO_ERR_TIMEOUT, TRANS, -1,
     "liveness timeout (no frames)"},

    /* ---- no information at all ---- */
    {{.phase = OPEN}, RETRY, STENO_ERR_CLOSED, TRANS, -1, "connection dropped"},
    {{.phase = OPEN, .http_status = 101}, RETRY, STENO_ERR_CLOSED, TRANS, -1, "connection dropped"},
    {{.phase = CLOSING}, RETRY, STENO_ERR_CLOSED, TRANS, -1, "connection dropped"},
    {{.phase = OPEN, .provider_error = "DATA-0000"}, F_REQ, STENO_ERR_AUDIO_REJECTED, SERVER, -1,
     "provider error: DATA-0000 (audio not decodable)"},

    /* ---- RFC 6455 close codes ---- */
    {{.phase = OPEN, .http_status = 101, .close_code = 1000}, RETRY, STENO_ERR_CLOSED, SERVER, -1,
     "close 1000 (server ended the stream)"},
    {{.phase = CLOSING, .close_code = 1000}, DONE, STENO_OK, SERVER, -1, "close 1000"},
    {{.phase = CLOSING, .close_code = 1000, .retry_after = "5"}, DONE, STENO_OK, SERVER, -1,
     "close 1000"},
    {{.phase = OPEN, .close_code = 1001}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 1001 (going away)"},
    {{.phase = OPEN, .close_code = 1002}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "close 1002"},
    {{.phase = OPEN, .close_code = 1003}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "close 1003"},
    {{.phase = OPEN, .close_code = 1004}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 1004"},
    {{.phase = OPEN, .close_code = 1005}, RETRY, STENO_ERR_CLOSED, TRANS, -1, "close 1005"},
    {{.phase = OPEN, .close_code = 1006}, RETRY, STENO_ERR_CLOSED, TRANS, -1,
     "close 1006 (abnormal closure)"},
    {{.phase = CLOSING, .close_code = 1006}, RETRY, STENO_ERR_CLOSED, TRANS, -1,
     "close 1006 (abnormal closure)"}, /* reconnect to finalize the unacked tail */
    {{.phase = OPEN, .close_code = 1007}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "close 1007"},
    /* 1008 is a close over the stream, not a rejected request: never "HTTP 400/404" */
    {{.phase = OPEN, .close_code = 1008, .close_reason = "policy"}, F_PROTO, STENO_ERR_PROTOCOL,
     SERVER, -1, "close 1008 policy (policy violation)"},
    {{.phase = OPEN, .close_code = 1008}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 1008 (policy violation)"},
    {{.phase = OPEN, .close_code = 1008, .close_reason = "DATA-0001 unrecognised text message"},
     F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 1008 DATA-0001 unrecognised text message (policy violation)"},
    {{.phase = OPEN, .close_code = 1008, .close_reason = "policy", .retry_after = "5"}, F_PROTO,
     STENO_ERR_PROTOCOL, SERVER, -1, "close 1008 policy (policy violation)"},
    {{.phase = CLOSING, .close_code = 1008, .close_reason = "policy"}, F_PROTO, STENO_ERR_PROTOCOL,
     SERVER, -1, "close 1008 policy (policy violation)"},
    {{.phase = OPEN, .close_code = 1009}, F_PROTO, STENO_ERR_TOO_LARGE, SERVER, -1,
     "close 1009 (message too big)"},
    {{.phase = OPEN, .close_code = 1010}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1, "close 1010"},
    {{.phase = OPEN, .close_code = 1011, .close_reason = "internal"}, RETRY, STENO_ERR_SERVER, SERVER,
     -1, "close 1011 internal"},
    {{.phase = OPEN, .close_code = 1011, .retry_after = "2"}, AFTER, STENO_ERR_SERVER, SERVER, 2000,
     "close 1011"},
    {{.phase = OPEN, .close_code = 1012}, RETRY, STENO_ERR_SERVER, SERVER, -1,
     "close 1012 (service restart)"},
    {{.phase = OPEN, .close_code = 1013}, AFTER, STENO_ERR_RATE_LIMITED, SERVER, -1,
     "close 1013 (try again later)"},
    {{.phase = OPEN, .close_code = 1014}, RETRY, STENO_ERR_SERVER, SERVER, -1, "close 1014"},
    {{.phase = HS, .close_code = 1015}, F_PROTO, STENO_ERR_TLS, SERVER, -1, "close 1015"},
    {{.phase = OPEN, .close_code = 1016}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 1016"},
    {{.phase = OPEN, .close_code = 2999}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 2999"},
    {{.phase = OPEN, .close_code = 999}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 999 (invalid close code)"},
    {{.phase = OPEN, .close_code = 5000}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 5000 (invalid close code)"},
    {{.phase = OPEN, .close_code = -1}, F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close -1 (invalid close code)"},

    /* ---- Deepgram payloads ---- */
    {{.phase = OPEN, .close_code = 1008, .close_reason = "DATA-0000"}, F_REQ, STENO_ERR_AUDIO_REJECTED,
     SERVER, -1, "close 1008 DATA-0000 (audio not decodable)"},
    {{.phase = OPEN, .close_code = 1002, .close_reason = "DATA-0000"}, F_REQ, STENO_ERR_AUDIO_REJECTED,
     SERVER, -1, "close 1002 DATA-0000 (audio not decodable)"}, /* older documentation */
    {{.phase = OPEN, .close_code = 1011, .close_reason = "NET-0000"}, RETRY, STENO_ERR_SERVER, SERVER,
     -1, "close 1011 NET-0000 (no results from server)"},
    {{.phase = OPEN, .close_code = 1011, .close_reason = "NET-0001"}, RETRY, STENO_ERR_TIMEOUT, TRANS,
     -1, "close 1011 NET-0001 (idle timeout)"},
    {{.phase = OPEN, .close_code = 1011, .close_reason = "net-0001"}, RETRY, STENO_ERR_TIMEOUT, TRANS,
     -1, "close 1011 net-0001 (idle timeout)"},
    {{.phase = OPEN, .close_code = 1011, .provider_error = "NET-0001"}, RETRY, STENO_ERR_TIMEOUT, TRANS,
     -1, "close 1011 NET-0001 (idle timeout)"}, /* code from the Error message, no reason */

    /* ---- steno-server: audio faster than its --max-rate (fatal: a retry replays as fast) ---- */
    {{.phase = OPEN, .close_code = 1008, .close_reason = "RATE-0000 audio faster than 2x real time"},
     F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 1008 RATE-0000 audio faster than 2x real time (policy violation: sending too fast; "
     "lower send_speed_permille)"},
    {{.phase = OPEN, .close_code = 1008, .provider_error = "RATE-0000 audio faster than 1.25x real time"},
     F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 1008 RATE-0000 audio faster than 1.25x real time (policy violation: sending too fast; "
     "lower send_speed_permille)"},

    /* ---- IANA-registered application codes ---- */
    {{.phase = OPEN, .close_code = 3000}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "close 3000"},
    {{.phase = OPEN, .close_code = 3003}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "close 3003"},
    {{.phase = OPEN, .close_code = 3001}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 3001"},

    /* ---- AssemblyAI Universal Streaming v3 ---- */
    {{.phase = OPEN, .close_code = 3005, .close_reason = "Session Cancelled: An error occurred"}, RETRY,
     STENO_ERR_SERVER, SERVER, -1, "close 3005 Session Cancelled: An error occurred (server error)"},
    {{.phase = OPEN, .close_code = 3006, .close_reason = "Invalid JSON: {"}, F_PROTO,
     STENO_ERR_PROTOCOL, SERVER, -1, "close 3006 Invalid JSON: { (invalid message)"},
    {{.phase = OPEN, .close_code = 3007,
      .close_reason = "Input duration violation: 20 ms. Expected between 50 and 1000 ms"}, F_PROTO,
     STENO_ERR_PROTOCOL, SERVER, -1,
     "close 3007 Input duration violation: 20 ms. Expected between 50 and 1000 ms (audio frame "
     "length outside 50-1000 ms)"},
    {{.phase = OPEN, .close_code = 3007,
      .close_reason = "Audio Transmission Rate Exceeded: Received 3.1 sec. audio in 1.5 sec"},
     F_PROTO, STENO_ERR_PROTOCOL, SERVER, -1,
     "close 3007 Audio Transmission Rate Exceeded: Received 3.1 sec. audio in 1.5 sec (sending "
     "too fast; lower send_speed_permille)"},
    {{.phase = OPEN, .close_code = 3008,
      .close_reason = "Session Expired: Maximum session duration exceeded"}, RETRY, STENO_ERR_CLOSED,
     SERVER, -1, "close 3008 Session Expired: Maximum session duration exceeded (session expired)"},
    {{.phase = OPEN, .close_code = 3009,
      .close_reason = "Unauthorized Connection: Too many concurrent sessions"}, AFTER,
     STENO_ERR_RATE_LIMITED, SERVER, -1,
     "close 3009 Unauthorized Connection: Too many concurrent sessions (too many concurrent "
     "sessions)"},
    {{.phase = OPEN, .close_code = 1008,
      .close_reason = "Unauthorized Connection: Too many concurrent sessions"}, AFTER,
     STENO_ERR_RATE_LIMITED, SERVER, -1,
     "close 1008 Unauthorized Connection: Too many concurrent sessions"},
    {{.phase = OPEN, .close_code = 1008,
      .close_reason = "Unauthorized Connection: Missing Authorization header"}, F_AUTH, STENO_ERR_AUTH,
     SERVER, -1, "close 1008 Unauthorized Connection: Missing Authorization header"},
    {{.phase = OPEN, .close_code = 1008, .close_reason = "See Error message for details",
      .provider_error = "Unauthorized Connection: insufficient balance"}, F_AUTH, STENO_ERR_AUTH,
     SERVER, -1, "close 1008 See Error message for details"},

    /* ---- private 4000-4999: 4000 + HTTP status, else unknown ---- */
    {{.phase = OPEN, .close_code = 4400}, F_REQ, STENO_ERR_REQUEST, SERVER, -1, "close 4400"},
    {{.phase = OPEN, .close_code = 4401}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "close 4401"},
    {{.phase = OPEN, .close_code = 4403}, F_AUTH, STENO_ERR_AUTH, SERVER, -1, "close 4403"},
    {{.phase = OPEN, .close_code = 4429}, AFTER, STENO_ERR_RATE_LIMITED, SERVER, -1, "close 4429"},
    {{.phase = OPEN, .close_code = 4503}, RETRY, STENO_ERR_SERVER, SERVER, -1, "close 4503"},
    {{.phase = OPEN, .close_code = 4000}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 4000"},
    {{.phase = OPEN, .close_code = 4001}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 4001"},
    {{.phase = OPEN, .close_code = 4999}, RETRY, STENO_ERR_CLOSED, SERVER, -1, "close 4999"},
};
/* clang-format on */

static void test_every_row_of_the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        steno__classification c;
        memset(&c, 0x5a, sizeof(c));
        steno__classify(&r->in, &c);
        if (c.verdict != r->verdict || c.status != r->status || c.failure_class != r->cls ||
            c.retry_after_ms != r->retry_after_ms || strcmp(c.cause, r->cause) != 0)
            fail_msg("row %zu (%s): got %s %s class %d ra %lld \"%s\"; want %s %s class %d ra %lld "
                     "\"%s\"",
                     i, r->cause, steno__verdict_name(c.verdict), steno_status_name(c.status),
                     (int)c.failure_class, (long long)c.retry_after_ms, c.cause,
                     steno__verdict_name(r->verdict), steno_status_name(r->status), (int)r->cls,
                     (long long)r->retry_after_ms, r->cause);
    }
}

static void test_fatal_verdicts_never_carry_a_retry_delay(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__failure_info in = rows[i].in;
        in.retry_after = "7";
        steno__classification c;
        steno__classify(&in, &c);
        if (steno__verdict_is_fatal(c.verdict) || c.verdict == STENO__DONE) {
            assert_int_equal(c.retry_after_ms, -1);
        } else {
            assert_int_equal(c.verdict, STENO__RETRY_AFTER);
            assert_int_equal(c.retry_after_ms, 7000);
            assert_int_equal(c.failure_class, STENO__FAILURE_SERVER);
        }
    }
}

/* STENO_ERR_REQUEST's words send the user to the endpoint path and options (HTTP 400/404): only
 * a rejected handshake, or a close code that stands for one (44xx), may carry it. */
static void test_request_status_only_for_a_rejected_request(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__classification c;
        steno__classify(&rows[i].in, &c);
        const steno__failure_info *in = &rows[i].in;
        if (c.status == STENO_ERR_REQUEST)
            assert_true((in->http_status >= 400 && in->http_status <= 499) ||
                        (in->close_code >= 4400 && in->close_code <= 4499));
    }
    static const char *const reasons[] = {
        NULL, "", "policy", "RATE-0000 audio faster than 2x", "DATA-0001 bad text", "Bad Request"};
    for (int code = 1000; code <= 4999; code++) {
        for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++) {
            steno__failure_info in = {
                .phase = OPEN, .close_code = code, .close_reason = reasons[k]};
            steno__classification c;
            steno__classify(&in, &c);
            if (c.status == STENO_ERR_REQUEST && !(code >= 4400 && code <= 4499))
                fail_msg("close %d '%s' reported as a rejected request", code,
                         reasons[k] ? reasons[k] : "(null)");
        }
    }
}

static void test_statuses_match_the_verdict(void **state)
{
    (void)state;
    /* Retryable verdicts never surface as auth/request errors and vice versa. */
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__classification c;
        steno__classify(&rows[i].in, &c);
        if (c.verdict == STENO__FATAL_AUTH)
            assert_int_equal(c.status, STENO_ERR_AUTH);
        if (c.verdict == STENO__RETRY || c.verdict == STENO__RETRY_AFTER)
            assert_true(c.status != STENO_ERR_AUTH && c.status != STENO_ERR_REQUEST &&
                        c.status != STENO_ERR_AUDIO_REJECTED && c.status != STENO_ERR_PROTOCOL);
        assert_true(c.status < 0 || c.verdict == STENO__DONE);
    }
}

static void test_cause_is_sanitised_and_bounded(void **state)
{
    (void)state;
    char reason[400];
    memset(reason, 'x', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    reason[3] = '\n';
    reason[4] = (char)0xc3; /* UTF-8 lead byte */
    steno__failure_info in = {
        .phase = STENO__PHASE_OPEN, .close_code = 1011, .close_reason = reason};
    steno__classification c;
    steno__classify(&in, &c);
    assert_int_equal(strlen(c.cause), STENO__CAUSE_MAX - 1);
    assert_memory_equal(c.cause, "close 1011 xxx??xx", 18);
    for (const char *p = c.cause; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

/* Only a close for the pace of the audio sets pacing: a backfill connection retries those. */
static void test_pacing_flag_only_for_rate_closes(void **state)
{
    (void)state;
    steno__classification c;
    steno__failure_info in = {.phase = STENO__PHASE_OPEN,
                              .close_code = 3007,
                              .close_reason = "Audio Transmission Rate Exceeded"};
    steno__classify(&in, &c);
    assert_true(c.pacing);
    in.close_reason = "Input duration violation: 20 ms";
    steno__classify(&in, &c);
    assert_false(c.pacing);
    in.close_code = 1008;
    in.close_reason = "RATE-0000 audio faster than 1.25x real time";
    steno__classify(&in, &c);
    assert_true(c.pacing);
    in.close_reason = "Unauthorized Connection: bad key";
    steno__classify(&in, &c);
    assert_false(c.pacing);
    in.close_code = 3008;
    in.close_reason = "Session Expired";
    steno__classify(&in, &c);
    assert_false(c.pacing);
}

static void test_null_arguments(void **state)
{
    (void)state;
    steno__classification c;
    steno__classify(NULL, &c);
    assert_int_equal(c.verdict, STENO__FATAL_PROTOCOL);
    assert_int_equal(c.status, STENO_ERR_INVALID_ARG);
    assert_int_equal(c.retry_after_ms, -1);
    steno__failure_info in = {0};
    steno__classify(&in, NULL); /* no crash */
}

static void test_verdict_names_and_fatality(void **state)
{
    (void)state;
    static const struct {
        steno__verdict v;
        const char *name;
        bool fatal;
    } vs[] = {
        {STENO__RETRY, "retry", false},
        {STENO__RETRY_AFTER, "retry_after", false},
        {STENO__FATAL_AUTH, "fatal_auth", true},
        {STENO__FATAL_REQUEST, "fatal_request", true},
        {STENO__FATAL_PROTOCOL, "fatal_protocol", true},
        {STENO__DONE, "done", false},
        {(steno__verdict)99, "unknown", false},
    };
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        assert_string_equal(steno__verdict_name(vs[i].v), vs[i].name);
        assert_int_equal(steno__verdict_is_fatal(vs[i].v), vs[i].fatal);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_of_the_table),
        cmocka_unit_test(test_fatal_verdicts_never_carry_a_retry_delay),
        cmocka_unit_test(test_statuses_match_the_verdict),
        cmocka_unit_test(test_request_status_only_for_a_rejected_request),
        cmocka_unit_test(test_cause_is_sanitised_and_bounded),
        cmocka_unit_test(test_pacing_flag_only_for_rate_closes),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_verdict_names_and_fatality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
