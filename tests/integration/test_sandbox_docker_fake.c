/* sandbox (docker backend): the engine errors a real engine will not
 * produce on demand, from a fake Engine API (tests/fakes/fake_docker.c): a
 * create the storage driver refuses, a create reply without a valid Id, a
 * container the engine loses while it runs, an engine that answers /_ping
 * with an error. Each is reported with what it was, nothing is left
 * half-done. The rest of the backend is tested on a real dockerd
 * (test_sandbox_docker.c). */
#include "tests/support/support.h"

#include "core/err.h"
#include "spawner/sandbox.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_sock[PATH_MAX];
static pid_t g_pid; /* the fake engine running, stopped by the teardown too */

/* The fake accepts connections (its socket's file appears at bind(), a
 * moment before listen()). */
static int sock_ready(void *u)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
	(void)u;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_sock);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static pid_t fake(const char *ping_status)
{
	char prog[PATH_MAX];
	pid_t pid;

	snprintf(g_sock, sizeof(g_sock), "%s/fake-docker.sock", getenv("ORCH_DATA_DIR"));
	unlink(g_sock);
	ts_prog("fake_docker", prog, sizeof(prog));
	pid = fork();
	if (pid == 0) {
		execl(prog, prog, "--socket", g_sock, "--ping-status", ping_status, (char *)NULL);
		_exit(127);
	}
	g_pid = pid;
	assert_true(ts_wait_for(sock_ready, NULL, 10000));
	return pid;
}

static void stop(pid_t pid)
{
	int st;
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	if (pid == g_pid)
		g_pid = 0;
}

/* A failed assertion leaves the test early: the fake must not outlive it
 * (it holds the output the test runner reads to its end). */
static int teardown(void **state)
{
	(void)state;
	stop(g_pid);
	return 0;
}

static void test_engine_errors(void **state)
{
	const char *argv[] = {"true", NULL};
	sbx_opts o = {.backend = SBX_DOCKER};
	sbx_cmd c = {.argv = argv, .timeout_ms = 20000};
	sbx_result r;
	sbx *b = NULL;
	pid_t pid = fake("200");
	(void)state;
	o.docker_socket = g_sock;
	/* the storage driver refuses the container */
	o.image = "fake/create-500";
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), ERR_SANDBOX);
	assert_non_null(strstr(err_last(), "refused the container (HTTP 500): devmapper"));
	sbx_free(b);
	/* a reply that is not what the engine documents */
	o.image = "fake/bad-id";
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), ERR_PARSE);
	assert_non_null(strstr(err_last(), "no valid Id"));
	sbx_free(b);
	/* the engine loses the running container (a daemon restart) */
	o.image = "fake/lost";
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 125);
	assert_string_equal(r.reason, "the Docker engine lost the container");
	sbx_result_free(&r);
	sbx_free(b);
	stop(pid);
}

static void test_engine_unwell(void **state)
{
	sbx_opts o = {.backend = SBX_DOCKER, .image = "any:1"};
	sbx *b = NULL;
	pid_t pid = fake("500");
	(void)state;
	o.docker_socket = g_sock;
	assert_int_equal(sbx_new(&b, &o), ERR_SANDBOX);
	assert_non_null(strstr(err_last(), "answered /_ping with HTTP 500"));
	stop(pid);
	/* no engine at all */
	o.docker_socket = "/nonexistent/docker.sock";
	assert_int_equal(sbx_new(&b, &o), ERR_SANDBOX);
	assert_non_null(strstr(err_last(), "cannot reach the Docker engine"));
	assert_non_null(strstr(err_last(), "DOCKER_HOST"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_engine_errors, teardown),
		cmocka_unit_test_teardown(test_engine_unwell, teardown),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
