/* fuzz_deepgram_parse: any bytes as a Deepgram server text message give a message or a clean error.
 */
#include <cjson/cJSON.h>

#include "classify.h"
#include "fuzz_common.h"
#include "providers/provider.h"
#include "steno/status.h"
#include "timeline.h"

/*
 * Properties, for every input:
 *  - parse returns STENO_OK, STENO_ERR_PARSE or (only when an allocation was
 *    refused) STENO_ERR_NOMEM; on error the message holds nothing to release;
 *  - input cJSON cannot parse is STENO_ERR_PARSE; a parsed message's type is
 *    the one its "type" string names (unknown names are IGNORED);
 *  - a parsed message keeps the documented guarantees: finite times, duration
 *    >= 0, word end >= start, non-NULL strings (read to their NUL), channel
 *    and speaker in range, Metadata's raw text a NUL-terminated copy;
 *  - the same input parses the same way again, and every allocation is freed
 *    (also when the 1st, 2nd, ... allocation fails);
 *  - what the session engine does next cannot fail on a parsed message: the
 *    timeline accepts its times and words, and an Error's code and text,
 *    formatted as the engine does, classify to a printable cause.
 */

static const steno__provider *dg;

static void check_str(const char *s, const char *what)
{
    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    (void)strlen(s); /* ASan: must be NUL-terminated inside its allocation */
}

static steno__msg_type type_named(const char *t)
{
    if (strcmp(t, "Results") == 0)
        return STENO__MSG_RESULTS;
    if (strcmp(t, "UtteranceEnd") == 0)
        return STENO__MSG_UTTERANCE_END;
    if (strcmp(t, "SpeechStarted") == 0)
        return STENO__MSG_SPEECH_STARTED;
    if (strcmp(t, "Metadata") == 0)
        return STENO__MSG_METADATA;
    if (strcmp(t, "Error") == 0)
        return STENO__MSG_ERROR;
    return STENO__MSG_IGNORED;
}

static void check_results(const steno__msg *m)
{
    FUZZ_CHECK(isfinite(m->start) && isfinite(m->duration) && m->duration >= 0,
               "start %g duration %g", m->start, m->duration);
    FUZZ_CHECK(isfinite(m->confidence), "confidence %g", m->confidence);
    FUZZ_CHECK((m->is_final | m->speech_final | m->from_finalize) <= 1 && m->is_final >= 0 &&
                   m->speech_final >= 0 && m->from_finalize >= 0,
               "flags %d %d %d", m->is_final, m->speech_final, m->from_finalize);
    FUZZ_CHECK(m->channel >= 0 && m->channel < 1024, "channel %d", m->channel);
    check_str(m->transcript, "transcript");
    FUZZ_CHECK(m->n_words == 0 || m->words != NULL, "%zu words, array NULL", m->n_words);
    FUZZ_CHECK(m->n_words <= 100000, "%zu words", m->n_words);
    for (size_t i = 0; i < m->n_words; i++) {
        const steno__pword *w = &m->words[i];
        check_str(w->word, "word");
        check_str(w->punctuated_word, "punctuated_word");
        FUZZ_CHECK(isfinite(w->start) && isfinite(w->end) && w->end >= w->start,
                   "word %zu: [%g, %g]", i, w->start, w->end);
        FUZZ_CHECK(isfinite(w->confidence), "word %zu confidence %g", i, w->confidence);
        FUZZ_CHECK(w->speaker >= -1 && w->speaker < 1000000, "speaker %d", w->speaker);
    }
}

/* Does with a parsed Results what the session engine does: map it onto a timeline. */
static void feed_timeline(const steno__msg *m)
{
    steno__timeline *t;
    FUZZ_CHECK(steno__timeline_create(&t, NULL, 16000, 8) == STENO_OK, "timeline_create");
    FUZZ_CHECK(steno__timeline_on_sent(t, 0, 16000 * 30) == STENO_OK, "on_sent");
    steno__word_time *wt = calloc(m->n_words ? m->n_words : 1, sizeof *wt);
    FUZZ_CHECK(wt != NULL, "calloc");
    for (size_t i = 0; i < m->n_words; i++) {
        wt[i].start = m->words[i].start;
        wt[i].end = m->words[i].end;
    }
    steno__mapped mp;
    int rc = m->is_final ? steno__timeline_final(t, m->start, m->duration, wt, m->n_words, &mp)
                         : steno__timeline_interim(t, m->start, m->duration, wt, m->n_words, &mp);
    /* a result outside the 30 s sent is refused (a result for audio never sent) */
    FUZZ_CHECK(rc == STENO_OK || rc == STENO_ERR_PARSE, "the timeline refused a parsed result: %d",
               rc);
    if (rc == STENO_ERR_PARSE) {
        FUZZ_CHECK(steno__timeline_finalized_frame(t) == 0, "a refused result moved the ack");
        free(wt);
        steno__timeline_destroy(t);
        return;
    }
    FUZZ_CHECK(mp.first_word + mp.n_words == m->n_words, "kept words %zu+%zu of %zu", mp.first_word,
               mp.n_words, m->n_words);
    for (size_t k = 0; k < mp.n_words; k++) {
        uint64_t a, b;
        steno__timeline_map_word(t, &mp, &wt[mp.first_word + k], &a, &b);
        FUZZ_CHECK(mp.start_frame <= a && a <= b && b <= mp.end_frame, "word frames");
    }
    free(wt);
    steno__timeline_destroy(t);
}

/* An Error message's code and text, formatted as the engine does, as the provider error of a
 * close: the classifier must turn it into a printable cause. */
static void feed_classify(const steno__msg *m)
{
    char prov_err[256];
    snprintf(prov_err, sizeof prov_err, "%s%s%s", m->error_code,
             (m->error_code[0] && m->error_message[0]) ? ": " : "", m->error_message);
    steno__failure_info info = {
        .phase = STENO__PHASE_OPEN, .close_code = 1011, .provider_error = prov_err};
    steno__classification cls;
    steno__classify(&info, &cls);
    size_t n = strnlen(cls.cause, sizeof cls.cause);
    FUZZ_CHECK(n > 0 && n < sizeof cls.cause, "cause length %zu", n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(cls.cause[i] >= 0x20 && cls.cause[i] < 0x7f, "unprintable cause byte");
}

/* Parses with allocation fail_at refused (0: none); returns rc, checking what holds either way. */
static int parse_once(const uint8_t *data, size_t size, uint64_t fail_at, uint64_t *calls,
                      steno__msg_type *type)
{
    fz_alloc fa;
    fz_alloc_init(&fa, fail_at);
    steno__msg m;
    int rc = dg->parse(&fa.a, NULL, (const char *)data, size, &m);
    *type = m.type;
    if (rc != STENO_OK) {
        FUZZ_CHECK(rc == STENO_ERR_PARSE || (rc == STENO_ERR_NOMEM && fa.failed), "rc %d", rc);
        FUZZ_CHECK(m.type == STENO__MSG_IGNORED && !m.root_ && !m.words && !m.raw_,
                   "a failed parse left something to release");
        FZ_CHECK_NO_LEAK(&fa);
        *calls = fa.calls;
        return rc;
    }
    FUZZ_CHECK(m.a_ == &fa.a, "allocator not kept");
    switch (m.type) {
    case STENO__MSG_IGNORED:
        break;
    case STENO__MSG_RESULTS:
        check_results(&m);
        if (!fail_at)
            feed_timeline(&m);
        break;
    case STENO__MSG_UTTERANCE_END:
        FUZZ_CHECK(isfinite(m.last_word_end), "last_word_end %g", m.last_word_end);
        break;
    case STENO__MSG_SPEECH_STARTED:
        FUZZ_CHECK(isfinite(m.timestamp), "timestamp %g", m.timestamp);
        break;
    case STENO__MSG_METADATA:
        check_str(m.request_id, "request_id");
        FUZZ_CHECK(isfinite(m.meta_duration), "duration %g", m.meta_duration);
        FUZZ_CHECK(m.raw != NULL && memcmp(m.raw, data, size) == 0 && m.raw[size] == '\0',
                   "raw is not a NUL-terminated copy of the message");
        break;
    case STENO__MSG_ERROR:
        check_str(m.error_code, "error_code");
        check_str(m.error_message, "error_message");
        feed_classify(&m);
        break;
    default:
        FUZZ_CHECK(0, "unknown message type %d", (int)m.type);
    }
    steno__msg_release(&m);
    steno__msg_release(&m); /* idempotent: the engine may release on several paths */
    FZ_CHECK_NO_LEAK(&fa);
    *calls = fa.calls;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dg)
        dg = steno__provider_find("deepgram");
    FUZZ_CHECK(dg && dg->parse, "no deepgram provider");
    steno__msg none;
    FUZZ_CHECK(dg->parse(NULL, NULL, NULL, size, &none) == STENO_ERR_INVALID_ARG &&
                   none.type == STENO__MSG_IGNORED && !none.root_,
               "NULL text");

    uint64_t calls;
    steno__msg_type type;
    int rc = parse_once(data, size, 0, &calls, &type);
    FUZZ_CHECK(rc != STENO_ERR_NOMEM, "NOMEM without an allocation failure");

    /* Differential against cJSON itself: what it rejects is a parse error, and a parsed
     * message has the type its "type" string names. */
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root) {
        FUZZ_CHECK(rc == STENO_ERR_PARSE, "cJSON rejects it but parse gave %d", rc);
    } else if (rc == STENO_OK) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "type");
        FUZZ_CHECK(cJSON_IsObject(root) && cJSON_IsString(t), "parsed without a string type");
        FUZZ_CHECK(type == type_named(t->valuestring), "type %d for \"%s\"", (int)type,
                   t->valuestring);
    }
    cJSON_Delete(root);

    /* Same input, same answer; then every allocation it made, refused in turn. */
    uint64_t calls2;
    steno__msg_type type2;
    FUZZ_CHECK(parse_once(data, size, 0, &calls2, &type2) == rc && type2 == type && calls2 == calls,
               "a second parse differs");
    for (uint64_t k = 1; k <= calls; k++) {
        int r = parse_once(data, size, k, &calls2, &type2);
        FUZZ_CHECK(r == STENO_ERR_NOMEM || r == rc, "allocation %llu refused: rc %d (was %d)",
                   (unsigned long long)k, r, rc);
    }
    return 0;
}
