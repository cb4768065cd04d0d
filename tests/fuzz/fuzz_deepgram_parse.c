/* fuzz_deepgram_parse: any bytes as a Deepgram server text message give a message or a clean error.
 */
#include <cjson/cJSON.h>

#include "fuzz_msg.h"

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
