/* test_elevenlabs: the ElevenLabs realtime adapter's URL building, credentials, option checks,
 * audio framing, message parsing (every message type, errors, hostile input) and the
 * classification of its error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/classify.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"

static const steno__provider *el(void)
{
    const steno__provider *p = steno__provider_find("elevenlabs");
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
    assert_int_equal(el()->build_url(base, &ap16k, &set, &b), STENO_OK);
    char *r = strdup(steno__sb_cstr(&b));
    steno__sb_free(&b);
    steno__opts_free(NULL, &set);
    return r;
}

static void test_url_carries_model_format_manual_commits_and_timestamps(void **state)
{
    (void)state;
    char *u = url_for("wss://api.elevenlabs.io/v1/speech-to-text/realtime", NULL, 0);
    assert_string_equal(u, "wss://api.elevenlabs.io/v1/speech-to-text/realtime?model_id="
                           "scribe_v2_realtime&audio_format=pcm_16000&commit_strategy=manual&"
                           "include_timestamps=true");
    free(u);
    steno_option o[] = {{"keyterms", "a b"},
                        {"model_id", "scribe_x"},
                        {"keyterms", "c&d"},
                        {"include_timestamps", "false"}};
    u = url_for("ws://h:1/p?x=1#frag", o, 4);
    assert_string_equal(u, "ws://h:1/p?x=1&model_id=scribe_x&audio_format=pcm_16000&"
                           "commit_strategy=manual&keyterms=a%20b&keyterms=c%26d&"
                           "include_timestamps=false");
    free(u);
}

static void test_url_refuses_other_formats(void **state)
{
    (void)state;
    const steno__audio_params bad[] = {{STENO_ENCODING_LINEAR16, 16000, 2},
                                       {STENO_ENCODING_LINEAR16, 24000, 1},
                                       {STENO_ENCODING_LINEAR16, 8000, 1}};
    for (size_t i = 0; i < 3; i++) {
        steno__sb b;
        steno__sb_init(&b, NULL);
        assert_int_equal(el()->build_url("ws://h/p", &bad[i], NULL, &b), STENO_ERR_FORMAT);
        steno__sb_free(&b);
    }
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

static void test_api_key_goes_in_xi_api_key_never_in_the_url(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(el()->handshake_headers("sk_abc", grab, &h), STENO_OK);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.name, "xi-api-key:");
    assert_string_equal(h.value, "sk_abc");
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(el()->credential_query("sk_abc", &q), STENO_OK);
    assert_int_equal(q.len, 0);
    steno__sb_free(&q);
    assert_int_equal(el()->handshake_headers("a\r\nX: y", grab, &h), STENO_ERR_CONFIG);
}

static void test_single_use_token_goes_in_the_query_only(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(el()->handshake_headers("Bearer sut_1+/=", grab, &h), STENO_OK);
    assert_int_equal(h.n, 0);
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(el()->credential_query("Bearer sut_1+/=", &q), STENO_OK);
    assert_string_equal(steno__sb_cstr(&q), "token=sut_1%2B%2F%3D");
    steno__sb_free(&q);
    steno__sb_init(&q, NULL);
    assert_int_equal(el()->credential_query("Bearer ", &q), STENO_ERR_CONFIG);
    steno__sb_free(&q);
    /* the URL the engine logs is build_url's: it never holds the credential */
    char *u = url_for("ws://h/p", NULL, 0);
    assert_null(strstr(u, "token"));
    free(u);
}

static int check_set(const steno_option *o, size_t n, char *err, size_t errlen)
{
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, n, &set), STENO_OK);
    int rc = el()->check_set(&set, err, errlen);
    steno__opts_free(NULL, &set);
    return rc;
}

static void test_option_validation(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(el()->check_option("language_code", "en", err, sizeof err), STENO_OK);
    assert_int_equal(el()->check_option("no_verbatim", "true", err, sizeof err), STENO_OK);
    assert_int_equal(el()->check_option("no_verbatim", "yes", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "\"true\" or \"false\""));
    assert_int_equal(el()->check_option("bogus", "1", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "unknown elevenlabs option 'bogus'"));
    /* the message lists exactly the keys an app may set */
    const char *known[] = {"model_id",
                           "language_code",
                           "include_timestamps",
                           "include_language_detection",
                           "no_verbatim",
                           "filter_background_audio",
                           "enable_logging",
                           "keyterms",
                           "secondary_languages",
                           "entity_detection"};
    char unknown_msg[512];
    snprintf(unknown_msg, sizeof unknown_msg, "%s", err);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        assert_non_null(strstr(unknown_msg, known[i]));
        int rc = el()->check_option(known[i], "true", err, sizeof err);
        assert_true(rc == STENO_OK || !strstr(err, "unknown"));
    }
    assert_int_equal(el()->check_option("commit_strategy", "vad", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "commits manually"));
    assert_int_equal(el()->check_option("audio_format", "pcm_8000", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(el()->check_option("token", "x", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "token_cb"));
    assert_int_equal(el()->check_option("keyterms", "abcdefghijklmnopqrstu", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(el()->check_option("language_code", "", err, sizeof err), STENO_ERR_CONFIG);

    steno_option rep[] = {{"keyterms", "a"}, {"keyterms", "b"}, {"secondary_languages", "de"}};
    assert_int_equal(check_set(rep, 3, err, sizeof err), STENO_OK);
    steno_option twice[] = {{"language_code", "en"}, {"language_code", "de"}};
    assert_int_equal(check_set(twice, 2, err, sizeof err), STENO_ERR_CONFIG);
    steno_option many[51];
    for (size_t i = 0; i < 51; i++)
        many[i] = (steno_option){"keyterms", "k"};
    assert_int_equal(check_set(many, 51, err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "more than 50"));
    steno_option fb[] = {{"filter_background_audio", "true"}};
    assert_int_equal(check_set(fb, 1, err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "include_timestamps"));
    steno_option fb_ok[] = {{"filter_background_audio", "true"}, {"include_timestamps", "false"}};
    assert_int_equal(check_set(fb_ok, 2, err, sizeof err), STENO_OK);
}

static void test_limits_and_control_messages(void **state)
{
    (void)state;
    const steno__provider *p = el();
    assert_int_equal(p->speed_permille, 1000);
    assert_int_equal(p->min_chunk_ms, 0);
    assert_int_equal(p->max_chunk_ms, 1000);
    assert_null(p->keepalive_text);
    assert_null(p->initial_message);
    assert_null(p->configure_message);
    assert_int_equal(p->finalize_answer, STENO__FIN_ANSWER_NEXT_FINAL);
    assert_true(p->finalize_before_close);
    assert_true(p->client_closes); /* no end-of-stream message: steno closes the socket */
    assert_string_equal(p->finalize_text,
                        "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\""
                        ":\"\",\"commit\":true,\"sample_rate\":16000}");
    assert_string_equal(p->close_text, "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
                                       "\"\",\"commit\":false,\"sample_rate\":16000}");
}

/* A connection's state made as the engine makes it. */
static void *conn_with(const steno_option *o, size_t n)
{
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, n, &set), STENO_OK);
    void *c = el()->conn_new(NULL, NULL, &ap16k, &set, 0);
    assert_non_null(c);
    steno__opts_free(NULL, &set);
    return c;
}

static void test_audio_is_base64_json_with_the_rate(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0);
    steno__sb b;
    steno__sb_init(&b, NULL);
    const uint8_t pcm[] = {0x00, 0x01, 0xff, 0x7f, 0x80};
    assert_int_equal(el()->frame_audio(c, pcm, sizeof pcm, &b), STENO_OK);
    assert_string_equal(steno__sb_cstr(&b), "{\"message_type\":\"input_audio_chunk\","
                                            "\"audio_base_64\":\"AAH/f4A=\",\"commit\":false,"
                                            "\"sample_rate\":16000}");
    steno__sb_reset(&b);
    assert_int_equal(el()->frame_audio(c, pcm, 4, &b), STENO_OK);
    assert_non_null(strstr(steno__sb_cstr(&b), "\"AAH/fw==\""));
    steno__sb_reset(&b);
    assert_int_equal(el()->frame_audio(c, pcm, 3, &b), STENO_OK);
    assert_non_null(strstr(steno__sb_cstr(&b), "\"AAH/\""));
    steno__sb_free(&b);
    el()->conn_free(NULL, c);
}

static int parse(void *c, const char *s, steno__msg *m)
{
    return el()->parse(NULL, c, s, strlen(s), m);
}

static void test_session_started_is_metadata(void **state)
{
    (void)state;
    steno__msg m;
    assert_int_equal(parse(NULL,
                           "{\"message_type\":\"session_started\",\"session_id\":\"s-1\","
                           "\"config\":{\"sample_rate\":16000}}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_string_equal(m.request_id, "s-1");
    assert_non_null(strstr(m.raw, "session_started"));
    steno__msg_release(&m);
    assert_int_equal(parse(NULL, "{\"message_type\":\"session_started\",\"session_id\":\"s\"}", &m),
                     STENO_ERR_PARSE);
}

static void test_timestamped_commit_is_the_final_with_words(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0); /* include_timestamps defaults to on */
    steno__msg m;
    /* the plain copy comes first and is not the final */
    assert_int_equal(
        parse(c, "{\"message_type\":\"committed_transcript\",\"text\":\"hi there\"}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    assert_int_equal(parse(c,
                           "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":"
                           "\"hi there\",\"language_code\":\"en\",\"words\":["
                           "{\"text\":\"hi\",\"start\":0.5,\"end\":0.75,\"type\":\"word\","
                           "\"logprob\":0},"
                           "{\"text\":\" \",\"start\":0.75,\"end\":0.8,\"type\":\"spacing\","
                           "\"logprob\":0},"
                           "{\"text\":\"(laughs)\",\"start\":0.8,\"end\":0.9,\"type\":"
                           "\"audio_event\",\"logprob\":-1},"
                           "{\"text\":\"there\",\"start\":0.9,\"end\":1.25,\"type\":\"word\","
                           "\"logprob\":-0.5,\"speaker_id\":\"s0\",\"characters\":[]}]}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_true(m.is_final);
    assert_false(m.from_finalize); /* NEXT_FINAL: the engine marks the answer */
    assert_string_equal(m.transcript, "hi there");
    assert_int_equal(m.n_words, 2);
    assert_string_equal(m.words[1].word, "there");
    assert_true(m.start == 0.5);
    assert_true(m.duration == 0.75);
    assert_true(m.words[0].confidence == 1.0);
    assert_true(m.words[1].confidence > 0.6 && m.words[1].confidence < 0.61);
    steno__msg_release(&m);
    /* a commit with nothing to say: no words, a final all the same */
    assert_int_equal(parse(c,
                           "{\"message_type\":\"committed_transcript_with_timestamps\","
                           "\"text\":\"\",\"words\":null,\"language_code\":null}",
                           &m),
                     STENO_OK);
    assert_true(m.is_final);
    assert_int_equal(m.n_words, 0);
    steno__msg_release(&m);
    el()->conn_free(NULL, c);
}

static void test_plain_commit_is_the_final_without_timestamps(void **state)
{
    (void)state;
    steno_option o[] = {{"include_timestamps", "false"}};
    void *c = conn_with(o, 1);
    steno__sb b;
    steno__sb_init(&b, NULL);
    uint8_t pcm[32000] = {0}; /* 1 s sent */
    assert_int_equal(el()->frame_audio(c, pcm, sizeof pcm, &b), STENO_OK);
    steno__sb_free(&b);
    steno__msg m;
    assert_int_equal(parse(c, "{\"message_type\":\"committed_transcript\",\"text\":\"hello\"}", &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_true(m.is_final && m.speech_final);
    assert_string_equal(m.transcript, "hello");
    assert_int_equal(m.n_words, 0);
    steno__msg_release(&m);
    assert_int_equal(parse(c,
                           "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":"
                           "\"hello\",\"words\":[]}",
                           &m),
                     STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    /* an interim spans what was sent so far */
    assert_int_equal(parse(c, "{\"message_type\":\"partial_transcript\",\"text\":\"hel\"}", &m),
                     STENO_OK);
    assert_false(m.is_final);
    assert_string_equal(m.transcript, "hel");
    assert_true(m.start == 0 && m.duration == 1.0);
    steno__msg_release(&m);
    el()->conn_free(NULL, c);
}

static void test_partial_and_settled_transcripts_are_interims(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0);
    const char *msgs[] = {
        "{\"message_type\":\"partial_transcript\",\"text\":\"he\"}",
        "{\"message_type\":\"final_transcript\",\"text\":\"hello\"}",
        "{\"message_type\":\"final_transcript_with_timestamps\",\"text\":\"hello\",\"words\":[{"
        "\"text\":\"hello\",\"start\":0.1,\"end\":0.4,\"type\":\"word\",\"logprob\":0}]}",
    };
    for (size_t i = 0; i < 3; i++) {
        steno__msg m;
        assert_int_equal(parse(c, msgs[i], &m), STENO_OK);
        assert_int_equal(m.type, STENO__MSG_RESULTS);
        assert_false(m.is_final);
        steno__msg_release(&m);
    }
    el()->conn_free(NULL, c);
}

static void test_errors_and_the_session_limit(void **state)
{
    (void)state;
    steno__msg m;
    assert_int_equal(
        parse(NULL, "{\"message_type\":\"auth_error\",\"error\":\"Invalid API key\"}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "auth_error");
    assert_string_equal(m.error_message, "Invalid API key");
    steno__msg_release(&m);
    const char *types[] = {"error",          "quota_exceeded",      "commit_throttled",
                           "rate_limited",   "input_error",         "invalid_request",
                           "queue_overflow", "chunk_size_exceeded", "insufficient_audio_activity"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char text[160];
        snprintf(text, sizeof text, "{\"message_type\":\"%s\",\"error\":\"x\"}", types[i]);
        assert_int_equal(parse(NULL, text, &m), STENO_OK);
        assert_int_equal(m.type, STENO__MSG_ERROR);
        assert_string_equal(m.error_code, types[i]);
        steno__msg_release(&m);
    }
    assert_int_equal(
        parse(NULL, "{\"message_type\":\"session_time_limit_exceeded\",\"error\":\"done\"}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    assert_true(m.time_left_s == 0);
    steno__msg_release(&m);
}

static void test_unknown_types_are_ignored(void **state)
{
    (void)state;
    const char *msgs[] = {
        "{\"message_type\":\"committed_transcript_entities\",\"text\":\"\",\"entities\":[]}",
        "{\"message_type\":\"edited_transcript\",\"text\":\"a\",\"edited_text\":\"b\"}",
        "{\"message_type\":\"something_new\"}",
    };
    for (size_t i = 0; i < 3; i++) {
        steno__msg m;
        assert_int_equal(parse(NULL, msgs[i], &m), STENO_OK);
        assert_int_equal(m.type, STENO__MSG_IGNORED);
        steno__msg_release(&m);
    }
}

static void test_malformed_messages_are_parse_errors(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0);
    const char *bad[] = {
        "",
        "{\"message_type\":\"committed_transcript\",\"text\":\"spa",
        "[1,2]",
        "{\"text\":\"no type\"}",
        "{\"message_type\":7}",
        "{\"message_type\":\"partial_transcript\"}",
        "{\"message_type\":\"partial_transcript\",\"text\":3}",
        "{\"message_type\":\"committed_transcript\",\"text\":null}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":7,\"words\":\"none\"}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":"
        "\"none\"}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"word\"}]}", /* logprob is required */
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"syllable\",\"logprob\":0}]}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"word\",\"logprob\":0,\"start\":2,\"end\":1}]}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"word\",\"logprob\":0,\"start\":-1,\"end\":1}]}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a b\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"word\",\"logprob\":0,\"start\":2,\"end\":3},{\"text\":\"b\","
        "\"type\":\"word\",\"logprob\":0,\"start\":1,\"end\":1.5}]}",
        "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":\"a\",\"words\":[{"
        "\"text\":\"a\",\"type\":\"word\",\"logprob\":0,\"start\":1e300,\"end\":1e301}]}",
        "{\"message_type\":\"auth_error\"}",
        "{\"message_type\":\"auth_error\",\"error\":5}",
        "{\"message_type\":\"session_time_limit_exceeded\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__msg m;
        int rc = parse(c, bad[i], &m);
        if (rc != STENO_ERR_PARSE)
            fail_msg("accepted (%d): %s", rc, bad[i]);
    }
    el()->conn_free(NULL, c);
}

static void test_untimed_words_leave_the_span_to_the_engine(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0);
    steno__msg m;
    assert_int_equal(parse(c,
                           "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":"
                           "\"a b\",\"words\":[{\"text\":\"a\",\"type\":\"word\",\"logprob\":0,"
                           "\"start\":0,\"end\":1},{\"text\":\"b\",\"type\":\"word\","
                           "\"logprob\":0}]}",
                           &m),
                     STENO_OK);
    assert_true(m.is_final);
    assert_int_equal(m.n_words, 0);
    assert_string_equal(m.transcript, "a b");
    steno__msg_release(&m);
    el()->conn_free(NULL, c);
}

static void test_a_commit_before_the_last_one_is_refused(void **state)
{
    (void)state;
    void *c = conn_with(NULL, 0);
    const char *second = "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":"
                         "\"b\",\"words\":[{\"text\":\"b\",\"start\":%g,\"end\":%g,"
                         "\"type\":\"word\",\"logprob\":0}]}";
    char text[256];
    steno__msg m;
    snprintf(text, sizeof text, second, 1.0, 2.0);
    assert_int_equal(parse(c, text, &m), STENO_OK);
    assert_true(m.is_final);
    steno__msg_release(&m);
    /* audio already committed (a server confused about its own timeline): refused */
    snprintf(text, sizeof text, second, 0.0, 0.4);
    assert_int_equal(parse(c, text, &m), STENO_ERR_PARSE);
    /* the next commit may start where the last ended, give or take rounding */
    snprintf(text, sizeof text, second, 1.995, 3.0);
    assert_int_equal(parse(c, text, &m), STENO_OK);
    steno__msg_release(&m);
    /* interims are not held to it */
    assert_int_equal(parse(c,
                           "{\"message_type\":\"final_transcript_with_timestamps\",\"text\":"
                           "\"a\",\"words\":[{\"text\":\"a\",\"start\":0,\"end\":0.5,"
                           "\"type\":\"word\",\"logprob\":0}]}",
                           &m),
                     STENO_OK);
    steno__msg_release(&m);
    el()->conn_free(NULL, c);
}

static steno__classification classify_error(const char *provider_error, int close_code,
                                            steno__conn_phase phase)
{
    steno__failure_info in = {0};
    in.phase = phase;
    in.http_status = 101;
    in.close_code = close_code;
    in.provider_error = provider_error;
    steno__classification out;
    steno__classify(&in, &out);
    return out;
}

static void test_classify_error_types(void **state)
{
    (void)state;
    const struct {
        const char *err;
        steno__verdict v;
        steno_status st;
    } cases[] = {
        {"auth_error: Invalid API key", STENO__FATAL_AUTH, STENO_ERR_AUTH},
        {"unaccepted_terms: accept", STENO__FATAL_AUTH, STENO_ERR_AUTH},
        {"quota_exceeded: none left", STENO__FATAL_AUTH, STENO_ERR_AUTH},
        {"invalid_request: bad model", STENO__FATAL_REQUEST, STENO_ERR_REQUEST},
        {"input_error: bad json", STENO__FATAL_PROTOCOL, STENO_ERR_PROTOCOL},
        {"chunk_size_exceeded: big", STENO__FATAL_PROTOCOL, STENO_ERR_TOO_LARGE},
        {"rate_limited: slow down", STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED},
        {"resource_exhausted: busy", STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED},
        {"queue_overflow: busy", STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED},
        {"commit_throttled: slow", STENO__RETRY_AFTER, STENO_ERR_RATE_LIMITED},
        {"transcriber_error: oops", STENO__RETRY, STENO_ERR_SERVER},
        {"session_time_limit_exceeded: end", STENO__RETRY, STENO_ERR_CLOSED},
        {"insufficient_audio_activity: No audio activity", STENO__RETRY, STENO_ERR_CLOSED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* whatever the close code (undocumented), and with the close frame lost */
        const int codes[] = {1000, 1008, 1011, 0};
        for (size_t k = 0; k < 4; k++) {
            steno__classification c = classify_error(cases[i].err, codes[k], STENO__PHASE_OPEN);
            if (c.verdict != cases[i].v || c.status != cases[i].st)
                fail_msg("%s with close %d: %s %d", cases[i].err, codes[k],
                         steno__verdict_name(c.verdict), c.status);
        }
    }
    /* the close reason repeats the type when the message was lost */
    steno__failure_info in = {0};
    in.phase = STENO__PHASE_OPEN;
    in.http_status = 101;
    in.close_code = 1008;
    in.close_reason = "auth_error: Invalid API key";
    steno__classification c;
    steno__classify(&in, &c);
    assert_int_equal(c.verdict, STENO__FATAL_AUTH);
    /* the idle close that ends a close we asked for is clean */
    c = classify_error("insufficient_audio_activity: No audio activity", 1000,
                       STENO__PHASE_CLOSING);
    assert_int_equal(c.verdict, STENO__DONE);
    /* a type's name inside another provider's text decides nothing */
    c = classify_error("Error: auth_error seen", 1011, STENO__PHASE_OPEN);
    assert_int_equal(c.verdict, STENO__RETRY);
    assert_int_equal(c.status, STENO_ERR_SERVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_carries_model_format_manual_commits_and_timestamps),
        cmocka_unit_test(test_url_refuses_other_formats),
        cmocka_unit_test(test_api_key_goes_in_xi_api_key_never_in_the_url),
        cmocka_unit_test(test_single_use_token_goes_in_the_query_only),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_limits_and_control_messages),
        cmocka_unit_test(test_audio_is_base64_json_with_the_rate),
        cmocka_unit_test(test_session_started_is_metadata),
        cmocka_unit_test(test_timestamped_commit_is_the_final_with_words),
        cmocka_unit_test(test_plain_commit_is_the_final_without_timestamps),
        cmocka_unit_test(test_partial_and_settled_transcripts_are_interims),
        cmocka_unit_test(test_errors_and_the_session_limit),
        cmocka_unit_test(test_unknown_types_are_ignored),
        cmocka_unit_test(test_malformed_messages_are_parse_errors),
        cmocka_unit_test(test_untimed_words_leave_the_span_to_the_engine),
        cmocka_unit_test(test_a_commit_before_the_last_one_is_refused),
        cmocka_unit_test(test_classify_error_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
