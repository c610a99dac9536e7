/* The MCP server's protocol layer without a database: version negotiation,
 * the lifecycle, JSON-RPC errors, batches, the tools' schemas, paging of
 * tools/list, the streamable HTTP transport's rules (sessions, tokens,
 * origins, protocol versions, streams). The tools themselves run against
 * the real factory in tests/scripts/test_mcp.py. */
#include "tests/support/support.h"
#include "core/err.h"
#include "mcp/http.h"
#include "mcp/mcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mcp_backend NONE; /* no tool is called here */

static mcp_server *server(int page)
{
	mcp_server *s = NULL;
	mcp_opts o;

	memset(&o, 0, sizeof(o));
	o.be = &NONE;
	o.page_size = page;
	assert_int_equal(mcp_server_new(&s, &o), 0);
	return s;
}

static mcp_identity who(void)
{
	mcp_identity w;

	memset(&w, 0, sizeof(w));
	snprintf(w.name, sizeof(w.name), "ada");
	snprintf(w.op, sizeof(w.op), "ada");
	snprintf(w.via, sizeof(w.via), "stdio");
	return w;
}

/* The answer to `msg` as JSON (NULL when none). */
static json_t *ask(mcp_session *ss, const char *msg)
{
	char *out = NULL;
	json_t *j;

	assert_int_equal(mcp_session_handle(ss, msg, strlen(msg), &out), 0);
	if (!out)
		return NULL;
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	free(out);
	return j;
}

static const char *version_of(json_t *answer)
{
	return json_string_value(json_object_get(json_object_get(answer, "result"),
						 "protocolVersion"));
}

static long long error_of(json_t *answer)
{
	return (long long)json_integer_value(json_object_get(json_object_get(answer, "error"),
							     "code"));
}

#define INIT(v)                                                                                 \
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":" \
	"\"" v "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}"

static void test_negotiation(void **state)
{
	const char *const asked[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
				     "2099-01-01", "1.0"};
	const char *const agreed[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
				      "2025-11-25", "2025-11-25"};
	mcp_server *s = server(0);
	mcp_identity w = who();
	(void)state;

	for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
		mcp_session *ss = NULL;
		char msg[512];
		json_t *a;
		snprintf(msg, sizeof(msg),
			 "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"initialize\",\"params\":"
			 "{\"protocolVersion\":\"%s\",\"capabilities\":{}}}", asked[i]);
		assert_int_equal(mcp_session_new(&ss, s, &w, NULL, NULL), 0);
		a = ask(ss, msg);
		assert_string_equal(version_of(a), agreed[i]);
		assert_string_equal(mcp_session_version(ss), agreed[i]);
		assert_string_equal(json_string_value(json_object_get(a, "id")), "x");
		json_decref(a);
		/* a second initialize on the session is refused */
		a = ask(ss, INIT("2025-11-25"));
		assert_int_equal(error_of(a), -32600);
		json_decref(a);
		mcp_session_free(ss);
	}
	mcp_server_free(s);
}

static void test_lifecycle_and_errors(void **state)
{
	mcp_server *s = server(0);
	mcp_identity w = who();
	mcp_session *ss = NULL;
	json_t *a;
	(void)state;

	assert_int_equal(mcp_session_new(&ss, s, &w, NULL, NULL), 0);
	/* before initialize: only ping */
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	assert_int_equal(error_of(a), -32600);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(a, "error"),
								   "message")), "initialize"));
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
	assert_true(json_is_object(json_object_get(a, "result")));
	json_decref(a);
	/* initialize without a version */
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{}}");
	assert_int_equal(error_of(a), -32602);
	json_decref(a);
	json_decref(ask(ss, INIT("2025-11-25")));
	assert_false(mcp_session_ready(ss));
	assert_null(ask(ss, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
	assert_true(mcp_session_ready(ss));
	/* not JSON, not JSON-RPC, an id of the wrong type, an unknown method */
	a = ask(ss, "{\"jsonrpc\":");
	assert_int_equal(error_of(a), -32700);
	assert_true(json_is_null(json_object_get(a, "id")));
	json_decref(a);
	a = ask(ss, "{\"id\":4,\"method\":\"ping\"}");
	assert_int_equal(error_of(a), -32600);
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}");
	assert_int_equal(error_of(a), -32600);
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/list\"}");
	assert_int_equal(error_of(a), -32601);
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\",\"params\":[1]}");
	assert_int_equal(error_of(a), -32602);
	json_decref(a);
	/* a response to a request of ours, a notification: no answer */
	assert_null(ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}"));
	assert_null(ask(ss, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
			    "\"params\":{\"requestId\":1}}"));
	/* a batch: the requests' answers, in order; an empty one is an error */
	a = ask(ss, "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\","
		    "\"method\":\"notifications/initialized\"},{\"jsonrpc\":\"2.0\",\"id\":8,"
		    "\"method\":\"nope\"}]");
	assert_int_equal(json_array_size(a), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "id")), 7);
	assert_int_equal(error_of(json_array_get(a, 1)), -32601);
	json_decref(a);
	a = ask(ss, "[]");
	assert_int_equal(error_of(json_array_get(a, 0)), -32600);
	json_decref(a);
	/* logging levels */
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"logging/setLevel\",\"params\":"
		    "{\"level\":\"warning\"}}");
	assert_true(json_is_object(json_object_get(a, "result")));
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"logging/setLevel\",\"params\":"
		    "{\"level\":\"loud\"}}");
	assert_int_equal(error_of(a), -32602);
	json_decref(a);
	/* an unknown tool; arguments that do not match (a tool error, before the
	 * tool runs: no database is touched) */
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":"
		    "{\"name\":\"rm_rf\",\"arguments\":{}}}");
	assert_int_equal(error_of(a), -32602);
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"tools/call\",\"params\":"
		    "{\"name\":\"answer_question\",\"arguments\":{\"question\":\"seven\"}}}");
	assert_true(json_is_true(json_object_get(json_object_get(a, "result"), "isError")));
	{
		char *text = json_dumps(a, 0);
		assert_non_null(strstr(text, "Invalid arguments for answer_question"));
		free(text);
	}
	json_decref(a);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"resources/read\",\"params\":"
		    "{\"uri\":\"file:///etc/passwd\"}}");
	assert_int_equal(error_of(a), -32002);
	json_decref(a);
	mcp_session_free(ss);
	mcp_server_free(s);
}

static void test_tools_pages(void **state)
{
	mcp_server *s = server(4);
	mcp_identity w = who();
	mcp_session *ss = NULL;
	json_t *a;
	char msg[256];
	char *cursor = NULL;
	size_t total = 0;
	int pages = 0;
	(void)state;

	assert_int_equal(mcp_session_new(&ss, s, &w, NULL, NULL), 0);
	json_decref(ask(ss, INIT("2025-11-25")));
	do {
		json_t *tools;
		size_t i;
		json_t *t;
		if (cursor)
			snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
						   "\"params\":{\"cursor\":\"%s\"}}", cursor);
		else
			snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
		a = ask(ss, msg);
		tools = json_object_get(json_object_get(a, "result"), "tools");
		assert_true(json_array_size(tools) >= 1 && json_array_size(tools) <= 4);
		json_array_foreach(tools, i, t) {
			/* every schema is an object schema; names fit the SDK's rule */
			assert_string_equal(json_string_value(json_object_get(
						    json_object_get(t, "inputSchema"), "type")), "object");
			assert_string_equal(json_string_value(json_object_get(
						    json_object_get(t, "outputSchema"), "type")), "object");
			assert_true(strspn(json_string_value(json_object_get(t, "name")),
					   "abcdefghijklmnopqrstuvwxyz_") ==
				    strlen(json_string_value(json_object_get(t, "name"))));
		}
		total += json_array_size(tools);
		pages++;
		{
			const char *next = json_string_value(json_object_get(json_object_get(a, "result"),
									      "nextCursor"));
			free(cursor);
			cursor = next ? strdup(next) : NULL;
		}
		json_decref(a);
	} while (cursor && pages < 10);
	assert_int_equal(total, 9);
	assert_int_equal(pages, 3);
	a = ask(ss, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":"
		    "{\"cursor\":\"o:-1\"}}");
	assert_int_equal(error_of(a), -32602);
	json_decref(a);
	mcp_session_free(ss);
	mcp_server_free(s);
}

/* --- the HTTP transport --- */

typedef struct fake_stream {
	char data[4096];
	int ended;
} fake_stream;

static int fs_write(const char *d, size_t n, void *st)
{
	fake_stream *f = st;
	size_t have = strlen(f->data);

	if (f->ended)
		return -1;
	snprintf(f->data + have, sizeof(f->data) - have, "%.*s", (int)n, d);
	return 0;
}

static void fs_end(void *st)
{
	((fake_stream *)st)->ended = 1;
}

static mcp_http_resp req(mcp_http *h, const char *method, const char *session, const char *body,
			 int64_t token)
{
	mcp_identity w = who();
	mcp_http_req rq;
	mcp_http_resp out;

	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.session = session;
	rq.host = "127.0.0.1:9464";
	rq.accept = strcmp(method, "GET") == 0 ? "text/event-stream"
					       : "application/json, text/event-stream";
	rq.body = body;
	rq.len = body ? strlen(body) : 0;
	rq.who = &w;
	rq.token = token;
	assert_int_equal(mcp_http_handle(h, &rq, &out), 0);
	return out;
}

static void test_http(void **state)
{
	mcp_server *s = server(0);
	mcp_http *h = NULL;
	mcp_http_resp r;
	mcp_http_req rq;
	mcp_identity w = who();
	fake_stream fs, fs2;
	char sid[40];
	(void)state;

	assert_int_equal(mcp_http_new(&h, s, "https://ide.example, vscode-webview://x"), 0);
	/* a request before initialize: no session */
	r = req(h, "POST", NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", 1);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "Mcp-Session-Id"));
	free(r.body);
	/* initialize refused for bad params: answered, no session kept */
	r = req(h, "POST", NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", 1);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.session, "");
	assert_int_equal(mcp_http_sessions(h), 0);
	free(r.body);
	r = req(h, "POST", NULL, INIT("2025-06-18"), 1);
	assert_int_equal(r.status, 200);
	assert_int_equal(strlen(r.session), 32);
	assert_string_equal(r.content_type, "application/json");
	snprintf(sid, sizeof(sid), "%s", r.session);
	free(r.body);
	assert_int_equal(mcp_http_sessions(h), 1);
	r = req(h, "POST", sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", 1);
	assert_int_equal(r.status, 202);
	assert_null(r.body);
	r = req(h, "POST", sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", 1);
	assert_int_equal(r.status, 200);
	free(r.body);
	/* another token, an unknown session */
	r = req(h, "POST", sid, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", 2);
	assert_int_equal(r.status, 404);
	free(r.body);
	r = req(h, "POST", "0123", "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", 1);
	assert_int_equal(r.status, 404);
	free(r.body);
	/* protocol versions, origins */
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.session = sid;
	rq.body = "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}";
	rq.len = strlen(rq.body);
	rq.who = &w;
	rq.token = 1;
	rq.host = "127.0.0.1:9464";
	rq.version = "2025-11-25"; /* speaks it, but the session agreed on 2025-06-18 */
	assert_int_equal(mcp_http_handle(h, &rq, &r), 0);
	assert_int_equal(r.status, 400);
	free(r.body);
	rq.version = "2031-01-01";
	assert_int_equal(mcp_http_handle(h, &rq, &r), 0);
	assert_int_equal(r.status, 400);
	free(r.body);
	rq.version = "2025-06-18";
	rq.origin = "http://evil.example";
	assert_int_equal(mcp_http_handle(h, &rq, &r), 0);
	assert_int_equal(r.status, 403);
	free(r.body);
	for (size_t i = 0; i < 3; i++) {
		const char *const fine[] = {"http://127.0.0.1:9464", "https://ide.example",
					    "vscode-webview://x"};
		rq.origin = fine[i];
		assert_int_equal(mcp_http_handle(h, &rq, &r), 0);
		assert_int_equal(r.status, 200);
		free(r.body);
	}
	rq.origin = "https://ide.example.evil";
	assert_int_equal(mcp_http_handle(h, &rq, &r), 0);
	assert_int_equal(r.status, 403);
	free(r.body);
	/* the event stream: one per session, the new one wins */
	r = req(h, "GET", sid, NULL, 1);
	assert_int_equal(r.status, 200);
	assert_true(r.open_stream);
	memset(&fs, 0, sizeof(fs));
	memset(&fs2, 0, sizeof(fs2));
	assert_int_equal(mcp_http_attach(h, sid, 1, fs_write, fs_end, &fs), 0);
	assert_int_equal(mcp_http_attach(h, sid, 1, fs_write, fs_end, &fs2), 0);
	assert_true(fs.ended);
	assert_false(fs2.ended);
	assert_int_equal(mcp_http_attach(h, sid, 2, fs_write, fs_end, &fs), ERR_NOTFOUND);
	r = req(h, "PUT", sid, NULL, 1);
	assert_int_equal(r.status, 405);
	free(r.body);
	/* DELETE ends the session and its stream */
	r = req(h, "DELETE", sid, NULL, 1);
	assert_int_equal(r.status, 200);
	assert_true(fs2.ended);
	assert_int_equal(mcp_http_sessions(h), 0);
	r = req(h, "POST", sid, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}", 1);
	assert_int_equal(r.status, 404);
	free(r.body);
	/* stopping ends the streams of the sessions left */
	r = req(h, "POST", NULL, INIT("2025-11-25"), 1);
	snprintf(sid, sizeof(sid), "%s", r.session);
	free(r.body);
	memset(&fs, 0, sizeof(fs));
	assert_int_equal(mcp_http_attach(h, sid, 1, fs_write, fs_end, &fs), 0);
	mcp_http_stop(h);
	assert_true(fs.ended);
	mcp_http_free(h);
	mcp_server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiation),
		cmocka_unit_test(test_lifecycle_and_errors),
		cmocka_unit_test(test_tools_pages),
		cmocka_unit_test(test_http),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
