/*
 * factory — the graph, its settings, the entry node, the budget gate and
 * the helpers every node uses (nodes/factory.h, nodes/nd_int.h).
 */
#include "nodes/factory.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "llm/ledger.h"
#include "nodes/nd_int.h"
#include "nodes/say.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- settings --- */

static int env_usd(const char *name, double def, double *out)
{
	const char *v = getenv(name);
	char *end;
	double d;

	*out = def;
	if (!v || !*v)
		return 0;
	d = strtod(v, &end);
	if (*end || !(d > 0) || d > 1e6)
		return err_set(ERR_INVALID, "%s must be an amount of USD above 0 (got '%s')", name, v);
	*out = d;
	return 0;
}

int nd_config_from_env(nd_config *out, const char *data_dir)
{
	int64_t v;
	char def[1100];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = cfg_env_int("ORCH_MAX_WORKERS", 2, 1, 256, &v)) < 0)
		return rc;
	out->max_workers = (int)v;
	if ((rc = cfg_env_int("ORCH_REVIEW_ROUNDS", 2, 0, 100, &v)) < 0)
		return rc;
	out->review_rounds = (int)v;
	if ((rc = cfg_env_int("ORCH_WORKER_FAILURES", 2, 1, 100, &v)) < 0)
		return rc;
	out->worker_failures = (int)v;
	if ((rc = cfg_env_int("ORCH_MERGE_APPROVAL", 0, 0, 1, &v)) < 0)
		return rc;
	out->merge_approval = (int)v;
	if ((rc = env_usd("ORCH_BUDGET_EXTEND", 5.0, &out->budget_step)) < 0)
		return rc;
	snprintf(def, sizeof(def), "%s/repos", data_dir && *data_dir ? data_dir : ".");
	if ((rc = cfg_env_str("ORCH_REPOS_DIR", def, out->repos_dir, sizeof(out->repos_dir))) < 0 ||
	    (rc = cfg_env_str("ORCH_REMOTE_URL", "", out->remote_url, sizeof(out->remote_url))) < 0 ||
	    (rc = cfg_env_str("ORCH_REMOTE_SECRET", "", out->remote_secret,
			      sizeof(out->remote_secret))) < 0 ||
	    (rc = cfg_env_str("ORCH_FACTORY_ROLE_WORKER", "developer", out->worker_role,
			      sizeof(out->worker_role))) < 0)
		return rc;
	if (out->repos_dir[0] != '/') {
		/* spawn requests name repositories by absolute path */
		char cwd[1024], rel[1024];
		if (!getcwd(cwd, sizeof(cwd)))
			return err_set(ERR_INVALID, "ORCH_REPOS_DIR must be an absolute path (got '%s')",
				       out->repos_dir);
		snprintf(rel, sizeof(rel), "%s", out->repos_dir);
		snprintf(out->repos_dir, sizeof(out->repos_dir), "%s/%s", cwd,
			 strncmp(rel, "./", 2) == 0 ? rel + 2 : rel);
	}
	if (out->remote_url[0] && strncmp(out->remote_url, "https://", 8) != 0 &&
	    strncmp(out->remote_url, "http://", 7) != 0 && strncmp(out->remote_url, "ssh://", 6) != 0 &&
	    out->remote_url[0] != '/')
		return err_set(ERR_INVALID, "ORCH_REMOTE_URL must be an http(s):// or ssh:// URL or "
					    "an absolute path (got '%s')", out->remote_url);
	return 0;
}

/* --- helpers --- */

nd_app *nd_app_of(eng_ctx *ctx)
{
	return eng_ctx_app(ctx);
}

const char *nd_stage(const json_t *state)
{
	const char *s = json_string_value(json_object_get(state, "stage"));
	return s ? s : "";
}

void nd_llm_call(llm_call *call, eng_ctx *ctx, const json_t *state, const char *role,
		 char *user_buf)
{
	const json_t *uid = json_object_get(json_object_get(state, "user"), "id");

	memset(call, 0, sizeof(*call));
	user_buf[0] = '\0';
	if (json_is_integer(uid) && json_integer_value(uid) > 0)
		snprintf(user_buf, 32, "tg:%lld", (long long)json_integer_value(uid));
	call->role = role;
	call->project = eng_ctx_thread_key(ctx);
	call->user = user_buf[0] ? user_buf : NULL;
	call->thread_id = eng_ctx_thread_id(ctx);
	call->run_id = eng_ctx_run_id(ctx);
	call->node = eng_ctx_node(ctx);
	call->priority = strcmp(role, "brainstorm") == 0 ? LLM_PRIO_INTERACTIVE : LLM_PRIO_NORMAL;
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

int nd_next_ask(const json_t *state, json_t *update)
{
	const json_t *cur = json_object_get(update, "asks");
	int n = (int)json_integer_value(cur ? cur : json_object_get(state, "asks")) + 1;

	json_object_set_new(update, "asks", json_integer(n));
	return n;
}

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

int nd_gate_start(eng_ctx *ctx, const json_t *state, const char *const *keys, int n,
		  nd_chat *chat, json_t **out, int *which, json_t **update)
{
	int rc;

	*out = NULL;
	if (chat) {
		rc = nd_chat_get(state, NULL, chat);
		if (rc < 0)
			return rc;
	}
	rc = nd_gate(ctx, keys, n, out, which);
	if (rc < 0)
		return rc;
	*update = json_object();
	return 0;
}

int nd_proposal_gate(eng_ctx *ctx, const json_t *state, const char *what, char *key,
		     size_t cap, nd_chat *chat, json_t **out, int *which, json_t **update)
{
	const char *keys[2] = {key, "input"};
	char field[32];

	snprintf(field, sizeof(field), "%s_version", what);
	snprintf(key, cap, "%s:%lld", what,
		 (long long)json_integer_value(json_object_get(state, field)));
	return nd_gate_start(ctx, state, keys, 2, chat, out, which, update);
}

const char *nd_decision(json_t *update, const char *key, const json_t *v)
{
	const char *opt = json_string_value(json_object_get(v, "option"));

	nd_log(update, "decision", opt ? opt : "expired",
	       json_pack("{s:s, s:O?}", "key", key, "by", json_object_get(v, "by")));
	return opt;
}

int nd_llm_json(eng_ctx *ctx, const llm_call *call, const llm_message *msgs, size_t n,
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
	return llm_chat(nd_app_of(ctx)->llm, call, &rq, resp);
}

int nd_llm_failed(eng_ctx *ctx, const nd_chat *chat, json_t *update, int rc, const char *what)
{
	char msg[1400];
	int transient = (ENG_RETRY_TRANSIENT & ENG_RETRY_ON(rc)) != 0;

	if (transient && eng_ctx_attempt(ctx) < ND_LLM_ATTEMPTS)
		return rc;
	log_warn("factory", "thread %s: %s failed: %s", eng_ctx_thread_key(ctx), what, err_last());
	snprintf(msg, sizeof(msg),
		 "⚠️ %s failed: %s\n\nNothing is lost: send any message to try again, or /cancel.",
		 what, err_last());
	nd_log(update, "error", msg, NULL);
	err_clear();
	return nd_say(ctx, chat, msg);
}

int nd_ask_budget(eng_ctx *ctx, const json_t *state, const nd_chat *chat, json_t *update,
		  const llm_budget_info *b, const char *resume)
{
	nd_app *app = nd_app_of(ctx);
	char key[48], q[800], resets[80] = "";
	int n = nd_next_ask(state, update);
	nd_option opts[2] = {{"extend", "💰 Extend budget"}, {"stop", "🛑 Stop"}};
	int rc;

	snprintf(key, sizeof(key), "budget:%d", n);
	if (b->resets_at > 0) {
		char at[40];
		llm_budget_fmt_reset(b->resets_at, at, sizeof(at));
		snprintf(resets, sizeof(resets), " (it resets %s)", at);
	}
	snprintf(q, sizeof(q),
		 "The %s budget of %s is reached: $%.4f spent %s (and $%.4f reserved) of $%.4f%s; "
		 "the next model call needs about $%.4f. Extend it by $%.2f, or stop the project?",
		 b->kind, b->scope, b->spent_usd, llm_budget_period_words(b->period),
		 b->reserved_usd, b->limit_usd, resets, b->needed_usd, app->cfg.budget_step);
	rc = nd_ask(ctx, chat, key, q, opts, 2);
	if (rc < 0)
		return rc;
	json_object_set_new(update, "pending",
			    json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", key, "kind", "budget",
				      "resume", resume, "budget_kind", b->kind, "scope", b->scope));
	nd_log(update, "question", q, json_pack("{s:s}", "key", key));
	err_clear();
	return eng_goto(ctx, "budget_gate");
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

int nd_budget_extend(eng_ctx *ctx, const char *key, const char *kind, const char *scope,
		     double *out_limit)
{
	nd_app *app = nd_app_of(ctx);
	char gk[200], tid[24], add[40];
	const char *params[5] = {gk, tid, kind, scope, add};
	PGresult *res = NULL;
	pg_conn *c = NULL;
	int rc;

	*out_limit = 0;
	snprintf(gk, sizeof(gk), "%lld:%s", (long long)eng_ctx_thread_id(ctx), key);
	snprintf(tid, sizeof(tid), "%lld", (long long)eng_ctx_thread_id(ctx));
	snprintf(add, sizeof(add), "%.9f", app->cfg.budget_step);
	rc = pg_pool_acquire(app->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_GRANT, params);
	if (rc == 0 && pg_rows(res) == 1) {
		rc = llm_budget_extend(c, kind, scope, app->cfg.budget_step, out_limit);
		if (rc == ERR_NOTFOUND) /* no budget row: nothing limits it any more */
			rc = 0;
	}
	PQclear(res);
	res = NULL;
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	if (rc == 0 && *out_limit <= 0) {
		const char *p2[2] = {kind, scope};
		if (pg_exec_stmt(c, &res, &STMT_LIMIT, p2) == 0 && pg_rows(res) == 1)
			*out_limit = strtod(pg_val(res, 0, 0), NULL);
		PQclear(res);
	}
	pg_pool_release(app->pool, c);
	return rc;
}

static const pg_stmt STMT_COSTS = {
	"nd_costs",
	"SELECT coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
	"coalesce(sum(cost_usd), 0)::float8, coalesce(sum(cost_usd) FILTER (WHERE worker IS NOT "
	"NULL), 0)::float8 FROM llm_calls WHERE project = $1",
	1,
};

int nd_costs_get(eng_ctx *ctx, nd_costs *out)
{
	nd_app *app = nd_app_of(ctx);
	const char *params[1] = {eng_ctx_thread_key(ctx)};
	PGresult *res = NULL;
	pg_conn *c = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = pg_pool_acquire(app->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_COSTS, params);
	if (rc == 0 && pg_rows(res) == 1) {
		out->tokens_in = pg_int(res, 0, 0);
		out->tokens_out = pg_int(res, 0, 1);
		out->cost_usd = strtod(pg_val(res, 0, 2), NULL);
		out->workers_usd = strtod(pg_val(res, 0, 3), NULL);
	}
	PQclear(res);
	pg_pool_release(app->pool, c);
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

/* --- entry: every run starts here --- */

static const char *route_for(const json_t *state)
{
	const char *st = nd_stage(state);
	const json_t *conv = json_object_get(state, "conversation");
	const json_t *last = json_array_get(conv, json_array_size(conv) - 1);

	if (strcmp(st, "spec_review") == 0)
		return "spec_gate";
	if (strcmp(st, "architect") == 0)
		return "architect";
	if (strcmp(st, "plan_review") == 0)
		return "plan_gate";
	if (strcmp(st, "develop") == 0)
		return "developer";
	if (json_is_object(json_object_get(state, "pending")))
		return "budget_gate";
	/* brainstorm: the model owes an answer when the person spoke last */
	{
		const char *role = json_string_value(json_object_get(last, "role"));
		if (role && strcmp(role, "user") == 0)
			return "brainstorm";
	}
	return "listen";
}

static int is_closed(const char *st)
{
	return strcmp(st, "done") == 0 || strcmp(st, "stopped") == 0 ||
	       strcmp(st, "cancelled") == 0;
}

int nd_entry(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *input = json_object_get(state, "input");
	const char *st = nd_stage(state);
	const char *text = json_string_value(json_object_get(input, "text"));
	json_t *cancels = NULL, *up = json_object();
	nd_chat chat;
	int rc, have_chat;

	(void)in;
	if (!up)
		return err_set(ERR_NOMEM, "out of memory");
	*update = up;
	if (!nd_app_of(ctx))
		return err_set(ERR_INTERNAL, "the factory graph runs without its app context "
					     "(eng_options.app must point at an nd_app)");
	have_chat = nd_chat_get(state, input, &chat) == 0;
	err_clear();
	if (have_chat && !json_is_object(json_object_get(state, "chat")))
		json_object_set_new(up, "chat", nd_chat_json(&chat));
	if (json_is_object(json_object_get(input, "user")) &&
	    json_integer_value(json_object_get(json_object_get(input, "user"), "id")) > 0)
		json_object_set(up, "user", json_object_get(input, "user"));

	/* a project cancelled while nothing ran */
	rc = eng_take(ctx, "cancel", &cancels);
	if (rc < 0)
		return rc;
	if (json_array_size(cancels) > 0 && !is_closed(st)) {
		st = "cancelled";
		json_object_set_new(up, "stage", json_string(st));
		nd_log(up, "cancelled", "the project was cancelled",
		       json_incref(json_array_get(cancels, 0)));
	}
	json_decref(cancels);

	if (is_closed(st)) {
		if (json_is_object(input)) {
			char msg[1600];
			const char *repo = json_string_value(json_object_get(
				json_object_get(state, "repo"), "path"));

			json_object_set_new(up, "input", json_null());
			if (strcmp(st, "done") == 0)
				snprintf(msg, sizeof(msg),
					 "This project is finished%s%s. To build something new, "
					 "send /new <idea>.",
					 repo ? "; its repository is " : "", repo ? repo : "");
			else
				snprintf(msg, sizeof(msg),
					 "This project was %s. Send /new <idea> to start another.",
					 strcmp(st, "stopped") == 0 ? "stopped" : "cancelled");
			if (have_chat && (rc = nd_say(ctx, &chat, msg)) < 0)
				return rc;
		}
		return eng_goto(ctx, ENG_END);
	}

	if (json_is_object(input)) {
		if (!have_chat)
			return err_set(ERR_INVALID, "the input names no channel and chat");
		if (!*st || strcmp(st, "brainstorm") == 0 || strcmp(st, "spec_review") == 0) {
			/* a message (or a change to the spec shown) for the conversation */
			json_object_set_new(up, "input", json_null());
			json_object_set_new(up, "stage", json_string("brainstorm"));
			json_object_set_new(up, "conversation",
					    json_pack("[{s:s, s:s}]", "role", "user", "text",
						      text ? text : ""));
			return eng_goto(ctx, "brainstorm");
		}
		if (strcmp(st, "plan_review") == 0 || strcmp(st, "architect") == 0) {
			json_object_set_new(up, "input", json_null());
			json_object_set_new(up, "stage", json_string("architect"));
			json_object_set_new(up, "plan_feedback", json_string(text ? text : ""));
			return eng_goto(ctx, "architect");
		}
		/* the developer answers messages itself (it clears "input") */
	}
	return eng_goto(ctx, route_for(state));
}

/* --- budget_gate: extend or stop --- */

int nd_budget_gate(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *pending = json_object_get(state, "pending");
	const char *key = json_string_value(json_object_get(pending, "key"));
	const char *resume = json_string_value(json_object_get(pending, "resume"));
	const char *keys[2] = {key, "input"};
	json_t *v = NULL, *up;
	const char *opt;
	nd_chat chat;
	char msg[400];
	int which, rc;

	(void)in;
	if (!key || !resume)
		return eng_goto(ctx, "entry");
	rc = nd_gate_start(ctx, state, keys, 2, &chat, &v, &which, update);
	if (rc < 0)
		return rc;
	up = *update;
	if (which == 1) {
		json_decref(v);
		rc = nd_say(ctx, &chat, "The budget question above waits for your answer: extend "
					"the budget, or stop.");
		return rc < 0 ? rc : eng_goto(ctx, "budget_gate");
	}
	opt = json_string_value(json_object_get(v, "option"));
	if (!opt) { /* expired or cancelled: the project rests here */
		json_decref(v);
		rc = nd_say(ctx, &chat, "The budget question expired. Send a message when you "
					"want to go on; the question will be asked again.");
		json_object_set_new(up, "pending", json_null());
		return rc < 0 ? rc : eng_goto(ctx, ENG_END);
	}
	if (strcmp(opt, "extend") == 0) {
		double limit = 0;
		rc = nd_budget_extend(ctx, key, json_string_value(json_object_get(pending,
										 "budget_kind")),
				      json_string_value(json_object_get(pending, "scope")), &limit);
		json_decref(v);
		if (rc < 0)
			return rc;
		snprintf(msg, sizeof(msg), "💰 Budget extended: the limit is now $%.2f. Going on.",
			 limit);
		nd_log(up, "decision", msg, json_pack("{s:s}", "key", key));
		json_object_set_new(up, "pending", json_null());
		rc = nd_say(ctx, &chat, msg);
		return rc < 0 ? rc : eng_goto(ctx, resume);
	}
	json_decref(v);
	json_object_set_new(up, "pending", json_null());
	json_object_set_new(up, "stage", json_string("stopped"));
	nd_log(up, "decision", "stopped at the budget", json_pack("{s:s}", "key", key));
	rc = nd_say(ctx, &chat, "🛑 Stopped. Nothing more is spent on this project. Send /new "
				"<idea> to start another.");
	return rc < 0 ? rc : eng_goto(ctx, ENG_END);
}

/* --- the graph --- */

/* Test hook (like the bot's): ORCH_FACTORY_TEST_CRASH=<node>:<n> makes the
 * process exit at once when <node> finishes its n-th execution in this
 * process, after it emitted its rows and before the engine commits them:
 * the crash the tests recover from. */
typedef struct node_def {
	const char *name;
	eng_node_fn fn;
	atomic_int runs;
} node_def;

static node_def g_nodes[] = {
	{"entry", nd_entry, 0},         {"brainstorm", nd_brainstorm, 0},
	{"listen", nd_listen, 0},       {"spec_gate", nd_spec_gate, 0},
	{"architect", nd_architect, 0}, {"plan_gate", nd_plan_gate, 0},
	{"budget_gate", nd_budget_gate, 0}, {"developer", nd_developer, 0},
	{"reviewer", nd_reviewer, 0},   {"finish", nd_finish, 0},
};

static char g_crash_node[64];
static int g_crash_at;

static int run_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	node_def *d = eng_ctx_udata(ctx);
	int rc = d->fn(ctx, state, input, update);

	if (rc == 0 && g_crash_at > 0 && strcmp(d->name, g_crash_node) == 0 &&
	    atomic_fetch_add(&d->runs, 1) + 1 == g_crash_at) {
		fprintf(stderr, "factory: ORCH_FACTORY_TEST_CRASH: exiting in %s\n", d->name);
		_exit(99);
	}
	return rc;
}

static int route_start(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	return eng_next_add(next, "entry");
}

int nd_factory_graph(eng_graph **out)
{
	eng_graph *g = NULL;
	const char *crash = getenv("ORCH_FACTORY_TEST_CRASH");
	eng_retry llm_retry = {ND_LLM_ATTEMPTS, 1000, 15000, 3.0, 1, ENG_RETRY_TRANSIENT};
	eng_retry quick = {3, 200, 5000, 2.0, 1, ENG_RETRY_TRANSIENT};
	int rc;

	*out = NULL;
	g_crash_at = 0;
	if (crash && *crash) {
		const char *colon = strchr(crash, ':');
		int64_t n = 0;
		if (colon && (size_t)(colon - crash) < sizeof(g_crash_node) &&
		    cfg_parse_int(colon + 1, &n) == 0 && n > 0) {
			snprintf(g_crash_node, sizeof(g_crash_node), "%.*s", (int)(colon - crash),
				 crash);
			g_crash_at = (int)n;
		}
	}
	rc = eng_graph_new(&g, ND_GRAPH);
	for (size_t i = 0; rc == 0 && i < sizeof(g_nodes) / sizeof(g_nodes[0]); i++) {
		const char *n = g_nodes[i].name;
		int llm = strcmp(n, "brainstorm") == 0 || strcmp(n, "architect") == 0 ||
			  strcmp(n, "reviewer") == 0;
		atomic_store(&g_nodes[i].runs, 0);
		rc = eng_graph_add_node(g, n, run_node, &g_nodes[i], llm ? &llm_retry : &quick);
	}
	if (rc == 0)
		rc = eng_graph_add_router(g, ENG_START, route_start, NULL, ENG_TARGETS("entry"));
	/* the reviewers of a step report back to the scheduler */
	if (rc == 0)
		rc = eng_graph_add_edge(g, "reviewer", "developer");
	{
		static const struct {
			const char *node;
			const char *const to[9];
		} dests[] = {
			{"entry", {"brainstorm", "architect", "spec_gate", "plan_gate", "developer",
				   "budget_gate", "listen", NULL}},
			{"brainstorm", {"budget_gate", "listen", "spec_gate", NULL}},
			{"listen", {"architect", "brainstorm", NULL}},
			{"spec_gate", {"brainstorm", "architect", "listen", NULL}},
			{"architect", {"budget_gate", "plan_gate", NULL}},
			{"plan_gate", {"architect", "listen", "developer", NULL}},
			{"budget_gate", {"entry", "budget_gate", "brainstorm", "architect", NULL}},
			{"developer", {"developer", "reviewer", "finish", NULL}},
		};
		for (size_t i = 0; rc == 0 && i < sizeof(dests) / sizeof(dests[0]); i++)
			rc = eng_graph_set_destinations(g, dests[i].node, dests[i].to);
	}
	if (rc == 0) {
		static const struct {
			const char *key;
			eng_reducer r;
		} reducers[] = {
			{"conversation", ENG_APPEND}, {"log", ENG_APPEND},
			{"tasks", ENG_MERGE},         {"questions", ENG_MERGE},
		};
		for (size_t i = 0; rc == 0 && i < sizeof(reducers) / sizeof(reducers[0]); i++)
			rc = eng_graph_set_reducer(g, reducers[i].key, reducers[i].r);
	}
	if (rc == 0) {
		/* a project lives long: many steps in one run */
		eng_graph_set_recursion_limit(g, 1000000);
		rc = eng_graph_compile(g);
	}
	if (rc < 0) {
		eng_graph_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

/* --- for the command line --- */

const char *nd_task_state_label(const char *s)
{
	static const struct {
		const char *status, *label;
	} map[] = {
		{"queued", "queued"},        {"working", "working"},     {"review", "reviewing"},
		{"reviewing", "reviewing"},  {"changes", "changes requested"},
		{"approved", "approved"},    {"merge_wait", "waiting for your merge approval"},
		{"merge_ready", "waiting to merge"}, {"merging", "testing"}, {"merged", "done"},
		{"blocked", "waiting for you"}, {"skipped", "skipped"},  {"failed", "failed"},
	};

	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].status, s) == 0)
			return map[i].label;
	return s ? s : "?";
}

json_t *nd_project_summary(const json_t *state)
{
	const json_t *tasks = json_object_get(state, "tasks"), *t;
	const char *k;
	int total = 0, merged = 0, active = 0, blocked = 0, skipped = 0, workers = 0;
	int64_t tin = 0, tout = 0;
	double cost = 0;
	const json_t *repo = json_object_get(state, "repo");
	size_t nq = 0;

	json_object_foreach((json_t *)tasks, k, t) {
		const char *s = json_string_value(json_object_get(t, "status"));
		if (!json_is_object(t))
			continue;
		total++;
		tin += json_integer_value(json_object_get(t, "tokens_in"));
		tout += json_integer_value(json_object_get(t, "tokens_out"));
		cost += json_number_value(json_object_get(t, "cost_usd"));
		if (!s)
			continue;
		if (strcmp(s, "merged") == 0)
			merged++;
		else if (strcmp(s, "skipped") == 0)
			skipped++;
		else if (strcmp(s, "blocked") == 0 || strcmp(s, "merge_wait") == 0)
			blocked++;
		else if (strcmp(s, "queued") != 0)
			active++;
		if (strcmp(s, "working") == 0 || strcmp(s, "merging") == 0)
			workers++;
	}
	{
		const json_t *q;
		json_object_foreach((json_t *)json_object_get(state, "questions"), k, q)
			if (json_is_object(q))
				nq++;
	}
	if (json_is_object(json_object_get(state, "pending")))
		nq++;
	return json_pack("{s:s, s:s?, s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:s?, s:s?, s:i, s:I, "
			 "s:I, s:f}",
			 "stage", nd_stage(state), "name",
			 json_string_value(json_object_get(json_object_get(state, "spec"), "name")),
			 "tasks", "total", total, "merged", merged, "active", active, "blocked",
			 blocked, "skipped", skipped, "workers", workers, "repo",
			 json_string_value(json_object_get(repo, "path")), "remote",
			 json_string_value(json_object_get(json_object_get(repo, "remote"), "url")),
			 "questions", (int)nq, "tokens_in", (json_int_t)tin, "tokens_out",
			 (json_int_t)tout, "cost_usd", cost);
}
