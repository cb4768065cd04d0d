/* params_elevenlabs: parses and validates ElevenLabs realtime speech-to-text query parameters. */
#ifndef STENO_SERVER_PARAMS_ELEVENLABS_H
#define STENO_SERVER_PARAMS_ELEVENLABS_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct srv_el_list {
    char **v;
    size_t n;
} srv_el_list;

typedef struct srv_el_params {
    char model_id[48];
    char audio_format[16];
    int sample_rate;
    int sample_bytes; /* 2 (pcm_*) or 1 (ulaw_8000) */
    char language_code[16];
    int vad; /* commit_strategy=vad */
    double vad_silence_threshold_secs, vad_threshold;
    int min_speech_duration_ms, min_silence_duration_ms;
    int include_timestamps, include_language_detection, no_verbatim, filter_background_audio;
    int enable_logging, transcript_edit;
    srv_el_list secondary_languages, keyterms, entity_detection;
    char *token;         /* the token= credential (never shown in records) */
    srv_el_list ignored; /* names this server does not know (accepted unless --strict-params) */
} srv_el_params;

/* `args` are "name=value" strings, already URL-decoded. Returns 0, or -1 with a message for an
 * invalid_request error in `err`; the params must be freed either way. `strict`: unknown
 * names are errors. */
int srv_el_params_parse(srv_el_params *p, const char *const *args, size_t nargs, int strict,
                        char *err, size_t errlen);
void srv_el_params_free(srv_el_params *p);
/* The record's view of the parameters. */
cJSON *srv_el_params_json(const srv_el_params *p);
/* session_started's config: the effective settings, as the service echoes them. */
cJSON *srv_el_params_config(const srv_el_params *p);

#endif
