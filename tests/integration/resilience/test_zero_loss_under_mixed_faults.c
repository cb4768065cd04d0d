/* test_zero_loss_under_mixed_faults: 60 s through 20 mixed faults; every sample finalized once. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * Invariants 1-3 under the faults a real network produces. A 60 s stream
 * (null engine: every final names its samples and their checksum) goes
 * through the chaos proxy while 20 faults of six kinds hit it, spread over
 * the stream by acknowledged progress:
 *   reset      the proxy RSTs the connection
 *   close1011  the server closes with 1011
 *   blackhole  the proxy stops forwarding both ways (half-open)
 *   reject503  the next two handshakes get 503, then the proxy RSTs
 *   ratelimit  the next handshake gets 429 Retry-After: 1, then close 1011
 *   stall      the server stops reading and sending (TCP stays open)
 * At the end every written sample must be covered by exactly one final, no
 * AUDIO_DROPPED may have been reported, each connection's audio (server
 * record: sample count + checksum) must be the written stream from the first
 * chunk not yet acknowledged when it opened, and timestamps must be
 * monotonic. Each fault strikes a healthy connection, so its first retry
 * must be immediate. The reconnect gap (fault -> first audio byte of the next
 * connection at the server) is printed per fault kind.
 *
 * Time is scaled by CAPTURE_SPEED (2.5x) as a whole: capture, the session's
 * send pacing (1.25 x 2.5 = 3.125x) and the server's ingest limit
 * (--max-rate 3.125, burst 2 s of audio), so replay never outruns capture by
 * more than Deepgram's 1.25x, and the server closes any connection that does.
 */

#define RATE 16000u
#define CHUNK_MS 100u
#define CHUNK_FRAMES (RATE * CHUNK_MS / 1000u)
#define STREAM_S 60u
#define FAULTS 20
#define HEALTHY_MS 300u
#define CAPTURE_SPEED 2.5

enum kind { RESET, CLOSE1011, BLACKHOLE, REJECT503, RATELIMIT, STALL, KINDS };
static const char *kind_names[KINDS] = {"reset",     "close1011", "blackhole",
                                        "reject503", "ratelimit", "stall"};

typedef struct fault_rec {
    enum kind kind;
    double t_wall; /* when it was injected */
    uint64_t t_ms;
    size_t reconnected_ev; /* index of the RECONNECTED event that ended it */
    char rid[128];         /* the request id of the connection that replaced it */
} fault_rec;

typedef struct healthy_arg {
    uint64_t not_before; /* the connection's age condition, h_now_ms() */
} healthy_arg;

/* A final arrived after the current connection opened. */
static bool pred_healthy(h_collector *c, void *arg)
{
    (void)arg;
    size_t last_open = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].type == STENO_EVENT_CONNECTED || c->ev[i].type == STENO_EVENT_RECONNECTED)
            last_open = i;
    for (size_t i = last_open; i < c->n; i++)
        if (c->ev[i].type == STENO_EVENT_TRANSCRIPT && c->ev[i].is_final)
            return true;
    return c->terminal;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    h_init("zero_loss_under_mixed_faults");
    /* time runs CAPTURE_SPEED times faster everywhere: capture, the session's pacing and the
     * server's ingest limit (Deepgram's 1.25x, scaled), so sending never outruns capture by
     * more than a real provider allows */
    char max_rate[16];
    snprintf(max_rate, sizeof max_rate, "%.3f", 1.25 * CAPTURE_SPEED);
    const char *args[] = {"--max-rate", max_rate, "--burst-ms", "2000", NULL};
    h_server srv, chaos;
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);

    const size_t total = (size_t)STREAM_S * RATE;
    int16_t *pcm = h_pattern_alloc(7, total);

    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init(&run, "session", chaos.port);
    run.sc.healthy_after_ms = HEALTHY_MS;
    double speed = CAPTURE_SPEED;
    double send_speed = h_fast_send(&run.sc, 1.25 * speed);
    h_log("capturing at %.2fx real time, sending at up to %.3fx, the server's limit %sx", speed,
          send_speed, max_rate);
    h_run_open(&run, cl);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_CONNECTED, 1, 10000 * h_slow()), "never connected");

    h_run_stream(&run, pcm, total, speed);

    fault_rec faults[FAULTS];
    memset(faults, 0, sizeof faults);
    size_t reconnects = 0;
    uint64_t conn_since_ms = h_now_ms();
    for (int i = 0; i < FAULTS; i++) {
        fault_rec *f = &faults[i];
        f->kind = (enum kind)(i % KINDS);
        /* spread the faults over the stream by acknowledged audio */
        uint64_t target = (uint64_t)(i + 1) * total / (FAULTS + 2);
        H_CHECK(h_wait_acked(&run.col, target, 60000 * h_slow()),
                "fault %d: finals did not reach sample %" PRIu64 " (acked %" PRIu64 ")", i, target,
                h_acked(&run.col));
        /* strike a healthy connection (up longer than healthy_after_ms, a final received
         * on it), so every fault takes the documented immediate-retry path first */
        healthy_arg ha = {conn_since_ms + HEALTHY_MS + 50};
        H_CHECK(h_wait(&run.col, pred_healthy, &ha, 60000 * h_slow()) && !h_ended(&run.col),
                "fault %d: the connection never became healthy", i + 1);
        uint64_t now_ms = h_now_ms();
        if (now_ms < ha.not_before) {
            struct timespec ts = {0, (long)(ha.not_before - now_ms) * 1000000L};
            nanosleep(&ts, NULL); /* an age condition: there is no event for it */
        }
        /* strike mid-span, so the fault catches audio sent but not yet acknowledged */
        uint64_t acked = h_acked(&run.col);
        H_CHECK(h_producer_wait(&run.prod, (size_t)acked + RATE / 2, 60000 * h_slow()),
                "producer stalled");
        /* a blackhole silences every open proxy connection: the live one and any backfill
         * connection still replaying an earlier backlog (the newest open one may be either) */
        int bh_ids[16], n_bh = 0;
        if (f->kind == BLACKHOLE) {
            cJSON *cj = h_http_ok(chaos.control_port, "GET", "/connections", NULL);
            const cJSON *cc;
            cJSON_ArrayForEach(cc, cj)
            {
                if (strcmp(h_jstr(cc, "state"), "open") == 0 && n_bh < 16)
                    bh_ids[n_bh++] = (int)h_jnum(cc, "id", -1);
            }
            cJSON_Delete(cj);
            H_CHECK(n_bh > 0, "no open proxy connection to blackhole");
        }
        f->t_wall = h_wall_s();
        f->t_ms = h_now_ms();
        switch (f->kind) {
        case RESET:
            h_chaos_reset_all(&chaos);
            break;
        case CLOSE1011:
            h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\"}");
            break;
        case BLACKHOLE:
            for (int b = 0; b < n_bh; b++)
                h_toxic_add(&chaos,
                            "{\"name\":\"bh%d_%d\",\"type\":\"blackhole\",\"connection\":%d}", i,
                            bh_ids[b], bh_ids[b]);
            break;
        case REJECT503:
            h_fault(&srv, "{\"reject_next\":2,\"status\":503}");
            h_chaos_reset_all(&chaos);
            break;
        case RATELIMIT:
            h_fault(&srv, "{\"reject_next\":1,\"status\":429,\"retry_after\":\"1\"}");
            h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\"}");
            break;
        case STALL:
            h_fault(&srv, "{\"action\":\"stall\"}");
            break;
        default:
            break;
        }
        h_log("fault %d: %s (captured %.2f s, finalized %.2f s)", i + 1, kind_names[f->kind],
              (double)h_producer_written(&run.prod) / RATE, (double)h_acked(&run.col) / RATE);
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, reconnects + 1, 30000 * h_slow()),
                "fault %d (%s): no RECONNECTED within 30 s", i + 1, kind_names[f->kind]);
        H_CHECK(!h_ended(&run.col), "fault %d (%s): the session ended", i + 1, kind_names[f->kind]);
        reconnects++;
        for (int b = 0; b < n_bh; b++) {
            char name[32];
            snprintf(name, sizeof name, "bh%d_%d", i, bh_ids[b]);
            h_toxic_remove(&chaos, name);
        }
        if (f->kind == STALL)
            h_fault(&srv, "{\"action\":\"unstall\"}");
        pthread_mutex_lock(&run.col.mu);
        size_t k = 0, seen = 0;
        for (k = 0; k < run.col.n; k++)
            if (run.col.ev[k].type == STENO_EVENT_RECONNECTED && ++seen == reconnects)
                break;
        f->reconnected_ev = k;
        conn_since_ms = run.col.ev[k].t_ms;
        snprintf(f->rid, sizeof f->rid, "%s", run.col.ev[k].request_id);
        pthread_mutex_unlock(&run.col.mu);
    }

    size_t written = h_producer_join(&run.prod);
    H_CHECK(written == total, "producer wrote %zu of %zu frames", written, total);
    H_CHECK(run.prod.full_returns == 0 && run.prod.bad_status == 0,
            "steno_session_write returned FULL %" PRIu64 " times / status %d",
            (uint64_t)run.prod.full_returns, run.prod.bad_status);
    h_run_close(&run, 60000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    h_log("stats: attempts %u connects %u reconnects %u dead %u, chunks sent %" PRIu64
          " replayed %" PRIu64 ", finals %" PRIu64 " suppressed %" PRIu64,
          st.attempts, st.connects, st.reconnects, st.dead_connections, st.chunks_sent,
          st.chunks_replayed, st.transcripts_final, st.finals_suppressed);

    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    /* blackholes and stalls cut connections in the middle of a message: each connection's audio
     * is placed message by message from the server's frame log, not by its total checksum */
    h_accounting_check_slices = false;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    h_witness wit;
    char werr[512];
    H_CHECK(h_witness_load(&wit, &srv, &run.col, pcm, written, CHUNK_FRAMES, werr, sizeof werr),
            "%s", werr);
    char unrecv[256];
    H_CHECK(h_witness_unreceived(&wit, written, unrecv, sizeof unrecv) == 0,
            "audio no connection received: %s", unrecv);
    h_log("accounting: %" PRIu64 " written, %" PRIu64 " covered once by %zu finals over %zu "
          "connections, %" PRIu64 " replayed, %" PRIu64 " dropped",
          acc.written, acc.covered, acc.finals, acc.connections, acc.replayed, acc.dropped);
    H_CHECK(acc.drop_events == 0 && acc.dropped == 0, "audio was dropped");
    H_CHECK(h_count(&run.col, STENO_EVENT_AUDIO_DROPPED) == 0, "AUDIO_DROPPED reported");
    H_CHECK(st.samples_written == total && st.samples_acked == total && st.samples_dropped == 0 &&
                st.samples_evicted == 0,
            "stats: written %" PRIu64 " acked %" PRIu64 " dropped %" PRIu64 " evicted %" PRIu64,
            st.samples_written, st.samples_acked, st.samples_dropped, st.samples_evicted);
    H_CHECK(st.reconnects >= FAULTS, "only %u reconnects for %d faults", st.reconnects, FAULTS);
    H_CHECK(st.dead_connections >= 6,
            "%u connections declared dead, want >= 6 (3 blackholes, "
            "3 stalls)",
            st.dead_connections);

    /* the ingest limit held: no connection was closed for sending too fast */
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *rc;
    cJSON_ArrayForEach(rc, all) H_CHECK(strcmp(h_jstr(rc, "close_cause"), "rate") != 0,
                                        "connection %s was closed for sending faster than %sx",
                                        h_jstr(rc, "request_id"), max_rate);

    /* every connection that carried audio is one the session knew */
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    size_t with_audio = 0;
    cJSON_ArrayForEach(r, arr) with_audio += h_jnum(r, "audio_samples", 0) > 0;
    H_CHECK(with_audio == wit.n,
            "the server saw %zu connections with audio, the witness placed %zu", with_audio, wit.n);
    h_witness_free(&wit);

    /* each fault kind left its mark: refused handshakes at the server (a refusal may land on
     * a backfill connection, which reports no event), closes and timeouts in the live
     * connection's RECONNECTING events */
    int n503 = 0, n429 = 0, n1011 = 0, n_dead = 0;
    cJSON_ArrayForEach(r, arr)
    {
        int hs = (int)h_jnum(r, "handshake_status", 0);
        n503 += hs == 503;
        n429 += hs == 429;
    }
    pthread_mutex_lock(&run.col.mu);
    for (size_t k = 0; k < run.col.n; k++) {
        const h_ev *e = &run.col.ev[k];
        if (e->type != STENO_EVENT_RECONNECTING)
            continue;
        n1011 += e->close_code == 1011;
        n_dead += e->cause == STENO_ERR_TIMEOUT;
        if (e->http_status == 429)
            H_CHECK(e->delay_ms >= 1000, "429 Retry-After: 1 answered with a %u ms delay",
                    e->delay_ms);
    }
    pthread_mutex_unlock(&run.col.mu);
    H_CHECK(n503 == 6 && n429 == 3 && n1011 >= 7 && n_dead >= 6,
            "RECONNECTING causes: %d x 503 (want 6), %d x 429 (want 3), %d x close 1011 "
            "(want >= 7), %d timeouts (want >= 6)",
            n503, n429, n1011, n_dead);

    /* reconnect gap: fault -> first audio byte of the replacing connection at the server */
    double gaps[KINDS][FAULTS];
    int ngaps[KINDS] = {0};
    for (int i = 0; i < FAULTS; i++) {
        const cJSON *rec = h_record_by_rid(recs, faults[i].rid);
        H_CHECK(rec, "fault %d: no record for %s", i + 1, faults[i].rid);
        double first = h_jnum(rec, "first_audio", NAN);
        if (isnan(first))
            continue;
        double gap = h_jnum(rec, "start", 0) + first - faults[i].t_wall;
        /* every fault struck a healthy connection: its first retry must be immediate */
        pthread_mutex_lock(&run.col.mu);
        uint32_t delay = UINT32_MAX;
        for (size_t k = 0; k < run.col.n && delay == UINT32_MAX; k++)
            if (run.col.ev[k].type == STENO_EVENT_RECONNECTING &&
                run.col.ev[k].t_ms >= faults[i].t_ms)
                delay = run.col.ev[k].delay_ms;
        pthread_mutex_unlock(&run.col.mu);
        H_CHECK(delay == 0, "fault %d (%s) on a healthy connection: first retry after %u ms", i + 1,
                kind_names[faults[i].kind], delay);
        gaps[faults[i].kind][ngaps[faults[i].kind]++] = gap * 1000.0;
    }
    for (int k = 0; k < KINDS; k++) {
        if (!ngaps[k])
            continue;
        qsort(gaps[k], (size_t)ngaps[k], sizeof gaps[k][0], cmp_double);
        h_log("reconnect gap after %-9s n=%d: min %.1f ms median %.1f ms max %.1f ms",
              kind_names[k], ngaps[k], gaps[k][0], gaps[k][ngaps[k] / 2], gaps[k][ngaps[k] - 1]);
    }
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
