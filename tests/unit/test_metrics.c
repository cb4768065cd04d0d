/* test_metrics: registry limits, exact Prometheus text, escaping, truncation, concurrent render. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static steno__metrics *make(size_t max_metrics, size_t max_buckets, size_t string_bytes)
{
    steno__metrics_config cfg = {max_metrics, max_buckets, string_bytes};
    steno__metrics *m = NULL;
    assert_int_equal(steno__metrics_create(&cfg, NULL, &m), STENO_OK);
    assert_non_null(m);
    return m;
}

/* Renders into a static buffer (asserting it fits) and returns it. */
static const char *render(const steno__metrics *m)
{
    static char buf[65536];
    size_t len = 0;
    assert_int_equal(steno__metrics_render(m, buf, sizeof(buf), &len), STENO_OK);
    assert_int_equal(strlen(buf), len);
    return buf;
}

static void test_create_validates_its_arguments(void **state)
{
    (void)state;
    steno__metrics_config cfg = {4, 4, 256};
    steno__metrics *m = NULL;
    assert_int_equal(steno__metrics_create(NULL, NULL, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_create(&cfg, NULL, NULL), STENO_ERR_INVALID_ARG);
    cfg.max_metrics = 0;
    assert_int_equal(steno__metrics_create(&cfg, NULL, &m), STENO_ERR_INVALID_ARG);
    assert_null(m);
    assert_int_equal(steno__metrics_render(NULL, NULL, 0, NULL), STENO_ERR_INVALID_ARG);
    steno__metrics_destroy(NULL);
}

static void test_exposition_text_is_exact(void **state)
{
    (void)state;
    steno__metrics *m = make(8, 8, 1024);
    steno__metric *transient, *server, *active, *dur;
    const steno__label t_labels[] = {{"endpoint", "api.deepgram.com"}, {"class", "transient"}};
    const steno__label s_labels[] = {{"endpoint", "api.deepgram.com"}, {"class", "server"}};
    const steno__label h_labels[] = {{"endpoint", "x"}};
    const double bounds[] = {100, 1000, 10000};
    assert_int_equal(steno__metrics_counter(m, "steno_reconnects_total", "Reconnect attempts.",
                                            t_labels, 2, &transient),
                     STENO_OK);
    assert_int_equal(
        steno__metrics_gauge(m, "steno_sessions_active", "Open sessions.", NULL, 0, &active),
        STENO_OK);
    assert_int_equal(steno__metrics_histogram(m, "steno_reconnect_duration_ms",
                                              "Time to reconnect.", h_labels, 1, bounds, 3, &dur),
                     STENO_OK);
    /* Registered after another family: still rendered with its own family. */
    assert_int_equal(steno__metrics_counter(m, "steno_reconnects_total", "Reconnect attempts.",
                                            s_labels, 2, &server),
                     STENO_OK);
    steno__counter_add(transient, 3);
    steno__counter_inc(server);
    steno__gauge_set(active, 2);
    steno__histogram_observe(dur, 50);
    steno__histogram_observe(dur, 100);
    steno__histogram_observe(dur, 500);
    steno__histogram_observe(dur, 20000);
    assert_string_equal(
        render(m), "# HELP steno_reconnects_total Reconnect attempts.\n"
                   "# TYPE steno_reconnects_total counter\n"
                   "steno_reconnects_total{endpoint=\"api.deepgram.com\",class=\"transient\"} 3\n"
                   "steno_reconnects_total{endpoint=\"api.deepgram.com\",class=\"server\"} 1\n"
                   "# HELP steno_sessions_active Open sessions.\n"
                   "# TYPE steno_sessions_active gauge\n"
                   "steno_sessions_active 2\n"
                   "# HELP steno_reconnect_duration_ms Time to reconnect.\n"
                   "# TYPE steno_reconnect_duration_ms histogram\n"
                   "steno_reconnect_duration_ms_bucket{endpoint=\"x\",le=\"100\"} 2\n"
                   "steno_reconnect_duration_ms_bucket{endpoint=\"x\",le=\"1000\"} 3\n"
                   "steno_reconnect_duration_ms_bucket{endpoint=\"x\",le=\"10000\"} 3\n"
                   "steno_reconnect_duration_ms_bucket{endpoint=\"x\",le=\"+Inf\"} 4\n"
                   "steno_reconnect_duration_ms_sum{endpoint=\"x\"} 20650\n"
                   "steno_reconnect_duration_ms_count{endpoint=\"x\"} 4\n");
    assert_int_equal(steno__counter_value(transient), 3);
    assert_true(steno__gauge_value(active) == 2.0);
    assert_int_equal(steno__histogram_count(dur), 4);
    assert_true(steno__histogram_sum(dur) == 20650.0);
    steno__metrics_destroy(m);
}

static void test_empty_registry_and_empty_help(void **state)
{
    (void)state;
    steno__metrics *m = make(2, 0, 64);
    assert_string_equal(render(m), "");
    steno__metric *c;
    assert_int_equal(steno__metrics_counter(m, "a", NULL, NULL, 0, &c), STENO_OK);
    assert_string_equal(render(m), "# TYPE a counter\na 0\n");
    steno__metrics_destroy(m);
}

static void test_histogram_bucket_edges_are_inclusive(void **state)
{
    (void)state;
    steno__metrics *m = make(2, 8, 256);
    steno__metric *h;
    const double bounds[] = {0.005, 0.5, 1, 2.5};
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, bounds, 4, &h), STENO_OK);
    const double obs[] = {-1, 0, 0.005, 0.0050000001, 0.5, 1, 1.0000001, 2.5, 3, NAN};
    double sum = 0;
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        steno__histogram_observe(h, obs[i]);
        if (!isnan(obs[i]))
            sum += obs[i];
    }
    /* NaN is dropped; every bound is inclusive; the rest lands in +Inf. */
    const char *text = render(m);
    const char *buckets = "# TYPE h histogram\n"
                          "h_bucket{le=\"0.005\"} 3\n"
                          "h_bucket{le=\"0.5\"} 5\n"
                          "h_bucket{le=\"1\"} 6\n"
                          "h_bucket{le=\"2.5\"} 8\n"
                          "h_bucket{le=\"+Inf\"} 9\n"
                          "h_sum ";
    assert_memory_equal(text, buckets, strlen(buckets));
    assert_true(strtod(text + strlen(buckets), NULL) == sum);
    assert_non_null(strstr(text, "\nh_count 9\n"));
    assert_true(steno__histogram_sum(h) == sum);
    assert_int_equal(steno__histogram_count(h), 9);
    steno__metrics_destroy(m);
}

static void test_histogram_infinities_land_in_the_end_buckets(void **state)
{
    (void)state;
    steno__metrics *m = make(2, 8, 256);
    steno__metric *lo, *hi;
    const double bounds[] = {1, 2};
    assert_int_equal(steno__metrics_histogram(m, "lo", NULL, NULL, 0, bounds, 2, &lo), STENO_OK);
    assert_int_equal(steno__metrics_histogram(m, "hi", NULL, NULL, 0, bounds, 2, &hi), STENO_OK);
    steno__histogram_observe(lo, -INFINITY);
    steno__histogram_observe(hi, INFINITY);
    const char *text = render(m);
    assert_non_null(strstr(text, "lo_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "lo_sum -Inf\n"));
    assert_non_null(strstr(text, "hi_bucket{le=\"2\"} 0\nhi_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "hi_sum +Inf\n"));
    steno__metrics_destroy(m);
}

static void test_label_values_and_help_are_escaped(void **state)
{
    (void)state;
    steno__metrics *m = make(2, 0, 256);
    steno__metric *g;
    const steno__label l[] = {{"path", "C:\\dir \"q\"\nnext"}};
    assert_int_equal(steno__metrics_gauge(m, "g", "line1\nline2 back\\slash \"q\"", l, 1, &g),
                     STENO_OK);
    assert_string_equal(render(m), "# HELP g line1\\nline2 back\\\\slash \"q\"\n"
                                   "# TYPE g gauge\n"
                                   "g{path=\"C:\\\\dir \\\"q\\\"\\nnext\"} 0\n");
    steno__metrics_destroy(m);
}

static void test_truncation_reports_the_needed_size(void **state)
{
    (void)state;
    steno__metrics *m = make(2, 0, 64);
    steno__metric *c;
    assert_int_equal(steno__metrics_counter(m, "c_total", "h", NULL, 0, &c), STENO_OK);
    steno__counter_add(c, 12345);
    const char *full = "# HELP c_total h\n# TYPE c_total counter\nc_total 12345\n";
    size_t n = strlen(full);

    size_t len = 0;
    assert_int_equal(steno__metrics_render(m, NULL, 0, &len), STENO_ERR_TOO_LARGE);
    assert_int_equal(len, n);

    char buf[128];
    static const size_t caps[] = {1, 2, 10, 0 /* n */, 0 /* n + 1 */, 128};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        size_t cap = caps[i] ? caps[i] : (i == 3 ? n : n + 1);
        memset(buf, '#', sizeof(buf));
        len = 0;
        int rc = steno__metrics_render(m, buf, cap, &len);
        assert_int_equal(len, n);
        if (cap >= n + 1) {
            assert_int_equal(rc, STENO_OK);
            assert_string_equal(buf, full);
        } else {
            assert_int_equal(rc, STENO_ERR_TOO_LARGE);
            /* A NUL-terminated prefix, and nothing written past cap. */
            assert_int_equal(strlen(buf), cap - 1);
            assert_memory_equal(buf, full, cap - 1);
            if (cap < sizeof(buf))
                assert_int_equal(buf[cap], '#');
        }
    }
    assert_int_equal(steno__metrics_render(m, NULL, 5, &len), STENO_ERR_INVALID_ARG);
    steno__metrics_destroy(m);
}

static void test_numbers_are_formatted_shortest_round_trip(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } rows[] = {
        {0, "0"},
        {-0.0, "-0"},
        {2, "2"},
        {-1.5, "-1.5"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {123.456, "123.456"},
        {1000, "1000"},
        {1000000, "1000000"},
        {123456789012345, "123456789012345"},
        {1e15, "1e+15"},
        {1e21, "1e+21"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1e-7, "1e-07"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    steno__metrics *m = make(1, 0, 16);
    steno__metric *g;
    assert_int_equal(steno__metrics_gauge(m, "g", NULL, NULL, 0, &g), STENO_OK);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__gauge_set(g, rows[i].v);
        char want[64];
        snprintf(want, sizeof(want), "# TYPE g gauge\ng %s\n", rows[i].text);
        assert_string_equal(render(m), want);
    }
    steno__metrics_destroy(m);
}

static void test_gauge_add_and_set(void **state)
{
    (void)state;
    steno__metrics *m = make(1, 0, 16);
    steno__metric *g;
    assert_int_equal(steno__metrics_gauge(m, "g", NULL, NULL, 0, &g), STENO_OK);
    steno__gauge_add(g, 2.5);
    steno__gauge_add(g, -4);
    assert_true(steno__gauge_value(g) == -1.5);
    steno__gauge_set(g, 7);
    steno__gauge_add(g, 1);
    assert_true(steno__gauge_value(g) == 8);
    steno__metrics_destroy(m);
}

static void test_names_and_labels_are_validated(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        steno__label label;
        int want;
    } rows[] = {
        {"ok_name", {"endpoint", "v"}, STENO_OK},
        {"ns:sub_total", {"_x", "v"}, STENO_OK},
        {":colon", {"a1", ""}, STENO_OK},
        {"", {"a", "v"}, STENO_ERR_INVALID_ARG},
        {"1abc", {"a", "v"}, STENO_ERR_INVALID_ARG},
        {"a-b", {"a", "v"}, STENO_ERR_INVALID_ARG},
        {"a b", {"a", "v"}, STENO_ERR_INVALID_ARG},
        {NULL, {"a", "v"}, STENO_ERR_INVALID_ARG},
        {"n", {"le", "v"}, STENO_ERR_INVALID_ARG},  /* reserved for buckets */
        {"n", {"__x", "v"}, STENO_ERR_INVALID_ARG}, /* reserved prefix */
        {"n", {"1a", "v"}, STENO_ERR_INVALID_ARG},
        {"n", {"a:b", "v"}, STENO_ERR_INVALID_ARG}, /* colons only in metric names */
        {"n", {"a-b", "v"}, STENO_ERR_INVALID_ARG},
        {"n", {"", "v"}, STENO_ERR_INVALID_ARG},
        {"n", {NULL, "v"}, STENO_ERR_INVALID_ARG},
        {"n", {"a", NULL}, STENO_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__metrics *m = make(2, 0, 256);
        steno__metric *c = (steno__metric *)1;
        int rc = steno__metrics_counter(m, rows[i].name, NULL, &rows[i].label, 1, &c);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %d", i, rc);
        if (rc != STENO_OK)
            assert_null(c);
        steno__metrics_destroy(m);
    }

    steno__metrics *m = make(2, 0, 1024);
    steno__metric *c;
    const steno__label dup[] = {{"a", "1"}, {"a", "2"}};
    assert_int_equal(steno__metrics_counter(m, "n", NULL, dup, 2, &c), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_counter(m, "n", NULL, NULL, 1, &c), STENO_ERR_INVALID_ARG);
    steno__label many[STENO__METRIC_MAX_LABELS + 1];
    char names[STENO__METRIC_MAX_LABELS + 1][4];
    for (int i = 0; i <= STENO__METRIC_MAX_LABELS; i++) {
        snprintf(names[i], sizeof(names[i]), "l%d", i);
        many[i] = (steno__label){names[i], "v"};
    }
    assert_int_equal(steno__metrics_counter(m, "n", NULL, many, STENO__METRIC_MAX_LABELS + 1, &c),
                     STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_counter(m, "n", NULL, many, STENO__METRIC_MAX_LABELS, &c),
                     STENO_OK);
    assert_int_equal(steno__metrics_counter(m, "n2", NULL, NULL, 0, NULL), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_counter(NULL, "n2", NULL, NULL, 0, &c), STENO_ERR_INVALID_ARG);
    steno__metrics_destroy(m);
}

static void test_registering_a_series_twice_returns_it(void **state)
{
    (void)state;
    steno__metrics *m = make(4, 8, 1024);
    const steno__label a[] = {{"k", "a"}};
    const steno__label b[] = {{"k", "b"}};
    const double bounds[] = {1, 2};
    const double other[] = {1, 3};
    steno__metric *x, *y, *z, *h, *h2;
    assert_int_equal(steno__metrics_counter(m, "c", "help", a, 1, &x), STENO_OK);
    assert_int_equal(steno__metrics_counter(m, "c", "help", a, 1, &y), STENO_OK);
    assert_ptr_equal(x, y);
    assert_int_equal(steno__metrics_counter(m, "c", "help", b, 1, &z), STENO_OK);
    assert_ptr_not_equal(x, z);
    /* A family agrees on type and help. */
    assert_int_equal(steno__metrics_gauge(m, "c", "help", a, 1, &y), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_counter(m, "c", "other help", b, 1, &y), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, bounds, 2, &h), STENO_OK);
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, bounds, 2, &h2), STENO_OK);
    assert_ptr_equal(h, h2);
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, other, 2, &h2),
                     STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, bounds, 1, &h2),
                     STENO_ERR_INVALID_ARG);
    steno__metrics_destroy(m);
}

static void test_histogram_bounds_are_validated(void **state)
{
    (void)state;
    static const struct {
        double b[3];
        size_t n;
        int want;
    } rows[] = {
        {{1, 2, 3}, 3, STENO_OK},
        {{-5, 0, 5}, 3, STENO_OK},
        {{1, INFINITY}, 2, STENO_OK}, /* explicit +Inf accepted, dropped */
        {{0}, 0, STENO_ERR_INVALID_ARG},
        {{INFINITY}, 1, STENO_ERR_INVALID_ARG}, /* nothing left but +Inf */
        {{1, 1}, 2, STENO_ERR_INVALID_ARG},
        {{2, 1}, 2, STENO_ERR_INVALID_ARG},
        {{NAN}, 1, STENO_ERR_INVALID_ARG},
        {{1, NAN, 3}, 3, STENO_ERR_INVALID_ARG},
        {{-INFINITY, 1}, 2, STENO_ERR_INVALID_ARG},
        {{1, INFINITY, 3}, 3, STENO_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        steno__metrics *m = make(1, 8, 64);
        steno__metric *h;
        int rc = steno__metrics_histogram(m, "h", NULL, NULL, 0, rows[i].b, rows[i].n, &h);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %d", i, rc);
        steno__metrics_destroy(m);
    }
    steno__metrics *m = make(1, 8, 64);
    steno__metric *h;
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, NULL, 2, &h),
                     STENO_ERR_INVALID_ARG);
    const double b[] = {1, INFINITY};
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, b, 2, &h), STENO_OK);
    assert_string_equal(render(m), "# TYPE h histogram\n"
                                   "h_bucket{le=\"1\"} 0\n"
                                   "h_bucket{le=\"+Inf\"} 0\n"
                                   "h_sum 0\n"
                                   "h_count 0\n");
    steno__metrics_destroy(m);
}

static void test_limits_are_enforced_without_side_effects(void **state)
{
    (void)state;
    steno__metrics *m = make(3, 3, 40);
    steno__metric *x;
    const double b3[] = {1, 2, 3};
    /* Strings: "a\0" + "\0" = 3 bytes, labels "k\0v\0" = 4 bytes. */
    assert_int_equal(steno__metrics_counter(m, "a", NULL, NULL, 0, &x), STENO_OK);
    const char *before = "# TYPE a counter\na 0\n";
    assert_string_equal(render(m), before);
    /* 41 bytes of strings would be needed: refused, nothing consumed. */
    const steno__label big[] = {{"k", "0123456789012345678901234567890123456789"}};
    assert_int_equal(steno__metrics_counter(m, "a", NULL, big, 1, &x), STENO_ERR_TOO_LARGE);
    assert_null(x);
    assert_string_equal(render(m), before);
    /* Bucket bounds: 3 available. */
    assert_int_equal(steno__metrics_histogram(m, "h", NULL, NULL, 0, b3, 3, &x), STENO_OK);
    assert_int_equal(steno__metrics_histogram(m, "h2", NULL, NULL, 0, b3, 1, &x),
                     STENO_ERR_TOO_LARGE);
    /* Slots: 3 available. */
    assert_int_equal(steno__metrics_gauge(m, "g", NULL, NULL, 0, &x), STENO_OK);
    assert_int_equal(steno__metrics_gauge(m, "g2", NULL, NULL, 0, &x), STENO_ERR_TOO_LARGE);
    /* Re-registering an existing series needs no room. */
    assert_int_equal(steno__metrics_gauge(m, "g", NULL, NULL, 0, &x), STENO_OK);
    steno__metrics_destroy(m);
}

static void test_null_and_wrong_type_updates_are_noops(void **state)
{
    (void)state;
    steno__counter_add(NULL, 1);
    steno__counter_inc(NULL);
    steno__gauge_set(NULL, 1);
    steno__gauge_add(NULL, 1);
    steno__histogram_observe(NULL, 1);
    assert_int_equal(steno__counter_value(NULL), 0);
    assert_true(steno__gauge_value(NULL) == 0);
    assert_int_equal(steno__histogram_count(NULL), 0);
    assert_true(steno__histogram_sum(NULL) == 0);

    steno__metrics *m = make(2, 2, 64);
    steno__metric *c, *g;
    assert_int_equal(steno__metrics_counter(m, "c", NULL, NULL, 0, &c), STENO_OK);
    assert_int_equal(steno__metrics_gauge(m, "g", NULL, NULL, 0, &g), STENO_OK);
    steno__gauge_set(c, 5);
    steno__histogram_observe(c, 5);
    steno__counter_add(g, 5);
    assert_int_equal(steno__counter_value(c), 0);
    assert_true(steno__gauge_value(g) == 0);
    assert_true(steno__gauge_value(c) == 0);
    assert_int_equal(steno__counter_value(g), 0);
    steno__metrics_destroy(m);
}

/* ---- allocation --------------------------------------------------------- */

struct counting {
    int allocs, frees;
    int fail_after; /* -1: never */
};

static void *count_alloc(void *opaque, size_t size)
{
    struct counting *c = opaque;
    if (c->fail_after >= 0 && c->allocs >= c->fail_after)
        return NULL;
    c->allocs++;
    return malloc(size);
}

static void count_free(void *opaque, void *p)
{
    struct counting *c = opaque;
    c->frees++;
    free(p);
}

static void test_all_memory_is_allocated_at_creation(void **state)
{
    (void)state;
    struct counting cnt = {0, 0, -1};
    steno_allocator a = {count_alloc, count_free, &cnt};
    steno__metrics_config cfg = {16, 64, 4096};
    steno__metrics *m;
    assert_int_equal(steno__metrics_create(&cfg, &a, &m), STENO_OK);
    int after_create = cnt.allocs;
    const double b[] = {1, 10, 100};
    char name[16];
    for (int i = 0; i < 16; i++) {
        steno__metric *x;
        snprintf(name, sizeof(name), "m%d", i);
        if (i % 2)
            assert_int_equal(steno__metrics_histogram(m, name, "h", NULL, 0, b, 3, &x), STENO_OK);
        else
            assert_int_equal(steno__metrics_counter(m, name, "h", NULL, 0, &x), STENO_OK);
        steno__histogram_observe(x, 5);
        steno__counter_inc(x);
    }
    (void)render(m);
    assert_int_equal(cnt.allocs, after_create);
    steno__metrics_destroy(m);
    assert_int_equal(cnt.frees, cnt.allocs);
}

static void test_every_allocation_failure_is_reported_cleanly(void **state)
{
    (void)state;
    steno__metrics_config cfg = {4, 4, 64};
    for (int n = 0;; n++) {
        struct counting cnt = {0, 0, n};
        steno_allocator a = {count_alloc, count_free, &cnt};
        steno__metrics *m = (steno__metrics *)1;
        int rc = steno__metrics_create(&cfg, &a, &m);
        if (rc == STENO_OK) {
            steno__metrics_destroy(m);
            assert_int_equal(cnt.frees, cnt.allocs);
            assert_true(n > 0);
            break;
        }
        assert_int_equal(rc, STENO_ERR_NOMEM);
        assert_null(m);
        assert_int_equal(cnt.frees, cnt.allocs); /* nothing leaked */
        assert_true(n < 100);
    }
}

/* ---- threads ------------------------------------------------------------ */

#define UPDATES 100000

struct shared {
    steno__metrics *m;
    steno__metric *c, *g, *h;
    atomic_bool done;
    atomic_int renders;
};

static void *updater(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < UPDATES; i++) {
        steno__counter_inc(s->c);
        steno__gauge_add(s->g, 1.0);
        steno__histogram_observe(s->h, (double)(i % 2000));
        if (i == UPDATES / 2) {
            /* Halfway, make sure renders really interleave with updates
             * (the renderer might otherwise start only after we finish). */
            while (atomic_load(&s->renders) < 3)
                sched_yield();
        }
        if (i % 10000 == 0) {
            /* Registration publishes new series while the renderer runs. */
            char name[16];
            steno__metric *x;
            snprintf(name, sizeof(name), "late_%d", i / 10000);
            assert_int_equal(steno__metrics_counter(s->m, name, "late", NULL, 0, &x), STENO_OK);
            steno__counter_inc(x);
        }
    }
    atomic_store(&s->done, true);
    return NULL;
}

/* In every render, each histogram's +Inf bucket equals its _count. */
static void check_histogram_consistent(const char *text)
{
    const char *inf = strstr(text, "h_bucket{le=\"+Inf\"} ");
    const char *cnt = strstr(text, "h_count ");
    assert_non_null(inf);
    assert_non_null(cnt);
    assert_int_equal(strtoull(inf + strlen("h_bucket{le=\"+Inf\"} "), NULL, 10),
                     strtoull(cnt + strlen("h_count "), NULL, 10));
}

static void test_concurrent_update_and_render(void **state)
{
    (void)state;
    struct shared s;
    s.m = make(32, 16, 4096);
    const double b[] = {10, 100, 1000};
    assert_int_equal(steno__metrics_counter(s.m, "c", "updates", NULL, 0, &s.c), STENO_OK);
    assert_int_equal(steno__metrics_gauge(s.m, "g", "level", NULL, 0, &s.g), STENO_OK);
    assert_int_equal(steno__metrics_histogram(s.m, "h", "dist", NULL, 0, b, 3, &s.h), STENO_OK);
    atomic_init(&s.done, false);
    atomic_init(&s.renders, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, updater, &s), 0);
    static char buf[16384];
    while (!atomic_load(&s.done)) {
        size_t len;
        assert_int_equal(steno__metrics_render(s.m, buf, sizeof(buf), &len), STENO_OK);
        check_histogram_consistent(buf);
        atomic_fetch_add(&s.renders, 1);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(atomic_load(&s.renders) >= 3);
    assert_int_equal(steno__counter_value(s.c), UPDATES);
    assert_true(steno__gauge_value(s.g) == UPDATES);
    assert_int_equal(steno__histogram_count(s.h), UPDATES);
    const char *text = render(s.m);
    check_histogram_consistent(text);
    assert_non_null(strstr(text, "\nc 100000\n"));
    assert_non_null(strstr(text, "\nh_count 100000\n"));
    assert_non_null(strstr(text, "\nlate_9 1\n"));
    steno__metrics_destroy(s.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validates_its_arguments),
        cmocka_unit_test(test_exposition_text_is_exact),
        cmocka_unit_test(test_empty_registry_and_empty_help),
        cmocka_unit_test(test_histogram_bucket_edges_are_inclusive),
        cmocka_unit_test(test_histogram_infinities_land_in_the_end_buckets),
        cmocka_unit_test(test_label_values_and_help_are_escaped),
        cmocka_unit_test(test_truncation_reports_the_needed_size),
        cmocka_unit_test(test_numbers_are_formatted_shortest_round_trip),
        cmocka_unit_test(test_gauge_add_and_set),
        cmocka_unit_test(test_names_and_labels_are_validated),
        cmocka_unit_test(test_registering_a_series_twice_returns_it),
        cmocka_unit_test(test_histogram_bounds_are_validated),
        cmocka_unit_test(test_limits_are_enforced_without_side_effects),
        cmocka_unit_test(test_null_and_wrong_type_updates_are_noops),
        cmocka_unit_test(test_all_memory_is_allocated_at_creation),
        cmocka_unit_test(test_every_allocation_failure_is_reported_cleanly),
        cmocka_unit_test(test_concurrent_update_and_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
