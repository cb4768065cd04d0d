/* librivox: the LibriVox recordings shipped with pocketsphinx-testdata, joined into one stream of
 * real speech, with their reference transcription. */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 16000u
#define GAP (RATE / 2u)
#define MAX_FILES 64

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    H_CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Appends the reference of utterance id from a "<s> words </s> (id)" transcription file. */
static void append_reference(const char *trans, const char *id, char *out, size_t cap)
{
    char key[256];
    snprintf(key, sizeof key, "(%s)", id);
    const char *at = strstr(trans, key);
    H_CHECK(at, "no reference transcription for %s", id);
    const char *ls = at;
    while (ls > trans && ls[-1] != '\n')
        ls--;
    char line[2048];
    size_t n = (size_t)(at - ls) < sizeof line - 1 ? (size_t)(at - ls) : sizeof line - 1;
    memcpy(line, ls, n);
    line[n] = '\0';
    size_t len = strlen(out);
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!strcmp(tok, "<s>") || !strcmp(tok, "</s>") || !strcmp(tok, "<sil>"))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s ", tok);
        H_CHECK(len < cap, "reference too long");
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool h_librivox_load(int16_t **pcm_out, size_t *frames_out, char **ref_out)
{
    const char *dir = getenv("RES_LIBRIVOX");
    if (!dir)
        dir = "/usr/share/pocketsphinx/test/data/librivox";
    char path[1024];
    snprintf(path, sizeof path, "%s/transcription", dir);
    char *trans = read_all(path);
    DIR *d = opendir(dir);
    if (!trans || !d) {
        free(trans);
        if (d)
            closedir(d);
        return false;
    }
    char *names[MAX_FILES];
    size_t nf = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL && nf < MAX_FILES;) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".wav") == 0)
            names[nf++] = strdup(de->d_name);
    }
    closedir(d);
    H_CHECK(nf > 0, "no .wav files in %s", dir);
    qsort(names, nf, sizeof names[0], cmp_str);

    size_t total = 0, cap = 0, ref_cap = 16384;
    int16_t *pcm = NULL;
    char *ref = calloc(1, ref_cap);
    H_CHECK(ref, "out of memory");
    for (size_t i = 0; i < nf; i++) {
        int16_t *w;
        size_t frames;
        uint32_t rate;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        h_wav_load(path, &w, &frames, &rate);
        H_CHECK(rate == RATE, "%s: %u Hz", names[i], rate);
        if (total + frames + GAP > cap) {
            cap = (total + frames + GAP) * 2;
            pcm = realloc(pcm, cap * sizeof *pcm);
            H_CHECK(pcm, "out of memory");
        }
        memcpy(pcm + total, w, frames * sizeof *w);
        total += frames;
        for (size_t k = 0; k < GAP; k++)
            pcm[total + k] = (int16_t)(h_pattern_sample(2, total + k) % 8);
        total += GAP;
        free(w);
        names[i][strlen(names[i]) - 4] = '\0';
        append_reference(trans, names[i], ref, ref_cap);
        free(names[i]);
    }
    free(trans);
    *pcm_out = pcm;
    *frames_out = total;
    *ref_out = ref;
    return true;
}
