/* test_assemblyai_zero_loss: the AssemblyAI v3 adapter against steno-server --protocol assemblyai
 * (null engine): every sample finalized exactly once at real-time pacing, cleanly closed with
 * ForceEndpoint then Terminate; then the same through steno-chaos with a TCP reset and a server
 * drop mid-stream, with no loss, no duplicate, one timeline and no 3007 (rate) close. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define KEY "aai-test-key"

/*
 * The AssemblyAI personality names a connection only in its Begin message (no response
 * header), which the SDK reports as a METADATA event after CONNECTED/RECONNECTED. The
 * accounting matches connections to the server's records by request id, so this callback
 * gives the newest connection event without one the id from the Begin that follows it.
 */
static void on_event(void *user, const steno_event *ev)
{
    h_collector *c = user;
    if (ev->type == STENO_EVENT_METADATA && ev->u.metadata.request_id &&
        ev->u.metadata.request_id[0]) {
        pthread_mutex_lock(&c->mu);
        for (size_t i = c->n; i-- > 0;) {
            h_ev *e = &c->ev[i];
            if (e->type != STENO_EVENT_CONNECTED && e->type != STENO_EVENT_RECONNECTED)
                continue;
            if (!e->request_id || !e->request_id[0]) {
                free(e->request_id);
                e->request_id = strdup(ev->u.metadata.request_id);
            }
            break;
        }
        pthread_mutex_unlock(&c->mu);
    }
    h_on_event(user, ev);
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
    r->sc.on_event = on_event;
}

int main(void)
{
    h_init("assemblyai_zero_loss");
    h_server srv, chaos;
    const char *args[] = {"--protocol", "assemblyai", "--api-key", KEY, NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client *cl = h_client_open(NULL);

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
    steno_client_destroy(cl);
    return h_pass();
}
