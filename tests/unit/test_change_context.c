/*
 * What a model sees of an existing repository (nodes/context.h): tasklog,
 * the eval's repository of 2,600 lines, behind real git. The selection
 * stays within its budget, holds the tree, README, AGENTS.md and the build
 * files, and the files a request names or its words find — the export
 * module and its tests for "CSV export", the config module for "an empty
 * config file" — and not the files nothing points to.
 */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "nodes/context.h"
#include "nodes/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char REPO[1100];

static int setup(void **state)
{
	char work[1100];
	(void)state;

	snprintf(work, sizeof(work), "%s/tasklog", getenv("ORCH_DATA_DIR"));
	snprintf(REPO, sizeof(REPO), "%s/tasklog.git", getenv("ORCH_DATA_DIR"));
	if (tss_sh(NULL, "set -e; rm -rf '%s' '%s'; cp -r eval/tasks/chg-py-tasklog-csv/repo '%s'; "
			 "cd '%s'; git init -q -b main; git add -A; git -c user.name=t -c "
			 "user.email=t@t commit -qm tasklog; git clone -q --bare . '%s'",
		   work, REPO, work, work, REPO))
		fail_msg("cannot make the tasklog repository");
	return 0;
}

/* The names of the files shown ("=== path (...") in `ctx`, one per line. */
static void shown(const char *ctx, buf *out)
{
	for (const char *p = strstr(ctx, "\n=== "); p; p = strstr(p + 1, "\n=== ")) {
		size_t n = strcspn(p + 5, " ");
		buf_append(out, p + 5, n);
		buf_putc(out, '\n');
	}
}

static void test_csv_request(void **state)
{
	const char *q = "Please add CSV export to tasklog: tasklog export --format csv, working "
			"with -o FILE and the same filters as the other export formats. Update the "
			"README's Exports section and add tests.";
	nd_context_stats st;
	buf ctx, names;
	(void)state;

	buf_init(&ctx, 0);
	buf_init(&names, 0);
	assert_int_equal(nd_context_build(REPO, "main", q, 32000, &ctx, &st), 0);
	shown(buf_cstr(&ctx), &names);
	if (getenv("CTX_DEBUG"))
		fprintf(stderr, "%s\n# %zu bytes, files %d, text %d, lines %lld, shown %d\n",
			buf_cstr(&ctx), st.size, st.files, st.text_files, (long long)st.lines,
			st.shown);
	assert_true(ctx.len <= 32000);
	assert_int_equal(st.size, ctx.len);
	assert_true(st.files >= 25);
	assert_true(st.lines > 2000);
	/* the header and the tree */
	assert_non_null(strstr(buf_cstr(&ctx), "branch main at"));
	assert_non_null(strstr(buf_cstr(&ctx), "tasklog/ (15): __init__.py"));
	assert_non_null(strstr(buf_cstr(&ctx), "tests/ (11)"));
	/* what every change needs, then what this one does */
	assert_non_null(strstr(buf_cstr(&names), "README.md\n"));
	assert_non_null(strstr(buf_cstr(&names), "AGENTS.md\n"));
	assert_non_null(strstr(buf_cstr(&names), "Makefile\n"));
	assert_non_null(strstr(buf_cstr(&names), "pyproject.toml\n"));
	assert_non_null(strstr(buf_cstr(&names), "tasklog/export.py\n"));
	assert_non_null(strstr(buf_cstr(&ctx), "python3 -m unittest discover -s tests -v"));
	/* nothing points to the invoices */
	assert_null(strstr(buf_cstr(&names), "tasklog/invoice.py\n"));
	/* never the whole repository */
	assert_true(st.size < (size_t)st.bytes / 2);
	buf_free(&ctx);
	buf_free(&names);
}

static void test_named_file_and_budget(void **state)
{
	const char *q = "tasklog crashes with a traceback when config.toml is empty; see "
			"tasklog/config.py";
	nd_context_stats st;
	buf ctx, names;
	(void)state;

	buf_init(&ctx, 0);
	buf_init(&names, 0);
	assert_int_equal(nd_context_build(REPO, "main", q, 32000, &ctx, &st), 0);
	shown(buf_cstr(&ctx), &names);
	assert_non_null(strstr(buf_cstr(&ctx), "=== tasklog/config.py ("));
	assert_non_null(strstr(buf_cstr(&ctx), "named in the request"));
	assert_non_null(strstr(buf_cstr(&names), "tests/test_config.py\n"));
	/* a small budget still says what the repository is, and cuts, never overflows */
	buf_reset(&ctx);
	assert_int_equal(nd_context_build(REPO, "main", q, 6000, &ctx, &st), 0);
	assert_true(ctx.len <= 6000);
	assert_non_null(strstr(buf_cstr(&ctx), "# The repository"));
	assert_non_null(strstr(buf_cstr(&ctx), "=== README.md"));
	/* no such branch */
	buf_reset(&ctx);
	assert_int_equal(nd_context_build(REPO, "nope", q, 6000, &ctx, &st), ERR_NOTFOUND);
	buf_free(&ctx);
	buf_free(&names);
}

static void test_local_import(void **state)
{
	char work[1100], dst[1100], abs[1100], branch[64], head[41], head2[41];
	buf b;
	(void)state;

	snprintf(work, sizeof(work), "%s/tasklog", getenv("ORCH_DATA_DIR"));
	snprintf(dst, sizeof(dst), "%s/repos/tasklog-1.git", getenv("ORCH_DATA_DIR"));
	assert_int_equal(nd_repo_check_local(work, abs, sizeof(abs)), 0);
	assert_string_equal(abs, work);
	assert_int_equal(nd_repo_check_local("/nonexistent/x", abs, sizeof(abs)), ERR_NOTFOUND);
	assert_int_equal(nd_repo_check_local(getenv("ORCH_DATA_DIR"), abs, sizeof(abs)),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "not a git repository"));
	/* uncommitted work stays behind: only the branch's history is copied */
	assert_int_equal(tss_sh(NULL, "echo draft > '%s/NOTES.txt'", work), 0);
	assert_int_equal(nd_repo_import_local(work, dst, NULL, branch, sizeof(branch), head), 0);
	assert_string_equal(branch, "main");
	assert_int_equal(strlen(head), 40);
	assert_int_equal(nd_repo_has(dst, "main", "tasklog/export.py"), 1);
	assert_int_equal(nd_repo_has(dst, "main", "NOTES.txt"), 0);
	/* again: nothing changes */
	assert_int_equal(nd_repo_import_local(work, dst, "main", branch, sizeof(branch), head2), 0);
	assert_string_equal(head, head2);
	assert_int_equal(nd_repo_import_local(work, dst, "dev", branch, sizeof(branch), head2),
			 ERR_NOTFOUND);
	buf_init(&b, 0);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s' symbolic-ref HEAD; git --git-dir='%s' "
				    "branch --list | wc -l", dst, dst), 0);
	assert_string_equal(buf_cstr(&b), "refs/heads/main\n1\n");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_request),
		cmocka_unit_test(test_named_file_and_budget),
		cmocka_unit_test(test_local_import),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, NULL);
}
