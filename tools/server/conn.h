/* conn: one established WebSocket of the listen endpoint, shared by listen.c
 * (the machinery) and the protocol modules (what the messages mean). */
#ifndef STENO_SERVER_CONN_H
#define STENO_SERVER_CONN_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"
#include "pool.h"
#include "records.h"
#include "timers.h"

typedef struct srv_conn srv_conn;

struct srv_conn {
    struct lws *wsi;
    srv_record *rec;
    srv_job *job;
    srv_msginfo mi;
    int established;

    srv_out *q_head, *q_tail; /* results, in order, each with a due time */
    size_t q_bytes;
    srv_out *inj_head, *inj_tail;     /* fault frames, Begin: sent first, never delayed */
    srv_out *last_msg;                /* sent right before the close frame (Error) */
    srv_timer t_idle, t_due, t_limit; /* in timers.c's heap, not lws's sorted list */
    int timers_reserved;
    int64_t last_activity_us, first_audio_us;
    int idle_ms;  /* 0: no idle timeout */
    int limit_ms; /* 0: no session limit */

    /* set by the protocol's admit(): close right after the upgrade */
    int open_close_code;
    char *open_close_reason;

    /* the message being received */
    int msg_binary;
    uint64_t msg_bytes, msg_offset, msg_fnv;
    /* a binary message has begun and not ended, and the record's audio checksum before it:
     * a connection that ends inside a message leaves the record as it was before it */
    int msg_open;
    uint64_t rec_fnv_at_msg;
    int64_t msg_start_us;
    uint8_t carry;
    int have_carry;
    char *text;
    size_t text_len;

    int stalled, backlogged, rx_on;
    int delay_ms;          /* -1: the global delay */
    int input_done;        /* end of stream asked for, or closing: ignore further input */
    const char *end_cause; /* what asked for the end of stream ("CloseStream", ...) */
    int close_pending, close_after_flush, close_code;
    int close_sent; /* returned -1 once: lws now owns the close handshake */
    int dropping;   /* abort without a close frame */
    char close_reason[124];
    const char *close_cause;
};

/* Server-initiated close: `after_flush` lets queued results go out first
 * (as after CloseStream); otherwise they are dropped. */
void srv_conn_close(srv_conn *c, int code, const char *reason, const char *cause, int after_flush);
/* The same, with one text frame (`text`, malloc'd, taken) sent just before
 * the close frame even when queued results are dropped. */
void srv_conn_close_with(srv_conn *c, int code, const char *reason, const char *cause, char *text,
                         srv_msg_type type);
/* Queue a text frame (malloc'd, taken) ahead of results, never delayed. */
void srv_conn_send_now(srv_conn *c, char *text, srv_msg_type type);
void srv_conn_control_seen(srv_conn *c, srv_control_kind k);
/* The client asked to end the stream: flush the engine, send the
 * protocol's closing messages, then close 1000. */
void srv_conn_end_stream(srv_conn *c, const char *cause);
/* One audio payload that arrived inside a text message (base64 in JSON, already decoded;
 * an empty one is ignored):
 * the same path as a binary audio message (size limit, records, frame log, digests, rate
 * limit, faults, the protocol's audio_message). 0, or -1 when the connection is closing. */
int srv_conn_audio(srv_conn *c, const uint8_t *pcm, size_t bytes);
/* Audio seconds received so far. */
double srv_conn_audio_s(const srv_conn *c);
/* Seconds from the first audio message's arrival to now (0 before it). */
double srv_conn_audio_elapsed_s(const srv_conn *c);

#endif
