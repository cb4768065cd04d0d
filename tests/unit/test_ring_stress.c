/* test_ring_stress: two real threads on one ring; every frame is accounted for exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "ring.h"
#include "steno/status.h"

/*
 * Each 4-byte frame holds its own stream index, so the consumer can check
 * every chunk's content against its first_frame (a torn or reordered chunk
 * shows). The consumer acts like the session engine through connections and
 * outages: it sends, acknowledges partly covered ranges, stalls (so the
 * producer finds the ring full and drops), evicts and rewinds. A bitmap over
 * the whole stream proves each frame left the ring exactly once: acked,
 * evicted or dropped.
 *
 * STENO_STRESS_CHUNKS sets the stream length in chunks: by default 3000000
 * (about 2 s plain), 500000 in a TSan build (about 5 s).
 */

/* ThreadSanitizer makes every atomic and memory access far slower. */
#if defined(__SANITIZE_THREAD__)
#define DEFAULT_CHUNKS 500000u
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEFAULT_CHUNKS 500000u
#endif
#endif
#ifndef DEFAULT_CHUNKS
#define DEFAULT_CHUNKS 3000000u
#endif

#define FB 4u
#define CHUNK_FRAMES 160u
#define CAPACITY 16u
#define AHEAD ((CAPACITY + 8u) * CHUNK_FRAMES)

struct shared {
    steno__ring *r;
    uint64_t total_frames;
    _Atomic int done; /* producer finished and holds nothing back */
    /* Frames the consumer has accounted for. The producer stays at most
     * AHEAD frames in front of it: more than the ring holds, so a stalled
     * consumer still makes the producer overrun the ring and drop, but the
     * producer cannot finish the whole stream while the consumer sleeps. */
    _Atomic uint64_t progress;
    /* producer's own view, compared at the end */
    uint64_t p_full_returns;
};

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

static void *producer(void *arg)
{
    struct shared *sh = arg;
    static uint32_t buf[3 * CHUNK_FRAMES];
    uint64_t seed = 42, next = 0;
    while (next < sh->total_frames) {
        while (next - atomic_load_explicit(&sh->progress, memory_order_relaxed) > AHEAD)
            sched_yield();
        uint64_t n = 1 + lcg(&seed) % (3 * CHUNK_FRAMES);
        if (n > sh->total_frames - next)
            n = sh->total_frames - next;
        for (uint64_t i = 0; i < n; i++)
            buf[i] = (uint32_t)(next + i);
        int rc = steno__ring_write(sh->r, buf, n * FB);
        if (rc == STENO_ERR_FULL)
            sh->p_full_returns++;
        else if (rc != STENO_OK)
            abort();
        next += n;
        /* now and then a partial chunk, as on finalize */
        if (lcg(&seed) % 64 == 0 && steno__ring_flush(sh->r) == STENO_ERR_FULL)
            sh->p_full_returns++;
    }
    if (steno__ring_flush(sh->r) == STENO_ERR_FULL)
        sh->p_full_returns++;
    while (steno__ring_drop_held(sh->r)) {
        sched_yield(); /* the consumer drains the queue; then the range can go */
        (void)steno__ring_flush(sh->r);
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    return NULL;
}

struct accounting {
    uint64_t *seen; /* one bit per frame: accounted for */
    uint64_t acked, evicted, dropped;
    uint64_t chunks_checked, rewinds, evictions, stalls;
    steno__range merged[64]; /* coalesced drop ranges: checked once all else is known */
    size_t n_merged;
};

static int seen(const struct accounting *a, uint64_t f)
{
    return (a->seen[f / 64] >> (f % 64)) & 1;
}

static void mark(struct accounting *a, uint64_t first, uint64_t n)
{
    for (uint64_t f = first; f < first + n; f++) {
        if (seen(a, f))
            fail_msg("frame %llu accounted for twice", (unsigned long long)f);
        a->seen[f / 64] |= UINT64_C(1) << (f % 64);
    }
}

static void drain_drops(steno__ring *r, struct accounting *a)
{
    steno__range d;
    while (steno__ring_take_dropped(r, &d) == STENO_OK) {
        assert_true(d.first_frame <= d.last_frame);
        assert_true(d.frames >= 1);
        a->dropped += d.frames;
        if (d.frames == d.last_frame - d.first_frame + 1) {
            mark(a, d.first_frame, d.frames);
        } else {
            assert_true(a->n_merged < sizeof(a->merged) / sizeof(a->merged[0]));
            a->merged[a->n_merged++] = d;
        }
    }
}

/* Acknowledges through `frame` and checks the ring released exactly the chunks
 * a final result at that point covers. */
static void ack(steno__ring *r, struct accounting *a, uint64_t frame)
{
    uint64_t seq = steno__ring_acked(r);
    uint32_t expect = 0;
    steno__chunk c;
    while (steno__ring_peek(r, seq, &c) == STENO_OK && c.first_frame + c.frames <= frame) {
        mark(a, c.first_frame, c.frames);
        a->acked += c.frames;
        expect++;
        seq++;
    }
    assert_int_equal(steno__ring_ack_through(r, frame), expect);
    assert_int_equal(steno__ring_acked(r), seq);
}

static void consume(struct shared *sh, struct accounting *a)
{
    steno__ring *r = sh->r;
    uint64_t seed = 7;
    uint64_t last_end = 0; /* end of the last chunk sent on this "connection" */
    uint64_t expect_seq = 0;
    uint64_t iter = 0;
    for (;;) {
        int done = atomic_load_explicit(&sh->done, memory_order_acquire);
        iter++;
        drain_drops(r, a);
        atomic_store_explicit(&sh->progress, a->acked + a->evicted + a->dropped,
                              memory_order_relaxed);

        /* an outage: send nothing, ack nothing; the producer fills the ring */
        if (!done && iter % 8192 < 64) {
            if (iter % 8192 == 0)
                a->stalls++;
            if (iter % 8192 == 60 && lcg(&seed) % 2) {
                steno__range lost;
                while (steno__ring_evict(r, CAPACITY / 2, &lost) == STENO_OK) {
                    assert_int_equal(lost.frames, lost.last_frame - lost.first_frame + 1);
                    mark(a, lost.first_frame, lost.frames);
                    a->evicted += lost.frames;
                    a->evictions++;
                }
            }
            sched_yield();
            continue;
        }

        /* send what is ready, strictly in order */
        int sent_any = 0;
        steno__chunk c;
        while (steno__ring_next_to_send(r, &c) == STENO_OK) {
            if (c.seq != expect_seq) {
                /* only an ack or eviction may skip sent ahead */
                assert_true(c.seq > expect_seq);
                assert_int_equal(c.seq, steno__ring_acked(r));
            }
            assert_true(c.first_frame >= last_end);
            assert_true(c.frames >= 1 && c.frames <= CHUNK_FRAMES);
            assert_int_equal(c.bytes, c.frames * FB);
            for (uint32_t i = 0; i < c.frames; i++) {
                uint32_t v;
                memcpy(&v, c.data + (size_t)i * FB, FB);
                if (v != (uint32_t)(c.first_frame + i))
                    fail_msg("chunk %llu frame %u holds %u, want %u", (unsigned long long)c.seq, i,
                             v, (unsigned)(c.first_frame + i));
            }
            a->chunks_checked++;
            last_end = c.first_frame + c.frames;
            steno__ring_mark_sent(r, c.seq);
            expect_seq = c.seq + 1;
            sent_any = 1;
        }

        /* a final result somewhere inside the sent audio, often mid-chunk */
        uint64_t acked = steno__ring_acked(r), sent = steno__ring_sent(r);
        if (sent > acked) {
            steno__chunk lo, hi;
            assert_int_equal(steno__ring_peek(r, acked, &lo), STENO_OK);
            assert_int_equal(steno__ring_peek(r, sent - 1, &hi), STENO_OK);
            uint64_t span = hi.first_frame + hi.frames - lo.first_frame;
            ack(r, a, done ? UINT64_MAX : lo.first_frame + lcg(&seed) % (span + 1));
        }

        /* a reconnect now and then: replay from the first unacked chunk */
        if (!done && lcg(&seed) % 1024 == 0) {
            steno__ring_rewind(r);
            a->rewinds++;
            expect_seq = steno__ring_acked(r);
            last_end = 0;
            if (steno__ring_peek(r, expect_seq, &c) == STENO_OK)
                last_end = c.first_frame;
        }

        if (done && steno__ring_acked(r) == steno__ring_written(r)) {
            drain_drops(r, a);
            return;
        }
        if (!sent_any)
            sched_yield();
    }
}

static uint64_t env_chunks(void)
{
    const char *s = getenv("STENO_STRESS_CHUNKS");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0' && v > 0 && v < (1ULL << 26))
            return v;
    }
    return DEFAULT_CHUNKS;
}

static void test_two_threads_account_for_every_frame_exactly_once(void **state)
{
    (void)state;
    struct shared sh = {0};
    struct accounting a = {0};
    sh.total_frames = env_chunks() * CHUNK_FRAMES;
    assert_true(sh.total_frames < UINT32_MAX); /* frame indexes fit the 4-byte pattern */
    assert_int_equal(steno__ring_create(&sh.r, NULL, CAPACITY, CHUNK_FRAMES, FB), STENO_OK);
    a.seen = calloc(sh.total_frames / 64 + 1, sizeof(uint64_t));
    assert_non_null(a.seen);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &sh), 0);
    consume(&sh, &a);
    assert_int_equal(pthread_join(t, NULL), 0);

    /* coalesced drop ranges: exactly `frames` of their span are unaccounted */
    for (size_t i = 0; i < a.n_merged; i++) {
        uint64_t unseen = 0;
        for (uint64_t f = a.merged[i].first_frame; f <= a.merged[i].last_frame; f++)
            if (!seen(&a, f)) {
                a.seen[f / 64] |= UINT64_C(1) << (f % 64);
                unseen++;
            }
        assert_int_equal(unseen, a.merged[i].frames);
    }
    for (uint64_t f = 0; f < sh.total_frames; f++)
        if (!seen(&a, f))
            fail_msg("frame %llu never accounted for", (unsigned long long)f);

    steno__ring_stats st;
    steno__ring_stats_get(sh.r, &st);
    assert_int_equal(st.frames_in, sh.total_frames);
    assert_int_equal(a.acked + a.evicted + a.dropped, sh.total_frames);
    assert_int_equal(st.frames_acked, a.acked);
    assert_int_equal(st.frames_evicted, a.evicted);
    assert_int_equal(st.frames_dropped, a.dropped);
    assert_int_equal(st.chunks_published, st.chunks_acked + st.chunks_evicted);
    /* the run exercised every path it claims to */
    assert_true(a.chunks_checked > 0);
    assert_true(a.rewinds > 0);
    assert_true(a.evictions > 0);
    assert_true(a.dropped > 0);
    assert_true(sh.p_full_returns > 0);
    print_message("frames %llu: acked %llu evicted %llu dropped %llu (%llu merged ranges); "
                  "%llu chunks checked, %llu rewinds, %llu stalls\n",
                  (unsigned long long)sh.total_frames, (unsigned long long)a.acked,
                  (unsigned long long)a.evicted, (unsigned long long)a.dropped,
                  (unsigned long long)a.n_merged, (unsigned long long)a.chunks_checked,
                  (unsigned long long)a.rewinds, (unsigned long long)a.stalls);
    free(a.seen);
    steno__ring_destroy(sh.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_account_for_every_frame_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
