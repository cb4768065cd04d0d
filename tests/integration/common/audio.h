/* audio: test audio for the integration tests — checksums, deterministic signals, WAV files, and
 * a capture thread that writes them into a session. */
#ifndef STENO_TESTS_COMMON_AUDIO_H
#define STENO_TESTS_COMMON_AUDIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steno/steno.h"

/* FNV-1a 64, as the null engine hashes each span's bytes: one-shot, and continued from h. */
#define H_FNV_INIT 0xcbf29ce484222325ull
uint64_t h_fnv1a64(const void *p, size_t n);
uint64_t h_fnv1a64_more(uint64_t h, const void *p, size_t n);

/* A deterministic, non-repeating test signal: sample i of stream `seed`. */
int16_t h_pattern_sample(uint32_t seed, uint64_t i);
/* Sample i of stream 0. */
int16_t h_sample(uint64_t i);
/* Fills out[0..n) with samples first..first+n of stream seed. */
void h_pattern(uint32_t seed, uint64_t first, size_t n, int16_t *out);
/* frames samples of stream seed from 0, malloc'ed; exits when out of memory. */
int16_t *h_pattern_alloc(uint32_t seed, size_t frames);
/* Loads a mono 16-bit WAV (libsndfile); exits on error. *pcm is malloc'ed. */
void h_wav_load(const char *path, int16_t **pcm, size_t *frames, uint32_t *rate);

/*
 * A capture thread: writes pcm[0..frames) into the session in pieces of piece_frames at
 * `speed` times real time (0 = as fast as possible), like an audio callback would. It stops
 * early when h_producer_stop() is called. The session must outlive the thread.
 */
typedef struct h_producer {
    steno_session *s;
    const int16_t *pcm;
    size_t frames, piece_frames;
    uint32_t rate;
    double speed;
    pthread_t th;
    int started;
    _Atomic size_t written; /* frames handed to steno_session_write so far */
    _Atomic int stop;
    _Atomic int done;
    _Atomic uint64_t full_returns; /* STENO_ERR_FULL results */
    _Atomic int bad_status;        /* first unexpected status, 0 if none */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} h_producer;
void h_producer_start(h_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                      uint32_t rate, size_t piece_frames, double speed);
/* Waits for the end (or a stop); returns the frames written. */
size_t h_producer_join(h_producer *p);
void h_producer_stop(h_producer *p);
/* Frames written so far. */
size_t h_producer_written(h_producer *p);
/* Waits until at least `frames` were written; false on timeout. */
bool h_producer_wait(h_producer *p, size_t frames, uint32_t timeout_ms);

#endif
