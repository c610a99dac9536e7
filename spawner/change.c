/*
 * change — the requests of a change to an existing repository that run no
 * agent (spawner/request.h), and the poller of the pull requests opened:
 *
 *   import  the branch `target` of `repo` (a remote, with repo_secret; ""
 *           picks main, else master, else the only branch) pushed into
 *           `mirror`, the project's own repository; result "commit",
 *           "target";
 *   test    the test command (after setup_command) run in a fresh sandbox
 *           on `base` of `repo`: the baseline; result "commit", "tests"
 *           (status done whatever the tests say: they ran);
 *   pr      `target` of `repo` pushed (forced) to `mirror` as branch
 *           pr.head, then the pull request pr.head -> pr.base opened on the
 *           forge (spawner/forge.h), or, when one is open, its title and body
 *           updated; recorded in forge_prs (migration 028) for the poller;
 *           result "commit", "pr": {"number", "url", "head", "base",
 *           "created"}.
 *
 * The poller (spw_forge_poll, from the spawner's forge thread) reads each
 * open pull request that is due: its state, what people other than the
 * token's user wrote on it since the last look, and the failures CI
 * reported on its head; each becomes an event "forge" of the project's
 * thread (idempotency key "forge:<row>:<kind>:<id>", so a repeated look
 * delivers nothing twice): {"kind": "comment", "type": "issue_comment" |
 * "review_comment" | "review", "id", "user", "body", "path", "line",
 * "state", "url", "number"}, {"kind": "ci", "sha", "context", "state",
 * "description", "url", "number"}, {"kind": "merged" | "closed",
 * "number"}. A merged or closed pull request, and one whose project no
 * longer has a run (cancelled, failed), is no longer read.
 */
#include "spawner/spw_int.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/control.h"
#include "secrets/resource.h"
#include "secrets/runtime.h"
#include "secrets/store.h"
#include "spawner/forge.h"
#include "spawner/gitws.h"
#include "spawner/sandbox.h"
#include "spawner/testsum.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORGE_EVENT_KEY "forge"

/* What one run of a request has while it goes. */
typedef struct crun {
	const spw_worker_ctx *w;
	spw_git *git;
	spw_git_cred cred;
	char *repo_secret;
	struct sec_env *env;
	char dir[PATH_MAX], ws[PATH_MAX], url[1100];
	const char *status;
	char reason[1024];
	json_t *res; /* the mode's own fields */
} crun;

/* --- import --- */

static void run_import(crun *r)
{
	const spw_request *req = r->w->req;
	char branch[256], tip[41], mirror[1100];
	int rc;

	snprintf(branch, sizeof(branch), "%s", req->target);
	rc = branch[0] ? 0 : spw_git_default_branch(r->git, branch, sizeof(branch));
	if (rc == 0)
		rc = spw_git_branch_tip(r->git, branch, tip);
	if (rc < 0) {
		r->status = rc == ERR_NOTFOUND ? "failed" : "error";
		snprintf(r->reason, sizeof(r->reason), "%s", err_last());
		return;
	}
	rc = spw_repo_allowed(r->w->cfg, req->mirror, mirror, sizeof(mirror));
	if (rc < 0) {
		r->status = "refused";
		snprintf(r->reason, sizeof(r->reason), "%s", err_last());
		return;
	}
	spw_wlog(r->w, "status", "importing %s into the project's repository", branch);
	rc = spw_git_push_merge(r->git, mirror, NULL, branch, NULL);
	if (rc < 0) {
		r->status = "error";
		snprintf(r->reason, sizeof(r->reason), "the import failed: %s", err_last());
		return;
	}
	r->status = "done";
	snprintf(r->reason, sizeof(r->reason), "%s imported at %.12s", branch, tip);
	json_object_set_new(r->res, "commit", json_string(tip));
	json_object_set_new(r->res, "target", json_string(branch));
}

/* --- test: the baseline --- */

/* The setup command (the dependencies) before the tests. */
static int setup(crun *r, sbx *box)
{
	const char *argv[4] = {"bash", "-c", NULL, NULL};
	sbx_cmd sc;
	sbx_result res;
	buf script;
	int rc;

	memset(&sc, 0, sizeof(sc));
	memset(&res, 0, sizeof(res));
	buf_init(&script, 0);
	buf_printf(&script, "exec 2>&1\ncd /workspace && %s", r->w->req->setup_command);
	argv[2] = buf_cstr(&script);
	sc.argv = argv;
	sc.env = r->env ? (const char *const *)sec_env_strings(r->env) : NULL;
	sc.timeout_ms = r->w->cfg->test_timeout_ms;
	sc.output_cap = 64 * 1024;
	sc.cancel = r->w->cancel;
	spw_wlog(r->w, "status", "setting up: %s", r->w->req->setup_command);
	rc = sbx_run(box, &sc, &res);
	if (rc < 0) {
		snprintf(r->reason, sizeof(r->reason), "the setup command could not run: %s",
			 err_last());
	} else if (res.exit_code != 0) {
		r->status = "failed";
		snprintf(r->reason, sizeof(r->reason), "the setup command failed (exit %d%s%s)",
			 res.exit_code, res.reason[0] ? ": " : "", res.reason);
		rc = ERR_NODE;
	}
	sbx_result_free(&res);
	buf_free(&script);
	return rc;
}

static void run_test(crun *r)
{
	const spw_worker_ctx *w = r->w;
	const spw_request *req = w->req;
	spw_limits lim = req->limits;
	spw_testsum sum;
	sbx *box = NULL;
	buf tail;
	char commit[41], why[300];
	json_t *tests;
	int rc;

	memset(&sum, 0, sizeof(sum));
	buf_init(&tail, 0);
	spw_limits_apply(&lim, &w->cfg->max);
	rc = spw_git_resolve(r->git, req->base[0] ? req->base : "main", commit);
	if (rc < 0) {
		r->status = "failed";
		snprintf(r->reason, sizeof(r->reason), "%s", err_last());
		goto done;
	}
	if (spw_workspace_make(w, &lim, r->ws, r->reason, sizeof(r->reason)) < 0)
		goto done;
	rc = spw_git_export(r->git, commit, r->ws);
	if (rc == 0)
		rc = spw_worker_sandbox(w, &lim, r->ws, NULL, &box, r->reason, sizeof(r->reason));
	if (rc == 0) {
		rc = sbx_reown(box);
		if (rc < 0)
			snprintf(r->reason, sizeof(r->reason), "the sandbox could not be prepared: %s",
				 err_last());
	}
	if (rc < 0)
		goto done;
	if (req->setup_command && setup(r, box) < 0)
		goto done;
	spw_wlog(w, "status", "running the tests on %.12s", commit);
	rc = spw_run_tests(w, box, r->env ? sec_env_strings(r->env) : NULL, &sum, &tail, why,
			   sizeof(why));
	if (rc < 0) {
		snprintf(r->reason, sizeof(r->reason), "the tests could not be run: %s", err_last());
		goto done;
	}
	tests = spw_testsum_json(&sum);
	if (tests) {
		json_object_set_new(tests, "command", json_string(req->test_command));
		json_object_set_new(tests, "verdict", json_string(sum.ok ? "passed" : "failed"));
		if (tail.len)
			json_object_set_new(tests, "output", json_string(buf_cstr(&tail)));
		json_object_set_new(r->res, "tests", tests);
	}
	json_object_set_new(r->res, "commit", json_string(commit));
	r->status = "done";
	if (sum.total >= 0)
		snprintf(r->reason, sizeof(r->reason), "the tests ran on %.12s: %d passed, %d failed%s%s",
			 commit, sum.passed, sum.failed, why[0] ? "; " : "", why);
	else
		snprintf(r->reason, sizeof(r->reason), "the tests ran on %.12s: exit %d%s%s", commit,
			 sum.exit_code, why[0] ? "; " : "", why);
done:
	sbx_free(box);
	buf_free(&tail);
}

/* --- pr: the head pushed, the pull request opened or updated --- */

static const pg_stmt STMT_PR_RECORD = {
	"spw_pr_record",
	"INSERT INTO forge_prs (thread_id, project, remote, api, owner, name, number, head, base, "
	"handle, poll_at) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7::bigint, $8, $9, nullif($10, ''), "
	"now() + $11::bigint * interval '1 millisecond') ON CONFLICT (api, owner, name, number) DO "
	"UPDATE SET thread_id = EXCLUDED.thread_id, project = EXCLUDED.project, head = EXCLUDED.head, "
	"base = EXCLUDED.base, handle = EXCLUDED.handle, state = 'open', updated_at = now()",
	11,
};

/* The pull request in forge_prs, for the poller. */
static int record_pr(const spw_worker_ctx *w, const forge_repo *fr, const forge_pr *pr)
{
	const spw_request *req = w->req;
	char tid[24], num[24], poll[24];
	const char *params[11] = {tid, req->project, req->mirror, fr->api, fr->owner, fr->name, num,
				  req->pr.head, req->pr.base, req->repo_secret, poll};
	pg_conn *c = NULL;
	int rc;

	if (!req->thread_id)
		return 0; /* nobody to tell: not followed */
	snprintf(tid, sizeof(tid), "%lld", (long long)req->thread_id);
	snprintf(num, sizeof(num), "%lld", (long long)pr->number);
	snprintf(poll, sizeof(poll), "%lld", (long long)w->cfg->forge_poll_ms);
	rc = pg_pool_acquire(w->pool, 30000, &c);
	if (rc == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_PR_RECORD, params);
	pg_pool_release(w->pool, c);
	return rc;
}

/* Opens the pull request, or updates the one open for the head. */
static int open_or_update(forge *f, const spw_request *req, forge_pr *pr, int *created)
{
	int rc = forge_pr_find_open(f, req->pr.head, pr);

	*created = 0;
	if (rc == ERR_NOTFOUND) {
		err_clear();
		rc = forge_pr_create(f, req->pr.head, req->pr.base, req->pr.title, req->pr.body, pr);
		*created = rc == 0;
		if (rc == ERR_INVALID && strstr(err_last(), "already exists")) {
			/* opened meanwhile (an earlier attempt of this request) */
			err_clear();
			rc = forge_pr_find_open(f, req->pr.head, pr);
			*created = 0;
		}
		if (rc < 0 || *created)
			return rc;
	}
	if (rc == 0)
		rc = forge_pr_edit(f, pr->number, req->pr.title, req->pr.body, pr);
	return rc;
}

static void run_pr(crun *r)
{
	const spw_worker_ctx *w = r->w;
	const spw_request *req = w->req;
	const char *target = req->target[0] ? req->target : "main";
	char tip[41], mirror[1100];
	forge_repo fr;
	forge *f = NULL;
	forge_pr pr;
	int rc, created = 0;

	rc = spw_git_branch_tip(r->git, target, tip);
	if (rc == 0)
		rc = spw_repo_allowed(w->cfg, req->mirror, mirror, sizeof(mirror));
	if (rc == 0)
		rc = forge_repo_from_url(&fr, req->mirror, w->cfg->forge_api);
	if (rc == 0)
		rc = forge_new(&f, &fr, r->repo_secret);
	if (rc < 0) {
		r->status = rc == ERR_AUTH || rc == ERR_DENIED ? "refused" : "invalid";
		snprintf(r->reason, sizeof(r->reason), "%s", err_last());
		goto done;
	}
	spw_wlog(w, "status", "pushing %s to the remote as %s", target, req->pr.head);
	rc = spw_git_push_as(r->git, mirror, &r->cred, target, req->pr.head);
	if (rc < 0) {
		r->status = rc == ERR_AUTH ? "refused" : "error";
		snprintf(r->reason, sizeof(r->reason), "the branch was not pushed: %s", err_last());
		goto done;
	}
	rc = open_or_update(f, req, &pr, &created);
	if (rc == 0)
		rc = record_pr(w, &fr, &pr);
	if (rc < 0) {
		r->status = rc == ERR_AUTH || rc == ERR_DENIED ? "refused"
			    : rc == ERR_INVALID || rc == ERR_NOTFOUND ? "failed"
								       : "error";
		snprintf(r->reason, sizeof(r->reason), "%s", err_last());
		goto done;
	}
	r->status = "done";
	snprintf(r->reason, sizeof(r->reason), "pull request #%lld %s: %s", (long long)pr.number,
		 created ? "opened" : "updated", pr.html_url);
	json_object_set_new(r->res, "commit", json_string(tip));
	json_object_set_new(r->res, "pr",
			    json_pack("{s:I, s:s, s:s, s:s, s:s, s:b}", "number",
				      (json_int_t)pr.number, "url", pr.html_url, "head", req->pr.head,
				      "base", req->pr.base, "sha", tip, "created", created));
done:
	forge_free(f);
}

/* --- the run --- */

json_t *spw_change_run(const spw_worker_ctx *w)
{
	const spw_request *req = w->req;
	crun r;
	char host[PATH_MAX + 16];
	int64_t t0 = util_mono_ms();
	json_t *res;
	int rc;

	memset(&r, 0, sizeof(r));
	r.w = w;
	r.status = "error";
	r.res = json_object();
	spw_worker_dir(w->cfg, req->id, r.dir, sizeof(r.dir));
	snprintf(r.ws, sizeof(r.ws), "%s/ws", r.dir);
	snprintf(host, sizeof(host), "%s/host.git", r.dir);
	spw_wlog(w, "status", "%s %s (attempt %d) starting on %s", req->mode, req->id, w->attempt,
		 w->spawner_id);
	rc = spw_worker_access(w, &r.env, &r.repo_secret, r.url, sizeof(r.url), &r.status,
			       r.reason, sizeof(r.reason));
	r.cred.secret = r.repo_secret;
	if (rc == 0 && spw_worker_dir_reset(w->cfg, r.dir, r.reason, sizeof(r.reason)) < 0)
		rc = ERR_IO;
	if (rc == 0 && mkdir(r.dir, 0700) < 0)
		rc = err_set(ERR_IO, "cannot create %s", r.dir);
	if (rc == 0) {
		spw_wlog(w, "status", "cloning %s", req->repo);
		rc = spw_git_open(&r.git, r.url, &r.cred, host);
		if (rc < 0) {
			r.status = rc == ERR_AUTH ? "refused" : "error";
			snprintf(r.reason, sizeof(r.reason), "%s", err_last());
		}
	}
	if (rc == 0 && r.res) {
		if (strcmp(req->mode, "import") == 0)
			run_import(&r);
		else if (strcmp(req->mode, "test") == 0)
			run_test(&r);
		else
			run_pr(&r);
	}
	if (w->cancel && atomic_load(w->cancel) && strcmp(r.status, "error") == 0)
		r.status = "cancelled";
	res = spw_result_base(req, req->id, r.status, r.reason);
	if (res && r.res)
		json_object_update(res, r.res);
	if (res) {
		json_object_set_new(res, "mode", json_string(req->mode));
		json_object_set_new(res, "attempt", json_integer(w->attempt));
		json_object_set_new(res, "spawner", json_string(w->spawner_id));
		json_object_set_new(res, "wall_ms", json_integer(util_mono_ms() - t0));
	}
	res = spw_result_redact(res);
	spw_wlog(w, "status", "%s %s ended: %s: %s", req->mode, req->id, r.status, r.reason);
	json_decref(r.res);
	spw_git_free(r.git);
	if (spw_remove_worker_dir(r.dir) < 0)
		spw_wlog(w, "status", "%s: %s (the janitor tries again)", req->id, err_last());
	sec_env_free(r.env);
	if (r.repo_secret)
		sec_value_free(r.repo_secret);
	return res;
}

/* --- the poller --- */

static const pg_stmt STMT_PR_DUE = {
	"spw_pr_due",
	"SELECT id, thread_id, project, api, owner, name, number, handle, login, seen::text, active "
	"FROM spawn_forge_due($1::bigint, 20)",
	1,
};

static const pg_stmt STMT_PR_SEEN = {
	"spw_pr_seen",
	"UPDATE forge_prs SET seen = $2::jsonb, login = nullif($3, ''), state = $4, last_error = "
	"nullif($5, ''), poll_at = greatest(poll_at, now() + $6::bigint * interval '1 millisecond'), "
	"updated_at = now() WHERE id = $1::bigint",
	6,
};

/* A rate limit: the next look waits this much longer. */
#define RATE_LIMIT_PAUSE_MS (5 * 60 * 1000)

/* One pull request as the poller reads it. */
typedef struct pr_row {
	int64_t id, thread_id, number;
	char project[256], handle[64], login[128];
	forge_repo repo;
	json_t *seen;     /* owned */
	char state[16];
	int active;
	int events;
} pr_row;

static const char *const NOTE_TYPES[FORGE_NOTE_KINDS] = {"issue_comment", "review_comment",
							  "review"};

/* Delivers one event (stolen) with idempotency key idem. */
static int deliver(pg_conn *c, pr_row *row, const char *idem, json_t *ev)
{
	int dup = 0, rc;

	if (!ev)
		return err_set(ERR_NOMEM, "out of memory");
	json_object_set_new(ev, "number", json_integer(row->number));
	rc = eng_deliver(c, row->thread_id, FORGE_EVENT_KEY, ev, idem, NULL, &dup);
	json_decref(ev);
	row->events += rc == 0 && !dup;
	return rc;
}

/* What people other than the token's user wrote since the last look. */
static int deliver_notes(pg_conn *c, forge *f, pr_row *row)
{
	int64_t after[FORGE_NOTE_KINDS];
	forge_notes notes = {NULL, 0};
	char idem[160];
	int rc;

	for (int k = 0; k < FORGE_NOTE_KINDS; k++)
		after[k] = json_integer_value(json_object_get(row->seen, NOTE_TYPES[k]));
	rc = forge_notes_since(f, row->number, after, &notes);
	for (size_t i = 0; rc == 0 && i < notes.n; i++) {
		const forge_note *n = &notes.v[i];
		int own = row->login[0] && strcmp(n->user, row->login) == 0;
		int quiet = n->kind == FORGE_REVIEW &&
			    (strcmp(n->state, "APPROVED") == 0 || !n->body[0]);

		if (n->id > after[n->kind])
			after[n->kind] = n->id;
		if (own || quiet)
			continue; /* its own words, an approval, a review that holds only its comments */
		snprintf(idem, sizeof(idem), "forge:%lld:%s:%lld", (long long)row->id,
			 NOTE_TYPES[n->kind], (long long)n->id);
		rc = deliver(c, row, idem,
			     json_pack("{s:s, s:s, s:I, s:s, s:s, s:s?, s:i, s:s?, s:s?}", "kind",
				       "comment", "type", NOTE_TYPES[n->kind], "id", (json_int_t)n->id,
				       "user", n->user, "body", n->body, "path",
				       n->path[0] ? n->path : NULL, "line", n->line, "state",
				       n->state[0] ? n->state : NULL, "url", n->url[0] ? n->url : NULL));
	}
	for (int k = 0; rc == 0 && k < FORGE_NOTE_KINDS; k++)
		json_object_set_new(row->seen, NOTE_TYPES[k], json_integer(after[k]));
	forge_notes_free(&notes);
	return rc;
}

/* The failures CI reported on the head that were not delivered yet. */
static int deliver_failures(pg_conn *c, forge *f, pr_row *row, const char *sha)
{
	forge_check *v = NULL;
	size_t n = 0;
	json_t *checks = json_object_get(row->seen, "checks");
	char key[400], idem[480];
	int rc = forge_failures(f, sha, &v, &n);

	if (!json_is_array(checks)) {
		checks = json_array();
		json_object_set_new(row->seen, "checks", checks);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int known = 0;
		size_t k;
		const json_t *s;

		snprintf(key, sizeof(key), "%s:%s", sha, v[i].context);
		json_array_foreach(checks, k, s)
			known |= strcmp(json_string_value(s), key) == 0;
		if (known)
			continue;
		snprintf(idem, sizeof(idem), "forge:%lld:ci:%s", (long long)row->id, key);
		rc = deliver(c, row, idem,
			     json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "ci", "sha", sha,
				       "context", v[i].context, "state", v[i].state, "description",
				       v[i].description, "url", v[i].url));
		if (rc == 0)
			json_array_append_new(checks, json_string(key));
	}
	/* only the latest head's matter: older ones are dropped from the record */
	for (size_t k = json_array_size(checks); rc == 0 && k-- > 0;)
		if (strncmp(json_string_value(json_array_get(checks, k)), sha, strlen(sha)) != 0)
			json_array_remove(checks, k);
	free(v);
	return rc;
}

/* The tokens the poller resolved, kept TOKEN_TTL_MS so that a look every
 * minute is not a secret resolved (and audited) every minute; a revoked
 * handle stops working when its entry expires. */
#define TOKEN_TTL_MS (10 * 60 * 1000)
#define TOKEN_CACHE 32

static struct {
	char project[256], handle[64];
	char *value; /* sec_value_alloc'd */
	int64_t until;
} g_tokens[TOKEN_CACHE];
static pthread_mutex_t g_tokens_mu = PTHREAD_MUTEX_INITIALIZER;

/* A new forge client for the row, with its handle's token. */
static int row_client(pg_conn *c, const pr_row *row, forge **out)
{
	sec_store *store = sec_runtime_store();
	int64_t now = util_mono_ms();
	char *secret = NULL;
	int rc = ERR_NOTFOUND, slot = 0;

	*out = NULL;
	if (!store || !row->handle[0])
		return err_set(ERR_DENIED, "no token to read the pull request with (the project's git "
					   "handle, with the spawner's secrets store)");
	pthread_mutex_lock(&g_tokens_mu);
	for (int i = 0; i < TOKEN_CACHE; i++) {
		if (g_tokens[i].value && g_tokens[i].until <= now) {
			sec_value_free(g_tokens[i].value);
			g_tokens[i].value = NULL;
		}
		if (g_tokens[i].value && strcmp(g_tokens[i].handle, row->handle) == 0 &&
		    strcmp(g_tokens[i].project, row->project) == 0)
			rc = forge_new(out, &row->repo, g_tokens[i].value);
		if (!g_tokens[i].value || g_tokens[i].until < g_tokens[slot].until)
			slot = i;
	}
	if (rc == ERR_NOTFOUND) {
		rc = sec_res_resolve(store, c, row->project, row->handle, "forge-poller", 0, &secret);
		if (rc == 0)
			rc = forge_new(out, &row->repo, secret);
		if (rc == 0) {
			if (g_tokens[slot].value)
				sec_value_free(g_tokens[slot].value);
			g_tokens[slot].value = secret;
			g_tokens[slot].until = now + TOKEN_TTL_MS;
			snprintf(g_tokens[slot].handle, sizeof(g_tokens[slot].handle), "%s", row->handle);
			snprintf(g_tokens[slot].project, sizeof(g_tokens[slot].project), "%s",
				 row->project);
			secret = NULL;
		}
	}
	pthread_mutex_unlock(&g_tokens_mu);
	if (secret)
		sec_value_free(secret);
	return rc;
}

/* One look at one pull request: its state, notes and failures. */
static int poll_one(pg_conn *c, pr_row *row)
{
	char idem[96];
	forge *f = NULL;
	forge_pr pr;
	int rc;

	if (!row->active) {
		snprintf(row->state, sizeof(row->state), "stopped");
		return 0; /* the project was cancelled, or its run failed: nobody listens */
	}
	rc = row_client(c, row, &f);
	if (rc == 0 && !row->login[0])
		rc = forge_login(f, row->login, sizeof(row->login));
	if (rc == 0)
		rc = forge_pr_get(f, row->number, &pr);
	if (rc == 0 && strcmp(pr.state, "open") != 0) {
		snprintf(row->state, sizeof(row->state), "%s", pr.merged ? "merged" : "closed");
		snprintf(idem, sizeof(idem), "forge:%lld:%s", (long long)row->id, row->state);
		rc = deliver(c, row, idem, json_pack("{s:s, s:s}", "kind", row->state, "url",
						     pr.html_url));
	} else if (rc == 0) {
		rc = deliver_notes(c, f, row);
		if (rc == 0 && pr.head_sha[0])
			rc = deliver_failures(c, f, row, pr.head_sha);
	}
	forge_free(f);
	return rc;
}

static void row_read(const PGresult *res, int i, pr_row *row)
{
	memset(row, 0, sizeof(*row));
	row->id = pg_int(res, i, 0);
	row->thread_id = pg_int(res, i, 1);
	snprintf(row->project, sizeof(row->project), "%s", pg_val(res, i, 2));
	snprintf(row->repo.api, sizeof(row->repo.api), "%s", pg_val(res, i, 3));
	snprintf(row->repo.owner, sizeof(row->repo.owner), "%s", pg_val(res, i, 4));
	snprintf(row->repo.name, sizeof(row->repo.name), "%s", pg_val(res, i, 5));
	row->number = pg_int(res, i, 6);
	snprintf(row->handle, sizeof(row->handle), "%s", pg_val(res, i, 7));
	snprintf(row->login, sizeof(row->login), "%s", pg_val(res, i, 8));
	row->seen = json_loads(pg_val(res, i, 9), 0, NULL);
	if (!json_is_object(row->seen)) {
		json_decref(row->seen);
		row->seen = json_object();
	}
	row->active = strcmp(pg_val(res, i, 10), "t") == 0;
	snprintf(row->state, sizeof(row->state), "open");
}

int spw_forge_poll(pg_pool *pool, const spw_config *cfg, int *out_events)
{
	char every[24];
	const char *params[1] = {every};
	PGresult *res = NULL;
	pg_conn *c = NULL;
	int rc, events = 0;

	if (out_events)
		*out_events = 0;
	snprintf(every, sizeof(every), "%lld", (long long)(cfg->forge_poll_ms > 0 ? cfg->forge_poll_ms
										  : 60000));
	rc = pg_pool_acquire(pool, 10000, &c);
	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_PR_DUE, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		pr_row row;
		char id[24], *seen;
		int prc;

		row_read(res, i, &row);
		prc = poll_one(c, &row);
		if (prc < 0)
			log_warn("spawner", "pull request #%lld of %s/%s: %s", (long long)row.number,
				 row.repo.owner, row.repo.name, err_last());
		snprintf(id, sizeof(id), "%lld", (long long)row.id);
		seen = json_dumps(row.seen, JSON_COMPACT);
		{
			char *why = prc < 0 ? redact_str(err_last()) : NULL;
			char pause[24];
			const char *p[6] = {id, seen ? seen : "{}", row.login, row.state, why ? why : "",
					    pause};
			snprintf(pause, sizeof(pause), "%d", prc == ERR_BUSY ? RATE_LIMIT_PAUSE_MS : 0);
			rc = pg_exec_stmt(c, NULL, &STMT_PR_SEEN, p);
			free(why);
		}
		events += row.events;
		free(seen);
		json_decref(row.seen);
	}
	PQclear(res);
	pg_pool_release(pool, c);
	if (out_events)
		*out_events = events;
	return rc;
}
