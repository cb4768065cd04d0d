/* params_assemblyai: parses and validates AssemblyAI /v3/ws query parameters. */
#ifndef STENO_SERVER_PARAMS_ASSEMBLYAI_H
#define STENO_SERVER_PARAMS_ASSEMBLYAI_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "params.h"

typedef struct srv_aai_params {
    char speech_model[48];
    char encoding[16];
    int sample_rate;
    int sample_bytes; /* 2 (pcm_s16le) or 1 (pcm_mulaw) */
    int format_turns, language_detection, speaker_labels;
    double end_of_turn_confidence_threshold, vad_threshold;
    int min_turn_silence, max_turn_silence; /* ms */
    int inactivity_timeout;                 /* s; 0 = none */
    int max_speakers;                       /* 0 = not given */
    char language[8];                       /* deprecated; "" = not given */
    char **keyterms;
    size_t n_keyterms;
    char *token;   /* the token= credential (never shown in records) */
    srv_kv *other; /* accepted parameters this server does not act on */
    size_t n_other;
    char **ignored; /* names of parameters the spec does not list */
    size_t n_ignored;
} srv_aai_params;

/* `args` are "name=value" strings, already URL-decoded. Returns 0, or -1 with
 * an AssemblyAI-style message in `err` ("User Input Validation Error: ...");
 * the params must be freed either way. `strict`: unknown names are errors. */
int srv_aai_params_parse(srv_aai_params *p, const char *const *args, size_t nargs, int strict,
                         char *err, size_t errlen);
void srv_aai_params_free(srv_aai_params *p);
cJSON *srv_aai_params_json(const srv_aai_params *p);

#endif
