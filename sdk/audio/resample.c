/* resample: mix interleaved 16-bit PCM down to mono and convert its rate with speexdsp. */
#include "resample.h"
#include "prefault.h"

#include <speex/speex_resampler.h>
#include <stdlib.h>
#include <string.h>

struct steno__resampler {
    SpeexResamplerState *st; /* NULL when the rates are equal */
    uint32_t in_rate, out_rate, channels;
    size_t max_in, out_max;
    uint64_t in_total, out_total; /* mono frames in and out, to trim the tail exactly */
    int16_t *mono;                /* max_in frames: the mixdown */
    int16_t *zeros;               /* max_in frames of silence for the drain */
};

steno_status steno__resampler_open(uint32_t in_rate, uint32_t channels, uint32_t out_rate,
                                   size_t max_in_frames, int quality, steno__resampler **out)
{
    *out = NULL;
    if (in_rate < 1000 || out_rate < 1000 || channels < 1 || channels > 64 || max_in_frames == 0 ||
        quality < 0 || quality > 10)
        return STENO_ERR_INVALID_ARG;
    steno__resampler *r = calloc(1, sizeof *r);
    if (!r)
        return STENO_ERR_NOMEM;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    r->channels = channels;
    r->max_in = max_in_frames;
    /* ceil(max_in * out / in) plus the filter's fractional slack */
    r->out_max = (size_t)(((uint64_t)max_in_frames * out_rate + in_rate - 1) / in_rate) + 2;
    r->mono = calloc(max_in_frames, sizeof *r->mono);
    r->zeros = calloc(max_in_frames, sizeof *r->zeros);
    if (!r->mono || !r->zeros) {
        steno__resampler_close(r);
        return STENO_ERR_NOMEM;
    }
    steno__prefault(r->mono, max_in_frames * sizeof *r->mono);
    steno__prefault(r->zeros, max_in_frames * sizeof *r->zeros);
    if (in_rate != out_rate) {
        int e = 0;
        r->st = speex_resampler_init(1, in_rate, out_rate, quality, &e);
        if (!r->st || e != RESAMPLER_ERR_SUCCESS) {
            steno__resampler_close(r);
            return e == RESAMPLER_ERR_ALLOC_FAILED ? STENO_ERR_NOMEM : STENO_ERR_INVALID_ARG;
        }
        /* Start with a primed filter, so the output is aligned with the input
         * rather than delayed by half the filter length. */
        speex_resampler_skip_zeros(r->st);
    }
    *out = r;
    return STENO_OK;
}

size_t steno__resampler_out_max(const steno__resampler *r)
{
    return r->out_max;
}

static size_t run(steno__resampler *r, const int16_t *mono, size_t frames, int16_t *out, size_t cap)
{
    if (!r->st) {
        size_t n = frames < cap ? frames : cap;
        memcpy(out, mono, n * sizeof *out);
        return n;
    }
    size_t done = 0, made = 0;
    while (done < frames && made < cap) {
        spx_uint32_t in_len = (spx_uint32_t)(frames - done);
        spx_uint32_t out_len = (spx_uint32_t)(cap - made);
        speex_resampler_process_int(r->st, 0, mono + done, &in_len, out + made, &out_len);
        if (in_len == 0 && out_len == 0)
            break;
        done += in_len;
        made += out_len;
    }
    return made;
}

size_t steno__resampler_process(steno__resampler *r, const int16_t *in, size_t frames, int16_t *out)
{
    if (frames > r->max_in)
        frames = r->max_in;
    const int16_t *mono = in;
    if (r->channels > 1) {
        const uint32_t ch = r->channels;
        for (size_t i = 0; i < frames; i++) {
            int32_t sum = 0;
            for (uint32_t c = 0; c < ch; c++)
                sum += in[i * ch + c];
            r->mono[i] = (int16_t)(sum / (int32_t)ch);
        }
        mono = r->mono;
    }
    r->in_total += frames;
    size_t n = run(r, mono, frames, out, r->out_max);
    r->out_total += n;
    return n;
}

size_t steno__resampler_drain(steno__resampler *r, int16_t *out, size_t cap)
{
    uint64_t want = (r->in_total * r->out_rate + r->in_rate / 2) / r->in_rate;
    if (!r->st || r->out_total >= want)
        return 0;
    uint64_t left = want - r->out_total;
    if (cap > left)
        cap = (size_t)left;
    if (cap > r->out_max)
        cap = r->out_max;
    size_t in = r->max_in;
    size_t n = run(r, r->zeros, in, out, cap);
    r->out_total += n;
    return n;
}

void steno__resampler_close(steno__resampler *r)
{
    if (!r)
        return;
    if (r->st)
        speex_resampler_destroy(r->st);
    free(r->mono);
    free(r->zeros);
    free(r);
}
