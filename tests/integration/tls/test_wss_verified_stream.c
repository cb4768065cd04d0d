/* test_wss_verified_stream: over wss:// with the right CA file, a session streams a few seconds,
 * closes cleanly, and every sample is covered by exactly one final. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tls_certs.h"

/*
 * argv[1] is the host name the client dials: "127.0.0.1" verifies the server certificate
 * against its IP SAN, "localhost" against its DNS SAN. The certificate is signed by a test CA
 * that only the client's ca_file trusts.
 */

#define RATE 16000u
#define SECONDS 4u
#define TOTAL (RATE * SECONDS)

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    char name[64];
    snprintf(name, sizeof name, "wss_verified_stream %s", host);
    h_init(name);

    tls_certs certs;
    tls_certs_make(&certs);
    h_server srv;
    tls_server_start(&srv, certs.good_cert, certs.good_key);
    int16_t *pcm = h_pattern_alloc(1, TOTAL);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = certs.ca;
    steno_client *c = h_client_open(&cc);
    h_run r;
    h_run_init(&r, "wss", srv.port);
    tls_url(r.url, sizeof r.url, host, srv.port);
    h_fast_send(&r.sc, 4.0);
    h_run_open(&r, c);

    /* a capture thread at 2x real time: the stream lasts about 2 s on the wire */
    h_run_stream(&r, pcm, TOTAL, 2.0);
    H_CHECK(h_wait_type(&r.col, STENO_EVENT_CONNECTED, 1, 10000),
            "no TLS connection within 10 s (%zu FAILED)", h_count(&r.col, STENO_EVENT_FAILED));
    size_t written = h_producer_join(&r.prod);
    H_CHECK(written == TOTAL && atomic_load(&r.prod.bad_status) == 0,
            "the producer wrote %zu of %u frames (status %d)", written, TOTAL,
            atomic_load(&r.prod.bad_status));
    h_run_close(&r, 10000);

    H_CHECK(h_ended(&r.col), "no terminal event after close returned");
    H_CHECK(h_count(&r.col, STENO_EVENT_CLOSED) == 1 && h_count(&r.col, STENO_EVENT_FAILED) == 0,
            "the session must end with CLOSED only");
    pthread_mutex_lock(&r.col.mu);
    const h_ev *last = &r.col.ev[r.col.n - 1];
    H_CHECK(last->type == STENO_EVENT_CLOSED && last->status == STENO_OK && last->unfinalized == 0,
            "last event %s status %s, %" PRIu64 " unfinalized", steno_event_type_name(last->type),
            steno_status_name(last->status), last->unfinalized);
    pthread_mutex_unlock(&r.col.mu);

    steno_session_stats st;
    H_CHECK(steno_session_stats_get(r.s, &st) == STENO_OK, "stats");
    H_CHECK(st.connects == 1 && st.attempts == 1 && st.reconnects == 0,
            "one TLS connection expected: attempts %u connects %u reconnects %u", st.attempts,
            st.connects, st.reconnects);
    H_CHECK(h_count(&r.col, STENO_EVENT_RECONNECTING) == 0, "a reconnect on a healthy stream");
    H_CHECK(st.samples_acked == TOTAL, "samples_acked %" PRIu64 " of %u", st.samples_acked, TOTAL);

    /* every sample exactly once, by the finals and by the server's record of the connection */
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&r, pcm, TOTAL, recs, &acc);
    H_CHECK(acc.covered == TOTAL && acc.connections == 1 && acc.dropped == 0 && acc.replayed == 0,
            "covered %" PRIu64 " of %u over %zu connections, %" PRIu64 " dropped, %" PRIu64
            " replayed",
            acc.covered, TOTAL, acc.connections, acc.dropped, acc.replayed);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    H_CHECK(cJSON_GetArraySize(arr) == 1, "the server saw %d connections", cJSON_GetArraySize(arr));
    const cJSON *rec = cJSON_GetArrayItem(arr, 0);
    H_CHECK(h_jnum(rec, "handshake_status", 0) == 101 &&
                !strcmp(h_jstr(rec, "close_cause"), "CloseStream"),
            "handshake %g, close cause %s", h_jnum(rec, "handshake_status", 0),
            h_jstr(rec, "close_cause"));
    cJSON_Delete(recs);

    h_log("%zu finals, %" PRIu64 " bytes sent over TLS", acc.finals, st.bytes_sent);
    h_run_free(&r);
    steno_client_destroy(c);
    free(pcm);
    return h_pass();
}
