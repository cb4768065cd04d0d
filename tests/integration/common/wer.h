/* wer: word error rate of a transcript against a reference, and a session's transcript. */
#ifndef STENO_TESTS_COMMON_WER_H
#define STENO_TESTS_COMMON_WER_H

#include <stddef.h>

/* Lower-case words of text, punctuation stripped; returns the count, words in *out (free
 * with h_words_free). */
size_t h_words(const char *text, char ***out);
void h_words_free(char **w, size_t n);
/* Levenshtein distance over words / reference length, in percent. */
double h_wer(char **ref, size_t nref, char **hyp, size_t nhyp);

struct h_collector;
/* The finals of a collector as one text: non-empty finals sorted by first_sample (finals from
 * backfill connections arrive after live ones), joined by spaces. malloc'd. */
char *h_finals_text(struct h_collector *c);

#endif
