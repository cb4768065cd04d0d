/* metrics: counters, gauges and histograms in a fixed-size registry, rendered as Prometheus text.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct steno__metric {
    steno__metric_type type;
    const char *name; /* shared by the series of one family */
    const char *help; /* never NULL */
    size_t n_labels;
    steno__label labels[STENO__METRIC_MAX_LABELS]; /* copies in the string arena */
    const double *bounds;                          /* histogram: n_bounds finite bounds */
    size_t n_bounds;
    _Atomic uint64_t *buckets; /* histogram: n_bounds + 1 (last is +Inf), not cumulative */
    _Atomic uint64_t value;    /* counter value, or gauge / histogram sum as double bits */
};

struct steno__metrics {
    steno_allocator alloc;
    steno__metrics_config cfg;
    steno__metric *slots;
    _Atomic size_t count; /* published slots: release on register, acquire on render */
    double *bounds;
    _Atomic uint64_t *bucket_counts;
    size_t bounds_used; /* bucket_counts used = bounds_used + one +Inf per histogram */
    size_t buckets_used;
    char *strings;
    size_t strings_used;
};

/* ---- doubles in atomics ----------------------------------------------- */

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- creation ----------------------------------------------------------- */

int steno__metrics_create(const steno__metrics_config *cfg, const steno_allocator *a,
                          steno__metrics **out)
{
    if (!cfg || !out || cfg->max_metrics == 0)
        return STENO_ERR_INVALID_ARG;
    *out = NULL;
    steno__metrics *m = steno__calloc(a, 1, sizeof(*m));
    if (!m)
        return STENO_ERR_NOMEM;
    if (a)
        m->alloc = *a;
    m->cfg = *cfg;
    atomic_init(&m->count, 0);
    m->slots = steno__calloc(a, cfg->max_metrics, sizeof(*m->slots));
    /* One +Inf bucket per histogram on top of the bounds: at most one per metric. */
    size_t nb = cfg->max_buckets + cfg->max_metrics;
    if (nb >= cfg->max_buckets) {
        m->bounds = steno__calloc(a, cfg->max_buckets ? cfg->max_buckets : 1, sizeof(double));
        m->bucket_counts = steno__calloc(a, nb, sizeof(*m->bucket_counts));
    }
    m->strings = steno__alloc(a, cfg->string_bytes ? cfg->string_bytes : 1);
    if (!m->slots || !m->bounds || !m->bucket_counts || !m->strings) {
        steno__metrics_destroy(m);
        return STENO_ERR_NOMEM;
    }
    *out = m;
    return STENO_OK;
}

void steno__metrics_destroy(steno__metrics *m)
{
    if (!m)
        return;
    steno_allocator a = m->alloc;
    steno__free(&a, m->slots);
    steno__free(&a, m->bounds);
    steno__free(&a, m->bucket_counts);
    steno__free(&a, m->strings);
    steno__free(&a, m);
}

/* ---- registration ------------------------------------------------------- */

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool valid_metric_name(const char *s)
{
    if (!s || !(is_alpha_(*s) || *s == ':'))
        return false;
    for (s++; *s; s++)
        if (!(is_alpha_(*s) || is_digit(*s) || *s == ':'))
            return false;
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !is_alpha_(*s) || (s[0] == '_' && s[1] == '_') || strcmp(s, "le") == 0)
        return false;
    for (s++; *s; s++)
        if (!(is_alpha_(*s) || is_digit(*s)))
            return false;
    return true;
}

static bool same_labels(const steno__metric *x, const steno__label *labels, size_t n)
{
    if (x->n_labels != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(x->labels[i].name, labels[i].name) != 0 ||
            strcmp(x->labels[i].value, labels[i].value) != 0)
            return false;
    return true;
}

static bool same_bounds(const steno__metric *x, const double *bounds, size_t n)
{
    if (x->n_bounds != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (x->bounds[i] != bounds[i])
            return false;
    return true;
}

static const char *copy_string(steno__metrics *m, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = m->strings + m->strings_used;
    memcpy(p, s, n);
    m->strings_used += n;
    return p;
}

static int do_register(steno__metrics *m, steno__metric_type type, const char *name,
                       const char *help, const steno__label *labels, size_t n_labels,
                       const double *bounds, size_t n_bounds, steno__metric **out)
{
    if (out)
        *out = NULL;
    if (!m || !out || !valid_metric_name(name) || n_labels > STENO__METRIC_MAX_LABELS ||
        (n_labels && !labels))
        return STENO_ERR_INVALID_ARG;
    if (!help)
        help = "";
    for (size_t i = 0; i < n_labels; i++) {
        if (!valid_label_name(labels[i].name) || !labels[i].value)
            return STENO_ERR_INVALID_ARG;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i].name, labels[j].name) == 0)
                return STENO_ERR_INVALID_ARG;
    }
    if (type == STENO__METRIC_HISTOGRAM) {
        if (!bounds)
            return STENO_ERR_INVALID_ARG;
        if (n_bounds && isinf(bounds[n_bounds - 1]) && bounds[n_bounds - 1] > 0)
            n_bounds--; /* an explicit +Inf is implied anyway */
        if (n_bounds == 0)
            return STENO_ERR_INVALID_ARG;
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
                return STENO_ERR_INVALID_ARG;
    }

    /* Only this (registering) thread writes slots, so a relaxed read is enough. */
    size_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
    const steno__metric *family = NULL;
    for (size_t i = 0; i < count; i++) {
        steno__metric *x = &m->slots[i];
        if (strcmp(x->name, name) != 0)
            continue;
        if (x->type != type || strcmp(x->help, help) != 0)
            return STENO_ERR_INVALID_ARG;
        if (same_labels(x, labels, n_labels)) {
            if (type == STENO__METRIC_HISTOGRAM && !same_bounds(x, bounds, n_bounds))
                return STENO_ERR_INVALID_ARG;
            *out = x;
            return STENO_OK;
        }
        family = x;
    }

    /* Check every limit before taking anything, so a failure leaves no trace. */
    size_t need = 0;
    if (!family)
        need += strlen(name) + 1 + strlen(help) + 1;
    for (size_t i = 0; i < n_labels; i++)
        need += strlen(labels[i].name) + 1 + strlen(labels[i].value) + 1;
    if (count >= m->cfg.max_metrics || need > m->cfg.string_bytes - m->strings_used ||
        (type == STENO__METRIC_HISTOGRAM && n_bounds > m->cfg.max_buckets - m->bounds_used))
        return STENO_ERR_TOO_LARGE;

    steno__metric *x = &m->slots[count];
    memset(x, 0, sizeof(*x));
    x->type = type;
    if (family) {
        x->name = family->name;
        x->help = family->help;
    } else {
        x->name = copy_string(m, name);
        x->help = copy_string(m, help);
    }
    x->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++) {
        x->labels[i].name = copy_string(m, labels[i].name);
        x->labels[i].value = copy_string(m, labels[i].value);
    }
    atomic_init(&x->value, type == STENO__METRIC_COUNTER ? 0 : d2u(0.0));
    if (type == STENO__METRIC_HISTOGRAM) {
        double *b = m->bounds + m->bounds_used;
        memcpy(b, bounds, n_bounds * sizeof(*b));
        x->bounds = b;
        x->n_bounds = n_bounds;
        x->buckets = m->bucket_counts + m->buckets_used;
        for (size_t i = 0; i <= n_bounds; i++)
            atomic_init(&x->buckets[i], 0);
        m->bounds_used += n_bounds;
        m->buckets_used += n_bounds + 1;
    }
    /* Publish: a renderer that sees the new count sees the whole slot. */
    atomic_store_explicit(&m->count, count + 1, memory_order_release);
    *out = x;
    return STENO_OK;
}

int steno__metrics_counter(steno__metrics *m, const char *name, const char *help,
                           const steno__label *labels, size_t n_labels, steno__metric **out)
{
    return do_register(m, STENO__METRIC_COUNTER, name, help, labels, n_labels, NULL, 0, out);
}

int steno__metrics_gauge(steno__metrics *m, const char *name, const char *help,
                         const steno__label *labels, size_t n_labels, steno__metric **out)
{
    return do_register(m, STENO__METRIC_GAUGE, name, help, labels, n_labels, NULL, 0, out);
}

int steno__metrics_histogram(steno__metrics *m, const char *name, const char *help,
                             const steno__label *labels, size_t n_labels, const double *bounds,
                             size_t n_bounds, steno__metric **out)
{
    return do_register(m, STENO__METRIC_HISTOGRAM, name, help, labels, n_labels, bounds, n_bounds,
                       out);
}

/* ---- updates and reads -------------------------------------------------- */

void steno__counter_add(steno__metric *c, uint64_t n)
{
    if (c && c->type == STENO__METRIC_COUNTER)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void steno__counter_inc(steno__metric *c)
{
    steno__counter_add(c, 1);
}

void steno__gauge_set(steno__metric *g, double v)
{
    if (g && g->type == STENO__METRIC_GAUGE)
        atomic_store_explicit(&g->value, d2u(v), memory_order_relaxed);
}

void steno__gauge_add(steno__metric *g, double delta)
{
    if (g && g->type == STENO__METRIC_GAUGE)
        atomic_add_double(&g->value, delta);
}

void steno__histogram_observe(steno__metric *h, double v)
{
    if (!h || h->type != STENO__METRIC_HISTOGRAM || isnan(v))
        return;
    /* First bound >= v ("le" is inclusive); binary search over the bounds. */
    size_t lo = 0, hi = h->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->value, v);
}

uint64_t steno__counter_value(const steno__metric *c)
{
    if (!c || c->type != STENO__METRIC_COUNTER)
        return 0;
    return atomic_load_explicit((_Atomic uint64_t *)&c->value, memory_order_relaxed);
}

double steno__gauge_value(const steno__metric *g)
{
    if (!g || g->type != STENO__METRIC_GAUGE)
        return 0;
    return u2d(atomic_load_explicit((_Atomic uint64_t *)&g->value, memory_order_relaxed));
}

uint64_t steno__histogram_count(const steno__metric *h)
{
    if (!h || h->type != STENO__METRIC_HISTOGRAM)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i <= h->n_bounds; i++)
        n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

double steno__histogram_sum(const steno__metric *h)
{
    if (!h || h->type != STENO__METRIC_HISTOGRAM)
        return 0;
    return u2d(atomic_load_explicit((_Atomic uint64_t *)&h->value, memory_order_relaxed));
}

/* ---- rendering ---------------------------------------------------------- */

/* Appends to buf while it fits and counts every byte regardless, so one pass
 * yields both the (possibly truncated) text and the size it needs. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
};

static void put_n(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put(struct out *o, const char *s)
{
    put_n(o, s, strlen(s));
}

/* Label values escape backslash, quote and newline; HELP escapes backslash and newline. */
static void put_escaped(struct out *o, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(o, "\\\\");
        else if (*s == '\n')
            put(o, "\\n");
        else if (quote && *s == '"')
            put(o, "\\\"");
        else
            put_n(o, s, 1);
    }
}

/*
 * The shortest text that reads back as the same double, without an
 * exponent for ordinary magnitudes (1000 not 1e+03), as Prometheus clients
 * print them.
 */
static void format_double(double v, char *s, size_t n)
{
    if (isnan(v)) {
        snprintf(s, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(s, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int p = 1;
    for (; p < 17; p++) {
        snprintf(s, n, "%.*e", p - 1, v);
        if (strtod(s, NULL) == v)
            break;
    }
    snprintf(s, n, "%.*e", p - 1, v);
    const char *e = strchr(s, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp >= -4 && exp < 15) {
        int decimals = p - 1 - exp;
        snprintf(s, n, "%.*f", decimals > 0 ? decimals : 0, v);
    } else {
        snprintf(s, n, "%.*g", p, v);
    }
}

static void put_double(struct out *o, double v)
{
    char s[40];
    format_double(v, s, sizeof(s));
    put(o, s);
}

static void put_u64(struct out *o, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRIu64, v);
    put(o, s);
}

/* {a="x",b="y"} plus an optional le="..."; nothing when there are no labels. */
static void put_labels(struct out *o, const steno__metric *x, const char *le)
{
    if (x->n_labels == 0 && !le)
        return;
    put(o, "{");
    for (size_t i = 0; i < x->n_labels; i++) {
        if (i)
            put(o, ",");
        put(o, x->labels[i].name);
        put(o, "=\"");
        put_escaped(o, x->labels[i].value, true);
        put(o, "\"");
    }
    if (le) {
        if (x->n_labels)
            put(o, ",");
        put(o, "le=\"");
        put(o, le);
        put(o, "\"");
    }
    put(o, "}");
}

static void put_series(struct out *o, const steno__metric *x)
{
    switch (x->type) {
    case STENO__METRIC_COUNTER:
        put(o, x->name);
        put_labels(o, x, NULL);
        put(o, " ");
        put_u64(o, steno__counter_value(x));
        put(o, "\n");
        break;
    case STENO__METRIC_GAUGE:
        put(o, x->name);
        put_labels(o, x, NULL);
        put(o, " ");
        put_double(o, steno__gauge_value(x));
        put(o, "\n");
        break;
    case STENO__METRIC_HISTOGRAM: {
        /* Read each bucket once; _count is the +Inf total of those reads so
         * the two always agree. */
        uint64_t cumulative = 0;
        char le[40];
        for (size_t i = 0; i <= x->n_bounds; i++) {
            cumulative += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
            if (i < x->n_bounds)
                format_double(x->bounds[i], le, sizeof(le));
            else
                snprintf(le, sizeof(le), "+Inf");
            put(o, x->name);
            put(o, "_bucket");
            put_labels(o, x, le);
            put(o, " ");
            put_u64(o, cumulative);
            put(o, "\n");
        }
        put(o, x->name);
        put(o, "_sum");
        put_labels(o, x, NULL);
        put(o, " ");
        put_double(o, steno__histogram_sum(x));
        put(o, "\n");
        put(o, x->name);
        put(o, "_count");
        put_labels(o, x, NULL);
        put(o, " ");
        put_u64(o, cumulative);
        put(o, "\n");
        break;
    }
    }
}

static const char *type_name(steno__metric_type t)
{
    switch (t) {
    case STENO__METRIC_COUNTER:
        return "counter";
    case STENO__METRIC_GAUGE:
        return "gauge";
    case STENO__METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

int steno__metrics_render(const steno__metrics *m, char *buf, size_t cap, size_t *len)
{
    if (len)
        *len = 0;
    if (!m || (!buf && cap))
        return STENO_ERR_INVALID_ARG;
    struct out o = {buf, cap, 0};
    size_t count = atomic_load_explicit(&((steno__metrics *)m)->count, memory_order_acquire);
    for (size_t i = 0; i < count; i++) {
        const steno__metric *x = &m->slots[i];
        /* A family is rendered in full where its first series appears. */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = m->slots[j].name == x->name;
        if (seen)
            continue;
        if (*x->help) {
            put(&o, "# HELP ");
            put(&o, x->name);
            put(&o, " ");
            put_escaped(&o, x->help, false);
            put(&o, "\n");
        }
        put(&o, "# TYPE ");
        put(&o, x->name);
        put(&o, " ");
        put(&o, type_name(x->type));
        put(&o, "\n");
        for (size_t j = i; j < count; j++)
            if (m->slots[j].name == x->name)
                put_series(&o, &m->slots[j]);
    }
    if (len)
        *len = o.len;
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len < cap ? STENO_OK : STENO_ERR_TOO_LARGE;
}
