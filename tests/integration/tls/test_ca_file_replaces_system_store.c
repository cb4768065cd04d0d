/* test_ca_file_replaces_system_store: with ca_file set, only its CAs are trusted — a server
 * certificate from a CA in the system store is rejected; without ca_file the system store is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_harness.h"

/*
 * An application that sets ca_file to its private CA pins trust to it (as curl --cacert does):
 * a certificate from any other CA, even one the machine trusts, must not be accepted for its
 * endpoint. OpenSSL's "system store" is redirected to a second test CA with SSL_CERT_FILE, so
 * no real system CA is involved. The control case (no ca_file) proves the redirection works:
 * the same server is then trusted through the system store.
 */

/* Runs one session against the server; returns the terminal event (FAILED or CLOSED). */
static th_ev run_session(const char *ca_file, int port, const char *what)
{
    steno_client *c = th_client_open(ca_file);
    th_collector col;
    th_collector_init(&col);
    char url[128];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/v1/listen", port);
    steno_session_config sc;
    th_session_defaults(&sc, url, &col);
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    TH_CHECK(rc == STENO_OK, "%s: steno_session_open: %s: %s", what, steno_status_name(rc), err);
    static int16_t pcm[TH_RATE / 2];
    th_pattern(pcm, TH_RATE / 2);
    TH_CHECK(steno_session_write(s, pcm, TH_RATE / 2) == STENO_OK, "%s: write", what);
    /* connected (then close) or failed: whichever comes first */
    th_wait_type(&col, STENO_EVENT_CONNECTED, 1, 10000);
    if (th_count(&col, STENO_EVENT_CONNECTED))
        steno_session_close(s, 10000);
    TH_CHECK(th_wait_terminal(&col, 10000), "%s: the session did not end", what);
    pthread_mutex_lock(&col.mu);
    th_ev last = col.ev[col.n - 1];
    pthread_mutex_unlock(&col.mu);
    th_log("%s: %s %s %s", what, steno_event_type_name(last.type), steno_status_name(last.status),
           last.text);
    steno_session_destroy(s);
    steno_client_destroy(c);
    th_collector_free(&col);
    return last;
}

int main(void)
{
    th_init("ca_file_replaces_system_store");
    th_certs certs;
    th_certs_make(&certs);
    th_server srv;
    th_server_start(&srv, certs.foreign_cert, certs.foreign_key); /* signed by other_ca */
    /* before any thread exists: OpenSSL's default verify paths now hold only other_ca */
    TH_CHECK(setenv("SSL_CERT_FILE", certs.other_ca, 1) == 0, "setenv");
    TH_CHECK(setenv("SSL_CERT_DIR", certs.dir, 1) == 0, "setenv");

    th_ev sys = run_session(NULL, srv.port, "no ca_file (system store = other CA)");
    TH_CHECK(sys.type == STENO_EVENT_CLOSED && sys.status == STENO_OK,
             "the system store (SSL_CERT_FILE) was not used without ca_file: %s %s",
             steno_event_type_name(sys.type), steno_status_name(sys.status));

    th_ev pinned = run_session(certs.ca, srv.port, "ca_file = test CA");
    TH_CHECK(pinned.type == STENO_EVENT_FAILED && pinned.status == STENO_ERR_TLS,
             "with ca_file set, a certificate from a CA outside it was accepted: %s %s",
             steno_event_type_name(pinned.type), steno_status_name(pinned.status));
    th_log("PASS");
    return 0;
}
