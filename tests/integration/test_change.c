/* Changes to existing repositories, end to end, against the real
 * orchestrator binary, PostgreSQL, Redis, sandboxes and git; the models and
 * Telegram are fakes, the forge is the fake that speaks GitHub's REST API:
 *
 *   - a local repository with tests: the model reads it before it asks, the
 *     repository's tests run on the base first (the baseline), one task
 *     breaks an existing test and is sent back, the other passes; the
 *     change ends merged in the project's repository, the source untouched;
 *   - a remote behind smart HTTP with Basic authentication, its credentials
 *     a handle granted to the chat: imported through the spawner, the
 *     person says push, its main moves forward;
 *   - a pull request on the fake forge (--pr): opened with the spec, plan,
 *     verdicts and tests in its description; a review comment and a CI
 *     failure reported on it each start a round on its branch, which
 *     updates it; its merge ends the project. */
#include "tests/support/factory_support.h"
#include "tests/support/forge_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"

#include "core/err.h"
#include "core/util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_CMD "python3 -m unittest discover -v"

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

static void begin(void)
{
	tf_start(&E);
	ts_sql(E.db, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, approvals, "
		     "outbox, threads, workers, llm_calls, llm_budgets, llm_reservations, "
		     "llm_budget_grants, forge_prs CASCADE");
}

static int teardown(void **st)
{
	(void)st;
	tf_stop(&E);
	return 0;
}

static void extend_new(json_t *a, json_t *b)
{
	json_array_extend(a, b);
	json_decref(b);
}

/* --- the repository changed: statkit, mean() and its three tests --- */

/* A git work tree at `dir` holding statkit, on main. */
static void make_statkit(const char *dir)
{
	if (tss_sh(NULL,
		   "set -e; rm -rf '%s'; mkdir -p '%s'; cd '%s'; git init -q -b main .; "
		   "printf '# statkit\\n\\nSmall statistics for lists of numbers: mean().\\n\\n"
		   "Tests: `" TEST_CMD "`\\n' > README.md; "
		   "printf '# Working on statkit\\n\\n- Standard library only.\\n- Test command: "
		   "`" TEST_CMD "` (it must pass).\\n' > AGENTS.md; "
		   "printf '__pycache__/\\n' > .gitignore; "
		   "printf '\"\"\"Statistics of lists of numbers.\"\"\"\\n\\n\\ndef mean(xs):\\n    "
		   "return sum(xs) / len(xs)\\n' > stats.py; "
		   "printf 'import unittest\\n\\nfrom stats import mean\\n\\n\\nclass TestMean("
		   "unittest.TestCase):\\n    def test_ints(self):\\n        self.assertEqual(mean("
		   "[1, 2, 3]), 2)\\n\\n    def test_floats(self):\\n        self.assertEqual(mean("
		   "[0.5, 1.5]), 1.0)\\n\\n    def test_one(self):\\n        self.assertEqual(mean("
		   "[7]), 7)\\n' > test_stats.py; "
		   "git add -A; git -c user.name=ada -c user.email=ada@example.org commit -qm "
		   "'statkit: mean'",
		   dir, dir, dir))
		fail_msg("cannot create statkit at %s", dir);
}

static json_t *json_reply(const char *model, const char *match, json_t *value)
{
	char *s = json_dumps(value, JSON_COMPACT);
	json_t *r = tf_reply(model, match, s);

	free(s);
	json_decref(value);
	return r;
}

/* The spec of the change: median() (and, with `two`, mode()). */
static json_t *spec_reply(int two)
{
	json_t *spec = ts_json(
		"{\"name\": \"statkit\", \"summary\": \"Add median() to stats.py, beside mean().\", "
		"\"users\": [\"scripts that use statkit\"], \"features\": [{\"name\": \"median\", "
		"\"description\": \"stats.median(xs)\", \"acceptance\": [\"median([3, 1, 2]) == 2\", "
		"\"median([1, 2, 3, 4]) == 2.5\", \"mean() is unchanged\"]}], \"language\": "
		"\"Python 3\", \"stack\": [\"standard library\"], \"constraints\": [\"standard "
		"library only\"], \"test_command\": \"" TEST_CMD "\"}");

	if (two)
		json_array_append_new(json_object_get(spec, "features"),
				      ts_json("{\"name\": \"mode\", \"acceptance\": [\"mode([1, 2, 2]) "
					      "== 2\"]}"));
	return json_reply("m-brainstorm", NULL,
			  json_pack("{s:s, s:o}", "message",
				    "I read stats.py and its tests: here is the change.", "spec", spec));
}

static json_t *plan_reply(int two)
{
	json_t *plan = ts_json(
		"{\"summary\": \"median() goes into stats.py beside mean(), tested in "
		"test_stats.py.\", \"test_command\": \"" TEST_CMD "\", \"tasks\": [{\"id\": "
		"\"median\", \"title\": \"median()\", \"goal\": \"Add median(xs) to stats.py.\", "
		"\"files\": [\"stats.py\", \"test_stats.py\"], \"checks\": [\"median([3, 1, 2]) == "
		"2\"], \"deps\": []}]}");

	if (two)
		json_array_append_new(json_object_get(plan, "tasks"),
				      ts_json("{\"id\": \"mode\", \"title\": \"mode()\", \"goal\": \"Add "
					      "mode(xs) to stats.py.\", \"files\": [\"stats.py\", "
					      "\"test_stats_mode.py\"], \"checks\": [\"mode([1, 2, 2]) "
					      "== 2\"], \"deps\": []}"));
	return json_reply("m-architect", NULL, plan);
}

static json_t *review_reply(const char *task, const char *title, int round)
{
	char match[200];

	snprintf(match, sizeof(match), "Task %s: %s (review round %d)", task, title, round);
	return json_reply("m-reviewer", match,
			  json_pack("{s:s, s:s, s:[]}", "verdict", "approve", "summary",
				    "Does what the task asks; the existing tests still pass.",
				    "comments"));
}

/* A worker's reply pair: one command, then submit. */
static json_t *agent(const char *match, const char *cmd)
{
	return tf_agent_cmd(match, cmd);
}

static const char MEDIAN_BROKEN[] =
	"cat > stats.py <<'EOF'\n"
	"def mean(xs):\n"
	"    return sum(xs)\n\n\n"
	"def median(xs):\n"
	"    s = sorted(xs)\n"
	"    return s[len(s) // 2]\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

static const char MEDIAN[] =
	"cat >> stats.py <<'EOF'\n\n\n"
	"def median(xs):\n"
	"    s = sorted(xs)\n"
	"    n = len(s)\n"
	"    return s[n // 2] if n %% 2 else (s[n // 2 - 1] + s[n // 2]) / 2\n"
	"EOF\n"
	"cat > test_median.py <<'EOF'\n"
	"import unittest\n\n"
	"from stats import median\n\n\n"
	"class TestMedian(unittest.TestCase):\n"
	"    def test_odd(self):\n"
	"        self.assertEqual(median([3, 1, 2]), 2)\n\n"
	"    def test_even(self):\n"
	"        self.assertEqual(median([1, 2, 3, 4]), 2.5)\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

static const char MODE[] =
	"cat >> stats.py <<'EOF'\n\n\n"
	"def mode(xs):\n"
	"    return max(sorted(set(xs)), key=xs.count)\n"
	"EOF\n"
	"cat > test_stats_mode.py <<'EOF'\n"
	"import unittest\n\n"
	"from stats import mode\n\n\n"
	"class TestMode(unittest.TestCase):\n"
	"    def test_mode(self):\n"
	"        self.assertEqual(mode([1, 2, 2]), 2)\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

/* `fmt` with its %% made %: the commands above are printf-safe for tss_sh. */
static char *unescape(const char *fmt)
{
	char *out = strdup(fmt), *w = out;

	for (const char *p = fmt; *p; p++) {
		*w++ = *p;
		if (p[0] == '%' && p[1] == '%')
			p++;
	}
	*w = '\0';
	return out;
}

/* Every model request so far, as one text (owned). */
static char *llm_requests(void)
{
	json_t *r = fake_llm_requests(&E.llm);
	char *s = json_dumps(r, JSON_COMPACT);

	json_decref(r);
	return s;
}

/* The first recorded request of `model` (owned body text). */
static char *first_request(const char *model)
{
	json_t *all = fake_llm_requests(&E.llm), *r;
	char *out = NULL;
	size_t i;

	json_array_foreach(all, i, r) {
		const json_t *bj = json_object_get(r, "body");
		char *body = json_is_string(bj) ? strdup(json_string_value(bj))
						: json_dumps(bj, JSON_COMPACT);
		if (!out && body && strstr(body, model))
			out = body;
		else
			free(body);
	}
	json_decref(all);
	if (!out)
		fail_msg("no request to %s", model);
	return out;
}

/* --- a local repository --- */

static void test_local_change(void **st)
{
	char src[1100], repo[1200], head0[64];
	json_t *script = json_array();
	char *median = unescape(MEDIAN), *mode = unescape(MODE);
	char *text;
	buf b;
	int64_t thread;
	pid_t serve;
	(void)st;

	begin();
	snprintf(src, sizeof(src), "%s/statkit", getenv("ORCH_DATA_DIR"));
	make_statkit(src);
	buf_init(&b, 0);
	assert_int_equal(tss_sh(&b, "git -C '%s' rev-parse main", src), 0);
	snprintf(head0, sizeof(head0), "%.40s", buf_cstr(&b));
	json_array_append_new(script, spec_reply(1));
	json_array_append_new(script, plan_reply(1));
	/* median: the first attempt breaks mean()'s tests, the second does it right */
	extend_new(script, agent("Task median, on branch task/median", MEDIAN_BROKEN));
	extend_new(script, agent("A previous attempt at this task failed + Task median", median));
	extend_new(script, agent("Task mode, on branch task/mode", mode));
	json_array_append_new(script, review_reply("median", "median()", 1));
	json_array_append_new(script, review_reply("mode", "mode()", 1));
	tf_script(&E, script);
	serve = tf_spawn(&E, "serve", NULL);

	/* from the terminal: a local path */
	buf_reset(&b);
	if (tf_cli(&b, "new --name ada --detach --repo '%s' 'add median() and mode() to stats.py'",
		   src) != 0)
		fail_msg("new --repo failed: %s", buf_cstr(&b));
	assert_non_null(strstr(buf_cstr(&b), "project term:ada:1 started"));
	thread = sql_int("SELECT id FROM threads WHERE key = 'term:ada:1'");
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'spec:1'", 1, TF_WAIT_MS);
	/* the model read the repository before it asked: AGENTS.md, the code, the tree */
	text = first_request("m-brainstorm");
	assert_non_null(strstr(text, "=== AGENTS.md"));
	assert_non_null(strstr(text, "Test command"));
	assert_non_null(strstr(text, "=== stats.py (5 lines), named in the request"));
	assert_non_null(strstr(text, "def mean(xs)"));
	assert_non_null(strstr(text, "./ (5): .gitignore, AGENTS.md, README.md, stats.py, test_stats.py"));
	free(text);
	assert_int_equal(tf_cli(&b, "approve term:ada:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'plan:1'", 1, TF_WAIT_MS);
	/* the baseline ran before any work, and the architect planned against it */
	text = first_request("m-architect");
	assert_non_null(strstr(text, "3 passed, 0 failed of 3 on main"));
	assert_non_null(strstr(text, "def mean(xs)"));
	free(text);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'test' AND status = 'done'", (long long)thread), 1);
	assert_int_equal(tf_cli(&b, "approve term:ada:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.send' AND "
			   "payload::text LIKE '%the change is made%'", 1, TF_WAIT_MS);

	/* what was said: the copy, the baseline, the files, the end */
	buf_reset(&b);
	assert_int_equal(tf_cli(&b, "chat --name ada --no-color </dev/null"), 0);
	text = strdup(buf_cstr(&b));
	if (!strstr(text, "Copied") || !strstr(text, "Baseline: 3 passed, 0 failed of 3 on main") ||
	    !strstr(text, "Files it changes: stats.py") || !strstr(text, "the change is made") ||
	    !strstr(text, "pull "))
		fail_msg("the chat lacks what the change said:\n%s", text);
	free(text);
	/* median was sent back once (it broke mean's tests), then done; mode at once */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND task = "
				 "'median' AND request->>'mode' IS NULL AND status = 'failed' AND "
				 "result->>'reason' LIKE 'the tests failed%%'", (long long)thread), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' IS NULL AND status = 'done'", (long long)thread), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND status = 'done'", (long long)thread),
			 2);
	/* the reviewer saw the baseline */
	text = llm_requests();
	assert_non_null(strstr(text, "The baseline (the repository's tests before any work): 3 "
				     "passed"));
	free(text);
	/* the project's repository holds the change and its tests pass; the source is as it was */
	snprintf(repo, sizeof(repo), "%s/repos/statkit-%lld.git", getenv("ORCH_DATA_DIR"),
		 (long long)thread);
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "set -e; d='%s/check'; rm -rf \"$d\"; git clone -q '%s' \"$d\"; "
				    "cd \"$d\"; grep -c 'def ' stats.py; " TEST_CMD " 2>&1 | tail -3",
				getenv("ORCH_DATA_DIR"), repo),
			 0);
	assert_non_null(strstr(buf_cstr(&b), "3\n"));
	assert_non_null(strstr(buf_cstr(&b), "Ran 6 tests"));
	assert_non_null(strstr(buf_cstr(&b), "\nOK"));
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "git -C '%s' rev-parse main; git -C '%s' status --short", src,
				src), 0);
	assert_int_equal(strncmp(buf_cstr(&b), head0, 40), 0);
	assert_int_equal(b.len, 41);
	free(median);
	free(mode);
	buf_free(&b);
	tf_kill(serve);
	tf_check_transitions(&E);
	tf_stop(&E);
}

/* The engine killed once inside each stage of a change (import, baseline,
 * deliver, finish: after the node emitted its messages and requests,
 * before the step commits): another engine takes the run over; the change
 * ends merged with nothing said twice and no request sent twice. */
static void test_engine_killed_in_change_stages(void **st)
{
	static const char *const stages[] = {"import:1", "baseline:1", "deliver:1", "finish:1"};
	char src[1100], crash[4][64];
	const char *env[2] = {NULL, NULL};
	json_t *script = json_array();
	char *median = unescape(MEDIAN);
	int64_t thread = 0;
	pid_t engine;
	buf b;
	(void)st;

	begin();
	snprintf(src, sizeof(src), "%s/statkit-crash", getenv("ORCH_DATA_DIR"));
	make_statkit(src);
	json_array_append_new(script, spec_reply(0));
	json_array_append_new(script, plan_reply(0));
	extend_new(script, agent("Task median, on branch task/median", median));
	json_array_append_new(script, review_reply("median", "median()", 1));
	tf_script(&E, script);
	tf_spawn(&E, "spawner", NULL);
	buf_init(&b, 0);
	for (int i = 0; i < 4; i++) {
		snprintf(crash[i], sizeof(crash[i]), "ORCH_FACTORY_TEST_CRASH=%s", stages[i]);
		env[0] = crash[i];
		engine = tf_spawn(&E, "engine", env);
		if (i == 0) {
			if (tf_cli(&b, "new --name cy --detach --repo '%s' 'add median() to stats.py'",
				   src) != 0)
				fail_msg("new --repo failed: %s", buf_cstr(&b));
			thread = sql_int("SELECT id FROM threads WHERE key = 'term:cy:1'");
		} else if (i == 1) {
			ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' "
					   "AND payload->>'key' = 'spec:1'", 1, TF_WAIT_MS);
			assert_int_equal(tf_cli(&b, "approve term:cy:1"), 0);
		} else if (i == 2) {
			ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' "
					   "AND payload->>'key' = 'plan:1'", 1, TF_WAIT_MS);
			assert_int_equal(tf_cli(&b, "approve term:cy:1"), 0);
		}
		assert_int_equal(tf_wait_exit(engine), 99);
	}
	tf_spawn(&E, "engine", NULL);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.send' AND "
			   "payload::text LIKE '%the change is made%'", 1, TF_WAIT_MS);
	/* one baseline, one worker, one merge; one spawn row per request id */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld",
				 (long long)thread), 3);
	assert_int_equal(sql_int("SELECT count(*) - count(DISTINCT payload->>'id') FROM outbox "
				 "WHERE thread_id = %lld AND kind = 'spawn'", (long long)thread), 0);
	/* nothing said twice */
	if (sql_int("SELECT count(*) - count(DISTINCT coalesce(payload->>'text', payload->>'html')) "
		    "FROM outbox WHERE thread_id = %lld AND kind = 'term.send'", (long long)thread)) {
		buf_reset(&b);
		tss_sh(&b, "psql -qAt '%s' -c \"SELECT coalesce(payload->>'text', payload->>'html') "
			   "FROM outbox WHERE thread_id = %lld AND kind = 'term.send' ORDER BY id\"",
		       ts_db_url(), (long long)thread);
		fail_msg("something was said twice:\n%s", buf_cstr(&b));
	}
	assert_true(sql_int("SELECT count(*) FROM outbox WHERE thread_id = %lld AND kind = "
			    "'term.send'", (long long)thread) > 5);
	/* one run did it all, taken over after every death */
	if (sql_int("SELECT count(*) FROM runs WHERE thread_id = %lld", (long long)thread) != 1) {
		buf_reset(&b);
		tss_sh(&b, "psql -qAt '%s' -c \"SELECT id, status, takeovers, error FROM runs WHERE "
			   "thread_id = %lld ORDER BY id\"", ts_db_url(), (long long)thread);
		fail_msg("more than one run:\n%s", buf_cstr(&b));
	}
	free(median);
	buf_free(&b);
	tf_check_transitions(&E);
	tf_stop(&E);
}

/* A repository whose tests fail before any work: the baseline names the
 * failure; the change is judged against it (workers and merges accept that
 * failure, by name) and merged. */
static void test_failing_baseline(void **st)
{
	char src[1100];
	json_t *script = json_array();
	char *median = unescape(MEDIAN);
	int64_t thread;
	pid_t serve;
	buf b;
	(void)st;

	begin();
	snprintf(src, sizeof(src), "%s/statkit-red", getenv("ORCH_DATA_DIR"));
	make_statkit(src);
	if (tss_sh(NULL, "set -e; cd '%s'; printf '\n    def test_empty(self):\n        "
			 "self.assertEqual(mean([]), 0)\n' >> test_stats.py; git commit -qam "
			 "'a test mean() fails'", src))
		fail_msg("cannot add the failing test");
	json_array_append_new(script, spec_reply(0));
	json_array_append_new(script, plan_reply(0));
	extend_new(script, agent("Task median, on branch task/median", median));
	json_array_append_new(script, review_reply("median", "median()", 1));
	tf_script(&E, script);
	serve = tf_spawn(&E, "serve", NULL);
	buf_init(&b, 0);
	if (tf_cli(&b, "new --name red --detach --repo '%s' 'add median() to stats.py'", src))
		fail_msg("new --repo failed: %s", buf_cstr(&b));
	thread = sql_int("SELECT id FROM threads WHERE key = 'term:red:1'");
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'spec:1'", 1, TF_WAIT_MS);
	assert_int_equal(tf_cli(&b, "approve term:red:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'plan:1'", 1, TF_WAIT_MS);
	assert_int_equal(tf_cli(&b, "approve term:red:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.send' AND "
			   "payload::text LIKE '%the change is made%'", 1, TF_WAIT_MS);
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE thread_id = %lld AND kind = "
				 "'term.send' AND payload::text LIKE '%%Baseline: 3 passed, 1 failed "
				 "of 4 on main at %% (failing: test_empty (test_stats.TestMean."
				 "test_empty))%%'", (long long)thread), 1);
	/* the worker and the merge were given the failure by name, and accepted it */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' IS DISTINCT FROM 'test' AND status = 'done' AND "
				 "request->>'allowed_failures' = '1' AND request->'allowed_failing'->>0 "
				 "LIKE 'test_empty %%'", (long long)thread), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND result->'tests'->>'failed' = '1'",
				 (long long)thread), 1);
	free(median);
	buf_free(&b);
	tf_kill(serve);
	tf_stop(&E);
}

/* --- a remote behind smart HTTP --- */

/* Starts tests/fakes/git_http.py over `root`; its port into *port. */
static pid_t start_git_http(const char *root, const char *user, const char *password,
			    const char *log, int *port)
{
	int fds[2];
	pid_t pid;
	char line[32] = "";
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execlp("python3", "python3", "tests/fakes/git_http.py", "--root", root, "--user", user,
		       "--password", password, "--log", log, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	for (size_t got = 0; got < sizeof(line) - 1 && !strchr(line, '\n'); got += (size_t)n) {
		n = read(fds[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			fail_msg("the git HTTP server did not start");
		line[got + (size_t)n] = '\0';
	}
	close(fds[0]);
	*port = (int)strtol(line, NULL, 10);
	assert_true(*port > 0);
	return pid;
}

/* Stores `value` as secret `name` and grants it to the owner's chat. */
static void chat_handle(const char *name, const char *value, char *out, size_t cap)
{
	buf b;
	char *h;

	static int inited;

	buf_init(&b, 0);
	if (!inited++ && tf_cli(&b, "secrets init"))
		fail_msg("secrets init: %s", buf_cstr(&b));
	buf_reset(&b);
	if (tss_sh(NULL, "printf '%s' | '%s' secrets set %s >/dev/null", value, ts_bin(), name))
		fail_msg("secrets set %s failed", name);
	if (tf_cli(&b, "resources allocate --scope tg:%d --secret %s --kind git", TF_OWNER, name))
		fail_msg("resources allocate: %s", buf_cstr(&b));
	h = strstr(buf_cstr(&b), "res_");
	if (!h)
		fail_msg("no handle in: %s", buf_cstr(&b));
	snprintf(out, cap, "%.*s", (int)strspn(h, "res_abcdefghijklmnopqrstuvwxyz0123456789"), h);
	buf_free(&b);
}

static void test_remote_push(void **st)
{
	char root[1100], log[1100], url[200], handle[64], msg[400], src[1100];
	json_t *script = json_array();
	char *median = unescape(MEDIAN);
	int64_t thread;
	pid_t serve, srv;
	buf b, c;
	int port, status;
	(void)st;

	begin();
	snprintf(root, sizeof(root), "%s/githttp", getenv("ORCH_DATA_DIR"));
	snprintf(log, sizeof(log), "%s/githttp.log", getenv("ORCH_DATA_DIR"));
	snprintf(src, sizeof(src), "%s/statkit-src", getenv("ORCH_DATA_DIR"));
	make_statkit(src);
	if (tss_sh(NULL, "set -e; rm -rf '%s'; mkdir -p '%s'; git clone -q --bare '%s' "
			 "'%s/statkit.git'; git -C '%s/statkit.git' config http.receivepack true",
		   root, root, src, root, root))
		fail_msg("cannot create the served repository");
	srv = start_git_http(root, "ada", "pw-change-5521", log, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/statkit.git", port);
	chat_handle("STATKIT_GIT", "ada:pw-change-5521", handle, sizeof(handle));
	json_array_append_new(script, spec_reply(0));
	json_array_append_new(script, plan_reply(0));
	extend_new(script, agent("Task median, on branch task/median", median));
	json_array_append_new(script, review_reply("median", "median()", 1));
	tf_script(&E, script);
	serve = tf_spawn(&E, "serve", NULL);

	/* from Telegram: a URL and the chat's handle */
	snprintf(msg, sizeof(msg), "/new --repo %s --handle %s add median() to stats.py", url,
		 handle);
	tf_say(&E, msg);
	json_decref(tf_wait_msg(&E, "a change to an existing repository"));
	tf_click(&E, "Make this change to statkit", "Approve");
	json_decref(tf_wait_msg(&E, "Baseline: 3 passed"));
	tf_click(&E, "Start building with this plan", "Approve");
	/* nothing is pushed before the person says so */
	tf_click(&E, "Push it to", "Push it");
	json_decref(tf_wait_msg(&E, "the change is made"));
	json_decref(tf_wait_msg(&E, "Pushed to"));
	thread = tf_thread(&E, 1);
	/* the remote's main is the project's main */
	buf_init(&b, 0);
	buf_init(&c, 0);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s/statkit.git' rev-parse main", root), 0);
	assert_int_equal(tss_sh(&c, "git --git-dir='%s/repos/statkit-%lld.git' rev-parse main",
				getenv("ORCH_DATA_DIR"), (long long)thread), 0);
	assert_string_equal(buf_cstr(&b), buf_cstr(&c));
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s/statkit.git' show main:stats.py", root), 0);
	assert_non_null(strstr(buf_cstr(&b), "def median"));
	/* the server challenged the import and the push, then got the handle's credentials */
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "cat '%s'", log), 0);
	assert_non_null(strstr(buf_cstr(&b), "401 GET /statkit.git/info/refs?service=git-upload-pack"));
	assert_non_null(strstr(buf_cstr(&b), "200 POST /statkit.git/git-upload-pack ada"));
	assert_non_null(strstr(buf_cstr(&b), "200 POST /statkit.git/git-receive-pack ada"));
	/* only one push: after the person said so, none during the merges */
	assert_int_equal(tss_sh(NULL, "test $(grep -c 'POST /statkit.git/git-receive-pack' '%s') "
				      "-eq 1", log), 0);
	/* the project got its own handle for the chat's secret; the password is nowhere */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'repo_secret' IS NOT NULL AND request->>'repo_secret' <> "
				 "'%s'", (long long)thread, handle), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE result::text LIKE "
				 "'%%pw-change-5521%%' OR request::text LIKE '%%pw-change-5521%%'"), 0);
	assert_int_equal(tf_count_msgs(&E, "pw-change-5521"), 0);
	tf_no_duplicate_messages(&E);
	free(median);
	buf_free(&b);
	buf_free(&c);
	tf_kill(serve);
	kill(srv, SIGTERM);
	waitpid(srv, &status, 0);
	tf_check_transitions(&E);
	tf_stop(&E);
}

/* --- a pull request on the fake forge --- */

#define FORGE_TOKEN "tok-change-pr-7731"

static json_t *pr_log_since(const ts_forge *f, int since, const char *method, const char *part)
{
	json_t *log = ts_forge_log(f, since), *out = json_array(), *e;
	size_t i;

	json_array_foreach(log, i, e)
		if (strcmp(json_string_value(json_object_get(e, "method")), method) == 0 &&
		    strstr(json_string_value(json_object_get(e, "path")), part))
			json_array_append(out, e);
	json_decref(log);
	return out;
}

/* GETs the pull request from the forge's API (as a person would look). */
static json_t *get_pr(const ts_forge *f, int n)
{
	buf b;
	json_t *j;

	buf_init(&b, 0);
	if (tss_sh(&b, "curl -s -H 'User-Agent: t' -H 'Authorization: Bearer " FORGE_TOKEN "' "
		       "'%s/repos/acme/statkit/pulls/%d'", f->api, n))
		fail_msg("curl failed");
	j = ts_json(buf_cstr(&b));
	buf_free(&b);
	return j;
}

static void test_pull_request(void **st)
{
	static const char *const users[] = {"bot:" FORGE_TOKEN, NULL};
	const char *env[2] = {"ORCH_FORGE_POLL=1s", NULL};
	char root[1100], src[1100], url[200], handle[64], msg[400], sha1[48], body[600];
	json_t *script = json_array(), *pr, *log;
	char *median = unescape(MEDIAN);
	const char *text;
	int64_t thread;
	ts_forge f;
	pid_t serve;
	(void)st;

	begin();
	snprintf(root, sizeof(root), "%s/forge", getenv("ORCH_DATA_DIR"));
	snprintf(src, sizeof(src), "%s/statkit-pr", getenv("ORCH_DATA_DIR"));
	make_statkit(src);
	if (tss_sh(NULL, "set -e; rm -rf '%s'; mkdir -p '%s/acme'; git clone -q --bare '%s' "
			 "'%s/acme/statkit.git'", root, root, src, root))
		fail_msg("cannot create the forge's repository");
	ts_forge_start(&f, root, users);
	snprintf(url, sizeof(url), "%s/acme/statkit.git", f.base);
	chat_handle("FORGE_TOKEN", FORGE_TOKEN, handle, sizeof(handle));
	json_array_append_new(script, spec_reply(0));
	json_array_append_new(script, plan_reply(0));
	extend_new(script, agent("Task median, on branch task/median", median));
	json_array_append_new(script, review_reply("median", "median()", 1));
	/* round 1: a reviewer's comment on the pull request */
	extend_new(script, agent("Task pr-1, on branch task/pr-1 + alice on stats.py",
				 "printf '\\n\\ndef middle(xs):\\n    return median(xs)\\n' >> stats.py"));
	json_array_append_new(script, review_reply("pr-1", "Pull request #1, round 1: what was asked "
							   "on it", 1));
	/* round 2: CI reported a failure on the new head */
	extend_new(script, agent("Task pr-2, on branch task/pr-2 + CI: lint is failure",
				 "sed -i 's/^def middle/def middle_value/' stats.py"));
	json_array_append_new(script, review_reply("pr-2", "Pull request #1, round 2: what was asked "
							   "on it", 1));
	tf_script(&E, script);
	serve = tf_spawn(&E, "serve", env);

	snprintf(msg, sizeof(msg), "/new --repo %s --pr --handle %s add median() to stats.py", url,
		 handle);
	tf_say(&E, msg);
	tf_click(&E, "Make this change to statkit", "Approve");
	tf_click(&E, "Start building with this plan", "Approve");
	/* --pr said it: the pull request is opened without another question */
	json_decref(tf_wait_msg(&E, "Pull request #1 opened"));
	json_decref(tf_wait_msg(&E, "the change is made"));
	thread = tf_thread(&E, 1);
	pr = get_pr(&f, 1);
	snprintf(body, sizeof(body), "orchestrator/statkit-%lld", (long long)thread);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pr, "head"), "ref")),
			    body);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pr, "base"), "ref")),
			    "main");
	assert_string_equal(json_string_value(json_object_get(pr, "title")), "statkit: median");
	text = json_string_value(json_object_get(pr, "body"));
	assert_non_null(strstr(text, "## What changes"));
	assert_non_null(strstr(text, "median([3, 1, 2]) == 2"));          /* the spec */
	assert_non_null(strstr(text, "**median()** (`median`"));          /* the plan */
	assert_non_null(strstr(text, "review, round 1: **approved**"));   /* the verdicts */
	assert_non_null(strstr(text, "5 of 5 pass on this branch"));      /* the tests */
	assert_non_null(strstr(text, "3 passed, 0 failed of 3 on main")); /* the baseline */
	snprintf(sha1, sizeof(sha1), "%s",
		 json_string_value(json_object_get(json_object_get(pr, "head"), "sha")));
	json_decref(pr);
	/* the remote's main was not touched: the change waits in the pull request */
	assert_int_equal(tss_sh(NULL, "test $(git --git-dir='%s/acme/statkit.git' rev-parse main) = "
				      "$(git -C '%s' rev-parse main)", root, src), 0);

	/* the forge fails a few looks: nothing is lost, the next look delivers */
	json_decref(ts_forge_control(&f, "fail", "{\"count\":3,\"status\":502,\"kind\":\"error\","
						 "\"method\":\"GET\",\"path\":\"/pulls/1/comments\"}"));
	/* a reviewer comments on a line: a new round on the same branch, the pull request updated */
	json_decref(ts_forge_control(&f, "review_comment",
				     "{\"repo\":\"acme/statkit\",\"number\":1,\"user\":\"alice\","
				     "\"body\":\"Add a middle() alias, please.\",\"path\":\"stats.py\","
				     "\"line\":8}"));
	json_decref(tf_wait_msg(&E, "round 1 starts on its branch"));
	json_decref(tf_wait_msg(&E, "statkit/pull/1 (round 1)"));
	pr = get_pr(&f, 1);
	assert_string_not_equal(json_string_value(json_object_get(json_object_get(pr, "head"),
								  "sha")), sha1);
	snprintf(sha1, sizeof(sha1), "%s",
		 json_string_value(json_object_get(json_object_get(pr, "head"), "sha")));
	json_decref(pr);
	assert_int_equal(tss_sh(NULL, "git --git-dir='%s/acme/statkit.git' show '%s:stats.py' | "
				      "grep -q 'def middle'", root, sha1), 0);

	/* CI reports a failure on the new head: another round */
	snprintf(body, sizeof(body), "{\"repo\":\"acme/statkit\",\"sha\":\"%s\",\"state\":\"failure\","
				     "\"context\":\"lint\",\"description\":\"middle is not a good "
				     "name\"}", sha1);
	json_decref(ts_forge_control(&f, "status", body));
	json_decref(tf_wait_msg(&E, "round 2 starts on its branch"));
	json_decref(tf_wait_msg(&E, "statkit/pull/1 (round 2)"));
	pr = get_pr(&f, 1);
	assert_string_not_equal(json_string_value(json_object_get(json_object_get(pr, "head"),
								  "sha")), sha1);
	json_decref(pr);
	assert_int_equal(tss_sh(NULL, "git --git-dir='%s/acme/statkit.git' show "
				      "'orchestrator/statkit-%lld:stats.py' | grep -q 'def middle_value'",
				root, (long long)thread), 0);
	/* one pull request all along: the second and third deliveries updated it */
	log = pr_log_since(&f, 1, "POST", "/pulls");
	assert_int_equal(json_array_size(log), 1);
	json_decref(log);
	log = pr_log_since(&f, 1, "PATCH", "/pulls/1");
	assert_true(json_array_size(log) >= 2);
	json_decref(log);
	{
		json_t *gets = pr_log_since(&f, 1, "GET", "/pulls/1/comments"), *e;
		size_t i;
		int failed = 0;
		json_array_foreach(gets, i, e)
			failed += json_integer_value(json_object_get(e, "status")) == 502;
		assert_int_equal(failed, 3);
		json_decref(gets);
	}
	assert_int_equal(tf_count_msgs(&E, "round 1 starts"), 1);

	/* merged from the web: the project ends */
	json_decref(ts_forge_control(&f, "merge", "{\"repo\":\"acme/statkit\",\"number\":1,"
						  "\"user\":\"alice\",\"merge_method\":\"merge\"}"));
	json_decref(tf_wait_msg(&E, "Pull request #1 was merged"));
	ts_await_sql(E.db, "SELECT count(*) FROM forge_prs WHERE state = 'merged'", 1, TF_WAIT_MS);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'pr' AND status = 'done'", (long long)thread), 3);
	assert_int_equal(tf_count_msgs(&E, FORGE_TOKEN), 0);
	tf_no_duplicate_messages(&E);
	free(median);
	tf_kill(serve);
	ts_forge_stop(&f);
	tf_check_transitions(&E);
	tf_stop(&E);
}

/* --- a repository of a few thousand lines: the eval's tasklog --- */

#define TASK "eval/tasks/chg-py-tasklog-csv"

/* A shell command that writes the files of `dir` (relative paths from
 * `dir`) as they are, one here-document each. Owned. */
static char *write_files_cmd(const char *dir)
{
	buf list, cmd;
	char *line, *save;

	buf_init(&list, 0);
	buf_init(&cmd, 0);
	if (tss_sh(&list, "cd '%s' && find . -type f | sort", dir))
		fail_msg("cannot list %s", dir);
	for (line = strtok_r(list.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		buf content;
		buf_init(&content, 0);
		if (tss_sh(&content, "cat '%s/%s'", dir, line))
			fail_msg("cannot read %s/%s", dir, line);
		buf_printf(&cmd, "mkdir -p \"$(dirname '%s')\" && cat > '%s' <<'ORCH_FILE_END'\n%s%s"
				 "ORCH_FILE_END\n",
			   line, line, buf_cstr(&content),
			   content.len && content.data[content.len - 1] != '\n' ? "\n" : "");
		buf_free(&content);
	}
	buf_puts(&cmd, "python3 -m unittest discover -s tests 2>&1 | tail -3");
	buf_free(&list);
	return buf_steal(&cmd);
}

/* The eval's change task chg-py-tasklog-csv run through the factory with
 * its reference solution as the worker's work: the repository (2,600
 * lines) read in part, never whole; its 95 tests as the baseline; the
 * change merged in the project's repository, where the task's hidden
 * acceptance tests pass. */
static void test_tasklog_change(void **st)
{
	char src[1100], repo[1200];
	json_t *task = json_load_file(TASK "/task.json", 0, NULL), *script = json_array();
	char cwd[1024];
	char *cmd = write_files_cmd(TASK "/reference"), *text, *idea;
	int64_t thread;
	pid_t serve;
	buf b;
	(void)st;

	begin();
	if (!task || !getcwd(cwd, sizeof(cwd)))
		fail_msg("cannot read " TASK "/task.json");
	idea = strdup(json_string_value(json_object_get(task, "idea")));
	snprintf(src, sizeof(src), "%s/tasklog", getenv("ORCH_DATA_DIR"));
	if (tss_sh(NULL, "set -e; rm -rf '%s'; cp -r " TASK "/repo '%s'; cd '%s'; git init -q -b "
			 "main; git add -A; git -c user.name=t -c user.email=t@t commit -qm tasklog",
		   src, src, src))
		fail_msg("cannot make the tasklog repository");
	json_array_append_new(script, json_reply("m-brainstorm", NULL, ts_json(
		"{\"message\": \"export.py registers the formats; here is the change.\", \"spec\": "
		"{\"name\": \"tasklog\", \"summary\": \"CSV export beside json and markdown.\", "
		"\"users\": [\"tasklog users\"], \"features\": [{\"name\": \"CSV export\", "
		"\"acceptance\": [\"tasklog export --format csv writes the header and one row per "
		"finished entry\"]}], \"language\": \"Python 3.11\", \"stack\": [\"standard "
		"library\"], \"constraints\": [\"json and markdown exports unchanged\"], "
		"\"test_command\": \"python3 -m unittest discover -s tests -v\"}}")));
	json_array_append_new(script, json_reply("m-architect", NULL, ts_json(
		"{\"summary\": \"A csv exporter registered in FORMATS.\", \"test_command\": "
		"\"python3 -m unittest discover -s tests -v\", \"tasks\": [{\"id\": \"csv\", "
		"\"title\": \"CSV export\", \"goal\": \"Add the csv format to tasklog/export.py, "
		"its tests and the README's Exports section.\", \"files\": [\"tasklog/export.py\", "
		"\"tests/test_render_export.py\", \"README.md\", \"CHANGELOG.md\"], \"checks\": "
		"[\"the csv export round-trips through csv.DictReader\"], \"deps\": []}]}")));
	extend_new(script, agent("Task csv, on branch task/csv", cmd));
	json_array_append_new(script, review_reply("csv", "CSV export", 1));
	tf_script(&E, script);
	serve = tf_spawn(&E, "serve", NULL);
	buf_init(&b, 0);
	if (tf_cli(&b, "new --name eva --detach --repo '%s' \"%s\"", src, idea) != 0)
		fail_msg("new --repo failed: %s", buf_cstr(&b));
	thread = sql_int("SELECT id FROM threads WHERE key = 'term:eva:1'");
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'spec:1'", 1, TF_WAIT_MS);
	/* a selection, never the whole repository: the export module, not the invoices */
	text = first_request("m-brainstorm");
	assert_non_null(strstr(text, "=== tasklog/export.py"));
	assert_null(strstr(text, "=== tasklog/invoice.py"));
	assert_true(strlen(text) < 48000);
	fprintf(stderr, "# the brainstorm's request: %zu bytes (the repository: 2,601 lines)\n",
		strlen(text));
	free(text);
	assert_int_equal(tf_cli(&b, "approve term:eva:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.approval' AND "
			   "payload->>'key' = 'plan:1'", 1, TF_WAIT_MS);
	text = first_request("m-architect");
	assert_non_null(strstr(text, "95 passed, 0 failed of 95 on main"));
	free(text);
	assert_int_equal(tf_cli(&b, "approve term:eva:1"), 0);
	ts_await_sql(E.db, "SELECT count(*) FROM outbox WHERE kind = 'term.send' AND "
			   "payload::text LIKE '%the change is made%'", 1, TF_WAIT_MS);
	/* merged in the project's repository: its own tests and the task's hidden ones pass */
	snprintf(repo, sizeof(repo), "%s/repos/tasklog-%lld.git", getenv("ORCH_DATA_DIR"),
		 (long long)thread);
	buf_reset(&b);
	if (tss_sh(&b, "set -e; d='%s/tasklog-check'; rm -rf \"$d\"; git clone -q '%s' \"$d\"; "
		       "cd \"$d\"; python3 -m unittest discover -s tests 2>&1 | tail -3; cp "
		       "'%s/" TASK "/hidden/eval_hidden_csv_export.py' .; %s 2>&1 | tail -3",
		   getenv("ORCH_DATA_DIR"), repo, cwd,
		   json_string_value(json_object_get(json_object_get(task, "hidden"), "command"))) ||
	    !strstr(buf_cstr(&b), "\nOK"))
		fail_msg("the merged change does not pass its tests:\n%s", buf_cstr(&b));
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE thread_id = %lld AND "
				 "request->>'mode' = 'merge' AND status = 'done'", (long long)thread),
			 1);
	free(cmd);
	free(idea);
	json_decref(task);
	buf_free(&b);
	tf_kill(serve);
	tf_check_transitions(&E);
	tf_stop(&E);
}

/* /new --repo refuses what it cannot use, saying why. */
static void test_refusals(void **st)
{
	pid_t serve;
	buf b;
	(void)st;

	begin();
	serve = tf_spawn(&E, "serve", NULL);
	/* a chat may not name a path on the host, nor credentials in a URL */
	tf_say(&E, "/new --repo /etc add a feature");
	json_decref(tf_wait_msg(&E, "a local path works from the terminal only"));
	tf_say(&E, "/new --repo https://ada:pw@example.org/a/b.git add a feature");
	json_decref(tf_wait_msg(&E, "must not hold credentials"));
	tf_say(&E, "/new --branch dev add a feature");
	json_decref(tf_wait_msg(&E, "go with --repo URL"));
	/* the terminal checks a path before anything starts */
	buf_init(&b, 0);
	assert_int_equal(tf_cli(&b, "new --detach --repo '%s' 'add x'", getenv("ORCH_DATA_DIR")), 1);
	assert_non_null(strstr(buf_cstr(&b), "not a git repository"));
	buf_reset(&b);
	assert_int_equal(tf_cli(&b, "new --detach --pr 'add x'"), 2);
	assert_non_null(strstr(buf_cstr(&b), "go with --repo"));
	buf_free(&b);
	tf_kill(serve);
	tf_stop(&E);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_refusals, teardown),
		cmocka_unit_test_teardown(test_local_change, teardown),
		cmocka_unit_test_teardown(test_engine_killed_in_change_stages, teardown),
		cmocka_unit_test_teardown(test_failing_baseline, teardown),
		cmocka_unit_test_teardown(test_remote_push, teardown),
		cmocka_unit_test_teardown(test_pull_request, teardown),
		cmocka_unit_test_teardown(test_tasklog_change, teardown),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
