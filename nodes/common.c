/*
 * common — the helpers every factory node uses (nodes/nd_int.h) and the
 * project's costs from the ledger (nodes/factory.h).
 */
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "llm/ledger.h"
#include "nodes/nd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const nd_option ND_PROPOSAL_OPTS[3] = {
	{"approve", "✅ Approve"}, {"change", "✏️ Change"}, {"cancel", "🛑 Cancel"}};

int nd_need_chat(const nd_step *s)
{
	return s->p.has_chat ? 0 : err_set(ERR_INVALID, "the project has no chat to talk to");
}

int nd_tell(nd_step *s, const char *text)
{
	return nd_say(s->ctx, &s->p.chat, text);
}

int nd_tell_html(nd_step *s, const char *html)
{
	return nd_say_html(s->ctx, &s->p.chat, html);
}

void nd_log(json_t *update, const char *kind, const char *text, json_t *extra)
{
	json_t *log = json_object_get(update, "log");
	json_t *e = json_pack("{s:I, s:s, s:s}", "at", (json_int_t)util_wall_ms(), "kind", kind,
			      "text", text ? text : "");

	if (e && json_is_object(extra))
		json_object_update(e, extra);
	json_decref(extra);
	if (!e)
		return;
	if (!log) {
		log = json_array();
		json_object_set_new(update, "log", log);
	}
	json_array_append_new(log, e);
}

void nd_converse(nd_step *s, const char *role, const char *text, const char *reply)
{
	json_t *conv = json_object_get(s->up, "conversation");

	if (!conv) {
		conv = json_array();
		json_object_set_new(s->up, "conversation", conv);
	}
	json_array_append_new(conv, json_pack("{s:s, s:s, s:s*}", "role", role, "text",
					      text ? text : "", "reply", reply));
	s->p.conv_last_user = strcmp(role, "user") == 0;
}

int nd_next_ask(nd_step *s)
{
	return ++s->p.asks;
}

/* --- gates --- */

int nd_gate(eng_ctx *ctx, const char *const *keys, int n, json_t **out, int *which)
{
	*out = NULL;
	*which = -1;
	for (int i = 0; i < n; i++) {
		json_t *got = NULL;
		int rc = eng_take(ctx, keys[i], &got);

		if (rc < 0)
			return rc;
		if (json_array_size(got) > 0) {
			/* one at a time; the rest stay delivered for the next pass */
			*out = json_incref(json_array_get(got, 0));
			*which = i;
			json_decref(got);
			return 0;
		}
		json_decref(got);
	}
	for (int i = 0; i < n; i++)
		eng_wait(ctx, keys[i], NULL);
	return ERR_WAIT;
}

int nd_proposal_gate(nd_step *s, const char *what, int version, char *key, size_t cap,
		     json_t **out, int *which)
{
	const char *keys[2] = {key, "input"};
	int rc = nd_need_chat(s);

	*out = NULL;
	snprintf(key, cap, "%s:%d", what, version);
	return rc < 0 ? rc : nd_gate(s->ctx, keys, 2, out, which);
}

void nd_decide(nd_step *s, const char *key, const json_t *v, nd_decision *d)
{
	nd_decision_read(v, d);
	nd_log(s->up, "decision", d->option ? d->option : "expired",
	       json_pack("{s:s, s:O?}", "key", key, "by", d->by));
}

/* --- models --- */

void nd_llm_call(llm_call *call, const nd_step *s, const char *role, char *user_buf)
{
	memset(call, 0, sizeof(*call));
	user_buf[0] = '\0';
	if (s->p.user.id > 0)
		snprintf(user_buf, 32, "tg:%lld", (long long)s->p.user.id);
	call->role = role;
	call->project = eng_ctx_thread_key(s->ctx);
	call->user = user_buf[0] ? user_buf : NULL;
	call->thread_id = eng_ctx_thread_id(s->ctx);
	call->run_id = eng_ctx_run_id(s->ctx);
	call->node = eng_ctx_node(s->ctx);
	call->priority = strcmp(role, "brainstorm") == 0 ? LLM_PRIO_INTERACTIVE : LLM_PRIO_NORMAL;
}

int nd_llm_json(nd_step *s, const llm_call *call, const llm_message *msgs, size_t n,
		const json_t *schema, const char *schema_name, llm_response *resp)
{
	llm_request rq;

	llm_request_init(&rq);
	rq.messages = msgs;
	rq.n_messages = n;
	rq.json_schema = schema;
	rq.schema_name = schema_name;
	llm_response_free(resp);
	llm_response_init(resp);
	return llm_chat(s->app->llm, call, &rq, resp);
}

int nd_llm_failed(nd_step *s, int rc, const char *what)
{
	char msg[1400];
	int transient = (ENG_RETRY_TRANSIENT & ENG_RETRY_ON(rc)) != 0;

	if (transient && eng_ctx_attempt(s->ctx) < ND_LLM_ATTEMPTS)
		return rc;
	log_warn("factory", "thread %s: %s failed: %s", eng_ctx_thread_key(s->ctx), what,
		 err_last());
	snprintf(msg, sizeof(msg),
		 "⚠️ %s failed: %s\n\nNothing is lost: send any message to try again, or /cancel.",
		 what, err_last());
	nd_log(s->up, "error", msg, NULL);
	err_clear();
	s->p.rest = 1;
	return nd_tell(s, msg);
}

int nd_ask_budget(nd_step *s, const llm_budget_info *b, const char *resume)
{
	nd_pending *pd = &s->p.pending;
	char q[800], resets[80] = "";
	nd_option opts[2] = {{"extend", "💰 Extend budget"}, {"stop", "🛑 Stop"}};
	int rc;

	memset(pd, 0, sizeof(*pd));
	snprintf(pd->key, sizeof(pd->key), "budget:%d", nd_next_ask(s));
	if (b->resets_at > 0) {
		char at[40];
		llm_budget_fmt_reset(b->resets_at, at, sizeof(at));
		snprintf(resets, sizeof(resets), " (it resets %s)", at);
	}
	snprintf(q, sizeof(q),
		 "The %s budget of %s is reached: $%.4f spent %s (and $%.4f reserved) of $%.4f%s; "
		 "the next model call needs about $%.4f. Extend it by $%.2f, or stop the project?",
		 b->kind, b->scope, b->spent_usd, llm_budget_period_words(b->period),
		 b->reserved_usd, b->limit_usd, resets, b->needed_usd, s->app->cfg.budget_step);
	rc = nd_ask(s->ctx, &s->p.chat, pd->key, q, opts, 2);
	if (rc < 0)
		return rc;
	pd->present = 1;
	snprintf(pd->kind, sizeof(pd->kind), "budget");
	snprintf(pd->resume, sizeof(pd->resume), "%s", resume);
	snprintf(pd->budget_kind, sizeof(pd->budget_kind), "%s", b->kind);
	snprintf(pd->scope, sizeof(pd->scope), "%s", b->scope);
	nd_log(s->up, "question", q, json_pack("{s:s}", "key", pd->key));
	err_clear();
	return 0;
}

static const pg_stmt STMT_GRANT = {
	"nd_budget_grant",
	"INSERT INTO factory_budget_grants (grant_key, thread_id, kind, scope, add_usd) "
	"VALUES ($1, $2::bigint, $3, $4, $5::numeric) ON CONFLICT (grant_key) DO NOTHING "
	"RETURNING grant_key",
	5,
};

static const pg_stmt STMT_LIMIT = {
	"nd_budget_limit",
	"SELECT limit_usd::float8 FROM llm_budgets WHERE kind = $1 AND scope = $2",
	2,
};

/* The grant and the extension in one transaction on c. */
static int grant(pg_conn *c, const char *const *params, const char *kind, const char *scope,
		 double step, double *out_limit)
{
	PGresult *res = NULL;
	int rc = pg_exec(c, NULL, "BEGIN", 0, NULL);

	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_GRANT, params);
	if (rc == 0 && pg_rows(res) == 1) {
		rc = llm_budget_extend(c, kind, scope, step, out_limit);
		if (rc == ERR_NOTFOUND) /* no budget row: nothing limits it any more */
			rc = 0;
	}
	PQclear(res);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return rc;
}

int nd_budget_extend(eng_ctx *ctx, const char *key, const char *kind, const char *scope,
		     double *out_limit)
{
	nd_app *app = eng_ctx_app(ctx);
	char gk[200], tid[24], add[40];
	const char *params[5] = {gk, tid, kind, scope, add};
	pg_conn *c = NULL;
	int rc;

	*out_limit = 0;
	snprintf(gk, sizeof(gk), "%lld:%s", (long long)eng_ctx_thread_id(ctx), key);
	snprintf(tid, sizeof(tid), "%lld", (long long)eng_ctx_thread_id(ctx));
	snprintf(add, sizeof(add), "%.9f", app->cfg.budget_step);
	rc = pg_pool_acquire(app->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = grant(c, params, kind, scope, app->cfg.budget_step, out_limit);
	if (rc == 0 && *out_limit <= 0) {
		const char *p2[2] = {kind, scope};
		PGresult *res = NULL;
		if (pg_exec_stmt(c, &res, &STMT_LIMIT, p2) == 0 && pg_rows(res) == 1)
			*out_limit = strtod(pg_val(res, 0, 0), NULL);
		PQclear(res);
	}
	pg_pool_release(app->pool, c);
	return rc;
}

/* --- costs --- */

/* The project's spending per worker (NULL: its nodes' calls). */
static const pg_stmt STMT_COSTS = {
	"nd_costs",
	"SELECT worker, sum(tokens_in), sum(tokens_out), sum(cost_usd)::float8 FROM llm_calls "
	"WHERE project = $1 GROUP BY worker",
	1,
};

void nd_worker_id(const eng_ctx *ctx, const char *task, const char *suffix, char *out,
		  size_t cap)
{
	snprintf(out, cap, "f%lld.%lld.%s%s%s", (long long)eng_ctx_thread_id(ctx),
		 (long long)eng_ctx_run_id(ctx), task ? task : "", task ? "." : "", suffix);
}

/* The task of a factory worker's id (nd_worker_id) into out[cap]; 0 when
 * the id is no factory worker's. */
static int worker_task(const char *id, char *out, size_t cap)
{
	const char *a = id && id[0] == 'f' ? strchr(id, '.') : NULL;
	const char *b = a ? strchr(a + 1, '.') : NULL;
	const char *e = b ? strchr(b + 1, '.') : NULL;

	if (!e || (size_t)(e - b - 1) >= cap)
		return 0;
	snprintf(out, cap, "%.*s", (int)(e - b - 1), b + 1);
	return 1;
}

/* Adds one worker's row to the task it worked on. */
static int costs_add(nd_costs *out, const char *task, int64_t tin, int64_t tout, double usd)
{
	nd_task_cost *t = NULL;

	for (size_t i = 0; i < out->ntasks && !t; i++)
		if (strcmp(out->tasks[i].task, task) == 0)
			t = &out->tasks[i];
	if (!t) {
		nd_task_cost *n = realloc(out->tasks, (out->ntasks + 1) * sizeof(*n));
		if (!n)
			return err_set(ERR_NOMEM, "out of memory");
		out->tasks = n;
		t = &n[out->ntasks++];
		memset(t, 0, sizeof(*t));
		snprintf(t->task, sizeof(t->task), "%s", task);
	}
	t->tokens_in += tin;
	t->tokens_out += tout;
	t->cost_usd += usd;
	return 0;
}

int nd_costs_load(nd_costs *out, pg_conn *c, const char *project)
{
	const char *params[1] = {project};
	PGresult *res = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = pg_exec_stmt(c, &res, &STMT_COSTS, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		int64_t tin = pg_int(res, i, 1), tout = pg_int(res, i, 2);
		double usd = strtod(pg_val(res, i, 3), NULL);
		char task[40];

		out->tokens_in += tin;
		out->tokens_out += tout;
		out->cost_usd += usd;
		if (pg_isnull(res, i, 0))
			continue;
		out->workers_usd += usd;
		if (worker_task(pg_val(res, i, 0), task, sizeof(task)))
			rc = costs_add(out, task, tin, tout, usd);
	}
	PQclear(res);
	return rc;
}

void nd_costs_free(nd_costs *c)
{
	free(c->tasks);
	memset(c, 0, sizeof(*c));
}

nd_task_cost nd_costs_task(const nd_costs *c, const char *task)
{
	nd_task_cost none;

	for (size_t i = 0; task && i < c->ntasks; i++)
		if (strcmp(c->tasks[i].task, task) == 0)
			return c->tasks[i];
	memset(&none, 0, sizeof(none));
	return none;
}

json_t *nd_costs_json(const nd_costs *c)
{
	json_t *tasks = json_object();

	for (size_t i = 0; tasks && i < c->ntasks; i++)
		json_object_set_new(tasks, c->tasks[i].task,
				    json_pack("{s:I, s:I, s:f}", "tokens_in",
					      (json_int_t)c->tasks[i].tokens_in, "tokens_out",
					      (json_int_t)c->tasks[i].tokens_out, "cost_usd",
					      c->tasks[i].cost_usd));
	return json_pack("{s:I, s:I, s:f, s:f, s:o}", "tokens_in", (json_int_t)c->tokens_in,
			 "tokens_out", (json_int_t)c->tokens_out, "cost_usd", c->cost_usd,
			 "workers_usd", c->workers_usd, "tasks", tasks ? tasks : json_object());
}

int nd_costs_get(eng_ctx *ctx, nd_costs *out)
{
	nd_app *app = eng_ctx_app(ctx);
	pg_conn *c = NULL;
	int rc = pg_pool_acquire(app->pool, 10000, &c);

	memset(out, 0, sizeof(*out));
	if (rc == 0) {
		rc = nd_costs_load(out, c, eng_ctx_thread_key(ctx));
		pg_pool_release(app->pool, c);
	}
	if (rc < 0)
		nd_costs_free(out);
	return rc;
}

void nd_fmt_tokens(int64_t n, char *out, size_t cap)
{
	if (n < 1000)
		snprintf(out, cap, "%lld", (long long)n);
	else if (n < 1000000)
		snprintf(out, cap, "%.1fk", (double)n / 1000.0);
	else
		snprintf(out, cap, "%.2fM", (double)n / 1e6);
}
