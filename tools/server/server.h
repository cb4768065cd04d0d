/* server: configuration and process-wide state of steno-server. All of it
 * belongs to the lws service thread unless a field says otherwise. */
#ifndef STENO_SERVER_SERVER_H
#define STENO_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "pool.h"
#include "records.h"

struct lws_context;
struct lws_vhost;

typedef struct srv_config {
    const char *host;
    int port, control_port;
    const char *engine_name, *engine_opt;
    const char *event_loop; /* libev | poll (loop.h) */
    const char *api_key;
    double max_rate;
    int burst_ms, idle_timeout_ms, null_span_ms;
    int workers, max_connections;
    size_t max_message_bytes;
    size_t history, frame_log;
    const char **record_headers;
    size_t n_record_headers;
    int strict_params;
    int no_digests;            /* skip the audio checksums (fnv, sha256): load benchmarks */
    double max_handshake_rate; /* accepted handshakes per second (0: no limit) */
    const char *tls_cert, *tls_key;
    int verbose;
    const char *protocol;  /* deepgram | assemblyai */
    int session_limit_s;   /* assemblyai: maximum session duration */
    int session_limit_set; /* --session-limit-s was given (deepgram applies it only then) */
} srv_config;

/* A fault action waiting for a connection to reach an amount of audio. */
typedef struct srv_armed {
    struct srv_armed *next;
    char *spec;       /* the JSON object that armed it, minus after_audio_ms */
    double after_s;   /* audio seconds received on the connection */
    uint64_t conn_id; /* 0: any connection */
    int count;        /* connections still to hit; 0 = unlimited */
} srv_armed;

typedef struct srv_faults {
    int down, down_status;
    char down_retry_after[32];
    int reject_next, reject_status;
    char reject_retry_after[32];
    char reject_error[256];
    int delay_results_ms;
    int mute_next; /* connections still to be muted once upgraded */
    srv_armed *armed;
} srv_faults;

typedef struct srv_stats {
    uint64_t connections_total, handshakes_rejected;
    uint64_t audio_bytes, audio_frames, text_messages;
    uint64_t messages_sent, results_sent, finals_sent;
    uint64_t closes[5000]; /* by close code, 0..4999 */
} srv_stats;

typedef struct srv_state {
    srv_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh_listen, *vh_control;
    int port, control_port;
    const struct srv_proto *proto;
    const srv_engine_ops *engine_ops;
    srv_engine *engine;
    srv_pool *pool;
    uint64_t rng;
    uint64_t next_id;
    srv_record *rec_head, *rec_tail;
    size_t n_records, n_ended;
    srv_record *flog_head, *flog_tail; /* ended records with a frame log */
    size_t n_flog;
    srv_record *end_head, *end_tail; /* ended records, first ended first */
    size_t n_active;                 /* established WebSockets */
    double hs_tokens;                /* --max-handshake-rate bucket */
    int64_t hs_refill_us;
    srv_faults faults;
    srv_stats stats;
    int shutting_down;
} srv_state;

extern srv_state srv_g;

#endif
