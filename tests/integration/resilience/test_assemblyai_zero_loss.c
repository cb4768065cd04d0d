/* test_assemblyai_zero_loss: the AssemblyAI v3 adapter against steno-server --protocol assemblyai
 * (null engine): every sample finalized exactly once at real-time pacing, cleanly closed with
 * ForceEndpoint then Terminate; then the same through steno-chaos with a TCP reset and a server
 * drop mid-stream, with no loss, no duplicate, one timeline and no 3007 (rate) close; a
 * stream whose last chunk is shorter than the provider's 50 ms minimum frame; and a
 * configuration change applied live with UpdateConfiguration (no reconnect), then one the
 * protocol fixes at setup (a seamless reconnect), with nothing lost either way. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define KEY "aai-test-key"

/* Every SDK (and libwebsockets) log line at the most verbose level: none may hold the key,
 * whether it went in Authorization or, as a token, in the query string. */
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

static steno_status token(void *user, char *buf, size_t cap)
{
    (void)user;
    snprintf(buf, cap, "Bearer %s", KEY); /* a temporary token: sent as token= */
    return STENO_OK;
}

static void no_rate_closes(const cJSON *recs)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    cJSON_ArrayForEach(r, arr)
    {
        H_CHECK(strcmp(h_jstr(r, "close_cause"), "rate") != 0 &&
                    strcmp(h_jstr(r, "close_cause"), "bad_audio") != 0,
                "connection %d closed with 3007: %s", (int)h_jnum(r, "id", 0),
                h_jstr(r, "close_reason"));
    }
}

static void setup(h_run *r, const char *name, int port)
{
    h_run_init(r, name, port);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d/v3/ws", port);
    r->sc.url = r->url;
    r->sc.provider = "assemblyai";
    r->sc.allow_no_auth = 0;
    r->sc.on_event = h_on_event_meta_id;
}

int main(void)
{
    h_init("assemblyai_zero_loss");
    h_server srv, chaos;
    const char *args[] = {"--protocol", "assemblyai", "--api-key", KEY, NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.log_fn = leak_log;
    cc.log_level = STENO_LOG_DEBUG;
    steno_client *cl = NULL;
    char err[256] = "";
    H_CHECK(steno_client_open(&cc, &cl, err, sizeof err) == STENO_OK, "client: %s", err);

    /* 1: a clean stream of 6 s at real time, straight to the server, key in Authorization */
    {
        const size_t total = 6u * RATE;
        int16_t *pcm = h_pattern_alloc(11, total);
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
        H_CHECK(strstr(txt, "\"Terminate\":1") && strstr(txt, "\"ForceEndpoint\""),
                "no ForceEndpoint then Terminate: %s", txt);
        H_CHECK(strstr(txt, "speech_model=universal-streaming-english"), "query: %s", txt);
        free(txt);
        no_rate_closes(recs);
        h_accounting acc;
        h_run_check_accounting(&run, pcm, written, recs, &acc);
        H_CHECK(acc.dropped == 0 && acc.covered == written && acc.connections == 1,
                "clean run: covered %" PRIu64 " of %zu, %zu connections", acc.covered, written,
                acc.connections);
        h_log("clean: %zu finals cover %" PRIu64 " samples exactly once", acc.finals, acc.covered);
        cJSON_Delete(recs);
        h_run_free(&run);
        free(pcm);
    }

    /* 2: 14 s at real time through the proxy, token in the query: a TCP reset at ~3 s and a
     * server drop at ~8 s */
    {
        const size_t total = 14u * RATE;
        int16_t *pcm = h_pattern_alloc(12, total);
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
        H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");
        cJSON *recs = h_server_records(&srv);
        no_rate_closes(recs);
        h_accounting acc;
        h_run_check_accounting(&run, pcm, written, recs, &acc);
        H_CHECK(acc.dropped == 0 && acc.covered == written, "faults: covered %" PRIu64 " of %zu",
                acc.covered, written);
        h_log("faults: %zu finals over %zu connections (%zu backfill) cover %" PRIu64
              " samples exactly once",
              acc.finals, acc.connections, acc.backfill_connections, acc.covered);
        cJSON_Delete(recs);
        h_run_free(&run);
        free(pcm);
    }
    /* 3: 1.03 s, so the last chunk (30 ms) is below the 50 ms minimum frame: it goes out padded
     * with silence, and the finals still end exactly at the last sample written. (The
     * accounting above cannot judge this run: the server's checksums include the padding.) */
    {
        const size_t total = RATE + RATE * 30u / 1000u;
        int16_t *pcm = h_pattern_alloc(13, total);
        h_run run;
        setup(&run, "padded", srv.port);
        run.sc.api_key = KEY;
        h_run_open(&run, cl);
        H_CHECK(steno_session_write(run.s, pcm, total) == STENO_OK, "write");
        h_run_close(&run, 15000 * h_slow());
        H_CHECK(h_server_wait_idle(&srv, 10000), "server connections still open");
        cJSON *recs = h_server_records(&srv);
        no_rate_closes(recs);
        /* the server got 1.05 s: the 30 ms tail and 20 ms of padding */
        char *txt = cJSON_PrintUnformatted(recs);
        H_CHECK(strstr(txt, "\"audio_samples\":16800"), "no padded connection: %s", txt);
        free(txt);
        cJSON_Delete(recs);
        uint64_t covered = 0;
        int closed = 0;
        pthread_mutex_lock(&run.col.mu);
        for (size_t i = 0; i < run.col.n; i++) {
            const h_ev *e = &run.col.ev[i];
            H_CHECK(e->type != STENO_EVENT_RECONNECTING && e->type != STENO_EVENT_FAILED,
                    "unexpected %s", steno_event_type_name(e->type));
            if (e->type == STENO_EVENT_CLOSED) {
                closed++;
                H_CHECK(e->status == STENO_OK && e->unfinalized == 0,
                        "CLOSED %s with %" PRIu64 " unfinalized", steno_status_name(e->status),
                        e->unfinalized);
            }
            if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final ||
                e->end_sample == e->first_sample)
                continue;
            H_CHECK(e->first_sample == covered, "final at %" PRIu64 ", expected %" PRIu64,
                    e->first_sample, covered);
            covered = e->end_sample;
        }
        pthread_mutex_unlock(&run.col.mu);
        H_CHECK(closed == 1 && covered == total, "finals cover %" PRIu64 " of %zu samples", covered,
                total);
        h_log("padded: finals end at sample %" PRIu64 ", the last one written", covered);
        h_run_free(&run);
        free(pcm);
    }
    /* 4: live configuration. At ~2 s a change to turn-silence settings goes out as one
     * UpdateConfiguration on the open connection; at ~4 s a change of model, which only a new
     * connection can carry, reconnects seamlessly. */
    {
        const size_t total = 6u * RATE;
        int16_t *pcm = h_pattern_alloc(14, total);
        h_run run;
        setup(&run, "configure", srv.port);
        run.sc.api_key = KEY;
        const steno_option start[] = {{"max_turn_silence", "900"}};
        run.sc.options = start;
        run.sc.n_options = 1;
        h_run_open(&run, cl);
        h_run_stream(&run, pcm, total, 1.0);
        H_CHECK(h_producer_wait(&run.prod, 2u * RATE, 20000), "producer stalled");
        const steno_option live[] = {{"max_turn_silence", "1200"}, {"min_turn_silence", "300"}};
        steno_status rc = steno_session_configure(run.s, live, 2);
        H_CHECK(rc == STENO_OK, "configure: %s %s", steno_status_name(rc),
                steno_session_errmsg(run.s));
        H_CHECK(h_producer_wait(&run.prod, 4u * RATE, 20000), "producer stalled");
        H_CHECK(h_count(&run.col, STENO_EVENT_RECONNECTING) == 0,
                "a live-configurable change reconnected");
        const steno_option model[] = {{"speech_model", "universal-streaming-multilingual"}};
        rc = steno_session_configure(run.s, model, 1);
        H_CHECK(rc == STENO_OK, "configure: %s %s", steno_status_name(rc),
                steno_session_errmsg(run.s));
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
                "the model change did not reconnect");
        size_t written = h_producer_join(&run.prod);
        h_run_close(&run, 15000 * h_slow());
        H_CHECK(h_server_wait_idle(&srv, 10000), "server connections still open");
        steno_session_stats st;
        steno_session_stats_get(run.s, &st);
        H_CHECK(st.configures == 2, "stats.configures = %u", st.configures);
        cJSON *recs = h_server_records(&srv);
        no_rate_closes(recs);
        /* the first connection got exactly the one UpdateConfiguration, with every live
         * setting; the second was set up with all of them in its query */
        const cJSON *conns = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
        int with_update = 0, multilingual = 0;
        cJSON_ArrayForEach(r, conns)
        {
            char *upd =
                cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "config_updates"));
            if (upd && !strcmp(upd, "[{\"type\":\"UpdateConfiguration\",\"max_turn_silence\":1200,"
                                    "\"min_turn_silence\":300}]"))
                with_update++;
            free(upd);
            char *txt = cJSON_PrintUnformatted(r);
            if (strstr(txt, "speech_model=universal-streaming-multilingual") &&
                strstr(txt, "max_turn_silence=1200") && strstr(txt, "min_turn_silence=300"))
                multilingual++;
            free(txt);
        }
        H_CHECK(with_update == 1 && multilingual == 1,
                "%d connections got the UpdateConfiguration, %d were set up with the new model",
                with_update, multilingual);
        h_accounting acc;
        h_run_check_accounting(&run, pcm, written, recs, &acc);
        H_CHECK(acc.dropped == 0 && acc.covered == written && acc.connections == 2,
                "configure: covered %" PRIu64 " of %zu over %zu connections", acc.covered, written,
                acc.connections);
        h_log("configure: one UpdateConfiguration live, one seamless reconnect; %zu finals "
              "cover %" PRIu64 " samples exactly once",
              acc.finals, acc.covered);
        cJSON_Delete(recs);
        h_run_free(&run);
        free(pcm);
    }
    steno_client_destroy(cl);
    H_CHECK(atomic_load(&lines) > 0 && atomic_load(&leaks) == 0,
            "%d of %d log lines hold the credential", atomic_load(&leaks), atomic_load(&lines));
    return h_pass();
}
