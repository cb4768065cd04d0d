/* control: the loopback HTTP/1.1 JSON API for observation and fault control. */
#ifndef STENO_SERVER_CONTROL_H
#define STENO_SERVER_CONTROL_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

int srv_control_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len);
/* Per-session data size for the control protocol. */
size_t srv_control_pss_size(void);
/* A connection record ended: answer long polls waiting for it. */
void srv_control_record_ended(uint64_t id);

#endif
