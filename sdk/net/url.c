/* url: split a ws:// / wss:// endpoint URL into what libwebsockets needs to connect. */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "steno/status.h"

static char *dupn(const steno_allocator *a, const char *s, size_t n)
{
    char *p = steno__alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void steno__url_free(const steno_allocator *a, steno__url *u)
{
    if (!u)
        return;
    steno__free(a, u->host);
    steno__free(a, u->hostport);
    steno__free(a, u->path);
    steno__free(a, u->endpoint);
    memset(u, 0, sizeof *u);
}

static int bad(char *err, size_t errlen, const char *url, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "invalid endpoint URL '%s': %s", url, why);
    return STENO_ERR_CONFIG;
}

int steno__url_parse(const steno_allocator *a, const char *url, steno__url *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!url)
        return bad(err, errlen, "(null)", "missing");
    const char *p;
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        out->tls = 1;
        p = url + 6;
    } else {
        return bad(err, errlen, url, "the scheme must be ws:// or wss://");
    }
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return bad(err, errlen, url, "it contains a space or control character");

    size_t auth_len = strcspn(p, "/?#");
    const char *auth = p, *auth_end = p + auth_len;
    if (memchr(auth, '@', auth_len))
        return bad(err, errlen, url, "user:password@ is not supported: use api_key/token_cb");
    const char *host, *host_end, *port_s = NULL;
    if (*auth == '[') {
        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (!host_end)
            return bad(err, errlen, url, "unterminated [IPv6] address");
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':')
                return bad(err, errlen, url, "garbage after ]");
            port_s = host_end + 2;
        }
    } else {
        host = auth;
        host_end = memchr(auth, ':', auth_len);
        if (host_end)
            port_s = host_end + 1;
        else
            host_end = auth_end;
    }
    if (host_end == host)
        return bad(err, errlen, url, "no host");
    /* Brackets only enclose an IPv6 address: "h[x" names no host, and would only fail later as
     * a DNS error that is retried instead of reported. */
    if (memchr(host, '[', (size_t)(host_end - host)) ||
        memchr(host, ']', (size_t)(host_end - host)))
        return bad(err, errlen, url, "'[' or ']' outside an [IPv6] address");
    out->port = out->tls ? 443 : 80;
    int explicit_port = 0;
    if (port_s) {
        if (port_s == auth_end)
            return bad(err, errlen, url, "empty port");
        long v = 0;
        for (const char *q = port_s; q < auth_end; q++) {
            if (*q < '0' || *q > '9')
                return bad(err, errlen, url, "the port is not a number");
            v = v * 10 + (*q - '0');
            if (v > 65535)
                return bad(err, errlen, url, "the port is above 65535");
        }
        if (v == 0)
            return bad(err, errlen, url, "port 0");
        out->port = (int)v;
        explicit_port = out->port != (out->tls ? 443 : 80);
    }
    int v6 = *auth == '[';
    out->host = dupn(a, host, (size_t)(host_end - host));

    char hp[600];
    int n = snprintf(hp, sizeof hp, "%s%.*s%s", v6 ? "[" : "", (int)(host_end - host), host,
                     v6 ? "]" : "");
    if (explicit_port && n > 0 && (size_t)n < sizeof hp)
        n += snprintf(hp + n, sizeof hp - (size_t)n, ":%d", out->port);
    if (n < 0 || (size_t)n >= sizeof hp) {
        steno__url_free(a, out);
        return bad(err, errlen, url, "the host name is too long");
    }
    out->hostport = dupn(a, hp, (size_t)n);

    /* Path and query; a fragment is never sent. */
    const char *rest = auth_end;
    size_t rest_len = strcspn(rest, "#");
    if (rest_len == 0 || rest[0] != '/') {
        /* "ws://h?x" or "ws://h": the request path is "/" */
        out->path = steno__alloc(a, rest_len + 2);
        if (out->path) {
            out->path[0] = '/';
            memcpy(out->path + 1, rest, rest_len);
            out->path[rest_len + 1] = '\0';
        }
    } else {
        out->path = dupn(a, rest, rest_len);
    }
    if (out->path) {
        size_t plen = strcspn(out->path, "?");
        size_t elen = strlen(hp) + plen + 8;
        out->endpoint = steno__alloc(a, elen);
        if (out->endpoint)
            snprintf(out->endpoint, elen, "%s://%s%.*s", out->tls ? "wss" : "ws", hp, (int)plen,
                     out->path);
    }
    if (!out->host || !out->hostport || !out->path || !out->endpoint) {
        steno__url_free(a, out);
        return STENO_ERR_NOMEM;
    }
    return STENO_OK;
}
