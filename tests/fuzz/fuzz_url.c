/* fuzz_url: endpoint URL splitting, the Deepgram request URL, options and handshake headers. */
#include <strings.h>

#include "fuzz_common.h"
#include "net/url.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "steno/status.h"

/*
 * Input: a selector header (sample rate, channels, output size limit, error
 * buffer length), then NUL-separated strings: the endpoint URL, a credential,
 * and up to 24 option key/value pairs (the value "\x7f" stands for NULL: a
 * removal), the first `ncur` of them the current set and the rest a change.
 *
 * Properties:
 *  - steno__url_parse: STENO_OK or STENO_ERR_CONFIG (a NUL-terminated message
 *    inside errlen, nothing allocated); on success the parts are consistent
 *    with the text: scheme and port, a host without delimiters, the path is
 *    the text after the authority (fragment dropped, "/" added when missing),
 *    the endpoint is scheme://hostport + path without the query;
 *  - build_url: the query it produces, split at '&' and '=' and
 *    percent-decoded, yields exactly encoding, sample_rate, channels and then
 *    the options given, in order, byte for byte; only unreserved characters
 *    and %XX escapes appear in it; the base URL before it is kept verbatim; a
 *    base that parses gives a URL that parses to the same host, port and
 *    endpoint; a size limit gives STENO_ERR_TOO_LARGE and an empty string,
 *    and after steno__sb_reset the same buffer builds the same URL again;
 *  - check_option/check_set: OK or CONFIG with a message, never writing past
 *    errlen; check_set accepts a set only if every entry passes and
 *    single-valued keys are unique;
 *  - opts_copy/opts_dup keep every non-NULL entry in order, as copies;
 *    opts_apply: keys not named by the change keep their entries and order,
 *    then the change's non-NULL values follow;
 *  - handshake headers: one "authorization:" header ("Token <key>", or the
 *    credential verbatim when it names its scheme), none for an empty
 *    credential, and a credential with CR/LF refused;
 *  - every allocation is freed, also when any one of them is refused.
 */

#define MAX_PAIRS 24

static const steno__provider *dg;

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* the encoder writes upper case only */
}

/* Strict percent-decoding of s[0..n) into out (room for n + 1): every byte is
 * unreserved or a %XX escape. */
static void decode(const char *s, size_t n, char *out, size_t *outn)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            FUZZ_CHECK(i + 2 < n, "truncated escape at %zu", i);
            int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
            FUZZ_CHECK(h >= 0 && l >= 0, "bad escape at %zu", i);
            char c = (char)(h * 16 + l);
            FUZZ_CHECK(!unreserved((unsigned char)c), "unreserved 0x%02x needlessly escaped",
                       (unsigned char)c);
            out[k++] = c;
            i += 2;
        } else {
            FUZZ_CHECK(unreserved((unsigned char)s[i]), "raw 0x%02x in the query",
                       (unsigned char)s[i]);
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    *outn = k;
}

/* ---- steno__url_parse ---- */

static bool starts_ci(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0;
}

static void check_url(const char *s, size_t errlen, steno__url *u, int rc, const char *err)
{
    if (rc != STENO_OK) {
        FUZZ_CHECK(!u->host && !u->hostport && !u->path && !u->endpoint,
                   "a failed parse left parts");
        if (rc == STENO_ERR_CONFIG && errlen > 1)
            FUZZ_CHECK(strncmp(err, "invalid endpoint URL", errlen - 1 < 20 ? errlen - 1 : 20) == 0,
                       "message '%.200s'", err);
        return;
    }
    FUZZ_CHECK(u->tls == starts_ci(s, "wss://") && (u->tls || starts_ci(s, "ws://")),
               "scheme of '%.200s'", s);
    FUZZ_CHECK(u->port >= 1 && u->port <= 65535, "port %d", u->port);
    FUZZ_CHECK(u->host[0] != '\0' && !strpbrk(u->host, "/?#@[]"), "host '%.200s'", u->host);
    for (const char *p = s; *p; p++)
        FUZZ_CHECK((unsigned char)*p > ' ' && *p != 0x7f, "accepted a control character");

    /* The authority and the rest, as the text has them. */
    const char *a = s + (u->tls ? 6 : 5);
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    size_t rlen = strcspn(rest, "#");
    bool v6 = a[0] == '[';
    size_t hlen = strlen(u->host);
    FUZZ_CHECK(strncmp(a + v6, u->host, hlen) == 0, "host '%.200s' not at the start of '%.200s'",
               u->host, a);
    if (!v6)
        FUZZ_CHECK(!strchr(u->host, ':'), "host '%.200s' with a colon", u->host);
    bool dflt = u->port == (u->tls ? 443 : 80);
    char hp[700];
    if (dflt)
        snprintf(hp, sizeof hp, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    else
        snprintf(hp, sizeof hp, "%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
    FUZZ_CHECK(strcmp(u->hostport, hp) == 0, "hostport '%.200s', expected '%.200s'", u->hostport,
               hp);
    if (rlen && rest[0] == '/')
        FUZZ_CHECK(strlen(u->path) == rlen && memcmp(u->path, rest, rlen) == 0,
                   "path '%.200s' of '%.200s'", u->path, s);
    else
        FUZZ_CHECK(u->path[0] == '/' && strlen(u->path) == rlen + 1 &&
                       memcmp(u->path + 1, rest, rlen) == 0,
                   "path '%.200s' of '%.200s'", u->path, s);
    size_t eplen = strlen(hp) + strlen(u->path) + 8;
    char *ep = malloc(eplen);
    FUZZ_CHECK(ep != NULL, "malloc");
    snprintf(ep, eplen, "%s://%s%.*s", u->tls ? "wss" : "ws", hp, (int)strcspn(u->path, "?"),
             u->path);
    FUZZ_CHECK(strcmp(u->endpoint, ep) == 0, "endpoint '%.200s', expected '%.200s'", u->endpoint,
               ep);
    free(ep);
}

/* Parses s (also with every allocation refused in turn); returns rc of the clean parse. */
static int parse_url(const char *s, size_t errlen)
{
    char err[300];
    memset(err, 0x5a, sizeof err);
    fz_alloc fa;
    fz_alloc_init(&fa, 0);
    steno__url u;
    int rc = steno__url_parse(&fa.a, s, &u, errlen ? err : NULL, errlen);
    FUZZ_CHECK(rc == STENO_OK || rc == STENO_ERR_CONFIG, "url_parse rc %d", rc);
    for (size_t i = errlen; i < sizeof err; i++)
        FUZZ_CHECK(err[i] == 0x5a, "message written past errlen %zu", errlen);
    if (rc == STENO_ERR_CONFIG && errlen)
        FUZZ_CHECK(memchr(err, 0, errlen) != NULL, "message not NUL-terminated");
    check_url(s, errlen, &u, rc, err);
    steno__url_free(&fa.a, &u);
    FZ_CHECK_NO_LEAK(&fa);

    for (uint64_t k = 1; k <= fa.calls; k++) {
        fz_alloc ff;
        fz_alloc_init(&ff, k);
        steno__url v;
        int r = steno__url_parse(&ff.a, s, &v, NULL, 0);
        FUZZ_CHECK(r == STENO_ERR_NOMEM || (rc != STENO_OK && r == rc),
                   "allocation %llu of %llu refused: rc %d", (unsigned long long)k,
                   (unsigned long long)fa.calls, r);
        FUZZ_CHECK(!v.host && !v.hostport && !v.path && !v.endpoint, "NOMEM left parts");
        FZ_CHECK_NO_LEAK(&ff);
    }
    return rc;
}

/* ---- build_url ---- */

struct kv {
    char *k, *v; /* v NULL: a removal */
};

static void check_built(const char *base, const steno__audio_params *ap, const steno__opts *o,
                        const char *out)
{
    size_t blen = strcspn(base, "#");
    FUZZ_CHECK(strncmp(out, base, blen) == 0, "base not kept: '%.200s' -> '%.200s'", base, out);
    const char *q = memchr(base, '?', blen);
    const char *a = out + blen;
    if (!q)
        FUZZ_CHECK(*a++ == '?', "no '?' before the query");
    else if (q + 1 != base + blen)
        FUZZ_CHECK(*a++ == '&', "no '&' after the base's query");

    /* Expected fields, in order. */
    size_t nexp = 3 + o->n;
    char rate[16], chans[16];
    snprintf(rate, sizeof rate, "%u", ap->sample_rate);
    snprintf(chans, sizeof chans, "%u", ap->channels);
    size_t alen = strlen(a);
    char *dk = malloc(alen + 1), *dv = malloc(alen + 1);
    FUZZ_CHECK(dk && dv, "malloc");
    size_t i = 0;
    const char *p = a;
    for (;;) {
        size_t flen = strcspn(p, "&");
        const char *eq = memchr(p, '=', flen);
        FUZZ_CHECK(eq != NULL, "field %zu without '='", i);
        size_t kn, vn;
        decode(p, (size_t)(eq - p), dk, &kn);
        decode(eq + 1, flen - (size_t)(eq - p) - 1, dv, &vn);
        FUZZ_CHECK(i < nexp, "more fields than options");
        const char *ek = i == 0   ? "encoding"
                         : i == 1 ? "sample_rate"
                         : i == 2 ? "channels"
                                  : o->v[i - 3].key;
        const char *ev = i == 0 ? "linear16" : i == 1 ? rate : i == 2 ? chans : o->v[i - 3].value;
        FUZZ_CHECK(kn == strlen(ek) && memcmp(dk, ek, kn) == 0, "field %zu key differs", i);
        FUZZ_CHECK(vn == strlen(ev) && memcmp(dv, ev, vn) == 0, "field %zu value differs", i);
        i++;
        if (!p[flen])
            break;
        p += flen + 1;
    }
    FUZZ_CHECK(i == nexp, "%zu fields, %zu expected", i, nexp);
    free(dk);
    free(dv);
}

static void check_build(const char *base, uint32_t rate, uint32_t chans, size_t max,
                        const steno__opts *o, const steno__url *base_url)
{
    steno__audio_params ap = {STENO_ENCODING_LINEAR16, rate, chans};
    fz_alloc fa;
    fz_alloc_init(&fa, 0);
    steno__sb b;
    steno__sb_init(&b, &fa.a);
    b.max = max;
    int rc = dg->build_url(base, &ap, o, &b);
    if (!rate || !chans) {
        FUZZ_CHECK(rc == STENO_ERR_INVALID_ARG, "rate %u channels %u: rc %d", rate, chans, rc);
    } else if (rc == STENO_ERR_TOO_LARGE) {
        FUZZ_CHECK(max != 0, "TOO_LARGE without a limit");
        FUZZ_CHECK(steno__sb_cstr(&b)[0] == '\0', "a failed build still reads as a string");
        FUZZ_CHECK(steno__sb_take(&b) == NULL, "take after an error");
    } else {
        FUZZ_CHECK(rc == STENO_OK, "build_url rc %d", rc);
        const char *out = steno__sb_cstr(&b);
        FUZZ_CHECK(max == 0 || strlen(out) < max, "%zu bytes over a %zu limit", strlen(out), max);
        check_built(base, &ap, o, out);
        if (base_url) {
            steno__url u;
            int r = steno__url_parse(NULL, out, &u, NULL, 0);
            FUZZ_CHECK(r == STENO_OK, "'%.200s' parsed, its request URL '%.200s' does not", base,
                       out);
            FUZZ_CHECK(u.tls == base_url->tls && u.port == base_url->port &&
                           strcmp(u.host, base_url->host) == 0 &&
                           strcmp(u.endpoint, base_url->endpoint) == 0,
                       "the query changed the endpoint: '%.200s' -> '%.200s'", base_url->endpoint,
                       u.endpoint);
            steno__url_free(NULL, &u);
        }
    }
    /* The engine reuses its buffers: after a reset, even a failed one builds again from empty,
     * the same URL as a fresh one. */
    char *first = rc == STENO_OK ? strdup(steno__sb_cstr(&b)) : NULL;
    FUZZ_CHECK(rc != STENO_OK || first, "strdup");
    steno__sb_reset(&b);
    b.max = 0;
    int r2 = dg->build_url(base, &ap, o, &b);
    if (rate && chans) {
        FUZZ_CHECK(r2 == STENO_OK, "rebuild after a reset: rc %d", r2);
        if (first)
            FUZZ_CHECK(strcmp(first, steno__sb_cstr(&b)) == 0, "a rebuilt URL differs");
        else
            check_built(base, &ap, o, steno__sb_cstr(&b));
    }
    free(first);
    steno__sb_free(&b);
    FZ_CHECK_NO_LEAK(&fa);
    uint64_t calls = fa.calls;
    for (uint64_t k = 1; k <= calls; k++) {
        fz_alloc ff;
        fz_alloc_init(&ff, k);
        steno__sb_init(&b, &ff.a);
        b.max = max;
        int r = dg->build_url(base, &ap, o, &b);
        FUZZ_CHECK(r == STENO_ERR_NOMEM || r == rc, "allocation %llu refused: rc %d",
                   (unsigned long long)k, r);
        steno__sb_free(&b);
        FZ_CHECK_NO_LEAK(&ff);
    }
}

/* ---- options ---- */

static void check_options(const struct kv *kv, size_t n, size_t ncur, size_t errlen)
{
    char err[700];
    for (size_t i = 0; i < n; i++) {
        memset(err, 0x5a, sizeof err);
        int rc = dg->check_option(kv[i].k, kv[i].v, errlen ? err : NULL, errlen);
        FUZZ_CHECK(rc == STENO_OK || rc == STENO_ERR_CONFIG, "check_option rc %d", rc);
        for (size_t j = errlen; j < sizeof err; j++)
            FUZZ_CHECK(err[j] == 0x5a, "message written past errlen %zu", errlen);
        if (rc && errlen)
            FUZZ_CHECK(memchr(err, 0, errlen) && (errlen == 1 || err[0]), "no message");
    }

    steno_option *so = calloc(n ? n : 1, sizeof *so);
    FUZZ_CHECK(so != NULL, "calloc");
    for (size_t i = 0; i < n; i++)
        so[i] = (steno_option){kv[i].k, kv[i].v};

    fz_alloc fa;
    fz_alloc_init(&fa, 0);
    steno__opts cur, next;
    FUZZ_CHECK(steno__opts_copy(&fa.a, so, ncur, &cur) == STENO_OK, "opts_copy");
    size_t k = 0;
    for (size_t i = 0; i < ncur; i++) {
        if (!kv[i].v)
            continue;
        FUZZ_CHECK(k < cur.n && strcmp(cur.v[k].key, kv[i].k) == 0 &&
                       strcmp(cur.v[k].value, kv[i].v) == 0,
                   "opts_copy entry %zu", i);
        k++;
    }
    FUZZ_CHECK(k == cur.n, "opts_copy kept %zu of %zu", cur.n, k);
    steno__opts dup;
    FUZZ_CHECK(steno__opts_dup(&fa.a, &cur, &dup) == STENO_OK && dup.n == cur.n, "opts_dup");
    for (size_t i = 0; i < cur.n; i++)
        FUZZ_CHECK(strcmp(dup.v[i].key, cur.v[i].key) == 0 &&
                       strcmp(dup.v[i].value, cur.v[i].value) == 0 && dup.v[i].key != cur.v[i].key,
                   "opts_dup entry %zu", i);
    steno__opts_free(&fa.a, &dup);

    /* check_set: OK only when every entry passes and single-valued keys are unique. */
    memset(err, 0, sizeof err);
    int rs = dg->check_set(&cur, err, sizeof err);
    FUZZ_CHECK(rs == STENO_OK || (rs == STENO_ERR_CONFIG && err[0]), "check_set rc %d", rs);
    if (rs == STENO_OK) {
        for (size_t i = 0; i < cur.n; i++) {
            FUZZ_CHECK(dg->check_option(cur.v[i].key, cur.v[i].value, err, sizeof err) == 0,
                       "check_set passed a bad entry");
            if (strcmp(cur.v[i].key, "keywords") && strcmp(cur.v[i].key, "keyterm") &&
                strcmp(cur.v[i].key, "redact") && strcmp(cur.v[i].key, "replace") &&
                strcmp(cur.v[i].key, "search") && strcmp(cur.v[i].key, "tag") &&
                strcmp(cur.v[i].key, "extra"))
                FUZZ_CHECK(steno__opts_count(&cur, cur.v[i].key) == 1, "'%.200s' repeated",
                           cur.v[i].key);
        }
    }

    /* opts_apply against a model. */
    const steno_option *ch = so + ncur;
    size_t nch = n - ncur;
    int ra = steno__opts_apply(&fa.a, &cur, ch, nch, &next);
    FUZZ_CHECK(ra == STENO_OK, "opts_apply rc %d", ra);
    k = 0;
    for (size_t i = 0; i < cur.n; i++) {
        bool named = false;
        for (size_t j = 0; j < nch; j++)
            named |= strcmp(ch[j].key, cur.v[i].key) == 0;
        if (named)
            continue;
        FUZZ_CHECK(k < next.n && strcmp(next.v[k].key, cur.v[i].key) == 0 &&
                       strcmp(next.v[k].value, cur.v[i].value) == 0,
                   "opts_apply lost or moved '%.200s'", cur.v[i].key);
        k++;
    }
    for (size_t j = 0; j < nch; j++) {
        if (!ch[j].value)
            continue;
        FUZZ_CHECK(k < next.n && strcmp(next.v[k].key, ch[j].key) == 0 &&
                       strcmp(next.v[k].value, ch[j].value) == 0,
                   "opts_apply change %zu", j);
        k++;
    }
    FUZZ_CHECK(k == next.n, "opts_apply: %zu entries, %zu expected", next.n, k);
    if (next.n)
        FUZZ_CHECK(steno__opts_get(&next, next.v[0].key) == next.v[0].value, "opts_get");
    steno__opts_free(&fa.a, &next);
    steno__opts_free(&fa.a, &cur);
    FZ_CHECK_NO_LEAK(&fa);

    /* Refused allocations: NOMEM, nothing kept. */
    for (uint64_t f = 1;; f++) {
        fz_alloc ff;
        fz_alloc_init(&ff, f);
        int r1 = steno__opts_copy(&ff.a, so, ncur, &cur);
        int r2 = r1 ? r1 : steno__opts_apply(&ff.a, &cur, ch, nch, &next);
        if (!r1)
            steno__opts_free(&ff.a, &cur);
        if (!r2)
            steno__opts_free(&ff.a, &next);
        FUZZ_CHECK(r1 == STENO_OK || r1 == STENO_ERR_NOMEM, "opts_copy rc %d", r1);
        FUZZ_CHECK(r2 == STENO_OK || r2 == STENO_ERR_NOMEM, "opts_apply rc %d", r2);
        FZ_CHECK_NO_LEAK(&ff);
        if (!ff.failed)
            break;
    }
    free(so);
}

/* ---- handshake headers ---- */

struct hdr {
    int n;
    char name[32];
    char *value;
    int fail;
};

static int add_hdr(void *ctx, const char *name, const char *value)
{
    struct hdr *h = ctx;
    h->n++;
    snprintf(h->name, sizeof h->name, "%s", name);
    free(h->value);
    h->value = strdup(value);
    FUZZ_CHECK(h->value != NULL, "strdup");
    return h->fail;
}

static void check_headers(const char *cred, int fail)
{
    struct hdr h = {0, "", NULL, fail};
    int rc = dg->handshake_headers(cred, add_hdr, &h);
    if (!*cred) {
        FUZZ_CHECK(rc == STENO_OK && h.n == 0, "empty credential: rc %d, %d headers", rc, h.n);
    } else if (strpbrk(cred, "\r\n")) {
        FUZZ_CHECK(rc == STENO_ERR_CONFIG && h.n == 0, "CR/LF credential: rc %d", rc);
    } else if (rc == STENO_ERR_TOO_LARGE) {
        FUZZ_CHECK(strlen(cred) > 4096 && h.n == 0, "%zu-byte credential refused", strlen(cred));
    } else {
        FUZZ_CHECK(h.n == 1 && strcmp(h.name, "authorization:") == 0, "%d headers", h.n);
        FUZZ_CHECK(rc == (fail ? STENO_ERR_INTERNAL : STENO_OK), "rc %d", rc);
        bool scheme = (starts_ci(cred, "Token") && cred[5] == ' ') ||
                      (starts_ci(cred, "Bearer") && cred[6] == ' ');
        if (scheme)
            FUZZ_CHECK(strcmp(h.value, cred) == 0, "'%.200s' -> '%.200s'", cred, h.value);
        else
            FUZZ_CHECK(strncmp(h.value, "Token ", 6) == 0 && strcmp(h.value + 6, cred) == 0,
                       "'%.200s' -> '%.200s'", cred, h.value);
    }
    free(h.value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dg)
        dg = steno__provider_find("deepgram");
    FUZZ_CHECK(dg != NULL, "no deepgram provider");
    fz_in in = {data, size};
    static const uint32_t rates[] = {16000, 8000, 44100, 48000, 1, 0, UINT32_MAX};
    uint8_t sel = fz_u8(&in);
    uint32_t rate = sel & 0x80 ? fz_u32(&in) : rates[(sel & 7) % 7];
    uint32_t chans = sel & 0x40 ? fz_u32(&in) : 1u + ((sel >> 3) & 1u);
    uint8_t lim = fz_u8(&in);
    size_t max = lim < 0xc0 ? 0 : (size_t)(lim - 0xc0) * 8; /* 0: the 1 MiB default */
    size_t errlen = fz_u8(&in) % 260;
    uint8_t ncur_sel = fz_u8(&in);

    char *url = fz_str(&in, NULL);
    char *cred = fz_str(&in, NULL);
    FUZZ_CHECK(url && cred, "malloc");
    struct kv kv[MAX_PAIRS];
    size_t n = 0;
    while (!fz_empty(&in) && n < MAX_PAIRS) {
        kv[n].k = fz_str(&in, NULL);
        kv[n].v = fz_str(&in, NULL);
        FUZZ_CHECK(kv[n].k && kv[n].v, "malloc");
        if (strcmp(kv[n].v, "\x7f") == 0) {
            free(kv[n].v);
            kv[n].v = NULL;
        }
        n++;
    }
    size_t ncur = n ? ncur_sel % (n + 1) : 0;

    steno__url none;
    FUZZ_CHECK(steno__url_parse(NULL, NULL, &none, NULL, 0) == STENO_ERR_CONFIG && !none.host,
               "NULL URL");
    steno__url_free(NULL, NULL);
    steno__url base;
    int prc = parse_url(url, errlen);
    if (prc == STENO_OK)
        FUZZ_CHECK(steno__url_parse(NULL, url, &base, NULL, 0) == STENO_OK, "second parse");

    /* The query is built from a set without removals, as the engine's set is. */
    steno_option so[MAX_PAIRS];
    for (size_t i = 0; i < n; i++)
        so[i] = (steno_option){kv[i].k, kv[i].v};
    steno__opts set;
    FUZZ_CHECK(steno__opts_copy(NULL, so, n, &set) == STENO_OK, "opts_copy");
    check_build(url, rate, chans, max, &set, prc == STENO_OK ? &base : NULL);
    steno__opts_free(NULL, &set);
    if (prc == STENO_OK)
        steno__url_free(NULL, &base);

    check_options(kv, n, ncur, errlen);
    check_headers(cred, sel & 0x20);

    for (size_t i = 0; i < n; i++) {
        free(kv[i].k);
        free(kv[i].v);
    }
    free(url);
    free(cred);
    return 0;
}
