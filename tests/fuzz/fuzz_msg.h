/* fuzz_msg: the properties every provider parser's fuzz target checks on a parsed message, and
 * what the session engine does next with one (the timeline, the classifier). */
#ifndef STENO_TESTS_FUZZ_MSG_H
#define STENO_TESTS_FUZZ_MSG_H

#include "classify.h"
#include "fuzz_common.h"
#include "providers/provider.h"
#include "steno/status.h"
#include "timeline.h"

static void check_str(const char *s, const char *what)
{
    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    (void)strlen(s); /* ASan: must be NUL-terminated inside its allocation */
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

#endif
