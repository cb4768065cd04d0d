/* test_breaker_and_budget_bound_retries: 200 sessions through a 30 s outage make a bounded trickle.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * Invariant 7 at scale. 200 sessions share one client (one breaker for the
 * endpoint, one retry budget, at most 16 handshakes in flight). The server
 * drops every connection and refuses handshakes (503) for 30 s. Without the
 * breaker each session would retry on its own schedule: hundreds of
 * attempts. With it, the attempts that can fail are bounded by the
 * configuration:
 *
 *   before the breaker opens: (threshold - 1) failures, plus the handshakes
 *     already in flight when the threshold-th failure lands (at most
 *     max_concurrent_connects, the one that failed included);
 *   while it is open: one probe per open period; periods are o, 2o, 2o, ...
 *     (o = breaker_open_ms: it doubles once), so an outage of T ms sees at
 *     most #{k >= 1 : o + 2o (k - 1) <= T + 1 s} failing probes.
 *
 * The server's connection records and the sessions' own stats must agree
 * and stay within that bound; every session must come back once the server
 * does, and every session's audio accounting must close. The budget: every
 * failed attempt's retry leases 5 tokens (server error), a retry after a
 * healthy connection is free, a success returns the latest lease, and a
 * success that needed no lease pays back 1; the bucket must end exactly at
 * min(capacity, capacity - 5 * (leases lost) + (free successes)).
 */

#define SESSIONS 200
#define RATE 8000u
#define CHUNK_FRAMES (RATE / 10u)
#define OUTAGE_MS 30000u
#define OPEN_MS 1000u
#define THRESHOLD 5u
#define MAX_CONNECTS 16u
#define SERVER_COST 5

typedef struct sess {
    h_run run;
    int16_t *pcm;
    size_t written;
} sess;

static void write_all(sess *ss, size_t upto)
{
    for (int i = 0; i < SESSIONS; i++) {
        sess *x = &ss[i];
        steno_status rc = steno_session_write(x->run.s, x->pcm + x->written, upto - x->written);
        H_CHECK(rc == STENO_OK, "session %d: write: %s", i, steno_status_name(rc));
        x->written = upto;
    }
}

/* Streams up to `upto` into every session at real time, 100 ms at a time, like 200 live
 * microphones: the connections are then healthy (up longer than healthy_after_ms, results
 * received), so the drop's first retry is free as documented. */
static void stream_all(sess *ss, size_t upto)
{
    uint64_t t0 = h_now_ms();
    size_t start = ss[0].written;
    for (size_t at = start; at < upto;) {
        size_t next = at + CHUNK_FRAMES < upto ? at + CHUNK_FRAMES : upto;
        write_all(ss, next);
        at = next;
        uint64_t due = t0 + (uint64_t)(at - start) * 1000u / RATE;
        uint64_t now = h_now_ms();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000),
                                  (long)((due - now) % 1000) * 1000000L};
            nanosleep(&ts, NULL); /* the capture clock, not a synchronisation */
        }
    }
}

static int failing_probes_bound(uint64_t outage_ms)
{
    int k = 0;
    uint64_t period = OPEN_MS, elapsed = 0;
    while (elapsed + period <= outage_ms + 1000u) {
        elapsed += period;
        k++;
        period = period * 2 > 2 * OPEN_MS ? 2 * OPEN_MS : period * 2; /* doubles once */
    }
    return k;
}

int main(void)
{
    h_init("breaker_and_budget_bound_retries");
    h_server srv;
    h_server_start(&srv, NULL);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.breaker_failure_threshold = THRESHOLD;
    cc.breaker_open_ms = OPEN_MS;
    cc.max_concurrent_connects = MAX_CONNECTS;
    steno_client *cl = h_client_open(&cc);
    const double capacity = h_metric(cl, "steno_budget_tokens", NULL);
    H_CHECK(capacity > 0, "no steno_budget_tokens metric");

    const size_t per = RATE * 7 / 2; /* 1.5 s before, 1 s during, 1 s after the outage */
    sess *ss = calloc(SESSIONS, sizeof *ss);
    H_CHECK(ss, "out of memory");
    for (int i = 0; i < SESSIONS; i++) {
        sess *x = &ss[i];
        char name[16];
        snprintf(name, sizeof name, "s%03d", i);
        h_run_init(&x->run, name, srv.port);
        x->run.col.quiet = 1;
        x->run.sc.sample_rate = RATE;
        x->run.sc.retry.max_outage_ms = 120000;
        h_run_open(&x->run, cl);
        x->pcm = h_pattern_alloc(1000u + (uint32_t)i, per);
    }
    stream_all(ss, RATE * 3 / 2);
    /* each connection healthy (a final received) before the outage */
    for (int i = 0; i < SESSIONS; i++)
        H_CHECK(h_wait_acked(&ss[i].run.col, RATE, 30000 * h_slow()),
                "session %d: no final before the outage", i);
    h_log("%d sessions streaming", SESSIONS);

    int records_before = h_server_record_count(&srv);
    H_CHECK(records_before == SESSIONS, "%d records before the outage", records_before);

    uint64_t t_down = h_now_ms();
    h_fault(&srv, "{\"down\":true,\"status\":503}");
    h_fault(&srv, "{\"action\":\"drop\"}");
    write_all(ss, RATE * 5 / 2);
    /* the outage lasts OUTAGE_MS; no session may give up meanwhile */
    bool ended = h_wait_type(&ss[0].run.col, STENO_EVENT_FAILED, 1, OUTAGE_MS);
    H_CHECK(!ended, "session 0 failed during the outage");
    for (int i = 0; i < SESSIONS; i++) {
        steno_session_state st = steno_session_state_get(ss[i].run.s);
        H_CHECK(st == STENO_STATE_RECONNECTING, "session %d is %s during the outage", i,
                steno_session_state_name(st));
    }
    double open_state = h_metric(cl, "steno_breaker_state", NULL);
    /* mid-outage, between probes: each failed attempt has leased SERVER_COST tokens for its
     * retry, and the free retries after the healthy drops cost nothing */
    double tokens_mid = h_metric(cl, "steno_budget_tokens", NULL);
    int failed_mid = h_server_record_count(&srv) - records_before;
    h_log("mid-outage: %d failed attempts, budget %.0f of %.0f tokens", failed_mid, tokens_mid,
          capacity);
    H_CHECK(fabs(tokens_mid - (capacity - SERVER_COST * failed_mid)) < 0.5,
            "budget %.0f tokens after %d failed attempts, want %.0f", tokens_mid, failed_mid,
            capacity - SERVER_COST * failed_mid);
    h_fault(&srv, "{\"down\":false}");
    uint64_t outage = h_now_ms() - t_down;
    h_log("server back after %" PRIu64 " ms (breaker state then: %.0f)", outage, open_state);

    uint64_t t_up = h_now_ms();
    for (int i = 0; i < SESSIONS; i++)
        H_CHECK(h_wait_type(&ss[i].run.col, STENO_EVENT_RECONNECTED, 1, 30000 * h_slow()),
                "session %d did not come back", i);
    h_log("all %d sessions reconnected %" PRIu64 " ms after the server came back", SESSIONS,
          h_now_ms() - t_up);
    write_all(ss, per);
    for (int i = 0; i < SESSIONS; i++)
        h_run_close(&ss[i].run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 30000), "server connections still open");

    /* attempts: the server's records and the sessions' stats */
    cJSON *recs = h_server_records(&srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    int srv_ok = 0, srv_503 = 0, srv_other = 0;
    cJSON_ArrayForEach(r, arr)
    {
        int hs = (int)h_jnum(r, "handshake_status", 0);
        if (hs == 101)
            srv_ok++;
        else if (hs == 503)
            srv_503++;
        else
            srv_other++;
    }
    uint64_t sdk_attempts = 0, sdk_connects = 0, backfills = 0;
    for (int i = 0; i < SESSIONS; i++) {
        steno_session_stats st;
        steno_session_stats_get(ss[i].run.s, &st);
        sdk_attempts += st.attempts;
        sdk_connects += st.connects;
        backfills += st.backfills;
    }
    const int probes = failing_probes_bound(outage);
    const int bound = (int)(THRESHOLD - 1 + MAX_CONNECTS) + probes;
    h_log("handshakes: server %d ok + %d refused (503) + %d other; SDK %" PRIu64
          " attempts, %" PRIu64 " connects",
          srv_ok, srv_503, srv_other, sdk_attempts, sdk_connects);
    h_log("bound on failed attempts: (threshold %u - 1) + max_concurrent_connects %u + "
          "failing probes in %" PRIu64 " ms at open %u ms doubling (%d) = %d; measured %d",
          THRESHOLD, MAX_CONNECTS, outage, OPEN_MS, probes, bound, srv_503);
    H_CHECK(srv_other == 0, "%d handshakes with an unexpected status", srv_other);
    /* one live connection before and one after the outage, plus one per backfill (the
     * backlog each session held when it came back, replayed in parallel) */
    H_CHECK(srv_ok == 2 * SESSIONS + (int)backfills,
            "%d successful handshakes, want %d (one before, one after, %" PRIu64 " backfills)",
            srv_ok, 2 * SESSIONS + (int)backfills, backfills);
    H_CHECK(srv_503 <= bound, "%d failed handshakes during the outage exceed the bound %d", srv_503,
            bound);
    H_CHECK(srv_503 >= (int)THRESHOLD, "only %d failed handshakes: did the outage happen?",
            srv_503);
    H_CHECK(sdk_attempts == (uint64_t)(srv_ok + srv_503),
            "the sessions count %" PRIu64 " attempts, the server %d", sdk_attempts,
            srv_ok + srv_503);
    H_CHECK(sdk_connects == (uint64_t)srv_ok, "connects %" PRIu64 " vs server %d", sdk_connects,
            srv_ok);

    /* the budget: leases lost on failed attempts, paybacks for free successes */
    double lost = 0, free_successes = 0;
    uint64_t replayed_total = 0;
    for (int i = 0; i < SESSIONS; i++) {
        h_collector *col = &ss[i].run.col;
        pthread_mutex_lock(&col->mu);
        int leases = 0, last_cost = 0;
        bool first = true;
        for (size_t k = 0; k < col->n; k++) {
            const h_ev *e = &col->ev[k];
            if (e->type != STENO_EVENT_RECONNECTING)
                continue;
            if (first) {
                first = false; /* the drop of a healthy connection: a free retry */
                continue;
            }
            int cost = (e->cause == STENO_ERR_SERVER || e->cause == STENO_ERR_RATE_LIMITED)
                           ? SERVER_COST
                           : 2 * SERVER_COST;
            leases++;
            lost += cost;
            last_cost = cost;
        }
        if (leases)
            lost -= last_cost; /* the success returned the latest lease */
        else
            free_successes++;
        pthread_mutex_unlock(&col->mu);
    }
    double tokens = h_metric(cl, "steno_budget_tokens", NULL);
    double exhausted = h_metric(cl, "steno_budget_exhausted_total", NULL);
    /* each backfill connection that needed no retry pays one token back, too */
    double want = capacity - lost + free_successes + (double)backfills;
    if (want > capacity)
        want = capacity;
    h_log("budget: capacity %.0f, leases lost %.0f tokens, %.0f free successes -> expect %.0f, "
          "have %.0f (exhausted %.0f)",
          capacity, lost, free_successes, want, tokens, exhausted);
    H_CHECK(exhausted == 0 || isnan(exhausted), "the budget ran out");
    H_CHECK(fabs(tokens - want) < 0.5, "budget tokens %.0f, want %.0f", tokens, want);

    /* every session's audio: covered once, in order, nothing dropped (the records hold 200
     * sessions' connections: backfills are counted from the stats, not found by scanning) */
    h_accounting_scan_backfill = false;
    for (int i = 0; i < SESSIONS; i++) {
        h_accounting acc;
        h_run_check_accounting(&ss[i].run, ss[i].pcm, per, recs, &acc);
        steno_session_stats st;
        steno_session_stats_get(ss[i].run.s, &st);
        H_CHECK(acc.dropped == 0 && acc.connections == 2,
                "session %d: %" PRIu64 " dropped, %zu live connections (and %u backfills)", i,
                acc.dropped, acc.connections, st.backfills);
        replayed_total += acc.replayed;
    }
    h_log("accounting closes for all %d sessions (%" PRIu64 " samples replayed in total)", SESSIONS,
          replayed_total);
    cJSON_Delete(recs);

    for (int i = 0; i < SESSIONS; i++) {
        h_run_free(&ss[i].run);
        free(ss[i].pcm);
    }
    free(ss);
    steno_client_destroy(cl);
    return h_pass();
}
