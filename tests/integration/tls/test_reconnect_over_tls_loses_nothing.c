/* test_reconnect_over_tls_loses_nothing: the server drops a wss:// connection mid-stream; the
 * session reconnects over TLS (verifying the certificate again), replays from the first
 * unacknowledged chunk, and every sample is transcribed exactly once. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tls_certs.h"

#define RATE 16000u
#define SECONDS 6u
#define TOTAL (RATE * SECONDS)

int main(void)
{
    h_init("reconnect_over_tls_loses_nothing");
    tls_certs certs;
    tls_certs_make(&certs);
    h_server srv;
    tls_server_start(&srv, certs.good_cert, certs.good_key);
    int16_t *pcm = h_pattern_alloc(2, TOTAL);
    /* Armed now (control API, plain HTTP), fired by the server on the first connection once it
     * has received 1.5 s of audio: mid-span, so the connection is healthy, 1 s is acknowledged
     * and 0.5 s was sent but not yet acknowledged (it must be replayed, not lost, not doubled). */
    h_fault(&srv, "{\"action\":\"drop\",\"after_audio_ms\":1500}");

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = certs.ca;
    steno_client *c = h_client_open(&cc);
    h_run r;
    h_run_init(&r, "wss", srv.port);
    tls_url(r.url, sizeof r.url, "127.0.0.1", srv.port);
    h_fast_send(&r.sc, 4.0);
    h_run_open(&r, c);
    h_run_stream(&r, pcm, TOTAL, 1.5);
    H_CHECK(h_wait_type(&r.col, STENO_EVENT_RECONNECTED, 1, 10000), "no RECONNECTED within 10 s");
    size_t written = h_producer_join(&r.prod);
    H_CHECK(written == TOTAL && atomic_load(&r.prod.bad_status) == 0,
            "the producer wrote %zu of %u frames (status %d)", written, TOTAL,
            atomic_load(&r.prod.bad_status));
    h_run_close(&r, 15000);

    /* one outage, one reconnect, nothing failed or dropped */
    H_CHECK(h_count(&r.col, STENO_EVENT_RECONNECTING) == 1 &&
                h_count(&r.col, STENO_EVENT_RECONNECTED) == 1,
            "%zu RECONNECTING, %zu RECONNECTED", h_count(&r.col, STENO_EVENT_RECONNECTING),
            h_count(&r.col, STENO_EVENT_RECONNECTED));
    H_CHECK(h_count(&r.col, STENO_EVENT_FAILED) == 0 && h_count(&r.col, STENO_EVENT_CLOSED) == 1,
            "the session must end CLOSED");
    H_CHECK(h_count(&r.col, STENO_EVENT_AUDIO_DROPPED) == 0, "audio dropped");
    steno_session_stats st;
    H_CHECK(steno_session_stats_get(r.s, &st) == STENO_OK, "stats");
    H_CHECK(st.connects == 2 && st.reconnects == 1 && st.attempts == 2,
            "attempts %u connects %u reconnects %u", st.attempts, st.connects, st.reconnects);
    H_CHECK(st.samples_dropped == 0 && st.samples_evicted == 0 && st.samples_acked == TOTAL,
            "dropped %" PRIu64 " evicted %" PRIu64 " acked %" PRIu64, st.samples_dropped,
            st.samples_evicted, st.samples_acked);

    /* the drop: a lost connection to retry (not a TLS failure), with unacknowledged audio */
    pthread_mutex_lock(&r.col.mu);
    size_t k = h_find(&r.col, STENO_EVENT_RECONNECTING, 0);
    steno_status cause = r.col.ev[k].cause;
    uint32_t delay = r.col.ev[k].delay_ms;
    uint32_t replayed = r.col.ev[h_find(&r.col, STENO_EVENT_RECONNECTED, 0)].replayed_chunks;
    pthread_mutex_unlock(&r.col.mu);
    h_log("dropped (cause %s), retried after %u ms, %u chunks replayed", steno_status_name(cause),
          delay, replayed);
    H_CHECK(cause != STENO_ERR_TLS && cause != STENO_OK, "the drop was classified as %s",
            steno_status_name(cause));
    H_CHECK(delay == 0, "the first retry after a healthy TLS connection waited %u ms", delay);
    H_CHECK(replayed == 5, "%u chunks replayed, want the 5 unacknowledged (0.5 s)", replayed);

    /* exactly once: the finals tile the stream, and the server's record of each TLS connection
     * is the written stream from the first chunk unacknowledged when it opened */
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&r, pcm, TOTAL, recs, &acc);
    H_CHECK(acc.covered == TOTAL && acc.connections == 2 && acc.dropped == 0 &&
                acc.replayed == RATE / 2,
            "covered %" PRIu64 " of %u over %zu connections, %" PRIu64 " dropped, %" PRIu64
            " replayed (want %u)",
            acc.covered, TOTAL, acc.connections, acc.dropped, acc.replayed, RATE / 2);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    H_CHECK(cJSON_GetArraySize(arr) == 2, "the server saw %d connections", cJSON_GetArraySize(arr));
    const char *c1 = h_jstr(cJSON_GetArrayItem(arr, 0), "close_cause");
    const char *c2 = h_jstr(cJSON_GetArrayItem(arr, 1), "close_cause");
    H_CHECK(!strcmp(c1, "fault_drop") && !strcmp(c2, "CloseStream"), "close causes %s, %s", c1, c2);
    cJSON_Delete(recs);

    h_run_free(&r);
    steno_client_destroy(c);
    free(pcm);
    return h_pass();
}
