/* faults: the fault-injection state and actions behind POST /faults. */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "proto.h"
#include "server.h"

#define OVERSIZE_DEFAULT (1u << 20)
#define OVERSIZE_MAX (64u << 20)

static const char *const keys[] = {
    "reject_next",    "status",     "retry_after", "error",  "down",  "delay_results_ms",
    "action",         "connection", "code",        "reason", "bytes", "kind",
    "after_audio_ms", "count",      "mute_next",   NULL};

static const char *const actions[] = {"drop",      "close",     "stall",        "unstall",
                                      "malformed", "oversized", "invalid_utf8", "binary",
                                      "bad_times", NULL};
#define ACTIONS_TEXT                                                                               \
    "drop, close, stall, unstall, malformed, oversized, invalid_utf8, binary, bad_times"

static const char *const malformed_kinds[] = {"text", "type", "unknown", NULL};
/* bad_times: a final with negative times; one for audio final long ago (out of order); one for
 * audio never sent */
static const char *const time_kinds[] = {"negative", "past", "phantom", NULL};

/* Per armed entry: the connections it has already fired on. */
typedef struct armed_ext {
    srv_armed a;
    uint64_t *fired;
    size_t n_fired;
} armed_ext;

static int index_of(const char *v, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(v, list[i]))
            return i;
    return -1;
}

static int get_int(const cJSON *o, const char *k, long lo, long hi, long dflt, long *out, char *err,
                   size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != (double)(long)v->valuedouble) {
        snprintf(err, errlen, "'%s' must be an integer in %ld..%ld", k, lo, hi);
        return -1;
    }
    *out = (long)v->valuedouble;
    return 0;
}

static int get_str(const cJSON *o, const char *k, char *dst, size_t dlen, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    dst[0] = 0;
    if (!v)
        return 0;
    if (cJSON_IsNumber(v)) {
        snprintf(dst, dlen, "%g", v->valuedouble);
        return 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= dlen || strpbrk(v->valuestring, "\r\n")) {
        snprintf(err, errlen, "'%s' must be a short string", k);
        return -1;
    }
    snprintf(dst, dlen, "%s", v->valuestring);
    return 0;
}

/* Checks an action object; fills what running it needs. */
typedef struct action_args {
    int action;
    long code, bytes;
    int kind;
    char reason[124];
} action_args;

static int parse_action(const cJSON *o, action_args *a, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "action");
    if (!cJSON_IsString(v) || (a->action = index_of(v->valuestring, actions)) < 0) {
        snprintf(err, errlen, "'action' must be one of " ACTIONS_TEXT);
        return -1;
    }
    if (a->action == 8 && !srv_g.proto->result_message) {
        snprintf(err, errlen, "'bad_times' is not offered by the %s protocol", srv_g.proto->name);
        return -1;
    }
    if (get_int(o, "code", 1000, 4999, 1011, &a->code, err, errlen) ||
        get_int(o, "bytes", 512, OVERSIZE_MAX, OVERSIZE_DEFAULT, &a->bytes, err, errlen))
        return -1;
    if (a->code == 1005 || a->code == 1006 || a->code == 1015) {
        snprintf(err, errlen, "'code' %ld cannot be sent in a close frame", a->code);
        return -1;
    }
    if (!cJSON_GetObjectItemCaseSensitive(o, "reason"))
        snprintf(a->reason, sizeof(a->reason), "NET-0000");
    else if (get_str(o, "reason", a->reason, sizeof(a->reason), err, errlen))
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(o, "kind");
    a->kind = 0;
    const char *const *kinds = a->action == 8 ? time_kinds : malformed_kinds;
    if (v && (!cJSON_IsString(v) || (a->kind = index_of(v->valuestring, kinds)) < 0)) {
        snprintf(err, errlen, "'kind' must be %s",
                 a->action == 8 ? "negative, past or phantom" : "text, type or unknown");
        return -1;
    }
    return 0;
}

static void run_action(srv_conn *c, const action_args *a)
{
    char what[200];
    srv_record *r = srv_conn_record(c);
    switch (a->action) {
    case 0:
        snprintf(what, sizeof(what), "drop");
        srv_rec_add_fault(r, what);
        srv_conn_fault_drop(c);
        break;
    case 1:
        snprintf(what, sizeof(what), "close %ld %s", a->code, a->reason);
        srv_rec_add_fault(r, what);
        srv_conn_fault_close(c, (int)a->code, a->reason);
        break;
    case 2:
    case 3:
        srv_rec_add_fault(r, a->action == 2 ? "stall" : "unstall");
        srv_conn_fault_stall(c, a->action == 2);
        break;
    case 4: {
        snprintf(what, sizeof(what), "malformed %s", malformed_kinds[a->kind]);
        srv_rec_add_fault(r, what);
        char *t = strdup(srv_g.proto->malformed[a->kind]);
        if (t)
            srv_conn_fault_send(c, t, strlen(t));
        break;
    }
    case 5: {
        snprintf(what, sizeof(what), "oversized %ld", a->bytes);
        srv_rec_add_fault(r, what);
        char *t = srv_g.proto->oversized(srv_conn_msginfo(c), (size_t)a->bytes);
        if (t)
            srv_conn_fault_send(c, t, (size_t)a->bytes);
        break;
    }
    case 6: {
        /* a result whose transcript is not UTF-8 (a lone continuation byte, an overlong
         * sequence) */
        srv_rec_add_fault(r, "invalid_utf8");
        static const char bad[] = "\x80\xc0\xaf";
        srv_word w = {.word = bad, .start = 0, .end = 0.1, .confidence = 1};
        srv_event ev = {.kind = SRV_EV_RESULT,
                        .is_final = 0,
                        .duration = 0.1,
                        .transcript = bad,
                        .words = &w,
                        .n_words = 1};
        char *t = srv_g.proto->result_message
                      ? srv_g.proto->result_message(srv_conn_msginfo(c), &ev)
                      : strdup("{\"type\":\"\x80\xc0\xaf\"}");
        if (t)
            srv_conn_fault_send(c, t, strlen(t));
        break;
    }
    case 7: {
        srv_rec_add_fault(r, "binary");
        char *t = strdup("{\"type\":\"Results\"} as a binary frame");
        if (t)
            srv_conn_fault_send_frame(c, t, strlen(t), 1);
        break;
    }
    case 8: {
        snprintf(what, sizeof(what), "bad_times %s", time_kinds[a->kind]);
        srv_rec_add_fault(r, what);
        double at = a->kind == 0 ? -3.0 : a->kind == 1 ? 0.0 : srv_conn_audio_s(c) + 30.0;
        srv_word w = {.word = "hostile", .start = at, .end = at + 0.4, .confidence = 1};
        srv_event ev = {.kind = SRV_EV_RESULT,
                        .is_final = 1,
                        .start = at,
                        .duration = 0.5,
                        .transcript = "hostile",
                        .confidence = 1,
                        .words = &w,
                        .n_words = 1};
        char *t = srv_g.proto->result_message(srv_conn_msginfo(c), &ev);
        if (t)
            srv_conn_fault_send(c, t, strlen(t));
        break;
    }
    }
}

static void add_id(cJSON *applied, srv_conn *c)
{
    cJSON_AddItemToArray(applied, cJSON_CreateNumber((double)srv_conn_record(c)->id));
}

int srv_faults_post(const cJSON *body, cJSON *resp, char *err, size_t errlen)
{
    srv_faults *f = &srv_g.faults;
    srv_conn *target = NULL;
    long conn_id = 0, n, status, delay, after, count, mute;
    char retry[32], error[256];
    action_args act;

    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "body must be a JSON object");
        return -1;
    }
    for (const cJSON *k = body->child; k; k = k->next) {
        if (index_of(k->string, keys) < 0) {
            snprintf(err, errlen, "unknown key '%s'", k->string);
            return -1;
        }
    }
    /* Validate everything before changing anything. */
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(body, "action");
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(body, "down");
    if (get_int(body, "connection", 1, 1L << 53, 0, &conn_id, err, errlen) ||
        get_int(body, "reject_next", 0, 1000000, -1, &n, err, errlen) ||
        get_int(body, "status", 100, 599, 503, &status, err, errlen) ||
        get_int(body, "delay_results_ms", 0, 600000, -1, &delay, err, errlen) ||
        get_int(body, "after_audio_ms", 0, 86400000, -1, &after, err, errlen) ||
        get_int(body, "count", 0, 1000000, 1, &count, err, errlen) ||
        get_int(body, "mute_next", 0, 1000000, -1, &mute, err, errlen) ||
        get_str(body, "retry_after", retry, sizeof(retry), err, errlen) ||
        get_str(body, "error", error, sizeof(error), err, errlen))
        return -1;
    if (down && !cJSON_IsBool(down)) {
        snprintf(err, errlen, "'down' must be true or false");
        return -1;
    }
    if (action && parse_action(body, &act, err, errlen))
        return -1;
    if (after >= 0 && !action) {
        snprintf(err, errlen, "'after_audio_ms' needs an 'action'");
        return -1;
    }
    if (conn_id && !(target = srv_listen_conn((uint64_t)conn_id))) {
        snprintf(err, errlen, "no open connection %ld", conn_id);
        return -1;
    }

    cJSON *applied = cJSON_AddArrayToObject(resp, "applied");
    if (mute >= 0)
        f->mute_next = (int)mute;
    if (n >= 0) {
        f->reject_next = (int)n;
        f->reject_status = (int)status;
        snprintf(f->reject_retry_after, sizeof(f->reject_retry_after), "%s", retry);
        snprintf(f->reject_error, sizeof(f->reject_error), "%s", error);
    }
    if (down) {
        f->down = cJSON_IsTrue(down);
        f->down_status = (int)status;
        snprintf(f->down_retry_after, sizeof(f->down_retry_after), "%s", retry);
    }
    if (delay >= 0) {
        if (target) {
            srv_conn_set_delay(target, (int)delay);
            add_id(applied, target);
        } else {
            f->delay_results_ms = (int)delay;
        }
    }
    if (action && after >= 0) {
        armed_ext *x = calloc(1, sizeof(*x));
        cJSON *spec = cJSON_Duplicate(body, 1);
        if (!x || !spec) {
            free(x);
            cJSON_Delete(spec);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "after_audio_ms");
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "count");
        x->a.spec = cJSON_PrintUnformatted(spec);
        cJSON_Delete(spec);
        x->a.after_s = (double)after / 1000.0;
        x->a.conn_id = (uint64_t)conn_id;
        x->a.count = conn_id ? 1 : (int)count;
        x->a.next = f->armed;
        f->armed = &x->a;
        cJSON_AddTrueToObject(resp, "armed");
    } else if (action) {
        if (target) {
            run_action(target, &act);
            add_id(applied, target);
        } else {
            /* Collect first: an action may end a connection and its record. */
            size_t cap = srv_g.n_active + 1, k = 0;
            srv_conn **all = calloc(cap, sizeof(*all));
            for (srv_record *r = srv_g.rec_head; all && r && k < cap; r = r->next)
                if (srv_record_live_conn(r))
                    all[k++] = r->conn;
            for (size_t i = 0; i < k; i++) {
                add_id(applied, all[i]);
                run_action(all[i], &act);
            }
            free(all);
        }
    }
    return 0;
}

void srv_faults_on_audio(srv_conn *c, double audio_s)
{
    srv_armed **pp = &srv_g.faults.armed;
    uint64_t id = srv_conn_record(c)->id;
    while (*pp) {
        armed_ext *x = (armed_ext *)*pp;
        srv_armed *a = &x->a;
        int hit = (!a->conn_id || a->conn_id == id) && audio_s >= a->after_s;
        for (size_t i = 0; hit && i < x->n_fired; i++)
            if (x->fired[i] == id)
                hit = 0;
        if (!hit) {
            pp = &a->next;
            continue;
        }
        uint64_t *fr = realloc(x->fired, (x->n_fired + 1) * sizeof(*fr));
        if (fr) {
            x->fired = fr;
            fr[x->n_fired++] = id;
        }
        cJSON *spec = cJSON_Parse(a->spec);
        action_args act;
        char err[128];
        int ok = spec && !parse_action(spec, &act, err, sizeof(err));
        cJSON_Delete(spec);
        int done = a->count > 0 && --a->count == 0;
        if (done) {
            *pp = a->next;
            free(a->spec);
            free(x->fired);
            free(x);
        } else {
            pp = &a->next;
        }
        if (ok)
            run_action(c, &act);
        /* The action may have closed the connection: stop here, later
         * entries get their turn on the next audio message. */
        return;
    }
}

cJSON *srv_faults_json(void)
{
    const srv_faults *f = &srv_g.faults;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "down", f->down);
    cJSON_AddNumberToObject(o, "down_status", f->down ? f->down_status : 503);
    cJSON_AddStringToObject(o, "down_retry_after", f->down_retry_after);
    cJSON_AddNumberToObject(o, "reject_next", f->reject_next);
    cJSON_AddNumberToObject(o, "mute_next", f->mute_next);
    cJSON_AddNumberToObject(o, "reject_status", f->reject_next ? f->reject_status : 503);
    cJSON_AddStringToObject(o, "retry_after", f->reject_retry_after);
    cJSON_AddStringToObject(o, "error", f->reject_error);
    cJSON_AddNumberToObject(o, "delay_results_ms", f->delay_results_ms);
    cJSON *armed = cJSON_AddArrayToObject(o, "armed");
    for (const srv_armed *a = f->armed; a; a = a->next) {
        cJSON *s = cJSON_Parse(a->spec);
        if (!s)
            continue;
        cJSON_AddNumberToObject(s, "after_audio_ms", a->after_s * 1000.0);
        cJSON_AddNumberToObject(s, "count", a->count);
        cJSON_AddItemToArray(armed, s);
    }
    cJSON *stalled = cJSON_AddArrayToObject(o, "stalled");
    for (srv_record *r = srv_g.rec_head; r; r = r->next)
        if (srv_record_live_conn(r) && srv_conn_is_stalled(r->conn))
            cJSON_AddItemToArray(stalled, cJSON_CreateNumber((double)r->id));
    return o;
}

void srv_faults_free(void)
{
    srv_armed *a = srv_g.faults.armed;
    while (a) {
        armed_ext *x = (armed_ext *)a;
        a = a->next;
        free(x->a.spec);
        free(x->fired);
        free(x);
    }
    srv_g.faults.armed = NULL;
}

void srv_faults_clear(void)
{
    srv_faults_free();
    memset(&srv_g.faults, 0, sizeof(srv_g.faults));
    for (srv_record *r = srv_g.rec_head; r; r = r->next) {
        srv_conn *c = srv_record_live_conn(r);
        if (!c)
            continue;
        srv_conn_set_delay(c, -1);
        if (srv_conn_is_stalled(c))
            srv_conn_fault_stall(c, 0);
    }
}
