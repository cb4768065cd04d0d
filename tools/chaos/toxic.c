/* toxic: what one fault-injection rule is, and how it is read from JSON or key=value text. */
#include "toxic.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    [TOXIC_LATENCY] = "latency", [TOXIC_BANDWIDTH] = "bandwidth", [TOXIC_RESET] = "reset",
    [TOXIC_CLOSE] = "close",     [TOXIC_BLACKHOLE] = "blackhole",
};

const char *steno__toxic_type_name(enum toxic_type type)
{
    return type_names[type];
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A JSON number that is a whole number in [min, max]. */
static int get_int(const cJSON *item, int64_t min, int64_t max, int64_t *out, char *err,
                   size_t errlen)
{
    if (!cJSON_IsNumber(item))
        return fail(err, errlen, "'%s' must be a number", item->string);
    double v = item->valuedouble;
    if (v != floor(v) || v < (double)min || v > (double)max)
        return fail(err, errlen, "'%s' must be a whole number in [%lld, %lld]", item->string,
                    (long long)min, (long long)max);
    *out = (int64_t)v;
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= TOXIC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return false;
    }
    return true;
}

/* Which keys each type accepts besides name, type, direction and connection. */
static bool key_allowed(enum toxic_type type, const char *key)
{
    switch (type) {
    case TOXIC_LATENCY:
        return !strcmp(key, "latency_ms") || !strcmp(key, "jitter_ms");
    case TOXIC_BANDWIDTH:
        return !strcmp(key, "bytes_per_s");
    case TOXIC_RESET:
    case TOXIC_CLOSE:
        return !strcmp(key, "after_bytes") || !strcmp(key, "after_ms");
    case TOXIC_BLACKHOLE:
        return !strcmp(key, "mode");
    }
    return false;
}

int steno__toxic_from_json(const cJSON *obj, struct toxic *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->dir = TOXIC_DIR_BOTH;
    t->after_bytes = -1;
    t->after_ms = -1;
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, "toxic must be a JSON object");

    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!type)
        return fail(err, errlen, "missing 'type' (latency, bandwidth, reset, close, blackhole)");
    if (!cJSON_IsString(type))
        return fail(err, errlen, "'type' must be a string");
    bool known = false;
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (!strcmp(type->valuestring, type_names[i])) {
            t->type = (enum toxic_type)i;
            known = true;
        }
    }
    if (!known)
        return fail(err, errlen,
                    "unknown toxic type '%.40s' (latency, bandwidth, reset, close, blackhole)",
                    type->valuestring);

    bool have_latency = false, have_rate = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        const char *k = item->string;
        int64_t v;
        if (!strcmp(k, "type"))
            continue;
        if (!strcmp(k, "name")) {
            if (!cJSON_IsString(item) || !valid_name(item->valuestring))
                return fail(err, errlen, "'name' must be 1-%d characters of [A-Za-z0-9_.-]",
                            TOXIC_NAME_MAX - 1);
            snprintf(t->name, sizeof(t->name), "%s", item->valuestring);
        } else if (!strcmp(k, "direction")) {
            const char *d = cJSON_IsString(item) ? item->valuestring : "";
            if (!strcmp(d, "upstream"))
                t->dir = TOXIC_DIR_UP;
            else if (!strcmp(d, "downstream"))
                t->dir = TOXIC_DIR_DOWN;
            else if (!strcmp(d, "both"))
                t->dir = TOXIC_DIR_BOTH;
            else
                return fail(err, errlen, "'direction' must be upstream, downstream or both");
        } else if (!strcmp(k, "connection")) {
            if (get_int(item, 1, INT64_C(1) << 53, &v, err, errlen))
                return -1;
            t->conn_id = (uint64_t)v;
        } else if (!key_allowed(t->type, k)) {
            return fail(err, errlen, "unknown key '%.40s' for a %s toxic", k, type_names[t->type]);
        } else if (!strcmp(k, "latency_ms")) {
            if (get_int(item, 0, TOXIC_MAX_MS, &t->latency_ms, err, errlen))
                return -1;
            have_latency = true;
        } else if (!strcmp(k, "jitter_ms")) {
            if (get_int(item, 0, TOXIC_MAX_MS, &t->jitter_ms, err, errlen))
                return -1;
        } else if (!strcmp(k, "bytes_per_s")) {
            if (get_int(item, 1, INT64_C(1) << 40, &t->bytes_per_s, err, errlen))
                return -1;
            have_rate = true;
        } else if (!strcmp(k, "after_bytes")) {
            if (get_int(item, 0, INT64_C(1) << 53, &t->after_bytes, err, errlen))
                return -1;
        } else if (!strcmp(k, "after_ms")) {
            if (get_int(item, 0, TOXIC_MAX_MS, &t->after_ms, err, errlen))
                return -1;
        } else if (!strcmp(k, "mode")) {
            const char *m = cJSON_IsString(item) ? item->valuestring : "";
            if (!strcmp(m, "discard"))
                t->discard = true;
            else if (strcmp(m, "stall"))
                return fail(err, errlen, "'mode' must be stall or discard");
        }
    }
    if (t->type == TOXIC_LATENCY && !have_latency)
        return fail(err, errlen, "a latency toxic needs 'latency_ms'");
    if (t->type == TOXIC_BANDWIDTH && !have_rate)
        return fail(err, errlen, "a bandwidth toxic needs 'bytes_per_s'");
    return 0;
}

cJSON *steno__toxic_kv_to_json(const char *spec, char *err, size_t errlen)
{
    cJSON *obj = cJSON_CreateObject();
    char *copy = strdup(spec);
    if (!obj || !copy) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    char *save = NULL;
    for (char *pair = strtok_r(copy, ",", &save); pair; pair = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq || eq == pair) {
            snprintf(err, errlen, "expected key=value, got '%.40s'", pair);
            goto bad;
        }
        *eq = '\0';
        const char *val = eq + 1;
        if (cJSON_GetObjectItemCaseSensitive(obj, pair)) {
            snprintf(err, errlen, "key '%.40s' given twice", pair);
            goto bad;
        }
        bool digits = *val != '\0';
        for (const char *c = val; *c; c++)
            digits = digits && isdigit((unsigned char)*c);
        cJSON *v = digits ? cJSON_CreateNumber(strtod(val, NULL)) : cJSON_CreateString(val);
        if (!v || !cJSON_AddItemToObject(obj, pair, v)) {
            cJSON_Delete(v);
            snprintf(err, errlen, "out of memory");
            goto bad;
        }
    }
    free(copy);
    return obj;
bad:
    free(copy);
    cJSON_Delete(obj);
    return NULL;
}

cJSON *steno__toxic_to_json(const struct toxic *t)
{
    static const char *const dirs[] = {"", "upstream", "downstream", "both"};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "type", type_names[t->type]);
    cJSON_AddStringToObject(o, "direction", dirs[t->dir]);
    if (t->conn_id)
        cJSON_AddNumberToObject(o, "connection", (double)t->conn_id);
    else
        cJSON_AddNullToObject(o, "connection");
    switch (t->type) {
    case TOXIC_LATENCY:
        cJSON_AddNumberToObject(o, "latency_ms", (double)t->latency_ms);
        cJSON_AddNumberToObject(o, "jitter_ms", (double)t->jitter_ms);
        break;
    case TOXIC_BANDWIDTH:
        cJSON_AddNumberToObject(o, "bytes_per_s", (double)t->bytes_per_s);
        break;
    case TOXIC_RESET:
    case TOXIC_CLOSE:
        if (t->after_bytes >= 0)
            cJSON_AddNumberToObject(o, "after_bytes", (double)t->after_bytes);
        if (t->after_ms >= 0)
            cJSON_AddNumberToObject(o, "after_ms", (double)t->after_ms);
        break;
    case TOXIC_BLACKHOLE:
        cJSON_AddStringToObject(o, "mode", t->discard ? "discard" : "stall");
        break;
    }
    return o;
}
