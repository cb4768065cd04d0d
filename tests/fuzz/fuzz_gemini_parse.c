/* fuzz_gemini_parse: any bytes as a sequence of Gemini Live server messages (split at newlines)
 * on one connection give messages or clean errors, and the turn state stays sound. */
#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"
#include "timeline.h"

/*
 * Properties, for every input:
 *  - each parse returns STENO_OK, STENO_ERR_PARSE or (only when an allocation was refused)
 *    STENO_ERR_NOMEM; on error the message holds nothing to release; text cJSON cannot parse
 *    is STENO_ERR_PARSE;
 *  - a RESULTS message is a final with no words and no span of its own (the engine gives it
 *    one), and a NUL-terminated transcript with no leading or trailing space; the timeline
 *    accepts it; GO_AWAY's time left is finite and -1 or more;
 *  - frames built between the messages stay JSON with base64 audio, whatever the turn state;
 *  - nothing leaks, also when the 1st, 2nd, ... allocation fails (the connection's state and
 *    the messages' share the allocator).
 */

static const steno__provider *gp;

static void check_msg(const steno__msg *m)
{
    switch (m->type) {
    case STENO__MSG_IGNORED:
        break;
    case STENO__MSG_RESULTS: {
        FUZZ_CHECK(m->is_final == 1 && m->n_words == 0 && m->start == 0 && m->duration == 0,
                   "a turn's final with a span or words");
        FUZZ_CHECK(m->transcript != NULL, "transcript NULL");
        size_t n = strlen(m->transcript);
        FUZZ_CHECK(n <= 1000000, "transcript of %zu bytes", n);
        FUZZ_CHECK(!n || (m->transcript[0] != ' ' && m->transcript[n - 1] != ' '),
                   "transcript not trimmed");
        steno__timeline *t;
        FUZZ_CHECK(steno__timeline_create(&t, NULL, 16000, 8) == STENO_OK, "timeline_create");
        FUZZ_CHECK(steno__timeline_on_sent(t, 0, 16000) == STENO_OK, "on_sent");
        steno__mapped mp;
        FUZZ_CHECK(steno__timeline_final(t, m->start, 1.0, NULL, 0, &mp) == STENO_OK,
                   "the timeline refused a turn");
        steno__timeline_destroy(t);
        break;
    }
    case STENO__MSG_GO_AWAY:
        FUZZ_CHECK(isfinite(m->time_left_s) && m->time_left_s >= -1, "time left %g",
                   m->time_left_s);
        break;
    default:
        FUZZ_CHECK(0, "unexpected message type %d", (int)m->type);
    }
}

static void check_frame(void *conn, const steno_allocator *a)
{
    static const uint8_t pcm[6] = {1, 2, 3, 4, 5, 6};
    steno__sb b;
    steno__sb_init(&b, a);
    int rc = gp->frame_audio(conn, pcm, sizeof pcm, &b);
    if (rc == STENO_OK) {
        cJSON *j = cJSON_Parse(steno__sb_cstr(&b));
        FUZZ_CHECK(j != NULL, "frame is not JSON: %s", steno__sb_cstr(&b));
        cJSON_Delete(j);
    } else {
        FUZZ_CHECK(rc == STENO_ERR_NOMEM, "frame_audio rc %d", rc);
    }
    steno__sb_free(&b);
}

/* Runs the whole input with allocation fail_at refused (0: none); returns the allocations. */
static uint64_t run(const uint8_t *data, size_t size, uint64_t fail_at)
{
    fz_alloc fa;
    fz_alloc_init(&fa, fail_at);
    static const steno__audio_params ap = {STENO_ENCODING_LINEAR16, 16000, 1};
    void *sess = gp->session_new(&fa.a);
    void *conn = sess ? gp->conn_new(&fa.a, sess, &ap, NULL, data[0] & 1) : NULL;
    if (!conn) {
        FUZZ_CHECK(fa.failed, "state not made without an allocation failure");
    } else {
        size_t at = 0;
        while (at < size) {
            const uint8_t *nl = memchr(data + at, '\n', size - at);
            size_t len = nl ? (size_t)(nl - data - at) : size - at;
            steno__msg m;
            int rc = gp->parse(&fa.a, conn, (const char *)data + at, len, &m);
            if (rc == STENO_OK) {
                check_msg(&m);
                steno__msg_release(&m);
            } else {
                FUZZ_CHECK(rc == STENO_ERR_PARSE || (rc == STENO_ERR_NOMEM && fa.failed), "rc %d",
                           rc);
                FUZZ_CHECK(m.type == STENO__MSG_IGNORED && !m.root_ && !m.words && !m.raw_,
                           "a failed parse left something to release");
                cJSON *j = cJSON_ParseWithLength((const char *)data + at, len);
                FUZZ_CHECK(j || rc == STENO_ERR_PARSE, "cJSON rejects it but parse gave %d", rc);
                cJSON_Delete(j);
            }
            check_frame(conn, &fa.a);
            at += len + 1;
        }
        gp->conn_free(&fa.a, conn);
    }
    if (sess)
        gp->session_free(&fa.a, sess);
    FZ_CHECK_NO_LEAK(&fa);
    return fa.calls;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!gp)
        gp = steno__provider_find("gemini");
    FUZZ_CHECK(gp && gp->parse, "no gemini provider");
    if (size == 0)
        return 0;
    uint64_t calls = run(data, size, 0);
    for (uint64_t k = 1; k <= calls && k <= 64; k++)
        run(data, size, k);
    return 0;
}
