/* bench_outage: N sessions on one client through a long server outage, against a server that
 * admits at most R handshakes per second when it returns. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "steno/steno.h"

/*
 * steno-server runs with --max-handshake-rate R. For each N, in a fresh child process: one
 * client (default configuration) opens N sessions and streams real-time audio to all of them
 * (20 ms writes from one thread); once every session is connected, the server goes down (every
 * handshake answered 503) and drops every connection; OUTAGE seconds later it comes back.
 * Reported:
 *   attempts during outage   handshakes the client started while the server was down (its
 *                            steno_connect_attempts_total), and those the server answered 503
 *   time to all reconnected  from the server's return to the last session's RECONNECTED,
 *                            against the floor N/R (the server admits no more)
 *   429s after return        handshakes the rate limit turned away while sessions came back
 *   failed                   sessions that gave up (FAILED events)
 */

#define RATE 16000u
#define TICK 320u
#define MAX_CASES 8

typedef struct result {
    uint32_t sessions;
    double connect_s;               /* initial: open to all connected */
    uint64_t attempts_outage;       /* client handshakes started while the server was down */
    uint64_t rejected_outage;       /* server: 503s while down */
    uint64_t rejected_after;        /* server: 429s (rate) after it returned */
    uint64_t attempts_after;        /* client handshakes after the return */
    double all_back_s;              /* return to the last RECONNECTED */
    uint32_t back, failed, dropped; /* sessions reconnected; FAILED; AUDIO_DROPPED events */
    char first_failure[300];        /* the first FAILED's message */
    int ok;
} result;

static atomic_uint connected, failed, back, dropped_events;
static char first_failure[300]; /* written once, by the first FAILED, read after the case */
static atomic_int outage_on;    /* 1 while down, 2 after the return */
static atomic_uchar *lost;      /* per session: lost its connection in the outage */
static atomic_int stop_writer;
static steno_session **ss;
static uint32_t n_sessions;

static void on_event(void *user, const steno_event *ev)
{
    uint32_t i = (uint32_t)(uintptr_t)user;
    switch (ev->type) {
    case STENO_EVENT_CONNECTED:
        atomic_fetch_add(&connected, 1);
        break;
    case STENO_EVENT_RECONNECTING:
        if (atomic_load(&outage_on))
            atomic_store(&lost[i], 1);
        break;
    case STENO_EVENT_RECONNECTED:
        if (atomic_load(&outage_on) == 2 && atomic_exchange(&lost[i], 0))
            atomic_fetch_add(&back, 1);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        atomic_fetch_add(&dropped_events, 1);
        break;
    case STENO_EVENT_FAILED:
        if (!atomic_fetch_add(&failed, 1))
            snprintf(first_failure, sizeof first_failure, "%s (%s)", ev->u.failed.message,
                     steno_status_name(ev->u.failed.status));
        break;
    default:
        break;
    }
}

static void *writer(void *arg)
{
    (void)arg;
    int16_t audio[TICK];
    for (uint32_t i = 0; i < TICK; i++)
        audio[i] = (int16_t)((i * 37u) & 0xff);
    uint64_t t0 = bench_now_ns();
    for (uint64_t t = 1; !atomic_load(&stop_writer); t++) {
        for (uint32_t i = 0; i < n_sessions; i++)
            steno_session_write(ss[i], audio, TICK);
        bench_sleep_until_ns(t0 + t * (uint64_t)TICK * 1000000000u / RATE);
    }
    return NULL;
}

static uint64_t metric(steno_client *c, const char *name)
{
    size_t need = 0;
    steno_client_metrics_text(c, NULL, 0, &need);
    size_t cap = need + 4096;
    char *buf = malloc(cap);
    if (!buf || steno_client_metrics_text(c, buf, cap, NULL) != STENO_OK)
        bench_die("metrics");
    uint64_t v = 0;
    size_t nl = strlen(name);
    for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, nl) && p[nl] == ' ')
            v = strtoull(p + nl + 1, NULL, 10);
    free(buf);
    return v;
}

static uint64_t server_stat(const bench_server *srv, const char *key)
{
    char *body = NULL;
    if (bench_http(srv, "GET", "/stats", NULL, &body) != 200 || !body)
        bench_die("GET /stats");
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(body, pat);
    uint64_t v = p ? strtoull(p + strlen(pat), NULL, 10) : 0;
    free(body);
    return v;
}

/* the client's breaker_open_ms (0: the default); the last probe before the return can come up
 * to this long before it, so it bounds the wait after the return */
static uint32_t breaker_open_ms;
/* the client's max_concurrent_connects (0: the default): handshakes in flight at once */
static uint32_t max_connects;

static void run_case(const bench_server *srv, uint32_t n, double outage_s, double rate, result *r)
{
    memset(r, 0, sizeof *r);
    r->sessions = n;
    n_sessions = n;
    char err[512];
    steno_client *c;
    steno_client_config cc;
    steno_client_config_init(&cc);
    if (breaker_open_ms)
        cc.breaker_open_ms = breaker_open_ms;
    if (max_connects)
        cc.max_concurrent_connects = max_connects;
    if (steno_client_open(&cc, &c, err, sizeof err) != STENO_OK)
        bench_die("client: %s", err);
    ss = calloc(n, sizeof *ss);
    lost = calloc(n, sizeof *lost);
    if (!ss || !lost)
        bench_die("out of memory");
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv->url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.on_event = on_event;
    uint64_t t_open = bench_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        sc.user = (void *)(uintptr_t)i;
        if (steno_session_open(c, &sc, &ss[i], err, sizeof err) != STENO_OK)
            bench_die("session %u: %s", i, err);
    }
    pthread_t wt;
    if (pthread_create(&wt, NULL, writer, NULL) != 0)
        bench_die("writer thread");
    uint64_t deadline = bench_now_ms() + 60000 + (uint64_t)(2000.0 * n / rate);
    while (atomic_load(&connected) < n) {
        if (atomic_load(&failed) || bench_now_ms() > deadline)
            bench_die("%u of %u sessions connected (%u failed)", atomic_load(&connected), n,
                      atomic_load(&failed));
        bench_sleep_until_ns(bench_now_ns() + 10000000u);
    }
    r->connect_s = (double)(bench_now_ns() - t_open) / 1e9;
    bench_sleep_until_ns(bench_now_ns() + 2000000000ull); /* healthy connections */

    uint64_t a0 = metric(c, "steno_connect_attempts_total");
    uint64_t rej0 = server_stat(srv, "handshakes_rejected");
    atomic_store(&outage_on, 1);
    if (bench_http(srv, "POST", "/faults", "{\"down\":true}", NULL) != 200 ||
        bench_http(srv, "POST", "/faults", "{\"action\":\"drop\"}", NULL) != 200)
        bench_die("could not start the outage");
    bench_sleep_until_ns(bench_now_ns() + (uint64_t)(outage_s * 1e9));
    uint64_t a1 = metric(c, "steno_connect_attempts_total");
    uint64_t rej1 = server_stat(srv, "handshakes_rejected");
    atomic_store(&outage_on, 2);
    uint64_t t_up = bench_now_ns();
    if (bench_http(srv, "POST", "/faults", "{\"down\":false}", NULL) != 200)
        bench_die("could not end the outage");
    r->attempts_outage = a1 - a0;
    r->rejected_outage = rej1 - rej0;

    /* every session that lost its connection must come back; give it ample time */
    uint64_t limit = bench_now_ms() + 180000 + (uint64_t)(2000.0 * n / rate);
    uint64_t t_last = t_up;
    while (atomic_load(&back) + atomic_load(&failed) < n && bench_now_ms() < limit) {
        uint32_t b = atomic_load(&back);
        bench_sleep_until_ns(bench_now_ns() + 2000000u);
        if (atomic_load(&back) != b)
            t_last = bench_now_ns();
    }
    r->all_back_s = (double)(t_last - t_up) / 1e9;
    r->back = atomic_load(&back);
    r->failed = atomic_load(&failed);
    if (r->failed)
        snprintf(r->first_failure, sizeof r->first_failure, "%s", first_failure);
    r->dropped = atomic_load(&dropped_events);
    r->attempts_after = metric(c, "steno_connect_attempts_total") - a1;
    r->rejected_after = server_stat(srv, "handshakes_rejected") - rej1;

    atomic_store(&stop_writer, 1);
    pthread_join(wt, NULL);
    for (uint32_t i = 0; i < n; i++)
        steno_session_destroy(ss[i]);
    steno_client_destroy(c);
    free(ss);
    free(lost);
    r->ok = r->back == n && r->failed == 0;
}

/* A case runs in a child process (bench_in_child). */
struct out_case {
    const bench_server *srv;
    uint32_t n;
    double outage_s, rate;
};
static void out_child(void *arg, void *out)
{
    const struct out_case *c = arg;
    run_case(c->srv, c->n, c->outage_s, c->rate, out);
}

static void usage(void)
{
    printf("Usage: bench-outage [--server PATH] [--sessions 1000,10000] [--outage S]\n"
           "                    [--rate R] [--breaker-open-ms MS] [--max-connects C]\n"
           "One client, N real-time sessions, steno-server down for S seconds [60] and then\n"
           "admitting at most R handshakes per second [1000]: handshake attempts during the\n"
           "outage, time from the return to the last session reconnected against N/R.\n"
           "MS: the client's breaker_open_ms [the SDK default]: the probe interval while down.\n"
           "C: the client's max_concurrent_connects [the SDK default]: handshakes in flight.\n");
}

int main(int argc, char **argv)
{
    const char *server = NULL;
    uint32_t ns[MAX_CASES] = {1000, 10000};
    int ncases = 2;
    double outage_s = 60, rate = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            server = argv[++i];
        else if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
            ncases = bench_parse_list(argv[++i], ns, MAX_CASES);
        else if (!strcmp(argv[i], "--outage") && i + 1 < argc)
            outage_s = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--breaker-open-ms") && i + 1 < argc)
            breaker_open_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--max-connects") && i + 1 < argc)
            max_connects = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (ncases < 1 || !(outage_s >= 0.1 && outage_s <= 3600) || !(rate >= 1 && rate <= 1e6))
        bench_die("bad arguments (try --help)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_raise_nofile();

    char rate_arg[32];
    snprintf(rate_arg, sizeof rate_arg, "%g", rate);
    bench_server srv;
    const char *extra[] = {"--frame-log",          "0",      "--history", "100", "--no-digests",
                           "--max-handshake-rate", rate_arg, NULL};
    bench_server_start(&srv, server, extra);

    result res[MAX_CASES];
    for (int k = 0; k < ncases; k++) {
        struct out_case oc = {&srv, ns[k], outage_s, rate};
        if (bench_in_child(out_child, &oc, &res[k], sizeof res[k]) != 0)
            bench_die("the case with %u sessions failed", ns[k]);
        bench_http(&srv, "DELETE", "/faults", NULL, NULL);
        bench_http(&srv, "DELETE", "/connections", NULL, NULL);
    }
    bench_server_stop(&srv);

    steno_client_config dflt;
    steno_client_config_init(&dflt);
    printf("\nbench-outage: one client, N real-time sessions, server down %.0f s, then at most "
           "%g handshakes/s; breaker open %u ms%s; %u handshakes in flight%s\n",
           outage_s, rate, breaker_open_ms ? breaker_open_ms : dflt.breaker_open_ms,
           breaker_open_ms ? "" : " (the default)",
           max_connects ? max_connects : dflt.max_concurrent_connects,
           max_connects ? "" : " (the default)");
    printf("%8s %10s %12s %12s %12s %10s %8s %10s %10s %8s %8s\n", "sessions", "connect s",
           "attempts in", "server 503", "all back s", "N/R s", "ratio", "attempts", "429s",
           "failed", "dropped");
    printf("%8s %10s %12s %12s %12s %10s %8s %10s %10s %8s %8s\n", "", "(initial)", "outage",
           "in outage", "after return", "", "", "after", "after", "", "events");
    for (int k = 0; k < ncases; k++) {
        const result *r = &res[k];
        double floor_s = r->sessions / rate;
        printf("%8u %10.2f %12llu %12llu %12.2f %10.2f %8.2f %10llu %10llu %8u %8u\n", r->sessions,
               r->connect_s, (unsigned long long)r->attempts_outage,
               (unsigned long long)r->rejected_outage, r->all_back_s, floor_s,
               r->all_back_s / floor_s, (unsigned long long)r->attempts_after,
               (unsigned long long)r->rejected_after, r->failed, r->dropped);
        if (r->back < r->sessions)
            printf("  only %u of %u sessions reconnected\n", r->back, r->sessions);
        if (r->failed)
            printf("  %u sessions gave up; the first: %s\n", r->failed, r->first_failure);
    }
    printf("attempts in outage: the client's steno_connect_attempts_total while the server was "
           "down; server 503: handshakes it refused then. all back: from the return to the last "
           "RECONNECTED.\n");
    bench_print_command(argc, argv);
    return 0;
}
