/*
 * The fake forge from C, as the forge client will use it: started with
 * ts_forge_start, a branch pushed over HTTP with a token, a pull request
 * opened with the project's HTTP client (libcurl), scripted through the
 * control API (a reviewer's comment, CI's status) and read back.
 */
#include "tests/support/forge_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_TOKEN "tok-c-dev-31"

/* One API request with the project's HTTP client; `headers` NULL-terminated.
 * Returns the status; the parsed body goes to *out when out is not NULL. */
static long api(const ts_forge *f, const char *method, const char *path, const char *body,
		const char *const *headers, json_t **out)
{
	http_client *c = NULL;
	http_request rq;
	http_response res;
	char url[256];
	long status;

	snprintf(url, sizeof(url), "%s%s", f->api, path);
	if (http_client_new(&c) < 0)
		fail_msg("http client: %s", err_last());
	memset(&rq, 0, sizeof(rq));
	rq.url = url;
	rq.method = method;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.headers = headers;
	rq.timeout_ms = 30000;
	if (http_do(c, &rq, &res) < 0)
		fail_msg("%s %s: %s", method, path, err_last());
	status = res.status;
	if (out)
		*out = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
	http_response_free(&res);
	http_client_free(c);
	return status;
}

static const char *const GH_HEADERS[] = {
	"User-Agent: orchestrator-test",
	"Accept: application/vnd.github+json",
	"X-GitHub-Api-Version: 2022-11-28",
	"Authorization: Bearer " DEV_TOKEN,
	"Content-Type: application/json",
	NULL,
};

static void test_forge_from_c(void **state)
{
	static const char *const users[] = {"dev:" DEV_TOKEN, "ro:tok-c-ro-32:read", NULL};
	static const char *const no_agent[] = {"Authorization: Bearer " DEV_TOKEN, NULL};
	char src[1024], root[1100], work[1100];
	char pr_body[6000], desc[4000];
	json_t *j = NULL, *log, *e;
	int saw_403 = 0, saw_201 = 0;
	ts_forge f;
	size_t i;
	long st;
	(void)state;

	tss_project_repo("forge-src", src, sizeof(src));
	snprintf(root, sizeof(root), "%s/forge", getenv("ORCH_DATA_DIR"));
	snprintf(work, sizeof(work), "%s/forge-work", getenv("ORCH_DATA_DIR"));
	if (tss_sh(NULL,
		   "rm -rf '%s' '%s' && mkdir -p '%s/acme' && git clone -q --bare '%s' '%s/acme/app.git'",
		   root, work, root, src, root))
		fail_msg("cannot create the served repository");
	/* a description as long as a spec, a plan and the test evidence */
	memset(desc, 'x', sizeof(desc) - 1);
	desc[sizeof(desc) - 1] = '\0';
	snprintf(pr_body, sizeof(pr_body),
		 "{\"title\":\"Fix add\",\"head\":\"fix\",\"base\":\"main\",\"body\":\"%s\"}", desc);
	ts_forge_start(&f, root, users);
	assert_true(f.pid > 0 && f.port > 0);

	/* a branch pushed over smart HTTP with the same token */
	assert_int_equal(tss_sh(NULL,
				"set -e; export GIT_TERMINAL_PROMPT=0; "
				"git clone -q 'http://x-access-token:%s@127.0.0.1:%d/acme/app.git' '%s'; cd '%s'; "
				"git checkout -q -b fix; printf 'def add(a, b):\\n    return a + b\\n' > calc.py; "
				"git -c user.name=t -c user.email=t@t commit -qam 'calc: add adds'; "
				"git push -q origin fix",
				DEV_TOKEN, f.port, work, work),
			 0);

	/* libcurl sends no User-Agent unless told: GitHub refuses such requests */
	st = api(&f, "POST", "/repos/acme/app/pulls", pr_body, no_agent, NULL);
	assert_int_equal(st, 403);

	st = api(&f, "POST", "/repos/acme/app/pulls", pr_body, GH_HEADERS, &j);
	assert_int_equal(st, 201);
	assert_int_equal(json_integer_value(json_object_get(j, "number")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "head"), "ref")), "fix");
	assert_int_equal(strlen(json_string_value(json_object_get(j, "body"))), sizeof(desc) - 1);
	json_decref(j);

	/* scripted: a reviewer's comment and CI's verdict */
	json_decref(ts_forge_control(&f, "issue_comment",
				     "{\"repo\":\"acme/app\",\"number\":1,\"user\":\"alice\","
				     "\"body\":\"Please add a test.\"}"));
	json_decref(ts_forge_control(&f, "status",
				     "{\"repo\":\"acme/app\",\"ref\":\"fix\",\"state\":\"failure\","
				     "\"context\":\"ci/test\"}"));
	st = api(&f, "GET", "/repos/acme/app/issues/1/comments", NULL, GH_HEADERS, &j);
	assert_int_equal(st, 200);
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "body")),
			    "Please add a test.");
	json_decref(j);
	st = api(&f, "GET", "/repos/acme/app/commits/fix/status", NULL, GH_HEADERS, &j);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "failure");
	json_decref(j);

	/* what the forge received */
	log = ts_forge_log(&f, 1);
	json_array_foreach(log, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "path")), "/api/v3/repos/acme/app/pulls"))
			continue;
		saw_403 |= json_integer_value(json_object_get(e, "status")) == 403;
		saw_201 |= json_integer_value(json_object_get(e, "status")) == 201;
	}
	json_decref(log);
	assert_true(saw_403 && saw_201);

	ts_forge_stop(&f);
	assert_int_equal(f.pid, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forge_from_c),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
