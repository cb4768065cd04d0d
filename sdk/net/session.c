/* session: one audio stream's connection state machine, on the network thread. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backfill.h"
#include "engine.h"
#include "wire.h"

/* ---- small helpers ---- */

#define ST_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->st.field, (n), memory_order_relaxed)

static void sched(steno_session *s, steno__timer *t, steno__timer_cb cb, uint64_t ms)
{
    steno__timer_schedule(s->c, t, cb, ms);
}

static void cancel_timers(steno_session *s)
{
    steno__timer_cancel(&s->sul_retry);
    steno__timer_cancel(&s->sul_conn_to);
    steno__timer_cancel(&s->sul_live);
    steno__timer_cancel(&s->sul_pace);
    steno__timer_cancel(&s->sul_close);
    steno__timer_cancel(&s->sul_evict);
    steno__timer_cancel(&s->sul_switch);
    steno__timer_cancel(&s->sul_failback);
    steno__timer_cancel(&s->sul_goaway);
}

static double secs(const steno_session *s, uint64_t frame)
{
    return steno__timeline_seconds(s->tl, frame);
}

static uint64_t unfinalized_frames(const steno_session *s)
{
    steno__ring_stats rs;
    steno__ring_stats_get(s->ring, &rs);
    uint64_t gone = rs.frames_acked + rs.frames_dropped + rs.frames_evicted;
    return rs.frames_in > gone ? rs.frames_in - gone : 0;
}

static void retry_cb(steno__timer *sul);
static void conn_timeout_cb(steno__timer *sul);
static void live_cb(steno__timer *sul);
static void pace_cb(steno__timer *sul);
static void close_cb(steno__timer *sul);
static void evict_cb(steno__timer *sul);
static void switch_cb(steno__timer *sul);
static void failback_cb(steno__timer *sul);
static void want_write(steno_session *s);
static bool failover_on_failure(steno_session *s, const steno__classification *cls, int http_status,
                                bool was_open, const char *why, bool exhausted);
static void try_connect(steno_session *s);

/* Metrics fed from ring counters, as deltas since the last sync (network thread). */
static void sync_metrics(steno_session *s)
{
    steno__client_metrics *m = &s->c->m;
    steno__ring_stats rs;
    steno__ring_stats_get(s->ring, &rs);
    if (rs.frames_in > s->m_written_reported) {
        steno__counter_add(m->frames_written, rs.frames_in - s->m_written_reported);
        s->m_written_reported = rs.frames_in;
    }
    if (rs.frames_acked > s->m_acked_reported) {
        steno__counter_add(m->frames_acked, rs.frames_acked - s->m_acked_reported);
        s->m_acked_reported = rs.frames_acked;
    }
    uint64_t buffered = steno__ring_written(s->ring) - steno__ring_acked(s->ring);
    steno__gauge_add(m->buffered, (double)buffered - (double)s->m_buffered_reported);
    s->m_buffered_reported = buffered;
}

/* Drop our hold on the current wsi: lws finishes it asynchronously; its callbacks find no
 * session (opaque NULL) and are ignored. */
static void abandon_conn(steno_session *s)
{
    if (s->wsi) {
        lws_set_opaque_user_data(s->wsi, NULL);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        s->wsi = NULL;
    }
    s->conn = STENO__CONN_NONE;
    if (s->pconn) {
        s->prov->conn_free(s->a, s->pconn);
        s->pconn = NULL;
    }
    steno__timer_cancel(&s->sul_conn_to);
    steno__timer_cancel(&s->sul_live);
    steno__timer_cancel(&s->sul_pace);
    steno__timer_cancel(&s->sul_goaway); /* that connection's announced end */
    if (s->holds_slot) {
        s->holds_slot = false;
        steno__client_release_slot(s->c);
    }
}

/* Give back a half-open breaker probe we hold without an outcome. */
static void drop_probe(steno_session *s)
{
    if (s->is_probe && s->breaker_passed && s->ep) {
        steno__breaker_probe_abandoned(&s->ep->breaker);
        steno__client_breaker_report(s->c, s->ep);
    }
    s->is_probe = false;
    s->breaker_passed = false;
}

static void emit_dropped(steno_session *s, const steno__range *r, int producer)
{
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_AUDIO_DROPPED;
    ev.u.audio_dropped.first_sample = r->first_frame;
    ev.u.audio_dropped.last_sample = r->last_frame;
    ev.u.audio_dropped.samples = r->frames;
    ev.u.audio_dropped.producer_side = producer;
    uint32_t sr = s->cfg.sample_rate;
    steno__slog(s, STENO_LOG_WARN, "lost %.2f s of audio (%.2f-%.2f s): %s", (double)r->frames / sr,
                (double)r->first_frame / sr, (double)(r->last_frame + 1) / sr,
                producer ? "the ring was full when it was captured"
                         : "evicted from a full ring during an outage");
    steno__emit(s, &ev);
}

static void drain_dropped(steno_session *s)
{
    steno__range r;
    while (steno__ring_take_dropped(s->ring, &r) == STENO_OK)
        emit_dropped(s, &r, 1);
}

/* The producer-drop counter in metrics follows the ring's count. */
static uint64_t reported_chunks_dropped(steno_session *s, int evicted)
{
    steno__ring_stats rs;
    steno__ring_stats_get(s->ring, &rs);
    return evicted ? rs.chunks_evicted : rs.chunks_dropped;
}

static void flush_evicted(steno_session *s);
static void count_jobs(steno_session *s);

static void terminal_cleanup(steno_session *s)
{
    flush_evicted(s);
    steno__emit_held(s, NULL); /* ordered finals still held: deliver them before the end */
    steno__backfill_abandon_all(s);
    abandon_conn(s);
    s->terminal = true;
    count_jobs(s);
    drop_probe(s);
    cancel_timers(s);
    steno__client_cq_remove(s->c, s);
    steno__client_breaker_unwait(s);
    s->terminal = true;
}

static void fail_session(steno_session *s, steno_status status, int http_status, int close_code,
                         const char *message, const char *provider_message)
{
    if (s->terminal)
        return;
    drain_dropped(s);
    terminal_cleanup(s);
    pthread_mutex_lock(&s->lock);
    snprintf(s->fail_msg, sizeof s->fail_msg, "%s", message);
    pthread_mutex_unlock(&s->lock);
    atomic_store(&s->st.last_error, (int)status);
    steno__set_state(s, STENO_STATE_FAILED);
    steno__slog(s, STENO_LOG_WARN, "session failed: %s", message);
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_FAILED;
    ev.u.failed.status = status;
    ev.u.failed.http_status = http_status;
    ev.u.failed.close_code = close_code;
    ev.u.failed.message = message;
    ev.u.failed.provider_message = provider_message ? provider_message : "";
    ev.u.failed.request_id = s->request_id;
    steno__emit(s, &ev);
    sync_metrics(s);
}

void steno__session_fail(steno_session *s, steno_status status, int http_status, int close_code,
                         const char *message, const char *provider_message)
{
    fail_session(s, status, http_status, close_code, message, provider_message);
}

static void finish_close(steno_session *s, steno_status status)
{
    if (s->terminal)
        return;
    drain_dropped(s);
    terminal_cleanup(s);
    steno__set_state(s, STENO_STATE_CLOSED);
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_CLOSED;
    ev.u.closed.status = status;
    ev.u.closed.unfinalized_samples = unfinalized_frames(s);
    steno__emit(s, &ev);
    sync_metrics(s);
}

/* ---- eviction during outages ---- */

static uint32_t evict_min_free(const steno_session *s)
{
    uint32_t cap = steno__ring_capacity(s->ring);
    uint32_t m = cap / 20;
    return m < 2 ? (cap > 2 ? 2 : 1) : m;
}

/* Evictions during a long outage come one chunk at a time; adjacent ones are reported as one
 * range, at most EVICT_REPORT_MS late (and at once when the outage or the session ends). */
#define EVICT_REPORT_MS 1000u

static void flush_evicted(steno_session *s)
{
    if (!s->evict_pending)
        return;
    s->evict_pending = false;
    emit_dropped(s, &s->evict_range, 0);
}

static void evict(steno_session *s)
{
    if (s->conn == STENO__CONN_OPEN || s->terminal)
        return;
    uint64_t before = reported_chunks_dropped(s, 1);
    uint64_t now = steno__now_ms();
    steno__range r;
    while (steno__ring_evict(s->ring, evict_min_free(s), &r) == STENO_OK) {
        steno__planner_audio_gone(&s->plan, r.last_frame + 1);
        if (s->evict_pending && r.first_frame == s->evict_range.last_frame + 1) {
            s->evict_range.last_frame = r.last_frame;
            s->evict_range.frames += r.frames;
        } else {
            flush_evicted(s);
            s->evict_range = r;
            s->evict_pending = true;
            s->evict_since_ms = now;
        }
    }
    if (s->evict_pending && now - s->evict_since_ms >= EVICT_REPORT_MS)
        flush_evicted(s);
    uint64_t after = reported_chunks_dropped(s, 1);
    if (after > before)
        steno__counter_add(s->c->m.drop_evicted, after - before);
}

static void evict_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_evict);
    if (s->terminal || s->conn == STENO__CONN_OPEN)
        return;
    evict(s);
    sync_metrics(s);
    sched(s, &s->sul_evict, evict_cb, s->cfg.chunk_ms);
}

/* ---- reconnect scheduling ---- */

static void format_cause(char *buf, size_t len, const steno__classification *cls, const char *why)
{
    if (why && *why && strcmp(why, cls->cause) != 0)
        snprintf(buf, len, "%s (%s)", cls->cause, why);
    else
        snprintf(buf, len, "%s", cls->cause);
}

/*
 * charge: whether this retry spends the client's retry budget. Reconnecting
 * after a healthy connection dropped is a new stream, not a retry of a failed
 * attempt, so it is free (otherwise one server restart seen by hundreds of
 * sessions would empty the bucket at once); retries after failed attempts or
 * connections that died before they were healthy pay.
 */
static void schedule_retry(steno_session *s, const steno__classification *cls, int http_status,
                           int close_code, const char *why, bool charge)
{
    steno_client *c = s->c;
    uint64_t now = steno__now_ms();
    char cause[300];
    format_cause(cause, sizeof cause, cls, why);
    /* Behind an open breaker a session's retries are the breaker's to pace (one probe per
     * open period for the whole endpoint), so an empty bucket does not end it there: it waits
     * for the probe without a lease. Otherwise the first wave of a mass outage, the
     * handshakes already in flight when the breaker opened (max_concurrent_connects of them),
     * would drain the bucket and end the sessions that happened to fail after it. */
    bool behind_breaker = s->ep && s->ep->breaker.state == STENO__BREAKER_OPEN;
    if (c->budget_on && charge) {
        if (steno__budget_acquire(&c->budget, cls->failure_class, &s->tok) != STENO_OK &&
            !behind_breaker) {
            steno__counter_inc(c->m.budget_exhausted);
            char msg[512];
            snprintf(msg, sizeof msg,
                     "the client's retry budget is exhausted (too many failures across its "
                     "sessions); last error: %s",
                     cause);
            fail_session(s, STENO_ERR_BUDGET_EXHAUSTED, http_status, close_code, msg, s->prov_err);
            return;
        }
        steno__gauge_set(c->m.budget_tokens, steno__budget_available(&c->budget));
    }
    uint64_t delay = 0;
    if (steno__backoff_next(&s->bo, now, cls->retry_after_ms, &delay) != STENO_OK) {
        steno__classification gave_up = *cls;
        gave_up.status = STENO_ERR_RETRIES_EXHAUSTED;
        if (failover_on_failure(s, &gave_up, http_status, false, why, true))
            return;
        char msg[512];
        snprintf(msg, sizeof msg,
                 "gave up reconnecting after %u attempts over %llu ms (retry.max_attempts / "
                 "retry.max_outage_ms); last error: %s",
                 s->outage_attempts, (unsigned long long)(now - s->down_since_ms), cause);
        fail_session(s, STENO_ERR_RETRIES_EXHAUSTED, http_status, close_code, msg, s->prov_err);
        return;
    }
    if (cls->verdict == STENO__RETRY_AFTER)
        steno__counter_inc(c->m.rate_limit_waits);
    if (s->n_targets > 1 && s->tgt_down_ms) {
        /* wait no longer than the moment this endpoint is due to be left */
        uint64_t due = s->tgt_down_ms + s->cfg.failover_after_ms;
        if (due <= now)
            delay = 0;
        else if (delay > due - now)
            delay = due - now;
    }
    if (!s->close_requested)
        steno__set_state(s, s->ever_connected ? STENO_STATE_RECONNECTING : STENO_STATE_CONNECTING);
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_RECONNECTING;
    ev.u.reconnecting.attempt = steno__backoff_attempts(&s->bo);
    ev.u.reconnecting.delay_ms = delay > UINT32_MAX ? UINT32_MAX : (uint32_t)delay;
    ev.u.reconnecting.cause = cls->status;
    ev.u.reconnecting.http_status = http_status;
    ev.u.reconnecting.close_code = close_code;
    ev.u.reconnecting.message = cause;
    snprintf(s->last_cause, sizeof s->last_cause, "%s", cause);
    steno__slog(s, STENO_LOG_INFO, "reconnecting in %llu ms: %s", (unsigned long long)delay, cause);
    steno__emit(s, &ev);
    if (s->terminal)
        return;
    sched(s, &s->sul_retry, retry_cb, delay);
    sched(s, &s->sul_evict, evict_cb, s->cfg.chunk_ms);
}

/* A planned reconnect (configuration change): no backoff, breaker or budget involved. */
static void planned_reconnect(steno_session *s, const char *why)
{
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_RECONNECTING;
    ev.u.reconnecting.attempt = 0;
    ev.u.reconnecting.delay_ms = 0;
    ev.u.reconnecting.cause = STENO_OK;
    ev.u.reconnecting.message = why;
    steno__emit(s, &ev);
    if (s->terminal)
        return;
    if (!s->close_requested)
        steno__set_state(s, STENO_STATE_RECONNECTING);
    sched(s, &s->sul_retry, retry_cb, 0);
    sched(s, &s->sul_evict, evict_cb, s->cfg.chunk_ms);
}

/* ---- failover ---- */

/* Moves the session to targets[k] (the live connection is gone) and connects there at once:
 * what is not acknowledged is replayed there, on the same timeline. */
static void move_to(steno_session *s, uint32_t k, steno_status cause, const char *why)
{
    const char *from = s->prov->name;
    char from_url[512];
    snprintf(from_url, sizeof from_url, "%s", s->url.endpoint ? s->url.endpoint : "");
    steno__timer_cancel(&s->sul_retry);
    int rc = steno__targets_switch(s, k);
    if (rc != STENO_OK) {
        fail_session(s, (steno_status)rc, 0, 0, "failover: could not move to the next endpoint",
                     "");
        return;
    }
    uint64_t now = steno__now_ms();
    s->tgt_down_ms = now; /* the new endpoint gets its own failover_after_ms */
    steno__backoff_on_connected(&s->bo, now);
    s->outage_attempts = 0;
    steno__slog(s, STENO_LOG_WARN, "failover: %s (%s) -> %s (%s): %s", from, from_url,
                s->prov->name, s->url.endpoint, why);
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_FAILOVER;
    ev.u.failover.from_provider = from;
    ev.u.failover.from_url = from_url;
    ev.u.failover.to_provider = s->prov->name;
    ev.u.failover.to_url = s->url.endpoint;
    ev.u.failover.to_index = k;
    ev.u.failover.cause = cause;
    ev.u.failover.message = why;
    steno__emit(s, &ev);
    if (s->terminal)
        return;
    steno__timer_cancel(&s->sul_failback);
    if (k != 0 && s->cfg.failback_after_ms)
        sched(s, &s->sul_failback, failback_cb, s->failback_ms);
    sched(s, &s->sul_retry, retry_cb, 0);
    sched(s, &s->sul_evict, evict_cb, s->cfg.chunk_ms);
}

/*
 * A failure of the endpoint in use: move to the next one when it is not the app's fault and
 * the endpoint has failed for failover_after_ms in a row (at once for a payment or quota
 * refusal, or when retries are exhausted), or back to the fallback when a try of the preferred
 * endpoint failed. true: moved.
 */
static bool failover_on_failure(steno_session *s, const steno__classification *cls, int http_status,
                                bool was_open, const char *why, bool exhausted)
{
    if (s->n_targets < 2 || s->close_requested)
        return false;
    uint64_t now = steno__now_ms();
    if (s->failback_trial && !was_open) {
        s->failback_trial = false;
        uint32_t back = s->failback_from;
        uint64_t next = (uint64_t)s->failback_ms * 2u;
        s->failback_ms = next > 600000u ? 600000u : (uint32_t)next;
        char msg[400];
        snprintf(msg, sizeof msg,
                 "the preferred endpoint still fails (%s): back to the fallback; next try in %u s",
                 cls->cause, s->failback_ms / 1000u);
        move_to(s, back, cls->status, msg);
        return true;
    }
    /* The app's own mistakes (credentials, a bad request, audio it cannot decode) are the same
     * anywhere: they fail the session as without failover. */
    if (steno__verdict_is_fatal(cls->verdict) && http_status != 402)
        return false;
    if (!s->tgt_down_ms)
        s->tgt_down_ms = now;
    bool quota = http_status == 402;
    bool long_outage = now - s->tgt_down_ms >= s->cfg.failover_after_ms;
    if (!quota && !long_outage && !exhausted)
        return false;
    char msg[400];
    snprintf(msg, sizeof msg, "%s%s%s", quota ? "payment or quota refused: " : "",
             long_outage && !quota ? "failing for failover_after_ms, last: " : "", cls->cause);
    if (why && *why && strcmp(why, cls->cause) != 0) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, " (%s)", why);
    }
    move_to(s, (s->cur + 1) % s->n_targets, cls->status, msg);
    return true;
}

/* failback_after_ms passed on a fallback: move back to the preferred endpoint, unless its
 * breaker says it is still down, flushing the fallback connection first (a seamless switch). */
static void failback_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_failback);
    if (s->terminal || s->cur == 0 || s->close_requested)
        return;
    steno__endpoint *pref = s->targets[0].ep;
    if (s->conn != STENO__CONN_OPEN || s->switching ||
        (pref && steno__breaker_get_state(&pref->breaker) == STENO__BREAKER_OPEN)) {
        sched(s, &s->sul_failback, failback_cb, s->failback_ms);
        return;
    }
    steno__slog(s, STENO_LOG_INFO, "failback: flushing %s to move back to %s", s->prov->name,
                s->targets[0].prov->name);
    s->switching = s->switch_failback = true;
    s->switch_sent = false;
    sched(s, &s->sul_switch, switch_cb, s->cfg.close_timeout_ms);
    want_write(s);
}

/* The fallback connection is flushed and gone: connect to the preferred endpoint; a handshake
 * failure there brings the session straight back (failover_on_failure). */
static void failback_now(steno_session *s)
{
    s->switch_failback = false;
    s->failback_from = s->cur;
    move_to(s, 0, STENO_OK, "failback: back to the preferred endpoint");
    s->failback_trial = !s->terminal;
}

/*
 * The current connection ended (was_open) or never opened. info says how;
 * decides between finishing a close, a planned reconnect, failing, or a
 * retry following backoff, breaker and budget.
 */
static void conn_ended(steno_session *s, steno__failure_info *info, bool was_open, const char *why)
{
    steno_client *c = s->c;
    uint64_t now = steno__now_ms();
    steno__classification cls;
    /* to the ms: an HTTP-date Retry-After then ends the wait on the second the server named */
    uint64_t wall_ms = steno__now_unix_ms();
    info->now_unix = (int64_t)(wall_ms / 1000u);
    info->now_unix_ms = (int64_t)wall_ms;
    steno__classify(info, &cls);
    if (was_open && s->closed_self) {
        /* we closed it (client_closes): the end of stream or switch we asked for */
        s->closed_self = false;
        cls.verdict = STENO__DONE;
        cls.status = STENO_OK;
    }
    if (cls.status != STENO_OK)
        atomic_store(&s->st.last_error, (int)cls.status);
    bool healthy = false;
    if (was_open) {
        healthy = now - s->connected_at_ms >= s->cfg.healthy_after_ms && s->conn_rx_frames > 0;
        steno__backoff_on_disconnect(&s->bo, now, healthy);
        s->down_since_ms = now;
        s->outage_attempts = 0;
    }
    bool was_switching = s->switching;
    s->switching = s->switch_sent = false;
    steno__timer_cancel(&s->sul_switch);
    if (s->terminal)
        return;

    if (s->close_requested && was_open && s->closestream_sent &&
        (cls.verdict == STENO__DONE || info->close_code == 1000) &&
        steno__ring_sent(s->ring) >= steno__ring_written(s->ring)) {
        /* The provider flushed everything we sent and closed: the drain is complete, once
         * the backfill connections have flushed theirs too. */
        if (steno__planner_pending(&s->plan)) {
            s->drained = true;
            steno__slog(s, STENO_LOG_INFO, "close: live stream drained, waiting for backfill");
            return;
        }
        finish_close(s, STENO_OK);
        return;
    }
    if (was_switching && !steno__verdict_is_fatal(cls.verdict)) {
        if (s->switch_failback) {
            failback_now(s);
            return;
        }
        if (s->switch_go_away) {
            planned_reconnect(s, "the provider is ending the connection (seamless reconnect)");
            return;
        }
        ST_ADD(s, configures, 1);
        planned_reconnect(s, "applying a configuration change (seamless reconnect)");
        return;
    }
    if (steno__verdict_is_fatal(cls.verdict)) {
        steno__counter_inc(c->m.fail[cls.verdict]);
        if (!was_open)
            drop_probe(s);
        if (failover_on_failure(s, &cls, info->http_status, was_open, why, false))
            return;
        char msg[512];
        char cause[300];
        format_cause(cause, sizeof cause, &cls, why);
        snprintf(msg, sizeof msg, "%s: %s", cause, steno_strerror(cls.status));
        fail_session(s, cls.status, info->http_status, info->close_code, msg, s->prov_err);
        return;
    }
    if (cls.verdict == STENO__DONE) {
        /* A clean close we did not ask for (or after a switch): just reconnect. */
        cls.verdict = STENO__RETRY;
        cls.status = STENO_ERR_CLOSED;
    }
    steno__counter_inc(c->m.fail[cls.verdict]);
    if (!was_open) {
        /* A session's failed attempts count once per outage toward the breaker (a probe's
         * always does): the breaker is there to stop many sessions from storming an endpoint,
         * and one session's own backoff already paces it. Counting each of its retries would
         * let a single session open the breaker in seconds and stretch a short outage by
         * the breaker's open time. */
        if (s->breaker_passed && s->ep)
            steno__session_breaker_failure(s, s->is_probe, now);
        s->breaker_passed = false;
        s->is_probe = false;
    } else {
        steno__counter_inc(c->m.disconnects);
    }
    if (failover_on_failure(s, &cls, info->http_status, was_open, why, false))
        return;
    schedule_retry(s, &cls, info->http_status, info->close_code, why, !(was_open && healthy));
}

/* ---- connecting ---- */

static void retry_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_retry);
    try_connect(s);
}

static void conn_timeout_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_conn_to);
    if (s->conn != STENO__CONN_HANDSHAKE)
        return;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = STENO__PHASE_HANDSHAKE;
    info.connect_timeout = true;
    abandon_conn(s);
    char why[96];
    snprintf(why, sizeof why, "no WebSocket handshake within connect_timeout_ms=%u",
             s->cfg.connect_timeout_ms);
    conn_ended(s, &info, false, why);
}

int steno__session_rebuild_url(steno_session *s, char *err, size_t errlen)
{
    steno__sb b;
    steno__sb_init(&b, s->a);
    int rc = s->prov->build_url(s->url_str, &s->ap, &s->opts, &b);
    if (rc == STENO_OK) {
        steno__url u;
        rc = steno__url_parse(s->a, steno__sb_cstr(&b), &u, err, errlen);
        if (rc == STENO_OK) {
            steno__url_free(s->a, &s->url);
            s->url = u;
        }
    } else if (err && errlen) {
        snprintf(err, errlen, "could not build the request URL: %s", steno_strerror(rc));
    }
    steno__sb_free(&b);
    return rc;
}

static void try_connect(steno_session *s)
{
    steno_client *c = s->c;
    if (s->terminal || s->conn != STENO__CONN_NONE)
        return;
    uint64_t now = steno__now_ms();
    if (s->n_targets > 1 && s->tgt_down_ms && !s->close_requested &&
        now - s->tgt_down_ms >= s->cfg.failover_after_ms) {
        /* the endpoint failed (or its breaker held us) for failover_after_ms */
        steno__classification cls;
        memset(&cls, 0, sizeof cls);
        cls.verdict = STENO__RETRY;
        cls.status = s->waiting_breaker ? STENO_ERR_BREAKER_OPEN
                                        : (steno_status)atomic_load(&s->st.last_error);
        snprintf(cls.cause, sizeof cls.cause, "%.*s", (int)sizeof cls.cause - 1,
                 s->waiting_breaker ? "its circuit breaker stayed open"
                 : s->last_cause[0] ? s->last_cause
                                    : "it keeps failing");
        if (s->holds_slot) {
            s->holds_slot = false;
            steno__client_release_slot(c);
        }
        if (failover_on_failure(s, &cls, 0, false, NULL, false))
            return;
    }
    /* A connect slot first, the breaker second: a session that waited in line for a slot asks
     * the breaker when it is its turn, so a breaker that opened meanwhile still holds it back. */
    if (!s->holds_slot) {
        if (!steno__session_take_slot(s)) {
            s->primary_wants_slot = true;
            return;
        }
        s->holds_slot = true;
    }
    if (!s->breaker_passed) {
        bool probe = false;
        uint64_t retry_at = now;
        if (steno__breaker_allow(&s->ep->breaker, now, &probe, &retry_at) != STENO_OK) {
            steno__gauge_set(s->ep->m_state, (double)steno__breaker_get_state(&s->ep->breaker));
            s->holds_slot = false;
            steno__client_release_slot(c);
            if (s->cfg.retry.max_outage_ms != UINT32_MAX &&
                now - s->down_since_ms >= s->cfg.retry.max_outage_ms) {
                char msg[300];
                snprintf(msg, sizeof msg,
                         "gave up: the circuit breaker of %s stayed open for the whole "
                         "retry.max_outage_ms=%u",
                         s->ep->key, s->cfg.retry.max_outage_ms);
                fail_session(s, STENO_ERR_BREAKER_OPEN, 0, 0, msg, "");
                return;
            }
            steno__counter_inc(c->m.breaker_waits);
            steno__slog(s, STENO_LOG_DEBUG, "the circuit breaker holds the connection for %llu ms",
                        (unsigned long long)(retry_at > now ? retry_at - now : 1));
            s->primary_breaker_wait = true;
            steno__client_breaker_wait(s);
            if (s->n_targets > 1) {
                /* a breaker wait is a failure of the endpoint too: wake when it is due to
                 * be left */
                if (!s->tgt_down_ms)
                    s->tgt_down_ms = now;
                uint64_t due = s->tgt_down_ms + s->cfg.failover_after_ms;
                if (retry_at > due)
                    retry_at = due > now ? due : now + 1;
            }
            sched(s, &s->sul_retry, retry_cb, retry_at > now ? retry_at - now : 1);
            return;
        }
        s->is_probe = probe;
        s->breaker_passed = true;
        steno__gauge_set(s->ep->m_state, (double)steno__breaker_get_state(&s->ep->breaker));
    }
    /* A fresh credential for every connection. The token callback's refusal ends the session;
     * no memory for the copy is a failed attempt, retried like any other. */
    char cred_msg[200];
    steno_status cred_rc = steno__session_credential(s, &s->cred, cred_msg, sizeof cred_msg);
    if (cred_rc != STENO_OK && cred_rc != STENO_ERR_NOMEM) {
        fail_session(s, cred_rc, 0, 0, cred_msg, "");
        return;
    }

    s->outage_attempts++;
    atomic_fetch_add_explicit(&s->st.attempts, 1, memory_order_relaxed);
    steno__counter_inc(c->m.attempts);
    s->http_status = s->close_code = 0;
    s->close_reason[0] = s->prov_err[0] = s->request_id[0] = s->retry_after[0] = '\0';
    s->dead = s->conn_timed_out = s->tls_cert_failed = false;
    s->tls_reason[0] = '\0';
    s->conn_rx_frames = 0;
    s->conn = STENO__CONN_HANDSHAKE;
    if (steno__get_state(s) == STENO_STATE_IDLE)
        steno__set_state(s, STENO_STATE_CONNECTING);

    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_CONNECTING;
    ev.u.connecting.attempt = s->outage_attempts;
    steno__emit(s, &ev);
    if (s->terminal || s->conn != STENO__CONN_HANDSHAKE)
        return;

    struct lws *w = cred_rc == STENO_OK ? steno__wire_connect(s, &s->link, s->cred, &s->wsi) : NULL;
    if (!w) {
        if (s->conn == STENO__CONN_HANDSHAKE) {
            /* lws refused without a callback (e.g. DNS failure, no fds), or no credential copy */
            s->wsi = NULL;
            abandon_conn(s);
            steno__failure_info info;
            memset(&info, 0, sizeof info);
            info.phase = STENO__PHASE_HANDSHAKE;
            conn_ended(s, &info, false,
                       cred_rc == STENO_OK ? "could not start the connection" : cred_msg);
        }
        return;
    }
    s->wsi = w;
    sched(s, &s->sul_conn_to, conn_timeout_cb, s->cfg.connect_timeout_ms);
}

steno_status steno__session_credential(steno_session *s, char **out, char *msg, size_t msglen)
{
    steno__free_secret(s->a, *out);
    *out = NULL;
    /* The callback writes into the client's one scratch buffer (this is the network thread);
     * the connection keeps a copy of the credential's own size, so a session and its backfill
     * slots do not each carry a token-sized buffer for the few moments of a handshake. */
    char *buf = s->c->cred_scratch;
    size_t cap = sizeof s->c->cred_scratch;
    buf[0] = '\0';
    if (s->cfg.token_cb && s->cur == 0) { /* failover endpoints carry their own keys */
        steno_status rc = s->cfg.token_cb(s->cfg.token_user, buf, cap);
        if (rc != STENO_OK || !memchr(buf, '\0', cap)) {
            snprintf(msg, msglen, "the token callback failed (%s): no credential to connect",
                     rc != STENO_OK ? steno_status_name(rc) : "unterminated credential");
            steno__wipe(buf, cap);
            return rc != STENO_OK ? rc : STENO_ERR_AUTH;
        }
    } else if (s->api_key) {
        snprintf(buf, cap, "%s", s->api_key);
    }
    size_t n = strlen(buf);
    *out = steno__alloc(s->a, n + 1);
    if (*out)
        memcpy(*out, buf, n + 1);
    steno__wipe(buf, n);
    if (!*out) {
        snprintf(msg, msglen, "out of memory copying the credential for a connection");
        return STENO_ERR_NOMEM;
    }
    return STENO_OK;
}

/*
 * The endpoint's breaker hears of a session's failed attempt. A probe's
 * failure always counts. Otherwise a session counts once until the endpoint
 * next sees a success: the breaker is there to stop many sessions from
 * storming an endpoint, and one session's own backoff already paces it;
 * counting each of its retries would let one session open the breaker in
 * seconds and stretch a short outage by the open period. When every session
 * on the endpoint (two or more) is failing, it opens even below the
 * threshold: a handful of sessions must not drain the client's retry budget.
 */
void steno__session_breaker_failure(steno_session *s, bool probe, uint64_t now)
{
    steno__endpoint *ep = s->ep;
    if (probe) {
        steno__breaker_on_failure(&ep->breaker, now);
    } else {
        if (s->breaker_epoch == ep->epoch + 1)
            return;
        s->breaker_epoch = ep->epoch + 1;
        ep->n_failing++;
        steno__breaker_on_failure(&ep->breaker, now);
        if (ep->n_sessions >= 2 && ep->n_failing >= ep->n_sessions)
            steno__breaker_trip(&ep->breaker, now);
    }
    steno__client_breaker_report(s->c, ep);
}

void steno__session_breaker_success(steno_session *s, uint64_t now)
{
    steno__endpoint *ep = s->ep;
    steno__breaker_on_success(&ep->breaker, now);
    ep->epoch++;
    ep->n_failing = 0;
    steno__client_breaker_report(s->c, ep);
}

bool steno__session_take_slot(steno_session *s)
{
    steno_client *c = s->c;
    if (c->active_connects >= c->cfg.max_concurrent_connects) {
        steno__client_cq_push(c, s);
        return false;
    }
    c->active_connects++;
    return true;
}

int steno__session_append_headers(steno_session *s, struct lws *wsi, unsigned char **p,
                                  unsigned char *end)
{
    /* the credential is not needed after this: wire_headers wipes it */
    return steno__wire_headers(s, &s->cred, wsi, p, end);
}

static void copy_hdr(struct lws *wsi, const char *name, char *buf, size_t len)
{
    steno__wire_copy_header(wsi, name, buf, len);
}

void steno__session_on_connect_error(steno_session *s, struct lws *wsi, const char *why)
{
    if (s->conn != STENO__CONN_HANDSHAKE)
        return;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = STENO__PHASE_HANDSHAKE;
    info.http_status = (int)lws_http_client_http_response(wsi);
    if (info.http_status && info.http_status != 101) {
        if (lws_hdr_copy(wsi, s->retry_after, sizeof s->retry_after, WSI_TOKEN_HTTP_RETRY_AFTER) >
            0)
            info.retry_after = s->retry_after;
        copy_hdr(wsi, s->prov->error_header, s->prov_err, sizeof s->prov_err);
        copy_hdr(wsi, s->prov->request_id_header, s->request_id, sizeof s->request_id);
        if (s->prov_err[0])
            info.provider_error = s->prov_err;
    }
    if (s->tls_cert_failed || (why && (strstr(why, "cert") || strstr(why, "CERT"))))
        info.tls = STENO__TLS_CERTIFICATE;
    if (s->tls_cert_failed && s->tls_reason[0])
        why = s->tls_reason; /* lws's own text for it is "SSL err 1" */
    else if (why &&
             (strstr(why, "tls") || strstr(why, "TLS") || strstr(why, "SSL") || strstr(why, "ssl")))
        info.tls = STENO__TLS_INTERRUPTED;
    s->http_status = info.http_status;
    s->wsi = NULL; /* lws frees it after this callback */
    abandon_conn(s);
    /* With an HTTP status the classifier's cause (status + provider error) says it all; lws's
     * own text only helps when there was no HTTP answer. */
    conn_ended(s, &info, false, info.http_status ? NULL : (why && *why ? why : NULL));
}

static bool has_audio_to_send(steno_session *s)
{
    return steno__ring_sent(s->ring) < steno__ring_written(s->ring);
}

static bool wants_write(steno_session *s)
{
    if (s->conn != STENO__CONN_OPEN)
        return false;
    if (s->ping_pending || s->ka_pending || s->initial_pending || s->auto_fin_pending ||
        s->close_self)
        return true;
    if (s->configure_pending && !s->switching && !s->closestream_sent)
        return true;
    if (s->switching)
        return !s->switch_sent;
    if (s->closestream_sent)
        return false;
    if (has_audio_to_send(s))
        return true;
    if (s->finalize_pending)
        return true;
    if (s->close_requested)
        return s->close_fin != STENO__CLOSE_FIN_SENT; /* else its answer asks again */
    return false;
}

static void want_write(steno_session *s)
{
    if (s->wsi && wants_write(s))
        lws_callback_on_writable(s->wsi);
}

static void schedule_live(steno_session *s, uint64_t now)
{
    uint64_t next = s->next_ping_ms;
    if (s->awaiting_pong && s->ping_sent_ms + s->cfg.pong_timeout_ms < next)
        next = s->ping_sent_ms + s->cfg.pong_timeout_ms;
    uint64_t dead_at = s->last_rx_ms + s->cfg.dead_after_ms;
    if (dead_at < next)
        next = dead_at;
    if (s->prov->keepalive_text) {
        uint64_t last = s->last_audio_tx_ms > s->last_ka_ms ? s->last_audio_tx_ms : s->last_ka_ms;
        uint64_t ka_at = last + s->cfg.keepalive_ms;
        if (ka_at < next)
            next = ka_at;
    }
    sched(s, &s->sul_live, live_cb, next > now ? next - now : 1);
}

static void live_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_live);
    if (s->conn != STENO__CONN_OPEN || s->terminal)
        return;
    uint64_t now = steno__now_ms();
    /* Half-open or stalled: a ping's pong is late (the fast check, whether or not audio is
     * being acknowledged), or nothing at all arrived for dead_after_ms (the backstop). */
    bool pong_late = s->awaiting_pong && now - s->ping_sent_ms >= s->cfg.pong_timeout_ms;
    bool silent = pong_late || now - s->last_rx_ms >= s->cfg.dead_after_ms;
    if (silent && steno__wire_peer_waiting(s->wsi)) {
        /* The peer did speak: its bytes wait unread because this thread is late (a slow
         * callback, or more sessions than a core keeps up with), and libev runs a turn's due
         * timers before its reads. Calling that dead would replace healthy connections
         * exactly when the thread can least afford it; look again once they are read. */
        sched(s, &s->sul_live, live_cb, 10);
        return;
    }
    if (silent) {
        s->dead = true;
        atomic_fetch_add_explicit(&s->st.dead, 1, memory_order_relaxed);
        steno__counter_inc(s->c->m.dead);
        steno__failure_info info;
        memset(&info, 0, sizeof info);
        info.phase =
            (s->closestream_sent || s->switch_sent) ? STENO__PHASE_CLOSING : STENO__PHASE_OPEN;
        info.liveness_timeout = true;
        abandon_conn(s);
        char why[96];
        if (pong_late)
            snprintf(why, sizeof why, "no pong within pong_timeout_ms=%u", s->cfg.pong_timeout_ms);
        else
            snprintf(why, sizeof why, "nothing received for dead_after_ms=%u",
                     s->cfg.dead_after_ms);
        conn_ended(s, &info, true, why);
        return;
    }
    if (now >= s->next_ping_ms) {
        s->ping_pending = true;
        s->next_ping_ms = now + s->cfg.ping_interval_ms;
    }
    if (s->prov->keepalive_text && !s->closestream_sent && !s->switch_sent) {
        uint64_t last = s->last_audio_tx_ms > s->last_ka_ms ? s->last_audio_tx_ms : s->last_ka_ms;
        if (now - last >= s->cfg.keepalive_ms && !has_audio_to_send(s))
            s->ka_pending = true;
    }
    want_write(s);
    schedule_live(s, now);
}

static void write_now(steno_session *s);

static void pace_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_pace);
    write_now(s);
}

static void close_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_close);
    steno__slog(s, STENO_LOG_INFO, "close: drain timed out");
    finish_close(s, STENO_ERR_TIMEOUT);
}

static void switch_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_switch);
    if (!s->switching || s->terminal)
        return;
    /* The old connection did not finish in time: drop it; replay covers what it held. */
    abandon_conn(s);
    s->switching = s->switch_sent = false;
    if (s->switch_failback) {
        failback_now(s);
        return;
    }
    if (s->switch_go_away) {
        planned_reconnect(s, "the provider is ending the connection (old connection did not "
                             "close in time)");
        return;
    }
    ST_ADD(s, configures, 1);
    planned_reconnect(s, "applying a configuration change (old connection did not close in time)");
}

void steno__session_on_pre_establish(steno_session *s, struct lws *wsi)
{
    if (s->conn == STENO__CONN_HANDSHAKE)
        copy_hdr(wsi, s->prov->request_id_header, s->request_id, sizeof s->request_id);
}

/*
 * The live connection (re)opened: asks the planner where live audio resumes.
 * Returns the sequence number of the first chunk the live connection sends.
 * Everything before it is either final or handed to backfill jobs.
 */
static uint64_t plan_resume(steno_session *s, uint32_t *to_backfill)
{
    *to_backfill = 0;
    uint64_t acked = steno__ring_acked(s->ring);
    uint64_t written = steno__ring_written(s->ring);
    uint64_t live_fin = steno__timeline_finalized_frame(s->tl);
    bool may_backfill = s->ever_connected; /* the first connection's backlog is only the
                                              connect time: nothing to catch up */
    /* the first chunk not final on the live lane */
    uint64_t q = acked;
    steno__chunk ch;
    for (; q < written; q++)
        if (steno__ring_peek(s->ring, q, &ch) == STENO_OK && ch.first_frame + ch.frames > live_fin)
            break;
    if (q >= written)
        return written;
    uint64_t from = ch.first_frame;
    uint64_t newest = from;
    size_t n = 0;
    for (uint64_t k = q; k < written; k++) {
        steno__chunk c2;
        if (steno__ring_peek(s->ring, k, &c2) != STENO_OK)
            break;
        if (k > q) {
            s->bounds[n].frame = c2.first_frame;
            s->bounds[n].level = steno__session_boundary_level(s, k);
            n++;
        }
        newest = c2.first_frame + c2.frames;
    }
    s->bounds[n].frame = newest;
    s->bounds[n].level = steno__session_boundary_level(s, written);
    n++;
    /* The client's cap: past it, sessions replay their backlog on their live connection
     * (a job that could not start soon would hold the ring for nothing). */
    if (s->c->backfill_jobs >= s->c->cfg.max_backfill_connections && !s->plan.njobs)
        may_backfill = false;
    if (!may_backfill)
        return q;
    steno__resume_plan plan;
    steno__planner_on_live_open(&s->plan, from, live_fin, newest, s->bounds, n, &plan);
    if (!plan.new_jobs)
        return q;
    steno__timeline_raise_finalized(s->tl, plan.live_from);
    if (!s->catching_up) {
        s->catching_up = true;
        s->catchup_since_ms = steno__now_ms();
        s->catchup_frames = 0;
    }
    s->catchup_frames += plan.live_from - from;
    steno__slog(s, STENO_LOG_INFO,
                "resuming live at %.2f s (%s); %.2f s of backlog to %u backfill job(s)",
                (double)plan.live_from / s->cfg.sample_rate,
                plan.seam_at_pause ? "at a pause" : "no pause near the newest audio",
                (double)(plan.live_from - from) / s->cfg.sample_rate, plan.new_jobs);
    uint64_t k = q;
    for (; k < written; k++)
        if (steno__ring_peek(s->ring, k, &ch) == STENO_OK && ch.first_frame >= plan.live_from)
            break;
    *to_backfill = (uint32_t)(k - q);
    return k;
}

void steno__session_on_established(steno_session *s, struct lws *wsi)
{
    steno_client *c = s->c;
    if (s->conn != STENO__CONN_HANDSHAKE) {
        /* not ours any more */
        lws_set_opaque_user_data(wsi, NULL);
        return;
    }
    if (s->prov->conn_new && !(s->pconn = s->prov->conn_new(s->a, s->psess, &s->ap, &s->opts, 0))) {
        s->wsi = wsi; /* abandon_conn lets lws finish it */
        abandon_conn(s);
        steno__failure_info info;
        memset(&info, 0, sizeof info);
        info.phase = STENO__PHASE_OPEN;
        conn_ended(s, &info, false, "out of memory for the provider's connection state");
        return;
    }
    uint64_t now = steno__now_ms();
    s->wsi = wsi;
    s->conn = STENO__CONN_OPEN;
    s->peer_closed = s->write_failed = false;
    steno__timer_cancel(&s->sul_conn_to);
    steno__timer_cancel(&s->sul_evict);
    if (s->holds_slot) {
        s->holds_slot = false;
        steno__client_release_slot(c);
    }
    if (s->breaker_passed && s->ep)
        steno__session_breaker_success(s, now);
    s->breaker_passed = false;
    s->is_probe = false;
    if (c->budget_on) {
        steno__budget_on_success(&c->budget, &s->tok);
        steno__gauge_set(c->m.budget_tokens, steno__budget_available(&c->budget));
    }
    steno__backoff_on_connected(&s->bo, now);
    atomic_fetch_add_explicit(&s->st.connects, 1, memory_order_relaxed);
    steno__counter_inc(c->m.successes);

    /* A new connection: the provider's clock restarts. The planner decides where live
     * audio resumes: at the first audio not final on the live lane (replay), or at a seam
     * near the newest audio with the backlog handed to backfill connections. */
    steno__timeline_connection_begin(s->tl);
    uint32_t to_backfill = 0;
    uint64_t live_seq = plan_resume(s, &to_backfill);
    uint64_t written = steno__ring_written(s->ring);
    uint64_t hi = s->high_sent < written ? s->high_sent : written;
    uint32_t replay = hi > live_seq ? (uint32_t)(hi - live_seq) : 0;
    steno__ring_rewind(s->ring);
    if (live_seq > steno__ring_acked(s->ring))
        steno__ring_mark_sent(s->ring, live_seq - 1);
    atomic_store_explicit(&s->st.live_sent_end, steno__timeline_finalized_frame(s->tl),
                          memory_order_relaxed);
    s->awaiting_pong = s->auto_fin_pending = s->auto_fin_outstanding = false;
    s->conn_audio_sent = false;
    s->connected_at_ms = now;
    s->last_rx_ms = now;
    s->last_audio_tx_ms = now;
    s->last_ka_ms = now;
    s->next_ping_ms = now + s->cfg.ping_interval_ms;
    s->ping_pending = s->ka_pending = false;
    s->closestream_sent = false;
    s->close_fin = STENO__CLOSE_FIN_NONE;
    s->close_fin_asks = 0;
    s->fin_q.n = 0;
    s->switching = s->switch_sent = s->switch_go_away = s->switch_failback = false;
    s->close_self = s->closed_self = false;
    s->tgt_down_ms = 0;
    s->failback_trial = false;    /* back on the preferred endpoint, for good */
    s->configure_pending = false; /* the new connection's setup carries the settings */
    s->rx.len = 0;
    if (s->finalize_outstanding && steno__ring_acked(s->ring) < s->finalize_target) {
        s->finalize_pending = true; /* its answer was lost with the old connection */
        s->finalize_outstanding = false;
    }
    s->initial_pending = s->prov->initial_message != NULL;

    uint32_t attempts = s->outage_attempts;
    s->outage_attempts = 0;
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    if (!s->ever_connected) {
        s->ever_connected = true;
        ev.type = STENO_EVENT_CONNECTED;
        ev.u.connected.request_id = s->request_id;
    } else {
        uint64_t down = now - s->down_since_ms;
        atomic_fetch_add_explicit(&s->st.reconnects, 1, memory_order_relaxed);
        atomic_store_explicit(&s->st.last_downtime_ms, down, memory_order_relaxed);
        steno__counter_inc(c->m.reconnects);
        steno__histogram_observe(c->m.reconnect_hist, (double)down / 1000.0);
        ev.type = STENO_EVENT_RECONNECTED;
        ev.u.reconnected.attempts = attempts ? attempts : 1;
        ev.u.reconnected.downtime_ms = down > UINT32_MAX ? UINT32_MAX : (uint32_t)down;
        ev.u.reconnected.replayed_chunks = replay;
        ev.u.reconnected.backfill_chunks = to_backfill;
        ev.u.reconnected.request_id = s->request_id;
    }
    steno__set_state(s, s->close_requested ? STENO_STATE_CLOSING : STENO_STATE_STREAMING);
    flush_evicted(s); /* the outage's losses are known before the app hears it is over */
    count_jobs(s);
    steno__slog(s, STENO_LOG_INFO, "connected to %s (replaying %u chunks, %u to backfill)",
                s->url.endpoint, replay, to_backfill);
    steno__emit(s, &ev);
    if (s->terminal || s->conn != STENO__CONN_OPEN)
        return;
    drain_dropped(s);
    schedule_live(s, now);
    want_write(s);
    steno__backfill_pump(s);
}

void steno__session_on_peer_close(steno_session *s, const uint8_t *payload, size_t len)
{
    s->peer_closed = true; /* lws answers the close: nothing more of ours goes out */
    steno__wire_peer_close(payload, len, &s->close_code, s->close_reason, sizeof s->close_reason);
}

void steno__session_on_closed(steno_session *s, struct lws *wsi)
{
    if (s->conn == STENO__CONN_HANDSHAKE) {
        steno__session_on_connect_error(s, wsi, "connection closed during the handshake");
        return;
    }
    if (s->conn != STENO__CONN_OPEN)
        return;
    steno__failure_info info;
    memset(&info, 0, sizeof info);
    info.phase = (s->closestream_sent || s->switch_sent) ? STENO__PHASE_CLOSING : STENO__PHASE_OPEN;
    info.close_code = s->close_code;
    info.close_reason = s->close_reason[0] ? s->close_reason : NULL;
    info.provider_error = s->prov_err[0] ? s->prov_err : NULL;
    s->wsi = NULL; /* lws frees it after this callback */
    abandon_conn(s);
    char why[300];
    if (s->close_code)
        snprintf(why, sizeof why, "server closed the connection with %d%s%s", s->close_code,
                 s->close_reason[0] ? " " : "", s->close_reason);
    else
        snprintf(why, sizeof why, "connection lost");
    conn_ended(s, &info, true, why);
}

void steno__session_on_pong(steno_session *s)
{
    s->last_rx_ms = steno__now_ms();
    s->conn_rx_frames++;
    s->awaiting_pong = false;
}

/* ---- results ---- */

static bool held_ready(steno_session *s, uint64_t first_sample)
{
    return steno__planner_live_final_ready(&s->plan, first_sample);
}

/* Keeps the client's count of unfinished backfill jobs in step with this session's. */
static void count_jobs(steno_session *s)
{
    uint32_t now = s->terminal ? 0 : steno__planner_pending(&s->plan);
    s->c->backfill_jobs += now;
    s->c->backfill_jobs -= s->jobs_counted;
    s->jobs_counted = now;
}

void steno__session_ack(steno_session *s)
{
    uint64_t live_fin = steno__timeline_finalized_frame(s->tl);
    steno__ring_ack_through(s->ring, steno__planner_ack_frame(&s->plan, live_fin));
    count_jobs(s);
    if (s->held_head)
        steno__emit_held(s, held_ready);
    if (s->catching_up && !steno__planner_pending(&s->plan) && !s->terminal) {
        s->catching_up = false;
        uint64_t now = steno__now_ms();
        uint64_t el = now - s->catchup_since_ms;
        steno_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = STENO_EVENT_CAUGHT_UP;
        ev.u.caught_up.backfilled_samples = s->catchup_frames;
        ev.u.caught_up.elapsed_ms = el > UINT32_MAX ? UINT32_MAX : (uint32_t)el;
        steno__slog(s, STENO_LOG_INFO, "caught up: %.2f s of backlog final after %llu ms",
                    (double)s->catchup_frames / s->cfg.sample_rate, (unsigned long long)el);
        steno__emit(s, &ev);
    }
    if (s->drained && !steno__planner_pending(&s->plan))
        finish_close(s, STENO_OK);
    sync_metrics(s);
}

static void handle_results(steno_session *s, const steno__msg *m)
{
    steno__session_deliver_results(s, s->tl, NULL, m);
}

void steno__session_deliver_results(steno_session *s, steno__timeline *tl, steno__bf *bf,
                                    const steno__msg *m_in)
{
    steno_client *c = s->c;
    /* A provider whose finalize answer is the next final (steno__finalize_answer): mark it
     * as the answer, covering everything the connection had sent before the message. */
    steno__msg m_ans;
    const steno__msg *m = m_in;
    bool ask_again = false; /* the flush before the close was answered short of its end */
    const steno__fin_queue *fq = bf ? &bf->fin_q : &s->fin_q;
    if (s->prov->finalize_answer == STENO__FIN_ANSWER_NEXT_FINAL && m_in->is_final && fq->n) {
        m_ans = *m_in;
        m_ans.from_finalize = 1;
        double upto = (double)fq->at[0] / s->cfg.sample_rate;
        /*
         * Nothing marks the answer, so a natural end of turn already in flight may be taken
         * for it, and the real answer (the forced end of the next turn) follows with words
         * after it. Stretching a final with words over the silence up to `upto` would make
         * those words "already final": lost. So only an answer without words (a forced end
         * of an empty turn: silence) covers everything up to upto; one with words covers its
         * own span, and the silence after it is acknowledged by the next final. The flush
         * before the close is no exception where finals come unasked: an answer with words
         * that stops short of upto covers its own span, and the flush is asked again
         * (ask_again below) until an answer reaches upto or has no words (the server has
         * nothing left: all silence). Only after STENO__CLOSE_FIN_ASKS_MAX asks does an answer
         * with words stretch over the rest, so that a server answering every flush with words
         * short of the end cannot hold the close forever. Where every final answers a flush
         * (manual commits), the first answer is the real one and covers everything sent.
         */
        int closing = (bf ? bf->close_fin : s->close_fin) == STENO__CLOSE_FIN_SENT;
        uint32_t asks = bf ? bf->close_fin_asks : s->close_fin_asks;
        if (m_ans.n_words == 0)
            m_ans.start = m_ans.duration = 0; /* no words: its span is all silence up to upto */
        if (closing && s->prov->unasked_finals && m_ans.n_words &&
            m_ans.start + m_ans.duration < upto && asks < STENO__CLOSE_FIN_ASKS_MAX)
            ask_again = true;
        else if (m_ans.n_words == 0 || closing) {
            if (m_ans.start > upto)
                m_ans.start = upto;
            if (m_ans.start + m_ans.duration < upto)
                m_ans.duration = upto - m_ans.start;
        }
        m = &m_ans;
    }
    /* A replay's interim results describe audio long past: only its finals are news. */
    if (bf && !m->is_final)
        return;
    steno__word_time *wt = NULL;
    steno_word *words = NULL;
    bool m_empty = false;
    if (m->n_words) {
        wt = steno__calloc(s->a, m->n_words, sizeof *wt);
        if (!wt)
            return;
        for (size_t i = 0; i < m->n_words; i++) {
            wt[i].start = m->words[i].start;
            wt[i].end = m->words[i].end;
        }
    }
    steno__mapped mp;
    int rc = m->is_final ? steno__timeline_final(tl, m->start, m->duration, wt, m->n_words, &mp)
                         : steno__timeline_interim(tl, m->start, m->duration, wt, m->n_words, &mp);
    if (rc != STENO_OK) {
        ST_ADD(s, parse_errors, 1);
        steno__counter_inc(c->m.parse_errors);
        goto out;
    }
    bool app_fin = !bf && s->finalize_outstanding;
    if (m->is_final && m->from_finalize && !bf && s->fin_q.n <= 1)
        s->finalize_outstanding = s->auto_fin_outstanding = false;
    if (m->is_final && m->from_finalize && bf && bf->fin_q.n <= 1)
        bf->fin_outstanding = false;
    if (m->is_final && m->from_finalize) {
        steno__fin_queue *q = bf ? &bf->fin_q : &s->fin_q;
        if (q->n) {
            q->n--;
            memmove(q->at, q->at + 1, q->n * sizeof q->at[0]);
        }
        int *close_fin = bf ? &bf->close_fin : &s->close_fin;
        if (*close_fin == STENO__CLOSE_FIN_SENT && !q->n && ask_again) {
            /* answered short of the end, maybe by a final that was already on its way: the
             * writable callback sends the flush again while audio is unacknowledged */
            *close_fin = STENO__CLOSE_FIN_NONE;
            (*(bf ? &bf->close_fin_asks : &s->close_fin_asks))++;
            struct lws *w = bf ? bf->wsi : s->wsi;
            if (w)
                lws_callback_on_writable(w);
        } else if (*close_fin == STENO__CLOSE_FIN_SENT && !q->n) {
            /* the flush before close_text is answered: the close may go on */
            *close_fin = STENO__CLOSE_FIN_DONE;
            struct lws *w = bf ? bf->wsi : s->wsi;
            if (w)
                lws_callback_on_writable(w);
        }
    }
    if (m->is_final && bf)
        steno__planner_job_progress(&s->plan, bf->job_id, steno__timeline_finalized_frame(tl));
    if (!mp.emit) {
        if (!m->is_final)
            goto out;
        steno__session_ack(s);
        if (!m->from_finalize || !app_fin) {
            ST_ADD(s, finals_suppressed, 1);
            goto out;
        }
        /* The answer to a Finalize the app may be waiting for: deliver it as an empty final at
         * the finalized point, which repeats no audio. */
        mp.start_frame = mp.end_frame = steno__timeline_finalized_frame(s->tl);
        mp.first_word = mp.n_words = 0;
        m_empty = true;
    }
    /* words were dropped at either end (already final, or past a backfill seam): the
     * provider's transcript no longer matches, so it is rebuilt from the kept words */
    bool rebuild = mp.first_word > 0 || mp.n_words < m->n_words;
    steno__sb text;
    steno__sb_init(&text, s->a);
    if (mp.n_words) {
        words = steno__calloc(s->a, mp.n_words, sizeof *words);
        if (!words)
            goto out;
        for (size_t k = 0; k < mp.n_words; k++) {
            const steno__pword *pw = &m->words[mp.first_word + k];
            uint64_t a = 0, b = 0;
            steno__timeline_map_word(tl, &mp, &wt[mp.first_word + k], &a, &b);
            words[k].word = pw->word;
            words[k].punctuated_word = pw->punctuated_word;
            words[k].start = secs(s, a);
            words[k].end = secs(s, b);
            words[k].confidence = pw->confidence;
            words[k].speaker = pw->speaker;
            if (rebuild) {
                if (k)
                    steno__sb_puts(&text, " ");
                steno__sb_puts(&text, pw->punctuated_word);
            }
        }
    }
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = STENO_EVENT_TRANSCRIPT;
    steno_transcript *t = &ev.u.transcript;
    t->is_final = m->is_final;
    t->speech_final = m->speech_final;
    t->from_finalize = m->from_finalize;
    t->text = m_empty ? "" : rebuild ? steno__sb_cstr(&text) : (m->transcript ? m->transcript : "");
    t->start = secs(s, mp.start_frame);
    t->end = secs(s, mp.end_frame);
    t->confidence = m->confidence;
    t->words = words;
    t->n_words = mp.n_words;
    t->first_sample = mp.start_frame;
    t->end_sample = mp.end_frame;
    t->channel = m->channel;
    t->from_backfill = bf != NULL;
    t->provider = s->prov->name;
    if (m->is_final) {
        ST_ADD(s, finals, 1);
        steno__counter_inc(c->m.finals);
        if (bf)
            ST_ADD(s, finals_backfilled, 1);
    } else {
        ST_ADD(s, interims, 1);
        steno__counter_inc(c->m.interims);
    }
    /* ordered_finals: a live final waits while backfill still owes earlier audio (or
     * earlier live finals wait already); a copy is kept and emitted in order later. */
    if (m->is_final && !bf && s->cfg.ordered_finals &&
        (s->held_head || !steno__planner_live_final_ready(&s->plan, mp.start_frame)) &&
        steno__emit_hold(s, &ev)) {
        /* held */
    } else {
        steno__emit(s, &ev);
    }
    steno__sb_free(&text);
    if (m->is_final)
        steno__session_ack(s);
out:
    steno__free(s->a, words);
    steno__free(s->a, wt);
}

/* Flush the connection and move to a new one while the old one still works (no backoff,
 * breaker or budget): the provider is about to end it. */
static void switch_before_end(steno_session *s)
{
    if (s->conn != STENO__CONN_OPEN || s->close_requested || s->switching)
        return;
    s->switching = s->switch_go_away = true;
    s->switch_sent = false;
    sched(s, &s->sul_switch, switch_cb, s->cfg.close_timeout_ms);
    want_write(s);
}

static void goaway_cb(steno__timer *sul)
{
    steno_session *s = lws_container_of(sul, steno_session, sul_goaway);
    if (s->terminal)
        return;
    steno__slog(s, STENO_LOG_INFO, "the connection's announced end is near: reconnecting now");
    switch_before_end(s);
}

/*
 * The provider announced when it ends the connection (a goAway, a session's expiry): the move
 * happens shortly before, 15 s ahead or at 80 % of the time left, whichever is later (a short
 * limit still gets most of its use), and at once when 2 s or less (or an unknown time) is left.
 */
static void go_away(steno_session *s, const steno__msg *m)
{
    if (s->conn != STENO__CONN_OPEN || s->close_requested || s->switching)
        return;
    double left = m->time_left_s;
    if (m->expires_unix_s > 0)
        left = m->expires_unix_s - (double)steno__now_unix_ms() / 1000.0;
    if (left > 2.0) {
        double wait = left - 15.0 > left * 0.8 ? left - 15.0 : left * 0.8;
        steno__slog(s, STENO_LOG_INFO,
                    "provider ends the connection in %.1f s: reconnecting in %.1f s", left, wait);
        sched(s, &s->sul_goaway, goaway_cb, (uint64_t)(wait * 1000.0));
        return;
    }
    steno__slog(s, STENO_LOG_INFO, "provider ends the connection %s: reconnecting now",
                left >= 0 ? "within 2 s" : "soon");
    switch_before_end(s);
}

static void handle_one(steno_session *s, steno__msg *m);

static void handle_message(steno_session *s, const char *text, size_t len)
{
    steno__msg m;
    void *pconn = s->pconn;
    int rc = s->prov->parse(s->a, pconn, text, len, &m);
    if (rc != STENO_OK) {
        ST_ADD(s, parse_errors, 1);
        steno__counter_inc(s->c->m.parse_errors);
        steno__slog(s, STENO_LOG_DEBUG, "unparseable server message (%zu bytes)", len);
    } else {
        handle_one(s, &m);
    }
    /* Messages the adapter held back for this one (it may have ended the connection, and
     * with it the adapter's state). */
    while (s->prov->next_message && s->pconn == pconn && pconn && s->conn == STENO__CONN_OPEN &&
           s->prov->next_message(s->a, pconn, &m) == 1)
        handle_one(s, &m);
}

static void handle_one(steno_session *s, steno__msg *mp)
{
    steno__msg m = *mp;
    ST_ADD(s, messages_received, 1);
    steno_event ev;
    memset(&ev, 0, sizeof ev);
    switch (m.type) {
    case STENO__MSG_RESULTS:
        handle_results(s, &m);
        break;
    case STENO__MSG_UTTERANCE_END:
        ev.type = STENO_EVENT_UTTERANCE_END;
        ev.u.utterance_end.last_word_end =
            secs(s, steno__timeline_to_session(s->tl, m.last_word_end));
        steno__emit(s, &ev);
        break;
    case STENO__MSG_SPEECH_STARTED:
        ev.type = STENO_EVENT_SPEECH_STARTED;
        ev.u.speech_started.timestamp = secs(s, steno__timeline_to_session(s->tl, m.timestamp));
        steno__emit(s, &ev);
        break;
    case STENO__MSG_METADATA:
        ev.type = STENO_EVENT_METADATA;
        ev.u.metadata.request_id = m.request_id ? m.request_id : "";
        ev.u.metadata.duration = m.meta_duration;
        ev.u.metadata.json = m.raw ? m.raw : "";
        steno__emit(s, &ev);
        break;
    case STENO__MSG_ERROR:
        snprintf(s->prov_err, sizeof s->prov_err, "%s%s%s", m.error_code,
                 (m.error_code[0] && m.error_message[0]) ? ": " : "", m.error_message);
        steno__slog(s, STENO_LOG_WARN, "provider error message: %s", s->prov_err);
        break;
    case STENO__MSG_GO_AWAY:
        go_away(s, &m);
        break;
    default:
        break;
    }
    steno__msg_release(&m);
}

int steno__session_on_receive(steno_session *s, struct lws *wsi, const void *in, size_t len)
{
    if (s->conn != STENO__CONN_OPEN)
        return 0;
    uint64_t now = steno__now_ms();
    s->last_rx_ms = now;
    s->conn_rx_frames++;
    atomic_store_explicit(&s->st.last_rx_mono_ms, now, memory_order_relaxed);
    /* whole messages only; binary, oversized and non-UTF-8 ones are counted and dropped */
    if (steno__wire_rx(s, wsi, &s->rx, &s->rx_skip, in, len)) {
        handle_message(s, s->rx.p, s->rx.len);
        steno__wire_rx_done(&s->rx, &s->rx_skip);
        sync_metrics(s);
        if (s->conn == STENO__CONN_OPEN)
            want_write(s);
    }
    return 0;
}

/* ---- sending ---- */

void steno__fin_queue_push(steno__fin_queue *q, uint64_t frames)
{
    if (q->n < STENO__FIN_QUEUE_MAX)
        q->at[q->n++] = frames;
}

/* A finalize message goes out on the live connection. */
static int send_finalize(steno_session *s, struct lws *wsi)
{
    steno__fin_queue_push(&s->fin_q, steno__timeline_connection_frames(s->tl));
    return steno__wire_send_finalize(s, wsi, s->pconn);
}

static int send_text(steno_session *s, struct lws *wsi, const char *text)
{
    return steno__wire_send_text(s, wsi, text);
}

uint32_t steno__session_boundary_level(steno_session *s, uint64_t seq)
{
    steno__chunk before, after;
    bool hb = seq > 0 && steno__ring_peek(s->ring, seq - 1, &before) == STENO_OK;
    bool ha = steno__ring_peek(s->ring, seq, &after) == STENO_OK;
    if (hb && ha && before.first_frame + before.frames != after.first_frame)
        hb = false; /* a gap (dropped audio) between them: only the later side counts */
    return steno__planner_boundary_level(
        hb ? (const int16_t *)before.data : NULL, hb ? before.frames : 0,
        ha ? (const int16_t *)after.data : NULL, ha ? after.frames : 0, s->cfg.channels,
        s->cfg.sample_rate);
}

/*
 * Acks that keep up: once enough sent audio waits for a final, ask the provider
 * to commit it, at a pause (the end of the chunk just sent is quiet) or, past
 * twice the threshold, at once. The ring then holds only audio at risk.
 */
static void maybe_auto_finalize(steno_session *s, const steno__chunk *ch)
{
    /* the energy detector learns the room from every boundary the live audio crosses */
    steno__planner_note_level(&s->plan, steno__session_boundary_level(s, ch->seq));
    if (!s->plan.cfg.finalize_frames || s->close_requested || s->switching ||
        !s->prov->finalize_text || s->auto_fin_pending)
        return;
    uint64_t end = ch->first_frame + ch->frames;
    uint64_t fin = steno__timeline_finalized_frame(s->tl);
    uint64_t pending = end > fin ? end - fin : 0;
    if (pending < s->plan.cfg.finalize_frames)
        return; /* the common case: no level needed */
    uint32_t level = steno__session_boundary_level(s, ch->seq + 1);
    if (steno__planner_should_finalize(&s->plan, end, fin, level,
                                       s->auto_fin_outstanding || s->finalize_outstanding))
        s->auto_fin_pending = true;
}

enum audio_step { AUDIO_NONE, AUDIO_WAITING, AUDIO_SENT, AUDIO_FAILED };

/* The next chunk, if the pacer and the timeline let it go: one lws_write at most. */
static enum audio_step send_next_audio(steno_session *s, struct lws *wsi, uint64_t now)
{
    steno_client *c = s->c;
    steno__chunk ch;
    if (steno__ring_next_to_send(s->ring, &ch) != STENO_OK)
        return AUDIO_NONE;
    if (!s->conn_audio_sent) {
        /* The provider measures speed from the first audio frame: so does the pacer. */
        steno__pacing_reset(&s->pacing, now);
        s->conn_audio_sent = true;
    }
    /* a chunk cut short by a flush goes out padded: the provider clocks the padding too */
    uint32_t pad = steno__wire_pad_frames(s, &ch);
    uint64_t wait = steno__pacing_wait_ms(&s->pacing, now, ch.frames + pad);
    if (wait) {
        if (!s->pacing.waiting)
            steno__counter_inc(c->m.pacing_waits);
        steno__pacing_allow(&s->pacing, now, ch.frames + pad); /* counts the wait */
        sched(s, &s->sul_pace, pace_cb, wait);
        return AUDIO_WAITING;
    }
    if (steno__timeline_on_sent(s->tl, ch.first_frame, ch.frames) != STENO_OK) {
        /* segment table full: wait for a final to free segments */
        sched(s, &s->sul_pace, pace_cb, 50);
        return AUDIO_WAITING;
    }
    /* recorded audio without its padding: start over on a new connection */
    if (steno__timeline_on_padding(s->tl, pad) != STENO_OK)
        return AUDIO_FAILED;
    steno__pacing_allow(&s->pacing, now, ch.frames + pad);
    uint32_t n = 0;
    if (steno__wire_send_audio(s, wsi, s->pconn, &ch, pad, &n))
        return AUDIO_FAILED;
    steno__ring_mark_sent(s->ring, ch.seq);
    atomic_store_explicit(&s->st.live_sent_end, ch.first_frame + ch.frames, memory_order_relaxed);
    maybe_auto_finalize(s, &ch);
    if (ch.seq < s->high_sent) {
        ST_ADD(s, chunks_replayed, 1);
        steno__counter_inc(c->m.replayed);
    } else {
        s->high_sent = ch.seq + 1;
    }
    ST_ADD(s, chunks_sent, 1);
    ST_ADD(s, samples_sent, ch.frames);
    steno__counter_inc(c->m.sent);
    s->last_audio_tx_ms = now;
    s->ka_pending = false;
    return AUDIO_SENT;
}

/* Live audio goes out from the wake (or the pacer's timer) itself when it is the only thing
 * the connection waits to send and the socket is writable now. Asking lws for a WRITEABLE
 * callback instead arms POLLOUT and disarms it after the write: two epoll_ctl for each 100 ms
 * frame, the largest cost left between steno and a bare socket. lws_send_pipe_choked asks the
 * socket the same question epoll would (one poll() on it) and says no while lws holds part of
 * an earlier write, so the bytes on the wire split exactly as they would from WRITEABLE: a
 * full socket (a stalled peer) waits for POLLOUT. It stays one lws_write per turn; whatever
 * else is ready waits for WRITEABLE. */
static void write_now(steno_session *s)
{
    struct lws *wsi = s->wsi;
    if (!wsi || s->conn != STENO__CONN_OPEN || s->peer_closed || s->write_failed ||
        s->ping_pending || s->initial_pending || s->close_self || s->configure_pending ||
        s->switching || s->closestream_sent || s->auto_fin_pending || s->finalize_pending ||
        lws_send_pipe_choked(wsi)) {
        want_write(s);
        return;
    }
    if (send_next_audio(s, wsi, steno__now_ms()) == AUDIO_FAILED) {
        /* what a failed WRITEABLE would have done: lws ends the connection, its CLOSED
         * callback reports it to the session as lost */
        s->write_failed = true;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    want_write(s);
}

/* One lws_write per WRITEABLE callback; ask for another when more is ready. */
int steno__session_on_writeable(steno_session *s, struct lws *wsi)
{
    if (s->conn != STENO__CONN_OPEN || wsi != s->wsi)
        return 0;
    if (s->write_failed)
        return -1;
    uint64_t now = steno__now_ms();
    if (s->ping_pending) {
        s->ping_pending = false;
        if (lws_write(wsi, s->scratch + LWS_PRE, 0, LWS_WRITE_PING) < 0)
            return -1;
        ST_ADD(s, pings, 1);
        if (!s->awaiting_pong) { /* the pong timeout runs from the oldest unanswered ping */
            s->awaiting_pong = true;
            s->ping_sent_ms = now;
        }
        goto more;
    }
    if (s->initial_pending) {
        s->initial_pending = false;
        steno__sb_reset(&s->tx);
        if (s->prov->initial_message(s->pconn, &s->ap, &s->opts, &s->tx) != STENO_OK ||
            send_text(s, wsi, steno__sb_cstr(&s->tx)))
            return -1;
        goto more;
    }
    if (s->close_self) {
        /* client_closes: close_text went out last time; now end the connection ourselves */
        s->close_self = false;
        s->closed_self = true;
        static const char why[] = "end of stream";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    if (s->configure_pending && !s->switching && !s->closestream_sent) {
        s->configure_pending = false;
        if (send_text(s, wsi, steno__sb_cstr(&s->cfg_tx)))
            return -1;
        goto more;
    }
    if (s->switching) {
        if (!s->switch_sent) {
            s->switch_sent = true;
            if (send_text(s, wsi, s->prov->close_text))
                return -1;
            if (s->prov->client_closes) {
                s->close_self = true;
                goto more;
            }
        }
        return 0;
    }
    if (s->closestream_sent)
        return 0;
    if (s->auto_fin_pending) {
        s->auto_fin_pending = false;
        if (!s->close_requested && s->prov->finalize_text) {
            s->auto_fin_outstanding = true;
            ST_ADD(s, auto_finalizes, 1);
            if (send_finalize(s, wsi))
                return -1;
            goto more;
        }
    }
    if (s->finalize_pending && steno__ring_sent(s->ring) >= s->finalize_target) {
        s->finalize_pending = false;
        if (!s->close_requested && s->prov->finalize_text) {
            s->finalize_outstanding = true;
            if (send_finalize(s, wsi))
                return -1;
            goto more;
        }
    }
    switch (send_next_audio(s, wsi, now)) {
    case AUDIO_FAILED:
        return -1;
    case AUDIO_WAITING:
        return 0;
    case AUDIO_SENT:
        goto more;
    case AUDIO_NONE:
        break;
    }
    if (s->finalize_pending && steno__ring_sent(s->ring) < s->finalize_target)
        return 0; /* cannot happen (the target is <= written); never spin on it */
    if (s->close_requested && atomic_load(&s->closing)) {
        if (s->prov->finalize_before_close && s->prov->finalize_text &&
            s->close_fin != STENO__CLOSE_FIN_DONE &&
            steno__ring_acked(s->ring) < steno__ring_written(s->ring)) {
            /* close_text may not flush: ask for the finals first, close once they are in */
            if (s->close_fin == STENO__CLOSE_FIN_NONE) {
                s->close_fin = STENO__CLOSE_FIN_SENT;
                if (send_finalize(s, wsi))
                    return -1;
            }
            return 0;
        }
        s->closestream_sent = true;
        if (send_text(s, wsi, s->prov->close_text))
            return -1;
        if (s->prov->client_closes) {
            s->close_self = true;
            goto more;
        }
        return 0;
    }
    if (s->ka_pending) {
        s->ka_pending = false;
        s->last_ka_ms = now;
        if (send_text(s, wsi, s->prov->keepalive_text))
            return -1;
        ST_ADD(s, keepalives, 1);
        goto more;
    }
    return 0;
more:
    want_write(s);
    return 0;
}

/* ---- commands from the application ---- */

static void adopt_config(steno_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (!s->pending_valid) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    steno__opts next = s->pending_opts;
    s->pending_opts.v = NULL;
    s->pending_opts.n = 0;
    s->pending_valid = false;
    pthread_mutex_unlock(&s->lock);
    if (s->cur != 0) {
        /* the options are the preferred endpoint's: kept for when the session moves back */
        steno__opts_free(s->a, &s->targets[0].opts);
        s->targets[0].opts = next;
        ST_ADD(s, configures, 1);
        return;
    }
    steno__opts old = s->opts;
    s->opts = next;
    char err[256];
    if (steno__session_rebuild_url(s, err, sizeof err) != STENO_OK) {
        /* validated at configure(); keep the previous settings */
        steno__slog(s, STENO_LOG_ERROR, "configure: %s", err);
        steno__opts_free(s->a, &s->opts);
        s->opts = old;
        return;
    }
    /* Can the provider change this on the open connection (no reconnect)? */
    bool live = false;
    if (s->conn == STENO__CONN_OPEN && !s->close_requested && !s->switching &&
        s->prov->configure_message) {
        steno__sb_reset(&s->cfg_tx);
        live = s->prov->configure_message(&old, &s->opts, &s->cfg_tx) == STENO_OK;
    }
    steno__opts_free(s->a, &old);
    if (s->conn == STENO__CONN_OPEN && !s->close_requested) {
        if (live) {
            s->configure_pending = true;
            ST_ADD(s, configures, 1);
            steno__slog(s, STENO_LOG_INFO, "configure: applied on the open connection");
            want_write(s);
        } else if (!s->switching) {
            s->switching = true;
            s->switch_sent = false;
            sched(s, &s->sul_switch, switch_cb, s->cfg.close_timeout_ms);
            want_write(s);
        }
    } else if (s->conn == STENO__CONN_HANDSHAKE) {
        /* the attempt in flight carries the old settings: start over with the new ones */
        abandon_conn(s);
        drop_probe(s);
        ST_ADD(s, configures, 1);
        sched(s, &s->sul_retry, retry_cb, 0);
    } else {
        ST_ADD(s, configures, 1); /* used by the next connection */
    }
}

static void start_close(steno_session *s)
{
    if (s->close_requested)
        return;
    s->close_requested = true;
    steno__set_state(s, STENO_STATE_CLOSING);
    uint32_t to = atomic_load(&s->close_timeout_ms);
    if (!to)
        to = s->cfg.close_timeout_ms;
    s->close_deadline_ms = steno__now_ms() + to;
    sched(s, &s->sul_close, close_cb, to);
    if (s->conn != STENO__CONN_OPEN && steno__ring_acked(s->ring) >= steno__ring_written(s->ring)) {
        /* nothing to deliver and no connection to drain */
        finish_close(s, STENO_OK);
        return;
    }
    want_write(s);
}

static void detach(steno_session *s)
{
    steno_client *c = s->c;
    if (!s->terminal)
        finish_close(s, STENO_ERR_CLOSED);
    else
        terminal_cleanup(s);
    sync_metrics(s);
    steno__gauge_add(c->m.buffered, -(double)s->m_buffered_reported);
    s->m_buffered_reported = 0;
    steno__client_session_gone(c, s);
    pthread_mutex_lock(&s->lock);
    s->detached = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* s belongs to the destroying thread from here on */
}

void steno__session_adopt(steno_session *s)
{
    s->down_since_ms = steno__now_ms();
    uint32_t timers = STENO__SESSION_TIMERS + STENO__BACKFILL_TIMERS * s->n_bf;
    if (steno__client_reserve_timers(s->c, timers) != STENO_OK) {
        fail_session(s, STENO_ERR_NOMEM, 0, 0, "out of memory for the session's timers", "");
        return;
    }
    s->timers_reserved = timers;
    s->ep = steno__client_endpoint(s->c, s->url.endpoint);
    if (!s->ep) {
        fail_session(s, STENO_ERR_NOMEM, 0, 0, "out of memory creating the endpoint", "");
        return;
    }
    s->ep->n_sessions++;
    try_connect(s);
}

void steno__session_service(steno_session *s)
{
    unsigned cmds = atomic_exchange_explicit(&s->cmds, 0, memory_order_acq_rel);
    if (cmds & STENO__CMD_DESTROY) {
        detach(s);
        return;
    }
    if (s->terminal)
        return;
    if (cmds & STENO__CMD_CONFIGURE)
        adopt_config(s);
    if (cmds & STENO__CMD_FINALIZE) {
        s->finalize_pending = true;
        s->finalize_target = steno__ring_written(s->ring);
    }
    if (cmds & STENO__CMD_CLOSE)
        start_close(s);
    if (s->terminal)
        return;
    drain_dropped(s);
    uint64_t pd = reported_chunks_dropped(s, 0);
    if (pd > s->m_dropped_reported) {
        steno__counter_add(s->c->m.drop_producer, pd - s->m_dropped_reported);
        s->m_dropped_reported = pd;
    }
    if (s->conn == STENO__CONN_OPEN)
        write_now(s);
    else
        evict(s);
    sync_metrics(s);
}

/* A connect slot or the breaker freed up: whoever of the session was waiting tries again. */
void steno__session_kick(steno_session *s)
{
    if (s->primary_wants_slot || s->primary_breaker_wait) {
        s->primary_wants_slot = s->primary_breaker_wait = false;
        if (s->conn == STENO__CONN_NONE && !s->terminal)
            sched(s, &s->sul_retry, retry_cb, 0);
    }
    steno__backfill_kick(s);
}
