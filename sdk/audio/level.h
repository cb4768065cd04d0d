/* level: RMS and peak of a block of 16-bit PCM, in linear and dBFS terms. */
#ifndef STENO_AUDIO_LEVEL_H
#define STENO_AUDIO_LEVEL_H

#include <stddef.h>
#include <stdint.h>

/* Running sums over a window; pure, no I/O. */
typedef struct steno__level_acc {
    double sum_sq;
    int32_t peak;
    uint64_t frames;
} steno__level_acc;

void steno__level_reset(steno__level_acc *a);
void steno__level_add(steno__level_acc *a, const int16_t *pcm, size_t frames);
/* rms and peak on 0..1 full scale, and in dBFS (floor -120 for silence). */
void steno__level_result(const steno__level_acc *a, float *rms, float *peak, float *rms_dbfs,
                         float *peak_dbfs);

#endif
