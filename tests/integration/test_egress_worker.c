/* A worker whose project needs a dependency: its setup phase installs it
 * with the real npm from a registry stand-in on loopback
 * (tests/fakes/pkg_registry.py), through the spawner's egress proxy, and its
 * tests pass; with the network policy none the same task reports that it
 * needs the network; with the registry's address not named, the proxy's
 * refusal is the reason. A merge runs the same setup before its re-test. Real PostgreSQL, Redis, git, sandbox and npm; only
 * the model is the fake OpenAI-compatible server.
 *
 * The program runs in a mount namespace of its own whose /etc/hosts adds
 * registry.test (127.0.0.1), so the proxy resolves it as it resolves any
 * name. */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/redis.h"
#include "core/util.h"
#include "spawner/spawner.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static fake_llm g_fake;
static pg_pool *g_pool;
static llm_service *g_llm;
static spw_spawner *g_spawner;
static rds_conn *g_redis;
static char g_repo[1024];
static int g_http, g_echo;
static pid_t g_reg = -1;
static int g_have_npm;

static void xadd(const char *id, json_t *req)
{
	char *text = json_dumps(req, JSON_COMPACT);

	assert_int_equal(rds_cmd(g_redis, NULL, "XADD", SPW_STREAM, "*", "id", id, "req", text, NULL), 0);
	free(text);
	json_decref(req);
}

static json_t *await_result(const char *id)
{
	for (int64_t until = util_mono_ms() + 240000; util_mono_ms() < until; util_sleep_ms(100)) {
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

static json_t *request(const char *id, json_t *network)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "task", id,
			      "project", "proj-net", "repo", g_repo, "base", "main", "prompt",
			      "Check that the sum works; change nothing if it does.", "test_command",
			      "node test.js", "setup_command", "npm install --no-audit --no-fund");
	if (network)
		json_object_set_new(r, "network", network);
	return r;
}

static const char *reason_of(const json_t *res)
{
	return json_string_value(json_object_get(res, "reason"));
}

static void expect_status(const json_t *res, const char *want)
{
	const char *got = json_string_value(json_object_get(res, "status"));

	if (!got || strcmp(got, want) != 0)
		fail_msg("status %s (wanted %s): %s", got ? got : "(none)", want, reason_of(res));
}

static void submit_script(void)
{
	tss_script(&g_fake, json_pack("[o]", tss_tool("submit", "{\"summary\": \"it works\"}")));
}

/* The policy named in the request: the registry by name and by address. */
static void test_setup_installs_through_the_proxy(void **state)
{
	char host[64], addr[64];
	json_t *res;
	(void)state;

	if (!g_have_npm) {
		skip();
		return;
	}
	submit_script();
	snprintf(host, sizeof(host), "registry.test:%d", g_http);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", g_http);
	xadd("net-hosts", request("net-hosts", json_pack("{s:s, s:[s, s]}", "policy", "hosts", "hosts",
							 host, addr)));
	res = await_result("net-hosts");
	expect_status(res, "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "tests"), "passed")), 1);
	assert_true(json_integer_value(json_object_get(json_object_get(res, "network"), "allowed")) >= 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "network"), "denied")), 0);
	json_decref(res);

	/* the transcript has the decisions, and `logs` shows them */
	{
		char cmd[600], line[1024];
		buf out;
		FILE *f;

		buf_init(&out, 0);
		snprintf(cmd, sizeof(cmd), "'%s' logs net-hosts 2>&1", ts_bin());
		f = popen(cmd, "r");
		while (f && fgets(line, sizeof(line), f))
			buf_puts(&out, line);
		if (f)
			pclose(f);
		if (!strstr(out.data, "setup $ npm install") ||
		    !strstr(out.data, "network (setup): allowed GET registry.test") ||
		    !strstr(out.data, "result: done"))
			fail_msg("orchestrator logs net-hosts:\n%s", out.data ? out.data : "");
		buf_free(&out);
	}
}

/* No network field: the spawner's ORCH_NET_POLICY=registries, the language
 * read from package.json, its list from ORCH_NET_REGISTRIES_NODE. */
static void test_default_policy_registries(void **state)
{
	json_t *res;
	(void)state;

	if (!g_have_npm) {
		skip();
		return;
	}
	submit_script();
	xadd("net-default", request("net-default", NULL));
	res = await_result("net-default");
	expect_status(res, "done");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(res, "network"),
								 "policy")),
			       "registries: registry.test"));
	json_decref(res);
}

static void test_policy_none_says_it_needs_network(void **state)
{
	json_t *res;
	int calls = fake_llm_count(&g_fake);
	(void)state;

	if (!g_have_npm) {
		skip();
		return;
	}
	xadd("net-none", request("net-none", json_pack("{s:s}", "policy", "none")));
	res = await_result("net-none");
	expect_status(res, "failed");
	if (!strstr(reason_of(res), "needs the network") || !strstr(reason_of(res), "policy is none"))
		fail_msg("reason: %s", reason_of(res));
	assert_null(json_object_get(res, "network"));
	json_decref(res);
	assert_int_equal(fake_llm_count(&g_fake), calls); /* the agent never ran */
}

static void test_refused_address_is_the_reason(void **state)
{
	char host[64];
	json_t *res;
	(void)state;

	if (!g_have_npm) {
		skip();
		return;
	}
	snprintf(host, sizeof(host), "registry.test:%d", g_http);
	xadd("net-refused", request("net-refused", json_pack("{s:s, s:[s]}", "policy", "hosts",
							     "hosts", host)));
	res = await_result("net-refused");
	expect_status(res, "failed");
	if (!strstr(reason_of(res), "the egress proxy refused") || !strstr(reason_of(res), "loopback"))
		fail_msg("reason: %s", reason_of(res));
	assert_true(json_integer_value(json_object_get(json_object_get(res, "network"), "denied")) >= 1);
	json_decref(res);
}

/* A merge re-runs the tests on the rebased branch in a fresh workspace: the
 * dependency is not there until the same setup runs, with the same policy.
 * With the policy none the merge fails and says the setup needs the
 * network; with the registry allowed it merges, its transcript (shown by
 * `logs`) holding the setup and the proxy's decisions. */
static void test_merge_runs_the_setup(void **state)
{
	char host[64], addr[64], cmd[600], line[1024];
	json_t *res, *rq;
	buf out;
	FILE *f;
	(void)state;

	if (!g_have_npm) {
		skip();
		return;
	}
	snprintf(host, sizeof(host), "registry.test:%d", g_http);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", g_http);
	/* task/net-hosts holds the first test's work (a change of the agent's
	 * is not needed: the merge rebases whatever the branch has) */
	assert_int_equal(tss_sh(NULL, "cd '%s/repos/app.src' && git checkout -q -b task/merge-net && "
				      "echo '// merged' >> test.js && git -c user.name=t -c "
				      "user.email=t@t commit -qam more && git push -q '%s' task/merge-net",
				getenv("ORCH_DATA_DIR"), g_repo),
			 0);
	rq = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "id", "merge-none", "mode",
		       "merge", "task", "merge-net", "project", "proj-net", "repo", g_repo,
		       "test_command", "node test.js", "setup_command",
		       "npm install --no-audit --no-fund", "target", "main", "network", "policy",
		       "none");
	xadd("merge-none", rq);
	res = await_result("merge-none");
	expect_status(res, "failed");
	if (!strstr(reason_of(res), "needs the network") || !strstr(reason_of(res), "policy is none"))
		fail_msg("reason: %s", reason_of(res));
	assert_false(json_is_true(json_object_get(res, "merged")));
	json_decref(res);

	rq = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:[s, s]}}", "id", "merge-net",
		       "mode", "merge", "task", "merge-net", "project", "proj-net", "repo", g_repo,
		       "test_command", "node test.js", "setup_command",
		       "npm install --no-audit --no-fund", "target", "main", "network", "policy",
		       "hosts", "hosts", host, addr);
	xadd("merge-net", rq);
	res = await_result("merge-net");
	expect_status(res, "done");
	assert_true(json_is_true(json_object_get(res, "merged")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "tests"), "passed")), 1);
	assert_true(json_integer_value(json_object_get(json_object_get(res, "network"), "allowed")) >= 2);
	json_decref(res);
	buf_init(&out, 0);
	snprintf(cmd, sizeof(cmd), "'%s' logs merge-net 2>&1", ts_bin());
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
		buf_puts(&out, line);
	if (f)
		pclose(f);
	if (!strstr(out.data, "setup $ npm install") ||
	    !strstr(out.data, "network (setup): allowed GET registry.test"))
		fail_msg("orchestrator logs merge-net:\n%s", out.data ? out.data : "");
	buf_free(&out);
}

static void test_bad_network_field_invalid(void **state)
{
	json_t *res;
	(void)state;

	xadd("net-bad", request("net-bad", json_pack("{s:s, s:[s]}", "policy", "hosts", "hosts",
						     "registry.test.")));
	res = await_result("net-bad");
	expect_status(res, "invalid");
	assert_non_null(strstr(reason_of(res), "network.hosts[0]"));
	assert_non_null(strstr(reason_of(res), "trailing dot"));
	json_decref(res);
}

/* --- set-up --- */

static void private_names(void)
{
	char hosts[1024];
	FILE *f;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "mount namespace: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(hosts, sizeof(hosts), "%s/hosts", getenv("ORCH_DATA_DIR"));
	f = fopen(hosts, "w");
	if (!f)
		exit(1);
	fputs("127.0.0.1 localhost registry.test\n::1 localhost ip6-localhost\n", f);
	fclose(f);
	if (mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) < 0) {
		fprintf(stderr, "bind /etc/hosts: %s\n", strerror(errno));
		exit(1);
	}
}

static void start_registry(void)
{
	int p[2];
	char line[128];
	ssize_t n;

	if (pipe(p) < 0)
		exit(1);
	g_reg = fork();
	if (g_reg == 0) {
		dup2(p[1], 1);
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("python3", "python3", "tests/fakes/pkg_registry.py", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "ports %d %d", &g_http, &g_echo) != 2) {
		fprintf(stderr, "the registry stand-in did not start: %s\n", line);
		exit(1);
	}
}

static int setup(void **state)
{
	spw_config cfg;
	llm_registry *reg = NULL;
	llm_options lo;
	char list[200];
	(void)state;

	setenv("ORCH_WORKER_DISK", "256M", 1);
	setenv("ORCH_WORKER_MEM", "1G", 1);
	setenv("ORCH_TEST_TIMEOUT", "120s", 1);
	setenv("ORCH_WORKER_DISK_KIND", "tmpfs", 1);
	setenv("ORCH_NET_POLICY", "registries", 1);
	snprintf(list, sizeof(list), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	setenv("ORCH_NET_REGISTRIES_NODE", list, 1);
	fake_llm_start(&g_fake);
	tss_models(&g_fake);
	g_pool = ts_pool(6);
	if (tss_sh(NULL,
		   "set -e; d='%s/repos'; rm -rf \"$d/app.src\" \"$d/app.git\"; mkdir -p \"$d/app.src\"; "
		   "cd \"$d/app.src\"; git init -q -b main .; "
		   "printf '{\"name\": \"app\", \"version\": \"1.0.0\", \"private\": true, "
		   "\"dependencies\": {\"tiny-sum\": \"1.0.0\"}}\\n' > package.json; "
		   "printf 'registry=http://registry.test:%d/\\n' > .npmrc; "
		   "printf \"const sum = require('tiny-sum');\\nconst ok = sum(2, 3) === 5;\\n"
		   "console.log('1..1');\\nconsole.log((ok ? 'ok' : 'not ok') + ' 1 - sum adds');\\n"
		   "process.exit(ok ? 0 : 1);\\n\" > test.js; "
		   "printf 'node_modules/\\npackage-lock.json\\n' > .gitignore; "
		   "git add -A; git -c user.name=t -c user.email=t@t commit -qm app; "
		   "git clone -q --bare . \"$d/app.git\"",
		   getenv("ORCH_DATA_DIR"), g_http) != 0)
		fail_msg("could not create the project repository");
	snprintf(g_repo, sizeof(g_repo), "%s/repos/app.git", getenv("ORCH_DATA_DIR"));
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
	llm_service_free(g_llm);
	rds_free(g_redis);
	fake_llm_stop(&g_fake);
	pg_pool_free(g_pool);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_installs_through_the_proxy),
		cmocka_unit_test(test_default_policy_registries),
		cmocka_unit_test(test_policy_none_says_it_needs_network),
		cmocka_unit_test(test_refused_address_is_the_reason),
		cmocka_unit_test(test_merge_runs_the_setup),
		cmocka_unit_test(test_bad_network_field_invalid),
	};
	int rc;

	g_have_npm = system("command -v npm >/dev/null 2>&1") == 0;
	if (!g_have_npm)
		printf("# skipped: npm is not installed, so the setup phase cannot be shown\n");
	private_names();
	start_registry();
	ts_init();
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	kill(g_reg, SIGTERM);
	waitpid(g_reg, NULL, 0);
	return rc;
}
