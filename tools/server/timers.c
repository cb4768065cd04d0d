/* timers: a binary min-heap of embedded timers ordered by (due, seq); see timers.h. */
#include "timers.h"

#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "util.h"

static struct {
    srv_timer **v; /* v[0..n) */
    uint32_t n, cap, reserved;
    uint64_t next_seq;
    int64_t armed_due; /* the loop timer's deadline; 0: not armed */
} H;

int srv_timers_reserve(uint32_t more)
{
    if (more > UINT32_MAX - H.reserved)
        return -1;
    uint32_t want = H.reserved + more;
    if (want > H.cap) {
        /* geometric: connections come one at a time */
        uint32_t cap = H.cap ? H.cap : 64;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        srv_timer **v = realloc(H.v, (size_t)cap * sizeof(*v));
        if (!v)
            return -1;
        H.v = v;
        H.cap = cap;
    }
    H.reserved = want;
    return 0;
}

void srv_timers_unreserve(uint32_t fewer)
{
    H.reserved = fewer > H.reserved ? 0 : H.reserved - fewer;
}

static int before(const srv_timer *x, const srv_timer *y)
{
    return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static void place(uint32_t i, srv_timer *t)
{
    H.v[i] = t;
    t->pos = i + 1;
}

static void sift_up(uint32_t i)
{
    srv_timer *t = H.v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, H.v[parent]))
            break;
        place(i, H.v[parent]);
        i = parent;
    }
    place(i, t);
}

static void sift_down(uint32_t i)
{
    srv_timer *t = H.v[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const srv_timer *best = t;
        if (l < H.n && before(H.v[l], best)) {
            m = l;
            best = H.v[l];
        }
        if (r < H.n && before(H.v[r], best))
            m = r;
        if (m == i)
            break;
        place(i, H.v[m]);
        i = m;
    }
    place(i, t);
}

static void restore(uint32_t i)
{
    if (i > 0 && before(H.v[i], H.v[(i - 1) / 2]))
        sift_up(i);
    else
        sift_down(i);
}

static void remove_at(uint32_t i)
{
    H.v[i]->pos = 0;
    H.n--;
    if (i == H.n)
        return;
    H.v[i] = H.v[H.n];
    restore(i);
}

/* One loop timer for the earliest deadline, re-armed only when that deadline changes. */
static void rearm(void)
{
    if (!H.n) {
        if (H.armed_due) {
            srv_loop_timer_cancel();
            H.armed_due = 0;
        }
        return;
    }
    int64_t due = H.v[0]->due;
    if (due == H.armed_due)
        return;
    H.armed_due = due;
    int64_t in = due - srv_mono_us();
    srv_loop_timer_arm(in > 0 ? in : 0);
}

void srv_timer_set(srv_timer *t, srv_timer_fn fn, int64_t in_us)
{
    t->fn = fn;
    t->due = srv_mono_us() + (in_us > 0 ? in_us : 0);
    t->seq = H.next_seq++;
    if (t->pos) {
        restore(t->pos - 1);
    } else {
        /* Owners reserve room first (srv_timers_reserve); one that did not still gets a slot
         * if memory allows, and a timer that cannot be kept is not worth running on without. */
        if (H.n == H.cap && srv_timers_reserve(1))
            abort();
        H.v[H.n] = t;
        t->pos = ++H.n;
        sift_up(H.n - 1);
    }
    rearm();
}

void srv_timer_cancel(srv_timer *t)
{
    if (!t->pos)
        return;
    remove_at(t->pos - 1);
    rearm();
}

void srv_timers_run(void)
{
    /* The loop timer has fired: whatever is armed next must be armed anew. */
    H.armed_due = 0;
    int64_t now = srv_mono_us();
    /* A callback may set timers (its own included): each pop reads the heap afresh, and one
     * set for now or earlier runs on the next turn, so a callback cannot loop forever here. */
    uint32_t budget = H.n;
    while (H.n && H.v[0]->due <= now && budget--) {
        srv_timer *t = H.v[0];
        remove_at(0);
        t->fn(t);
    }
    H.armed_due = 0;
    rearm();
}

uint32_t srv_timers_count(void)
{
    return H.n;
}

void srv_timers_free(void)
{
    for (uint32_t i = 0; i < H.n; i++)
        H.v[i]->pos = 0;
    free(H.v);
    memset(&H, 0, sizeof(H));
}
