/* What the models answer for the factory (nodes/spec.c): the project spec,
 * the plan and the reviewer's verdict, read after their schema check with
 * nd_spec_from_json, nd_plan_from_json and nd_review_from_json; and the
 * repository paths a plan names (nd_path_check).
 *
 * Input: a mode byte (0 spec, 1 plan, 2 verdict, 3 a path), then the JSON
 * (or the path).
 *
 * Properties: a spec or verdict read, written back and read again is the
 * same (the normalised form is stable); a plan's tasks come after their
 * dependencies, have ids usable as branch names, unique, depending only on
 * tasks of the plan, and two tasks that touch one file never run at once;
 * its files are unique safe relative paths; an accepted path holds no
 * "..", no ".git", no absolute start, no control character; what a person
 * is shown (Telegram HTML) is valid UTF-8 with balanced tags. */
#include "tests/fuzz/fuzz.h"

#include "bot/text.h"
#include "core/buf.h"
#include "core/err.h"
#include "nodes/spec.h"

#include <strings.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

/* A person's view: valid UTF-8 and every <b>/<code> closed. */
static void check_html(const buf *b)
{
	int open_b = 0, open_code = 0;

	FZ_CHECK(fz_utf8_valid(b->data ? b->data : "", b->len), "the HTML is not UTF-8");
	for (const char *p = b->data ? b->data : ""; (p = strchr(p, '<')) != NULL; p++) {
		if (strncmp(p, "<b>", 3) == 0)
			open_b++;
		else if (strncmp(p, "</b>", 4) == 0)
			open_b--;
		else if (strncmp(p, "<code>", 6) == 0)
			open_code++;
		else if (strncmp(p, "</code>", 7) == 0)
			open_code--;
		else
			FZ_CHECK(0, "a tag the text did not put there: %.20s", p);
		FZ_CHECK(open_b >= 0 && open_b <= 1 && open_code >= 0 && open_code <= 1,
			 "tags out of order");
	}
	FZ_CHECK(open_b == 0 && open_code == 0, "a tag left open");
}

static int path_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || p[0] == '/' || p[n - 1] == '/')
		return 0;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
			return 0;
	for (const char *seg = p; *seg;) {
		size_t len = strcspn(seg, "/");
		if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && strncmp(seg, "..", 2) == 0) ||
		    (len == 4 && strncasecmp(seg, ".git", 4) == 0))
			return 0;
		seg += len + (seg[len] == '/');
	}
	return 1;
}

static void check_spec(const json_t *j)
{
	nd_spec a, b;
	json_t *ja, *jb;
	buf html;

	if (nd_spec_from_json(j, &a) < 0) {
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "not UTF-8: %s", err_last());
		nd_spec_free(&a);
		return;
	}
	FZ_CHECK(a.users.n > 0 && a.name && a.test_command, "a spec without users");
	for (size_t i = 0; i < a.nfeatures; i++)
		FZ_CHECK(a.features[i].acceptance.n > 0, "feature %zu without acceptance", i);
	ja = nd_spec_to_json(&a);
	FZ_CHECK(ja != NULL, "no JSON");
	FZ_CHECK(nd_spec_from_json(ja, &b) == 0, "the normalised spec is refused: %s", err_last());
	jb = nd_spec_to_json(&b);
	FZ_CHECK(json_equal(ja, jb), "the normalised spec changed when read again");
	buf_init(&html, 0);
	nd_spec_html(ja, &html);
	check_html(&html);
	buf_free(&html);
	json_decref(ja);
	json_decref(jb);
	nd_spec_free(&a);
	nd_spec_free(&b);
}

static int index_of(const nd_plan *p, const char *id)
{
	for (size_t i = 0; i < p->ntasks; i++)
		if (strcmp(p->tasks[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* Whether task i comes, through dependencies, after task k. */
static int after(const nd_plan *p, size_t i, size_t k, int depth)
{
	if (depth > ND_MAX_TASKS + 1)
		return 0;
	for (size_t d = 0; d < p->tasks[i].deps.n; d++) {
		int x = index_of(p, p->tasks[i].deps.v[d]);
		if (x == (int)k || (x >= 0 && after(p, (size_t)x, k, depth + 1)))
			return 1;
	}
	return 0;
}

static void check_plan(const json_t *j)
{
	nd_plan p;
	json_t *pj;
	buf html;

	if (nd_plan_from_json(j, &p) < 0) {
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "not UTF-8: %s", err_last());
		nd_plan_free(&p);
		return;
	}
	FZ_CHECK(p.ntasks <= ND_MAX_TASKS, "%zu tasks", p.ntasks);
	for (size_t i = 0; i < p.ntasks; i++) {
		const nd_plan_task *t = &p.tasks[i];
		const char *id = t->id;

		FZ_CHECK(id[0] >= 'a' && id[0] <= 'z' && strlen(id) <= ND_TASK_ID_MAX &&
				 strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(id) &&
				 !strstr(id, "--") && id[strlen(id) - 1] != '-',
			 "task id '%s'", id);
		FZ_CHECK(index_of(&p, id) == (int)i, "task id '%s' twice", id);
		FZ_CHECK(t->checks.n > 0, "task '%s' without checks", id);
		for (size_t d = 0; d < t->deps.n; d++) {
			int x = index_of(&p, t->deps.v[d]);
			FZ_CHECK(x >= 0 && x < (int)i, "task '%s' comes before its dependency '%s'", id,
				 t->deps.v[d]);
		}
		for (size_t d = 0; d < t->ordered_after.n; d++)
			FZ_CHECK(index_of(&p, t->ordered_after.v[d]) >= 0, "ordered after no task");
		for (size_t f = 0; f < t->files.n; f++)
			FZ_CHECK(path_ok(t->files.v[f]), "task '%s' file '%s'", id, t->files.v[f]);
		for (size_t k = 0; k < i; k++) {
			int shared = 0;
			for (size_t f = 0; f < t->files.n && !shared; f++)
				for (size_t g = 0; g < p.tasks[k].files.n && !shared; g++)
					shared = strcmp(t->files.v[f], p.tasks[k].files.v[g]) == 0;
			FZ_CHECK(!shared || after(&p, i, k, 0),
				 "tasks '%s' and '%s' share a file and may run at once", id,
				 p.tasks[k].id);
		}
	}
	for (size_t i = 0; i < p.nfiles; i++) {
		FZ_CHECK(path_ok(p.files[i].path), "file '%s'", p.files[i].path);
		FZ_CHECK(strcasecmp(p.files[i].path, "README.md") != 0, "README.md among the files");
		for (size_t k = 0; k < i; k++)
			FZ_CHECK(strcmp(p.files[i].path, p.files[k].path) != 0, "file '%s' twice",
				 p.files[i].path);
	}
	pj = nd_plan_to_json(&p);
	FZ_CHECK(pj != NULL, "no JSON");
	buf_init(&html, 0);
	nd_plan_html(pj, &html);
	check_html(&html);
	buf_free(&html);
	json_decref(pj);
	nd_plan_free(&p);
}

static void check_review(const json_t *j)
{
	nd_review a, b;
	json_t *ja, *jb;

	if (nd_review_from_json(j, &a) < 0) {
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "not UTF-8: %s", err_last());
		nd_review_free(&a);
		return;
	}
	FZ_CHECK(a.approve || a.ncomments > 0 || a.summary[0], "changes asked without a word");
	ja = nd_review_to_json(&a);
	FZ_CHECK(ja != NULL, "no JSON");
	FZ_CHECK(nd_review_from_json(ja, &b) == 0, "the normalised verdict is refused: %s",
		 err_last());
	jb = nd_review_to_json(&b);
	FZ_CHECK(json_equal(ja, jb), "the normalised verdict changed when read again");
	json_decref(ja);
	json_decref(jb);
	nd_review_free(&a);
	nd_review_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j;

	if (size < 1)
		return 0;
	if (data[0] % 4 == 3) {
		char *s = fz_str(data + 1, size - 1);
		int ok = nd_path_check(s) == 0;
		FZ_CHECK(ok == (strlen(s) <= 200 && path_ok(s)), "path '%s' %s", s,
			 ok ? "accepted" : "refused");
		free(s);
		return 0;
	}
	j = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if (!j)
		return 0;
	if (data[0] % 4 == 0)
		check_spec(j);
	else if (data[0] % 4 == 1)
		check_plan(j);
	else
		check_review(j);
	json_decref(j);
	return 0;
}
