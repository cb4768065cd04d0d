/* engine_pocketsphinx: steno-server's real recognition engine (CMU pocketsphinx, en-us). */
#include "engine.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/logmath.h>

/*
 * Recognition runs on 16 kHz mono, what the en-us model was trained on; other
 * input rates go through a windowed-sinc resampler. All internal positions are
 * counted in 16 kHz samples since the connection's first audio sample, so a
 * position divided by 16000 is a Deepgram time in seconds.
 *
 * Utterances follow pocketsphinx_continuous exactly, so the server is as
 * accurate as that tool: audio is decoded in 2048-sample blocks, and after
 * each block ps_get_in_speech() (the front end's VAD) is checked; an utterance
 * ends when it turns false after having been true. On top of that:
 *   - an utterance is cut after MAX_UTT of speech, so that continuous talk
 *     still yields finals the client can acknowledge audio with;
 *   - silence yields empty finals every SILENCE_FINAL, lagging PREROLL behind
 *     the audio so that a word starting in the VAD's look-back window can
 *     never fall before the end of a final already sent;
 *   - endpointing_ms longer than the VAD's own hang-over holds the final
 *     until that much silence followed the last word (speech_final=true) or
 *     speech resumed (speech_final=false).
 *
 * Decoder pool. A decoder costs ~100 MB and ~0.4 s to create, so there are at
 * most `pool` of them (created lazily; default 2, the server's worker count),
 * shared by all connections. A decoder carries per-stream state between calls
 * (the running utterance, the noise estimate, the cepstral mean), so a stream
 * keeps the decoder it last used ("owner") while idle between calls and gets
 * it back at its next call unless it was taken. A stream needing a decoder
 * takes, in order: an unowned one, a new one (below the limit), or the least
 * recently used one of an idle stream in silence (whose silent utterance is
 * just dropped). Failing that it does not wait: it queues its audio (up to
 * BACKLOG) and retries at its next call. Only when the queue is full, or at
 * Finalize/CloseStream, does it insist: it takes the least recently used
 * decoder of an idle stream that is mid-utterance, ends that utterance on the
 * spot and queues its final in the victim stream, which emits it at its next
 * call and goes on with whatever decoder it gets then. A stream waits only
 * while every decoder is in use by a running call, and a running call never
 * waits for another stream: no deadlock for any number of connections, and
 * memory stays at pool x ~100 MB. With no more streams talking at once than
 * decoders, each stream keeps its decoder and is decoded exactly as
 * pocketsphinx_continuous decodes it; beyond that, recognition degrades
 * gracefully (later results, utterances cut where a decoder changed hands).
 * The cepstral mean travels with the stream (saved when its decoder is taken,
 * restored when it gets one); the noise estimate restarts, and the last
 * PREROLL of not yet finalized audio is decoded again so that the VAD sees a
 * speech onset it may have been in the middle of.
 */

#define PS_RATE 16000
#define BLOCK 2048             /* as pocketsphinx_continuous reads */
#define PREROLL 8192           /* 0.512 s replayed on a decoder change; lag of silence finals */
#define INTERIM_EVERY 8000     /* 0.5 s of audio between interim results */
#define MAX_UTT (10 * PS_RATE) /* speech after which an utterance is cut */
#define SILENCE_FINAL (2 * PS_RATE)
#define BACKLOG (5 * PS_RATE / BLOCK * BLOCK) /* queued audio before cutting another stream */
#define FRAME_SHIFT 160                       /* 100 frames/s at 16 kHz */
#define VAD_START 1600 /* the VAD needs ~10 frames of speech before it reports it */
#define POOL_MAX 16
#define CMN_MAX 64

#ifndef STENO_PS_MODELDIR
#define STENO_PS_MODELDIR "/usr/share/pocketsphinx/model"
#endif

/* ---- windowed-sinc resampler (any rate -> 16 kHz) ----------------------- */

/*
 * Band-limited interpolation: output n sits at input position n*in/out; it is
 * the sum of nearby input samples weighted by a Blackman-windowed sinc whose
 * cut-off is 95% of the lower Nyquist frequency (so downsampling does not
 * alias). The kernel is tabulated at RS_OS points per input sample and
 * linearly interpolated. The history buffer holds the input the next outputs
 * still need; it has a fixed size, so feeding large chunks costs no memory.
 */
#define RS_ZC 12 /* zero crossings on each side of the kernel */
#define RS_OS 256
#define RS_CHUNK 4096

typedef struct resampler {
    uint32_t in_rate;
    double fc;         /* cut-off, cycles per input sample */
    int half;          /* kernel half width in input samples */
    float *kern;       /* kern[k] = h(k / RS_OS), k = 0 .. half * RS_OS + 1 */
    int16_t *hist;     /* input samples hbase .. hbase + hlen - 1 */
    size_t hcap, hlen; /* capacity, fill */
    int64_t hbase;
    int64_t in_total; /* input samples received */
    int64_t out_next; /* index of the next output sample */
} resampler;

static int rs_init(resampler *r, uint32_t in_rate)
{
    memset(r, 0, sizeof(*r));
    r->in_rate = in_rate;
    if (in_rate == PS_RATE)
        return 0;
    double lower = in_rate < PS_RATE ? in_rate : PS_RATE;
    r->fc = 0.95 * 0.5 * lower / in_rate;
    r->half = (int)ceil(RS_ZC / (2.0 * r->fc));
    size_t n = (size_t)r->half * RS_OS + 2;
    r->kern = malloc(n * sizeof(*r->kern));
    r->hcap = RS_CHUNK + 2 * (size_t)r->half + 2;
    r->hist = malloc(r->hcap * sizeof(*r->hist));
    if (!r->kern || !r->hist)
        return -1;
    for (size_t k = 0; k < n; k++) {
        double x = (double)k / RS_OS; /* input samples from the centre */
        double t = x / r->half;       /* window argument, 0..1 */
        double w = t >= 1.0 ? 0.0 : 0.42 + 0.5 * cos(M_PI * t) + 0.08 * cos(2 * M_PI * t);
        double a = 2.0 * M_PI * r->fc * x;
        double s = x == 0.0 ? 1.0 : sin(a) / a;
        r->kern[k] = (float)(2.0 * r->fc * s * w);
    }
    return 0;
}

static void rs_free(resampler *r)
{
    free(r->kern);
    free(r->hist);
}

/* Input received that has not yet become output. */
static int rs_pending(const resampler *r)
{
    return r->in_rate != PS_RATE &&
           (r->in_total * PS_RATE + r->in_rate - 1) / r->in_rate > r->out_next;
}

static inline double rs_kernel(const resampler *r, double x)
{
    double p = fabs(x) * RS_OS;
    size_t k = (size_t)p;
    if (k + 1 >= (size_t)r->half * RS_OS + 2)
        return 0.0;
    double f = p - (double)k;
    return r->kern[k] + f * (r->kern[k + 1] - r->kern[k]);
}

static inline int16_t rs_sample(const resampler *r, int64_t j)
{
    if (j < r->hbase || j >= r->hbase + (int64_t)r->hlen)
        return 0; /* before the stream or past what arrived (only when draining) */
    return r->hist[j - r->hbase];
}

/* Emits the outputs whose input neighbourhood has arrived; with `drain`, also
 * the rest up to the input end, treating the missing look-ahead as silence. */
static size_t rs_run(resampler *r, int drain, int16_t *out, size_t cap)
{
    size_t n = 0;
    int64_t end = drain ? (r->in_total * PS_RATE + r->in_rate - 1) / r->in_rate : INT64_MAX;
    while (n < cap && r->out_next < end) {
        int64_t num = r->out_next * (int64_t)r->in_rate;
        int64_t i = num / PS_RATE;
        double frac = (double)(num % PS_RATE) / PS_RATE;
        if (!drain && i + r->half >= r->hbase + (int64_t)r->hlen)
            break;
        double acc = 0.0;
        for (int64_t j = i - r->half + 1; j <= i + r->half; j++)
            acc += rs_sample(r, j) * rs_kernel(r, (double)(i - j) + frac);
        long v = lrint(acc);
        out[n++] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
        r->out_next++;
    }
    /* Forget input that no future output reaches. */
    int64_t keep = (r->out_next * (int64_t)r->in_rate) / PS_RATE - r->half + 1;
    if (keep > r->hbase) {
        size_t drop = (size_t)(keep - r->hbase);
        if (drop > r->hlen)
            drop = r->hlen;
        memmove(r->hist, r->hist + drop, (r->hlen - drop) * sizeof(*r->hist));
        r->hlen -= drop;
        r->hbase += (int64_t)drop;
    }
    return n;
}

/* ---- engine and decoder pool --------------------------------------------- */

typedef struct cmn_snap {
    int valid;
    int32 nframe;
    int veclen;
    mfcc_t mean[CMN_MAX], sum[CMN_MAX];
} cmn_snap;

typedef struct ps_slot {
    ps_decoder_t *ps;
    srv_stream *owner; /* whose state the decoder holds, or NULL */
    uint64_t last_used;
} ps_slot;

struct srv_engine {
    pthread_mutex_t mtx; /* the pool, owners, streams' in_call/preempt_busy */
    pthread_cond_t cv;
    pthread_mutex_t create_mtx; /* sphinxbase keeps some init-time globals */
    ps_slot slots[POOL_MAX];
    size_t n_slots, n_creating, max;
    uint64_t clock;
    cmn_snap cmn_init; /* the model's initial cepstral mean */
    char hmm[PATH_MAX], lm[PATH_MAX], dict[PATH_MAX];
};

typedef struct utt_result {
    int valid;
    uint64_t start, end; /* span covered */
    uint64_t lwe;        /* last word end (valid when n_words) */
    char *text;
    char *pool; /* word strings, NUL-separated */
    srv_word *words;
    size_t n_words;
    double conf;
} utt_result;

struct srv_stream {
    srv_engine *e;
    srv_stream_params p;
    resampler rs;
    int16_t blk[BLOCK]; /* 16 kHz samples not yet decoded */
    size_t blk_n;
    int16_t pre[PREROLL]; /* ring: the last PREROLL samples decoded */
    size_t pre_n, pre_w;
    uint64_t pos; /* 16 kHz samples decoded */
    int16_t *bl;  /* whole blocks waiting for a decoder (allocated on first need) */
    size_t bl_n;

    /* Pool bookkeeping, under e->mtx. */
    ps_slot *dec;
    int in_call, preempt_busy;
    cmn_snap cmn;

    /* Decoder-side state (valid while dec != NULL). */
    uint64_t dec_base; /* position of the decoder's stream frame 0 */
    int utt_open, utt_speech;
    uint64_t utt_start; /* position of the running utterance's first sample */
    uint64_t utt_speech_pos, last_interim;

    /* Results timeline. */
    int speaking;          /* between SpeechStarted and the VAD's end of speech */
    uint64_t final_cursor; /* end of the last final's span */
    utt_result held;       /* VAD final waiting for endpointing_ms of silence */
    utt_result cut;        /* final of an utterance ended by preemption */
    uint64_t last_word_end;
    int ue_pending; /* words finalized since the last UtteranceEnd */
};

static void result_clear(utt_result *r)
{
    free(r->text);
    free(r->pool);
    free(r->words);
    memset(r, 0, sizeof(*r));
}

static void cmn_save(ps_decoder_t *ps, cmn_snap *c)
{
    cmn_t *m = ps_get_feat(ps)->cmn_struct;
    c->valid = 0;
    if (!m || m->veclen > CMN_MAX)
        return;
    c->veclen = m->veclen;
    c->nframe = m->nframe;
    memcpy(c->mean, m->cmn_mean, (size_t)m->veclen * sizeof(mfcc_t));
    memcpy(c->sum, m->sum, (size_t)m->veclen * sizeof(mfcc_t));
    c->valid = 1;
}

static void cmn_restore(ps_decoder_t *ps, const cmn_snap *c)
{
    cmn_t *m = ps_get_feat(ps)->cmn_struct;
    if (!m || !c->valid || m->veclen != c->veclen)
        return;
    m->nframe = c->nframe;
    memcpy(m->cmn_mean, c->mean, (size_t)c->veclen * sizeof(mfcc_t));
    memcpy(m->sum, c->sum, (size_t)c->veclen * sizeof(mfcc_t));
}

static ps_decoder_t *decoder_new(srv_engine *e)
{
    /* Each decoder gets its own config: ps_init writes derived paths into it. */
    pthread_mutex_lock(&e->create_mtx);
    ps_decoder_t *ps = NULL;
    cmd_ln_t *cfg =
        cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", e->hmm, "-lm", e->lm, "-dict", e->dict, NULL);
    if (cfg) {
        ps = ps_init(cfg);
        cmd_ln_free_r(cfg); /* the decoder holds its own reference */
    }
    pthread_mutex_unlock(&e->create_mtx);
    return ps;
}

static int parse_opts(srv_engine *e, const char *opts, char *err, size_t errlen)
{
    snprintf(e->hmm, sizeof(e->hmm), "%s/en-us/en-us", STENO_PS_MODELDIR);
    snprintf(e->lm, sizeof(e->lm), "%s/en-us/en-us.lm.bin", STENO_PS_MODELDIR);
    snprintf(e->dict, sizeof(e->dict), "%s/en-us/cmudict-en-us.dict", STENO_PS_MODELDIR);
    e->max = 2;
    if (!opts)
        return 0;
    char buf[3 * PATH_MAX];
    if (strlen(opts) >= sizeof(buf)) {
        snprintf(err, errlen, "engine options too long");
        return -1;
    }
    strcpy(buf, opts);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v) {
            snprintf(err, errlen, "engine option '%s' is not key=value", kv);
            return -1;
        }
        *v++ = '\0';
        if (!strcmp(kv, "pool")) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 1 || n > POOL_MAX) {
                snprintf(err, errlen, "pool must be 1..%d", POOL_MAX);
                return -1;
            }
            e->max = (size_t)n;
        } else if (!strcmp(kv, "hmm") || !strcmp(kv, "lm") || !strcmp(kv, "dict")) {
            char *dst = kv[0] == 'h' ? e->hmm : kv[0] == 'l' ? e->lm : e->dict;
            if (strlen(v) >= PATH_MAX) {
                snprintf(err, errlen, "%s path too long", kv);
                return -1;
            }
            strcpy(dst, v);
        } else {
            snprintf(err, errlen, "unknown engine option '%s' (pool, hmm, lm, dict)", kv);
            return -1;
        }
    }
    return 0;
}

static void ps_engine_destroy(srv_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_slots; i++)
        ps_free(e->slots[i].ps);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mtx);
    pthread_mutex_destroy(&e->create_mtx);
    free(e);
}

static int ps_engine_create(srv_engine **out, const char *opts, char *err, size_t errlen)
{
    srv_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&e->mtx, NULL);
    pthread_mutex_init(&e->create_mtx, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (parse_opts(e, opts, err, errlen) < 0) {
        ps_engine_destroy(e);
        return -1;
    }
    /* sphinxbase logs through a process-wide FILE*; silence it once, here,
     * before any worker thread exists, rather than per decoder (-logfn). */
    err_set_logfp(NULL);
    /* The first decoder is made now so a missing model fails at start-up. */
    ps_decoder_t *ps = decoder_new(e);
    if (!ps) {
        snprintf(err, errlen, "pocketsphinx: cannot load model (hmm %s, lm %s, dict %s)", e->hmm,
                 e->lm, e->dict);
        ps_engine_destroy(e);
        return -1;
    }
    cmn_save(ps, &e->cmn_init);
    e->slots[0].ps = ps;
    e->n_slots = 1;
    *out = e;
    return 0;
}

/* ---- results ------------------------------------------------------------- */

static int is_filler(const char *w)
{
    return w[0] == '<' || w[0] == '[' || w[0] == '+';
}

/*
 * Segment frames count from the front end's stream start (dec_base), but the
 * VAD dates an utterance's first frame as if its look-back buffer were full,
 * which it is not when speech comes right at the utterance start (after a
 * cut, a Finalize, a decoder change), and the front end drops the partial
 * frame it holds at each utterance start. So frames are shifted to make the
 * first segment start no earlier than the utterance, and times clamped to
 * the utterance's audio.
 */
static int64_t frame_shift(srv_stream *s, ps_decoder_t *ps)
{
    int64_t first = INT64_MAX;
    for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
        int sf, ef;
        ps_seg_frames(seg, &sf, &ef);
        if (sf < first)
            first = sf;
    }
    int64_t utt_frame = (int64_t)((s->utt_start - s->dec_base + FRAME_SHIFT - 1) / FRAME_SHIFT);
    return first != INT64_MAX && first < utt_frame ? utt_frame - first : 0;
}

/* The word of a segment without an alternate pronunciation's "(2)"; its
 * length, or 0 for silence and noise fillers. */
static size_t seg_word(ps_seg_t *seg, const char **out)
{
    const char *w = ps_seg_word(seg);
    if (!w || is_filler(w))
        return 0;
    size_t wl = strlen(w);
    const char *alt = strchr(w, '(');
    if (alt && alt > w && w[wl - 1] == ')')
        wl = (size_t)(alt - w);
    *out = w;
    return wl;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Reads the decoder's current (partial or final) best path into r. */
static int result_from_decoder(srv_stream *s, ps_decoder_t *ps, utt_result *r)
{
    (void)ps_get_hyp(ps, NULL); /* runs the best-path search the word posteriors need */
    size_t n = 0, chars = 0;
    const char *w;
    for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
        size_t wl = seg_word(seg, &w);
        if (wl) {
            n++;
            chars += wl + 1;
        }
    }
    r->text = malloc(chars + 1);
    r->pool = malloc(chars + 1);
    r->words = malloc((n ? n : 1) * sizeof(*r->words));
    if (!r->text || !r->pool || !r->words)
        return -1;
    r->text[0] = '\0';

    logmath_t *lm = ps_get_logmath(ps);
    int64_t shift = frame_shift(s, ps);
    size_t plen = 0, tlen = 0;
    double csum = 0.0;
    for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
        size_t wl = seg_word(seg, &w);
        if (!wl)
            continue;
        if (r->n_words == n) { /* cannot happen: the same best path twice */
            ps_seg_free(seg);
            break;
        }
        int sf, ef;
        ps_seg_frames(seg, &sf, &ef);
        int64_t fs = sf + shift, fe = ef + 1 + shift;
        uint64_t ws = s->dec_base + (uint64_t)(fs < 0 ? 0 : fs) * FRAME_SHIFT;
        uint64_t we = s->dec_base + (uint64_t)(fe < 0 ? 0 : fe) * FRAME_SHIFT;
        ws = clamp_u64(ws, s->utt_start, s->pos);
        we = clamp_u64(we, ws, s->pos);
        double c = logmath_exp(lm, ps_seg_prob(seg, NULL, NULL, NULL));
        c = c >= 0.0 && c <= 1.0 ? c : c > 1.0 ? 1.0 : 0.0;

        char *word = r->pool + plen;
        memcpy(word, w, wl);
        word[wl] = '\0';
        plen += wl + 1;
        if (tlen)
            r->text[tlen++] = ' ';
        memcpy(r->text + tlen, w, wl);
        tlen += wl;
        r->text[tlen] = '\0';
        r->words[r->n_words++] = (srv_word){.word = word,
                                            .start = (double)ws / PS_RATE,
                                            .end = (double)we / PS_RATE,
                                            .confidence = c};
        csum += c;
        r->lwe = we;
    }
    r->conf = r->n_words ? csum / (double)r->n_words : 0.0;
    r->valid = 1;
    return 0;
}

static void emit_result(srv_stream *s, const utt_result *r, int is_final, int speech_final,
                        int from_finalize, srv_emit_fn emit, void *ctx)
{
    srv_event ev = {
        .kind = SRV_EV_RESULT,
        .start = (double)r->start / PS_RATE,
        .duration = (double)(r->end - r->start) / PS_RATE,
        .is_final = is_final,
        .speech_final = speech_final,
        .from_finalize = from_finalize,
        .transcript = r->text ? r->text : "",
        .confidence = r->conf,
        .words = r->words,
        .n_words = r->n_words,
    };
    emit(ctx, &ev);
    if (is_final && r->n_words) {
        s->last_word_end = r->lwe;
        s->ue_pending = 1;
    }
}

static void emit_empty_final(srv_stream *s, uint64_t end, int from_finalize, srv_emit_fn emit,
                             void *ctx)
{
    utt_result r = {.start = s->final_cursor, .end = end, .text = NULL};
    s->final_cursor = end;
    emit_result(s, &r, 1, 0, from_finalize, emit, ctx);
}

static void flush_held(srv_stream *s, int speech_final, srv_emit_fn emit, void *ctx)
{
    if (s->held.valid) {
        emit_result(s, &s->held, 1, speech_final, 0, emit, ctx);
        result_clear(&s->held);
    }
}

/* Ends the running utterance of the stream's decoder and takes its final,
 * covering everything since the previous final. */
static void end_utt(srv_stream *s, ps_decoder_t *ps, utt_result *r)
{
    ps_end_utt(ps);
    s->utt_open = 0;
    memset(r, 0, sizeof(*r));
    if (s->utt_speech && result_from_decoder(s, ps, r) < 0)
        result_clear(r);
    r->start = s->final_cursor;
    r->end = s->pos;
    r->valid = 1;
    s->final_cursor = s->pos;
    s->utt_speech = 0;
}

static void start_utt(srv_stream *s, ps_decoder_t *ps, uint64_t at)
{
    ps_start_utt(ps);
    s->utt_start = at;
    s->utt_open = 1;
    s->utt_speech = 0;
}

/* ---- decoder acquisition ------------------------------------------------- */

static void call_enter(srv_stream *s)
{
    srv_engine *e = s->e;
    pthread_mutex_lock(&e->mtx);
    while (s->preempt_busy)
        pthread_cond_wait(&e->cv, &e->mtx);
    s->in_call = 1;
    pthread_mutex_unlock(&e->mtx);
}

static void call_leave(srv_stream *s)
{
    srv_engine *e = s->e;
    pthread_mutex_lock(&e->mtx);
    s->in_call = 0;
    if (s->dec)
        s->dec->last_used = ++e->clock;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mtx);
}

/* Picks a decoder (see the pool notes at the top); e->mtx held. */
static ps_slot *pick_slot(srv_engine *e, int force, int *create)
{
    ps_slot *best = NULL;
    *create = 0;
    for (size_t i = 0; i < e->n_slots; i++)
        if (!e->slots[i].owner)
            return &e->slots[i];
    if (e->n_slots + e->n_creating < e->max) {
        *create = 1;
        return NULL;
    }
    for (int pass = 0; pass < 1 + force && !best; pass++) {
        for (size_t i = 0; i < e->n_slots; i++) {
            srv_stream *o = e->slots[i].owner;
            if (o->in_call || o->preempt_busy || (pass == 0 && o->utt_speech))
                continue;
            if (!best || e->slots[i].last_used < best->last_used)
                best = &e->slots[i];
        }
    }
    return best;
}

/* Takes the decoder away from idle stream v, keeping what v needs to go on. */
static void preempt(srv_stream *v, ps_decoder_t *ps)
{
    if (v->utt_open) {
        if (v->utt_speech) {
            /* A cut without words is no final: v replays its tail instead. */
            uint64_t cursor = v->final_cursor;
            end_utt(v, ps, &v->cut);
            if (!v->cut.n_words) {
                result_clear(&v->cut);
                v->final_cursor = cursor;
            }
        } else {
            ps_end_utt(ps);
            v->utt_open = 0;
        }
    }
    cmn_save(ps, &v->cmn);
}

static void replay_preroll(srv_stream *s, ps_decoder_t *ps, uint64_t n)
{
    /* The ring holds the last pre_n decoded samples, oldest at pre_w - pre_n. */
    size_t start = (s->pre_w + PREROLL - (size_t)n) % PREROLL;
    while (n > 0) {
        size_t run = PREROLL - start;
        if (run > n)
            run = (size_t)n;
        if (run > BLOCK)
            run = BLOCK;
        ps_process_raw(ps, s->pre + start, run, FALSE, FALSE);
        start = (start + run) % PREROLL;
        n -= run;
    }
}

/* The stream's decoder, binding one first if needed. Without `force` it
 * returns NULL rather than wait or cut another stream's utterance. */
static ps_decoder_t *acquire(srv_stream *s, int force)
{
    srv_engine *e = s->e;
    srv_stream *victim = NULL;
    ps_slot *d;
    pthread_mutex_lock(&e->mtx);
    if (s->dec) {
        ps_decoder_t *ps = s->dec->ps;
        pthread_mutex_unlock(&e->mtx);
        return ps;
    }
    for (;;) {
        int create;
        d = pick_slot(e, force, &create);
        if (d)
            break;
        if (create) {
            e->n_creating++;
            pthread_mutex_unlock(&e->mtx);
            ps_decoder_t *ps = decoder_new(e);
            pthread_mutex_lock(&e->mtx);
            e->n_creating--;
            if (ps) {
                d = &e->slots[e->n_slots++];
                d->ps = ps;
                d->owner = NULL;
                break;
            }
            /* Out of memory most likely: live with the decoders there are. */
            e->max = e->n_slots + e->n_creating;
            pthread_cond_broadcast(&e->cv);
            continue;
        }
        if (!force) {
            pthread_mutex_unlock(&e->mtx);
            return NULL;
        }
        pthread_cond_wait(&e->cv, &e->mtx);
    }
    if (d->owner) {
        victim = d->owner;
        victim->dec = NULL;
        victim->preempt_busy = 1;
    }
    d->owner = s;
    s->dec = d;
    pthread_mutex_unlock(&e->mtx);

    ps_decoder_t *ps = d->ps;
    if (victim) {
        preempt(victim, ps);
        pthread_mutex_lock(&e->mtx);
        victim->preempt_busy = 0;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mtx);
    }

    /* Bind: a fresh front-end stream (frame 0 = dec_base), the stream's own
     * cepstral mean, and the not yet finalized tail of the audio again. */
    uint64_t replay = s->pos - s->final_cursor;
    if (replay > s->pre_n)
        replay = s->pre_n;
    ps_start_stream(ps);
    cmn_restore(ps, s->cmn.valid ? &s->cmn : &e->cmn_init);
    s->dec_base = s->pos - replay;
    start_utt(s, ps, s->dec_base);
    replay_preroll(s, ps, replay);
    return ps;
}

static void release_for_good(srv_stream *s)
{
    srv_engine *e = s->e;
    pthread_mutex_lock(&e->mtx);
    if (s->dec) {
        s->dec->owner = NULL;
        s->dec = NULL;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mtx);
}

/* ---- decoding ------------------------------------------------------------ */

/* A final at the VAD's end of speech: now, or held for endpointing_ms. */
static void vad_final(srv_stream *s, utt_result *r, srv_emit_fn emit, void *ctx)
{
    int ep = s->p.endpointing_ms;
    if (ep < 0) {
        emit_result(s, r, 1, 0, 0, emit, ctx);
        result_clear(r);
    } else if (!r->n_words || (s->pos - r->lwe) * 1000 >= (uint64_t)ep * PS_RATE) {
        emit_result(s, r, 1, 1, 0, emit, ctx);
        result_clear(r);
    } else {
        s->held = *r;
        memset(r, 0, sizeof(*r));
    }
}

static void timers(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    if (s->utt_speech)
        return;
    if (s->held.valid && (s->pos - s->held.lwe) * 1000 >= (uint64_t)s->p.endpointing_ms * PS_RATE)
        flush_held(s, 1, emit, ctx);
    if (s->held.valid)
        return;
    if (s->p.utterance_end_ms > 0 && s->ue_pending &&
        (s->pos - s->last_word_end) * 1000 >= (uint64_t)s->p.utterance_end_ms * PS_RATE) {
        srv_event ev = {.kind = SRV_EV_UTTERANCE_END,
                        .last_word_end = (double)s->last_word_end / PS_RATE};
        emit(ctx, &ev);
        s->ue_pending = 0;
    }
    if (s->pos >= s->final_cursor + SILENCE_FINAL + PREROLL)
        emit_empty_final(s, s->pos - PREROLL, 0, emit, ctx);
}

static void emit_cut(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    if (s->cut.valid) {
        emit_result(s, &s->cut, 1, 0, 0, emit, ctx);
        result_clear(&s->cut);
    }
}

/* Decodes x on the stream's decoder, which it must have. */
static void decode(srv_stream *s, const int16_t *x, size_t n, srv_emit_fn emit, void *ctx)
{
    ps_decoder_t *ps = s->dec->ps;
    ps_process_raw(ps, x, n, FALSE, FALSE);
    s->pos += n;
    for (size_t i = 0; i < n;) {
        size_t run = PREROLL - s->pre_w;
        if (run > n - i)
            run = n - i;
        memcpy(s->pre + s->pre_w, x + i, run * sizeof(*x));
        s->pre_w = (s->pre_w + run) % PREROLL;
        i += run;
    }
    s->pre_n = s->pre_n + n > PREROLL ? PREROLL : s->pre_n + n;

    int in = ps_get_in_speech(ps);
    if (in && !s->utt_speech) {
        s->utt_speech = 1;
        s->utt_speech_pos = s->pos - n;
        s->last_interim = s->pos;
        flush_held(s, 0, emit, ctx);
        if (!s->speaking) {
            s->speaking = 1;
            if (s->p.vad_events) {
                uint64_t at = s->pos - n;
                at = at > s->utt_start + VAD_START ? at - VAD_START : s->utt_start;
                srv_event ev = {.kind = SRV_EV_SPEECH_STARTED, .start = (double)at / PS_RATE};
                emit(ctx, &ev);
            }
        }
    } else if (!in && s->utt_speech) {
        utt_result r;
        end_utt(s, ps, &r);
        s->speaking = 0;
        vad_final(s, &r, emit, ctx);
        start_utt(s, ps, s->pos);
    } else if (in && s->pos - s->utt_speech_pos >= MAX_UTT) {
        utt_result r;
        end_utt(s, ps, &r);
        emit_result(s, &r, 1, 0, 0, emit, ctx);
        result_clear(&r);
        start_utt(s, ps, s->pos);
    } else if (in && s->p.interim_results && s->pos - s->last_interim >= INTERIM_EVERY) {
        utt_result r = {0};
        if (result_from_decoder(s, ps, &r) == 0) {
            r.start = s->final_cursor;
            r.end = s->pos;
            emit_result(s, &r, 0, 0, 0, emit, ctx);
        }
        result_clear(&r);
        s->last_interim = s->pos;
    }
    timers(s, emit, ctx);
}

static void drain_backlog(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    for (size_t i = 0; i < s->bl_n; i += BLOCK)
        decode(s, s->bl + i, BLOCK, emit, ctx);
    s->bl_n = 0;
}

/* Brings the stream's decoder and its backlog up to date: `force` waits
 * for (or takes) a decoder; otherwise the backlog may stay. */
static int catch_up(srv_stream *s, int force, srv_emit_fn emit, void *ctx)
{
    if (!acquire(s, force))
        return 0;
    emit_cut(s, emit, ctx);
    drain_backlog(s, emit, ctx);
    return 1;
}

/* A full block: decoded now if a decoder is to be had without cutting
 * another stream's utterance, else queued (up to BACKLOG, then forced). */
static void on_block(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    if (s->bl_n == 0 && catch_up(s, 0, emit, ctx)) {
        decode(s, s->blk, BLOCK, emit, ctx);
        return;
    }
    if (!s->bl) {
        s->bl = malloc(BACKLOG * sizeof(*s->bl));
        if (!s->bl) {
            catch_up(s, 1, emit, ctx);
            decode(s, s->blk, BLOCK, emit, ctx);
            return;
        }
    }
    memcpy(s->bl + s->bl_n, s->blk, BLOCK * sizeof(*s->bl));
    s->bl_n += BLOCK;
    if (s->bl_n == BACKLOG)
        catch_up(s, 1, emit, ctx);
}

static void push_pcm16k(srv_stream *s, const int16_t *x, size_t n, srv_emit_fn emit, void *ctx)
{
    while (n > 0) {
        size_t take = BLOCK - s->blk_n;
        if (take > n)
            take = n;
        memcpy(s->blk + s->blk_n, x, take * sizeof(*x));
        s->blk_n += take;
        x += take;
        n -= take;
        if (s->blk_n == BLOCK) {
            s->blk_n = 0;
            on_block(s, emit, ctx);
        }
    }
}

static void feed_mono(srv_stream *s, const int16_t *x, size_t n, int drain, srv_emit_fn emit,
                      void *ctx)
{
    resampler *r = &s->rs;
    if (r->in_rate == PS_RATE) {
        push_pcm16k(s, x, n, emit, ctx);
        return;
    }
    int16_t out[RS_CHUNK];
    do {
        size_t take = r->hcap - r->hlen;
        if (take > n)
            take = n;
        if (take > 0) {
            memcpy(r->hist + r->hlen, x, take * sizeof(*x));
            r->hlen += take;
            r->in_total += (int64_t)take;
            x += take;
            n -= take;
        }
        size_t got;
        while ((got = rs_run(r, drain && n == 0, out, RS_CHUNK)) > 0)
            push_pcm16k(s, out, got, emit, ctx);
    } while (n > 0);
}

/* ---- stream operations --------------------------------------------------- */

static int ps_stream_open(srv_engine *e, const srv_stream_params *p, srv_stream **out)
{
    if (p->sample_rate < 8000 || p->sample_rate > 48000 || p->channels < 1 || p->channels > 8)
        return -1;
    srv_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->e = e;
    s->p = *p;
    if (rs_init(&s->rs, p->sample_rate) < 0) {
        rs_free(&s->rs);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static void ps_stream_feed(srv_stream *s, const int16_t *pcm, size_t frames, srv_emit_fn emit,
                           void *ctx)
{
    call_enter(s);
    emit_cut(s, emit, ctx);
    if (s->bl_n > 0)
        catch_up(s, 0, emit, ctx);
    if (s->p.channels == 1) {
        feed_mono(s, pcm, frames, 0, emit, ctx);
    } else {
        int16_t mono[1024];
        while (frames > 0) {
            size_t n = frames < 1024 ? frames : 1024;
            for (size_t i = 0; i < n; i++) {
                int acc = 0;
                for (uint32_t c = 0; c < s->p.channels; c++)
                    acc += pcm[i * s->p.channels + c];
                mono[i] = (int16_t)(acc / (int)s->p.channels);
            }
            feed_mono(s, mono, n, 0, emit, ctx);
            pcm += n * s->p.channels;
            frames -= n;
        }
    }
    call_leave(s);
}

/* Decodes everything received and ends the utterance: one final covering all
 * of it (empty, and of zero duration when nothing was pending). */
static void flush(srv_stream *s, int from_finalize, srv_emit_fn emit, void *ctx)
{
    emit_cut(s, emit, ctx);
    if (s->rs.in_rate != PS_RATE)
        feed_mono(s, NULL, 0, 1, emit, ctx);
    if (s->bl_n > 0 || s->blk_n > 0)
        catch_up(s, 1, emit, ctx);
    if (s->blk_n > 0) {
        size_t n = s->blk_n;
        s->blk_n = 0;
        decode(s, s->blk, n, emit, ctx);
    }
    flush_held(s, 0, emit, ctx);
    if (s->dec && s->utt_speech) {
        ps_decoder_t *ps = s->dec->ps; /* ours: nobody preempts a stream in a call */
        utt_result r;
        end_utt(s, ps, &r);
        emit_result(s, &r, 1, 0, from_finalize, emit, ctx);
        result_clear(&r);
        start_utt(s, ps, s->pos);
    } else {
        if (s->dec && s->utt_open) {
            /* Restart the silent utterance: what its VAD look-back holds is
             * now covered by a final and must not reappear in the next one. */
            ps_end_utt(s->dec->ps);
            start_utt(s, s->dec->ps, s->pos);
        }
        /* Finalize is always answered; a close only covers what is left. */
        if (from_finalize || s->pos > s->final_cursor)
            emit_empty_final(s, s->pos, from_finalize, emit, ctx);
    }
    s->speaking = 0;
}

static void ps_stream_finalize(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    call_enter(s);
    flush(s, 1, emit, ctx);
    call_leave(s);
}

static void ps_stream_close(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    call_enter(s);
    if (s->pos > s->final_cursor || s->blk_n > 0 || s->bl_n > 0 || rs_pending(&s->rs) ||
        s->held.valid || s->cut.valid)
        flush(s, 0, emit, ctx);
    if (s->dec && s->utt_open)
        ps_end_utt(s->dec->ps);
    release_for_good(s);
    call_leave(s);
    result_clear(&s->held);
    result_clear(&s->cut);
    rs_free(&s->rs);
    free(s->bl);
    free(s);
}

const srv_engine_ops srv_engine_pocketsphinx = {
    .name = "pocketsphinx",
    .engine_create = ps_engine_create,
    .engine_destroy = ps_engine_destroy,
    .stream_open = ps_stream_open,
    .stream_feed = ps_stream_feed,
    .stream_finalize = ps_stream_finalize,
    .stream_close = ps_stream_close,
};
