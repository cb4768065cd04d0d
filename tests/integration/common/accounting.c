/* accounting: proves from a session's events, the audio it was given and the server's records
 * that every sample was transcribed exactly once, in order, or reported dropped. */
#include "harness.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool h_accounting_scan_backfill = true;
bool h_accounting_check_slices = true;
bool h_accounting_nameless_conns = false;

typedef struct conn_info {
    const char *rid;
    bool backfill_after; /* its RECONNECTED handed the backlog to backfill: it starts at a seam */
    uint32_t backfill_chunks;
    size_t ev_index;       /* its CONNECTED / RECONNECTED event */
    uint64_t ack_at_start; /* finals' high-water mark when it was established */
    bool base_known;
    uint64_t base; /* session sample of its first audio sample, from its finals */
    size_t finals;
} conn_info;

/* FNV over n samples of pcm from `from`, skipping dropped ones; *end = one past the last. */
size_t h_parse_spans(const char *text, h_span *out, size_t max)
{
    size_t n = 0;
    const char *p = text;
    while (*p && n < max) {
        char hex[32];
        int used = 0;
        if (sscanf(p, "span %" SCNu64 "-%" SCNu64 " fnv1a64=%31s%n", &out[n].a, &out[n].b, hex,
                   &used) != 3 ||
            out[n].b < out[n].a || (n && out[n].a != out[n - 1].b))
            return 0;
        out[n++].fnv = strtoull(hex, NULL, 16);
        p += used;
        if (*p == ' ')
            p++;
        else if (*p)
            return 0;
    }
    return *p ? 0 : n;
}

static uint64_t fnv_skipping(const uint8_t *dropped, const int16_t *pcm, uint64_t written,
                             uint64_t from, uint64_t n, uint64_t *end, bool *overrun)
{
    uint64_t h = H_FNV_INIT, i = from, left = n;
    *overrun = false;
    while (left) {
        if (i >= written) {
            *overrun = true;
            break;
        }
        if (dropped[i]) {
            i++;
            continue;
        }
        /* a run up to the next dropped sample or the end of the stream */
        uint64_t run = 1;
        while (run < left && i + run < written && !dropped[i + run])
            run++;
        h = h_fnv1a64_more(h, pcm + i, (size_t)run * sizeof *pcm);
        i += run;
        left -= run;
    }
    *end = i;
    return h;
}

/* A chunk-aligned start at or after `from` whose n samples (skipping `skip`) have the checksum
 * hex. */
static bool find_slice(const uint8_t *skip, const int16_t *pcm, uint64_t written,
                       uint32_t chunk_frames, uint64_t from, uint64_t n, const char *hex,
                       uint64_t *base)
{
    for (uint64_t b = from; b + n <= written; b += chunk_frames) {
        if (skip[b])
            continue;
        uint64_t end;
        bool over;
        uint64_t h = fnv_skipping(skip, pcm, written, b, n, &end, &over);
        char got[17];
        snprintf(got, sizeof got, "%016" PRIx64, h);
        if (!over && strcmp(got, hex) == 0) {
            *base = b;
            return true;
        }
    }
    return false;
}

/* Binds a connection the client cannot name to its server record (h_accounting_nameless_conns):
 * the earliest record after *last (records are in start order) that started no later than
 * `wall`, when the client saw the connection established, and whose audio is exactly the
 * written stream (skipping `skip`) from `base`, or, for a connection that starts at a backfill
 * seam no final has placed yet, from some chunk at or after `base`. NULL when none is. */
static const cJSON *bind_by_content(const cJSON *records, int *last, double wall,
                                    const uint8_t *skip, const int16_t *pcm, uint64_t written,
                                    uint32_t chunk_frames, uint64_t base, bool seam_unplaced,
                                    uint64_t *bound_base)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(records, "connections"), *rec;
    int idx = -1;
    cJSON_ArrayForEach(rec, arr)
    {
        if (++idx <= *last || h_jnum(rec, "start", INFINITY) > wall)
            continue;
        double nd = h_jnum(rec, "audio_samples", 0);
        if (nd <= 0)
            continue;
        const char *want = h_jstr(rec, "audio_fnv1a64");
        uint64_t at = base;
        bool hit;
        if (seam_unplaced) {
            hit = find_slice(skip, pcm, written, chunk_frames, base, (uint64_t)nd, want, &at);
        } else {
            uint64_t end;
            bool over;
            char hex[17];
            snprintf(hex, sizeof hex, "%016" PRIx64,
                     fnv_skipping(skip, pcm, written, base, (uint64_t)nd, &end, &over));
            hit = !over && strcmp(hex, want) == 0;
        }
        if (hit) {
            *last = idx;
            *bound_base = at;
            return rec;
        }
    }
    return NULL;
}

/* Where connection ci's audio must begin unless it starts at a backfill seam: the first chunk
 * not acknowledged when it was established (or the latest seam, if later), past any chunk
 * evicted before it opened. skip gets what it cannot have received: chunks the producer
 * dropped, and chunks evicted before it opened (chunks evicted later may well have been sent on
 * it). */
static uint64_t expected_base(const h_collector *c, const conn_info *ci, uint64_t seam_floor,
                              uint32_t chunk_frames, uint64_t written, uint8_t *skip)
{
    memset(skip, 0, written + 1);
    for (size_t q = 0; q < c->n; q++) {
        const h_ev *e = &c->ev[q];
        if (e->type == STENO_EVENT_AUDIO_DROPPED && (e->producer_side || q < ci->ev_index))
            memset(skip + e->drop_first, 1, e->drop_last - e->drop_first + 1);
    }
    uint64_t base = ci->ack_at_start > seam_floor ? ci->ack_at_start : seam_floor;
    base = base / chunk_frames * chunk_frames;
    while (base < written && skip[base])
        base++; /* evicted during the outage: replay starts after it */
    return base;
}

static bool check(h_collector *c, bool spans, const int16_t *pcm, uint64_t written, uint32_t rate,
                  uint32_t chunk_frames, const cJSON *records, h_accounting *out, char *err,
                  size_t errlen)
{
    bool ok = true;
    uint8_t *cover = NULL, *dropped = NULL, *skip = NULL;
    conn_info *conns = NULL;
    size_t nconn = 0;
    h_accounting acc;
    memset(&acc, 0, sizeof acc);
    acc.written = written;
    err[0] = '\0';
    pthread_mutex_lock(&c->mu);

    cover = calloc(written + 1, 1);
    dropped = calloc(written + 1, 1);
    skip = calloc(written + 1, 1);
    conns = calloc(c->n + 1, sizeof *conns);
    if (!cover || !dropped || !skip || !conns)
        H_ERR_OUT("out of memory");
    if (c->order_error)
        H_ERR_OUT("event seq numbers are not 1, 2, 3, ... in emission order");

    /* dropped ranges: exact, inside the stream, never twice */
    for (size_t k = 0; k < c->n; k++) {
        const h_ev *e = &c->ev[k];
        if (e->type != STENO_EVENT_AUDIO_DROPPED)
            continue;
        acc.drop_events++;
        if (e->drop_last < e->drop_first || e->drop_last >= written)
            H_ERR_OUT("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] is not inside the %" PRIu64
                      " written samples",
                      e->drop_first, e->drop_last, written);
        if (!e->producer_side && e->drop_samples != e->drop_last - e->drop_first + 1)
            H_ERR_OUT("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] says %" PRIu64 " samples",
                      e->drop_first, e->drop_last, e->drop_samples);
        if (e->drop_first % chunk_frames || (e->drop_last + 1) % chunk_frames)
            H_ERR_OUT("AUDIO_DROPPED [%" PRIu64 ", %" PRIu64 "] is not whole chunks of %u",
                      e->drop_first, e->drop_last, chunk_frames);
        for (uint64_t i = e->drop_first; i <= e->drop_last; i++) {
            if (dropped[i])
                H_ERR_OUT("sample %" PRIu64 " reported dropped twice", i);
            dropped[i] = 1;
        }
        acc.dropped += e->drop_last - e->drop_first + 1;
    }

    /* walk the events in order: connections, finals, times. Finals come in two lanes: live
     * ones, in timeline order, and backfill ones (audio buffered during an outage, replayed
     * on extra connections), in timeline order among themselves but later than live finals
     * after the seam. Tiling below proves the two lanes fit together exactly. */
    long cur = -1;
    uint64_t acked = 0, prev_final_end = 0, prev_bf_end = 0;
    double prev_end_s = 0, prev_bf_end_s = 0;
    for (size_t k = 0; k < c->n; k++) {
        const h_ev *e = &c->ev[k];
        if (e->type == STENO_EVENT_CONNECTED || e->type == STENO_EVENT_RECONNECTED) {
            conns[nconn].rid = e->request_id;
            conns[nconn].ev_index = k;
            conns[nconn].ack_at_start = acked;
            conns[nconn].backfill_after =
                e->type == STENO_EVENT_RECONNECTED && e->backfill_chunks > 0;
            conns[nconn].backfill_chunks =
                e->type == STENO_EVENT_RECONNECTED ? e->backfill_chunks : 0;
            cur = (long)nconn++;
            continue;
        }
        if (e->type == STENO_EVENT_RECONNECTING || e->type == STENO_EVENT_FAILED) {
            cur = -1;
            continue;
        }
        if (e->type != STENO_EVENT_TRANSCRIPT)
            continue;
        if (e->end_sample < e->first_sample)
            H_ERR_OUT("transcript [%" PRIu64 ", %" PRIu64 ") runs backwards", e->first_sample,
                      e->end_sample);
        if (fabs(e->start - (double)e->first_sample / rate) > 0.0011 ||
            fabs(e->end - (double)e->end_sample / rate) > 0.0011)
            H_ERR_OUT("transcript %.4f-%.4f s disagrees with samples [%" PRIu64 ", %" PRIu64 ")",
                      e->start, e->end, e->first_sample, e->end_sample);
        if (!e->is_final) {
            if (e->from_backfill)
                H_ERR_OUT("interim [%" PRIu64 ", %" PRIu64
                          ") from backfill: only finals are replayed",
                          e->first_sample, e->end_sample);
            if (e->end_sample > e->first_sample && e->first_sample < acked)
                H_ERR_OUT("interim [%" PRIu64 ", %" PRIu64
                          ") regresses behind the final end %" PRIu64,
                          e->first_sample, e->end_sample, acked);
            continue;
        }
        if (e->end_sample == e->first_sample)
            continue; /* an empty final (Finalize with nothing pending) */
        if (e->from_backfill) {
            if (e->first_sample < prev_bf_end || e->start < prev_bf_end_s - 1e-9)
                H_ERR_OUT("backfill final [%" PRIu64 ", %" PRIu64
                          ") (%.3f s) overlaps or precedes the "
                          "previous backfill final ending at %" PRIu64 " (%.3f s)",
                          e->first_sample, e->end_sample, e->start, prev_bf_end, prev_bf_end_s);
            prev_bf_end = e->end_sample;
            prev_bf_end_s = e->end;
            acc.backfill_finals++;
        } else {
            if (cur < 0)
                H_ERR_OUT("final [%" PRIu64 ", %" PRIu64 ") arrived outside a connection",
                          e->first_sample, e->end_sample);
            if (e->first_sample < prev_final_end || e->start < prev_end_s - 1e-9)
                H_ERR_OUT("final [%" PRIu64 ", %" PRIu64
                          ") (%.3f s) overlaps or precedes the previous "
                          "final ending at %" PRIu64 " (%.3f s)",
                          e->first_sample, e->end_sample, e->start, prev_final_end, prev_end_s);
            prev_final_end = e->end_sample;
            prev_end_s = e->end;
            if (e->end_sample > acked)
                acked = e->end_sample;
            conns[cur].finals++;
        }
        acc.finals++;
        if (e->end_sample > written)
            H_ERR_OUT("final [%" PRIu64 ", %" PRIu64 ") beyond the %" PRIu64 " written samples",
                      e->first_sample, e->end_sample, written);
        if (!spans)
            continue;
        h_span sp[256];
        size_t nsp = h_parse_spans(e->text, sp, sizeof sp / sizeof sp[0]);
        if (!nsp)
            H_ERR_OUT("final text is not a null-engine span: '%s'", e->text);
        uint64_t a = sp[0].a, b = sp[nsp - 1].b;
        uint64_t span_dropped = 0;
        for (uint64_t i = e->first_sample; i < e->end_sample; i++)
            span_dropped += dropped[i];
        if (b - a != e->end_sample - e->first_sample - span_dropped)
            H_ERR_OUT("final '%s' has %" PRIu64 " samples but the SDK mapped it to [%" PRIu64
                      ", %" PRIu64 ") (%" PRIu64 " of them dropped)",
                      e->text, b - a, e->first_sample, e->end_sample, span_dropped);
        if (e->first_sample < a)
            H_ERR_OUT("final '%s' mapped to %" PRIu64 ", before the connection could start",
                      e->text, e->first_sample);
        uint64_t base = e->first_sample - a; /* exact when nothing dropped before it */
        if (!e->from_backfill && !conns[cur].base_known) {
            conns[cur].base_known = true;
            conns[cur].base = base;
        }
        uint64_t end = e->first_sample, got = 0;
        bool over = false, match = true;
        for (size_t q = 0; q < nsp && match && !over; q++) {
            got = fnv_skipping(dropped, pcm, written, end, sp[q].b - sp[q].a, &end, &over);
            match = got == sp[q].fnv;
        }
        if (over || !match || end != e->end_sample)
            H_ERR_OUT("final '%s' mapped to [%" PRIu64 ", %" PRIu64
                      ") but that audio's checksum is "
                      "%016" PRIx64 ": the SDK put it on the wrong part of the timeline",
                      e->text, e->first_sample, e->end_sample, got);
        for (uint64_t i = e->first_sample; i < e->end_sample; i++) {
            if (dropped[i])
                continue;
            if (cover[i])
                H_ERR_OUT("sample %" PRIu64 " covered by two finals (second: '%s')", i, e->text);
            cover[i] = 1;
            acc.covered++;
        }
    }

    if (spans) {
        for (uint64_t i = 0; i < written; i++) {
            if (cover[i] + dropped[i] != 1) {
                uint64_t j = i;
                while (j < written && cover[j] + dropped[j] == cover[i] + dropped[i])
                    j++;
                H_ERR_OUT("samples [%" PRIu64 ", %" PRIu64 ") are %s (%" PRIu64 " covered, %" PRIu64
                          " dropped of %" PRIu64 " written)",
                          i, j,
                          cover[i] + dropped[i] ? "both covered and dropped"
                                                : "neither covered by a final nor reported dropped",
                          acc.covered, acc.dropped, written);
            }
        }
    }

    /* each connection: a contiguous slice starting at the first unacknowledged chunk, or
     * after a backfill seam at the seam (the live lane owns everything from there on) */
    uint64_t prev_conn_end = 0, seam_floor = 0;
    int last_bound = -1; /* nameless connections: the record bound last */
    for (size_t k = 0; k < nconn; k++) {
        conn_info *ci = &conns[k];
        const cJSON *r = h_record_by_rid(records, ci->rid);
        bool bound_at_seam = false; /* bound where its seam is, which no final placed */
        uint64_t bound_base = 0;
        if (!r && (!ci->rid || !ci->rid[0]) && h_accounting_nameless_conns &&
            h_accounting_check_slices) {
            /* bind the record whose audio begins where the checks below will demand that this
             * connection's does (a seam no final placed: the first record whose audio is a
             * slice from a chunk at or past the first unacknowledged one) */
            uint64_t want = expected_base(c, ci, seam_floor, chunk_frames, written, skip);
            bool unplaced = ci->backfill_after && !ci->base_known;
            if (ci->backfill_after && ci->base_known)
                want = ci->base;
            bound_base = want;
            r = bind_by_content(records, &last_bound, c->ev[ci->ev_index].wall, skip, pcm, written,
                                chunk_frames, want, unplaced, &bound_base);
            if (r) {
                h_ev *ev = &c->ev[ci->ev_index];
                free(ev->request_id);
                ev->request_id = strdup(h_jstr(r, "request_id"));
                if (!ev->request_id)
                    H_ERR_OUT("out of memory");
                ci->rid = ev->request_id;
                bound_at_seam = unplaced;
            } else if (ci->finals) {
                H_ERR_OUT("connection %zu has %zu finals, but no server record that started "
                          "before it was established holds the written stream from %" PRIu64
                          " (%s)",
                          k + 1, ci->finals, want,
                          unplaced ? "or a later chunk: it starts at a backfill seam"
                                   : "its first unacknowledged chunk");
            }
        }
        /* A provider that names its connections in a message after the handshake (AssemblyAI's
         * Begin) leaves a connection that never spoke nameless: with no finals, it counts as
         * one that received nothing (the tiling above still proves every sample). */
        bool nameless = !r && (!ci->rid || !ci->rid[0]) && !ci->finals;
        if (!r && !nameless)
            H_ERR_OUT("connection %zu (request id '%s') has no server record", k + 1, ci->rid);
        double samples_d = nameless ? 0 : h_jnum(r, "audio_samples", -1);
        if (samples_d < 0)
            H_ERR_OUT("server record of '%s' has no audio_samples", ci->rid);
        uint64_t n = (uint64_t)samples_d;
        if (n == 0) {
            if (ci->finals)
                H_ERR_OUT("connection '%s' received no audio but produced %zu finals", ci->rid,
                          ci->finals);
            if (ci->backfill_after) {
                /* it died before sending, but its seam stands: the backlog's chunks went to
                 * backfill, and the next live connection starts at the seam */
                uint64_t from = ci->ack_at_start > seam_floor ? ci->ack_at_start : seam_floor;
                uint64_t seam = from / chunk_frames * chunk_frames +
                                (uint64_t)ci->backfill_chunks * chunk_frames;
                if (seam > seam_floor)
                    seam_floor = seam;
            }
            continue;
        }
        acc.connections++;
        if (!h_accounting_check_slices)
            continue;
        uint64_t base = expected_base(c, ci, seam_floor, chunk_frames, written, skip);
        if (ci->backfill_after) {
            /* live audio resumed at a seam (a chunk boundary) past the backlog: where, its
             * finals say, or its audio does */
            if (ci->base_known)
                base = ci->base;
            else if (bound_at_seam)
                base = bound_base;
            else if (!find_slice(skip, pcm, written, chunk_frames, 0, n, h_jstr(r, "audio_fnv1a64"),
                                 &base))
                H_ERR_OUT("connection %zu ('%s'): its %" PRIu64
                          " samples are no contiguous slice of "
                          "the written stream",
                          k + 1, ci->rid, n);
        }
        if (ci->backfill_after && base > seam_floor)
            seam_floor = base;
        if (ci->base_known && ci->base != base)
            H_ERR_OUT("connection %zu ('%s'): its finals put its first sample at %" PRIu64
                      ", but the first unacknowledged chunk when it opened began at %" PRIu64,
                      k + 1, ci->rid, ci->base, base);
        uint64_t end;
        bool over;
        uint64_t h = fnv_skipping(skip, pcm, written, base, n, &end, &over);
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, h);
        if (over)
            H_ERR_OUT("connection %zu ('%s') received %" PRIu64 " samples from %" PRIu64
                      ", more than was written (%" PRIu64 ")",
                      k + 1, ci->rid, n, base, written);
        if (strcmp(hex, h_jstr(r, "audio_fnv1a64")) != 0) {
            uint64_t at = 0;
            bool found =
                find_slice(skip, pcm, written, chunk_frames, 0, n, h_jstr(r, "audio_fnv1a64"), &at);
            H_ERR_OUT(
                "connection %zu ('%s'): the server's checksum of its %" PRIu64
                " samples is %s, but the written stream from %" PRIu64 " (first unacknowledged "
                "chunk) gives %s: audio was reordered, skipped or duplicated (%s %" PRIu64 ")",
                k + 1, ci->rid, n, h_jstr(r, "audio_fnv1a64"), base, hex,
                found ? "its audio is the stream from" : "no contiguous slice matches; tried",
                found ? at : written);
        }
        if (prev_conn_end > base)
            acc.replayed += prev_conn_end - base;
        prev_conn_end = end;
    }
    /* backfill connections: no event names them, and the records may hold other sessions'
     * connections too. A record whose audio is a contiguous, in-order slice of this stream
     * is this session's backfill connection (out->backfill_connections counts them: tests
     * compare it with stats.backfills); the finals' spans above prove what they carried. */
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(records, "connections"), *rec;
    memset(skip, 0, written + 1);
    for (size_t q = 0; q < c->n; q++) {
        const h_ev *e = &c->ev[q];
        if (e->type == STENO_EVENT_AUDIO_DROPPED && e->producer_side)
            memset(skip + e->drop_first, 1, e->drop_last - e->drop_first + 1);
    }
    cJSON_ArrayForEach(rec, arr)
    {
        if (!h_accounting_scan_backfill || !h_accounting_check_slices)
            break;
        const char *rid = h_jstr(rec, "request_id");
        bool live = false;
        for (size_t k = 0; k < nconn && !live; k++)
            live = conns[k].rid && strcmp(conns[k].rid, rid) == 0;
        double nd = h_jnum(rec, "audio_samples", 0);
        if (live || nd <= 0)
            continue;
        uint64_t base = 0;
        if (!find_slice(skip, pcm, written, chunk_frames, 0, (uint64_t)nd,
                        h_jstr(rec, "audio_fnv1a64"), &base))
            continue;
        acc.connections++;
        acc.backfill_connections++;
    }
    if (spans && acc.covered + acc.dropped != written)
        H_ERR_OUT("covered %" PRIu64 " + dropped %" PRIu64 " != written %" PRIu64, acc.covered,
                  acc.dropped, written);
out:
    pthread_mutex_unlock(&c->mu);
    free(cover);
    free(dropped);
    free(skip);
    free(conns);
    if (out)
        *out = acc;
    return ok;
}

bool h_check_accounting(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                        uint32_t chunk_frames, const cJSON *records, h_accounting *out, char *err,
                        size_t errlen)
{
    return check(c, true, pcm, written, rate, chunk_frames, records, out, err, errlen);
}

bool h_check_connections(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                         uint32_t chunk_frames, const cJSON *records, h_accounting *out, char *err,
                         size_t errlen)
{
    return check(c, false, pcm, written, rate, chunk_frames, records, out, err, errlen);
}
