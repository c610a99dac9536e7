/*
 * deliver — how a change ends, and its pull request followed: the deliver
 * node (nothing for a local repository; for a remote, the person's say —
 * push the branch, open a pull request, keep it here — or --pr's; the push
 * and the pull request through the spawner) and the follow node (what is
 * written on the pull request and what CI reports on it start a new round,
 * a task of its own; its merge updates the pull request; its merge or
 * closing ends the project).
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "nodes/nd_int.h"
#include "nodes/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PR_BODY_CAP (60 * 1024)
#define ROUND_GOAL_CAP 8000

static const nd_option ENDINGS[3] = {
	{"push", "⬆️ Push it"}, {"pr", "🔀 Open a pull request"}, {"keep", "📦 Keep it here"}};

/* --- the pull request's description --- */

static void body_spec(const nd_project *p, buf *b)
{
	const json_t *f, *a;
	size_t i, k;

	buf_printf(b, "%s\n\n## What changes\n\n", jx_str(p->spec, "summary"));
	json_array_foreach(json_object_get(p->spec, "features"), i, f) {
		buf_printf(b, "- **%s**%s%s\n", jx_str(f, "name"), *jx_str(f, "description") ? ": " : "",
			   jx_str(f, "description"));
		json_array_foreach(json_object_get(f, "acceptance"), k, a)
			buf_printf(b, "  - %s\n", json_string_value(a));
	}
}

static void body_plan(const nd_project *p, buf *b)
{
	buf_puts(b, "\n## The plan and its reviews\n\n");
	for (size_t i = 0; i < p->plan.ntasks; i++) {
		const nd_plan_task *pt = &p->plan.tasks[i];
		const nd_task *t = nd_task_find(p, pt->id);
		const json_t *r;
		size_t k;

		buf_printf(b, "%zu. **%s** (`%s`, %s): %s", i + 1, pt->title, pt->id,
			   t ? ND_STATUS[t->status].label : "?", pt->goal);
		for (size_t f = 0; f < pt->files.n; f++)
			buf_printf(b, "%s`%s`", f ? ", " : " Files: ", pt->files.v[f]);
		buf_putc(b, '\n');
		json_array_foreach(t ? t->reviews : NULL, k, r) {
			nd_review rv;
			if (nd_review_read(r, &rv) == 0)
				buf_printf(b, "   - review, round %d: **%s**: %s\n", rv.round,
					   rv.approve ? "approved" : "changes requested", rv.summary);
			nd_review_free(&rv);
		}
	}
}

static void pr_body(nd_step *s, buf *b)
{
	const nd_project *p = &s->p;
	char line[600];

	body_spec(p, b);
	body_plan(p, b);
	nd_baseline_line(p, line, sizeof(line));
	buf_printf(b, "\n## Tests\n\n`%s`", jx_str(p->spec, "test_command"));
	if (p->main.present)
		buf_printf(b, ": %d of %d pass on this branch, run in a sandbox on the merged result",
			   p->main.passed, p->main.total);
	buf_printf(b, ".\nBefore the change (the baseline): %s.\n", line);
	buf_printf(b, "\n---\nMade by orchestrator (project `%s`). Comments here, and CI failures "
		      "reported on this branch, start a new round on it.\n",
		   eng_ctx_thread_key(s->ctx));
	if (b->len > PR_BODY_CAP) {
		b->len = PR_BODY_CAP;
		b->data[b->len] = '\0';
		buf_puts(b, "\n\n[... cut: the description is longer than GitHub takes ...]\n");
	}
}

/* --- the requests --- */

static void next_id(nd_step *s, const char *what, char *out, size_t cap)
{
	char suffix[48];

	snprintf(suffix, sizeof(suffix), "%s%d", what, ++s->p.change.sends);
	nd_worker_id(s->ctx, NULL, suffix, out, cap);
}

static int push_request(nd_step *s)
{
	nd_change *ch = &s->p.change;
	const char *branch = nd_project_branch(&s->p);
	char id[160], msg[1400];
	json_t *req;
	int rc;

	next_id(s, "push", id, sizeof(id));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s}, s:s*}", "id", id, "mode",
			"publish", "task", "deliver", "project", eng_ctx_thread_key(s->ctx), "repo",
			s->p.repo.path, "target", branch, "mirror", ch->source, "meta", "factory", 1,
			"kind", "deliver", "repo_secret", ch->handle);
	rc = eng_emit(s->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	nd_str_set(&ch->spawn, id);
	nd_str_set(&ch->delivery, "push");
	snprintf(msg, sizeof(msg), "⬆️ Pushing %s to %s…", branch, ch->source);
	return nd_tell(s, msg);
}

static int pr_request(nd_step *s)
{
	nd_change *ch = &s->p.change;
	const json_t *f0 = json_array_get(json_object_get(s->p.spec, "features"), 0);
	size_t nf = json_array_size(json_object_get(s->p.spec, "features"));
	char id[160], head[160], title[256], msg[1400];
	json_t *req;
	buf body;
	int rc;

	buf_init(&body, 0);
	pr_body(s, &body);
	snprintf(head, sizeof(head), "orchestrator/%s-%lld", s->p.repo.name ? s->p.repo.name : "change",
		 (long long)eng_ctx_thread_id(s->ctx));
	snprintf(title, sizeof(title), "%s: %s%s", jx_str(s->p.spec, "name"), jx_str(f0, "name"),
		 nf > 1 ? " and more" : "");
	next_id(s, "pr", id, sizeof(id));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:b, s:s}, "
			"s:s*}",
			"id", id, "mode", "pr", "task", "deliver", "project",
			eng_ctx_thread_key(s->ctx), "repo", s->p.repo.path, "target",
			nd_project_branch(&s->p), "mirror", ch->source, "pr", "head",
			ch->pr_head ? ch->pr_head : head, "base", nd_project_branch(&s->p), "title",
			title, "body", buf_cstr(&body), "meta", "factory", 1, "kind", "deliver",
			"repo_secret", ch->handle);
	buf_free(&body);
	rc = eng_emit(s->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	nd_str_set(&ch->spawn, id);
	nd_str_set(&ch->delivery, "pr");
	if (ch->has_pr)
		snprintf(msg, sizeof(msg), "🔀 Updating pull request #%lld with round %d…",
			 (long long)ch->pr_number, ch->rounds);
	else
		snprintf(msg, sizeof(msg), "🔀 Pushing the branch %s to %s and opening a pull request…",
			 head, ch->source);
	return nd_tell(s, msg);
}

/* --- the person's say --- */

static int ask_ending(nd_step *s)
{
	nd_change *ch = &s->p.change;
	char key[48], q[1600];
	int rc;

	snprintf(key, sizeof(key), "deliver:%d", nd_next_ask(s));
	snprintf(q, sizeof(q), "The change is merged into %s of the project's repository%s%.12s. "
			       "Push it to %s (its %s moves forward), open a pull request there, or "
			       "keep it here (nothing is pushed)?",
		 nd_project_branch(&s->p), s->p.repo.head ? " at " : "",
		 s->p.repo.head ? s->p.repo.head : "", ch->source, nd_project_branch(&s->p));
	rc = nd_ask(s->ctx, &s->p.chat, key, q, ENDINGS, 3);
	if (rc == 0)
		nd_str_set(&ch->ask, key);
	return rc;
}

static int on_ending(nd_step *s, const json_t *v)
{
	nd_change *ch = &s->p.change;
	nd_decision d;

	nd_decide(s, ch->ask, v, &d);
	nd_str_set(&ch->ask, NULL);
	if (!d.option) {
		s->p.rest = 1;
		return nd_tell(s, "The question about the change's end expired. Send a message when "
				  "you are back; it is asked again.");
	}
	if (strcmp(d.option, "push") == 0)
		return push_request(s);
	if (strcmp(d.option, "pr") == 0)
		return pr_request(s);
	nd_str_set(&ch->delivery, "keep");
	ch->delivered = 1;
	return 0;
}

/* --- the results --- */

static int delivered(nd_step *s, const json_t *r)
{
	nd_change *ch = &s->p.change;
	const json_t *pr = json_object_get(r, "pr");
	int update = ch->has_pr;
	nd_result res;
	char msg[1600];
	int rc;

	nd_result_read(r, &res);
	nd_str_set(&ch->spawn, NULL);
	if (res.status != ND_W_DONE) {
		int was_pr = ch->delivery && strcmp(ch->delivery, "pr") == 0;
		snprintf(msg, sizeof(msg), "⚠️ The %s failed: %s", was_pr ? "pull request" : "push",
			 res.reason);
		nd_log(s->up, "deliver_failed", res.reason, NULL);
		nd_str_set(&ch->delivery, NULL);
		ch->pr = 0; /* ask the person */
		rc = nd_tell(s, msg);
		return rc < 0 ? rc : ask_ending(s);
	}
	ch->delivered = 1;
	if (json_is_object(pr)) {
		ch->has_pr = 1;
		ch->pr_number = json_integer_value(json_object_get(pr, "number"));
		nd_str_set(&ch->pr_url, jx_str(pr, "url"));
		nd_str_set(&ch->pr_head, jx_str(pr, "head"));
		nd_str_set(&ch->pr_state, "open");
		snprintf(msg, sizeof(msg), "🔀 Pull request #%lld %s: %s", (long long)ch->pr_number,
			 update ? "updated" : "opened", ch->pr_url);
		if (update)
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (round %d)", ch->rounds);
	} else {
		nd_str_set(&ch->pushed, res.commit);
		snprintf(msg, sizeof(msg), "⬆️ Pushed %s to %s (at %.12s).", nd_project_branch(&s->p),
			 ch->source, res.commit);
	}
	nd_log(s->up, "delivered", msg, NULL);
	rc = nd_tell(s, msg);
	/* a round on an open pull request: back to following it */
	if (rc == 0 && update)
		rc = nd_stage_move(&s->p, ND_STAGE_FOLLOW);
	return rc;
}

/* Waits for the push's or the pull request's result. */
static int await_delivery(nd_step *s)
{
	json_t *got = NULL, *in = NULL, *v, *mine = NULL;
	size_t i;
	int rc = eng_take(s->ctx, "worker", &got), taken = s->p.input.present;

	s->p.input.present = 0;
	json_array_foreach(rc == 0 ? got : NULL, i, v) {
		taken++;
		if (!mine && strcmp(jx_str(v, "id"), s->p.change.spawn) == 0)
			mine = v;
	}
	if (rc == 0)
		rc = eng_take(s->ctx, "input", &in);
	taken += (int)json_array_size(in);
	if (rc == 0 && (json_array_size(in) || (taken && !mine)))
		rc = json_array_size(in) ? nd_tell(s, "The change is being delivered; a moment.") : 0;
	if (rc == 0 && mine)
		rc = delivered(s, mine);
	json_decref(got);
	json_decref(in);
	if (rc == 0 && !taken) {
		eng_wait(s->ctx, "worker", NULL);
		eng_wait(s->ctx, "input", NULL);
		return ERR_WAIT;
	}
	return rc;
}

int nd_deliver(nd_step *s)
{
	nd_change *ch = &s->p.change;
	const char *keys[2] = {ch->ask, "input"};
	json_t *v = NULL;
	int which, rc = nd_need_chat(s);

	if (rc == 0 && s->p.stage == ND_STAGE_DEVELOP)
		rc = nd_stage_move(&s->p, ND_STAGE_DELIVER); /* every task is merged */
	if (rc < 0 || ch->delivered)
		return rc;
	if (ch->spawn)
		return await_delivery(s);
	if (ch->local) {
		nd_str_set(&ch->delivery, "keep");
		ch->delivered = 1;
		return 0;
	}
	if (ch->has_pr || ch->pr)
		return pr_request(s);
	if (!ch->ask)
		return ask_ending(s);
	rc = nd_gate(s->ctx, keys, 2, &v, &which);
	if (rc == 0 && which == 1)
		rc = nd_tell(s, "Push the change, open a pull request, or keep it here? The question "
				"above waits for your answer.");
	else if (rc == 0)
		rc = on_ending(s, v);
	json_decref(v);
	return rc;
}

/* --- following the pull request --- */

/* A new task for what was written and reported: round k of the pull
 * request, appended to the plan. */
static int new_round(nd_step *s, const char *goal, json_t *files)
{
	nd_change *ch = &s->p.change;
	json_t *plan = json_deep_copy(json_object_get(s->state, "plan")), *task;
	char id[16], title[200], branch[32];
	nd_task *t;

	ch->rounds++;
	snprintf(id, sizeof(id), "pr-%d", ch->rounds);
	snprintf(title, sizeof(title), "Pull request #%lld, round %d: what was asked on it",
		 (long long)ch->pr_number, ch->rounds);
	task = json_pack("{s:s, s:s, s:s, s:O, s:[s, s], s:[]}", "id", id, "title", title, "goal",
			 goal, "files", files, "checks",
			 "every comment and CI failure listed in the goal is addressed",
			 "the repository's tests pass, none that passed before fails", "deps");
	if (!json_is_object(plan) || !task ||
	    json_array_append_new(json_object_get(plan, "tasks"), task) < 0) {
		json_decref(plan);
		return err_set(ERR_NOMEM, "out of memory");
	}
	json_object_set_new(s->up, "plan", plan);
	t = nd_task_find(&s->p, id);
	t = t ? t : nd_task_add(&s->p, id);
	if (!t)
		return ERR_NOMEM;
	snprintf(branch, sizeof(branch), "task/%s", id);
	nd_str_set(&t->title, title);
	nd_str_set(&t->branch, branch);
	t->status = ND_TASK_QUEUED;
	t->round = t->attempt = 1;
	ch->delivered = 0;
	nd_str_set(&ch->delivery, "pr");
	return nd_stage_move(&s->p, ND_STAGE_DEVELOP);
}

/* One comment or CI failure as a line of the round's goal. */
static void round_line(const json_t *e, buf *goal, json_t *files)
{
	if (strcmp(jx_str(e, "kind"), "ci") == 0) {
		buf_printf(goal, "- CI: %s is %s: %s %s\n", jx_str(e, "context"), jx_str(e, "state"),
			   jx_str(e, "description"), jx_str(e, "url"));
		return;
	}
	buf_printf(goal, "- %s", jx_str(e, "user"));
	if (*jx_str(e, "path")) {
		buf_printf(goal, " on %s", jx_str(e, "path"));
		if (jx_int(e, "line") > 0)
			buf_printf(goal, ":%lld", jx_int(e, "line"));
		json_array_append_new(files, json_string(jx_str(e, "path")));
	}
	buf_printf(goal, ": %s\n", jx_str(e, "body"));
}

static int on_forge(nd_step *s, const json_t *events)
{
	nd_change *ch = &s->p.change;
	json_t *files = json_array(), *e;
	char msg[1600];
	size_t i;
	buf goal;
	int rc = 0, n = 0;

	buf_init(&goal, 0);
	buf_printf(&goal, "Address what was written and reported on pull request #%lld:\n",
		   (long long)ch->pr_number);
	json_array_foreach(events, i, e) {
		const char *kind = jx_str(e, "kind");
		if (strcmp(kind, "merged") == 0 || strcmp(kind, "closed") == 0) {
			nd_str_set(&ch->pr_state, kind);
			snprintf(msg, sizeof(msg), strcmp(kind, "merged") == 0
				 ? "🎉 Pull request #%lld was merged. The change is done."
				 : "Pull request #%lld was closed without a merge. The project ends here; "
				   "its branch and the project's repository stay.",
				 (long long)ch->pr_number);
			nd_log(s->up, "pull_request", msg, NULL);
			rc = nd_stage_move(&s->p, ND_STAGE_DONE);
			if (rc == 0)
				rc = nd_tell(s, msg);
			break;
		}
		round_line(e, &goal, files);
		n++;
	}
	if (rc == 0 && n && s->p.stage == ND_STAGE_FOLLOW) {
		if (goal.len > ROUND_GOAL_CAP) {
			/* at a line's end: never inside a character */
			char *nl = memrchr(goal.data, '\n', ROUND_GOAL_CAP);
			goal.len = nl ? (size_t)(nl - goal.data) + 1 : 0;
			goal.data[goal.len] = '\0';
			buf_puts(&goal, "- (more was written: read the pull request)\n");
		}
		snprintf(msg, sizeof(msg), "💬 %d new comment%s or CI failure%s on pull request #%lld: "
					   "round %d starts on its branch.",
			 n, n == 1 ? "" : "s", n == 1 ? "" : "s", (long long)ch->pr_number,
			 ch->rounds + 1);
		rc = new_round(s, buf_cstr(&goal), files);
		if (rc == 0)
			rc = nd_tell(s, msg);
	}
	json_decref(files);
	buf_free(&goal);
	return rc;
}

int nd_follow(nd_step *s)
{
	nd_change *ch = &s->p.change;
	json_t *events = NULL, *in = NULL;
	char msg[1200];
	int rc = nd_need_chat(s), talked = s->p.input.present;

	s->p.input.present = 0;
	if (rc == 0)
		rc = eng_take(s->ctx, "forge", &events);
	if (rc == 0)
		rc = eng_take(s->ctx, "input", &in);
	talked += (int)json_array_size(in);
	if (rc == 0 && talked) {
		snprintf(msg, sizeof(msg), "Pull request #%lld is open: %s\nComments there and failing "
					   "CI start a new round; its merge or closing ends the project. "
					   "/cancel stops following it.",
			 (long long)ch->pr_number, ch->pr_url ? ch->pr_url : "");
		rc = nd_tell(s, msg);
	}
	if (rc == 0 && json_array_size(events))
		rc = on_forge(s, events);
	if (rc == 0 && !talked && !json_array_size(events)) {
		eng_wait(s->ctx, "forge", NULL);
		eng_wait(s->ctx, "input", NULL);
		rc = ERR_WAIT;
	}
	json_decref(events);
	json_decref(in);
	return rc;
}
