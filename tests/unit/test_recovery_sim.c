/* test_recovery_sim: the real core modules through thousands of seeded fault schedules. */
/*
 * A deterministic simulation of one session of the engine: the ring, the
 * timelines, backoff, breaker, budget, pacing and the planner are the real
 * modules; the clock (10 ms steps), the network, the provider and the speech
 * are simulated. Everything random comes from one seeded generator per
 * schedule, so a seed replays a schedule exactly.
 *
 * THE ENVELOPE (printed by the test):
 *   - faults start at least FAULT_GAP_MIN_MS apart (random gap up to
 *     FAULT_GAP_MAX_MS), from 1 s into the audio until 3 s before its end,
 *     and at least FAULT_GAP_MIN_MS after a refused window ends (so windows
 *     never join into one longer outage; STENO_SIM_CHAINED=1 lets them);
 *   - kinds, equally likely: TCP reset (the connection is gone, seen at once);
 *     half-open stall (silently dead: seen only when a ping, sent every
 *     PING_MS, gets no pong within PONG_TIMEOUT_MS); refused window (the
 *     target connection is dropped and every connect fails with 503 or a TCP
 *     refusal until the window ends);
 *   - each hits the live connection or (one time in three, when one is open)
 *     a backfill connection;
 *   - refused windows of 0.5 s up to DEFAULT_OUTAGE_MS (6 s), which the
 *     default ring (200 x 100 ms = 20 s) holds with zero loss at 1.0x, 1.25x
 *     and 2x; a 10 s ring holds 3 s windows only (STENO_SIM_SWEEP=1 prints
 *     the table);
 *   - provider limits 1.0x (AssemblyAI), 1.25x (Deepgram) and 2x; the
 *     provider closes a connection whose audio outruns speed x elapsed + 2 s;
 *   - 1 backfill connection in 3 schedules of 4, 2 in the others.
 *
 * THE ENGINE is the algorithm of the parallel catch-up design with four
 * changes, each of which the simulation found necessary for zero loss at the
 * default ring (STENO_SIM_ENGINE=spec runs it without them): backfill
 * connections auto-finalize like the live one; auto-finalize at 1.5 s of
 * unfinalized audio, not 2.5 s (1 s cuts three times as many words); the
 * reconnect delay is capped at 1 s while audio buffers, not 30 s; one
 * session's own failed retries do not open the client's breaker. The
 * engine's defaults are these (auto_finalize_ms 1500, retry.cap_ms 1000,
 * ring_chunks 200, a session's failures count once per outage toward the
 * breaker).
 *
 * Each schedule asserts: no sample lost (no producer drop, no eviction; every
 * word ends up in an emitted final, and the ring is empty after the closing
 * drain); nothing final twice (no word's audio in two finals, no whole word
 * emitted twice, no final span over an earlier one's audio); one monotonic
 * timeline (finals sorted by start do not overlap; within a lane they come
 * in order); the provider's pace never exceeded; the live lag (newest
 * written frame - end of the audio sent live) under 1 s within LAG_BOUND_MS
 * of every live reconnect.
 *
 * Environment:
 *   STENO_SIM_SCHEDULES=n      schedules per speed (default 10000; 300 under
 *                              a sanitizer)
 *   STENO_SIM_SEED=s STENO_SIM_SPEED=permille
 *                              replay one schedule with a trace
 *   STENO_SIM_RING=chunks      ring capacity (default 100 = 10 s)
 *   STENO_SIM_OUTAGE_MS=ms     longest outage window
 *   STENO_SIM_SWEEP=1          print losses over ring sizes x outage limits
 *   STENO_SIM_ENGINE=spec, STENO_SIM_BACKFILL_FINALIZE, STENO_SIM_FINALIZE_MS,
 *   STENO_SIM_BACKOFF_CAP_MS, STENO_SIM_BREAKER_FAILURES: engine variants
 *   STENO_SIM_LOSS_OK=1        count losses without failing
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "backoff.h"
#include "breaker.h"
#include "budget.h"
#include "pacing.h"
#include "planner.h"
#include "ring.h"
#include "timeline.h"
#include "steno/status.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define RATE 16000u
#define CHUNK 1600u /* 100 ms */
#define CHUNK_MS 100u
#define STEP_MS 10u
#define FR(ms) ((uint64_t)(ms) * (RATE / 1000u)) /* ms -> frames */

#define FAULT_GAP_MIN_MS 3000u
#define FAULT_GAP_MAX_MS 6000u
#define DEFAULT_OUTAGE_MS 6000u /* the envelope; the default ring holds it */
/* The engine variant the simulation found necessary (STENO_SIM_ENGINE=spec
 * turns all four off; each has its own variable): */
#define FINALIZE_MS 1500u      /* auto-finalize threshold (auto_finalize_ms default) */
#define BACKOFF_CAP_MS 1000u   /* reconnect ceiling while audio buffers (default 30 s) */
#define BREAKER_FAILURES 1000u /* one session's own retries never open the breaker (5) */
/* ...and backfill connections auto-finalize like the live one. */
#define DEFAULT_RING 200u /* ring_chunks default: 20 s */
#define PING_MS 1000u
#define PONG_TIMEOUT_MS 1500u
#define SEND_BURST_MS 1800u
#define PROVIDER_BURST_MS 2000u
#define ENDPOINT_MS 300u
#define LAG_BOUND_MS 2500u
#define CONNECT_LIMIT 2u
#define DRAIN_LIMIT_MS 180000u

#define MAX_WORDS 512u
#define MAX_UTTS 128u
#define MAX_BOUNDS 1024u
#define MAX_FINALS 4096u
#define MAX_FRAGS 4096u
#define MAX_LOST 512u
#define MAX_FAULTS 64u
#define MAX_BACKFILL 2u
#define QCAP 512u
#define MAX_PSEG 64u
#define MAX_FW 96u

/* ---- a seeded generator: the only randomness ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *s, uint64_t lo, uint64_t hi) /* uniform in [lo, hi] */
{
    return lo + splitmix64(s) % (hi - lo + 1);
}

static uint64_t backoff_rand(void *ctx)
{
    return splitmix64(ctx);
}

/* ---- the world ---- */

enum fault_kind { F_RESET, F_STALL, F_REFUSE };
static const char *const fault_name[] = {"reset", "stall", "refuse"};

struct fault {
    uint64_t at_ms, dur_ms;
    enum fault_kind kind;
    bool backfill;   /* aimed at a backfill connection (the live one if none is open) */
    bool server_err; /* refuse: 503 (server class) rather than a TCP refusal */
};

struct word {
    uint64_t s, e;
};

/* Client -> server and server -> client messages on the wire. */
enum msg_kind { M_AUDIO, M_FINALIZE, M_CLOSE, M_PING, M_FINAL, M_PONG, M_CLOSED };

struct msg {
    uint64_t at;
    uint64_t a, b; /* audio: first frame, frames; final: session frames [a, b) */
    uint8_t kind;
    uint8_t from_finalize;
};

struct queue {
    struct msg m[QCAP];
    uint32_t head, n;
};

/* The provider's side of one connection. */
struct prov {
    bool got_audio;
    uint64_t first_at;        /* ms of its first audio: its pacing clock */
    uint64_t recv;            /* provider frames received */
    uint64_t first_s;         /* session frame of its first audio */
    uint64_t recv_end;        /* session frame after the newest audio received */
    uint64_t fin_s;           /* next final starts here (session frames) */
    uint32_t next_utt;        /* first utterance not yet endpointed */
    uint64_t seg_s[MAX_PSEG]; /* received audio: provider frames [p, p + n) carry */
    uint64_t seg_p[MAX_PSEG]; /* session frames [s, s + n) */
    uint64_t seg_n[MAX_PSEG];
    uint32_t nseg;
    struct queue pending; /* finals being processed: M_FINAL / M_CLOSED at their ready time */
    uint64_t last_ready;
};

enum conn_state { C_FREE, C_WAIT, C_CONNECTING, C_OPEN };
enum role { LIVE, BACKFILL };

struct conn {
    enum role role;
    enum conn_state state;
    uint32_t index;
    uint64_t t;      /* WAIT: next attempt; CONNECTING: handshake outcome */
    bool retry;      /* the next attempt is a retry (leases budget) */
    bool on_breaker; /* WAIT: waiting for the breaker */
    bool probe;      /* CONNECTING: holds the breaker's probe */
    steno__failure_class cls;
    steno__backoff bo;
    steno__retry_token tok;
    steno__pacing pace;
    bool pace_started;
    steno__timeline *tl; /* the live lane's persists; a backfill job's is fresh per connection */
    uint32_t job;
    uint64_t next_frame, end_frame;
    bool close_sent, finalize_out, heard, ping_out;
    uint64_t opened_at, next_ping_at, ping_sent_at;
    uint32_t lat;      /* one-way latency, ms */
    uint64_t stall_at; /* half-open from this ms on (UINT64_MAX: never) */
    uint64_t last_up;
    struct queue up, down;
    struct prov pv;
};

struct final_rec {
    uint64_t s, e;
    uint32_t lane; /* 0 live, else the job id */
};

struct frag {
    uint64_t s, e;
    uint32_t w;
    bool whole;
};

struct params {
    uint32_t speed;     /* provider limit, permille */
    uint32_t ring;      /* chunks */
    uint32_t outage_ms; /* longest outage window */
    bool loss_is_failure;
    bool chained; /* refused windows may overlap later faults (outside the envelope) */
    /* Engine variants, to measure what would hold (0 = the engine as specified). */
    bool backfill_finalize;     /* backfill connections auto-finalize too */
    uint32_t finalize_ms;       /* planner finalize threshold */
    uint32_t backoff_cap_ms;    /* backoff ceiling */
    uint32_t breaker_threshold; /* consecutive failures that open the breaker */
};

struct result {
    bool failed;
    char why[256];
    uint64_t frames_lost;
    uint32_t cut_words, words, reconnects, backfills, faults, lag_checks;
    uint64_t worst_lag_ms, worst_outage_ms;
    uint32_t max_backfill;
    uint64_t audio_ms;
};

struct sim {
    struct params prm;
    uint64_t seed, rng;
    bool trace;
    struct result *res;
    bool done;
    uint64_t now;
    uint64_t audio_ms;

    struct word w[MAX_WORDS];
    uint32_t nw;
    uint64_t utt_end[MAX_UTTS];
    uint32_t nu;
    bool speech_at[MAX_BOUNDS]; /* boundary k * CHUNK lies within 20 ms of a word */

    struct fault faults[MAX_FAULTS];
    uint32_t nfaults, next_fault;
    uint64_t refuse_until;
    bool refuse_server;

    steno__ring *ring;
    steno__planner pl;
    steno__breaker br;
    steno__budget bud;
    uint32_t max_backfill;
    struct conn live;
    struct conn bf[MAX_BACKFILL];
    bool live_closed; /* the closing drain's CloseStream was answered */
    uint64_t live_down_at;
    bool lag_watch;
    uint64_t lag_open_at;

    struct final_rec finals[MAX_FINALS];
    uint32_t nfinals;
    uint64_t lane_end[MAX_FINALS]; /* by job id (0: live): end of the lane's last final */
    struct frag frags[MAX_FRAGS];
    uint32_t nfrags;
    uint64_t lost_lo[MAX_LOST], lost_hi[MAX_LOST];
    uint32_t nlost;
};

#define TRACE(S, ...)                                                                              \
    do {                                                                                           \
        if ((S)->trace) {                                                                          \
            printf("%8.2f ", (double)(S)->now / 1000);                                             \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static void sim_fail(struct sim *S, const char *fmt, ...)
{
    if (S->res->failed)
        return;
    S->res->failed = true;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(S->res->why, sizeof S->res->why, "t=%.2fs: ", (double)S->now / 1000);
    vsnprintf(S->res->why + n, sizeof S->res->why - (size_t)n, fmt, ap);
    va_end(ap);
    TRACE(S, "FAIL %s", S->res->why);
    S->done = true;
}

/* ---- queues ---- */

static void q_push(struct queue *q, struct msg m)
{
    assert_true(q->n < QCAP);
    q->m[(q->head + q->n++) % QCAP] = m;
}

static const struct msg *q_front(const struct queue *q, uint64_t now)
{
    return q->n && q->m[q->head].at <= now ? &q->m[q->head] : NULL;
}

static void q_pop(struct queue *q)
{
    q->head = (q->head + 1) % QCAP;
    q->n--;
}

/* ---- speech ---- */

static void make_speech(struct sim *S)
{
    uint64_t end = FR(S->audio_ms);
    uint64_t t = FR(rnd(&S->rng, 200, 1000));
    S->nw = S->nu = 0;
    while (S->nu < MAX_UTTS) {
        uint64_t utt = FR(rnd(&S->rng, 1000, 6000));
        uint64_t u0 = t;
        uint32_t words = 0;
        while (t - u0 < utt && S->nw < MAX_WORDS) {
            uint64_t len = FR(rnd(&S->rng, 200, 600));
            if (t + len + FR(500) > end)
                break;
            S->w[S->nw++] = (struct word){t, t + len};
            words++;
            t += len + FR(rnd(&S->rng, 30, 150));
        }
        if (!words)
            break;
        S->utt_end[S->nu++] = S->w[S->nw - 1].e;
        t = S->w[S->nw - 1].e + FR(rnd(&S->rng, 300, 1200));
    }
    /* A boundary is quiet when no word comes within 20 ms of it (what the
     * detector's window sees). */
    memset(S->speech_at, 0, sizeof S->speech_at);
    for (uint32_t i = 0; i < S->nw; i++) {
        uint64_t lo = S->w[i].s > FR(20) ? S->w[i].s - FR(20) : 0;
        uint64_t hi = S->w[i].e + FR(20);
        for (uint64_t k = lo / CHUNK + 1; k * CHUNK < hi && k < MAX_BOUNDS; k++)
            S->speech_at[k] = true;
    }
}

static uint32_t level_at(const struct sim *S, uint64_t frame)
{
    uint64_t k = frame / CHUNK;
    return k < MAX_BOUNDS && S->speech_at[k] ? 3000 : 50;
}

/* ---- the provider ---- */

/* Session frame -> provider frame on this connection (a frame in a gap maps to
 * the start of the next received audio). */
static uint64_t prov_p(const struct prov *pv, uint64_t s)
{
    for (uint32_t i = 0; i < pv->nseg; i++) {
        if (s < pv->seg_s[i])
            return pv->seg_p[i];
        if (s <= pv->seg_s[i] + pv->seg_n[i])
            return pv->seg_p[i] + (s - pv->seg_s[i]);
    }
    return pv->recv;
}

static double prov_sec(const struct prov *pv, uint64_t s)
{
    return (double)prov_p(pv, s) / RATE;
}

static uint64_t lag_ms(struct sim *S, uint64_t lo, uint64_t hi)
{
    return rnd(&S->rng, lo, hi);
}

static void prov_emit(struct sim *S, struct conn *c, uint64_t s, uint64_t e, bool from_finalize,
                      uint64_t lag)
{
    uint64_t ready = S->now + lag;
    if (ready < c->pv.last_ready)
        ready = c->pv.last_ready;
    c->pv.last_ready = ready;
    q_push(
        &c->pv.pending,
        (struct msg){.at = ready, .a = s, .b = e, .kind = M_FINAL, .from_finalize = from_finalize});
}

static void prov_audio(struct sim *S, struct conn *c, uint64_t first, uint64_t frames)
{
    struct prov *pv = &c->pv;
    if (!pv->got_audio) {
        pv->got_audio = true;
        pv->first_at = S->now;
        pv->first_s = pv->fin_s = first;
        pv->next_utt = 0;
    }
    /* The provider's own limit, as steno-server checks it. */
    uint64_t allowed =
        (uint64_t)S->prm.speed * (S->now - pv->first_at) * RATE / 1000000 + FR(PROVIDER_BURST_MS);
    if (pv->recv + frames > allowed) {
        sim_fail(S, "pace exceeded on %s: %.3f s received after %.3f s at %.2fx",
                 c->role == LIVE ? "live" : "backfill", (double)(pv->recv + frames) / RATE,
                 (double)(S->now - pv->first_at) / 1000, S->prm.speed / 1000.0);
        return;
    }
    if (pv->nseg && pv->seg_s[pv->nseg - 1] + pv->seg_n[pv->nseg - 1] == first) {
        pv->seg_n[pv->nseg - 1] += frames;
    } else {
        uint32_t i = pv->nseg < MAX_PSEG ? pv->nseg++ : MAX_PSEG - 1;
        pv->seg_s[i] = first;
        pv->seg_p[i] = pv->recv;
        pv->seg_n[i] = frames;
    }
    pv->recv += frames;
    pv->recv_end = first + frames;
    /* Endpointing: a final once an utterance's end plus ENDPOINT_MS of quiet
     * arrived, for utterances this connection heard some of. */
    while (pv->next_utt < S->nu && S->utt_end[pv->next_utt] + FR(ENDPOINT_MS) <= pv->recv_end) {
        uint64_t ue = S->utt_end[pv->next_utt++];
        uint64_t ep = ue + FR(ENDPOINT_MS);
        if (ep <= pv->fin_s || ue <= pv->first_s)
            continue;
        prov_emit(S, c, pv->fin_s, ep, false, lag_ms(S, 100, 800));
        pv->fin_s = ep;
    }
}

static void prov_flush(struct sim *S, struct conn *c, bool from_finalize)
{
    struct prov *pv = &c->pv;
    uint64_t s = pv->got_audio ? pv->fin_s : 0, e = pv->got_audio ? pv->recv_end : 0;
    prov_emit(S, c, s, e, from_finalize, lag_ms(S, 50, 300));
    pv->fin_s = e;
}

/* Messages arriving at the provider; finals leaving it when ready. */
static void prov_step(struct sim *S, struct conn *c)
{
    const struct msg *m;
    while (!S->done && (m = q_front(&c->up, S->now))) {
        struct msg x = *m;
        q_pop(&c->up);
        if (x.at >= c->stall_at)
            continue;
        switch (x.kind) {
        case M_AUDIO:
            prov_audio(S, c, x.a, x.b);
            break;
        case M_FINALIZE:
            prov_flush(S, c, true);
            break;
        case M_CLOSE:
            prov_flush(S, c, false);
            q_push(&c->pv.pending, (struct msg){.at = c->pv.last_ready, .kind = M_CLOSED});
            break;
        case M_PING:
            q_push(&c->down, (struct msg){.at = S->now + c->lat, .kind = M_PONG});
            break;
        default:
            break;
        }
    }
    while ((m = q_front(&c->pv.pending, S->now))) {
        struct msg x = *m;
        q_pop(&c->pv.pending);
        x.at = S->now + c->lat;
        q_push(&c->down, x);
    }
}

/* The words of a final over session frames [s, e): every word piece this
 * connection received there, in provider seconds. */
static size_t final_words(const struct sim *S, const struct conn *c, uint64_t s, uint64_t e,
                          steno__word_time *wt, uint32_t *ids, bool *whole)
{
    uint64_t lo = s > c->pv.first_s ? s : c->pv.first_s;
    uint32_t a = 0, b = S->nw;
    while (a < b) { /* first word ending after lo */
        uint32_t mid = (a + b) / 2;
        if (S->w[mid].e <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    size_t n = 0;
    for (uint32_t i = a; i < S->nw && S->w[i].s < e; i++) {
        uint64_t fs = S->w[i].s > lo ? S->w[i].s : lo;
        uint64_t fe = S->w[i].e < e ? S->w[i].e : e;
        if (fe <= fs)
            continue;
        assert_true(n < MAX_FW);
        wt[n].start = prov_sec(&c->pv, fs);
        wt[n].end = prov_sec(&c->pv, fe);
        ids[n] = i;
        whole[n] = fs == S->w[i].s && fe == S->w[i].e;
        n++;
    }
    return n;
}

/* ---- the engine ---- */

static uint64_t newest_in_ring(const struct sim *S)
{
    uint64_t w = steno__ring_written(S->ring);
    steno__chunk c;
    if (w == steno__ring_acked(S->ring) || steno__ring_peek(S->ring, w - 1, &c) != STENO_OK)
        return steno__ring_frames_in(S->ring);
    return c.first_frame + c.frames;
}

/* The first chunk in the ring that ends after `frame`. */
static bool chunk_at(const struct sim *S, uint64_t frame, steno__chunk *out)
{
    uint64_t lo = steno__ring_acked(S->ring), hi = steno__ring_written(S->ring);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        steno__chunk c;
        assert_int_equal(steno__ring_peek(S->ring, mid, &c), STENO_OK);
        if (c.first_frame + c.frames <= frame)
            lo = mid + 1;
        else
            hi = mid;
    }
    return steno__ring_peek(S->ring, lo, out) == STENO_OK;
}

static void ack(struct sim *S)
{
    uint64_t f = steno__planner_ack_frame(&S->pl, steno__timeline_finalized_frame(S->live.tl));
    uint32_t n = steno__ring_ack_through(S->ring, f);
    if (n)
        TRACE(S, "ack through %.3f: %u chunks released, %llu held", (double)f / RATE, n,
              (unsigned long long)(steno__ring_written(S->ring) - steno__ring_acked(S->ring)));
}

static void record_final(struct sim *S, const struct conn *c, const steno__mapped *m,
                         const steno__word_time *wt, const uint32_t *ids, const bool *whole)
{
    uint32_t lane = c->role == LIVE ? 0 : c->job;
    assert_true(S->nfinals < MAX_FINALS && lane < MAX_FINALS);
    if (m->start_frame < S->lane_end[lane])
        sim_fail(S, "lane %u final [%.3f, %.3f) before its previous final's end %.3f", lane,
                 (double)m->start_frame / RATE, (double)m->end_frame / RATE,
                 (double)S->lane_end[lane] / RATE);
    if (m->end_frame > S->lane_end[lane])
        S->lane_end[lane] = m->end_frame;
    S->finals[S->nfinals++] = (struct final_rec){m->start_frame, m->end_frame, lane};
    for (size_t i = m->first_word; i < m->first_word + m->n_words; i++) {
        uint64_t s, e;
        steno__timeline_map_word(c->tl, m, &wt[i], &s, &e);
        assert_true(S->nfrags < MAX_FRAGS);
        S->frags[S->nfrags++] = (struct frag){s, e, ids[i], whole[i]};
    }
    TRACE(S, "final %s%u [%.3f, %.3f) %zu words", c->role == LIVE ? "live" : "job", lane,
          (double)m->start_frame / RATE, (double)m->end_frame / RATE, m->n_words);
}

static void on_final(struct sim *S, struct conn *c, const struct msg *x)
{
    steno__word_time wt[MAX_FW];
    uint32_t ids[MAX_FW];
    bool whole[MAX_FW];
    size_t n = x->b > x->a ? final_words(S, c, x->a, x->b, wt, ids, whole) : 0;
    double start = c->pv.got_audio ? prov_sec(&c->pv, x->a) : 0;
    double dur = c->pv.got_audio ? prov_sec(&c->pv, x->b) - start : 0;
    steno__mapped m;
    assert_int_equal(steno__timeline_final(c->tl, start, dur, wt, n, &m), STENO_OK);
    if (m.emit)
        record_final(S, c, &m, wt, ids, whole);
    if (x->from_finalize)
        c->finalize_out = false;
    if (c->role == BACKFILL)
        steno__planner_job_progress(&S->pl, c->job, steno__timeline_finalized_frame(c->tl));
    ack(S);
}

static void schedule_retry(struct sim *S, struct conn *c, steno__failure_class cls)
{
    uint64_t delay = 0;
    int rc = steno__backoff_next(&c->bo, S->now, -1, &delay);
    if (rc != STENO_OK) {
        sim_fail(S, "%s connection gave up: %s", c->role == LIVE ? "live" : "backfill",
                 steno_strerror(rc));
        return;
    }
    c->state = C_WAIT;
    c->t = S->now + delay;
    c->retry = true;
    c->cls = cls;
    c->on_breaker = false;
}

static void reset_wire(struct conn *c)
{
    memset(&c->up, 0, sizeof c->up);
    memset(&c->down, 0, sizeof c->down);
    memset(&c->pv, 0, sizeof c->pv);
    c->stall_at = UINT64_MAX;
    c->last_up = 0;
}

/* The open connection is gone (reset, stall seen, or closed by the provider). */
static void conn_lost(struct sim *S, struct conn *c, const char *why)
{
    TRACE(S, "%s %u lost (%s)", c->role == LIVE ? "live" : "backfill", c->index, why);
    steno__backoff_on_disconnect(&c->bo, S->now, c->heard);
    reset_wire(c);
    c->finalize_out = false;
    if (c->role == LIVE) {
        S->live_down_at = S->now;
        if (S->lag_watch) /* the next fault came before the lag recovered */
            S->lag_watch = false;
    } else {
        steno__planner_job_requeue(&S->pl, c->job);
        c->job = 0;
        steno__timeline_destroy(c->tl);
        c->tl = NULL;
    }
    schedule_retry(S, c, STENO__FAILURE_TRANSIENT);
}

static void send_up(struct sim *S, struct conn *c, struct msg m)
{
    uint64_t at = S->now + c->lat + rnd(&S->rng, 0, 40);
    if (at < c->last_up) /* TCP keeps order */
        at = c->last_up;
    c->last_up = at;
    m.at = at;
    q_push(&c->up, m);
}

static void live_open(struct sim *S, struct conn *c)
{
    steno__timeline_connection_begin(c->tl);
    uint64_t live_fin = steno__timeline_finalized_frame(c->tl);
    uint64_t newest = newest_in_ring(S);
    steno__chunk ch;
    uint64_t from = newest;
    if (chunk_at(S, live_fin, &ch)) {
        from = ch.first_frame;
        if (from > live_fin) { /* what it held left the ring */
            steno__timeline_raise_finalized(c->tl, from);
            live_fin = from;
        }
    } else if (live_fin < newest) {
        from = newest;
    } else {
        from = live_fin;
    }
    static steno__boundary b[MAX_BOUNDS];
    size_t n = 0;
    for (uint64_t seq = steno__ring_acked(S->ring); seq < steno__ring_written(S->ring); seq++) {
        assert_int_equal(steno__ring_peek(S->ring, seq, &ch), STENO_OK);
        uint64_t e = ch.first_frame + ch.frames;
        if (e > from && e <= newest)
            b[n++] = (steno__boundary){e, level_at(S, e)};
    }
    steno__resume_plan plan;
    steno__planner_on_live_open(&S->pl, from, live_fin, newest, b, n, &plan);
    steno__timeline_raise_finalized(c->tl, plan.live_from);
    c->next_frame = plan.live_from;
    c->end_frame = UINT64_MAX;
    S->res->backfills += plan.new_jobs;
    TRACE(S, "live open: fin %.3f from %.3f newest %.3f -> live from %.3f, %u jobs%s",
          (double)live_fin / RATE, (double)from / RATE, (double)newest / RATE,
          (double)plan.live_from / RATE, plan.new_jobs, plan.seam_at_pause ? " (pause)" : "");
    if (S->live_down_at != UINT64_MAX) {
        uint64_t out = S->now - S->live_down_at;
        if (out > S->res->worst_outage_ms)
            S->res->worst_outage_ms = out;
        S->res->reconnects++;
        S->lag_watch = true;
        S->lag_open_at = S->now;
    }
}

/* A backfill connection opened: it takes the oldest queued job, if any. */
static bool backfill_open(struct sim *S, struct conn *c)
{
    steno__job *j = steno__planner_next_queued(&S->pl);
    if (!j)
        return false;
    c->job = j->id;
    assert_int_equal(steno__timeline_create(&c->tl, NULL, RATE, S->prm.ring + 1), STENO_OK);
    steno__timeline_connection_begin(c->tl);
    steno__timeline_raise_finalized(c->tl, j->fin);
    steno__timeline_set_limit(c->tl, j->hi);
    steno__planner_job_start(&S->pl, j->id);
    steno__chunk ch;
    c->next_frame = chunk_at(S, j->fin, &ch) && ch.first_frame <= j->fin ? ch.first_frame : j->fin;
    c->end_frame = j->hi;
    TRACE(S, "backfill %u open: job %u [%.3f, %.3f) fin %.3f", c->index, j->id,
          (double)j->lo / RATE, (double)j->hi / RATE, (double)j->fin / RATE);
    return true;
}

static void conn_opened(struct sim *S, struct conn *c)
{
    steno__breaker_on_success(&S->br, S->now);
    steno__budget_on_success(&S->bud, &c->tok);
    steno__backoff_on_connected(&c->bo, S->now);
    c->state = C_OPEN;
    c->retry = false;
    c->opened_at = S->now;
    c->next_ping_at = S->now + PING_MS;
    c->ping_out = c->heard = c->close_sent = c->finalize_out = c->pace_started = false;
    steno__pacing_config pc = {RATE, S->prm.speed, SEND_BURST_MS};
    assert_int_equal(steno__pacing_init(&c->pace, &pc, S->now), STENO_OK);
    reset_wire(c);
    if (c->role == LIVE) {
        live_open(S, c);
    } else if (!backfill_open(S, c)) {
        TRACE(S, "backfill %u open: nothing queued, closing", c->index);
        c->state = C_FREE;
    }
}

/* Wake everyone waiting on the breaker: its probe reported. */
static void breaker_reported(struct sim *S)
{
    struct conn *all[1 + MAX_BACKFILL] = {&S->live, &S->bf[0], &S->bf[1]};
    for (uint32_t i = 0; i < 1 + MAX_BACKFILL; i++)
        if (all[i]->state == C_WAIT && all[i]->on_breaker && all[i]->t > S->now)
            all[i]->t = S->now;
}

static uint32_t connecting(const struct sim *S)
{
    uint32_t n = S->live.state == C_CONNECTING;
    for (uint32_t i = 0; i < MAX_BACKFILL; i++)
        n += S->bf[i].state == C_CONNECTING;
    return n;
}

static void conn_attempt(struct sim *S, struct conn *c)
{
    if (connecting(S) >= CONNECT_LIMIT) {
        c->t = S->now + STEP_MS;
        return;
    }
    bool probe = false;
    uint64_t retry_at = 0;
    if (steno__breaker_allow(&S->br, S->now, &probe, &retry_at) != STENO_OK) {
        c->on_breaker = true;
        c->t = retry_at > S->now ? retry_at : S->now + STEP_MS;
        return;
    }
    if (c->retry) {
        int rc = steno__budget_acquire(&S->bud, c->cls, &c->tok);
        if (rc != STENO_OK) {
            sim_fail(S, "retry budget exhausted");
            return;
        }
    }
    c->on_breaker = false;
    c->probe = probe;
    c->state = C_CONNECTING;
    c->t = S->now + 3 * c->lat + 10;
}

static void conn_connect_done(struct sim *S, struct conn *c)
{
    if (S->now < S->refuse_until) {
        TRACE(S, "%s %u connect refused", c->role == LIVE ? "live" : "backfill", c->index);
        steno__breaker_on_failure(&S->br, S->now);
        if (c->probe)
            breaker_reported(S);
        schedule_retry(S, c, S->refuse_server ? STENO__FAILURE_SERVER : STENO__FAILURE_TRANSIENT);
        return;
    }
    conn_opened(S, c);
    if (c->probe)
        breaker_reported(S);
}

/* Paced sending on an open connection. */
static void conn_send(struct sim *S, struct conn *c)
{
    bool producer_done = S->now > S->audio_ms; /* the last chunk is written at audio_ms */
    while (!S->done && c->next_frame < c->end_frame) {
        steno__chunk ch;
        bool have = chunk_at(S, c->next_frame, &ch);
        if (c->role == BACKFILL && (!have || ch.first_frame >= c->end_frame)) {
            /* What is left of the job left the ring (a loss, counted there). */
            c->next_frame = c->end_frame;
            break;
        }
        if (!have)
            break;
        if (!c->pace_started) { /* the provider's clock starts at the first audio */
            steno__pacing_reset(&c->pace, S->now);
            c->pace_started = true;
        }
        if (!steno__pacing_allow(&c->pace, S->now, ch.frames))
            break;
        assert_int_equal(steno__timeline_on_sent(c->tl, ch.first_frame, ch.frames), STENO_OK);
        send_up(S, c, (struct msg){.kind = M_AUDIO, .a = ch.first_frame, .b = ch.frames});
        c->next_frame = ch.first_frame + ch.frames;
        if ((c->role == LIVE || S->prm.backfill_finalize) && c->next_frame < c->end_frame &&
            steno__planner_should_finalize(&S->pl, c->next_frame,
                                           steno__timeline_finalized_frame(c->tl),
                                           level_at(S, c->next_frame), c->finalize_out)) {
            TRACE(S, "%s Finalize at %.3f (fin %.3f)", c->role == LIVE ? "live" : "backfill",
                  (double)c->next_frame / RATE,
                  (double)steno__timeline_finalized_frame(c->tl) / RATE);
            send_up(S, c, (struct msg){.kind = M_FINALIZE});
            c->finalize_out = true;
        }
    }
    bool all_sent = c->role == BACKFILL ? c->next_frame >= c->end_frame
                                        : producer_done && c->next_frame >= newest_in_ring(S);
    if (all_sent && !c->close_sent) {
        TRACE(S, "%s %u CloseStream", c->role == LIVE ? "live" : "backfill", c->index);
        send_up(S, c, (struct msg){.kind = M_CLOSE});
        c->close_sent = true;
    }
}

static void conn_closed_cleanly(struct sim *S, struct conn *c)
{
    TRACE(S, "%s %u closed cleanly", c->role == LIVE ? "live" : "backfill", c->index);
    steno__backoff_on_disconnect(&c->bo, S->now, true);
    reset_wire(c);
    if (c->role == LIVE) {
        S->live_closed = true;
        c->state = C_FREE;
        return;
    }
    steno__planner_job_done(&S->pl, c->job);
    c->job = 0;
    steno__timeline_destroy(c->tl);
    c->tl = NULL;
    ack(S);
    c->state = C_FREE;
}

static void conn_step(struct sim *S, struct conn *c)
{
    switch (c->state) {
    case C_WAIT:
        if (S->now >= c->t)
            conn_attempt(S, c);
        return;
    case C_CONNECTING:
        if (S->now >= c->t)
            conn_connect_done(S, c);
        return;
    case C_OPEN:
        break;
    default:
        return;
    }
    prov_step(S, c);
    const struct msg *m;
    while (!S->done && c->state == C_OPEN && (m = q_front(&c->down, S->now))) {
        struct msg x = *m;
        q_pop(&c->down);
        if (x.at >= c->stall_at)
            continue;
        c->heard = true;
        if (x.kind == M_PONG)
            c->ping_out = false;
        else if (x.kind == M_FINAL)
            on_final(S, c, &x);
        else if (x.kind == M_CLOSED)
            conn_closed_cleanly(S, c);
    }
    if (S->done || c->state != C_OPEN)
        return;
    if (c->ping_out && S->now >= c->ping_sent_at + PONG_TIMEOUT_MS) {
        conn_lost(S, c, "no pong");
        return;
    }
    if (!c->ping_out && S->now >= c->next_ping_at) {
        send_up(S, c, (struct msg){.kind = M_PING});
        c->ping_out = true;
        c->ping_sent_at = S->now;
        c->next_ping_at = S->now + PING_MS;
    }
    conn_send(S, c);
}

static void apply_fault(struct sim *S, const struct fault *f)
{
    S->res->faults++;
    struct conn *target = NULL;
    if (f->backfill)
        for (uint32_t i = 0; i < S->max_backfill && !target; i++)
            if (S->bf[i].state == C_OPEN)
                target = &S->bf[i];
    if (!target && S->live.state == C_OPEN)
        target = &S->live;
    TRACE(S, "FAULT %s %s%s", fault_name[f->kind],
          target ? (target->role == LIVE ? "live" : "backfill") : "(nothing open)",
          f->kind == F_REFUSE ? (f->server_err ? " 503" : " tcp") : "");
    if (f->kind == F_REFUSE) {
        uint64_t until = S->now + f->dur_ms;
        if (until > S->refuse_until)
            S->refuse_until = until;
        S->refuse_server = f->server_err;
    }
    if (!target)
        return;
    if (f->kind == F_STALL)
        target->stall_at = S->now;
    else
        conn_lost(S, target, fault_name[f->kind]);
}

/* While the live connection is down, the network side makes room itself
 * (drop-oldest), so the producer never finds the ring full. */
static void evict_if_needed(struct sim *S)
{
    if (S->live.state == C_OPEN)
        return;
    uint32_t min_free = (S->prm.ring * 5 + 99) / 100;
    steno__range lost;
    while (steno__ring_evict(S->ring, min_free, &lost) == STENO_OK) {
        TRACE(S, "EVICT [%.3f, %.3f]", (double)lost.first_frame / RATE,
              (double)lost.last_frame / RATE);
        S->res->frames_lost += lost.frames;
        if (S->nlost < MAX_LOST) {
            S->lost_lo[S->nlost] = lost.first_frame;
            S->lost_hi[S->nlost++] = lost.last_frame + 1;
        }
        steno__planner_audio_gone(&S->pl, lost.last_frame + 1);
        steno__timeline_raise_finalized(S->live.tl, lost.last_frame + 1);
    }
}

static void produce(struct sim *S)
{
    static const uint8_t pcm[CHUNK * 2];
    if (S->now == 0 || S->now % CHUNK_MS || S->now > S->audio_ms)
        return;
    steno__ring_write(S->ring, pcm, sizeof pcm);
    steno__range d;
    while (steno__ring_take_dropped(S->ring, &d) == STENO_OK) {
        TRACE(S, "DROP [%.3f, %.3f]", (double)d.first_frame / RATE, (double)d.last_frame / RATE);
        S->res->frames_lost += d.frames;
        if (S->nlost < MAX_LOST) {
            S->lost_lo[S->nlost] = d.first_frame;
            S->lost_hi[S->nlost++] = d.last_frame + 1;
        }
    }
}

static void watch_lag(struct sim *S)
{
    if (!S->lag_watch)
        return;
    uint64_t in = steno__ring_frames_in(S->ring);
    uint64_t sent = S->live.state == C_OPEN ? S->live.next_frame : 0;
    uint64_t elapsed = S->now - S->lag_open_at;
    if (in < sent + FR(1000)) {
        S->lag_watch = false;
        S->res->lag_checks++;
        if (elapsed > S->res->worst_lag_ms)
            S->res->worst_lag_ms = elapsed;
        return;
    }
    if (elapsed > LAG_BOUND_MS)
        sim_fail(S, "live lag %.2f s still >= 1 s %u ms after the reconnect",
                 (double)(in - sent) / RATE, LAG_BOUND_MS);
}

static void spawn_backfill(struct sim *S)
{
    for (uint32_t i = 0; i < S->max_backfill; i++) {
        if (!steno__planner_next_queued(&S->pl))
            return;
        struct conn *c = &S->bf[i];
        if (c->state != C_FREE)
            continue;
        /* The connection count in the brief: one job waiting per free slot. */
        uint32_t busy = 0;
        for (uint32_t k = 0; k < S->max_backfill; k++)
            busy += S->bf[k].state != C_FREE;
        if (busy >= steno__planner_pending(&S->pl))
            return;
        c->state = C_WAIT;
        c->t = S->now;
        c->retry = false;
        c->on_breaker = false;
        steno__backoff_reset(&c->bo);
        c->lat = (uint32_t)rnd(&S->rng, 20, 80);
        TRACE(S, "backfill %u connecting", i);
    }
}

/* ---- the checks at the end ---- */

static int by_start(const void *a, const void *b)
{
    const struct final_rec *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

static int by_word(const void *a, const void *b)
{
    const struct frag *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

static bool word_lost(const struct sim *S, const struct word *w)
{
    for (uint32_t i = 0; i < S->nlost; i++)
        if (S->lost_lo[i] < w->e && w->s < S->lost_hi[i])
            return true;
    return false;
}

static void final_checks(struct sim *S)
{
    steno__ring_stats st;
    steno__ring_stats_get(S->ring, &st);
    if (S->prm.loss_is_failure && (st.frames_dropped || st.frames_evicted))
        sim_fail(S, "audio lost: %.2f s dropped by the producer, %.2f s evicted",
                 (double)st.frames_dropped / RATE, (double)st.frames_evicted / RATE);
    if (steno__ring_acked(S->ring) != steno__ring_written(S->ring))
        sim_fail(S, "ring not empty after the closing drain: %llu chunks held",
                 (unsigned long long)(steno__ring_written(S->ring) - steno__ring_acked(S->ring)));
    qsort(S->finals, S->nfinals, sizeof S->finals[0], by_start);
    uint64_t end = 0;
    for (uint32_t i = 0; i < S->nfinals; i++) {
        const struct final_rec *f = &S->finals[i];
        if (f->e > f->s && f->s < end)
            sim_fail(S, "final [%.3f, %.3f) (lane %u) overlaps earlier audio up to %.3f",
                     (double)f->s / RATE, (double)f->e / RATE, f->lane, (double)end / RATE);
        if (f->e > end)
            end = f->e;
    }
    qsort(S->frags, S->nfrags, sizeof S->frags[0], by_word);
    uint32_t k = 0;
    for (uint32_t w = 0; w < S->nw; w++) {
        uint32_t n = 0, whole = 0;
        uint64_t prev_e = 0;
        bool cut = false;
        for (; k < S->nfrags && S->frags[k].w == w; k++, n++) {
            if (n && S->frags[k].s < prev_e)
                sim_fail(S, "word %u [%.3f, %.3f): its audio is in two finals", w,
                         (double)S->w[w].s / RATE, (double)S->w[w].e / RATE);
            prev_e = S->frags[k].e;
            whole += S->frags[k].whole;
            cut |= !S->frags[k].whole;
        }
        if (whole > 1)
            sim_fail(S, "word %u [%.3f, %.3f) emitted whole %u times", w, (double)S->w[w].s / RATE,
                     (double)S->w[w].e / RATE, whole);
        if (!n && !word_lost(S, &S->w[w]))
            sim_fail(S, "word %u [%.3f, %.3f) in no final", w, (double)S->w[w].s / RATE,
                     (double)S->w[w].e / RATE);
        if (n > 1 || cut)
            S->res->cut_words++;
    }
    S->res->words = S->nw;
}

/* ---- one schedule ---- */

static void conn_init(struct sim *S, struct conn *c, enum role role, uint32_t index)
{
    memset(c, 0, sizeof *c);
    c->role = role;
    c->index = index;
    c->state = C_FREE;
    c->stall_at = UINT64_MAX;
    steno__backoff_config bc;
    steno__backoff_config_default(&bc);
    if (S->prm.backoff_cap_ms)
        bc.cap_ms = S->prm.backoff_cap_ms;
    assert_int_equal(steno__backoff_init(&c->bo, &bc, backoff_rand, &S->rng), STENO_OK);
}

static void make_faults(struct sim *S)
{
    S->nfaults = 0;
    uint64_t t = rnd(&S->rng, 1000, FAULT_GAP_MAX_MS);
    while (t + 3000 < S->audio_ms && S->nfaults < MAX_FAULTS) {
        struct fault *f = &S->faults[S->nfaults++];
        f->at_ms = t / STEP_MS * STEP_MS;
        f->kind = (enum fault_kind)rnd(&S->rng, 0, 2);
        f->backfill = rnd(&S->rng, 0, 2) == 0;
        f->dur_ms = rnd(&S->rng, 500, S->prm.outage_ms) / STEP_MS * STEP_MS;
        f->server_err = rnd(&S->rng, 0, 1);
        t += rnd(&S->rng, FAULT_GAP_MIN_MS, FAULT_GAP_MAX_MS);
        /* One outage is one window: the next fault keeps the same distance
         * from its end, so windows never join into a longer outage. */
        if (f->kind == F_REFUSE && !S->prm.chained && t < f->at_ms + f->dur_ms + FAULT_GAP_MIN_MS)
            t = f->at_ms + f->dur_ms + FAULT_GAP_MIN_MS;
    }
}

static void run_schedule(const struct params *prm, uint64_t seed, bool trace, struct result *res)
{
    static struct sim sim; /* large: keep it off the stack */
    struct sim *S = &sim;
    memset(S, 0, sizeof *S);
    memset(res, 0, sizeof *res);
    S->prm = *prm;
    S->seed = seed;
    S->rng = seed;
    S->trace = trace;
    S->res = res;
    S->audio_ms = rnd(&S->rng, 300, 600) * 100;
    S->max_backfill = rnd(&S->rng, 0, 3) == 0 ? 2 : 1;
    res->max_backfill = S->max_backfill;
    res->audio_ms = S->audio_ms;
    make_speech(S);
    make_faults(S);

    assert_int_equal(steno__ring_create(&S->ring, NULL, prm->ring, CHUNK, 2), STENO_OK);
    steno__planner_config pc;
    steno__planner_config_default(&pc, RATE, CHUNK);
    pc.max_backfill = S->max_backfill;
    if (prm->finalize_ms)
        pc.finalize_frames = FR(prm->finalize_ms);
    steno__planner_init(&S->pl, &pc);
    steno__breaker_config brc;
    steno__breaker_config_default(&brc);
    if (prm->breaker_threshold)
        brc.failure_threshold = prm->breaker_threshold;
    assert_int_equal(steno__breaker_init(&S->br, &brc), STENO_OK);
    assert_int_equal(steno__budget_init(&S->bud, NULL), STENO_OK);
    conn_init(S, &S->live, LIVE, 0);
    for (uint32_t i = 0; i < MAX_BACKFILL; i++)
        conn_init(S, &S->bf[i], BACKFILL, i);
    assert_int_equal(steno__timeline_create(&S->live.tl, NULL, RATE, prm->ring + 1), STENO_OK);
    S->live.lat = (uint32_t)rnd(&S->rng, 20, 80);
    S->live.state = C_WAIT;
    S->live_down_at = UINT64_MAX;

    if (trace) {
        printf("schedule seed=%llu speed=%.2fx ring=%u outage<=%u ms audio=%.1f s "
               "max_backfill=%u words=%u utterances=%u\n",
               (unsigned long long)seed, prm->speed / 1000.0, prm->ring, prm->outage_ms,
               S->audio_ms / 1000.0, S->max_backfill, S->nw, S->nu);
        for (uint32_t i = 0; i < S->nfaults; i++)
            printf("  fault %2u at %6.2f s: %-6s %s dur %.2f s\n", i,
                   (double)S->faults[i].at_ms / 1000, fault_name[S->faults[i].kind],
                   S->faults[i].backfill ? "backfill" : "live", (double)S->faults[i].dur_ms / 1000);
    }

    for (S->now = 0; !S->done; S->now += STEP_MS) {
        while (S->next_fault < S->nfaults && S->faults[S->next_fault].at_ms <= S->now)
            apply_fault(S, &S->faults[S->next_fault++]);
        if (!S->live_closed)
            conn_step(S, &S->live);
        for (uint32_t i = 0; i < S->max_backfill && !S->done; i++)
            conn_step(S, &S->bf[i]);
        spawn_backfill(S);
        evict_if_needed(S);
        produce(S);
        watch_lag(S);
        if (S->live_closed && !steno__planner_pending(&S->pl)) {
            ack(S);
            break;
        }
        if (S->now > S->audio_ms + DRAIN_LIMIT_MS)
            sim_fail(S, "the closing drain did not finish in %u s", DRAIN_LIMIT_MS / 1000);
    }
    if (!res->failed)
        final_checks(S);
    if (S->lag_watch && !res->failed)
        sim_fail(S, "live lag never back under 1 s");
    steno__timeline_destroy(S->live.tl);
    for (uint32_t i = 0; i < MAX_BACKFILL; i++)
        steno__timeline_destroy(S->bf[i].tl);
    steno__ring_destroy(S->ring);
}

/* ---- driver ---- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static struct params env_params(uint32_t speed)
{
    const char *engine = getenv("STENO_SIM_ENGINE");
    bool spec = engine && !strcmp(engine, "spec");
    return (struct params){
        .speed = speed,
        .ring = (uint32_t)env_u64("STENO_SIM_RING", DEFAULT_RING),
        .outage_ms = (uint32_t)env_u64("STENO_SIM_OUTAGE_MS", DEFAULT_OUTAGE_MS),
        .loss_is_failure = !env_u64("STENO_SIM_LOSS_OK", 0),
        .chained = env_u64("STENO_SIM_CHAINED", 0) != 0,
        .backfill_finalize = env_u64("STENO_SIM_BACKFILL_FINALIZE", !spec) != 0,
        .finalize_ms = (uint32_t)env_u64("STENO_SIM_FINALIZE_MS", spec ? 0 : FINALIZE_MS),
        .backoff_cap_ms = (uint32_t)env_u64("STENO_SIM_BACKOFF_CAP_MS", spec ? 0 : BACKOFF_CAP_MS),
        .breaker_threshold =
            (uint32_t)env_u64("STENO_SIM_BREAKER_FAILURES", spec ? 0 : BREAKER_FAILURES),
    };
}

static uint64_t schedule_seed(uint32_t speed, uint64_t i)
{
    uint64_t s = ((uint64_t)speed << 40) ^ i ^ UINT64_C(0x5713e0d5eed);
    return splitmix64(&s);
}

static const uint32_t speeds[] = {1000, 1250, 2000};

static void print_envelope(const struct params *p)
{
    printf("envelope: faults >= %u ms apart (gap %u-%u ms, and %u ms after a refused window "
           "ends%s), refused windows 500-%u ms, kinds reset / half-open stall (ping %u ms, pong "
           "timeout %u ms) / refused window (503 or TCP), on live or backfill; ring %u x %u ms; "
           "send burst %u ms, provider burst %u ms; live lag < 1 s within %u ms of a reconnect\n"
           "engine: backfill finalize %s, finalize at %u ms, backoff cap %u ms, breaker opens "
           "after %u failures\n",
           FAULT_GAP_MIN_MS, FAULT_GAP_MIN_MS, FAULT_GAP_MAX_MS, FAULT_GAP_MIN_MS,
           p->chained ? ": OFF, windows may chain" : "", p->outage_ms, PING_MS, PONG_TIMEOUT_MS,
           p->ring, CHUNK_MS, SEND_BURST_MS, PROVIDER_BURST_MS, LAG_BOUND_MS,
           p->backfill_finalize ? "on" : "off", p->finalize_ms ? p->finalize_ms : 2500,
           p->backoff_cap_ms ? p->backoff_cap_ms : 30000,
           p->breaker_threshold ? p->breaker_threshold : 5);
}

struct totals {
    uint64_t runs, failed, lossy, frames_lost, cut, words, reconnects, backfills, faults, mb2;
    uint64_t worst_lag, worst_outage, worst_loss;
};

static void add(struct totals *t, const struct result *r)
{
    t->runs++;
    t->failed += r->failed;
    t->lossy += r->frames_lost > 0;
    t->frames_lost += r->frames_lost;
    t->cut += r->cut_words;
    t->words += r->words;
    t->reconnects += r->reconnects;
    t->backfills += r->backfills;
    t->faults += r->faults;
    t->mb2 += r->max_backfill == 2;
    if (r->worst_lag_ms > t->worst_lag)
        t->worst_lag = r->worst_lag_ms;
    if (r->worst_outage_ms > t->worst_outage)
        t->worst_outage = r->worst_outage_ms;
    if (r->frames_lost > t->worst_loss)
        t->worst_loss = r->frames_lost;
}

static void test_replay_one_schedule(void **state)
{
    (void)state;
    uint64_t seed = env_u64("STENO_SIM_SEED", 0);
    if (!getenv("STENO_SIM_SEED"))
        skip();
    struct params p = env_params((uint32_t)env_u64("STENO_SIM_SPEED", 1250));
    print_envelope(&p);
    struct result r;
    run_schedule(&p, seed, true, &r);
    printf("result: %s%s; lost %.2f s, cut words %u of %u, reconnects %u, backfills %u, worst "
           "lag recovery %llu ms, worst outage %llu ms\n",
           r.failed ? "FAILED: " : "ok", r.failed ? r.why : "", (double)r.frames_lost / RATE,
           r.cut_words, r.words, r.reconnects, r.backfills, (unsigned long long)r.worst_lag_ms,
           (unsigned long long)r.worst_outage_ms);
    assert_false(r.failed);
}

static void test_zero_loss_under_random_fault_schedules(void **state)
{
    (void)state;
    if (getenv("STENO_SIM_SEED") || getenv("STENO_SIM_SWEEP"))
        skip();
    uint64_t n = env_u64("STENO_SIM_SCHEDULES", SANITIZED ? 300 : 10000);
    struct params p = env_params(0);
    print_envelope(&p);
    uint64_t failures = 0;
    for (size_t si = 0; si < sizeof speeds / sizeof speeds[0]; si++) {
        p.speed = speeds[si];
        struct totals t = {0};
        uint32_t shown = 0;
        for (uint64_t i = 0; i < n; i++) {
            struct result r;
            uint64_t seed = schedule_seed(p.speed, i);
            run_schedule(&p, seed, false, &r);
            add(&t, &r);
            if (r.failed && shown++ < 5)
                printf("FAILED speed %.2fx seed %llu: %s\n  replay: STENO_SIM_SEED=%llu "
                       "STENO_SIM_SPEED=%u STENO_SIM_RING=%u STENO_SIM_OUTAGE_MS=%u "
                       "build/tests/unit/test_recovery_sim\n",
                       p.speed / 1000.0, (unsigned long long)seed, r.why, (unsigned long long)seed,
                       p.speed, p.ring, p.outage_ms);
        }
        printf("speed %.2fx: %llu schedules (%llu with 2 backfill connections), %llu failed; "
               "%llu faults, %llu live reconnects, %llu backfill jobs; lost %.2f s in %llu "
               "schedules; worst live-lag recovery %llu ms after a reconnect; longest live "
               "outage %llu ms; cut words %llu of %llu (%.2f%%)\n",
               p.speed / 1000.0, (unsigned long long)t.runs, (unsigned long long)t.mb2,
               (unsigned long long)t.failed, (unsigned long long)t.faults,
               (unsigned long long)t.reconnects, (unsigned long long)t.backfills,
               (double)t.frames_lost / RATE, (unsigned long long)t.lossy,
               (unsigned long long)t.worst_lag, (unsigned long long)t.worst_outage,
               (unsigned long long)t.cut, (unsigned long long)t.words,
               t.words ? 100.0 * (double)t.cut / (double)t.words : 0.0);
        fflush(stdout);
        failures += t.failed;
    }
    assert_int_equal(failures, 0);
}

/* What the default ring holds: losses over ring sizes and outage limits. */
static void test_sweep_ring_and_outage(void **state)
{
    (void)state;
    if (!getenv("STENO_SIM_SWEEP"))
        skip();
    uint64_t n = env_u64("STENO_SIM_SCHEDULES", 500);
    static const uint32_t rings[] = {100, 150, 200, 300};
    static const uint32_t outages[] = {1000, 2000, 3000, 4000, 6000};
    struct params shown = env_params(0);
    print_envelope(&shown);
    printf("sweep: %llu schedules per cell; cell = schedules losing audio / other failures "
           "(worst loss s)\n",
           (unsigned long long)n);
    for (size_t si = 0; si < sizeof speeds / sizeof speeds[0]; si++) {
        printf("speed %.2fx\n  ring \\ outage", speeds[si] / 1000.0);
        for (size_t o = 0; o < sizeof outages / sizeof outages[0]; o++)
            printf(" %14.1fs", outages[o] / 1000.0);
        printf("\n");
        for (size_t ri = 0; ri < sizeof rings / sizeof rings[0]; ri++) {
            printf("  %3u (%4.1f s) ", rings[ri], rings[ri] / 10.0);
            for (size_t o = 0; o < sizeof outages / sizeof outages[0]; o++) {
                struct params p = env_params(speeds[si]);
                p.ring = rings[ri];
                p.outage_ms = outages[o];
                p.loss_is_failure = false;
                struct totals t = {0};
                for (uint64_t i = 0; i < n; i++) {
                    struct result r;
                    run_schedule(&p, schedule_seed(p.speed, i), false, &r);
                    add(&t, &r);
                }
                char cell[32];
                snprintf(cell, sizeof cell, "%llu/%llu (%.1f)", (unsigned long long)t.lossy,
                         (unsigned long long)t.failed, (double)t.worst_loss / RATE);
                printf(" %15s", cell);
                fflush(stdout);
            }
            printf("\n");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_one_schedule),
        cmocka_unit_test(test_zero_loss_under_random_fault_schedules),
        cmocka_unit_test(test_sweep_ring_and_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
