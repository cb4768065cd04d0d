/* fuzz_elevenlabs_parse: any bytes as an ElevenLabs realtime server message give a message or a
 * clean error, on a connection with word timestamps and on one without.
 */
#include <cjson/cJSON.h>

#include "fuzz_msg.h"

/*
 * Properties, for every input and both connections:
 *  - parse returns STENO_OK, STENO_ERR_PARSE or (only when an allocation was refused)
 *    STENO_ERR_NOMEM; on error the message holds nothing to release;
 *  - input cJSON cannot parse is STENO_ERR_PARSE; a parsed message's type is the one its
 *    "message_type" names: transcripts are results (final only for the connection's commit
 *    message: the timestamped one when it asked for timestamps, else the plain one; the other
 *    is ignored), session_started metadata, session_time_limit_exceeded a go-away, the spec's
 *    error types errors, anything else ignored;
 *  - a parsed message keeps the documented guarantees (finite times, ordered words, strings
 *    read to their NUL), the timeline accepts it and an error classifies to a printable cause;
 *  - the same input parses the same way again, and every allocation is freed (also when the
 *    1st, 2nd, ... allocation fails).
 */

static const steno__provider *el;

static const char *const errors[] = {
    "error",
    "auth_error",
    "quota_exceeded",
    "commit_throttled",
    "transcriber_error",
    "unaccepted_terms",
    "rate_limited",
    "input_error",
    "invalid_request",
    "queue_overflow",
    "resource_exhausted",
    "chunk_size_exceeded",
    "insufficient_audio_activity",
};

static steno__msg_type type_named(const char *t, int timestamps, int *is_final)
{
    *is_final = 0;
    if (!strcmp(t, "partial_transcript") || !strcmp(t, "final_transcript") ||
        !strcmp(t, "final_transcript_with_timestamps"))
        return STENO__MSG_RESULTS;
    if (!strcmp(t, "committed_transcript") || !strcmp(t, "committed_transcript_with_timestamps")) {
        int ts = !strcmp(t, "committed_transcript_with_timestamps");
        *is_final = ts == timestamps;
        return *is_final ? STENO__MSG_RESULTS : STENO__MSG_IGNORED;
    }
    if (!strcmp(t, "session_started"))
        return STENO__MSG_METADATA;
    if (!strcmp(t, "session_time_limit_exceeded"))
        return STENO__MSG_GO_AWAY;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (!strcmp(t, errors[i]))
            return STENO__MSG_ERROR;
    return STENO__MSG_IGNORED;
}

/* A connection as the engine makes one, with 100 ms of audio framed on it. */
static void *conn_new(int timestamps)
{
    steno_option o = {"include_timestamps", timestamps ? "true" : "false"};
    steno__opts set;
    FUZZ_CHECK(steno__opts_copy(NULL, &o, 1, &set) == STENO_OK, "opts");
    steno__audio_params ap = {STENO_ENCODING_LINEAR16, 16000, 1};
    void *c = el->conn_new(NULL, NULL, &ap, &set, 0);
    FUZZ_CHECK(c != NULL, "conn_new");
    steno__opts_free(NULL, &set);
    static const uint8_t pcm[3200]; /* 100 ms */
    steno__sb b;
    steno__sb_init(&b, NULL);
    FUZZ_CHECK(el->frame_audio(c, pcm, sizeof pcm, &b) == STENO_OK, "frame_audio");
    steno__sb_free(&b);
    return c;
}

/* Parses on a new connection (commits on one must cover successive audio, so a second parse
 * of the same commit there is refused) with allocation fail_at refused (0: none); returns rc,
 * checking what holds either way. */
static int parse_once(int timestamps, const uint8_t *data, size_t size, uint64_t fail_at,
                      uint64_t *calls, steno__msg *out)
{
    void *conn = conn_new(timestamps);
    fz_alloc fa;
    fz_alloc_init(&fa, fail_at);
    steno__msg m;
    int rc = el->parse(&fa.a, conn, (const char *)data, size, &m);
    *out = m;
    if (rc != STENO_OK) {
        FUZZ_CHECK(rc == STENO_ERR_PARSE || (rc == STENO_ERR_NOMEM && fa.failed), "rc %d", rc);
        FUZZ_CHECK(m.type == STENO__MSG_IGNORED && !m.root_ && !m.words && !m.raw_,
                   "a failed parse left something to release");
        FZ_CHECK_NO_LEAK(&fa);
        *calls = fa.calls;
        el->conn_free(NULL, conn);
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
    case STENO__MSG_METADATA:
        check_str(m.request_id, "request_id");
        FUZZ_CHECK(m.raw != NULL && memcmp(m.raw, data, size) == 0 && m.raw[size] == '\0',
                   "raw is not a NUL-terminated copy of the message");
        break;
    case STENO__MSG_GO_AWAY:
        FUZZ_CHECK(m.time_left_s == 0, "time_left_s %g", m.time_left_s);
        break;
    case STENO__MSG_ERROR:
        check_str(m.error_code, "error_code");
        check_str(m.error_message, "error_message");
        feed_classify(&m);
        break;
    default:
        FUZZ_CHECK(0, "unexpected message type %d", (int)m.type);
    }
    steno__msg_release(&m);
    steno__msg_release(&m);
    FZ_CHECK_NO_LEAK(&fa);
    *calls = fa.calls;
    el->conn_free(NULL, conn);
    return rc;
}

static void one_connection(const uint8_t *data, size_t size, int timestamps)
{
    uint64_t calls;
    steno__msg m;
    int rc = parse_once(timestamps, data, size, 0, &calls, &m);
    FUZZ_CHECK(rc != STENO_ERR_NOMEM, "NOMEM without an allocation failure");

    /* Differential against cJSON: what it rejects is a parse error, and a parsed message has
     * the type its message_type names. */
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root) {
        FUZZ_CHECK(rc == STENO_ERR_PARSE, "cJSON rejects it but parse gave %d", rc);
    } else if (rc == STENO_OK) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "message_type");
        FUZZ_CHECK(cJSON_IsObject(root) && cJSON_IsString(t), "parsed without a message_type");
        int fin;
        FUZZ_CHECK(m.type == type_named(t->valuestring, timestamps, &fin), "type %d for \"%s\"",
                   (int)m.type, t->valuestring);
        FUZZ_CHECK(m.type != STENO__MSG_RESULTS || m.is_final == fin, "is_final %d for \"%s\"",
                   m.is_final, t->valuestring);
    }
    cJSON_Delete(root);

    /* Same input, same answer; then every allocation it made, refused in turn. */
    uint64_t calls2;
    steno__msg m2;
    FUZZ_CHECK(parse_once(timestamps, data, size, 0, &calls2, &m2) == rc && m2.type == m.type &&
                   calls2 == calls,
               "a second parse differs");
    for (uint64_t k = 1; k <= calls; k++) {
        int r = parse_once(timestamps, data, size, k, &calls2, &m2);
        FUZZ_CHECK(r == STENO_ERR_NOMEM || r == rc, "allocation %llu refused: rc %d (was %d)",
                   (unsigned long long)k, r, rc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!el)
        el = steno__provider_find("elevenlabs");
    FUZZ_CHECK(el && el->parse && el->conn_new, "no elevenlabs provider");
    steno__msg none;
    FUZZ_CHECK(el->parse(NULL, NULL, NULL, size, &none) == STENO_ERR_INVALID_ARG &&
                   none.type == STENO__MSG_IGNORED && !none.root_,
               "NULL text");
    one_connection(data, size, 1);
    one_connection(data, size, 0);
    return 0;
}
