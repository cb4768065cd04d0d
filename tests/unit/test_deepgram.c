/* test_deepgram: the Deepgram adapter's URL building, headers, option checks and message parsing,
 * plus the option-set, URL-splitting and string-builder helpers it relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/url.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"

static const steno__provider *dg(void)
{
    const steno__provider *p = steno__provider_find("deepgram");
    assert_non_null(p);
    return p;
}

static const steno__audio_params ap16k = {STENO_ENCODING_LINEAR16, 16000, 1};

/* Builds the URL for base + options; returns a malloc'd copy. */
static char *url_for(const char *base, const steno_option *o, size_t n)
{
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, n, &set), STENO_OK);
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(dg()->build_url(base, &ap16k, &set, &b), STENO_OK);
    char *r = strdup(steno__sb_cstr(&b));
    steno__sb_free(&b);
    steno__opts_free(NULL, &set);
    return r;
}

/* ---- URL building ---- */

static void test_url_appends_audio_format_then_options_in_order(void **st)
{
    steno_option o[] = {{"model", "nova-3"}, {"interim_results", "true"}};
    char *u = url_for("wss://api.deepgram.com/v1/listen", o, 2);
    assert_string_equal(u, "wss://api.deepgram.com/v1/listen?encoding=linear16&sample_rate=16000"
                           "&channels=1&model=nova-3&interim_results=true");
    free(u);
}

static void test_url_keeps_existing_query_and_drops_fragment(void **st)
{
    steno_option o[] = {{"tag", "a"}};
    char *u = url_for("ws://127.0.0.1:8080/v1/listen?x=1#frag", o, 1);
    assert_string_equal(u, "ws://127.0.0.1:8080/v1/listen?x=1&encoding=linear16&sample_rate=16000"
                           "&channels=1&tag=a");
    free(u);
    u = url_for("ws://h/v1/listen?", NULL, 0);
    assert_string_equal(u, "ws://h/v1/listen?encoding=linear16&sample_rate=16000&channels=1");
    free(u);
}

static void test_url_percent_escapes_values(void **st)
{
    steno_option o[] = {{"keyterm", "hello world&x=y/\xc3\xbc+%"}, {"keyterm", "a~b-c.d_e"}};
    char *u = url_for("ws://h/v1/listen", o, 2);
    assert_non_null(strstr(u, "&keyterm=hello%20world%26x%3Dy%2F%C3%BC%2B%25&keyterm=a~b-c.d_e"));
    free(u);
}

static void test_url_rejects_missing_audio_params(void **st)
{
    steno__sb b;
    steno__sb_init(&b, NULL);
    steno__audio_params bad = {STENO_ENCODING_LINEAR16, 0, 1};
    assert_int_equal(dg()->build_url("ws://h/", &bad, NULL, &b), STENO_ERR_INVALID_ARG);
    assert_int_equal(dg()->build_url(NULL, &ap16k, NULL, &b), STENO_ERR_INVALID_ARG);
    steno__sb_free(&b);
}

/* ---- option validation ---- */

static void test_unknown_option_is_config_error_naming_the_key(void **st)
{
    char err[700];
    assert_int_equal(dg()->check_option("modle", "nova-3", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "'modle'"));
    assert_non_null(strstr(err, "model")); /* lists the known ones */
}

static void test_audio_format_options_are_reserved(void **st)
{
    char err[700];
    assert_int_equal(dg()->check_option("sample_rate", "8000", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "sample_rate"));
    assert_int_equal(dg()->check_option("encoding", "mulaw", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(dg()->check_option("channels", "2", err, sizeof err), STENO_ERR_CONFIG);
}

static void test_option_values_are_checked_by_kind(void **st)
{
    char err[700];
    assert_int_equal(dg()->check_option("interim_results", "true", err, sizeof err), STENO_OK);
    assert_int_equal(dg()->check_option("interim_results", "yes", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "interim_results"));
    assert_int_equal(dg()->check_option("endpointing", "false", err, sizeof err), STENO_OK);
    assert_int_equal(dg()->check_option("endpointing", "300", err, sizeof err), STENO_OK);
    assert_int_equal(dg()->check_option("endpointing", "-1", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(dg()->check_option("utterance_end_ms", "1000", err, sizeof err), STENO_OK);
    assert_int_equal(dg()->check_option("utterance_end_ms", "1e3", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(dg()->check_option("utterance_end_ms", "99999999999", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(dg()->check_option("model", "", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(dg()->check_option("model", NULL, err, sizeof err), STENO_OK); /* removal */
    assert_int_equal(dg()->check_option("", "x", err, sizeof err), STENO_ERR_CONFIG);
    /* one timeline per session: multichannel results cannot be mapped yet */
    assert_int_equal(dg()->check_option("multichannel", "false", err, sizeof err), STENO_OK);
    assert_int_equal(dg()->check_option("multichannel", "true", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "multichannel"));
}

static void test_check_set_refuses_repeated_single_valued_keys(void **st)
{
    char err[700];
    steno_option twice[] = {{"model", "nova-3"}, {"model", "nova-2"}};
    steno__opts s;
    assert_int_equal(steno__opts_copy(NULL, twice, 2, &s), STENO_OK);
    assert_int_equal(dg()->check_set(&s, err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "'model'"));
    steno__opts_free(NULL, &s);
    steno_option rep[] = {{"keyterm", "a"}, {"keyterm", "b"}, {"tag", "x"}, {"tag", "y"}};
    assert_int_equal(steno__opts_copy(NULL, rep, 4, &s), STENO_OK);
    assert_int_equal(dg()->check_set(&s, err, sizeof err), STENO_OK);
    steno__opts_free(NULL, &s);
}

/* ---- handshake headers ---- */

struct hdrs {
    int n;
    char name[4][64];
    char value[4][4200];
};

static int collect(void *ctx, const char *name, const char *value)
{
    struct hdrs *h = ctx;
    snprintf(h->name[h->n], sizeof h->name[0], "%s", name);
    snprintf(h->value[h->n], sizeof h->value[0], "%s", value);
    h->n++;
    return 0;
}

static void test_headers_bare_key_gets_token_scheme_and_colon_name(void **st)
{
    struct hdrs h = {0};
    assert_int_equal(dg()->handshake_headers("abc123", collect, &h), STENO_OK);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.name[0], "authorization:");
    assert_string_equal(h.value[0], "Token abc123");
}

static void test_headers_scheme_given_is_sent_verbatim(void **st)
{
    struct hdrs h = {0};
    assert_int_equal(dg()->handshake_headers("Bearer eyJ.x.y", collect, &h), STENO_OK);
    assert_string_equal(h.value[0], "Bearer eyJ.x.y");
    h.n = 0;
    assert_int_equal(dg()->handshake_headers("token k", collect, &h), STENO_OK);
    assert_string_equal(h.value[0], "token k");
}

static void test_headers_refuse_injection_and_skip_empty(void **st)
{
    struct hdrs h = {0};
    assert_int_equal(dg()->handshake_headers("k\r\nx-evil: 1", collect, &h), STENO_ERR_CONFIG);
    assert_int_equal(h.n, 0);
    assert_int_equal(dg()->handshake_headers("", collect, &h), STENO_OK);
    assert_int_equal(h.n, 0);
    char big[5000];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(dg()->handshake_headers(big, collect, &h), STENO_ERR_TOO_LARGE);
}

static void test_control_messages(void **st)
{
    assert_string_equal(dg()->keepalive_text, "{\"type\":\"KeepAlive\"}");
    assert_string_equal(dg()->finalize_text, "{\"type\":\"Finalize\"}");
    assert_string_equal(dg()->close_text, "{\"type\":\"CloseStream\"}");
    assert_null(dg()->initial_message);
    assert_null(dg()->frame_audio);
    assert_null(dg()->configure_message);
    assert_int_equal(dg()->speed_permille, 1250);
    assert_null(steno__provider_find("nope"));
}

/* ---- parsing ---- */

static int parse(const char *json, steno__msg *m)
{
    return dg()->parse(NULL, NULL, json, strlen(json), m);
}

static void test_parse_final_results_with_words(void **st)
{
    const char *j =
        "{\"type\":\"Results\",\"channel_index\":[0,1],\"duration\":1.5,\"start\":2.25,"
        "\"is_final\":true,\"speech_final\":true,\"from_finalize\":false,\"extra_field\":{\"x\":1},"
        "\"channel\":{\"alternatives\":[{\"transcript\":\"hello world\",\"confidence\":0.9,"
        "\"words\":[{\"word\":\"hello\",\"start\":2.3,\"end\":2.7,\"confidence\":0.95,"
        "\"punctuated_word\":\"Hello\",\"speaker\":1},{\"word\":\"world\",\"start\":2.8,"
        "\"end\":3.1,\"confidence\":0.85}]}]},\"metadata\":{\"request_id\":\"r\"}}";
    steno__msg m;
    assert_int_equal(parse(j, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_true(m.is_final && m.speech_final && !m.from_finalize);
    assert_true(m.start == 2.25 && m.duration == 1.5);
    assert_string_equal(m.transcript, "hello world");
    assert_int_equal(m.n_words, 2);
    assert_string_equal(m.words[0].punctuated_word, "Hello");
    assert_int_equal(m.words[0].speaker, 1);
    assert_string_equal(m.words[1].punctuated_word, "world"); /* falls back to word */
    assert_int_equal(m.words[1].speaker, -1);
    assert_true(m.words[1].end == 3.1);
    steno__msg_release(&m);
}

static void test_parse_interim_and_empty_alternatives(void **st)
{
    steno__msg m;
    assert_int_equal(parse("{\"type\":\"Results\",\"start\":0,\"duration\":0.5,\"is_final\":false,"
                           "\"channel\":{\"alternatives\":[]}}",
                           &m),
                     STENO_OK);
    assert_false(m.is_final);
    assert_string_equal(m.transcript, "");
    assert_int_equal(m.n_words, 0);
    steno__msg_release(&m);
    /* missing words is tolerated (an empty hypothesis) */
    assert_int_equal(parse("{\"type\":\"Results\",\"start\":0,\"duration\":0.5,\"channel\":{"
                           "\"alternatives\":[{\"transcript\":\"x\"}]}}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.n_words, 0);
    steno__msg_release(&m);
}

static void test_parse_rejects_wrong_types(void **st)
{
    static const char *bad[] = {
        /* is_final as a string */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"is_final\":\"true\",\"channel\":{"
        "\"alternatives\":[]}}",
        /* start as a string */
        "{\"type\":\"Results\",\"start\":\"0\",\"duration\":1,\"channel\":{\"alternatives\":[]}}",
        /* channel not an object */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":[]}",
        /* alternatives not an array */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":{}}}",
        /* words not an array */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":[{"
        "\"transcript\":\"a\",\"words\":\"a\"}]}}",
        /* a word without start */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":[{"
        "\"transcript\":\"a\",\"words\":[{\"word\":\"a\",\"end\":1}]}]}}",
        /* a word that is a number */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":[{"
        "\"transcript\":\"a\",\"words\":[1]}]}}",
        /* transcript a number */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":[{"
        "\"transcript\":5}]}}",
        /* channel_index of strings */
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel_index\":[\"0\"],\"channel\":{"
        "\"alternatives\":[]}}",
        /* missing duration */
        "{\"type\":\"Results\",\"start\":0,\"channel\":{\"alternatives\":[]}}",
        /* negative duration */
        "{\"type\":\"Results\",\"start\":0,\"duration\":-1,\"channel\":{\"alternatives\":[]}}",
        /* type not a string */
        "{\"type\":7}",
        "{\"type\":\"UtteranceEnd\",\"last_word_end\":\"3\"}",
        "{\"type\":\"SpeechStarted\"}",
        "{\"type\":\"Metadata\",\"duration\":\"x\"}",
        "{\"type\":\"Error\",\"description\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__msg m;
        int rc = parse(bad[i], &m);
        if (rc != STENO_ERR_PARSE)
            fail_msg("case %zu: expected STENO_ERR_PARSE, got %d: %s", i, rc, bad[i]);
    }
}

static void test_parse_rejects_non_finite_and_huge_numbers(void **st)
{
    steno__msg m;
    assert_int_equal(parse("{\"type\":\"Results\",\"start\":1e400,\"duration\":1,\"channel\":{"
                           "\"alternatives\":[]}}",
                           &m),
                     STENO_ERR_PARSE);
    assert_int_equal(parse("{\"type\":\"Results\",\"start\":0,\"duration\":-1e400,\"channel\":{"
                           "\"alternatives\":[]}}",
                           &m),
                     STENO_ERR_PARSE);
    /* a large but finite time parses (the timeline clamps it) */
    assert_int_equal(parse("{\"type\":\"Results\",\"start\":1e300,\"duration\":1e300,\"channel\":{"
                           "\"alternatives\":[{\"transcript\":\"a\",\"words\":[{\"word\":\"a\","
                           "\"start\":1e300,\"end\":1e300,\"speaker\":1e300}]}]}}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.words[0].speaker, -1);
    steno__msg_release(&m);
}

static void test_parse_survives_malformed_and_deeply_nested_input(void **st)
{
    steno__msg m;
    static const char *bad[] = {"",
                                "{",
                                "{\"type\":\"Results\"",
                                "[]",
                                "\"Results\"",
                                "1",
                                "null",
                                "{\"type\":\"Res",
                                "{}",
                                "tru",
                                "{\"type\":\"Results\",\"start\":0,\"duration\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse(bad[i], &m), STENO_ERR_PARSE);
    /* 5000 levels of nesting: cJSON's nesting limit refuses it, no stack overflow */
    size_t depth = 5000;
    char *deep = malloc(depth * 2 + 64);
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"type\":\"Results\",\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    assert_int_equal(parse(deep, &m), STENO_ERR_PARSE);
    free(deep);
    /* not NUL-terminated: only len bytes are read */
    const char buf[] = {'{', '}', 'x'};
    assert_int_equal(dg()->parse(NULL, NULL, buf, 2, &m), STENO_ERR_PARSE);
}

static void test_parse_other_message_types(void **st)
{
    steno__msg m;
    assert_int_equal(
        parse("{\"type\":\"UtteranceEnd\",\"channel\":[0,1],\"last_word_end\":2.5}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_UTTERANCE_END);
    assert_true(m.last_word_end == 2.5);
    steno__msg_release(&m);
    assert_int_equal(parse("{\"type\":\"SpeechStarted\",\"channel\":[0],\"timestamp\":1.25}", &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_SPEECH_STARTED);
    assert_true(m.timestamp == 1.25);
    steno__msg_release(&m);
    const char *meta = "{\"type\":\"Metadata\",\"request_id\":\"abc\",\"duration\":3.5,"
                       "\"channels\":1}";
    assert_int_equal(parse(meta, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_string_equal(m.request_id, "abc");
    assert_true(m.meta_duration == 3.5);
    assert_string_equal(m.raw, meta);
    steno__msg_release(&m);
    assert_int_equal(parse("{\"type\":\"Error\",\"variant\":\"DATA-0000\",\"description\":\"bad "
                           "audio\"}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "DATA-0000");
    assert_string_equal(m.error_message, "bad audio");
    steno__msg_release(&m);
    assert_int_equal(parse("{\"type\":\"SomethingNew\",\"x\":[1,2]}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
}

/* An allocator that fails after `budget` allocations. */
struct failing {
    int budget;
};
static void *f_alloc(void *o, size_t n)
{
    struct failing *f = o;
    if (f->budget-- <= 0)
        return NULL;
    return malloc(n);
}
static void f_free(void *o, void *p)
{
    free(p);
}

static void test_parse_reports_allocation_failure(void **st)
{
    struct failing f = {0};
    steno_allocator a = {f_alloc, f_free, &f};
    const char *j =
        "{\"type\":\"Results\",\"start\":0,\"duration\":1,\"channel\":{\"alternatives\":"
        "[{\"transcript\":\"a\",\"words\":[{\"word\":\"a\",\"start\":0,\"end\":1}]}]}}";
    steno__msg m;
    assert_int_equal(dg()->parse(&a, NULL, j, strlen(j), &m), STENO_ERR_NOMEM);
    f.budget = 1;
    assert_int_equal(dg()->parse(&a, NULL, j, strlen(j), &m), STENO_OK);
    steno__msg_release(&m);
}

/* ---- option sets ---- */

static void test_opts_apply_replaces_all_values_of_named_keys(void **st)
{
    steno_option cur[] = {
        {"model", "nova-3"}, {"keyterm", "a"}, {"punctuate", "true"}, {"keyterm", "b"}};
    steno__opts c, n;
    assert_int_equal(steno__opts_copy(NULL, cur, 4, &c), STENO_OK);
    steno_option ch[] = {
        {"keyterm", "x"}, {"punctuate", NULL}, {"keyterm", "y"}, {"language", "de"}};
    assert_int_equal(steno__opts_apply(NULL, &c, ch, 4, &n), STENO_OK);
    assert_int_equal(n.n, 4);
    assert_string_equal(n.v[0].key, "model");
    assert_string_equal(n.v[1].value, "x");
    assert_string_equal(n.v[2].value, "y");
    assert_string_equal(n.v[3].key, "language");
    assert_int_equal(steno__opts_count(&n, "keyterm"), 2);
    assert_null(steno__opts_get(&n, "punctuate"));
    steno__opts_free(NULL, &c);
    steno__opts_free(NULL, &n);
    steno_option nullkey[] = {{NULL, "x"}};
    assert_int_equal(steno__opts_copy(NULL, nullkey, 1, &c), STENO_ERR_INVALID_ARG);
}

/* ---- endpoint URLs ---- */

static void test_url_parse_splits_for_lws(void **st)
{
    char err[256];
    steno__url u;
    assert_int_equal(
        steno__url_parse(NULL, "ws://127.0.0.1:8080/v1/listen?a=b#f", &u, err, sizeof err),
        STENO_OK);
    assert_false(u.tls);
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.hostport, "127.0.0.1:8080");
    assert_string_equal(u.path, "/v1/listen?a=b");
    assert_string_equal(u.endpoint, "ws://127.0.0.1:8080/v1/listen");
    steno__url_free(NULL, &u);
    assert_int_equal(
        steno__url_parse(NULL, "wss://api.deepgram.com/v1/listen", &u, err, sizeof err), STENO_OK);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.hostport, "api.deepgram.com");
    steno__url_free(NULL, &u);
    assert_int_equal(steno__url_parse(NULL, "ws://[::1]:9/x", &u, err, sizeof err), STENO_OK);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.hostport, "[::1]:9");
    steno__url_free(NULL, &u);
    assert_int_equal(steno__url_parse(NULL, "ws://h?q=1", &u, err, sizeof err), STENO_OK);
    assert_string_equal(u.path, "/?q=1");
    steno__url_free(NULL, &u);
}

static void test_url_parse_rejects_bad_urls_with_a_reason(void **st)
{
    static const char *bad[] = {"http://h/",    "ws://",      "ws://:80/",   "ws://h:0/",
                                "ws://h:99999", "ws://h:x/",  "ws://u:p@h/", "ws://[::1/",
                                "ws://h /x",    "wss://h:/x", "ftp://h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        steno__url u;
        if (steno__url_parse(NULL, bad[i], &u, err, sizeof err) != STENO_ERR_CONFIG)
            fail_msg("accepted '%s'", bad[i]);
        assert_non_null(strstr(err, "invalid endpoint URL"));
    }
}

static void test_strbuf_limit_is_sticky(void **st)
{
    steno__sb b;
    steno__sb_init(&b, NULL);
    b.max = 8;
    steno__sb_puts(&b, "1234");
    steno__sb_puts(&b, "56789");
    assert_int_equal(steno__sb_status(&b), STENO_ERR_TOO_LARGE);
    steno__sb_puts(&b, "x");
    assert_string_equal(steno__sb_cstr(&b), "");
    steno__sb_reset(&b);
    steno__sb_printf(&b, "%d", 42);
    assert_string_equal(steno__sb_cstr(&b), "42");
    steno__sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_appends_audio_format_then_options_in_order),
        cmocka_unit_test(test_url_keeps_existing_query_and_drops_fragment),
        cmocka_unit_test(test_url_percent_escapes_values),
        cmocka_unit_test(test_url_rejects_missing_audio_params),
        cmocka_unit_test(test_unknown_option_is_config_error_naming_the_key),
        cmocka_unit_test(test_audio_format_options_are_reserved),
        cmocka_unit_test(test_option_values_are_checked_by_kind),
        cmocka_unit_test(test_check_set_refuses_repeated_single_valued_keys),
        cmocka_unit_test(test_headers_bare_key_gets_token_scheme_and_colon_name),
        cmocka_unit_test(test_headers_scheme_given_is_sent_verbatim),
        cmocka_unit_test(test_headers_refuse_injection_and_skip_empty),
        cmocka_unit_test(test_control_messages),
        cmocka_unit_test(test_parse_final_results_with_words),
        cmocka_unit_test(test_parse_interim_and_empty_alternatives),
        cmocka_unit_test(test_parse_rejects_wrong_types),
        cmocka_unit_test(test_parse_rejects_non_finite_and_huge_numbers),
        cmocka_unit_test(test_parse_survives_malformed_and_deeply_nested_input),
        cmocka_unit_test(test_parse_other_message_types),
        cmocka_unit_test(test_parse_reports_allocation_failure),
        cmocka_unit_test(test_opts_apply_replaces_all_values_of_named_keys),
        cmocka_unit_test(test_url_parse_splits_for_lws),
        cmocka_unit_test(test_url_parse_rejects_bad_urls_with_a_reason),
        cmocka_unit_test(test_strbuf_limit_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
