/* pool: recognition worker threads, per-stream work lists, and the queue of
 * messages going back to the lws thread. */
#include "pool.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

typedef enum item_kind { ITEM_OPEN, ITEM_AUDIO, ITEM_FINALIZE, ITEM_CLOSE } item_kind;

typedef struct item {
    struct item *next;
    item_kind kind;
    int metadata;
    size_t len; /* bytes of pcm */
    int16_t pcm[];
} item;

struct srv_job {
    atomic_int refs;
    srv_pool *pool;
    /* lws thread only */
    void *owner;
    int close_queued;
    /* under pool->lock */
    item *head, *tail;
    size_t pending;
    int scheduled; /* in the run queue or held by a worker */
    int want_resume;
    size_t resume_below;
    srv_job *run_next;
    /* the worker holding the job (the lock hand-off orders successive workers) */
    srv_stream *stream;
    int failed, discard;
    srv_sha256 sha;
    uint64_t bytes;
    srv_stream_params sp;
    srv_msginfo mi;
    void *pstate; /* the protocol's per-stream state (worker side) */
};

struct srv_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    srv_job *run_head, *run_tail;
    int stopping;
    pthread_t *threads;
    int nthreads;
    const srv_engine_ops *ops;
    srv_engine *engine;
    const srv_proto *proto;

    pthread_mutex_t out_lock;
    srv_out *out_head, *out_tail;

    pthread_mutex_t wake_lock;
    struct lws_context *ctx;
    /* lws thread only: srv_pool_defer_wakes() was called, and how many jobs entered the run
     * queue since the last srv_pool_flush_wakes() */
    int defer_wakes;
    unsigned wakes_owed;
    atomic_int sleeping; /* workers in pthread_cond_wait (changed under lock) */
};

srv_out *srv_out_new(const char *text, size_t len)
{
    srv_out *o = calloc(1, sizeof(*o) + LWS_PRE + len + 1);
    if (!o)
        return NULL;
    o->data = (unsigned char *)(o + 1) + LWS_PRE;
    if (text)
        memcpy(o->data, text, len);
    o->len = len;
    return o;
}

static void job_unref(srv_job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    item *it = j->head;
    while (it) {
        item *n = it->next;
        free(it);
        it = n;
    }
    if (j->pstate && j->pool->proto->job_state_free)
        j->pool->proto->job_state_free(j->pstate);
    free(j);
}

static void job_ref(srv_job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
}

void srv_out_free(srv_out *o)
{
    if (!o)
        return;
    if (o->job)
        job_unref(o->job);
    free(o);
}

static void post(srv_pool *p, srv_out *o)
{
    int was_empty;
    pthread_mutex_lock(&p->out_lock);
    was_empty = !p->out_head;
    if (p->out_tail)
        p->out_tail->next = o;
    else
        p->out_head = o;
    p->out_tail = o;
    pthread_mutex_unlock(&p->out_lock);
    /* The lws thread drains the whole queue on each wake, so only the
     * transition from empty needs one; wakes coalesce anyway. */
    if (was_empty) {
        pthread_mutex_lock(&p->wake_lock);
        if (p->ctx)
            lws_cancel_service(p->ctx);
        pthread_mutex_unlock(&p->wake_lock);
    }
}

static void post_kind(srv_job *j, srv_out_kind kind)
{
    srv_out *o = srv_out_new(NULL, 0);
    if (!o)
        return;
    o->kind = kind;
    o->job = j;
    job_ref(j);
    post(j->pool, o);
}

static void post_msg(void *ctx, srv_msg_type type, char *text, int is_final, double end_s)
{
    srv_job *j = ctx;
    if (!text)
        return;
    srv_out *o = srv_out_new(text, strlen(text));
    free(text);
    if (!o)
        return;
    o->kind = SRV_OUT_MSG;
    o->type = type;
    o->is_final = is_final;
    o->end_s = end_s;
    o->job = j;
    job_ref(j);
    post(j->pool, o);
}

static void emit(void *ctx, const srv_event *ev)
{
    srv_job *j = ctx;
    if (j->discard)
        return;
    j->pool->proto->on_event(j->pstate, &j->mi, ev, post_msg, j);
}

static void run_item(srv_pool *p, srv_job *j, item *it)
{
    const srv_engine_ops *ops = p->ops;
    switch (it->kind) {
    case ITEM_OPEN:
        srv_sha256_init(&j->sha);
        if (ops->stream_open(p->engine, &j->sp, &j->stream) || !j->stream) {
            j->stream = NULL;
            j->failed = 1;
            post_kind(j, SRV_OUT_ERROR);
        }
        break;
    case ITEM_AUDIO:
        if (!j->sp.no_digests)
            srv_sha256_update(&j->sha, it->pcm, it->len);
        j->bytes += it->len;
        if (j->stream)
            ops->stream_feed(j->stream, it->pcm, it->len / 2 / j->sp.channels, emit, j);
        break;
    case ITEM_FINALIZE:
        if (j->stream)
            ops->stream_finalize(j->stream, emit, j);
        break;
    case ITEM_CLOSE:
        j->discard = !it->metadata;
        if (j->stream)
            ops->stream_close(j->stream, emit, j);
        j->stream = NULL;
        if (it->metadata && !j->failed) {
            char sha[65];
            srv_sha256_final_hex(&j->sha, sha);
            double dur = (double)j->bytes / 2.0 / j->sp.channels / j->sp.sample_rate;
            p->proto->on_end(j->pstate, &j->mi, sha, dur, post_msg, j);
            post_kind(j, SRV_OUT_CLOSE_DONE);
        }
        break;
    }
}

static void *worker_main(void *arg)
{
    srv_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->run_head && !p->stopping) {
            atomic_fetch_add_explicit(&p->sleeping, 1, memory_order_relaxed);
            pthread_cond_wait(&p->cond, &p->lock);
            atomic_fetch_sub_explicit(&p->sleeping, 1, memory_order_relaxed);
        }
        srv_job *j = p->run_head;
        if (!j)
            break; /* stopping, and nothing left to do */
        p->run_head = j->run_next;
        if (!p->run_head)
            p->run_tail = NULL;
        j->run_next = NULL;
        item *list = j->head;
        j->head = j->tail = NULL;
        j->pending = 0;
        int resume = j->want_resume;
        j->want_resume = 0;
        pthread_mutex_unlock(&p->lock);

        if (resume)
            post_kind(j, SRV_OUT_RESUME);
        while (list) {
            item *n = list->next;
            run_item(p, j, list);
            free(list);
            list = n;
        }

        pthread_mutex_lock(&p->lock);
        int requeue = j->head != NULL;
        if (requeue) {
            if (p->run_tail)
                p->run_tail->run_next = j;
            else
                p->run_head = j;
            p->run_tail = j;
        } else {
            j->scheduled = 0;
        }
        if (!requeue) {
            pthread_mutex_unlock(&p->lock);
            job_unref(j); /* the scheduling reference */
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void enqueue(srv_job *j, item *it, size_t *pending_out)
{
    srv_pool *p = j->pool;
    pthread_mutex_lock(&p->lock);
    if (j->tail)
        j->tail->next = it;
    else
        j->head = it;
    j->tail = it;
    j->pending += it->len;
    if (pending_out)
        *pending_out = j->pending;
    if (!j->scheduled) {
        j->scheduled = 1;
        job_ref(j);
        if (p->run_tail)
            p->run_tail->run_next = j;
        else
            p->run_head = j;
        p->run_tail = j;
        if (p->defer_wakes)
            p->wakes_owed++;
        else
            pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
}

void srv_pool_defer_wakes(srv_pool *p)
{
    p->defer_wakes = 1;
}

void srv_pool_flush_wakes(srv_pool *p)
{
    if (!p || !p->wakes_owed)
        return;
    /* Signalling outside the lock is safe: a worker tests the run queue under the lock before
     * it waits, and the jobs were queued under it. A worker counts itself sleeping under that
     * lock too, so when none is, each of them will see the new jobs before it waits: no
     * futex call needed. */
    if (!atomic_load_explicit(&p->sleeping, memory_order_relaxed)) {
        p->wakes_owed = 0;
        return;
    }
    if (p->wakes_owed > 1)
        pthread_cond_broadcast(&p->cond);
    else
        pthread_cond_signal(&p->cond);
    p->wakes_owed = 0;
}

static item *item_new(item_kind kind, size_t len)
{
    /* the pcm is copied in right after: only the header needs clearing */
    item *it = malloc(sizeof(*it) + len);
    if (it) {
        memset(it, 0, sizeof(*it));
        it->kind = kind;
        it->len = len;
    }
    return it;
}

srv_job *srv_job_open(srv_pool *p, const srv_stream_params *sp, const srv_msginfo *mi, void *owner)
{
    srv_job *j = calloc(1, sizeof(*j));
    item *it = item_new(ITEM_OPEN, 0);
    if (!j || !it) {
        free(j);
        free(it);
        return NULL;
    }
    atomic_init(&j->refs, 1);
    j->pool = p;
    j->owner = owner;
    j->sp = *sp;
    j->mi = *mi;
    if (p->proto->job_state_new && !(j->pstate = p->proto->job_state_new(sp, mi))) {
        free(j);
        free(it);
        return NULL;
    }
    enqueue(j, it, NULL);
    return j;
}

size_t srv_job_audio(srv_job *j, const void *data, size_t len)
{
    size_t pending = 0;
    if (j->close_queued || !len)
        return 0;
    item *it = item_new(ITEM_AUDIO, len);
    if (!it)
        return 0;
    memcpy(it->pcm, data, len);
    enqueue(j, it, &pending);
    return pending;
}

void srv_job_want_resume(srv_job *j, size_t low)
{
    srv_pool *p = j->pool;
    int now = 0;
    pthread_mutex_lock(&p->lock);
    if (j->pending <= low && !j->scheduled)
        now = 1; /* already drained: nobody else would post the resume */
    else {
        j->want_resume = 1;
        j->resume_below = low;
    }
    pthread_mutex_unlock(&p->lock);
    if (now)
        post_kind(j, SRV_OUT_RESUME);
}

void srv_job_finalize(srv_job *j)
{
    if (j->close_queued)
        return;
    item *it = item_new(ITEM_FINALIZE, 0);
    if (it)
        enqueue(j, it, NULL);
}

void srv_job_close(srv_job *j, int metadata)
{
    if (j->close_queued)
        return;
    item *it = item_new(ITEM_CLOSE, 0);
    if (!it)
        return;
    j->close_queued = 1;
    it->metadata = metadata;
    enqueue(j, it, NULL);
}

void *srv_job_owner(const srv_job *j)
{
    return j->owner;
}

void srv_job_release(srv_job *j)
{
    if (!j)
        return;
    srv_job_close(j, 0);
    j->owner = NULL;
    job_unref(j);
}

int srv_pool_start(srv_pool **out, int nworkers, const srv_proto *proto, const srv_engine_ops *ops,
                   srv_engine *engine, struct lws_context *ctx)
{
    srv_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_mutex_init(&p->out_lock, NULL);
    pthread_mutex_init(&p->wake_lock, NULL);
    p->ops = ops;
    p->engine = engine;
    p->proto = proto;
    p->ctx = ctx;
    p->threads = calloc((size_t)nworkers, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return -1;
    }
    for (int i = 0; i < nworkers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p))
            break;
        p->nthreads++;
    }
    if (!p->nthreads) {
        free(p->threads);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void srv_pool_detach_lws(srv_pool *p)
{
    pthread_mutex_lock(&p->wake_lock);
    p->ctx = NULL;
    pthread_mutex_unlock(&p->wake_lock);
}

srv_out *srv_pool_drain(srv_pool *p)
{
    pthread_mutex_lock(&p->out_lock);
    srv_out *o = p->out_head;
    p->out_head = p->out_tail = NULL;
    pthread_mutex_unlock(&p->out_lock);
    return o;
}

void srv_pool_stop(srv_pool *p)
{
    if (!p)
        return;
    srv_pool_detach_lws(p);
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    srv_out *o = srv_pool_drain(p);
    while (o) {
        srv_out *n = o->next;
        srv_out_free(o);
        o = n;
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->out_lock);
    pthread_mutex_destroy(&p->wake_lock);
    free(p->threads);
    free(p);
}
