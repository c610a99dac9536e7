#include "tests/support/llama.h"
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[PATH_MAX];

const char *ts_llama_dir(char *why, size_t cap)
{
	const char *env = getenv("ORCH_TEST_LLAMA_DIR");
	const char *d = env && *env ? env : "../shared/llama";
	char bin[PATH_MAX + 32], sh[PATH_MAX + 32];

	if (!realpath(d, g_dir)) {
		snprintf(why, cap, "%s not found; put ../shared beside the checkout or set "
			 "ORCH_TEST_LLAMA_DIR", d);
		return NULL;
	}
	snprintf(bin, sizeof(bin), "%s/llama-server", g_dir);
	snprintf(sh, sizeof(sh), "%s/start.sh", g_dir);
	if (access(bin, X_OK) != 0 || access(sh, R_OK) != 0) {
		snprintf(why, cap, "%s has no executable llama-server and start.sh", g_dir);
		return NULL;
	}
	return g_dir;
}

int ts_llama_skip(const char *name, const char *why)
{
	printf("1..1\nok 1 - %s # skipped: no llama-server (%s)\n", name, why);
	printf("skipped: no llama-server (%s)\n", why);
	fflush(stdout);
	return 0;
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &n) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The watchdog: kills the last pid it was told about when the test
 * program's end of the pipe closes (the program died or stopped). */
static void watchdog_main(int rd)
{
	int32_t pid = 0, v;

	for (int fd = 3; fd < 1024; fd++)
		if (fd != rd)
			close(fd);
	for (;;) {
		ssize_t n = read(rd, &v, sizeof(v));
		if (n == (ssize_t)sizeof(v)) {
			pid = v;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	if (pid > 0) {
		kill(pid, SIGCONT);
		kill(pid, SIGKILL);
	}
	_exit(0);
}

static void watch(ts_llama *l, pid_t pid)
{
	int32_t v = (int32_t)pid;

	if (l->watch_fd <= 0) {
		int fds[2];
		if (pipe(fds) != 0)
			fail_msg("pipe failed");
		l->watchdog = fork();
		if (l->watchdog < 0)
			fail_msg("fork failed");
		if (l->watchdog == 0) {
			close(fds[1]);
			watchdog_main(fds[0]);
		}
		close(fds[0]);
		fcntl(fds[1], F_SETFD, FD_CLOEXEC);
		l->watch_fd = fds[1];
	}
	if (write(l->watch_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		fail_msg("cannot tell the llama-server watchdog");
}

/* Runs start.sh on l->port; the server's pid, or -1 with the reason in
 * out[cap]. */
static pid_t run_start(ts_llama *l, char *out, size_t cap)
{
	char sh[PATH_MAX + 16], port[16], ctx[16], np[16], line[256];
	const char *argv[16];
	int fds[2], st, k = 0;
	pid_t child, pid = -1;
	FILE *in;

	snprintf(sh, sizeof(sh), "%s/start.sh", g_dir);
	snprintf(port, sizeof(port), "%d", l->port);
	snprintf(ctx, sizeof(ctx), "%d", l->ctx);
	snprintf(np, sizeof(np), "%d", l->np);
	argv[k++] = "bash";
	argv[k++] = sh;
	argv[k++] = port;
	for (int i = 0; i < l->nargs; i++)
		argv[k++] = l->args[i];
	argv[k] = NULL;
	if (pipe(fds) != 0)
		return -1;
	child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		setenv("CTX", ctx, 1);
		setenv("NP", np, 1);
		setenv("MODEL", l->model, 1);
		setenv("THREADS", "1", 1);
		setenv("LOG", l->log, 1);
		execvp("bash", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	out[0] = '\0';
	while (in && fgets(line, sizeof(line), in)) {
		char *end;
		long v = strtol(line, &end, 10);
		if (end != line && (*end == '\n' || *end == '\0') && v > 0)
			pid = (pid_t)v;
		else
			snprintf(out + strlen(out), cap - strlen(out), "%s", line);
	}
	if (in)
		fclose(in);
	waitpid(child, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		pid = -1;
	return pid;
}

/* Starts the server on l->port (a free one when 0; another one when it is
 * taken, unless keep_port). 0, or -1 with the reason in why[cap]. */
static int start_on_port(ts_llama *l, int keep_port, char *why, size_t cap)
{
	for (int tries = 0; tries < 10; tries++) {
		pid_t pid;
		if (l->port == 0)
			l->port = free_port();
		pid = run_start(l, why, cap);
		if (pid > 0) {
			l->pid = pid;
			watch(l, pid);
			snprintf(l->base_url, sizeof(l->base_url), "http://127.0.0.1:%d/v1", l->port);
			return 0;
		}
		if (!strstr(why, "busy"))
			break;
		if (!keep_port)
			l->port = 0;
		usleep(300000);
	}
	return -1;
}

void ts_llama_start(ts_llama *l, const char *model, int ctx, int np, const char *const *args)
{
	const char *d = getenv("ORCH_DATA_DIR");
	char why[512];

	memset(l, 0, sizeof(*l));
	if (!ts_llama_dir(why, sizeof(why)))
		fail_msg("no llama-server: %s", why);
	snprintf(l->model, sizeof(l->model), "%s", model);
	l->ctx = ctx;
	l->np = np;
	for (int i = 0; args && args[i] && i < 8; i++)
		snprintf(l->args[l->nargs++], sizeof(l->args[0]), "%s", args[i]);
	snprintf(l->log, sizeof(l->log), "%s/llama-server-%d-%s.log", d && *d ? d : "/tmp",
		 (int)getpid(), model);
	if (start_on_port(l, 0, why, sizeof(why)) < 0)
		fail_msg("llama-server did not start: %s", why);
}

/* Kills the server and waits until it is gone. */
static void kill_server(ts_llama *l, int sig)
{
	if (l->pid <= 0)
		return;
	kill(l->pid, sig);
	kill(l->pid, SIGCONT);
	for (int i = 0; i < 200 && kill(l->pid, 0) == 0; i++) {
		usleep(50000);
		if (i == 100)
			kill(l->pid, SIGKILL);
	}
	l->pid = 0;
}

void ts_llama_stop(ts_llama *l)
{
	int st;

	kill_server(l, SIGTERM);
	if (l->watch_fd > 0) {
		int32_t none = 0;
		if (write(l->watch_fd, &none, sizeof(none)) < 0)
			perror("llama watchdog");
		close(l->watch_fd);
		l->watch_fd = 0;
		waitpid(l->watchdog, &st, 0);
	}
}

void ts_llama_kill(ts_llama *l)
{
	kill_server(l, SIGKILL);
}

int ts_llama_restart(ts_llama *l, int delay_ms)
{
	char why[2048];

	kill_server(l, SIGKILL);
	usleep((useconds_t)delay_ms * 1000);
	if (start_on_port(l, 1, why, sizeof(why)) < 0) {
		fprintf(stderr, "llama-server did not start again: %s\n", why);
		return -1;
	}
	return 0;
}

void ts_llama_freeze(ts_llama *l, int frozen)
{
	if (l->pid > 0)
		kill(l->pid, frozen ? SIGSTOP : SIGCONT);
}
