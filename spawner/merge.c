/*
 * merge — the requests that run no agent: "merge" and "publish".
 *
 * A merge (the factory's merge queue sends one per approved task):
 *   1. grants (repo_secret, handles for the tests) and the repository check,
 *      as for a worker;
 *   2. a bare clone of the project (spawner/gitws.h), no workspace;
 *   3. task/<task> rebased onto `target` in memory: a conflict ends it with
 *      status "conflict" and the conflicting paths, nothing pushed;
 *   4. the result written into a fresh workspace (with the disk quota), the
 *      setup command run there (the dependencies, with the network the
 *      request's policy gives the phase "setup", as for a worker) and the
 *      test command in a fresh sandbox: a failing setup, failing tests, or
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
 * "network" (as a worker's, when the policy gave it one), "mirror": {"url",
 * "pushed", "error"}, "wall_ms". The setup and the proxy's decisions go to
 * the transcript $ORCH_DATA_DIR/transcripts/<id>.jsonl (orchestrator logs).
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

/* One merge or publication: what its steps share, freed at its end. */
typedef struct merge_ctx {
	const spw_worker_ctx *w;
	spw_limits lim;
	sec_env *env;
	char **wenv;           /* the toolchains' variables and the granted ones */
	char *repo_secret;
	spw_git *git;
	spw_git_cred cred;
	spw_rebase rb;
	sbx *box;
	spw_net net;
	spw_testsum sum;
	int tested, merged;
	buf tail;
	const char *status;
	char reason[1024];
	char dir[PATH_MAX], ws[PATH_MAX], url[1100], transcript[PATH_MAX];
	char branch[128], target[256], why[300];
} merge_ctx;

/* Steps 1 and 2: the grants, the repository and its bare clone. */
static int merge_open(merge_ctx *m)
{
	const spw_worker_ctx *w = m->w;
	char host[PATH_MAX + 16];
	int rc;

	rc = spw_worker_access(w, &m->env, &m->repo_secret, m->url, sizeof(m->url), &m->status,
			       m->reason, sizeof(m->reason));
	if (rc < 0)
		return rc;
	m->cred.secret = m->repo_secret;
	/* a previous attempt's folder is discarded */
	rc = spw_worker_dir_reset(w->cfg, m->dir, m->reason, sizeof(m->reason));
	if (rc < 0)
		return rc;
	if (mkdir(m->dir, 0700) < 0) {
		snprintf(m->reason, sizeof(m->reason), "cannot create %s: %s", m->dir, strerror(errno));
		return ERR_IO;
	}
	spw_wphase(w, SPW_PHASE_CLONING);
	spw_wlog(w, "status", "cloning %s", w->req->repo);
	snprintf(host, sizeof(host), "%s/host.git", m->dir);
	rc = spw_git_open(&m->git, m->url, &m->cred, host);
	if (rc < 0) {
		m->status = rc == ERR_AUTH ? "refused" : "error";
		snprintf(m->reason, sizeof(m->reason), "%s", err_last());
	}
	return rc;
}

/* A publication: `target` pushed to the mirror, into *res (owned). */
static void merge_publish(merge_ctx *m, json_t **res)
{
	char tip[41];
	json_t *mirror;

	if (spw_git_branch_tip(m->git, m->target, tip) < 0) {
		snprintf(m->reason, sizeof(m->reason), "%s", err_last());
		return;
	}
	*res = json_object();
	if (!*res)
		return;
	spw_wphase(m->w, SPW_PHASE_PUSHING);
	push_mirror(m->w, m->git, &m->cred, m->target, *res);
	json_object_set_new(*res, "commit", json_string(tip));
	mirror = json_object_get(*res, "mirror");
	if (json_is_true(json_object_get(mirror, "pushed"))) {
		m->status = "done";
		snprintf(m->reason, sizeof(m->reason), "%s pushed to %s", m->target, m->w->req->mirror);
	} else {
		m->status = "error";
		snprintf(m->reason, sizeof(m->reason), "%s",
			 json_string_value(json_object_get(mirror, "error")));
	}
}

/* Step 3: task/<task> onto the target. 0 to go on; 1 when the merge ends
 * here (a conflict, nothing to merge); <0 on failure. */
static int merge_rebase(merge_ctx *m)
{
	int rc;

	spw_wphase(m->w, SPW_PHASE_REBASING);
	spw_wlog(m->w, "status", "rebasing %s onto %s", m->branch, m->target);
	rc = spw_git_rebase(m->git, m->branch, m->target, &m->rb);
	if (rc < 0) {
		m->status = rc == ERR_NOTFOUND ? "invalid" : "error";
		snprintf(m->reason, sizeof(m->reason), "%s", err_last());
		return rc;
	}
	if (m->rb.conflict) {
		const char *c = m->rb.conflicts;
		size_t n = strcspn(c, "\n");

		m->status = "conflict";
		snprintf(m->reason, sizeof(m->reason), "%s does not apply to %s any more: conflicting "
						       "changes in %.*s%s",
			 m->branch, m->target, (int)n, c, c[n] && c[n + 1] ? " and more" : "");
		return 1;
	}
	if (m->rb.nothing) {
		m->status = "done";
		snprintf(m->reason, sizeof(m->reason), "%s holds nothing that %s lacks", m->branch,
			 m->target);
		return 1;
	}
	return 0;
}

/* The sandbox over the fresh workspace, with the request's network. */
static int merge_sandbox(merge_ctx *m)
{
	const spw_worker_ctx *w = m->w;
	int rc;

	if (w->req->setup_command) { /* its lines go to the transcript */
		char parent[PATH_MAX];

		snprintf(parent, sizeof(parent), "%s/transcripts", w->cfg->data_dir);
		mkdir(parent, 0700);
	}
	rc = spw_net_open(&m->net, m->ws, &m->status, m->reason, sizeof(m->reason));
	if (rc < 0)
		return rc;
	rc = spw_worker_sandbox(w, &m->lim, m->ws, spw_net_socket(&m->net), &m->box, m->reason,
				sizeof(m->reason));
	if (rc == 0)
		rc = sbx_reown(m->box); /* what the host wrote goes back to the sandbox */
	if (rc == 0)
		rc = spw_toolenv_join(m->net.pol != NULL,
				      m->env ? (const char *const *)sec_env_strings(m->env) : NULL,
				      &m->wenv);
	if (rc < 0 && !m->reason[0])
		snprintf(m->reason, sizeof(m->reason), "the sandbox could not be prepared: %s",
			 err_last());
	return rc;
}

/* Step 4: the rebased commit written into a fresh workspace, the setup,
 * then the tests. 0 when they pass (and count at least min_tests); 1 when
 * the merge ends here ("failed": the setup or the tests); <0 on failure. */
static int merge_tests(merge_ctx *m)
{
	const spw_worker_ctx *w = m->w;
	const spw_request *req = w->req;
	int rc;

	if (spw_workspace_make(w, &m->lim, m->ws, m->reason, sizeof(m->reason)) < 0)
		return ERR_IO;
	rc = spw_git_export(m->git, m->rb.commit, m->ws);
	if (rc < 0) {
		snprintf(m->reason, sizeof(m->reason), "%s", err_last());
		return rc;
	}
	rc = merge_sandbox(m);
	if (rc < 0)
		return rc;
	spw_wphase(w, SPW_PHASE_TESTS);
	if (req->setup_command) {
		rc = spw_run_setup(w, m->box, m->wenv, &m->net, m->reason, sizeof(m->reason));
		if (rc < 0)
			snprintf(m->reason, sizeof(m->reason), "the setup command could not be run: %s",
				 err_last());
		if (rc == 1)
			m->status = "failed";
		if (rc != 0)
			return rc;
	}
	spw_wlog(w, "status", "running the tests on the rebased %s", m->branch);
	spw_net_phase(&m->net, "test", SPW_NET_TEST);
	rc = spw_run_tests(w, m->box, m->wenv, &m->sum, &m->tail, m->why, sizeof(m->why));
	if (rc < 0) {
		snprintf(m->reason, sizeof(m->reason), "the tests could not be run: %s", err_last());
		return rc;
	}
	m->tested = 1;
	/* the repository's own failing tests (its baseline) may still fail */
	m->sum.ok = spw_tests_accepted(req, &m->sum, NULL);
	if (!m->sum.ok) {
		m->status = "failed";
		snprintf(m->reason, sizeof(m->reason),
			 "the tests fail on %s rebased onto %s (exit %d%s%s): nothing merged", m->branch,
			 m->target, m->sum.exit_code, m->why[0] ? ", " : "", m->why);
		return 1;
	}
	if (req->min_tests > 0 && m->sum.total >= 0 && m->sum.total < req->min_tests) {
		m->status = "failed";
		snprintf(m->reason, sizeof(m->reason),
			 "the tests pass but there are fewer of them (%d) than %s had (%lld): "
			 "nothing merged",
			 m->sum.total, m->target, (long long)req->min_tests);
		return 1;
	}
	return 0;
}

/* Step 5: the target fast-forwarded to the result. */
static int merge_push(merge_ctx *m)
{
	const spw_request *req = m->w->req;
	int rc;

	spw_wphase(m->w, SPW_PHASE_PUSHING);
	spw_wlog(m->w, "status", "fast-forwarding %s", m->target);
	rc = spw_git_push_merge(m->git, m->url, &m->cred, m->target, m->branch);
	if (rc < 0) {
		m->status = "error";
		snprintf(m->reason, sizeof(m->reason), "nothing merged: %s", err_last());
		return rc;
	}
	m->merged = 1;
	m->status = req->test_command ? "done" : "unverified";
	if (m->sum.total >= 0 && req->test_command)
		snprintf(m->reason, sizeof(m->reason), "merged into %s: %d tests passed", m->target,
			 m->sum.passed);
	else
		snprintf(m->reason, sizeof(m->reason), "merged into %s%s", m->target,
			 req->test_command ? "" : " (no test command: not re-tested)");
	return 0;
}

/* The fields of a merge's result besides the common ones, into `res`. */
static void merge_fields(merge_ctx *m, json_t *res, json_t *netj)
{
	const spw_request *req = m->w->req;
	const spw_rebase *rb = &m->rb;

	json_object_set_new(res, "mode", json_string(req->mode));
	json_object_set_new(res, "attempt", json_integer(m->w->attempt));
	json_object_set_new(res, "spawner", json_string(m->w->spawner_id));
	json_object_set_new(res, "target", json_string(m->target));
	if (netj)
		json_object_set(res, "network", netj);
	if (strcmp(req->mode, "publish") != 0) {
		json_object_set_new(res, "branch", json_string(m->branch));
		json_object_set_new(res, "merged", json_boolean(m->merged));
	}
	if (rb->onto[0]) {
		json_object_set_new(res, "onto", json_string(rb->onto));
		json_object_set_new(res, "commit",
				    json_string(m->merged || rb->nothing ? rb->commit : rb->onto));
		json_object_set_new(res, "replayed", json_integer(rb->replayed));
	}
	if (rb->conflict)
		json_object_set_new(res, "conflicts", spw_lines_json(rb->conflicts));
	if (rb->commit[0] && !rb->conflict)
		json_object_set_new(res, "diff",
				    json_pack("{s:i, s:i, s:i, s:o}", "files", rb->stat.files,
					      "insertions", rb->stat.insertions, "deletions",
					      rb->stat.deletions, "paths", spw_lines_json(rb->stat.names)));
	if (m->tested) {
		json_t *tests = spw_testsum_json(&m->sum);
		const char *verdict = !m->sum.ok ? "failed"
				      : req->min_tests > 0 && m->sum.total >= 0 &&
						      m->sum.total < req->min_tests
					      ? "shrank"
					      : "passed";

		json_object_set_new(tests, "command", json_string(req->test_command));
		json_object_set_new(tests, "verdict", json_string(verdict));
		if (m->tail.len)
			json_object_set_new(tests, "output", json_string(buf_cstr(&m->tail)));
		json_object_set_new(res, "tests", tests);
	}
	if (m->merged && req->mirror[0])
		push_mirror(m->w, m->git, &m->cred, m->target, res);
}

json_t *spw_merge_run(const spw_worker_ctx *w)
{
	const spw_request *req = w->req;
	merge_ctx *m;
	json_t *res = NULL, *netj = NULL, *base;
	int64_t t0 = util_mono_ms();

	if (strcmp(req->mode, "merge") != 0 && strcmp(req->mode, "publish") != 0)
		return spw_change_run(w); /* import, test, pr */
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->w = w;
	m->status = "error";
	m->lim = req->limits;
	buf_init(&m->tail, 0);
	spw_limits_apply(&m->lim, &w->cfg->max);
	spw_worker_dir(w->cfg, req->id, m->dir, sizeof(m->dir));
	snprintf(m->ws, sizeof(m->ws), "%s/ws", m->dir);
	spw_transcript_path(w->cfg, req->id, m->transcript, sizeof(m->transcript));
	spw_net_init(&m->net, w, req->setup_command ? m->transcript : NULL);
	snprintf(m->branch, sizeof(m->branch), "task/%s", req->task);
	snprintf(m->target, sizeof(m->target), "%s", req->target[0] ? req->target : "main");
	spw_wlog(w, "status", "%s %s (task %s, attempt %d) starting on %s", req->mode, req->id,
		 req->task, w->attempt, w->spawner_id);

	if (merge_open(m) < 0)
		goto done;
	if (strcmp(req->mode, "publish") == 0) {
		merge_publish(m, &res);
		goto done;
	}
	if (merge_rebase(m) != 0)
		goto done;
	if (req->test_command && merge_tests(m) != 0)
		goto done;
	merge_push(m);

done:
	if (w->cancel && atomic_load(w->cancel) && !m->merged && strcmp(m->status, "error") == 0)
		m->status = "cancelled";
	/* the connections still open are cut first: every decision is counted */
	sbx_free(m->box);
	m->box = NULL;
	netj = spw_net_result(&m->net);
	base = spw_result_base(req, req->id, m->status, m->reason);
	if (base && res)
		json_object_update(base, res);
	json_decref(res);
	res = base;
	if (res) {
		merge_fields(m, res, netj);
		json_object_set_new(res, "wall_ms", json_integer(util_mono_ms() - t0));
	}
	/* the result goes to Redis, the database and a chat */
	res = spw_result_redact(res);
	spw_wlog(w, "status", "%s %s ended: %s: %s", req->mode, req->id, m->status, m->reason);
	json_decref(netj);
	spw_net_free(&m->net);
	spw_git_free(m->git);
	if (spw_remove_worker_dir(m->dir) < 0)
		spw_wlog(w, "status", "%s: %s (the janitor tries again)", req->id, err_last());
	spw_toolenv_free(m->wenv);
	sec_env_free(m->env);
	if (m->repo_secret)
		sec_value_free(m->repo_secret);
	buf_free(&m->tail);
	free(m);
	return res;
}
