/* wer: word error rate of a transcript against a reference. */
#include "harness.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

size_t h_words(const char *text, char ***out)
{
    size_t n = 0, cap = 16;
    char **w = malloc(cap * sizeof *w);
    H_CHECK(w, "out of memory");
    const char *p = text;
    while (*p) {
        while (*p && !(isalnum((unsigned char)*p) || *p == '\''))
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '\''))
            p++;
        if (n == cap) {
            cap *= 2;
            w = realloc(w, cap * sizeof *w);
            H_CHECK(w, "out of memory");
        }
        char *word = strndup(s, (size_t)(p - s));
        H_CHECK(word, "out of memory");
        for (char *q = word; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        w[n++] = word;
    }
    *out = w;
    return n;
}

void h_words_free(char **w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i]);
    free(w);
}

double h_wer(char **ref, size_t nref, char **hyp, size_t nhyp)
{
    size_t *prev = malloc((nhyp + 1) * sizeof *prev), *cur = malloc((nhyp + 1) * sizeof *cur);
    H_CHECK(prev && cur, "out of memory");
    for (size_t j = 0; j <= nhyp; j++)
        prev[j] = j;
    for (size_t i = 1; i <= nref; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nhyp; j++) {
            size_t sub = prev[j - 1] + (strcmp(ref[i - 1], hyp[j - 1]) != 0);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    double d = (double)prev[nhyp];
    free(prev);
    free(cur);
    return nref ? 100.0 * d / (double)nref : (nhyp ? 100.0 : 0.0);
}
