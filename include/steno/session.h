/* steno_session: one audio stream to a speech-to-text provider, kept alive across outages. */
#ifndef STENO_SESSION_H
#define STENO_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "steno/client.h"
#include "steno/event.h"
#include "steno/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A session is one stream of audio. The application writes PCM from its
 * capture thread; steno cuts it into chunks (chunk_ms each) held in a ring
 * (ring_chunks of them), sends them over one WebSocket at a time, and
 * releases a chunk only once a FINAL result covers it. When the connection
 * breaks steno backs off, reconnects with the same configuration (including
 * changes made mid-stream, and a fresh credential from the token callback),
 * replays every chunk not yet covered by a final result, and maps the
 * provider's restarted clock back onto one session timeline, so no audio is
 * lost silently or transcribed twice.
 *
 * Threads:
 *  - steno_session_write(): the one capture thread (a single producer). It is
 *    wait-free: no allocation, no lock, no blocking system call.
 *  - everything else: any application thread, serialised by the caller
 *    (these may take short internal locks). steno_session_close() and
 *    steno_session_next_event() may block, up to their timeouts.
 *  - events: on the client's network thread (callback) and/or queued for
 *    steno_session_next_event().
 */
typedef struct steno_session steno_session;

typedef enum steno_session_state {
    STENO_STATE_IDLE = 0,         /* opened, first connect not started yet */
    STENO_STATE_CONNECTING = 1,   /* first connection attempt(s) in progress */
    STENO_STATE_STREAMING = 2,    /* connected; audio flows */
    STENO_STATE_RECONNECTING = 3, /* connection lost: backing off / reconnecting, buffering */
    STENO_STATE_CLOSING = 4,      /* close requested: sending the rest, draining finals */
    STENO_STATE_CLOSED = 5,       /* terminal: closed */
    STENO_STATE_FAILED = 6,       /* terminal: gave up (see the FAILED event / errmsg) */
} steno_session_state;

/* "STREAMING" etc., never NULL. */
const char *steno_session_state_name(steno_session_state state);

/* max_backfill_connections: no parallel catch-up. */
#define STENO_BACKFILL_OFF UINT32_MAX
/* auto_finalize_ms: never ask for a finalize on the application's behalf. */
#define STENO_AUTO_FINALIZE_OFF UINT32_MAX

typedef enum steno_encoding {
    STENO_ENCODING_DEFAULT = 0,  /* = LINEAR16 */
    STENO_ENCODING_LINEAR16 = 1, /* signed 16-bit little-endian PCM, interleaved channels */
} steno_encoding;

/* A provider option: a query parameter / setting of the provider's API. */
/* One failover endpoint (see steno_session_config.failover). */
typedef struct steno_endpoint {
    const char *provider; /* "deepgram", "assemblyai", ... (required) */
    const char *url;      /* NULL or "": the provider's default */
    const char *api_key;  /* NULL: none */
    const struct steno_option *options;
    size_t n_options;
} steno_endpoint;

typedef struct steno_option {
    const char *key;
    const char *value; /* NULL in steno_session_configure() removes the key */
} steno_option;

/*
 * Reconnect schedule: before retry n the session waits a random delay in
 * [0, min(cap_ms, base_ms * multiplier^n)] ("full jitter"), except that the
 * first retry after a connection that had been healthy is immediate.
 * A provider's Retry-After / rate-limit pushback is honoured (up to 60 s).
 * The session gives up (FAILED, STENO_ERR_RETRIES_EXHAUSTED) after
 * max_attempts retries in one outage or when the outage would exceed
 * max_outage_ms.
 *
 * The cap is short (1 s) because every second of outage is audio buffered
 * in the ring: a 6 s refusal window must end in a reconnect within about a
 * second, not after a 10 s jittered wait. Storms are the client's job: its
 * circuit breaker lets one probe through while an endpoint is down, and a
 * session's own failures count once per outage toward opening it, so many
 * sessions open it quickly while one session never stretches its own short
 * outage by the breaker's open time.
 */
typedef struct steno_retry_policy {
    uint32_t base_ms;       /* [250] */
    uint32_t cap_ms;        /* [1000] */
    double multiplier;      /* [2.0], >= 1.0 */
    uint32_t max_attempts;  /* [0 = unlimited] */
    uint32_t max_outage_ms; /* [120000]; UINT32_MAX = unlimited */
} steno_retry_policy;

/*
 * Credential callback, called on the network thread before EVERY connection
 * attempt, so a short-lived token is always fresh. Write a NUL-terminated
 * credential of at most cap - 1 bytes into buf and return STENO_OK; any
 * other return value fails the session with that status (STENO_ERR_AUTH is a
 * good choice for "no credential"). It must not block for long: fetch tokens
 * ahead of time on another thread.
 *
 * A credential is an API key (sent as Deepgram's "Authorization: Token
 * <key>"), or a complete scheme + value such as "Bearer <jwt>" or
 * "Token <key>", which is sent as is. For "assemblyai" an API key is sent
 * raw ("Authorization: <key>"), and "Bearer <token>" names a temporary
 * token, which goes in the request's token= query parameter (never in a
 * log line: the logged URL has no query). For "openai" a key (or an
 * ephemeral secret) is sent as "Authorization: Bearer <key>".
 */
typedef steno_status (*steno_token_fn)(void *user, char *buf, size_t cap);

/*
 * Session configuration. Zero means the default [in brackets] for every
 * field, so designated initialisers work; steno_session_config_init() fills
 * the defaults in explicitly. Strings and the options array are copied at
 * open: they need not outlive the call.
 *
 * Liveness defaults, and why: the ring holds ring_chunks * chunk_ms = 20 s of
 * audio by default. A half-open connection (peer gone, no FIN) must be
 * noticed and replaced well before that fills, or audio is evicted. steno
 * pings every ping_interval_ms (1 s) and declares the connection dead when a
 * ping's pong has not arrived within pong_timeout_ms (1.5 s), so a stall is
 * detected within 2.5 s whether or not audio was being acknowledged. As a
 * backstop, a connection on which NOTHING (result, pong, any frame) arrived
 * for dead_after_ms (5 s) is dead too. A replacement then connects within
 * connect_timeout_ms (5 s) or is retried. Deepgram closes a connection after 10 s
 * without audio or text, so while NO audio flows (the app stopped writing) a
 * KeepAlive text message goes out every keepalive_ms (3 s: two can be lost
 * before the provider's 10 s idle timeout); KeepAlive is never sent while
 * audio flows.
 */
typedef struct steno_session_config {
    /* Provider name ["deepgram"], or "assemblyai" (Universal Streaming v3:
     * real-time pacing, chunk_ms 50..1000, mono LINEAR16), "openai"
     * (Realtime transcription sessions: real-time pacing, mono LINEAR16 at
     * 8000..48000 Hz sent as 24 kHz). Unknown names are STENO_ERR_CONFIG.
     * "gemini" (Live API input transcription: 16 kHz mono LINEAR16, real-time
     * pacing; api_key, or "Token <name>" from token_cb for an ephemeral token):
     * the API gives no times, so steno delimits activity itself and a final is
     * one whole turn, acknowledging all audio sent before the activityEnd it
     * answers; its words carry no times (the final has none). Replay starts at
     * the last completed turn: a turn interrupted by a reconnect is re-sent
     * whole and transcribed once. goAway moves to a new connection at once,
     * resuming the session with its latest handle (backfill connections never
     * resume it). */
    const char *provider;
    /* Endpoint URL ws://host[:port]/path or wss://... [the provider's:
     * wss://api.deepgram.com/v1/listen, wss://streaming.assemblyai.com/v3/ws].
     * A query string in the URL is kept and the provider options are
     * appended to it. */
    const char *url;
    /* Credential: either api_key, or token_cb (called on every connect; wins
     * when both are set). One of them is required unless the endpoint needs
     * none (then set allow_no_auth = 1). */
    const char *api_key;
    steno_token_fn token_cb;
    void *token_user;
    int allow_no_auth;

    /* Audio the app writes: 16-bit PCM [LINEAR16], sample_rate [16000] Hz
     * (8000..192000), channels [1] (1..8), interleaved. */
    steno_encoding encoding;
    uint32_t sample_rate;
    uint32_t channels;

    /* Chunking and buffering: chunk_ms [100] (10..1000) of audio per
     * WebSocket message; ring_chunks [200] chunks of unacknowledged audio
     * kept for replay (2..100000). All audio memory (ring_chunks * chunk
     * bytes) is allocated at open; nothing grows afterwards. 20 s is what a
     * 6 s outage every 3 s needs at 1.0x-2x provider pace with parallel
     * catch-up (the recovery simulation's sweep, see README): the ring
     * releases audio oldest first, so it holds a backlog until the backfill
     * connection has finalized it. */
    uint32_t chunk_ms;
    uint32_t ring_chunks;

    /* Provider options, e.g. {"model","nova-3"}, {"interim_results","true"},
     * {"keyterm","steno"} (repeat a key to pass it several times). Unknown
     * keys are STENO_ERR_CONFIG naming the key. Keys derived from the audio
     * format (encoding, sample_rate, channels) may not be set here. */
    const steno_option *options;
    size_t n_options;

    /* Reconnect schedule, see steno_retry_policy. */
    steno_retry_policy retry;

    /* Liveness and timeouts in ms (see above): keepalive_ms [3000],
     * ping_interval_ms [1000], pong_timeout_ms [1500], dead_after_ms [5000],
     * connect_timeout_ms [5000] (TCP + TLS + WebSocket handshake),
     * close_timeout_ms [5000] (default drain time for steno_session_close()
     * with timeout 0). */
    uint32_t keepalive_ms;
    uint32_t ping_interval_ms;
    uint32_t pong_timeout_ms;
    uint32_t dead_after_ms;
    uint32_t connect_timeout_ms;
    uint32_t close_timeout_ms;

    /* A connection counts as healthy (so the next retry after it is
     * immediate and the attempt counter resets) once it stayed up this long
     * and delivered a message [2000]. */
    uint32_t healthy_after_ms;

    /* Send pacing: the fastest audio goes out, in thousandths of real time,
     * and how much audio (ms) may go out at once above that rate, e.g. when
     * replaying after a reconnect [0: the provider's limits; Deepgram: 1250
     * = 1.25x real time with an 1800 ms burst]. Raise them only for an
     * endpoint known to accept faster streams (a local test server, a batch
     * gateway): a provider that enforces its limit closes faster connections.
     * send_speed_permille 100..100000, send_burst_ms 1..600000. */
    uint32_t send_speed_permille;
    uint32_t send_burst_ms;

    /*
     * Parallel catch-up (backfill). When a reconnect finds a backlog of
     * unfinalized audio, live audio resumes at once on the new connection
     * (from a seam chosen at a pause near the newest audio) while the backlog
     * is replayed, at the provider's pace, on up to max_backfill_connections
     * extra connections [1]; each ends with the provider's end-of-stream
     * message once its finals are in. Backfill connections count against the
     * circuit breaker, the retry budget and the connect limit, and against the
     * client's max_backfill_connections. STENO_BACKFILL_OFF turns backfill off
     * (the backlog is then replayed on the live connection, ahead of live
     * audio). Transcripts from backfill carry from_backfill = 1 and, by
     * default, are delivered as soon as they arrive, so live transcripts are
     * never held back; with ordered_finals = 1 FINAL transcripts are
     * delivered strictly in timeline order instead (live finals wait for the
     * backfill before them; interims are never held).
     */
    uint32_t max_backfill_connections;
    int ordered_finals;

    /*
     * Acks that keep up: once auto_finalize_ms of audio [1500] is sent on a
     * healthy live connection without a final covering it, steno asks the
     * provider to finalize what it has (Deepgram Finalize) at the next pause,
     * and at once when twice that is pending, so the ring holds only audio
     * that is genuinely at risk, not whole utterances. STENO_AUTO_FINALIZE_OFF
     * turns it off.
     */
    uint32_t auto_finalize_ms;

    /*
     * Failover. failover lists n_failover more endpoints (each a provider,
     * URL, credential and options), tried in order after the one above (the
     * preferred endpoint) when it fails in a way that is not the app's
     * fault: handshakes refused, 5xx, closed or throttled connections, or
     * the circuit breaker held open, for failover_after_ms in a row [10000];
     * a payment or quota refusal (HTTP 402) at once; or retries exhausted.
     * The audio not yet acknowledged is replayed on the new endpoint, so the
     * timeline continues and nothing is lost; a FAILOVER event says why, and
     * every transcript names its provider. Once failback_after_ms [60000]
     * has passed on a fallback, steno moves back to the preferred endpoint
     * (unless its breaker is open), flushing the fallback connection first;
     * if the preferred endpoint still fails its handshake, steno returns to
     * the fallback at once and waits twice as long before the next try (up
     * to 10 min). 0: never move back. Failover endpoints use their own
     * api_key; token_cb serves the preferred endpoint only. Options given to
     * steno_session_configure() belong to the preferred endpoint. A local
     * steno-server as the last entry keeps transcription going offline.
     */
    const struct steno_endpoint *failover;
    size_t n_failover;
    uint32_t failover_after_ms;
    uint32_t failback_after_ms;

    /* Events: a callback on the network thread (see steno_event_fn) and/or
     * the pull queue read by steno_session_next_event(). The queue is on
     * when on_event is NULL, or when event_queue is 1. It holds at most
     * event_queue_max events [4096]; beyond that new interim transcripts
     * are discarded first (counted in stats.events_discarded), then the
     * oldest interim, so finals and state events are kept as long as
     * possible. */
    steno_event_fn on_event;
    void *user;
    int event_queue;
    uint32_t event_queue_max;
} steno_session_config;

/* Fills *cfg with the defaults (all documented above). */
void steno_session_config_init(steno_session_config *cfg);

/*
 * Opens a session on client c and starts connecting at once (the endpoint
 * need not be up yet: steno keeps retrying with backoff while buffering
 * audio). Validates the whole configuration first: on failure nothing is
 * started, *out is NULL and err (when not NULL) receives a message naming
 * the offending field, option or value. Errors: STENO_ERR_INVALID_ARG,
 * STENO_ERR_CONFIG, STENO_ERR_FORMAT, STENO_ERR_NOMEM,
 * STENO_ERR_UNSUPPORTED (e.g. wss:// without TLS support).
 */
steno_status steno_session_open(steno_client *c, const steno_session_config *cfg,
                                steno_session **out, char *err, size_t errlen);

/*
 * Pacing: steno sends at most as fast as the provider accepts (Deepgram:
 * 1.25x real time, after a 2 s burst). Live audio never hits that limit, but
 * after an outage the buffered audio is replayed at that rate, so results
 * lag behind live audio for a while (catching up at 0.25x real time), and
 * an application that writes a file faster than real time fills the ring:
 * write at about real time, or size ring_chunks for the file.
 *
 * Capture thread: appends `frames` frames of interleaved 16-bit PCM
 * (frames * channels samples). Wait-free: it copies into the ring and, when
 * a chunk is complete, wakes the network thread (at most one wake is
 * outstanding). Returns STENO_OK; STENO_ERR_FULL when the ring was full and
 * a chunk was dropped (counted and reported by an AUDIO_DROPPED event with
 * its exact range; the rest of the call's audio was still taken);
 * STENO_ERR_STATE after close was requested or the session ended (nothing
 * taken); STENO_ERR_INVALID_ARG for a NULL pcm with frames > 0.
 */
steno_status steno_session_write(steno_session *s, const int16_t *pcm, size_t frames);

/*
 * Changes provider options mid-stream. For each key named in opts, all of
 * its current values are replaced by the values given for it in opts (so a
 * repeatable key such as keyterm can be given several times), and a NULL
 * value removes the key. Validated like at open (STENO_ERR_CONFIG names the
 * key; nothing changes on error). The new configuration is remembered and
 * used on every later (re)connect. A provider that can change the settings
 * on the open connection gets one message for it (AssemblyAI's
 * UpdateConfiguration, for its turn-silence, end-of-turn and keyterm
 * settings). Otherwise (Deepgram /v1/listen; any other AssemblyAI setting,
 * or removing a live one) the change is applied by a seamless reconnect:
 * the current connection is finalized, then replaced, and replay from the
 * last acknowledged chunk guarantees nothing is lost or duplicated. Returns
 * STENO_ERR_STATE once close was requested.
 */
steno_status steno_session_configure(steno_session *s, const steno_option *opts, size_t n);

/* Shorthand for one option. */
steno_status steno_session_set_option(steno_session *s, const char *key, const char *value);

/*
 * Asks the provider to finalize everything written so far: publishes the
 * partial chunk, sends it, then Finalize (ordered after all queued audio).
 * The resulting finals have from_finalize = 1 (when nothing was pending the
 * answer is an empty final, start == end). Not needed before close.
 * STENO_ERR_STATE once close was requested.
 *
 * finalize() and close() publish the partial chunk, a producer-side step:
 * call them from the capture thread, or once it no longer calls
 * steno_session_write(), never concurrently with it.
 */
steno_status steno_session_finalize(steno_session *s);

/*
 * Ends the stream in order: the partial chunk is published, everything
 * queued is sent, then the provider is asked to flush (Deepgram
 * CloseStream) and steno drains final results until the server closes or
 * timeout_ms elapses (0: the config's close_timeout_ms). If the connection
 * is down, steno keeps reconnecting (and replaying) until timeout_ms. The
 * session then emits CLOSED. Blocks until CLOSED (or FAILED) was emitted.
 * Returns STENO_OK when the provider flushed and closed after receiving
 * everything (CLOSED's unfinalized_samples is then normally 0: every sample
 * was finalized or reported dropped), STENO_ERR_TIMEOUT when the drain timed
 * out (CLOSED is still emitted, with that status), the failure status when
 * the session had FAILED, STENO_ERR_STATE when close was already requested.
 * From an event callback it only requests the close and returns
 * STENO_ERR_AGAIN.
 */
steno_status steno_session_close(steno_session *s, uint32_t timeout_ms);

/*
 * Pull queue: waits up to timeout_ms (0: do not wait; UINT32_MAX: forever)
 * for the next event and copies it into *ev. Its strings stay valid until
 * the next call on this session or destroy. Returns STENO_OK,
 * STENO_ERR_AGAIN on timeout, STENO_ERR_STATE when the queue is off or the
 * terminal event (CLOSED/FAILED) was already returned and nothing remains.
 */
steno_status steno_session_next_event(steno_session *s, steno_event *ev, uint32_t timeout_ms);

/* Counters, readable from any thread at any time. Each value is coherent;
 * the set is not one atomic snapshot. Sample counts are sample frames. */
typedef struct steno_session_stats {
    steno_session_state state;
    uint64_t samples_written; /* every frame handed to steno_session_write (dropped included) */
    uint64_t samples_sent;    /* frames sent on the wire, replays included */
    uint64_t samples_acked;   /* frames covered by final results */
    uint64_t samples_dropped; /* producer side: written into a full ring */
    uint64_t samples_evicted; /* network side: evicted during an outage */
    uint64_t chunks_sent;     /* replays included */
    uint64_t chunks_replayed; /* re-sent after reconnects */
    uint64_t chunks_acked;
    uint64_t chunks_buffered; /* in the ring now: written, not yet acknowledged */
    uint64_t bytes_sent;      /* WebSocket payload bytes, audio and text */
    uint64_t bytes_received;
    uint64_t messages_received;
    uint64_t transcripts_final; /* emitted */
    uint64_t transcripts_interim;
    uint64_t finals_suppressed; /* finals about audio already finalized (after a replay) */
    uint64_t parse_errors;      /* server messages that could not be understood (ignored) */
    uint64_t keepalives_sent;
    uint64_t pings_sent;
    uint64_t events_discarded;  /* pull queue overflow */
    uint32_t attempts;          /* connection attempts, all of them */
    uint32_t connects;          /* successful handshakes */
    uint32_t reconnects;        /* successful handshakes after the first */
    uint32_t dead_connections;  /* connections declared dead by the liveness check */
    uint32_t configures;        /* mid-stream reconfigurations applied */
    uint32_t backfills;         /* backfill connections opened (see max_backfill_connections) */
    uint64_t chunks_backfilled; /* chunks sent on backfill connections */
    uint64_t finals_backfilled; /* final transcripts that came from backfill */
    uint64_t auto_finalizes;   /* finalize requests steno sent to keep acks up (auto_finalize_ms) */
    uint64_t live_lag_samples; /* how far the newest audio sent live trails the newest written */
    uint64_t last_message_ms;  /* age in ms of the last frame received; UINT64_MAX if none */
    uint64_t last_downtime_ms; /* duration of the last outage */
    steno_status last_error;   /* cause of the last disconnect or failure, STENO_OK if none */
} steno_session_stats;

steno_status steno_session_stats_get(steno_session *s, steno_session_stats *out);

/*
 * The same counters in the Prometheus text format (0.0.4), names prefixed
 * steno_session_ (e.g. steno_session_samples_acked_total,
 * steno_session_state), each labelled with `labels` when not NULL (e.g.
 * "session=\"mic\"", inserted verbatim between braces). Buffer rules as
 * steno_client_metrics_text(): STENO_ERR_TOO_LARGE when len is too small,
 * *needed gets the full length.
 */
steno_status steno_session_metrics_text(steno_session *s, const char *labels, char *buf, size_t len,
                                        size_t *needed);

/* The current state (cheap; any thread). */
steno_session_state steno_session_state_get(steno_session *s);

/*
 * The message of the last failing call on this session from the application
 * (e.g. which option configure rejected), or, once the session FAILED, what
 * happened and what to fix. "" when there is none. Valid until the next
 * call on the session from the application.
 */
const char *steno_session_errmsg(steno_session *s);

/*
 * Frees the session. If it is still open it is aborted (no drain; call
 * steno_session_close() first for an orderly end): the network thread
 * detaches and closes its connection before this returns, so it is safe
 * while connected. NULL is a no-op. Never call it from an event callback,
 * and make sure the capture thread no longer calls steno_session_write().
 */
void steno_session_destroy(steno_session *s);

#ifdef __cplusplus
}
#endif

#endif /* STENO_SESSION_H */
