/* level: RMS and peak of a block of 16-bit PCM, in linear and dBFS terms. */
#include "level.h"

#include <math.h>

#define FLOOR_DBFS -120.0f

void steno__level_reset(steno__level_acc *a)
{
    a->sum_sq = 0;
    a->peak = 0;
    a->frames = 0;
}

void steno__level_add(steno__level_acc *a, const int16_t *pcm, size_t frames)
{
    for (size_t i = 0; i < frames; i++) {
        int32_t v = pcm[i];
        int32_t mag = v < 0 ? -v : v;
        if (mag > a->peak)
            a->peak = mag;
        a->sum_sq += (double)v * v;
    }
    a->frames += frames;
}

static float dbfs(float x)
{
    if (x <= 0)
        return FLOOR_DBFS;
    float d = 20.0f * log10f(x);
    return d < FLOOR_DBFS ? FLOOR_DBFS : d;
}

void steno__level_result(const steno__level_acc *a, float *rms, float *peak, float *rms_dbfs,
                         float *peak_dbfs)
{
    /* full scale is 32768, so a -32768 peak reads exactly 1.0 (0 dBFS) */
    float r = a->frames ? (float)(sqrt(a->sum_sq / (double)a->frames) / 32768.0) : 0.0f;
    float p = (float)a->peak / 32768.0f;
    *rms = r;
    *peak = p;
    *rms_dbfs = dbfs(r);
    *peak_dbfs = dbfs(p);
}
