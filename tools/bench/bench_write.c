/* bench_write: the capture path's cost — instructions per steno_session_write call and per
 * published chunk, against a plain memcpy of the same bytes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "steno/steno.h"

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

/*
 * Run under `valgrind --tool=callgrind --collect-atstart=no` (see run-callgrind):
 * collection is toggled on around each measured call only, and each case
 * ends with a callgrind dump named after it, so every dump holds exactly the
 * instructions of that case's measured calls. Instruction counts are stable
 * on a noisy machine where seconds are not. Without valgrind the same cases
 * report nanoseconds per call (indicative only).
 *
 * Cases (each covers whole chunks, so each starts on a chunk boundary):
 *   empty      an empty out-of-line call between the toggles: the
 *              measurement's own overhead, subtracted from the others
 *   writeN     steno_session_write of N frames, N = 160, 320, 1600
 *   memcpyN    memcpy of the same 2N bytes into a ring-sized buffer
 *   nopub160   only the 160-frame writes that do not complete a chunk
 *   pub160     only the 160-frame writes that complete one (publish + wake)
 * Writes pause 1 ms (unmeasured) after each chunk they complete, as real-time
 * capture would, so the network thread drains and every publish wakes it.
 */

#define RATE 16000u
#define CHUNK 1600u

static const uint32_t sizes[] = {160, 320, 1600};

__attribute__((noinline)) static void empty_call(void *dst, const void *src, size_t n)
{
    __asm__ volatile("" : : "r"(dst), "r"(src), "r"(n) : "memory");
}

__attribute__((noinline)) static void copy_call(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    __asm__ volatile("" : : "r"(dst) : "memory");
}

typedef struct ctx {
    steno_session *s;
    int16_t *audio; /* one chunk more than the cases read at once */
    size_t audio_frames;
    uint8_t *sink; /* memcpy destination, as large as the ring's audio */
    size_t sink_bytes;
    uint32_t chunks;
} ctx;

enum mode { ALL, NOPUB, PUB };

/* Runs one case and returns ns per measured call (wall clock; meaningless under valgrind). */
static double run_case(ctx *c, const char *name, uint32_t n, int kind, enum mode mode)
{
    uint64_t writes = (uint64_t)c->chunks * CHUNK / n;
    uint64_t measured = 0;
    size_t src = 0, dst = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < writes; i++) {
        int completes = ((i + 1) * n) % CHUNK == 0;
        int on = mode == ALL || (mode == PUB && completes) || (mode == NOPUB && !completes);
        const int16_t *pcm = c->audio + src;
        if (on)
            CALLGRIND_TOGGLE_COLLECT;
        if (kind == 0) {
            steno_status rc = steno_session_write(c->s, pcm, n);
            if (on)
                CALLGRIND_TOGGLE_COLLECT;
            if (rc != STENO_OK)
                bench_die("steno_session_write: %s", steno_status_name(rc));
            /* As in real-time capture, let the network thread take the chunk before the next
             * one: every publish then pays for its wake (lws_cancel_service) as it would
             * live, instead of finding a wake still pending. Under valgrind, whose threads
             * take turns, the sleep is what hands the network thread its turn. */
            if (completes)
                bench_sleep_until_ns(bench_now_ns() + 1000000u);
        } else {
            if (kind == 1)
                copy_call(c->sink + dst, pcm, (size_t)n * 2);
            else
                empty_call(c->sink + dst, pcm, (size_t)n * 2);
            if (on)
                CALLGRIND_TOGGLE_COLLECT;
        }
        measured += (uint64_t)on;
        src = (src + n) % (c->audio_frames - CHUNK);
        dst = (dst + (size_t)n * 2) % (c->sink_bytes - (size_t)CHUNK * 2);
    }
    uint64_t ns = bench_now_ns() - t0;
    CALLGRIND_DUMP_STATS_AT(name);
    printf("phase %s calls=%" PRIu64 " frames=%u bytes=%u\n", name, measured, n, n * 2);
    return measured ? (double)ns / (double)measured : 0;
}

static void usage(void)
{
    printf("Usage: bench-write [--server PATH] [--chunks K]\n"
           "Instructions per steno_session_write call (N = 160, 320, 1600 frames of 16 kHz\n"
           "mono) and per published 100 ms chunk, against memcpy of the same bytes. Run it\n"
           "through tools/bench/run-callgrind for instruction counts; alone it reports\n"
           "nanoseconds per call. K chunks of audio per case [50].\n");
}

int main(int argc, char **argv)
{
    const char *server = NULL;
    uint32_t chunks = 50;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            server = argv[++i];
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            chunks = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (chunks < 1 || chunks > 10000)
        bench_die("--chunks must be 1..10000");
    setvbuf(stdout, NULL, _IOLBF, 0);

    bench_server srv;
    bench_server_start(&srv, server, NULL);

    ctx c = {.chunks = chunks};
    /* every case's chunks stay in the ring even if nothing were sent: no eviction, no drop */
    uint32_t ring = 9 * chunks + 20;
    c.audio_frames = (size_t)(chunks + 1) * CHUNK;
    c.audio = malloc(c.audio_frames * sizeof *c.audio);
    c.sink_bytes = (size_t)ring * CHUNK * 2;
    c.sink = calloc(1, c.sink_bytes);
    if (!c.audio || !c.sink)
        bench_die("out of memory");
    for (size_t i = 0; i < c.audio_frames; i++)
        c.audio[i] = (int16_t)(((i * 2654435761u) >> 9) & 0x3fff);

    char err[512];
    steno_client *cl;
    if (steno_client_open(NULL, &cl, err, sizeof err) != STENO_OK)
        bench_die("client: %s", err);
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.ring_chunks = ring;
    if (steno_session_open(cl, &sc, &c.s, err, sizeof err) != STENO_OK)
        bench_die("session: %s", err);
    for (uint64_t deadline = bench_now_ms() + 10000;;) {
        steno_event ev;
        if (bench_now_ms() > deadline)
            bench_die("not connected within 10 s");
        if (steno_session_next_event(c.s, &ev, 100) == STENO_OK && ev.type == STENO_EVENT_CONNECTED)
            break;
    }

    /* warm-up: lazy symbol binding, first touches, the network thread's first sends */
    for (uint32_t i = 0; i < 10 * CHUNK / 160; i++)
        steno_session_write(c.s, c.audio + (size_t)i * 160 % (c.audio_frames - CHUNK), 160);

    double ns_empty = run_case(&c, "empty", 160, 2, ALL);
    double ns_write[3], ns_copy[3];
    char name[32];
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "write%u", sizes[k]);
        ns_write[k] = run_case(&c, name, sizes[k], 0, ALL);
        snprintf(name, sizeof name, "memcpy%u", sizes[k]);
        ns_copy[k] = run_case(&c, name, sizes[k], 1, ALL);
    }
    run_case(&c, "nopub160", 160, 0, NOPUB);
    run_case(&c, "pub160", 160, 0, PUB);

    steno_session_stats st;
    steno_session_stats_get(c.s, &st);
    printf("stats samples_written=%" PRIu64 " samples_dropped=%" PRIu64 " state=%s\n",
           st.samples_written, st.samples_dropped, steno_session_state_name(st.state));
    if (st.samples_dropped || st.samples_evicted)
        bench_die("the ring dropped audio during the benchmark: the figures are not the "
                  "normal path");
    steno_session_destroy(c.s);
    steno_client_destroy(cl);
    bench_server_stop(&srv);

    if (!RUNNING_ON_VALGRIND) {
        printf("\nbench-write (wall clock, noisy; use tools/bench/run-callgrind for "
               "instruction counts)\n");
        printf("%-28s %10s %12s %8s\n", "case", "ns/call", "memcpy ns", "ratio");
        for (int k = 0; k < 3; k++) {
            double w = ns_write[k] - ns_empty, m = ns_copy[k] - ns_empty;
            char label[64];
            snprintf(label, sizeof label, "write %u frames (%u B)", sizes[k], sizes[k] * 2);
            printf("%-28s %10.1f %12.1f %8.1f\n", label, w, m, m > 0 ? w / m : 0.0);
        }
        bench_print_command(argc, argv);
    }
    free(c.audio);
    free(c.sink);
    return 0;
}
