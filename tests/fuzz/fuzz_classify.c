/* fuzz_classify: any failure description (status, close code, reason, Retry-After) gets a sane
 * verdict. */
#include <ctype.h>

#include "backoff.h"
#include "classify.h"
#include "fuzz_common.h"
#include "steno/status.h"

/*
 * Input: a header of small selectors and numbers (see read_info), then three
 * NUL-separated strings: Retry-After, close reason, provider error (dg-error
 * header or Error message text).
 *
 * Properties:
 *  - every field of the classification is in range: a known verdict, a named
 *    status (STENO_OK exactly for DONE), a known failure class, a non-empty
 *    printable NUL-terminated cause, retry_after_ms >= -1;
 *  - the precedence holds: a certificate failure is FATAL_PROTOCOL/TLS,
 *    401-403 are FATAL_AUTH, 400/404 FATAL_REQUEST, 5xx a retry, and DONE only
 *    for the 1000 close we asked for; with a non-101 HTTP status the cause
 *    starts "HTTP <status>";
 *  - pushback is honoured only for non-fatal verdicts: then retry_after_ms is
 *    steno__retry_after_parse of the header and, when >= 0, the verdict is
 *    RETRY_AFTER, counted as a server failure (the ms clock is used when
 *    given, else the seconds one);
 *  - the verdict does not depend on the case of the reason/error text, nor on
 *    NULL versus empty strings, and the same input classifies the same way.
 */

static const int http_codes[] = {0,   101, 200, 204, 301, 400,  401,       402,      403, 404,
                                 405, 408, 413, 426, 429, 451,  499,       500,      502, 503,
                                 504, 599, 600, 99,  -1,  -500, INT32_MAX, INT32_MIN};
static const int close_codes[] = {0,    1000, 1001, 1002, 1003,  1005,      1006,     1007, 1008,
                                  1009, 1010, 1011, 1012, 1013,  1014,      1015,     1016, 2999,
                                  3000, 3003, 3005, 3006, 3007,  3008,      3009,     4000, 4001,
                                  4399, 4400, 4401, 4403, 4429,  4500,      4503,     4599, 4600,
                                  4999, 5000, 999,  -1,   65535, INT32_MIN, INT32_MAX};

#define PICK(tbl, b) ((tbl)[(b) % (sizeof(tbl) / sizeof((tbl)[0]))])

static void check_out(const steno__failure_info *in, const steno__classification *o)
{
    FUZZ_CHECK(o->verdict >= STENO__RETRY && o->verdict <= STENO__DONE, "verdict %d",
               (int)o->verdict);
    FUZZ_CHECK(strcmp(steno__verdict_name(o->verdict), "unknown") != 0, "unnamed verdict");
    FUZZ_CHECK(o->status <= 0 && o->status >= STENO__STATUS_MIN, "status %d", (int)o->status);
    FUZZ_CHECK((o->status == STENO_OK) == (o->verdict == STENO__DONE), "status %d for %s",
               (int)o->status, steno__verdict_name(o->verdict));
    FUZZ_CHECK(o->failure_class == STENO__FAILURE_TRANSIENT ||
                   o->failure_class == STENO__FAILURE_SERVER,
               "failure class %d", (int)o->failure_class);
    size_t n = strnlen(o->cause, sizeof o->cause);
    FUZZ_CHECK(n > 0 && n < sizeof o->cause, "cause length %zu", n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(o->cause[i] >= 0x20 && o->cause[i] < 0x7f, "cause byte 0x%02x",
                   (unsigned char)o->cause[i]);

    bool fatal = steno__verdict_is_fatal(o->verdict);
    FUZZ_CHECK(fatal == (o->verdict == STENO__FATAL_AUTH || o->verdict == STENO__FATAL_REQUEST ||
                         o->verdict == STENO__FATAL_PROTOCOL),
               "verdict_is_fatal");
    FUZZ_CHECK(o->retry_after_ms >= -1, "retry_after_ms %lld", (long long)o->retry_after_ms);
    if (fatal || o->verdict == STENO__DONE) {
        FUZZ_CHECK(o->retry_after_ms == -1, "pushback on a %s verdict",
                   steno__verdict_name(o->verdict));
    } else {
        int64_t ra = in->now_unix_ms ? steno__retry_after_parse_ms(in->retry_after, in->now_unix_ms)
                                     : steno__retry_after_parse(in->retry_after, in->now_unix);
        FUZZ_CHECK(o->retry_after_ms == ra, "retry_after_ms %lld, header says %lld",
                   (long long)o->retry_after_ms, (long long)ra);
        if (ra >= 0)
            FUZZ_CHECK(o->verdict == STENO__RETRY_AFTER &&
                           o->failure_class == STENO__FAILURE_SERVER,
                       "Retry-After not honoured: %s", steno__verdict_name(o->verdict));
    }

    /* Precedence. */
    int hs = in->http_status;
    if (in->tls == STENO__TLS_CERTIFICATE) {
        FUZZ_CHECK(o->verdict == STENO__FATAL_PROTOCOL && o->status == STENO_ERR_TLS,
                   "certificate failure gave %s", steno__verdict_name(o->verdict));
    } else if (hs > 0 && hs != 101) {
        char head[32];
        snprintf(head, sizeof head, "HTTP %d", hs);
        FUZZ_CHECK(strncmp(o->cause, head, strlen(head)) == 0, "cause '%.200s' for %s", o->cause,
                   head);
        if (hs >= 401 && hs <= 403)
            FUZZ_CHECK(o->verdict == STENO__FATAL_AUTH, "HTTP %d gave %s", hs,
                       steno__verdict_name(o->verdict));
        if (hs == 400 || hs == 404)
            FUZZ_CHECK(o->verdict == STENO__FATAL_REQUEST, "HTTP %d gave %s", hs,
                       steno__verdict_name(o->verdict));
        if (hs >= 500 && hs <= 599)
            FUZZ_CHECK(!fatal && o->status == STENO_ERR_SERVER, "HTTP %d gave %s", hs,
                       steno__verdict_name(o->verdict));
    }
    if (o->verdict == STENO__DONE)
        FUZZ_CHECK(in->phase == STENO__PHASE_CLOSING && in->close_code == 1000 &&
                       in->tls != STENO__TLS_CERTIFICATE && (hs <= 0 || hs == 101),
                   "DONE for phase %d close %d http %d", (int)in->phase, in->close_code, hs);
}

static char *upper_dup(const char *s)
{
    if (!s)
        return NULL;
    char *u = strdup(s);
    FUZZ_CHECK(u != NULL, "strdup");
    for (char *p = u; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return u;
}

static void classify_checked(const steno__failure_info *in, steno__classification *o)
{
    steno__classify(in, o);
    check_out(in, o);
}

static void same_verdict(const steno__classification *a, const steno__classification *b,
                         const char *what)
{
    FUZZ_CHECK(a->verdict == b->verdict && a->status == b->status &&
                   a->failure_class == b->failure_class && a->retry_after_ms == b->retry_after_ms,
               "%s changed the verdict: %s/%d -> %s/%d", what, steno__verdict_name(a->verdict),
               (int)a->status, steno__verdict_name(b->verdict), (int)b->status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    uint8_t sel = fz_u8(&in);
    info.phase = (steno__conn_phase)(sel % 3);
    info.tls = (steno__tls_failure)((sel / 3) % 3);
    info.connect_timeout = sel & 0x20;
    info.liveness_timeout = sel & 0x40;
    uint8_t hsel = fz_u8(&in);
    info.http_status = hsel < 0xf0 ? PICK(http_codes, hsel) : (int)fz_u32(&in);
    uint8_t csel = fz_u8(&in);
    info.close_code = csel < 0xf0 ? PICK(close_codes, csel) : (int)fz_u32(&in);
    uint8_t tsel = fz_u8(&in);
    if (tsel < 0x80) { /* a present-day clock, in ms too unless tsel is odd */
        info.now_unix = INT64_C(1700000000) + (int64_t)fz_u32(&in);
        info.now_unix_ms = tsel & 1 ? 0 : info.now_unix * 1000 + fz_u16(&in) % 1000;
    } else if (tsel < 0xc0) {
        info.now_unix = (int64_t)fz_u32(&in);
    } else { /* any clocks, not even agreeing */
        info.now_unix = (int64_t)fz_u64(&in);
        info.now_unix_ms = (int64_t)fz_u64(&in);
    }
    uint8_t nulls = fz_u8(&in); /* which strings are absent (NULL) */
    char *ra = fz_str(&in, NULL), *reason = fz_str(&in, NULL), *perr = fz_str(&in, NULL);
    FUZZ_CHECK(ra && reason && perr, "malloc");
    info.retry_after = nulls & 1 ? NULL : ra;
    info.close_reason = nulls & 2 ? NULL : reason;
    info.provider_error = nulls & 4 ? NULL : perr;

    steno__classification a, b;
    classify_checked(&info, &a);
    steno__classify(&info, &b);
    FUZZ_CHECK(memcmp(&a, &b, sizeof a) == 0, "the same input classified differently");

    /* Provider texts are matched without regard to case. */
    steno__failure_info up = info;
    char *ur = upper_dup(info.close_reason), *ue = upper_dup(info.provider_error);
    up.close_reason = ur;
    up.provider_error = ue;
    classify_checked(&up, &b);
    same_verdict(&a, &b, "upper-casing the reason/error");
    free(ur);
    free(ue);

    /* An absent text and an empty one mean the same. */
    steno__failure_info ne = info;
    if (!ne.close_reason)
        ne.close_reason = "";
    if (!ne.provider_error)
        ne.provider_error = "";
    classify_checked(&ne, &b);
    same_verdict(&a, &b, "NULL -> \"\" strings");

    /* NULL arguments are refused without a crash. */
    steno__classify(NULL, &b);
    FUZZ_CHECK(b.verdict == STENO__FATAL_PROTOCOL && b.status == STENO_ERR_INVALID_ARG, "NULL in");
    steno__classify(&info, NULL);

    free(ra);
    free(reason);
    free(perr);
    return 0;
}
