/* proto_elevenlabs: ElevenLabs realtime speech-to-text (Scribe v2 Realtime,
 * /v1/speech-to-text/realtime) on steno-server's machinery: session_started, base64 audio
 * chunks, commits, transcripts and in-band errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "http.h"
#include "params_elevenlabs.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "util.h"
#include "words.h"

/*
 * Engine finals gather into the open segment; a commit (a chunk with "commit": true, answered
 * through the engine's flush) or, with commit_strategy=vad, a final that ends speech, sends the
 * segment as committed_transcript (then committed_transcript_with_timestamps when
 * include_timestamps=true) and opens the next. A commit is always answered, even by an empty
 * committed_transcript, so a client can count answers. In manual mode a settled final sends
 * final_transcript (the segment so far, not yet committed); interim hypotheses send
 * partial_transcript. Word times are seconds from the connection's first sample.
 *
 * Every error is a JSON message {"message_type": type, "error": text} sent right before the
 * close; the close reason repeats "type: text" (close codes are not documented: 1008 for what
 * the client did, 1011 for the server's failures, 1000 for the session's end by a limit).
 */

#define CLOSE_REASON_MAX 123
#define MAX_CHUNK_MS 1000 /* the docs recommend 0.1-1 s; larger is chunk_size_exceeded here */

/* --- handshake -------------------------------------------------------------- */

static int el_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                         const char *retry_after)
{
    (void)request_id;
    cJSON *body = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(body, "detail");
    cJSON_AddStringToObject(d, "status", "error");
    cJSON_AddStringToObject(d, "message", err);
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    int rc = srv_http_respond(wsi, status, NULL, b, retry_after);
    free(b);
    return rc;
}

static char *el_redact_arg(const char *arg)
{
    return strncmp(arg, "token=", 6) ? NULL : strdup("token=<redacted>");
}

static char *api_key_header(struct lws *wsi)
{
    static const char name[] = "xi-api-key:";
    int n = lws_hdr_custom_length(wsi, name, (int)sizeof(name) - 1);
    if (n < 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_custom_copy(wsi, v, n + 1, name, (int)sizeof(name) - 1) < 0) {
        free(v);
        v = NULL;
    }
    return v;
}

static void el_admit(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                     int too_many, srv_admit *out)
{
    srv_el_params *p = calloc(1, sizeof(*p));
    if (!p) {
        out->status = 503;
        snprintf(out->err, sizeof(out->err), "Out of memory");
        return;
    }
    char perr[400];
    int bad = srv_el_params_parse(p, args, nargs, srv_g.cfg.strict_params, perr, sizeof(perr));
    const char *key = srv_g.cfg.api_key;
    if (key) {
        /* The key in xi-api-key, or as token= (this server mints no single-use tokens). */
        char *h = api_key_header(wsi);
        int ok = (h && !strcmp(h, key)) || (p->token && !strcmp(p->token, key));
        free(h);
        if (!ok) {
            out->close_code = 1008;
            snprintf(out->err, sizeof(out->err), "auth_error: %s",
                     p->token ? "Invalid or expired token" : "Invalid API key");
            goto refuse;
        }
    }
    if (too_many) {
        out->close_code = 1008;
        snprintf(out->err, sizeof(out->err), "invalid_request: Too many query parameters");
        goto refuse;
    }
    if (bad) {
        out->close_code = 1008;
        snprintf(out->err, sizeof(out->err), "invalid_request: %s", perr);
        goto refuse;
    }
    r->pparams = p;
    r->params_ok = 1;
    r->rate = p->sample_rate;
    r->channels = 1;
    r->sample_bytes = p->sample_bytes;
    if (srv_g.cfg.max_connections > 0 && srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
        out->close_code = 1008;
        snprintf(out->err, sizeof(out->err), "rate_limited: Too many concurrent sessions");
    }
    return;
refuse:
    srv_el_params_free(p);
    free(p);
}

/* --- connection ------------------------------------------------------------- */

/* Closes with {"message_type": type, "error": text} first; `reason` is "type: text". */
static void el_close_error(srv_conn *c, int code, const char *reason, const char *cause)
{
    const char *sep = strstr(reason, ": ");
    size_t tl = sep ? (size_t)(sep - reason) : strlen(reason);
    char type[48];
    snprintf(type, sizeof(type), "%.*s", (int)(tl < sizeof(type) ? tl : sizeof(type) - 1), reason);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message_type", type);
    cJSON_AddStringToObject(o, "error", sep ? sep + 2 : "");
    char *msg = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char shown[CLOSE_REASON_MAX + 1];
    snprintf(shown, sizeof(shown), "%s", reason);
    srv_conn_close_with(c, code, shown, cause, msg, SRV_MSG_ERROR);
}

static void el_setup(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi)
{
    const srv_el_params *p = r->pparams;
    snprintf(mi->model_name, sizeof(mi->model_name), "%s", p->model_id);
    mi->el_timestamps = p->include_timestamps;
    mi->el_vad = p->vad;
    sp->interim_results = 1; /* partial transcripts are always sent */
    /* With VAD the silence that commits; manual: the engine's own segmentation only. */
    sp->endpointing_ms = p->vad ? (int)lround(p->vad_silence_threshold_secs * 1000) : 500;
}

static void el_opened(srv_conn *c)
{
    const srv_el_params *p = c->rec->pparams;
    c->limit_ms = srv_g.cfg.session_limit_s * 1000;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message_type", "session_started");
    cJSON_AddStringToObject(o, "session_id", c->rec->request_id);
    cJSON_AddItemToObject(o, "config", srv_el_params_config(p));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    srv_conn_send_now(c, s, SRV_MSG_BEGIN);
}

static void input_error(srv_conn *c, const char *what, const char *detail, size_t len)
{
    char reason[256];
    snprintf(reason, sizeof(reason), "input_error: %s%s%.*s", what, len ? ": " : "",
             (int)(len > 100 ? 100 : len), detail);
    c->rec->invalid_text++;
    el_close_error(c, 1008, reason, "bad_text");
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Standard base64 with padding; returns the decoded length, or -1 when malformed. */
static long b64_decode(const char *in, size_t n, uint8_t *out)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(ch)) < 0) {
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

static double chunk_ms(const srv_conn *c, size_t bytes)
{
    const srv_record *r = c->rec;
    return (double)bytes * 1000.0 / r->sample_bytes / r->channels / r->rate;
}

static void chunk_too_big(srv_conn *c, size_t bytes)
{
    char reason[128];
    snprintf(reason, sizeof(reason),
             "chunk_size_exceeded: %.0f ms of audio in one chunk (at most %d)", chunk_ms(c, bytes),
             MAX_CHUNK_MS);
    el_close_error(c, 1008, reason, "bad_audio");
}

static void audio_chunk(srv_conn *c, const cJSON *j, const char *text, size_t len)
{
    const srv_el_params *p = c->rec->pparams;
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(j, "audio_base_64");
    const cJSON *commit = cJSON_GetObjectItemCaseSensitive(j, "commit");
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(j, "sample_rate");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(j, "previous_text");
    if (!cJSON_IsString(audio) || !cJSON_IsBool(commit) || !cJSON_IsNumber(rate) ||
        rate->valuedouble != floor(rate->valuedouble)) {
        input_error(c,
                    "input_audio_chunk needs audio_base_64 (string), commit (boolean) and "
                    "sample_rate (integer)",
                    text, len);
        return;
    }
    if (rate->valuedouble != p->sample_rate) {
        char what[96];
        snprintf(what, sizeof(what), "sample_rate %.0f does not match audio_format %s",
                 rate->valuedouble, p->audio_format);
        input_error(c, what, "", 0);
        return;
    }
    if (prev && (!cJSON_IsString(prev) || c->rec->text_messages > 1)) {
        input_error(c, "previous_text may only be sent with the first audio chunk", "", 0);
        return;
    }
    size_t n = strlen(audio->valuestring);
    uint8_t *pcm = n ? malloc(n / 4 * 3 + 3) : NULL;
    if (n && !pcm) {
        el_close_error(c, 1011, "transcriber_error: out of memory", "engine");
        return;
    }
    long got = n ? b64_decode(audio->valuestring, n, pcm) : 0;
    if (got < 0) {
        free(pcm);
        input_error(c, "audio_base_64 is not valid base64", "", 0);
        return;
    }
    if (chunk_ms(c, (size_t)got) > MAX_CHUNK_MS + 1e-9) {
        free(pcm);
        chunk_too_big(c, (size_t)got);
        return;
    }
    int rc = srv_conn_audio(c, pcm, (size_t)got);
    free(pcm);
    if (rc || !cJSON_IsTrue(commit))
        return;
    /* A commit is ElevenLabs' flush: the records count it as a Finalize. */
    srv_conn_control_seen(c, SRV_CTL_FINALIZE);
    if (!c->input_done)
        srv_job_finalize(c->job);
}

static void el_on_text(srv_conn *c, const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    const cJSON *t = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "message_type") : NULL;
    if (!j)
        input_error(c, "Invalid JSON", text, len);
    else if (!cJSON_IsString(t))
        input_error(c, "Missing message_type", text, len);
    else if (strcmp(t->valuestring, "input_audio_chunk"))
        input_error(c, "Unknown message_type", t->valuestring, strlen(t->valuestring));
    else
        audio_chunk(c, j, text, len);
    cJSON_Delete(j);
}

static int el_audio_message(srv_conn *c, uint64_t bytes)
{
    if (c->msg_binary) {
        /* The service takes audio only as base64 inside JSON. */
        input_error(c, "binary frames are not accepted; send input_audio_chunk messages", "", 0);
        return -1;
    }
    (void)bytes; /* text chunks were measured before decoding */
    return 0;
}

static void el_fail(srv_conn *c, srv_fail why)
{
    char reason[160];
    switch (why) {
    case SRV_FAIL_IDLE:
        el_close_error(c, 1000, "insufficient_audio_activity: No audio activity", "idle");
        break;
    case SRV_FAIL_BAD_AUDIO:
        input_error(c, "audio is not a whole number of 16-bit samples", "", 0);
        break;
    case SRV_FAIL_TOO_BIG:
        if (c->msg_binary)
            input_error(c, "binary frames are not accepted; send input_audio_chunk messages", "",
                        0);
        else
            el_close_error(c, 1009, "chunk_size_exceeded: message over 262144 bytes", "too_big");
        break;
    case SRV_FAIL_RATE:
        snprintf(reason, sizeof(reason),
                 "rate_limited: audio faster than real time: received %.1f s of audio in %.1f s",
                 srv_conn_audio_s(c), srv_conn_audio_elapsed_s(c));
        el_close_error(c, 1008, reason, "rate");
        break;
    case SRV_FAIL_ENGINE:
        el_close_error(c, 1011, "transcriber_error: the transcriber failed", "engine");
        break;
    case SRV_FAIL_SEND_QUEUE:
        el_close_error(c, 1011, "queue_overflow: the client does not read its transcripts",
                       "send_queue");
        break;
    case SRV_FAIL_SESSION_LIMIT:
        el_close_error(c, 1000, "session_time_limit_exceeded: Maximum session duration reached",
                       "session_limit");
        break;
    }
}

/* --- worker: transcripts ----------------------------------------------------- */

typedef struct el_state {
    int timestamps, vad;
    srv_wordlist words; /* the open segment's final words */
} el_state;

static void *el_state_new(const srv_stream_params *sp, const srv_msginfo *mi)
{
    (void)sp;
    el_state *st = calloc(1, sizeof(*st));
    if (st) {
        st->timestamps = mi->el_timestamps;
        st->vad = mi->el_vad;
    }
    return st;
}

static void el_state_free(void *p)
{
    el_state *st = p;
    srv_wl_free(&st->words);
    free(st);
}

static char *text_message(const char *type, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message_type", type);
    cJSON_AddStringToObject(o, "text", text ? text : "");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void add_entry(cJSON *words, const char *text, double start, double end, const char *type,
                      double logprob)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "text", text);
    cJSON_AddNumberToObject(w, "start", start);
    cJSON_AddNumberToObject(w, "end", end);
    cJSON_AddStringToObject(w, "type", type);
    cJSON_AddNumberToObject(w, "logprob", logprob);
    cJSON_AddItemToArray(words, w);
}

/* committed_transcript_with_timestamps: words with "spacing" entries between them, as the
 * service sends them; logprob is the log of the engine's confidence. */
static char *timestamps_message(const el_state *st, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message_type", "committed_transcript_with_timestamps");
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddStringToObject(o, "language_code", "en");
    cJSON *words = cJSON_AddArrayToObject(o, "words");
    for (size_t i = 0; i < st->words.n; i++) {
        const srv_wl_word *w = &st->words.v[i];
        if (i)
            add_entry(words, " ", st->words.v[i - 1].end, w->start, "spacing", 0);
        double c = w->confidence > 1e-6 ? (w->confidence < 1 ? w->confidence : 1) : 1e-6;
        add_entry(words, w->text, w->start, w->end, "word", log(c));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void commit(el_state *st, double end_s, srv_post_fn post, void *ctx)
{
    char *text = srv_wl_join(&st->words, NULL, 0);
    /* One final per commit in the records: the timestamped copy counts as an interim. */
    post(ctx, SRV_MSG_RESULTS, text_message("committed_transcript", text), 1, end_s);
    if (st->timestamps)
        post(ctx, SRV_MSG_RESULTS, timestamps_message(st, text ? text : ""), 0, 0);
    free(text);
    srv_wl_clear(&st->words);
}

static void el_on_event(void *p, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                        void *ctx)
{
    el_state *st = p;
    (void)mi;
    if (ev->kind != SRV_EV_RESULT)
        return; /* no speech-started or utterance-end messages in this protocol */
    if (!ev->is_final) {
        if (ev->n_words || st->words.n) {
            char *t = srv_wl_join(&st->words, ev->words, ev->n_words);
            post(ctx, SRV_MSG_RESULTS, text_message("partial_transcript", t), 0, 0);
            free(t);
        }
        return;
    }
    srv_wl_add(&st->words, ev->words, ev->n_words);
    if (ev->from_finalize || (st->vad && ev->speech_final && st->words.n)) {
        commit(st, ev->start + ev->duration, post, ctx);
    } else if (ev->n_words && !st->vad) {
        char *t = srv_wl_join(&st->words, NULL, 0);
        post(ctx, SRV_MSG_RESULTS, text_message("final_transcript", t), 0, 0);
        free(t);
    }
}

static void el_on_end(void *p, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                      srv_post_fn post, void *ctx)
{
    el_state *st = p;
    (void)mi;
    (void)sha256_hex;
    (void)audio_s;
    /* The protocol has no end-of-stream message; what the segment holds is committed. */
    if (st->words.n)
        commit(st, st->words.v[st->words.n - 1].end, post, ctx);
}

/* --- faults and records ------------------------------------------------------ */

static const char *const el_malformed[] = {
    /* truncated JSON */
    "{\"message_type\":\"committed_transcript\",\"text\":\"spa",
    /* a committed transcript whose fields have the wrong types */
    "{\"message_type\":\"committed_transcript_with_timestamps\",\"text\":7,\"words\":\"none\"}",
    /* a message type the service never sends */
    "{\"message_type\":\"bogus_transcript\",\"text\":\"\"}",
};

/* The timestamped commit: the one message that carries a final's times. */
static char *el_result_message(const srv_msginfo *mi, const srv_event *ev)
{
    (void)mi;
    el_state st = {.timestamps = 1};
    srv_wl_add(&st.words, ev->words, ev->n_words);
    char *text = srv_wl_join(&st.words, NULL, 0);
    char *s = text ? timestamps_message(&st, text) : NULL;
    free(text);
    srv_wl_free(&st.words);
    return s;
}

static char *el_oversized(const srv_msginfo *mi, size_t bytes)
{
    (void)mi;
    /* An interim: a padded final would acknowledge audio. */
    return srv_msg_pad(text_message("partial_transcript", "@@PAD@@"), "@@PAD@@", bytes);
}

static const srv_control_kind el_controls[] = {SRV_CTL_FINALIZE};

static cJSON *el_params_json(const srv_record *r)
{
    return r->pparams ? srv_el_params_json(r->pparams) : cJSON_CreateNull();
}

static void el_params_free(srv_record *r)
{
    if (r->pparams)
        srv_el_params_free(r->pparams);
    free(r->pparams);
    r->pparams = NULL;
}

static void el_record_json(const srv_record *r, cJSON *o)
{
    cJSON_AddStringToObject(o, "protocol", "elevenlabs");
    cJSON_AddNumberToObject(o, "session_started_sent", (double)r->begin_sent);
    cJSON_AddNumberToObject(o, "error_sent", (double)r->error_sent);
}

const srv_proto srv_proto_elevenlabs = {
    .name = "elevenlabs",
    .path = "/v1/speech-to-text/realtime",
    .http_error = el_http_error,
    .redact_arg = el_redact_arg,
    .admit = el_admit,
    .setup = el_setup,
    .opened = el_opened,
    .on_text = el_on_text,
    .audio_message = el_audio_message,
    .close_error = el_close_error,
    .fail = el_fail,
    .job_state_new = el_state_new,
    .job_state_free = el_state_free,
    .on_event = el_on_event,
    .on_end = el_on_end,
    .malformed = el_malformed,
    .oversized = el_oversized,
    .result_message = el_result_message,
    .controls = el_controls,
    .n_controls = sizeof(el_controls) / sizeof(el_controls[0]),
    .params_json = el_params_json,
    .params_free = el_params_free,
    .record_json = el_record_json,
};
