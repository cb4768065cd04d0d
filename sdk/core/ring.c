/* ring: SPSC chunk ring carrying PCM from the capture thread to the network thread. */
#include "ring.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "steno/status.h"

#define CACHE_LINE 64

/* Written by the producer before the release store of `written` that
 * publishes the chunk; read by the consumer after an acquire load of it. */
struct slot_meta {
    uint64_t first_frame;
    uint32_t frames;
};

/*
 * Four groups, each on its own cache lines, so that the producer's stores and
 * the consumer's stores never share a line: what the producer publishes, what
 * only it touches, and the same two for the consumer. Every atomic has exactly
 * one writer; the counters are atomics only so that stats can be read from
 * any thread (relaxed: they order nothing).
 */
struct steno__ring {
    /* immutable after create */
    alignas(CACHE_LINE) steno_allocator alloc;
    void *raw; /* what the allocator returned; the ring sits at the next cache line inside it */
    struct slot_meta *meta;
    uint8_t *data;
    steno__range *dq; /* producer -> consumer queue of drop ranges */
    uint32_t capacity;
    uint32_t nslots; /* capacity + 1: one slot is always the producer's open chunk */
    uint32_t chunk_frames;
    uint32_t frame_bytes;
    uint32_t chunk_bytes;

    /* producer publishes */
    alignas(CACHE_LINE) _Atomic uint64_t written;
    _Atomic uint64_t drop_head;
    _Atomic uint64_t frames_in;
    _Atomic uint64_t chunks_published;
    _Atomic uint64_t frames_dropped;
    _Atomic uint64_t chunks_dropped;
    _Atomic uint64_t ranges_merged;

    /* producer private */
    alignas(CACHE_LINE) uint64_t p_written;
    uint64_t p_frames_in;
    uint64_t p_drop_head;
    uint32_t open_frames; /* frames in the open chunk, slot p_written % nslots */
    int pend_valid;       /* a drop range not yet in the queue: still the producer's to extend */
    steno__range pend;

    /* consumer publishes */
    alignas(CACHE_LINE) _Atomic uint64_t acked;
    _Atomic uint64_t drop_tail;
    _Atomic uint64_t frames_evicted;
    _Atomic uint64_t chunks_evicted;
    _Atomic uint64_t frames_acked;
    _Atomic uint64_t chunks_acked;

    /* consumer private */
    alignas(CACHE_LINE) uint64_t c_acked;
    uint64_t sent;
    uint64_t c_drop_tail;
};

/* A counter with a single writer: no read-modify-write needed. */
static void bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static uint64_t rd(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static int add_size(size_t *acc, size_t n)
{
    if (*acc > SIZE_MAX - n)
        return -1;
    *acc += n;
    return 0;
}

int steno__ring_create(steno__ring **out, const steno_allocator *a, uint32_t capacity,
                       uint32_t chunk_frames, uint32_t frame_bytes)
{
    if (!out)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    if (capacity == 0 || capacity == UINT32_MAX || chunk_frames == 0 || frame_bytes == 0)
        return STENO_ERR_INVALID_ARG;
    uint64_t chunk_bytes = (uint64_t)chunk_frames * frame_bytes;
    if (chunk_bytes > UINT32_MAX)
        return STENO_ERR_INVALID_ARG;
    uint32_t nslots = capacity + 1;

    size_t meta_size =
        sizeof(struct slot_meta) * (size_t)nslots; /* cannot overflow: nslots < 2^32 */
    size_t dq_size = sizeof(steno__range) * STENO__RING_DROP_QUEUE;
    if ((uint64_t)nslots > SIZE_MAX / chunk_bytes)
        return STENO_ERR_INVALID_ARG;
    size_t data_size = (size_t)nslots * (size_t)chunk_bytes;
    size_t total = 0;
    if (add_size(&total, sizeof(steno__ring)) || add_size(&total, CACHE_LINE - 1) ||
        add_size(&total, meta_size) || add_size(&total, dq_size) || add_size(&total, data_size))
        return STENO_ERR_INVALID_ARG;

    void *raw = steno__alloc(a, total);
    if (!raw)
        return STENO_ERR_NOMEM;
    /* The allocator promises only max_align_t; the cursors need whole lines. */
    uintptr_t base = ((uintptr_t)raw + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1);
    steno__ring *r = (steno__ring *)base;
    memset(r, 0, sizeof(*r));
    if (a)
        r->alloc = *a;
    r->raw = raw;
    uint8_t *p = (uint8_t *)(r + 1);
    r->meta = (struct slot_meta *)p;
    p += meta_size;
    r->dq = (steno__range *)p;
    p += dq_size;
    r->data = p;
    memset(r->meta, 0, meta_size);
    memset(r->dq, 0, dq_size);
    /* Touch every audio page now: a page the producer touched first would be a kernel
     * allocation (page fault, under the mmap lock) on the capture thread. */
    memset(r->data, 0, data_size);
    r->capacity = capacity;
    r->nslots = nslots;
    r->chunk_frames = chunk_frames;
    r->frame_bytes = frame_bytes;
    r->chunk_bytes = (uint32_t)chunk_bytes;
    atomic_init(&r->written, 0);
    atomic_init(&r->drop_head, 0);
    atomic_init(&r->frames_in, 0);
    atomic_init(&r->chunks_published, 0);
    atomic_init(&r->frames_dropped, 0);
    atomic_init(&r->chunks_dropped, 0);
    atomic_init(&r->ranges_merged, 0);
    atomic_init(&r->acked, 0);
    atomic_init(&r->drop_tail, 0);
    atomic_init(&r->frames_evicted, 0);
    atomic_init(&r->chunks_evicted, 0);
    atomic_init(&r->frames_acked, 0);
    atomic_init(&r->chunks_acked, 0);
    *out = r;
    return STENO_OK;
}

void steno__ring_destroy(steno__ring *r)
{
    if (!r)
        return;
    steno_allocator a = r->alloc;
    steno__free(&a, r->raw);
}

uint32_t steno__ring_capacity(const steno__ring *r)
{
    return r->capacity;
}

uint32_t steno__ring_chunk_frames(const steno__ring *r)
{
    return r->chunk_frames;
}

uint32_t steno__ring_frame_bytes(const steno__ring *r)
{
    return r->frame_bytes;
}

/* ---- producer ---- */

/* Moves the producer's pending drop range into the queue if there is room.
 * Once published the producer never touches that entry again, so the
 * consumer may read it without any further synchronisation. */
static void publish_pending(steno__ring *r)
{
    if (!r->pend_valid)
        return;
    uint64_t tail = atomic_load_explicit(&r->drop_tail, memory_order_acquire);
    if (r->p_drop_head - tail >= STENO__RING_DROP_QUEUE)
        return;
    r->dq[r->p_drop_head % STENO__RING_DROP_QUEUE] = r->pend;
    r->p_drop_head++;
    atomic_store_explicit(&r->drop_head, r->p_drop_head, memory_order_release);
    r->pend_valid = 0;
}

static void record_drop(steno__ring *r, uint64_t first, uint32_t frames)
{
    uint64_t last = first + frames - 1;
    bump(&r->frames_dropped, frames);
    bump(&r->chunks_dropped, 1);
    if (r->pend_valid && r->pend.last_frame + 1 == first) {
        r->pend.last_frame = last;
        r->pend.frames += frames;
        return;
    }
    publish_pending(r);
    if (r->pend_valid) {
        /* Queue full and not adjacent: coalesce, exact at both ends and in count. */
        r->pend.last_frame = last;
        r->pend.frames += frames;
        bump(&r->ranges_merged, 1);
        return;
    }
    r->pend.first_frame = first;
    r->pend.last_frame = last;
    r->pend.frames = frames;
    r->pend_valid = 1;
}

/* Publishes the open chunk, or drops it when the ring holds `capacity`
 * chunks. Returns 1 when it dropped. */
static int publish_open(steno__ring *r)
{
    uint32_t frames = r->open_frames;
    uint64_t first = r->p_frames_in - frames;
    r->open_frames = 0;
    /* Acquire pairs with the consumer's release of `acked`: once we see a
     * chunk released, the consumer has finished reading its slot, which is
     * what lets the next open chunk (slot p_written + 1) be overwritten. */
    uint64_t acked = atomic_load_explicit(&r->acked, memory_order_acquire);
    if (r->p_written - acked >= r->capacity) {
        record_drop(r, first, frames);
        return 1;
    }
    struct slot_meta *m = &r->meta[r->p_written % r->nslots];
    m->first_frame = first;
    m->frames = frames;
    r->p_written++;
    atomic_store_explicit(&r->written, r->p_written, memory_order_release);
    bump(&r->chunks_published, 1);
    return 0;
}

int steno__ring_write(steno__ring *r, const void *pcm, size_t nbytes)
{
    if (!r || (nbytes && !pcm))
        return STENO_ERR_INVALID_ARG;
    if (nbytes % r->frame_bytes)
        return STENO_ERR_FORMAT;
    const uint8_t *src = pcm;
    size_t left = nbytes / r->frame_bytes;
    int dropped = 0;
    while (left) {
        uint32_t room = r->chunk_frames - r->open_frames;
        uint32_t take = left < room ? (uint32_t)left : room;
        uint8_t *dst = r->data + (size_t)(r->p_written % r->nslots) * r->chunk_bytes +
                       (size_t)r->open_frames * r->frame_bytes;
        memcpy(dst, src, (size_t)take * r->frame_bytes);
        src += (size_t)take * r->frame_bytes;
        left -= take;
        r->open_frames += take;
        r->p_frames_in += take;
        if (r->open_frames == r->chunk_frames)
            dropped |= publish_open(r);
    }
    atomic_store_explicit(&r->frames_in, r->p_frames_in, memory_order_relaxed);
    publish_pending(r);
    return dropped ? STENO_ERR_FULL : STENO_OK;
}

int steno__ring_flush(steno__ring *r)
{
    if (!r)
        return STENO_ERR_INVALID_ARG;
    int dropped = 0;
    if (r->open_frames)
        dropped = publish_open(r);
    publish_pending(r);
    return dropped ? STENO_ERR_FULL : STENO_OK;
}

int steno__ring_drop_held(const steno__ring *r)
{
    return r->pend_valid;
}

uint64_t steno__ring_frames_in(const steno__ring *r)
{
    return rd(&r->frames_in);
}

/* ---- consumer ---- */

uint64_t steno__ring_written(const steno__ring *r)
{
    return atomic_load_explicit((_Atomic uint64_t *)&r->written, memory_order_acquire);
}

uint64_t steno__ring_sent(const steno__ring *r)
{
    return r->sent;
}

uint64_t steno__ring_acked(const steno__ring *r)
{
    return r->c_acked;
}

int steno__ring_peek(const steno__ring *r, uint64_t seq, steno__chunk *out)
{
    if (!r || !out)
        return STENO_ERR_INVALID_ARG;
    if (seq < r->c_acked || seq >= steno__ring_written(r))
        return STENO_ERR_AGAIN;
    size_t slot = (size_t)(seq % r->nslots);
    const struct slot_meta *m = &r->meta[slot];
    out->seq = seq;
    out->first_frame = m->first_frame;
    out->frames = m->frames;
    out->bytes = m->frames * r->frame_bytes;
    out->data = r->data + slot * r->chunk_bytes;
    return STENO_OK;
}

int steno__ring_next_to_send(const steno__ring *r, steno__chunk *out)
{
    if (!r)
        return STENO_ERR_INVALID_ARG;
    return steno__ring_peek(r, r->sent, out);
}

void steno__ring_mark_sent(steno__ring *r, uint64_t seq)
{
    if (seq >= r->c_acked && seq < steno__ring_written(r))
        r->sent = seq + 1;
}

/* Releases chunks [c_acked, c_acked + n) to the producer. */
static void release(steno__ring *r, uint64_t n)
{
    r->c_acked += n;
    /* Release: our reads of those slots happen before the producer reuses them. */
    atomic_store_explicit(&r->acked, r->c_acked, memory_order_release);
    if (r->sent < r->c_acked)
        r->sent = r->c_acked;
}

uint32_t steno__ring_ack_through(steno__ring *r, uint64_t frame)
{
    uint64_t w = steno__ring_written(r);
    uint64_t n = 0, frames = 0;
    while (r->c_acked + n < w) {
        const struct slot_meta *m = &r->meta[(r->c_acked + n) % r->nslots];
        if (m->first_frame + m->frames > frame)
            break;
        frames += m->frames;
        n++;
    }
    if (n) {
        release(r, n);
        bump(&r->chunks_acked, n);
        bump(&r->frames_acked, frames);
    }
    return (uint32_t)n; /* n <= capacity */
}

void steno__ring_rewind(steno__ring *r)
{
    r->sent = r->c_acked;
}

int steno__ring_evict(steno__ring *r, uint32_t min_free, steno__range *lost)
{
    if (!r || !lost)
        return STENO_ERR_INVALID_ARG;
    if (min_free > r->capacity)
        min_free = r->capacity;
    uint64_t w = steno__ring_written(r);
    uint64_t used = w - r->c_acked;
    uint64_t free_slots = r->capacity - used;
    if (free_slots >= min_free)
        return STENO_ERR_AGAIN;
    uint64_t need = min_free - free_slots; /* <= used, so at least one chunk is there */
    const struct slot_meta *m = &r->meta[r->c_acked % r->nslots];
    uint64_t first = m->first_frame;
    uint64_t end = first + m->frames;
    uint64_t n = 1;
    while (n < need) {
        m = &r->meta[(r->c_acked + n) % r->nslots];
        if (m->first_frame != end)
            break; /* a producer drop gap: report it as a separate range */
        end += m->frames;
        n++;
    }
    release(r, n);
    bump(&r->chunks_evicted, n);
    bump(&r->frames_evicted, end - first);
    lost->first_frame = first;
    lost->last_frame = end - 1;
    lost->frames = end - first;
    return STENO_OK;
}

int steno__ring_take_dropped(steno__ring *r, steno__range *out)
{
    if (!r || !out)
        return STENO_ERR_INVALID_ARG;
    uint64_t head = atomic_load_explicit(&r->drop_head, memory_order_acquire);
    if (r->c_drop_tail == head)
        return STENO_ERR_AGAIN;
    *out = r->dq[r->c_drop_tail++ % STENO__RING_DROP_QUEUE];
    /* One drop run split across write calls comes out whole. */
    while (r->c_drop_tail != head) {
        const steno__range *n = &r->dq[r->c_drop_tail % STENO__RING_DROP_QUEUE];
        if (n->first_frame != out->last_frame + 1)
            break;
        out->last_frame = n->last_frame;
        out->frames += n->frames;
        r->c_drop_tail++;
    }
    atomic_store_explicit(&r->drop_tail, r->c_drop_tail, memory_order_release);
    return STENO_OK;
}

void steno__ring_stats_get(const steno__ring *r, steno__ring_stats *out)
{
    out->frames_in = rd(&r->frames_in);
    out->chunks_published = rd(&r->chunks_published);
    out->frames_dropped = rd(&r->frames_dropped);
    out->chunks_dropped = rd(&r->chunks_dropped);
    out->drop_ranges_merged = rd(&r->ranges_merged);
    out->frames_evicted = rd(&r->frames_evicted);
    out->chunks_evicted = rd(&r->chunks_evicted);
    out->frames_acked = rd(&r->frames_acked);
    out->chunks_acked = rd(&r->chunks_acked);
}
