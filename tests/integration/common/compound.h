/* compound: compound fault schedules run against a streaming session, and the witness-side
 * proof that holds with parallel catch-up — each connection's audio located in the written
 * stream, finals on one timeline, and the live lag after every reconnect. */
#ifndef STENO_TESTS_COMMON_COMPOUND_H
#define STENO_TESTS_COMMON_COMPOUND_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "sessions.h"

/*
 * A schedule is a list of faults at capture-time positions (seconds of audio
 * the application has written), so it strikes the same audio at any pace.
 * The session streams through steno-chaos in front of steno-server:
 *   RESET       the proxy RSTs every connection (live and backfill)
 *   STALL       the server stops reading and sending on the live connection
 *               (half-open: TCP stays up, no pongs); lifted once the
 *               session has replaced it
 *   BLACKHOLE   the proxy stops forwarding on every open connection
 *               (half-open on the network path); lifted once replaced
 *   REFUSE_ON   the server refuses every handshake (503) and the proxy
 *               RSTs every connection: the provider is unreachable
 *   REFUSE_OFF  handshakes succeed again
 */
typedef enum h_fault_kind {
    H_F_RESET,
    H_F_STALL,
    H_F_BLACKHOLE,
    H_F_REFUSE_ON,
    H_F_REFUSE_OFF,
} h_fault_kind;

typedef struct h_fault_step {
    double at_s; /* seconds of audio written when it strikes */
    h_fault_kind kind;
} h_fault_step;

#define H_MAX_STEPS 12
typedef struct h_schedule {
    const char *name;
    const char *what; /* one line for logs and tables */
    size_t n;
    h_fault_step step[H_MAX_STEPS];
} h_schedule;

/* The compound schedules of ~25 s of audio: stall_after_reset, resets_1s_apart, refused_6s. */
extern const h_schedule h_schedules[];
extern const size_t h_n_schedules;
/* The schedule of that name, or NULL. */
const h_schedule *h_schedule_find(const char *name);
const char *h_fault_name(h_fault_kind k);
/* Audio (seconds) a stream needs for the schedule: its last step plus room to recover. */
double h_schedule_audio_s(const h_schedule *s);

/* Runs the schedule against r, which streams through chaos to srv: waits for each step's
 * capture position, strikes, and lifts stalls and blackholes once the session reconnected.
 * Returns after the last step, with every fault lifted; when strikes is not NULL, strikes[i]
 * is the wall-clock time step i struck. */
void h_schedule_run(const h_schedule *s, h_run *r, const h_server *srv, const h_server *chaos,
                    double *strikes);

/* A session at the SDK's defaults for everything that shapes recovery (pacing, liveness,
 * backoff, backfill, auto-finalize, ring): only the endpoint, the audio format and the event
 * collector are set. */
void h_run_init_provider_defaults(h_run *r, const char *name, int port);

/* ---- the probe: the session's stats sampled while it streams ---- */

typedef struct h_probe_sample {
    double wall;
    uint64_t written;  /* stats.samples_written */
    uint64_t acked;    /* stats.samples_acked */
    uint64_t live_lag; /* stats.live_lag_samples */
} h_probe_sample;

typedef struct h_probe {
    steno_session *s;
    uint32_t period_ms;
    pthread_t th;
    _Atomic int stop;
    h_probe_sample *v; /* read only after h_probe_stop */
    size_t n, cap;
} h_probe;

/* Samples every period_ms (a measurement, not a synchronisation) until stopped. */
void h_probe_start(h_probe *p, steno_session *s, uint32_t period_ms);
void h_probe_stop(h_probe *p);
void h_probe_free(h_probe *p);

/* ---- the witness: what the server received, placed in the written stream ---- */

typedef struct h_wconn {
    char rid[64];
    int id;
    bool live;          /* opened by CONNECTED/RECONNECTED; else a backfill connection */
    double start_wall;  /* handshake, server clock (wall) */
    double end_wall;    /* connection end, or +inf while open */
    uint64_t base, end; /* its audio: session samples [base, end) */
    uint64_t gaps;      /* samples it skipped inside [base, end) */
    size_t nframes;
    double *f_wall;    /* per audio message: arrival (wall) ... */
    uint64_t *f_first; /* ... and its session samples [f_first, f_end) */
    uint64_t *f_end;
    char close_cause[32];
} h_wconn;

typedef struct h_witness {
    h_wconn *c;
    size_t n;
} h_witness;

/* Places every connection that received audio (server records + frame logs) in pcm[0..written);
 * false with the reason when a connection's audio is not a slice of the written stream. */
bool h_witness_load(h_witness *w, const h_server *srv, h_collector *col, const int16_t *pcm,
                    uint64_t written, uint32_t chunk_frames, char *err, size_t errlen);
void h_witness_free(h_witness *w);
/* Samples of [0, written) that no connection received; the first ranges described in desc. */
uint64_t h_witness_unreceived(const h_witness *w, uint64_t written, char *desc, size_t len);
/* Connections the server closed for sending faster than its --max-rate. */
size_t h_witness_rate_closes(const h_witness *w);

/* ---- finals on one timeline ---- */

typedef struct h_cover {
    uint64_t covered, uncovered, twice;
    size_t finals, backfill_finals;
    char uncovered_desc[512];
} h_cover;

/*
 * The finals (null engine when spans: each names its samples' checksum) sorted by first_sample:
 * times agree with the samples and are monotonic, no sample is covered twice, each span's
 * checksum matches the written audio it was mapped to, and live finals (not from backfill)
 * arrive in timeline order. Fills out (uncovered ranges too) and returns true, or false with the
 * first violation in err. Uncovered audio is reported in out, not as a violation: the caller
 * decides (it is the samples lost when nothing is still pending).
 */
bool h_check_timeline(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                      bool spans, h_cover *out, char *err, size_t errlen);
/* AUDIO_DROPPED samples in all, the first ranges described in desc. */
uint64_t h_dropped(h_collector *c, char *desc, size_t len);

/* ---- live lag after each reconnect ---- */

typedef struct h_lag {
    char rid[64];
    double t;         /* RECONNECTED, wall */
    double lived_s;   /* how long that live connection lasted (to its end or the stream's) */
    double witness_s; /* until the server had the live audio within 1 s of what was written,
                         from the frame log; -1 never */
    double stat_s;    /* until stats.live_lag_samples fell under 1 s; -1 never */
    double max_lag_s; /* the largest witness lag in that connection's life */
    double catchup_s; /* until samples_acked reached what was written at the reconnect; -1 */
    uint64_t backlog; /* written - acked at the reconnect */
} h_lag;

/* One h_lag per RECONNECTED (at most max), each measured until the next of the nstrikes fault
 * times (wall) after it; returns how many. */
size_t h_lag_analyse(h_collector *col, const h_probe *p, const h_witness *w, uint32_t rate,
                     const double *strikes, size_t nstrikes, h_lag *out, size_t max);

#endif
