/* timeline: maps each connection's provider timestamps onto the one session timeline. */
#ifndef STENO_CORE_TIMELINE_H
#define STENO_CORE_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "steno/alloc.h"

/*
 * Session time is counted in frames (samples per channel) at the session's
 * sample rate, from the first frame the app wrote. A provider counts seconds
 * from the first audio it received on the current connection, so after a
 * reconnect (which replays from the first unacknowledged chunk) or a gap
 * (audio dropped or evicted from the ring) its clock and the session's differ.
 *
 * The timeline records, for the current connection, a table of segments:
 * provider frames [p, p + n) carry session frames [s, s + n). A segment is
 * added only at a discontinuity (the first chunk of a connection, or a chunk
 * that does not follow the previous one), so mapping stays exact by segments.
 *
 * It also keeps finalized_frame: session audio [0, finalized_frame) is
 * covered by final results already emitted. Results are filtered against it
 * so that no audio is finalized twice: a word whose mapped midpoint lies
 * before finalized_frame was already final (the replay after a reconnect
 * starts at a chunk boundary, usually a little before finalized_frame).
 *
 * Single-threaded: the network thread owns it. Memory is the preallocated
 * segment table; segments wholly before finalized_frame are discarded
 * when the table is full.
 */

typedef struct steno__timeline steno__timeline;

/* A word's times as the provider sent them: seconds on the current connection. */
typedef struct steno__word_time {
    double start, end;
} steno__word_time;

/* What to do with one provider result. */
typedef struct steno__mapped {
    int emit;             /* 0: everything in it was already final: suppress it entirely */
    uint64_t start_frame; /* session frames [start_frame, end_frame): start_frame >= the
                             finalized_frame before this result, end_frame >= start_frame */
    uint64_t end_frame;
    size_t first_word; /* words kept: [first_word, first_word + n_words); when first_word > 0 the
                          transcript must be rebuilt from the kept words */
    size_t n_words;
    uint64_t ack_frame; /* finals: pass to steno__ring_ack_through (== finalized_frame after it) */
} steno__mapped;

/* STENO_ERR_INVALID_ARG when out is NULL or sample_rate or max_segments is 0;
 * STENO_ERR_NOMEM when the allocator fails. A good max_segments is the ring
 * capacity + 1 (every chunk in the ring after a gap, plus the replay start). */
int steno__timeline_create(steno__timeline **out, const steno_allocator *a, uint32_t sample_rate,
                           uint32_t max_segments);
void steno__timeline_destroy(steno__timeline *t); /* NULL is a no-op */

/* A new connection: the provider clock restarts at 0; the segment table is
 * emptied, finalized_frame is kept. */
void steno__timeline_connection_begin(steno__timeline *t);

/* A new lane (a backfill connection taking another job, possibly an older
 * one): as connection_begin, and finalized_frame back to 0, no limit. */
void steno__timeline_reset(steno__timeline *t);

/*
 * Records a chunk sent on this connection (call it for each chunk, in send
 * order, before or right after sending it). Extends the last segment when
 * first_frame continues it; else opens a new one. STENO_ERR_INVALID_ARG when
 * first_frame is behind the audio already sent on this connection;
 * STENO_ERR_FULL when a new segment is needed and the table is full even
 * after discarding finalized segments: nothing is recorded, so do not send
 * this chunk now (retry after a final frees segments, or after a reconnect).
 */
int steno__timeline_on_sent(steno__timeline *t, uint64_t first_frame, uint32_t frames);

/*
 * The provider's clock advances by `frames` of silence that carry no session audio (a short
 * chunk padded up to the provider's minimum frame length, sent right after it). Provider
 * times inside them map to the session frame where the next audio begins. STENO_ERR_FULL as
 * for on_sent (nothing recorded).
 */
int steno__timeline_on_padding(steno__timeline *t, uint32_t frames);

/*
 * Provider time on the current connection -> session frame (rounded to the
 * nearest frame). Times before 0 map to the start of the connection's audio,
 * times past the audio sent so far clamp to its end; a time on a segment
 * boundary maps to the start of the later segment. Before any chunk was sent
 * on this connection every time maps to finalized_frame.
 */
uint64_t steno__timeline_to_session(const steno__timeline *t, double provider_seconds);

/*
 * A final result covering provider seconds [start, start + duration] with
 * n_words words (words may be NULL when n_words is 0). Leading words whose
 * mapped midpoint < finalized_frame are dropped as already final. emit is 0
 * when the result covers no audio after finalized_frame and keeps no word;
 * an empty transcript over new audio is emitted (with no words) and, like
 * any final, advances finalized_frame to the mapped end, so the ack point
 * moves on. STENO_ERR_INVALID_ARG on NULL arguments or non-finite times;
 * STENO_ERR_PARSE (nothing changes) when the result or a word lies outside
 * the audio sent on this connection by more than 0.25 s (before its start,
 * or past what was sent): a result for audio never sent must not
 * acknowledge the audio that was.
 */
int steno__timeline_final(steno__timeline *t, double start, double duration,
                          const steno__word_time *words, size_t n_words, steno__mapped *out);

/* The same filtering for an interim result, without advancing anything: an
 * interim never starts before the last final's end. ack_frame is the current
 * finalized_frame (nothing to acknowledge). */
int steno__timeline_interim(const steno__timeline *t, double start, double duration,
                            const steno__word_time *words, size_t n_words, steno__mapped *out);

/* A kept word's session frames, clamped into the result's [start_frame,
 * end_frame] so words stay monotonic and inside their result. Call it for
 * the result's words before the next steno__timeline_on_sent or
 * connection_begin (either may change the mapping). */
void steno__timeline_map_word(const steno__timeline *t, const steno__mapped *m,
                              const steno__word_time *w, uint64_t *start_frame,
                              uint64_t *end_frame);

uint64_t steno__timeline_finalized_frame(const steno__timeline *t);

/* Marks session audio [.., frame) as final on this lane without a result:
 * another connection covers it (the live lane after a backfill seam, or
 * audio that left the ring). finalized_frame never moves back. */
void steno__timeline_raise_finalized(steno__timeline *t, uint64_t frame);

/* This lane covers session audio only below `limit` (a backfill job's end,
 * where the live lane takes over): words whose mapped midpoint is at or after
 * it are dropped, result spans end at it, and a result wholly after it is not
 * emitted. UINT64_MAX (the default) means no limit. Survives
 * connection_begin. */
void steno__timeline_set_limit(steno__timeline *t, uint64_t limit);
/* Session frames sent on the current connection so far (the provider's clock, in frames). */
uint64_t steno__timeline_connection_frames(const steno__timeline *t);
/* frame / sample_rate: session seconds for events. */
double steno__timeline_seconds(const steno__timeline *t, uint64_t frame);

#endif
