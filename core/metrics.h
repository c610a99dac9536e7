/*
 * metrics — this process's counters, gauges and histograms, for /metrics in
 * the Prometheus text format 0.0.4.
 *
 * A family has a name (Prometheus conventions: base units, `_total` for
 * counters, `_seconds` for durations), a help line and up to MET_MAX_LABELS
 * label names. A series is one combination of label values, created on first
 * use and kept for the life of the process (at most MET_MAX_SERIES per
 * family: label values must come from small sets — states, backends, model
 * names — never ids). Updating a series is a few atomic operations, no lock:
 * hot paths cache the series (met_with once, met_add many times); finding a
 * series by its values scans the family's list without a lock.
 *
 * Registration is idempotent: asking twice for the same name returns the
 * same family (a different kind or label set is a programming error,
 * logged, and gets NULL). Every function accepts NULL families and series
 * and then does nothing, so instrumented code never checks. Thread-safe.
 */
#ifndef ORCH_CORE_METRICS_H
#define ORCH_CORE_METRICS_H

#include <stddef.h>

#include "core/buf.h"

#define MET_MAX_LABELS 4
#define MET_MAX_SERIES 500

typedef struct met_family met_family;
typedef struct met_series met_series;

/* A counter (only goes up), a gauge (any value), a histogram with the
 * given upper bounds (ascending; NULL: met_seconds_buckets). `labels` is a
 * comma-separated list of label names, or NULL for none. Borrowed result,
 * valid for the life of the process. */
met_family *met_counter(const char *name, const char *help, const char *labels);
met_family *met_gauge(const char *name, const char *help, const char *labels);
met_family *met_histogram(const char *name, const char *help, const char *labels,
			  const double *buckets, size_t nbuckets);

/* Bounds for durations from 1 ms to 60 s. */
extern const double met_seconds_buckets[];
extern const size_t met_seconds_nbuckets;

/* The series of `f` with these label values, one `const char *` per label
 * name, in order (a NULL value counts as ""). Created on first use;
 * NULL when the family already has MET_MAX_SERIES series (the update is
 * then dropped and counted in orch_metrics_dropped_total). Borrowed. */
met_series *met_with(met_family *f, ...);

/* Monotonic seconds, for durations: met_observe(s, met_now() - t0). */
double met_now(void);

/* Counter and gauge: adds v (a counter ignores v < 0). */
void met_add(met_series *s, double v);
/* Gauge: sets the value. */
void met_set(met_series *s, double v);
/* Histogram: counts one observation. */
void met_observe(met_series *s, double v);

/* A function run at the start of every rendering, to set gauges whose value
 * is cheap to read then (a queue length in memory). It must not block. */
typedef void (*met_collect_fn)(void *udata);
void met_collector(met_collect_fn fn, void *udata);
/* Removes a collector registered with the same fn and udata (when its
 * object is freed). */
void met_collector_remove(met_collect_fn fn, void *udata);

/* Appends every family in the text format 0.0.4 to `out`. ERR_NOMEM or
 * ERR_TOOBIG when `out` cannot hold it. */
int met_render(buf *out);

#endif
