/*
 * The forge client (spawner/forge.h) against the fake forge, which speaks
 * GitHub's REST API and refuses what GitHub refuses: where the API of a
 * remote is; a pull request opened, found, refused a second time for the
 * same head and for a head that does not exist, edited; what people wrote
 * on it and what CI reported, read after a point; and each of GitHub's
 * refusals (401, 403, 404, 422, the rate limits, 5xx) translated into an
 * error that says what to do, with no token in any message.
 */
#include "tests/support/forge_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "spawner/forge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_TOKEN "tok-fc-dev-4411"
#define RO_TOKEN "tok-fc-ro-4412"

static ts_forge F;
static char ROOT[1100], WORK[1100];

static void test_repo_from_url(void **state)
{
	forge_repo r;
	(void)state;

	assert_int_equal(forge_repo_from_url(&r, "https://github.com/ada/tasklog.git", NULL), 0);
	assert_string_equal(r.api, "https://api.github.com");
	assert_string_equal(r.owner, "ada");
	assert_string_equal(r.name, "tasklog");
	assert_int_equal(forge_repo_from_url(&r, "ssh://git@github.com/ada/tasklog", NULL), 0);
	assert_string_equal(r.api, "https://api.github.com");
	assert_int_equal(forge_repo_from_url(&r, "https://git.example.com/team/app.git/", NULL), 0);
	assert_string_equal(r.api, "https://git.example.com/api/v3");
	assert_string_equal(r.owner, "team");
	assert_string_equal(r.name, "app");
	assert_int_equal(forge_repo_from_url(&r, "http://127.0.0.1:3000/team/app.git",
					     "http://127.0.0.1:3000/api/v1/"), 0);
	assert_string_equal(r.api, "http://127.0.0.1:3000/api/v1");
	/* what is refused says why */
	assert_int_equal(forge_repo_from_url(&r, "https://ada:pw@github.com/ada/x.git", NULL),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "credentials"));
	assert_int_equal(forge_repo_from_url(&r, "https://github.com/tasklog", NULL), ERR_INVALID);
	assert_int_equal(forge_repo_from_url(&r, "/srv/git/app.git", NULL), ERR_INVALID);
	assert_int_equal(forge_repo_from_url(&r, "https://h/a/b.git", "ftp://h/api"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ORCH_FORGE_API"));
}

static forge *client(const char *secret, const char *name)
{
	forge_repo r;
	forge *f = NULL;
	char url[200];

	snprintf(url, sizeof(url), "%s/acme/%s.git", F.base, name);
	assert_int_equal(forge_repo_from_url(&r, url, NULL), 0);
	assert_string_equal(r.api, F.api);
	assert_int_equal(forge_new(&f, &r, secret), 0);
	return f;
}

static void push_branch(const char *branch, const char *content)
{
	if (tss_sh(NULL,
		   "set -e; cd '%s'; git checkout -q main; git checkout -q -B '%s'; "
		   "printf '%s' > calc.py; git -c user.name=t -c user.email=t@t commit -qam '%s'; "
		   "git push -q -f origin '%s'",
		   WORK, branch, content, branch, branch))
		fail_msg("cannot push %s", branch);
}

static void test_pull_request(void **state)
{
	forge *f = client("x-access-token:" DEV_TOKEN, "app");
	forge_pr pr, again;
	json_t *log, *e;
	size_t i;
	int seen_create = 0;
	(void)state;

	push_branch("orchestrator/fix", "def add(a, b):\\n    return a + b\\n");
	/* none yet */
	assert_int_equal(forge_pr_find_open(f, "orchestrator/fix", &pr), ERR_NOTFOUND);
	/* opened */
	assert_int_equal(forge_pr_create(f, "orchestrator/fix", "main", "Fix add", "## Spec\n...",
					 &pr), 0);
	assert_int_equal(pr.number, 1);
	assert_string_equal(pr.state, "open");
	assert_string_equal(pr.head, "orchestrator/fix");
	assert_string_equal(pr.base, "main");
	assert_int_equal(strlen(pr.head_sha), 40);
	assert_non_null(strstr(pr.html_url, "/acme/app/pull/1"));
	/* a second one for the same head: GitHub's refusal, said */
	assert_int_equal(forge_pr_create(f, "orchestrator/fix", "main", "Again", "", &again),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "already exists"));
	/* a head that does not exist */
	assert_int_equal(forge_pr_create(f, "no-such-branch", "main", "Nothing", "", &again),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "head"));
	/* found, edited, read */
	assert_int_equal(forge_pr_find_open(f, "orchestrator/fix", &again), 0);
	assert_int_equal(again.number, 1);
	assert_int_equal(forge_pr_edit(f, 1, NULL, "## Spec\nupdated", &again), 0);
	assert_int_equal(again.number, 1);
	push_branch("orchestrator/fix", "def add(a, b):\\n    return b + a\\n");
	assert_int_equal(forge_pr_get(f, 1, &again), 0);
	assert_string_not_equal(again.head_sha, pr.head_sha);
	/* only the fields GitHub documents were sent: it refuses any other */
	log = ts_forge_log(&F, 1);
	json_array_foreach(log, i, e) {
		char *keys = json_dumps(json_object_get(e, "body_keys"), JSON_COMPACT);
		if (strcmp(json_string_value(json_object_get(e, "method")), "POST") == 0 &&
		    strstr(json_string_value(json_object_get(e, "path")), "/pulls")) {
			assert_string_equal(keys, "[\"base\",\"body\",\"head\",\"title\"]");
			seen_create++;
		}
		assert_true(json_integer_value(json_object_get(e, "status")) != 422 ||
			    strstr(json_string_value(json_object_get(e, "path")), "/pulls"));
		free(keys);
	}
	json_decref(log);
	assert_int_equal(seen_create, 3);
	forge_free(f);
}

static void test_notes_and_failures(void **state)
{
	forge *f = client(DEV_TOKEN, "app");
	int64_t after[FORGE_NOTE_KINDS] = {0, 0, 0};
	forge_notes notes = {NULL, 0};
	forge_check *checks = NULL;
	forge_pr pr;
	char login[64];
	size_t n = 0;
	int kinds[FORGE_NOTE_KINDS] = {0, 0, 0};
	(void)state;

	assert_int_equal(forge_login(f, login, sizeof(login)), 0);
	assert_string_equal(login, "dev");
	assert_int_equal(forge_pr_get(f, 1, &pr), 0);
	json_decref(ts_forge_control(&F, "issue_comment", "{\"repo\":\"acme/app\",\"number\":1,"
							  "\"user\":\"alice\",\"body\":\"Please "
							  "handle negative numbers.\"}"));
	json_decref(ts_forge_control(&F, "review_comment",
				     "{\"repo\":\"acme/app\",\"number\":1,\"user\":\"bob\",\"body\":"
				     "\"Name the argument.\",\"path\":\"calc.py\",\"line\":2}"));
	json_decref(ts_forge_control(&F, "review", "{\"repo\":\"acme/app\",\"number\":1,\"user\":"
						   "\"carol\",\"state\":\"CHANGES_REQUESTED\","
						   "\"body\":\"Not yet.\"}"));
	assert_int_equal(forge_notes_since(f, 1, after, &notes), 0);
	for (size_t i = 0; i < notes.n; i++) {
		kinds[notes.v[i].kind]++;
		if (notes.v[i].kind == FORGE_REVIEW_COMMENT) {
			assert_string_equal(notes.v[i].path, "calc.py");
			assert_int_equal(notes.v[i].line, 2);
			assert_string_equal(notes.v[i].user, "bob");
		}
		if (notes.v[i].kind == FORGE_ISSUE_COMMENT)
			assert_string_equal(notes.v[i].body, "Please handle negative numbers.");
		if (notes.v[i].id > after[notes.v[i].kind])
			after[notes.v[i].kind] = notes.v[i].id;
	}
	assert_int_equal(kinds[FORGE_ISSUE_COMMENT], 1);
	assert_int_equal(kinds[FORGE_REVIEW_COMMENT], 1);
	assert_true(kinds[FORGE_REVIEW] >= 2); /* bob's comment came in a COMMENTED review */
	forge_notes_free(&notes);
	/* after what was seen: nothing new */
	assert_int_equal(forge_notes_since(f, 1, after, &notes), 0);
	assert_int_equal(notes.n, 0);
	forge_notes_free(&notes);

	/* CI: a failed status and a failed check run on the head; a passing one is no failure */
	{
		char body[600];
		snprintf(body, sizeof(body), "{\"repo\":\"acme/app\",\"sha\":\"%s\",\"state\":"
					     "\"failure\",\"context\":\"ci/test\",\"description\":"
					     "\"2 tests failed\"}", pr.head_sha);
		json_decref(ts_forge_control(&F, "status", body));
		snprintf(body, sizeof(body), "{\"repo\":\"acme/app\",\"sha\":\"%s\",\"state\":"
					     "\"success\",\"context\":\"ci/lint\"}", pr.head_sha);
		json_decref(ts_forge_control(&F, "status", body));
		snprintf(body, sizeof(body), "{\"repo\":\"acme/app\",\"sha\":\"%s\",\"name\":\"build\","
					     "\"status\":\"completed\",\"conclusion\":\"failure\","
					     "\"title\":\"build failed\",\"summary\":\"make: *** "
					     "[all] Error 2\"}", pr.head_sha);
		json_decref(ts_forge_control(&F, "check_run", body));
	}
	assert_int_equal(forge_failures(f, pr.head_sha, &checks, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(checks[0].context, "ci/test");
	assert_string_equal(checks[0].description, "2 tests failed");
	assert_string_equal(checks[1].context, "build");
	assert_string_equal(checks[1].state, "failure");
	assert_non_null(strstr(checks[1].description, "Error 2"));
	free(checks);
	forge_free(f);
}

static void test_refusals_translated(void **state)
{
	forge *f;
	forge_pr pr;
	(void)state;

	/* a token nobody has: 401, say what to do, never the token */
	f = client("tok-nobody-has-9", "app");
	assert_int_equal(forge_pr_get(f, 1, &pr), ERR_AUTH);
	assert_non_null(strstr(err_last(), "refused the token"));
	assert_non_null(strstr(err_last(), "secrets set"));
	assert_null(strstr(err_last(), "tok-nobody-has-9"));
	forge_free(f);
	/* a read-only token writing: 403 with the permission it lacks */
	f = client(RO_TOKEN, "app");
	assert_int_equal(forge_pr_get(f, 1, &pr), 0);
	assert_int_equal(forge_pr_edit(f, 1, "x", NULL, &pr), ERR_DENIED);
	assert_non_null(strstr(err_last(), "may not"));
	forge_free(f);
	/* no such repository (or invisible to the token): 404 */
	f = client(DEV_TOKEN, "nothing-here");
	assert_int_equal(forge_pr_get(f, 1, &pr), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "acme/nothing-here"));
	forge_free(f);
	f = client(DEV_TOKEN, "app");
	assert_int_equal(forge_pr_get(f, 99, &pr), ERR_NOTFOUND);
	/* the rate limits, primary and secondary: try later */
	json_decref(ts_forge_control(&F, "fail", "{\"count\":1,\"kind\":\"rate_limit\",\"status\":403}"));
	assert_int_equal(forge_pr_get(f, 1, &pr), ERR_BUSY);
	assert_non_null(strstr(err_last(), "rate limit"));
	json_decref(ts_forge_control(&F, "fail", "{\"count\":1,\"kind\":\"secondary_rate_limit\","
						 "\"status\":429}"));
	assert_int_equal(forge_pr_get(f, 1, &pr), ERR_BUSY);
	/* the forge's own trouble */
	json_decref(ts_forge_control(&F, "fail", "{\"count\":1,\"kind\":\"error\",\"status\":502}"));
	assert_int_equal(forge_pr_get(f, 1, &pr), ERR_HTTP);
	assert_non_null(strstr(err_last(), "502"));
	/* and then all is well again */
	assert_int_equal(forge_pr_get(f, 1, &pr), 0);
	forge_free(f);
	/* no token at all */
	{
		forge_repo r;
		assert_int_equal(forge_repo_from_url(&r, "https://github.com/a/b", NULL), 0);
		assert_int_equal(forge_new(&f, &r, NULL), ERR_AUTH);
		assert_null(f);
	}
}

static int setup(void **state)
{
	static const char *const users[] = {"dev:" DEV_TOKEN, "ro:" RO_TOKEN ":read", NULL};
	char src[1024];
	(void)state;

	tss_project_repo("forge-client-src", src, sizeof(src));
	snprintf(ROOT, sizeof(ROOT), "%s/forge", getenv("ORCH_DATA_DIR"));
	snprintf(WORK, sizeof(WORK), "%s/forge-work", getenv("ORCH_DATA_DIR"));
	if (tss_sh(NULL, "rm -rf '%s' '%s' && mkdir -p '%s/acme' && git clone -q --bare '%s' "
			 "'%s/acme/app.git'", ROOT, WORK, ROOT, src, ROOT))
		fail_msg("cannot create the served repository");
	ts_forge_start(&F, ROOT, users);
	if (tss_sh(NULL, "GIT_TERMINAL_PROMPT=0 git clone -q "
			 "'http://x-access-token:%s@127.0.0.1:%d/acme/app.git' '%s'",
		   DEV_TOKEN, F.port, WORK))
		fail_msg("cannot clone from the forge");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ts_forge_stop(&F);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repo_from_url),
		cmocka_unit_test(test_pull_request),
		cmocka_unit_test(test_notes_and_failures),
		cmocka_unit_test(test_refusals_translated),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
