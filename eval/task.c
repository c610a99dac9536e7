#include "eval/task.h"
#include "core/buf.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const LANGS[] = {"python", "node", "go", "sql", "c", NULL};
static const char *const PREFIX[] = {"py", "js", "go", "sql", "c", NULL};
static const char *const SIZES[] = {"small", "medium", "large", NULL};
static const char *const TOOLS[] = {"python3", "node", "npm", "go", "sqlite3", "gcc",
				    "make", "sh", "git", NULL};

static int one_of(const char *s, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return i;
	return -1;
}

/* Problems found so far, one per line. */
typedef struct problems {
	buf b;
	int n;
} problems;

static void problem(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(problems *p, const char *fmt, ...)
{
	va_list ap;

	if (p->n++ < 20) {
		buf_puts(&p->b, p->n > 1 ? "; " : "");
		va_start(ap, fmt);
		buf_vprintf(&p->b, fmt, ap);
		va_end(ap);
	}
}

static const char *need_str(const json_t *o, const char *key, problems *p)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s || !*s)
		problem(p, "%s: a non-empty string", key);
	return s ? s : "";
}

static int64_t need_pos_int(const json_t *o, const char *key, const char *where, problems *p)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		problem(p, "%s.%s: a positive whole number", where, key);
		return 0;
	}
	return (int64_t)json_integer_value(v);
}

static void copy(char *dst, size_t cap, const char *src, const char *key, problems *p)
{
	if (strlen(src) >= cap)
		problem(p, "%s: longer than %zu characters", key, cap - 1);
	snprintf(dst, cap, "%s", src);
}

static char *dup_or_fail(const char *s, int *oom)
{
	char *d = strdup(s);

	if (!d)
		*oom = 1;
	return d;
}

/* {"command", "timeout_s"}: *cmd (owned) and *timeout. */
static void command_block(const json_t *t, const char *key, char **cmd, int64_t *timeout,
			  problems *p, int *oom)
{
	const json_t *v = json_object_get(t, key);
	const char *k;
	const json_t *x;

	if (!json_is_object(v)) {
		problem(p, "%s: an object with command and timeout_s", key);
		return;
	}
	json_object_foreach((json_t *)v, k, x)
		if (strcmp(k, "command") != 0 && strcmp(k, "timeout_s") != 0)
			problem(p, "%s: unknown key '%s'", key, k);
	if (!json_string_value(json_object_get(v, "command")) ||
	    !*json_string_value(json_object_get(v, "command")))
		problem(p, "%s.command: a non-empty shell command", key);
	else
		*cmd = dup_or_fail(json_string_value(json_object_get(v, "command")), oom);
	*timeout = need_pos_int(v, "timeout_s", key, p);
	if (*timeout > 3600)
		problem(p, "%s.timeout_s: at most 3600", key);
}

/* True when `path` is a folder holding at least one file. */
static int folder_with_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	for (e = readdir(d); e && !found; e = readdir(d))
		found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return found;
}

/* "toolchain": known tool names, joined by spaces into out->toolchain. */
static void read_toolchain(const json_t *v, ev_task *out, problems *p)
{
	if (!json_is_array(v) || json_array_size(v) == 0)
		problem(p, "toolchain: a non-empty list of tool names");
	for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
		const char *tool = json_string_value(json_array_get(v, i));
		size_t used = strlen(out->toolchain);
		if (!tool || one_of(tool, TOOLS) < 0)
			problem(p, "toolchain: unknown tool '%s'", tool ? tool : "?");
		else
			snprintf(out->toolchain + used, sizeof(out->toolchain) - used, "%s%s",
				 used ? " " : "", tool);
	}
}

/* "budget": {"tokens", "usd", "wall_s"}, each positive. */
static void read_budget(json_t *v, ev_task *out, problems *p)
{
	const json_t *usd;
	const char *k;

	if (!json_is_object(v)) {
		problem(p, "budget: an object with tokens, usd, wall_s");
		return;
	}
	json_object_foreach(v, k, usd)
		if (strcmp(k, "tokens") != 0 && strcmp(k, "usd") != 0 && strcmp(k, "wall_s") != 0)
			problem(p, "budget: unknown key '%s'", k);
	usd = json_object_get(v, "usd");
	out->budget_tokens = need_pos_int(v, "tokens", "budget", p);
	out->budget_wall_s = need_pos_int(v, "wall_s", "budget", p);
	if (!json_is_number(usd) || json_number_value(usd) <= 0)
		problem(p, "budget.usd: a positive number");
	else
		out->budget_usd = json_number_value(usd);
}

int ev_task_load(const char *dir, ev_task *out)
{
	static const char *const keys_all[] = {"id", "title", "lang", "size", "kind", "idea",
					       "answers", "toolchain", "budget", "hidden", NULL};
	char path[1200], hidden[1200];
	const char *base = strrchr(dir, '/'), *k;
	json_error_t je;
	json_t *t = NULL, *v;
	problems p;
	size_t i;
	int oom = 0, li, rc = 0;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	buf_init(&p.b, 4096);
	base = base ? base + 1 : dir;
	snprintf(out->dir, sizeof(out->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/task.json", dir);
	t = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!t) {
		rc = err_set(ERR_PARSE, "task %s: %s cannot be read: %s (line %d)", base, path, je.text,
			     je.line);
		goto done;
	}
	if (!json_is_object(t)) {
		rc = err_set(ERR_PARSE, "task %s: %s is not a JSON object", base, path);
		goto done;
	}
	copy(out->kind, sizeof(out->kind), need_str(t, "kind", &p), "kind", &p);
	if (strcmp(out->kind, "new") != 0 && strcmp(out->kind, "change") != 0)
		problem(&p, "kind: new or change, not '%s'", out->kind);
	json_object_foreach(t, k, v) {
		int change_key = strcmp(k, "base_branch") == 0 || strcmp(k, "repo_tests") == 0;
		if (one_of(k, keys_all) < 0 && !(change_key && strcmp(out->kind, "change") == 0))
			problem(&p, "unknown key '%s'%s", k, change_key ? " (only for kind change)" : "");
	}
	copy(out->id, sizeof(out->id), need_str(t, "id", &p), "id", &p);
	if (strcmp(out->id, base) != 0)
		problem(&p, "id '%s' is not the folder's name '%s'", out->id, base);
	copy(out->title, sizeof(out->title), need_str(t, "title", &p), "title", &p);
	copy(out->lang, sizeof(out->lang), need_str(t, "lang", &p), "lang", &p);
	li = one_of(out->lang, LANGS);
	if (li < 0) {
		problem(&p, "lang: python, node, go, sql or c, not '%s'", out->lang);
	} else {
		char want[16];
		snprintf(want, sizeof(want), "%s%s-", strcmp(out->kind, "change") == 0 ? "chg-" : "",
			 PREFIX[li]);
		if (strncmp(out->id, want, strlen(want)) != 0)
			problem(&p, "id '%s' does not start with '%s' (lang %s, kind %s)", out->id, want,
				out->lang, out->kind);
	}
	copy(out->size, sizeof(out->size), need_str(t, "size", &p), "size", &p);
	if (one_of(out->size, SIZES) < 0)
		problem(&p, "size: small, medium or large, not '%s'", out->size);
	out->idea = dup_or_fail(need_str(t, "idea", &p), &oom);
	v = json_object_get(t, "answers");
	if (!json_is_array(v)) {
		problem(&p, "answers: a list of strings");
	} else {
		out->answers = calloc(json_array_size(v) + 1, sizeof(char *));
		oom |= !out->answers;
		for (i = 0; out->answers && i < json_array_size(v); i++) {
			const char *a = json_string_value(json_array_get(v, i));
			if (!a || !*a) {
				problem(&p, "answers[%zu]: a non-empty string", i);
				continue;
			}
			out->answers[out->nanswers] = dup_or_fail(a, &oom);
			out->nanswers += out->answers[out->nanswers] != NULL;
		}
	}
	read_toolchain(json_object_get(t, "toolchain"), out, &p);
	read_budget(json_object_get(t, "budget"), out, &p);
	command_block(t, "hidden", &out->hidden_command, &out->hidden_timeout_s, &p, &oom);
	if (strcmp(out->kind, "change") == 0) {
		copy(out->base_branch, sizeof(out->base_branch), need_str(t, "base_branch", &p),
		     "base_branch", &p);
		command_block(t, "repo_tests", &out->repo_tests_command,
			      &out->repo_tests_timeout_s, &p, &oom);
	}
	snprintf(hidden, sizeof(hidden), "%s/hidden", dir);
	if (!folder_with_files(hidden))
		problem(&p, "hidden/: no files");
	if (oom) {
		rc = err_set(ERR_NOMEM, "out of memory");
	} else if (p.n > 0) {
		rc = err_set(ERR_INVALID, "task %s: task.json does not follow eval/README.md: %s%s",
			     base, buf_cstr(&p.b), p.n > 20 ? "; ..." : "");
	}
done:
	json_decref(t);
	buf_free(&p.b);
	return rc;
}

void ev_task_free(ev_task *t)
{
	if (!t)
		return;
	free(t->idea);
	for (size_t i = 0; i < t->nanswers; i++)
		free(t->answers[i]);
	free(t->answers);
	free(t->hidden_command);
	free(t->repo_tests_command);
	memset(t, 0, sizeof(*t));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ev_tasks_load(const char *tasks_dir, ev_task **out, size_t *n)
{
	DIR *d = opendir(tasks_dir);
	struct dirent *e;
	char **names = NULL, path[1200];
	size_t nn = 0, cap = 0;
	ev_task *tasks = NULL;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return err_set(ERR_NOTFOUND, "the eval tasks folder %s cannot be read (run from the "
					     "repository's top folder, or give --tasks DIR)", tasks_dir);
	for (e = readdir(d); e; e = readdir(d)) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tasks_dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (nn == cap) {
			char **more = realloc(names, (cap ? cap * 2 : 64) * sizeof(char *));
			if (!more) {
				rc = err_set(ERR_NOMEM, "out of memory");
				goto done;
			}
			names = more;
			cap = cap ? cap * 2 : 64;
		}
		names[nn] = strdup(e->d_name);
		if (!names[nn]) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		nn++;
	}
	if (nn == 0) {
		rc = err_set(ERR_NOTFOUND, "%s holds no task", tasks_dir);
		goto done;
	}
	qsort(names, nn, sizeof(char *), by_name);
	tasks = calloc(nn, sizeof(ev_task));
	if (!tasks) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < nn; i++) {
		snprintf(path, sizeof(path), "%s/%s", tasks_dir, names[i]);
		rc = ev_task_load(path, &tasks[i]);
		if (rc < 0) {
			ev_tasks_free(tasks, i + 1);
			tasks = NULL;
			goto done;
		}
	}
	*out = tasks;
	*n = nn;
done:
	closedir(d);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	return rc;
}

void ev_tasks_free(ev_task *tasks, size_t n)
{
	for (size_t i = 0; tasks && i < n; i++)
		ev_task_free(&tasks[i]);
	free(tasks);
}

int ev_lang_parse(const char *s, char *out, size_t cap)
{
	static const char *const alias[][2] = {
		{"python", "python"}, {"py", "python"}, {"python3", "python"},
		{"node", "node"},     {"js", "node"},   {"javascript", "node"},
		{"go", "go"},         {"golang", "go"}, {"sql", "sql"},
		{"sqlite", "sql"},    {"c", "c"},
	};

	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
		if (strcmp(s, alias[i][0]) == 0) {
			snprintf(out, cap, "%s", alias[i][1]);
			return 0;
		}
	return err_set(ERR_INVALID, "unknown language '%s': python, node, go, sql or c", s);
}

int ev_read_text(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	buf b;
	char chunk[65536];
	size_t n;
	int rc = 0;

	*out = NULL;
	if (!f)
		return err_set(errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot read %s: %s", path,
			       strerror(errno));
	buf_init(&b, (size_t)64 << 20);
	for (n = fread(chunk, 1, sizeof(chunk), f); n > 0 && rc == 0;
	     n = fread(chunk, 1, sizeof(chunk), f))
		rc = buf_append(&b, chunk, n);
	if (rc == 0 && ferror(f))
		rc = err_set(ERR_IO, "cannot read %s", path);
	else if (rc < 0)
		rc = err_set(rc, "%s is larger than 64 MiB", path);
	fclose(f);
	if (rc == 0 && !b.data)
		rc = buf_puts(&b, "");
	if (rc == 0)
		*out = buf_steal(&b);
	buf_free(&b);
	return rc;
}
