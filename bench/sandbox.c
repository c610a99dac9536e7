/*
 * bench/sandbox — what a sandbox costs, beside its references measured in
 * the same run:
 *   fork_exec   fork + exec /bin/true + wait (the floor for any process)
 *   unshare     `unshare -Urpfn /bin/true` (namespaces only: no cgroups, no
 *               seccomp, no mounts)
 *   sandbox     sbx_run(/bin/true) on one box (ns backend: all namespaces,
 *               seccomp, cgroup limits, the full mount plan) — the cost of
 *               each shell action of a worker
 *   sandbox_cold  sbx_new + sbx_run + sbx_free (a box made for one command)
 * then N concurrent boxes each compiling and running a small C program:
 * throughput and peak memory.
 *
 *   build/bench/sandbox [--runs 200] [--concurrent 20] [--json FILE]
 */
#include "core/err.h"
#include "core/util.h"
#include "spawner/sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static double now_ms(void)
{
	return (double)util_mono_ns() / 1e6;
}

static int spawn_wait(char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

typedef struct conc {
	int idx;
	char dir[512];
	double ms;
	int64_t peak;
	int exit_code;
	char err[256];
} conc;

static const char HELLO[] =
	"#include <stdio.h>\n"
	"static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }\n"
	"int main(void) { printf(\"fib(25)=%ld\\n\", fib(25)); return 0; }\n";

static void *conc_main(void *arg)
{
	conc *c = arg;
	sbx_opts o = {.backend = SBX_NS, .workspace = c->dir, .mem_bytes = 256 << 20, .pids = 64};
	const char *argv[] = {"sh", "-c", "cc -O1 -o hello hello.c && ./hello", NULL};
	sbx_cmd cmd = {.argv = argv, .timeout_ms = 120000};
	sbx_result r;
	sbx *b = NULL;
	double t0 = now_ms();

	c->exit_code = -1;
	if (sbx_new(&b, &o) < 0 || sbx_run(b, &cmd, &r) < 0) {
		snprintf(c->err, sizeof(c->err), "%s", err_last());
		sbx_free(b);
		return NULL;
	}
	c->ms = now_ms() - t0;
	c->exit_code = r.exit_code;
	c->peak = r.mem_peak_bytes;
	if (r.exit_code != 0)
		snprintf(c->err, sizeof(c->err), "%.200s", buf_cstr(&r.err));
	sbx_result_free(&r);
	sbx_free(b);
	return NULL;
}

int main(int argc, char **argv)
{
	int runs = 200, nconc = 20;
	const char *json = NULL;
	double *fe, *un, *sb, *cold;
	int ncold;
	sbx *b = NULL;
	sbx_opts o = {.backend = SBX_NS, .mem_bytes = 256 << 20, .pids = 64};
	const char *targv[] = {"/bin/true", NULL};
	sbx_cmd cmd = {.argv = targv, .timeout_ms = 10000};
	char *true_argv[] = {"/bin/true", NULL};
	char *unshare_argv[] = {"/usr/bin/unshare", "-Urpfn", "/bin/true", NULL};
	char base[] = "/tmp/orch-bench-XXXXXX";
	conc *cs;
	pthread_t *th;
	double t0, wall, fe_med, un_med, sb_med, sb_p99, cold_med;
	int64_t peak_sum = 0, peak_max = 0;
	int ok = 0;
	struct rusage ru;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--concurrent") == 0 && i + 1 < argc)
			nconc = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
			json = argv[++i];
	}
	if (runs < 10 || runs > 100000 || nconc < 1 || nconc > 200) {
		fprintf(stderr, "usage: sandbox [--runs N>=10] [--concurrent 1..200] [--json FILE]\n");
		return 2;
	}
	util_init();
	ncold = runs / 4;
	fe = calloc((size_t)runs, sizeof(double));
	un = calloc((size_t)runs, sizeof(double));
	sb = calloc((size_t)runs, sizeof(double));
	cold = calloc((size_t)runs, sizeof(double));
	if (!fe || !un || !sb || !cold)
		return 1;
	if (sbx_new(&b, &o) < 0) {
		fprintf(stderr, "bench sandbox: %s\n", err_last());
		return 1;
	}
	/* interleave the measurements so machine noise hits them alike */
	for (int i = 0; i < runs; i++) {
		sbx_result r;
		t0 = now_ms();
		if (spawn_wait(true_argv) != 0)
			return fprintf(stderr, "fork+exec /bin/true failed\n"), 1;
		fe[i] = now_ms() - t0;
		t0 = now_ms();
		if (spawn_wait(unshare_argv) != 0)
			return fprintf(stderr, "unshare -Urpfn /bin/true failed\n"), 1;
		un[i] = now_ms() - t0;
		t0 = now_ms();
		if (sbx_run(b, &cmd, &r) < 0 || r.exit_code != 0)
			return fprintf(stderr, "sandbox /bin/true failed: %s\n", err_last()), 1;
		sb[i] = now_ms() - t0;
		sbx_result_free(&r);
		if (i < ncold) {
			sbx *cb = NULL;
			t0 = now_ms();
			if (sbx_new(&cb, &o) < 0 || sbx_run(cb, &cmd, &r) < 0 || r.exit_code != 0)
				return fprintf(stderr, "cold sandbox failed: %s\n", err_last()), 1;
			sbx_free(cb);
			cold[i] = now_ms() - t0;
			sbx_result_free(&r);
		}
	}
	sbx_free(b);
	fe_med = pct(fe, runs, 0.5);
	un_med = pct(un, runs, 0.5);
	sb_p99 = pct(sb, runs, 0.99);
	sb_med = pct(sb, runs, 0.5);
	cold_med = pct(cold, ncold, 0.5);

	/* concurrent compiles */
	if (!mkdtemp(base))
		return fprintf(stderr, "mkdtemp: %s\n", strerror(errno)), 1;
	cs = calloc((size_t)nconc, sizeof(*cs));
	th = calloc((size_t)nconc, sizeof(*th));
	if (!cs || !th)
		return 1;
	for (int i = 0; i < nconc; i++) {
		char p[600];
		FILE *f;
		cs[i].idx = i;
		snprintf(cs[i].dir, sizeof(cs[i].dir), "%s/w%d", base, i);
		mkdir(cs[i].dir, 0755);
		snprintf(p, sizeof(p), "%s/hello.c", cs[i].dir);
		f = fopen(p, "w");
		if (!f)
			return 1;
		fputs(HELLO, f);
		fclose(f);
	}
	t0 = now_ms();
	for (int i = 0; i < nconc; i++)
		pthread_create(&th[i], NULL, conc_main, &cs[i]);
	for (int i = 0; i < nconc; i++)
		pthread_join(th[i], NULL);
	wall = now_ms() - t0;
	for (int i = 0; i < nconc; i++) {
		if (cs[i].exit_code == 0)
			ok++;
		else
			fprintf(stderr, "sandbox %d failed: %s\n", i, cs[i].err);
		if (cs[i].peak > 0) {
			peak_sum += cs[i].peak;
			if (cs[i].peak > peak_max)
				peak_max = cs[i].peak;
		}
	}
	{
		char cmdline[700];
		snprintf(cmdline, sizeof(cmdline), "rm -rf %s", base);
		if (system(cmdline) != 0)
			fprintf(stderr, "could not remove %s\n", base);
	}
	getrusage(RUSAGE_SELF, &ru);

	printf("%-34s %10s %10s %12s\n", "start-to-exit of /bin/true", "median ms", "p99 ms", "vs sandbox");
	printf("%-34s %10.3f %10.3f %11.2fx\n", "fork+exec (floor)", fe_med, pct(fe, runs, 0.99), sb_med / fe_med);
	printf("%-34s %10.3f %10.3f %11.2fx\n", "unshare -Urpfn (namespaces only)", un_med, pct(un, runs, 0.99),
	       sb_med / un_med);
	printf("%-34s %10.3f %10.3f %11s\n", "orchestrator sandbox (ns, 1 box)", sb_med, sb_p99, "1.00x");
	printf("%-34s %10.3f %10.3f %11.2fx\n", "orchestrator sandbox (new box)", cold_med,
	       pct(cold, ncold, 0.99), cold_med / sb_med);
	printf("target <= 3 ms with seccomp and cgroups: %s (%.2f ms); podman run ~116 ms (published "
	       "for this kind of machine): %.0fx faster\n",
	       sb_med <= 3.0 ? "met" : "NOT met", sb_med, 116.0 / sb_med);
	printf("%d concurrent sandboxes compiling and running a C program: %d ok, %.0f ms wall, "
	       "%.2f compiles/s; peak memory per sandbox max %.1f MiB, sum %.1f MiB; bench process "
	       "max RSS %.1f MiB\n",
	       nconc, ok, wall, nconc / (wall / 1000.0), (double)peak_max / 1048576.0,
	       (double)peak_sum / 1048576.0, (double)ru.ru_maxrss / 1024.0);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f)
			return fprintf(stderr, "%s: %s\n", json, strerror(errno)), 1;
		fprintf(f,
			"{\n  \"runs\": %d,\n  \"sandbox_median_ms\": %.4f,\n  \"sandbox_p99_ms\": %.4f,\n"
			"  \"sandbox_cold_median_ms\": %.4f,\n  \"fork_exec_median_ms\": %.4f,\n"
			"  \"unshare_median_ms\": %.4f,\n  \"concurrent\": %d,\n  \"concurrent_ok\": %d,\n"
			"  \"concurrent_wall_ms\": %.1f,\n  \"concurrent_compiles_per_s\": %.3f,\n"
			"  \"concurrent_peak_mem_max_bytes\": %lld,\n  \"concurrent_peak_mem_sum_bytes\": %lld,\n"
			"  \"bench_max_rss_bytes\": %lld\n}\n",
			runs, sb_med, sb_p99, cold_med, fe_med, un_med, nconc, ok, wall,
			nconc / (wall / 1000.0), (long long)peak_max, (long long)peak_sum,
			(long long)ru.ru_maxrss * 1024);
		fclose(f);
	}
	free(fe);
	free(un);
	free(sb);
	free(cold);
	free(cs);
	free(th);
	return ok == nconc ? 0 : 1;
}
