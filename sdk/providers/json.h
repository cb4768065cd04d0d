/* json: the pieces every adapter's parser shares — typed field access that tells "absent" from
 * "wrong", and the start and failure paths of parsing one server message. */
#ifndef STENO_PROVIDERS_JSON_H
#define STENO_PROVIDERS_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "provider.h"

/* Optional fields: absent or null keeps *out and returns 0; present with the wrong type (or a
 * non-finite number) returns -1. */
int steno__json_opt_bool(const cJSON *o, const char *name, int *out);
int steno__json_opt_num(const cJSON *o, const char *name, double *out);
int steno__json_opt_str(const cJSON *o, const char *name, const char **out);
/* Required fields: absent is -1 too. */
int steno__json_req_num(const cJSON *o, const char *name, double *out);
int steno__json_req_bool(const cJSON *o, const char *name, int *out);

/* Starts parsing text into m: clears m, parses, and hands back the root object (owned by m).
 * STENO_OK, STENO_ERR_INVALID_ARG (text NULL) or STENO_ERR_PARSE (malformed, too deep for
 * cJSON, out of memory, or not a JSON object); on error nothing needs releasing. */
int steno__msg_begin(const steno_allocator *a, const char *text, size_t len, steno__msg *m,
                     cJSON **root);
/* Keeps a NUL-terminated copy of the message text in m->raw (METADATA events carry it). */
int steno__msg_keep_raw(const steno_allocator *a, const char *text, size_t len, steno__msg *m);
/* The failure path: releases what m holds, leaves it IGNORED, returns rc. */
int steno__msg_fail(steno__msg *m, int rc);

#endif
