/* A whole worker with ORCH_SANDBOX=docker on a real Docker engine (the
 * private dockerd of `make test`, DOCKER_HOST): the spawner clones the
 * project, every command of its agent and the project's tests run in
 * containers of the worker image (Debian with Python), it commits and
 * pushes. Real PostgreSQL, Redis and git; the model is the fake server. */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/redis.h"
#include "core/util.h"
#include "secrets/runtime.h"
#include "spawner/spawner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static fake_llm g_fake;
static pg_pool *g_pool;
static llm_service *g_llm;
static spw_spawner *g_spawner;
static rds_conn *g_redis;
static char g_repo[1024], g_deps_repo[1024];
static int g_http = -1;
static pid_t g_reg = -1;
static char g_sockets[64]; /* ORCH_NET_SOCKET_DIR */

static int setup(void **state)
{
	spw_config cfg;
	llm_registry *reg = NULL;
	llm_options lo;
	(void)state;

	setenv("ORCH_SANDBOX", "docker", 1);
	setenv("ORCH_SANDBOX_IMAGE", getenv("ORCH_TEST_IMAGE_WORKER"), 1);
	setenv("ORCH_WORKER_DISK", "128M", 1);
	setenv("ORCH_WORKER_DISK_KIND", "loop", 1);
	setenv("ORCH_WORKER_MEM", "512M", 1);
	setenv("ORCH_AGENT_CMD_TIMEOUT", "60s", 1);
	setenv("ORCH_TEST_TIMEOUT", "60s", 1);
	/* the proxy's sockets in a folder of our choice, which the engine finds
	 * by the same path (as a spawner in a container needs) */
	snprintf(g_sockets, sizeof(g_sockets), "/tmp/orch-net-%d", (int)getpid());
	setenv("ORCH_NET_SOCKET_DIR", g_sockets, 1);
	fake_llm_start(&g_fake);
	tss_models(&g_fake);
	g_pool = ts_pool(4);
	tss_project_repo("proj", g_repo, sizeof(g_repo));
	memset(&lo, 0, sizeof(lo));
	lo.pool = g_pool;
	lo.project_budget = -1;
	lo.user_budget = -1;
	lo.stats_interval_ms = -1;
	if (llm_registry_load(&reg) < 0 || llm_service_new(&g_llm, reg, &lo) < 0)
		fail_msg("llm: %s", err_last());
	assert_int_equal(spw_config_from_env(&cfg, getenv("REDIS_URL"), getenv("ORCH_DATA_DIR")), 0);
	if (spw_preflight(&cfg) < 0)
		fail_msg("preflight: %s", err_last());
	assert_int_equal(spw_new(&g_spawner, &cfg, g_pool, g_llm), 0);
	assert_int_equal(spw_start(g_spawner), 0);
	if (rds_connect(&g_redis, getenv("REDIS_URL"), 0) < 0)
		fail_msg("redis: %s", err_last());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	spw_free(g_spawner);
	/* the spawner removed its folder, the forwarder and the sockets in it */
	if (rmdir(g_sockets) < 0)
		fail_msg("ORCH_NET_SOCKET_DIR %s: %s (not empty?)", g_sockets, strerror(errno));
	llm_service_free(g_llm);
	rds_free(g_redis);
	fake_llm_stop(&g_fake);
	pg_pool_free(g_pool);
	return 0;
}

/* The result of `id` on the results stream, waiting for it. Owned. */
static json_t *await_result(const char *id)
{
	for (int64_t until = util_mono_ms() + 180000; util_mono_ms() < until; util_sleep_ms(100)) {
		rds_reply *r = NULL;
		json_t *found = NULL;

		if (rds_cmd(g_redis, &r, "XRANGE", SPW_RESULTS, "-", "+", NULL) < 0)
			continue;
		for (size_t i = 0; i < r->n && !found; i++) {
			const rds_reply *f = rds_at(rds_at(r, i), 1);
			if (strcmp(rds_str(rds_at(f, 1)), id) == 0)
				found = json_loads(rds_str(rds_at(f, 3)), 0, NULL);
		}
		rds_reply_free(r);
		if (found)
			return found;
	}
	fail_msg("no result for %s", id);
	return NULL;
}

static void test_worker_in_containers(void **state)
{
	json_t *req, *res, *t, *rqs;
	char *text;
	buf b;
	(void)state;
	tss_script(&g_fake,
		   json_pack("[o, o, o]",
			     tss_bash("test -f /.dockerenv && echo in-a-container; cat calc.py && "
				      "python3 -m unittest 2>&1 | tail -3"),
			     tss_text("The operator is wrong.\n```bash\nsed -i 's/a - b/a + b/' calc.py "
				      "&& python3 -m unittest 2>&1 | tail -1\n```"),
			     tss_tool("submit", "{\"summary\": \"add() adds\"}")));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "dk-1", "task", "fix", "project",
			"proj-1", "repo", g_repo, "base", "main", "prompt",
			"add() in calc.py subtracts; make the tests pass.", "test_command", TSS_TEST_CMD);
	text = json_dumps(req, JSON_COMPACT);
	assert_int_equal(rds_cmd(g_redis, NULL, "XADD", SPW_STREAM, "*", "id", "dk-1", "req", text,
				 NULL), 0);
	free(text);
	json_decref(req);
	res = await_result("dk-1");
	if (strcmp(json_string_value(json_object_get(res, "status")), "done") != 0)
		fail_msg("status %s: %s", json_string_value(json_object_get(res, "status")),
			 json_string_value(json_object_get(res, "reason")));
	t = json_object_get(res, "tests");
	assert_string_equal(json_string_value(json_object_get(t, "verdict")), "passed");
	assert_int_equal(json_integer_value(json_object_get(t, "passed")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "base"), "failed")), 2);
	assert_true(json_is_true(json_object_get(res, "pushed")));
	/* the agent's first command ran in a container: its output reached the model */
	rqs = fake_llm_requests(&g_fake);
	text = json_dumps(rqs, JSON_COMPACT);
	assert_non_null(strstr(text, "in-a-container"));
	free(text);
	json_decref(rqs);
	/* the fix is on the task's branch */
	buf_init(&b, 0);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s' show task/fix:calc.py", g_repo), 0);
	assert_non_null(strstr(buf_cstr(&b), "return a + b"));
	buf_free(&b);
	printf("# docker worker: %lld ms from claim to result (clone, base tests, 2 agent commands, "
	       "tests, each in a container; commit, push)\n",
	       (long long)json_integer_value(json_object_get(res, "wall_ms")));
	json_decref(res);
}

/* --- a project with a dependency, through the egress proxy --- */

/* The registry stand-in (tests/fakes/pkg_registry.py) on the host's
 * loopback, at 127.0.0.2 (not in the sandboxes' NO_PROXY): the containers
 * reach it only through the proxy, which the policy lets to this address. */
static void start_registry(void)
{
	int p[2];
	char line[128];
	ssize_t n;

	if (pipe(p) < 0)
		fail_msg("pipe");
	g_reg = fork();
	if (g_reg == 0) {
		dup2(p[1], 1);
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("python3", "python3", "tests/fakes/pkg_registry.py", "127.0.0.2", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "ports %d", &g_http) != 1)
		fail_msg("the registry stand-in did not start: %s", line);
}

static json_t *deps_request(const char *id, const char *mode, const char *task, int allow)
{
	char setup[300], pat[64];
	json_t *r;

	snprintf(setup, sizeof(setup),
		 "python3 -c 'import urllib.request as u; open(\"tiny_sum.py\", \"wb\").write("
		 "u.urlopen(\"http://127.0.0.2:%d/py/tiny_sum.py\", timeout=30).read())'",
		 g_http);
	snprintf(pat, sizeof(pat), "127.0.0.2:%d", g_http);
	r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "mode", mode, "task",
		      task, "project", "proj-deps", "repo", g_deps_repo, "test_command",
		      "python3 -m unittest -v", "setup_command", setup, "target", "main");
	if (strcmp(mode, "work") == 0) {
		json_object_del(r, "target");
		json_object_set_new(r, "prompt", json_string("Check that tiny_sum works."));
	}
	json_object_set_new(r, "network", allow ? json_pack("{s:s, s:[s]}", "policy", "hosts",
							    "hosts", pat)
						: json_pack("{s:s}", "policy", "none"));
	return r;
}

static json_t *run_request(json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "id"));
	char *text = json_dumps(req, JSON_COMPACT);
	json_t *res;

	assert_int_equal(rds_cmd(g_redis, NULL, "XADD", SPW_STREAM, "*", "id", id, "req", text, NULL),
			 0);
	free(text);
	res = await_result(id);
	json_decref(req);
	return res;
}

static void expect(const json_t *res, const char *status, const char *in_reason)
{
	const char *got = json_string_value(json_object_get(res, "status"));
	const char *why = json_string_value(json_object_get(res, "reason"));

	if (!got || strcmp(got, status) != 0 || (in_reason && (!why || !strstr(why, in_reason))))
		fail_msg("status %s (wanted %s%s%s): %s", got, status, in_reason ? " saying " : "",
			 in_reason ? in_reason : "", why);
}

/* The worker's setup and the merge's fetch the project's dependency in a
 * container, through the egress proxy; with the policy none they fail and
 * say the setup needs the network. */
static void test_setup_through_the_proxy(void **state)
{
	json_t *res;
	(void)state;

	assert_int_equal(tss_sh(NULL,
				"set -e; d='%s/repos'; rm -rf \"$d/deps.src\" \"$d/deps.git\"; "
				"mkdir -p \"$d/deps.src\"; cd \"$d/deps.src\"; git init -q -b main .; "
				"printf 'import unittest\\nfrom tiny_sum import tiny_sum\\n\\n\\n"
				"class T(unittest.TestCase):\\n    def test_sum(self):\\n"
				"        self.assertEqual(tiny_sum(2, 3), 5)\\n' > test_sum.py; "
				"printf 'tiny_sum.py\\n__pycache__/\\n' > .gitignore; git add -A; "
				"git -c user.name=t -c user.email=t@t commit -qm deps; "
				"git clone -q --bare . \"$d/deps.git\"",
				getenv("ORCH_DATA_DIR")),
			 0);
	snprintf(g_deps_repo, sizeof(g_deps_repo), "%s/repos/deps.git", getenv("ORCH_DATA_DIR"));
	tss_script(&g_fake, json_pack("[o]", tss_tool("submit", "{\"summary\": \"it works\"}")));
	res = run_request(deps_request("dk-deps", "work", "deps", 1));
	expect(res, "done", NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "tests"), "passed")), 1);
	/* the worker's socket was under ORCH_NET_SOCKET_DIR */
	{
		buf b;
		buf_init(&b, 0);
		assert_int_equal(tss_sh(&b, "ls '%s'/*/egress-fwd", g_sockets), 0);
		buf_free(&b);
	}
	/* the setup ran twice (before the base's tests, before the verifying ones) */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "network"), "allowed")), 2);
	json_decref(res);
	/* a commit on the task's branch for the merges to take */
	assert_int_equal(tss_sh(NULL, "cd '%s/repos/deps.src' && git checkout -q -b task/deps2 && "
				      "echo '# more' >> test_sum.py && git -c user.name=t -c "
				      "user.email=t@t commit -qam more && git push -q '%s' task/deps2",
				getenv("ORCH_DATA_DIR"), g_deps_repo),
			 0);
	res = run_request(deps_request("dk-merge-none", "merge", "deps2", 0));
	expect(res, "failed", "needs the network");
	json_decref(res);
	res = run_request(deps_request("dk-merge", "merge", "deps2", 1));
	expect(res, "done", "1 tests passed");
	assert_true(json_is_true(json_object_get(res, "merged")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "network"), "allowed")), 1);
	json_decref(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_in_containers),
		cmocka_unit_test(test_setup_through_the_proxy),
	};
	int rc;
	const char *image = getenv("ORCH_TEST_IMAGE_WORKER");
	const char *why = getenv("ORCH_TEST_DOCKER_SKIP");

	ts_init();
	if (!getenv("DOCKER_HOST") || !image || !*image) {
		printf("1..1\nok 1 - worker in containers # SKIP\n");
		printf("skipped: no Docker engine: %s\n",
		       why && *why ? why : "run through `make test`, which starts a private dockerd");
		return 0;
	}
	start_registry();
	rc = cmocka_run_group_tests(tests, setup, teardown);
	kill(g_reg, SIGTERM);
	waitpid(g_reg, NULL, 0);
	return rc;
}
