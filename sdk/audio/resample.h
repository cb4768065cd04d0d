/* resample: mix interleaved 16-bit PCM down to mono and convert its rate with speexdsp. */
#ifndef STENO_AUDIO_RESAMPLE_H
#define STENO_AUDIO_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "steno/status.h"

typedef struct steno__resampler steno__resampler;

/*
 * Everything is allocated here: max_in_frames bounds one process() call's
 * input, and steno__resampler_out_max() says how much output room that
 * call needs. process() and drain() never allocate, lock or block, so they
 * run on a capture thread. Equal rates skip the filter (a mixdown only).
 */
steno_status steno__resampler_open(uint32_t in_rate, uint32_t channels, uint32_t out_rate,
                                   size_t max_in_frames, int quality, steno__resampler **out);

/* Output frames one process() call of max_in_frames may produce. */
size_t steno__resampler_out_max(const steno__resampler *r);

/*
 * Mixes `frames` interleaved frames (at most max_in_frames) to mono,
 * resamples them and writes the result to out (room for
 * steno__resampler_out_max() frames). Returns the frames written.
 */
size_t steno__resampler_process(steno__resampler *r, const int16_t *in, size_t frames,
                                int16_t *out);

/*
 * At the end of the stream: pushes the filter's delay line out so the last
 * input is not lost, writing at most `cap` frames, and never more than the
 * input's length converted to the output rate in total. Returns the frames
 * written; call until it returns 0.
 */
size_t steno__resampler_drain(steno__resampler *r, int16_t *out, size_t cap);

void steno__resampler_close(steno__resampler *r);

#endif
