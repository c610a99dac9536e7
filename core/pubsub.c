#include "core/pubsub.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/redis.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_BYTES ((int64_t)32 << 20)
#define MAX_BUCKETS 128              /* channels per round trip */
#define MAX_JOINED ((size_t)1 << 20) /* bytes joined into one PUBLISH */
#define LINGER_BELOW 64              /* fewer queued messages wait for their burst */

int ps_channel_prefix(const char *redis_url, const char *prefix, char *out, size_t cap)
{
	rds_url u;
	int rc = rds_url_parse(redis_url, &u);

	memset(u.password, 0, sizeof(u.password));
	if (rc < 0)
		return rc;
	snprintf(out, cap, "%s:%d:", prefix, u.db);
	return 0;
}

/* --- publisher --- */

typedef struct msg {
	struct msg *next;
	size_t len;
	char *channel; /* after the data, in the same allocation */
	char data[];
} msg;

struct ps_pub {
	rds_conn *conn;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv, idle_cv;
	msg *head, *tail;
	int64_t bytes, max_bytes;
	int busy;
	int stopping;
	atomic_int cancel;
	int64_t lost;       /* dropped and not told yet */
	int down;           /* the last round trip failed */
	int64_t linger_us;
	int queued;         /* messages in the queue */
	ps_pub_stats st;
	char *gap_channel;
	void (*gap_text)(void *udata, int64_t count, buf *out);
	void *gap_udata;
	char *health;
};

int ps_pub_send(ps_pub *p, const char *channel, const char *data, size_t len)
{
	size_t cl = strlen(channel) + 1;
	msg *m;

	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->bytes + (int64_t)len > p->max_bytes) {
		p->lost++;
		p->st.dropped++;
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	pthread_mutex_unlock(&p->mu);
	m = malloc(sizeof(*m) + len + 1 + cl);
	if (!m) {
		pthread_mutex_lock(&p->mu);
		p->lost++;
		p->st.dropped++;
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = '\0';
	m->channel = m->data + len + 1;
	memcpy(m->channel, channel, cl);
	pthread_mutex_lock(&p->mu);
	if (p->tail) {
		p->tail->next = m;
	} else {
		/* the first message since the thread took the queue wakes it; the
		 * ones after it are taken with it */
		p->head = m;
		if (!p->busy)
			pthread_cond_signal(&p->cv);
	}
	p->tail = m;
	p->bytes += (int64_t)len;
	p->queued++;
	pthread_mutex_unlock(&p->mu);
	return 1;
}

typedef struct bucket {
	char channel[256];
	buf joined;
	int n;
} bucket;

/* Sends nb buckets (each channel's messages joined) in one round trip and
 * empties them; adds what was sent or lost to *sent and *failed. */
static void publish_buckets(ps_pub *p, bucket *b, int nb, int64_t *sent, int64_t *failed)
{
	int argcs[MAX_BUCKETS], rc;
	const char *argv[MAX_BUCKETS][3];
	size_t lens[MAX_BUCKETS][3];
	const char *const *argvs[MAX_BUCKETS];
	const size_t *lensp[MAX_BUCKETS];

	for (int i = 0; i < nb; i++) {
		argcs[i] = 3;
		argv[i][0] = "PUBLISH";
		argv[i][1] = b[i].channel;
		argv[i][2] = buf_cstr(&b[i].joined);
		lens[i][0] = 7;
		lens[i][1] = strlen(b[i].channel);
		lens[i][2] = b[i].joined.len;
		argvs[i] = argv[i];
		lensp[i] = lens[i];
	}
	rc = rds_pipeline(p->conn, nb, argcs, argvs, lensp);
	if (rc < 0 && !p->down) {
		p->down = 1;
		if (p->health)
			health_report(p->health, HEALTH_DEGRADED,
				      "cannot publish live events (they are dropped until Redis "
				      "answers): %s", err_last());
	} else if (rc == 0 && p->down) {
		p->down = 0;
		if (p->health)
			health_report(p->health, HEALTH_OK, "publishing");
	}
	pthread_mutex_lock(&p->mu);
	p->st.batches++;
	p->st.publishes += nb;
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < nb; i++) {
		if (rc == 0)
			*sent += b[i].n;
		else
			*failed += b[i].n;
		buf_free(&b[i].joined);
	}
}

/* The bucket of `channel` among b[0..*nb), made when new (sending the
 * buckets first when there is no room). */
static bucket *bucket_for(ps_pub *p, bucket *b, int *nb, const char *channel, size_t len,
			  int64_t *sent, int64_t *failed)
{
	for (int i = 0; i < *nb; i++)
		if (strcmp(b[i].channel, channel) == 0 && b[i].joined.len + len < MAX_JOINED)
			return &b[i];
	if (*nb == MAX_BUCKETS) {
		publish_buckets(p, b, *nb, sent, failed);
		*nb = 0;
	}
	snprintf(b[*nb].channel, sizeof(b[*nb].channel), "%s", channel);
	buf_init(&b[*nb].joined, 0);
	b[*nb].n = 0;
	return &b[(*nb)++];
}

/* Sends a list of messages (and frees it), with the count of messages lost
 * before them told first: each channel's messages joined in order, the
 * channels in one round trip. */
static void send_list(ps_pub *p, msg *list, int64_t lost)
{
	bucket *b = calloc(MAX_BUCKETS, sizeof(*b));
	int nb = 0;
	int64_t sent = 0, failed = 0;

	if (!b) {
		failed = lost;
		while (list) {
			msg *m = list;
			list = m->next;
			free(m);
			failed++;
		}
		goto count;
	}
	if (lost > 0 && p->gap_channel && p->gap_text) {
		buf gap;
		buf_init(&gap, 0);
		p->gap_text(p->gap_udata, lost, &gap);
		if (gap.len) {
			bucket *g = bucket_for(p, b, &nb, p->gap_channel, gap.len, &sent, &failed);
			buf_append(&g->joined, gap.data, gap.len);
		}
		buf_free(&gap);
	}
	while (list) {
		msg *m = list;
		bucket *k = bucket_for(p, b, &nb, m->channel, m->len, &sent, &failed);

		list = m->next;
		if (k->joined.len)
			buf_putc(&k->joined, '\n');
		buf_append(&k->joined, m->data, m->len);
		k->n++;
		free(m);
	}
	if (nb)
		publish_buckets(p, b, nb, &sent, &failed);
	free(b);
count:
	pthread_mutex_lock(&p->mu);
	p->st.sent += sent;
	if (failed) {
		p->st.dropped += failed;
		p->lost += failed;
	}
	pthread_mutex_unlock(&p->mu);
}

static void *pub_main(void *arg)
{
	ps_pub *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		msg *list;
		int64_t lost;

		while (!p->head && !p->stopping && !(p->lost > 0 && !p->down && p->gap_channel))
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->head && p->stopping)
			break;
		if (p->head && p->linger_us > 0 && p->queued < LINGER_BELOW && !p->stopping) {
			/* a few messages: the rest of their burst joins them */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(p->linger_us * 1000);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec += ts.tv_nsec / 1000000000L;
				ts.tv_nsec %= 1000000000L;
			}
			p->busy = 1; /* new messages do not wake it meanwhile */
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		list = p->head;
		p->head = p->tail = NULL;
		p->bytes = 0;
		p->queued = 0;
		lost = p->lost;
		p->lost = 0;
		p->busy = 1;
		pthread_mutex_unlock(&p->mu);
		send_list(p, list, lost);
		if (p->down)
			util_sleep_ms(50); /* the connection's own backoff paces retries */
		pthread_mutex_lock(&p->mu);
		p->busy = 0;
		pthread_cond_broadcast(&p->idle_cv);
	}
	p->busy = 0;
	pthread_cond_broadcast(&p->idle_cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int ps_pub_new(ps_pub **out, const char *redis_url, const ps_pub_options *opt)
{
	ps_pub *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	rc = rds_connect(&p->conn, redis_url, 1);
	if (rc < 0) {
		free(p);
		return rc;
	}
	rds_set_timeout(p->conn, 5000);
	rds_set_cancel(p->conn, &p->cancel);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	p->max_bytes = opt && opt->max_bytes > 0 ? opt->max_bytes : DEFAULT_MAX_BYTES;
	p->linger_us = !opt || opt->linger_us == 0 ? 200 : opt->linger_us;
	if (opt && opt->gap_channel)
		p->gap_channel = strdup(opt->gap_channel);
	if (opt) {
		p->gap_text = opt->gap_text;
		p->gap_udata = opt->gap_udata;
	}
	if (opt && opt->health)
		p->health = strdup(opt->health);
	if (pthread_create(&p->thread, NULL, pub_main, p) != 0) {
		ps_pub_free(p);
		return err_set(ERR_IO, "cannot start the publisher thread");
	}
	p->started = 1;
	if (p->health)
		health_report(p->health, HEALTH_OK, "publishing");
	*out = p;
	return 0;
}

int ps_pub_flush(ps_pub *p, int64_t timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	while ((p->head || p->busy) && rc == 0) {
		struct timespec ts;
		int64_t left = until - util_mono_ms();

		if (left <= 0) {
			rc = err_set(ERR_TIMEOUT, "live events still queued after %lld ms",
				     (long long)timeout_ms);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->idle_cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void ps_pub_stats_get(ps_pub *p, ps_pub_stats *out)
{
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
}

void ps_pub_free(ps_pub *p)
{
	if (!p)
		return;
	if (p->started) {
		ps_pub_flush(p, 1000);
		pthread_mutex_lock(&p->mu);
		p->stopping = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		atomic_store(&p->cancel, 1);
		pthread_join(p->thread, NULL);
	}
	while (p->head) {
		msg *m = p->head;
		p->head = m->next;
		free(m);
	}
	if (p->health)
		health_forget(p->health);
	rds_free(p->conn);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->idle_cv);
	free(p->gap_channel);
	free(p->health);
	free(p);
}

/* --- subscriber --- */

struct ps_sub {
	rds_conn *conn;
	pthread_t thread;
	int started;
	atomic_int stopping;
	atomic_int ready;
	char *pattern;
	char **channels;
	int nchannels;
	void (*on_message)(void *udata, const char *channel, const char *line, size_t len);
	void (*on_gap)(void *udata);
	void *udata;
	char *health;
};

/* Subscribes on a (new) connection. */
static int sub_subscribe(ps_sub *s)
{
	const char *argv[66];
	int argc = 0, rc;

	if (s->pattern) {
		argv[argc++] = "PSUBSCRIBE";
		argv[argc++] = s->pattern;
	} else {
		argv[argc++] = "SUBSCRIBE";
		for (int i = 0; i < s->nchannels && argc < 66; i++)
			argv[argc++] = s->channels[i];
	}
	/* the first confirmation is the reply; the others arrive as pushes */
	rc = rds_cmdv(s->conn, NULL, argc, argv, NULL);
	return rc;
}

static void sub_dispatch(ps_sub *s, const rds_reply *r)
{
	const char *kind = rds_str(rds_at(r, 0));
	const rds_reply *ch, *data;
	const char *p, *end;

	if (strcmp(kind, "pmessage") == 0) {
		ch = rds_at(r, 2);
		data = rds_at(r, 3);
	} else if (strcmp(kind, "message") == 0) {
		ch = rds_at(r, 1);
		data = rds_at(r, 2);
	} else {
		return; /* subscribe confirmations */
	}
	if (!data || data->type != RDS_STR)
		return;
	p = data->str;
	end = data->str + data->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;

		if (e > p)
			s->on_message(s->udata, rds_str(ch), p, (size_t)(e - p));
		p = e + 1;
	}
}

static void *sub_main(void *arg)
{
	ps_sub *s = arg;
	int subscribed = 0, failures = 0;

	while (!atomic_load(&s->stopping)) {
		rds_reply *r = NULL;
		int rc;

		if (!subscribed) {
			rc = sub_subscribe(s);
			if (rc < 0) {
				if (s->health && failures++ == 0)
					health_report(s->health, HEALTH_DEGRADED,
						      "cannot subscribe to live events (retrying): %s",
						      err_last());
				continue; /* the connection waits out its backoff */
			}
			if (failures && s->on_gap)
				s->on_gap(s->udata);
			failures = 0;
			subscribed = 1;
			atomic_store(&s->ready, 1);
			if (s->health)
				health_report(s->health, HEALTH_OK, "subscribed");
		}
		rc = rds_read(s->conn, 200, &r);
		if (rc == ERR_TIMEOUT)
			continue;
		if (rc < 0) {
			subscribed = 0;
			if (s->health)
				health_report(s->health, HEALTH_DEGRADED,
					      "the connection for live events broke (subscribing again): "
					      "%s", err_last());
			failures = 1;
			if (s->on_gap)
				s->on_gap(s->udata);
			continue;
		}
		sub_dispatch(s, r);
		rds_reply_free(r);
	}
	return NULL;
}

int ps_sub_start(ps_sub **out, const char *redis_url, const ps_sub_options *opt)
{
	ps_sub *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	if (!opt->on_message || (!opt->pattern && opt->nchannels < 1) || opt->nchannels > 64) {
		free(s);
		return err_set(ERR_INVALID, "a subscriber needs on_message and a pattern or 1 to 64 "
					    "channels");
	}
	rc = rds_connect(&s->conn, redis_url, 1);
	if (rc < 0) {
		free(s);
		return rc;
	}
	rds_set_cancel(s->conn, &s->stopping);
	s->on_message = opt->on_message;
	s->on_gap = opt->on_gap;
	s->udata = opt->udata;
	if (opt->pattern)
		s->pattern = strdup(opt->pattern);
	if (opt->nchannels > 0) {
		s->channels = calloc((size_t)opt->nchannels, sizeof(char *));
		for (int i = 0; s->channels && i < opt->nchannels; i++)
			s->channels[i] = strdup(opt->channels[i]);
		s->nchannels = s->channels ? opt->nchannels : 0;
	}
	if (opt->health)
		s->health = strdup(opt->health);
	if (pthread_create(&s->thread, NULL, sub_main, s) != 0) {
		ps_sub_stop(s);
		return err_set(ERR_IO, "cannot start the subscriber thread");
	}
	s->started = 1;
	*out = s;
	return 0;
}

int ps_sub_wait_ready(ps_sub *s, int64_t timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;

	while (!atomic_load(&s->ready)) {
		if (util_mono_ms() >= until)
			return err_set(ERR_TIMEOUT, "not subscribed to live events after %lld ms",
				       (long long)timeout_ms);
		util_sleep_ms(5);
	}
	return 0;
}

void ps_sub_stop(ps_sub *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, 1);
	if (s->started)
		pthread_join(s->thread, NULL);
	if (s->health)
		health_forget(s->health);
	rds_free(s->conn);
	for (int i = 0; i < s->nchannels; i++)
		free(s->channels[i]);
	free(s->channels);
	free(s->pattern);
	free(s->health);
	free(s);
}
