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

#include "core/err.h"
#include "core/util.h"

#include <stdarg.h>

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

static char *sql_text(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
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

/* A fresh world for each case: fakes, tables, the processes' log. */
static void begin(void)
{
	tf_start(&E);
	ts_sql(E.db, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, approvals, "
		     "outbox, threads, workers, llm_calls, llm_budgets, llm_reservations, "
		     "factory_budget_grants CASCADE");
}

static void end(void)
{
	tf_stop(&E);
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
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld",
				 (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND status = "
				 "'done' AND attempt = 1", (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge'", (long long)thread), 3);
	/* one spawn row per request id: nothing asked twice */
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE thread_id = %lld AND kind = "
				 "'spawn'", (long long)thread), 7);
	assert_int_equal(sql_int("SELECT count(DISTINCT payload->>'id') FROM outbox WHERE thread_id = "
				 "%lld AND kind = 'spawn'", (long long)thread), 7);
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
	if (getenv("TF_DEBUG")) {
		json_t *dbg = state_of(thread);
		char *x = json_dumps(json_object_get(dbg, "log"), JSON_INDENT(1));
		{ FILE *f = fopen("/tmp/tf_log.json", "w"); if (f) { fputs(x, f); fclose(f); } }
		free(x);
		json_decref(dbg);
	}
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
	pid_t serve;
	int64_t thread;
	(void)st;

	begin();
	tf_script_project(&E);
	serve = tf_spawn(&E, "serve", NULL);
	drive_strkit();
	check_finished_strkit(thread = tf_thread(&E, 1));
	/* the spec as shown, the plan as shown */
	assert_int_equal(tf_count_msgs(&E, "Spec, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "Plan, version 1"), 1);
	assert_int_equal(tf_count_msgs(&E, "changes requested"), 1);
	/* a message after the end says where the result is */
	tf_say(&E, "thanks!");
	json_decref(tf_wait_msg(&E, "This project is finished"));
	tf_kill(serve);
	end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idea_to_merged_main),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
