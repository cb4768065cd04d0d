/* provider: the table of functions that keeps everything provider-specific out of the engine. */
#ifndef STENO_PROVIDERS_PROVIDER_H
#define STENO_PROVIDERS_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "steno/alloc.h"
#include "steno/session.h"
#include "strbuf.h"

/*
 * The session engine speaks to a provider only through this table: adding
 * AssemblyAI, OpenAI Realtime, ElevenLabs or Gemini means adding a table,
 * never touching the engine. Every function is pure (no I/O, no clock) and
 * reentrant, so each is unit-tested on its own.
 */

/* What the engine knows about the audio, for URLs and setup messages. */
typedef struct steno__audio_params {
    steno_encoding encoding; /* LINEAR16 */
    uint32_t sample_rate;
    uint32_t channels;
} steno__audio_params;

/* Receives one handshake header. name is lower-case and carries its colon ("authorization:"),
 * as lws 4.1 wants it. Returns 0, or nonzero to abort. */
typedef int (*steno__header_fn)(void *ctx, const char *name, const char *value);

typedef enum steno__msg_type {
    STENO__MSG_IGNORED = 0,    /* well-formed but of no interest (unknown type) */
    STENO__MSG_RESULTS,        /* a transcript, interim or final */
    STENO__MSG_UTTERANCE_END,  /* last_word_end */
    STENO__MSG_SPEECH_STARTED, /* timestamp */
    STENO__MSG_METADATA,       /* request_id, duration, raw */
    STENO__MSG_ERROR,          /* error_code, error_message */
    /* The server will end this connection (Gemini's goAway, an announced session limit): the
     * engine flushes, closes and reconnects without backoff, breaker or budget, replaying what
     * is not acknowledged, a little before the end (time_left_s or expires_unix_s). */
    STENO__MSG_GO_AWAY,
} steno__msg_type;

typedef struct steno__pword {
    const char *word;
    const char *punctuated_word; /* == word when absent */
    double start, end, confidence;
    int speaker; /* -1 when absent */
} steno__pword;

/* A parsed server message. Strings point into the parser's tree and live until
 * steno__msg_release(); times are provider seconds on this connection. */
typedef struct steno__msg {
    steno__msg_type type;
    /* RESULTS */
    int is_final, speech_final, from_finalize;
    double start, duration, confidence;
    const char *transcript;
    steno__pword *words;
    size_t n_words;
    int channel;
    /* UTTERANCE_END */
    double last_word_end;
    /* SPEECH_STARTED */
    double timestamp;
    /* METADATA */
    const char *request_id;
    double meta_duration;
    /* GO_AWAY: seconds before the server ends the connection (< 0 when unknown), or when it
     * does in unix seconds (0 when unknown; AssemblyAI's Begin.expires_at) */
    double time_left_s;
    double expires_unix_s;
    /* ERROR */
    const char *error_code;
    const char *error_message;
    /* the message text (NUL-terminated copy), for METADATA events */
    const char *raw;
    /* private */
    const steno_allocator *a_;
    void *root_;
    char *raw_;
} steno__msg;

/* How the engine recognises the provider's answer to finalize_text, and what that answer
 * acknowledges. */
typedef enum steno__finalize_answer {
    /* A final that says so (steno__msg.from_finalize, Deepgram's from_finalize); it acknowledges
     * what its own span covers. */
    STENO__FIN_ANSWER_FLAGGED = 0,
    /* The provider marks nothing (AssemblyAI's ForceEndpoint is answered by an ordinary
     * end-of-turn Turn): the first final on the connection after finalize_text was sent is
     * the answer. An answer without words acknowledges all audio sent on the connection
     * before finalize_text (silence nothing else acknowledges); one with words only its own
     * span, since it may be a natural end of turn that crossed finalize_text, with the real
     * answer's words still to come. The flush before close_text acknowledges everything
     * sent, except where finals come unasked (unasked_finals): there it is asked again while
     * its answer has words and stops short of the end. */
    STENO__FIN_ANSWER_NEXT_FINAL,
} steno__finalize_answer;

typedef struct steno__provider {
    const char *name;        /* "deepgram" */
    const char *default_url; /* "wss://api.deepgram.com/v1/listen" */

    /* Pacing: the fastest the provider accepts audio, in thousandths of real
     * time, and the burst (ms of audio) it tolerates above that. */
    uint32_t speed_permille;
    uint32_t burst_ms;

    /* Handshake response headers worth reporting: the provider's error text
     * and request id ("dg-error:", "dg-request-id:"), or NULL. */
    const char *error_header;
    const char *request_id_header;

    /* Text control messages; NULL when the provider has none. */
    const char *keepalive_text; /* sent only while no audio flows */
    const char *finalize_text;  /* flush: finals for all audio sent so far */
    /* The flush built by the adapter when it must know it went out (Gemini: the activityEnd
     * closes the activity, and the next audio opens another at once); NULL: finalize_text.
     * finalize_text still says whether the provider has a flush at all. */
    int (*finalize_message)(void *conn, steno__sb *out);
    const char *close_text; /* end of stream: flush, then the server closes */

    /* How the answer to finalize_text is recognised (see steno__finalize_answer). */
    steno__finalize_answer finalize_answer;
    /* Nonzero when close_text is not known to flush every final before the server closes:
     * the engine then sends finalize_text first, awaits its answer, and only then close_text
     * (live and backfill connections alike). */
    int finalize_before_close;
    /* Nonzero when finals come unasked (the server ends turns itself) under
     * STENO__FIN_ANSWER_NEXT_FINAL: one may be on its way when finalize_text goes out and be
     * taken for the answer, so the flush before the close is asked again while its answer has
     * words and stops short of the end (see steno__session_deliver_results). Zero when every
     * final answers a flush (manual commits): the first answer is the real one. */
    int unasked_finals;
    /* Nonzero when the server does not close after close_text (OpenAI and Gemini have no
     * end-of-stream message): once close_text is out, with the flush before it answered, the
     * engine closes the WebSocket itself (1000) and takes that as the end of the stream; a
     * seamless switch (configuration, go-away, failback) closes right after close_text, the
     * unacknowledged audio being replayed on the new connection. */
    int client_closes;

    /* Limits on one audio frame (chunk_ms), checked at session open; 0 = no limit. */
    uint32_t min_chunk_ms, max_chunk_ms;

    /*
     * Option validation: STENO_OK, or STENO_ERR_CONFIG with a message in err
     * naming the key (unknown key, bad value, or a key the engine derives
     * from the audio format). check_set validates the whole set (e.g. a
     * non-repeatable key given twice).
     */
    int (*check_option)(const char *key, const char *value, char *err, size_t errlen);
    int (*check_set)(const steno__opts *o, char *err, size_t errlen);

    /* The full request URL for base_url (ws[s]://host[:port]/path[?query]; an
     * existing query is kept), audio and options, percent-escaped. */
    int (*build_url)(const char *base_url, const steno__audio_params *ap, const steno__opts *o,
                     steno__sb *out);

    /* Handshake headers for a credential (a bare key, or "Scheme value"). */
    int (*handshake_headers)(const char *credential, steno__header_fn add, void *ctx);

    /* A credential that travels in the URL (a temporary token as a query parameter): appends
     * "name=escaped-value" for it to out and returns STENO_OK, or appends nothing when the
     * credential goes in a header. NULL: credentials never go in the URL. The engine appends
     * it to the request path of each connection only; the URL it logs never carries it. */
    int (*credential_query)(const char *credential, steno__sb *out);

    /*
     * Adapter state, for protocols whose messages only make sense against what was sent
     * (OpenAI's committed items carry no audio position; Gemini gives no times at all).
     * session_new/session_free: one per session, for what outlives a connection (a
     * resumption handle); NULL when none (sess is then NULL). conn_new/conn_free: one per
     * connection, live or backfill, made when it is established (before initial_message)
     * and freed when it ends; NULL when the adapter is stateless (conn is then NULL).
     * conn_new returns NULL only when out of memory: the connection is then replaced.
     */
    void *(*session_new)(const steno_allocator *a);
    void (*session_free)(const steno_allocator *a, void *sess);
    void *(*conn_new)(const steno_allocator *a, void *sess, const steno__audio_params *ap,
                      const steno__opts *o, int backfill);
    void (*conn_free)(const steno_allocator *a, void *conn);

    /* First message after the handshake (a session setup), or NULL when
     * none: everything is in the URL. */
    int (*initial_message)(void *conn, const steno__audio_params *ap, const steno__opts *o,
                           steno__sb *out);

    /* Audio framing: NULL means raw binary frames. Otherwise writes a text
     * frame for pcm into out (e.g. base64 JSON). Called for every audio frame sent on the
     * connection, in order, replays included. */
    int (*frame_audio)(void *conn, const uint8_t *pcm, size_t bytes, steno__sb *out);

    /* Live settings change from old to next (both already validated): STENO_OK with the
     * message that applies next on the open connection in out; STENO_ERR_UNSUPPORTED when
     * the change needs a new connection (a setting the protocol fixes at setup changed, or a
     * live one was removed and cannot be reset). The engine then reconnects seamlessly, as it
     * always does when configure_message is NULL. The message must carry every live
     * setting of next, not only those that changed: a later change may replace an unsent one. */
    int (*configure_message)(const steno__opts *old, const steno__opts *next, steno__sb *out);

    /* Parses one text message. STENO_OK (out->type says what it was, possibly
     * IGNORED), STENO_ERR_PARSE for anything malformed (wrong types, missing
     * required fields, non-finite times), STENO_ERR_NOMEM. On error nothing
     * needs releasing; on success call steno__msg_release(). */
    int (*parse)(const steno_allocator *a, void *conn, const char *text, size_t len,
                 steno__msg *out);
    /* Messages the adapter held back (completions that arrived out of order, released in
     * audio order, since the ring releases audio up to the latest final): the engine calls
     * it after every parse until it returns 0; 1 when *out is filled (released with
     * steno__msg_release like parse's). NULL: the adapter holds nothing back. */
    int (*next_message)(const steno_allocator *a, void *conn, steno__msg *out);
} steno__provider;

/* The provider named name (case-sensitive), or NULL. */
const steno__provider *steno__provider_find(const char *name);
/* Comma-separated list of known provider names, for error messages. */
const char *steno__provider_names(void);

void steno__msg_release(steno__msg *m);

/* ---- helpers the adapters share ---- */

/* Starts a request URL: base_url without its fragment (meaningless for a WebSocket request),
 * then '?' or '&' so that parameters can follow (nothing when base_url ends in '?'). */
void steno__url_begin_query(steno__sb *out, const char *base_url);
/* Appends "&key=value" (both percent-escaped) for every option except the key skip (NULL:
 * none). */
void steno__url_append_opts(steno__sb *out, const steno__opts *o, const char *skip);
/* check_set for adapters whose keys are each checked alone: every option through
 * check_option, and none given twice unless repeatable(key) says so (NULL: none is). */
int steno__opts_check_each(const steno__opts *o, const char *provider,
                           int (*check_option)(const char *key, const char *value, char *err,
                                               size_t errlen),
                           int (*repeatable)(const char *key), char *err, size_t errlen);
/* Credentials as a raw key in a header, or as "Bearer <token>" (a temporary token) in the
 * query parameter token=: handshake_headers adds the key as header name (lower-case, with its
 * colon) and nothing for a token; credential_query appends "token=escaped" for a token only. */
int steno__key_header(const char *credential, const char *name, steno__header_fn add, void *ctx);
int steno__token_query(const char *credential, steno__sb *out);

extern const steno__provider steno__deepgram;
extern const steno__provider steno__assemblyai;
extern const steno__provider steno__gemini;
extern const steno__provider steno__openai;
extern const steno__provider steno__elevenlabs;

#endif
