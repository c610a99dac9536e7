#include "nodes/repo.h"
#include "core/err.h"
#include "core/gitx.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int git_fail(int grc, const char *what, const char *path)
{
	const git_error *e = git_error_last();
	int code = grc == GIT_ENOTFOUND ? ERR_NOTFOUND : ERR_GIT;

	err_set(code, "git: %s (%s): %s", what, path, e && e->message ? e->message : "unknown error");
	git_error_clear();
	return code;
}

static int open_repo(git_repository **out, const char *path)
{
	int rc = gitx_init(), grc;

	if (rc < 0)
		return rc;
	grc = git_repository_open_bare(out, path);
	return grc < 0 ? git_fail(grc, "cannot open the repository", path) : 0;
}

static int add_file(git_repository *r, git_index *idx, const nd_repo_file *f)
{
	git_index_entry e;
	git_oid blob;
	int grc = git_blob_create_from_buffer(&blob, r, f->content, strlen(f->content));

	if (grc < 0)
		return grc;
	memset(&e, 0, sizeof(e));
	e.mode = GIT_FILEMODE_BLOB;
	e.path = f->path;
	/* scripts stay executable where a build expects them */
	if (strncmp(f->content, "#!", 2) == 0)
		e.mode = GIT_FILEMODE_BLOB_EXECUTABLE;
	git_oid_cpy(&e.id, &blob);
	return git_index_add(idx, &e);
}

int nd_repo_create(const char *path, const nd_repo_file *files, size_t n, const char *message,
		   char out_head[41])
{
	git_repository *r = NULL;
	git_repository_init_options io;
	git_index *idx = NULL;
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_reference *ref = NULL;
	git_oid tree_id, commit_id, existing;
	int grc, rc = gitx_init();

	out_head[0] = '\0';
	if (rc < 0)
		return rc;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = "main";
	io.description = "A project of orchestrator";
	grc = git_repository_init_ext(&r, path, &io);
	if (grc >= 0)
		grc = git_index_new(&idx);
	for (size_t i = 0; grc >= 0 && i < n; i++)
		grc = add_file(r, idx, &files[i]);
	if (grc >= 0)
		grc = git_index_write_tree_to(&tree_id, idx, r);
	if (grc >= 0)
		grc = git_tree_lookup(&tree, r, &tree_id);
	/* a fixed time: the same scaffold gives the same commit */
	if (grc >= 0)
		grc = git_signature_new(&sig, "orchestrator", "factory@orchestrator.invalid",
					1700000000, 0);
	if (grc >= 0)
		grc = git_commit_create(&commit_id, r, NULL, sig, sig, "UTF-8", message, tree, 0,
					NULL);
	if (grc < 0) {
		rc = git_fail(grc, "cannot create the repository", path);
		goto done;
	}
	grc = git_reference_name_to_id(&existing, r, "refs/heads/main");
	if (grc == 0 && !git_oid_equal(&existing, &commit_id)) {
		git_commit *c = NULL;
		/* left by an attempt that did not finish: replace it, but never
		 * real history */
		int parents = git_commit_lookup(&c, r, &existing) == 0 ? (int)git_commit_parentcount(c)
								       : -1;
		git_commit_free(c);
		if (parents != 0) {
			rc = err_set(ERR_CONFLICT, "git: %s exists with history of its own; "
						   "remove it or choose another ORCH_REPOS_DIR", path);
			goto done;
		}
	}
	git_error_clear();
	grc = git_reference_create(&ref, r, "refs/heads/main", &commit_id, 1,
				   "orchestrator: the scaffold");
	if (grc < 0) {
		rc = git_fail(grc, "cannot point main at the scaffold", path);
		goto done;
	}
	git_oid_tostr(out_head, 41, &commit_id);
done:
	git_reference_free(ref);
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(idx);
	git_repository_free(r);
	return rc;
}

static int resolve(git_repository *r, const char *rev, git_oid *out, const char *path)
{
	char ref[300];
	git_object *obj = NULL;
	int grc;

	snprintf(ref, sizeof(ref), "refs/heads/%s", rev);
	grc = git_reference_name_to_id(out, r, ref);
	if (grc == 0)
		return 0;
	grc = git_revparse_single(&obj, r, rev);
	if (grc == 0) {
		git_object *c = NULL;
		grc = git_object_peel(&c, obj, GIT_OBJECT_COMMIT);
		if (grc == 0)
			git_oid_cpy(out, git_object_id(c));
		git_object_free(c);
	}
	git_object_free(obj);
	if (grc < 0) {
		git_error_clear();
		return err_set(ERR_NOTFOUND, "git: %s has no branch or commit '%s'", path, rev);
	}
	return 0;
}

typedef struct patch_ctx {
	buf *out;
	size_t cap;
	int cut;
} patch_ctx;

static int print_line(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *l,
		      void *payload)
{
	patch_ctx *pc = payload;

	(void)d;
	(void)h;
	if (pc->cut)
		return 0;
	if (pc->out->len + l->content_len + 2 > pc->cap) {
		pc->cut = 1;
		return 0;
	}
	if (l->origin == GIT_DIFF_LINE_CONTEXT || l->origin == GIT_DIFF_LINE_ADDITION ||
	    l->origin == GIT_DIFF_LINE_DELETION)
		buf_putc(pc->out, l->origin);
	buf_append(pc->out, l->content, l->content_len);
	return 0;
}

int nd_repo_diff(const char *path, const char *rev, const char *against, size_t cap, buf *patch,
		 int *files, int *insertions, int *deletions)
{
	git_repository *r = NULL;
	git_oid a, b, base;
	git_commit *ca = NULL, *cb = NULL;
	git_tree *ta = NULL, *tb = NULL;
	git_diff *diff = NULL;
	git_diff_stats *stats = NULL;
	git_diff_options o;
	patch_ctx pc = {patch, cap, 0};
	int grc, rc = open_repo(&r, path);

	if (rc == 0)
		rc = resolve(r, rev, &b, path);
	if (rc == 0)
		rc = resolve(r, against, &a, path);
	if (rc < 0)
		goto done;
	grc = git_merge_base(&base, r, &a, &b);
	if (grc == 0)
		git_oid_cpy(&a, &base);
	git_error_clear();
	git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
	o.context_lines = 3;
	grc = git_commit_lookup(&ca, r, &a);
	if (grc >= 0)
		grc = git_commit_lookup(&cb, r, &b);
	if (grc >= 0)
		grc = git_commit_tree(&ta, ca);
	if (grc >= 0)
		grc = git_commit_tree(&tb, cb);
	if (grc >= 0)
		grc = git_diff_tree_to_tree(&diff, r, ta, tb, &o);
	if (grc >= 0)
		grc = git_diff_get_stats(&stats, diff);
	if (grc >= 0)
		grc = git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, print_line, &pc);
	if (grc < 0) {
		rc = git_fail(grc, "cannot compute the diff", path);
		goto done;
	}
	if (pc.cut)
		buf_printf(patch, "\n[... the diff is longer than %zu bytes and was cut here ...]\n",
			   cap);
	if (files)
		*files = (int)git_diff_stats_files_changed(stats);
	if (insertions)
		*insertions = (int)git_diff_stats_insertions(stats);
	if (deletions)
		*deletions = (int)git_diff_stats_deletions(stats);
done:
	git_diff_stats_free(stats);
	git_diff_free(diff);
	git_tree_free(ta);
	git_tree_free(tb);
	git_commit_free(ca);
	git_commit_free(cb);
	git_repository_free(r);
	return rc;
}

/* --- existing repositories (a change, `new --repo`) --- */

int nd_repo_check_local(const char *path, char *out, size_t cap)
{
	git_repository *r = NULL;
	char real[4096];
	int grc, rc = gitx_init();

	out[0] = '\0';
	if (rc < 0)
		return rc;
	if (!realpath(path, real))
		return err_set(ERR_NOTFOUND, "%s does not exist (give the path of a git repository)",
			       path);
	grc = git_repository_open_ext(&r, real, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	git_repository_free(r);
	if (grc < 0) {
		git_error_clear();
		return err_set(ERR_INVALID, "%s is not a git repository (give the top folder of one, "
					    "or its URL)", path);
	}
	if (strlen(real) >= cap)
		return err_set(ERR_TOOBIG, "the path %s is too long", real);
	snprintf(out, cap, "%s", real);
	return 0;
}

/* Creates the bare repository at `path` (kept when it exists) with HEAD on
 * `branch`. */
static int init_bare(git_repository **out, const char *path, const char *branch)
{
	git_repository_init_options io;
	char head[300];
	int grc;

	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = branch;
	io.description = "A change by orchestrator";
	grc = git_repository_init_ext(out, path, &io);
	if (grc < 0)
		return git_fail(grc, "cannot create the project's repository", path);
	snprintf(head, sizeof(head), "refs/heads/%s", branch);
	grc = git_repository_set_head(*out, head);
	return grc < 0 ? git_fail(grc, "cannot set the repository's HEAD", path) : 0;
}

int nd_repo_init(const char *path, const char *branch)
{
	git_repository *r = NULL;
	int rc = gitx_init();

	if (rc == 0)
		rc = init_bare(&r, path, branch);
	git_repository_free(r);
	return rc;
}

/* The branch HEAD names in `src` (a work tree's current branch). */
static int head_branch(git_repository *src, const char *path, char *out, size_t cap)
{
	git_reference *head = NULL;
	int grc = git_repository_head(&head, src);

	if (grc < 0 || !git_reference_is_branch(head)) {
		git_reference_free(head);
		git_error_clear();
		return err_set(ERR_INVALID, "%s is on no branch (a detached or empty HEAD): name the "
					    "branch to change (--branch)", path);
	}
	snprintf(out, cap, "%s", git_reference_shorthand(head));
	git_reference_free(head);
	return 0;
}

int nd_repo_import_local(const char *src, const char *dst, const char *branch, char *out_branch,
			 size_t cap, char out_head[41])
{
	git_repository *s = NULL, *d = NULL;
	git_remote *remote = NULL;
	git_remote_create_options ro;
	git_fetch_options fo;
	git_oid tip;
	char spec[600], ref[300];
	char *specs[1] = {spec};
	git_strarray arr = {specs, 1};
	int grc, rc = gitx_init();

	out_head[0] = '\0';
	if (rc < 0)
		return rc;
	grc = git_repository_open_ext(&s, src, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (grc < 0) {
		rc = git_fail(grc, "cannot open the repository to change", src);
		goto done;
	}
	if (branch && *branch)
		snprintf(out_branch, cap, "%s", branch);
	else
		rc = head_branch(s, src, out_branch, cap);
	if (rc < 0)
		goto done;
	snprintf(ref, sizeof(ref), "refs/heads/%s", out_branch);
	grc = git_reference_name_to_id(&tip, s, ref);
	if (grc < 0) {
		git_error_clear();
		rc = err_set(ERR_NOTFOUND, "%s has no branch %s", src, out_branch);
		goto done;
	}
	rc = init_bare(&d, dst, out_branch);
	if (rc < 0)
		goto done;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = d;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	snprintf(spec, sizeof(spec), "+%s:%s", ref, ref);
	grc = git_remote_create_with_opts(&remote, src, &ro);
	if (grc >= 0)
		grc = git_remote_fetch(remote, &arr, &fo, NULL);
	if (grc < 0) {
		rc = git_fail(grc, "cannot copy the branch into the project's repository", src);
		goto done;
	}
	git_oid_tostr(out_head, 41, &tip);
done:
	git_remote_free(remote);
	git_repository_free(d);
	git_repository_free(s);
	return rc;
}

int nd_repo_set_branch(const char *path, const char *branch, char out_head[41])
{
	git_repository *r = NULL;
	git_oid tip;
	char ref[300];
	int grc, rc = open_repo(&r, path);

	out_head[0] = '\0';
	if (rc < 0)
		return rc;
	snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
	grc = git_reference_name_to_id(&tip, r, ref);
	if (grc == 0)
		grc = git_repository_set_head(r, ref);
	if (grc < 0)
		rc = git_fail(grc, "the project's repository lacks the imported branch", path);
	else
		git_oid_tostr(out_head, 41, &tip);
	git_repository_free(r);
	return rc;
}

int nd_repo_has(const char *path, const char *rev, const char *file)
{
	git_repository *r = NULL;
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	git_oid id;
	int found = 0;

	if (open_repo(&r, path) < 0 || resolve(r, rev, &id, path) < 0) {
		err_clear();
		git_repository_free(r);
		return 0;
	}
	if (git_commit_lookup(&c, r, &id) == 0 && git_commit_tree(&t, c) == 0 &&
	    git_tree_entry_bypath(&e, t, file) == 0)
		found = 1;
	git_error_clear();
	git_tree_entry_free(e);
	git_tree_free(t);
	git_commit_free(c);
	git_repository_free(r);
	return found;
}
