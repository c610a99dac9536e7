/*
 * architect — from the approved spec to a repository and a plan: the
 * architect node (the model's plan; the repository and its scaffold the
 * first time; its publication to the project's remote) and plan_gate.
 */
#include "core/err.h"
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

/* The remote the project publishes to: the spec's (checked: a handle of
 * this project, kind git, live), else the configured one (a handle of the
 * configured secret, allocated for the project once). Returns {"url",
 * "handle"?} or {"url", "error"} (owned), or NULL for none. */
static json_t *remote_for(eng_ctx *ctx, const json_t *spec, const char *name)
{
	nd_app *app = nd_app_of(ctx);
	const json_t *r = json_object_get(spec, "remote");
	const char *url = json_string_value(json_object_get(r, "url"));
	const char *handle = json_string_value(json_object_get(r, "handle"));
	const char *project = eng_ctx_thread_key(ctx);
	char tmpl[1100], err[400] = "", found[SEC_HANDLE_LEN + 1] = "";
	pg_conn *c = NULL;
	json_t *out;

	if (!url && app->cfg.remote_url[0]) {
		/* ORCH_REMOTE_URL with {name} */
		const char *at = strstr(app->cfg.remote_url, "{name}");
		if (at)
			snprintf(tmpl, sizeof(tmpl), "%.*s%s%s", (int)(at - app->cfg.remote_url),
				 app->cfg.remote_url, name, at + 6);
		else
			snprintf(tmpl, sizeof(tmpl), "%s", app->cfg.remote_url);
		url = tmpl;
		handle = NULL;
	}
	if (!url)
		return NULL;
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "ssh://", 6) != 0 && url[0] != '/')
		snprintf(err, sizeof(err), "%s is not an http(s):// or ssh:// URL", url);
	else if (strchr(url, '@') && strncmp(url, "ssh://", 6) != 0)
		snprintf(err, sizeof(err), "the remote's URL must not hold credentials: grant them "
					   "as a resource handle (kind git)");
	if (!err[0] && pg_pool_acquire(app->pool, 10000, &c) < 0)
		snprintf(err, sizeof(err), "%s", err_last());
	if (!err[0] && handle) {
		sec_res_info info;
		if (sec_handle_check(handle) < 0 || sec_res_show(c, handle, &info) < 0)
			snprintf(err, sizeof(err), "the handle %s does not exist", handle);
		else if (strcmp(info.scope, project) != 0)
			snprintf(err, sizeof(err), "the handle %s belongs to another project", handle);
		else if (strcmp(info.kind, "git") != 0)
			snprintf(err, sizeof(err), "the handle %s is not of kind git", handle);
		else if (info.revoked_ms)
			snprintf(err, sizeof(err), "the handle %s is revoked", handle);
		else
			snprintf(found, sizeof(found), "%s", handle);
	} else if (!err[0] && app->cfg.remote_secret[0] && url == tmpl) {
		sec_res_info *list = NULL;
		size_t n = 0;

		/* one handle per project for the configured secret, made once */
		if (sec_res_list(c, project, 0, &list, &n) == 0)
			for (size_t i = 0; i < n && !found[0]; i++)
				if (strcmp(list[i].secret, app->cfg.remote_secret) == 0 &&
				    strcmp(list[i].kind, "git") == 0)
					snprintf(found, sizeof(found), "%s", list[i].handle);
		free(list);
		if (!found[0]) {
			sec_res_spec rs = {project, "git", app->cfg.remote_secret, NULL,
					   "the project's remote (ORCH_REMOTE_SECRET)", "node:architect"};
			if (sec_res_allocate(c, &rs, found) < 0)
				snprintf(err, sizeof(err), "no handle for ORCH_REMOTE_SECRET: %s",
					 err_last());
		}
	}
	pg_pool_release(app->pool, c);
	err_clear();
	out = json_pack("{s:s}", "url", url);
	if (out && err[0])
		json_object_set_new(out, "error", json_string(err));
	else if (out && found[0])
		json_object_set_new(out, "handle", json_string(found));
	return out;
}

static json_t *publish_request(eng_ctx *ctx, const json_t *repo)
{
	const json_t *remote = json_object_get(repo, "remote");
	char id[128];
	json_t *r;

	snprintf(id, sizeof(id), "f%lld.%lld.publish", (long long)eng_ctx_thread_id(ctx),
		 (long long)eng_ctx_run_id(ctx));
	r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s}}", "id", id, "mode",
		      "publish", "task", "main", "project", eng_ctx_thread_key(ctx), "repo",
		      json_string_value(json_object_get(repo, "path")), "target", "main", "mirror",
		      json_string_value(json_object_get(remote, "url")), "meta", "factory", 1, "kind",
		      "publish");
	if (r && json_string_value(json_object_get(remote, "handle")))
		json_object_set(r, "repo_secret", json_object_get(remote, "handle"));
	return r;
}

/* Creates the repository with the plan's scaffold; fills `repo`. */
static int create_repo(eng_ctx *ctx, const json_t *spec, const nd_plan *plan, json_t *repo)
{
	nd_app *app = nd_app_of(ctx);
	char name[48], path[1200], head[41], msg[200];
	nd_repo_file *files = calloc(plan->nfiles + 1, sizeof(nd_repo_file));
	json_t *remote;
	int rc;

	if (!files)
		return err_set(ERR_NOMEM, "out of memory");
	slug(json_string_value(json_object_get(spec, "name")), name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s-%lld.git", app->cfg.repos_dir, name,
		 (long long)eng_ctx_thread_id(ctx));
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
	json_object_set_new(repo, "path", json_string(path));
	json_object_set_new(repo, "branch", json_string("main"));
	json_object_set_new(repo, "head", json_string(head));
	json_object_set_new(repo, "name", json_string(name));
	remote = remote_for(ctx, spec, name);
	if (remote)
		json_object_set_new(repo, "remote", remote);
	return 0;
}

int nd_architect(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *spec = json_object_get(state, "spec");
	const json_t *old_repo = json_object_get(state, "repo");
	const char *feedback = json_string_value(json_object_get(state, "plan_feedback"));
	const json_t *schema = nd_schema("plan");
	int replan = json_is_string(json_object_get(old_repo, "path"));
	llm_response resp;
	llm_call call;
	llm_message msgs[4];
	nd_plan plan;
	nd_chat chat;
	buf sys, task, extra, html;
	json_t *up = json_object(), *plan_json = NULL, *repo = NULL;
	char user[32], *raw = NULL;
	int rc = 0, v;

	(void)in;
	memset(&plan, 0, sizeof(plan));
	llm_response_init(&resp);
	buf_init(&sys, 0);
	buf_init(&task, 0);
	buf_init(&extra, 0);
	buf_init(&html, 0);
	*update = up;
	if (!up || !schema) {
		rc = up ? ERR_INTERNAL : err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd_chat_get(state, NULL, &chat)) < 0)
		goto done;
	if (!json_is_object(spec)) {
		rc = err_set(ERR_INVALID, "the architect has no spec");
		goto done;
	}
	{
		char *spec_s = json_dumps(spec, JSON_INDENT(2));
		char *plan_s = replan ? json_dumps(json_object_get(state, "plan"), JSON_INDENT(2))
				      : NULL;
		buf rp;
		const char *rvars[] = {"repo", json_string_value(json_object_get(old_repo, "path")),
				       "plan", plan_s, "feedback",
				       feedback ? feedback : "(no details given)", NULL};

		buf_init(&rp, 0);
		if (replan || feedback)
			rc = nd_prompt("architect_replan.md", rvars, &rp);
		if (rc == 0) {
			const char *vars[] = {"spec", spec_s, "replan", buf_cstr(&rp), NULL};
			rc = nd_prompt("architect_system.md", NULL, &sys);
			if (rc == 0)
				rc = nd_prompt("architect_task.md", vars, &task);
		}
		buf_free(&rp);
		free(spec_s);
		free(plan_s);
		if (rc < 0)
			goto done;
	}
	nd_llm_call(&call, ctx, state, "architect", user);
	memset(msgs, 0, sizeof(msgs));
	msgs[0].role = "system";
	msgs[0].content = buf_cstr(&sys);
	msgs[1].role = "user";
	msgs[1].content = buf_cstr(&task);
	for (int ask = 0;; ask++) {
		rc = nd_llm_json(ctx, &call, msgs, ask == 0 ? 2 : 4, schema, "plan", &resp);
		if (rc < 0)
			break;
		nd_plan_free(&plan);
		rc = nd_plan_from_json(resp.json, &plan);
		if (rc == 0 || ask == 1)
			break;
		/* a plan that is no DAG: once more, with what is wrong */
		free(raw);
		raw = json_dumps(resp.json, JSON_COMPACT);
		buf_reset(&extra);
		buf_printf(&extra, "This plan cannot be used: %s.", err_last());
		{
			/* what "deps" may name: a weak model invents ids */
			const json_t *t;
			size_t i;
			buf_puts(&extra, " The tasks' ids are:");
			json_array_foreach(json_object_get(resp.json, "tasks"), i, t)
				buf_printf(&extra, "%s %s", i ? "," : "",
					   json_string_value(json_object_get(t, "id")) ?: "?");
			buf_puts(&extra, "; \"deps\" may name only those. Send the whole corrected plan.");
		}
		msgs[2].role = "assistant";
		msgs[2].content = raw ? raw : "";
		msgs[3].role = "user";
		msgs[3].content = buf_cstr(&extra);
		log_info("factory", "thread %s: the plan was not usable (%s); asking again",
			 eng_ctx_thread_key(ctx), err_last());
	}
	if (rc == ERR_BUDGET) {
		rc = nd_ask_budget(ctx, state, &chat, up, &resp.budget, "architect");
		goto done;
	}
	if (rc < 0) {
		rc = nd_llm_failed(ctx, &chat, up, rc == ERR_INVALID ? ERR_PARSE : rc,
				   "Planning the project");
		if (rc == 0)
			rc = eng_goto(ctx, ENG_END);
		goto done;
	}
	plan_json = nd_plan_to_json(&plan);
	repo = replan ? json_deep_copy(old_repo) : json_object();
	if (!plan_json || !repo) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (!replan) {
		rc = create_repo(ctx, spec, &plan, repo);
		if (rc < 0) {
			rc = nd_llm_failed(ctx, &chat, up, rc, "Creating the repository");
			if (rc == 0)
				rc = eng_goto(ctx, ENG_END);
			goto done;
		}
		if (json_is_object(json_object_get(repo, "remote")) &&
		    !json_object_get(json_object_get(repo, "remote"), "error"))
			rc = eng_emit(ctx, "spawn", NULL, publish_request(ctx, repo));
		if (rc < 0)
			goto done;
		nd_log(up, "repository", json_string_value(json_object_get(repo, "path")),
		       json_pack("{s:O}", "head", json_object_get(repo, "head")));
	}
	v = (int)json_integer_value(json_object_get(state, "plan_version")) + 1;
	json_object_set_new(plan_json, "version", json_integer(v));
	{
		char key[32], q[200];
		const json_t *remote = json_object_get(repo, "remote");
		nd_option opts[3] = {{"approve", "✅ Approve"}, {"change", "✏️ Change"},
				     {"cancel", "🛑 Cancel"}};

		buf_printf(&html, "<b>Plan, version %d</b> — %zu task%s\n", v, plan.ntasks,
			   plan.ntasks == 1 ? "" : "s");
		if (!replan) {
			buf_puts(&html, "Repository: <code>");
			nd_html_escape(&html, json_string_value(json_object_get(repo, "path")));
			buf_puts(&html, "</code> (main, with README, build and test command)\n");
			if (json_is_object(remote)) {
				buf_puts(&html, "Remote: ");
				nd_html_escape(&html, json_string_value(json_object_get(remote, "url")));
				if (json_object_get(remote, "error")) {
					buf_puts(&html, " — <b>not used</b>: ");
					nd_html_escape(&html, json_string_value(
								      json_object_get(remote, "error")));
				}
				buf_putc(&html, '\n');
			}
		}
		buf_putc(&html, '\n');
		nd_plan_html(plan_json, &html);
		snprintf(key, sizeof(key), "plan:%d", v);
		snprintf(q, sizeof(q), "Start building with this plan (%zu task%s)?", plan.ntasks,
			 plan.ntasks == 1 ? "" : "s");
		if ((rc = nd_say_html(ctx, &chat, buf_cstr(&html))) < 0 ||
		    (rc = nd_ask(ctx, &chat, key, q, opts, 3)) < 0)
			goto done;
	}
	nd_log(up, "plan_proposed", plan.summary, json_pack("{s:i, s:i}", "version", v, "tasks",
							      (int)plan.ntasks));
	json_object_set_new(up, "plan", plan_json);
	plan_json = NULL;
	json_object_set_new(up, "plan_version", json_integer(v));
	json_object_set_new(up, "plan_feedback", json_null());
	json_object_set_new(up, "repo", repo);
	repo = NULL;
	json_object_set_new(up, "stage", json_string("plan_review"));
	rc = eng_goto(ctx, "plan_gate");
done:
	json_decref(plan_json);
	json_decref(repo);
	nd_plan_free(&plan);
	llm_response_free(&resp);
	free(raw);
	buf_free(&sys);
	buf_free(&task);
	buf_free(&extra);
	buf_free(&html);
	return rc;
}

int nd_plan_gate(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	nd_app *app = nd_app_of(ctx);
	const json_t *plan = json_object_get(state, "plan"), *t;
	char key[32], msg[300];
	const char *opt;
	json_t *v = NULL, *up, *tasks;
	nd_chat chat;
	size_t i;
	int which, rc;

	(void)in;
	rc = nd_proposal_gate(ctx, state, "plan", key, sizeof(key), &chat, &v, &which, update);
	if (rc < 0)
		return rc;
	up = *update;
	if (which == 1) {
		const char *text = json_string_value(json_object_get(v, "text"));
		json_object_set_new(up, "plan_feedback", json_string(text ? text : ""));
		json_object_set_new(up, "stage", json_string("architect"));
		json_decref(v);
		rc = nd_say(ctx, &chat, "Revising the plan…");
		return rc < 0 ? rc : eng_goto(ctx, "architect");
	}
	opt = nd_decision(up, key, v);
	json_decref(v);
	if (!opt) {
		rc = nd_say(ctx, &chat, "The plan is still waiting for your approval. Send a message "
					"when you are back (a change to the plan), or /cancel.");
		return rc < 0 ? rc : eng_goto(ctx, ENG_END);
	}
	if (strcmp(opt, "change") == 0) {
		rc = nd_say(ctx, &chat, "What should change in the plan?");
		return rc < 0 ? rc : eng_goto(ctx, "listen");
	}
	if (strcmp(opt, "approve") != 0) {
		json_object_set_new(up, "stage", json_string("cancelled"));
		rc = nd_say(ctx, &chat, "🛑 Cancelled. The repository stays where it is; send /new "
					"<idea> to start another project.");
		return rc < 0 ? rc : eng_goto(ctx, ENG_END);
	}
	tasks = json_object();
	json_array_foreach(json_object_get(plan, "tasks"), i, t) {
		const char *id = json_string_value(json_object_get(t, "id"));
		json_object_set_new(tasks, id,
				    json_pack("{s:s, s:O, s:s, s:i, s:i, s:i, s:s}", "id", id, "title",
					      json_object_get(t, "title"), "status", "queued", "round",
					      1, "attempt", 1, "failures", 0, "branch", ""));
		json_object_set_new(json_object_get(tasks, id), "branch",
				    json_sprintf("task/%s", id));
	}
	json_object_set_new(up, "tasks", tasks);
	json_object_set_new(up, "stage", json_string("develop"));
	snprintf(msg, sizeof(msg), "👍 Plan approved. Building: %zu task%s, up to %d worker%s at "
				   "once.", json_array_size(json_object_get(plan, "tasks")),
		 json_array_size(json_object_get(plan, "tasks")) == 1 ? "" : "s",
		 app->cfg.max_workers, app->cfg.max_workers == 1 ? "" : "s");
	rc = nd_say(ctx, &chat, msg);
	return rc < 0 ? rc : eng_goto(ctx, "developer");
}
