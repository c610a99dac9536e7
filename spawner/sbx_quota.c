/* sbx_quota — the workspace side of the sandbox: disk quotas (a size-capped
 * tmpfs, or an ext4 image on a loop device), ownership by the box's sandbox
 * user, and reading files a sandbox wrote without following its links. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- ownership ---- */

static uid_t g_uid;
static gid_t g_gid;
static int g_chown_err;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	if (st->st_uid == g_uid && st->st_gid == g_gid)
		return 0;
	if (lchown(path, g_uid, g_gid) < 0 && errno != ENOENT) {
		g_chown_err = errno;
		return 1;
	}
	return 0;
}

int sbx_chown_tree(const char *dir, uid_t uid, gid_t gid)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int rc;

	/* nftw has no user pointer: serialise the globals */
	pthread_mutex_lock(&lock);
	g_uid = uid;
	g_gid = gid;
	g_chown_err = 0;
	rc = nftw(dir, chown_one, 32, FTW_PHYS | FTW_MOUNT);
	if (rc != 0)
		rc = err_set(ERR_IO, "cannot give the workspace %s to the sandbox user %u: %s", dir,
			     (unsigned)uid, strerror(g_chown_err ? g_chown_err : errno));
	pthread_mutex_unlock(&lock);
	return rc;
}

int sbx_fs_full(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) < 0)
		return 0;
	/* less than 1 MiB or 1% left counts as full: file systems keep some
	 * blocks back (ext4's delayed allocation), so ENOSPC comes before 0 */
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return avail < (1u << 20) || avail * 100 < total;
}

/* ---- quotas ---- */

static int dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return -1;
	for (e = readdir(d); e; e = readdir(d))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    strcmp(e->d_name, "lost+found") != 0)
			empty = 0;
	closedir(d);
	return empty;
}

static int is_mountpoint(const char *dir)
{
	struct stat a, b;
	char up[PATH_MAX];

	snprintf(up, sizeof(up), "%s/..", dir);
	if (stat(dir, &a) < 0 || stat(up, &b) < 0)
		return 0;
	return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static int run_prog(char *const argv[])
{
	pid_t pid;
	int st, rc;
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -rc;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Attaches `img` to a free loop device; *out_fd keeps the device open (with
 * autoclear, closing the last fd before the mount would detach it). */
static int loop_attach(const char *img, char *dev, size_t cap, int *out_fd)
{
	int ctl = -1, fd = -1, lfd = -1, rc = 0;
	long n;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return err_set(ERR_SANDBOX, "loop quota: /dev/loop-control: %s (use the tmpfs quota)",
			       strerror(errno));
	fd = open(img, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		rc = err_set(ERR_IO, "loop quota: %s: %s", img, strerror(errno));
		goto done;
	}
	for (int tries = 0; tries < 8; tries++) {
		struct loop_config cfg;
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			rc = err_set(ERR_SANDBOX, "loop quota: no free loop device: %s", strerror(errno));
			goto done;
		}
		snprintf(dev, cap, "/dev/loop%ld", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			rc = err_set(ERR_SANDBOX, "loop quota: %s: %s", dev, strerror(errno));
			goto done;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)fd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			*out_fd = lfd; /* attached; autoclear detaches it at unmount */
			lfd = -1;
			goto done;
		}
		close(lfd);
		lfd = -1;
		if (errno != EBUSY) {
			rc = err_set(ERR_SANDBOX, "loop quota: attach %s: %s", dev, strerror(errno));
			goto done;
		}
	}
	rc = err_set(ERR_SANDBOX, "loop quota: every loop device is busy");
done:
	if (lfd >= 0)
		close(lfd);
	if (fd >= 0)
		close(fd);
	if (ctl >= 0)
		close(ctl);
	return rc;
}

int sbx_quota_mount(const char *dir, int64_t bytes, sbx_quota_kind kind)
{
	char opts[128], img[PATH_MAX], dev[64];
	int rc = 0, e, lfd = -1;

	if (bytes < (1 << 20))
		return err_set(ERR_INVALID, "a workspace quota must be at least 1 MiB");
	e = dir_empty(dir);
	if (e < 0)
		return err_set(ERR_INVALID, "workspace %s: %s (create it first)", dir, strerror(errno));
	if (!e)
		return err_set(ERR_CONFLICT,
			       "workspace %s is not empty: mount the quota first, then put the "
			       "project in it", dir);
	if (is_mountpoint(dir))
		return err_set(ERR_CONFLICT, "workspace %s is a mount point already", dir);
	if (kind == SBX_QUOTA_TMPFS) {
		snprintf(opts, sizeof(opts), "size=%lld,mode=0755", (long long)bytes);
		if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
			return err_set(ERR_SANDBOX, "cannot mount a %lld-byte tmpfs on %s: %s (needs root)",
				       (long long)bytes, dir, strerror(errno));
		return 0;
	}
	if (kind != SBX_QUOTA_LOOP)
		return err_set(ERR_INVALID, "unknown quota kind %d", (int)kind);
	snprintf(img, sizeof(img), "%s.img", dir);
	{
		int fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return err_set(ERR_IO, "cannot create %s: %s", img, strerror(errno));
		rc = ftruncate(fd, bytes) < 0 ? -errno : 0;
		close(fd);
		if (rc < 0) {
			unlink(img);
			return err_set(ERR_IO, "cannot size %s: %s", img, strerror(-rc));
		}
	}
	{
		char *const argv[] = {"mkfs.ext4", "-q", "-F", "-m", "0", "-E",
				      "nodiscard,lazy_itable_init=1", img, NULL};
		rc = run_prog(argv);
		if (rc < 0) {
			unlink(img);
			return err_set(ERR_SANDBOX,
				       "mkfs.ext4 failed on %s (is e2fsprogs installed?): %s", img,
				       strerror(-rc));
		}
	}
	rc = loop_attach(img, dev, sizeof(dev), &lfd);
	if (rc < 0) {
		unlink(img);
		return rc;
	}
	if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0) {
		e = errno;
		close(lfd); /* autoclear detaches the device */
		unlink(img);
		return err_set(ERR_SANDBOX, "cannot mount %s on %s: %s", dev, dir, strerror(e));
	}
	close(lfd);
	{
		/* an empty file system: no lost+found for the project to see */
		char lf[PATH_MAX];
		snprintf(lf, sizeof(lf), "%s/lost+found", dir);
		rmdir(lf);
	}
	return 0;
}

int sbx_quota_unmount(const char *dir)
{
	char img[PATH_MAX];

	if (umount2(dir, MNT_DETACH) < 0)
		return err_set(ERR_IO, "cannot unmount the workspace quota on %s: %s", dir,
			       strerror(errno));
	snprintf(img, sizeof(img), "%s.img", dir);
	if (unlink(img) < 0 && errno != ENOENT)
		log_warn("sandbox", "cannot remove %s: %s", img, strerror(errno));
	return 0;
}

/* ---- reading what a sandbox wrote ---- */

int sbx_workspace_read(buf *out, const char *dir, const char *rel, size_t max)
{
	struct open_how how = {
		/* non-blocking: a FIFO planted by the sandbox must not hang us */
		.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	int dfd = -1, fd = -1, rc = 0;
	struct stat st;

	buf_init(out, max);
	if (!rel || !*rel || rel[0] == '/')
		return err_set(ERR_INVALID, "'%s' must be a path relative to the workspace", rel ? rel : "");
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(ERR_NOTFOUND, "workspace %s: %s", dir, strerror(errno));
	fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP || e == EXDEV)
			rc = err_set(ERR_DENIED,
				     "'%s' is, or passes through, a symbolic link or leaves the "
				     "workspace: not followed", rel);
		else
			rc = err_set(e == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", rel, strerror(e));
		goto done;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = err_set(ERR_DENIED, "'%s' is not a regular file", rel);
		goto done;
	}
	fcntl(fd, F_SETFL, 0);
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(ERR_IO, "%s: %s", rel, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		rc = buf_append(out, chunk, (size_t)n);
		if (rc < 0) {
			rc = err_set(ERR_TOOBIG, "'%s' is larger than %zu bytes", rel, max);
			goto done;
		}
	}
done:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (rc < 0)
		buf_free(out);
	return rc;
}
