/*
 * merge — the requests that run no agent: "merge" and "publish".
 *
 * A merge (the factory's merge queue sends one per approved task):
 *   1. grants (repo_secret, handles for the tests) and the repository check,
 *      as for a worker;
 *   2. a bare clone of the project (spawner/gitws.h), no workspace;
 *   3. task/<task> rebased onto `target` in memory: a conflict ends it with
 *      status "conflict" and the conflicting paths, nothing pushed;
 *   4. the result written into a fresh workspace (with the disk quota) and
 *      the test command run there in a fresh sandbox: failing tests, or
 *      fewer than `min_tests`, end it with "failed", nothing pushed;
 *   5. `target` fast-forwarded to the result and task/<task> forced to it in
 *      the project repository; a target that moved meanwhile is an "error"
 *      the requester retries;
 *   6. with a `mirror`, `target` pushed there too (its failure is reported
 *      in "mirror" and does not undo the merge).
 * A publication pushes `target` to `mirror` and nothing else.
 *
 * The result has the worker result's common fields (id, task, status,
 * reason, meta, ...) and: "mode", "target", "branch", "onto" (the target's
 * tip before), "commit" (its tip after a merge), "merged", "replayed"
 * (commits rewritten; 0 for a fast-forward), "conflicts", "diff", "tests",
 * "mirror": {"url", "pushed", "error"}, "wall_ms".
 */
#include "spawner/spw_int.h"
#include "core/err.h"
#include "core/redact.h"
#include "core/util.h"
#include "secrets/resource.h"
#include "secrets/store.h"
#include "spawner/gitws.h"
#include "spawner/sandbox.h"
#include "spawner/testsum.h"
#include "spawner/toolenv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Pushes `target` to the mirror; records the outcome in res.mirror. */
static void push_mirror(const spw_worker_ctx *w, spw_git *git, const spw_git_cred *cred,
			const char *target, json_t *res)
{
	char url[1100];
	int rc = spw_repo_allowed(w->cfg, w->req->mirror, url, sizeof(url));
	json_t *m;

	if (rc == 0) {
		spw_wlog(w, "status", "pushing %s to the mirror", target);
		rc = spw_git_push_merge(git, url, cred, target, NULL);
	}
	m = json_pack("{s:s, s:b}", "url", w->req->mirror, "pushed", rc == 0);
	if (m && rc < 0) {
		char *red = redact_str(err_last());
		json_object_set_new(m, "error", json_string(red ? red : "push failed"));
		free(red);
	}
	json_object_set_new(res, "mirror", m);
}

json_t *spw_merge_run(const spw_worker_ctx *w)
{
	const spw_request *req = w->req;
	const spw_config *cfg = w->cfg;
	spw_limits lim = req->limits;
	sec_env *env = NULL;
	char **wenv = NULL; /* the toolchains' variables and the granted ones */
	char *repo_secret = NULL;
	spw_git *git = NULL;
	spw_git_cred cred = {NULL};
	sbx *box = NULL;
	spw_rebase rb;
	spw_testsum sum;
	buf tail;
	json_t *res = NULL, *tests = NULL;
	char dir[PATH_MAX], ws[PATH_MAX], host[PATH_MAX], url[1100];
	char branch[128], target[256], why[300], reason[1024] = "";
	const char *status = "error";
	int rc, merged = 0, publish = strcmp(req->mode, "publish") == 0;
	int64_t t0 = util_mono_ms();

	memset(&rb, 0, sizeof(rb));
	memset(&sum, 0, sizeof(sum));
	buf_init(&tail, 0);
	spw_limits_apply(&lim, &cfg->max);
	spw_worker_dir(cfg, req->id, dir, sizeof(dir));
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(host, sizeof(host), "%s/host.git", dir);
	snprintf(branch, sizeof(branch), "task/%s", req->task);
	snprintf(target, sizeof(target), "%s", req->target[0] ? req->target : "main");
	spw_wlog(w, "status", "%s %s (task %s, attempt %d) starting on %s", req->mode, req->id,
		 req->task, w->attempt, w->spawner_id);

	/* 1. grants and the repository */
	rc = spw_worker_access(w, &env, &repo_secret, url, sizeof(url), &status, reason,
			       sizeof(reason));
	if (rc < 0)
		goto done;
	cred.secret = repo_secret;

	/* 2. the clone (a previous attempt's folder is discarded) */
	if (spw_worker_dir_reset(cfg, dir, reason, sizeof(reason)) < 0)
		goto done;
	if (mkdir(dir, 0700) < 0) {
		snprintf(reason, sizeof(reason), "cannot create %s: %s", dir, strerror(errno));
		goto done;
	}
	spw_wphase(w, SPW_PHASE_CLONING);
	spw_wlog(w, "status", "cloning %s", req->repo);
	rc = spw_git_open(&git, url, &cred, host);
	if (rc < 0) {
		status = rc == ERR_AUTH ? "refused" : "error";
		snprintf(reason, sizeof(reason), "%s", err_last());
		goto done;
	}

	if (publish) {
		char tip[41];

		rc = spw_git_branch_tip(git, target, tip);
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "%s", err_last());
			goto done;
		}
		res = json_object();
		if (!res)
			goto done;
		spw_wphase(w, SPW_PHASE_PUSHING);
		push_mirror(w, git, &cred, target, res);
		json_object_set_new(res, "commit", json_string(tip));
		if (json_is_true(json_object_get(json_object_get(res, "mirror"), "pushed"))) {
			status = "done";
			snprintf(reason, sizeof(reason), "%s pushed to %s", target, req->mirror);
		} else {
			status = "error";
			snprintf(reason, sizeof(reason), "%s",
				 json_string_value(json_object_get(json_object_get(res, "mirror"),
								   "error")));
		}
		goto done;
	}

	/* 3. the rebase */
	spw_wphase(w, SPW_PHASE_REBASING);
	spw_wlog(w, "status", "rebasing %s onto %s", branch, target);
	rc = spw_git_rebase(git, branch, target, &rb);
	if (rc < 0) {
		status = rc == ERR_NOTFOUND ? "invalid" : "error";
		snprintf(reason, sizeof(reason), "%s", err_last());
		goto done;
	}
	if (rb.conflict) {
		size_t n = strcspn(rb.conflicts, "\n");
		status = "conflict";
		snprintf(reason, sizeof(reason), "%s does not apply to %s any more: conflicting "
						 "changes in %.*s%s", branch, target, (int)n,
			 rb.conflicts, rb.conflicts[n] && rb.conflicts[n + 1] ? " and more" : "");
		goto done;
	}
	if (rb.nothing) {
		status = "done";
		snprintf(reason, sizeof(reason), "%s holds nothing that %s lacks", branch, target);
		goto done;
	}

	/* 4. the tests, on exactly the result */
	if (req->test_command) {
		if (spw_workspace_make(w, &lim, ws, reason, sizeof(reason)) < 0)
			goto done;
		rc = spw_git_export(git, rb.commit, ws);
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "%s", err_last());
			goto done;
		}
		rc = spw_worker_sandbox(w, &lim, ws, NULL, &box, reason, sizeof(reason));
		if (rc < 0)
			goto done;
		/* what the host wrote goes back to the sandbox */
		rc = sbx_reown(box);
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "the sandbox could not be prepared: %s",
				 err_last());
			goto done;
		}
		spw_wphase(w, SPW_PHASE_TESTS);
		spw_wlog(w, "status", "running the tests on the rebased %s", branch);
		rc = spw_toolenv_join(0, env ? (const char *const *)sec_env_strings(env) : NULL,
				      &wenv);
		if (rc == 0)
			rc = spw_run_tests(w, box, wenv, &sum, &tail, why, sizeof(why));
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "the tests could not be run: %s", err_last());
			goto done;
		}
		tests = spw_testsum_json(&sum);
		if (!sum.ok) {
			status = "failed";
			snprintf(reason, sizeof(reason),
				 "the tests fail on %s rebased onto %s (exit %d%s%s): nothing merged",
				 branch, target, sum.exit_code, why[0] ? ", " : "", why);
			goto done;
		}
		if (req->min_tests > 0 && sum.total >= 0 && sum.total < req->min_tests) {
			status = "failed";
			snprintf(reason, sizeof(reason), "the tests pass but there are fewer of them "
							 "(%d) than %s had (%lld): nothing merged",
				 sum.total, target, (long long)req->min_tests);
			goto done;
		}
	}

	/* 5. the merge itself */
	spw_wphase(w, SPW_PHASE_PUSHING);
	spw_wlog(w, "status", "fast-forwarding %s", target);
	rc = spw_git_push_merge(git, url, &cred, target, branch);
	if (rc < 0) {
		status = "error";
		snprintf(reason, sizeof(reason), "nothing merged: %s", err_last());
		goto done;
	}
	merged = 1;
	status = req->test_command ? "done" : "unverified";
	if (sum.total >= 0 && req->test_command)
		snprintf(reason, sizeof(reason), "merged into %s: %d tests passed", target, sum.passed);
	else
		snprintf(reason, sizeof(reason), "merged into %s%s", target,
			 req->test_command ? "" : " (no test command: not re-tested)");

done:
	if (w->cancel && atomic_load(w->cancel) && !merged && strcmp(status, "error") == 0)
		status = "cancelled";
	{
		json_t *base = spw_result_base(req, req->id, status, reason);

		if (base && res)
			json_object_update(base, res);
		json_decref(res);
		res = base;
	}
	if (res) {
		json_object_set_new(res, "mode", json_string(req->mode));
		json_object_set_new(res, "attempt", json_integer(w->attempt));
		json_object_set_new(res, "spawner", json_string(w->spawner_id));
		json_object_set_new(res, "target", json_string(target));
		if (!publish) {
			json_object_set_new(res, "branch", json_string(branch));
			json_object_set_new(res, "merged", json_boolean(merged));
		}
		if (rb.onto[0]) {
			json_object_set_new(res, "onto", json_string(rb.onto));
			json_object_set_new(res, "commit", json_string(merged || rb.nothing ? rb.commit
											    : rb.onto));
			json_object_set_new(res, "replayed", json_integer(rb.replayed));
		}
		if (rb.conflict)
			json_object_set_new(res, "conflicts", spw_lines_json(rb.conflicts));
		if (rb.commit[0] && !rb.conflict)
			json_object_set_new(res, "diff",
					    json_pack("{s:i, s:i, s:i, s:o}", "files", rb.stat.files,
						      "insertions", rb.stat.insertions, "deletions",
						      rb.stat.deletions, "paths",
						      spw_lines_json(rb.stat.names)));
		if (tests) {
			json_object_set_new(tests, "command", json_string(req->test_command));
			json_object_set_new(tests, "verdict",
					    json_string(!sum.ok ? "failed"
							: req->min_tests > 0 && sum.total >= 0 &&
									  sum.total < req->min_tests
							    ? "shrank"
							    : "passed"));
			if (tail.len)
				json_object_set_new(tests, "output", json_string(buf_cstr(&tail)));
			json_object_set(res, "tests", tests);
		}
		if (merged && req->mirror[0])
			push_mirror(w, git, &cred, target, res);
		json_object_set_new(res, "wall_ms", json_integer(util_mono_ms() - t0));
	}
	/* the result goes to Redis, the database and a chat */
	res = spw_result_redact(res);
	spw_wlog(w, "status", "%s %s ended: %s: %s", req->mode, req->id, status, reason);
	json_decref(tests);
	sbx_free(box);
	spw_git_free(git);
	if (dir[0] && spw_remove_worker_dir(dir) < 0)
		spw_wlog(w, "status", "%s: %s (the janitor tries again)", req->id, err_last());
	spw_toolenv_free(wenv);
	sec_env_free(env);
	if (repo_secret)
		sec_value_free(repo_secret);
	buf_free(&tail);
	return res;
}
