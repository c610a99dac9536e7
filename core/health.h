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

#endif
