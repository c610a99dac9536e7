/* sbx_ns — the built-in sandbox backend on Linux namespaces.
 *
 * Two processes are created per command:
 *
 *   A  cloned by the caller with new mount, pid, net, ipc and uts
 *      namespaces (owned by the host's user namespace, so nothing inside
 *      can ever change them). A is pid 1 of the sandbox. As host root it
 *      joins the box's cgroups, builds the root file system from a mount
 *      plan computed once per box (a tmpfs root with read-only binds of
 *      /usr and /etc, or a read-only bind of a root file system folder;
 *      fresh /proc, a minimal /dev, tmpfs /tmp and /dev/shm, /workspace),
 *      pivots into it, brings up loopback and sets the rlimits. Then it
 *      creates B, writes B's uid and gid maps, drops its own privileges
 *      and stays as the sandbox's init: it reaps every orphan and reports
 *      B's status.
 *   B  cloned by A (sharing A's memory until exec, on a stack of its own)
 *      in a new user namespace whose ids 0..65535 map to the box's host
 *      range. B drops the capability bounding set, becomes uid/gid 1000,
 *      clears its capabilities, sets no_new_privs, loads the seccomp filter
 *      and executes the command.
 *
 * Between clone and exec only system calls run: no allocation, no stdio, no
 * locks (the caller may be multi-threaded), and setuid-like calls go through
 * syscall() to bypass glibc's all-threads broadcast. Everything A and B need
 * is computed before the clone.
 *
 * The box dies with its owner: A has PR_SET_PDEATHSIG(SIGKILL) (the parent
 * is the thread that called sbx_start; keep that thread alive while the
 * command runs), and when A dies the kernel kills every process of the pid
 * namespace. Leftovers are also killed through the box's cgroups. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STAGE "/run/orch-sbx"
#define INNER_ID 1000
#define ID_RANGE 65536u

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
struct mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

/* ---- the mount plan ---- */

enum op_kind {
	OP_MKDIR,    /* dst, mode in flags; EEXIST is fine */
	OP_SYMLINK,  /* src = link text, dst */
	OP_TOUCH,    /* an empty file to bind a file onto */
	OP_MOUNT,    /* fstype on dst with flags and data */
	OP_BIND,     /* src onto dst; ro when `ro`; flags: extra attributes */
	OP_REMOUNT,  /* dst: MS_REMOUNT with flags */
	OP_PRIVATE,  /* make every mount private */
};

typedef struct mop {
	int kind;
	const char *src, *dst, *fstype, *data;
	unsigned long flags;
	int ro, rec;
} mop;

typedef struct ns_impl {
	sbx_cg *cg;
	const struct sock_fprog *prog;
	mop plan[96];
	size_t nplan;
	char *strs[96]; /* strings owned by the plan */
	size_t nstrs;
	char map[64];  /* "0 <base> 65536\n" */
	int netns_fd;  /* the box's loopback-only network namespace */
	/* the current command */
	pid_t pid;
	int pidfd, out_r, err_r, in_w, rep_r, life_w;
	buf rep;
	size_t rep_off;
	int ready, setup_failed, got_status, cmd_status, exec_failed, reaped, a_status;
	char exec_msg[256];
	struct rusage ru;
} ns_impl;

/* Data handed to A and B through their copy of memory. */
typedef struct launch {
	const sbx *b;
	const ns_impl *ni;
	int in_r, out_w, err_w, rep_w, life_r;
	const int *cg_join;
	int netns_fd;
	int go_r, go_w, exec_r, exec_w; /* A <-> B, created by A */
	uid_t a_uid;
} launch;

static char *plan_str(ns_impl *ni, const char *fmt, const char *a, const char *b2)
{
	char tmp[PATH_MAX];
	char *s;

	if (ni->nstrs >= sizeof(ni->strs) / sizeof(ni->strs[0]))
		return NULL;
	snprintf(tmp, sizeof(tmp), fmt, a, b2 ? b2 : "");
	s = strdup(tmp);
	if (s)
		ni->strs[ni->nstrs++] = s;
	return s;
}

static int plan_add(ns_impl *ni, mop op)
{
	if (ni->nplan >= sizeof(ni->plan) / sizeof(ni->plan[0]))
		return err_set(ERR_INVALID, "too many mounts in the sandbox plan");
	if ((op.kind != OP_PRIVATE && !op.dst) || ((op.kind == OP_BIND || op.kind == OP_SYMLINK) && !op.src))
		return err_set(ERR_NOMEM, "out of memory");
	ni->plan[ni->nplan++] = op;
	return 0;
}

#define S(path) plan_str(ni, STAGE "%s%s", path, NULL)

/* mkdir -p of an inside path below the stage, parent first. */
static int plan_mkdirs(ns_impl *ni, const char *inside)
{
	char part[PATH_MAX];
	int rc = 0;

	for (const char *p = inside + 1; rc == 0; p++) {
		if (*p != '/' && *p != 0)
			continue;
		snprintf(part, sizeof(part), "%.*s", (int)(p - inside), inside);
		rc = plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S(part), .flags = 0755});
		if (*p == 0)
			break;
	}
	return rc;
}

static int build_plan(sbx *b, ns_impl *ni)
{
	static const char *const host_links[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL};
	static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty", NULL};
	char data[128];
	int rc = 0;
	int host = b->rootfs == NULL;

	rc = plan_add(ni, (mop){.kind = OP_PRIVATE, .dst = "/"});
	if (host) {
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "tmpfs", .dst = STAGE,
				  .flags = MS_NOSUID | MS_NODEV,
				  .data = "size=1m,nr_inodes=4096,mode=0755"});
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/usr"), .flags = 0755});
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = "/usr", .dst = S("/usr"), .ro = 1, .rec = 1});
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/etc"), .flags = 0755});
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = "/etc", .dst = S("/etc"), .ro = 1, .rec = 1});
		for (int i = 0; rc == 0 && host_links[i]; i++) {
			char hp[64], target[PATH_MAX];
			struct stat st;
			ssize_t n;
			snprintf(hp, sizeof(hp), "/%s", host_links[i]);
			if (lstat(hp, &st) < 0)
				continue;
			if (S_ISLNK(st.st_mode)) {
				n = readlink(hp, target, sizeof(target) - 1);
				if (n <= 0)
					continue;
				target[n] = 0;
				rc = plan_add(ni, (mop){.kind = OP_SYMLINK, .src = plan_str(ni, "%s%s", target, NULL),
						  .dst = S(hp)});
			} else if (S_ISDIR(st.st_mode)) {
				rc = plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S(hp), .flags = 0755});
				rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = plan_str(ni, "%s%s", hp, NULL),
								  .dst = S(hp), .ro = 1, .rec = 1});
			}
		}
	} else {
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = b->rootfs, .dst = STAGE, .ro = 1, .rec = 1});
	}
	/* /proc */
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/proc"), .flags = 0555});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "proc", .dst = S("/proc"),
					  .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC});
	/* /dev */
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/dev"), .flags = 0755});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "tmpfs", .dst = S("/dev"),
					  .flags = MS_NOSUID | MS_NOEXEC,
					  .data = "size=64k,nr_inodes=64,mode=0755"});
	for (int i = 0; rc == 0 && devs[i]; i++) {
		const char *hp = plan_str(ni, "/dev/%s%s", devs[i], NULL);
		const char *dp = plan_str(ni, STAGE "/dev/%s%s", devs[i], NULL);
		rc = plan_add(ni, (mop){.kind = OP_TOUCH, .dst = dp});
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = hp, .dst = dp, .flags = MS_NOSUID | MS_NOEXEC});
	}
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_SYMLINK, .src = "/proc/self/fd", .dst = S("/dev/fd")});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_SYMLINK, .src = "/proc/self/fd/0", .dst = S("/dev/stdin")});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_SYMLINK, .src = "/proc/self/fd/1", .dst = S("/dev/stdout")});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_SYMLINK, .src = "/proc/self/fd/2", .dst = S("/dev/stderr")});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/dev/shm"), .flags = 01777});
	snprintf(data, sizeof(data), "size=%lld,mode=1777", (long long)b->tmp_bytes);
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "tmpfs", .dst = S("/dev/shm"),
					  .flags = MS_NOSUID | MS_NODEV, .data = plan_str(ni, "%s%s", data, NULL)});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_REMOUNT, .dst = S("/dev"),
					  .flags = MS_RDONLY | MS_NOSUID | MS_NOEXEC});
	/* /tmp: counted against the memory limit like any tmpfs page */
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/tmp"), .flags = 01777});
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "tmpfs", .dst = S("/tmp"),
					  .flags = MS_NOSUID | MS_NODEV, .data = plan_str(ni, "%s%s", data, NULL)});
	/* /workspace */
	rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MKDIR, .dst = S("/workspace"), .flags = 0755});
	if (b->workspace) {
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = b->workspace, .dst = S("/workspace"),
						  .flags = MS_NOSUID | MS_NODEV});
	} else {
		snprintf(data, sizeof(data), "size=%lld,mode=0755,uid=%u,gid=%u", (long long)b->tmp_bytes,
			 b->uid_base + INNER_ID, b->uid_base + INNER_ID);
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_MOUNT, .fstype = "tmpfs", .dst = S("/workspace"),
						  .flags = MS_NOSUID | MS_NODEV, .data = plan_str(ni, "%s%s", data, NULL)});
	}
	for (size_t i = 0; rc == 0 && i < b->nbinds; i++) {
		struct stat st;
		const char *dst = S(b->binds[i].inside);
		if (stat(b->binds[i].host, &st) < 0)
			return err_set(ERR_INVALID, "bind source %s: %s", b->binds[i].host, strerror(errno));
		if (host) {
			char parent[PATH_MAX];
			snprintf(parent, sizeof(parent), "%s", b->binds[i].inside);
			*strrchr(parent, '/') = 0;
			if (parent[0])
				rc = plan_mkdirs(ni, parent);
			if (rc == 0)
				rc = plan_add(ni, (mop){.kind = S_ISDIR(st.st_mode) ? OP_MKDIR : OP_TOUCH,
						  .dst = dst, .flags = 0755});
		}
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_BIND, .src = b->binds[i].host, .dst = dst,
						  .ro = !b->binds[i].writable, .rec = 1,
						  .flags = MS_NOSUID | MS_NODEV});
	}
	if (host)
		rc = rc ? rc : plan_add(ni, (mop){.kind = OP_REMOUNT, .dst = STAGE,
						  .flags = MS_RDONLY | MS_NOSUID | MS_NODEV});
	return rc;
}

/* ---- code that runs between clone and exec: system calls only ---- */

static size_t c_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static size_t c_cat(char *d, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		d[at++] = *s++;
	d[at] = 0;
	return at;
}

static size_t c_num(char *d, size_t at, size_t cap, long v)
{
	char t[24];
	int n = 0;
	unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;

	do {
		t[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n < 23);
	if (v < 0 && at + 1 < cap)
		d[at++] = '-';
	while (n && at + 1 < cap)
		d[at++] = t[--n];
	d[at] = 0;
	return at;
}

/* Writes a report message: kind, 2-byte length, text "what path: error". */
static void c_report(int fd, char kind, const char *what, const char *path, int err)
{
	char m[400];
	size_t n = 3;

	m[n] = 0;
	n = c_cat(m, n, sizeof(m), what);
	if (path) {
		n = c_cat(m, n, sizeof(m), " ");
		n = c_cat(m, n, sizeof(m), path);
	}
	if (err) {
		const char *d = strerrordesc_np(err);
		n = c_cat(m, n, sizeof(m), ": ");
		n = c_cat(m, n, sizeof(m), d ? d : "error");
	}
	m[0] = kind;
	m[1] = (char)((n - 3) & 0xff);
	m[2] = (char)((n - 3) >> 8);
	if (write(fd, m, n) < 0) {
		/* the owner is gone; nothing to tell */
	}
}

__attribute__((noreturn)) static void c_fail(int fd, const char *what, const char *path, int err)
{
	c_report(fd, 'E', what, path, err);
	_exit(125);
}

static int c_bind(const mop *op)
{
	unsigned long extra = op->flags;

	if (mount(op->src, op->dst, NULL, MS_BIND | (op->rec ? MS_REC : 0), NULL) < 0)
		return -1;
	if (op->ro && op->rec) {
		struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
		if (syscall(SYS_mount_setattr, AT_FDCWD, op->dst, AT_RECURSIVE, &a, sizeof(a)) == 0)
			return 0;
		if (errno != ENOSYS)
			return -1;
		/* an old kernel: submounts would stay writable, so hide them */
		if (umount2(op->dst, MNT_DETACH) < 0 || mount(op->src, op->dst, NULL, MS_BIND, NULL) < 0)
			return -1;
	}
	if (op->ro)
		extra |= MS_RDONLY | MS_NOSUID | MS_NODEV;
	if (extra && mount(NULL, op->dst, NULL, MS_REMOUNT | MS_BIND | extra, NULL) < 0)
		return -1;
	return 0;
}

static void c_run_plan(const ns_impl *ni, int rep)
{
	for (size_t i = 0; i < ni->nplan; i++) {
		const mop *op = &ni->plan[i];
		int fd;
		switch (op->kind) {
		case OP_PRIVATE:
			if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
				c_fail(rep, "make mounts private", NULL, errno);
			break;
		case OP_MKDIR:
			if (mkdir(op->dst, (mode_t)op->flags) < 0 && errno != EEXIST)
				c_fail(rep, "mkdir", op->dst, errno);
			if (op->flags & 01000)
				chmod(op->dst, (mode_t)op->flags);
			break;
		case OP_SYMLINK:
			if (symlink(op->src, op->dst) < 0 && errno != EEXIST)
				c_fail(rep, "symlink", op->dst, errno);
			break;
		case OP_TOUCH:
			fd = open(op->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd < 0 && errno != EEXIST && errno != EROFS)
				c_fail(rep, "create", op->dst, errno);
			if (fd >= 0)
				close(fd);
			break;
		case OP_MOUNT:
			if (mount(op->fstype, op->dst, op->fstype, op->flags, op->data) < 0)
				c_fail(rep, op->fstype, op->dst, errno);
			break;
		case OP_BIND:
			if (c_bind(op) < 0)
				c_fail(rep, "bind", op->src, errno);
			break;
		case OP_REMOUNT:
			if (mount(NULL, op->dst, NULL, MS_REMOUNT | op->flags, NULL) < 0)
				c_fail(rep, "remount read-only", op->dst, errno);
			break;
		}
	}
}

static void c_loopback_up(int rep)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		c_fail(rep, "socket for loopback", NULL, errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		c_fail(rep, "bring up loopback", NULL, errno);
	close(s);
}

static void c_rlimit(int rep, int res, int64_t v, const char *name)
{
	struct rlimit rl = {.rlim_cur = (rlim_t)v, .rlim_max = (rlim_t)v};
	struct rlimit cur;

	if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < rl.rlim_max)
		rl.rlim_cur = rl.rlim_max = cur.rlim_max; /* never above what we have */
	if (setrlimit(res, &rl) < 0)
		c_fail(rep, "setrlimit", name, errno);
}

static void c_signals_default(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Drops every capability of the calling process in its user namespace. */
static int c_drop_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (prctl(PR_SET_SECUREBITS, 0x2f /* NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED + locks */, 0,
		  0, 0) < 0 && errno != EPERM)
		return -1;
	return (int)syscall(SYS_capset, &h, d);
}

static void c_seccomp(const ns_impl *ni, int rep)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		c_fail(rep, "no_new_privs", NULL, errno);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ni->prog) < 0)
		c_fail(rep, "load the seccomp filter", NULL, errno);
}

static const char *c_env_path(char *const *envp)
{
	for (; *envp; envp++)
		if (strncmp(*envp, "PATH=", 5) == 0)
			return *envp + 5;
	return "/usr/bin:/bin";
}

/* execve with a PATH search in the command's own environment. */
static int c_exec(char *const *argv, char *const *envp)
{
	char p[PATH_MAX];
	const char *path, *seg;
	int seen_eacces = 0;
	size_t alen;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return errno;
	}
	alen = c_len(argv[0]);
	path = c_env_path(envp);
	for (seg = path;; seg++) {
		const char *end = seg;
		size_t n;
		while (*end && *end != ':')
			end++;
		n = (size_t)(end - seg);
		if (n == 0) {
			p[0] = '.';
			n = 1;
		} else if (n < sizeof(p) - 2 - alen) {
			memcpy(p, seg, n);
		} else {
			n = 0;
		}
		if (n && n + alen + 2 < sizeof(p)) {
			p[n] = '/';
			memcpy(p + n + 1, argv[0], alen + 1);
			execve(p, argv, envp);
			if (errno == EACCES)
				seen_eacces = 1;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
				return errno;
		}
		if (!*end)
			break;
		seg = end;
	}
	return seen_eacces ? EACCES : ENOENT;
}

static int b_main(void *arg)
{
	const launch *l = arg;
	const sbx *b = l->b;
	int rep = 3;
	char go;
	int err;

	close(l->go_w);
	close(l->exec_r);
	if (read(l->go_r, &go, 1) != 1)
		_exit(125);
	close(l->go_r);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			c_fail(rep, "drop the capability bounding set", NULL, errno);
	if (b->nproc_fallback)
		c_rlimit(rep, RLIMIT_NPROC, b->pids, "RLIMIT_NPROC");
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		c_fail(rep, "setgroups", NULL, errno);
	if (syscall(SYS_setresgid, INNER_ID, INNER_ID, INNER_ID) < 0)
		c_fail(rep, "setresgid", NULL, errno);
	if (syscall(SYS_setresuid, INNER_ID, INNER_ID, INNER_ID) < 0)
		c_fail(rep, "setresuid", NULL, errno);
	if (c_drop_caps() < 0)
		c_fail(rep, "drop capabilities", NULL, errno);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* cleared by the uid change */
	if (chdir(b->run.cwd) < 0)
		c_fail(rep, "working directory", b->run.cwd, errno);
	c_signals_default();
	c_seccomp(l->ni, rep);
	err = c_exec(b->run.argv, b->run.envp);
	{
		char m[300];
		size_t n = c_cat(m, 0, sizeof(m), "sandbox: cannot run '");
		n = c_cat(m, n, sizeof(m), b->run.argv[0]);
		n = c_cat(m, n, sizeof(m), "': ");
		n = c_cat(m, n, sizeof(m), strerrordesc_np(err) ? strerrordesc_np(err) : "error");
		n = c_cat(m, n, sizeof(m), "\n");
		if (write(2, m, n) < 0) {
			/* stderr closed: the report below still tells */
		}
		c_report(rep, 'X', b->run.argv[0], NULL, err);
	}
	if (write(l->exec_w, "x", 1) < 0) {
		/* A sees B exit anyway */
	}
	_exit(err == ENOENT ? 127 : 126);
}

static char g_b_stack[1 << 16] __attribute__((aligned(64)));

/* Moves the fds A keeps to 0..(n-1) in order and closes every other one. */
static void c_arrange_fds(int *fds, int n, int rep_fallback)
{
	int tmp[16];

	for (int i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 32);
		if (tmp[i] < 0)
			c_fail(rep_fallback, "arrange file descriptors", NULL, errno);
	}
	for (int i = 0; i < n; i++) {
		if (dup3(tmp[i], i, i >= 3 ? O_CLOEXEC : 0) < 0)
			c_fail(rep_fallback, "arrange file descriptors", NULL, errno);
		fds[i] = i;
	}
	if (syscall(SYS_close_range, (unsigned)n, ~0U, 0) < 0)
		for (int fd = n; fd < 4096; fd++)
			close(fd);
}

static void c_write_map(int rep, pid_t pid, const char *file, const char *map)
{
	char p[64];
	size_t n = c_cat(p, 0, sizeof(p), "/proc/");
	int fd;

	n = c_num(p, n, sizeof(p), pid);
	n = c_cat(p, n, sizeof(p), "/");
	c_cat(p, n, sizeof(p), file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		c_fail(rep, "open", p, errno);
	if (write(fd, map, c_len(map)) < 0)
		c_fail(rep, "write", p, errno);
	close(fd);
}

/* F: the egress forwarder, a child of A listening on 127.0.0.1 in the box's
 * network namespace (loopback is up), with A's unprivileged host uid and
 * the seccomp filter. It dies with the pid namespace when A exits. */
static void c_start_forwarder(const launch *l, int rep)
{
	struct sockaddr_in sa;
	int one = 1, lfd;
	long pid;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		c_fail(rep, "egress forwarder: socket", NULL, errno);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(SBX_EGRESS_PORT);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0)
		c_fail(rep, "egress forwarder: listen on 127.0.0.1:3128", NULL, errno);
	/* a raw clone: glibc's fork would run atfork handlers in this copy of
	 * a multi-threaded process */
	pid = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid < 0)
		c_fail(rep, "egress forwarder: clone", NULL, errno);
	if (pid == 0) {
		int keep[1] = {lfd};
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c_arrange_fds(keep, 1, rep);
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, l->a_uid, l->a_uid, l->a_uid) < 0 ||
		    syscall(SYS_setresuid, l->a_uid, l->a_uid, l->a_uid) < 0)
			_exit(1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_DUMPABLE, 0);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, l->ni->prog) < 0)
			_exit(1);
		sbx_fwd_serve(0, SBX_EGRESS_INSIDE);
	}
	close(lfd);
}

__attribute__((noreturn)) static void a_main(launch *l)
{
	const sbx *b = l->b;
	const ns_impl *ni = l->ni;
	int fds[16], n = 0, ncg = 0;
	struct pollfd pf;
	pid_t bpid;
	int st, rep;
	char sbuf[8];

	if (setns(l->netns_fd, CLONE_NEWNET) < 0)
		c_fail(l->rep_w, "join the box's network namespace", NULL, errno);
	/* 0 stdin, 1 stdout, 2 stderr, 3 report, 4 life, 5.. cgroup joins */
	fds[n++] = l->in_r;
	fds[n++] = l->out_w;
	fds[n++] = l->err_w;
	fds[n++] = l->rep_w;
	fds[n++] = l->life_r;
	for (int i = 0; l->cg_join[i] >= 0 && n < 15; i++, ncg++)
		fds[n++] = l->cg_join[i];
	c_arrange_fds(fds, n, l->rep_w);
	rep = 3;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pf.fd = 4;
	pf.events = POLLIN;
	if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
		_exit(125); /* the owner died before we could notice */
	c_signals_default();
	for (int i = 0; i < ncg; i++) {
		if (write(5 + i, "0", 1) < 0)
			c_fail(rep, "join the box's cgroup", NULL, errno);
		close(5 + i);
	}
	if (setsid() < 0)
		c_fail(rep, "setsid", NULL, errno);
	c_run_plan(ni, rep);
	if (chdir(STAGE) < 0)
		c_fail(rep, "chdir", STAGE, errno);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		c_fail(rep, "pivot_root", STAGE, errno);
	if (umount2(".", MNT_DETACH) < 0)
		c_fail(rep, "detach the host's root", NULL, errno);
	if (chdir("/") < 0)
		c_fail(rep, "chdir", "/", errno);
	if (sethostname("sandbox", 7) < 0 || setdomainname("sandbox", 7) < 0)
		c_fail(rep, "set the host name", NULL, errno);
	c_rlimit(rep, RLIMIT_NOFILE, b->nofile, "RLIMIT_NOFILE");
	c_rlimit(rep, RLIMIT_FSIZE, b->fsize_bytes, "RLIMIT_FSIZE");
	c_rlimit(rep, RLIMIT_CORE, 0, "RLIMIT_CORE");
	if (b->egress)
		c_start_forwarder(l, rep);

	/* B: the command, in a user namespace of its own */
	{
		int p1[2], p2[2];
		if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0)
			c_fail(rep, "pipe", NULL, errno);
		l->go_r = p1[0];
		l->go_w = p1[1];
		l->exec_r = p2[0];
		l->exec_w = p2[1];
	}
	if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
		_exit(125);
	bpid = clone(b_main, g_b_stack + sizeof(g_b_stack),
		     CLONE_VM | CLONE_NEWUSER | CLONE_NEWCGROUP | SIGCHLD, l);
	if (bpid < 0)
		c_fail(rep, "create the user namespace (is user.max_user_namespaces > 0?)", NULL, errno);
	close(l->go_r);
	close(l->exec_w);
	c_write_map(rep, bpid, "uid_map", ni->map);
	c_write_map(rep, bpid, "gid_map", ni->map);
	if (write(l->go_w, "g", 1) != 1)
		c_fail(rep, "start the command", NULL, errno);
	close(l->go_w);
	{
		char x;
		ssize_t r;
		do
			r = read(l->exec_r, &x, 1);
		while (r < 0 && errno == EINTR);
		close(l->exec_r);
		if (r == 0 && write(rep, "R\0\0", 3) < 0)
			_exit(125);
	}
	/* A keeps no privilege while it waits */
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, l->a_uid, l->a_uid, l->a_uid) < 0 ||
	    syscall(SYS_setresuid, l->a_uid, l->a_uid, l->a_uid) < 0)
		c_fail(rep, "drop the init's privileges", NULL, errno);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_DUMPABLE, 0);
	close(0);
	close(1);
	close(2);
	c_seccomp(ni, rep);
	for (;;) {
		pid_t w = waitpid(-1, &st, __WALL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			_exit(125);
		if (w == bpid)
			break;
	}
	sbuf[0] = 'S';
	sbuf[1] = 4;
	sbuf[2] = 0;
	memcpy(sbuf + 3, &st, 4);
	if (write(rep, sbuf, 7) < 0)
		_exit(125);
	_exit(0);
}

/* ---- the caller's side ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void run_reset(ns_impl *ni)
{
	close_fd(&ni->pidfd);
	close_fd(&ni->out_r);
	close_fd(&ni->err_r);
	close_fd(&ni->in_w);
	close_fd(&ni->rep_r);
	close_fd(&ni->life_w);
	buf_free(&ni->rep);
	ni->pid = 0;
	ni->rep_off = 0;
	ni->ready = ni->setup_failed = ni->got_status = ni->exec_failed = ni->reaped = 0;
	ni->cmd_status = ni->a_status = 0;
	ni->exec_msg[0] = 0;
	memset(&ni->ru, 0, sizeof(ni->ru));
}

/* Creates the box's network namespace: only loopback, up. A helper process
 * is born in it, brings lo up and is held until we hold the namespace. */
static int make_netns(int *out)
{
	struct clone_args ca;
	int p[2], q[2], rc = 0, st;
	long pid;
	char c, path[64];

	*out = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(ERR_IO, "pipe: %s", strerror(errno));
	if (pipe2(q, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(ERR_IO, "pipe: %s", strerror(errno));
	}
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWNET;
	ca.exit_signal = SIGCHLD;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0 && errno == ENOSYS)
		pid = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		/* system calls only: the caller may be multi-threaded. Keep only
		 * our two pipe ends (0: from the owner, 1: to it): a copy of
		 * another thread's pipe held while we block would keep that
		 * thread's helper blocked, and it ours. */
		int keep[2] = {q[0], p[1]};
		c_arrange_fds(keep, 2, p[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c_loopback_up(1);
		if (write(1, "R\0\0", 3) < 0 || read(0, &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	close(q[0]);
	if (pid < 0) {
		rc = err_set(ERR_SANDBOX,
			     "cannot create a network namespace: %s (the ns backend needs root)",
			     strerror(errno));
		goto done;
	}
	{
		char m[400];
		ssize_t n = read(p[0], m, sizeof(m) - 1);
		if (n != 3 || m[0] != 'R') {
			m[n > 3 ? n : 3] = 0;
			rc = err_set(ERR_SANDBOX, "cannot set up the sandbox network: %s",
				     n > 3 ? m + 3 : "the helper died");
			goto done;
		}
	}
	snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
	*out = open(path, O_RDONLY | O_CLOEXEC);
	if (*out < 0)
		rc = err_set(ERR_SANDBOX, "cannot hold the network namespace: %s", strerror(errno));
done:
	close(q[1]);
	close(p[0]);
	if (pid > 0)
		while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR)
			;
	return rc;
}

static void sweep_once(void)
{
	sbx_sweep(NULL);
}

static int ns_prepare(sbx *b)
{
	ns_impl *ni = calloc(1, sizeof(*ni));
	struct stat st;
	int rc;

	if (!ni)
		return err_set(ERR_NOMEM, "out of memory");
	b->impl = ni;
	ni->pidfd = ni->out_r = ni->err_r = ni->in_w = ni->rep_r = ni->life_w = -1;
	ni->netns_fd = -1;
	buf_init(&ni->rep, 1 << 16);
	if (geteuid() != 0)
		return err_set(ERR_SANDBOX,
			       "the ns sandbox backend needs root (it maps a host uid range and "
			       "creates cgroups); run as root or use --backend docker");
	if (strcmp(b->net, "none") != 0)
		return err_set(ERR_INVALID,
			       "the ns backend offers only --net none (loopback only); use the "
			       "docker backend for a gateway network");
	if (b->uid_base == 0 && b->workspace && stat(b->workspace, &st) == 0 &&
	    st.st_uid >= (1u << 20) + INNER_ID && (st.st_uid - (1u << 20) - INNER_ID) % ID_RANGE == 0 &&
	    st.st_uid - INNER_ID <= 4294967295u - 2 * ID_RANGE) {
		/* a workspace a box already owned keeps its owner */
		b->uid_base = (uint32_t)(st.st_uid - INNER_ID);
	}
	if (b->uid_base == 0) {
		/* 1 Mi .. ~3.9 Gi in steps of 65536: never a real user's */
		b->uid_base = (uint32_t)((1u << 20) + util_rand_below(60000) * ID_RANGE);
	}
	snprintf(ni->map, sizeof(ni->map), "0 %u %u\n", b->uid_base, ID_RANGE);
	if (mkdir(STAGE, 0700) < 0 && errno != EEXIST)
		return err_set(ERR_SANDBOX, "cannot create %s: %s", STAGE, strerror(errno));
	if (lstat(STAGE, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
		return err_set(ERR_SANDBOX, "%s must be a directory owned by root", STAGE);
	rc = sbx_seccomp_prog(&ni->prog);
	if (rc < 0)
		return rc;
	{
		/* the first box of a process removes what crashed owners left */
		static pthread_once_t swept = PTHREAD_ONCE_INIT;
		pthread_once(&swept, sweep_once);
	}
	if (b->rootfs) {
		static const char *const need[] = {"proc", "dev", "tmp", "workspace", NULL};
		for (int i = 0; need[i]; i++) {
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", b->rootfs, need[i]);
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return err_set(ERR_SANDBOX, "cannot create %s in the root file system folder: %s",
					       p, strerror(errno));
		}
		if (access(b->rootfs, X_OK) < 0)
			return err_set(ERR_INVALID, "root file system folder %s is not usable", b->rootfs);
		for (size_t i = 0; i < b->nbinds; i++) {
			char p[PATH_MAX];
			struct stat hs;
			snprintf(p, sizeof(p), "%s%s", b->rootfs, b->binds[i].inside);
			if (stat(b->binds[i].host, &hs) == 0 && stat(p, &st) < 0) {
				/* make the mount point in the folder */
				int mk = -1;
				if (S_ISDIR(hs.st_mode)) {
					mk = mkdir(p, 0755);
				} else {
					int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
					if (fd >= 0)
						mk = close(fd);
				}
				if (mk != 0)
					return err_set(ERR_SANDBOX,
						       "cannot create bind target %s in the root file system "
						       "folder: %s", p, strerror(errno));
			}
		}
	}
	rc = build_plan(b, ni);
	if (rc < 0)
		return rc;
	rc = make_netns(&ni->netns_fd);
	if (rc < 0)
		return rc;
	rc = sbx_cg_new(&ni->cg, b);
	if (rc < 0)
		return rc;
	if (b->workspace) {
		rc = sbx_chown_tree(b->workspace, b->uid_base + INNER_ID, b->uid_base + INNER_ID);
		if (rc < 0)
			return rc;
	}
	snprintf(b->describe, sizeof(b->describe),
		 "ns: user,pid,mount,net,ipc,uts namespaces; host uids %u-%u; root %s read-only; "
		 "seccomp deny-list; %s; memory %lld MiB, %lld pids, %.2f cpus",
		 b->uid_base, b->uid_base + ID_RANGE - 1, b->rootfs ? b->rootfs : "host /usr,/etc",
		 sbx_cg_describe(ni->cg), (long long)(b->mem_bytes >> 20), (long long)b->pids, b->cpus);
	return 0;
}

static void ns_destroy(sbx *b)
{
	ns_impl *ni = b->impl;

	if (!ni)
		return;
	if (ni->pid > 0 && !ni->reaped) {
		int st;
		kill(ni->pid, SIGKILL);
		while (waitpid(ni->pid, &st, __WALL) < 0 && errno == EINTR)
			;
	}
	run_reset(ni);
	if (ni->netns_fd >= 0)
		close(ni->netns_fd);
	sbx_cg_free(ni->cg);
	for (size_t i = 0; i < ni->nstrs; i++)
		free(ni->strs[i]);
	free(ni);
	b->impl = NULL;
}

/* Parses complete report messages from ni->rep. */
static void parse_reports(ns_impl *ni)
{
	while (ni->rep.len - ni->rep_off >= 3) {
		const unsigned char *m = (const unsigned char *)ni->rep.data + ni->rep_off;
		size_t len = (size_t)m[1] | ((size_t)m[2] << 8);
		if (ni->rep.len - ni->rep_off < 3 + len)
			return;
		switch (m[0]) {
		case 'R':
			ni->ready = 1;
			break;
		case 'E':
			ni->setup_failed = 1;
			snprintf(ni->exec_msg, sizeof(ni->exec_msg), "%.*s", (int)len, (const char *)m + 3);
			break;
		case 'X':
			ni->exec_failed = 1;
			snprintf(ni->exec_msg, sizeof(ni->exec_msg), "cannot run %.*s", (int)len,
				 (const char *)m + 3);
			break;
		case 'S':
			if (len == 4) {
				memcpy(&ni->cmd_status, m + 3, 4);
				ni->got_status = 1;
			}
			break;
		}
		ni->rep_off += 3 + len;
	}
}

/* Reads what is available from `*fd`; closes it at EOF. Returns 1 when the
 * output callback asked to stop. */
static int pump(sbx *b, int *fd, int stream)
{
	ns_impl *ni = b->impl;
	char chunk[65536];
	int stop = 0;

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(*fd, chunk, sizeof(chunk));
		if (n > 0) {
			if (stream == 0) {
				if (buf_append(&ni->rep, chunk, (size_t)n) == 0)
					parse_reports(ni);
			} else if (sbx_deliver(b, stream, chunk, (size_t)n)) {
				stop = 1;
			}
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			close_fd(fd);
		break;
	}
	return stop;
}

static void reap(ns_impl *ni, int block)
{
	int st;
	pid_t w;

	if (ni->reaped)
		return;
	do
		w = wait4(ni->pid, &st, __WALL | (block ? 0 : WNOHANG), &ni->ru);
	while (w < 0 && errno == EINTR);
	if (w == ni->pid) {
		ni->reaped = 1;
		ni->a_status = st;
	} else if (w < 0 && errno == ECHILD) {
		/* someone else reaped it (SIGCHLD ignored, or a waitpid(-1)
		 * elsewhere): the init's report still carries the status */
		ni->reaped = 1;
		ni->a_status = W_EXITCODE(125, 0);
	}
}

static int ns_kill(sbx *b)
{
	ns_impl *ni = b->impl;

	if (ni->pid > 0 && !ni->reaped) {
		if (ni->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, ni->pidfd, SIGKILL, NULL, 0);
		else
			kill(ni->pid, SIGKILL);
	}
	sbx_cg_kill(ni->cg);
	return 0;
}

/* write(2) to a pipe whose reader may be gone, without the SIGPIPE that
 * would kill the caller: the signal is blocked in this thread and a pending
 * one we caused is consumed. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old, pending;
	int had_pending;
	ssize_t w;
	int e;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	had_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	w = write(fd, p, n);
	e = errno;
	if (w < 0 && e == EPIPE && !had_pending) {
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return w;
}

/* One round of waiting: polls the pipes and A for at most `ms`. */
static void step(sbx *b, int64_t ms)
{
	ns_impl *ni = b->impl;
	sbx_run_state *r = &b->run;
	struct pollfd pf[5];
	int n = 0, io = -1, ie = -1, ir = -1, iw = -1, ip = -1;

	if (ni->out_r >= 0) {
		io = n;
		pf[n++] = (struct pollfd){.fd = ni->out_r, .events = POLLIN};
	}
	if (ni->err_r >= 0) {
		ie = n;
		pf[n++] = (struct pollfd){.fd = ni->err_r, .events = POLLIN};
	}
	if (ni->rep_r >= 0) {
		ir = n;
		pf[n++] = (struct pollfd){.fd = ni->rep_r, .events = POLLIN};
	}
	if (ni->in_w >= 0) {
		iw = n;
		pf[n++] = (struct pollfd){.fd = ni->in_w, .events = POLLOUT};
	}
	if (!ni->reaped && ni->pidfd >= 0) {
		ip = n;
		pf[n++] = (struct pollfd){.fd = ni->pidfd, .events = POLLIN};
	}
	if (ms > 100 && r->cancel)
		ms = 100;
	if (ms > INT32_MAX)
		ms = INT32_MAX;
	if (poll(pf, (nfds_t)n, (int)ms) <= 0)
		return;
	if (io >= 0 && pf[io].revents && pump(b, &ni->out_r, 1))
		goto stop;
	if (ie >= 0 && pf[ie].revents && pump(b, &ni->err_r, 2))
		goto stop;
	if (ir >= 0 && pf[ir].revents)
		pump(b, &ni->rep_r, 0);
	if (iw >= 0 && pf[iw].revents) {
		if (pf[iw].revents & (POLLERR | POLLHUP)) {
			close_fd(&ni->in_w);
		} else {
			ssize_t w = write_nosigpipe(ni->in_w, r->stdin_data + r->stdin_off,
						    r->stdin_len - r->stdin_off);
			if (w > 0)
				r->stdin_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN) || r->stdin_off >= r->stdin_len)
				close_fd(&ni->in_w);
		}
	}
	if (ip >= 0 && pf[ip].revents)
		reap(ni, 0);
	return;
stop:
	r->cancelled = 1;
	ns_kill(b);
}

static int ns_start(sbx *b)
{
	ns_impl *ni = b->impl;
	sbx_run_state *r = &b->run;
	int out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1}, life[2] = {-1, -1};
	int in[2] = {-1, -1};
	struct clone_args ca;
	launch l;
	long pid;
	int rc = 0;

	run_reset(ni);
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 ||
	    pipe2(life, O_CLOEXEC) < 0) {
		rc = err_set(ERR_IO, "cannot create pipes for the sandbox: %s", strerror(errno));
		goto done;
	}
	if (r->stdin_data) {
		if (pipe2(in, O_CLOEXEC) < 0) {
			rc = err_set(ERR_IO, "cannot create a pipe: %s", strerror(errno));
			goto done;
		}
	} else {
		in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in[0] < 0) {
			rc = err_set(ERR_IO, "cannot open /dev/null: %s", strerror(errno));
			goto done;
		}
	}
	memset(&l, 0, sizeof(l));
	l.b = b;
	l.ni = ni;
	l.in_r = in[0];
	l.out_w = out[1];
	l.err_w = err[1];
	l.rep_w = rep[1];
	l.life_r = life[0];
	l.cg_join = sbx_cg_join_fds(ni->cg);
	l.a_uid = b->uid_base;
	l.netns_fd = ni->netns_fd;
	sbx_cg_before(ni->cg);

	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&ni->pidfd;
	ca.exit_signal = SIGCHLD;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0 && errno == ENOSYS) {
		/* before Linux 5.3: clone(2) (x86-64 argument order), no pidfd */
		ni->pidfd = -1;
		pid = syscall(SYS_clone, (unsigned long)(ca.flags & ~(uint64_t)CLONE_PIDFD) | SIGCHLD, 0, 0, 0, 0);
	}
	if (pid == 0)
		a_main(&l);
	if (pid < 0) {
		rc = err_set(ERR_SANDBOX,
			     "cannot create the sandbox's namespaces: %s (the ns backend needs root "
			     "and a kernel with user, pid, mount and network namespaces)",
			     strerror(errno));
		ni->pidfd = -1;
		goto done;
	}
	ni->pid = (pid_t)pid;
	ni->out_r = out[0];
	ni->err_r = err[0];
	ni->rep_r = rep[0];
	ni->life_w = life[1];
	ni->in_w = in[1];
	out[0] = err[0] = rep[0] = life[1] = in[1] = -1;
	fcntl(ni->out_r, F_SETFL, O_NONBLOCK);
	fcntl(ni->err_r, F_SETFL, O_NONBLOCK);
	fcntl(ni->rep_r, F_SETFL, O_NONBLOCK);
	if (ni->in_w >= 0)
		fcntl(ni->in_w, F_SETFL, O_NONBLOCK);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&rep[1]);
	close_fd(&life[0]);
	close_fd(&in[0]);

	/* the sandbox is up when A says so; a setup failure comes back here */
	while (!ni->ready && !ni->setup_failed && !ni->exec_failed && !ni->reaped) {
		int64_t left = sbx_ms_left(b);
		if (left == 0) {
			r->timed_out = 1;
			ns_kill(b);
			break;
		}
		step(b, left > 1000 ? 1000 : left);
		if (ni->rep_r < 0 && !ni->ready && !ni->exec_failed)
			reap(ni, 1);
	}
	if (ni->setup_failed || (!ni->ready && !ni->exec_failed && !r->timed_out && ni->reaped && !ni->got_status)) {
		ns_kill(b);
		reap(ni, 1);
		if (ni->setup_failed)
			rc = err_set(ERR_SANDBOX, "sandbox setup failed: %s", ni->exec_msg);
		else
			rc = err_set(ERR_SANDBOX, "the sandbox died while being set up (status 0x%x)",
				     (unsigned)ni->a_status);
		goto done;
	}
done:
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&rep[0]);
	close_fd(&rep[1]);
	close_fd(&life[0]);
	close_fd(&life[1]);
	close_fd(&in[0]);
	close_fd(&in[1]);
	if (rc < 0)
		run_reset(ni);
	return rc;
}

static int ns_wait(sbx *b, int64_t slice_ms)
{
	ns_impl *ni = b->impl;
	sbx_run_state *r = &b->run;
	int64_t until = slice_ms < 0 ? INT64_MAX : util_mono_ms() + slice_ms;

	while (!ni->reaped) {
		int64_t ms, left;
		int rc = sbx_wait_pass(b, until, &ms, &left);

		if (rc < 0)
			return rc;
		if (!r->timed_out && left < ms)
			ms = left;
		if (ni->pidfd < 0 && ms > 10)
			ms = 10; /* no pidfd: poll for A's exit */
		step(b, ms);
		if (ni->pidfd < 0)
			reap(ni, 0);
	}
	/* A is gone, and with it every process of the sandbox: drain the pipes */
	for (int i = 0; i < 1000 && (ni->out_r >= 0 || ni->err_r >= 0 || ni->rep_r >= 0); i++)
		step(b, 10);
	sbx_cg_kill(ni->cg);
	r->finished = 1;
	return 0;
}

static int ns_collect(sbx *b, sbx_result *out)
{
	ns_impl *ni = b->impl;
	int st = ni->got_status ? ni->cmd_status : ni->a_status;

	if (WIFEXITED(st)) {
		out->exit_code = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		out->term_signal = WTERMSIG(st);
		out->exit_code = 128 + out->term_signal;
	}
	if (ni->exec_failed)
		snprintf(out->reason, sizeof(out->reason), "%s (exit status %d)", ni->exec_msg,
			 out->exit_code);
	out->cpu_ms = (int64_t)(ni->ru.ru_utime.tv_sec + ni->ru.ru_stime.tv_sec) * 1000 +
		      (ni->ru.ru_utime.tv_usec + ni->ru.ru_stime.tv_usec) / 1000;
	sbx_cg_after(ni->cg, out);
	/* a shell reports a child killed by SIGXFSZ as 128+25 */
	out->fsize_limited = out->term_signal == SIGXFSZ || out->exit_code == 128 + SIGXFSZ;
	if (b->workspace)
		out->disk_full = sbx_fs_full(b->workspace);
	run_reset(ni);
	return 0;
}

const sbx_ops sbx_ns_ops = {
	.name = "ns",
	.prepare = ns_prepare,
	.start = ns_start,
	.wait = ns_wait,
	.kill = ns_kill,
	.collect = ns_collect,
	.destroy = ns_destroy,
};
