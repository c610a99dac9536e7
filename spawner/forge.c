#include "spawner/forge.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"
#include "core/jsonx.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_VERSION "2022-11-28"
#define MAX_PAGES 10
#define PER_PAGE 100

struct forge {
	forge_repo repo;
	char token[512];
	http_client *http;
};

/* --- where the API is --- */

static int name_ok(const char *s)
{
	if (!*s || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

int forge_repo_from_url(forge_repo *out, const char *remote, const char *api)
{
	const char *p = remote ? remote : "", *host, *path;
	char scheme[8], hostbuf[256], rest[512], *slash, *name;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0 ||
	    strncmp(p, "ssh://", 6) == 0) {
		n = (size_t)(strstr(p, "://") - p);
		snprintf(scheme, sizeof(scheme), "%.*s", (int)n, p);
		host = p + n + 3;
	} else {
		return err_set(ERR_INVALID, "%s is not an http(s):// or ssh:// URL of a repository on "
					    "a forge", remote ? remote : "(none)");
	}
	path = strchr(host, '/');
	if (!path)
		return err_set(ERR_INVALID, "%s names no repository (OWNER/NAME)", remote);
	snprintf(hostbuf, sizeof(hostbuf), "%.*s", (int)(path - host), host);
	if (strchr(hostbuf, '@')) {
		if (strcmp(scheme, "ssh") != 0)
			return err_set(ERR_INVALID, "the remote's URL must not hold credentials");
		memmove(hostbuf, strchr(hostbuf, '@') + 1, strlen(strchr(hostbuf, '@') + 1) + 1);
	}
	snprintf(rest, sizeof(rest), "%s", path + 1);
	n = strlen(rest);
	while (n > 0 && rest[n - 1] == '/')
		rest[--n] = '\0';
	if (n > 4 && strcmp(rest + n - 4, ".git") == 0)
		rest[n - 4] = '\0';
	name = strrchr(rest, '/');
	if (!name)
		return err_set(ERR_INVALID, "%s names no repository (OWNER/NAME)", remote);
	*name++ = '\0';
	slash = strrchr(rest, '/');
	snprintf(out->owner, sizeof(out->owner), "%s", slash ? slash + 1 : rest);
	snprintf(out->name, sizeof(out->name), "%s", name);
	if (!name_ok(out->owner) || !name_ok(out->name))
		return err_set(ERR_INVALID, "%s: the owner and name of a repository may hold only "
					    "letters, digits, '.', '_' and '-'", remote);
	if (api && *api) {
		snprintf(out->api, sizeof(out->api), "%s", api);
	} else {
		char h[256];
		snprintf(h, sizeof(h), "%s", hostbuf);
		if (strchr(h, ':') && strcmp(scheme, "ssh") == 0)
			*strchr(h, ':') = '\0'; /* an ssh port says nothing of the API's */
		if (strcmp(h, "github.com") == 0 || strcmp(h, "www.github.com") == 0)
			snprintf(out->api, sizeof(out->api), "https://api.github.com");
		else
			snprintf(out->api, sizeof(out->api), "%s://%s/api/v3",
				 strcmp(scheme, "http") == 0 ? "http" : "https", h);
	}
	n = strlen(out->api);
	while (n > 0 && out->api[n - 1] == '/')
		out->api[--n] = '\0';
	if (strncmp(out->api, "https://", 8) != 0 && strncmp(out->api, "http://", 7) != 0)
		return err_set(ERR_INVALID, "the forge's API must be an http(s):// URL (ORCH_FORGE_API, "
					    "got '%s')", out->api);
	return 0;
}

/* --- the client --- */

int forge_new(forge **out, const forge_repo *repo, const char *secret)
{
	const char *colon = secret ? strchr(secret, ':') : NULL;
	const char *token = colon ? colon + 1 : secret;
	forge *f;
	int rc;

	*out = NULL;
	if (!token || !*token)
		return err_set(ERR_AUTH, "the forge needs a token: grant the project a git handle whose "
					 "secret is a token (or user:token)");
	f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(ERR_NOMEM, "out of memory");
	f->repo = *repo;
	snprintf(f->token, sizeof(f->token), "%s", token);
	f->token[strcspn(f->token, "\r\n")] = '\0';
	rc = http_client_new(&f->http);
	if (rc < 0) {
		forge_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void forge_free(forge *f)
{
	if (!f)
		return;
	http_client_free(f->http);
	sodium_memzero(f->token, sizeof(f->token));
	free(f);
}

/* Appends `s` percent-encoded (a query value or a path segment). */
static void put_escaped(buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("-._~", c))
			buf_putc(b, (char)c);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* GitHub's reasons from an error body: the message and each error's. */
static void reasons(const buf *body, char *out, size_t cap)
{
	json_t *j = json_loads(buf_cstr(body), 0, NULL), *e;
	size_t i, used;

	snprintf(out, cap, "%s", json_is_object(j) ? jx_str(j, "message") : "");
	json_array_foreach(json_object_get(j, "errors"), i, e) {
		used = strlen(out);
		if (json_is_string(e))
			snprintf(out + used, cap - used, "%s%s", used ? ": " : "", json_string_value(e));
		else if (*jx_str(e, "message"))
			snprintf(out + used, cap - used, "%s%s", used ? ": " : "", jx_str(e, "message"));
		else if (*jx_str(e, "field"))
			snprintf(out + used, cap - used, "%s%s %s", used ? ": " : "", jx_str(e, "field"),
				 jx_str(e, "code"));
	}
	json_decref(j);
	if (!out[0])
		snprintf(out, cap, "no reason given");
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* The error of an answer other than 2xx, with what to do. */
static int api_error(const forge *f, const http_response *r, const char *what)
{
	char why[600];

	reasons(&r->body, why, sizeof(why));
	if (r->status == 401)
		return err_set(ERR_AUTH, "%s: the forge refused the token (401 %s): store a valid token "
					 "with access to %s/%s in the secret behind the project's git "
					 "handle (orchestrator secrets set NAME)",
			       what, why, f->repo.owner, f->repo.name);
	if (r->status == 429 || (r->status == 403 && (strstr(why, "rate limit") ||
						       r->retry_after_ms >= 0)))
		return err_set(ERR_BUSY, "%s: the forge's rate limit is reached (%ld %s); it is tried "
					 "again later%s",
			       what, r->status, why, r->retry_after_ms >= 0 ? " (after Retry-After)" : "");
	if (r->status == 403)
		return err_set(ERR_DENIED, "%s: the token may not do this (403 %s): give it read and "
					   "write access to the pull requests and contents of %s/%s",
			       what, why, f->repo.owner, f->repo.name);
	if (r->status == 404)
		return err_set(ERR_NOTFOUND, "%s: %s/%s (or what was asked for in it) does not exist "
					     "on the forge, or the token cannot see it (404 %s)",
			       what, f->repo.owner, f->repo.name, why);
	if (r->status == 400 || r->status == 422)
		return err_set(ERR_INVALID, "%s: the forge refused the request (%ld %s)", what,
			       r->status, why);
	return err_set(ERR_HTTP, "%s: the forge answered %ld (%s); it is tried again later", what,
		       r->status, why);
}

/* One request to `path` (under the API, from "/"), `body` sent as JSON
 * when not NULL; the answer's JSON into *out (may be NULL; json null when
 * the answer has no body). */
static int call(forge *f, const char *method, const char *path, const json_t *body,
		const char *what, json_t **out)
{
	char auth[600], *text = NULL;
	const char *hdrs[] = {auth, "Accept: application/vnd.github+json",
			      "X-GitHub-Api-Version: " API_VERSION, "User-Agent: " FORGE_USER_AGENT,
			      "Content-Type: application/json", NULL};
	http_request rq;
	http_response resp;
	buf url;
	int rc;

	if (out)
		*out = NULL;
	buf_init(&url, 0);
	buf_printf(&url, "%s%s", f->repo.api, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->token);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text) {
			buf_free(&url);
			return err_set(ERR_NOMEM, "out of memory");
		}
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = buf_cstr(&url);
	rq.headers = hdrs;
	rq.body = text;
	rq.body_len = text ? strlen(text) : 0;
	rq.timeout_ms = 30000;
	rq.max_response = 8 * 1024 * 1024;
	rc = http_do(f->http, &rq, &resp);
	sodium_memzero(auth, sizeof(auth));
	if (rc < 0) {
		rc = err_wrap("%s: the forge's API cannot be reached", what);
	} else if (resp.status < 200 || resp.status > 299) {
		rc = api_error(f, &resp, what);
	} else if (out) {
		json_error_t je;
		*out = resp.body.len ? json_loads(buf_cstr(&resp.body), 0, &je) : json_null();
		if (!*out)
			rc = err_set(ERR_PARSE, "%s: the forge's answer is not JSON: %s", what, je.text);
	}
	http_response_free(&resp);
	free(text);
	buf_free(&url);
	return rc;
}

/* "/repos/OWNER/NAME" + the rest. */
static void repo_path(const forge *f, buf *b, const char *rest)
{
	buf_printf(b, "/repos/%s/%s%s", f->repo.owner, f->repo.name, rest);
}

static void copy_str(char *dst, size_t cap, const json_t *o, const char *k)
{
	snprintf(dst, cap, "%s", jx_str(o, k));
}

static int pr_read(const json_t *j, forge_pr *out)
{
	const json_t *head = json_object_get(j, "head");

	memset(out, 0, sizeof(*out));
	if (!json_is_object(j) || !json_is_integer(json_object_get(j, "number")))
		return err_set(ERR_PARSE, "the forge's answer is not a pull request");
	out->number = json_integer_value(json_object_get(j, "number"));
	copy_str(out->html_url, sizeof(out->html_url), j, "html_url");
	copy_str(out->state, sizeof(out->state), j, "state");
	out->merged = json_is_true(json_object_get(j, "merged")) ||
		      json_is_string(json_object_get(j, "merged_at"));
	copy_str(out->head, sizeof(out->head), head, "ref");
	copy_str(out->head_sha, sizeof(out->head_sha), head, "sha");
	copy_str(out->base, sizeof(out->base), json_object_get(j, "base"), "ref");
	return 0;
}

int forge_pr_find_open(forge *f, const char *head, forge_pr *out)
{
	json_t *list = NULL;
	buf path;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&path, 0);
	repo_path(f, &path, "/pulls?state=open&per_page=100&head=");
	put_escaped(&path, f->repo.owner);
	buf_puts(&path, ":");
	put_escaped(&path, head);
	rc = call(f, "GET", buf_cstr(&path), NULL, "listing the open pull requests", &list);
	buf_free(&path);
	if (rc < 0)
		return rc;
	rc = err_set(ERR_NOTFOUND, "no open pull request has the head %s", head);
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *p = json_array_get(list, i);
		/* a forge that ignores the filter (Gitea) lists them all */
		if (strcmp(jx_str(json_object_get(p, "head"), "ref"), head) == 0) {
			rc = pr_read(p, out);
			break;
		}
	}
	json_decref(list);
	return rc;
}

int forge_pr_create(forge *f, const char *head, const char *base, const char *title,
		    const char *body, forge_pr *out)
{
	json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "title", title, "head", head, "base", base,
				"body", body ? body : ""), *res = NULL;
	buf path;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!req)
		return err_set(ERR_NOMEM, "out of memory");
	buf_init(&path, 0);
	repo_path(f, &path, "/pulls");
	rc = call(f, "POST", buf_cstr(&path), req, "opening the pull request", &res);
	if (rc == 0)
		rc = pr_read(res, out);
	buf_free(&path);
	json_decref(req);
	json_decref(res);
	return rc;
}

int forge_pr_edit(forge *f, int64_t number, const char *title, const char *body, forge_pr *out)
{
	json_t *req = json_object(), *res = NULL;
	buf path;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!req)
		return err_set(ERR_NOMEM, "out of memory");
	if (title)
		json_object_set_new(req, "title", json_string(title));
	if (body)
		json_object_set_new(req, "body", json_string(body));
	buf_init(&path, 0);
	buf_printf(&path, "/repos/%s/%s/pulls/%lld", f->repo.owner, f->repo.name, (long long)number);
	rc = call(f, "PATCH", buf_cstr(&path), req, "updating the pull request", &res);
	if (rc == 0)
		rc = pr_read(res, out);
	buf_free(&path);
	json_decref(req);
	json_decref(res);
	return rc;
}

int forge_pr_get(forge *f, int64_t number, forge_pr *out)
{
	json_t *res = NULL;
	buf path;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&path, 0);
	buf_printf(&path, "/repos/%s/%s/pulls/%lld", f->repo.owner, f->repo.name, (long long)number);
	rc = call(f, "GET", buf_cstr(&path), NULL, "reading the pull request", &res);
	if (rc == 0)
		rc = pr_read(res, out);
	buf_free(&path);
	json_decref(res);
	return rc;
}

int forge_login(forge *f, char *out, size_t cap)
{
	json_t *res = NULL;
	int rc = call(f, "GET", "/user", NULL, "reading the token's user", &res);

	out[0] = '\0';
	if (rc == 0 && !*jx_str(res, "login"))
		rc = err_set(ERR_PARSE, "the forge's /user has no login");
	if (rc == 0)
		snprintf(out, cap, "%s", jx_str(res, "login"));
	json_decref(res);
	return rc;
}

/* --- what people wrote --- */

static int note_add(forge_notes *out, forge_note_kind kind, const json_t *o)
{
	forge_note *v = realloc(out->v, (out->n + 1) * sizeof(*v)), *x;
	const char *body = jx_str(o, "body");

	if (!v)
		return err_set(ERR_NOMEM, "out of memory");
	out->v = v;
	x = &v[out->n];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->id = json_integer_value(json_object_get(o, "id"));
	copy_str(x->user, sizeof(x->user), json_object_get(o, "user"), "login");
	copy_str(x->state, sizeof(x->state), o, "state");
	copy_str(x->path, sizeof(x->path), o, "path");
	x->line = (int)json_integer_value(json_object_get(o, "line"));
	copy_str(x->url, sizeof(x->url), o, "html_url");
	x->body = strdup(body);
	if (!x->body)
		return err_set(ERR_NOMEM, "out of memory");
	out->n++;
	return 0;
}

/* Every page of the list at `rest` (under the repository), each item with
 * an id above `after` added as a note of `kind`. */
static int notes_of(forge *f, forge_note_kind kind, const char *rest, int64_t after,
		    forge_notes *out)
{
	int rc = 0;

	for (int page = 1; rc == 0 && page <= MAX_PAGES; page++) {
		json_t *list = NULL, *o;
		size_t i;
		buf path;

		buf_init(&path, 0);
		repo_path(f, &path, rest);
		buf_printf(&path, "%sper_page=%d&page=%d", strchr(rest, '?') ? "&" : "?", PER_PAGE,
			   page);
		rc = call(f, "GET", buf_cstr(&path), NULL, "reading the pull request's comments",
			  &list);
		buf_free(&path);
		json_array_foreach(rc == 0 ? list : NULL, i, o) {
			const char *state = jx_str(o, "state");
			if (json_integer_value(json_object_get(o, "id")) <= after)
				continue;
			if (kind == FORGE_REVIEW && (strcmp(state, "PENDING") == 0 ||
						     strcmp(state, "DISMISSED") == 0))
				continue;
			if (rc == 0)
				rc = note_add(out, kind, o);
		}
		if (rc == 0 && json_array_size(list) < PER_PAGE)
			page = MAX_PAGES;
		json_decref(list);
	}
	return rc;
}

int forge_notes_since(forge *f, int64_t number, const int64_t after[FORGE_NOTE_KINDS],
		      forge_notes *out)
{
	char rest[3][96];
	int rc = 0;

	out->v = NULL;
	out->n = 0;
	snprintf(rest[FORGE_ISSUE_COMMENT], sizeof(rest[0]), "/issues/%lld/comments",
		 (long long)number);
	snprintf(rest[FORGE_REVIEW_COMMENT], sizeof(rest[0]), "/pulls/%lld/comments",
		 (long long)number);
	snprintf(rest[FORGE_REVIEW], sizeof(rest[0]), "/pulls/%lld/reviews", (long long)number);
	for (int k = 0; rc == 0 && k < FORGE_NOTE_KINDS; k++)
		rc = notes_of(f, (forge_note_kind)k, rest[k], after[k], out);
	return rc;
}

void forge_notes_free(forge_notes *n)
{
	for (size_t i = 0; n && i < n->n; i++)
		free(n->v[i].body);
	if (n) {
		free(n->v);
		n->v = NULL;
		n->n = 0;
	}
}

/* --- what CI reported --- */

static int check_add(forge_check **v, size_t *n, const char *context, const char *state,
		     const char *description, const char *url)
{
	forge_check *g = realloc(*v, (*n + 1) * sizeof(**v));

	if (!g)
		return err_set(ERR_NOMEM, "out of memory");
	*v = g;
	memset(&g[*n], 0, sizeof(g[*n]));
	snprintf(g[*n].context, sizeof(g[*n].context), "%s", context);
	snprintf(g[*n].state, sizeof(g[*n].state), "%s", state);
	snprintf(g[*n].description, sizeof(g[*n].description), "%s", description);
	snprintf(g[*n].url, sizeof(g[*n].url), "%s", url);
	(*n)++;
	return 0;
}

static int failed_conclusion(const char *c)
{
	return strcmp(c, "failure") == 0 || strcmp(c, "timed_out") == 0 ||
	       strcmp(c, "cancelled") == 0 || strcmp(c, "action_required") == 0;
}

int forge_failures(forge *f, const char *sha, forge_check **out, size_t *n)
{
	json_t *combined = NULL, *runs = NULL, *o;
	buf path;
	size_t i;
	int rc;

	*out = NULL;
	*n = 0;
	buf_init(&path, 0);
	repo_path(f, &path, "/commits/");
	put_escaped(&path, sha);
	buf_puts(&path, "/status?per_page=100");
	rc = call(f, "GET", buf_cstr(&path), NULL, "reading the commit's statuses", &combined);
	json_array_foreach(rc == 0 ? json_object_get(combined, "statuses") : NULL, i, o) {
		const char *state = jx_str(o, "state");
		if (rc == 0 && (strcmp(state, "failure") == 0 || strcmp(state, "error") == 0))
			rc = check_add(out, n, jx_str(o, "context"), state, jx_str(o, "description"),
				       jx_str(o, "target_url"));
	}
	buf_reset(&path);
	repo_path(f, &path, "/commits/");
	put_escaped(&path, sha);
	buf_puts(&path, "/check-runs?per_page=100");
	if (rc == 0) {
		rc = call(f, "GET", buf_cstr(&path), NULL, "reading the commit's check runs", &runs);
		if (rc == ERR_NOTFOUND) {
			err_clear(); /* a forge without check runs */
			rc = 0;
		}
	}
	json_array_foreach(rc == 0 ? json_object_get(runs, "check_runs") : NULL, i, o) {
		const json_t *output = json_object_get(o, "output");
		const char *concl = jx_str(o, "conclusion");
		if (rc == 0 && strcmp(jx_str(o, "status"), "completed") == 0 &&
		    failed_conclusion(concl))
			rc = check_add(out, n, jx_str(o, "name"), concl,
				       *jx_str(output, "summary") ? jx_str(output, "summary")
								  : jx_str(output, "title"),
				       jx_str(o, "details_url"));
	}
	json_decref(combined);
	json_decref(runs);
	buf_free(&path);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
