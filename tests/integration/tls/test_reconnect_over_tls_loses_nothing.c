/* test_reconnect_over_tls_loses_nothing: the server drops a wss:// connection mid-stream; the
 * session reconnects over TLS (verifying the certificate again), replays from the first
 * unacknowledged chunk, and every sample is transcribed exactly once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_harness.h"

#define SECONDS 6u
#define TOTAL (TH_RATE * SECONDS)

static int16_t pcm[TOTAL];

static void check_record(const cJSON *r, uint64_t first, const char *what)
{
    uint64_t n = (uint64_t)th_jnum(r, "audio_samples", -1);
    TH_CHECK(first + n <= TOTAL, "%s: %" PRIu64 " samples from %" PRIu64 " exceed the stream", what,
             n, first);
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64,
             th_fnv1a64(TH_FNV_INIT, pcm + first, (size_t)n * sizeof *pcm));
    TH_CHECK(!strcmp(th_jstr(r, "audio_fnv1a64"), want),
             "%s: the server's %" PRIu64 " samples are not the written stream from %" PRIu64
             " (hash %s, want %s)",
             what, n, first, th_jstr(r, "audio_fnv1a64"), want);
}

int main(void)
{
    th_init("reconnect_over_tls_loses_nothing");
    th_certs certs;
    th_certs_make(&certs);
    th_server srv;
    th_server_start(&srv, certs.good_cert, certs.good_key);
    th_pattern(pcm, TOTAL);
    /* Armed now, fired by the server on the first connection once it has received 1.5 s of
     * audio: mid-span, so the connection is healthy, 1 s is acknowledged and 0.5 s was sent
     * but not yet acknowledged (it must be replayed, not lost, not doubled). */
    cJSON_Delete(
        th_control(&srv, "POST", "/faults", "{\"action\":\"drop\",\"after_audio_ms\":1500}"));

    steno_client *c = th_client_open(certs.ca);
    th_collector col;
    th_collector_init(&col);
    char url[128];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/v1/listen", srv.port);
    steno_session_config sc;
    th_session_defaults(&sc, url, &col);
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    TH_CHECK(rc == STENO_OK, "steno_session_open: %s: %s", steno_status_name(rc), err);

    th_producer prod;
    th_producer_start(&prod, s, pcm, TOTAL, 1.5);
    TH_CHECK(th_wait_type(&col, STENO_EVENT_RECONNECTED, 1, 10000), "no RECONNECTED within 10 s");

    size_t written = th_producer_join(&prod);
    TH_CHECK(written == TOTAL && atomic_load(&prod.bad_status) == 0,
             "the producer wrote %zu of %u frames (status %d)", written, TOTAL,
             atomic_load(&prod.bad_status));
    rc = steno_session_close(s, 15000);
    TH_CHECK(rc == STENO_OK, "close: %s: %s", steno_status_name(rc), steno_session_errmsg(s));
    TH_CHECK(th_wait_terminal(&col, 5000), "no CLOSED after close returned");

    /* one outage, one reconnect, nothing failed or dropped */
    TH_CHECK(th_count(&col, STENO_EVENT_RECONNECTING) == 1 &&
                 th_count(&col, STENO_EVENT_RECONNECTED) == 1,
             "%zu RECONNECTING, %zu RECONNECTED", th_count(&col, STENO_EVENT_RECONNECTING),
             th_count(&col, STENO_EVENT_RECONNECTED));
    TH_CHECK(th_count(&col, STENO_EVENT_FAILED) == 0 && th_count(&col, STENO_EVENT_CLOSED) == 1,
             "the session must end CLOSED");
    TH_CHECK(th_count(&col, STENO_EVENT_AUDIO_DROPPED) == 0, "audio dropped");
    steno_session_stats st;
    TH_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    TH_CHECK(st.connects == 2 && st.reconnects == 1, "connects %u reconnects %u", st.connects,
             st.reconnects);
    TH_CHECK(st.samples_dropped == 0 && st.samples_evicted == 0 && st.samples_acked == TOTAL,
             "dropped %" PRIu64 " evicted %" PRIu64 " acked %" PRIu64, st.samples_dropped,
             st.samples_evicted, st.samples_acked);

    /* the acknowledged position when the connection was lost: replay must start exactly there */
    uint64_t acked_at_drop = 0;
    steno_status cause = STENO_OK;
    uint32_t replayed = 0;
    pthread_mutex_lock(&col.mu);
    for (size_t i = 0; i < col.n; i++) {
        const th_ev *e = &col.ev[i];
        if (e->type == STENO_EVENT_RECONNECTING) {
            cause = e->status;
            break;
        }
        if (e->type == STENO_EVENT_TRANSCRIPT && e->is_final && e->end_sample > acked_at_drop)
            acked_at_drop = e->end_sample;
    }
    for (size_t i = 0; i < col.n; i++)
        if (col.ev[i].type == STENO_EVENT_RECONNECTED)
            replayed = col.ev[i].replayed_chunks;
    pthread_mutex_unlock(&col.mu);
    th_log("lost at %" PRIu64 " acked samples (cause %s), %u chunks replayed", acked_at_drop,
           steno_status_name(cause), replayed);
    TH_CHECK(acked_at_drop == TH_RATE, "acknowledged %" PRIu64 " samples when dropped, want 1 s",
             acked_at_drop);
    TH_CHECK(replayed > 0, "nothing replayed: the fault did not strike unacknowledged audio");
    TH_CHECK(cause != STENO_ERR_TLS && cause != STENO_OK, "the drop was classified as %s",
             steno_status_name(cause));

    int64_t bases[4];
    size_t nconn = 4;
    TH_CHECK(th_check_coverage(&col, pcm, TOTAL, bases, &nconn, err, sizeof err), "%s", err);
    TH_CHECK(nconn == 2, "%zu connections", nconn);
    TH_CHECK(bases[0] == 0 && bases[1] == (int64_t)acked_at_drop,
             "connection 2 starts at session sample %" PRId64 ", the first unacknowledged was "
             "%" PRIu64,
             bases[1], acked_at_drop);

    /* the witness: two TLS connections; the first was dropped, the second got exactly the
     * unacknowledged rest of the stream */
    cJSON *recs = th_control(&srv, "GET", "/connections", NULL);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    TH_CHECK(cJSON_GetArraySize(arr) == 2, "the server saw %d connections",
             cJSON_GetArraySize(arr));
    const cJSON *r1 = cJSON_GetArrayItem(arr, 0), *r2 = cJSON_GetArrayItem(arr, 1);
    TH_CHECK(!strcmp(th_jstr(r1, "close_cause"), "fault_drop"), "first connection: %s",
             th_jstr(r1, "close_cause"));
    TH_CHECK(!strcmp(th_jstr(r2, "close_cause"), "CloseStream"), "second connection: %s",
             th_jstr(r2, "close_cause"));
    check_record(r1, 0, "first connection");
    TH_CHECK(th_jnum(r1, "audio_samples", 0) > (double)acked_at_drop,
             "the first connection received only acknowledged audio");
    check_record(r2, acked_at_drop, "second connection");
    TH_CHECK(acked_at_drop + (uint64_t)th_jnum(r2, "audio_samples", 0) == TOTAL,
             "second connection got %g samples from %" PRIu64 " of %u",
             th_jnum(r2, "audio_samples", 0), acked_at_drop, TOTAL);
    cJSON_Delete(recs);

    steno_session_destroy(s);
    steno_client_destroy(c);
    th_collector_free(&col);
    th_log("PASS");
    return 0;
}
