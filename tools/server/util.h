/* util: small helpers of steno-server: FNV-1a 64, SHA-256, UUIDs, clocks. */
#ifndef STENO_SERVER_UTIL_H
#define STENO_SERVER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define SRV_FNV1A64_INIT 0xcbf29ce484222325ULL

uint64_t srv_fnv1a64(uint64_t h, const void *data, size_t len);
/* 16 lower-case hex digits and a NUL. */
void srv_hex64(uint64_t v, char out[17]);

typedef struct srv_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} srv_sha256;

void srv_sha256_init(srv_sha256 *s);
void srv_sha256_update(srv_sha256 *s, const void *data, size_t len);
/* 64 lower-case hex digits and a NUL. */
void srv_sha256_final_hex(srv_sha256 *s, char out[65]);

/* A random (version 4) UUID from the caller's generator state. */
void srv_uuid4(uint64_t *rng, char out[37]);
/* A UUID derived from a name, so a model keeps one model_uuid across runs. */
void srv_uuid_from_name(const char *name, char out[37]);
uint64_t srv_rng_next(uint64_t *state);
uint64_t srv_rng_seed(void);

/* Monotonic microseconds (durations) and wall-clock seconds (records). */
int64_t srv_mono_us(void);
double srv_wall_s(void);
/* ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z. */
void srv_iso8601(double wall_s, char out[32]);

#endif
