/* planner: recovery decisions — when to finalize, when to backfill, where the seam goes, what the
 * ring may release. */
#ifndef STENO_CORE_PLANNER_H
#define STENO_CORE_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Everything here is in session frames (samples per channel since the first
 * frame the app wrote). The planner does no I/O and has no clock: the engine
 * (and the deterministic simulation in tests/unit) tell it what happened and
 * ask it what to do, so thousands of fault schedules can be replayed exactly.
 *
 * The model. Session audio is covered by one LIVE lane (the primary
 * connection) and by backfill JOBS. A job is a range [lo, hi) of audio that
 * was buffered during an outage; a backfill connection replays it at the
 * provider's pace while the live connection carries new audio from hi (the
 * seam) on. Each job tracks fin: its audio [lo, fin) is covered by emitted
 * finals. The live lane's own finalized point comes from its timeline.
 *
 * The ring releases audio strictly oldest first, so what it may release is
 * the prefix that is final everywhere: the fin of the oldest unfinished job,
 * or the live lane's finalized point when no job is unfinished (jobs are
 * disjoint, ordered, and below the live lane's audio; the audio between two
 * jobs was finalized live before the outage that created the later job).
 */

#define STENO__PLANNER_MAX_JOBS 16u

typedef enum steno__job_state {
    STENO__JOB_FREE = 0,
    STENO__JOB_QUEUED, /* waiting for a backfill connection */
    STENO__JOB_ACTIVE, /* a backfill connection owns it */
    STENO__JOB_DONE,   /* every frame of it is final (dropped from the table by ack) */
} steno__job_state;

typedef struct steno__job {
    uint64_t lo, hi; /* session frames [lo, hi) */
    uint64_t fin;    /* [lo, fin) final; lo <= fin <= hi */
    steno__job_state state;
    uint32_t id; /* stable while the job lives; never 0 */
} steno__job;

typedef struct steno__planner_config {
    uint32_t sample_rate;
    uint32_t chunk_frames;
    /* Backfill connections this session may hold at once; 0 = backfill off. */
    uint32_t max_backfill;
    /* A backlog shorter than this is replayed on the live connection (its
     * pacing burst absorbs it at once): a second connection would cost more
     * than it saves. */
    uint64_t min_backfill_frames;
    /* How far back from the newest audio the seam may move to land in a pause. */
    uint64_t seam_search_frames;
    /* A backlog longer than this per connection is split over several
     * backfill connections (when max_backfill allows), at pauses. */
    uint64_t split_frames;
    /* Auto-finalize: ask the provider to commit once this much sent audio is
     * unfinalized on a healthy live connection, at a pause; at once past
     * twice this. 0 = never. */
    uint64_t finalize_frames;
    /* A chunk boundary whose level (see steno__planner_boundary_level) is at
     * most this is a pause, whatever the noise floor. */
    uint32_t pause_level;
    /* Above the noise floor: a boundary at most pause_over_noise_permille of
     * the tracked floor (and at most pause_level_max) is a pause too, since
     * real recordings rarely get below -45 dBFS between words. */
    uint32_t pause_over_noise_permille;
    uint32_t pause_level_max;
} steno__planner_config;

typedef struct steno__planner {
    steno__planner_config cfg;
    steno__job jobs[STENO__PLANNER_MAX_JOBS]; /* ordered by lo; FREE entries at the end */
    uint32_t njobs;
    uint32_t next_id;
    uint64_t jobs_created, jobs_split, seams_at_pause, seams_forced;
    uint32_t noise; /* tracked noise floor (boundary level units); 0 = none yet */
} steno__planner;

/* Fills cfg with the defaults for this audio: 1 backfill connection, backlog
 * of at least 1 s, seam search 1.5 s, split above 8 s, finalize at 1.5 s, a
 * pause below about -45 dBFS RMS. */
void steno__planner_config_default(steno__planner_config *cfg, uint32_t sample_rate,
                                   uint32_t chunk_frames);
void steno__planner_init(steno__planner *p, const steno__planner_config *cfg);

/*
 * The energy detector: the level of the audio around a chunk boundary, as
 * the RMS (in 16-bit sample units) of the loudest 10 ms window among the
 * last 20 ms before it and the first 20 ms after it. `before`/`after` point
 * at interleaved 16-bit PCM; either may be NULL (no audio on that side).
 * frames_before/after: frames available on each side. Quiet on both sides of
 * a boundary means a word does not straddle it.
 */
uint32_t steno__planner_boundary_level(const int16_t *before, uint32_t frames_before,
                                       const int16_t *after, uint32_t frames_after,
                                       uint32_t channels, uint32_t sample_rate);
/* The exact sum of the squares of q[0, n) (the detector's inner loop). */
uint64_t steno__planner_sum_squares(const int16_t *q, size_t n);

/*
 * The noise floor follows the quietest boundaries heard: it drops at once to
 * a quieter level and rises by 1/32 of the way per boundary (about 3 s of
 * 100 ms chunks to follow a noisier room), so speech hardly lifts it.
 */
void steno__planner_note_level(steno__planner *p, uint32_t level);
/* The level at or under which a boundary is a pause now. */
uint32_t steno__planner_pause_threshold(const steno__planner *p);

/* A candidate seam: the frame of a chunk boundary and its level. */
typedef struct steno__boundary {
    uint64_t frame;
    uint32_t level;
} steno__boundary;

/* What the live connection should do after (re)opening. */
typedef struct steno__resume_plan {
    uint64_t live_from; /* first frame the live connection sends (a chunk boundary) */
    uint32_t new_jobs;  /* backfill jobs created for [from, live_from) (0: replay on live) */
    bool seam_at_pause; /* live_from is a quiet boundary (else the newest one) */
} steno__resume_plan;

/*
 * The live connection (re)opened. live_fin: the live lane's finalized frame
 * (nothing after it is final on the live lane); the replay must start at
 * `from`, the first frame of the chunk holding live_fin (<= live_fin).
 * newest: the end of the newest audio written. bounds: the chunk boundaries
 * in (from, newest], ascending, with their levels (n may be 0). When the
 * backlog newest - from is at least min_backfill_frames and backfill is on,
 * the seam is the boundary nearest newest, within seam_search_frames of it,
 * at a pause if one exists there (else the newest boundary), and
 * [from, seam) becomes one or more QUEUED jobs (split at pauses into pieces
 * of at most split_frames when max_backfill > 1); the first starts final at
 * live_fin, since [from, live_fin) was finalized live. When backfill is off, the
 * backlog is short, or the job table is full, live_from = from (replay on
 * the live connection, as without backfill).
 */
void steno__planner_on_live_open(steno__planner *p, uint64_t from, uint64_t live_fin,
                                 uint64_t newest, const steno__boundary *bounds, size_t n,
                                 steno__resume_plan *out);

/* The oldest QUEUED job, to hand to a new backfill connection, or NULL. */
steno__job *steno__planner_next_queued(steno__planner *p);
/* Job by id, or NULL once it is gone. */
steno__job *steno__planner_job(steno__planner *p, uint32_t id);
/* Jobs not yet DONE (queued or active). */
uint32_t steno__planner_pending(const steno__planner *p);
uint32_t steno__planner_active(const steno__planner *p);

/* A backfill connection took the job (QUEUED -> ACTIVE). */
void steno__planner_job_start(steno__planner *p, uint32_t id);
/* Its connection was lost: back to QUEUED (its fin is kept: replay resumes there). */
void steno__planner_job_requeue(steno__planner *p, uint32_t id);
/* Finals on the job's connection made [lo, fin) final (fin never moves back, clamps to hi). */
void steno__planner_job_progress(steno__planner *p, uint32_t id, uint64_t fin);
/* The provider flushed and closed after the job's last frame: all of it is final. */
void steno__planner_job_done(steno__planner *p, uint32_t id);
/* Audio [.., frame) left the ring without a final (evicted in an outage): jobs below
 * frame count as done there, so the ring is not held for audio that is gone. */
void steno__planner_audio_gone(steno__planner *p, uint64_t frame);

/* The frame through which the ring may release audio: the fin of the oldest
 * unfinished job, else live_fin. Also drops DONE jobs from the table. */
uint64_t steno__planner_ack_frame(steno__planner *p, uint64_t live_fin);

/* ordered_finals: may a live final starting at frame `start` be delivered
 * now? No while an unfinished job holds audio before it. */
bool steno__planner_live_final_ready(const steno__planner *p, uint64_t start);

/*
 * Auto-finalize on a healthy live connection: sent_end is the end of the
 * audio sent on it, live_fin its finalized frame, tail_level the level at
 * the newest sent boundary. True when unfinalized audio (sent_end - live_fin)
 * is at least finalize_frames and tail_level is a pause, or at least twice
 * finalize_frames. Never while a finalize is outstanding.
 */
bool steno__planner_should_finalize(const steno__planner *p, uint64_t sent_end, uint64_t live_fin,
                                    uint32_t tail_level, bool outstanding);

#endif
