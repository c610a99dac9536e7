/*
 * live — the engine's streams (engine/stream.h) between processes, over
 * Redis pub/sub (core/pubsub.h).
 *
 * Every process that runs graphs or workers publishes the events of its
 * hub; every process that shows them (the bot, `orchestrator chat`, `run
 * --stream`, the web pages) subscribes, and finds in its own hub the events
 * of every process. One channel per thread,
 * "orch:<db>:<scope>:stream:<thread id>", and "orch:<db>:<scope>:stream:gap"
 * where a publisher tells what it had to drop (Redis unreachable, its queue
 * full); <db> is REDIS_URL's database, as pub/sub ignores the database, and
 * <scope> names the PostgreSQL database the threads live in (a hash of its
 * host, port and name), so deployments sharing a Redis never meet. Measured against PostgreSQL's NOTIFY for
 * this (make bench, README): pub/sub carries many times more events per
 * second at a fraction of the latency, writes nothing durable, and a slow
 * or absent reader costs the writers nothing; NOTIFY serialises the
 * committing transactions of the whole database.
 *
 * Events are lossy by design: what a subscriber misses while its
 * connection is down it is told about (a dropped event), never given late.
 */
#ifndef ORCH_BOT_LIVE_H
#define ORCH_BOT_LIVE_H

#include <stdint.h>

#include "engine/stream.h"

typedef struct bot_live bot_live;

typedef struct bot_live_options {
	const char *redis_url;
	const char *database_url; /* the threads' database (its host, port and name
				   * scope the channels); NULL: unscoped */
	int publish;        /* this process's events go to Redis */
	unsigned modes;     /* the modes published; 0: ENG_STREAM_DEFAULT */
	int subscribe;      /* the other processes' events come into the hub */
	int64_t thread_id;  /* subscribe to this thread only; 0: every thread */
} bot_live_options;

/* The modes of ORCH_STREAM_MODES ("updates,custom", "all"; unset: the
 * default modes) into *out. ERR_INVALID naming the variable. */
int bot_live_modes_from_env(unsigned *out);

/* Connects `hub` (borrowed; it must outlive the bridge) to Redis as `opt`
 * says. Redis need not be up: both sides wait for it. The caller owns *out
 * (bot_live_stop). Health parts "stream.publish" and "stream.subscribe". */
int bot_live_start(bot_live **out, eng_stream_hub *hub, const bot_live_options *opt);

/* Waits up to timeout_ms until the subscription is in place. */
int bot_live_wait_ready(bot_live *l, int64_t timeout_ms);

/* Waits up to timeout_ms until what was published so far left for Redis. */
int bot_live_flush(bot_live *l, int64_t timeout_ms);

/* Stops the bridge (the hub's tap is removed) and frees. NULL is a no-op. */
void bot_live_stop(bot_live *l);

#endif
