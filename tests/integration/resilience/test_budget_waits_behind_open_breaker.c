/* test_budget_waits_behind_open_breaker: a mass outage's first wave does not end the sessions
 * that find the retry budget empty while the breaker is open. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * Invariant 7 with many handshakes in flight. 24 healthy sessions share one client whose
 * retry budget holds 4 leases (20 tokens at 5 per server error) and which lets all 24
 * handshakes fly at once. The server drops every connection and refuses handshakes (503) for
 * 3 s. Each session's free retry after the healthy drop fails; the breaker opens at the second
 * failure, and the later failures find the bucket empty. Those sessions must wait behind the
 * open breaker for its probe, not fail with STENO_ERR_BUDGET_EXHAUSTED: the breaker already
 * stops them retrying. Every session comes back once the server does, and the bucket is no
 * larger than its capacity.
 */

#define SESSIONS 24
#define RATE 8000u
#define CHUNK_FRAMES (RATE / 10u)
#define OUTAGE_MS 3000u
#define CAPACITY 20u

static h_run runs[SESSIONS];
static int16_t *pcm[SESSIONS];
static size_t written;

static void write_all(size_t upto)
{
    for (int i = 0; i < SESSIONS; i++) {
        steno_status rc = steno_session_write(runs[i].s, pcm[i] + written, upto - written);
        /* a session that gave up refuses audio (STENO_ERR_STATE): counted at the end */
        H_CHECK(rc == STENO_OK || rc == STENO_ERR_STATE, "session %d: write: %s", i,
                steno_status_name(rc));
    }
    written = upto;
}

/* real time, 100 ms at a time: the capture clock, not a synchronisation */
static void stream_all(size_t upto)
{
    uint64_t t0 = h_now_ms();
    size_t start = written;
    while (written < upto) {
        size_t next = written + CHUNK_FRAMES < upto ? written + CHUNK_FRAMES : upto;
        write_all(next);
        uint64_t due = t0 + (uint64_t)(written - start) * 1000u / RATE, now = h_now_ms();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000),
                                  (long)((due - now) % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

int main(void)
{
    h_init("budget_waits_behind_open_breaker");
    h_server srv;
    h_server_start(&srv, NULL);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.breaker_failure_threshold = 2;
    cc.breaker_open_ms = 500;
    cc.max_concurrent_connects = SESSIONS;
    cc.retry_budget_capacity = CAPACITY;
    steno_client *cl = h_client_open(&cc);

    const size_t per = RATE * 6;
    for (int i = 0; i < SESSIONS; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%02d", i);
        h_run_init(&runs[i], name, srv.port);
        runs[i].col.quiet = 1;
        runs[i].sc.sample_rate = RATE;
        runs[i].sc.retry.base_ms = 50; /* the first wave lands together */
        h_run_open(&runs[i], cl);
        pcm[i] = h_pattern_alloc(2000u + (uint32_t)i, per);
    }
    stream_all(RATE * 3 / 2);
    for (int i = 0; i < SESSIONS; i++)
        H_CHECK(h_wait_acked(&runs[i].col, RATE / 2, 30000 * h_slow()),
                "session %d: no final before the outage", i);

    h_fault(&srv, "{\"down\":true,\"status\":503}");
    h_fault(&srv, "{\"action\":\"drop\"}");
    uint64_t t_down = h_now_ms();
    stream_all(written + OUTAGE_MS * RATE / 1000u);
    double exhausted_mid = h_metric(cl, "steno_budget_exhausted_total", NULL);
    double tokens_mid = h_metric(cl, "steno_budget_tokens", NULL);
    h_log("outage %" PRIu64 " ms: budget %.0f of %u tokens, %.0f refusals that ended a session",
          h_now_ms() - t_down, tokens_mid, CAPACITY, exhausted_mid);
    h_fault(&srv, "{\"down\":false}");
    stream_all(per);

    int failed = 0, back = 0;
    for (int i = 0; i < SESSIONS; i++) {
        bool ok = h_wait_type(&runs[i].col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow());
        if (h_count(&runs[i].col, STENO_EVENT_FAILED)) {
            size_t at = h_find(&runs[i].col, STENO_EVENT_FAILED, 0);
            if (!failed++)
                h_log("session %d failed: %s (%s)", i, runs[i].col.ev[at].message,
                      steno_status_name(runs[i].col.ev[at].status));
        } else if (ok) {
            back++;
        }
    }
    h_log("%d of %d sessions back, %d failed", back, SESSIONS, failed);
    H_CHECK(failed == 0, "%d sessions gave up during the outage", failed);
    H_CHECK(back == SESSIONS, "only %d of %d sessions reconnected", back, SESSIONS);
    double tokens = h_metric(cl, "steno_budget_tokens", NULL);
    H_CHECK(tokens <= CAPACITY, "budget %.0f tokens above its capacity %u", tokens, CAPACITY);

    for (int i = 0; i < SESSIONS; i++) {
        h_run_close(&runs[i], 30000 * h_slow());
        h_run_free(&runs[i]);
        free(pcm[i]);
    }
    steno_client_destroy(cl);
    return h_pass();
}
