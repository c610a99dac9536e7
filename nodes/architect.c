/*
 * architect — from the approved spec to a repository and a plan: the
 * architect node (the model's plan; the repository and its scaffold the
 * first time; its publication to the project's remote) and plan_gate.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "nodes/nd_int.h"
#include "nodes/prompt.h"
#include "nodes/repo.h"
#include "nodes/spec.h"
#include "secrets/resource.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "shop-api" from a spec name: lowercase letters, digits, dashes. */
static void slug(const char *name, char *out, size_t cap)
{
	size_t k = 0;
	int dash = 0;

	for (const char *p = name ? name : ""; *p && k + 1 < cap && k < 40; p++) {
		unsigned char c = (unsigned char)*p;
		if (isalnum(c)) {
			if (dash && k > 0)
				out[k++] = '-';
			dash = 0;
			if (k + 1 < cap)
				out[k++] = (char)tolower(c);
		} else {
			dash = 1;
		}
	}
	out[k] = '\0';
	if (k == 0)
		snprintf(out, cap, "project");
}

/* A handle of this project, kind git, live: the found one into found[]
 * or the reason it cannot be used into err[]. */
static void check_handle(pg_conn *c, const char *handle, const char *project, char *found,
			 char *err, size_t cap)
{
	sec_res_info info;

	if (sec_handle_check(handle) < 0 || sec_res_show(c, handle, &info) < 0)
		snprintf(err, cap, "the handle %s does not exist", handle);
	else if (strcmp(info.scope, project) != 0)
		snprintf(err, cap, "the handle %s belongs to another project", handle);
	else if (strcmp(info.kind, "git") != 0)
		snprintf(err, cap, "the handle %s is not of kind git", handle);
	else if (info.revoked_ms)
		snprintf(err, cap, "the handle %s is revoked", handle);
	else
		snprintf(found, SEC_HANDLE_LEN + 1, "%s", handle);
}

/* The project's handle of the configured secret (ORCH_REMOTE_SECRET),
 * allocated once. */
static void configured_handle(pg_conn *c, const nd_app *app, const char *project, char *found,
			      char *err, size_t cap)
{
	sec_res_info *list = NULL;
	size_t n = 0;

	if (sec_res_list(c, project, 0, &list, &n) == 0)
		for (size_t i = 0; i < n && !found[0]; i++)
			if (strcmp(list[i].secret, app->cfg.remote_secret) == 0 &&
			    strcmp(list[i].kind, "git") == 0)
				snprintf(found, SEC_HANDLE_LEN + 1, "%s", list[i].handle);
	free(list);
	if (!found[0]) {
		sec_res_spec rs = {project, "git", app->cfg.remote_secret, NULL,
				   "the project's remote (ORCH_REMOTE_SECRET)", "node:architect"};
		if (sec_res_allocate(c, &rs, found) < 0)
			snprintf(err, cap, "no handle for ORCH_REMOTE_SECRET: %s", err_last());
	}
}

/* The remote the project publishes to, into the repository: the spec's
 * (checked: a handle of this project, kind git, live), else the
 * configured one (a handle of the configured secret). An unusable remote
 * is kept with the reason it is not used. */
static void remote_for(nd_step *s, const char *name, nd_repo *repo)
{
	const json_t *r = json_object_get(s->p.spec, "remote");
	const char *url = json_string_value(json_object_get(r, "url"));
	const char *handle = json_string_value(json_object_get(r, "handle"));
	const char *project = eng_ctx_thread_key(s->ctx);
	char tmpl[1100], err[400] = "", found[SEC_HANDLE_LEN + 1] = "";
	pg_conn *c = NULL;

	if (!url && s->app->cfg.remote_url[0]) {
		/* ORCH_REMOTE_URL with {name} */
		const char *at = strstr(s->app->cfg.remote_url, "{name}");
		if (at)
			snprintf(tmpl, sizeof(tmpl), "%.*s%s%s", (int)(at - s->app->cfg.remote_url),
				 s->app->cfg.remote_url, name, at + 6);
		else
			snprintf(tmpl, sizeof(tmpl), "%s", s->app->cfg.remote_url);
		url = tmpl;
		handle = NULL;
	}
	if (!url)
		return;
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "ssh://", 6) != 0 && url[0] != '/')
		snprintf(err, sizeof(err), "%s is not an http(s):// or ssh:// URL", url);
	else if (strchr(url, '@') && strncmp(url, "ssh://", 6) != 0)
		snprintf(err, sizeof(err), "the remote's URL must not hold credentials: grant them "
					   "as a resource handle (kind git)");
	if (!err[0] && pg_pool_acquire(s->app->pool, 10000, &c) < 0)
		snprintf(err, sizeof(err), "%s", err_last());
	if (!err[0] && handle)
		check_handle(c, handle, project, found, err, sizeof(err));
	else if (!err[0] && s->app->cfg.remote_secret[0] && url == tmpl)
		configured_handle(c, s->app, project, found, err, sizeof(err));
	pg_pool_release(s->app->pool, c);
	err_clear();
	repo->has_remote = 1;
	nd_str_set(&repo->remote_url, url);
	nd_str_set(&repo->remote_error, err[0] ? err : NULL);
	nd_str_set(&repo->remote_handle, !err[0] && found[0] ? found : NULL);
}

static json_t *publish_request(nd_step *s)
{
	const nd_repo *repo = &s->p.repo;
	char id[128];

	nd_worker_id(s->ctx, NULL, "publish", id, sizeof(id));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s}, s:s*}", "id", id,
			 "mode", "publish", "task", "main", "project", eng_ctx_thread_key(s->ctx),
			 "repo", repo->path, "target", "main", "mirror", repo->remote_url, "meta",
			 "factory", 1, "kind", "publish", "repo_secret", repo->remote_handle);
}

/* Creates the repository with the plan's scaffold; fills the state's repo
 * and asks the spawner to publish it when it has a usable remote. */
static int create_repo(nd_step *s, const nd_plan *plan)
{
	nd_repo *repo = &s->p.repo;
	char name[48], path[1200], head[41], msg[200];
	nd_repo_file *files = calloc(plan->nfiles + 1, sizeof(nd_repo_file));
	int rc;

	if (!files)
		return err_set(ERR_NOMEM, "out of memory");
	slug(jx_str(s->p.spec, "name"), name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s-%lld.git", s->app->cfg.repos_dir, name,
		 (long long)eng_ctx_thread_id(s->ctx));
	files[0].path = "README.md";
	files[0].content = plan->readme;
	for (size_t i = 0; i < plan->nfiles; i++) {
		files[i + 1].path = plan->files[i].path;
		files[i + 1].content = plan->files[i].content;
	}
	snprintf(msg, sizeof(msg), "%s: the scaffold\n\nREADME, build and test command, by "
				   "orchestrator's architect.\n", name);
	rc = nd_repo_create(path, files, plan->nfiles + 1, msg, head);
	free(files);
	if (rc < 0)
		return rc;
	repo->present = 1;
	nd_str_set(&repo->path, path);
	nd_str_set(&repo->branch, "main");
	nd_str_set(&repo->head, head);
	nd_str_set(&repo->name, name);
	remote_for(s, name, repo);
	if (repo->has_remote && !repo->remote_error)
		rc = eng_emit(s->ctx, "spawn", NULL, publish_request(s));
	if (rc == 0)
		nd_log(s->up, "repository", path, json_pack("{s:s}", "head", head));
	return rc;
}

/* A change's prompts: the spec, the baseline and the repository (its
 * selection for the spec), and what to change when planning again. */
static int change_prompts(nd_step *s, buf *sys, buf *task)
{
	int replan = s->p.plan_version > 0 || s->p.plan_feedback;
	char *spec_s = json_dumps(s->p.spec, JSON_INDENT(2));
	char *plan_s = replan ? json_dumps(json_object_get(s->state, "plan"), JSON_INDENT(2)) : NULL;
	char base[600];
	const char *rvars[] = {"plan", plan_s ? plan_s : "(none)", "feedback",
			       s->p.plan_feedback ? s->p.plan_feedback : "(no details given)", NULL};
	buf rp, ctx, query;
	int rc = 0;

	buf_init(&rp, 0);
	buf_init(&ctx, 0);
	buf_init(&query, 0);
	nd_baseline_line(&s->p, base, sizeof(base));
	buf_printf(&query, "%s\n", spec_s ? spec_s : "");
	nd_change_context(s, buf_cstr(&query), &ctx);
	if (replan)
		rc = nd_prompt("architect_change_replan.md", rvars, &rp);
	if (rc == 0) {
		const char *vars[] = {"spec", spec_s, "source", s->p.change.source, "branch",
				      nd_project_branch(&s->p), "baseline", base, "replan",
				      buf_cstr(&rp), "context", buf_cstr(&ctx), NULL};
		rc = nd_prompt("architect_change.md", NULL, sys);
		if (rc == 0)
			rc = nd_prompt("architect_change_task.md", vars, task);
	}
	buf_free(&rp);
	buf_free(&ctx);
	buf_free(&query);
	free(spec_s);
	free(plan_s);
	return rc;
}

/* The architect's prompts: the system one and the task (with what to
 * change when planning again). */
static int prompts(nd_step *s, buf *sys, buf *task)
{
	int replan = s->p.repo.path != NULL;
	char *spec_s = json_dumps(s->p.spec, JSON_INDENT(2));
	char *plan_s = replan ? json_dumps(json_object_get(s->state, "plan"), JSON_INDENT(2)) : NULL;
	const char *rvars[] = {"repo", s->p.repo.path, "plan", plan_s, "feedback",
			       s->p.plan_feedback ? s->p.plan_feedback : "(no details given)", NULL};
	buf rp;
	int rc = 0;

	if (s->p.change.present) {
		free(spec_s);
		free(plan_s);
		return change_prompts(s, sys, task);
	}
	buf_init(&rp, 0);
	if (replan || s->p.plan_feedback)
		rc = nd_prompt("architect_replan.md", rvars, &rp);
	if (rc == 0) {
		const char *vars[] = {"spec", spec_s, "replan", buf_cstr(&rp), NULL};
		rc = nd_prompt("architect_system.md", NULL, sys);
		if (rc == 0)
			rc = nd_prompt("architect_task.md", vars, task);
	}
	buf_free(&rp);
	free(spec_s);
	free(plan_s);
	return rc;
}

/* Asks the model for the plan; one that is no DAG is sent back once with
 * what is wrong. */
static int ask_plan(nd_step *s, const char *sys, const char *task, nd_plan *plan,
		    llm_response *resp)
{
	const char *schema = s->p.change.present ? "change_plan" : "plan";
	llm_message msgs[4];
	llm_call call;
	char user[32], *raw = NULL;
	buf extra;
	int rc;

	buf_init(&extra, 0);
	nd_llm_call(&call, s, "architect", user);
	memset(msgs, 0, sizeof(msgs));
	msgs[0].role = "system";
	msgs[0].content = sys;
	msgs[1].role = "user";
	msgs[1].content = task;
	for (int ask = 0;; ask++) {
		rc = nd_llm_json(s, &call, msgs, ask == 0 ? 2 : 4, nd_schema(schema), "plan", resp);
		if (rc < 0)
			break;
		nd_plan_free(plan);
		rc = s->p.change.present ? nd_change_plan_from_json(resp->json, plan)
					 : nd_plan_from_json(resp->json, plan);
		if (rc == 0 || ask == 1)
			break;
		free(raw);
		raw = json_dumps(resp->json, JSON_COMPACT);
		buf_reset(&extra);
		buf_printf(&extra, "This plan cannot be used: %s.", err_last());
		{
			/* what "deps" may name: a weak model invents ids */
			const json_t *t;
			size_t i;
			buf_puts(&extra, " The tasks' ids are:");
			json_array_foreach(json_object_get(resp->json, "tasks"), i, t)
				buf_printf(&extra, "%s %s", i ? "," : "",
					   json_string_value(json_object_get(t, "id")) ?: "?");
			buf_puts(&extra, "; \"deps\" may name only those. Send the whole corrected plan.");
		}
		msgs[2].role = "assistant";
		msgs[2].content = raw ? raw : "";
		msgs[3].role = "user";
		msgs[3].content = buf_cstr(&extra);
		log_info("factory", "thread %s: the plan was not usable (%s); asking again",
			 eng_ctx_thread_key(s->ctx), err_last());
	}
	free(raw);
	buf_free(&extra);
	return rc;
}

/* A change's plan: where the work goes and the files it touches, those
 * that exist and those it creates. */
static void change_lines(nd_step *s, const json_t *plan_json, buf *html)
{
	const char *branch = nd_project_branch(&s->p);
	const json_t *t, *f;
	json_t *seen = json_object();
	size_t i, k;
	buf fresh, old;

	buf_init(&fresh, 0);
	buf_init(&old, 0);
	buf_puts(html, "Repository: <code>");
	nd_html_escape(html, s->p.repo.path);
	buf_puts(html, "</code>, a copy of ");
	nd_html_escape(html, s->p.change.source);
	buf_printf(html, " (%s at <code>%.12s</code>)\n", branch,
		   s->p.change.base_commit ? s->p.change.base_commit : "");
	json_array_foreach(json_object_get(plan_json, "tasks"), i, t)
		json_array_foreach(json_object_get(t, "files"), k, f) {
			const char *path = json_string_value(f);
			buf *into;
			if (!path || json_object_get(seen, path))
				continue;
			into = nd_repo_has(s->p.repo.path, branch, path) ? &old : &fresh;
			json_object_set_new(seen, path, json_true());
			buf_puts(into, into->len ? ", " : "");
			nd_html_escape(into, path);
		}
	if (old.len)
		buf_printf(html, "Files it changes: %s\n", buf_cstr(&old));
	if (fresh.len)
		buf_printf(html, "Files it creates: %s\n", buf_cstr(&fresh));
	json_decref(seen);
	buf_free(&fresh);
	buf_free(&old);
}

/* Shows the plan (and, the first time, the repository) and asks. */
static int show_plan(nd_step *s, const json_t *plan_json, size_t ntasks, int fresh, int v)
{
	const nd_repo *repo = &s->p.repo;
	char key[32], q[200];
	buf html;
	int rc;

	buf_init(&html, 0);
	buf_printf(&html, "<b>Plan, version %d</b> — %zu task%s\n", v, ntasks,
		   ntasks == 1 ? "" : "s");
	if (fresh) {
		buf_puts(&html, "Repository: <code>");
		nd_html_escape(&html, repo->path);
		buf_puts(&html, "</code> (main, with README, build and test command)\n");
		if (repo->has_remote) {
			buf_puts(&html, "Remote: ");
			nd_html_escape(&html, repo->remote_url);
			if (repo->remote_error) {
				buf_puts(&html, " — <b>not used</b>: ");
				nd_html_escape(&html, repo->remote_error);
			}
			buf_putc(&html, '\n');
		}
	}
	if (s->p.change.present)
		change_lines(s, plan_json, &html);
	buf_putc(&html, '\n');
	nd_plan_html(plan_json, &html);
	snprintf(key, sizeof(key), "plan:%d", v);
	snprintf(q, sizeof(q), "Start building with this plan (%zu task%s)?", ntasks,
		 ntasks == 1 ? "" : "s");
	rc = nd_tell_html(s, buf_cstr(&html));
	if (rc == 0)
		rc = nd_ask(s->ctx, &s->p.chat, key, q, ND_PROPOSAL_OPTS, 3);
	buf_free(&html);
	return rc;
}

int nd_architect(nd_step *s)
{
	int fresh = s->p.repo.path == NULL, v = s->p.plan_version + 1;
	llm_response resp;
	nd_plan plan;
	buf sys, task;
	json_t *plan_json = NULL;
	int rc = nd_need_chat(s);

	memset(&plan, 0, sizeof(plan));
	llm_response_init(&resp);
	buf_init(&sys, 0);
	buf_init(&task, 0);
	if (rc == 0 && !nd_schema("plan"))
		rc = ERR_INTERNAL;
	if (rc == 0 && !s->p.spec)
		rc = err_set(ERR_INVALID, "the architect has no spec");
	if (rc == 0)
		rc = prompts(s, &sys, &task);
	if (rc < 0)
		goto done;
	rc = ask_plan(s, buf_cstr(&sys), buf_cstr(&task), &plan, &resp);
	if (rc == ERR_BUDGET) {
		rc = nd_ask_budget(s, &resp.budget, "architect");
		goto done;
	}
	if (rc < 0) {
		rc = nd_llm_failed(s, rc == ERR_INVALID ? ERR_PARSE : rc, "Planning the project");
		goto done;
	}
	plan_json = nd_plan_to_json(&plan);
	if (!plan_json) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = fresh ? create_repo(s, &plan) : 0;
	if (rc < 0) {
		rc = nd_llm_failed(s, rc, "Creating the repository");
		goto done;
	}
	json_object_set_new(plan_json, "version", json_integer(v));
	rc = show_plan(s, plan_json, plan.ntasks, fresh, v);
	if (rc == 0)
		rc = nd_stage_move(&s->p, ND_STAGE_PLAN_REVIEW);
	if (rc < 0)
		goto done;
	nd_log(s->up, "plan_proposed", plan.summary,
	       json_pack("{s:i, s:i}", "version", v, "tasks", (int)plan.ntasks));
	json_object_set_new(s->up, "plan", plan_json);
	plan_json = NULL;
	s->p.plan_version = v;
	nd_str_set(&s->p.plan_feedback, NULL);
done:
	json_decref(plan_json);
	nd_plan_free(&plan);
	llm_response_free(&resp);
	buf_free(&sys);
	buf_free(&task);
	return rc;
}

int nd_plan_gate(nd_step *s)
{
	char key[32], msg[300];
	json_t *v = NULL;
	nd_decision d;
	int which, rc = nd_proposal_gate(s, "plan", s->p.plan_version, key, sizeof(key), &v, &which);

	if (rc < 0)
		return rc;
	if (which == 1) {
		nd_str_set(&s->p.plan_feedback, jx_str(v, "text"));
		json_decref(v);
		rc = nd_stage_move(&s->p, ND_STAGE_ARCHITECT);
		return rc < 0 ? rc : nd_tell(s, "Revising the plan…");
	}
	nd_decide(s, key, v, &d);
	json_decref(v);
	switch (d.opt) {
	case ND_OPT_NONE:
		s->p.rest = 1;
		return nd_tell(s, "The plan is still waiting for your approval. Send a message when "
				  "you are back (a change to the plan), or /cancel.");
	case ND_OPT_CHANGE: /* listen for what to change */
		return nd_tell(s, "What should change in the plan?");
	case ND_OPT_APPROVE:
		break;
	default:
		rc = nd_stage_move(&s->p, ND_STAGE_CANCELLED);
		return rc < 0 ? rc : nd_tell(s, "🛑 Cancelled. The repository stays where it is; send "
					       "/new <idea> to start another project.");
	}
	for (size_t i = 0; i < s->p.plan.ntasks; i++) {
		const nd_plan_task *pt = &s->p.plan.tasks[i];
		nd_task *t = nd_task_find(&s->p, pt->id);
		char branch[64];

		t = t ? t : nd_task_add(&s->p, pt->id);
		if (!t)
			return ERR_NOMEM;
		snprintf(branch, sizeof(branch), "task/%s", pt->id);
		nd_str_set(&t->title, pt->title);
		nd_str_set(&t->branch, branch);
		t->status = ND_TASK_QUEUED;
		t->round = t->attempt = 1;
		t->failures = 0;
	}
	rc = nd_stage_move(&s->p, ND_STAGE_DEVELOP);
	snprintf(msg, sizeof(msg), "👍 Plan approved. Building: %zu task%s, up to %d worker%s at "
				   "once.", s->p.plan.ntasks, s->p.plan.ntasks == 1 ? "" : "s",
		 s->app->cfg.max_workers, s->app->cfg.max_workers == 1 ? "" : "s");
	return rc < 0 ? rc : nd_tell(s, msg);
}
