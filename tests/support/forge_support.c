#include "tests/support/forge_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/http.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORGE_MAX_USERS 16

void ts_forge_start(ts_forge *out, const char *root, const char *const *users)
{
	const char *argv[8 + 2 * FORGE_MAX_USERS];
	char line[32] = "", *end = NULL;
	size_t n = 0, got = 0;
	ssize_t r;
	int fds[2];
	long port;

	memset(out, 0, sizeof(*out));
	argv[n++] = "python3";
	argv[n++] = "tests/fakes/forge.py";
	argv[n++] = "--root";
	argv[n++] = root;
	for (size_t i = 0; users && users[i]; i++) {
		if (i == FORGE_MAX_USERS)
			fail_msg("ts_forge_start takes at most %d users", FORGE_MAX_USERS);
		argv[n++] = "--user";
		argv[n++] = users[i];
	}
	argv[n] = NULL;
	if (pipe(fds) != 0)
		fail_msg("pipe failed");
	out->pid = fork();
	if (out->pid < 0)
		fail_msg("fork failed");
	if (out->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	/* the first line is the port; it may come in more than one piece */
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		r = read(fds[0], line + got, sizeof(line) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		line[got] = '\0';
	}
	close(fds[0]);
	port = strtol(line, &end, 10);
	if (port <= 0 || port > 65535 || !end || *end != '\n')
		fail_msg("the fake forge did not start (tests/fakes/forge.py printed \"%s\")", line);
	out->port = (int)port;
	snprintf(out->base, sizeof(out->base), "http://127.0.0.1:%d", out->port);
	snprintf(out->api, sizeof(out->api), "%s/api/v3", out->base);
}

void ts_forge_stop(ts_forge *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

/* One request to the control API; the parsed answer of a 200, else fails
 * the test with the forge's own error. */
static json_t *forge_call(const ts_forge *f, const char *method, const char *path, const char *body)
{
	static const char *const hdrs[] = {"Content-Type: application/json", NULL};
	http_client *c = NULL;
	http_request rq;
	http_response res;
	char url[256];
	json_t *j;
	long status;

	snprintf(url, sizeof(url), "%s%s", f->base, path);
	if (http_client_new(&c) < 0)
		fail_msg("http client: %s", err_last());
	memset(&rq, 0, sizeof(rq));
	rq.url = url;
	rq.method = method;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.headers = hdrs;
	rq.timeout_ms = 30000;
	if (http_do(c, &rq, &res) < 0)
		fail_msg("forge %s %s: %s", method, path, err_last());
	status = res.status;
	j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
	if (status != 200)
		fail_msg("forge %s %s answered %ld: %.*s", method, path, status, (int)res.body.len,
			 res.body.data ? res.body.data : "");
	http_response_free(&res);
	http_client_free(c);
	if (!j)
		fail_msg("forge %s %s: unreadable answer", method, path);
	return j;
}

json_t *ts_forge_control(const ts_forge *f, const char *what, const char *body)
{
	char path[128];

	snprintf(path, sizeof(path), "/_control/%s", what);
	return forge_call(f, "POST", path, body ? body : "{}");
}

json_t *ts_forge_log(const ts_forge *f, int since)
{
	char path[64];
	json_t *all, *reqs;

	snprintf(path, sizeof(path), "/_control/log?since=%d", since);
	all = forge_call(f, "GET", path, NULL);
	reqs = json_incref(json_object_get(all, "requests"));
	json_decref(all);
	return reqs;
}
