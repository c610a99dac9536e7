#include "llm/ledger.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const pg_stmt STMT_RESERVE = {
	"llm_reserve",
	"SELECT reservation, refused_kind, refused_scope, limit_usd::float8, spent_usd::float8, "
	"reserved_usd::float8, period, extract(epoch FROM resets_at)::bigint "
	"FROM llm_reserve($1, $2, $3::numeric, $4::int, $5::numeric, $6::numeric, $7)",
	7,
};

static const pg_stmt STMT_INSERT = {
	"llm_insert_call",
	"INSERT INTO llm_calls (call_id, attempt, project, user_id, thread_id, run_id, node, worker, "
	"role, model, endpoint, tokens_in, tokens_out, estimated, cost_usd, latency_ms, queue_ms, "
	"http_status, outcome, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
	"$13, $14, $15::numeric, $16, $17, $18, $19, $20)",
	20,
};

static const pg_stmt STMT_SETTLE = {
	"llm_settle",
	"SELECT llm_settle($1::bigint, $2, $3, $4::numeric)",
	4,
};

static const pg_stmt STMT_BUDGET_SET = {
	"llm_budget_set",
	"SELECT llm_budget_set($1, $2, $3::numeric, $4)",
	4,
};

static const pg_stmt STMT_BUDGET_EXTEND = {
	"llm_budget_extend",
	"UPDATE llm_budgets SET limit_usd = limit_usd + $3::numeric, updated_at = now() "
	"WHERE kind = $1 AND scope = $2 RETURNING limit_usd::float8",
	3,
};

static const pg_stmt STMT_BUDGET_REMOVE = {
	"llm_budget_remove",
	"DELETE FROM llm_budgets WHERE kind = $1 AND scope = $2",
	2,
};

/* What a budget stands at now: a period that has passed reads as rolled
 * (nothing spent) before the next call rolls it in the table. */
static const pg_stmt STMT_BUDGET_LIST = {
	"llm_budget_list",
	"SELECT coalesce(json_agg(json_build_object('kind', b.kind, 'scope', b.scope, "
	"'period', b.period, 'limit_usd', b.limit_usd::float8, "
	"'spent_usd', CASE WHEN b.period_start < p.start THEN 0 ELSE b.spent_usd END::float8, "
	"'reserved_usd', coalesce((SELECT sum(r.amount_usd) FROM llm_reservations r "
	"WHERE r.expires_at > now() AND (p.start IS NULL OR r.created_at >= p.start) "
	"AND ((b.kind = 'project' AND r.project = b.scope) "
	"OR (b.kind = 'user' AND r.user_id = b.scope))), 0)::float8, "
	"'period_start', to_char(p.start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"'resets_at', to_char(llm_period_end(b.period, p.start) AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) ORDER BY b.kind, b.scope), '[]')::text "
	"FROM llm_budgets b CROSS JOIN LATERAL (SELECT llm_period_start(b.period, now()) AS start) p",
	0,
};

static const pg_stmt STMT_STATUS = {
	"llm_status",
	"SELECT json_build_object("
	"'schedulers', (SELECT coalesce(json_agg(json_build_object('instance', instance, "
	"'endpoint', endpoint, 'slots', slots, 'in_flight', in_flight, 'queued', queued, "
	"'granted', granted, 'wait_avg_ms', CASE WHEN granted > 0 THEN wait_total_ms / granted "
	"ELSE 0 END, 'wait_max_ms', wait_max_ms, 'oldest_wait_ms', oldest_wait_ms, "
	"'server_slots', server_slots, 'server_busy', server_busy, 'server_ctx', server_ctx, "
	"'age_s', extract(epoch FROM now() - updated_at), "
	"'stale', updated_at < now() - make_interval(secs => $1::int / 1000.0)) "
	"ORDER BY instance, endpoint), '[]') FROM llm_sched_stats), "
	"'projects', (SELECT coalesce(json_agg(p ORDER BY p.cost_usd DESC, p.project), '[]') FROM "
	"(SELECT coalesce(project, '(none)') AS project, count(*) AS calls, "
	"sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, "
	"sum(cost_usd)::float8 AS cost_usd, count(*) FILTER (WHERE outcome <> 'ok') AS failures "
	"FROM llm_calls GROUP BY project) p), "
	"'models', (SELECT coalesce(json_agg(m ORDER BY m.cost_usd DESC, m.model), '[]') FROM "
	"(SELECT model, endpoint, count(*) AS calls, sum(tokens_in) AS tokens_in, "
	"sum(tokens_out) AS tokens_out, sum(cost_usd)::float8 AS cost_usd, "
	"count(*) FILTER (WHERE outcome <> 'ok') AS failures, "
	"coalesce(avg(latency_ms) FILTER (WHERE outcome = 'ok'), 0) AS latency_avg_ms "
	"FROM llm_calls GROUP BY model, endpoint) m), "
	"'last_24h', (SELECT json_build_object('calls', count(*), "
	"'tokens_in', coalesce(sum(tokens_in), 0), 'tokens_out', coalesce(sum(tokens_out), 0), "
	"'cost_usd', coalesce(sum(cost_usd), 0)::float8, "
	"'failures', count(*) FILTER (WHERE outcome <> 'ok')) "
	"FROM llm_calls WHERE created_at > now() - interval '24 hours'))::text",
	1,
};

static const pg_stmt STMT_STATS_SAVE = {
	"llm_sched_save",
	"INSERT INTO llm_sched_stats (instance, endpoint, slots, in_flight, queued, granted, "
	"wait_total_ms, wait_max_ms, oldest_wait_ms, server_slots, server_busy, server_ctx, "
	"updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) "
	"ON CONFLICT (instance, endpoint) DO UPDATE SET slots = EXCLUDED.slots, "
	"in_flight = EXCLUDED.in_flight, queued = EXCLUDED.queued, granted = EXCLUDED.granted, "
	"wait_total_ms = EXCLUDED.wait_total_ms, wait_max_ms = EXCLUDED.wait_max_ms, "
	"oldest_wait_ms = EXCLUDED.oldest_wait_ms, server_slots = EXCLUDED.server_slots, "
	"server_busy = EXCLUDED.server_busy, server_ctx = EXCLUDED.server_ctx, updated_at = now()",
	12,
};

static const pg_stmt STMT_STATS_CLEAR = {
	"llm_sched_clear",
	"DELETE FROM llm_sched_stats WHERE instance = $1",
	1,
};

static const pg_stmt STMT_STATS_PRUNE = {
	"llm_sched_prune",
	"DELETE FROM llm_sched_stats WHERE updated_at < now() - interval '1 day'",
	0,
};

static void fmt_usd(char *out, size_t cap, double v)
{
	snprintf(out, cap, "%.9f", isfinite(v) && v > 0 ? v : 0.0);
}

const char *llm_budget_period_words(const char *period)
{
	if (period && strcmp(period, "day") == 0)
		return "today";
	if (period && strcmp(period, "week") == 0)
		return "this week";
	if (period && strcmp(period, "month") == 0)
		return "this month";
	return "in total";
}

void llm_budget_fmt_reset(int64_t at, char *out, size_t cap)
{
	time_t t = (time_t)at;
	struct tm tm;

	if (at <= 0 || !gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(out, cap, "never");
}

/* The ERR_BUDGET message: the figures of the period, when it resets, and
 * the commands that raise it. */
static int refusal(const llm_budget_info *b)
{
	char resets[64] = "";
	int periodic = strcmp(b->period, "total") != 0;

	if (periodic) {
		size_t n;
		snprintf(resets, sizeof(resets), "; resets ");
		n = strlen(resets);
		llm_budget_fmt_reset(b->resets_at, resets + n, sizeof(resets) - n);
	}
	return err_set(ERR_BUDGET,
		       "the %s budget of '%s' would be exceeded: %s %s spent $%.4f of $%.4f %s, "
		       "$%.4f more is reserved by calls in flight, and this call may cost up to "
		       "$%.4f%s; raise it with 'orchestrator llm budget set --%s %s --limit USD%s%s' "
		       "or 'orchestrator llm budget extend --%s %s --add USD'",
		       b->kind, b->scope, b->kind, b->scope, b->spent_usd, b->limit_usd,
		       llm_budget_period_words(b->period), b->reserved_usd, b->needed_usd, resets,
		       b->kind, b->scope, periodic ? " --per " : "", periodic ? b->period : "",
		       b->kind, b->scope);
}

int llm_ledger_reserve(pg_conn *c, const char *project, const char *user, double amount,
		       int64_t ttl_ms, double project_default, double user_default,
		       const char *default_period, int64_t *out_id, llm_budget_info *refused)
{
	char amt[40], ttl[24], pd[40], ud[40];
	const char *params[7] = {project, user, amt, ttl, project_default >= 0 ? pd : NULL,
				 user_default >= 0 ? ud : NULL,
				 default_period && *default_period ? default_period : "total"};
	PGresult *r = NULL;
	int rc;

	*out_id = 0;
	if (!project && !user)
		return 0;
	fmt_usd(amt, sizeof(amt), amount);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 3600000));
	fmt_usd(pd, sizeof(pd), project_default);
	fmt_usd(ud, sizeof(ud), user_default);
	rc = pg_exec_stmt(c, &r, &STMT_RESERVE, params);
	if (rc < 0)
		return err_wrap("reserving the budget of a model call");
	if (!pg_isnull(r, 0, 0)) {
		*out_id = pg_int(r, 0, 0);
		PQclear(r);
		return 0;
	}
	memset(refused, 0, sizeof(*refused));
	snprintf(refused->kind, sizeof(refused->kind), "%s", pg_val(r, 0, 1));
	snprintf(refused->scope, sizeof(refused->scope), "%s", pg_val(r, 0, 2));
	refused->limit_usd = strtod(pg_val(r, 0, 3), NULL);
	refused->spent_usd = strtod(pg_val(r, 0, 4), NULL);
	refused->reserved_usd = strtod(pg_val(r, 0, 5), NULL);
	refused->needed_usd = amount;
	snprintf(refused->period, sizeof(refused->period), "%s",
		 pg_isnull(r, 0, 6) ? "total" : pg_val(r, 0, 6));
	refused->resets_at = pg_isnull(r, 0, 7) ? 0 : pg_int(r, 0, 7);
	PQclear(r);
	return refusal(refused);
}

int llm_ledger_record(pg_conn *c, const llm_ledger_row *row, int settle, int64_t res)
{
	char attempt[16], thread[24], run[24], tin[24], tout[24], cost[40], lat[32], q[32], st[16],
		resid[24];
	const char *ins[20] = {row->call_id, attempt, row->project, row->user,
			       row->thread_id ? thread : NULL, row->run_id ? run : NULL, row->node,
			       row->worker, row->role, row->model, row->endpoint, tin, tout,
			       row->estimated ? "t" : "f", cost, lat, q,
			       row->http_status ? st : NULL, row->outcome, row->error};
	const char *set[4] = {res ? resid : NULL, row->project, row->user, cost};
	pg_pipe p;
	int rc;

	snprintf(attempt, sizeof(attempt), "%d", row->attempt);
	snprintf(thread, sizeof(thread), "%lld", (long long)row->thread_id);
	snprintf(run, sizeof(run), "%lld", (long long)row->run_id);
	snprintf(tin, sizeof(tin), "%lld", (long long)row->tokens_in);
	snprintf(tout, sizeof(tout), "%lld", (long long)row->tokens_out);
	fmt_usd(cost, sizeof(cost), row->cost_usd);
	snprintf(lat, sizeof(lat), "%.3f", row->latency_ms);
	snprintf(q, sizeof(q), "%.3f", row->queue_ms);
	snprintf(st, sizeof(st), "%d", row->http_status);
	snprintf(resid, sizeof(resid), "%lld", (long long)res);
	pg_pipe_init(&p);
	pg_pipe_add(&p, &STMT_INSERT, ins);
	if (settle && (res || row->cost_usd > 0) && (row->project || row->user))
		pg_pipe_add(&p, &STMT_SETTLE, set);
	rc = pg_pipe_run(&p, c);
	pg_pipe_clear(&p);
	if (rc < 0)
		return err_wrap("writing the LLM ledger");
	return 0;
}

static int check_kind(const char *kind)
{
	if (!kind || (strcmp(kind, "project") != 0 && strcmp(kind, "user") != 0))
		return err_set(ERR_INVALID, "a budget's kind is 'project' or 'user', not '%s'",
			       kind ? kind : "");
	return 0;
}

int llm_budget_period_check(const char *period)
{
	static const char *const known[] = {"total", "day", "week", "month"};

	for (size_t i = 0; period && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(period, known[i]) == 0)
			return 0;
	return err_set(ERR_INVALID, "a budget's period is total, day, week or month (calendar "
				    "periods in UTC, weeks from Monday), not '%s'",
		       period ? period : "");
}

int llm_budget_set(pg_conn *c, const char *kind, const char *scope, double limit_usd,
		   const char *period)
{
	char lim[40];
	const char *params[4] = {kind, scope, lim, period};
	int rc = check_kind(kind);

	if (rc < 0)
		return rc;
	if (!scope || !*scope)
		return err_set(ERR_INVALID, "a budget needs a scope (a project or user name)");
	if (!isfinite(limit_usd) || limit_usd < 0)
		return err_set(ERR_INVALID, "a budget's limit must be a non-negative amount of USD");
	if (period && llm_budget_period_check(period) < 0)
		return ERR_INVALID;
	fmt_usd(lim, sizeof(lim), limit_usd);
	return pg_exec_stmt(c, NULL, &STMT_BUDGET_SET, params);
}

int llm_budget_extend(pg_conn *c, const char *kind, const char *scope, double add_usd,
		      double *out_limit)
{
	char add[40];
	const char *params[3] = {kind, scope, add};
	PGresult *r = NULL;
	int rc = check_kind(kind);

	if (rc < 0)
		return rc;
	if (!isfinite(add_usd) || add_usd <= 0)
		return err_set(ERR_INVALID, "extend a budget by a positive amount of USD");
	fmt_usd(add, sizeof(add), add_usd);
	rc = pg_exec_stmt(c, &r, &STMT_BUDGET_EXTEND, params);
	if (rc < 0)
		return rc;
	if (pg_rows(r) == 0) {
		PQclear(r);
		return err_set(ERR_NOTFOUND, "the %s '%s' has no budget (set one with 'orchestrator "
					     "llm budget set --%s %s --limit USD')", kind, scope, kind,
			       scope);
	}
	if (out_limit)
		*out_limit = strtod(pg_val(r, 0, 0), NULL);
	PQclear(r);
	return 0;
}

json_t *llm_budget_extension(const char *grant_key, const char *kind, const char *scope,
			     double add_usd)
{
	char add[40];

	fmt_usd(add, sizeof(add), add_usd);
	return json_pack("{s:s?, s:s?, s:s?, s:s}", "grant_key", grant_key, "kind", kind, "scope",
			 scope, "add_usd", add);
}

int llm_budget_remove(pg_conn *c, const char *kind, const char *scope)
{
	const char *params[2] = {kind, scope};
	PGresult *r = NULL;
	int rc = check_kind(kind);

	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &r, &STMT_BUDGET_REMOVE, params);
	if (rc == 0 && pg_affected(r) == 0)
		rc = err_set(ERR_NOTFOUND, "the %s '%s' has no budget", kind, scope);
	PQclear(r);
	return rc;
}

static int json_result(pg_conn *c, const pg_stmt *st, const char *const *params, json_t **out)
{
	PGresult *r = NULL;
	json_error_t e;
	int rc;

	*out = NULL;
	rc = pg_exec_stmt(c, &r, st, params);
	if (rc < 0)
		return rc;
	*out = json_loads(pg_val(r, 0, 0), 0, &e);
	PQclear(r);
	if (!*out)
		return err_set(ERR_PARSE, "%s: bad JSON from the database: %s", st->name, e.text);
	return 0;
}

int llm_budget_list(pg_conn *c, json_t **out)
{
	return json_result(c, &STMT_BUDGET_LIST, NULL, out);
}

int llm_status(pg_conn *c, int64_t stale_ms, json_t **out)
{
	char ms[24];
	const char *params[1] = {ms};
	json_t *budgets = NULL;
	int rc;

	snprintf(ms, sizeof(ms), "%lld", (long long)stale_ms);
	rc = json_result(c, &STMT_STATUS, params, out);
	if (rc == 0)
		rc = llm_budget_list(c, &budgets);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
		return rc;
	}
	json_object_set_new(*out, "budgets", budgets);
	return 0;
}

int llm_sched_stats_save(pg_conn *c, const char *instance, const llm_sched_stats *st,
			 const llm_server_slots *srv, int n)
{
	pg_pipe p;
	char v[PG_PIPE_MAX][10][32];
	const char *params[PG_PIPE_MAX][12];
	int rc = 0;

	for (int base = 0; base < n && rc == 0; base += PG_PIPE_MAX - 1) {
		int k = n - base < PG_PIPE_MAX - 1 ? n - base : PG_PIPE_MAX - 1;
		pg_pipe_init(&p);
		for (int i = 0; i < k; i++) {
			const llm_sched_stats *s = &st[base + i];
			snprintf(v[i][0], 32, "%d", s->slots);
			snprintf(v[i][1], 32, "%d", s->in_flight);
			snprintf(v[i][2], 32, "%d", s->queued);
			snprintf(v[i][3], 32, "%lld", (long long)s->granted);
			snprintf(v[i][4], 32, "%.3f", s->wait_total_ms);
			snprintf(v[i][5], 32, "%.3f", s->wait_max_ms);
			snprintf(v[i][6], 32, "%.3f", s->oldest_wait_ms);
			params[i][0] = instance;
			params[i][1] = s->name;
			for (int j = 0; j < 7; j++)
				params[i][2 + j] = v[i][j];
			if (srv && srv[base + i].total > 0) {
				snprintf(v[i][7], 32, "%d", srv[base + i].total);
				snprintf(v[i][8], 32, "%d", srv[base + i].busy);
				snprintf(v[i][9], 32, "%lld", (long long)srv[base + i].n_ctx);
				for (int j = 7; j < 10; j++)
					params[i][2 + j] = v[i][j];
			} else {
				for (int j = 7; j < 10; j++)
					params[i][2 + j] = NULL;
			}
			pg_pipe_add(&p, &STMT_STATS_SAVE, params[i]);
		}
		if (base == 0)
			pg_pipe_add(&p, &STMT_STATS_PRUNE, NULL);
		rc = pg_pipe_run(&p, c);
		pg_pipe_clear(&p);
	}
	return rc;
}

static const pg_stmt STMT_STATS_OTHERS = {
	"llm_sched_stats_others",
	"DELETE FROM llm_sched_stats WHERE instance = $1 AND NOT (endpoint = ANY ($2::text[]))", 2,
};

int llm_sched_stats_keep(pg_conn *c, const char *instance, const llm_sched_stats *st, int n)
{
	const char *names[128];
	const char *params[2];
	buf arr;
	int rc;

	buf_init(&arr, 0);
	for (int i = 0; i < n && i < 128; i++)
		names[i] = st[i].name;
	rc = pg_text_array(&arr, names, (size_t)(n < 128 ? n : 128));
	params[0] = instance;
	params[1] = buf_cstr(&arr);
	if (rc == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_STATS_OTHERS, params);
	buf_free(&arr);
	return rc;
}

int llm_sched_stats_clear(pg_conn *c, const char *instance)
{
	const char *params[1] = {instance};
	return pg_exec_stmt(c, NULL, &STMT_STATS_CLEAR, params);
}

static const pg_stmt STMT_COST_SERIES = {
	"llm_cost_series",
	"WITH c AS (SELECT * FROM llm_calls WHERE $1::text IS NULL OR project = $1) "
	"SELECT json_build_object("
	"'over_time', (SELECT coalesce(json_agg(x ORDER BY x.t), '[]') FROM (SELECT "
	"to_char(date_trunc('minute', created_at) AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD\"T\"HH24:MI:00\"Z\"') AS t, sum(cost_usd)::float8 AS cost_usd, "
	"sum(tokens_in + tokens_out) AS tokens, count(*) AS calls FROM c GROUP BY 1 "
	"ORDER BY 1 DESC LIMIT 500) x), "
	"'by_role', (SELECT coalesce(json_agg(x ORDER BY x.cost_usd DESC, x.role), '[]') FROM "
	"(SELECT coalesce(role, '?') AS role, sum(cost_usd)::float8 AS cost_usd, "
	"sum(tokens_in + tokens_out) AS tokens, count(*) AS calls FROM c GROUP BY 1) x), "
	"'by_model', (SELECT coalesce(json_agg(x ORDER BY x.cost_usd DESC, x.model), '[]') FROM "
	"(SELECT model, endpoint, sum(cost_usd)::float8 AS cost_usd, sum(tokens_in + tokens_out) "
	"AS tokens, count(*) AS calls FROM c GROUP BY 1, 2) x))::text",
	1,
};

int llm_cost_series(pg_conn *c, const char *project, json_t **out)
{
	const char *params[1] = {project};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_COST_SERIES, params);

	*out = NULL;
	if (rc == 0) {
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
		if (!*out)
			rc = err_set(ERR_PARSE, "the cost series did not parse");
	}
	PQclear(r);
	return rc;
}

/* --- reading the ledger --- */

static const pg_stmt STMT_COSTS = {
	"llm_ledger_costs",
	"SELECT project, coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
	"coalesce(sum(cost_usd), 0)::float8 FROM llm_calls WHERE project = ANY ($1::text[]) "
	"GROUP BY project",
	1,
};

int llm_ledger_costs(pg_conn *c, const char *const *projects, size_t n, llm_cost *out)
{
	const char *params[1];
	PGresult *r = NULL;
	buf arr;
	int rc;

	memset(out, 0, n * sizeof(*out));
	if (n == 0)
		return 0;
	buf_init(&arr, 0);
	rc = pg_text_array(&arr, projects, n);
	params[0] = buf_cstr(&arr);
	if (rc == 0)
		rc = pg_exec_stmt(c, &r, &STMT_COSTS, params);
	for (int i = 0; rc == 0 && i < pg_rows(r); i++)
		for (size_t k = 0; k < n; k++) {
			if (!projects[k] || strcmp(projects[k], pg_val(r, i, 0)) != 0)
				continue;
			out[k].tokens_in = pg_int(r, i, 1);
			out[k].tokens_out = pg_int(r, i, 2);
			out[k].cost_usd = strtod(pg_val(r, i, 3), NULL);
		}
	PQclear(r);
	buf_free(&arr);
	return rc;
}

static const pg_stmt STMT_BY_ROLE = {
	"llm_ledger_by_role",
	"SELECT json_agg(x ORDER BY x.role)::text FROM (SELECT coalesce(role, '?') AS role, "
	"count(*) AS calls, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, "
	"sum(cost_usd)::float8 AS cost_usd, count(*) FILTER (WHERE outcome <> 'ok') AS failed "
	"FROM llm_calls WHERE project = $1 GROUP BY role) x",
	1,
};

static const pg_stmt STMT_CALLS = {
	"llm_ledger_calls",
	"SELECT json_agg(x ORDER BY x.role)::text FROM (SELECT coalesce(role, 'default') AS role, "
	"count(DISTINCT call_id) FILTER (WHERE outcome <> 'budget') AS calls, "
	"coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out, "
	"coalesce(sum(cost_usd), 0)::float8 AS cost_usd FROM llm_calls WHERE project = $1 "
	"GROUP BY 1) x",
	1,
};

static const pg_stmt STMT_WORKER_COSTS = {
	"llm_ledger_worker_costs",
	"SELECT json_agg(x)::text FROM (SELECT worker, sum(tokens_in) AS tokens_in, "
	"sum(tokens_out) AS tokens_out, sum(cost_usd)::float8 AS cost_usd FROM llm_calls "
	"WHERE project = $1 GROUP BY worker) x",
	1,
};

/* The JSON array a one-value statement returns, into *out (owned; an empty
 * array for NULL). */
static int json_rows(pg_conn *c, const pg_stmt *st, const char *project, json_t **out)
{
	const char *params[1] = {project};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, st, params);

	*out = NULL;
	if (rc == 0 && pg_rows(r) == 1 && !pg_isnull(r, 0, 0))
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
	else if (rc == 0)
		*out = json_array();
	PQclear(r);
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
}

int llm_ledger_by_role(pg_conn *c, const char *project, json_t **out)
{
	return json_rows(c, &STMT_BY_ROLE, project, out);
}

int llm_ledger_calls(pg_conn *c, const char *project, json_t **out)
{
	return json_rows(c, &STMT_CALLS, project, out);
}

int llm_ledger_worker_costs(pg_conn *c, const char *project, json_t **out)
{
	return json_rows(c, &STMT_WORKER_COSTS, project, out);
}

static const pg_stmt STMT_BUDGET_GET = {
	"llm_budget_get",
	"SELECT limit_usd::float8, spent_usd::float8 FROM llm_budgets WHERE kind = $1 "
	"AND scope = $2",
	2,
};

int llm_budget_get(pg_conn *c, const char *kind, const char *scope, int *found,
		   double *limit_usd, double *spent_usd)
{
	const char *params[2] = {kind, scope};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_BUDGET_GET, params);

	*found = rc == 0 && pg_rows(r) > 0;
	if (*found && limit_usd)
		*limit_usd = strtod(pg_val(r, 0, 0), NULL);
	if (*found && spent_usd)
		*spent_usd = strtod(pg_val(r, 0, 1), NULL);
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_USAGE = {
	"llm_ledger_usage",
	"SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
	"coalesce(sum(cost_usd), 0)::float8, "
	"coalesce((SELECT json_agg(x ORDER BY x.cost_usd DESC, x.role) FROM (SELECT coalesce(role, "
	"'?') AS role, count(*) AS calls, sum(tokens_in) AS tokens_in, sum(tokens_out) AS "
	"tokens_out, sum(cost_usd)::float8 AS cost_usd FROM llm_calls WHERE $1::text IS NULL OR "
	"project = $1 GROUP BY 1) x), '[]')::text, "
	"coalesce((SELECT json_agg(y ORDER BY y.cost_usd DESC, y.model) FROM (SELECT model, "
	"endpoint, count(*) AS calls, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, "
	"sum(cost_usd)::float8 AS cost_usd FROM llm_calls WHERE $1::text IS NULL OR project = $1 "
	"GROUP BY 1, 2) y), '[]')::text FROM llm_calls WHERE $1::text IS NULL OR project = $1",
	1,
};

int llm_ledger_usage(pg_conn *c, const char *project, int64_t *out_calls, llm_cost *out_total,
		     json_t **out_by_role, json_t **out_by_model)
{
	const char *params[1] = {project};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_USAGE, params);

	*out_calls = 0;
	memset(out_total, 0, sizeof(*out_total));
	*out_by_role = NULL;
	*out_by_model = NULL;
	if (rc == 0 && pg_rows(r) == 1) {
		*out_calls = pg_int(r, 0, 0);
		out_total->tokens_in = pg_int(r, 0, 1);
		out_total->tokens_out = pg_int(r, 0, 2);
		out_total->cost_usd = strtod(pg_val(r, 0, 3), NULL);
		*out_by_role = json_loads(pg_val(r, 0, 4), 0, NULL);
		*out_by_model = json_loads(pg_val(r, 0, 5), 0, NULL);
	}
	PQclear(r);
	if (rc == 0 && (!*out_by_role || !*out_by_model)) {
		json_decref(*out_by_role);
		json_decref(*out_by_model);
		*out_by_role = NULL;
		*out_by_model = NULL;
		rc = err_set(ERR_NOMEM, "out of memory");
	}
	return rc;
}
