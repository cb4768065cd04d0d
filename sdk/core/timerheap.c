/* timerheap: a binary min-heap of embedded timer nodes, ordered by (due, seq). */
#include "timerheap.h"

#include <string.h>

#include "alloc.h"

void steno__timerheap_init(steno__timerheap *h, const steno_allocator *a)
{
    memset(h, 0, sizeof *h);
    h->a = a;
}

void steno__timerheap_free(steno__timerheap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        h->v[i]->pos = 0;
        h->v[i]->heap = NULL;
    }
    steno__free(h->a, h->v);
    h->v = NULL;
    h->n = h->cap = h->reserved = 0;
}

int steno__timerheap_reserve(steno__timerheap *h, uint32_t more)
{
    if (more > UINT32_MAX - h->reserved)
        return STENO_ERR_NOMEM;
    uint32_t want = h->reserved + more;
    if (want > h->cap) {
        /* grow geometrically: owners come and go one at a time */
        uint32_t cap = h->cap ? h->cap : 16;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        steno__tnode **v = steno__calloc(h->a, cap, sizeof *v);
        if (!v)
            return STENO_ERR_NOMEM;
        if (h->n)
            memcpy(v, h->v, h->n * sizeof *v);
        steno__free(h->a, h->v);
        h->v = v;
        h->cap = cap;
    }
    h->reserved = want;
    return STENO_OK;
}

void steno__timerheap_unreserve(steno__timerheap *h, uint32_t fewer)
{
    h->reserved = fewer > h->reserved ? 0 : h->reserved - fewer;
}

static bool before(const steno__tnode *x, const steno__tnode *y)
{
    return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static void place(steno__timerheap *h, uint32_t i, steno__tnode *t)
{
    h->v[i] = t;
    t->pos = i + 1;
}

static void sift_up(steno__timerheap *h, uint32_t i)
{
    steno__tnode *t = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(steno__timerheap *h, uint32_t i)
{
    steno__tnode *t = h->v[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const steno__tnode *best = t;
        if (l < h->n && before(h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (r < h->n && before(h->v[r], best))
            m = r;
        if (m == i)
            break;
        place(h, i, h->v[m]);
        i = m;
    }
    place(h, i, t);
}

/* The node at slot i changed (or moved in): up if it now precedes its parent, else down. */
static void restore(steno__timerheap *h, uint32_t i)
{
    if (i > 0 && before(h->v[i], h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

/* Takes out the node at slot i and restores the heap around the slot. */
static void remove_at(steno__timerheap *h, uint32_t i)
{
    steno__tnode *t = h->v[i];
    t->pos = 0;
    t->heap = NULL;
    h->n--;
    if (i == h->n)
        return;
    h->v[i] = h->v[h->n];
    restore(h, i);
}

int steno__timerheap_set(steno__timerheap *h, steno__tnode *t, uint64_t due)
{
    if (t->pos && t->heap != h)
        steno__tnode_cancel(t);
    if (!t->pos && h->n == h->cap)
        return STENO_ERR_FULL;
    t->due = due;
    t->seq = h->next_seq++;
    if (t->pos) {
        /* moved: a later deadline or a later seq only ever sinks it */
        restore(h, t->pos - 1);
        return STENO_OK;
    }
    t->heap = h;
    h->v[h->n] = t;
    t->pos = ++h->n;
    sift_up(h, h->n - 1);
    return STENO_OK;
}

void steno__tnode_cancel(steno__tnode *t)
{
    if (t->pos && t->heap)
        remove_at(t->heap, t->pos - 1);
}

steno__tnode *steno__timerheap_peek(const steno__timerheap *h)
{
    return h->n ? h->v[0] : NULL;
}

steno__tnode *steno__timerheap_pop_due(steno__timerheap *h, uint64_t now)
{
    if (!h->n || h->v[0]->due > now)
        return NULL;
    steno__tnode *t = h->v[0];
    remove_at(h, 0);
    return t;
}

uint32_t steno__timerheap_count(const steno__timerheap *h)
{
    return h->n;
}
