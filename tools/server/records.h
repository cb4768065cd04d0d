/* records: what the server observed of each connection, for the control API. */
#ifndef STENO_SERVER_RECORDS_H
#define STENO_SERVER_RECORDS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"

typedef enum srv_rec_state {
    SRV_REC_HANDSHAKE, /* upgrade request accepted, not yet established */
    SRV_REC_OPEN,
    SRV_REC_CLOSED,
    SRV_REC_REJECTED,
} srv_rec_state;

typedef enum srv_control_kind {
    SRV_CTL_KEEPALIVE,
    SRV_CTL_FINALIZE,
    SRV_CTL_CLOSESTREAM,
    SRV_CTL_EMPTY_BINARY,   /* a zero-length binary message: legacy end of stream */
    SRV_CTL_FORCE_ENDPOINT, /* AssemblyAI */
    SRV_CTL_UPDATE_CONFIGURATION,
    SRV_CTL_TERMINATE,
    SRV_CTL_OAI_SESSION_UPDATE, /* OpenAI */
    SRV_CTL_OAI_COMMIT,
    SRV_CTL_OAI_CLEAR,
    SRV_CTL_COUNT,
} srv_control_kind;

#define SRV_CONTROL_LOG_MAX 1000
/* Frame logs of ended connections are kept for this many of the newest. */
#define SRV_FRAME_LOGS_KEPT 1000

typedef struct srv_frame {
    uint64_t offset; /* bytes before this frame */
    uint64_t fnv;
    double t; /* seconds since the connection started */
    uint32_t bytes;
} srv_frame;

struct srv_conn;

typedef struct srv_record {
    struct srv_record *prev, *next;
    uint64_t id;
    char request_id[37];
    srv_rec_state state;
    int handshake_status;
    char *handshake_error;
    char *path, *query;
    srv_params params; /* Deepgram's query */
    void *pparams;     /* another protocol's query (its params_free frees it) */
    int params_ok;
    int rate, channels; /* of the audio, once the query is accepted */
    int sample_bytes;   /* bytes per sample: 2 (linear16, pcm_s16le) or 1 (pcm_mulaw) */
    srv_kv *headers;
    size_t n_headers;
    char peer[64];
    double start_wall, end_wall;
    int64_t start_mono;

    uint64_t audio_bytes, audio_frames, audio_fnv, last_frame_offset;
    double first_audio, last_audio; /* < 0: none yet */
    unsigned control[SRV_CTL_COUNT];
    uint8_t control_log[SRV_CONTROL_LOG_MAX];
    size_t n_control_log;
    uint64_t text_messages, invalid_text;
    uint64_t messages_sent, results_sent, finals_sent, interims_sent, speech_started_sent,
        utterance_end_sent, metadata_sent, begin_sent, termination_sent, error_sent;
    cJSON *config_updates; /* AssemblyAI UpdateConfiguration messages, as received */
    double last_final_end; /* < 0: none */

    int close_code; /* 0: none */
    char *close_reason;
    const char *closed_by, *close_cause;
    char **faults;
    size_t n_faults;

    srv_frame *frames;
    size_t n_frames, cap_frames;
    int frames_truncated;
    int frames_evicted; /* the log was freed to bound memory */
    /* ended records still holding a frame log, oldest first */
    struct srv_record *flog_prev, *flog_next;
    int in_flog;
    /* ended records, in the order they ended: the eviction queue for --history */
    struct srv_record *end_prev, *end_next;
    int in_ended;

    struct srv_conn *conn; /* while the connection is live */
} srv_record;

srv_record *srv_rec_new(void);
srv_record *srv_rec_find(uint64_t id);
/* The connection ended (or was rejected): counts it and forgets the oldest
 * ended records beyond --history. */
void srv_rec_ended(srv_record *r);
void srv_rec_add_fault(srv_record *r, const char *what);
void srv_rec_add_frame(srv_record *r, uint64_t offset, uint32_t bytes, uint64_t fnv, double t);
cJSON *srv_rec_json(const srv_record *r);
cJSON *srv_rec_frames_json(const srv_record *r);
/* Forget every ended record. */
void srv_rec_clear_ended(void);
void srv_rec_free_all(void);
const char *srv_control_name(srv_control_kind k);
/* Deepgram's query parameters as a record shows them. */
cJSON *srv_params_json(const srv_params *p);

#endif
