/* test_shared_breaker_backfill: sessions that share an endpoint's circuit breaker, each
 * mid-way through a backfill, ride out a provider outage: the breaker's probes let their backfill
 * connections back in as soon as the endpoint answers, and nothing is lost. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * NSESS sessions on one client (so one breaker for the endpoint), at the
 * SDK's defaults, stream a deterministic signal at real time through
 * steno-chaos to steno-server at Deepgram's ingest limit (--max-rate 1.25
 * --burst-ms 2000, null engine). No time is scaled.
 *
 *  1. At 5 s of audio every proxied connection is blackholed: each session
 *     detects it from missing pongs, reconnects, resumes live audio and hands
 *     the ~2 s it was cut off to a backfill connection.
 *  2. Once every session has a backfill connection replaying, the provider
 *     goes down for OUTAGE_S: every connection is reset and every handshake
 *     gets 503. All sessions fail together, so the breaker opens; its probes
 *     fail until the outage ends.
 *  3. The backfill connections ask the breaker while another connection holds
 *     its probe. They must be let in when that probe reports, like live
 *     connections are, not when the probe would be presumed lost (30 s, more
 *     than the ring holds).
 *
 * Proven: no AUDIO_DROPPED; every sample covered by exactly one final on one
 * timeline (null-engine checksums); and each session's backlog is all final
 * (CAUGHT_UP) within CATCHUP_BOUND_S of the outage's end.
 */

#define RATE 16000u
#define NSESS 3
#define AUDIO_S 40.0
#define OUTAGE_S 5.0
/* The breaker's open period (2 s, doubled once to 4 s) plus handshakes and replaying ~9 s of
 * backlog at the backfill pace (1.2x): well under the 30 s a probe takes to be presumed lost. */
#define CATCHUP_BOUND_S 14.0

static void nap_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static void blackhole_all(const h_server *chaos, char names[][32], size_t *n, size_t cap)
{
    cJSON *j = h_http_ok(chaos->control_port, "GET", "/connections", NULL);
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (strcmp(h_jstr(c, "state"), "open") != 0 || *n == cap)
            continue;
        int id = (int)h_jnum(c, "id", -1);
        snprintf(names[*n], 32, "bh%d", id);
        h_toxic_add(chaos, "{\"name\":\"%s\",\"type\":\"blackhole\",\"connection\":%d}", names[*n],
                    id);
        (*n)++;
    }
    cJSON_Delete(j);
}

/* Seconds (on h_now_ms) of the last event of type at or after t_ms, or -1. */
static double last_event_after(h_collector *col, steno_event_type type, uint64_t t_ms)
{
    double at = -1;
    pthread_mutex_lock(&col->mu);
    for (size_t i = 0; i < col->n; i++)
        if (col->ev[i].type == type && col->ev[i].t_ms >= t_ms)
            at = (double)(col->ev[i].t_ms - t_ms) / 1000.0;
    pthread_mutex_unlock(&col->mu);
    return at;
}

static bool backfilling(h_run *r)
{
    steno_session_stats st;
    steno_session_stats_get(r->s, &st);
    return st.backfills >= 1 && h_count(&r->col, STENO_EVENT_RECONNECTED) >= 1;
}

int main(void)
{
    h_init("shared_breaker_backfill");
    h_server srv, chaos;
    const char *args[] = {"--max-rate", "1.25", "--burst-ms", "2000", NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);

    const size_t total = (size_t)(AUDIO_S * RATE);
    int16_t *pcm = h_pattern_alloc(23, total);
    steno_client *cl = h_client_open(NULL);
    h_run runs[NSESS];
    for (int i = 0; i < NSESS; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        h_run_init_provider_defaults(&runs[i], name, chaos.port);
        h_run_open(&runs[i], cl);
    }
    for (int i = 0; i < NSESS; i++)
        H_CHECK(h_wait_type(&runs[i].col, STENO_EVENT_CONNECTED, 1, 10000 * h_slow()),
                "s%d never connected", i);
    for (int i = 0; i < NSESS; i++)
        h_run_stream(&runs[i], pcm, total, 1.0);

    /* 1. a network blackhole under every live connection at 5 s of audio, half-way between
     * two pings: each connection pings every ping_interval_ms (1 s) from its CONNECTED, so it
     * misses its next pong 0.5 s later and is declared dead pong_timeout_ms (1.5 s) after
     * that, ~2 s cut off. Right after a ping, its pong could be in flight or not, and the cut
     * would be 1.5 s or 2.5 s by chance; 1.5 s may leave the seam search nothing to hand to
     * a backfill. */
    pthread_mutex_lock(&runs[0].col.mu);
    size_t ci = h_find(&runs[0].col, STENO_EVENT_CONNECTED, 0);
    uint64_t t_conn = ci == (size_t)-1 ? 0 : runs[0].col.ev[ci].t_ms;
    pthread_mutex_unlock(&runs[0].col.mu);
    H_CHECK(ci != (size_t)-1, "s0 has no CONNECTED event");
    /* the sessions connected within milliseconds of each other: s0's phase is theirs */
    while (h_producer_written(&runs[0].prod) < 5 * RATE || (h_now_ms() - t_conn) % 1000u < 400u ||
           (h_now_ms() - t_conn) % 1000u > 600u)
        nap_ms(5);
    char toxics[16][32];
    size_t ntox = 0;
    blackhole_all(&chaos, toxics, &ntox, 16);
    h_log("blackholed %zu connections", ntox);
    uint64_t deadline = h_now_ms() + 15000u * h_slow();
    for (int i = 0; i < NSESS; i++)
        while (!backfilling(&runs[i])) {
            H_CHECK(h_now_ms() < deadline, "s%d never started a backfill after the blackhole", i);
            nap_ms(10);
        }
    for (size_t k = 0; k < ntox; k++)
        h_toxic_remove(&chaos, toxics[k]);

    /* 2. the provider goes down while every session is replaying its backlog */
    h_log("provider down for %.0f s: every connection reset, every handshake 503", OUTAGE_S);
    h_fault(&srv, "{\"down\":true,\"status\":503}");
    h_chaos_reset_all(&chaos);
    nap_ms((uint32_t)(OUTAGE_S * 1000)); /* the outage's length, not a synchronisation */
    h_fault(&srv, "{\"down\":false}");
    uint64_t back_ms = h_now_ms();
    h_log("provider back");

    for (int i = 0; i < NSESS; i++) {
        size_t w = h_producer_join(&runs[i].prod);
        H_CHECK(w == total, "s%d: producer wrote %zu of %zu frames", i, w, total);
    }
    for (int i = 0; i < NSESS; i++) {
        steno_status rc = steno_session_close(runs[i].s, 60000 * h_slow());
        H_CHECK(rc == STENO_OK, "s%d: close: %s", i, steno_status_name(rc));
    }

    for (int i = 0; i < NSESS; i++) {
        h_run *r = &runs[i];
        steno_session_stats st;
        steno_session_stats_get(r->s, &st);
        char desc[512], err[512];
        uint64_t dropped = h_dropped(&r->col, desc, sizeof desc);
        h_cover cov;
        bool ok = h_check_timeline(&r->col, pcm, total, RATE, true, &cov, err, sizeof err);
        double caught = last_event_after(&r->col, STENO_EVENT_CAUGHT_UP, back_ms);
        h_log("s%d: reconnects %u, backfill handshakes %u, breaker waits counted in metrics; "
              "dropped %" PRIu64 " samples, uncovered %" PRIu64 "; backlog final %.2f s after "
              "the provider came back",
              i, st.reconnects, st.backfills, dropped, cov.uncovered, caught);
        H_CHECK(dropped == 0 && st.samples_dropped == 0 && st.samples_evicted == 0,
                "s%d: %" PRIu64 " samples lost to AUDIO_DROPPED: %s", i, dropped, desc);
        H_CHECK(ok, "s%d: %s", i, err);
        H_CHECK(cov.uncovered == 0, "s%d: %" PRIu64 " samples not covered by a final: %s", i,
                cov.uncovered, cov.uncovered_desc);
        H_CHECK(caught >= 0 && caught <= CATCHUP_BOUND_S * h_slow(),
                "s%d: its backlog was final only %.2f s after the provider came back (never if "
                "< 0), bound %.0f s: a backfill connection waited for the breaker too long",
                i, caught, CATCHUP_BOUND_S);
    }
    for (int i = 0; i < NSESS; i++)
        h_run_free(&runs[i]);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
