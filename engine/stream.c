#include "engine/stream.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_QUEUE 4096
#define WIRE_VERSION 1

static const struct {
	unsigned bit;
	const char *name;
} MODES[] = {
	{ENG_STREAM_VALUES, "values"},   {ENG_STREAM_UPDATES, "updates"},
	{ENG_STREAM_CUSTOM, "custom"},   {ENG_STREAM_MESSAGES, "messages"},
	{ENG_STREAM_CHECKPOINTS, "checkpoints"}, {ENG_STREAM_TASKS, "tasks"},
	{ENG_STREAM_DEBUG, "debug"},     {ENG_STREAM_RUN, "run"},
	{ENG_STREAM_DROPPED, "dropped"},
};
#define NMODES (sizeof(MODES) / sizeof(MODES[0]))

const char *eng_stream_mode_name(unsigned mode)
{
	for (size_t i = 0; i < NMODES; i++)
		if (MODES[i].bit == mode)
			return MODES[i].name;
	return "";
}

static unsigned mode_of(const char *name, size_t n)
{
	for (size_t i = 0; i < NMODES; i++)
		if (strlen(MODES[i].name) == n && memcmp(MODES[i].name, name, n) == 0)
			return MODES[i].bit;
	return 0;
}

int eng_stream_modes_parse(const char *list, unsigned *out)
{
	unsigned mask = 0;
	const char *p = list ? list : "";

	*out = 0;
	while (*p) {
		size_t n;
		unsigned bit;

		while (*p == ',' || *p == ' ')
			p++;
		n = strcspn(p, ", ");
		if (n == 0)
			break;
		if (n == 3 && memcmp(p, "all", 3) == 0)
			bit = ENG_STREAM_ALL;
		else if (n == 7 && memcmp(p, "default", 7) == 0)
			bit = ENG_STREAM_DEFAULT;
		else
			bit = mode_of(p, n);
		if (!bit)
			return err_set(ERR_INVALID,
				       "unknown stream mode '%.*s' (known: values, updates, custom, "
				       "messages, checkpoints, tasks, debug, run, all, default)",
				       (int)n, p);
		mask |= bit;
		p += n;
	}
	*out = mask ? mask : ENG_STREAM_DEFAULT;
	return 0;
}

/* --- events --- */

static double wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void eng_stream_event_retain(eng_stream_event *ev)
{
	atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
}

void eng_stream_event_release(eng_stream_event *ev)
{
	if (ev && atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) == 1)
		free(ev);
}

json_t *eng_stream_event_data(const eng_stream_event *ev)
{
	json_error_t jerr;
	return json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, &jerr);
}

/* The header of an event, before its payload. */
typedef struct header {
	unsigned mode;
	int64_t thread_id, run_id, seq;
	int step, ck;
	double t_ms;
	const char *key, *node, *ns, *origin;
} header;

/* Appends the wire form's header (everything before the payload) to b. */
static int wire_head(buf *b, const header *h)
{
	int rc = buf_printf(b, "{\"v\":%d,\"mode\":\"%s\",\"thread\":%lld,\"key\":\"", WIRE_VERSION,
			    eng_stream_mode_name(h->mode), (long long)h->thread_id);
	if (rc == 0)
		rc = buf_put_json_str(b, h->key);
	if (rc == 0)
		rc = buf_printf(b, "\",\"run\":%lld,\"seq\":%lld,\"step\":%d,\"ck\":%d,\"node\":\"",
				(long long)h->run_id, (long long)h->seq, h->step, h->ck);
	if (rc == 0)
		rc = buf_put_json_str(b, h->node);
	if (rc == 0)
		rc = buf_puts(b, "\",\"ns\":\"");
	if (rc == 0)
		rc = buf_put_json_str(b, h->ns);
	if (rc == 0)
		rc = buf_printf(b, "\",\"t\":%.3f,\"origin\":\"", h->t_ms);
	if (rc == 0)
		rc = buf_put_json_str(b, h->origin);
	if (rc == 0)
		rc = buf_puts(b, "\",\"data\":");
	return rc;
}

/* Makes an event in one allocation: the struct, its strings and its wire
 * text (`wire`, whose payload starts at data_off and is data_len long). */
static eng_stream_event *event_make(const header *h, const char *wire, size_t wire_len,
				    size_t data_off, size_t data_len)
{
	size_t lk = strlen(h->key) + 1, ln = strlen(h->node) + 1, lns = strlen(h->ns) + 1;
	size_t lo = strlen(h->origin) + 1;
	eng_stream_event *ev = malloc(sizeof(*ev) + lk + ln + lns + lo + wire_len + 1);
	char *p;

	if (!ev)
		return NULL;
	memset(ev, 0, sizeof(*ev));
	p = (char *)(ev + 1);
	ev->mode = h->mode;
	ev->thread_id = h->thread_id;
	ev->run_id = h->run_id;
	ev->seq = h->seq;
	ev->step = h->step;
	ev->checkpoint = h->ck;
	ev->t_ms = h->t_ms;
	memcpy(p, h->key, lk);
	ev->thread_key = p;
	p += lk;
	memcpy(p, h->node, ln);
	ev->node = p;
	p += ln;
	memcpy(p, h->ns, lns);
	ev->ns = p;
	p += lns;
	memcpy(p, h->origin, lo);
	ev->origin = p;
	p += lo;
	memcpy(p, wire, wire_len);
	p[wire_len] = '\0';
	ev->wire = p;
	ev->wire_len = wire_len;
	ev->data = p + data_off;
	ev->data_len = data_len;
	atomic_init(&ev->refs, 1);
	return ev;
}

/* --- the fast header: no printf, one allocation (the common case) --- */

typedef struct fw {
	char *p, *end;
	int ok;
} fw;

static void fw_put(fw *w, const char *s, size_t n)
{
	if (!w->ok || (size_t)(w->end - w->p) < n) {
		w->ok = 0;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

static void fw_str(fw *w, const char *s)
{
	fw_put(w, s, strlen(s));
}

static void fw_int(fw *w, int64_t v)
{
	char tmp[24];
	int n = 0, neg = v < 0;
	uint64_t u = neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		tmp[n++] = '-';
	if (!w->ok || w->end - w->p < n) {
		w->ok = 0;
		return;
	}
	while (n > 0)
		*w->p++ = tmp[--n];
}

/* A string that needs no JSON escaping (else the slow path is taken). */
static void fw_plain(fw *w, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == '"' || *p == '\\' || *p >= 0x80) {
			w->ok = 0;
			return;
		}
	fw_str(w, s);
}

/* The header into out[cap]: its length, or 0 when the slow path is needed. */
static size_t fast_head(const header *h, char *out, size_t cap)
{
	fw w = {out, out + cap, 1};
	int64_t tu = (int64_t)(h->t_ms * 1000.0 + 0.5); /* microseconds */
	char frac[4];

	fw_str(&w, "{\"v\":1,\"mode\":\"");
	fw_str(&w, eng_stream_mode_name(h->mode));
	fw_str(&w, "\",\"thread\":");
	fw_int(&w, h->thread_id);
	fw_str(&w, ",\"key\":\"");
	fw_plain(&w, h->key);
	fw_str(&w, "\",\"run\":");
	fw_int(&w, h->run_id);
	fw_str(&w, ",\"seq\":");
	fw_int(&w, h->seq);
	fw_str(&w, ",\"step\":");
	fw_int(&w, h->step);
	fw_str(&w, ",\"ck\":");
	fw_int(&w, h->ck);
	fw_str(&w, ",\"node\":\"");
	fw_plain(&w, h->node);
	fw_str(&w, "\",\"ns\":\"");
	fw_plain(&w, h->ns);
	fw_str(&w, "\",\"t\":");
	fw_int(&w, tu / 1000);
	frac[0] = '.';
	frac[1] = (char)('0' + (tu % 1000) / 100);
	frac[2] = (char)('0' + (tu % 100) / 10);
	frac[3] = (char)('0' + tu % 10);
	fw_put(&w, frac, 4);
	fw_str(&w, ",\"origin\":\"");
	fw_plain(&w, h->origin);
	fw_str(&w, "\",\"data\":");
	return w.ok ? (size_t)(w.p - out) : 0;
}

/* Builds an event from its header and payload text. */
static eng_stream_event *event_build(const header *h, const char *data, size_t len)
{
	eng_stream_event *ev = NULL;
	char head[768];
	size_t off, hl;
	buf b;

	if (!data || len == 0) {
		data = "{}";
		len = 2;
	}
	hl = fast_head(h, head, sizeof(head));
	if (hl) {
		/* one allocation: the header and the payload go straight into it */
		size_t lk = strlen(h->key) + 1, ln = strlen(h->node) + 1, lns = strlen(h->ns) + 1;
		size_t lo = strlen(h->origin) + 1, wl = hl + len + 1;
		char *p;

		ev = malloc(sizeof(*ev) + lk + ln + lns + lo + wl + 1);
		if (!ev)
			return NULL;
		memset(ev, 0, sizeof(*ev));
		ev->mode = h->mode;
		ev->thread_id = h->thread_id;
		ev->run_id = h->run_id;
		ev->seq = h->seq;
		ev->step = h->step;
		ev->checkpoint = h->ck;
		ev->t_ms = h->t_ms;
		p = (char *)(ev + 1);
		ev->thread_key = memcpy(p, h->key, lk);
		p += lk;
		ev->node = memcpy(p, h->node, ln);
		p += ln;
		ev->ns = memcpy(p, h->ns, lns);
		p += lns;
		ev->origin = memcpy(p, h->origin, lo);
		p += lo;
		memcpy(p, head, hl);
		memcpy(p + hl, data, len);
		p[hl + len] = '}';
		p[wl] = '\0';
		ev->wire = p;
		ev->wire_len = wl;
		ev->data = p + hl;
		ev->data_len = len;
		atomic_init(&ev->refs, 1);
		return ev;
	}
	buf_init(&b, 0);
	if (wire_head(&b, h) < 0)
		goto done;
	off = b.len;
	if (buf_append(&b, data, len) < 0 || buf_putc(&b, '}') < 0)
		goto done;
	ev = event_make(h, b.data, b.len, off, len);
done:
	buf_free(&b);
	return ev;
}

/* --- the hub --- */

struct eng_stream_sub {
	eng_stream_hub *h;
	unsigned modes;
	int64_t thread_id, run_id;
	char *prefix;
	size_t prefix_len;
	int local_only;
	eng_stream_event **ring; /* size slots: the queue, a gap, a snapshot */
	int size, cap, head, count;
	eng_stream_event *gap;   /* the gap entry at the tail, when the last thing queued */
	int64_t dropped;
	int efd;
	int signaled;
	int closed;
	int snap_seq;            /* a late join's checkpoint: what it covers is not given again */
	int deferred;            /* to be woken when the batch of the thread that queued ends */
	eng_stream_sub *next;
};

struct eng_stream_hub {
	pthread_mutex_t mu;
	eng_stream_sub *subs;
	int nsubs;
	int refs;   /* 1 for the hub, one per subscription */
	int freed;
	atomic_uint wanted;
	atomic_llong published, injected, delivered, dropped;
	int queue;
	pg_pool *pool;
	char origin[96];
	eng_stream_sink sink;
	unsigned tap_modes;
	eng_stream_tap_fn tap;
	void *tap_udata;
	/* what /metrics was last given (read and written by hub_collect only,
	 * under the metrics' lock) */
	int64_t reported[4];
	int reported_subs;
};

/* /metrics: the hub's figures since the last rendering, added to the
 * process's counters (a process may have more than one hub). */
static met_series *m_events[4], *m_subs;

static void hub_metrics_init(void)
{
	static const char *outcome[4] = {"published", "injected", "delivered", "dropped"};
	met_family *ev = met_counter("orch_stream_events_total",
				     "Live stream events: published by this process's runs and workers, "
				     "injected from other processes, delivered to subscriptions, dropped "
				     "for slow subscriptions",
				     "outcome");

	for (int i = 0; i < 4; i++)
		m_events[i] = met_with(ev, outcome[i]);
	m_subs = met_with(met_gauge("orch_stream_subscriptions",
				    "Live stream subscriptions open in this process", NULL));
}

static void hub_collect(void *udata)
{
	eng_stream_hub *h = udata;
	eng_stream_stats st;
	int64_t now[4];

	eng_stream_hub_stats(h, &st);
	now[0] = st.published;
	now[1] = st.injected;
	now[2] = st.delivered;
	now[3] = st.dropped;
	for (int i = 0; i < 4; i++) {
		met_add(m_events[i], (double)(now[i] - h->reported[i]));
		h->reported[i] = now[i];
	}
	met_add(m_subs, (double)(st.subscriptions - h->reported_subs));
	h->reported_subs = st.subscriptions;
}

static unsigned hub_wanted_cb(void *udata)
{
	return atomic_load_explicit(&((eng_stream_hub *)udata)->wanted, memory_order_relaxed);
}

static void hub_emit_cb(void *udata, const eng_stream_meta *m, const char *data, size_t len)
{
	eng_stream_publish(udata, m, data, len);
}

int eng_stream_hub_new(eng_stream_hub **out, const eng_stream_options *opt)
{
	eng_stream_hub *h = calloc(1, sizeof(*h));
	char host[64] = "host", rnd[9];

	*out = NULL;
	if (!h)
		return err_set(ERR_NOMEM, "out of memory");
	pthread_mutex_init(&h->mu, NULL);
	h->refs = 1;
	h->queue = opt && opt->queue > 0 ? opt->queue : DEFAULT_QUEUE;
	h->pool = opt ? opt->pool : NULL;
	if (opt && opt->origin && *opt->origin) {
		snprintf(h->origin, sizeof(h->origin), "%s", opt->origin);
	} else {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "host");
		host[sizeof(host) - 1] = '\0';
		util_rand_hex(rnd, 4);
		snprintf(h->origin, sizeof(h->origin), "%s-%d-%s", host, (int)getpid(), rnd);
	}
	h->sink.wanted = hub_wanted_cb;
	h->sink.emit = hub_emit_cb;
	h->sink.udata = h;
	{
		static pthread_once_t once = PTHREAD_ONCE_INIT;
		pthread_once(&once, hub_metrics_init);
	}
	met_collector(hub_collect, h);
	*out = h;
	return 0;
}

static void hub_unref_locked(eng_stream_hub *h, int *destroy)
{
	*destroy = --h->refs == 0;
}

static void hub_destroy(eng_stream_hub *h)
{
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* A batch of this thread (eng_stream_batch_begin): the hubs whose readers
 * are woken at its end. */
#define BATCH_HUBS 4
static _Thread_local int tl_batch;
static _Thread_local eng_stream_hub *tl_hubs[BATCH_HUBS];
static _Thread_local int tl_nhubs;

static void signal_now(eng_stream_sub *s)
{
	uint64_t one = 1;

	if (s->signaled)
		return;
	s->signaled = 1;
	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("stream", "waking a subscriber: %s", strerror(errno));
}

/* Wakes s's reader, or (inside a batch of this thread, for a hub it can
 * remember) marks it to be woken when the batch ends. Under the hub's lock. */
static void signal_sub(eng_stream_sub *s)
{
	uint64_t one = 1;

	if (s->signaled)
		return;
	if (tl_batch && !s->closed) {
		int k = 0;
		while (k < tl_nhubs && tl_hubs[k] != s->h)
			k++;
		if (k == tl_nhubs && tl_nhubs < BATCH_HUBS)
			tl_hubs[tl_nhubs++] = s->h;
		if (k < tl_nhubs) {
			s->deferred = 1;
			return;
		}
	}
	s->signaled = 1;
	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("stream", "waking a subscriber: %s", strerror(errno));
}

void eng_stream_hub_free(eng_stream_hub *h)
{
	int destroy;

	if (!h)
		return;
	/* after this no rendering reads h; its open subscriptions leave the gauge */
	met_collector_remove(hub_collect, h);
	met_add(m_subs, (double)-h->reported_subs);
	pthread_mutex_lock(&h->mu);
	h->freed = 1;
	for (eng_stream_sub *s = h->subs; s; s = s->next) {
		s->closed = 1;
		signal_sub(s);
	}
	hub_unref_locked(h, &destroy);
	pthread_mutex_unlock(&h->mu);
	if (destroy)
		hub_destroy(h);
}

void eng_stream_batch_begin(void)
{
	tl_batch++;
}

void eng_stream_batch_end(void)
{
	if (tl_batch == 0 || --tl_batch > 0)
		return;
	for (int k = 0; k < tl_nhubs; k++) {
		eng_stream_hub *h = tl_hubs[k];
		pthread_mutex_lock(&h->mu);
		for (eng_stream_sub *s = h->subs; s; s = s->next)
			if (s->deferred) {
				s->deferred = 0;
				signal_now(s);
			}
		pthread_mutex_unlock(&h->mu);
	}
	tl_nhubs = 0;
}

const eng_stream_sink *eng_stream_hub_sink(eng_stream_hub *h)
{
	return &h->sink;
}

const char *eng_stream_hub_origin(const eng_stream_hub *h)
{
	return h->origin;
}

unsigned eng_stream_hub_wanted(const eng_stream_hub *h)
{
	return atomic_load_explicit(&((eng_stream_hub *)h)->wanted, memory_order_relaxed);
}

void eng_stream_hub_stats(const eng_stream_hub *h, eng_stream_stats *out)
{
	eng_stream_hub *m = (eng_stream_hub *)h;

	out->published = atomic_load(&m->published);
	out->injected = atomic_load(&m->injected);
	out->delivered = atomic_load(&m->delivered);
	out->dropped = atomic_load(&m->dropped);
	pthread_mutex_lock(&m->mu);
	out->subscriptions = m->nsubs;
	pthread_mutex_unlock(&m->mu);
}

/* The modes wanted by the subscriptions (under the lock). */
static void recompute_wanted(eng_stream_hub *h)
{
	unsigned w = 0;

	for (eng_stream_sub *s = h->subs; s; s = s->next)
		w |= s->modes;
	if (h->tap)
		w |= h->tap_modes | ENG_STREAM_ALWAYS;
	atomic_store(&h->wanted, w);
}

static int sub_matches(const eng_stream_sub *s, const eng_stream_event *ev, int local)
{
	if (s->closed || (s->local_only && !local))
		return 0;
	if (!(ev->mode & (s->modes | ENG_STREAM_ALWAYS)))
		return 0;
	if (ev->mode == ENG_STREAM_DROPPED && ev->thread_id == 0)
		return 1; /* a transport's gap concerns everyone */
	if (s->thread_id && ev->thread_id != s->thread_id)
		return 0;
	if (s->run_id && ev->run_id != s->run_id)
		return 0;
	if (s->prefix && strncmp(ev->thread_key, s->prefix, s->prefix_len) != 0)
		return 0;
	if (s->snap_seq && ev->checkpoint && ev->checkpoint <= s->snap_seq && ev->ns[0] == '\0')
		return 0; /* the snapshot it joined with holds it already */
	return 1;
}

/* A gap entry for a subscription: its wire is written when it is read,
 * with the count it reached by then. */
static eng_stream_event *gap_new(void)
{
	eng_stream_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->mode = ENG_STREAM_DROPPED;
	ev->thread_key = ev->node = ev->ns = ev->origin = "";
	ev->data = ev->wire = "";
	ev->own_gap = 1;
	atomic_init(&ev->refs, 1);
	return ev;
}

/* Doubles s's ring (under the hub's lock), keeping the order. */
static int sub_grow(eng_stream_sub *s)
{
	int size = s->size * 2;
	eng_stream_event **ring = calloc((size_t)size, sizeof(*ring));

	if (!ring)
		return -1;
	for (int i = 0; i < s->count; i++)
		ring[i] = s->ring[(s->head + i) % s->size];
	free(s->ring);
	s->ring = ring;
	s->head = 0;
	s->size = size;
	return 0;
}

/* Queues ev for s (under the hub's lock). When the queue is full the event
 * is dropped and counted in a gap entry at the tail, so the subscriber
 * learns where and how much it lost. Returns 1 when queued. */
static int sub_push(eng_stream_hub *h, eng_stream_sub *s, eng_stream_event *ev)
{
	if (ev->mode == ENG_STREAM_RUN && s->count >= s->cap) {
		/* a run's start and end are never dropped: a reader waiting for
		 * the end must get it, after what it lost */
		if (s->count + 1 >= s->size && sub_grow(s) < 0)
			return 0;
		s->gap = NULL;
		s->ring[(s->head + s->count) % s->size] = ev;
		s->count++;
		eng_stream_event_retain(ev);
		signal_sub(s);
		return 1;
	}
	if (s->count < s->cap && !s->gap) {
		s->ring[(s->head + s->count) % s->size] = ev;
		s->count++;
		eng_stream_event_retain(ev);
		signal_sub(s);
		return 1;
	}
	if (s->count < s->cap && s->gap) {
		/* room again after a gap: the gap stays where it was */
		s->gap = NULL;
		s->ring[(s->head + s->count) % s->size] = ev;
		s->count++;
		eng_stream_event_retain(ev);
		signal_sub(s);
		return 1;
	}
	s->dropped++;
	atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
	if (!s->gap) {
		if (s->count >= s->size && sub_grow(s) < 0)
			return 0;
		s->gap = gap_new();
		if (!s->gap)
			return 0;
		s->ring[(s->head + s->count) % s->size] = s->gap;
		s->count++;
	}
	s->gap->dropped++;
	return 0;
}

/* Delivers ev (a reference the caller keeps) to every matching subscription. */
static void deliver(eng_stream_hub *h, eng_stream_event *ev, int local)
{
	int64_t n = 0;

	pthread_mutex_lock(&h->mu);
	for (eng_stream_sub *s = h->subs; s; s = s->next)
		if (sub_matches(s, ev, local))
			n += sub_push(h, s, ev);
	if (local && h->tap && (ev->mode & (h->tap_modes | ENG_STREAM_ALWAYS)))
		h->tap(h->tap_udata, ev);
	pthread_mutex_unlock(&h->mu);
	if (n)
		atomic_fetch_add_explicit(&h->delivered, n, memory_order_relaxed);
}

int eng_stream_publish(eng_stream_hub *h, const eng_stream_meta *m, const char *data,
		       size_t len)
{
	header hd = {
		.mode = m->mode,
		.thread_id = m->thread_id,
		.run_id = m->run_id,
		.seq = m->seq,
		.step = m->step,
		.ck = m->checkpoint,
		.t_ms = wall_ms(),
		.key = m->thread_key ? m->thread_key : "",
		.node = m->node ? m->node : "",
		.ns = m->ns ? m->ns : "",
		.origin = h->origin,
	};
	eng_stream_event *ev;

	/* (run and dropped are wanted by every subscription: they are in the mask) */
	if (!(eng_stream_hub_wanted(h) & m->mode))
		return 0;
	ev = event_build(&hd, data, len);
	if (!ev)
		return err_set(ERR_NOMEM, "out of memory building a stream event");
	atomic_fetch_add_explicit(&h->published, 1, memory_order_relaxed);
	deliver(h, ev, 1);
	eng_stream_event_release(ev);
	return 0;
}

/* --- the wire form read back (eng_stream_inject) --- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Reads a JSON string at *pp (after its opening quote) into b, unescaped. */
static int read_str(const char **pp, const char *end, buf *b)
{
	const char *p = *pp;

	while (p < end && *p != '"') {
		if (*p != '\\') {
			const char *run = p;
			while (p < end && *p != '"' && *p != '\\')
				p++;
			if (buf_append(b, run, (size_t)(p - run)) < 0)
				return -1;
			continue;
		}
		if (++p >= end)
			return -1;
		switch (*p) {
		case 'n': buf_putc(b, '\n'); break;
		case 't': buf_putc(b, '\t'); break;
		case 'r': buf_putc(b, '\r'); break;
		case 'b': buf_putc(b, '\b'); break;
		case 'f': buf_putc(b, '\f'); break;
		case 'u': {
			unsigned cp = 0;
			if (end - p < 5)
				return -1;
			for (int i = 1; i <= 4; i++) {
				int d = util_hexval(p[i]);
				if (d < 0)
					return -1;
				cp = cp * 16 + (unsigned)d;
			}
			p += 4;
			/* the header's strings are names: a surrogate stays U+FFFD */
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			if (cp < 0x80) {
				buf_putc(b, (char)cp);
			} else if (cp < 0x800) {
				buf_putc(b, (char)(0xc0 | (cp >> 6)));
				buf_putc(b, (char)(0x80 | (cp & 0x3f)));
			} else {
				buf_putc(b, (char)(0xe0 | (cp >> 12)));
				buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
				buf_putc(b, (char)(0x80 | (cp & 0x3f)));
			}
			break;
		}
		default: buf_putc(b, *p); break;
		}
		p++;
	}
	if (p >= end)
		return -1;
	*pp = p + 1;
	return 0;
}

/* Parses a wire event's header into h (strings into sb, NUL-separated) and
 * finds its payload. */
static int parse_wire(const char *w, size_t len, header *h, buf *sb, size_t *data_off,
		      size_t *data_len)
{
	const char *p = w, *end = w + len, *last;
	size_t offs[5] = {0, 0, 0, 0, 0}; /* mode, key, node, ns, origin in sb */
	static const char *const names[5] = {"mode", "key", "node", "ns", "origin"};

	memset(h, 0, sizeof(*h));
	while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	p = skip_ws(p, end);
	if (p >= end || *p != '{' || end[-1] != '}')
		return -1;
	last = end - 1;
	p++;
	buf_putc(sb, '\0'); /* offset 0: "" for absent strings */
	for (;;) {
		char name[16];
		size_t n;

		p = skip_ws(p, last);
		if (p >= last || *p != '"')
			return -1;
		p++;
		n = 0;
		while (p < last && *p != '"' && n + 1 < sizeof(name))
			name[n++] = *p++;
		name[n] = '\0';
		if (p >= last || *p != '"')
			return -1;
		p = skip_ws(p + 1, last);
		if (p >= last || *p != ':')
			return -1;
		p = skip_ws(p + 1, last);
		if (strcmp(name, "data") == 0) {
			const char *d = p, *e = last;
			while (e > d && (e[-1] == ' ' || e[-1] == '\n'))
				e--;
			*data_off = (size_t)(d - w);
			*data_len = (size_t)(e - d);
			break;
		}
		if (*p == '"') {
			int k = -1;
			p++;
			for (int i = 0; i < 5; i++)
				if (strcmp(name, names[i]) == 0)
					k = i;
			if (k >= 0)
				offs[k] = sb->len;
			if (read_str(&p, last, sb) < 0 || buf_putc(sb, '\0') < 0)
				return -1;
		} else {
			char *e = NULL;
			double v = strtod(p, &e);
			if (!e || e == p)
				return -1;
			if (strcmp(name, "thread") == 0)
				h->thread_id = (int64_t)v;
			else if (strcmp(name, "run") == 0)
				h->run_id = (int64_t)v;
			else if (strcmp(name, "seq") == 0)
				h->seq = (int64_t)v;
			else if (strcmp(name, "step") == 0)
				h->step = (int)v;
			else if (strcmp(name, "ck") == 0)
				h->ck = (int)v;
			else if (strcmp(name, "t") == 0)
				h->t_ms = v;
			p = e;
		}
		p = skip_ws(p, last);
		if (p >= last || *p != ',')
			return -1;
		p++;
	}
	if (!sb->data)
		return -1;
	h->mode = mode_of(sb->data + offs[0], strlen(sb->data + offs[0]));
	h->key = sb->data + offs[1];
	h->node = sb->data + offs[2];
	h->ns = sb->data + offs[3];
	h->origin = sb->data + offs[4];
	return h->mode ? 0 : -1;
}

int eng_stream_inject(eng_stream_hub *h, const char *wire, size_t len)
{
	header hd;
	buf sb;
	size_t off = 0, dlen = 0;
	eng_stream_event *ev = NULL;
	int rc = 0;

	buf_init(&sb, 0);
	if (parse_wire(wire, len, &hd, &sb, &off, &dlen) < 0) {
		rc = err_set(ERR_PARSE, "not a stream event: %.80s", wire);
		goto done;
	}
	if (strcmp(hd.origin, h->origin) == 0)
		goto done; /* ours, back from the transport */
	if (!(eng_stream_hub_wanted(h) & hd.mode))
		goto done;
	ev = event_make(&hd, wire, len, off, dlen);
	if (!ev) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (hd.mode == ENG_STREAM_DROPPED) {
		json_t *d = eng_stream_event_data(ev);
		ev->dropped = json_integer_value(json_object_get(d, "count"));
		json_decref(d);
	}
	atomic_fetch_add_explicit(&h->injected, 1, memory_order_relaxed);
	deliver(h, ev, 0);
	eng_stream_event_release(ev);
done:
	buf_free(&sb);
	return rc;
}

void eng_stream_inject_gap(eng_stream_hub *h, int64_t count)
{
	header hd = {.mode = ENG_STREAM_DROPPED, .t_ms = wall_ms(), .key = "", .node = "",
		     .ns = "", .origin = h->origin};
	char data[96];
	eng_stream_event *ev;

	snprintf(data, sizeof(data), "{\"count\":%lld,\"transport\":true}", (long long)count);
	ev = event_build(&hd, data, strlen(data));
	if (!ev)
		return;
	ev->dropped = count;
	deliver(h, ev, 0);
	eng_stream_event_release(ev);
}

void eng_stream_hub_tap(eng_stream_hub *h, unsigned modes, eng_stream_tap_fn fn, void *udata)
{
	pthread_mutex_lock(&h->mu);
	h->tap = fn;
	h->tap_udata = udata;
	h->tap_modes = modes ? modes : ENG_STREAM_DEFAULT;
	recompute_wanted(h);
	pthread_mutex_unlock(&h->mu);
}

int eng_stream_gap_wire(const eng_stream_hub *h, int64_t count, buf *out)
{
	header hd = {.mode = ENG_STREAM_DROPPED, .t_ms = wall_ms(), .key = "", .node = "",
		     .ns = "", .origin = h->origin};
	int rc = wire_head(out, &hd);

	if (rc == 0)
		rc = buf_printf(out, "{\"count\":%lld,\"transport\":true}}", (long long)count);
	return rc;
}

/* --- subscriptions --- */

/* Puts ev (owned) at the head of s's queue (the snapshot of a late join)
 * or at its tail; the queue has room for both beyond its capacity. */
static void sub_insert(eng_stream_hub *h, eng_stream_sub *s, eng_stream_event *ev, int front)
{
	pthread_mutex_lock(&h->mu);
	if (s->count >= s->size && sub_grow(s) < 0) {
		eng_stream_event_release(ev);
	} else if (front) {
		s->head = (s->head + s->size - 1) % s->size;
		s->ring[s->head] = ev;
		s->count++;
	} else {
		s->ring[(s->head + s->count) % s->size] = ev;
		s->count++;
	}
	signal_sub(s);
	pthread_mutex_unlock(&h->mu);
}

/* After a late join's snapshot at checkpoint `seq`: drops what s queued
 * meanwhile that the snapshot holds (updates, checkpoints, values of that
 * checkpoint or earlier), and lets nothing of the kind in from now on. */
static void sub_covered(eng_stream_hub *h, eng_stream_sub *s, int seq)
{
	int kept = 0;

	pthread_mutex_lock(&h->mu);
	s->snap_seq = seq;
	for (int i = 0; i < s->count; i++) {
		eng_stream_event *ev = s->ring[(s->head + i) % s->size];
		if (ev && !ev->own_gap && ev->checkpoint && ev->checkpoint <= seq && !ev->ns[0]) {
			eng_stream_event_release(ev);
			continue;
		}
		s->ring[(s->head + kept) % s->size] = ev;
		kept++;
	}
	s->count = kept;
	pthread_mutex_unlock(&h->mu);
}

/* An event made here for one subscriber (a late join's snapshot). */
static eng_stream_event *local_event(eng_stream_hub *h, unsigned mode, int64_t thread,
				     int64_t run, const char *key, const json_t *data)
{
	header hd = {.mode = mode, .thread_id = thread, .run_id = run, .t_ms = wall_ms(),
		     .key = key ? key : "", .node = "", .ns = "", .origin = h->origin};
	char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	eng_stream_event *ev = text ? event_build(&hd, text, strlen(text)) : NULL;

	free(text);
	return ev;
}

/* The late join: the thread's latest checkpoint first, and the end of a
 * run that ended already. */
static int late_join(eng_stream_hub *h, eng_stream_sub *s)
{
	pg_conn *c = NULL;
	json_t *run = NULL, *state = NULL, *next = NULL, *snap = NULL;
	int64_t thread = s->thread_id;
	const char *key = NULL;
	int seq = 0, rc;

	rc = pg_pool_acquire(h->pool, 10000, &c);
	if (rc < 0)
		return rc;
	if (s->run_id) {
		rc = eng_run_get(c, s->run_id, &run);
		if (rc < 0)
			goto done;
		thread = json_integer_value(json_object_get(run, "thread_id"));
		key = json_string_value(json_object_get(run, "thread_key"));
	}
	rc = eng_state_at(c, thread, 0, &state, &next, &seq);
	if (rc == ERR_NOTFOUND) {
		rc = 0; /* nothing checkpointed yet: the stream is all there is */
	} else if (rc == 0) {
		snap = json_pack("{s:b,s:i,s:O,s:O?}", "snapshot", 1, "seq", seq, "state", state,
				 "next", next);
		sub_covered(h, s, seq);
		if (snap) {
			eng_stream_event *ev =
				local_event(h, ENG_STREAM_CHECKPOINTS, thread, s->run_id, key, snap);
			if (ev)
				sub_insert(h, s, ev, 1);
		}
	}
	if (rc == 0 && run) {
		const char *st = json_string_value(json_object_get(run, "status"));
		if (st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 ||
			   strcmp(st, "cancelled") == 0)) {
			json_t *end = json_pack("{s:s,s:s,s:O?,s:b}", "event", "end", "status", st,
						"error", json_object_get(run, "error"), "late", 1);
			eng_stream_event *ev =
				end ? local_event(h, ENG_STREAM_RUN, thread, s->run_id, key, end) : NULL;
			if (ev)
				sub_insert(h, s, ev, 0);
			json_decref(end);
		}
	}
done:
	pg_pool_release(h->pool, c);
	json_decref(run);
	json_decref(state);
	json_decref(next);
	json_decref(snap);
	return rc;
}

int eng_stream_subscribe(eng_stream_hub *h, const eng_stream_filter *f, eng_stream_sub **out)
{
	eng_stream_sub *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->h = h;
	s->modes = (f && f->modes ? f->modes : ENG_STREAM_DEFAULT) | ENG_STREAM_ALWAYS;
	s->thread_id = f ? f->thread_id : 0;
	s->run_id = f ? f->run_id : 0;
	s->local_only = f ? f->local_only : 0;
	s->cap = f && f->queue > 0 ? f->queue : h->queue;
	s->size = s->cap + 3; /* a gap, a snapshot and a late run end beyond it */
	s->ring = calloc((size_t)s->size, sizeof(*s->ring));
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f && f->key_prefix) {
		s->prefix = strdup(f->key_prefix);
		s->prefix_len = s->prefix ? strlen(s->prefix) : 0;
	}
	if (!s->ring || s->efd < 0 || (f && f->key_prefix && !s->prefix)) {
		if (s->efd >= 0)
			close(s->efd);
		free(s->ring);
		free(s->prefix);
		free(s);
		return err_set(ERR_NOMEM, "cannot make a stream subscription");
	}
	pthread_mutex_lock(&h->mu);
	if (h->freed) {
		pthread_mutex_unlock(&h->mu);
		close(s->efd);
		free(s->ring);
		free(s->prefix);
		free(s);
		return err_set(ERR_CANCELLED, "the stream hub is closed");
	}
	s->next = h->subs;
	h->subs = s;
	h->nsubs++;
	h->refs++;
	recompute_wanted(h);
	pthread_mutex_unlock(&h->mu);
	if (f && f->late_join && h->pool && (s->thread_id || s->run_id)) {
		rc = late_join(h, s);
		if (rc < 0) {
			eng_stream_unsubscribe(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

void eng_stream_unsubscribe(eng_stream_sub *s)
{
	eng_stream_hub *h;
	int destroy;

	if (!s)
		return;
	h = s->h;
	pthread_mutex_lock(&h->mu);
	for (eng_stream_sub **p = &h->subs; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	h->nsubs--;
	recompute_wanted(h);
	hub_unref_locked(h, &destroy);
	pthread_mutex_unlock(&h->mu);
	while (s->count > 0) {
		eng_stream_event_release(s->ring[s->head]);
		s->head = (s->head + 1) % s->size;
		s->count--;
	}
	close(s->efd);
	free(s->ring);
	free(s->prefix);
	free(s);
	if (destroy)
		hub_destroy(h);
}

int eng_stream_sub_fd(const eng_stream_sub *s)
{
	return s->efd;
}

int64_t eng_stream_sub_dropped(const eng_stream_sub *s)
{
	int64_t n;

	pthread_mutex_lock(&s->h->mu);
	n = s->dropped;
	pthread_mutex_unlock(&s->h->mu);
	return n;
}

/* Writes a gap entry's wire form now that its count is final. */
static eng_stream_event *gap_finish(eng_stream_hub *h, eng_stream_event *gap)
{
	header hd = {.mode = ENG_STREAM_DROPPED, .t_ms = wall_ms(), .key = "", .node = "",
		     .ns = "", .origin = h->origin};
	char data[64];
	eng_stream_event *ev;

	snprintf(data, sizeof(data), "{\"count\":%lld}", (long long)gap->dropped);
	ev = event_build(&hd, data, strlen(data));
	if (ev)
		ev->dropped = gap->dropped;
	free(gap);
	return ev;
}

int eng_stream_try_next(eng_stream_sub *s, eng_stream_event **out)
{
	eng_stream_hub *h = s->h;
	eng_stream_event *ev = NULL;

	*out = NULL;
	pthread_mutex_lock(&h->mu);
	if (s->count > 0) {
		ev = s->ring[s->head];
		s->ring[s->head] = NULL;
		s->head = (s->head + 1) % s->size;
		s->count--;
		if (ev == s->gap)
			s->gap = NULL;
	}
	if (s->count == 0 && s->signaled) {
		uint64_t v;
		s->signaled = 0;
		if (read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("stream", "reading a subscriber's eventfd: %s", strerror(errno));
		if (s->closed)
			signal_sub(s); /* stays readable: the reader learns it is closed */
	}
	pthread_mutex_unlock(&h->mu);
	if (ev && ev->own_gap)
		ev = gap_finish(h, ev);
	*out = ev;
	return ev != NULL;
}

int eng_stream_next(eng_stream_sub *s, int64_t timeout_ms, eng_stream_event **out)
{
	int64_t until = timeout_ms >= 0 ? util_mono_ms() + timeout_ms : 0;

	for (;;) {
		struct pollfd pfd = {.fd = s->efd, .events = POLLIN};
		int64_t left = -1;
		int closed;

		if (eng_stream_try_next(s, out))
			return 0;
		pthread_mutex_lock(&s->h->mu);
		closed = s->closed;
		pthread_mutex_unlock(&s->h->mu);
		if (closed)
			return err_set(ERR_CANCELLED, "the stream hub is closed");
		if (timeout_ms >= 0) {
			left = until - util_mono_ms();
			if (left <= 0)
				return err_set(ERR_TIMEOUT, "no stream event in %lld ms",
					       (long long)timeout_ms);
		}
		if (poll(&pfd, 1, left < 0 ? -1 : (int)left) < 0 && errno != EINTR)
			return err_set(ERR_IO, "waiting for stream events: %s", strerror(errno));
	}
}

/* --- the sink --- */

int eng_stream_sink_wants(const eng_stream_sink *sink, unsigned modes)
{
	return sink && sink->wanted && (sink->wanted(sink->udata) & modes) != 0;
}

int eng_stream_sink_emit(const eng_stream_sink *sink, const eng_stream_meta *m,
			 const json_t *data)
{
	char *text;

	if (!sink || !sink->emit)
		return 0;
	if (sink->wanted && !(sink->wanted(sink->udata) & m->mode))
		return 0;
	if (!data) {
		sink->emit(sink->udata, m, "{}", 2);
		return 1;
	}
	text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return 0;
	sink->emit(sink->udata, m, text, strlen(text));
	free(text);
	return 1;
}
