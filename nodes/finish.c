/*
 * finish — the end of a project: one message with where the repository is
 * (and its remote), what was built, the tests on main, tokens and cost, and
 * the whole story as a Markdown document.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "nodes/nd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A task's part of the report: its status, tests, rounds, cost, reviews. */
static void report_task(buf *md, const nd_plan_task *pt, const nd_task *t, const nd_costs *c)
{
	nd_task_cost tc = nd_costs_task(c, pt->id);
	nd_tests tests;
	size_t k;
	const json_t *r;

	nd_tests_read(t ? t->tests : NULL, &tests);
	buf_printf(md, "\n### %s (`%s`): %s\n\n%s\n\n", pt->title, pt->id,
		   t ? ND_STATUS[t->status].label : "?", pt->goal);
	if (tests.present)
		buf_printf(md, "Tests: %d passed of %d (%s).  \n", tests.passed, tests.total,
			   tests.verdict);
	buf_printf(md, "Rounds: %d; workers' tokens: %lld in, %lld out; $%.4f.\n",
		   t ? t->round : 0, (long long)tc.tokens_in, (long long)tc.tokens_out, tc.cost_usd);
	json_array_foreach(t ? t->reviews : NULL, k, r) {
		nd_review rv;
		if (nd_review_read(r, &rv) == 0) {
			buf_printf(md, "\n- review, round %d: **%s** — %s\n", rv.round,
				   rv.approve ? "approve" : "request_changes", rv.summary);
			for (size_t j = 0; j < rv.ncomments; j++)
				buf_printf(md, "  - %s%s%s\n", rv.comments[j].file ? rv.comments[j].file : "",
					   rv.comments[j].file ? ": " : "", rv.comments[j].text);
		}
		nd_review_free(&rv);
	}
}

/* The whole story as a Markdown document: the spec, each task with its
 * rounds, reviews and tests, and the cost. */
static int report(nd_step *s, const nd_costs *c)
{
	const json_t *spec = s->p.spec, *f, *r;
	char filename[96];
	size_t i, k;
	buf md;
	int rc;

	buf_init(&md, 1 << 20);
	buf_printf(&md, "# %s\n\n%s\n\nRepository: `%s`, branch %s at `%s`\n\n",
		   jx_str(spec, "name"), jx_str(spec, "summary"), s->p.repo.path ? s->p.repo.path : "",
		   nd_project_branch(&s->p), s->p.repo.head ? s->p.repo.head : "");
	if (s->p.change.present) {
		char line[600];
		nd_baseline_line(&s->p, line, sizeof(line));
		buf_printf(&md, "A change to %s. Before it, the repository's tests: %s.\n\n",
			   s->p.change.source, line);
	}
	buf_puts(&md, "## Features\n\n");
	json_array_foreach(json_object_get(spec, "features"), i, f) {
		buf_printf(&md, "- **%s**\n", jx_str(f, "name"));
		json_array_foreach(json_object_get(f, "acceptance"), k, r)
			buf_printf(&md, "  - %s\n", json_string_value(r));
	}
	buf_printf(&md, "\n## Tasks\n");
	for (i = 0; i < s->p.plan.ntasks; i++)
		report_task(&md, &s->p.plan.tasks[i], nd_task_find(&s->p, s->p.plan.tasks[i].id), c);
	buf_printf(&md, "\n## Cost\n\n%lld tokens in, %lld out: $%.4f ($%.4f by the workers).\n",
		   (long long)c->tokens_in, (long long)c->tokens_out, c->cost_usd, c->workers_usd);
	snprintf(filename, sizeof(filename), "%s-report.md", jx_str(spec, "name"));
	rc = nd_document(s->ctx, &s->p.chat, filename, buf_cstr(&md),
			 "The whole story: spec, tasks, reviews, cost.");
	buf_free(&md);
	return rc;
}

/* Where a change went: pushed, its pull request, or kept (and how to take
 * it), and its baseline. */
static void change_ending(const nd_step *s, buf *html)
{
	const nd_change *ch = &s->p.change;
	char line[600];

	if (ch->has_pr) {
		buf_printf(html, "<b>Pull request</b> #%lld ", (long long)ch->pr_number);
		nd_html_escape(html, ch->pr_url);
		buf_puts(html, " — comments and CI failures there start a new round; its merge or "
			       "closing ends the project\n");
	} else if (ch->pushed) {
		buf_puts(html, "<b>Pushed</b> to ");
		nd_html_escape(html, ch->source);
		buf_printf(html, " (%s at <code>%.12s</code>)\n", nd_project_branch(&s->p), ch->pushed);
	} else {
		buf_puts(html, "Nothing was pushed. To take it: <code>git -C ");
		nd_html_escape(html, ch->local ? ch->source : "YOUR-CLONE");
		buf_puts(html, " pull ");
		nd_html_escape(html, s->p.repo.path);
		buf_putc(html, ' ');
		nd_html_escape(html, nd_project_branch(&s->p));
		buf_puts(html, "</code>\n");
	}
	nd_baseline_line(&s->p, line, sizeof(line));
	buf_puts(html, "<b>Before the change</b> ");
	nd_html_escape(html, line);
	buf_putc(html, '\n');
}

/* The final message: repository, remote, what was built, tests, cost;
 * *merged and *skipped count the tasks. */
static void final_message(const nd_step *s, const nd_costs *c, buf *html, int *merged,
			  int *skipped)
{
	const nd_repo *repo = &s->p.repo;
	char tin[32], tout[32];

	buf_puts(html, "🎉 <b>");
	nd_html_escape(html, jx_str(s->p.spec, "name"));
	buf_puts(html, s->p.change.present ? "</b>: the change is made.\n\n<b>Repository</b> <code>"
					   : "</b> is built.\n\n<b>Repository</b> <code>");
	nd_html_escape(html, repo->path);
	buf_puts(html, "</code>, branch ");
	nd_html_escape(html, nd_project_branch(&s->p));
	if (repo->head)
		buf_printf(html, " at <code>%.12s</code>", repo->head);
	buf_putc(html, '\n');
	if (s->p.change.present) {
		change_ending(s, html);
	} else if (repo->has_remote) {
		buf_puts(html, "<b>Remote</b> ");
		nd_html_escape(html, repo->remote_url);
		if (repo->pushed)
			buf_puts(html, " (pushed)");
		else if (repo->publish_error)
			buf_puts(html, " (<b>not pushed</b>: see the messages above)");
		buf_putc(html, '\n');
	}
	buf_puts(html, "\n<b>What was built</b>\n");
	for (size_t i = 0; i < s->p.plan.ntasks; i++) {
		const nd_task *t = nd_task_find(&s->p, s->p.plan.tasks[i].id);
		int is_merged = t && t->status == ND_TASK_MERGED;

		*merged += is_merged;
		*skipped += !is_merged;
		buf_puts(html, is_merged ? "✅ " : "⏭ ");
		nd_html_escape(html, s->p.plan.tasks[i].title);
		if (!is_merged)
			buf_puts(html, " (skipped)");
		else if (t->round > 1)
			buf_printf(html, " (%d review rounds)", t->round);
		buf_putc(html, '\n');
	}
	if (s->p.main.present) {
		buf_printf(html, "\n<b>Tests</b> %d of %d pass on %s (<code>", s->p.main.passed,
			   s->p.main.total, nd_project_branch(&s->p));
		nd_html_escape(html, s->p.main.command);
		buf_puts(html, "</code>, run on the merged result in a sandbox)\n");
	}
	nd_fmt_tokens(c->tokens_in, tin, sizeof(tin));
	nd_fmt_tokens(c->tokens_out, tout, sizeof(tout));
	buf_printf(html, "\n<b>Cost</b> %s tokens in, %s out · $%.4f ($%.4f by the workers, "
			 "$%.4f for planning and review)",
		   tin, tout, c->cost_usd, c->workers_usd, c->cost_usd - c->workers_usd);
}

int nd_finish(nd_step *s)
{
	const json_t *main_tests = json_object_get(s->state, "main");
	nd_costs c;
	buf html;
	int rc = nd_need_chat(s), merged = 0, skipped = 0;

	if (rc < 0)
		return rc;
	rc = nd_costs_get(s->ctx, &c);
	if (rc < 0)
		return rc;
	buf_init(&html, 0);
	final_message(s, &c, &html, &merged, &skipped);
	rc = nd_tell_html(s, buf_cstr(&html));
	if (rc == 0)
		rc = report(s, &c);
	/* a change's open pull request is followed until it is merged or closed */
	if (rc == 0)
		rc = nd_stage_move(&s->p, s->p.change.has_pr && s->p.change.pr_state &&
						  strcmp(s->p.change.pr_state, "open") == 0
					      ? ND_STAGE_FOLLOW
					      : ND_STAGE_DONE);
	if (rc == 0) {
		json_object_set_new(
			s->up, "final",
			json_pack("{s:s?, s:s?, s:i, s:i, s:O?, s:I, s:I, s:f, s:f}", "repo",
				  s->p.repo.path, "head", s->p.repo.head, "merged", merged, "skipped",
				  skipped, "tests", main_tests, "tokens_in", (json_int_t)c.tokens_in,
				  "tokens_out", (json_int_t)c.tokens_out, "cost_usd", c.cost_usd,
				  "workers_usd", c.workers_usd));
		nd_log(s->up, "done", "the project is built", NULL);
	}
	buf_free(&html);
	nd_costs_free(&c);
	return rc;
}
