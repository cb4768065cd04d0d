/* bench_reconnect: how long a session is off the air after a connection fault on loopback —
 * from the fault to the first replayed audio byte at the server. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "steno/steno.h"

/*
 * One session streams real-time audio (20 ms writes from its own thread) to
 * steno-server --engine null (a final per second of audio). Once the
 * connection has been up long enough to count as healthy (so steno's first
 * retry is immediate, as in production), plus a varying fraction of a
 * second, the server's control API breaks it: "drop" ends the TCP
 * connection without a close frame (an RST), "close" sends close 1011.
 * Per fault:
 *   server gap  the old connection's end to the new connection's first audio
 *               message (both from the server's own records, one clock)
 *   SDK gap     RECONNECTING event to RECONNECTED event (handshake done)
 *   downtime    the RECONNECTED event's downtime_ms
 */

#define RATE 16000u
#define TICK 320u

typedef struct shared {
    pthread_mutex_t mu;
    uint64_t reconnecting_ns, reconnected_ns, connected_ns;
    uint32_t reconnects, downtime_ms, attempts, replayed;
    int connected, failed;
    char fail_msg[256];
} shared;

static shared sh = {.mu = PTHREAD_MUTEX_INITIALIZER};
static atomic_int stop_writer;

static void on_event(void *user, const steno_event *ev)
{
    (void)user;
    uint64_t now = bench_now_ns();
    pthread_mutex_lock(&sh.mu);
    switch (ev->type) {
    case STENO_EVENT_CONNECTED:
        sh.connected = 1;
        sh.connected_ns = now;
        break;
    case STENO_EVENT_RECONNECTING:
        if (sh.reconnecting_ns <= sh.reconnected_ns) /* the first one of this outage */
            sh.reconnecting_ns = now;
        break;
    case STENO_EVENT_RECONNECTED:
        sh.reconnected_ns = now;
        sh.connected_ns = now;
        sh.downtime_ms = ev->u.reconnected.downtime_ms;
        sh.attempts = ev->u.reconnected.attempts;
        sh.replayed = ev->u.reconnected.replayed_chunks;
        sh.reconnects++;
        break;
    case STENO_EVENT_FAILED:
        sh.failed = 1;
        snprintf(sh.fail_msg, sizeof sh.fail_msg, "%s", ev->u.failed.message);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&sh.mu);
}

static void *writer_main(void *arg)
{
    steno_session *s = arg;
    static int16_t audio[TICK];
    for (uint32_t i = 0; i < TICK; i++)
        audio[i] = (int16_t)((i * 77u) & 0x7ff);
    uint64_t t0 = bench_now_ns();
    for (uint64_t t = 0; !atomic_load(&stop_writer); t++) {
        steno_session_write(s, audio, TICK);
        bench_sleep_until_ns(t0 + (t + 1) * (uint64_t)TICK * 1000000000u / RATE);
    }
    return NULL;
}

static cJSON *get_json(const bench_server *srv, const char *path)
{
    char *body = NULL;
    int st = bench_http(srv, "GET", path, NULL, &body);
    cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
    if (!j)
        bench_die("GET %s answered %d: %s", path, st, body ? body : "");
    free(body);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The id of the one open connection. */
static int open_connection(const bench_server *srv)
{
    cJSON *j = get_json(srv, "/connections?active=1");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "connections"), *rec;
    int id = -1;
    cJSON_ArrayForEach(rec, arr)
    {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(rec, "state");
        if (cJSON_IsString(state) && !strcmp(state->valuestring, "open"))
            id = (int)num(rec, "id");
    }
    cJSON_Delete(j);
    return id;
}

typedef struct sample {
    double server_ms, sdk_ms, downtime_ms;
    uint32_t attempts, replayed;
} sample;

static void summary(const char *label, const sample *s, size_t n)
{
    if (!n)
        return;
    double *all = malloc(n * sizeof *all), *rep = malloc(n * sizeof *rep);
    double *sdk = malloc(n * sizeof *sdk), *down = malloc(n * sizeof *down);
    if (!all || !rep || !sdk || !down)
        bench_die("out of memory");
    size_t nrep = 0;
    uint32_t retried = 0;
    for (size_t i = 0; i < n; i++) {
        all[i] = s[i].server_ms;
        if (s[i].replayed)
            rep[nrep++] = s[i].server_ms;
        sdk[i] = s[i].sdk_ms;
        down[i] = s[i].downtime_ms;
        retried += s[i].attempts > 1;
    }
    char nr[16];
    snprintf(nr, sizeof nr, "%zu", nrep);
    printf("%-12s %4zu %8.1f %8.1f %6s %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %7u\n", label, n,
           bench_median(all, n), bench_max(all, n), nr, nrep ? bench_median(rep, nrep) : 0.0,
           nrep ? bench_max(rep, nrep) : 0.0, bench_median(sdk, n), bench_max(sdk, n),
           bench_median(down, n), bench_max(down, n), retried);
    free(all);
    free(rep);
    free(sdk);
    free(down);
}

static void usage(void)
{
    printf("Usage: bench-reconnect [--server PATH] [--faults N] [--kind drop|close|both]\n"
           "                       [--healthy-wait-ms MS]\n"
           "Reconnect gap on loopback over N faults [20] (both: alternating drop and close\n"
           "1011 [default]); each fault waits until the connection has been up MS [2500] so\n"
           "that it counts as healthy and steno's first retry is immediate, plus 0..999 ms\n"
           "(fixed pseudo-random sequence) to vary the phase.\n");
}

int main(int argc, char **argv)
{
    const char *server = NULL, *kind = "both";
    uint32_t faults = 20, healthy_wait_ms = 2500;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            server = argv[++i];
        else if (!strcmp(argv[i], "--faults") && i + 1 < argc)
            faults = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc)
            kind = argv[++i];
        else if (!strcmp(argv[i], "--healthy-wait-ms") && i + 1 < argc)
            healthy_wait_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (faults < 1 || faults > 10000 ||
        (strcmp(kind, "drop") && strcmp(kind, "close") && strcmp(kind, "both")))
        bench_die("bad arguments (try --help)");
    setvbuf(stdout, NULL, _IOLBF, 0);

    bench_server srv;
    bench_server_start(&srv, server, NULL);

    char err[512];
    steno_client *c;
    if (steno_client_open(NULL, &c, err, sizeof err) != STENO_OK)
        bench_die("client: %s", err);
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.on_event = on_event;
    steno_session *s;
    if (steno_session_open(c, &sc, &s, err, sizeof err) != STENO_OK)
        bench_die("session: %s", err);
    pthread_t writer;
    if (pthread_create(&writer, NULL, writer_main, s) != 0)
        bench_die("pthread_create");

    sample *smp = calloc(faults, sizeof *smp);
    const char **kinds = calloc(faults, sizeof *kinds);
    if (!smp || !kinds)
        bench_die("out of memory");
    uint64_t seed = 1;
    for (uint32_t f = 0; f < faults; f++) {
        const char *k = strcmp(kind, "both") ? kind : (f % 2 ? "close" : "drop");
        kinds[f] = k;
        /* wait until the current connection is healthy, plus a pseudo-random part of a second
         * (fixed seed) so faults land at every phase of the server's 1 s finals: most of them
         * then leave unacknowledged chunks to replay */
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t wait_ns = ((uint64_t)healthy_wait_ms + (seed >> 33) % 1000u) * 1000000u;
        uint32_t before;
        for (uint64_t deadline = bench_now_ms() + 30000;;) {
            pthread_mutex_lock(&sh.mu);
            int up = sh.connected && sh.reconnected_ns >= sh.reconnecting_ns;
            uint64_t since = sh.connected_ns;
            int failed = sh.failed;
            before = sh.reconnects;
            pthread_mutex_unlock(&sh.mu);
            if (failed)
                bench_die("the session failed: %s", sh.fail_msg);
            if (up && bench_now_ns() - since >= wait_ns)
                break;
            if (bench_now_ms() > deadline)
                bench_die("not connected");
            bench_sleep_until_ns(bench_now_ns() + 20000000u);
        }
        int id = open_connection(&srv);
        if (id < 0)
            bench_die("the server shows no open connection");
        char body[160];
        if (!strcmp(k, "drop"))
            snprintf(body, sizeof body, "{\"action\":\"drop\",\"connection\":%d}", id);
        else
            snprintf(body, sizeof body,
                     "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\","
                     "\"connection\":%d}",
                     id);
        int st = bench_http(&srv, "POST", "/faults", body, NULL);
        if (st != 200)
            bench_die("POST /faults %s answered %d", body, st);
        /* the SDK reconnects ... */
        for (uint64_t deadline = bench_now_ms() + 15000;;) {
            pthread_mutex_lock(&sh.mu);
            int done = sh.reconnects > before;
            if (done) {
                smp[f].sdk_ms = (double)(sh.reconnected_ns - sh.reconnecting_ns) / 1e6;
                smp[f].downtime_ms = sh.downtime_ms;
                smp[f].attempts = sh.attempts;
                smp[f].replayed = sh.replayed;
            }
            pthread_mutex_unlock(&sh.mu);
            if (done)
                break;
            if (bench_now_ms() > deadline)
                bench_die("no RECONNECTED within 15 s of fault %u", f + 1);
            bench_sleep_until_ns(bench_now_ns() + 5000000u);
        }
        /* ... and the server saw the old connection end and the new one's first audio */
        char path[96];
        snprintf(path, sizeof path, "/connections/%d?wait_closed_ms=5000", id);
        cJSON *old = get_json(&srv, path);
        double old_end = num(old, "end");
        cJSON_Delete(old);
        if (old_end < 0)
            bench_die("connection %d has no end time", id);
        double first = -1;
        for (uint64_t deadline = bench_now_ms() + 5000; first < 0;) {
            snprintf(path, sizeof path, "/connections?since=%d", id);
            cJSON *j = get_json(&srv, path);
            const cJSON *rec;
            cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(j, "connections"))
            {
                double fa = num(rec, "first_audio"), start = num(rec, "start");
                if (fa >= 0 && start >= 0 && (first < 0 || start + fa < first))
                    first = start + fa;
            }
            cJSON_Delete(j);
            if (first >= 0)
                break;
            if (bench_now_ms() > deadline)
                bench_die("no audio on a new connection within 5 s of fault %u", f + 1);
            bench_sleep_until_ns(bench_now_ns() + 10000000u);
        }
        smp[f].server_ms = (first - old_end) * 1000.0;
    }
    atomic_store(&stop_writer, 1);
    pthread_join(writer, NULL);
    steno_session_stats stats;
    steno_session_stats_get(s, &stats);
    steno_session_destroy(s);
    steno_client_destroy(c);
    bench_server_stop(&srv);

    printf("\nbench-reconnect: one session, 16 kHz mono in real time, loopback steno-server; "
           "%u faults on healthy connections\n",
           faults);
    printf("%-12s %4s %17s %24s %17s %17s %7s\n", "", "", "server gap, all",
           "server gap, replaying", "SDK gap", "downtime", "");
    printf("%-12s %4s %8s %8s %6s %8s %8s %8s %8s %8s %8s %7s\n", "fault", "n", "median", "max",
           "n", "median", "max", "median", "max", "median", "max", "retried");
    sample *sub = calloc(faults, sizeof *sub);
    if (!sub)
        bench_die("out of memory");
    static const char *const names[] = {"drop", "close"};
    static const char *const labels[] = {"drop (RST)", "close 1011"};
    for (int k = 0; k < 2; k++) {
        size_t n = 0;
        for (uint32_t f = 0; f < faults; f++)
            if (!strcmp(kinds[f], names[k]))
                sub[n++] = smp[f];
        summary(labels[k], sub, n);
    }
    if (!strcmp(kind, "both"))
        summary("all", smp, faults);
    printf("All times in ms. server gap: the old connection's end -> the first audio message "
           "on the new one (server records, one clock); 'replaying': only faults after which "
           "steno had unacknowledged chunks to replay (otherwise the first audio is the next live "
           "100 ms chunk, so the gap includes waiting for it). SDK gap: RECONNECTING -> "
           "RECONNECTED events; downtime: RECONNECTED's downtime_ms; retried: outages that needed "
           "more than one attempt. Samples dropped: %" PRIu64 ", evicted: %" PRIu64 "\n",
           stats.samples_dropped, stats.samples_evicted);
    bench_print_command(argc, argv);
    free(sub);
    free(smp);
    free(kinds);
    return 0;
}
