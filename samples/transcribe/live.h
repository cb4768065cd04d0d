/* live: the terminal view — committed finals, the interim line dimmed and replaced in place,
 * and a status line under it. */
#ifndef STENO_SAMPLES_LIVE_H
#define STENO_SAMPLES_LIVE_H

#include <stdio.h>

/*
 * Only one thread may call these (the CLI's event thread). The cursor rests
 * at the start of the interim line; the status line is the one below it.
 */
typedef struct live {
    FILE *tty;
    char interim[1024];
    char status[800];
    int active;
} live;

void live_init(live *l, FILE *tty);
/* Prints a final above the interim line (which it clears). */
void live_commit(live *l, const char *text);
void live_interim(live *l, const char *text);
void live_status(live *l, const char *status);
/* Clears the interim and status lines, leaving the cursor on a fresh line. */
void live_end(live *l);

#endif
