/* steno events: what a session reports to the application (callback or pull queue). */
#ifndef STENO_EVENT_H
#define STENO_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "steno/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Time and sample conventions used by every event:
 *
 *  - "Session seconds" count from the first sample the application wrote to
 *    the session, at the session's sample rate. They stay on one monotonic
 *    timeline across reconnects: the provider's own clock restarts at 0 on
 *    every connection, steno maps it back.
 *  - A "sample" index counts sample frames (one sample of every channel),
 *    from 0 = the first frame the application wrote. Ranges are inclusive.
 *
 * String and array ownership: every pointer inside an event is owned by the
 * event. In an event callback it is valid until the callback returns; from
 * steno_session_next_event() it is valid until the next call to
 * steno_session_next_event() on that session or steno_session_destroy().
 * Copy what you keep. Strings are UTF-8, NUL-terminated, never NULL where
 * documented as "" when absent.
 */

typedef enum steno_event_type {
    STENO_EVENT_NONE = 0,
    /* A connection attempt started (the first one, or a retry after RECONNECTING). */
    STENO_EVENT_CONNECTING = 1,
    /* The WebSocket handshake of the FIRST connection completed. Later ones say RECONNECTED. */
    STENO_EVENT_CONNECTED = 2,
    /* A transcription result, interim or final, on the session timeline. */
    STENO_EVENT_TRANSCRIPT = 3,
    /* The provider detected the end of an utterance (Deepgram UtteranceEnd). */
    STENO_EVENT_UTTERANCE_END = 4,
    /* The provider detected the start of speech (Deepgram SpeechStarted, vad_events=true). */
    STENO_EVENT_SPEECH_STARTED = 5,
    /* Provider metadata (Deepgram Metadata, usually after CloseStream). */
    STENO_EVENT_METADATA = 6,
    /* The connection was lost (or could not be made); a retry is scheduled. */
    STENO_EVENT_RECONNECTING = 7,
    /* A retry succeeded: the session is streaming again, unacknowledged audio replayed. */
    STENO_EVENT_RECONNECTED = 8,
    /* Audio was lost: the ring overflowed during an outage, or the app wrote into a full ring. */
    STENO_EVENT_AUDIO_DROPPED = 9,
    /* Terminal: the session gave up (fatal error, retries/outage/budget exhausted). */
    STENO_EVENT_FAILED = 10,
    /* Terminal: the session closed after steno_session_close() (or was aborted by destroy). */
    STENO_EVENT_CLOSED = 11,
    /* Exactly one of FAILED or CLOSED is the last event of every session. */
    /* Every backlog an outage left behind is final again: the backfill
     * connections (see max_backfill_connections) finished and the session is
     * caught up. */
    STENO_EVENT_CAUGHT_UP = 12,
    /* The session moved to another endpoint (see steno_session_config.failover). */
    STENO_EVENT_FAILOVER = 13,
} steno_event_type;

/* A short name for an event type ("TRANSCRIPT"), never NULL. */
const char *steno_event_type_name(steno_event_type type);

/* One recognised word, with session-timeline times. */
typedef struct steno_word {
    const char *word;            /* as recognised */
    const char *punctuated_word; /* with punctuation/casing when the provider gives it, else word */
    double start;                /* session seconds */
    double end;                  /* session seconds, >= start */
    double confidence;           /* 0..1 */
    int speaker;                 /* diarization speaker, -1 when unknown */
} steno_word;

typedef struct steno_transcript {
    int is_final;      /* 1: this audio span will not be transcribed again */
    int speech_final;  /* 1: the provider's endpointing detected the end of speech */
    int from_finalize; /* 1: this final answers a Finalize (steno_session_finalize, or one steno
                          sent itself to keep acknowledgements up: auto_finalize_ms) */
    const char *text;  /* the transcript ("" for silence) */
    double start;      /* session seconds covered by this result: [start, end] */
    double end;
    double confidence;       /* 0..1 */
    const steno_word *words; /* n_words words, in order, inside [start, end] */
    size_t n_words;
    uint64_t first_sample; /* the span as sample frames: [first_sample, end_sample) */
    uint64_t end_sample;   /* exclusive */
    int channel;           /* channel index (0 unless multichannel) */
    int from_backfill;     /* 1: from a backfill connection replaying audio buffered during an
                              outage (its span is older than live results already delivered,
                              unless the session asked for ordered_finals) */
    const char *provider;  /* the provider that transcribed it ("deepgram"; see failover) */
} steno_transcript;

typedef struct steno_event_connecting {
    uint32_t attempt; /* 1-based attempt number within the first connect or the current
                         outage: 1, 2, 3... (reset by every successful handshake) */
} steno_event_connecting;

typedef struct steno_event_connected {
    const char *request_id; /* provider request id (Deepgram dg-request-id), "" if unknown */
} steno_event_connected;

typedef struct steno_event_utterance_end {
    double last_word_end; /* session seconds */
} steno_event_utterance_end;

typedef struct steno_event_speech_started {
    double timestamp; /* session seconds */
} steno_event_speech_started;

typedef struct steno_event_metadata {
    const char *request_id; /* "" if absent */
    double duration;        /* seconds of audio the provider saw on this connection */
    const char *json;       /* the provider's message, verbatim */
} steno_event_metadata;

/*
 * Also emitted, with attempt 0, delay 0 and cause STENO_OK, when steno
 * replaces the connection on purpose to apply steno_session_configure() on a
 * provider without live settings; RECONNECTED follows as usual.
 */
typedef struct steno_event_reconnecting {
    uint32_t attempt;    /* retries scheduled in this outage so far, this one included:
                            1, 2, ... (the first connect's failures count too) */
    uint32_t delay_ms;   /* wait before it (0: immediate retry after a healthy connection) */
    steno_status cause;  /* why the previous connection ended or failed */
    int http_status;     /* handshake status of the failed attempt, 0 if none */
    int close_code;      /* WebSocket close code received, 0 if none */
    const char *message; /* human-readable cause (provider error text when given), never NULL */
} steno_event_reconnecting;

typedef struct steno_event_reconnected {
    uint32_t attempts;        /* attempts this outage took (>= 1) */
    uint32_t downtime_ms;     /* from losing the previous connection to this handshake */
    uint32_t replayed_chunks; /* unacknowledged chunks being re-sent on the new connection */
    uint32_t backfill_chunks; /* buffered chunks handed to backfill connections instead (the live
                                 connection resumed at the newest audio); CAUGHT_UP follows when
                                 they are final */
    const char *request_id;   /* provider request id of the new connection, "" if unknown */
} steno_event_reconnected;

typedef struct steno_event_audio_dropped {
    uint64_t first_sample; /* inclusive sample-frame range lost */
    uint64_t last_sample;  /* inclusive */
    uint64_t samples;      /* frames actually lost in the range (== last - first + 1 except when
                              steno had to merge many producer-side drops into one report) */
    int producer_side;     /* 1: steno_session_write found the ring full (app writes faster
                              than steno can hold); 0: the oldest unacknowledged audio was
                              evicted during an outage to make room for new audio */
} steno_event_audio_dropped;

typedef struct steno_event_caught_up {
    uint64_t backfilled_samples; /* samples replayed by backfill since the first outage of this
                                    catch-up */
    uint32_t elapsed_ms;         /* from the first backfill job to now */
} steno_event_caught_up;

typedef struct steno_event_failover {
    const char *from_provider; /* the endpoint left: provider name ... */
    const char *from_url;      /* ... and URL (no query) */
    const char *to_provider;   /* the endpoint the session moves to */
    const char *to_url;
    uint32_t to_index;   /* 0: the preferred endpoint, k: steno_session_config.failover[k - 1] */
    steno_status cause;  /* why: the last failure (STENO_OK when moving back to the preferred
                            endpoint once failback_after_ms passed) */
    const char *message; /* what happened, never NULL */
} steno_event_failover;

typedef struct steno_event_failed {
    steno_status status;          /* e.g. STENO_ERR_AUTH, STENO_ERR_RETRIES_EXHAUSTED */
    int http_status;              /* handshake HTTP status when relevant, else 0 */
    int close_code;               /* WebSocket close code when relevant, else 0 */
    const char *message;          /* what happened and what to fix, never NULL */
    const char *provider_message; /* provider's own error text (dg-error, close reason), "" */
    const char *request_id;       /* provider request id (dg-request-id), "" if unknown */
} steno_event_failed;

typedef struct steno_event_closed {
    steno_status status;          /* STENO_OK: the provider flushed and closed after everything was
                                     sent (unfinalized_samples says if it left any audio without a
                                     final); STENO_ERR_TIMEOUT: the drain timed out;
                                     STENO_ERR_CLOSED: aborted by steno_session_destroy() */
    uint64_t unfinalized_samples; /* samples still unacknowledged at close (0 on a clean close) */
} steno_event_closed;

typedef struct steno_event {
    steno_event_type type;
    uint64_t seq; /* 1, 2, 3... per session, in emission order */
    union {
        steno_event_connecting connecting;
        steno_event_connected connected;
        steno_transcript transcript;
        steno_event_utterance_end utterance_end;
        steno_event_speech_started speech_started;
        steno_event_metadata metadata;
        steno_event_reconnecting reconnecting;
        steno_event_reconnected reconnected;
        steno_event_audio_dropped audio_dropped;
        steno_event_failed failed;
        steno_event_closed closed;
        steno_event_caught_up caught_up;
        steno_event_failover failover;
    } u;
} steno_event;

/*
 * Event callback. Runs on the client's network thread: it must not block
 * (no I/O waits, no long locks) and must not call steno_session_destroy() or
 * steno_client_destroy(). It may call steno_session_configure(),
 * steno_session_finalize(), steno_session_close() (which then only requests
 * the close) and steno_session_stats().
 */
typedef void (*steno_event_fn)(void *user, const steno_event *ev);

#ifdef __cplusplus
}
#endif

#endif /* STENO_EVENT_H */
