/* test_resample: mixdown and rate conversion keep a tone's frequency, level and length; levels
 * read what a meter should. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "level.h"
#include "resample.h"

#define OUT_RATE 16000
#define TONE_HZ 440.0
#define AMPLITUDE 0.25 /* -12 dBFS peak, -15 dBFS RMS */

static int16_t *tone(uint32_t rate, uint32_t channels, size_t frames)
{
    int16_t *pcm = malloc(frames * channels * sizeof *pcm);
    for (size_t i = 0; i < frames; i++)
        for (uint32_t c = 0; c < channels; c++)
            pcm[i * channels + c] =
                (int16_t)lrint(32767.0 * AMPLITUDE * sin(2 * M_PI * TONE_HZ * (double)i / rate));
    return pcm;
}

/* Converts one second in uneven blocks, drains, and checks length, frequency and level. */
static void convert_and_check(uint32_t rate, uint32_t channels)
{
    const size_t frames = rate; /* one second */
    int16_t *in = tone(rate, channels, frames);
    steno__resampler *r = NULL;
    const size_t max_in = rate / 100 + 7;
    assert_int_equal(steno__resampler_open(rate, channels, OUT_RATE, max_in, 5, &r), 0);
    int16_t *out = malloc((OUT_RATE + 4096) * sizeof *out);
    int16_t *block = malloc(steno__resampler_out_max(r) * sizeof *block);
    size_t n = 0;
    for (size_t pos = 0, step = 1; pos < frames; step = step * 7 % max_in + 1) {
        size_t take = frames - pos < step ? frames - pos : step;
        size_t got = steno__resampler_process(r, in + pos * channels, take, block);
        assert_true(got <= steno__resampler_out_max(r));
        memcpy(out + n, block, got * sizeof *out);
        n += got;
        pos += take;
    }
    size_t got;
    while ((got = steno__resampler_drain(r, block, steno__resampler_out_max(r))) > 0) {
        memcpy(out + n, block, got * sizeof *out);
        n += got;
    }
    /* exactly one second out: nothing lost at the tail, no padding */
    assert_int_equal(n, OUT_RATE);

    /* frequency: rising zero crossings over the settled middle half */
    int crossings = 0;
    for (size_t i = OUT_RATE / 4 + 1; i < OUT_RATE * 3 / 4; i++)
        crossings += out[i - 1] < 0 && out[i] >= 0;
    assert_in_range(crossings, (int)(TONE_HZ / 2) - 2, (int)(TONE_HZ / 2) + 2);

    /* level: the tone keeps its RMS through the filter (within 0.5 dB) */
    steno__level_acc acc;
    steno__level_reset(&acc);
    steno__level_add(&acc, out + OUT_RATE / 4, OUT_RATE / 2);
    float rms, peak, rms_db, peak_db;
    steno__level_result(&acc, &rms, &peak, &rms_db, &peak_db);
    double want = 20 * log10(AMPLITUDE / sqrt(2.0));
    assert_true(fabs(rms_db - want) < 0.5);
    assert_true(fabs(peak_db - 20 * log10(AMPLITUDE)) < 0.5);

    /* alignment: the output is not delayed by the filter (skip_zeros): the first
     * rising crossing sits where the input's does, within two output samples */
    size_t first = 1;
    while (first < n && !(out[first - 1] < 0 && out[first] >= 0))
        first++;
    double expect = OUT_RATE / TONE_HZ;
    assert_true(fabs((double)first - expect) <= 2.0);

    free(in);
    free(out);
    free(block);
    steno__resampler_close(r);
}

static void test_8k_mono_is_upsampled(void **state)
{
    convert_and_check(8000, 1);
}

static void test_16k_mono_passes_through(void **state)
{
    convert_and_check(16000, 1);
}

static void test_44k1_stereo_is_mixed_and_downsampled(void **state)
{
    convert_and_check(44100, 2);
}

static void test_48k_stereo_is_mixed_and_downsampled(void **state)
{
    convert_and_check(48000, 2);
}

/* Mixdown averages the channels: opposite channels cancel, one silent channel halves. */
static void test_mixdown_averages_channels(void **state)
{
    steno__resampler *r = NULL;
    assert_int_equal(steno__resampler_open(16000, 2, 16000, 4, 5, &r), 0);
    int16_t in[8] = {1000, -1000, 32767, 32767, -32768, -32768, 2000, 0};
    int16_t out[8];
    assert_int_equal(steno__resampler_process(r, in, 4, out), 4);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 32767);
    assert_int_equal(out[2], -32768);
    assert_int_equal(out[3], 1000);
    steno__resampler_close(r);
}

static void test_silence_reads_floor_and_full_scale_reads_zero(void **state)
{
    steno__level_acc acc;
    steno__level_reset(&acc);
    int16_t zero[64] = {0};
    steno__level_add(&acc, zero, 64);
    float rms, peak, rms_db, peak_db;
    steno__level_result(&acc, &rms, &peak, &rms_db, &peak_db);
    assert_true(rms == 0 && peak == 0 && rms_db == -120 && peak_db == -120);
    int16_t square[64];
    for (int i = 0; i < 64; i++)
        square[i] = i % 2 ? 32767 : -32768;
    steno__level_reset(&acc);
    steno__level_add(&acc, square, 64);
    steno__level_result(&acc, &rms, &peak, &rms_db, &peak_db);
    assert_true(peak == 1.0f && peak_db == 0.0f && fabs(rms_db) < 0.01);
}

static void test_bad_arguments_are_refused(void **state)
{
    steno__resampler *r = (steno__resampler *)1;
    assert_int_equal(steno__resampler_open(0, 1, 16000, 10, 5, &r), -1);
    assert_null(r);
    assert_int_equal(steno__resampler_open(16000, 0, 16000, 10, 5, &r), -1);
    assert_int_equal(steno__resampler_open(16000, 1, 16000, 0, 5, &r), -1);
    assert_int_equal(steno__resampler_open(16000, 1, 16000, 10, 11, &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_8k_mono_is_upsampled),
        cmocka_unit_test(test_16k_mono_passes_through),
        cmocka_unit_test(test_44k1_stereo_is_mixed_and_downsampled),
        cmocka_unit_test(test_48k_stereo_is_mixed_and_downsampled),
        cmocka_unit_test(test_mixdown_averages_channels),
        cmocka_unit_test(test_silence_reads_floor_and_full_scale_reads_zero),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
