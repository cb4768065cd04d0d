/* records: what the server observed of each connection, for the control API. */
#include "records.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "server.h"
#include "util.h"

static const char *const control_names[SRV_CTL_COUNT] = {"KeepAlive",
                                                         "Finalize",
                                                         "CloseStream",
                                                         "EmptyBinary",
                                                         "ForceEndpoint",
                                                         "UpdateConfiguration",
                                                         "Terminate",
                                                         "session.update",
                                                         "input_audio_buffer.commit",
                                                         "input_audio_buffer.clear"};

const char *srv_control_name(srv_control_kind k)
{
    return k < SRV_CTL_COUNT ? control_names[k] : "?";
}

srv_record *srv_rec_new(void)
{
    srv_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->id = ++srv_g.next_id;
    srv_uuid4(&srv_g.rng, r->request_id);
    r->state = SRV_REC_HANDSHAKE;
    r->start_wall = srv_wall_s();
    r->start_mono = srv_mono_us();
    r->audio_fnv = SRV_FNV1A64_INIT;
    r->first_audio = r->last_audio = -1;
    r->last_final_end = -1;
    r->prev = srv_g.rec_tail;
    if (srv_g.rec_tail)
        srv_g.rec_tail->next = r;
    else
        srv_g.rec_head = r;
    srv_g.rec_tail = r;
    srv_g.n_records++;
    return r;
}

srv_record *srv_rec_find(uint64_t id)
{
    /* Recent ids are the common question: search from the newest. */
    for (srv_record *r = srv_g.rec_tail; r; r = r->prev)
        if (r->id == id)
            return r;
    return NULL;
}

static void flog_unlink(srv_record *r)
{
    if (!r->in_flog)
        return;
    if (r->flog_prev)
        r->flog_prev->flog_next = r->flog_next;
    else
        srv_g.flog_head = r->flog_next;
    if (r->flog_next)
        r->flog_next->flog_prev = r->flog_prev;
    else
        srv_g.flog_tail = r->flog_prev;
    r->flog_prev = r->flog_next = NULL;
    r->in_flog = 0;
    srv_g.n_flog--;
}

/* Keeps frame logs for the newest ended connections only, so a long run of
 * long streams cannot grow memory without bound. */
static void flog_push(srv_record *r)
{
    if (!r->frames)
        return;
    r->in_flog = 1;
    r->flog_prev = srv_g.flog_tail;
    if (srv_g.flog_tail)
        srv_g.flog_tail->flog_next = r;
    else
        srv_g.flog_head = r;
    srv_g.flog_tail = r;
    srv_g.n_flog++;
    while (srv_g.n_flog > SRV_FRAME_LOGS_KEPT) {
        srv_record *o = srv_g.flog_head;
        flog_unlink(o);
        free(o->frames);
        o->frames = NULL;
        o->n_frames = o->cap_frames = 0;
        o->frames_evicted = 1;
    }
}

static void rec_free(srv_record *r)
{
    flog_unlink(r);
    free(r->handshake_error);
    free(r->path);
    free(r->query);
    srv_params_free(&r->params);
    if (r->pparams && srv_g.proto->params_free)
        srv_g.proto->params_free(r);
    cJSON_Delete(r->config_updates);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->close_reason);
    for (size_t i = 0; i < r->n_faults; i++)
        free(r->faults[i]);
    free(r->faults);
    free(r->frames);
    free(r);
}

static void ended_unlink(srv_record *r)
{
    if (!r->in_ended)
        return;
    if (r->end_prev)
        r->end_prev->end_next = r->end_next;
    else
        srv_g.end_head = r->end_next;
    if (r->end_next)
        r->end_next->end_prev = r->end_prev;
    else
        srv_g.end_tail = r->end_prev;
    r->end_prev = r->end_next = NULL;
    r->in_ended = 0;
}

static void unlink_rec(srv_record *r)
{
    ended_unlink(r);
    if (r->prev)
        r->prev->next = r->next;
    else
        srv_g.rec_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        srv_g.rec_tail = r->prev;
    srv_g.n_records--;
}

static int ended(const srv_record *r)
{
    return r->state == SRV_REC_CLOSED || r->state == SRV_REC_REJECTED;
}

void srv_rec_ended(srv_record *r)
{
    r->end_wall = srv_wall_s();
    r->conn = NULL;
    srv_g.n_ended++;
    flog_push(r);
    if (!r->in_ended) {
        r->in_ended = 1;
        r->end_prev = srv_g.end_tail;
        if (srv_g.end_tail)
            srv_g.end_tail->end_next = r;
        else
            srv_g.end_head = r;
        srv_g.end_tail = r;
    }
    /* Live records are never forgotten, so a long-lived one cannot block the eviction of the
     * ended ones. The queue holds only ended records: walking the whole list from its oldest
     * record would pass every live connection at each end (O(n) per end at 10,000). */
    while (srv_g.n_ended > srv_g.cfg.history && srv_g.end_head && srv_g.end_head != r) {
        srv_record *o = srv_g.end_head;
        unlink_rec(o);
        rec_free(o);
        srv_g.n_ended--;
    }
}

void srv_rec_clear_ended(void)
{
    srv_record *o = srv_g.rec_head;
    while (o) {
        srv_record *n = o->next;
        if (ended(o)) {
            unlink_rec(o);
            rec_free(o);
            srv_g.n_ended--;
        }
        o = n;
    }
}

void srv_rec_free_all(void)
{
    while (srv_g.rec_head) {
        srv_record *r = srv_g.rec_head;
        unlink_rec(r);
        rec_free(r);
    }
    srv_g.n_ended = 0;
}

void srv_rec_add_fault(srv_record *r, const char *what)
{
    char **f = realloc(r->faults, (r->n_faults + 1) * sizeof(*f));
    if (!f)
        return;
    r->faults = f;
    if ((f[r->n_faults] = strdup(what)))
        r->n_faults++;
}

void srv_rec_add_frame(srv_record *r, uint64_t offset, uint32_t bytes, uint64_t fnv, double t)
{
    if (r->frames_evicted)
        return;
    if (r->n_frames >= srv_g.cfg.frame_log) {
        r->frames_truncated = srv_g.cfg.frame_log > 0 || r->frames_truncated;
        return;
    }
    if (r->n_frames == r->cap_frames) {
        size_t cap = r->cap_frames ? r->cap_frames * 2 : 64;
        if (cap > srv_g.cfg.frame_log)
            cap = srv_g.cfg.frame_log;
        srv_frame *f = realloc(r->frames, cap * sizeof(*f));
        if (!f)
            return;
        r->frames = f;
        r->cap_frames = cap;
    }
    r->frames[r->n_frames++] = (srv_frame){.offset = offset, .bytes = bytes, .fnv = fnv, .t = t};
}

static void add_opt_number(cJSON *o, const char *k, double v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, v);
}

static void add_opt_string(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *string_array(char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

cJSON *srv_params_json(const srv_params *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", p->model);
    cJSON_AddStringToObject(o, "language", p->language);
    cJSON_AddStringToObject(o, "encoding", p->encoding);
    cJSON_AddNumberToObject(o, "sample_rate", p->sample_rate);
    cJSON_AddNumberToObject(o, "channels", p->channels);
    cJSON_AddBoolToObject(o, "interim_results", p->interim_results);
    cJSON_AddBoolToObject(o, "punctuate", p->punctuate);
    cJSON_AddBoolToObject(o, "smart_format", p->smart_format);
    if (p->endpointing_ms < 0)
        cJSON_AddFalseToObject(o, "endpointing");
    else
        cJSON_AddNumberToObject(o, "endpointing", p->endpointing_ms);
    if (p->utterance_end_ms)
        cJSON_AddNumberToObject(o, "utterance_end_ms", p->utterance_end_ms);
    else
        cJSON_AddNullToObject(o, "utterance_end_ms");
    cJSON_AddBoolToObject(o, "vad_events", p->vad_events);
    cJSON_AddItemToObject(o, "keywords", string_array(p->keywords, p->n_keywords));
    cJSON_AddItemToObject(o, "keyterm", string_array(p->keyterm, p->n_keyterm));
    cJSON *other = cJSON_AddObjectToObject(o, "other");
    for (size_t i = 0; i < p->n_other; i++) {
        /* Repeatable ones (tag, extra, ...) keep their last value here; the
         * raw query has them all. */
        cJSON_DeleteItemFromObjectCaseSensitive(other, p->other[i].name);
        cJSON_AddStringToObject(other, p->other[i].name, p->other[i].value);
    }
    cJSON_AddItemToObject(o, "ignored", string_array(p->ignored, p->n_ignored));
    return o;
}

static const char *state_name(srv_rec_state s)
{
    switch (s) {
    case SRV_REC_HANDSHAKE:
        return "handshake";
    case SRV_REC_OPEN:
        return "open";
    case SRV_REC_CLOSED:
        return "closed";
    case SRV_REC_REJECTED:
        return "rejected";
    }
    return "?";
}

cJSON *srv_rec_json(const srv_record *r)
{
    char hex[17];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "request_id", r->request_id);
    cJSON_AddStringToObject(o, "state", state_name(r->state));
    cJSON_AddNumberToObject(o, "handshake_status", r->handshake_status);
    add_opt_string(o, "handshake_error", r->handshake_error);
    add_opt_string(o, "path", r->path);
    add_opt_string(o, "query", r->query);
    if (r->params_ok)
        cJSON_AddItemToObject(o, "params", srv_g.proto->params_json(r));
    else
        cJSON_AddNullToObject(o, "params");
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    for (size_t i = 0; i < r->n_headers; i++)
        cJSON_AddStringToObject(h, r->headers[i].name, r->headers[i].value);
    cJSON_AddStringToObject(o, "peer", r->peer);
    cJSON_AddNumberToObject(o, "start", r->start_wall);
    add_opt_number(o, "end", ended(r) ? r->end_wall : -1);

    cJSON_AddNumberToObject(o, "audio_bytes", (double)r->audio_bytes);
    cJSON_AddNumberToObject(o, "audio_frames", (double)r->audio_frames);
    unsigned ch = r->params_ok && r->channels > 0 ? (unsigned)r->channels : 1;
    unsigned sb = r->params_ok && r->sample_bytes > 0 ? (unsigned)r->sample_bytes : 2;
    cJSON_AddNumberToObject(o, "audio_samples", (double)(r->audio_bytes / sb / ch));
    srv_hex64(r->audio_fnv, hex);
    cJSON_AddStringToObject(o, "audio_fnv1a64", hex);
    add_opt_number(o, "first_audio", r->first_audio);
    add_opt_number(o, "last_audio", r->last_audio);
    cJSON_AddNumberToObject(o, "last_frame_offset", (double)r->last_frame_offset);
    cJSON *c = cJSON_AddObjectToObject(o, "control");
    for (size_t k = 0; k < srv_g.proto->n_controls; k++)
        cJSON_AddNumberToObject(c, control_names[srv_g.proto->controls[k]],
                                r->control[srv_g.proto->controls[k]]);
    cJSON *cl = cJSON_AddArrayToObject(o, "control_log");
    for (size_t i = 0; i < r->n_control_log; i++)
        cJSON_AddItemToArray(cl, cJSON_CreateString(control_names[r->control_log[i]]));
    cJSON_AddNumberToObject(o, "text_messages", (double)r->text_messages);
    cJSON_AddNumberToObject(o, "invalid_text", (double)r->invalid_text);
    cJSON_AddNumberToObject(o, "messages_sent", (double)r->messages_sent);
    cJSON_AddNumberToObject(o, "results_sent", (double)r->results_sent);
    cJSON_AddNumberToObject(o, "finals_sent", (double)r->finals_sent);
    cJSON_AddNumberToObject(o, "interims_sent", (double)r->interims_sent);
    cJSON_AddNumberToObject(o, "speech_started_sent", (double)r->speech_started_sent);
    cJSON_AddNumberToObject(o, "utterance_end_sent", (double)r->utterance_end_sent);
    cJSON_AddNumberToObject(o, "metadata_sent", (double)r->metadata_sent);
    add_opt_number(o, "last_final_end", r->last_final_end);
    if (r->close_code)
        cJSON_AddNumberToObject(o, "close_code", r->close_code);
    else
        cJSON_AddNullToObject(o, "close_code");
    add_opt_string(o, "close_reason",
                   r->close_code ? (r->close_reason ? r->close_reason : "") : NULL);
    add_opt_string(o, "closed_by", r->closed_by);
    add_opt_string(o, "close_cause", r->close_cause);
    cJSON_AddItemToObject(o, "faults", string_array(r->faults, r->n_faults));
    if (srv_g.proto->record_json)
        srv_g.proto->record_json(r, o);
    return o;
}

cJSON *srv_rec_frames_json(const srv_record *r)
{
    char hex[17];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddBoolToObject(o, "truncated", r->frames_truncated || r->frames_evicted);
    cJSON_AddBoolToObject(o, "evicted", r->frames_evicted);
    cJSON *a = cJSON_AddArrayToObject(o, "frames");
    for (size_t i = 0; i < r->n_frames; i++) {
        cJSON *f = cJSON_CreateObject();
        srv_hex64(r->frames[i].fnv, hex);
        cJSON_AddNumberToObject(f, "offset", (double)r->frames[i].offset);
        cJSON_AddNumberToObject(f, "bytes", r->frames[i].bytes);
        cJSON_AddStringToObject(f, "fnv1a64", hex);
        cJSON_AddNumberToObject(f, "t", r->frames[i].t);
        cJSON_AddItemToArray(a, f);
    }
    return o;
}
