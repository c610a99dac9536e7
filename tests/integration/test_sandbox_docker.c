/* sandbox (docker backend) on a real Docker engine: the private dockerd that
 * `make test` starts (tests/env/docker.sh; DOCKER_HOST names it) with the
 * busybox image it builds. The sandbox contract (sandbox_contract.c), then
 * what belongs to this backend: output byte for byte and past the engine's
 * log limits, any workspace path, the command line with DOCKER_HOST. */
#include "sandbox_contract.c"

static char g_ws[PATH_MAX];

static void test_output_exact_and_cut(void **state)
{
	char cmd[PATH_MAX + 128], p[PATH_MAX + 16];
	sbx_cmd c = {.timeout_ms = 60000, .output_cap = 2 << 20};
	const char *argv[] = {"sh", "-c", cmd, NULL};
	sbx_result r;
	FILE *f;
	char *want = malloc(1 << 20);
	sbx *b;
	(void)state;
	workspace(g_ws, sizeof(g_ws));
	b = box(g_ws, 128 << 20, 0);
	/* 1 MiB of random bytes comes back as it was written */
	snprintf(cmd, sizeof(cmd), "head -c 1048576 /dev/urandom | tee /workspace/rand");
	c.argv = argv;
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 0);
	snprintf(p, sizeof(p), "%s/rand", g_ws);
	f = fopen(p, "rb");
	assert_non_null(f);
	assert_int_equal(fread(want, 1, 1 << 20, f), 1 << 20);
	fclose(f);
	assert_int_equal(r.out.len, 1 << 20);
	assert_memory_equal(r.out.data, want, 1 << 20);
	assert_false(r.out_truncated);
	sbx_result_free(&r);
	/* 20 MB: the head and the end (where test summaries are), and a note */
	snprintf(cmd, sizeof(cmd), "yes 0123456789 | head -c 20000000; echo END-OF-OUTPUT");
	c.output_cap = 64 << 10;
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_true(r.out_truncated);
	assert_int_equal(r.out_bytes, 20000000 + 14);
	assert_memory_equal(r.out.data, "0123456789\n", 11);
	assert_string_equal(buf_cstr(&r.out) + r.out.len - 14, "END-OF-OUTPUT\n");
	assert_non_null(strstr(r.reason, "was cut"));
	sbx_result_free(&r);
	free(want);
	sbx_free(b);
}

static void test_workspace_path_with_colon(void **state)
{
	char ws[PATH_MAX], p[PATH_MAX + 16];
	struct stat st;
	sbx_result r;
	sbx *b;
	(void)state;
	snprintf(ws, sizeof(ws), "%s/ws:with:colons", getenv("ORCH_DATA_DIR"));
	assert_int_equal(mkdir(ws, 0700), 0);
	b = box(ws, 0, 0);
	sh(b, "echo x > /workspace/made && ls /workspace", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "made\n");
	sbx_result_free(&r);
	snprintf(p, sizeof(p), "%s/made", ws);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, sbx_uid(b));
	sbx_free(b);
}

static void test_no_core_files(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	sh(b, "ulimit -c; sleep 30 & kill -SEGV $!; wait $!; echo status=$?; ls /workspace", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "0\nstatus=139\n");
	sbx_result_free(&r);
	sbx_free(b);
}

static int run_shell(const char *cmd, char *out, size_t cap)
{
	FILE *f = popen(cmd, "r");
	size_t n;
	int st;

	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = 0;
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_cli_docker(void **state)
{
	char cmd[PATH_MAX * 2], out[4096];
	(void)state;
	/* DOCKER_HOST names the engine */
	snprintf(cmd, sizeof(cmd),
		 "%s sandbox run -v --backend docker --image %s --mem 128M --pids 64 -- "
		 "sh -c 'echo via-docker; exit 5' 2>&1", ts_bin(), g_image);
	assert_int_equal(run_shell(cmd, out, sizeof(out)), 5);
	assert_non_null(strstr(out, "via-docker\n"));
	assert_non_null(strstr(out, "peak memory and cpu not reported"));
	assert_null(strstr(out, "-1 KiB"));
	snprintf(cmd, sizeof(cmd),
		 "%s sandbox run --backend docker --image %s --timeout 300ms -- sleep 100 2>&1",
		 ts_bin(), g_image);
	assert_int_equal(run_shell(cmd, out, sizeof(out)), 124);
	assert_non_null(strstr(out, "timed out after 300 ms"));
	snprintf(cmd, sizeof(cmd),
		 "%s sandbox run --backend docker --image %s --net host -- true 2>&1", ts_bin(), g_image);
	assert_int_equal(run_shell(cmd, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "network 'host' is refused"));
	snprintf(cmd, sizeof(cmd),
		 "DOCKER_HOST=tcp://192.0.2.1:2375 %s sandbox run --backend docker --image %s -- true 2>&1",
		 ts_bin(), g_image);
	assert_int_equal(run_shell(cmd, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "unix socket"));
	snprintf(cmd, sizeof(cmd), "%s sandbox sweep", ts_bin());
	assert_int_equal(run_shell(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "leftover sandbox containers from the Docker engine"));
}

int main(void)
{
	const struct CMUnitTest own[] = {
		cmocka_unit_test(test_output_exact_and_cut),
		cmocka_unit_test(test_workspace_path_with_colon),
		cmocka_unit_test(test_no_core_files),
		cmocka_unit_test(test_cli_docker),
	};
	const char *image = getenv("ORCH_TEST_IMAGE_BUSYBOX");
	const char *why = getenv("ORCH_TEST_DOCKER_SKIP");

	ts_init();
	if (!getenv("DOCKER_HOST") || !image || !*image) {
		printf("1..1\nok 1 - sandbox contract (docker) # SKIP\n");
		printf("skipped: no Docker engine: %s\n",
		       why && *why ? why : "run through `make test`, which starts a private dockerd");
		return 0;
	}
	return contract_main(SBX_DOCKER, image, own, sizeof(own) / sizeof(own[0]));
}
