/* test_retry_after_honoured: a refused handshake's Retry-After delays the next attempt, no more. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * The backoff design: a provider's Retry-After (delta seconds or an
 * HTTP-date) is honoured. Three refusals, each followed by exactly one more
 * attempt:
 *   1. the first handshake of a session: 429 Retry-After: 1
 *   2. the reconnect after a healthy connection closed (1011), which would
 *      otherwise be immediate: 503 Retry-After: 2
 *   3. the same with an HTTP-date 3 s ahead.
 * From the server's records (one clock): the next handshake arrives no
 * sooner than the Retry-After allows (strict lower bound), and within 1 s
 * after it (generous upper bound). The RECONNECTING event announces the
 * delay, and the session loses no audio over it all.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)

typedef struct ra_case {
    const char *name;
    int status;
    const char *retry_after; /* NULL: an HTTP-date, computed */
    double seconds;          /* for a delta */
} ra_case;

/* The record right after the rejected one with the given status, and its predecessor. */
static void check_gap(const h_server *srv, int from_id, int status, double not_before,
                      double wait_s, double slack, const char *name)
{
    cJSON *recs = h_server_records(srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    const cJSON *rej = NULL, *next = NULL;
    cJSON_ArrayForEach(r, arr)
    {
        if ((int)h_jnum(r, "id", 0) <= from_id)
            continue;
        if (!rej && (int)h_jnum(r, "handshake_status", 0) == status)
            rej = r;
        else if (rej && !next)
            next = r;
    }
    H_CHECK(rej, "%s: no record of the %d refusal", name, status);
    H_CHECK(next, "%s: no handshake after the %d refusal", name, status);
    H_CHECK((int)h_jnum(next, "handshake_status", 0) == 101,
            "%s: the attempt after the refusal got %d", name,
            (int)h_jnum(next, "handshake_status", 0));
    double t_rej = h_jnum(rej, "start", 0), t_next = h_jnum(next, "start", 0);
    double lower = not_before > 0 ? not_before : t_rej + wait_s;
    h_log("%s: refused at %.3f, next attempt %.3f s later (allowed from %.3f s)", name, t_rej,
          t_next - t_rej, lower - t_rej);
    H_CHECK(t_next >= lower,
            "%s: the next attempt came %.3f s after the refusal, before the "
            "Retry-After allowed (%.3f s)",
            name, t_next - t_rej, lower - t_rej);
    H_CHECK(t_next <= lower + slack,
            "%s: the next attempt came %.3f s after the refusal, over %.1f s later than allowed",
            name, t_next - t_rej, slack);
    cJSON_Delete(recs);
}

static int last_record_id(const h_server *srv)
{
    cJSON *recs = h_server_records(srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    int n = cJSON_GetArraySize(arr);
    int id = n ? (int)h_jnum(cJSON_GetArrayItem(arr, n - 1), "id", 0) : 0;
    cJSON_Delete(recs);
    return id;
}

/* The delay the last RECONNECTING event announced. */
static uint32_t last_delay(h_collector *c, int *http)
{
    pthread_mutex_lock(&c->mu);
    uint32_t d = 0;
    for (size_t i = c->n; i-- > 0;) {
        if (c->ev[i].type == STENO_EVENT_RECONNECTING && c->ev[i].http_status) {
            d = c->ev[i].delay_ms;
            *http = c->ev[i].http_status;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return d;
}

int main(void)
{
    h_init("retry_after_honoured");
    h_server srv;
    h_server_start(&srv, NULL);
    const size_t total = 14u * RATE;
    int16_t *pcm = h_pattern_alloc(3, total);

    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init(&run, "session", srv.port);

    /* 1: the first handshake */
    h_fault(&srv, "{\"reject_next\":1,\"status\":429,\"retry_after\":\"1\"}");
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_CONNECTED, 1, 10000 * h_slow()), "never connected");
    int http = 0;
    uint32_t d = last_delay(&run.col, &http);
    H_CHECK(http == 429 && d >= 1000, "RECONNECTING announced %u ms after HTTP %d", d, http);
    check_gap(&srv, 0, 429, 0, 1.0, 1.0, "429 Retry-After: 1 on the first handshake");

    /* 2 and 3: reconnects after a healthy connection closed */
    for (int round = 0; round < 2; round++) {
        /* a healthy connection (up for a while, finals received) whose drop would be
         * retried at once */
        uint64_t mark = (uint64_t)(round + 1) * 4u * RATE + RATE;
        H_CHECK(h_producer_wait(&run.prod, (size_t)mark, 20000), "producer stalled");
        H_CHECK(h_wait_acked(&run.col, mark - RATE, 20000 * h_slow()), "no finals");
        int from = last_record_id(&srv);
        double not_before = 0;
        const char *name;
        if (round == 0) {
            h_fault(&srv, "{\"reject_next\":1,\"status\":503,\"retry_after\":\"2\"}");
            name = "503 Retry-After: 2 on a reconnect";
        } else {
            /* an HTTP-date: whole seconds, so the allowed moment is that second's start */
            time_t at = time(NULL) + 3;
            struct tm tm;
            gmtime_r(&at, &tm);
            char date[64];
            strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            h_fault(&srv, "{\"reject_next\":1,\"status\":503,\"retry_after\":\"%s\"}", date);
            not_before = (double)at;
            name = "503 Retry-After: <HTTP-date 3 s ahead> on a reconnect";
        }
        h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\"}");
        H_CHECK(
            h_wait_type(&run.col, STENO_EVENT_RECONNECTED, (size_t)round + 1, 20000 * h_slow()) &&
                !h_ended(&run.col),
            "%s: no RECONNECTED", name);
        d = last_delay(&run.col, &http);
        H_CHECK(http == 503 && d >= (round == 0 ? 2000u : 1000u),
                "%s: RECONNECTING announced %u ms after HTTP %d", name, d, http);
        /* an HTTP-date has whole seconds: a client counting whole seconds may wait up to 1 s
         * more than the instant named */
        check_gap(&srv, from, 503, not_before, 2.0, round == 0 ? 1.0 : 1.5, name);
    }

    size_t written = h_producer_join(&run.prod);
    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
