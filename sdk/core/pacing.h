/* pacing: how fast audio may be sent (live and replay), so providers never see it too fast. */
#ifndef STENO_CORE_PACING_H
#define STENO_CORE_PACING_H

#include <stdbool.h>
#include <stdint.h>

#include "steno/status.h"

/*
 * A token bucket measured in audio frames (one frame = one sample per
 * channel). It refills at speed × real time (Deepgram accepts ≤ 1.25×) and
 * holds at most burst_ms of audio, so a replay after a reconnect can send a
 * short burst and then settles to the provider's rate; an idle sender never
 * accumulates more than the burst.
 *
 * Arithmetic is exact integers (credit in millionths of a frame, refill per
 * whole ms), so there is no drift: over any window [t0, t1] the frames sent
 * are at most burst + rate × speed × (t1 - t0) / 1000 (+ one oversized chunk,
 * see below).
 *
 * A chunk larger than the whole burst may still go once the bucket is full;
 * the credit then goes negative and later chunks wait it off, so the
 * long-run rate is unchanged and nothing ever blocks forever.
 */
typedef struct steno__pacing_config {
    uint32_t frame_rate;     /* frames per second of audio (the sample rate); > 0 */
    uint32_t speed_permille; /* allowed speed in thousandths of real time: 1250 = 1.25×; > 0 */
    uint32_t burst_ms;       /* bucket size in ms of audio; > 0; the bucket starts full */
} steno__pacing_config;

/* Defaults: speed 1250 (Deepgram's 1.25×), burst 2000 ms. */
#define STENO__PACING_DEFAULT_SPEED_PERMILLE 1250u
#define STENO__PACING_DEFAULT_BURST_MS 2000u

/* Fills cfg with the defaults above for audio at frame_rate. */
void steno__pacing_config_default(steno__pacing_config *cfg, uint32_t frame_rate);

/*
 * One connection's pacer. Embed by value; fields private to pacing.c. NOT
 * thread-safe: network thread only.
 */
typedef struct steno__pacing {
    steno__pacing_config cfg;
    int64_t credit;         /* millionths of a frame; may go negative (oversized chunk) */
    int64_t capacity;       /* burst in millionths of a frame */
    uint64_t refill_per_ms; /* millionths of a frame per ms = frame_rate × speed_permille */
    uint64_t last_ms;       /* time credit was last brought up to date */
    uint64_t waits;         /* times a chunk had to wait (counted once per chunk) */
    bool waiting;           /* the last allow() refused and nothing was sent since */
} steno__pacing;

/*
 * Bucket full at now_ms. STENO_ERR_INVALID_ARG for NULL pointers, a zero
 * field, or a config whose numbers would overflow (frame_rate × burst_ms
 * beyond about 9e12, speed above 1000×).
 */
int steno__pacing_init(steno__pacing *p, const steno__pacing_config *cfg, uint64_t now_ms);

/* Refill to a full burst at now_ms (a new connection starts a new budget). */
void steno__pacing_reset(steno__pacing *p, uint64_t now_ms);

/*
 * Milliseconds from now_ms until a chunk of `frames` may be sent (0 = now).
 * Does not change the pacer. Time going backwards counts as no time passing.
 */
uint64_t steno__pacing_wait_ms(const steno__pacing *p, uint64_t now_ms, uint32_t frames);

/*
 * Send a chunk of `frames` at now_ms if the pacer allows: true and the
 * credit is spent, or false and nothing changes except that the first
 * refusal for a chunk counts as one wait. frames 0 is always allowed.
 */
bool steno__pacing_allow(steno__pacing *p, uint64_t now_ms, uint32_t frames);

/* Chunks that had to wait at least once. */
uint64_t steno__pacing_waits(const steno__pacing *p);

#endif /* STENO_CORE_PACING_H */
