/* test_ordered_finals_wait_for_backfill: with ordered_finals, finals arrive strictly in timeline
 * order even while a backfill connection replays an outage's backlog. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * By default a backfill connection's finals arrive after live finals that
 * follow them on the timeline (live transcripts are never held back). An
 * application that wants strictly ordered finals sets ordered_finals: live
 * finals then wait while backfill still owes earlier audio. The session
 * streams at real time at its defaults to a server enforcing 1.25x, loses its
 * connection into a 3 s refusal window, and comes back with a backlog that
 * goes to a backfill connection. Asserted: a backfill happened and some finals
 * came from it; in emission order every final starts where or after the
 * previous one ended (no final before an earlier-emitted one); CAUGHT_UP
 * came; and the accounting closes (every sample covered once).
 */

#define RATE 16000u

int main(void)
{
    h_init("ordered_finals_wait_for_backfill");
    h_server srv, chaos;
    const char *args[] = {"--max-rate", "1.25", "--burst-ms", "2000", NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    const size_t total = 14u * RATE;
    int16_t *pcm = h_pattern_alloc(21, total);

    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init_provider_defaults(&run, "session", chaos.port);
    run.sc.ordered_finals = 1;
    h_run_open(&run, cl);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_CONNECTED, 1, 10000 * h_slow()), "never connected");
    h_run_stream(&run, pcm, total, 1.0);

    H_CHECK(h_producer_wait(&run.prod, 4u * RATE, 30000), "producer stalled");
    h_fault(&srv, "{\"down\":true,\"status\":503}");
    h_chaos_reset_all(&chaos);
    h_log("connection reset into a refusal window");
    H_CHECK(h_producer_wait(&run.prod, 7u * RATE, 30000), "producer stalled");
    h_fault(&srv, "{\"down\":false}");
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()), "no RECONNECTED");
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_CAUGHT_UP, 1, 30000 * h_slow()), "no CAUGHT_UP");

    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu", written);
    h_run_close(&run, 30000 * h_slow());

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    H_CHECK(st.backfills >= 1 && st.finals_backfilled >= 1,
            "backfills %u, finals from backfill %" PRIu64 ": the backlog was not backfilled",
            st.backfills, st.finals_backfilled);

    /* emission order is timeline order */
    pthread_mutex_lock(&run.col.mu);
    uint64_t prev_end = 0;
    size_t finals = 0, from_bf = 0;
    for (size_t i = 0; i < run.col.n; i++) {
        const h_ev *e = &run.col.ev[i];
        if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final || e->end_sample == e->first_sample)
            continue;
        H_CHECK(e->first_sample >= prev_end,
                "final [%" PRIu64 ", %" PRIu64 ")%s emitted after a final ending at %" PRIu64
                ": ordered_finals let it out of order",
                e->first_sample, e->end_sample, e->from_backfill ? " (backfill)" : "", prev_end);
        prev_end = e->end_sample;
        finals++;
        from_bf += e->from_backfill != 0;
    }
    pthread_mutex_unlock(&run.col.mu);
    h_log("%zu finals in timeline order, %zu of them from backfill", finals, from_bf);
    H_CHECK(from_bf >= 1, "no final came from backfill");

    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");
    h_log("accounting: %" PRIu64 " samples covered once over %zu connections (%zu backfill)",
          acc.covered, acc.connections, acc.backfill_connections);
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
