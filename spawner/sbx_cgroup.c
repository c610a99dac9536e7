/* sbx_cgroup — memory, process and CPU limits for sandbox boxes through
 * cgroups v1 or v2, whichever the host has for each controller.
 *
 * The layout is read once from /proc/self/mountinfo and /proc/self/cgroup.
 * A hybrid host (v1 memory, pids and cpu hierarchies plus a cgroup2 mount
 * without those controllers, as on the development machines) gets v1 groups
 * for the limits and a v2 group for the tree kill (cgroup.kill). A pure v2
 * host gets one v2 group with memory, pids and cpu enabled in the parent's
 * subtree_control; when the parent holds processes (v2's no-internal-process
 * rule), the process moves itself into a leaf "orch-supervisor" first, as
 * container runtimes do. Each box's groups are named
 * orch-sbx-<owner pid>-<n> below the process's own cgroup, so sbx_sweep can
 * find the groups of an owner that died. ORCH_SANDBOX_CGROUP=v2 makes the
 * layer ignore v1 hierarchies. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { C_MEM, C_PIDS, C_CPU, C_N };
static const char *const ctrl_name[C_N] = {"memory", "pids", "cpu"};

typedef struct layout {
	char v1[C_N][PATH_MAX]; /* the process's own v1 group dir per controller, "" if none */
	char v2[PATH_MAX];      /* the process's own v2 group dir, "" if no cgroup2 */
	int v2_ctrl[C_N];       /* controller available in v2 at our group */
} layout;

static layout g_lay;
static pthread_once_t g_lay_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_v2_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint g_seq;

struct sbx_cg {
	char dir[C_N][PATH_MAX]; /* our v1 groups, "" if none */
	char v2dir[PATH_MAX];    /* our v2 group, "" if none */
	int v2_used[C_N];        /* controller enforced through v2 */
	int join[C_N + 2];       /* cgroup.procs fds, -1 terminated */
	int64_t oom_base, pids_base;
	char desc[128];
};

/* ---- small file helpers ---- */

/* A decimal number at the start of `s` (trailing text allowed: "12\n"). */
static int num_prefix(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || errno)
		return -1;
	*out = v;
	return 0;
}

static int write_file(const char *dir, const char *file, const char *val)
{
	char p[PATH_MAX];
	int fd, rc = 0;
	size_t n = strlen(val);

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, n) != (ssize_t)n)
		rc = -errno;
	close(fd);
	return rc;
}

static int read_file(const char *dir, const char *file, char *out, size_t cap)
{
	char p[PATH_MAX];
	int fd;
	ssize_t n;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	out[n] = 0;
	return 0;
}

/* The value after "key " on its own line of a flat-keyed file, or -1. */
static int64_t read_key(const char *dir, const char *file, const char *key)
{
	char text[4096];
	size_t kl = strlen(key);

	if (!dir[0] || read_file(dir, file, text, sizeof(text)) < 0)
		return -1;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			int64_t v;
			if (num_prefix(line + kl + 1, &v) == 0)
				return v;
			return -1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

static int64_t read_num(const char *dir, const char *file)
{
	char text[64];
	int64_t v;

	if (!dir[0] || read_file(dir, file, text, sizeof(text)) < 0)
		return -1;
	return num_prefix(text, &v) == 0 ? v : -1;
}

/* ---- layout ---- */

static int has_word(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, sep);
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && strncmp(p, word, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static void join_path(char *out, size_t cap, const char *mnt, const char *root, const char *own)
{
	size_t rl = strlen(root);

	/* own is relative to the hierarchy's root; the mount shows `root` */
	if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0 && (own[rl] == '/' || !own[rl]))
		own += rl;
	while (*own == '/')
		own++;
	snprintf(out, cap, "%s%s%s", mnt, *own ? "/" : "", own);
}

static void load_layout(void)
{
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	FILE *cg = fopen("/proc/self/cgroup", "re");
	char v1_mnt[C_N][PATH_MAX] = {{0}}, v1_root[C_N][PATH_MAX] = {{0}};
	char v2_mnt[PATH_MAX] = "", v2_root[PATH_MAX] = "";
	char own_v1[C_N][PATH_MAX] = {{0}}, own_v2[PATH_MAX] = "";
	char line[4096];
	int have_v2 = 0;

	memset(&g_lay, 0, sizeof(g_lay));
	while (mi && fgets(line, sizeof(line), mi)) {
		char root[PATH_MAX], mnt[PATH_MAX], fstype[64], super[1024];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 ||
		    sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
			continue;
		if (strcmp(fstype, "cgroup2") == 0 && !v2_mnt[0]) {
			snprintf(v2_mnt, sizeof(v2_mnt), "%s", mnt);
			snprintf(v2_root, sizeof(v2_root), "%s", root);
		} else if (strcmp(fstype, "cgroup") == 0) {
			for (int c = 0; c < C_N; c++)
				if (has_word(super, ctrl_name[c], ',') && !v1_mnt[c][0]) {
					snprintf(v1_mnt[c], PATH_MAX, "%s", mnt);
					snprintf(v1_root[c], PATH_MAX, "%s", root);
				}
		}
	}
	while (cg && fgets(line, sizeof(line), cg)) {
		char *a = strchr(line, ':'), *b2 = a ? strchr(a + 1, ':') : NULL;
		if (!b2)
			continue;
		*a = 0;
		*b2 = 0;
		char *path = b2 + 1;
		path[strcspn(path, "\n")] = 0;
		if (a[1] == 0) {
			snprintf(own_v2, sizeof(own_v2), "%s", path);
			have_v2 = 1;
		} else {
			for (int c = 0; c < C_N; c++)
				if (has_word(a + 1, ctrl_name[c], ','))
					snprintf(own_v1[c], PATH_MAX, "%s", path);
		}
	}
	/* ORCH_SANDBOX_CGROUP=v2 ignores v1 hierarchies (a host moving to v2) */
	const char *pick = getenv("ORCH_SANDBOX_CGROUP");
	int use_v1 = !(pick && strcmp(pick, "v2") == 0);
	for (int c = 0; c < C_N; c++)
		if (use_v1 && v1_mnt[c][0] && own_v1[c][0])
			join_path(g_lay.v1[c], PATH_MAX, v1_mnt[c], v1_root[c], own_v1[c]);
	if (v2_mnt[0] && have_v2) {
		char ctrls[512] = "";
		join_path(g_lay.v2, PATH_MAX, v2_mnt, v2_root, own_v2);
		if (access(g_lay.v2, W_OK) != 0)
			g_lay.v2[0] = 0; /* read-only cgroupfs: not ours to use */
		else if (read_file(g_lay.v2, "cgroup.controllers", ctrls, sizeof(ctrls)) == 0) {
			ctrls[strcspn(ctrls, "\n")] = 0;
			for (int c = 0; c < C_N; c++)
				g_lay.v2_ctrl[c] = has_word(ctrls, ctrl_name[c], ' ');
		}
	}
	if (mi)
		fclose(mi);
	if (cg)
		fclose(cg);
}

/* Enables `c` for children of our v2 group, moving this process into a leaf
 * when v2's no-internal-process rule forbids it. Caller holds g_v2_lock. */
static int v2_enable(int c)
{
	char plus[32], sub[512] = "";
	int rc;

	if (read_file(g_lay.v2, "cgroup.subtree_control", sub, sizeof(sub)) == 0) {
		sub[strcspn(sub, "\n")] = 0;
		if (has_word(sub, ctrl_name[c], ' '))
			return 0;
	}
	snprintf(plus, sizeof(plus), "+%s", ctrl_name[c]);
	rc = write_file(g_lay.v2, "cgroup.subtree_control", plus);
	if (rc == -EBUSY) {
		char leaf[PATH_MAX], pid[32];
		snprintf(leaf, sizeof(leaf), "%s/orch-supervisor", g_lay.v2);
		if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
			return -errno;
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		rc = write_file(leaf, "cgroup.procs", pid);
		if (rc < 0)
			return rc;
		log_info("sandbox", "moved this process into %s to delegate cgroup controllers", leaf);
		rc = write_file(g_lay.v2, "cgroup.subtree_control", plus);
	}
	return rc;
}

/* ---- box groups ---- */

static int make_group(const char *parent, const char *name, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", parent, name);
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		out[0] = 0;
		return -e;
	}
	return 0;
}

static int set_limit(sbx_cg *cg, const char *dir, const char *file, const char *val)
{
	int rc = write_file(dir, file, val);

	(void)cg;
	if (rc < 0)
		return err_set(ERR_SANDBOX, "cannot set %s/%s to %s: %s", dir, file, val,
			       strerror(-rc));
	return 0;
}

/* The sandbox's groups: one per v1 hierarchy that exists, and one under
 * cgroup2 for the controllers that can be enabled there (its failure only
 * logged: a missing controller is judged by cg_missing). */
static int cg_groups(sbx_cg *cg, const char *name)
{
	int rc;

	for (int c = 0; c < C_N; c++) {
		if (!g_lay.v1[c][0])
			continue;
		rc = make_group(g_lay.v1[c], name, cg->dir[c]);
		if (rc < 0)
			return err_set(ERR_SANDBOX, "cannot create the %s cgroup under %s: %s (the ns "
				       "backend needs root)", ctrl_name[c], g_lay.v1[c], strerror(-rc));
	}
	if (!g_lay.v2[0])
		return 0;
	pthread_mutex_lock(&g_v2_lock);
	for (int c = 0; c < C_N; c++)
		if (!cg->dir[c][0] && g_lay.v2_ctrl[c]) {
			int e = v2_enable(c);
			if (e == 0)
				cg->v2_used[c] = 1;
			else
				log_warn("sandbox", "cannot enable the %s controller in %s: %s",
					 ctrl_name[c], g_lay.v2, strerror(-e));
		}
	rc = make_group(g_lay.v2, name, cg->v2dir);
	pthread_mutex_unlock(&g_v2_lock);
	if (rc < 0) {
		for (int c = 0; c < C_N; c++)
			cg->v2_used[c] = 0;
		log_warn("sandbox", "cannot create a cgroup v2 group under %s: %s", g_lay.v2,
			 strerror(-rc));
	}
	return 0;
}

/* The controllers neither hierarchy gives into missing[]: refused, or a
 * degradation of `b` when it allows them. */
static int cg_missing(const sbx_cg *cg, sbx *b, int missing[C_N])
{
	char val[64];

	for (int c = 0; c < C_N; c++)
		missing[c] = !cg->dir[c][0] && !cg->v2_used[c];
	for (int c = 0; c < C_N; c++) {
		if (!missing[c])
			continue;
		if (!b->allow_degraded)
			return err_set(ERR_SANDBOX,
				       "no %s cgroup controller is available to this process (neither "
				       "a v1 hierarchy nor cgroup2 with %s delegated), so the %s limit "
				       "cannot be enforced; give the process a delegated cgroup, or "
				       "allow degraded sandboxes (--allow-degraded) to run without it",
				       ctrl_name[c], ctrl_name[c], ctrl_name[c]);
		snprintf(val, sizeof(val), "no %s limit (controller unavailable)%s", ctrl_name[c],
			 c == C_PIDS ? ", RLIMIT_NPROC only" : "");
		sbx_degrade(b, val);
	}
	return 0;
}

/* The limits of `b` (memory, processes, CPU) written into the groups. */
static int cg_limits(sbx_cg *cg, const sbx *b)
{
	char val[64];
	long long quota = (long long)(b->cpus * 100000.0 + 0.5);
	int rc = 0;

	snprintf(val, sizeof(val), "%lld", (long long)b->mem_bytes);
	if (cg->dir[C_MEM][0]) {
		rc = set_limit(cg, cg->dir[C_MEM], "memory.limit_in_bytes", val);
		if (rc < 0)
			return rc;
		/* swap too, where swap accounting exists */
		write_file(cg->dir[C_MEM], "memory.memsw.limit_in_bytes", val);
	} else if (cg->v2_used[C_MEM]) {
		rc = set_limit(cg, cg->v2dir, "memory.max", val);
		if (rc < 0)
			return rc;
		write_file(cg->v2dir, "memory.swap.max", "0");
	}
	snprintf(val, sizeof(val), "%lld", (long long)b->pids);
	if (cg->dir[C_PIDS][0])
		rc = set_limit(cg, cg->dir[C_PIDS], "pids.max", val);
	else if (cg->v2_used[C_PIDS])
		rc = set_limit(cg, cg->v2dir, "pids.max", val);
	if (rc < 0)
		return rc;
	if (cg->dir[C_CPU][0]) {
		rc = set_limit(cg, cg->dir[C_CPU], "cpu.cfs_period_us", "100000");
		snprintf(val, sizeof(val), "%lld", quota);
		if (rc == 0)
			rc = set_limit(cg, cg->dir[C_CPU], "cpu.cfs_quota_us", val);
	} else if (cg->v2_used[C_CPU]) {
		snprintf(val, sizeof(val), "%lld 100000", quota);
		rc = set_limit(cg, cg->v2dir, "cpu.max", val);
	}
	return rc;
}

/* Opens `dir`/cgroup.procs as the next join fd. */
static int cg_join_one(sbx_cg *cg, int *nj, const char *dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	cg->join[*nj] = open(p, O_WRONLY | O_CLOEXEC);
	if (cg->join[(*nj)++] < 0)
		return err_set(ERR_SANDBOX, "cannot open %s: %s", p, strerror(errno));
	return 0;
}

/* cg->desc: which controllers are in force, through which hierarchy. */
static void cg_describe(sbx_cg *cg)
{
	char v1s[64] = "", v2s[64] = "";

	for (int c = 0; c < C_N; c++) {
		char *t = cg->dir[c][0] ? v1s : cg->v2_used[c] ? v2s : NULL;
		if (t)
			snprintf(t + strlen(t), 64 - strlen(t), "%s%s", t[0] ? "," : "", ctrl_name[c]);
	}
	snprintf(cg->desc, sizeof(cg->desc), "cgroup limits:%s%s%s%s%s%s", v1s[0] ? " v1 " : "",
		 v1s, v2s[0] ? " v2 " : "", v2s, v1s[0] || v2s[0] ? "" : " none",
		 cg->v2dir[0] ? ", tree kill via cgroup2" : "");
}

int sbx_cg_new(sbx_cg **out, sbx *b)
{
	sbx_cg *cg = calloc(1, sizeof(*cg));
	char name[64];
	int rc = 0, nj = 0, missing[C_N] = {0};

	*out = NULL;
	if (!cg)
		return err_set(ERR_NOMEM, "out of memory");
	for (int i = 0; i < C_N + 2; i++)
		cg->join[i] = -1;
	pthread_once(&g_lay_once, load_layout);
	snprintf(name, sizeof(name), "orch-sbx-%d-%u", (int)getpid(), atomic_fetch_add(&g_seq, 1));
	rc = cg_groups(cg, name);
	if (rc == 0)
		rc = cg_missing(cg, b, missing);
	if (rc == 0)
		rc = cg_limits(cg, b);
	/* the fds the sandbox's first process joins through */
	for (int c = 0; rc == 0 && c < C_N; c++)
		if (cg->dir[c][0])
			rc = cg_join_one(cg, &nj, cg->dir[c]);
	if (rc == 0 && cg->v2dir[0])
		rc = cg_join_one(cg, &nj, cg->v2dir);
	if (rc < 0)
		goto done;
	cg_describe(cg);
	b->nproc_fallback = missing[C_PIDS];
	*out = cg;
	cg = NULL;
done:
	sbx_cg_free(cg);
	return rc;
}

const int *sbx_cg_join_fds(const sbx_cg *cg)
{
	return cg->join;
}

const char *sbx_cg_describe(const sbx_cg *cg)
{
	return cg->desc;
}

static int64_t oom_count(sbx_cg *cg)
{
	if (cg->dir[C_MEM][0])
		return read_key(cg->dir[C_MEM], "memory.oom_control", "oom_kill");
	if (cg->v2_used[C_MEM])
		return read_key(cg->v2dir, "memory.events", "oom_kill");
	return -1;
}

static int64_t pids_count(sbx_cg *cg)
{
	if (cg->dir[C_PIDS][0])
		return read_key(cg->dir[C_PIDS], "pids.events", "max");
	if (cg->v2_used[C_PIDS])
		return read_key(cg->v2dir, "pids.events", "max");
	return -1;
}

void sbx_cg_before(sbx_cg *cg)
{
	if (cg->dir[C_MEM][0])
		write_file(cg->dir[C_MEM], "memory.max_usage_in_bytes", "0");
	cg->oom_base = oom_count(cg);
	cg->pids_base = pids_count(cg);
}

void sbx_cg_after(sbx_cg *cg, sbx_result *r)
{
	int64_t v;

	v = oom_count(cg);
	r->oom_killed = v >= 0 && cg->oom_base >= 0 && v > cg->oom_base;
	v = pids_count(cg);
	r->pids_limited = v >= 0 && cg->pids_base >= 0 && v > cg->pids_base;
	if (cg->dir[C_MEM][0])
		r->mem_peak_bytes = read_num(cg->dir[C_MEM], "memory.max_usage_in_bytes");
	else if (cg->v2_used[C_MEM])
		r->mem_peak_bytes = read_num(cg->v2dir, "memory.peak");
}

/* SIGKILLs every process listed in dir/cgroup.procs; returns how many. */
static int kill_listed(const char *dir)
{
	char text[8192];
	int n = 0;

	if (!dir[0] || read_file(dir, "cgroup.procs", text, sizeof(text)) < 0)
		return 0;
	for (char *p = text; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			n++;
		p = end;
		while (*p == '\n')
			p++;
	}
	return n;
}

static int kill_dirs(char dirs[][PATH_MAX], int ndirs, const char *v2dir)
{
	int left = 0;

	if (v2dir[0])
		write_file(v2dir, "cgroup.kill", "1");
	for (int round = 0; round < 200; round++) {
		left = 0;
		for (int c = 0; c < ndirs; c++)
			left += kill_listed(dirs[c]);
		left += kill_listed(v2dir);
		if (left == 0)
			break;
		util_sleep_ms(1);
	}
	return left;
}

int sbx_cg_kill(sbx_cg *cg)
{
	return kill_dirs(cg->dir, C_N, cg->v2dir);
}

static void remove_dir(const char *dir)
{
	/* a memory group stays busy for a moment after its last process */
	for (int i = 0; dir[0] && i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		util_sleep_ms(2);
	}
	if (dir[0])
		log_warn("sandbox", "cannot remove cgroup %s: %s", dir, strerror(errno));
}

void sbx_cg_free(sbx_cg *cg)
{
	if (!cg)
		return;
	sbx_cg_kill(cg);
	for (int i = 0; cg->join[i] >= 0; i++)
		close(cg->join[i]);
	for (int c = 0; c < C_N; c++)
		remove_dir(cg->dir[c]);
	remove_dir(cg->v2dir);
	free(cg);
}

/* ---- sweep ---- */

/* The seconds since the epoch at which the system booted (0 when unknown). */
static int64_t boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char *line = NULL;
	size_t cap = 0;
	int64_t t = 0;

	if (!f)
		return 0;
	/* the "intr" line before it can be long: line by line */
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "btime ", 6) == 0) {
			t = strtoll(line + 6, NULL, 10);
			break;
		}
	}
	free(line);
	fclose(f);
	return t;
}

/* True when the process `pid` that named group `group` (a directory) still
 * runs and is the one that created it. Dead: no such process, a zombie
 * (killed, not reaped yet: it runs no more code), or a process that started
 * minutes after the group was made (its pid was reused). When unsure,
 * alive. */
static int owner_alive(long pid, const char *group)
{
	char dir[64], text[1024], *p;
	struct stat st;
	long ticks = sysconf(_SC_CLK_TCK);
	int64_t start_ticks, boot;

	if (pid == getpid())
		return 1;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%ld", pid);
	if (read_file(dir, "stat", text, sizeof(text)) < 0)
		return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
	/* "pid (comm) S ppid ...": the name may hold spaces and parentheses */
	p = strrchr(text, ')');
	if (!p || p[1] != ' ')
		return 1;
	if (p[2] == 'Z' || p[2] == 'X')
		return 0;
	/* field 22, starttime: the 20th after the state */
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || ticks <= 0 || stat(group, &st) != 0)
		return 1;
	start_ticks = strtoll(p, NULL, 10);
	boot = boot_time();
	if (boot <= 0)
		return 1;
	/* started well after its group was made: another process got the pid
	 * (the margin absorbs a wall clock stepped since boot: a live owner is
	 * never taken for a dead one) */
	return boot + start_ticks / ticks <= (int64_t)st.st_ctime + 300;
}

static int sweep_dir(const char *parent)
{
	DIR *d;
	struct dirent *e;
	int removed = 0;

	if (!parent[0])
		return 0;
	d = opendir(parent);
	if (!d)
		return 0;
	for (e = readdir(d); e; e = readdir(d)) {
		char path[1][PATH_MAX];
		long pid;
		char *end;
		if (strncmp(e->d_name, "orch-sbx-", 9) != 0)
			continue;
		pid = strtol(e->d_name + 9, &end, 10);
		if (end == e->d_name + 9 || *end != '-' || pid <= 0)
			continue;
		snprintf(path[0], PATH_MAX, "%s/%s", parent, e->d_name);
		if (owner_alive(pid, path[0]))
			continue;
		kill_dirs(path, 1, "");
		if (strstr(parent, g_lay.v2) == parent && g_lay.v2[0])
			write_file(path[0], "cgroup.kill", "1");
		remove_dir(path[0]);
		if (access(path[0], F_OK) != 0)
			removed++;
	}
	closedir(d);
	return removed;
}

int sbx_sweep(int *out_removed)
{
	int n = 0;

	pthread_once(&g_lay_once, load_layout);
	for (int c = 0; c < C_N; c++)
		n += sweep_dir(g_lay.v1[c]);
	n += sweep_dir(g_lay.v2);
	if (out_removed)
		*out_removed = n;
	if (n)
		log_info("sandbox", "removed %d cgroups left by dead sandbox owners", n);
	return 0;
}
