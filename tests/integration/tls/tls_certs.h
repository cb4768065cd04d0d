/* tls_certs: throwaway certificates for the TLS tests (openssl command) and a wss:// server. */
#ifndef STENO_TESTS_TLS_CERTS_H
#define STENO_TESTS_TLS_CERTS_H

#include <stddef.h>

#include "harness.h"

/*
 * Every certificate is made at test time with the openssl command into a
 * private temporary directory that is removed at exit: nothing is checked
 * in, and nothing in the repository can expire. EC P-256 keys: the whole set
 * takes about 0.15 s.
 */
typedef struct tls_certs {
    char dir[128];
    char ca[192];        /* the test CA the clients trust (PEM) */
    char ca_der[192];    /* the same CA certificate in DER (binary), not PEM */
    char other_ca[192];  /* a second CA that only the "system store" of one test trusts */
    char good_cert[192]; /* signed by ca for IP 127.0.0.1 and DNS localhost */
    char good_key[192];
    char foreign_cert[192]; /* the same names, signed by other_ca */
    char foreign_key[192];
    char expired_cert[192]; /* signed by ca, the right names, valid 2020-01-01..02 only */
    char expired_key[192];
    char wrong_cert[192]; /* signed by ca for DNS wrong.example only */
    char wrong_key[192];
} tls_certs;

/* Makes them all; exits 77 (skip) when openssl is not installed. Call before any SDK thread
 * exists (it forks). */
void tls_certs_make(tls_certs *c);
/* Writes len bytes to dir/name and puts the path in path. */
void tls_write_file(const tls_certs *c, const char *name, const void *data, size_t len, char *path,
                    size_t pathlen);

/* Starts steno-server (null engine) serving wss:// with this certificate and key. */
void tls_server_start(h_server *srv, const char *cert, const char *key);
/* wss://host:port/v1/listen */
void tls_url(char *buf, size_t len, const char *host, int port);

#endif
