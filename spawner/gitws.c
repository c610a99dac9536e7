#include "spawner/gitws.h"
#include "core/err.h"
#include "core/gitx.h"
#include "core/log.h"
#include "core/redact.h"

#include <git2.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct spw_git {
	git_repository *host;   /* bare clone, work tree set to the workspace */
	char workspace[1024];
	char branch[128];
	char base_hex[GIT_OID_HEXSZ + 1];
	git_oid base;
	git_oid base_tree;
};

/* Translates libgit2's last error into ERR_GIT (ERR_AUTH for refused
 * credentials) with `what` in front. */
static int git_fail(int grc, const char *what)
{
	const git_error *e = git_error_last();
	const char *msg = e && e->message ? e->message : "unknown error";
	int code = ERR_GIT;

	if (grc == GIT_EAUTH || (e && e->klass == GIT_ERROR_HTTP && strstr(msg, "401")) ||
	    strstr(msg, "authentication"))
		code = ERR_AUTH;
	err_set(code, "git: %s: %s", what, msg);
	git_error_clear();
	return code;
}

/* --- credentials --- */

typedef struct cred_state {
	const spw_git_cred *cred;
	int tries;
} cred_state;

static int cred_cb(git_credential **out, const char *url, const char *user_from_url,
		   unsigned int allowed, void *payload)
{
	cred_state *st = payload;
	const char *secret = st && st->cred ? st->cred->secret : NULL;

	(void)url;
	if (!secret || !*secret || st->tries++ > 0)
		return GIT_PASSTHROUGH; /* no (more) credentials: the operation fails with auth */
	if ((allowed & GIT_CREDENTIAL_SSH_MEMORY) && strncmp(secret, "-----BEGIN", 10) == 0)
		return git_credential_ssh_key_memory_new(out, user_from_url ? user_from_url : "git",
							 NULL, secret, NULL);
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		const char *colon = strchr(secret, ':');
		char user[256];
		int rc;

		if (colon && (size_t)(colon - secret) < sizeof(user) && colon != secret) {
			memcpy(user, secret, (size_t)(colon - secret));
			user[colon - secret] = '\0';
			rc = git_credential_userpass_plaintext_new(out, user, colon + 1);
			sodium_memzero(user, sizeof(user));
			return rc;
		}
		return git_credential_userpass_plaintext_new(out, "x-access-token", secret);
	}
	return GIT_PASSTHROUGH;
}

static void set_callbacks(git_remote_callbacks *cb, cred_state *st)
{
	cb->credentials = cred_cb;
	cb->payload = st;
}

/* --- prepare --- */

static int resolve_base(git_repository *r, const char *base, git_oid *out)
{
	git_object *obj = NULL;
	git_commit *commit = NULL;
	char spec[320];
	int grc;

	if (!base || !*base) {
		grc = git_reference_name_to_id(out, r, "refs/orch/default");
		if (grc < 0)
			return git_fail(grc, "the repository has no default branch (is it empty?)");
		return 0;
	}
	/* a branch or tag of the project first, then a commit id */
	snprintf(spec, sizeof(spec), "refs/heads/%s", base);
	grc = git_revparse_single(&obj, r, spec);
	if (grc < 0) {
		snprintf(spec, sizeof(spec), "refs/tags/%s", base);
		grc = git_revparse_single(&obj, r, spec);
	}
	if (grc < 0)
		grc = git_revparse_single(&obj, r, base);
	if (grc < 0) {
		git_error_clear();
		return err_set(ERR_GIT, "git: the base '%s' is no branch, tag or commit of the "
					"repository", base);
	}
	grc = git_object_peel((git_object **)&commit, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (grc < 0)
		return git_fail(grc, "the base is not a commit");
	git_oid_cpy(out, git_commit_id(commit));
	git_commit_free(commit);
	return 0;
}

/* An in-memory remote for `url`: nothing is read from or written to any
 * configuration (no url.*.insteadOf rewriting either, which also keeps
 * libgit2 1.5 from leaking a regex match per configuration entry). */
static int remote_for(git_remote **out, git_repository *repo, const char *url)
{
	git_remote_create_options ro;

	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	return git_remote_create_with_opts(out, url, &ro);
}

/* Fetches `specs` from `url` into `repo` through an anonymous remote. */
static int fetch_into(git_repository *repo, const char *url, char **specs, size_t n,
		      cred_state *st, const char *what)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	git_strarray arr = {specs, n};
	int grc;

	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	set_callbacks(&fo.callbacks, st);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.prune = GIT_FETCH_NO_PRUNE;
	grc = remote_for(&remote, repo, url);
	if (grc >= 0)
		grc = git_remote_fetch(remote, &arr, &fo, NULL);
	git_remote_free(remote);
	return grc < 0 ? git_fail(grc, what) : 0;
}

/* A new spw_git whose host repository is a bare clone of `url` made in
 * `host_dir` by fetching the refspecs specs[0..n). The caller owns *out
 * (spw_git_free); on failure nothing is left to free. */
static int host_clone(spw_git **out, const char *url, cred_state *st, const char *host_dir,
		      char **specs, size_t n)
{
	spw_git *g;
	int rc, grc;

	*out = NULL;
	rc = gitx_init();
	if (rc < 0)
		return rc;
	g = calloc(1, sizeof(*g));
	if (!g)
		return err_set(ERR_NOMEM, "out of memory");
	grc = git_repository_init(&g->host, host_dir, 1);
	if (grc < 0)
		rc = git_fail(grc, "cannot create the host's repository");
	else
		rc = fetch_into(g->host, url, specs, n, st, "cannot clone the project repository");
	if (rc < 0) {
		spw_git_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int spw_git_prepare(spw_git **out, const char *url, const spw_git_cred *cred, const char *base,
		    const char *branch, const char *host_dir, const char *workspace)
{
	git_repository *agent = NULL;
	git_commit *bc = NULL;
	git_reference *ref = NULL;
	git_config *cfg = NULL;
	git_checkout_options co;
	cred_state st = {cred, 0};
	char head_spec[] = "+HEAD:refs/orch/default";
	char heads_spec[] = "+refs/heads/*:refs/heads/*";
	char tags_spec[] = "+refs/tags/*:refs/tags/*";
	char *host_specs[] = {heads_spec, tags_spec, head_spec};
	char task_spec[300], task_ref[160];
	char *agent_specs[] = {task_spec};
	spw_git *g;
	int rc, grc;

	*out = NULL;
	snprintf(task_ref, sizeof(task_ref), "refs/heads/%s", branch);
	snprintf(task_spec, sizeof(task_spec), "+%s:%s", task_ref, task_ref);

	/* 1. the host's bare copy of the project's branches and tags */
	rc = host_clone(&g, url, &st, host_dir, host_specs, 3);
	if (rc < 0)
		return rc;
	snprintf(g->workspace, sizeof(g->workspace), "%s", workspace);
	snprintf(g->branch, sizeof(g->branch), "%s", branch);
	/* 2. the base and the task's branch */
	rc = resolve_base(g->host, base && *base ? base : NULL, &g->base);
	if (rc < 0)
		goto done;
	git_oid_tostr(g->base_hex, sizeof(g->base_hex), &g->base);
	grc = git_commit_lookup(&bc, g->host, &g->base);
	if (grc < 0) {
		rc = git_fail(grc, "cannot read the base commit");
		goto done;
	}
	git_oid_cpy(&g->base_tree, git_commit_tree_id(bc));
	grc = git_branch_create(&ref, g->host, branch, bc, 1);
	if (grc < 0) {
		rc = git_fail(grc, "cannot create the task's branch");
		goto done;
	}
	git_reference_free(ref);
	ref = NULL;

	/* 3. the agent's repository in the workspace, on the task's branch,
	 * without a remote (the host's path means nothing in a sandbox) */
	grc = git_repository_init(&agent, workspace, 0);
	if (grc < 0) {
		rc = git_fail(grc, "cannot create the workspace's repository");
		goto done;
	}
	rc = fetch_into(agent, git_repository_path(g->host), agent_specs, 1, NULL,
			"cannot fill the workspace");
	if (rc < 0)
		goto done;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	grc = git_repository_set_head(agent, task_ref);
	if (grc >= 0)
		grc = git_checkout_head(agent, &co);
	if (grc < 0) {
		rc = git_fail(grc, "cannot check the task's branch out");
		goto done;
	}
	if (git_repository_config(&cfg, agent) == 0) {
		git_config_set_string(cfg, "user.name", "orchestrator agent");
		git_config_set_string(cfg, "user.email", "agent@orchestrator.invalid");
		git_config_free(cfg);
	}

	/* the host's view of the work tree */
	grc = git_repository_set_workdir(g->host, workspace, 0);
	if (grc < 0) {
		rc = git_fail(grc, "cannot attach the workspace");
		goto done;
	}
	rc = 0;
done:
	git_commit_free(bc);
	git_repository_free(agent);
	if (rc < 0) {
		spw_git_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void spw_git_free(spw_git *g)
{
	if (!g)
		return;
	git_repository_free(g->host);
	free(g);
}

const char *spw_git_base(const spw_git *g)
{
	return g->base_hex;
}

/* --- the diff --- */

static int hash_line(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *l,
		     void *payload)
{
	crypto_generichash_state *st = payload;

	(void)d;
	(void)h;
	crypto_generichash_update(st, (const unsigned char *)&l->origin, 1);
	crypto_generichash_update(st, (const unsigned char *)l->content, l->content_len);
	return 0;
}

int spw_git_fingerprint(spw_git *g, unsigned char out[32])
{
	git_diff_options o;
	git_diff *diff = NULL;
	git_tree *tree = NULL;
	crypto_generichash_state st;
	int grc, rc = 0;

	crypto_generichash_init(&st, NULL, 0, 32);
	git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
	o.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS |
		  GIT_DIFF_SHOW_UNTRACKED_CONTENT | GIT_DIFF_SHOW_BINARY;
	grc = git_tree_lookup(&tree, g->host, &g->base_tree);
	if (grc >= 0)
		grc = git_diff_tree_to_workdir(&diff, g->host, tree, &o);
	if (grc >= 0)
		grc = git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, hash_line, &st);
	if (grc < 0)
		rc = git_fail(grc, "cannot compare the workspace with the base");
	crypto_generichash_final(&st, out, 32);
	git_diff_free(diff);
	git_tree_free(tree);
	return rc;
}

static int diff_names(const git_diff_delta *d, float progress, void *payload)
{
	spw_diffstat *s = payload;
	size_t used = strlen(s->names);
	const char *path = d->new_file.path ? d->new_file.path : d->old_file.path;

	(void)progress;
	if (path && used + strlen(path) + 2 < sizeof(s->names))
		snprintf(s->names + used, sizeof(s->names) - used, "%s\n", path);
	return 0;
}

static int diffstat(spw_git *g, const git_oid *tree_id, spw_diffstat *out)
{
	git_tree *a = NULL, *b = NULL;
	git_diff *diff = NULL;
	git_diff_stats *stats = NULL;
	int grc, rc = 0;

	memset(out, 0, sizeof(*out));
	grc = git_tree_lookup(&a, g->host, &g->base_tree);
	if (grc >= 0)
		grc = git_tree_lookup(&b, g->host, tree_id);
	if (grc >= 0)
		grc = git_diff_tree_to_tree(&diff, g->host, a, b, NULL);
	if (grc >= 0)
		grc = git_diff_get_stats(&stats, diff);
	if (grc < 0) {
		rc = git_fail(grc, "cannot count the changes");
		goto done;
	}
	out->files = (int)git_diff_stats_files_changed(stats);
	out->insertions = (int)git_diff_stats_insertions(stats);
	out->deletions = (int)git_diff_stats_deletions(stats);
	for (size_t i = 0; i < git_diff_num_deltas(diff); i++)
		diff_names(git_diff_get_delta(diff, i), 0, out);
done:
	git_diff_stats_free(stats);
	git_diff_free(diff);
	git_tree_free(a);
	git_tree_free(b);
	return rc;
}

static void author(char *name, size_t ncap, char *email, size_t ecap)
{
	const char *a = getenv("ORCH_GIT_AUTHOR");
	const char *lt = a ? strchr(a, '<') : NULL;
	const char *gt = lt ? strchr(lt, '>') : NULL;

	snprintf(name, ncap, "orchestrator worker");
	snprintf(email, ecap, "worker@orchestrator.invalid");
	if (!a || !lt || !gt || lt == a)
		return;
	snprintf(name, ncap, "%.*s", (int)(lt - a), a);
	for (size_t n = strlen(name); n > 0 && name[n - 1] == ' '; n--)
		name[n - 1] = '\0';
	snprintf(email, ecap, "%.*s", (int)(gt - lt - 1), lt + 1);
}

int spw_git_commit(spw_git *g, const char *message, char out_commit[41], int *out_changed,
		   spw_diffstat *stat)
{
	git_index *idx = NULL;
	git_tree *base_tree = NULL, *tree = NULL;
	git_commit *parent = NULL;
	git_signature *sig = NULL;
	git_oid tree_id, commit_id;
	char *all[] = {"*"};
	git_strarray spec = {all, 1};
	char name[128], email[128], refname[160];
	int grc, rc = 0;

	*out_changed = 0;
	snprintf(out_commit, 41, "%s", g->base_hex);
	if (stat)
		memset(stat, 0, sizeof(*stat));
	grc = git_repository_index(&idx, g->host);
	if (grc >= 0)
		grc = git_tree_lookup(&base_tree, g->host, &g->base_tree);
	if (grc >= 0)
		grc = git_index_read_tree(idx, base_tree);
	if (grc < 0) {
		rc = git_fail(grc, "cannot read the base tree");
		goto done;
	}
	grc = git_index_add_all(idx, &spec, GIT_INDEX_ADD_DEFAULT, NULL, NULL);
	if (grc >= 0)
		grc = git_index_update_all(idx, &spec, NULL, NULL);
	if (grc >= 0)
		grc = git_index_write_tree(&tree_id, idx);
	if (grc < 0) {
		rc = git_fail(grc, "cannot record the workspace's files");
		goto done;
	}
	if (git_oid_equal(&tree_id, &g->base_tree))
		goto done; /* nothing changed */
	author(name, sizeof(name), email, sizeof(email));
	snprintf(refname, sizeof(refname), "refs/heads/%s", g->branch);
	grc = git_signature_now(&sig, name, email);
	if (grc >= 0)
		grc = git_tree_lookup(&tree, g->host, &tree_id);
	if (grc >= 0)
		grc = git_commit_lookup(&parent, g->host, &g->base);
	if (grc >= 0)
		grc = git_commit_create(&commit_id, g->host, NULL, sig, sig, "UTF-8", message, tree,
					1, (const git_commit **)&parent);
	if (grc >= 0) {
		git_reference *ref = NULL;

		grc = git_reference_create(&ref, g->host, refname, &commit_id, 1,
					   "orchestrator: the worker's commit");
		git_reference_free(ref);
	}
	if (grc < 0) {
		rc = git_fail(grc, "cannot commit the work");
		goto done;
	}
	git_oid_tostr(out_commit, 41, &commit_id);
	*out_changed = 1;
	if (stat)
		rc = diffstat(g, &tree_id, stat);
done:
	git_signature_free(sig);
	git_commit_free(parent);
	git_tree_free(tree);
	git_tree_free(base_tree);
	git_index_free(idx);
	return rc;
}

int spw_git_find_secrets(spw_git *g, const char *commit, char *out_path, size_t cap)
{
	git_commit *c = NULL;
	git_tree *a = NULL, *b = NULL;
	git_diff *diff = NULL;
	git_oid id;
	int grc, rc = 0;

	out_path[0] = '\0';
	grc = git_oid_fromstr(&id, commit);
	if (grc >= 0)
		grc = git_commit_lookup(&c, g->host, &id);
	if (grc >= 0)
		grc = git_commit_tree(&b, c);
	if (grc >= 0)
		grc = git_tree_lookup(&a, g->host, &g->base_tree);
	if (grc >= 0)
		grc = git_diff_tree_to_tree(&diff, g->host, a, b, NULL);
	if (grc < 0) {
		rc = git_fail(grc, "cannot read the work's changes");
		goto done;
	}
	for (size_t i = 0; i < git_diff_num_deltas(diff) && rc == 0; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		git_blob *blob = NULL;
		buf text;

		if (d->status == GIT_DELTA_DELETED || git_oid_is_zero(&d->new_file.id))
			continue;
		if (git_blob_lookup(&blob, g->host, &d->new_file.id) < 0) {
			rc = git_fail(-1, "cannot read a changed file");
			break;
		}
		buf_init(&text, 0);
		if (buf_append(&text, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) == 0) {
			size_t len = text.len;
			char *before = len ? malloc(len) : NULL;

			if (before)
				memcpy(before, text.data, len);
			redact_buf(&text);
			if (before && (text.len != len || memcmp(before, text.data, len) != 0)) {
				snprintf(out_path, cap, "%s", d->new_file.path);
				rc = 1;
			}
			if (before)
				sodium_memzero(before, len);
			free(before);
		}
		buf_free_wipe(&text);
		git_blob_free(blob);
	}
done:
	git_diff_free(diff);
	git_tree_free(a);
	git_tree_free(b);
	git_commit_free(c);
	return rc;
}

int spw_git_clean(spw_git *g, const char *commit)
{
	git_checkout_options co;
	git_object *obj = NULL;
	git_oid id;
	int grc;

	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED |
			       GIT_CHECKOUT_REMOVE_IGNORED | GIT_CHECKOUT_DONT_UPDATE_INDEX;
	grc = git_oid_fromstr(&id, commit);
	if (grc >= 0)
		grc = git_object_lookup(&obj, g->host, &id, GIT_OBJECT_COMMIT);
	if (grc >= 0)
		grc = git_checkout_tree(g->host, obj, &co);
	git_object_free(obj);
	if (grc < 0)
		return git_fail(grc, "cannot reset the workspace to the commit");
	return 0;
}

/* --- push --- */

typedef struct push_state {
	cred_state cred;
	char rejected[512];
} push_state;

static int push_ref_cb(const char *refname, const char *status, void *data)
{
	push_state *ps = data;

	if (status)
		snprintf(ps->rejected, sizeof(ps->rejected), "%s: %s", refname, status);
	return 0;
}

static int push_cred_cb(git_credential **out, const char *url, const char *user,
			unsigned int allowed, void *payload)
{
	push_state *ps = payload;
	return cred_cb(out, url, user, allowed, &ps->cred);
}

/* Pushes the refspecs specs[0..n) of the host repository to `url` with
 * `cred`; ps->rejected gets a reference the remote refused. Returns
 * libgit2's code, for the caller to translate while libgit2's error is
 * still set; *remote is the caller's (git_remote_free), also on failure. */
static int push_refs(spw_git *g, const char *url, const spw_git_cred *cred, char **specs,
		     size_t n, push_state *ps, git_remote **remote)
{
	git_push_options po;
	git_strarray refspecs = {specs, n};
	int grc;

	*remote = NULL;
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	memset(ps, 0, sizeof(*ps));
	ps->cred.cred = cred;
	po.callbacks.credentials = push_cred_cb;
	po.callbacks.push_update_reference = push_ref_cb;
	po.callbacks.payload = ps;
	grc = remote_for(remote, g->host, url);
	if (grc >= 0)
		grc = git_remote_push(*remote, &refspecs, &po);
	return grc;
}

int spw_git_push(spw_git *g, const char *url, const spw_git_cred *cred, const char *branch)
{
	git_remote *remote = NULL;
	push_state ps;
	char spec[300];
	char *specs[1] = {spec};
	int grc, rc = 0;

	snprintf(spec, sizeof(spec), "+refs/heads/%s:refs/heads/%s", branch, branch);
	grc = push_refs(g, url, cred, specs, 1, &ps, &remote);
	if (grc < 0)
		rc = git_fail(grc, "cannot push the task's branch");
	else if (ps.rejected[0])
		rc = err_set(ERR_GIT, "git: the project repository refused the push of %s",
			     ps.rejected);
	git_remote_free(remote);
	return rc;
}

/* --- merging and publishing --- */

int spw_git_open(spw_git **out, const char *url, const spw_git_cred *cred, const char *host_dir)
{
	cred_state st = {cred, 0};
	char heads_spec[] = "+refs/heads/*:refs/heads/*";
	char tags_spec[] = "+refs/tags/*:refs/tags/*";
	char *specs[] = {heads_spec, tags_spec};

	return host_clone(out, url, &st, host_dir, specs, 2);
}

int spw_git_branch_tip(spw_git *g, const char *branch, char out[41])
{
	char ref[300];
	git_oid id;
	int grc;

	out[0] = '\0';
	snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
	grc = git_reference_name_to_id(&id, g->host, ref);
	if (grc == GIT_ENOTFOUND) {
		git_error_clear();
		return err_set(ERR_NOTFOUND, "git: the repository has no branch %s", branch);
	}
	if (grc < 0)
		return git_fail(grc, "cannot read a branch");
	git_oid_tostr(out, 41, &id);
	return 0;
}

static int set_ref(spw_git *g, const char *branch, const git_oid *id, const char *why)
{
	git_reference *ref = NULL;
	char name[300];
	int grc;

	snprintf(name, sizeof(name), "refs/heads/%s", branch);
	grc = git_reference_create(&ref, g->host, name, id, 1, why);
	git_reference_free(ref);
	return grc < 0 ? git_fail(grc, "cannot move a branch") : 0;
}

/* Appends the conflicting paths of `idx` to out->conflicts. */
static void list_conflicts(git_index *idx, spw_rebase *out)
{
	git_index_conflict_iterator *it = NULL;
	const git_index_entry *anc, *ours, *theirs;

	if (git_index_conflict_iterator_new(&it, idx) < 0) {
		git_error_clear();
		return;
	}
	while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0) {
		const git_index_entry *e = ours ? ours : theirs ? theirs : anc;
		size_t used = strlen(out->conflicts);

		if (e && e->path && used + strlen(e->path) + 2 < sizeof(out->conflicts))
			snprintf(out->conflicts + used, sizeof(out->conflicts) - used, "%s\n", e->path);
	}
	git_index_conflict_iterator_free(it);
	git_error_clear();
}

int spw_git_rebase(spw_git *g, const char *branch, const char *target, spw_rebase *out)
{
	git_oid tip, onto, result;
	git_annotated_commit *ac_branch = NULL, *ac_onto = NULL;
	git_rebase *rb = NULL;
	git_rebase_operation *op = NULL;
	git_rebase_options ro;
	git_signature *sig = NULL;
	git_commit *commit = NULL;
	git_index *idx = NULL;
	char name[128], email[128];
	int grc, rc = 0;

	memset(out, 0, sizeof(*out));
	rc = spw_git_branch_tip(g, branch, out->tip);
	if (rc == 0)
		rc = spw_git_branch_tip(g, target, out->onto);
	if (rc < 0)
		return rc;
	git_oid_fromstr(&tip, out->tip);
	git_oid_fromstr(&onto, out->onto);
	git_oid_cpy(&result, &tip);
	if (git_oid_equal(&tip, &onto) || git_graph_descendant_of(g->host, &onto, &tip) == 1) {
		out->nothing = 1; /* the target holds the branch already */
		git_oid_cpy(&result, &onto);
	} else if (git_graph_descendant_of(g->host, &tip, &onto) != 1) {
		/* replay the branch's own commits onto the target's tip */
		author(name, sizeof(name), email, sizeof(email));
		git_rebase_options_init(&ro, GIT_REBASE_OPTIONS_VERSION);
		ro.inmemory = 1;
		grc = git_signature_now(&sig, name, email);
		if (grc >= 0)
			grc = git_annotated_commit_lookup(&ac_branch, g->host, &tip);
		if (grc >= 0)
			grc = git_annotated_commit_lookup(&ac_onto, g->host, &onto);
		if (grc >= 0)
			grc = git_rebase_init(&rb, g->host, ac_branch, ac_onto, NULL, &ro);
		if (grc < 0) {
			rc = git_fail(grc, "cannot start the rebase");
			goto done;
		}
		git_oid_cpy(&result, &onto);
		for (grc = git_rebase_next(&op, rb); grc == 0; grc = git_rebase_next(&op, rb)) {
			git_oid id;

			git_index_free(idx);
			idx = NULL;
			grc = git_rebase_inmemory_index(&idx, rb);
			if (grc < 0)
				break;
			if (git_index_has_conflicts(idx)) {
				out->conflict = 1;
				list_conflicts(idx, out);
				break;
			}
			grc = git_rebase_commit(&id, rb, NULL, sig, NULL, NULL);
			if (grc == GIT_EAPPLIED) { /* already on the target: nothing to replay */
				git_error_clear();
				grc = 0;
				continue;
			}
			if (grc < 0)
				break;
			git_oid_cpy(&result, &id);
			out->replayed++;
		}
		if (out->conflict) {
			git_rebase_abort(rb);
			git_error_clear();
			goto done;
		}
		if (grc != GIT_ITEROVER && grc < 0) {
			rc = git_fail(grc, "cannot replay the branch's commits");
			goto done;
		}
		git_error_clear();
		grc = git_rebase_finish(rb, sig);
		if (grc < 0) {
			rc = git_fail(grc, "cannot finish the rebase");
			goto done;
		}
		if (out->replayed == 0)
			out->nothing = 1;
	}
	git_oid_tostr(out->commit, sizeof(out->commit), &result);
	/* what the result changes on the target */
	grc = git_commit_lookup(&commit, g->host, &onto);
	if (grc < 0) {
		rc = git_fail(grc, "cannot read the target");
		goto done;
	}
	git_oid_cpy(&g->base_tree, git_commit_tree_id(commit));
	git_commit_free(commit);
	commit = NULL;
	grc = git_commit_lookup(&commit, g->host, &result);
	if (grc < 0) {
		rc = git_fail(grc, "cannot read the rebased commit");
		goto done;
	}
	rc = diffstat(g, git_commit_tree_id(commit), &out->stat);
	if (rc == 0)
		rc = set_ref(g, target, &result, "orchestrator: merged");
	if (rc == 0)
		rc = set_ref(g, branch, &result, "orchestrator: rebased");
done:
	git_commit_free(commit);
	git_index_free(idx);
	git_rebase_free(rb);
	git_annotated_commit_free(ac_branch);
	git_annotated_commit_free(ac_onto);
	git_signature_free(sig);
	return rc;
}

int spw_git_export(spw_git *g, const char *commit, const char *workspace)
{
	int grc = git_repository_set_workdir(g->host, workspace, 0);

	if (grc < 0)
		return git_fail(grc, "cannot attach the workspace");
	snprintf(g->workspace, sizeof(g->workspace), "%s", workspace);
	return spw_git_clean(g, commit);
}

int spw_git_push_merge(spw_git *g, const char *url, const spw_git_cred *cred,
		       const char *target, const char *branch)
{
	git_remote *remote = NULL;
	push_state ps;
	char tspec[300], bspec[300];
	char *specs[2] = {tspec, bspec};
	int grc, rc = 0;

	/* the target only moves forward: no '+' */
	snprintf(tspec, sizeof(tspec), "refs/heads/%s:refs/heads/%s", target, target);
	if (branch)
		snprintf(bspec, sizeof(bspec), "+refs/heads/%s:refs/heads/%s", branch, branch);
	grc = push_refs(g, url, cred, specs, branch ? 2 : 1, &ps, &remote);
	if (grc == GIT_ENONFASTFORWARD) {
		rc = err_set(ERR_CONFLICT, "git: %s moved while the merge was tested: %s", target,
			     git_error_last() ? git_error_last()->message : "not a fast-forward");
		git_error_clear();
	} else if (grc < 0) {
		rc = git_fail(grc, "cannot push the merge");
	} else if (ps.rejected[0]) {
		rc = err_set(strstr(ps.rejected, "fast") ? ERR_CONFLICT : ERR_GIT,
			     "git: the repository refused the push of %s", ps.rejected);
	}
	git_remote_free(remote);
	return rc;
}

int spw_git_push_as(spw_git *g, const char *url, const spw_git_cred *cred, const char *from,
		    const char *to)
{
	git_remote *remote = NULL;
	push_state ps;
	char spec[600];
	char *specs[1] = {spec};
	int grc, rc = 0;

	snprintf(spec, sizeof(spec), "+refs/heads/%s:refs/heads/%s", from, to);
	grc = push_refs(g, url, cred, specs, 1, &ps, &remote);
	if (grc < 0)
		rc = git_fail(grc, "cannot push the branch");
	else if (ps.rejected[0])
		rc = err_set(ERR_GIT, "git: the remote refused the push of %s", ps.rejected);
	git_remote_free(remote);
	return rc;
}

int spw_git_default_branch(spw_git *g, char *out, size_t cap)
{
	static const char *const usual[] = {"main", "master"};
	git_branch_iterator *it = NULL;
	git_reference *ref = NULL;
	git_branch_t type;
	char only[256] = "";
	int n = 0, grc;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++) {
		char tip[41];
		if (spw_git_branch_tip(g, usual[i], tip) == 0) {
			snprintf(out, cap, "%s", usual[i]);
			return 0;
		}
	}
	err_clear();
	grc = git_branch_iterator_new(&it, g->host, GIT_BRANCH_LOCAL);
	while (grc >= 0 && git_branch_next(&ref, &type, it) == 0) {
		const char *name = NULL;
		if (git_branch_name(&name, ref) == 0 && n++ == 0)
			snprintf(only, sizeof(only), "%s", name);
		git_reference_free(ref);
		ref = NULL;
	}
	git_branch_iterator_free(it);
	git_error_clear();
	if (n == 1) {
		snprintf(out, cap, "%s", only);
		return 0;
	}
	if (n == 0)
		return err_set(ERR_NOTFOUND, "git: the repository has no branch (is it empty?)");
	return err_set(ERR_NOTFOUND, "git: the repository has no branch main or master but %d "
				     "others: name the one to use (--branch)", n);
}

int spw_git_resolve(spw_git *g, const char *rev, char out[41])
{
	git_oid id;
	int rc = resolve_base(g->host, rev, &id);

	out[0] = '\0';
	if (rc == 0)
		git_oid_tostr(out, 41, &id);
	return rc;
}
