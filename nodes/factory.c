/*
 * factory — the factory's graph, declared in one table (NODES below: each
 * node, its retry class, and the router that picks what follows it from
 * the state it left, with the targets it may pick), its settings, and the
 * summary the command line shows (nodes/factory.h).
 *
 * Adding a node: its file (a function of nd_step, nodes/nd_int.h), one line
 * in NODES, its prompt in nodes/prompts/; and the router of the node before
 * it naming it.
 */
#include "nodes/factory.h"
#include "core/config.h"
#include "core/err.h"
#include "nodes/nd_int.h"

#include <stdatomic.h>
#include <stddef.h>
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
	static const struct {
		const char *env;
		int64_t def, lo, hi;
		size_t off;
	} ints[] = {
		{"ORCH_MAX_WORKERS", 2, 1, 256, offsetof(nd_config, max_workers)},
		{"ORCH_REVIEW_ROUNDS", 2, 0, 100, offsetof(nd_config, review_rounds)},
		{"ORCH_WORKER_FAILURES", 2, 1, 100, offsetof(nd_config, worker_failures)},
		{"ORCH_MERGE_APPROVAL", 0, 0, 1, offsetof(nd_config, merge_approval)},
		{"ORCH_CHANGE_CONTEXT", 32000, 4000, 4000000, offsetof(nd_config, change_context)},
	};
	char def[1100];
	const struct {
		const char *env, *def;
		char *dst;
		size_t cap;
	} strs[] = {
		{"ORCH_REPOS_DIR", def, out->repos_dir, sizeof(out->repos_dir)},
		{"ORCH_REMOTE_URL", "", out->remote_url, sizeof(out->remote_url)},
		{"ORCH_REMOTE_SECRET", "", out->remote_secret, sizeof(out->remote_secret)},
		{"ORCH_FACTORY_ROLE_WORKER", "developer", out->worker_role, sizeof(out->worker_role)},
	};
	int64_t v;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	snprintf(def, sizeof(def), "%s/repos", data_dir && *data_dir ? data_dir : ".");
	for (size_t i = 0; rc == 0 && i < sizeof(ints) / sizeof(ints[0]); i++) {
		rc = cfg_env_int(ints[i].env, ints[i].def, ints[i].lo, ints[i].hi, &v);
		*(int *)((char *)out + ints[i].off) = (int)v;
	}
	if (rc == 0)
		rc = env_usd("ORCH_BUDGET_EXTEND", 5.0, &out->budget_step);
	for (size_t i = 0; rc == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
		rc = cfg_env_str(strs[i].env, strs[i].def, strs[i].dst, strs[i].cap);
	if (rc < 0)
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

/* --- routers: what follows a node, from the state it left --- */

/* After entry: a closed project ends; otherwise the stage says. */
static const char *after_entry(const nd_project *p, eng_next *next)
{
	(void)next;
	switch (p->stage) {
	case ND_STAGE_SPEC_REVIEW:
		return "spec_gate";
	case ND_STAGE_ARCHITECT:
		return "architect";
	case ND_STAGE_PLAN_REVIEW:
		return "plan_gate";
	case ND_STAGE_DEVELOP:
		return "developer";
	case ND_STAGE_IMPORT:
		return "import";
	case ND_STAGE_BASELINE:
		return "baseline";
	case ND_STAGE_DELIVER:
		return "deliver";
	case ND_STAGE_FOLLOW:
		return "follow";
	case ND_STAGE_NEW:
	case ND_STAGE_BRAINSTORM:
		/* the model owes an answer when the person spoke last */
		return p->pending.present ? "budget_gate" : p->conv_last_user ? "brainstorm"
									    : "listen";
	default:
		return ENG_END;
	}
}

static const char *after_brainstorm(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest)
		return ENG_END;
	if (p->stage == ND_STAGE_SPEC_REVIEW)
		return "spec_gate";
	return p->pending.present ? "budget_gate" : "listen";
}

static const char *after_listen(const nd_project *p, eng_next *next)
{
	(void)next;
	return p->stage == ND_STAGE_ARCHITECT ? "architect" : "brainstorm";
}

static const char *after_spec_gate(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || p->stage == ND_STAGE_CANCELLED)
		return ENG_END;
	if (p->stage == ND_STAGE_ARCHITECT)
		return "architect";
	if (p->stage == ND_STAGE_BASELINE)
		return "baseline";
	return p->conv_last_user ? "brainstorm" : "listen"; /* a change: said, or asked for */
}

/* A change's import: the conversation once the copy is there. */
static const char *after_import(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || nd_stage_closed(p->stage))
		return ENG_END;
	return p->stage == ND_STAGE_BRAINSTORM ? "brainstorm" : "import";
}

static const char *after_baseline(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || nd_stage_closed(p->stage))
		return ENG_END;
	return p->stage == ND_STAGE_ARCHITECT ? "architect" : "baseline";
}

/* The end of a change: the final report once, then its pull request
 * followed; a later round's delivery goes back to following. */
static const char *after_deliver(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || nd_stage_closed(p->stage))
		return ENG_END;
	if (p->stage == ND_STAGE_FOLLOW)
		return "follow";
	return p->change.delivered ? "finish" : "deliver";
}

static const char *after_finish(const nd_project *p, eng_next *next)
{
	(void)next;
	return p->stage == ND_STAGE_FOLLOW ? "follow" : ENG_END;
}

static const char *after_follow(const nd_project *p, eng_next *next)
{
	(void)next;
	if (nd_stage_closed(p->stage))
		return ENG_END;
	return p->stage == ND_STAGE_DEVELOP ? "developer" : "follow";
}

static const char *after_architect(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest)
		return ENG_END;
	if (p->stage == ND_STAGE_PLAN_REVIEW)
		return "plan_gate";
	return p->pending.present ? "budget_gate" : ENG_END;
}

static const char *after_plan_gate(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || p->stage == ND_STAGE_CANCELLED)
		return ENG_END;
	if (p->stage == ND_STAGE_DEVELOP)
		return "developer";
	return p->stage == ND_STAGE_ARCHITECT ? "architect" : "listen";
}

/* After the budget question: it waits on, the project stops or rests, or
 * the node that asked runs again. */
static const char *after_budget_gate(const nd_project *p, eng_next *next)
{
	(void)next;
	if (p->rest || nd_stage_closed(p->stage))
		return ENG_END;
	if (p->pending.present)
		return "budget_gate";
	if (p->stage == ND_STAGE_BRAINSTORM || p->stage == ND_STAGE_ARCHITECT)
		return p->stage == ND_STAGE_BRAINSTORM ? "brainstorm" : "architect";
	return "entry";
}

/* After the developer: a reviewer per finished task (their edge brings it
 * back), the end when every task is done and nothing is asked, or itself
 * again. */
static const char *after_developer(const nd_project *p, eng_next *next)
{
	int sent = 0;

	if (nd_stage_closed(p->stage))
		return ENG_END;
	for (size_t i = 0; i < p->plan.ntasks; i++) {
		const nd_task *t = nd_task_find(p, p->plan.tasks[i].id);
		if (t && t->status == ND_TASK_REVIEWING) {
			/* a failure is the router's: eng_next keeps it */
			eng_next_send(next, "reviewer", json_pack("{s:s}", "task", t->id));
			sent++;
		}
	}
	if (sent)
		return NULL;
	if (!nd_project_all_done(p) || p->nqs > 0)
		return "developer";
	return p->change.present ? "deliver" : "finish";
}

/* --- the graph --- */

/* A router: the target that follows (NULL: none but the Sends it added),
 * picked from the state a node left. */
typedef const char *(*nd_router)(const nd_project *p, eng_next *next);

typedef struct node_def {
	const char *name;
	nd_node_fn fn;
	int llm;                      /* calls a model: the patient retry policy */
	nd_router route;              /* NULL: the fixed edge to targets[0] */
	const char *const targets[13]; /* what route may pick (NULL-terminated) */
} node_def;

static const node_def NODES[] = {
	{"entry", nd_entry, 0, after_entry,
	 {"brainstorm", "listen", "spec_gate", "architect", "plan_gate", "developer",
	  "budget_gate", "import", "baseline", "deliver", "follow", ENG_END}},
	{"brainstorm", nd_brainstorm, 1, after_brainstorm,
	 {"spec_gate", "listen", "budget_gate", ENG_END}},
	{"listen", nd_listen, 0, after_listen, {"brainstorm", "architect"}},
	{"spec_gate", nd_spec_gate, 0, after_spec_gate,
	 {"architect", "baseline", "brainstorm", "listen", ENG_END}},
	{"architect", nd_architect, 1, after_architect, {"plan_gate", "budget_gate", ENG_END}},
	{"plan_gate", nd_plan_gate, 0, after_plan_gate,
	 {"developer", "architect", "listen", ENG_END}},
	{"budget_gate", nd_budget_gate, 0, after_budget_gate,
	 {"brainstorm", "architect", "budget_gate", "entry", ENG_END}},
	{"developer", nd_developer, 0, after_developer,
	 {"reviewer", "developer", "finish", "deliver", ENG_END}},
	{"reviewer", nd_reviewer, 1, NULL, {"developer"}},
	{"finish", nd_finish, 0, after_finish, {"follow", ENG_END}},
	{"import", nd_import, 0, after_import, {"brainstorm", "import", ENG_END}},
	{"baseline", nd_baseline, 0, after_baseline, {"architect", "baseline", ENG_END}},
	{"deliver", nd_deliver, 0, after_deliver, {"finish", "follow", "deliver", ENG_END}},
	{"follow", nd_follow, 0, after_follow, {"developer", "follow", ENG_END}},
};

/* Test hook (like the bot's): ORCH_FACTORY_TEST_CRASH=<node>:<n> makes the
 * process exit at once when <node> finishes its n-th execution in this
 * process, after it emitted its rows and before the engine commits them:
 * the crash the tests recover from. */
static char g_crash_node[64];
static int g_crash_at;
static atomic_int g_runs[sizeof(NODES) / sizeof(NODES[0])];

/* Every node runs through here: the state typed in, what changed out. */
static int run_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	const node_def *d = eng_ctx_udata(ctx);
	nd_step s = {.ctx = ctx, .app = eng_ctx_app(ctx), .state = state, .in = input};
	nd_project was;
	int rc;

	memset(&was, 0, sizeof(was));
	if (!s.app)
		return err_set(ERR_INTERNAL, "the factory graph runs without its app context "
					     "(eng_options.app must point at an nd_app)");
	rc = nd_project_load(&s.p, state);
	if (rc == 0)
		rc = nd_project_load(&was, state);
	if (rc < 0)
		rc = err_wrap("the project's state cannot be read");
	s.up = rc == 0 ? json_object() : NULL;
	if (rc == 0)
		rc = s.up ? d->fn(&s) : err_set(ERR_NOMEM, "out of memory");
	if (rc == 0) {
		nd_project_store(&s.p, &was, s.up);
		*update = s.up;
		s.up = NULL;
	}
	json_decref(s.up);
	nd_project_free(&s.p);
	nd_project_free(&was);
	if (rc == 0 && g_crash_at > 0 && strcmp(d->name, g_crash_node) == 0 &&
	    atomic_fetch_add(&g_runs[d - NODES], 1) + 1 == g_crash_at) {
		fprintf(stderr, "factory: ORCH_FACTORY_TEST_CRASH: exiting in %s\n", d->name);
		_exit(99);
	}
	return rc;
}

/* Every router runs through here: the state typed, the node's choice. */
static int run_router(const json_t *state, eng_next *next, void *udata)
{
	const node_def *d = udata;
	const char *to = NULL;
	nd_project p;
	int rc = nd_project_load(&p, state);

	if (rc == 0)
		to = d->route(&p, next);
	if (rc == 0 && to)
		rc = eng_next_add(next, to);
	nd_project_free(&p);
	return rc;
}

static void crash_hook(void)
{
	const char *crash = getenv("ORCH_FACTORY_TEST_CRASH");
	const char *colon = crash ? strchr(crash, ':') : NULL;
	int64_t n = 0;

	g_crash_at = 0;
	if (colon && (size_t)(colon - crash) < sizeof(g_crash_node) &&
	    cfg_parse_int(colon + 1, &n) == 0 && n > 0) {
		snprintf(g_crash_node, sizeof(g_crash_node), "%.*s", (int)(colon - crash), crash);
		g_crash_at = (int)n;
	}
}

int nd_factory_graph(eng_graph **out)
{
	static const eng_retry llm_retry = {ND_LLM_ATTEMPTS, 1000, 15000, 3.0, 1,
					    ENG_RETRY_TRANSIENT};
	static const eng_retry quick = {3, 200, 5000, 2.0, 1, ENG_RETRY_TRANSIENT};
	static const struct {
		const char *key;
		eng_reducer r;
	} reducers[] = {
		{"conversation", ENG_APPEND}, {"log", ENG_APPEND},
		{"tasks", ENG_MERGE},         {"questions", ENG_MERGE},
	};
	eng_graph *g = NULL;
	int rc;

	*out = NULL;
	crash_hook();
	rc = eng_graph_new(&g, ND_GRAPH);
	for (size_t i = 0; rc == 0 && i < sizeof(NODES) / sizeof(NODES[0]); i++) {
		atomic_store(&g_runs[i], 0);
		rc = eng_graph_add_node(g, NODES[i].name, run_node, (void *)&NODES[i],
					NODES[i].llm ? &llm_retry : &quick);
	}
	if (rc == 0)
		rc = eng_graph_add_edge(g, ENG_START, NODES[0].name);
	for (size_t i = 0; rc == 0 && i < sizeof(NODES) / sizeof(NODES[0]); i++)
		rc = NODES[i].route ? eng_graph_add_router(g, NODES[i].name, run_router, (void *)&NODES[i],
							   NODES[i].targets)
				    : eng_graph_add_edge(g, NODES[i].name, NODES[i].targets[0]);
	for (size_t i = 0; rc == 0 && i < sizeof(reducers) / sizeof(reducers[0]); i++)
		rc = eng_graph_set_reducer(g, reducers[i].key, reducers[i].r);
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
	int st = nd_word_find(ND_STATUS, ND_TASK_COUNT, s);
	return st < ND_TASK_COUNT ? ND_STATUS[st].label : s ? s : "?";
}

json_t *nd_project_summary(const json_t *state)
{
	int total = 0, merged = 0, active = 0, blocked = 0, skipped = 0, workers = 0;
	nd_project p;
	int ok = nd_project_load(&p, state) == 0;
	const char *raw = json_string_value(json_object_get(state, "stage"));
	json_t *sum;

	err_clear(); /* a state that does not read shows what it says */
	for (size_t i = 0; ok && i < p.ntasks; i++) {
		nd_status s = p.tasks[i].status;
		int waits = s == ND_TASK_BLOCKED || s == ND_TASK_MERGE_WAIT;
		total++;
		merged += s == ND_TASK_MERGED;
		skipped += s == ND_TASK_SKIPPED;
		blocked += waits;
		active += !waits && s != ND_TASK_MERGED && s != ND_TASK_SKIPPED && s != ND_TASK_QUEUED;
		workers += s == ND_TASK_WORKING || s == ND_TASK_MERGING;
	}
	sum = json_pack("{s:s, s:s?, s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:s?, s:s?, s:i}", "stage",
			ok ? ND_STAGES[p.stage].name : raw ? raw : "",
			"name", json_string_value(json_object_get(json_object_get(state, "spec"), "name")),
			"tasks", "total", total, "merged", merged, "active", active, "blocked", blocked,
			"skipped", skipped, "workers", workers, "repo", p.repo.path, "remote",
			p.repo.remote_url, "questions", (int)p.nqs + p.pending.present);
	if (sum && ok && p.change.has_pr && p.change.pr_url)
		json_object_set_new(sum, "pull_request", json_string(p.change.pr_url));
	nd_project_free(&p);
	return sum;
}
