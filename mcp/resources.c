/* mcp resources — a project's report and spec as resources, listed a page
 * at a time, read, subscribed to. See mcp.h. */
#include "mcp/mcp_int.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "engine/control.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URI_PREFIX "orchestrator://projects/"

void mcp_uri(const char *key, const char *which, char *out, size_t cap)
{
	snprintf(out, cap, URI_PREFIX "%s/%s", key, which);
}

/* Splits a resource URI into the project (percent-decoded) and which
 * resource: 1 report, 2 spec. ERR_NOTFOUND naming the forms. */
static int parse_uri(const char *uri, char *key, size_t cap, int *which)
{
	const char *p, *slash;
	size_t n = 0;

	*which = 0;
	if (!uri || strncmp(uri, URI_PREFIX, strlen(URI_PREFIX)) != 0)
		goto bad;
	p = uri + strlen(URI_PREFIX);
	slash = strrchr(p, '/');
	if (!slash || slash == p)
		goto bad;
	if (strcmp(slash + 1, "report") == 0)
		*which = 1;
	else if (strcmp(slash + 1, "spec") == 0)
		*which = 2;
	else
		goto bad;
	for (; p < slash && n + 1 < cap; p++) {
		if (*p == '%' && p + 2 < slash && util_hexval(p[1]) >= 0 && util_hexval(p[2]) >= 0) {
			key[n++] = (char)(util_hexval(p[1]) * 16 + util_hexval(p[2]));
			p += 2;
		} else {
			key[n++] = *p;
		}
	}
	key[n] = 0;
	if (n > 0 && !memchr(key, '/', n))
		return 0;
bad:
	return err_set(ERR_NOTFOUND, "unknown resource '%.200s': this server has " URI_PREFIX
				     "{project}/report and " URI_PREFIX "{project}/spec "
				     "(resources/list lists them)", uri ? uri : "");
}

/* A project's two resources (the spec only once there is one). */
static void add_resources(json_t *list, const json_t *rep)
{
	const char *key = jx_str(rep, "key"), *stage = jx_str(rep, "stage");
	const char *title = *jx_str(rep, "name") ? jx_str(rep, "name") : jx_str(rep, "title");
	char uri[256], name[200], t[300];

	mcp_uri(key, "report", uri, sizeof(uri));
	snprintf(name, sizeof(name), "%s report", key);
	snprintf(t, sizeof(t), "%s — report", title);
	json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name,
					      "title", t, "description",
					      "where the project stands: stage, tasks, workers, open "
					      "questions, tokens and cost",
					      "mimeType", "application/json"));
	if (!*stage || strcmp(stage, "brainstorm") == 0)
		return;
	mcp_uri(key, "spec", uri, sizeof(uri));
	snprintf(name, sizeof(name), "%s spec", key);
	snprintf(t, sizeof(t), "%s — spec", title);
	json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name,
					      "title", t, "description",
					      "the project's spec: features with acceptance checks, "
					      "language, stack, constraints, test command",
					      "mimeType", "application/json"));
}

int mcp_res_list(mcp_session *ss, const json_t *params, json_t **result)
{
	mcp_server *s = ss->s;
	int64_t off = 0, total = 0;
	json_t *reps = NULL, *list;
	pg_conn *c = NULL;
	char next[32];
	int rc;

	*result = NULL;
	rc = mcp_cursor_parse(json_string_value(json_object_get(params, "cursor")), &off);
	if (rc == 0)
		rc = pg_pool_acquire(s->pool, 10000, &c);
	if (rc == 0)
		rc = s->be.projects(c, (int)(off + s->page_size), &reps, &total, s->be.udata);
	if (c)
		pg_pool_release(s->pool, c);
	if (rc < 0) {
		json_decref(reps);
		return rc;
	}
	list = json_array();
	for (size_t i = (size_t)off; list && i < json_array_size(reps); i++)
		add_resources(list, json_array_get(reps, i));
	*result = json_pack("{s:o}", "resources", list);
	if (*result && off + s->page_size < total) {
		mcp_cursor_make(off + s->page_size, next, sizeof(next));
		json_object_set_new(*result, "nextCursor", json_string(next));
	}
	json_decref(reps);
	return *result ? 0 : err_set(ERR_NOMEM, "out of memory");
}

int mcp_res_templates(mcp_session *ss, const json_t *params, json_t **result)
{
	(void)ss;
	(void)params;
	*result = json_pack(
		"{s:[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates",
		"uriTemplate", URI_PREFIX "{project}/report", "name", "project-report", "title",
		"A project's report", "description",
		"stage, tasks, workers, open questions, tokens and cost of a project (its key, as "
		"term:ada:2, or thread id)",
		"mimeType", "application/json", "uriTemplate", URI_PREFIX "{project}/spec", "name",
		"project-spec", "title", "A project's spec", "description",
		"the spec the project builds (once its brainstorm produced one)", "mimeType",
		"application/json");
	return *result ? 0 : err_set(ERR_NOMEM, "out of memory");
}

/* The spec in the project's latest state. */
static int read_spec(pg_conn *c, int64_t thread, const char *key, json_t **out)
{
	json_t *state = NULL;
	int rc = eng_state_at(c, thread, 0, &state, NULL, NULL);
	const json_t *spec = json_object_get(state, "spec");

	*out = NULL;
	if (rc < 0 || !json_is_object(spec)) {
		json_decref(state);
		err_clear();
		return err_set(ERR_NOTFOUND, "project %s has no spec yet: its brainstorm is still "
					     "talking (read its report, or show_project's conversation)",
			       key);
	}
	*out = json_deep_copy(spec);
	json_object_set_new(*out, "version", json_integer(jx_int(state, "spec_version")));
	json_decref(state);
	return 0;
}

int mcp_res_read(mcp_session *ss, const json_t *params, json_t **result)
{
	mcp_server *s = ss->s;
	const char *uri = json_string_value(json_object_get(params, "uri"));
	char key[160];
	int which = 0, rc;
	int64_t thread = 0;
	json_t *v = NULL;
	pg_conn *c = NULL;
	char *text;

	*result = NULL;
	rc = parse_uri(uri, key, sizeof(key), &which);
	if (rc < 0)
		return rc;
	rc = pg_pool_acquire(s->pool, 10000, &c);
	if (rc == 0)
		rc = mcp_project_find(c, key, &thread);
	if (rc == 0 && which == 1)
		rc = s->be.report(c, thread, &v, s->be.udata);
	else if (rc == 0)
		rc = read_spec(c, thread, key, &v);
	if (c)
		pg_pool_release(s->pool, c);
	if (rc < 0)
		return rc;
	text = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	*result = json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
			    "application/json", "text", text);
	free(text);
	return *result ? 0 : err_set(ERR_NOMEM, "out of memory");
}

int mcp_res_subscribe(mcp_session *ss, const json_t *params, int on, json_t **result)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	char key[160];
	int which = 0, rc;
	int64_t thread = 0;
	pg_conn *c = NULL;

	*result = NULL;
	rc = parse_uri(uri, key, sizeof(key), &which);
	if (rc == 0)
		rc = pg_pool_acquire(ss->s->pool, 10000, &c);
	if (rc == 0)
		rc = mcp_project_find(c, key, &thread);
	if (c)
		pg_pool_release(ss->s->pool, c);
	if (rc < 0)
		return rc;
	if (on)
		mcp_watch_add(ss, thread, key, which);
	else
		mcp_watch_unsub(ss, thread, which);
	*result = json_object();
	return 0;
}
