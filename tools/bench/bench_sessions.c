/* bench_sessions: what many sessions on one client cost — client CPU per session-second of
 * audio and memory per session. */
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_floor.h"
#include "bench_sink.h"
#include "bench_util.h"
#include "steno/steno.h"

/*
 * For each session count N: one client opens N sessions to steno-server
 * (null engine), waits until all are connected, then the main thread
 * writes 20 ms of audio to every session every 20 ms (real time) for the
 * given seconds. Measured over that streaming window: CPU time of the
 * client process (getrusage) per session-second of audio, split into the
 * writing thread and the rest (steno's network thread); memory as the RSS
 * and heap growth from before the first session to the end of streaming,
 * divided by N, next to the configured audio ring bytes per session.
 *
 * Each N runs in a fresh child process so one case's freed memory cannot
 * hide the next case's growth. Right after it, in another child and against the same server,
 * the floor client (bench_floor.c: bare epoll, no SDK) streams the same audio as the same
 * 100 ms frames; steno's cost is reported as a ratio to it, both measured in this run.
 */

#define RATE 16000u
#define TICK_FRAMES 320u /* 20 ms */
#define MAX_CASES 16

typedef struct result {
    uint32_t sessions;
    double seconds;   /* audio per session */
    double cpu_s;     /* whole client process, streaming window */
    double server_s;  /* the server process over the same window (-1: unknown) */
    double writer_s;  /* the writing thread's share */
    double rss_kib;   /* growth per session */
    double heap_kib;  /* growth per session */
    double ring_kib;  /* configured ring bytes per session */
    uint64_t written; /* frames per session, from the stats */
    uint32_t reconnects;
    /* Keeping up, seen from the client: twice a second, 80 ms after every session completed a
     * chunk, how many still had a complete chunk unsent and the most audio any had unsent. */
    uint64_t lag_samples, lag_behind;
    uint64_t lag_max_frames;
    uint32_t writer_late;    /* ticks the writing thread began more than a tick late */
    uint32_t ended;          /* sessions that failed while streaming (not written to after) */
    uint64_t full_writes;    /* writes refused with STENO_ERR_FULL: the ring was full */
    char first_failure[200]; /* the first one's FAILED message */
    int ok;
    bench_floor_result floor;
    int floor_ok;
} result;

static atomic_uint connected, failed;
static char first_failure[200];
static atomic_int have_failure;

static void on_event(void *user, const steno_event *ev)
{
    (void)user;
    if (ev->type == STENO_EVENT_CONNECTED) {
        atomic_fetch_add(&connected, 1);
    } else if (ev->type == STENO_EVENT_FAILED) {
        atomic_fetch_add(&failed, 1);
        if (!atomic_exchange(&have_failure, 1))
            snprintf(first_failure, sizeof first_failure, "%s (%s)", ev->u.failed.message,
                     steno_status_name(ev->u.failed.status));
    }
}

static uint64_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

/* The sessions' chunk_ms and the floor's frame [100, the session default]: --chunk-ms. Set
 * before the cases fork. */
static uint32_t chunk_ms = 100;
#define CHUNK_FRAMES (RATE / 1000u * chunk_ms)
#define TICKS_PER_CHUNK (chunk_ms / 20u)

static void sample_lag(steno_session **ss, const uint8_t *gone, uint32_t n, result *r)
{
    for (uint32_t i = 0; i < n; i++) {
        steno_session_stats st;
        if (gone[i] || steno_session_stats_get(ss[i], &st) != STENO_OK)
            continue;
        /* the chunk still being filled cannot go out yet */
        uint64_t partial = st.samples_written % CHUNK_FRAMES;
        uint64_t unsent = st.live_lag_samples > partial ? st.live_lag_samples - partial : 0;
        r->lag_samples++;
        if (unsent) {
            r->lag_behind++;
            if (unsent > r->lag_max_frames)
                r->lag_max_frames = unsent;
        }
    }
}

static void run_case(const bench_server *srv, uint32_t n, double seconds, uint32_t ring_chunks,
                     const char *ca_file, result *r)
{
    memset(r, 0, sizeof *r);
    r->sessions = n;
    char err[512];
    steno_client *c;
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.max_concurrent_connects = 64;
    cc.ca_file = ca_file; /* wss://: the bench's own throwaway CA */
    if (steno_client_open(&cc, &c, err, sizeof err) != STENO_OK)
        bench_die("client: %s", err);
    steno_session **ss = calloc(n, sizeof *ss);
    int16_t *audio = malloc(TICK_FRAMES * sizeof *audio);
    if (!ss || !audio)
        bench_die("out of memory");
    for (uint32_t i = 0; i < TICK_FRAMES; i++)
        audio[i] = (int16_t)((i * 37u) & 0xff);

    uint64_t rss0 = bench_rss_kib(), heap0 = heap_bytes();
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv->url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.ring_chunks = ring_chunks;
    sc.chunk_ms = chunk_ms;
    sc.on_event = on_event;
    for (uint32_t i = 0; i < n; i++)
        if (steno_session_open(c, &sc, &ss[i], err, sizeof err) != STENO_OK)
            bench_die("session %u: %s", i, err);
    uint64_t deadline = bench_now_ms() + 60000;
    while (atomic_load(&connected) < n) {
        if (atomic_load(&failed) || bench_now_ms() > deadline)
            bench_die("%u of %u sessions connected (%u failed%s%s)", atomic_load(&connected), n,
                      atomic_load(&failed), atomic_load(&have_failure) ? ": " : "",
                      atomic_load(&have_failure) ? first_failure : "");
        bench_sleep_until_ns(bench_now_ns() + 10000000u);
    }

    uint64_t ticks = (uint64_t)(seconds * RATE / TICK_FRAMES + 0.5);
    double cpu0 = bench_cpu_process_s(), w0 = bench_cpu_thread_s();
    double srv0 = bench_cpu_pid_s(srv->pid);
    uint64_t t0 = bench_now_ns();
    /* A session that fails while streaming is counted and left alone (a figure, not a
     * verdict: the report says how many and why). */
    uint8_t *gone = calloc(n, 1);
    if (!gone)
        bench_die("out of memory");
    for (uint64_t t = 0; t < ticks; t++) {
        if (bench_now_ns() > t0 + (t + 1) * (uint64_t)TICK_FRAMES * 1000000000u / RATE)
            r->writer_late++;
        /* 4 ticks (80 ms) after the chunks completed at tick t - 4, about twice a second */
        uint32_t per = TICKS_PER_CHUNK >= 25 ? 1 : 25 / TICKS_PER_CHUNK;
        if (t >= 3 && (t - 3) % TICKS_PER_CHUNK == 0 &&
            ((t - 3) / TICKS_PER_CHUNK) % per == per - 1)
            sample_lag(ss, gone, n, r);
        for (uint32_t i = 0; i < n; i++) {
            if (gone[i])
                continue;
            steno_status rc = steno_session_write(ss[i], audio, TICK_FRAMES);
            if (rc == STENO_ERR_STATE) {
                gone[i] = 1;
                r->ended++;
            } else if (rc == STENO_ERR_FULL) {
                r->full_writes++; /* the network thread fell a whole ring behind */
            } else if (rc != STENO_OK) {
                bench_die("write to session %u: %s", i, steno_status_name(rc));
            }
        }
        bench_sleep_until_ns(t0 + (t + 1) * (uint64_t)TICK_FRAMES * 1000000000u / RATE);
    }
    r->cpu_s = bench_cpu_process_s() - cpu0;
    r->writer_s = bench_cpu_thread_s() - w0;
    double srv1 = bench_cpu_pid_s(srv->pid);
    r->server_s = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
    r->seconds = (double)(ticks * TICK_FRAMES) / RATE;
    r->rss_kib = (double)(bench_rss_kib() - rss0) / n;
    r->heap_kib = (double)(heap_bytes() - heap0) / 1024.0 / n;
    r->ring_kib = (double)ring_chunks * CHUNK_FRAMES * 2u / 1024.0;
    free(gone);
    if (atomic_load(&have_failure))
        snprintf(r->first_failure, sizeof r->first_failure, "%s", first_failure);

    steno_session_stats st;
    steno_session_stats_get(ss[n - 1], &st);
    r->written = st.samples_written;
    for (uint32_t i = 0; i < n; i++) {
        steno_session_stats_get(ss[i], &st);
        r->reconnects += st.reconnects;
        steno_session_destroy(ss[i]);
    }
    steno_client_destroy(c);
    free(ss);
    free(audio);
    r->ok = 1;
}

/* The cases run in child processes (bench_in_child). */
struct sess_case {
    const bench_server *srv;
    uint32_t n;
    double seconds;
    uint32_t ring_chunks;
    const char *ca_file;
};
static void sess_child(void *arg, void *out)
{
    const struct sess_case *c = arg;
    run_case(c->srv, c->n, c->seconds, c->ring_chunks, c->ca_file, out);
}
struct floor_case {
    int port;
    uint32_t n;
    double seconds;
    const char *ca_file;
};
static void floor_child(void *arg, void *out)
{
    const struct floor_case *c = arg;
    bench_floor_run(c->port, c->n, c->seconds, TICKS_PER_CHUNK, c->ca_file, out);
}

static void usage(void)
{
    printf(
        "Usage: bench-sessions [--server PATH] [--sessions 1,10,100,1000] [--seconds S]\n"
        "                      [--ring-chunks R] [--chunk-ms C] [--no-floor] [--tls] [--sink]\n"
        "One client, N sessions streaming real-time audio to steno-server --engine null\n"
        "for S seconds [3]: client CPU per session-second of audio, memory per session.\n"
        "R: ring_chunks per session [100: 10 s of 16 kHz mono, as in the published figures; the "
        "session default is 200].\n"
        "C: the sessions' chunk_ms and the floor's frame, a multiple of 20 up to 1000 [100, the\n"
        "session default]; the ring holds R chunks of it.\n"
        "Each N is followed by the floor client (bare epoll, same frames, same server):\n"
        "steno/floor is the ratio of their CPU per session-second. --no-floor skips it.\n"
        "--tls: wss:// with a throwaway certificate, steno on the TLS library it was built\n"
        "with (-Dtls=mbedtls|openssl), the floor on mbedTLS.\n"
        "--sink: stream to a bare epoll WebSocket server that drops the frames unread\n"
        "instead of steno-server (the cheapest server, for when the machine is too small\n"
        "for client and steno-server together); not with --tls.\n");
}

int main(int argc, char **argv)
{
    const char *server = NULL;
    uint32_t ns[MAX_CASES] = {1, 10, 100, 1000};
    int ncases = 4;
    double seconds = 3;
    uint32_t ring_chunks = 100;
    int with_floor = 1, with_tls = 0, with_sink = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            server = argv[++i];
        else if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
            ncases = bench_parse_list(argv[++i], ns, MAX_CASES);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--no-floor"))
            with_floor = 0;
        else if (!strcmp(argv[i], "--tls"))
            with_tls = 1;
        else if (!strcmp(argv[i], "--sink"))
            with_sink = 1;
        else if (!strcmp(argv[i], "--chunk-ms") && i + 1 < argc)
            chunk_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--ring-chunks") && i + 1 < argc)
            ring_chunks = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (ncases < 1 || !(seconds >= 0.1 && seconds <= 600) || ring_chunks < 2 || chunk_ms < 20 ||
        chunk_ms % 20 || TICKS_PER_CHUNK > BENCH_FLOOR_MAX_TICKS_PER_CHUNK ||
        (with_sink && with_tls))
        bench_die("bad arguments (try --help)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_raise_nofile();

    bench_server srv;
    /* no digests: at 10,000 streams the server's checksums would be the bottleneck */
    char cert[128] = "", key[128] = "";
    const char *extra[] = {"--frame-log", "0",  "--history", "100", "--no-digests",
                           NULL,          NULL, NULL,        NULL,  NULL};
    if (with_tls) {
        bench_make_cert(cert, sizeof cert, key, sizeof key);
        extra[5] = "--tls-cert";
        extra[6] = cert;
        extra[7] = "--tls-key";
        extra[8] = key;
    }
    if (with_sink)
        bench_sink_start(&srv);
    else
        bench_server_start(&srv, server, extra);
    if (with_tls)
        bench_server_use_tls(&srv);
    const char *ca_file = with_tls ? cert : NULL;

    result res[MAX_CASES];
    for (int k = 0; k < ncases; k++) {
        struct sess_case sc = {&srv, ns[k], seconds, ring_chunks, ca_file};
        if (bench_in_child(sess_child, &sc, &res[k], sizeof res[k]) != 0 || !res[k].ok)
            bench_die("the case with %u sessions failed", ns[k]);
        if (!with_sink)
            bench_http(&srv, "DELETE", "/connections", NULL, NULL);
        if (with_floor) {
            struct floor_case fc = {srv.port, ns[k], seconds, ca_file};
            if (bench_in_child(floor_child, &fc, &res[k].floor, sizeof res[k].floor) != 0)
                bench_die("the floor client with %u connections failed", ns[k]);
            res[k].floor_ok = 1;
            if (!with_sink)
                bench_http(&srv, "DELETE", "/connections", NULL, NULL);
        }
    }
    bench_server_stop(&srv);

    printf("\nbench-sessions: one client, N sessions of 16 kHz mono streamed in real time "
           "(20 ms writes, %u ms chunks) to %s%s\n",
           chunk_ms,
           with_sink ? "the bare sink server (drops frames unread)" : "steno-server --engine null",
           with_tls ? ", over wss:// (steno: " STENO_BENCH_TLS "; floor: mbedTLS)" : "");
    printf("%8s %8s %10s %14s %12s %10s %12s %12s %12s %10s %14s\n", "sessions", "audio s",
           "client CPU", "CPU ms per", "of which", "vs 1st", "RSS KiB", "heap KiB", "ring KiB",
           "server CPU", "server ms per");
    printf("%8s %8s %10s %14s %12s %10s %12s %12s %12s %10s %14s\n", "", "/session", "s",
           "session-second", "network ms", "row", "/session", "/session", "/session", "s",
           "session-second");
    double base = 0;
    for (int k = 0; k < ncases; k++) {
        const result *r = &res[k];
        double sess_s = r->seconds * r->sessions;
        double per = r->cpu_s * 1000.0 / sess_s;
        double net = (r->cpu_s - r->writer_s) * 1000.0 / sess_s;
        if (k == 0)
            base = per;
        printf("%8u %8.1f %10.3f %14.4f %12.4f %10.2f %12.1f %12.1f %12.1f %10.2f %14.4f\n",
               r->sessions, r->seconds, r->cpu_s, per, net, base > 0 ? per / base : 0.0, r->rss_kib,
               r->heap_kib, r->ring_kib, r->server_s, r->server_s * 1000.0 / sess_s);
        if (r->reconnects)
            printf("  (%u reconnects happened in this case)\n", r->reconnects);
        if (r->full_writes)
            printf("  (%llu writes refused: the ring was full, the network thread a whole ring "
                   "behind)\n",
                   (unsigned long long)r->full_writes);
        if (r->ended)
            printf("  (%u sessions failed while streaming; the first: %s)\n", r->ended,
                   r->first_failure);
    }
    if (with_floor) {
        printf(
            "\nagainst the floor (bare epoll client, same %u ms frames, same server, this run)\n",
            chunk_ms);
        printf("%8s %14s %14s %12s %12s\n", "sessions", "steno ms per", "floor ms per",
               "steno/floor", "floor late");
        printf("%8s %14s %14s %12s %12s\n", "", "session-second", "session-second", "", "ticks");
        for (int k = 0; k < ncases; k++) {
            const result *r = &res[k];
            double st = r->cpu_s * 1000.0 / (r->seconds * r->sessions);
            double fl = r->floor.cpu_s * 1000.0 / (r->floor.seconds * r->sessions);
            printf("%8u %14.4f %14.4f %12.2f %12u\n", r->sessions, st, fl, fl > 0 ? st / fl : 0.0,
                   r->floor.late_ticks);
        }
    }
    printf("\nkeeping up (steno, seen from the client: twice a second, 80 ms after every session "
           "completed a chunk)\n");
    printf("%8s %12s %14s %14s %12s\n", "sessions", "samples", "chunk unsent", "most unsent",
           "writer late");
    printf("%8s %12s %14s %14s %12s\n", "", "", "% of samples", "ms", "ticks");
    for (int k = 0; k < ncases; k++) {
        const result *r = &res[k];
        printf("%8u %12llu %14.2f %14.1f %12u\n", r->sessions, (unsigned long long)r->lag_samples,
               r->lag_samples ? 100.0 * (double)r->lag_behind / (double)r->lag_samples : 0.0,
               (double)r->lag_max_frames * 1000.0 / RATE, r->writer_late);
    }
    printf("CPU: user+system of the client process over the streaming window (getrusage);\n"
           "'of which network' excludes the writing thread. Server CPU: user+system of the "
           "server process (steno-server, or the sink with --sink) over the same window "
           "(/proc/PID/stat). Memory: growth from "
           "before the first session to the end of streaming, per session.\n");
    bench_print_command(argc, argv);
    return 0;
}
