/* test_conformance: one resilience suite that every provider passes against its own
 * personality of steno-server, at its own real pace. Usage: test_conformance PROVIDER CASE.
 *
 *   zero_loss      a compound schedule (TCP reset, half-open stall, reset, network blackhole)
 *                  through steno-chaos at the provider's pace with backfill: nothing dropped,
 *                  every written sample received and final exactly once on one timeline, no
 *                  connection closed for its pace
 *   fatal          a wrong key fails the session at once: one attempt, FAILED with
 *                  STENO_ERR_AUTH and the HTTP status (or, where the protocol refuses over the
 *                  open socket, the close code: Gemini's 1007), no second CONNECTING
 *   retry_after    a 429 with Retry-After: 2 on the first handshake: the next handshake no
 *                  sooner than 2 s later (server clock) and within 1 s after that
 *   half_open      the server stops reading and answering mid-stream (TCP stays up): the session
 *                  replaces the connection within the ping interval + pong timeout + 1 s, and
 *                  loses nothing
 *   config         a setting the protocol fixes at setup, changed mid-stream: a planned
 *                  reconnect whose handshake carries it; and, where the protocol can, a setting
 *                  changed on the open connection with no reconnect; nothing lost
 *   hostile        the server misbehaves mid-stream: truncated and mistyped messages, a
 *                  transcript that is not UTF-8, a binary frame, finals at negative times, for
 *                  audio final long ago and for audio never sent, a 1 MiB message, a connection
 *                  that upgrades and never speaks, and one that trickles a byte a second: each
 *                  is counted or the connection replaced, no hostile text reaches the app, the
 *                  session never fails, and every sample is still final exactly once
 *   speech         real speech (the LibriVox recordings of pocketsphinx-testdata, resampled to
 *                  the provider's rate) through the pocketsphinx engine, fault-free and, at
 *                  once, through a proxy reset and a 503-refused reconnect, each right after a
 *                  final: the faulted transcript's word error rate within 1 point of the
 *                  fault-free one's, plus one word per reconnect (see "speech" below); skipped
 *                  without pocketsphinx or the recordings
 *   session_limit  the server ends every connection after 4 s (the vendor's session limit,
 *                  shortened; Deepgram, which documents none, closes with 1011): the session
 *                  reconnects each time and loses nothing
 *
 * The null engine names each final's exact samples and checksum, so "exactly once" is proven
 * from the server's records, not trusted (common/accounting.c, common/compound.c).
 *
 * Gemini Live names no connection: the client never learns an id for its server record. Its
 * row binds each connection to a record by content instead (h_accounting_nameless_conns: the
 * record whose audio is exactly the written stream from where that connection must begin),
 * and every check after that is the one the other rows get; accounting.h says what that
 * binding proves less than an id would. Its finals are whole turns with no times (so no
 * bad_times in hostile), and it has no setting that changes on the open connection.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* the session's rate: the provider's row may ask for another (see conf_provider.rate) */
static uint32_t RATE = 16000u;
#define CHUNK_FRAMES (RATE / 10u)
#define KEY "conformance-key"

typedef struct conf_provider {
    const char *name; /* the SDK's provider and steno-server's --protocol */
    const char *path; /* its WebSocket endpoint */
    /* the server's pace (NULL: the protocol's default) */
    const char *max_rate, *burst_ms;
    /* a setting only a new connection can change, and the text its new value puts in the
     * connection's server record (the handshake's query) */
    const char *fixed_key, *fixed_value, *fixed_witness;
    /* a setting changed on the open connection (NULL: the protocol has none), and the text it
     * puts in that connection's record */
    const char *live_key, *live_value, *live_witness;
    /* connections are named by a METADATA message after the handshake, not a header */
    bool meta_ids;
    /* the protocol announces when the server will end a connection (a goAway, an expiry), so
     * the session must leave first: no connection may be cut by the session limit */
    bool announces_end;
    /* results carry times (so the hostile case can send absurd ones: bad_times) */
    bool timed_results;
    /* the session's rate, 0 for 16 kHz: the null engine's checksums are of the audio the
     * server receives, so a provider that takes one rate only runs at it */
    uint32_t rate;
    /* the API names no connection (no request id, no METADATA): the accounting binds each
     * connection to its server record by content (h_accounting_nameless_conns) */
    bool nameless;
} conf_provider;

static const conf_provider providers[] = {
    {"deepgram", "/v1/listen", "1.25", "2000", "punctuate", "false", "punctuate=false", NULL, NULL,
     NULL, false, false, true, 0, false},
    {"assemblyai", "/v3/ws", NULL, NULL, "speech_model", "universal-streaming-multilingual",
     "speech_model=universal-streaming-multilingual", "max_turn_silence", "1200",
     "\"max_turn_silence\":1200", true, true, true, 0, false},
    /* ElevenLabs announces no end: session_time_limit_exceeded comes with the close */
    {"elevenlabs", "/v1/speech-to-text/realtime", NULL, NULL, "language_code", "de",
     "language_code=de", NULL, NULL, NULL, true, false, true, 0, false},
    /* OpenAI: 24 kHz only; completions carry no times (steno counts the audio of each commit);
     * session_expired comes with the close, unannounced */
    {"openai", "/v1/realtime", "1.0", "1500", "model", "gpt-4o-transcribe",
     "\"model\":\"gpt-4o-transcribe\"", "language", "de", "\"language\":\"de\"", true, false, false,
     24000, false},
    /* Gemini Live: every setting is in the setup message (the model shows in the record's
     * params), so none changes live; goAway announces the session limit; a final is a whole
     * turn with no times; the key goes in x-goog-api-key; no connection is ever named */
    {"gemini", "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
     "1.0", "1500", "model", "gemini-live-2.5-flash-preview",
     "\"model\":\"gemini-live-2.5-flash-preview\"", NULL, NULL, NULL, false, true, false, 0, true},
};

static const conf_provider *P;

/* steno-server as P's personality at P's pace, plus extra (NULL-terminated, may be NULL). */
static void start_server(h_server *srv, const char *const *extra)
{
    const char *args[16];
    size_t n = 0;
    args[n++] = "--protocol";
    args[n++] = P->name;
    args[n++] = "--api-key";
    args[n++] = KEY;
    if (P->max_rate) {
        args[n++] = "--max-rate";
        args[n++] = P->max_rate;
        args[n++] = "--burst-ms";
        args[n++] = P->burst_ms;
    }
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof args / sizeof args[0]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    h_server_start(srv, args);
}

/* A session on P at the SDK's defaults for everything that shapes recovery. */
static void init_run(h_run *r, const char *name, int port)
{
    h_run_init_provider_defaults(r, name, port);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d%s", port, P->path);
    r->sc.provider = P->name;
    r->sc.sample_rate = RATE;
    r->sc.allow_no_auth = 0;
    r->sc.api_key = KEY;
    if (P->meta_ids)
        r->sc.on_event = h_on_event_meta_id;
}

/* Streams `seconds` at real time while fault(arg) runs, closes, and proves the accounting. */
static void stream_and_account(h_run *r, h_server *srv, steno_client *cl, double seconds,
                               uint32_t seed, void (*during)(h_run *, h_server *, void *),
                               void *arg)
{
    const size_t total = (size_t)(seconds * RATE);
    int16_t *pcm = h_pattern_alloc(seed, total);
    h_run_open(r, cl);
    h_run_stream(r, pcm, total, 1.0);
    if (during)
        during(r, srv, arg);
    size_t written = h_producer_join(&r->prod);
    h_run_close(r, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(srv, 20000), "server connections still open");
    cJSON *recs = h_server_records(srv);
    h_accounting acc;
    h_run_check_accounting(r, pcm, written, recs, &acc);
    H_CHECK(acc.dropped == 0 && acc.covered == written, "%s: covered %" PRIu64 " of %zu", P->name,
            acc.covered, written);
    h_log("%s: %zu finals over %zu connections (%zu backfill) cover %" PRIu64
          " samples exactly once",
          P->name, acc.finals, acc.connections, acc.backfill_connections, acc.covered);
    cJSON_Delete(recs);
    free(pcm);
}

/* ---- zero_loss ---- */

static void case_zero_loss(steno_client *cl)
{
    const h_schedule *sch = h_schedule_find("stall_after_reset");
    h_server srv, chaos;
    start_server(&srv, NULL);
    h_chaos_start(&chaos, srv.port);
    const size_t total = (size_t)(h_schedule_audio_s(sch) * RATE);
    int16_t *pcm = h_pattern_alloc(31, total);
    h_run run;
    init_run(&run, "zero_loss", chaos.port);
    h_run_open(&run, cl);
    h_run_stream(&run, pcm, total, 1.0);
    h_schedule_run(sch, &run, &srv, &chaos, NULL);
    size_t written = h_producer_join(&run.prod);
    steno_status crc = steno_session_close(run.s, 90000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    char dropped_desc[512], unreceived_desc[512], err[512];
    uint64_t dropped = h_dropped(&run.col, dropped_desc, sizeof dropped_desc);
    h_witness w;
    H_CHECK(h_witness_load(&w, &srv, &run.col, pcm, written, CHUNK_FRAMES, err, sizeof err),
            "%s: %s", P->name, err);
    uint64_t unreceived =
        h_witness_unreceived(&w, written, unreceived_desc, sizeof unreceived_desc);
    h_cover cov;
    bool timeline_ok = h_check_timeline(&run.col, pcm, written, RATE, true, &cov, err, sizeof err);
    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    h_log("%s: %s: %u reconnects, %u backfills, %zu finals (%zu backfill) cover %" PRIu64
          " of %zu samples; %" PRIu64 " dropped, %" PRIu64 " never received",
          P->name, sch->name, st.reconnects, st.backfills, cov.finals, cov.backfill_finals,
          cov.covered, written, dropped, unreceived);
    H_CHECK(crc == STENO_OK, "%s: close: %s", P->name, steno_status_name(crc));
    H_CHECK(dropped == 0, "%s: %" PRIu64 " samples dropped: %s", P->name, dropped, dropped_desc);
    H_CHECK(unreceived == 0, "%s: %" PRIu64 " samples never reached the server: %s", P->name,
            unreceived, unreceived_desc);
    H_CHECK(timeline_ok, "%s: %s", P->name, err);
    H_CHECK(cov.uncovered == 0, "%s: %" PRIu64 " samples without a final: %s", P->name,
            cov.uncovered, cov.uncovered_desc);
    H_CHECK(h_witness_rate_closes(&w) == 0, "%s: %zu connections closed for their pace", P->name,
            h_witness_rate_closes(&w));
    H_CHECK(st.reconnects >= 3, "%s: only %u reconnects", P->name, st.reconnects);
    h_witness_free(&w);
    h_run_free(&run);
    free(pcm);
}

/* ---- fatal ---- */

static bool pred_second_attempt(h_collector *c, void *arg)
{
    (void)arg;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->ev[i].type == STENO_EVENT_CONNECTING;
    return n >= 2;
}

static void case_fatal(steno_client *cl)
{
    h_server srv;
    start_server(&srv, NULL);
    h_run run;
    init_run(&run, "fatal", srv.port);
    run.sc.api_key = "not-the-key";
    uint64_t t0 = h_now_ms();
    h_run_open(&run, cl);
    int16_t pcm[1600];
    h_pattern(1, 0, 1600, pcm);
    steno_session_write(run.s, pcm, 1600);
    H_CHECK(h_wait_type(&run.col, STENO_EVENT_FAILED, 1, 10000 * h_slow()), "%s: no FAILED",
            P->name);
    uint64_t took = h_now_ms() - t0;
    H_CHECK(!h_wait(&run.col, pred_second_attempt, NULL, 1500), "%s: a second attempt", P->name);
    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    pthread_mutex_lock(&run.col.mu);
    const h_ev *f = &run.col.ev[h_find(&run.col, STENO_EVENT_FAILED, 0)];
    H_CHECK(f->status == STENO_ERR_AUTH, "%s: FAILED with %s: %s", P->name,
            steno_status_name(f->status), f->message);
    H_CHECK(f->http_status != 0 || f->close_code != 0,
            "%s: FAILED names neither the HTTP status nor the close code: %s", P->name, f->message);
    h_log("%s: FAILED %s (http %d, close %d) after %" PRIu64 " ms: %s", P->name,
          steno_status_name(f->status), f->http_status, f->close_code, took, f->message);
    pthread_mutex_unlock(&run.col.mu);
    /* one attempt; a protocol that refuses credentials after the upgrade (AssemblyAI: close
     * 1008) counts it as a connect */
    H_CHECK(st.attempts == 1 && st.connects <= 1, "%s: %u attempts, %u connects", P->name,
            st.attempts, st.connects);
    H_CHECK(took < 3000 * h_slow(), "%s: failing took %" PRIu64 " ms", P->name, took);
    h_run_free(&run);
}

/* ---- retry_after ---- */

static void case_retry_after(steno_client *cl)
{
    h_server srv;
    start_server(&srv, NULL);
    h_fault(&srv, "{\"reject_next\":1,\"status\":429,\"retry_after\":\"2\"}");
    h_run run;
    init_run(&run, "retry_after", srv.port);
    stream_and_account(&run, &srv, cl, 5.0, 32, NULL, NULL);
    cJSON *recs = h_server_records(&srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    const cJSON *first = cJSON_GetArrayItem(arr, 0), *second = cJSON_GetArrayItem(arr, 1);
    H_CHECK(first && second && (int)h_jnum(first, "handshake_status", 0) == 429 &&
                (int)h_jnum(second, "handshake_status", 0) == 101,
            "%s: not a 429 then a 101", P->name);
    double gap = h_jnum(second, "start", 0) - h_jnum(first, "start", 0);
    h_log("%s: the handshake after the 429 came %.3f s later (Retry-After: 2)", P->name, gap);
    H_CHECK(gap >= 2.0 && gap < 3.0 * h_slow(), "%s: next handshake %.3f s after the 429", P->name,
            gap);
    cJSON_Delete(recs);
    h_run_free(&run);
}

/* ---- half_open ---- */

static void stall_live(h_run *r, h_server *srv, void *arg)
{
    uint64_t *detect_ms = arg;
    H_CHECK(h_producer_wait(&r->prod, 3u * RATE, 20000), "producer stalled");
    h_fault(srv, "{\"action\":\"stall\"}");
    uint64_t t0 = h_now_ms();
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTING, 1, 10000 * h_slow()),
            "%s: the stalled connection was never replaced", P->name);
    *detect_ms = h_now_ms() - t0;
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTED, 1, 10000 * h_slow()),
            "%s: no RECONNECTED", P->name);
    h_fault(srv, "{\"action\":\"unstall\"}");
}

static void case_half_open(steno_client *cl)
{
    h_server srv;
    start_server(&srv, NULL);
    h_run run;
    init_run(&run, "half_open", srv.port);
    uint64_t detect_ms = 0;
    stream_and_account(&run, &srv, cl, 9.0, 33, stall_live, &detect_ms);
    uint32_t bound = run.sc.ping_interval_ms + run.sc.pong_timeout_ms + 1000;
    h_log("%s: half-open connection replaced %" PRIu64 " ms after the stall (bound %u ms)", P->name,
          detect_ms, bound);
    H_CHECK(detect_ms <= bound * h_slow(), "%s: detection took %" PRIu64 " ms", P->name, detect_ms);
    h_run_free(&run);
}

/* ---- config ---- */

static void change_config(h_run *r, h_server *srv, void *arg)
{
    (void)srv;
    (void)arg;
    if (P->live_key) {
        H_CHECK(h_producer_wait(&r->prod, 2u * RATE, 20000), "producer stalled");
        steno_option o = {P->live_key, P->live_value};
        steno_status rc = steno_session_configure(r->s, &o, 1);
        H_CHECK(rc == STENO_OK, "configure: %s", steno_session_errmsg(r->s));
        H_CHECK(h_producer_wait(&r->prod, 4u * RATE, 20000), "producer stalled");
        H_CHECK(h_count(&r->col, STENO_EVENT_RECONNECTING) == 0, "%s: %s=%s reconnected", P->name,
                P->live_key, P->live_value);
    }
    H_CHECK(h_producer_wait(&r->prod, 5u * RATE, 20000), "producer stalled");
    steno_option o = {P->fixed_key, P->fixed_value};
    steno_status rc = steno_session_configure(r->s, &o, 1);
    H_CHECK(rc == STENO_OK, "configure: %s", steno_session_errmsg(r->s));
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTED, 1, 20000 * h_slow()),
            "%s: %s=%s did not reconnect", P->name, P->fixed_key, P->fixed_value);
}

static void case_config(steno_client *cl)
{
    h_server srv;
    start_server(&srv, NULL);
    h_run run;
    init_run(&run, "config", srv.port);
    stream_and_account(&run, &srv, cl, 8.0, 34, change_config, NULL);
    cJSON *recs = h_server_records(&srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections");
    char *first = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, 0));
    char *second = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, 1));
    /* the first connection and the planned reconnect's; a provider with no end-of-stream
     * message closes the old connection with its uncommitted audio, which a backfill
     * connection (set up with the new settings too) then replays */
    int n = cJSON_GetArraySize(arr);
    H_CHECK(first && second && n >= 2, "%s: %d connections", P->name, n);
    H_CHECK(!strstr(first, P->fixed_witness) && strstr(second, P->fixed_witness),
            "%s: %s is not (only) in the second connection's record", P->name, P->fixed_witness);
    for (int k = 2; k < n; k++) {
        char *later = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, k));
        H_CHECK(later && strstr(later, P->fixed_witness), "%s: connection %d was set up without %s",
                P->name, k + 1, P->fixed_witness);
        free(later);
    }
    if (P->live_key) {
        H_CHECK(strstr(first, P->live_witness),
                "%s: the live change (%s) never reached the "
                "first connection",
                P->name, P->live_witness);
        h_log("%s: %s=%s applied live, %s=%s by a planned reconnect", P->name, P->live_key,
              P->live_value, P->fixed_key, P->fixed_value);
    } else {
        h_log("%s: no live settings in the protocol; %s=%s by a planned reconnect", P->name,
              P->fixed_key, P->fixed_value);
    }
    free(first);
    free(second);
    cJSON_Delete(recs);
    h_run_free(&run);
}

/* ---- hostile ---- */

typedef struct hostile_step {
    double at_s;
    const char *fault; /* a POST /faults body */
} hostile_step;

static const hostile_step hostile_steps[] = {
    {1.5, "{\"action\":\"malformed\",\"kind\":\"text\"}"},
    {2.0, "{\"action\":\"malformed\",\"kind\":\"type\"}"},
    {2.5, "{\"action\":\"malformed\",\"kind\":\"unknown\"}"},
    {3.0, "{\"action\":\"invalid_utf8\"}"},
    {3.5, "{\"action\":\"binary\"}"},
    {4.0, "{\"action\":\"bad_times\",\"kind\":\"negative\"}"},
    {4.5, "{\"action\":\"bad_times\",\"kind\":\"past\"}"},
    {5.0, "{\"action\":\"bad_times\",\"kind\":\"phantom\"}"},
    {5.5, "{\"action\":\"oversized\",\"bytes\":1048576}"},
};

static void run_hostile(h_run *r, h_server *srv, void *arg)
{
    h_server *chaos = arg;
    for (size_t i = 0; i < sizeof hostile_steps / sizeof hostile_steps[0]; i++) {
        if (!P->timed_results && strstr(hostile_steps[i].fault, "bad_times"))
            continue; /* nothing to lie about */
        H_CHECK(h_producer_wait(&r->prod, (size_t)(hostile_steps[i].at_s * RATE), 20000),
                "producer stalled");
        h_fault(srv, "%s", hostile_steps[i].fault);
    }
    size_t rc0 = h_count(&r->col, STENO_EVENT_RECONNECTED);
    /* a connection that upgrades and never speaks, after a drop */
    H_CHECK(h_producer_wait(&r->prod, (size_t)(6.5 * RATE), 20000), "producer stalled");
    h_fault(srv, "{\"mute_next\":1}");
    h_fault(srv, "{\"action\":\"drop\"}");
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTED, rc0 + 2, 20000 * h_slow()),
            "%s: the muted connection was not replaced", P->name);
    /* the abandoned connection is still muted on the server: let it see its end */
    h_fault(srv, "{\"action\":\"unstall\"}");
    /* a server that trickles a byte a second */
    H_CHECK(h_producer_wait(&r->prod, (size_t)(11.0 * RATE), 20000), "producer stalled");
    size_t rn = h_count(&r->col, STENO_EVENT_RECONNECTING);
    h_toxic_add(chaos, "{\"name\":\"trickle\",\"type\":\"bandwidth\",\"bytes_per_s\":1,"
                       "\"direction\":\"downstream\"}");
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTING, rn + 1, 20000 * h_slow()),
            "%s: the trickling connection was not replaced", P->name);
    h_toxic_remove(chaos, "trickle");
    H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTED, rc0 + 3, 20000 * h_slow()),
            "%s: no connection after the trickle", P->name);
}

static void case_hostile(steno_client *cl)
{
    h_server srv, chaos;
    start_server(&srv, NULL);
    h_chaos_start(&chaos, srv.port);
    h_run run;
    init_run(&run, "hostile", chaos.port);
    stream_and_account(&run, &srv, cl, 16.0, 36, run_hostile, &chaos);
    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    pthread_mutex_lock(&run.col.mu);
    for (size_t i = 0; i < run.col.n; i++) {
        const h_ev *e = &run.col.ev[i];
        H_CHECK(e->type != STENO_EVENT_FAILED, "%s: FAILED: %s", P->name, e->message);
        H_CHECK(e->type != STENO_EVENT_TRANSCRIPT || !strstr(e->text, "hostile"),
                "%s: a hostile result reached the app: [%" PRIu64 ", %" PRIu64 ") %s", P->name,
                e->first_sample, e->end_sample, e->text);
    }
    pthread_mutex_unlock(&run.col.mu);
    h_log("%s: %" PRIu64 " messages counted unparseable, %u reconnects, %u dead connections",
          P->name, (uint64_t)st.parse_errors, st.reconnects, st.dead_connections);
    /* the truncated and mistyped messages, the text that is not UTF-8, the binary frame, and
     * where results carry times the negative and the phantom finals (the old one is only
     * suppressed as already final) */
    uint64_t want = P->timed_results ? 6 : 4;
    H_CHECK(st.parse_errors >= want,
            "%s: only %" PRIu64 " unparseable messages counted (want %" PRIu64 ")", P->name,
            (uint64_t)st.parse_errors, want);
    h_run_free(&run);
}

/* ---- session_limit ---- */

static void case_session_limit(steno_client *cl)
{
    h_server srv;
    static const char *const limit[] = {"--session-limit-s", "4", NULL};
    start_server(&srv, limit);
    h_run run;
    init_run(&run, "session_limit", srv.port);
    stream_and_account(&run, &srv, cl, 11.0, 35, NULL, NULL);
    steno_session_stats st;
    steno_session_stats_get(run.s, &st);
    cJSON *recs = h_server_records(&srv);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    int cut = 0;
    cJSON_ArrayForEach(r, arr) cut += !strcmp(h_jstr(r, "close_cause"), "session_limit");
    cJSON_Delete(recs);
    h_log("%s: %u reconnects through 4 s session limits, %d connections cut off by the limit",
          P->name, st.reconnects, cut);
    H_CHECK(!P->announces_end || cut == 0,
            "%s: announces its end, yet %d connections were cut off by the limit", P->name, cut);
    H_CHECK(st.reconnects >= 2, "%s: only %u reconnects", P->name, st.reconnects);
    H_CHECK(h_count(&run.col, STENO_EVENT_FAILED) == 0, "%s: FAILED", P->name);
    h_run_free(&run);
}

/* ---- speech ----
 *
 * What makes the comparison repeatable. The fault-free run must decode the same way every time,
 * and the faulted run must differ from it only where the faults put it:
 *   - a decoder per stream: steno-server shares `pool` decoders (default 2, its worker count)
 *     among all streams, and a stream that finds none free takes the least recently used one
 *     of a stream in silence, whose noise estimate then restarts. Here the fault-free stream,
 *     the faulted one and its replacement connection (while the server has not yet seen the old
 *     one go) are three: which stream lost its decoder, and when, followed the reconnect's
 *     timing, and the fault-free transcript moved by 2 words (Deepgram 38.0% and 40.8%)
 *     between runs. pool=4 gives each its own.
 *   - AssemblyAI's flush before the close could take a turn that ended naturally for its
 *     answer and drop the last turn's words (the SDK now asks again: see
 *     res_finals_in_flight_at_close): some fault-free runs lost their last sentence.
 *   - the faults land right after a final (h_wait_acked past a third and two thirds of the
 *     audio), so the replacement connection starts where the recogniser ended an utterance. At a
 *     fixed point in the audio instead, the reset fell before or after the final of the
 *     utterance just ended depending on the recogniser's latency, and the replayed audio (0 or
 *     6 chunks) and so the words decoded from it changed from run to run.
 *   - the recordings are resampled to the provider's rate (OpenAI takes 24 kHz only: streamed
 *     as they are, 16 kHz read as 24 kHz, the speech was 1.5x too fast, 18 s long, WER 93%).
 * The bound. Each reconnect gives the rest of the stream to a new recognition session, which
 * starts without what the old one had learnt of the speaker (pocketsphinx: the running cepstral
 * mean and the noise estimate), and none of these protocols can carry a session over to a new
 * connection. So even with nothing lost, repeated or misplaced, the words decoded after a
 * reconnect need not be the fault-free run's. Measured on all four providers, three runs each
 * with the same words every run: the transcripts agree up to the first reconnect; after it, 3
 * to 6 words of the last recordings differ, some better, some worse, netting 1 word (1.4
 * points) of WER more than the fault-free run. "No word differs" (the 1 point alone) would hold
 * only by the recogniser's luck, so the bound allows one word per reconnect on top of it; audio
 * the SDK lost or repeated costs whole utterances and still fails it.
 */

#define WER_SLACK_POINTS 1.0
#define SPEECH_FAULTS 2
#define WORDS_PER_RECONNECT 1

typedef struct scored {
    h_run run;
    char *text;
    double wer;
} scored;

/* The recordings are 16 kHz; a provider that takes another rate gets them resampled by
 * band-limited interpolation (a Blackman-windowed sinc cut at 95% of 8 kHz), so that the
 * server's own resampler back to 16 kHz sees the same speech and nothing folded into it. */
static int16_t *resample_16k(const int16_t *in, size_t n, uint32_t rate, size_t *out_n)
{
    const double ratio = (double)rate / 16000.0;
    const double fc = 0.95 * 0.5 / (ratio > 1.0 ? 1.0 : 1.0 / ratio); /* cycles per input sample */
    const int half = 16;
    *out_n = (size_t)((double)n * ratio);
    int16_t *out = malloc(*out_n * sizeof *out);
    H_CHECK(out != NULL, "out of memory");
    for (size_t j = 0; j < *out_n; j++) {
        double t = (double)j / ratio; /* position in input samples */
        long c = (long)floor(t);
        double acc = 0.0;
        for (long k = c - half + 1; k <= c + half; k++) {
            if (k < 0 || (size_t)k >= n)
                continue;
            double x = t - (double)k;
            double w = 0.42 + 0.5 * cos(M_PI * x / half) + 0.08 * cos(2.0 * M_PI * x / half);
            double a = 2.0 * M_PI * fc * x;
            acc += in[k] * 2.0 * fc * (x == 0.0 ? 1.0 : sin(a) / a) * w;
        }
        out[j] = (int16_t)(acc > 32767.0 ? 32767 : acc < -32768.0 ? -32768 : lrint(acc));
    }
    return out;
}

static void start_speech_server(h_server *srv)
{
    /* a decoder for every stream the case can have at once (see the header) */
    static const char *const extra[] = {"--engine", "pocketsphinx", "--engine-opt", "pool=4", NULL};
    start_server(srv, extra);
}

static void open_scored(steno_client *cl, scored *r, const char *name, int port)
{
    init_run(&r->run, name, port);
    r->run.sc.ring_chunks = 400; /* recognition lags: hold the whole stream if need be */
    r->run.sc.close_timeout_ms = 60000;
    h_run_open(&r->run, cl);
}

static void case_speech(steno_client *cl)
{
    const char *have = getenv("RES_HAVE_POCKETSPHINX");
    int16_t *pcm;
    size_t total;
    char *ref;
    if (!have || strcmp(have, "1") != 0 || !h_librivox_load(&pcm, &total, &ref)) {
        h_log("SKIP: no pocketsphinx engine or no LibriVox recordings");
        exit(H_SKIP); /* no witness started yet */
    }
    if (RATE != 16000u) {
        size_t n;
        int16_t *at_rate = resample_16k(pcm, total, RATE, &n);
        free(pcm);
        pcm = at_rate;
        total = n;
    }
    /* whole chunks: a provider with a minimum frame pads a short last one, and the server's
     * checksum of a connection's audio would then include the padding */
    total -= total % CHUNK_FRAMES;
    h_server srv, chaos;
    start_speech_server(&srv);
    h_chaos_start(&chaos, srv.port);
    scored clean, faulted;
    memset(&clean, 0, sizeof clean);
    memset(&faulted, 0, sizeof faulted);
    open_scored(cl, &clean, "clean", srv.port);
    open_scored(cl, &faulted, "faulted", chaos.port);
    h_run_stream(&clean.run, pcm, total, 1.0);
    h_run_stream(&faulted.run, pcm, total, 1.0);
    for (int k = 0; k < SPEECH_FAULTS; k++) {
        /* right after a final: the replay starts where the recogniser ended an utterance */
        H_CHECK(h_wait_acked(&faulted.run.col, total * (uint64_t)(k + 1) / 3, 60000 * h_slow()),
                "%s: no final reached %.1f s", P->name, (double)total * (k + 1) / 3 / RATE);
        size_t before = h_count(&faulted.run.col, STENO_EVENT_RECONNECTED);
        if (k == 1)
            h_fault(&srv, "{\"reject_next\":1,\"status\":503}");
        h_chaos_reset_all(&chaos);
        H_CHECK(
            h_wait_type(&faulted.run.col, STENO_EVENT_RECONNECTED, before + 1, 30000 * h_slow()),
            "%s: fault %d: no RECONNECTED", P->name, k + 1);
    }
    h_producer_join(&clean.run.prod);
    h_producer_join(&faulted.run.prod);
    h_run_close(&clean.run, 120000);
    h_run_close(&faulted.run, 120000);
    H_CHECK(h_server_wait_idle(&srv, 30000), "server connections still open");
    char **rw;
    size_t nr = h_words(ref, &rw);
    scored *runs[2] = {&clean, &faulted};
    for (int i = 0; i < 2; i++) {
        runs[i]->text = h_finals_text(&runs[i]->run.col);
        char **hw;
        size_t nh = h_words(runs[i]->text, &hw);
        runs[i]->wer = h_wer(rw, nr, hw, nh);
        h_words_free(hw, nh);
    }
    h_log("%s: clean WER %.1f%%, faulted WER %.1f%% (%.1f s of speech)", P->name, clean.wer,
          faulted.wer, (double)total / RATE);
    h_log("clean: %s", clean.text);
    h_log("faulted: %s", faulted.text);
    cJSON *recs = h_server_records(&srv);
    char err[256];
    H_CHECK(h_check_connections(&faulted.run.col, pcm, total, RATE, CHUNK_FRAMES, recs, NULL, err,
                                sizeof err),
            "%s: faulted: %s", P->name, err);
    cJSON_Delete(recs);
    /* a word is 100 / nr points of WER */
    double slack = WER_SLACK_POINTS + 100.0 * SPEECH_FAULTS * WORDS_PER_RECONNECT / (double)nr;
    H_CHECK(faulted.wer <= clean.wer + slack,
            "%s: faults cost %.1f WER points (%.1f%% vs %.1f%%), more than %.1f", P->name,
            faulted.wer - clean.wer, faulted.wer, clean.wer, slack);
    H_CHECK(clean.wer < 60.0, "%s: the fault-free run is implausibly bad (%.1f%%)", P->name,
            clean.wer);
    h_words_free(rw, nr);
    free(ref);
    for (int i = 0; i < 2; i++) {
        h_run_free(&runs[i]->run);
        free(runs[i]->text);
    }
    free(pcm);
}

static const struct {
    const char *name;
    void (*run)(steno_client *);
} cases[] = {
    {"zero_loss", case_zero_loss},     {"fatal", case_fatal},
    {"retry_after", case_retry_after}, {"half_open", case_half_open},
    {"config", case_config},           {"hostile", case_hostile},
    {"speech", case_speech},           {"session_limit", case_session_limit},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; argc == 3 && i < sizeof providers / sizeof providers[0]; i++)
        if (!strcmp(providers[i].name, argv[1]))
            P = &providers[i];
    size_t c = 0;
    while (argc == 3 && c < sizeof cases / sizeof cases[0] && strcmp(cases[c].name, argv[2]))
        c++;
    if (!P || c == sizeof cases / sizeof cases[0]) {
        fprintf(stderr, "usage: %s PROVIDER CASE\n", argv[0]);
        return 2;
    }
    if (P->rate)
        RATE = P->rate;
    h_accounting_nameless_conns = P->nameless;
    char name[80];
    snprintf(name, sizeof name, "conformance_%s_%s", P->name, cases[c].name);
    h_init(name);
    steno_client *cl = h_client_open(NULL);
    cases[c].run(cl);
    steno_client_destroy(cl);
    return h_pass();
}
