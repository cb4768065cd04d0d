/* toxic: what one fault-injection rule is, and how it is read from JSON or key=value text. */
#ifndef STENO_CHAOS_TOXIC_H
#define STENO_CHAOS_TOXIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum toxic_type {
    TOXIC_LATENCY,
    TOXIC_BANDWIDTH,
    TOXIC_RESET,
    TOXIC_CLOSE,
    TOXIC_BLACKHOLE,
};

/* Directions as a bit mask over the two pipes of a connection. */
#define TOXIC_DIR_UP 1u   /* client -> upstream */
#define TOXIC_DIR_DOWN 2u /* upstream -> client */
#define TOXIC_DIR_BOTH 3u

#define TOXIC_NAME_MAX 64
#define TOXIC_MAX_MS 3600000 /* one hour: anything longer is a typo */

struct toxic {
    struct toxic *next;
    char name[TOXIC_NAME_MAX];
    enum toxic_type type;
    unsigned dir;     /* TOXIC_DIR_* */
    uint64_t conn_id; /* 0: every current and future connection */
    int64_t latency_ms;
    int64_t jitter_ms;
    int64_t bytes_per_s;
    int64_t after_bytes; /* -1: not set */
    int64_t after_ms;    /* -1: not set */
    bool discard;        /* blackhole: read and drop instead of not reading */
};

/*
 * Fills *t from a JSON object (the body of POST /toxics). Unknown keys, wrong
 * types and out-of-range values are errors: a typo must not silently become a
 * toxic that does nothing. t->name is left empty when the object has no name.
 * Returns 0, or -1 with a message in err.
 */
int steno__toxic_from_json(const cJSON *obj, struct toxic *t, char *err, size_t errlen);

/*
 * Parses the command-line form "type=latency,latency_ms=100,direction=down" into
 * a JSON object with the same keys as the control API (digits become numbers).
 * Returns NULL with a message in err.
 */
cJSON *steno__toxic_kv_to_json(const char *spec, char *err, size_t errlen);

/* The JSON form of a toxic, as listed by GET /toxics. */
cJSON *steno__toxic_to_json(const struct toxic *t);

const char *steno__toxic_type_name(enum toxic_type type);

#endif
