/*
 * spw_int — what spawner.c, worker.c and merge.c share inside the spawner
 * module.
 */
#ifndef ORCH_SPAWNER_SPW_INT_H
#define ORCH_SPAWNER_SPW_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/pg.h"
#include "llm/llm.h"
#include "spawner/request.h"
#include "spawner/spawner.h"

/* A live log line of a worker (see worker:log:<id>). */
typedef void (*spw_log_fn)(void *udata, const char *kind, const char *text);

/* What a worker is doing, for /metrics (orch_spawner_workers{phase}). A
 * small fixed set: the label's values, never a task or an id. */
typedef enum spw_phase {
	SPW_PHASE_IDLE = -1,   /* no worker in the slot */
	SPW_PHASE_PREPARING,   /* grants, repository check, workspace */
	SPW_PHASE_CLONING,
	SPW_PHASE_BASE_TESTS,  /* counting the base's tests */
	SPW_PHASE_AGENT,       /* the agent's loop */
	SPW_PHASE_TESTS,       /* the tests on the committed work or the rebased branch */
	SPW_PHASE_REBASING,    /* a merge: the branch onto its target */
	SPW_PHASE_PUSHING,     /* a push, a merge's fast-forward, a mirror */
	SPW_PHASE_REPORTING,   /* storing and announcing the result */
	SPW_PHASE_COUNT
} spw_phase;

/* One worker's run. Every pointer is borrowed for the duration. */
typedef struct spw_worker_ctx {
	const spw_config *cfg;
	pg_pool *pool;
	llm_service *llm;
	const char *spawner_id;
	const spw_request *req;
	int attempt;
	const atomic_int *cancel; /* the spawner is stopping or lost the lease */
	spw_log_fn log;           /* may be NULL; callable from any thread */
	void *log_udata;
	struct egr_proxy *egress; /* the spawner's egress proxy; NULL: none */
	const char *egress_error; /* why there is none ("" or NULL when unknown) */
	atomic_int *phase;        /* the slot's spw_phase (spw_wphase); may be NULL */
} spw_worker_ctx;

/* Moves the worker to phase `p`: stores it in *w->phase and moves one
 * worker between the series of orch_spawner_workers{phase}. Thread-safe
 * (atomics only); a NULL w->phase does nothing. */
void spw_wphase(const spw_worker_ctx *w, spw_phase p);

/* The same on a phase variable without a context (the spawner's slots). */
void spw_phase_set(atomic_int *phase, spw_phase p);

/* Runs the worker to its end: secrets, workspace, agent, tests, commit,
 * push, cleanup of its workspace. Returns the result (owned; the status
 * says how it went), NULL only when out of memory. */
json_t *spw_worker_run(const spw_worker_ctx *w);

/* A result with the fields every status has. Owned. */
json_t *spw_result_base(const spw_request *req, const char *id, const char *status,
			const char *reason);

/* The folders of worker `id` under cfg->data_dir: the worker's folder, its
 * workspace and its transcript. */
void spw_worker_dir(const spw_config *cfg, const char *id, char *out, size_t cap);
void spw_transcript_path(const spw_config *cfg, const char *id, char *out, size_t cap);

/* Runs a request of mode "merge" or "publish" (merge.c): no agent, only
 * git and, for a merge, the tests in a sandbox. Same contract as
 * spw_worker_run. */
json_t *spw_merge_run(const spw_worker_ctx *w);

/* Runs a request of mode "import", "test" or "pr" (change.c): a change to
 * an existing repository. Same contract as spw_worker_run. */
json_t *spw_change_run(const spw_worker_ctx *w);

/* Reads the open pull requests of forge_prs that are due (change.c) and
 * delivers what is new on them to their projects as "forge" events.
 * *out_events (may be NULL) counts them. Errors of one pull request are
 * recorded with it (last_error) and do not stop the others. */
int spw_forge_poll(pg_pool *pool, const spw_config *cfg, int *out_events);

/* --- what worker.c and merge.c share --- */

struct sec_env;
struct sbx;
struct spw_testsum;

/* Resolves the request's handles into *env and its repo_secret into
 * *repo_secret (both owned; NULL when the request grants none). On failure
 * *status ("refused", "error") and reason[cap] say why. */
int spw_worker_grants(const spw_worker_ctx *w, struct sec_env **env, char **repo_secret,
		      const char **status, char *reason, size_t cap);

/* Checks that a local repository lies under ORCH_SPAWN_REPO_ROOTS and writes
 * its real path (or the URL unchanged) into out[cap]. ERR_DENIED,
 * ERR_NOTFOUND. */
int spw_repo_allowed(const spw_config *cfg, const char *repo, char *out, size_t cap);

/* Runs the request's test command in a fresh sandbox of `box`: the counts
 * go to *sum, the output's tail (redacted) to `tail` (may be NULL), what
 * ended it early (a limit) to why[whycap]. */
int spw_run_tests(const spw_worker_ctx *w, struct sbx *box, char *const *env,
		  struct spw_testsum *sum, buf *tail, char *why, size_t whycap);

/* The counts of a test run as JSON (owned), with "failing" (the names)
 * when every failure is named. */
json_t *spw_testsum_json(const struct spw_testsum *s);

/* The tests of a run pass: they passed, or the request's baseline allows
 * its failures — by name when the request lists them (allowed_failing)
 * and the run names every failure: each failing test failed before;
 * else by counts: no more than allowed_failures fail and (with `base`, the
 * run on the base commit) no fewer pass than there. */
int spw_tests_accepted(const spw_request *req, const struct spw_testsum *sum,
		       const struct spw_testsum *base);

/* Steps 1 and 2 of a worker and of a merge: spw_worker_grants, then
 * spw_repo_allowed on the request's repository (its real path or URL into
 * url[urlcap]). On failure *status ("refused", "error") and reason[cap]
 * say why; *env and *repo_secret are the caller's in every case. */
int spw_worker_access(const spw_worker_ctx *w, struct sec_env **env, char **repo_secret,
		      char *url, size_t urlcap, const char **status, char *reason, size_t cap);

/* Discards the worker folder `dir` a previous attempt left (see
 * spw_remove_worker_dir) and makes sure the workers' folder exists; `dir`
 * itself is the caller's to create. ERR_IO with reason[cap] saying why. */
int spw_worker_dir_reset(const spw_config *cfg, const char *dir, char *reason, size_t cap);

/* Creates the workspace `ws` and gives it the disk quota of
 * ORCH_WORKER_DISK_KIND (lim->disk_bytes). ERR_IO with reason[cap]. */
int spw_workspace_make(const spw_worker_ctx *w, const spw_limits *lim, const char *ws,
		       char *reason, size_t cap);

/* The sandbox over the workspace `ws`: the configured backend, image and
 * runtime, lim's memory, pids and CPUs, and the egress proxy's socket when
 * egress_socket is not NULL. The caller owns *out (sbx_free).
 * On failure reason[cap] says why. */
int spw_worker_sandbox(const spw_worker_ctx *w, const spw_limits *lim, const char *ws,
		       const char *egress_socket, struct sbx **out, char *reason, size_t cap);

/* --- the network of a worker or a merge (worker_net.c) --- */

struct egr_policy;
struct egr_attach;

/* Its policy, its attachment to the spawner's egress proxy, and what the
 * proxy refused. spw_net_init, spw_net_open, then spw_net_socket for the
 * sandbox and spw_net_phase before each phase; spw_net_result once the
 * sandbox is gone, spw_net_free in every case. */
typedef struct spw_net {
	const spw_worker_ctx *w;
	const char *transcript;   /* where decisions and setups are written; may be NULL */
	struct egr_policy *pol;   /* NULL: the policy none */
	struct egr_attach *att;   /* NULL: no network */
	unsigned phases;          /* SPW_NET_* that have the network */
	char desc[1024];          /* "none", or "registries: pypi.org, ..." */
	pthread_mutex_t mu;       /* guards what follows (the proxy's threads write it) */
	int denied;
	char first_denied[400];
} spw_net;

void spw_net_init(spw_net *n, const spw_worker_ctx *w, const char *transcript);

/* The policy in force: the request's "network", else ORCH_NET_POLICY and
 * ORCH_NET_PHASES; "registries" lists those of the request's language, else
 * of the languages whose manifests the checkout at `ws` holds. Unless it is
 * none, attaches to the spawner's egress proxy. On failure *status
 * ("refused": the policy cannot apply; "error": no proxy) and reason[cap]. */
int spw_net_open(spw_net *n, const char *ws, const char **status, char *reason, size_t cap);

/* The attachment's socket for the sandbox (sbx_opts.egress_socket), NULL
 * without network. Borrowed. */
const char *spw_net_socket(const spw_net *n);

/* Names the phase and gives it the network when the policy's phases hold
 * `bit` (SPW_NET_*). A no-op without network. */
void spw_net_phase(spw_net *n, const char *phase, unsigned bit);

/* Ends the network (every connection is counted) and returns the result's
 * "network": {"policy", "allowed", "denied", "bytes"} (owned); NULL without
 * network. Call it after the sandbox is freed. */
json_t *spw_net_result(spw_net *n);

void spw_net_free(spw_net *n);

/* Runs the request's setup_command in a fresh sandbox of `box` in the phase
 * "setup" (with the network the policy gives it); its line goes to the
 * transcript. 0 when it passed; 1 when it failed, reason[cap] saying why
 * (the proxy's refusals, a network the policy none did not give it, or its
 * last line); <0 when the sandbox failed. */
int spw_run_setup(const spw_worker_ctx *w, struct sbx *box, char *const *env, spw_net *n,
		  char *reason, size_t cap);

/* The lines of "a\nb\n" (empty ones left out) as a JSON array of strings.
 * Owned; NULL when out of memory. */
json_t *spw_lines_json(const char *s);

/* A result as it may leave the spawner: no secret's value in it, whatever
 * field it hides in (a file name, a branch...). Takes `res` and returns its
 * redacted copy (owned); NULL stays NULL, and out of memory gives NULL
 * (never the unfiltered result). */
json_t *spw_result_redact(json_t *res);

/* A live log line, redacted, when the worker has a log callback. */
void spw_wlog(const spw_worker_ctx *w, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Removes a worker's folder: unmounts its workspace quota, deletes the tree
 * without following links or crossing into other file systems. A missing
 * folder is not an error. */
int spw_remove_worker_dir(const char *dir);

#endif
