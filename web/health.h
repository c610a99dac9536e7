/*
 * web/health — /healthz and /metrics on a role's listener, and the prober
 * that keeps what they read current.
 *
 *   GET /healthz  200 {"status": "ok", "role", "parts": {...}} when every
 *                 part registered in core/health is ok or degraded; 503 with
 *                 the same body naming the parts that are down otherwise.
 *                 The prober reports its own parts: "postgres" (SELECT 1 on
 *                 the role's pool) and "redis" (PING), each down after a
 *                 failed probe, with the reason.
 *   GET /metrics  the Prometheus text format 0.0.4 of core/metrics.
 *
 * Neither answer touches the database or Redis: the prober thread does,
 * every `interval_ms`, and also refreshes the database-wide gauges (runs by
 * state, the outbox's backlog, age and dead rows by kind, workers by
 * state), so a scrape costs the rendering of memory only.
 */
#ifndef ORCH_WEB_HEALTH_H
#define ORCH_WEB_HEALTH_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "web/web.h"

/* Database-wide figures of a part web/ does not reach (ARCHITECTURE §2):
 * *out (owned) {label: count}. The spawner's spw_report_worker_states is
 * one, installed by the command line. */
typedef int (*web_counts_fn)(pg_conn *c, json_t **out);

typedef struct web_health_opts {
	const char *role;      /* "serve", "engine", "bot", "spawner" */
	pg_pool *pool;         /* probed with SELECT 1; NULL: none (borrowed) */
	const char *redis_url; /* probed with PING; NULL: none */
	int64_t interval_ms;   /* between probes; 0: 5 s */
	int64_t db_metrics_ms; /* between refreshes of the database gauges; 0: 15 s, < 0: never */
	web_counts_fn worker_counts; /* workers by state; NULL: no orch_workers gauge */
} web_health_opts;

typedef struct web_health web_health;

/* Registers GET /healthz and GET /metrics on `s` (before it starts), runs
 * the first probe now and starts the prober's thread. The caller owns *out
 * (web_health_free, before the pool). */
int web_health_start(web_health **out, web_server *s, const web_health_opts *o);

/* Stops the prober and forgets its parts. NULL is a no-op. */
void web_health_free(web_health *h);

#endif
