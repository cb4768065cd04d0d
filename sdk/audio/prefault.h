/* prefault: touch freshly allocated buffers so the capture thread never takes their page faults. */
#ifndef STENO_AUDIO_PREFAULT_H
#define STENO_AUDIO_PREFAULT_H

#include <stddef.h>

/* calloc may hand out untouched zero pages; the first write to each would make the kernel
 * map it on the capture thread. A volatile write per page maps them now (and cannot be
 * optimised away as a redundant store after calloc). */
static inline void steno__prefault(void *p, size_t bytes)
{
    volatile unsigned char *b = p;
    for (size_t i = 0; i < bytes; i += 4096)
        b[i] = 0;
    if (bytes)
        b[bytes - 1] = 0;
}

#endif
