/* The factory end to end: a person in (fake) Telegram takes an idea through
 * brainstorm, spec approval, repository and plan, workers (real sandboxes,
 * real git, real tests), review with a round of changes, merges, to the
 * final message — against the real orchestrator binary, real PostgreSQL and
 * Redis, with only Telegram and the model provider faked. The same with the
 * engine killed inside each stage; a rejected spec; a cancelled project; a
 * worker that fails twice and the person decides. */
#include "tests/support/factory_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"

#include "bot/approval.h"
#include "core/err.h"
#include "core/util.h"

#include <stdarg.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tf_env E;

static int64_t sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t sql_int(const char *fmt, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return ts_sql_int(E.db, sql);
}

static char *sql_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sql_text(const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	PGresult *r = NULL;
	char *out;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (pg_exec(E.db, &r, sql, 0, NULL) < 0)
		fail_msg("%s: %s", sql, err_last());
	out = strdup(pg_rows(r) > 0 && !pg_isnull(r, 0, 0) ? pg_val(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static __attribute__((unused)) void await_sql(const char *sql, int64_t want)
{
	ts_await_sql(E.db, sql, want, TF_WAIT_MS);
}

static void extend_new(json_t *a, json_t *b)
{
	json_array_extend(a, b);
	json_decref(b);
}

/* Sends /status from the owner and returns the answer (owned): the one
 * message that holds `needle`, each of the NULL-terminated `want`. */
static json_t *status_has(const char *needle, const char *const *want)
{
	json_t *m;
	const char *text;

	tf_say(&E, "/status");
	m = tf_wait_msg(&E, needle);
	text = json_string_value(json_object_get(m, "text"));
	if (getenv("TF_DEBUG"))
		fprintf(stderr, "# /status: %s\n", text);
	for (const char *const *w = want; *w; w++)
		if (!strstr(text, *w))
			fail_msg("/status lacks '%s':\n%s", *w, text);
	return m;
}

/* A fresh world for each case: fakes, tables, the processes' log. */
static void begin(void)
{
	tf_start(&E);
	ts_sql(E.db, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, approvals, "
		     "outbox, threads, workers, llm_calls, llm_budgets, llm_reservations, "
		     "llm_budget_grants CASCADE");
}

/* The names of a checkpoint's "nodes" or "next" (names or {"node"}). */
static const char *task_name(const json_t *t)
{
	return json_is_string(t) ? json_string_value(t) : json_string_value(json_object_get(t, "node"));
}

/* Every transition the factory's runs took — from the nodes of each
 * checkpoint to the tasks next — is an arrow of the graph as
 * `orchestrator graph factory --mermaid` draws it (the picture in the
 * README): what runs is what is declared. */
static void check_transitions(void)
{
	buf out;
	json_t *arrows = json_object(), *cks;
	char *text, *line, *nl;
	int checked = 0;
	size_t i, k, m;
	const json_t *ck, *to, *from;

	buf_init(&out, 0);
	assert_int_equal(tf_cli(&out, "graph factory --mermaid"), 0);
	text = buf_steal(&out);
	for (line = text; line && *line; line = nl ? nl + 1 : NULL) {
		char a[64], b[64], key[140];
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (sscanf(line, " %63s --> %63[^;];", a, b) == 2 ||
		    sscanf(line, " %63s -.-> %63[^;];", a, b) == 2) {
			snprintf(key, sizeof(key), "%s>%s", a, b);
			json_object_set_new(arrows, key, json_true());
		}
	}
	free(text);
	assert_true(json_object_size(arrows) > 10);
	text = sql_text("SELECT coalesce(json_agg(json_build_object('thread', thread_id, 'nodes', "
			"nodes, 'next', next) ORDER BY thread_id, seq), '[]')::text FROM "
			"checkpoints");
	cks = ts_json(text);
	free(text);
	json_array_foreach(cks, i, ck) {
		const json_t *nodes = json_object_get(ck, "nodes"), *next = json_object_get(ck, "next");
		json_t *ends = json_pack("[s]", "__end__");
		if (json_array_size(next) == 0)
			next = ends;
		json_array_foreach(next, k, to) {
			int found = json_array_size(nodes) == 0;
			char key[140];

			snprintf(key, sizeof(key), "__start__>%s", task_name(to));
			if (found && !json_object_get(arrows, key))
				fail_msg("a run started at %s, which START does not lead to", task_name(to));
			json_array_foreach(nodes, m, from) {
				snprintf(key, sizeof(key), "%s>%s", task_name(from), task_name(to));
				found |= json_object_get(arrows, key) != NULL;
			}
			if (!found) {
				char *d = json_dumps(ck, JSON_COMPACT);
				fail_msg("a run went to %s from no node with an arrow to it: %s",
					 task_name(to), d);
			}
			checked++;
		}
		json_decref(ends);
	}
	if (getenv("TF_DEBUG"))
		fprintf(stderr, "# %d transitions, all in the drawing\n", checked);
	json_decref(cks);
	json_decref(arrows);
}

static void end(void)
{
	check_transitions();
	tf_stop(&E);
}

/* After every case, also a failed one: no process of it survives into the
 * next. */
static int teardown(void **st)
{
	(void)st;
	tf_stop(&E);
	return 0;
}

/* The latest state of a thread (owned). */
static json_t *state_of(int64_t thread)
{
	char *s = NULL;
	json_t *j;
	buf out;

	buf_init(&out, 0);
	if (tss_sh(&out, "'%s' state %lld", ts_bin(), (long long)thread) != 0)
		fail_msg("orchestrator state %lld failed", (long long)thread);
	s = buf_steal(&out);
	j = ts_json(s);
	free(s);
	{
		json_t *state = json_incref(json_object_get(j, "state"));
		json_decref(j);
		return state;
	}
}

/* What every finished strkit project shows. */
static void check_finished_strkit(int64_t thread)
{
	json_t *final = tf_wait_msg(&E, "is built"), *st;
	const char *text = json_string_value(json_object_get(final, "text"));
	char repo[64];

	snprintf(repo, sizeof(repo), "strkit-%lld.git", (long long)thread);
	if (!strstr(text, repo) || !strstr(text, "9 of 9 pass on main") ||
	    !strstr(text, "slugify()") || !strstr(text, "the command line") ||
	    !strstr(text, "tokens") || !strstr(text, "$"))
		fail_msg("the final message lacks what it should say:\n%s", text);
	json_decref(final);
	tf_check_repository(&E, thread);

	/* 4 workers (slug twice: a round of changes) and 3 merges, each once */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' IS DISTINCT FROM 'publish'", (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND status = "
				 "'done' AND attempt = 1 AND request->>'mode' IS DISTINCT FROM "
				 "'publish'", (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge'", (long long)thread), 3);
	/* one spawn row per request id: nothing asked twice */
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE thread_id = %lld AND kind = "
				 "'spawn' AND payload->>'mode' IS DISTINCT FROM 'publish'",
				 (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(DISTINCT payload->>'id') FROM outbox WHERE thread_id = "
				 "%lld AND kind = 'spawn' AND payload->>'mode' IS DISTINCT FROM "
				 "'publish'", (long long)thread), 7);
	/* slug and wc started in the same step (in parallel), cli only after both merged */
	assert_int_equal(sql_int("SELECT count(DISTINCT (run_id, step)) FROM outbox WHERE thread_id "
				 "= %lld AND kind = 'spawn' AND payload->'meta'->>'kind' = 'work' AND "
				 "payload->>'task' IN ('slug', 'wc') AND payload->'meta'->>'round' = "
				 "'1'", (long long)thread), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM workers m, workers c WHERE m.thread_id = %lld "
				 "AND c.thread_id = m.thread_id AND m.request->>'mode' = 'merge' AND "
				 "m.task IN ('slug', 'wc') AND c.task = 'cli' AND c.request->>'mode' "
				 "IS NULL AND m.finished_at <= c.created_at", (long long)thread), 2);
	/* the second round of slug built on the first (the same branch) */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'mode' IS NULL AND request->>'base' ~ "
				 "'^[0-9a-f]{40}$' AND request->>'prompt' LIKE '%%asked for changes%%'",
				 (long long)thread), 1);
	/* one progress message, edited to the end */
	assert_int_equal(tf_count_msgs(&E, "tasks merged"), 1);
	assert_int_equal(tf_count_msgs(&E, "3 of 3 tasks merged"), 1);
	assert_int_equal(tf_count_msgs(&E, "is built"), 1);
	tf_no_duplicate_messages(&E);
	st = state_of(thread);
	assert_string_equal(json_string_value(json_object_get(st, "stage")), "done");
	assert_int_equal(json_array_size(json_object_get(
				 json_object_get(json_object_get(st, "tasks"), "slug"), "reviews")), 2);
	json_decref(st);
	/* every model role was used, and the ledger knows the project */
	assert_true(sql_int("SELECT count(DISTINCT role) FROM llm_calls WHERE project = 'tg:%d:1'",
			    TF_OWNER) >= 4);
}

static void drive_strkit(void)
{
	json_t *m;

	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	m = tf_wait_msg(&E, "library, a command line tool, or both");
	json_decref(m);
	tf_say(&E, "Both please, and only the standard library.");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
}

static void test_idea_to_merged_main(void **st)
{
	char remote[1200], mirror[1200];
	const char *env[2] = {remote, NULL};
	pid_t serve;
	int64_t thread;
	(void)st;

	begin();
	/* every project is published to a remote: here a repository on this host */
	snprintf(remote, sizeof(remote), "ORCH_REMOTE_URL=%s/repos/mirror-{name}.git",
		 getenv("ORCH_DATA_DIR"));
	snprintf(mirror, sizeof(mirror), "%s/repos/mirror-strkit.git", getenv("ORCH_DATA_DIR"));
	assert_int_equal(tss_sh(NULL, "rm -rf '%s' && git init -q --bare -b main '%s'", mirror,
				mirror), 0);
	tf_script_project(&E);
	serve = tf_spawn(&E, "serve", env);
	drive_strkit();
	check_finished_strkit(thread = tf_thread(&E, 1));
	/* the whole story as a document, once */
	{
		json_t *docs;
		char *d;

		ts_fake_wait_requests(&E.tg, "sendDocument", 1, TF_WAIT_MS);
		docs = ts_fake_requests(&E.tg, "sendDocument");
		d = json_dumps(docs, JSON_COMPACT);
		assert_int_equal(json_array_size(docs), 1);
		assert_non_null(strstr(d, "The whole story"));
		free(d);
		json_decref(docs);
	}
	/* the remote got the scaffold first, then main after every merge */
	json_decref(tf_wait_msg(&E, "mirror-strkit.git (pushed)"));
	{
		buf a, b;
		char repo[1200];
		buf_init(&a, 0);
		buf_init(&b, 0);
		snprintf(repo, sizeof(repo), "%s/repos/strkit-%lld.git", getenv("ORCH_DATA_DIR"),
			 (long long)thread);
		assert_int_equal(tss_sh(&a, "git --git-dir='%s' rev-parse main", repo), 0);
		assert_int_equal(tss_sh(&b, "git --git-dir='%s' rev-parse main", mirror), 0);
		assert_string_equal(buf_cstr(&a), buf_cstr(&b));
		buf_free(&a);
		buf_free(&b);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'publish' AND status = 'done'", (long long)thread),
			 1);
	/* the spec as shown, the plan as shown */
	assert_int_equal(tf_count_msgs(&E, "Spec, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "Plan, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "changes requested"), 1);
	/* a message after the end says where the result is */
	tf_say(&E, "thanks!");
	json_decref(tf_wait_msg(&E, "This project is finished"));
	/* /status in the chat: the same facts as `orchestrator status` */
	{
		char repo[64];
		const char *want[] = {"Project #1: strkit\n", "Tasks: 3 of 3 done",
				      "Workers running: 0", "Cost: $", " tokens (",
				      repo, "branch main", "Remote:", "mirror-strkit.git",
				      NULL};
		buf out;
		json_t *j, *p, *m;
		char cost[64];

		snprintf(repo, sizeof(repo), "strkit-%lld.git, branch main", (long long)thread);
		m = status_has("Stage: done", want);
		assert_null(strstr(json_string_value(json_object_get(m, "text")), "Waiting for you"));
		buf_init(&out, 0);
		assert_int_equal(tf_cli(&out, "status --json"), 0);
		j = ts_json(buf_cstr(&out));
		p = json_array_get(json_object_get(j, "projects"), 0);
		snprintf(cost, sizeof(cost), "Cost: $%.4f so far, %lld tokens",
			 json_number_value(json_object_get(p, "cost_usd")),
			 (long long)(json_integer_value(json_object_get(p, "tokens_in")) +
				     json_integer_value(json_object_get(p, "tokens_out"))));
		if (!strstr(json_string_value(json_object_get(m, "text")), cost))
			fail_msg("/status and 'orchestrator status' disagree on '%s':\n%s", cost,
				 json_string_value(json_object_get(m, "text")));
		json_decref(j);
		json_decref(m);
		buf_free(&out);
	}
	tf_kill(serve);
	end();
}

/* The engine (a process of its own beside the bot and the spawner) is
 * killed once inside each stage: after brainstorm, architect, developer,
 * reviewer and finish computed their step and emitted its messages and
 * workers, before the step commits. Another engine takes the run over; the
 * project finishes with nothing said twice and no worker started twice. */
static void test_engine_killed_in_each_stage(void **st)
{
	static const char *const stages[] = {"brainstorm:1", "architect:1", "developer:1",
					      "reviewer:1", "finish:1"};
	pid_t bot, spawner, engine;
	char crash[5][64];
	const char *env[2] = {NULL, NULL};
	json_t *extra = json_array();
	int64_t thread;
	(void)st;

	begin();
	/* the steps that died asked their model before dying: it is asked again,
	 * so those replies are there twice */
	json_array_append_new(extra, tf_brainstorm_question());
	json_array_append_new(extra, tf_brainstorm_question());
	json_array_append_new(extra, tf_brainstorm_spec());
	json_array_append_new(extra, tf_plan());
	json_array_append_new(extra, tf_plan());
	extend_new(extra, tf_agent("slug"));
	extend_new(extra, tf_agent("wc"));
	extend_new(extra, tf_agent("slug2"));
	extend_new(extra, tf_agent("cli"));
	json_array_append_new(extra, tf_review("slug", 1, 0));
	json_array_append_new(extra, tf_review("slug", 1, 0));
	json_array_append_new(extra, tf_review("wc", 1, 1));
	json_array_append_new(extra, tf_review("wc", 1, 1));
	json_array_append_new(extra, tf_review("slug", 2, 1));
	json_array_append_new(extra, tf_review("cli", 1, 1));
	tf_script(&E, extra);
	bot = tf_spawn(&E, "bot", NULL);
	spawner = tf_spawn(&E, "spawner", NULL);
	for (int i = 0; i < 5; i++) {
		snprintf(crash[i], sizeof(crash[i]), "ORCH_FACTORY_TEST_CRASH=%s", stages[i]);
		env[0] = crash[i];
		engine = tf_spawn(&E, "engine", env);
		if (i == 0) {
			tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
		} else if (i == 1) {
			json_decref(tf_wait_msg(&E, "library, a command line tool, or both"));
			tf_say(&E, "Both please, and only the standard library.");
			tf_click(&E, "Build strkit as specified", "Approve");
		} else if (i == 2) {
			tf_click(&E, "Start building with this plan", "Approve");
		}
		/* it dies where it was told to */
		assert_int_equal(tf_wait_exit(engine), 99);
	}
	engine = tf_spawn(&E, "engine", NULL);
	thread = tf_thread(&E, 1);
	check_finished_strkit(thread);
	/* one run did it all, taken over after every death */
	assert_int_equal(sql_int("SELECT count(*) FROM runs WHERE thread_id = %lld",
				 (long long)thread), 1);
	assert_true(sql_int("SELECT takeovers FROM runs WHERE thread_id = %lld",
			    (long long)thread) >= 5);
	assert_int_equal(tf_count_msgs(&E, "library, a command line tool, or both"), 1);
	assert_int_equal(tf_count_msgs(&E, "Spec, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "Plan, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "changes requested"), 1);
	tf_kill(engine);
	tf_kill(spawner);
	tf_kill(bot);
	end();
}

/* The person asks for a change to the spec, then rejects the second one:
 * nothing is built, no repository, no worker, and the project says so. */
static void test_rejected_spec(void **st)
{
	pid_t serve;
	int64_t thread;
	json_t *reqs, *state;
	char *last;
	(void)st;

	begin();
	tf_script(&E, json_pack("[o, o]", tf_brainstorm_spec(), tf_brainstorm_spec_named("strtools")));
	serve = tf_spawn(&E, "serve", NULL);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Change");
	json_decref(tf_wait_msg(&E, "What would you like to change?"));
	tf_say(&E, "Call it strtools, please.");
	tf_click(&E, "Build strtools as specified (version 2)", "Cancel");
	json_decref(tf_wait_msg(&E, "Cancelled: nothing was built"));
	thread = tf_thread(&E, 1);
	/* the change request reached the model, with the conversation so far */
	reqs = fake_llm_requests(&E.llm);
	assert_int_equal(json_array_size(reqs), 2);
	last = json_dumps(json_object_get(json_array_get(reqs, 1), "body"), JSON_COMPACT);
	assert_non_null(strstr(last, "Call it strtools"));
	assert_non_null(strstr(last, "What would you like to change?"));
	free(last);
	json_decref(reqs);
	/* nothing was built */
	assert_int_equal(sql_int("SELECT count(*) FROM workers"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE role = 'architect'"), 0);
	assert_int_equal(tss_sh(NULL, "ls -d '%s'/repos/*-%lld.git >/dev/null 2>&1",
				getenv("ORCH_DATA_DIR"), (long long)thread),
			 2);
	state = state_of(thread);
	assert_string_equal(json_string_value(json_object_get(state, "stage")), "cancelled");
	assert_int_equal(json_integer_value(json_object_get(state, "spec_version")), 2);
	json_decref(state);
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE thread_id = %lld AND state = "
				 "'decided'", (long long)thread), 2);
	/* later messages are told */
	tf_say(&E, "hello?");
	json_decref(tf_wait_msg(&E, "This project was cancelled"));
	tf_no_duplicate_messages(&E);
	tf_kill(serve);
	end();
}

/* /cancel while two workers are busy: the runs, the workers and the project
 * stop; main keeps only the scaffold. */
static void test_cancelled_project(void **st)
{
	pid_t serve;
	int64_t thread;
	json_t *all = json_array(), *a;
	buf out;
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	/* the agents think slowly: the workers are busy when the cancel comes */
	a = tf_agent("slug");
	tss_delay(json_array_get(a, 0), 60000);
	extend_new(all, a);
	a = tf_agent("wc");
	tss_delay(json_array_get(a, 0), 60000);
	extend_new(all, a);
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", NULL);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	await_sql("SELECT count(*) FROM workers WHERE state = 'running'", 2);
	tf_say(&E, "/cancel");
	json_decref(tf_wait_msg(&E, "Project #1: cancelled 1 run"));
	/* the workers stop as cancelled, and are not run again */
	await_sql("SELECT count(*) FROM workers WHERE state = 'finished' AND status = 'cancelled'", 2);
	assert_int_equal(sql_int("SELECT count(*) FROM workers"), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM runs WHERE thread_id = %lld AND status = "
				 "'cancelled'", (long long)thread), 1);
	/* main holds the scaffold only */
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "git --git-dir=\"$(ls -d '%s'/repos/strkit-%lld.git)\" rev-list "
				      "--count main", getenv("ORCH_DATA_DIR"), (long long)thread), 0);
	assert_int_equal(strtol(buf_cstr(&out), NULL, 10), 1);
	buf_reset(&out);
	/* the project knows, and says so */
	tf_say(&E, "are you there?");
	json_decref(tf_wait_msg(&E, "This project was cancelled"));
	assert_int_equal(tf_cli(&out, "status --json"), 0);
	{
		json_t *j = ts_json(buf_cstr(&out));
		json_t *p = json_array_get(json_object_get(j, "projects"), 0);
		assert_string_equal(json_string_value(json_object_get(p, "stage")), "cancelled");
		assert_int_equal(json_integer_value(json_object_get(p, "workers")), 0);
		json_decref(j);
	}
	buf_free(&out);
	tf_kill(serve);
	end();
}

/* A task's worker fails twice (its tests fail): the person is asked with
 * buttons, answers from the terminal by the question's id (retry), and the
 * third worker's work is reviewed and merged — each merge waiting for the
 * person's approval (ORCH_MERGE_APPROVAL=1) — and the project finishes. */
static void test_worker_failure_escalates(void **st)
{
	const char *env[] = {"ORCH_MERGE_APPROVAL=1", NULL};
	pid_t serve;
	int64_t thread, qid;
	json_t *all = json_array();
	buf out;
	char sql[256];
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_BROKEN));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_BROKEN));
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 1));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", env);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	json_decref(tf_wait_msg(&E, "failed 2 times"));
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM approvals WHERE key LIKE 'q:%%:failed:slug' "
				   "AND message_id IS NOT NULL");
	await_sql(sql, 1);
	qid = sql_int("SELECT id FROM approvals WHERE key LIKE 'q:%%:failed:slug'");
	/* /status in the chat: the stage, the task that waits, the question and how
	 * to answer it, the cost */
	{
		char approve[64];
		const char *want[] = {"Project #1: strkit\n", " of 3 done", "— waiting for you", "Waiting for you:",
				      "failed 2 times", "Answer with the buttons under that message: "
				      "🔁 Retry", approve, "Cost: $", NULL};
		snprintf(approve, sizeof(approve), "'orchestrator approve %lld'", (long long)qid);
		json_decref(status_has("Stage: develop", want));
	}
	/* the terminal lists the question, and answers it */
	buf_init(&out, 0);
	assert_int_equal(tf_cli(&out, "status"), 0);
	{
		char want[64];
		snprintf(want, sizeof(want), "#%lld", (long long)qid);
		if (!strstr(buf_cstr(&out), want) || !strstr(buf_cstr(&out), "tg:111:1"))
			fail_msg("status does not list question %lld:\n%s", (long long)qid,
				 buf_cstr(&out));
	}
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "approve %lld", (long long)qid), 0);
	assert_non_null(strstr(buf_cstr(&out), "decided '🔁 Retry' (retry)"));
	buf_reset(&out);
	/* a second answer changes nothing */
	assert_int_equal(tf_cli(&out, "reject %lld", (long long)qid), 1);
	assert_non_null(strstr(buf_cstr(&out), "Already decided"));
	/* the Telegram message shows who decided, without buttons */
	json_decref(tf_wait_msg(&E, "(terminal)"));
	{
		/* the progress message said why the task waited */
		json_t *edits = ts_fake_requests(&E.tg, "editMessageText");
		char *text = json_dumps(edits, JSON_COMPACT);
		assert_non_null(strstr(text, "failed — waiting for you"));
		free(text);
		json_decref(edits);
	}
	/* every merge waits for the person: three times, from the terminal */
	for (int k = 0; k < 3; k++) {
		int64_t mid;
		await_sql("SELECT (count(*) > 0)::int FROM approvals WHERE key LIKE 'q:%:merge:%' AND "
			  "state = 'pending' AND message_id IS NOT NULL", 1);
		mid = sql_int("SELECT min(id) FROM approvals WHERE key LIKE 'q:%%:merge:%%' AND state "
			      "= 'pending'");
		buf_reset(&out);
		assert_int_equal(tf_cli(&out, "approve %lld", (long long)mid), 0);
		assert_non_null(strstr(buf_cstr(&out), "(merge)"));
	}
	json_decref(tf_wait_msg(&E, "is built"));
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE key LIKE 'q:%%:merge:%%' AND "
				 "decision = 'merge'"), 3);
	tf_check_repository(&E, thread);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'mode' IS NULL AND status = 'failed'",
				 (long long)thread), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'mode' IS NULL AND status = 'done'",
				 (long long)thread), 1);
	/* the retry started from main again, told what went wrong */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'base' = 'main' AND request->>'prompt' LIKE "
				 "'%%previous attempt at this task failed%%'", (long long)thread), 2);
	tf_no_duplicate_messages(&E);
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "show tg:111:1"), 0);
	if (!strstr(buf_cstr(&out), "work_failed") || !strstr(buf_cstr(&out), "decision") ||
	    !strstr(buf_cstr(&out), "→ retry by cli:") || !strstr(buf_cstr(&out), "merged"))
		fail_msg("show lacks the history:\n%s", buf_cstr(&out));
	buf_free(&out);
	tf_kill(serve);
	end();
}

/* Two tasks change the same file although the plan did not say so: the
 * second merge conflicts, the task goes back to a worker on the new main
 * (with its previous change for reference), is reviewed again and merged.
 * Which of the two merges first depends on which is approved first: the
 * script has the rework of either. */
static void test_merge_conflict_sends_task_back(void **st)
{
	pid_t serve;
	int64_t thread;
	json_t *all = json_array();
	char slug[8192], wc[8192], *late;
	(void)st;

	begin();
	snprintf(slug, sizeof(slug), "%s\necho '- slugify(): URL slugs' >> README.md", TF_SLUG_FULL);
	snprintf(wc, sizeof(wc),
		 "printf 'def word_count(text):\\n    return len(text.split())\\n' > wc.py && "
		 "printf 'import unittest\\nfrom wc import word_count\\n\\n\\nclass T(unittest."
		 "TestCase):\\n    def test_count(self):\\n        self.assertEqual(word_count(\"a b"
		 "\"), 2)\\n' > test_wc.py && echo '- word_count(): words' >> README.md && "
		 "python3 -m unittest discover -v 2>&1 | tail -3");
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", slug));
	extend_new(all, tf_agent_cmd("Task wc, on branch task/wc", wc));
	extend_new(all, tf_agent_cmd("could not be merged into main + Task slug, on branch", slug));
	extend_new(all, tf_agent_cmd("could not be merged into main + Task wc, on branch", wc));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("slug", 1, 1));
	json_array_append_new(all, tf_review("wc", 2, 1));
	json_array_append_new(all, tf_review("slug", 2, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", NULL);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	json_decref(tf_wait_msg(&E, "is built"));
	/* one merge conflicted on README.md; that task was built again on the
	 * new main, with its previous change, and merged */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND status = 'conflict' AND "
				 "result->'conflicts' ? 'README.md'", (long long)thread), 1);
	late = sql_text("SELECT task FROM workers WHERE thread_id = %lld AND request->>'mode' = "
			"'merge' AND status = 'conflict'", (long long)thread);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'%s' AND request->>'mode' IS NULL AND request->>'base' = 'main' AND "
				 "request->>'prompt' LIKE '%%Your previous change, for reference%%' AND "
				 "request->>'prompt' LIKE '%%README.md%%' AND status = 'done'",
				 (long long)thread, late), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND status = 'done'", (long long)thread), 3);
	free(late);
	{
		buf out;
		buf_init(&out, 0);
		assert_int_equal(tss_sh(&out, "git --git-dir=\"$(ls -d '%s'/repos/strkit-%lld.git)\" "
					      "show main:README.md", getenv("ORCH_DATA_DIR"),
					(long long)thread), 0);
		assert_non_null(strstr(buf_cstr(&out), "- word_count(): words"));
		assert_non_null(strstr(buf_cstr(&out), "- slugify(): URL slugs"));
		buf_free(&out);
	}
	tf_no_duplicate_messages(&E);
	tf_kill(serve);
	end();
}

/* The reviewer still wants changes after ORCH_REVIEW_ROUNDS rounds (0
 * here): the person is asked, and has it merged as it is. */
static void test_review_rounds_escalate(void **st)
{
	const char *env[] = {"ORCH_REVIEW_ROUNDS=0", NULL};
	pid_t serve;
	int64_t thread;
	json_t *all = json_array();
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 0));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", env);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	tf_click(&E, "still has changes requested after 1 review round", "Merge as it is");
	json_decref(tf_wait_msg(&E, "is built"));
	thread = tf_thread(&E, 1);
	tf_check_repository(&E, thread);
	/* no second round: one worker for slug */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'mode' IS NULL", (long long)thread), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE thread_id = %lld AND key LIKE "
				 "'q:%%:rounds:slug' AND decision = 'accept'", (long long)thread), 1);
	tf_kill(serve);
	end();
}

/* A budget reached in the brainstorm: the person extends it with a button
 * and the conversation goes on; the extension is made once, in the
 * transaction of the step that took the answer. */
static void test_budget_extended(void **st)
{
	const char *env[] = {"ORCH_LLM_PROJECT_BUDGET=0.000001", "ORCH_BUDGET_EXTEND=1", NULL};
	pid_t serve;
	(void)st;

	begin();
	tf_script(&E, json_pack("[o]", tf_brainstorm_question()));
	serve = tf_spawn(&E, "serve", env);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "budget of tg:111:1 is reached", "Extend");
	json_decref(tf_wait_msg(&E, "Budget extended: the limit is now $1.00"));
	json_decref(tf_wait_msg(&E, "library, a command line tool, or both"));
	/* the extension is an effect of the step that took the decision: its
	 * outbox row, the grant and the step's checkpoint were written together */
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants WHERE applied"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants g JOIN outbox o ON "
				 "o.kind = 'llm.budget_extend' AND o.state = 'sent' AND o.run_id = "
				 "g.run_id AND o.step = g.step JOIN checkpoints c ON c.run_id = "
				 "g.run_id AND c.step = g.step"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE kind = 'project' AND scope "
				 "= 'tg:111:1' AND limit_usd > 1 AND limit_usd < 1.0001"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'budget'"), 1);
	tf_kill(serve);
	end();
}

/* A question about a stuck task expires unanswered: the task waits, the
 * person is told; their next message asks it again (a new question, the
 * same buttons), and the answer to that one goes on. */
static void test_expired_question_asked_again(void **st)
{
	pid_t serve;
	int64_t thread;
	json_t *all = json_array();
	char *first;
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_BROKEN));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_BROKEN));
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 1));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", NULL);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	await_sql("SELECT count(*) FROM approvals WHERE key LIKE 'q:%:failed:slug' AND message_id IS "
		  "NOT NULL", 1);
	first = sql_text("SELECT key FROM approvals WHERE key LIKE 'q:%%:failed:slug'");
	/* its time runs out (the bot's own expiry, run now) */
	ts_sql(E.db, "UPDATE approvals SET expires_at = now() - interval '1 second' WHERE key LIKE "
		     "'q:%:failed:slug'");
	assert_int_equal(bot_approvals_expire(E.db, "telegram", NULL), 0);
	json_decref(tf_wait_msg(&E, "A question expired without an answer"));
	tf_say(&E, "still there?");
	json_decref(tf_wait_msg(&E, "here is where it stands"));
	await_sql("SELECT count(*) FROM approvals WHERE key LIKE 'q:%:failed:slug' AND state = "
		  "'pending' AND message_id IS NOT NULL", 1);
	assert_int_equal(tf_count_msgs(&E, "failed 2 times"), 2);
	tf_click(&E, "failed 2 times", "Retry");
	json_decref(tf_wait_msg(&E, "is built"));
	/* two questions: the expired one, then the one answered */
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE key LIKE 'q:%%:failed:slug'"), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE key = '%s' AND state = "
				 "'expired'", first), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE key LIKE 'q:%%:failed:slug' "
				 "AND key <> '%s' AND decision = 'retry'", first), 1);
	free(first);
	tf_check_repository(&E, thread);
	tf_kill(serve);
	end();
}

/* The review of a task fails (the model twice answers what no verdict
 * can be): the person is asked, and has it merged without a review. */
static void test_failed_review_asks(void **st)
{
	pid_t serve;
	json_t *all = json_array();
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent("cli"));
	for (int i = 0; i < 2; i++)
		json_array_append_new(all, tf_reply("m-reviewer", "Task slug: slugify() (review "
							      "round 1)", "{\"verdict\": \"maybe\"}"));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", NULL);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	tf_click(&E, "The review of task slug (slugify()) failed", "Merge as it is");
	json_decref(tf_wait_msg(&E, "is built"));
	assert_int_equal(sql_int("SELECT count(*) FROM approvals WHERE key LIKE 'q:%%:review:slug' "
				 "AND decision = 'accept'"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE task = 'slug' AND "
				 "request->>'mode' = 'merge' AND status = 'done'"), 1);
	tf_kill(serve);
	end();
}

/* How many requests the fake model got whose body holds `needle`. */
static int llm_requests_with(const char *needle)
{
	json_t *reqs = fake_llm_requests(&E.llm), *r;
	size_t i;
	int n = 0;

	json_array_foreach(reqs, i, r) {
		char *body = json_dumps(json_object_get(r, "body"), JSON_COMPACT);
		n += body && strstr(body, needle) != NULL;
		free(body);
	}
	json_decref(reqs);
	return n;
}

static double sql_num(const char *sql)
{
	char *t = sql_text("%s", sql);
	double v = strtod(t, NULL);

	free(t);
	return v;
}

/* Issue 11, defect 6: a worker run twice after a crash is paid twice, and
 * every figure says so. The spawner is SIGKILLed while slug's worker waits
 * for its second model reply; another spawner runs the task again from
 * scratch under the same request id. The ledger holds both attempts'
 * calls; the task's figures in the progress message, the final report and
 * `show` come from it and add up to its totals. */
static void test_costs_add_up_after_a_worker_crash(void **st)
{
	const char *env[] = {"ORCH_MAX_WORKERS=1", NULL};
	json_t *all = json_array(), *a, *j, *tasks, *t;
	pid_t spawner;
	int64_t thread, tin, tout;
	double usd, sum = 0;
	char want[200], tok[32], *text;
	const char *k;
	buf out;
	(void)st;

	begin();
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	/* the first worker: its second reply never comes */
	a = tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL);
	tss_usage(json_array_get(a, 0), 5000, 1000);
	tss_delay(json_array_get(a, 1), 600000);
	extend_new(all, a);
	/* the same worker, run again */
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 1));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	tf_spawn(&E, "bot", NULL);
	spawner = tf_spawn(&E, "spawner", NULL);
	tf_spawn(&E, "engine", env);
	tf_say(&E, "I want strkit: a tiny Python toolkit for URL slugs and word counts");
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	/* slug's worker paid its first reply and waits for the second */
	await_sql("SELECT count(*) FROM llm_calls WHERE worker LIKE '%.slug.r1a1'", 1);
	for (int i = 0; i < 3000 && llm_requests_with("Task slug, on branch task/slug") < 2; i++)
		util_sleep_ms(20);
	assert_int_equal(llm_requests_with("Task slug, on branch task/slug"), 2);
	kill(spawner, SIGKILL);
	waitpid(spawner, NULL, 0);
	tf_spawn(&E, "spawner", NULL);
	json_decref(tf_wait_msg(&E, "is built"));
	/* it was run twice under one id, and the ledger holds both runs' calls */
	assert_int_equal(sql_int("SELECT max(attempt) FROM workers WHERE thread_id = %lld AND task = "
				 "'slug' AND request->>'mode' IS NULL", (long long)thread), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE worker LIKE '%%.slug.r1a1'"), 3);
	tin = sql_int("SELECT sum(tokens_in) FROM llm_calls WHERE worker LIKE '%%.slug.%%'");
	tout = sql_int("SELECT sum(tokens_out) FROM llm_calls WHERE worker LIKE '%%.slug.%%'");
	usd = sql_num("SELECT sum(cost_usd)::float8 FROM llm_calls WHERE worker LIKE '%.slug.%'");
	assert_true(tin > 5000 && tout > 1000);
	/* the final report's figures for slug are the ledger's */
	text = sql_text("SELECT payload->>'content' FROM outbox WHERE thread_id = %lld AND kind = "
			"'telegram.document'", (long long)thread);
	snprintf(want, sizeof(want), "Rounds: 1; workers' tokens: %lld in, %lld out; $%.4f.",
		 (long long)tin, (long long)tout, usd);
	if (!strstr(text, "(`slug`): done") || !strstr(text, want))
		fail_msg("the report does not say '%s' for slug:\n%s", want, text);
	free(text);
	/* so are the progress message's, to its last edit */
	text = sql_text("SELECT payload->>'html' FROM outbox WHERE thread_id = %lld AND kind = "
			"'telegram.progress' ORDER BY id DESC LIMIT 1", (long long)thread);
	snprintf(tok, sizeof(tok), "%.1fk", (double)(tin + tout) / 1000.0);
	snprintf(want, sizeof(want), " · %s tokens · $%.4f\n", tok, usd);
	{
		const char *line = strstr(text, "<code>slug</code> done");
		const char *nl = line ? strchr(line, '\n') : NULL;
		if (!strstr(text, "3 of 3 tasks merged") || !nl ||
		    !strstr(line, want) || strstr(line, want) > nl)
			fail_msg("the progress message does not say '%s' for slug:\n%s", want, text);
	}
	free(text);
	/* and show's: per task, and the tasks add up to what the workers cost */
	buf_init(&out, 0);
	assert_int_equal(tf_cli(&out, "show tg:%d:1 --json", TF_OWNER), 0);
	j = ts_json(buf_cstr(&out));
	tasks = json_object_get(json_object_get(j, "costs"), "tasks");
	t = json_object_get(tasks, "slug");
	assert_int_equal(json_integer_value(json_object_get(t, "tokens_in")), tin);
	assert_int_equal(json_integer_value(json_object_get(t, "tokens_out")), tout);
	assert_true(fabs(json_number_value(json_object_get(t, "cost_usd")) - usd) < 1e-9);
	json_object_foreach(tasks, k, t)
		sum += json_number_value(json_object_get(t, "cost_usd"));
	assert_int_equal(json_object_size(tasks), 3);
	assert_true(fabs(sum - sql_num("SELECT sum(cost_usd)::float8 FROM llm_calls WHERE worker IS "
				       "NOT NULL AND worker NOT LIKE '%.publish'")) < 1e-9);
	assert_true(fabs(json_number_value(json_object_get(json_object_get(j, "summary"),
							   "cost_usd")) -
			 sql_num("SELECT sum(cost_usd)::float8 FROM llm_calls")) < 1e-9);
	json_decref(j);
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "show tg:%d:1", TF_OWNER), 0);
	snprintf(want, sizeof(want), "%lld tokens  $%.4f", (long long)(tin + tout), usd);
	if (!strstr(buf_cstr(&out), want))
		fail_msg("show does not say '%s' for slug:\n%s", want, buf_cstr(&out));
	buf_free(&out);
	end();
}

/* The terminal: orchestrator new, status, approve and reject by project,
 * show, cancel. */
static void test_terminal_commands(void **st)
{
	pid_t serve;
	buf out;
	json_t *j;
	(void)st;

	begin();
	unsetenv("TELEGRAM_BOT_TOKEN"); /* no bot: the terminal is the front end */
	tf_script(&E, json_pack("[o, o, o]", tf_brainstorm_spec(), tf_plan(),
				tf_brainstorm_question()));
	serve = tf_spawn(&E, "serve", NULL);
	buf_init(&out, 0);
	assert_int_equal(tf_cli(&out, "new --name ada --detach a tiny text toolkit: slugs, word "
				      "counts"), 0);
	assert_non_null(strstr(buf_cstr(&out), "project term:ada:1 started"));
	await_sql("SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND payload->>'key' = "
		  "'spec:1'", 1);
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "status"), 0);
	if (!strstr(buf_cstr(&out), "term:ada:1") || !strstr(buf_cstr(&out), "spec_review") ||
	    !strstr(buf_cstr(&out), "Build strkit as specified"))
		fail_msg("status does not show the project and its question:\n%s", buf_cstr(&out));
	/* the terminal chat's /status shows the same, answered the terminal's way */
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "printf '/status\\n' | '%s' chat --name ada --no-color 2>&1",
				ts_bin()), 0);
	if (!strstr(buf_cstr(&out), "Project #1: strkit") ||
	    !strstr(buf_cstr(&out), "Stage: spec review") ||
	    !strstr(buf_cstr(&out), "Tasks: none yet") || !strstr(buf_cstr(&out), "Workers running: 0") ||
	    !strstr(buf_cstr(&out), "Build strkit as specified") ||
	    !strstr(buf_cstr(&out), "Type the number of your choice") ||
	    !strstr(buf_cstr(&out), "Cost: $"))
		fail_msg("the chat's /status lacks the project's facts:\n%s", buf_cstr(&out));
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "approve term:ada:1"), 0);
	assert_non_null(strstr(buf_cstr(&out), "decided '✅ Approve'"));
	await_sql("SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND payload->>'key' = "
		  "'plan:1'", 1);
	/* the repository exists; the plan waits */
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "show term:ada:1"), 0);
	if (!strstr(buf_cstr(&out), "you: a tiny text toolkit") ||
	    !strstr(buf_cstr(&out), "spec_proposed") || !strstr(buf_cstr(&out), "plan_proposed") ||
	    !strstr(buf_cstr(&out), "→ approve by cli:") || !strstr(buf_cstr(&out), "strkit-"))
		fail_msg("show lacks the history:\n%s", buf_cstr(&out));
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "reject term:ada:1"), 0);
	assert_non_null(strstr(buf_cstr(&out), "(cancel)"));
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id WHERE t.key = "
		  "'term:ada:1' AND r.status = 'done'", 1);
	/* the terminal chat shows what happened, answered questions included */
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "chat --name ada --no-color </dev/null"), 0);
	if (!strstr(buf_cstr(&out), "Cancelled. The repository stays"))
		fail_msg("the chat does not show the project's messages:\n%s", buf_cstr(&out));

	/* a second project, cancelled from the terminal while it waits */
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "new --name ada --detach another idea"), 0);
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id WHERE t.key = "
		  "'term:ada:2' AND r.status = 'waiting'", 1);
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "cancel term:ada:2"), 0);
	assert_non_null(strstr(buf_cstr(&out), "1 active run asked to cancel"));
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "status --json"), 0);
	j = ts_json(buf_cstr(&out));
	{
		size_t i;
		json_t *p;
		int seen = 0;
		json_array_foreach(json_object_get(j, "projects"), i, p) {
			if (strcmp(json_string_value(json_object_get(p, "key")), "term:ada:1") == 0) {
				assert_string_equal(json_string_value(json_object_get(p, "stage")),
						    "cancelled");
				assert_string_equal(json_string_value(json_object_get(p, "repo")) ? "repo"
												   : "",
						    "repo");
				seen++;
			}
			if (strcmp(json_string_value(json_object_get(p, "key")), "term:ada:2") == 0) {
				assert_string_equal(json_string_value(json_object_get(p, "stage")),
						    "cancelled");
				seen++;
			}
		}
		assert_int_equal(seen, 2);
	}
	json_decref(j);
	/* what does not exist is said so */
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "approve 999999"), 1);
	assert_non_null(strstr(buf_cstr(&out), "neither an approval id nor a project"));
	buf_reset(&out);
	assert_int_equal(tf_cli(&out, "show term:nobody:9"), 1);
	buf_free(&out);
	tf_kill(serve);
	end();
}

/* The registry stand-in (tests/fakes/pkg_registry.py) at 127.0.0.2, a
 * loopback address outside the sandboxes' NO_PROXY: reached only through
 * the spawner's egress proxy. Its pid goes to *pid, its port is returned. */
static int start_registry(pid_t *pid)
{
	int p[2], port = 0;
	char line[128];
	ssize_t n;

	if (pipe(p) < 0)
		fail_msg("pipe");
	*pid = fork();
	if (*pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execlp("python3", "python3", "tests/fakes/pkg_registry.py", "127.0.0.2", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "ports %d", &port) != 1)
		fail_msg("the registry stand-in did not start: %s", line);
	return port;
}

/* The project's setup command and network policy come from the spec and
 * go with every worker and merge. The person names the setup command in
 * the idea; the configuration's default policy is none, so the first
 * workers' setup fails and says it needs the network; the person writes a
 * "network:" line while the factory waits, retries, and from then on every
 * worker and merge fetches through the egress proxy, and the project is
 * built. */
static void test_network_policy_in_the_spec(void **st)
{
	const char *env[] = {"ORCH_NET_POLICY=none", "ORCH_WORKER_FAILURES=1", NULL};
	char idea[800], said[100];
	pid_t serve, reg;
	int port;
	int64_t thread;
	json_t *all = json_array(), *m;
	(void)st;

	begin();
	port = start_registry(&reg);
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 1));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(&E, all);
	serve = tf_spawn(&E, "serve", env);
	snprintf(idea, sizeof(idea),
		 "I want strkit: a tiny Python toolkit for URL slugs and word counts\n"
		 "setup command: python3 -c 'import urllib.request as u; "
		 "assert u.urlopen(\"http://127.0.0.2:%d/hello\", timeout=30).read()'",
		 port);
	tf_say(&E, idea);
	m = tf_wait_msg(&E, "Spec, version 1");
	if (!strstr(json_string_value(json_object_get(m, "text")), "127.0.0.2") ||
	    !strstr(json_string_value(json_object_get(m, "text")), "Network"))
		fail_msg("the spec does not show the setup and the network:\n%s",
			 json_string_value(json_object_get(m, "text")));
	json_decref(m);
	tf_click(&E, "Build strkit as specified", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	thread = tf_thread(&E, 1);
	/* slug and wc both fail at their setup, saying why and what to write */
	await_sql("SELECT count(*) FROM approvals WHERE key LIKE 'q:%:failed:%' AND message_id IS "
		  "NOT NULL", 2);
	json_decref(tf_wait_msg(&E, "write a line such as"));
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND status = "
				 "'failed' AND result->>'reason' LIKE '%%needs the network%%policy is "
				 "none%%'", (long long)thread), 2);
	snprintf(said, sizeof(said), "network: 127.0.0.2:%d", port);
	tf_say(&E, said);
	json_decref(tf_wait_msg(&E, "From the next worker and merge on, network: 127.0.0.2:"));
	for (int k = 0; k < 2; k++) {
		int64_t q = sql_int("SELECT min(id) FROM approvals WHERE key LIKE 'q:%%:failed:%%' AND "
				    "state = 'pending'");
		assert_int_equal(tf_cli(NULL, "approve %lld", (long long)q), 0);
	}
	json_decref(tf_wait_msg(&E, "is built"));
	tf_check_repository(&E, thread);
	/* after the setting: three workers and three merges, each fetching
	 * through the proxy with the policy and the setup of the spec */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND status = "
				 "'done' AND request->>'mode' IS DISTINCT FROM 'publish' AND "
				 "request->'network'->>'policy' = 'hosts' AND request->>'setup_command' "
				 "LIKE 'python3 -c%%' AND (result->'network'->>'allowed')::int >= 1",
				 (long long)thread),
			 6);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND status = 'done'", (long long)thread), 3);
	/* before it: no network in the requests (the configuration's default) */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND status = "
				 "'failed' AND request->'network' IS NULL", (long long)thread), 2);
	kill(reg, SIGTERM);
	waitpid(reg, NULL, 0);
	tf_kill(serve);
	end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_idea_to_merged_main, teardown),
		cmocka_unit_test_teardown(test_engine_killed_in_each_stage, teardown),
		cmocka_unit_test_teardown(test_rejected_spec, teardown),
		cmocka_unit_test_teardown(test_cancelled_project, teardown),
		cmocka_unit_test_teardown(test_worker_failure_escalates, teardown),
		cmocka_unit_test_teardown(test_merge_conflict_sends_task_back, teardown),
		cmocka_unit_test_teardown(test_review_rounds_escalate, teardown),
		cmocka_unit_test_teardown(test_budget_extended, teardown),
		cmocka_unit_test_teardown(test_costs_add_up_after_a_worker_crash, teardown),
		cmocka_unit_test_teardown(test_expired_question_asked_again, teardown),
		cmocka_unit_test_teardown(test_failed_review_asks, teardown),
		cmocka_unit_test_teardown(test_terminal_commands, teardown),
		cmocka_unit_test_teardown(test_network_policy_in_the_spec, teardown),
	};
	ts_init();
	if (getenv("TF_ONLY")) /* one case, while working on it */
		cmocka_set_test_filter(getenv("TF_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
