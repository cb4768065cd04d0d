/* failover: the endpoints a session may use (the preferred one, then its failover list) and
 * the move from one to another. When and why a session moves is session.c's business; this
 * module validates the list at open and swaps what "the endpoint in use" means. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "backfill.h"
#include "engine.h"
#include "errmsg.h"

static char *dupstr(const steno_allocator *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = steno__alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Validates failover[k] as steno_session_open validates the preferred endpoint, and fills t. */
static int open_one(steno_session *s, const steno_session_config *cfg, size_t k, steno__target *t,
                    char *err, size_t errlen)
{
    const steno_allocator *a = s->a;
    const steno_endpoint *e = &cfg->failover[k];
    if (!e->provider || !*e->provider)
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: failover[%zu]: no provider", k);
    t->prov = steno__provider_find(e->provider);
    if (!t->prov)
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: failover[%zu]: unknown provider '%s' (known: %s)", k,
                              e->provider, steno__provider_names());
    if ((t->prov->min_chunk_ms && cfg->chunk_ms < t->prov->min_chunk_ms) ||
        (t->prov->max_chunk_ms && cfg->chunk_ms > t->prov->max_chunk_ms))
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: chunk_ms = %u is outside failover[%zu]'s (%s) frame "
                              "limits (%u..%u ms)",
                              cfg->chunk_ms, k, t->prov->name, t->prov->min_chunk_ms,
                              t->prov->max_chunk_ms ? t->prov->max_chunk_ms : 1000u);
    if (e->n_options && !e->options)
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: failover[%zu]: options is NULL with n_options > 0",
                              k);
    for (size_t i = 0; i < e->n_options; i++)
        if (!e->options[i].key || !e->options[i].value)
            return steno__errf_rc(
                err, errlen, STENO_ERR_CONFIG,
                "session config: failover[%zu].options[%zu] has a NULL key or value", k, i);
    t->url_str = dupstr(a, e->url && *e->url ? e->url : t->prov->default_url);
    t->api_key = e->api_key && *e->api_key ? dupstr(a, e->api_key) : NULL;
    if (!t->url_str || (e->api_key && *e->api_key && !t->api_key))
        return steno__errf_rc(err, errlen, STENO_ERR_NOMEM, "out of memory");
    int rc = steno__opts_copy(a, e->options, e->n_options, &t->opts);
    if (rc)
        return steno__errf_rc(err, errlen, rc, "out of memory");
    char e2[700];
    for (size_t i = 0; i < t->opts.n; i++) {
        rc = t->prov->check_option(t->opts.v[i].key, t->opts.v[i].value, e2, sizeof e2);
        if (rc)
            return steno__errf_rc(err, errlen, rc, "session config: failover[%zu]: %s", k, e2);
    }
    rc = t->prov->check_set(&t->opts, e2, sizeof e2);
    if (rc)
        return steno__errf_rc(err, errlen, rc, "session config: failover[%zu]: %s", k, e2);
    steno__sb b;
    steno__sb_init(&b, a);
    rc = t->prov->build_url(t->url_str, &s->ap, &t->opts, &b);
    if (rc == STENO_OK) {
        steno__url u;
        rc = steno__url_parse(a, steno__sb_cstr(&b), &u, e2, sizeof e2);
        if (rc == STENO_OK)
            steno__url_free(a, &u);
        else
            steno__errf_rc(err, errlen, rc, "session config: failover[%zu]: %s", k, e2);
    } else {
        steno__errf_rc(err, errlen, rc,
                       "session config: failover[%zu]: the request URL cannot be "
                       "built: %s",
                       k, steno_strerror(rc));
    }
    steno__sb_free(&b);
    if (rc)
        return rc;
    if (t->prov->session_new && !(t->psess = t->prov->session_new(a)))
        return steno__errf_rc(err, errlen, STENO_ERR_NOMEM, "out of memory");
    return STENO_OK;
}

int steno__targets_open(steno_session *s, const steno_session_config *cfg, char *err, size_t errlen)
{
    s->n_targets = 1;
    s->cur = 0;
    if (!cfg->n_failover)
        return STENO_OK;
    if (!cfg->failover)
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: failover is NULL with n_failover > 0");
    if (cfg->n_failover > 16)
        return steno__errf_rc(err, errlen, STENO_ERR_CONFIG,
                              "session config: n_failover = %zu is out of range (0..16)",
                              cfg->n_failover);
    s->targets = steno__calloc(s->a, cfg->n_failover + 1, sizeof *s->targets);
    if (!s->targets)
        return steno__errf_rc(err, errlen, STENO_ERR_NOMEM, "out of memory");
    s->n_targets = (uint32_t)cfg->n_failover + 1;
    for (size_t k = 0; k < cfg->n_failover; k++) {
        int rc = open_one(s, cfg, k, &s->targets[k + 1], err, errlen);
        if (rc)
            return rc;
    }
    s->failback_ms = cfg->failback_after_ms;
    return STENO_OK;
}

static void target_free(steno_session *s, steno__target *t)
{
    if (t->psess)
        t->prov->session_free(s->a, t->psess);
    steno__free(s->a, t->url_str);
    steno__free_secret(s->a, t->api_key);
    steno__opts_free(s->a, &t->opts);
    memset(t, 0, sizeof *t);
}

void steno__targets_free(steno_session *s)
{
    for (uint32_t k = 0; k < s->n_targets && s->targets; k++)
        target_free(s, &s->targets[k]); /* the slot in use is empty (its fields moved) */
    steno__free(s->a, s->targets);
    s->targets = NULL;
}

int steno__targets_switch(steno_session *s, uint32_t k)
{
    if (k >= s->n_targets || k == s->cur || s->pconn)
        return STENO_ERR_INTERNAL;
    steno__backfill_drop_all(s); /* their adapter state is the old provider's */
    steno__target *old = &s->targets[s->cur], *t = &s->targets[k];
    old->prov = s->prov;
    old->url_str = s->url_str;
    old->api_key = s->api_key;
    old->opts = s->opts;
    old->psess = s->psess;
    old->ep = s->ep;
    s->prov = t->prov;
    s->url_str = t->url_str;
    s->api_key = t->api_key;
    s->opts = t->opts;
    s->psess = t->psess;
    memset(&t->opts, 0, sizeof t->opts);
    t->url_str = t->api_key = NULL;
    t->psess = NULL;
    s->cur = k;
    char err[256];
    int rc = steno__session_rebuild_url(s, err, sizeof err);
    if (rc)
        return rc; /* validated at open: only out of memory */
    if (old->ep && old->ep->n_sessions)
        old->ep->n_sessions--;
    s->ep = t->ep ? t->ep : steno__client_endpoint(s->c, s->url.endpoint);
    if (!s->ep)
        return STENO_ERR_NOMEM;
    t->ep = s->ep;
    s->ep->n_sessions++;
    /* the new provider's pace, unless the app fixed one */
    steno__pacing_config pc = s->pacing.cfg;
    pc.speed_permille =
        s->cfg.send_speed_permille ? s->cfg.send_speed_permille : s->prov->speed_permille;
    pc.burst_ms = s->cfg.send_burst_ms ? s->cfg.send_burst_ms : s->prov->burst_ms;
    rc = steno__pacing_init(&s->pacing, &pc, steno__now_ms());
    if (rc)
        return rc;
    steno__backfill_restart_all(s);
    return STENO_OK;
}
