/* test_compound_real_speech_wer: a compound fault schedule at the provider's real pace costs
 * real speech no more than 1 WER point. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * The LibriVox recordings of pocketsphinx-testdata, joined (~27 s), are
 * streamed at real time to steno-server's pocketsphinx engine, which enforces
 * Deepgram's ingest limit (--max-rate 1.25 --burst-ms 2000), by two sessions
 * at the SDK's defaults at once: one straight to the server, fault-free; one
 * through steno-chaos, hit by the compound schedule named in argv[1]. Both
 * transcripts (finals sorted on the session timeline, since backfill finals
 * arrive late) are scored against the reference transcriptions; the faulted
 * run must lose no audio, carry the written stream in order on every
 * connection, keep its finals on one timeline without overlap, and score
 * within SLACK_POINTS of the fault-free run. Skipped (77) without
 * pocketsphinx or the recordings.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define SLACK_POINTS 1.0

static double score(h_collector *col, char **rw, size_t nr, char **text)
{
    *text = h_finals_text(col);
    char **hw;
    size_t nh = h_words(*text, &hw);
    double wer = h_wer(rw, nr, hw, nh);
    h_words_free(hw, nh);
    return wer;
}

int main(int argc, char **argv)
{
    const h_schedule *sch = argc > 1 ? h_schedule_find(argv[1]) : NULL;
    if (!sch) {
        fprintf(stderr, "usage: %s SCHEDULE\n", argv[0]);
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "compound_wer_%s", sch->name);
    h_init(name);
    const char *have = getenv("RES_HAVE_POCKETSPHINX");
    if (!have || strcmp(have, "1") != 0) {
        h_log("SKIP: steno-server built without pocketsphinx");
        return H_SKIP;
    }
    int16_t *pcm;
    size_t total;
    char *ref;
    if (!h_librivox_load(&pcm, &total, &ref)) {
        h_log("SKIP: no LibriVox recordings (package pocketsphinx-testdata)");
        return H_SKIP;
    }
    h_log("%.1f s of speech; schedule %s: %s", (double)total / RATE, sch->name, sch->what);
    H_CHECK(h_schedule_audio_s(sch) <= (double)total / RATE + 1.0,
            "schedule %s needs %.1f s of audio, the recordings are %.1f s", sch->name,
            h_schedule_audio_s(sch), (double)total / RATE);

    h_server srv, chaos;
    const char *args[] = {"--engine", "pocketsphinx", "--workers", "2", "--max-rate",
                          "1.25",     "--burst-ms",   "2000",      NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client *cl = h_client_open(NULL);
    h_run clean, faulted;
    h_run_init_provider_defaults(&clean, "clean", srv.port);
    h_run_init_provider_defaults(&faulted, "faulted", chaos.port);
    static const steno_option opts[] = {{"model", "nova-3"}, {"language", "en"}};
    clean.sc.options = faulted.sc.options = opts;
    clean.sc.n_options = faulted.sc.n_options = 2;
    h_run_open(&clean, cl);
    h_run_open(&faulted, cl);
    h_run_stream(&clean, pcm, total, 1.0);
    h_run_stream(&faulted, pcm, total, 1.0);
    h_schedule_run(sch, &faulted, &srv, &chaos, NULL);
    h_producer_join(&clean.prod);
    h_producer_join(&faulted.prod);
    h_run_close(&clean, 120000);
    h_run_close(&faulted, 120000);
    H_CHECK(h_server_wait_idle(&srv, 30000), "server connections still open");

    char **rw;
    size_t nr = h_words(ref, &rw);
    char *clean_text, *faulted_text;
    double clean_wer = score(&clean.col, rw, nr, &clean_text);
    double faulted_wer = score(&faulted.col, rw, nr, &faulted_text);
    h_log("reference: %s", ref);
    h_log("clean (WER %.1f%%): %s", clean_wer, clean_text);
    h_log("faulted (WER %.1f%%): %s", faulted_wer, faulted_text);

    char desc[512], err[512];
    uint64_t clean_dropped = h_dropped(&clean.col, desc, sizeof desc);
    H_CHECK(clean_dropped == 0,
            "the fault-free run dropped %" PRIu64 " samples (%.2f s: %s): finals lagged the "
            "capture by more than the ring holds",
            clean_dropped, (double)clean_dropped / RATE, desc);
    steno_session_stats st;
    steno_session_stats_get(faulted.s, &st);
    uint64_t dropped = h_dropped(&faulted.col, desc, sizeof desc);
    h_log("faulted: reconnects %u, backfills %u, finals %" PRIu64 " (backfill %" PRIu64
          "), suppressed %" PRIu64 ", %" PRIu64 " samples dropped",
          st.reconnects, st.backfills, st.transcripts_final, st.finals_backfilled,
          st.finals_suppressed, dropped);
    H_CHECK(dropped == 0, "schedule %s: %" PRIu64 " samples (%.2f s) dropped: %s", sch->name,
            dropped, (double)dropped / RATE, desc);
    h_witness w;
    H_CHECK(h_witness_load(&w, &srv, &faulted.col, pcm, total, CHUNK_FRAMES, err, sizeof err),
            "schedule %s: %s", sch->name, err);
    uint64_t unreceived = h_witness_unreceived(&w, total, desc, sizeof desc);
    H_CHECK(unreceived == 0, "schedule %s: %" PRIu64 " samples never reached the server: %s",
            sch->name, unreceived, desc);
    H_CHECK(h_witness_rate_closes(&w) == 0, "schedule %s: closed for exceeding 1.25x", sch->name);
    H_CHECK(h_check_timeline(&faulted.col, pcm, total, RATE, false, NULL, err, sizeof err),
            "schedule %s: %s", sch->name, err);
    H_CHECK(faulted_wer <= clean_wer + SLACK_POINTS,
            "schedule %s cost %.1f WER points (%.1f%% vs %.1f%% fault-free), more than %.0f",
            sch->name, faulted_wer - clean_wer, faulted_wer, clean_wer, SLACK_POINTS);
    H_CHECK(clean_wer < 50.0, "the fault-free run is implausibly bad (%.1f%%)", clean_wer);

    h_witness_free(&w);
    h_words_free(rw, nr);
    free(clean_text);
    free(faulted_text);
    free(ref);
    h_run_free(&clean);
    h_run_free(&faulted);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
