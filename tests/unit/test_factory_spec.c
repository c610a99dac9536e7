/* The factory's edge: the model's spec, plan and verdict read into typed
 * structs; a plan checked as a DAG, with tasks that share files ordered. */
#include "tests/support/support.h"

#include "core/buf.h"
#include "core/err.h"
#include "nodes/factory.h"
#include "nodes/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *plan_with(const char *tasks)
{
	char text[8192];

	snprintf(text, sizeof(text),
		 "{\"summary\": \"s\", \"test_command\": \"make test\", \"readme\": \"# x\\n\", "
		 "\"files\": [{\"path\": \"./Makefile\", \"content\": \"test:\\n\\ttrue\\n\"}, "
		 "{\"path\": \"README.md\", \"content\": \"ignored: the readme field wins\"}], "
		 "\"tasks\": %s}",
		 tasks);
	return ts_json(text);
}

static const char *dep(const nd_plan_task *t, size_t i)
{
	return i < t->deps.n ? t->deps.v[i] : "";
}

static void test_spec(void **st)
{
	json_t *j = ts_json("{\"name\": \"shop\", \"summary\": \"a shop\", \"users\": [\" buyers \", "
			    "\"buyers\"], \"features\": [{\"name\": \"cart\", \"acceptance\": "
			    "[\"adds items\"]}], \"language\": \"Go\", \"stack\": [], \"constraints\": "
			    "[], \"test_command\": \"go test ./...\", \"remote\": {\"url\": "
			    "\"https://git.example.com/a/shop.git\", \"handle\": "
			    "\"res_abcdefghijklmnopqrstuvwxyz\"}}");
	json_t *back;
	nd_spec s;
	buf html;
	(void)st;

	assert_int_equal(nd_spec_from_json(j, &s), 0);
	assert_string_equal(s.name, "shop");
	assert_int_equal(s.users.n, 1); /* trimmed, repeats dropped */
	assert_string_equal(s.users.v[0], "buyers");
	assert_int_equal(s.nfeatures, 1);
	assert_string_equal(s.remote_url, "https://git.example.com/a/shop.git");
	back = nd_spec_to_json(&s);
	assert_string_equal(json_string_value(json_object_get(json_object_get(back, "remote"),
							      "handle")),
			    "res_abcdefghijklmnopqrstuvwxyz");
	buf_init(&html, 0);
	nd_spec_html(back, &html);
	assert_non_null(strstr(buf_cstr(&html), "<b>shop</b>"));
	assert_non_null(strstr(buf_cstr(&html), "go test ./..."));
	buf_free(&html);
	json_decref(back);
	nd_spec_free(&s);
	json_decref(j);

	/* a spec without acceptance criteria, or with a field too many, is refused */
	j = ts_json("{\"name\": \"shop\", \"summary\": \"a shop\", \"users\": [\"b\"], \"features\": "
		    "[{\"name\": \"cart\", \"acceptance\": []}], \"language\": \"Go\", \"stack\": "
		    "[], \"constraints\": [], \"test_command\": \"go test\"}");
	assert_int_equal(nd_spec_from_json(j, &s), ERR_INVALID);
	assert_non_null(strstr(err_last(), "acceptance"));
	nd_spec_free(&s);
	json_object_del(json_array_get(json_object_get(j, "features"), 0), "acceptance");
	json_object_set_new(j, "colour", json_string("blue"));
	assert_int_equal(nd_spec_from_json(j, &s), ERR_INVALID);
	nd_spec_free(&s);
	json_decref(j);
	/* the brainstorm's reply schema: a question (spec null) or a spec */
	assert_non_null(nd_schema("brainstorm"));
}

static void test_plan_order_and_shared_files(void **st)
{
	json_t *j = plan_with(
		"[{\"id\": \"api\", \"title\": \"API\", \"goal\": \"g\", \"files\": [\"api.py\", "
		"\"./models.py\"], \"checks\": [\"c\"], \"deps\": [\"db\"]},"
		" {\"id\": \"db\", \"title\": \"DB\", \"goal\": \"g\", \"files\": [\"db.py\"], "
		"\"checks\": [\"c\"], \"deps\": []},"
		" {\"id\": \"admin\", \"title\": \"Admin\", \"goal\": \"g\", \"files\": [\"admin.py\", "
		"\"models.py\"], \"checks\": [\"c\"], \"deps\": [\"db\"]},"
		" {\"id\": \"docs\", \"title\": \"Docs\", \"goal\": \"g\", \"files\": [\"docs.md\"], "
		"\"checks\": [\"c\"], \"deps\": []}]");
	json_t *pj;
	nd_plan p;
	(void)st;

	assert_int_equal(nd_plan_from_json(j, &p), 0);
	/* dependencies first; otherwise the model's order */
	assert_int_equal(p.ntasks, 4);
	assert_string_equal(p.tasks[0].id, "db");
	assert_string_equal(p.tasks[1].id, "api");
	assert_string_equal(p.tasks[2].id, "admin");
	assert_string_equal(p.tasks[3].id, "docs");
	/* api and admin both expect models.py: admin now waits for api */
	assert_int_equal(p.tasks[2].deps.n, 2);
	assert_string_equal(dep(&p.tasks[2], 1), "api");
	assert_int_equal(p.tasks[2].ordered_after.n, 1);
	assert_int_equal(p.tasks[1].deps.n, 1);
	assert_string_equal(p.tasks[1].files.v[1], "models.py"); /* "./" dropped */
	/* the scaffold: README.md comes from "readme", the paths are normalised */
	assert_int_equal(p.nfiles, 1);
	assert_string_equal(p.files[0].path, "Makefile");
	pj = nd_plan_to_json(&p);
	assert_int_equal(json_array_size(json_object_get(pj, "tasks")), 4);
	assert_null(json_object_get(pj, "files"));
	json_decref(pj);
	nd_plan_free(&p);
	json_decref(j);
}

static void expect_bad_plan(const char *tasks, const char *why)
{
	json_t *j = plan_with(tasks);
	nd_plan p;

	assert_int_equal(nd_plan_from_json(j, &p), ERR_INVALID);
	if (!strstr(err_last(), why))
		fail_msg("plan %s: '%s' does not say '%s'", tasks, err_last(), why);
	nd_plan_free(&p);
	json_decref(j);
}

static void test_bad_plans(void **st)
{
	(void)st;
	expect_bad_plan("[{\"id\": \"a\", \"title\": \"t\", \"goal\": \"g\", \"files\": [], \"checks\": "
			"[\"c\"], \"deps\": [\"b\"]}, {\"id\": \"b\", \"title\": \"t\", \"goal\": "
			"\"g\", \"files\": [], \"checks\": [\"c\"], \"deps\": [\"a\"]}]",
			"cycle");
	expect_bad_plan("[{\"id\": \"a\", \"title\": \"t\", \"goal\": \"g\", \"files\": [], \"checks\": "
			"[\"c\"], \"deps\": [\"zzz\"]}]",
			"not a task of the plan");
	expect_bad_plan("[{\"id\": \"a\", \"title\": \"t\", \"goal\": \"g\", \"files\": [], \"checks\": "
			"[\"c\"], \"deps\": [\"a\"]}]",
			"depends on itself");
	expect_bad_plan("[{\"id\": \"Bad Id\", \"title\": \"t\", \"goal\": \"g\", \"files\": [], "
			"\"checks\": [\"c\"], \"deps\": []}]",
			"task id");
	expect_bad_plan("[{\"id\": \"a\", \"title\": \"t\", \"goal\": \"g\", \"files\": "
			"[\"../../etc/passwd\"], \"checks\": [\"c\"], \"deps\": []}]",
			"not a usable path");
	expect_bad_plan("[{\"id\": \"a\", \"title\": \"t\", \"goal\": \"g\", \"files\": [], "
			"\"checks\": [\"c\"], \"deps\": []}, {\"id\": \"a\", \"title\": \"t\", "
			"\"goal\": \"g\", \"files\": [], \"checks\": [\"c\"], \"deps\": []}]",
			"two tasks");
	expect_bad_plan("[]", "schema");
	assert_int_equal(nd_path_check(".git/hooks/pre-commit"), ERR_INVALID);
	assert_int_equal(nd_path_check("/abs"), ERR_INVALID);
	assert_int_equal(nd_path_check("src/ok.py"), 0);
}

static void test_review(void **st)
{
	json_t *j = ts_json("{\"verdict\": \"request_changes\", \"summary\": \"no tests\", "
			    "\"comments\": [{\"file\": \"a.py\", \"line\": 3, \"comment\": \"add "
			    "one\"}]}");
	nd_review r;
	(void)st;

	assert_int_equal(nd_review_from_json(j, &r), 0);
	assert_int_equal(r.approve, 0);
	assert_int_equal(r.ncomments, 1);
	assert_int_equal(r.comments[0].line, 3);
	nd_review_free(&r);
	json_object_set_new(j, "verdict", json_string("maybe"));
	assert_int_equal(nd_review_from_json(j, &r), ERR_INVALID);
	nd_review_free(&r);
	json_decref(j);
}

static void test_summary(void **st)
{
	json_t *state = ts_json("{\"stage\": \"develop\", \"spec\": {\"name\": \"x\"}, \"tasks\": "
				"{\"a\": {\"status\": \"merged\", \"tokens_in\": 10, \"tokens_out\": "
				"5, \"cost_usd\": 0.5}, \"b\": {\"status\": \"working\"}, \"c\": "
				"{\"status\": \"blocked\"}}, \"questions\": {\"q:1:failed:c\": {}}, "
				"\"repo\": {\"path\": \"/r.git\"}}");
	json_t *s = nd_project_summary(state);
	(void)st;

	assert_string_equal(json_string_value(json_object_get(s, "stage")), "develop");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "tasks"), "merged")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "tasks"), "blocked")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(s, "workers")), 1);
	assert_int_equal(json_integer_value(json_object_get(s, "questions")), 1);
	assert_string_equal(nd_task_state_label("merging"), "testing");
	assert_string_equal(nd_task_state_label("merged"), "done");
	json_decref(s);
	json_decref(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_plan_order_and_shared_files),
		cmocka_unit_test(test_bad_plans),
		cmocka_unit_test(test_review),
		cmocka_unit_test(test_summary),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
