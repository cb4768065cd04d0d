/* words: the final words a protocol gathers into an open turn or segment. */
#include "words.h"

#include <stdlib.h>
#include <string.h>

void srv_wl_add(srv_wordlist *l, const srv_word *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 16;
            srv_wl_word *v = realloc(l->v, cap * sizeof(*v));
            if (!v)
                return;
            l->v = v;
            l->cap = cap;
        }
        srv_wl_word *d = &l->v[l->n];
        if (!(d->text = strdup(w[i].word)))
            return;
        d->start = w[i].start;
        d->end = w[i].end;
        d->confidence = w[i].confidence;
        l->n++;
    }
}

void srv_wl_clear(srv_wordlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].text);
    l->n = 0;
}

void srv_wl_free(srv_wordlist *l)
{
    srv_wl_clear(l);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

char *srv_wl_join(const srv_wordlist *l, const srv_word *extra, size_t n_extra)
{
    size_t len = 1;
    for (size_t i = 0; i < l->n + n_extra; i++)
        len += strlen(i < l->n ? l->v[i].text : extra[i - l->n].word) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < l->n + n_extra; i++) {
        const char *w = i < l->n ? l->v[i].text : extra[i - l->n].word;
        size_t k = strlen(w);
        if (i)
            s[at++] = ' ';
        memcpy(s + at, w, k);
        at += k;
    }
    s[at] = 0;
    return s;
}
