/* ring: SPSC chunk ring carrying PCM from the capture thread to the network thread. */
#ifndef STENO_CORE_RING_H
#define STENO_CORE_RING_H

#include <stddef.h>
#include <stdint.h>

#include "steno/alloc.h"

/*
 * Audio is cut into chunks of chunk_frames frames (a frame is one sample of
 * every channel, frame_bytes long). Chunks carry free-running 64-bit
 * sequence numbers and three cursors order them:
 *
 *     acked <= sent <= written
 *
 *   [acked, written)  chunks held in the ring (at most `capacity`)
 *   [acked, sent)     sent on the current connection, not yet final
 *   [sent, written)   waiting to be sent
 *
 * Threads: exactly one producer (the capture thread: steno__ring_write,
 * steno__ring_flush, steno__ring_drop_held) and one consumer (the network
 * thread: every function in the consumer section below). The producer moves
 * only `written` (and the open chunk it is filling); the consumer moves
 * `sent` and `acked`, including when it evicts. steno__ring_frames_in,
 * steno__ring_stats_get and the size getters may be called from any thread.
 * If the producer role moves to another thread (e.g. a final flush at close
 * done elsewhere), the hand-over needs its own happens-before (a join, a
 * mutex or a release/acquire pair): the ring does not provide it.
 *
 * Memory: everything is allocated by steno__ring_create in one allocation:
 * capacity + 1 chunk slots (the extra slot is the producer's open chunk, so
 * the producer can keep filling while the consumer holds `capacity` chunks).
 *
 * Audio is never lost silently. Frames leave the ring in exactly one of
 * three ways, each accounted for:
 *   - acknowledged by steno__ring_ack_through (covered by a final result);
 *   - evicted by the consumer (steno__ring_evict reports the exact range);
 *   - dropped by the producer because the ring was full when a chunk had to
 *     be published (steno__ring_take_dropped reports the ranges, the stats
 *     count every frame).
 * Chunk first_frame values therefore increase but may jump over a range the
 * producer dropped.
 */

typedef struct steno__ring steno__ring;

/* A published chunk, as seen by the consumer. data stays valid until the
 * chunk is acknowledged or evicted (acked moves past seq); the consumer must
 * finish using it before that, as the producer then reuses the slot. */
typedef struct steno__chunk {
    uint64_t seq;
    uint64_t first_frame; /* stream frame index of the chunk's first frame */
    uint32_t frames;      /* <= chunk_frames; fewer only for a flushed chunk */
    uint32_t bytes;       /* frames * frame_bytes */
    const uint8_t *data;
} steno__chunk;

/* An inclusive range of stream frames. */
typedef struct steno__range {
    uint64_t first_frame;
    uint64_t last_frame; /* inclusive */
    /* Frames actually lost inside [first_frame, last_frame]. Equal to
     * last_frame - first_frame + 1 except in the one documented overflow case
     * of steno__ring_take_dropped. */
    uint64_t frames;
} steno__range;

/* Counters. Each value is individually coherent; the set is not a snapshot. */
typedef struct steno__ring_stats {
    uint64_t frames_in;          /* every frame ever written, dropped ones included */
    uint64_t chunks_published;   /* chunks that entered the ring */
    uint64_t frames_dropped;     /* producer side: frames of chunks dropped on a full ring */
    uint64_t chunks_dropped;     /* producer side */
    uint64_t drop_ranges_merged; /* producer side: non-adjacent drop ranges coalesced because
                                    the range queue was full (see steno__ring_take_dropped) */
    uint64_t frames_evicted;     /* consumer side, steno__ring_evict */
    uint64_t chunks_evicted;
    uint64_t frames_acked; /* consumer side, steno__ring_ack_through */
    uint64_t chunks_acked;
} steno__ring_stats;

/* Producer-side drop ranges waiting for the consumer: a small fixed queue. */
#define STENO__RING_DROP_QUEUE 64u

/*
 * Creates a ring of `capacity` chunks (the session default is 100) of
 * chunk_frames frames of frame_bytes bytes. STENO_ERR_INVALID_ARG when out is
 * NULL, any size is 0, capacity is UINT32_MAX, or chunk_frames * frame_bytes
 * or the whole allocation overflows; STENO_ERR_NOMEM when the allocator fails
 * (nothing is left allocated). `a` may be NULL (malloc/free); it is copied.
 */
int steno__ring_create(steno__ring **out, const steno_allocator *a, uint32_t capacity,
                       uint32_t chunk_frames, uint32_t frame_bytes);
/* NULL is a no-op. No thread may be using the ring. */
void steno__ring_destroy(steno__ring *r);

uint32_t steno__ring_capacity(const steno__ring *r);
uint32_t steno__ring_chunk_frames(const steno__ring *r);
uint32_t steno__ring_frame_bytes(const steno__ring *r);

/* ---- producer (capture thread) only: wait-free, no lock, no malloc, no syscall ---- */

/*
 * Appends nbytes of interleaved PCM. nbytes must be a whole number of frames
 * (else STENO_ERR_FORMAT and nothing is written); pcm may be NULL only when
 * nbytes is 0. Fills the open chunk and publishes each chunk that becomes
 * full. A chunk that must be published while the ring already holds
 * `capacity` chunks is dropped instead: its frames are counted and its exact
 * range queued for steno__ring_take_dropped. Returns STENO_OK, or
 * STENO_ERR_FULL when this call dropped anything (the rest was still taken).
 */
int steno__ring_write(steno__ring *r, const void *pcm, size_t nbytes);

/* Publishes the open chunk even though it is not full (on finalize/close).
 * STENO_OK (also when there was nothing to publish) or STENO_ERR_FULL when
 * the ring was full and the partial chunk was dropped (and reported). */
int steno__ring_flush(steno__ring *r);

/* 1 while the producer still holds a drop range back because the drop queue
 * was full (the next write or flush queues it once the consumer made room);
 * a producer that stops writing flushes until this is 0. */
int steno__ring_drop_held(const steno__ring *r);

/* The producer's stream clock: frames ever written, dropped ones included.
 * Any thread (relaxed: another thread may see a slightly older value). */
uint64_t steno__ring_frames_in(const steno__ring *r);

/* ---- consumer (network thread) only ---- */

uint64_t steno__ring_written(const steno__ring *r); /* acquire: chunks [.., written) readable */
uint64_t steno__ring_sent(const steno__ring *r);
uint64_t steno__ring_acked(const steno__ring *r);

/* The chunk with sequence number seq, when acked <= seq < written; else
 * STENO_ERR_AGAIN. STENO_ERR_INVALID_ARG for NULL arguments. */
int steno__ring_peek(const steno__ring *r, uint64_t seq, steno__chunk *out);
/* peek(sent): the next chunk to send, or STENO_ERR_AGAIN when all are sent. */
int steno__ring_next_to_send(const steno__ring *r, steno__chunk *out);
/* sent = seq + 1, when acked <= seq < written (else ignored). Normally seq == sent. */
void steno__ring_mark_sent(steno__ring *r, uint64_t seq);

/*
 * A final result made the stream final through `frame` (exclusive: frames
 * [.., frame) are final). Releases, oldest first, every chunk whose end
 * (first_frame + frames) <= frame; a chunk only partly covered stays (it is
 * replayed after a reconnect). acked never moves backwards; sent is raised to
 * acked if it was behind. Returns the number of chunks released.
 */
uint32_t steno__ring_ack_through(steno__ring *r, uint64_t frame);

/* sent = acked: after a reconnect, replay every unacknowledged chunk in order. */
void steno__ring_rewind(steno__ring *r);

/*
 * Consumer-side drop-oldest, for an outage: when fewer than min_free slots
 * are free (capacity - (written - acked) < min_free), evicts the oldest
 * chunks until min_free are free (min_free is capped at capacity), raising
 * sent to acked if needed, and reports the exact frame range lost in *lost.
 * One call reports one contiguous range, so it stops early at a frame gap
 * left by a producer drop (that gap was reported by take_dropped): call again
 * while it returns STENO_OK. STENO_ERR_AGAIN when nothing was evicted.
 */
int steno__ring_evict(steno__ring *r, uint32_t min_free, steno__range *lost);

/*
 * Pops the oldest producer-side drop range, merging queued ranges that are
 * adjacent, so one long drop run comes out as one range. STENO_ERR_AGAIN when
 * none is queued.
 *
 * Overflow: the queue holds STENO__RING_DROP_QUEUE ranges. While it is full
 * the producer keeps one more range of its own and extends it with each
 * further drop. If a drop is not adjacent to it (some chunk got into the ring
 * in between) the producer still extends it, so that range's first_frame and
 * last_frame stay exact (first and last frame dropped) but it spans audio
 * that was not lost: then `frames` (exact count of frames dropped) is less
 * than the span and stats.drop_ranges_merged counts it. Accounting always
 * closes through `frames` and stats.frames_dropped. A consumer that drains
 * this queue on every wake never sees it.
 */
int steno__ring_take_dropped(steno__ring *r, steno__range *out);

/* ---- any thread ---- */
void steno__ring_stats_get(const steno__ring *r, steno__ring_stats *out);

#endif
