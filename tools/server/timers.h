/* timers: every per-connection timer of steno-server in one binary min-heap, with one loop
 * timer armed for the earliest deadline. */
#ifndef STENO_SERVER_TIMERS_H
#define STENO_SERVER_TIMERS_H

#include <stdint.h>

/*
 * Why not lws_sul: libwebsockets 4.1 keeps its timers in a sorted linked list, so scheduling
 * one walks past every earlier deadline; at 10,000 connections with an idle timer and a session
 * limit each, that is tens of thousands of comparisons per (re)scheduling. Here setting,
 * cancelling and firing cost O(log n). The layout follows the client's heap
 * (sdk/core/timerheap.[ch]); the server keeps its own copy because it does not link the SDK.
 *
 * A timer is embedded in its owner (a connection) and must not be moved or freed while
 * pending. Equal deadlines fire in the order they were set. Room is reserved per owner
 * (srv_timers_reserve) so that setting a timer never allocates and never fails.
 * Lws service thread only.
 */
typedef struct srv_timer srv_timer;
typedef void (*srv_timer_fn)(srv_timer *t);

struct srv_timer {
    int64_t due; /* srv_mono_us() */
    uint64_t seq;
    uint32_t pos; /* 1-based slot in the heap; 0 = not pending */
    srv_timer_fn fn;
};

/* Room for `more` timers beyond those already reserved: 0, or -1 when out of memory. */
int srv_timers_reserve(uint32_t more);
void srv_timers_unreserve(uint32_t fewer);

/* Pending `in_us` microseconds from now (moving it if it already was). */
void srv_timer_set(srv_timer *t, srv_timer_fn fn, int64_t in_us);
/* No longer pending (a no-op when it is not). */
void srv_timer_cancel(srv_timer *t);
static inline int srv_timer_pending(const srv_timer *t)
{
    return t->pos != 0;
}

/* The loop timer fired: runs every timer due by now, then arms the loop timer for the next. */
void srv_timers_run(void);
uint32_t srv_timers_count(void);
/* Forgets every timer and frees the heap (at exit). */
void srv_timers_free(void);

#endif
