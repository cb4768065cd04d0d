/* loop: one epoll instance, edge-triggered fd watches and per-iteration hooks. */
#ifndef STENO_CHAOS_LOOP_H
#define STENO_CHAOS_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define NEVER INT64_MAX

/*
 * Embedded in whatever owns an fd. Watches are edge-triggered for
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP, so an owner remembers readiness itself until it
 * sees EAGAIN: that way a socket it chooses not to read (a blackhole) or a peer
 * that hung up can never spin the loop.
 */
struct watch {
    void (*fn)(struct watch *w, uint32_t events);
};

/*
 * Called once after every batch of events; does the deferred work and returns
 * the next time it wants to run (NEVER for none, <= now for "again at once").
 */
struct loop_hook {
    struct loop_hook *next;
    int64_t (*tick)(struct loop_hook *h, int64_t now);
};

struct loop {
    int epfd;
    bool stop;
    struct loop_hook *hooks;
};

int steno__loop_init(struct loop *l);
void steno__loop_fini(struct loop *l);
/* Registers fd; the watch must outlive the fd (closing the fd unregisters it). */
int steno__loop_add(struct loop *l, int fd, struct watch *w);
void steno__loop_add_hook(struct loop *l, struct loop_hook *h);
/* Runs until steno__loop_stop; returns 0, or -1 if epoll failed. */
int steno__loop_run(struct loop *l);
void steno__loop_stop(struct loop *l);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t steno__loop_now(void);

#endif
