/* rateconv: streaming linear-interpolation rate conversion of mono 16-bit PCM, with no lookahead.
 */
#ifndef STENO_PROVIDERS_RATECONV_H
#define STENO_PROVIDERS_RATECONV_H

#include <stddef.h>
#include <stdint.h>

/*
 * For adapters whose provider takes one fixed rate (OpenAI: 24 kHz). Output sample k sits at
 * input position k * in_rate / out_rate, interpolated between its two neighbours. Nothing is
 * held back beyond the last input sample: the output for a chunk covers the input up to its
 * last sample, so a commit sent after the chunk covers that chunk's audio (up to the
 * sub-sample interval after its last sample, which the next chunk's first output covers).
 * A filter with a delay line (speexdsp) would hold a chunk's tail until the next call and
 * move audio across a commit. The state is plain data and the output depends only on the
 * chunks fed since init, so a replay from the same chunk produces the same samples.
 */
typedef struct steno__rateconv {
    uint32_t in_rate, out_rate;
    int64_t pos; /* next output's position, in 1/out_rate input samples, from the next input */
    int16_t prev;
    int have_prev;
} steno__rateconv;

void steno__rateconv_init(steno__rateconv *r, uint32_t in_rate, uint32_t out_rate);
/* The most samples one run() over n input samples can write. */
size_t steno__rateconv_max_out(const steno__rateconv *r, size_t n);
/* Converts in[0..n) (the stream's next samples) into out (room for max_out(n)); returns the
 * samples written. */
size_t steno__rateconv_run(steno__rateconv *r, const int16_t *in, size_t n, int16_t *out);

#endif
