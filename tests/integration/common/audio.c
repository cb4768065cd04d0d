/* audio: test audio for the integration tests — checksums, deterministic signals, WAV files, and
 * a capture thread that writes them into a session. */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t h_fnv1a64_more(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t h_fnv1a64(const void *p, size_t n)
{
    return h_fnv1a64_more(H_FNV_INIT, p, n);
}

int16_t h_pattern_sample(uint32_t seed, uint64_t i)
{
    /* splitmix64 of (seed, index): no two chunks alike, so a misplaced one cannot match */
    uint64_t z = i + ((uint64_t)seed << 40) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (int16_t)(z & 0x3fff) - 0x2000; /* moderate level, like speech */
}

int16_t h_sample(uint64_t i)
{
    return h_pattern_sample(0, i);
}

void h_pattern(uint32_t seed, uint64_t first, size_t n, int16_t *out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = h_pattern_sample(seed, first + k);
}

int16_t *h_pattern_alloc(uint32_t seed, size_t frames)
{
    int16_t *pcm = malloc(frames * sizeof *pcm);
    H_CHECK(pcm, "out of memory for %zu frames", frames);
    h_pattern(seed, 0, frames, pcm);
    return pcm;
}

void h_wav_load(const char *path, int16_t **pcm, size_t *frames, uint32_t *rate)
{
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    H_CHECK(f, "cannot open %s: %s", path, sf_strerror(NULL));
    H_CHECK(info.channels == 1, "%s: %d channels, want mono", path, info.channels);
    *pcm = malloc((size_t)info.frames * sizeof **pcm + 1);
    H_CHECK(*pcm, "out of memory");
    sf_count_t n = sf_readf_short(f, *pcm, info.frames);
    sf_close(f);
    H_CHECK(n == info.frames, "%s: short read", path);
    *frames = (size_t)n;
    *rate = (uint32_t)info.samplerate;
}

/* ---- producer ---- */

static void *producer_main(void *arg)
{
    h_producer *p = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t off = 0;
    while (off < p->frames && !atomic_load(&p->stop)) {
        size_t n = p->frames - off < p->piece_frames ? p->frames - off : p->piece_frames;
        if (p->speed > 0) {
            /* like a capture callback: the piece is handed over once it "was recorded" */
            double due = (double)(off + n) / ((double)p->rate * p->speed);
            struct timespec ts = t0;
            ts.tv_sec += (time_t)due;
            ts.tv_nsec += (long)((due - floor(due)) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
        }
        steno_status rc = steno_session_write(p->s, p->pcm + off, n);
        if (rc == STENO_ERR_FULL)
            atomic_fetch_add(&p->full_returns, 1);
        else if (rc != STENO_OK && !atomic_load(&p->bad_status))
            atomic_store(&p->bad_status, (int)rc);
        off += n;
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->written, off);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->done, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void h_producer_start(h_producer *p, steno_session *s, const int16_t *pcm, size_t frames,
                      uint32_t rate, size_t piece_frames, double speed)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->pcm = pcm;
    p->frames = frames;
    p->rate = rate;
    p->piece_frames = piece_frames ? piece_frames : rate / 50;
    p->speed = speed;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    H_CHECK(pthread_create(&p->th, NULL, producer_main, p) == 0, "pthread_create");
    p->started = 1;
}

size_t h_producer_join(h_producer *p)
{
    if (p->started) {
        pthread_join(p->th, NULL);
        p->started = 0;
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    return atomic_load(&p->written);
}

size_t h_producer_written(h_producer *p)
{
    return atomic_load(&p->written);
}

void h_producer_stop(h_producer *p)
{
    atomic_store(&p->stop, 1);
}

bool h_producer_wait(h_producer *p, size_t frames, uint32_t timeout_ms)
{
    struct timespec ts;
    h_deadline_ts(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (atomic_load(&p->written) < frames && !atomic_load(&p->done) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    bool ok = atomic_load(&p->written) >= frames;
    pthread_mutex_unlock(&p->mu);
    return ok;
}
