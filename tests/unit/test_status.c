/* test_status: every steno_status value has its own name and words; unknown values are handled. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "steno/status.h"

#define ROW(e)                                                                                     \
    {                                                                                              \
        e, #e                                                                                      \
    }

/* Every enumerator with its spelling: proves the table is in enum order. */
static const struct {
    int value;
    const char *name;
} all[] = {
    ROW(STENO_OK),
    ROW(STENO_ERR_INVALID_ARG),
    ROW(STENO_ERR_NOMEM),
    ROW(STENO_ERR_STATE),
    ROW(STENO_ERR_FULL),
    ROW(STENO_ERR_AGAIN),
    ROW(STENO_ERR_CONFIG),
    ROW(STENO_ERR_FORMAT),
    ROW(STENO_ERR_UNSUPPORTED),
    ROW(STENO_ERR_NETWORK),
    ROW(STENO_ERR_TLS),
    ROW(STENO_ERR_TIMEOUT),
    ROW(STENO_ERR_AUTH),
    ROW(STENO_ERR_REQUEST),
    ROW(STENO_ERR_RATE_LIMITED),
    ROW(STENO_ERR_SERVER),
    ROW(STENO_ERR_PROTOCOL),
    ROW(STENO_ERR_AUDIO_REJECTED),
    ROW(STENO_ERR_CLOSED),
    ROW(STENO_ERR_RETRIES_EXHAUSTED),
    ROW(STENO_ERR_BREAKER_OPEN),
    ROW(STENO_ERR_BUDGET_EXHAUSTED),
    ROW(STENO_ERR_PARSE),
    ROW(STENO_ERR_TOO_LARGE),
    ROW(STENO_ERR_INTERNAL),
};
#define N_ALL (sizeof(all) / sizeof(all[0]))

static void test_every_value_is_listed_here(void **state)
{
    (void)state;
    /* If a code is appended to the enum, this list (and the table) must grow. */
    assert_int_equal(N_ALL, (size_t)(-STENO__STATUS_MIN) + 1);
    for (size_t i = 0; i < N_ALL; i++)
        assert_int_equal(all[i].value, -(int)i);
}

static void test_every_value_has_its_enumerator_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++)
        assert_string_equal(steno_status_name(all[i].value), all[i].name);
}

static void test_every_value_has_distinct_nonempty_text(void **state)
{
    (void)state;
    for (int s = STENO__STATUS_MIN; s <= 0; s++) {
        const char *t = steno_strerror(s);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        assert_string_not_equal(t, "unknown steno status value");
        for (int u = STENO__STATUS_MIN; u < s; u++)
            assert_string_not_equal(t, steno_strerror(u));
    }
}

static void test_every_value_has_distinct_name(void **state)
{
    (void)state;
    for (int s = STENO__STATUS_MIN; s <= 0; s++) {
        const char *n = steno_status_name(s);
        assert_non_null(n);
        assert_true(strncmp(n, "STENO_", 6) == 0);
        assert_string_not_equal(n, "STENO_ERR_UNKNOWN");
        for (int u = STENO__STATUS_MIN; u < s; u++)
            assert_string_not_equal(n, steno_status_name(u));
    }
}

static void test_unknown_values_say_so(void **state)
{
    (void)state;
    const int unknown[] = {1, 42, STENO__STATUS_MIN - 1, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(steno_strerror(unknown[i]), "unknown steno status value");
        assert_string_equal(steno_status_name(unknown[i]), "STENO_ERR_UNKNOWN");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_value_is_listed_here),
        cmocka_unit_test(test_every_value_has_its_enumerator_name),
        cmocka_unit_test(test_every_value_has_distinct_nonempty_text),
        cmocka_unit_test(test_every_value_has_distinct_name),
        cmocka_unit_test(test_unknown_values_say_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
