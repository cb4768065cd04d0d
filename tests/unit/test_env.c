/* test_env: STENO_* variables fill or override client and session configs, and bad values are
 * refused with a message naming the variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "steno/env.h"

static const char *all_vars[] = {
    "STENO_CA_FILE",
    "STENO_MAX_CONNECTS",
    "STENO_BREAKER_THRESHOLD",
    "STENO_BREAKER_OPEN_MS",
    "STENO_RETRY_BUDGET",
    "STENO_LOG",
    "STENO_PROVIDER",
    "STENO_URL",
    "STENO_API_KEY",
    "DEEPGRAM_API_KEY",
    "STENO_SAMPLE_RATE",
    "STENO_CHANNELS",
    "STENO_CHUNK_MS",
    "STENO_RING_CHUNKS",
    "STENO_RETRY_BASE_MS",
    "STENO_RETRY_CAP_MS",
    "STENO_RETRY_MULTIPLIER",
    "STENO_RETRY_MAX_ATTEMPTS",
    "STENO_MAX_OUTAGE_MS",
    "STENO_KEEPALIVE_MS",
    "STENO_PING_MS",
    "STENO_DEAD_AFTER_MS",
    "STENO_CONNECT_TIMEOUT_MS",
    "STENO_CLOSE_TIMEOUT_MS",
};

static int clean(void **st)
{
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
        unsetenv(all_vars[i]);
    return 0;
}

static void test_defaults_mode_fills_only_unset_fields(void **st)
{
    setenv("STENO_URL", "ws://127.0.0.1:9/v1/listen", 1);
    setenv("STENO_CHUNK_MS", "50", 1);
    setenv("STENO_RING_CHUNKS", "300", 1);
    steno_session_config c = {0};
    c.ring_chunks = 20; /* the app's own choice wins in DEFAULTS mode */
    char err[256];
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_DEFAULTS, err, sizeof err),
                     STENO_OK);
    assert_string_equal(c.url, "ws://127.0.0.1:9/v1/listen");
    assert_int_equal(c.chunk_ms, 50);
    assert_int_equal(c.ring_chunks, 20);
}

static void test_override_mode_wins_over_app_settings(void **st)
{
    setenv("STENO_URL", "ws://env/v1/listen", 1);
    setenv("STENO_RING_CHUNKS", "300", 1);
    setenv("STENO_DEAD_AFTER_MS", "4000", 1);
    steno_session_config c;
    steno_session_config_init(&c);
    c.url = "ws://app/v1/listen";
    char err[256];
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err),
                     STENO_OK);
    assert_string_equal(c.url, "ws://env/v1/listen");
    assert_int_equal(c.ring_chunks, 300);
    assert_int_equal(c.dead_after_ms, 4000);
    assert_int_equal(c.keepalive_ms, 3000); /* untouched: variable unset */
}

static void test_invalid_value_names_the_variable_and_changes_nothing(void **st)
{
    setenv("STENO_URL", "ws://env/v1/listen", 1);
    setenv("STENO_KEEPALIVE_MS", "3s", 1);
    steno_session_config c = {0};
    char err[256] = "";
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "STENO_KEEPALIVE_MS"));
    assert_null(c.url); /* all or nothing */
    static const struct {
        const char *var, *val;
    } bad[] = {
        {"STENO_SAMPLE_RATE", "7999"},     {"STENO_CHANNELS", "9"},
        {"STENO_CHUNK_MS", "-5"},          {"STENO_RING_CHUNKS", "1"},
        {"STENO_RETRY_BASE_MS", "0"},      {"STENO_RETRY_CAP_MS", "1e3"},
        {"STENO_PING_MS", "99"},           {"STENO_RETRY_MULTIPLIER", "0.5"},
        {"STENO_RETRY_MULTIPLIER", "nan"}, {"STENO_RETRY_MAX_ATTEMPTS", "many"},
        {"STENO_MAX_OUTAGE_MS", "0"},      {"STENO_CONNECT_TIMEOUT_MS", "99999999999999"},
    };
    unsetenv("STENO_KEEPALIVE_MS");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i].var, bad[i].val, 1);
        err[0] = '\0';
        if (steno_session_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err) !=
                STENO_ERR_CONFIG ||
            !strstr(err, bad[i].var))
            fail_msg("%s=%s accepted or not named (%s)", bad[i].var, bad[i].val, err);
        unsetenv(bad[i].var);
    }
}

static void test_api_key_prefers_steno_variable(void **st)
{
    setenv("DEEPGRAM_API_KEY", "dg", 1);
    steno_session_config c = {0};
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_DEFAULTS, NULL, 0), STENO_OK);
    assert_string_equal(c.api_key, "dg");
    setenv("STENO_API_KEY", "st", 1);
    c.api_key = NULL;
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_DEFAULTS, NULL, 0), STENO_OK);
    assert_string_equal(c.api_key, "st");
    c.api_key = "app";
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_DEFAULTS, NULL, 0), STENO_OK);
    assert_string_equal(c.api_key, "app");
}

static void test_empty_variables_are_unset(void **st)
{
    setenv("STENO_URL", "", 1);
    setenv("STENO_CHUNK_MS", "", 1);
    steno_session_config c = {0};
    c.url = "ws://app/";
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_OVERRIDE, NULL, 0), STENO_OK);
    assert_string_equal(c.url, "ws://app/");
    assert_int_equal(c.chunk_ms, 0);
}

static void test_retry_policy_variables(void **st)
{
    setenv("STENO_RETRY_BASE_MS", "100", 1);
    setenv("STENO_RETRY_CAP_MS", " 2000 ", 1);
    setenv("STENO_RETRY_MULTIPLIER", "1.5", 1);
    setenv("STENO_RETRY_MAX_ATTEMPTS", "7", 1);
    setenv("STENO_MAX_OUTAGE_MS", "unlimited", 1);
    steno_session_config c = {0};
    assert_int_equal(steno_session_config_from_env(&c, STENO_ENV_DEFAULTS, NULL, 0), STENO_OK);
    assert_int_equal(c.retry.base_ms, 100);
    assert_int_equal(c.retry.cap_ms, 2000);
    assert_true(c.retry.multiplier == 1.5);
    assert_int_equal(c.retry.max_attempts, 7);
    assert_int_equal(c.retry.max_outage_ms, UINT32_MAX);
}

static void test_client_variables(void **st)
{
    setenv("STENO_CA_FILE", "/etc/ssl/certs/ca-certificates.crt", 1);
    setenv("STENO_MAX_CONNECTS", "4", 1);
    setenv("STENO_BREAKER_THRESHOLD", "3", 1);
    setenv("STENO_BREAKER_OPEN_MS", "1000", 1);
    setenv("STENO_RETRY_BUDGET", "off", 1);
    setenv("STENO_LOG", "debug", 1);
    steno_client_config c = {0};
    char err[256];
    assert_int_equal(steno_client_config_from_env(&c, STENO_ENV_DEFAULTS, err, sizeof err),
                     STENO_OK);
    assert_string_equal(c.ca_file, "/etc/ssl/certs/ca-certificates.crt");
    assert_int_equal(c.max_concurrent_connects, 4);
    assert_int_equal(c.breaker_failure_threshold, 3);
    assert_int_equal(c.breaker_open_ms, 1000);
    assert_int_equal(c.retry_budget_disable, 1);
    assert_int_equal(c.log_level, STENO_LOG_DEBUG);
    setenv("STENO_RETRY_BUDGET", "250", 1);
    setenv("STENO_LOG", "2", 1);
    assert_int_equal(steno_client_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err),
                     STENO_OK);
    assert_int_equal(c.retry_budget_capacity, 250);
    assert_int_equal(c.retry_budget_disable, 0);
    assert_int_equal(c.log_level, STENO_LOG_WARN);
    setenv("STENO_LOG", "loud", 1);
    assert_int_equal(steno_client_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "STENO_LOG"));
    setenv("STENO_LOG", "warn", 1);
    setenv("STENO_RETRY_BUDGET", "lots", 1);
    assert_int_equal(steno_client_config_from_env(&c, STENO_ENV_OVERRIDE, err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "STENO_RETRY_BUDGET"));
}

static void test_null_config_is_invalid(void **st)
{
    assert_int_equal(steno_session_config_from_env(NULL, STENO_ENV_DEFAULTS, NULL, 0),
                     STENO_ERR_INVALID_ARG);
    assert_int_equal(steno_client_config_from_env(NULL, STENO_ENV_DEFAULTS, NULL, 0),
                     STENO_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_mode_fills_only_unset_fields, clean),
        cmocka_unit_test_setup(test_override_mode_wins_over_app_settings, clean),
        cmocka_unit_test_setup(test_invalid_value_names_the_variable_and_changes_nothing, clean),
        cmocka_unit_test_setup(test_api_key_prefers_steno_variable, clean),
        cmocka_unit_test_setup(test_empty_variables_are_unset, clean),
        cmocka_unit_test_setup(test_retry_policy_variables, clean),
        cmocka_unit_test_setup(test_client_variables, clean),
        cmocka_unit_test_setup(test_null_config_is_invalid, clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
