/* test_breaker: CLOSED / OPEN / HALF_OPEN transitions, one probe at a time, growth and counts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "breaker.h"

static steno__breaker make(const steno__breaker_config *cfg)
{
    steno__breaker b;
    assert_int_equal(steno__breaker_init(&b, cfg), STENO_OK);
    return b;
}

static void fail_n(steno__breaker *b, uint64_t now, int n)
{
    for (int i = 0; i < n; i++)
        steno__breaker_on_failure(b, now);
}

static void test_defaults_match_the_spec(void **state)
{
    (void)state;
    steno__breaker_config c;
    steno__breaker_config_default(&c);
    assert_int_equal(c.failure_threshold, 5);
    assert_int_equal(c.success_threshold, 2);
    assert_int_equal(c.open_ms, 5000);
    assert_true(c.open_multiplier == 1.0);
    assert_true(c.open_max_ms >= c.open_ms);
    assert_true(c.probe_timeout_ms > 0);
    steno__breaker b = make(NULL);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_CLOSED);
}

static void test_invalid_configs_are_rejected(void **state)
{
    (void)state;
    steno__breaker b;
    for (int field = 0; field < 8; field++) {
        steno__breaker_config c;
        steno__breaker_config_default(&c);
        switch (field) {
        case 0:
            c.failure_threshold = 0;
            break;
        case 1:
            c.success_threshold = 0;
            break;
        case 2:
            c.open_ms = 0;
            break;
        case 3:
            c.open_multiplier = 0.9;
            break;
        case 4:
            c.open_multiplier = NAN;
            break;
        case 5:
            c.open_max_ms = c.open_ms - 1;
            break;
        case 6:
            c.probe_timeout_ms = 0;
            break;
        case 7:
            c.open_multiplier = INFINITY;
            break;
        }
        assert_int_equal(steno__breaker_init(&b, &c), STENO_ERR_INVALID_ARG);
    }
    assert_int_equal(steno__breaker_init(NULL, NULL), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__breaker_allow(NULL, 0, NULL, NULL), STENO_ERR_INVALID_ARG);
}

static void test_closed_lets_everything_through(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    for (int i = 0; i < 100; i++) {
        bool probe = true;
        uint64_t at = 0;
        assert_int_equal(steno__breaker_allow(&b, 1000, &probe, &at), STENO_OK);
        assert_false(probe);
        assert_int_equal(at, 1000);
    }
}

static void test_opens_after_exactly_n_consecutive_failures(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 100, 4);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_CLOSED);
    assert_int_equal(steno__breaker_allow(&b, 100, NULL, NULL), STENO_OK);
    steno__breaker_on_failure(&b, 100);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_OPEN);
    assert_int_equal(b.opened, 1);
}

static void test_success_breaks_the_failure_streak(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 0, 4);
    steno__breaker_on_success(&b, 0);
    fail_n(&b, 0, 4);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_CLOSED);
    steno__breaker_on_failure(&b, 0);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_OPEN);
}

static void test_open_refuses_until_open_period_ends(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 1000, 5); /* open until 6000 */
    bool probe = true;
    uint64_t at = 0;
    assert_int_equal(steno__breaker_allow(&b, 1000, &probe, &at), STENO_ERR_BREAKER_OPEN);
    assert_false(probe);
    assert_int_equal(at, 6000);
    assert_int_equal(steno__breaker_allow(&b, 5999, &probe, &at), STENO_ERR_BREAKER_OPEN);
    assert_int_equal(at, 6000);
    /* Exactly at the end: half-open, and this caller holds the probe. */
    assert_int_equal(steno__breaker_allow(&b, 6000, &probe, &at), STENO_OK);
    assert_true(probe);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_HALF_OPEN);
    assert_int_equal(b.half_opened, 1);
}

static void test_half_open_admits_exactly_one_probe(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 0, 5);
    bool probe;
    uint64_t at;
    assert_int_equal(steno__breaker_allow(&b, 5000, &probe, &at), STENO_OK);
    assert_true(probe);
    /* Everyone else waits for the probe's outcome (or its presumed loss). */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(steno__breaker_allow(&b, 5001 + i, &probe, &at), STENO_ERR_BREAKER_OPEN);
        assert_false(probe);
        assert_int_equal(at, 5000 + 30000);
    }
}

static void test_each_probe_success_lets_the_next_probe_through(void **state)
{
    (void)state;
    steno__breaker b = make(NULL); /* success_threshold 2 */
    fail_n(&b, 0, 5);
    bool probe;
    assert_int_equal(steno__breaker_allow(&b, 5000, &probe, NULL), STENO_OK);
    steno__breaker_on_success(&b, 5100);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_HALF_OPEN);
    assert_int_equal(steno__breaker_allow(&b, 5100, &probe, NULL), STENO_OK);
    assert_true(probe);
    assert_int_equal(steno__breaker_allow(&b, 5100, &probe, NULL), STENO_ERR_BREAKER_OPEN);
    steno__breaker_on_success(&b, 5200);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_CLOSED);
    assert_int_equal(b.closed, 1);
    assert_int_equal(steno__breaker_allow(&b, 5200, &probe, NULL), STENO_OK);
    assert_false(probe);
}

static void test_failure_in_half_open_reopens(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 0, 5);
    assert_int_equal(steno__breaker_allow(&b, 5000, NULL, NULL), STENO_OK);
    steno__breaker_on_success(&b, 5000); /* one success is not enough */
    assert_int_equal(steno__breaker_allow(&b, 5000, NULL, NULL), STENO_OK);
    steno__breaker_on_failure(&b, 5500);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_OPEN);
    assert_int_equal(b.opened, 2);
    uint64_t at;
    assert_int_equal(steno__breaker_allow(&b, 5500, NULL, &at), STENO_ERR_BREAKER_OPEN);
    assert_int_equal(at, 10500);
    /* The next half-open needs its successes from scratch. */
    assert_int_equal(steno__breaker_allow(&b, 10500, NULL, NULL), STENO_OK);
    steno__breaker_on_success(&b, 10600);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_HALF_OPEN);
}

static void test_open_period_grows_and_is_capped_and_resets_on_close(void **state)
{
    (void)state;
    steno__breaker_config c;
    steno__breaker_config_default(&c);
    c.failure_threshold = 1;
    c.success_threshold = 1;
    c.open_ms = 1000;
    c.open_multiplier = 2.0;
    c.open_max_ms = 5000;
    steno__breaker b = make(&c);
    static const uint64_t periods[] = {1000, 2000, 4000, 5000, 5000};
    uint64_t now = 0, at;
    steno__breaker_on_failure(&b, now);
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        assert_int_equal(steno__breaker_allow(&b, now, NULL, &at), STENO_ERR_BREAKER_OPEN);
        assert_int_equal(at, now + periods[i]);
        now = at;
        assert_int_equal(steno__breaker_allow(&b, now, NULL, NULL), STENO_OK); /* probe */
        steno__breaker_on_failure(&b, now);                                    /* reopen */
    }
    /* Close it, then a new open starts from open_ms again. */
    assert_int_equal(steno__breaker_allow(&b, now + 5000, NULL, NULL), STENO_OK);
    steno__breaker_on_success(&b, now + 5000);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_CLOSED);
    steno__breaker_on_failure(&b, 100000);
    assert_int_equal(steno__breaker_allow(&b, 100000, NULL, &at), STENO_ERR_BREAKER_OPEN);
    assert_int_equal(at, 101000);
}

static void test_abandoned_probe_frees_the_slot(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 0, 5);
    assert_int_equal(steno__breaker_allow(&b, 5000, NULL, NULL), STENO_OK);
    assert_int_equal(steno__breaker_allow(&b, 5001, NULL, NULL), STENO_ERR_BREAKER_OPEN);
    steno__breaker_probe_abandoned(&b);
    bool probe;
    assert_int_equal(steno__breaker_allow(&b, 5002, &probe, NULL), STENO_OK);
    assert_true(probe);
    /* Abandoning outside HALF_OPEN changes nothing. */
    steno__breaker c = make(NULL);
    steno__breaker_probe_abandoned(&c);
    assert_int_equal(steno__breaker_get_state(&c), STENO__BREAKER_CLOSED);
}

static void test_silent_probe_is_presumed_lost_after_probe_timeout(void **state)
{
    (void)state;
    steno__breaker b = make(NULL); /* probe timeout 30 s */
    fail_n(&b, 0, 5);
    assert_int_equal(steno__breaker_allow(&b, 5000, NULL, NULL), STENO_OK);
    assert_int_equal(steno__breaker_allow(&b, 34999, NULL, NULL), STENO_ERR_BREAKER_OPEN);
    bool probe;
    assert_int_equal(steno__breaker_allow(&b, 35000, &probe, NULL), STENO_OK);
    assert_true(probe);
    assert_int_equal(b.half_opened, 1); /* still the same half-open period */
}

static void test_stale_results_while_open_are_ignored(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 0, 5);
    steno__breaker_on_success(&b, 10);
    steno__breaker_on_failure(&b, 10);
    uint64_t at;
    assert_int_equal(steno__breaker_allow(&b, 10, NULL, &at), STENO_ERR_BREAKER_OPEN);
    assert_int_equal(at, 5000); /* not extended by the stale failure */
    assert_int_equal(b.opened, 1);
}

/* One scripted lifecycle, checking state and all counters after each step. */
enum op { FAIL, OK_, ALLOW, ABANDON };
static void test_lifecycle_script(void **state)
{
    (void)state;
    steno__breaker_config c;
    steno__breaker_config_default(&c);
    c.failure_threshold = 2;
    c.success_threshold = 2;
    c.open_ms = 100;
    static const struct {
        enum op op;
        uint64_t t;
        int rc;     /* ALLOW only */
        bool probe; /* ALLOW only */
        steno__breaker_state st;
        uint64_t opened, half_opened, closed;
    } steps[] = {
        {ALLOW, 0, STENO_OK, false, STENO__BREAKER_CLOSED, 0, 0, 0},
        {FAIL, 1, 0, false, STENO__BREAKER_CLOSED, 0, 0, 0},
        {FAIL, 2, 0, false, STENO__BREAKER_OPEN, 1, 0, 0},
        {ALLOW, 50, STENO_ERR_BREAKER_OPEN, false, STENO__BREAKER_OPEN, 1, 0, 0},
        {ALLOW, 102, STENO_OK, true, STENO__BREAKER_HALF_OPEN, 1, 1, 0},
        {ALLOW, 103, STENO_ERR_BREAKER_OPEN, false, STENO__BREAKER_HALF_OPEN, 1, 1, 0},
        {ABANDON, 104, 0, false, STENO__BREAKER_HALF_OPEN, 1, 1, 0},
        {ALLOW, 105, STENO_OK, true, STENO__BREAKER_HALF_OPEN, 1, 1, 0},
        {FAIL, 106, 0, false, STENO__BREAKER_OPEN, 2, 1, 0},
        {ALLOW, 206, STENO_OK, true, STENO__BREAKER_HALF_OPEN, 2, 2, 0},
        {OK_, 207, 0, false, STENO__BREAKER_HALF_OPEN, 2, 2, 0},
        {ALLOW, 208, STENO_OK, true, STENO__BREAKER_HALF_OPEN, 2, 2, 0},
        {OK_, 209, 0, false, STENO__BREAKER_CLOSED, 2, 2, 1},
        {FAIL, 210, 0, false, STENO__BREAKER_CLOSED, 2, 2, 1},
        {OK_, 211, 0, false, STENO__BREAKER_CLOSED, 2, 2, 1},
        {FAIL, 212, 0, false, STENO__BREAKER_CLOSED, 2, 2, 1},
        {FAIL, 213, 0, false, STENO__BREAKER_OPEN, 3, 2, 1},
    };
    steno__breaker b = make(&c);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        switch (steps[i].op) {
        case FAIL:
            steno__breaker_on_failure(&b, steps[i].t);
            break;
        case OK_:
            steno__breaker_on_success(&b, steps[i].t);
            break;
        case ABANDON:
            steno__breaker_probe_abandoned(&b);
            break;
        case ALLOW: {
            bool probe = !steps[i].probe;
            assert_int_equal(steno__breaker_allow(&b, steps[i].t, &probe, NULL), steps[i].rc);
            assert_int_equal(probe, steps[i].probe);
            break;
        }
        }
        if (steno__breaker_get_state(&b) != steps[i].st || b.opened != steps[i].opened ||
            b.half_opened != steps[i].half_opened || b.closed != steps[i].closed)
            fail_msg("step %zu: state %s opened %llu half %llu closed %llu", i,
                     steno__breaker_state_name(b.state), (unsigned long long)b.opened,
                     (unsigned long long)b.half_opened, (unsigned long long)b.closed);
    }
}

static void test_open_until_saturates_near_the_end_of_time(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, UINT64_MAX - 10, 5);
    uint64_t at;
    assert_int_equal(steno__breaker_allow(&b, UINT64_MAX - 1, NULL, &at), STENO_ERR_BREAKER_OPEN);
    assert_int_equal(at, UINT64_MAX);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(steno__breaker_state_name(STENO__BREAKER_CLOSED), "closed");
    assert_string_equal(steno__breaker_state_name(STENO__BREAKER_OPEN), "open");
    assert_string_equal(steno__breaker_state_name(STENO__BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(steno__breaker_state_name((steno__breaker_state)42), "unknown");
}

static void test_trip_opens_a_closed_breaker_below_the_threshold(void **state)
{
    (void)state;
    steno__breaker b = make(NULL);
    fail_n(&b, 1000, 2); /* two of the five failures that would open it */
    steno__breaker_trip(&b, 1000);
    assert_int_equal(steno__breaker_get_state(&b), STENO__BREAKER_OPEN);
    bool probe = false;
    uint64_t retry_at = 0;
    assert_int_not_equal(steno__breaker_allow(&b, 1001, &probe, &retry_at), STENO_OK);
    assert_true(retry_at > 1001);
    /* once open (or half-open) a trip changes nothing: the open period stays as it was */
    uint64_t before = retry_at;
    steno__breaker_trip(&b, 2000);
    assert_int_not_equal(steno__breaker_allow(&b, 2001, &probe, &retry_at), STENO_OK);
    assert_int_equal(retry_at, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_the_spec),
        cmocka_unit_test(test_invalid_configs_are_rejected),
        cmocka_unit_test(test_closed_lets_everything_through),
        cmocka_unit_test(test_opens_after_exactly_n_consecutive_failures),
        cmocka_unit_test(test_success_breaks_the_failure_streak),
        cmocka_unit_test(test_open_refuses_until_open_period_ends),
        cmocka_unit_test(test_half_open_admits_exactly_one_probe),
        cmocka_unit_test(test_each_probe_success_lets_the_next_probe_through),
        cmocka_unit_test(test_failure_in_half_open_reopens),
        cmocka_unit_test(test_open_period_grows_and_is_capped_and_resets_on_close),
        cmocka_unit_test(test_abandoned_probe_frees_the_slot),
        cmocka_unit_test(test_silent_probe_is_presumed_lost_after_probe_timeout),
        cmocka_unit_test(test_stale_results_while_open_are_ignored),
        cmocka_unit_test(test_lifecycle_script),
        cmocka_unit_test(test_open_until_saturates_near_the_end_of_time),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_trip_opens_a_closed_breaker_below_the_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
