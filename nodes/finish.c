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

static int num(const json_t *o, const char *k)
{
	return (int)json_integer_value(json_object_get(o, k));
}

/* The whole story as a Markdown document: the spec, each task with its
 * rounds, reviews and tests, and the cost. */
static int report(eng_ctx *ctx, const json_t *state, const nd_chat *chat, const nd_costs *c)
{
	const json_t *spec = json_object_get(state, "spec"), *pt, *f, *r;
	const json_t *repo = json_object_get(state, "repo");
	char filename[96];
	size_t i, k;
	buf md;
	int rc;

	buf_init(&md, 1 << 20);
	buf_printf(&md, "# %s\n\n%s\n\nRepository: `%s`, branch main at `%s`\n\n## Features\n\n",
		   jx_str(spec, "name"), jx_str(spec, "summary"), jx_str(repo, "path"),
		   jx_str(repo, "head"));
	json_array_foreach(json_object_get(spec, "features"), i, f) {
		buf_printf(&md, "- **%s**\n", jx_str(f, "name"));
		json_array_foreach(json_object_get(f, "acceptance"), k, r)
			buf_printf(&md, "  - %s\n", json_string_value(r));
	}
	buf_printf(&md, "\n## Tasks\n");
	json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
		const json_t *t =
		    json_object_get(json_object_get(state, "tasks"), jx_str(pt, "id"));
		const json_t *tests = json_object_get(t, "tests");

		buf_printf(&md, "\n### %s (`%s`): %s\n\n%s\n\n", jx_str(pt, "title"),
			   jx_str(pt, "id"), nd_task_state_label(jx_str(t, "status")),
			   jx_str(pt, "goal"));
		if (json_is_object(tests))
			buf_printf(&md, "Tests: %d passed of %d (%s).  \n", num(tests, "passed"),
				   num(tests, "total"), jx_str(tests, "verdict"));
		buf_printf(&md, "Rounds: %d; workers' tokens: %d in, %d out; $%.4f.\n",
			   num(t, "round"), num(t, "tokens_in"), num(t, "tokens_out"),
			   json_number_value(json_object_get(t, "cost_usd")));
		json_array_foreach(json_object_get(t, "reviews"), k, r) {
			size_t j;
			const json_t *cm;
			buf_printf(&md, "\n- review, round %d: **%s** — %s\n", num(r, "round"),
				   jx_str(r, "verdict"), jx_str(r, "summary"));
			json_array_foreach(json_object_get(r, "comments"), j, cm)
				buf_printf(&md, "  - %s%s%s\n", jx_str(cm, "file"),
					   *jx_str(cm, "file") ? ": " : "", jx_str(cm, "comment"));
		}
	}
	buf_printf(&md, "\n## Cost\n\n%lld tokens in, %lld out: $%.4f ($%.4f by the workers).\n",
		   (long long)c->tokens_in, (long long)c->tokens_out, c->cost_usd, c->workers_usd);
	snprintf(filename, sizeof(filename), "%s-report.md", jx_str(spec, "name"));
	rc = nd_document(ctx, chat, filename, buf_cstr(&md), "The whole story: spec, tasks, reviews, cost.");
	buf_free(&md);
	return rc;
}

int nd_finish(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *spec = json_object_get(state, "spec");
	const json_t *repo = json_object_get(state, "repo");
	const json_t *main_tests = json_object_get(state, "main");
	const json_t *published = json_object_get(repo, "published");
	const json_t *pt;
	json_t *up = json_object();
	nd_costs c;
	nd_chat chat;
	buf html;
	char tin[32], tout[32];
	int rc, merged = 0, skipped = 0;
	size_t i;

	(void)in;
	*update = up;
	if ((rc = nd_chat_get(state, NULL, &chat)) < 0)
		return rc;
	if ((rc = nd_costs_get(ctx, &c)) < 0)
		return rc;
	buf_init(&html, 0);
	buf_puts(&html, "🎉 <b>");
	nd_html_escape(&html, json_string_value(json_object_get(spec, "name")));
	buf_puts(&html, "</b> is built.\n\n<b>Repository</b> <code>");
	nd_html_escape(&html, json_string_value(json_object_get(repo, "path")));
	buf_puts(&html, "</code>, branch main");
	if (json_string_value(json_object_get(repo, "head")))
		buf_printf(&html, " at <code>%.12s</code>",
			   json_string_value(json_object_get(repo, "head")));
	buf_putc(&html, '\n');
	if (json_is_object(json_object_get(repo, "remote"))) {
		buf_puts(&html, "<b>Remote</b> ");
		nd_html_escape(&html, json_string_value(json_object_get(
					      json_object_get(repo, "remote"), "url")));
		if (json_is_true(json_object_get(published, "pushed")))
			buf_puts(&html, " (pushed)");
		else if (json_object_get(published, "error"))
			buf_puts(&html, " (<b>not pushed</b>: see the messages above)");
		buf_putc(&html, '\n');
	}
	buf_puts(&html, "\n<b>What was built</b>\n");
	json_array_foreach(json_object_get(json_object_get(state, "plan"), "tasks"), i, pt) {
		const json_t *t = json_object_get(json_object_get(state, "tasks"),
						  json_string_value(json_object_get(pt, "id")));
		const char *s = json_string_value(json_object_get(t, "status"));
		int is_merged = s && strcmp(s, "merged") == 0;

		merged += is_merged;
		skipped += !is_merged;
		buf_puts(&html, is_merged ? "✅ " : "⏭ ");
		nd_html_escape(&html, json_string_value(json_object_get(pt, "title")));
		if (!is_merged)
			buf_puts(&html, " (skipped)");
		else if (json_integer_value(json_object_get(t, "round")) > 1)
			buf_printf(&html, " (%lld review rounds)",
				   (long long)json_integer_value(json_object_get(t, "round")));
		buf_putc(&html, '\n');
	}
	if (json_is_object(main_tests)) {
		buf_printf(&html, "\n<b>Tests</b> %lld of %lld pass on main (<code>",
			   (long long)json_integer_value(json_object_get(main_tests, "passed")),
			   (long long)json_integer_value(json_object_get(main_tests, "total")));
		nd_html_escape(&html, json_string_value(json_object_get(main_tests, "command")));
		buf_puts(&html, "</code>, run on the merged result in a sandbox)\n");
	}
	nd_fmt_tokens(c.tokens_in, tin, sizeof(tin));
	nd_fmt_tokens(c.tokens_out, tout, sizeof(tout));
	buf_printf(&html, "\n<b>Cost</b> %s tokens in, %s out · $%.4f ($%.4f by the workers, "
			  "$%.4f for planning and review)",
		   tin, tout, c.cost_usd, c.workers_usd, c.cost_usd - c.workers_usd);
	rc = nd_say_html(ctx, &chat, buf_cstr(&html));
	if (rc == 0)
		rc = report(ctx, state, &chat, &c);
	if (rc == 0) {
		json_object_set_new(up, "stage", json_string("done"));
		json_object_set_new(
			up, "final",
			json_pack("{s:O?, s:O?, s:i, s:i, s:O?, s:I, s:I, s:f, s:f}", "repo",
				  json_object_get(repo, "path"), "head", json_object_get(repo, "head"),
				  "merged", merged, "skipped", skipped, "tests", main_tests,
				  "tokens_in", (json_int_t)c.tokens_in, "tokens_out",
				  (json_int_t)c.tokens_out, "cost_usd", c.cost_usd, "workers_usd",
				  c.workers_usd));
		nd_log(up, "done", "the project is built", NULL);
		rc = eng_goto(ctx, ENG_END);
	}
	buf_free(&html);
	return rc;
}
