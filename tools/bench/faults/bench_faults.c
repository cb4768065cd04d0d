/* bench-faults: what each compound fault schedule costs real speech at the provider's real
 * pace, with parallel catch-up (backfill) at its default and turned off. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Streams the joined LibriVox recordings (~27 s) at real time through
 * steno-chaos to steno-server's pocketsphinx engine, which enforces
 * Deepgram's ingest limit (--max-rate 1.25 --burst-ms 2000): once fault-free,
 * then through each compound schedule (common/compound.c) with the SDK's
 * default settings and again with max_backfill_connections =
 * STENO_BACKFILL_OFF. Per run it reports the samples lost (AUDIO_DROPPED, or
 * never received by the server), the word error rate against the fault-free
 * run, the longest live lag seen after a reconnect (written audio the server
 * did not hold yet, from its frame log), and the longest time to catch up
 * (from a reconnect until samples_acked reached what had been written at that
 * reconnect). It prints a markdown table and never fails on the figures.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define MAX_LAGS 64

typedef struct result {
    const char *schedule;
    const char *backfill;
    uint64_t lost;
    double wer;
    double max_lag_s;
    double catchup_s; /* -1: some backlog was never caught up before the stream ended */
    uint32_t reconnects, backfills;
} result;

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s --server PATH --chaos PATH [--schedules a,b,...]\n"
            "Runs every compound fault schedule on real speech at 1.25x (needs the server's\n"
            "pocketsphinx engine and pocketsphinx-testdata) and prints a markdown table.\n",
            argv0);
}

static steno_session *open_run(steno_client *cl, h_run *r, const char *name, int port,
                               bool backfill_off)
{
    static const steno_option opts[] = {{"model", "nova-3"}, {"language", "en"}};
    h_run_init_provider_defaults(r, name, port);
    r->col.quiet = 1;
    r->sc.options = opts;
    r->sc.n_options = 2;
    if (backfill_off)
        r->sc.max_backfill_connections = STENO_BACKFILL_OFF;
    h_run_open(r, cl);
    return r->s;
}

static double wer_of(h_collector *col, char **rw, size_t nr)
{
    char *text = h_finals_text(col);
    char **hw;
    size_t nh = h_words(text, &hw);
    double wer = h_wer(rw, nr, hw, nh);
    h_words_free(hw, nh);
    free(text);
    return wer;
}

static void run_schedule(steno_client *cl, const h_server *srv, const h_server *chaos,
                         const h_schedule *sch, bool backfill_off, const int16_t *pcm, size_t total,
                         char **rw, size_t nr, result *out)
{
    h_run r;
    open_run(cl, &r, sch->name, chaos->port, backfill_off);
    h_probe probe;
    h_probe_start(&probe, r.s, 20);
    h_run_stream(&r, pcm, total, 1.0);
    double strikes[H_MAX_STEPS];
    h_schedule_run(sch, &r, srv, chaos, strikes);
    h_producer_join(&r.prod);
    steno_status rc = steno_session_close(r.s, 120000);
    h_probe_stop(&probe);
    if (rc != STENO_OK)
        h_log("%s: close: %s", sch->name, steno_status_name(rc));
    h_server_wait_idle(srv, 30000);

    steno_session_stats st;
    steno_session_stats_get(r.s, &st);
    char desc[512], err[512];
    h_witness w;
    uint64_t unreceived = 0;
    if (h_witness_load(&w, srv, &r.col, pcm, total, CHUNK_FRAMES, err, sizeof err))
        unreceived = h_witness_unreceived(&w, total, desc, sizeof desc);
    else
        h_log("%s: witness: %s", sch->name, err);
    uint64_t dropped = h_dropped(&r.col, desc, sizeof desc);
    h_lag lags[MAX_LAGS];
    size_t nl = h_lag_analyse(&r.col, &probe, &w, RATE, strikes, sch->n, lags, MAX_LAGS);
    memset(out, 0, sizeof *out);
    out->schedule = sch->name;
    out->backfill = backfill_off ? "off" : "default";
    out->lost = dropped > unreceived ? dropped : unreceived;
    out->wer = wer_of(&r.col, rw, nr);
    out->reconnects = st.reconnects;
    out->backfills = st.backfills;
    for (size_t i = 0; i < nl; i++) {
        if (lags[i].max_lag_s > out->max_lag_s)
            out->max_lag_s = lags[i].max_lag_s;
        if (out->catchup_s >= 0 && (lags[i].catchup_s < 0 || lags[i].catchup_s > out->catchup_s))
            out->catchup_s = lags[i].catchup_s;
    }
    h_log("%s, backfill %s: lost %" PRIu64 ", WER %.1f%%, live lag max %.2f s, catch-up %.2f s, "
          "%u reconnects, %u backfills",
          out->schedule, out->backfill, out->lost, out->wer, out->max_lag_s, out->catchup_s,
          out->reconnects, out->backfills);
    h_witness_free(&w);
    h_probe_free(&probe);
    h_run_free(&r);
    cJSON_Delete(h_http_ok(srv->control_port, "DELETE", "/connections", NULL));
}

int main(int argc, char **argv)
{
    const char *schedules = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            setenv("STENO_SERVER", argv[++i], 1);
        else if (!strcmp(argv[i], "--chaos") && i + 1 < argc)
            setenv("STENO_CHAOS", argv[++i], 1);
        else if (!strcmp(argv[i], "--schedules") && i + 1 < argc)
            schedules = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    h_init("bench-faults");
    int16_t *pcm;
    size_t total;
    char *ref;
    if (!h_librivox_load(&pcm, &total, &ref)) {
        fprintf(stderr, "bench-faults: no LibriVox recordings (package pocketsphinx-testdata)\n");
        return 1;
    }
    char **rw;
    size_t nr = h_words(ref, &rw);

    h_server srv, chaos;
    const char *args[] = {"--engine", "pocketsphinx", "--workers", "2", "--max-rate",
                          "1.25",     "--burst-ms",   "2000",      NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client *cl = h_client_open(NULL);

    h_run clean;
    open_run(cl, &clean, "clean", srv.port, false);
    h_run_stream(&clean, pcm, total, 1.0);
    h_producer_join(&clean.prod);
    h_run_close(&clean, 120000);
    double clean_wer = wer_of(&clean.col, rw, nr);
    char desc[512];
    uint64_t clean_lost = h_dropped(&clean.col, desc, sizeof desc);
    h_run_free(&clean);
    h_log("fault-free: WER %.1f%% over %.1f s of speech", clean_wer, (double)total / RATE);

    result res[32];
    size_t n = 0;
    for (size_t i = 0; i < h_n_schedules; i++) {
        const h_schedule *sch = &h_schedules[i];
        if (schedules && !strstr(schedules, sch->name))
            continue;
        for (int off = 0; off < 2; off++)
            run_schedule(cl, &srv, &chaos, sch, off, pcm, total, rw, nr, &res[n++]);
    }
    steno_client_destroy(cl);

    printf("\nreal speech (%.1f s, LibriVox), pocketsphinx engine at --max-rate 1.25 --burst-ms "
           "2000, default session settings; fault-free WER %.1f %% (%.2f s dropped)\n\n",
           (double)total / RATE, clean_wer, (double)clean_lost / RATE);
    printf("| schedule | backfill | samples lost | WER | vs clean | longest live lag after a "
           "reconnect | time to catch up | reconnects | backfills |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < n; i++) {
        char catchup[32];
        if (res[i].catchup_s < 0)
            snprintf(catchup, sizeof catchup, "not before the end");
        else
            snprintf(catchup, sizeof catchup, "%.2f s", res[i].catchup_s);
        printf("| %s | %s | %" PRIu64 " (%.2f s) | %.1f %% | %+.1f | %.2f s | %s | %u | %u |\n",
               res[i].schedule, res[i].backfill, res[i].lost, (double)res[i].lost / RATE,
               res[i].wer, res[i].wer - clean_wer, res[i].max_lag_s, catchup, res[i].reconnects,
               res[i].backfills);
    }
    printf("\nreproduce:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    h_words_free(rw, nr);
    free(ref);
    free(pcm);
    return h_pass();
}
