/* wakeset: per-session attention bits in pages of atomic words. */
#include "wakeset.h"

#include <string.h>

#include "alloc.h"
#include "steno/status.h"

void steno__wakeset_init(steno__wakeset *w, const steno_allocator *a)
{
    memset(w, 0, sizeof *w);
    w->a = a;
}

void steno__wakeset_free(steno__wakeset *w)
{
    unsigned n = atomic_load(&w->npages);
    for (unsigned i = 0; i < n; i++)
        steno__free(w->a, atomic_load(&w->pages[i]));
    steno__free(w->a, w->free_slots);
    memset(w, 0, sizeof *w);
}

/* One more page: its slots go on the free stack, lowest on top. */
static int add_page(steno__wakeset *w)
{
    unsigned n = atomic_load_explicit(&w->npages, memory_order_relaxed);
    if (n == STENO__WAKESET_MAX_PAGES)
        return STENO_ERR_FULL;
    /* room for every slot of every page: all may be free again at once */
    uint32_t total = (n + 1) * STENO__WAKESET_PAGE_SLOTS;
    if (w->capfree < total) {
        uint32_t cap = total;
        uint32_t *v = steno__calloc(w->a, cap, sizeof *v);
        if (!v)
            return STENO_ERR_NOMEM;
        if (w->nfree)
            memcpy(v, w->free_slots, w->nfree * sizeof *v);
        steno__free(w->a, w->free_slots);
        w->free_slots = v;
        w->capfree = cap;
    }
    steno__wakepage *p = steno__calloc(w->a, 1, sizeof *p);
    if (!p)
        return STENO_ERR_NOMEM;
    for (uint32_t i = 0; i < STENO__WAKESET_PAGE_SLOTS; i++)
        atomic_init(&p->bits[i / 64], 0);
    /* the new slots go under the ones still free: those are lower */
    memmove(w->free_slots + STENO__WAKESET_PAGE_SLOTS, w->free_slots, w->nfree * sizeof(uint32_t));
    for (uint32_t i = 0; i < STENO__WAKESET_PAGE_SLOTS; i++)
        w->free_slots[i] = n * STENO__WAKESET_PAGE_SLOTS + (STENO__WAKESET_PAGE_SLOTS - 1 - i);
    w->nfree += STENO__WAKESET_PAGE_SLOTS;
    atomic_store_explicit(&w->pages[n], p, memory_order_release);
    atomic_store_explicit(&w->npages, n + 1, memory_order_release);
    return STENO_OK;
}

int steno__wakeset_take(steno__wakeset *w, uint32_t *slot)
{
    if (!w->nfree) {
        int rc = add_page(w);
        if (rc != STENO_OK)
            return rc;
    }
    *slot = w->free_slots[--w->nfree];
    return STENO_OK;
}

void steno__wakeset_give(steno__wakeset *w, uint32_t slot)
{
    /* capfree covers every slot of every page, so there is always room */
    w->free_slots[w->nfree++] = slot;
}

static steno__wakepage *page_of(steno__wakeset *w, uint32_t slot)
{
    return atomic_load_explicit(&w->pages[slot / STENO__WAKESET_PAGE_SLOTS], memory_order_acquire);
}

atomic_uint_fast64_t *steno__wakeset_word(steno__wakeset *w, uint32_t slot, uint64_t *mask)
{
    uint32_t i = slot % STENO__WAKESET_PAGE_SLOTS;
    *mask = (uint64_t)1 << (i % 64);
    return &page_of(w, slot)->bits[i / 64];
}

void steno__wakeset_bind(steno__wakeset *w, uint32_t slot, void *owner)
{
    page_of(w, slot)->owner[slot % STENO__WAKESET_PAGE_SLOTS] = owner;
}

uint32_t steno__wakeset_drain(steno__wakeset *w, void (*fn)(void *owner, void *ctx), void *ctx)
{
    uint32_t called = 0;
    unsigned n = atomic_load_explicit(&w->npages, memory_order_acquire);
    for (unsigned pi = 0; pi < n; pi++) {
        steno__wakepage *p = atomic_load_explicit(&w->pages[pi], memory_order_acquire);
        for (uint32_t wi = 0; wi < STENO__WAKESET_PAGE_SLOTS / 64; wi++) {
            if (!atomic_load_explicit(&p->bits[wi], memory_order_seq_cst))
                continue; /* the common case: one load per 64 sessions */
            uint64_t bits = atomic_exchange_explicit(&p->bits[wi], 0, memory_order_seq_cst);
            while (bits) {
                uint32_t b = (uint32_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                void *owner = p->owner[wi * 64 + b];
                if (owner) {
                    fn(owner, ctx);
                    called++;
                }
            }
        }
    }
    return called;
}
