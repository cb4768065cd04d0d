/* options: steno-transcribe's command line, its help text and exit codes. */
#ifndef STENO_SAMPLES_OPTIONS_H
#define STENO_SAMPLES_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "output.h"
#include "steno/steno.h"

/* Exit codes: documented in --help and README. */
enum {
    EXIT_OK = 0,
    EXIT_OTHER = 1,      /* anything else: an internal error, the local server would not start */
    EXIT_USAGE = 2,      /* bad command line or configuration */
    EXIT_INPUT = 3,      /* the input: missing/unreadable/non-audio file, unknown device */
    EXIT_PROVIDER = 4,   /* authentication or another fatal provider error */
    EXIT_GAVE_UP = 5,    /* gave up reconnecting (max outage, attempts, retry budget) */
    EXIT_AUDIO_LOST = 6, /* some audio has no transcript (dropped, or not finalized at close) */
    EXIT_ABORTED = 130,  /* a second Ctrl-C */
};

#define MAX_OPTIONS 64
#define MAX_FAILOVER 8

typedef enum input_kind { IN_FILE, IN_STDIN, IN_MIC } input_kind;

typedef struct args {
    input_kind input;
    const char *file;
    const char *device;
    uint32_t mic_rate;
    uint32_t raw_rate, raw_channels;
    double duration; /* seconds, 0 = until the end / Ctrl-C */
    double speed;    /* 0 = as fast as the provider accepts */
    int list_devices;

    const char *provider, *url, *api_key;
    int local;
    uint32_t max_outage_ms;                /* 0 = the default */
    steno_endpoint failover[MAX_FAILOVER]; /* provider and url; keys from the environment */
    size_t n_failover;
    uint32_t failover_after_ms; /* 0 = the default */
    uint32_t failback_after_ms;
    int failback_set;
    steno_option options[MAX_OPTIONS];
    size_t n_options;

    out_format format;
    const char *output;
    int interim, timestamps, no_live, stats, verbose;
    uint32_t close_timeout_ms;
} args;

/* 0, or EXIT_USAGE after printing what is wrong; --help exits 0 itself. */
int parse_args(int argc, char **argv, args *a);

#endif
