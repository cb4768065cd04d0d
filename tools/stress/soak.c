/* steno-soak: many sessions for a long time under random faults from both witnesses; reports
 * what was injected and proves nothing was lost and memory stayed flat. */
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/*
 * N sessions on one client, at the SDK's defaults, stream a deterministic
 * signal at real time through a few steno-chaos proxies (PER_PROXY sessions
 * each) to one steno-server (null engine, Deepgram's ingest limit: --max-rate
 * 1.25 --burst-ms 2000). A seeded scheduler injects random faults inside the
 * envelope the SDK promises to absorb without loss:
 *   - no session is hit again less than MIN_GAP_S after its last fault, nor
 *     while it is not STREAMING (an outage is never stacked on an outage);
 *   - no outage lasts more than MAX_OUTAGE_S: blackholes and stalls are lifted
 *     after it (liveness replaces them well before), refusal windows last 2-6 s.
 * Faults: proxy reset, blackhole and latency (every session of one proxy),
 * server drop, close 1011 and stall (one session's live connection), and a
 * refusal window (every handshake gets 503 while every proxy resets).
 * At the end every session must close cleanly with no AUDIO_DROPPED and its
 * finals tiling the whole stream once (null-engine checksums), and the
 * process's RSS at the end may exceed the RSS after warm-up by at most
 * --rss-tolerance-pct percent plus --rss-tolerance-kib.
 */

#define RATE 16000u
#define PER_PROXY 4
#define MAX_PROXIES 12
#define MIN_GAP_S 3.0
#define MAX_OUTAGE_S 6.0
#define TICK_MS 100

enum kind { RESET, BLACKHOLE, LATENCY, DROP, CLOSE, STALL, REFUSAL, KINDS };
static const char *const kind_names[KINDS] = {"reset", "blackhole", "latency",       "drop",
                                              "close", "stall",     "refusal window"};

typedef struct sess {
    h_run r;
    int proxy;
    double last_fault;
} sess;

typedef struct lift {
    double at;
    int proxy;     /* toxic on this proxy ... */
    char name[32]; /* ... with this name, or */
    int stall_id;  /* unstall this server connection (> 0) */
} lift;

static FILE *g_log; /* --log */

/* One line in the --log file, on the harness's clock. */
static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (!g_log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    h_sdk_log(g_log, STENO_LOG_INFO, line);
}

static uint64_t g_rng;
static double rnd(void) /* [0, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static uint64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double elapsed_s(uint64_t t0)
{
    return (double)(h_now_ms() - t0) / 1000.0;
}

/* The server's id of the session's live connection, or -1. */
static int live_conn_id(const h_server *srv, sess *s)
{
    char rid[128] = "";
    pthread_mutex_lock(&s->r.col.mu);
    for (size_t i = 0; i < s->r.col.n; i++)
        if (s->r.col.ev[i].type == STENO_EVENT_CONNECTED ||
            s->r.col.ev[i].type == STENO_EVENT_RECONNECTED)
            snprintf(rid, sizeof rid, "%s", s->r.col.ev[i].request_id);
    pthread_mutex_unlock(&s->r.col.mu);
    char path[200];
    snprintf(path, sizeof path, "/connections?request_id=%s", rid);
    cJSON *j = h_http_ok(srv->control_port, "GET", path, NULL);
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "connections"), 0);
    int id = r && strcmp(h_jstr(r, "state"), "open") == 0 ? (int)h_jnum(r, "id", -1) : -1;
    cJSON_Delete(j);
    return id;
}

static bool eligible(sess *s, double now)
{
    return now - s->last_fault >= MIN_GAP_S &&
           steno_session_state_get(s->r.s) == STENO_STATE_STREAMING;
}

static void *close_main(void *arg)
{
    sess *s = arg;
    steno_status rc = steno_session_close(s->r.s, 120000);
    if (rc != STENO_OK)
        h_log("%s: close: %s", s->r.col.name, steno_status_name(rc));
    return NULL;
}

/* The events of a session that did not end clean, for --log (finals as ranges, no interims). */
static void dump_events(sess *s, unsigned i)
{
    if (!g_log)
        return;
    h_collector *c = &s->r.col;
    pthread_mutex_lock(&c->mu);
    fprintf(g_log, "---- events of s%u (session %u) ----\n", i, i + 1);
    for (size_t k = 0; k < c->n; k++) {
        const h_ev *e = &c->ev[k];
        double t = h_log_time(e->t_ms);
        switch (e->type) {
        case STENO_EVENT_TRANSCRIPT:
            if (e->is_final)
                fprintf(g_log, "%9.3f final%s%s [%.2f, %.2f) s\n", t,
                        e->from_backfill ? " backfill" : "", e->from_finalize ? " finalize" : "",
                        (double)e->first_sample / RATE, (double)e->end_sample / RATE);
            break;
        case STENO_EVENT_RECONNECTING:
            fprintf(g_log, "%9.3f RECONNECTING attempt %u in %u ms: %s\n", t, e->attempt,
                    e->delay_ms, e->message);
            break;
        case STENO_EVENT_RECONNECTED:
            fprintf(g_log, "%9.3f RECONNECTED down %u ms, replaying %u chunks, %u to backfill\n", t,
                    e->downtime_ms, e->replayed_chunks, e->backfill_chunks);
            break;
        case STENO_EVENT_AUDIO_DROPPED:
            fprintf(g_log, "%9.3f AUDIO_DROPPED [%.2f, %.2f) s %s\n", t,
                    (double)e->drop_first / RATE, (double)(e->drop_last + 1) / RATE,
                    e->producer_side ? "producer" : "evicted");
            break;
        case STENO_EVENT_CAUGHT_UP:
            fprintf(g_log, "%9.3f CAUGHT_UP\n", t);
            break;
        default:
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* Bytes the harness itself holds for the sessions' events (every event is kept for the checks
 * at the end, so this grows with the run and is part of the process's RSS). */
static uint64_t event_log_bytes(sess *ss, unsigned n)
{
    uint64_t b = 0;
    for (unsigned i = 0; i < n; i++) {
        h_collector *c = &ss[i].r.col;
        pthread_mutex_lock(&c->mu);
        b += (uint64_t)c->cap * sizeof(h_ev);
        for (size_t k = 0; k < c->n; k++) {
            const h_ev *e = &c->ev[k];
            b += (e->text ? strlen(e->text) + 1 : 0) + (e->message ? strlen(e->message) + 1 : 0) +
                 (e->request_id ? strlen(e->request_id) + 1 : 0);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return b;
}

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s --server PATH --chaos PATH [--sessions N] [--seconds S] [--seed N]\n"
            "          [--mean-gap S] [--refusal-every S] [--rss-tolerance-pct P]\n"
            "          [--rss-tolerance-kib K] [--log FILE]\n"
            "  --log FILE  the SDK's log (debug level, each line naming its session), the faults\n"
            "              injected and the events of every session that did not end clean\n",
            argv0);
}

int main(int argc, char **argv)
{
    unsigned sessions = 20, seed = 1;
    double seconds = 30, mean_gap = 6, refusal_every = 20, tol_pct = 10, tol_kib = 8192;
    const char *log_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "--help")) {
            usage(stderr, argv[0]);
            return 2;
        }
        if (!strcmp(a, "--server"))
            setenv("STENO_SERVER", v, 1);
        else if (!strcmp(a, "--chaos"))
            setenv("STENO_CHAOS", v, 1);
        else if (!strcmp(a, "--sessions"))
            sessions = (unsigned)atoi(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--seed"))
            seed = (unsigned)atoi(v);
        else if (!strcmp(a, "--mean-gap"))
            mean_gap = atof(v);
        else if (!strcmp(a, "--refusal-every"))
            refusal_every = atof(v);
        else if (!strcmp(a, "--rss-tolerance-pct"))
            tol_pct = atof(v);
        else if (!strcmp(a, "--rss-tolerance-kib"))
            tol_kib = atof(v);
        else if (!strcmp(a, "--log"))
            log_path = v;
        else if (!strcmp(a, "--help")) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
        i++;
    }
    if (sessions < 1 || seconds < 5 || mean_gap <= 0) {
        usage(stderr, argv[0]);
        return 2;
    }
    h_init("soak");
    g_rng = 0x9e3779b97f4a7c15ull ^ seed;
    unsigned nproxy = (sessions + PER_PROXY - 1) / PER_PROXY;
    if (nproxy > MAX_PROXIES)
        nproxy = MAX_PROXIES;
    h_log("%u sessions x %.0f s through %u proxies, seed %u, a fault per session every %.1f s on "
          "average (at least %.0f s apart), a refusal window every %.0f s",
          sessions, seconds, nproxy, seed, mean_gap, MIN_GAP_S, refusal_every);

    h_server srv, proxies[MAX_PROXIES];
    const char *args[] = {"--max-rate", "1.25", "--burst-ms", "2000", "--frame-log", "0", NULL};
    h_server_start(&srv, args);
    for (unsigned p = 0; p < nproxy; p++)
        h_chaos_start(&proxies[p], srv.port);

    size_t total = (size_t)(seconds * RATE);
    int16_t *pcm = h_pattern_alloc(seed, total);
    /* errors only: every refused handshake of every session would be a warning line */
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.log_fn = h_sdk_log;
    cc.log_level = STENO_LOG_ERROR;
    if (log_path) {
        g_log = fopen(log_path, "w");
        H_CHECK(g_log, "cannot write %s", log_path);
        cc.log_user = g_log;
        cc.log_level = STENO_LOG_DEBUG;
    }
    steno_client *cl = NULL;
    char err[256] = "";
    steno_status orc = steno_client_open(&cc, &cl, err, sizeof err);
    H_CHECK(orc == STENO_OK, "steno_client_open: %s", err);
    sess *ss = calloc(sessions, sizeof *ss);
    H_CHECK(ss, "out of memory");
    for (unsigned i = 0; i < sessions; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%u", i);
        ss[i].proxy = (int)(i % nproxy);
        h_run_init_provider_defaults(&ss[i].r, name, proxies[ss[i].proxy].port);
        ss[i].r.col.quiet = 1;
        h_run_open(&ss[i].r, cl);
    }
    for (unsigned i = 0; i < sessions; i++)
        H_CHECK(h_wait_type(&ss[i].r.col, STENO_EVENT_CONNECTED, 1, 30000), "s%u never connected",
                i);
    for (unsigned i = 0; i < sessions; i++)
        h_run_stream(&ss[i].r, pcm, total, 1.0);

    uint64_t t0 = h_now_ms();
    unsigned faults[KINDS] = {0};
    lift lifts[256];
    size_t nlifts = 0;
    double refusal_until = -1, next_refusal = refusal_every;
    uint64_t rss_start = 0, rss_max = 0, evlog_start = 0;
    double warmup = seconds * 0.2 > 3 ? seconds * 0.2 : 3;
    unsigned serial = 0;
    while (h_producer_written(&ss[sessions - 1].r.prod) < total) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        nanosleep(&ts, NULL); /* the scheduler's tick: faults are drawn per tick */
        double now = elapsed_s(t0);
        uint64_t rss = rss_kib();
        if (!rss_start && now >= warmup) {
            rss_start = rss;
            evlog_start = event_log_bytes(ss, sessions);
        }
        if (rss > rss_max)
            rss_max = rss;
        /* lift what has lasted long enough */
        for (size_t k = 0; k < nlifts;) {
            if (lifts[k].at > now) {
                k++;
                continue;
            }
            if (lifts[k].stall_id > 0) {
                char body[96], *out = NULL;
                snprintf(body, sizeof body, "{\"action\":\"unstall\",\"connection\":%d}",
                         lifts[k].stall_id);
                h_http_raw(srv.control_port, "POST", "/faults", body, &out); /* may be gone */
                free(out);
            } else {
                h_toxic_remove(&proxies[lifts[k].proxy], lifts[k].name);
            }
            lifts[k] = lifts[--nlifts];
        }
        if (refusal_until >= 0 && now >= refusal_until) {
            h_fault(&srv, "{\"down\":false}");
            refusal_until = -1;
        }
        if (now > seconds - 1.0 || nlifts > 200)
            continue; /* the last second streams undisturbed */
        if (refusal_every > 0 && now >= next_refusal && refusal_until < 0) {
            /* a provider outage seen by every session: wait until all can take it */
            bool all = true;
            for (unsigned i = 0; i < sessions && all; i++)
                all = eligible(&ss[i], now);
            if (!all)
                continue;
            double len = 2.0 + rnd() * (MAX_OUTAGE_S - 2.0);
            h_fault(&srv, "{\"down\":true,\"status\":503}");
            for (unsigned p = 0; p < nproxy; p++)
                h_chaos_reset_all(&proxies[p]);
            refusal_until = now + len;
            next_refusal = now + refusal_every;
            for (unsigned i = 0; i < sessions; i++)
                ss[i].last_fault = now + len;
            faults[REFUSAL]++;
            trace("fault: refusal window of %.1f s (every session)", len);
            continue;
        }
        for (unsigned i = 0; i < sessions; i++) {
            sess *s = &ss[(i + serial) % sessions];
            if (!eligible(s, now) || rnd() >= (TICK_MS / 1000.0) / mean_gap)
                continue;
            enum kind k = (enum kind)(rnd() * (KINDS - 1));
            const h_server *px = &proxies[s->proxy];
            if (k == RESET || k == BLACKHOLE || k == LATENCY) {
                bool all = true;
                for (unsigned j = 0; j < sessions && all; j++)
                    all = ss[j].proxy != s->proxy || eligible(&ss[j], now);
                if (!all)
                    continue;
                for (unsigned j = 0; j < sessions; j++)
                    if (ss[j].proxy == s->proxy)
                        ss[j].last_fault = now;
            }
            if (k == RESET) {
                h_chaos_reset_all(px);
            } else if (k == BLACKHOLE) {
                cJSON *j = h_http_ok(px->control_port, "GET", "/connections", NULL);
                const cJSON *c;
                cJSON_ArrayForEach(c, j)
                {
                    if (strcmp(h_jstr(c, "state"), "open") != 0 || nlifts == 256)
                        continue;
                    lift *l = &lifts[nlifts++];
                    memset(l, 0, sizeof *l);
                    l->at = now + MAX_OUTAGE_S;
                    l->proxy = s->proxy;
                    snprintf(l->name, sizeof l->name, "bh%u", ++serial);
                    h_toxic_add(px, "{\"name\":\"%s\",\"type\":\"blackhole\",\"connection\":%d}",
                                l->name, (int)h_jnum(c, "id", -1));
                }
                cJSON_Delete(j);
            } else if (k == LATENCY) {
                lift *l = &lifts[nlifts++];
                memset(l, 0, sizeof *l);
                l->at = now + 2.0 + rnd() * 4.0;
                l->proxy = s->proxy;
                snprintf(l->name, sizeof l->name, "lat%u", ++serial);
                h_toxic_add(px,
                            "{\"name\":\"%s\",\"type\":\"latency\",\"latency_ms\":%d,"
                            "\"jitter_ms\":50}",
                            l->name, 100 + (int)(rnd() * 200));
            } else {
                int id = live_conn_id(&srv, s);
                if (id < 0)
                    continue;
                char body[128], *out = NULL;
                if (k == DROP)
                    snprintf(body, sizeof body, "{\"action\":\"drop\",\"connection\":%d}", id);
                else if (k == CLOSE)
                    snprintf(body, sizeof body,
                             "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\","
                             "\"connection\":%d}",
                             id);
                else
                    snprintf(body, sizeof body, "{\"action\":\"stall\",\"connection\":%d}", id);
                if (h_http_raw(srv.control_port, "POST", "/faults", body, &out) / 100 != 2) {
                    free(out);
                    continue; /* the connection ended meanwhile */
                }
                free(out);
                if (k == STALL) {
                    lift *l = &lifts[nlifts++];
                    memset(l, 0, sizeof *l);
                    l->at = now + MAX_OUTAGE_S;
                    l->stall_id = id;
                }
                s->last_fault = now;
            }
            faults[k]++;
            if (k == RESET || k == BLACKHOLE || k == LATENCY)
                trace("fault: %s on proxy %d (sessions s%d, s%d, ...)", kind_names[k], s->proxy,
                      s->proxy, s->proxy + (int)nproxy);
            else
                trace("fault: %s on s%u's live connection (session %u)", kind_names[k],
                      (unsigned)(s - ss), (unsigned)(s - ss) + 1);
        }
        serial++;
    }
    uint64_t rss_end = rss_kib();
    uint64_t evlog_end = event_log_bytes(ss, sessions);
    double streamed = elapsed_s(t0);
    for (unsigned i = 0; i < sessions; i++)
        h_producer_join(&ss[i].r.prod);
    for (size_t k = 0; k < nlifts; k++)
        if (!lifts[k].stall_id)
            h_toxic_remove(&proxies[lifts[k].proxy], lifts[k].name);
    if (refusal_until >= 0)
        h_fault(&srv, "{\"down\":false}");
    cJSON_Delete(h_http_ok(srv.control_port, "DELETE", "/faults", NULL));

    pthread_t *th = calloc(sessions, sizeof *th);
    H_CHECK(th, "out of memory");
    for (unsigned i = 0; i < sessions; i++)
        H_CHECK(pthread_create(&th[i], NULL, close_main, &ss[i]) == 0, "pthread_create");
    for (unsigned i = 0; i < sessions; i++)
        pthread_join(th[i], NULL);
    free(th);

    uint64_t lost = 0, reconnects = 0, backfills = 0, dead = 0;
    unsigned bad = 0, nfaults = 0;
    for (int k = 0; k < KINDS; k++)
        nfaults += faults[k];
    for (unsigned i = 0; i < sessions; i++) {
        sess *s = &ss[i];
        steno_session_stats st;
        steno_session_stats_get(s->r.s, &st);
        reconnects += st.reconnects;
        backfills += st.backfills;
        dead += st.dead_connections;
        char desc[512], terr[512];
        uint64_t dropped = h_dropped(&s->r.col, desc, sizeof desc);
        h_cover cov;
        bool ok = h_check_timeline(&s->r.col, pcm, total, RATE, true, &cov, terr, sizeof terr);
        /* Dropped audio is lost even where a final was (wrongly) mapped across it. */
        uint64_t l = dropped > cov.uncovered ? dropped : cov.uncovered;
        lost += l;
        if (dropped)
            h_log("s%u: %" PRIu64 " samples dropped: %s", i, dropped, desc);
        if (cov.uncovered)
            h_log("s%u: %" PRIu64 " samples never finalized: %s", i, cov.uncovered,
                  cov.uncovered_desc);
        if (!ok)
            h_log("s%u: timeline: %s", i, terr);
        if (st.state != STENO_STATE_CLOSED || !ok || l) {
            bad++;
            dump_events(s, i);
        }
    }
    double growth = (double)rss_end - (double)rss_start;
    double allowed = (double)rss_start * tol_pct / 100.0 + tol_kib;
    printf("\nsoak: %u sessions x %.0f s (streamed %.1f s), seed %u\n", sessions, seconds, streamed,
           seed);
    printf("  faults injected: %u (", nfaults);
    for (int k = 0; k < KINDS; k++)
        printf("%s%s %u", k ? ", " : "", kind_names[k], faults[k]);
    printf(")\n  reconnects: %" PRIu64 " (connections declared dead: %" PRIu64
           "), backfills: %" PRIu64 "\n",
           reconnects, dead, backfills);
    printf("  samples lost: %" PRIu64 " (%.2f s); sessions not clean: %u\n", lost,
           (double)lost / RATE, bad);
    printf("  RSS: %" PRIu64 " KiB after %.0f s warm-up, %" PRIu64 " KiB at the end (%+.0f KiB, "
           "%+.1f %%; allowed %+.0f KiB), peak %" PRIu64 " KiB\n",
           rss_start, warmup, rss_end, growth, rss_start ? 100.0 * growth / rss_start : 0, allowed,
           rss_max);
    printf("  of the growth, the harness's own record of every event: %+.0f KiB\n",
           ((double)evlog_end - (double)evlog_start) / 1024.0);
    printf("reproduce:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);

    for (unsigned i = 0; i < sessions; i++)
        h_run_free(&ss[i].r);
    free(ss);
    steno_client_destroy(cl);
    if (g_log)
        fclose(g_log);
    free(pcm);
    H_CHECK(nfaults > 0, "no fault was injected");
    H_CHECK(lost == 0, "%" PRIu64 " samples lost inside the fault envelope", lost);
    H_CHECK(bad == 0, "%u sessions did not end cleanly", bad);
    H_CHECK(growth <= allowed, "RSS grew by %.0f KiB, more than the %.0f KiB allowed", growth,
            allowed);
    return h_pass();
}
