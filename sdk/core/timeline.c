/* timeline: maps each connection's provider timestamps onto the one session timeline. */
#include "timeline.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "steno/status.h"

/* Provider frames [p, p + n) on this connection carry session frames [s, s + n), or, for padding,
 * no session audio: they all map to s, where the next audio begins. */
struct segment {
    uint64_t p;
    uint64_t s;
    uint64_t n;
    bool pad;
};

static uint64_t seg_s_end(const struct segment *g)
{
    return g->s + (g->pad ? 0 : g->n);
}

static uint64_t seg_map(const struct segment *g, uint64_t pf)
{
    return g->pad ? g->s : g->s + (pf - g->p);
}

struct steno__timeline {
    steno_allocator alloc;
    uint32_t rate;
    uint32_t max;
    uint32_t nseg;
    struct segment *segs; /* in provider order, adjacent in p: segs[i].p + n == segs[i + 1].p */
    uint64_t p_total;     /* provider frames sent on this connection */
    uint64_t finalized;   /* session [0, finalized) is covered by emitted finals */
    /* Session frame for provider times before segs[0]: the end of the last
     * discarded segment, so such times (already final) stay <= finalized. */
    uint64_t floor;
    uint64_t limit; /* session audio at or after it belongs to another lane */
};

int steno__timeline_create(steno__timeline **out, const steno_allocator *a, uint32_t sample_rate,
                           uint32_t max_segments)
{
    if (!out)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    if (sample_rate == 0 || max_segments == 0)
        return STENO_ERR_INVALID_ARG;
    steno__timeline *t = steno__calloc(a, 1, sizeof(*t));
    if (!t)
        return STENO_ERR_NOMEM;
    t->segs = steno__calloc(a, max_segments, sizeof(*t->segs));
    if (!t->segs) {
        steno__free(a, t);
        return STENO_ERR_NOMEM;
    }
    if (a)
        t->alloc = *a;
    t->rate = sample_rate;
    t->max = max_segments;
    t->limit = UINT64_MAX;
    *out = t;
    return STENO_OK;
}

void steno__timeline_destroy(steno__timeline *t)
{
    if (!t)
        return;
    steno_allocator a = t->alloc;
    steno__free(&a, t->segs);
    steno__free(&a, t);
}

void steno__timeline_connection_begin(steno__timeline *t)
{
    t->nseg = 0;
    t->p_total = 0;
    t->floor = t->finalized;
}

void steno__timeline_reset(steno__timeline *t)
{
    t->nseg = 0;
    t->p_total = 0;
    t->finalized = 0;
    t->floor = 0;
    t->limit = UINT64_MAX;
}

/* Drops leading segments wholly before finalized_frame; the last one stays so
 * the next chunk can extend it. */
static void discard_final_segments(steno__timeline *t)
{
    uint32_t k = 0;
    while (k + 1 < t->nseg && seg_s_end(&t->segs[k]) <= t->finalized)
        k++;
    if (!k)
        return;
    t->floor = seg_s_end(&t->segs[k - 1]);
    memmove(t->segs, t->segs + k, (t->nseg - k) * sizeof(*t->segs));
    t->nseg -= k;
}

int steno__timeline_on_sent(steno__timeline *t, uint64_t first_frame, uint32_t frames)
{
    if (!t)
        return STENO_ERR_INVALID_ARG;
    if (frames == 0)
        return STENO_OK;
    if (t->nseg) {
        struct segment *last = &t->segs[t->nseg - 1];
        uint64_t end = seg_s_end(last);
        if (first_frame == end && !last->pad) {
            last->n += frames;
            t->p_total += frames;
            return STENO_OK;
        }
        if (first_frame < end)
            return STENO_ERR_INVALID_ARG;
    }
    if (t->nseg == t->max)
        discard_final_segments(t);
    if (t->nseg == t->max)
        return STENO_ERR_FULL;
    t->segs[t->nseg++] = (struct segment){.p = t->p_total, .s = first_frame, .n = frames};
    t->p_total += frames;
    return STENO_OK;
}

int steno__timeline_on_padding(steno__timeline *t, uint32_t frames)
{
    if (!t)
        return STENO_ERR_INVALID_ARG;
    if (frames == 0)
        return STENO_OK;
    if (t->nseg && t->segs[t->nseg - 1].pad) {
        t->segs[t->nseg - 1].n += frames;
        t->p_total += frames;
        return STENO_OK;
    }
    uint64_t s = t->nseg ? seg_s_end(&t->segs[t->nseg - 1]) : t->floor;
    if (t->nseg == t->max)
        discard_final_segments(t);
    if (t->nseg == t->max)
        return STENO_ERR_FULL;
    t->segs[t->nseg++] = (struct segment){.p = t->p_total, .s = s, .n = frames, .pad = true};
    t->p_total += frames;
    return STENO_OK;
}

/* Seconds -> provider frames, to the nearest frame; negative and NaN are 0. */
static uint64_t to_frames(const steno__timeline *t, double seconds)
{
    double f = floor(seconds * t->rate + 0.5);
    if (!(f > 0))
        return 0;
    if (f >= 9007199254740992.0) /* 2^53: far beyond any stream; keeps the cast defined */
        return UINT64_C(9007199254740992);
    return (uint64_t)f;
}

/* Index of the last segment with p <= pf; requires nseg > 0 and pf >= segs[0].p. */
static uint32_t find(const steno__timeline *t, uint64_t pf)
{
    uint32_t lo = 0, hi = t->nseg; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->segs[mid].p <= pf)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* A start time: on a boundary it belongs to the later segment. */
static uint64_t map_start(const steno__timeline *t, uint64_t pf)
{
    if (!t->nseg || pf < t->segs[0].p)
        return t->floor;
    const struct segment *last = &t->segs[t->nseg - 1];
    if (pf >= t->p_total)
        return seg_s_end(last);
    return seg_map(&t->segs[find(t, pf)], pf);
}

/* An end time: on a boundary it belongs to the earlier segment, so a word
 * that ends where a gap begins does not stretch over the gap. */
static uint64_t map_end(const steno__timeline *t, uint64_t pf)
{
    if (!t->nseg || pf < t->segs[0].p)
        return t->floor;
    if (pf == t->segs[0].p)
        return t->segs[0].p == 0 ? t->segs[0].s : t->floor;
    uint32_t i = find(t, pf);
    if (t->segs[i].p == pf)
        return seg_s_end(&t->segs[i - 1]);
    return map_start(t, pf);
}

uint64_t steno__timeline_to_session(const steno__timeline *t, double provider_seconds)
{
    return map_start(t, to_frames(t, provider_seconds));
}

/* How far a result's times may stray outside the audio sent on its connection (provider
 * rounding, padding) before the result is refused. */
#define SLACK_S 0.25

static int filter(const steno__timeline *t, double start, double duration,
                  const steno__word_time *words, size_t n_words, steno__mapped *out)
{
    if (!t || !out || (n_words && !words) || !isfinite(start) || !isfinite(duration))
        return STENO_ERR_INVALID_ARG;
    /* A result for audio this connection never sent (or from before its first sample) is a
     * provider's bug or a hostile peer: mapping it would clamp it onto the newest audio sent and
     * acknowledge audio no final covers. Beyond rounding (SLACK_S) it is refused. */
    double sent_s = (double)t->p_total / t->rate;
    if (start < -SLACK_S || start + (duration > 0 ? duration : 0) > sent_s + SLACK_S)
        return STENO_ERR_PARSE;
    for (size_t i = 0; i < n_words; i++)
        if (!(words[i].start >= -SLACK_S) || !(words[i].end <= sent_s + SLACK_S))
            return STENO_ERR_PARSE;
    uint64_t fin = t->finalized;
    if (duration < 0)
        duration = 0;
    uint64_t rs = map_start(t, to_frames(t, start));
    uint64_t re = map_end(t, to_frames(t, start + duration));

    size_t first = 0;
    while (first < n_words) {
        double mid = (words[first].start + words[first].end) / 2;
        if (map_start(t, to_frames(t, mid)) >= fin)
            break;
        first++;
    }
    size_t last = n_words; /* words [first, last) are kept */
    while (last > first) {
        double mid = (words[last - 1].start + words[last - 1].end) / 2;
        if (map_start(t, to_frames(t, mid)) < t->limit)
            break;
        last--;
    }
    size_t kept = last - first;

    uint64_t sf = rs > fin ? rs : fin;
    uint64_t ef = re > sf ? re : sf;
    if (kept) {
        uint64_t we = map_end(t, to_frames(t, words[last - 1].end));
        if (we > ef)
            ef = we;
    }
    bool beyond = false;
    if (t->limit != UINT64_MAX) {
        if (sf > t->limit)
            sf = t->limit;
        if (ef > t->limit)
            ef = t->limit;
        beyond = sf >= t->limit && !kept;
    }
    out->emit = !beyond && (re > fin || kept > 0);
    out->start_frame = sf;
    out->end_frame = ef;
    out->first_word = first;
    out->n_words = kept;
    out->ack_frame = fin;
    return STENO_OK;
}

int steno__timeline_final(steno__timeline *t, double start, double duration,
                          const steno__word_time *words, size_t n_words, steno__mapped *out)
{
    int rc = filter(t, start, duration, words, n_words, out);
    if (rc != STENO_OK)
        return rc;
    if (out->emit && out->end_frame > t->finalized)
        t->finalized = out->end_frame;
    out->ack_frame = t->finalized;
    /* Finalized segments are discarded lazily, in on_sent, only when the table
     * is full: map_word for this result still needs them. */
    return STENO_OK;
}

int steno__timeline_interim(const steno__timeline *t, double start, double duration,
                            const steno__word_time *words, size_t n_words, steno__mapped *out)
{
    return filter(t, start, duration, words, n_words, out);
}

void steno__timeline_raise_finalized(steno__timeline *t, uint64_t frame)
{
    if (frame > t->finalized)
        t->finalized = frame;
    if (t->floor < t->finalized && !t->nseg)
        t->floor = t->finalized;
}

void steno__timeline_set_limit(steno__timeline *t, uint64_t limit)
{
    t->limit = limit;
}

void steno__timeline_map_word(const steno__timeline *t, const steno__mapped *m,
                              const steno__word_time *w, uint64_t *start_frame, uint64_t *end_frame)
{
    uint64_t s = map_start(t, to_frames(t, w->start));
    uint64_t e = map_end(t, to_frames(t, w->end));
    if (s < m->start_frame)
        s = m->start_frame;
    if (s > m->end_frame)
        s = m->end_frame;
    if (e < s)
        e = s;
    if (e > m->end_frame)
        e = m->end_frame;
    *start_frame = s;
    *end_frame = e;
}

uint64_t steno__timeline_finalized_frame(const steno__timeline *t)
{
    return t->finalized;
}

uint64_t steno__timeline_connection_frames(const steno__timeline *t)
{
    return t->p_total;
}

double steno__timeline_seconds(const steno__timeline *t, uint64_t frame)
{
    return (double)frame / t->rate;
}
