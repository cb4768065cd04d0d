/* test_openai: the OpenAI Realtime transcription adapter: URL, credentials, session.update,
 * 24 kHz base64 framing, the answer queue (committed/completed in and out of order, empty
 * commits, failures), errors, hostile input, option checks and the close codes' classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/classify.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/rateconv.h"
#include "providers/strbuf.h"
#include "steno/status.h"

static const steno__provider *oai(void)
{
    const steno__provider *p = steno__provider_find("openai");
    assert_non_null(p);
    return p;
}

static const steno__audio_params ap16k = {STENO_ENCODING_LINEAR16, 16000, 1};
static const steno__audio_params ap24k = {STENO_ENCODING_LINEAR16, 24000, 1};

static char *url_for(const char *base, const steno__audio_params *ap)
{
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(oai()->build_url(base, ap, NULL, &b), STENO_OK);
    char *r = strdup(steno__sb_cstr(&b));
    steno__sb_free(&b);
    return r;
}

static void test_url_asks_for_a_transcription_session(void **state)
{
    (void)state;
    char *u = url_for(oai()->default_url, &ap16k);
    assert_string_equal(u, "wss://api.openai.com/v1/realtime?intent=transcription");
    free(u);
    u = url_for("ws://127.0.0.1:9/v1/realtime", &ap16k);
    assert_string_equal(u, "ws://127.0.0.1:9/v1/realtime?intent=transcription");
    free(u);
    u = url_for("ws://h/v1/realtime?x=1#frag", &ap16k);
    assert_string_equal(u, "ws://h/v1/realtime?x=1&intent=transcription");
    free(u);
    u = url_for("ws://h/v1/realtime?x=1&intent=transcription", &ap16k);
    assert_string_equal(u, "ws://h/v1/realtime?x=1&intent=transcription");
    free(u);
    u = url_for("ws://h/v1/realtime?intent=transcriptions", &ap16k);
    assert_string_equal(u, "ws://h/v1/realtime?intent=transcriptions&intent=transcription");
    free(u);
}

static void test_url_refuses_stereo_and_odd_rates(void **state)
{
    (void)state;
    steno__audio_params st = {STENO_ENCODING_LINEAR16, 16000, 2};
    steno__audio_params lo = {STENO_ENCODING_LINEAR16, 4000, 1};
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(oai()->build_url("ws://h/v1/realtime", &st, NULL, &b), STENO_ERR_FORMAT);
    assert_int_equal(oai()->build_url("ws://h/v1/realtime", &lo, NULL, &b), STENO_ERR_FORMAT);
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

static void test_key_goes_as_bearer_never_in_the_url(void **state)
{
    (void)state;
    struct hdrs h = {0};
    assert_int_equal(oai()->handshake_headers("sk-abc", grab, &h), STENO_OK);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.name, "authorization:");
    assert_string_equal(h.value, "Bearer sk-abc");
    memset(&h, 0, sizeof h);
    assert_int_equal(oai()->handshake_headers("Bearer ek_123", grab, &h), STENO_OK);
    assert_string_equal(h.value, "Bearer ek_123");
    memset(&h, 0, sizeof h);
    assert_int_equal(oai()->handshake_headers("ek_123", grab, &h), STENO_OK);
    assert_string_equal(h.value, "Bearer ek_123");
    assert_null(oai()->credential_query);
    assert_int_equal(oai()->handshake_headers("a\r\nX: y", grab, &h), STENO_ERR_CONFIG);
    memset(&h, 0, sizeof h);
    assert_int_equal(oai()->handshake_headers(NULL, grab, &h), STENO_OK);
    assert_int_equal(h.n, 0);
    char *u = url_for("ws://h/v1/realtime", &ap16k);
    assert_null(strstr(u, "sk-"));
    free(u);
}

/* ---- connection state helpers ---- */

static void *sess;

static void *conn_for(const steno__audio_params *ap)
{
    if (!sess)
        sess = oai()->session_new(NULL);
    void *c = oai()->conn_new(NULL, sess, ap, NULL, 0);
    assert_non_null(c);
    return c;
}

static void conn_done(void *c)
{
    oai()->conn_free(NULL, c);
    oai()->session_free(NULL, sess);
    sess = NULL;
}

static cJSON *message(void *conn, const steno__opts *o, int initial)
{
    steno__sb b;
    steno__sb_init(&b, NULL);
    int rc =
        initial ? oai()->initial_message(conn, &ap16k, o, &b) : oai()->configure_message(o, o, &b);
    assert_int_equal(rc, STENO_OK);
    cJSON *j = cJSON_Parse(steno__sb_cstr(&b));
    steno__sb_free(&b);
    assert_non_null(j);
    return j;
}

static const char *jpath(const cJSON *j, const char *a, const char *b, const char *c, const char *d)
{
    const char *path[] = {a, b, c, d};
    for (int i = 0; i < 4 && path[i]; i++)
        j = cJSON_GetObjectItemCaseSensitive(j, path[i]);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static void test_session_update_sets_transcription_pcm24k_manual_turns(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    cJSON *j = message(c, NULL, 1);
    assert_string_equal(jpath(j, "type", NULL, NULL, NULL), "session.update");
    assert_string_equal(jpath(j, "session", "type", NULL, NULL), "transcription");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "session"), "audio"),
        "input");
    assert_string_equal(jpath(in, "format", "type", NULL, NULL), "audio/pcm");
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "format"), "rate")
            ->valueint,
        24000);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(in, "turn_detection")));
    assert_string_equal(jpath(in, "transcription", "model", NULL, NULL), "gpt-live-transcribe");
    assert_null(jpath(in, "transcription", "language", NULL, NULL));
    cJSON_Delete(j);

    steno_option o[] = {{"model", "gpt-4o-transcribe"},
                        {"language", "de"},
                        {"prompt", "Namen: \"Anke\""},
                        {"noise_reduction", "far_field"}};
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, 4, &set), STENO_OK);
    j = message(c, &set, 1);
    in = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "session"), "audio"),
        "input");
    assert_string_equal(jpath(in, "transcription", "model", NULL, NULL), "gpt-4o-transcribe");
    assert_string_equal(jpath(in, "transcription", "language", NULL, NULL), "de");
    assert_string_equal(jpath(in, "transcription", "prompt", NULL, NULL), "Namen: \"Anke\"");
    assert_string_equal(jpath(in, "noise_reduction", "type", NULL, NULL), "far_field");
    cJSON_Delete(j);
    /* a live change carries the transcription settings only */
    j = message(c, &set, 0);
    in = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "session"), "audio"),
        "input");
    assert_string_equal(jpath(j, "session", "type", NULL, NULL), "transcription");
    assert_string_equal(jpath(in, "transcription", "language", NULL, NULL), "de");
    assert_null(cJSON_GetObjectItemCaseSensitive(in, "format"));
    assert_null(cJSON_GetObjectItemCaseSensitive(in, "turn_detection"));
    cJSON_Delete(j);
    steno__opts_free(NULL, &set);
    conn_done(c);
}

static int configure(const steno_option *from, size_t nf, const steno_option *to, size_t nt)
{
    steno__opts a, b;
    assert_int_equal(steno__opts_copy(NULL, from, nf, &a), STENO_OK);
    assert_int_equal(steno__opts_copy(NULL, to, nt, &b), STENO_OK);
    steno__sb sb;
    steno__sb_init(&sb, NULL);
    int rc = oai()->configure_message(&a, &b, &sb);
    if (rc == STENO_OK) {
        cJSON *j = cJSON_Parse(steno__sb_cstr(&sb));
        assert_non_null(j);
        assert_string_equal(jpath(j, "type", NULL, NULL, NULL), "session.update");
        cJSON_Delete(j);
    }
    steno__sb_free(&sb);
    steno__opts_free(NULL, &a);
    steno__opts_free(NULL, &b);
    return rc;
}

static void test_live_changes_and_those_that_reconnect(void **state)
{
    (void)state;
    steno_option en[] = {{"language", "en"}}, de[] = {{"language", "de"}};
    steno_option en_p[] = {{"language", "en"}, {"prompt", "names"}};
    steno_option m1[] = {{"model", "gpt-4o-transcribe"}};
    steno_option nr[] = {{"noise_reduction", "near_field"}};
    assert_int_equal(configure(en, 1, de, 1), STENO_OK);
    assert_int_equal(configure(en, 1, en_p, 2), STENO_OK);
    assert_int_equal(configure(NULL, 0, en, 1), STENO_OK);
    assert_int_equal(configure(en_p, 2, en, 1), STENO_ERR_UNSUPPORTED); /* prompt removed */
    assert_int_equal(configure(en, 1, NULL, 0), STENO_ERR_UNSUPPORTED);
    assert_int_equal(configure(NULL, 0, m1, 1), STENO_ERR_UNSUPPORTED);
    assert_int_equal(configure(NULL, 0, nr, 1), STENO_ERR_UNSUPPORTED);
}

static void test_options_are_checked(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(oai()->check_option("model", "gpt-4o-mini-transcribe", err, sizeof err),
                     STENO_OK);
    assert_int_equal(oai()->check_option("model", "gpt-5", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "gpt-5"));
    assert_int_equal(oai()->check_option("language", "en", err, sizeof err), STENO_OK);
    assert_int_equal(oai()->check_option("language", "EN-us", err, sizeof err), STENO_ERR_CONFIG);
    assert_int_equal(oai()->check_option("noise_reduction", "loud", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(oai()->check_option("turn_detection", "server_vad", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "turn_detection"));
    assert_int_equal(oai()->check_option("sample_rate", "24000", err, sizeof err),
                     STENO_ERR_CONFIG);
    assert_int_equal(oai()->check_option("bogus", "1", err, sizeof err), STENO_ERR_CONFIG);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(oai()->check_option("prompt", "", err, sizeof err), STENO_ERR_CONFIG);
    steno_option o[] = {{"model", "gpt-realtime-whisper"}, {"prompt", "x"}};
    steno__opts set;
    assert_int_equal(steno__opts_copy(NULL, o, 2, &set), STENO_OK);
    assert_int_equal(oai()->check_set(&set, err, sizeof err), STENO_ERR_CONFIG);
    steno__opts_free(NULL, &set);
    steno_option twice[] = {{"language", "en"}, {"language", "de"}};
    assert_int_equal(steno__opts_copy(NULL, twice, 2, &set), STENO_OK);
    assert_int_equal(oai()->check_set(&set, err, sizeof err), STENO_ERR_CONFIG);
    steno__opts_free(NULL, &set);
}

/* ---- framing ---- */

static size_t b64_decode(const char *in, uint8_t *out)
{
    static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    assert_int_equal(n % 4, 0);
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            w <<= 6;
            if (in[i + k] == '=')
                pad++;
            else
                w |= (uint32_t)(strchr(t, in[i + k]) - t);
        }
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return o;
}

/* frame_audio's samples for pcm (little-endian bytes), decoded from the JSON. */
static size_t frame(void *c, const int16_t *s, size_t n, int16_t *out)
{
    uint8_t *pcm = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        pcm[2 * i] = (uint8_t)((uint16_t)s[i] & 0xff);
        pcm[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
    }
    steno__sb b;
    steno__sb_init(&b, NULL);
    assert_int_equal(oai()->frame_audio(c, pcm, 2 * n, &b), STENO_OK);
    cJSON *j = cJSON_Parse(steno__sb_cstr(&b));
    assert_non_null(j);
    assert_string_equal(jpath(j, "type", NULL, NULL, NULL), "input_audio_buffer.append");
    const char *a = jpath(j, "audio", NULL, NULL, NULL);
    assert_non_null(a);
    uint8_t *raw = malloc(strlen(a));
    size_t bytes = b64_decode(a, raw);
    assert_int_equal(bytes % 2, 0);
    for (size_t i = 0; i < bytes / 2; i++)
        out[i] = (int16_t)(uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
    free(raw);
    cJSON_Delete(j);
    steno__sb_free(&b);
    free(pcm);
    return bytes / 2;
}

static void test_24k_audio_passes_through_unchanged(void **state)
{
    (void)state;
    void *c = conn_for(&ap24k);
    int16_t in[481], out[600];
    for (int i = 0; i < 481; i++)
        in[i] = (int16_t)(i * 131 - 30000);
    in[5] = -32768;
    in[6] = 32767;
    assert_int_equal(frame(c, in, 481, out), 481);
    assert_memory_equal(in, out, sizeof in);
    assert_int_equal(frame(c, in, 1, out), 1); /* 2 bytes: a padded base64 group */
    assert_int_equal(out[0], in[0]);
    conn_done(c);
}

static void test_16k_becomes_24k_deterministically_across_chunks(void **state)
{
    (void)state;
    enum { N = 1600 }; /* 100 ms */
    int16_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = (int16_t)((i * 7919) % 60000 - 30000);
    /* one piece, and the same audio in uneven chunks: the same samples */
    int16_t whole[N * 2], parts[N * 2];
    void *c = conn_for(&ap16k);
    size_t nw = frame(c, in, N, whole);
    conn_done(c);
    c = conn_for(&ap16k);
    size_t np = 0;
    size_t cuts[] = {0, 1, 2, 333, 800, 801, 1599, N};
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        np += frame(c, in + cuts[k], cuts[k + 1] - cuts[k], parts + np);
    conn_done(c);
    assert_int_equal(nw, np);
    assert_memory_equal(whole, parts, nw * sizeof whole[0]);
    /* 3 outputs per 2 inputs, with none held back past the last input: 0, 2/3, 4/3, ... */
    assert_int_equal(nw, (N - 1) * 3 / 2 + 1);
    assert_int_equal(whole[0], in[0]);
    assert_int_equal(whole[3], in[2]);
    assert_int_equal(whole[1],
                     (int16_t)((in[0] + 2 * in[1] + (in[0] + 2 * in[1] >= 0 ? 1 : -1)) / 3));
    /* a replay on a new connection from the same chunk sends the same audio */
    c = conn_for(&ap16k);
    int16_t again[N * 2];
    assert_int_equal(frame(c, in, N, again), nw);
    assert_memory_equal(whole, again, nw * sizeof whole[0]);
    conn_done(c);
}

static void test_rateconv_bounds_its_output(void **state)
{
    (void)state;
    uint32_t rates[] = {8000, 11025, 16000, 22050, 44100, 48000};
    int16_t in[997], out[4000];
    memset(in, 0, sizeof in);
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        steno__rateconv rc;
        steno__rateconv_init(&rc, rates[r], 24000);
        size_t total = 0;
        for (int k = 0; k < 50; k++) {
            size_t n = (size_t)(k * 37 % 997) + 1;
            size_t got = steno__rateconv_run(&rc, in, n, out);
            assert_true(got <= steno__rateconv_max_out(&rc, n));
            total += got;
        }
        (void)total;
    }
}

/* ---- parsing ---- */

static int parse(void *c, const char *text, steno__msg *m)
{
    return oai()->parse(NULL, c, text, strlen(text), m);
}

static void expect_ignored(void *c, const char *text)
{
    steno__msg m;
    assert_int_equal(parse(c, text, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_IGNORED);
    steno__msg_release(&m);
}

static void committed(void *c, const char *id, const char *prev)
{
    char t[256];
    snprintf(t, sizeof t,
             "{\"event_id\":\"e\",\"type\":\"input_audio_buffer.committed\",\"previous_item_id\":"
             "%s%s%s,\"item_id\":\"%s\"}",
             prev ? "\"" : "", prev ? prev : "null", prev ? "\"" : "", id);
    expect_ignored(c, t);
}

static void completed_text(char *t, size_t cap, const char *id, const char *text)
{
    snprintf(t, cap,
             "{\"event_id\":\"e\",\"type\":\"conversation.item.input_audio_transcription."
             "completed\",\"item_id\":\"%s\",\"content_index\":0,\"transcript\":\"%s\","
             "\"usage\":{\"type\":\"duration\",\"seconds\":1}}",
             id, text);
}

static void expect_final(steno__msg *m, const char *text)
{
    assert_int_equal(m->type, STENO__MSG_RESULTS);
    assert_true(m->is_final);
    assert_string_equal(m->transcript, text);
    assert_int_equal(m->n_words, 0);
    steno__msg_release(m);
}

static void test_session_created_names_the_connection(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    steno__msg m;
    const char *t = "{\"event_id\":\"e1\",\"type\":\"session.created\",\"session\":{\"type\":"
                    "\"transcription\",\"id\":\"sess_1\",\"object\":\"realtime.transcription_"
                    "session\"}}";
    assert_int_equal(parse(c, t, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_METADATA);
    assert_string_equal(m.request_id, "sess_1");
    assert_string_equal(m.raw, t);
    steno__msg_release(&m);
    expect_ignored(c, "{\"event_id\":\"e\",\"type\":\"session.updated\",\"session\":{}}");
    expect_ignored(c, "{\"type\":\"conversation.item.added\"}");
    conn_done(c);
}

static void test_completions_are_released_in_commit_order(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    char t[512];
    steno__msg m;
    committed(c, "item_a", NULL);
    committed(c, "item_b", "item_a");
    committed(c, "item_c", "item_b");
    /* c and b complete first: held back */
    completed_text(t, sizeof t, "item_c", "third");
    expect_ignored(c, t);
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    completed_text(t, sizeof t, "item_b", "second");
    expect_ignored(c, t);
    /* a completes: a, then b and c come out in order */
    completed_text(t, sizeof t, "item_a", "first");
    assert_int_equal(parse(c, t, &m), STENO_OK);
    expect_final(&m, "first");
    assert_int_equal(oai()->next_message(NULL, c, &m), 1);
    expect_final(&m, "second");
    assert_int_equal(oai()->next_message(NULL, c, &m), 1);
    expect_final(&m, "third");
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    /* a completion for an item this connection never committed acknowledges nothing */
    completed_text(t, sizeof t, "item_zz", "stray");
    expect_ignored(c, t);
    conn_done(c);
}

static void test_deltas_are_interims_of_their_item(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    steno__sb b;
    steno__sb_init(&b, NULL);
    uint8_t pcm[3200] = {0};
    assert_int_equal(oai()->frame_audio(c, pcm, sizeof pcm, &b), STENO_OK); /* 100 ms */
    steno__sb_free(&b);
    committed(c, "item_a", NULL);
    steno__msg m;
    const char *d1 = "{\"event_id\":\"e\",\"type\":\"conversation.item.input_audio_transcription."
                     "delta\",\"item_id\":\"item_a\",\"content_index\":0,\"delta\":\"Hello\"}";
    const char *d2 = "{\"event_id\":\"e\",\"type\":\"conversation.item.input_audio_transcription."
                     "delta\",\"item_id\":\"item_a\",\"content_index\":0,\"delta\":\" world\"}";
    assert_int_equal(parse(c, d1, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_RESULTS);
    assert_false(m.is_final);
    assert_string_equal(m.transcript, "Hello");
    assert_true(m.duration > 0.099 && m.duration < 0.101);
    steno__msg_release(&m);
    assert_int_equal(parse(c, d2, &m), STENO_OK);
    assert_string_equal(m.transcript, "Hello world");
    steno__msg_release(&m);
    conn_done(c);
}

static void test_empty_commit_error_is_an_answer_in_its_place(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    char t[512];
    steno__msg m;
    const char *empty = "{\"event_id\":\"e\",\"type\":\"error\",\"error\":{\"type\":\"invalid_"
                        "request_error\",\"code\":\"input_audio_buffer_commit_empty\",\"message\":"
                        "\"buffer too small\",\"param\":null,\"event_id\":null}}";
    /* alone: answered at once, with no text */
    assert_int_equal(parse(c, empty, &m), STENO_OK);
    expect_final(&m, "");
    /* behind an item still being transcribed: after it */
    committed(c, "item_a", NULL);
    expect_ignored(c, empty);
    completed_text(t, sizeof t, "item_a", "words");
    assert_int_equal(parse(c, t, &m), STENO_OK);
    expect_final(&m, "words");
    assert_int_equal(oai()->next_message(NULL, c, &m), 1);
    expect_final(&m, "");
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    conn_done(c);
}

static const char *failed_json(const char *id)
{
    static char t[512];
    snprintf(t, sizeof t,
             "{\"event_id\":\"e\",\"type\":\"conversation.item.input_audio_transcription.failed\","
             "\"item_id\":\"%s\",\"content_index\":0,\"error\":{\"type\":\"server_error\","
             "\"code\":\"asr_failed\",\"message\":\"model busy\"}}",
             id);
    return t;
}

static void test_failed_item_is_reported_then_replayed_on_a_new_connection(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    char t[512];
    steno__msg m;
    committed(c, "item_a", NULL);
    committed(c, "item_b", "item_a");
    committed(c, "item_c", "item_b");
    completed_text(t, sizeof t, "item_a", "kept");
    assert_int_equal(parse(c, t, &m), STENO_OK);
    expect_final(&m, "kept");
    assert_int_equal(parse(c, failed_json("item_b"), &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "transcription_failed");
    assert_non_null(strstr(m.error_message, "item_b"));
    assert_non_null(strstr(m.error_message, "model busy"));
    assert_non_null(strstr(m.error_message, "replaying"));
    steno__msg_release(&m);
    assert_int_equal(oai()->next_message(NULL, c, &m), 1);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    steno__msg_release(&m);
    /* nothing after the failed item is released on this connection: it is replayed */
    completed_text(t, sizeof t, "item_c", "after");
    expect_ignored(c, t);
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    oai()->conn_free(NULL, c);
    /* the same audio failing again and again is declared lost, with its answer */
    for (int attempt = 2; attempt <= 3; attempt++) {
        c = oai()->conn_new(NULL, sess, &ap16k, NULL, 0);
        committed(c, "item_b2", NULL);
        assert_int_equal(parse(c, failed_json("item_b2"), &m), STENO_OK);
        assert_int_equal(m.type, STENO__MSG_ERROR);
        if (attempt < 3) {
            assert_non_null(strstr(m.error_message, "replaying"));
            steno__msg_release(&m);
            oai()->conn_free(NULL, c);
            continue;
        }
        assert_non_null(strstr(m.error_message, "declared lost"));
        steno__msg_release(&m);
        assert_int_equal(oai()->next_message(NULL, c, &m), 1);
        expect_final(&m, "");
        assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    }
    conn_done(c);
}

static void test_errors_and_session_expiry(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    steno__msg m;
    const char *e = "{\"event_id\":\"e\",\"type\":\"error\",\"error\":{\"type\":\"invalid_request_"
                    "error\",\"code\":\"invalid_value\",\"message\":\"bad\",\"param\":null}}";
    assert_int_equal(parse(c, e, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "invalid_value");
    assert_string_equal(m.error_message, "bad");
    steno__msg_release(&m);
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    const char *x = "{\"event_id\":\"e\",\"type\":\"error\",\"error\":{\"type\":\"invalid_request_"
                    "error\",\"code\":\"session_expired\",\"message\":\"Your session hit the "
                    "maximum duration of 60 minutes.\"}}";
    assert_int_equal(parse(c, x, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_ERROR);
    assert_string_equal(m.error_code, "session_expired");
    steno__msg_release(&m);
    assert_int_equal(oai()->next_message(NULL, c, &m), 1);
    assert_int_equal(m.type, STENO__MSG_GO_AWAY);
    assert_true(m.time_left_s == 0);
    steno__msg_release(&m);
    const char *noc =
        "{\"type\":\"error\",\"error\":{\"type\":\"server_error\",\"message\":\"x\"}}";
    assert_int_equal(parse(c, noc, &m), STENO_OK);
    assert_string_equal(m.error_code, "server_error");
    steno__msg_release(&m);
    const char *ss = "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":1500,"
                     "\"item_id\":\"i\"}";
    assert_int_equal(parse(c, ss, &m), STENO_OK);
    assert_int_equal(m.type, STENO__MSG_SPEECH_STARTED);
    assert_true(m.timestamp > 1.499 && m.timestamp < 1.501);
    steno__msg_release(&m);
    conn_done(c);
}

static void test_malformed_messages_are_parse_errors(void **state)
{
    (void)state;
    void *c = conn_for(&ap16k);
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"type\":7}",
        "{\"no\":\"type\"}",
        "{\"type\":\"input_audio_buffer.committed\"}",
        "{\"type\":\"input_audio_buffer.committed\",\"item_id\":3}",
        "{\"type\":\"input_audio_buffer.committed\",\"item_id\":\"a\",\"previous_item_id\":1}",
        "{\"type\":\"conversation.item.input_audio_transcription.completed\",\"item_id\":\"a\"}",
        "{\"type\":\"conversation.item.input_audio_transcription.completed\",\"item_id\":\"a\","
        "\"transcript\":null}",
        "{\"type\":\"conversation.item.input_audio_transcription.delta\",\"item_id\":\"a\","
        "\"delta\":5}",
        "{\"type\":\"conversation.item.input_audio_transcription.failed\",\"item_id\":\"a\","
        "\"error\":\"x\"}",
        "{\"type\":\"error\"}",
        "{\"type\":\"error\",\"error\":{\"code\":\"x\"}}",
        "{\"type\":\"session.created\",\"session\":{}}",
        "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":-1}",
        "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":\"1\"}",
        "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":1e300}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__msg m;
        int rc = parse(c, bad[i], &m);
        if (rc != STENO_ERR_PARSE)
            fail_msg("message %zu (%s): %d, not STENO_ERR_PARSE", i, bad[i], rc);
    }
    /* the queue is untouched by what failed to parse */
    steno__msg m;
    assert_int_equal(oai()->next_message(NULL, c, &m), 0);
    conn_done(c);
}

static void test_close_codes_and_errors_classify(void **state)
{
    (void)state;
    steno__failure_info in;
    steno__classification out;
    memset(&in, 0, sizeof in);
    in.phase = STENO__PHASE_OPEN;
    in.close_code = 3000;
    in.provider_error = "invalid_api_key: Incorrect API key provided";
    steno__classify(&in, &out);
    assert_int_equal(out.verdict, STENO__FATAL_AUTH);
    in.close_code = 1000;
    steno__classify(&in, &out);
    assert_int_equal(out.verdict, STENO__FATAL_AUTH); /* whatever the close code */
    in.provider_error = "session_expired: Your session hit the maximum duration of 60 minutes.";
    steno__classify(&in, &out);
    assert_int_equal(out.verdict, STENO__RETRY);
    in.phase = STENO__PHASE_CLOSING; /* the server ended it, not our end of stream */
    steno__classify(&in, &out);
    assert_int_equal(out.verdict, STENO__RETRY);
    assert_non_null(strstr(out.cause, "session expired"));
    in.provider_error = NULL;
    in.phase = STENO__PHASE_OPEN;
    in.close_code = 1003; /* steno-server: binary frames are not audio here */
    steno__classify(&in, &out);
    assert_int_equal(out.verdict, STENO__FATAL_PROTOCOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_asks_for_a_transcription_session),
        cmocka_unit_test(test_url_refuses_stereo_and_odd_rates),
        cmocka_unit_test(test_key_goes_as_bearer_never_in_the_url),
        cmocka_unit_test(test_session_update_sets_transcription_pcm24k_manual_turns),
        cmocka_unit_test(test_options_are_checked),
        cmocka_unit_test(test_live_changes_and_those_that_reconnect),
        cmocka_unit_test(test_24k_audio_passes_through_unchanged),
        cmocka_unit_test(test_16k_becomes_24k_deterministically_across_chunks),
        cmocka_unit_test(test_rateconv_bounds_its_output),
        cmocka_unit_test(test_session_created_names_the_connection),
        cmocka_unit_test(test_completions_are_released_in_commit_order),
        cmocka_unit_test(test_deltas_are_interims_of_their_item),
        cmocka_unit_test(test_empty_commit_error_is_an_answer_in_its_place),
        cmocka_unit_test(test_failed_item_is_reported_then_replayed_on_a_new_connection),
        cmocka_unit_test(test_errors_and_session_expiry),
        cmocka_unit_test(test_malformed_messages_are_parse_errors),
        cmocka_unit_test(test_close_codes_and_errors_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
