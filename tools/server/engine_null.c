/* engine_null: the recognition-free engine that names exact audio spans. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"

/*
 * Every final names the sample range it covers and a checksum of its bytes,
 * so a test can prove from transcripts alone that each sample of a stream
 * was recognised exactly once, whatever reconnects happened in between.
 */

struct srv_stream {
    srv_stream_params p;
    uint64_t span_samples; /* per channel */
    uint64_t offset;       /* samples received so far */
    uint64_t span_start;
    uint64_t span_fnv;
    uint64_t last_interim; /* span length when the last interim went out */
    int started;           /* SpeechStarted sent for the current span */
};

static int null_engine_create(srv_engine **out, const char *opts, char *err, size_t errlen)
{
    (void)opts;
    (void)err;
    (void)errlen;
    /* No shared state; a non-NULL token keeps callers' checks simple. */
    static int token;
    *out = (srv_engine *)&token;
    return 0;
}

static void null_engine_destroy(srv_engine *e)
{
    (void)e;
}

static int null_stream_open(srv_engine *e, const srv_stream_params *p, srv_stream **out)
{
    (void)e;
    srv_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->p = *p;
    double span = p->null_span_s > 0 ? p->null_span_s : 1.0;
    s->span_samples = (uint64_t)(span * p->sample_rate + 0.5);
    if (s->span_samples == 0)
        s->span_samples = 1;
    s->span_fnv = SRV_FNV1A64_INIT;
    *out = s;
    return 0;
}

/* Emits a Results message for samples [span_start, offset). */
static void emit_span(srv_stream *s, int is_final, int from_finalize, srv_emit_fn emit, void *ctx)
{
    char text[96], range[48], sum[32], hex[17];
    uint64_t a = s->span_start, b = s->offset;
    double rate = s->p.sample_rate;
    double start = (double)a / rate, dur = (double)(b - a) / rate;
    srv_word words[3];
    srv_event ev = {
        .kind = SRV_EV_RESULT,
        .start = start,
        .duration = dur,
        .is_final = is_final,
        .speech_final = is_final,
        .from_finalize = from_finalize,
        .confidence = 1.0,
    };

    if (b > a) {
        if (s->p.no_digests)
            snprintf(hex, sizeof(hex), "off");
        else
            srv_hex64(s->span_fnv, hex);
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, a, b);
        snprintf(sum, sizeof(sum), "fnv1a64=%s", hex);
        snprintf(text, sizeof(text), "span %s %s", range, sum);
        const char *tok[3] = {"span", range, sum};
        for (int i = 0; i < 3; i++) {
            words[i].word = tok[i];
            words[i].start = start + dur * i / 3.0;
            words[i].end = start + dur * (i + 1) / 3.0;
            words[i].confidence = 1.0;
        }
        ev.transcript = text;
        ev.words = words;
        ev.n_words = 3;
    } else {
        ev.transcript = "";
    }
    emit(ctx, &ev);

    if (is_final && b > a && s->p.utterance_end_ms > 0) {
        srv_event ue = {.kind = SRV_EV_UTTERANCE_END, .last_word_end = (double)b / rate};
        emit(ctx, &ue);
    }
}

static void end_span(srv_stream *s)
{
    s->span_start = s->offset;
    s->span_fnv = SRV_FNV1A64_INIT;
    s->last_interim = 0;
    s->started = 0;
}

static void null_stream_feed(srv_stream *s, const int16_t *pcm, size_t frames, srv_emit_fn emit,
                             void *ctx)
{
    size_t ch = s->p.channels ? s->p.channels : 1;
    while (frames) {
        uint64_t in_span = s->offset - s->span_start;
        uint64_t n = s->span_samples - in_span;
        if (n > frames)
            n = frames;
        if (!s->started && s->p.vad_events) {
            srv_event ev = {.kind = SRV_EV_SPEECH_STARTED,
                            .start = (double)s->span_start / s->p.sample_rate};
            emit(ctx, &ev);
        }
        s->started = 1;
        if (!s->p.no_digests)
            s->span_fnv = srv_fnv1a64(s->span_fnv, pcm, (size_t)n * ch * 2);
        s->offset += n;
        pcm += n * ch;
        frames -= (size_t)n;
        in_span += n;
        if (in_span == s->span_samples) {
            emit_span(s, 1, 0, emit, ctx);
            end_span(s);
        } else if (s->p.interim_results && in_span - s->last_interim >= s->span_samples / 4) {
            emit_span(s, 0, 0, emit, ctx);
            s->last_interim = in_span;
        }
    }
}

static void null_stream_finalize(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    /* Sent even when nothing is pending, so a client awaiting the
     * from_finalize confirmation always gets one. */
    emit_span(s, 1, 1, emit, ctx);
    end_span(s);
}

static void null_stream_close(srv_stream *s, srv_emit_fn emit, void *ctx)
{
    if (s->offset > s->span_start)
        emit_span(s, 1, 0, emit, ctx);
    free(s);
}

const srv_engine_ops srv_engine_null = {
    .name = "null",
    .engine_create = null_engine_create,
    .engine_destroy = null_engine_destroy,
    .stream_open = null_stream_open,
    .stream_feed = null_stream_feed,
    .stream_finalize = null_stream_finalize,
    .stream_close = null_stream_close,
};
