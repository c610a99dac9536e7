/* The coding agent on its own: a real sandbox over a real git workspace,
 * the model scripted through the fake OpenAI-compatible server. Each limit
 * and each way of ending is a case. */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "spawner/agent.h"
#include "spawner/gitws.h"
#include "spawner/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static fake_llm g_fake;
static pg_pool *g_pool;
static char g_repo[1024];
static int g_case;

typedef struct fixture {
	spw_git *git;
	sbx *box;
	llm_service *llm;
	char transcript[1024];
	agent_config cfg;
	buf log;
} fixture;

static llm_service *service(double project_budget)
{
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_options o;

	memset(&o, 0, sizeof(o));
	o.pool = g_pool;
	o.project_budget = project_budget;
	o.user_budget = -1;
	o.stats_interval_ms = -1;
	if (llm_registry_load_file(&r, tss_models(&g_fake)) < 0 || llm_service_new(&s, r, &o) < 0)
		fail_msg("llm: %s", err_last());
	return s;
}

static int fp(void *udata, unsigned char out[32])
{
	return spw_git_fingerprint(udata, out);
}

static void on_log(void *udata, const char *kind, const char *text)
{
	buf_printf(udata, "%s: %s\n", kind, text);
}

static void fixture_init(fixture *f, double budget)
{
	char dir[1024], ws[1024], host[1024];
	sbx_opts o;

	memset(f, 0, sizeof(*f));
	buf_init(&f->log, 0);
	snprintf(dir, sizeof(dir), "%s/agent-%d", getenv("ORCH_DATA_DIR"), ++g_case);
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(host, sizeof(host), "%s/host.git", dir);
	snprintf(f->transcript, sizeof(f->transcript), "%s/transcript.jsonl", dir);
	mkdir(dir, 0700);
	mkdir(ws, 0700);
	if (spw_git_prepare(&f->git, g_repo, NULL, "main", "task/a", host, ws) < 0)
		fail_msg("workspace: %s", err_last());
	memset(&o, 0, sizeof(o));
	o.workspace = ws;
	o.mem_bytes = 256 << 20;
	o.pids = 64;
	if (sbx_new(&f->box, &o) < 0)
		fail_msg("sandbox: %s", err_last());
	f->llm = service(budget);
	f->cfg.llm = f->llm;
	f->cfg.call.project = "proj-agent";
	f->cfg.call.worker = "w-agent";
	f->cfg.box = f->box;
	f->cfg.system_prompt = "You fix bugs. One command per reply.";
	f->cfg.task_prompt = "Make the tests pass.";
	f->cfg.format_error_prompt = "Your reply was not run: {{reason}}.";
	f->cfg.transcript = f->transcript;
	f->cfg.use_tools = 1;
	f->cfg.max_steps = 20;
	f->cfg.max_cost_usd = 5;
	f->cfg.wall_ms = 120000;
	f->cfg.cmd_timeout_ms = 20000;
	f->cfg.max_format_errors = 3;
	f->cfg.max_repeats = 3;
	f->cfg.stall_steps = 10;
	f->cfg.output_cap = 2000;
	f->cfg.fingerprint = fp;
	f->cfg.fp_udata = f->git;
	f->cfg.log = on_log;
	f->cfg.log_udata = &f->log;
	fake_llm_reset(&g_fake);
}

static void fixture_free(fixture *f)
{
	sbx_free(f->box);
	spw_git_free(f->git);
	llm_service_free(f->llm);
	buf_free(&f->log);
}

/* The transcript's lines of `type`. */
static int transcript_count(const fixture *f, const char *type)
{
	FILE *in = fopen(f->transcript, "r");
	char line[1 << 16];
	int n = 0;

	assert_non_null(in);
	while (fgets(line, sizeof(line), in)) {
		json_t *j = json_loads(line, 0, NULL);

		assert_non_null(j); /* every line is JSON */
		if (strcmp(json_string_value(json_object_get(j, "type")), type) == 0)
			n++;
		json_decref(j);
	}
	fclose(in);
	return n;
}

/* The content of the last message of the last request the fake received. */
static char *last_prompt_tail(void)
{
	json_t *reqs = fake_llm_requests(&g_fake);
	json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
	json_t *body = json_incref(json_object_get(last, "body"));
	json_t *msgs = json_object_get(body, "messages");
	const char *c = json_string_value(
		json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content"));
	char *out = strdup(c ? c : "");

	json_decref(body);
	json_decref(reqs);
	return out;
}

static void test_submit_with_observations(void **state)
{
	fixture f;
	agent_result r;
	char *tail;
	(void)state;

	fixture_init(&f, -1);
	tss_script(&g_fake, json_pack("[o, o, o, o]",
		tss_bash("cat calc.py; echo to-stderr >&2; exit 3"),
		tss_text("Long output next.\n\n```bash\nseq 1 100000\n```\n"),
		tss_text("Fixing it.\n```sh\nsed -i 's/a - b/a + b/' calc.py && python3 -m unittest "
			 "2>&1 | tail -1\n```"),
		tss_tool("submit", "{\"summary\": \"add() adds now\"}")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_SUBMITTED);
	assert_string_equal(r.summary, "add() adds now");
	assert_int_equal(r.steps, 4);
	assert_int_equal(r.actions, 3);
	assert_int_equal(r.tokens_in, 400);
	assert_true(r.cost_usd > 0);
	/* the model saw exit status and merged output; long output as head and tail */
	{
		json_t *reqs = fake_llm_requests(&g_fake);
		char *all = json_dumps(reqs, JSON_COMPACT);

		assert_non_null(strstr(all, "<returncode>3</returncode>"));
		assert_non_null(strstr(all, "return a - b"));
		assert_non_null(strstr(all, "to-stderr"));
		assert_non_null(strstr(all, "\\n99999\\n100000"));   /* the tail */
		assert_non_null(strstr(all, "<output>\\n1\\n2\\n3\\n")); /* the head */
		assert_null(strstr(all, "\\n50000\\n"));             /* not the middle */
		assert_non_null(strstr(all, "only its beginning and end are shown"));
		/* the tool call's observation answers it by id */
		assert_non_null(strstr(all, "\"tool_call_id\""));
		free(all);
		json_decref(reqs);
	}
	tail = last_prompt_tail();
	if (!strstr(tail, "OK"))
		fail_msg("last observation: %s", tail);
	free(tail);
	/* the work is in the workspace; the transcript has every step */
	assert_int_equal(transcript_count(&f, "start"), 1);
	assert_int_equal(transcript_count(&f, "step"), 4);
	assert_int_equal(transcript_count(&f, "end"), 1);
	assert_non_null(strstr(buf_cstr(&f.log), "action: $ seq 1 100000"));
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_submit_in_a_block(void **state)
{
	fixture f;
	agent_result r;
	(void)state;

	fixture_init(&f, -1);
	f.cfg.use_tools = 0;
	tss_script(&g_fake, json_pack("[o]", tss_text("Done.\n```bash\nsubmit\nnothing to do\n```")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_SUBMITTED);
	assert_string_equal(r.summary, "nothing to do");
	assert_int_equal(r.actions, 0);
	{
		/* without tools no tool is offered */
		json_t *reqs = fake_llm_requests(&g_fake);
		json_t *body = json_object_get(json_array_get(reqs, 0), "body");
		assert_non_null(json_object_get(body, "messages"));
		assert_null(json_object_get(body, "tools"));
		json_decref(reqs);
	}
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_format_errors_end_the_run(void **state)
{
	fixture f;
	agent_result r;
	char *tail;
	(void)state;

	fixture_init(&f, -1);
	tss_script(&g_fake, json_pack("[o, o, o, o, o, o]", tss_text("I will look at the code."),
				      tss_bash("true"),
				      tss_text("```bash\nls\n```\nand\n```bash\npwd\n```"),
				      tss_text("```python\nprint(1)\n```"),
				      tss_tool("rm_rf", "{}"), tss_text("never asked")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_FORMAT_ERRORS);
	/* one good reply resets the streak: 1 error, 1 action, then 3 in a row */
	assert_int_equal(r.format_errors, 4);
	assert_int_equal(r.steps, 5);
	assert_int_equal(fake_llm_count(&g_fake), 5);
	assert_non_null(strstr(r.reason, "3 replies in a row"));
	assert_non_null(strstr(r.reason, "rm_rf"));
	tail = last_prompt_tail(); /* the tool call was answered with the error */
	if (!strstr(tail, "Your reply was not run: it holds no ```bash block"))
		fail_msg("last message: %s", tail);
	free(tail);
	assert_int_equal(transcript_count(&f, "format_error"), 4);
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_loop_detected(void **state)
{
	fixture f;
	agent_result r;
	(void)state;

	fixture_init(&f, -1);
	tss_script(&g_fake, json_pack("[o, o, o, o, o]", tss_bash("ls"), tss_bash("cat calc.py"),
				      tss_bash("ls"), tss_bash("ls"), tss_bash("never")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_LOOP);
	assert_int_equal(r.actions, 4);
	assert_non_null(strstr(r.reason, "`ls` 3 times"));
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_no_progress_detected(void **state)
{
	fixture f;
	agent_result r;
	(void)state;

	fixture_init(&f, -1);
	f.cfg.stall_steps = 3;
	tss_script(&g_fake, json_pack("[o, o, o, o, o, o]", tss_bash("echo 1 > notes.txt"),
				      tss_bash("echo a"), tss_bash("echo b"), tss_bash("echo c"),
				      tss_bash("echo d"), tss_bash("echo e")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_NO_PROGRESS);
	/* the first command changed the work; three more did not */
	assert_int_equal(r.actions, 4);
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_step_and_cost_limits(void **state)
{
	fixture f;
	agent_result r;
	(void)state;

	fixture_init(&f, -1);
	f.cfg.max_steps = 2;
	tss_script(&g_fake, json_pack("[o, o, o]", tss_bash("echo a > a"), tss_bash("echo b > b"),
				      tss_bash("echo c > c")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_STEP_LIMIT);
	assert_int_equal(r.steps, 2);
	assert_int_equal(fake_llm_count(&g_fake), 2);
	agent_result_free(&r);
	fixture_free(&f);

	/* each reply costs $0.10 (100k tokens in at $1/M): the third is never asked */
	fixture_init(&f, -1);
	f.cfg.max_cost_usd = 0.15;
	tss_script(&g_fake, json_pack("[o, o, o]", tss_usage(tss_bash("echo a > a"), 100000, 0),
				      tss_usage(tss_bash("echo b > b"), 100000, 0),
				      tss_usage(tss_bash("echo c > c"), 100000, 0)));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_COST_LIMIT);
	assert_int_equal(r.steps, 2);
	assert_true(r.cost_usd >= 0.15);
	assert_int_equal(fake_llm_count(&g_fake), 2);
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_time_limit(void **state)
{
	fixture f;
	agent_result r;
	char *tail = NULL;
	(void)state;

	fixture_init(&f, -1);
	f.cfg.wall_ms = 1500;
	tss_script(&g_fake, json_pack("[o, o]", tss_bash("sleep 600"), tss_bash("never")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	/* the command was stopped at what was left of the wall time */
	assert_int_equal(r.exit, AGENT_TIME_LIMIT);
	assert_int_equal(r.actions, 1);
	assert_int_equal(fake_llm_count(&g_fake), 1);
	assert_non_null(strstr(r.reason, "time limit"));
	{
		FILE *in = fopen(f.transcript, "r");
		char line[1 << 16];
		int seen = 0;
		while (in && fgets(line, sizeof(line), in))
			if (strstr(line, "<returncode>124</returncode>") && strstr(line, "stopped after"))
				seen = 1;
		if (in)
			fclose(in);
		assert_true(seen);
	}
	free(tail);
	agent_result_free(&r);
	fixture_free(&f);
}

static void test_budget_and_model_errors(void **state)
{
	fixture f;
	agent_result r;
	(void)state;

	/* a project budget too small for one call: refused before it is sent */
	fixture_init(&f, 0.0000001);
	f.cfg.call.project = "proj-poor";
	tss_script(&g_fake, json_pack("[o]", tss_bash("ls")));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_BUDGET);
	assert_non_null(strstr(r.reason, "budget"));
	assert_int_equal(fake_llm_count(&g_fake), 0);
	agent_result_free(&r);
	fixture_free(&f);

	/* the model fails: the run ends with the reason */
	fixture_init(&f, -1);
	tss_script(&g_fake, ts_json("[{\"status\": 500, \"json\": {\"error\": {\"message\": "
				    "\"backend exploded\"}}}]"));
	assert_int_equal(agent_run(&f.cfg, &r), 0);
	assert_int_equal(r.exit, AGENT_LLM_ERROR);
	assert_non_null(strstr(r.reason, "backend exploded"));
	agent_result_free(&r);
	fixture_free(&f);
}

static int setup(void **state)
{
	(void)state;
	fake_llm_start(&g_fake);
	g_pool = ts_pool(4);
	tss_project_repo("agent", g_repo, sizeof(g_repo));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_llm_stop(&g_fake);
	pg_pool_free(g_pool);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit_with_observations),
		cmocka_unit_test(test_submit_in_a_block),
		cmocka_unit_test(test_format_errors_end_the_run),
		cmocka_unit_test(test_loop_detected),
		cmocka_unit_test(test_no_progress_detected),
		cmocka_unit_test(test_step_and_cost_limits),
		cmocka_unit_test(test_time_limit),
		cmocka_unit_test(test_budget_and_model_errors),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
