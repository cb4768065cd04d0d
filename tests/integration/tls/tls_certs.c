/* tls_certs: throwaway certificates for the TLS tests (openssl command) and a wss:// server. */
#include "tls_certs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tmpdir[128];

static void remove_tmpdir(void)
{
    if (!g_tmpdir[0])
        return;
    DIR *d = opendir(g_tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", g_tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(g_tmpdir);
    g_tmpdir[0] = '\0';
}

/* Runs argv in dir (stdout and stderr to dir/openssl.log); true when it exited 0. */
static bool run_in(const char *dir, char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    H_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        int fd = open("openssl.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool have_openssl(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/openssl", d);
        if (access(p, X_OK) == 0)
            return true;
    }
    return false;
}

/* One config for every step: the CA and leaf extensions, and `openssl ca` (only the expired
 * certificate needs it: `x509 -req` cannot back-date). EC P-256 keys are made in milliseconds. */
static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = unused\n"
                                  "[ca_ext]\n"
                                  "basicConstraints = critical,CA:TRUE\n"
                                  "keyUsage = critical,keyCertSign,cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[srv_ext]\n"
                                  "basicConstraints = critical,CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  /* mbedTLS 2.28 matches a host only against DNS names
                                   * (no iPAddress SANs): 127.0.0.1 is both for it */
                                  "subjectAltName = IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\n"
                                  "[wrong_ext]\n"
                                  "basicConstraints = critical,CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = DNS:wrong.example\n"
                                  "[ca]\n"
                                  "default_ca = ca_sect\n"
                                  "[ca_sect]\n"
                                  "database = index.txt\n"
                                  "new_certs_dir = .\n"
                                  "serial = serial\n"
                                  "default_md = sha256\n"
                                  "policy = pol\n"
                                  "unique_subject = no\n"
                                  "copy_extensions = none\n"
                                  "[pol]\n"
                                  "commonName = supplied\n";

static void write_at(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    H_CHECK(f, "cannot create %s: %s", path, strerror(errno));
    H_CHECK(fwrite(data, 1, len, f) == len, "cannot write %s", path);
    H_CHECK(fclose(f) == 0, "cannot write %s", path);
}

void tls_write_file(const tls_certs *c, const char *name, const void *data, size_t len, char *path,
                    size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", c->dir, name);
    write_at(path, data, len);
}

#define EC "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"

static void openssl(const tls_certs *c, char *const argv[])
{
    if (!run_in(c->dir, argv)) {
        char log[256];
        snprintf(log, sizeof log, "%s/openssl.log", c->dir);
        FILE *f = fopen(log, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            h_log("openssl: %s", line);
        if (f)
            fclose(f);
        h_fail(__FILE__, __LINE__, "openssl %s failed", argv[1]);
    }
}

void tls_certs_make(tls_certs *c)
{
    memset(c, 0, sizeof *c);
    if (!have_openssl()) {
        h_log("the openssl command is not installed: skipping");
        exit(H_SKIP);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/steno-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    H_CHECK(mkdtemp(c->dir), "mkdtemp %s: %s", c->dir, strerror(errno));
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s", c->dir);
    atexit(remove_tmpdir);

    char p[256];
    tls_write_file(c, "openssl.cnf", openssl_cnf, sizeof openssl_cnf - 1, p, sizeof p);
    tls_write_file(c, "index.txt", "", 0, p, sizeof p);
    tls_write_file(c, "serial", "10\n", 3, p, sizeof p);

    uint64_t t0 = h_now_ms();
    char *ca[] = {"openssl",     "req",     "-x509",   "-config",
                  "openssl.cnf", "-newkey", EC,        "-nodes",
                  "-days",       "2",       "-subj",   "/CN=steno test CA",
                  "-extensions", "ca_ext",  "-keyout", "ca.key",
                  "-out",        "ca.pem",  NULL};
    openssl(c, ca);
    char *other[] = {"openssl",     "req",       "-x509",   "-config",
                     "openssl.cnf", "-newkey",   EC,        "-nodes",
                     "-days",       "2",         "-subj",   "/CN=steno other CA",
                     "-extensions", "ca_ext",    "-keyout", "other.key",
                     "-out",        "other.pem", NULL};
    openssl(c, other);
    static const char *const leaves[] = {"good", "foreign", "expired", "wrong"};
    for (size_t i = 0; i < 4; i++) {
        char subj[64], key[32], csr[32];
        snprintf(subj, sizeof subj, "/CN=steno %s", leaves[i]);
        snprintf(key, sizeof key, "%s.key", leaves[i]);
        snprintf(csr, sizeof csr, "%s.csr", leaves[i]);
        char *req[] = {"openssl", "req", "-new",   "-config", "openssl.cnf",
                       "-newkey", EC,    "-nodes", "-subj",   subj,
                       "-keyout", key,   "-out",   csr,       NULL};
        openssl(c, req);
    }
    char *good[] = {"openssl",     "x509",    "-req",   "-in",      "good.csr",
                    "-CA",         "ca.pem",  "-CAkey", "ca.key",   "-set_serial",
                    "2",           "-days",   "2",      "-extfile", "openssl.cnf",
                    "-extensions", "srv_ext", "-out",   "good.pem", NULL};
    openssl(c, good);
    char *wrong[] = {"openssl",     "x509",      "-req",   "-in",       "wrong.csr",
                     "-CA",         "ca.pem",    "-CAkey", "ca.key",    "-set_serial",
                     "3",           "-days",     "2",      "-extfile",  "openssl.cnf",
                     "-extensions", "wrong_ext", "-out",   "wrong.pem", NULL};
    openssl(c, wrong);
    char *foreign[] = {"openssl",     "x509",      "-req",   "-in",         "foreign.csr",
                       "-CA",         "other.pem", "-CAkey", "other.key",   "-set_serial",
                       "4",           "-days",     "2",      "-extfile",    "openssl.cnf",
                       "-extensions", "srv_ext",   "-out",   "foreign.pem", NULL};
    openssl(c, foreign);
    char *expired[] = {"openssl",     "ca",
                       "-batch",      "-notext",
                       "-config",     "openssl.cnf",
                       "-cert",       "ca.pem",
                       "-keyfile",    "ca.key",
                       "-in",         "expired.csr",
                       "-startdate",  "20200101000000Z",
                       "-enddate",    "20200102000000Z",
                       "-extfile",    "openssl.cnf",
                       "-extensions", "srv_ext",
                       "-out",        "expired.pem",
                       NULL};
    openssl(c, expired);
    char *der[] = {"openssl", "x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", NULL};
    openssl(c, der);

#define SET(field, name) snprintf(c->field, sizeof c->field, "%s/%s", c->dir, name)
    SET(ca, "ca.pem");
    SET(ca_der, "ca.der");
    SET(other_ca, "other.pem");
    SET(good_cert, "good.pem");
    SET(good_key, "good.key");
    SET(foreign_cert, "foreign.pem");
    SET(foreign_key, "foreign.key");
    SET(expired_cert, "expired.pem");
    SET(expired_key, "expired.key");
    SET(wrong_cert, "wrong.pem");
    SET(wrong_key, "wrong.key");
#undef SET
    h_log("certificates made in %" PRIu64 " ms", h_now_ms() - t0);
}

void tls_server_start(h_server *srv, const char *cert, const char *key)
{
    const char *const args[] = {"--engine", "null", "--tls-cert", cert, "--tls-key", key, NULL};
    h_server_start(srv, args);
    h_log("steno-server serves wss:// with %s", strrchr(cert, '/') + 1);
}

void tls_url(char *buf, size_t len, const char *host, int port)
{
    snprintf(buf, len, "wss://%s:%d/v1/listen", host, port);
}
