/* evloop: the event loop under a client's lws context and its network thread — libev or libuv
 * (both epoll on Linux), or lws's own poll() loop (-Devent_loop=poll). */
#ifndef STENO_NET_EVLOOP_H
#define STENO_NET_EVLOOP_H

#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "steno/status.h"

/*
 * The client owns the loop and hands it to lws as a "foreign" loop rather than letting lws create
 * one: a loop lws creates for itself takes over process-wide signals (libuv: SIGINT, SIGTERM,
 * SIGHUP, SIGSEGV and SIGFPE, left at SIG_DFL afterwards; libev: SIGINT), which a library must
 * never do to its application.
 */
typedef void (*steno__evloop_timer_cb)(void *arg);

typedef struct steno__evloop {
    void *loop;           /* the libev or libuv loop; NULL with poll() */
    uint64_t lws_options; /* what to add to the context's options (LWS_SERVER_OPTION_LIBEV...) */
    const char *name;     /* "libev", "libuv", "poll": for logs and benchmarks */
    /* the one timer (the client's timer heap arms it for its earliest deadline) */
    steno__evloop_timer_cb timer_cb;
    void *timer_arg;
    void *ev_timer;             /* libev: an ev_timer of its own */
    struct lws_context *ctx;    /* libev: the context its timer wakes */
    lws_sorted_usec_list_t sul; /* otherwise: an lws timer */
} steno__evloop;

/* Creates the loop (on any thread). Pass l->loop in info.foreign_loops[0] and add
 * l->lws_options to the context's options. The timer, once armed, calls timer_cb(timer_arg) on
 * the network thread. */
steno_status steno__evloop_init(steno__evloop *l, const steno_allocator *a,
                                steno__evloop_timer_cb timer_cb, void *timer_arg);

/* Network thread: the timer fires once, in_us (>= 1) microseconds from now, replacing any earlier
 * arming. It may fire a little early (a loop's clock is read once per turn): the callback checks
 * what is due. */
void steno__evloop_timer_arm(steno__evloop *l, struct lws_context *ctx, uint64_t in_us);
/* Network thread, or once no thread runs the loop. */
void steno__evloop_timer_cancel(steno__evloop *l);

/* Network thread: runs lws until *stop is set and steno__evloop_stop was called after it (0),
 * or until the loop fails (-1: poll() failed; call again). */
int steno__evloop_run(steno__evloop *l, struct lws_context *ctx, atomic_int *stop);

/* Network thread (inside an lws callback): makes steno__evloop_run return. */
void steno__evloop_stop(steno__evloop *l);

/* Once no thread runs the loop: destroys the lws context (may be NULL), then the loop. Returns
 * false when the loop still held handles lws should have closed (they are closed anyway). */
bool steno__evloop_destroy(steno__evloop *l, struct lws_context *ctx, const steno_allocator *a);

#endif
