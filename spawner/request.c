#include "spawner/request.h"
#include "core/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/utf8.h"
#include "secrets/resource.h"
#include "spawner/egress.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KNOWN[] = {
	"id",      "task",      "project", "repo",  "prompt", "base",   "test_command",
	"handles", "repo_secret", "thread_id", "run_id", "user", "role", "limits", "meta",
	"mode",    "target",    "mirror",  "min_tests", "setup_command", "network",
	"allowed_failures", "allowed_failing", "pr", NULL,
};

static const char *const KNOWN_PR[] = {"head", "base", "title", "body", NULL};

static const char *const MODES[] = {"work", "merge", "publish", "import", "test", "pr", NULL};

static const char *const KNOWN_NETWORK[] = {"policy", "language", "hosts", "phases", NULL};

static int known(const char *const *list, const char *key)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], key) == 0)
			return 1;
	return 0;
}

int spw_id_check(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > SPW_ID_MAX)
		return err_set(ERR_INVALID, "\"id\" must be 1 to %d characters", SPW_ID_MAX);
	if (!isalnum((unsigned char)id[0]))
		return err_set(ERR_INVALID, "\"id\" must start with a letter or digit");
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i]))
			return err_set(ERR_INVALID, "\"id\" may hold only letters, digits and . _ : -");
	return 0;
}

static int task_check(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > SPW_TASK_MAX)
		return err_set(ERR_INVALID, "\"task\" must be 1 to %d characters", SPW_TASK_MAX);
	if (!isalnum((unsigned char)t[0]))
		return err_set(ERR_INVALID, "\"task\" must start with a letter or digit");
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("._-", t[i]))
			return err_set(ERR_INVALID,
				       "\"task\" may hold only letters, digits and . _ - (it names "
				       "the branch task/<task>)");
	if (strstr(t, "..") || (n >= 5 && strcmp(t + n - 5, ".lock") == 0) || t[n - 1] == '.')
		return err_set(ERR_INVALID, "\"task\" is not usable in a branch name");
	return 0;
}

/* Copies a required or optional string field into out[cap]. */
static int get_str(const json_t *j, const char *key, int required, char *out, size_t cap)
{
	const json_t *v = json_object_get(j, key);

	out[0] = '\0';
	if (!v || json_is_null(v)) {
		if (required)
			return err_set(ERR_INVALID, "\"%s\" is missing", key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(ERR_INVALID, "\"%s\" must be a string", key);
	if (json_string_length(v) >= cap)
		return err_set(ERR_INVALID, "\"%s\" is longer than %zu characters", key, cap - 1);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(ERR_INVALID, "\"%s\" holds a NUL character", key);
	if (required && json_string_length(v) == 0)
		return err_set(ERR_INVALID, "\"%s\" is empty", key);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int get_id(const json_t *j, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(j, key);

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return err_set(ERR_INVALID, "\"%s\" must be a positive integer", key);
	*out = (int64_t)json_integer_value(v);
	return 0;
}

static int get_text(const json_t *j, const char *key, int required, size_t max, char **out)
{
	const json_t *v = json_object_get(j, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return err_set(ERR_INVALID, "\"%s\" is missing", key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(ERR_INVALID, "\"%s\" must be a string", key);
	if (json_string_length(v) > max)
		return err_set(ERR_INVALID, "\"%s\" is longer than %zu bytes", key, max);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(ERR_INVALID, "\"%s\" holds a NUL character", key);
	if (required && json_string_length(v) == 0)
		return err_set(ERR_INVALID, "\"%s\" is empty", key);
	*out = strdup(json_string_value(v));
	if (!*out)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

static int repo_check(const char *repo)
{
	static const char *const schemes[] = {"https://", "http://", "ssh://", NULL};

	if (repo[0] == '/') {
		if (strstr(repo, "/../") || strstr(repo, "/./") ||
		    (strlen(repo) >= 3 && strcmp(repo + strlen(repo) - 3, "/..") == 0))
			return err_set(ERR_INVALID, "\"repo\" must be a plain absolute path (no . or ..)");
		return 0;
	}
	for (size_t i = 0; schemes[i]; i++)
		if (strncmp(repo, schemes[i], strlen(schemes[i])) == 0) {
			const char *host = repo + strlen(schemes[i]);
			const char *at = strchr(host, '@');
			const char *slash = strchr(host, '/');

			if (at && (!slash || at < slash) && strncmp(repo, "ssh://", 6) != 0)
				return err_set(ERR_INVALID,
					       "\"repo\" must not hold credentials: grant them with "
					       "\"repo_secret\" (a resource handle of kind git)");
			return 0;
		}
	return err_set(ERR_INVALID, "\"repo\" must be an absolute path or an http(s):// or "
				    "ssh:// URL");
}

void spw_request_free(spw_request *r)
{
	if (!r)
		return;
	free(r->prompt);
	free(r->test_command);
	free(r->setup_command);
	free(r->pr.body);
	free(r->allowed_failing);
	free(r->net.hosts);
	for (size_t i = 0; i < r->nhandles; i++)
		free(r->handles[i]);
	free(r->handles);
	json_decref(r->meta);
	memset(r, 0, sizeof(*r));
}

/* The lines of s as a JSON array of strings. */
static json_t *spw_lines_of(const char *s)
{
	json_t *a = json_array();

	while (a && *s) {
		size_t n = strcspn(s, "\n");
		if (n)
			json_array_append_new(a, json_stringn(s, n));
		s += n;
		if (*s)
			s++;
	}
	return a;
}

int spw_phases_parse(const char *list, unsigned *out)
{
	const char *s = list;

	*out = 0;
	while (*s) {
		size_t n = strcspn(s, " ,\t");
		if (n == 5 && strncmp(s, "setup", 5) == 0)
			*out |= SPW_NET_SETUP;
		else if (n == 5 && strncmp(s, "agent", 5) == 0)
			*out |= SPW_NET_AGENT;
		else if (n == 4 && strncmp(s, "test", 4) == 0)
			*out |= SPW_NET_TEST;
		else if (n == 4 && strncmp(s, "none", 4) == 0)
			;
		else if (n)
			return err_set(ERR_INVALID, "'%.*s' is not a phase (setup, agent, test)", (int)n,
				       s);
		s += n;
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
	}
	return 0;
}

/* "network": the object, checked whole (patterns too) at the edge. */
static int parse_network(const json_t *n, spw_network *out)
{
	const char *key;
	const json_t *v;
	int rc;

	if (!n || json_is_null(n))
		return 0;
	out->given = 1;
	if (json_is_string(n)) { /* "none" or "registries" with the defaults */
		snprintf(out->policy, sizeof(out->policy), "%s", json_string_value(n));
		goto check;
	}
	if (!json_is_object(n))
		return err_set(ERR_INVALID, "\"network\" must be an object {\"policy\", \"language\", "
					    "\"hosts\", \"phases\"}");
	json_object_foreach((json_t *)n, key, v) {
		(void)v;
		if (!known(KNOWN_NETWORK, key))
			return err_set(ERR_INVALID, "network.%s is not known (policy, language, hosts, "
						    "phases)", key);
	}
	rc = get_str(n, "policy", 1, out->policy, sizeof(out->policy));
	if (rc < 0)
		return err_wrap("network.policy");
	rc = get_str(n, "language", 0, out->language, sizeof(out->language));
	if (rc < 0)
		return err_wrap("network.language");
	for (char *c = out->language; *c; c++) {
		*c = (char)tolower((unsigned char)*c);
		if (!isalnum((unsigned char)*c) && !strchr("+#._-", *c))
			return err_set(ERR_INVALID, "network.language may hold only letters, digits "
						    "and + # . _ -");
	}
	v = json_object_get(n, "hosts");
	if (v && !json_is_null(v)) {
		buf b;
		size_t i;
		const json_t *h;
		egr_policy *pol = NULL;

		if (!json_is_array(v) || json_array_size(v) > 256)
			return err_set(ERR_INVALID, "network.hosts must be an array of at most 256 "
						    "host patterns");
		buf_init(&b, 0);
		rc = egr_policy_new(&pol);
		json_array_foreach(v, i, h) {
			if (rc < 0)
				break;
			if (!json_is_string(h)) {
				rc = err_set(ERR_INVALID, "network.hosts[%zu] must be a string", i);
				break;
			}
			if (egr_policy_add(pol, json_string_value(h)) < 0) {
				rc = err_wrap("network.hosts[%zu]", i);
				break;
			}
			rc = buf_printf(&b, "%s\n", json_string_value(h));
		}
		egr_policy_free(pol);
		if (rc < 0) {
			buf_free(&b);
			return rc;
		}
		out->hosts = buf_steal(&b);
	}
	v = json_object_get(n, "phases");
	if (v && !json_is_null(v)) {
		size_t i;
		const json_t *ph;
		unsigned bits;

		if (!json_is_array(v))
			return err_set(ERR_INVALID, "network.phases must be an array of \"setup\", "
						    "\"agent\", \"test\"");
		json_array_foreach(v, i, ph) {
			if (!json_is_string(ph) || spw_phases_parse(json_string_value(ph), &bits) < 0 ||
			    bits == 0)
				return err_set(ERR_INVALID, "network.phases[%zu] must be \"setup\", "
							    "\"agent\" or \"test\"", i);
			out->phases |= bits;
		}
	}
check:
	if (strcmp(out->policy, "none") != 0 && strcmp(out->policy, "registries") != 0 &&
	    strcmp(out->policy, "hosts") != 0)
		return err_set(ERR_INVALID, "network.policy must be \"none\", \"registries\" or "
					    "\"hosts\"");
	if (strcmp(out->policy, "hosts") == 0 && !out->hosts)
		return err_set(ERR_INVALID, "network.policy \"hosts\" needs network.hosts");
	if (strcmp(out->policy, "hosts") != 0 && out->hosts)
		return err_set(ERR_INVALID, "network.hosts goes with network.policy \"hosts\"");
	return 0;
}

static int branch_name_check(const char *b)
{
	return !b[0] || b[0] == '-' || strstr(b, "..") || strpbrk(b, " ~^:?*[\\") ? ERR_INVALID : 0;
}

/* "allowed_failing": an array of at most 1000 test names (no line breaks),
 * into *out as lines. */
static int parse_names(const json_t *a, char **out)
{
	const json_t *v;
	size_t i;
	buf b;

	*out = NULL;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 1000)
		return err_set(ERR_INVALID, "\"allowed_failing\" must be an array of at most 1000 "
					    "test names");
	buf_init(&b, 1024 * 1024);
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		if (!s || !*s || strpbrk(s, "\r\n") || strlen(s) >= 512) {
			buf_free(&b);
			return err_set(ERR_INVALID, "allowed_failing[%zu] must be a test's name", i);
		}
		buf_printf(&b, "%s\n", s);
	}
	*out = buf_steal(&b);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

/* "pr": {"head", "base", "title", "body"}: mode "pr" needs it, no other
 * mode takes it. */
static int parse_pr(const json_t *p, spw_request *out)
{
	const char *key;
	const json_t *v;
	int rc;

	if (!p || json_is_null(p))
		return strcmp(out->mode, "pr") == 0
			       ? err_set(ERR_INVALID, "\"pr\" is missing (mode pr opens a pull request)")
			       : 0;
	if (strcmp(out->mode, "pr") != 0)
		return err_set(ERR_INVALID, "\"pr\" goes with mode \"pr\"");
	if (!json_is_object(p))
		return err_set(ERR_INVALID, "\"pr\" must be an object {head, base, title, body}");
	json_object_foreach((json_t *)p, key, v) {
		(void)v;
		if (!known(KNOWN_PR, key))
			return err_set(ERR_INVALID, "\"pr.%s\" is not a field of \"pr\"", key);
	}
	rc = get_str(p, "head", 1, out->pr.head, sizeof(out->pr.head));
	if (rc == 0)
		rc = get_str(p, "base", 1, out->pr.base, sizeof(out->pr.base));
	if (rc == 0)
		rc = get_str(p, "title", 1, out->pr.title, sizeof(out->pr.title));
	if (rc == 0)
		rc = get_text(p, "body", 0, SPW_PROMPT_MAX, &out->pr.body);
	if (rc < 0)
		return err_wrap("\"pr\"");
	if (branch_name_check(out->pr.head) < 0 || branch_name_check(out->pr.base) < 0)
		return err_set(ERR_INVALID, "\"pr.head\" and \"pr.base\" must be branch names");
	return 0;
}

/* The fields that address a refusal (id, thread_id, run_id), then the
 * check that every field is known. */
static int req_address(const json_t *j, spw_request *out)
{
	const char *key;
	const json_t *v;
	int rc;

	rc = get_str(j, "id", 1, out->id, sizeof(out->id));
	if (rc < 0)
		return rc;
	rc = spw_id_check(out->id);
	if (rc < 0) {
		out->id[0] = '\0';
		return rc;
	}
	rc = get_id(j, "thread_id", &out->thread_id);
	if (rc == 0)
		rc = get_id(j, "run_id", &out->run_id);
	if (rc < 0)
		return rc;
	json_object_foreach((json_t *)j, key, v) {
		(void)v;
		if (!known(KNOWN, key))
			return err_set(ERR_INVALID, "\"%s\" is not a field of a spawn request (see "
						    "README: Spawner and workers)", key);
	}
	return 0;
}

/* A branch name as "target" and "base" take it: "" (none) is fine. */
static int ref_ok(const char *s)
{
	return !s[0] || (s[0] != '-' && !strstr(s, "..") && !strpbrk(s, " ~^:?*[\\"));
}

/* What the request works on: mode, task, project, repo, prompt, target and
 * mirror. */
static int req_subject(const json_t *j, spw_request *out)
{
	int rc;

	rc = get_str(j, "mode", 0, out->mode, sizeof(out->mode));
	if (rc < 0)
		return rc;
	if (!out->mode[0])
		snprintf(out->mode, sizeof(out->mode), "work");
	if (!known(MODES, out->mode))
		return err_set(ERR_INVALID, "\"mode\" must be \"work\", \"merge\", \"publish\", "
					    "\"import\", \"test\" or \"pr\"");
	rc = get_str(j, "task", 1, out->task, sizeof(out->task));
	if (rc == 0)
		rc = task_check(out->task);
	if (rc == 0)
		rc = get_str(j, "project", 1, out->project, SEC_SCOPE_MAX + 1);
	if (rc == 0)
		rc = get_str(j, "repo", 1, out->repo, sizeof(out->repo));
	if (rc == 0)
		rc = repo_check(out->repo);
	if (rc == 0)
		rc = get_text(j, "prompt", strcmp(out->mode, "work") == 0, SPW_PROMPT_MAX,
			      &out->prompt);
	if (rc == 0)
		rc = get_str(j, "target", 0, out->target, sizeof(out->target));
	if (rc < 0)
		return rc;
	if (!ref_ok(out->target))
		return err_set(ERR_INVALID, "\"target\" must be a branch name");
	rc = get_str(j, "mirror", 0, out->mirror, sizeof(out->mirror));
	if (rc < 0)
		return rc;
	if (out->mirror[0] && repo_check(out->mirror) < 0)
		return err_set(ERR_INVALID, "\"mirror\": %s", err_last());
	if ((strcmp(out->mode, "publish") == 0 || strcmp(out->mode, "import") == 0 ||
	     strcmp(out->mode, "pr") == 0) && !out->mirror[0])
		return err_set(ERR_INVALID, "\"mirror\" is missing (mode %s pushes to it)", out->mode);
	return 0;
}

/* An optional integer from 0 into *out (left as it is when absent). */
static int get_count(const json_t *j, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(j, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000000)
		return err_set(ERR_INVALID, "\"%s\" must be an integer from 0", key);
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* A command ("test_command", "setup_command"): an empty one is none. */
static int get_command(const json_t *j, const char *key, char **out)
{
	int rc = get_text(j, key, 0, 4096, out);

	if (rc == 0 && *out && !(*out)[0]) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* What is checked and how: min_tests, allowed_failures, allowed_failing,
 * pr, base, test_command and setup_command. */
static int req_checks(const json_t *j, spw_request *out)
{
	int64_t allowed = 0;
	int rc;

	rc = get_count(j, "min_tests", &out->min_tests);
	if (rc == 0)
		rc = get_count(j, "allowed_failures", &allowed);
	out->allowed_failures = (int)allowed;
	if (rc == 0)
		rc = parse_names(json_object_get(j, "allowed_failing"), &out->allowed_failing);
	if (rc == 0)
		rc = parse_pr(json_object_get(j, "pr"), out);
	if (rc == 0)
		rc = get_str(j, "base", 0, out->base, sizeof(out->base));
	if (rc < 0)
		return rc;
	if (!ref_ok(out->base))
		return err_set(ERR_INVALID, "\"base\" must be a branch, tag or commit id");
	rc = get_command(j, "test_command", &out->test_command);
	if (rc < 0)
		return rc;
	if (strcmp(out->mode, "test") == 0 && !out->test_command)
		return err_set(ERR_INVALID, "\"test_command\" is missing (mode test runs it)");
	return get_command(j, "setup_command", &out->setup_command);
}

/* "handles": the resource handles granted to the sandbox. */
static int req_handles(const json_t *h, spw_request *out)
{
	const json_t *v;
	size_t i;

	if (!h || json_is_null(h))
		return 0;
	if (!json_is_array(h))
		return err_set(ERR_INVALID, "\"handles\" must be an array of resource handles");
	if (json_array_size(h) > SPW_HANDLES_MAX)
		return err_set(ERR_INVALID, "\"handles\" holds more than %d handles", SPW_HANDLES_MAX);
	if (json_array_size(h)) {
		out->handles = calloc(json_array_size(h), sizeof(char *));
		if (!out->handles)
			return err_set(ERR_NOMEM, "out of memory");
	}
	json_array_foreach(h, i, v) {
		if (!json_is_string(v))
			return err_set(ERR_INVALID, "handles[%zu] must be a string", i);
		if (sec_handle_check(json_string_value(v)) < 0)
			return err_set(ERR_INVALID, "handles[%zu]: %s", i, err_last());
		out->handles[i] = strdup(json_string_value(v));
		if (!out->handles[i])
			return err_set(ERR_NOMEM, "out of memory");
		out->nhandles = i + 1;
	}
	return 0;
}

/* "meta": an object of at most 4 KiB, carried to the result. */
static int req_meta(const json_t *v, spw_request *out)
{
	char *s;
	size_t n;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return err_set(ERR_INVALID, "\"meta\" must be an object");
	s = json_dumps(v, JSON_COMPACT);
	n = s ? strlen(s) : 0;
	free(s);
	if (n > 4096)
		return err_set(ERR_INVALID, "\"meta\" is larger than 4 KiB");
	out->meta = json_deep_copy(v);
	return 0;
}

int spw_request_from_json(const json_t *j, spw_request *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(j))
		return err_set(ERR_INVALID, "a spawn request must be a JSON object");
	rc = req_address(j, out);
	if (rc == 0)
		rc = req_subject(j, out);
	if (rc == 0)
		rc = req_checks(j, out);
	if (rc == 0)
		rc = parse_network(json_object_get(j, "network"), &out->net);
	if (rc == 0)
		rc = get_str(j, "repo_secret", 0, out->repo_secret, sizeof(out->repo_secret));
	if (rc < 0)
		return rc;
	if (out->repo_secret[0] && sec_handle_check(out->repo_secret) < 0)
		return err_set(ERR_INVALID, "\"repo_secret\": %s", err_last());
	rc = get_str(j, "user", 0, out->user, sizeof(out->user));
	if (rc == 0)
		rc = get_str(j, "role", 0, out->role, sizeof(out->role));
	if (rc == 0)
		rc = req_handles(json_object_get(j, "handles"), out);
	if (rc == 0)
		rc = spw_limits_from_json(json_object_get(j, "limits"), &out->limits);
	if (rc == 0)
		rc = req_meta(json_object_get(j, "meta"), out);
	return rc;
}

int spw_request_is_git_only(const spw_request *r)
{
	return strcmp(r->mode, "work") != 0;
}

int spw_request_parse(const char *text, size_t len, spw_request *out)
{
	json_error_t jerr;
	json_t *j;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!text || len == 0)
		return err_set(ERR_INVALID, "the spawn request is empty");
	if (len > SPW_PROMPT_MAX + 64 * 1024)
		return err_set(ERR_INVALID, "the spawn request is larger than %d bytes",
			       SPW_PROMPT_MAX + 64 * 1024);
	/* from any producer: an ill-formed byte costs one character (U+FFFD), and
	 * the request is then checked field by field like any other */
	j = jx_loadb_lenient(text, len, JSON_REJECT_DUPLICATES, &jerr, NULL);
	if (!j) {
		char why[200];
		utf8_excerpt(why, sizeof(why), jerr.text, strlen(jerr.text), sizeof(why));
		return err_set(ERR_INVALID, "the spawn request is not JSON: %s (line %d)", why,
			       jerr.line);
	}
	rc = spw_request_from_json(j, out);
	json_decref(j);
	return rc;
}

json_t *spw_request_json(const spw_request *r)
{
	json_t *j = json_object(), *h = json_array(), *l = spw_limits_json(&r->limits);

	if (!j || !h || !l) {
		json_decref(j);
		json_decref(h);
		json_decref(l);
		return NULL;
	}
	json_object_set_new(j, "id", json_string(r->id));
	if (r->mode[0] && strcmp(r->mode, "work") != 0)
		json_object_set_new(j, "mode", json_string(r->mode));
	json_object_set_new(j, "task", json_string(r->task));
	if (r->target[0])
		json_object_set_new(j, "target", json_string(r->target));
	if (r->mirror[0])
		json_object_set_new(j, "mirror", json_string(r->mirror));
	if (r->min_tests > 0)
		json_object_set_new(j, "min_tests", json_integer(r->min_tests));
	if (r->allowed_failures > 0)
		json_object_set_new(j, "allowed_failures", json_integer(r->allowed_failures));
	if (r->allowed_failing)
		json_object_set_new(j, "allowed_failing", spw_lines_of(r->allowed_failing));
	if (r->pr.head[0])
		json_object_set_new(j, "pr", json_pack("{s:s, s:s, s:s, s:s}", "head", r->pr.head,
						       "base", r->pr.base, "title", r->pr.title,
						       "body", r->pr.body ? r->pr.body : ""));
	json_object_set_new(j, "project", json_string(r->project));
	json_object_set_new(j, "repo", json_string(r->repo));
	if (r->base[0])
		json_object_set_new(j, "base", json_string(r->base));
	if (r->test_command)
		json_object_set_new(j, "test_command", json_string(r->test_command));
	if (r->setup_command)
		json_object_set_new(j, "setup_command", json_string(r->setup_command));
	if (r->net.given) {
		json_t *n = json_pack("{s:s}", "policy", r->net.policy);
		json_t *ph = json_array();
		if (n && r->net.language[0])
			json_object_set_new(n, "language", json_string(r->net.language));
		if (n && r->net.hosts)
			json_object_set_new(n, "hosts", spw_lines_of(r->net.hosts));
		if (ph && (r->net.phases & SPW_NET_SETUP))
			json_array_append_new(ph, json_string("setup"));
		if (ph && (r->net.phases & SPW_NET_AGENT))
			json_array_append_new(ph, json_string("agent"));
		if (ph && (r->net.phases & SPW_NET_TEST))
			json_array_append_new(ph, json_string("test"));
		if (n && r->net.phases)
			json_object_set(n, "phases", ph);
		json_decref(ph);
		if (n)
			json_object_set_new(j, "network", n);
	}
	for (size_t i = 0; i < r->nhandles; i++)
		json_array_append_new(h, json_string(r->handles[i]));
	json_object_set_new(j, "handles", h);
	if (r->repo_secret[0])
		json_object_set_new(j, "repo_secret", json_string(r->repo_secret));
	if (r->thread_id)
		json_object_set_new(j, "thread_id", json_integer(r->thread_id));
	if (r->run_id)
		json_object_set_new(j, "run_id", json_integer(r->run_id));
	if (r->user[0])
		json_object_set_new(j, "user", json_string(r->user));
	if (r->role[0])
		json_object_set_new(j, "role", json_string(r->role));
	if (r->prompt)
		json_object_set_new(j, "prompt", json_string(r->prompt));
	json_object_set_new(j, "limits", l);
	if (r->meta)
		json_object_set(j, "meta", r->meta);
	return j;
}
