/* metrics — counters, gauges, histograms; the Prometheus text format. */
#include "core/metrics.h"

#include "core/err.h"
#include "core/log.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM } kind;

struct met_series {
	char *values[MET_MAX_LABELS];
	_Atomic uint64_t value;  /* a double's bits (counter, gauge, histogram sum) */
	_Atomic uint64_t count;  /* histogram: observations */
	_Atomic uint64_t *buckets; /* histogram: per bound, not cumulative */
	const struct met_family *fam;
	struct met_series *next;
};

struct met_family {
	char name[128];
	char help[256];
	kind k;
	int nlabels;
	char labels[MET_MAX_LABELS][64];
	double *bounds;
	size_t nbounds;
	_Atomic(met_series *) head;
	_Atomic int nseries;
	pthread_mutex_t add_lock; /* creating a series */
	struct met_family *next;
};

typedef struct collector {
	met_collect_fn fn;
	void *udata;
	struct collector *next;
} collector;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* families and collectors */
static met_family *g_families, *g_last;
static collector *g_collectors;
static met_family *g_dropped;

const double met_seconds_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				      0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
const size_t met_seconds_nbuckets = sizeof(met_seconds_buckets) / sizeof(met_seconds_buckets[0]);

static uint64_t to_bits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return u;
}

static double from_bits(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static void add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, to_bits(from_bits(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no ':') */
static int valid_name(const char *s, int label)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || (!label && *s == ':')))
			return 0;
	return 1;
}

static met_family *family(kind k, const char *name, const char *help, const char *labels,
			  const double *bounds, size_t nbounds)
{
	met_family *f = NULL;
	char names[MET_MAX_LABELS][64];
	int n = 0;

	if (!valid_name(name, 0) || strlen(name) >= sizeof(f->name)) {
		log_error("metrics", "invalid metric name '%s'", name ? name : "");
		return NULL;
	}
	while (labels && *labels) {
		size_t len = strcspn(labels, ",");
		if (n == MET_MAX_LABELS || len == 0 || len >= sizeof(names[0])) {
			log_error("metrics", "%s: bad label list", name);
			return NULL;
		}
		memcpy(names[n], labels, len);
		names[n][len] = 0;
		if (!valid_name(names[n], 1)) {
			log_error("metrics", "%s: invalid label name '%s'", name, names[n]);
			return NULL;
		}
		n++;
		labels += len + (labels[len] == ',');
	}
	pthread_mutex_lock(&g_lock);
	for (f = g_families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			break;
	if (f) {
		int same = f->k == k && f->nlabels == n;
		for (int i = 0; same && i < n; i++)
			same = strcmp(f->labels[i], names[i]) == 0;
		pthread_mutex_unlock(&g_lock);
		if (!same)
			log_error("metrics", "%s registered twice with different kinds or labels", name);
		return same ? f : NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f && nbounds) {
		f->bounds = malloc(nbounds * sizeof(double));
		if (!f->bounds) {
			free(f);
			f = NULL;
		}
	}
	if (f) {
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->help, sizeof(f->help), "%s", help ? help : "");
		f->k = k;
		f->nlabels = n;
		memcpy(f->labels, names, sizeof(names));
		if (nbounds)
			memcpy(f->bounds, bounds, nbounds * sizeof(double));
		f->nbounds = nbounds;
		pthread_mutex_init(&f->add_lock, NULL);
		if (g_last)
			g_last->next = f;
		else
			g_families = f;
		g_last = f;
	}
	pthread_mutex_unlock(&g_lock);
	return f;
}

met_family *met_counter(const char *name, const char *help, const char *labels)
{
	return family(K_COUNTER, name, help, labels, NULL, 0);
}

met_family *met_gauge(const char *name, const char *help, const char *labels)
{
	return family(K_GAUGE, name, help, labels, NULL, 0);
}

met_family *met_histogram(const char *name, const char *help, const char *labels,
			  const double *buckets, size_t nbuckets)
{
	if (!buckets) {
		buckets = met_seconds_buckets;
		nbuckets = met_seconds_nbuckets;
	}
	return family(K_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static met_series *find(met_family *f, const char *const *vals)
{
	for (met_series *s = atomic_load_explicit(&f->head, memory_order_acquire); s; s = s->next) {
		int same = 1;
		for (int i = 0; same && i < f->nlabels; i++)
			same = strcmp(s->values[i], vals[i]) == 0;
		if (same)
			return s;
	}
	return NULL;
}

static void series_free(met_series *s, int n)
{
	if (!s)
		return;
	for (int i = 0; i < n; i++)
		free(s->values[i]);
	free((void *)s->buckets);
	free(s);
}

met_series *met_with(met_family *f, ...)
{
	const char *vals[MET_MAX_LABELS];
	met_series *s;
	va_list ap;

	if (!f)
		return NULL;
	va_start(ap, f);
	for (int i = 0; i < f->nlabels; i++) {
		vals[i] = va_arg(ap, const char *);
		if (!vals[i])
			vals[i] = "";
	}
	va_end(ap);
	s = find(f, vals);
	if (s)
		return s;
	pthread_mutex_lock(&f->add_lock);
	s = find(f, vals);
	if (!s && atomic_load(&f->nseries) < MET_MAX_SERIES) {
		int ok = 1;
		s = calloc(1, sizeof(*s));
		if (s && f->k == K_HISTOGRAM) {
			s->buckets = calloc(f->nbounds, sizeof(*s->buckets));
			ok = s->buckets != NULL;
		}
		for (int i = 0; s && ok && i < f->nlabels; i++)
			ok = (s->values[i] = strndup(vals[i], 200)) != NULL;
		if (s && ok) {
			s->fam = f;
			s->next = atomic_load_explicit(&f->head, memory_order_relaxed);
			atomic_store_explicit(&f->head, s, memory_order_release);
			atomic_fetch_add(&f->nseries, 1);
		} else {
			series_free(s, f->nlabels);
			s = NULL;
		}
	}
	pthread_mutex_unlock(&f->add_lock);
	if (!s && f != g_dropped) {
		if (!g_dropped)
			g_dropped = met_counter("orch_metrics_dropped_total",
						"metric updates dropped: a family had too many series",
						NULL);
		met_add(met_with(g_dropped), 1);
	}
	return s;
}

double met_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void met_add(met_series *s, double v)
{
	if (!s || !(v == v) || (s->fam->k == K_COUNTER && v < 0))
		return;
	add_double(&s->value, v);
}

void met_set(met_series *s, double v)
{
	if (s)
		atomic_store_explicit(&s->value, to_bits(v), memory_order_relaxed);
}

void met_observe(met_series *s, double v)
{
	const met_family *f;
	size_t i;

	if (!s || !s->buckets || !(v == v))
		return;
	f = s->fam;
	for (i = 0; i < f->nbounds && v > f->bounds[i]; i++)
		;
	if (i < f->nbounds)
		atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	add_double(&s->value, v);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void met_collector(met_collect_fn fn, void *udata)
{
	collector *c = calloc(1, sizeof(*c));

	if (!c)
		return;
	c->fn = fn;
	c->udata = udata;
	pthread_mutex_lock(&g_lock);
	c->next = g_collectors;
	g_collectors = c;
	pthread_mutex_unlock(&g_lock);
}

void met_collector_remove(met_collect_fn fn, void *udata)
{
	pthread_mutex_lock(&g_lock);
	for (collector **p = &g_collectors; *p; p = &(*p)->next)
		if ((*p)->fn == fn && (*p)->udata == udata) {
			collector *c = *p;
			*p = c->next;
			free(c);
			break;
		}
	pthread_mutex_unlock(&g_lock);
}

/* A value as Prometheus writes it. */
static int put_value(buf *out, double v)
{
	if (isnan(v))
		return buf_puts(out, "NaN");
	if (isinf(v))
		return buf_puts(out, v > 0 ? "+Inf" : "-Inf");
	if (v == floor(v) && fabs(v) < 1e15)
		return buf_printf(out, "%.0f", v);
	return buf_printf(out, "%.17g", v);
}

static int put_escaped(buf *out, const char *s, int quotes)
{
	int rc = 0;

	for (; *s && rc == 0; s++) {
		if (*s == '\\')
			rc = buf_puts(out, "\\\\");
		else if (*s == '\n')
			rc = buf_puts(out, "\\n");
		else if (quotes && *s == '"')
			rc = buf_puts(out, "\\\"");
		else
			rc = buf_putc(out, *s);
	}
	return rc;
}

/* name{l1="v1",...,extra} */
static int put_series(buf *out, const met_family *f, const char *suffix, const met_series *s,
		      const char *le)
{
	int rc = buf_printf(out, "%s%s", f->name, suffix);

	if (rc == 0 && (f->nlabels || le)) {
		rc = buf_putc(out, '{');
		for (int i = 0; rc == 0 && i < f->nlabels; i++) {
			rc = buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
			if (rc == 0)
				rc = put_escaped(out, s->values[i], 1);
			if (rc == 0)
				rc = buf_putc(out, '"');
		}
		if (rc == 0 && le)
			rc = buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
		if (rc == 0)
			rc = buf_putc(out, '}');
	}
	if (rc == 0)
		rc = buf_putc(out, ' ');
	return rc;
}

static int render_family(buf *out, met_family *f)
{
	static const char *const kinds[] = {"counter", "gauge", "histogram"};
	int rc = buf_printf(out, "# HELP %s ", f->name);

	if (rc == 0)
		rc = put_escaped(out, f->help, 0);
	if (rc == 0)
		rc = buf_printf(out, "\n# TYPE %s %s\n", f->name, kinds[f->k]);
	for (met_series *s = atomic_load_explicit(&f->head, memory_order_acquire); rc == 0 && s;
	     s = s->next) {
		if (f->k != K_HISTOGRAM) {
			rc = put_series(out, f, "", s, NULL);
			if (rc == 0)
				rc = put_value(out, from_bits(atomic_load(&s->value)));
			if (rc == 0)
				rc = buf_putc(out, '\n');
			continue;
		}
		uint64_t cum = 0, count = atomic_load(&s->count);
		for (size_t i = 0; rc == 0 && i < f->nbounds; i++) {
			char le[40];
			snprintf(le, sizeof(le), "%.15g", f->bounds[i]);
			cum += atomic_load(&s->buckets[i]);
			/* an observation counted between the loads: never above count */
			rc = put_series(out, f, "_bucket", s, le);
			if (rc == 0)
				rc = buf_printf(out, "%llu\n", (unsigned long long)(cum < count ? cum : count));
		}
		if (rc == 0)
			rc = put_series(out, f, "_bucket", s, "+Inf");
		if (rc == 0)
			rc = buf_printf(out, "%llu\n", (unsigned long long)(cum > count ? cum : count));
		if (rc == 0)
			rc = put_series(out, f, "_sum", s, NULL);
		if (rc == 0)
			rc = put_value(out, from_bits(atomic_load(&s->value)));
		if (rc == 0)
			rc = buf_putc(out, '\n');
		if (rc == 0)
			rc = put_series(out, f, "_count", s, NULL);
		if (rc == 0)
			rc = buf_printf(out, "%llu\n", (unsigned long long)(cum > count ? cum : count));
	}
	return rc;
}

int met_render(buf *out)
{
	int rc = 0;

	pthread_mutex_lock(&g_lock);
	for (collector *c = g_collectors; c; c = c->next)
		c->fn(c->udata);
	for (met_family *f = g_families; rc == 0 && f; f = f->next)
		rc = render_family(out, f);
	pthread_mutex_unlock(&g_lock);
	return rc;
}
