/* test_bad_ca_file_is_config_error: a ca_file that does not exist or holds no PEM certificate is
 * rejected by steno_client_open with STENO_ERR_CONFIG and a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tls_certs.h"

/*
 * Without this check a bad CA file only shows up later, on the first wss:// connection, as a
 * certificate failure that blames the server: libwebsockets logs that it could not load the
 * file and carries on with an empty trust store. The file is the application's configuration,
 * so the error belongs at open, naming the file.
 */

static void expect_config_error(const char *what, const char *path)
{
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = path;
    steno_client *c = (steno_client *)&cc; /* must be reset to NULL */
    char err[512];
    steno_status rc = steno_client_open(&cc, &c, err, sizeof err);
    h_log("%-28s -> %s: %s", what, steno_status_name(rc), err);
    H_CHECK(rc == STENO_ERR_CONFIG, "%s: steno_client_open returned %s (%s)", what,
            steno_status_name(rc), err);
    H_CHECK(c == NULL, "%s: *out is not NULL on failure", what);
    H_CHECK(strstr(err, path), "%s: the message does not name the file: %s", what, err);
    H_CHECK(strstr(err, "ca_file"), "%s: the message does not name the setting: %s", what, err);
}

static void expect_ok(const char *what, const char *path)
{
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.ca_file = path;
    steno_client *c = NULL;
    char err[512];
    steno_status rc = steno_client_open(&cc, &c, err, sizeof err);
    h_log("%-28s -> %s", what, steno_status_name(rc));
    H_CHECK(rc == STENO_OK && c, "%s: steno_client_open returned %s (%s)", what,
            steno_status_name(rc), err);
    steno_client_destroy(c);
}

int main(void)
{
    h_init("bad_ca_file_is_config_error");
    tls_certs certs;
    tls_certs_make(&certs);

    char missing[256], empty[256], text[256], annotated[256];
    snprintf(missing, sizeof missing, "%s/does-not-exist.pem", certs.dir);
    tls_write_file(&certs, "empty.pem", "", 0, empty, sizeof empty);
    static const char garbage[] = "this is not a certificate\n";
    tls_write_file(&certs, "garbage.pem", garbage, sizeof garbage - 1, text, sizeof text);

    /* `openssl x509 -text` output: a human-readable dump, then the PEM block. Still PEM. */
    FILE *f = fopen(certs.ca, "r");
    H_CHECK(f, "cannot read %s", certs.ca);
    static char pem[16384];
    static const char dump[] = "Certificate:\n    Data:\n        Version: 3 (0x2)\n";
    size_t n = strlen(dump);
    memcpy(pem, dump, n);
    n += fread(pem + n, 1, sizeof pem - n - 1, f);
    fclose(f);
    tls_write_file(&certs, "annotated.pem", pem, n, annotated, sizeof annotated);

    expect_config_error("missing file", missing);
    expect_config_error("empty file", empty);
    expect_config_error("text, not PEM", text);
    expect_config_error("DER certificate", certs.ca_der);
    expect_config_error("PEM private key, no cert", certs.good_key);
    expect_config_error("a directory", certs.dir);

    expect_ok("the test CA (PEM)", certs.ca);
    expect_ok("PEM after a text dump", annotated);
    const char *system_bundle = "/etc/ssl/certs/ca-certificates.crt";
    f = fopen(system_bundle, "r");
    if (f) {
        fclose(f);
        expect_ok("the system CA bundle", system_bundle);
    }
    return h_pass();
}
