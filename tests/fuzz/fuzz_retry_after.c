/* fuzz_retry_after: Retry-After values, arbitrary or well-formed dates, parse to the right delay.
 */
#include <time.h>

#include "backoff.h"
#include "fuzz_common.h"

/*
 * Input: a selector byte; the wall clock (ms since the epoch: present-day,
 * anywhere in years 1..9999, or any int64); then either
 *  - (raw) a Retry-After value: the rest of the input up to a NUL, or
 *  - (date) a time, a form (IMF-fixdate, RFC 850, asctime) and padding,
 *    from which a valid HTTP-date is written.
 * Both entry points run: steno__retry_after_parse (whole seconds) and
 * steno__retry_after_parse_ms.
 *
 * Properties:
 *  - the result is -1 (malformed) or a delay >= 0; the same value parses the
 *    same way with extra spaces/tabs around it;
 *  - an all-digits value is its seconds * 1000 (saturating at INT64_MAX),
 *    whatever the clock;
 *  - both forms agree: they refuse the same values, the seconds form gives
 *    whole seconds, and the ms form the same delay less the clock's ms within
 *    its second; at a whole second they are equal;
 *  - one second (seconds form) or one ms (ms form) later, a date's delay is
 *    that much shorter, or stays 0 once the date is past;
 *  - a well-formed date parses to exactly date - now, or 0 when past
 *    (RFC 850's two-digit year only inside the 100-year window it can name).
 */

#define DAY_MS INT64_C(86400000)

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The reference for delta-seconds: false when s (trimmed) is not all digits. */
static bool delta_seconds(const char *s, int64_t *ms)
{
    while (is_ows(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_ows(s[n - 1]))
        n--;
    if (!n)
        return false;
    uint64_t v = 0;
    bool sat = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            sat = true;
        else
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *ms = (sat || v > (uint64_t)(INT64_MAX / 1000)) ? INT64_MAX : (int64_t)v * 1000;
    return true;
}

/* The clock both ways: now_ms, and the whole second it falls in plus the ms into it. */
struct clock {
    int64_t ms, s, sub;
};

static struct clock clock_at(int64_t ms)
{
    struct clock c = {ms, ms / 1000, ms % 1000};
    if (c.sub < 0) {
        c.s -= 1;
        c.sub += 1000;
    }
    return c;
}

/* Whether the day (UTC) changes in the next ms / second: the RFC 850 century window may move. */
static bool day_ends(int64_t ms)
{
    return ((ms % DAY_MS) + DAY_MS) % DAY_MS == DAY_MS - 1;
}

static bool day_ends_s(int64_t s)
{
    return ((s % 86400) + 86400) % 86400 == 86399;
}

static int64_t parse_s(const char *s, int64_t now_s)
{
    int64_t r = steno__retry_after_parse(s, now_s);
    FUZZ_CHECK(r >= -1, "'%.200s': %lld", s, (long long)r);
    return r;
}

static int64_t parse_ms(const char *s, int64_t now_ms)
{
    int64_t r = steno__retry_after_parse_ms(s, now_ms);
    FUZZ_CHECK(r >= -1, "'%.200s': %lld", s, (long long)r);
    return r;
}

static void check_raw(const char *s, struct clock now)
{
    int64_t r = parse_s(s, now.s), rm = parse_ms(s, now.ms);
    size_t n = strlen(s);
    char *padded = malloc(n + 5);
    FUZZ_CHECK(padded != NULL, "malloc");
    memcpy(padded, " \t", 2);
    memcpy(padded + 2, s, n);
    memcpy(padded + 2 + n, "\t ", 3);
    FUZZ_CHECK(parse_s(padded, now.s) == r && parse_ms(padded, now.ms) == rm,
               "'%.200s' parses differently with spaces around it", s);
    free(padded);

    int64_t ref;
    if (delta_seconds(s, &ref)) {
        FUZZ_CHECK(r == ref && rm == ref, "'%.200s': %lld and %lld ms, expected %lld", s,
                   (long long)r, (long long)rm, (long long)ref);
        return;
    }
    /* An HTTP-date (or garbage): the two forms agree. */
    FUZZ_CHECK((r < 0) == (rm < 0), "'%.200s': %lld at %lld s, %lld at %lld ms", s, (long long)r,
               (long long)now.s, (long long)rm, (long long)now.ms);
    if (r < 0)
        return;
    FUZZ_CHECK(r == INT64_MAX || r % 1000 == 0, "'%.200s': %lld ms is not whole seconds", s,
               (long long)r);
    FUZZ_CHECK(rm == (r > 0 && r < INT64_MAX ? r - now.sub : r),
               "'%.200s': %lld at %lld s, %lld at %lld ms", s, (long long)r, (long long)now.s,
               (long long)rm, (long long)now.ms);
    if (now.s > INT64_MIN / 1000 && now.s < INT64_MAX / 1000)
        FUZZ_CHECK(parse_ms(s, now.s * 1000) == r, "'%.200s': the forms differ at a whole second",
                   s);
    if (r == INT64_MAX || now.ms == INT64_MAX || day_ends(now.ms) || day_ends_s(now.s))
        return;
    int64_t later = parse_s(s, now.s + 1);
    FUZZ_CHECK(later == (r ? r - 1000 : 0), "'%.200s': %lld at now, %lld one second later", s,
               (long long)r, (long long)later);
    later = parse_ms(s, now.ms + 1);
    FUZZ_CHECK(later == (rm ? rm - 1 : 0), "'%.200s': %lld at now, %lld one ms later", s,
               (long long)rm, (long long)later);
}

static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wday_long[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* when - now in ms, as the parser saturates it: INT64_MAX once the seconds alone overflow. */
static int64_t expected_ms(int64_t when_s, struct clock now)
{
    if (when_s <= now.s)
        return 0;
    uint64_t diff = (uint64_t)when_s - (uint64_t)now.s;
    if (diff > (uint64_t)(INT64_MAX / 1000))
        return INT64_MAX;
    return (int64_t)diff * 1000 - now.sub;
}

static void check_date(fz_in *in, struct clock now)
{
    /* Years 1..9999: every date the four-digit forms can write. */
    const int64_t lo = -62135596800LL, hi = 253402300799LL;
    uint8_t how = fz_u8(in);
    int64_t when;
    if (how & 1 && now.s >= lo && now.s <= hi) /* near now: a server's pushback */
        when = now.s + (int64_t)fz_range(in, 0, 400000) - 200000;
    else
        when = lo + (int64_t)fz_range(in, 0, (uint64_t)(hi - lo));
    if (when < lo || when > hi)
        return;
    time_t tt = (time_t)when;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return;
    long year = (long)tm.tm_year + 1900;
    int form = (how >> 1) % 3;
    char s[96];
    const char *pad = (how & 0x10) ? " \t" : "";
    switch (form) {
    case 0:
        snprintf(s, sizeof s, "%s%s, %02d %s %04ld %02d:%02d:%02d GMT%s", pad, wday[tm.tm_wday],
                 tm.tm_mday, mon[tm.tm_mon], year, tm.tm_hour, tm.tm_min, tm.tm_sec, pad);
        break;
    case 1:
        snprintf(s, sizeof s, "%s%s, %02d-%s-%02ld %02d:%02d:%02d GMT%s", pad,
                 wday_long[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], year % 100, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, pad);
        break;
    default:
        snprintf(s, sizeof s, "%s%s %s %2d %02d:%02d:%02d %04ld%s", pad, wday[tm.tm_wday],
                 mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, year, pad);
        break;
    }
    int64_t r = parse_s(s, now.s), rm = parse_ms(s, now.ms);
    if (form == 1) {
        /* Two digits name the year only inside (now_year - 50, now_year + 50]. */
        time_t tn = (time_t)now.s;
        struct tm tmn;
        if ((int64_t)tn != now.s || !gmtime_r(&tn, &tmn))
            return;
        long now_year = (long)tmn.tm_year + 1900;
        if (year <= now_year - 50 || year > now_year + 50)
            return; /* another century's date (or -1 for its 29 February) */
    }
    struct clock whole = {now.s, now.s, 0};
    int64_t expect = expected_ms(when, whole), expect_ms = expected_ms(when, now);
    FUZZ_CHECK(r == expect, "'%.200s' (now %lld s): %lld, expected %lld", s, (long long)now.s,
               (long long)r, (long long)expect);
    FUZZ_CHECK(rm == expect_ms, "'%.200s' (now %lld ms): %lld, expected %lld", s, (long long)now.ms,
               (long long)rm, (long long)expect_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    int64_t now_ms;
    switch (sel & 3) {
    case 0:
    case 1: /* a present-day clock */
        now_ms = (INT64_C(1700000000) + (int64_t)fz_u32(&in)) * 1000 + fz_u16(&in) % 1000;
        break;
    case 2: /* anywhere in years 1..9999 */
        now_ms = (-62135596800LL + (int64_t)fz_range(&in, 0, 315537897599ULL)) * 1000 +
                 fz_u16(&in) % 1000;
        break;
    default: /* any int64 */
        now_ms = (int64_t)fz_u64(&in);
        break;
    }
    struct clock now = clock_at(now_ms);
    if (sel & 4) {
        check_date(&in, now);
    } else {
        char *s = fz_str(&in, NULL);
        FUZZ_CHECK(s != NULL, "malloc");
        check_raw(s, now);
        free(s);
    }
    FUZZ_CHECK(steno__retry_after_parse(NULL, now.s) == -1 &&
                   steno__retry_after_parse_ms(NULL, now.ms) == -1,
               "NULL");
    return 0;
}
