/* test_openai_zero_loss: the OpenAI Realtime adapter against steno-server --protocol openai
 * (null engine, --max-rate 1.0): every sample finalized exactly once at real-time pacing,
 * directly and through steno-chaos with a TCP reset and a server drop mid-stream, and across the
 * session limit (error session_expired, then the close), with one timeline and no rate close;
 * a language change mid-stream applied by session.update on the open connection; and a 16 kHz
 * session, whose audio reaches the server resampled to 24 kHz.
 *
 * The weaker guarantees this protocol allows, asserted as such:
 *  - The close. OpenAI has no end-of-stream message and the service closes on no client
 *    event, while the engine ends a close only when the server closes after close_text. So
 *    steno_session_close() returns STENO_ERR_TIMEOUT after its timeout; what is asserted is
 *    that by then every sample is final (CLOSED with 0 unfinalized samples). For the same
 *    reason backfill is off here: a backfill job ends only when the server closes after
 *    close_text, so it would never end; replays go on the live connection.
 *  - Checksums. The null engine names spans of the 24 kHz audio the server received, so the
 *    exactly-once accounting runs on 24 kHz sessions (audio passes through unchanged); the
 *    16 kHz run checks the sample counts of the conversion instead.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 24000u
#define KEY "sk-oai-test-key"
#define CLOSE_MS 8000u

/* Every SDK (and libwebsockets) log line at the most verbose level: none may hold the key. */
static atomic_int leaks, lines;
static void leak_log(void *user, steno_log_level level, const char *line)
{
    (void)user;
    atomic_fetch_add(&lines, 1);
    if (strstr(line, KEY)) {
        atomic_fetch_add(&leaks, 1);
        fprintf(stderr, "LEAK: %s\n", line);
    } else if (level <= STENO_LOG_WARN) {
        fprintf(stderr, "sdk: %s\n", line);
    }
}

static void no_rate_closes(const cJSON *recs)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    cJSON_ArrayForEach(r, arr)
    {
        H_CHECK(strcmp(h_jstr(r, "close_cause"), "rate") != 0 &&
                    strcmp(h_jstr(r, "close_cause"), "bad_audio") != 0,
                "connection %d closed for its audio: %s", (int)h_jnum(r, "id", 0),
                h_jstr(r, "close_reason"));
    }
}

static void setup(h_run *r, const char *name, int port, uint32_t rate)
{
    h_run_init(r, name, port);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d/v1/realtime", port);
    r->sc.url = r->url;
    r->sc.provider = "openai";
    r->sc.sample_rate = rate;
    r->sc.allow_no_auth = 0;
    r->sc.api_key = KEY;
    r->sc.on_event = h_on_event_meta_id; /* named by session.created */
    r->sc.max_backfill_connections = STENO_BACKFILL_OFF;
}

/* The close: every final in before the timeout, which then ends it (see the first comment).
 * The timeout leaves room for a replayed backlog still on its way at 1.0x. */
static void close_all_final(h_run *r)
{
    steno_status rc = steno_session_close(r->s, CLOSE_MS * h_slow());
    H_CHECK(rc == STENO_OK || rc == STENO_ERR_TIMEOUT, "%s: close: %s", r->col.name,
            steno_status_name(rc));
    size_t at = h_find(&r->col, STENO_EVENT_CLOSED, 0);
    H_CHECK(at != (size_t)-1, "%s: no CLOSED event", r->col.name);
    H_CHECK(r->col.ev[at].unfinalized == 0, "%s: CLOSED %s with %" PRIu64 " unfinalized samples",
            r->col.name, steno_status_name(r->col.ev[at].status), r->col.ev[at].unfinalized);
}

static void no_empty_finals(h_run *r)
{
    pthread_mutex_lock(&r->col.mu);
    for (size_t i = 0; i < r->col.n; i++) {
        const h_ev *e = &r->col.ev[i];
        H_CHECK(!(e->type == STENO_EVENT_TRANSCRIPT && e->is_final &&
                  e->end_sample > e->first_sample && (!e->text || !e->text[0])),
                "%s: a final [%" PRIu64 ", %" PRIu64 ") without text (a refused commit's tail)",
                r->col.name, e->first_sample, e->end_sample);
    }
    pthread_mutex_unlock(&r->col.mu);
}

/* One stream at real time; faults(run, srv, chaos) strikes while it flows (may be NULL). */
static void exact_run(steno_client *cl, h_server *srv, int port, const char *name, uint32_t seed,
                      double seconds, void (*faults)(h_run *, h_server *, void *), void *arg,
                      size_t min_connections, size_t max_connections, const char *expect)
{
    const size_t total = (size_t)(seconds * RATE);
    int16_t *pcm = h_pattern_alloc(seed, total);
    h_run run;
    setup(&run, name, port, RATE);
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);
    if (faults)
        faults(&run, srv, arg);
    size_t written = h_producer_join(&run.prod);
    close_all_final(&run);
    H_CHECK(h_server_wait_idle(srv, 10000 * h_slow()), "server connections still open");
    cJSON *recs = h_server_records(srv);
    no_rate_closes(recs);
    char *txt = cJSON_PrintUnformatted(recs);
    H_CHECK(strstr(txt, "intent=transcription") && strstr(txt, "\"input_audio_buffer.commit\"") &&
                strstr(txt, "\"session.update\":"),
            "%s: no transcription session with commits: %s", name, txt);
    H_CHECK(!expect || strstr(txt, expect), "%s: no %s in the records: %s", name, expect, txt);
    free(txt);
    no_empty_finals(&run);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0 && acc.covered == written && acc.connections >= min_connections &&
                acc.connections <= max_connections,
            "%s: covered %" PRIu64 " of %zu over %zu connections", name, acc.covered, written,
            acc.connections);
    h_log("%s: %zu finals over %zu connections cover %" PRIu64 " samples exactly once", name,
          acc.finals, acc.connections, acc.covered);
    cJSON_Delete(recs);
    h_run_free(&run);
    free(pcm);
}

/* At 2 s of audio: the language changes, by a session.update on the open connection. */
static void live_language(h_run *run, h_server *srv, void *arg)
{
    (void)srv;
    (void)arg;
    H_CHECK(h_producer_wait(&run->prod, 2u * RATE, 20000), "producer stalled");
    H_CHECK(steno_session_set_option(run->s, "language", "de") == STENO_OK, "configure");
}

/* A TCP reset through the proxy at ~3 s, a server drop at ~8 s. */
static void reset_then_drop(h_run *run, h_server *srv, void *arg)
{
    h_server *chaos = arg;
    H_CHECK(h_producer_wait(&run->prod, 3u * RATE, 20000), "producer stalled");
    h_chaos_reset_all(chaos);
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
            "no RECONNECTED after the reset");
    H_CHECK(h_producer_wait(&run->prod, 8u * RATE, 20000), "producer stalled");
    h_fault(srv, "{\"action\":\"drop\"}");
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 2, 20000 * h_slow()),
            "no RECONNECTED after the drop");
}

/* The session limit (4 s) strikes twice in 10 s: each time a seamless reconnect. */
static void two_expiries(h_run *run, h_server *srv, void *arg)
{
    (void)srv;
    (void)arg;
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 2, 20000 * h_slow()),
            "no second RECONNECTED after the session limits");
    pthread_mutex_lock(&run->col.mu);
    for (size_t i = 0; i < run->col.n; i++)
        H_CHECK(run->col.ev[i].type != STENO_EVENT_FAILED, "the session failed");
    pthread_mutex_unlock(&run->col.mu);
}

int main(void)
{
    h_init("openai_zero_loss");
    h_server srv, limited, chaos;
    /* one span per item (commits come every 1.5-3 s), real-time pace enforced */
    const char *args[] = {"--protocol",     "openai", "--api-key",  KEY,
                          "--null-span-ms", "60000",  "--max-rate", "1.0",
                          "--burst-ms",     "1500",   NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.log_fn = leak_log;
    cc.log_level = STENO_LOG_DEBUG;
    steno_client *cl = NULL;
    char err[256] = "";
    H_CHECK(steno_client_open(&cc, &cl, err, sizeof err) == STENO_OK, "client: %s", err);

    /* 1: a clean stream of 6 s, straight to the server: one connection, through a live
     * language change */
    exact_run(cl, &srv, srv.port, "clean", 21, 6.0, live_language, NULL, 1, 1,
              "\"language\":\"de\"");
    /* 2: 14 s through the proxy, a reset and a drop */
    exact_run(cl, &srv, chaos.port, "faults", 22, 14.0, reset_then_drop, &chaos, 3, 3, NULL);

    /* 3: a 4 s session limit during 10 s: session_expired, then the next session at once */
    const char *largs[] = {
        "--protocol", "openai", "--api-key",  KEY,    "--null-span-ms",    "60000",
        "--max-rate", "1.0",    "--burst-ms", "1500", "--session-limit-s", "4",
        NULL};
    h_server_start(&limited, largs);
    exact_run(cl, &limited, limited.port, "expiry", 23, 10.0, two_expiries, NULL, 3, 3, NULL);
    h_server_stop(&limited);

    /* 4: 2 s at 16 kHz: each connection's audio reaches the server as 3 samples per 2 */
    {
        const size_t total = 2u * 16000u;
        int16_t *pcm = h_pattern_alloc(24, total);
        h_run run;
        setup(&run, "16k", srv.port, 16000);
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        size_t written = h_producer_join(&run.prod);
        close_all_final(&run);
        H_CHECK(h_server_wait_idle(&srv, 10000 * h_slow()), "server connections still open");
        cJSON *recs = h_server_records(&srv);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
        const cJSON *last = cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1);
        double got = h_jnum(last, "audio_samples", -1);
        H_CHECK(got == (double)((written - 1) * 3 / 2 + 1),
                "16k: the server got %.0f samples for %zu written", got, written);
        H_CHECK(h_acked(&run.col) == written, "16k: finals end at %" PRIu64 " of %zu",
                h_acked(&run.col), written);
        h_log("16k: %zu samples became %.0f at 24 kHz, all final", written, got);
        cJSON_Delete(recs);
        h_run_free(&run);
        free(pcm);
    }
    steno_client_destroy(cl);
    H_CHECK(atomic_load(&lines) > 0 && atomic_load(&leaks) == 0,
            "%d of %d log lines hold the credential", atomic_load(&leaks), atomic_load(&lines));
    return h_pass();
}
