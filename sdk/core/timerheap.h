/* timerheap: every pending timer of a client in one binary min-heap, so scheduling, cancelling
 * and firing cost O(log n) however many sessions there are. */
#ifndef STENO_CORE_TIMERHEAP_H
#define STENO_CORE_TIMERHEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "steno/alloc.h"
#include "steno/status.h"

/*
 * Why not the event loop's own timer list: libwebsockets 4.1 keeps its timers
 * in a sorted linked list, so each insertion walks past every earlier
 * deadline. A session re-arms its pacing and liveness timers several times a
 * second; at 1,000 sessions that walk is thousands of comparisons per chunk.
 * The engine keeps its timers here and arms one lws timer for the earliest.
 *
 * A node is embedded in its owner (session, backfill slot) and is never
 * copied while pending. Deadlines are opaque integers (the engine uses
 * microseconds of a monotonic clock); equal deadlines fire in the order they
 * were set. The heap has no clock of its own and does not allocate except in
 * steno__timerheap_reserve, so setting a node can never fail.
 *
 * Not thread-safe: the client's network thread owns it.
 */
typedef struct steno__timerheap steno__timerheap;

typedef struct steno__tnode {
    uint64_t due;
    uint64_t seq;           /* order of setting: ties fire first-set first */
    uint32_t pos;           /* 1-based slot in the heap; 0 = not pending */
    steno__timerheap *heap; /* where it is pending (so cancel needs no other handle) */
} steno__tnode;

struct steno__timerheap {
    const steno_allocator *a;
    steno__tnode **v; /* v[0..n) */
    uint32_t n, cap;
    uint32_t reserved; /* room promised to owners; n <= reserved <= cap */
    uint64_t next_seq;
};

void steno__timerheap_init(steno__timerheap *h, const steno_allocator *a);
void steno__timerheap_free(steno__timerheap *h);

/* Room for `more` nodes beyond those the heap may already hold pending: each owner reserves
 * for all its timers before any can be set. STENO_OK or STENO_ERR_NOMEM (nothing changed). */
int steno__timerheap_reserve(steno__timerheap *h, uint32_t more);
/* Gives back reserved room (an owner that will never set its timers again). */
void steno__timerheap_unreserve(steno__timerheap *h, uint32_t fewer);

/* Makes t pending at `due` (moving it if it already was): STENO_OK, or STENO_ERR_FULL when t
 * is new and the heap is full, which means its owner did not reserve room for it (a bug). */
int steno__timerheap_set(steno__timerheap *h, steno__tnode *t, uint64_t due);
/* t is no longer pending (a no-op when it is not). */
void steno__tnode_cancel(steno__tnode *t);
static inline bool steno__tnode_pending(const steno__tnode *t)
{
    return t->pos != 0;
}

/* The earliest pending node, or NULL. */
steno__tnode *steno__timerheap_peek(const steno__timerheap *h);
/* Removes and returns the earliest node if it is due at or before now, else NULL. */
steno__tnode *steno__timerheap_pop_due(steno__timerheap *h, uint64_t now);
uint32_t steno__timerheap_count(const steno__timerheap *h);

#endif
