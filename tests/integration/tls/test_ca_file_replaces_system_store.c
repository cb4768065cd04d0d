/* test_ca_file_replaces_system_store: with ca_file set, only its CAs are trusted — a server
 * certificate from a CA in the system store is rejected; without ca_file the system store is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tls_certs.h"

/*
 * An application that sets ca_file to its private CA pins trust to it (as curl --cacert does):
 * a certificate from any other CA, even one the machine trusts, must not be accepted for its
 * endpoint. OpenSSL's "system store" is redirected to a second test CA with SSL_CERT_FILE, so
 * no real system CA is involved. The control case (no ca_file) proves the redirection works:
 * the same server is then trusted through the system store.
 */

/* Runs one session against the server; returns the terminal event's type and status. */
static steno_event_type run_session(const char *ca_file, int port, const char *what,
                                    steno_status *status)
{
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = ca_file;
    steno_client *c = h_client_open(&cc);
    h_collector col;
    h_collector_init(&col, "session");
    char url[128];
    steno_session_config sc;
    h_session_defaults(&sc, url, sizeof url, port, &col);
    tls_url(url, sizeof url, "127.0.0.1", port);
    char err[512];
    steno_session *s = NULL;
    steno_status rc = steno_session_open(c, &sc, &s, err, sizeof err);
    H_CHECK(rc == STENO_OK, "%s: steno_session_open: %s: %s", what, steno_status_name(rc), err);
    int16_t pcm[8000];
    h_pattern(1, 0, 8000, pcm);
    /* A rejected certificate can fail the session before this write (a local handshake takes
     * milliseconds): the write then says the session has ended, which is not this test's
     * business; the verdict below is. */
    steno_status wrc = steno_session_write(s, pcm, 8000);
    H_CHECK(wrc == STENO_OK ||
                (wrc == STENO_ERR_STATE && steno_session_state_get(s) == STENO_STATE_FAILED),
            "%s: write: %s", what, steno_status_name(wrc));
    /* connected (then close) or failed: whichever comes first */
    h_wait_type(&col, STENO_EVENT_CONNECTED, 1, 10000);
    if (h_count(&col, STENO_EVENT_CONNECTED))
        steno_session_close(s, 10000);
    h_wait_type(&col, STENO_EVENT_FAILED, 1, 10000); /* returns early once the session ended */
    H_CHECK(h_ended(&col), "%s: the session did not end", what);
    pthread_mutex_lock(&col.mu);
    const h_ev *last = &col.ev[col.n - 1];
    steno_event_type type = last->type;
    *status = last->status;
    h_log("%s: %s %s %s", what, steno_event_type_name(type), steno_status_name(*status),
          last->message ? last->message : "");
    pthread_mutex_unlock(&col.mu);
    steno_session_destroy(s);
    steno_client_destroy(c);
    h_collector_free(&col);
    return type;
}

int main(void)
{
    h_init("ca_file_replaces_system_store");
    tls_certs certs;
    tls_certs_make(&certs);
    h_server srv;
    tls_server_start(&srv, certs.foreign_cert, certs.foreign_key); /* signed by other_ca */
    /* before any thread exists: OpenSSL's default verify paths now hold only other_ca */
    H_CHECK(setenv("SSL_CERT_FILE", certs.other_ca, 1) == 0, "setenv");
    H_CHECK(setenv("SSL_CERT_DIR", certs.dir, 1) == 0, "setenv");

    steno_status st;
    steno_event_type t = run_session(NULL, srv.port, "no ca_file (system store = other CA)", &st);
    H_CHECK(t == STENO_EVENT_CLOSED && st == STENO_OK,
            "the system store (SSL_CERT_FILE) was not used without ca_file: %s %s",
            steno_event_type_name(t), steno_status_name(st));

    t = run_session(certs.ca, srv.port, "ca_file = test CA", &st);
    H_CHECK(t == STENO_EVENT_FAILED && st == STENO_ERR_TLS,
            "with ca_file set, a certificate from a CA outside it was accepted: %s %s",
            steno_event_type_name(t), steno_status_name(st));
    return h_pass();
}
