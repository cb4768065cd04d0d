/* test_timeline: provider timestamps of many connections onto one session timeline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"
#include "timeline.h"
#include "steno/status.h"

#define RATE 16000u
#define CHUNK 1600u /* 100 ms at 16 kHz */

static steno__timeline *mk(uint32_t rate, uint32_t max_segments)
{
    steno__timeline *t = NULL;
    assert_int_equal(steno__timeline_create(&t, NULL, rate, max_segments), STENO_OK);
    assert_non_null(t);
    return t;
}

/* Sends chunks covering session frames [from, to) on the current connection. */
static void send_range(steno__timeline *t, uint64_t from, uint64_t to)
{
    for (uint64_t f = from; f < to; f += CHUNK) {
        uint32_t n = (uint32_t)(to - f < CHUNK ? to - f : CHUNK);
        assert_int_equal(steno__timeline_on_sent(t, f, n), STENO_OK);
    }
}

/* ---- create ---- */

struct counting {
    int allocs, frees, fail_after;
};

static void *c_alloc(void *opaque, size_t size)
{
    struct counting *c = opaque;
    if (c->fail_after >= 0 && c->allocs >= c->fail_after)
        return NULL;
    c->allocs++;
    return malloc(size);
}

static void c_free(void *opaque, void *p)
{
    struct counting *c = opaque;
    c->frees++;
    free(p);
}

static void test_create_validates_and_uses_allocator(void **state)
{
    (void)state;
    steno__timeline *t = NULL;
    assert_int_equal(steno__timeline_create(NULL, NULL, RATE, 4), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_create(&t, NULL, 0, 4), STENO_ERR_INVALID_ARG);
    assert_null(t);
    assert_int_equal(steno__timeline_create(&t, NULL, RATE, 0), STENO_ERR_INVALID_ARG);
    assert_null(t);
    steno__timeline_destroy(NULL);

    struct counting c = {.fail_after = -1};
    steno_allocator a = {c_alloc, c_free, &c};
    assert_int_equal(steno__timeline_create(&t, &a, RATE, 101), STENO_OK);
    int allocs = c.allocs;
    assert_true(allocs >= 1);
    /* mapping and results allocate nothing: the segment table is preallocated */
    for (int conn = 0; conn < 3; conn++) {
        steno__timeline_connection_begin(t);
        for (uint64_t f = 0; f < 100; f++)
            assert_int_equal(
                steno__timeline_on_sent(t, (uint64_t)conn * 1000000 + f * 2 * CHUNK, CHUNK),
                STENO_OK);
        steno__mapped m;
        assert_int_equal(steno__timeline_final(t, 0, 1, NULL, 0, &m), STENO_OK);
    }
    assert_int_equal(c.allocs, allocs);
    steno__timeline_destroy(t);
    assert_int_equal(c.frees, c.allocs);

    for (int fail_after = 0; fail_after < allocs; fail_after++) {
        struct counting f = {.fail_after = fail_after};
        steno_allocator fa = {c_alloc, c_free, &f};
        t = (steno__timeline *)&f;
        assert_int_equal(steno__timeline_create(&t, &fa, RATE, 101), STENO_ERR_NOMEM);
        assert_null(t);
        assert_int_equal(f.frees, f.allocs);
    }
}

/* ---- mapping ---- */

static void test_maps_exactly_across_connections_and_gaps(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    /* before anything is sent, every time maps to finalized_frame (0) */
    assert_int_equal(steno__timeline_to_session(t, 1.0), 0);

    /* connection 1: [0, 3200) then the producer dropped [3200, 4800), then [4800, 8000) */
    steno__timeline_connection_begin(t);
    send_range(t, 0, 3200);
    send_range(t, 4800, 8000);
    assert_int_equal(steno__timeline_connection_frames(t), 6400);
    static const struct {
        double sec;
        uint64_t frame;
    } c1[] = {
        {-1.0, 0},       {0.0, 0},    {0.05, 800},  {0.1, 1600},
        {0.19995, 3199}, {0.2, 4800}, /* the boundary belongs to the later segment */
        {0.25, 5600},    {0.4, 8000}, {0.41, 8000}, {1e9, 8000}, /* clamp to the end */
    };
    for (size_t i = 0; i < sizeof(c1) / sizeof(c1[0]); i++)
        assert_int_equal(steno__timeline_to_session(t, c1[i].sec), c1[i].frame);
    assert_int_equal(steno__timeline_to_session(t, NAN), 0);

    /* a final through provider 0.15 s (session 2400): chunk [0,1600) is released */
    steno__mapped m;
    assert_int_equal(steno__timeline_final(t, 0, 0.15, NULL, 0, &m), STENO_OK);
    assert_int_equal(m.ack_frame, 2400);

    /* connection 2 replays from chunk [1600, 3200), then [4800, 8000), then new audio */
    steno__timeline_connection_begin(t);
    assert_int_equal(steno__timeline_connection_frames(t), 0);
    assert_int_equal(steno__timeline_to_session(t, 0.5), 2400); /* nothing sent yet */
    send_range(t, 1600, 3200);
    send_range(t, 4800, 9600);
    static const struct {
        double sec;
        uint64_t frame;
    } c2[] = {
        {0.0, 1600}, {0.05, 2400}, {0.1, 4800}, {0.3, 8000}, {0.4, 9600}, {0.5, 9600},
    };
    for (size_t i = 0; i < sizeof(c2) / sizeof(c2[0]); i++)
        assert_int_equal(steno__timeline_to_session(t, c2[i].sec), c2[i].frame);

    /* a result ending exactly where a gap starts ends there, not after the gap */
    assert_int_equal(steno__timeline_final(t, 0.05, 0.05, NULL, 0, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.start_frame, 2400);
    assert_int_equal(m.end_frame, 3200);
    assert_int_equal(steno__timeline_finalized_frame(t), 3200);

    /* connection 3 replays from [4800, ...): provider 0 is session 4800 */
    steno__timeline_connection_begin(t);
    send_range(t, 4800, 12800);
    assert_int_equal(steno__timeline_to_session(t, 0.0), 4800);
    assert_int_equal(steno__timeline_to_session(t, 0.5), 12800);
    assert_true(fabs(steno__timeline_seconds(t, 12800) - 0.8) < 1e-12);
    steno__timeline_destroy(t);
}

/* A short chunk padded with silence up to the provider's minimum frame: the provider's clock
 * runs on over the padding, the session's does not, and audio after it maps exactly. */
static void test_padding_advances_only_the_provider_clock(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    send_range(t, 0, 1600);
    assert_int_equal(steno__timeline_on_sent(t, 1600, 480), STENO_OK); /* 30 ms, flushed */
    assert_int_equal(steno__timeline_on_padding(t, 320), STENO_OK);    /* up to 50 ms */
    assert_int_equal(steno__timeline_connection_frames(t), 2400);
    /* inside the padding: where the next audio begins */
    assert_int_equal(steno__timeline_to_session(t, 2100.0 / RATE), 2080);
    send_range(t, 2080, 3680);
    assert_int_equal(steno__timeline_to_session(t, 2400.0 / RATE), 2080);
    assert_int_equal(steno__timeline_to_session(t, 3000.0 / RATE), 2680);
    /* a final ending inside the padding ends at the real audio's end */
    steno__mapped m;
    assert_int_equal(steno__timeline_final(t, 0, 2300.0 / RATE, NULL, 0, &m), STENO_OK);
    assert_int_equal(m.end_frame, 2080);
    assert_int_equal(steno__timeline_finalized_frame(t), 2080);
    /* the next final starts there and maps the shifted provider times */
    assert_int_equal(steno__timeline_final(t, 2400.0 / RATE, 1600.0 / RATE, NULL, 0, &m), STENO_OK);
    assert_int_equal(m.start_frame, 2080);
    assert_int_equal(m.end_frame, 3680);
    assert_int_equal(steno__timeline_on_padding(t, 0), STENO_OK);
    assert_int_equal(steno__timeline_on_padding(NULL, 5), STENO_ERR_INVALID_ARG);
    steno__timeline_destroy(t);
}

static void test_rounds_to_nearest_frame_at_16k_and_44k1(void **state)
{
    (void)state;
    static const struct {
        uint32_t rate;
        double sec;
        uint64_t frame;
    } cases[] = {
        {16000, 0.03337, 534},     /* 533.92 */
        {16000, 0.0333, 533},      /* 532.8 */
        {16000, 1.0000312, 16000}, /* 16000.4992 */
        {16000, 1.0000313, 16001}, /* 16000.5008 */
        {16000, 0.3, 4800},
        {44100, 0.3, 13230},     /* 13229.999999999998 in doubles: must not truncate */
        {44100, 1.2345, 54441},  /* 54441.45 */
        {44100, 0.00001, 0},     /* 0.441 */
        {44100, 1.5 / 44100, 2}, /* a half frame rounds up */
        {44100, 0.7, 30870},
        {44100, 2.9, 127890},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        steno__timeline *t = mk(cases[i].rate, 4);
        steno__timeline_connection_begin(t);
        assert_int_equal(steno__timeline_on_sent(t, 0, cases[i].rate * 3), STENO_OK);
        assert_int_equal(steno__timeline_to_session(t, cases[i].sec), cases[i].frame);
        /* and through an offset: a replay from session frame 1000003 */
        steno__timeline_connection_begin(t);
        assert_int_equal(steno__timeline_on_sent(t, 1000003, cases[i].rate * 3), STENO_OK);
        assert_int_equal(steno__timeline_to_session(t, cases[i].sec), 1000003 + cases[i].frame);
        assert_true(steno__timeline_seconds(t, cases[i].rate) == 1.0);
        steno__timeline_destroy(t);
    }
}

/* ---- finals ---- */

static void test_replay_overlap_suppresses_already_final_words(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    steno__timeline_connection_begin(t);
    send_range(t, 0, 32000);
    const steno__word_time w1[] = {{0.1, 0.4}, {0.5, 0.9}, {0.95, 1.04}};
    assert_int_equal(steno__timeline_final(t, 0, 1.05, w1, 3, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.start_frame, 0);
    assert_int_equal(m.end_frame, 16800);
    assert_int_equal(m.first_word, 0);
    assert_int_equal(m.n_words, 3);
    assert_int_equal(m.ack_frame, 16800); /* releases chunks through [15200, 16800)... */
    /* ... except [16000, 17600), only partly final: the replay starts there */

    steno__timeline_connection_begin(t);
    send_range(t, 16000, 40000);
    /* the provider hears 0.05 s of already-final audio again */
    static const struct {
        steno__word_time w;
        int kept;
    } words[] = {
        {{0.0, 0.04}, 0},  /* midpoint 16320 < 16800: already final */
        {{0.02, 0.08}, 1}, /* midpoint exactly 16800: new */
        {{0.3, 0.6}, 1},
    };
    steno__word_time w2[3];
    for (size_t i = 0; i < 3; i++)
        w2[i] = words[i].w;
    assert_int_equal(steno__timeline_final(t, 0, 1.0, w2, 3, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.first_word, 1);
    assert_int_equal(m.n_words, 2);
    assert_int_equal(m.start_frame, 16800); /* never before the last final's end */
    assert_int_equal(m.end_frame, 32000);
    assert_int_equal(m.ack_frame, 32000);
    uint64_t s, e;
    steno__timeline_map_word(t, &m, &w2[1], &s, &e);
    assert_int_equal(s, 16800); /* 16320 clamped into the result */
    assert_int_equal(e, 17280);
    steno__timeline_map_word(t, &m, &w2[2], &s, &e);
    assert_int_equal(s, 20800);
    assert_int_equal(e, 25600);

    /* the same audio finalized a third time: suppressed entirely */
    assert_int_equal(steno__timeline_final(t, 0, 1.0, w2, 3, &m), STENO_OK);
    assert_int_equal(m.emit, 0);
    assert_int_equal(m.n_words, 0);
    assert_int_equal(m.first_word, 3);
    assert_int_equal(m.ack_frame, 32000);
    assert_int_equal(steno__timeline_finalized_frame(t), 32000);
    steno__timeline_destroy(t);
}

static void test_empty_final_still_advances_ack(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    steno__timeline_connection_begin(t);
    send_range(t, 0, 48000);
    static const struct {
        double start, duration;
        int emit;
        uint64_t start_frame, end_frame, ack;
    } steps[] = {
        {0.0, 1.0, 1, 0, 16000, 16000},      /* silence: empty final, ack moves */
        {0.0, 1.0, 0, 16000, 16000, 16000},  /* the same again: nothing new */
        {0.5, 0.4, 0, 16000, 16000, 16000},  /* inside final audio */
        {1.0, 0.5, 1, 16000, 24000, 24000},  /* the next stretch */
        {1.2, -1.0, 0, 24000, 24000, 24000}, /* negative duration is 0 long */
        {2.9, 0.3, 1, 46400, 48000, 48000},  /* rounding past the audio sent: clamped */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(steno__timeline_final(t, steps[i].start, steps[i].duration, NULL, 0, &m),
                         STENO_OK);
        assert_int_equal(m.emit, steps[i].emit);
        assert_int_equal(m.n_words, 0);
        assert_int_equal(m.start_frame, steps[i].start_frame);
        assert_int_equal(m.end_frame, steps[i].end_frame);
        assert_int_equal(m.ack_frame, steps[i].ack);
        assert_int_equal(steno__timeline_finalized_frame(t), steps[i].ack);
    }
    steno__timeline_destroy(t);
}

static void test_results_reject_bad_arguments(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    steno__word_time w = {0, 0.1};
    steno__timeline_connection_begin(t);
    send_range(t, 0, 16000);
    assert_int_equal(steno__timeline_final(t, 0, 1, NULL, 1, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_final(t, 0, 1, &w, 1, NULL), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_final(t, NAN, 1, &w, 1, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_final(t, 0, INFINITY, &w, 1, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_interim(t, 0, NAN, &w, 1, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_interim(NULL, 0, 1, &w, 1, &m), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_on_sent(NULL, 0, 1), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_finalized_frame(t), 0); /* nothing moved */
    /* audio must be sent in order on one connection */
    assert_int_equal(steno__timeline_on_sent(t, 8000, CHUNK), STENO_ERR_INVALID_ARG);
    assert_int_equal(steno__timeline_on_sent(t, 16000, 0), STENO_OK); /* empty: nothing */
    assert_int_equal(steno__timeline_connection_frames(t), 16000);
    steno__timeline_destroy(t);
}

/* ---- interims ---- */

static void test_interim_never_regresses_behind_final(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    steno__timeline_connection_begin(t);
    send_range(t, 0, 48000);
    const steno__word_time w[] = {{0.1, 0.3}, {0.8, 1.1}, {1.3, 1.6}};
    /* interims do not advance anything */
    assert_int_equal(steno__timeline_interim(t, 0, 1.7, w, 3, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.start_frame, 0);
    assert_int_equal(m.end_frame, 27200);
    assert_int_equal(m.n_words, 3);
    assert_int_equal(m.ack_frame, 0);
    assert_int_equal(steno__timeline_finalized_frame(t), 0);

    assert_int_equal(steno__timeline_final(t, 0, 1.2, w, 2, &m), STENO_OK);
    assert_int_equal(steno__timeline_finalized_frame(t), 19200);

    static const struct {
        double start, duration;
        size_t first, nw;
        int emit;
        uint64_t start_frame, end_frame;
    } steps[] = {
        {0.0, 1.7, 0, 3, 1, 19200,
         27200}, /* a stale interim from 0: clipped, words kept from 1.3 s */
        {0.0, 1.1, 0, 2, 0, 19200, 19200}, /* wholly final already: suppressed */
        {1.2, 0.5, 2, 1, 1, 19200, 27200}, /* the normal next interim */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(steno__timeline_interim(t, steps[i].start, steps[i].duration,
                                                 w + steps[i].first, steps[i].nw, &m),
                         STENO_OK);
        assert_int_equal(m.emit, steps[i].emit);
        assert_true(m.start_frame >= steno__timeline_finalized_frame(t));
        assert_int_equal(m.start_frame, steps[i].start_frame);
        assert_int_equal(m.end_frame, steps[i].end_frame);
        assert_int_equal(m.ack_frame, 19200);
    }
    /* first step: of {0.1-0.3, 0.8-1.1, 1.3-1.6} only the last is new */
    assert_int_equal(steno__timeline_interim(t, 0, 1.7, w, 3, &m), STENO_OK);
    assert_int_equal(m.first_word, 2);
    assert_int_equal(m.n_words, 1);
    assert_int_equal(steno__timeline_finalized_frame(t), 19200);
    steno__timeline_destroy(t);
}

static void test_reconnect_mid_utterance_loses_and_duplicates_nothing(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    uint64_t s, e;
    /* connection 1: 3 s sent; "one two" final through 1.05 s; "three four"
     * seen only as interims when the connection drops */
    steno__timeline_connection_begin(t);
    send_range(t, 0, 48000);
    const steno__word_time a[] = {{0.2, 0.5}, {0.6, 1.0}};
    assert_int_equal(steno__timeline_final(t, 0, 1.05, a, 2, &m), STENO_OK);
    assert_int_equal(m.end_frame, 16800);
    const steno__word_time b[] = {{1.2, 1.6}, {1.9, 2.3}};
    assert_int_equal(steno__timeline_interim(t, 1.05, 1.3, b, 2, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.start_frame, 16800);

    /* the ring released [0, 16000); connection 2 replays from 16000 */
    steno__timeline_connection_begin(t);
    send_range(t, 16000, 64000);
    /* the provider re-hears the tail of "two" (cut: 0.0-0.05) and all of
     * "three four", now 1.0 s earlier on its clock */
    const steno__word_time c[] = {{0.0, 0.05}, {0.2, 0.6}, {0.9, 1.3}};
    assert_int_equal(steno__timeline_interim(t, 0, 1.0, c, 2, &m), STENO_OK);
    assert_int_equal(m.first_word, 1);
    assert_int_equal(m.start_frame, 16800);
    assert_int_equal(steno__timeline_final(t, 0, 1.5, c, 3, &m), STENO_OK);
    assert_int_equal(m.emit, 1);
    assert_int_equal(m.first_word, 1);
    assert_int_equal(m.n_words, 2);
    assert_int_equal(m.start_frame, 16800); /* contiguous with the last final: no gap, no overlap */
    assert_int_equal(m.end_frame, 40000);
    steno__timeline_map_word(t, &m, &c[1], &s, &e);
    assert_int_equal(s, 19200); /* "three" at 1.2 s, as connection 1 heard it */
    assert_int_equal(e, 25600);
    steno__timeline_map_word(t, &m, &c[2], &s, &e);
    assert_int_equal(s, 30400); /* "four" at 1.9 s */
    assert_int_equal(e, 36800);
    assert_int_equal(m.ack_frame, 40000);
    steno__timeline_destroy(t);
}

static void test_gap_inside_connection_keeps_words_exact(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 8);
    steno__mapped m;
    uint64_t s, e;
    steno__timeline_connection_begin(t);
    /* [0, 8000) sent, [8000, 24000) lost (evicted), [24000, 40000) sent */
    send_range(t, 0, 8000);
    send_range(t, 24000, 40000);
    const steno__word_time w[] = {
        {0.1, 0.5},  /* ends exactly where the gap starts */
        {0.5, 0.7},  /* starts exactly after it */
        {0.45, 0.55} /* straddles it (the provider heard the halves joined) */
    };
    assert_int_equal(steno__timeline_final(t, 0, 1.5, w, 2, &m), STENO_OK);
    assert_int_equal(m.start_frame, 0);
    assert_int_equal(m.end_frame, 40000);
    steno__timeline_map_word(t, &m, &w[0], &s, &e);
    assert_int_equal(s, 1600);
    assert_int_equal(e, 8000);
    steno__timeline_map_word(t, &m, &w[1], &s, &e);
    assert_int_equal(s, 24000);
    assert_int_equal(e, 27200);
    steno__timeline_map_word(t, &m, &w[2], &s, &e);
    assert_int_equal(s, 7200);
    assert_int_equal(e, 24800);
    steno__timeline_destroy(t);
}

static void test_segment_table_exhaustion_and_reuse(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 3);
    steno__mapped m;
    steno__timeline_connection_begin(t);
    /* three discontinuities fill the table */
    assert_int_equal(steno__timeline_on_sent(t, 0, CHUNK), STENO_OK);
    assert_int_equal(steno__timeline_on_sent(t, 3200, CHUNK), STENO_OK);
    assert_int_equal(steno__timeline_on_sent(t, 6400, CHUNK), STENO_OK);
    /* a fourth cannot be recorded: nothing changes */
    assert_int_equal(steno__timeline_on_sent(t, 9600, CHUNK), STENO_ERR_FULL);
    assert_int_equal(steno__timeline_connection_frames(t), 3 * CHUNK);
    assert_int_equal(steno__timeline_to_session(t, 0.3), 8000); /* still the end */
    /* continuing the last segment needs no new one */
    assert_int_equal(steno__timeline_on_sent(t, 8000, CHUNK), STENO_OK);
    assert_int_equal(steno__timeline_on_sent(t, 12800, CHUNK), STENO_ERR_FULL);

    /* a final past the first two segments frees them */
    assert_int_equal(steno__timeline_final(t, 0, 0.25, NULL, 0, &m), STENO_OK);
    assert_int_equal(m.ack_frame, 7200);
    assert_int_equal(steno__timeline_on_sent(t, 12800, CHUNK), STENO_OK);
    assert_int_equal(steno__timeline_on_sent(t, 16000, CHUNK), STENO_OK);
    assert_int_equal(steno__timeline_on_sent(t, 19200, CHUNK), STENO_ERR_FULL);
    /* mapping of the kept segments is unchanged */
    assert_int_equal(steno__timeline_to_session(t, 0.25), 7200);
    assert_int_equal(steno__timeline_to_session(t, 0.4), 12800);
    assert_int_equal(steno__timeline_to_session(t, 0.5), 16000);
    assert_int_equal(steno__timeline_to_session(t, 0.55), 16800);
    /* times in discarded segments (already final) stay at or before the final point */
    assert_true(steno__timeline_to_session(t, 0.05) <= 7200);
    const steno__word_time old[] = {{0.02, 0.08}};
    assert_int_equal(steno__timeline_final(t, 0, 0.1, old, 1, &m), STENO_OK);
    assert_int_equal(m.emit, 0);
    assert_int_equal(m.n_words, 0);

    /* a new connection starts with an empty table */
    steno__timeline_connection_begin(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(steno__timeline_on_sent(t, 20000 + (uint64_t)i * 3200, CHUNK), STENO_OK);
    steno__timeline_destroy(t);
}

/*
 * The engine's loop, end to end with a real ring: speech is a row of words at
 * known session frames; a simulated provider hears each connection's audio,
 * recognises a word only when it received all of it, and sends finals with
 * millisecond timestamps on its own clock. Connections drop at arbitrary
 * points (mid-utterance, with unfinalised words), outages evict audio. Every
 * word must come out once, in order, at its true session time, unless some of
 * its audio was evicted.
 */
#define WORD_PERIOD 1000u /* a word every 62.5 ms ... */
#define WORD_LEN 600u     /* ... 37.5 ms long, 200 frames into its period: several per chunk, */
#define WORD_OFF 200u     /* so a replayed chunk holds whole words that are already final */
#define N_WORDS 800u
#define MAX_PENDING 64u

struct sim_provider {
    uint64_t pc;                     /* frames received on this connection */
    uint64_t run_s;                  /* session frame where the current contiguous run started */
    uint64_t run_p;                  /* provider frame where it started */
    uint64_t run_end;                /* session end of the run */
    uint64_t next_word;              /* first word not yet heard on this connection */
    uint64_t final_p;                /* provider frame where the last final ended */
    uint64_t pending[MAX_PENDING];   /* words heard, not yet final ... */
    uint64_t pending_p[MAX_PENDING]; /* ... and where they start on the provider's clock */
    size_t n_pending;
};

static double ms(uint64_t provider_frames)
{
    return round((double)provider_frames * 1000.0 / RATE) / 1000.0;
}

static void provider_receive(struct sim_provider *p, uint64_t first, uint32_t n)
{
    if (p->pc == 0 || first != p->run_end) {
        p->run_s = first;
        p->run_p = p->pc;
    }
    p->run_end = first + n;
    p->pc += n;
    for (;;) {
        uint64_t k = p->next_word;
        if (k >= N_WORDS)
            break;
        uint64_t ws = k * WORD_PERIOD + WORD_OFF, we = ws + WORD_LEN;
        if (we > p->run_end)
            break;
        p->next_word++;
        if (ws >= p->run_s) {
            assert_true(p->n_pending < MAX_PENDING);
            p->pending_p[p->n_pending] = p->run_p + (ws - p->run_s);
            p->pending[p->n_pending++] = k;
        }
    }
}

struct sim {
    steno__ring *r;
    steno__timeline *t;
    struct sim_provider p;
    uint64_t next_expected; /* emitted words must be increasing */
    int emitted[N_WORDS];
    int evicted[N_WORDS];
};

/* The provider finalizes the words it has heard, up to the end of the last one
 * plus a little silence. */
static void provider_final(struct sim *s)
{
    struct sim_provider *p = &s->p;
    steno__word_time w[MAX_PENDING];
    for (size_t i = 0; i < p->n_pending; i++) {
        w[i].start = ms(p->pending_p[i]);
        w[i].end = ms(p->pending_p[i] + WORD_LEN);
    }
    uint64_t end_p = p->pc;
    if (p->n_pending) {
        end_p = p->pending_p[p->n_pending - 1] + WORD_LEN + 200;
        if (end_p > p->pc)
            end_p = p->pc;
    }
    steno__mapped m;
    double start = ms(p->final_p);
    assert_int_equal(steno__timeline_final(s->t, start, ms(end_p) - start, w, p->n_pending, &m),
                     STENO_OK);
    for (size_t i = m.first_word; i < m.first_word + m.n_words; i++) {
        uint64_t k = p->pending[i];
        uint64_t sf, ef;
        steno__timeline_map_word(s->t, &m, &w[i], &sf, &ef);
        uint64_t ws = k * WORD_PERIOD + WORD_OFF;
        /* at its true place, give or take the millisecond rounding */
        assert_true(sf + 16 >= ws && sf <= ws + 16);
        assert_true(ef + 16 >= ws + WORD_LEN && ef <= ws + WORD_LEN + 16);
        if (s->emitted[k])
            fail_msg("word %llu emitted twice", (unsigned long long)k);
        assert_true(k >= s->next_expected);
        s->emitted[k] = 1;
        s->next_expected = k + 1;
    }
    p->final_p = end_p;
    p->n_pending = 0;
    steno__ring_ack_through(s->r, m.ack_frame);
}

struct sim_counts {
    int reconnects, evictions, mid_utterance, emitted;
};

static void run_sim(uint64_t rng, struct sim_counts *n)
{
    const uint32_t cap = 20;
    struct sim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(steno__ring_create(&s->r, NULL, cap, CHUNK, 2), STENO_OK);
    assert_int_equal(steno__timeline_create(&s->t, NULL, RATE, cap + 1), STENO_OK);
    static uint8_t pcm[CHUNK * 2];
    const uint64_t total_chunks = (uint64_t)N_WORDS * WORD_PERIOD / CHUNK;
    uint64_t written = 0;
    int connected = 1, reconnects = 0, evictions = 0, mid_utterance = 0;
    steno__timeline_connection_begin(s->t);
    while (written < total_chunks || steno__ring_acked(s->r) < steno__ring_written(s->r)) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t dice = (uint32_t)(rng >> 33) % 100;
        if (written < total_chunks) {
            assert_int_equal(steno__ring_write(s->r, pcm, sizeof(pcm)), STENO_OK);
            written++;
        }
        if (connected) {
            steno__chunk c;
            while (steno__ring_next_to_send(s->r, &c) == STENO_OK) {
                assert_int_equal(steno__timeline_on_sent(s->t, c.first_frame, c.frames), STENO_OK);
                provider_receive(&s->p, c.first_frame, c.frames);
                steno__ring_mark_sent(s->r, c.seq);
            }
            if ((dice < 50 && s->p.n_pending >= 2) || s->p.n_pending >= 8 ||
                written == total_chunks)
                provider_final(s); /* at the end of the stream the provider flushes */
            if (dice >= 97 && written < total_chunks) { /* the connection breaks */
                connected = 0;
                reconnects++;
                mid_utterance += s->p.n_pending > 0; /* words heard, never final */
            }
        } else {
            /* an outage: evict when nearly full, reconnect after a while */
            steno__range lost;
            while (steno__ring_evict(s->r, 2, &lost) == STENO_OK) {
                evictions++;
                for (uint64_t k = 0; k < N_WORDS; k++) {
                    uint64_t ws = k * WORD_PERIOD + WORD_OFF;
                    if (ws <= lost.last_frame && ws + WORD_LEN > lost.first_frame)
                        s->evicted[k] = 1;
                }
            }
            if (dice < 5 || written >= total_chunks) {
                connected = 1;
                steno__ring_rewind(s->r);
                steno__timeline_connection_begin(s->t);
                memset(&s->p, 0, sizeof(s->p));
            }
        }
    }
    int missing = 0, emitted = 0;
    for (uint64_t k = 0; k < N_WORDS; k++) {
        emitted += s->emitted[k];
        if (!s->emitted[k] && !s->evicted[k]) {
            print_error("word %llu lost\n", (unsigned long long)k);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    n->reconnects += reconnects;
    n->evictions += evictions;
    n->mid_utterance += mid_utterance;
    n->emitted += emitted;
    steno__ring_destroy(s->r);
    steno__timeline_destroy(s->t);
    free(s);
}

static void test_engine_loop_emits_every_word_once_across_reconnects(void **state)
{
    (void)state;
    struct sim_counts n = {0};
    const int seeds = 20;
    for (int seed = 1; seed <= seeds; seed++)
        run_sim((uint64_t)seed * 7919, &n);
    print_message("%d runs: %d reconnects (%d mid-utterance), %d evictions, %d of %d words "
                  "emitted\n",
                  seeds, n.reconnects, n.mid_utterance, n.evictions, n.emitted, seeds * N_WORDS);
    /* the runs went through what they claim to */
    assert_true(n.reconnects >= 3 * seeds);
    assert_true(n.mid_utterance >= seeds);
    assert_true(n.evictions >= seeds);
    assert_true(n.emitted > seeds * (int)N_WORDS / 2);
}

/* ---- lanes: backfill limit, seam floor, reset ---- */

static void test_result_for_audio_never_sent_is_refused(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 16);
    steno__timeline_connection_begin(t);
    send_range(t, 0, 3 * RATE);
    steno__mapped m;
    /* past the audio sent (3 s) by more than the 0.25 s of slack: refused, nothing acked */
    assert_int_equal(steno__timeline_final(t, 33.0, 0.5, NULL, 0, &m), STENO_ERR_PARSE);
    assert_int_equal(steno__timeline_final(t, 2.0, 1.5, NULL, 0, &m), STENO_ERR_PARSE);
    steno__word_time w = {2.5, 3.4};
    assert_int_equal(steno__timeline_final(t, 2.5, 0.5, &w, 1, &m), STENO_ERR_PARSE);
    /* before the connection's first sample */
    assert_int_equal(steno__timeline_final(t, -3.0, 0.5, NULL, 0, &m), STENO_ERR_PARSE);
    assert_int_equal(steno__timeline_interim(t, 40.0, 1.0, NULL, 0, &m), STENO_ERR_PARSE);
    assert_int_equal(steno__timeline_finalized_frame(t), 0);
    /* within the slack: taken, clamped to the audio sent */
    assert_int_equal(steno__timeline_final(t, 2.0, 1.2, NULL, 0, &m), STENO_OK);
    assert_true(m.emit);
    assert_int_equal(m.end_frame, 3 * RATE);
    steno__timeline_destroy(t);
}

static void test_limit_drops_words_past_the_seam_and_clamps_the_span(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 16);
    steno__timeline_set_limit(t, 2 * RATE); /* this lane owns session audio below 2 s */
    send_range(t, 0, 3 * RATE);
    /* a final over 1.2-2.0 s whose last word's midpoint (2.05 s) is past the seam */
    steno__word_time w[3] = {{1.2, 1.5}, {1.55, 1.9}, {1.95, 2.15}};
    steno__mapped m;
    assert_int_equal(steno__timeline_final(t, 1.2, 0.95, w, 3, &m), STENO_OK);
    assert_true(m.emit);
    assert_int_equal(m.first_word, 0);
    assert_int_equal(m.n_words, 2);
    assert_true(m.end_frame <= 2 * RATE);
    assert_int_equal(steno__timeline_finalized_frame(t), m.end_frame);
    /* a result wholly past the seam is not emitted */
    steno__word_time w2 = {2.1, 2.4};
    assert_int_equal(steno__timeline_final(t, 2.0, 0.5, &w2, 1, &m), STENO_OK);
    assert_false(m.emit);
    steno__timeline_destroy(t);
}

static void test_raise_finalized_makes_the_live_lane_skip_audio_before_the_seam(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 16);
    steno__timeline_connection_begin(t);
    steno__timeline_raise_finalized(t, 3 * RATE); /* live resumes at the 3 s seam */
    assert_int_equal(steno__timeline_finalized_frame(t), 3 * RATE);
    send_range(t, 3 * RATE, 5 * RATE);
    /* provider 0.5 s on this connection = session 3.5 s */
    assert_int_equal(steno__timeline_to_session(t, 0.5), 3 * RATE + RATE / 2);
    steno__word_time w = {0.2, 0.6};
    steno__mapped m;
    assert_int_equal(steno__timeline_final(t, 0.0, 1.0, &w, 1, &m), STENO_OK);
    assert_true(m.emit);
    assert_int_equal(m.start_frame, 3 * RATE);
    /* finalized never moves back */
    steno__timeline_raise_finalized(t, RATE);
    assert_int_equal(steno__timeline_finalized_frame(t), 4 * RATE);
    steno__timeline_destroy(t);
}

static void test_reset_lets_a_lane_take_an_older_job(void **state)
{
    (void)state;
    steno__timeline *t = mk(RATE, 16);
    steno__timeline_set_limit(t, 9 * RATE);
    steno__timeline_raise_finalized(t, 6 * RATE);
    send_range(t, 6 * RATE, 9 * RATE);
    steno__mapped m;
    assert_int_equal(steno__timeline_final(t, 0.0, 3.0, NULL, 0, &m), STENO_OK);
    assert_int_equal(steno__timeline_finalized_frame(t), 9 * RATE);
    /* the same slot now replays an older job, [2 s, 4 s) */
    steno__timeline_reset(t);
    assert_int_equal(steno__timeline_finalized_frame(t), 0);
    steno__timeline_raise_finalized(t, 2 * RATE);
    steno__timeline_set_limit(t, 4 * RATE);
    send_range(t, 2 * RATE, 4 * RATE);
    steno__word_time w = {0.5, 0.9};
    assert_int_equal(steno__timeline_final(t, 0.0, 1.0, &w, 1, &m), STENO_OK);
    assert_true(m.emit); /* without the reset, 6-9 s final would have suppressed it */
    assert_int_equal(m.n_words, 1);
    assert_int_equal(m.start_frame, 2 * RATE);
    steno__timeline_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validates_and_uses_allocator),
        cmocka_unit_test(test_maps_exactly_across_connections_and_gaps),
        cmocka_unit_test(test_rounds_to_nearest_frame_at_16k_and_44k1),
        cmocka_unit_test(test_padding_advances_only_the_provider_clock),
        cmocka_unit_test(test_replay_overlap_suppresses_already_final_words),
        cmocka_unit_test(test_empty_final_still_advances_ack),
        cmocka_unit_test(test_results_reject_bad_arguments),
        cmocka_unit_test(test_interim_never_regresses_behind_final),
        cmocka_unit_test(test_reconnect_mid_utterance_loses_and_duplicates_nothing),
        cmocka_unit_test(test_gap_inside_connection_keeps_words_exact),
        cmocka_unit_test(test_segment_table_exhaustion_and_reuse),
        cmocka_unit_test(test_engine_loop_emits_every_word_once_across_reconnects),
        cmocka_unit_test(test_limit_drops_words_past_the_seam_and_clamps_the_span),
        cmocka_unit_test(test_result_for_audio_never_sent_is_refused),
        cmocka_unit_test(test_raise_finalized_makes_the_live_lane_skip_audio_before_the_seam),
        cmocka_unit_test(test_reset_lets_a_lane_take_an_older_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
