/* test_gemini: the Gemini Live adapter's URL, credentials, setup message, audio framing with
 * activity bracketing, option checks, message parsing (transcription turns, goAway, resumption
 * handles, hostile input) and the classification of its close codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "classify.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"

static const steno__provider *gm(void)
{
    const steno__provider *p = steno__provider_find("gemini");
    assert_non_null(p);
    return p;
}

static const steno__audio_params ap16k = {STENO_ENCODING_LINEAR16, 16000, 1};

/* A session and one connection of it (live unless backfill). */
struct fixture {
    void *sess, *conn;
};

static void open_conn(struct fixture *f, int backfill)
{
    if (!f->sess)
        f->sess = gm()->session_new(NULL);
    assert_non_null(f->sess);
    f->conn = gm()->conn_new(NULL, f->sess, &ap16k, NULL, backfill);
    assert_non_null(f->conn);
}

static void close_fixture(struct fixture *f)
{
    if (f->conn)
        gm()->conn_free(NULL, f->conn);
    if (f->sess)
        gm()->session_free(NULL, f->sess);
    f->conn = f->sess = NULL;
}

static int parse(struct fixture *f, const char *text, steno__msg *m)
{
    return gm()->parse(NULL, f->conn, text, strlen(text), m);
}

/* The setup message of the fixture's connection, parsed. */
static cJSON *setup_of(struct fixture *f, const steno_option *o, size_t n)
{
    steno__opts set = {0};
    if (n)
        assert_int_equal(steno__opts_copy(NULL, o, n, &set), STENO_OK);
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(gm()->initial_message(f->conn, &ap16k, &set, &b), STENO_OK);
    cJSON *j = cJSON_Parse(steno__sb_cstr(&b));
    assert_non_null(j);
    steno__sb_free(&b);
    steno__opts_free(NULL, &set);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "setup");
    assert_non_null(s);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    return j;
}

static const char *str_at(const cJSON *j, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_url_is_the_endpoint_and_audio_must_be_16k_mono(void **state)
{
    (void)state;
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(gm()->build_url("ws://h:1/ws/x.BidiGenerateContent#f", &ap16k, NULL, &b),
                     STENO_OK);
    assert_string_equal(steno__sb_cstr(&b), "ws://h:1/ws/x.BidiGenerateContent");
    steno__sb_reset(&b);
    steno__audio_params a24 = {STENO_ENCODING_LINEAR16, 24000, 1};
    steno__audio_params st = {STENO_ENCODING_LINEAR16, 16000, 2};
    assert_int_equal(gm()->build_url("ws://h/", &a24, NULL, &b), STENO_ERR_FORMAT);
    assert_int_equal(gm()->build_url("ws://h/", &st, NULL, &b), STENO_ERR_FORMAT);
    steno__sb_free(&b);
    assert_non_null(strstr(gm()->default_url, "v1beta.GenerativeService.BidiGenerateContent"));
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

static void test_api_key_goes_in_a_header_never_the_url(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(gm()->handshake_headers("AIza-key", grab, &h), STENO_OK);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.name, "x-goog-api-key:");
    assert_string_equal(h.value, "AIza-key");
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(gm()->credential_query("AIza-key", &q), STENO_OK);
    assert_int_equal(q.len, 0);
    steno__sb_free(&q);
    assert_int_equal(gm()->handshake_headers("a\r\nX: y", grab, &h), STENO_ERR_CONFIG);
}

static void test_ephemeral_token_goes_in_access_token_only(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(gm()->handshake_headers("Token auth_tokens/a+b", grab, &h), STENO_OK);
    assert_int_equal(h.n, 0);
    steno__sb q;
    steno__sb_init(&q, NULL);
    assert_int_equal(gm()->credential_query("Token auth_tokens/a+b", &q), STENO_OK);
    assert_string_equal(steno__sb_cstr(&q), "access_token=auth_tokens%2Fa%2Bb");
    steno__sb_free(&q);
    steno__sb_init(&q, NULL);
    assert_int_equal(gm()->credential_query("Token ", &q), STENO_ERR_CONFIG);
    steno__sb_free(&q);
}

static void test_setup_delimits_activity_and_asks_for_transcription(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    cJSON *j = setup_of(&f, NULL, 0);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "setup");
    assert_string_equal(str_at(s, "model", NULL, NULL), "models/gemini-3.5-transcribe-live");
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "generationConfig"), "responseModalities");
    assert_int_equal(cJSON_GetArraySize(mods), 1);
    assert_string_equal(cJSON_GetArrayItem(mods, 0)->valuestring, "TEXT");
    const cJSON *ric = cJSON_GetObjectItemCaseSensitive(s, "realtimeInputConfig");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ric, "automaticActivityDetection"), "disabled")));
    assert_string_equal(str_at(ric, "activityHandling", NULL, NULL), "NO_INTERRUPTION");
    assert_string_equal(str_at(ric, "turnCoverage", NULL, NULL), "TURN_INCLUDES_ALL_INPUT");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "inputAudioTranscription")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "contextWindowCompression"), "slidingWindow")));
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(s, "sessionResumption");
    assert_true(cJSON_IsObject(res));
    assert_int_equal(cJSON_GetArraySize(res), 0); /* no handle yet */
    cJSON_Delete(j);
    /* options */
    steno_option o[] = {{"model", "models/gemini-live-2.5-flash"},
                        {"system_instruction", "Transcribe only."},
                        {"response_modality", "AUDIO"},
                        {"context_window_compression", "false"}};
    j = setup_of(&f, o, 4);
    s = cJSON_GetObjectItemCaseSensitive(j, "setup");
    assert_string_equal(str_at(s, "model", NULL, NULL), "models/gemini-live-2.5-flash");
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "systemInstruction"), "parts");
    assert_string_equal(str_at(cJSON_GetArrayItem(parts, 0), "text", NULL, NULL),
                        "Transcribe only.");
    mods = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "generationConfig"),
                                            "responseModalities");
    assert_string_equal(cJSON_GetArrayItem(mods, 0)->valuestring, "AUDIO");
    assert_null(cJSON_GetObjectItemCaseSensitive(s, "contextWindowCompression"));
    cJSON_Delete(j);
    close_fixture(&f);
}

static void test_resumption_handle_is_used_by_the_live_connection_only(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    steno__msg m;
    assert_int_equal(parse(&f, "{\"setupComplete\":{}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    assert_int_equal(
        parse(&f, "{\"sessionResumptionUpdate\":{\"newHandle\":\"h1\",\"resumable\":true}}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    /* not resumable: the previous handle stays */
    assert_int_equal(
        parse(&f, "{\"sessionResumptionUpdate\":{\"newHandle\":\"\",\"resumable\":false}}", &m),
        STENO_OK);
    steno__msg_release(&m);
    gm()->conn_free(NULL, f.conn);
    /* the next live connection resumes with it */
    open_conn(&f, 0);
    cJSON *j = setup_of(&f, NULL, 0);
    assert_string_equal(str_at(j, "setup", "sessionResumption", "handle"), "h1");
    cJSON_Delete(j);
    assert_int_equal(parse(&f, "{\"setupComplete\":{}}", &m), STENO_OK);
    steno__msg_release(&m);
    gm()->conn_free(NULL, f.conn);
    /* a backfill connection neither resumes nor takes handles */
    open_conn(&f, 1);
    j = setup_of(&f, NULL, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "setup"),
                                                 "sessionResumption"));
    cJSON_Delete(j);
    assert_int_equal(
        parse(&f, "{\"sessionResumptionUpdate\":{\"newHandle\":\"bf\",\"resumable\":true}}", &m),
        STENO_OK);
    steno__msg_release(&m);
    gm()->conn_free(NULL, f.conn);
    /* a live connection that presented the handle and never got setupComplete drops it */
    open_conn(&f, 0);
    j = setup_of(&f, NULL, 0);
    assert_string_equal(str_at(j, "setup", "sessionResumption", "handle"), "h1");
    cJSON_Delete(j);
    gm()->conn_free(NULL, f.conn);
    open_conn(&f, 0);
    j = setup_of(&f, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(j, "setup"), "sessionResumption")),
                     0);
    cJSON_Delete(j);
    close_fixture(&f);
}

static char *frame(struct fixture *f, const uint8_t *pcm, size_t n)
{
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(gm()->frame_audio(f->conn, pcm, n, &b), STENO_OK);
    char *r = strdup(steno__sb_cstr(&b));
    steno__sb_free(&b);
    return r;
}

static void test_audio_is_base64_and_opens_an_activity_after_each_flush(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    const uint8_t pcm[] = {0x00, 0x01, 0xfe, 0xff, 0x7f};
    char *a = frame(&f, pcm, 5);
    assert_string_equal(a, "{\"realtimeInput\":{\"activityStart\":{},\"audio\":{\"data\":\"AAH+/"
                           "38=\",\"mimeType\":\"audio/pcm;rate=16000\"}}}");
    free(a);
    a = frame(&f, pcm, 4);
    assert_string_equal(a, "{\"realtimeInput\":{\"audio\":{\"data\":\"AAH+/w==\",\"mimeType\":"
                           "\"audio/pcm;rate=16000\"}}}");
    free(a);
    a = frame(&f, pcm, 3);
    assert_non_null(strstr(a, "\"AAH+\""));
    assert_null(strstr(a, "activityStart"));
    free(a);
    /* the flush closes the activity: the next audio opens another at once, before the
     * turn's completion, which then changes nothing */
    steno__sb fin;
    steno__sb_init(&fin, NULL);
    assert_int_equal(gm()->finalize_message(f.conn, &fin), STENO_OK);
    assert_string_equal(steno__sb_cstr(&fin), "{\"realtimeInput\":{\"activityEnd\":{}}}");
    steno__sb_free(&fin);
    a = frame(&f, pcm, 2);
    assert_non_null(strstr(a, "\"activityStart\":{}"));
    free(a);
    steno__msg m;
    assert_int_equal(parse(&f, "{\"serverContent\":{\"turnComplete\":true}}", &m), STENO_OK);
    steno__msg_release(&m);
    a = frame(&f, pcm, 2);
    assert_null(strstr(a, "activityStart"));
    free(a);
    assert_string_equal(gm()->finalize_text, "{\"realtimeInput\":{\"activityEnd\":{}}}");
    assert_int_equal(gm()->finalize_answer, STENO__FIN_ANSWER_NEXT_FINAL);
    assert_true(gm()->finalize_before_close);
    assert_int_equal(gm()->speed_permille, 1000);
    close_fixture(&f);
}

static void test_fragments_become_one_final_at_turn_complete(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    steno__msg m;
    assert_int_equal(
        parse(&f, "{\"serverContent\":{\"inputTranscription\":{\"text\":\" Hello\"}}}", &m),
        STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    assert_int_equal(parse(&f,
                           "{\"serverContent\":{\"inputTranscription\":{\"text\":\" world.\"},"
                           "\"generationComplete\":true},\"usageMetadata\":{}}",
                           &m),
                     STENO_OK);
    steno__msg_release(&m);
    assert_int_equal(parse(&f, "{\"serverContent\":{\"modelTurn\":{\"parts\":[]}}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
    assert_int_equal(parse(&f, "{\"serverContent\":{\"turnComplete\":true}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_true(m.is_final);
    assert_string_equal(m.transcript, "Hello world.");
    assert_int_equal(m.n_words, 0);
    assert_true(m.start == 0 && m.duration == 0);
    steno__msg_release(&m);
    /* the next turn starts empty; a fragment and turnComplete in one message */
    assert_int_equal(parse(&f,
                           "{\"serverContent\":{\"inputTranscription\":{\"text\":\"again\"},"
                           "\"turnComplete\":true}}",
                           &m),
                     STENO_OK);
    assert_string_equal(m.transcript, "again");
    steno__msg_release(&m);
    assert_int_equal(parse(&f, "{\"serverContent\":{\"turnComplete\":true}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_string_equal(m.transcript, "");
    steno__msg_release(&m);
    close_fixture(&f);
}

static void test_go_away_carries_the_time_left(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    steno__msg m;
    assert_int_equal(parse(&f, "{\"goAway\":{\"timeLeft\":\"12.5s\"}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    assert_true(m.time_left_s == 12.5);
    steno__msg_release(&m);
    assert_int_equal(parse(&f, "{\"goAway\":{}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    assert_true(m.time_left_s < 0);
    steno__msg_release(&m);
    close_fixture(&f);
}

static void test_other_and_unknown_messages_are_ignored(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    const char *ok[] = {"{\"usageMetadata\":{\"totalTokenCount\":3}}",
                        "{\"toolCall\":{\"functionCalls\":[]}}",
                        "{\"toolCallCancellation\":{\"ids\":[]}}", "{\"somethingNewer\":{}}",
                        "{\"serverContent\":{\"interrupted\":false,\"waitingForInput\":true}}"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        steno__msg m;
        assert_int_equal(parse(&f, ok[i], &m), STENO_OK);
        assert_int_equal(m.type, STENO__MSG_IGNORED);
        steno__msg_release(&m);
    }
    close_fixture(&f);
}

static void test_malformed_messages_are_parse_errors(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    const char *bad[] = {
        "{\"serverContent\":{\"inputTranscription\":{\"text\":\"trunc",
        "[1,2]",
        "{\"serverContent\":{\"inputTranscription\":{\"text\":7}}}",
        "{\"serverContent\":{\"turnComplete\":\"yes\"}}",
        "{\"serverContent\":[]}",
        "{\"serverContent\":{\"modelTurn\":3}}",
        "{\"setupComplete\":{},\"goAway\":{}}",
        "{\"goAway\":{\"timeLeft\":\"12\"}}",
        "{\"goAway\":{\"timeLeft\":\"-1s\"}}",
        "{\"goAway\":{\"timeLeft\":\"nans\"}}",
        "{\"goAway\":{\"timeLeft\":5}}",
        "{\"sessionResumptionUpdate\":{\"newHandle\":5}}",
        "{\"sessionResumptionUpdate\":{\"resumable\":\"true\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__msg m;
        assert_int_equal(parse(&f, bad[i], &m), STENO_ERR_PARSE);
    }
    /* a hostile handle size, and a turn's text past 1 MB */
    size_t n = 5000;
    char *big = malloc(n + 100);
    snprintf(big, n + 100,
             "{\"sessionResumptionUpdate\":{\"newHandle\":\"%0*d\",\"resumable\":true}}", (int)n,
             0);
    steno__msg m;
    assert_int_equal(parse(&f, big, &m), STENO_ERR_PARSE);
    free(big);
    size_t chunk = 300000;
    char *frag = malloc(chunk + 100);
    snprintf(frag, chunk + 100, "{\"serverContent\":{\"inputTranscription\":{\"text\":\"%0*d\"}}}",
             (int)chunk, 0);
    int rc = STENO_OK;
    for (int i = 0; i < 5 && rc == STENO_OK; i++) {
        rc = parse(&f, frag, &m);
        if (rc == STENO_OK)
            steno__msg_release(&m);
    }
    assert_int_equal(rc, STENO_ERR_PARSE);
    free(frag);
    close_fixture(&f);
}

/* A fragment that would take the turn's text past 1 MB is refused alone (a parse error): the
 * turn still completes with the fragments around it. The turn's final acknowledges all of its
 * audio, so a turn that lost its text here would lose that audio's transcript for good. */
static void test_oversized_fragment_is_refused_alone(void **state)
{
    (void)state;
    struct fixture f = {0};
    open_conn(&f, 0);
    steno__msg m;
    assert_int_equal(
        parse(&f, "{\"serverContent\":{\"inputTranscription\":{\"text\":\"before\"}}}", &m),
        STENO_OK);
    steno__msg_release(&m);
    size_t n = 1048576;
    char *big = malloc(n + 100);
    assert_non_null(big);
    snprintf(big, n + 100, "{\"serverContent\":{\"inputTranscription\":{\"text\":\"%0*d\"}}}",
             (int)n, 0);
    assert_int_equal(parse(&f, big, &m), STENO_ERR_PARSE);
    free(big);
    assert_int_equal(
        parse(&f, "{\"serverContent\":{\"inputTranscription\":{\"text\":\" after\"}}}", &m),
        STENO_OK);
    steno__msg_release(&m);
    assert_int_equal(parse(&f, "{\"serverContent\":{\"turnComplete\":true}}", &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_string_equal(m.transcript, "before after");
    steno__msg_release(&m);
    close_fixture(&f);
}

static void test_option_validation(void **state)
{
    (void)state;
    char err[400];
    const steno__provider *p = gm();
    assert_int_equal(p->check_option("model", "gemini-live-2.5-flash", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("model", "models/x", err, sizeof err), STENO_OK);
    assert_int_equal(p->check_option("model", "a b", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "model id"));
    assert_int_equal(p->check_option("model", "x/y", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("response_modality", "VIDEO", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "TEXT or AUDIO"));
    assert_int_equal(p->check_option("context_window_compression", "yes", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("language", "en", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "unknown gemini option 'language'"));
    assert_int_equal(p->check_option("key", "k", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "set by steno"));
    assert_int_equal(p->check_option("system_instruction", "", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(p->check_option("model", NULL, err, sizeof err), STENO_OK);
    steno_option twice[] = {{"model", "a"}, {"model", "b"}};
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, twice, 2, &set), STENO_OK);
    assert_int_equal(p->check_set(&set, err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "only once"));
    steno__opts_free(NULL, &set);
}

static steno__classification classify(int code, const char *reason)
{
    steno__failure_info in = {
        .phase = STENO__PHASE_OPEN, .http_status = 101, .close_code = code, .close_reason = reason};
    steno__classification c;
    steno__classify(&in, &c);
    return c;
}

static void test_close_codes_classify(void **state)
{
    (void)state;
    steno__classification c = classify(1007, "API key not valid. Please pass a valid API key.");
    assert_int_equal(c.verdict, STENO__FATAL_AUTH);
    assert_int_equal(c.status, STENO_ERR_AUTH);
    c = classify(1007, "API key expired. Please renew the API key.");
    assert_int_equal(c.verdict, STENO__FATAL_AUTH);
    c = classify(1007, "Request contains an invalid argument.");
    assert_int_equal(c.verdict, STENO__FATAL_PROTOCOL);
    c = classify(1007, "Invalid session resumption handle.");
    assert_int_equal(c.verdict, STENO__RETRY);
    c = classify(1008, "models/x is not found for API version v1beta");
    assert_int_equal(c.verdict, STENO__FATAL_PROTOCOL);
    c = classify(1011, "Internal error encountered.");
    assert_int_equal(c.verdict, STENO__RETRY);
    c = classify(1011, "You exceeded your current quota, please check your plan and billing "
                       "details.");
    assert_int_equal(c.verdict, STENO__FATAL_AUTH);
    assert_non_null(strstr(c.cause, "quota"));
    c = classify(1011, "Resource has been exhausted: 3.0 s of audio in 1.0 s");
    assert_int_equal(c.verdict, STENO__RETRY_AFTER);
    c = classify(1000, "Session duration limit reached.");
    assert_int_equal(c.verdict, STENO__RETRY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_is_the_endpoint_and_audio_must_be_16k_mono),
        cmocka_unit_test(test_api_key_goes_in_a_header_never_the_url),
        cmocka_unit_test(test_ephemeral_token_goes_in_access_token_only),
        cmocka_unit_test(test_setup_delimits_activity_and_asks_for_transcription),
        cmocka_unit_test(test_resumption_handle_is_used_by_the_live_connection_only),
        cmocka_unit_test(test_audio_is_base64_and_opens_an_activity_after_each_flush),
        cmocka_unit_test(test_fragments_become_one_final_at_turn_complete),
        cmocka_unit_test(test_go_away_carries_the_time_left),
        cmocka_unit_test(test_other_and_unknown_messages_are_ignored),
        cmocka_unit_test(test_malformed_messages_are_parse_errors),
        cmocka_unit_test(test_oversized_fragment_is_refused_alone),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_close_codes_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
