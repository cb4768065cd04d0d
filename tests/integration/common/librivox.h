/* librivox: the LibriVox recordings shipped with pocketsphinx-testdata, joined into one stream of
 * real speech, with their reference transcription. */
#ifndef STENO_TESTS_COMMON_LIBRIVOX_H
#define STENO_TESTS_COMMON_LIBRIVOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The recordings in name order at 16 kHz, each followed by 0.5 s of faint noise (a pause a
 * recogniser ends its utterance on), into *pcm (malloc'd) and *frames; their reference words,
 * space-separated, into a malloc'd *ref. The folder is $RES_LIBRIVOX or the Debian one. Returns
 * false (nothing allocated) when the recordings are not installed; exits on other errors. */
bool h_librivox_load(int16_t **pcm, size_t *frames, char **ref);

#endif
