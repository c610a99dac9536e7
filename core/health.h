/*
 * health — which long-running parts of this process are doing their work.
 *
 * A part (a relay, a listener, a consumer, a heartbeat, the bot's poller)
 * reports itself when it starts, when it stops and when its state changes:
 * "ok", "degraded" (working, but something is wrong: retrying, backing off)
 * or "down" (not doing its work). A change of state is logged once (warn for
 * degraded, error for down, info on recovery), never once per attempt.
 * /healthz, `status` and the heartbeats that publish a process's state read
 * the registry with health_snapshot(). Parts are named "area.part"
 * ("bot.relay", "engine.listener"). Thread-safe.
 */
#ifndef ORCH_CORE_HEALTH_H
#define ORCH_CORE_HEALTH_H

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>

typedef enum health_state {
	HEALTH_OK = 0,
	HEALTH_DEGRADED = 1,
	HEALTH_DOWN = 2,
} health_state;

/* Sets part `name`'s state and the reason (printf format; may be NULL for
 * none). The name is copied. Registers the part when it is new. A state
 * that differs from the previous one is logged; the same state with a new
 * reason only updates the reason. */
void health_report(const char *name, health_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Removes part `name` (a part stopped on purpose, at shutdown). Unknown
 * names are ignored. */
void health_forget(const char *name);

/* The worst state of all registered parts (HEALTH_OK when there are none). */
health_state health_worst(void);

/* A stable lowercase name: "ok", "degraded", "down". */
const char *health_state_name(health_state st);

/* A snapshot: {"name": {"state": "ok", "reason": "...", "since_ms": N}},
 * since_ms being the wall-clock time of the last change of state. The caller
 * owns the object; NULL when out of memory. */
json_t *health_snapshot(void);

/* Forgets every part (tests, and a process that starts its roles again). */
void health_reset(void);

/* --- publishing, for `orchestrator status` --- */

struct pg_pool;
struct pg_conn;
typedef struct health_pub health_pub;

/* Starts a thread that writes this process's registry (health_snapshot)
 * to the table process_health (migration 011) now and every `period_ms`
 * (0: 5 s), as the process "<role>-<host>-<pid>-<random>". A database
 * that cannot be reached is retried at the next period (status cannot
 * read it either). `pool` is borrowed and must outlive the publisher.
 * The caller owns *out. ERR_IO, ERR_NOMEM. */
int health_pub_start(health_pub **out, struct pg_pool *pool, const char *role,
		     int64_t period_ms);

/* Publishes once more (the parts as they are at shutdown are not kept:
 * the row is deleted, a stopped process is not a fault), stops the thread
 * and frees. NULL is a no-op. */
void health_pub_stop(health_pub *p);

/* For `status`: the processes that published within the last day, newest
 * first, as [{"process", "role", "host", "pid", "worst", "age_s", "alive"
 * (published within `stale_ms`), "parts": {name: {"state", "reason",
 * "since_ms"}}}], owned by the caller. ERR_DB. */
int health_status(struct pg_conn *c, int64_t stale_ms, json_t **out);

#endif
