/* mcp tools — the factory's tools: the table (name, description, input and
 * output schemas, handler) and the handlers. See mcp.h. */
#include "mcp/mcp_int.h"

#include "core/err.h"
#include "core/jsonx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- schemas --- */

#define S_PROJECT                                                                               \
	"\"project\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200, "            \
	"\"description\": \"the project's key (term:ada:2, tg:42:1) or thread id, as "          \
	"create_project and list_projects give it\"}"
#define S_CURSOR                                                                                \
	"\"cursor\": {\"type\": \"string\", \"maxLength\": 64, \"description\": \"the "         \
	"next_cursor of the previous page; none for the first page\"}"
#define S_NEXT_CURSOR                                                                           \
	"\"next_cursor\": {\"type\": \"string\", \"description\": \"pass it as cursor for the "  \
	"next page; absent on the last page\"}"
#define S_QUESTIONS                                                                             \
	"\"open_questions\": {\"type\": \"array\", \"items\": {\"type\": \"object\", "           \
	"\"properties\": {\"id\": {\"type\": [\"integer\", \"null\"]}, \"question\": {\"type\": " \
	"\"string\"}, \"answers\": {\"type\": \"array\"}}}}"

static const char IN_CREATE[] =
	"{\"type\": \"object\", \"properties\": {\"idea\": {\"type\": \"string\", \"minLength\": 3, "
	"\"maxLength\": 8000, \"description\": \"what to build, in a sentence or a few "
	"paragraphs: the factory asks when it needs to know more; with repo, the change to make\"}, "
	"\"repo\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 1000, \"description\": "
	"\"to change an existing repository instead of starting a new one: a git URL (https:// "
	"or ssh://), or a local path when the server runs over stdio on your machine; it ends "
	"merged into the branch (pushed when you say so) or in a pull request\"}, \"branch\": "
	"{\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200, \"description\": \"the "
	"repository's branch (default: a local repository's current branch, a remote's "
	"main, else master)\"}, \"pr\": {\"type\": \"boolean\", \"description\": \"end in a "
	"pull request on the remote's forge\"}, \"handle\": {\"type\": \"string\", "
	"\"pattern\": \"^res_[A-Za-z0-9_-]{1,64}$\", \"description\": \"the git handle "
	"(orchestrator secrets) whose credentials reach the remote\"}}, \"required\": "
	"[\"idea\"], \"additionalProperties\": false}";
static const char OUT_CREATE[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"thread\": "
	"{\"type\": \"integer\"}, \"title\": {\"type\": \"string\"}, \"next\": {\"type\": "
	"\"string\"}}, \"required\": [\"project\", \"thread\", \"next\"]}";

static const char IN_LIST[] =
	"{\"type\": \"object\", \"properties\": {\"limit\": {\"type\": \"integer\", \"minimum\": 1, "
	"\"maximum\": 100, \"description\": \"projects per page (20)\"}, " S_CURSOR "}, "
	"\"additionalProperties\": false}";
static const char OUT_LIST[] =
	"{\"type\": \"object\", \"properties\": {\"projects\": {\"type\": \"array\", \"items\": "
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"title\": "
	"{\"type\": \"string\"}, \"stage\": {\"type\": \"string\"}, \"waiting_for_answer\": "
	"{\"type\": \"boolean\"}}, \"required\": [\"project\", \"stage\"]}}, \"total\": {\"type\": "
	"\"integer\"}, " S_NEXT_CURSOR "}, \"required\": [\"projects\", \"total\"]}";

static const char IN_PROJECT[] =
	"{\"type\": \"object\", \"properties\": {" S_PROJECT "}, \"required\": [\"project\"], "
	"\"additionalProperties\": false}";
static const char OUT_STATUS[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"stage\": "
	"{\"type\": \"string\"}, \"run\": {\"type\": \"string\"}, \"tasks\": {\"type\": "
	"\"object\"}, " S_QUESTIONS ", \"tokens_in\": {\"type\": \"integer\"}, \"tokens_out\": "
	"{\"type\": \"integer\"}, \"cost_usd\": {\"type\": \"number\"}, \"next\": {\"type\": "
	"\"string\"}}, \"required\": [\"project\", \"stage\", \"next\"]}";

static const char IN_SHOW[] =
	"{\"type\": \"object\", \"properties\": {" S_PROJECT ", " S_CURSOR ", \"full\": {\"type\": "
	"\"boolean\", \"description\": \"whole texts instead of their first 4000 characters\"}}, "
	"\"required\": [\"project\"], \"additionalProperties\": false}";
static const char OUT_SHOW[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"summary\": "
	"{\"type\": \"object\"}, \"conversation\": {\"type\": \"array\"}, \"events\": {\"type\": "
	"\"array\"}, \"questions\": {\"type\": \"array\"}, \"tasks\": {\"type\": \"object\"}, "
	"\"workers\": {\"type\": \"array\"}, \"costs\": {\"type\": \"object\"}, " S_NEXT_CURSOR "}, "
	"\"required\": [\"project\", \"summary\", \"conversation\", \"events\"]}";

static const char IN_ANSWER[] =
	"{\"type\": \"object\", \"properties\": {\"question\": {\"type\": \"integer\", \"minimum\": "
	"1, \"description\": \"the question's id (open_questions of project_status)\"}, "
	S_PROJECT ", \"answer\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 128, "
	"\"description\": \"approve, reject, or one of the question's answers by its id, label "
	"or number (1, 2, ...)\"}}, \"required\": [\"answer\"], \"additionalProperties\": false}";
static const char OUT_ANSWER[] =
	"{\"type\": \"object\", \"properties\": {\"question\": {\"type\": \"integer\"}, \"outcome\": "
	"{\"enum\": [\"decided\"]}, \"answer\": {\"type\": \"string\"}, \"label\": {\"type\": "
	"\"string\"}, \"decided_by\": {\"type\": \"string\"}}, \"required\": [\"question\", "
	"\"outcome\", \"answer\"]}";

static const char IN_MESSAGE[] =
	"{\"type\": \"object\", \"properties\": {" S_PROJECT ", \"text\": {\"type\": \"string\", "
	"\"minLength\": 1, \"maxLength\": 8000, \"description\": \"what you say, as typed in the "
	"project's chat\"}}, \"required\": [\"project\", \"text\"], \"additionalProperties\": "
	"false}";
static const char OUT_MESSAGE[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"how\": "
	"{\"enum\": [\"delivered\", \"queued\", \"started\"]}}, \"required\": [\"project\", "
	"\"how\"]}";

static const char IN_LOGS[] =
	"{\"type\": \"object\", \"properties\": {\"worker\": {\"type\": \"string\", \"pattern\": "
	"\"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$\", \"description\": \"the worker's id (workers of "
	"show_project)\"}, " S_CURSOR ", \"full\": {\"type\": \"boolean\", \"description\": "
	"\"whole commands and outputs instead of their first 4000 characters\"}}, \"required\": "
	"[\"worker\"], \"additionalProperties\": false}";
static const char OUT_LOGS[] =
	"{\"type\": \"object\", \"properties\": {\"worker\": {\"type\": \"object\"}, \"entries\": "
	"{\"type\": \"array\", \"items\": {\"type\": \"object\"}}, \"transcript\": {\"type\": "
	"\"string\"}, " S_NEXT_CURSOR "}, \"required\": [\"worker\", \"entries\"]}";

static const char OUT_CANCEL[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\"}, \"runs\": "
	"{\"type\": \"integer\"}, \"workers\": {\"type\": \"integer\"}}, \"required\": "
	"[\"project\", \"runs\", \"workers\"]}";

static const char IN_USAGE[] =
	"{\"type\": \"object\", \"properties\": {\"project\": {\"type\": \"string\", \"minLength\": "
	"1, \"maxLength\": 200, \"description\": \"one project's usage (its key or thread id); "
	"none: every project's\"}}, \"additionalProperties\": false}";
static const char OUT_USAGE[] =
	"{\"type\": \"object\", \"properties\": {\"calls\": {\"type\": \"integer\"}, \"tokens_in\": "
	"{\"type\": \"integer\"}, \"tokens_out\": {\"type\": \"integer\"}, \"cost_usd\": {\"type\": "
	"\"number\"}, \"by_role\": {\"type\": \"array\"}, \"by_model\": {\"type\": \"array\"}, "
	"\"budgets\": {\"type\": \"array\"}}, \"required\": [\"calls\", \"tokens_in\", "
	"\"tokens_out\", \"cost_usd\"]}";

/* --- helpers --- */

static const char *arg_str(const mcp_call *call, const char *k)
{
	return json_string_value(json_object_get(call->args, k));
}

static int arg_bool(const mcp_call *call, const char *k)
{
	return json_is_true(json_object_get(call->args, k));
}

/* The open questions of a report as the tools show them. */
static json_t *questions_of(const json_t *rep)
{
	json_t *out = json_array(), *q;
	size_t i;

	json_array_foreach(json_object_get(rep, "open"), i, q) {
		json_t *answers = json_array(), *o;
		size_t k;
		json_array_foreach(json_object_get(q, "options"), k, o) {
			if (json_is_object(o))
				json_array_append_new(answers,
						      json_pack("{s:s, s:s}", "id", jx_str(o, "id"),
								"label", jx_str(o, "label")));
			else if (json_is_string(o))
				json_array_append_new(answers,
						      json_pack("{s:s}", "label", json_string_value(o)));
		}
		json_array_append_new(out, json_pack("{s:O, s:s, s:o}", "id",
						     json_is_integer(json_object_get(q, "id")) ?
						     json_object_get(q, "id") : json_null(),
						     "question", jx_str(q, "question"),
						     "answers", answers));
	}
	return out;
}

/* What the client should do next about a project, from its report. */
static void next_step(const json_t *rep, const json_t *qs, const char *key, char *out,
		      size_t cap)
{
	const char *stage = jx_str(rep, "stage"), *run = jx_str(rep, "run");
	const json_t *q = json_array_get(qs, 0);

	if (q && json_is_integer(json_object_get(q, "id"))) {
		char list[400] = "";
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(q, "answers"), i, a)
			if (strlen(list) + 40 < sizeof(list))
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 i ? ", " : "", *jx_str(a, "id") ? jx_str(a, "id")
								: jx_str(a, "label"));
		snprintf(out, cap, "It waits for an answer to question %lld: call answer_question "
				   "with {\"question\": %lld, \"answer\": one of %s}; or send_message "
				   "to say what to change.", jx_int(q, "id"), jx_int(q, "id"), list);
	} else if (q) {
		snprintf(out, cap, "A question is being sent; call project_status again in a moment.");
	} else if (strcmp(stage, "done") == 0) {
		snprintf(out, cap, "Done: the code is merged on %s of %s.",
			 *jx_str(rep, "branch") ? jx_str(rep, "branch") : "main", jx_str(rep, "repo"));
	} else if (strcmp(stage, "cancelled") == 0 || strcmp(stage, "stopped") == 0) {
		snprintf(out, cap, "The project is %s; create_project starts another.", stage);
	} else if (json_is_true(json_object_get(rep, "waiting_for_answer"))) {
		snprintf(out, cap, "It waits for your reply in its conversation: read the last "
				   "message with show_project %s and answer with send_message.", key);
	} else if (strcmp(run, "failed") == 0) {
		snprintf(out, cap, "Its last run failed (show_project tells why); send_message tries "
				   "that stage again.");
	} else {
		snprintf(out, cap, "The factory works on it (stage %s); call project_status again "
				   "later, or subscribe to its report resource.", *stage ? stage : "new");
	}
}

/* --- the handlers --- */

/* create_project's change to an existing repository, as the project's
 * input carries it (owned), or NULL for a new project. */
static json_t *create_change(const mcp_call *call)
{
	static const char *const KEYS[] = {"repo", "branch", "handle"};
	json_t *change;

	if (!arg_str(call, "repo"))
		return NULL;
	change = json_object();
	for (size_t i = 0; change && i < sizeof(KEYS) / sizeof(KEYS[0]); i++)
		if (arg_str(call, KEYS[i]))
			json_object_set_new(change, KEYS[i], json_string(arg_str(call, KEYS[i])));
	if (change && arg_bool(call, "pr"))
		json_object_set_new(change, "pr", json_true());
	return change;
}

static int t_create(mcp_call *call, json_t **out)
{
	json_t *r = NULL, *change = create_change(call);
	int rc = 0;
	char next[400];

	if (!change && (arg_str(call, "branch") || arg_str(call, "handle") || arg_bool(call, "pr")))
		rc = err_set(ERR_INVALID, "branch, pr and handle go with repo (the repository to change)");
	if (rc == 0)
		rc = call->be->create(call->c, call->who, arg_str(call, "idea"), change, &r,
				      call->be->udata);
	json_decref(change);
	if (rc < 0)
		return rc;
	mcp_watch_add(call->ss, jx_int(r, "thread"), jx_str(r, "project"), 0);
	snprintf(next, sizeof(next), "The factory now %s into a spec and asks you to approve it: "
				     "follow it with project_status {\"project\": \"%s\"} (its next "
				     "field says what to do).",
		 arg_str(call, "repo") ? "copies the repository, reads it and turns the change"
				       : "turns the idea",
		 jx_str(r, "project"));
	json_object_set_new(r, "next", json_string(next));
	mcp_notify(call->ss, "notifications/resources/list_changed", NULL);
	*out = r;
	return 0;
}

static int t_list(mcp_call *call, json_t **out)
{
	int64_t off = 0, total = 0;
	json_int_t limit = json_integer_value(json_object_get(call->args, "limit"));
	json_t *reps = NULL, *list;
	char next[32];
	int rc;

	if (limit <= 0)
		limit = 20;
	rc = mcp_cursor_parse(arg_str(call, "cursor"), &off);
	if (rc == 0)
		rc = call->be->projects(call->c, (int)(off + limit), &reps, &total, call->be->udata);
	if (rc < 0)
		return rc;
	list = json_array();
	for (size_t i = (size_t)off; i < json_array_size(reps) && i < (size_t)(off + limit); i++) {
		const json_t *p = json_array_get(reps, i);
		json_array_append_new(
			list, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:O, s:I, s:f, s:s}",
					"project", jx_str(p, "key"), "thread",
					(json_int_t)jx_int(p, "thread"), "title", jx_str(p, "title"),
					"name", jx_str(p, "name"), "stage",
					*jx_str(p, "stage") ? jx_str(p, "stage") : "new", "run",
					jx_str(p, "run"), "waiting_for_answer",
					json_is_true(json_object_get(p, "waiting_for_answer")), "tasks",
					json_object_get(p, "tasks") ? json_object_get(p, "tasks")
								    : json_null(),
					"workers", (json_int_t)jx_int(p, "workers"), "cost_usd",
					json_number_value(json_object_get(p, "cost_usd")), "updated",
					jx_str(p, "updated")));
	}
	*out = json_pack("{s:o, s:I}", "projects", list, "total", (json_int_t)total);
	if (*out && off + limit < total) {
		mcp_cursor_make(off + limit, next, sizeof(next));
		json_object_set_new(*out, "next_cursor", json_string(next));
	}
	json_decref(reps);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int t_status(mcp_call *call, json_t **out)
{
	int64_t thread = 0;
	json_t *rep = NULL, *qs;
	char next[600];
	int rc = mcp_project_find(call->c, arg_str(call, "project"), &thread);

	if (rc == 0)
		rc = call->be->report(call->c, thread, &rep, call->be->udata);
	if (rc < 0)
		return rc;
	mcp_watch_add(call->ss, thread, jx_str(rep, "key"), 0);
	qs = questions_of(rep);
	next_step(rep, qs, jx_str(rep, "key"), next, sizeof(next));
	json_object_set_new(rep, "project", json_string(jx_str(rep, "key")));
	json_object_set_new(rep, "open_questions", qs);
	json_object_del(rep, "open");
	json_object_set_new(rep, "next", json_string(next));
	if (!*jx_str(rep, "stage"))
		json_object_set_new(rep, "stage", json_string("new"));
	*out = rep;
	return 0;
}

/* Items [off, off + n) of `arr`, long texts cut unless `full`. */
static json_t *page_of(const json_t *arr, size_t off, size_t n, int full)
{
	json_t *page = json_array(), *e;

	for (size_t i = off; page && i < json_array_size(arr) && i < off + n; i++) {
		e = json_deep_copy(json_array_get(arr, i));
		if (!full && json_is_string(json_object_get(e, "text")))
			json_object_set_new(e, "text", mcp_text_cut(jx_str(e, "text"), MCP_TEXT_CAP));
		json_array_append_new(page, e);
	}
	return page;
}

static int t_show(mcp_call *call, json_t **out)
{
	json_t *j = NULL, *st;
	int64_t off = 0;
	size_t n = (size_t)call->page_size, nconv, nlog;
	char next[32];
	int rc = mcp_cursor_parse(arg_str(call, "cursor"), &off);

	if (rc == 0)
		rc = call->be->show(call->c, arg_str(call, "project"), &j, call->be->udata);
	if (rc < 0)
		return rc;
	st = json_object_get(j, "state");
	nconv = json_array_size(json_object_get(st, "conversation"));
	nlog = json_array_size(json_object_get(st, "log"));
	*out = json_pack("{s:s, s:I, s:s, s:s, s:O, s:o, s:o, s:O, s:O, s:O, s:O, s:O, s:I, s:I}",
			 "project", jx_str(j, "key"), "thread", (json_int_t)jx_int(j, "thread"),
			 "created", jx_str(j, "created"), "run", jx_str(j, "run"), "summary",
			 json_object_get(j, "summary"), "conversation",
			 page_of(json_object_get(st, "conversation"), (size_t)off, n,
				 arg_bool(call, "full")),
			 "events", page_of(json_object_get(st, "log"), (size_t)off, n,
					   arg_bool(call, "full")),
			 "questions", json_object_get(j, "questions"), "tasks",
			 json_object_get(st, "tasks") ? json_object_get(st, "tasks") : json_null(),
			 "workers", json_object_get(j, "workers"), "costs",
			 json_object_get(j, "costs"), "spec",
			 json_object_get(st, "spec") ? json_object_get(st, "spec") : json_null(),
			 "conversation_total", (json_int_t)nconv, "events_total", (json_int_t)nlog);
	if (*out && !json_is_object(json_object_get(*out, "tasks")))
		json_object_set_new(*out, "tasks", json_object());
	if (*out && ((size_t)off + n < nconv || (size_t)off + n < nlog)) {
		mcp_cursor_make(off + (int64_t)n, next, sizeof(next));
		json_object_set_new(*out, "next_cursor", json_string(next));
	}
	json_decref(j);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int t_answer(mcp_call *call, json_t **out)
{
	const json_t *q = json_object_get(call->args, "question");
	const char *project = arg_str(call, "project");
	char target[64];
	json_t *r = NULL;
	int rc;

	if ((q != NULL) == (project != NULL))
		return err_set(ERR_INVALID, "name the question (its id, from project_status's "
					    "open_questions) or the project whose question to answer, "
					    "one of the two");
	if (q)
		snprintf(target, sizeof(target), "%lld", (long long)json_integer_value(q));
	rc = call->be->decide(call->c, call->who, q ? target : project, arg_str(call, "answer"),
			      &r, call->be->udata);
	if (rc < 0)
		return rc;
	if (strcmp(jx_str(r, "outcome"), "decided") != 0) {
		rc = err_set(ERR_DENIED, "question %lld was not answered: %s", jx_int(r, "question"),
			     jx_str(r, "reason"));
		json_decref(r);
		return rc;
	}
	*out = r;
	return 0;
}

static int t_message(mcp_call *call, json_t **out)
{
	int64_t thread = 0;
	int rc = mcp_project_find(call->c, arg_str(call, "project"), &thread);

	if (rc == 0)
		rc = call->be->message(call->c, call->who, thread, arg_str(call, "text"), out,
				       call->be->udata);
	if (rc == 0)
		mcp_watch_add(call->ss, thread, jx_str(*out, "project"), 0);
	return rc;
}

static int t_cancel(mcp_call *call, json_t **out)
{
	int64_t thread = 0;
	int rc = mcp_project_find(call->c, arg_str(call, "project"), &thread);

	if (rc == 0)
		rc = call->be->cancel(call->c, call->who, thread, out, call->be->udata);
	return rc;
}

/* One transcript line as worker_logs shows it: long strings cut. */
static json_t *entry_of(const char *line, size_t n, int full)
{
	json_t *e = jx_loadb_lenient(line, n, 0, NULL, NULL), *v;
	const char *k;

	if (!json_is_object(e)) {
		json_decref(e);
		return json_pack("{s:s, s:I}", "type", "unreadable", "bytes", (json_int_t)n);
	}
	if (!full)
		json_object_foreach(e, k, v)
			if (json_is_string(v) && strlen(json_string_value(v)) > MCP_TEXT_CAP)
				json_object_set_new(e, k, mcp_text_cut(json_string_value(v),
								       MCP_TEXT_CAP));
	return e;
}

static int t_logs(mcp_call *call, json_t **out)
{
	json_t *w = NULL, *entries;
	int64_t off = 0, i = 0;
	const char *path;
	char *lp = NULL, next[32];
	size_t cap = 0, bytes = 0;
	ssize_t n;
	int rc = mcp_cursor_parse(arg_str(call, "cursor"), &off), more = 0;
	FILE *f;

	if (rc == 0)
		rc = call->be->worker(call->c, arg_str(call, "worker"), &w, call->be->udata);
	if (rc < 0)
		return rc;
	path = jx_str(w, "transcript");
	entries = json_array();
	f = *path ? fopen(path, "r") : NULL;
	for (;;) {
		n = f ? getline(&lp, &cap, f) : -1;
		if (n <= 0)
			break;
		if (i++ < off)
			continue;
		if (json_array_size(entries) >= (size_t)call->page_size || bytes > 256 * 1024) {
			more = 1;
			break;
		}
		bytes += (size_t)n;
		json_array_append_new(entries, entry_of(lp, (size_t)n, arg_bool(call, "full")));
	}
	if (!f)
		json_object_set_new(w, "transcript_note",
				    json_string(errno == ENOENT
						? "no transcript yet: it is written on the host of the "
						  "spawner that runs the worker"
						: "the transcript cannot be read here"));
	if (f)
		fclose(f);
	free(lp);
	*out = json_pack("{s:o, s:o, s:s}", "worker", w, "entries", entries, "transcript", path);
	if (*out && more) {
		mcp_cursor_make(off + (int64_t)json_array_size(entries), next, sizeof(next));
		json_object_set_new(*out, "next_cursor", json_string(next));
	}
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int t_usage(mcp_call *call, json_t **out)
{
	const char *project = arg_str(call, "project");
	int64_t thread = 0;
	int rc = project ? mcp_project_find(call->c, project, &thread) : 0;

	if (rc < 0)
		return rc;
	return call->be->usage(call->c, project, out, call->be->udata);
}

/* --- the table --- */

static const mcp_tool TOOLS[] = {
	{"create_project", "Start a project",
	 "Start a new factory project from an idea. The factory talks it into a spec (asking "
	 "questions when it needs to), asks you to approve the spec, creates a git repository "
	 "and a plan of tasks, asks you to approve the plan, then sandboxed workers write and "
	 "test the code, a reviewer checks each task and it is merged. Returns the project's key "
	 "for the other tools; follow it with project_status.",
	 IN_CREATE, OUT_CREATE, 0, 0, 0, t_create},
	{"list_projects", "List projects",
	 "The factory's projects: those waiting for an answer first, then the most recently "
	 "active, each with its stage, tasks, running workers and cost. Paginated: pass "
	 "next_cursor back as cursor.",
	 IN_LIST, OUT_LIST, 1, 0, 1, t_list},
	{"project_status", "Project status",
	 "Where a project stands: its stage (brainstorm, spec_review, architect, plan_review, "
	 "develop, done, stopped, cancelled), tasks, running workers with their current step, the "
	 "questions it waits for you to answer (with their ids and answers), tokens and cost, its "
	 "repository; 'next' says what to do now.",
	 IN_PROJECT, OUT_STATUS, 1, 0, 1, t_status},
	{"show_project", "Show a project's history",
	 "A project's history: the conversation, events and decisions, every question and how it "
	 "was answered, the tasks, every worker and merge with its result, its spec, tokens and "
	 "cost per task and per model role. The conversation and the events come a page at a time "
	 "(cursor).",
	 IN_SHOW, OUT_SHOW, 1, 0, 1, t_show},
	{"answer_question", "Answer a question",
	 "Answers a question a project waits for: approve or reject its spec or plan, or pick "
	 "one of its answers (retry, skip, merge, extend a budget...). Name the question by its id "
	 "(open_questions of project_status) or the project. A question is decided once, and only "
	 "by someone allowed to decide it (the same rule as the Telegram buttons and "
	 "'orchestrator approve').",
	 IN_ANSWER, OUT_ANSWER, 0, 0, 0, t_answer},
	{"send_message", "Send a message to a project",
	 "Says something in a project's conversation, as a message typed in its chat: answers the "
	 "brainstorm's questions, says what to change in a spec or a plan, or asks the stage that "
	 "failed to try again.",
	 IN_MESSAGE, OUT_MESSAGE, 0, 0, 0, t_message},
	{"worker_logs", "A worker's log",
	 "What a worker's coding agent did, step by step, from its transcript: each command with "
	 "its exit status and output, network connections, the agent's end, the verified tests "
	 "and the result. Paginated (cursor); long texts cut unless full.",
	 IN_LOGS, OUT_LOGS, 1, 0, 1, t_logs},
	{"cancel_project", "Cancel a project",
	 "Stops a project: its runs, its open questions and its workers (running ones stop, none "
	 "not yet started starts). It cannot be undone; a new project starts afresh.",
	 IN_PROJECT, OUT_CANCEL, 0, 1, 1, t_cancel},
	{"usage", "Tokens and cost",
	 "Tokens and cost of the model calls, from the ledger: of one project or of every "
	 "project, by role and by model, with the budgets and what they have spent.",
	 IN_USAGE, OUT_USAGE, 1, 0, 1, t_usage},
};

const mcp_tool *mcp_tools(size_t *n)
{
	*n = sizeof(TOOLS) / sizeof(TOOLS[0]);
	return TOOLS;
}
