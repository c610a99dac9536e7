/* mcp — the protocol: lifecycle, tools, logging, the watcher. See mcp.h. */
#include "mcp/mcp_int.h"

#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/redact.h"
#include "engine/control.h"
#include "llm/schema.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const VERSIONS[] = {MCP_LATEST_VERSION, "2025-06-18", "2025-03-26",
				       "2024-11-05", NULL};

/* RFC 5424 severities, as logging/setLevel names them */
static const char *const LEVELS[] = {"debug",    "info",  "notice", "warning", "error",
				     "critical", "alert", "emergency", NULL};
#define LEVEL_NOTICE 2

static const char INSTRUCTIONS[] =
	"orchestrator is a software factory: an idea becomes a spec, a plan of tasks and merged, "
	"tested code in a git repository, built by sandboxed workers. Start with create_project "
	"(or list_projects), follow a project with project_status (its 'next' says what to do), "
	"answer the questions it asks (the spec, the plan, a stuck task) with answer_question, "
	"reply to its conversation with send_message, read its history with show_project and a "
	"worker's steps with worker_logs; usage tells tokens and cost. Long lists come in pages: "
	"pass 'next_cursor' back as 'cursor'.";

int mcp_version_supported(const char *v)
{
	for (size_t i = 0; v && VERSIONS[i]; i++)
		if (strcmp(v, VERSIONS[i]) == 0)
			return 1;
	return 0;
}

/* --- small helpers --- */

void mcp_cursor_make(int64_t offset, char *out, size_t cap)
{
	snprintf(out, cap, "o:%lld", (long long)offset);
}

int mcp_cursor_parse(const char *cursor, int64_t *out)
{
	int64_t v = 0;

	*out = 0;
	if (!cursor)
		return 0;
	if (strncmp(cursor, "o:", 2) != 0 || cfg_parse_int(cursor + 2, &v) < 0 || v < 0 ||
	    v > 100000000)
		return err_set(ERR_INVALID, "the cursor '%.60s' was not given by this server: pass "
					    "the next_cursor (nextCursor) of the previous page, or none "
					    "for the first page", cursor);
	*out = v;
	return 0;
}

json_t *mcp_text_cut(const char *s, size_t max)
{
	size_t len = strlen(s), chars = 0, i = 0;
	char *t;
	json_t *j;

	while (i < len && chars < max) {
		i++;
		while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
			i++;
		chars++;
	}
	if (i >= len)
		return json_string(s);
	t = malloc(i + 64);
	if (!t)
		return NULL;
	memcpy(t, s, i);
	snprintf(t + i, 64, " … [%zu bytes more]", len - i);
	j = json_string(t);
	free(t);
	return j;
}

char *mcp_error_message(const json_t *id, int code, const char *message)
{
	json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
			      id ? id : json_null(), "error", "code", code, "message", message);
	char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;

	json_decref(m);
	return s;
}

static json_t *error_obj(const json_t *id, int code, const char *message)
{
	char *r = redact_str(message);
	json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
			      id ? id : json_null(), "error", "code", code, "message",
			      r ? r : message);

	free(r);
	return m;
}

/* The answer to request `id`: `result` (taken) as it passes the secrets
 * filter. */
static json_t *result_obj(const json_t *id, json_t *result)
{
	json_t *clean = redact_json(result);

	json_decref(result);
	return clean ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", clean)
		     : NULL;
}

/* The JSON-RPC code for a failure of a resource or list function. */
static int rpc_code(int rc)
{
	if (rc == ERR_NOTFOUND)
		return MCP_RESOURCE_NOT_FOUND;
	if (rc == ERR_INVALID)
		return MCP_INVALID_PARAMS;
	return MCP_INTERNAL_ERROR;
}

/* --- the server --- */

static void *watcher_main(void *arg);

static int build_tools(mcp_server *s)
{
	json_error_t je;

	s->tools = mcp_tools(&s->ntools);
	s->in_schema = calloc(s->ntools, sizeof(json_t *));
	s->out_schema = calloc(s->ntools, sizeof(json_t *));
	s->tool_list = json_array();
	if (!s->in_schema || !s->out_schema || !s->tool_list)
		return err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < s->ntools; i++) {
		const mcp_tool *t = &s->tools[i];
		json_t *entry;

		s->in_schema[i] = json_loads(t->input, 0, &je);
		s->out_schema[i] = s->in_schema[i] ? json_loads(t->output, 0, &je) : NULL;
		if (!s->in_schema[i] || !s->out_schema[i])
			return err_set(ERR_INTERNAL, "tool %s: its schema is not JSON: %s (line %d)",
				       t->name, je.text, je.line);
		entry = json_pack("{s:s, s:s, s:s, s:O, s:O, s:{s:s, s:b, s:b, s:b, s:b}}", "name",
				  t->name, "title", t->title, "description", t->description,
				  "inputSchema", s->in_schema[i], "outputSchema", s->out_schema[i],
				  "annotations", "title", t->title, "readOnlyHint", t->read_only,
				  "destructiveHint", t->destructive, "idempotentHint", t->idempotent,
				  "openWorldHint", 0);
		if (!entry || json_array_append_new(s->tool_list, entry) < 0)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}

int mcp_server_new(mcp_server **out, const mcp_opts *o)
{
	mcp_server *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->pool = o->pool;
	s->be = *o->be;
	s->poll_ms = o->poll_ms > 0 ? o->poll_ms : 1000;
	s->page_size = o->page_size > 0 ? o->page_size : 50;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	rc = build_tools(s);
	if (rc == 0 && pthread_create(&s->watcher, NULL, watcher_main, s) != 0)
		rc = err_set(ERR_IO, "cannot start the MCP server's watcher thread");
	if (rc < 0) {
		mcp_server_free(s);
		return rc;
	}
	s->started = 1;
	*out = s;
	return 0;
}

void mcp_server_free(mcp_server *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->watcher, NULL);
	}
	for (size_t i = 0; i < s->ntools; i++) {
		if (s->in_schema)
			json_decref(s->in_schema[i]);
		if (s->out_schema)
			json_decref(s->out_schema[i]);
	}
	free(s->in_schema);
	free(s->out_schema);
	json_decref(s->tool_list);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int mcp_session_new(mcp_session **out, mcp_server *s, const mcp_identity *who,
		    mcp_send_fn send, void *udata)
{
	mcp_session *ss = calloc(1, sizeof(*ss));

	*out = NULL;
	if (!ss)
		return err_set(ERR_NOMEM, "out of memory");
	ss->s = s;
	ss->who = *who;
	ss->send = send;
	ss->udata = udata;
	ss->log_level = 0;
	pthread_mutex_lock(&s->mu);
	ss->next = s->sessions;
	s->sessions = ss;
	pthread_mutex_unlock(&s->mu);
	*out = ss;
	return 0;
}

void mcp_session_free(mcp_session *ss)
{
	mcp_server *s;

	if (!ss)
		return;
	s = ss->s;
	pthread_mutex_lock(&s->mu);
	for (mcp_session **p = &s->sessions; *p; p = &(*p)->next)
		if (*p == ss) {
			*p = ss->next;
			break;
		}
	for (int i = 0; i < ss->nwatch; i++)
		free(ss->watch[i].digest);
	pthread_mutex_unlock(&s->mu);
	free(ss);
}

const char *mcp_session_version(const mcp_session *ss)
{
	return ss->version;
}

int mcp_session_ready(const mcp_session *ss)
{
	return ss->ready;
}

/* --- watching projects --- */

void mcp_watch_add(mcp_session *ss, int64_t thread, const char *key, int sub)
{
	mcp_watch *w = NULL;

	pthread_mutex_lock(&ss->s->mu);
	for (int i = 0; i < ss->nwatch; i++)
		if (ss->watch[i].thread == thread)
			w = &ss->watch[i];
	if (!w && ss->nwatch < MCP_MAX_WATCH) {
		w = &ss->watch[ss->nwatch++];
		memset(w, 0, sizeof(*w));
		w->thread = thread;
		snprintf(w->key, sizeof(w->key), "%s", key);
	}
	if (w && sub == 1)
		w->sub_report = 1;
	if (w && sub == 2)
		w->sub_spec = 1;
	pthread_mutex_unlock(&ss->s->mu);
}

void mcp_watch_unsub(mcp_session *ss, int64_t thread, int sub)
{
	pthread_mutex_lock(&ss->s->mu);
	for (int i = 0; i < ss->nwatch; i++)
		if (ss->watch[i].thread == thread) {
			if (sub == 1)
				ss->watch[i].sub_report = 0;
			if (sub == 2)
				ss->watch[i].sub_spec = 0;
		}
	pthread_mutex_unlock(&ss->s->mu);
}

/* What a watched project looks like: the facts whose change is told. */
typedef struct look {
	int64_t thread;
	char *digest;
	json_t *report;
} look;

static char *digest_of(const json_t *r)
{
	json_t *d = json_pack("{s:s, s:s, s:O, s:O, s:O}", "stage", jx_str(r, "stage"), "run",
			      jx_str(r, "run"), "open", json_object_get(r, "open") ?
			      json_object_get(r, "open") : json_null(),
			      "merged", json_object_get(json_object_get(r, "tasks"), "merged") ?
			      json_object_get(json_object_get(r, "tasks"), "merged") : json_null(),
			      "waiting", json_object_get(r, "waiting_for_answer") ?
			      json_object_get(r, "waiting_for_answer") : json_false());
	char *s = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(d);
	return s;
}

static void send_json(mcp_session *ss, json_t *msg)
{
	json_t *clean = redact_json(msg);
	char *text = clean ? json_dumps(clean, JSON_COMPACT) : NULL;

	json_decref(clean);
	if (text && ss->send) {
		int failed = ss->send(text, strlen(text), ss->udata) < 0;
		if (failed && !ss->send_failed) /* said once: an HTTP session may have no stream */
			log_debug("mcp", "a notification for %s could not be sent (no stream open, or "
					 "the client went)", ss->who.name);
		ss->send_failed = failed;
	}
	free(text);
	json_decref(msg);
}

void mcp_notify(mcp_session *ss, const char *method, json_t *params)
{
	json_t *m;

	if (!ss->send || !ss->ready) {
		json_decref(params);
		return;
	}
	m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	if (m && params)
		json_object_set_new(m, "params", params);
	else
		json_decref(params);
	if (m)
		send_json(ss, m);
}

/* Tells session `ss` what changed in project `w` (now `r`). Under s->mu. */
static void tell(mcp_session *ss, mcp_watch *w, const json_t *r)
{
	const char *stage = jx_str(r, "stage");
	const json_t *open = json_object_get(r, "open");
	int stage_changed = strcmp(stage, w->stage) != 0;
	char uri[256], text[1024];
	json_t *data;

	if (stage_changed && *w->stage)
		snprintf(text, sizeof(text), "project %s: stage %s -> %s", w->key, w->stage, stage);
	else if (stage_changed)
		snprintf(text, sizeof(text), "project %s: stage %s", w->key, stage);
	else
		snprintf(text, sizeof(text), "project %s: %s", w->key,
			 json_array_size(open) ? "a question waits for an answer" : "progress");
	if (json_array_size(open) > 0)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "; it waits for an answer: \"%.300s\" (answer_question with project %s)",
			 jx_str(json_array_get(open, 0), "question"), w->key);
	data = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "project", w->key, "stage", stage,
			 "previous_stage", w->stage, "run", jx_str(r, "run"), "open_questions",
			 open ? open : json_null(), "text", text);
	if (ss->log_level <= LEVEL_NOTICE && data)
		send_json(ss, json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "jsonrpc", "2.0", "method",
					"notifications/message", "params", "level", "notice",
					"logger", "orchestrator", "data", data));
	else
		json_decref(data);
	if (w->sub_report) {
		mcp_uri(w->key, "report", uri, sizeof(uri));
		send_json(ss, json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "method",
					"notifications/resources/updated", "params", "uri", uri));
	}
	if (w->sub_spec && stage_changed) {
		mcp_uri(w->key, "spec", uri, sizeof(uri));
		send_json(ss, json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "method",
					"notifications/resources/updated", "params", "uri", uri));
	}
	snprintf(w->stage, sizeof(w->stage), "%s", stage);
}

/* Looks at the projects in `looks` (thread ids filled) on one connection. */
static void look_all(mcp_server *s, look *looks, int n)
{
	pg_conn *c = NULL;

	if (pg_pool_acquire(s->pool, 5000, &c) < 0) {
		log_debug("mcp", "watcher: %s", err_last());
		return;
	}
	for (int i = 0; i < n; i++) {
		if (s->be.report(c, looks[i].thread, &looks[i].report, s->be.udata) < 0) {
			log_debug("mcp", "watcher: project %lld: %s", (long long)looks[i].thread,
				  err_last());
			continue;
		}
		looks[i].digest = digest_of(looks[i].report);
	}
	pg_pool_release(s->pool, c);
}

static void deliver(mcp_server *s, look *looks, int n)
{
	for (mcp_session *ss = s->sessions; ss; ss = ss->next)
		for (int i = 0; i < ss->nwatch; i++) {
			mcp_watch *w = &ss->watch[i];
			for (int k = 0; k < n; k++) {
				if (looks[k].thread != w->thread || !looks[k].digest)
					continue;
				if (w->digest && strcmp(w->digest, looks[k].digest) != 0 && ss->ready) {
					tell(ss, w, looks[k].report);
				} else if (!w->digest) {
					/* the first look: a question that waits already is told */
					snprintf(w->stage, sizeof(w->stage), "%s",
						 jx_str(looks[k].report, "stage"));
					if (ss->ready &&
					    json_array_size(json_object_get(looks[k].report, "open")))
						tell(ss, w, looks[k].report);
				}
				if (!w->digest || strcmp(w->digest, looks[k].digest) != 0) {
					free(w->digest);
					w->digest = strdup(looks[k].digest);
				}
			}
		}
}

static void *watcher_main(void *arg)
{
	mcp_server *s = arg;
	look looks[256];

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		struct timespec ts;
		int n = 0;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->poll_ms / 1000;
		ts.tv_nsec += (long)(s->poll_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stop)
			break;
		for (mcp_session *ss = s->sessions; ss; ss = ss->next)
			for (int i = 0; i < ss->nwatch && n < 256; i++) {
				int seen = 0;
				for (int k = 0; k < n && !seen; k++)
					seen = looks[k].thread == ss->watch[i].thread;
				if (!seen) {
					memset(&looks[n], 0, sizeof(looks[n]));
					looks[n++].thread = ss->watch[i].thread;
				}
			}
		if (n == 0)
			continue;
		pthread_mutex_unlock(&s->mu);
		look_all(s, looks, n);
		pthread_mutex_lock(&s->mu);
		deliver(s, looks, n);
		for (int k = 0; k < n; k++) {
			free(looks[k].digest);
			json_decref(looks[k].report);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* --- requests --- */

int mcp_project_find(pg_conn *c, const char *project, int64_t *out)
{
	if (eng_thread_find(c, project, out) < 0 || *out <= 0)
		return err_set(ERR_NOTFOUND, "there is no project '%.100s': name one by its key "
					     "(term:ada:2, tg:42:1) or thread id, as list_projects "
					     "shows them", project);
	return 0;
}

static json_t *initialize(mcp_session *ss, const json_t *params, int *code)
{
	const char *want = jx_str(params, "protocolVersion");
	const char *client = jx_str(json_object_get(params, "clientInfo"), "name");

	if (ss->answered_initialize) {
		*code = MCP_INVALID_REQUEST;
		err_set(ERR_INVALID, "this session is initialized already (with %s): start a new "
				     "session to initialize again", ss->version);
		return NULL;
	}
	if (!json_is_object(params) || !*want) {
		*code = MCP_INVALID_PARAMS;
		err_set(ERR_INVALID, "initialize needs params.protocolVersion (this server speaks "
				     "%s, 2025-06-18, 2025-03-26 and 2024-11-05)", MCP_LATEST_VERSION);
		return NULL;
	}
	snprintf(ss->version, sizeof(ss->version), "%s",
		 mcp_version_supported(want) ? want : MCP_LATEST_VERSION);
	ss->answered_initialize = 1;
	log_info("mcp", "session of %s (%s) initialized: client %s, protocol %s (asked %s)",
		 ss->who.name, ss->who.via, *client ? client : "?", ss->version, want);
	return json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}, s:{}}, s:{s:s, s:s, s:s}, s:s}",
			 "protocolVersion", ss->version, "capabilities", "tools", "listChanged", 0,
			 "resources", "subscribe", 1, "listChanged", 1, "logging", "serverInfo",
			 "name", "orchestrator", "title", "orchestrator software factory",
			 "version", "0.1.0", "instructions", INSTRUCTIONS);
}

static json_t *tools_list(mcp_session *ss, const json_t *params, int *code)
{
	mcp_server *s = ss->s;
	int64_t off = 0;
	json_t *page, *r;
	char next[32];

	if (mcp_cursor_parse(json_string_value(json_object_get(params, "cursor")), &off) < 0) {
		*code = MCP_INVALID_PARAMS;
		return NULL;
	}
	page = json_array();
	for (size_t i = (size_t)off; page && i < s->ntools && i < (size_t)off + (size_t)s->page_size;
	     i++)
		json_array_append(page, json_array_get(s->tool_list, i));
	r = json_pack("{s:o}", "tools", page);
	if (r && (size_t)off + (size_t)s->page_size < s->ntools) {
		mcp_cursor_make(off + s->page_size, next, sizeof(next));
		json_object_set_new(r, "nextCursor", json_string(next));
	}
	return r;
}

/* A tool result: the structured value and the same as text, or an error. */
static json_t *tool_result(json_t *structured, const char *error)
{
	json_t *r;
	char *text;

	if (error)
		return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", error,
				 "isError", 1);
	text = json_dumps(structured, JSON_COMPACT);
	r = text ? json_pack("{s:[{s:s, s:s}], s:O, s:b}", "content", "type", "text", "text",
			     text, "structuredContent", structured, "isError", 0)
		 : NULL;
	free(text);
	return r;
}

/* "{project: string (required), cursor: string}" from an input schema, for
 * the message that refuses malformed arguments. */
static void signature(const json_t *schema, char *out, size_t cap)
{
	const json_t *props = json_object_get(schema, "properties");
	const json_t *req = json_object_get(schema, "required");
	const char *k;
	json_t *p;
	size_t used = 0;

	out[0] = 0;
	used += (size_t)snprintf(out, cap, "{");
	json_object_foreach((json_t *)props, k, p) {
		int required = 0;
		size_t i;
		json_t *x;
		json_array_foreach(req, i, x)
			required |= strcmp(json_string_value(x), k) == 0;
		if (used < cap)
			used += (size_t)snprintf(out + used, cap - used, "%s\"%s\": %s%s",
						 used > 1 ? ", " : "", k,
						 jx_str(p, "type")[0] ? jx_str(p, "type") : "value",
						 required ? " (required)" : "");
	}
	if (used < cap)
		snprintf(out + used, cap - used, "}");
}

static json_t *tools_call(mcp_session *ss, const json_t *params, int *code)
{
	mcp_server *s = ss->s;
	const char *name = jx_str(params, "name");
	const json_t *args = json_object_get(params, "arguments");
	json_t *empty = NULL, *out = NULL, *r;
	char msg[1024], sig[512];
	mcp_call call;
	size_t i;
	int rc;

	for (i = 0; i < s->ntools; i++)
		if (strcmp(s->tools[i].name, name) == 0)
			break;
	if (i == s->ntools) {
		*code = MCP_INVALID_PARAMS;
		err_set(ERR_INVALID, "Unknown tool: '%.80s' (tools/list names the tools)", name);
		return NULL;
	}
	if (!args || json_is_null(args))
		args = empty = json_object();
	signature(s->in_schema[i], sig, sizeof(sig));
	if (!json_is_object(args) ||
	    llm_schema_check(s->in_schema[i], args, msg, sizeof(msg)) < 0) {
		char text[1600];
		snprintf(text, sizeof(text), "Invalid arguments for %s: %s. It takes %s; see its "
					     "inputSchema in tools/list.", name,
			 json_is_object(args) ? msg : "the arguments must be a JSON object", sig);
		json_decref(empty);
		return tool_result(NULL, text);
	}
	memset(&call, 0, sizeof(call));
	call.ss = ss;
	call.args = args;
	call.who = &ss->who;
	call.be = &s->be;
	call.page_size = s->page_size;
	rc = pg_pool_acquire(s->pool, 10000, &call.c);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "the factory's database cannot be reached now (%s): try "
					   "again in a moment", err_last());
		json_decref(empty);
		return tool_result(NULL, msg);
	}
	err_clear();
	rc = s->tools[i].fn(&call, &out);
	pg_pool_release(s->pool, call.c);
	json_decref(empty);
	if (rc < 0) {
		json_decref(out);
		snprintf(msg, sizeof(msg), "%s", err_last()[0] ? err_last() : "the call failed");
		log_info("mcp", "%s (%s) %s: refused: %s", ss->who.name, ss->who.via, name, msg);
		return tool_result(NULL, msg);
	}
	if (llm_schema_check(s->out_schema[i], out, msg, sizeof(msg)) < 0)
		log_warn("mcp", "tool %s: its result does not match its output schema: %s", name,
			 msg);
	log_info("mcp", "%s (%s) called %s", ss->who.name, ss->who.via, name);
	r = tool_result(out, NULL);
	json_decref(out);
	return r;
}

static json_t *set_level(mcp_session *ss, const json_t *params, int *code)
{
	const char *lv = jx_str(params, "level");

	for (int i = 0; LEVELS[i]; i++)
		if (strcmp(LEVELS[i], lv) == 0) {
			ss->log_level = i;
			return json_object();
		}
	*code = MCP_INVALID_PARAMS;
	err_set(ERR_INVALID, "unknown level '%.40s' (debug, info, notice, warning, error, "
			     "critical, alert, emergency)", lv);
	return NULL;
}

/* A resource method through its function. */
static json_t *resource(mcp_session *ss, const json_t *params, int *code,
			int (*fn)(mcp_session *, const json_t *, json_t **))
{
	json_t *r = NULL;
	int rc = fn(ss, params, &r);

	if (rc < 0) {
		*code = rpc_code(rc);
		return NULL;
	}
	return r;
}

static int res_subscribe(mcp_session *ss, const json_t *p, json_t **r)
{
	return mcp_res_subscribe(ss, p, 1, r);
}

static int res_unsubscribe(mcp_session *ss, const json_t *p, json_t **r)
{
	return mcp_res_subscribe(ss, p, 0, r);
}

/* The result of request `method` (NULL with *code and err_last() on error). */
static json_t *request(mcp_session *ss, const char *method, const json_t *params, int *code)
{
	*code = 0;
	if (strcmp(method, "initialize") == 0)
		return initialize(ss, params, code);
	if (strcmp(method, "ping") == 0)
		return json_object();
	if (!ss->answered_initialize) {
		*code = MCP_INVALID_REQUEST;
		err_set(ERR_INVALID, "the session is not initialized: send initialize first");
		return NULL;
	}
	if (params && !json_is_object(params)) {
		*code = MCP_INVALID_PARAMS;
		err_set(ERR_INVALID, "params must be an object");
		return NULL;
	}
	if (strcmp(method, "tools/list") == 0)
		return tools_list(ss, params, code);
	if (strcmp(method, "tools/call") == 0)
		return tools_call(ss, params, code);
	if (strcmp(method, "resources/list") == 0)
		return resource(ss, params, code, mcp_res_list);
	if (strcmp(method, "resources/templates/list") == 0)
		return resource(ss, params, code, mcp_res_templates);
	if (strcmp(method, "resources/read") == 0)
		return resource(ss, params, code, mcp_res_read);
	if (strcmp(method, "resources/subscribe") == 0)
		return resource(ss, params, code, res_subscribe);
	if (strcmp(method, "resources/unsubscribe") == 0)
		return resource(ss, params, code, res_unsubscribe);
	if (strcmp(method, "logging/setLevel") == 0)
		return set_level(ss, params, code);
	*code = MCP_METHOD_NOT_FOUND;
	err_set(ERR_NOTFOUND, "Method not found: %.80s", method);
	return NULL;
}

/* One message: its answer (NULL when none is due). */
static json_t *handle_one(mcp_session *ss, const json_t *m)
{
	const json_t *id = json_object_get(m, "id");
	const char *method = json_string_value(json_object_get(m, "method"));
	const json_t *params = json_object_get(m, "params");
	json_t *result;
	int code = 0;

	if (!json_is_object(m) || strcmp(jx_str(m, "jsonrpc"), "2.0") != 0)
		return error_obj(json_is_string(id) || json_is_integer(id) ? id : NULL,
				 MCP_INVALID_REQUEST, "not a JSON-RPC 2.0 message (\"jsonrpc\": "
						      "\"2.0\" and a method)");
	if (!method) /* a response to a request of ours: we send none */
		return NULL;
	if (!id) { /* a notification */
		if (strcmp(method, "notifications/initialized") == 0)
			ss->ready = ss->answered_initialize;
		return NULL;
	}
	if (!json_is_string(id) && !json_is_integer(id))
		return error_obj(NULL, MCP_INVALID_REQUEST, "a request's id is a string or an integer");
	result = request(ss, method, params, &code);
	if (!result)
		return error_obj(id, code ? code : MCP_INTERNAL_ERROR,
				 err_last()[0] ? err_last() : "out of memory");
	return result_obj(id, result);
}

int mcp_session_handle(mcp_session *ss, const char *msg, size_t len, char **out)
{
	json_error_t je;
	json_t *m = jx_loadb_lenient(msg, len, 0, &je, NULL), *answer = NULL;

	*out = NULL;
	if (!m) {
		char text[300];
		snprintf(text, sizeof(text), "Parse error: the message is not JSON (%s)", je.text);
		*out = mcp_error_message(NULL, MCP_PARSE_ERROR, text);
		return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	if (json_is_array(m)) {
		size_t i;
		json_t *x;
		answer = json_array();
		json_array_foreach(m, i, x) {
			json_t *a = handle_one(ss, x);
			if (a && answer)
				json_array_append_new(answer, a);
			else
				json_decref(a);
		}
		if (json_array_size(m) == 0)
			json_array_append_new(answer, error_obj(NULL, MCP_INVALID_REQUEST,
								"an empty batch"));
		if (answer && json_array_size(answer) == 0) {
			json_decref(answer);
			answer = NULL;
		}
	} else {
		answer = handle_one(ss, m);
	}
	json_decref(m);
	if (answer) {
		*out = json_dumps(answer, JSON_COMPACT);
		json_decref(answer);
		if (!*out)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}
