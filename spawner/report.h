/*
 * report — what other parts read of the spawner's workers table: one
 * worker's row, a thread's workers. Only reads, on the caller's
 * connection. ERR_DB on a database error.
 */
#ifndef ORCH_SPAWNER_REPORT_H
#define ORCH_SPAWNER_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

/* One worker as `orchestrator logs` shows it ("" for what is not set). */
typedef struct spw_worker_info {
	char task[256], project[256], state[32], status[32], owner[256], reason[4096];
	int64_t attempt;
} spw_worker_info;

/* The worker `id` into *out: *found 0 when there is no such worker. */
int spw_report_worker(pg_conn *c, const char *id, int *found, spw_worker_info *out);

/* Every worker of thread `thread_id`, oldest first, into *out (an array the
 * caller owns, empty when none): {"id", "task", "mode" ("work" when not
 * set), "state", "status", "attempt", "reason", "tests" (the verdict),
 * "tokens_in", "tokens_out", "cost_usd", "branch", "commit", "progress",
 * "started" ("YYYY-MM-DD HH:MM:SSZ")}. */
int spw_report_workers(pg_conn *c, int64_t thread_id, json_t **out);

/* The worker `id` as the dashboard shows it, into *out (owned; NULL when
 * there is no such worker): {"id", "task", "project", "state", "status",
 * "progress", "reason", "finished"}. */
int spw_report_worker_json(pg_conn *c, const char *id, json_t **out);

/* The repository and the commit of the latest merge of task `task` in
 * thread `thread_id` that ended "done", into repo[rcap] and commit[ccap]
 * ("" when there is none). */
int spw_report_merge(pg_conn *c, int64_t thread_id, const char *task, char *repo, size_t rcap,
		     char *commit, size_t ccap);

/* How many workers not finished each state has: *out (owned) {state:
 * count}, only the states that have workers (the /metrics gauge). */
int spw_report_worker_states(pg_conn *c, json_t **out);

/* The worker `id` as an MCP client sees it, into *out (owned; NULL when
 * there is no such worker): {"id", "task", "project", "mode" ("work" when
 * not set), "state", "status", "attempt", "reason", "tests" (the verdict),
 * "branch", "progress"}. */
int spw_report_worker_detail(pg_conn *c, const char *id, json_t **out);

#endif
