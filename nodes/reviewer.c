/*
 * reviewer — one finished task's review: the diff of its branch against
 * main (libgit2, nodes/repo.h) with the test evidence the spawner verified,
 * judged by the model of role "reviewer" into a structured verdict. The
 * task goes to "approved" or "changes" (or "review_error" /
 * "review_budget" for the developer to ask about); the reviewers of one
 * step run in parallel, each writing only its own task.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "nodes/nd_int.h"
#include "nodes/prompt.h"
#include "nodes/repo.h"
#include "nodes/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The verdicts' comments of `reviews`' last one, as the prompt shows them. */
static void previous(const json_t *reviews, buf *out)
{
	nd_review last;

	if (json_array_size(reviews) == 0 ||
	    nd_review_read(json_array_get(reviews, json_array_size(reviews) - 1), &last) < 0) {
		err_clear();
		return;
	}
	buf_printf(out, "\nIn the previous round you asked for changes: %s\n", last.summary);
	for (size_t i = 0; i < last.ncomments; i++)
		buf_printf(out, "- %s\n", last.comments[i].text);
	buf_puts(out, "Check that they were made.\n");
	nd_review_free(&last);
}

/* The task prompt of the review of `t` with its diff. */
static int render(const nd_step *s, const nd_task *t, const nd_plan_task *pt, const char *diff,
		  const int fig[3], buf *out)
{
	nd_tests tests;
	buf checks, prev, output;
	char num[7][16];
	int rc;

	nd_tests_read(t->tests, &tests);
	buf_init(&checks, 0);
	buf_init(&prev, 0);
	buf_init(&output, 0);
	for (size_t i = 0; i < pt->checks.n; i++)
		buf_printf(&checks, "- %s\n", pt->checks.v[i]);
	previous(t->reviews, &prev);
	if (*tests.output) {
		buf_puts(&output, "The end of its output:\n");
		nd_clip(&output, tests.output, 2000);
		buf_putc(&output, '\n');
	}
	{
		const int v[7] = {t->round, tests.passed, tests.failed, tests.total, tests.base_total,
				  fig[0], fig[1]};
		for (int i = 0; i < 7; i++)
			snprintf(num[i], sizeof(num[i]), "%d", v[i]);
	}
	{
		char dels[16], base[700] = "";
		const char *vars[] = {
		    "name",         jx_str(s->p.spec, "name"),
		    "summary",      jx_str(s->p.spec, "summary"),
		    "task",         t->id,
		    "title",        pt->title,
		    "round",        num[0],
		    "goal",         pt->goal,
		    "checks",       buf_cstr(&checks),
		    "test_command", s->p.plan.test_command,
		    "verdict",      *tests.verdict ? tests.verdict : "none",
		    "passed",       num[1],
		    "failed",       num[2],
		    "total",        num[3],
		    "base_total",   num[4],
		    "output",       buf_cstr(&output),
		    "previous",     buf_cstr(&prev),
		    "files",        num[5],
		    "insertions",   num[6],
		    "deletions",    dels,
		    "diff",         diff,
		    "branch",       nd_project_branch(&s->p),
		    "baseline",     base,
		    NULL,
		};
		snprintf(dels, sizeof(dels), "%d", fig[2]);
		if (s->p.change.present) {
			char line[600];
			nd_baseline_line(&s->p, line, sizeof(line));
			snprintf(base, sizeof(base), "The baseline (the repository's tests before any "
						     "work): %s. Failures it had may remain; a test "
						     "it passed must still pass.\n", line);
		}
		rc = nd_prompt("reviewer_task.md", vars, out);
	}
	buf_free(&checks);
	buf_free(&prev);
	buf_free(&output);
	return rc;
}

/* Asks the model, with less of the diff when it does not fit. */
static int ask(nd_step *s, const nd_task *t, const nd_plan_task *pt, llm_response *resp)
{
	static const size_t caps[] = {48 * 1024, 16 * 1024, 4 * 1024};
	llm_message msgs[2];
	llm_call call;
	char user[32];
	buf sys, task, diff;
	int rc, fig[3] = {0, 0, 0};

	buf_init(&sys, 0);
	buf_init(&task, 0);
	buf_init(&diff, 0);
	rc = nd_prompt("reviewer_system.md", NULL, &sys);
	nd_llm_call(&call, s, "reviewer", user);
	call.subject = t->id;
	for (size_t ci = 0; rc == 0 && ci < sizeof(caps) / sizeof(caps[0]); ci++) {
		buf_reset(&diff);
		buf_reset(&task);
		rc = nd_repo_diff(s->p.repo.path, t->commit ? t->commit : "",
				  nd_project_branch(&s->p), caps[ci], &diff,
				  &fig[0], &fig[1], &fig[2]);
		if (rc == 0)
			rc = render(s, t, pt, buf_cstr(&diff), fig, &task);
		if (rc < 0)
			break;
		memset(msgs, 0, sizeof(msgs));
		msgs[0].role = "system";
		msgs[0].content = buf_cstr(&sys);
		msgs[1].role = "user";
		msgs[1].content = buf_cstr(&task);
		rc = nd_llm_json(s, &call, msgs, 2, nd_schema("review"), "review", resp);
		if (rc != ERR_CONTEXT)
			break;
		log_info("factory", "thread %s: the review of %s does not fit; cutting the diff",
			 eng_ctx_thread_key(s->ctx), t->id);
	}
	buf_free(&sys);
	buf_free(&task);
	buf_free(&diff);
	return rc;
}

/* Tells the person the verdict and records it with the task. */
static int verdict(nd_step *s, nd_task *t, nd_review *rv)
{
	buf msg;
	int rc;

	rv->round = t->round > 0 ? t->round : 1;
	if (!json_is_array(t->reviews)) {
		json_decref(t->reviews);
		t->reviews = json_array();
	}
	json_array_append_new(t->reviews, nd_review_to_json(rv));
	rc = nd_task_move(t, rv->approve ? ND_TASK_APPROVED : ND_TASK_CHANGES);
	buf_init(&msg, 0);
	buf_printf(&msg, "🔍 Review of <code>%s</code> (round %d): ", t->id, t->round);
	buf_puts(&msg, rv->approve ? "<b>approved</b>. " : "<b>changes requested</b>. ");
	nd_html_escape(&msg, rv->summary);
	for (size_t i = 0; !rv->approve && i < rv->ncomments && i < 8; i++) {
		buf_puts(&msg, "\n• ");
		if (rv->comments[i].file) {
			buf_puts(&msg, "<code>");
			nd_html_escape(&msg, rv->comments[i].file);
			buf_puts(&msg, "</code>: ");
		}
		{
			buf c;
			buf_init(&c, 0);
			nd_clip(&c, rv->comments[i].text, 300);
			nd_html_escape(&msg, buf_cstr(&c));
			buf_free(&c);
		}
	}
	if (rc == 0)
		rc = nd_tell_html(s, buf_cstr(&msg));
	buf_free(&msg);
	nd_log(s->up, rv->approve ? "approved" : "changes_requested", rv->summary,
	       json_pack("{s:s, s:i}", "task", t->id, "round", t->round));
	return rc;
}

int nd_reviewer(nd_step *s)
{
	const char *id = jx_str(s->in, "task");
	nd_task *t = nd_task_find(&s->p, id);
	const nd_plan_task *pt = nd_plan_find(&s->p, id);
	llm_response resp;
	nd_review rv;
	int rc = nd_schema("review") ? 0 : ERR_INTERNAL;

	if (rc < 0 || !t || !pt || t->status != ND_TASK_REVIEWING)
		return rc; /* nothing (any more) to review */
	rc = nd_need_chat(s);
	if (rc < 0)
		return rc;
	memset(&rv, 0, sizeof(rv));
	llm_response_init(&resp);
	rc = ask(s, t, pt, &resp);
	if (rc == 0)
		rc = nd_review_from_json(resp.json, &rv);
	if (rc == ERR_BUDGET) {
		t->has_budget = 1;
		snprintf(t->budget_kind, sizeof(t->budget_kind), "%s", resp.budget.kind);
		snprintf(t->budget_scope, sizeof(t->budget_scope), "%s", resp.budget.scope);
		t->budget_limit = resp.budget.limit_usd;
		t->budget_spent = resp.budget.spent_usd;
		err_clear();
		rc = nd_task_move(t, ND_TASK_REVIEW_BUDGET);
	} else if (rc < 0 && (ENG_RETRY_TRANSIENT & ENG_RETRY_ON(rc)) &&
		   eng_ctx_attempt(s->ctx) < ND_LLM_ATTEMPTS) {
		/* the engine tries again */
	} else if (rc < 0) {
		log_warn("factory", "thread %s: the review of %s failed: %s",
			 eng_ctx_thread_key(s->ctx), id, err_last());
		nd_str_set(&t->reason, err_last());
		err_clear();
		rc = nd_task_move(t, ND_TASK_REVIEW_ERROR);
	} else {
		rc = verdict(s, t, &rv);
	}
	nd_review_free(&rv);
	llm_response_free(&resp);
	return rc;
}
