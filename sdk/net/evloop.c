/* evloop: the event loop under a client's lws context (see evloop.h). */
#include "evloop.h"

#include <string.h>

#if defined(STENO_EVLIB_EV)
#include <ev.h>
#elif defined(STENO_EVLIB_UV)
#include <uv.h>
#endif

static void init_common(steno__evloop *l, steno__evloop_timer_cb cb, void *arg, const char *name)
{
    memset(l, 0, sizeof *l);
    l->timer_cb = cb;
    l->timer_arg = arg;
    l->name = name;
}

#if !defined(STENO_EVLIB_EV)
/* libuv and poll(): the timer is an lws timer on the context */
static void sul_fire(lws_sorted_usec_list_t *sul)
{
    steno__evloop *l = lws_container_of(sul, steno__evloop, sul);
    l->timer_cb(l->timer_arg);
}

void steno__evloop_timer_arm(steno__evloop *l, struct lws_context *ctx, uint64_t in_us)
{
    lws_sul_schedule(ctx, 0, &l->sul, sul_fire, (lws_usec_t)(in_us ? in_us : 1));
}

void steno__evloop_timer_cancel(steno__evloop *l)
{
    lws_sul_cancel(&l->sul);
}
#endif

#if defined(STENO_EVLIB_EV)

/*
 * libev (the default): a watcher change costs at most one epoll_ctl(MOD) in the next loop turn,
 * so lws asking for POLLOUT before each frame and dropping it after costs two cheap calls per
 * frame.
 *
 * The client's timer is an ev_timer of its own, not an lws timer: lws 4.1.6 re-arms its libev
 * timer with ev_timer_set on a watcher that is still active, which libev ignores, so an lws timer
 * set earlier than the one already armed waits for the later one (pacing stalled for seconds).
 * lws does serve its due timers whenever it has handled I/O; what the client's timer does to
 * lws (a connection killed with LWS_TO_KILL_ASYNC: an lws timer due at once) waits for that, so
 * after the client's timer the loop is woken through lws, as another thread would wake it.
 */
static void ev_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    steno__evloop *l = t->data;
    l->timer_cb(l->timer_arg);
    if (l->ctx)
        lws_cancel_service(l->ctx);
}

steno_status steno__evloop_init(steno__evloop *l, const steno_allocator *a,
                                steno__evloop_timer_cb timer_cb, void *timer_arg)
{
    init_common(l, timer_cb, timer_arg, "libev");
    ev_timer *t = steno__alloc(a, sizeof *t);
    if (!t)
        return STENO_ERR_NOMEM;
    ev_timer_init(t, ev_timer_fired, 0., 0.);
    t->data = l;
    /* NOENV: LIBEV_FLAGS in the application's environment must not pick another backend;
     * NOSIGMASK: the loop never touches the thread's signal mask */
    l->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!l->loop) {
        steno__free(a, t);
        return STENO_ERR_INTERNAL;
    }
    l->ev_timer = t;
    l->lws_options = LWS_SERVER_OPTION_LIBEV;
    return STENO_OK;
}

void steno__evloop_timer_arm(steno__evloop *l, struct lws_context *ctx, uint64_t in_us)
{
    l->ctx = ctx;
    ev_timer *t = l->ev_timer;
    ev_timer_stop(l->loop, t); /* ev_timer_set on an active watcher would be ignored */
    ev_timer_set(t, (double)(in_us ? in_us : 1) / 1e6, 0.);
    ev_timer_start(l->loop, t);
}

void steno__evloop_timer_cancel(steno__evloop *l)
{
    if (l->loop && l->ev_timer)
        ev_timer_stop(l->loop, l->ev_timer);
}

int steno__evloop_run(steno__evloop *l, struct lws_context *ctx, atomic_int *stop)
{
    (void)ctx;
    while (!atomic_load(stop))
        ev_run(l->loop, 0);
    return 0;
}

void steno__evloop_stop(steno__evloop *l)
{
    ev_break(l->loop, EVBREAK_ALL);
}

bool steno__evloop_destroy(steno__evloop *l, struct lws_context *ctx, const steno_allocator *a)
{
    /* lws stops its libev watchers synchronously: one call frees everything */
    if (ctx)
        lws_context_destroy(ctx);
    steno__evloop_timer_cancel(l);
    if (l->loop)
        ev_loop_destroy(l->loop);
    steno__free(a, l->ev_timer);
    l->loop = NULL;
    l->ev_timer = NULL;
    return true;
}

#elif defined(STENO_EVLIB_UV)

/*
 * libuv: uv_poll_start restarts a watcher from scratch (epoll_ctl DEL, then ADD on the next
 * turn), so each POLLOUT lws asks for and drops costs four epoll_ctl calls; lws's timer runs on a
 * uv_timer rounded to the millisecond. Kept for comparison.
 */
steno_status steno__evloop_init(steno__evloop *l, const steno_allocator *a,
                                steno__evloop_timer_cb timer_cb, void *timer_arg)
{
    init_common(l, timer_cb, timer_arg, "libuv");
    uv_loop_t *loop = steno__alloc(a, sizeof *loop);
    if (!loop)
        return STENO_ERR_NOMEM;
    if (uv_loop_init(loop) != 0) {
        steno__free(a, loop);
        return STENO_ERR_INTERNAL;
    }
    l->loop = loop;
    l->lws_options = LWS_SERVER_OPTION_LIBUV;
    return STENO_OK;
}

int steno__evloop_run(steno__evloop *l, struct lws_context *ctx, atomic_int *stop)
{
    (void)ctx;
    while (!atomic_load(stop))
        uv_run(l->loop, UV_RUN_DEFAULT);
    return 0;
}

void steno__evloop_stop(steno__evloop *l)
{
    uv_stop(l->loop);
}

/* Runs the loop, never waiting, until nothing is left in it: closing handles complete in a loop
 * turn without any I/O. False if handles are still active after the budget. */
static bool loop_drain(uv_loop_t *loop)
{
    for (int i = 0; i < 10000; i++)
        if (!uv_run(loop, UV_RUN_NOWAIT))
            return true;
    return false;
}

static void close_any_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

bool steno__evloop_destroy(steno__evloop *l, struct lws_context *ctx, const steno_allocator *a)
{
    uv_loop_t *loop = l->loop;
    bool clean = true;
    if (ctx) {
        /* On a libuv loop lws closes each connection's handle asynchronously: the first call
         * closes every connection, the loop completes the closes (after the last one lws closes
         * its own timer and idle handles), and the second call frees the context. */
        lws_context_destroy(ctx);
        clean = loop_drain(loop);
        lws_context_destroy(ctx);
    }
    if (loop) {
        if (uv_loop_close(loop) != 0) {
            /* not expected: close what is left rather than leak the loop's epoll descriptor */
            clean = false;
            uv_walk(loop, close_any_handle, NULL);
            loop_drain(loop);
            uv_loop_close(loop);
        }
        steno__free(a, loop);
    }
    l->loop = NULL;
    return clean;
}

#else

/* lws's own poll() loop: every wake walks every descriptor. */
steno_status steno__evloop_init(steno__evloop *l, const steno_allocator *a,
                                steno__evloop_timer_cb timer_cb, void *timer_arg)
{
    (void)a;
    init_common(l, timer_cb, timer_arg, "poll");
    return STENO_OK;
}

int steno__evloop_run(steno__evloop *l, struct lws_context *ctx, atomic_int *stop)
{
    (void)l;
    while (!atomic_load(stop))
        if (lws_service(ctx, 0) < 0 && !atomic_load(stop))
            return -1;
    return 0;
}

void steno__evloop_stop(steno__evloop *l)
{
    (void)l; /* steno__evloop_run checks *stop after each lws_service */
}

bool steno__evloop_destroy(steno__evloop *l, struct lws_context *ctx, const steno_allocator *a)
{
    (void)l;
    (void)a;
    if (ctx)
        lws_context_destroy(ctx);
    return true;
}

#endif
