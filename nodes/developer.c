/*
 * developer — the scheduler of a project's tasks.
 *
 * One execution of the developer node:
 *   1. takes what arrived: workers' results ("worker"), the person's
 *      messages ("input", or the run's own input) and the decisions on its
 *      open questions;
 *   2. moves each task through its states: queued → working → review →
 *      reviewing → approved → (merge_wait →) merge_ready → merging → merged,
 *      with changes going back to a worker on the same branch (at most
 *      ORCH_REVIEW_ROUNDS rounds), failed work tried again (at most
 *      ORCH_WORKER_FAILURES times), merge conflicts and failing merges sent
 *      back to a worker on the new main, and the person asked (retry, skip,
 *      accept, extend the budget, stop) whenever a task is stuck;
 *   3. starts what is ready: a worker per queued task whose dependencies
 *      are merged (at most ORCH_MAX_WORKERS at once), one merge at a time
 *      in plan order, a reviewer (eng_send) per finished task;
 *   4. edits the progress message when the picture changed.
 * When something changed it runs again (the reviewers' edge brings it back
 * after them); when nothing did, it waits for any of its keys, holding no
 * thread. A step that is run again after a crash emits the same spawn
 * requests with the same ids, and only what the step committed was ever
 * sent, so no worker starts twice.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "nodes/nd_int.h"
#include "nodes/prompt.h"
#include "nodes/repo.h"
#include "nodes/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREV_DIFF_CAP (12 * 1024)

typedef struct dev {
	eng_ctx *ctx;
	nd_app *app;
	const json_t *state;
	json_t *up;         /* the update */
	json_t *tasks;      /* id → task: working copies of every task */
	json_t *qs;         /* key → question: working copy of the open questions */
	json_t *repo;       /* working copy of state.repo */
	json_t *main;       /* {"passed", "total", "command"} of main after the last merge */
	nd_chat chat;
	int merges;         /* merge requests sent so far (numbering) */
	int changed;        /* anything to commit */
	int stop;           /* the person stopped the project */
	char stop_by[200];
} dev;

static int num(const json_t *o, const char *k)
{
	return (int)json_integer_value(json_object_get(o, k));
}

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static void set_int(json_t *o, const char *k, int v)
{
	json_object_set_new(o, k, json_integer(v));
}

static const json_t *plan_task(const dev *d, const char *id)
{
	const json_t *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(d->state, "plan"), "tasks"), i, t)
		if (strcmp(jx_str(t, "id"), id) == 0)
			return t;
	return NULL;
}

static void task_log(dev *d, const char *kind, const char *task, const char *text)
{
	nd_log(d->up, kind, text, json_pack("{s:s}", "task", task));
}

/* --- asking the person --- */

typedef struct q_opt {
	const char *id, *label;
} q_opt;

static const q_opt OPT_RETRY = {"retry", "🔁 Retry"};
static const q_opt OPT_SKIP = {"skip", "⏭ Skip task"};
static const q_opt OPT_STOP = {"stop", "🛑 Stop project"};
static const q_opt OPT_ACCEPT = {"accept", "✅ Merge as it is"};
static const q_opt OPT_EXTEND = {"extend", "💰 Extend budget"};
static const q_opt OPT_MERGE = {"merge", "🔀 Merge"};

/* Asks about task `t` (kind: failed, rounds, review, budget, merge) and
 * blocks it until the answer. `extra` (stolen, may be NULL) is kept with
 * the question. */
static int ask(dev *d, json_t *t, const char *kind, const char *text, const q_opt *const *opts,
	       size_t n, json_t *extra)
{
	char key[128];
	nd_option o[6];
	json_t *q, *ids = json_array();
	int num_ask = nd_next_ask(d->state, d->up), rc;

	snprintf(key, sizeof(key), "q:%d:%s:%s", num_ask, kind, jx_str(t, "id"));
	for (size_t i = 0; i < n && i < 6; i++) {
		o[i].id = opts[i]->id;
		o[i].label = opts[i]->label;
		json_array_append_new(ids, json_string(opts[i]->id));
	}
	rc = nd_ask(d->ctx, &d->chat, key, text, o, n < 6 ? n : 6);
	if (rc < 0) {
		json_decref(ids);
		json_decref(extra);
		return rc;
	}
	q = json_pack("{s:s, s:s, s:s, s:o, s:I}", "kind", kind, "task", jx_str(t, "id"), "text",
		      text, "options", ids, "asked_at", (json_int_t)util_wall_ms());
	if (q && json_is_object(extra))
		json_object_update(q, extra);
	json_decref(extra);
	json_object_set_new(d->qs, key, q);
	set_str(t, "status", "blocked");
	set_str(t, "question", key);
	nd_log(d->up, "question", text,
	       json_pack("{s:s, s:s}", "key", key, "task", jx_str(t, "id")));
	d->changed = 1;
	return 0;
}

/* Asks again, under a new key, a question whose approval expired. */
static int ask_again(dev *d, const char *old_key, const json_t *q)
{
	json_t *t = json_object_get(d->tasks, jx_str(q, "task"));
	const q_opt *all[] = {&OPT_RETRY, &OPT_SKIP, &OPT_STOP, &OPT_ACCEPT, &OPT_EXTEND, &OPT_MERGE};
	const q_opt *opts[6];
	size_t n = 0, i;
	const json_t *id;
	json_t *extra = json_deep_copy(q);
	int rc;

	json_array_foreach(json_object_get(q, "options"), i, id)
		for (size_t k = 0; k < 6 && n < 6; k++)
			if (strcmp(all[k]->id, json_string_value(id)) == 0)
				opts[n++] = all[k];
	json_object_del(extra, "expired");
	if (!t) {
		json_decref(extra);
		json_object_del(d->qs, old_key);
		return 0;
	}
	json_object_del(d->qs, old_key);
	rc = ask(d, t, jx_str(q, "kind"), jx_str(q, "text"), opts, n, extra);
	return rc;
}

/* --- spawning --- */

static void list_text(buf *b, const json_t *arr, const char *sep, const char *none)
{
	size_t i;
	const json_t *v;

	if (json_array_size(arr) == 0) {
		buf_puts(b, none);
		return;
	}
	json_array_foreach(arr, i, v) {
		if (i)
			buf_puts(b, sep);
		buf_puts(b, json_string_value(v));
	}
}

static int work_prompt(dev *d, const json_t *t, buf *out)
{
	const json_t *spec = json_object_get(d->state, "spec");
	const json_t *pt = plan_task(d, jx_str(t, "id"));
	buf stack, cons, files, checks, context;
	const char *k;
	const json_t *o;
	int rc;

	buf_init(&stack, 0);
	buf_init(&cons, 0);
	buf_init(&files, 0);
	buf_init(&checks, 0);
	buf_init(&context, 0);
	list_text(&stack, json_object_get(spec, "stack"), ", ", "the standard library");
	list_text(&cons, json_object_get(spec, "constraints"), "; ", "none beyond the spec");
	list_text(&files, json_object_get(pt, "files"), ", ", "as you see fit");
	{
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(pt, "checks"), i, c)
			buf_printf(&checks, "- %s\n", json_string_value(c));
	}
	json_object_foreach(d->tasks, k, o)
		if (strcmp(jx_str(o, "status"), "merged") == 0) {
			if (!context.len)
				buf_puts(&context, "\nAlready built and merged into main:\n");
			buf_printf(&context, "- %s (%s)\n", jx_str(o, "title"), k);
		}
	{
		const char *vars[] = {
		    "name",         jx_str(spec, "name"),
		    "summary",      jx_str(spec, "summary"),
		    "language",     jx_str(spec, "language"),
		    "stack",        buf_cstr(&stack),
		    "constraints",  buf_cstr(&cons),
		    "title",        jx_str(t, "title"),
		    "task",         jx_str(t, "id"),
		    "goal",         jx_str(pt, "goal"),
		    "files",        buf_cstr(&files),
		    "checks",       buf_cstr(&checks),
		    "context",      buf_cstr(&context),
		    "feedback",     jx_str(t, "feedback"),
		    "test_command", jx_str(json_object_get(d->state, "plan"), "test_command"),
		    NULL,
		};
		rc = nd_prompt("developer_task.md", vars, out);
	}
	buf_free(&stack);
	buf_free(&cons);
	buf_free(&files);
	buf_free(&checks);
	buf_free(&context);
	return rc;
}

static void user_scope(const dev *d, char *out, size_t cap)
{
	const json_t *uid = json_object_get(json_object_get(d->state, "user"), "id");

	out[0] = '\0';
	if (json_integer_value(uid) > 0)
		snprintf(out, cap, "tg:%lld", (long long)json_integer_value(uid));
}

static int spawn_work(dev *d, json_t *t)
{
	const json_t *plan = json_object_get(d->state, "plan");
	char id[160], user[32];
	const char *base = jx_str(t, "base");
	buf prompt;
	json_t *req;
	int rc;

	buf_init(&prompt, 60 * 1024);
	rc = work_prompt(d, t, &prompt);
	if (rc < 0) {
		buf_free(&prompt);
		return rc;
	}
	snprintf(id, sizeof(id), "f%lld.%lld.%s.r%da%d", (long long)eng_ctx_thread_id(d->ctx),
		 (long long)eng_ctx_run_id(d->ctx), jx_str(t, "id"), num(t, "round"),
		 num(t, "attempt"));
	user_scope(d, user, sizeof(user));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s, s:s, s:i, s:i}}",
			"id", id, "task", jx_str(t, "id"), "project", eng_ctx_thread_key(d->ctx),
			"repo", jx_str(d->repo, "path"), "base", *base ? base : "main", "prompt",
			buf_cstr(&prompt), "test_command", jx_str(plan, "test_command"), "role",
			d->app->cfg.worker_role, "meta", "factory", 1, "kind", "work", "task",
			jx_str(t, "id"), "round", num(t, "round"), "attempt", num(t, "attempt"));
	buf_free(&prompt);
	if (req && user[0])
		json_object_set_new(req, "user", json_string(user));
	rc = eng_emit(d->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	set_str(t, "status", "working");
	set_str(t, "spawn", id);
	{
		char msg[200];
		snprintf(msg, sizeof(msg), "worker %s started (round %d, attempt %d, from %s)", id,
			 num(t, "round"), num(t, "attempt"), *base ? base : "main");
		task_log(d, "spawn", jx_str(t, "id"), msg);
	}
	d->changed = 1;
	return 0;
}

static int spawn_merge(dev *d, json_t *t)
{
	const json_t *plan = json_object_get(d->state, "plan");
	const json_t *remote = json_object_get(d->repo, "remote");
	char id[160];
	json_t *req;
	int rc;

	d->merges++;
	snprintf(id, sizeof(id), "f%lld.%lld.%s.m%d", (long long)eng_ctx_thread_id(d->ctx),
		 (long long)eng_ctx_run_id(d->ctx), jx_str(t, "id"), d->merges);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s, s:s, s:i}}", "id", id,
			"mode", "merge", "task", jx_str(t, "id"), "project",
			eng_ctx_thread_key(d->ctx), "repo", jx_str(d->repo, "path"), "target",
			"main", "test_command", jx_str(plan, "test_command"), "meta", "factory", 1,
			"kind", "merge", "task", jx_str(t, "id"), "n", d->merges);
	if (req && num(d->main, "total") > 0)
		json_object_set_new(req, "min_tests", json_integer(num(d->main, "total")));
	if (req && json_is_object(remote) && !json_object_get(remote, "error")) {
		json_object_set(req, "mirror", json_object_get(remote, "url"));
		if (json_object_get(remote, "handle"))
			json_object_set(req, "repo_secret", json_object_get(remote, "handle"));
	}
	rc = eng_emit(d->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	set_str(t, "status", "merging");
	set_str(t, "spawn", id);
	task_log(d, "merge", jx_str(t, "id"), id);
	d->changed = 1;
	return 0;
}

/* --- results --- */

static void add_cost(json_t *t, const json_t *r)
{
	const json_t *tok = json_object_get(r, "tokens");

	set_int(t, "tokens_in", num(t, "tokens_in") + num(tok, "in"));
	set_int(t, "tokens_out", num(t, "tokens_out") + num(tok, "out"));
	json_object_set_new(t, "cost_usd",
			    json_real(json_number_value(json_object_get(t, "cost_usd")) +
				      json_number_value(json_object_get(r, "cost_usd"))));
}

/* Feedback for the next worker: why the last attempt did not do. */
static void failure_feedback(json_t *t, const json_t *r, const char *lead)
{
	buf b;
	const char *out = json_string_value(json_object_get(json_object_get(r, "tests"), "output"));

	buf_init(&b, 16 * 1024);
	buf_printf(&b, "\n%s\n%s\n", lead, jx_str(r, "reason"));
	if (out && *out) {
		buf_puts(&b, "The end of the test output:\n\n");
		buf_append(&b, out, strlen(out) > 3000 ? 3000 : strlen(out));
		buf_putc(&b, '\n');
	}
	set_str(t, "feedback", buf_cstr(&b));
	buf_free(&b);
}

static int on_work(dev *d, json_t *t, const json_t *r)
{
	const char *status = jx_str(r, "status");
	const char *exit_kind = jx_str(json_object_get(r, "agent"), "exit");
	char text[1400];
	int rc = 0;

	add_cost(t, r);
	if (json_object_get(r, "tests"))
		json_object_set(t, "tests", json_object_get(r, "tests"));
	if (json_object_get(r, "diff"))
		json_object_set(t, "diff", json_object_get(r, "diff"));
	set_str(t, "reason", jx_str(r, "reason"));
	if (strcmp(status, "done") == 0 || strcmp(status, "unverified") == 0) {
		set_str(t, "commit", jx_str(r, "commit"));
		set_str(t, "status", "review");
		set_int(t, "failures", 0);
		task_log(d, "work_done", jx_str(t, "id"), jx_str(r, "reason"));
		return 0;
	}
	task_log(d, "work_failed", jx_str(t, "id"), jx_str(r, "reason"));
	if (strcmp(exit_kind, "budget") == 0) {
		const q_opt *o[] = {&OPT_EXTEND, &OPT_SKIP, &OPT_STOP};
		snprintf(text, sizeof(text),
			 "💰 The worker on task %s (%s) stopped: the project's model budget is "
			 "reached. Extend it by $%.2f and retry the task?",
			 jx_str(t, "id"), jx_str(t, "title"), d->app->cfg.budget_step);
		return ask(d, t, "budget", text, o, 3,
			   json_pack("{s:s, s:s, s:s}", "resume", "work", "budget_kind", "project",
				     "scope", eng_ctx_thread_key(d->ctx)));
	}
	set_int(t, "failures", num(t, "failures") + 1);
	if (strcmp(status, "refused") == 0 || strcmp(status, "invalid") == 0 ||
	    num(t, "failures") >= d->app->cfg.worker_failures) {
		const q_opt *o[] = {&OPT_RETRY, &OPT_SKIP, &OPT_STOP};
		snprintf(
		    text, sizeof(text),
		    "⚠️ Task %s (%s) failed %d time%s. The last worker said: %s\n\nRetry it, "
		    "skip it, or stop the project?",
		    jx_str(t, "id"), jx_str(t, "title"), num(t, "failures"),
		    num(t, "failures") == 1 ? "" : "s", jx_str(r, "reason"));
		failure_feedback(t, r, "A previous attempt at this task failed:");
		return ask(d, t, "failed", text, o, 3, json_pack("{s:s}", "resume", "work"));
	}
	/* once more, from the same start */
	failure_feedback(t, r, "A previous attempt at this task failed; avoid what went wrong:");
	set_int(t, "attempt", num(t, "attempt") + 1);
	set_str(t, "status", "queued");
	return rc;
}

static int on_merge(dev *d, json_t *t, const json_t *r)
{
	const char *status = jx_str(r, "status");
	char text[1400];

	if (strcmp(status, "done") == 0 || strcmp(status, "unverified") == 0) {
		const json_t *tests = json_object_get(r, "tests");
		set_str(t, "status", "merged");
		set_str(t, "merged_commit", jx_str(r, "commit"));
		if (*jx_str(r, "commit"))
			set_str(d->repo, "head", jx_str(r, "commit"));
		if (json_is_object(tests)) {
			json_decref(d->main);
			d->main = json_pack("{s:i, s:i, s:O?}", "passed", num(tests, "passed"),
					    "total", num(tests, "total"), "command",
					    json_object_get(tests, "command"));
		}
		if (json_is_object(json_object_get(r, "mirror")))
			json_object_set(d->repo, "published", json_object_get(r, "mirror"));
		task_log(d, "merged", jx_str(t, "id"), jx_str(r, "reason"));
		return 0;
	}
	task_log(d, "merge_failed", jx_str(t, "id"), jx_str(r, "reason"));
	set_int(t, "merge_failures", num(t, "merge_failures") + 1);
	if (strcmp(status, "conflict") == 0 || strcmp(status, "failed") == 0) {
		buf prev;
		char lead[600];

		if (num(t, "merge_failures") >= 2) {
			const q_opt *o[] = {&OPT_RETRY, &OPT_SKIP, &OPT_STOP};
			snprintf(text, sizeof(text),
				 "⚠️ Task %s (%s) cannot be merged: %s\n\nRetry it on the "
				 "current main, "
				 "skip it, or stop the project?",
				 jx_str(t, "id"), jx_str(t, "title"), jx_str(r, "reason"));
			failure_feedback(t, r, "Your change could not be merged into main:");
			return ask(d, t, "failed", text, o, 3, json_pack("{s:s}", "resume", "rework"));
		}
		/* back to a worker, on the new main, with what it did before */
		snprintf(lead, sizeof(lead),
			 "Your previous change for this task was approved but could not be merged "
			 "into main (%s). Main has moved on; build the task again on the current "
			 "main.",
			 strcmp(status, "conflict") == 0 ? "conflicting changes"
							  : "the tests fail on it");
		failure_feedback(t, r, lead);
		buf_init(&prev, 0);
		if (nd_repo_diff(jx_str(d->repo, "path"), jx_str(t, "commit"), "main",
				 PREV_DIFF_CAP, &prev, NULL, NULL, NULL) == 0 &&
		    prev.len) {
			buf b;
			buf_init(&b, 0);
			buf_printf(&b, "%s\nYour previous change, for reference:\n\n%s",
				   jx_str(t, "feedback"), buf_cstr(&prev));
			set_str(t, "feedback", buf_cstr(&b));
			buf_free(&b);
		}
		err_clear();
		buf_free(&prev);
		set_int(t, "round", num(t, "round") + 1);
		set_int(t, "attempt", 1);
		set_int(t, "failures", 0);
		set_str(t, "base", "main");
		set_str(t, "status", "queued");
		return 0;
	}
	if (num(t, "merge_failures") >= 3) {
		const q_opt *o[] = {&OPT_RETRY, &OPT_SKIP, &OPT_STOP};
		snprintf(text, sizeof(text),
			 "⚠️ Merging task %s (%s) failed %d times: %s\n\nRetry?",
			 jx_str(t, "id"), jx_str(t, "title"), num(t, "merge_failures"),
			 jx_str(r, "reason"));
		return ask(d, t, "failed", text, o, 3, json_pack("{s:s}", "resume", "merge"));
	}
	set_str(t, "status", "merge_ready"); /* the spawner's trouble: ask again */
	return 0;
}

static int on_publish(dev *d, const json_t *r)
{
	char msg[1200];

	json_object_set_new(
	    d->repo, "published",
	    json_pack(
		"{s:O?, s:b, s:O?}", "url",
		json_object_get(r, "mirror") ? json_object_get(json_object_get(r, "mirror"), "url")
					     : NULL,
		"pushed", strcmp(jx_str(r, "status"), "done") == 0, "error",
		strcmp(jx_str(r, "status"), "done") == 0 ? NULL : json_object_get(r, "reason")));
	d->changed = 1;
	if (strcmp(jx_str(r, "status"), "done") == 0) {
		nd_log(d->up, "published", jx_str(r, "reason"), NULL);
		return 0;
	}
	nd_log(d->up, "publish_failed", jx_str(r, "reason"), NULL);
	snprintf(msg, sizeof(msg),
		 "⚠️ The repository could not be published to its remote: %s\n"
		 "The local repository is complete; each merge tries the remote "
		 "again.",
		 jx_str(r, "reason"));
	return nd_say(d->ctx, &d->chat, msg);
}

static int on_result(dev *d, const json_t *r)
{
	const json_t *meta = json_object_get(r, "meta");
	const char *kind = jx_str(meta, "kind");
	json_t *t;

	d->changed = 1; /* the event is consumed whatever it says */
	if (!json_is_true(json_object_get(meta, "factory")))
		return 0;
	if (strcmp(kind, "publish") == 0)
		return on_publish(d, r);
	t = json_object_get(d->tasks, jx_str(meta, "task"));
	if (!t || strcmp(jx_str(t, "spawn"), jx_str(r, "id")) != 0) {
		log_info("factory", "thread %s: a result for %s that no task waits for (stale)",
			 eng_ctx_thread_key(d->ctx), jx_str(r, "id"));
		return 0;
	}
	json_object_del(t, "spawn");
	if (strcmp(kind, "merge") == 0)
		return on_merge(d, t, r);
	return on_work(d, t, r);
}

/* --- decisions --- */

static int on_decision(dev *d, const char *key, const json_t *v)
{
	json_t *q = json_deep_copy(json_object_get(d->qs, key));
	const char *opt = json_string_value(json_object_get(v, "option"));
	json_t *t = q ? json_object_get(d->tasks, jx_str(q, "task")) : NULL;
	const char *by = jx_str(json_object_get(v, "by"), "name");
	int rc = 0;

	d->changed = 1;
	if (!q)
		return 0;
	if (!opt) {
		/* expired (or the project's questions were cancelled): ask again later */
		json_object_set_new(q, "expired", json_true());
		json_object_set(d->qs, key, q);
		json_decref(q);
		nd_log(d->up, "expired", key, NULL);
		return nd_say(d->ctx, &d->chat, "⌛ A question expired without an answer; its task "
						"waits. Send any message and it is asked again.");
	}
	json_object_del(d->qs, key);
	nd_log(d->up, "decision", opt,
	       json_pack("{s:s, s:s, s:O?}", "key", key, "task", jx_str(q, "task"), "by",
			 json_object_get(v, "by")));
	if (strcmp(opt, "stop") == 0) {
		d->stop = 1;
		snprintf(d->stop_by, sizeof(d->stop_by), "%s", by);
		json_decref(q);
		return 0;
	}
	if (!t) {
		json_decref(q);
		return 0;
	}
	json_object_del(t, "question");
	if (strcmp(opt, "skip") == 0) {
		set_str(t, "status", "skipped");
	} else if (strcmp(opt, "accept") == 0) {
		set_str(t, "status", "approved");
	} else if (strcmp(opt, "merge") == 0) {
		set_str(t, "status", "merge_ready");
	} else if (strcmp(opt, "extend") == 0 || strcmp(opt, "retry") == 0) {
		const char *resume = jx_str(q, "resume");
		if (strcmp(opt, "extend") == 0) {
			double limit = 0;
			char msg[200];
			rc = nd_budget_extend(d->ctx, key, jx_str(q, "budget_kind"),
					      jx_str(q, "scope"), &limit);
			if (rc < 0) {
				json_decref(q);
				return rc;
			}
			snprintf(msg, sizeof(msg), "💰 Budget extended: the limit is now $%.2f.", limit);
			rc = nd_say(d->ctx, &d->chat, msg);
		}
		if (strcmp(resume, "review") == 0) {
			set_str(t, "status", "review");
		} else if (strcmp(resume, "merge") == 0) {
			set_int(t, "merge_failures", 0);
			set_str(t, "status", "merge_ready");
		} else if (strcmp(resume, "rounds") == 0) {
			/* one more round of changes */
			set_int(t, "round", num(t, "round") + 1);
			set_int(t, "attempt", 1);
			set_int(t, "failures", 0);
			set_str(t, "base", jx_str(t, "commit"));
			set_str(t, "status", "queued");
		} else if (strcmp(resume, "rework") == 0) {
			set_int(t, "merge_failures", 0);
			set_int(t, "round", num(t, "round") + 1);
			set_int(t, "attempt", 1);
			set_int(t, "failures", 0);
			set_str(t, "base", "main");
			set_str(t, "status", "queued");
		} else {
			set_int(t, "failures", 0);
			set_int(t, "attempt", num(t, "attempt") + 1);
			set_str(t, "status", "queued");
		}
	}
	json_decref(q);
	return rc;
}

/* --- the person's messages --- */

static void render_progress(dev *d, buf *out, const nd_costs *c);

static int on_input(dev *d, const json_t *in)
{
	const char *k;
	json_t *q, *expired = json_array();
	nd_costs c;
	buf html;
	int rc = 0;

	d->changed = 1;
	if (json_integer_value(json_object_get(json_object_get(in, "user"), "id")) > 0)
		json_object_set(d->up, "user", json_object_get(in, "user"));
	nd_log(d->up, "message", jx_str(in, "text"), NULL);
	if (nd_costs_get(d->ctx, &c) < 0) {
		memset(&c, 0, sizeof(c));
		err_clear();
	}
	buf_init(&html, 0);
	buf_puts(&html, "The project is being built; here is where it stands.\n\n");
	render_progress(d, &html, &c);
	buf_puts(&html, "\n\n/cancel stops it.");
	rc = nd_say_html(d->ctx, &d->chat, buf_cstr(&html));
	buf_free(&html);
	/* questions that expired are asked again */
	json_object_foreach(d->qs, k, q)
		if (json_is_true(json_object_get(q, "expired")))
			json_array_append_new(expired, json_string(k));
	for (size_t i = 0; rc == 0 && i < json_array_size(expired); i++) {
		const char *key = json_string_value(json_array_get(expired, i));
		json_t *copy = json_deep_copy(json_object_get(d->qs, key));
		rc = ask_again(d, key, copy);
		json_decref(copy);
	}
	json_decref(expired);
	return rc;
}

/* --- the progress message --- */

static const char *icon(const char *s)
{
	if (strcmp(s, "merged") == 0)
		return "✅";
	if (strcmp(s, "working") == 0)
		return "🔨";
	if (strcmp(s, "review") == 0 || strcmp(s, "reviewing") == 0 || strcmp(s, "approved") == 0)
		return "🔍";
	if (strcmp(s, "merge_ready") == 0 || strcmp(s, "merging") == 0)
		return "🧪";
	if (strcmp(s, "blocked") == 0 || strcmp(s, "merge_wait") == 0)
		return "❓";
	if (strcmp(s, "skipped") == 0)
		return "⏭";
	return "⏳";
}

static void render_progress(dev *d, buf *out, const nd_costs *c)
{
	const json_t *spec = json_object_get(d->state, "spec"), *pt;
	int merged = 0, total = 0, working = 0;
	char tin[32], tout[32];
	size_t i;

	json_array_foreach(json_object_get(json_object_get(d->state, "plan"), "tasks"), i, pt) {
		const json_t *t = json_object_get(d->tasks, jx_str(pt, "id"));
		total++;
		merged += strcmp(jx_str(t, "status"), "merged") == 0;
		working += strcmp(jx_str(t, "status"), "working") == 0;
	}
	buf_puts(out, "<b>");
	nd_html_escape(out, jx_str(spec, "name"));
	buf_printf(out, "</b> — %d of %d task%s merged", merged, total, total == 1 ? "" : "s");
	if (working)
		buf_printf(out, " · %d worker%s busy", working, working == 1 ? "" : "s");
	buf_putc(out, '\n');
	json_array_foreach(json_object_get(json_object_get(d->state, "plan"), "tasks"), i, pt) {
		const json_t *t = json_object_get(d->tasks, jx_str(pt, "id"));
		const char *s = jx_str(t, "status");
		const json_t *tests = json_object_get(t, "tests");

		buf_printf(out, "%s <code>", icon(s));
		nd_html_escape(out, jx_str(pt, "id"));
		buf_puts(out, "</code> ");
		if (strcmp(s, "blocked") == 0) {
			/* why it waits for the person */
			const char *kind =
			    jx_str(json_object_get(d->qs, jx_str(t, "question")), "kind");
			buf_puts(out, strcmp(kind, "failed") == 0	  ? "failed — "
				      : strcmp(kind, "rounds") == 0 ? "changes requested — "
				      : strcmp(kind, "budget") == 0 ? "budget reached — "
				      : strcmp(kind, "review") == 0 ? "review failed — "
								    : "");
		}
		nd_html_escape(out, nd_task_state_label(s));
		if (num(t, "round") > 1 && strcmp(s, "merged") != 0)
			buf_printf(out, " (round %d)", num(t, "round"));
		if (strcmp(s, "queued") == 0 && json_array_size(json_object_get(pt, "deps"))) {
			buf b;
			buf_init(&b, 0);
			list_text(&b, json_object_get(pt, "deps"), ", ", "");
			buf_puts(out, " after ");
			nd_html_escape(out, buf_cstr(&b));
			buf_free(&b);
		}
		if (json_is_object(tests) && num(tests, "total") > 0)
			buf_printf(out, " · %d/%d tests", num(tests, "passed"), num(tests, "total"));
		if (num(t, "tokens_in") + num(t, "tokens_out") > 0) {
			nd_fmt_tokens(num(t, "tokens_in") + num(t, "tokens_out"), tin, sizeof(tin));
			buf_printf(out, " · %s tokens · $%.4f", tin,
				   json_number_value(json_object_get(t, "cost_usd")));
		}
		buf_putc(out, '\n');
	}
	nd_fmt_tokens(c->tokens_in, tin, sizeof(tin));
	nd_fmt_tokens(c->tokens_out, tout, sizeof(tout));
	buf_printf(out, "Total: %s tokens in, %s out · $%.4f", tin, tout, c->cost_usd);
}

/* --- one pass --- */

static int deps_done(dev *d, const json_t *pt)
{
	size_t i;
	const json_t *dep;

	json_array_foreach(json_object_get(pt, "deps"), i, dep) {
		const char *s = jx_str(json_object_get(d->tasks, json_string_value(dep)), "status");
		if (strcmp(s, "merged") != 0 && strcmp(s, "skipped") != 0)
			return 0;
	}
	return 1;
}

/* Reviewer verdicts and other states that lead to a decision here. */
static int advance(dev *d, json_t *t)
{
	const char *s = jx_str(t, "status");
	char text[1600];

	if (strcmp(s, "changes") == 0) {
		const json_t *reviews = json_object_get(t, "reviews");
		const json_t *last = json_array_get(reviews, json_array_size(reviews) - 1);

		d->changed = 1;
		if (num(t, "round") > d->app->cfg.review_rounds) {
			const q_opt *o[] = {&OPT_RETRY, &OPT_ACCEPT, &OPT_SKIP, &OPT_STOP};
			snprintf(
			    text, sizeof(text),
			    "🔍 Task %s (%s) still has changes requested after %d review "
			    "round%s: %s\n\nOne more round, merge it as it is, skip it, or stop?",
			    jx_str(t, "id"), jx_str(t, "title"), num(t, "round"),
			    num(t, "round") == 1 ? "" : "s", jx_str(last, "summary"));
			return ask(d, t, "rounds", text, o, 4, json_pack("{s:s}", "resume", "rounds"));
		}
		/* back to a worker on the same branch, with the comments */
		{
			buf fb;
			size_t i;
			const json_t *c;

			buf_init(&fb, 32 * 1024);
			buf_printf(&fb,
				   "\nThe reviewer asked for changes to your work (review round "
				   "%d):\n%s\n",
				   num(t, "round"), jx_str(last, "summary"));
			json_array_foreach(json_object_get(last, "comments"), i, c) {
				buf_puts(&fb, "- ");
				if (*jx_str(c, "file") && num(c, "line") > 0)
					buf_printf(&fb, "%s:%d: ", jx_str(c, "file"),
						   num(c, "line"));
				else if (*jx_str(c, "file"))
					buf_printf(&fb, "%s: ", jx_str(c, "file"));
				buf_printf(&fb, "%s\n", jx_str(c, "comment"));
			}
			buf_puts(&fb, "Your previous work is in the repository already (this branch); "
				      "change it as asked.\n");
			set_str(t, "feedback", buf_cstr(&fb));
			buf_free(&fb);
		}
		set_int(t, "round", num(t, "round") + 1);
		set_int(t, "attempt", 1);
		set_int(t, "failures", 0);
		set_str(t, "base", jx_str(t, "commit"));
		set_str(t, "status", "queued");
		return 0;
	}
	if (strcmp(s, "review_error") == 0) {
		const q_opt *o[] = {&OPT_RETRY, &OPT_ACCEPT, &OPT_SKIP, &OPT_STOP};
		d->changed = 1;
		snprintf(
		    text, sizeof(text),
		    "⚠️ The review of task %s (%s) failed: %s\n\nReview again, merge without a "
		    "review, skip it, or stop?",
		    jx_str(t, "id"), jx_str(t, "title"), jx_str(t, "reason"));
		return ask(d, t, "review", text, o, 4, json_pack("{s:s}", "resume", "review"));
	}
	if (strcmp(s, "review_budget") == 0) {
		const q_opt *o[] = {&OPT_EXTEND, &OPT_STOP};
		const json_t *b = json_object_get(t, "budget");
		d->changed = 1;
		snprintf(text, sizeof(text),
			 "💰 The %s budget of %s is reached ($%.4f of $%.4f): the review of task %s "
			 "cannot run. Extend it by $%.2f?",
			 jx_str(b, "kind"), jx_str(b, "scope"),
			 json_number_value(json_object_get(b, "spent_usd")),
			 json_number_value(json_object_get(b, "limit_usd")), jx_str(t, "id"),
			 d->app->cfg.budget_step);
		return ask(d, t, "budget", text, o, 2,
			   json_pack("{s:s, s:s, s:s}", "resume", "review", "budget_kind",
				     jx_str(b, "kind"), "scope", jx_str(b, "scope")));
	}
	if (strcmp(s, "approved") == 0) {
		d->changed = 1;
		if (d->app->cfg.merge_approval) {
			const q_opt *o[] = {&OPT_MERGE, &OPT_SKIP, &OPT_STOP};
			const json_t *tests = json_object_get(t, "tests");
			snprintf(text, sizeof(text),
				 "🔀 Task %s (%s) is approved by the reviewer (%d/%d tests pass). "
				 "Merge it into main?",
				 jx_str(t, "id"), jx_str(t, "title"), num(tests, "passed"),
				 num(tests, "total"));
			int rc = ask(d, t, "merge", text, o, 3, json_pack("{s:s}", "resume", "merge"));
			if (rc == 0)
				set_str(t, "status", "merge_wait");
			return rc;
		}
		set_str(t, "status", "merge_ready");
	}
	return 0;
}

static int all_done(dev *d)
{
	const char *k;
	const json_t *t;

	json_object_foreach(d->tasks, k, t) {
		const char *s = jx_str(t, "status");
		if (strcmp(s, "merged") != 0 && strcmp(s, "skipped") != 0)
			return 0;
	}
	return json_object_size(d->tasks) > 0;
}

/* Puts the working copies into the update, where they differ. */
static void flush(dev *d)
{
	const json_t *old = json_object_get(d->state, "tasks"), *oq = json_object_get(d->state,
										       "questions");
	json_t *tu = json_object(), *qu = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(d->tasks, k, v)
		if (!json_equal(v, json_object_get(old, k)))
			json_object_set(tu, k, v);
	json_object_foreach((json_t *)oq, k, v)
		if (!json_is_null(v) && !json_object_get(d->qs, k))
			json_object_set_new(qu, k, json_null());
	json_object_foreach(d->qs, k, v)
		if (!json_equal(v, json_object_get(oq, k)))
			json_object_set(qu, k, v);
	if (json_object_size(tu))
		json_object_set(d->up, "tasks", tu);
	if (json_object_size(qu))
		json_object_set(d->up, "questions", qu);
	json_decref(tu);
	json_decref(qu);
	if (!json_equal(d->repo, json_object_get(d->state, "repo")))
		json_object_set(d->up, "repo", d->repo);
	if (!json_equal(d->main, json_object_get(d->state, "main")) && json_is_object(d->main))
		json_object_set(d->up, "main", d->main);
	if (d->merges != num(d->state, "merges"))
		set_int(d->up, "merges", d->merges);
}

static int stop_project(dev *d)
{
	char msg[400];
	int n = 0;
	pg_conn *c = NULL;

	if (pg_pool_acquire(d->app->pool, 10000, &c) == 0) {
		const char *params[2] = {NULL, "the person stopped the project"};
		char tid[24];
		PGresult *res = NULL;
		snprintf(tid, sizeof(tid), "%lld", (long long)eng_ctx_thread_id(d->ctx));
		params[0] = tid;
		if (pg_exec(c, &res, "SELECT spawn_cancel_thread($1::bigint, $2)", 2, params) == 0)
			n = (int)pg_int(res, 0, 0);
		PQclear(res);
		pg_pool_release(d->app->pool, c);
	}
	err_clear();
	set_str(d->up, "stage", "stopped");
	snprintf(msg, sizeof(msg),
		 "🛑 Stopped%s%s. %d worker%s withdrawn; what is merged stays in "
		 "%s. Send /new <idea> to start another project.",
		 d->stop_by[0] ? " by " : "", d->stop_by, n, n == 1 ? "" : "s",
		 jx_str(d->repo, "path"));
	nd_log(d->up, "stopped", msg, NULL);
	return nd_say(d->ctx, &d->chat, msg);
}

int nd_developer(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	dev d;
	json_t *got = NULL, *keys = NULL;
	const json_t *pt;
	const char *k;
	json_t *v;
	size_t i;
	int rc, sent = 0;

	(void)in;
	memset(&d, 0, sizeof(d));
	d.ctx = ctx;
	d.app = nd_app_of(ctx);
	d.state = state;
	d.up = json_object();
	d.tasks = json_deep_copy(json_object_get(state, "tasks"));
	d.qs = json_object();
	d.repo = json_deep_copy(json_object_get(state, "repo"));
	d.main = json_deep_copy(json_object_get(state, "main"));
	d.merges = num(state, "merges");
	*update = d.up;
	if (!d.up || !d.tasks || !d.qs || !d.repo) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	json_object_foreach((json_t *)json_object_get(state, "questions"), k, v)
		if (json_is_object(v))
			json_object_set_new(d.qs, k, json_deep_copy(v));
	if ((rc = nd_chat_get(state, NULL, &d.chat)) < 0)
		goto done;

	/* 1. what arrived */
	if (json_is_object(json_object_get(state, "input"))) {
		json_object_set_new(d.up, "input", json_null());
		if ((rc = on_input(&d, json_object_get(state, "input"))) < 0)
			goto done;
	}
	if ((rc = eng_take(ctx, "worker", &got)) < 0)
		goto done;
	json_array_foreach(got, i, v)
		if ((rc = on_result(&d, v)) < 0)
			goto done;
	json_decref(got);
	got = NULL;
	if ((rc = eng_take(ctx, "input", &got)) < 0)
		goto done;
	json_array_foreach(got, i, v)
		if ((rc = on_input(&d, v)) < 0)
			goto done;
	json_decref(got);
	got = NULL;
	keys = json_array();
	json_object_foreach(d.qs, k, v)
		json_array_append_new(keys, json_string(k));
	for (i = 0; i < json_array_size(keys); i++) {
		const char *key = json_string_value(json_array_get(keys, i));
		if ((rc = eng_take(ctx, key, &got)) < 0)
			goto done;
		for (size_t e = 0; e < json_array_size(got) && json_object_get(d.qs, key); e++)
			if ((rc = on_decision(&d, key, json_array_get(got, e))) < 0)
				goto done;
		json_decref(got);
		got = NULL;
	}
	if (d.stop) {
		rc = stop_project(&d);
		if (rc == 0) {
			flush(&d);
			rc = eng_goto(ctx, ENG_END);
		}
		goto done;
	}

	/* 2. decisions the tasks' states call for */
	json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
		json_t *t = json_object_get(d.tasks, jx_str(pt, "id"));
		if (t && (rc = advance(&d, t)) < 0)
			goto done;
	}

	/* 3. start what is ready */
	{
		int inflight = 0, merging = 0;
		json_object_foreach(d.tasks, k, v) {
			inflight += strcmp(jx_str(v, "status"), "working") == 0;
			merging += strcmp(jx_str(v, "status"), "merging") == 0;
		}
		json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
			json_t *t = json_object_get(d.tasks, jx_str(pt, "id"));
			if (!t || strcmp(jx_str(t, "status"), "queued") != 0 || !deps_done(&d, pt))
				continue;
			if (inflight >= d.app->cfg.max_workers)
				break;
			if ((rc = spawn_work(&d, t)) < 0)
				goto done;
			inflight++;
		}
		json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
			json_t *t = json_object_get(d.tasks, jx_str(pt, "id"));
			if (merging || !t || strcmp(jx_str(t, "status"), "merge_ready") != 0)
				continue;
			if ((rc = spawn_merge(&d, t)) < 0)
				goto done;
			merging = 1;
		}
		json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
			json_t *t = json_object_get(d.tasks, jx_str(pt, "id"));
			if (!t || strcmp(jx_str(t, "status"), "review") != 0)
				continue;
			set_str(t, "status", "reviewing");
			if ((rc = eng_send(ctx, "reviewer",
					   json_pack("{s:s}", "task", jx_str(pt, "id")))) < 0)
				goto done;
			d.changed = 1;
			sent++;
		}
	}

	/* 4. nothing new: wait for results, messages and answers */
	if (!d.changed) {
		json_decref(d.up);
		d.up = NULL;
		*update = NULL;
		eng_wait(ctx, "worker", NULL);
		eng_wait(ctx, "input", NULL);
		json_object_foreach(d.qs, k, v)
			eng_wait(ctx, k, NULL);
		rc = ERR_WAIT;
		goto done;
	}
	flush(&d);
	{
		nd_costs c;
		buf html;
		char ref[64];

		if (nd_costs_get(ctx, &c) < 0) {
			memset(&c, 0, sizeof(c));
			err_clear();
		}
		buf_init(&html, 0);
		render_progress(&d, &html, &c);
		/* the figures of the ledger move all the time: compare without them */
		{
			char *cut = strstr(html.data ? html.data : "", "\nTotal: ");
			size_t n = cut ? (size_t)(cut - html.data) : html.len;
			const char *old = json_string_value(json_object_get(state, "progress"));
			if (!old || strlen(old) != n || strncmp(old, html.data, n) != 0) {
				snprintf(ref, sizeof(ref), "factory-%lld",
					 (long long)eng_ctx_thread_id(ctx));
				rc = nd_progress(ctx, &d.chat, ref, buf_cstr(&html));
				json_object_set_new(d.up, "progress", json_stringn(html.data, n));
			}
		}
		buf_free(&html);
		if (rc < 0)
			goto done;
	}
	if (all_done(&d) && json_object_size(d.qs) == 0) {
		rc = eng_goto(ctx, "finish");
		goto done;
	}
	rc = sent ? 0 : eng_goto(ctx, "developer");
done:
	json_decref(got);
	json_decref(keys);
	json_decref(d.tasks);
	json_decref(d.qs);
	json_decref(d.repo);
	json_decref(d.main);
	return rc;
}
