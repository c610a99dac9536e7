#include "tests/support/fake_tg.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/http.h"
#include "core/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void ts_fake_start(ts_fake *f)
{
	char prog[1024], line[64];
	int fds[2];
	FILE *in;

	memset(f, 0, sizeof(*f));
	ts_prog("fake_telegram", prog, sizeof(prog));
	if (pipe(fds) != 0)
		fail_msg("pipe failed");
	f->pid = fork();
	if (f->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(prog, prog, "--token", TS_TG_TOKEN, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) || sscanf(line, "PORT %d", &f->port) != 1)
		fail_msg("the fake Telegram server did not start (%s)", prog);
	fclose(in);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
}

void ts_fake_stop(ts_fake *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

json_t *ts_fake_call(ts_fake *f, const char *path, const char *body)
{
	static const char *const hdrs[] = {"Content-Type: application/json", NULL};
	http_client *c = NULL;
	http_request rq;
	http_response res;
	char url[256];
	json_t *j;

	snprintf(url, sizeof(url), "%s%s", f->base, path);
	if (http_client_new(&c) < 0)
		fail_msg("http client: %s", err_last());
	memset(&rq, 0, sizeof(rq));
	rq.url = url;
	rq.method = body ? "POST" : "GET";
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.headers = hdrs;
	rq.timeout_ms = 20000;
	if (http_do(c, &rq, &res) < 0)
		fail_msg("fake call %s: %s", path, err_last());
	j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
	http_response_free(&res);
	http_client_free(c);
	if (!j)
		fail_msg("fake call %s: unreadable reply", path);
	return j;
}

void ts_fake_updates(ts_fake *f, const char *json_array)
{
	json_decref(ts_fake_call(f, "/control/updates", json_array));
}

void ts_fake_text(ts_fake *f, int64_t chat, int64_t user, const char *text)
{
	json_t *u = json_pack("[{s:{s:I,s:I,s:{s:I,s:b,s:s,s:s},s:{s:I,s:s},s:s}}]", "message",
			      "message_id", (json_int_t)(util_rand_below(1000000) + 1), "date",
			      (json_int_t)1700000000, "from", "id", (json_int_t)user, "is_bot", 0,
			      "first_name", "User", "username", "user", "chat", "id", (json_int_t)chat,
			      "type", chat < 0 ? "supergroup" : "private", "text", text);
	char *s = json_dumps(u, JSON_COMPACT);

	ts_fake_updates(f, s);
	free(s);
	json_decref(u);
}

json_t *ts_fake_requests(ts_fake *f, const char *method)
{
	json_t *all = ts_fake_call(f, "/control/requests", NULL), *out = json_array(), *r;
	size_t i;

	json_array_foreach(json_object_get(all, "requests"), i, r) {
		if (!method || strcmp(json_string_value(json_object_get(r, "method")), method) == 0)
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

json_t *ts_fake_messages(ts_fake *f)
{
	json_t *all = ts_fake_call(f, "/control/messages", NULL);
	json_t *m = json_incref(json_object_get(all, "messages"));

	json_decref(all);
	return m;
}

json_t *ts_fake_wait_message(ts_fake *f, int64_t chat, const char *needle, int64_t timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;

	do {
		json_t *msgs = ts_fake_messages(f), *m;
		size_t i;
		json_array_foreach(msgs, i, m) {
			const char *t = json_string_value(json_object_get(m, "text"));
			int64_t c = json_integer_value(json_object_get(json_object_get(m, "chat"), "id"));
			if (t && strstr(t, needle) && (chat == 0 || c == chat)) {
				json_incref(m);
				json_decref(msgs);
				return m;
			}
		}
		json_decref(msgs);
		util_sleep_ms(20);
	} while (util_mono_ms() < until);
	return NULL;
}

int ts_fake_wait_requests(ts_fake *f, const char *method, int n, int64_t timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;
	int got;

	do {
		json_t *r = ts_fake_requests(f, method);
		got = (int)json_array_size(r);
		json_decref(r);
		if (got >= n)
			return got;
		util_sleep_ms(20);
	} while (util_mono_ms() < until);
	return got;
}
