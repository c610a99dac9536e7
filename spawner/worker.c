/*
 * worker — one spawn request from start to result (spw_int.h).
 *
 * Order of work, each step's failure ending in a result that says why:
 *   1. grants: the request's handles become the sandbox's environment
 *      (sec_env_resolve, all or nothing) and its repo_secret the git
 *      credentials (sec_res_resolve, host side only): "refused" on failure,
 *      before anything is created;
 *   2. the repository: a local path must lie under ORCH_SPAWN_REPO_ROOTS;
 *   3. the workspace: a fresh folder with a disk quota, the host's bare clone
 *      beside it, the agent's clone on task/<task> in it (spawner/gitws.h);
 *   4. the sandbox (one box for the worker; every command a fresh sandbox);
 *   5. the base's test inventory, when there is a test command;
 *   6. the agent (spawner/agent.h);
 *   7. the commit of the work tree; a changed file holding a secret's value
 *      stops here (nothing is pushed); then the work tree is reset to the
 *      commit and the tests run in a fresh sandbox;
 *   8. the push of task/<task>, when anything changed;
 *   9. the sandbox and the workspace are removed; the transcript stays.
 */
#include "spawner/spw_int.h"
#include "core/err.h"
#include "core/log.h"
#include "core/embed.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/util.h"
#include "secrets/resource.h"
#include "secrets/runtime.h"
#include "secrets/store.h"
#include "spawner/agent.h"
#include "spawner/egress.h"
#include "spawner/gitws.h"
#include "spawner/sandbox.h"
#include "spawner/testsum.h"
#include "spawner/toolenv.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

#define TEST_OUTPUT_CAP ((size_t)8 << 20)
#define AGENTS_MD_MAX ((size_t)16 << 10) /* bytes of AGENTS.md put in the task prompt */
#define TEST_TAIL_KEEP 2000

void spw_worker_dir(const spw_config *cfg, const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/workers/%s", cfg->data_dir, id);
}

void spw_transcript_path(const spw_config *cfg, const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/transcripts/%s.jsonl", cfg->data_dir, id);
}

/* --- removing a worker's folder --- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int is_mountpoint(const char *dir)
{
	struct stat a, b;
	char up[PATH_MAX];

	snprintf(up, sizeof(up), "%s/..", dir);
	if (stat(dir, &a) < 0 || stat(up, &b) < 0)
		return 0;
	return a.st_dev != b.st_dev;
}

int spw_remove_worker_dir(const char *dir)
{
	char ws[PATH_MAX];
	struct stat st;

	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : err_set(ERR_IO, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(ERR_IO, "%s is not a folder", dir);
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	if (is_mountpoint(ws) && sbx_quota_unmount(ws) < 0)
		return err_wrap("cannot remove the workspace %s", dir);
	/* a loop quota's image lies beside the workspace */
	if (nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
		return err_set(ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
	return 0;
}

/* --- results --- */

json_t *spw_result_base(const spw_request *req, const char *id, const char *status,
			const char *reason)
{
	json_t *r = json_object();
	char *red = redact_str(reason ? reason : "");

	if (!r || !red) {
		json_decref(r);
		free(red);
		return NULL;
	}
	json_object_set_new(r, "id", json_string(id));
	json_object_set_new(r, "status", json_string(status));
	json_object_set_new(r, "reason", json_string(red));
	free(red);
	if (req && req->task[0])
		json_object_set_new(r, "task", json_string(req->task));
	if (req && req->project[0])
		json_object_set_new(r, "project", json_string(req->project));
	if (req && req->thread_id)
		json_object_set_new(r, "thread_id", json_integer(req->thread_id));
	if (req && req->run_id)
		json_object_set_new(r, "run_id", json_integer(req->run_id));
	if (req && req->meta)
		json_object_set(r, "meta", req->meta);
	return r;
}

/* --- helpers --- */

int spw_repo_allowed(const spw_config *cfg, const char *repo, char *out, size_t cap)
{
	char real[PATH_MAX];
	const char *p = cfg->repo_roots;

	if (repo[0] != '/') {
		snprintf(out, cap, "%s", repo);
		return 0; /* a URL */
	}
	if (!realpath(repo, real))
		return err_set(ERR_NOTFOUND, "the repository %s does not exist: %s", repo,
			       strerror(errno));
	while (*p) {
		size_t n = strcspn(p, ":");
		char root[PATH_MAX], rroot[PATH_MAX];

		if (n > 0 && n < sizeof(root)) {
			memcpy(root, p, n);
			root[n] = '\0';
			if (realpath(root, rroot)) {
				size_t rl = strlen(rroot);
				if (strncmp(real, rroot, rl) == 0 && (real[rl] == '/' || rl == 1)) {
					snprintf(out, cap, "%s", real);
					return 0;
				}
			}
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return err_set(ERR_DENIED, "the repository %s is not under ORCH_SPAWN_REPO_ROOTS (%s): "
				   "put it there or add its folder to that list", repo,
		       cfg->repo_roots);
}

void spw_wlog(const spw_worker_ctx *w, const char *kind, const char *fmt, ...)
{
	va_list ap;
	buf b;

	if (!w->log)
		return;
	buf_init(&b, 1 << 16);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	redact_buf(&b);
	w->log(w->log_udata, kind, buf_cstr(&b));
	buf_free(&b);
}

/* The series of orch_spawner_workers, one per phase, made once. */
static met_series *phase_series[SPW_PHASE_COUNT];
static pthread_once_t phase_once = PTHREAD_ONCE_INIT;

static void phase_init(void)
{
	static const char *const names[SPW_PHASE_COUNT] = {
		"preparing", "cloning", "base_tests", "agent", "tests", "rebasing", "pushing",
		"reporting"};
	met_family *f = met_gauge("orch_spawner_workers",
				  "workers this spawner runs now, by phase", "phase");

	for (int i = 0; i < SPW_PHASE_COUNT; i++)
		phase_series[i] = met_with(f, names[i]);
}

void spw_phase_set(atomic_int *phase, spw_phase p)
{
	int old;

	if (!phase)
		return;
	pthread_once(&phase_once, phase_init);
	old = atomic_exchange(phase, (int)p);
	if (old == (int)p)
		return;
	if (old >= 0 && old < SPW_PHASE_COUNT)
		met_add(phase_series[old], -1);
	if (p >= 0 && p < SPW_PHASE_COUNT)
		met_add(phase_series[p], 1);
}

void spw_wphase(const spw_worker_ctx *w, spw_phase p)
{
	spw_phase_set(w->phase, p);
}

/* The prompt at `path` (a template stored in the database wins over the
 * built-in one) into *out, owned by the caller (free). */
static int embedded(const char *path, char **out)
{
	buf b;

	*out = NULL;
	buf_init(&b, 0);
	if (embed_text(path, &b) < 0) {
		buf_free(&b);
		return err_set(ERR_INTERNAL, "the prompt %s is not built in", path);
	}
	*out = buf_steal(&b);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

int spw_run_tests(const spw_worker_ctx *w, sbx *box, char *const *env, spw_testsum *sum,
		     buf *tail, char *why, size_t whycap)
{
	const char *argv[4] = {"bash", "-c", NULL, NULL};
	buf script;
	sbx_cmd sc;
	sbx_result res;
	int rc;

	buf_init(&script, 0);
	memset(&sc, 0, sizeof(sc));
	memset(&res, 0, sizeof(res));
	why[0] = '\0';
	rc = buf_puts(&script, "exec 2>&1\ncd /workspace && ");
	if (rc == 0)
		rc = buf_puts(&script, w->req->test_command);
	if (rc < 0)
		goto done;
	argv[2] = buf_cstr(&script);
	sc.argv = argv;
	sc.env = (const char *const *)env;
	sc.timeout_ms = w->cfg->test_timeout_ms;
	sc.output_cap = TEST_OUTPUT_CAP;
	sc.cancel = w->cancel;
	rc = sbx_run(box, &sc, &res);
	if (rc < 0)
		goto done;
	spw_testsum_parse(res.out.data ? res.out.data : "", res.out.len, res.exit_code, sum);
	if (res.timed_out || res.oom_killed || res.pids_limited || res.disk_full ||
	    res.cancelled)
		snprintf(why, whycap, "%s", res.reason);
	if (tail) {
		size_t keep = res.out.len > TEST_TAIL_KEEP ? TEST_TAIL_KEEP : res.out.len;
		buf_reset(tail);
		buf_append(tail, res.out.data ? res.out.data + res.out.len - keep : "", keep);
		redact_buf(tail);
	}
done:
	sbx_result_free(&res);
	buf_free(&script);
	return rc;
}

json_t *spw_testsum_json(const spw_testsum *s)
{
	json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:s, s:i}", "passed", s->passed, "failed",
			      s->failed, "skipped", s->skipped, "total", s->total, "format", s->format,
			      "exit_code", s->exit_code);

	if (j && s->failed > 0 && s->failing_known)
		json_object_set_new(j, "failing", spw_lines_json(s->failing));
	return j;
}

int spw_tests_accepted(const spw_request *req, const spw_testsum *sum, const spw_testsum *base)
{
	const char *p;

	if (sum->ok)
		return 1;
	if (req->allowed_failures <= 0 || sum->total < 0 || sum->failed <= 0 ||
	    sum->failed > req->allowed_failures)
		return 0;
	if (req->allowed_failing && sum->failing_known) {
		/* by name: each test failing now failed before any work */
		for (p = sum->failing; *p; p += strcspn(p, "\n") + 1) {
			char name[512];
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(p, "\n"), p);
			if (!spw_testsum_named(req->allowed_failing, name))
				return 0;
		}
		return 1;
	}
	/* by counts: no more fail, no fewer pass than on the base */
	return !base || base->passed < 0 || sum->passed >= base->passed;
}

static int fingerprint_cb(void *udata, unsigned char out[32])
{
	return spw_git_fingerprint(udata, out);
}

/* ORCH_WORKER_DISK_KIND as an sbx_quota_kind; 0 for none. */
static int disk_kind(const char *s)
{
	if (strcmp(s, "tmpfs") == 0)
		return SBX_QUOTA_TMPFS;
	if (strcmp(s, "loop") == 0)
		return SBX_QUOTA_LOOP;
	return 0;
}

/* --- shared with merge.c --- */

int spw_worker_grants(const spw_worker_ctx *w, sec_env **env, char **repo_secret,
		      const char **status, char *reason, size_t cap)
{
	const spw_request *req = w->req;
	pg_conn *c = NULL;
	char actor[200];
	int rc;

	*env = NULL;
	*repo_secret = NULL;
	if (req->nhandles == 0 && !req->repo_secret[0])
		return 0;
	snprintf(actor, sizeof(actor), "worker:%s", req->id);
	rc = pg_pool_acquire(w->pool, 30000, &c);
	if (rc < 0) {
		*status = "error";
		snprintf(reason, cap, "the database is unreachable: %s", err_last());
		return rc;
	}
	{
		sec_store *store = sec_runtime_store();

		if (!store) {
			*status = "refused";
			snprintf(reason, cap,
				 "the request grants secrets but this spawner has no secrets store: "
				 "run 'orchestrator secrets init' and restart it");
			rc = ERR_DENIED;
			goto done;
		}
		if (req->nhandles > 0) {
			sec_grant g;

			memset(&g, 0, sizeof(g));
			g.scope = req->project;
			g.handles = (const char *const *)req->handles;
			g.nhandles = req->nhandles;
			g.actor = actor;
			g.run_id = req->run_id;
			rc = sec_env_resolve(store, c, &g, env);
			if (rc < 0) {
				*status = "refused";
				snprintf(reason, cap, "the worker was not started: %s", err_last());
				goto done;
			}
		}
		if (req->repo_secret[0]) {
			rc = sec_res_resolve(store, c, req->project, req->repo_secret, actor,
					     req->run_id, repo_secret);
			if (rc < 0) {
				*status = "refused";
				snprintf(reason, cap, "the worker was not started: repo_secret: %s",
					 err_last());
				goto done;
			}
		}
	}
done:
	pg_pool_release(w->pool, c);
	if (rc < 0) {
		sec_env_free(*env);
		*env = NULL;
	}
	return rc;
}

int spw_worker_access(const spw_worker_ctx *w, sec_env **env, char **repo_secret, char *url,
		      size_t urlcap, const char **status, char *reason, size_t cap)
{
	int rc = spw_worker_grants(w, env, repo_secret, status, reason, cap);

	if (rc < 0)
		return rc;
	rc = spw_repo_allowed(w->cfg, w->req->repo, url, urlcap);
	if (rc < 0) {
		*status = "refused";
		snprintf(reason, cap, "%s", err_last());
	}
	return rc;
}

int spw_worker_dir_reset(const spw_config *cfg, const char *dir, char *reason, size_t cap)
{
	char parent[PATH_MAX];

	if (spw_remove_worker_dir(dir) < 0) {
		snprintf(reason, cap, "%s", err_last());
		return ERR_IO;
	}
	snprintf(parent, sizeof(parent), "%s/workers", cfg->data_dir);
	mkdir(parent, 0700);
	return 0;
}

int spw_workspace_make(const spw_worker_ctx *w, const spw_limits *lim, const char *ws,
		       char *reason, size_t cap)
{
	int kind;

	if (mkdir(ws, 0700) < 0) {
		snprintf(reason, cap, "cannot create the workspace %s: %s", ws, strerror(errno));
		return ERR_IO;
	}
	kind = disk_kind(w->cfg->disk_kind);
	if (kind && sbx_quota_mount(ws, lim->disk_bytes, (sbx_quota_kind)kind) < 0) {
		snprintf(reason, cap, "cannot give the workspace its disk quota: %s", err_last());
		return ERR_IO;
	}
	return 0;
}

int spw_worker_sandbox(const spw_worker_ctx *w, const spw_limits *lim, const char *ws,
		       const char *egress_socket, sbx **out, char *reason, size_t cap)
{
	const spw_config *cfg = w->cfg;
	sbx_opts o;
	int rc;

	*out = NULL;
	memset(&o, 0, sizeof(o));
	rc = sbx_backend_parse(cfg->sandbox, &o.backend);
	if (rc < 0) {
		snprintf(reason, cap, "%s", err_last());
		return rc;
	}
	o.workspace = ws;
	spw_limits_to_sbx(lim, &o);
	o.allow_degraded = cfg->allow_degraded;
	o.image = cfg->sandbox_image[0] ? cfg->sandbox_image : NULL;
	o.runtime = cfg->sandbox_runtime[0] ? cfg->sandbox_runtime : NULL;
	o.egress_socket = egress_socket;
	rc = sbx_new(out, &o);
	if (rc < 0)
		snprintf(reason, cap, "the sandbox could not be prepared: %s", err_last());
	return rc;
}

json_t *spw_lines_json(const char *s)
{
	json_t *a = json_array();

	while (a && *s) {
		size_t n = strcspn(s, "\n");
		if (n)
			json_array_append_new(a, json_stringn(s, n));
		s += n;
		if (*s == '\n')
			s++;
	}
	return a;
}

json_t *spw_result_redact(json_t *res)
{
	/* string by string, decoded: filtering the serialised text missed values
	 * in an escaped form and, when a replacement broke the JSON, kept the
	 * result as it was */
	json_t *clean = res ? redact_json(res) : NULL;

	json_decref(res);
	return clean;
}

/* --- the repository's instructions to agents --- */

/* Appends to `out` the section of the task prompt that carries the
 * repository's AGENTS.md (its first AGENTS_MD_MAX bytes), or nothing when
 * the checkout at `ws` has none. The file is the repository's, so it is read
 * as untrusted: only a regular file in the top folder, never through a
 * symbolic link (a link to a host file would show that file to the model),
 * never blocking on a FIFO. Returns 0, or <0 on a failed allocation. */
static int agents_md(const spw_worker_ctx *w, const char *ws, buf *out)
{
	char path[PATH_MAX], data[AGENTS_MD_MAX];
	struct stat st;
	size_t n = 0;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/AGENTS.md", ws);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			spw_wlog(w, "status", "AGENTS.md is a symbolic link: not read");
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		spw_wlog(w, "status", "AGENTS.md is not a regular file: not read");
		goto done;
	}
	while (n < sizeof(data)) {
		ssize_t r = read(fd, data + n, sizeof(data) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (n == 0)
		goto done;
	/* a cut inside a UTF-8 sequence would end in U+FFFD: end before it */
	if ((size_t)st.st_size > n)
		while (n > 0 && ((unsigned char)data[n - 1] & 0xc0) == 0x80)
			n--;
	if (n > 0 && (unsigned char)data[n - 1] >= 0xc0)
		n--;
	rc = buf_puts(out, "\nThe repository's AGENTS.md, its maintainers' instructions to agents "
			   "(follow them where they do not contradict the rules above):\n\n"
			   "<agents_md>\n");
	for (size_t i = 0; rc == 0 && i < n; i++) /* a NUL would end the prompt early */
		rc = buf_putc(out, data[i] ? data[i] : ' ');
	if (rc == 0 && data[n - 1] != '\n')
		rc = buf_putc(out, '\n');
	if (rc == 0 && (size_t)st.st_size > n)
		rc = buf_printf(out, "[... cut: the file has %lld bytes; read the rest in "
				     "/workspace/AGENTS.md]\n",
				(long long)st.st_size);
	if (rc == 0)
		rc = buf_puts(out, "</agents_md>\n");
	spw_wlog(w, "status", "read AGENTS.md (%lld bytes)", (long long)st.st_size);
done:
	close(fd);
	return rc;
}

/* --- the worker --- */

/* One worker's run: what its steps share, freed at its end. */
typedef struct worker_ctx {
	const spw_worker_ctx *w;
	const spw_request *req;
	spw_limits lim;
	sec_env *env;
	char **wenv;           /* the toolchains' variables and the granted ones */
	char *repo_secret;
	spw_git *git;
	spw_git_cred cred;
	sbx *box;
	spw_net net;
	agent_result ar;
	spw_testsum base_sum, sum;
	spw_diffstat ds;
	buf sys, task, tail, notes;
	json_t *tests;
	int changed, pushed, have_base, agent_ran;
	int64_t t0;
	const char *status;
	char reason[1024];
	char dir[PATH_MAX], ws[PATH_MAX], host[PATH_MAX], transcript[PATH_MAX], url[1100];
	char branch[128], commit[41], why[300];
} worker_ctx;

/* The one place a step's end is written: the status (NULL keeps the one in
 * force) and the reason from `fmt`. Returns -1, for `return wk_stop(...)`. */
static int wk_stop(worker_ctx *k, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wk_stop(worker_ctx *k, const char *status, const char *fmt, ...)
{
	va_list ap;

	if (status)
		k->status = status;
	va_start(ap, fmt);
	vsnprintf(k->reason, sizeof(k->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends `line` to the transcript (nothing when NULL); takes it. */
static void wk_transcript(const worker_ctx *k, json_t *line)
{
	if (line)
		agent_transcript_append(k->transcript, line);
	json_decref(line);
}

/* The paths and the limits in force, before any step. */
static void wk_init(worker_ctx *k, const spw_worker_ctx *w)
{
	const spw_config *cfg = w->cfg;

	k->w = w;
	k->req = w->req;
	k->lim = w->req->limits;
	k->status = "error";
	k->t0 = util_mono_ms();
	buf_init(&k->sys, 0);
	buf_init(&k->task, 0);
	buf_init(&k->tail, 0);
	buf_init(&k->notes, 0);
	spw_limits_apply(&k->lim, &cfg->max);
	spw_worker_dir(cfg, k->req->id, k->dir, sizeof(k->dir));
	snprintf(k->ws, sizeof(k->ws), "%s/ws", k->dir);
	snprintf(k->host, sizeof(k->host), "%s/host.git", k->dir);
	spw_transcript_path(cfg, k->req->id, k->transcript, sizeof(k->transcript));
	spw_net_init(&k->net, w, k->transcript);
	snprintf(k->branch, sizeof(k->branch), "task/%s", k->req->task);
	spw_wlog(w, "status", "worker %s (task %s, attempt %d) starting on %s", k->req->id,
		 k->req->task, w->attempt, w->spawner_id);
}

/* Steps 1 to 3: the grants, the repository, the workspace (a previous
 * attempt's is discarded) and the clone. */
static int wk_workspace(worker_ctx *k)
{
	const spw_worker_ctx *w = k->w;
	char parent[PATH_MAX];
	int rc;

	rc = spw_worker_access(w, &k->env, &k->repo_secret, k->url, sizeof(k->url), &k->status,
			       k->reason, sizeof(k->reason));
	if (rc < 0)
		return rc;
	k->cred.secret = k->repo_secret;
	if (spw_worker_dir_reset(w->cfg, k->dir, k->reason, sizeof(k->reason)) < 0)
		return -1;
	snprintf(parent, sizeof(parent), "%s/transcripts", w->cfg->data_dir);
	mkdir(parent, 0700);
	if (mkdir(k->dir, 0700) < 0)
		return wk_stop(k, NULL, "cannot create the workspace %s: %s", k->ws, strerror(errno));
	if (spw_workspace_make(w, &k->lim, k->ws, k->reason, sizeof(k->reason)) < 0)
		return -1;
	if (w->attempt > 1)
		wk_transcript(k, json_pack("{s:s, s:I, s:i, s:s}", "type", "attempt", "t",
					   (json_int_t)util_wall_ms(), "attempt", w->attempt,
					   "spawner", w->spawner_id));
	spw_wphase(w, SPW_PHASE_CLONING);
	spw_wlog(w, "status", "cloning %s (base %s)", k->req->repo,
		 k->req->base[0] ? k->req->base : "default");
	rc = spw_git_prepare(&k->git, k->url, &k->cred, k->req->base, k->branch, k->host, k->ws);
	if (rc < 0)
		return wk_stop(k, rc == ERR_AUTH ? "refused" : "error", "%s", err_last());
	return 0;
}

/* The setup command (the dependencies), with the network the policy gives
 * it; nothing without one. A failing setup ends the worker "failed". */
static int wk_setup(worker_ctx *k)
{
	int rc;

	if (!k->req->setup_command)
		return 0;
	rc = spw_run_setup(k->w, k->box, k->wenv, &k->net, k->reason, sizeof(k->reason));
	if (rc < 0)
		return wk_stop(k, NULL, "the setup command could not be run: %s", err_last());
	if (rc == 1)
		k->status = "failed";
	return rc;
}

/* Step 4: the network (its policy, the proxy's attachment), the sandbox,
 * the environment, the setup; step 5: the base's tests. */
static int wk_sandbox(worker_ctx *k)
{
	const spw_worker_ctx *w = k->w;
	int rc;

	rc = spw_net_open(&k->net, k->ws, &k->status, k->reason, sizeof(k->reason));
	if (rc < 0)
		return rc;
	rc = spw_worker_sandbox(w, &k->lim, k->ws, spw_net_socket(&k->net), &k->box, k->reason,
				sizeof(k->reason));
	if (rc < 0)
		return rc;
	rc = spw_toolenv_join(k->net.pol != NULL,
			      k->env ? (const char *const *)sec_env_strings(k->env) : NULL, &k->wenv);
	if (rc < 0)
		return wk_stop(k, NULL, "%s", err_last());
	if (wk_setup(k) != 0)
		return -1;
	if (!k->req->test_command)
		return 0;
	spw_net_phase(&k->net, "test", SPW_NET_TEST);
	spw_wphase(w, SPW_PHASE_BASE_TESTS);
	spw_wlog(w, "status", "counting the base's tests");
	rc = spw_run_tests(w, k->box, k->wenv, &k->base_sum, NULL, k->why, sizeof(k->why));
	if (rc < 0)
		return wk_stop(k, NULL, "the base's tests could not be run: %s", err_last());
	k->have_base = 1;
	return 0;
}

/* The agent's system and task prompts rendered into k->sys and k->task,
 * with what the repository's AGENTS.md says (k->notes); *tfmt the format error's
 * template (owned by the caller). */
static int wk_prompts(worker_ctx *k, char **tfmt)
{
	const spw_request *req = k->req;
	char *tsys = NULL, *ttask = NULL;
	char steps[16], cmdto[24];
	int rc;
	const char *vars[] = {
		"task",         req->task,
		"branch",       k->branch,
		"base",         spw_git_base(k->git),
		"prompt",       req->prompt,
		"test_command", req->test_command ? req->test_command
						  : "(none given: find out how the project "
						    "runs its tests)",
		"max_steps",    steps,
		"cmd_timeout_s", cmdto,
		"agents_md",    buf_cstr(&k->notes),
		NULL,           NULL,
	};

	snprintf(steps, sizeof(steps), "%d", k->lim.steps);
	snprintf(cmdto, sizeof(cmdto), "%lld", (long long)(k->lim.cmd_timeout_ms / 1000));
	rc = embedded("spawner/prompts/agent_system.md", &tsys);
	if (rc == 0)
		rc = embedded("spawner/prompts/agent_task.md", &ttask);
	if (rc == 0)
		rc = embedded("spawner/prompts/agent_format_error.md", tfmt);
	if (rc == 0)
		rc = agent_render(&k->sys, tsys, vars);
	if (rc == 0)
		rc = agent_render(&k->task, ttask, vars);
	if (rc < 0)
		wk_stop(k, NULL, "%s", err_last());
	free(tsys);
	free(ttask);
	return rc;
}

/* Step 6: the agent. */
static int wk_agent(worker_ctx *k)
{
	const spw_worker_ctx *w = k->w;
	const spw_request *req = k->req;
	agent_config ac;
	char *tfmt = NULL;
	int rc;

	rc = agents_md(w, k->ws, &k->notes);
	if (rc < 0) {
		wk_stop(k, NULL, "%s", err_last());
		goto done;
	}
	rc = wk_prompts(k, &tfmt);
	if (rc < 0)
		goto done;
	memset(&ac, 0, sizeof(ac));
	ac.llm = w->llm;
	ac.call.role = req->role[0] ? req->role : w->cfg->role;
	ac.call.project = req->project;
	ac.call.user = req->user[0] ? req->user : NULL;
	ac.call.thread_id = req->thread_id;
	ac.call.run_id = req->run_id;
	ac.call.node = "worker";
	ac.call.worker = req->id;
	ac.call.subject = req->task;
	ac.call.owner = req->project;
	ac.call.cancel = w->cancel;
	ac.box = k->box;
	ac.env = (const char *const *)k->wenv;
	ac.system_prompt = buf_cstr(&k->sys);
	ac.task_prompt = buf_cstr(&k->task);
	ac.format_error_prompt = tfmt;
	ac.transcript = k->transcript;
	ac.use_tools = w->cfg->use_tools;
	ac.max_steps = k->lim.steps;
	ac.max_cost_usd = k->lim.cost_usd;
	ac.wall_ms = k->lim.wall_ms;
	ac.cmd_timeout_ms = k->lim.cmd_timeout_ms;
	ac.max_format_errors = k->lim.format_errors;
	ac.max_repeats = k->lim.repeats;
	ac.stall_steps = k->lim.stall_steps;
	ac.output_cap = (size_t)w->cfg->output_cap;
	ac.fingerprint = fingerprint_cb;
	ac.fp_udata = k->git;
	ac.log = w->log;
	ac.log_udata = w->log_udata;
	ac.cancel = w->cancel;
	spw_net_phase(&k->net, "agent", SPW_NET_AGENT);
	spw_wphase(w, SPW_PHASE_AGENT);
	rc = agent_run(&ac, &k->ar);
	if (rc < 0) {
		wk_stop(k, NULL, "the agent could not run: %s", err_last());
		goto done;
	}
	k->agent_ran = 1;
	if (k->ar.exit == AGENT_CANCELLED)
		rc = wk_stop(k, "cancelled", "%s", k->ar.reason);
done:
	free(tfmt);
	return rc;
}

/* Step 7: the commit of the work tree; no secret's value leaves in it. */
static int wk_commit(worker_ctx *k)
{
	const spw_request *req = k->req;
	const char *summary = k->ar.summary && k->ar.summary[0] ? k->ar.summary : NULL;
	size_t sl = summary ? strcspn(summary, "\n") : 0;
	char msg[1200], leak[512];
	char *red;
	int rc;

	snprintf(msg, sizeof(msg), "task %s: %.*s\n\nWorker %s, attempt %d; agent: %s (%s).\n",
		 req->task, summary ? (int)(sl > 200 ? 200 : sl) : 60, summary ? summary : req->prompt,
		 req->id, k->w->attempt, agent_exit_name(k->ar.exit), k->ar.reason);
	/* no secret value in a commit message */
	red = redact_str(msg);
	if (red) {
		snprintf(msg, sizeof(msg), "%s", red);
		free(red);
	}
	rc = spw_git_commit(k->git, msg, k->commit, &k->changed, &k->ds);
	if (rc < 0)
		return wk_stop(k, NULL, "%s", err_last());
	if (!k->changed)
		return 0;
	rc = spw_git_find_secrets(k->git, k->commit, leak, sizeof(leak));
	if (rc < 0)
		return wk_stop(k, NULL, "%s", err_last());
	if (rc == 1)
		return wk_stop(k, "failed",
			       "the work was not pushed: %s holds the value of a secret (the agent "
			       "wrote a credential into the project)", leak);
	return 0;
}

/* Step 7 (end): the tests on exactly what is committed, when the agent
 * submitted and there is a test command. */
static int wk_tests(worker_ctx *k)
{
	const spw_worker_ctx *w = k->w;
	int rc;

	if (k->ar.exit != AGENT_SUBMITTED || !k->req->test_command)
		return 0;
	spw_wphase(w, SPW_PHASE_TESTS);
	spw_wlog(w, "status", "running the tests");
	/* on exactly what is committed: no stale build output or cache */
	rc = spw_git_clean(k->git, k->commit);
	if (rc == 0)
		rc = sbx_reown(k->box); /* what the host wrote goes back to the sandbox */
	if (rc < 0)
		return wk_stop(k, NULL, "%s", err_last());
	/* the dependencies again: the reset removed them with everything ignored */
	if (wk_setup(k) != 0)
		return -1;
	spw_net_phase(&k->net, "test", SPW_NET_TEST);
	rc = spw_run_tests(w, k->box, k->wenv, &k->sum, &k->tail, k->why, sizeof(k->why));
	if (rc < 0)
		return wk_stop(k, NULL, "the tests could not be run: %s", err_last());
	k->tests = spw_testsum_json(&k->sum);
	/* the repository's own failing tests (its baseline) may still fail */
	k->sum.ok = spw_tests_accepted(k->req, &k->sum, k->have_base ? &k->base_sum : NULL);
	return 0;
}

/* Step 8: the push of task/<task>, when anything changed. */
static int wk_push(worker_ctx *k)
{
	int rc;

	if (!k->changed)
		return 0;
	spw_wphase(k->w, SPW_PHASE_PUSHING);
	spw_wlog(k->w, "status", "pushing %s", k->branch);
	rc = spw_git_push(k->git, k->url, &k->cred, k->branch);
	if (rc < 0)
		return wk_stop(k, "error", "the work is committed but not pushed: %s", err_last());
	k->pushed = 1;
	return 0;
}

/* The verdict of a worker that went through every step. */
static void wk_verdict(worker_ctx *k)
{
	const spw_testsum *s = &k->sum, *b = &k->base_sum;
	const char *sep = k->why[0] ? ": " : "";

	if (k->w->cancel && atomic_load(k->w->cancel))
		wk_stop(k, "cancelled", "the worker was stopped");
	else if (k->ar.exit != AGENT_SUBMITTED)
		wk_stop(k, "failed", "the agent did not finish: %s", k->ar.reason);
	else if (!k->req->test_command)
		wk_stop(k, "unverified", "the agent submitted; no test command was given, so "
					 "nothing checked the work");
	else if (!s->ok && s->total >= 0)
		wk_stop(k, "failed", "the tests failed: %d of %d failed (exit %d)%s%s", s->failed,
			s->total, s->exit_code, sep, k->why);
	else if (!s->ok)
		wk_stop(k, "failed", "the tests failed (exit %d)%s%s", s->exit_code, sep, k->why);
	else if (k->have_base && b->total >= 0 && s->total >= 0 && s->total < b->total)
		wk_stop(k, "failed", "the tests pass but there are fewer of them: %d, the base had %d",
			s->total, b->total);
	else if (k->have_base && b->total > 0 && s->total < 0)
		wk_stop(k, "failed", "the tests no longer report a count (the base had %d tests)",
			b->total);
	else if (s->total >= 0 && s->failed > 0)
		wk_stop(k, "done", "done: %d tests passed; %d fail, as on the base before any work "
				   "(allowed: %d)", s->passed, s->failed, k->req->allowed_failures);
	else if (s->total >= 0)
		wk_stop(k, "done", "done: %d tests passed", s->passed);
	else
		wk_stop(k, "done", "done: the tests passed (exit 0)");
	if (k->tests) {
		const char *verdict = strcmp(k->status, "done") == 0 ? "passed"
				      : !s->ok			     ? "failed"
								     : "shrank";
		json_object_set_new(k->tests, "verdict", json_string(verdict));
	}
}

/* The result's "tests" and "agent" parts. */
static void wk_result_work(worker_ctx *k, json_t *res)
{
	const spw_request *req = k->req;
	const agent_result *ar = &k->ar;

	if (req->test_command && (k->agent_ran || k->have_base)) {
		if (!k->tests)
			k->tests = json_pack("{s:s}", "verdict", "none");
		if (k->tests) {
			json_object_set_new(k->tests, "command", json_string(req->test_command));
			if (k->have_base)
				json_object_set_new(k->tests, "base",
						    json_pack("{s:i, s:i, s:i}", "passed",
							      k->base_sum.passed, "failed",
							      k->base_sum.failed, "total",
							      k->base_sum.total));
			if (k->tail.len)
				json_object_set_new(k->tests, "output", json_string(buf_cstr(&k->tail)));
			json_object_set(res, "tests", k->tests);
		}
	}
	if (k->agent_ran) {
		char *summary = ar->summary ? redact_str(ar->summary) : NULL;
		char *areason = redact_str(ar->reason);

		json_object_set_new(res, "agent",
				    json_pack("{s:s, s:s, s:i, s:i, s:i, s:s?}", "exit",
					      agent_exit_name(ar->exit), "reason", areason ? areason : "",
					      "steps", ar->steps, "actions", ar->actions,
					      "format_errors", ar->format_errors, "summary", summary));
		free(summary);
		free(areason);
		json_object_set_new(res, "tokens", json_pack("{s:I, s:I}", "in",
							     (json_int_t)ar->tokens_in, "out",
							     (json_int_t)ar->tokens_out));
		json_object_set_new(res, "cost_usd", json_real(ar->cost_usd));
		json_object_set_new(res, "transcript", json_string(k->transcript));
	}
}

/* Step 9 (first half): the sandbox closed, the result made (redacted);
 * NULL when out of memory. */
static json_t *wk_result(worker_ctx *k)
{
	const spw_worker_ctx *w = k->w;
	json_t *res, *netj;

	if (w->cancel && atomic_load(w->cancel) && strcmp(k->status, "error") == 0)
		k->status = "cancelled"; /* a step cut short by the stop: run it again */
	/* the connections still open are cut first: every decision is counted */
	sbx_free(k->box);
	k->box = NULL;
	netj = spw_net_result(&k->net);
	res = spw_result_base(k->req, k->req->id, k->status, k->reason);
	if (!res)
		goto done;
	if (netj)
		json_object_set(res, "network", netj);
	json_object_set_new(res, "attempt", json_integer(w->attempt));
	json_object_set_new(res, "spawner", json_string(w->spawner_id));
	json_object_set_new(res, "branch", json_string(k->branch));
	if (k->git) {
		const char *base = spw_git_base(k->git);

		json_object_set_new(res, "base_commit", json_string(base));
		json_object_set_new(res, "commit", json_string(k->commit[0] ? k->commit : base));
		json_object_set_new(res, "changed", json_boolean(k->changed));
		json_object_set_new(res, "pushed", json_boolean(k->pushed));
	}
	if (k->changed) {
		json_t *paths = spw_lines_json(k->ds.names);

		json_object_set_new(res, "diff",
				    json_pack("{s:i, s:i, s:i, s:o}", "files", k->ds.files, "insertions",
					      k->ds.insertions, "deletions", k->ds.deletions, "paths",
					      paths ? paths : json_array()));
	}
	wk_result_work(k, res);
	json_object_set_new(res, "wall_ms", json_integer(util_mono_ms() - k->t0));
	if (k->agent_ran)
		wk_transcript(k, json_pack("{s:s, s:I, s:O}", "type", "result", "t",
					   (json_int_t)util_wall_ms(), "result", res));
done:
	json_decref(netj);
	/* the result goes to Redis, the database and a chat */
	return spw_result_redact(res);
}

/* Step 9 (second half): everything the run held, its folder removed. */
static void wk_free(worker_ctx *k)
{
	json_decref(k->tests);
	agent_result_free(&k->ar);
	sbx_free(k->box);
	spw_net_free(&k->net);
	spw_git_free(k->git);
	if (k->dir[0] && spw_remove_worker_dir(k->dir) < 0)
		log_warn("spawner", "worker %s: %s (the janitor tries again)", k->req->id,
			 err_last());
	spw_toolenv_free(k->wenv);
	sec_env_free(k->env);
	if (k->repo_secret)
		sec_value_free(k->repo_secret);
	buf_free(&k->sys);
	buf_free(&k->task);
	buf_free(&k->notes);
	buf_free(&k->tail);
}

json_t *spw_worker_run(const spw_worker_ctx *w)
{
	worker_ctx *k;
	json_t *res;

	if (spw_request_is_git_only(w->req))
		return spw_merge_run(w);
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	wk_init(k, w);
	if (wk_workspace(k) != 0 || wk_sandbox(k) != 0 || wk_agent(k) != 0 || wk_commit(k) != 0 ||
	    wk_tests(k) != 0 || wk_push(k) != 0)
		goto done;
	wk_verdict(k);
done:
	res = wk_result(k);
	spw_wlog(w, "status", "worker %s ended: %s: %s", k->req->id, k->status, k->reason);
	wk_free(k);
	free(k);
	return res;
}
