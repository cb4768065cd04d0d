/* test_pacing: send rate never above speed × real time, burst honoured, no idle accumulation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pacing.h"

static steno__pacing make(uint32_t rate, uint32_t permille, uint32_t burst_ms, uint64_t now)
{
    steno__pacing_config c = {rate, permille, burst_ms};
    steno__pacing p;
    assert_int_equal(steno__pacing_init(&p, &c, now), STENO_OK);
    return p;
}

/* Send chunks of `frames` at `now` until refused; returns how many went. */
static uint64_t drain(steno__pacing *p, uint64_t now, uint32_t frames)
{
    uint64_t n = 0;
    while (steno__pacing_allow(p, now, frames))
        n++;
    return n;
}

static void test_defaults(void **state)
{
    (void)state;
    steno__pacing_config c;
    steno__pacing_config_default(&c, 16000);
    assert_int_equal(c.frame_rate, 16000);
    assert_int_equal(c.speed_permille, 1250);
    assert_int_equal(c.burst_ms, 2000);
}

static void test_invalid_configs_are_rejected(void **state)
{
    (void)state;
    static const struct {
        uint32_t rate, permille, burst;
        int want;
    } rows[] = {
        {16000, 1250, 2000, STENO_OK},
        {1, 1, 1, STENO_OK},
        {384000, 1000000, 60000, STENO_OK},
        {0, 1250, 2000, STENO_ERR_INVALID_ARG},
        {16000, 0, 2000, STENO_ERR_INVALID_ARG},
        {16000, 1250, 0, STENO_ERR_INVALID_ARG},
        {16000, 1000001, 2000, STENO_ERR_INVALID_ARG},         /* beyond 1000x */
        {UINT32_MAX, 1250, UINT32_MAX, STENO_ERR_INVALID_ARG}, /* would overflow */
        {4000000, 1250, 3000000, STENO_ERR_INVALID_ARG},
    };
    steno__pacing p;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__pacing_config c = {rows[i].rate, rows[i].permille, rows[i].burst};
        assert_int_equal(steno__pacing_init(&p, &c, 0), rows[i].want);
    }
    steno__pacing_config c;
    steno__pacing_config_default(&c, 16000);
    assert_int_equal(steno__pacing_init(NULL, &c, 0), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__pacing_init(&p, NULL, 0), STENO_ERR_INVALID_ARG);
    assert_false(steno__pacing_allow(NULL, 0, 1));
    assert_int_equal(steno__pacing_wait_ms(NULL, 0, 1), 0);
}

static void test_burst_is_honoured_from_a_full_bucket(void **state)
{
    (void)state;
    /* 16 kHz, 2000 ms burst = 32,000 frames = 100 chunks of 20 ms. */
    steno__pacing p = make(16000, 1250, 2000, 0);
    assert_int_equal(drain(&p, 0, 320), 100);
    assert_int_equal(steno__pacing_wait_ms(&p, 0, 320), 16); /* 320 / 20 frames per ms */
}

static void test_wait_is_exact_and_allow_agrees(void **state)
{
    (void)state;
    static const struct {
        uint32_t rate, permille, chunk;
        uint64_t wait;
    } rows[] = {
        {16000, 1250, 320, 16}, /* 20 frames/ms */
        {16000, 1000, 320, 20}, /* real time */
        {44100, 1250, 441, 8},  /* 55.125 frames/ms: 441 / 55.125 = 8 exactly */
        {44100, 1000, 441, 10}, {8000, 1250, 100, 10}, /* 10 frames/ms */
        {8000, 1250, 101, 11},                         /* rounds up */
        {48000, 2000, 960, 10},                        /* 2x */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__pacing p = make(rows[i].rate, rows[i].permille, 1000, 1000);
        (void)drain(&p, 1000, rows[i].chunk);
        uint64_t w = steno__pacing_wait_ms(&p, 1000, rows[i].chunk);
        /* Drained to less than one chunk: the wait is at most a chunk's worth. */
        assert_true(w >= 1 && w <= rows[i].wait);
        /* From empty exactly: spend what is left with 1-frame sends. */
        while (steno__pacing_allow(&p, 1000, 1))
            ;
        assert_int_equal(steno__pacing_wait_ms(&p, 1000, rows[i].chunk), rows[i].wait);
        assert_false(steno__pacing_allow(&p, 1000 + rows[i].wait - 1, rows[i].chunk));
        assert_true(steno__pacing_allow(&p, 1000 + rows[i].wait, rows[i].chunk));
    }
}

static void test_long_run_rate_never_exceeds_speed_times_real_time(void **state)
{
    (void)state;
    /* Greedy sender, 1 ms clock, 10 simulated minutes. At every instant:
     *   sent_frames * 1e6 <= burst_units + t * rate * permille
     * and at the end it is within one chunk of that (no credit lost). */
    static const struct {
        uint32_t rate, permille, burst, chunk;
    } rows[] = {
        {16000, 1250, 2000, 320}, {44100, 1250, 2000, 441},
        {8000, 1000, 500, 160},   {48000, 1250, 100, 4800}, /* chunk = whole burst */
        {16000, 1250, 50, 1600},                            /* chunk bigger than the burst: debt */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__pacing p = make(rows[i].rate, rows[i].permille, rows[i].burst, 0);
        const uint64_t burst_units = (uint64_t)rows[i].rate * rows[i].burst * 1000;
        const uint64_t per_ms = (uint64_t)rows[i].rate * rows[i].permille;
        const uint64_t chunk_units = (uint64_t)rows[i].chunk * 1000000;
        uint64_t sent = 0;
        const uint64_t T = 600000;
        for (uint64_t t = 0; t <= T; t++) {
            sent += drain(&p, t, rows[i].chunk) * rows[i].chunk;
            uint64_t limit = burst_units + t * per_ms;
            /* An oversized chunk may overdraw once by (chunk - burst). */
            if (chunk_units > burst_units)
                limit += chunk_units - burst_units;
            if (sent * 1000000 > limit)
                fail_msg("row %zu: %llu frames by t=%llu ms exceeds the limit", i,
                         (unsigned long long)sent, (unsigned long long)t);
        }
        uint64_t limit = burst_units + T * per_ms;
        /* The greedy sender leaves less than one chunk of credit unused. */
        assert_true(sent * 1000000 + chunk_units > limit);
    }
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static void test_irregular_clock_and_chunks_keep_the_bound(void **state)
{
    (void)state;
    /* Random chunk sizes (10-100 ms) and random clock steps (0-50 ms). */
    steno__pacing p = make(16000, 1250, 2000, 0);
    uint64_t x = 12345, t = 0, sent = 0;
    for (int i = 0; i < 200000; i++) {
        t += xorshift(&x) % 51;
        uint32_t chunk = 160 + (uint32_t)(xorshift(&x) % 1441);
        if (steno__pacing_allow(&p, t, chunk))
            sent += chunk;
        assert_true(sent <= 32000 + 20 * t);
    }
}

static void test_idle_time_accumulates_no_more_than_the_burst(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 0);
    assert_int_equal(drain(&p, 0, 320), 100);
    /* An hour of silence: still only 2000 ms of audio may go at once. */
    assert_int_equal(drain(&p, 3600000, 320), 100);
    assert_int_equal(steno__pacing_wait_ms(&p, 3600000, 320), 16);
}

static void test_large_clock_jumps_do_not_overflow(void **state)
{
    (void)state;
    steno__pacing p = make(384000, 1000000, 60000, 0);
    assert_true(drain(&p, 0, 384000) > 0);
    assert_true(steno__pacing_wait_ms(&p, 0, 384000) > 0);
    assert_int_equal(steno__pacing_wait_ms(&p, UINT64_MAX, 384000), 0);
    assert_int_equal(drain(&p, UINT64_MAX, 384000), 60); /* exactly the 60 s burst */

    steno__pacing q = make(16000, 1250, 2000, UINT64_MAX - 100);
    assert_int_equal(drain(&q, UINT64_MAX - 100, 320), 100);
    assert_int_equal(steno__pacing_wait_ms(&q, UINT64_MAX - 100, 320), 16);
    assert_true(steno__pacing_allow(&q, UINT64_MAX - 84, 320));
}

static void test_clock_going_backwards_adds_no_credit(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 1000);
    (void)drain(&p, 1000, 320);
    assert_int_equal(steno__pacing_wait_ms(&p, 500, 320), 16);
    assert_false(steno__pacing_allow(&p, 500, 320));
    assert_false(steno__pacing_allow(&p, 1015, 320));
    assert_true(steno__pacing_allow(&p, 1016, 320));
}

static void test_oversized_chunk_goes_when_full_and_leaves_a_debt(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 0);
    /* 3 s of audio against a 2 s burst: waits for a full bucket, not forever. */
    assert_true(steno__pacing_allow(&p, 0, 320));
    assert_int_equal(steno__pacing_wait_ms(&p, 0, 48000), 16);
    assert_false(steno__pacing_allow(&p, 15, 48000));
    assert_true(steno__pacing_allow(&p, 16, 48000));
    /* Credit is now -16,000 frames: a 20 ms chunk waits (16000 + 320) / 20. */
    assert_int_equal(steno__pacing_wait_ms(&p, 16, 320), 816);
    assert_false(steno__pacing_allow(&p, 831, 320));
    assert_true(steno__pacing_allow(&p, 832, 320));
}

static void test_waits_are_counted_once_per_chunk(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 0);
    (void)drain(&p, 0, 320); /* the refusal that ends the drain: wait 1 */
    assert_int_equal(steno__pacing_waits(&p), 1);
    for (uint64_t t = 1; t < 16; t++)
        assert_false(steno__pacing_allow(&p, t, 320)); /* same chunk, still waiting */
    assert_int_equal(steno__pacing_waits(&p), 1);
    assert_true(steno__pacing_allow(&p, 16, 320));
    assert_false(steno__pacing_allow(&p, 16, 320)); /* the next chunk waits: 2 */
    assert_int_equal(steno__pacing_waits(&p), 2);
    assert_int_equal(steno__pacing_waits(NULL), 0);
}

static void test_zero_frames_always_pass(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 0);
    assert_true(steno__pacing_allow(&p, 0, 48000)); /* into debt */
    assert_true(steno__pacing_allow(&p, 0, 0));
    assert_int_equal(steno__pacing_wait_ms(&p, 0, 0), 0);
    assert_int_equal(steno__pacing_waits(&p), 0);
}

static void test_reset_refills_the_burst(void **state)
{
    (void)state;
    steno__pacing p = make(16000, 1250, 2000, 0);
    (void)drain(&p, 0, 320);
    steno__pacing_reset(&p, 5);
    assert_int_equal(drain(&p, 5, 320), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_invalid_configs_are_rejected),
        cmocka_unit_test(test_burst_is_honoured_from_a_full_bucket),
        cmocka_unit_test(test_wait_is_exact_and_allow_agrees),
        cmocka_unit_test(test_long_run_rate_never_exceeds_speed_times_real_time),
        cmocka_unit_test(test_irregular_clock_and_chunks_keep_the_bound),
        cmocka_unit_test(test_idle_time_accumulates_no_more_than_the_burst),
        cmocka_unit_test(test_large_clock_jumps_do_not_overflow),
        cmocka_unit_test(test_clock_going_backwards_adds_no_credit),
        cmocka_unit_test(test_oversized_chunk_goes_when_full_and_leaves_a_debt),
        cmocka_unit_test(test_waits_are_counted_once_per_chunk),
        cmocka_unit_test(test_zero_frames_always_pass),
        cmocka_unit_test(test_reset_refills_the_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
