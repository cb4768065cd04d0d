/* test_config_survives_reconnects: every connection carries the session's configuration, changes
 * included. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Invariant 6. A session with a full set of provider options streams through
 * faults (proxy reset, server close 1011); midway the application changes
 * options with steno_session_configure(). The server's connection records
 * must show identical parameters (parsed params and the raw query) on every
 * connection before the change, and the changed set on the connection the
 * change's seamless reconnect opened and on every connection after it, with
 * no audio lost. The token callback is asked before every attempt: it
 * alternates "Bearer <key>" and the bare key (sent as "Token <key>"), and
 * the server's records show the two schemes alternating, so every
 * connection used the credential fetched for it.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define KEY "cfg-test-key"

static atomic_uint token_calls;

static steno_status token_cb(void *user, char *buf, size_t cap)
{
    (void)user;
    unsigned n = atomic_fetch_add(&token_calls, 1) + 1;
    snprintf(buf, cap, "%s%s", n % 2 ? "Bearer " : "", KEY);
    return STENO_OK;
}

static void fault(const h_server *srv, const h_server *chaos, int k)
{
    if (k % 2 == 0)
        h_chaos_reset_all(chaos);
    else
        h_fault(srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\"}");
}

static void expect_param(const cJSON *params, const char *key, const char *want_json)
{
    char *got = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(params, key));
    H_CHECK(got && strcmp(got, want_json) == 0, "after configure: %s = %s, want %s", key,
            got ? got : "(absent)", want_json);
    free(got);
}

int main(void)
{
    h_init("config_survives_reconnects");
    h_server srv, chaos;
    const char *args[] = {"--api-key", KEY, NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    const size_t total = 16u * RATE;
    int16_t *pcm = h_pattern_alloc(9, total);

    steno_client *cl = h_client_open(NULL);
    h_run run;
    h_run_init(&run, "session", chaos.port);
    run.sc.allow_no_auth = 0;
    run.sc.token_cb = token_cb;
    const steno_option opts[] = {
        {"model", "nova-3"},          {"language", "en-US"},     {"interim_results", "true"},
        {"punctuate", "true"},        {"smart_format", "false"}, {"endpointing", "300"},
        {"utterance_end_ms", "1000"}, {"vad_events", "true"},    {"keyterm", "steno"},
        {"keyterm", "reconnect"},     {"tag", "resilience"},
    };
    run.sc.options = opts;
    run.sc.n_options = sizeof opts / sizeof opts[0];
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);

    for (int k = 0; k < 5; k++) {
        uint64_t mark = (uint64_t)(k + 1) * 5u * RATE / 2u;
        H_CHECK(h_producer_wait(&run.prod, (size_t)mark + RATE / 3, 30000), "producer stalled");
        H_CHECK(h_wait_acked(&run.col, mark - RATE, 20000 * h_slow()), "no finals");
        if (k == 2) {
            const steno_option change[] = {
                {"keyterm", "changed"}, {"punctuate", "false"}, {"endpointing", NULL}};
            steno_status rc = steno_session_configure(run.s, change, 3);
            H_CHECK(rc == STENO_OK, "configure: %s %s", steno_status_name(rc),
                    steno_session_errmsg(run.s));
            h_log("configured: keyterm=changed, punctuate=false, endpointing removed");
        } else {
            fault(&srv, &chaos, k);
            h_log("fault: %s", k % 2 == 0 ? "proxy reset" : "server close 1011");
        }
        /* every step, the configuration change included, ends with one reconnect */
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_RECONNECTED, (size_t)k + 1, 20000 * h_slow()) &&
                    !h_ended(&run.col),
                "no RECONNECTED after step %d", k);
    }
    size_t written = h_producer_join(&run.prod);
    h_run_close(&run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    H_CHECK(st.configures == 1, "stats.configures = %u", st.configures);
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&run, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0, "audio dropped");

    /* the connection the configuration change opened: after the planned RECONNECTING */
    pthread_mutex_lock(&run.col.mu);
    const char *switch_rid = NULL;
    bool planned = false;
    for (size_t i = 0; i < run.col.n; i++) {
        if (run.col.ev[i].type == STENO_EVENT_RECONNECTING)
            planned = run.col.ev[i].cause == STENO_OK;
        if (run.col.ev[i].type == STENO_EVENT_RECONNECTED && planned && !switch_rid)
            switch_rid = run.col.ev[i].request_id;
    }
    H_CHECK(switch_rid, "no planned reconnect for the configuration change");

    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    /* [0]: the connections before the change; [1]: the one it opened and those after it */
    const cJSON *params0[2] = {NULL, NULL};
    const char *query0[2] = {NULL, NULL};
    int count[2] = {0, 0};
    static const char *const first_of[2] = {"the first's", "the changed one"};
    int side = 0, i = 0;
    unsigned calls = atomic_load(&token_calls);
    H_CHECK(calls == st.attempts, "the token callback ran %u times for %u attempts", calls,
            st.attempts);
    H_CHECK((int)calls == cJSON_GetArraySize(arr),
            "the token callback ran %u times, the server saw %d handshakes", calls,
            cJSON_GetArraySize(arr));
    cJSON_ArrayForEach(r, arr)
    {
        i++;
        const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(r, "headers");
        const char *auth = h_jstr(hdrs, "authorization");
        const char *want_auth = i % 2 ? "Bearer <redacted>" : "Token <redacted>";
        H_CHECK(strcmp(auth, want_auth) == 0, "handshake %d: authorization '%s', want '%s'", i,
                auth, want_auth);
        H_CHECK((int)h_jnum(r, "handshake_status", 0) == 101, "handshake %d refused", i);
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(r, "params");
        const char *q = h_jstr(r, "query");
        if (strcmp(h_jstr(r, "request_id"), switch_rid) == 0)
            side = 1;
        if (!params0[side]) {
            params0[side] = params;
            query0[side] = q;
        }
        H_CHECK(cJSON_Compare(params, params0[side], 1) && strcmp(q, query0[side]) == 0,
                "connection %d's configuration differs from %s:\n  %s\n  %s", i, first_of[side], q,
                query0[side]);
        count[side]++;
    }
    pthread_mutex_unlock(&run.col.mu);
    H_CHECK(count[0] >= 3 && count[1] >= 3, "%d connections before the change, %d after", count[0],
            count[1]);
    h_log("before the change (%d connections): %s", count[0], query0[0]);
    h_log("after the change (%d connections): %s", count[1], query0[1]);
    const cJSON *p0 = params0[0], *p1 = params0[1];
    /* the original options, on the server's reading */
    char *p0s = cJSON_PrintUnformatted(p0);
    H_CHECK(strstr(p0s, "\"model\":\"nova-3\"") && strstr(p0s, "\"punctuate\":true") &&
                strstr(p0s, "\"endpointing\":300") &&
                strstr(p0s, "\"keyterm\":[\"steno\",\"reconnect\"]") &&
                strstr(p0s, "\"utterance_end_ms\":1000") && strstr(p0s, "\"vad_events\":true"),
            "the server read the options as %s", p0s);
    free(p0s);
    /* the change, and nothing else */
    expect_param(p1, "keyterm", "[\"changed\"]");
    expect_param(p1, "punctuate", "false");
    expect_param(p1, "endpointing", "10"); /* the server's default once the key is gone */
    const char *same[] = {
        "model",      "language", "interim_results", "smart_format", "utterance_end_ms",
        "vad_events", "encoding", "sample_rate",     "channels",     "other"};
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++)
        H_CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(p0, same[k]),
                              cJSON_GetObjectItemCaseSensitive(p1, same[k]), 1),
                "'%s' changed although configure did not name it", same[k]);
    cJSON_Delete(recs);

    h_run_free(&run);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
