/* fuzz_ring: any single-threaded sequence of ring operations loses no frame and corrupts none. */
#include "fuzz_common.h"
#include "ring.h"
#include "steno/status.h"

/*
 * Input: capacity, chunk size and frame size, then a program of producer and
 * consumer operations (write any length, flush, send, mark_sent anywhere,
 * ack through any frame, rewind, evict, take drop ranges, peek anywhere),
 * run on one thread. The PCM written is a known pattern of the frame index,
 * and a model predicts the producer's drops.
 *
 * Properties, after every operation:
 *  - acked <= sent <= written, written - acked <= capacity, acked and written
 *    never move backwards; peek answers exactly for acked <= seq < written;
 *  - accounting: frames in = acked + in the ring + evicted + dropped + the
 *    producer's open chunk, and chunks published = acked + evicted + held;
 *  - chunks in the ring are in stream order, 1..chunk_frames frames each,
 *    and carry exactly the bytes written for their frames;
 *  - writes and flushes drop exactly the chunks the model predicts (ring
 *    full at publish), and say STENO_ERR_FULL exactly then; a write of a
 *    partial frame is refused and changes nothing;
 *  - ack_through releases exactly the leading chunks that end at or before
 *    the frame; evict frees exactly up to min_free, stopping at a drop gap,
 *    and reports the exact range of the chunks it released;
 *  - drop ranges are in order, disjoint and inside the stream;
 *  - invalid sizes and NULL arguments are refused, changing nothing.
 * At the end (after flushing and draining), every frame ever written is
 * accounted for exactly once: acknowledged, evicted, dropped or still held.
 */

#define MAX_FRAMES 60000

struct model {
    uint32_t cap, cf, fb;
    uint64_t frames_in;
    uint32_t open;
    uint64_t written, acked; /* last seen, for monotonicity */
    uint64_t evicted_frames, dropped_seen;
    uint64_t last_drop_end; /* one past the last dropped frame taken */
    uint8_t *cover;         /* per frame: how many times accounted for */
    bool merged;
};

static uint8_t pattern(uint64_t frame, uint32_t byte)
{
    return (uint8_t)(frame * 131u + byte * 7u + (frame >> 8) + 1);
}

static void cover(struct model *m, uint64_t first, uint64_t n)
{
    FUZZ_CHECK(first + n <= m->frames_in, "frames [%llu, +%llu) beyond the %llu written",
               (unsigned long long)first, (unsigned long long)n, (unsigned long long)m->frames_in);
    for (uint64_t f = first; f < first + n; f++)
        m->cover[f]++;
}

/* The chunks held now, checked; returns how many (<= capacity) into out. */
static uint32_t held(const steno__ring *r, const struct model *m, steno__chunk *out)
{
    uint64_t a = steno__ring_acked(r), w = steno__ring_written(r);
    uint32_t n = 0;
    uint64_t prev_end = 0;
    for (uint64_t s = a; s < w; s++, n++) {
        steno__chunk c;
        FUZZ_CHECK(steno__ring_peek(r, s, &c) == STENO_OK, "peek %llu in [%llu, %llu)",
                   (unsigned long long)s, (unsigned long long)a, (unsigned long long)w);
        FUZZ_CHECK(c.seq == s && c.frames >= 1 && c.frames <= m->cf && c.bytes == c.frames * m->fb,
                   "chunk %llu: %u frames, %u bytes", (unsigned long long)s, c.frames, c.bytes);
        FUZZ_CHECK(n == 0 || c.first_frame >= prev_end, "chunk %llu starts at %llu before %llu",
                   (unsigned long long)s, (unsigned long long)c.first_frame,
                   (unsigned long long)prev_end);
        FUZZ_CHECK(c.first_frame + c.frames <= m->frames_in, "chunk beyond the stream");
        for (uint32_t f = 0; f < c.frames; f++)
            for (uint32_t b = 0; b < m->fb; b++)
                FUZZ_CHECK(c.data[f * m->fb + b] == pattern(c.first_frame + f, b),
                           "chunk %llu frame %llu byte %u corrupted", (unsigned long long)s,
                           (unsigned long long)(c.first_frame + f), b);
        prev_end = c.first_frame + c.frames;
        if (out)
            out[n] = c;
    }
    return n;
}

static void invariants(const steno__ring *r, struct model *m)
{
    uint64_t a = steno__ring_acked(r), s = steno__ring_sent(r), w = steno__ring_written(r);
    FUZZ_CHECK(a <= s && s <= w && w - a <= m->cap, "acked %llu sent %llu written %llu",
               (unsigned long long)a, (unsigned long long)s, (unsigned long long)w);
    FUZZ_CHECK(a >= m->acked && w >= m->written, "a cursor moved backwards");
    m->acked = a;
    m->written = w;
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    FUZZ_CHECK(st.frames_in == m->frames_in && steno__ring_frames_in(r) == m->frames_in,
               "frames_in %llu, model %llu", (unsigned long long)st.frames_in,
               (unsigned long long)m->frames_in);
    FUZZ_CHECK(st.chunks_published == w, "chunks_published %llu, written %llu",
               (unsigned long long)st.chunks_published, (unsigned long long)w);
    FUZZ_CHECK(st.chunks_acked + st.chunks_evicted + (w - a) == w, "chunk accounting");
    uint64_t in_ring = 0;
    for (uint64_t q = a; q < w; q++) {
        steno__chunk c;
        FUZZ_CHECK(steno__ring_peek(r, q, &c) == STENO_OK, "peek");
        in_ring += c.frames;
    }
    FUZZ_CHECK(st.frames_in ==
                   st.frames_acked + in_ring + st.frames_evicted + st.frames_dropped + m->open,
               "frames in %llu != acked %llu + in ring %llu + evicted %llu + dropped %llu + open "
               "%u",
               (unsigned long long)st.frames_in, (unsigned long long)st.frames_acked,
               (unsigned long long)in_ring, (unsigned long long)st.frames_evicted,
               (unsigned long long)st.frames_dropped, m->open);
    FUZZ_CHECK(st.frames_evicted == m->evicted_frames, "frames_evicted %llu, reported %llu",
               (unsigned long long)st.frames_evicted, (unsigned long long)m->evicted_frames);
    FUZZ_CHECK(steno__ring_drop_held(r) == 0 || steno__ring_drop_held(r) == 1, "drop_held");
}

/* The model's verdict on publishing the open chunk: dropped when the ring holds capacity. */
static void model_publish(struct model *m, uint64_t *w, uint64_t a, uint64_t *dropped)
{
    if (*w - a >= m->cap)
        *dropped += m->open;
    else
        (*w)++;
    m->open = 0;
}

static void op_write(steno__ring *r, struct model *m, fz_in *in)
{
    uint8_t how = fz_u8(in);
    uint64_t frames = fz_u8(in) % ((how & 1 ? 4u * m->cf : m->cf) + 1);
    if (m->frames_in + frames > MAX_FRAMES)
        frames = MAX_FRAMES - m->frames_in;
    size_t extra = (how & 0x0e) == 0x0e && m->fb > 1 ? 1 + fz_u8(in) % (m->fb - 1) : 0;
    size_t bytes = (size_t)frames * m->fb + extra;
    uint8_t *pcm = malloc(bytes ? bytes : 1);
    FUZZ_CHECK(pcm != NULL, "malloc");
    for (uint64_t f = 0; f < frames; f++)
        for (uint32_t b = 0; b < m->fb; b++)
            pcm[f * m->fb + b] = pattern(m->frames_in + f, b);
    steno__ring_stats before, after;
    steno__ring_stats_get(r, &before);
    uint64_t w = steno__ring_written(r), a = steno__ring_acked(r), dropped = 0;
    int rc = steno__ring_write(r, bytes ? pcm : (how & 0x10 ? NULL : pcm), bytes);
    free(pcm);
    steno__ring_stats_get(r, &after);
    if (extra) {
        FUZZ_CHECK(rc == STENO_ERR_FORMAT, "%zu bytes, frame %u: rc %d", bytes, m->fb, rc);
        FUZZ_CHECK(memcmp(&before, &after, sizeof before) == 0, "a refused write changed stats");
        return;
    }
    for (uint64_t left = frames; left;) {
        uint64_t take = left < m->cf - m->open ? left : m->cf - m->open;
        m->open += (uint32_t)take;
        left -= take;
        if (m->open == m->cf)
            model_publish(m, &w, a, &dropped);
    }
    m->frames_in += frames;
    FUZZ_CHECK(steno__ring_written(r) == w, "written %llu, model %llu",
               (unsigned long long)steno__ring_written(r), (unsigned long long)w);
    FUZZ_CHECK(after.frames_dropped - before.frames_dropped == dropped,
               "dropped %llu frames, model %llu",
               (unsigned long long)(after.frames_dropped - before.frames_dropped),
               (unsigned long long)dropped);
    FUZZ_CHECK(rc == (dropped ? STENO_ERR_FULL : STENO_OK), "write rc %d, dropped %llu", rc,
               (unsigned long long)dropped);
}

static void op_flush(steno__ring *r, struct model *m)
{
    steno__ring_stats before, after;
    steno__ring_stats_get(r, &before);
    uint64_t w = steno__ring_written(r), a = steno__ring_acked(r), dropped = 0;
    bool had = m->open != 0;
    int rc = steno__ring_flush(r);
    steno__ring_stats_get(r, &after);
    if (had)
        model_publish(m, &w, a, &dropped);
    FUZZ_CHECK(steno__ring_written(r) == w, "flush: written %llu, model %llu",
               (unsigned long long)steno__ring_written(r), (unsigned long long)w);
    FUZZ_CHECK(after.frames_dropped - before.frames_dropped == dropped, "flush dropped");
    FUZZ_CHECK(rc == (dropped ? STENO_ERR_FULL : STENO_OK), "flush rc %d", rc);
}

static void op_send(steno__ring *r)
{
    uint64_t s = steno__ring_sent(r), w = steno__ring_written(r);
    steno__chunk c;
    int rc = steno__ring_next_to_send(r, &c);
    if (s == w) {
        FUZZ_CHECK(rc == STENO_ERR_AGAIN, "nothing to send: rc %d", rc);
        return;
    }
    FUZZ_CHECK(rc == STENO_OK && c.seq == s, "next_to_send rc %d seq %llu, sent %llu", rc,
               (unsigned long long)c.seq, (unsigned long long)s);
    steno__ring_mark_sent(r, c.seq);
    FUZZ_CHECK(steno__ring_sent(r) == s + 1, "mark_sent");
}

static void op_mark_sent(steno__ring *r, fz_in *in)
{
    uint64_t a = steno__ring_acked(r), w = steno__ring_written(r), s = steno__ring_sent(r);
    uint64_t seq = a + fz_u8(in) % ((w - a) + 3);
    if (fz_u8(in) & 1)
        seq = seq > 2 ? seq - 2 : 0;
    steno__ring_mark_sent(r, seq);
    uint64_t s2 = steno__ring_sent(r);
    FUZZ_CHECK(s2 == (seq >= a && seq < w ? seq + 1 : s), "mark_sent(%llu): sent %llu",
               (unsigned long long)seq, (unsigned long long)s2);
}

static void op_ack(steno__ring *r, struct model *m, fz_in *in)
{
    steno__chunk ch[64];
    uint32_t n = held(r, m, ch);
    uint64_t frame;
    uint8_t how = fz_u8(in);
    if (n && how & 1) { /* around the end of some held chunk */
        const steno__chunk *c = &ch[fz_u8(in) % n];
        frame = c->first_frame + c->frames + fz_u8(in) % 3 - 1;
    } else {
        frame = fz_u32(in) % (m->frames_in + m->cf + 1);
    }
    uint64_t a = steno__ring_acked(r), s = steno__ring_sent(r);
    uint32_t expect = 0;
    while (expect < n && ch[expect].first_frame + ch[expect].frames <= frame)
        expect++;
    uint32_t got = steno__ring_ack_through(r, frame);
    FUZZ_CHECK(got == expect, "ack_through(%llu) released %u, expected %u",
               (unsigned long long)frame, got, expect);
    FUZZ_CHECK(steno__ring_acked(r) == a + got, "acked");
    FUZZ_CHECK(steno__ring_sent(r) == (s > a + got ? s : a + got), "sent after ack");
    for (uint32_t i = 0; i < got; i++)
        cover(m, ch[i].first_frame, ch[i].frames);
}

static void op_evict(steno__ring *r, struct model *m, fz_in *in)
{
    steno__chunk ch[64];
    uint32_t n = held(r, m, ch);
    uint8_t mf = fz_u8(in);
    uint32_t min_free = mf == 0xff ? UINT32_MAX : mf % (m->cap + 3);
    uint64_t a = steno__ring_acked(r), s = steno__ring_sent(r);
    uint32_t want = min_free > m->cap ? m->cap : min_free;
    uint32_t free_slots = m->cap - n;
    steno__range lost;
    int rc = steno__ring_evict(r, min_free, &lost);
    if (free_slots >= want) {
        FUZZ_CHECK(rc == STENO_ERR_AGAIN, "evict(%u) with %u free: rc %d", min_free, free_slots,
                   rc);
        return;
    }
    FUZZ_CHECK(rc == STENO_OK, "evict(%u) with %u free: rc %d", min_free, free_slots, rc);
    uint32_t k = 1;
    while (k < want - free_slots && ch[k].first_frame == ch[k - 1].first_frame + ch[k - 1].frames)
        k++;
    FUZZ_CHECK(steno__ring_acked(r) == a + k, "evicted %llu chunks, expected %u",
               (unsigned long long)(steno__ring_acked(r) - a), k);
    FUZZ_CHECK(steno__ring_sent(r) == (s > a + k ? s : a + k), "sent after evict");
    uint64_t end = ch[k - 1].first_frame + ch[k - 1].frames;
    FUZZ_CHECK(lost.first_frame == ch[0].first_frame && lost.last_frame == end - 1 &&
                   lost.frames == end - ch[0].first_frame,
               "lost [%llu, %llu] %llu frames", (unsigned long long)lost.first_frame,
               (unsigned long long)lost.last_frame, (unsigned long long)lost.frames);
    m->evicted_frames += lost.frames;
    cover(m, lost.first_frame, lost.frames);
}

static void take_drops(steno__ring *r, struct model *m)
{
    steno__range d;
    while (steno__ring_take_dropped(r, &d) == STENO_OK) {
        FUZZ_CHECK(d.first_frame <= d.last_frame && d.last_frame < m->frames_in,
                   "drop range [%llu, %llu] of %llu frames", (unsigned long long)d.first_frame,
                   (unsigned long long)d.last_frame, (unsigned long long)m->frames_in);
        FUZZ_CHECK(d.first_frame >= m->last_drop_end, "drop ranges out of order or overlapping");
        uint64_t span = d.last_frame - d.first_frame + 1;
        FUZZ_CHECK(d.frames >= 1 && d.frames <= span, "%llu frames in a span of %llu",
                   (unsigned long long)d.frames, (unsigned long long)span);
        steno__ring_stats st;
        steno__ring_stats_get(r, &st);
        if (d.frames == span)
            cover(m, d.first_frame, span);
        else
            m->merged = true; /* exact ends and count, but not which frames between */
        FUZZ_CHECK(d.frames == span || st.drop_ranges_merged > 0, "a short range, none merged");
        m->dropped_seen += d.frames;
        m->last_drop_end = d.last_frame + 1;
    }
}

/* Sizes and arguments the API refuses, without allocating or crashing. */
static void check_refusals(steno__ring *r)
{
    static const uint32_t bad[][3] = {
        {0, 1, 1},
        {1, 0, 1},
        {1, 1, 0},
        {UINT32_MAX, 1, 1},
        {2, 65536, 65536},
        {UINT32_MAX - 1, UINT32_MAX, 1}, /* (capacity + 1) * chunk bytes overflows size_t */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        steno__ring *x = (steno__ring *)1;
        FUZZ_CHECK(steno__ring_create(&x, NULL, bad[i][0], bad[i][1], bad[i][2]) ==
                           STENO_ERR_INVALID_ARG &&
                       x == NULL,
                   "create(%u, %u, %u) accepted", bad[i][0], bad[i][1], bad[i][2]);
    }
    FUZZ_CHECK(steno__ring_create(NULL, NULL, 1, 1, 1) == STENO_ERR_INVALID_ARG, "NULL out");
    steno__chunk c;
    steno__range g;
    FUZZ_CHECK(steno__ring_write(NULL, "", 0) == STENO_ERR_INVALID_ARG &&
                   steno__ring_write(r, NULL, steno__ring_frame_bytes(r)) ==
                       STENO_ERR_INVALID_ARG &&
                   steno__ring_flush(NULL) == STENO_ERR_INVALID_ARG &&
                   steno__ring_peek(NULL, 0, &c) == STENO_ERR_INVALID_ARG &&
                   steno__ring_peek(r, 0, NULL) == STENO_ERR_INVALID_ARG &&
                   steno__ring_next_to_send(NULL, &c) == STENO_ERR_INVALID_ARG &&
                   steno__ring_evict(NULL, 1, &g) == STENO_ERR_INVALID_ARG &&
                   steno__ring_evict(r, 1, NULL) == STENO_ERR_INVALID_ARG &&
                   steno__ring_take_dropped(NULL, &g) == STENO_ERR_INVALID_ARG &&
                   steno__ring_take_dropped(r, NULL) == STENO_ERR_INVALID_ARG,
               "a NULL argument accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    struct model m;
    memset(&m, 0, sizeof m);
    m.cap = 1 + fz_u8(&in) % 12;
    m.cf = 1 + fz_u8(&in) % 40;
    m.fb = 1 + fz_u8(&in) % 6;
    uint8_t sel = fz_u8(&in);

    fz_alloc fa;
    fz_alloc_init(&fa, sel == 0xff ? 1 : 0);
    steno__ring *r;
    int rc = steno__ring_create(&r, &fa.a, m.cap, m.cf, m.fb);
    if (fa.failed) {
        FUZZ_CHECK(rc == STENO_ERR_NOMEM && r == NULL, "create with a refused allocation: %d", rc);
        FZ_CHECK_NO_LEAK(&fa);
        return 0;
    }
    FUZZ_CHECK(rc == STENO_OK, "create rc %d", rc);
    FUZZ_CHECK(steno__ring_capacity(r) == m.cap && steno__ring_chunk_frames(r) == m.cf &&
                   steno__ring_frame_bytes(r) == m.fb,
               "sizes");
    check_refusals(r);
    m.cover = calloc(MAX_FRAMES, 1);
    FUZZ_CHECK(m.cover != NULL, "calloc");

    for (int ops = 0; !fz_empty(&in) && ops < 3000; ops++) {
        switch (fz_u8(&in) % 12) {
        case 0:
        case 1:
        case 2:
            op_write(r, &m, &in);
            break;
        case 3:
            op_flush(r, &m);
            break;
        case 4:
        case 5:
            op_send(r);
            break;
        case 6:
            op_mark_sent(r, &in);
            break;
        case 7:
            op_ack(r, &m, &in);
            break;
        case 8:
            steno__ring_rewind(r);
            FUZZ_CHECK(steno__ring_sent(r) == steno__ring_acked(r), "rewind");
            break;
        case 9:
            op_evict(r, &m, &in);
            break;
        case 10:
            take_drops(r, &m);
            break;
        default: {
            uint64_t seq = fz_u64(&in) >> (fz_u8(&in) % 64);
            steno__chunk c;
            int pr = steno__ring_peek(r, seq, &c);
            bool in_ring = seq >= steno__ring_acked(r) && seq < steno__ring_written(r);
            FUZZ_CHECK(pr == (in_ring ? STENO_OK : STENO_ERR_AGAIN), "peek(%llu): %d",
                       (unsigned long long)seq, pr);
            break;
        }
        }
        invariants(r, &m);
    }

    /* Close the books: flush, drain the drop queue (and what the producer still holds). */
    op_flush(r, &m);
    invariants(r, &m);
    for (int i = 0; i < 200; i++) {
        take_drops(r, &m);
        if (!steno__ring_drop_held(r))
            break;
        op_flush(r, &m);
    }
    take_drops(r, &m);
    FUZZ_CHECK(!steno__ring_drop_held(r), "a drop range still held after draining");
    steno__ring_stats st;
    steno__ring_stats_get(r, &st);
    FUZZ_CHECK(m.dropped_seen == st.frames_dropped, "drop ranges hold %llu frames, stats %llu",
               (unsigned long long)m.dropped_seen, (unsigned long long)st.frames_dropped);
    steno__chunk ch[64];
    uint32_t n = held(r, &m, ch);
    for (uint32_t i = 0; i < n; i++)
        cover(&m, ch[i].first_frame, ch[i].frames);
    if (!m.merged)
        for (uint64_t f = 0; f < m.frames_in; f++)
            FUZZ_CHECK(m.cover[f] == 1, "frame %llu accounted for %u times", (unsigned long long)f,
                       m.cover[f]);
    free(m.cover);
    steno__ring_destroy(r);
    steno__ring_destroy(NULL);
    FZ_CHECK_NO_LEAK(&fa);
    return 0;
}
