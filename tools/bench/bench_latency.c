/* bench_latency: capture to wire — from the steno_session_write call that completes a chunk to
 * that chunk's frame arriving at the server, at 1 to many sessions on one client. */
#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "steno/steno.h"

/*
 * For each session count N (a fresh child process each): one client opens N
 * sessions to steno-server (null engine, a frame log per connection), waits
 * until all are connected, then writes 20 ms of audio to every session every
 * 20 ms for the given seconds. Every fifth write to a session completes a
 * 100 ms chunk; its wall-clock time is noted. The server logs when each
 * binary frame began to arrive (its record's start plus the frame's offset
 * in seconds, CLOCK_REALTIME on the same machine). The difference is the
 * capture-to-wire latency: the wake, the network thread's turn, lws's write
 * and the loopback hop to the server's read, so an upper bound on "until the
 * frame left the socket". Sessions that reconnected are left out (none
 * should). Printed: p50, p99 and max over every chunk of every session.
 */

#define RATE 16000u
#define TICK_FRAMES 320u   /* 20 ms */
#define CHUNK_FRAMES 1600u /* 100 ms: steno's default chunk */
#define CHUNK_BYTES (CHUNK_FRAMES * 2u)
#define MAX_CASES 8

static atomic_uint connected, failed;

typedef struct sess {
    steno_session *s;
    bool gone; /* failed: counted, not written to again */
    char rid[128];
    double *done; /* wall-clock seconds at which chunk k was completed by a write */
} sess;

static void on_event(void *user, const steno_event *ev)
{
    sess *x = user;
    if (ev->type == STENO_EVENT_CONNECTED) {
        snprintf(x->rid, sizeof x->rid, "%s",
                 ev->u.connected.request_id ? ev->u.connected.request_id : "");
        atomic_fetch_add(&connected, 1);
    } else if (ev->type == STENO_EVENT_FAILED) {
        atomic_fetch_add(&failed, 1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    uint32_t sessions;
    size_t samples;
    double p50_ms, p99_ms, max_ms;
    uint32_t skipped; /* sessions that reconnected or whose record was missing */
    uint32_t failed;  /* sessions that failed (not written to after) */
} result;

/* The server's records: per request id, when each frame arrived. */
static void measure(const bench_server *srv, sess *ss, uint32_t n, uint32_t chunks, result *r)
{
    char *body = NULL;
    if (bench_http(srv, "GET", "/connections", NULL, &body) != 200 || !body)
        bench_die("GET /connections failed");
    cJSON *j = cJSON_Parse(body);
    free(body);
    const cJSON *conns = cJSON_GetObjectItemCaseSensitive(j, "connections");
    if (!cJSON_IsArray(conns))
        bench_die("no connections in the server's records");
    double *lat = calloc((size_t)n * chunks, sizeof *lat);
    if (!lat)
        bench_die("out of memory");
    size_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        const cJSON *rec = NULL, *c;
        cJSON_ArrayForEach(c, conns)
        {
            const cJSON *rid = cJSON_GetObjectItemCaseSensitive(c, "request_id");
            if (cJSON_IsString(rid) && !strcmp(rid->valuestring, ss[i].rid))
                rec = c;
        }
        steno_session_stats st;
        steno_session_stats_get(ss[i].s, &st);
        if (!rec || st.reconnects) {
            r->skipped++;
            continue;
        }
        double start = cJSON_GetObjectItemCaseSensitive(rec, "start")->valuedouble;
        char path[64], *fb = NULL;
        snprintf(path, sizeof path, "/connections/%d/frames",
                 (int)cJSON_GetObjectItemCaseSensitive(rec, "id")->valuedouble);
        if (bench_http(srv, "GET", path, NULL, &fb) != 200 || !fb)
            bench_die("GET %s failed", path);
        cJSON *fj = cJSON_Parse(fb);
        free(fb);
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(fj, "frames"))
        {
            double off = cJSON_GetObjectItemCaseSensitive(f, "offset")->valuedouble;
            double t = cJSON_GetObjectItemCaseSensitive(f, "t")->valuedouble;
            uint64_t k = (uint64_t)off / CHUNK_BYTES;
            if ((uint64_t)off % CHUNK_BYTES || k >= chunks || ss[i].done[k] <= 0)
                continue;
            lat[m++] = (start + t - ss[i].done[k]) * 1000.0;
        }
        cJSON_Delete(fj);
    }
    cJSON_Delete(j);
    qsort(lat, m, sizeof *lat, cmp_double);
    r->samples = m;
    if (m) {
        r->p50_ms = lat[m / 2];
        r->p99_ms = lat[(size_t)((double)(m - 1) * 0.99)];
        r->max_ms = lat[m - 1];
    }
    free(lat);
}

/* Aligned: one tick writes every session, so every chunk completes in the same instant (a
 * burst of N frames). Staggered: session i starts i/N of a chunk later, on a 1 ms grid, so
 * chunk boundaries are spread over the chunk's 100 ms as independent captures' would be. */
static bool stagger;

static uint32_t n_failed;

static void write_piece(sess *x, uint32_t i, uint64_t t, uint32_t chunks, const int16_t *audio)
{
    if (x->gone)
        return;
    steno_status rc = steno_session_write(x->s, audio, TICK_FRAMES);
    if (rc == STENO_ERR_STATE) { /* the session failed: a figure, not a verdict */
        x->gone = true;
        n_failed++;
        return;
    }
    if (rc != STENO_OK)
        bench_die("write to session %u: %s", i, steno_status_name(rc));
    uint64_t k = (t + 1) * TICK_FRAMES / CHUNK_FRAMES - 1;
    if (((t + 1) * TICK_FRAMES) % CHUNK_FRAMES == 0 && k < chunks)
        x->done[k] = bench_wall_s();
}

static void run_case(const bench_server *srv, uint32_t n, double seconds, result *r)
{
    memset(r, 0, sizeof *r);
    r->sessions = n;
    char err[512];
    steno_client *c;
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.max_concurrent_connects = 64;
    if (steno_client_open(&cc, &c, err, sizeof err) != STENO_OK)
        bench_die("client: %s", err);
    uint64_t ticks = (uint64_t)(seconds * RATE / TICK_FRAMES + 0.5);
    uint32_t chunks = (uint32_t)(ticks * TICK_FRAMES / CHUNK_FRAMES);
    sess *ss = calloc(n, sizeof *ss);
    int16_t *audio = malloc(TICK_FRAMES * sizeof *audio);
    if (!ss || !audio)
        bench_die("out of memory");
    for (uint32_t i = 0; i < TICK_FRAMES; i++)
        audio[i] = (int16_t)((i * 37u) & 0xff);
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv->url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.chunk_ms = CHUNK_FRAMES * 1000u / RATE;
    sc.on_event = on_event;
    for (uint32_t i = 0; i < n; i++) {
        ss[i].done = calloc(chunks + 1, sizeof *ss[i].done);
        if (!ss[i].done)
            bench_die("out of memory");
        sc.user = &ss[i];
        if (steno_session_open(c, &sc, &ss[i].s, err, sizeof err) != STENO_OK)
            bench_die("session %u: %s", i, err);
    }
    uint64_t deadline = bench_now_ms() + 120000;
    while (atomic_load(&connected) < n) {
        if (atomic_load(&failed) || bench_now_ms() > deadline)
            bench_die("%u of %u sessions connected (%u failed)", atomic_load(&connected), n,
                      atomic_load(&failed));
        bench_sleep_until_ns(bench_now_ns() + 10000000u);
    }
    uint64_t t0 = bench_now_ns();
    const uint32_t tick_ms = TICK_FRAMES * 1000u / RATE, chunk_ms = CHUNK_FRAMES * 1000u / RATE;
    if (!stagger) {
        for (uint64_t t = 0; t < ticks; t++) {
            for (uint32_t i = 0; i < n; i++)
                write_piece(&ss[i], i, t, chunks, audio);
            bench_sleep_until_ns(t0 + (t + 1) * (uint64_t)tick_ms * 1000000u);
        }
    } else {
        /* session i writes at start_i + tick_ms * t, start_i = i * chunk_ms / n (whole ms) */
        uint64_t end_ms = ticks * tick_ms + chunk_ms;
        for (uint64_t m = 0; m < end_ms; m++) {
            for (uint32_t i = 0; i < n; i++) {
                uint64_t start = (uint64_t)i * chunk_ms / n;
                if (m < start || (m - start) % tick_ms)
                    continue;
                uint64_t t = (m - start) / tick_ms;
                if (t < ticks)
                    write_piece(&ss[i], i, t, chunks, audio);
            }
            bench_sleep_until_ns(t0 + (m + 1) * 1000000u);
        }
    }
    for (uint32_t i = 0; i < n; i++)
        steno_session_close(ss[i].s, 10000);
    measure(srv, ss, n, chunks, r);
    r->failed = n_failed;
    for (uint32_t i = 0; i < n; i++) {
        steno_session_destroy(ss[i].s);
        free(ss[i].done);
    }
    steno_client_destroy(c);
    free(ss);
    free(audio);
}

/* A case runs in a child process (bench_in_child). */
struct lat_case {
    const bench_server *srv;
    uint32_t n;
    double seconds;
};
static void lat_child(void *arg, void *out)
{
    const struct lat_case *c = arg;
    run_case(c->srv, c->n, c->seconds, out);
}

static void usage(void)
{
    printf("Usage: bench-latency [--server PATH] [--sessions 1,100,1000] [--seconds S]\n"
           "                     [--stagger]\n"
           "One client, N sessions writing real-time audio in 20 ms pieces to steno-server\n"
           "--engine null for S seconds [5]: the time from the write that completes a 100 ms\n"
           "chunk to its frame's arrival at the server (p50, p99, max). One thread writes\n"
           "every session: by default all in the same tick, so every chunk completes at once\n"
           "(a burst of N frames); --stagger spreads the sessions' chunk boundaries evenly\n"
           "over the 100 ms, as independent captures would be.\n");
}

int main(int argc, char **argv)
{
    const char *server = NULL;
    uint32_t ns[MAX_CASES] = {1, 100, 1000};
    int ncases = 3;
    double seconds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            server = argv[++i];
        else if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
            ncases = bench_parse_list(argv[++i], ns, MAX_CASES);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--stagger"))
            stagger = true;
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (ncases < 1 || !(seconds >= 0.2 && seconds <= 600))
        bench_die("bad arguments (try --help)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_raise_nofile();
    char frames[32];
    snprintf(frames, sizeof frames, "%u", (unsigned)(seconds * 10) + 16);
    /* the frame log's arrival times only: no checksums (at 10,000 streams they would be the
     * server's bottleneck) */
    const char *extra[] = {"--frame-log", frames, "--history", "20000", "--no-digests", NULL};
    bench_server srv;
    bench_server_start(&srv, server, extra);
    result res[MAX_CASES];
    for (int k = 0; k < ncases; k++) {
        struct lat_case lc = {&srv, ns[k], seconds};
        if (bench_in_child(lat_child, &lc, &res[k], sizeof res[k]) != 0)
            bench_die("the case with %u sessions failed", ns[k]);
        bench_http(&srv, "DELETE", "/connections", NULL, NULL);
    }
    bench_server_stop(&srv);

    printf("\nbench-latency: capture to wire, from the write completing a 100 ms chunk to the "
           "frame's arrival at steno-server (loopback, null engine); chunk boundaries %s\n",
           stagger ? "staggered over 100 ms" : "aligned (every session's in the same tick)");
    printf("%8s %10s %10s %10s %10s %8s %8s\n", "sessions", "chunks", "p50 ms", "p99 ms", "max ms",
           "skipped", "failed");
    for (int k = 0; k < ncases; k++)
        printf("%8u %10zu %10.3f %10.3f %10.3f %8u %8u\n", res[k].sessions, res[k].samples,
               res[k].p50_ms, res[k].p99_ms, res[k].max_ms, res[k].skipped, res[k].failed);
    printf("skipped: sessions left out because they reconnected (or their record was missing); "
           "failed: sessions that failed while streaming.\n");
    bench_print_command(argc, argv);
    return 0;
}
