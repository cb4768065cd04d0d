/* backfill: the extra connections that replay an outage's backlog at the provider's pace while live
 * audio goes on. */
#include "backfill.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "wire.h"

#define ST_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->st.field, (n), memory_order_relaxed)

static void retry_cb(steno__timer *t);
static void conn_timeout_cb(steno__timer *t);
static void live_cb(steno__timer *t);
static void pace_cb(steno__timer *t);
static void try_connect(steno__bf *b);
static void finish_job(steno__bf *b, bool done);

/* A backfill connection sends at the provider's limit for seconds on end, where the live
 * connection only bursts after a reconnect: network jitter that bunches its frames up (the
 * provider clocks arrival, not sending) must not push it over. So it keeps 4 % under the
 * live connection's speed and 1 s of burst in reserve. */
static steno__pacing_config bf_pacing(const steno_session *s)
{
    steno__pacing_config pc = s->pacing.cfg;
    pc.speed_permille = pc.speed_permille * 96u / 100u;
    if (pc.burst_ms > 1000u)
        pc.burst_ms = pc.burst_ms - 1000u > 500u ? pc.burst_ms - 1000u : 500u;
    return pc;
}

int steno__backfill_create(steno_session *s, uint32_t n)
{
    s->n_bf = 0;
    s->bf = NULL;
    if (!n)
        return STENO_OK;
    s->bf = steno__calloc(s->a, n, sizeof *s->bf);
    if (!s->bf)
        return STENO_ERR_NOMEM;
    s->n_bf = n;
    steno__pacing_config pc = bf_pacing(s);
    for (uint32_t i = 0; i < n; i++) {
        steno__bf *b = &s->bf[i];
        b->s = s;
        b->link.s = s;
        b->link.bf = b;
        steno__sb_init(&b->rx, s->a);
        b->rx.max = s->rx.max;
        int rc = steno__timeline_create(&b->tl, s->a, s->cfg.sample_rate, s->cfg.ring_chunks + 2);
        if (rc == STENO_OK)
            rc = steno__pacing_init(&b->pacing, &pc, steno__now_ms());
        if (rc == STENO_OK)
            rc = steno__backoff_init(&b->bo, &s->bo.cfg, steno__client_rand, s->c);
        if (rc != STENO_OK)
            return rc;
    }
    return STENO_OK;
}

void steno__backfill_destroy(steno_session *s)
{
    for (uint32_t i = 0; i < s->n_bf; i++) {
        if (s->bf[i].pconn)
            s->prov->conn_free(s->a, s->bf[i].pconn);
        steno__timeline_destroy(s->bf[i].tl);
        steno__sb_free(&s->bf[i].rx);
        steno__free_secret(s->a, s->bf[i].cred);
    }
    steno__free(s->a, s->bf);
    s->bf = NULL;
    s->n_bf = 0;
}

uint32_t steno__backfill_busy(const steno_session *s)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_bf; i++)
        if (s->bf[i].job_id)
            k++;
    return k;
}

static void sched(steno__bf *b, steno__timer *t, steno__timer_cb cb, uint64_t ms)
{
    steno__timer_schedule(b->s->c, t, cb, ms);
}

/* Lets go of the wsi (lws finishes it; its callbacks find no link) and the connect slot. */
static void drop_conn(steno__bf *b)
{
    steno_client *c = b->s->c;
    if (b->wsi) {
        lws_set_opaque_user_data(b->wsi, NULL);
        lws_set_timeout(b->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        b->wsi = NULL;
    }
    b->conn = STENO__CONN_NONE;
    if (b->pconn) {
        b->s->prov->conn_free(b->s->a, b->pconn);
        b->pconn = NULL;
    }
    steno__timer_cancel(&b->sul_conn_to);
    steno__timer_cancel(&b->sul_live);
    steno__timer_cancel(&b->sul_pace);
    if (b->holds_slot) {
        b->holds_slot = false;
        steno__client_release_slot(c);
    }
    if (b->is_probe && b->breaker_passed && b->s->ep) {
        steno__breaker_probe_abandoned(&b->s->ep->breaker);
        steno__client_breaker_report(c, b->s->ep);
    }
    b->is_probe = b->breaker_passed = false;
}

/* The slot is free again (job done, or the session ended). */
static void release(steno__bf *b)
{
    drop_conn(b);
    steno__timer_cancel(&b->sul_retry);
    b->wants_slot = b->retry_wait = b->breaker_wait = false;
    bool freed = b->counted;
    if (b->counted) {
        b->counted = false;
        if (b->s->c->backfills_active)
            b->s->c->backfills_active--;
    }
    b->job_id = 0;
    steno__sb_reset(&b->rx);
    b->rx_skip = false;
    if (freed)
        b->s->c->backfill_slot_freed = true;
}

/* A client-wide backfill slot freed up: sessions whose jobs waited for the
 * client's cap start them now, oldest session first. Runs from the service
 * loop, never from inside another session's callback. */
void steno__backfill_pump_all(steno_client *c)
{
    if (!c->backfill_slot_freed)
        return;
    c->backfill_slot_freed = false;
    for (steno_session *s = c->sessions; s && c->backfills_active < c->cfg.max_backfill_connections;
         s = s->next)
        if (!s->terminal && steno__planner_next_queued(&s->plan))
            steno__backfill_pump(s);
}

void steno__backfill_abandon_all(steno_session *s)
{
    for (uint32_t i = 0; i < s->n_bf; i++)
        if (s->bf[i].job_id)
            release(&s->bf[i]);
}

void steno__backfill_pump(steno_session *s)
{
    steno_client *c = s->c;
    if (s->close_requested && !s->drained && steno__get_state(s) == STENO_STATE_CLOSED)
        return;
    for (uint32_t i = 0; i < s->n_bf; i++) {
        steno__bf *b = &s->bf[i];
        if (b->job_id)
            continue;
        if (c->backfills_active >= c->cfg.max_backfill_connections)
            return; /* the client's cap: the job waits (the live connection keeps going) */
        steno__job *j = steno__planner_next_queued(&s->plan);
        if (!j)
            return;
        b->job_id = j->id;
        b->counted = true;
        c->backfills_active++;
        steno__planner_job_start(&s->plan, j->id);
        steno__backoff_reset(&b->bo);
        b->attempts = 0;
        steno__slog(s, STENO_LOG_INFO, "backfill: replaying %.2f s of buffered audio (%.2f-%.2f s)",
                    (double)(j->hi - j->fin) / s->cfg.sample_rate,
                    (double)j->fin / s->cfg.sample_rate, (double)j->hi / s->cfg.sample_rate);
        try_connect(b);
    }
}

/* A connect slot freed up or the breaker reported: connections waiting for either try now.
 * A breaker wait is a timer set for when the breaker would next answer (up to a probe's
 * timeout); a probe's outcome ends it at once, as for the live connection. */
void steno__backfill_kick(steno_session *s)
{
    for (uint32_t i = 0; i < s->n_bf; i++) {
        steno__bf *b = &s->bf[i];
        if (!b->job_id)
            continue;
        if (b->breaker_wait) {
            b->breaker_wait = b->retry_wait = false;
            steno__timer_cancel(&b->sul_retry);
            try_connect(b);
        } else if (b->wants_slot) {
            b->wants_slot = false;
            try_connect(b);
        }
    }
}

/* The job ended (done) or cannot go on: free the slot and start what waits. */
static void finish_job(steno__bf *b, bool done)
{
    steno_session *s = b->s;
    if (done)
        steno__planner_job_done(&s->plan, b->job_id);
    else
        steno__planner_job_requeue(&s->plan, b->job_id);
    release(b);
    steno__session_ack(s);
    if (!s->terminal)
        steno__backfill_pump(s);
    steno__backfill_pump_all(s->c);
}

/* A failure on the way to or on the backfill connection: classify, then retry
 * with backoff (the job stays with this slot) or fail the session when fatal. */
static void conn_failed(steno__bf *b, steno__failure_info *info, bool was_open, const char *why)
{
    steno_session *s = b->s;
    steno_client *c = s->c;
    uint64_t now = steno__now_ms();
    uint64_t wall = steno__now_unix_ms();
    info->now_unix = (int64_t)(wall / 1000u);
    info->now_unix_ms = (int64_t)wall;
    steno__classification cls;
    steno__classify(info, &cls);
    if (was_open && b->closed_self) {
        /* we closed it (client_closes) after its flush was answered */
        cls.verdict = STENO__DONE;
        cls.status = STENO_OK;
    }
    b->closed_self = b->close_self = false;
    if (cls.verdict == STENO__DONE && b->closestream_sent) {
        finish_job(b, true);
        return;
    }
    if (cls.pacing) {
        /* The provider clocked us too fast (jitter bunched frames up): the live connection
         * is fine, the job's finals so far stand; retry it rather than fail the session. */
        steno__slog(s, STENO_LOG_WARN, "backfill: closed for its pace (%s); retrying",
                    info->close_reason);
        cls.verdict = STENO__RETRY;
        cls.failure_class = STENO__FAILURE_SERVER;
    }
    if (!was_open && b->breaker_passed && s->ep)
        steno__session_breaker_failure(s, b->is_probe, now);
    b->breaker_passed = b->is_probe = false;
    drop_conn(b);
    if (steno__verdict_is_fatal(cls.verdict)) {
        char msg[512];
        snprintf(msg, sizeof msg, "backfill connection: %s%s%s: %s", cls.cause,
                 why && *why ? " " : "", why && *why ? why : "", steno_strerror(cls.status));
        steno__session_fail(s, cls.status, info->http_status, info->close_code, msg, b->prov_err);
        return;
    }
    if (cls.verdict == STENO__DONE)
        cls.failure_class = STENO__FAILURE_TRANSIENT;
    bool healthy = false;
    if (was_open) {
        healthy = now - b->connected_at_ms >= s->cfg.healthy_after_ms;
        steno__backoff_on_disconnect(&b->bo, now, healthy);
    }
    if (c->budget_on && !(was_open && healthy)) {
        if (steno__budget_acquire(&c->budget, cls.failure_class, &b->tok) != STENO_OK) {
            steno__counter_inc(c->m.budget_exhausted);
            char msg[512];
            snprintf(msg, sizeof msg,
                     "the client's retry budget is exhausted (too many failures across its "
                     "sessions); last backfill error: %s",
                     cls.cause);
            steno__session_fail(s, STENO_ERR_BUDGET_EXHAUSTED, info->http_status, info->close_code,
                                msg, b->prov_err);
            return;
        }
    }
    uint64_t delay = 0;
    if (steno__backoff_next(&b->bo, now, cls.retry_after_ms, &delay) != STENO_OK) {
        /* This job's connection keeps failing: the audio stays in the ring, held for it;
         * give the job back so a later pump (or the session's end) decides. */
        steno__slog(s, STENO_LOG_WARN, "backfill: gave up reconnecting (%s)", cls.cause);
        char msg[512];
        snprintf(msg, sizeof msg,
                 "gave up reconnecting the backfill connection after %u attempts; last error: %s",
                 b->attempts, cls.cause);
        steno__session_fail(s, STENO_ERR_RETRIES_EXHAUSTED, info->http_status, info->close_code,
                            msg, b->prov_err);
        return;
    }
    steno__slog(s, STENO_LOG_INFO, "backfill: reconnecting in %llu ms: %s",
                (unsigned long long)delay, cls.cause);
    b->retry_wait = true;
    sched(b, &b->sul_retry, retry_cb, delay);
}

void steno__backfill_drop_all(steno_session *s)
{
    for (uint32_t i = 0; i < s->n_bf; i++) {
        steno__bf *b = &s->bf[i];
        if (!b->job_id)
            continue;
        drop_conn(b);
        steno__timer_cancel(&b->sul_retry);
        b->retry_wait = b->breaker_wait = b->wants_slot = false;
        steno__sb_reset(&b->rx);
        b->rx_skip = false;
    }
}

void steno__backfill_restart_all(steno_session *s)
{
    steno__pacing_config pc = bf_pacing(s);
    uint64_t now = steno__now_ms();
    for (uint32_t i = 0; i < s->n_bf; i++) {
        steno__bf *b = &s->bf[i];
        steno__pacing_init(&b->pacing, &pc, now);
        if (!b->job_id)
            continue;
        b->attempts = 0;
        steno__backoff_on_connected(&b->bo, now); /* a new endpoint: a fresh backoff */
        b->retry_wait = true;
        sched(b, &b->sul_retry, retry_cb, 0);
    }
}

static void retry_cb(steno__timer *t)
{
    steno__bf *b = lws_container_of(t, steno__bf, sul_retry);
    b->retry_wait = b->breaker_wait = false;
    try_connect(b);
}

static void conn_timeout_cb(steno__timer *t)
{
    steno__bf *b = lws_container_of(t, steno__bf, sul_conn_to);
    if (b->conn != STENO__CONN_HANDSHAKE)
        return;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = STENO__PHASE_HANDSHAKE;
    info.connect_timeout = true;
    conn_failed(b, &info, false, "no WebSocket handshake within connect_timeout_ms");
}

static void try_connect(steno__bf *b)
{
    steno_session *s = b->s;
    steno_client *c = s->c;
    if (!b->job_id || s->terminal || b->conn != STENO__CONN_NONE || b->retry_wait)
        return;
    if (!steno__planner_job(&s->plan, b->job_id)) {
        finish_job(b, true); /* its audio left the ring meanwhile */
        return;
    }
    uint64_t now = steno__now_ms();
    if (!b->holds_slot) {
        if (!steno__session_take_slot(s)) {
            b->wants_slot = true;
            return;
        }
        b->holds_slot = true;
    }
    if (!b->breaker_passed) {
        bool probe = false;
        uint64_t retry_at = now;
        if (steno__breaker_allow(&s->ep->breaker, now, &probe, &retry_at) != STENO_OK) {
            b->holds_slot = false;
            steno__client_release_slot(c);
            steno__counter_inc(c->m.breaker_waits);
            steno__slog(s, STENO_LOG_DEBUG,
                        "backfill: the circuit breaker holds the connection for %llu ms",
                        (unsigned long long)(retry_at > now ? retry_at - now : 1));
            b->retry_wait = b->breaker_wait = true;
            steno__client_breaker_wait(s); /* steno__client_breaker_report kicks the session */
            sched(b, &b->sul_retry, retry_cb, retry_at > now ? retry_at - now : 1);
            return;
        }
        b->is_probe = probe;
        b->breaker_passed = true;
    }
    char msg[200];
    steno_status crc = steno__session_credential(s, &b->cred, msg, sizeof msg);
    if (crc != STENO_OK && crc != STENO_ERR_NOMEM) { /* no memory: a failed attempt, below */
        drop_conn(b);
        steno__session_fail(s, crc, 0, 0, msg, "");
        return;
    }
    b->attempts++;
    atomic_fetch_add_explicit(&s->st.attempts, 1, memory_order_relaxed);
    steno__counter_inc(c->m.attempts);
    b->http_status = b->close_code = 0;
    b->close_reason[0] = b->prov_err[0] = b->retry_after[0] = '\0';
    b->conn = STENO__CONN_HANDSHAKE;
    struct lws *w = crc == STENO_OK ? steno__wire_connect(s, &b->link, b->cred, &b->wsi) : NULL;
    if (!w) {
        if (b->conn == STENO__CONN_HANDSHAKE) {
            b->wsi = NULL;
            steno__failure_info info;
            memset(&info, 0, sizeof info);
            info.phase = STENO__PHASE_HANDSHAKE;
            conn_failed(b, &info, false, crc == STENO_OK ? "could not start the connection" : msg);
        }
        return;
    }
    b->wsi = w;
    sched(b, &b->sul_conn_to, conn_timeout_cb, s->cfg.connect_timeout_ms);
}

int steno__backfill_append_headers(steno__bf *b, struct lws *wsi, unsigned char **p,
                                   unsigned char *end)
{
    return steno__wire_headers(b->s, &b->cred, wsi, p, end);
}

void steno__backfill_on_connect_error(steno__bf *b, struct lws *wsi, const char *why)
{
    if (b->conn != STENO__CONN_HANDSHAKE)
        return;
    steno_session *s = b->s;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = STENO__PHASE_HANDSHAKE;
    info.http_status = (int)lws_http_client_http_response(wsi);
    if (info.http_status && info.http_status != 101) {
        if (lws_hdr_copy(wsi, b->retry_after, sizeof b->retry_after, WSI_TOKEN_HTTP_RETRY_AFTER) >
            0)
            info.retry_after = b->retry_after;
        steno__wire_copy_header(wsi, s->prov->error_header, b->prov_err, sizeof b->prov_err);
        if (b->prov_err[0])
            info.provider_error = b->prov_err;
    }
    if (s->tls_cert_failed)
        info.tls = STENO__TLS_CERTIFICATE;
    b->http_status = info.http_status;
    b->wsi = NULL; /* lws frees it after this callback */
    conn_failed(b, &info, false, info.http_status ? NULL : why);
}

/* The chunk holding frame f, from the oldest in the ring; written when none is. */
static uint64_t seq_of_frame(steno_session *s, uint64_t f)
{
    uint64_t w = steno__ring_written(s->ring);
    for (uint64_t q = steno__ring_acked(s->ring); q < w; q++) {
        steno__chunk ch;
        if (steno__ring_peek(s->ring, q, &ch) == STENO_OK && ch.first_frame + ch.frames > f)
            return q;
    }
    return w;
}

static void schedule_live(steno__bf *b, uint64_t now);

void steno__backfill_on_established(steno__bf *b, struct lws *wsi)
{
    steno_session *s = b->s;
    steno_client *c = s->c;
    steno__job *j = steno__planner_job(&s->plan, b->job_id);
    if (b->conn != STENO__CONN_HANDSHAKE) {
        lws_set_opaque_user_data(wsi, NULL);
        return;
    }
    if (!j) {
        lws_set_opaque_user_data(wsi, NULL);
        b->wsi = NULL;
        finish_job(b, true); /* its audio left the ring meanwhile */
        return;
    }
    if (s->prov->conn_new && !(b->pconn = s->prov->conn_new(s->a, s->psess, &s->ap, &s->opts, 1))) {
        b->wsi = wsi; /* drop_conn lets lws finish it */
        steno__failure_info info;
        memset(&info, 0, sizeof info);
        info.phase = STENO__PHASE_OPEN;
        conn_failed(b, &info, false, "(out of memory for the provider's connection state)");
        return;
    }
    uint64_t now = steno__now_ms();
    b->wsi = wsi;
    b->conn = STENO__CONN_OPEN;
    steno__timer_cancel(&b->sul_conn_to);
    if (b->holds_slot) {
        b->holds_slot = false;
        steno__client_release_slot(c);
    }
    if (b->breaker_passed && s->ep)
        steno__session_breaker_success(s, now);
    b->breaker_passed = b->is_probe = false;
    if (c->budget_on)
        steno__budget_on_success(&c->budget, &b->tok);
    steno__backoff_on_connected(&b->bo, now);
    atomic_fetch_add_explicit(&s->st.connects, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->st.backfills, 1, memory_order_relaxed);
    steno__counter_inc(c->m.successes);
    b->attempts = 0;

    /* A new lane: the provider's clock restarts; what is final stays final, and
     * the live connection owns everything from the seam on. */
    steno__timeline_reset(b->tl); /* the slot may have carried a later job before */
    steno__timeline_raise_finalized(b->tl, j->fin);
    steno__timeline_set_limit(b->tl, j->hi);
    b->next_seq = seq_of_frame(s, j->fin);
    b->audio_sent = b->closestream_sent = b->fin_pending = b->fin_outstanding = false;
    b->close_self = b->closed_self = false;
    b->close_fin = STENO__CLOSE_FIN_NONE;
    b->close_fin_asks = 0;
    b->fin_q.n = 0;
    b->awaiting_pong = b->ping_pending = false;
    b->initial_pending = s->prov->initial_message != NULL;
    b->connected_at_ms = b->last_rx_ms = now;
    b->next_ping_ms = now + s->cfg.ping_interval_ms;
    b->rx.len = 0;
    steno__slog(s, STENO_LOG_INFO, "backfill connected: replaying from %.2f s to %.2f s",
                (double)j->fin / s->cfg.sample_rate, (double)j->hi / s->cfg.sample_rate);
    schedule_live(b, now);
    lws_callback_on_writable(wsi);
}

void steno__backfill_on_peer_close(steno__bf *b, const uint8_t *payload, size_t len)
{
    steno__wire_peer_close(payload, len, &b->close_code, b->close_reason, sizeof b->close_reason);
}

void steno__backfill_on_closed(steno__bf *b, struct lws *wsi)
{
    if (b->conn == STENO__CONN_HANDSHAKE) {
        steno__backfill_on_connect_error(b, wsi, "connection closed during the handshake");
        return;
    }
    if (b->conn != STENO__CONN_OPEN)
        return;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = b->closestream_sent ? STENO__PHASE_CLOSING : STENO__PHASE_OPEN;
    info.close_code = b->close_code;
    info.close_reason = b->close_reason[0] ? b->close_reason : NULL;
    info.provider_error = b->prov_err[0] ? b->prov_err : NULL;
    b->wsi = NULL; /* lws frees it after this callback */
    char why[200];
    snprintf(why, sizeof why, "(backfill connection closed with %d)", b->close_code);
    conn_failed(b, &info, true, why);
}

static void handle_one(steno__bf *b, steno__msg *mp);

static void handle_message(steno__bf *b, const char *text, size_t len)
{
    steno_session *s = b->s;
    steno__msg m;
    void *pconn = b->pconn;
    if (s->prov->parse(s->a, pconn, text, len, &m) != STENO_OK) {
        ST_ADD(s, parse_errors, 1);
        steno__counter_inc(s->c->m.parse_errors);
    } else {
        handle_one(b, &m);
    }
    /* Messages the adapter held back for this one (see the live connection's). */
    while (s->prov->next_message && b->pconn == pconn && pconn && b->conn == STENO__CONN_OPEN &&
           s->prov->next_message(s->a, pconn, &m) == 1)
        handle_one(b, &m);
}

static void handle_one(steno__bf *b, steno__msg *mp)
{
    steno_session *s = b->s;
    steno__msg m = *mp;
    ST_ADD(s, messages_received, 1);
    if (m.type == STENO__MSG_RESULTS) {
        steno__session_deliver_results(s, b->tl, b, &m);
    } else if (m.type == STENO__MSG_ERROR) {
        snprintf(b->prov_err, sizeof b->prov_err, "%s%s%s", m.error_code,
                 (m.error_code[0] && m.error_message[0]) ? ": " : "", m.error_message);
        steno__slog(s, STENO_LOG_WARN, "backfill: provider error message: %s", b->prov_err);
    } else if (m.type == STENO__MSG_GO_AWAY) {
        /* A backfill connection lives for one job: if the server ends it first, the job is
         * retried from what is final, like after any other loss. */
        steno__slog(s, STENO_LOG_DEBUG, "backfill: provider ends the connection in %.1f s",
                    m.time_left_s);
    }
    /* Utterance ends, speech starts and metadata of a replay describe audio the
     * app already heard about from the live connection: not repeated. */
    steno__msg_release(&m);
}

int steno__backfill_on_receive(steno__bf *b, struct lws *wsi, const void *in, size_t len)
{
    if (b->conn != STENO__CONN_OPEN)
        return 0;
    b->last_rx_ms = steno__now_ms();
    if (steno__wire_rx(b->s, wsi, &b->rx, &b->rx_skip, in, len)) {
        handle_message(b, b->rx.p, b->rx.len);
        steno__wire_rx_done(&b->rx, &b->rx_skip);
    }
    return 0;
}

void steno__backfill_on_pong(steno__bf *b)
{
    b->last_rx_ms = steno__now_ms();
    b->awaiting_pong = false;
}

static void want_write(steno__bf *b)
{
    if (b->wsi && b->conn == STENO__CONN_OPEN)
        lws_callback_on_writable(b->wsi);
}

static void pace_cb(steno__timer *t)
{
    want_write(lws_container_of(t, steno__bf, sul_pace));
}

static void schedule_live(steno__bf *b, uint64_t now)
{
    const steno_session_config *cfg = &b->s->cfg;
    uint64_t next = b->next_ping_ms;
    if (b->awaiting_pong && b->ping_sent_ms + cfg->pong_timeout_ms < next)
        next = b->ping_sent_ms + cfg->pong_timeout_ms;
    if (b->last_rx_ms + cfg->dead_after_ms < next)
        next = b->last_rx_ms + cfg->dead_after_ms;
    sched(b, &b->sul_live, live_cb, next > now ? next - now : 1);
}

static void live_cb(steno__timer *t)
{
    steno__bf *b = lws_container_of(t, steno__bf, sul_live);
    steno_session *s = b->s;
    if (b->conn != STENO__CONN_OPEN || s->terminal)
        return;
    uint64_t now = steno__now_ms();
    bool pong_late = b->awaiting_pong && now - b->ping_sent_ms >= s->cfg.pong_timeout_ms;
    bool silent = pong_late || now - b->last_rx_ms >= s->cfg.dead_after_ms;
    if (silent && steno__wire_peer_waiting(b->wsi)) {
        sched(b, &b->sul_live, live_cb, 10); /* unread, not silent: see the session's live_cb */
        return;
    }
    if (silent) {
        atomic_fetch_add_explicit(&s->st.dead, 1, memory_order_relaxed);
        steno__counter_inc(s->c->m.dead);
        steno__failure_info info;
        memset(&info, 0, sizeof info);
        info.phase = b->closestream_sent ? STENO__PHASE_CLOSING : STENO__PHASE_OPEN;
        info.liveness_timeout = true;
        conn_failed(b, &info, true,
                    pong_late ? "(backfill: no pong within pong_timeout_ms)"
                              : "(backfill: nothing received for dead_after_ms)");
        return;
    }
    if (now >= b->next_ping_ms) {
        b->ping_pending = true;
        b->next_ping_ms = now + s->cfg.ping_interval_ms;
    }
    want_write(b);
    schedule_live(b, now);
}

int steno__backfill_on_writeable(steno__bf *b, struct lws *wsi)
{
    steno_session *s = b->s;
    steno_client *c = s->c;
    if (b->conn != STENO__CONN_OPEN || wsi != b->wsi)
        return 0;
    if (b->close_self) {
        /* client_closes: close_text went out last time; the job ends with our own close */
        b->close_self = false;
        b->closed_self = true;
        static const char why[] = "end of stream";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    steno__job *j = steno__planner_job(&s->plan, b->job_id);
    if (!j) {
        /* its audio left the ring (evicted): nothing left to replay */
        finish_job(b, true);
        return -1;
    }
    uint64_t now = steno__now_ms();
    if (b->ping_pending) {
        b->ping_pending = false;
        if (lws_write(wsi, s->scratch + LWS_PRE, 0, LWS_WRITE_PING) < 0)
            return -1;
        ST_ADD(s, pings, 1);
        if (!b->awaiting_pong) {
            b->awaiting_pong = true;
            b->ping_sent_ms = now;
        }
        goto more;
    }
    if (b->initial_pending) {
        b->initial_pending = false;
        steno__sb_reset(&s->tx);
        if (s->prov->initial_message(b->pconn, &s->ap, &s->opts, &s->tx) != STENO_OK ||
            steno__wire_send_text(s, wsi, steno__sb_cstr(&s->tx)))
            return -1;
        goto more;
    }
    if (b->closestream_sent)
        return 0;
    if (b->fin_pending) {
        b->fin_pending = false;
        b->fin_outstanding = true;
        ST_ADD(s, auto_finalizes, 1);
        steno__fin_queue_push(&b->fin_q, steno__timeline_connection_frames(b->tl));
        if (steno__wire_send_finalize(s, wsi, b->pconn))
            return -1;
        goto more;
    }
    if (b->next_seq < steno__ring_acked(s->ring))
        b->next_seq = steno__ring_acked(s->ring); /* evicted meanwhile: reported as dropped */
    steno__chunk ch;
    if (steno__ring_peek(s->ring, b->next_seq, &ch) == STENO_OK && ch.first_frame < j->hi) {
        if (!b->audio_sent) {
            steno__pacing_reset(&b->pacing, now); /* the provider times us from the first audio */
            b->audio_sent = true;
        }
        uint32_t pad = steno__wire_pad_frames(s, &ch);
        uint64_t wait = steno__pacing_wait_ms(&b->pacing, now, ch.frames + pad);
        if (wait) {
            steno__pacing_allow(&b->pacing, now, ch.frames + pad); /* counts the wait */
            sched(b, &b->sul_pace, pace_cb, wait);
            return 0;
        }
        if (steno__timeline_on_sent(b->tl, ch.first_frame, ch.frames) != STENO_OK) {
            sched(b, &b->sul_pace, pace_cb, 50);
            return 0;
        }
        if (steno__timeline_on_padding(b->tl, pad) != STENO_OK)
            return -1;
        steno__pacing_allow(&b->pacing, now, ch.frames + pad);
        uint32_t n = 0;
        if (steno__wire_send_audio(s, wsi, b->pconn, &ch, pad, &n))
            return -1;
        b->next_seq = ch.seq + 1;
        /* Acks that keep up here too: a job's progress is its finals, and a connection
         * lost mid-job replays from the last one. */
        if (s->plan.cfg.finalize_frames && s->prov->finalize_text && !b->fin_outstanding) {
            uint64_t end = ch.first_frame + ch.frames;
            uint64_t fin = steno__timeline_finalized_frame(b->tl);
            if (end > fin && end - fin >= s->plan.cfg.finalize_frames &&
                steno__planner_should_finalize(&s->plan, end, fin,
                                               steno__session_boundary_level(s, ch.seq + 1), false))
                b->fin_pending = true;
        }
        ST_ADD(s, chunks_sent, 1);
        ST_ADD(s, samples_sent, ch.frames);
        ST_ADD(s, chunks_backfilled, 1);
        steno__counter_inc(c->m.sent);
        steno__counter_inc(c->m.replayed);
        goto more;
    }
    /* Every chunk of the job is out (or the job's chunks reached the written end,
     * which cannot happen: the seam is at or below written). End the stream: the
     * provider flushes its finals and closes. One whose close_text may not flush is
     * asked for its finals first, and closed once they are in. */
    if (s->prov->finalize_before_close && s->prov->finalize_text &&
        b->close_fin != STENO__CLOSE_FIN_DONE && steno__timeline_finalized_frame(b->tl) < j->hi) {
        if (b->close_fin == STENO__CLOSE_FIN_NONE) {
            b->close_fin = STENO__CLOSE_FIN_SENT;
            steno__fin_queue_push(&b->fin_q, steno__timeline_connection_frames(b->tl));
            if (steno__wire_send_finalize(s, wsi, b->pconn))
                return -1;
        }
        return 0;
    }
    b->closestream_sent = true;
    if (steno__wire_send_text(s, wsi, s->prov->close_text))
        return -1;
    if (s->prov->client_closes) {
        b->close_self = true;
        goto more;
    }
    return 0;
more:
    want_write(b);
    return 0;
}
