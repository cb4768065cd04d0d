/* control: the HTTP/1.1 control API (toxics, connections, health) on its own port. */
#ifndef STENO_CHAOS_CONTROL_H
#define STENO_CHAOS_CONTROL_H

#include <stddef.h>
#include <sys/socket.h>

#include "loop.h"
#include "proxy.h"

struct control;

/* Binds addr and serves requests inside l. Returns NULL with a message in err. */
struct control *steno__control_open(struct loop *l, struct proxy *p,
                                    const struct sockaddr_storage *addr, socklen_t len, char *err,
                                    size_t errlen);
void steno__control_close(struct control *ctl);
/* "127.0.0.1:41235", with the port the kernel picked for port 0. */
const char *steno__control_name(const struct control *ctl);

/* One request, already parsed: the routing part, kept apart from the socket for clarity. */
struct control_reply {
    int status;
    char *body;        /* JSON text, malloc'd */
    const char *allow; /* Allow header for 405 */
};
void steno__control_route(struct proxy *p, const char *method, const char *path, const char *body,
                          size_t body_len, struct control_reply *r);

#endif
