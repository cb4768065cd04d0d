/* source: audio files (libsndfile) and raw PCM streams, as mono at the session's rate. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sndfile.h>

#include "errmsg.h"
#include "resample.h"
#include "steno/audio.h"

#define READ_FRAMES 4096 /* source frames decoded per refill */

struct steno_source {
    SNDFILE *sf; /* NULL for a raw stream */
    int fd;
    steno_source_info info;
    steno__resampler *rs;
    int16_t *in;  /* READ_FRAMES * channels */
    int16_t *out; /* steno__resampler_out_max() */
    size_t out_len, out_pos;
    uint32_t out_rate;
    size_t raw_partial; /* bytes of an incomplete raw frame, kept in carry */
    unsigned char carry[64 * sizeof(int16_t)];
    int eof, drained;
};

static steno_status finish_open(steno_source *s, uint32_t out_rate, steno_source **out, char *err,
                                size_t errlen)
{
    s->out_rate = out_rate;
    steno_status st = steno__resampler_open(s->info.sample_rate, s->info.channels, out_rate,
                                            READ_FRAMES, STENO_RESAMPLE_QUALITY_DEFAULT, &s->rs);
    if (st == STENO_OK) {
        s->in = malloc((size_t)READ_FRAMES * s->info.channels * sizeof *s->in);
        s->out = malloc(steno__resampler_out_max(s->rs) * sizeof *s->out);
        if (!s->in || !s->out)
            st = STENO_ERR_NOMEM;
    }
    if (st != STENO_OK) {
        steno__errf(err, errlen, "cannot convert %u Hz x %u channel(s) to %u Hz mono: %s",
                    s->info.sample_rate, s->info.channels, out_rate, steno_strerror(st));
        steno_source_close(s);
        return st;
    }
    *out = s;
    return STENO_OK;
}

static int rate_ok(uint32_t r)
{
    return r >= 8000 && r <= 192000;
}

steno_status steno_source_open_file(const char *path, uint32_t out_rate, steno_source **out,
                                    char *err, size_t errlen)
{
    if (!out)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    if (!path || !rate_ok(out_rate)) {
        steno__errf(err, errlen,
                    "steno_source_open_file: a path and an output rate in 8000..192000");
        return STENO_ERR_INVALID_ARG;
    }
    /* libsndfile says "not recognised" for a missing file too: ask the OS first. */
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        steno__errf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return STENO_ERR_INVALID_ARG;
    }
    fclose(probe);
    steno_source *s = calloc(1, sizeof *s);
    if (!s)
        return STENO_ERR_NOMEM;
    s->fd = -1;
    SF_INFO fi = {0};
    s->sf = sf_open(path, SFM_READ, &fi);
    if (!s->sf) {
        steno__errf(err, errlen, "'%s' is not audio this build can decode: %s", path,
                    sf_strerror(NULL));
        free(s);
        return STENO_ERR_FORMAT;
    }
    if (fi.channels < 1 || fi.channels > 64 || !rate_ok((uint32_t)fi.samplerate)) {
        steno__errf(err, errlen,
                    "'%s' has %d channel(s) at %d Hz; steno takes 1..64 at 8000..192000 Hz", path,
                    fi.channels, fi.samplerate);
        sf_close(s->sf);
        free(s);
        return STENO_ERR_FORMAT;
    }
    s->info.sample_rate = (uint32_t)fi.samplerate;
    s->info.channels = (uint32_t)fi.channels;
    s->info.frames = fi.frames > 0 ? (uint64_t)fi.frames : 0;
    SF_FORMAT_INFO major = {.format = fi.format & SF_FORMAT_TYPEMASK};
    SF_FORMAT_INFO sub = {.format = fi.format & SF_FORMAT_SUBMASK};
    const char *mj =
        sf_command(NULL, SFC_GET_FORMAT_INFO, &major, sizeof major) == 0 ? major.name : "audio";
    const char *sb = sf_command(NULL, SFC_GET_FORMAT_INFO, &sub, sizeof sub) == 0 ? sub.name : "";
    snprintf(s->info.format, sizeof s->info.format, "%s%s%s", mj, *sb ? ", " : "", sb);
    return finish_open(s, out_rate, out, err, errlen);
}

steno_status steno_source_open_raw(int fd, uint32_t in_rate, uint32_t in_channels,
                                   uint32_t out_rate, steno_source **out, char *err, size_t errlen)
{
    if (!out)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    if (fd < 0 || !rate_ok(in_rate) || !rate_ok(out_rate) || in_channels < 1 || in_channels > 64) {
        steno__errf(err, errlen,
                    "raw PCM needs a readable descriptor, a rate in 8000..192000 Hz and 1..64 "
                    "channels (got rate %u, %u channel(s))",
                    in_rate, in_channels);
        return STENO_ERR_INVALID_ARG;
    }
    steno_source *s = calloc(1, sizeof *s);
    if (!s)
        return STENO_ERR_NOMEM;
    s->fd = fd;
    s->info.sample_rate = in_rate;
    s->info.channels = in_channels;
    snprintf(s->info.format, sizeof s->info.format, "raw PCM, signed 16 bit little-endian");
    return finish_open(s, out_rate, out, err, errlen);
}

void steno_source_info_get(const steno_source *src, steno_source_info *out)
{
    *out = src->info;
}

/* Reads up to READ_FRAMES source frames into s->in; 0 at the end, -1 on error. A frame
 * split across reads waits in s->carry for the rest of its bytes. */
static long read_raw(steno_source *s)
{
    const size_t frame_bytes = s->info.channels * sizeof(int16_t);
    const size_t want = (size_t)READ_FRAMES * frame_bytes;
    unsigned char *buf = (unsigned char *)s->in;
    size_t have = s->raw_partial;
    memcpy(buf, s->carry, have);
    while (have < frame_bytes) {
        ssize_t n = read(s->fd, buf + have, want - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break; /* an incomplete last frame is discarded */
        have += (size_t)n;
    }
    size_t frames = have / frame_bytes;
    s->raw_partial = have - frames * frame_bytes;
    memcpy(s->carry, buf + frames * frame_bytes, s->raw_partial);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < frames * s->info.channels; i++)
        s->in[i] = (int16_t)__builtin_bswap16((uint16_t)s->in[i]);
#endif
    return (long)frames;
}

static steno_status refill(steno_source *s)
{
    s->out_len = s->out_pos = 0;
    while (s->out_len == 0 && !s->drained) {
        if (!s->eof) {
            long frames;
            if (s->sf) {
                sf_count_t n = sf_readf_short(s->sf, s->in, READ_FRAMES);
                if (n < 0 || (n == 0 && sf_error(s->sf) != SF_ERR_NO_ERROR))
                    return STENO_ERR_FORMAT;
                frames = (long)n;
            } else {
                frames = read_raw(s);
                if (frames < 0)
                    return STENO_ERR_INVALID_ARG;
            }
            if (frames == 0) {
                s->eof = 1;
                continue;
            }
            s->out_len = steno__resampler_process(s->rs, s->in, (size_t)frames, s->out);
        } else {
            s->out_len = steno__resampler_drain(s->rs, s->out, steno__resampler_out_max(s->rs));
            if (s->out_len == 0)
                s->drained = 1;
        }
    }
    return STENO_OK;
}

steno_status steno_source_read(steno_source *src, int16_t *out, size_t max_frames, size_t *got)
{
    if (!src || !got || (!out && max_frames))
        return STENO_ERR_INVALID_ARG;
    *got = 0;
    while (*got < max_frames) {
        if (src->out_pos == src->out_len) {
            steno_status st = refill(src);
            if (st != STENO_OK)
                return st;
            if (src->out_len == 0)
                break;
        }
        size_t n = src->out_len - src->out_pos;
        if (n > max_frames - *got)
            n = max_frames - *got;
        memcpy(out + *got, src->out + src->out_pos, n * sizeof *out);
        src->out_pos += n;
        *got += n;
    }
    return STENO_OK;
}

void steno_feed_config_init(steno_feed_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->speed = STENO_FEED_REAL_TIME;
    cfg->block_ms = 20;
    cfg->max_ahead_ms = 1000;
    cfg->max_unacked_ms = 8000;
}

static void add_ns(struct timespec *t, long long ns)
{
    long long total = t->tv_nsec + ns;
    t->tv_sec += total / 1000000000LL;
    t->tv_nsec = total % 1000000000LL;
}

static void sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR) {
    }
}

/* Where the session stands, for the as-accepted pace: frames written but not yet sent live
 * (-1 while it has no connection to send on) and frames not yet covered by a final. Replays
 * are sent again, so they are taken out of the sent count. */
typedef struct backlog {
    int64_t unsent;
    uint64_t unacked;
    uint64_t acked;
} backlog;

static backlog backlog_of(steno_session *session)
{
    backlog b = {0};
    steno_session_stats st;
    if (steno_session_stats_get(session, &st) != STENO_OK)
        return b;
    uint64_t gone = st.samples_acked + st.samples_dropped + st.samples_evicted;
    b.acked = gone;
    b.unacked = st.samples_written > gone ? st.samples_written - gone : 0;
    if (st.state == STENO_STATE_CONNECTING || st.state == STENO_STATE_RECONNECTING ||
        st.state == STENO_STATE_IDLE) {
        b.unsent = -1;
        return b;
    }
    uint64_t per_chunk = st.chunks_sent ? st.samples_sent / st.chunks_sent : 0;
    uint64_t replayed = st.chunks_replayed * per_chunk;
    uint64_t live = st.samples_sent > replayed ? st.samples_sent - replayed : 0;
    live += st.samples_dropped;
    b.unsent = st.samples_written > live ? (int64_t)(st.samples_written - live) : 0;
    return b;
}

steno_status steno_source_feed(steno_source *src, steno_session *session,
                               const steno_feed_config *cfg, uint64_t *written)
{
    steno_feed_config def;
    if (!cfg) {
        steno_feed_config_init(&def);
        cfg = &def;
    }
    if (written)
        *written = 0;
    if (!src || !session || cfg->block_ms < 1 || cfg->block_ms > 1000 || cfg->speed < 0 ||
        cfg->speed > 100)
        return STENO_ERR_INVALID_ARG;
    const size_t block = (size_t)src->out_rate * cfg->block_ms / 1000;
    int16_t *pcm = malloc(block * sizeof *pcm);
    if (!pcm)
        return STENO_ERR_NOMEM;
    const int as_accepted = cfg->speed == STENO_FEED_AS_ACCEPTED;
    const int64_t max_ahead = (int64_t)src->out_rate * cfg->max_ahead_ms / 1000;
    const uint64_t max_unacked = (uint64_t)src->out_rate * cfg->max_unacked_ms / 1000;
    /* Real time is kept on an absolute clock, so the stream neither drifts nor bursts. */
    const long long block_ns = as_accepted ? 0 : (long long)(cfg->block_ms * 1e6 / cfg->speed);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t total = 0;
    steno_status rc = STENO_OK;
    for (;;) {
        size_t got = 0;
        rc = steno_source_read(src, pcm, block, &got);
        if (rc != STENO_OK || got == 0)
            break;
        if (as_accepted) {
            /* The session sends at the provider's pace: keep just ahead of it,
             * hold while it has no connection, and keep what awaits a final
             * within the ring (a file can wait; a microphone could not). A
             * provider that finalizes only at pauses may hold a long
             * utterance's final until more audio comes: once everything
             * written was sent and no final came for a second, ask for one. */
            uint64_t stalled_since = 0, last_acked = UINT64_MAX;
            for (;;) {
                steno_session_state ss = steno_session_state_get(session);
                if (ss == STENO_STATE_FAILED || ss == STENO_STATE_CLOSED)
                    break;
                backlog b = backlog_of(session);
                int room_ahead = b.unsent >= 0 && b.unsent + (int64_t)got <= max_ahead;
                int room_ring = b.unacked + got <= max_unacked;
                if (room_ahead && room_ring)
                    break;
                clock_gettime(CLOCK_MONOTONIC, &next);
                uint64_t now_ms = (uint64_t)next.tv_sec * 1000 + (uint64_t)next.tv_nsec / 1000000;
                if (room_ahead && b.unsent == 0) {
                    if (b.acked != last_acked) {
                        last_acked = b.acked;
                        stalled_since = now_ms;
                    } else if (now_ms - stalled_since >= 1000) {
                        steno_session_finalize(session);
                        stalled_since = now_ms;
                    }
                }
                add_ns(&next, 10000000LL);
                sleep_until(&next);
            }
        }
        steno_status w = steno_session_write(session, pcm, got);
        if (w == STENO_ERR_STATE || w == STENO_ERR_INVALID_ARG) {
            rc = w;
            break;
        }
        total += got;
        if (written)
            *written = total;
        if (cfg->on_block && cfg->on_block(cfg->user, total))
            break;
        if (!as_accepted) {
            add_ns(&next, block_ns * (long long)got / (long long)block);
            sleep_until(&next);
        }
    }
    free(pcm);
    return rc;
}

void steno_source_close(steno_source *src)
{
    if (!src)
        return;
    if (src->sf)
        sf_close(src->sf);
    steno__resampler_close(src->rs);
    free(src->in);
    free(src->out);
    free(src);
}
