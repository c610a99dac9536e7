/* sandbox (docker backend) against a fake Docker Engine API server on a
 * unix socket (tests/fakes/fake_docker.c): the container asked for carries
 * every limit, the command's output comes back demultiplexed, a timeout
 * kills and removes the container, and the engine's socket is never given
 * to a container. */
#include "tests/support/support.h"

#include "core/err.h"
#include "spawner/sandbox.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_sock[PATH_MAX], g_log[PATH_MAX], g_ws[PATH_MAX];
static pid_t g_fake;

static int sock_ready(void *u)
{
	struct stat st;
	(void)u;
	return stat(g_sock, &st) == 0;
}

static int setup(void **state)
{
	const char *d = getenv("ORCH_DATA_DIR");
	char prog[PATH_MAX];
	(void)state;
	snprintf(g_sock, sizeof(g_sock), "%s/docker.sock", d && *d ? d : "/tmp");
	snprintf(g_log, sizeof(g_log), "%s/docker-requests.jsonl", d && *d ? d : "/tmp");
	snprintf(g_ws, sizeof(g_ws), "%s/ws", d && *d ? d : "/tmp");
	mkdir(g_ws, 0755);
	unlink(g_log);
	unlink(g_sock);
	ts_prog("fake_docker", prog, sizeof(prog));
	g_fake = fork();
	if (g_fake == 0) {
		execl(prog, prog, "--socket", g_sock, "--log", g_log, "--images", "alpine:3,debian:12",
		      (char *)NULL);
		_exit(127);
	}
	return ts_wait_for(sock_ready, NULL, 10000) ? 0 : -1;
}

static int teardown(void **state)
{
	int st;
	(void)state;
	kill(g_fake, SIGTERM);
	waitpid(g_fake, &st, 0);
	return 0;
}

/* The requests the fake received, as a JSON array (caller decrefs). */
static json_t *requests(void)
{
	FILE *f = fopen(g_log, "r");
	json_t *all = json_array();
	char line[65536];
	while (f && fgets(line, sizeof(line), f))
		json_array_append_new(all, ts_json(line));
	if (f)
		fclose(f);
	return all;
}

/* The last request whose path starts with `prefix` and method matches. */
static json_t *last_request(json_t *all, const char *method, const char *prefix)
{
	json_t *found = NULL, *v;
	size_t i;
	json_array_foreach(all, i, v) {
		if (strcmp(json_string_value(json_object_get(v, "method")), method) == 0 &&
		    strncmp(json_string_value(json_object_get(v, "path")), prefix, strlen(prefix)) == 0)
			found = v;
	}
	return found;
}

static sbx *dbox(const char *net, const char *runtime)
{
	static const sbx_bind binds[] = {{.host = "/usr/share", .inside = "/opt/share"}};
	sbx_opts o = {.backend = SBX_DOCKER,
		      .docker_socket = g_sock,
		      .image = "alpine:3",
		      .runtime = runtime,
		      .net = net,
		      .workspace = g_ws,
		      .mem_bytes = 64 << 20,
		      .pids = 32,
		      .cpus = 0.5,
		      .binds = binds,
		      .nbinds = 1};
	sbx *b = NULL;
	if (sbx_new(&b, &o) < 0)
		fail_msg("sbx_new(docker): %s", err_last());
	return b;
}

static void test_run_and_limits(void **state)
{
	const char *argv[] = {"sh", "-c", "echo out $FOO; echo err >&2; echo out2; exit 3", NULL};
	const char *env[] = {"FOO=bar", NULL};
	sbx_cmd c = {.argv = argv, .env = env, .timeout_ms = 20000};
	sbx_result r;
	json_t *all, *create, *hc;
	sbx *b;
	(void)state;
	setenv("ORCH_TEST_SECRET", "s3cr3t", 1);
	b = dbox(NULL, "sysbox-runc");
	assert_non_null(strstr(sbx_describe(b), "runtime sysbox-runc"));
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 3);
	assert_string_equal(buf_cstr(&r.out), "out bar\nout2\n");
	assert_string_equal(buf_cstr(&r.err), "err\n");
	assert_false(r.timed_out);
	sbx_result_free(&r);
	sbx_free(b);
	unsetenv("ORCH_TEST_SECRET");

	all = requests();
	create = json_object_get(last_request(all, "POST", "/containers/create"), "body");
	assert_non_null(create);
	hc = json_object_get(create, "HostConfig");
	assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
	assert_int_equal(json_integer_value(json_object_get(hc, "MemorySwap")), 64 << 20);
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 32);
	assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
	assert_string_equal(json_string_value(json_object_get(hc, "NetworkMode")), "none");
	assert_true(json_is_true(json_object_get(create, "NetworkDisabled")));
	assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
	assert_false(json_is_true(json_object_get(hc, "Privileged")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "CapDrop"), 0)), "ALL");
	assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "SecurityOpt"), 0)),
			    "no-new-privileges");
	assert_string_equal(json_string_value(json_object_get(hc, "Runtime")), "sysbox-runc");
	assert_string_equal(json_string_value(json_object_get(create, "User")), "1000:1000");
	assert_string_equal(json_string_value(json_object_get(create, "WorkingDir")), "/workspace");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(hc, "Tmpfs"), "/tmp")),
			       "size=33554432"));
	{
		char want[PATH_MAX + 32];
		json_t *binds = json_object_get(hc, "Binds"), *v;
		size_t i;
		snprintf(want, sizeof(want), "%s:/workspace:rw", g_ws);
		assert_string_equal(json_string_value(json_array_get(binds, 0)), want);
		assert_string_equal(json_string_value(json_array_get(binds, 1)), "/usr/share:/opt/share:ro");
		assert_int_equal(json_array_size(binds), 2);
		json_array_foreach(binds, i, v)
			assert_null(strstr(json_string_value(v), "docker.sock"));
	}
	{
		/* the environment holds only what was granted, plus the defaults */
		json_t *env_j = json_object_get(create, "Env");
		char *s = json_dumps(env_j, JSON_COMPACT);
		assert_string_equal(s, "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
				       "\"HOME=/tmp\",\"LANG=C.UTF-8\",\"FOO=bar\"]");
		free(s);
	}
	/* the container was removed */
	assert_non_null(last_request(all, "DELETE", "/containers/"));
	json_decref(all);
}


/* Live output: the command goes on only after the owner saw its first line
 * (the callback creates the file it waits for). */
typedef struct live {
	const char *ws;
	int saw_first;
} live;

static int on_live(int stream, const char *data, size_t n, void *udata)
{
	live *l = udata;
	char p[PATH_MAX + 8];
	FILE *f;

	if (stream != 1 || l->saw_first || !memmem(data, n, "first", 5))
		return 0;
	l->saw_first = 1;
	snprintf(p, sizeof(p), "%s/go", l->ws);
	f = fopen(p, "w");
	if (f)
		fclose(f);
	return 0;
}

static const char *const live_argv[] = {
	"sh", "-c", "rm -f go; echo first; while [ ! -e go ]; do sleep 0.05; done; echo second", NULL};

static void test_live_output(void **state)
{
	live l = {.ws = g_ws};
	sbx_cmd c = {.argv = live_argv, .timeout_ms = 30000, .on_output = on_live, .udata = &l};
	sbx_result r;
	sbx *b;
	(void)state;
	b = dbox(NULL, NULL);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_false(r.timed_out);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(buf_cstr(&r.out), "first\nsecond\n");
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_timeout_kills_and_removes(void **state)
{
	const char *argv[] = {"sleep", "1000", NULL};
	sbx_cmd c = {.argv = argv, .timeout_ms = 300};
	sbx_result r;
	json_t *all;
	sbx *b;
	(void)state;
	b = dbox("orch-gateway", NULL);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_true(r.timed_out);
	assert_int_equal(r.exit_code, 124);
	assert_non_null(strstr(r.reason, "timed out after 300 ms"));
	sbx_result_free(&r);
	all = requests();
	assert_non_null(last_request(all, "POST", "/containers/"));
	{
		json_t *kill_rq = NULL, *v;
		size_t i;
		json_array_foreach(all, i, v)
			if (strstr(json_string_value(json_object_get(v, "path")), "/kill?signal=KILL"))
				kill_rq = v;
		assert_non_null(kill_rq);
	}
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
				    last_request(all, "POST", "/containers/create"), "body"), "HostConfig"),
							      "NetworkMode")),
			    "orch-gateway");
	json_decref(all);
	/* nothing is left on the engine */
	{
		sbx_result r2;
		const char *ls[] = {"true", NULL};
		sbx_cmd c2 = {.argv = ls};
		assert_int_equal(sbx_run(b, &c2, &r2), 0);
		assert_int_equal(r2.exit_code, 0);
		sbx_result_free(&r2);
	}
	sbx_free(b);
}

static void test_output_cap_and_oom(void **state)
{
	const char *argv[] = {"sh", "-c", "yes 0123456789 | head -c 200000", NULL};
	const char *oom[] = {"fake-oom", NULL};
	sbx_cmd c = {.argv = argv, .output_cap = 4096, .timeout_ms = 20000};
	sbx_result r;
	sbx *b;
	(void)state;
	b = dbox(NULL, NULL);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_true(r.out_truncated);
	assert_int_equal(r.out_bytes, 200000);
	assert_true(r.out.len < 4096 + 100);
	assert_memory_equal(r.out.data, "0123456789\n", 11);
	sbx_result_free(&r);
	c = (sbx_cmd){.argv = oom};
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_true(r.oom_killed);
	assert_int_equal(r.exit_code, 137);
	assert_non_null(strstr(r.reason, "memory limit (64 MiB) reached"));
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_refusals(void **state)
{
	char dir[PATH_MAX];
	sbx_bind sock_bind = {.host = g_sock, .inside = "/var/run/docker.sock"};
	sbx_opts o = {.backend = SBX_DOCKER, .docker_socket = g_sock, .image = "alpine:3"};
	const char *argv[] = {"true", NULL};
	sbx_cmd c = {.argv = argv};
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	/* the engine's socket never goes into a container */
	o.binds = &sock_bind;
	o.nbinds = 1;
	assert_int_equal(sbx_new(&b, &o), ERR_DENIED);
	assert_non_null(strstr(err_last(), "socket"));
	o.binds = NULL;
	o.nbinds = 0;
	snprintf(dir, sizeof(dir), "%s", g_sock);
	*strrchr(dir, '/') = 0;
	o.workspace = dir;
	assert_int_equal(sbx_new(&b, &o), ERR_DENIED);
	o.workspace = NULL;
	/* no image, unknown image, no engine */
	o.image = NULL;
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "--image"));
	o.image = "nosuch:1";
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), ERR_SANDBOX);
	assert_non_null(strstr(err_last(), "docker pull nosuch:1"));
	c.stdin_data = "x";
	c.stdin_len = 1;
	assert_int_equal(sbx_run(b, &c, &r), ERR_INVALID);
	sbx_free(b);
	o.image = "alpine:3";
	o.docker_socket = "/nonexistent/docker.sock";
	assert_int_equal(sbx_new(&b, &o), ERR_SANDBOX);
	assert_non_null(strstr(err_last(), "cannot reach the Docker engine"));
}

static void test_cli_docker(void **state)
{
	char cmd[PATH_MAX * 2], out[4096];
	FILE *f;
	size_t n;
	int st;
	(void)state;
	snprintf(cmd, sizeof(cmd),
		 "%s sandbox run --backend docker --docker-socket %s --image alpine:3 --runtime sysbox-runc "
		 "--mem 128M --pids 64 -- sh -c 'echo via-docker; exit 5' 2>&1",
		 ts_bin(), g_sock);
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	st = pclose(f);
	assert_int_equal(WEXITSTATUS(st), 5);
	assert_string_equal(out, "via-docker\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_and_limits),
		cmocka_unit_test(test_live_output),
		cmocka_unit_test(test_timeout_kills_and_removes),
		cmocka_unit_test(test_output_cap_and_oom),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_cli_docker),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
