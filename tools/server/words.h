/* words: the final words a protocol gathers into an open turn or segment (AssemblyAI's turns,
 * ElevenLabs' uncommitted segments) before it sends them as one message. */
#ifndef STENO_SERVER_WORDS_H
#define STENO_SERVER_WORDS_H

#include <stddef.h>

#include "engine.h"

typedef struct srv_wl_word {
    char *text;
    double start, end, confidence; /* seconds, as the engine gave them */
} srv_wl_word;

typedef struct srv_wordlist {
    srv_wl_word *v;
    size_t n, cap;
} srv_wordlist;

/* Appends copies of w[0..n); stops early when out of memory (the words kept stay valid). */
void srv_wl_add(srv_wordlist *l, const srv_word *w, size_t n);
/* Forgets the words, keeps the memory. */
void srv_wl_clear(srv_wordlist *l);
void srv_wl_free(srv_wordlist *l);
/* The list's words and then extra[0..n_extra), separated by single spaces (malloc'd; NULL when
 * out of memory). */
char *srv_wl_join(const srv_wordlist *l, const srv_word *extra, size_t n_extra);

#endif
