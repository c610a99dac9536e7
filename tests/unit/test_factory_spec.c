/* The factory's edge: the model's spec, plan and verdict read into typed
 * structs; a plan checked as a DAG, with tasks that share files ordered;
 * the project's state typed (nodes/model.h): its tables of moves, and what
 * a node changed written back, and nothing else. */
#include "tests/support/support.h"

#include "core/buf.h"
#include "core/err.h"
#include "nodes/factory.h"
#include "nodes/model.h"
#include "nodes/netspec.h"
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

/* The spec's network and setup command: read, written back, shown, carried
 * into a spawn request; the person's lines win and say what to write. */
static void test_spec_network(void **st)
{
	const char *base = "{\"name\": \"app\", \"summary\": \"s\", \"users\": [\"u\"], \"features\": "
			   "[{\"name\": \"f\", \"acceptance\": [\"a\"]}], \"language\": \"Python 3.11\", "
			   "\"stack\": [], \"constraints\": [], \"test_command\": \"pytest\"";
	char text[2048];
	json_t *j, *back, *rq;
	nd_spec s;
	buf html, said;
	(void)st;

	snprintf(text, sizeof(text), "%s, \"setup_command\": \"pip install -r requirements.txt\", "
		 "\"network\": \" Registries \"}", base);
	j = ts_json(text);
	assert_int_equal(nd_spec_from_json(j, &s), 0);
	assert_string_equal(s.net.setup_command, "pip install -r requirements.txt");
	assert_string_equal(s.net.policy, "registries");
	assert_int_equal(s.net.hosts.n, 0);
	back = nd_spec_to_json(&s);
	nd_spec_free(&s);
	assert_string_equal(json_string_value(json_object_get(back, "network")), "registries");
	assert_int_equal(nd_spec_from_json(back, &s), 0); /* what it writes, it reads */
	nd_spec_free(&s);
	rq = nd_netspec_request(back);
	assert_string_equal(json_string_value(json_object_get(rq, "policy")), "registries");
	assert_string_equal(json_string_value(json_object_get(rq, "language")), "python");
	assert_null(json_object_get(rq, "hosts"));
	json_decref(rq);
	buf_init(&html, 0);
	nd_spec_html(back, &html);
	assert_non_null(strstr(buf_cstr(&html), "<b>Setup</b> <code>pip install -r requirements.txt"));
	assert_non_null(strstr(buf_cstr(&html), "<b>Network</b> the package registries of its "
						 "language"));
	buf_free(&html);

	/* the person's lines win, the last of a kind; any case, any spacing */
	buf_init(&said, 0);
	assert_int_equal(nd_netspec_said("Sounds good.\n  Network : registry.example.org, "
					 "10.0.0.5:8081\nnetwork: pypi.example.org *.example.org\n"
					 "SETUP COMMAND: make deps\n",
					 back, &said),
			 3);
	assert_string_equal(buf_cstr(&said), "network: pypi.example.org, *.example.org; "
					     "setup command: make deps");
	rq = nd_netspec_request(back);
	assert_string_equal(json_string_value(json_object_get(rq, "policy")), "hosts");
	assert_string_equal(json_string_value(json_array_get(json_object_get(rq, "hosts"), 1)),
			    "*.example.org");
	assert_null(json_object_get(rq, "language"));
	json_decref(rq);
	assert_int_equal(nd_spec_from_json(back, &s), 0);
	assert_string_equal(s.net.setup_command, "make deps");
	assert_int_equal(s.net.hosts.n, 2);
	nd_spec_free(&s);
	/* a value that cannot be used changes nothing and says what to write */
	buf_reset(&said);
	assert_int_equal(nd_netspec_said("setup command: none\nnetwork: pypi.org; rm -rf /", back,
					 &said),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "write none, registries, or the hosts"));
	assert_string_equal(json_string_value(json_object_get(back, "setup_command")), "make deps");
	/* none, and no setup */
	assert_int_equal(nd_netspec_said("network: NONE\nsetup command: none", back, NULL), 2);
	assert_null(json_object_get(back, "setup_command"));
	rq = nd_netspec_request(back);
	assert_string_equal(json_string_value(json_object_get(rq, "policy")), "none");
	json_decref(rq);
	/* prose is not a setting: only a line of its own */
	assert_int_equal(nd_netspec_said("the network: none of that matters", back, NULL), 0);
	buf_free(&said);
	json_decref(back);
	json_decref(j);

	/* no network: the spawner's default; a pattern holds no quotes */
	snprintf(text, sizeof(text), "%s}", base);
	j = ts_json(text);
	assert_int_equal(nd_spec_from_json(j, &s), 0);
	assert_null(s.net.policy);
	back = nd_spec_to_json(&s);
	assert_null(json_object_get(back, "network"));
	assert_null(nd_netspec_request(back));
	buf_init(&html, 0);
	nd_spec_html(back, &html);
	assert_non_null(strstr(buf_cstr(&html), "<b>Network</b> the default of the configuration"));
	buf_free(&html);
	json_decref(back);
	nd_spec_free(&s);
	json_decref(j);
	snprintf(text, sizeof(text), "%s, \"network\": \"a.org, b.org'\"}", base);
	j = ts_json(text);
	assert_int_equal(nd_spec_from_json(j, &s), ERR_INVALID);
	assert_non_null(strstr(err_last(), "spec.network"));
	nd_spec_free(&s);
	json_decref(j);
	snprintf(text, sizeof(text), "%s, \"network\": {\"policy\": \"registries\"}}", base);
	j = ts_json(text);
	assert_int_equal(nd_spec_from_json(j, &s), ERR_INVALID); /* the schema: a string */
	nd_spec_free(&s);
	json_decref(j);
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
			"$.tasks[0].id: does not match the pattern");
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

/* The moves the tables allow, and those they refuse. */
static void test_moves(void **st)
{
	nd_task t;
	nd_project p;
	(void)st;

	memset(&t, 0, sizeof(t));
	snprintf(t.id, sizeof(t.id), "slug");
	t.status = ND_TASK_QUEUED;
	assert_int_equal(nd_task_move(&t, ND_TASK_WORKING), 0);
	assert_int_equal(nd_task_move(&t, ND_TASK_REVIEW), 0);
	assert_int_equal(nd_task_move(&t, ND_TASK_MERGED), ERR_INTERNAL); /* not reviewed */
	assert_non_null(strstr(err_last(), "task slug cannot go from 'review' to 'merged'"));
	assert_int_equal(t.status, ND_TASK_REVIEW);
	t.status = ND_TASK_MERGED;
	assert_int_equal(nd_task_move(&t, ND_TASK_QUEUED), ERR_INTERNAL); /* merged is final */
	assert_int_equal(nd_task_move(&t, ND_TASK_MERGED), 0);              /* staying is fine */
	memset(&p, 0, sizeof(p));
	assert_int_equal(nd_stage_move(&p, ND_STAGE_BRAINSTORM), 0);
	assert_int_equal(nd_stage_move(&p, ND_STAGE_DEVELOP), ERR_INTERNAL); /* no plan yet */
	p.stage = ND_STAGE_DONE;
	assert_int_equal(nd_stage_move(&p, ND_STAGE_CANCELLED), ERR_INTERNAL);
	/* every status has a name, a label and an icon; the drifted words are settled */
	for (int i = 0; i < ND_TASK_COUNT; i++)
		assert_true(ND_STATUS[i].name && ND_STATUS[i].label && ND_STATUS[i].icon);
	assert_string_equal(nd_task_state_label("review_error"), "review failed");
	assert_string_equal(nd_task_state_label("review_budget"), "budget reached");
	assert_int_equal(nd_word_find(ND_STATUS, ND_TASK_COUNT, "failed"), ND_TASK_COUNT);
}

/* A state loaded and stored unchanged writes nothing; what a node changes
 * is written, key by key, task by task. */
static void test_load_store(void **st)
{
	json_t *state = ts_json(
	    "{\"stage\": \"develop\", \"asks\": 2, \"chat\": {\"channel\": \"term\", \"chat\": \"ada\"}, "
	    "\"user\": {\"id\": 7, \"name\": \"Ada\", \"username\": \"ada\"}, "
	    "\"repo\": {\"path\": \"/r.git\", \"branch\": \"main\", \"remote\": {\"url\": "
	    "\"https://x/r.git\", \"error\": \"no handle\"}}, \"main\": {\"passed\": 3, \"total\": 3}, "
	    "\"tasks\": {\"a\": {\"id\": \"a\", \"title\": \"A\", \"status\": \"blocked\", \"round\": 1, "
	    "\"attempt\": 2, \"failures\": 2, \"branch\": \"task/a\", \"question\": \"q:2:failed:a\", "
	    "\"tests\": {\"passed\": 1, \"total\": 2}}, \"b\": {\"id\": \"b\", \"title\": \"B\", "
	    "\"status\": \"review_budget\", \"round\": 1, \"attempt\": 1, \"failures\": 0, "
	    "\"budget\": {\"kind\": \"project\", \"scope\": \"t:1\", \"limit_usd\": 1.0, "
	    "\"spent_usd\": 1.0}}}, "
	    "\"questions\": {\"q:2:failed:a\": {\"kind\": \"failed\", \"task\": \"a\", \"text\": \"?\", "
	    "\"options\": [\"retry\", \"skip\", \"stop\"], \"asked_at\": 5, \"resume\": \"work\"}}}");
	json_t *up = json_object(), *bad;
	nd_project p, was;
	nd_task *a;
	(void)st;

	assert_int_equal(nd_project_load(&p, state), 0);
	assert_int_equal(nd_project_load(&was, state), 0);
	nd_project_store(&p, &was, up);
	assert_int_equal(json_object_size(up), 0); /* nothing changed, nothing written */
	assert_int_equal(p.stage, ND_STAGE_DEVELOP);
	assert_int_equal(p.nqs, 1);
	assert_int_equal(p.qs[0].opts[1], ND_OPT_SKIP);
	assert_true(p.repo.has_remote && strcmp(p.repo.remote_error, "no handle") == 0);
	assert_true(p.tasks[1].has_budget && p.tasks[1].budget_limit == 1.0);
	/* the person skips a: the task moves, the question goes, asks counts on */
	a = nd_task_find(&p, "a");
	assert_int_equal(nd_task_move(a, ND_TASK_SKIPPED), 0);
	nd_str_set(&a->question, NULL);
	nd_question_remove(&p, "q:2:failed:a");
	p.asks++;
	nd_project_store(&p, &was, up);
	assert_int_equal(json_object_size(up), 3); /* tasks, questions, asks */
	assert_int_equal(json_integer_value(json_object_get(up, "asks")), 3);
	assert_true(json_is_null(json_object_get(json_object_get(up, "questions"),
						 "q:2:failed:a")));
	assert_int_equal(json_object_size(json_object_get(up, "tasks")), 1); /* b unchanged */
	{
		json_t *ta = json_object_get(json_object_get(up, "tasks"), "a");
		assert_string_equal(json_string_value(json_object_get(ta, "status")), "skipped");
		assert_null(json_object_get(ta, "question"));
		assert_int_equal(json_integer_value(json_object_get(json_object_get(ta, "tests"),
								    "total")), 2);
	}
	nd_project_free(&p);
	nd_project_free(&was);
	/* a status it does not know is refused, naming it */
	bad = ts_json("{\"stage\": \"develop\", \"tasks\": {\"a\": {\"status\": \"failed\"}}}");
	assert_int_equal(nd_project_load(&p, bad), ERR_INVALID);
	assert_non_null(strstr(err_last(), "unknown status 'failed'"));
	nd_project_free(&p);
	json_decref(bad);
	json_decref(up);
	json_decref(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_spec_network),
		cmocka_unit_test(test_plan_order_and_shared_files),
		cmocka_unit_test(test_bad_plans),
		cmocka_unit_test(test_review),
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_moves),
		cmocka_unit_test(test_load_store),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
