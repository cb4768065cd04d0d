/* test_overflow_reports_exact_drops: an outage longer than the ring reports exactly what it lost.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Invariants 1 and 5: the ring is fixed (20 chunks = 2 s here); an outage of
 * 4 s of audio cannot be held, so the oldest unacknowledged chunks are
 * evicted and reported by AUDIO_DROPPED with their exact sample ranges.
 * After the server returns, the accounting must still close: every written
 * sample is covered by exactly one final or inside exactly one reported
 * range (covered + dropped == written), the drops are whole chunks starting
 * at the first unacknowledged chunk of the outage, the capture side never
 * found the ring full, and the connection after the outage starts right
 * after the last dropped sample.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define RING 20u

int main(void)
{
    h_init("overflow_reports_exact_drops");
    h_server srv;
    h_server_start(&srv, NULL);

    const size_t total = 9u * RATE;
    int16_t *pcm = h_pattern_alloc(11, total);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.breaker_open_ms = 300; /* recover promptly once the server is back */
    steno_client *cl = h_client_open(&cc);
    h_run run;
    h_run_init(&run, "session", srv.port);
    run.sc.ring_chunks = RING;
    run.sc.retry.cap_ms = 300;
    h_run_open(&run, cl);

    /* capture runs at real time: the network thread evicts on its chunk timer */
    h_run_stream(&run, pcm, total, 1.0);
    H_CHECK(h_wait_acked(&run.col, RATE, 20000 * h_slow()), "no final for the first second");
    H_CHECK(h_producer_wait(&run.prod, RATE * 3 / 2, 20000), "producer stalled");

    uint64_t acked_at_outage = h_acked(&run.col);
    h_fault(&srv, "{\"down\":true,\"status\":503}");
    h_fault(&srv, "{\"action\":\"drop\"}");
    size_t w0 = h_producer_written(&run.prod);
    h_log("outage begins: %zu frames written, finals up to %" PRIu64, w0, acked_at_outage);
    /* 4 s of audio arrive during the outage: twice what the ring holds */
    H_CHECK(h_producer_wait(&run.prod, w0 + 4u * RATE, 30000), "producer stalled");
    H_CHECK(h_count(&run.col, STENO_EVENT_AUDIO_DROPPED) > 0,
            "4 s of outage into a 2 s ring reported no AUDIO_DROPPED");
    h_fault(&srv, "{\"down\":false}");
    size_t w1 = h_producer_written(&run.prod);
    h_log("outage ends: %zu frames written", w1);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
            "no RECONNECTED after the server came back");

    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu of %zu", written, total);
    H_CHECK(run.prod.full_returns == 0 && run.prod.bad_status == 0,
            "the capture side found the ring full %" PRIu64 " times (status %d): the network "
            "thread should evict before that",
            (uint64_t)run.prod.full_returns, run.prod.bad_status);
    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    h_log("accounting: %" PRIu64 " written = %" PRIu64 " covered once + %" PRIu64
          " dropped in %zu events; %zu connections",
          acc.written, acc.covered, acc.dropped, acc.drop_events, acc.connections);
    H_CHECK(acc.covered + acc.dropped == written, "covered + dropped != written");

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    H_CHECK(st.samples_evicted == acc.dropped && st.samples_dropped == 0,
            "stats: evicted %" PRIu64 " dropped %" PRIu64 ", events reported %" PRIu64,
            st.samples_evicted, st.samples_dropped, acc.dropped);

    /* the drops: network side, one contiguous run from the first unacknowledged chunk */
    pthread_mutex_lock(&run.col.mu);
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    for (size_t k = 0; k < run.col.n; k++) {
        const h_ev *e = &run.col.ev[k];
        if (e->type != STENO_EVENT_AUDIO_DROPPED)
            continue;
        H_CHECK(!e->producer_side, "a producer-side drop during an outage");
        lo = e->drop_first < lo ? e->drop_first : lo;
        hi = e->drop_last > hi ? e->drop_last : hi;
        sum += e->drop_last - e->drop_first + 1;
    }
    pthread_mutex_unlock(&run.col.mu);
    uint64_t first_unacked = acked_at_outage / CHUNK_FRAMES * CHUNK_FRAMES;
    H_CHECK(lo == first_unacked,
            "the first dropped sample is %" PRIu64 ", but the oldest unacknowledged chunk "
            "began at %" PRIu64,
            lo, first_unacked);
    H_CHECK(hi - lo + 1 == sum, "the dropped ranges [%" PRIu64 ", %" PRIu64 "] have holes", lo, hi);
    /* what did not fit: the audio of the outage beyond the ring's 20 chunks */
    uint64_t backlog = (uint64_t)w1 - first_unacked;
    H_CHECK(sum + (uint64_t)RING * CHUNK_FRAMES >= backlog,
            "only %" PRIu64 " dropped of a %" PRIu64 " backlog with a %u-chunk ring", sum, backlog,
            RING);
    h_log("dropped [%" PRIu64 ", %" PRIu64 "] = %.1f s of a %.1f s backlog", lo, hi,
          (double)sum / RATE, (double)backlog / RATE);

    cJSON_Delete(recs);
    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
