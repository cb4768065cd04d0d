/* pool: recognition worker threads, per-stream work lists, and the queue of
 * messages going back to the lws thread. */
#ifndef STENO_SERVER_POOL_H
#define STENO_SERVER_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "messages.h"

struct lws_context;

typedef struct srv_pool srv_pool;
typedef struct srv_job srv_job; /* one connection's stream, shared by lws and a worker */

typedef enum srv_out_kind {
    SRV_OUT_MSG,        /* a text frame to send */
    SRV_OUT_ERROR,      /* the engine failed: close 1011 */
    SRV_OUT_CLOSE_DONE, /* CloseStream fully answered: close 1000 after the queue */
    SRV_OUT_RESUME,     /* the work list drained below the low mark: read again */
} srv_out_kind;

/* A message travelling from a worker to the lws thread, then through the
 * connection's send queue; `data` has LWS_PRE bytes of headroom before it. */
typedef struct srv_out {
    struct srv_out *next;
    srv_job *job; /* holds a reference; NULL for fault-injected frames */
    srv_out_kind kind;
    srv_msg_type type;
    int is_final;
    double end_s; /* Results: start + duration */
    int64_t due_us;
    size_t len;
    int binary; /* fault injection: a binary frame where text is expected */
    unsigned char *data;
} srv_out;

/* Copies `len` bytes of `text` into a new message with LWS_PRE headroom. */
srv_out *srv_out_new(const char *text, size_t len);
/* Frees the message and drops its job reference. */
void srv_out_free(srv_out *o);

struct srv_proto;
int srv_pool_start(srv_pool **out, int nworkers, const struct srv_proto *proto,
                   const srv_engine_ops *ops, srv_engine *engine, struct lws_context *ctx);
/* Stop waking lws (before its context is destroyed); then srv_pool_stop()
 * finishes every queued item and joins the workers. */
void srv_pool_detach_lws(srv_pool *p);
/* lws thread. From now on queueing work does not wake a worker at once; the loop calls
 * srv_pool_flush_wakes() once per turn, before it waits. At 10,000 streams each audio message
 * would otherwise wake a sleeping worker (a futex call and a context switch per message); per
 * turn, one wake covers every message the turn read. */
void srv_pool_defer_wakes(srv_pool *p);
void srv_pool_flush_wakes(srv_pool *p);
void srv_pool_stop(srv_pool *p);
/* lws thread: take every message that is ready, oldest first. */
srv_out *srv_pool_drain(srv_pool *p);

/* lws thread. The owner holds one reference until srv_job_release(). */
srv_job *srv_job_open(srv_pool *p, const srv_stream_params *sp, const srv_msginfo *mi, void *owner);
/* Queue audio (copied). Returns the bytes now waiting in this stream's list;
 * when that exceeds the caller's high mark it should stop reading and call
 * srv_job_want_resume(), which makes the worker post SRV_OUT_RESUME once the
 * list is below `low`. */
size_t srv_job_audio(srv_job *j, const void *data, size_t len);
void srv_job_want_resume(srv_job *j, size_t low);
void srv_job_finalize(srv_job *j);
/* The last item of a stream: flush the engine; with `metadata`, send the
 * protocol's closing message (Metadata, Termination) and SRV_OUT_CLOSE_DONE
 * after the results. */
void srv_job_close(srv_job *j, int metadata);
void *srv_job_owner(const srv_job *j);
/* Forget the owner (it is going away) and drop its reference. */
void srv_job_release(srv_job *j);

#endif
