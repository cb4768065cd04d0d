/* test_wss_verified_stream: over wss:// with the right CA file, a session streams a few seconds,
 * closes cleanly, and every sample is covered by exactly one final. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_harness.h"

/*
 * argv[1] is the host name the client dials: "127.0.0.1" verifies the server certificate
 * against its IP SAN, "localhost" against its DNS SAN. The certificate is signed by a test CA
 * that only the client's ca_file trusts.
 */

#define SECONDS 4u
#define TOTAL (TH_RATE * SECONDS)

static int16_t pcm[TOTAL];

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    char name[64];
    snprintf(name, sizeof name, "wss_verified_stream %s", host);
    th_init(name);

    th_certs certs;
    th_certs_make(&certs);
    th_server srv;
    th_server_start(&srv, certs.good_cert, certs.good_key);
    th_pattern(pcm, TOTAL);

    steno_client *c = th_client_open(certs.ca);
    th_collector col;
    th_collector_init(&col);
    char url[128];
    snprintf(url, sizeof url, "wss://%s:%d/v1/listen", host, srv.port);
    steno_session_config sc;
    th_session_defaults(&sc, url, &col);
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    TH_CHECK(rc == STENO_OK, "steno_session_open(%s): %s: %s", url, steno_status_name(rc), err);

    /* a capture thread at 2x real time: the stream lasts about 2 s on the wire */
    th_producer prod;
    th_producer_start(&prod, s, pcm, TOTAL, 2.0);
    TH_CHECK(th_wait_type(&col, STENO_EVENT_CONNECTED, 1, 10000),
             "no TLS connection within 10 s (%zu FAILED)", th_count(&col, STENO_EVENT_FAILED));
    size_t written = th_producer_join(&prod);
    TH_CHECK(written == TOTAL && atomic_load(&prod.bad_status) == 0,
             "the producer wrote %zu of %u frames (status %d)", written, TOTAL,
             atomic_load(&prod.bad_status));
    TH_CHECK(th_wait_acked(&col, TH_RATE, 10000), "no final within 10 s of the connection");

    rc = steno_session_close(s, 10000);
    TH_CHECK(rc == STENO_OK, "close: %s: %s", steno_status_name(rc), steno_session_errmsg(s));
    TH_CHECK(th_wait_terminal(&col, 5000), "no CLOSED event after close returned");
    TH_CHECK(th_count(&col, STENO_EVENT_CLOSED) == 1 && th_count(&col, STENO_EVENT_FAILED) == 0,
             "the session must end with CLOSED only");
    pthread_mutex_lock(&col.mu);
    const th_ev *last = &col.ev[col.n - 1];
    TH_CHECK(last->type == STENO_EVENT_CLOSED && last->status == STENO_OK,
             "last event %s status %s", steno_event_type_name(last->type),
             steno_status_name(last->status));
    pthread_mutex_unlock(&col.mu);

    steno_session_stats st;
    TH_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    TH_CHECK(st.connects == 1 && st.attempts == 1 && st.reconnects == 0,
             "one TLS connection expected: attempts %u connects %u reconnects %u", st.attempts,
             st.connects, st.reconnects);
    TH_CHECK(th_count(&col, STENO_EVENT_RECONNECTING) == 0, "a reconnect on a healthy stream");

    int64_t bases[4];
    size_t nconn = 4;
    TH_CHECK(th_check_coverage(&col, pcm, TOTAL, bases, &nconn, err, sizeof err), "%s", err);
    TH_CHECK(nconn == 1 && bases[0] == 0, "one connection with base 0: %zu, %" PRId64, nconn,
             bases[0]);
    TH_CHECK(st.samples_acked == TOTAL, "samples_acked %" PRIu64 " of %u", st.samples_acked, TOTAL);

    /* the witness: one TLS connection that received all the audio, in order, once */
    cJSON *recs = th_control(&srv, "GET", "/connections", NULL);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    TH_CHECK(cJSON_GetArraySize(arr) == 1, "the server saw %d connections",
             cJSON_GetArraySize(arr));
    const cJSON *r = cJSON_GetArrayItem(arr, 0);
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64, th_fnv1a64(TH_FNV_INIT, pcm, sizeof pcm));
    TH_CHECK(th_jnum(r, "handshake_status", 0) == 101, "handshake %g",
             th_jnum(r, "handshake_status", 0));
    TH_CHECK(th_jnum(r, "audio_samples", 0) == TOTAL && !strcmp(th_jstr(r, "audio_fnv1a64"), want),
             "server received %g samples hash %s, written %u hash %s",
             th_jnum(r, "audio_samples", 0), th_jstr(r, "audio_fnv1a64"), TOTAL, want);
    TH_CHECK(!strcmp(th_jstr(r, "close_cause"), "CloseStream"), "close cause %s",
             th_jstr(r, "close_cause"));
    cJSON_Delete(recs);

    th_log("%zu events, %" PRIu64 " finals, %" PRIu64 " bytes sent over TLS", col.n,
           st.transcripts_final, st.bytes_sent);
    steno_session_destroy(s);
    steno_client_destroy(c);
    th_collector_free(&col);
    th_log("PASS");
    return 0;
}
