/*
 * developer — the scheduler of a project's tasks.
 *
 * One execution of the developer node:
 *   1. takes what arrived: workers' results ("worker"), the person's
 *      messages ("input", or the run's own input) and the decisions on its
 *      open questions;
 *   2. moves each task through its statuses (nodes/model.h's table):
 *      queued → working → review → reviewing → approved → (merge_wait →)
 *      merge_ready → merging → merged, with changes going back to a worker
 *      on the same branch (at most ORCH_REVIEW_ROUNDS rounds), failed work
 *      tried again (at most ORCH_WORKER_FAILURES times), merge conflicts and
 *      failing merges sent back to a worker on the new main, and the person
 *      asked (retry, skip, accept, extend the budget, stop) whenever a task
 *      is stuck;
 *   3. starts what is ready: a worker per queued task whose dependencies
 *      are merged (at most ORCH_MAX_WORKERS at once), one merge at a time
 *      in plan order; finished work goes to "reviewing", and the router
 *      sends a reviewer per such task;
 *   4. edits the progress message when the picture changed.
 * When something changed its router runs it again (or the reviewers, whose
 * edge brings it back); when nothing did, it waits for any of its keys,
 * holding no thread. A step that is run again after a crash emits the same
 * spawn requests with the same ids, and only what the step committed was
 * ever sent, so no worker starts twice.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "nodes/nd_int.h"
#include "nodes/netspec.h"
#include "nodes/prompt.h"
#include "nodes/repo.h"
#include "nodes/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREV_DIFF_CAP (12 * 1024)

typedef struct dev {
	nd_step *s;
	nd_project *p;
	int changed;        /* anything to commit */
	int stop;           /* the person stopped the project */
	char stop_by[200];
} dev;

static void task_log(dev *d, const char *kind, const nd_task *t, const char *text)
{
	nd_log(d->s->up, kind, text, json_pack("{s:s}", "task", t->id));
}

/* A task starts over: `round_up` a new round from `base` (a commit, or
 * the project's branch), or another attempt of the same round. */
static int requeue(nd_task *t, int round_up, const char *base)
{
	if (round_up) {
		t->round++;
		t->attempt = 1;
		nd_str_set(&t->base, base);
	} else {
		t->attempt++;
	}
	t->failures = 0;
	return nd_task_move(t, ND_TASK_QUEUED);
}

/* --- asking the person --- */

/* Asks about task `t` and blocks it until the answer (a merge question
 * leaves it waiting for the merge approval). `q` holds what to keep with
 * the question (resume, budget); its key is made here. */
static int ask(dev *d, nd_task *t, nd_qkind kind, const char *text, const nd_opt *opts, int n,
	       const nd_question *q)
{
	char key[ND_KEY_MAX];
	nd_option o[6];
	nd_question *nq;
	int rc;

	snprintf(key, sizeof(key), "q:%d:%s:%s", nd_next_ask(d->s), ND_QKINDS[kind].name, t->id);
	for (int i = 0; i < n && i < 6; i++) {
		o[i].id = ND_OPTS[opts[i]].name;
		o[i].label = ND_OPTS[opts[i]].label;
	}
	rc = nd_ask(d->s->ctx, &d->p->chat, key, text, o, (size_t)(n < 6 ? n : 6));
	if (rc == 0)
		rc = nd_task_move(t, kind == ND_Q_MERGE ? ND_TASK_MERGE_WAIT : ND_TASK_BLOCKED);
	nq = rc == 0 ? nd_question_add(d->p, key) : NULL;
	if (!nq)
		return rc < 0 ? rc : ERR_NOMEM;
	*nq = *q;
	snprintf(nq->key, sizeof(nq->key), "%s", key);
	nq->kind = kind;
	snprintf(nq->task, sizeof(nq->task), "%s", t->id);
	nq->text = strdup(text);
	for (nq->nopts = 0; nq->nopts < n && nq->nopts < 6; nq->nopts++)
		nq->opts[nq->nopts] = opts[nq->nopts];
	if (!q->asked_at)
		nq->asked_at = util_wall_ms();
	nq->expired = 0;
	nd_str_set(&t->question, key);
	nd_log(d->s->up, "question", text, json_pack("{s:s, s:s}", "key", key, "task", t->id));
	d->changed = 1;
	return 0;
}

/* The question kept with it: what retry resumes, the budget extend raises. */
static nd_question keep(nd_resume resume, const char *budget_kind, const char *scope)
{
	nd_question q;

	memset(&q, 0, sizeof(q));
	q.resume = resume;
	snprintf(q.budget_kind, sizeof(q.budget_kind), "%s", budget_kind ? budget_kind : "");
	snprintf(q.scope, sizeof(q.scope), "%s", scope ? scope : "");
	return q;
}

/* Asks again, under a new key, a question whose approval expired. */
static int ask_again(dev *d, const char *old_key)
{
	nd_question *old = nd_question_find(d->p, old_key), q = *old;
	nd_task *t = nd_task_find(d->p, q.task);
	char *text = old->text;
	int rc = 0;

	old->text = NULL; /* ours now */
	nd_question_remove(d->p, old_key);
	if (t)
		rc = ask(d, t, q.kind, text ? text : "", q.opts, q.nopts, &q);
	free(text);
	return rc;
}

/* --- spawning --- */

static void list_text(buf *b, const json_t *arr, const char *sep, const char *none)
{
	size_t i;
	const json_t *v;

	if (json_array_size(arr) == 0)
		buf_puts(b, none);
	json_array_foreach(arr, i, v)
		buf_printf(b, "%s%s", i ? sep : "", json_string_value(v));
}

static void strv_text(buf *b, const nd_strv *v, const char *sep, const char *none)
{
	if (v->n == 0)
		buf_puts(b, none);
	for (size_t i = 0; i < v->n; i++)
		buf_printf(b, "%s%s", i ? sep : "", v->v[i]);
}

static int work_prompt(dev *d, const nd_task *t, buf *out)
{
	const json_t *spec = d->p->spec;
	const nd_plan_task *pt = nd_plan_find(d->p, t->id);
	static const nd_strv none = {NULL, 0};
	buf part[5]; /* stack, constraints, files, checks, context */
	int rc;

	for (int i = 0; i < 5; i++)
		buf_init(&part[i], 0);
	list_text(&part[0], json_object_get(spec, "stack"), ", ", "the standard library");
	list_text(&part[1], json_object_get(spec, "constraints"), "; ", "none beyond the spec");
	strv_text(&part[2], pt ? &pt->files : &none, ", ", "as you see fit");
	for (size_t i = 0; pt && i < pt->checks.n; i++)
		buf_printf(&part[3], "- %s\n", pt->checks.v[i]);
	if (d->p->change.present) {
		char base[600];
		nd_baseline_line(d->p, base, sizeof(base));
		buf_printf(&part[4], "\nThis task changes an existing repository (%s, branch %s): "
				     "follow its conventions (AGENTS.md, the README, the code around). "
				     "Its tests before any work: %s; none that passed may fail after "
				     "your change.\n",
			   d->p->change.source, nd_project_branch(d->p), base);
	}
	for (size_t i = 0, listed = 0; i < d->p->ntasks; i++)
		if (d->p->tasks[i].status == ND_TASK_MERGED) {
			if (!listed++)
				buf_printf(&part[4], "\nAlready built and merged into %s:\n",
					   nd_project_branch(d->p));
			buf_printf(&part[4], "- %s (%s)\n", d->p->tasks[i].title, d->p->tasks[i].id);
		}
	{
		const char *vars[] = {
		    "name",         jx_str(spec, "name"),
		    "summary",      jx_str(spec, "summary"),
		    "language",     jx_str(spec, "language"),
		    "stack",        buf_cstr(&part[0]),
		    "constraints",  buf_cstr(&part[1]),
		    "title",        t->title,
		    "task",         t->id,
		    "goal",         pt ? pt->goal : "",
		    "files",        buf_cstr(&part[2]),
		    "checks",       buf_cstr(&part[3]),
		    "context",      buf_cstr(&part[4]),
		    "feedback",     t->feedback,
		    "test_command", d->p->plan.test_command,
		    NULL,
		};
		rc = nd_prompt("developer_task.md", vars, out);
	}
	for (int i = 0; i < 5; i++)
		buf_free(&part[i]);
	return rc;
}

static int spawn_work(dev *d, nd_task *t)
{
	const char *base = t->base && *t->base ? t->base : nd_project_branch(d->p);
	char id[160], suffix[32], msg[200];
	buf prompt;
	json_t *req;
	int rc;

	buf_init(&prompt, 60 * 1024);
	rc = work_prompt(d, t, &prompt);
	if (rc < 0) {
		buf_free(&prompt);
		return rc;
	}
	snprintf(suffix, sizeof(suffix), "r%da%d", t->round, t->attempt);
	nd_worker_id(d->s->ctx, t->id, suffix, id, sizeof(id));
	snprintf(msg, sizeof(msg), "tg:%lld", (long long)d->p->user.id);
	req = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:s, s:{s:b, s:s, s:s, s:i, s:i}, "
			"s:s*, s:s*, s:o*}",
			"id", id, "task", t->id, "project", eng_ctx_thread_key(d->s->ctx), "repo",
			d->p->repo.path, "base", base, "prompt", buf_cstr(&prompt), "test_command",
			d->p->plan.test_command, "role", d->s->app->cfg.worker_role, "meta",
			"factory", 1, "kind", "work", "task", t->id, "round", t->round, "attempt",
			t->attempt, "user", d->p->user.id > 0 ? msg : NULL, "setup_command",
			json_string_value(json_object_get(d->p->spec, "setup_command")), "network",
			nd_netspec_request(d->p->spec));
	nd_allow_failures(d->p, req);
	buf_free(&prompt);
	rc = eng_emit(d->s->ctx, "spawn", NULL, req);
	if (rc == 0)
		rc = nd_task_move(t, ND_TASK_WORKING);
	if (rc < 0)
		return rc;
	nd_str_set(&t->spawn, id);
	snprintf(msg, sizeof(msg), "worker %s started (round %d, attempt %d, from %s)", id,
		 t->round, t->attempt, base);
	task_log(d, "spawn", t, msg);
	d->changed = 1;
	return 0;
}

static int spawn_merge(dev *d, nd_task *t)
{
	const nd_repo *repo = &d->p->repo;
	/* a change's remote gets nothing until the person says so (deliver) */
	int usable = repo->has_remote && !repo->remote_error && !d->p->change.present;
	char id[160], suffix[32];
	json_t *req;
	int rc;

	snprintf(suffix, sizeof(suffix), "m%d", ++d->p->merges);
	nd_worker_id(d->s->ctx, t->id, suffix, id, sizeof(id));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s?, s:{s:b, s:s, s:s, s:i}, s:o*, s:s*, "
			"s:s*, s:s*, s:o*}",
			"id", id, "mode", "merge", "task", t->id, "project",
			eng_ctx_thread_key(d->s->ctx), "repo", repo->path, "target",
			nd_project_branch(d->p),
			"test_command", d->p->plan.test_command, "meta", "factory", 1, "kind",
			"merge", "task", t->id, "n", d->p->merges, "min_tests",
			d->p->main.total > 0 ? json_integer(d->p->main.total) : NULL, "mirror",
			usable ? repo->remote_url : NULL, "repo_secret",
			usable ? repo->remote_handle : NULL, "setup_command",
			json_string_value(json_object_get(d->p->spec, "setup_command")), "network",
			nd_netspec_request(d->p->spec));
	nd_allow_failures(d->p, req);
	rc = eng_emit(d->s->ctx, "spawn", NULL, req);
	if (rc == 0)
		rc = nd_task_move(t, ND_TASK_MERGING);
	if (rc < 0)
		return rc;
	nd_str_set(&t->spawn, id);
	task_log(d, "merge", t, id);
	d->changed = 1;
	return 0;
}

/* --- results --- */

/* Feedback for the next worker: why the last attempt did not do. */
static void failure_feedback(nd_task *t, const nd_result *r, const char *lead)
{
	nd_tests tests;
	buf b;

	nd_tests_read(r->tests, &tests);
	buf_init(&b, 16 * 1024);
	buf_printf(&b, "\n%s\n%s\n", lead, r->reason);
	if (*tests.output) {
		size_t n = strlen(tests.output);
		buf_puts(&b, "The end of the test output:\n\n");
		buf_append(&b, tests.output, n > 3000 ? 3000 : n);
		buf_putc(&b, '\n');
	}
	nd_str_set(&t->feedback, buf_cstr(&b));
	buf_free(&b);
}

static void keep_json(json_t **dst, const json_t *v)
{
	if (!v)
		return;
	json_decref(*dst);
	*dst = json_incref((json_t *)v);
}

static int on_work(dev *d, nd_task *t, const nd_result *r)
{
	static const nd_opt stuck[] = {ND_OPT_RETRY, ND_OPT_SKIP, ND_OPT_STOP};
	static const nd_opt budget[] = {ND_OPT_EXTEND, ND_OPT_SKIP, ND_OPT_STOP};
	nd_question q = keep(ND_RESUME_WORK, NULL, NULL);
	char text[1700];

	keep_json(&t->tests, r->tests);
	keep_json(&t->diff, r->diff);
	nd_str_set(&t->reason, r->reason);
	if (r->status == ND_W_DONE || r->status == ND_W_UNVERIFIED) {
		nd_str_set(&t->commit, r->commit);
		t->failures = 0;
		task_log(d, "work_done", t, r->reason);
		return nd_task_move(t, ND_TASK_REVIEW);
	}
	task_log(d, "work_failed", t, r->reason);
	if (r->budget) {
		snprintf(text, sizeof(text),
			 "💰 The worker on task %s (%s) stopped: the project's model budget is "
			 "reached. Extend it by $%.2f and retry the task?",
			 t->id, t->title, d->s->app->cfg.budget_step);
		q = keep(ND_RESUME_WORK, "project", eng_ctx_thread_key(d->s->ctx));
		return ask(d, t, ND_Q_BUDGET, text, budget, 3, &q);
	}
	t->failures++;
	if (r->status == ND_W_REFUSED || r->status == ND_W_INVALID ||
	    t->failures >= d->s->app->cfg.worker_failures) {
		snprintf(text, sizeof(text),
			 "⚠️ Task %s (%s) failed %d time%s. The last worker said: %s\n\n%sRetry it, "
			 "skip it, or stop the project?",
			 t->id, t->title, t->failures, t->failures == 1 ? "" : "s", r->reason,
			 r->reason && strstr(r->reason, "network policy")
				 ? "To change the project's network, write a line such as \"network: "
				   "registries\" (or the hosts it needs) before you answer. "
				 : "");
		failure_feedback(t, r, "A previous attempt at this task failed:");
		return ask(d, t, ND_Q_FAILED, text, stuck, 3, &q);
	}
	/* once more, from the same start */
	failure_feedback(t, r, "A previous attempt at this task failed; avoid what went wrong:");
	t->attempt++;
	return nd_task_move(t, ND_TASK_QUEUED);
}

/* A merge was refused: back to a worker on the new main, with what it did
 * before, or the person asked after the second time. */
static int merge_refused(dev *d, nd_task *t, const nd_result *r)
{
	static const nd_opt stuck[] = {ND_OPT_RETRY, ND_OPT_SKIP, ND_OPT_STOP};
	nd_question q = keep(ND_RESUME_REWORK, NULL, NULL);
	char text[1400], lead[600];
	buf prev;

	if (t->merge_failures >= 2) {
		snprintf(text, sizeof(text),
			 "⚠️ Task %s (%s) cannot be merged: %s\n\nRetry it on the current main, "
			 "skip it, or stop the project?",
			 t->id, t->title, r->reason);
		failure_feedback(t, r, "Your change could not be merged into main:");
		return ask(d, t, ND_Q_FAILED, text, stuck, 3, &q);
	}
	snprintf(lead, sizeof(lead),
		 "Your previous change for this task was approved but could not be merged into "
		 "%s (%s). The branch %s has moved on; build the task again on the current %s.",
		 nd_project_branch(d->p),
		 r->status == ND_W_CONFLICT ? "conflicting changes" : "the tests fail on it",
		 nd_project_branch(d->p), nd_project_branch(d->p));
	failure_feedback(t, r, lead);
	buf_init(&prev, 0);
	if (nd_repo_diff(d->p->repo.path, t->commit ? t->commit : "", nd_project_branch(d->p),
			 PREV_DIFF_CAP, &prev,
			 NULL, NULL, NULL) == 0 &&
	    prev.len) {
		buf b;
		buf_init(&b, 0);
		buf_printf(&b, "%s\nYour previous change, for reference:\n\n%s", t->feedback,
			   buf_cstr(&prev));
		nd_str_set(&t->feedback, buf_cstr(&b));
		buf_free(&b);
	}
	err_clear();
	buf_free(&prev);
	return requeue(t, 1, nd_project_branch(d->p));
}

static int on_merge(dev *d, nd_task *t, const nd_result *r)
{
	static const nd_opt stuck[] = {ND_OPT_RETRY, ND_OPT_SKIP, ND_OPT_STOP};
	nd_question q = keep(ND_RESUME_MERGE, NULL, NULL);
	nd_repo *repo = &d->p->repo;
	char text[1400];

	if (r->status == ND_W_DONE || r->status == ND_W_UNVERIFIED) {
		nd_tests tests;
		nd_tests_read(r->tests, &tests);
		nd_str_set(&t->merged_commit, r->commit);
		if (*r->commit)
			nd_str_set(&repo->head, r->commit);
		if (tests.present) {
			d->p->main.present = 1;
			d->p->main.passed = tests.passed;
			d->p->main.total = tests.total;
			nd_str_set(&d->p->main.command, json_string_value(json_object_get(r->tests,
											   "command")));
		}
		if (r->mirrored) {
			repo->published = 1;
			repo->pushed = r->pushed;
			nd_str_set(&repo->published_url, r->mirror_url);
			nd_str_set(&repo->publish_error, r->mirror_error);
		}
		task_log(d, "merged", t, r->reason);
		return nd_task_move(t, ND_TASK_MERGED);
	}
	task_log(d, "merge_failed", t, r->reason);
	t->merge_failures++;
	if (r->status == ND_W_CONFLICT || r->status == ND_W_FAILED)
		return merge_refused(d, t, r);
	if (t->merge_failures >= 3) {
		snprintf(text, sizeof(text), "⚠️ Merging task %s (%s) failed %d times: %s\n\nRetry?",
			 t->id, t->title, t->merge_failures, r->reason);
		return ask(d, t, ND_Q_FAILED, text, stuck, 3, &q);
	}
	return nd_task_move(t, ND_TASK_MERGE_READY); /* the spawner's trouble: ask again */
}

static int on_publish(dev *d, const nd_result *r)
{
	nd_repo *repo = &d->p->repo;
	int done = r->status == ND_W_DONE;
	char msg[1200];

	repo->published = 1;
	repo->pushed = done;
	nd_str_set(&repo->published_url, r->mirror_url);
	nd_str_set(&repo->publish_error, done ? NULL : r->reason);
	if (done) {
		nd_log(d->s->up, "published", r->reason, NULL);
		return 0;
	}
	nd_log(d->s->up, "publish_failed", r->reason, NULL);
	snprintf(msg, sizeof(msg),
		 "⚠️ The repository could not be published to its remote: %s\n"
		 "The local repository is complete; each merge tries the remote again.",
		 r->reason);
	return nd_tell(d->s, msg);
}

static int on_result(dev *d, const json_t *v)
{
	nd_result r;
	nd_task *t;

	nd_result_read(v, &r);
	d->changed = 1; /* the event is consumed whatever it says */
	if (!r.factory)
		return 0;
	if (r.kind == ND_PUBLISH)
		return on_publish(d, &r);
	t = nd_task_find(d->p, r.task);
	if (!t || !t->spawn || strcmp(t->spawn, r.id) != 0) {
		log_info("factory", "thread %s: a result for %s that no task waits for (stale)",
			 eng_ctx_thread_key(d->s->ctx), r.id);
		return 0;
	}
	nd_str_set(&t->spawn, NULL);
	return r.kind == ND_MERGE ? on_merge(d, t, &r) : on_work(d, t, &r);
}

/* --- decisions --- */

/* Retry (or extend, then retry): the task goes on where its question
 * stopped it. */
static int resume(dev *d, nd_task *t, const nd_question *q, const nd_decision *dec)
{
	int rc = 0;

	if (dec->opt == ND_OPT_EXTEND) {
		double limit = 0;
		char msg[200];
		rc = nd_budget_extend(d->s->ctx, q->key, q->budget_kind, q->scope, &limit);
		if (rc < 0)
			return rc;
		snprintf(msg, sizeof(msg), "💰 Budget extended: the limit is now $%.2f.", limit);
		rc = nd_tell(d->s, msg);
	}
	switch (q->resume) {
	case ND_RESUME_REVIEW:
		return rc < 0 ? rc : nd_task_move(t, ND_TASK_REVIEW);
	case ND_RESUME_MERGE:
		t->merge_failures = 0;
		return rc < 0 ? rc : nd_task_move(t, ND_TASK_MERGE_READY);
	case ND_RESUME_ROUNDS: /* one more round of changes */
		return rc < 0 ? rc : requeue(t, 1, t->commit ? t->commit : "");
	case ND_RESUME_REWORK:
		t->merge_failures = 0;
		return rc < 0 ? rc : requeue(t, 1, nd_project_branch(d->p));
	default:
		return rc < 0 ? rc : requeue(t, 0, NULL);
	}
}

static int on_decision(dev *d, const char *key, const json_t *v)
{
	nd_question *qp = nd_question_find(d->p, key);
	nd_question q;
	nd_decision dec;
	nd_task *t;
	int rc = 0;

	d->changed = 1;
	if (!qp)
		return 0;
	nd_decision_read(v, &dec);
	if (dec.opt == ND_OPT_NONE) {
		/* expired (or the project's questions were cancelled): ask again later */
		qp->expired = 1;
		nd_log(d->s->up, "expired", key, NULL);
		return nd_tell(d->s, "⌛ A question expired without an answer; its task waits. Send "
				     "any message and it is asked again.");
	}
	q = *qp;
	q.text = NULL;
	nd_log(d->s->up, "decision", dec.option,
	       json_pack("{s:s, s:s, s:O?}", "key", key, "task", q.task, "by", dec.by));
	nd_question_remove(d->p, key);
	t = nd_task_find(d->p, q.task);
	if (dec.opt == ND_OPT_STOP) {
		d->stop = 1;
		snprintf(d->stop_by, sizeof(d->stop_by), "%s", dec.by_name);
		return 0;
	}
	if (!t)
		return 0;
	nd_str_set(&t->question, NULL);
	if (dec.opt == ND_OPT_SKIP)
		rc = nd_task_move(t, ND_TASK_SKIPPED);
	else if (dec.opt == ND_OPT_ACCEPT)
		rc = nd_task_move(t, ND_TASK_APPROVED);
	else if (dec.opt == ND_OPT_MERGE)
		rc = nd_task_move(t, ND_TASK_MERGE_READY);
	else if (dec.opt == ND_OPT_EXTEND || dec.opt == ND_OPT_RETRY)
		rc = resume(d, t, &q, &dec);
	return rc;
}

/* --- the progress message --- */

static void render_task(dev *d, buf *out, const nd_plan_task *pt, const nd_costs *c)
{
	const nd_task *t = nd_task_find(d->p, pt->id);
	nd_status s = t ? t->status : ND_TASK_QUEUED;
	nd_task_cost tc = nd_costs_task(c, pt->id);
	nd_tests tests;
	char tok[32];

	nd_tests_read(t ? t->tests : NULL, &tests);
	buf_printf(out, "%s <code>", ND_STATUS[s].icon);
	nd_html_escape(out, pt->id);
	buf_puts(out, "</code> ");
	if (s == ND_TASK_BLOCKED) {
		/* why it waits for the person */
		const nd_question *q = nd_question_find(d->p, t->question);
		buf_puts(out, q ? ND_QKINDS[q->kind].label : "");
	}
	nd_html_escape(out, t ? ND_STATUS[s].label : "?");
	if (t && t->round > 1 && s != ND_TASK_MERGED)
		buf_printf(out, " (round %d)", t->round);
	if (s == ND_TASK_QUEUED && pt->deps.n) {
		buf b;
		buf_init(&b, 0);
		strv_text(&b, &pt->deps, ", ", "");
		buf_puts(out, " after ");
		nd_html_escape(out, buf_cstr(&b));
		buf_free(&b);
	}
	if (tests.total > 0)
		buf_printf(out, " · %d/%d tests", tests.passed, tests.total);
	if (tc.tokens_in + tc.tokens_out > 0) {
		nd_fmt_tokens(tc.tokens_in + tc.tokens_out, tok, sizeof(tok));
		buf_printf(out, " · %s tokens · $%.4f", tok, tc.cost_usd);
	}
	buf_putc(out, '\n');
}

static void render_progress(dev *d, buf *out, const nd_costs *c)
{
	const nd_plan *plan = &d->p->plan;
	int merged = 0, working = 0;
	char tin[32], tout[32];

	for (size_t i = 0; i < plan->ntasks; i++) {
		const nd_task *t = nd_task_find(d->p, plan->tasks[i].id);
		merged += t && t->status == ND_TASK_MERGED;
		working += t && t->status == ND_TASK_WORKING;
	}
	buf_puts(out, "<b>");
	nd_html_escape(out, jx_str(d->p->spec, "name"));
	buf_printf(out, "</b> — %d of %zu task%s merged", merged, plan->ntasks,
		   plan->ntasks == 1 ? "" : "s");
	if (working)
		buf_printf(out, " · %d worker%s busy", working, working == 1 ? "" : "s");
	buf_putc(out, '\n');
	for (size_t i = 0; i < plan->ntasks; i++)
		render_task(d, out, &plan->tasks[i], c);
	nd_fmt_tokens(c->tokens_in, tin, sizeof(tin));
	nd_fmt_tokens(c->tokens_out, tout, sizeof(tout));
	buf_printf(out, "Total: %s tokens in, %s out · $%.4f", tin, tout, c->cost_usd);
}

/* Edits the progress message when the picture changed (the ledger's
 * totals move all the time: compared without them). */
static int progress(dev *d)
{
	nd_costs c;
	buf html;
	char ref[64];
	const char *cut;
	size_t n;
	int rc = 0;

	if (nd_costs_get(d->s->ctx, &c) < 0)
		err_clear();
	buf_init(&html, 0);
	render_progress(d, &html, &c);
	cut = strstr(buf_cstr(&html), "\nTotal: ");
	n = cut ? (size_t)(cut - html.data) : html.len;
	if (!d->p->progress || strlen(d->p->progress) != n ||
	    strncmp(d->p->progress, html.data, n) != 0) {
		snprintf(ref, sizeof(ref), "factory-%lld", (long long)eng_ctx_thread_id(d->s->ctx));
		rc = nd_progress(d->s->ctx, &d->p->chat, ref, buf_cstr(&html));
		free(d->p->progress);
		d->p->progress = strndup(html.data ? html.data : "", n);
	}
	buf_free(&html);
	nd_costs_free(&c);
	return rc;
}

/* --- the person's messages --- */

/* The person's "network:" and "setup command:" lines (nodes/netspec.h):
 * the spec changes for the workers and merges that start from now on, and
 * `html` says so (or why a line was not used). */
static void apply_settings(dev *d, const char *text, buf *html)
{
	json_t *spec = json_deep_copy(d->p->spec);
	buf said;
	int n;

	buf_init(&said, 0);
	n = spec ? nd_netspec_said(text, spec, &said) : 0;
	if (n < 0) {
		buf_puts(html, "⚠️ Not applied: ");
		nd_html_escape(html, err_last());
		buf_puts(html, "\n\n");
	} else if (n > 0) {
		buf_puts(html, "✅ From the next worker and merge on, ");
		nd_html_escape(html, buf_cstr(&said));
		buf_puts(html, ".\n\n");
		nd_log(d->s->up, "settings", buf_cstr(&said), NULL);
		json_object_set(d->s->up, "spec", spec);
		d->p->spec = spec; /* held by the update */
	}
	json_decref(spec);
	buf_free(&said);
}

static int on_input(dev *d, const json_t *v)
{
	nd_input in;
	nd_costs c;
	buf html;
	int rc;

	d->changed = 1;
	buf_init(&html, 0);
	nd_input_read(v, &in);
	if (in.user.id > 0)
		nd_user_copy(&d->p->user, &in.user);
	nd_log(d->s->up, "message", in.text ? in.text : "", NULL);
	apply_settings(d, in.text, &html);
	nd_input_free(&in);
	if (nd_costs_get(d->s->ctx, &c) < 0)
		err_clear();
	buf_puts(&html, "The project is being built; here is where it stands.\n\n");
	render_progress(d, &html, &c);
	buf_puts(&html, "\n\n/cancel stops it.");
	rc = nd_tell_html(d->s, buf_cstr(&html));
	buf_free(&html);
	nd_costs_free(&c);
	/* questions that expired are asked again */
	for (size_t i = 0; rc == 0 && i < d->p->nqs;) {
		if (d->p->qs[i].expired) {
			char key[ND_KEY_MAX];
			snprintf(key, sizeof(key), "%s", d->p->qs[i].key);
			rc = ask_again(d, key); /* removes it, adds the new one at the end */
		} else {
			i++;
		}
	}
	return rc;
}

/* --- one pass --- */

static int deps_done(dev *d, const nd_plan_task *pt)
{
	for (size_t i = 0; i < pt->deps.n; i++) {
		const nd_task *dep = nd_task_find(d->p, pt->deps.v[i]);
		if (!dep || (dep->status != ND_TASK_MERGED && dep->status != ND_TASK_SKIPPED))
			return 0;
	}
	return 1;
}

/* Back to a worker on the same branch, with the reviewer's comments. */
static int changes_feedback(nd_task *t)
{
	nd_review last;
	buf fb;
	int rc = nd_review_read(json_array_get(t->reviews, json_array_size(t->reviews) - 1), &last);

	if (rc < 0)
		err_clear();
	buf_init(&fb, 32 * 1024);
	buf_printf(&fb, "\nThe reviewer asked for changes to your work (review round %d):\n%s\n",
		   t->round, last.summary ? last.summary : "");
	for (size_t i = 0; i < last.ncomments; i++) {
		const nd_comment *c = &last.comments[i];
		buf_puts(&fb, "- ");
		if (c->file && c->line > 0)
			buf_printf(&fb, "%s:%d: ", c->file, c->line);
		else if (c->file)
			buf_printf(&fb, "%s: ", c->file);
		buf_printf(&fb, "%s\n", c->text);
	}
	buf_puts(&fb, "Your previous work is in the repository already (this branch); change it as "
		      "asked.\n");
	nd_str_set(&t->feedback, buf_cstr(&fb));
	buf_free(&fb);
	nd_review_free(&last);
	return requeue(t, 1, t->commit ? t->commit : "");
}

/* Reviewer verdicts and other statuses that lead to a decision here. */
static int advance(dev *d, nd_task *t)
{
	static const nd_opt again[] = {ND_OPT_RETRY, ND_OPT_ACCEPT, ND_OPT_SKIP, ND_OPT_STOP};
	static const nd_opt extend[] = {ND_OPT_EXTEND, ND_OPT_STOP};
	static const nd_opt merge[] = {ND_OPT_MERGE, ND_OPT_SKIP, ND_OPT_STOP};
	char text[1600];
	nd_question q;

	switch (t->status) {
	case ND_TASK_CHANGES:
		d->changed = 1;
		if (t->round <= d->s->app->cfg.review_rounds)
			return changes_feedback(t);
		{
			nd_review last;
			if (nd_review_read(json_array_get(t->reviews, json_array_size(t->reviews) - 1),
					   &last) < 0)
				err_clear();
			snprintf(text, sizeof(text),
				 "🔍 Task %s (%s) still has changes requested after %d review round%s: "
				 "%s\n\nOne more round, merge it as it is, skip it, or stop?",
				 t->id, t->title, t->round, t->round == 1 ? "" : "s",
				 last.summary ? last.summary : "");
			nd_review_free(&last);
		}
		q = keep(ND_RESUME_ROUNDS, NULL, NULL);
		return ask(d, t, ND_Q_ROUNDS, text, again, 4, &q);
	case ND_TASK_REVIEW_ERROR:
		d->changed = 1;
		snprintf(text, sizeof(text),
			 "⚠️ The review of task %s (%s) failed: %s\n\nReview again, merge without a "
			 "review, skip it, or stop?",
			 t->id, t->title, t->reason ? t->reason : "");
		q = keep(ND_RESUME_REVIEW, NULL, NULL);
		return ask(d, t, ND_Q_REVIEW, text, again, 4, &q);
	case ND_TASK_REVIEW_BUDGET:
		d->changed = 1;
		snprintf(text, sizeof(text),
			 "💰 The %s budget of %s is reached ($%.4f of $%.4f): the review of task %s "
			 "cannot run. Extend it by $%.2f?",
			 t->budget_kind, t->budget_scope, t->budget_spent, t->budget_limit,
			 t->id, d->s->app->cfg.budget_step);
		q = keep(ND_RESUME_REVIEW, t->budget_kind, t->budget_scope);
		return ask(d, t, ND_Q_BUDGET, text, extend, 2, &q);
	case ND_TASK_APPROVED:
		d->changed = 1;
		if (!d->s->app->cfg.merge_approval)
			return nd_task_move(t, ND_TASK_MERGE_READY);
		{
			nd_tests tests;
			nd_tests_read(t->tests, &tests);
			snprintf(text, sizeof(text),
				 "🔀 Task %s (%s) is approved by the reviewer (%d/%d tests pass). "
				 "Merge it into main?",
				 t->id, t->title, tests.passed, tests.total);
		}
		q = keep(ND_RESUME_MERGE, NULL, NULL);
		return ask(d, t, ND_Q_MERGE, text, merge, 3, &q);
	default:
		return 0;
	}
}

/* Starts what is ready: workers for queued tasks whose dependencies are
 * done, one merge at a time, and finished work to review. */
static int start_ready(dev *d)
{
	const nd_plan *plan = &d->p->plan;
	int inflight = 0, merging = 0, rc = 0;

	for (size_t i = 0; i < d->p->ntasks; i++) {
		inflight += d->p->tasks[i].status == ND_TASK_WORKING;
		merging += d->p->tasks[i].status == ND_TASK_MERGING;
	}
	for (size_t i = 0; rc == 0 && i < plan->ntasks; i++) {
		nd_task *t = nd_task_find(d->p, plan->tasks[i].id);
		if (!t || t->status != ND_TASK_QUEUED || !deps_done(d, &plan->tasks[i]))
			continue;
		if (inflight >= d->s->app->cfg.max_workers)
			break;
		rc = spawn_work(d, t);
		inflight++;
	}
	for (size_t i = 0; rc == 0 && i < plan->ntasks && !merging; i++) {
		nd_task *t = nd_task_find(d->p, plan->tasks[i].id);
		if (t && t->status == ND_TASK_MERGE_READY) {
			rc = spawn_merge(d, t);
			merging = 1;
		}
	}
	for (size_t i = 0; rc == 0 && i < plan->ntasks; i++) {
		nd_task *t = nd_task_find(d->p, plan->tasks[i].id);
		if (t && t->status == ND_TASK_REVIEW) {
			rc = nd_task_move(t, ND_TASK_REVIEWING);
			d->changed = 1;
		}
	}
	return rc;
}

static int stop_project(dev *d)
{
	const nd_ops *ops = nd_ops_need();
	char msg[400];
	pg_conn *c = NULL;
	int n = 0, rc;

	if (!ops)
		return ERR_INTERNAL;
	if (pg_pool_acquire(d->s->app->pool, 10000, &c) == 0) {
		if (ops->cancel_workers(c, eng_ctx_thread_id(d->s->ctx),
					"the person stopped the project", &n) < 0)
			n = 0;
		pg_pool_release(d->s->app->pool, c);
	}
	err_clear();
	rc = nd_stage_move(d->p, ND_STAGE_STOPPED);
	snprintf(msg, sizeof(msg),
		 "🛑 Stopped%s%s. %d worker%s withdrawn; what is merged stays in %s. Send /new "
		 "<idea> to start another project.",
		 d->stop_by[0] ? " by " : "", d->stop_by, n, n == 1 ? "" : "s",
		 d->p->repo.path ? d->p->repo.path : "");
	nd_log(d->s->up, "stopped", msg, NULL);
	return rc < 0 ? rc : nd_tell(d->s, msg);
}

/* Takes every event of `key` and hands each to `fn`. */
static int take_each(dev *d, const char *key, int (*fn)(dev *, const json_t *))
{
	json_t *got = NULL, *v;
	size_t i;
	int rc = eng_take(d->s->ctx, key, &got);

	json_array_foreach(got, i, v) {
		if (rc == 0)
			rc = fn(d, v);
	}
	json_decref(got);
	return rc;
}

/* The decisions on the open questions. */
static int take_decisions(dev *d)
{
	size_t n = d->p->nqs;
	char (*keys)[ND_KEY_MAX] = calloc(n ? n : 1, ND_KEY_MAX);
	int rc = keys ? 0 : err_set(ERR_NOMEM, "out of memory");

	for (size_t i = 0; rc == 0 && i < n; i++)
		snprintf(keys[i], ND_KEY_MAX, "%s", d->p->qs[i].key);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *got = NULL;
		rc = eng_take(d->s->ctx, keys[i], &got);
		for (size_t e = 0; rc == 0 && e < json_array_size(got) &&
				   nd_question_find(d->p, keys[i]); e++)
			rc = on_decision(d, keys[i], json_array_get(got, e));
		json_decref(got);
	}
	free(keys);
	return rc;
}

int nd_developer(nd_step *s)
{
	dev d;
	int rc = nd_need_chat(s);

	memset(&d, 0, sizeof(d));
	d.s = s;
	d.p = &s->p;
	/* 1. what arrived */
	if (rc == 0 && s->p.input.present) {
		s->p.input.present = 0;
		rc = on_input(&d, json_object_get(s->state, "input"));
	}
	if (rc == 0)
		rc = take_each(&d, "worker", on_result);
	if (rc == 0)
		rc = take_each(&d, "input", on_input);
	if (rc == 0)
		rc = take_decisions(&d);
	if (rc < 0 || d.stop)
		return rc < 0 ? rc : stop_project(&d);
	/* 2. decisions the tasks' statuses call for */
	for (size_t i = 0; rc == 0 && i < s->p.plan.ntasks; i++) {
		nd_task *t = nd_task_find(&s->p, s->p.plan.tasks[i].id);
		if (t)
			rc = advance(&d, t);
	}
	/* 3. start what is ready */
	if (rc == 0)
		rc = start_ready(&d);
	if (rc < 0)
		return rc;
	/* 4. nothing new: wait for results, messages and answers */
	if (!d.changed) {
		eng_wait(s->ctx, "worker", NULL);
		eng_wait(s->ctx, "input", NULL);
		for (size_t i = 0; i < s->p.nqs; i++)
			eng_wait(s->ctx, s->p.qs[i].key, NULL);
		return ERR_WAIT;
	}
	return progress(&d);
}
