/*
 * secrets_run — a scripted run that uses secrets, for the canary test.
 *
 *   secrets_run --scope PROJECT --out FILE [--grant HANDLE]... [--fail-quoting yes]
 *
 * Does what `orchestrator serve` and the spawner will do, with a real
 * engine run in PostgreSQL:
 *   1. starts the secrets runtime (redaction filter loaded from the store);
 *   2. runs a two-node graph for PROJECT (on a thread of its own): "spawn" writes a spawn
 *      request holding only the handles to the outbox; "collect" waits for
 *      the worker's result;
 *   3. as the spawner: claims the request, resolves the granted handles into
 *      the worker's environment (sec_env_resolve), starts the worker
 *      (/usr/bin/env) with it and writes what the worker printed to FILE;
 *      relays the worker's output to the log, as a spawner relays live
 *      output, and delivers the result to the run;
 *   4. "collect" keeps a filtered tail of the output in the state (as a
 *      transcript writer would) or fails the run with the refusal. With
 *      --fail-quoting it resolves the first handle itself (as a merge step
 *      pushing with a token would) and fails with an error quoting the
 *      value: the run's stored error must not hold it.
 * Along the way it logs the values it resolved, plain, base64 and hex, on
 * purpose: every log line must still come out without them.
 * Prints "run N done" or "run N failed: ERROR"; exits 0, or 3 when the run
 * failed, 1 on other errors. ORCH_LOG_LEVEL=debug shows every line.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/outbox.h"
#include "secrets/resource.h"
#include "secrets/runtime.h"
#include "secrets/store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GRANTS 16

static pg_pool *g_pool;
static int g_fail_quoting;

/* --- the graph --- */

static int node_spawn(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *handles = json_object_get(state, "handles");
	const char *scope = json_string_value(json_object_get(state, "scope"));
	char *list = json_dumps(handles ? handles : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	(void)input;
	log_debug("node", "spawning a worker for project %s with handles %s", scope,
		  list ? list : "?");
	free(list);
	*update = json_pack("{s:b}", "spawned", 1);
	return eng_emit(ctx, "spawn", NULL,
			json_pack("{s:s, s:s, s:O}", "worker", "w-1", "scope", scope, "handles",
				  handles ? handles : json_array()));
}

static int node_collect(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *res = NULL;
	int rc;
	(void)input;
	rc = eng_await(ctx, "worker.result", NULL, &res);
	if (rc < 0)
		return rc;
	if (g_fail_quoting && json_is_true(json_object_get(res, "ok"))) {
		const char *h = json_string_value(json_array_get(json_object_get(state, "handles"), 0));
		const char *scope = json_string_value(json_object_get(state, "scope"));
		char *token = NULL;
		pg_conn *c = NULL;
		json_decref(res);
		rc = pg_pool_acquire(g_pool, 5000, &c);
		if (rc == 0)
			rc = sec_res_resolve(sec_runtime_store(), c, scope, h, "node:collect",
					     eng_ctx_run_id(ctx), &token);
		if (c)
			pg_pool_release(g_pool, c);
		if (rc < 0)
			return rc;
		rc = err_set(ERR_GIT, "git push to https://x-access-token:%s@git.example/o/r failed: "
				      "remote rejected",
			     token);
		sec_value_free(token);
		return rc;
	}
	if (!json_is_true(json_object_get(res, "ok"))) {
		rc = err_set(ERR_NODE, "%s", json_string_value(json_object_get(res, "error")));
		json_decref(res);
		return rc;
	}
	*update = json_pack("{s:O}", "worker", res);
	json_decref(res);
	return 0;
}

/* --- the spawner's side --- */

/* Runs /usr/bin/env with the secret environment; its output goes to *out. */
static int run_worker(const sec_env *env, char **out)
{
	char *const argv[] = {"env", NULL};
	char **envp;
	char *const *sec = sec_env_strings(env);
	size_t n = sec_env_count(env);
	int pipefd[2], status = 0;
	char chunk[4096];
	size_t len = 0, cap = 0;
	char *text = NULL;
	pid_t pid;

	envp = calloc(n + 3, sizeof(char *));
	if (!envp || pipe(pipefd) < 0)
		return err_set(ERR_IO, "cannot prepare the worker");
	envp[0] = "PATH=/usr/bin:/bin";
	envp[1] = "WORKER_ID=w-1";
	for (size_t i = 0; i < n; i++)
		envp[2 + i] = sec[i];
	pid = fork();
	if (pid < 0)
		return err_set(ERR_IO, "fork failed");
	if (pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execve("/usr/bin/env", argv, envp);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t r = read(pipefd[0], chunk, sizeof(chunk));
		if (r <= 0)
			break;
		if (len + (size_t)r + 1 > cap) {
			cap = (len + (size_t)r + 1) * 2;
			text = realloc(text, cap);
		}
		memcpy(text + len, chunk, (size_t)r);
		len += (size_t)r;
		text[len] = '\0';
	}
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	free(envp);
	*out = text ? text : strdup("");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0
							      : err_set(ERR_SANDBOX, "worker failed");
}

/* Deliberately careless logging: every form of every value. */
static void leak_attempts(const sec_env *env)
{
	for (size_t i = 0; i < sec_env_count(env); i++) {
		const char *v = sec_env_value(env, i);
		size_t n = strlen(v);
		char b64[1024], b64url[1024], hex[1024], hexup[1024];
		sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)v, n,
				  sodium_base64_VARIANT_ORIGINAL);
		sodium_bin2base64(b64url, sizeof(b64url), (const unsigned char *)v, n,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		sodium_bin2hex(hex, sizeof(hex), (const unsigned char *)v, n);
		for (size_t k = 0; hex[k]; k++)
			hexup[k] = (char)(hex[k] >= 'a' && hex[k] <= 'f' ? hex[k] - 'a' + 'A' : hex[k]);
		hexup[strlen(hex)] = '\0';
		log_debug("spawner", "resolved %s", sec_env_strings(env)[i]);
		log_debug("spawner", "as base64 %s, as base64url %s", b64, b64url);
		log_debug("spawner", "as hex %s, as HEX %s", hex, hexup);
		log_warn("spawner", "careless warning with the value %s inside", v);
	}
}

/* Serves the run's spawn request; returns the result to deliver. */
static json_t *spawn_worker(pg_pool *pool, const char *outpath, int64_t *thread_id)
{
	eng_outbox_row *rows = NULL;
	int n = 0;
	pg_conn *c = NULL;
	json_t *result = NULL;
	sec_env *env = NULL;
	const char *handles[MAX_GRANTS];
	size_t nh = 0, i;
	json_t *h;
	char *output = NULL;

	if (pg_pool_acquire(pool, 5000, &c) < 0 ||
	    eng_outbox_claim(c, "canary-spawner", "{spawn}", 1, 60000, &rows, &n) < 0 || n != 1) {
		fprintf(stderr, "secrets_run: no spawn request: %s\n", err_last());
		exit(1);
	}
	*thread_id = rows[0].thread_id;
	json_array_foreach(json_object_get(rows[0].payload, "handles"), i, h) {
		if (nh < MAX_GRANTS)
			handles[nh++] = json_string_value(h);
	}
	{
		sec_grant g = {json_string_value(json_object_get(rows[0].payload, "scope")), handles,
			       nh, "worker:w-1", rows[0].run_id};
		if (!sec_runtime_store()) {
			err_set(ERR_NOTFOUND, "secrets are not set up");
		} else if (sec_env_resolve(sec_runtime_store(), c, &g, &env) == 0) {
			leak_attempts(env);
			if (run_worker(env, &output) == 0) {
				FILE *f = fopen(outpath, "w");
				const char *line = output;
				if (f) {
					fputs(output, f); /* the worker's own view of its environment */
					fclose(f);
				}
				/* live output, relayed to the log line by line as a spawner does */
				while (*line) {
					const char *nl = strchr(line, '\n');
					int len = nl ? (int)(nl - line) : (int)strlen(line);
					log_info("worker", "w-1: %.*s", len, line);
					line += len + (nl ? 1 : 0);
				}
				{
					/* the transcript writer keeps only filtered text */
					char *tail = redact_str(output);
					result = json_pack("{s:b, s:s}", "ok", 1, "output", tail);
					free(tail);
				}
			}
		}
	}
	if (!result) {
		log_error("spawner", "spawn request of run %lld refused: %s", (long long)rows[0].run_id, err_last());
		result = json_pack("{s:b, s:s}", "ok", 0, "error", err_last());
		eng_outbox_dead(c, rows[0].id, err_last());
	} else {
		eng_outbox_done(c, rows[0].id, NULL);
	}
	sec_env_free(env);
	free(output);
	eng_outbox_rows_free(rows, n);
	pg_pool_release(pool, c);
	return result;
}

int main(int argc, char **argv)
{
	const char *scope = NULL, *outpath = NULL;
	const char *grants[MAX_GRANTS];
	size_t ng = 0;
	orch_config cfg;
	pg_pool *pool = NULL;
	eng_graph *g = NULL;
	eng_engine *e = NULL;
	eng_options opt;
	eng_result res;
	json_t *input, *arr, *result;
	int64_t thread_id = 0;
	char thread_key[96];
	int rc, n;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--scope") == 0)
			scope = argv[i + 1];
		else if (strcmp(argv[i], "--out") == 0)
			outpath = argv[i + 1];
		else if (strcmp(argv[i], "--grant") == 0 && ng < MAX_GRANTS)
			grants[ng++] = argv[i + 1];
		else if (strcmp(argv[i], "--fail-quoting") == 0)
			g_fail_quoting = strcmp(argv[i + 1], "yes") == 0;
	}
	if (!scope || !outpath) {
		fprintf(stderr, "usage: secrets_run --scope PROJECT --out FILE [--grant HANDLE]...\n");
		return 1;
	}
	if (util_init() < 0 || cfg_load(&cfg) < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	log_configure(cfg.log_level, cfg.log_text);
	if (pg_pool_new(&pool, cfg.database_url, 4) < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	g_pool = pool;
	if (sec_runtime_start(pool, cfg.data_dir, NULL) < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	eng_graph_new(&g, "canary");
	eng_graph_add_node(g, "spawn", node_spawn, NULL, NULL);
	eng_graph_add_node(g, "collect", node_collect, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "spawn");
	eng_graph_add_edge(g, "spawn", "collect");
	eng_graph_add_edge(g, "collect", ENG_END);
	if (eng_graph_compile(g) < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	memset(&opt, 0, sizeof(opt));
	if (eng_engine_new(&e, pool, &opt) < 0 || eng_engine_add_graph(e, g) < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	arr = json_array();
	for (size_t i = 0; i < ng; i++)
		json_array_append_new(arr, json_string(grants[i]));
	input = json_pack("{s:o, s:s}", "handles", arr, "scope", scope);
	/* a thread of its own per run: events of one run never reach another */
	n = snprintf(thread_key, sizeof(thread_key), "%.40s/run-", scope);
	util_rand_hex(thread_key + n, 8);
	rc = eng_invoke(e, "canary", thread_key, input, 0, &res);
	json_decref(input);
	if (rc < 0 || strcmp(res.status, "waiting") != 0) {
		fprintf(stderr, "secrets_run: the run did not wait for its worker: %s %s\n",
			res.status, rc < 0 ? err_last() : res.error);
		return 1;
	}
	eng_result_clear(&res);
	result = spawn_worker(pool, outpath, &thread_id);
	rc = eng_resume(e, thread_id, "worker.result", result, 0, &res);
	json_decref(result);
	if (rc < 0) {
		fprintf(stderr, "secrets_run: %s\n", err_last());
		return 1;
	}
	if (strcmp(res.status, "done") == 0) {
		printf("run %lld done\n", (long long)res.run_id);
		rc = 0;
	} else {
		printf("run %lld %s: %s\n", (long long)res.run_id, res.status, res.error);
		rc = 3;
	}
	eng_result_clear(&res);
	eng_engine_free(e);
	eng_graph_free(g);
	sec_runtime_stop();
	pg_pool_free(pool);
	return rc;
}
