#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/redis.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *data_dir(void)
{
	const char *d = getenv("ORCH_DATA_DIR");
	return d && *d ? d : "/tmp";
}

int tss_sh(buf *out, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p)
		fail_msg("cannot run %s", cmd);
	for (;;) {
		char chunk[4096];
		size_t n = fread(chunk, 1, sizeof(chunk), p);
		if (n == 0)
			break;
		if (out)
			buf_append(out, chunk, n);
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void tss_project_repo(const char *name, char *out, size_t cap)
{
	char work[1024];
	int rc;

	snprintf(out, cap, "%s/repos/%s.git", data_dir(), name);
	snprintf(work, sizeof(work), "%s/repos/%s.src", data_dir(), name);
	rc = tss_sh(NULL,
		    "set -e; rm -rf '%s' '%s'; mkdir -p '%s'; cd '%s'; "
		    "git init -q -b main .; "
		    "printf 'def add(a, b):\\n    return a - b\\n' > calc.py; "
		    "printf 'import unittest\\nfrom calc import add\\n\\n\\n"
		    "class TestAdd(unittest.TestCase):\\n"
		    "    def test_small(self):\\n        self.assertEqual(add(2, 3), 5)\\n\\n"
		    "    def test_zero(self):\\n        self.assertEqual(add(0, 0), 0)\\n\\n"
		    "    def test_negative(self):\\n        self.assertEqual(add(-1, 1), 0)\\n\\n\\n"
		    "if __name__ == \"__main__\":\\n    unittest.main()\\n' > test_calc.py; "
		    "printf '__pycache__/\\n' > .gitignore; "
		    "printf '# Notes for agents\\n\\nKeep functions small and typed.\\n' > AGENTS.md; "
		    "git add -A; git -c user.name=t -c user.email=t@t commit -qm 'a calculator'; "
		    "git checkout -q -b linked; rm AGENTS.md; ln -s /etc/passwd AGENTS.md; "
		    "git add -A; git -c user.name=t -c user.email=t@t commit -qm 'a linked AGENTS.md'; "
		    "git checkout -q main; "
		    "git clone -q --bare . '%s'",
		    out, work, work, work, out);
	if (rc != 0)
		fail_msg("could not create the project repository %s", out);
}

static json_t *completion(json_t *message, const char *finish)
{
	return json_pack("{s:{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:s}], s:{s:i, s:i}}}", "json",
			 "id", "chatcmpl-test", "object", "chat.completion", "created", 1795000000,
			 "model", "fake-1", "choices", "index", 0, "message", message,
			 "finish_reason", finish, "usage", "prompt_tokens", 100, "completion_tokens",
			 20);
}

json_t *tss_text(const char *content)
{
	return completion(json_pack("{s:s, s:s}", "role", "assistant", "content", content), "stop");
}

json_t *tss_tool(const char *name, const char *arguments_json)
{
	static int n;
	char id[32];

	snprintf(id, sizeof(id), "call_%d", ++n);
	return completion(json_pack("{s:s, s:n, s:[{s:s, s:s, s:{s:s, s:s}}]}", "role", "assistant",
				    "content", "tool_calls", "id", id, "type", "function",
				    "function", "name", name, "arguments", arguments_json),
			  "tool_calls");
}

json_t *tss_bash(const char *command)
{
	json_t *a = json_pack("{s:s}", "command", command);
	char *s = json_dumps(a, JSON_COMPACT);
	json_t *r = tss_tool("bash", s);

	free(s);
	json_decref(a);
	return r;
}

json_t *tss_usage(json_t *reply, int tokens_in, int tokens_out)
{
	json_t *u = json_object_get(json_object_get(reply, "json"), "usage");

	json_object_set_new(u, "prompt_tokens", json_integer(tokens_in));
	json_object_set_new(u, "completion_tokens", json_integer(tokens_out));
	return reply;
}

json_t *tss_delay(json_t *reply, int delay_ms)
{
	json_object_set_new(reply, "delay_ms", json_integer(delay_ms));
	return reply;
}

void tss_script(fake_llm *f, json_t *replies)
{
	char *s = json_dumps(replies, JSON_COMPACT);

	if (!s)
		fail_msg("cannot serialise the script");
	fake_llm_script(f, s);
	free(s);
	json_decref(replies);
}

const char *tss_models(fake_llm *f)
{
	const char *path = fake_llm_models_file(
		f, "spawn-models.json",
		"{\"endpoints\": {\"fake\": {\"base_url\": \"%s\", \"slots\": 8, \"max_retries\": 0,"
		" \"timeout\": \"300s\"}},"
		" \"models\": {\"fake\": {\"endpoint\": \"fake\", \"model\": \"fake-1\","
		" \"context\": 200000, \"max_output\": 1024, \"price_in\": 1.0, \"price_out\": 2.0}},"
		" \"roles\": {\"default\": [\"fake\"]}}");
	setenv("ORCH_MODELS", path, 1);
	return path;
}

/* --- a private Redis --- */

static int port_free(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok, one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

void tss_redis_start(tss_redis *r)
{
	char port[16];
	int64_t until;

	if (!r->port) {
		const char *base = getenv("TEST_REDIS_PORT");
		int p = (base ? (int)strtol(base, NULL, 10) : 26379) + 200 + (int)(getpid() % 300);

		while (!port_free(p))
			p++;
		r->port = p;
		snprintf(r->dir, sizeof(r->dir), "%s/redis-%d", data_dir(), p);
		mkdir(r->dir, 0700);
	}
	if (r->password[0])
		snprintf(r->url, sizeof(r->url), "redis://:%s@127.0.0.1:%d/0", r->password, r->port);
	else
		snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
	snprintf(port, sizeof(port), "%d", r->port);
	r->pid = fork();
	if (r->pid < 0)
		fail_msg("fork failed");
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(126);
		if (r->password[0])
			execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
			       "--dir", r->dir, "--appendonly", "yes", "--appendfsync", "everysec",
			       "--save", "", "--requirepass", r->password, (char *)NULL);
		else
			execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
			       "--dir", r->dir, "--appendonly", "yes", "--appendfsync", "everysec",
			       "--save", "", (char *)NULL);
		_exit(127);
	}
	for (until = util_mono_ms() + 20000; util_mono_ms() < until; util_sleep_ms(20)) {
		rds_conn *c = NULL;
		rds_reply *rep = NULL;
		int ok;

		if (rds_connect(&c, r->url, 0) < 0)
			continue;
		ok = rds_cmd(c, &rep, "PING", NULL) == 0;
		rds_reply_free(rep);
		rds_free(c);
		if (ok)
			return;
	}
	fail_msg("the private redis-server on port %d did not start", r->port);
}

void tss_redis_stop(tss_redis *r)
{
	int st;

	if (r->pid <= 0)
		return;
	kill(r->pid, SIGTERM);
	waitpid(r->pid, &st, 0);
	r->pid = 0;
}
