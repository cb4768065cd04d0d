/* proto_assemblyai: AssemblyAI's Universal Streaming v3 (/v3/ws) on
 * steno-server's machinery: Begin, Turn, Termination and close codes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "http.h"
#include "params_assemblyai.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "util.h"

/*
 * Engine events become Turns. The turn open on a connection collects the
 * words of final results; a final that ends speech (speech_final), or the
 * flush a ForceEndpoint asks for, ends the turn with an end_of_turn Turn
 * that carries all of them, and the next turn_order begins. A final that
 * does not end speech (a long utterance cut, a pause shorter than
 * min_turn_silence) sends a Turn with those words final and end_of_turn
 * false. Interim hypotheses send a Turn whose transcript holds the turn's
 * final words and whose words add the hypothesis, word_is_final false.
 * Silence is never acknowledged, as on the real service.
 */

#define CLOSE_REASON_MAX 123

/* --- handshake -------------------------------------------------------------- */

static int aai_http_error(struct lws *wsi, int status, const char *request_id, const char *err,
                          const char *retry_after)
{
    (void)request_id;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "error", err);
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!b)
        return -1;
    int rc = srv_http_respond(wsi, status, NULL, b, retry_after);
    free(b);
    return rc;
}

static char *aai_redact_header(enum lws_token_indexes t, const char *v)
{
    (void)v;
    return t == WSI_TOKEN_HTTP_AUTHORIZATION ? strdup("<redacted>") : NULL;
}

static char *aai_redact_arg(const char *arg)
{
    return strncmp(arg, "token=", 6) ? NULL : strdup("token=<redacted>");
}

static const char *find_token(const char *const *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++)
        if (!strncmp(args[i], "token=", 6))
            return args[i] + 6;
    return NULL;
}

static void aai_admit(struct lws *wsi, srv_record *r, const char *const *args, size_t nargs,
                      int too_many, srv_admit *out)
{
    const char *key = srv_g.cfg.api_key;
    if (key) {
        /* The raw key in Authorization, or the key as token= (this server
         * mints no temporary tokens). */
        char *a = srv_http_dup_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
        const char *tok = find_token(args, nargs);
        int ok = (a && !strcmp(a, key)) || (tok && !strcmp(tok, key));
        free(a);
        if (!ok) {
            out->close_code = 1008;
            snprintf(out->err, sizeof(out->err),
                     "Unauthorized Connection: Missing Authorization header");
            return;
        }
    }
    if (too_many) {
        out->close_code = 3006;
        snprintf(out->err, sizeof(out->err),
                 "User Input Validation Error: Too many query parameters");
        return;
    }
    srv_aai_params *p = calloc(1, sizeof(*p));
    if (!p) {
        out->status = 503;
        snprintf(out->err, sizeof(out->err), "Out of memory");
        return;
    }
    if (srv_aai_params_parse(p, args, nargs, srv_g.cfg.strict_params, out->err, sizeof(out->err))) {
        srv_aai_params_free(p);
        free(p);
        out->close_code = 3006;
        return;
    }
    r->pparams = p;
    r->params_ok = 1;
    r->rate = p->sample_rate;
    r->channels = 1;
    r->sample_bytes = p->sample_bytes;
    if (srv_g.cfg.max_connections > 0 && srv_g.n_active >= (size_t)srv_g.cfg.max_connections) {
        out->close_code = 3009;
        snprintf(out->err, sizeof(out->err),
                 "Unauthorized connection: Too many concurrent sessions");
    }
}

/* --- connection ------------------------------------------------------------- */

static char *error_json(int code, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Error");
    cJSON_AddNumberToObject(o, "error_code", code);
    cJSON_AddStringToObject(o, "error", text);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The service's error close: an Error frame with the full text, then the
 * close frame, whose reason is cut to what a close frame holds. */
static void aai_close_error(srv_conn *c, int code, const char *reason, const char *cause)
{
    const char *shown =
        strlen(reason) > CLOSE_REASON_MAX ? "See Error message for details" : reason;
    srv_conn_close_with(c, code, shown, cause, error_json(code, reason), SRV_MSG_ERROR);
}

static void aai_setup(const srv_record *r, srv_stream_params *sp, srv_msginfo *mi)
{
    const srv_aai_params *p = r->pparams;
    snprintf(mi->model_name, sizeof(mi->model_name), "%s", p->speech_model);
    mi->format_turns = p->format_turns;
    sp->interim_results = 1; /* partial Turns are always sent */
    sp->endpointing_ms = p->min_turn_silence;
}

static void aai_opened(srv_conn *c)
{
    const srv_aai_params *p = c->rec->pparams;
    c->idle_ms = p->inactivity_timeout * 1000; /* unset: no inactivity timeout */
    c->limit_ms = srv_g.cfg.session_limit_s * 1000;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Begin");
    cJSON_AddStringToObject(o, "id", c->rec->request_id);
    cJSON_AddNumberToObject(o, "expires_at",
                            floor(c->rec->start_wall) + (double)srv_g.cfg.session_limit_s);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    srv_conn_send_now(c, s, SRV_MSG_BEGIN);
}

static void bad_text(srv_conn *c, const char *what, const char *detail, size_t len)
{
    char reason[256];
    snprintf(reason, sizeof(reason), "%s: %.*s", what, (int)(len > 160 ? 160 : len), detail);
    c->rec->invalid_text++;
    aai_close_error(c, 3006, reason, "bad_text");
}

static int is_uint_or_null(const cJSON *v)
{
    return !v || cJSON_IsNull(v) ||
           (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 3600000 &&
            v->valuedouble == floor(v->valuedouble));
}

static int is_unit_or_null(const cJSON *v)
{
    return !v || cJSON_IsNull(v) ||
           (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1);
}

static int is_strings_or_null(const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return 1;
    if (!cJSON_IsArray(v))
        return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) if (!cJSON_IsString(it)) return 0;
    return 1;
}

static void update_configuration(srv_conn *c, const cJSON *j, const char *text, size_t len)
{
    const cJSON *get;
#define F(name) (get = cJSON_GetObjectItemCaseSensitive(j, name))
    if (!is_unit_or_null(F("end_of_turn_confidence_threshold")) ||
        !is_uint_or_null(F("min_turn_silence")) || !is_uint_or_null(F("max_turn_silence")) ||
        !is_unit_or_null(F("vad_threshold")) || !is_strings_or_null(F("keyterms_prompt")) ||
        !is_strings_or_null(F("language_codes")) ||
        (F("format_turns") && !cJSON_IsBool(get) && !cJSON_IsNull(get)) ||
        (F("filter_profanity") && !cJSON_IsBool(get) && !cJSON_IsNull(get)) ||
        (F("prompt") && !cJSON_IsString(get) && !cJSON_IsNull(get))) {
        bad_text(c, "Invalid Message", text, len);
        return;
    }
#undef F
    srv_record *r = c->rec;
    if (!r->config_updates)
        r->config_updates = cJSON_CreateArray();
    if (r->config_updates && cJSON_GetArraySize(r->config_updates) < SRV_CONTROL_LOG_MAX)
        cJSON_AddItemToArray(r->config_updates, cJSON_Duplicate(j, 1));
}

static void aai_on_text(srv_conn *c, const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    const cJSON *t = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (!j) {
        bad_text(c, "Invalid JSON", text, len);
    } else if (!type) {
        bad_text(c, "Invalid Message", text, len);
    } else if (!strcmp(type, "Terminate")) {
        srv_conn_control_seen(c, SRV_CTL_TERMINATE);
        srv_conn_end_stream(c, "Terminate");
    } else if (!strcmp(type, "ForceEndpoint")) {
        srv_conn_control_seen(c, SRV_CTL_FORCE_ENDPOINT);
        if (!c->input_done)
            srv_job_finalize(c->job);
    } else if (!strcmp(type, "UpdateConfiguration")) {
        srv_conn_control_seen(c, SRV_CTL_UPDATE_CONFIGURATION);
        update_configuration(c, j, text, len);
    } else if (!strcmp(type, "KeepAlive")) {
        /* Not in the spec, but the vendor's SDK sends it to reset the
         * inactivity timer (which any message does here). */
        srv_conn_control_seen(c, SRV_CTL_KEEPALIVE);
    } else {
        bad_text(c, "Invalid Message Type", type, strlen(type));
    }
    cJSON_Delete(j);
}

static double message_ms(const srv_conn *c, uint64_t bytes)
{
    const srv_record *r = c->rec;
    return (double)bytes * 1000.0 / r->sample_bytes / r->channels / r->rate;
}

static void duration_violation(srv_conn *c, uint64_t bytes)
{
    char reason[128];
    /* Whole milliseconds where they are, else two decimals. */
    snprintf(reason, sizeof(reason),
             "Input duration violation: %g ms. Expected between 50 and 1000 ms",
             round(message_ms(c, bytes) * 100) / 100);
    aai_close_error(c, 3007, reason, "bad_audio");
}

static int aai_audio_message(srv_conn *c, uint64_t bytes)
{
    double ms = message_ms(c, bytes);
    if (ms < 50 - 1e-9 || ms > 1000 + 1e-9) {
        duration_violation(c, bytes);
        return -1;
    }
    return 0;
}

static void aai_fail(srv_conn *c, srv_fail why)
{
    char reason[128];
    switch (why) {
    case SRV_FAIL_IDLE:
        /* inactivity_timeout ends the session as Terminate would. */
        srv_conn_end_stream(c, "idle");
        break;
    case SRV_FAIL_BAD_AUDIO:
        aai_close_error(c, 3006, "Invalid Message: audio is not a whole number of 16-bit samples",
                        "bad_audio");
        break;
    case SRV_FAIL_TOO_BIG:
        if (c->msg_binary)
            duration_violation(c, c->msg_bytes);
        else
            aai_close_error(c, 3006, "Invalid Message: text message over 65536 bytes", "too_big");
        break;
    case SRV_FAIL_RATE:
        snprintf(reason, sizeof(reason),
                 "Audio Transmission Rate Exceeded: Received %.1f sec. audio in %.1f sec",
                 srv_conn_audio_s(c), srv_conn_audio_elapsed_s(c));
        aai_close_error(c, 3007, reason, "rate");
        break;
    case SRV_FAIL_ENGINE:
        aai_close_error(c, 3005, "Session Cancelled: An error occurred", "engine");
        break;
    case SRV_FAIL_SEND_QUEUE:
        aai_close_error(c, 3005, "Session Cancelled: An error occurred", "send_queue");
        break;
    case SRV_FAIL_SESSION_LIMIT:
        aai_close_error(c, 3008, "Session Expired: Maximum session duration exceeded",
                        "session_limit");
        break;
    }
}

/* --- worker: Turns ------------------------------------------------------------ */

typedef struct aai_word {
    char *text;
    long long start, end; /* ms */
    double confidence;
} aai_word;

typedef struct aai_state {
    int turn_order;
    int format_turns;
    aai_word *words; /* the open turn's final words */
    size_t n_words, cap_words;
} aai_state;

static long long to_ms(double s)
{
    return llround(s * 1000.0);
}

static double unit(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static void *aai_state_new(const srv_stream_params *sp, const srv_msginfo *mi)
{
    (void)sp;
    aai_state *st = calloc(1, sizeof(*st));
    if (st)
        st->format_turns = mi->format_turns;
    return st;
}

static void clear_words(aai_state *st)
{
    for (size_t i = 0; i < st->n_words; i++)
        free(st->words[i].text);
    st->n_words = 0;
}

static void aai_state_free(void *p)
{
    aai_state *st = p;
    clear_words(st);
    free(st->words);
    free(st);
}

static void add_words(aai_state *st, const srv_event *ev)
{
    for (size_t i = 0; i < ev->n_words; i++) {
        if (st->n_words == st->cap_words) {
            size_t cap = st->cap_words ? st->cap_words * 2 : 16;
            aai_word *w = realloc(st->words, cap * sizeof(*w));
            if (!w)
                return;
            st->words = w;
            st->cap_words = cap;
        }
        aai_word *w = &st->words[st->n_words];
        if (!(w->text = strdup(ev->words[i].word)))
            return;
        w->start = to_ms(ev->words[i].start);
        w->end = to_ms(ev->words[i].end);
        w->confidence = unit(ev->words[i].confidence);
        st->n_words++;
    }
}

static cJSON *word_json(const char *text, long long start, long long end, double conf, int final)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "text", text);
    cJSON_AddNumberToObject(w, "start", (double)start);
    cJSON_AddNumberToObject(w, "end", (double)end);
    cJSON_AddNumberToObject(w, "confidence", conf);
    cJSON_AddBoolToObject(w, "word_is_final", final);
    return w;
}

/* A Turn of the open turn's final words, plus `partial` hypothesis words. */
static char *turn_json(const aai_state *st, const srv_event *partial, int end_of_turn,
                       const char *utterance)
{
    size_t tlen = 1;
    for (size_t i = 0; i < st->n_words; i++)
        tlen += strlen(st->words[i].text) + 1;
    char *transcript = malloc(tlen);
    if (!transcript)
        return NULL;
    transcript[0] = 0;
    for (size_t i = 0, at = 0; i < st->n_words; i++) {
        size_t n = strlen(st->words[i].text);
        if (i)
            transcript[at++] = ' ';
        memcpy(transcript + at, st->words[i].text, n + 1);
        at += n;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Turn");
    cJSON_AddNumberToObject(o, "turn_order", st->turn_order);
    cJSON_AddBoolToObject(o, "turn_is_formatted", end_of_turn && st->format_turns);
    cJSON_AddBoolToObject(o, "end_of_turn", end_of_turn);
    cJSON_AddStringToObject(o, "transcript", transcript);
    cJSON_AddNumberToObject(o, "end_of_turn_confidence", end_of_turn ? 1.0 : 0.0);
    cJSON *words = cJSON_AddArrayToObject(o, "words");
    for (size_t i = 0; i < st->n_words; i++)
        cJSON_AddItemToArray(words, word_json(st->words[i].text, st->words[i].start,
                                              st->words[i].end, st->words[i].confidence, 1));
    for (size_t i = 0; partial && i < partial->n_words; i++)
        cJSON_AddItemToArray(
            words, word_json(partial->words[i].word, to_ms(partial->words[i].start),
                             to_ms(partial->words[i].end), unit(partial->words[i].confidence), 0));
    cJSON_AddStringToObject(o, "utterance", utterance ? utterance : "");
    free(transcript);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void end_turn(aai_state *st, const char *utterance, double end_s, srv_post_fn post,
                     void *ctx)
{
    post(ctx, SRV_MSG_RESULTS, turn_json(st, NULL, 1, utterance), 1, end_s);
    clear_words(st);
    st->turn_order++;
}

static void aai_on_event(void *p, const srv_msginfo *mi, const srv_event *ev, srv_post_fn post,
                         void *ctx)
{
    aai_state *st = p;
    (void)mi;
    if (ev->kind != SRV_EV_RESULT)
        return; /* no SpeechStarted or UtteranceEnd in Universal Streaming */
    if (!ev->is_final) {
        if (ev->n_words || st->n_words)
            post(ctx, SRV_MSG_RESULTS, turn_json(st, ev, 0, NULL), 0, 0);
        return;
    }
    add_words(st, ev);
    const char *utt = ev->n_words ? ev->transcript : "";
    if (ev->from_finalize || (ev->speech_final && st->n_words)) {
        /* ForceEndpoint is always answered, even by an empty turn. */
        end_turn(st, utt, ev->start + ev->duration, post, ctx);
    } else if (ev->n_words) {
        post(ctx, SRV_MSG_RESULTS, turn_json(st, NULL, 0, utt), 0, 0);
    }
}

static void aai_on_end(void *p, const srv_msginfo *mi, const char *sha256_hex, double audio_s,
                       srv_post_fn post, void *ctx)
{
    aai_state *st = p;
    (void)sha256_hex;
    if (st->n_words)
        end_turn(st, "", st->words[st->n_words - 1].end / 1000.0, post, ctx);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Termination");
    cJSON_AddNumberToObject(o, "audio_duration_seconds", (double)llround(audio_s));
    cJSON_AddNumberToObject(o, "session_duration_seconds",
                            (double)llround((double)(srv_mono_us() - mi->start_mono_us) / 1e6));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    post(ctx, SRV_MSG_TERMINATION, s, 0, 0);
}

/* --- faults and records ------------------------------------------------------ */

static const char *const aai_malformed[] = {
    /* truncated JSON */
    "{\"type\":\"Turn\",\"turn_order\":0,\"turn_is_formatted\":false,\"end_of_turn\":tr",
    /* a Turn whose fields all have the wrong types */
    "{\"type\":\"Turn\",\"turn_order\":\"zero\",\"turn_is_formatted\":\"no\",\"end_of_turn\":1,"
    "\"transcript\":null,\"end_of_turn_confidence\":\"high\",\"words\":\"none\"}",
    /* a message type AssemblyAI never sends */
    "{\"type\":\"Bogus\"}",
};

static char *aai_result_message(const srv_msginfo *mi, const srv_event *ev)
{
    aai_state st = {.format_turns = mi->format_turns};
    add_words(&st, ev);
    char *s = turn_json(&st, NULL, 1, "");
    clear_words(&st);
    free(st.words);
    return s;
}

static char *aai_oversized(const srv_msginfo *mi, size_t bytes)
{
    static const char marker[] = "@@PAD@@";
    aai_state st = {.format_turns = mi->format_turns};
    srv_word w = {.word = marker, .start = 0, .end = 0, .confidence = 1};
    srv_event ev = {.kind = SRV_EV_RESULT, .is_final = 1, .words = &w, .n_words = 1};
    add_words(&st, &ev);
    char *base = turn_json(&st, NULL, 1, "");
    clear_words(&st);
    free(st.words);
    /* The marker is in the transcript and the word: pad the first, drop the word. */
    if (base) {
        cJSON *o = cJSON_Parse(base);
        free(base);
        base = NULL;
        if (o) {
            cJSON_ReplaceItemInObjectCaseSensitive(o, "words", cJSON_CreateArray());
            base = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
        }
    }
    return srv_msg_pad(base, marker, bytes);
}

static const srv_control_kind aai_controls[] = {SRV_CTL_KEEPALIVE, SRV_CTL_FORCE_ENDPOINT,
                                                SRV_CTL_UPDATE_CONFIGURATION, SRV_CTL_TERMINATE};

static cJSON *aai_params_json(const srv_record *r)
{
    return r->pparams ? srv_aai_params_json(r->pparams) : cJSON_CreateNull();
}

static void aai_params_free(srv_record *r)
{
    srv_aai_params_free(r->pparams);
    free(r->pparams);
    r->pparams = NULL;
}

static void aai_record_json(const srv_record *r, cJSON *o)
{
    cJSON_AddStringToObject(o, "protocol", "assemblyai");
    cJSON_AddNumberToObject(o, "begin_sent", (double)r->begin_sent);
    cJSON_AddNumberToObject(o, "termination_sent", (double)r->termination_sent);
    cJSON_AddNumberToObject(o, "error_sent", (double)r->error_sent);
    cJSON_AddItemToObject(o, "config_updates",
                          r->config_updates ? cJSON_Duplicate(r->config_updates, 1)
                                            : cJSON_CreateArray());
}

const srv_proto srv_proto_assemblyai = {
    .name = "assemblyai",
    .path = "/v3/ws",
    .http_error = aai_http_error,
    .redact_header = aai_redact_header,
    .redact_arg = aai_redact_arg,
    .admit = aai_admit,
    .setup = aai_setup,
    .opened = aai_opened,
    .on_text = aai_on_text,
    .audio_message = aai_audio_message,
    .close_error = aai_close_error,
    .fail = aai_fail,
    .job_state_new = aai_state_new,
    .job_state_free = aai_state_free,
    .on_event = aai_on_event,
    .on_end = aai_on_end,
    .malformed = aai_malformed,
    .oversized = aai_oversized,
    .result_message = aai_result_message,
    .controls = aai_controls,
    .n_controls = sizeof(aai_controls) / sizeof(aai_controls[0]),
    .params_json = aai_params_json,
    .params_free = aai_params_free,
    .record_json = aai_record_json,
};
