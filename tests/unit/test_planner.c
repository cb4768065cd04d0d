/* test_planner: the recovery decisions — energy detector, seam, jobs, ack point, auto-finalize. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "planner.h"

#define RATE 16000u
#define CHUNK 1600u /* 100 ms at 16 kHz */
#define SEC ((uint64_t)RATE)
#define SPEECH 3000u /* a boundary inside a word */
#define QUIET 50u    /* a boundary in a pause */

/* xorshift64*: the tests' own noise source, so every run sees the same signal. */
static uint64_t xs_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static steno__planner mk(uint32_t max_backfill)
{
    steno__planner_config c;
    steno__planner_config_default(&c, RATE, CHUNK);
    c.max_backfill = max_backfill;
    steno__planner p;
    steno__planner_init(&p, &c);
    return p;
}

/* Every chunk boundary in (from, newest] with level SPEECH, except those listed as pauses. */
static size_t bounds(steno__boundary *b, uint64_t from, uint64_t newest, const uint64_t *pauses,
                     size_t npauses)
{
    size_t n = 0;
    for (uint64_t f = from + CHUNK; f <= newest; f += CHUNK) {
        b[n].frame = f;
        b[n].level = SPEECH;
        for (size_t i = 0; i < npauses; i++)
            if (pauses[i] == f)
                b[n].level = QUIET;
        n++;
    }
    return n;
}

/* ---- config ---- */

static void test_config_default_scales_with_the_sample_rate(void **state)
{
    (void)state;
    steno__planner_config c;
    steno__planner_config_default(&c, 48000, 4800);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.chunk_frames, 4800);
    assert_int_equal(c.max_backfill, 1);
    assert_int_equal(c.min_backfill_frames, 48000);
    assert_int_equal(c.seam_search_frames, 72000);
    assert_int_equal(c.split_frames, 8 * 48000);
    assert_int_equal(c.finalize_frames, 72000); /* 1.5 s */
    /* -45 dBFS of full scale 32768 */
    assert_true(fabs(c.pause_level - 32768.0 * pow(10, -45.0 / 20)) < 1.0);
}

/* ---- the energy detector ---- */

static void tone(int16_t *pcm, uint32_t frames, uint32_t channels, uint32_t ch, double amp,
                 double hz)
{
    for (uint32_t i = 0; i < frames; i++)
        pcm[(size_t)i * channels + ch] = (int16_t)lrint(amp * sin(2 * M_PI * hz * i / RATE));
}

/* The vector sum is exact: every length around the 8-sample step, full-scale negative samples
 * (whose pairs reach 2^31, the top of a 32-bit lane) and random ones, against a plain loop. */
static void test_sum_of_squares_is_exact(void **state)
{
    (void)state;
    static int16_t q[1031];
    uint64_t s = 7;
    for (size_t n = 0; n <= 40; n++) {
        for (size_t i = 0; i < n; i++)
            q[i] = INT16_MIN;
        assert_true(steno__planner_sum_squares(q, n) == (uint64_t)n << 30);
    }
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)(xs_next(&s) % 1031), off = (size_t)(xs_next(&s) % 3);
        for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
            q[i] = (int16_t)(uint16_t)xs_next(&s);
        q[off] = INT16_MIN;
        if (off + n > sizeof q / sizeof q[0])
            n = sizeof q / sizeof q[0] - off;
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++)
            want += (uint64_t)((int64_t)q[off + i] * q[off + i]);
        assert_true(steno__planner_sum_squares(q + off, n) == want); /* unaligned too */
    }
}

static void test_level_of_silence_is_zero(void **state)
{
    (void)state;
    int16_t pcm[CHUNK] = {0};
    assert_int_equal(steno__planner_boundary_level(pcm, CHUNK, pcm, CHUNK, 1, RATE), 0);
    assert_int_equal(steno__planner_boundary_level(NULL, 0, NULL, 0, 1, RATE), 0);
}

static void test_level_of_a_tone_is_its_rms(void **state)
{
    (void)state;
    static int16_t before[CHUNK], after[CHUNK];
    tone(before, CHUNK, 1, 0, 10000, 1000); /* whole cycles in 10 ms: RMS exactly amp/sqrt 2 */
    uint32_t lv = steno__planner_boundary_level(before, CHUNK, after, CHUNK, 1, RATE);
    assert_true(fabs(lv - 10000 / sqrt(2)) <= 2);
    /* the same tone after the boundary only */
    lv = steno__planner_boundary_level(after, CHUNK, before, CHUNK, 1, RATE);
    assert_true(fabs(lv - 10000 / sqrt(2)) <= 2);
    assert_true(lv > 184);
}

static void test_level_of_noise_matches_its_measured_rms(void **state)
{
    (void)state;
    static int16_t noise[CHUNK];
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (uint32_t i = 0; i < CHUNK; i++)
        noise[i] = (int16_t)((int64_t)(xs_next(&s) % 2001) - 1000); /* uniform: RMS ~577 */
    /* The detector takes the louder of the two 10 ms windows before the boundary. */
    double best = 0;
    for (uint32_t w = CHUNK - 320; w < CHUNK; w += 160) {
        double acc = 0;
        for (uint32_t i = w; i < w + 160; i++)
            acc += (double)noise[i] * noise[i];
        if (acc / 160 > best)
            best = acc / 160;
    }
    uint32_t lv = steno__planner_boundary_level(noise, CHUNK, NULL, 0, 1, RATE);
    assert_int_equal(lv, (uint32_t)(sqrt(best) + 0.5));
    assert_true(lv > 500 && lv < 660);
}

static void test_quiet_room_noise_is_a_pause(void **state)
{
    (void)state;
    steno__planner_config c;
    steno__planner_config_default(&c, RATE, CHUNK);
    static int16_t noise[2 * CHUNK];
    uint64_t s = 42;
    for (uint32_t i = 0; i < 2 * CHUNK; i++)
        noise[i] = (int16_t)((int64_t)(xs_next(&s) % 201) - 100); /* RMS ~58: -55 dBFS */
    uint32_t lv = steno__planner_boundary_level(noise, CHUNK, noise + CHUNK, CHUNK, 1, RATE);
    assert_true(lv <= c.pause_level);
    assert_true(lv >= 40);
}

static void test_level_only_looks_20ms_either_side(void **state)
{
    (void)state;
    static int16_t before[CHUNK], after[CHUNK];
    /* Loud up to 21 ms before the boundary, loud from 21 ms after it: a word
     * that ends and one that starts just outside the window. */
    tone(before, CHUNK - 336, 1, 0, 20000, 500);
    tone(after + 336, CHUNK - 336, 1, 0, 20000, 500);
    assert_int_equal(steno__planner_boundary_level(before, CHUNK, after, CHUNK, 1, RATE), 0);
    /* One loud sample inside the window is seen. */
    after[319] = 3000;
    assert_true(steno__planner_boundary_level(before, CHUNK, after, CHUNK, 1, RATE) > 0);
}

static void test_level_averages_over_all_channels(void **state)
{
    (void)state;
    static int16_t stereo[2 * CHUNK];
    tone(stereo, CHUNK, 2, 1, 8000, 1000); /* right channel only */
    uint32_t lv = steno__planner_boundary_level(stereo, CHUNK, NULL, 0, 2, RATE);
    assert_true(fabs(lv - 8000 / sqrt(2) / sqrt(2)) <= 2);
    tone(stereo, CHUNK, 2, 0, 8000, 1000); /* both */
    lv = steno__planner_boundary_level(stereo, CHUNK, NULL, 0, 2, RATE);
    assert_true(fabs(lv - 8000 / sqrt(2)) <= 2);
}

static void test_level_with_short_sides_and_bad_format(void **state)
{
    (void)state;
    int16_t loud[50];
    for (int i = 0; i < 50; i++)
        loud[i] = (int16_t)(i % 2 ? 1000 : -1000);
    /* Fewer frames than a window: the RMS of what there is. */
    assert_int_equal(steno__planner_boundary_level(loud, 50, NULL, 0, 1, RATE), 1000);
    assert_int_equal(steno__planner_boundary_level(NULL, 0, loud, 50, 1, RATE), 1000);
    assert_int_equal(steno__planner_boundary_level(loud, 0, NULL, 0, 1, RATE), 0);
    assert_int_equal(steno__planner_boundary_level(loud, 50, loud, 50, 0, RATE), 0);
    assert_int_equal(steno__planner_boundary_level(loud, 50, loud, 50, 1, 0), 0);
}

/* ---- seam ---- */

static void test_seam_goes_to_the_pause_nearest_the_newest_audio(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    uint64_t from = 10 * SEC, newest = 16 * SEC;
    uint64_t pauses[] = {newest - 14 * CHUNK, newest - 8 * CHUNK, newest - 5 * CHUNK};
    size_t n = bounds(b, from, newest, pauses, 3);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, from + 300, newest, b, n, &plan);
    assert_int_equal(plan.live_from, newest - 5 * CHUNK);
    assert_true(plan.seam_at_pause);
    assert_int_equal(plan.new_jobs, 1);
    steno__job *j = steno__planner_next_queued(&p);
    assert_non_null(j);
    assert_int_equal(j->lo, from);
    assert_int_equal(j->hi, newest - 5 * CHUNK);
    assert_int_equal(j->state, STENO__JOB_QUEUED);
    assert_int_equal(p.seams_at_pause, 1);
    assert_int_equal(p.seams_forced, 0);
}

static void test_seam_without_a_pause_is_the_newest_boundary(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    uint64_t from = 0, newest = 4 * SEC;
    size_t n = bounds(b, from, newest, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.live_from, newest);
    assert_false(plan.seam_at_pause);
    assert_int_equal(plan.new_jobs, 1);
    assert_int_equal(p.seams_forced, 1);
    assert_int_equal(steno__planner_next_queued(&p)->hi, newest);
}

static void test_pause_outside_the_search_window_is_ignored(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    uint64_t from = 0, newest = 5 * SEC;
    /* 1.6 s before the newest audio: beyond the 1.5 s search. */
    uint64_t pauses[] = {newest - 16 * CHUNK};
    size_t n = bounds(b, from, newest, pauses, 1);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.live_from, newest);
    assert_false(plan.seam_at_pause);
    /* 1.5 s before it is inside. */
    steno__planner q = mk(1);
    pauses[0] = newest - 15 * CHUNK;
    n = bounds(b, from, newest, pauses, 1);
    steno__planner_on_live_open(&q, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.live_from, newest - 15 * CHUNK);
    assert_true(plan.seam_at_pause);
}

static void test_short_backlog_replays_on_the_live_connection(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    uint64_t from = 3 * SEC, newest = from + SEC - CHUNK; /* 0.9 s */
    size_t n = bounds(b, from, newest, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, from + 10, newest, b, n, &plan);
    assert_int_equal(plan.live_from, from);
    assert_int_equal(plan.new_jobs, 0);
    assert_null(steno__planner_next_queued(&p));
    assert_int_equal(steno__planner_pending(&p), 0);
    /* Exactly the minimum is enough. */
    newest = from + SEC;
    n = bounds(b, from, newest, NULL, 0);
    steno__planner_on_live_open(&p, from, from + 10, newest, b, n, &plan);
    assert_int_equal(plan.new_jobs, 1);
    assert_int_equal(plan.live_from, newest);
}

static void test_seam_too_close_to_the_replay_start_makes_no_job(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    /* 2 s of backlog whose only pause, 1.5 s back from the newest audio, lies
     * 0.5 s after `from`: a job there would be shorter than the minimum. */
    uint64_t from = 0, newest = 2 * SEC;
    uint64_t pauses[] = {5 * CHUNK};
    size_t n = bounds(b, from, newest, pauses, 1);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.live_from, from);
    assert_int_equal(plan.new_jobs, 0);
}

static void test_backfill_off_replays_everything_on_live(void **state)
{
    (void)state;
    steno__planner p = mk(0);
    steno__boundary b[256];
    uint64_t from = 0, newest = 20 * SEC;
    uint64_t pauses[] = {newest - 3 * CHUNK};
    size_t n = bounds(b, from, newest, pauses, 1);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.live_from, from);
    assert_int_equal(plan.new_jobs, 0);
    assert_int_equal(p.jobs_created, 0);
}

static void test_empty_backlog_makes_no_job(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, 8 * SEC, 8 * SEC, 8 * SEC, NULL, 0, &plan);
    assert_int_equal(plan.live_from, 8 * SEC);
    assert_int_equal(plan.new_jobs, 0);
}

/* The replay starts at the chunk holding live_fin, a little before it: the
 * audio between was finalized live, so the backfill must start final there. */
static void test_first_job_starts_final_at_the_live_finalized_point(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[128];
    uint64_t from = 10 * SEC, live_fin = from + 1234, newest = 15 * SEC;
    size_t n = bounds(b, from, newest, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, live_fin, newest, b, n, &plan);
    steno__job *j = steno__planner_next_queued(&p);
    assert_non_null(j);
    assert_int_equal(j->lo, from);
    assert_int_equal(j->fin, live_fin);
    /* The ring is held at live_fin, not before it. */
    assert_int_equal(steno__planner_ack_frame(&p, newest), live_fin);
}

/* ---- splitting ---- */

static void test_long_backlog_splits_at_pauses_over_the_connections(void **state)
{
    (void)state;
    steno__planner p = mk(2);
    steno__boundary b[512];
    uint64_t from = 0, live_fin = 700, newest = 20 * SEC;
    /* Ideal cut at ~9.95 s; a pause 0.6 s before it, and one near newest. */
    uint64_t pauses[] = {93 * CHUNK, newest - 2 * CHUNK};
    size_t n = bounds(b, from, newest, pauses, 2);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, live_fin, newest, b, n, &plan);
    assert_int_equal(plan.new_jobs, 2);
    assert_int_equal(plan.live_from, newest - 2 * CHUNK);
    assert_int_equal(p.njobs, 2);
    assert_int_equal(p.jobs[0].lo, from);
    assert_int_equal(p.jobs[0].fin, live_fin);
    assert_int_equal(p.jobs[0].hi, 93 * CHUNK);
    assert_int_equal(p.jobs[1].lo, 93 * CHUNK);
    assert_int_equal(p.jobs[1].fin, 93 * CHUNK);
    assert_int_equal(p.jobs[1].hi, newest - 2 * CHUNK);
    assert_int_equal(p.jobs_split, 1);
    assert_true(p.jobs[0].id != p.jobs[1].id && p.jobs[0].id && p.jobs[1].id);
}

static void test_split_pieces_are_capped_by_max_backfill(void **state)
{
    (void)state;
    steno__planner p = mk(4);
    steno__boundary b[512];
    uint64_t from = 0, newest = 20 * SEC; /* 20 s / 8 s per piece: 3 pieces */
    size_t n = bounds(b, from, newest, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, from, 0, newest, b, n, &plan);
    assert_int_equal(plan.new_jobs, 3);
    /* The pieces tile [from, seam) in order, none longer than the split size. */
    uint64_t at = from;
    for (uint32_t i = 0; i < p.njobs; i++) {
        assert_int_equal(p.jobs[i].lo, at);
        assert_true(p.jobs[i].hi - p.jobs[i].lo <= p.cfg.split_frames);
        assert_int_equal(p.jobs[i].hi % CHUNK, 0);
        at = p.jobs[i].hi;
    }
    assert_int_equal(at, plan.live_from);

    steno__planner q = mk(2);
    n = bounds(b, from, 40 * SEC, NULL, 0);
    steno__planner_on_live_open(&q, from, 0, 40 * SEC, b, n, &plan);
    assert_int_equal(plan.new_jobs, 2); /* 5 pieces wanted, 2 connections */
}

static void test_one_connection_never_splits(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    steno__boundary b[512];
    size_t n = bounds(b, 0, 30 * SEC, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, 0, 0, 30 * SEC, b, n, &plan);
    assert_int_equal(plan.new_jobs, 1);
    assert_int_equal(p.jobs_split, 0);
}

/* ---- job lifecycle ---- */

static uint32_t one_job(steno__planner *p, uint64_t from, uint64_t live_fin, uint64_t newest)
{
    steno__boundary b[512];
    size_t n = bounds(b, from, newest, NULL, 0);
    steno__resume_plan plan;
    uint32_t before = p->njobs;
    steno__planner_on_live_open(p, from, live_fin, newest, b, n, &plan);
    assert_int_equal(plan.new_jobs, 1);
    assert_int_equal(p->njobs, before + 1);
    return p->jobs[p->njobs - 1].id;
}

static void test_job_lifecycle_queued_active_requeue_progress_done(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint32_t id = one_job(&p, 0, 0, 5 * SEC);
    steno__job *j = steno__planner_job(&p, id);
    assert_int_equal(j->state, STENO__JOB_QUEUED);
    assert_int_equal(steno__planner_pending(&p), 1);
    assert_int_equal(steno__planner_active(&p), 0);

    steno__planner_job_start(&p, id);
    assert_int_equal(j->state, STENO__JOB_ACTIVE);
    assert_int_equal(steno__planner_active(&p), 1);
    assert_null(steno__planner_next_queued(&p));

    steno__planner_job_progress(&p, id, 2 * SEC);
    assert_int_equal(j->fin, 2 * SEC);
    steno__planner_job_progress(&p, id, SEC); /* never back */
    assert_int_equal(j->fin, 2 * SEC);

    steno__planner_job_requeue(&p, id); /* connection lost: fin kept */
    assert_int_equal(j->state, STENO__JOB_QUEUED);
    assert_int_equal(j->fin, 2 * SEC);
    assert_ptr_equal(steno__planner_next_queued(&p), j);
    steno__planner_job_requeue(&p, id); /* not active: no change */
    assert_int_equal(j->state, STENO__JOB_QUEUED);

    steno__planner_job_start(&p, id);
    steno__planner_job_progress(&p, id, 99 * SEC); /* clamps to hi */
    assert_int_equal(j->fin, j->hi);
    steno__planner_job_done(&p, id);
    assert_int_equal(j->state, STENO__JOB_DONE);
    assert_int_equal(steno__planner_pending(&p), 0);
    steno__planner_job_start(&p, id); /* done stays done */
    assert_int_equal(j->state, STENO__JOB_DONE);

    /* The ack drops it from the table. */
    assert_int_equal(steno__planner_ack_frame(&p, 7 * SEC), 7 * SEC);
    assert_null(steno__planner_job(&p, id));
    assert_int_equal(p.njobs, 0);
    /* Unknown ids are ignored. */
    steno__planner_job_start(&p, id);
    steno__planner_job_progress(&p, id, SEC);
    steno__planner_job_done(&p, 0);
    assert_null(steno__planner_job(&p, 0));
}

static void test_done_without_progress_finalizes_the_whole_job(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint32_t id = one_job(&p, 0, 0, 5 * SEC);
    steno__planner_job_start(&p, id);
    steno__planner_job_done(&p, id);
    assert_int_equal(steno__planner_job(&p, id)->fin, 5 * SEC);
}

/* ---- ack point ---- */

static void test_ack_frame_walks_jobs_in_order_across_live_gaps(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    /* Outage 1: job A [0, 5 s). Live finalizes up to 9 s. Outage 2: job B [9 s, 14 s). */
    uint32_t a = one_job(&p, 0, 0, 5 * SEC);
    uint32_t b = one_job(&p, 9 * SEC, 9 * SEC, 14 * SEC);
    uint64_t live_fin = 16 * SEC;
    assert_int_equal(steno__planner_ack_frame(&p, live_fin), 0);
    steno__planner_job_progress(&p, a, 3 * SEC);
    assert_int_equal(steno__planner_ack_frame(&p, live_fin), 3 * SEC);
    /* B finishing first does not release A's audio. */
    steno__planner_job_done(&p, b);
    assert_int_equal(steno__planner_ack_frame(&p, live_fin), 3 * SEC);
    steno__planner_job_done(&p, a);
    assert_int_equal(steno__planner_ack_frame(&p, live_fin), live_fin);
    assert_int_equal(p.njobs, 0);
}

static void test_ack_frame_stops_at_the_oldest_unfinished_job(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint32_t a = one_job(&p, 0, 0, 5 * SEC);
    uint32_t b = one_job(&p, 9 * SEC, 9 * SEC, 14 * SEC);
    steno__planner_job_done(&p, a);
    steno__planner_job_progress(&p, b, 11 * SEC);
    assert_int_equal(steno__planner_ack_frame(&p, 20 * SEC), 11 * SEC);
    assert_null(steno__planner_job(&p, a));
    assert_non_null(steno__planner_job(&p, b));
    /* A job whose fin reached hi without done() no longer holds the ring. */
    steno__planner_job_progress(&p, b, 14 * SEC);
    assert_int_equal(steno__planner_ack_frame(&p, 20 * SEC), 20 * SEC);
}

static void test_ack_frame_without_jobs_is_the_live_point(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    assert_int_equal(steno__planner_ack_frame(&p, 12345), 12345);
}

/* ---- audio gone ---- */

static void test_audio_gone_finishes_jobs_below_it_and_raises_the_next(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint32_t a = one_job(&p, 0, 0, 5 * SEC);
    uint32_t b = one_job(&p, 9 * SEC, 9 * SEC, 14 * SEC);
    steno__planner_job_start(&p, a);
    steno__planner_audio_gone(&p, 10 * SEC);
    assert_int_equal(steno__planner_job(&p, a)->state, STENO__JOB_DONE);
    assert_int_equal(steno__planner_job(&p, a)->fin, 5 * SEC);
    assert_int_equal(steno__planner_job(&p, b)->state, STENO__JOB_QUEUED);
    assert_int_equal(steno__planner_job(&p, b)->fin, 10 * SEC);
    assert_int_equal(steno__planner_pending(&p), 1);
    assert_int_equal(steno__planner_ack_frame(&p, 20 * SEC), 10 * SEC);
    /* Gone below fin changes nothing. */
    steno__planner_audio_gone(&p, 9 * SEC);
    assert_int_equal(steno__planner_job(&p, b)->fin, 10 * SEC);
    steno__planner_audio_gone(&p, 14 * SEC);
    assert_int_equal(steno__planner_pending(&p), 0);
}

/* ---- ordered finals ---- */

static void test_live_final_waits_for_an_unfinished_job_before_it(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint32_t a = one_job(&p, 2 * SEC, 2 * SEC, 6 * SEC);
    assert_false(steno__planner_live_final_ready(&p, 6 * SEC));
    assert_false(steno__planner_live_final_ready(&p, 7 * SEC));
    /* Audio before the job (finalized live earlier) is never held. */
    assert_true(steno__planner_live_final_ready(&p, SEC));
    assert_true(steno__planner_live_final_ready(&p, 2 * SEC));
    steno__planner_job_start(&p, a);
    steno__planner_job_progress(&p, a, 5 * SEC);
    assert_false(steno__planner_live_final_ready(&p, 6 * SEC));
    steno__planner_job_done(&p, a);
    assert_true(steno__planner_live_final_ready(&p, 6 * SEC));
}

/* ---- auto-finalize ---- */

static void test_should_finalize_thresholds(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint64_t f = p.cfg.finalize_frames, fin = 10 * SEC;
    assert_false(steno__planner_should_finalize(&p, fin + f - 1, fin, QUIET, false));
    assert_true(steno__planner_should_finalize(&p, fin + f, fin, QUIET, false));
    assert_true(steno__planner_should_finalize(&p, fin + f, fin, p.cfg.pause_level, false));
    assert_false(steno__planner_should_finalize(&p, fin + f, fin, p.cfg.pause_level + 1, false));
    assert_false(steno__planner_should_finalize(&p, fin + 2 * f - 1, fin, SPEECH, false));
    assert_true(steno__planner_should_finalize(&p, fin + 2 * f, fin, SPEECH, false));
    /* One at a time. */
    assert_false(steno__planner_should_finalize(&p, fin + 3 * f, fin, QUIET, true));
    /* Nothing unfinalized, or finalized ahead of what was sent (a seam). */
    assert_false(steno__planner_should_finalize(&p, fin, fin, QUIET, false));
    assert_false(steno__planner_should_finalize(&p, fin, fin + f, QUIET, false));
    p.cfg.finalize_frames = 0;
    assert_false(steno__planner_should_finalize(&p, fin + 100 * SEC, fin, QUIET, false));
}

/* ---- table full ---- */

static void test_full_job_table_replays_on_live(void **state)
{
    (void)state;
    steno__planner p = mk(1);
    uint64_t at = 0;
    for (uint32_t i = 0; i < STENO__PLANNER_MAX_JOBS; i++) {
        one_job(&p, at, at, at + 2 * SEC);
        at += 3 * SEC;
    }
    assert_int_equal(p.njobs, STENO__PLANNER_MAX_JOBS);
    steno__boundary b[64];
    size_t n = bounds(b, at, at + 3 * SEC, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, at, at + 5, at + 3 * SEC, b, n, &plan);
    assert_int_equal(plan.live_from, at);
    assert_int_equal(plan.new_jobs, 0);
    assert_int_equal(p.njobs, STENO__PLANNER_MAX_JOBS);
    /* Once one is done and acknowledged, there is room again. */
    steno__planner_job_done(&p, p.jobs[0].id);
    steno__planner_ack_frame(&p, at);
    steno__planner_on_live_open(&p, at, at + 5, at + 3 * SEC, b, n, &plan);
    assert_int_equal(plan.new_jobs, 1);
}

static void test_split_that_would_overflow_the_table_makes_no_job(void **state)
{
    (void)state;
    steno__planner p = mk(2);
    uint64_t at = 0;
    for (uint32_t i = 0; i < STENO__PLANNER_MAX_JOBS - 1; i++) {
        one_job(&p, at, at, at + 2 * SEC);
        at += 3 * SEC;
    }
    steno__boundary b[512];
    size_t n = bounds(b, at, at + 20 * SEC, NULL, 0);
    steno__resume_plan plan;
    steno__planner_on_live_open(&p, at, at, at + 20 * SEC, b, n, &plan);
    assert_int_equal(plan.new_jobs, 0);
    assert_int_equal(plan.live_from, at);
}

static void test_noise_floor_makes_quiet_boundaries_of_a_noisy_room_pauses(void **state)
{
    (void)state;
    steno__planner_config c;
    steno__planner_config_default(&c, 16000, 1600);
    steno__planner p;
    steno__planner_init(&p, &c);
    /* nothing heard yet: only the absolute -45 dBFS counts */
    assert_int_equal(steno__planner_pause_threshold(&p), c.pause_level);
    /* a reading with a 300 floor between words and 2,000 in them */
    for (int i = 0; i < 100; i++)
        steno__planner_note_level(&p, i % 5 == 0 ? 300 : 2000);
    uint32_t th = steno__planner_pause_threshold(&p);
    assert_true(th >= 600 && th <= c.pause_level_max); /* about twice the floor */
    assert_true(steno__planner_should_finalize(&p, 32000, 0, 350, false));
    assert_false(steno__planner_should_finalize(&p, 32000, 0, 2000, false));
    /* the floor drops at once to a quieter room; it never rises to speech level */
    steno__planner_note_level(&p, 50);
    assert_int_equal(steno__planner_pause_threshold(&p), c.pause_level);
    for (int i = 0; i < 20; i++)
        steno__planner_note_level(&p, 3000);
    assert_true(steno__planner_pause_threshold(&p) <= c.pause_level_max);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_default_scales_with_the_sample_rate),
        cmocka_unit_test(test_sum_of_squares_is_exact),
        cmocka_unit_test(test_level_of_silence_is_zero),
        cmocka_unit_test(test_level_of_a_tone_is_its_rms),
        cmocka_unit_test(test_level_of_noise_matches_its_measured_rms),
        cmocka_unit_test(test_quiet_room_noise_is_a_pause),
        cmocka_unit_test(test_level_only_looks_20ms_either_side),
        cmocka_unit_test(test_level_averages_over_all_channels),
        cmocka_unit_test(test_level_with_short_sides_and_bad_format),
        cmocka_unit_test(test_seam_goes_to_the_pause_nearest_the_newest_audio),
        cmocka_unit_test(test_seam_without_a_pause_is_the_newest_boundary),
        cmocka_unit_test(test_pause_outside_the_search_window_is_ignored),
        cmocka_unit_test(test_short_backlog_replays_on_the_live_connection),
        cmocka_unit_test(test_seam_too_close_to_the_replay_start_makes_no_job),
        cmocka_unit_test(test_backfill_off_replays_everything_on_live),
        cmocka_unit_test(test_empty_backlog_makes_no_job),
        cmocka_unit_test(test_first_job_starts_final_at_the_live_finalized_point),
        cmocka_unit_test(test_long_backlog_splits_at_pauses_over_the_connections),
        cmocka_unit_test(test_split_pieces_are_capped_by_max_backfill),
        cmocka_unit_test(test_one_connection_never_splits),
        cmocka_unit_test(test_job_lifecycle_queued_active_requeue_progress_done),
        cmocka_unit_test(test_done_without_progress_finalizes_the_whole_job),
        cmocka_unit_test(test_ack_frame_walks_jobs_in_order_across_live_gaps),
        cmocka_unit_test(test_ack_frame_stops_at_the_oldest_unfinished_job),
        cmocka_unit_test(test_ack_frame_without_jobs_is_the_live_point),
        cmocka_unit_test(test_audio_gone_finishes_jobs_below_it_and_raises_the_next),
        cmocka_unit_test(test_live_final_waits_for_an_unfinished_job_before_it),
        cmocka_unit_test(test_should_finalize_thresholds),
        cmocka_unit_test(test_full_job_table_replays_on_live),
        cmocka_unit_test(test_split_that_would_overflow_the_table_makes_no_job),
        cmocka_unit_test(test_noise_floor_makes_quiet_boundaries_of_a_noisy_room_pauses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
