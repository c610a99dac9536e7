/*
 * common — the helpers every factory node uses (nodes/nd_int.h) and the
 * project's costs from the ledger (nodes/factory.h).
 */
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/stream.h"
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

/* The model's tokens, as the run's messages events: the attempt's start
 * (with the field to show), the text, the end. */
static void nd_on_token(void *udata, int kind, const char *text, size_t len,
			const llm_token_info *info)
{
	nd_stream_tap *t = udata;
	json_t *d;

	if (!eng_ctx_streaming(t->ctx, ENG_STREAM_MESSAGES))
		return;
	if (kind == LLM_TOKEN_START)
		d = json_pack("{s:s,s:s,s:s,s:i,s:s?}", "call", info->call_id, "phase", "start",
			      "model", info->model, "attempt", info->attempt, "display", t->display);
	else if (kind == LLM_TOKEN_TEXT)
		d = json_pack("{s:s,s:s%}", "call", info->call_id, "text", text, len);
	else
		d = json_pack("{s:s,s:s,s:b,s:s}", "call", info->call_id, "phase", "end", "ok",
			      info->ok, "finish", info->finish);
	if (d)
		eng_stream_message(t->ctx, d);
}

void nd_llm_call(llm_call *call, nd_step *s, const char *role, char *user_buf)
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
	s->tap.ctx = s->ctx;
	call->on_token = nd_on_token;
	call->token_udata = &s->tap;
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

int nd_budget_extend(eng_ctx *ctx, const char *key, const char *kind, const char *scope,
		     double *out_limit)
{
	nd_app *app = eng_ctx_app(ctx);
	double step = app->cfg.budget_step, limit = 0;
	char gk[200];
	pg_conn *c = NULL;
	int found = 0, rc;

	*out_limit = 0;
	if (!(step > 0))
		return err_set(ERR_INVALID, "ORCH_BUDGET_EXTEND must be a positive amount of USD");
	snprintf(gk, sizeof(gk), "%lld:%s", (long long)eng_ctx_thread_id(ctx), key);
	rc = pg_pool_acquire(app->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = llm_budget_get(c, kind, scope, &found, &limit, NULL);
	pg_pool_release(app->pool, c);
	if (rc < 0)
		return rc;
	if (found) /* what it will be once the step commits */
		*out_limit = limit + step;
	return eng_emit(ctx, LLM_BUDGET_EXTEND_KIND, NULL,
			llm_budget_extension(gk, kind, scope, step));
}

/* --- costs --- */

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
	json_t *rows = NULL, *row;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = llm_ledger_worker_costs(c, project, &rows);
	json_array_foreach(rows, i, row) {
		int64_t tin = json_integer_value(json_object_get(row, "tokens_in"));
		int64_t tout = json_integer_value(json_object_get(row, "tokens_out"));
		double usd = json_number_value(json_object_get(row, "cost_usd"));
		const char *worker = json_string_value(json_object_get(row, "worker"));
		char task[40];

		if (rc < 0)
			break;
		out->tokens_in += tin;
		out->tokens_out += tout;
		out->cost_usd += usd;
		if (!worker)
			continue;
		out->workers_usd += usd;
		if (worker_task(worker, task, sizeof(task)))
			rc = costs_add(out, task, tin, tout, usd);
	}
	json_decref(rows);
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
