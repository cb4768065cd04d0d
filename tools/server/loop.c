/* loop: the event loop under steno-server's lws context (see loop.h). */
#include "loop.h"

#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "timers.h"

static struct {
    int libev;
    struct ev_loop *loop;
    ev_timer timer;
    ev_prepare prepare;
    void (*turn_end)(void);
    void *foreign[1];
    lws_sorted_usec_list_t sul; /* poll: the timer is an lws timer */
    struct lws_context *ctx;
} L;

static atomic_int stop_requested;
/* Guards the context against the signal thread while it is destroyed. */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *wake_ctx;

/*
 * The timer is an ev_timer of the server's own, not an lws timer: lws 4.1.6 re-arms its libev
 * timer with ev_timer_set on a watcher that is still active, which libev ignores, so an lws timer
 * set earlier than the one already armed would wait for the later one. lws serves its own due
 * timers (timeouts, LWS_TO_KILL_ASYNC) whenever it has handled I/O, so after the server's
 * timers ran the loop is woken through lws, as another thread would wake it.
 */
static void ev_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    srv_timers_run();
    if (L.ctx)
        lws_cancel_service(L.ctx);
}

static void sul_fired(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    srv_timers_run();
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    L.turn_end();
}

int srv_loop_on_turn_end(void (*fn)(void))
{
    if (!L.libev)
        return -1;
    L.turn_end = fn;
    ev_prepare_init(&L.prepare, prepare_cb);
    ev_prepare_start(L.loop, &L.prepare);
    /* not a reason for ev_run to keep running on its own */
    ev_unref(L.loop);
    return 0;
}

int srv_loop_init(const char *kind)
{
    memset(&L, 0, sizeof(L));
    if (!strcmp(kind, "poll"))
        return 0;
    if (strcmp(kind, "libev")) {
        fprintf(stderr, "steno-server: --event-loop: expected libev or poll, got '%s'\n", kind);
        return -1;
    }
    /* NOENV: LIBEV_FLAGS in the environment must not pick another backend; NOSIGMASK: the
     * loop never touches the signal mask (the signal thread owns the stop signals). */
    L.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!L.loop) {
        fputs("steno-server: cannot create the libev loop\n", stderr);
        return -1;
    }
    ev_timer_init(&L.timer, ev_timer_fired, 0., 0.);
    L.libev = 1;
    return 0;
}

const char *srv_loop_name(void)
{
    return L.libev ? "libev" : "poll";
}

void srv_loop_context_info(struct lws_context_creation_info *info)
{
    if (!L.libev)
        return;
    info->options |= LWS_SERVER_OPTION_LIBEV;
    L.foreign[0] = L.loop;
    info->foreign_loops = L.foreign;
}

void srv_loop_attach(struct lws_context *ctx)
{
    L.ctx = ctx;
    pthread_mutex_lock(&ctx_lock);
    wake_ctx = ctx;
    pthread_mutex_unlock(&ctx_lock);
}

void srv_loop_run(void)
{
    while (!atomic_load(&stop_requested)) {
        if (L.libev)
            ev_run(L.loop, 0);
        else if (lws_service(L.ctx, 0) < 0)
            break;
    }
}

int srv_loop_turn(void)
{
    if (L.libev) {
        ev_run(L.loop, EVRUN_ONCE);
        return 0;
    }
    return lws_service(L.ctx, 0) < 0 ? -1 : 0;
}

void srv_loop_request_stop(void)
{
    atomic_store(&stop_requested, 1);
    /* lws_cancel_service() is the one lws call other threads may make. */
    pthread_mutex_lock(&ctx_lock);
    if (wake_ctx)
        lws_cancel_service(wake_ctx);
    pthread_mutex_unlock(&ctx_lock);
}

int srv_loop_stop_requested(void)
{
    return atomic_load(&stop_requested);
}

void srv_loop_on_cancel(void)
{
    /* poll: srv_loop_run checks the flag after each lws_service */
    if (L.libev && atomic_load(&stop_requested))
        ev_break(L.loop, EVBREAK_ALL);
}

void srv_loop_timer_arm(int64_t in_us)
{
    if (L.libev) {
        ev_timer_stop(L.loop, &L.timer); /* ev_timer_set on an active watcher is ignored */
        ev_timer_set(&L.timer, (double)(in_us > 0 ? in_us : 1) / 1e6, 0.);
        ev_timer_start(L.loop, &L.timer);
    } else if (L.ctx) {
        lws_sul_schedule(L.ctx, 0, &L.sul, sul_fired, (lws_usec_t)(in_us > 0 ? in_us : 1));
    }
}

void srv_loop_timer_cancel(void)
{
    if (L.libev)
        ev_timer_stop(L.loop, &L.timer);
    else
        lws_sul_cancel(&L.sul);
}

void srv_loop_destroy(struct lws_context *ctx)
{
    pthread_mutex_lock(&ctx_lock);
    wake_ctx = NULL;
    pthread_mutex_unlock(&ctx_lock);
    srv_loop_timer_cancel();
    if (L.turn_end) {
        ev_ref(L.loop);
        ev_prepare_stop(L.loop, &L.prepare);
        L.turn_end = NULL;
    }
    /* lws stops its libev watchers synchronously: one call frees everything */
    if (ctx)
        lws_context_destroy(ctx);
    L.ctx = NULL;
    if (L.loop)
        ev_loop_destroy(L.loop);
    L.loop = NULL;
}
