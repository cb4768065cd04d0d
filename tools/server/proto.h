/* proto: the vendor protocol a steno-server speaks (Deepgram /v1/listen or
 * AssemblyAI /v3/ws), as a table of functions over the shared machinery. */
#ifndef STENO_SERVER_PROTO_H
#define STENO_SERVER_PROTO_H

#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <stddef.h>

#include "engine.h"
#include "messages.h"
#include "records.h"

typedef struct srv_conn srv_conn;

/* Why the shared code ends a connection; each protocol picks code and text. */
typedef enum srv_fail {
    SRV_FAIL_IDLE,          /* no client message for the idle time */
    SRV_FAIL_BAD_AUDIO,     /* an audio message that is not whole samples */
    SRV_FAIL_TOO_BIG,       /* a message over the size limit */
    SRV_FAIL_RATE,          /* audio faster than --max-rate */
    SRV_FAIL_ENGINE,        /* the engine failed */
    SRV_FAIL_SEND_QUEUE,    /* the client does not read its results */
    SRV_FAIL_SESSION_LIMIT, /* the session reached its maximum duration */
} srv_fail;

/* What a protocol decides about an upgrade request that passed the shared
 * checks (path, down, handshake rate, reject_next). */
typedef struct srv_admit {
    int status;     /* > 0: refuse with this HTTP status and `err` */
    int close_code; /* > 0: upgrade, then close at once with this code and `err` */
    char err[512];
} srv_admit;

/* Worker side: hands one finished server message to the lws thread. */
typedef void (*srv_post_fn)(void *ctx, srv_msg_type type, char *text, int is_final, double end_s);

typedef struct srv_proto {
    const char *name;
    const char *path; /* the WebSocket endpoint, e.g. "/v1/listen" */
    /* Nonzero when a request path is one of the protocol's endpoints (Gemini serves several
     * API versions); NULL: `path`, optionally with a trailing slash. */
    int (*path_ok)(const char *path);

    /* --- lws thread: handshake ------------------------------------------ */
    /* A complete HTTP error response (status line, headers, body); 0 or -1. */
    int (*http_error)(struct lws *wsi, int status, const char *request_id, const char *err,
                      const char *retry_after);
    /* Extra headers on the 101 answer (may be NULL). */
    int (*add_headers)(struct lws *wsi, const srv_record *r, struct lws_process_html_args *a);
    /* A request header value as the record shows it (credentials hidden):
     * malloc'd, or NULL to keep `v` as is. */
    char *(*redact_header)(enum lws_token_indexes t, const char *v);
    /* A "name=value" query argument as the record shows it (malloc'd), or NULL. */
    char *(*redact_arg)(const char *arg);
    /* Credentials, query and capacity. Fills r->params/r->pparams, r->rate,
     * r->channels, r->sample_bytes when it accepts. */
    void (*admit)(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                  int too_many_args, srv_admit *out);

    /* --- lws thread: established connection ----------------------------- */
    /* The engine's stream parameters and the message info's model_name
     * (and format_turns) for an accepted record. */
    void (*setup)(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi);
    /* The connection is established and its job open: first messages,
     * timers (may be NULL). */
    void (*opened)(srv_conn *c);
    /* One complete text message. */
    void (*on_text)(srv_conn *c, const char *text, size_t len);
    /* One complete binary message of `bytes`: 0 to take it, -1 when it has
     * closed the connection (may be NULL). */
    int (*audio_message)(srv_conn *c, uint64_t bytes);
    /* Close with an error code and text the protocol's way (AssemblyAI: an
     * Error frame first); used for admit()'s close_code. May be NULL when
     * admit() never asks for one. */
    void (*close_error)(srv_conn *c, int code, const char *reason, const char *cause);
    /* End the connection for a reason the shared code detected. */
    void (*fail)(srv_conn *c, srv_fail why);

    /* --- worker: messages from engine events ----------------------------- */
    void *(*job_state_new)(const srv_stream_params *sp, const srv_msginfo *mi);
    void (*job_state_free)(void *st);
    void (*on_event)(void *st, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                     void *ctx);
    /* The stream was flushed at the client's request to end it: the
     * closing message(s). `sha256_hex` and `audio_s` describe all its audio. */
    void (*on_end)(void *st, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                   srv_post_fn post, void *ctx);

    /* --- faults ----------------------------------------------------------- */
    const char *const *malformed; /* text, type, unknown */
    char *(*oversized)(const srv_msginfo *mi, size_t bytes);
    /* One final result message for any span and words, however absurd (the bad_times fault:
     * negative times, audio already final, audio never sent). NULL: not offered. */
    char *(*result_message)(const srv_msginfo *mi, const srv_event *ev);

    /* --- records ---------------------------------------------------------- */
    const srv_control_kind *controls; /* the client messages counted in "control" */
    size_t n_controls;
    cJSON *(*params_json)(const srv_record *r);
    void (*params_free)(srv_record *r);
    /* Protocol-specific record fields (may be NULL). */
    void (*record_json)(const srv_record *r, cJSON *o);
} srv_proto;

extern const srv_proto srv_proto_deepgram;
extern const srv_proto srv_proto_assemblyai;
extern const srv_proto srv_proto_gemini;
extern const srv_proto srv_proto_openai;

#endif
