#include "bot/limit.h"
#include "core/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The last `cap` send times, oldest first once full. */
typedef struct ring {
	int64_t *t;
	int cap, n, head;
} ring;

typedef struct chat_slot {
	int64_t chat;      /* 0: empty */
	int64_t last_ms;   /* last message; INT64_MIN when none */
	int64_t blocked_until;
	ring group;        /* groups only */
} chat_slot;

struct bot_limiter {
	pthread_mutex_t mu;
	bot_limits lim;
	ring global;
	int64_t global_blocked_until;
	chat_slot *slots;
	size_t cap, used;
};

void bot_limits_default(bot_limits *out, double scale)
{
	/* the limits are rates: a scale of 2 allows twice as many messages in
	 * the same time, so every interval is divided by it */
	if (scale <= 0)
		scale = 1.0;
	out->chat_gap_ms = (int64_t)(1000 / scale);
	out->group_per_window = 20;
	out->group_window_ms = (int64_t)(60000 / scale);
	out->global_per_window = 30;
	out->global_window_ms = (int64_t)(1000 / scale);
	if (out->chat_gap_ms < 1)
		out->chat_gap_ms = 1;
	if (out->group_window_ms < 1)
		out->group_window_ms = 1;
	if (out->global_window_ms < 1)
		out->global_window_ms = 1;
}

static int ring_init(ring *r, int cap)
{
	r->t = calloc((size_t)(cap > 0 ? cap : 1), sizeof(*r->t));
	r->cap = cap > 0 ? cap : 1;
	r->n = r->head = 0;
	return r->t ? 0 : ERR_NOMEM;
}

/* How long until one more may go within `window` ms. */
static int64_t ring_wait(const ring *r, int64_t window, int64_t now)
{
	int64_t oldest, w;

	if (r->n < r->cap)
		return 0;
	oldest = r->t[r->head];
	w = oldest + window - now;
	return w > 0 ? w : 0;
}

static void ring_add(ring *r, int64_t now)
{
	if (r->n < r->cap) {
		r->t[(r->head + r->n) % r->cap] = now;
		r->n++;
	} else {
		r->t[r->head] = now;
		r->head = (r->head + 1) % r->cap;
	}
}

int bot_limiter_new(bot_limiter **out, const bot_limits *lim)
{
	bot_limiter *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return err_set(ERR_NOMEM, "out of memory");
	l->lim = *lim;
	l->cap = 64;
	l->slots = calloc(l->cap, sizeof(*l->slots));
	if (!l->slots || ring_init(&l->global, lim->global_per_window) < 0) {
		bot_limiter_free(l);
		return err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
}

void bot_limiter_free(bot_limiter *l)
{
	if (!l)
		return;
	for (size_t i = 0; l->slots && i < l->cap; i++)
		free(l->slots[i].group.t);
	free(l->slots);
	free(l->global.t);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static size_t hash(int64_t k, size_t cap)
{
	uint64_t x = (uint64_t)k * 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 17) & (cap - 1);
}

static chat_slot *find(bot_limiter *l, int64_t chat, int create)
{
	size_t i = hash(chat, l->cap);

	while (l->slots[i].chat != 0) {
		if (l->slots[i].chat == chat)
			return &l->slots[i];
		i = (i + 1) & (l->cap - 1);
	}
	if (!create)
		return NULL;
	if ((l->used + 1) * 2 > l->cap) {
		chat_slot *old = l->slots;
		size_t oldcap = l->cap;
		chat_slot *grown = calloc(oldcap * 2, sizeof(*grown));
		if (!grown)
			return NULL;
		l->slots = grown;
		l->cap = oldcap * 2;
		for (size_t k = 0; k < oldcap; k++)
			if (old[k].chat != 0) {
				size_t j = hash(old[k].chat, l->cap);
				while (l->slots[j].chat != 0)
					j = (j + 1) & (l->cap - 1);
				l->slots[j] = old[k];
			}
		free(old);
		return find(l, chat, create);
	}
	l->slots[i].chat = chat;
	l->slots[i].last_ms = INT64_MIN;
	l->slots[i].blocked_until = 0;
	if (chat < 0 && ring_init(&l->slots[i].group, l->lim.group_per_window) < 0) {
		l->slots[i].chat = 0;
		return NULL;
	}
	l->used++;
	return &l->slots[i];
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int64_t bot_limit_wait(bot_limiter *l, int64_t chat_id, int64_t now_ms)
{
	int64_t w;
	chat_slot *s;

	pthread_mutex_lock(&l->mu);
	w = ring_wait(&l->global, l->lim.global_window_ms, now_ms);
	w = max64(w, l->global_blocked_until - now_ms);
	s = chat_id != 0 ? find(l, chat_id, 0) : NULL;
	if (s) {
		if (s->last_ms != INT64_MIN)
			w = max64(w, s->last_ms + l->lim.chat_gap_ms - now_ms);
		w = max64(w, s->blocked_until - now_ms);
		if (chat_id < 0)
			w = max64(w, ring_wait(&s->group, l->lim.group_window_ms, now_ms));
	}
	pthread_mutex_unlock(&l->mu);
	return w > 0 ? w : 0;
}

void bot_limit_note(bot_limiter *l, int64_t chat_id, int64_t now_ms)
{
	chat_slot *s;

	pthread_mutex_lock(&l->mu);
	ring_add(&l->global, now_ms);
	s = chat_id != 0 ? find(l, chat_id, 1) : NULL;
	if (s) {
		s->last_ms = now_ms;
		if (chat_id < 0)
			ring_add(&s->group, now_ms);
	}
	pthread_mutex_unlock(&l->mu);
}

void bot_limit_block(bot_limiter *l, int64_t chat_id, int64_t now_ms, int64_t ms)
{
	chat_slot *s;

	pthread_mutex_lock(&l->mu);
	s = chat_id != 0 ? find(l, chat_id, 1) : NULL;
	if (chat_id == 0)
		l->global_blocked_until = max64(l->global_blocked_until, now_ms + ms);
	else if (s)
		s->blocked_until = max64(s->blocked_until, now_ms + ms);
	pthread_mutex_unlock(&l->mu);
}
