/* test_replay_pacing_under_ingest_limit: replaying a backlog never outruns the provider's ingest
 * limit. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Deepgram accepts audio at up to 1.25x real time (with some burst), and
 * closes connections that go faster. After an outage the session holds a
 * backlog it wants to replay at once; its pacing must keep it under the
 * limit. The server here enforces exactly that limit (--max-rate 1.25,
 * --burst-ms 2000: a connection may be at most 2 s of audio ahead of 1.25x
 * real time since its first frame, or it is closed with 1008 RATE-0000).
 * The session streams at real time, loses its connection for 3 s (server
 * down), and then replays a ~4 s backlog while live audio keeps coming.
 * No connection may be closed for its rate, the replay must actually have
 * used the allowance (its lead over 1.25x real time, from the server's frame
 * log, gets near the burst), and the accounting must close. Afterwards a
 * server close on a healthy connection measures the reconnect gap: fault ->
 * first audio byte of the replacement at the server.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define MAX_RATE 1.25
#define BURST_S 2.0

/* The most a connection's audio ran ahead of MAX_RATE x real time, in seconds of audio. */
static double max_lead(const h_server *srv, int id, size_t *frames_out)
{
    char path[96];
    snprintf(path, sizeof path, "/connections/%d/frames", id);
    cJSON *j = h_http_ok(srv->control_port, "GET", path, NULL);
    H_CHECK(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")), "frame log truncated");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "frames"), *f;
    double lead = -1e9, t0 = -1, audio = 0;
    size_t n = 0;
    cJSON_ArrayForEach(f, arr)
    {
        double t = h_jnum(f, "t", 0);
        if (t0 < 0)
            t0 = t;
        audio += h_jnum(f, "bytes", 0) / 2.0 / RATE;
        double l = audio - MAX_RATE * (t - t0);
        lead = l > lead ? l : lead;
        n++;
    }
    cJSON_Delete(j);
    *frames_out = n;
    return lead;
}

int main(void)
{
    h_init("replay_pacing_under_ingest_limit");
    h_server srv;
    const char *args[] = {"--max-rate", "1.25", "--burst-ms", "2000", NULL};
    h_server_start(&srv, args);
    const size_t total = 12u * RATE;
    int16_t *pcm = h_pattern_alloc(13, total);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.breaker_open_ms = 200;
    steno_client *cl = h_client_open(&cc);
    h_run run;
    h_run_init(&run, "session", srv.port);
    run.sc.retry.cap_ms = 200;
    /* the replay on ONE connection is what this measures: parallel catch-up (backfill) would
     * move the backlog to a second connection (its pacing is proven by the compound-fault
     * tests) */
    run.sc.max_backfill_connections = STENO_BACKFILL_OFF;
    /* the provider's own pacing: no test knob here */
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);

    H_CHECK(h_producer_wait(&run.prod, 3u * RATE + RATE / 2, 20000), "producer stalled");
    h_fault(&srv, "{\"down\":true}");
    h_fault(&srv, "{\"action\":\"drop\"}");
    size_t w0 = h_producer_written(&run.prod);
    H_CHECK(h_producer_wait(&run.prod, w0 + 3u * RATE, 20000), "producer stalled");
    h_fault(&srv, "{\"down\":false}");
    h_log("server back after 3 s of audio");
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()), "no RECONNECTED");
    pthread_mutex_lock(&run.col.mu);
    char replay_rid[128];
    snprintf(replay_rid, sizeof replay_rid, "%s",
             run.col.ev[h_find(&run.col, STENO_EVENT_RECONNECTED, 0)].request_id);
    pthread_mutex_unlock(&run.col.mu);

    /* caught up (finals close to the live edge), then a fault on a healthy connection */
    H_CHECK(h_producer_wait(&run.prod, 11u * RATE, 30000), "producer stalled");
    bool caught_up = h_wait_acked(&run.col, 10u * RATE, 30000 * h_slow());
    if (!caught_up) {
        /* say why: a connection closed for its rate is the failure this test is about */
        h_producer_stop(&run.prod);
        cJSON *recs = h_server_records(&srv);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
        cJSON_ArrayForEach(r, arr)
        {
            if (strcmp(h_jstr(r, "close_cause"), "rate") != 0)
                continue;
            size_t n = 0;
            double lead = max_lead(&srv, (int)h_jnum(r, "id", 0), &n);
            h_fail(__FILE__, __LINE__,
                   "the replay was closed by the server's ingest limit (%s): %zu frames, "
                   "%.3f s of audio received, up to %.4f s ahead of %.2fx real time (limit "
                   "%.1f s)",
                   h_jstr(r, "close_reason"), n, h_jnum(r, "audio_samples", 0) / RATE, lead,
                   MAX_RATE, BURST_S);
        }
        h_fail(__FILE__, __LINE__, "replay did not catch up");
    }
    double t_fault = h_wall_s();
    h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\"}");
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 2, 20000 * h_slow()),
            "no second RECONNECTED");

    size_t written = h_producer_join(&run.prod);
    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    cJSON *recs = h_server_records(&srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    cJSON_ArrayForEach(r, arr)
    {
        H_CHECK(strcmp(h_jstr(r, "close_cause"), "rate") != 0,
                "connection %d was closed for sending faster than %.2fx real time: %s",
                (int)h_jnum(r, "id", 0), MAX_RATE, h_jstr(r, "close_reason"));
    }
    const cJSON *rr = h_record_by_rid(recs, replay_rid);
    H_CHECK(rr, "no record of the replaying connection");
    size_t nframes = 0;
    double lead = max_lead(&srv, (int)h_jnum(rr, "id", 0), &nframes);
    h_log("replaying connection: %zu frames, at most %.3f s of audio ahead of %.2fx real time "
          "(limit %.1f s)",
          nframes, lead, MAX_RATE, BURST_S);
    H_CHECK(lead <= BURST_S + 1e-9, "lead %.3f s beyond the burst", lead);
    H_CHECK(lead >= BURST_S * 0.75,
            "the replay only got %.3f s ahead: the backlog was not sent as fast as allowed", lead);

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    H_CHECK(st.chunks_replayed > 0, "nothing replayed");
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");

    /* the reconnect gap on loopback */
    pthread_mutex_lock(&run.col.mu);
    size_t i2 =
        h_find(&run.col, STENO_EVENT_RECONNECTED, h_find(&run.col, STENO_EVENT_RECONNECTED, 0) + 1);
    const cJSON *r2 = h_record_by_rid(recs, run.col.ev[i2].request_id);
    uint32_t downtime = run.col.ev[i2].downtime_ms;
    pthread_mutex_unlock(&run.col.mu);
    H_CHECK(r2, "no record of the last connection");
    double gap = h_jnum(r2, "start", 0) + h_jnum(r2, "first_audio", 0) - t_fault;
    h_log("reconnect gap after close 1011 on a healthy connection: %.1f ms to the first "
          "replayed byte at the server (SDK downtime %u ms)",
          gap * 1000.0, downtime);
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
