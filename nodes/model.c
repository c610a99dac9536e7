#include "nodes/model.h"
#include "core/err.h"
#include "core/jsonx.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(x) (1u << (x))

/* --- the vocabulary --- */

const nd_word ND_STAGES[ND_STAGE_COUNT] = {
	[ND_STAGE_NEW] = {"", 0, 0, B(ND_STAGE_BRAINSTORM) | B(ND_STAGE_IMPORT) |
				    B(ND_STAGE_CANCELLED)},
	[ND_STAGE_BRAINSTORM] = {"brainstorm", 0, 0, B(ND_STAGE_SPEC_REVIEW) | B(ND_STAGE_STOPPED) |
							 B(ND_STAGE_CANCELLED)},
	[ND_STAGE_SPEC_REVIEW] = {"spec_review", 0, 0, B(ND_STAGE_BRAINSTORM) |
							   B(ND_STAGE_ARCHITECT) | B(ND_STAGE_BASELINE) |
							   B(ND_STAGE_CANCELLED)},
	[ND_STAGE_ARCHITECT] = {"architect", 0, 0, B(ND_STAGE_PLAN_REVIEW) | B(ND_STAGE_STOPPED) |
						       B(ND_STAGE_CANCELLED)},
	[ND_STAGE_PLAN_REVIEW] = {"plan_review", 0, 0, B(ND_STAGE_ARCHITECT) | B(ND_STAGE_DEVELOP) |
							   B(ND_STAGE_CANCELLED)},
	[ND_STAGE_DEVELOP] = {"develop", 0, 0, B(ND_STAGE_DONE) | B(ND_STAGE_DELIVER) |
						   B(ND_STAGE_STOPPED) | B(ND_STAGE_CANCELLED)},
	[ND_STAGE_IMPORT] = {"import", 0, 0, B(ND_STAGE_BRAINSTORM) | B(ND_STAGE_STOPPED) |
						 B(ND_STAGE_CANCELLED)},
	[ND_STAGE_BASELINE] = {"baseline", 0, 0, B(ND_STAGE_ARCHITECT) | B(ND_STAGE_STOPPED) |
						     B(ND_STAGE_CANCELLED)},
	[ND_STAGE_DELIVER] = {"deliver", 0, 0, B(ND_STAGE_DONE) | B(ND_STAGE_FOLLOW) |
						   B(ND_STAGE_STOPPED) | B(ND_STAGE_CANCELLED)},
	[ND_STAGE_FOLLOW] = {"pull_request", 0, 0, B(ND_STAGE_DEVELOP) | B(ND_STAGE_DONE) |
						       B(ND_STAGE_STOPPED) | B(ND_STAGE_CANCELLED)},
	[ND_STAGE_DONE] = {"done", 0, 0, 0},
	[ND_STAGE_STOPPED] = {"stopped", 0, 0, 0},
	[ND_STAGE_CANCELLED] = {"cancelled", 0, 0, 0},
};

const nd_word ND_STATUS[ND_TASK_COUNT] = {
	[ND_TASK_QUEUED] = {"queued", "queued", "⏳", B(ND_TASK_WORKING)},
	[ND_TASK_WORKING] = {"working", "working", "🔨",
			     B(ND_TASK_REVIEW) | B(ND_TASK_QUEUED) | B(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW] = {"review", "reviewing", "🔍", B(ND_TASK_REVIEWING)},
	[ND_TASK_REVIEWING] = {"reviewing", "reviewing", "🔍",
			       B(ND_TASK_APPROVED) | B(ND_TASK_CHANGES) | B(ND_TASK_REVIEW_ERROR) |
				   B(ND_TASK_REVIEW_BUDGET)},
	[ND_TASK_CHANGES] = {"changes", "changes requested", "⏳",
			     B(ND_TASK_QUEUED) | B(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW_ERROR] = {"review_error", "review failed", "⏳", B(ND_TASK_BLOCKED)},
	[ND_TASK_REVIEW_BUDGET] = {"review_budget", "budget reached", "⏳", B(ND_TASK_BLOCKED)},
	[ND_TASK_APPROVED] = {"approved", "approved", "🔍",
			      B(ND_TASK_MERGE_READY) | B(ND_TASK_MERGE_WAIT)},
	[ND_TASK_MERGE_WAIT] = {"merge_wait", "waiting for your merge approval", "❓",
				B(ND_TASK_MERGE_READY) | B(ND_TASK_SKIPPED)},
	[ND_TASK_MERGE_READY] = {"merge_ready", "waiting to merge", "🧪", B(ND_TASK_MERGING)},
	[ND_TASK_MERGING] = {"merging", "testing", "🧪",
			     B(ND_TASK_MERGED) | B(ND_TASK_QUEUED) | B(ND_TASK_MERGE_READY) |
				 B(ND_TASK_BLOCKED)},
	[ND_TASK_MERGED] = {"merged", "done", "✅", 0},
	[ND_TASK_BLOCKED] = {"blocked", "waiting for you", "❓",
			     B(ND_TASK_SKIPPED) | B(ND_TASK_APPROVED) | B(ND_TASK_MERGE_READY) |
				 B(ND_TASK_REVIEW) | B(ND_TASK_QUEUED)},
	[ND_TASK_SKIPPED] = {"skipped", "skipped", "⏭", 0},
};

const nd_word ND_QKINDS[ND_Q_COUNT + 1] = {
	[ND_Q_FAILED] = {"failed", "failed — ", 0, 0},
	[ND_Q_ROUNDS] = {"rounds", "changes requested — ", 0, 0},
	[ND_Q_REVIEW] = {"review", "review failed — ", 0, 0},
	[ND_Q_BUDGET] = {"budget", "budget reached — ", 0, 0},
	[ND_Q_MERGE] = {"merge", "", 0, 0},
	[ND_Q_COUNT] = {"?", "", 0, 0},
};

static const nd_word RESUMES[ND_RESUME_COUNT] = {
	{"work", 0, 0, 0}, {"rework", 0, 0, 0}, {"merge", 0, 0, 0}, {"rounds", 0, 0, 0},
	{"review", 0, 0, 0},
};

const nd_word ND_OPTS[ND_OPT_NONE] = {
	[ND_OPT_APPROVE] = {"approve", "✅ Approve", 0, 0},
	[ND_OPT_CHANGE] = {"change", "✏️ Change", 0, 0},
	[ND_OPT_CANCEL] = {"cancel", "🛑 Cancel", 0, 0},
	[ND_OPT_RETRY] = {"retry", "🔁 Retry", 0, 0},
	[ND_OPT_SKIP] = {"skip", "⏭ Skip task", 0, 0},
	[ND_OPT_STOP] = {"stop", "🛑 Stop project", 0, 0},
	[ND_OPT_ACCEPT] = {"accept", "✅ Merge as it is", 0, 0},
	[ND_OPT_EXTEND] = {"extend", "💰 Extend budget", 0, 0},
	[ND_OPT_MERGE] = {"merge", "🔀 Merge", 0, 0},
};

static const nd_word WSTATUS[ND_W_OTHER] = {
	{"done", 0, 0, 0},    {"unverified", 0, 0, 0}, {"failed", 0, 0, 0},
	{"refused", 0, 0, 0}, {"invalid", 0, 0, 0},    {"conflict", 0, 0, 0},
};

int nd_word_find(const nd_word *v, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return i;
	return n;
}

int nd_stage_closed(nd_stage s)
{
	return s == ND_STAGE_DONE || s == ND_STAGE_STOPPED || s == ND_STAGE_CANCELLED;
}

int nd_stage_move(nd_project *p, nd_stage to)
{
	if (p->stage != to && !(ND_STAGES[p->stage].next & B(to)))
		return err_set(ERR_INTERNAL, "the project cannot go from stage '%s' to '%s'",
			       ND_STAGES[p->stage].name, ND_STAGES[to].name);
	p->stage = to;
	return 0;
}

int nd_task_move(nd_task *t, nd_status to)
{
	if (t->status != to && !(ND_STATUS[t->status].next & B(to)))
		return err_set(ERR_INTERNAL, "task %s cannot go from '%s' to '%s'", t->id,
			       ND_STATUS[t->status].name, ND_STATUS[to].name);
	t->status = to;
	return 0;
}

/* --- what others send --- */

void nd_decision_read(const json_t *v, nd_decision *out)
{
	out->option = json_string_value(json_object_get(v, "option"));
	out->opt = !out->option ? ND_OPT_NONE
				: (nd_opt)nd_word_find(ND_OPTS, ND_OPT_NONE, out->option);
	if (out->opt == ND_OPT_NONE && out->option)
		out->opt = ND_OPT_UNKNOWN;
	out->by = json_object_get(v, "by");
	out->by_name = jx_str(out->by, "name");
}

void nd_result_read(const json_t *r, nd_result *out)
{
	const json_t *meta = json_object_get(r, "meta"), *mirror = json_object_get(r, "mirror");
	const char *kind = jx_str(meta, "kind");

	memset(out, 0, sizeof(*out));
	out->id = jx_str(r, "id");
	out->reason = jx_str(r, "reason");
	out->commit = jx_str(r, "commit");
	out->task = jx_str(meta, "task");
	out->status = (nd_wstatus)nd_word_find(WSTATUS, ND_W_OTHER, jx_str(r, "status"));
	out->kind = strcmp(kind, "merge") == 0 ? ND_MERGE : strcmp(kind, "publish") == 0 ? ND_PUBLISH
											   : ND_WORK;
	out->factory = json_is_true(json_object_get(meta, "factory"));
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

void nd_str_set(char **dst, const char *v)
{
	char *copy = v ? strdup(v) : NULL;

	free(*dst);
	*dst = copy;
}

/* --- the parts, described field by field ---
 *
 * A field lives at `key` of the part's object, or of its sub-object `obj`.
 * Reading fills the struct; writing puts what is set (a string, a non-zero
 * number, true, a JSON value) and ALWAYS fields in any case; a sub-object
 * with a presence field (F_OBJ) is written when that is set. */

typedef enum { F_STR, F_TEXT, F_INT, F_I64, F_NUM, F_BOOL, F_JSON, F_OBJ, F_STATUS } ftype;

typedef struct field {
	const char *obj, *key;
	ftype type;
	size_t off, cap; /* cap: F_TEXT's size */
	int always;
} field;

#define FIELD(T, obj, key, type, member, always) \
	{obj, key, type, offsetof(T, member), sizeof(((T *)0)->member), always}

static const field USER_F[] = {
	FIELD(nd_user, NULL, "id", F_I64, id, 1),
	FIELD(nd_user, NULL, "name", F_STR, name, 1),
	FIELD(nd_user, NULL, "username", F_STR, username, 1),
};

static const field TASK_F[] = {
	FIELD(nd_task, NULL, "id", F_TEXT, id, 1),
	FIELD(nd_task, NULL, "title", F_STR, title, 1),
	FIELD(nd_task, NULL, "status", F_STATUS, status, 1),
	FIELD(nd_task, NULL, "round", F_INT, round, 1),
	FIELD(nd_task, NULL, "attempt", F_INT, attempt, 1),
	FIELD(nd_task, NULL, "failures", F_INT, failures, 1),
	FIELD(nd_task, NULL, "merge_failures", F_INT, merge_failures, 0),
	FIELD(nd_task, NULL, "branch", F_STR, branch, 0),
	FIELD(nd_task, NULL, "base", F_STR, base, 0),
	FIELD(nd_task, NULL, "spawn", F_STR, spawn, 0),
	FIELD(nd_task, NULL, "commit", F_STR, commit, 0),
	FIELD(nd_task, NULL, "merged_commit", F_STR, merged_commit, 0),
	FIELD(nd_task, NULL, "question", F_STR, question, 0),
	FIELD(nd_task, NULL, "reason", F_STR, reason, 0),
	FIELD(nd_task, NULL, "feedback", F_STR, feedback, 0),
	FIELD(nd_task, NULL, "tests", F_JSON, tests, 0),
	FIELD(nd_task, NULL, "diff", F_JSON, diff, 0),
	FIELD(nd_task, NULL, "reviews", F_JSON, reviews, 0),
	FIELD(nd_task, "budget", NULL, F_OBJ, has_budget, 0),
	FIELD(nd_task, "budget", "kind", F_TEXT, budget_kind, 1),
	FIELD(nd_task, "budget", "scope", F_TEXT, budget_scope, 1),
	FIELD(nd_task, "budget", "limit_usd", F_NUM, budget_limit, 1),
	FIELD(nd_task, "budget", "spent_usd", F_NUM, budget_spent, 1),
};

static const field QUESTION_F[] = {
	FIELD(nd_question, NULL, "task", F_TEXT, task, 1),
	FIELD(nd_question, NULL, "text", F_STR, text, 1),
	FIELD(nd_question, NULL, "asked_at", F_I64, asked_at, 1),
	FIELD(nd_question, NULL, "budget_kind", F_TEXT, budget_kind, 0),
	FIELD(nd_question, NULL, "scope", F_TEXT, scope, 0),
	FIELD(nd_question, NULL, "expired", F_BOOL, expired, 0),
};

static const field PENDING_F[] = {
	FIELD(nd_pending, NULL, "key", F_TEXT, key, 1),
	FIELD(nd_pending, NULL, "kind", F_TEXT, kind, 1),
	FIELD(nd_pending, NULL, "resume", F_TEXT, resume, 1),
	FIELD(nd_pending, NULL, "budget_kind", F_TEXT, budget_kind, 1),
	FIELD(nd_pending, NULL, "scope", F_TEXT, scope, 1),
};

static const field REPO_F[] = {
	FIELD(nd_repo, NULL, "path", F_STR, path, 0),
	FIELD(nd_repo, NULL, "branch", F_STR, branch, 0),
	FIELD(nd_repo, NULL, "head", F_STR, head, 0),
	FIELD(nd_repo, NULL, "name", F_STR, name, 0),
	FIELD(nd_repo, "remote", NULL, F_OBJ, has_remote, 0),
	FIELD(nd_repo, "remote", "url", F_STR, remote_url, 0),
	FIELD(nd_repo, "remote", "handle", F_STR, remote_handle, 0),
	FIELD(nd_repo, "remote", "error", F_STR, remote_error, 0),
	FIELD(nd_repo, "published", NULL, F_OBJ, published, 0),
	FIELD(nd_repo, "published", "url", F_STR, published_url, 0),
	FIELD(nd_repo, "published", "pushed", F_BOOL, pushed, 1),
	FIELD(nd_repo, "published", "error", F_STR, publish_error, 0),
};

static const field CHANGE_F[] = {
	FIELD(nd_change, NULL, "source", F_STR, source, 1),
	FIELD(nd_change, NULL, "local", F_BOOL, local, 0),
	FIELD(nd_change, NULL, "branch", F_STR, branch, 0),
	FIELD(nd_change, NULL, "pr", F_BOOL, pr, 0),
	FIELD(nd_change, NULL, "handle", F_STR, handle, 0),
	FIELD(nd_change, NULL, "secret", F_STR, secret, 0),
	FIELD(nd_change, NULL, "channel", F_STR, channel, 0),
	FIELD(nd_change, NULL, "spawn", F_STR, spawn, 0),
	FIELD(nd_change, NULL, "sends", F_INT, sends, 0),
	FIELD(nd_change, NULL, "ask", F_STR, ask, 0),
	FIELD(nd_change, NULL, "base_commit", F_STR, base_commit, 0),
	FIELD(nd_change, NULL, "error", F_STR, error, 0),
	FIELD(nd_change, NULL, "context", F_I64, context, 0),
	FIELD(nd_change, "baseline", NULL, F_OBJ, has_baseline, 0),
	FIELD(nd_change, "baseline", "ran", F_BOOL, base_ran, 1),
	FIELD(nd_change, "baseline", "passed", F_INT, base_passed, 1),
	FIELD(nd_change, "baseline", "failed", F_INT, base_failed, 1),
	FIELD(nd_change, "baseline", "total", F_INT, base_total, 1),
	FIELD(nd_change, "baseline", "exit_code", F_INT, base_exit, 1),
	FIELD(nd_change, "baseline", "verdict", F_STR, base_verdict, 0),
	FIELD(nd_change, "baseline", "output", F_STR, base_output, 0),
	FIELD(nd_change, "baseline", "reason", F_STR, base_reason, 0),
	FIELD(nd_change, "baseline", "failing", F_JSON, base_failing, 0),
	FIELD(nd_change, NULL, "delivery", F_STR, delivery, 0),
	FIELD(nd_change, NULL, "delivered", F_BOOL, delivered, 0),
	FIELD(nd_change, NULL, "pushed", F_STR, pushed, 0),
	FIELD(nd_change, "pull_request", NULL, F_OBJ, has_pr, 0),
	FIELD(nd_change, "pull_request", "number", F_I64, pr_number, 1),
	FIELD(nd_change, "pull_request", "url", F_STR, pr_url, 0),
	FIELD(nd_change, "pull_request", "head", F_STR, pr_head, 0),
	FIELD(nd_change, "pull_request", "state", F_STR, pr_state, 0),
	FIELD(nd_change, NULL, "rounds", F_INT, rounds, 0),
};

static const field MAIN_F[] = {
	FIELD(nd_main, NULL, "passed", F_INT, passed, 1),
	FIELD(nd_main, NULL, "total", F_INT, total, 1),
	FIELD(nd_main, NULL, "command", F_STR, command, 0),
};

#define N(f) (sizeof(f) / sizeof((f)[0]))

/* Reads object j into the struct at s. ERR_INVALID for a status it does
 * not know. */
static int fields_read(const json_t *j, void *s, const field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const json_t *o = f[i].obj ? json_object_get(j, f[i].obj) : j;
		const json_t *v = f[i].key ? json_object_get(o, f[i].key) : o;
		char *at = (char *)s + f[i].off;

		switch (f[i].type) {
		case F_STR:
			*(char **)at = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
			break;
		case F_TEXT:
			snprintf(at, f[i].cap, "%s", json_is_string(v) ? json_string_value(v) : "");
			break;
		case F_INT:
			*(int *)at = (int)json_integer_value(v);
			break;
		case F_I64:
			*(int64_t *)at = json_integer_value(v);
			break;
		case F_NUM:
			*(double *)at = json_number_value(v);
			break;
		case F_BOOL:
			*(int *)at = json_is_true(v);
			break;
		case F_JSON:
			*(json_t **)at = json_incref((json_t *)v);
			break;
		case F_OBJ:
			*(int *)at = json_is_object(v);
			break;
		case F_STATUS:
			*(nd_status *)at = (nd_status)nd_word_find(ND_STATUS, ND_TASK_COUNT,
								   json_string_value(v));
			if (*(nd_status *)at == ND_TASK_COUNT)
				return err_set(ERR_INVALID, "a task has an unknown status '%s'",
					       json_is_string(v) ? json_string_value(v) : "");
			break;
		}
	}
	return 0;
}

static void fields_free(void *s, const field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *at = (char *)s + f[i].off;
		if (f[i].type == F_STR)
			free(*(char **)at);
		else if (f[i].type == F_JSON)
			json_decref(*(json_t **)at);
	}
}

/* The value of field f of the struct at s, or NULL when unset and not
 * ALWAYS. */
static json_t *field_json(const void *s, const field *f)
{
	const char *at = (const char *)s + f->off;

	switch (f->type) {
	case F_STR:
		return *(char *const *)at ? json_string(*(char *const *)at)
					   : f->always ? json_string("") : NULL;
	case F_TEXT:
		return *at || f->always ? json_string(at) : NULL;
	case F_INT:
		return *(const int *)at || f->always ? json_integer(*(const int *)at) : NULL;
	case F_I64:
		return *(const int64_t *)at || f->always ? json_integer(*(const int64_t *)at) : NULL;
	case F_NUM:
		return json_real(*(const double *)at);
	case F_BOOL:
		return *(const int *)at || f->always ? json_boolean(*(const int *)at) : NULL;
	case F_JSON:
		return json_incref(*(json_t *const *)at);
	case F_STATUS:
		return json_string(ND_STATUS[*(const nd_status *)at].name);
	default:
		return NULL;
	}
}

/* The struct at s as a JSON object (owned). */
static json_t *fields_json(const void *s, const field *f, size_t n)
{
	json_t *j = json_object();

	for (size_t i = 0; j && i < n; i++) {
		json_t *o = j, *v;
		if (f[i].obj) {
			/* a sub-object: written when its presence field is set */
			for (size_t k = 0; k < n; k++)
				if (f[k].type == F_OBJ && strcmp(f[k].obj, f[i].obj) == 0 &&
				    !*(const int *)((const char *)s + f[k].off))
					o = NULL;
			if (o && !json_object_get(j, f[i].obj))
				json_object_set_new(j, f[i].obj, json_object());
			o = o ? json_object_get(j, f[i].obj) : NULL;
		}
		v = o && f[i].key ? field_json(s, &f[i]) : NULL;
		if (v)
			json_object_set_new(o, f[i].key, v);
	}
	return j;
}

/* --- the project --- */

void nd_input_read(const json_t *j, nd_input *out)
{
	memset(out, 0, sizeof(*out));
	out->present = json_is_object(j);
	if (!out->present)
		return;
	out->text = strdup(jx_str(j, "text"));
	out->has_change = json_is_object(json_object_get(j, "change"));
	out->has_chat = nd_chat_get(NULL, j, &out->chat) == 0;
	err_clear();
	fields_read(json_object_get(j, "user"), &out->user, USER_F, N(USER_F));
}

void nd_input_free(nd_input *in)
{
	free(in->text);
	fields_free(&in->user, USER_F, N(USER_F));
	memset(in, 0, sizeof(*in));
}

void nd_user_copy(nd_user *dst, const nd_user *src)
{
	dst->id = src->id;
	nd_str_set(&dst->name, src->name);
	nd_str_set(&dst->username, src->username);
}

static int task_read(const json_t *j, const char *id, nd_task *t)
{
	int rc = fields_read(j, t, TASK_F, N(TASK_F));

	snprintf(t->id, sizeof(t->id), "%s", id);
	return rc < 0 ? err_wrap("task %s", id) : 0;
}

static void question_read(const json_t *j, const char *key, nd_question *q)
{
	const json_t *o;
	size_t i;

	fields_read(j, q, QUESTION_F, N(QUESTION_F));
	snprintf(q->key, sizeof(q->key), "%s", key);
	q->kind = (nd_qkind)nd_word_find(ND_QKINDS, ND_Q_COUNT, jx_str(j, "kind"));
	q->resume = (nd_resume)nd_word_find(RESUMES, ND_RESUME_COUNT, jx_str(j, "resume"));
	if (q->resume == ND_RESUME_COUNT)
		q->resume = ND_RESUME_WORK;
	json_array_foreach(json_object_get(j, "options"), i, o) {
		int opt = nd_word_find(ND_OPTS, ND_OPT_NONE, json_string_value(o));
		if (opt < ND_OPT_NONE && q->nopts < 6)
			q->opts[q->nopts++] = (nd_opt)opt;
	}
}

static json_t *question_json(const nd_question *q)
{
	json_t *j = fields_json(q, QUESTION_F, N(QUESTION_F)), *opts = json_array();

	for (int i = 0; opts && i < q->nopts; i++)
		json_array_append_new(opts, json_string(ND_OPTS[q->opts[i]].name));
	json_object_set_new(j, "kind", json_string(ND_QKINDS[q->kind].name));
	json_object_set_new(j, "options", opts ? opts : json_array());
	json_object_set_new(j, "resume", json_string(RESUMES[q->resume].name));
	return j;
}

/* A part of the state: its JSON when present, else NULL (owned). */
static json_t *part_json(int present, const void *s, const field *f, size_t n)
{
	return present ? fields_json(s, f, n) : NULL;
}

int nd_project_load(nd_project *out, const json_t *state)
{
	const json_t *conv = json_object_get(state, "conversation"), *v;
	const char *stage = jx_str(state, "stage"), *k;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->stage = (nd_stage)nd_word_find(ND_STAGES, ND_STAGE_COUNT, stage);
	if (out->stage == ND_STAGE_COUNT) {
		out->stage = ND_STAGE_NEW;
		return err_set(ERR_INVALID, "the project's state has an unknown stage '%s'", stage);
	}
	out->rest = json_is_true(json_object_get(state, "rest"));
	out->has_chat = json_is_object(json_object_get(state, "chat")) &&
			nd_chat_get(state, NULL, &out->chat) == 0;
	err_clear();
	fields_read(json_object_get(state, "user"), &out->user, USER_F, N(USER_F));
	nd_input_read(json_object_get(state, "input"), &out->input);
	v = json_object_get(state, "spec");
	out->spec = json_is_object(v) ? v : NULL;
	out->spec_version = (int)jx_int(state, "spec_version");
	out->plan_version = (int)jx_int(state, "plan_version");
	out->asks = (int)jx_int(state, "asks");
	out->merges = (int)jx_int(state, "merges");
	nd_str_set(&out->plan_feedback, json_string_value(json_object_get(state, "plan_feedback")));
	nd_str_set(&out->progress, json_string_value(json_object_get(state, "progress")));
	out->pending.present = json_is_object(json_object_get(state, "pending"));
	fields_read(json_object_get(state, "pending"), &out->pending, PENDING_F, N(PENDING_F));
	out->repo.present = json_is_object(json_object_get(state, "repo"));
	fields_read(json_object_get(state, "repo"), &out->repo, REPO_F, N(REPO_F));
	out->change.present = json_is_object(json_object_get(state, "change"));
	fields_read(json_object_get(state, "change"), &out->change, CHANGE_F, N(CHANGE_F));
	out->main.present = json_is_object(json_object_get(state, "main"));
	fields_read(json_object_get(state, "main"), &out->main, MAIN_F, N(MAIN_F));
	out->conv_len = json_array_size(conv);
	out->conv_last_user =
	    strcmp(jx_str(json_array_get(conv, out->conv_len - 1), "role"), "user") == 0;
	rc = nd_plan_read(json_object_get(state, "plan"), &out->plan);
	json_object_foreach((json_t *)json_object_get(state, "tasks"), k, v) {
		nd_task *t = rc == 0 && json_is_object(v) ? nd_task_add(out, k) : NULL;
		if (t)
			rc = task_read(v, k, t);
	}
	json_object_foreach((json_t *)json_object_get(state, "questions"), k, v) {
		nd_question *q = rc == 0 && json_is_object(v) ? nd_question_add(out, k) : NULL;
		if (q)
			question_read(v, k, q);
	}
	return rc;
}

void nd_project_free(nd_project *p)
{
	if (!p)
		return;
	fields_free(&p->user, USER_F, N(USER_F));
	nd_input_free(&p->input);
	nd_plan_free(&p->plan);
	free(p->plan_feedback);
	free(p->progress);
	fields_free(&p->repo, REPO_F, N(REPO_F));
	fields_free(&p->change, CHANGE_F, N(CHANGE_F));
	fields_free(&p->main, MAIN_F, N(MAIN_F));
	for (size_t i = 0; i < p->ntasks; i++)
		fields_free(&p->tasks[i], TASK_F, N(TASK_F));
	free(p->tasks);
	for (size_t i = 0; i < p->nqs; i++)
		free(p->qs[i].text);
	free(p->qs);
	memset(p, 0, sizeof(*p));
}

/* Sets update[key] to `now` (stolen; NULL: null) unless it equals `was`
 * (stolen). */
static void put_changed(json_t *update, const char *key, json_t *now, json_t *was)
{
	if (!json_equal(now ? now : json_null(), was ? was : json_null()))
		json_object_set(update, key, now ? now : json_null());
	json_decref(now);
	json_decref(was);
}

static json_t *str_json(const char *s)
{
	return s ? json_string(s) : NULL;
}

void nd_project_store(const nd_project *p, const nd_project *was, json_t *update)
{
	json_t *tu = json_object(), *qu = json_object();
	const int ints[4][2] = {{p->spec_version, was->spec_version},
				{p->plan_version, was->plan_version},
				{p->asks, was->asks}, {p->merges, was->merges}};
	static const char *const int_keys[4] = {"spec_version", "plan_version", "asks", "merges"};

	if (p->stage != was->stage)
		json_object_set_new(update, "stage", json_string(ND_STAGES[p->stage].name));
	if (p->rest != was->rest)
		json_object_set_new(update, "rest", json_boolean(p->rest));
	if (p->has_chat && !was->has_chat)
		json_object_set_new(update, "chat", nd_chat_json(&p->chat));
	if (!p->input.present && was->input.present)
		json_object_set_new(update, "input", json_null());
	for (int i = 0; i < 4; i++)
		if (ints[i][0] != ints[i][1])
			json_object_set_new(update, int_keys[i], json_integer(ints[i][0]));
	put_changed(update, "user", part_json(p->user.id > 0, &p->user, USER_F, N(USER_F)),
		    part_json(was->user.id > 0, &was->user, USER_F, N(USER_F)));
	put_changed(update, "plan_feedback", str_json(p->plan_feedback),
		    str_json(was->plan_feedback));
	put_changed(update, "progress", str_json(p->progress), str_json(was->progress));
	put_changed(update, "repo", part_json(p->repo.present, &p->repo, REPO_F, N(REPO_F)),
		    part_json(was->repo.present, &was->repo, REPO_F, N(REPO_F)));
	put_changed(update, "change", part_json(p->change.present, &p->change, CHANGE_F,
						N(CHANGE_F)),
		    part_json(was->change.present, &was->change, CHANGE_F, N(CHANGE_F)));
	put_changed(update, "main", part_json(p->main.present, &p->main, MAIN_F, N(MAIN_F)),
		    part_json(was->main.present, &was->main, MAIN_F, N(MAIN_F)));
	put_changed(update, "pending", part_json(p->pending.present, &p->pending, PENDING_F,
						 N(PENDING_F)),
		    part_json(was->pending.present, &was->pending, PENDING_F, N(PENDING_F)));
	for (size_t i = 0; i < p->ntasks; i++) {
		const nd_task *o = nd_task_find(was, p->tasks[i].id);
		put_changed(tu, p->tasks[i].id, fields_json(&p->tasks[i], TASK_F, N(TASK_F)),
			    o ? fields_json(o, TASK_F, N(TASK_F)) : NULL);
	}
	for (size_t i = 0; i < was->nqs; i++)
		if (!nd_question_find(p, was->qs[i].key))
			json_object_set_new(qu, was->qs[i].key, json_null());
	for (size_t i = 0; i < p->nqs; i++) {
		const nd_question *o = nd_question_find(was, p->qs[i].key);
		put_changed(qu, p->qs[i].key, question_json(&p->qs[i]), o ? question_json(o) : NULL);
	}
	if (json_object_size(tu))
		json_object_set(update, "tasks", tu);
	if (json_object_size(qu))
		json_object_set(update, "questions", qu);
	json_decref(tu);
	json_decref(qu);
}

/* --- lookups --- */

nd_task *nd_task_find(const nd_project *p, const char *id)
{
	for (size_t i = 0; id && i < p->ntasks; i++)
		if (strcmp(p->tasks[i].id, id) == 0)
			return &p->tasks[i];
	return NULL;
}

/* Grows *arr (n items of `size`) by one zeroed item; NULL when out of
 * memory. */
static void *grow(void **arr, size_t *n, size_t size)
{
	char *g = realloc(*arr, (*n + 1) * size);

	if (!g) {
		err_set(ERR_NOMEM, "out of memory");
		return NULL;
	}
	*arr = g;
	memset(g + *n * size, 0, size);
	return g + (*n)++ * size;
}

nd_task *nd_task_add(nd_project *p, const char *id)
{
	nd_task *t = grow((void **)&p->tasks, &p->ntasks, sizeof(*t));

	if (t)
		snprintf(t->id, sizeof(t->id), "%s", id);
	return t;
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
	nd_question *q = grow((void **)&p->qs, &p->nqs, sizeof(*q));

	if (q)
		snprintf(q->key, sizeof(q->key), "%s", key);
	return q;
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

const char *nd_project_branch(const nd_project *p)
{
	if (p->repo.branch && *p->repo.branch)
		return p->repo.branch;
	return p->change.branch && *p->change.branch ? p->change.branch : "main";
}

/* A branch name a person may give: no option, no revision syntax. */
static int branch_ok(const char *b)
{
	if (!*b || b[0] == '-' || strstr(b, "..") || strstr(b, "@{") || strlen(b) > 200)
		return 0;
	for (const char *c = b; *c; c++)
		if ((unsigned char)*c <= ' ' || strchr("~^:?*[\\", *c))
			return 0;
	return 1;
}

int nd_change_from_input(nd_change *out, const json_t *input)
{
	const json_t *c = json_object_get(input, "change");
	const char *repo = jx_str(c, "repo"), *branch = jx_str(c, "branch");
	const char *channel = jx_str(input, "channel");
	int term = strcmp(channel, "term") == 0;

	if (!json_is_object(c))
		return 0;
	if (!*repo)
		return err_set(ERR_INVALID, "--repo needs a repository: a URL (https://... or "
					    "ssh://...) or, from the terminal, a path");
	if (strncmp(repo, "https://", 8) != 0 && strncmp(repo, "http://", 7) != 0 &&
	    strncmp(repo, "ssh://", 6) != 0 && repo[0] != '/')
		return err_set(ERR_INVALID, "--repo %s is neither a URL (https://... or ssh://...) nor "
					    "an absolute path", repo);
	if (repo[0] == '/' && !term)
		return err_set(ERR_INVALID, "a local path works from the terminal only (orchestrator "
					    "new --repo PATH); here, give the repository's URL");
	if (strchr(repo, '@') && strncmp(repo, "ssh://", 6) != 0)
		return err_set(ERR_INVALID, "the repository's URL must not hold credentials: grant "
					    "them as a git handle (--handle res_...)");
	if (*branch && !branch_ok(branch))
		return err_set(ERR_INVALID, "--branch %s is not a branch name", branch);
	if (*jx_str(c, "secret") && !term)
		return err_set(ERR_INVALID, "--secret works from the terminal only; in a chat, give a "
					    "git handle (--handle res_...) your operator granted");
	out->present = 1;
	nd_str_set(&out->source, repo);
	out->local = repo[0] == '/';
	nd_str_set(&out->branch, *branch ? branch : NULL);
	out->pr = json_is_true(json_object_get(c, "pr"));
	nd_str_set(&out->handle, *jx_str(c, "handle") ? jx_str(c, "handle") : NULL);
	nd_str_set(&out->secret, *jx_str(c, "secret") ? jx_str(c, "secret") : NULL);
	nd_str_set(&out->channel, channel);
	return 0;
}
