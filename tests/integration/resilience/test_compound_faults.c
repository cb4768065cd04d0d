/* test_compound_faults: faults in bunches at the provider's real pace lose nothing, finalize
 * nothing twice, and live audio is back within a bound after every reconnect. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * One compound schedule (argv[1], see common/compound.c) against a session at
 * the SDK's defaults — provider pacing, liveness, backoff, backfill, ring —
 * streaming a deterministic signal at real time through steno-chaos to a
 * steno-server that enforces Deepgram's ingest limit (--max-rate 1.25
 * --burst-ms 2000) with its null engine (every final names its samples and
 * their checksum). No time is scaled: capture, pacing and the server's limit
 * are all at 1x.
 *
 * Proven from the witnesses, which share no code with the SDK:
 *  - zero loss: no AUDIO_DROPPED, and every written sample reached the
 *    server on some connection (frame logs) and is covered by a final;
 *  - exactly once, one timeline: finals sorted by first sample never overlap,
 *    each one's checksum is the written audio it was mapped to, live finals
 *    (not from backfill) arrive in timeline order;
 *  - every connection's audio, live or backfill, is a slice of the written
 *    stream in order; none was closed for outrunning 1.25x;
 *  - live lag: after every RECONNECTED whose connection lived long enough,
 *    the server holds live audio within 1 s of what was written no later
 *    than LAG_BOUND_S after the reconnect (frame log arrival times against
 *    the capture clock), and stats.live_lag_samples says so too.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define LAG_BOUND_S 2.0
#define MAX_LAGS 64

int main(int argc, char **argv)
{
    const h_schedule *sch = argc > 1 ? h_schedule_find(argv[1]) : NULL;
    if (!sch) {
        fprintf(stderr, "usage: %s SCHEDULE (", argv[0]);
        for (size_t i = 0; i < h_n_schedules; i++)
            fprintf(stderr, "%s%s", i ? " | " : "", h_schedules[i].name);
        fprintf(stderr, ")\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "compound_%s", sch->name);
    h_init(name);
    h_log("schedule %s: %s", sch->name, sch->what);

    h_server srv, chaos;
    const char *args[] = {"--max-rate", "1.25", "--burst-ms", "2000", NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);

    const size_t total = (size_t)(h_schedule_audio_s(sch) * RATE);
    int16_t *pcm = h_pattern_alloc(11, total);
    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init_provider_defaults(&run, "session", chaos.port);
    h_run_open(&run, cl);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_CONNECTED, 1, 10000 * h_slow()), "never connected");

    h_probe probe;
    h_probe_start(&probe, run.s, 20);
    h_run_stream(&run, pcm, total, 1.0);
    double strikes[H_MAX_STEPS];
    h_schedule_run(sch, &run, &srv, &chaos, strikes);
    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu of %zu frames", written, total);
    h_log("capture done (%.1f s); closing", (double)written / RATE);
    steno_status crc = steno_session_close(run.s, 90000 * h_slow());
    h_probe_stop(&probe);
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    h_log("stats: reconnects %u dead %u backfills %u chunks sent %" PRIu64 " replayed %" PRIu64
          " backfilled %" PRIu64 ", finals %" PRIu64 " (backfill %" PRIu64 ") suppressed %" PRIu64
          ", auto-finalizes %" PRIu64,
          st.reconnects, st.dead_connections, st.backfills, st.chunks_sent, st.chunks_replayed,
          st.chunks_backfilled, st.transcripts_final, st.finals_backfilled, st.finals_suppressed,
          st.auto_finalizes);

    /* every figure first, then the verdicts, so a failing run still says everything */
    char dropped_desc[512], unreceived_desc[512], err[512];
    uint64_t dropped = h_dropped(&run.col, dropped_desc, sizeof dropped_desc);
    h_witness w;
    bool witness_ok =
        h_witness_load(&w, &srv, &run.col, pcm, written, CHUNK_FRAMES, err, sizeof err);
    H_CHECK(witness_ok, "schedule %s: %s", sch->name, err);
    uint64_t unreceived =
        h_witness_unreceived(&w, written, unreceived_desc, sizeof unreceived_desc);
    size_t live = 0;
    for (size_t i = 0; i < w.n; i++) {
        live += w.c[i].live;
        h_log("connection %d %s: samples [%" PRIu64 ", %" PRIu64 ") = %.2f-%.2f s%s, %zu "
              "messages, closed by %s",
              w.c[i].id, w.c[i].live ? "live    " : "backfill", w.c[i].base, w.c[i].end,
              (double)w.c[i].base / RATE, (double)w.c[i].end / RATE,
              w.c[i].gaps ? " WITH GAPS" : "", w.c[i].nframes,
              w.c[i].close_cause[0] ? w.c[i].close_cause : "?");
    }
    h_cover cov;
    bool timeline_ok = h_check_timeline(&run.col, pcm, written, RATE, true, &cov, err, sizeof err);
    h_log("finals: %zu (%zu from backfill) cover %" PRIu64 " of %zu samples", cov.finals,
          cov.backfill_finals, cov.covered, written);

    h_lag lags[MAX_LAGS];
    size_t nl = h_lag_analyse(&run.col, &probe, &w, RATE, strikes, sch->n, lags, MAX_LAGS);
    double worst = 0;
    for (size_t i = 0; i < nl; i++) {
        h_lag *l = &lags[i];
        h_log("reconnect %zu: backlog %.2f s; live audio within 1 s after %.2f s (witness), %.2f s "
              "(stats); largest lag %.2f s; backlog acknowledged after %.2f s; connection lived "
              "%.2f s",
              i + 1, (double)l->backlog / RATE, l->witness_s, l->stat_s, l->max_lag_s, l->catchup_s,
              l->lived_s);
        if (l->lived_s >= LAG_BOUND_S && (l->witness_s < 0 || l->witness_s > worst))
            worst = l->witness_s < 0 ? INFINITY : l->witness_s;
    }
    h_log("schedule %s: lost %" PRIu64 " samples (%.2f s) never finalized, of which %" PRIu64
          " dropped (AUDIO_DROPPED) and %" PRIu64 " never received by the server; slowest live "
          "recovery %.2f s (bound %.1f s)",
          sch->name, cov.uncovered, (double)cov.uncovered / RATE, dropped, unreceived, worst,
          LAG_BOUND_S);

    H_CHECK(crc == STENO_OK, "schedule %s: close: %s", sch->name, steno_status_name(crc));
    H_CHECK(run.prod.full_returns == 0,
            "schedule %s: steno_session_write returned FULL %" PRIu64 " times", sch->name,
            (uint64_t)run.prod.full_returns);
    H_CHECK(dropped == 0 && st.samples_dropped == 0 && st.samples_evicted == 0,
            "schedule %s: %" PRIu64 " samples (%.2f s) lost to AUDIO_DROPPED: %s", sch->name,
            dropped, (double)dropped / RATE, dropped_desc);
    H_CHECK(unreceived == 0, "schedule %s: %" PRIu64 " samples never reached the server: %s",
            sch->name, unreceived, unreceived_desc);
    H_CHECK(timeline_ok, "schedule %s: %s", sch->name, err);
    H_CHECK(cov.uncovered == 0, "schedule %s: %" PRIu64 " samples not covered by any final: %s",
            sch->name, cov.uncovered, cov.uncovered_desc);
    H_CHECK(h_witness_rate_closes(&w) == 0,
            "schedule %s: %zu connections closed by the server for exceeding 1.25x real time",
            sch->name, h_witness_rate_closes(&w));
    H_CHECK(w.n - live <= st.backfills,
            "schedule %s: %zu connections the session never reported as live carried audio, "
            "but it opened %u backfill connections",
            sch->name, w.n - live, st.backfills);
    H_CHECK(nl >= 1 && st.reconnects >= 1, "schedule %s: no reconnect at all", sch->name);
    for (size_t i = 0; i < nl; i++) {
        const h_lag *l = &lags[i];
        if (l->lived_s < LAG_BOUND_S)
            continue; /* cut short by the next fault */
        H_CHECK(l->witness_s >= 0 && l->witness_s <= LAG_BOUND_S,
                "schedule %s, reconnect %zu (%s): live audio reached the server within 1 s of "
                "capture only after %.2f s (never if < 0), bound %.1f s; largest lag %.2f s",
                sch->name, i + 1, l->rid, l->witness_s, LAG_BOUND_S, l->max_lag_s);
        H_CHECK(l->stat_s >= 0 && l->stat_s <= LAG_BOUND_S,
                "schedule %s, reconnect %zu: stats.live_lag_samples fell under 1 s only after "
                "%.2f s, bound %.1f s",
                sch->name, i + 1, l->stat_s, LAG_BOUND_S);
    }

    h_witness_free(&w);
    h_probe_free(&probe);
    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
