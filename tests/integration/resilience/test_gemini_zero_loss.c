/* test_gemini_zero_loss: the Gemini Live adapter against steno-server --protocol gemini (null
 * engine, --max-rate 1.0): every sample finalized exactly once at real-time pacing and cleanly
 * closed (activityEnd, its turn, then audioStreamEnd); the same through steno-chaos with a TCP
 * reset and a server drop mid-stream; with the model changed mid-stream (a planned reconnect,
 * as every setting is in the setup); and across goAway-announced session limits every few
 * seconds, where each new live connection resumes the session with the latest handle and no
 * backfill connection does; and a wrong key fails the session at once (close 1007).
 *
 * The API gives no times: a final here is one turn, whose transcript is the null engine's spans
 * of every sample sent before the activityEnd it answers, concatenated ("span A-B fnv1a64=H span
 * B-C ..."), and which carries no words. Exactly once is still provable, and asserted: the spans
 * of a final are contiguous, as long as the samples the SDK mapped it to, their checksums match
 * the audio written there, and the finals tile the stream. (What the service itself does with
 * audio sent between an activityEnd and the turnComplete that answers it is unconfirmed; the
 * local server puts it in the next activity, so this test proves the engine's and the adapter's
 * part of the guarantee, not the service's.)
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define KEY "gemini-test-key"
#define PATH "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

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

static steno_status token(void *user, char *buf, size_t cap)
{
    (void)user;
    snprintf(buf, cap, "Token %s", KEY); /* an ephemeral token: sent as access_token= */
    return STENO_OK;
}

static uint64_t fnv(const int16_t *pcm, uint64_t from, uint64_t n)
{
    const uint8_t *p = (const uint8_t *)(pcm + from);
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n * 2; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Checks one final's spans against the audio the SDK mapped it to; returns its sample count. */
static uint64_t check_final(const h_ev *e, const int16_t *pcm)
{
    uint64_t first = 0, prev_b = 0, total = 0;
    int n = 0;
    const char *p = e->text;
    for (;;) {
        uint64_t a, b, want;
        int used = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        H_CHECK(sscanf(p, "span %" SCNu64 "-%" SCNu64 " fnv1a64=%" SCNx64 "%n", &a, &b, &want,
                       &used) == 3,
                "final text is not null-engine spans: '%s'", e->text);
        p += used;
        if (n == 0)
            first = a;
        H_CHECK(n == 0 || a == prev_b, "spans of one final are not contiguous: '%s'", e->text);
        H_CHECK(b > a, "empty span in '%s'", e->text);
        uint64_t at = e->first_sample + (a - first);
        H_CHECK(fnv(pcm, at, b - a) == want,
                "span %" PRIu64 "-%" PRIu64 " mapped to sample %" PRIu64
                " has another checksum: the SDK put it on the wrong part of the timeline",
                a, b, at);
        prev_b = b;
        total += b - a;
        n++;
    }
    H_CHECK(total == e->end_sample - e->first_sample,
            "final [%" PRIu64 ", %" PRIu64 ") carries spans of %" PRIu64 " samples: '%s'",
            e->first_sample, e->end_sample, total, e->text);
    return total;
}

/* Invariants 1-3 for a session whose finals are whole turns: they tile [0, written) in order
 * (live and backfill lanes each in order), each exactly the audio its spans name, times agree
 * with samples, and the session closed cleanly with nothing unfinalized. */
static size_t check_run(h_run *run, const int16_t *pcm, uint64_t written)
{
    uint8_t *cover = calloc(written, 1);
    H_CHECK(cover, "out of memory");
    uint64_t covered = 0, prev_live = 0, prev_bf = 0;
    size_t finals = 0;
    int closed = 0;
    pthread_mutex_lock(&run->col.mu);
    for (size_t i = 0; i < run->col.n; i++) {
        const h_ev *e = &run->col.ev[i];
        H_CHECK(e->type != STENO_EVENT_FAILED && e->type != STENO_EVENT_AUDIO_DROPPED,
                "unexpected %s", steno_event_type_name(e->type));
        if (e->type == STENO_EVENT_CLOSED) {
            closed++;
            H_CHECK(e->status == STENO_OK && e->unfinalized == 0,
                    "CLOSED %s with %" PRIu64 " unfinalized", steno_status_name(e->status),
                    e->unfinalized);
        }
        if (e->type != STENO_EVENT_TRANSCRIPT)
            continue;
        H_CHECK(e->is_final, "an interim result: the adapter sends none");
        if (e->end_sample == e->first_sample)
            continue;
        H_CHECK(e->end_sample <= written, "final beyond the written audio");
        H_CHECK(fabs(e->start - (double)e->first_sample / RATE) < 0.0011 &&
                    fabs(e->end - (double)e->end_sample / RATE) < 0.0011,
                "final %.4f-%.4f s disagrees with its samples", e->start, e->end);
        uint64_t *prev = e->from_backfill ? &prev_bf : &prev_live;
        H_CHECK(e->first_sample >= *prev, "final at %" PRIu64 " precedes the previous end %" PRIu64,
                e->first_sample, *prev);
        *prev = e->end_sample;
        check_final(e, pcm);
        for (uint64_t k = e->first_sample; k < e->end_sample; k++) {
            H_CHECK(!cover[k], "sample %" PRIu64 " covered by two finals", k);
            cover[k] = 1;
        }
        covered += e->end_sample - e->first_sample;
        finals++;
    }
    pthread_mutex_unlock(&run->col.mu);
    for (uint64_t k = 0; k < written; k++)
        H_CHECK(cover[k], "sample %" PRIu64 " is covered by no final", k);
    H_CHECK(closed == 1 && covered == written, "finals cover %" PRIu64 " of %" PRIu64, covered,
            written);
    free(cover);
    return finals;
}

static void no_rate_closes(const cJSON *recs)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    cJSON_ArrayForEach(r, arr)
    {
        H_CHECK(strcmp(h_jstr(r, "close_cause"), "rate") != 0 &&
                    strcmp(h_jstr(r, "close_cause"), "bad_text") != 0,
                "connection %d closed with %d: %s", (int)h_jnum(r, "id", 0),
                (int)h_jnum(r, "close_code", 0), h_jstr(r, "close_reason"));
    }
}

static void setup(h_run *r, const char *name, int port)
{
    h_run_init(r, name, port);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d%s", port, PATH);
    r->sc.url = r->url;
    r->sc.provider = "gemini";
    r->sc.allow_no_auth = 0;
}

/* One stream of `seconds` at real time to `port`; faults() runs while it streams. */
static void stream(h_run *run, steno_client *cl, h_server *srv, int port, const char *name,
                   uint32_t seed, unsigned seconds, int use_token, void (*faults)(h_run *, void *),
                   void *arg)
{
    const size_t total = (size_t)seconds * RATE;
    int16_t *pcm = h_pattern_alloc(seed, total);
    setup(run, name, port);
    if (use_token)
        run->sc.token_cb = token;
    else
        run->sc.api_key = KEY;
    h_run_open(run, cl);
    h_run_stream(run, pcm, total, 1.0);
    if (faults)
        faults(run, arg);
    size_t written = h_producer_join(&run->prod);
    h_run_close(run, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(srv, 20000), "server connections still open");
    size_t finals = check_run(run, pcm, written);
    h_log("%s: %zu turns cover %zu samples exactly once", name, finals, written);
    free(pcm);
}

struct fault_ctx {
    h_server *srv, *chaos;
};

static void reset_and_drop(h_run *run, void *arg)
{
    struct fault_ctx *f = arg;
    H_CHECK(h_producer_wait(&run->prod, 3u * RATE, 20000), "producer stalled");
    h_chaos_reset_all(f->chaos);
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
            "no RECONNECTED after the reset");
    H_CHECK(h_producer_wait(&run->prod, 8u * RATE, 20000), "producer stalled");
    h_fault(f->srv, "{\"action\":\"drop\"}");
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 2, 20000 * h_slow()),
            "no RECONNECTED after the drop");
}

/* Every setting is in the setup message: a change mid-stream is a planned reconnect. */
static void change_model(h_run *run, void *arg)
{
    (void)arg;
    H_CHECK(h_producer_wait(&run->prod, 3u * RATE, 20000), "producer stalled");
    steno_option o = {"model", "gemini-live-2.5-flash-preview"};
    H_CHECK(steno_session_configure(run->s, &o, 1) == STENO_OK, "configure: %s",
            steno_session_errmsg(run->s));
    H_CHECK(h_wait_type(&run->col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
            "the model change did not reconnect");
}

int main(void)
{
    h_init("gemini_zero_loss");
    h_server srv, chaos, lim;
    const char *args[] = {"--protocol", "gemini",     "--api-key", KEY, "--max-rate",
                          "1.0",        "--burst-ms", "1500",      NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.log_fn = leak_log;
    cc.log_level = STENO_LOG_DEBUG;
    steno_client *cl = NULL;
    char err[256] = "";
    H_CHECK(steno_client_open(&cc, &cl, err, sizeof err) == STENO_OK, "client: %s", err);

    /* 1: 6 s at real time, straight to the server, key in x-goog-api-key */
    {
        h_run run;
        stream(&run, cl, &srv, srv.port, "clean", 21, 6, 0, NULL, NULL);
        cJSON *recs = h_server_records(&srv);
        no_rate_closes(recs);
        const cJSON *r =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(recs, "connections"), 0);
        H_CHECK(h_jnum(r, "activity_ends", 0) >= 2 && h_jnum(r, "audio_stream_ends", 0) == 1 &&
                    h_jnum(r, "close_code", 0) == 1000,
                "clean close: %d activityEnd, %d audioStreamEnd, close %d",
                (int)h_jnum(r, "activity_ends", 0), (int)h_jnum(r, "audio_stream_ends", 0),
                (int)h_jnum(r, "close_code", 0));
        H_CHECK(h_count(&run.col, STENO_EVENT_RECONNECTED) == 0, "a reconnect in the clean run");
        cJSON_Delete(recs);
        h_run_free(&run);
    }

    /* 2: 14 s through the proxy, an ephemeral token in the query: a TCP reset at ~3 s and a
     * server drop at ~8 s */
    {
        h_run run;
        struct fault_ctx f = {&srv, &chaos};
        stream(&run, cl, &srv, chaos.port, "faults", 22, 14, 1, reset_and_drop, &f);
        cJSON *recs = h_server_records(&srv);
        no_rate_closes(recs);
        cJSON_Delete(recs);
        h_run_free(&run);
    }

    /* 3: 8 s with the model changed at ~3 s: the next connection's setup carries it */
    {
        h_run run;
        int before = h_server_record_count(&srv);
        stream(&run, cl, &srv, srv.port, "configure", 24, 8, 0, change_model, NULL);
        cJSON *recs = h_server_records(&srv);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
        const cJSON *a = cJSON_GetArrayItem(arr, before), *b = cJSON_GetArrayItem(arr, before + 1);
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "params");
        const cJSON *pb = cJSON_GetObjectItemCaseSensitive(b, "params");
        H_CHECK(!strcmp(h_jstr(pa, "model"), "gemini-3.5-transcribe-live") &&
                    !strcmp(h_jstr(pb, "model"), "gemini-live-2.5-flash-preview"),
                "models %s then %s", h_jstr(pa, "model"), h_jstr(pb, "model"));
        no_rate_closes(recs);
        cJSON_Delete(recs);
        h_run_free(&run);
    }

    /* 4: 14 s against a server that ends every connection 4 s after it opened, announcing it
     * with goAway 2 s before: the SDK moves to a new connection at the goAway, resuming the
     * session with the newest handle */
    {
        const char *largs[] = {"--protocol",        "gemini", "--api-key", KEY,
                               "--session-limit-s", "4",      NULL};
        h_server_start(&lim, largs);
        h_run run;
        stream(&run, cl, &lim, lim.port, "go_away", 23, 14, 0, NULL, NULL);
        cJSON *recs = h_server_records(&lim);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
        int live = 0, resumed = 0, go_aways = 0, limit_closes = 0;
        cJSON_ArrayForEach(r, arr)
        {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "params");
            int is_live = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "session_resumption"));
            const char *from = h_jstr(p, "resumed_from");
            H_CHECK(is_live || !from[0], "a backfill connection resumed the live session");
            live += is_live;
            resumed += from[0] != 0;
            go_aways += (int)h_jnum(r, "go_away_sent", 0);
            limit_closes += strcmp(h_jstr(r, "close_cause"), "session_limit") == 0;
        }
        H_CHECK(go_aways >= 3 && live >= 3 && resumed == live - 1,
                "%d goAway, %d live connections, %d of them resumed", go_aways, live, resumed);
        H_CHECK(limit_closes == 0, "%d connections outlived their goAway", limit_closes);
        h_log("go_away: %d goAway, %d live connections, each after the first resumed the session",
              go_aways, live);
        cJSON_Delete(recs);
        h_run_free(&run);
        h_server_stop(&lim);
    }
    /* 5: a wrong key is refused over the open socket (close 1007 "API key not valid"): the
     * session fails at once with STENO_ERR_AUTH, after one attempt */
    {
        h_run run;
        setup(&run, "wrong_key", srv.port);
        run.sc.api_key = "not-the-key";
        h_run_open(&run, cl);
        int16_t pcm[1600] = {0};
        steno_session_write(run.s, pcm, 1600);
        H_CHECK(h_wait_type(&run.col, STENO_EVENT_FAILED, 1, 10000 * h_slow()), "no FAILED");
        steno_session_stats st;
        steno_session_stats_get(run.s, &st);
        pthread_mutex_lock(&run.col.mu);
        const h_ev *f = &run.col.ev[h_find(&run.col, STENO_EVENT_FAILED, 0)];
        H_CHECK(f->status == STENO_ERR_AUTH && f->close_code == 1007, "FAILED %s, close %d: %s",
                steno_status_name(f->status), f->close_code, f->message);
        pthread_mutex_unlock(&run.col.mu);
        H_CHECK(st.attempts == 1, "%u attempts for a wrong key", st.attempts);
        h_log("wrong_key: FAILED with STENO_ERR_AUTH after one attempt");
        h_run_free(&run);
    }
    steno_client_destroy(cl);
    H_CHECK(atomic_load(&lines) > 0 && atomic_load(&leaks) == 0,
            "%d of %d log lines hold the credential", atomic_load(&leaks), atomic_load(&lines));
    return h_pass();
}
