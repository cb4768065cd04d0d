/* client: the network thread, its lws context, and what sessions share (breakers, budget). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "backfill.h"
#include "engine.h"
#include "errmsg.h"

#if defined(STENO_HAVE_LIBCRYPTO) && defined(LWS_OPENSSL_SUPPORT) && !defined(LWS_WITH_MBEDTLS)
#include <openssl/x509.h>
#define STENO_TLS_REASON 1
#endif

#define DEFAULT_MAX_CONNECTS 16u
#define DEFAULT_MAX_BACKFILLS 64u
#define DEFAULT_BREAKER_THRESHOLD 5u
#define DEFAULT_BREAKER_OPEN_MS 2000u
#define DEFAULT_BUDGET 500u

const char *steno_version(void)
{
    return "0.1.0";
}

uint64_t steno__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t steno__now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- timers ---- */

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Arms the loop's one timer for the heap's earliest deadline, if it is not armed for it already.
 * A cancelled timer may leave it armed early: that wake finds nothing due and re-arms. */
static void timers_arm(steno_client *c, uint64_t now)
{
    const steno__tnode *top = steno__timerheap_peek(&c->timers);
    if (!top) {
        return;
    }
    if (c->timers_armed_us && c->timers_armed_us <= top->due)
        return;
    c->timers_armed_us = top->due;
    /* 0 would mean "cancel" to lws: the soonest is 1 us */
    lws_usec_t in = top->due > now ? (lws_usec_t)(top->due - now) : 1;
    steno__evloop_timer_arm(&c->evl, c->ctx, (uint64_t)in);
}

static void timers_fire(void *arg)
{
    steno_client *c = arg;
    c->timers_armed_us = 0;
    /* Only what is due now: a callback that sets a timer for "at once" gets a deadline after
     * this `now` (at least 1 us later), so it runs on the next pass, not in this loop. */
    uint64_t now = mono_us();
    steno__tnode *n;
    while ((n = steno__timerheap_pop_due(&c->timers, now)) != NULL) {
        steno__timer *t = lws_container_of(n, steno__timer, node);
        t->cb(t);
    }
    timers_arm(c, mono_us());
}

void steno__timer_schedule(steno_client *c, steno__timer *t, steno__timer_cb cb, uint64_t ms)
{
    uint64_t now = mono_us();
    t->cb = cb;
    if (steno__timerheap_set(&c->timers, &t->node, now + (ms ? ms * 1000u : 1u)) != STENO_OK) {
        /* an owner set a timer it reserved no room for: a bug, never a runtime condition */
        steno__log(c, STENO_LOG_ERROR, "internal: timer heap full (%u timers)",
                   steno__timerheap_count(&c->timers));
        return;
    }
    timers_arm(c, now);
}

void steno__timer_cancel(steno__timer *t)
{
    steno__tnode_cancel(&t->node);
}

int steno__client_reserve_timers(steno_client *c, uint32_t n)
{
    return steno__timerheap_reserve(&c->timers, n);
}

void steno_client_config_init(steno_client_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->max_concurrent_connects = DEFAULT_MAX_CONNECTS;
    cfg->max_backfill_connections = DEFAULT_MAX_BACKFILLS;
    cfg->breaker_failure_threshold = DEFAULT_BREAKER_THRESHOLD;
    cfg->breaker_open_ms = DEFAULT_BREAKER_OPEN_MS;
    cfg->retry_budget_capacity = DEFAULT_BUDGET;
    cfg->log_level = STENO_LOG_WARN;
}

/* ---- logging ---- */

/* lws has one process-wide log sink; it reports to the most recently opened client that asked. */
static _Atomic(steno_client *) lws_log_client;

void steno__log(steno_client *c, steno_log_level lvl, const char *fmt, ...)
{
    if (!c || !c->cfg.log_fn || lvl > c->cfg.log_level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->cfg.log_fn(c->cfg.log_user, lvl, line);
}

void steno__slog(const steno_session *s, steno_log_level lvl, const char *fmt, ...)
{
    steno_client *c = s->c;
    if (!c || !c->cfg.log_fn || lvl > c->cfg.log_level)
        return;
    char line[512];
    int k = snprintf(line, sizeof line, "session %u: ", s->serial);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    c->cfg.log_fn(c->cfg.log_user, lvl, line);
}

static void lws_emit(int level, const char *line)
{
    steno_client *c = atomic_load(&lws_log_client);
    if (!c || !c->cfg.log_fn)
        return;
    steno_log_level l = (level & LLL_ERR)                   ? STENO_LOG_ERROR
                        : (level & LLL_WARN)                ? STENO_LOG_WARN
                        : (level & (LLL_NOTICE | LLL_INFO)) ? STENO_LOG_INFO
                                                            : STENO_LOG_DEBUG;
    if (l > c->cfg.log_level)
        return;
    char buf[512];
    snprintf(buf, sizeof buf, "lws: %s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    c->cfg.log_fn(c->cfg.log_user, l, buf);
}

static void setup_lws_logging(steno_client *c)
{
    if (!c->cfg.log_fn) {
        lws_set_log_level(0, NULL);
        return;
    }
    int mask = LLL_ERR;
    if (c->cfg.log_level >= STENO_LOG_WARN)
        mask |= LLL_WARN;
    if (c->cfg.log_level >= STENO_LOG_DEBUG)
        mask |= LLL_NOTICE;
    atomic_store(&lws_log_client, c);
    lws_set_log_level(mask, lws_emit);
}

/* ---- randomness for backoff jitter (xorshift64*, seeded per client) ---- */

uint64_t steno__client_rand(void *ctx)
{
    steno_client *c = ctx;
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- wakes ---- */

bool steno__on_network_thread(const steno_client *c)
{
    return c->thread_started && pthread_equal(pthread_self(), c->thread);
}

void steno__client_wake(steno_client *c)
{
    /* At most one wake outstanding: the network thread clears the flag before its last drain,
     * so a wake that finds it set is covered by a drain still to come. */
    if (!atomic_exchange_explicit(&c->wake_pending, 1, memory_order_seq_cst))
        lws_cancel_service(c->ctx);
}

void steno__client_wake_session(steno_session *s)
{
    steno__wakeset_mark(s->wake_word, s->wake_mask);
    steno__client_wake(s->c);
}

static void service_one(void *owner, void *ctx)
{
    (void)ctx;
    steno__session_service(owner);
}

/* One look at everything the sessions that asked need. */
static void service_pass(steno_client *c)
{
    pthread_mutex_lock(&c->lock);
    steno_session *inc = c->incoming;
    c->incoming = NULL;
    pthread_mutex_unlock(&c->lock);
    /* adopt in open order */
    steno_session *rev = NULL;
    while (inc) {
        steno_session *nx = inc->inc_next;
        inc->inc_next = rev;
        rev = inc;
        inc = nx;
    }
    while (rev) {
        steno_session *nx = rev->inc_next;
        rev->inc_next = NULL;
        rev->next = c->sessions;
        if (c->sessions)
            c->sessions->pprev = &rev->next;
        rev->pprev = &c->sessions;
        c->sessions = rev;
        steno__gauge_add(c->m.sessions, 1);
        steno__wakeset_bind(&c->wakes, rev->wake_slot, rev);
        steno__session_adopt(rev);
        /* whatever it asked for before it was adopted (its bit may be gone already) */
        steno__session_service(rev);
        rev = nx;
    }
    steno__wakeset_drain(&c->wakes, service_one, NULL); /* service may destroy a session */
    steno__backfill_pump_all(c);
}

/* Network thread, after a wake (wakes coalesce). The flag stays set through the first pass, so
 * the chunks that complete meanwhile (a burst of captures finishing together) cost their threads
 * no pipe write and this thread no loop turn: the second pass, after the flag is cleared, finds
 * them. A session that asks after that pass began saw the flag clear and wakes the loop again
 * (both sides are seq_cst: the bit is set before the flag is read). */
static void service_wake(steno_client *c)
{
    service_pass(c);
    atomic_store_explicit(&c->wake_pending, 0, memory_order_seq_cst);
    service_pass(c);
}

void steno__client_session_gone(steno_client *c, steno_session *s)
{
    steno__timerheap_unreserve(&c->timers, s->timers_reserved);
    s->timers_reserved = 0;
    steno__wakeset_bind(&c->wakes, s->wake_slot, NULL);
    pthread_mutex_lock(&c->lock);
    steno__wakeset_give(&c->wakes, s->wake_slot);
    pthread_mutex_unlock(&c->lock);
    if (s->ep && s->ep->n_sessions)
        s->ep->n_sessions--;
    if (s->pprev) { /* adopted: on c->sessions */
        *s->pprev = s->next;
        if (s->next)
            s->next->pprev = s->pprev;
        s->next = NULL;
        s->pprev = NULL;
        steno__gauge_add(c->m.sessions, -1);
    }
    steno__client_breaker_unwait(s);
    steno__client_cq_remove(c, s);
}

/* ---- endpoints and breakers ---- */

steno__endpoint *steno__client_endpoint(steno_client *c, const char *key)
{
    for (steno__endpoint *e = c->endpoints; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    steno__endpoint *e = steno__calloc(&c->alloc, 1, sizeof *e);
    if (!e)
        return NULL;
    size_t n = strlen(key) + 1;
    e->key = steno__alloc(&c->alloc, n);
    if (!e->key) {
        steno__free(&c->alloc, e);
        return NULL;
    }
    memcpy(e->key, key, n);
    steno__breaker_config bc;
    steno__breaker_config_default(&bc);
    bc.failure_threshold = c->cfg.breaker_failure_threshold;
    bc.open_ms = c->cfg.breaker_open_ms;
    bc.open_multiplier = 2.0;
    /* The open period doubles once, no further: every second it stays open after the
     * endpoint is back is audio buffered by every session behind it (a 30-minute soak with
     * 60 s of doubling turned 6 s refusal windows into 15 s outages that overflowed rings),
     * and one probe per 4 s is still a trickle (15 a minute, whatever the session count). */
    bc.open_max_ms = 2 * bc.open_ms;
    if (steno__breaker_init(&e->breaker, &bc) != STENO_OK)
        steno__breaker_init(&e->breaker, NULL);
    steno__label l = {"endpoint", e->key};
    if (steno__metrics_gauge(c->metrics, "steno_breaker_state",
                             "Circuit breaker state per endpoint: 0 closed, 1 open, 2 half-open",
                             &l, 1, &e->m_state) != STENO_OK)
        e->m_state = NULL;
    e->next = c->endpoints;
    c->endpoints = e;
    return e;
}

void steno__client_breaker_wait(steno_session *s)
{
    steno__endpoint *ep = s->ep;
    if (s->waiting_breaker && s->bw_ep == ep)
        return;
    steno__client_breaker_unwait(s); /* it waited for another endpoint's (before a failover) */
    s->waiting_breaker = true;
    if (!ep)
        return;
    s->bw_ep = ep;
    s->bw_next = ep->waiters;
    if (ep->waiters)
        ep->waiters->bw_pprev = &s->bw_next;
    s->bw_pprev = &ep->waiters;
    ep->waiters = s;
}

void steno__client_breaker_unwait(steno_session *s)
{
    if (s->bw_pprev) {
        *s->bw_pprev = s->bw_next;
        if (s->bw_next)
            s->bw_next->bw_pprev = s->bw_pprev;
    }
    s->bw_ep = NULL;
    s->bw_next = NULL;
    s->bw_pprev = NULL;
    s->waiting_breaker = false;
}

/* A breaker changed (a probe reported): sessions waiting on it ask again now. */
void steno__client_breaker_report(steno_client *c, steno__endpoint *ep)
{
    (void)c;
    steno__gauge_set(ep->m_state, (double)steno__breaker_get_state(&ep->breaker));
    /* Move the list to a local head first: a kicked session that waits again goes onto the
     * endpoint's fresh list, not back onto this one, and one that leaves this one meanwhile
     * unlinks itself from it as from any other. */
    steno_session *local = ep->waiters, *s;
    ep->waiters = NULL;
    if (local)
        local->bw_pprev = &local;
    while ((s = local) != NULL) {
        steno__client_breaker_unwait(s);
        steno__session_kick(s);
    }
}

/* ---- connect slots ---- */

void steno__client_cq_push(steno_client *c, steno_session *s)
{
    if (s->in_cq)
        return;
    s->in_cq = true;
    s->cq_next = NULL;
    if (c->cq_tail)
        c->cq_tail->cq_next = s;
    else
        c->cq_head = s;
    c->cq_tail = s;
}

void steno__client_cq_remove(steno_client *c, steno_session *s)
{
    if (!s->in_cq)
        return;
    steno_session *prev = NULL;
    for (steno_session *q = c->cq_head; q; prev = q, q = q->cq_next) {
        if (q == s) {
            if (prev)
                prev->cq_next = q->cq_next;
            else
                c->cq_head = q->cq_next;
            if (c->cq_tail == q)
                c->cq_tail = prev;
            break;
        }
    }
    s->in_cq = false;
    s->cq_next = NULL;
}

void steno__client_release_slot(steno_client *c)
{
    if (c->active_connects)
        c->active_connects--;
    steno_session *s = c->cq_head;
    if (s) {
        steno__client_cq_remove(c, s);
        steno__session_kick(s);
    }
}

#if defined(LWS_WITH_MBEDTLS)
/*
 * With mbedTLS, lws never calls LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION: it checks
 * mbedTLS's verify flags after the handshake and fails the connection with "server's cert didn't
 * look good, ... X509_V_ERR = N: ...", N being its OpenSSL-style code for those flags (lws's
 * mbedTLS wrapper, ssl_pm_get_verify_result). Say the reason in the words OpenSSL would use, so
 * FAILED messages read the same on both backends, and mark the failure a rejected certificate
 * (fatal) rather than an interrupted handshake.
 */
static void steno__tls_mbedtls_reason(steno_session *s, const char *why)
{
    static const struct {
        int code;
        const char *reason;
    } reasons[] = {
        {24, "unable to get local issuer certificate (not signed by a trusted CA)"},
        {62, "host name mismatch"},
        {9, "certificate is not yet valid"},
        {10, "certificate has expired"},
        {67, "CA key too small"},
        {68, "CA signature digest too weak"},
    };
    const char *p = strstr(why, "X509_V_ERR = ");
    if (!p)
        return;
    int code = atoi(p + 13);
    const char *reason = "rejected by mbedTLS";
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == code)
            reason = reasons[i].reason;
    s->tls_cert_failed = true;
    snprintf(s->tls_reason, sizeof s->tls_reason, "server certificate: %s", reason);
}
#endif

/* ---- the lws protocol: wakes arrive here; per-connection reasons go to the session ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    steno__link *l = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    steno_session *s = l ? l->s : NULL;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        steno_client *c = lws_context_user(lws_get_context(wsi));
        if (!c)
            return 0;
        if (atomic_load(&c->stop))
            steno__evloop_stop(&c->evl);
        else
            service_wake(c);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (!s)
            return -1;
        return steno__link_append_headers(l, wsi, (unsigned char **)in,
                                          (*(unsigned char **)in) + len);
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* len is OpenSSL's preverify_ok: remember a rejected certificate, so the failure is
         * classified as a configuration error (fatal) rather than a network blip. The
         * verdict itself stays OpenSSL's (return 0). */
        if (s && !len) {
            s->tls_cert_failed = true;
#ifdef STENO_TLS_REASON
            /* OpenSSL's reason ("certificate has expired", "unable to get local issuer
             * certificate", "IP address mismatch") says what to fix; lws reports only
             * "SSL err 1". user is the X509_STORE_CTX here; the first rejection is the one
             * that ends the handshake. */
            if (!s->tls_reason[0]) {
                int e = X509_STORE_CTX_get_error((X509_STORE_CTX *)user);
                snprintf(s->tls_reason, sizeof s->tls_reason, "server certificate: %s",
                         X509_verify_cert_error_string(e));
            }
#endif
        }
        return 0;
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
        /* the response headers are still there: keep the provider's request id */
        if (s)
            steno__link_on_pre_establish(l, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!s)
            return -1;
        steno__link_on_established(l, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (s) {
            lws_set_opaque_user_data(wsi, NULL);
#if defined(LWS_WITH_MBEDTLS)
            steno__tls_mbedtls_reason(s, in ? (const char *)in : "");
#endif
            steno__link_on_connect_error(l, wsi, in ? (const char *)in : "");
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!s)
            return -1;
        return steno__link_on_receive(l, wsi, in, len);
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (s)
            steno__link_on_pong(l);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (s)
            steno__link_on_peer_close(l, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!s)
            return -1;
        return steno__link_on_writeable(l, wsi);
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s) {
            lws_set_opaque_user_data(wsi, NULL);
            steno__link_on_closed(l, wsi);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

/* rx_buffer_size is every connection's own receive buffer: results larger than it arrive in
 * pieces, which steno__wire_rx joins. 4 KiB holds a typical result whole and saves 12 KiB a
 * connection against lws's usual 16 KiB (a session's memory is its ring + 64 KiB over ws://).
 * tx_packet_size stays 16 KiB: without it lws sends at most rx_buffer_size per call, which would
 * split every text-framed audio message (base64 JSON, 4 to 9 KiB) over two writes. */
const struct lws_protocols steno__protocols[] = {
    {"steno", callback, 0, 4096, 0, NULL, 16384},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/*
 * The network thread. By default lws runs on a libev loop the client owns (epoll: a wake or a
 * timer costs the same with 10 or 10,000 connections, where poll() walks every descriptor on
 * every wake); evloop.c says why the client owns it and what each choice costs.
 */
static void *network_thread(void *arg)
{
    steno_client *c = arg;
    while (steno__evloop_run(&c->evl, c->ctx, &c->stop) != 0) {
        /* sessions depend on this loop, so keep it alive, without spinning */
        steno__log(c, STENO_LOG_ERROR, "lws_service failed; retrying");
        usleep(1000);
    }
    return NULL;
}

/* ---- metrics ---- */

static int register_metrics(steno_client *c)
{
    steno__metrics_config mc = {.max_metrics = 96, .max_buckets = 64, .string_bytes = 16384};
    int rc = steno__metrics_create(&mc, &c->alloc, &c->metrics);
    if (rc)
        return rc;
    steno__metrics *m = c->metrics;
    steno__client_metrics *k = &c->m;
#define CTR(field, name, help) steno__metrics_counter(m, name, help, NULL, 0, &k->field)
#define GAU(field, name, help) steno__metrics_gauge(m, name, help, NULL, 0, &k->field)
    CTR(attempts, "steno_connect_attempts_total", "Connection attempts (TCP+TLS+WebSocket)");
    CTR(successes, "steno_connect_successes_total", "Completed WebSocket handshakes");
    static const char *verdicts[] = {"retry",         "retry_after",    "fatal_auth",
                                     "fatal_request", "fatal_protocol", "done"};
    for (int i = 0; i < 5; i++) {
        steno__label l = {"class", verdicts[i]};
        steno__metrics_counter(m, "steno_connect_failures_total",
                               "Failed or lost connections by failure class", &l, 1, &k->fail[i]);
    }
    CTR(disconnects, "steno_disconnects_total", "Established connections lost unexpectedly");
    CTR(dead, "steno_dead_connections_total",
        "Connections declared dead by the liveness check (half-open, stalled)");
    CTR(reconnects, "steno_reconnects_total", "Successful reconnections");
    static const double bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    steno__metrics_histogram(m, "steno_reconnect_duration_seconds",
                             "Outage duration from losing a connection to the next handshake", NULL,
                             0, bounds, sizeof bounds / sizeof bounds[0], &k->reconnect_hist);
    GAU(buffered, "steno_chunks_buffered", "Audio chunks held for replay (not yet final)");
    CTR(sent, "steno_chunks_sent_total", "Audio chunks sent, replays included");
    CTR(replayed, "steno_chunks_replayed_total", "Audio chunks re-sent after a reconnect");
    steno__label lp = {"side", "producer"}, le = {"side", "evicted"};
    steno__metrics_counter(m, "steno_chunks_dropped_total",
                           "Audio chunks lost: producer = written into a full ring, evicted = "
                           "oldest dropped during an outage",
                           &lp, 1, &k->drop_producer);
    steno__metrics_counter(m, "steno_chunks_dropped_total",
                           "Audio chunks lost: producer = written into a full ring, evicted = "
                           "oldest dropped during an outage",
                           &le, 1, &k->drop_evicted);
    CTR(frames_written, "steno_samples_written_total", "Sample frames written by applications");
    CTR(frames_acked, "steno_samples_acked_total", "Sample frames covered by final results");
    CTR(bytes_sent, "steno_bytes_sent_total", "WebSocket payload bytes sent");
    CTR(bytes_received, "steno_bytes_received_total", "WebSocket payload bytes received");
    CTR(breaker_waits, "steno_breaker_waits_total",
        "Connection attempts deferred by an open circuit breaker");
    CTR(rate_limit_waits, "steno_rate_limit_waits_total",
        "Reconnects delayed by provider pushback (429, Retry-After)");
    CTR(pacing_waits, "steno_pacing_waits_total",
        "Audio chunks held back to respect the provider's maximum speed");
    GAU(budget_tokens, "steno_budget_tokens", "Retry budget tokens available");
    CTR(budget_exhausted, "steno_budget_exhausted_total",
        "Sessions failed because the retry budget was empty");
    CTR(parse_errors, "steno_parse_errors_total", "Server messages that could not be parsed");
    GAU(sessions, "steno_sessions_active", "Open sessions");
    CTR(finals, "steno_transcripts_final_total", "Final transcripts emitted");
    CTR(interims, "steno_transcripts_interim_total", "Interim transcripts emitted");
    GAU(last_msg_ts, "steno_last_message_timestamp_seconds",
        "Unix time of the last frame received on any connection (0: none yet)");
    GAU(last_msg_age, "steno_last_message_age_seconds",
        "Seconds since the last frame received on any connection (-1: none yet)");
#undef CTR
#undef GAU
    return STENO_OK;
}

steno_status steno_client_metrics_text(steno_client *c, char *buf, size_t len, size_t *needed)
{
    if (!c || (!buf && len))
        return STENO_ERR_INVALID_ARG;
    uint64_t last = atomic_load_explicit(&c->last_msg_unix_ms, memory_order_relaxed);
    if (last) {
        uint64_t now = steno__now_unix_ms();
        steno__gauge_set(c->m.last_msg_ts, (double)last / 1000.0);
        steno__gauge_set(c->m.last_msg_age, now > last ? (double)(now - last) / 1000.0 : 0.0);
    } else {
        steno__gauge_set(c->m.last_msg_age, -1);
    }
    size_t full = 0;
    int rc = steno__metrics_render(c->metrics, buf, len, &full);
    if (needed)
        *needed = full;
    return (steno_status)rc;
}

void steno__client_note_rx(steno_client *c)
{
    atomic_store_explicit(&c->last_msg_unix_ms, steno__now_unix_ms(), memory_order_relaxed);
}

/* ---- open / destroy ---- */

/*
 * libwebsockets 4.1 keeps the OpenSSL ex_data indices it uses (the wsi of an SSL, the reuse
 * record of a client SSL_CTX) in process-wide variables, and every lws_create_context() whose
 * options carry LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT allocates fresh ones over them. A vhost's
 * client SSL_CTX is found again at destroy through the index current THEN, so with two contexts
 * alive the older one's SSL_CTX (and the system CA store in it, ~350 KB) is never freed, and a
 * TLS handshake in flight while another context is created finds no wsi in its verify callback
 * (the certificate is then rejected), besides a data race on the index itself.
 *
 * So only the first context of the process does lws's global TLS init, and no later one
 * reallocates the indices. Client TLS still needs the option on every vhost (lws sets up the
 * client SSL_CTX only then), so the vhost is created explicitly with the option on it alone.
 * The lock makes "first" exact when clients are opened concurrently.
 */
static pthread_mutex_t lws_tls_init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool lws_tls_init_done;

/* The system trust store as one PEM bundle. OpenSSL finds it by itself; mbedTLS has no notion of
 * one, so lws on mbedTLS would trust nothing without a ca_file. SSL_CERT_FILE first, as OpenSSL
 * honours it, then the usual places of the distributions' bundles. */
static const char *system_ca_bundle(void)
{
#if defined(LWS_WITH_MBEDTLS)
    static const char *const bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu, Alpine, Arch */
        "/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
        "/etc/ssl/ca-bundle.pem",             /* openSUSE */
        "/etc/ssl/cert.pem",                  /* macOS, BSDs */
    };
    const char *env = getenv("SSL_CERT_FILE");
    if (env && *env && access(env, R_OK) == 0)
        return env;
    for (size_t i = 0; i < sizeof bundles / sizeof bundles[0]; i++)
        if (access(bundles[i], R_OK) == 0)
            return bundles[i];
#endif
    return NULL;
}

/* The network thread has stopped (or never started): lws's context, then the loop under it. */
static void destroy_lws_context(steno_client *c)
{
    if (!steno__evloop_destroy(&c->evl, c->ctx, &c->alloc))
        steno__log(c, STENO_LOG_ERROR, "internal: lws left %s handles open at destroy",
                   c->evl.name);
    c->ctx = NULL;
}

static steno_status create_lws_context(steno_client *c)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = steno__protocols;
    info.client_ssl_ca_filepath = c->ca_file ? c->ca_file : system_ca_bundle();
    info.user = c;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "steno";

    struct lws_context_creation_info cinfo = info;
    cinfo.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    steno_status rc = steno__evloop_init(&c->evl, &c->alloc, timers_fire, c);
    if (rc)
        return rc;
    void *loops[1] = {c->evl.loop};
    cinfo.options |= c->evl.lws_options;
    if (c->evl.loop)
        cinfo.foreign_loops = loops;

    pthread_mutex_lock(&lws_tls_init_lock);
    if (!lws_tls_init_done)
        cinfo.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    c->ctx = lws_create_context(&cinfo);
    if (c->ctx && (cinfo.options & LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT))
        lws_tls_init_done = true;
    pthread_mutex_unlock(&lws_tls_init_lock);
    if (!c->ctx) {
        destroy_lws_context(c);
        return STENO_ERR_INTERNAL;
    }

    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT; /* per vhost: set up its client TLS */
    /* lws (built with LWS_SSL_CLIENT_USE_OS_CA_CERTS, as Debian's) loads the system store even
     * when given a CA file: a ca_file must replace it, not add to it (as curl --cacert). */
    if (c->ca_file)
        info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    if (!lws_create_vhost(c->ctx, &info)) {
        destroy_lws_context(c);
        return STENO_ERR_INTERNAL;
    }
    return STENO_OK;
}

steno_status steno_client_open(const steno_client_config *cfg_in, steno_client **out, char *err,
                               size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out) {
        steno__errf(err, errlen, "steno_client_open: out is NULL");
        return STENO_ERR_INVALID_ARG;
    }
    *out = NULL;
    steno_client_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        memset(&cfg, 0, sizeof cfg);
    if (!cfg.max_concurrent_connects)
        cfg.max_concurrent_connects = DEFAULT_MAX_CONNECTS;
    if (!cfg.max_backfill_connections)
        cfg.max_backfill_connections = DEFAULT_MAX_BACKFILLS;
    if (!cfg.breaker_failure_threshold)
        cfg.breaker_failure_threshold = DEFAULT_BREAKER_THRESHOLD;
    if (!cfg.breaker_open_ms)
        cfg.breaker_open_ms = DEFAULT_BREAKER_OPEN_MS;
    if (!cfg.retry_budget_capacity)
        cfg.retry_budget_capacity = DEFAULT_BUDGET;
    if (!cfg.log_level)
        cfg.log_level = STENO_LOG_WARN;
    if (cfg.log_level < STENO_LOG_ERROR || cfg.log_level > STENO_LOG_DEBUG) {
        steno__errf(err, errlen, "client config: log_level %d is not a steno_log_level (1..4)",
                    (int)cfg.log_level);
        return STENO_ERR_CONFIG;
    }
    if ((cfg.allocator.alloc_fn == NULL) != (cfg.allocator.free_fn == NULL)) {
        steno__errf(err, errlen,
                    "client config: allocator needs both alloc_fn and free_fn (or neither)");
        return STENO_ERR_CONFIG;
    }
    if (cfg.ca_file && *cfg.ca_file) {
        /* lws only logs a CA file it cannot load and goes on with an empty trust store, so
         * every wss:// connection would then fail as if the server's certificate were bad: a
         * file without a PEM certificate (DER, a key, a directory, empty) is rejected here. */
        FILE *f = fopen(cfg.ca_file, "r");
        int rerr = f ? 0 : errno;
        bool in_cert = false, found = false;
        char line[256];
        while (f && !found && fgets(line, sizeof line, f)) {
            if (!strncmp(line, "-----BEGIN ", 11))
                in_cert = strstr(line, "CERTIFICATE-----") != NULL;
            else if (in_cert && !strncmp(line, "-----END ", 9))
                found = true;
        }
        if (f && ferror(f))
            rerr = errno ? errno : EIO;
        if (f)
            fclose(f);
        if (rerr) {
            steno__errf(err, errlen, "client config: ca_file '%s' cannot be read: %s", cfg.ca_file,
                        strerror(rerr));
            return STENO_ERR_CONFIG;
        }
        if (!found) {
            steno__errf(err, errlen,
                        "client config: ca_file '%s' holds no PEM certificate (-----BEGIN "
                        "CERTIFICATE-----); convert a DER file with 'openssl x509 -inform DER'",
                        cfg.ca_file);
            return STENO_ERR_CONFIG;
        }
    }

    steno_client *c = steno__calloc(&cfg.allocator, 1, sizeof *c);
    if (!c) {
        steno__errf(err, errlen, "out of memory allocating the client");
        return STENO_ERR_NOMEM;
    }
    c->alloc = cfg.allocator;
    c->cfg = cfg;
    steno__timerheap_init(&c->timers, &c->alloc);
    steno__wakeset_init(&c->wakes, &c->alloc);
    if (cfg.ca_file && *cfg.ca_file) {
        size_t n = strlen(cfg.ca_file) + 1;
        c->ca_file = steno__alloc(&c->alloc, n);
        if (!c->ca_file) {
            steno__free(&c->alloc, c);
            steno__errf(err, errlen, "out of memory");
            return STENO_ERR_NOMEM;
        }
        memcpy(c->ca_file, cfg.ca_file, n);
    }
    c->cfg.ca_file = c->ca_file;
    pthread_mutex_init(&c->lock, NULL);
    if (getrandom(&c->rng, sizeof c->rng, GRND_NONBLOCK) != (ssize_t)sizeof c->rng)
        c->rng = steno__now_unix_ms() ^ (uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9E3779B97F4A7C15ULL;

    steno__budget_config bcfg;
    steno__budget_config_default(&bcfg);
    bcfg.capacity = cfg.retry_budget_capacity;
    if (bcfg.transient_cost > bcfg.capacity)
        bcfg.transient_cost = bcfg.capacity;
    if (bcfg.server_cost > bcfg.capacity)
        bcfg.server_cost = bcfg.capacity;
    steno__budget_init(&c->budget, &bcfg);
    c->budget_on = !cfg.retry_budget_disable;

    int rc = register_metrics(c);
    if (rc) {
        steno__errf(err, errlen, "could not create the metrics registry: %s", steno_strerror(rc));
        goto fail;
    }
    steno__gauge_set(c->m.budget_tokens, steno__budget_available(&c->budget));

    setup_lws_logging(c);
    rc = create_lws_context(c);
    if (rc) {
        steno__errf(err, errlen,
                    "libwebsockets could not create its context (TLS set-up or out of fds)");
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, network_thread, c) != 0) {
        steno__errf(err, errlen, "could not start the network thread");
        rc = STENO_ERR_INTERNAL;
        goto fail;
    }
    c->thread_started = 1;
    *out = c;
    return STENO_OK;

fail:
    destroy_lws_context(c);
    if (atomic_load(&lws_log_client) == c)
        atomic_store(&lws_log_client, NULL);
    steno__metrics_destroy(c->metrics);
    pthread_mutex_destroy(&c->lock);
    steno__free(&c->alloc, c->ca_file);
    steno_allocator a = c->alloc;
    steno__free(&a, c);
    return (steno_status)rc;
}

void steno_client_destroy(steno_client *c)
{
    if (!c)
        return;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        steno_session *s = c->all;
        pthread_mutex_unlock(&c->lock);
        if (!s)
            break;
        steno_session_destroy(s);
    }
    atomic_store(&c->stop, 1);
    lws_cancel_service(c->ctx);
    if (c->thread_started)
        pthread_join(c->thread, NULL);
    c->thread_started = 0;
    steno__evloop_timer_cancel(&c->evl);
    destroy_lws_context(c);
    steno__timerheap_free(&c->timers);
    steno__wakeset_free(&c->wakes);
    if (atomic_load(&lws_log_client) == c) {
        atomic_store(&lws_log_client, NULL);
        lws_set_log_level(0, NULL);
    }
    for (steno__endpoint *e = c->endpoints, *nx; e; e = nx) {
        nx = e->next;
        steno__free(&c->alloc, e->key);
        steno__free(&c->alloc, e);
    }
    steno__metrics_destroy(c->metrics);
    pthread_mutex_destroy(&c->lock);
    steno__free(&c->alloc, c->ca_file);
    steno_allocator a = c->alloc;
    steno__free(&a, c);
}
