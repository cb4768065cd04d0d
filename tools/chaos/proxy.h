/* proxy: accepts clients, dials upstream, and forwards bytes through the active toxics. */
#ifndef STENO_CHAOS_PROXY_H
#define STENO_CHAOS_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "loop.h"
#include "toxic.h"

struct proxy;

struct proxy_config {
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    struct sockaddr_storage upstream_addr;
    socklen_t upstream_len;
    uint64_t seed;
    bool verbose; /* one line per connection event on stderr */
};

/* Binds and listens; the proxy then runs inside l. Returns NULL with a message in err. */
struct proxy *steno__proxy_open(struct loop *l, const struct proxy_config *cfg, char *err,
                                size_t errlen);
/* Resets every connection and frees everything. */
void steno__proxy_close(struct proxy *p);
/* "127.0.0.1:41234": the bound address, with the port the kernel picked for port 0. */
const char *steno__proxy_listen_name(const struct proxy *p);
const char *steno__proxy_upstream_name(const struct proxy *p);

/*
 * Control operations. The add/remove functions return 0 or a negative errno:
 * -EEXIST (name taken), -ENOENT (no such toxic or connection), -ENOSPC (too
 * many toxics). steno__proxy_add_toxic names an unnamed toxic and copies it.
 */
int steno__proxy_add_toxic(struct proxy *p, struct toxic *t);
int steno__proxy_remove_toxic(struct proxy *p, const char *name);
size_t steno__proxy_clear_toxics(struct proxy *p);
int steno__proxy_reset_connection(struct proxy *p, uint64_t id);
size_t steno__proxy_reset_all(struct proxy *p);

cJSON *steno__proxy_toxics_json(const struct proxy *p);
cJSON *steno__proxy_connections_json(const struct proxy *p);
/* NULL when no live connection has this id. */
cJSON *steno__proxy_connection_json(const struct proxy *p, uint64_t id);
cJSON *steno__proxy_health_json(const struct proxy *p);

#endif
