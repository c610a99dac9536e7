/*
 * ledger — every model call and every budget, in PostgreSQL.
 *
 * Each HTTP attempt at a model is one row of llm_calls (who asked: project,
 * user, thread, run, node or worker; what: role, model, endpoint; what it
 * cost: tokens, USD, latency, time queued; how it ended: outcome). Budgets
 * (llm_budgets) limit what a project or a user may spend: before a call its
 * worst-case cost (prompt estimate and max_tokens at the model's prices) is
 * reserved against both, and the call is refused with ERR_BUDGET when that
 * would pass a limit; after the call the reservation is replaced by the
 * actual cost. A reservation of a process that died expires on its own.
 * A budget counts in total or per calendar day, week or month (UTC): the
 * spending of a period is what settled in it, a reservation holds against
 * the period it was made in, and reserving or settling rolls a budget
 * whose period has passed (migrations/007_llm_budget_periods.sql).
 *
 * Every function runs on a borrowed connection; the row and its settlement
 * go in one pipelined round trip. Costs are USD as numeric(18,9).
 */
#ifndef ORCH_LLM_LEDGER_H
#define ORCH_LLM_LEDGER_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "llm/sched.h"
#include "llm/server.h"
#include "llm/wire.h"

typedef struct llm_ledger_row {
	const char *call_id;
	int attempt;
	const char *project, *user;  /* may be NULL */
	int64_t thread_id, run_id;   /* 0: none */
	const char *node, *worker, *role; /* may be NULL */
	const char *model, *endpoint;
	int64_t tokens_in, tokens_out;
	int estimated;
	double cost_usd, latency_ms, queue_ms;
	int http_status;             /* 0: none */
	const char *outcome;         /* "ok", "http_429", "timeout", "budget", ... */
	const char *error;           /* may be NULL */
} llm_ledger_row;

/* Reserves `amount` USD for ttl_ms against the budgets of `project` and
 * `user` (either may be NULL). A scope without a budget gets one with the
 * default limit when it is >= 0, with period `default_period` (NULL:
 * "total"; see llm_budget_set), starting with the scope's spending in the
 * current period. Returns 0 with *out_id
 * (0 when there was nothing to reserve against), or ERR_BUDGET with
 * *refused filled and a message giving the period's figures, when it
 * resets and how to raise the budget. */
int llm_ledger_reserve(pg_conn *c, const char *project, const char *user, double amount,
		       int64_t ttl_ms, double project_default, double user_default,
		       const char *default_period,
		       int64_t *out_id, llm_budget_info *refused);

/* Writes `row` and, when `settle` is set, releases reservation `res` (0:
 * none) and adds the row's cost to the budgets of its project and user;
 * one round trip. */
int llm_ledger_record(pg_conn *c, const llm_ledger_row *row, int settle, int64_t res);

/* Sets the limit of a budget (kind "project" or "user") and, unless
 * `period` is NULL, its period: "total" (never resets), "day", "week" or
 * "month" (calendar periods in UTC, weeks from Monday). A new budget, or
 * one whose period changes, starts with the scope's spending in the
 * current period from the ledger; NULL keeps an existing budget's period
 * and gives a new one "total". ERR_INVALID for a bad kind, scope, limit
 * or period. */
int llm_budget_set(pg_conn *c, const char *kind, const char *scope, double limit_usd,
		   const char *period);

/* 0 when `period` is one of total, day, week, month; else ERR_INVALID with
 * a message listing them. */
int llm_budget_period_check(const char *period);

/* "today", "this week", "this month" or "in total", for messages. */
const char *llm_budget_period_words(const char *period);

/* Formats a reset time (Unix seconds) as "2026-12-01 00:00 UTC"; "never"
 * when at <= 0. */
void llm_budget_fmt_reset(int64_t at, char *out, size_t cap);

/* Raises a budget's limit by `add_usd` (what the person's "extend" button
 * does). ERR_NOTFOUND when the scope has no budget. *out_limit (may be
 * NULL) gets the new limit. */
int llm_budget_extend(pg_conn *c, const char *kind, const char *scope, double add_usd,
		      double *out_limit);

/* A budget extension as an effect of a graph step: the outbox row kind and
 * its payload. A node writes it with eng_emit(ctx, LLM_BUDGET_EXTEND_KIND,
 * NULL, llm_budget_extension(...)); the database applies it in the step's
 * own transaction (migrations/040_llm_budget_grants.sql), so the budget is
 * raised exactly when the step's checkpoint commits, and once per
 * `grant_key` however often the row is written. The payload is new (NULL
 * when out of memory); ERR_INVALID-worthy input (bad kind, no scope, an
 * amount <= 0) makes the step's commit fail. */
#define LLM_BUDGET_EXTEND_KIND "llm.budget_extend"
json_t *llm_budget_extension(const char *grant_key, const char *kind, const char *scope,
			     double add_usd);

/* Deletes a budget: the scope then has no limit. */
int llm_budget_remove(pg_conn *c, const char *kind, const char *scope);

/* The budgets as they stand now, an array of {kind, scope, period,
 * limit_usd, spent_usd (in the current period), reserved_usd (by calls
 * reserved in it), period_start, resets_at (ISO 8601 UTC; null for
 * "total")}. */
int llm_budget_list(pg_conn *c, json_t **out);

/* The LLM part of `orchestrator status`: {"schedulers": [...per serving
 * process and endpoint...], "projects": [...], "models": [...],
 * "budgets": [...], "last_24h": {...}}. Figures of schedulers not updated
 * for stale_ms are marked stale. */
int llm_status(pg_conn *c, int64_t stale_ms, json_t **out);

/* What `project` (NULL: every project) spent, for charts: {"over_time":
 * [{"t" (the minute, ISO 8601 UTC), "cost_usd", "tokens", "calls"}]
 * (the last 500 minutes with calls), "by_role": [{"role", "cost_usd",
 * "tokens", "calls"}], "by_model": [{"model", "endpoint", "cost_usd",
 * "tokens", "calls"}]}. */
int llm_cost_series(pg_conn *c, const char *project, json_t **out);

/* --- reading the ledger (what other parts report) --- */

/* What a project (or a worker) spent. */
typedef struct llm_cost {
	int64_t tokens_in, tokens_out;
	double cost_usd;
} llm_cost;

/* What each of projects[0..n) spent in all (every row of the ledger, of
 * its nodes and its workers): out[i] for projects[i], zeros for a project
 * without calls. One round trip. ERR_DB, ERR_NOMEM. */
int llm_ledger_costs(pg_conn *c, const char *const *projects, size_t n, llm_cost *out);

/* A project's spending per model role, by role (NULL roles as "?"), into
 * *out (an array the caller owns, empty when there were no calls):
 * [{"role", "calls" (HTTP attempts), "tokens_in", "tokens_out",
 * "cost_usd", "failed" (attempts whose outcome was not "ok")}]. */
int llm_ledger_by_role(pg_conn *c, const char *project, json_t **out);

/* A project's logical calls per role (NULL roles as "default"), by role,
 * into *out (owned): [{"role", "calls" (distinct call ids, but those a
 * budget refused), "tokens_in", "tokens_out", "cost_usd" (every attempt)}]. */
int llm_ledger_calls(pg_conn *c, const char *project, json_t **out);

/* A project's spending per worker into *out (owned): [{"worker" (null:
 * the calls of its nodes), "tokens_in", "tokens_out", "cost_usd"}]. */
int llm_ledger_worker_costs(pg_conn *c, const char *project, json_t **out);

/* What `project` (NULL: every project) spent in all: *out_calls HTTP
 * attempts, *out_total their tokens and cost, and per role and per model,
 * most expensive first, into *out_by_role (owned): [{"role" (NULL as "?"),
 * "calls", "tokens_in", "tokens_out", "cost_usd"}] and *out_by_model
 * (owned): [{"model", "endpoint", "calls", "tokens_in", "tokens_out",
 * "cost_usd"}]. One round trip. */
int llm_ledger_usage(pg_conn *c, const char *project, int64_t *out_calls, llm_cost *out_total,
		     json_t **out_by_role, json_t **out_by_model);

/* The budget of `kind` ("project" or "user") `scope`: *found 1 with its
 * limit and what was spent in its current period (either pointer may be
 * NULL), or *found 0 when the scope has no budget. ERR_DB. */
int llm_budget_get(pg_conn *c, const char *kind, const char *scope, int *found,
		   double *limit_usd, double *spent_usd);

/* Persists a scheduler's figures for this process (`instance`), with the
 * slots each endpoint's server reports, srv[i] beside st[i] (srv may be
 * NULL; a total of 0 is stored as unknown). */
int llm_sched_stats_save(pg_conn *c, const char *instance, const llm_sched_stats *st,
			 const llm_server_slots *srv, int n);

/* Removes this process's figures of endpoints other than those of st[0..n)
 * (a configuration that dropped an endpoint). */
int llm_sched_stats_keep(pg_conn *c, const char *instance, const llm_sched_stats *st, int n);

/* Removes this process's figures (at shutdown). */
int llm_sched_stats_clear(pg_conn *c, const char *instance);

#endif
