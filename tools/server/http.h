/* http: plain HTTP answers on the listen port (refused upgrades, plain GETs). */
#ifndef STENO_SERVER_HTTP_H
#define STENO_SERVER_HTTP_H

#include <libwebsockets.h>

const char *srv_http_status_text(int status);
int srv_http_add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                        unsigned char *end);
/* Writes a complete response: status line, `headers` ("name:", value pairs,
 * NULL-terminated; may be NULL), a JSON `body`, Retry-After when given, and
 * Connection: close. The caller ends the transaction. 0 or -1. */
int srv_http_respond(struct lws *wsi, int status, const char *const *headers, const char *body,
                     const char *retry_after);
/* A request header's value (malloc'd), or NULL. */
char *srv_http_dup_header(struct lws *wsi, enum lws_token_indexes t);

#endif
