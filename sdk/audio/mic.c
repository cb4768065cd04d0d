/* mic: PortAudio capture into a session, with mute, overflow counts and level events. */
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <portaudio.h>
#ifdef STENO_HAVE_ALSA
#include <alsa/asoundlib.h>
#endif

#include "errmsg.h"
#include "level.h"
#include "prefault.h"
#include "resample.h"
#include "steno/audio.h"

struct steno_mic {
    PaStream *stream;
    steno_session *session;
    steno__resampler *rs;
    int16_t *out; /* steno__resampler_out_max() frames */
    size_t max_in;
    uint32_t rate, channels, session_rate;
    char name[128];

    /* Capture-thread counters: relaxed atomics, read by stats from any thread. */
    _Atomic uint64_t callbacks, captured, muted_frames, written, overflows, ring_full;
    /* Mute handshake (Dekker-style, sequentially consistent): the callback
     * raises in_write before it looks at muted, the muting thread raises
     * muted before it looks at in_write, so one always sees the other. */
    _Atomic int muted, in_write;
    int started;

    /* Level path: an SPSC ring of the written audio (the callback produces,
     * the level thread consumes), and the level thread. */
    int16_t *lv_buf;
    uint64_t lv_mask;
    _Atomic uint64_t lv_head, lv_tail, lv_dropped;
    steno_level_fn on_level;
    void *level_user;
    uint32_t level_ms;
    pthread_t level_thread;
    int level_running;
    _Atomic int level_stop;
};

#ifdef STENO_HAVE_ALSA
/* ALSA prints every device it probes and cannot open; a library must not print. */
static void alsa_silent(const char *file, int line, const char *fn, int err, const char *fmt, ...)
{
}
#endif

static void jack_silent(const char *msg) {}

/* PortAudio's JACK backend opens a client to probe for a server, and libjack
 * prints its failures before PortAudio installs its own (quiet) handler. The
 * handlers are looked up at run time so steno does not link libjack itself. */
static void silence_jack(void)
{
    typedef void (*setter)(void (*)(const char *));
    static const char *const names[] = {"jack_set_error_function", "jack_set_info_function"};
    for (size_t i = 0; i < 2; i++) {
        setter set;
        *(void **)&set = dlsym(RTLD_DEFAULT, names[i]);
        if (set)
            set(jack_silent);
    }
}

static PaError audio_init(void)
{
#ifdef STENO_HAVE_ALSA
    snd_lib_error_set_handler(alsa_silent);
#endif
    silence_jack();
    return Pa_Initialize();
}

steno_status steno_audio_devices(steno_audio_device *out, size_t cap, size_t *n, char *err,
                                 size_t errlen)
{
    if (!n || (!out && cap))
        return STENO_ERR_INVALID_ARG;
    *n = 0;
    PaError pe = audio_init();
    if (pe != paNoError) {
        steno__errf(err, errlen, "the audio system cannot start: %s", Pa_GetErrorText(pe));
        return STENO_ERR_UNSUPPORTED;
    }
    int count = Pa_GetDeviceCount();
    PaDeviceIndex def = Pa_GetDefaultInputDevice();
    for (int i = 0; i < count; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (!d)
            continue;
        if (*n < cap) {
            steno_audio_device *o = &out[*n];
            memset(o, 0, sizeof *o);
            o->index = i;
            snprintf(o->name, sizeof o->name, "%s", d->name ? d->name : "");
            const PaHostApiInfo *h = Pa_GetHostApiInfo(d->hostApi);
            snprintf(o->host_api, sizeof o->host_api, "%s", h && h->name ? h->name : "");
            o->max_input_channels = d->maxInputChannels;
            o->max_output_channels = d->maxOutputChannels;
            o->default_sample_rate = d->defaultSampleRate;
            o->is_default_input = i == def;
        }
        (*n)++;
    }
    Pa_Terminate();
    return STENO_OK;
}

void steno_mic_config_init(steno_mic_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->session_rate = 16000;
    cfg->resample_quality = STENO_RESAMPLE_QUALITY_DEFAULT;
    cfg->level_ms = 50;
}

/* The names of the input devices, for an error message that lists the choices. */
static void input_names(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < Pa_GetDeviceCount() && used < len; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d && d->maxInputChannels > 0) {
            int w = snprintf(buf + used, len - used, "%s%d '%s'", used ? ", " : "", i, d->name);
            if (w < 0)
                break;
            used += (size_t)w;
        }
    }
    if (!buf[0])
        snprintf(buf, len, "none");
}

static PaDeviceIndex find_device(const char *want, char *err, size_t errlen)
{
    char names[512];
    if (!want || !*want) {
        PaDeviceIndex d = Pa_GetDefaultInputDevice();
        if (d == paNoDevice) {
            input_names(names, sizeof names);
            steno__errf(err, errlen, "there is no default input device (inputs: %s)", names);
        }
        return d;
    }
    int count = Pa_GetDeviceCount();
    const char *p = want;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '\0' && p - want < 9) {
        int i = atoi(want);
        const PaDeviceInfo *d = i < count ? Pa_GetDeviceInfo(i) : NULL;
        if (d && d->maxInputChannels > 0)
            return i;
        input_names(names, sizeof names);
        steno__errf(err, errlen, "audio device %s %s (inputs: %s)", want,
                    d ? "has no input channels" : "does not exist", names);
        return paNoDevice;
    }
    PaDeviceIndex found = paNoDevice;
    int matches = 0;
    for (int i = 0; i < count; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d && d->maxInputChannels > 0 && d->name && strcmp(d->name, want) == 0)
            return i;
    }
    for (int i = 0; i < count; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d && d->maxInputChannels > 0 && d->name && strstr(d->name, want)) {
            found = i;
            matches++;
        }
    }
    if (matches == 1)
        return found;
    input_names(names, sizeof names);
    steno__errf(err, errlen, "%s input device matches '%s' (inputs: %s)",
                matches ? "more than one" : "no", want, names);
    return paNoDevice;
}

/* ---- the capture thread ---- */

static void level_push(steno_mic *m, const int16_t *pcm, size_t n)
{
    uint64_t head = atomic_load_explicit(&m->lv_head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&m->lv_tail, memory_order_acquire);
    uint64_t room = m->lv_mask + 1 - (head - tail);
    size_t take = n < room ? n : (size_t)room;
    for (size_t i = 0; i < take; i++)
        m->lv_buf[(head + i) & m->lv_mask] = pcm[i];
    atomic_store_explicit(&m->lv_head, head + take, memory_order_release);
    if (take < n)
        atomic_fetch_add_explicit(&m->lv_dropped, n - take, memory_order_relaxed);
}

/* PortAudio's callback: mix down, resample, write, copy for the level thread.
 * Nothing here allocates, locks, prints or blocks. */
static int on_audio(const void *input, void *output, unsigned long frames,
                    const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags flags, void *user)
{
    steno_mic *m = user;
    atomic_fetch_add_explicit(&m->callbacks, 1, memory_order_relaxed);
    if (flags & paInputOverflow)
        atomic_fetch_add_explicit(&m->overflows, 1, memory_order_relaxed);
    if (!input)
        return paContinue;
    atomic_fetch_add_explicit(&m->captured, frames, memory_order_relaxed);
    atomic_store(&m->in_write, 1);
    if (atomic_load(&m->muted)) {
        atomic_store(&m->in_write, 0);
        atomic_fetch_add_explicit(&m->muted_frames, frames, memory_order_relaxed);
        return paContinue;
    }
    const int16_t *in = input;
    while (frames > 0) {
        size_t piece = frames < m->max_in ? frames : m->max_in;
        size_t n = steno__resampler_process(m->rs, in, piece, m->out);
        if (n > 0) {
            if (m->session && steno_session_write(m->session, m->out, n) == STENO_ERR_FULL)
                atomic_fetch_add_explicit(&m->ring_full, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&m->written, n, memory_order_relaxed);
            if (m->lv_buf)
                level_push(m, m->out, n);
        }
        in += piece * m->channels;
        frames -= piece;
    }
    atomic_store(&m->in_write, 0);
    return paContinue;
}

/* ---- the level thread ---- */

static void add_ms(struct timespec *t, uint32_t ms)
{
    long long total = t->tv_nsec + (long long)ms * 1000000LL;
    t->tv_sec += total / 1000000000LL;
    t->tv_nsec = total % 1000000000LL;
}

static void *level_main(void *arg)
{
    steno_mic *m = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&m->level_stop)) {
        add_ms(&next, m->level_ms);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
        uint64_t tail = atomic_load_explicit(&m->lv_tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&m->lv_head, memory_order_acquire);
        steno__level_acc acc;
        steno__level_reset(&acc);
        for (uint64_t i = tail; i < head; i++) {
            int16_t v = m->lv_buf[i & m->lv_mask];
            steno__level_add(&acc, &v, 1);
        }
        atomic_store_explicit(&m->lv_tail, head, memory_order_release);
        steno_audio_level lv = {0};
        steno__level_result(&acc, &lv.rms, &lv.peak, &lv.rms_dbfs, &lv.peak_dbfs);
        lv.first_sample = tail;
        lv.frames = (uint32_t)(head - tail);
        lv.overflows = atomic_load_explicit(&m->overflows, memory_order_relaxed);
        lv.muted = atomic_load(&m->muted);
        m->on_level(m->level_user, &lv);
    }
    return NULL;
}

/* ---- lifecycle ---- */

steno_status steno_mic_open(const steno_mic_config *cfg, steno_session *session, steno_mic **out,
                            char *err, size_t errlen)
{
    if (!out)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    steno_mic_config c;
    if (cfg)
        c = *cfg;
    else
        steno_mic_config_init(&c);
    if (c.session_rate == 0)
        c.session_rate = 16000;
    if (c.resample_quality == 0)
        c.resample_quality = STENO_RESAMPLE_QUALITY_DEFAULT;
    if (c.level_ms == 0)
        c.level_ms = 50;
    if (c.session_rate < 8000 || c.session_rate > 192000 || c.resample_quality < 1 ||
        c.resample_quality > 10 || c.level_ms < 10 || c.level_ms > 1000 ||
        (c.sample_rate && (c.sample_rate < 8000 || c.sample_rate > 192000)) || c.channels > 64) {
        steno__errf(err, errlen,
                    "microphone config: session_rate and sample_rate 8000..192000, channels "
                    "0..64, resample_quality 1..10, level_ms 10..1000");
        return STENO_ERR_CONFIG;
    }
    PaError pe = audio_init();
    if (pe != paNoError) {
        steno__errf(err, errlen, "the audio system cannot start: %s", Pa_GetErrorText(pe));
        return STENO_ERR_UNSUPPORTED;
    }
    PaDeviceIndex dev = find_device(c.device, err, errlen);
    if (dev == paNoDevice) {
        Pa_Terminate();
        return STENO_ERR_CONFIG;
    }
    const PaDeviceInfo *di = Pa_GetDeviceInfo(dev);
    steno_mic *m = calloc(1, sizeof *m);
    if (!m) {
        Pa_Terminate();
        return STENO_ERR_NOMEM;
    }
    m->session = session;
    m->session_rate = c.session_rate;
    m->rate = c.sample_rate ? c.sample_rate : (uint32_t)(di->defaultSampleRate + 0.5);
    m->channels =
        c.channels ? c.channels : (uint32_t)(di->maxInputChannels < 2 ? di->maxInputChannels : 2);
    snprintf(m->name, sizeof m->name, "%s", di->name);
    uint32_t fpb = c.frames_per_buffer ? c.frames_per_buffer : m->rate / 100;
    m->max_in = fpb;
    steno_status st = steno__resampler_open(m->rate, m->channels, m->session_rate, m->max_in,
                                            c.resample_quality, &m->rs);
    if (st != STENO_OK) {
        steno__errf(err, errlen, "cannot resample %u Hz x %u to %u Hz: %s", m->rate, m->channels,
                    m->session_rate, steno_strerror(st));
        goto fail;
    }
    m->out = calloc(steno__resampler_out_max(m->rs), sizeof *m->out);
    if (!m->out) {
        st = STENO_ERR_NOMEM;
        goto fail;
    }
    steno__prefault(m->out, steno__resampler_out_max(m->rs) * sizeof *m->out);
    if (c.on_level) {
        /* one second of audio (a power of two) */
        uint64_t cap = 1;
        while (cap < m->session_rate)
            cap <<= 1;
        m->lv_buf = calloc(cap, sizeof *m->lv_buf);
        if (!m->lv_buf) {
            st = STENO_ERR_NOMEM;
            goto fail;
        }
        steno__prefault(m->lv_buf, cap * sizeof *m->lv_buf);
        m->lv_mask = cap - 1;
        m->on_level = c.on_level;
        m->level_user = c.level_user;
        m->level_ms = c.level_ms;
    }
    PaStreamParameters in = {
        .device = dev,
        .channelCount = (int)m->channels,
        .sampleFormat = paInt16,
        .suggestedLatency = di->defaultLowInputLatency,
    };
    pe = Pa_IsFormatSupported(&in, NULL, m->rate);
    if (pe == paNoError)
        pe = Pa_OpenStream(&m->stream, &in, NULL, m->rate, fpb, paNoFlag, on_audio, m);
    if (pe != paNoError) {
        steno__errf(err, errlen, "audio device '%s' cannot capture %u channel(s) at %u Hz: %s",
                    m->name, m->channels, m->rate, Pa_GetErrorText(pe));
        st = STENO_ERR_FORMAT;
        m->stream = NULL;
        goto fail;
    }
    *out = m;
    return STENO_OK;
fail:
    steno_mic_close(m);
    return st;
}

steno_status steno_mic_attach(steno_mic *m, steno_session *session)
{
    if (!m)
        return STENO_ERR_INVALID_ARG;
    if (m->started)
        return STENO_ERR_STATE;
    m->session = session; /* the callback thread starts after this (Pa_StartStream) */
    return STENO_OK;
}

steno_status steno_mic_start(steno_mic *m)
{
    if (!m)
        return STENO_ERR_INVALID_ARG;
    if (m->started)
        return STENO_ERR_STATE;
    if (m->on_level && !m->level_running) {
        atomic_store(&m->level_stop, 0);
        if (pthread_create(&m->level_thread, NULL, level_main, m) != 0)
            return STENO_ERR_NOMEM;
        m->level_running = 1;
    }
    PaError pe = Pa_StartStream(m->stream);
    if (pe != paNoError)
        return STENO_ERR_STATE;
    m->started = 1;
    return STENO_OK;
}

static void level_stop(steno_mic *m)
{
    if (m->level_running) {
        atomic_store(&m->level_stop, 1);
        pthread_join(m->level_thread, NULL);
        m->level_running = 0;
    }
}

steno_status steno_mic_stop(steno_mic *m)
{
    if (!m)
        return STENO_ERR_INVALID_ARG;
    if (!m->started)
        return STENO_ERR_STATE;
    Pa_StopStream(m->stream); /* returns once the callback has finished for good */
    m->started = 0;
    level_stop(m);
    return STENO_OK;
}

steno_status steno_mic_set_muted(steno_mic *m, int muted)
{
    if (!m)
        return STENO_ERR_INVALID_ARG;
    atomic_store(&m->muted, muted ? 1 : 0);
    if (muted) {
        /* Wait out a callback already past the mute check: afterwards the
         * caller owns the producer side (finalize may publish the partial chunk). */
        struct timespec ms = {0, 1000000};
        while (atomic_load(&m->in_write))
            nanosleep(&ms, NULL);
    }
    return STENO_OK;
}

int steno_mic_muted(const steno_mic *m)
{
    return m ? atomic_load(&((steno_mic *)m)->muted) : 0;
}

steno_status steno_mic_stats_get(const steno_mic *cm, steno_mic_stats *out)
{
    if (!cm || !out)
        return STENO_ERR_INVALID_ARG;
    steno_mic *m = (steno_mic *)cm;
    memset(out, 0, sizeof *out);
    out->sample_rate = m->rate;
    out->channels = m->channels;
    out->callbacks = atomic_load_explicit(&m->callbacks, memory_order_relaxed);
    out->frames_captured = atomic_load_explicit(&m->captured, memory_order_relaxed);
    out->frames_muted = atomic_load_explicit(&m->muted_frames, memory_order_relaxed);
    out->frames_written = atomic_load_explicit(&m->written, memory_order_relaxed);
    out->input_overflows = atomic_load_explicit(&m->overflows, memory_order_relaxed);
    out->ring_full = atomic_load_explicit(&m->ring_full, memory_order_relaxed);
    out->level_dropped = atomic_load_explicit(&m->lv_dropped, memory_order_relaxed);
    return STENO_OK;
}

const char *steno_mic_device_name(const steno_mic *m)
{
    return m ? m->name : "";
}

void steno_mic_close(steno_mic *m)
{
    if (!m)
        return;
    if (m->stream) {
        if (m->started)
            Pa_StopStream(m->stream);
        Pa_CloseStream(m->stream);
    }
    level_stop(m);
    steno__resampler_close(m->rs);
    free(m->out);
    free(m->lv_buf);
    free(m);
    Pa_Terminate();
}
