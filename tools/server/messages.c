/* messages: builds the JSON server messages of Deepgram's live API. */
#include "messages.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *channel_array(int n)
{
    /* Deepgram sends channel_index as [index, channel count]. */
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0));
    if (n > 0)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(n));
    return a;
}

static cJSON *model_info(const srv_msginfo *mi)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", mi->model_name);
    cJSON_AddStringToObject(o, "version", mi->model_version);
    cJSON_AddStringToObject(o, "arch", mi->model_arch);
    return o;
}

static char *finish(cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *srv_msg_results(const srv_msginfo *mi, const srv_event *ev)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "type", "Results");
    cJSON_AddItemToObject(root, "channel_index", channel_array(mi->channels));
    cJSON_AddNumberToObject(root, "duration", ev->duration);
    cJSON_AddNumberToObject(root, "start", ev->start);
    cJSON_AddBoolToObject(root, "is_final", ev->is_final);
    cJSON_AddBoolToObject(root, "speech_final", ev->speech_final);
    cJSON *ch = cJSON_AddObjectToObject(root, "channel");
    cJSON *alts = cJSON_AddArrayToObject(ch, "alternatives");
    cJSON *alt = cJSON_CreateObject();
    cJSON_AddItemToArray(alts, alt);
    cJSON_AddStringToObject(alt, "transcript", ev->transcript ? ev->transcript : "");
    cJSON_AddNumberToObject(alt, "confidence", ev->confidence);
    cJSON *words = cJSON_AddArrayToObject(alt, "words");
    for (size_t i = 0; i < ev->n_words; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "word", ev->words[i].word);
        cJSON_AddNumberToObject(w, "start", ev->words[i].start);
        cJSON_AddNumberToObject(w, "end", ev->words[i].end);
        cJSON_AddNumberToObject(w, "confidence", ev->words[i].confidence);
        cJSON_AddStringToObject(w, "punctuated_word", ev->words[i].word);
        cJSON_AddItemToArray(words, w);
    }
    cJSON *md = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddStringToObject(md, "request_id", mi->request_id);
    cJSON_AddItemToObject(md, "model_info", model_info(mi));
    cJSON_AddStringToObject(md, "model_uuid", mi->model_uuid);
    cJSON_AddBoolToObject(root, "from_finalize", ev->from_finalize);
    return finish(root);
}

char *srv_msg_speech_started(const srv_msginfo *mi, double timestamp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "type", "SpeechStarted");
    cJSON_AddItemToObject(root, "channel", channel_array(mi->channels));
    cJSON_AddNumberToObject(root, "timestamp", timestamp);
    return finish(root);
}

char *srv_msg_utterance_end(const srv_msginfo *mi, double last_word_end)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "type", "UtteranceEnd");
    cJSON_AddItemToObject(root, "channel", channel_array(mi->channels));
    cJSON_AddNumberToObject(root, "last_word_end", last_word_end);
    return finish(root);
}

char *srv_msg_metadata(const srv_msginfo *mi, const char *sha256_hex, double duration)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "type", "Metadata");
    cJSON_AddStringToObject(root, "transaction_key", "deprecated");
    cJSON_AddStringToObject(root, "request_id", mi->request_id);
    cJSON_AddStringToObject(root, "sha256", sha256_hex);
    cJSON_AddStringToObject(root, "created", mi->created);
    cJSON_AddNumberToObject(root, "duration", duration);
    cJSON_AddNumberToObject(root, "channels", mi->channels);
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    cJSON_AddItemToArray(models, cJSON_CreateString(mi->model_uuid));
    cJSON *info = cJSON_AddObjectToObject(root, "model_info");
    cJSON_AddItemToObject(info, mi->model_uuid, model_info(mi));
    return finish(root);
}

char *srv_msg_pad(char *base, const char *marker, size_t bytes)
{
    if (!base)
        return NULL;
    size_t blen = strlen(base), mlen = strlen(marker);
    char *at = strstr(base, marker);
    if (!at || bytes < blen) {
        free(base);
        return NULL;
    }
    char *out = malloc(bytes + 1);
    if (!out) {
        free(base);
        return NULL;
    }
    size_t head = (size_t)(at - base), pad = bytes - (blen - mlen);
    memcpy(out, base, head);
    memset(out + head, 'x', pad);
    memcpy(out + head + pad, at + mlen, blen - head - mlen);
    out[bytes] = 0;
    free(base);
    return out;
}

char *srv_msg_oversized(const srv_msginfo *mi, size_t bytes)
{
    static const char marker[] = "@@PAD@@";
    srv_event ev = {.kind = SRV_EV_RESULT, .is_final = 1, .transcript = marker};
    return srv_msg_pad(srv_msg_results(mi, &ev), marker, bytes);
}
