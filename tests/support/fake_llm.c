#include "tests/support/fake_llm.h"
#include "tests/support/support.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void fake_llm_start(fake_llm *f)
{
	char prog[512], line[128];
	int fds[2];
	FILE *in;

	memset(f, 0, sizeof(*f));
	ts_prog("fake_openai", prog, sizeof(prog));
	if (pipe(fds) != 0)
		fail_msg("pipe failed");
	f->pid = fork();
	if (f->pid < 0)
		fail_msg("fork failed");
	if (f->pid == 0) {
		/* never outlive the test (a failed assertion skips fake_llm_stop) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(prog, prog, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) || sscanf(line, "{\"port\": %d}", &f->port) != 1)
		fail_msg("fake_openai (%s) did not start", prog);
	fclose(in);
	snprintf(f->base_url, sizeof(f->base_url), "http://127.0.0.1:%d/v1", f->port);
}

void fake_llm_stop(fake_llm *f)
{
	int st;

	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	waitpid(f->pid, &st, 0);
	f->pid = 0;
}

static void control(fake_llm *f, const char *method, const char *path, const char *body,
		    buf *out)
{
	http_client *c = NULL;
	http_request rq;
	http_response resp;
	char url[256];
	const char *hdrs[] = {"Content-Type: application/json", NULL};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = hdrs;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	if (http_client_new(&c) < 0 || http_do(c, &rq, &resp) < 0)
		fail_msg("fake_openai control %s: %s", path, err_last());
	if (resp.status != 200)
		fail_msg("fake_openai control %s: HTTP %ld: %s", path, resp.status,
			 buf_cstr(&resp.body));
	if (out)
		buf_puts(out, buf_cstr(&resp.body));
	http_response_free(&resp);
	http_client_free(c);
}

void fake_llm_post(fake_llm *f, const char *path, const char *json_text)
{
	control(f, "POST", path, json_text, NULL);
}

void fake_llm_script(fake_llm *f, const char *replies_json)
{
	fake_llm_post(f, "/__script", replies_json);
}

void fake_llm_reset(fake_llm *f)
{
	fake_llm_post(f, "/__reset", "{}");
}

json_t *fake_llm_get(fake_llm *f, const char *path)
{
	buf b;
	json_t *j;

	buf_init(&b, 0);
	control(f, "GET", path, NULL, &b);
	j = ts_json(buf_cstr(&b));
	buf_free(&b);
	return j;
}

json_t *fake_llm_requests(fake_llm *f)
{
	return fake_llm_get(f, "/__requests");
}

int fake_llm_count(fake_llm *f)
{
	json_t *r = fake_llm_requests(f);
	int n = (int)json_array_size(r);

	json_decref(r);
	return n;
}

const char *fake_llm_models_file(fake_llm *f, const char *name, const char *body)
{
	static char path[1024];
	const char *dir = getenv("ORCH_DATA_DIR");
	FILE *out;

	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/tmp", name);
	out = fopen(path, "w");
	if (!out)
		fail_msg("cannot write %s", path);
	for (const char *p = body; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			fputs(f->base_url, out);
			p++;
		} else {
			fputc(*p, out);
		}
	}
	fclose(out);
	return path;
}
