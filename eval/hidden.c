#include "eval/hidden.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/gitx.h"
#include "core/util.h"
#include "spawner/sandbox.h"
#include "spawner/testsum.h"
#include "spawner/toolenv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTPUT_CAP ((size_t)1 << 20)

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int ev_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_set(ERR_IO, "%s: %s", path, strerror(errno));
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return err_set(ERR_IO, "cannot remove %s: %s", path, strerror(errno));
	return 0;
}

/* Copies the files under `src` into `dst` at the same relative paths. */
static int copy_tree(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return err_set(ERR_IO, "cannot read %s: %s", src, strerror(errno));
	if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
		closedir(d);
		return err_set(ERR_IO, "cannot create %s: %s", dst, strerror(errno));
	}
	for (e = readdir(d); e && rc == 0; e = readdir(d)) {
		char s[PATH_MAX], t[PATH_MAX];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, e->d_name);
		if (lstat(s, &st) < 0) {
			rc = err_set(ERR_IO, "%s: %s", s, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			rc = copy_tree(s, t);
		} else if (S_ISREG(st.st_mode)) {
			char chunk[65536];
			ssize_t r = 0;
			int in = open(s, O_RDONLY | O_CLOEXEC);
			int out = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
			if (in < 0 || out < 0)
				rc = err_set(ERR_IO, "cannot copy %s: %s", s, strerror(errno));
			for (r = rc == 0 ? read(in, chunk, sizeof(chunk)) : 0; rc == 0 && r > 0;
			     r = read(in, chunk, sizeof(chunk)))
				if (write(out, chunk, (size_t)r) != r)
					rc = err_set(ERR_IO, "cannot write %s: %s", t, strerror(errno));
			if (rc == 0 && r < 0)
				rc = err_set(ERR_IO, "cannot read %s: %s", s, strerror(errno));
			if (in >= 0)
				close(in);
			if (out >= 0)
				close(out);
		}
	}
	closedir(d);
	return rc;
}

/* A clean checkout of `branch` of `repo` in `dir` (which must not exist):
 * a new repository that fetches the branch through an anonymous remote
 * (nothing read from any configuration; as spawner/gitws.c does, which
 * also keeps libgit2 1.5 from leaking a regex match per configuration
 * entry), on that branch. */
static int checkout(const char *repo, const char *branch, const char *dir)
{
	git_repository_init_options io;
	git_remote_create_options ro;
	git_fetch_options fo;
	git_checkout_options co;
	git_repository *r = NULL;
	git_remote *remote = NULL;
	const git_error *ge;
	char spec[300], ref[200];
	char *specs[1] = {spec};
	git_strarray arr = {specs, 1};
	int grc, rc = gitx_init();

	if (rc < 0)
		return rc;
	snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
	snprintf(spec, sizeof(spec), "+%s:%s", ref, ref);
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = branch;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	grc = git_repository_init_ext(&r, dir, &io);
	if (grc >= 0) {
		ro.repository = r;
		grc = git_remote_create_with_opts(&remote, repo, &ro);
	}
	if (grc >= 0)
		grc = git_remote_fetch(remote, &arr, &fo, NULL);
	if (grc >= 0)
		grc = git_repository_set_head(r, ref);
	if (grc >= 0)
		grc = git_checkout_head(r, &co);
	git_remote_free(remote);
	git_repository_free(r);
	if (grc < 0) {
		ge = git_error_last();
		rc = err_set(ERR_GIT, "git: %s has no %s to check out: %s", repo, branch,
			     ge && ge->message ? ge->message : "unknown error");
		git_error_clear();
	}
	return rc;
}

static int write_log(const char *log, const ev_task *t, const sbx_result *res)
{
	FILE *f;

	if (!log)
		return 0;
	f = fopen(log, "w");
	if (!f)
		return err_set(ERR_IO, "cannot write %s: %s", log, strerror(errno));
	fprintf(f, "$ %s\n", t->hidden_command);
	fwrite(res->out.data ? res->out.data : "", 1, res->out.len, f);
	fprintf(f, "\n[exit %d%s%s]\n", res->exit_code, res->reason[0] ? ": " : "", res->reason);
	fclose(f);
	return 0;
}

int ev_hidden_run(const ev_task *t, const char *repo, const char *work, const ev_sandbox *sb,
		  const char *log, int keep, ev_hidden *out)
{
	const char *argv[4] = {"sh", "-c", NULL, NULL};
	char hidden[1200], err[400];
	buf script;
	sbx_opts o;
	sbx_cmd c;
	sbx_result res;
	sbx *box = NULL;
	spw_testsum sum;
	int rc;
	int64_t t0 = util_mono_ms();

	memset(out, 0, sizeof(*out));
	memset(&res, 0, sizeof(res));
	/* one stream, in the order written: test runners report on stderr */
	buf_init(&script, 0);
	buf_puts(&script, "exec 2>&1\n");
	buf_puts(&script, t->hidden_command);
	argv[2] = buf_cstr(&script);
	out->passed = out->failed = out->total = -1;
	rc = ev_rmtree(work);
	if (rc < 0) {
		buf_free(&script);
		return rc;
	}
	rc = checkout(repo, "main", work);
	if (rc < 0) {
		snprintf(out->reason, sizeof(out->reason), "%s", err_last());
		err_clear();
		ev_rmtree(work);
		buf_free(&script);
		return 0;
	}
	/* the hidden files, after the checkout: they are not part of the result */
	snprintf(hidden, sizeof(hidden), "%s/hidden", t->dir);
	rc = copy_tree(hidden, work);
	if (rc < 0)
		goto done;
	memset(&o, 0, sizeof(o));
	rc = sbx_backend_parse(sb && sb->backend && *sb->backend ? sb->backend : "ns", &o.backend);
	if (rc < 0)
		goto done;
	o.workspace = work;
	o.mem_bytes = (int64_t)1 << 30;
	o.pids = 256;
	o.cpus = 1;
	o.allow_degraded = sb ? sb->allow_degraded : 0;
	o.image = sb && sb->image && *sb->image ? sb->image : NULL;
	o.runtime = sb && sb->runtime && *sb->runtime ? sb->runtime : NULL;
	rc = sbx_new(&box, &o);
	if (rc < 0)
		goto done;
	memset(&c, 0, sizeof(c));
	c.argv = argv;
	c.env = spw_toolenv(0);
	c.timeout_ms = t->hidden_timeout_s * 1000;
	c.output_cap = OUTPUT_CAP;
	rc = sbx_run(box, &c, &res);
	if (rc < 0)
		goto done;
	out->ran = 1;
	out->exit_code = res.exit_code;
	out->timed_out = res.timed_out;
	spw_testsum_parse(res.out.data ? res.out.data : "", res.out.len, res.exit_code, &sum);
	out->passed = sum.passed;
	out->failed = sum.failed;
	out->total = sum.total;
	out->solved = res.exit_code == 0 && !res.timed_out;
	if (res.timed_out)
		snprintf(out->reason, sizeof(out->reason), "timed out after %lld s",
			 (long long)t->hidden_timeout_s);
	else if (!out->solved && sum.total > 0)
		snprintf(out->reason, sizeof(out->reason), "%d of %d hidden tests fail (exit %d)",
			 sum.failed, sum.total, res.exit_code);
	else if (!out->solved)
		snprintf(out->reason, sizeof(out->reason), "the hidden tests fail (exit %d)",
			 res.exit_code);
	rc = write_log(log, t, &res);
done:
	out->seconds = (double)(util_mono_ms() - t0) / 1000.0;
	if (rc < 0)
		snprintf(err, sizeof(err), "%s", err_last());
	sbx_free(box);
	sbx_result_free(&res);
	buf_free(&script);
	if (!keep)
		ev_rmtree(work);
	if (rc < 0) {
		snprintf(out->reason, sizeof(out->reason), "the hidden tests could not run: %s", err);
		return err_set(rc, "%s", err);
	}
	return 0;
}
