/* test_budget: retry token costs per failure class, exhaustion and recovery by payback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "budget.h"

static steno__budget make(const steno__budget_config *cfg)
{
    steno__budget b;
    assert_int_equal(steno__budget_init(&b, cfg), STENO_OK);
    return b;
}

static void test_defaults_follow_aws_standard_retry(void **state)
{
    (void)state;
    steno__budget_config c;
    steno__budget_config_default(&c);
    assert_int_equal(c.capacity, 500);
    assert_int_equal(c.transient_cost, 10);
    assert_int_equal(c.server_cost, 5);
    assert_int_equal(c.success_payback, 1);
    steno__budget b = make(NULL);
    assert_int_equal(steno__budget_available(&b), 500);
    assert_int_equal(steno__budget_cost(&b, STENO__FAILURE_TRANSIENT), 10);
    assert_int_equal(steno__budget_cost(&b, STENO__FAILURE_SERVER), 5);
    assert_int_equal(steno__budget_cost(&b, (steno__failure_class)9), 0);
}

static void test_invalid_configs_are_rejected(void **state)
{
    (void)state;
    static const struct {
        uint32_t cap, transient, server;
        int want;
    } rows[] = {
        {500, 10, 5, STENO_OK},
        {1, 1, 1, STENO_OK},
        {10, 10, 10, STENO_OK},
        {0, 10, 5, STENO_ERR_INVALID_ARG},
        {500, 0, 5, STENO_ERR_INVALID_ARG},
        {500, 10, 0, STENO_ERR_INVALID_ARG},
        {9, 10, 5, STENO_ERR_INVALID_ARG},
        {9, 5, 10, STENO_ERR_INVALID_ARG},
    };
    steno__budget b;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__budget_config c = {rows[i].cap, rows[i].transient, rows[i].server, 1};
        assert_int_equal(steno__budget_init(&b, &c), rows[i].want);
    }
    assert_int_equal(steno__budget_init(NULL, NULL), STENO_ERR_INVALID_ARG);
}

static void test_acquire_takes_the_class_cost(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(t.cost, 10);
    assert_int_equal(steno__budget_available(&b), 490);
    steno__retry_token u = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &u), STENO_OK);
    assert_int_equal(u.cost, 5);
    assert_int_equal(steno__budget_available(&b), 485);
    assert_int_equal(b.acquired, 2);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    assert_int_equal(steno__budget_acquire(NULL, STENO__FAILURE_SERVER, &t), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, NULL), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__budget_acquire(&b, (steno__failure_class)7, &t), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__budget_available(&b), 500);
    steno__budget_on_success(NULL, &t); /* no crash */
    assert_int_equal(steno__budget_available(NULL), 0);
}

static void test_exhaustion_after_fifty_transient_retries(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    for (int i = 0; i < 50; i++)
        assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_available(&b), 0);
    t.cost = 77;
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t),
                     STENO_ERR_BUDGET_EXHAUSTED);
    assert_int_equal(t.cost, 77); /* untouched on refusal */
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t),
                     STENO_ERR_BUDGET_EXHAUSTED);
    assert_int_equal(b.refused, 2);
    assert_int_equal(b.acquired, 50);
}

static void test_edge_exactly_the_cost_left(void **state)
{
    (void)state;
    /* 500 = 49 * 10 + 10: with 10 left a transient retry passes, with 9 it does not,
     * while a server retry (5) still passes with 9. */
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    for (int i = 0; i < 49; i++)
        assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_available(&b), 10);
    steno__budget exact = b;
    assert_int_equal(steno__budget_acquire(&exact, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_available(&exact), 0);
    steno__budget_on_success(&b, NULL);                                               /* +1 -> 11 */
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t), STENO_OK); /* 6 */
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t),
                     STENO_ERR_BUDGET_EXHAUSTED);
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t), STENO_OK); /* 1 */
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t),
                     STENO_ERR_BUDGET_EXHAUSTED);
    assert_int_equal(steno__budget_available(&b), 1);
}

static void test_success_returns_the_lease(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_available(&b), 480);
    /* Only the latest lease comes back: the failed retry's cost stays spent. */
    steno__budget_on_success(&b, &t);
    assert_int_equal(steno__budget_available(&b), 490);
    assert_int_equal(t.cost, 0);
    /* A second success on the cleared token is a no-retry success: +1. */
    steno__budget_on_success(&b, &t);
    assert_int_equal(steno__budget_available(&b), 491);
}

static void test_new_lease_replaces_the_old_one(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t), STENO_OK);
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t), STENO_OK);
    assert_int_equal(t.cost, 5);
    steno__budget_on_success(&b, &t);
    assert_int_equal(steno__budget_available(&b), 490);
}

static void test_payback_never_exceeds_capacity(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    for (int i = 0; i < 10; i++)
        steno__budget_on_success(&b, NULL);
    assert_int_equal(steno__budget_available(&b), 500);
    steno__retry_token t = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_SERVER, &t), STENO_OK);
    steno__budget_on_success(&b, NULL); /* 496 */
    steno__budget_on_success(&b, &t);   /* +5, capped at 500 */
    assert_int_equal(steno__budget_available(&b), 500);
}

static void test_drained_bucket_recovers_through_successes(void **state)
{
    (void)state;
    steno__budget b = make(NULL);
    steno__retry_token t = {0};
    while (steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &t) == STENO_OK)
        ;
    assert_int_equal(steno__budget_available(&b), 0);
    /* Successes of first attempts (no retry) trickle tokens back. */
    for (int i = 0; i < 9; i++) {
        steno__budget_on_success(&b, NULL);
        steno__retry_token u = {0};
        assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &u),
                         STENO_ERR_BUDGET_EXHAUSTED);
    }
    steno__budget_on_success(&b, NULL);
    steno__retry_token u = {0};
    assert_int_equal(steno__budget_acquire(&b, STENO__FAILURE_TRANSIENT, &u), STENO_OK);
    /* And that retry's success hands its 10 back. */
    steno__budget_on_success(&b, &u);
    assert_int_equal(steno__budget_available(&b), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_aws_standard_retry),
        cmocka_unit_test(test_invalid_configs_are_rejected),
        cmocka_unit_test(test_acquire_takes_the_class_cost),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_exhaustion_after_fifty_transient_retries),
        cmocka_unit_test(test_edge_exactly_the_cost_left),
        cmocka_unit_test(test_success_returns_the_lease),
        cmocka_unit_test(test_new_lease_replaces_the_old_one),
        cmocka_unit_test(test_payback_never_exceeds_capacity),
        cmocka_unit_test(test_drained_bucket_recovers_through_successes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
