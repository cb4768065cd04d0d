/* live: the terminal view — committed finals, the interim line dimmed and replaced in place,
 * and a status line under it. */
#include "live.h"

#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define DIM "\033[2m"
#define RESET "\033[0m"

static size_t columns(FILE *tty)
{
    struct winsize ws;
    if (ioctl(fileno(tty), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        return ws.ws_col;
    return 80;
}

/* How many bytes of s fit in n columns, counting UTF-8 continuation bytes as 0 wide. */
static size_t fit_tail(const char *s, size_t n, size_t *start)
{
    size_t len = strlen(s), cols = 0, i = len;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        if (cols + 1 > n)
            break;
        cols++;
        i = j;
    }
    *start = i;
    return len - i;
}

static size_t fit_head(const char *s, size_t n)
{
    size_t cols = 0, i = 0;
    while (s[i] && cols < n) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cols++;
    }
    return i;
}

static void draw(live *l)
{
    /* Each line is cleared on its own (ESC[K): clearing to the end of the screen from its
     * top-left corner makes some terminals (tmux) push the screen into their history. */
    size_t cols = columns(l->tty) - 1;
    fputs("\r\033[K", l->tty);
    if (l->interim[0]) {
        /* the newest words matter: show the end of a long interim */
        size_t start, len = fit_tail(l->interim, cols, &start);
        fprintf(l->tty, DIM "%.*s" RESET, (int)len, l->interim + start);
    }
    fputs("\n\r\033[K", l->tty);
    fprintf(l->tty, DIM "%.*s" RESET, (int)fit_head(l->status, cols), l->status);
    fputs("\033[1A\r", l->tty);
    fflush(l->tty);
}

void live_init(live *l, FILE *tty)
{
    memset(l, 0, sizeof *l);
    l->tty = tty;
    l->active = 1;
    draw(l);
}

void live_commit(live *l, const char *text)
{
    l->interim[0] = '\0';
    /* clear the status line too: a final longer than the terminal wraps onto it */
    fprintf(l->tty, "\r\033[K\n\033[K\033[1A\r%s\n", text);
    draw(l);
}

void live_interim(live *l, const char *text)
{
    snprintf(l->interim, sizeof l->interim, "%s", text);
    draw(l);
}

void live_status(live *l, const char *status)
{
    if (strcmp(status, l->status) == 0)
        return;
    snprintf(l->status, sizeof l->status, "%s", status);
    draw(l);
}

void live_end(live *l)
{
    if (!l->active)
        return;
    fputs("\r\033[K\n\033[K\033[1A\r", l->tty);
    fflush(l->tty);
    l->active = 0;
}
