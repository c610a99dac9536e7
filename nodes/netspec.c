/* netspec — the network and the setup command of a project's spec (see
 * netspec.h). */
#include "nodes/netspec.h"
#include "core/err.h"
#include "nodes/say.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SETUP_MAX 500
#define HOST_MAX 200
#define HOSTS_MAX 50

/* The characters of a host pattern (spawner/egress.h checks the rest). */
static int pattern_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > HOST_MAX)
		return 0;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-*:[]/", *p))
			return 0;
	return 1;
}

static void strv_clear(nd_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

/* Appends `s` (n bytes) unless it is there already. */
static int strv_push(nd_strv *v, const char *s, size_t n)
{
	char **nv;

	for (size_t i = 0; i < v->n; i++)
		if (strlen(v->v[i]) == n && strncmp(v->v[i], s, n) == 0)
			return 0;
	nv = realloc(v->v, (v->n + 1) * sizeof(char *));
	if (!nv)
		return err_set(ERR_NOMEM, "out of memory");
	v->v = nv;
	v->v[v->n] = strndup(s, n);
	if (!v->v[v->n])
		return err_set(ERR_NOMEM, "out of memory");
	v->n++;
	return 0;
}

static json_t *strv_to_json(const nd_strv *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

void nd_netspec_free(nd_netspec *n)
{
	if (!n)
		return;
	free(n->setup_command);
	free(n->policy);
	strv_clear(&n->hosts);
	memset(n, 0, sizeof(*n));
}

/* Reads a network as written ("none", "registries", or host patterns
 * separated by commas or spaces; any case for the words) into *policy
 * (owned) and hosts. ERR_INVALID saying what to write. */
static int parse_network(const char *v, size_t n, char **policy, nd_strv *hosts)
{
	while (n > 0 && isspace((unsigned char)*v)) {
		v++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if ((n == 4 && strncasecmp(v, "none", 4) == 0) ||
	    (n == 10 && strncasecmp(v, "registries", 10) == 0)) {
		*policy = n == 4 ? strdup("none") : strdup("registries");
		return *policy ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n;) {
		size_t k = i;
		char h[HOST_MAX + 1];
		int rc;

		while (k < n && v[k] != ',' && !isspace((unsigned char)v[k]))
			k++;
		if (k > i) {
			snprintf(h, sizeof(h), "%.*s", (int)(k - i), v + i);
			if (k - i > HOST_MAX || !pattern_ok(h) || hosts->n >= HOSTS_MAX)
				return err_set(ERR_INVALID,
					       "network '%.*s': write none, registries, or the hosts the "
					       "project needs (registry.example.org, *.example.org, "
					       "host:8080, 10.0.0.5), separated by commas",
					       (int)(n > 80 ? 80 : n), v);
			rc = strv_push(hosts, h, strlen(h));
			if (rc < 0)
				return rc;
		}
		i = k + 1;
	}
	if (hosts->n == 0)
		return err_set(ERR_INVALID, "network: write none, registries, or the hosts the "
					    "project needs");
	*policy = strdup("hosts");
	return *policy ? 0 : err_set(ERR_NOMEM, "out of memory");
}

/* The normalised text of a network: "none", "registries" or "a, b". */
static void network_text(const char *policy, const nd_strv *hosts, buf *out)
{
	if (strcmp(policy, "hosts") != 0) {
		buf_puts(out, policy);
		return;
	}
	for (size_t i = 0; i < hosts->n; i++)
		buf_printf(out, "%s%s", i ? ", " : "", hosts->v[i]);
}

int nd_netspec_read(const json_t *spec, nd_netspec *out)
{
	const char *net = json_string_value(json_object_get(spec, "network"));
	const char *setup = json_string_value(json_object_get(spec, "setup_command"));
	int rc;

	memset(out, 0, sizeof(*out));
	if (setup && *setup) {
		out->setup_command = strdup(setup);
		if (!out->setup_command)
			return err_set(ERR_NOMEM, "out of memory");
	}
	if (!net || !*net)
		return 0;
	rc = parse_network(net, strlen(net), &out->policy, &out->hosts);
	if (rc < 0)
		return err_wrap("spec.network");
	return 0;
}

void nd_netspec_to_json(const nd_netspec *n, json_t *spec)
{
	buf b;

	if (n->setup_command)
		json_object_set_new(spec, "setup_command", json_string(n->setup_command));
	if (!n->policy)
		return;
	buf_init(&b, 0);
	network_text(n->policy, &n->hosts, &b);
	json_object_set_new(spec, "network", json_string(buf_cstr(&b)));
	buf_free(&b);
}

void nd_netspec_html(const json_t *spec, buf *out)
{
	const char *net = json_string_value(json_object_get(spec, "network"));
	const char *setup = json_string_value(json_object_get(spec, "setup_command"));

	if (setup) {
		buf_puts(out, "\n<b>Setup</b> <code>");
		nd_html_escape(out, setup);
		buf_puts(out, "</code>");
	}
	buf_puts(out, "\n<b>Network</b> ");
	if (!net)
		buf_puts(out, "the default of the configuration");
	else if (strcmp(net, "registries") == 0)
		buf_puts(out, "the package registries of its language");
	else
		nd_html_escape(out, net);
}

json_t *nd_netspec_request(const json_t *spec)
{
	nd_netspec n;
	const char *lang = json_string_value(json_object_get(spec, "language"));
	json_t *r = NULL, *hosts;

	if (nd_netspec_read(spec, &n) < 0 || !n.policy)
		goto done;
	r = json_pack("{s:s}", "policy", n.policy);
	if (r && n.hosts.n) {
		hosts = strv_to_json(&n.hosts);
		json_object_set_new(r, "hosts", hosts);
	}
	if (r && strcmp(n.policy, "registries") == 0 && lang) {
		char word[64];
		size_t k = 0;

		while (isspace((unsigned char)*lang))
			lang++;
		for (; lang[k] && k + 1 < sizeof(word); k++) {
			char c = (char)tolower((unsigned char)lang[k]);
			if (!isalnum((unsigned char)c) && !strchr("+#._-", c))
				break;
			word[k] = c;
		}
		word[k] = '\0';
		if (k)
			json_object_set_new(r, "language", json_string(word));
	}
done:
	nd_netspec_free(&n);
	return r;
}

/* --- what the person says --- */

/* `line` (len bytes) starts with `key` (any case) and a colon: the value
 * after it, trimmed, into *val and *vlen. */
static int keyed(const char *line, size_t len, const char *key, const char **val, size_t *vlen)
{
	size_t k = strlen(key), at;

	if (len <= k || strncasecmp(line, key, k) != 0)
		return 0;
	at = k;
	while (at < len && line[at] == ' ')
		at++;
	if (at >= len || line[at] != ':')
		return 0;
	at++;
	while (at < len && isspace((unsigned char)line[at]))
		at++;
	while (len > at && isspace((unsigned char)line[len - 1]))
		len--;
	*val = line + at;
	*vlen = len - at;
	return 1;
}

/* The network the person named, normalised into the spec. */
static int said_network(const char *v, size_t n, json_t *spec)
{
	char *policy = NULL;
	nd_strv hosts = {NULL, 0};
	buf b;
	int rc = parse_network(v, n, &policy, &hosts);

	if (rc == 0) {
		buf_init(&b, 0);
		network_text(policy, &hosts, &b);
		json_object_set_new(spec, "network", json_string(buf_cstr(&b)));
		buf_free(&b);
	}
	free(policy);
	strv_clear(&hosts);
	return rc;
}

static int said_setup(const char *v, size_t n, json_t *spec)
{
	if (n == 0 || (n == 4 && strncasecmp(v, "none", 4) == 0)) {
		json_object_del(spec, "setup_command");
		return 0;
	}
	if (n > SETUP_MAX)
		return err_set(ERR_INVALID, "'setup command:' is longer than %d characters", SETUP_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
			return err_set(ERR_INVALID, "'setup command:' holds a control character");
	json_object_set_new(spec, "setup_command", json_stringn(v, n));
	return 0;
}

int nd_netspec_said(const char *text, json_t *spec, buf *said)
{
	json_t *work;
	int applied = 0, rc = 0;

	if (!text || !json_is_object(spec))
		return 0;
	work = json_deep_copy(spec);
	if (!work)
		return err_set(ERR_NOMEM, "out of memory");
	for (const char *p = text; *p && rc == 0;) {
		size_t len = strcspn(p, "\n");
		const char *line = p, *v = NULL;
		size_t vlen = 0;

		while (len > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			len--;
		}
		if (keyed(line, len, "network", &v, &vlen)) {
			rc = said_network(v, vlen, work);
			applied++;
		} else if (keyed(line, len, "setup command", &v, &vlen)) {
			rc = said_setup(v, vlen, work);
			applied++;
		}
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	if (rc == 0 && applied) {
		json_object_clear(spec);
		json_object_update(spec, work);
		if (said) {
			const char *net = json_string_value(json_object_get(spec, "network"));
			const char *setup = json_string_value(json_object_get(spec, "setup_command"));

			buf_printf(said, "network: %s; setup command: %s", net ? net : "the default",
				   setup ? setup : "none");
		}
	}
	json_decref(work);
	return rc < 0 ? rc : applied;
}
