#include "tests/support/factory_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_CMD "python3 -m unittest discover -v"

void tf_start(tf_env *e)
{
	const char *dd = getenv("ORCH_DATA_DIR");
	char allowed[32];

	memset(e, 0, sizeof(*e));
	ts_fake_start(&e->tg);
	fake_llm_start(&e->llm);
	setenv("ORCH_MODELS",
	       fake_llm_models_file(
		       &e->llm, "factory-models.json",
		       "{\"endpoints\": {\"fake\": {\"base_url\": \"%s\", \"slots\": 8, "
		       "\"max_retries\": 0, \"timeout\": \"120s\"}},"
		       " \"models\": {"
		       "\"brain\": {\"endpoint\": \"fake\", \"model\": \"m-brainstorm\", \"context\": "
		       "200000, \"max_output\": 4096, \"price_in\": 1.0, \"price_out\": 2.0},"
		       "\"arch\": {\"endpoint\": \"fake\", \"model\": \"m-architect\", \"context\": "
		       "200000, \"max_output\": 4096, \"price_in\": 1.0, \"price_out\": 2.0},"
		       "\"dev\": {\"endpoint\": \"fake\", \"model\": \"m-developer\", \"context\": "
		       "200000, \"max_output\": 4096, \"price_in\": 1.0, \"price_out\": 2.0},"
		       "\"rev\": {\"endpoint\": \"fake\", \"model\": \"m-reviewer\", \"context\": "
		       "200000, \"max_output\": 4096, \"price_in\": 1.0, \"price_out\": 2.0}},"
		       " \"roles\": {\"brainstorm\": \"brain\", \"architect\": \"arch\", "
		       "\"developer\": \"dev\", \"reviewer\": \"rev\", \"default\": \"dev\"}}"),
	       1);
	snprintf(allowed, sizeof(allowed), "%d", TF_OWNER);
	/* what every orchestrator process of the test inherits */
	setenv("TELEGRAM_BOT_TOKEN", TS_TG_TOKEN, 1);
	setenv("TELEGRAM_API_BASE", e->tg.base, 1);
	setenv("ORCH_ALLOWED_USERS", allowed, 1);
	{
		/* the Unix user running the tests may answer the owner's questions
		 * from the terminal */
		struct passwd *pw = getpwuid(getuid());
		char ops[128];
		snprintf(ops, sizeof(ops), "%s:%d", pw ? pw->pw_name : "root", TF_OWNER);
		setenv("ORCH_OPERATORS", ops, 1);
	}
	setenv("ORCH_TG_POLL_TIMEOUT", "1s", 1);
	setenv("ORCH_TG_RATE_SCALE", "50", 1);
	setenv("ORCH_TG_TYPING", "0", 1);
	setenv("ORCH_TG_BACKOFF", "50ms", 1);
	setenv("ORCH_TG_MAX_BACKOFF", "500ms", 1);
	setenv("ORCH_BOT_STANDBY", "100ms", 1);
	setenv("ORCH_LEASE", "1s", 1);
	setenv("ORCH_POLL", "100ms", 1);
	setenv("ORCH_ENGINE_THREADS", "2", 1);
	setenv("ORCH_LLM_STATS_INTERVAL", "1s", 1);
	setenv("ORCH_SPAWN_CLAIM_IDLE", "3s", 1);
	setenv("ORCH_WORKER_DISK_KIND", "tmpfs", 1);
	setenv("ORCH_WORKER_DISK", "128M", 1);
	setenv("ORCH_WORKER_MEM", "512M", 1);
	setenv("ORCH_WORKER_PIDS", "128", 1);
	setenv("ORCH_AGENT_CMD_TIMEOUT", "60s", 1);
	setenv("ORCH_TEST_TIMEOUT", "60s", 1);
	setenv("ORCH_MAX_WORKERS", "2", 1);
	setenv("ORCH_LOG_FORMAT", "text", 1);
	if (!getenv("ORCH_LOG_LEVEL"))
		setenv("ORCH_LOG_LEVEL", "warn", 1);
	snprintf(e->log, sizeof(e->log), "%s/processes.log", dd ? dd : ".");
	e->db = ts_conn();
}

void tf_stop(tf_env *e)
{
	for (int i = 0; i < e->npids; i++)
		if (e->pids[i] > 0 && kill(e->pids[i], 0) == 0)
			tf_kill(e->pids[i]);
	for (int i = 0; i < e->npids; i++)
		waitpid(e->pids[i], NULL, WNOHANG);
	e->npids = 0;
	ts_fake_stop(&e->tg);
	fake_llm_stop(&e->llm);
	pg_conn_close(e->db);
	e->db = NULL;
}

pid_t tf_spawn(tf_env *e, const char *role, const char *const *env)
{
	pid_t pid = fork();

	if (pid < 0)
		fail_msg("fork failed");
	if (pid == 0) {
		int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		if (fd >= 0)
			dup2(fd, 2);
		if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "r", stdin) == NULL)
			_exit(126);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execl(ts_bin(), ts_bin(), role, (char *)NULL);
		_exit(127);
	}
	if (e->npids < (int)(sizeof(e->pids) / sizeof(e->pids[0])))
		e->pids[e->npids++] = pid;
	return pid;
}

void tf_kill(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

int tf_wait_exit(pid_t pid)
{
	int st;

	for (int64_t until = util_mono_ms() + TF_WAIT_MS; util_mono_ms() < until; util_sleep_ms(20))
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fail_msg("process %d did not exit", (int)pid);
	return -1;
}

static void show_log(tf_env *e)
{
	buf b;

	buf_init(&b, 0);
	tss_sh(&b, "tail -n 40 '%s' 2>/dev/null", e->log);
	fprintf(stderr, "# the processes' log ends with:\n%s\n", buf_cstr(&b));
	buf_reset(&b);
	tss_sh(&b, "psql -qAt '%s' -c \"SELECT r.id, t.key, r.status, r.waiting_on, r.error FROM runs "
		   "r JOIN threads t ON t.id = r.thread_id ORDER BY r.id\" -c \"SELECT id, kind, state, "
		   "attempts, last_error FROM outbox ORDER BY id\" -c \"SELECT id, stopped_at, "
		   "heartbeat_at FROM engines\" 2>&1", ts_db_url());
	fprintf(stderr, "# the database:\n%s\n", buf_cstr(&b));
	buf_free(&b);
}

static json_t *find_msg(tf_env *e, const char *needle, int with_buttons)
{
	json_t *all = ts_fake_messages(&e->tg), *m, *found = NULL;
	size_t i;

	json_array_foreach(all, i, m) {
		const char *t = json_string_value(json_object_get(m, "text"));
		json_t *kb = json_object_get(json_object_get(m, "reply_markup"), "inline_keyboard");
		if (json_integer_value(json_object_get(json_object_get(m, "chat"), "id")) != TF_OWNER)
			continue;
		if (!t || !strstr(t, needle) || (with_buttons && json_array_size(kb) == 0))
			continue;
		json_decref(found);
		found = json_incref(m);
	}
	json_decref(all);
	return found;
}

json_t *tf_wait_msg(tf_env *e, const char *needle)
{
	for (int64_t until = util_mono_ms() + TF_WAIT_MS; util_mono_ms() < until; util_sleep_ms(50)) {
		json_t *m = find_msg(e, needle, 0);
		if (m)
			return m;
	}
	show_log(e);
	fail_msg("no message containing '%s'", needle);
	return NULL;
}

int tf_count_msgs(tf_env *e, const char *needle)
{
	json_t *all = ts_fake_messages(&e->tg), *m;
	size_t i;
	int n = 0;

	json_array_foreach(all, i, m) {
		const char *t = json_string_value(json_object_get(m, "text"));
		if (t && strstr(t, needle)) {
			n++;
			if (getenv("TF_DEBUG"))
				fprintf(stderr, "# message %lld: %s\n",
					(long long)json_integer_value(json_object_get(m, "message_id")), t);
		}
	}
	json_decref(all);
	return n;
}

void tf_click(tf_env *e, const char *needle, const char *label)
{
	json_t *m = NULL, *rows, *row, *b;
	const char *data = NULL;
	size_t i, k;
	char body[512];

	for (int64_t until = util_mono_ms() + TF_WAIT_MS; !m && util_mono_ms() < until;
	     util_sleep_ms(50))
		m = find_msg(e, needle, 1);
	if (!m) {
		show_log(e);
		fail_msg("no question with buttons containing '%s'", needle);
	}
	rows = json_object_get(json_object_get(m, "reply_markup"), "inline_keyboard");
	json_array_foreach(rows, i, row)
		json_array_foreach(row, k, b)
			if (!data && strstr(json_string_value(json_object_get(b, "text")), label))
				data = json_string_value(json_object_get(b, "callback_data"));
	if (!data)
		fail_msg("the question '%s' has no button '%s'", needle, label);
	snprintf(body, sizeof(body),
		 "{\"chat_id\":%d,\"message_id\":%lld,\"from\":{\"id\":%d,\"is_bot\":false,"
		 "\"first_name\":\"Ada\"},\"data\":\"%s\"}",
		 TF_OWNER, (long long)json_integer_value(json_object_get(m, "message_id")), TF_OWNER,
		 data);
	json_decref(ts_fake_call(&e->tg, "/control/callback", body));
	/* decided: the bot takes the buttons away */
	for (int64_t until = util_mono_ms() + TF_WAIT_MS; util_mono_ms() < until; util_sleep_ms(50)) {
		json_t *all = ts_fake_messages(&e->tg), *x;
		int gone = 0;
		json_array_foreach(all, i, x)
			if (json_integer_value(json_object_get(x, "message_id")) ==
				    json_integer_value(json_object_get(m, "message_id")) &&
			    json_array_size(json_object_get(json_object_get(x, "reply_markup"),
							    "inline_keyboard")) == 0)
				gone = 1;
		json_decref(all);
		if (gone) {
			json_decref(m);
			return;
		}
	}
	show_log(e);
	fail_msg("the click on '%s' was not decided", label);
}

void tf_say(tf_env *e, const char *text)
{
	ts_fake_text(&e->tg, TF_OWNER, TF_OWNER, text);
}

void tf_no_duplicate_messages(tf_env *e)
{
	json_t *sent = ts_fake_requests(&e->tg, "sendMessage"), *a, *b;
	size_t i, k;

	json_array_foreach(sent, i, a) {
		const char *ta = json_string_value(json_object_get(json_object_get(a, "params"), "text"));
		if (json_integer_value(json_object_get(a, "status")) != 200 || !ta)
			continue;
		json_array_foreach(sent, k, b) {
			const char *tb = json_string_value(json_object_get(json_object_get(b, "params"),
									  "text"));
			if (k <= i || json_integer_value(json_object_get(b, "status")) != 200 || !tb)
				continue;
			if (strcmp(ta, tb) == 0)
				fail_msg("the same message was sent twice: %.200s", ta);
		}
	}
	json_decref(sent);
}

/* --- the scripted project --- */

json_t *tf_reply(const char *model, const char *match, const char *content)
{
	json_t *r = tss_text(content);

	json_object_set_new(r, "model", json_string(model));
	if (match)
		json_object_set_new(r, "match", json_string(match));
	return r;
}

static json_t *tool_reply(json_t *r, const char *match)
{
	const char *plus = strstr(match, " + ");

	json_object_set_new(r, "model", json_string("m-developer"));
	if (plus) /* "a + b": requests holding both */
		json_object_set_new(r, "match", json_pack("[s%, s]", match, (size_t)(plus - match),
							  plus + 3));
	else
		json_object_set_new(r, "match", json_string(match));
	return r;
}

void tf_script(tf_env *e, json_t *replies)
{
	tss_script(&e->llm, replies);
}

static json_t *json_reply(const char *model, const char *match, json_t *value)
{
	char *s = json_dumps(value, JSON_COMPACT);
	json_t *r = tf_reply(model, match, s);

	free(s);
	json_decref(value);
	return r;
}

json_t *tf_brainstorm_question(void)
{
	return json_reply("m-brainstorm", NULL,
			  json_pack("{s:s, s:n}", "message",
				    "A text toolkit, nice. Two questions: should it be a library, a "
				    "command line tool, or both? And may it use anything beyond "
				    "Python's standard library?",
				    "spec"));
}

json_t *tf_brainstorm_spec(void)
{
	json_t *spec = ts_json(
		"{\"name\": \"strkit\", \"summary\": \"A small Python library and command line "
		"tool for text: URL slugs and word counts.\", \"users\": [\"developers who "
		"script text processing\"], \"features\": [{\"name\": \"slugify\", "
		"\"description\": \"slugify(text) makes a URL slug\", \"acceptance\": "
		"[\"slugify('Hello World') == 'hello-world'\", \"slugify('Hello, World!') == "
		"'hello-world'\"]}, {\"name\": \"word count\", \"acceptance\": [\"word_count('a "
		"b  c') == 3\", \"word_count('') == 0\"]}, {\"name\": \"command line\", "
		"\"description\": \"python3 cli.py slug|count TEXT\", \"acceptance\": [\"prints "
		"the slug or the count\", \"exits with 2 and a usage line otherwise\"]}], "
		"\"language\": \"Python 3\", \"stack\": [\"standard library\", \"unittest\"], "
		"\"constraints\": [\"no dependencies outside the standard library\"], "
		"\"test_command\": \"" TEST_CMD "\"}");

	return json_reply("m-brainstorm", NULL,
			  json_pack("{s:s, s:o}", "message",
				    "Both, standard library only. Here is the spec for strkit:",
				    "spec", spec));
}

json_t *tf_brainstorm_spec_named(const char *name)
{
	json_t *r = tf_brainstorm_spec();
	json_t *msg = json_object_get(json_array_get(json_object_get(json_object_get(r, "json"),
								       "choices"), 0), "message");
	json_t *content = ts_json(json_string_value(json_object_get(msg, "content")));
	char *s;

	json_object_set_new(json_object_get(content, "spec"), "name", json_string(name));
	s = json_dumps(content, JSON_COMPACT);
	json_object_set_new(msg, "content", json_string(s));
	free(s);
	json_decref(content);
	return r;
}

json_t *tf_plan(void)
{
	return json_reply(
		"m-architect", NULL,
		ts_json("{\"summary\": \"Three modules at the top level: slug.py and wc.py are "
			"independent; cli.py uses both. Each has its unittest file.\", "
			"\"test_command\": \"" TEST_CMD "\", "
			"\"readme\": \"# strkit\\n\\nURL slugs and word counts, as a Python library "
			"and a command line tool.\\n\\n    python3 cli.py slug 'Hello, World!'\\n"
			"    python3 cli.py count 'a b c'\\n\\nTests: `" TEST_CMD "`\\n\", "
			"\"files\": [{\"path\": \".gitignore\", \"content\": \"__pycache__/\\n\"}, "
			"{\"path\": \"Makefile\", \"content\": \"test:\\n\\t" TEST_CMD "\\n\"}], "
			"\"tasks\": ["
			"{\"id\": \"slug\", \"title\": \"slugify()\", \"goal\": \"slug.py with "
			"slugify(text): lowercase, every run of characters other than letters and "
			"digits becomes one dash, no dash at either end.\", \"files\": [\"slug.py\", "
			"\"test_slug.py\"], \"checks\": [\"slugify('Hello World') == 'hello-world'\", "
			"\"slugify('Hello, World!') == 'hello-world'\"], \"deps\": []}, "
			"{\"id\": \"wc\", \"title\": \"word_count()\", \"goal\": \"wc.py with "
			"word_count(text): the number of whitespace-separated words.\", \"files\": "
			"[\"wc.py\", \"test_wc.py\"], \"checks\": [\"word_count('a b  c') == 3\", "
			"\"word_count('') == 0\"], \"deps\": []}, "
			"{\"id\": \"cli\", \"title\": \"the command line\", \"goal\": \"cli.py with "
			"main(argv): 'slug TEXT' prints slugify(TEXT), 'count TEXT' prints "
			"word_count(TEXT), anything else prints a usage line and returns 2.\", "
			"\"files\": [\"cli.py\", \"test_cli.py\"], \"checks\": [\"main(['slug', "
			"'Hello, World!']) prints hello-world\", \"main(['nope']) returns 2\"], "
			"\"deps\": [\"slug\", \"wc\"]}]}"));
}

static const char SLUG1[] =
	"cat > slug.py <<'EOF'\n"
	"def slugify(text):\n"
	"    \"\"\"Lowercase words joined by dashes.\"\"\"\n"
	"    return \"-\".join(text.lower().split())\n"
	"EOF\n"
	"cat > test_slug.py <<'EOF'\n"
	"import unittest\n\n"
	"from slug import slugify\n\n\n"
	"class TestSlug(unittest.TestCase):\n"
	"    def test_words(self):\n"
	"        self.assertEqual(slugify(\"Hello World\"), \"hello-world\")\n\n"
	"    def test_empty(self):\n"
	"        self.assertEqual(slugify(\"\"), \"\")\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

static const char SLUG2[] =
	"cat > slug.py <<'EOF'\n"
	"import re\n\n\n"
	"def slugify(text):\n"
	"    \"\"\"Lowercase letters and digits; any other run of characters is one dash.\"\"\"\n"
	"    return re.sub(r\"[^a-z0-9]+\", \"-\", text.lower()).strip(\"-\")\n"
	"EOF\n"
	"cat >> test_slug.py <<'EOF'\n\n\n"
	"class TestPunctuation(unittest.TestCase):\n"
	"    def test_punctuation(self):\n"
	"        self.assertEqual(slugify(\"Hello, World!\"), \"hello-world\")\n\n"
	"    def test_runs(self):\n"
	"        self.assertEqual(slugify(\"  a -- b  \"), \"a-b\")\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

static const char WC[] =
	"cat > wc.py <<'EOF'\n"
	"def word_count(text):\n"
	"    \"\"\"The number of whitespace-separated words.\"\"\"\n"
	"    return len(text.split())\n"
	"EOF\n"
	"cat > test_wc.py <<'EOF'\n"
	"import unittest\n\n"
	"from wc import word_count\n\n\n"
	"class TestWordCount(unittest.TestCase):\n"
	"    def test_words(self):\n"
	"        self.assertEqual(word_count(\"a b  c\"), 3)\n\n"
	"    def test_empty(self):\n"
	"        self.assertEqual(word_count(\"\"), 0)\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

static const char CLI[] =
	"cat > cli.py <<'EOF'\n"
	"import sys\n\n"
	"from slug import slugify\n"
	"from wc import word_count\n\n\n"
	"def main(argv):\n"
	"    if len(argv) != 2 or argv[0] not in (\"slug\", \"count\"):\n"
	"        print(\"usage: cli.py slug|count TEXT\", file=sys.stderr)\n"
	"        return 2\n"
	"    print(slugify(argv[1]) if argv[0] == \"slug\" else word_count(argv[1]))\n"
	"    return 0\n\n\n"
	"if __name__ == \"__main__\":\n"
	"    sys.exit(main(sys.argv[1:]))\n"
	"EOF\n"
	"cat > test_cli.py <<'EOF'\n"
	"import contextlib\n"
	"import io\n"
	"import unittest\n\n"
	"from cli import main\n\n\n"
	"def run(*args):\n"
	"    out = io.StringIO()\n"
	"    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):\n"
	"        code = main(list(args))\n"
	"    return code, out.getvalue()\n\n\n"
	"class TestCli(unittest.TestCase):\n"
	"    def test_slug(self):\n"
	"        self.assertEqual(run(\"slug\", \"Hello, World!\"), (0, \"hello-world\\n\"))\n\n"
	"    def test_count(self):\n"
	"        self.assertEqual(run(\"count\", \"a b c\"), (0, \"3\\n\"))\n\n"
	"    def test_usage(self):\n"
	"        self.assertEqual(run(\"nope\")[0], 2)\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

const char TF_SLUG_BROKEN[] =
	"cat > slug.py <<'EOF'\n"
	"def slugify(text):\n"
	"    return text\n"
	"EOF\n"
	"cat > test_slug.py <<'EOF'\n"
	"import unittest\n\n"
	"from slug import slugify\n\n\n"
	"class TestSlug(unittest.TestCase):\n"
	"    def test_words(self):\n"
	"        self.assertEqual(slugify(\"Hello World\"), \"hello-world\")\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

const char TF_SLUG_FULL[] =
	"cat > slug.py <<'EOF'\n"
	"import re\n\n\n"
	"def slugify(text):\n"
	"    return re.sub(r\"[^a-z0-9]+\", \"-\", text.lower()).strip(\"-\")\n"
	"EOF\n"
	"cat > test_slug.py <<'EOF'\n"
	"import unittest\n\n"
	"from slug import slugify\n\n\n"
	"class TestSlug(unittest.TestCase):\n"
	"    def test_words(self):\n"
	"        self.assertEqual(slugify(\"Hello World\"), \"hello-world\")\n\n"
	"    def test_empty(self):\n"
	"        self.assertEqual(slugify(\"\"), \"\")\n\n"
	"    def test_punctuation(self):\n"
	"        self.assertEqual(slugify(\"Hello, World!\"), \"hello-world\")\n\n"
	"    def test_runs(self):\n"
	"        self.assertEqual(slugify(\"  a -- b  \"), \"a-b\")\n"
	"EOF\n"
	TEST_CMD " 2>&1 | tail -3";

json_t *tf_agent_cmd(const char *match, const char *cmd)
{
	return json_pack("[o, o]", tool_reply(tss_bash(cmd), match),
			 tool_reply(tss_tool("submit", "{\"summary\": \"done\"}"), match));
}

int tf_cli(buf *out, const char *fmt, ...)
{
	char args[4096], cmd[4600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", ts_bin(), args);
	return tss_sh(out, "%s", cmd);
}

json_t *tf_agent(const char *task)
{
	const char *cmd = strcmp(task, "slug") == 0    ? SLUG1
			  : strcmp(task, "slug2") == 0 ? SLUG2
			  : strcmp(task, "wc") == 0    ? WC
						       : CLI;
	char match[160];

	if (strcmp(task, "slug2") == 0)
		snprintf(match, sizeof(match), "asked for changes to your work (review round 1)");
	else
		snprintf(match, sizeof(match), "Task %s, on branch task/%s", task, task);
	return json_pack("[o, o]", tool_reply(tss_bash(cmd), match),
			 tool_reply(tss_tool("submit", "{\"summary\": \"implemented with tests\"}"),
				    match));
}

json_t *tf_review(const char *task, int round, int approve)
{
	char match[160];
	const char *title = strcmp(task, "slug") == 0 ? "slugify()"
			    : strcmp(task, "wc") == 0 ? "word_count()"
						      : "the command line";

	snprintf(match, sizeof(match), "Task %s: %s (review round %d)", task, title, round);
	if (approve)
		return json_reply("m-reviewer", match,
				  json_pack("{s:s, s:s, s:[]}", "verdict", "approve", "summary",
					    "Does what the task asks; the tests cover the checks.",
					    "comments"));
	return json_reply(
		"m-reviewer", match,
		json_pack("{s:s, s:s, s:[{s:s, s:i, s:s}]}", "verdict", "request_changes", "summary",
			  "Punctuation is kept: slugify('Hello, World!') gives 'hello,-world!', "
			  "which fails an acceptance check.",
			  "comments", "file", "slug.py", "line", 3, "comment",
			  "Replace every run of characters other than a-z and 0-9 with one dash "
			  "and strip dashes at the ends; add a test for 'Hello, World!'."));
}

static void extend_new(json_t *a, json_t *b)
{
	json_array_extend(a, b);
	json_decref(b);
}

void tf_script_project(tf_env *e)
{
	json_t *all = json_array();

	json_array_append_new(all, tf_brainstorm_question());
	json_array_append_new(all, tf_brainstorm_spec());
	json_array_append_new(all, tf_plan());
	extend_new(all, tf_agent("slug"));
	extend_new(all, tf_agent("wc"));
	extend_new(all, tf_agent("slug2"));
	extend_new(all, tf_agent("cli"));
	json_array_append_new(all, tf_review("slug", 1, 0));
	json_array_append_new(all, tf_review("wc", 1, 1));
	json_array_append_new(all, tf_review("slug", 2, 1));
	json_array_append_new(all, tf_review("cli", 1, 1));
	tf_script(e, all);
}

int64_t tf_thread(tf_env *e, int n)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT coalesce((SELECT id FROM threads WHERE key = 'tg:%d:%d'), 0)",
		 TF_OWNER, n);
	return ts_sql_int(e->db, sql);
}

void tf_check_repository(tf_env *e, int64_t thread)
{
	char work[1024];
	buf out;
	int rc;

	(void)e;
	snprintf(work, sizeof(work), "%s/check-%lld", getenv("ORCH_DATA_DIR"), (long long)thread);
	buf_init(&out, 0);
	rc = tss_sh(&out,
		    "set -e; repo=$(ls -d '%s'/repos/strkit-%lld.git); rm -rf '%s'; "
		    "git clone -q \"$repo\" '%s'; cd '%s'; ls; git log --format=%%s | cat; "
		    TEST_CMD " 2>&1 | tail -4",
		    getenv("ORCH_DATA_DIR"), (long long)thread, work, work, work);
	if (rc != 0 || !strstr(buf_cstr(&out), "slug.py") || !strstr(buf_cstr(&out), "wc.py") ||
	    !strstr(buf_cstr(&out), "cli.py") || !strstr(buf_cstr(&out), "Ran 9 tests") ||
	    !strstr(buf_cstr(&out), "\nOK"))
		fail_msg("the repository is not what the project built:\n%s", buf_cstr(&out));
	buf_free(&out);
}

/* The names of a checkpoint's "nodes" or "next" (names or {"node"}). */
static const char *task_name(const json_t *t)
{
	return json_is_string(t) ? json_string_value(t) : json_string_value(json_object_get(t, "node"));
}

/* The arrows `orchestrator graph factory --mermaid` draws, as "a>b" keys. */
static json_t *drawn_arrows(void)
{
	json_t *arrows = json_object();
	char *text, *line, *nl;
	buf out;

	buf_init(&out, 0);
	if (tf_cli(&out, "graph factory --mermaid") != 0)
		fail_msg("orchestrator graph factory failed: %s", buf_cstr(&out));
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
	return arrows;
}

void tf_check_transitions(tf_env *e)
{
	json_t *arrows = drawn_arrows(), *cks;
	PGresult *r = NULL;
	size_t i, k, m;
	const json_t *ck, *to, *from;

	if (pg_exec(e->db, &r, "SELECT coalesce(json_agg(json_build_object('nodes', nodes, 'next', "
			       "next) ORDER BY thread_id, seq), '[]')::text FROM checkpoints", 0,
		    NULL) < 0)
		fail_msg("reading the checkpoints: %s", err_last());
	cks = ts_json(pg_val(r, 0, 0));
	PQclear(r);
	json_array_foreach(cks, i, ck) {
		const json_t *nodes = json_object_get(ck, "nodes"), *next = json_object_get(ck, "next");
		json_t *ends = json_pack("[s]", "__end__");
		if (json_array_size(next) == 0)
			next = ends;
		json_array_foreach(next, k, to) {
			int found = json_array_size(nodes) == 0;
			char key[140];
			json_array_foreach(nodes, m, from) {
				snprintf(key, sizeof(key), "%s>%s", task_name(from), task_name(to));
				found |= json_object_get(arrows, key) != NULL;
			}
			if (!found)
				fail_msg("a run went to %s from no node with an arrow to it",
					 task_name(to));
		}
		json_decref(ends);
	}
	json_decref(cks);
	json_decref(arrows);
}
