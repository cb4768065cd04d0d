/* metrics: counters, gauges and histograms in a fixed-size registry, rendered as Prometheus text.
 */
#ifndef STENO_CORE_METRICS_H
#define STENO_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "steno/alloc.h"
#include "steno/status.h"

/*
 * Threads: values are C11 atomics updated with relaxed ordering, so the
 * network thread may update while any other thread renders (TSan-clean).
 * Registration must come from one thread at a time (the client's network
 * thread, or setup code before it starts); a metric is published to renderers
 * with release/acquire once fully built, so registering while another thread
 * renders is also safe. A render is not an atomic snapshot: a histogram's
 * _sum may lag its buckets by an in-flight observation; its _count always
 * equals its +Inf bucket.
 *
 * Memory: everything (metric slots, bucket arrays, copies of names, help
 * and labels) is allocated at creation; registration never allocates, and
 * fails with STENO_ERR_TOO_LARGE when a limit is reached. Keep labels
 * low-cardinality (endpoint, failure class), never per-session.
 */

typedef enum steno__metric_type {
    STENO__METRIC_COUNTER = 0, /* monotonically increasing unsigned integer */
    STENO__METRIC_GAUGE,       /* a double that goes up and down */
    STENO__METRIC_HISTOGRAM,   /* observations in fixed buckets, with sum and count */
} steno__metric_type;

/* Labels per series, at most. */
#define STENO__METRIC_MAX_LABELS 8

typedef struct steno__label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not "le" */
    const char *value; /* any UTF-8; escaped on output */
} steno__label;

typedef struct steno__metrics_config {
    size_t max_metrics;  /* series (name + label set) the registry can hold */
    size_t max_buckets;  /* histogram bucket bounds across all histograms */
    size_t string_bytes; /* bytes for copies of names, help texts, label names/values */
} steno__metrics_config;

typedef struct steno__metrics steno__metrics;
typedef struct steno__metric steno__metric;

/* STENO_ERR_INVALID_ARG for NULL cfg/out or max_metrics 0; STENO_ERR_NOMEM. a may be NULL. */
int steno__metrics_create(const steno__metrics_config *cfg, const steno_allocator *a,
                          steno__metrics **out);
void steno__metrics_destroy(steno__metrics *m);

/*
 * Register a series. name [a-zA-Z_:][a-zA-Z0-9_:]*; help may be NULL (empty);
 * labels may be NULL when n_labels is 0; n_labels <= STENO__METRIC_MAX_LABELS. Registering the same
 * name and label set (same order) again returns the existing series (its type must match). Several
 * series may share a name (a family) if type and help agree; they are rendered together under one #
 * HELP / # TYPE.
 *
 * Returns STENO_OK and *out; STENO_ERR_INVALID_ARG for bad names/labels, a
 * type or help mismatch within a family, or invalid bounds; STENO_ERR_TOO_LARGE
 * when max_metrics, max_buckets or string_bytes would be exceeded.
 */
int steno__metrics_counter(steno__metrics *m, const char *name, const char *help,
                           const steno__label *labels, size_t n_labels, steno__metric **out);
int steno__metrics_gauge(steno__metrics *m, const char *name, const char *help,
                         const steno__label *labels, size_t n_labels, steno__metric **out);
/*
 * bounds: the upper bounds ("le") of the buckets, finite and strictly
 * increasing, n_bounds >= 1; a trailing +Inf is implied (and accepted and
 * dropped if given). The bounds are copied.
 */
int steno__metrics_histogram(steno__metrics *m, const char *name, const char *help,
                             const steno__label *labels, size_t n_labels, const double *bounds,
                             size_t n_bounds, steno__metric **out);

/*
 * Updates: lock-free, any thread. A NULL metric (e.g. metrics disabled or
 * registration failed) or a metric of another type makes them no-ops.
 */
void steno__counter_add(steno__metric *c, uint64_t n);
void steno__counter_inc(steno__metric *c);
void steno__gauge_set(steno__metric *g, double v);
void steno__gauge_add(steno__metric *g, double delta);
/* v lands in the first bucket with v <= bound (else +Inf); NaN is ignored. */
void steno__histogram_observe(steno__metric *h, double v);

/* Reads (relaxed). 0 for NULL or a metric of another type. */
uint64_t steno__counter_value(const steno__metric *c);
double steno__gauge_value(const steno__metric *g);
uint64_t steno__histogram_count(const steno__metric *h);
double steno__histogram_sum(const steno__metric *h);

/*
 * Write the Prometheus text exposition (format 0.0.4) of every registered
 * series into buf (cap bytes), NUL-terminated. *len (may be NULL) gets the
 * full text's length without the NUL. Returns STENO_OK, or
 * STENO_ERR_TOO_LARGE when cap < *len + 1 (buf then holds a NUL-terminated
 * prefix if cap > 0): retry with a buffer of at least *len + 1 bytes (plus
 * slack, since concurrent updates can lengthen the text). buf may be NULL
 * when cap is 0, to ask for the size. STENO_ERR_INVALID_ARG for NULL m.
 */
int steno__metrics_render(const steno__metrics *m, char *buf, size_t cap, size_t *len);

#endif /* STENO_CORE_METRICS_H */
