/* test_failover_between_providers: a session on the Deepgram personality of steno-server with
 * the AssemblyAI personality as its failover endpoint (null engines, real time). Mid-stream the
 * Deepgram server goes down (its connection dropped, every handshake refused with 503): after
 * failover_after_ms the session moves to AssemblyAI with a FAILOVER event, replays what
 * Deepgram had not finalized there, and its transcripts say "assemblyai". When Deepgram is
 * back, failback_after_ms later the session flushes the AssemblyAI connection and moves back
 * (a second FAILOVER, to endpoint 0). Over both servers' records every sample is final exactly
 * once, in order, on one timeline; nothing is dropped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define DG_KEY "dg-failover-key"
#define AAI_KEY "aai-failover-key"

/* Both servers' connection records as one body for the accounting (request ids differ). */
static cJSON *merged_records(const h_server *a, const h_server *b)
{
    cJSON *ra = h_server_records(a), *rb = h_server_records(b);
    cJSON *ca = cJSON_GetObjectItemCaseSensitive(ra, "connections");
    cJSON *cb = cJSON_DetachItemFromObjectCaseSensitive(rb, "connections");
    H_CHECK(cJSON_IsArray(ca) && cJSON_IsArray(cb), "records without connections");
    cJSON *r;
    while ((r = cJSON_DetachItemFromArray(cb, 0)))
        cJSON_AddItemToArray(ca, r);
    cJSON_Delete(cb);
    cJSON_Delete(rb);
    return ra;
}

/* The index of the n-th (0-based) FAILOVER event, or (size_t)-1. */
static size_t nth_failover(h_collector *c, int n)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].type == STENO_EVENT_FAILOVER && n-- == 0)
            return i;
    return (size_t)-1;
}

int main(void)
{
    h_init("failover_between_providers");
    h_server dg, aai;
    const char *dg_args[] = {"--api-key", DG_KEY, NULL};
    const char *aai_args[] = {"--protocol", "assemblyai", "--api-key", AAI_KEY, NULL};
    h_server_start(&dg, dg_args);
    h_server_start(&aai, aai_args);

    steno_client_config cc;
    steno_client_config_init(&cc);
    steno_client *cl = NULL;
    char err[256] = "";
    H_CHECK(steno_client_open(&cc, &cl, err, sizeof err) == STENO_OK, "client: %s", err);

    const size_t total = 26u * RATE;
    int16_t *pcm = h_pattern_alloc(21, total);
    h_run run;
    h_run_init(&run, "failover", dg.port);
    run.sc.api_key = DG_KEY;
    run.sc.on_event = h_on_event_meta_id; /* AssemblyAI names its connections in Begin */
    char aai_url[128];
    snprintf(aai_url, sizeof aai_url, "ws://127.0.0.1:%d/v3/ws", aai.port);
    const steno_endpoint fo[] = {{"assemblyai", aai_url, AAI_KEY, NULL, 0}};
    run.sc.failover = fo;
    run.sc.n_failover = 1;
    run.sc.failover_after_ms = 2000;
    run.sc.failback_after_ms = 6000;
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);

    /* Deepgram goes down at ~4 s */
    H_CHECK(h_producer_wait(&run.prod, 4u * RATE, 20000), "producer stalled");
    h_fault(&dg, "{\"down\":true,\"status\":503}");
    h_fault(&dg, "{\"action\":\"drop\"}");
    uint64_t down_at = h_now_ms();
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_FAILOVER, 1, 20000 * h_slow()),
            "no FAILOVER while Deepgram was down");
    uint64_t moved_after = h_now_ms() - down_at;
    pthread_mutex_lock(&run.col.mu);
    size_t f1 = nth_failover(&run.col, 0);
    H_CHECK(run.col.ev[f1].to_index == 1 && !strcmp(run.col.ev[f1].provider, "assemblyai"),
            "first FAILOVER went to %s (endpoint %u)", run.col.ev[f1].provider,
            run.col.ev[f1].to_index);
    pthread_mutex_unlock(&run.col.mu);
    /* no sooner than failover_after_ms of failures, and not much later */
    H_CHECK(moved_after >= 1900 && moved_after < 8000 * h_slow(),
            "moved %" PRIu64 " ms after the outage began", moved_after);

    /* Deepgram returns at ~12 s; the session moves back about 6 s after it left */
    H_CHECK(h_producer_wait(&run.prod, 12u * RATE, 30000), "producer stalled");
    h_fault(&dg, "{\"down\":false}");
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_FAILOVER, 2, 30000 * h_slow()),
            "no FAILOVER back to Deepgram");
    pthread_mutex_lock(&run.col.mu);
    size_t f2 = nth_failover(&run.col, 1);
    H_CHECK(run.col.ev[f2].to_index == 0 && !strcmp(run.col.ev[f2].provider, "deepgram") &&
                run.col.ev[f2].cause == STENO_OK,
            "second FAILOVER went to %s (endpoint %u, %s)", run.col.ev[f2].provider,
            run.col.ev[f2].to_index, steno_status_name(run.col.ev[f2].cause));
    pthread_mutex_unlock(&run.col.mu);

    size_t written = h_producer_join(&run.prod);
    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&dg, 20000) && h_server_wait_idle(&aai, 20000),
            "server connections still open");

    /* Which provider transcribed what: Deepgram, then AssemblyAI, then Deepgram again. */
    size_t by_dg_before = 0, by_aai = 0, by_dg_after = 0;
    pthread_mutex_lock(&run.col.mu);
    f1 = nth_failover(&run.col, 0);
    f2 = nth_failover(&run.col, 1);
    for (size_t i = 0; i < run.col.n; i++) {
        const h_ev *e = &run.col.ev[i];
        if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final || e->end_sample == e->first_sample)
            continue;
        H_CHECK(e->provider, "a transcript without its provider");
        if (!strcmp(e->provider, "assemblyai")) {
            H_CHECK(i > f1 && i < f2, "an AssemblyAI final outside the failover window");
            by_aai++;
        } else {
            H_CHECK(!strcmp(e->provider, "deepgram"), "provider %s", e->provider);
            H_CHECK(i < f1 || i > f2, "a Deepgram final while on AssemblyAI");
            if (i < f1)
                by_dg_before++;
            else
                by_dg_after++;
        }
    }
    pthread_mutex_unlock(&run.col.mu);
    H_CHECK(by_dg_before && by_aai && by_dg_after,
            "finals: %zu from Deepgram, %zu from AssemblyAI, %zu from Deepgram after", by_dg_before,
            by_aai, by_dg_after);

    cJSON *recs = merged_records(&dg, &aai);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0 && acc.covered == written, "covered %" PRIu64 " of %zu samples",
            acc.covered, written);
    h_log("failover after %" PRIu64 " ms; finals: %zu Deepgram, %zu AssemblyAI, %zu Deepgram "
          "again; %zu finals over %zu connections (%zu backfill) cover %" PRIu64
          " samples exactly once",
          moved_after, by_dg_before, by_aai, by_dg_after, acc.finals, acc.connections,
          acc.backfill_connections, acc.covered);
    cJSON_Delete(recs);
    h_run_free(&run);
    free(pcm);
    steno_client_destroy(cl);
    return h_pass();
}
