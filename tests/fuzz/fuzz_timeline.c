/* fuzz_timeline: arbitrary sends, reconnects and provider results keep the session timeline sane.
 */
#include "fuzz_common.h"
#include "steno/status.h"
#include "timeline.h"

/*
 * Input: sample rate and segment-table size, then a program of operations:
 * reconnect, send a chunk (continuing, after a gap, behind, or anywhere),
 * a final or interim result with arbitrary (NaN, infinite, negative, huge)
 * times and a word array, and plain time lookups. A model tracks what was
 * sent on each connection.
 *
 * Properties:
 *  - on_sent refuses a chunk behind the connection's audio, always takes one
 *    that continues it, and otherwise says OK or FULL; connection_frames is
 *    the sum of the chunks taken;
 *  - a result with a non-finite start or duration is refused and changes
 *    nothing; any other gets a verdict;
 *  - emitted spans start at or after the finalized point before them, are
 *    non-empty-or-ordered (end >= start), and never end beyond the audio
 *    sent (the connection's last chunk end, or the finalized point);
 *    consecutive emitted finals never overlap;
 *  - the ack point (finalized_frame) never regresses, moves only on an
 *    emitted final and then to its end, and never passes the audio sent;
 *    an interim moves nothing;
 *  - words: kept + dropped = given; a dropped word's midpoint maps before the
 *    finalized point and a kept first word's at or after it; a kept word maps
 *    inside its result, and words in time order map in order;
 *  - to_session is monotonic in provider time and within the sent audio.
 */

#define MAX_WORDS 24

struct model {
    uint32_t rate;
    bool conn_any;    /* a chunk was taken on this connection */
    uint64_t conn_lo; /* first session frame of the connection's first chunk */
    uint64_t conn_hi; /* session frame after its last chunk */
    uint64_t conn_frames;
    uint64_t max_sent;  /* the end of any chunk ever sent */
    uint64_t fin;       /* finalized_frame as last seen */
    uint64_t final_end; /* end of the last emitted final */
    uint64_t cursor;    /* where the app's stream is: the next new chunk starts here */
};

/* The highest session frame a mapped time may reach right now. */
static uint64_t ceiling(const struct model *m)
{
    uint64_t c = m->conn_any ? m->conn_hi : 0;
    return c > m->fin ? c : m->fin;
}

static void op_send(steno__timeline *t, struct model *m, fz_in *in)
{
    uint8_t how = fz_u8(in);
    uint64_t first;
    uint32_t frames;
    uint32_t chunk = m->rate / 10 ? m->rate / 10 : 1; /* 100 ms */
    switch (how % 6) {
    case 0: /* the next chunk of the stream */
    case 1:
        first = m->cursor;
        frames = how & 0x40 ? (uint32_t)fz_range(in, 0, chunk) : chunk;
        break;
    case 2: /* continues the connection exactly */
        first = m->conn_any ? m->conn_hi : m->cursor;
        frames = (uint32_t)fz_range(in, 0, 4 * (uint64_t)chunk);
        break;
    case 3: /* after a gap (dropped or evicted audio) */
        first = (m->conn_any ? m->conn_hi : m->cursor) +
                fz_range(in, 1, how & 0x80 ? UINT64_C(1) << 30 : UINT64_C(5) * chunk);
        frames = (uint32_t)fz_range(in, 1, chunk);
        break;
    case 4: /* behind the connection's audio */
        first = (m->conn_any ? m->conn_hi : m->cursor);
        first -= fz_u32(in) % (first + 1);
        frames = (uint32_t)fz_range(in, 0, chunk);
        break;
    default: /* anywhere */
        first = fz_range(in, 0, 1ULL << 36);
        frames = fz_u32(in) >> (fz_u8(in) % 32);
        break;
    }
    uint64_t before = steno__timeline_connection_frames(t);
    int rc = steno__timeline_on_sent(t, first, frames);
    bool behind = m->conn_any && first < m->conn_hi;
    if (frames == 0) {
        FUZZ_CHECK(rc == STENO_OK, "empty chunk: rc %d", rc);
    } else if (behind) {
        FUZZ_CHECK(rc == STENO_ERR_INVALID_ARG, "chunk at %llu behind %llu: rc %d",
                   (unsigned long long)first, (unsigned long long)m->conn_hi, rc);
    } else if (m->conn_any && first == m->conn_hi) {
        FUZZ_CHECK(rc == STENO_OK, "continuing chunk refused: rc %d", rc);
    } else {
        FUZZ_CHECK(rc == STENO_OK || rc == STENO_ERR_FULL, "chunk rc %d", rc);
    }
    if (rc == STENO_OK && frames) {
        if (!m->conn_any)
            m->conn_lo = first;
        m->conn_any = true;
        m->conn_hi = first + frames;
        m->conn_frames += frames;
        if (m->conn_hi > m->max_sent)
            m->max_sent = m->conn_hi;
        if (m->conn_hi > m->cursor)
            m->cursor = m->conn_hi;
    }
    uint64_t after = steno__timeline_connection_frames(t);
    FUZZ_CHECK(after == m->conn_frames && after >= before, "connection_frames %llu, model %llu",
               (unsigned long long)after, (unsigned long long)m->conn_frames);
}

static void op_reconnect(steno__timeline *t, struct model *m, fz_in *in)
{
    steno__timeline_connection_begin(t);
    FUZZ_CHECK(steno__timeline_connection_frames(t) == 0, "connection_frames after begin");
    FUZZ_CHECK(steno__timeline_finalized_frame(t) == m->fin, "begin moved finalized_frame");
    m->conn_any = false;
    m->conn_frames = 0;
    /* The replay starts at the first unacknowledged chunk: a little before the finalized point. */
    uint64_t back = fz_range(in, 0, m->rate);
    m->cursor = m->fin > back ? m->fin - back : 0;
}

static uint64_t to_session(const steno__timeline *t, const struct model *m, double x)
{
    uint64_t f = steno__timeline_to_session(t, x);
    FUZZ_CHECK(f <= ceiling(m), "time %g maps to %llu, beyond the sent audio (%llu)", x,
               (unsigned long long)f, (unsigned long long)ceiling(m));
    if (m->conn_any)
        FUZZ_CHECK(f >= m->conn_lo, "time %g maps to %llu, before the connection's audio (%llu)", x,
                   (unsigned long long)f, (unsigned long long)m->conn_lo);
    return f;
}

static void op_lookup(const steno__timeline *t, const struct model *m, fz_in *in)
{
    double a = fz_double(in), b = fz_double(in);
    if (isnan(a) || isnan(b))
        return (void)to_session(t, m, isnan(a) ? a : b);
    if (a > b) {
        double x = a;
        a = b;
        b = x;
    }
    uint64_t fa = to_session(t, m, a), fb = to_session(t, m, b);
    FUZZ_CHECK(fa <= fb, "to_session not monotonic: %g -> %llu, %g -> %llu", a,
               (unsigned long long)fa, b, (unsigned long long)fb);
    uint64_t fr = fz_u64(in) >> (fz_u8(in) % 64);
    FUZZ_CHECK(steno__timeline_seconds(t, fr) == (double)fr / m->rate, "seconds(%llu)",
               (unsigned long long)fr);
}

static void op_result(steno__timeline *t, struct model *m, fz_in *in, bool final)
{
    double start = fz_double(in), duration = fz_double(in);
    size_t n = fz_u8(in) % (MAX_WORDS + 1);
    steno__word_time w[MAX_WORDS];
    bool ordered = true;
    for (size_t i = 0; i < n; i++) {
        if (fz_u8(in) & 1) { /* plausible: inside the result, in order */
            double base = i ? w[i - 1].end : start;
            w[i].start = base + (double)fz_u8(in) / 100.0;
            w[i].end = w[i].start + (double)fz_u8(in) / 100.0;
        } else {
            w[i].start = fz_double(in);
            w[i].end = fz_double(in);
        }
        if (!isfinite(w[i].start) || !isfinite(w[i].end) || w[i].end < w[i].start ||
            (i && w[i].start < w[i - 1].end))
            ordered = false;
    }
    uint64_t fin = steno__timeline_finalized_frame(t);
    FUZZ_CHECK(fin == m->fin, "finalized_frame %llu, model %llu", (unsigned long long)fin,
               (unsigned long long)m->fin);
    steno__mapped mp;
    memset(&mp, 0xa5, sizeof mp);
    const steno__word_time *wp = n ? w : NULL;
    int rc = final ? steno__timeline_final(t, start, duration, wp, n, &mp)
                   : steno__timeline_interim(t, start, duration, wp, n, &mp);
    if (!isfinite(start) || !isfinite(duration)) {
        FUZZ_CHECK(rc == STENO_ERR_INVALID_ARG, "start %g duration %g: rc %d", start, duration, rc);
        FUZZ_CHECK(steno__timeline_finalized_frame(t) == fin, "a refused result moved the ack");
        return;
    }
    /* outside the audio sent on the connection (0.25 s of slack): refused, nothing moves */
    double sent_s = (double)m->conn_frames / m->rate;
    bool outside = start < -0.25 || start + (duration > 0 ? duration : 0) > sent_s + 0.25;
    for (size_t i = 0; i < n; i++)
        outside |= !(w[i].start >= -0.25) || !(w[i].end <= sent_s + 0.25);
    if (outside) {
        FUZZ_CHECK(rc == STENO_ERR_PARSE, "start %g duration %g outside %g s sent: rc %d", start,
                   duration, sent_s, rc);
        FUZZ_CHECK(steno__timeline_finalized_frame(t) == fin, "a refused result moved the ack");
        return;
    }
    FUZZ_CHECK(rc == STENO_OK, "start %g duration %g: rc %d", start, duration, rc);
    FUZZ_CHECK(mp.emit == 0 || mp.emit == 1, "emit %d", mp.emit);
    FUZZ_CHECK(mp.first_word <= n && mp.first_word + mp.n_words == n, "words %zu+%zu of %zu",
               mp.first_word, mp.n_words, n);
    if (!mp.emit)
        FUZZ_CHECK(mp.n_words == 0, "suppressed result keeps %zu words", mp.n_words);
    uint64_t top = ceiling(m);
    if (mp.emit) {
        FUZZ_CHECK(mp.start_frame >= fin && mp.end_frame >= mp.start_frame,
                   "span [%llu, %llu) with finalized %llu", (unsigned long long)mp.start_frame,
                   (unsigned long long)mp.end_frame, (unsigned long long)fin);
        FUZZ_CHECK(mp.end_frame <= top, "span ends at %llu, beyond the sent audio (%llu)",
                   (unsigned long long)mp.end_frame, (unsigned long long)top);
    }

    /* Which words were dropped as already final. */
    for (size_t i = 0; i < n && i <= mp.first_word; i++) {
        uint64_t mid = steno__timeline_to_session(t, (w[i].start + w[i].end) / 2);
        if (i < mp.first_word)
            FUZZ_CHECK(mid < fin, "word %zu dropped, its midpoint %llu >= finalized %llu", i,
                       (unsigned long long)mid, (unsigned long long)fin);
        else
            FUZZ_CHECK(mid >= fin, "first kept word's midpoint %llu < finalized %llu",
                       (unsigned long long)mid, (unsigned long long)fin);
    }
    uint64_t prev = 0;
    for (size_t k = 0; k < mp.n_words; k++) {
        uint64_t a, b;
        steno__timeline_map_word(t, &mp, &w[mp.first_word + k], &a, &b);
        FUZZ_CHECK(mp.start_frame <= a && a <= b && b <= mp.end_frame,
                   "word [%llu, %llu] outside [%llu, %llu]", (unsigned long long)a,
                   (unsigned long long)b, (unsigned long long)mp.start_frame,
                   (unsigned long long)mp.end_frame);
        if (ordered)
            FUZZ_CHECK(a >= prev, "words out of order: %llu after %llu", (unsigned long long)a,
                       (unsigned long long)prev);
        prev = b;
    }

    uint64_t after = steno__timeline_finalized_frame(t);
    if (!final) {
        FUZZ_CHECK(after == fin && mp.ack_frame == fin, "an interim moved the ack");
        return;
    }
    FUZZ_CHECK(mp.ack_frame == after, "ack_frame %llu, finalized %llu",
               (unsigned long long)mp.ack_frame, (unsigned long long)after);
    uint64_t expect = mp.emit && mp.end_frame > fin ? mp.end_frame : fin;
    FUZZ_CHECK(after == expect, "finalized %llu -> %llu, expected %llu", (unsigned long long)fin,
               (unsigned long long)after, (unsigned long long)expect);
    FUZZ_CHECK(after <= m->max_sent || after == fin, "ack %llu beyond the audio ever sent %llu",
               (unsigned long long)after, (unsigned long long)m->max_sent);
    if (mp.emit) {
        FUZZ_CHECK(mp.start_frame >= m->final_end, "final [%llu, ..) overlaps the last (..%llu)",
                   (unsigned long long)mp.start_frame, (unsigned long long)m->final_end);
        m->final_end = mp.end_frame;
    }
    m->fin = after;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    static const uint32_t rates[] = {16000, 8000, 48000, 44100, 1, 3, 192000, 22050};
    uint8_t sel = fz_u8(&in);
    struct model m;
    memset(&m, 0, sizeof m);
    m.rate = sel & 0x80 ? (fz_u32(&in) | 1) : rates[sel % 8];
    uint32_t max_seg = 1 + (uint32_t)fz_u8(&in) % 16;

    fz_alloc fa;
    fz_alloc_init(&fa, sel & 0x40 ? 1 + (sel >> 3) % 2 : 0);
    steno__timeline *t;
    int rc = steno__timeline_create(&t, &fa.a, m.rate, max_seg);
    if (fa.failed) {
        FUZZ_CHECK(rc == STENO_ERR_NOMEM && t == NULL, "create with a refused allocation: %d", rc);
        FZ_CHECK_NO_LEAK(&fa);
        return 0;
    }
    FUZZ_CHECK(rc == STENO_OK, "create rc %d", rc);
    steno__timeline *bad = (steno__timeline *)1;
    FUZZ_CHECK(steno__timeline_create(NULL, NULL, 1, 1) == STENO_ERR_INVALID_ARG &&
                   steno__timeline_create(&bad, NULL, 0, 1) == STENO_ERR_INVALID_ARG && !bad &&
                   steno__timeline_create(&bad, NULL, 1, 0) == STENO_ERR_INVALID_ARG && !bad,
               "bad create arguments accepted");
    steno__mapped mp;
    FUZZ_CHECK(steno__timeline_on_sent(NULL, 0, 1) == STENO_ERR_INVALID_ARG &&
                   steno__timeline_final(NULL, 0, 1, NULL, 0, &mp) == STENO_ERR_INVALID_ARG &&
                   steno__timeline_final(t, 0, 1, NULL, 1, &mp) == STENO_ERR_INVALID_ARG &&
                   steno__timeline_final(t, 0, 1, NULL, 0, NULL) == STENO_ERR_INVALID_ARG &&
                   steno__timeline_interim(t, 0, 1, NULL, 2, &mp) == STENO_ERR_INVALID_ARG,
               "a NULL argument accepted");

    for (int ops = 0; !fz_empty(&in) && ops < 2000; ops++) {
        switch (fz_u8(&in) % 10) {
        case 0:
            op_reconnect(t, &m, &in);
            break;
        case 1:
        case 2:
        case 3:
            op_send(t, &m, &in);
            break;
        case 4:
        case 5:
        case 6:
            op_result(t, &m, &in, true);
            break;
        case 7:
        case 8:
            op_result(t, &m, &in, false);
            break;
        default:
            op_lookup(t, &m, &in);
            break;
        }
    }
    steno__timeline_destroy(t);
    steno__timeline_destroy(NULL);
    FZ_CHECK_NO_LEAK(&fa);
    return 0;
}
