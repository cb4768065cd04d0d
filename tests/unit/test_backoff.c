/* test_backoff: reconnect delays, immediate retry after health, Retry-After, giving up. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"

/* ---- random sources ----------------------------------------------------- */

/* Returns the values in order, then repeats the last one; counts draws. */
struct seq {
    const uint64_t *v;
    size_t n;
    size_t i;
};

static uint64_t seq_next(void *ctx)
{
    struct seq *s = ctx;
    uint64_t v = s->v[s->i < s->n ? s->i : s->n - 1];
    s->i++;
    return v;
}

/* Always the same value. */
static uint64_t const_next(void *ctx)
{
    return *(const uint64_t *)ctx;
}

/* xorshift64*: a fixed, well-mixed sequence for the statistical tests. */
static uint64_t xorshift_next(void *ctx)
{
    uint64_t *x = ctx;
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static steno__backoff make(const steno__backoff_config *cfg, steno__rand_fn fn, void *ctx)
{
    steno__backoff b;
    assert_int_equal(steno__backoff_init(&b, cfg, fn, ctx), STENO_OK);
    return b;
}

static uint64_t next_ok(steno__backoff *b, uint64_t now, int64_t ra)
{
    uint64_t d = UINT64_MAX;
    assert_int_equal(steno__backoff_next(b, now, ra, &d), STENO_OK);
    return d;
}

/* ---- configuration ------------------------------------------------------ */

static void test_defaults_match_the_spec(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    assert_int_equal(c.base_ms, 250);
    assert_int_equal(c.cap_ms, 30000);
    assert_true(c.multiplier == 2.0);
    assert_int_equal(c.max_attempts, 0);
    assert_int_equal(c.max_outage_ms, 0);
    assert_int_equal(c.retry_after_cap_ms, 60000);
}

static void test_invalid_configs_are_rejected(void **state)
{
    (void)state;
    uint64_t r = 0;
    steno__backoff b;
    struct {
        uint64_t base, cap;
        double mult;
        int want;
    } rows[] = {
        {250, 30000, 2.0, STENO_OK},
        {1, 1, 1.0, STENO_OK},
        {0, 30000, 2.0, STENO_ERR_INVALID_ARG},   /* zero base: a retry storm */
        {500, 499, 2.0, STENO_ERR_INVALID_ARG},   /* cap below base */
        {250, 30000, 0.5, STENO_ERR_INVALID_ARG}, /* shrinking delays */
        {250, 30000, 0.0, STENO_ERR_INVALID_ARG},
        {250, 30000, -2.0, STENO_ERR_INVALID_ARG},
        {250, 30000, NAN, STENO_ERR_INVALID_ARG},
        {250, 30000, INFINITY, STENO_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__backoff_config c;
        steno__backoff_config_default(&c);
        c.base_ms = rows[i].base;
        c.cap_ms = rows[i].cap;
        c.multiplier = rows[i].mult;
        assert_int_equal(steno__backoff_init(&b, &c, const_next, &r), rows[i].want);
    }
    assert_int_equal(steno__backoff_init(NULL, NULL, const_next, &r), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__backoff_init(&b, NULL, NULL, &r), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__backoff_init(&b, NULL, const_next, &r), STENO_OK);
    assert_int_equal(b.cfg.base_ms, 250);
}

static void test_next_rejects_null_arguments(void **state)
{
    (void)state;
    uint64_t r = 0, d;
    steno__backoff b = make(NULL, const_next, &r);
    assert_int_equal(steno__backoff_next(NULL, 0, -1, &d), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__backoff_next(&b, 0, -1, NULL), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__backoff_attempts(NULL), 0);
}

/* ---- exact sequences ---------------------------------------------------- */

static void test_exact_delays_with_fixed_random_source(void **state)
{
    (void)state;
    /* Defaults: ceilings 250, 500, 1000, 2000, 4000, 8000, 16000, 30000 (cap).
     * delay = r % (ceiling + 1). */
    static const struct {
        uint64_t r, delay;
    } rows[] = {
        {250, 250},     /* n=0: the ceiling itself is reachable */
        {501, 0},       /* n=1: 501 % 501 */
        {1234, 233},    /* n=2: 1234 % 1001 */
        {2000, 2000},   /* n=3 */
        {4002, 1},      /* n=4: 4002 % 4001 */
        {8001, 0},      /* n=5: 8001 % 8001 */
        {16000, 16000}, /* n=6 */
        {30000, 30000}, /* n=7: capped at 30000 */
        {30001, 0},     /* n=8: still 30000 */
        {60001, 30000}, /* n=9: 60001 % 30001 */
    };
    uint64_t vals[sizeof(rows) / sizeof(rows[0])];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        vals[i] = rows[i].r;
    struct seq s = {vals, sizeof(vals) / sizeof(vals[0]), 0};
    steno__backoff b = make(NULL, seq_next, &s);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(next_ok(&b, 1000 * i, -1), rows[i].delay);
        assert_int_equal(steno__backoff_attempts(&b), i + 1);
    }
    assert_int_equal(s.i, sizeof(vals) / sizeof(vals[0]));
}

/* The ceiling for attempt n is exactly expected[n]: r = ceiling gives the
 * ceiling (so ceiling >= expected), r = ceiling + 1 gives 0 (so they are equal). */
static void check_ceilings(const steno__backoff_config *cfg, const uint64_t *expected, size_t n)
{
    uint64_t r;
    steno__backoff hi = make(cfg, const_next, &r);
    steno__backoff lo = make(cfg, const_next, &r);
    for (size_t i = 0; i < n; i++) {
        r = expected[i];
        assert_int_equal(next_ok(&hi, 0, -1), expected[i]);
        r = expected[i] + 1;
        assert_int_equal(next_ok(&lo, 0, -1), 0);
    }
}

static void test_ceiling_doubles_until_the_cap(void **state)
{
    (void)state;
    static const uint64_t want[] = {250,   500,   1000,  2000,  4000, 8000,
                                    16000, 30000, 30000, 30000, 30000};
    check_ceilings(NULL, want, sizeof(want) / sizeof(want[0]));
}

static void test_ceiling_with_fractional_multiplier(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.base_ms = 100;
    c.cap_ms = 1000;
    c.multiplier = 1.5;
    /* 100, 150, 225, 337.5, 506.25, 759.375, 1139 -> cap; fractions truncate. */
    static const uint64_t want[] = {100, 150, 225, 337, 506, 759, 1000, 1000};
    check_ceilings(&c, want, sizeof(want) / sizeof(want[0]));
}

static void test_multiplier_one_keeps_the_base(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.multiplier = 1.0;
    static const uint64_t want[] = {250, 250, 250, 250, 250, 250};
    check_ceilings(&c, want, sizeof(want) / sizeof(want[0]));
}

static void test_huge_attempt_numbers_do_not_overflow(void **state)
{
    (void)state;
    /* 2^n overflows a double after ~1024 attempts and a uint64 after 56:
     * the ceiling must stay at the cap throughout. */
    uint64_t r = 30000;
    steno__backoff b = make(NULL, const_next, &r);
    for (int i = 0; i < 5000; i++) {
        uint64_t d = next_ok(&b, 0, -1);
        if (i >= 7)
            assert_int_equal(d, 30000);
        else
            assert_true(d <= 30000);
    }
    /* The largest possible cap is also fine. */
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.base_ms = 1;
    c.cap_ms = UINT64_MAX;
    c.multiplier = 10.0;
    r = UINT64_MAX;
    steno__backoff big = make(&c, const_next, &r);
    for (int i = 0; i < 100; i++)
        (void)next_ok(&big, 0, -1);
    assert_int_equal(next_ok(&big, 0, -1), UINT64_MAX);
}

static void test_delays_stay_in_bounds_over_10000_draws(void **state)
{
    (void)state;
    /* For each attempt number n, 10,000 draws: every delay within
     * [0, min(cap, base * 2^n)] and the mean close to half the ceiling. */
    for (uint32_t n = 0; n <= 9; n++) {
        uint64_t ceil = 250ull << n;
        if (ceil > 30000)
            ceil = 30000;
        uint64_t x = 0x9E3779B97F4A7C15ull + n;
        double sum = 0;
        uint64_t max_seen = 0;
        for (int k = 0; k < 10000; k++) {
            steno__backoff b = make(NULL, xorshift_next, &x);
            uint64_t zero = 0;
            /* Advance to attempt n without consuming the shared sequence. */
            b.rand = const_next;
            b.rand_ctx = &zero;
            for (uint32_t i = 0; i < n; i++)
                (void)next_ok(&b, 0, -1);
            b.rand = xorshift_next;
            b.rand_ctx = &x;
            uint64_t d = next_ok(&b, 0, -1);
            assert_true(d <= ceil);
            sum += (double)d;
            if (d > max_seen)
                max_seen = d;
        }
        double mean = sum / 10000.0;
        /* Uniform on [0, c]: mean c/2, standard error c/sqrt(12 * 10000)
         * ~ 0.003c; 5% of c is > 15 standard errors. */
        assert_true(fabs(mean - (double)ceil / 2.0) < 0.05 * (double)ceil);
        /* Full jitter really spans the range. */
        assert_true(max_seen > ceil * 9 / 10);
    }
}

/* ---- healthy connections ------------------------------------------------ */

static void test_first_retry_after_healthy_connection_is_immediate(void **state)
{
    (void)state;
    uint64_t vals[] = {250, 500};
    struct seq s = {vals, 2, 0};
    steno__backoff b = make(NULL, seq_next, &s);
    steno__backoff_on_connected(&b, 1000);
    steno__backoff_on_disconnect(&b, 61000, true);
    assert_int_equal(next_ok(&b, 61000, -1), 0);
    assert_int_equal(s.i, 0); /* no randomness spent on it */
    /* Then the normal schedule from the first ceiling. */
    assert_int_equal(next_ok(&b, 61000, -1), 250);
    assert_int_equal(next_ok(&b, 61250, -1), 500);
    assert_int_equal(steno__backoff_attempts(&b), 3);
}

static void test_first_connect_failure_is_not_immediate(void **state)
{
    (void)state;
    uint64_t r = 250;
    steno__backoff b = make(NULL, const_next, &r);
    assert_int_equal(next_ok(&b, 0, -1), 250);
}

static void test_unhealthy_connection_keeps_escalating(void **state)
{
    (void)state;
    uint64_t r = 2000;
    steno__backoff b = make(NULL, const_next, &r);
    for (int i = 0; i < 3; i++)
        (void)next_ok(&b, 0, -1); /* ceilings 250, 500, 1000 */
    steno__backoff_on_connected(&b, 5000);
    steno__backoff_on_disconnect(&b, 5100, false);
    /* Not reset: the fourth retry uses ceiling 2000, and is not immediate. */
    assert_int_equal(next_ok(&b, 5100, -1), 2000);
    assert_int_equal(steno__backoff_attempts(&b), 4);
}

static void test_healthy_connection_resets_attempt_counter(void **state)
{
    (void)state;
    uint64_t r = 250;
    steno__backoff b = make(NULL, const_next, &r);
    for (int i = 0; i < 6; i++)
        (void)next_ok(&b, 0, -1);
    assert_int_equal(steno__backoff_attempts(&b), 6);
    steno__backoff_on_connected(&b, 10000);
    steno__backoff_on_disconnect(&b, 70000, true);
    assert_int_equal(steno__backoff_attempts(&b), 0);
    assert_int_equal(next_ok(&b, 70000, -1), 0);
    /* The exponent restarted: ceiling 250 again, so r=250 gives 250. */
    assert_int_equal(next_ok(&b, 70000, -1), 250);
}

static void test_reset_forgets_everything(void **state)
{
    (void)state;
    uint64_t r = 250;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_attempts = 1;
    steno__backoff b = make(&c, const_next, &r);
    (void)next_ok(&b, 0, -1);
    uint64_t d;
    assert_int_equal(steno__backoff_next(&b, 0, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
    steno__backoff_reset(&b);
    assert_int_equal(steno__backoff_attempts(&b), 0);
    assert_int_equal(next_ok(&b, 0, -1), 250);
}

/* ---- Retry-After in the schedule ---------------------------------------- */

static void test_retry_after_combines_by_maximum(void **state)
{
    (void)state;
    static const struct {
        uint64_t r; /* jitter draw at attempt 0 (ceiling 250) */
        int64_t ra; /* server pushback */
        uint64_t want;
    } rows[] = {
        {100, -1, 100},                          /* no hint */
        {100, 0, 100},                           /* "retry now" does not shorten the jitter */
        {200, 150, 200},                         /* jitter already longer */
        {100, 5000, 5000},                       /* pushback longer */
        {100, 60000, 60000},                     /* exactly the cap */
        {100, 60001, 60000},                     /* capped */
        {100, INT64_MAX, 60000}, {100, -7, 100}, /* any negative means none */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t r = rows[i].r;
        steno__backoff b = make(NULL, const_next, &r);
        assert_int_equal(next_ok(&b, 0, rows[i].ra), rows[i].want);
    }
}

static void test_retry_after_overrides_the_immediate_retry(void **state)
{
    (void)state;
    uint64_t r = 0;
    steno__backoff b = make(NULL, const_next, &r);
    steno__backoff_on_connected(&b, 0);
    steno__backoff_on_disconnect(&b, 100000, true);
    assert_int_equal(next_ok(&b, 100000, 3000), 3000);
}

static void test_retry_after_cap_zero_ignores_pushback(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.retry_after_cap_ms = 0;
    uint64_t r = 10;
    steno__backoff b = make(&c, const_next, &r);
    assert_int_equal(next_ok(&b, 0, 5000), 10);
}

/* ---- giving up ----------------------------------------------------------- */

static void test_gives_up_after_max_attempts(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_attempts = 3;
    uint64_t r = 1, d;
    steno__backoff b = make(&c, const_next, &r);
    for (int i = 0; i < 3; i++)
        (void)next_ok(&b, 0, -1);
    assert_int_equal(steno__backoff_next(&b, 0, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
    /* Sticky. */
    assert_int_equal(steno__backoff_next(&b, 0, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
    assert_int_equal(steno__backoff_attempts(&b), 3);
    /* An unhealthy connection does not revive it... */
    steno__backoff_on_connected(&b, 10);
    steno__backoff_on_disconnect(&b, 20, false);
    assert_int_equal(steno__backoff_next(&b, 20, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
    /* ...a healthy one does: a fresh outage with a fresh count. */
    steno__backoff_on_connected(&b, 30);
    steno__backoff_on_disconnect(&b, 90000, true);
    for (int i = 0; i < 3; i++)
        (void)next_ok(&b, 90000, -1);
    assert_int_equal(steno__backoff_next(&b, 90000, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
}

static void test_max_attempts_one_allows_exactly_one_retry(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_attempts = 1;
    uint64_t r = 0, d;
    steno__backoff b = make(&c, const_next, &r);
    (void)next_ok(&b, 0, -1);
    assert_int_equal(steno__backoff_next(&b, 0, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
}

static void test_gives_up_when_outage_would_exceed_max(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_outage_ms = 10000;
    uint64_t r = 0; /* jitter 0: the pushback sets the delay exactly */
    static const struct {
        uint64_t now; /* ms after the first failure at t=1000 */
        int64_t ra;
        int want;
    } rows[] = {
        {0, 10000, STENO_OK},                    /* lands exactly at the limit */
        {0, 10001, STENO_ERR_RETRIES_EXHAUSTED}, /* one ms past */
        {9000, 1000, STENO_OK},
        {9000, 1001, STENO_ERR_RETRIES_EXHAUSTED},
        {10000, -1, STENO_OK},                    /* at the limit, delay 0 */
        {10001, -1, STENO_ERR_RETRIES_EXHAUSTED}, /* already past it */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__backoff b = make(&c, const_next, &r);
        (void)next_ok(&b, 1000, -1); /* the outage starts here */
        uint64_t d = 0;
        assert_int_equal(steno__backoff_next(&b, 1000 + rows[i].now, rows[i].ra, &d), rows[i].want);
    }
}

static void test_outage_starts_at_the_disconnect(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_outage_ms = 10000;
    uint64_t r = 0, d;
    steno__backoff b = make(&c, const_next, &r);
    steno__backoff_on_connected(&b, 0);
    steno__backoff_on_disconnect(&b, 5000, false);
    assert_int_equal(steno__backoff_next(&b, 15000, -1, &d), STENO_OK);
    assert_int_equal(steno__backoff_next(&b, 15001, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
}

static void test_flapping_connections_do_not_extend_the_outage(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_outage_ms = 10000;
    uint64_t r = 0, d;
    steno__backoff b = make(&c, const_next, &r);
    (void)next_ok(&b, 0, -1); /* outage starts at 0 */
    for (uint64_t t = 1000; t <= 9000; t += 2000) {
        steno__backoff_on_connected(&b, t);
        steno__backoff_on_disconnect(&b, t + 500, false);
        (void)next_ok(&b, t + 500, -1);
    }
    assert_int_equal(steno__backoff_next(&b, 10001, -1, &d), STENO_ERR_RETRIES_EXHAUSTED);
}

static void test_clock_going_backwards_counts_as_no_time(void **state)
{
    (void)state;
    steno__backoff_config c;
    steno__backoff_config_default(&c);
    c.max_outage_ms = 100;
    uint64_t r = 0;
    steno__backoff b = make(&c, const_next, &r);
    (void)next_ok(&b, 5000, -1);
    assert_int_equal(next_ok(&b, 10, 100), 100);
}

/* ---- Retry-After parsing ------------------------------------------------- */

#define T_1994 784111777  /* Sun, 06 Nov 1994 08:49:37 GMT */
#define T_2025 1735689600 /* Wed, 01 Jan 2025 00:00:00 GMT */

static void test_retry_after_parse_table(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int64_t now;
        int64_t want;
    } rows[] = {
        /* delta-seconds */
        {"120", 0, 120000},
        {"0", 0, 0},
        {"007", 0, 7000},
        {"  30 ", 0, 30000},
        {"\t5\t", 0, 5000},
        {"9223372036854775", 0, 9223372036854775000}, /* INT64_MAX / 1000 */
        {"9223372036854776", 0, INT64_MAX},           /* saturates */
        {"99999999999999999999999999999", 0, INT64_MAX},
        /* absent or garbage */
        {NULL, 0, -1},
        {"", 0, -1},
        {"   ", 0, -1},
        {"-5", 0, -1},
        {"+5", 0, -1},
        {"1.5", 0, -1},
        {"12abc", 0, -1},
        {"1 2", 0, -1},
        {"abc", 0, -1},
        {"0x10", 0, -1},
        /* IMF-fixdate */
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 120, 120000},
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994, 0},        /* now */
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 + 3600, 0}, /* past */
        {" Sun, 06 Nov 1994 08:49:37 GMT ", T_1994 - 1, 1000},
        {"Thu, 29 Feb 2024 12:00:00 GMT", 1709208000 - 2, 2000}, /* leap day */
        {"Sat, 31 Dec 2016 23:59:60 GMT", 1483228799 - 1, 2000}, /* leap second */
        {"Fri, 31 Dec 9999 23:59:59 GMT", 0, 253402300799000},
        {"Fri, 31 Dec 9999 23:59:59 GMT", INT64_MIN, INT64_MAX}, /* saturates */
        /* RFC 850 */
        {"Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 60, 60000},
        {"Thursday, 01-Jan-26 00:00:00 GMT", T_2025, 31536000000},                  /* 2026 */
        {"Tuesday, 01-Jan-75 00:00:00 GMT", T_2025, 3313526400000 - 1735689600000}, /* 2075 */
        {"Thursday, 01-Jan-76 00:00:00 GMT", T_2025, 0}, /* 2076 is > 50 y ahead: 1976 */
        /* asctime */
        {"Sun Nov  6 08:49:37 1994", T_1994 - 10, 10000},
        {"Wed Nov 16 08:49:37 1994", T_1994, 10 * 86400 * 1000ll},
        /* malformed dates */
        {"Sun, 31 Feb 2024 00:00:00 GMT", 0, -1},
        {"Wed, 29 Feb 2023 00:00:00 GMT", 0, -1},
        {"Sun, 06 Nov 1994 24:00:00 GMT", 0, -1},
        {"Sun, 06 Nov 1994 08:60:00 GMT", 0, -1},
        {"Sun, 06 Nov 1994 08:49:61 GMT", 0, -1},
        {"Sun, 00 Nov 1994 08:49:37 GMT", 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 UTC", 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 GMT extra", 0, -1},
        {"Sun, 06 Nov 1994 08:49:37", 0, -1},
        {"Sun 06 Nov 1994 08:49:37 GMT", 0, -1},
        {"Sun, 6 Nov 1994 08:49:37 GMT", 0, -1},
        {"Sun, 06 Nov 94 08:49:37 GMT", 0, -1},
        {"Foo, 06 Nov 1994 08:49:37 GMT", 0, -1},
        {"Sun, 06 Xyz 1994 08:49:37 GMT", 0, -1},
        {"sun, 06 nov 1994 08:49:37 gmt", 0, -1}, /* HTTP-date is case-sensitive */
        {"Sunday, 06-Nov-1994 08:49:37 GMT", 0, -1},
        {"Sun Nov 6 08:49:37 1994", 0, -1},
        {"Sun Nov  6 08:49:37 94", 0, -1},
        {"Sun,", 0, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = steno__retry_after_parse(rows[i].value, rows[i].now);
        if (got != rows[i].want)
            fail_msg("row %zu \"%s\": got %lld, want %lld", i,
                     rows[i].value ? rows[i].value : "(null)", (long long)got,
                     (long long)rows[i].want);
    }
}

/* With the wall clock in ms, an HTTP-date's delay is date - now exactly: never early, and not up
 * to 999 ms late as with a whole-second clock. */
static void test_retry_after_date_is_exact_to_the_ms(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int64_t now_ms;
        int64_t want;
    } rows[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll - 1, 1},
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll - 500, 500},
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll - 1999, 1999},
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll - 120000 + 250, 119750},
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll, 0},       /* now */
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll + 1, 0},   /* 1 ms past */
        {"Sun, 06 Nov 1994 08:49:37 GMT", T_1994 * 1000ll + 999, 0}, /* same second, past */
        {"Sunday, 06-Nov-94 08:49:37 GMT", T_1994 * 1000ll - 60000 + 999, 59001},
        {"Sun Nov  6 08:49:37 1994", T_1994 * 1000ll - 10000 + 1, 9999},
        {"Thursday, 01-Jan-26 00:00:00 GMT", T_2025 * 1000ll + 999, 31536000000 - 999}, /* 2026 */
        /* before the epoch: the clock still splits into a second and 0..999 ms */
        {"Thu, 01 Jan 1970 00:00:00 GMT", -1, 1},
        {"Thu, 01 Jan 1970 00:00:00 GMT", -1500, 1500},
        {"Thu, 01 Jan 1970 00:00:01 GMT", -1, 1001},
        /* extremes saturate or are past */
        {"Fri, 31 Dec 9999 23:59:59 GMT", INT64_MIN, INT64_MAX},
        {"Fri, 31 Dec 9999 23:59:59 GMT", INT64_MAX, 0},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 0, 253402300799000},
        /* delta-seconds ignore the clock; garbage is still garbage */
        {"120", T_1994 * 1000ll + 123, 120000},
        {"0", INT64_MIN, 0},
        {"1.5", T_1994 * 1000ll, -1},
        {"Sun, 06 Nov 1994 08:49:37", T_1994 * 1000ll, -1},
        {NULL, 0, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = steno__retry_after_parse_ms(rows[i].value, rows[i].now_ms);
        if (got != rows[i].want)
            fail_msg("row %zu \"%s\" at %lld ms: got %lld, want %lld", i,
                     rows[i].value ? rows[i].value : "(null)", (long long)rows[i].now_ms,
                     (long long)got, (long long)rows[i].want);
    }
}

/* Every ms of the three seconds before a date, and a few after: the ms clock gives the exact
 * remainder, the whole-second clock (the old engine's) waits 0..999 ms longer, never less. */
static void test_retry_after_ms_clock_removes_the_whole_second_slack(void **state)
{
    (void)state;
    const char *date = "Sun, 06 Nov 1994 08:49:37 GMT";
    const int64_t at = T_1994 * 1000ll;
    for (int64_t now = at - 3000; now <= at + 1000; now++) {
        int64_t exact = steno__retry_after_parse_ms(date, now);
        assert_int_equal(exact, now < at ? at - now : 0);
        int64_t whole = steno__retry_after_parse(date, now / 1000);
        assert_true(whole >= exact && whole - exact <= 999);
    }
}

/* The seconds form is the ms form at a whole second. */
static void test_retry_after_seconds_form_matches_ms_form(void **state)
{
    (void)state;
    static const char *const values[] = {
        "120",
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Thursday, 01-Jan-76 00:00:00 GMT",
        "garbage",
    };
    static const int64_t nows[] = {0, T_1994 - 120, T_1994, T_1994 + 1, T_2025, -86400};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        for (size_t k = 0; k < sizeof(nows) / sizeof(nows[0]); k++)
            assert_int_equal(steno__retry_after_parse(values[i], nows[k]),
                             steno__retry_after_parse_ms(values[i], nows[k] * 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_the_spec),
        cmocka_unit_test(test_invalid_configs_are_rejected),
        cmocka_unit_test(test_next_rejects_null_arguments),
        cmocka_unit_test(test_exact_delays_with_fixed_random_source),
        cmocka_unit_test(test_ceiling_doubles_until_the_cap),
        cmocka_unit_test(test_ceiling_with_fractional_multiplier),
        cmocka_unit_test(test_multiplier_one_keeps_the_base),
        cmocka_unit_test(test_huge_attempt_numbers_do_not_overflow),
        cmocka_unit_test(test_delays_stay_in_bounds_over_10000_draws),
        cmocka_unit_test(test_first_retry_after_healthy_connection_is_immediate),
        cmocka_unit_test(test_first_connect_failure_is_not_immediate),
        cmocka_unit_test(test_unhealthy_connection_keeps_escalating),
        cmocka_unit_test(test_healthy_connection_resets_attempt_counter),
        cmocka_unit_test(test_reset_forgets_everything),
        cmocka_unit_test(test_retry_after_combines_by_maximum),
        cmocka_unit_test(test_retry_after_overrides_the_immediate_retry),
        cmocka_unit_test(test_retry_after_cap_zero_ignores_pushback),
        cmocka_unit_test(test_gives_up_after_max_attempts),
        cmocka_unit_test(test_max_attempts_one_allows_exactly_one_retry),
        cmocka_unit_test(test_gives_up_when_outage_would_exceed_max),
        cmocka_unit_test(test_outage_starts_at_the_disconnect),
        cmocka_unit_test(test_flapping_connections_do_not_extend_the_outage),
        cmocka_unit_test(test_clock_going_backwards_counts_as_no_time),
        cmocka_unit_test(test_retry_after_parse_table),
        cmocka_unit_test(test_retry_after_date_is_exact_to_the_ms),
        cmocka_unit_test(test_retry_after_ms_clock_removes_the_whole_second_slack),
        cmocka_unit_test(test_retry_after_seconds_form_matches_ms_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
