/* json: typed field access and the start/failure paths shared by the adapters' parsers. */
#include "json.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "steno/status.h"

int steno__json_opt_bool(const cJSON *o, const char *name, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!j || cJSON_IsNull(j))
        return 0;
    return steno__json_req_bool(o, name, out);
}

int steno__json_req_bool(const cJSON *o, const char *name, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsBool(j))
        return -1;
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return 0;
}

int steno__json_opt_num(const cJSON *o, const char *name, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!j || cJSON_IsNull(j))
        return 0;
    return steno__json_req_num(o, name, out);
}

int steno__json_req_num(const cJSON *o, const char *name, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return -1;
    *out = j->valuedouble;
    return 0;
}

int steno__json_opt_str(const cJSON *o, const char *name, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsString(j) || !j->valuestring)
        return -1;
    *out = j->valuestring;
    return 0;
}

int steno__msg_begin(const steno_allocator *a, const char *text, size_t len, steno__msg *m,
                     cJSON **root)
{
    memset(m, 0, sizeof *m);
    m->a_ = a;
    if (!text)
        return STENO_ERR_INVALID_ARG;
    cJSON *r = cJSON_ParseWithLength(text, len);
    if (!r)
        return STENO_ERR_PARSE; /* malformed, too deep (cJSON's nesting limit), or no memory */
    m->root_ = r;
    if (!cJSON_IsObject(r))
        return steno__msg_fail(m, STENO_ERR_PARSE);
    *root = r;
    return STENO_OK;
}

int steno__msg_keep_raw(const steno_allocator *a, const char *text, size_t len, steno__msg *m)
{
    m->raw_ = steno__alloc(a, len + 1);
    if (!m->raw_)
        return STENO_ERR_NOMEM;
    memcpy(m->raw_, text, len);
    m->raw_[len] = '\0';
    m->raw = m->raw_;
    return STENO_OK;
}

int steno__msg_fail(steno__msg *m, int rc)
{
    steno__msg_release(m);
    m->type = STENO__MSG_IGNORED;
    return rc;
}
