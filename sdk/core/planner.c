/* planner: recovery decisions — when to finalize, when to backfill, where the seam goes, what the
 * ring may release. */
#include "planner.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void steno__planner_config_default(steno__planner_config *cfg, uint32_t sample_rate,
                                   uint32_t chunk_frames)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sample_rate = sample_rate;
    cfg->chunk_frames = chunk_frames;
    cfg->max_backfill = 1;
    cfg->min_backfill_frames = sample_rate; /* 1 s: the live connection's burst absorbs less */
    cfg->seam_search_frames = (uint64_t)sample_rate * 3 / 2; /* 1.5 s: inside the pacing burst */
    cfg->split_frames = (uint64_t)sample_rate * 8;
    cfg->finalize_frames = (uint64_t)sample_rate * 3 / 2;
    /* -45 dBFS RMS: room noise and breaths sit below it, voiced speech well above. */
    cfg->pause_level = 184;
    /* twice the floor, up to -30 dBFS: LibriVox readings sit at 150-450 between words and
     * 1,500-2,500 in them */
    cfg->pause_over_noise_permille = 2000;
    cfg->pause_level_max = 1036;
}

void steno__planner_note_level(steno__planner *p, uint32_t level)
{
    if (!p->noise || level < p->noise)
        p->noise = level ? level : 1;
    else
        p->noise += (level - p->noise + 31) / 32;
}

uint32_t steno__planner_pause_threshold(const steno__planner *p)
{
    uint64_t rel = (uint64_t)p->noise * p->cfg.pause_over_noise_permille / 1000u;
    if (rel > p->cfg.pause_level_max)
        rel = p->cfg.pause_level_max;
    return rel > p->cfg.pause_level ? (uint32_t)rel : p->cfg.pause_level;
}

void steno__planner_init(steno__planner *p, const steno__planner_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    p->next_id = 1;
}

/*
 * The exact sum of q[i]^2 over [0, n). This runs on the network thread for every chunk sent (the
 * energy detector learns from every boundary) and for every chunk of a backlog when a recovery is
 * planned. SSE2 (every x86-64) squares and pairs eight samples per step with pmaddwd: a pair's sum
 * is at most 2 * 2^30 = 2^31, which fits its 32-bit lane when read as unsigned, so the sum stays
 * exact; the lanes are widened to 64 bits before they are added up.
 */
uint64_t steno__planner_sum_squares(const int16_t *q, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    __m128i acc2 = zero; /* two 64-bit lanes */
    for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(q + i));
        __m128i pairs = _mm_madd_epi16(v, v); /* four unsigned 32-bit sums of two squares */
        acc2 = _mm_add_epi64(acc2, _mm_unpacklo_epi32(pairs, zero));
        acc2 = _mm_add_epi64(acc2, _mm_unpackhi_epi32(pairs, zero));
    }
    uint64_t lanes[2];
    _mm_storeu_si128((__m128i *)(void *)lanes, acc2);
    acc = lanes[0] + lanes[1];
#endif
    for (; i < n; i++)
        acc += (uint64_t)((int32_t)q[i] * q[i]); /* a square is at most 2^30 */
    return acc;
}

/* RMS of the loudest 10 ms window in pcm[0, frames), over all channels. */
static uint32_t loudest_window(const int16_t *pcm, uint32_t frames, uint32_t channels, uint32_t win)
{
    if (!pcm || !frames || !win)
        return 0;
    double best = 0;
    for (uint32_t w = 0; w < frames; w += win) {
        uint32_t n = frames - w < win ? frames - w : win;
        uint64_t acc = steno__planner_sum_squares(pcm + (size_t)w * channels, (size_t)n * channels);
        double ms = (double)acc / ((double)n * channels);
        if (ms > best)
            best = ms;
    }
    return (uint32_t)(sqrt(best) + 0.5);
}

uint32_t steno__planner_boundary_level(const int16_t *before, uint32_t frames_before,
                                       const int16_t *after, uint32_t frames_after,
                                       uint32_t channels, uint32_t sample_rate)
{
    if (!channels || !sample_rate)
        return 0;
    uint32_t win = sample_rate / 100 ? sample_rate / 100 : 1; /* 10 ms */
    uint32_t span = 2 * win;                                  /* 20 ms each side */
    uint32_t nb = frames_before < span ? frames_before : span;
    uint32_t na = frames_after < span ? frames_after : span;
    uint32_t lb =
        before ? loudest_window(before + (size_t)(frames_before - nb) * channels, nb, channels, win)
               : 0;
    uint32_t la = after ? loudest_window(after, na, channels, win) : 0;
    return lb > la ? lb : la;
}

/* ---- jobs ---- */

static steno__job *find_job(steno__planner *p, uint32_t id)
{
    for (uint32_t i = 0; i < p->njobs; i++)
        if (p->jobs[i].id == id && p->jobs[i].state != STENO__JOB_FREE)
            return &p->jobs[i];
    return NULL;
}

steno__job *steno__planner_job(steno__planner *p, uint32_t id)
{
    return id ? find_job(p, id) : NULL;
}

/* Appends a QUEUED job whose audio [lo, fin) is already final; jobs are
 * created in frame order (each outage's backlog lies after every earlier job),
 * so the table stays sorted. */
static bool add_job(steno__planner *p, uint64_t lo, uint64_t fin, uint64_t hi)
{
    if (p->njobs == STENO__PLANNER_MAX_JOBS || hi <= lo)
        return false;
    if (p->njobs && p->jobs[p->njobs - 1].hi > lo)
        return false;
    steno__job *j = &p->jobs[p->njobs++];
    j->lo = lo;
    j->fin = fin > lo ? (fin < hi ? fin : hi) : lo;
    j->hi = hi;
    j->state = STENO__JOB_QUEUED;
    j->id = p->next_id++;
    if (!p->next_id)
        p->next_id = 1;
    p->jobs_created++;
    return true;
}

/* The boundary in bounds[0, n) nearest `target` within [lo, hi] that is a
 * pause, preferring later ones on a tie; else the quietest one there (the
 * dip between two words cuts less than the middle of one), the later on a
 * tie; else `target` itself when no boundary lies in [lo, hi]. */
static uint64_t pick_cut(const steno__planner *p, const steno__boundary *b, size_t n,
                         uint64_t target, uint64_t lo, uint64_t hi, bool *at_pause)
{
    uint64_t best = 0, near = 0;
    uint64_t best_d = UINT64_MAX, near_d = UINT64_MAX;
    uint32_t near_level = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        if (b[i].frame < lo || b[i].frame > hi)
            continue;
        uint64_t d = b[i].frame > target ? b[i].frame - target : target - b[i].frame;
        if (b[i].level <= near_level) {
            near_level = b[i].level;
            near_d = d;
            near = b[i].frame;
        }
        if (b[i].level <= steno__planner_pause_threshold(p) && d <= best_d) {
            best_d = d;
            best = b[i].frame;
        }
    }
    *at_pause = best_d != UINT64_MAX;
    if (*at_pause)
        return best;
    return near_d != UINT64_MAX ? near : target;
}

void steno__planner_on_live_open(steno__planner *p, uint64_t from, uint64_t live_fin,
                                 uint64_t newest, const steno__boundary *bounds, size_t n,
                                 steno__resume_plan *out)
{
    memset(out, 0, sizeof *out);
    out->live_from = from;
    if (!p->cfg.max_backfill || newest <= from || newest - from < p->cfg.min_backfill_frames)
        return;
    uint64_t search_lo =
        newest - from > p->cfg.seam_search_frames ? newest - p->cfg.seam_search_frames : from;
    bool pause = false;
    uint64_t seam = pick_cut(p, bounds, n, newest, search_lo, newest, &pause);
    if (seam <= from || seam - from < p->cfg.min_backfill_frames)
        return;
    /* Split a long backlog over the connections the session may open. */
    uint64_t len = seam - from;
    uint32_t pieces = 1;
    if (p->cfg.max_backfill > 1 && p->cfg.split_frames && len > p->cfg.split_frames) {
        uint64_t k = (len + p->cfg.split_frames - 1) / p->cfg.split_frames;
        pieces = k > p->cfg.max_backfill ? p->cfg.max_backfill : (uint32_t)k;
    }
    if (p->njobs + pieces > STENO__PLANNER_MAX_JOBS)
        return; /* no room to track it: replay on the live connection */
    if (p->njobs && p->jobs[p->njobs - 1].hi > from)
        return; /* overlaps a job (cannot happen: live audio follows every job) */
    /* The replay starts at the chunk holding live_fin, but [from, live_fin)
     * was finalized live: the first job starts final there, or its
     * connection would emit that audio a second time. */
    uint64_t lo = from;
    for (uint32_t i = 1; i < pieces; i++) {
        uint64_t ideal = from + len * i / pieces;
        uint64_t win = p->cfg.seam_search_frames / 2;
        bool cp = false;
        uint64_t cut =
            pick_cut(p, bounds, n, ideal, ideal > win ? ideal - win : 0, ideal + win, &cp);
        if (cut <= lo || cut >= seam)
            continue;
        add_job(p, lo, lo == from ? live_fin : lo, cut);
        p->jobs_split++;
        lo = cut;
        out->new_jobs++;
    }
    add_job(p, lo, lo == from ? live_fin : lo, seam);
    out->new_jobs++;
    out->live_from = seam;
    out->seam_at_pause = pause;
    if (pause)
        p->seams_at_pause++;
    else
        p->seams_forced++;
}

steno__job *steno__planner_next_queued(steno__planner *p)
{
    for (uint32_t i = 0; i < p->njobs; i++)
        if (p->jobs[i].state == STENO__JOB_QUEUED)
            return &p->jobs[i];
    return NULL;
}

uint32_t steno__planner_pending(const steno__planner *p)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->njobs; i++)
        if (p->jobs[i].state == STENO__JOB_QUEUED || p->jobs[i].state == STENO__JOB_ACTIVE)
            k++;
    return k;
}

uint32_t steno__planner_active(const steno__planner *p)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->njobs; i++)
        if (p->jobs[i].state == STENO__JOB_ACTIVE)
            k++;
    return k;
}

void steno__planner_job_start(steno__planner *p, uint32_t id)
{
    steno__job *j = steno__planner_job(p, id);
    if (j && j->state == STENO__JOB_QUEUED)
        j->state = STENO__JOB_ACTIVE;
}

void steno__planner_job_requeue(steno__planner *p, uint32_t id)
{
    steno__job *j = steno__planner_job(p, id);
    if (j && j->state == STENO__JOB_ACTIVE)
        j->state = STENO__JOB_QUEUED;
}

void steno__planner_job_progress(steno__planner *p, uint32_t id, uint64_t fin)
{
    steno__job *j = steno__planner_job(p, id);
    if (!j)
        return;
    if (fin > j->hi)
        fin = j->hi;
    if (fin > j->fin)
        j->fin = fin;
}

void steno__planner_job_done(steno__planner *p, uint32_t id)
{
    steno__job *j = steno__planner_job(p, id);
    if (!j)
        return;
    j->fin = j->hi;
    j->state = STENO__JOB_DONE;
}

void steno__planner_audio_gone(steno__planner *p, uint64_t frame)
{
    for (uint32_t i = 0; i < p->njobs; i++) {
        steno__job *j = &p->jobs[i];
        if (j->state == STENO__JOB_FREE || j->state == STENO__JOB_DONE)
            continue;
        if (frame >= j->hi) {
            j->fin = j->hi;
            j->state = STENO__JOB_DONE;
        } else if (frame > j->fin) {
            j->fin = frame;
        }
    }
}

/* Removes DONE jobs, keeping the order of the rest. */
static void compact(steno__planner *p)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->njobs; i++) {
        if (p->jobs[i].state == STENO__JOB_DONE || p->jobs[i].state == STENO__JOB_FREE)
            continue;
        if (k != i)
            p->jobs[k] = p->jobs[i];
        k++;
    }
    for (uint32_t i = k; i < p->njobs; i++)
        memset(&p->jobs[i], 0, sizeof p->jobs[i]);
    p->njobs = k;
}

uint64_t steno__planner_ack_frame(steno__planner *p, uint64_t live_fin)
{
    compact(p);
    for (uint32_t i = 0; i < p->njobs; i++)
        if (p->jobs[i].fin < p->jobs[i].hi)
            return p->jobs[i].fin;
    return live_fin;
}

bool steno__planner_live_final_ready(const steno__planner *p, uint64_t start)
{
    for (uint32_t i = 0; i < p->njobs; i++) {
        const steno__job *j = &p->jobs[i];
        if ((j->state == STENO__JOB_QUEUED || j->state == STENO__JOB_ACTIVE) && j->lo < start &&
            j->fin < j->hi)
            return false;
    }
    return true;
}

bool steno__planner_should_finalize(const steno__planner *p, uint64_t sent_end, uint64_t live_fin,
                                    uint32_t tail_level, bool outstanding)
{
    if (outstanding || !p->cfg.finalize_frames || sent_end <= live_fin)
        return false;
    uint64_t pending = sent_end - live_fin;
    if (pending >= 2 * p->cfg.finalize_frames)
        return true;
    return pending >= p->cfg.finalize_frames && tail_level <= steno__planner_pause_threshold(p);
}
