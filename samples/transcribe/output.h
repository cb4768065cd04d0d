/* output: the transcript in the chosen format (text, jsonl, srt, vtt) to a stream. */
#ifndef STENO_SAMPLES_OUTPUT_H
#define STENO_SAMPLES_OUTPUT_H

#include <stdio.h>

#include "steno/steno.h"

typedef enum out_format { OUT_TEXT, OUT_JSONL, OUT_SRT, OUT_VTT } out_format;

typedef struct output {
    FILE *f;
    out_format format;
    int timestamps; /* text: prefix [start-end] */
    int interim;    /* jsonl: interim results too */
    unsigned cue;   /* srt/vtt cues written */
} output;

/* "text" ... -> 0 and *fmt, or -1 for an unknown name. */
int output_parse_format(const char *name, out_format *fmt);
/* Writes the header (vtt) and flushes. */
void output_begin(output *o);
/* One result; finals with no text are skipped (a cue needs words). */
void output_transcript(output *o, const steno_transcript *t);

#endif
