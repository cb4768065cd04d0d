/* events: what a session reported — every event copied with its arrival time, and waits on them
 * (mutex + condvar, with deadlines). */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h_collector_init(h_collector *c, const char *name)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    snprintf(c->name, sizeof c->name, "%s", name);
}

void h_collector_free(h_collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ev[i].text);
        free(c->ev[i].message);
        free(c->ev[i].request_id);
    }
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    memset(c, 0, sizeof *c);
}

static char *dup_or_empty(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

void h_on_event(void *user, const steno_event *ev)
{
    h_collector *c = user;
    h_ev e;
    memset(&e, 0, sizeof e);
    e.type = ev->type;
    e.seq = ev->seq;
    e.t_ms = h_now_ms();
    e.wall = h_wall_s();
    switch (ev->type) {
    case STENO_EVENT_TRANSCRIPT:
        e.is_final = ev->u.transcript.is_final;
        e.from_finalize = ev->u.transcript.from_finalize;
        e.from_backfill = ev->u.transcript.from_backfill;
        e.start = ev->u.transcript.start;
        e.end = ev->u.transcript.end;
        e.first_sample = ev->u.transcript.first_sample;
        e.end_sample = ev->u.transcript.end_sample;
        e.text = dup_or_empty(ev->u.transcript.text);
        e.provider = ev->u.transcript.provider;
        break;
    case STENO_EVENT_FAILOVER:
        e.provider = ev->u.failover.to_provider;
        e.to_index = ev->u.failover.to_index;
        e.cause = ev->u.failover.cause;
        e.message = dup_or_empty(ev->u.failover.message);
        break;
    case STENO_EVENT_CONNECTING:
        e.attempt = ev->u.connecting.attempt;
        break;
    case STENO_EVENT_CONNECTED:
        e.request_id = dup_or_empty(ev->u.connected.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        e.attempt = ev->u.reconnecting.attempt;
        e.delay_ms = ev->u.reconnecting.delay_ms;
        e.cause = ev->u.reconnecting.cause;
        e.http_status = ev->u.reconnecting.http_status;
        e.close_code = ev->u.reconnecting.close_code;
        e.message = dup_or_empty(ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        e.attempts = ev->u.reconnected.attempts;
        e.downtime_ms = ev->u.reconnected.downtime_ms;
        e.replayed_chunks = ev->u.reconnected.replayed_chunks;
        e.backfill_chunks = ev->u.reconnected.backfill_chunks;
        e.request_id = dup_or_empty(ev->u.reconnected.request_id);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        e.drop_first = ev->u.audio_dropped.first_sample;
        e.drop_last = ev->u.audio_dropped.last_sample;
        e.drop_samples = ev->u.audio_dropped.samples;
        e.producer_side = ev->u.audio_dropped.producer_side;
        break;
    case STENO_EVENT_FAILED:
        e.status = ev->u.failed.status;
        e.http_status = ev->u.failed.http_status;
        e.close_code = ev->u.failed.close_code;
        e.message = dup_or_empty(ev->u.failed.message);
        e.request_id = dup_or_empty(ev->u.failed.request_id);
        break;
    case STENO_EVENT_CLOSED:
        e.status = ev->u.closed.status;
        e.unfinalized = ev->u.closed.unfinalized_samples;
        break;
    default:
        break;
    }

    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        h_ev *v = realloc(c->ev, cap * sizeof *v);
        if (!v)
            abort();
        c->ev = v;
        c->cap = cap;
    }
    if (c->last_seq && ev->seq != c->last_seq + 1)
        c->order_error = 1;
    c->last_seq = ev->seq;
    if (e.type == STENO_EVENT_TRANSCRIPT && e.is_final && e.end_sample > e.first_sample) {
        c->finals++;
        if (e.end_sample > c->acked)
            c->acked = e.end_sample;
    }
    if (e.type == STENO_EVENT_CLOSED || e.type == STENO_EVENT_FAILED)
        c->terminal = 1;
    c->ev[c->n++] = e;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);

    if (c->quiet && e.type != STENO_EVENT_FAILED)
        return;
    switch (e.type) {
    case STENO_EVENT_CONNECTING:
        h_log("%s: CONNECTING attempt %u", c->name, e.attempt);
        break;
    case STENO_EVENT_CONNECTED:
        h_log("%s: CONNECTED %s", c->name, e.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        h_log("%s: RECONNECTING attempt %u in %u ms: %s (%s, http %d, close %d)", c->name,
              e.attempt, e.delay_ms, e.message, steno_status_name(e.cause), e.http_status,
              e.close_code);
        break;
    case STENO_EVENT_RECONNECTED:
        h_log("%s: RECONNECTED %s after %u attempts, down %u ms, replaying %u chunks", c->name,
              e.request_id, e.attempts, e.downtime_ms, e.replayed_chunks);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        h_log("%s: AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] %" PRIu64 " samples (%s)", c->name,
              e.drop_first, e.drop_last, e.drop_samples, e.producer_side ? "producer" : "evicted");
        break;
    case STENO_EVENT_FAILED:
        h_log("%s: FAILED %s http %d close %d: %s", c->name, steno_status_name(e.status),
              e.http_status, e.close_code, e.message);
        break;
    case STENO_EVENT_CLOSED:
        h_log("%s: CLOSED %s, %" PRIu64 " samples unfinalized", c->name,
              steno_status_name(e.status), e.unfinalized);
        break;
    case STENO_EVENT_FAILOVER:
        h_log("%s: FAILOVER to %s (endpoint %u): %s (%s)", c->name, e.provider, e.to_index,
              e.message, steno_status_name(e.cause));
        break;
    case STENO_EVENT_TRANSCRIPT:
        if (getenv("RES_VERBOSE"))
            h_log("%s: %s%s [%" PRIu64 ", %" PRIu64 ") %.3f-%.3f %s", c->name,
                  e.is_final ? "FINAL" : "interim", e.from_backfill ? " (backfill)" : "",
                  e.first_sample, e.end_sample, e.start, e.end, e.text);
        break;
    default:
        break;
    }
}

bool h_wait(h_collector *c, bool (*pred)(h_collector *, void *), void *arg, uint32_t timeout_ms)
{
    struct timespec ts;
    h_deadline_ts(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    bool ok;
    while (!(ok = pred(c, arg)) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

struct type_count {
    steno_event_type type;
    size_t n;
};

static size_t count_locked(const h_collector *c, steno_event_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->ev[i].type == type;
    return n;
}

static bool pred_type(h_collector *c, void *arg)
{
    const struct type_count *tc = arg;
    return count_locked(c, tc->type) >= tc->n || c->terminal;
}

bool h_wait_type(h_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms)
{
    struct type_count tc = {type, n};
    h_wait(c, pred_type, &tc, timeout_ms);
    pthread_mutex_lock(&c->mu);
    bool ok = count_locked(c, type) >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static bool pred_acked(h_collector *c, void *arg)
{
    return c->acked >= *(const uint64_t *)arg || c->terminal;
}

bool h_wait_acked(h_collector *c, uint64_t frames, uint32_t timeout_ms)
{
    h_wait(c, pred_acked, &frames, timeout_ms);
    pthread_mutex_lock(&c->mu);
    bool ok = c->acked >= frames;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

size_t h_count(h_collector *c, steno_event_type type)
{
    pthread_mutex_lock(&c->mu);
    size_t n = count_locked(c, type);
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t h_find(const h_collector *c, steno_event_type type, size_t from)
{
    for (size_t i = from; i < c->n; i++)
        if (c->ev[i].type == type)
            return i;
    return (size_t)-1;
}

uint64_t h_acked(h_collector *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t a = c->acked;
    pthread_mutex_unlock(&c->mu);
    return a;
}

bool h_ended(h_collector *c)
{
    pthread_mutex_lock(&c->mu);
    bool t = c->terminal;
    pthread_mutex_unlock(&c->mu);
    return t;
}

void h_on_event_meta_id(void *user, const steno_event *ev)
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
