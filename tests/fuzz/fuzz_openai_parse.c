/* fuzz_openai_parse: any sequence of OpenAI Realtime server messages on one connection gives
 * messages or clean errors, and the adapter's answer queue holds nothing it does not free. */
#include <cjson/cJSON.h>

#include "classify.h"
#include "fuzz_common.h"
#include "providers/provider.h"
#include "steno/status.h"

/*
 * The input is messages separated by newlines, parsed in order on one connection (the queue
 * of committed items carries over from one to the next); after each, the held-back messages
 * are drained as the engine does. Properties, for every input:
 *  - parse returns STENO_OK, STENO_ERR_PARSE or (only when an allocation was refused)
 *    STENO_ERR_NOMEM, and on error leaves nothing to release;
 *  - every message handed out has the documented guarantees: finite times, duration >= 0,
 *    non-NULL NUL-terminated strings, no words; finals carry no span of their own;
 *  - the same input gives the same messages again, and every allocation is freed when the
 *    connection ends, also when the 1st, 2nd, ... allocation fails.
 */

static const steno__provider *oai;

static void check_str(const char *s, const char *what)
{
    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    (void)strlen(s);
}

/* Checks one handed-out message and folds its kind into the run's digest. */
static uint64_t check_msg(steno__msg *m, uint64_t h)
{
    switch (m->type) {
    case STENO__MSG_IGNORED:
        break;
    case STENO__MSG_RESULTS:
        check_str(m->transcript, "transcript");
        FUZZ_CHECK(isfinite(m->start) && isfinite(m->duration) && m->duration >= 0 && m->start >= 0,
                   "span %g %g", m->start, m->duration);
        FUZZ_CHECK(m->n_words == 0 && !m->words, "words");
        FUZZ_CHECK(!m->is_final || (m->start == 0 && m->duration == 0), "final with a span");
        break;
    case STENO__MSG_SPEECH_STARTED:
        FUZZ_CHECK(isfinite(m->timestamp) && m->timestamp >= 0, "timestamp %g", m->timestamp);
        break;
    case STENO__MSG_METADATA:
        check_str(m->request_id, "request_id");
        check_str(m->raw, "raw");
        break;
    case STENO__MSG_ERROR: {
        check_str(m->error_code, "error_code");
        check_str(m->error_message, "error_message");
        char prov_err[256];
        snprintf(prov_err, sizeof prov_err, "%s: %s", m->error_code, m->error_message);
        steno__failure_info info = {
            .phase = STENO__PHASE_OPEN, .close_code = 1000, .provider_error = prov_err};
        steno__classification cls;
        steno__classify(&info, &cls);
        FUZZ_CHECK(cls.cause[0], "no cause");
        break;
    }
    case STENO__MSG_GO_AWAY:
        FUZZ_CHECK(isfinite(m->time_left_s), "time_left %g", m->time_left_s);
        break;
    default:
        FUZZ_CHECK(0, "unexpected message type %d", (int)m->type);
    }
    h = (h ^ (uint64_t)m->type) * 0x100000001b3ull;
    h = (h ^ (uint64_t)m->is_final) * 0x100000001b3ull;
    steno__msg_release(m);
    return h;
}

/* Runs the whole input with allocation fail_at refused (0: none); returns the digest of what
 * came out, and the allocations made. */
static uint64_t run(const uint8_t *data, size_t size, uint64_t fail_at, uint64_t *calls)
{
    fz_alloc fa;
    fz_alloc_init(&fa, fail_at);
    uint64_t h = 0xcbf29ce484222325ull;
    steno__audio_params ap = {STENO_ENCODING_LINEAR16, 16000, 1};
    void *sess = oai->session_new(&fa.a);
    void *conn = sess ? oai->conn_new(&fa.a, sess, &ap, NULL, 0) : NULL;
    if (conn) {
        size_t at = 0;
        while (at <= size) {
            const uint8_t *nl = memchr(data + at, '\n', size - at);
            size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
            steno__msg m;
            int rc = oai->parse(&fa.a, conn, (const char *)data + at, len, &m);
            if (rc == STENO_OK) {
                h = check_msg(&m, h);
            } else {
                FUZZ_CHECK(rc == STENO_ERR_PARSE || (rc == STENO_ERR_NOMEM && fa.failed), "rc %d",
                           rc);
                FUZZ_CHECK(m.type == STENO__MSG_IGNORED && !m.root_ && !m.raw_,
                           "a failed parse left something to release");
                h = (h ^ (uint64_t)(100 - rc)) * 0x100000001b3ull;
            }
            for (int k = 0; k < 1000 && oai->next_message(&fa.a, conn, &m) == 1; k++)
                h = check_msg(&m, h);
            if (!nl)
                break;
            at += len + 1;
        }
        oai->conn_free(&fa.a, conn);
    }
    if (sess)
        oai->session_free(&fa.a, sess);
    FZ_CHECK_NO_LEAK(&fa);
    *calls = fa.calls;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!oai)
        oai = steno__provider_find("openai");
    FUZZ_CHECK(oai && oai->parse && oai->next_message, "no openai provider");
    uint64_t calls, calls2;
    uint64_t h = run(data, size, 0, &calls);
    FUZZ_CHECK(run(data, size, 0, &calls2) == h && calls2 == calls, "a second run differs");
    for (uint64_t k = 1; k <= calls && k <= 64; k++)
        (void)run(data, size, k, &calls2);
    return 0;
}
