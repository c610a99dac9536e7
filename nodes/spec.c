#include "nodes/spec.h"
#include "core/embed.h"
#include "core/err.h"
#include "llm/schema.h"
#include "nodes/netspec.h"
#include "nodes/say.h"

#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- schemas --- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static json_t *g_spec, *g_plan, *g_review, *g_brainstorm, *g_change_plan;
static char g_err[256];

static json_t *load(const char *path)
{
	const orch_embedded_file *f = embed_find(path);
	json_error_t je;
	json_t *j;

	if (!f) {
		snprintf(g_err, sizeof(g_err), "%s is not built in", path);
		return NULL;
	}
	j = json_loads(f->data, 0, &je);
	if (!j)
		snprintf(g_err, sizeof(g_err), "%s: %s (line %d)", path, je.text, je.line);
	return j;
}

static void load_all(void)
{
	g_spec = load("nodes/prompts/spec.schema.json");
	g_plan = load("nodes/prompts/plan.schema.json");
	g_review = load("nodes/prompts/review.schema.json");
	if (g_spec)
		g_brainstorm = json_pack(
			"{s:s, s:b, s:[s, s], s:{s:{s:s, s:i}, s:{s:[{s:s}, O]}}}", "type", "object",
			"additionalProperties", 0, "required", "message", "spec", "properties",
			"message", "type", "string", "minLength", 1, "spec", "anyOf", "type", "null",
			g_spec);
	if (g_plan) {
		/* a change's plan: the repository exists, so no README and no scaffold */
		g_change_plan = json_deep_copy(g_plan);
		json_object_del(json_object_get(g_change_plan, "properties"), "readme");
		json_object_del(json_object_get(g_change_plan, "properties"), "files");
		json_object_set_new(g_change_plan, "required",
				    json_pack("[s, s, s]", "summary", "test_command", "tasks"));
	}
}

const json_t *nd_schema(const char *name)
{
	const json_t *s = NULL;

	pthread_once(&g_once, load_all);
	if (strcmp(name, "spec") == 0)
		s = g_spec;
	else if (strcmp(name, "plan") == 0)
		s = g_plan;
	else if (strcmp(name, "review") == 0)
		s = g_review;
	else if (strcmp(name, "brainstorm") == 0)
		s = g_brainstorm;
	else if (strcmp(name, "change_plan") == 0)
		s = g_change_plan;
	if (!s)
		err_set(ERR_INTERNAL, "schema %s: %s", name, g_err[0] ? g_err : "unknown");
	return s;
}

/* --- reading --- */

static char *dup_str(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? strdup(v) : NULL;
}

static int need_str(const json_t *o, const char *k, const char *where, char **out)
{
	*out = dup_str(o, k);
	if (!*out)
		return err_set(ERR_INVALID, "%s.%s must be a string", where, k);
	return 0;
}

static void strv_free(nd_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static int strv_add(nd_strv *v, const char *s)
{
	char **nv = realloc(v->v, (v->n + 1) * sizeof(char *));

	if (!nv)
		return err_set(ERR_NOMEM, "out of memory");
	v->v = nv;
	v->v[v->n] = strdup(s);
	if (!v->v[v->n])
		return err_set(ERR_NOMEM, "out of memory");
	v->n++;
	return 0;
}

static int strv_has(const nd_strv *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return 1;
	return 0;
}

/* Reads an array of strings (absent: empty), trimming and dropping empty
 * items and repeats. */
static int strv_read(const json_t *o, const char *k, const char *where, nd_strv *out)
{
	const json_t *a = json_object_get(o, k), *v;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return err_set(ERR_INVALID, "%s.%s must be an array of strings", where, k);
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		char *t;
		size_t n;
		int rc;

		if (!s)
			return err_set(ERR_INVALID, "%s.%s[%zu] must be a string", where, k, i);
		while (isspace((unsigned char)*s))
			s++;
		n = strlen(s);
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (n == 0)
			continue;
		t = strndup(s, n);
		if (!t)
			return err_set(ERR_NOMEM, "out of memory");
		rc = strv_has(out, t) ? 0 : strv_add(out, t);
		free(t);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static json_t *strv_json(const nd_strv *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

/* Reads the members of `o` listed as (name, pointer) pairs up to NULL: a
 * name starting with '*' is a list of strings (an nd_strv, may be absent),
 * any other a required string (a char *). The first failure's code. */
static int read_members(const json_t *o, const char *where, ...)
{
	va_list ap;
	const char *name;
	int rc = 0;

	va_start(ap, where);
	for (name = va_arg(ap, const char *); rc == 0 && name; name = va_arg(ap, const char *)) {
		void *dst = va_arg(ap, void *);
		rc = name[0] == '*' ? strv_read(o, name + 1, where, dst) : need_str(o, name, where, dst);
	}
	va_end(ap);
	return rc;
}

/* Checks a reply against the schema `name`; `what` names it in the
 * message. ERR_INTERNAL (a broken built-in schema) or ERR_INVALID. */
static int schema_check(const json_t *j, const char *name, const char *what)
{
	const json_t *schema = nd_schema(name);
	char why[512];

	if (!schema)
		return ERR_INTERNAL;
	if (llm_schema_check(schema, j, why, sizeof(why)) < 0)
		return err_set(ERR_INVALID, "the %s does not match its schema: %s", what, why);
	return 0;
}

/* A zeroed array of `size`-byte items, one per element of the array
 * o[k] (and one more, so that it is never empty), which goes to *arr.
 * Owned; NULL (ERR_NOMEM set) when out of memory. */
static void *items_alloc(const json_t *o, const char *k, size_t size, const json_t **arr)
{
	void *items;

	*arr = json_object_get(o, k);
	items = calloc(json_array_size(*arr) + 1, size);
	if (!items)
		err_set(ERR_NOMEM, "out of memory");
	return items;
}

void nd_spec_free(nd_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->summary);
	free(s->language);
	free(s->test_command);
	free(s->remote_url);
	free(s->remote_handle);
	strv_free(&s->users);
	strv_free(&s->stack);
	strv_free(&s->constraints);
	for (size_t i = 0; i < s->nfeatures; i++) {
		free(s->features[i].name);
		free(s->features[i].description);
		strv_free(&s->features[i].acceptance);
	}
	free(s->features);
	nd_netspec_free(&s->net);
	memset(s, 0, sizeof(*s));
}

int nd_spec_from_json(const json_t *j, nd_spec *out)
{
	const json_t *feats, *f, *remote;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = schema_check(j, "spec", "spec");
	if (rc < 0)
		return rc;
	rc = read_members(j, "spec", "name", &out->name, "summary", &out->summary, "language",
			  &out->language, "test_command", &out->test_command, "*users", &out->users,
			  "*stack", &out->stack, "*constraints", &out->constraints, NULL);
	if (rc < 0)
		return rc;
	if (out->users.n == 0)
		return err_set(ERR_INVALID, "spec.users is empty");
	out->features = items_alloc(j, "features", sizeof(nd_feature), &feats);
	if (!out->features)
		return ERR_NOMEM;
	json_array_foreach(feats, i, f) {
		nd_feature *x = &out->features[out->nfeatures++];
		char where[48];

		snprintf(where, sizeof(where), "spec.features[%zu]", i);
		rc = read_members(f, where, "name", &x->name, "*acceptance", &x->acceptance, NULL);
		if (rc < 0)
			return rc;
		x->description = dup_str(f, "description");
		if (x->acceptance.n == 0)
			return err_set(ERR_INVALID, "%s.acceptance is empty", where);
	}
	remote = json_object_get(j, "remote");
	if (json_is_object(remote)) {
		out->remote_url = dup_str(remote, "url");
		out->remote_handle = dup_str(remote, "handle");
		if (out->remote_handle && !*out->remote_handle) {
			free(out->remote_handle);
			out->remote_handle = NULL;
		}
	}
	return nd_netspec_read(j, &out->net);
}

json_t *nd_spec_to_json(const nd_spec *s)
{
	json_t *j = json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:s}", "name", s->name, "summary",
			      s->summary, "users", strv_json(&s->users), "language", s->language,
			      "stack", strv_json(&s->stack), "constraints",
			      strv_json(&s->constraints), "test_command", s->test_command);
	json_t *feats = json_array();

	if (!j || !feats) {
		json_decref(j);
		json_decref(feats);
		return NULL;
	}
	for (size_t i = 0; i < s->nfeatures; i++) {
		json_t *f = json_pack("{s:s, s:o}", "name", s->features[i].name, "acceptance",
				      strv_json(&s->features[i].acceptance));
		if (f && s->features[i].description)
			json_object_set_new(f, "description",
					    json_string(s->features[i].description));
		json_array_append_new(feats, f);
	}
	json_object_set_new(j, "features", feats);
	if (s->remote_url) {
		json_t *r = json_pack("{s:s}", "url", s->remote_url);
		if (r && s->remote_handle)
			json_object_set_new(r, "handle", json_string(s->remote_handle));
		json_object_set_new(j, "remote", r);
	}
	nd_netspec_to_json(&s->net, j);
	return j;
}

/* --- the plan --- */

int nd_path_check(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > 200 || p[0] == '/' || p[n - 1] == '/')
		return err_set(ERR_INVALID, "'%s' is not a relative file path", p);
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == '\\' || *c == 0x7f)
			return err_set(ERR_INVALID, "'%s' holds a character a path must not hold", p);
	for (const char *seg = p; *seg;) {
		size_t len = strcspn(seg, "/");

		if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && strncmp(seg, "..", 2) == 0) ||
		    (len == 4 && strncasecmp(seg, ".git", 4) == 0))
			return err_set(ERR_INVALID, "'%s' is not a usable path in the repository", p);
		seg += len;
		if (*seg == '/')
			seg++;
	}
	return 0;
}

static int task_id_check(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > ND_TASK_ID_MAX || !islower((unsigned char)id[0]))
		return err_set(ERR_INVALID, "task id '%s' must start with a lowercase letter and be "
					    "at most %d characters", id, ND_TASK_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)id[i]) && !isdigit((unsigned char)id[i]) && id[i] != '-')
			return err_set(ERR_INVALID, "task id '%s' may hold only a-z, 0-9 and '-' (it "
						    "names a branch)", id);
	if (id[n - 1] == '-' || strstr(id, "--"))
		return err_set(ERR_INVALID, "task id '%s' must not end in '-' or hold '--'", id);
	return 0;
}

static void task_free(nd_plan_task *t)
{
	free(t->id);
	free(t->title);
	free(t->goal);
	strv_free(&t->files);
	strv_free(&t->checks);
	strv_free(&t->deps);
	strv_free(&t->ordered_after);
}

void nd_plan_free(nd_plan *p)
{
	if (!p)
		return;
	free(p->summary);
	free(p->test_command);
	free(p->readme);
	for (size_t i = 0; i < p->ntasks; i++)
		task_free(&p->tasks[i]);
	free(p->tasks);
	for (size_t i = 0; i < p->nfiles; i++) {
		free(p->files[i].path);
		free(p->files[i].content);
	}
	free(p->files);
	memset(p, 0, sizeof(*p));
}

static int task_index(const nd_plan *p, const char *id)
{
	for (size_t i = 0; i < p->ntasks; i++)
		if (strcmp(p->tasks[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* reach[i*n + k]: task i depends, directly or not, on task k. */
static void closure(const nd_plan *p, unsigned char *reach)
{
	size_t n = p->ntasks;

	memset(reach, 0, n * n);
	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < p->tasks[i].deps.n; d++)
			reach[i * n + (size_t)task_index(p, p->tasks[i].deps.v[d])] = 1;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < n; i++)
			if (reach[i * n + k])
				for (size_t j = 0; j < n; j++)
					if (reach[k * n + j])
						reach[i * n + j] = 1;
}

/* Orders the tasks so every task comes after its dependencies (stable:
 * the model's order where it is free). ERR_INVALID naming a cycle. */
static int topo_sort(nd_plan *p)
{
	size_t n = p->ntasks, done = 0;
	nd_plan_task *sorted = calloc(n, sizeof(nd_plan_task));
	unsigned char *placed = calloc(n, 1);
	int rc = 0;

	if (!sorted || !placed) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto out;
	}
	while (done < n) {
		int progress = 0;

		for (size_t i = 0; i < n; i++) {
			int ready = !placed[i];

			for (size_t d = 0; ready && d < p->tasks[i].deps.n; d++)
				ready = placed[task_index(p, p->tasks[i].deps.v[d])];
			if (!ready)
				continue;
			sorted[done++] = p->tasks[i];
			placed[i] = 1;
			progress = 1;
			break; /* restart: keep the model's order among ready tasks */
		}
		if (!progress) {
			for (size_t i = 0; i < n; i++)
				if (!placed[i]) {
					rc = err_set(ERR_INVALID,
						     "the tasks' dependencies form a cycle (task '%s' "
						     "is part of it)", p->tasks[i].id);
					break;
				}
			goto out;
		}
	}
	memcpy(p->tasks, sorted, n * sizeof(nd_plan_task));
out:
	free(sorted);
	free(placed);
	return rc;
}

/* Tasks that expect to touch a common file and could run at once get the
 * later one ordered after the earlier one. */
static int order_shared_files(nd_plan *p)
{
	size_t n = p->ntasks;
	unsigned char *reach = malloc(n * n > 0 ? n * n : 1);
	int rc = 0;

	if (!reach)
		return err_set(ERR_NOMEM, "out of memory");
	closure(p, reach);
	for (size_t j = 1; j < n && rc == 0; j++) {
		for (size_t i = 0; i < j && rc == 0; i++) {
			const char *shared = NULL;

			if (reach[j * n + i] || reach[i * n + j])
				continue;
			for (size_t a = 0; a < p->tasks[i].files.n && !shared; a++)
				if (strv_has(&p->tasks[j].files, p->tasks[i].files.v[a]))
					shared = p->tasks[i].files.v[a];
			if (!shared)
				continue;
			rc = strv_add(&p->tasks[j].deps, p->tasks[i].id);
			if (rc == 0)
				rc = strv_add(&p->tasks[j].ordered_after, p->tasks[i].id);
			closure(p, reach);
		}
	}
	free(reach);
	return rc;
}

/* The plan's tasks (and summary, test command) into out. */
static int read_tasks(const json_t *j, nd_plan *out)
{
	const json_t *tasks, *t;
	size_t i;
	int rc = read_members(j, "plan", "summary", &out->summary, "test_command",
			      &out->test_command, NULL);

	out->tasks = rc == 0 ? items_alloc(j, "tasks", sizeof(nd_plan_task), &tasks) : NULL;
	if (!out->tasks)
		return rc < 0 ? rc : ERR_NOMEM;
	json_array_foreach(tasks, i, t) {
		nd_plan_task *x = &out->tasks[out->ntasks++];
		char where[32];

		snprintf(where, sizeof(where), "plan.tasks[%zu]", i);
		rc = read_members(t, where, "id", &x->id, "title", &x->title, "goal", &x->goal,
				  "*files", &x->files, "*checks", &x->checks, "*deps", &x->deps,
				  "*ordered_after", &x->ordered_after, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The scaffold besides README.md: safe, distinct paths. */
static int read_files(const json_t *j, nd_plan *out)
{
	const json_t *files, *f;
	size_t i;
	int rc = need_str(j, "readme", "plan", &out->readme);

	out->files = rc == 0 ? items_alloc(j, "files", sizeof(nd_file), &files) : NULL;
	if (!out->files)
		return rc < 0 ? rc : ERR_NOMEM;
	json_array_foreach(files, i, f) {
		nd_file *x;
		const char *path = json_string_value(json_object_get(f, "path"));

		while (path && strncmp(path, "./", 2) == 0)
			path += 2;
		if (!path || nd_path_check(path) < 0)
			return err_set(ERR_INVALID, "plan.files[%zu].path: %s", i,
				       path ? err_last() : "missing");
		if (strcasecmp(path, "README.md") == 0)
			continue; /* the readme field is the README */
		for (size_t k = 0; k < out->nfiles; k++)
			if (strcmp(out->files[k].path, path) == 0)
				return err_set(ERR_INVALID, "plan.files names %s twice", path);
		x = &out->files[out->nfiles++];
		x->path = strdup(path);
		x->content = dup_str(f, "content");
		if (!x->path || !x->content)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* A task's id, files and checks are usable, and its id is its own. */
static int check_task(const nd_plan *p, nd_plan_task *x)
{
	int rc = task_id_check(x->id);

	if (rc < 0)
		return rc;
	for (size_t k = 0; k < x->files.n; k++) {
		char *fp = x->files.v[k];
		while (strncmp(fp, "./", 2) == 0)
			memmove(fp, fp + 2, strlen(fp + 2) + 1);
		if (nd_path_check(fp) < 0)
			return err_set(ERR_INVALID, "task '%s': %s", x->id, err_last());
	}
	if (x->checks.n == 0)
		return err_set(ERR_INVALID, "task '%s' has no acceptance check", x->id);
	for (const nd_plan_task *o = p->tasks; o < x; o++)
		if (strcmp(o->id, x->id) == 0)
			return err_set(ERR_INVALID, "two tasks have the id '%s'", x->id);
	for (size_t d = 0; d < x->deps.n; d++) {
		if (strcmp(x->deps.v[d], x->id) == 0)
			return err_set(ERR_INVALID, "task '%s' depends on itself", x->id);
		if (task_index(p, x->deps.v[d]) < 0)
			return err_set(ERR_INVALID, "task '%s' depends on '%s', which is not a task "
						    "of the plan", x->id, x->deps.v[d]);
	}
	return 0;
}

/* A plan as the model sent it: of a new project (`change` 0: with the
 * README and the scaffold) or of a change. */
static int plan_from_json(const json_t *j, int change, nd_plan *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = schema_check(j, change ? "change_plan" : "plan", "plan");
	if (rc == 0 && !change)
		rc = read_files(j, out);
	if (rc == 0)
		rc = read_tasks(j, out);
	for (size_t i = 0; rc == 0 && i < out->ntasks; i++)
		strv_free(&out->tasks[i].ordered_after); /* made here, never taken from the model */
	for (size_t i = 0; rc == 0 && i < out->ntasks; i++)
		rc = check_task(out, &out->tasks[i]);
	if (rc == 0)
		rc = topo_sort(out);
	if (rc == 0)
		rc = order_shared_files(out);
	return rc;
}

int nd_plan_from_json(const json_t *j, nd_plan *out)
{
	return plan_from_json(j, 0, out);
}

int nd_change_plan_from_json(const json_t *j, nd_plan *out)
{
	return plan_from_json(j, 1, out);
}

json_t *nd_plan_to_json(const nd_plan *p)
{
	json_t *tasks = json_array(), *j;

	if (!tasks)
		return NULL;
	for (size_t i = 0; i < p->ntasks; i++) {
		const nd_plan_task *t = &p->tasks[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", t->id, "title", t->title,
				      "goal", t->goal, "files", strv_json(&t->files), "checks",
				      strv_json(&t->checks), "deps", strv_json(&t->deps));
		if (o && t->ordered_after.n)
			json_object_set_new(o, "ordered_after", strv_json(&t->ordered_after));
		json_array_append_new(tasks, o);
	}
	j = json_pack("{s:s, s:s, s:o}", "summary", p->summary, "test_command", p->test_command,
		      "tasks", tasks);
	return j;
}

int nd_plan_read(const json_t *j, nd_plan *out)
{
	memset(out, 0, sizeof(*out));
	return json_is_object(j) ? read_tasks(j, out) : 0;
}

/* --- the verdict --- */

void nd_review_free(nd_review *r)
{
	if (!r)
		return;
	free(r->summary);
	for (size_t i = 0; i < r->ncomments; i++) {
		free(r->comments[i].file);
		free(r->comments[i].text);
	}
	free(r->comments);
	memset(r, 0, sizeof(*r));
}

int nd_review_read(const json_t *j, nd_review *out)
{
	const json_t *cs, *c;
	const char *verdict = json_string_value(json_object_get(j, "verdict"));
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	out->approve = verdict && strcmp(verdict, "approve") == 0;
	out->round = (int)json_integer_value(json_object_get(j, "round"));
	rc = need_str(j, "summary", "review", &out->summary);
	if (rc < 0)
		return rc;
	out->comments = items_alloc(j, "comments", sizeof(nd_comment), &cs);
	if (!out->comments)
		return ERR_NOMEM;
	json_array_foreach(cs, i, c) {
		nd_comment *x = &out->comments[out->ncomments++];

		rc = need_str(c, "comment", "review.comments", &x->text);
		if (rc < 0)
			return rc;
		x->file = dup_str(c, "file");
		x->line = (int)json_integer_value(json_object_get(c, "line"));
	}
	return 0;
}

int nd_review_from_json(const json_t *j, nd_review *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = schema_check(j, "review", "verdict");
	if (rc == 0)
		rc = nd_review_read(j, out);
	if (rc == 0 && !out->approve && out->ncomments == 0 && !*out->summary)
		return err_set(ERR_INVALID, "changes were requested without saying which");
	return rc;
}

json_t *nd_review_to_json(const nd_review *r)
{
	json_t *cs = json_array();

	for (size_t i = 0; cs && i < r->ncomments; i++) {
		json_t *c = json_pack("{s:s}", "comment", r->comments[i].text);
		if (c && r->comments[i].file)
			json_object_set_new(c, "file", json_string(r->comments[i].file));
		if (c && r->comments[i].line > 0)
			json_object_set_new(c, "line", json_integer(r->comments[i].line));
		json_array_append_new(cs, c);
	}
	return json_pack("{s:s, s:s, s:o, s:o*}", "verdict",
			 r->approve ? "approve" : "request_changes", "summary", r->summary,
			 "comments", cs ? cs : json_array(), "round",
			 r->round > 0 ? json_integer(r->round) : NULL);
}

/* --- for people --- */

static void html_list(buf *out, const json_t *arr, const char *bullet)
{
	size_t i;
	const json_t *v;

	json_array_foreach(arr, i, v) {
		buf_puts(out, bullet);
		nd_html_escape(out, json_string_value(v));
		buf_putc(out, '\n');
	}
}

/* The strings of `arr`, escaped, separated by ", ". */
static void html_join(buf *out, const json_t *arr)
{
	size_t i;
	const json_t *v;

	json_array_foreach(arr, i, v) {
		if (i)
			buf_puts(out, ", ");
		nd_html_escape(out, json_string_value(v));
	}
}

void nd_spec_html(const json_t *s, buf *out)
{
	const json_t *f;
	size_t i;

	buf_puts(out, "<b>");
	nd_html_escape(out, json_string_value(json_object_get(s, "name")));
	buf_puts(out, "</b>\n");
	nd_html_escape(out, json_string_value(json_object_get(s, "summary")));
	buf_puts(out, "\n\n<b>For</b>\n");
	html_list(out, json_object_get(s, "users"), "• ");
	buf_puts(out, "\n<b>Features</b>\n");
	json_array_foreach(json_object_get(s, "features"), i, f) {
		buf_printf(out, "%zu. <b>", i + 1);
		nd_html_escape(out, json_string_value(json_object_get(f, "name")));
		buf_puts(out, "</b>");
		if (json_string_value(json_object_get(f, "description"))) {
			buf_puts(out, " — ");
			nd_html_escape(out, json_string_value(json_object_get(f, "description")));
		}
		buf_putc(out, '\n');
		html_list(out, json_object_get(f, "acceptance"), "   ✓ ");
	}
	buf_puts(out, "\n<b>Language</b> ");
	nd_html_escape(out, json_string_value(json_object_get(s, "language")));
	if (json_array_size(json_object_get(s, "stack"))) {
		buf_puts(out, "\n<b>Stack</b> ");
		html_join(out, json_object_get(s, "stack"));
	}
	if (json_array_size(json_object_get(s, "constraints"))) {
		buf_puts(out, "\n<b>Constraints</b>\n");
		html_list(out, json_object_get(s, "constraints"), "• ");
	} else {
		buf_putc(out, '\n');
	}
	buf_puts(out, "<b>Tests</b> <code>");
	nd_html_escape(out, json_string_value(json_object_get(s, "test_command")));
	buf_puts(out, "</code>");
	if (json_is_object(json_object_get(s, "remote"))) {
		buf_puts(out, "\n<b>Remote</b> ");
		nd_html_escape(out, json_string_value(json_object_get(json_object_get(s, "remote"),
								      "url")));
	}
	nd_netspec_html(s, out);
}

void nd_plan_html(const json_t *p, buf *out)
{
	const json_t *t;
	size_t i;

	nd_html_escape(out, json_string_value(json_object_get(p, "summary")));
	buf_puts(out, "\n\n");
	json_array_foreach(json_object_get(p, "tasks"), i, t) {
		const json_t *deps = json_object_get(t, "deps");

		buf_printf(out, "%zu. <b>", i + 1);
		nd_html_escape(out, json_string_value(json_object_get(t, "title")));
		buf_puts(out, "</b> <code>");
		nd_html_escape(out, json_string_value(json_object_get(t, "id")));
		buf_puts(out, "</code>");
		if (json_array_size(deps)) {
			buf_puts(out, " — after ");
			html_join(out, deps);
		}
		buf_puts(out, "\n   ");
		nd_html_escape(out, json_string_value(json_object_get(t, "goal")));
		buf_putc(out, '\n');
		if (json_array_size(json_object_get(t, "files"))) {
			buf_puts(out, "   files: ");
			html_join(out, json_object_get(t, "files"));
			buf_putc(out, '\n');
		}
		html_list(out, json_object_get(t, "checks"), "   ✓ ");
	}
	buf_puts(out, "\nTests: <code>");
	nd_html_escape(out, json_string_value(json_object_get(p, "test_command")));
	buf_puts(out, "</code>");
}
