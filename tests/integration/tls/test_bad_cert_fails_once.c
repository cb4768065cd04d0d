/* test_bad_cert_fails_once: a server certificate that does not verify fails the session with
 * STENO_ERR_TLS after exactly one attempt, says what to fix, and never reaches the WebSocket. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls_harness.h"

/*
 * argv[1] names the case; the client always trusts only the test CA:
 *   unknown_ca  the server's certificate has the right names but another CA signed it;
 *   expired     signed by the test CA, the right names, expired in 2020;
 *   wrong_host  signed by the test CA for wrong.example, dialled as 127.0.0.1.
 * A certificate that does not verify is a configuration problem (CA file, server name, clock):
 * retrying cannot fix it, so the session must fail at once instead of retrying into a storm,
 * and the message must point at the certificate. The server must never see an HTTP request:
 * the handshake stopped before any byte of the upgrade (and its credential) left the client.
 */

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "unknown_ca";
    char name[64];
    snprintf(name, sizeof name, "bad_cert %s", which);
    th_init(name);

    th_certs certs;
    th_certs_make(&certs);
    const char *cert, *key, *expect; /* expect: a word of OpenSSL's reason, in the message */
    if (!strcmp(which, "unknown_ca")) {
        cert = certs.foreign_cert, key = certs.foreign_key;
        expect = "issuer"; /* OpenSSL: "unable to get local issuer certificate" */
    } else if (!strcmp(which, "expired")) {
        cert = certs.expired_cert, key = certs.expired_key;
        expect = "expired";
    } else if (!strcmp(which, "wrong_host")) {
        cert = certs.wrong_cert, key = certs.wrong_key;
        expect = "mismatch"; /* OpenSSL: "IP address mismatch" */
    } else {
        th_fail(__FILE__, __LINE__, "unknown case '%s'", which);
    }
    th_server srv;
    th_server_start(&srv, cert, key);

    steno_client *c = th_client_open(certs.ca);
    th_collector col;
    th_collector_init(&col);
    char url[128];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/v1/listen", srv.port);
    steno_session_config sc;
    th_session_defaults(&sc, url, &col);
    sc.api_key = "secret-that-must-not-leave"; /* a credential, so sending it would matter */
    sc.allow_no_auth = 0;
    sc.retry.max_attempts = 0; /* unlimited: only the classification may stop the retries */
    sc.retry.max_outage_ms = UINT32_MAX;
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    TH_CHECK(rc == STENO_OK, "steno_session_open: %s: %s", steno_status_name(rc), err);

    uint64_t t0 = th_now_ms();
    TH_CHECK(th_wait_terminal(&col, 15000), "no FAILED within 15 s (%zu attempts so far)",
             th_count(&col, STENO_EVENT_CONNECTING));
    uint64_t took = th_now_ms() - t0;

    pthread_mutex_lock(&col.mu);
    const th_ev *last = &col.ev[col.n - 1];
    TH_CHECK(last->type == STENO_EVENT_FAILED, "the session ended with %s",
             steno_event_type_name(last->type));
    TH_CHECK(last->status == STENO_ERR_TLS, "FAILED with %s, want STENO_ERR_TLS: %s",
             steno_status_name(last->status), last->text);
    char msg[sizeof last->text];
    snprintf(msg, sizeof msg, "%s", last->text);
    pthread_mutex_unlock(&col.mu);
    th_log("FAILED after %" PRIu64 " ms: %s", took, msg);

    /* exactly one attempt: one CONNECTING, no RECONNECTING, stats agree */
    TH_CHECK(th_count(&col, STENO_EVENT_CONNECTING) == 1, "%zu attempts (CONNECTING events)",
             th_count(&col, STENO_EVENT_CONNECTING));
    TH_CHECK(th_count(&col, STENO_EVENT_RECONNECTING) == 0,
             "a bad certificate was retried (%zu RECONNECTING)",
             th_count(&col, STENO_EVENT_RECONNECTING));
    TH_CHECK(th_count(&col, STENO_EVENT_CONNECTED) == 0, "connected despite the certificate");
    steno_session_stats st;
    TH_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    TH_CHECK(st.attempts == 1 && st.connects == 0, "attempts %u connects %u", st.attempts,
             st.connects);
    TH_CHECK(st.state == STENO_STATE_FAILED && st.last_error == STENO_ERR_TLS,
             "state %s last_error %s", steno_session_state_name(st.state),
             steno_status_name(st.last_error));
    TH_CHECK(steno_session_state_get(s) == STENO_STATE_FAILED, "state is not FAILED");
    TH_CHECK(strstr(steno_session_errmsg(s), "certificate"), "errmsg '%s'",
             steno_session_errmsg(s));

    /* the message says what failed and what to fix */
    TH_CHECK(strcasestr(msg, "certificate"), "message does not mention the certificate: %s", msg);
    TH_CHECK(strstr(msg, "CA") || strcasestr(msg, "ca_file"),
             "message does not point at the CA file: %s", msg);
    TH_CHECK(strcasestr(msg, expect), "message does not give OpenSSL's reason (%s): %s", expect,
             msg);
    TH_CHECK(strcasestr(msg, "server name") || strcasestr(msg, "host"),
             "message does not mention the host name: %s", msg);

    /* the server saw a TLS handshake fail, never an HTTP request or WebSocket upgrade */
    cJSON *stats = th_control(&srv, "GET", "/stats", NULL);
    TH_CHECK(th_jnum(stats, "connections_total", -1) == 0 &&
                 th_jnum(stats, "handshakes_rejected", -1) == 0,
             "server stats: %g connections, %g rejected handshakes",
             th_jnum(stats, "connections_total", -1), th_jnum(stats, "handshakes_rejected", -1));
    cJSON_Delete(stats);
    cJSON *recs = th_control(&srv, "GET", "/connections", NULL);
    int nrec = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(recs, "connections"));
    TH_CHECK(nrec == 0, "the server recorded %d requests", nrec);
    cJSON_Delete(recs);

    /* the client's metrics count it as a fatal failure, not a retry */
    char m[16384];
    size_t need;
    TH_CHECK(steno_client_metrics_text(c, m, sizeof m, &need) == STENO_OK, "metrics");
    TH_CHECK(strstr(m, "steno_connect_attempts_total 1\n"), "attempts metric:\n%s", m);

    steno_session_destroy(s);
    steno_client_destroy(c);
    th_collector_free(&col);
    th_log("PASS");
    return 0;
}
