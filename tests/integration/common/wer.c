/* wer: word error rate of a transcript against a reference. */
#include "harness.h"

#include <ctype.h>
#include <stdio.h>
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

static int cmp_final(const void *a, const void *b)
{
    const h_ev *x = *(const h_ev *const *)a, *y = *(const h_ev *const *)b;
    if (x->first_sample != y->first_sample)
        return x->first_sample < y->first_sample ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *h_finals_text(h_collector *c)
{
    pthread_mutex_lock(&c->mu);
    const h_ev **f = calloc(c->n + 1, sizeof *f);
    H_CHECK(f, "out of memory");
    size_t n = 0, cap = 1, len = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].type == STENO_EVENT_TRANSCRIPT && c->ev[i].is_final && c->ev[i].text[0]) {
            f[n++] = &c->ev[i];
            cap += strlen(c->ev[i].text) + 1;
        }
    qsort(f, n, sizeof *f, cmp_final);
    char *text = malloc(cap);
    H_CHECK(text, "out of memory");
    text[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%s", len ? " " : "", f[i]->text);
    pthread_mutex_unlock(&c->mu);
    free(f);
    return text;
}
