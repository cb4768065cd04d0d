/* sessions: the SDK set-up the integration tests share — clients, session configurations, one
 * streamed session from open to close, metrics. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h_session_defaults(steno_session_config *sc, char *url, size_t url_len, int port,
                        h_collector *col)
{
    steno_session_config_init(sc);
    snprintf(url, url_len, "ws://127.0.0.1:%d/v1/listen", port);
    sc->url = url;
    sc->allow_no_auth = 1;
    sc->sample_rate = 16000;
    sc->channels = 1;
    sc->chunk_ms = 100;
    sc->ping_interval_ms = 250;
    sc->dead_after_ms = 1500;
    sc->connect_timeout_ms = 3000;
    sc->healthy_after_ms = 300;
    sc->retry.base_ms = 100;
    sc->retry.cap_ms = 1000;
    sc->close_timeout_ms = 20000;
    if (col) {
        sc->on_event = h_on_event;
        sc->user = col;
    }
}

double h_fast_send(steno_session_config *sc, double speed)
{
    /* the local server accepts any rate unless started with --max-rate */
    sc->send_speed_permille = (uint32_t)(speed * 1000.0 + 0.5);
    return speed;
}

steno_client *h_client_open(steno_client_config *cc)
{
    steno_client_config local;
    if (!cc) {
        steno_client_config_init(&local);
        cc = &local;
    }
    cc->log_fn = h_sdk_log;
    cc->log_level = STENO_LOG_WARN;
    const char *lv = getenv("RES_LOG");
    if (lv && strcmp(lv, "info") == 0)
        cc->log_level = STENO_LOG_INFO;
    else if (lv && strcmp(lv, "debug") == 0)
        cc->log_level = STENO_LOG_DEBUG;
    steno_client *c = NULL;
    char err[256] = "";
    steno_status rc = steno_client_open(cc, &c, err, sizeof err);
    H_CHECK(rc == STENO_OK && c, "steno_client_open: %s: %s", steno_status_name(rc), err);
    return c;
}

double h_metric(steno_client *c, const char *name, const char *label)
{
    /* The text can grow between the sizing call and the real one (values
     * change while sessions run), so size with headroom and retry. */
    size_t need = 0;
    char *buf = NULL;
    steno_status mrc = steno_client_metrics_text(c, NULL, 0, &need);
    for (int tries = 0; mrc == STENO_ERR_TOO_LARGE && tries < 8; tries++) {
        free(buf);
        size_t cap = need + 1 + 4096;
        buf = malloc(cap);
        H_CHECK(buf, "out of memory");
        mrc = steno_client_metrics_text(c, buf, cap, &need);
    }
    H_CHECK(mrc == STENO_OK && buf, "metrics text: %s", steno_status_name(mrc));
    double v = NAN;
    size_t nl = strlen(name);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '#' || strncmp(l, name, nl) != 0 || (l[nl] != ' ' && l[nl] != '{'))
            continue;
        char *eol = strchr(l, '\n');
        if (eol)
            *eol = '\0';
        bool match = !label || strstr(l, label);
        char *sp = strrchr(l, ' ');
        if (match && sp) {
            v = strtod(sp + 1, NULL);
            break;
        }
        if (eol)
            *eol = '\n';
    }
    free(buf);
    return v;
}

void h_run_init(h_run *r, const char *name, int port)
{
    memset(r, 0, sizeof *r);
    h_collector_init(&r->col, name);
    h_session_defaults(&r->sc, r->url, sizeof r->url, port, &r->col);
}

void h_run_open(h_run *r, steno_client *cl)
{
    char err[256] = "";
    steno_status rc = steno_session_open(cl, &r->sc, &r->s, err, sizeof err);
    H_CHECK(rc == STENO_OK, "%s: open: %s %s", r->col.name, steno_status_name(rc), err);
}

void h_run_stream(h_run *r, const int16_t *pcm, size_t frames, double speed)
{
    h_producer_start(&r->prod, r->s, pcm, frames, r->sc.sample_rate, r->sc.sample_rate / 50, speed);
}

void h_run_close(h_run *r, uint32_t timeout_ms)
{
    steno_status rc = steno_session_close(r->s, timeout_ms);
    H_CHECK(rc == STENO_OK, "%s: close: %s", r->col.name, steno_status_name(rc));
}

void h_run_check_accounting(h_run *r, const int16_t *pcm, uint64_t written, const cJSON *records,
                            h_accounting *out)
{
    char err[512];
    uint32_t chunk_frames = r->sc.sample_rate * r->sc.chunk_ms / 1000u;
    H_CHECK(h_check_accounting(&r->col, pcm, written, r->sc.sample_rate, chunk_frames, records, out,
                               err, sizeof err),
            "%s: accounting: %s", r->col.name, err);
}

void h_run_free(h_run *r)
{
    h_producer_join(&r->prod);
    if (r->s)
        steno_session_destroy(r->s);
    r->s = NULL;
    h_collector_free(&r->col);
}
