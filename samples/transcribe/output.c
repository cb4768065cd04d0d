/* output: the transcript in the chosen format (text, jsonl, srt, vtt) to a stream. */
#include "output.h"

#include <string.h>

int output_parse_format(const char *name, out_format *fmt)
{
    static const struct {
        const char *name;
        out_format f;
    } names[] = {{"text", OUT_TEXT}, {"jsonl", OUT_JSONL}, {"srt", OUT_SRT}, {"vtt", OUT_VTT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *fmt = names[i].f;
            return 0;
        }
    }
    return -1;
}

void output_begin(output *o)
{
    if (o->format == OUT_VTT)
        fputs("WEBVTT\n\n", o->f);
    fflush(o->f);
}

/* SRT wants 00:00:01,234 and WebVTT 00:00:01.234. */
static void put_time(FILE *f, double secs, char sep)
{
    if (secs < 0)
        secs = 0;
    unsigned long long ms = (unsigned long long)(secs * 1000.0 + 0.5);
    fprintf(f, "%02llu:%02llu:%02llu%c%03llu", ms / 3600000ULL, ms / 60000ULL % 60,
            ms / 1000ULL % 60, sep, ms % 1000ULL);
}

static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void put_jsonl(FILE *f, const steno_transcript *t)
{
    fprintf(f, "{\"type\":\"%s\",\"start\":%.3f,\"end\":%.3f,\"text\":",
            t->is_final ? "final" : "interim", t->start, t->end);
    put_json_string(f, t->text);
    fprintf(f,
            ",\"confidence\":%.4f,\"speech_final\":%s,\"from_finalize\":%s,\"from_backfill\":%s,"
            "\"channel\":%d,\"words\":[",
            t->confidence, t->speech_final ? "true" : "false", t->from_finalize ? "true" : "false",
            t->from_backfill ? "true" : "false", t->channel);
    for (size_t i = 0; i < t->n_words; i++) {
        const steno_word *w = &t->words[i];
        fputs(i ? ",{\"word\":" : "{\"word\":", f);
        put_json_string(f, w->punctuated_word ? w->punctuated_word : w->word);
        fprintf(f, ",\"start\":%.3f,\"end\":%.3f,\"confidence\":%.4f", w->start, w->end,
                w->confidence);
        if (w->speaker >= 0)
            fprintf(f, ",\"speaker\":%d", w->speaker);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

void output_transcript(output *o, const steno_transcript *t)
{
    if (!t->is_final && !(o->format == OUT_JSONL && o->interim))
        return;
    if (t->is_final && t->text[0] == '\0')
        return;
    switch (o->format) {
    case OUT_TEXT:
        if (o->timestamps)
            fprintf(o->f, "[%.2f-%.2f] %s\n", t->start, t->end, t->text);
        else
            fprintf(o->f, "%s\n", t->text);
        break;
    case OUT_JSONL:
        put_jsonl(o->f, t);
        break;
    case OUT_SRT:
        fprintf(o->f, "%u\n", ++o->cue);
        put_time(o->f, t->start, ',');
        fputs(" --> ", o->f);
        put_time(o->f, t->end, ',');
        fprintf(o->f, "\n%s\n\n", t->text);
        break;
    case OUT_VTT:
        ++o->cue;
        put_time(o->f, t->start, '.');
        fputs(" --> ", o->f);
        put_time(o->f, t->end, '.');
        fprintf(o->f, "\n%s\n\n", t->text);
        break;
    }
    fflush(o->f);
}
