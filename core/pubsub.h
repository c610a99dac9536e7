/*
 * pubsub — live, lossy messages between processes over Redis pub/sub.
 *
 * A publisher (ps_pub) owns a thread and a bounded queue: ps_pub_send
 * copies a message into the queue and returns at once, whatever Redis is
 * doing; the thread sends what accumulated in one round trip (pipelined
 * PUBLISH commands; the messages of one channel joined by newlines into one
 * PUBLISH, in order), after lingering briefly when only a few are queued so
 * that bursts (a step's events) go together. When the queue is full, or Redis cannot be reached,
 * messages are dropped and counted, and once Redis takes messages again a
 * message saying how many were lost (gap_text) goes to gap_channel. So the
 * messages must be single lines (no '\n'): the stream events' wire form is.
 *
 * A subscriber (ps_sub) owns a thread and a connection of its own: it
 * subscribes to a pattern (PSUBSCRIBE) or to channels (SUBSCRIBE) and calls
 * on_message for each line of each message, in order. A connection that
 * breaks is made again (with backoff) and subscribed again; on_gap tells
 * that messages may have been lost meanwhile (pub/sub keeps nothing for an
 * absent subscriber).
 *
 * Pub/sub ignores the database number: callers put it in their channel
 * names (ps_channel_prefix) so that two databases of one server stay apart.
 * Both report in the health registry under the name given.
 */
#ifndef ORCH_CORE_PUBSUB_H
#define ORCH_CORE_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* "<prefix>:<db>:" for a Redis URL's database (into out[cap]), so channels
 * of different databases never meet. ERR_INVALID for a bad URL. */
int ps_channel_prefix(const char *redis_url, const char *prefix, char *out, size_t cap);

typedef struct ps_pub ps_pub;

typedef struct ps_pub_options {
	int64_t max_bytes;        /* queued bytes before messages are dropped; 0: 32 MiB */
	const char *gap_channel;  /* where losses are told; NULL: nowhere */
	/* appends the message that tells `count` messages were lost */
	void (*gap_text)(void *udata, int64_t count, buf *out);
	void *gap_udata;
	const char *health;       /* the part's name in core/health.h; NULL: none */
	int64_t linger_us;        /* a few messages wait this long for more to go in the
				   * same round trip (fewer wake-ups and Redis calls for
				   * the work it reports on); 0: 200 us; < 0: none */
} ps_pub_options;

typedef struct ps_pub_stats {
	int64_t sent;       /* messages handed to Redis */
	int64_t dropped;    /* lost: queue full, or Redis unreachable */
	int64_t publishes;  /* PUBLISH commands (several messages each, joined) */
	int64_t batches;    /* round trips */
} ps_pub_stats;

/* Starts a publisher on `redis_url` (Redis need not be up yet). opt may be
 * NULL. The caller owns *out (ps_pub_free). */
int ps_pub_new(ps_pub **out, const char *redis_url, const ps_pub_options *opt);

/* Queues `data` (copied) for `channel`. Never blocks. Returns 1 when
 * queued, 0 when dropped (the queue is full). Thread-safe. */
int ps_pub_send(ps_pub *p, const char *channel, const char *data, size_t len);

/* Waits up to timeout_ms until the queue is empty (everything queued so far
 * was sent or dropped). 0, or ERR_TIMEOUT. */
int ps_pub_flush(ps_pub *p, int64_t timeout_ms);

void ps_pub_stats_get(ps_pub *p, ps_pub_stats *out);

/* Sends what is queued (up to a second), stops the thread and frees. NULL
 * is a no-op. */
void ps_pub_free(ps_pub *p);

typedef struct ps_sub ps_sub;

typedef struct ps_sub_options {
	const char *pattern;            /* PSUBSCRIBE this pattern, or */
	const char *const *channels;    /* SUBSCRIBE these (n of them) */
	int nchannels;
	/* each line of each message; `channel` and `line` borrowed */
	void (*on_message)(void *udata, const char *channel, const char *line, size_t len);
	void (*on_gap)(void *udata);    /* the connection broke: lines may be lost */
	void *udata;
	const char *health;             /* the part's name in core/health.h; NULL: none */
} ps_sub_options;

/* Starts a subscriber on `redis_url`. The caller owns *out (ps_sub_stop). */
int ps_sub_start(ps_sub **out, const char *redis_url, const ps_sub_options *opt);

/* Waits up to timeout_ms until the subscription is in place (messages
 * published from then on arrive). 0, or ERR_TIMEOUT. */
int ps_sub_wait_ready(ps_sub *s, int64_t timeout_ms);

/* Stops the thread and frees. NULL is a no-op. */
void ps_sub_stop(ps_sub *s);

#endif
