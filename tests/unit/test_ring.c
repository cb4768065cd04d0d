/* test_ring: edge cases of the SPSC chunk ring, driven from one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"
#include "steno/status.h"

/* Frames are 4 bytes holding their own stream index, so content is checkable. */
#define FB 4u

static uint32_t pattern_buf[1 << 16];

/* Writes n frames carrying indexes first..first+n-1. */
static int write_frames(steno__ring *r, uint64_t first, size_t n)
{
    assert_true(n <= sizeof(pattern_buf) / sizeof(pattern_buf[0]));
    for (size_t i = 0; i < n; i++)
        pattern_buf[i] = (uint32_t)(first + i);
    return steno__ring_write(r, pattern_buf, n * FB);
}

/* The chunk's bytes are exactly the frames first_frame.. in order. */
static void assert_chunk_content(const steno__chunk *c)
{
    assert_int_equal(c->bytes, c->frames * FB);
    for (uint32_t i = 0; i < c->frames; i++) {
        uint32_t v;
        memcpy(&v, c->data + (size_t)i * FB, FB);
        assert_int_equal(v, (uint32_t)(c->first_frame + i));
    }
}

static steno__ring *mk(uint32_t cap, uint32_t chunk_frames)
{
    steno__ring *r = NULL;
    assert_int_equal(steno__ring_create(&r, NULL, cap, chunk_frames, FB), STENO_OK);
    assert_non_null(r);
    return r;
}

/* ---- create ---- */

static void test_create_validates_sizes(void **state)
{
    static const struct {
        uint32_t cap, chunk_frames, frame_bytes;
        int want;
    } cases[] = {
        {0, 160, 2, STENO_ERR_INVALID_ARG},
        {100, 0, 2, STENO_ERR_INVALID_ARG},
        {100, 160, 0, STENO_ERR_INVALID_ARG},
        {UINT32_MAX, 1, 1, STENO_ERR_INVALID_ARG},             /* capacity + 1 overflows */
        {1, UINT32_MAX, 2, STENO_ERR_INVALID_ARG},             /* chunk bytes overflow 32 bits */
        {1, 65536, 65536, STENO_ERR_INVALID_ARG},              /* chunk bytes == 2^32 */
        {UINT32_MAX - 1, 65535, 65537, STENO_ERR_INVALID_ARG}, /* total overflows size_t */
        {1, 1, 1, STENO_OK},
        {100, 1600, 2, STENO_OK},
        {3, 7, 6, STENO_OK},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        steno__ring *r = (steno__ring *)&cases; /* must be reset to NULL on failure */
        int rc =
            steno__ring_create(&r, NULL, cases[i].cap, cases[i].chunk_frames, cases[i].frame_bytes);
        assert_int_equal(rc, cases[i].want);
        if (rc == STENO_OK) {
            assert_non_null(r);
            assert_int_equal(steno__ring_capacity(r), cases[i].cap);
            assert_int_equal(steno__ring_chunk_frames(r), cases[i].chunk_frames);
            assert_int_equal(steno__ring_frame_bytes(r), cases[i].frame_bytes);
            assert_int_equal(steno__ring_written(r), 0);
            assert_int_equal(steno__ring_sent(r), 0);
            assert_int_equal(steno__ring_acked(r), 0);
        } else {
            assert_null(r);
        }
        steno__ring_destroy(r);
    }
    assert_int_equal(steno__ring_create(NULL, NULL, 1, 1, 1), STENO_ERR_INVALID_ARG);
    steno__ring_destroy(NULL);
}

/* ---- allocator ---- */

struct counting {
    int allocs, frees, fail_after; /* fail_after < 0: never fail */
    size_t last_size;
};

static void *c_alloc(void *opaque, size_t size)
{
    struct counting *c = opaque;
    if (c->fail_after >= 0 && c->allocs >= c->fail_after)
        return NULL;
    c->allocs++;
    c->last_size = size;
    return malloc(size);
}

static void c_free(void *opaque, void *p)
{
    struct counting *c = opaque;
    c->frees++;
    free(p);
}

static void test_allocator_hook_used_and_failure_leaks_nothing(void **state)
{
    (void)state;
    struct counting c = {.fail_after = -1};
    steno_allocator a = {c_alloc, c_free, &c};
    steno__ring *r = NULL;
    assert_int_equal(steno__ring_create(&r, &a, 10, 160, 2), STENO_OK);
    assert_true(c.allocs >= 1);
    /* all audio memory is there from the start: (capacity + 1) chunks at least */
    assert_true(c.last_size >= 11u * 160u * 2u);
    int allocs_after_create = c.allocs;
    /* writing, publishing, dropping, evicting allocate nothing */
    uint8_t pcm[160 * 2 * 3] = {0};
    for (int i = 0; i < 20; i++)
        (void)steno__ring_write(r, pcm, sizeof(pcm));
    steno__range lost;
    while (steno__ring_evict(r, 5, &lost) == STENO_OK) {
    }
    while (steno__ring_take_dropped(r, &lost) == STENO_OK) {
    }
    assert_int_equal(c.allocs, allocs_after_create);
    steno__ring_destroy(r);
    assert_int_equal(c.frees, c.allocs);

    for (int fail_after = 0; fail_after < allocs_after_create; fail_after++) {
        struct counting f = {.fail_after = fail_after};
        steno_allocator fa = {c_alloc, c_free, &f};
        r = (steno__ring *)&f;
        assert_int_equal(steno__ring_create(&r, &fa, 10, 160, 2), STENO_ERR_NOMEM);
        assert_null(r);
        assert_int_equal(f.frees, f.allocs);
    }
}

/* ---- producer ---- */

static void test_write_rejects_partial_frames(void **state)
{
    (void)state;
    steno__ring *r = mk(4, 8);
    uint8_t buf[64] = {0};
    static const size_t bad[] = {1, 2, 3, 5, 6, 7, 33, 63};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(steno__ring_write(r, buf, bad[i]), STENO_ERR_FORMAT);
        assert_int_equal(steno__ring_frames_in(r), 0);
    }
    assert_int_equal(steno__ring_write(r, NULL, 4), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__ring_write(r, NULL, 0), STENO_OK);
    assert_int_equal(steno__ring_write(NULL, buf, 4), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__ring_frames_in(r), 0);
    assert_int_equal(steno__ring_flush(r), STENO_OK);
    assert_int_equal(steno__ring_written(r), 0);
    /* a rejected write leaves no half frame behind: the next frames line up */
    assert_int_equal(write_frames(r, 0, 8), STENO_OK);
    steno__chunk c;
    assert_int_equal(steno__ring_peek(r, 0, &c), STENO_OK);
    assert_int_equal(c.first_frame, 0);
    assert_chunk_content(&c);
    steno__ring_destroy(r);
}

static void test_chunks_cut_at_boundaries_across_odd_writes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 3, 5, 11, 2, 7, 13, 1, 1, 29, 6, 0, 4, 17};
    const uint32_t cf = 7;
    steno__ring *r = mk(64, cf);
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(write_frames(r, total, sizes[i]), STENO_OK);
        total += sizes[i];
        assert_int_equal(steno__ring_frames_in(r), total);
        /* a chunk is published exactly when it is full */
        assert_int_equal(steno__ring_written(r), total / cf);
    }
    for (uint64_t seq = 0; seq < total / cf; seq++) {
        steno__chunk c;
        assert_int_equal(steno__ring_peek(r, seq, &c), STENO_OK);
        assert_int_equal(c.seq, seq);
        assert_int_equal(c.first_frame, seq * cf);
        assert_int_equal(c.frames, cf);
        assert_chunk_content(&c);
    }
    steno__ring_destroy(r);
}

static void test_flush_publishes_partial_chunk(void **state)
{
    (void)state;
    steno__ring *r = mk(4, 16);
    steno__chunk c;
    assert_int_equal(write_frames(r, 0, 10), STENO_OK);
    assert_int_equal(steno__ring_written(r), 0);
    assert_int_equal(steno__ring_peek(r, 0, &c), STENO_ERR_AGAIN);
    assert_int_equal(steno__ring_flush(r), STENO_OK);
    assert_int_equal(steno__ring_written(r), 1);
    assert_int_equal(steno__ring_peek(r, 0, &c), STENO_OK);
    assert_int_equal(c.first_frame, 0);
    assert_int_equal(c.frames, 10);
    assert_int_equal(c.bytes, 40);
    assert_chunk_content(&c);
    /* nothing open: flush is a no-op */
    assert_int_equal(steno__ring_flush(r), STENO_OK);
    assert_int_equal(steno__ring_written(r), 1);
    /* the next chunk starts right after the flushed one */
    assert_int_equal(write_frames(r, 10, 16), STENO_OK);
    assert_int_equal(steno__ring_peek(r, 1, &c), STENO_OK);
    assert_int_equal(c.first_frame, 10);
    assert_int_equal(c.frames, 16);
    assert_chunk_content(&c);
    assert_int_equal(steno__ring_flush(NULL), STENO_ERR_INVALID_ARG);
    steno__ring_destroy(r);
}

static void test_flush_on_full_ring_drops_and_reports(void **state)
{
    (void)state;
    steno__ring *r = mk(1, 8);
    assert_int_equal(write_frames(r, 0, 11), STENO_OK); /* chunk 0 in, 3 frames open */
    assert_int_equal(steno__ring_flush(r), STENO_ERR_FULL);
    steno__range d;
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
    assert_int_equal(d.first_frame, 8);
    assert_int_equal(d.last_frame, 10);
    assert_int_equal(d.frames, 3);
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_ERR_AGAIN);
    steno__ring_destroy(r);
}

/* ---- consumer ---- */

static void test_peek_only_inside_acked_written(void **state)
{
    (void)state;
    steno__ring *r = mk(8, 4);
    steno__chunk c;
    assert_int_equal(write_frames(r, 0, 16), STENO_OK); /* 4 chunks */
    assert_int_equal(steno__ring_ack_through(r, 8), 2);
    static const struct {
        uint64_t seq;
        int want;
    } cases[] = {{0, STENO_ERR_AGAIN}, {1, STENO_ERR_AGAIN}, {2, STENO_OK},
                 {3, STENO_OK},        {4, STENO_ERR_AGAIN}, {UINT64_MAX, STENO_ERR_AGAIN}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(steno__ring_peek(r, cases[i].seq, &c), cases[i].want);
    assert_int_equal(steno__ring_peek(r, 2, NULL), STENO_ERR_INVALID_ARG);
    /* mark_sent outside [acked, written) is ignored */
    steno__ring_mark_sent(r, 7);
    assert_int_equal(steno__ring_sent(r), 2);
    steno__ring_mark_sent(r, 1);
    assert_int_equal(steno__ring_sent(r), 2);
    steno__ring_mark_sent(r, 3);
    assert_int_equal(steno__ring_sent(r), 4);
    assert_int_equal(steno__ring_next_to_send(r, &c), STENO_ERR_AGAIN);
    steno__ring_destroy(r);
}

static void test_ack_releases_only_fully_covered_chunks(void **state)
{
    (void)state;
    steno__ring *r = mk(8, 10);
    assert_int_equal(write_frames(r, 0, 50), STENO_OK); /* chunks [0,10) .. [40,50) */
    steno__ring_mark_sent(r, 0);
    static const struct {
        uint64_t frame;
        uint32_t released;
        uint64_t acked;
    } steps[] = {
        {0, 0, 0},  {9, 0, 0},   /* chunk 0 only partly final */
        {10, 1, 1},              /* its end reached: released */
        {10, 0, 1}, {19, 0, 1},  /* repeat and partial: nothing */
        {25, 1, 2}, {5, 0, 2},   /* never backwards */
        {45, 2, 4}, {1000, 1, 5} /* past the end: everything written */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(steno__ring_ack_through(r, steps[i].frame), steps[i].released);
        assert_int_equal(steno__ring_acked(r), steps[i].acked);
        /* sent is clamped up to acked, never left behind it */
        assert_true(steno__ring_sent(r) >= steno__ring_acked(r));
    }
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    assert_int_equal(st.chunks_acked, 5);
    assert_int_equal(st.frames_acked, 50);
    steno__ring_destroy(r);
}

static void test_rewind_replays_in_order_from_acked(void **state)
{
    (void)state;
    steno__ring *r = mk(8, 5);
    steno__chunk c;
    assert_int_equal(write_frames(r, 0, 30), STENO_OK); /* 6 chunks */
    for (uint64_t s = 0; s < 5; s++) {
        assert_int_equal(steno__ring_next_to_send(r, &c), STENO_OK);
        assert_int_equal(c.seq, s);
        steno__ring_mark_sent(r, c.seq);
    }
    assert_int_equal(steno__ring_sent(r), 5);
    assert_int_equal(steno__ring_ack_through(r, 12), 2); /* chunk 2 = [10,15) only partly */
    steno__ring_rewind(r);
    assert_int_equal(steno__ring_sent(r), 2);
    for (uint64_t s = 2; s < 6; s++) {
        assert_int_equal(steno__ring_next_to_send(r, &c), STENO_OK);
        assert_int_equal(c.seq, s);
        assert_int_equal(c.first_frame, s * 5);
        assert_chunk_content(&c);
        steno__ring_mark_sent(r, c.seq);
    }
    assert_int_equal(steno__ring_next_to_send(r, &c), STENO_ERR_AGAIN);
    steno__ring_destroy(r);
}

static void test_evict_reports_exact_ranges(void **state)
{
    (void)state;
    steno__ring *r = mk(4, 10);
    steno__range lost;
    assert_int_equal(write_frames(r, 0, 40), STENO_OK); /* full: 4 chunks, 0 free */
    steno__ring_mark_sent(r, 0);
    steno__ring_mark_sent(r, 1);
    static const struct {
        uint32_t min_free;
        int rc;
        uint64_t first, last, acked;
    } steps[] = {
        {0, STENO_ERR_AGAIN, 0, 0, 0},  {1, STENO_OK, 0, 9, 1}, /* one slot: the oldest chunk */
        {1, STENO_ERR_AGAIN, 0, 0, 1},                          /* already one free */
        {3, STENO_OK, 10, 29, 3},                               /* two more, one contiguous range */
        {99, STENO_OK, 30, 39, 4},                              /* capped at capacity */
        {99, STENO_ERR_AGAIN, 0, 0, 4},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(steno__ring_evict(r, steps[i].min_free, &lost), steps[i].rc);
        if (steps[i].rc == STENO_OK) {
            assert_int_equal(lost.first_frame, steps[i].first);
            assert_int_equal(lost.last_frame, steps[i].last);
            assert_int_equal(lost.frames, steps[i].last - steps[i].first + 1);
        }
        assert_int_equal(steno__ring_acked(r), steps[i].acked);
        assert_true(steno__ring_sent(r) >= steno__ring_acked(r));
    }
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    assert_int_equal(st.chunks_evicted, 4);
    assert_int_equal(st.frames_evicted, 40);
    assert_int_equal(steno__ring_evict(r, 1, NULL), STENO_ERR_INVALID_ARG);
    steno__ring_destroy(r);
}

static void test_evict_stops_at_producer_gap(void **state)
{
    (void)state;
    steno__ring *r = mk(3, 10);
    steno__range lost, d;
    assert_int_equal(write_frames(r, 0, 30), STENO_OK);        /* [0,30) in: full */
    assert_int_equal(write_frames(r, 30, 10), STENO_ERR_FULL); /* [30,40) dropped */
    assert_int_equal(steno__ring_ack_through(r, 10), 1);
    assert_int_equal(write_frames(r, 40, 10), STENO_OK); /* [40,50) in, after a gap */
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
    assert_int_equal(d.first_frame, 30);
    assert_int_equal(d.last_frame, 39);
    /* ring holds [10,20) [20,30) [40,50); evicting all of it takes two ranges */
    assert_int_equal(steno__ring_evict(r, 3, &lost), STENO_OK);
    assert_int_equal(lost.first_frame, 10);
    assert_int_equal(lost.last_frame, 29);
    assert_int_equal(lost.frames, 20);
    assert_int_equal(steno__ring_evict(r, 3, &lost), STENO_OK);
    assert_int_equal(lost.first_frame, 40);
    assert_int_equal(lost.last_frame, 49);
    assert_int_equal(steno__ring_evict(r, 3, &lost), STENO_ERR_AGAIN);
    steno__ring_destroy(r);
}

static void test_producer_full_drops_new_chunk_and_reports_exact_range(void **state)
{
    (void)state;
    steno__ring *r = mk(2, 4);
    steno__range d;
    steno__chunk c;
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_ERR_AGAIN);
    /* five chunks in one write: two fit, three are dropped (the newest) */
    assert_int_equal(write_frames(r, 0, 21), STENO_ERR_FULL);
    assert_int_equal(steno__ring_written(r), 2);
    assert_int_equal(steno__ring_frames_in(r), 21);
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
    assert_int_equal(d.first_frame, 8);
    assert_int_equal(d.last_frame, 19);
    assert_int_equal(d.frames, 12);
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_ERR_AGAIN);
    /* the ring kept the oldest chunks intact */
    assert_int_equal(steno__ring_peek(r, 1, &c), STENO_OK);
    assert_int_equal(c.first_frame, 4);
    assert_chunk_content(&c);

    /* a run spanning several writes comes out as one range */
    assert_int_equal(write_frames(r, 21, 3), STENO_ERR_FULL); /* [20,24) dropped */
    assert_int_equal(write_frames(r, 24, 4), STENO_ERR_FULL); /* [24,28) dropped */
    assert_int_equal(write_frames(r, 28, 2), STENO_OK);       /* open only */
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
    assert_int_equal(d.first_frame, 20);
    assert_int_equal(d.last_frame, 27);
    assert_int_equal(d.frames, 8);

    /* room again: the next chunk is published after the gap */
    assert_int_equal(steno__ring_ack_through(r, 8), 2);
    assert_int_equal(write_frames(r, 30, 2), STENO_OK);
    assert_int_equal(steno__ring_peek(r, 2, &c), STENO_OK);
    assert_int_equal(c.first_frame, 28);
    assert_int_equal(c.frames, 4);
    assert_chunk_content(&c);

    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    assert_int_equal(st.frames_in, 32);
    assert_int_equal(st.frames_dropped, 20);
    assert_int_equal(st.chunks_dropped, 5);
    assert_int_equal(st.chunks_published, 3);
    assert_int_equal(st.drop_ranges_merged, 0);
    /* accounting closes: acked + in ring + dropped + open == frames in */
    assert_int_equal(st.frames_acked + 4 + st.frames_dropped, st.frames_in);
    steno__ring_destroy(r);
}

static void test_drop_queue_overflow_coalesces_exactly(void **state)
{
    (void)state;
    /* Each round: free the ring, then one write publishes a chunk and drops
     * the next, giving drop ranges separated by published audio. */
    const uint32_t cf = 2, rounds = STENO__RING_DROP_QUEUE + 5;
    steno__ring *r = mk(1, cf);
    uint64_t f = 0;
    for (uint32_t i = 0; i < rounds; i++) {
        steno__ring_ack_through(r, UINT64_MAX);
        assert_int_equal(write_frames(r, f, 2 * cf), STENO_ERR_FULL);
        f += 2 * cf;
    }
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    /* the first queue-full drop opens the producer's own range, the next 4 merge into it */
    assert_int_equal(st.drop_ranges_merged, rounds - STENO__RING_DROP_QUEUE - 1);
    steno__range d;
    for (uint32_t i = 0; i < STENO__RING_DROP_QUEUE; i++) {
        assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
        uint64_t first = (uint64_t)i * 2 * cf + cf;
        assert_int_equal(d.first_frame, first);
        assert_int_equal(d.last_frame, first + cf - 1);
        assert_int_equal(d.frames, cf);
    }
    /* the producer's range reaches the queue on its next call */
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_ERR_AGAIN);
    assert_int_equal(steno__ring_flush(r), STENO_OK);
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_OK);
    uint64_t first = (uint64_t)STENO__RING_DROP_QUEUE * 2 * cf + cf;
    assert_int_equal(d.first_frame, first);                   /* first frame dropped: exact */
    assert_int_equal(d.last_frame, f - 1);                    /* last frame dropped: exact */
    assert_int_equal(d.frames, (uint64_t)5 * cf);             /* count: exact */
    assert_true(d.last_frame - d.first_frame + 1 > d.frames); /* spans kept audio */
    assert_int_equal(steno__ring_take_dropped(r, &d), STENO_ERR_AGAIN);
    assert_int_equal(st.frames_dropped, (uint64_t)rounds * cf);
    steno__ring_destroy(r);
}

static void test_sequence_wraps_slot_index(void **state)
{
    (void)state;
    /* capacity 3 = 4 slots; run the cursors around the slot array many times
     * at every fill level, checking each chunk's seq, frames and bytes */
    const uint32_t cf = 3;
    steno__ring *r = mk(3, cf);
    uint64_t next_frame = 0, next_check = 0;
    for (int round = 0; round < 500; round++) {
        int burst = 1 + round % 2; /* with at most one chunk held: never full */
        assert_int_equal(write_frames(r, next_frame, (size_t)burst * cf), STENO_OK);
        next_frame += (uint64_t)burst * cf;
        uint64_t w = steno__ring_written(r);
        steno__chunk c;
        while (steno__ring_next_to_send(r, &c) == STENO_OK) {
            assert_int_equal(c.seq, next_check);
            assert_int_equal(c.first_frame, next_check * cf);
            assert_chunk_content(&c);
            steno__ring_mark_sent(r, c.seq);
            next_check++;
        }
        assert_int_equal(next_check, w);
        /* sometimes hold the newest chunk back, so fill levels and slots vary */
        uint64_t keep = round % 3 ? 1 : 0;
        steno__ring_ack_through(r, (w - keep) * cf);
        assert_int_equal(steno__ring_acked(r), w - keep);
    }
    assert_int_equal(steno__ring_written(r), 750);
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    assert_int_equal(st.frames_dropped, 0);
    steno__ring_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validates_sizes),
        cmocka_unit_test(test_allocator_hook_used_and_failure_leaks_nothing),
        cmocka_unit_test(test_write_rejects_partial_frames),
        cmocka_unit_test(test_chunks_cut_at_boundaries_across_odd_writes),
        cmocka_unit_test(test_flush_publishes_partial_chunk),
        cmocka_unit_test(test_flush_on_full_ring_drops_and_reports),
        cmocka_unit_test(test_peek_only_inside_acked_written),
        cmocka_unit_test(test_ack_releases_only_fully_covered_chunks),
        cmocka_unit_test(test_rewind_replays_in_order_from_acked),
        cmocka_unit_test(test_evict_reports_exact_ranges),
        cmocka_unit_test(test_evict_stops_at_producer_gap),
        cmocka_unit_test(test_producer_full_drops_new_chunk_and_reports_exact_range),
        cmocka_unit_test(test_drop_queue_overflow_coalesces_exactly),
        cmocka_unit_test(test_sequence_wraps_slot_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
