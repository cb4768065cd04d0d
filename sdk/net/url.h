/* url: split a ws:// / wss:// endpoint URL into what libwebsockets needs to connect. */
#ifndef STENO_NET_URL_H
#define STENO_NET_URL_H

#include <stddef.h>

#include "steno/alloc.h"

typedef struct steno__url {
    int tls;        /* wss:// */
    int port;       /* explicit, or 80 / 443 */
    char *host;     /* DNS name or address, IPv6 without brackets */
    char *hostport; /* Host header: host, [v6], with :port when not the scheme default */
    char *path;     /* "/path?query", at least "/" */
    char *endpoint; /* "ws[s]://hostport/path" without the query: the breaker's key */
} steno__url;

/* STENO_OK, STENO_ERR_CONFIG (err says why), STENO_ERR_NOMEM. On error *out holds nothing. */
int steno__url_parse(const steno_allocator *a, const char *url, steno__url *out, char *err,
                     size_t errlen);
void steno__url_free(const steno_allocator *a, steno__url *u);

#endif
