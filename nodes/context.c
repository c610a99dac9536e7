#include "nodes/context.h"
#include "core/err.h"
#include "core/gitx.h"
#include "core/log.h"

#include <ctype.h>
#include <git2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 20000          /* listed in the tree */
#define MAX_TEXT_FILES 5000      /* searched */
#define MAX_TEXT_BYTES (32 << 20)
#define MAX_FILE_BYTES (512 << 10)
#define MAX_WORDS 24
#define MAX_RELEVANT 12
#define EXCERPT_HEAD 30          /* lines of a file's start in an excerpt */
#define EXCERPT_AROUND 3         /* lines around a word found */

typedef struct cfile {
	char *path;
	git_oid id;
	char *text, *lower;   /* loaded text files only */
	size_t len;
	int lines;
	double score;
	int named, shown;
} cfile;

typedef struct cctx {
	git_repository *r;
	cfile *f;
	size_t n, cap;
	size_t text_bytes;
	int text_files;
	char words[MAX_WORDS][41];
	double idf[MAX_WORDS];
	int nwords;
	nd_context_stats st;
} cctx;

/* --- reading the tree --- */

static int add_file(cctx *c, const char *root, const char *name, const git_oid *id)
{
	cfile *f;
	size_t n = strlen(root) + strlen(name) + 1;

	if (c->n == MAX_FILES)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		cfile *g = realloc(c->f, cap * sizeof(*g));
		if (!g)
			return err_set(ERR_NOMEM, "out of memory");
		c->f = g;
		c->cap = cap;
	}
	f = &c->f[c->n];
	memset(f, 0, sizeof(*f));
	f->path = malloc(n);
	if (!f->path)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(f->path, n, "%s%s", root, name);
	git_oid_cpy(&f->id, id);
	c->n++;
	return 0;
}

static int walk_cb(const char *root, const git_tree_entry *e, void *payload)
{
	cctx *c = payload;

	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		return 0;
	return add_file(c, root, git_tree_entry_name(e), git_tree_entry_id(e)) < 0 ? -1 : 0;
}

/* Loads a file's text (when it is text and the totals allow). */
static void load(cctx *c, cfile *f)
{
	git_blob *b = NULL;
	size_t n;
	const char *raw;

	if (c->text_files >= MAX_TEXT_FILES || git_blob_lookup(&b, c->r, &f->id) < 0) {
		git_error_clear();
		return;
	}
	n = (size_t)git_blob_rawsize(b);
	raw = git_blob_rawcontent(b);
	if (n <= MAX_FILE_BYTES && c->text_bytes + n <= MAX_TEXT_BYTES &&
	    !memchr(raw, '\0', n < 8192 ? n : 8192)) {
		f->text = malloc(n + 1);
		f->lower = malloc(n + 1);
		if (f->text && f->lower) {
			memcpy(f->text, raw, n);
			f->text[n] = '\0';
			for (size_t i = 0; i <= n; i++)
				f->lower[i] = (char)tolower((unsigned char)f->text[i]);
			f->len = n;
			for (size_t i = 0; i < n; i++)
				f->lines += raw[i] == '\n';
			f->lines += n > 0 && raw[n - 1] != '\n';
			c->text_bytes += n;
			c->text_files++;
			c->st.lines += f->lines;
			c->st.bytes += (int64_t)n;
		} else {
			free(f->text);
			free(f->lower);
			f->text = f->lower = NULL;
		}
	}
	git_blob_free(b);
}

static int by_folder(const void *a, const void *b)
{
	const char *x = ((const cfile *)a)->path, *y = ((const cfile *)b)->path;
	const char *sx = strrchr(x, '/'), *sy = strrchr(y, '/');
	size_t dx = sx ? (size_t)(sx - x) : 0, dy = sy ? (size_t)(sy - y) : 0;
	int d = strncmp(x, y, dx < dy ? dx : dy);

	if (d == 0 && dx != dy)
		d = dx < dy ? -1 : 1;
	return d ? d : strcmp(x, y);
}

static int read_tree(cctx *c, const char *repo, const char *rev, char *sha, size_t shacap)
{
	git_object *obj = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	char ref[300];
	int grc, rc = gitx_init();

	if (rc < 0)
		return rc;
	grc = git_repository_open_bare(&c->r, repo);
	if (grc < 0) {
		rc = err_set(ERR_GIT, "git: cannot open %s: %s", repo,
			     git_error_last() ? git_error_last()->message : "unknown error");
		goto done;
	}
	snprintf(ref, sizeof(ref), "refs/heads/%s", rev);
	grc = git_revparse_single(&obj, c->r, ref);
	if (grc < 0)
		grc = git_revparse_single(&obj, c->r, rev);
	if (grc >= 0)
		grc = git_object_peel((git_object **)&commit, obj, GIT_OBJECT_COMMIT);
	if (grc >= 0)
		grc = git_commit_tree(&tree, commit);
	if (grc < 0) {
		rc = err_set(ERR_NOTFOUND, "git: %s has no branch or commit '%s'", repo, rev);
		goto done;
	}
	git_oid_tostr(sha, shacap, git_commit_id(commit));
	grc = git_tree_walk(tree, GIT_TREEWALK_PRE, walk_cb, c);
	if (grc < 0 && err_last_code() == ERR_NOMEM)
		rc = ERR_NOMEM;
	else if (grc < 0)
		rc = err_set(ERR_GIT, "git: cannot read the tree of %s", rev);
	/* a folder's files together, folders in order (a walk visits a folder
	 * between the files around its name) */
	if (rc == 0)
		qsort(c->f, c->n, sizeof(*c->f), by_folder);
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		load(c, &c->f[i]);
	c->st.files = (int)c->n;
	c->st.text_files = c->text_files;
done:
	git_error_clear();
	git_tree_free(tree);
	git_commit_free(commit);
	git_object_free(obj);
	return rc;
}

/* --- the query --- */

static int stop_word(const char *w)
{
	static const char *const stop[] = {
		"the", "and", "for", "with", "that", "this", "from", "into", "when", "should",
		"would", "could", "please", "want", "need", "have", "has", "not", "are", "was",
		"were", "all", "any", "can", "our", "its", "their", "them", "then", "than", "also",
		"each", "what", "which", "while", "will", "there", "here", "make", "does", "only",
		"some", "such", "other", "like", "just", "but", "you", "your", "it's", NULL};
	for (size_t i = 0; stop[i]; i++)
		if (strcmp(stop[i], w) == 0)
			return 1;
	return 0;
}

static void query_words(cctx *c, const char *q)
{
	const char *p = q ? q : "";

	while (*p && c->nwords < MAX_WORDS) {
		size_t n = 0;
		char w[41];
		int dup = 0;

		while (*p && !isalnum((unsigned char)*p) && *p != '_')
			p++;
		while (isalnum((unsigned char)p[n]) || p[n] == '_')
			n++;
		if (n >= 3 && n < sizeof(w)) {
			for (size_t i = 0; i < n; i++)
				w[i] = (char)tolower((unsigned char)p[i]);
			w[n] = '\0';
			/* "exports" finds export.py: a plural's s goes */
			if (n > 4 && w[n - 1] == 's' && w[n - 2] != 's')
				w[n - 1] = '\0';
			for (int i = 0; i < c->nwords; i++)
				dup |= strcmp(c->words[i], w) == 0;
			if (!dup && !stop_word(w))
				snprintf(c->words[c->nwords++], sizeof(c->words[0]), "%s", w);
		}
		p += n;
	}
}

/* The files the query names: a path, or a file name, as a word of it. */
static void mark_named(cctx *c, const char *q)
{
	const char *p = q ? q : "";

	while (*p) {
		size_t n;
		char tok[256];

		while (*p && (isspace((unsigned char)*p) || strchr("`'\",;:()[]<>", *p)))
			p++;
		n = strcspn(p, " \t\r\n`'\",;:()[]<>");
		if (n > 0 && n < sizeof(tok)) {
			size_t tl = n;
			snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
			while (tl > 0 && tok[tl - 1] == '.')
				tok[--tl] = '\0'; /* the end of a sentence */
			for (size_t i = 0; tl > 2 && (strchr(tok, '.') || strchr(tok, '/')) && i < c->n;
			     i++) {
				const char *path = c->f[i].path, *base = strrchr(path, '/');
				size_t pl = strlen(path);
				if (strcmp(path, tok) == 0 || strcmp(base ? base + 1 : path, tok) == 0 ||
				    (pl > tl && path[pl - tl - 1] == '/' && strcmp(path + pl - tl, tok) == 0))
					c->f[i].named = 1;
			}
		}
		p += n;
	}
}

static int count_in(const char *hay, const char *w, int max)
{
	int k = 0;
	size_t n = strlen(w);

	for (const char *p = strstr(hay, w); p && k < max; p = strstr(p + n, w))
		k++;
	return k;
}

/* The lowercase name of f's file without its extension into out[cap]; with
 * `bare`, without a test_ prefix or _test suffix too. */
static void stem_of(const cfile *f, char *out, size_t cap, int bare)
{
	const char *base = strrchr(f->path, '/');
	size_t n;

	snprintf(out, cap, "%s", base ? base + 1 : f->path);
	if (strrchr(out, '.') && strrchr(out, '.') != out)
		*strrchr(out, '.') = '\0';
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	n = strlen(out);
	if (bare && strncmp(out, "test_", 5) == 0)
		memmove(out, out + 5, n - 4);
	n = strlen(out);
	if (bare && n > 5 && strcmp(out + n - 5, "_test") == 0)
		out[n - 5] = '\0';
}

/* `w` names file f: it is its name (without the extension), or a word of
 * it ("export" for test_render_export.py). */
static int names_file(const cfile *f, const char *w)
{
	char st[256];
	size_t n = strlen(w);

	stem_of(f, st, sizeof(st), 0);
	if (strcmp(st, w) == 0)
		return 1;
	stem_of(f, st, sizeof(st), 1);
	for (const char *p = strstr(st, w); p; p = strstr(p + 1, w))
		if ((p == st || p[-1] == '_') && (p[n] == '\0' || p[n] == '_'))
			return 1;
	return 0;
}

/* Each file's relevance: BM25 over the query's words (rare words count,
 * long files do not win by length). The words that are the name of a file
 * of the repository (a module, a command: "export", "config") weigh double,
 * and count again for the files they name; a file the query names wins. */
static void score(cctx *c)
{
	const double k1 = 1.2, b = 0.75;
	double avg = c->text_files ? (double)c->text_bytes / c->text_files : 1.0;
	char st[256];
	int df[MAX_WORDS];

	for (int w = 0; w < c->nwords; w++) {
		int named = 0;
		df[w] = 0;
		for (size_t i = 0; i < c->n; i++) {
			df[w] += c->f[i].lower && strstr(c->f[i].lower, c->words[w]) != NULL;
			stem_of(&c->f[i], st, sizeof(st), 0);
			named |= strcmp(st, c->words[w]) == 0;
			stem_of(&c->f[i], st, sizeof(st), 1);
			named |= strcmp(st, c->words[w]) == 0;
		}
		c->idf[w] = log(1.0 + ((double)c->text_files - df[w] + 0.5) / (df[w] + 0.5));
		c->idf[w] *= named ? 2.0 : 1.0;
	}
	for (size_t i = 0; i < c->n; i++) {
		cfile *f = &c->f[i];
		double norm = k1 * (1.0 - b + b * (double)f->len / (avg > 0 ? avg : 1.0));

		if (!f->lower)
			continue;
		for (int w = 0; w < c->nwords; w++) {
			int tf = count_in(f->lower, c->words[w], 100);
			f->score += c->idf[w] * (tf * (k1 + 1.0)) / (tf + norm);
			if (names_file(f, c->words[w]))
				f->score += 2.0 * c->idf[w];
		}
		if (f->named)
			f->score += 1000.0;
	}
}

/* --- writing --- */

/* Appends `s` when the budget allows; 0 or ERR_TOOBIG (nothing written). */
static int put(buf *out, size_t limit, const char *s, size_t n)
{
	if (out->len + n > limit)
		return ERR_TOOBIG;
	return buf_append(out, s, n);
}

/* The tree: one line per folder, its number of files and the first names. */
static void tree_summary(const cctx *c, buf *out, size_t limit)
{
	size_t i = 0, folders = 0, left = 0;
	char line[600];

	buf_puts(out, "\n## The files (a folder, its number of files, the first of them)\n\n");
	while (i < c->n) {
		const char *slash = strrchr(c->f[i].path, '/');
		size_t dl = slash ? (size_t)(slash - c->f[i].path) + 1 : 0, k = i, used;
		int n = 0;

		while (k < c->n && strncmp(c->f[k].path, c->f[i].path, dl) == 0 &&
		       !strchr(c->f[k].path + dl, '/')) {
			k++;
			n++;
		}
		used = (size_t)snprintf(line, sizeof(line), "%.*s (%d): ", (int)(dl ? dl : 2),
					dl ? c->f[i].path : "./", n);
		for (size_t j = i; j < k && used < 400; j++)
			used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s",
						 j > i ? ", " : "", c->f[j].path + dl);
		if (used >= 400 && used < sizeof(line))
			snprintf(line + used, sizeof(line) - used, ", ...");
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "\n");
		if (left || put(out, limit, line, strlen(line)) < 0)
			left++;
		folders++;
		i = k > i ? k : i + 1;
	}
	if (left) {
		snprintf(line, sizeof(line), "(%zu more folders of %zu not listed)\n", left, folders);
		buf_puts(out, line);
	}
}

/* A line of `lower` (n bytes) holds one of the query's words. */
static int line_hits(const cctx *c, const char *lower, size_t n)
{
	for (int w = 0; w < c->nwords; w++)
		if (memmem(lower, n, c->words[w], strlen(c->words[w])))
			return 1;
	return 0;
}

/* A file's start and the lines around the query's words, up to `limit`. */
static void excerpt(const cctx *c, const cfile *f, buf *out, size_t limit)
{
	static const char note[] = "[... an excerpt: the file is longer ...]\n";
	size_t nl = (size_t)f->lines + 1;
	char *hit = calloc(nl, 1);
	size_t *at = calloc(nl + 1, sizeof(size_t));
	int gap = 0;

	if (!hit || !at || limit < out->len + sizeof(note) + 1)
		goto done;
	limit -= sizeof(note) + 1; /* the note always fits */
	for (size_t i = 0, line = 0; i < f->len && line < nl; line++) {
		size_t n = strcspn(f->text + i, "\n");
		at[line] = i;
		hit[line] = (char)line_hits(c, f->lower + i, n);
		i += n + (f->text[i + n] ? 1 : 0);
		at[line + 1] = i;
	}
	for (size_t line = 0; line < (size_t)f->lines; line++) {
		int keep = line < EXCERPT_HEAD;
		for (size_t k = line >= EXCERPT_AROUND ? line - EXCERPT_AROUND : 0;
		     !keep && k <= line + EXCERPT_AROUND && k < (size_t)f->lines; k++)
			keep = hit[k];
		if (keep && gap && put(out, limit, "...\n", 4) < 0)
			break;
		if (keep && put(out, limit, f->text + at[line], at[line + 1] - at[line]) < 0)
			break;
		gap = !keep;
	}
	if (out->len && out->data[out->len - 1] != '\n')
		buf_putc(out, '\n');
	buf_puts(out, note);
done:
	free(hit);
	free(at);
}

/* A file whole, or (when it does not fit `limit`) an excerpt. */
static void show_file(cctx *c, cfile *f, buf *out, size_t limit, const char *why)
{
	size_t start = out->len;
	char head[1200];
	int whole;

	if (!f->text || f->shown)
		return;
	snprintf(head, sizeof(head), "\n=== %s (%d lines)%s%s ===\n", f->path, f->lines,
		 why ? ", " : "", why ? why : "");
	whole = out->len + strlen(head) + f->len + 1 <= limit;
	if (put(out, limit, head, strlen(head)) < 0)
		return;
	if (whole) {
		buf_append(out, f->text, f->len);
		if (f->len && f->text[f->len - 1] != '\n')
			buf_putc(out, '\n');
	} else {
		excerpt(c, f, out, limit);
	}
	f->shown = out->len > start;
	c->st.shown += f->shown;
}

static cfile *find(cctx *c, const char *path)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcasecmp(c->f[i].path, path) == 0)
			return &c->f[i];
	return NULL;
}

static void build_files(cctx *c, buf *out, size_t limit)
{
	static const char *const names[] = {
		"Makefile", "makefile", "GNUmakefile", "pyproject.toml", "setup.cfg", "setup.py",
		"tox.ini", "pytest.ini", "requirements.txt", "package.json", "tsconfig.json",
		"go.mod", "Cargo.toml", "CMakeLists.txt", "meson.build", "pom.xml", "build.gradle",
		"Gemfile", "composer.json", "deno.json", "justfile", NULL};

	for (size_t i = 0; names[i]; i++) {
		cfile *f = find(c, names[i]);
		size_t each = out->len + (limit - out->len) / 2;
		if (f)
			show_file(c, f, out, each > out->len + 4096 ? each : limit, "a build file");
	}
}

static int by_score(const void *a, const void *b)
{
	const cfile *x = *(const cfile *const *)a, *y = *(const cfile *const *)b;

	return x->score < y->score ? 1 : x->score > y->score ? -1 : strcmp(x->path, y->path);
}

/* The files named or found, best first, until the budget is used. */
static int relevant(cctx *c, buf *out, size_t cap)
{
	cfile **order = calloc(c->n ? c->n : 1, sizeof(*order));
	size_t k = 0, shown = 0;

	if (!order)
		return err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < c->n; i++)
		if (c->f[i].text && !c->f[i].shown && c->f[i].score > 0.05)
			order[k++] = &c->f[i];
	qsort(order, k, sizeof(*order), by_score);
	for (size_t i = 0; i < k && i < 20; i++)
		log_debug("factory", "context: %.2f %s", order[i]->score, order[i]->path);
	if (k)
		buf_puts(out, "\n## Files the request names or a search for its words finds "
			      "(best first)\n");
	for (size_t i = 0; i < k && shown < MAX_RELEVANT && out->len + 200 < cap; i++) {
		/* the best file may take half of what is left; later ones share the rest */
		size_t room = cap - out->len, limit = out->len + (i == 0 ? room / 2 : room / 3);
		show_file(c, order[i], out, limit > out->len + 1500 ? limit : cap,
			  order[i]->named ? "named in the request" : NULL);
		shown += order[i]->shown;
	}
	free(order);
	return 0;
}

static void free_ctx(cctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->f[i].path);
		free(c->f[i].text);
		free(c->f[i].lower);
	}
	free(c->f);
	git_repository_free(c->r);
}

int nd_context_build(const char *repo, const char *rev, const char *query, size_t cap, buf *out,
		     nd_context_stats *st)
{
	cctx c;
	char sha[41] = "", head[600];
	size_t start = out->len, end = out->len + cap;
	cfile *f;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = read_tree(&c, repo, rev, sha, sizeof(sha));
	if (rc < 0)
		goto done;
	query_words(&c, query);
	mark_named(&c, query);
	score(&c);
	snprintf(head, sizeof(head),
		 "# The repository, branch %s at %.12s: %d files (%d text files, %lld lines)\n",
		 rev, sha, c.st.files, c.st.text_files, (long long)c.st.lines);
	buf_puts(out, head);
	tree_summary(&c, out, start + cap / 5);
	f = find(&c, "README.md");
	if (!f)
		f = find(&c, "README");
	if (!f)
		f = find(&c, "README.rst");
	if (f)
		show_file(&c, f, out, out->len + cap * 3 / 20, "the README");
	f = find(&c, "AGENTS.md");
	if (f)
		show_file(&c, f, out, out->len + cap * 3 / 20, "instructions for coding agents");
	build_files(&c, out, out->len + cap / 10 < end ? out->len + cap / 10 : end);
	rc = relevant(&c, out, end);
	c.st.size = out->len - start;
	if (st)
		*st = c.st;
done:
	free_ctx(&c);
	return rc;
}
