/* The eval's parts on their own: the person's policy, the record/replay
 * server under the real LLM client (turns by node and subject, mismatches,
 * a recording made through it), task.json refusals, the report's totals and
 * the gate. The whole runner is tests/scripts/test_eval.py. */
#include "tests/support/support.h"
#include "tests/support/fake_llm.h"
#include "tests/support/spawn_support.h"

#include "core/buf.h"
#include "core/err.h"
#include "eval/person.h"
#include "eval/replay.h"
#include "eval/report.h"
#include "eval/task.h"
#include "llm/llm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* [{"id", "label"}] of the space-separated ids. */
static json_t *opts(const char *ids)
{
	json_t *a = json_array();
	const char *p = ids;

	while (*p) {
		size_t n = strcspn(p, " ");
		json_array_append_new(a, json_pack("{s:s%, s:s%}", "id", p, n, "label", p, n));
		p += n;
		while (*p == ' ')
			p++;
	}
	return a;
}

static const char *chosen(ev_person *p, const char *key, const char *ids)
{
	static char out[32];
	json_t *o = opts(ids);
	int i = -1;

	assert_int_equal(ev_person_choose(p, key, o, &i), 0);
	assert_true(i >= 0);
	snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(json_array_get(o, (size_t)i),
									    "id")));
	json_decref(o);
	return out;
}

static void test_person(void **st)
{
	ev_person p;
	ev_task t;
	char *answers[2] = {"Python 3.11 only.", "No header line."};
	buf b;
	(void)st;

	memset(&p, 0, sizeof(p));
	memset(&t, 0, sizeof(t));
	t.answers = answers;
	t.nanswers = 2;
	buf_init(&b, 0);
	assert_int_equal(ev_person_reply(&p, &t, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "- Python 3.11 only.\n- No header line."));
	buf_reset(&b);
	assert_int_equal(ev_person_reply(&p, &t, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "nothing to add"));
	for (int i = 2; i < EV_PERSON_MAX_ANSWERS; i++)
		assert_int_equal(ev_person_reply(&p, &t, &b), 0);
	assert_int_equal(ev_person_reply(&p, &t, &b), 1); /* gives up */
	buf_free(&b);

	assert_string_equal(chosen(&p, "spec:1", "approve change cancel"), "approve");
	assert_string_equal(chosen(&p, "plan:2", "approve change cancel"), "approve");
	assert_false(p.stopped);
	/* retry once per task, then stop */
	assert_string_equal(chosen(&p, "q:1:failed:wc", "retry skip stop"), "retry");
	assert_string_equal(chosen(&p, "q:2:rounds:slug", "retry accept skip stop"), "retry");
	assert_false(p.stopped);
	assert_string_equal(chosen(&p, "q:3:failed:wc", "retry skip stop"), "stop");
	assert_true(p.stopped);
	p.stopped = 0;
	assert_string_equal(chosen(&p, "budget:4", "extend stop"), "stop");
	assert_string_equal(chosen(&p, "q:5:budget:wc", "extend skip stop"), "stop");
	assert_string_equal(chosen(&p, "q:6:merge:wc", "merge skip stop"), "merge");
	assert_string_equal(chosen(&p, "something:new", "yes no cancel"), "cancel");
	assert_int_equal(p.interventions, EV_PERSON_MAX_ANSWERS + 9);
}

/* A chat reply as the replay server's recording holds it. */
static void line(buf *b, const char *node, const char *subject, int turn, const char *schema,
		 const char *content)
{
	json_t *l = json_pack("{s:s, s:s, s:i, s:s, s:{s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:i, s:i}}}",
			      "node", node, "subject", subject, "turn", turn, "schema", schema,
			      "response", "choices", "index", 0, "message", "role", "assistant",
			      "content", content, "finish_reason", "stop", "usage", "prompt_tokens",
			      100 * turn, "completion_tokens", 10);
	char *s = json_dumps(l, JSON_COMPACT);

	buf_printf(b, "%s\n", s);
	free(s);
	json_decref(l);
}

static llm_service *service_keyed(const char *base, const char *key_env)
{
	char text[1024];
	llm_registry *reg = NULL;
	llm_service *s = NULL;
	llm_options o;

	snprintf(text, sizeof(text),
		 "{\"endpoints\": {\"rec\": {\"base_url\": \"%s/e/rec\", \"max_retries\": 0%s%s%s}}, "
		 "\"models\": {\"m\": {\"endpoint\": \"rec\", \"context\": 8192, \"price_in\": 1, "
		 "\"price_out\": 2}}, \"roles\": {\"default\": [\"m\"]}}",
		 base, key_env ? ", \"api_key_env\": \"" : "", key_env ? key_env : "",
		 key_env ? "\"" : "");
	assert_int_equal(llm_registry_load_text(&reg, text, "test"), 0);
	memset(&o, 0, sizeof(o));
	o.project_budget = -1;
	o.user_budget = -1;
	o.stats_interval_ms = -1;
	o.identity_headers = 1;
	assert_int_equal(llm_service_new(&s, reg, &o), 0);
	return s;
}

static llm_service *service(const char *base)
{
	return service_keyed(base, NULL);
}

static int ask(llm_service *s, const char *project, const char *node, const char *subject,
	       const json_t *schema, char *content, size_t cap)
{
	llm_call call;
	llm_request rq;
	llm_message m = {.role = "user", .content = "anything at all"};
	llm_response r;
	int rc;

	memset(&call, 0, sizeof(call));
	call.project = project;
	call.node = node;
	call.subject = subject;
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	rq.json_schema = schema;
	rq.schema_name = schema ? "verdict" : NULL;
	rc = llm_chat(s, &call, &rq, &r);
	snprintf(content, cap, "%s", rc == 0 ? (r.content ? r.content : "") : err_last());
	llm_response_free(&r);
	return rc;
}

static void test_replay(void **st)
{
	ev_proxy *px = NULL, *rec = NULL;
	llm_service *s, *s2;
	ev_proxy_stats ps;
	json_t *schema = ts_json("{\"type\": \"object\", \"required\": [\"ok\"], \"properties\": "
				 "{\"ok\": {\"type\": \"boolean\"}}}");
	char got[1024], dir[512], path[600], *text = NULL;
	buf b;
	(void)st;

	buf_init(&b, 0);
	line(&b, "brainstorm", "", 1, "", "first");
	line(&b, "brainstorm", "", 2, "", "second");
	line(&b, "worker", "a", 1, "", "a1");
	line(&b, "worker", "b", 1, "", "b1");
	line(&b, "worker", "a", 2, "", "a2");
	line(&b, "reviewer", "a", 1, "verdict", "{\"ok\": true}");
	line(&b, "reviewer", "b", 1, "verdict", "{\"ok\": \"yes\"}");
	/* a model's failure as it was recorded: served as it was, then the re-ask */
	line(&b, "reviewer", "c", 1, "verdict", "{\"ok\": tru");
	b.len--; /* "fits": false before the newline */
	b.data[b.len - 1] = '\0';
	b.len--;
	buf_puts(&b, ", \"fits\": false}\n");
	line(&b, "reviewer", "c", 2, "verdict", "{\"ok\": false}");
	assert_int_equal(ev_proxy_start(&px, EV_REPLAY, NULL), 0);
	assert_int_equal(ev_proxy_load(px, "t1", buf_cstr(&b), "t1.jsonl"), 0);
	assert_true(ev_proxy_has(px, "t1"));
	assert_false(ev_proxy_has(px, "t2"));
	assert_int_equal(ev_proxy_bind(px, "term:x:1", "t1"), 0);
	s = service(ev_proxy_url(px));

	/* matched by node, subject and turn, whatever the prompt */
	assert_int_equal(ask(s, "term:x:1", "worker", "b", NULL, got, sizeof(got)), 0);
	assert_string_equal(got, "b1");
	assert_int_equal(ask(s, "term:x:1", "brainstorm", NULL, NULL, got, sizeof(got)), 0);
	assert_string_equal(got, "first");
	assert_int_equal(ask(s, "term:x:1", "worker", "a", NULL, got, sizeof(got)), 0);
	assert_string_equal(got, "a1");
	assert_int_equal(ask(s, "term:x:1", "worker", "a", NULL, got, sizeof(got)), 0);
	assert_string_equal(got, "a2");
	assert_int_equal(ask(s, "term:x:1", "reviewer", "a", schema, got, sizeof(got)), 0);
	assert_string_equal(got, "{\"ok\": true}");
	assert_int_equal(ask(s, "term:x:1", "reviewer", "c", schema, got, sizeof(got)), 0);
	assert_string_equal(got, "{\"ok\": false}");
	ev_proxy_task_stats(px, "t1", &ps);
	assert_int_equal(ps.mismatches, 0);
	assert_int_equal(ps.calls, 7);

	/* a reply the schema rejects now; a turn that was never recorded */
	assert_true(ask(s, "term:x:1", "reviewer", "b", schema, got, sizeof(got)) < 0);
	assert_non_null(strstr(got, "replay mismatch"));
	assert_non_null(strstr(got, "no longer fits what the call asks for ('verdict')"));
	assert_true(ask(s, "term:x:1", "worker", "a", NULL, got, sizeof(got)) < 0);
	assert_non_null(strstr(got, "no recorded answer for node worker, subject a turn 3"));
	/* the next turn of the brainstorm: free text, as recorded */
	assert_int_equal(ask(s, "term:x:1", "brainstorm", NULL, NULL, got, sizeof(got)), 0);
	ev_proxy_task_stats(px, "t1", &ps);
	assert_int_equal(ps.mismatches, 2);
	assert_non_null(strstr(ps.mismatch, "no longer fits"));
	assert_int_equal(ps.recorded, 9);
	assert_int_equal(ps.unused, 1); /* reviewer b's reply was never served */
	/* a project of no task */
	assert_true(ask(s, "term:y:1", "worker", "a", NULL, got, sizeof(got)) < 0);
	assert_non_null(strstr(got, "belongs to no eval task"));

	/* recording: the calls pass through to a real server (the fake OpenAI
	 * one), its answers come back unchanged and land in DIR/<task>.jsonl,
	 * the key reaches the server and never the file */
	{
		fake_llm up;
		json_t *reqs, *a, *c;
		const char *nl;

		fake_llm_start(&up);
		tss_script(&up, json_pack("[o, {s:i, s:{s:{s:s, s:s}}}]", tss_text("from upstream"),
					  "status", 400, "json", "error", "message",
					  "the upstream refuses", "type", "invalid_request_error"));
		snprintf(dir, sizeof(dir), "%s/rec", getenv("ORCH_DATA_DIR") ? getenv("ORCH_DATA_DIR")
									     : "/tmp");
		assert_int_equal(ev_proxy_start(&rec, EV_RECORD, dir), 0);
		assert_int_equal(ev_proxy_upstream(rec, "rec", up.base_url, 10000), 0);
		assert_int_equal(ev_proxy_bind(rec, "*", "t1"), 0);
		setenv("TEST_EVAL_KEY", "sk-eval-secret-4711", 1);
		s2 = service_keyed(ev_proxy_url(rec), "TEST_EVAL_KEY");
		assert_int_equal(ask(s2, "term:z:1", "worker", "b", NULL, got, sizeof(got)), 0);
		assert_string_equal(got, "from upstream");
		assert_true(ask(s2, "term:z:1", "worker", "b", NULL, got, sizeof(got)) < 0);
		assert_non_null(strstr(got, "the upstream refuses"));
		llm_service_free(s2);
		ev_proxy_free(rec);
		reqs = fake_llm_requests(&up);
		assert_int_equal(json_array_size(reqs), 2);
		assert_string_equal(json_string_value(json_object_get(json_object_get(
					    json_array_get(reqs, 0), "headers"), "authorization")),
				    "Bearer sk-eval-secret-4711");
		json_decref(reqs);
		fake_llm_stop(&up);
		snprintf(path, sizeof(path), "%s/t1.jsonl", dir);
		assert_int_equal(ev_read_text(path, &text), 0);
		assert_null(strstr(text, "sk-eval-secret-4711"));
		nl = strchr(text, '\n');
		assert_non_null(nl);
		a = json_loadb(text, (size_t)(nl - text), 0, NULL);
		c = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
		assert_non_null(a);
		assert_non_null(c);
		assert_string_equal(json_string_value(json_object_get(a, "node")), "worker");
		assert_string_equal(json_string_value(json_object_get(a, "subject")), "b");
		assert_int_equal(json_integer_value(json_object_get(a, "turn")), 1);
		assert_int_equal(json_integer_value(json_object_get(a, "status")), 200);
		assert_int_equal(json_integer_value(json_object_get(c, "turn")), 2);
		assert_int_equal(json_integer_value(json_object_get(c, "status")), 400);
		json_decref(a);
		json_decref(c);
		/* and it replays, the refusal included */
		assert_int_equal(ev_proxy_load(px, "t2", text, path), 0);
		assert_int_equal(ev_proxy_bind(px, "term:w:1", "t2"), 0);
		assert_int_equal(ask(s, "term:w:1", "worker", "b", NULL, got, sizeof(got)), 0);
		assert_string_equal(got, "from upstream");
		assert_true(ask(s, "term:w:1", "worker", "b", NULL, got, sizeof(got)) < 0);
		assert_non_null(strstr(got, "the upstream refuses"));
		free(text);
	}

	/* a recording that cannot be read says where */
	assert_true(ev_proxy_load(px, "t3", "{\"node\": \"worker\", \"turn\": 1, \"body\": \"x\"}\n"
					    "{\"node\": \"worker\", \"turn\": 1, \"body\": \"y\"}\n",
				  "t3.jsonl") < 0);
	assert_non_null(strstr(err_last(), "t3.jsonl, line 2"));
	assert_non_null(strstr(err_last(), "recorded twice"));
	assert_true(ev_proxy_load(px, "t4", "{\"turn\": 1, \"body\": \"x\"}\n", "t4.jsonl") < 0);
	assert_non_null(strstr(err_last(), "\"node\""));
	assert_true(ev_proxy_load(px, "t5", "not json\n", "t5.jsonl") < 0);

	llm_service_free(s);
	ev_proxy_free(px);
	json_decref(schema);
	buf_free(&b);
}

static void test_task_refused(void **st)
{
	char dir[512], path[600];
	const char *dd = getenv("ORCH_DATA_DIR") ? getenv("ORCH_DATA_DIR") : "/tmp";
	ev_task t;
	FILE *f;
	(void)st;

	snprintf(dir, sizeof(dir), "%s/py-sum", dd);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/hidden", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/hidden/eval_hidden_sum.py", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("pass\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/task.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"id\": \"py-sum\", \"title\": \"sum\", \"lang\": \"python\", \"size\": \"small\", "
	      "\"kind\": \"new\", \"idea\": \"A function sum_of(xs) in sum.py that adds numbers.\", "
	      "\"answers\": [], \"toolchain\": [\"python3\"], \"budget\": {\"tokens\": 1000, "
	      "\"usd\": 0.1, \"wall_s\": 60}, \"hidden\": {\"command\": \"python3 -m unittest\", "
	      "\"timeout_s\": 60}, \"repo_tests\": {}, \"expect\": 1}",
	      f);
	fclose(f);
	assert_int_equal(ev_task_load(dir, &t), ERR_INVALID);
	assert_non_null(strstr(err_last(), "task py-sum"));
	assert_non_null(strstr(err_last(), "unknown key 'expect'"));
	assert_non_null(strstr(err_last(), "unknown key 'repo_tests' (only for kind change)"));
	ev_task_free(&t);
}

static void test_report_and_gate(void **st)
{
	json_t *r = ts_json(
		"{\"run\": {\"mode\": \"replay\"}, \"tasks\": ["
		"{\"id\": \"a\", \"outcome\": \"solved\", \"solved\": true, \"cost_usd\": 0.02, "
		"\"tokens_in\": 100, \"tokens_out\": 10, \"calls_total\": 3, \"merged_s\": 10},"
		"{\"id\": \"b\", \"outcome\": \"solved\", \"solved\": true, \"cost_usd\": 0.04, "
		"\"merged_s\": 30},"
		"{\"id\": \"c\", \"outcome\": \"not solved\", \"solved\": false, \"cost_usd\": 0.03, "
		"\"merged_s\": 20},"
		"{\"id\": \"d\", \"outcome\": \"skipped\", \"reason\": \"no recording\"}]}");
	const json_t *tot;
	char path[600];
	const char *dd = getenv("ORCH_DATA_DIR") ? getenv("ORCH_DATA_DIR") : "/tmp";
	FILE *f;
	int ok = -1;
	(void)st;

	assert_int_equal(ev_report_totals(r), 0);
	tot = json_object_get(r, "totals");
	assert_int_equal(json_integer_value(json_object_get(tot, "ran")), 3);
	assert_int_equal(json_integer_value(json_object_get(tot, "skipped")), 1);
	assert_int_equal(json_integer_value(json_object_get(tot, "solved")), 2);
	assert_true(fabs(json_real_value(json_object_get(tot, "cost_per_solved_usd")) - 0.045) < 1e-9);
	assert_true(fabs(json_real_value(json_object_get(tot, "median_merged_s")) - 20) < 1e-9);

	/* the baseline solved c too, cheaper: the pass rate fell 33 points */
	snprintf(path, sizeof(path), "%s/base.json", dd);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"tolerance\": {\"pass_rate\": 0.1, \"cost_per_solved\": 0.25}, \"tasks\": {"
	      "\"a\": {\"solved\": true, \"cost_usd\": 0.02}, \"b\": {\"solved\": true, \"cost_usd\": "
	      "0.04}, \"c\": {\"solved\": true, \"cost_usd\": 0.03}, \"z\": {\"solved\": true}}}",
	      f);
	fclose(f);
	assert_int_equal(ev_report_gate(r, path, &ok), 0);
	assert_int_equal(ok, 0);
	{
		const json_t *g = json_object_get(r, "gate");
		const json_t *ch = json_array_get(json_object_get(g, "changed"), 0);
		assert_int_equal(json_integer_value(json_object_get(g, "compared")), 3);
		assert_string_equal(json_string_value(json_object_get(ch, "id")), "c");
		assert_string_equal(json_string_value(json_object_get(ch, "now")), "not solved");
	}
	/* the same outcomes, a cost per solved task 20% higher: within the tolerance */
	snprintf(path, sizeof(path), "%s/base2.json", dd);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"tolerance\": {\"pass_rate\": 0.1, \"cost_per_solved\": 0.25}, \"tasks\": {"
	      "\"a\": {\"solved\": true, \"cost_usd\": 0.025}, \"b\": {\"solved\": true, "
	      "\"cost_usd\": 0.03}, \"c\": {\"solved\": false, \"cost_usd\": 0.03}}}",
	      f);
	fclose(f);
	assert_int_equal(ev_report_gate(r, path, &ok), 0);
	assert_int_equal(ok, 1);
	/* 50% higher: not */
	snprintf(path, sizeof(path), "%s/base3.json", dd);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"tasks\": {\"a\": {\"solved\": true, \"cost_usd\": 0.02}, \"b\": {\"solved\": "
	      "true, \"cost_usd\": 0.02}, \"c\": {\"solved\": false}}}",
	      f);
	fclose(f);
	assert_int_equal(ev_report_gate(r, path, &ok), 0);
	assert_int_equal(ok, 0);
	assert_int_equal(ev_report_gate(r, "/nonexistent/base.json", &ok), ERR_PARSE);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_person),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_task_refused),
		cmocka_unit_test(test_report_and_gate),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
