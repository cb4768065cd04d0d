/* session_api: the application's side of a session: configuration checks, open, write,
 * commands to the network thread, stats and destroy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backfill.h"
#include "engine.h"
#include "errmsg.h"

/* ---- defaults (see session.h for the reasoning) ---- */
#define D_PROVIDER "deepgram"
#define D_SAMPLE_RATE 16000u
#define D_CHANNELS 1u
#define D_CHUNK_MS 100u
#define D_RING_CHUNKS 200u
#define D_RETRY_BASE_MS 250u
#define D_RETRY_CAP_MS 1000u
#define D_RETRY_MULT 2.0
#define D_MAX_OUTAGE_MS 120000u
#define D_KEEPALIVE_MS 3000u
#define D_PING_MS 1000u
#define D_PONG_TIMEOUT_MS 1500u
#define D_DEAD_AFTER_MS 5000u
#define D_CONNECT_TIMEOUT_MS 5000u
#define D_CLOSE_TIMEOUT_MS 5000u
#define D_HEALTHY_AFTER_MS 2000u
#define D_EVENT_QUEUE_MAX 4096u
#define D_FAILOVER_AFTER_MS 10000u
#define D_FAILBACK_AFTER_MS 60000u
#define D_BACKFILL 1u
#define D_AUTO_FINALIZE_MS 1500u
#define RETRY_AFTER_CAP_MS 60000u
#define MAX_MESSAGE_BYTES (4u << 20)

static const char *state_names[] = {"IDLE",    "CONNECTING", "STREAMING", "RECONNECTING",
                                    "CLOSING", "CLOSED",     "FAILED"};

const char *steno_session_state_name(steno_session_state st)
{
    if ((int)st < 0 || (size_t)st >= sizeof state_names / sizeof state_names[0])
        return "UNKNOWN";
    return state_names[st];
}

void steno_session_config_init(steno_session_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->provider = D_PROVIDER;
    cfg->encoding = STENO_ENCODING_LINEAR16;
    cfg->sample_rate = D_SAMPLE_RATE;
    cfg->channels = D_CHANNELS;
    cfg->chunk_ms = D_CHUNK_MS;
    cfg->ring_chunks = D_RING_CHUNKS;
    cfg->retry.base_ms = D_RETRY_BASE_MS;
    cfg->retry.cap_ms = D_RETRY_CAP_MS;
    cfg->retry.multiplier = D_RETRY_MULT;
    cfg->retry.max_attempts = 0;
    cfg->retry.max_outage_ms = D_MAX_OUTAGE_MS;
    cfg->keepalive_ms = D_KEEPALIVE_MS;
    cfg->ping_interval_ms = D_PING_MS;
    cfg->pong_timeout_ms = D_PONG_TIMEOUT_MS;
    cfg->max_backfill_connections = D_BACKFILL;
    cfg->auto_finalize_ms = D_AUTO_FINALIZE_MS;
    cfg->dead_after_ms = D_DEAD_AFTER_MS;
    cfg->connect_timeout_ms = D_CONNECT_TIMEOUT_MS;
    cfg->close_timeout_ms = D_CLOSE_TIMEOUT_MS;
    cfg->healthy_after_ms = D_HEALTHY_AFTER_MS;
    cfg->event_queue_max = D_EVENT_QUEUE_MAX;
    cfg->failover_after_ms = D_FAILOVER_AFTER_MS;
    cfg->failback_after_ms = D_FAILBACK_AFTER_MS;
}

/* ---- public API (application threads) ---- */

#define errf(err, errlen, rc, ...) ((steno_status)steno__errf_rc(err, errlen, rc, __VA_ARGS__))

static char *dupstr(const steno_allocator *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = steno__alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

#define RANGE(field, lo, hi, name)                                                                 \
    do {                                                                                           \
        if ((field) < (lo) || (field) > (hi))                                                      \
            return errf(err, errlen, STENO_ERR_CONFIG,                                             \
                        "session config: %s = %lu is out of range (%lu..%lu)", name,               \
                        (unsigned long)(field), (unsigned long)(lo), (unsigned long)(hi));         \
    } while (0)

/* Fills zeros with defaults and checks every field. */
static steno_status check_config(steno_session_config *cfg, const steno__provider **prov, char *err,
                                 size_t errlen)
{
    if (!cfg->provider || !*cfg->provider)
        cfg->provider = D_PROVIDER;
    *prov = steno__provider_find(cfg->provider);
    if (!*prov)
        return errf(err, errlen, STENO_ERR_CONFIG,
                    "session config: unknown provider '%s' (known: %s)", cfg->provider,
                    steno__provider_names());
    if (cfg->encoding == STENO_ENCODING_DEFAULT)
        cfg->encoding = STENO_ENCODING_LINEAR16;
    if (cfg->encoding != STENO_ENCODING_LINEAR16)
        return errf(err, errlen, STENO_ERR_FORMAT,
                    "session config: encoding %d is not supported (use STENO_ENCODING_LINEAR16)",
                    (int)cfg->encoding);
#define DEF(f, v)                                                                                  \
    if (!cfg->f)                                                                                   \
    cfg->f = (v)
    DEF(sample_rate, D_SAMPLE_RATE);
    DEF(channels, D_CHANNELS);
    DEF(chunk_ms, D_CHUNK_MS);
    DEF(ring_chunks, D_RING_CHUNKS);
    DEF(retry.base_ms, D_RETRY_BASE_MS);
    DEF(retry.cap_ms, D_RETRY_CAP_MS);
    DEF(retry.multiplier, D_RETRY_MULT);
    DEF(retry.max_outage_ms, D_MAX_OUTAGE_MS);
    DEF(keepalive_ms, D_KEEPALIVE_MS);
    DEF(ping_interval_ms, D_PING_MS);
    DEF(pong_timeout_ms, D_PONG_TIMEOUT_MS);
    DEF(max_backfill_connections, D_BACKFILL);
    DEF(auto_finalize_ms, D_AUTO_FINALIZE_MS);
    DEF(dead_after_ms, D_DEAD_AFTER_MS);
    DEF(connect_timeout_ms, D_CONNECT_TIMEOUT_MS);
    DEF(close_timeout_ms, D_CLOSE_TIMEOUT_MS);
    DEF(healthy_after_ms, D_HEALTHY_AFTER_MS);
    DEF(event_queue_max, D_EVENT_QUEUE_MAX);
#undef DEF
    RANGE(cfg->sample_rate, 8000u, 192000u, "sample_rate");
    RANGE(cfg->channels, 1u, 8u, "channels");
    RANGE(cfg->chunk_ms, 10u, 1000u, "chunk_ms");
    if (((*prov)->min_chunk_ms && cfg->chunk_ms < (*prov)->min_chunk_ms) ||
        ((*prov)->max_chunk_ms && cfg->chunk_ms > (*prov)->max_chunk_ms))
        return errf(err, errlen, STENO_ERR_CONFIG,
                    "session config: chunk_ms = %u is outside %s's audio frame limit (%u..%u ms "
                    "per frame)",
                    cfg->chunk_ms, (*prov)->name, (*prov)->min_chunk_ms,
                    (*prov)->max_chunk_ms ? (*prov)->max_chunk_ms : 1000u);
    RANGE(cfg->ring_chunks, 2u, 100000u, "ring_chunks");
    RANGE(cfg->retry.base_ms, 1u, 3600000u, "retry.base_ms");
    RANGE(cfg->retry.cap_ms, 1u, 3600000u, "retry.cap_ms");
    RANGE(cfg->keepalive_ms, 100u, 3600000u, "keepalive_ms");
    RANGE(cfg->ping_interval_ms, 100u, 3600000u, "ping_interval_ms");
    RANGE(cfg->pong_timeout_ms, 100u, 3600000u, "pong_timeout_ms");
    if (cfg->max_backfill_connections != STENO_BACKFILL_OFF)
        RANGE(cfg->max_backfill_connections, 1u, 16u, "max_backfill_connections");
    if (cfg->auto_finalize_ms != STENO_AUTO_FINALIZE_OFF)
        RANGE(cfg->auto_finalize_ms, 100u, 3600000u, "auto_finalize_ms");
    RANGE(cfg->dead_after_ms, 100u, 3600000u, "dead_after_ms");
    RANGE(cfg->connect_timeout_ms, 100u, 3600000u, "connect_timeout_ms");
    RANGE(cfg->close_timeout_ms, 100u, 3600000u, "close_timeout_ms");
    RANGE(cfg->healthy_after_ms, 1u, 3600000u, "healthy_after_ms");
    RANGE(cfg->event_queue_max, 16u, 10000000u, "event_queue_max");
    if (cfg->n_failover) {
        RANGE(cfg->failover_after_ms, 100u, 86400000u, "failover_after_ms");
        if (cfg->failback_after_ms)
            RANGE(cfg->failback_after_ms, 1000u, 86400000u, "failback_after_ms");
    }
    if (cfg->send_speed_permille) /* 0: the provider's pacing */
        RANGE(cfg->send_speed_permille, 100u, 100000u, "send_speed_permille");
    if (cfg->send_burst_ms)
        RANGE(cfg->send_burst_ms, 1u, 600000u, "send_burst_ms");
    if (cfg->retry.cap_ms < cfg->retry.base_ms)
        return errf(err, errlen, STENO_ERR_CONFIG,
                    "session config: retry.cap_ms (%u) is below retry.base_ms (%u)",
                    cfg->retry.cap_ms, cfg->retry.base_ms);
    if (!isfinite(cfg->retry.multiplier) || cfg->retry.multiplier < 1.0 ||
        cfg->retry.multiplier > 100.0)
        return errf(err, errlen, STENO_ERR_CONFIG,
                    "session config: retry.multiplier %g is out of range (1.0..100.0)",
                    cfg->retry.multiplier);
    if (!cfg->token_cb && !(cfg->api_key && *cfg->api_key) && !cfg->allow_no_auth)
        return errf(err, errlen, STENO_ERR_CONFIG,
                    "session config: no credential: set api_key (or STENO_API_KEY / "
                    "DEEPGRAM_API_KEY) or token_cb; for a local endpoint without "
                    "authentication set allow_no_auth = 1");
    if (cfg->api_key && strpbrk(cfg->api_key, "\r\n"))
        return errf(err, errlen, STENO_ERR_CONFIG, "session config: api_key contains a line break");
    if (cfg->n_options && !cfg->options)
        return errf(err, errlen, STENO_ERR_INVALID_ARG,
                    "session config: n_options is %zu but options is NULL", cfg->n_options);
    for (size_t i = 0; i < cfg->n_options; i++)
        if (!cfg->options[i].key || !cfg->options[i].value)
            return errf(err, errlen, STENO_ERR_CONFIG,
                        "session config: options[%zu] has a NULL key or value", i);
    return STENO_OK;
}

void steno__session_free(steno_session *s)
{
    const steno_allocator *a = s->a;
    steno__events_free_all(s);
    steno__backfill_destroy(s);
    steno__targets_free(s);
    if (s->pconn)
        s->prov->conn_free(a, s->pconn);
    if (s->psess)
        s->prov->session_free(a, s->psess);
    steno__free(a, s->bounds);
    steno__ring_destroy(s->ring);
    steno__timeline_destroy(s->tl);
    steno__free(a, s->scratch);
    steno__free(a, s->url_str);
    steno__free_secret(a, s->api_key);
    steno__free_secret(a, s->cred);
    steno__opts_free(a, &s->app_opts);
    steno__opts_free(a, &s->pending_opts);
    steno__opts_free(a, &s->opts);
    steno__url_free(a, &s->url);
    steno__sb_free(&s->rx);
    steno__sb_free(&s->tx);
    steno__sb_free(&s->cfg_tx);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    steno__free(a, s);
}

steno_status steno_session_open(steno_client *c, const steno_session_config *in,
                                steno_session **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return errf(err, errlen, STENO_ERR_INVALID_ARG, "steno_session_open: out is NULL");
    *out = NULL;
    if (!c || !in)
        return errf(err, errlen, STENO_ERR_INVALID_ARG,
                    "steno_session_open: client and config are required");
    steno_session_config cfg = *in;
    const steno__provider *prov = NULL;
    steno_status rc = check_config(&cfg, &prov, err, errlen);
    if (rc)
        return rc;
    const steno_allocator *a = &c->alloc;
    uint64_t chunk_frames = (uint64_t)cfg.sample_rate * cfg.chunk_ms / 1000u;
    if (chunk_frames == 0)
        return errf(err, errlen, STENO_ERR_CONFIG, "session config: chunk_ms is too short");

    steno_session *s = steno__calloc(a, 1, sizeof *s);
    if (!s)
        return errf(err, errlen, STENO_ERR_NOMEM, "out of memory allocating the session");
    s->c = c;
    s->a = a;
    s->prov = s->app_prov = prov;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    steno__sb_init(&s->rx, a);
    s->rx.max = MAX_MESSAGE_BYTES;
    steno__sb_init(&s->tx, a);
    s->tx.max = MAX_MESSAGE_BYTES;
    steno__sb_init(&s->cfg_tx, a);
    s->cfg_tx.max = MAX_MESSAGE_BYTES;

    s->url_str = dupstr(a, cfg.url && *cfg.url ? cfg.url : prov->default_url);
    s->api_key = dupstr(a, cfg.api_key && *cfg.api_key ? cfg.api_key : NULL);
    if (!s->url_str || (cfg.api_key && *cfg.api_key && !s->api_key)) {
        rc = errf(err, errlen, STENO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (prov->session_new && !(s->psess = prov->session_new(a))) {
        rc = errf(err, errlen, STENO_ERR_NOMEM, "out of memory for the provider's session state");
        goto fail;
    }
    rc = steno__opts_copy(a, cfg.options, cfg.n_options, &s->opts);
    if (rc) {
        rc = errf(err, errlen, rc, "could not copy the options: %s", steno_strerror(rc));
        goto fail;
    }
    for (size_t i = 0; i < s->opts.n; i++) {
        char e2[700];
        rc = prov->check_option(s->opts.v[i].key, s->opts.v[i].value, e2, sizeof e2);
        if (rc) {
            errf(err, errlen, rc, "session config: %s", e2);
            goto fail;
        }
    }
    {
        char e2[700];
        rc = prov->check_set(&s->opts, e2, sizeof e2);
        if (rc) {
            errf(err, errlen, rc, "session config: %s", e2);
            goto fail;
        }
    }
    rc = steno__opts_dup(a, &s->opts, &s->app_opts);
    if (rc) {
        errf(err, errlen, rc, "out of memory");
        goto fail;
    }
    s->ap.encoding = cfg.encoding;
    s->ap.sample_rate = cfg.sample_rate;
    s->ap.channels = cfg.channels;
    rc = steno__session_rebuild_url(s, err, errlen);
    if (rc)
        goto fail;
    rc = steno__targets_open(s, &cfg, err, errlen);
    if (rc)
        goto fail;

    s->chunk_frames = (uint32_t)chunk_frames;
    s->frame_bytes = 2u * cfg.channels;
    s->chunk_bytes = s->chunk_frames * s->frame_bytes;
    rc = steno__ring_create(&s->ring, a, cfg.ring_chunks, s->chunk_frames, s->frame_bytes);
    if (rc == STENO_OK)
        rc = steno__timeline_create(&s->tl, a, cfg.sample_rate, cfg.ring_chunks + 2);
    if (rc) {
        errf(err, errlen, rc, "could not allocate the audio ring (%u chunks of %u bytes): %s",
             cfg.ring_chunks, s->chunk_bytes, steno_strerror(rc));
        goto fail;
    }
    /* A provider that frames audio as text (base64 in JSON, perhaps resampled up to 3x, as
     * 8 kHz to OpenAI's 24 kHz) needs room for 4/3 of three times the chunk, plus the JSON. */
    bool text_frames = prov->frame_audio != NULL;
    for (uint32_t k = 1; k < s->n_targets; k++)
        text_frames |= s->targets[k].prov->frame_audio != NULL;
    size_t frame_cap = text_frames ? (size_t)s->chunk_bytes * 4 + 1024 : s->chunk_bytes;
    s->scratch_cap = LWS_PRE + (frame_cap > 4096 ? frame_cap : 4096);
    s->scratch = steno__alloc(a, s->scratch_cap);
    if (!s->scratch) {
        rc = errf(err, errlen, STENO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    steno__backoff_config bc;
    steno__backoff_config_default(&bc);
    bc.base_ms = cfg.retry.base_ms;
    bc.cap_ms = cfg.retry.cap_ms;
    bc.multiplier = cfg.retry.multiplier;
    bc.max_attempts = cfg.retry.max_attempts;
    bc.max_outage_ms = cfg.retry.max_outage_ms == UINT32_MAX ? 0 : cfg.retry.max_outage_ms;
    bc.retry_after_cap_ms = RETRY_AFTER_CAP_MS;
    rc = steno__backoff_init(&s->bo, &bc, steno__client_rand, c);
    if (rc) {
        errf(err, errlen, STENO_ERR_CONFIG, "session config: invalid retry policy");
        rc = STENO_ERR_CONFIG;
        goto fail;
    }
    steno__pacing_config pc;
    steno__pacing_config_default(&pc, cfg.sample_rate);
    pc.speed_permille = cfg.send_speed_permille ? cfg.send_speed_permille : prov->speed_permille;
    pc.burst_ms = cfg.send_burst_ms ? cfg.send_burst_ms : prov->burst_ms;
    rc = steno__pacing_init(&s->pacing, &pc, steno__now_ms());
    if (rc) {
        errf(err, errlen, STENO_ERR_INTERNAL, "pacing set-up failed");
        goto fail;
    }

    /* Recovery: the planner's thresholds follow the session's settings. */
    {
        steno__planner_config plc;
        steno__planner_config_default(&plc, cfg.sample_rate, s->chunk_frames);
        plc.max_backfill =
            cfg.max_backfill_connections == STENO_BACKFILL_OFF ? 0 : cfg.max_backfill_connections;
        plc.finalize_frames = cfg.auto_finalize_ms == STENO_AUTO_FINALIZE_OFF
                                  ? 0
                                  : (uint64_t)cfg.auto_finalize_ms * cfg.sample_rate / 1000u;
        /* the seam may move back no further than the live connection's burst sends at once */
        uint64_t burst = (uint64_t)s->pacing.cfg.burst_ms * cfg.sample_rate / 1000u;
        if (plc.seam_search_frames > burst * 3 / 4)
            plc.seam_search_frames = burst * 3 / 4;
        steno__planner_init(&s->plan, &plc);
    }
    s->bounds = steno__calloc(a, (size_t)cfg.ring_chunks + 2, sizeof *s->bounds);
    if (!s->bounds) {
        rc = errf(err, errlen, STENO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s->link.s = s;
    s->link.bf = NULL;
    s->cfg = cfg; /* backfill slots read it */
    rc = steno__backfill_create(s, s->plan.cfg.max_backfill);
    if (rc) {
        errf(err, errlen, rc, "could not allocate the backfill connections: %s",
             steno_strerror(rc));
        goto fail;
    }

    cfg.provider = prov->name;
    cfg.url = s->url_str;
    cfg.api_key = s->api_key;
    cfg.options = NULL;
    cfg.n_options = 0;
    cfg.failover = NULL; /* s->targets holds our copies */
    s->cfg = cfg;
    s->queue_on = !cfg.on_event || cfg.event_queue;
    s->queue_max = cfg.event_queue_max;
    atomic_store(&s->state, STENO_STATE_IDLE);
    atomic_store(&s->st.last_error, STENO_OK);
    atomic_store(&s->st.last_rx_mono_ms, UINT64_MAX);

    pthread_mutex_lock(&c->lock);
    rc = (steno_status)steno__wakeset_take(&c->wakes, &s->wake_slot);
    if (rc != STENO_OK) {
        pthread_mutex_unlock(&c->lock);
        errf(err, errlen, rc, "steno_session_open: %s",
             rc == STENO_ERR_FULL ? "too many sessions on one client (1,048,576)"
                                  : "out of memory for the session's wake slot");
        goto fail;
    }
    s->wake_word = steno__wakeset_word(&c->wakes, s->wake_slot, &s->wake_mask);
    s->serial = ++c->last_serial;
    s->inc_next = c->incoming;
    c->incoming = s;
    s->all_next = c->all;
    c->all = s;
    pthread_mutex_unlock(&c->lock);
    steno__client_wake(c);
    *out = s;
    return STENO_OK;

fail:
    if (err && errlen && !err[0])
        errf(err, errlen, rc, "steno_session_open: %s", steno_strerror(rc));
    steno__session_free(s);
    return rc;
}

steno_status steno_session_write(steno_session *s, const int16_t *pcm, size_t frames)
{
    if (!s || (!pcm && frames))
        return STENO_ERR_INVALID_ARG;
    /* After close or a FAILED end nothing is taken: the caller learns at
     * once that its audio goes nowhere (two atomic loads, still wait-free). */
    steno_session_state st = steno__get_state(s);
    if (atomic_load_explicit(&s->closing, memory_order_acquire) || st == STENO_STATE_CLOSED ||
        st == STENO_STATE_FAILED)
        return STENO_ERR_STATE;
    if (frames == 0)
        return STENO_OK;
    if (frames > SIZE_MAX / s->frame_bytes)
        return STENO_ERR_INVALID_ARG;
    int rc = steno__ring_write(s->ring, pcm, frames * s->frame_bytes);
    uint64_t fill = (uint64_t)s->prod_fill + frames;
    s->prod_fill = (uint32_t)(fill % s->chunk_frames);
    if (fill >= s->chunk_frames)
        steno__client_wake_session(s); /* a chunk was published (or dropped) */
    return (steno_status)rc;
}

static void app_err_clear(steno_session *s)
{
    s->app_err[0] = '\0';
}

static bool ended(const steno_session *s)
{
    steno_session_state st = steno__get_state(s);
    return st == STENO_STATE_CLOSED || st == STENO_STATE_FAILED;
}

steno_status steno_session_configure(steno_session *s, const steno_option *opts, size_t n)
{
    if (!s || (n && !opts))
        return STENO_ERR_INVALID_ARG;
    app_err_clear(s);
    if (atomic_load(&s->closing) || ended(s)) {
        snprintf(s->app_err, sizeof s->app_err, "configure: the session is closing or has ended");
        return STENO_ERR_STATE;
    }
    for (size_t i = 0; i < n; i++) {
        if (!opts[i].key) {
            snprintf(s->app_err, sizeof s->app_err, "configure: opts[%zu].key is NULL", i);
            return STENO_ERR_INVALID_ARG;
        }
        char e2[700];
        int rc = s->app_prov->check_option(opts[i].key, opts[i].value, e2, sizeof e2);
        if (rc) {
            snprintf(s->app_err, sizeof s->app_err, "configure: %s", e2);
            return (steno_status)rc;
        }
    }
    steno__opts next, copy;
    int rc = steno__opts_apply(s->a, &s->app_opts, opts, n, &next);
    if (rc) {
        snprintf(s->app_err, sizeof s->app_err, "configure: %s", steno_strerror(rc));
        return (steno_status)rc;
    }
    char e2[700];
    /* the preferred endpoint's provider and URL: the network thread may be using another */
    rc = s->app_prov->check_set(&next, e2, sizeof e2);
    if (rc == STENO_OK) {
        steno__sb b;
        steno__sb_init(&b, s->a);
        rc = s->app_prov->build_url(s->cfg.url, &s->ap, &next, &b);
        steno__sb_free(&b);
        if (rc)
            snprintf(e2, sizeof e2, "the request URL cannot be built: %s", steno_strerror(rc));
    }
    if (rc == STENO_OK)
        rc = steno__opts_dup(s->a, &next, &copy);
    if (rc) {
        snprintf(s->app_err, sizeof s->app_err, "configure: %s", e2);
        steno__opts_free(s->a, &next);
        return (steno_status)rc;
    }
    pthread_mutex_lock(&s->lock);
    steno__opts_free(s->a, &s->pending_opts);
    s->pending_opts = copy;
    s->pending_valid = true;
    pthread_mutex_unlock(&s->lock);
    steno__opts_free(s->a, &s->app_opts);
    s->app_opts = next;
    atomic_fetch_or_explicit(&s->cmds, STENO__CMD_CONFIGURE, memory_order_acq_rel);
    steno__client_wake_session(s);
    return STENO_OK;
}

steno_status steno_session_set_option(steno_session *s, const char *key, const char *value)
{
    steno_option o = {key, value};
    if (!key)
        return STENO_ERR_INVALID_ARG;
    return steno_session_configure(s, &o, 1);
}

steno_status steno_session_finalize(steno_session *s)
{
    if (!s)
        return STENO_ERR_INVALID_ARG;
    app_err_clear(s);
    if (atomic_load(&s->closing) || ended(s)) {
        snprintf(s->app_err, sizeof s->app_err, "finalize: the session is closing or has ended");
        return STENO_ERR_STATE;
    }
    int rc = steno__ring_flush(s->ring);
    s->prod_fill = 0;
    atomic_fetch_or_explicit(&s->cmds, STENO__CMD_FINALIZE, memory_order_acq_rel);
    steno__client_wake_session(s);
    return (steno_status)rc;
}

steno_status steno_session_close(steno_session *s, uint32_t timeout_ms)
{
    if (!s)
        return STENO_ERR_INVALID_ARG;
    if (!steno__on_network_thread(s->c))
        app_err_clear(s);
    if (atomic_exchange(&s->closing, 1)) {
        if (!steno__on_network_thread(s->c))
            snprintf(s->app_err, sizeof s->app_err, "close: already requested");
        return STENO_ERR_STATE;
    }
    steno__ring_flush(s->ring); /* a drop here is reported by an AUDIO_DROPPED event */
    s->prod_fill = 0;
    atomic_store(&s->close_timeout_ms, timeout_ms ? timeout_ms : s->cfg.close_timeout_ms);
    atomic_fetch_or_explicit(&s->cmds, STENO__CMD_CLOSE, memory_order_acq_rel);
    steno__client_wake_session(s);
    if (steno__on_network_thread(s->c))
        return STENO_ERR_AGAIN;
    /* The network thread enforces the drain timeout; the margin only guards against a
     * connection attempt that is still in its own connect timeout. */
    uint64_t wait_ms = (uint64_t)(timeout_ms ? timeout_ms : s->cfg.close_timeout_ms) +
                       s->cfg.connect_timeout_ms + 2000u;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(wait_ms / 1000u);
    dl.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    int w = 0;
    while (!s->terminal_emitted && w == 0)
        w = pthread_cond_timedwait(&s->cond, &s->lock, &dl);
    steno_status rc = s->terminal_emitted ? s->terminal_status : STENO_ERR_TIMEOUT;
    pthread_mutex_unlock(&s->lock);
    if (rc != STENO_OK)
        snprintf(s->app_err, sizeof s->app_err, "close: %s", steno_strerror(rc));
    return rc;
}

steno_session_state steno_session_state_get(steno_session *s)
{
    return s ? steno__get_state(s) : STENO_STATE_CLOSED;
}

#define LD(f) atomic_load_explicit(&s->st.f, memory_order_relaxed)

steno_status steno_session_stats_get(steno_session *s, steno_session_stats *o)
{
    if (!s || !o)
        return STENO_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    steno__ring_stats rs;
    steno__ring_stats_get(s->ring, &rs);
    o->state = steno__get_state(s);
    o->samples_written = rs.frames_in;
    o->samples_sent = LD(samples_sent);
    o->samples_acked = rs.frames_acked;
    o->samples_dropped = rs.frames_dropped;
    o->samples_evicted = rs.frames_evicted;
    o->chunks_sent = LD(chunks_sent);
    o->chunks_replayed = LD(chunks_replayed);
    o->chunks_acked = rs.chunks_acked;
    uint64_t gone = rs.chunks_acked + rs.chunks_evicted;
    o->chunks_buffered = rs.chunks_published > gone ? rs.chunks_published - gone : 0;
    o->bytes_sent = LD(bytes_sent);
    o->bytes_received = LD(bytes_received);
    o->messages_received = LD(messages_received);
    o->transcripts_final = LD(finals);
    o->transcripts_interim = LD(interims);
    o->finals_suppressed = LD(finals_suppressed);
    o->parse_errors = LD(parse_errors);
    o->keepalives_sent = LD(keepalives);
    o->pings_sent = LD(pings);
    o->events_discarded = LD(events_discarded);
    o->attempts = LD(attempts);
    o->connects = LD(connects);
    o->reconnects = LD(reconnects);
    o->dead_connections = LD(dead);
    o->configures = LD(configures);
    o->backfills = LD(backfills);
    o->chunks_backfilled = LD(chunks_backfilled);
    o->finals_backfilled = LD(finals_backfilled);
    o->auto_finalizes = LD(auto_finalizes);
    uint64_t live_end = LD(live_sent_end);
    o->live_lag_samples = rs.frames_in > live_end ? rs.frames_in - live_end : 0;
    uint64_t last = LD(last_rx_mono_ms);
    uint64_t now = steno__now_ms();
    o->last_message_ms = last == UINT64_MAX ? UINT64_MAX : (now > last ? now - last : 0);
    o->last_downtime_ms = LD(last_downtime_ms);
    o->last_error = (steno_status)LD(last_error);
    return STENO_OK;
}

const char *steno_session_errmsg(steno_session *s)
{
    if (!s)
        return "";
    if (!s->app_err[0] && steno__get_state(s) == STENO_STATE_FAILED) {
        pthread_mutex_lock(&s->lock);
        snprintf(s->app_err, sizeof s->app_err, "%s", s->fail_msg);
        pthread_mutex_unlock(&s->lock);
    }
    return s->app_err;
}

void steno_session_destroy(steno_session *s)
{
    if (!s)
        return;
    steno_client *c = s->c;
    if (steno__on_network_thread(c)) {
        steno__log(c, STENO_LOG_ERROR,
                   "steno_session_destroy called from an event callback: ignored (leaks)");
        return;
    }
    atomic_store(&s->closing, 1);
    atomic_fetch_or_explicit(&s->cmds, STENO__CMD_DESTROY, memory_order_acq_rel);
    steno__client_wake_session(s);
    pthread_mutex_lock(&s->lock);
    while (!s->detached)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&c->lock);
    for (steno_session **pp = &c->all; *pp; pp = &(*pp)->all_next) {
        if (*pp == s) {
            *pp = s->all_next;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    steno__session_free(s);
}

steno_status steno_session_metrics_text(steno_session *s, const char *labels, char *buf, size_t len,
                                        size_t *needed)
{
    if (!s || (!buf && len))
        return STENO_ERR_INVALID_ARG;
    steno_session_stats st;
    steno_session_stats_get(s, &st);
    steno__sb b;
    steno__sb_init(&b, s->a);
    b.max = (size_t)1 << 20;
    const char *lb = labels && *labels ? labels : NULL;
    struct {
        const char *name, *type, *help;
        double v;
    } m[] = {
        {"state", "gauge",
         "0 idle, 1 connecting, 2 streaming, 3 reconnecting, 4 closing, 5 closed, 6 failed",
         (double)st.state},
        {"samples_written_total", "counter", "Sample frames written", (double)st.samples_written},
        {"samples_sent_total", "counter", "Sample frames sent, replays included",
         (double)st.samples_sent},
        {"samples_acked_total", "counter", "Sample frames covered by finals",
         (double)st.samples_acked},
        {"samples_dropped_total", "counter", "Sample frames written into a full ring",
         (double)st.samples_dropped},
        {"samples_evicted_total", "counter", "Sample frames evicted during outages",
         (double)st.samples_evicted},
        {"chunks_sent_total", "counter", "Chunks sent", (double)st.chunks_sent},
        {"chunks_replayed_total", "counter", "Chunks re-sent after reconnects",
         (double)st.chunks_replayed},
        {"chunks_buffered", "gauge", "Chunks held for replay", (double)st.chunks_buffered},
        {"bytes_sent_total", "counter", "Payload bytes sent", (double)st.bytes_sent},
        {"bytes_received_total", "counter", "Payload bytes received", (double)st.bytes_received},
        {"transcripts_final_total", "counter", "Finals emitted", (double)st.transcripts_final},
        {"transcripts_interim_total", "counter", "Interims emitted",
         (double)st.transcripts_interim},
        {"finals_suppressed_total", "counter", "Finals about already-finalized audio",
         (double)st.finals_suppressed},
        {"parse_errors_total", "counter", "Unparseable server messages", (double)st.parse_errors},
        {"connect_attempts_total", "counter", "Connection attempts", (double)st.attempts},
        {"reconnects_total", "counter", "Successful reconnects", (double)st.reconnects},
        {"dead_connections_total", "counter", "Connections found dead",
         (double)st.dead_connections},
        {"last_downtime_seconds", "gauge", "Duration of the last outage",
         (double)st.last_downtime_ms / 1000.0},
        {"last_message_age_seconds", "gauge", "Since the last frame received (-1: none)",
         st.last_message_ms == UINT64_MAX ? -1.0 : (double)st.last_message_ms / 1000.0},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        steno__sb_printf(&b, "# HELP steno_session_%s %s\n# TYPE steno_session_%s %s\n", m[i].name,
                         m[i].help, m[i].name, m[i].type);
        steno__sb_printf(&b, "steno_session_%s%s%s%s %.15g\n", m[i].name, lb ? "{" : "",
                         lb ? lb : "", lb ? "}" : "", m[i].v);
    }
    steno_status rc = (steno_status)steno__sb_status(&b);
    if (rc == STENO_OK) {
        if (needed)
            *needed = b.len;
        if (b.len + 1 > len) {
            if (len)
                buf[0] = '\0';
            rc = STENO_ERR_TOO_LARGE;
        } else {
            memcpy(buf, steno__sb_cstr(&b), b.len + 1);
        }
    }
    steno__sb_free(&b);
    return rc;
}
