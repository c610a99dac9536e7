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
	strv_clear(&n->phases);
	memset(n, 0, sizeof(*n));
}

int nd_netspec_read(const json_t *spec, nd_netspec *out)
{
	const json_t *net = json_object_get(spec, "network"), *v;
	const char *setup = json_string_value(json_object_get(spec, "setup_command"));
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (setup && *setup) {
		out->setup_command = strdup(setup);
		if (!out->setup_command)
			return err_set(ERR_NOMEM, "out of memory");
	}
	if (!json_is_object(net))
		return 0;
	v = json_object_get(net, "policy");
	out->policy = strdup(json_is_string(v) ? json_string_value(v) : "none");
	if (!out->policy)
		return err_set(ERR_NOMEM, "out of memory");
	json_array_foreach(json_object_get(net, "phases"), i, v) {
		const char *ph = json_string_value(v);
		if (ph && rc == 0)
			rc = strv_push(&out->phases, ph, strlen(ph));
	}
	if (strcmp(out->policy, "hosts") != 0)
		return rc;
	json_array_foreach(json_object_get(net, "hosts"), i, v) {
		const char *h = json_string_value(v);
		if (rc < 0)
			break;
		if (!h || !pattern_ok(h))
			return err_set(ERR_INVALID, "spec.network.hosts[%zu] '%.60s' is not a host pattern "
						    "(a host, *.domain, host:port, an address or a "
						    "block)", i, h ? h : "");
		rc = strv_push(&out->hosts, h, strlen(h));
	}
	if (rc == 0 && out->hosts.n == 0)
		return err_set(ERR_INVALID, "spec.network: the policy \"hosts\" names no hosts");
	return rc;
}

void nd_netspec_to_json(const nd_netspec *n, json_t *spec)
{
	json_t *net;

	if (n->setup_command)
		json_object_set_new(spec, "setup_command", json_string(n->setup_command));
	if (!n->policy)
		return;
	net = json_pack("{s:s}", "policy", n->policy);
	if (net && n->hosts.n)
		json_object_set_new(net, "hosts", strv_to_json(&n->hosts));
	if (net && n->phases.n)
		json_object_set_new(net, "phases", strv_to_json(&n->phases));
	json_object_set_new(spec, "network", net);
}

/* "a, b" of a JSON array of strings, escaped. */
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

void nd_netspec_html(const json_t *spec, buf *out)
{
	const json_t *net = json_object_get(spec, "network");
	const char *setup = json_string_value(json_object_get(spec, "setup_command"));
	const char *policy = json_string_value(json_object_get(net, "policy"));

	if (setup) {
		buf_puts(out, "\n<b>Setup</b> <code>");
		nd_html_escape(out, setup);
		buf_puts(out, "</code>");
	}
	buf_puts(out, "\n<b>Network</b> ");
	if (!policy)
		buf_puts(out, "the default of the configuration");
	else if (strcmp(policy, "hosts") == 0)
		html_join(out, json_object_get(net, "hosts"));
	else if (strcmp(policy, "registries") == 0)
		buf_puts(out, "the package registries of its language");
	else
		buf_puts(out, "none");
	if (policy && strcmp(policy, "none") != 0) {
		buf_puts(out, " (phases: ");
		if (json_array_size(json_object_get(net, "phases")))
			html_join(out, json_object_get(net, "phases"));
		else
			buf_puts(out, "the configuration's, setup by default");
		buf_putc(out, ')');
	}
}

json_t *nd_netspec_request(const json_t *spec)
{
	const json_t *net = json_object_get(spec, "network");
	const char *policy = json_string_value(json_object_get(net, "policy"));
	const char *lang = json_string_value(json_object_get(spec, "language"));
	json_t *r;

	if (!policy)
		return NULL;
	r = json_pack("{s:s}", "policy", policy);
	if (!r)
		return NULL;
	if (strcmp(policy, "hosts") == 0)
		json_object_set(r, "hosts", json_object_get(net, "hosts"));
	if (json_array_size(json_object_get(net, "phases")))
		json_object_set(r, "phases", json_object_get(net, "phases"));
	if (strcmp(policy, "registries") == 0 && lang) {
		char word[64];
		size_t n = 0;

		while (isspace((unsigned char)*lang))
			lang++;
		for (; lang[n] && n + 1 < sizeof(word); n++) {
			char c = (char)tolower((unsigned char)lang[n]);
			if (!isalnum((unsigned char)c) && !strchr("+#._-", c))
				break;
			word[n] = c;
		}
		word[n] = '\0';
		if (n)
			json_object_set_new(r, "language", json_string(word));
	}
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

/* The network the person named: "none", "registries" or host patterns. */
static int said_network(const char *v, size_t n, json_t *spec)
{
	const json_t *old = json_object_get(spec, "network");
	json_t *net, *hosts = NULL;

	if (n == 4 && strncasecmp(v, "none", 4) == 0) {
		net = json_pack("{s:s}", "policy", "none");
	} else if (n == 10 && strncasecmp(v, "registries", 10) == 0) {
		net = json_pack("{s:s}", "policy", "registries");
	} else {
		hosts = json_array();
		for (size_t i = 0; hosts && i < n;) {
			size_t k = i;
			char h[HOST_MAX + 1];

			while (k < n && v[k] != ',' && !isspace((unsigned char)v[k]))
				k++;
			if (k > i) {
				snprintf(h, sizeof(h), "%.*s", (int)(k - i), v + i);
				if (k - i > HOST_MAX || !pattern_ok(h) ||
				    json_array_size(hosts) >= HOSTS_MAX) {
					json_decref(hosts);
					return err_set(ERR_INVALID,
						       "'network: %.*s': write none, registries, or the "
						       "hosts the project needs (registry.example.org, "
						       "*.example.org, host:8080, 10.0.0.5), separated by "
						       "commas",
						       (int)(n > 80 ? 80 : n), v);
				}
				json_array_append_new(hosts, json_string(h));
			}
			i = k + 1;
		}
		if (!json_array_size(hosts)) {
			json_decref(hosts);
			return err_set(ERR_INVALID, "'network:' needs none, registries or host patterns");
		}
		net = json_pack("{s:s, s:o}", "policy", "hosts", "hosts", hosts);
	}
	if (!net)
		return err_set(ERR_NOMEM, "out of memory");
	if (json_is_array(json_object_get(old, "phases")))
		json_object_set(net, "phases", json_object_get(old, "phases"));
	json_object_set_new(spec, "network", net);
	return 0;
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
			const json_t *net = json_object_get(spec, "network");
			const char *pol = json_string_value(json_object_get(net, "policy"));
			const char *setup = json_string_value(json_object_get(spec, "setup_command"));

			buf_printf(said, "network: %s", pol ? pol : "the default");
			if (pol && strcmp(pol, "hosts") == 0) {
				buf_puts(said, " (");
				for (size_t i = 0; i < json_array_size(json_object_get(net, "hosts")); i++)
					buf_printf(said, "%s%s", i ? ", " : "",
						   json_string_value(json_array_get(
							   json_object_get(net, "hosts"), i)));
				buf_putc(said, ')');
			}
			buf_printf(said, "; setup command: %s", setup ? setup : "none");
		}
	}
	json_decref(work);
	return rc < 0 ? rc : applied;
}
