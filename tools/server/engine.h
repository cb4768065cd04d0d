/* engine: the recognition back-end interface of steno-server (null, pocketsphinx). */
#ifndef STENO_SERVER_ENGINE_H
#define STENO_SERVER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/*
 * An engine turns one connection's 16-bit PCM into recognition events. Engine
 * calls for one stream are made by one worker thread at a time (never the lws
 * thread, so slow recognition never stalls other connections); events are
 * delivered through `emit`, which copies what it needs before returning.
 * All times are seconds since the start of THIS connection's audio, as
 * Deepgram's are (they restart at 0 on every connection).
 */

typedef struct srv_stream_params {
    uint32_t sample_rate; /* validated by the server: 8000..48000 */
    uint32_t channels;    /* 1 (engines may mix down or reject others) */
    int interim_results;  /* emit interim hypotheses while speech continues */
    int endpointing_ms;   /* silence that ends an utterance; -1 = disabled ("false") */
    int utterance_end_ms; /* 0 = no UtteranceEnd messages */
    int vad_events;       /* emit SpeechStarted */
    double null_span_s;   /* null engine: audio span covered by each final */
    int no_digests;       /* --no-digests: no checksum of each span */
} srv_stream_params;

typedef struct srv_word {
    const char *word;
    double start, end, confidence;
} srv_word;

typedef enum srv_event_kind {
    SRV_EV_RESULT,         /* a Results message (interim or final) */
    SRV_EV_SPEECH_STARTED, /* SpeechStarted: `start` is when speech began */
    SRV_EV_UTTERANCE_END,  /* UtteranceEnd: `last_word_end` */
} srv_event_kind;

typedef struct srv_event {
    srv_event_kind kind;
    double start, duration; /* RESULT: span of audio the result covers */
    int is_final, speech_final, from_finalize;
    const char *transcript; /* "" when nothing was recognised */
    double confidence;
    const srv_word *words;
    size_t n_words;
    double last_word_end; /* UTTERANCE_END */
} srv_event;

typedef void (*srv_emit_fn)(void *ctx, const srv_event *ev);

typedef struct srv_engine srv_engine; /* process-wide engine state (model, decoder pool) */
typedef struct srv_stream srv_stream; /* one connection's recognition state */

typedef struct srv_engine_ops {
    const char *name;
    /* Process-wide set-up; `opts` is the --engine-opt string or NULL. 0 on success. */
    int (*engine_create)(srv_engine **out, const char *opts, char *err, size_t errlen);
    void (*engine_destroy)(srv_engine *e);
    int (*stream_open)(srv_engine *e, const srv_stream_params *p, srv_stream **out);
    /* Feed PCM (interleaved int16, little-endian host order); may emit events. */
    void (*stream_feed)(srv_stream *s, const int16_t *pcm, size_t frames, srv_emit_fn emit,
                        void *ctx);
    /* Client sent Finalize: flush pending audio as a final with from_finalize=1. */
    void (*stream_finalize)(srv_stream *s, srv_emit_fn emit, void *ctx);
    /* End of stream (CloseStream or disconnect): flush what is pending, then free. */
    void (*stream_close)(srv_stream *s, srv_emit_fn emit, void *ctx);
} srv_engine_ops;

extern const srv_engine_ops srv_engine_null;
extern const srv_engine_ops srv_engine_pocketsphinx;

#endif
