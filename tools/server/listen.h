/* listen: the /v1/listen WebSocket endpoint: handshake validation, audio and
 * control messages in, results out, timers, and fault actions on connections. */
#ifndef STENO_SERVER_LISTEN_H
#define STENO_SERVER_LISTEN_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"
#include "records.h"

typedef struct srv_conn srv_conn;

int srv_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);

/* The live connection with this id, or NULL. */
srv_conn *srv_listen_conn(uint64_t id);
/* The record's connection if it is established and live, or NULL. */
srv_conn *srv_record_live_conn(const srv_record *r);
/* Close every live connection (graceful shutdown). */
void srv_listen_close_all(int code, const char *reason);

srv_record *srv_conn_record(srv_conn *c);
const srv_msginfo *srv_conn_msginfo(srv_conn *c);
void srv_conn_fault_close(srv_conn *c, int code, const char *reason);
void srv_conn_fault_drop(srv_conn *c);
void srv_conn_fault_stall(srv_conn *c, int stall);
int srv_conn_is_stalled(const srv_conn *c);
/* Queue a text frame ahead of the results (takes `text`, malloc'd). */
int srv_conn_fault_send(srv_conn *c, char *text, size_t len);
/* The same for any frame: binary = 1 sends a binary frame (takes `data`, malloc'd). */
int srv_conn_fault_send_frame(srv_conn *c, char *data, size_t len, int binary);
/* Per-connection result delay in ms; -1 follows the global one. */
void srv_conn_set_delay(srv_conn *c, int ms);

#endif
