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

static const json_t *plan_task(const json_t *state, const char *id)
{
	const json_t *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, t)
		if (strcmp(jx_str(t, "id"), id) == 0)
			return t;
	return NULL;
}

static int render(const json_t *state, const json_t *t, const json_t *pt, const char *diff,
		  int files, int ins, int del, buf *out)
{
	const json_t *spec = json_object_get(state, "spec");
	const json_t *tests = json_object_get(t, "tests");
	const json_t *reviews = json_object_get(t, "reviews");
	buf checks, prev, output;
	char round[16], passed[16], failed[16], total[16], base_total[16], fs[16], is[16], ds[16];
	size_t i;
	const json_t *c;
	int rc;

	buf_init(&checks, 0);
	buf_init(&prev, 0);
	buf_init(&output, 0);
	json_array_foreach(json_object_get(pt, "checks"), i, c)
		buf_printf(&checks, "- %s\n", json_string_value(c));
	if (json_array_size(reviews)) {
		const json_t *last = json_array_get(reviews, json_array_size(reviews) - 1);
		buf_printf(&prev, "\nIn the previous round you asked for changes: %s\n",
			   jx_str(last, "summary"));
		json_array_foreach(json_object_get(last, "comments"), i, c)
			buf_printf(&prev, "- %s\n", jx_str(c, "comment"));
		buf_puts(&prev, "Check that they were made.\n");
	}
	if (*jx_str(tests, "output")) {
		buf_puts(&output, "The end of its output:\n");
		nd_clip(&output, jx_str(tests, "output"), 2000);
		buf_putc(&output, '\n');
	}
	snprintf(round, sizeof(round), "%lld", (long long)json_integer_value(json_object_get(t, "round")));
	snprintf(passed, sizeof(passed), "%lld",
		 (long long)json_integer_value(json_object_get(tests, "passed")));
	snprintf(failed, sizeof(failed), "%lld",
		 (long long)json_integer_value(json_object_get(tests, "failed")));
	snprintf(total, sizeof(total), "%lld",
		 (long long)json_integer_value(json_object_get(tests, "total")));
	snprintf(base_total, sizeof(base_total), "%lld",
		 (long long)json_integer_value(json_object_get(json_object_get(tests, "base"),
							       "total")));
	snprintf(fs, sizeof(fs), "%d", files);
	snprintf(is, sizeof(is), "%d", ins);
	snprintf(ds, sizeof(ds), "%d", del);
	{
		const char *vars[] = {
		    "name",         jx_str(spec, "name"),
		    "summary",      jx_str(spec, "summary"),
		    "task",         jx_str(t, "id"),
		    "title",        jx_str(pt, "title"),
		    "round",        round,
		    "goal",         jx_str(pt, "goal"),
		    "checks",       buf_cstr(&checks),
		    "test_command", jx_str(json_object_get(state, "plan"), "test_command"),
		    "verdict",      *jx_str(tests, "verdict") ? jx_str(tests, "verdict") : "none",
		    "passed",       passed,
		    "failed",       failed,
		    "total",        total,
		    "base_total",   base_total,
		    "output",       buf_cstr(&output),
		    "previous",     buf_cstr(&prev),
		    "files",        fs,
		    "insertions",   is,
		    "deletions",    ds,
		    "diff",         diff,
		    NULL,
		};
		rc = nd_prompt("reviewer_task.md", vars, out);
	}
	buf_free(&checks);
	buf_free(&prev);
	buf_free(&output);
	return rc;
}

int nd_reviewer(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	const char *id = jx_str(input, "task");
	const json_t *t0 = json_object_get(json_object_get(state, "tasks"), id);
	const json_t *pt = plan_task(state, id);
	const json_t *schema = nd_schema("review");
	static const size_t caps[] = {48 * 1024, 16 * 1024, 4 * 1024};
	llm_response resp;
	llm_call call;
	llm_message msgs[2];
	nd_review rv;
	nd_chat chat;
	buf sys, task, diff;
	json_t *t = NULL, *up = json_object();
	char user[32];
	int rc = 0, files = 0, ins = 0, del = 0;

	memset(&rv, 0, sizeof(rv));
	llm_response_init(&resp);
	buf_init(&sys, 0);
	buf_init(&task, 0);
	buf_init(&diff, 0);
	*update = up;
	if (!up || !schema) {
		rc = up ? ERR_INTERNAL : err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (!json_is_object(t0) || !pt || strcmp(jx_str(t0, "status"), "reviewing") != 0)
		goto done; /* nothing (any more) to review */
	if ((rc = nd_chat_get(state, NULL, &chat)) < 0)
		goto done;
	t = json_deep_copy(t0);
	if ((rc = nd_prompt("reviewer_system.md", NULL, &sys)) < 0)
		goto done;
	nd_llm_call(&call, ctx, state, "reviewer", user);
	call.subject = id;
	for (size_t ci = 0; ci < sizeof(caps) / sizeof(caps[0]); ci++) {
		buf_reset(&diff);
		buf_reset(&task);
		rc = nd_repo_diff(jx_str(json_object_get(state, "repo"), "path"),
				  jx_str(t, "commit"), "main", caps[ci], &diff, &files, &ins, &del);
		if (rc < 0)
			break;
		if ((rc = render(state, t, pt, buf_cstr(&diff), files, ins, del, &task)) < 0)
			goto done;
		memset(msgs, 0, sizeof(msgs));
		msgs[0].role = "system";
		msgs[0].content = buf_cstr(&sys);
		msgs[1].role = "user";
		msgs[1].content = buf_cstr(&task);
		rc = nd_llm_json(ctx, &call, msgs, 2, schema, "review", &resp);
		if (rc != ERR_CONTEXT)
			break;
		log_info("factory", "thread %s: the review of %s does not fit; cutting the diff",
			 eng_ctx_thread_key(ctx), id);
	}
	if (rc == 0)
		rc = nd_review_from_json(resp.json, &rv);
	if (rc == ERR_BUDGET) {
		json_object_set_new(t, "status", json_string("review_budget"));
		json_object_set_new(t, "budget",
				    json_pack("{s:s, s:s, s:f, s:f}", "kind", resp.budget.kind,
					      "scope", resp.budget.scope, "limit_usd",
					      resp.budget.limit_usd, "spent_usd",
					      resp.budget.spent_usd));
		err_clear();
		rc = 0;
	} else if (rc < 0) {
		int transient = (ENG_RETRY_TRANSIENT & ENG_RETRY_ON(rc)) != 0;
		if (transient && eng_ctx_attempt(ctx) < ND_LLM_ATTEMPTS)
			goto done; /* the engine tries again */
		log_warn("factory", "thread %s: the review of %s failed: %s",
			 eng_ctx_thread_key(ctx), id, err_last());
		json_object_set_new(t, "status", json_string("review_error"));
		json_object_set_new(t, "reason", json_string(err_last()));
		err_clear();
		rc = 0;
	} else {
		json_t *rj = nd_review_to_json(&rv), *reviews = json_object_get(t, "reviews");
		buf msg;

		json_object_set_new(rj, "round", json_object_get(t, "round")
							 ? json_incref(json_object_get(t, "round"))
							 : json_integer(1));
		if (!json_is_array(reviews)) {
			reviews = json_array();
			json_object_set_new(t, "reviews", reviews);
		}
		json_array_append_new(reviews, rj);
		json_object_set_new(t, "status", json_string(rv.approve ? "approved" : "changes"));
		buf_init(&msg, 0);
		buf_printf(&msg, "🔍 Review of <code>%s</code> (round %lld): ", id,
			   (long long)json_integer_value(json_object_get(t, "round")));
		buf_puts(&msg, rv.approve ? "<b>approved</b>. " : "<b>changes requested</b>. ");
		nd_html_escape(&msg, rv.summary);
		for (size_t i = 0; !rv.approve && i < rv.ncomments && i < 8; i++) {
			buf_puts(&msg, "\n• ");
			if (rv.comments[i].file) {
				buf_puts(&msg, "<code>");
				nd_html_escape(&msg, rv.comments[i].file);
				buf_puts(&msg, "</code>: ");
			}
			{
				buf c;
				buf_init(&c, 0);
				nd_clip(&c, rv.comments[i].text, 300);
				nd_html_escape(&msg, buf_cstr(&c));
				buf_free(&c);
			}
		}
		rc = nd_say_html(ctx, &chat, buf_cstr(&msg));
		buf_free(&msg);
		nd_log(up, rv.approve ? "approved" : "changes_requested", rv.summary,
		       json_pack("{s:s, s:O?}", "task", id, "round", json_object_get(t, "round")));
	}
	if (rc == 0)
		json_object_set_new(up, "tasks", json_pack("{s:O}", id, t));
done:
	json_decref(t);
	nd_review_free(&rv);
	llm_response_free(&resp);
	buf_free(&sys);
	buf_free(&task);
	buf_free(&diff);
	return rc;
}
