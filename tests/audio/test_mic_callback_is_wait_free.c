/* test_mic_callback_is_wait_free: the microphone's PortAudio callback — mixdown, resampling,
 * steno_session_write, the level copy, mute — never allocates, locks or waits, through real
 * PortAudio capture from a PulseAudio null sink; and levels and mute do what they say. */
#include <inttypes.h>
#include <math.h>
#include <portaudio.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include "harness.h"
#include "interpose.h"
#include "steno/steno.h"

/*
 * The test executable defines Pa_OpenStream itself (it is exported, so
 * libsteno's call lands here) and hands PortAudio a wrapper around steno's
 * callback: the wrapper marks the PortAudio thread as watched for exactly
 * the duration of steno's callback (interpose.c then counts every
 * allocation, lock and potentially blocking call, from libsteno, libspeexdsp,
 * libwebsockets or libc's exported functions), and reads the thread's
 * voluntary context switches and page faults around it. The one thing
 * allowed is the wake of the network thread per published chunk (an eventfd
 * or pipe write inside lws_cancel_service), as for steno_session_write.
 */

#define RATE 16000u
#define CHUNK_FRAMES 1600u
#define WARMUP_CALLBACKS 20 /* first-use faults of PortAudio's own thread stack */

extern char **environ;

typedef int pa_cb_fn(const void *, void *, unsigned long, const PaStreamCallbackTimeInfo *,
                     PaStreamCallbackFlags, void *);
static pa_cb_fn *steno_cb;
static _Atomic uint64_t callbacks, nvcsw, minflt, warm_minflt;
static _Atomic uint64_t calls[IP_N];

static int watched_cb(const void *in, void *out, unsigned long frames,
                      const PaStreamCallbackTimeInfo *t, PaStreamCallbackFlags flags, void *user)
{
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    ip_watch(1);
    int rc = steno_cb(in, out, frames, t, flags, user);
    ip_watch(0);
    getrusage(RUSAGE_THREAD, &r1);
    uint64_t n = atomic_fetch_add(&callbacks, 1);
    atomic_fetch_add(&nvcsw, (uint64_t)(r1.ru_nvcsw - r0.ru_nvcsw));
    atomic_fetch_add(n < WARMUP_CALLBACKS ? &warm_minflt : &minflt,
                     (uint64_t)(r1.ru_minflt - r0.ru_minflt));
    for (int f = 0; f < IP_N; f++) {
        uint64_t c = ip_count((ip_fn)f);
        if (c)
            atomic_fetch_add(&calls[f], c);
    }
    ip_reset();
    return rc;
}

PaError Pa_OpenStream(PaStream **stream, const PaStreamParameters *in,
                      const PaStreamParameters *out, double rate, unsigned long fpb,
                      PaStreamFlags flags, PaStreamCallback *cb, void *user)
{
    PaError (*next)(PaStream **, const PaStreamParameters *, const PaStreamParameters *, double,
                    unsigned long, PaStreamFlags, PaStreamCallback *, void *);
    *(void **)&next = dlsym(RTLD_NEXT, "Pa_OpenStream");
    steno_cb = cb;
    return next(stream, in, out, rate, fpb, flags, watched_cb, user);
}

typedef struct levels {
    _Atomic int n, loud, quiet_while_muted;
    _Atomic int max_rms_mdb;
} levels;

static void on_level(void *user, const steno_audio_level *lv)
{
    levels *l = user;
    atomic_fetch_add(&l->n, 1);
    int mdb = (int)(lv->rms_dbfs * 1000);
    if (mdb > atomic_load(&l->max_rms_mdb))
        atomic_store(&l->max_rms_mdb, mdb);
    if (lv->frames && lv->rms_dbfs > -30)
        atomic_fetch_add(&l->loud, 1);
    if (lv->muted && lv->frames == 0)
        atomic_fetch_add(&l->quiet_while_muted, 1);
}

static pid_t play(const char *path)
{
    pid_t pid;
    char *argv[] = {"paplay", "--device=steno_sink", (char *)path, NULL};
    H_CHECK(posix_spawnp(&pid, "paplay", NULL, NULL, argv, environ) == 0, "cannot run paplay");
    return pid;
}

/* Waits (polling the counters, up to timeout_ms) until the mic wrote `frames` more frames. */
static void wait_written(steno_mic *m, uint64_t frames, uint32_t timeout_ms)
{
    steno_mic_stats st;
    steno_mic_stats_get(m, &st);
    uint64_t target = st.frames_written + frames, deadline = h_now_ms() + timeout_ms;
    while (st.frames_written < target) {
        H_CHECK(h_now_ms() < deadline, "the microphone wrote %" PRIu64 " of %" PRIu64 " frames",
                st.frames_written, target);
        struct timespec ms = {0, 10000000L};
        nanosleep(&ms, NULL);
        steno_mic_stats_get(m, &st);
    }
}

int main(void)
{
    h_init("mic_callback_is_wait_free");
    const char *tone = getenv("STENO_TEST_TONE");
    if (!tone || !getenv("PULSE_SERVER")) {
        printf("SKIP: run through with_pulse.py (a private PulseAudio daemon)\n");
        return H_SKIP;
    }
    /* positive control: the counting reaches this thread's calls */
    ip_watch(1);
    void *volatile probe = malloc(64); /* volatile: the pair must not be optimised away */
    free(probe);
    ip_watch(0);
    H_CHECK(ip_ready() && ip_count(IP_MALLOC) >= 1, "interposition does not work here");
    ip_reset();

    h_server srv;
    const char *const extra[] = {"--engine", "null", NULL};
    h_server_start(&srv, extra);
    char err[512];
    steno_client *c = NULL;
    H_CHECK(steno_client_open(NULL, &c, err, sizeof err) == STENO_OK, "%s", err);
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    steno_session *s = NULL;
    H_CHECK(steno_session_open(c, &sc, &s, err, sizeof err) == STENO_OK, "%s", err);

    levels lv = {.max_rms_mdb = -200000};
    steno_mic_config mc;
    steno_mic_config_init(&mc);
    mc.session_rate = RATE;
    mc.on_level = on_level;
    mc.level_user = &lv;
    steno_mic *m = NULL;
    H_CHECK(steno_mic_open(&mc, s, &m, err, sizeof err) == STENO_OK, "%s", err);
    H_CHECK(steno_cb != NULL, "steno did not open its stream through Pa_OpenStream");
    H_CHECK(steno_mic_start(m) == STENO_OK, "start");

    pid_t player = play(tone);
    wait_written(m, RATE * 2, 20000); /* two seconds of the tone, resampled */
    /* muted: the device keeps capturing, nothing reaches the session */
    steno_session_stats ss0, ss1;
    steno_mic_stats ms0, ms1;
    steno_mic_set_muted(m, 1);
    steno_session_stats_get(s, &ss0);
    steno_mic_stats_get(m, &ms0);
    uint64_t until = ms0.frames_muted + 48000 / 2;
    uint64_t deadline = h_now_ms() + 10000;
    while (ms1 = ms0, steno_mic_stats_get(m, &ms1), ms1.frames_muted < until) {
        H_CHECK(h_now_ms() < deadline, "no audio was captured while muted");
        struct timespec ms = {0, 10000000L};
        nanosleep(&ms, NULL);
    }
    steno_session_stats_get(s, &ss1);
    H_CHECK(ms1.frames_written == ms0.frames_written && ss1.samples_written == ss0.samples_written,
            "muted, the microphone still wrote %" PRIu64 " frames",
            ms1.frames_written - ms0.frames_written);
    steno_mic_set_muted(m, 0);
    wait_written(m, RATE / 2, 10000);
    H_CHECK(steno_mic_stop(m) == STENO_OK, "stop");
    int ws;
    waitpid(player, &ws, 0);

    steno_mic_stats st;
    steno_mic_stats_get(m, &st);
    steno_session_stats ss;
    steno_session_stats_get(s, &ss);
    printf("capture: %" PRIu64 " callbacks at %u Hz x %u, %" PRIu64 " frames captured, %" PRIu64
           " muted, %" PRIu64 " written at %u Hz, %" PRIu64 " overflows, %" PRIu64
           " voluntary context switches, %" PRIu64 " page faults (+%" PRIu64 " in the first %d)\n",
           st.callbacks, st.sample_rate, st.channels, st.frames_captured, st.frames_muted,
           st.frames_written, RATE, st.input_overflows, atomic_load(&nvcsw), atomic_load(&minflt),
           atomic_load(&warm_minflt), WARMUP_CALLBACKS);
    for (int f = 0; f < IP_N; f++)
        if (atomic_load(&calls[f]))
            printf("  %-26s %" PRIu64 "\n", ip_name((ip_fn)f), atomic_load(&calls[f]));
    printf("levels: %d events, %d loud, max RMS %.1f dBFS\n", atomic_load(&lv.n),
           atomic_load(&lv.loud), atomic_load(&lv.max_rms_mdb) / 1000.0);

    H_CHECK(atomic_load(&callbacks) > 100 && st.frames_written >= RATE * 5 / 2,
            "too little was captured to judge: %" PRIu64 " callbacks", atomic_load(&callbacks));
    H_CHECK(ss.samples_written == st.frames_written,
            "the session got %" PRIu64 " frames, the microphone wrote %" PRIu64, ss.samples_written,
            st.frames_written);
    uint64_t wakes = atomic_load(&calls[IP_EVENTFD_WRITE]) + atomic_load(&calls[IP_WRITE]);
    for (int f = 0; f < IP_N; f++) {
        if (f == IP_EVENTFD_WRITE || f == IP_WRITE)
            continue;
        H_CHECK(atomic_load(&calls[f]) == 0, "the capture callback called %s %" PRIu64 " times",
                ip_name((ip_fn)f), atomic_load(&calls[f]));
    }
    H_CHECK(wakes <= st.frames_written / CHUNK_FRAMES + 1,
            "%" PRIu64 " wakes for %" PRIu64 " chunks: more than one per published chunk", wakes,
            st.frames_written / CHUNK_FRAMES);
#if !defined(__SANITIZE_THREAD__)
    H_CHECK(atomic_load(&nvcsw) == 0, "the capture callback blocked %" PRIu64 " times",
            atomic_load(&nvcsw));
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    H_CHECK(atomic_load(&minflt) == 0,
            "%" PRIu64 " page faults in the capture callback after warm-up: a buffer was first "
            "touched there, not at open",
            atomic_load(&minflt));
#endif
    /* levels: a -15 dBFS RMS tone reads about that; muted periods carry no audio */
    double max_db = atomic_load(&lv.max_rms_mdb) / 1000.0;
    H_CHECK(atomic_load(&lv.loud) > 10 && max_db > -18 && max_db < -12,
            "levels: %d loud periods, max RMS %.1f dBFS (the tone is -15.1 dBFS)",
            atomic_load(&lv.loud), max_db);
    H_CHECK(atomic_load(&lv.quiet_while_muted) > 0, "no level period reported the mute");

    steno_mic_close(m);
    steno_session_close(s, 5000);
    steno_session_destroy(s);
    steno_client_destroy(c);
    h_server_stop(&srv);
    return h_pass();
}
