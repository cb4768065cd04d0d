/* test_elevenlabs_zero_loss: the ElevenLabs realtime adapter against steno-server --protocol
 * elevenlabs (null engine): every sample finalized exactly once at real-time pacing, each
 * commit's answer covering exactly the audio sent before the commit, and a clean close; then the
 * same through steno-chaos with a TCP reset and a server drop mid-stream, with no loss, no
 * duplicate, one timeline and no rate_limited close; then a session time limit that ends the
 * connection every few seconds, each end a seamless reconnect; and a configuration change,
 * which the protocol can only carry on a new connection, as a seamless reconnect.
 *
 * The protocol has no end-of-stream message: a close is the commit (its answer acknowledges
 * the tail), an empty chunk, and the client's own close of the socket. The null engine's span
 * is longer than any stream, so the engine finalizes only at commits and each committed
 * transcript is exactly one span. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define KEY "el-test-key"

static steno_status token(void *user, char *buf, size_t cap)
{
    (void)user;
    snprintf(buf, cap, "Bearer %s", KEY); /* a single-use token: sent as token= */
    return STENO_OK;
}

/* No connection closed for what the client sent (pace, chunk size, bad messages). */
static void no_client_errors(const cJSON *recs)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    cJSON_ArrayForEach(r, arr)
    {
        const char *cause = h_jstr(r, "close_cause");
        H_CHECK(strcmp(cause, "rate") && strcmp(cause, "bad_audio") && strcmp(cause, "bad_text") &&
                    strcmp(cause, "too_big"),
                "connection %d closed for what the client sent: %s", (int)h_jnum(r, "id", 0),
                h_jstr(r, "close_reason"));
    }
}

static void setup(h_run *r, const char *name, int port)
{
    h_run_init(r, name, port);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d/v1/speech-to-text/realtime", port);
    r->sc.url = r->url;
    r->sc.provider = "elevenlabs";
    r->sc.allow_no_auth = 0;
    r->sc.on_event = h_on_event_meta_id;
}

static void check_run(h_run *run, h_server *srv, const int16_t *pcm, size_t written,
                      h_accounting *acc)
{
    H_CHECK(h_server_wait_idle(srv, 20000), "server connections still open");
    cJSON *recs = h_server_records(srv);
    no_client_errors(recs);
    h_run_check_accounting(run, pcm, written, recs, acc);
    H_CHECK(acc->dropped == 0 && acc->covered == written, "%s: covered %" PRIu64 " of %zu",
            run->col.name, acc->covered, written);
    cJSON_Delete(recs);
}

int main(void)
{
    h_init("elevenlabs_zero_loss");
    h_server srv, chaos, limited;
    const char *args[] = {"--protocol",     "elevenlabs", "--api-key", KEY,
                          "--null-span-ms", "600000",     NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client_config cc;
    steno_client_config_init(&cc);
    /* Every SDK (and libwebsockets) log line at the most verbose level: none may hold the key,
     * whether it went in a header or, as a token, in the query string. */
    static h_leak_watch watch = {.secret = KEY};
    cc.log_fn = h_leak_log;
    cc.log_user = &watch;
    cc.log_level = STENO_LOG_DEBUG;
    steno_client *cl = NULL;
    char err[256] = "";
    H_CHECK(steno_client_open(&cc, &cl, err, sizeof err) == STENO_OK, "client: %s", err);

    /* 1: a clean stream of 6 s at real time, straight to the server, key in xi-api-key */
    {
        const size_t total = 6u * RATE;
        int16_t *pcm = h_pattern_alloc(21, total);
        h_run run;
        setup(&run, "clean", srv.port);
        run.sc.api_key = KEY;
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        size_t written = h_producer_join(&run.prod);
        h_run_close(&run, 15000 * h_slow());
        H_CHECK(h_server_wait_idle(&srv, 10000), "server connections still open");
        cJSON *recs = h_server_records(&srv);
        char *txt = cJSON_PrintUnformatted(recs);
        H_CHECK(strstr(txt, "commit_strategy=manual") && strstr(txt, "include_timestamps=true") &&
                    strstr(txt, "model_id=scribe_v2_realtime"),
                "query: %s", txt);
        /* commits went out (auto-finalize and the close's), and the client closed */
        H_CHECK(strstr(txt, "\"Finalize\":") && strstr(txt, "\"closed_by\":\"client\"") &&
                    strstr(txt, "\"close_code\":1000"),
                "no commits, or not closed by the client with 1000: %s", txt);
        free(txt);
        no_client_errors(recs);
        h_accounting acc;
        h_run_check_accounting(&run, pcm, written, recs, &acc);
        H_CHECK(acc.dropped == 0 && acc.covered == written && acc.connections == 1,
                "clean run: covered %" PRIu64 " of %zu, %zu connections", acc.covered, written,
                acc.connections);
        H_CHECK(acc.finals >= 2, "clean run: %zu finals (commits) only", acc.finals);
        h_log("clean: %zu committed transcripts cover %" PRIu64 " samples exactly once", acc.finals,
              acc.covered);
        cJSON_Delete(recs);
        h_run_free(&run);
        free(pcm);
    }

    /* 2: 14 s at real time through the proxy, token in the query: a TCP reset at ~3 s and a
     * server drop at ~8 s */
    {
        const size_t total = 14u * RATE;
        int16_t *pcm = h_pattern_alloc(22, total);
        h_run run;
        setup(&run, "faults", chaos.port);
        run.sc.token_cb = token;
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        H_CHECK(h_producer_wait(&run.prod, 3u * RATE, 20000), "producer stalled");
        h_chaos_reset_all(&chaos);
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
                "no RECONNECTED after the reset");
        H_CHECK(h_producer_wait(&run.prod, 8u * RATE, 20000), "producer stalled");
        h_fault(&srv, "{\"action\":\"drop\"}");
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 2, 20000 * h_slow()),
                "no RECONNECTED after the drop");
        size_t written = h_producer_join(&run.prod);
        h_run_close(&run, 30000 * h_slow());
        h_accounting acc;
        check_run(&run, &srv, pcm, written, &acc);
        h_log("faults: %zu finals over %zu connections (%zu backfill) cover %" PRIu64
              " samples exactly once",
              acc.finals, acc.connections, acc.backfill_connections, acc.covered);
        h_run_free(&run);
        free(pcm);
    }

    /* 3: a session time limit of 4 s over a 10 s stream: each session_time_limit_exceeded is a
     * planned reconnect (attempt 0, no backoff), and nothing is lost across them */
    {
        const char *largs[] = {
            "--protocol", "elevenlabs",     "--api-key", KEY, "--session-limit-s",
            "4",          "--null-span-ms", "600000",    NULL};
        h_server_start(&limited, largs);
        const size_t total = 10u * RATE;
        int16_t *pcm = h_pattern_alloc(23, total);
        h_run run;
        setup(&run, "session_limit", limited.port);
        run.sc.api_key = KEY;
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 2, 30000 * h_slow()),
                "no two reconnects at the session limit");
        size_t written = h_producer_join(&run.prod);
        h_run_close(&run, 30000 * h_slow());
        int planned = 0;
        pthread_mutex_lock(&run.col.mu);
        for (size_t i = 0; i < run.col.n; i++) {
            const h_ev *e = &run.col.ev[i];
            H_CHECK(e->type != STENO_EVENT_FAILED, "the session failed");
            if (e->type == STENO_EVENT_RECONNECTING) {
                planned++;
                H_CHECK(e->attempt == 0 && e->delay_ms == 0 && e->cause == STENO_OK,
                        "not a planned reconnect: attempt %u in %u ms (%s)", e->attempt,
                        e->delay_ms, steno_status_name(e->cause));
            }
        }
        pthread_mutex_unlock(&run.col.mu);
        h_accounting acc;
        check_run(&run, &limited, pcm, written, &acc);
        H_CHECK(acc.connections >= 3 && planned >= 2,
                "session limit: %zu connections, %d planned reconnects", acc.connections, planned);
        h_log("session limit: %d seamless reconnects, %zu connections, %zu finals cover %" PRIu64
              " samples exactly once",
              planned, acc.connections, acc.finals, acc.covered);
        h_run_free(&run);
        free(pcm);
        h_server_stop(&limited);
    }
    /* 4: no live reconfiguration: a change of language at ~2 s reconnects seamlessly (the old
     * connection is closed after its empty chunk), with nothing lost */
    {
        const size_t total = 6u * RATE;
        int16_t *pcm = h_pattern_alloc(24, total);
        h_run run;
        setup(&run, "configure", srv.port);
        run.sc.api_key = KEY;
        const steno_option start[] = {{"language_code", "en"}};
        run.sc.options = start;
        run.sc.n_options = 1;
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        H_CHECK(h_producer_wait(&run.prod, 2u * RATE, 20000), "producer stalled");
        const steno_option change[] = {{"language_code", "de"}, {"keyterms", "steno"}};
        steno_status rc = steno_session_configure(run.s, change, 2);
        H_CHECK(rc == STENO_OK, "configure: %s %s", steno_status_name(rc),
                steno_session_errmsg(run.s));
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
                "the change did not reconnect");
        size_t written = h_producer_join(&run.prod);
        h_run_close(&run, 15000 * h_slow());
        steno_session_stats st;
        steno_session_stats_get(run.s, &st);
        H_CHECK(st.configures == 1, "stats.configures = %u", st.configures);
        H_CHECK(h_server_wait_idle(&srv, 10000), "server connections still open");
        cJSON *recs = h_server_records(&srv);
        const cJSON *conns = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
        int english = 0, german = 0;
        cJSON_ArrayForEach(r, conns)
        {
            char *txt = cJSON_PrintUnformatted(r);
            if (strstr(txt, "language_code=de") && strstr(txt, "keyterms=steno"))
                german++;
            if (strstr(txt, "language_code=en"))
                english++;
            free(txt);
        }
        /* the first connection had the old settings; every later one (the live connection
         * and a backfill of what the first had not committed) has the new ones */
        H_CHECK(english == 1 && german >= 1,
                "%d connections with the old settings, %d with the new", english, german);
        cJSON_Delete(recs);
        h_accounting acc;
        check_run(&run, &srv, pcm, written, &acc);
        H_CHECK(acc.connections - acc.backfill_connections == 2,
                "configure: %zu connections, %zu of them backfill", acc.connections,
                acc.backfill_connections);
        h_log("configure: one seamless reconnect (%zu backfill connections); %zu finals cover "
              "%" PRIu64 " samples exactly once",
              acc.backfill_connections, acc.finals, acc.covered);
        h_run_free(&run);
        free(pcm);
    }
    steno_client_destroy(cl);
    H_CHECK(atomic_load(&watch.lines) > 0 && atomic_load(&watch.leaks) == 0,
            "%d of %d log lines hold the credential", atomic_load(&watch.leaks),
            atomic_load(&watch.lines));
    return h_pass();
}
