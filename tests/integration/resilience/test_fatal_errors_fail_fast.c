/* test_fatal_errors_fail_fast: 401, 403, 400 and 404 end the session after exactly one attempt. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Invariant 7: a fatal handshake answer (credentials rejected, request
 * invalid, no such endpoint) fails the session at once with a FAILED event
 * that names the cause and the HTTP status; it is never retried. Each case
 * gets a fresh session against a server that requires an API key: a wrong
 * key (401), a fault-injected 403, an option value the SDK passes through
 * but the server rejects (model=nova-99: 400), a wrong path (404). The
 * server's connection records must show exactly one handshake per session
 * (matched by the request id of the FAILED event), the session's stats one
 * attempt, and no second CONNECTING may follow within 2.5 retry periods.
 */

typedef struct fatal_case {
    const char *name;
    const char *key;   /* credential the session sends */
    const char *path;  /* URL path */
    const char *model; /* the model option, NULL for none */
    int reject_403;    /* 1: a one-shot 403 reject fault answers it (so it runs alone, first) */
    int want_http;
    steno_status want_status;
} fatal_case;

static bool pred_second_attempt(h_collector *c, void *arg)
{
    (void)arg;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->ev[i].type == STENO_EVENT_CONNECTING;
    return n >= 2;
}

typedef struct fatal_run {
    const fatal_case *fc;
    h_run run;
} fatal_run;

static void start_case(steno_client *cl, const h_server *srv, fatal_run *r)
{
    const fatal_case *fc = r->fc;
    h_run_init(&r->run, fc->name, srv->port);
    snprintf(r->run.url, sizeof r->run.url, "ws://127.0.0.1:%d%s", srv->port, fc->path);
    r->run.sc.allow_no_auth = 0;
    r->run.sc.api_key = fc->key;
    steno_option opt = {"model", fc->model};
    if (fc->model) {
        r->run.sc.options = &opt;
        r->run.sc.n_options = 1;
    }
    h_run_open(&r->run, cl);
    int16_t pcm[1600];
    h_pattern(1, 0, 1600, pcm);
    steno_session_write(r->run.s, pcm, 1600);
}

static void await_failed(fatal_run *r)
{
    H_CHECK(h_wait_type(&r->run.col, STENO_EVENT_FAILED, 1, 10000 * h_slow()),
            "%s: no FAILED event within 10 s", r->fc->name);
}

static void verify_case(const cJSON *recs, fatal_run *r)
{
    const fatal_case *fc = r->fc;
    steno_session *s = r->run.s;
    steno_session_stats st;
    H_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    H_CHECK(st.attempts == 1, "%s: stats.attempts = %u, want 1", fc->name, st.attempts);
    H_CHECK(st.connects == 0, "%s: stats.connects = %u", fc->name, st.connects);
    H_CHECK(steno_session_state_get(s) == STENO_STATE_FAILED, "%s: state %s", fc->name,
            steno_session_state_name(steno_session_state_get(s)));

    h_collector *col = &r->run.col;
    pthread_mutex_lock(&col->mu);
    H_CHECK(h_find(col, STENO_EVENT_CONNECTING, 1) == (size_t)-1 &&
                col->ev[0].type == STENO_EVENT_CONNECTING,
            "%s: more than one connection attempt after a fatal %d", fc->name, fc->want_http);
    size_t fi = h_find(col, STENO_EVENT_FAILED, 0);
    const h_ev *f = &col->ev[fi];
    H_CHECK(f->status == fc->want_status, "%s: FAILED with %s, want %s", fc->name,
            steno_status_name(f->status), steno_status_name(fc->want_status));
    H_CHECK(f->http_status == fc->want_http, "%s: FAILED http_status %d, want %d", fc->name,
            f->http_status, fc->want_http);
    H_CHECK(f->message && *f->message, "%s: FAILED without a message", fc->name);
    H_CHECK(fi == col->n - 1, "%s: events after the terminal FAILED", fc->name);
    H_CHECK(h_find(col, STENO_EVENT_RECONNECTING, 0) == (size_t)-1,
            "%s: a RECONNECTING event announced a retry after a fatal %d", fc->name, fc->want_http);
    /* the server's record of that one handshake (matched by the request id it answered) */
    const cJSON *rec = h_record_by_rid(recs, f->request_id);
    H_CHECK(rec, "%s: no server record with the FAILED event's request id '%s'", fc->name,
            f->request_id);
    H_CHECK((int)h_jnum(rec, "handshake_status", 0) == fc->want_http,
            "%s: server record says handshake_status %d", fc->name,
            (int)h_jnum(rec, "handshake_status", 0));
    pthread_mutex_unlock(&col->mu);

    steno_status crc = steno_session_close(s, 1000);
    H_CHECK(crc == fc->want_status, "%s: close returned %s, want the failure status %s", fc->name,
            steno_status_name(crc), steno_status_name(fc->want_status));
    h_run_free(&r->run);
    h_log("%s: FAILED after exactly one attempt", fc->name);
}

int main(void)
{
    h_init("fatal_errors_fail_fast");
    h_server srv;
    const char *args[] = {"--api-key", "right-key", NULL};
    h_server_start(&srv, args);
    steno_client *cl = h_client_open(NULL);

    static const fatal_case cases[] = {
        {"403-forbidden", "right-key", "/v1/listen", NULL, 1, 403, STENO_ERR_AUTH},
        {"401-wrong-key", "wrong-key", "/v1/listen", NULL, 0, 401, STENO_ERR_AUTH},
        {"400-bad-model", "right-key", "/v1/listen", "nova-99", 0, 400, STENO_ERR_REQUEST},
        {"404-no-such-path", "right-key", "/v1/nowhere", NULL, 0, 404, STENO_ERR_REQUEST},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    fatal_run runs[N];
    memset(runs, 0, sizeof runs);
    /* the 403 comes from a one-shot reject fault: that session runs alone */
    H_CHECK(cases[0].reject_403, "the fault-injected case must come first");
    h_fault(&srv, "{\"reject_next\":1,\"status\":403,\"error\":\"key lacks scope\"}");
    runs[0].fc = &cases[0];
    start_case(cl, &srv, &runs[0]);
    await_failed(&runs[0]);
    for (size_t i = 1; i < N; i++) {
        runs[i].fc = &cases[i];
        start_case(cl, &srv, &runs[i]);
    }
    for (size_t i = 1; i < N; i++)
        await_failed(&runs[i]);
    /* any retry would come within retry.cap_ms (1 s) of its failure: allow 2.5 times that */
    uint64_t quiet_until = h_now_ms() + 2500;
    for (size_t i = 0; i < N; i++) {
        uint64_t now = h_now_ms();
        /* the session is terminal already: wait out the window regardless */
        bool again = h_wait(&runs[i].run.col, pred_second_attempt, NULL,
                            now < quiet_until ? (uint32_t)(quiet_until - now) : 0);
        H_CHECK(!again, "%s: a second connection attempt followed a fatal %d", cases[i].name,
                cases[i].want_http);
    }
    cJSON *recs = h_server_records(&srv);
    int total = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(recs, "connections"));
    H_CHECK(total == N, "the server recorded %d handshakes for %d fatal sessions", total, N);
    for (size_t i = 0; i < N; i++)
        verify_case(recs, &runs[i]);
    cJSON_Delete(recs);

    steno_client_destroy(cl);
    return h_pass();
}
