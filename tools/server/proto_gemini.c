/* proto_gemini: the Gemini Live API (BidiGenerateContent) used for input-audio transcription, on
 * steno-server's machinery: setup, realtimeInput audio and activity, serverContent, goAway and
 * session resumption, as generative_service.proto's JSON mapping has them. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "http.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "timers.h"
#include "util.h"

/*
 * The service gives input transcription no times and no audio offsets: text fragments
 * (serverContent.inputTranscription) and the end of the turn (serverContent.turnComplete). This
 * personality maps the engine onto that:
 *
 *  - Every final result of the engine becomes one inputTranscription fragment (later fragments
 *    of a turn start with a space, so that a turn's text is their concatenation). Interim
 *    hypotheses are not sent: a fragment is never taken back.
 *  - With automatic activity detection disabled (the client brackets speech with activityStart
 *    and activityEnd), activityEnd flushes the engine and its answer ends the turn: the
 *    fragments of all audio received before the activityEnd, then turnComplete. Audio that
 *    arrives while no activity is open belongs to the next activity (how the real service
 *    treats such audio is unconfirmed).
 *  - With automatic activity detection (the default), a final that ends speech ends the turn,
 *    and audioStreamEnd flushes the engine (the stream reopens with the next audio).
 *  - Fragments of a turn are always sent before its turnComplete (the proto promises no order).
 *
 * Session resumption: a setup with sessionResumption gets a sessionResumptionUpdate with a new
 * handle after setupComplete and after each activityEnd or audioStreamEnd; a setup that presents
 * a handle this server never issued is closed with 1007. Session limit: goAway (timeLeft) before
 * --session-limit-s runs out, then a close when it has.
 */

#define CLOSE_REASON_MAX 123
#define MIME_PCM16K "audio/pcm;rate=16000"

/* --- state shared by the lws-thread and worker halves ---------------------------------------- */

/* The setup arrives after the engine job (and its worker-side state) exists: the flags the worker
 * needs are written by the lws thread before the first audio or flush is queued to the job, and
 * that queue's lock orders them before the worker's reads. */
typedef struct gm_link {
    atomic_int refs;
    atomic_int manual; /* automatic activity detection disabled */
    /* lws thread only */
    int setup_done, activity_open, resumption;
    int go_away_sent;
    unsigned setups, audio_messages, activity_starts, activity_ends, stream_ends, client_contents,
        resumption_updates;
    char model[96];
    char resumed_from[48]; /* the handle the setup presented, or "" */
} gm_link;

static void link_unref(gm_link *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1)
        free(l);
}

/* --- resumption handles (lws thread only) ---------------------------------------------------- */

#define HANDLES_KEPT 4096

static char issued[HANDLES_KEPT][40];
static size_t n_issued;
static uint64_t handle_seq;

static char *new_handle(const srv_record *r, char out[40])
{
    snprintf(out, 40, "res-%.8s-%llu", r->request_id, (unsigned long long)++handle_seq);
    memcpy(issued[n_issued++ % HANDLES_KEPT], out, 40);
    return out;
}

static int handle_known(const char *h)
{
    size_t n = n_issued < HANDLES_KEPT ? n_issued : HANDLES_KEPT;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(issued[i], h))
            return 1;
    return 0;
}

/* --- handshake -------------------------------------------------------------------------------- */

/* The service's HTTP errors are google.rpc.Status JSON. */
static int gm_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                         const char *retry_after)
{
    (void)request_id;
    cJSON *body = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(body, "error");
    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "message", err);
    cJSON_AddStringToObject(e, "status",
                            status == 404   ? "NOT_FOUND"
                            : status == 429 ? "RESOURCE_EXHAUSTED"
                            : status >= 500 ? "UNAVAILABLE"
                                            : "INVALID_ARGUMENT");
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    int rc = srv_http_respond(wsi, status, NULL, b, retry_after);
    free(b);
    return rc;
}

/* The API key and ephemeral token routes: /ws/google.ai.generativelanguage.{v1,v1alpha,v1beta}
 * .GenerativeService.BidiGenerateContent[Constrained]. Google's JavaScript SDK opens "//ws/..."
 * (its base URL keeps its trailing slash), so leading slashes are collapsed. */
static int gm_path_ok(const char *path)
{
    static const char *const versions[] = {"v1", "v1alpha", "v1beta"};
    static const char pre[] = "/ws/google.ai.generativelanguage.";
    static const char svc[] = ".GenerativeService.BidiGenerateContent";
    if (!path)
        return 0;
    while (path[0] == '/' && path[1] == '/')
        path++;
    if (strncmp(path, pre, sizeof pre - 1))
        return 0;
    path += sizeof pre - 1;
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        size_t n = strlen(versions[i]);
        if (strncmp(path, versions[i], n) || strncmp(path + n, svc, sizeof svc - 1))
            continue;
        const char *rest = path + n + sizeof svc - 1;
        if (!strcmp(rest, "Constrained"))
            rest += strlen("Constrained");
        if (!*rest || !strcmp(rest, "/"))
            return 1;
    }
    return 0;
}

static char *gm_redact_header(enum lws_token_indexes t, const char *v)
{
    (void)v;
    return t == WSI_TOKEN_HTTP_AUTHORIZATION ? strdup("<redacted>") : NULL;
}

static char *gm_redact_arg(const char *arg)
{
    if (!strncmp(arg, "key=", 4))
        return strdup("key=<redacted>");
    if (!strncmp(arg, "access_token=", 13))
        return strdup("access_token=<redacted>");
    return NULL;
}

static const char *find_arg(const char *const *args, size_t nargs, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < nargs; i++)
        if (!strncmp(args[i], name, n) && args[i][n] == '=')
            return args[i] + n + 1;
    return NULL;
}

static char *custom_header(struct lws *wsi, const char *name)
{
    int n = (int)strlen(name);
    int vl = lws_hdr_custom_length(wsi, name, n);
    char *v = vl >= 0 ? malloc((size_t)vl + 1) : NULL;
    if (v && lws_hdr_custom_copy(wsi, v, vl + 1, name, n) < 0) {
        free(v);
        v = NULL;
    }
    return v;
}

/* The key as ?key= or x-goog-api-key, or (this server mints no ephemeral tokens) the key as
 * ?access_token= or "Authorization: Token KEY". */
static int credential_ok(struct lws *wsi, const char *key, const char *const *args, size_t nargs)
{
    const char *q = find_arg(args, nargs, "key");
    const char *t = find_arg(args, nargs, "access_token");
    if ((q && !strcmp(q, key)) || (t && !strcmp(t, key)))
        return 1;
    char *h = custom_header(wsi, "x-goog-api-key:");
    int ok = h && !strcmp(h, key);
    free(h);
    char *a = ok ? NULL : srv_http_dup_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (a && !strncasecmp(a, "Token ", 6) && !strcmp(a + 6, key))
        ok = 1;
    free(a);
    return ok;
}

static void gm_admit(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                     int too_many, srv_admit *out)
{
    /* Everything is refused over an open socket, as the service does: a close frame whose
     * reason says what is wrong. */
    const char *key = srv_g.cfg.api_key;
    if (key && !credential_ok(wsi, key, args, nargs)) {
        out->close_code = 1007;
        snprintf(out->err, sizeof(out->err), "API key not valid. Please pass a valid API key.");
        return;
    }
    if (too_many) {
        out->close_code = 1007;
        snprintf(out->err, sizeof(out->err), "Request contains an invalid argument.");
        return;
    }
    gm_link *l = calloc(1, sizeof(*l));
    if (!l) {
        out->status = 503;
        snprintf(out->err, sizeof(out->err), "Out of memory");
        return;
    }
    atomic_init(&l->refs, 1);
    r->pparams = l;
    r->params_ok = 1;
    r->rate = 16000; /* audio/pcm;rate=16000 is the one input format accepted here */
    r->channels = 1;
    r->sample_bytes = 2;
    if (srv_g.cfg.max_connections > 0 && srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
        out->close_code = 1011;
        snprintf(out->err, sizeof(out->err),
                 "You exceeded your current quota, please check your plan and billing details.");
    }
}

/* --- connection ---------------------------------------------------------------------------------
 */

static void gm_close_error(srv_conn *c, int code, const char *reason, const char *cause)
{
    char shown[CLOSE_REASON_MAX + 1];
    snprintf(shown, sizeof(shown), "%s", reason);
    srv_conn_close(c, code, shown, cause, 0);
}

static void gm_setup(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi)
{
    gm_link *l = r->pparams;
    snprintf(mi->model_name, sizeof(mi->model_name), "gemini-live");
    sp->interim_results = 0;       /* fragments are never taken back */
    atomic_fetch_add(&l->refs, 1); /* the worker's reference, taken in gm_state_new */
    mi->proto_link = l;
}

static void gm_opened(srv_conn *c)
{
    /* No idle timeout is documented; the session limit is goAway's business (gm_fail). */
    c->idle_ms = 0;
    int limit = srv_g.cfg.session_limit_s;
    int lead = limit / 2 < 60 ? limit / 2 : 60;
    c->limit_ms = (limit - lead) * 1000;
}

static char *json_text(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void send_resumption_update(srv_conn *c, gm_link *l)
{
    char h[40];
    cJSON *o = cJSON_CreateObject();
    cJSON *u = cJSON_AddObjectToObject(o, "sessionResumptionUpdate");
    cJSON_AddStringToObject(u, "newHandle", new_handle(c->rec, h));
    cJSON_AddBoolToObject(u, "resumable", 1);
    l->resumption_updates++;
    srv_conn_send_now(c, json_text(o), SRV_MSG_METADATA);
}

static void invalid(srv_conn *c, const char *what)
{
    char reason[CLOSE_REASON_MAX + 1];
    snprintf(reason, sizeof(reason), "Request contains an invalid argument: %s", what);
    c->rec->invalid_text++;
    gm_close_error(c, 1007, reason, "bad_text");
}

static int is_obj_or_absent(const cJSON *v)
{
    return !v || cJSON_IsObject(v);
}

static void on_setup(srv_conn *c, gm_link *l, const cJSON *s)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(s, "model");
    const cJSON *gc = cJSON_GetObjectItemCaseSensitive(s, "generationConfig");
    const cJSON *ric = cJSON_GetObjectItemCaseSensitive(s, "realtimeInputConfig");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(s, "sessionResumption");
    const cJSON *iat = cJSON_GetObjectItemCaseSensitive(s, "inputAudioTranscription");
    if (l->setup_done) {
        invalid(c, "setup may be sent only once");
        return;
    }
    if (!cJSON_IsString(model) || strncmp(model->valuestring, "models/", 7) ||
        !model->valuestring[7]) {
        invalid(c, "setup.model must be \"models/<id>\"");
        return;
    }
    if (!is_obj_or_absent(gc) || !is_obj_or_absent(ric) || !is_obj_or_absent(res) ||
        !is_obj_or_absent(iat)) {
        invalid(c, "setup fields must be objects");
        return;
    }
    const cJSON *mods = gc ? cJSON_GetObjectItemCaseSensitive(gc, "responseModalities") : NULL;
    const cJSON *m;
    if (mods && !cJSON_IsArray(mods)) {
        invalid(c, "generationConfig.responseModalities must be a list");
        return;
    }
    cJSON_ArrayForEach(m, mods)
    {
        if (!cJSON_IsString(m) ||
            (strcmp(m->valuestring, "TEXT") && strcmp(m->valuestring, "AUDIO"))) {
            invalid(c, "responseModalities are TEXT or AUDIO");
            return;
        }
    }
    const cJSON *aad =
        ric ? cJSON_GetObjectItemCaseSensitive(ric, "automaticActivityDetection") : NULL;
    const cJSON *dis = aad ? cJSON_GetObjectItemCaseSensitive(aad, "disabled") : NULL;
    if (!is_obj_or_absent(aad) || (dis && !cJSON_IsBool(dis))) {
        invalid(c, "realtimeInputConfig.automaticActivityDetection.disabled must be a bool");
        return;
    }
    const cJSON *handle = res ? cJSON_GetObjectItemCaseSensitive(res, "handle") : NULL;
    if (handle && !cJSON_IsString(handle)) {
        invalid(c, "sessionResumption.handle must be a string");
        return;
    }
    if (handle && handle->valuestring[0] && !handle_known(handle->valuestring)) {
        c->rec->invalid_text++;
        gm_close_error(c, 1007, "Invalid session resumption handle.", "bad_handle");
        return;
    }
    l->setup_done = 1;
    l->setups++;
    l->resumption = res != NULL;
    atomic_store(&l->manual, cJSON_IsTrue(dis));
    snprintf(l->model, sizeof(l->model), "%s", model->valuestring + 7);
    if (handle)
        snprintf(l->resumed_from, sizeof(l->resumed_from), "%s", handle->valuestring);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddObjectToObject(o, "setupComplete");
    srv_conn_send_now(c, json_text(o), SRV_MSG_BEGIN);
    if (l->resumption)
        send_resumption_update(c, l);
}

/* realtimeInput.audio (or the deprecated mediaChunks[0]): base64 16-bit PCM at 16 kHz. */
static int on_audio(srv_conn *c, gm_link *l, const cJSON *blob)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(blob, "data");
    const cJSON *mime = cJSON_GetObjectItemCaseSensitive(blob, "mimeType");
    if (!cJSON_IsObject(blob) || !cJSON_IsString(data) || !cJSON_IsString(mime)) {
        invalid(c, "audio needs data (base64) and mimeType");
        return -1;
    }
    if (strcasecmp(mime->valuestring, MIME_PCM16K) && strcasecmp(mime->valuestring, "audio/pcm")) {
        invalid(c, "this server takes audio/pcm;rate=16000 only");
        return -1;
    }
    size_t n = strlen(data->valuestring);
    uint8_t *pcm = malloc(n / 4 * 3 + 4);
    if (!pcm) {
        gm_close_error(c, 1011, "Internal error encountered.", "oom");
        return -1;
    }
    int got =
        lws_b64_decode_string_len(data->valuestring, (int)n, (char *)pcm, (int)(n / 4 * 3 + 4));
    if (got < 0 || (n % 4) != 0) {
        free(pcm);
        invalid(c, "audio data is not base64");
        return -1;
    }
    l->audio_messages++;
    int rc = srv_conn_audio(c, pcm, (size_t)got);
    free(pcm);
    return rc;
}

static void on_realtime_input(srv_conn *c, gm_link *l, const cJSON *ri)
{
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(ri, "activityStart");
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(ri, "activityEnd");
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(ri, "audio");
    const cJSON *chunks = cJSON_GetObjectItemCaseSensitive(ri, "mediaChunks");
    const cJSON *ase = cJSON_GetObjectItemCaseSensitive(ri, "audioStreamEnd");
    int manual = atomic_load(&l->manual);
    if ((start || end) && !manual) {
        invalid(c, "activityStart/activityEnd need automatic activity detection disabled");
        return;
    }
    if (!is_obj_or_absent(start) || !is_obj_or_absent(end) || (ase && !cJSON_IsBool(ase)) ||
        (chunks && !cJSON_IsArray(chunks))) {
        invalid(c, "malformed realtimeInput");
        return;
    }
    /* Fields of one message are taken in the order a turn runs: start, audio, end. */
    /* A client cannot always know whether its last activityEnd has been answered when it
     * starts the next activity (or ends one): a repeated activityStart is taken as a no-op, and
     * an activityEnd with no activity open is answered by a turn of whatever audio arrived since
     * the last one (possibly none), so every activityEnd has exactly one turnComplete. How the
     * service treats either is unconfirmed. */
    if (start) {
        l->activity_open = 1;
        l->activity_starts++;
    }
    const cJSON *blob = audio ? audio : chunks ? cJSON_GetArrayItem(chunks, 0) : NULL;
    if (blob && on_audio(c, l, blob))
        return;
    if (end) {
        l->activity_open = 0;
        l->activity_ends++;
        srv_conn_control_seen(c, SRV_CTL_FINALIZE);
        srv_job_finalize(c->job);
        if (l->resumption)
            send_resumption_update(c, l);
    }
    if (cJSON_IsTrue(ase)) {
        l->stream_ends++;
        srv_conn_control_seen(c, SRV_CTL_CLOSESTREAM);
        if (manual) {
            /* The API asks for audioStreamEnd with automatic activity detection only. Taken
             * here as the end of the session: the open turn completes, then close 1000 (the
             * real service is not known to close at all). */
            srv_conn_end_stream(c, "audioStreamEnd");
            return;
        }
        srv_job_finalize(c->job); /* the stream reopens with the next audio */
        if (l->resumption)
            send_resumption_update(c, l);
    }
}

static void gm_on_text(srv_conn *c, const char *text, size_t len)
{
    gm_link *l = c->rec->pparams;
    cJSON *j = cJSON_ParseWithLength(text, len);
    static const char *const kinds[] = {"setup", "clientContent", "realtimeInput", "toolResponse"};
    const cJSON *body = NULL;
    int which = -1, n = 0;
    for (int i = 0; cJSON_IsObject(j) && i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, kinds[i]);
        if (v) {
            body = v;
            which = i;
            n++;
        }
    }
    if (!j) {
        c->rec->invalid_text++;
        gm_close_error(c, 1007, "Invalid JSON payload received.", "bad_text");
    } else if (n != 1 || cJSON_GetArraySize(j) != 1) {
        invalid(c, "a client message has exactly one of setup, clientContent, realtimeInput, "
                   "toolResponse");
    } else if (!cJSON_IsObject(body)) {
        invalid(c, "the message body must be an object");
    } else if (which == 0) {
        on_setup(c, l, body);
    } else if (!l->setup_done) {
        invalid(c, "setup must be the first message");
    } else if (which == 2) {
        on_realtime_input(c, l, body);
    } else if (which == 1) {
        l->client_contents++; /* text turns: nothing to transcribe */
    }
    cJSON_Delete(j);
}

static int gm_audio_message(srv_conn *c, uint64_t bytes)
{
    (void)bytes;
    /* The service takes audio as base64 in realtimeInput only. */
    if (c->msg_binary) {
        invalid(c, "binary frames are not accepted; send realtimeInput.audio");
        return -1;
    }
    return 0;
}

static void go_away_expired(srv_timer *t)
{
    srv_conn *c = lws_container_of(t, srv_conn, t_limit);
    if (!c->close_pending)
        gm_close_error(c, 1000, "Session duration limit reached.", "session_limit");
}

static void gm_fail(srv_conn *c, srv_fail why)
{
    gm_link *l = c->rec->pparams;
    char reason[CLOSE_REASON_MAX + 1];
    switch (why) {
    case SRV_FAIL_IDLE:
        gm_close_error(c, 1011, "Internal error encountered.", "idle");
        break;
    case SRV_FAIL_BAD_AUDIO:
        invalid(c, "audio is not a whole number of 16-bit samples");
        break;
    case SRV_FAIL_TOO_BIG:
        invalid(c, "message too large");
        break;
    case SRV_FAIL_RATE:
        snprintf(reason, sizeof(reason),
                 "Resource has been exhausted: %.1f s of audio in %.1f s (over %gx real time)",
                 srv_conn_audio_s(c), srv_conn_audio_elapsed_s(c), srv_g.cfg.max_rate);
        gm_close_error(c, 1011, reason, "rate");
        break;
    case SRV_FAIL_ENGINE:
    case SRV_FAIL_SEND_QUEUE:
        gm_close_error(c, 1011, "Internal error encountered.",
                       why == SRV_FAIL_ENGINE ? "engine" : "send_queue");
        break;
    case SRV_FAIL_SESSION_LIMIT: {
        /* goAway first, with the time left; the close comes when it has run out. */
        int limit = srv_g.cfg.session_limit_s;
        int lead = limit / 2 < 60 ? limit / 2 : 60;
        cJSON *o = cJSON_CreateObject();
        cJSON *g = cJSON_AddObjectToObject(o, "goAway");
        char left[24];
        snprintf(left, sizeof(left), "%ds", lead);
        cJSON_AddStringToObject(g, "timeLeft", left);
        l->go_away_sent++;
        srv_conn_send_now(c, json_text(o), SRV_MSG_METADATA);
        srv_timer_set(&c->t_limit, go_away_expired, (int64_t)lead * 1000000);
        break;
    }
    }
}

/* --- worker: transcription fragments and turns ------------------------------------------------ */

typedef struct gm_state {
    gm_link *link;
    int fragments; /* sent in the open turn */
} gm_state;

static void *gm_state_new(const srv_stream_params *sp, const srv_msginfo *mi)
{
    (void)sp;
    gm_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->link = mi->proto_link; /* the reference gm_setup took */
    return st;
}

static void gm_state_free(void *p)
{
    gm_state *st = p;
    link_unref(st->link);
    free(st);
}

static char *server_content(const char *key, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *sc = cJSON_AddObjectToObject(o, "serverContent");
    if (text)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(sc, key), "text", text);
    else
        cJSON_AddBoolToObject(sc, key, 1);
    return json_text(o);
}

static void post_fragment(gm_state *st, const char *transcript, double end_s, srv_post_fn post,
                          void *ctx)
{
    size_t n = strlen(transcript);
    char *t = malloc(n + 2);
    if (!t)
        return;
    snprintf(t, n + 2, "%s%s", st->fragments ? " " : "", transcript);
    post(ctx, SRV_MSG_RESULTS, server_content("inputTranscription", t), 1, end_s);
    free(t);
    st->fragments++;
}

static void end_turn(gm_state *st, srv_post_fn post, void *ctx)
{
    post(ctx, SRV_MSG_UTTERANCE_END, server_content("turnComplete", NULL), 0, 0);
    st->fragments = 0;
}

static void gm_on_event(void *p, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                        void *ctx)
{
    gm_state *st = p;
    (void)mi;
    if (ev->kind != SRV_EV_RESULT || !ev->is_final)
        return;
    if (ev->n_words && ev->transcript[0])
        post_fragment(st, ev->transcript, ev->start + ev->duration, post, ctx);
    int manual = st->link && atomic_load(&st->link->manual);
    /* A flush (activityEnd, audioStreamEnd) is always answered, even by an empty turn. */
    if (ev->from_finalize || (!manual && ev->speech_final && st->fragments))
        end_turn(st, post, ctx);
}

static void gm_on_end(void *p, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                      srv_post_fn post, void *ctx)
{
    gm_state *st = p;
    (void)mi;
    (void)sha256_hex;
    (void)audio_s;
    if (st->fragments)
        end_turn(st, post, ctx);
}

/* --- faults and records --------------------------------------------------------------------------
 */

static const char *const gm_malformed[] = {
    /* truncated JSON */
    "{\"serverContent\":{\"inputTranscription\":{\"text\":\"trunc",
    /* the right keys with the wrong types */
    "{\"serverContent\":{\"inputTranscription\":{\"text\":7},\"turnComplete\":\"yes\"}}",
    /* a message type the service never sends */
    "{\"bogusMessage\":{}}",
};

static char *gm_oversized(const srv_msginfo *mi, size_t bytes)
{
    (void)mi;
    return srv_msg_pad(server_content("inputTranscription", "@@PAD@@"), "@@PAD@@", bytes);
}

static const srv_control_kind gm_controls[] = {SRV_CTL_FINALIZE, SRV_CTL_CLOSESTREAM};

static cJSON *gm_params_json(const srv_record *r)
{
    const gm_link *l = r->pparams;
    if (!l)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", l->model);
    cJSON_AddBoolToObject(o, "automatic_activity_detection", !atomic_load(&l->manual));
    cJSON_AddBoolToObject(o, "session_resumption", l->resumption);
    cJSON_AddStringToObject(o, "resumed_from", l->resumed_from);
    return o;
}

static void gm_params_free(srv_record *r)
{
    link_unref(r->pparams);
    r->pparams = NULL;
}

static void gm_record_json(const srv_record *r, cJSON *o)
{
    const gm_link *l = r->pparams;
    cJSON_AddStringToObject(o, "protocol", "gemini");
    if (!l)
        return;
    cJSON_AddNumberToObject(o, "setups", l->setups);
    cJSON_AddNumberToObject(o, "audio_messages", l->audio_messages);
    cJSON_AddNumberToObject(o, "activity_starts", l->activity_starts);
    cJSON_AddNumberToObject(o, "activity_ends", l->activity_ends);
    cJSON_AddNumberToObject(o, "audio_stream_ends", l->stream_ends);
    cJSON_AddNumberToObject(o, "client_contents", l->client_contents);
    cJSON_AddNumberToObject(o, "resumption_updates", l->resumption_updates);
    cJSON_AddNumberToObject(o, "go_away_sent", l->go_away_sent);
}

const srv_proto srv_proto_gemini = {
    .name = "gemini",
    .path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
    .path_ok = gm_path_ok,
    .http_error = gm_http_error,
    .redact_header = gm_redact_header,
    .redact_arg = gm_redact_arg,
    .admit = gm_admit,
    .setup = gm_setup,
    .opened = gm_opened,
    .on_text = gm_on_text,
    .audio_message = gm_audio_message,
    .close_error = gm_close_error,
    .fail = gm_fail,
    .job_state_new = gm_state_new,
    .job_state_free = gm_state_free,
    .on_event = gm_on_event,
    .on_end = gm_on_end,
    .malformed = gm_malformed,
    .oversized = gm_oversized,
    .controls = gm_controls,
    .n_controls = sizeof(gm_controls) / sizeof(gm_controls[0]),
    .params_json = gm_params_json,
    .params_free = gm_params_free,
    .record_json = gm_record_json,
};
