/* messages: builds the JSON server messages of Deepgram's live API. */
#ifndef STENO_SERVER_MESSAGES_H
#define STENO_SERVER_MESSAGES_H

#include <stddef.h>

#include "engine.h"

/* What every message of one connection repeats. */
typedef struct srv_msginfo {
    char request_id[37];
    char model_name[48];
    char model_version[32];
    char model_arch[32];
    char model_uuid[37];
    char created[32]; /* ISO 8601 time the connection was accepted */
    int channels;
    int sample_rate;
} srv_msginfo;

/* Each returns a malloc'd NUL-terminated JSON text, or NULL when out of memory. */
char *srv_msg_results(const srv_msginfo *mi, const srv_event *ev);
char *srv_msg_speech_started(const srv_msginfo *mi, double timestamp);
char *srv_msg_utterance_end(const srv_msginfo *mi, double last_word_end);
char *srv_msg_metadata(const srv_msginfo *mi, const char *sha256_hex, double duration);

/* Fault injection: a text frame of exactly `bytes` bytes that is a valid
 * Results message with a padded transcript (bytes >= 512). */
char *srv_msg_oversized(const srv_msginfo *mi, size_t bytes);

#endif
