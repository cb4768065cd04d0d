/* rng: splitmix64, a tiny seeded generator so a failing chaos run can be replayed. */
#ifndef STENO_CHAOS_RNG_H
#define STENO_CHAOS_RNG_H

#include <stdint.h>

/* Advances *state and returns the next value (Steele, Lea and Flood, 2014). */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/*
 * The stream for one pipe of one connection: derived from the run's seed and
 * the connection id alone, so its jitter sequence does not depend on how other
 * connections' traffic interleaves with it.
 */
static inline uint64_t rng_stream(uint64_t seed, uint64_t conn_id, unsigned pipe)
{
    uint64_t s = seed ^ (conn_id * UINT64_C(0xD1342543DE82EF95)) ^ ((uint64_t)pipe << 62);
    return rng_next(&s);
}

#endif
