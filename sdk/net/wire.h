/* wire: what every connection of a session does on the wire (connect, headers, frames, close
 * payloads). */
#ifndef STENO_NET_WIRE_H
#define STENO_NET_WIRE_H

#include "engine.h"

/* Starts a WebSocket client connection to the session's endpoint; lws callbacks
 * for it reach `l`. *pwsi is set by lws as soon as the wsi exists (and may be
 * cleared by it). NULL when lws refused at once (no callback follows). */
/* cred: this connection's credential, for providers that put it in the URL
 * (steno__provider.credential_query); the request path then carries it, never the logged URL. */
struct lws *steno__wire_connect(steno_session *s, steno__link *l, const char *cred,
                                struct lws **pwsi);

/* Handshake headers for credential *cred (then wiped, freed and NULL: it is not needed any
 * more). 0 or -1. */
int steno__wire_headers(steno_session *s, char **cred, struct lws *wsi, unsigned char **p,
                        unsigned char *end);

/* One text frame (control messages, setup messages). 0, or -1 (close the connection). */
int steno__wire_send_text(steno_session *s, struct lws *wsi, const char *text);

/* One audio chunk, framed as the provider wants (binary, or text through
 * frame_audio). *wire_bytes: payload bytes written. 0 or -1. lws masks in
 * place, so the ring's copy is never handed to it. */
/* The provider's flush on this connection: its finalize_message, else finalize_text. */
int steno__wire_send_finalize(steno_session *s, struct lws *wsi, void *pconn);
int steno__wire_send_audio(steno_session *s, struct lws *wsi, void *pconn, const steno__chunk *ch,
                           uint32_t pad_frames, uint32_t *wire_bytes);
/* Frames of silence that bring a chunk up to the provider's minimum frame length
 * (steno__provider.min_chunk_ms): only a chunk cut short by a flush (finalize, close) needs
 * any. They are sent after the chunk's audio, in the same frame, and recorded in the
 * connection's timeline (steno__timeline_on_padding). */
uint32_t steno__wire_pad_frames(const steno_session *s, const steno__chunk *ch);

/* A peer close frame's code and reason (1005 when it carried none). */
void steno__wire_peer_close(const uint8_t *payload, size_t len, int *code, char *reason,
                            size_t cap);

/* Gathers one received fragment into rx. True when a whole text message is
 * ready in rx (then handle it and call steno__wire_rx_done). Binary
 * messages are ignored; an oversized one is dropped and counted. */
bool steno__wire_rx(steno_session *s, struct lws *wsi, steno__sb *rx, bool *skip, const void *in,
                    size_t len);
void steno__wire_rx_done(steno__sb *rx, bool *skip);

/* Bytes from the peer wait unread in the connection's socket. A liveness check that finds
 * some is early, not right: the peer spoke and this thread has not listened yet (see live_cb). */
bool steno__wire_peer_waiting(struct lws *wsi);

/* A handshake header the provider names (request id, error text), "" when absent. */
void steno__wire_copy_header(struct lws *wsi, const char *name, char *buf, size_t len);

#endif
