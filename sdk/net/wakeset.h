/* wakeset: which sessions asked the network thread for attention since it last looked, so a wake
 * costs the sessions that asked, not every session of the client. */
#ifndef STENO_NET_WAKESET_H
#define STENO_NET_WAKESET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "steno/alloc.h"

/*
 * Every session holds a slot: one bit in a page of atomic words. A capture
 * thread that publishes a chunk (or an app thread that queues a command) sets
 * its session's bit with one atomic OR, which is wait-free, and then wakes the
 * network thread (coalesced: see steno__client_wake). The network thread
 * exchanges each word with 0 and services the sessions whose bits were set:
 * a wake costs one load per 64 sessions plus the work of the sessions that
 * asked. Before this, every wake visited every session.
 *
 * Pages hold 4,096 slots and are never freed or moved while the client
 * lives, so a session's word pointer stays valid for its whole life. Slots
 * are taken (steno_session_open) and given back (session gone) under the
 * client's lock; owners are bound and read by the network thread only.
 */
#define STENO__WAKESET_PAGE_SLOTS 4096u
#define STENO__WAKESET_MAX_PAGES 256u /* 1,048,576 sessions per client */

typedef struct steno__wakepage {
    atomic_uint_fast64_t bits[STENO__WAKESET_PAGE_SLOTS / 64];
    void *owner[STENO__WAKESET_PAGE_SLOTS]; /* network thread */
} steno__wakepage;

typedef struct steno__wakeset {
    const steno_allocator *a;
    _Atomic(steno__wakepage *) pages[STENO__WAKESET_MAX_PAGES];
    atomic_uint npages;
    uint32_t *free_slots; /* lock: a stack, lowest slot on top */
    uint32_t nfree, capfree;
} steno__wakeset;

void steno__wakeset_init(steno__wakeset *w, const steno_allocator *a);
void steno__wakeset_free(steno__wakeset *w);

/* Client lock held. A free slot (adding a page when none is left): STENO_OK, STENO_ERR_NOMEM,
 * or STENO_ERR_FULL past STENO__WAKESET_MAX_PAGES pages. */
int steno__wakeset_take(steno__wakeset *w, uint32_t *slot);
/* Client lock held. The slot is free again (its owner must be unbound). */
void steno__wakeset_give(steno__wakeset *w, uint32_t slot);

/* The word and bit a slot's owner sets to ask for attention. */
atomic_uint_fast64_t *steno__wakeset_word(steno__wakeset *w, uint32_t slot, uint64_t *mask);
/* Any thread: ask for attention (wait-free; the caller then wakes the network thread). */
static inline void steno__wakeset_mark(atomic_uint_fast64_t *word, uint64_t mask)
{
    /* seq_cst, like the wake flag: a drain that starts after the wake flag was seen set
     * finds this bit */
    atomic_fetch_or_explicit(word, mask, memory_order_seq_cst);
}

/* Network thread: owner (NULL: none) answers for the slot's bit from now on. */
void steno__wakeset_bind(steno__wakeset *w, uint32_t slot, void *owner);

/* Network thread: clears every set bit and calls fn(owner, ctx) for each bound owner (bits of
 * unbound slots are dropped: a session is serviced once when it is adopted). fn may unbind
 * and give back its own slot. Returns how many owners were called. */
uint32_t steno__wakeset_drain(steno__wakeset *w, void (*fn)(void *owner, void *ctx), void *ctx);

#endif
