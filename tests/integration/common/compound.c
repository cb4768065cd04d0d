/* compound: compound fault schedules run against a streaming session, and the witness-side
 * proof that holds with parallel catch-up — each connection's audio located in the written
 * stream, finals on one timeline, and the live lag after every reconnect. */
#include "harness.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compound.h"

/* ---- schedules ---- */

/* Each fits ~25 s of audio and the ring's 10 s: the point is faults that come in bunches, so
 * the next one lands while the last one's backlog is still being replayed. */
const h_schedule h_schedules[] = {
    {"stall_after_reset",
     "TCP reset, half-open stall 2.5 s later; again at 15 s with a network blackhole 2 s later",
     4,
     {{5.0, H_F_RESET}, {7.5, H_F_STALL}, {15.0, H_F_RESET}, {17.0, H_F_BLACKHOLE}}},
    {"resets_1s_apart",
     "4 TCP resets 1 s apart from 6 s, then 3 more 1 s apart from 16 s",
     7,
     {{6.0, H_F_RESET},
      {7.0, H_F_RESET},
      {8.0, H_F_RESET},
      {9.0, H_F_RESET},
      {16.0, H_F_RESET},
      {17.0, H_F_RESET},
      {18.0, H_F_RESET}}},
    {"refused_6s",
     "TCP reset into a 6 s window of refused handshakes (503) at 8 s, then a reset at 18 s",
     3,
     {{8.0, H_F_REFUSE_ON}, {14.0, H_F_REFUSE_OFF}, {18.0, H_F_RESET}}},
};
const size_t h_n_schedules = sizeof h_schedules / sizeof h_schedules[0];

const h_schedule *h_schedule_find(const char *name)
{
    for (size_t i = 0; i < h_n_schedules; i++)
        if (strcmp(h_schedules[i].name, name) == 0)
            return &h_schedules[i];
    return NULL;
}

const char *h_fault_name(h_fault_kind k)
{
    static const char *const names[] = {"reset", "stall", "blackhole", "refuse-on", "refuse-off"};
    return k <= H_F_REFUSE_OFF ? names[k] : "?";
}

double h_schedule_audio_s(const h_schedule *s)
{
    /* room after the last fault for the lag to come back and the backlog to drain */
    return s->step[s->n - 1].at_s + 8.0;
}

void h_run_init_provider_defaults(h_run *r, const char *name, int port)
{
    memset(r, 0, sizeof *r);
    h_collector_init(&r->col, name);
    steno_session_config_init(&r->sc);
    snprintf(r->url, sizeof r->url, "ws://127.0.0.1:%d/v1/listen", port);
    r->sc.url = r->url;
    r->sc.allow_no_auth = 1;
    r->sc.sample_rate = 16000;
    r->sc.channels = 1;
    r->sc.on_event = h_on_event;
    r->sc.user = &r->col;
}

/* The request id of the session's current live connection ("" before the first). */
static void live_rid(h_collector *col, char *rid, size_t len)
{
    rid[0] = '\0';
    pthread_mutex_lock(&col->mu);
    for (size_t i = 0; i < col->n; i++)
        if (col->ev[i].type == STENO_EVENT_CONNECTED || col->ev[i].type == STENO_EVENT_RECONNECTED)
            snprintf(rid, len, "%s", col->ev[i].request_id);
    pthread_mutex_unlock(&col->mu);
}

/* A fault the witness may refuse because its target just went away (it is logged). */
static int soft_fault(const h_server *srv, const char *body)
{
    char *out = NULL;
    int st = h_http_raw(srv->control_port, "POST", "/faults", body, &out);
    if (st / 100 != 2)
        h_log("fault %s not applied (%d): %s", body, st, out ? out : "");
    free(out);
    return st;
}

typedef struct lift {
    bool pending;
    size_t reconnects_at_strike;
    char toxics[16][32];
    size_t ntoxics;
} lift;

static void strike_blackhole(const h_server *chaos, lift *bh, int serial)
{
    cJSON *j = h_http_ok(chaos->control_port, "GET", "/connections", NULL);
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (strcmp(h_jstr(c, "state"), "open") != 0 || bh->ntoxics == 16)
            continue;
        int id = (int)h_jnum(c, "id", -1);
        char *name = bh->toxics[bh->ntoxics++];
        snprintf(name, 32, "bh%d_%d", serial, id);
        h_toxic_add(chaos, "{\"name\":\"%s\",\"type\":\"blackhole\",\"connection\":%d}", name, id);
    }
    cJSON_Delete(j);
}

static void strike_stall(const h_server *srv, h_collector *col)
{
    char rid[64], body[128];
    live_rid(col, rid, sizeof rid);
    cJSON *recs = h_server_records(srv);
    const cJSON *rec = h_record_by_rid(recs, rid);
    if (rec && strcmp(h_jstr(rec, "state"), "open") == 0) {
        snprintf(body, sizeof body, "{\"action\":\"stall\",\"connection\":%d}",
                 (int)h_jnum(rec, "id", -1));
    } else {
        /* the live connection is already gone: the half-open strikes whatever is open */
        snprintf(body, sizeof body, "{\"action\":\"stall\"}");
    }
    cJSON_Delete(recs);
    soft_fault(srv, body);
}

/* Lifts a stall or blackhole once the session reconnected after it (wait: block for it). */
static void lift_if_replaced(lift *l, h_fault_kind k, h_run *r, const h_server *srv,
                             const h_server *chaos, bool wait)
{
    if (!l->pending)
        return;
    size_t want = l->reconnects_at_strike + 1;
    if (wait)
        H_CHECK(h_wait_type(&r->col, STENO_EVENT_RECONNECTED, want, 30000 * h_slow()),
                "the session never replaced its %s connection (30 s)", h_fault_name(k));
    else if (h_count(&r->col, STENO_EVENT_RECONNECTED) < want)
        return;
    if (k == H_F_STALL)
        soft_fault(srv, "{\"action\":\"unstall\"}");
    for (size_t i = 0; i < l->ntoxics; i++)
        h_toxic_remove(chaos, l->toxics[i]);
    l->ntoxics = 0;
    l->pending = false;
}

void h_schedule_run(const h_schedule *s, h_run *r, const h_server *srv, const h_server *chaos,
                    double *strikes)
{
    lift stall = {0}, bh = {0};
    uint32_t rate = r->sc.sample_rate;
    for (size_t i = 0; i < s->n; i++) {
        const h_fault_step *st = &s->step[i];
        size_t at = (size_t)(st->at_s * rate);
        H_CHECK(h_producer_wait(&r->prod, at, (uint32_t)(st->at_s * 1000.0) * 2 * h_slow() + 5000),
                "%s: capture never reached %.1f s", s->name, st->at_s);
        lift_if_replaced(&stall, H_F_STALL, r, srv, chaos, false);
        lift_if_replaced(&bh, H_F_BLACKHOLE, r, srv, chaos, false);
        size_t reconnects = h_count(&r->col, STENO_EVENT_RECONNECTED);
        if (strikes)
            strikes[i] = h_wall_s();
        switch (st->kind) {
        case H_F_RESET:
            h_chaos_reset_all(chaos);
            break;
        case H_F_STALL:
            lift_if_replaced(&stall, H_F_STALL, r, srv, chaos, true);
            strike_stall(srv, &r->col);
            stall.pending = true;
            stall.reconnects_at_strike = reconnects;
            break;
        case H_F_BLACKHOLE:
            lift_if_replaced(&bh, H_F_BLACKHOLE, r, srv, chaos, true);
            strike_blackhole(chaos, &bh, (int)i);
            bh.pending = true;
            bh.reconnects_at_strike = reconnects;
            break;
        case H_F_REFUSE_ON:
            h_fault(srv, "{\"down\":true,\"status\":503}");
            h_chaos_reset_all(chaos);
            break;
        case H_F_REFUSE_OFF:
            h_fault(srv, "{\"down\":false}");
            break;
        }
        h_log("%s: %s at %.2f s of audio (finalized to %.2f s)", s->name, h_fault_name(st->kind),
              (double)h_producer_written(&r->prod) / rate, (double)h_acked(&r->col) / rate);
    }
    lift_if_replaced(&stall, H_F_STALL, r, srv, chaos, true);
    lift_if_replaced(&bh, H_F_BLACKHOLE, r, srv, chaos, true);
}

/* ---- probe ---- */

static void *probe_main(void *arg)
{
    h_probe *p = arg;
    while (!atomic_load(&p->stop)) {
        steno_session_stats st;
        if (steno_session_stats_get(p->s, &st) == STENO_OK) {
            if (p->n == p->cap) {
                p->cap = p->cap ? p->cap * 2 : 4096;
                p->v = realloc(p->v, p->cap * sizeof *p->v);
                H_CHECK(p->v, "out of memory");
            }
            p->v[p->n++] = (h_probe_sample){h_wall_s(), st.samples_written, st.samples_acked,
                                            st.live_lag_samples};
        }
        struct timespec ts = {0, (long)p->period_ms * 1000000L};
        nanosleep(&ts, NULL); /* the sampling period: a measurement, nothing waits on it */
    }
    return NULL;
}

void h_probe_start(h_probe *p, steno_session *s, uint32_t period_ms)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->period_ms = period_ms;
    H_CHECK(pthread_create(&p->th, NULL, probe_main, p) == 0, "pthread_create");
}

void h_probe_stop(h_probe *p)
{
    if (!p->s)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    p->s = NULL;
}

void h_probe_free(h_probe *p)
{
    h_probe_stop(p);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}

/* ---- witness ---- */

static bool is_live_rid(h_collector *col, const char *rid)
{
    bool live = false;
    pthread_mutex_lock(&col->mu);
    for (size_t i = 0; i < col->n && !live; i++)
        live = (col->ev[i].type == STENO_EVENT_CONNECTED ||
                col->ev[i].type == STENO_EVENT_RECONNECTED) &&
               strcmp(col->ev[i].request_id, rid) == 0;
    pthread_mutex_unlock(&col->mu);
    return live;
}

/* Where in pcm a message of n samples with checksum h sits, searching from `from` in steps of
 * `step`; UINT64_MAX when nowhere. */
static uint64_t locate(const int16_t *pcm, uint64_t written, uint64_t from, uint64_t step,
                       uint64_t n, uint64_t h)
{
    for (uint64_t p = from; p + n <= written; p += step)
        if (h_fnv1a64(pcm + p, (size_t)n * sizeof *pcm) == h)
            return p;
    return UINT64_MAX;
}

static bool load_conn(h_wconn *c, const cJSON *frames, const int16_t *pcm, uint64_t written,
                      uint32_t chunk_frames, char *err, size_t errlen)
{
    bool ok = true;
    size_t n = (size_t)cJSON_GetArraySize(frames);
    c->f_wall = calloc(n + 1, sizeof *c->f_wall);
    c->f_first = calloc(n + 1, sizeof *c->f_first);
    c->f_end = calloc(n + 1, sizeof *c->f_end);
    if (!c->f_wall || !c->f_first || !c->f_end)
        H_ERR_OUT("out of memory");
    uint64_t pos = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, frames)
    {
        uint64_t len = (uint64_t)h_jnum(f, "bytes", 0) / 2;
        uint64_t h = strtoull(h_jstr(f, "fnv1a64"), NULL, 16);
        uint64_t at;
        if (c->nframes == 0) {
            at = locate(pcm, written, 0, chunk_frames, len, h);
            if (at == UINT64_MAX) /* a seam inside a chunk */
                at = locate(pcm, written, 0, 1, len, h);
            if (at == UINT64_MAX)
                H_ERR_OUT("connection %d (%s): its first audio message (%" PRIu64 " samples) is "
                          "nowhere in the written stream",
                          c->id, c->rid, len);
            c->base = at;
        } else if (pos + len <= written && h_fnv1a64(pcm + pos, (size_t)len * sizeof *pcm) == h) {
            at = pos;
        } else {
            /* not the next audio: allowed only as a forward jump over audio it never got */
            at = locate(pcm, written, (pos + chunk_frames - 1) / chunk_frames * chunk_frames,
                        chunk_frames, len, h);
            if (at == UINT64_MAX)
                H_ERR_OUT("connection %d (%s): audio message %zu (%" PRIu64 " samples) is not the "
                          "written audio after sample %" PRIu64
                          " nor later: reordered, repeated or "
                          "corrupted",
                          c->id, c->rid, c->nframes + 1, len, pos);
            c->gaps += at - pos;
        }
        c->f_wall[c->nframes] = c->start_wall + h_jnum(f, "t", 0);
        c->f_first[c->nframes] = at;
        c->f_end[c->nframes] = at + len;
        c->nframes++;
        pos = at + len;
    }
    c->end = pos;
out:
    return ok;
}

/* Whether sample s was reported evicted or dropped by an event before event k. */
static bool dropped_before(const h_collector *col, size_t k, uint64_t s)
{
    for (size_t q = 0; q < k; q++) {
        const h_ev *e = &col->ev[q];
        if (e->type == STENO_EVENT_AUDIO_DROPPED && s >= e->drop_first && s <= e->drop_last)
            return true;
    }
    return false;
}

/* Where a live connection's first final places its first sample: the final's session sample
 * less its first span's connection offset. False when it had no final with spans. */
static bool placed_by_finals(const h_collector *col, size_t k, uint64_t *base)
{
    for (size_t q = k + 1; q < col->n; q++) {
        const h_ev *e = &col->ev[q];
        if (e->type == STENO_EVENT_CONNECTED || e->type == STENO_EVENT_RECONNECTED ||
            e->type == STENO_EVENT_RECONNECTING || e->type == STENO_EVENT_FAILED)
            return false;
        if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final || e->from_backfill ||
            e->end_sample == e->first_sample)
            continue;
        /* only the first span's start is needed (h_check_timeline checks the rest) */
        uint64_t a, b;
        if (sscanf(e->text, "span %" SCNu64 "-%" SCNu64, &a, &b) != 2 || e->first_sample < a)
            return false;
        *base = e->first_sample - a;
        return true;
    }
    return false;
}

/* Connections the client cannot name (h_accounting_nameless_conns, accounting.h, which says
 * what this binding proves and what it does not): each live one, in event order, is the
 * earliest witness connection not yet bound that started no later than the client saw it
 * established and whose audio begins where that connection's must: where its first final puts
 * it, else at the first unacknowledged chunk (past chunks evicted before it), or for one that
 * starts at a backfill seam, at a chunk at or past that. The record's request id is written
 * into the event, so the lag analysis finds it. */
static bool bind_live(h_witness *w, h_collector *col, uint32_t chunk_frames, char *err,
                      size_t errlen)
{
    bool ok = true;
    uint64_t acked = 0, seam_floor = 0;
    size_t next = 0, nlive = 0;
    pthread_mutex_lock(&col->mu);
    for (size_t k = 0; k < col->n; k++) {
        h_ev *e = &col->ev[k];
        if (e->type == STENO_EVENT_TRANSCRIPT && e->is_final && !e->from_backfill &&
            e->end_sample > acked)
            acked = e->end_sample;
        if ((e->type != STENO_EVENT_CONNECTED && e->type != STENO_EVENT_RECONNECTED) ||
            (e->request_id && e->request_id[0]))
            continue;
        nlive++;
        bool seam = e->type == STENO_EVENT_RECONNECTED && e->backfill_chunks > 0;
        uint64_t want = (acked > seam_floor ? acked : seam_floor) / chunk_frames * chunk_frames;
        while (dropped_before(col, k, want))
            want += chunk_frames;
        uint64_t placed_at = 0;
        bool placed = placed_by_finals(col, k, &placed_at);
        size_t j = next;
        for (; j < w->n; j++) {
            const h_wconn *c = &w->c[j];
            if (c->start_wall > e->wall)
                continue;
            if (placed ? c->base == placed_at
                : seam ? c->base >= want && c->base % chunk_frames == 0
                       : c->base == want)
                break;
        }
        if (j == w->n) {
            if (placed)
                H_ERR_OUT("live connection %zu (event %" PRIu64 ") has finals from sample %" PRIu64
                          " but no server connection that started before it was established "
                          "received audio from there",
                          nlive, e->seq, placed_at);
            if (seam) /* it died before sending: its seam stands (as in accounting.c) */
                seam_floor = want + (uint64_t)e->backfill_chunks * chunk_frames;
            continue;
        }
        h_wconn *c = &w->c[j];
        c->live = true;
        free(e->request_id);
        e->request_id = strdup(c->rid);
        if (!e->request_id)
            H_ERR_OUT("out of memory");
        if (seam && c->base > seam_floor)
            seam_floor = c->base;
        next = j + 1;
    }
out:
    pthread_mutex_unlock(&col->mu);
    return ok;
}

bool h_witness_load(h_witness *w, const h_server *srv, h_collector *col, const int16_t *pcm,
                    uint64_t written, uint32_t chunk_frames, char *err, size_t errlen)
{
    bool ok = true;
    memset(w, 0, sizeof *w);
    cJSON *recs = h_server_records(srv), *fr = NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(recs, "connections"), *r;
    w->c = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *w->c);
    if (!w->c)
        H_ERR_OUT("out of memory");
    cJSON_ArrayForEach(r, arr)
    {
        if (h_jnum(r, "audio_samples", 0) <= 0)
            continue;
        h_wconn *c = &w->c[w->n++];
        c->id = (int)h_jnum(r, "id", -1);
        snprintf(c->rid, sizeof c->rid, "%s", h_jstr(r, "request_id"));
        snprintf(c->close_cause, sizeof c->close_cause, "%s", h_jstr(r, "close_cause"));
        c->live = is_live_rid(col, c->rid);
        c->start_wall = h_jnum(r, "start", 0);
        c->end_wall = h_jnum(r, "end", INFINITY);
        char path[64];
        snprintf(path, sizeof path, "/connections/%d/frames", c->id);
        fr = h_http_ok(srv->control_port, "GET", path, NULL);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fr, "truncated")))
            H_ERR_OUT("connection %d: the server's frame log is truncated (raise --frame-log)",
                      c->id);
        if (!load_conn(c, cJSON_GetObjectItemCaseSensitive(fr, "frames"), pcm, written,
                       chunk_frames, err, errlen)) {
            ok = false;
            goto out;
        }
        /* the record also counts a message cut off mid-way (a stall stops reading inside it),
         * which the frame log, one line per complete message, does not */
        uint64_t logged = c->end - c->base - c->gaps;
        uint64_t counted = (uint64_t)h_jnum(r, "audio_samples", 0);
        if (counted < logged || counted - logged >= chunk_frames)
            H_ERR_OUT("connection %d: frame log has %" PRIu64 " samples, record says %" PRIu64,
                      c->id, logged, counted);
        cJSON_Delete(fr);
        fr = NULL;
    }
    if (h_accounting_nameless_conns && !bind_live(w, col, chunk_frames, err, errlen))
        ok = false;
out:
    cJSON_Delete(fr);
    cJSON_Delete(recs);
    return ok;
}

void h_witness_free(h_witness *w)
{
    for (size_t i = 0; w->c && i < w->n; i++) {
        free(w->c[i].f_wall);
        free(w->c[i].f_first);
        free(w->c[i].f_end);
    }
    free(w->c);
    memset(w, 0, sizeof *w);
}

/* Appends "[a, b) " (seconds too) to desc while it has room. */
static void describe_range(char *desc, size_t len, uint64_t a, uint64_t b, uint32_t rate)
{
    size_t used = strlen(desc);
    if (used + 48 < len)
        snprintf(desc + used, len - used, "%s[%" PRIu64 ", %" PRIu64 ") = %.2f-%.2f s",
                 used ? ", " : "", a, b, (double)a / rate, (double)b / rate);
    else if (used + 5 < len && strcmp(desc + used - 3, "...") != 0)
        snprintf(desc + used, len - used, ", ...");
}

/* Describes the runs of zeros in mark[0..n); returns their total. */
static uint64_t describe_zeros(const uint8_t *mark, uint64_t n, char *desc, size_t len)
{
    uint64_t total = 0;
    desc[0] = '\0';
    for (uint64_t i = 0; i < n;) {
        if (mark[i]) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < n && !mark[j])
            j++;
        describe_range(desc, len, i, j, 16000);
        total += j - i;
        i = j;
    }
    return total;
}

uint64_t h_witness_unreceived(const h_witness *w, uint64_t written, char *desc, size_t len)
{
    uint8_t *got = calloc(written + 1, 1);
    H_CHECK(got, "out of memory");
    for (size_t i = 0; i < w->n; i++)
        for (size_t k = 0; k < w->c[i].nframes; k++)
            memset(got + w->c[i].f_first[k], 1, w->c[i].f_end[k] - w->c[i].f_first[k]);
    uint64_t total = describe_zeros(got, written, desc, len);
    free(got);
    return total;
}

size_t h_witness_rate_closes(const h_witness *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++)
        n += strcmp(w->c[i].close_cause, "rate") == 0;
    return n;
}

/* ---- finals on one timeline ---- */

static int cmp_first(const void *a, const void *b)
{
    const h_ev *x = *(const h_ev *const *)a, *y = *(const h_ev *const *)b;
    if (x->first_sample != y->first_sample)
        return x->first_sample < y->first_sample ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

bool h_check_timeline(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                      bool spans, h_cover *out, char *err, size_t errlen)
{
    bool ok = true;
    h_cover cov;
    memset(&cov, 0, sizeof cov);
    err[0] = '\0';
    pthread_mutex_lock(&c->mu);
    const h_ev **f = calloc(c->n + 1, sizeof *f);
    uint8_t *mark = calloc(written + 1, 1);
    if (!f || !mark)
        H_ERR_OUT("out of memory");
    size_t n = 0;
    uint64_t live_end = 0;
    for (size_t k = 0; k < c->n; k++) {
        const h_ev *e = &c->ev[k];
        if (e->type != STENO_EVENT_TRANSCRIPT || !e->is_final || e->end_sample == e->first_sample)
            continue;
        if (e->end_sample < e->first_sample || e->end_sample > written)
            H_ERR_OUT("final [%" PRIu64 ", %" PRIu64 ") is not inside the %" PRIu64
                      " written samples",
                      e->first_sample, e->end_sample, written);
        if (fabs(e->start - (double)e->first_sample / rate) > 0.0011 ||
            fabs(e->end - (double)e->end_sample / rate) > 0.0011)
            H_ERR_OUT("final %.4f-%.4f s disagrees with its samples [%" PRIu64 ", %" PRIu64 ")",
                      e->start, e->end, e->first_sample, e->end_sample);
        if (!e->from_backfill) {
            /* live results are never held back, and never go back in time */
            if (e->first_sample < live_end)
                H_ERR_OUT("live final [%" PRIu64 ", %" PRIu64
                          ") arrived after a live final ending at "
                          "%" PRIu64,
                          e->first_sample, e->end_sample, live_end);
            live_end = e->end_sample;
        }
        cov.backfill_finals += e->from_backfill != 0;
        f[n++] = e;
    }
    cov.finals = n;
    qsort(f, n, sizeof *f, cmp_first);
    for (size_t i = 0; i < n; i++) {
        const h_ev *e = f[i];
        for (uint64_t s = e->first_sample; s < e->end_sample; s++)
            cov.twice += mark[s]++ != 0;
        if (i && e->first_sample < f[i - 1]->end_sample)
            H_ERR_OUT("samples [%" PRIu64 ", %" PRIu64
                      ") are covered twice: by '%s'%s and by '%s'%s",
                      e->first_sample, f[i - 1]->end_sample, f[i - 1]->text,
                      f[i - 1]->from_backfill ? " (backfill)" : "", e->text,
                      e->from_backfill ? " (backfill)" : "");
        if (!spans)
            continue;
        h_span sp[256];
        size_t nsp = h_parse_spans(e->text, sp, sizeof sp / sizeof sp[0]);
        if (!nsp)
            H_ERR_OUT("final text is not a null-engine span: '%s'", e->text);
        uint64_t a = sp[0].a, b = sp[nsp - 1].b;
        if (b - a != e->end_sample - e->first_sample)
            H_ERR_OUT("final '%s' has %" PRIu64 " samples but was mapped to [%" PRIu64 ", %" PRIu64
                      ")",
                      e->text, b - a, e->first_sample, e->end_sample);
        uint64_t got = 0, at = e->first_sample;
        bool match = true;
        for (size_t k = 0; k < nsp && match; k++) {
            got = h_fnv1a64(pcm + at, (size_t)(sp[k].b - sp[k].a) * sizeof *pcm);
            match = got == sp[k].fnv;
            at += sp[k].b - sp[k].a;
        }
        if (!match)
            H_ERR_OUT("final '%s'%s was mapped to [%" PRIu64 ", %" PRIu64 "), whose checksum is "
                      "%016" PRIx64 ": it is on the wrong part of the timeline",
                      e->text, e->from_backfill ? " (backfill)" : "", e->first_sample,
                      e->end_sample, got);
    }
    for (uint64_t s = 0; s < written; s++)
        cov.covered += mark[s] != 0;
    cov.uncovered = describe_zeros(mark, written, cov.uncovered_desc, sizeof cov.uncovered_desc);
out:
    pthread_mutex_unlock(&c->mu);
    free(f);
    free(mark);
    if (out)
        *out = cov;
    return ok;
}

uint64_t h_dropped(h_collector *c, char *desc, size_t len)
{
    uint64_t total = 0, a = 0, b = 0; /* the range being merged: [a, b) */
    desc[0] = '\0';
    pthread_mutex_lock(&c->mu);
    for (size_t k = 0; k < c->n; k++) {
        const h_ev *e = &c->ev[k];
        if (e->type != STENO_EVENT_AUDIO_DROPPED)
            continue;
        total += e->drop_samples;
        if (b > a && e->drop_first == b) {
            b = e->drop_last + 1;
            continue;
        }
        if (b > a)
            describe_range(desc, len, a, b, 16000);
        a = e->drop_first;
        b = e->drop_last + 1;
    }
    if (b > a)
        describe_range(desc, len, a, b, 16000);
    pthread_mutex_unlock(&c->mu);
    return total;
}

/* ---- live lag ---- */

/* The newest sample the server held from live connections at each probe sample: a lag only
 * ever shrinks when live audio arrives, whichever live connection carries it. */
static uint64_t *live_newest(const h_probe *p, const h_witness *w)
{
    uint64_t *newest = calloc(p->n + 1, sizeof *newest);
    H_CHECK(newest, "out of memory");
    for (size_t j = 0; j < w->n; j++) {
        const h_wconn *c = &w->c[j];
        if (!c->live)
            continue;
        size_t fi = 0;
        uint64_t top = 0;
        for (size_t q = 0; q < p->n; q++) {
            while (fi < c->nframes && c->f_wall[fi] <= p->v[q].wall) {
                if (c->f_end[fi] > top)
                    top = c->f_end[fi];
                fi++;
            }
            if (top > newest[q])
                newest[q] = top;
        }
    }
    for (size_t q = 1; q < p->n; q++)
        if (newest[q - 1] > newest[q])
            newest[q] = newest[q - 1];
    return newest;
}

size_t h_lag_analyse(h_collector *col, const h_probe *p, const h_witness *w, uint32_t rate,
                     const double *strikes, size_t nstrikes, h_lag *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&col->mu);
    for (size_t k = 0; k < col->n && n < max; k++)
        if (col->ev[k].type == STENO_EVENT_RECONNECTED) {
            memset(&out[n], 0, sizeof out[n]);
            out[n].t = col->ev[k].wall;
            snprintf(out[n].rid, sizeof out[n].rid, "%s", col->ev[k].request_id);
            n++;
        }
    pthread_mutex_unlock(&col->mu);
    uint64_t *newest = live_newest(p, w);
    double stream_end = p->n ? p->v[p->n - 1].wall : 0;
    for (size_t i = 0; i < n; i++) {
        h_lag *l = &out[i];
        const h_wconn *c = NULL;
        for (size_t j = 0; j < w->n && !c; j++)
            if (strcmp(w->c[j].rid, l->rid) == 0)
                c = &w->c[j];
        double end = c && c->end_wall < stream_end ? c->end_wall : stream_end;
        for (size_t k = 0; k < nstrikes; k++)
            if (strikes[k] > l->t && strikes[k] < end)
                end = strikes[k];
        l->lived_s = end - l->t;
        l->witness_s = l->stat_s = l->catchup_s = -1;
        size_t s = 0;
        while (s < p->n && p->v[s].wall < l->t)
            s++;
        if (s == p->n)
            continue;
        uint64_t at_reconnect = p->v[s].written;
        l->backlog = at_reconnect - (p->v[s].acked < at_reconnect ? p->v[s].acked : at_reconnect);
        for (size_t q = s; q < p->n; q++) {
            const h_probe_sample *v = &p->v[q];
            double dt = v->wall - l->t;
            if (l->catchup_s < 0 && v->acked >= at_reconnect)
                l->catchup_s = dt;
            if (v->wall > end)
                continue;
            if (l->stat_s < 0 && v->live_lag <= rate)
                l->stat_s = dt;
            double lag = v->written > newest[q] ? (double)(v->written - newest[q]) / rate : 0;
            if (lag > l->max_lag_s)
                l->max_lag_s = lag;
            if (l->witness_s < 0 && c && lag <= 1.0)
                l->witness_s = dt;
        }
    }
    free(newest);
    return n;
}
