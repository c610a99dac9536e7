#include "llm/sched.h"
#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER_TABLE 1024

typedef struct waiter {
	struct waiter *prev, *next;
	int endpoint;
	int prio;        /* rank: 0 interactive, 1 normal, 2 background */
	int pinned;
	int passed;
	int granted;
	uint64_t tag;
	uint64_t seq;
	uint64_t grant_seq;
	int64_t enq_us;
	pthread_cond_t cv;
} waiter;

typedef struct owner_slot {
	uint64_t hash;
	uint64_t last_tag;
} owner_slot;

typedef struct ep_state {
	llm_sched_stats st;
	int waiting; /* queued requests for this endpoint */
} ep_state;

struct llm_sched {
	pthread_mutex_t mu;
	int n;
	int lookahead;
	int starvation;
	ep_state *ep;
	waiter head; /* sentinel of the ordered queue */
	uint64_t seq, grants, vtime;
	owner_slot owners[OWNER_TABLE];
};

int llm_sched_new(llm_sched **out, int n, const char *const *names, const int *slots,
		  int lookahead, int starvation)
{
	llm_sched *s;

	*out = NULL;
	if (n < 0 || lookahead < 1 || starvation < 1)
		return err_set(ERR_INVALID, "scheduler: lookahead and starvation must be at least 1");
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->ep = calloc((size_t)(n ? n : 1), sizeof(*s->ep));
	if (!s->ep) {
		free(s);
		return err_set(ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		snprintf(s->ep[i].st.name, sizeof(s->ep[i].st.name), "%s", names[i]);
		s->ep[i].st.slots = slots[i] > 0 ? slots[i] : 1;
	}
	s->n = n;
	s->lookahead = lookahead;
	s->starvation = starvation;
	s->head.next = s->head.prev = &s->head;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

int llm_sched_add(llm_sched *s, const char *name, int slots, int *out_index)
{
	ep_state *ep;

	pthread_mutex_lock(&s->mu);
	ep = realloc(s->ep, (size_t)(s->n + 1) * sizeof(*ep));
	if (!ep) {
		pthread_mutex_unlock(&s->mu);
		return err_set(ERR_NOMEM, "out of memory");
	}
	s->ep = ep;
	memset(&ep[s->n], 0, sizeof(ep[s->n]));
	snprintf(ep[s->n].st.name, sizeof(ep[s->n].st.name), "%s", name);
	ep[s->n].st.slots = slots > 0 ? slots : 1;
	*out_index = s->n++;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void llm_sched_free(llm_sched *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->ep);
	free(s);
}

static uint64_t hash_owner(const char *o)
{
	uint64_t h = 1469598103934665603ULL;

	for (; o && *o; o++) {
		h ^= (unsigned char)*o;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

/* The fair tag of a new request of `owner`: one past the later of the
 * owner's last tag and the virtual time, so each owner advances one step
 * per request it queues and an idle owner starts at the present. */
static uint64_t owner_tag(llm_sched *s, const char *owner)
{
	uint64_t h = hash_owner(owner);
	size_t i = h % OWNER_TABLE, free_at = OWNER_TABLE;
	uint64_t tag;

	for (size_t k = 0; k < OWNER_TABLE; k++, i = (i + 1) % OWNER_TABLE) {
		owner_slot *o = &s->owners[i];
		if (o->hash == h) {
			tag = (o->last_tag > s->vtime ? o->last_tag : s->vtime) + 1;
			o->last_tag = tag;
			return tag;
		}
		/* a slot whose owner is behind the virtual time can be reused */
		if (free_at == OWNER_TABLE && (o->hash == 0 || o->last_tag <= s->vtime))
			free_at = i;
		if (o->hash == 0)
			break;
	}
	tag = s->vtime + 1;
	if (free_at < OWNER_TABLE) {
		s->owners[free_at].hash = h;
		s->owners[free_at].last_tag = tag;
	}
	return tag;
}

/* True when a goes before b. */
static int before(const waiter *a, const waiter *b)
{
	if (a->pinned != b->pinned)
		return a->pinned;
	if (a->pinned)
		return a->seq < b->seq;
	if (a->prio != b->prio)
		return a->prio < b->prio;
	if (a->tag != b->tag)
		return a->tag < b->tag;
	return a->seq < b->seq;
}

static void unlink_w(waiter *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->next = w->prev = w;
}

static void insert_w(llm_sched *s, waiter *w)
{
	waiter *p = s->head.prev;

	/* most requests go at or near the tail */
	while (p != &s->head && before(w, p))
		p = p->prev;
	w->prev = p;
	w->next = p->next;
	p->next->prev = w;
	p->next = w;
}

static void grant(llm_sched *s, waiter *w, int64_t now_us)
{
	ep_state *e = &s->ep[w->endpoint];
	double wait = (double)(now_us - w->enq_us) / 1000.0;

	unlink_w(w);
	e->waiting--;
	w->granted = 1;
	w->grant_seq = ++s->grants;
	if (w->tag > s->vtime && !w->pinned)
		s->vtime = w->tag;
	e->st.in_flight++;
	if (e->st.in_flight > e->st.max_in_flight)
		e->st.max_in_flight = e->st.in_flight;
	e->st.granted++;
	e->st.wait_total_ms += wait;
	if (wait > e->st.wait_max_ms)
		e->st.wait_max_ms = wait;
	if (w->passed > e->st.max_passed)
		e->st.max_passed = w->passed;
	/* everyone older still waiting for this endpoint was passed over */
	for (waiter *x = s->head.next; x != &s->head;) {
		waiter *nx = x->next;
		if (x->endpoint == w->endpoint && x->seq < w->seq) {
			x->passed++;
			if (!x->pinned && x->passed >= s->starvation) {
				unlink_w(x);
				x->pinned = 1;
				insert_w(s, x);
			}
		}
		x = nx;
	}
	pthread_cond_signal(&w->cv);
}

/* Hands out free slots in queue order, looking ahead past requests whose
 * endpoint is full. Called with the lock held. */
static void dispatch(llm_sched *s)
{
	int64_t now = util_mono_us();

	for (;;) {
		int scanned = 0, done = 1;
		for (waiter *w = s->head.next; w != &s->head && scanned < s->lookahead;
		     w = w->next, scanned++) {
			if (s->ep[w->endpoint].st.in_flight < s->ep[w->endpoint].st.slots) {
				grant(s, w, now);
				done = 0;
				break; /* the order may have changed: start again */
			}
		}
		if (done)
			return;
	}
}

int llm_sched_acquire(llm_sched *s, int endpoint, int priority, const char *owner,
		      const atomic_int *cancel, int64_t timeout_ms, llm_ticket *out)
{
	waiter w;
	int64_t start = util_mono_us();
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (endpoint < 0 || endpoint >= s->n)
		return err_set(ERR_INVALID, "scheduler: no endpoint %d", endpoint);
	memset(&w, 0, sizeof(w));
	w.endpoint = endpoint;
	/* rank: 0 interactive, 1 normal, 2 background (unknown values: normal) */
	w.prio = priority == LLM_PRIO_INTERACTIVE ? 0 : priority == LLM_PRIO_BACKGROUND ? 2 : 1;
	w.enq_us = start;
	pthread_cond_init(&w.cv, NULL);

	pthread_mutex_lock(&s->mu);
	w.seq = ++s->seq;
	w.tag = owner_tag(s, owner);
	s->ep[endpoint].waiting++;
	insert_w(s, &w);
	dispatch(s);
	while (!w.granted) {
		struct timespec ts;
		int64_t slice = 50;

		if (cancel && atomic_load(cancel)) {
			rc = err_set(ERR_CANCELLED, "cancelled while waiting for a model slot");
			break;
		}
		if (timeout_ms >= 0) {
			int64_t left = timeout_ms - (util_mono_us() - start) / 1000;
			if (left <= 0) {
				rc = err_set(ERR_TIMEOUT,
					     "no slot free on endpoint '%s' within %lld ms (%d in flight, "
					     "%d queued)", s->ep[endpoint].st.name, (long long)timeout_ms,
					     s->ep[endpoint].st.in_flight, s->ep[endpoint].waiting);
				break;
			}
			if (left < slice)
				slice = left;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += slice * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&w.cv, &s->mu, &ts);
	}
	if (rc < 0 && !w.granted) {
		unlink_w(&w);
		s->ep[endpoint].waiting--;
		dispatch(s); /* our leaving may unblock others behind a pinned request */
	} else {
		rc = 0;
		out->endpoint = endpoint;
		out->enq_seq = w.seq;
		out->grant_seq = w.grant_seq;
		out->passed = w.passed;
		out->wait_ms = (double)(util_mono_us() - start) / 1000.0;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

void llm_sched_release(llm_sched *s, const llm_ticket *t)
{
	pthread_mutex_lock(&s->mu);
	if (t->endpoint >= 0 && t->endpoint < s->n && s->ep[t->endpoint].st.in_flight > 0)
		s->ep[t->endpoint].st.in_flight--;
	dispatch(s);
	pthread_mutex_unlock(&s->mu);
}

void llm_sched_set_slots(llm_sched *s, int endpoint, int slots)
{
	pthread_mutex_lock(&s->mu);
	if (endpoint >= 0 && endpoint < s->n) {
		s->ep[endpoint].st.slots = slots > 0 ? slots : 1;
		dispatch(s);
	}
	pthread_mutex_unlock(&s->mu);
}

int llm_sched_stats_get(llm_sched *s, llm_sched_stats *out, int cap)
{
	int64_t now = util_mono_us();
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->n < cap ? s->n : cap;
	for (int i = 0; i < n; i++) {
		out[i] = s->ep[i].st;
		out[i].queued = s->ep[i].waiting;
		out[i].oldest_wait_ms = 0;
	}
	for (waiter *w = s->head.next; w != &s->head; w = w->next) {
		double age = (double)(now - w->enq_us) / 1000.0;
		if (w->endpoint < n && age > out[w->endpoint].oldest_wait_ms)
			out[w->endpoint].oldest_wait_ms = age;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}
