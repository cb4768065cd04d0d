/* http: plain HTTP answers on the listen port (refused upgrades, plain GETs). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *srv_http_status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Error";
}

int srv_http_add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                        unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

int srv_http_respond(struct lws *wsi, int status, const char *const *headers, const char *body,
                     const char *retry_after)
{
    unsigned char buf[LWS_PRE + 4096], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf) - 1;
    char clen[24];
    size_t blen = strlen(body);
    snprintf(clen, sizeof(clen), "%zu", blen);

    /* Written by hand: before the upgrade is decided lws has not noted the
     * request's HTTP version and would answer "HTTP/1.0", which WebSocket
     * clients refuse to parse. */
    p += lws_snprintf((char *)p, (size_t)(end - p), "HTTP/1.1 %d %s\r\n", status,
                      srv_http_status_text(status));
    for (size_t i = 0; headers && headers[i]; i += 2)
        if (srv_http_add_header(wsi, headers[i], headers[i + 1], &p, end))
            return -1;
    if (srv_http_add_header(wsi, "content-type:", "application/json", &p, end) ||
        srv_http_add_header(wsi, "content-length:", clen, &p, end) ||
        (retry_after && *retry_after &&
         srv_http_add_header(wsi, "retry-after:", retry_after, &p, end)) ||
        srv_http_add_header(wsi, "connection:", "close", &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < blen)
        return -1;
    memcpy(p, body, blen);
    p += blen;
    return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
}

char *srv_http_dup_header(struct lws *wsi, enum lws_token_indexes t)
{
    int n = lws_hdr_total_length(wsi, t);
    if (n <= 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_copy(wsi, v, n + 1, t) < 0) {
        free(v);
        return NULL;
    }
    return v;
}
