/* test_bad_cert_fails_once: a server certificate that does not verify fails the session with
 * STENO_ERR_TLS after exactly one attempt, says what to fix, and never reaches the WebSocket. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "tls_certs.h"

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
    h_init(name);

    tls_certs certs;
    tls_certs_make(&certs);
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
        h_fail(__FILE__, __LINE__, "unknown case '%s'", which);
    }
    h_server srv;
    tls_server_start(&srv, cert, key);

    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = certs.ca;
    steno_client *c = h_client_open(&cc);
    h_collector col;
    h_collector_init(&col, "session");
    char url[128];
    steno_session_config sc;
    h_session_defaults(&sc, url, sizeof url, srv.port, &col);
    tls_url(url, sizeof url, "127.0.0.1", srv.port);
    sc.api_key = "secret-that-must-not-leave"; /* a credential, so sending it would matter */
    sc.allow_no_auth = 0;
    sc.retry.max_attempts = 0; /* unlimited: only the classification may stop the retries */
    sc.retry.max_outage_ms = UINT32_MAX;
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    H_CHECK(rc == STENO_OK, "steno_session_open: %s: %s", steno_status_name(rc), err);

    uint64_t t0 = h_now_ms();
    h_wait_type(&col, STENO_EVENT_FAILED, 1, 15000);
    H_CHECK(h_ended(&col), "no FAILED within 15 s (%zu attempts so far)",
            h_count(&col, STENO_EVENT_CONNECTING));
    uint64_t took = h_now_ms() - t0;

    pthread_mutex_lock(&col.mu);
    const h_ev *last = &col.ev[col.n - 1];
    H_CHECK(last->type == STENO_EVENT_FAILED, "the session ended with %s",
            steno_event_type_name(last->type));
    H_CHECK(last->status == STENO_ERR_TLS, "FAILED with %s, want STENO_ERR_TLS: %s",
            steno_status_name(last->status), last->message);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", last->message);
    pthread_mutex_unlock(&col.mu);
    h_log("FAILED after %" PRIu64 " ms: %s", took, msg);

    /* exactly one attempt: one CONNECTING, no RECONNECTING, stats agree */
    H_CHECK(h_count(&col, STENO_EVENT_CONNECTING) == 1, "%zu attempts (CONNECTING events)",
            h_count(&col, STENO_EVENT_CONNECTING));
    H_CHECK(h_count(&col, STENO_EVENT_RECONNECTING) == 0,
            "a bad certificate was retried (%zu RECONNECTING)",
            h_count(&col, STENO_EVENT_RECONNECTING));
    H_CHECK(h_count(&col, STENO_EVENT_CONNECTED) == 0, "connected despite the certificate");
    steno_session_stats st;
    H_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    H_CHECK(st.attempts == 1 && st.connects == 0, "attempts %u connects %u", st.attempts,
            st.connects);
    H_CHECK(st.state == STENO_STATE_FAILED && st.last_error == STENO_ERR_TLS,
            "state %s last_error %s", steno_session_state_name(st.state),
            steno_status_name(st.last_error));
    H_CHECK(steno_session_state_get(s) == STENO_STATE_FAILED, "state is not FAILED");
    H_CHECK(strstr(steno_session_errmsg(s), "certificate"), "errmsg '%s'", steno_session_errmsg(s));

    /* the message says what failed and what to fix */
    H_CHECK(strcasestr(msg, "certificate"), "message does not mention the certificate: %s", msg);
    H_CHECK(strstr(msg, "CA") || strcasestr(msg, "ca_file"),
            "message does not point at the CA file: %s", msg);
    H_CHECK(strcasestr(msg, expect), "message does not give OpenSSL's reason (%s): %s", expect,
            msg);
    H_CHECK(strcasestr(msg, "server name") || strcasestr(msg, "host"),
            "message does not mention the host name: %s", msg);

    /* the server saw a TLS handshake fail, never an HTTP request or WebSocket upgrade */
    cJSON *stats = h_http_ok(srv.control_port, "GET", "/stats", NULL);
    H_CHECK(h_jnum(stats, "connections_total", -1) == 0 &&
                h_jnum(stats, "handshakes_rejected", -1) == 0,
            "server stats: %g connections, %g rejected handshakes",
            h_jnum(stats, "connections_total", -1), h_jnum(stats, "handshakes_rejected", -1));
    cJSON_Delete(stats);
    int nrec = h_server_record_count(&srv);
    H_CHECK(nrec == 0, "the server recorded %d requests", nrec);

    /* the client's metrics count it as a fatal failure, not a retry */
    double attempts = h_metric(c, "steno_connect_attempts_total", NULL);
    double fatal = h_metric(c, "steno_connect_failures_total", "fatal_protocol");
    H_CHECK(attempts == 1 && fatal == 1, "metrics: %g attempts, %g fatal_protocol failures",
            attempts, fatal);

    steno_session_destroy(s);
    steno_client_destroy(c);
    h_collector_free(&col);
    return h_pass();
}
