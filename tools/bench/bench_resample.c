/* bench_resample: the microphone path's conversion cost — instructions per 10 ms capture
 * block to mix down and resample to 16 kHz mono, per input format, against a memcpy of the
 * block. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "level.h"
#include "resample.h"

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

/*
 * Run under `valgrind --tool=callgrind --collect-atstart=no` (see
 * run-callgrind-audio): collection is toggled on around each measured call
 * only and each case ends with a dump named after it. The audio is speech-like
 * (a few tones with a varying envelope), 10 s of it per case, in the 10 ms
 * blocks the microphone's callback gets by default.
 *
 * Cases: convN_C  mixdown + resampling of N Hz x C channels to 16 kHz mono
 *        copyN_C  memcpy of the same input block
 *        level    RMS/peak of a 50 ms window at 16 kHz (the level thread's work)
 */

#define OUT_RATE 16000
#define SECONDS 10

static const struct {
    uint32_t rate, channels;
} cases[] = {{16000, 1}, {8000, 1}, {44100, 2}, {48000, 2}, {48000, 1}};

__attribute__((noinline)) static size_t conv(steno__resampler *r, const int16_t *in, size_t n,
                                             int16_t *out)
{
    return steno__resampler_process(r, in, n, out);
}

__attribute__((noinline)) static void copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    __asm__ volatile("" : : "r"(dst) : "memory");
}

static int16_t *speech_like(uint32_t rate, uint32_t channels, size_t frames)
{
    int16_t *pcm = malloc(frames * channels * sizeof *pcm);
    for (size_t i = 0; i < frames; i++) {
        double t = (double)i / rate;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 3 * t);
        double v = env * (0.3 * sin(2 * M_PI * 220 * t) + 0.2 * sin(2 * M_PI * 1250 * t) +
                          0.1 * sin(2 * M_PI * 3100 * t));
        for (uint32_t c = 0; c < channels; c++)
            pcm[i * channels + c] = (int16_t)lrint(v * 32767 * (c ? 0.9 : 1.0));
    }
    return pcm;
}

int main(void)
{
    printf("%-10s %8s %8s %12s\n", "case", "blocks", "in B", "out frames");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t rate = cases[k].rate, ch = cases[k].channels;
        size_t block = rate / 100, blocks = SECONDS * 100;
        int16_t *in = speech_like(rate, ch, block * blocks);
        steno__resampler *r = NULL;
        if (steno__resampler_open(rate, ch, OUT_RATE, block, 5, &r) != 0)
            return 1;
        int16_t *out = calloc(steno__resampler_out_max(r), sizeof *out);
        int16_t *dst = calloc(block * ch, sizeof *dst);
        size_t made = 0;
        char name[32];
        for (size_t b = 0; b < blocks; b++) {
            CALLGRIND_TOGGLE_COLLECT;
            made += conv(r, in + b * block * ch, block, out);
            CALLGRIND_TOGGLE_COLLECT;
        }
        snprintf(name, sizeof name, "conv%u_%u", rate, ch);
        CALLGRIND_DUMP_STATS_AT(name);
        for (size_t b = 0; b < blocks; b++) {
            CALLGRIND_TOGGLE_COLLECT;
            copy(dst, in + b * block * ch, block * ch * sizeof *dst);
            CALLGRIND_TOGGLE_COLLECT;
        }
        snprintf(name, sizeof name, "copy%u_%u", rate, ch);
        CALLGRIND_DUMP_STATS_AT(name);
        printf("%u_%u %8zu %8zu %12zu\n", rate, ch, blocks, block * ch * sizeof *in, made);
        free(in);
        free(out);
        free(dst);
        steno__resampler_close(r);
    }
    int16_t *win = speech_like(OUT_RATE, 1, OUT_RATE / 20);
    for (int i = 0; i < 1000; i++) {
        steno__level_acc acc;
        float a, b, c, d;
        CALLGRIND_TOGGLE_COLLECT;
        steno__level_reset(&acc);
        steno__level_add(&acc, win, OUT_RATE / 20);
        steno__level_result(&acc, &a, &b, &c, &d);
        CALLGRIND_TOGGLE_COLLECT;
    }
    CALLGRIND_DUMP_STATS_AT("level");
    printf("level %d windows of %d frames\n", 1000, OUT_RATE / 20);
    free(win);
    return 0;
}
