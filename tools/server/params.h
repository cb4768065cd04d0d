/* params: parses and validates Deepgram /v1/listen query parameters. */
#ifndef STENO_SERVER_PARAMS_H
#define STENO_SERVER_PARAMS_H

#include <stddef.h>

typedef struct srv_kv {
    char *name;
    char *value;
} srv_kv;

typedef struct srv_params {
    char model[48];
    char language[40];
    char encoding[16];
    int sample_rate;
    int channels;
    int interim_results, punctuate, smart_format, vad_events;
    int endpointing_ms;   /* -1 = "false" */
    int utterance_end_ms; /* 0 = not requested */
    char **keywords, **keyterm;
    size_t n_keywords, n_keyterm;
    srv_kv *other; /* every other parameter, in order: spec ones and ignored ones */
    size_t n_other;
    char **ignored; /* names of parameters Deepgram's spec does not list */
    size_t n_ignored;
} srv_params;

typedef struct srv_params_rules {
    int strict;       /* unknown parameters are an error */
    int english_only; /* the engine only recognises English */
} srv_params_rules;

/* `args` are "name=value" strings, already URL-decoded. Returns 0, or -1 with
 * a Deepgram-style message in `err` (the params are then partly filled and
 * must still be freed). */
int srv_params_parse(srv_params *p, const char *const *args, size_t nargs,
                     const srv_params_rules *rules, char *err, size_t errlen);
void srv_params_free(srv_params *p);

#endif
