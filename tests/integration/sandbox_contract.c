/* The sandbox contract: every attack of issue 5 that concerns the sandbox,
 * run for real as root on one backend — contained, reported in the result,
 * and the process that owns the sandbox keeps working. test_sandbox.c runs
 * it on the ns backend, test_sandbox_docker.c on a real Docker engine (the
 * private dockerd of `make test`). Where a backend cannot keep a promise the
 * test says so on a "# <backend> cannot ...: why" line instead of checking
 * it. Limits are kept small so a bomb never hurts the shared machine. No
 * assertion depends on timing. Included by those two files, not built alone. */
#include "tests/support/support.h"

#include "core/err.h"
#include "core/util.h"
#include "spawner/sandbox.h"
#include "spawner/sbx_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_progs[PATH_MAX];
static int g_seq;
static sbx_backend g_backend;
static const char *g_image; /* docker: the image the commands run in */

static int is_docker(void)
{
	return g_backend == SBX_DOCKER;
}

/* A check this backend cannot make, with the reason, on its own line. */
static void cannot(const char *what, const char *why)
{
	printf("# %s cannot %s: %s\n", is_docker() ? "docker" : "ns", what, why);
}

/* A fresh workspace directory under ORCH_DATA_DIR. */
static void workspace(char *out, size_t cap)
{
	const char *d = getenv("ORCH_DATA_DIR");
	snprintf(out, cap, "%s/ws-%d-%d", d && *d ? d : "/tmp", (int)getpid(), g_seq++);
	assert_int_equal(mkdir(out, 0755), 0);
}

/* Options of a box of this run's backend. */
static sbx_opts opts(void)
{
	sbx_opts o = {.backend = g_backend, .image = is_docker() ? g_image : NULL};
	return o;
}

static sbx *box(const char *ws, int64_t mem, int64_t pids)
{
	static sbx_bind binds[1];
	sbx_opts o = opts();
	sbx *b = NULL;

	binds[0] = (sbx_bind){.host = g_progs, .inside = "/opt/progs"};
	o.workspace = ws;
	o.mem_bytes = mem ? mem : 64 << 20;
	o.pids = pids ? pids : 32;
	o.cpus = 0.5;
	o.binds = binds;
	o.nbinds = 1;
	if (sbx_new(&b, &o) < 0)
		fail_msg("sbx_new: %s", err_last());
	return b;
}

static const char *const probe_env[] = {"ASAN_OPTIONS=detect_leaks=0", NULL};

/* Runs `sh -c script` and fails the test when the sandbox itself fails. */
static void sh(sbx *b, const char *script, int64_t timeout_ms, sbx_result *r)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	sbx_cmd c = {.argv = argv, .env = probe_env, .timeout_ms = timeout_ms ? timeout_ms : 20000,
		     .output_cap = 64 << 10};
	if (sbx_run(b, &c, r) < 0)
		fail_msg("sbx_run(%s): %s", script, err_last());
}

/* The sandbox still works after an attack. */
static void still_works(sbx *b)
{
	sbx_result r;
	sh(b, "echo alive", 0, &r);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(buf_cstr(&r.out), "alive\n");
	sbx_result_free(&r);
}

static void test_basic_run(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	sh(b, "echo out; echo err >&2; id -u; id -g; hostname; pwd; exit 3", 0, &r);
	assert_int_equal(r.exit_code, 3);
	assert_int_equal(r.term_signal, 0);
	assert_false(r.timed_out);
	assert_string_equal(buf_cstr(&r.out), "out\n1000\n1000\nsandbox\n/workspace\n");
	assert_string_equal(buf_cstr(&r.err), "err\n");
	assert_string_equal(r.reason, "exited with status 3");
	assert_string_equal(r.degraded, "");
	if (is_docker())
		cannot("report peak memory or cpu time",
		       "the engine keeps no figure once the container is gone");
	else
		assert_true(r.mem_peak_bytes > 0);
	sbx_result_free(&r);

	/* the isolation the process actually has */
	sh(b, "grep -E '^(CapEff|CapBnd|CapPrm|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status", 0, &r);
	assert_string_equal(buf_cstr(&r.out),
			    "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
			    "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n"
			    "NoNewPrivs:\t1\nSeccomp:\t2\n");
	sbx_result_free(&r);
	assert_non_null(strstr(sbx_describe(b), is_docker() ? "seccomp deny-list"
							   : "user,pid,mount,net,ipc,uts"));
	sbx_free(b);
}

/* The first line of `path`, or "" when it cannot be read. */
static void read_line(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	out[0] = 0;
	if (f && fgets(out, (int)cap, f))
		out[strcspn(out, "\n")] = 0;
	if (f)
		fclose(f);
}

/* This process's v1 cgroup directory for `ctrl`, or "" without v1. */
static void own_v1_dir(const char *ctrl, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[1024];
	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b2 = a ? strchr(a + 1, ':') : NULL;
		if (!b2)
			continue;
		*b2 = 0;
		line[strcspn(line, "\n")] = 0;
		b2[1 + strcspn(b2 + 1, "\n")] = 0;
		if (strcmp(a + 1, ctrl) == 0)
			snprintf(out, cap, "/sys/fs/cgroup/%s%s", ctrl, strcmp(b2 + 1, "/") ? b2 + 1 : "");
	}
	if (f)
		fclose(f);
}

/* The value of `file` in the box cgroup of this process under `dir`. */
static void box_value(const char *dir, const char *file, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char prefix[64];
	out[0] = 0;
	snprintf(prefix, sizeof(prefix), "orch-sbx-%d-", (int)getpid());
	long best = -1;
	while (d && (e = readdir(d))) {
		char p[PATH_MAX * 2];
		long seq;
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		seq = strtol(e->d_name + strlen(prefix), NULL, 10);
		if (seq < best)
			continue; /* the newest box is the one under test */
		best = seq;
		snprintf(p, sizeof(p), "%s/%s/%s", dir, e->d_name, file);
		read_line(p, out, cap);
	}
	if (d)
		closedir(d);
}

static void test_limits_applied(void **state)
{
	sbx_opts o = opts();
	char dir[PATH_MAX], v[64];
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	o.mem_bytes = 48 << 20;
	o.pids = 20;
	o.cpus = 0.25;
	o.nofile = 100;
	assert_int_equal(sbx_new(&b, &o), 0);
	own_v1_dir("memory", dir, sizeof(dir));
	if (is_docker() && dir[0]) {
		/* the container's own cgroups, as the command sees them */
		sh(b, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
		      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us", 0, &r);
		assert_string_equal(buf_cstr(&r.out), "50331648\n20\n25000\n100000\n");
		sbx_result_free(&r);
	} else if (dir[0]) {
		/* the hybrid layout of the development machines: v1 */
		box_value(dir, "memory.limit_in_bytes", v, sizeof(v));
		assert_string_equal(v, "50331648");
		own_v1_dir("pids", dir, sizeof(dir));
		box_value(dir, "pids.max", v, sizeof(v));
		assert_string_equal(v, "20");
		own_v1_dir("cpu", dir, sizeof(dir));
		box_value(dir, "cpu.cfs_quota_us", v, sizeof(v));
		assert_string_equal(v, "25000");
		box_value(dir, "cpu.cfs_period_us", v, sizeof(v));
		assert_string_equal(v, "100000");
	}
	assert_non_null(strstr(sbx_describe(b), "memory 48 MiB, 20 pids, 0.25 cpus"));
	sh(b, "ulimit -n; ulimit -c", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "100\n0\n");
	sbx_result_free(&r);
	sbx_free(b);
	/* the groups are gone with the box */
	own_v1_dir("memory", dir, sizeof(dir));
	if (dir[0] && !is_docker()) {
		box_value(dir, "memory.limit_in_bytes", v, sizeof(v));
		assert_string_equal(v, "");
	}
}

static void test_env_only_granted(void **state)
{
	const char *argv[] = {"env", NULL};
	const char *env[] = {"FOO=bar", "PATH=/usr/bin:/bin", NULL};
	sbx_cmd c = {.argv = argv, .env = env};
	sbx_result r;
	sbx *b;
	(void)state;
	setenv("ORCH_TEST_SECRET", "s3cr3t-token-value", 1);
	b = box(NULL, 0, 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	if (is_docker()) {
		/* the engine adds HOSTNAME; the order is the engine's */
		assert_non_null(strstr(buf_cstr(&r.out), "HOME=/tmp\n"));
		assert_non_null(strstr(buf_cstr(&r.out), "LANG=C.UTF-8\n"));
		assert_non_null(strstr(buf_cstr(&r.out), "FOO=bar\n"));
		assert_non_null(strstr(buf_cstr(&r.out), "PATH=/usr/bin:/bin\n"));
		assert_non_null(strstr(buf_cstr(&r.out), "HOSTNAME=sandbox\n"));
		{
			int lines = 0;
			for (const char *q = buf_cstr(&r.out); *q; q++)
				lines += *q == '\n';
			assert_int_equal(lines, 5);
		}
		cannot("keep HOSTNAME out of the environment", "the engine always sets it (to \"sandbox\")");
	} else {
		assert_string_equal(buf_cstr(&r.out), "HOME=/tmp\nLANG=C.UTF-8\nFOO=bar\nPATH=/usr/bin:/bin\n");
	}
	sbx_result_free(&r);
	/* the owner's environment is nowhere: not in any process of the sandbox */
	sh(b, "cat /proc/1/environ; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c s3cr3t; "
	      "grep -rs s3cr3t /proc/1/ 2>/dev/null | head -1", 0, &r);
	assert_null(strstr(buf_cstr(&r.out), "s3cr3t-token"));
	if (is_docker())
		cannot("hide the init's environment",
		       "its init (pid 1) runs as the sandbox user; it holds only the granted variables");
	else
		assert_non_null(strstr(buf_cstr(&r.err), "Permission denied"));
	sbx_result_free(&r);
	unsetenv("ORCH_TEST_SECRET");
	sbx_free(b);
}

static void test_read_shadow_and_host_files(void **state)
{
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 0, 0);
	sh(b, is_docker() ? "cat /etc/shadow; cat /etc/gshadow; ls /root; ls /work; ls /run/orch-sbx; "
			  "ls /home; echo end"
			: "cat /etc/shadow; cat /etc/gshadow; ls /root; ls /work; ls /run/orch-sbx; "
			  "ls /sys/fs/cgroup; ls /home; echo end",
	   0, &r);
	if (is_docker())
		cannot("hide /sys", "the engine mounts it read-only, with the container's own cgroups");
	assert_string_equal(buf_cstr(&r.out), "end\n");
	/* ns shows the host's /etc without its secrets; docker the image's */
	if (!is_docker())
		assert_non_null(strstr(buf_cstr(&r.err), "/etc/shadow: Permission denied"));
	assert_non_null(strstr(buf_cstr(&r.err), "/root"));
	assert_non_null(strstr(buf_cstr(&r.err), "/work"));
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_write_outside_workspace(void **state)
{
	char ws[PATH_MAX], p[PATH_MAX + 16];
	struct stat st;
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	sh(b, "for f in /x /usr/x /etc/x /opt/progs/x /proc/x /dev/x /etc/passwd; do "
	      "  (echo pwned > $f) 2>/dev/null && echo WROTE $f; done; "
	      "echo ok > /tmp/t && echo ok > /dev/shm/t && echo ok > /workspace/t && echo done",
	   0, &r);
	assert_string_equal(buf_cstr(&r.out), "done\n");
	sbx_result_free(&r);
	snprintf(p, sizeof(p), "%s/t", ws);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(stat("/usr/x", &st), -1);
	assert_int_equal(stat("/x", &st), -1);
	/* /tmp is fresh for every command, /workspace persists */
	sh(b, "ls /tmp /dev/shm; cat /workspace/t", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "/dev/shm:\n\n/tmp:\nok\n");
	sbx_result_free(&r);
	sbx_free(b);
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
	char ws[PATH_MAX];
	live l = {0};
	sbx_cmd c = {.argv = live_argv, .timeout_ms = 30000, .on_output = on_live, .udata = &l};
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	l.ws = ws;
	b = box(ws, 0, 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_false(r.timed_out);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(buf_cstr(&r.out), "first\nsecond\n");
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_fork_bomb(void **state)
{
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 64 << 20, 24);
	sh(b, "bomb() { bomb | bomb & }; bomb; sleep 1; exit 7", 20000, &r);
	if (is_docker()) {
		cannot("say the process limit was reached",
		       "the engine does not report a failed fork; the limit holds (PidsLimit)");
	} else {
		assert_true(r.pids_limited);
		assert_non_null(strstr(r.reason, "process limit (24) reached"));
	}
	sbx_result_free(&r);
	still_works(b);
	sbx_free(b);
}

static void test_memory_bomb(void **state)
{
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 32 << 20, 0);
	sh(b, "exec /opt/progs/sbx_probe mem 200", 20000, &r);
	assert_true(r.oom_killed);
	assert_int_equal(r.term_signal, SIGKILL);
	assert_int_equal(r.exit_code, 137);
	assert_non_null(strstr(r.reason, "memory limit (32 MiB) reached"));
	assert_null(strstr(buf_cstr(&r.out), "allocated=200"));
	sbx_result_free(&r);
	still_works(b);
	sbx_free(b);
}

static void test_tmp_counts_against_memory(void **state)
{
	const char *argv[] = {"/bin/sh", "-c",
			      "dd if=/dev/zero of=/tmp/fill bs=1M count=24 2>/dev/null && echo filled && "
			      "exec /opt/progs/sbx_probe mem 16",
			      NULL};
	sbx_opts o = opts();
	sbx_bind bind = {.host = g_progs, .inside = "/opt/progs"};
	sbx_cmd c = {.argv = argv, .env = probe_env, .timeout_ms = 20000};
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	o.mem_bytes = 32 << 20;
	o.tmp_bytes = 30 << 20;
	o.pids = 16;
	o.binds = &bind;
	o.nbinds = 1;
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	/* 24 MiB of /tmp + 16 MiB of heap cannot fit in 32 MiB */
	assert_string_equal(buf_cstr(&r.out), "filled\n");
	assert_true(r.oom_killed);
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_disk_fill_quota(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	assert_int_equal(sbx_quota_mount(ws, 4 << 20, SBX_QUOTA_TMPFS), 0);
	/* a second quota, or a quota over a non-empty folder, is refused */
	assert_int_equal(sbx_quota_mount(ws, 4 << 20, SBX_QUOTA_TMPFS), ERR_CONFLICT);
	b = box(ws, 0, 0);
	sh(b, "dd if=/dev/zero of=/workspace/big bs=1M count=64; echo rc=$?", 0, &r);
	assert_true(r.disk_full);
	assert_non_null(strstr(buf_cstr(&r.err), "No space left on device"));
	assert_non_null(strstr(r.reason, "disk quota is full"));
	sbx_result_free(&r);
	/* freeing space makes it usable again */
	sh(b, "rm /workspace/big && echo ok > /workspace/small && cat /workspace/small", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "ok\n");
	assert_false(r.disk_full);
	sbx_result_free(&r);
	sbx_free(b);
	assert_int_equal(sbx_quota_unmount(ws), 0);
}

static void test_loop_quota(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	int rc;
	(void)state;
	workspace(ws, sizeof(ws));
	rc = sbx_quota_mount(ws, 16 << 20, SBX_QUOTA_LOOP);
	if (access("/dev/loop-control", F_OK) != 0) {
		/* a host without loop devices: refused, saying what to use */
		assert_int_equal(rc, ERR_SANDBOX);
		assert_non_null(strstr(err_last(), "tmpfs quota"));
		return;
	}
	assert_int_equal(rc, 0);
	b = box(ws, 0, 0);
	sh(b, "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1 | tail -1; ls /workspace", 0, &r);
	assert_true(r.disk_full);
	sbx_result_free(&r);
	sbx_free(b);
	assert_int_equal(sbx_quota_unmount(ws), 0);
}

static void test_file_size_limit(void **state)
{
	sbx_opts o = opts();
	const char *argv[] = {"dd", "if=/dev/zero", "of=/workspace/f", "bs=1M", "count=4", NULL};
	sbx_cmd c = {.argv = argv};
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	o.fsize_bytes = 1 << 20;
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_true(r.fsize_limited);
	assert_int_equal(r.term_signal, SIGXFSZ);
	assert_non_null(strstr(r.reason, "size limit"));
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_endless_output(void **state)
{
	const char *argv[] = {"yes", "0123456789", NULL};
	sbx_cmd c = {.argv = argv, .timeout_ms = 300, .output_cap = 4096};
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 0, 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_true(r.timed_out);
	assert_int_equal(r.exit_code, SBX_EXIT_TIMEOUT);
	assert_true(r.out_truncated);
	assert_true(r.out_bytes > 4096);
	/* head, a marker, tail: bounded by the cap */
	assert_true(r.out.len < 4096 + 100);
	assert_memory_equal(r.out.data, "0123456789\n0123456789\n", 22);
	assert_non_null(strstr(buf_cstr(&r.out), "bytes omitted"));
	assert_non_null(strstr(r.reason, "output over 4096 bytes was cut"));
	sbx_result_free(&r);
	still_works(b);
	sbx_free(b);
}

static void test_sleep_forever_kills_tree(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	/* a daemonised grandchild too: the whole tree goes */
	sh(b, is_docker() ? "(setsid sleep 200000 &) ; (trap '' TERM HUP; sleep 200001) & sleep 200002"
			  : "(setsid sleep 100000 &) ; (trap '' TERM HUP; sleep 100001) & sleep 100002",
	   300, &r);
	assert_true(r.timed_out);
	assert_int_equal(r.exit_code, 124);
	assert_non_null(strstr(r.reason, "timed out after 300 ms"));
	sbx_result_free(&r);
	/* nothing of it survives anywhere on the host */
	{
		DIR *d = opendir("/proc");
		struct dirent *e;
		while ((e = readdir(d))) {
			char p[300], cmd[256] = "";
			int fd;
			ssize_t n;
			snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
			fd = open(p, O_RDONLY);
			if (fd < 0)
				continue;
			n = read(fd, cmd, sizeof(cmd) - 1);
			close(fd);
			if (n > 0) {
				cmd[n] = 0;
				for (ssize_t i = 0; i < n; i++)
					if (!cmd[i])
						cmd[i] = ' ';
				if (strstr(cmd, is_docker() ? "sleep 20000" : "sleep 10000"))
					fail_msg("process %s survived: %s", e->d_name, cmd);
			}
		}
		closedir(d);
	}
	still_works(b);
	sbx_free(b);
}

static void test_cancel_and_kill(void **state)
{
	atomic_int cancel = 1;
	const char *argv[] = {"sleep", "1000", NULL};
	sbx_cmd c = {.argv = argv, .cancel = &cancel};
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 0, 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_true(r.cancelled);
	assert_int_equal(r.exit_code, 130);
	sbx_result_free(&r);
	c.cancel = NULL;
	assert_int_equal(sbx_start(b, &c), 0);
	assert_int_equal(sbx_start(b, &c), ERR_BUSY);
	assert_int_equal(sbx_wait(b, 50), ERR_BUSY);
	assert_int_equal(sbx_collect(b, &r), ERR_BUSY);
	assert_int_equal(sbx_kill(b), 0);
	assert_int_equal(sbx_wait(b, -1), 0);
	assert_int_equal(sbx_collect(b, &r), 0);
	assert_true(r.cancelled);
	sbx_result_free(&r);
	still_works(b);
	sbx_free(b);
}

static void test_network_loopback_only(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	char script[512];
	sbx_result r;
	sbx *b;
	int ls, one = 1;
	(void)state;
	/* a service on the host's 127.0.0.1 */
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	getsockname(ls, (struct sockaddr *)&a, &al);
	b = box(NULL, 0, 0);
	snprintf(script, sizeof(script),
		 "/opt/progs/sbx_probe connect 127.0.0.1 %d; /opt/progs/sbx_probe udp 192.0.2.1 53; "
		 "cat /proc/net/route | wc -l; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
		 ntohs(a.sin_port));
	sh(b, script, 0, &r);
	assert_string_equal(buf_cstr(&r.out), "connect=ECONNREFUSED\nudp=ENETUNREACH\n1\nlo\n");
	sbx_result_free(&r);
	/* nothing reached the host's listener */
	assert_int_equal(accept(ls, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	close(ls);
	/* loopback inside works */
	sh(b, "/opt/progs/sbx_probe loopback", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "loopback=ok\n");
	sbx_result_free(&r);
	sbx_free(b);
}

static void *gateway_main(void *arg)
{
	int ls = *(int *)arg, c = accept(ls, NULL, NULL);
	if (c >= 0) {
		if (write(c, "gateway-ok\n", 11) != 11) {
			/* the test sees the missing line */
		}
		close(c);
	}
	return NULL;
}

/* With no network, a service (the LLM gateway) is granted as a unix socket
 * bound into the sandbox; nothing else of the host's is reachable. */
static void test_gateway_socket_grant(void **state)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char ws[PATH_MAX];
	sbx_bind binds[2];
	sbx_opts o = opts();
	sbx_result r;
	pthread_t t;
	sbx *b = NULL;
	int ls;
	(void)state;
	workspace(ws, sizeof(ws));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/gw.sock", ws);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(chmod(a.sun_path, 0666), 0);
	assert_int_equal(listen(ls, 1), 0);
	pthread_create(&t, NULL, gateway_main, &ls);
	binds[0] = (sbx_bind){.host = g_progs, .inside = "/opt/progs"};
	binds[1] = (sbx_bind){.host = a.sun_path, .inside = "/run/gateway.sock", .writable = 1};
	o.binds = binds;
	o.nbinds = 2;
	assert_int_equal(sbx_new(&b, &o), 0);
	sh(b, "/opt/progs/sbx_probe unix /run/gateway.sock; /opt/progs/sbx_probe unix /run/other.sock", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "unix=gateway-ok\nunix=ENOENT\n");
	sbx_result_free(&r);
	pthread_join(t, NULL);
	close(ls);
	sbx_free(b);
}

static void test_seccomp_denies(void **state)
{
	static const char *const expect[] = {
		"unshare_user=EPERM", "unshare_mount=EPERM", "unshare_net=EPERM", "clone_newuser=EPERM",
		"clone_newpid=EPERM", "clone3=ENOSYS", "mount=EPERM", "umount=EPERM", "setns=EPERM",
		"chroot=EPERM", "pivot_root=EPERM", "io_uring_setup=EPERM", "bpf=EPERM",
		"perf_event_open=EPERM", "keyctl=EPERM", "add_key=EPERM", "userfaultfd=EPERM",
		"ptrace=EPERM", "ptrace_attach=EPERM", "tiocsti=EPERM", "tiocsti_high_bits=EPERM",
		"tioclinux=EPERM", "vsock=EAFNOSUPPORT", "open_by_handle_at=EPERM", "kexec_load=EPERM",
		"init_module=EPERM", "sethostname=EPERM", "write_proc_sys=denied",
		"write_sysrq=denied", "read_kmsg=denied", "write_cgroup=denied", "fork=ok", NULL};
	buf want;
	sbx_result r;
	sbx *b;
	(void)state;
	buf_init(&want, 0);
	for (int i = 0; expect[i]; i++)
		buf_printf(&want, "%s\n", expect[i]);
	b = box(NULL, 0, 0);
	sh(b, "/opt/progs/sbx_probe syscalls", 0, &r);
	assert_string_equal(buf_cstr(&r.out), buf_cstr(&want));
	sbx_result_free(&r);
#if defined(__x86_64__)
	/* a system call of another ABI kills the process (SIGSYS) */
	sh(b, "/opt/progs/sbx_probe x32; echo status=$?", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "status=159\n");
	sbx_result_free(&r);
#endif
	buf_free(&want);
	still_works(b);
	sbx_free(b);
}

static void test_setuid_binaries(void **state)
{
	char ws[PATH_MAX], probe[PATH_MAX], dst[PATH_MAX + 16];
	char cmd[2 * PATH_MAX + 64];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	/* a setuid-root binary planted in the workspace from outside */
	snprintf(probe, sizeof(probe), "%s/sbx_probe", g_progs);
	snprintf(dst, sizeof(dst), "%s/suid", ws);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", probe, dst);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(chown(dst, 0, 0), 0);
	assert_int_equal(chmod(dst, 04755), 0);
	sh(b, "/workspace/suid euid; chmod u+s /workspace/suid 2>&1 | head -c 0; "
	      "/usr/bin/mount -t tmpfs none /tmp 2>/dev/null || echo mount-refused; "
	      "/usr/bin/su -c id root </dev/null >/dev/null 2>&1 || echo su-refused; "
	      "/usr/bin/newgrp root </dev/null >/dev/null 2>&1 || echo newgrp-refused",
	   0, &r);
	assert_string_equal(buf_cstr(&r.out), "euid=1000\nmount-refused\nsu-refused\nnewgrp-refused\n");
	sbx_result_free(&r);
	sbx_free(b);
}

static void test_symlinks_out_of_workspace(void **state)
{
	char ws[PATH_MAX], p[PATH_MAX + 16];
	struct stat before, after;
	buf out;
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	assert_int_equal(stat("/etc/shadow", &before), 0);
	b = box(ws, 0, 0);
	sh(b, "ln -s /etc/shadow /workspace/shadow; ln -s ../../../../../../etc /workspace/up; "
	      "ln -s /proc/1/root /workspace/root1; echo data > /workspace/real; mkfifo /workspace/fifo; "
	      "cat /workspace/shadow /workspace/up/shadow 2>&1 | grep -c denied; "
	      "ls /workspace/root1/ 2>&1 | grep -c denied",
	   0, &r);
	if (is_docker()) {
		/* the links resolve in the image's file system (no shadow file) and
		 * /proc/1/root is the container's own root: nothing of the host's */
		assert_string_equal(buf_cstr(&r.out), "0\n0\n");
		sbx_result_free(&r);
		sh(b, "cat /workspace/shadow /workspace/root1/etc/hostname", 0, &r);
		assert_string_equal(buf_cstr(&r.out), "sandbox\n");
		cannot("deny /proc/1/root", "the init runs as the sandbox user; it shows the container's own root");
	} else {
		assert_string_equal(buf_cstr(&r.out), "2\n1\n");
	}
	sbx_result_free(&r);
	sbx_free(b);
	/* the host side: re-preparing the box (which gives the workspace to the
	 * sandbox user) does not follow the links out */
	b = box(ws, 0, 0);
	assert_int_equal(stat("/etc/shadow", &after), 0);
	assert_int_equal(after.st_uid, before.st_uid);
	assert_int_equal(after.st_gid, before.st_gid);
	snprintf(p, sizeof(p), "%s/shadow", ws);
	assert_int_equal(lstat(p, &after), 0);
	assert_true(S_ISLNK(after.st_mode));
	/* host code reading what the sandbox wrote never follows a link */
	assert_int_equal(sbx_workspace_read(&out, ws, "real", 1024), 0);
	assert_string_equal(buf_cstr(&out), "data\n");
	buf_free(&out);
	assert_int_equal(sbx_workspace_read(&out, ws, "shadow", 1024), ERR_DENIED);
	assert_int_equal(sbx_workspace_read(&out, ws, "up/shadow", 1024), ERR_DENIED);
	assert_int_equal(sbx_workspace_read(&out, ws, "../../etc/shadow", 1024), ERR_DENIED);
	assert_int_equal(sbx_workspace_read(&out, ws, "/etc/shadow", 1024), ERR_INVALID);
	assert_int_equal(sbx_workspace_read(&out, ws, "real", 2), ERR_TOOBIG);
	/* a FIFO would block a plain open: refused at once */
	assert_int_equal(sbx_workspace_read(&out, ws, "fifo", 1024), ERR_DENIED);
	sbx_free(b);
}

static void test_signal_the_owner(void **state)
{
	char script[256];
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 0, 0);
	snprintf(script, sizeof(script),
		 "/opt/progs/sbx_probe kill %d; /opt/progs/sbx_probe kill %d; /opt/progs/sbx_probe kill 1; "
		 "sleep 100000 & kill -9 -1; wait $!; echo after-$?",
		 (int)getpid(), (int)getppid());
	sh(b, script, 0, &r);
	/* the owner is invisible; pid 1 (the sandbox's init) cannot be killed
	 * from inside; kill -1 kills only the sandbox's own processes */
	if (is_docker()) {
		/* the init runs as the sandbox user: the kernel ignores the signal */
		assert_string_equal(buf_cstr(&r.out), "kill=ESRCH\nkill=ESRCH\nkill=ok\nafter-137\n");
		cannot("refuse a signal to its init with EPERM",
		       "the init runs as the sandbox user; the kernel ignores the signal instead");
	} else {
		assert_string_equal(buf_cstr(&r.out), "kill=ESRCH\nkill=ESRCH\nkill=EPERM\nafter-137\n");
	}
	sbx_result_free(&r);
	sh(b, "set -- /proc/[0-9]*; echo $#", 0, &r);
	/* the init and the shell: nothing else is visible */
	assert_string_equal(buf_cstr(&r.out), "2\n");
	sbx_result_free(&r);
	still_works(b);
	sbx_free(b);
}

static void test_many_commands_one_workspace(void **state)
{
	char ws[PATH_MAX];
	sbx_result r;
	sbx *b;
	(void)state;
	workspace(ws, sizeof(ws));
	b = box(ws, 0, 0);
	for (int i = 0; i < 20; i++) {
		sh(b, "echo x >> /workspace/log; test ! -e /tmp/mark && touch /tmp/mark", 0, &r);
		assert_int_equal(r.exit_code, 0);
		sbx_result_free(&r);
	}
	sh(b, "wc -l < /workspace/log", 0, &r);
	assert_string_equal(buf_cstr(&r.out), "20\n");
	sbx_result_free(&r);
	/* a later box over the same workspace keeps its owner */
	{
		sbx *again = box(ws, 0, 0);
		assert_int_equal(sbx_uid(again), sbx_uid(b));
		sbx_free(again);
	}
	/* host code writes into the workspace (as git would); after sbx_reown
	 * the sandbox may change it */
	{
		char p[PATH_MAX + 16];
		struct stat st;
		FILE *f;
		snprintf(p, sizeof(p), "%s/hostfile", ws);
		f = fopen(p, "w");
		fputs("host\n", f);
		fclose(f);
		sh(b, "echo more >> /workspace/hostfile", 0, &r);
		assert_int_not_equal(r.exit_code, 0);
		sbx_result_free(&r);
		assert_int_equal(sbx_reown(b), 0);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_uid, sbx_uid(b));
		sh(b, "echo more >> /workspace/hostfile && cat /workspace/hostfile", 0, &r);
		assert_string_equal(buf_cstr(&r.out), "host\nmore\n");
		sbx_result_free(&r);
	}
	sbx_free(b);
}

static void test_stdin_cwd_and_exec_errors(void **state)
{
	const char *cat[] = {"cat", NULL};
	const char *missing[] = {"no-such-command", NULL};
	const char *notexec[] = {"/etc/hostname", NULL};
	const char *pwd[] = {"pwd", NULL};
	sbx_cmd c = {.argv = cat, .stdin_data = "hello\nworld\n", .stdin_len = 12};
	sbx_result r;
	sbx *b;
	(void)state;
	b = box(NULL, 0, 0);
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_string_equal(buf_cstr(&r.out), "hello\nworld\n");
	sbx_result_free(&r);
	/* a command that never reads its input: no SIGPIPE for the owner */
	{
		static char big[1 << 20];
		const char *t[] = {"true", NULL};
		memset(big, 'x', sizeof(big));
		c = (sbx_cmd){.argv = t, .stdin_data = big, .stdin_len = sizeof(big)};
		assert_int_equal(sbx_run(b, &c, &r), 0);
		assert_int_equal(r.exit_code, 0);
		sbx_result_free(&r);
	}
	c = (sbx_cmd){.argv = missing};
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 127);
	assert_non_null(strstr(r.reason, "cannot run no-such-command: No such file or directory"));
	assert_non_null(strstr(buf_cstr(&r.err), is_docker() ? "exec no-such-command failed"
							      : "cannot run 'no-such-command'"));
	sbx_result_free(&r);
	c = (sbx_cmd){.argv = notexec};
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 126);
	sbx_result_free(&r);
	c = (sbx_cmd){.argv = pwd, .cwd = "/tmp"};
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_string_equal(buf_cstr(&r.out), "/tmp\n");
	sbx_result_free(&r);
	c = (sbx_cmd){.argv = pwd, .cwd = "/nowhere"};
	if (is_docker()) {
		assert_int_equal(sbx_run(b, &c, &r), 0);
		assert_string_equal(buf_cstr(&r.out), "/nowhere\n");
		sbx_result_free(&r);
		cannot("refuse a missing working directory",
		       "the engine creates it (in the container's own layer, gone with it)");
	} else {
		assert_int_equal(sbx_run(b, &c, &r), ERR_SANDBOX);
		assert_non_null(strstr(err_last(), "/nowhere"));
	}
	still_works(b);
	sbx_free(b);
}

static void test_bad_input(void **state)
{
	const char *argv[] = {"true", NULL};
	const char *badenv[] = {"NOEQUALS", NULL};
	const char *empty[] = {NULL};
	sbx_bind bad_bind = {.host = "/usr", .inside = "/tmp/x"};
	sbx_bind rel_bind = {.host = "/usr", .inside = "opt/../x"};
	sbx_opts o = opts();
	sbx_cmd c = {.argv = argv, .env = badenv};
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	o.workspace = "/nonexistent/ws";
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "/nonexistent/ws"));
	o.workspace = "/etc/hostname";
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "not a directory"));
	o.workspace = NULL;
	o.mem_bytes = 1000;
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	o.mem_bytes = 0;
	o.net = "bridge";
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "docker"));
	/* the host's network, another container's, one that is not internal */
	o.net = "host";
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	o.net = "container:abc";
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	o.net = NULL;
	o.binds = &bad_bind;
	o.nbinds = 1;
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "/tmp"));
	o.binds = &rel_bind;
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	o.binds = NULL;
	o.nbinds = 0;
	o.uid_base = 1000;
	assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "uid base"));
	o.uid_base = 0;
	assert_int_equal(sbx_new(&b, &o), 0);
	assert_int_equal(sbx_start(b, &c), ERR_INVALID);
	assert_non_null(strstr(err_last(), "NOEQUALS"));
	c.env = NULL;
	c.argv = empty;
	assert_int_equal(sbx_run(b, &c, &r), ERR_INVALID);
	c.argv = argv;
	c.cwd = "relative";
	assert_int_equal(sbx_run(b, &c, &r), ERR_INVALID);
	assert_int_equal(sbx_wait(b, 0), ERR_INVALID);
	assert_int_equal(sbx_collect(b, &r), ERR_INVALID);
	sbx_result_free(&r);
	sbx_free(b);
	sbx_free(NULL);
}

static void *thread_run(void *arg)
{
	int *ok = arg;
	sbx *b = box(NULL, 0, 0);
	for (int i = 0; i < 5; i++) {
		sbx_result r;
		sh(b, "echo $((6*7))", 0, &r);
		if (strcmp(buf_cstr(&r.out), "42\n") == 0)
			(*ok)++;
		sbx_result_free(&r);
	}
	sbx_free(b);
	return NULL;
}

static void test_concurrent_boxes(void **state)
{
	pthread_t t[4];
	int ok[4] = {0};
	(void)state;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_run, &ok[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ok[i], 5);
}

static int no_marker(void *u)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int found = 0;
	(void)u;
	while ((e = readdir(d))) {
		char p[300], cmd[128] = "";
		int fd;
		ssize_t n;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
		fd = open(p, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n > 0) {
			cmd[n] = 0;
			size_t k = strlen(cmd);
			if (k >= 5 && strcmp(cmd + k - 5, "sleep") == 0 && (ssize_t)k + 1 < n &&
			    strcmp(cmd + k + 1, is_docker() ? "987655" : "987654") == 0)
				found = 1;
		}
	}
	closedir(d);
	return !found;
}

static int has_marker(void *u)
{
	return !no_marker(u);
}

static pid_t owner_pid;

/* Cgroup folders named after owner `pid` (orch-sbx-<pid>-<n>), anywhere. */
static int groups_of(pid_t pid)
{
	char cmd[256], out[4096] = "";
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd),
		 "find /sys/fs/cgroup -maxdepth 8 -type d -name 'orch-sbx-%d-*' 2>/dev/null",
		 (int)pid);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	n = fread(out, 1, sizeof(out) - 1, f);
	pclose(f);
	out[n] = '\0';
	return n > 0;
}

/* True once owner_pid is a zombie (dead, not reaped). */
static int is_zombie(void *arg)
{
	char path[64], text[512];
	const char *p;
	FILE *f;
	size_t n;

	(void)arg;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)owner_pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	p = strrchr(text, ')');
	return p && p[1] == ' ' && p[2] == 'Z';
}

static void test_dies_with_owner_and_sweep(void **state)
{
	int p[2], st, removed = -1;
	pid_t pid;
	char c;
	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		const char *argv[] = {"sleep", is_docker() ? "987655" : "987654", NULL};
		/* never hold the test runner's output pipe */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		sbx_cmd cmd = {.argv = argv, .timeout_ms = -1};
		sbx *b = NULL;
		sbx_opts o = opts();
		if (sbx_new(&b, &o) < 0 || sbx_start(b, &cmd) < 0)
			_exit(1);
		if (write(p[1], "s", 1) != 1)
			_exit(1);
		sbx_wait(b, -1);
		_exit(0);
	}
	close(p[1]);
	st = (int)read(p[0], &c, 1);
	close(p[0]);
	/* the init may take a moment to start the command */
	if (st != 1 || !ts_wait_for(has_marker, NULL, 10000)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("the owner could not start its sandbox");
	}
	if (!is_docker())
		assert_true(groups_of(pid) > 0);
	/* the owner dies hard: no destructor runs */
	kill(pid, SIGKILL);
	if (is_docker()) {
		waitpid(pid, &st, 0);
		/* the container outlives its owner until a sweep finds it */
		cannot("end a command with its owner",
		       "the engine runs the container; sbx_sweep_docker removes it once the owner is gone");
		assert_false(no_marker(NULL));
		assert_int_equal(sbx_sweep_docker(NULL, &removed), 0);
		assert_int_equal(removed, 1);
		assert_true(ts_wait_for(no_marker, NULL, 20000));
		assert_int_equal(sbx_sweep_docker(NULL, &removed), 0);
		assert_int_equal(removed, 0);
		return;
	}
	/* nobody has reaped the owner yet (a zombie), which must not pass for
	 * alive */
	owner_pid = pid;
	assert_true(ts_wait_for(is_zombie, NULL, 20000));
	assert_true(ts_wait_for(no_marker, NULL, 20000));
	/* its cgroups are left; a sweep removes them at once (this one, or that
	 * of a spawner of another test running beside it) */
	assert_int_equal(sbx_sweep(&removed), 0);
	if (groups_of(pid) > 0)
		fail_msg("the cgroups of a killed owner that is not reaped yet were kept");
	waitpid(pid, &st, 0);
}

static void test_rootfs_folder(void **state)
{
	char root[PATH_MAX], cmd[PATH_MAX * 2];
	const char *argv[] = {"/bin/busybox-like", NULL};
	const char *sh_argv[] = {"/usr/bin/sh", "-c", "ls /; cat /etc/marker; ls /usr/bin | wc -l", NULL};
	sbx_opts o = opts();
	sbx_cmd c = {.argv = sh_argv};
	sbx_result r;
	sbx *b = NULL;
	(void)state;
	(void)argv;
	if (is_docker()) {
		/* the root is the image's */
		o.rootfs = "/";
		assert_int_equal(sbx_new(&b, &o), ERR_INVALID);
		assert_non_null(strstr(err_last(), "image"));
		return;
	}
	/* a tiny root file system: /usr bound from the host, its own /etc */
	workspace(root, sizeof(root));
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/etc %s/usr && ln -s usr/bin %s/bin && ln -s usr/lib %s/lib && "
		 "ln -s usr/lib64 %s/lib64 && echo from-rootfs > %s/etc/marker",
		 root, root, root, root, root, root);
	assert_int_equal(system(cmd), 0);
	{
		sbx_bind usr = {.host = "/usr", .inside = "/usr"};
		o.rootfs = root;
		o.binds = &usr;
		o.nbinds = 1;
		assert_int_equal(sbx_new(&b, &o), 0);
	}
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(buf_cstr(&r.out), "from-rootfs\n"));
	assert_non_null(strstr(buf_cstr(&r.out), "workspace\n"));
	sbx_result_free(&r);
	/* read-only */
	c.argv = (const char *const[]){"/usr/bin/sh", "-c", "echo x > /etc/marker", NULL};
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 2);
	assert_non_null(strstr(buf_cstr(&r.err), "Read-only"));
	sbx_result_free(&r);
	sbx_free(b);
}

/* Runs a shell command line, returns its exit status, its output in out. */
static int shell(const char *cmd, char *out, size_t cap)
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

__attribute__((unused)) static void test_cli(void **state)
{
	char cmd[PATH_MAX * 2], out[4096];
	(void)state;
	snprintf(cmd, sizeof(cmd),
		 "%s sandbox run --mem 64M --pids 32 --cpus 1 --timeout 30s --net none --env A=b -- "
		 "sh -c 'echo out $A; echo err >&2; exit 3' 2>&1",
		 ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 3);
	assert_string_equal(out, "out b\nerr\n");

	snprintf(cmd, sizeof(cmd), "%s sandbox run --timeout 200ms -- sleep 100 2>&1", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 124);
	assert_non_null(strstr(out, "timed out after 200 ms"));

	snprintf(cmd, sizeof(cmd), "%s sandbox run --mem lots -- true 2>&1", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "--mem wants a size"));

	snprintf(cmd, sizeof(cmd), "%s sandbox run --workspace /nonexistent -- true 2>&1", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "create it first"));

	/* a host without the controllers (forced here by ignoring v1): fail
	 * closed, or run degraded when asked, and say so */
	snprintf(cmd, sizeof(cmd), "ORCH_SANDBOX_CGROUP=v2 %s sandbox run -- echo ran 2>&1", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 125);
	assert_non_null(strstr(out, "no memory cgroup controller"));
	assert_null(strstr(out, "ran"));
	snprintf(cmd, sizeof(cmd), "ORCH_SANDBOX_CGROUP=v2 %s sandbox run --allow-degraded -- echo ran 2>&1",
		 ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ran\n"));
	assert_non_null(strstr(out, "NOT enforced on this host: no memory limit"));

	snprintf(cmd, sizeof(cmd), "%s sandbox run -- 2>&1", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "no command given"));

	snprintf(cmd, sizeof(cmd), "%s sandbox sweep", ts_bin());
	assert_int_equal(shell(cmd, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "stale sandbox cgroups"));
}

__attribute__((unused)) static void test_capture_head_and_tail(void **state)
{
	sbx_capture c;
	buf out;
	int trunc;
	(void)state;
	/* fits: everything, in order, whatever the pieces */
	assert_int_equal(sbx_capture_init(&c, 10), 0);
	sbx_capture_add(&c, "0123", 4);
	sbx_capture_add(&c, "456789", 6);
	buf_init(&out, 0);
	assert_int_equal(sbx_capture_finish(&c, &out, &trunc), 0);
	assert_false(trunc);
	assert_string_equal(buf_cstr(&out), "0123456789");
	buf_free(&out);
	sbx_capture_free(&c);
	/* too long: the first half and the last half, the middle counted */
	assert_int_equal(sbx_capture_init(&c, 10), 0);
	for (const char *p = "0123456789abcdefghijklmnopqrstuvwxyz"; *p; p += 3)
		sbx_capture_add(&c, p, 3);
	sbx_capture_add(&c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26);
	buf_init(&out, 0);
	assert_int_equal(sbx_capture_finish(&c, &out, &trunc), 0);
	assert_true(trunc);
	assert_int_equal(c.total, 62);
	assert_string_equal(buf_cstr(&out), "01234\n[... 52 bytes omitted ...]\nVWXYZ");
	buf_free(&out);
	sbx_capture_free(&c);
}

/* Runs the contract on `backend` (docker: in `image`). The cases that
 * concern one backend's own parts (its command line, the capture) are the
 * caller's `extra` cases, run after. */
static int contract_main(sbx_backend backend, const char *image, const struct CMUnitTest *extra,
			 size_t nextra)
{
	const struct CMUnitTest contract[] = {
		cmocka_unit_test(test_basic_run),
		cmocka_unit_test(test_limits_applied),
		cmocka_unit_test(test_env_only_granted),
		cmocka_unit_test(test_read_shadow_and_host_files),
		cmocka_unit_test(test_write_outside_workspace),
		cmocka_unit_test(test_live_output),
		cmocka_unit_test(test_fork_bomb),
		cmocka_unit_test(test_memory_bomb),
		cmocka_unit_test(test_tmp_counts_against_memory),
		cmocka_unit_test(test_disk_fill_quota),
		cmocka_unit_test(test_loop_quota),
		cmocka_unit_test(test_file_size_limit),
		cmocka_unit_test(test_endless_output),
		cmocka_unit_test(test_sleep_forever_kills_tree),
		cmocka_unit_test(test_cancel_and_kill),
		cmocka_unit_test(test_network_loopback_only),
		cmocka_unit_test(test_gateway_socket_grant),
		cmocka_unit_test(test_seccomp_denies),
		cmocka_unit_test(test_setuid_binaries),
		cmocka_unit_test(test_symlinks_out_of_workspace),
		cmocka_unit_test(test_signal_the_owner),
		cmocka_unit_test(test_many_commands_one_workspace),
		cmocka_unit_test(test_stdin_cwd_and_exec_errors),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_concurrent_boxes),
		cmocka_unit_test(test_dies_with_owner_and_sweep),
		cmocka_unit_test(test_rootfs_folder),
	};
	size_t n = sizeof(contract) / sizeof(contract[0]);
	struct CMUnitTest *all = calloc(n + nextra, sizeof(*all));
	char real[PATH_MAX];
	int rc;

	g_backend = backend;
	g_image = image;
	ts_prog("sbx_probe", g_progs, sizeof(g_progs));
	if (!realpath(g_progs, real) || !all) {
		fprintf(stderr, "build the test programs first (make test-build)\n");
		free(all);
		return 1;
	}
	*strrchr(real, '/') = 0;
	snprintf(g_progs, sizeof(g_progs), "%s", real);
	memcpy(all, contract, sizeof(contract));
	if (nextra)
		memcpy(all + n, extra, nextra * sizeof(*extra));
	rc = _cmocka_run_group_tests(is_docker() ? "sandbox contract (docker)" : "sandbox contract (ns)",
				     all, n + nextra, NULL, NULL);
	free(all);
	return rc;
}
