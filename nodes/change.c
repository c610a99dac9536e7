/*
 * change — the stages of a change to an existing repository (`new --repo`,
 * nodes/factory.h): import (the repository copied into the project's own),
 * baseline (its tests before any work), deliver (pushed, a pull request,
 * or kept) and follow (the pull request's comments and CI start rounds),
 * and what the other nodes ask of a change (its context, its baseline).
 *
 * Each stage that waits for the spawner records the request's id in the
 * change ("spawn") and takes the "worker" event with that id; anything
 * else it takes (a stale result, the person's text) is answered and
 * consumed, and the node runs again to wait.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "nodes/context.h"
#include "nodes/nd_int.h"
#include "nodes/repo.h"
#include "secrets/resource.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- what the other nodes ask --- */

void nd_change_context(nd_step *s, const char *query, buf *out)
{
	nd_context_stats st;
	size_t before = out->len;
	int rc = nd_context_build(s->p.repo.path, nd_project_branch(&s->p), query,
				  (size_t)s->app->cfg.change_context, out, &st);

	if (rc < 0) {
		buf_printf(out, "(the repository could not be read: %s)\n", err_last());
		err_clear();
		return;
	}
	s->p.change.context = (int64_t)(out->len - before);
	log_info("factory", "thread %s: the model sees %zu bytes of the repository (%d of %d files, "
			    "%lld lines in all)", eng_ctx_thread_key(s->ctx), st.size, st.shown, st.files,
		 (long long)st.lines);
}

/* " (failing: a, b, ...)" after the baseline's line when it named them. */
static void failing_names(const nd_change *ch, char *out, size_t cap)
{
	size_t used = strlen(out), i;
	const json_t *n;

	json_array_foreach(ch->base_failing, i, n) {
		if (i == 5 || used + 8 >= cap) {
			snprintf(out + used, cap - used, ", ...");
			break;
		}
		used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : " (failing: ",
					 json_string_value(n));
		used = used < cap ? used : cap - 1;
	}
	used = strlen(out);
	snprintf(out + used, cap - used, ")");
}

void nd_baseline_line(const nd_project *p, char *out, size_t cap)
{
	const nd_change *ch = &p->change;

	if (!ch->has_baseline) {
		snprintf(out, cap, "not run yet");
	} else if (!ch->base_ran) {
		snprintf(out, cap, "the tests could not be run on the base (%s)",
			 ch->base_reason ? ch->base_reason : "no reason given");
	} else if (ch->base_total >= 0) {
		snprintf(out, cap, "%d passed, %d failed of %d on %s at %.12s", ch->base_passed,
			 ch->base_failed, ch->base_total, nd_project_branch(p),
			 ch->base_commit ? ch->base_commit : "");
		if (json_array_size(ch->base_failing))
			failing_names(ch, out, cap);
	} else {
		snprintf(out, cap, "the test command exited %d on %s at %.12s (no counts in its "
				   "output)", ch->base_exit, nd_project_branch(p),
			 ch->base_commit ? ch->base_commit : "");
	}
}

void nd_allow_failures(const nd_project *p, json_t *req)
{
	const json_t *names = p->change.base_failing;
	int n = nd_allowed_failures(p);

	if (!req || n <= 0)
		return;
	json_object_set_new(req, "allowed_failures", json_integer(n));
	if (json_is_array(names) && (int)json_array_size(names) == n)
		json_object_set(req, "allowed_failing", (json_t *)names);
}

int nd_allowed_failures(const nd_project *p)
{
	const nd_change *ch = &p->change;

	return ch->present && ch->has_baseline && ch->base_ran && ch->base_failed > 0
		       ? ch->base_failed
		       : 0;
}

/* --- waiting for the spawner --- */

/* Takes the "worker" events: the one with id `id` into *out (owned; NULL
 * when not there); *taken counts every event taken (they are consumed). */
static int take_result(nd_step *s, const char *id, json_t **out, int *taken)
{
	json_t *got = NULL, *v;
	size_t i;
	int rc = eng_take(s->ctx, "worker", &got);

	*out = NULL;
	json_array_foreach(rc == 0 ? got : NULL, i, v) {
		(*taken)++;
		if (id && strcmp(jx_str(v, "id"), id) == 0 && !*out)
			*out = json_incref(v);
	}
	json_decref(got);
	return rc;
}

/* The person's messages while the stage waits get `reply`. */
static int answer_busy(nd_step *s, const char *reply, int *taken)
{
	json_t *got = NULL;
	int rc = 0, n = s->p.input.present;

	s->p.input.present = 0;
	rc = eng_take(s->ctx, "input", &got);
	n += (int)json_array_size(got);
	json_decref(got);
	*taken += n;
	return rc == 0 && n ? nd_tell(s, reply) : rc;
}

/* Nothing came: wait for the result or a message. */
static int wait_for(nd_step *s)
{
	eng_wait(s->ctx, "worker", NULL);
	eng_wait(s->ctx, "input", NULL);
	return ERR_WAIT;
}

/* The id of the change's next request: "f<thread>.<run>.<what><n>". */
static void next_id(nd_step *s, const char *what, char *out, size_t cap)
{
	char suffix[48];

	snprintf(suffix, sizeof(suffix), "%s%d", what, ++s->p.change.sends);
	nd_worker_id(s->ctx, NULL, suffix, out, cap);
}

/* The change cannot go on: the person is told why and what to do. */
static int give_up(nd_step *s, const char *what, const char *why)
{
	char msg[1600];
	int rc;

	snprintf(msg, sizeof(msg), "⚠️ %s: %s\nNothing was changed. Send /new --repo ... again "
				   "once that is fixed.", what, why);
	nd_str_set(&s->p.change.error, why);
	nd_log(s->up, "change_failed", msg, NULL);
	rc = nd_stage_move(&s->p, ND_STAGE_STOPPED);
	return rc < 0 ? rc : nd_tell(s, msg);
}

/* --- import --- */

/* "tasklog" for ".../tasklog.git" or "/home/ada/tasklog": the project's
 * name. */
static void source_name(const char *source, char *out, size_t cap)
{
	const char *end = source + strlen(source), *start;
	size_t k = 0;

	while (end > source && end[-1] == '/')
		end--;
	if (end - source > 4 && strncmp(end - 4, ".git", 4) == 0)
		end -= 4;
	start = end;
	while (start > source && start[-1] != '/' && start[-1] != ':')
		start--;
	for (const char *p = start; p < end && k + 1 < cap && k < 40; p++)
		out[k++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '-';
	out[k] = '\0';
	if (!k)
		snprintf(out, cap, "repository");
}

/* The project's handle for the remote: the handle given (of this project,
 * or of its chat: then the project gets its own for the same secret), or
 * the secret named from the terminal; none for a public repository. */
static int project_handle(nd_step *s, char *err, size_t cap)
{
	nd_change *ch = &s->p.change;
	const char *project = eng_ctx_thread_key(s->ctx), *colon = strrchr(project, ':');
	char chat[160], found[SEC_HANDLE_LEN + 1] = "", secret[SEC_NAME_MAX + 1] = "";
	sec_res_info info, *list = NULL;
	pg_conn *c = NULL;
	size_t n = 0;
	int rc;

	err[0] = '\0';
	if (!ch->handle && !ch->secret)
		return 0;
	snprintf(chat, sizeof(chat), "%.*s", colon ? (int)(colon - project) : 0, project);
	rc = pg_pool_acquire(s->app->pool, 10000, &c);
	if (rc == 0 && ch->handle) {
		if (sec_handle_check(ch->handle) < 0 || sec_res_show(c, ch->handle, &info) < 0)
			snprintf(err, cap, "the handle %s does not exist", ch->handle);
		else if (strcmp(info.kind, "git") != 0 || info.revoked_ms)
			snprintf(err, cap, "the handle %s is %s", ch->handle,
				 info.revoked_ms ? "revoked" : "not of kind git");
		else if (strcmp(info.scope, project) == 0)
			snprintf(found, sizeof(found), "%s", ch->handle);
		else if (strcmp(info.scope, chat) == 0)
			snprintf(secret, sizeof(secret), "%s", info.secret);
		else
			snprintf(err, cap, "the handle %s belongs to another project or chat", ch->handle);
	} else if (rc == 0) {
		snprintf(secret, sizeof(secret), "%s", ch->secret);
	}
	if (rc == 0 && !err[0] && !found[0] && sec_res_list(c, project, 0, &list, &n) == 0)
		for (size_t i = 0; i < n && !found[0]; i++)
			if (strcmp(list[i].secret, secret) == 0 && strcmp(list[i].kind, "git") == 0)
				snprintf(found, sizeof(found), "%s", list[i].handle);
	free(list);
	if (rc == 0 && !err[0] && !found[0]) {
		sec_res_spec rs = {project, "git", secret, NULL, "the repository the change is made to",
				   "node:import"};
		if (sec_res_allocate(c, &rs, found) < 0)
			snprintf(err, cap, "no handle for the secret %s: %s", secret, err_last());
	}
	if (rc < 0)
		snprintf(err, cap, "%s", err_last());
	pg_pool_release(s->app->pool, c);
	err_clear();
	if (!err[0])
		nd_str_set(&ch->handle, found);
	return err[0] ? ERR_DENIED : 0;
}

static void repo_set(nd_step *s, const char *path, const char *name)
{
	nd_repo *repo = &s->p.repo;

	repo->present = 1;
	nd_str_set(&repo->path, path);
	nd_str_set(&repo->name, name);
	if (!s->p.change.local) {
		repo->has_remote = 1;
		nd_str_set(&repo->remote_url, s->p.change.source);
		nd_str_set(&repo->remote_handle, s->p.change.handle);
	}
}

/* The copy is there: the branch and its tip recorded, the conversation
 * goes on with the request it holds. */
static int imported(nd_step *s, const char *branch, const char *head)
{
	char msg[1600];
	int rc;

	nd_str_set(&s->p.repo.branch, branch);
	nd_str_set(&s->p.repo.head, head);
	nd_str_set(&s->p.change.branch, branch);
	nd_str_set(&s->p.change.base_commit, head);
	nd_str_set(&s->p.change.spawn, NULL);
	nd_log(s->up, "repository", s->p.repo.path,
	       json_pack("{s:s, s:s, s:s}", "source", s->p.change.source, "branch", branch, "head",
			 head));
	snprintf(msg, sizeof(msg), "📥 Copied %s, branch %s at %.12s, into the project's repository "
				   "%s. Reading it…",
		 s->p.change.source, branch, head, s->p.repo.path);
	rc = nd_stage_move(&s->p, ND_STAGE_BRAINSTORM);
	return rc < 0 ? rc : nd_tell(s, msg);
}

static void repo_path(nd_step *s, char *name, size_t ncap, char *path, size_t pcap)
{
	source_name(s->p.change.source, name, ncap);
	snprintf(path, pcap, "%s/%s-%lld.git", s->app->cfg.repos_dir, name,
		 (long long)eng_ctx_thread_id(s->ctx));
}

static int import_local(nd_step *s)
{
	char name[48], path[1200], branch[256], head[41];
	int rc;

	repo_path(s, name, sizeof(name), path, sizeof(path));
	rc = nd_repo_import_local(s->p.change.source, path, s->p.change.branch, branch,
				  sizeof(branch), head);
	if (rc < 0)
		return give_up(s, "The repository could not be copied", err_last());
	repo_set(s, path, name);
	return imported(s, branch, head);
}

static int import_remote(nd_step *s)
{
	nd_change *ch = &s->p.change;
	char name[48], path[1200], id[160], err[600], msg[1400];
	json_t *req;
	int rc = project_handle(s, err, sizeof(err));

	if (rc < 0)
		return give_up(s, "The repository's credentials cannot be used", err);
	repo_path(s, name, sizeof(name), path, sizeof(path));
	rc = nd_repo_init(path, ch->branch ? ch->branch : "main");
	if (rc < 0)
		return give_up(s, "The project's repository could not be created", err_last());
	next_id(s, "import", id, sizeof(id));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s}, s:s*}", "id", id,
			"mode", "import", "task", "import", "project", eng_ctx_thread_key(s->ctx),
			"repo", ch->source, "target", ch->branch ? ch->branch : "", "mirror", path,
			"meta", "factory", 1, "kind", "import", "repo_secret", ch->handle);
	rc = eng_emit(s->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	repo_set(s, path, name);
	nd_str_set(&ch->spawn, id);
	snprintf(msg, sizeof(msg), "📥 Copying %s%s%s into the project's repository…", ch->source,
		 ch->branch ? ", branch " : "", ch->branch ? ch->branch : "");
	return nd_tell(s, msg);
}

/* The spawner's answer to the import. */
static int import_result(nd_step *s, const json_t *r)
{
	nd_result res;
	char head[41];

	nd_result_read(r, &res);
	if (res.status != ND_W_DONE)
		return give_up(s, "The repository could not be copied", res.reason);
	if (nd_repo_set_branch(s->p.repo.path, jx_str(r, "target"), head) < 0)
		return give_up(s, "The copy is not where it should be", err_last());
	return imported(s, jx_str(r, "target"), head);
}

int nd_import(nd_step *s)
{
	nd_change *ch = &s->p.change;
	json_t *r = NULL;
	int taken = 0, rc = nd_need_chat(s);

	if (rc < 0)
		return rc;
	if (!ch->present)
		return err_set(ERR_INTERNAL, "the import runs for a project that is no change");
	if (!s->p.repo.present)
		return ch->local ? import_local(s) : import_remote(s);
	rc = take_result(s, ch->spawn, &r, &taken);
	if (rc == 0)
		rc = answer_busy(s, "I am copying the repository; once I have read it I come back "
				    "to you.", &taken);
	if (rc == 0 && r)
		rc = import_result(s, r);
	json_decref(r);
	if (rc == 0 && !r && !taken)
		return wait_for(s);
	return rc;
}

/* --- baseline --- */

static int start_baseline(nd_step *s)
{
	nd_change *ch = &s->p.change;
	const char *cmd = jx_str(s->p.spec, "test_command");
	char id[160], msg[1200];
	json_t *req;
	int rc;

	next_id(s, "baseline", id, sizeof(id));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:s}}", "id", id, "mode",
			"test", "task", "baseline", "project", eng_ctx_thread_key(s->ctx), "repo",
			s->p.repo.path, "base", ch->base_commit ? ch->base_commit
							      : nd_project_branch(&s->p),
			"test_command", cmd, "meta", "factory", 1, "kind", "baseline");
	rc = eng_emit(s->ctx, "spawn", NULL, req);
	if (rc < 0)
		return rc;
	nd_str_set(&ch->spawn, id);
	snprintf(msg, sizeof(msg), "🧪 Running the repository's tests (%s) on %s before any change…",
		 cmd, nd_project_branch(&s->p));
	return nd_tell(s, msg);
}

static int record_baseline(nd_step *s, const json_t *r)
{
	nd_change *ch = &s->p.change;
	const json_t *tests = json_object_get(r, "tests");
	nd_result res;
	char line[600], msg[1400];
	int rc;

	nd_result_read(r, &res);
	ch->has_baseline = 1;
	ch->base_ran = res.status == ND_W_DONE && json_is_object(tests);
	ch->base_passed = (int)jx_int(tests, "passed");
	ch->base_failed = (int)jx_int(tests, "failed");
	ch->base_total = json_is_integer(json_object_get(tests, "total")) ? (int)jx_int(tests, "total")
									   : -1;
	ch->base_exit = (int)jx_int(tests, "exit_code");
	nd_str_set(&ch->base_verdict, *jx_str(tests, "verdict") ? jx_str(tests, "verdict") : NULL);
	nd_str_set(&ch->base_output, *jx_str(tests, "output") ? jx_str(tests, "output") : NULL);
	nd_str_set(&ch->base_reason, res.reason);
	json_decref(ch->base_failing);
	ch->base_failing = json_is_array(json_object_get(tests, "failing"))
				   ? json_incref(json_object_get(tests, "failing"))
				   : NULL;
	nd_str_set(&ch->spawn, NULL);
	nd_baseline_line(&s->p, line, sizeof(line));
	if (!ch->base_ran)
		snprintf(msg, sizeof(msg), "⚠️ Baseline: %s. Going on: the plan, the workers and the "
					   "reviewer know it.", line);
	else if (ch->base_failed > 0 || (ch->base_total < 0 && ch->base_exit != 0))
		snprintf(msg, sizeof(msg), "⚠️ Baseline: %s. The change is judged against it: these "
					   "failures may remain, no test that passes may fail.", line);
	else
		snprintf(msg, sizeof(msg), "🧪 Baseline: %s. No test that passes now may fail after the "
					   "change. Planning it…", line);
	nd_log(s->up, "baseline", line, NULL);
	rc = nd_stage_move(&s->p, ND_STAGE_ARCHITECT);
	return rc < 0 ? rc : nd_tell(s, msg);
}

int nd_baseline(nd_step *s)
{
	json_t *r = NULL;
	int taken = 0, rc = nd_need_chat(s);

	if (rc < 0)
		return rc;
	if (!s->p.change.spawn)
		return start_baseline(s);
	rc = take_result(s, s->p.change.spawn, &r, &taken);
	if (rc == 0)
		rc = answer_busy(s, "The repository's tests are running on the base; the plan comes "
				    "next.", &taken);
	if (rc == 0 && r)
		rc = record_baseline(s, r);
	json_decref(r);
	if (rc == 0 && !r && !taken)
		return wait_for(s);
	return rc;
}
