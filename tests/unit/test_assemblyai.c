/* test_assemblyai: the AssemblyAI v3 adapter's URL building, credentials, option checks and
 * message parsing (Turn, Begin, Termination, errors, hostile input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"

static const steno__provider *aai(void)
{
    const steno__provider *p = steno__provider_find("assemblyai");
    assert_non_null(p);
    return p;
}

static const steno__audio_params ap16k = {STENO_ENCODING_LINEAR16, 16000, 1};

static char *url_for(const char *base, const steno_option *o, size_t n)
{
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, n, &set), STENO_OK);
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(aai()->build_url(base, &ap16k, &set, &b), STENO_OK);
    char *r = strdup(steno__sb_cstr(&b));
    steno__sb_free(&b);
    steno__opts_free(NULL, &set);
    return r;
}

static void test_url_always_carries_rate_encoding_and_model(void **state)
{
    (void)state;
    char *u = url_for("wss://streaming.assemblyai.com/v3/ws", NULL, 0);
    assert_string_equal(u, "wss://streaming.assemblyai.com/v3/ws?sample_rate=16000&encoding="
                           "pcm_s16le&speech_model=universal-streaming-english");
    free(u);
    steno_option o[] = {{"format_turns", "true"}, {"speech_model", "u3-rt-pro"}};
    u = url_for("ws://h:1/v3/ws?x=1#frag", o, 2);
    assert_string_equal(u, "ws://h:1/v3/ws?x=1&sample_rate=16000&encoding=pcm_s16le&speech_model="
                           "u3-rt-pro&format_turns=true");
    free(u);
}

static void test_url_percent_escapes_values(void **state)
{
    (void)state;
    steno_option o[] = {{"keyterms_prompt", "[\"a b\",\"c&d\"]"}};
    char *u = url_for("ws://h/v3/ws", o, 1);
    assert_non_null(strstr(u, "&keyterms_prompt=%5B%22a%20b%22%2C%22c%26d%22%5D"));
    free(u);
}

static void test_url_refuses_more_than_one_channel(void **state)
{
    (void)state;
    steno__audio_params st = {STENO_ENCODING_LINEAR16, 16000, 2};
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(aai()->build_url("ws://h/v3/ws", &st, NULL, &b), STENO_ERR_FORMAT);
    steno__sb_free(&b);
}

struct hdrs {
    int n;
    char name[64], value[256];
};

static int grab(void *ctx, const char *name, const char *value)
{
    struct hdrs *h = ctx;
    h->n++;
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->value, sizeof h->value, "%s", value);
    return 0;
}

static void test_api_key_goes_raw_in_authorization(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(aai()->handshake_headers("abc123", grab, &h), STENO_OK);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.name, "authorization:");
    assert_string_equal(h.value, "abc123"); /* no scheme */
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(aai()->credential_query("abc123", &q), STENO_OK);
    assert_int_equal(q.len, 0); /* never in the URL */
    steno__sb_free(&q);
    assert_int_equal(aai()->handshake_headers("a\r\nX: y", grab, &h), STENO_ERR_CONFIG);
}

static void test_temporary_token_goes_in_the_query_only(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(aai()->handshake_headers("Bearer ey.J+/=", grab, &h), STENO_OK);
    assert_int_equal(h.n, 0);
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(aai()->credential_query("Bearer ey.J+/=", &q), STENO_OK);
    assert_string_equal(steno__sb_cstr(&q), "token=ey.J%2B%2F%3D");
    steno__sb_free(&q);
    steno__sb_init(&q, NULL);
    assert_int_equal(aai()->credential_query("Bearer ", &q), STENO_ERR_CONFIG);
    steno__sb_free(&q);
}

static void test_option_validation(void **state)
{
    (void)state;
    char err[700];
    const steno__provider *p = aai();
    assert_int_equal(p->check_option("speech_model", "whisper-rt", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("speech_model", "nova-3", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "speech_model"));
    assert_int_equal(p->check_option("format_turns", "yes", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("end_of_turn_confidence_threshold", "0.7", err, sizeof err),
                     STENO_OK);
    assert_int_equal(p->check_option("vad_threshold", "1.5", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("vad_threshold", "nan", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("min_turn_silence", "400", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("min_turn_silence", "-1", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("inactivity_timeout", "4", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("inactivity_timeout", "3600", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("max_speakers", "11", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("keyterms_prompt", "[\"a\"]", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("keyterms_prompt", "a,b", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("keyterms_prompt", "[1]", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("sample_rate", "8000", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("token", "x", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "token_cb"));
    assert_int_equal(p->check_option("punctuate", "true", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "known options"));
    steno_option o[] = {{"min_turn_silence", "100"}, {"min_turn_silence", "200"}};
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, 2, &set), STENO_OK);
    assert_int_equal(p->check_set(&set, err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "only once"));
    steno__opts_free(NULL, &set);
}

static void test_pacing_and_frame_limits(void **state)
{
    (void)state;
    const steno__provider *p = aai();
    assert_int_equal(p->speed_permille, 1000);
    assert_true(p->burst_ms > 0 && p->burst_ms < 1500);
    assert_int_equal(p->min_chunk_ms, 50);
    assert_int_equal(p->max_chunk_ms, 1000);
    assert_int_equal(p->finalize_answer, STENO__FIN_ANSWER_NEXT_FINAL);
    assert_true(p->finalize_before_close);
    assert_string_equal(p->finalize_text, "{\"type\":\"ForceEndpoint\"}");
    assert_string_equal(p->close_text, "{\"type\":\"Terminate\"}");
}

/* The configure message for a change from `from` to `to` (n1 and n2 options): its status, and
 * the message in b. */
static int configure(const steno_option *from, size_t n1, const steno_option *to, size_t n2,
                     steno__sb *b)
{
    steno__opts o1, o2;
    assert_int_equal(steno__opts_copy(NULL, from, n1, &o1), STENO_OK);
    assert_int_equal(steno__opts_copy(NULL, to, n2, &o2), STENO_OK);
    steno__sb_init(b, NULL);
    int rc = aai()->configure_message(&o1, &o2, b);
    steno__opts_free(NULL, &o1);
    steno__opts_free(NULL, &o2);
    return rc;
}

static void test_configure_message_holds_every_live_setting(void **state)
{
    (void)state;
    steno_option from[] = {{"speech_model", "u3-rt-pro"}, {"max_turn_silence", "900"}};
    steno_option to[] = {{"speech_model", "u3-rt-pro"},
                         {"max_turn_silence", "1200"},
                         {"keyterms_prompt", "[\"x\"]"}};
    steno__sb b;
    assert_int_equal(configure(from, 2, to, 3, &b), STENO_OK);
    assert_string_equal(steno__sb_cstr(&b),
                        "{\"type\":\"UpdateConfiguration\",\"max_turn_silence\":"
                        "1200,\"keyterms_prompt\":[\"x\"]}");
    steno__sb_free(&b);
}

static void test_configure_outside_live_settings_needs_a_reconnect(void **state)
{
    (void)state;
    steno__sb b;
    /* the model is fixed at setup */
    steno_option m1[] = {{"speech_model", "universal-streaming-english"}};
    steno_option m2[] = {{"speech_model", "u3-rt-pro"}};
    assert_int_equal(configure(m1, 1, m2, 1, &b), STENO_ERR_UNSUPPORTED);
    steno__sb_free(&b);
    /* a live setting removed: the message cannot say "back to the default" */
    steno_option l1[] = {{"max_turn_silence", "1200"}};
    assert_int_equal(configure(l1, 1, NULL, 0, &b), STENO_ERR_UNSUPPORTED);
    steno__sb_free(&b);
    /* nothing live to say at all is still a (harmless) message */
    assert_int_equal(configure(NULL, 0, NULL, 0, &b), STENO_OK);
    assert_string_equal(steno__sb_cstr(&b), "{\"type\":\"UpdateConfiguration\"}");
    steno__sb_free(&b);
}

static int parse(const char *json, steno__msg *m)
{
    return aai()->parse(NULL, NULL, json, strlen(json), m);
}

static void test_begin_announces_the_session_expiry(void **state)
{
    (void)state;
    const steno__provider *p = aai();
    void *conn = p->conn_new(NULL, NULL, NULL, NULL, 0);
    assert_non_null(conn);
    steno__msg m;
    const char *begin = "{\"type\":\"Begin\",\"id\":\"abc\",\"expires_at\":1750000000}";
    assert_int_equal(p->parse(NULL, conn, begin, strlen(begin), &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_string_equal(m.request_id, "abc");
    steno__msg_release(&m);
    /* then, held back for the engine: the expiry as a GO_AWAY, once */
    assert_int_equal(p->next_message(NULL, conn, &m), 1);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    assert_true(m.expires_unix_s == 1750000000.0);
    steno__msg_release(&m);
    assert_int_equal(p->next_message(NULL, conn, &m), 0);
    p->conn_free(NULL, conn);
}

static void test_partial_turn_is_an_interim_of_all_its_words(void **state)
{
    (void)state;
    steno__msg m;
    assert_int_equal(
        parse("{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":false,\"transcript\":\"hello\","
              "\"words\":[{\"text\":\"hello\",\"start\":250,\"end\":500,\"confidence\":0.9,"
              "\"word_is_final\":true},{\"text\":\"wor\",\"start\":600,\"end\":800,"
              "\"confidence\":0.5,\"word_is_final\":false}]}",
              &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_false(m.is_final);
    assert_string_equal(m.transcript, "hello wor");
    assert_int_equal(m.n_words, 2);
    assert_true(m.start == 0.25 && m.duration > 0.55 - 1e-9 && m.duration < 0.55 + 1e-9);
    assert_true(m.words[1].start == 0.6 && m.words[1].end == 0.8);
    assert_true(m.confidence > 0.69 && m.confidence < 0.71);
    steno__msg_release(&m);
}

static void test_end_of_turn_is_a_final_with_its_transcript(void **state)
{
    (void)state;
    steno__msg m;
    assert_int_equal(
        parse("{\"type\":\"Turn\",\"turn_order\":3,\"end_of_turn\":true,\"turn_is_formatted\":"
              "true,\"transcript\":\"Hello world.\",\"end_of_turn_confidence\":0.8,\"words\":["
              "{\"text\":\"Hello\",\"start\":1000,\"end\":1300,\"word_is_final\":true},"
              "{\"text\":\"world.\",\"start\":1400,\"end\":1900,\"word_is_final\":true}]}",
              &m),
        STENO_OK);
    assert_true(m.is_final);
    assert_string_equal(m.transcript, "Hello world.");
    assert_true(m.start == 1.0 && m.duration > 0.9 - 1e-9 && m.duration < 0.9 + 1e-9);
    assert_string_equal(m.words[1].word, "world.");
    assert_int_equal(m.words[0].speaker, -1);
    steno__msg_release(&m);
    /* the empty turn that answers a ForceEndpoint when nothing is pending */
    assert_int_equal(parse("{\"type\":\"Turn\",\"turn_order\":4,\"end_of_turn\":true,"
                           "\"transcript\":\"\",\"words\":[]}",
                           &m),
                     STENO_OK);
    assert_true(m.is_final);
    assert_int_equal(m.n_words, 0);
    assert_true(m.start == 0 && m.duration == 0);
    steno__msg_release(&m);
}

static void test_bad_turns_are_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"type\":\"Turn\",\"turn_order\":0,\"turn_is_formatted\":false,\"end_of_turn\":tr",
        "{\"type\":\"Turn\",\"turn_order\":\"zero\",\"end_of_turn\":true,\"transcript\":\"\","
        "\"words\":[]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":1,\"transcript\":\"\",\"words\":[]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":null,"
        "\"words\":\"none\"}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\"}",
        "{\"type\":\"Turn\",\"turn_order\":-1,\"end_of_turn\":true,\"transcript\":\"\","
        "\"words\":[]}",
        /* negative, reversed, non-numeric, out-of-order and huge times */
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"text\":\"a\",\"start\":-5,\"end\":10}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"text\":\"a\",\"start\":50,\"end\":10}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"text\":\"a\",\"start\":\"0\",\"end\":10}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a b\","
        "\"words\":[{\"text\":\"a\",\"start\":50,\"end\":60},{\"text\":\"b\",\"start\":10,"
        "\"end\":20}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"text\":\"a\",\"start\":0,\"end\":1e300}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"text\":\"a\",\"start\":0,\"end\":10,\"word_is_final\":\"yes\"}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[{\"start\":0,\"end\":10}]}",
        "{\"type\":\"Turn\",\"turn_order\":0,\"end_of_turn\":true,\"transcript\":\"a\","
        "\"words\":[7]}",
        "[]",
        "\"Turn\"",
        "{\"type\":5}",
        "{\"type\":\"Begin\",\"expires_at\":1}",
        "{\"type\":\"Termination\",\"audio_duration_seconds\":-3}",
        "{\"type\":\"SpeechStarted\",\"timestamp\":-1}",
        "{\"error\":7}",
        "{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__msg m;
        int rc = parse(bad[i], &m);
        if (rc != STENO_ERR_PARSE)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(m.type, STENO__MSG_IGNORED);
    }
    /* deep nesting is refused by cJSON's limit, without a crash */
    char deep[4096];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    steno__msg m;
    assert_int_equal(parse(deep, &m), STENO_ERR_PARSE);
    assert_int_equal(aai()->parse(NULL, NULL, "{\"type\":\"Turn\"", 5, &m), STENO_ERR_PARSE);
}

static void test_begin_termination_error_and_unknown(void **state)
{
    (void)state;
    steno__msg m;
    assert_int_equal(
        parse("{\"type\":\"Begin\",\"id\":\"de305d54-75b4\",\"expires_at\":1742400000}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_string_equal(m.request_id, "de305d54-75b4");
    assert_non_null(strstr(m.raw, "expires_at"));
    steno__msg_release(&m);
    assert_int_equal(parse("{\"type\":\"Termination\",\"audio_duration_seconds\":12,"
                           "\"session_duration_seconds\":13}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_true(m.meta_duration == 12);
    steno__msg_release(&m);
    assert_int_equal(parse("{\"error\":\"Invalid Message\",\"error_code\":3006}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "3006");
    assert_string_equal(m.error_message, "Invalid Message");
    steno__msg_release(&m);
    assert_int_equal(
        parse("{\"type\":\"SpeechStarted\",\"timestamp\":1500,\"confidence\":0.9}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_SPEECH_STARTED);
    assert_true(m.timestamp == 1.5);
    steno__msg_release(&m);
    assert_int_equal(parse("{\"type\":\"Heartbeat\",\"audio\":3}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_always_carries_rate_encoding_and_model),
        cmocka_unit_test(test_url_percent_escapes_values),
        cmocka_unit_test(test_url_refuses_more_than_one_channel),
        cmocka_unit_test(test_api_key_goes_raw_in_authorization),
        cmocka_unit_test(test_temporary_token_goes_in_the_query_only),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_pacing_and_frame_limits),
        cmocka_unit_test(test_configure_message_holds_every_live_setting),
        cmocka_unit_test(test_configure_outside_live_settings_needs_a_reconnect),
        cmocka_unit_test(test_begin_announces_the_session_expiry),
        cmocka_unit_test(test_partial_turn_is_an_interim_of_all_its_words),
        cmocka_unit_test(test_end_of_turn_is_a_final_with_its_transcript),
        cmocka_unit_test(test_bad_turns_are_parse_errors),
        cmocka_unit_test(test_begin_termination_error_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
