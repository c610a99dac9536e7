#include "nodes/model.h"
#include "core/err.h"
#include "core/jsonx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(x) (1u << (x))

static double jx_num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* --- the tables --- */

static const struct {
	const char *name;
	unsigned next; /* the stages it may move to */
} STAGES[ND_STAGE_COUNT] = {
	[ND_STAGE_NEW] = {"", BIT(ND_STAGE_BRAINSTORM) | BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_BRAINSTORM] = {"brainstorm", BIT(ND_STAGE_SPEC_REVIEW) | BIT(ND_STAGE_STOPPED) |
						   BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_SPEC_REVIEW] = {"spec_review", BIT(ND_STAGE_BRAINSTORM) | BIT(ND_STAGE_ARCHITECT) |
						     BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_ARCHITECT] = {"architect", BIT(ND_STAGE_PLAN_REVIEW) | BIT(ND_STAGE_STOPPED) |
						 BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_PLAN_REVIEW] = {"plan_review", BIT(ND_STAGE_ARCHITECT) | BIT(ND_STAGE_DEVELOP) |
						     BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_DEVELOP] = {"develop", BIT(ND_STAGE_DONE) | BIT(ND_STAGE_STOPPED) |
					     BIT(ND_STAGE_CANCELLED)},
	[ND_STAGE_DONE] = {"done", 0},
	[ND_STAGE_STOPPED] = {"stopped", 0},
	[ND_STAGE_CANCELLED] = {"cancelled", 0},
};

static const struct {
	const char *name, *label, *icon;
	unsigned next; /* the statuses it may move to */
} STATUS[ND_TASK_COUNT] = {
	[ND_TASK_QUEUED] = {"queued", "queued", "⏳", BIT(ND_TASK_WORKING)},
	[ND_TASK_WORKING] = {"working", "working", "🔨",
			     BIT(ND_TASK_REVIEW) | BIT(ND_TASK_QUEUED) | BIT(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW] = {"review", "reviewing", "🔍", BIT(ND_TASK_REVIEWING)},
	[ND_TASK_REVIEWING] = {"reviewing", "reviewing", "🔍",
			       BIT(ND_TASK_APPROVED) | BIT(ND_TASK_CHANGES) |
				   BIT(ND_TASK_REVIEW_ERROR) | BIT(ND_TASK_REVIEW_BUDGET)},
	[ND_TASK_CHANGES] = {"changes", "changes requested", "⏳",
			     BIT(ND_TASK_QUEUED) | BIT(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW_ERROR] = {"review_error", "review failed", "⏳", BIT(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW_BUDGET] = {"review_budget", "budget reached", "⏳", BIT(ND_TASK_BLOCKED)},
	[ND_TASK_APPROVED] = {"approved", "approved", "🔍",
			      BIT(ND_TASK_MERGE_READY) | BIT(ND_TASK_MERGE_WAIT)},
	[ND_TASK_MERGE_WAIT] = {"merge_wait", "waiting for your merge approval", "❓",
				BIT(ND_TASK_MERGE_READY) | BIT(ND_TASK_SKIPPED)},
	[ND_TASK_MERGE_READY] = {"merge_ready", "waiting to merge", "🧪", BIT(ND_TASK_MERGING)},
	[ND_TASK_MERGING] = {"merging", "testing", "🧪",
			     BIT(ND_TASK_MERGED) | BIT(ND_TASK_QUEUED) | BIT(ND_TASK_MERGE_READY) |
				 BIT(ND_TASK_BLOCKED)},
	[ND_TASK_MERGED] = {"merged", "done", "✅", 0},
	[ND_TASK_BLOCKED] = {"blocked", "waiting for you", "❓",
			     BIT(ND_TASK_SKIPPED) | BIT(ND_TASK_APPROVED) | BIT(ND_TASK_MERGE_READY) |
				 BIT(ND_TASK_REVIEW) | BIT(ND_TASK_QUEUED)},
	[ND_TASK_SKIPPED] = {"skipped", "skipped", "⏭", 0},
};

static const struct {
	const char *name, *reason;
} QKINDS[ND_Q_COUNT] = {
	[ND_Q_FAILED] = {"failed", "failed — "},     [ND_Q_ROUNDS] = {"rounds", "changes requested — "},
	[ND_Q_REVIEW] = {"review", "review failed — "}, [ND_Q_BUDGET] = {"budget", "budget reached — "},
	[ND_Q_MERGE] = {"merge", ""},
};

static const char *const RESUMES[ND_RESUME_COUNT] = {"work", "rework", "merge", "rounds", "review"};

static const struct {
	const char *id, *label;
} OPTS[] = {
	[ND_OPT_APPROVE] = {"approve", "✅ Approve"}, [ND_OPT_CHANGE] = {"change", "✏️ Change"},
	[ND_OPT_CANCEL] = {"cancel", "🛑 Cancel"},    [ND_OPT_RETRY] = {"retry", "🔁 Retry"},
	[ND_OPT_SKIP] = {"skip", "⏭ Skip task"},     [ND_OPT_STOP] = {"stop", "🛑 Stop project"},
	[ND_OPT_ACCEPT] = {"accept", "✅ Merge as it is"},
	[ND_OPT_EXTEND] = {"extend", "💰 Extend budget"}, [ND_OPT_MERGE] = {"merge", "🔀 Merge"},
};

static const struct {
	const char *name;
	nd_wstatus s;
} WSTATUS[] = {
	{"done", ND_W_DONE},       {"unverified", ND_W_UNVERIFIED}, {"failed", ND_W_FAILED},
	{"refused", ND_W_REFUSED}, {"invalid", ND_W_INVALID},       {"conflict", ND_W_CONFLICT},
};

const char *nd_stage_name(nd_stage s)
{
	return s < ND_STAGE_COUNT ? STAGES[s].name : "?";
}

int nd_stage_closed(nd_stage s)
{
	return s == ND_STAGE_DONE || s == ND_STAGE_STOPPED || s == ND_STAGE_CANCELLED;
}

const char *nd_status_name(nd_status s)
{
	return s < ND_TASK_COUNT ? STATUS[s].name : "?";
}

const char *nd_status_label(nd_status s)
{
	return s < ND_TASK_COUNT ? STATUS[s].label : "?";
}

const char *nd_status_icon(nd_status s)
{
	return s < ND_TASK_COUNT ? STATUS[s].icon : "⏳";
}

nd_status nd_status_parse(const char *name)
{
	for (int i = 0; name && i < ND_TASK_COUNT; i++)
		if (strcmp(STATUS[i].name, name) == 0)
			return (nd_status)i;
	return ND_TASK_COUNT;
}

const char *nd_qkind_name(nd_qkind k)
{
	return k < ND_Q_COUNT ? QKINDS[k].name : "?";
}

const char *nd_qkind_reason(nd_qkind k)
{
	return k < ND_Q_COUNT ? QKINDS[k].reason : "";
}

const char *nd_opt_id(nd_opt o)
{
	return o < ND_OPT_NONE ? OPTS[o].id : "";
}

const char *nd_opt_label(nd_opt o)
{
	return o < ND_OPT_NONE ? OPTS[o].label : "";
}

/* The index of `name` in `names` (n entries), or n. */
static int index_of(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return n;
}

static nd_opt opt_parse(const char *id)
{
	if (!id)
		return ND_OPT_NONE;
	for (int i = 0; i < ND_OPT_NONE; i++)
		if (strcmp(OPTS[i].id, id) == 0)
			return (nd_opt)i;
	return ND_OPT_UNKNOWN;
}

int nd_stage_move(nd_project *p, nd_stage to)
{
	if (p->stage == to)
		return 0;
	if (p->stage >= ND_STAGE_COUNT || to >= ND_STAGE_COUNT || !(STAGES[p->stage].next & BIT(to)))
		return err_set(ERR_INTERNAL, "the project cannot go from stage '%s' to '%s'",
			       nd_stage_name(p->stage), nd_stage_name(to));
	p->stage = to;
	return 0;
}

int nd_task_move(nd_task *t, nd_status to)
{
	if (t->status == to)
		return 0;
	if (t->status >= ND_TASK_COUNT || to >= ND_TASK_COUNT || !(STATUS[t->status].next & BIT(to)))
		return err_set(ERR_INTERNAL, "task %s cannot go from '%s' to '%s'", t->id,
			       nd_status_name(t->status), nd_status_name(to));
	t->status = to;
	return 0;
}

/* --- reading what others send --- */

void nd_decision_read(const json_t *v, nd_decision *out)
{
	out->option = json_string_value(json_object_get(v, "option"));
	out->opt = opt_parse(out->option);
	out->by = json_object_get(v, "by");
	out->by_name = jx_str(out->by, "name");
}

void nd_result_read(const json_t *r, nd_result *out)
{
	const json_t *meta = json_object_get(r, "meta"), *mirror = json_object_get(r, "mirror");
	const char *status = jx_str(r, "status"), *kind = jx_str(meta, "kind");

	memset(out, 0, sizeof(*out));
	out->id = jx_str(r, "id");
	out->reason = jx_str(r, "reason");
	out->commit = jx_str(r, "commit");
	out->status = ND_W_OTHER;
	for (size_t i = 0; i < sizeof(WSTATUS) / sizeof(WSTATUS[0]); i++)
		if (strcmp(WSTATUS[i].name, status) == 0)
			out->status = WSTATUS[i].s;
	out->factory = json_is_true(json_object_get(meta, "factory"));
	out->kind = strcmp(kind, "merge") == 0 ? ND_MERGE : strcmp(kind, "publish") == 0 ? ND_PUBLISH
											   : ND_WORK;
	out->task = jx_str(meta, "task");
	out->budget = strcmp(jx_str(json_object_get(r, "agent"), "exit"), "budget") == 0;
	out->tests = json_object_get(r, "tests");
	out->diff = json_object_get(r, "diff");
	out->mirrored = json_is_object(mirror);
	out->pushed = json_is_true(json_object_get(mirror, "pushed"));
	out->mirror_url = json_string_value(json_object_get(mirror, "url"));
	out->mirror_error = json_string_value(json_object_get(mirror, "error"));
}

void nd_tests_read(const json_t *tests, nd_tests *out)
{
	out->present = json_is_object(tests);
	out->passed = (int)jx_int(tests, "passed");
	out->failed = (int)jx_int(tests, "failed");
	out->total = (int)jx_int(tests, "total");
	out->base_total = (int)jx_int(json_object_get(tests, "base"), "total");
	out->verdict = jx_str(tests, "verdict");
	out->output = jx_str(tests, "output");
	out->command = jx_str(tests, "command");
}

/* --- strings --- */

void nd_str_set(char **dst, const char *v)
{
	char *copy = v ? strdup(v) : NULL;

	free(*dst);
	*dst = copy;
}

/* A copy of o[k] when it is a string, else NULL. */
static char *str_of(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? strdup(v) : NULL;
}

/* o[k] into out[cap] ("" when absent). */
static void fixed_of(const json_t *o, const char *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", jx_str(o, k));
}

/* Sets o[k] to the string v, or leaves it out when v is NULL. */
static void put_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

/* --- the parts --- */

static void user_read(const json_t *j, nd_user *u)
{
	u->id = jx_int(j, "id");
	u->name = str_of(j, "name");
	u->username = str_of(j, "username");
}

static void user_free(nd_user *u)
{
	free(u->name);
	free(u->username);
	memset(u, 0, sizeof(*u));
}

static json_t *user_json(const nd_user *u)
{
	if (u->id <= 0)
		return NULL;
	return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)u->id, "name",
			 u->name ? u->name : "", "username", u->username ? u->username : "");
}

static int task_read(const json_t *j, const char *id, nd_task *t)
{
	const json_t *b = json_object_get(j, "budget");

	snprintf(t->id, sizeof(t->id), "%s", id);
	t->status = nd_status_parse(jx_str(j, "status"));
	if (t->status == ND_TASK_COUNT)
		return err_set(ERR_INVALID, "task %s has an unknown status '%s'", id,
			       jx_str(j, "status"));
	t->title = str_of(j, "title");
	t->round = (int)jx_int(j, "round");
	t->attempt = (int)jx_int(j, "attempt");
	t->failures = (int)jx_int(j, "failures");
	t->merge_failures = (int)jx_int(j, "merge_failures");
	t->branch = str_of(j, "branch");
	t->base = str_of(j, "base");
	t->spawn = str_of(j, "spawn");
	t->commit = str_of(j, "commit");
	t->merged_commit = str_of(j, "merged_commit");
	t->question = str_of(j, "question");
	t->reason = str_of(j, "reason");
	t->feedback = str_of(j, "feedback");
	t->tests = json_incref(json_object_get(j, "tests"));
	t->diff = json_incref(json_object_get(j, "diff"));
	t->reviews = json_incref(json_object_get(j, "reviews"));
	if (json_is_object(b)) {
		fixed_of(b, "kind", t->budget.kind, sizeof(t->budget.kind));
		fixed_of(b, "scope", t->budget.scope, sizeof(t->budget.scope));
		t->budget.limit_usd = jx_num(b, "limit_usd");
		t->budget.spent_usd = jx_num(b, "spent_usd");
	}
	return 0;
}

static void task_free(nd_task *t)
{
	char **strs[] = {&t->title, &t->branch, &t->base, &t->spawn, &t->commit,
			 &t->merged_commit, &t->question, &t->reason, &t->feedback};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	json_decref(t->tests);
	json_decref(t->diff);
	json_decref(t->reviews);
	memset(t, 0, sizeof(*t));
}

static json_t *task_json(const nd_task *t)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "id", t->id, "title",
			      t->title ? t->title : t->id, "status", nd_status_name(t->status),
			      "round", t->round, "attempt", t->attempt, "failures", t->failures);

	if (!j)
		return NULL;
	if (t->merge_failures)
		json_object_set_new(j, "merge_failures", json_integer(t->merge_failures));
	put_str(j, "branch", t->branch);
	put_str(j, "base", t->base);
	put_str(j, "spawn", t->spawn);
	put_str(j, "commit", t->commit);
	put_str(j, "merged_commit", t->merged_commit);
	put_str(j, "question", t->question);
	put_str(j, "reason", t->reason);
	put_str(j, "feedback", t->feedback);
	if (t->tests)
		json_object_set(j, "tests", t->tests);
	if (t->diff)
		json_object_set(j, "diff", t->diff);
	if (t->reviews)
		json_object_set(j, "reviews", t->reviews);
	if (t->budget.kind[0])
		json_object_set_new(j, "budget", json_pack("{s:s, s:s, s:f, s:f}", "kind",
							   t->budget.kind, "scope", t->budget.scope,
							   "limit_usd", t->budget.limit_usd,
							   "spent_usd", t->budget.spent_usd));
	return j;
}

static void question_read(const json_t *j, const char *key, nd_question *q)
{
	const json_t *o;
	size_t i;
	int kind = index_of((const char *const[]){"failed", "rounds", "review", "budget", "merge"},
			    ND_Q_COUNT, jx_str(j, "kind"));

	snprintf(q->key, sizeof(q->key), "%s", key);
	q->kind = (nd_qkind)kind; /* ND_Q_COUNT: a kind this version does not know */
	fixed_of(j, "task", q->task, sizeof(q->task));
	q->text = str_of(j, "text");
	json_array_foreach(json_object_get(j, "options"), i, o) {
		nd_opt opt = opt_parse(json_string_value(o));
		if (opt < ND_OPT_NONE && q->nopts < 6)
			q->opts[q->nopts++] = opt;
	}
	q->asked_at = jx_int(j, "asked_at");
	q->resume = (nd_resume)index_of(RESUMES, ND_RESUME_COUNT, jx_str(j, "resume"));
	if (q->resume == ND_RESUME_COUNT)
		q->resume = ND_RESUME_WORK;
	fixed_of(j, "budget_kind", q->budget_kind, sizeof(q->budget_kind));
	fixed_of(j, "scope", q->scope, sizeof(q->scope));
	q->expired = json_is_true(json_object_get(j, "expired"));
}

static json_t *question_json(const nd_question *q)
{
	json_t *opts = json_array(), *j;

	for (int i = 0; opts && i < q->nopts; i++)
		json_array_append_new(opts, json_string(nd_opt_id(q->opts[i])));
	j = json_pack("{s:s, s:s, s:s, s:o, s:I, s:s}", "kind", nd_qkind_name(q->kind), "task",
		      q->task, "text", q->text ? q->text : "", "options", opts ? opts : json_array(),
		      "asked_at", (json_int_t)q->asked_at, "resume", RESUMES[q->resume]);
	if (j && q->budget_kind[0])
		json_object_update_new(j, json_pack("{s:s, s:s}", "budget_kind", q->budget_kind,
						    "scope", q->scope));
	if (j && q->expired)
		json_object_set_new(j, "expired", json_true());
	return j;
}

static void repo_read(const json_t *j, nd_repo *r)
{
	const json_t *remote = json_object_get(j, "remote"), *pub = json_object_get(j, "published");

	r->present = json_is_object(j);
	r->path = str_of(j, "path");
	r->branch = str_of(j, "branch");
	r->head = str_of(j, "head");
	r->name = str_of(j, "name");
	r->has_remote = json_is_object(remote);
	r->remote_url = str_of(remote, "url");
	r->remote_handle = str_of(remote, "handle");
	r->remote_error = str_of(remote, "error");
	r->published = json_is_object(pub);
	r->pushed = json_is_true(json_object_get(pub, "pushed"));
	r->published_url = str_of(pub, "url");
	r->publish_error = str_of(pub, "error");
}

static void repo_free(nd_repo *r)
{
	char **strs[] = {&r->path, &r->branch, &r->head, &r->name, &r->remote_url,
			 &r->remote_handle, &r->remote_error, &r->published_url, &r->publish_error};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	memset(r, 0, sizeof(*r));
}

static json_t *repo_json(const nd_repo *r)
{
	json_t *j;

	if (!r->present)
		return NULL;
	j = json_object();
	put_str(j, "path", r->path);
	put_str(j, "branch", r->branch);
	put_str(j, "head", r->head);
	put_str(j, "name", r->name);
	if (r->has_remote) {
		json_t *remote = json_pack("{s:s*, s:s*, s:s*}", "url", r->remote_url, "handle",
					   r->remote_handle, "error", r->remote_error);
		json_object_set_new(j, "remote", remote);
	}
	if (r->published)
		json_object_set_new(j, "published",
				    json_pack("{s:s*, s:b, s:s*}", "url", r->published_url, "pushed",
					      r->pushed, "error", r->publish_error));
	return j;
}

/* --- the project --- */

static int load_tasks(nd_project *p, const json_t *tasks)
{
	const char *k;
	const json_t *v;
	int rc;

	json_object_foreach((json_t *)tasks, k, v) {
		nd_task *t;
		if (!json_is_object(v))
			continue;
		t = nd_task_add(p, k);
		if (!t)
			return ERR_NOMEM;
		rc = task_read(v, k, t);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int load_questions(nd_project *p, const json_t *qs)
{
	const char *k;
	const json_t *v;

	json_object_foreach((json_t *)qs, k, v) {
		nd_question *q;
		if (!json_is_object(v))
			continue;
		q = nd_question_add(p, k);
		if (!q)
			return ERR_NOMEM;
		question_read(v, k, q);
	}
	return 0;
}

void nd_input_read(const json_t *j, nd_input *out)
{
	memset(out, 0, sizeof(*out));
	out->present = json_is_object(j);
	if (!out->present)
		return;
	out->text = strdup(jx_str(j, "text"));
	out->has_chat = nd_chat_get(NULL, j, &out->chat) == 0;
	err_clear();
	user_read(json_object_get(j, "user"), &out->user);
}

void nd_input_free(nd_input *in)
{
	free(in->text);
	user_free(&in->user);
	memset(in, 0, sizeof(*in));
}

void nd_user_copy(nd_user *dst, const nd_user *src)
{
	dst->id = src->id;
	nd_str_set(&dst->name, src->name);
	nd_str_set(&dst->username, src->username);
}

static void load_pending(nd_project *p, const json_t *j)
{
	nd_pending *x = &p->pending;

	x->present = json_is_object(j);
	fixed_of(j, "key", x->key, sizeof(x->key));
	fixed_of(j, "resume", x->resume, sizeof(x->resume));
	fixed_of(j, "budget_kind", x->budget_kind, sizeof(x->budget_kind));
	fixed_of(j, "scope", x->scope, sizeof(x->scope));
}

static json_t *pending_json(const nd_pending *x)
{
	if (!x->present)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", x->key, "kind", "budget", "resume",
			 x->resume, "budget_kind", x->budget_kind, "scope", x->scope);
}

static json_t *main_json(const nd_main *m)
{
	if (!m->present)
		return NULL;
	return json_pack("{s:i, s:i, s:s*}", "passed", m->passed, "total", m->total, "command",
			 m->command);
}

int nd_project_load(nd_project *out, const json_t *state)
{
	const json_t *conv = json_object_get(state, "conversation");
	const json_t *last = json_array_get(conv, json_array_size(conv) - 1);
	const json_t *m = json_object_get(state, "main");
	const char *stage = jx_str(state, "stage");
	int rc;

	memset(out, 0, sizeof(*out));
	for (out->stage = 0; out->stage < ND_STAGE_COUNT; out->stage++)
		if (strcmp(STAGES[out->stage].name, stage) == 0)
			break;
	if (out->stage == ND_STAGE_COUNT)
		return err_set(ERR_INVALID, "the project's state has an unknown stage '%s'", stage);
	out->rest = json_is_true(json_object_get(state, "rest"));
	out->has_chat = json_is_object(json_object_get(state, "chat")) &&
			nd_chat_get(state, NULL, &out->chat) == 0;
	err_clear();
	user_read(json_object_get(state, "user"), &out->user);
	nd_input_read(json_object_get(state, "input"), &out->input);
	out->spec = json_is_object(json_object_get(state, "spec")) ? json_object_get(state, "spec")
								   : NULL;
	out->spec_version = (int)jx_int(state, "spec_version");
	out->plan_version = (int)jx_int(state, "plan_version");
	out->asks = (int)jx_int(state, "asks");
	out->merges = (int)jx_int(state, "merges");
	out->plan_feedback = str_of(state, "plan_feedback");
	out->progress = str_of(state, "progress");
	load_pending(out, json_object_get(state, "pending"));
	repo_read(json_object_get(state, "repo"), &out->repo);
	out->main.present = json_is_object(m);
	out->main.passed = (int)jx_int(m, "passed");
	out->main.total = (int)jx_int(m, "total");
	out->main.command = str_of(m, "command");
	out->conv_len = json_array_size(conv);
	out->conv_last_user = strcmp(jx_str(last, "role"), "user") == 0;
	rc = nd_plan_read(json_object_get(state, "plan"), &out->plan);
	if (rc == 0)
		rc = load_tasks(out, json_object_get(state, "tasks"));
	if (rc == 0)
		rc = load_questions(out, json_object_get(state, "questions"));
	return rc;
}

void nd_project_free(nd_project *p)
{
	if (!p)
		return;
	user_free(&p->user);
	nd_input_free(&p->input);
	nd_plan_free(&p->plan);
	free(p->plan_feedback);
	free(p->progress);
	repo_free(&p->repo);
	free(p->main.command);
	for (size_t i = 0; i < p->ntasks; i++)
		task_free(&p->tasks[i]);
	free(p->tasks);
	for (size_t i = 0; i < p->nqs; i++)
		free(p->qs[i].text);
	free(p->qs);
	memset(p, 0, sizeof(*p));
}

/* Sets update[key] to `now` (stolen; NULL means null) unless it equals
 * `was` (stolen). */
static void put_changed(json_t *update, const char *key, json_t *now, json_t *was)
{
	if (!json_equal(now ? now : json_null(), was ? was : json_null()))
		json_object_set(update, key, now ? now : json_null());
	json_decref(now);
	json_decref(was);
}

static void put_int(json_t *update, const char *key, int now, int was)
{
	if (now != was)
		json_object_set_new(update, key, json_integer(now));
}

static void store_tasks(const nd_project *p, const nd_project *was, json_t *update)
{
	json_t *tu = json_object();

	for (size_t i = 0; tu && i < p->ntasks; i++) {
		const nd_task *o = nd_task_find(was, p->tasks[i].id);
		json_t *now = task_json(&p->tasks[i]), *before = o ? task_json(o) : NULL;

		if (now && !json_equal(now, before ? before : json_null()))
			json_object_set(tu, p->tasks[i].id, now);
		json_decref(now);
		json_decref(before);
	}
	if (json_object_size(tu))
		json_object_set(update, "tasks", tu);
	json_decref(tu);
}

static void store_questions(const nd_project *p, const nd_project *was, json_t *update)
{
	json_t *qu = json_object();

	for (size_t i = 0; qu && i < was->nqs; i++)
		if (!nd_question_find(p, was->qs[i].key))
			json_object_set_new(qu, was->qs[i].key, json_null());
	for (size_t i = 0; qu && i < p->nqs; i++) {
		const nd_question *o = nd_question_find(was, p->qs[i].key);
		json_t *now = question_json(&p->qs[i]), *before = o ? question_json(o) : NULL;

		if (now && !json_equal(now, before ? before : json_null()))
			json_object_set(qu, p->qs[i].key, now);
		json_decref(now);
		json_decref(before);
	}
	if (json_object_size(qu))
		json_object_set(update, "questions", qu);
	json_decref(qu);
}

int nd_project_store(const nd_project *p, const nd_project *was, json_t *update)
{
	if (p->stage != was->stage)
		json_object_set_new(update, "stage", json_string(nd_stage_name(p->stage)));
	if (p->rest != was->rest)
		json_object_set_new(update, "rest", json_boolean(p->rest));
	if (p->has_chat && !was->has_chat)
		json_object_set_new(update, "chat", nd_chat_json(&p->chat));
	put_changed(update, "user", user_json(&p->user), user_json(&was->user));
	if (!p->input.present && was->input.present)
		json_object_set_new(update, "input", json_null());
	put_int(update, "spec_version", p->spec_version, was->spec_version);
	put_int(update, "plan_version", p->plan_version, was->plan_version);
	put_int(update, "asks", p->asks, was->asks);
	put_int(update, "merges", p->merges, was->merges);
	put_changed(update, "plan_feedback", p->plan_feedback ? json_string(p->plan_feedback) : NULL,
		    was->plan_feedback ? json_string(was->plan_feedback) : NULL);
	put_changed(update, "progress", p->progress ? json_string(p->progress) : NULL,
		    was->progress ? json_string(was->progress) : NULL);
	put_changed(update, "pending", pending_json(&p->pending), pending_json(&was->pending));
	put_changed(update, "repo", repo_json(&p->repo), repo_json(&was->repo));
	put_changed(update, "main", main_json(&p->main), main_json(&was->main));
	store_tasks(p, was, update);
	store_questions(p, was, update);
	return 0;
}

/* --- lookups --- */

nd_task *nd_task_find(const nd_project *p, const char *id)
{
	for (size_t i = 0; id && i < p->ntasks; i++)
		if (strcmp(p->tasks[i].id, id) == 0)
			return &p->tasks[i];
	return NULL;
}

nd_task *nd_task_add(nd_project *p, const char *id)
{
	nd_task *n = realloc(p->tasks, (p->ntasks + 1) * sizeof(*n));

	if (!n) {
		err_set(ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->tasks = n;
	memset(&n[p->ntasks], 0, sizeof(*n));
	snprintf(n[p->ntasks].id, sizeof(n[p->ntasks].id), "%s", id);
	return &n[p->ntasks++];
}

const nd_plan_task *nd_plan_find(const nd_project *p, const char *id)
{
	for (size_t i = 0; id && i < p->plan.ntasks; i++)
		if (strcmp(p->plan.tasks[i].id, id) == 0)
			return &p->plan.tasks[i];
	return NULL;
}

nd_question *nd_question_find(const nd_project *p, const char *key)
{
	for (size_t i = 0; key && i < p->nqs; i++)
		if (strcmp(p->qs[i].key, key) == 0)
			return &p->qs[i];
	return NULL;
}

nd_question *nd_question_add(nd_project *p, const char *key)
{
	nd_question *n = realloc(p->qs, (p->nqs + 1) * sizeof(*n));

	if (!n) {
		err_set(ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->qs = n;
	memset(&n[p->nqs], 0, sizeof(*n));
	snprintf(n[p->nqs].key, sizeof(n[p->nqs].key), "%s", key);
	return &n[p->nqs++];
}

void nd_question_remove(nd_project *p, const char *key)
{
	nd_question *q = nd_question_find(p, key);

	if (!q)
		return;
	free(q->text);
	memmove(q, q + 1, (size_t)(p->qs + p->nqs - (q + 1)) * sizeof(*q));
	p->nqs--;
}

int nd_project_all_done(const nd_project *p)
{
	for (size_t i = 0; i < p->ntasks; i++)
		if (p->tasks[i].status != ND_TASK_MERGED && p->tasks[i].status != ND_TASK_SKIPPED)
			return 0;
	return p->ntasks > 0;
}
