/* steno audio: microphone capture (PortAudio), file and stdin sources, resampling, levels. */
#ifndef STENO_AUDIO_H
#define STENO_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "steno/session.h"
#include "steno/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Everything here produces what a session takes: mono 16-bit PCM at the
 * session's sample rate. Audio at any other rate or channel count is mixed
 * down to mono (the average of the channels) and resampled with speexdsp's
 * resampler at quality 5 ("desktop"): its passband is flat to about 0.9 of
 * Nyquist with stopband rejection near 80 dB, well past what a recognizer
 * hears in 16-bit speech, at a fraction of the cost of the higher settings
 * (which only steepen the filter above 7 kHz at 16 kHz out). The resampler is
 * allocated at open and never allocates afterwards, so it runs inside the
 * capture callback.
 */

/* Resampler quality used when a config leaves it 0: speexdsp's "desktop" setting. */
#define STENO_RESAMPLE_QUALITY_DEFAULT 5

/* ---- audio levels ---- */

/* One level measurement over a window of audio (what a level meter shows). */
typedef struct steno_audio_level {
    float rms;             /* 0..1, root mean square of the window (full scale = 1) */
    float peak;            /* 0..1, largest absolute sample */
    float rms_dbfs;        /* 20 log10(rms), -120 for digital silence */
    float peak_dbfs;       /* 20 log10(peak), -120 for digital silence */
    uint64_t first_sample; /* the window's first frame on the session's timeline of written
                              audio (muted audio is not counted) */
    uint32_t frames;       /* frames in the window (0: nothing was captured in this period) */
    uint64_t overflows;    /* input overflows reported by the device so far */
    int muted;             /* 1 while the microphone is muted */
} steno_audio_level;

/* Level callback. Runs on the microphone's own level thread (never on the capture thread);
 * it may block briefly but should not: later levels wait for it. */
typedef void (*steno_level_fn)(void *user, const steno_audio_level *level);

/* ---- capture devices ---- */

typedef struct steno_audio_device {
    int index;              /* PortAudio device index, what steno_mic_config.device takes */
    char name[128];         /* the device's name */
    char host_api[32];      /* "ALSA", "JACK", ... */
    int max_input_channels; /* 0: playback only */
    int max_output_channels;
    double default_sample_rate; /* Hz */
    int is_default_input;       /* 1 for the default input device */
} steno_audio_device;

/*
 * Lists the audio devices PortAudio sees (inputs and outputs) into out[0..cap),
 * and the total count into *n (which may exceed cap). STENO_ERR_UNSUPPORTED
 * with a message when the audio system cannot be initialised.
 */
steno_status steno_audio_devices(steno_audio_device *out, size_t cap, size_t *n, char *err,
                                 size_t errlen);

/* ---- microphone ---- */

typedef struct steno_mic steno_mic;

typedef struct steno_mic_config {
    /* Which input: NULL or "" = the default input device; a decimal index
     * (see steno_audio_devices); or a name: an exact match first, else the
     * one input device whose name contains it. No match, an ambiguous name
     * or a device without inputs is STENO_ERR_CONFIG naming the choices. */
    const char *device;
    /* Capture format [0: the device's default rate; min(2, the device's
     * input channels)]. Captured audio is mixed to mono and resampled to
     * session_rate. */
    uint32_t sample_rate;
    uint32_t channels;
    /* The session's rate [16000]: must equal the session's sample_rate, and
     * the session must be mono (channels = 1). */
    uint32_t session_rate;
    /* Device buffer, in frames [0: 10 ms at the capture rate]. */
    uint32_t frames_per_buffer;
    /* speexdsp quality 1..10 [0: STENO_RESAMPLE_QUALITY_DEFAULT]. */
    int resample_quality;
    /* Level events: on_level is called every level_ms [50] (10..1000) with
     * the level of the audio captured in that period. NULL: none, and no
     * level thread is started. */
    steno_level_fn on_level;
    void *level_user;
    uint32_t level_ms;
} steno_mic_config;

void steno_mic_config_init(steno_mic_config *cfg);

/*
 * Opens an input device and prepares the capture path (device stream,
 * resampler, level buffer: everything is allocated here). Capture starts
 * with steno_mic_start(). Audio goes to `session` (may be NULL: levels
 * only); the session must outlive the microphone. Errors:
 * STENO_ERR_CONFIG (no such device, ambiguous name, bad field),
 * STENO_ERR_FORMAT (the device refuses the format), STENO_ERR_UNSUPPORTED
 * (no audio system), STENO_ERR_NOMEM; err says which and what to do.
 *
 * The capture thread is PortAudio's callback. It does not allocate, lock,
 * print or block: it mixes down, resamples, calls steno_session_write()
 * (wait-free) and copies the audio for the level thread into a
 * preallocated single-producer ring.
 */
steno_status steno_mic_open(const steno_mic_config *cfg, steno_session *session, steno_mic **out,
                            char *err, size_t errlen);

/* Sets the session the audio goes to (NULL: none), e.g. when the device was
 * opened first to fail fast on a bad one. Only while stopped: STENO_ERR_STATE
 * while capturing. */
steno_status steno_mic_attach(steno_mic *m, steno_session *session);

/* Starts / stops capture (stop waits until the callback has returned for good,
 * so the session may then be finalized or closed from the caller's thread). */
steno_status steno_mic_start(steno_mic *m);
steno_status steno_mic_stop(steno_mic *m);

/*
 * Mute: while muted the device keeps capturing but no audio is written to
 * the session (the session then sends the provider KeepAlive messages, so
 * the connection stays up) and none is counted on its timeline. When
 * steno_mic_set_muted(m, 1) returns, the callback is not inside
 * steno_session_write() and will not enter it again until unmuted, so the
 * caller may steno_session_finalize() at once. Any thread.
 */
steno_status steno_mic_set_muted(steno_mic *m, int muted);
int steno_mic_muted(const steno_mic *m);

typedef struct steno_mic_stats {
    uint32_t sample_rate; /* capture format actually opened */
    uint32_t channels;
    uint64_t callbacks;       /* capture callbacks run */
    uint64_t frames_captured; /* device frames received, muted ones included */
    uint64_t frames_muted;    /* device frames discarded while muted */
    uint64_t frames_written;  /* frames written to the session (session rate, mono) */
    uint64_t input_overflows; /* callbacks whose input had overflowed: audio the device lost
                                 because the callback ran late */
    uint64_t ring_full;       /* writes that found the session's ring full (the session
                                 reports the exact range in AUDIO_DROPPED) */
    uint64_t level_dropped;   /* frames the level thread missed (it ran late; levels only) */
} steno_mic_stats;

steno_status steno_mic_stats_get(const steno_mic *m, steno_mic_stats *out);

/* The opened device's name (valid until close). */
const char *steno_mic_device_name(const steno_mic *m);

/* Stops capture and frees everything; the session is left open. NULL is a no-op. */
void steno_mic_close(steno_mic *m);

/* ---- file and stream sources ---- */

typedef struct steno_source steno_source;

typedef struct steno_source_info {
    uint32_t sample_rate; /* the source's own rate and channels */
    uint32_t channels;
    uint64_t frames; /* length in the source's frames, 0 when unknown (a stream) */
    char format[96]; /* e.g. "FLAC (Free Lossless Audio Codec), Signed 16 bit PCM" */
} steno_source_info;

/*
 * Opens anything libsndfile reads (WAV, FLAC, Ogg/Vorbis, Opus, MP3 when
 * the system's libsndfile has it, AIFF, ...) for reading as mono at out_rate.
 * Errors: STENO_ERR_INVALID_ARG (cannot open: missing, unreadable),
 * STENO_ERR_FORMAT (not audio, or a format libsndfile cannot decode), with
 * the path and libsndfile's reason in err.
 */
steno_status steno_source_open_file(const char *path, uint32_t out_rate, steno_source **out,
                                    char *err, size_t errlen);

/* Raw signed 16-bit little-endian PCM, interleaved, read from fd (e.g. 0 for
 * stdin) at in_rate (8000..192000) with in_channels (1..64). */
steno_status steno_source_open_raw(int fd, uint32_t in_rate, uint32_t in_channels,
                                   uint32_t out_rate, steno_source **out, char *err, size_t errlen);

void steno_source_info_get(const steno_source *src, steno_source_info *out);

/*
 * Reads up to max_frames mono frames at out_rate into out; *got = 0 at the
 * end (the resampler's tail included). STENO_ERR_FORMAT on a decoding
 * error, STENO_ERR_INVALID_ARG on a read error.
 */
steno_status steno_source_read(steno_source *src, int16_t *out, size_t max_frames, size_t *got);

/* feed pacing: STENO_FEED_REAL_TIME writes at the audio's own pace (like a
 * microphone); STENO_FEED_AS_ACCEPTED writes as fast as the provider
 * accepts: it stays at most max_ahead_ms ahead of what the session has sent
 * (the session sends at the provider's pace, Deepgram 1.25x real time),
 * holds while the session is (re)connecting, and keeps the audio awaiting a
 * final under max_unacked_ms, so a file never overflows the ring, even
 * through an outage or a recognizer that lags. When all of it was sent and
 * no final came for a second, it asks the provider to finalize
 * (steno_session_finalize). */
#define STENO_FEED_REAL_TIME 1.0
#define STENO_FEED_AS_ACCEPTED 0.0

typedef struct steno_feed_config {
    double speed;            /* multiple of real time (0 < speed <= 100), or
                                STENO_FEED_AS_ACCEPTED [STENO_FEED_REAL_TIME] */
    uint32_t block_ms;       /* audio per write [20] (1..1000) */
    uint32_t max_ahead_ms;   /* STENO_FEED_AS_ACCEPTED only: audio written but not yet sent
                                [1000] */
    uint32_t max_unacked_ms; /* STENO_FEED_AS_ACCEPTED only: audio written but not yet
                                covered by a final [8000]; keep it under the session's
                                ring_chunks * chunk_ms (10 s by default) */
    /* Called after every block with the frames written so far (out_rate);
     * return nonzero to stop feeding early (e.g. on Ctrl-C). */
    int (*on_block)(void *user, uint64_t frames_written);
    void *user;
} steno_feed_config;

void steno_feed_config_init(steno_feed_config *cfg);

/*
 * Reads src to its end and writes it to session, paced as configured, on the
 * calling thread (which becomes the session's capture thread). *written
 * (may be NULL) gets the frames written. Returns STENO_OK at the end of the
 * source or when on_block asked to stop, STENO_ERR_STATE when the session
 * ended (FAILED) and refused audio, or the source's read error.
 */
steno_status steno_source_feed(steno_source *src, steno_session *session,
                               const steno_feed_config *cfg, uint64_t *written);

void steno_source_close(steno_source *src);

#ifdef __cplusplus
}
#endif

#endif /* STENO_AUDIO_H */
