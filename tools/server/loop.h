/* loop: the event loop under steno-server's lws context: libev (epoll) by default, or lws's
 * own poll() loop. */
#ifndef STENO_SERVER_LOOP_H
#define STENO_SERVER_LOOP_H

#include <stdint.h>

struct lws_context;
struct lws_context_creation_info;

/*
 * Why libev: lws's poll() loop walks every descriptor on every wake, so at 10,000 connections
 * each wake (a message, a worker's result) costs 10,000 pollfd entries in the kernel and in
 * lws. On epoll a wake costs the same with 10 or 10,000 connections. lws finds its libev
 * support at run time (Debian's libwebsockets-evlib-ev plugin); poll stays selectable
 * (--event-loop poll) as a fallback.
 */

/* "libev" or "poll": 0, or -1 (message on stderr) when that loop cannot be made. */
int srv_loop_init(const char *kind);
const char *srv_loop_name(void);
/* Sets the context options and foreign loop that put lws on this loop. */
void srv_loop_context_info(struct lws_context_creation_info *info);
void srv_loop_attach(struct lws_context *ctx);

/* Runs until srv_loop_request_stop(). */
void srv_loop_run(void);
/* One turn of the loop: waits for at least one event or timer. -1 when lws failed. */
int srv_loop_turn(void);
/* Any thread (the signal thread): srv_loop_run returns soon after. */
void srv_loop_request_stop(void);
int srv_loop_stop_requested(void);
/* The lws thread saw LWS_CALLBACK_EVENT_WAIT_CANCELLED: ends srv_loop_run if asked to. */
void srv_loop_on_cancel(void);

/* libev: fn runs once per loop turn, after the turn's events and before the loop waits;
 * returns 0. poll: there is no such point (returns -1 and fn is never called). */
int srv_loop_on_turn_end(void (*fn)(void));

/* The one timer for timers.c's earliest deadline (replaces any armed before). */
void srv_loop_timer_arm(int64_t in_us);
void srv_loop_timer_cancel(void);

/* Destroys the context (no other thread may wake it afterwards) and then the loop. */
void srv_loop_destroy(struct lws_context *ctx);

#endif
