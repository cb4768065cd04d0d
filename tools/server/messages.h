/* messages: builds the JSON server messages of Deepgram's live API. */
#ifndef STENO_SERVER_MESSAGES_H
#define STENO_SERVER_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* The kinds of server message, for the records' counters. */
typedef enum srv_msg_type {
    SRV_MSG_RESULTS, /* Deepgram Results, AssemblyAI Turn */
    SRV_MSG_SPEECH_STARTED,
    SRV_MSG_UTTERANCE_END,
    SRV_MSG_METADATA,
    SRV_MSG_BEGIN,       /* AssemblyAI */
    SRV_MSG_TERMINATION, /* AssemblyAI */
    SRV_MSG_ERROR,       /* AssemblyAI Error frame before an error close */
    SRV_MSG_RAW,         /* fault injection */
} srv_msg_type;

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
    int64_t start_mono_us; /* when the connection was accepted */
    int format_turns;      /* AssemblyAI format_turns=true */
    void *proto_link;      /* state a protocol's lws-thread and worker halves share (Gemini) */
} srv_msginfo;

/* Each returns a malloc'd NUL-terminated JSON text, or NULL when out of memory. */
char *srv_msg_results(const srv_msginfo *mi, const srv_event *ev);
char *srv_msg_speech_started(const srv_msginfo *mi, double timestamp);
char *srv_msg_utterance_end(const srv_msginfo *mi, double last_word_end);
char *srv_msg_metadata(const srv_msginfo *mi, const char *sha256_hex, double duration);

/* Fault injection: a text frame of exactly `bytes` bytes that is a valid
 * Results message with a padded transcript (bytes >= 512). */
char *srv_msg_oversized(const srv_msginfo *mi, size_t bytes);
/* `base` (malloc'd, taken) with its one `marker` replaced by 'x' padding so
 * that the text is exactly `bytes` long; NULL if `base` is already longer. */
char *srv_msg_pad(char *base, const char *marker, size_t bytes);

#endif
