/* test_secrets_never_leak: the API key and tokens appear in no log line (at debug level), no
 * event, no error message, no metric and no URL, through reconnects, a refused handshake and a
 * rejected credential. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "steno/steno.h"

#define RATE 16000u
#define TICK 320u

/* Distinctive, and any 8 consecutive characters of it count as a leak (a truncated or split
 * key is still a leak). */
static const char KEY[] = "k3yS3cr3t-7f3a9c1e5b2d8e4f";
#define WINDOW 8

/* Everything the application could see or store, in one buffer. */
static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cap;
static size_t cap_len, cap_size;
static unsigned log_lines, debug_lines, events_seen;

static void capture(const char *what, const char *text)
{
    if (!text)
        return;
    pthread_mutex_lock(&cap_mu);
    size_t n = strlen(what) + strlen(text) + 2;
    if (cap_len + n + 1 > cap_size) {
        cap_size = (cap_len + n + 1) * 2;
        cap = realloc(cap, cap_size);
        if (!cap)
            abort();
    }
    cap_len += (size_t)sprintf(cap + cap_len, "%s %s\n", what, text);
    pthread_mutex_unlock(&cap_mu);
}

static void on_log(void *user, steno_log_level lvl, const char *line)
{
    (void)user;
    pthread_mutex_lock(&cap_mu);
    log_lines++;
    debug_lines += lvl == STENO_LOG_DEBUG;
    pthread_mutex_unlock(&cap_mu);
    capture("log", line);
}

/* every string an event carries */
static void capture_event(const steno_event *ev)
{
    pthread_mutex_lock(&cap_mu);
    events_seen++;
    pthread_mutex_unlock(&cap_mu);
    capture("event", steno_event_type_name(ev->type));
    switch (ev->type) {
    case STENO_EVENT_TRANSCRIPT:
        capture("transcript", ev->u.transcript.text);
        for (size_t i = 0; i < ev->u.transcript.n_words; i++) {
            capture("word", ev->u.transcript.words[i].word);
            capture("word", ev->u.transcript.words[i].punctuated_word);
        }
        break;
    case STENO_EVENT_CONNECTED:
        capture("request_id", ev->u.connected.request_id);
        break;
    case STENO_EVENT_METADATA:
        capture("metadata", ev->u.metadata.json);
        capture("request_id", ev->u.metadata.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        capture("reconnecting", ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        capture("request_id", ev->u.reconnected.request_id);
        break;
    case STENO_EVENT_FAILED:
        capture("failed", ev->u.failed.message);
        capture("provider", ev->u.failed.provider_message);
        capture("request_id", ev->u.failed.request_id);
        break;
    default:
        break;
    }
}

static void on_event(void *user, const steno_event *ev)
{
    capture_event(ev);
    h_on_event(user, ev);
}

static int token_calls;
static steno_status token_cb(void *user, char *buf, size_t cap_len_)
{
    (void)user;
    __atomic_fetch_add(&token_calls, 1, __ATOMIC_RELAXED);
    /* a fresh "temporary token" each time, in the Bearer form */
    snprintf(buf, cap_len_, "Bearer %s", KEY);
    return STENO_OK;
}

/* first window of the key found in text, or NULL */
static const char *find_leak(const char *text, size_t len)
{
    size_t kl = strlen(KEY);
    for (size_t off = 0; off + WINDOW <= kl; off++)
        if (memmem(text, len, KEY + off, WINDOW))
            return KEY + off;
    return NULL;
}

static void check_clean(const char *what, const char *text, size_t len)
{
    const char *w = find_leak(text, len);
    H_CHECK(!w, "%s contains part of the key ('%.*s')", what, WINDOW, w);
}

static bool connected_again(h_collector *c, void *arg)
{
    size_t want = *(size_t *)arg, n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->ev[i].type == STENO_EVENT_CONNECTED || c->ev[i].type == STENO_EVENT_RECONNECTED;
    return n >= want;
}

/* streams `ms` of audio at real time to both sessions */
static void stream(steno_session *const *ss, int n, uint32_t ms, uint64_t *pos)
{
    int16_t pcm[TICK];
    uint64_t t0 = h_now_ms();
    for (uint32_t t = 0; t < ms / 20; t++) {
        for (uint32_t i = 0; i < TICK; i++)
            pcm[i] = h_sample(*pos + i);
        *pos += TICK;
        for (int k = 0; k < n; k++)
            H_CHECK(steno_session_write(ss[k], pcm, TICK) == STENO_OK, "write");
        uint64_t due = t0 + (t + 1) * 20u, now = h_now_ms();
        if (due > now)
            usleep((useconds_t)(due - now) * 1000u);
    }
}

int main(void)
{
    h_init("secrets_never_leak");
    const char *srv_args[] = {"--api-key", KEY, NULL};
    h_server srv;
    h_server_start(&srv, srv_args);

    /* lws or anything else writing straight to stderr is captured as well */
    char errpath[] = "/tmp/steno-secrets-stderr-XXXXXX";
    int errfd = mkstemp(errpath);
    H_CHECK(errfd >= 0, "mkstemp");
    unlink(errpath);
    int saved_stderr = dup(2);
    fflush(stderr);
    dup2(errfd, 2);

    setenv("STENO_LOG", "debug", 1);
    char err[512];
    steno_client_config cc;
    steno_client_config_init(&cc);
    H_CHECK(steno_client_config_from_env(&cc, STENO_ENV_OVERRIDE, err, sizeof err) == STENO_OK,
            "%s", err);
    H_CHECK(cc.log_level == STENO_LOG_DEBUG, "STENO_LOG=debug was not applied");
    cc.log_fn = on_log;
    steno_client *c;
    H_CHECK(steno_client_open(&cc, &c, err, sizeof err) == STENO_OK, "%s", err);

    /* a: api_key; b: token callback; both through faults */
    h_collector ca, cb, cw;
    h_collector_init(&ca, "api_key");
    h_collector_init(&cb, "token_cb");
    h_collector_init(&cw, "wrong_key");
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.sample_rate = RATE;
    sc.on_event = on_event;
    steno_option opts[] = {{"interim_results", "true"}, {"vad_events", "true"}};
    sc.options = opts;
    sc.n_options = 2;
    steno_session *ss[2];
    sc.api_key = KEY;
    sc.user = &ca;
    H_CHECK(steno_session_open(c, &sc, &ss[0], err, sizeof err) == STENO_OK, "%s", err);
    sc.api_key = NULL;
    sc.token_cb = token_cb;
    sc.user = &cb;
    H_CHECK(steno_session_open(c, &sc, &ss[1], err, sizeof err) == STENO_OK, "%s", err);
    capture("errbuf", err);

    uint64_t pos = 0;
    size_t want = 1;
    H_CHECK(h_wait(&ca, connected_again, &want, 10000) &&
                h_wait(&cb, connected_again, &want, 10000),
            "sessions did not connect");
    stream(ss, 2, 1500, &pos);
    /* faults: a TCP reset, a close 1011, and a refused handshake on the way back */
    h_fault(&srv, "{\"action\":\"drop\"}");
    want = 2;
    H_CHECK(h_wait(&ca, connected_again, &want, 10000) &&
                h_wait(&cb, connected_again, &want, 10000),
            "no reconnect after the drop");
    stream(ss, 2, 1000, &pos);
    h_fault(&srv, "{\"reject_next\":2,\"status\":503,\"retry_after\":\"1\"}");
    h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000 test\"}");
    want = 3;
    H_CHECK(h_wait(&ca, connected_again, &want, 15000) &&
                h_wait(&cb, connected_again, &want, 15000),
            "no reconnect after the close");
    stream(ss, 2, 1000, &pos);

    /* a wrong key: 401, FAILED; its messages must not echo what was sent */
    char wrong[sizeof KEY + 1];
    snprintf(wrong, sizeof wrong, "%sx", KEY);
    sc.token_cb = NULL;
    sc.api_key = wrong;
    sc.user = &cw;
    steno_session *sw;
    H_CHECK(steno_session_open(c, &sc, &sw, err, sizeof err) == STENO_OK, "%s", err);
    H_CHECK(h_wait_type(&cw, STENO_EVENT_FAILED, 1, 10000), "the wrong key did not fail");
    capture("errmsg", steno_session_errmsg(sw));

    for (int k = 0; k < 2; k++) {
        steno_status rc = steno_session_close(ss[k], 10000);
        H_CHECK(rc == STENO_OK, "close: %s", steno_session_errmsg(ss[k]));
        capture("errmsg", steno_session_errmsg(ss[k]));
    }
    /* metrics: the client's and each session's */
    static char metrics[1 << 20];
    H_CHECK(steno_client_metrics_text(c, metrics, sizeof metrics, NULL) == STENO_OK, "metrics");
    capture("metrics", metrics);
    for (int k = 0; k < 2; k++) {
        H_CHECK(steno_session_metrics_text(ss[k], "s=\"x\"", metrics, sizeof metrics, NULL) ==
                    STENO_OK,
                "session metrics");
        capture("session metrics", metrics);
    }
    steno_session_destroy(ss[0]);
    steno_session_destroy(ss[1]);
    steno_session_destroy(sw);
    steno_client_destroy(c);

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    off_t elen = lseek(errfd, 0, SEEK_END);
    char *errtext = malloc((size_t)elen + 1);
    H_CHECK(errtext && pread(errfd, errtext, (size_t)elen, 0) == elen, "reading stderr");
    errtext[elen] = '\0';
    close(errfd);

    /* the check itself finds a fragment of the key */
    H_CHECK(find_leak(KEY + 5, 9) && !find_leak(KEY, WINDOW - 1), "find_leak is broken");
    /* the capture is not vacuous: debug logging ran, every session went through its faults */
    h_log("captured %zu bytes: %u log lines (%u debug), %u events, %ld bytes of stderr; %d token "
          "calls",
          cap_len, log_lines, debug_lines, events_seen, (long)elen, token_calls);
    /* (the SDK logs connection life at info; debug adds lws's notices) */
    H_CHECK(log_lines >= 10, "only %u log lines captured at debug level", log_lines);
    H_CHECK(token_calls >= 3, "the token callback ran %d times for 3+ connections", token_calls);
    check_clean("the SDK's log, events, error messages and metrics", cap, cap_len);
    check_clean("stderr", errtext, (size_t)elen);

    /* the server saw the credential in the Authorization header of every connection, never in
     * the URL (Deepgram takes it as a header; a query token is not needed) */
    cJSON *recs = h_server_records(&srv);
    int n = 0, with_auth = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(recs, "connections"))
    {
        n++;
        const char *q = h_jstr(r, "query"), *path = h_jstr(r, "path");
        check_clean("a request URL", q, strlen(q));
        check_clean("a request path", path, strlen(path));
        const cJSON *hd = cJSON_GetObjectItemCaseSensitive(r, "headers");
        const char *auth = h_jstr(hd, "authorization");
        with_auth += auth[0] != '\0';
    }
    H_CHECK(n >= 8 && with_auth == n, "%d connections, %d with an Authorization header", n,
            with_auth);
    cJSON_Delete(recs);

    free(errtext);
    free(cap);
    h_collector_free(&ca);
    h_collector_free(&cb);
    h_collector_free(&cw);
    h_server_stop(&srv);
    return h_pass();
}
