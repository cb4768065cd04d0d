/* test_half_open_detected_and_replaced: silent connections are noticed by a late pong and
 * replaced. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * Invariant 8. Three ways a connection goes silent without closing:
 *   stall      the proxy stops forwarding and reading (half-open TCP; the
 *              sender's buffers fill)
 *   discard    the proxy reads and throws away everything both ways (the
 *              sender never blocks)
 *   server     the server stops reading and sending, TCP stays open
 * Each must be declared dead by its pings: within ping_interval_ms +
 * pong_timeout_ms (+ 0.5 s of scheduling slack) of going silent, well before
 * the dead_after_ms backstop, never before pong_timeout_ms (a connection
 * that answers its pings in time is never dropped), counted in
 * stats.dead_connections, and replaced, with nothing lost (the accounting
 * closes). Then the application stops writing: KeepAlive text
 * messages must flow while no audio does (at least two in 2.5 keepalive
 * periods), and never on a connection while it streamed audio.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define DEAD_AFTER_MS 2000u
#define PING_MS 500u
#define PONG_TIMEOUT_MS 1000u
#define KEEPALIVE_MS 1000u

int main(void)
{
    h_init("half_open_detected_and_replaced");
    h_server srv, chaos;
    h_server_start(&srv, NULL);
    h_chaos_start(&chaos, srv.port);
    const size_t total = 12u * RATE;
    int16_t *pcm = h_pattern_alloc(5, total);

    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init(&run, "session", chaos.port);
    run.sc.dead_after_ms = DEAD_AFTER_MS;
    run.sc.ping_interval_ms = PING_MS;
    run.sc.pong_timeout_ms = PONG_TIMEOUT_MS;
    run.sc.keepalive_ms = KEEPALIVE_MS;
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);

    static const char *const kinds[] = {"stall", "discard", "server"};
    for (int k = 0; k < 3; k++) {
        uint64_t mark = (uint64_t)(k + 1) * 3u * RATE;
        H_CHECK(h_producer_wait(&run.prod, (size_t)mark + RATE / 2, 30000), "producer stalled");
        H_CHECK(h_wait_acked(&run.col, mark - RATE, 20000 * h_slow()), "no finals before %s",
                kinds[k]);
        uint64_t t0 = h_now_ms();
        if (k < 2) {
            int conn = h_chaos_open_conn(&chaos);
            H_CHECK(conn > 0, "no open proxy connection");
            h_toxic_add(&chaos,
                        "{\"name\":\"hole\",\"type\":\"blackhole\",\"mode\":\"%s\","
                        "\"connection\":%d}",
                        kinds[k], conn);
        } else {
            h_fault(&srv, "{\"action\":\"stall\"}");
        }
        h_log("silenced the connection (%s)", kinds[k]);
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, (size_t)k + 1, 20000 * h_slow()) &&
                    !h_ended(&run.col),
                "%s: the connection was not replaced", kinds[k]);
        /* when was it declared dead? the RECONNECTING event that preceded */
        pthread_mutex_lock(&run.col.mu);
        uint64_t t_dead = 0;
        steno_status cause = STENO_OK;
        for (size_t i = run.col.n; i-- > 0;) {
            if (run.col.ev[i].type == STENO_EVENT_RECONNECTING && run.col.ev[i].t_ms >= t0) {
                t_dead = run.col.ev[i].t_ms;
                cause = run.col.ev[i].cause;
            }
        }
        pthread_mutex_unlock(&run.col.mu);
        H_CHECK(t_dead, "%s: no RECONNECTING event", kinds[k]);
        uint64_t took = t_dead - t0;
        h_log("%s: declared dead after %" PRIu64 " ms (ping %u, pong timeout %u, backstop %u)",
              kinds[k], took, PING_MS, PONG_TIMEOUT_MS, DEAD_AFTER_MS);
        H_CHECK(took <= PING_MS + PONG_TIMEOUT_MS + 500u,
                "%s: detected after %" PRIu64 " ms > ping %u + pong timeout %u + 500", kinds[k],
                took, PING_MS, PONG_TIMEOUT_MS);
        H_CHECK(took + 100u >= PONG_TIMEOUT_MS,
                "%s: declared dead after only %" PRIu64 " ms: a live connection could be "
                "dropped",
                kinds[k], took);
        H_CHECK(cause == STENO_ERR_TIMEOUT, "%s: cause %s, want STENO_ERR_TIMEOUT", kinds[k],
                steno_status_name(cause));
        if (k < 2)
            h_toxic_remove(&chaos, "hole");
        else
            h_fault(&srv, "{\"action\":\"unstall\"}");
    }

    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu", written);
    /* the null engine finalizes whole spans only: the tail's final comes from a Finalize */
    H_CHECK(steno_session_finalize(run.s) == STENO_OK, "finalize");
    H_CHECK(h_wait_acked(&run.col, total - CHUNK_FRAMES, 20000 * h_slow()),
            "the stream was not finalized");
    /* no audio flows now: KeepAlive every keepalive_ms (poll the counter: it has no event) */
    uint64_t idle_from = h_now_ms();
    steno_session_stats st;
    do {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        steno_session_stats_get(run.s, &st);
    } while (st.keepalives_sent < 2 && h_now_ms() - idle_from < 5u * KEEPALIVE_MS);
    h_log("idle: %" PRIu64 " KeepAlive after %" PRIu64 " ms", st.keepalives_sent,
          h_now_ms() - idle_from);
    H_CHECK(st.keepalives_sent >= 2, "only %" PRIu64 " KeepAlive while idle for %u ms",
            st.keepalives_sent, 5u * KEEPALIVE_MS);

    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");
    steno_session_stats_get(run.s, &st);
    H_CHECK(st.dead_connections == 3, "stats.dead_connections = %u, want 3", st.dead_connections);

    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");
    h_log("accounting: %" PRIu64 " samples covered once over %zu connections, %" PRIu64 " replayed",
          acc.covered, acc.connections, acc.replayed);
    /* KeepAlive only on the last live connection (the idle one): never on one that streamed
     * audio meanwhile, never on a backfill connection */
    char last_rid[128] = "";
    pthread_mutex_lock(&run.col.mu);
    for (size_t q = 0; q < run.col.n; q++)
        if (run.col.ev[q].type == STENO_EVENT_RECONNECTED)
            snprintf(last_rid, sizeof last_rid, "%s", run.col.ev[q].request_id);
    pthread_mutex_unlock(&run.col.mu);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    int i = 0;
    cJSON_ArrayForEach(r, arr)
    {
        const cJSON *ctl = cJSON_GetObjectItemCaseSensitive(r, "control");
        int ka = (int)h_jnum(ctl, "KeepAlive", 0);
        i++;
        if (strcmp(h_jstr(r, "request_id"), last_rid) != 0)
            H_CHECK(ka == 0, "connection %d got %d KeepAlive while audio flowed", i, ka);
        else
            H_CHECK(ka >= 2, "the idle connection got %d KeepAlive", ka);
    }
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
