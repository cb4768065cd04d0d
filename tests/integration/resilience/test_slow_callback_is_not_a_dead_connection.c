/* test_slow_callback_is_not_a_dead_connection: a network thread held up by a slow event
 * callback does not take its own lateness for a dead peer. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * Half-open detection must never drop a connection that answers (invariant 8). A network
 * thread that falls behind, here because the application's event callback takes 1.5 s
 * (elsewhere because one core carries more sessions than it keeps up with), wakes with its
 * liveness timer long overdue and the peer's bytes waiting unread: libev runs the turn's due
 * timers before its reads, so "nothing received for dead_after_ms" looked true. Each of three
 * times, the callback asks the server for a message (an unknown type, which steno ignores) and
 * then holds the thread past dead_after_ms and pong_timeout_ms. The connection must survive
 * every time: no reconnect, no dead connection, and the stream closes with every sample
 * finalized once.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define DEAD_AFTER_MS 1000u
#define PING_MS 200u
#define PONG_TIMEOUT_MS 500u
#define HOLD_MS 1500u /* the slow callback: past both timeouts */
#define HOLDS 3

static h_run run;
static h_server srv;
static atomic_int holds_wanted, holds_done;

static void slow_on_event(void *user, const steno_event *ev)
{
    h_on_event(user, ev);
    if (ev->type != STENO_EVENT_TRANSCRIPT || atomic_load(&holds_wanted) <= 0)
        return;
    atomic_fetch_sub(&holds_wanted, 1);
    /* the peer speaks while this thread is busy: its message waits in the socket */
    h_fault(&srv, "{\"action\":\"malformed\",\"kind\":\"unknown\"}");
    /* The slow application under test, not a wait for anything: nanosleep is the callback's
     * own 1.5 s of work. */
    struct timespec ts = {HOLD_MS / 1000u, (long)(HOLD_MS % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&holds_done, 1);
}

int main(void)
{
    h_init("slow_callback_is_not_a_dead_connection");
    h_server_start(&srv, NULL);
    const size_t total = 10u * RATE;
    int16_t *pcm = h_pattern_alloc(11, total);

    steno_client *cl = h_client_open(NULL);
    h_run_init(&run, "session", srv.port);
    run.sc.on_event = slow_on_event;
    run.sc.dead_after_ms = DEAD_AFTER_MS;
    run.sc.ping_interval_ms = PING_MS;
    run.sc.pong_timeout_ms = PONG_TIMEOUT_MS;
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);

    for (int k = 0; k < HOLDS; k++) {
        uint64_t mark = (uint64_t)(k + 1) * 2u * RATE;
        H_CHECK(h_producer_wait(&run.prod, (size_t)mark, 30000), "producer stalled");
        atomic_store(&holds_wanted, 1);
        uint64_t t0 = h_now_ms();
        while (atomic_load(&holds_done) < k + 1 && h_now_ms() - t0 < 20000u * h_slow()) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL); /* polls a counter the callback sets: there is no event */
        }
        H_CHECK(atomic_load(&holds_done) == k + 1, "hold %d never happened", k + 1);
        h_log("held the network thread %u ms (hold %d)", HOLD_MS, k + 1);
    }

    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu", written);
    H_CHECK(steno_session_finalize(run.s) == STENO_OK, "finalize");
    H_CHECK(h_wait_acked(&run.col, total - CHUNK_FRAMES, 20000 * h_slow()),
            "the stream was not finalized");
    h_run_close(&run, 30000 * h_slow());

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    h_log("reconnects %u, dead connections %u, parse errors %" PRIu64, st.reconnects,
          st.dead_connections, st.parse_errors);
    H_CHECK(st.dead_connections == 0,
            "%u connections declared dead while the server answered: the thread's own "
            "lateness was taken for a silent peer",
            st.dead_connections);
    H_CHECK(st.reconnects == 0, "%u reconnects, want 0", st.reconnects);
    H_CHECK(h_count(&run.col, STENO_EVENT_RECONNECTING) == 0, "a RECONNECTING event");

    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");
    H_CHECK(acc.connections == 1, "%zu connections, want 1", acc.connections);
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
