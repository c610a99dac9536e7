/*
 * worker_net — the network of a worker or a merge (spw_int.h: spw_net):
 * its policy (the request's "network", else the spawner's ORCH_NET_POLICY
 * and ORCH_NET_PHASES), its attachment to the spawner's egress proxy, the
 * proxy's decisions written to its transcript and live lines, and the setup
 * command (the phase "setup") that installs the project's dependencies.
 */
#include "spawner/spw_int.h"
#include "core/err.h"
#include "core/redact.h"
#include "core/util.h"
#include "spawner/agent.h"
#include "spawner/egress.h"
#include "spawner/sandbox.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SETUP_OUTPUT_CAP ((size_t)8 << 20)
#define SETUP_TAIL_KEEP 2000

/* A decision of the proxy (from its threads): the transcript, the live
 * lines, and the count of refusals the setup's verdict names. */
static void on_net(void *udata, const egr_decision *d)
{
	spw_net *nl = udata;
	json_t *l = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:I, s:I, s:I, s:s}",
			      "type", "net", "t", (json_int_t)util_wall_ms(), "decision",
			      d->allowed ? "allowed" : "denied", "phase", d->phase, "method",
			      d->method, "host", d->host, "port", d->port, "addr", d->addr,
			      "status", d->status, "bytes_up", (json_int_t)d->bytes_up, "bytes_down",
			      (json_int_t)d->bytes_down, "ms", (json_int_t)d->ms, "reason", d->reason);

	if (l && nl->transcript)
		agent_transcript_append(nl->transcript, l);
	json_decref(l);
	if (d->allowed)
		spw_wlog(nl->w, "net", "allowed %s %s:%d (%s): %llu bytes up, %llu down%s%s", d->method,
			 d->host, d->port, d->addr, (unsigned long long)d->bytes_up,
			 (unsigned long long)d->bytes_down, d->reason[0] ? "; " : "", d->reason);
	else
		spw_wlog(nl->w, "net", "denied %s %s:%d: %s", d->method, d->host, d->port, d->reason);
	if (!d->allowed) {
		pthread_mutex_lock(&nl->mu);
		if (nl->denied++ == 0)
			snprintf(nl->first_denied, sizeof(nl->first_denied), "%s:%d: %s", d->host,
				 d->port, d->reason);
		pthread_mutex_unlock(&nl->mu);
	}
}

/* The languages whose manifest the checkout at `ws` has, one per line. */
static void detect_languages(const char *ws, char *out, size_t cap)
{
	static const char *const marks[][2] = {
		{"package.json", "node"},   {"requirements.txt", "python"}, {"pyproject.toml", "python"},
		{"setup.py", "python"},     {"Pipfile", "python"},          {"go.mod", "go"},
		{"Cargo.toml", "rust"},     {"Gemfile", "ruby"},            {"pom.xml", "java"},
		{"build.gradle", "java"},   {"build.gradle.kts", "java"},   {NULL, NULL},
	};
	size_t at = 0;

	out[0] = '\0';
	for (int i = 0; marks[i][0]; i++) {
		char p[PATH_MAX];
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", ws, marks[i][0]);
		if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode) || strstr(out, marks[i][1]))
			continue;
		at += (size_t)snprintf(out + at, cap > at ? cap - at : 0, "%s\n", marks[i][1]);
		if (at >= cap)
			break;
	}
}

/* Adds the registries of the request's language, else of the languages
 * whose manifests `ws` holds, to `pol`. */
static int add_registries(const spw_worker_ctx *w, const char *ws, egr_policy *pol)
{
	char langs[256], list[4096];
	const char *p = langs;
	int rc = 0;

	if (w->req->net.language[0])
		snprintf(langs, sizeof(langs), "%s\n", w->req->net.language);
	else
		detect_languages(ws, langs, sizeof(langs));
	if (!langs[0])
		return err_set(ERR_NOTFOUND, "the network policy is 'registries' but the project "
					     "names no language and its repository has no manifest "
					     "(package.json, requirements.txt, go.mod, ...) to tell it");
	while (*p && rc == 0) {
		size_t n = strcspn(p, "\n");
		char one[64];

		snprintf(one, sizeof(one), "%.*s", (int)n, p);
		rc = spw_net_registries(w->cfg, one, list, sizeof(list));
		if (rc == 0)
			rc = egr_policy_add_list(pol, list);
		p += n;
		if (*p)
			p++;
	}
	return rc;
}

void spw_net_init(spw_net *n, const spw_worker_ctx *w, const char *transcript)
{
	memset(n, 0, sizeof(*n));
	n->w = w;
	n->transcript = transcript;
	snprintf(n->desc, sizeof(n->desc), "none");
	pthread_mutex_init(&n->mu, NULL);
}

/* The policy in force as n->pol (NULL for none), n->phases and n->desc. */
static int net_policy(spw_net *n, const char *ws)
{
	const spw_request *req = n->w->req;
	const spw_config *cfg = n->w->cfg;
	const char *kind = req->net.given ? req->net.policy
			   : strcmp(cfg->net_policy, "none") == 0 || strcmp(cfg->net_policy, "registries") == 0
				   ? cfg->net_policy
				   : "hosts";
	char pats[900];
	int rc;

	n->phases = req->net.phases ? req->net.phases : cfg->net_phases;
	if (strcmp(kind, "none") == 0)
		return 0;
	rc = egr_policy_new(&n->pol);
	if (rc < 0)
		return rc;
	if (strcmp(kind, "hosts") == 0)
		rc = egr_policy_add_list(n->pol, req->net.given ? req->net.hosts : cfg->net_policy);
	else
		rc = add_registries(n->w, ws, n->pol);
	if (rc < 0)
		return rc;
	egr_policy_describe(n->pol, pats, sizeof(pats));
	snprintf(n->desc, sizeof(n->desc), "%s: %s", kind, pats);
	return 0;
}

int spw_net_open(spw_net *n, const char *ws, const char **status, char *reason, size_t cap)
{
	const spw_worker_ctx *w = n->w;
	int rc = net_policy(n, ws);

	if (rc < 0) {
		*status = "refused";
		snprintf(reason, cap, "the network policy cannot be applied: %s", err_last());
		return rc;
	}
	if (!n->pol)
		return 0;
	if (!w->egress) {
		*status = "error";
		snprintf(reason, cap,
			 "the project's network policy needs the egress proxy, which this spawner "
			 "could not start%s%s",
			 w->egress_error && w->egress_error[0] ? ": " : "",
			 w->egress_error ? w->egress_error : "");
		return ERR_SANDBOX;
	}
	rc = egr_attach_new(w->egress, &n->att, w->req->id, n->pol, on_net, n);
	if (rc < 0) {
		*status = "error";
		snprintf(reason, cap, "the egress proxy: %s", err_last());
		return rc;
	}
	spw_wlog(w, "status", "network policy %s (phases:%s%s%s)", n->desc,
		 n->phases & SPW_NET_SETUP ? " setup" : "", n->phases & SPW_NET_AGENT ? " agent" : "",
		 n->phases & SPW_NET_TEST ? " test" : "");
	return 0;
}

const char *spw_net_socket(const spw_net *n)
{
	return n->att ? egr_attach_socket(n->att) : NULL;
}

void spw_net_phase(spw_net *n, const char *phase, unsigned bit)
{
	if (n->att)
		egr_attach_phase(n->att, phase, (n->phases & bit) != 0);
}

json_t *spw_net_result(spw_net *n)
{
	egr_stats st;

	if (!n->att)
		return NULL;
	egr_attach_phase(n->att, "end", 0);
	egr_attach_stats(n->att, &st);
	return json_pack("{s:s, s:I, s:I, s:I}", "policy", n->desc, "allowed",
			 (json_int_t)st.allowed, "denied", (json_int_t)st.denied, "bytes",
			 (json_int_t)st.bytes);
}

void spw_net_free(spw_net *n)
{
	egr_detach(n->att);
	egr_policy_free(n->pol);
	n->att = NULL;
	n->pol = NULL;
	pthread_mutex_destroy(&n->mu);
}

/* Output that says a command could not reach the network. */
static const char *network_failure(const char *out)
{
	static const char *const marks[] = {
		"Temporary failure in name resolution", "Name or service not known",
		"Could not resolve", "could not resolve", "getaddrinfo", "ENOTFOUND", "EAI_AGAIN",
		"Network is unreachable", "network is unreachable", "ECONNREFUSED",
		"Connection refused", "Failed to establish a new connection", "dial tcp",
		"Could not fetch URL", "ENETUNREACH",
		/* offline by spawner/toolenv.h: npm and go fail at once, saying so */
		"ENOTCACHED", "disabled by GOPROXY=off", NULL,
	};

	for (int i = 0; marks[i]; i++)
		if (strstr(out, marks[i]))
			return marks[i];
	return NULL;
}

/* Why a setup that exited with `res` failed, into reason[cap]: the proxy's
 * refusals since `denied_before`, a network it needed and did not have, or
 * its last line. */
static void setup_failure(spw_net *n, const sbx_result *res, const char *tail, int denied_before,
			  char *reason, size_t cap)
{
	const char *last = tail, *why = network_failure(tail);
	char first[400];
	int denied;

	for (const char *q = tail; *q; q++)
		if (*q == '\n' && q[1])
			last = q + 1;
	pthread_mutex_lock(&n->mu);
	denied = n->denied - denied_before;
	snprintf(first, sizeof(first), "%s", n->first_denied);
	pthread_mutex_unlock(&n->mu);
	if (denied > 0)
		snprintf(reason, cap,
			 "the setup command failed (exit %d): the egress proxy refused %d "
			 "connection(s) it made (%s); the project's network policy is %s",
			 res->exit_code, denied, first, n->desc);
	else if (why && !n->pol)
		snprintf(reason, cap,
			 "the setup command needs the network (its output says \"%s\") and the "
			 "project's network policy is none: give the project its registries "
			 "(network policy \"registries\") or the hosts it needs (exit %d: %.*s)",
			 why, res->exit_code, (int)strcspn(last, "\n"), last);
	else
		snprintf(reason, cap, "the setup command failed (exit %d%s%s): %.*s", res->exit_code,
			 res->timed_out ? ", " : "", res->timed_out ? res->reason : "",
			 (int)strcspn(last, "\n"), last);
}

int spw_run_setup(const spw_worker_ctx *w, sbx *box, char *const *env, spw_net *n, char *reason,
		  size_t cap)
{
	const char *argv[4] = {"bash", "-c", NULL, NULL};
	buf script, tail;
	sbx_cmd sc;
	sbx_result res;
	int rc, denied_before;

	buf_init(&script, 0);
	buf_init(&tail, 0);
	memset(&sc, 0, sizeof(sc));
	memset(&res, 0, sizeof(res));
	spw_net_phase(n, "setup", SPW_NET_SETUP);
	pthread_mutex_lock(&n->mu);
	denied_before = n->denied;
	pthread_mutex_unlock(&n->mu);
	rc = buf_puts(&script, "exec 2>&1\ncd /workspace && ");
	if (rc == 0)
		rc = buf_puts(&script, w->req->setup_command);
	if (rc < 0)
		goto done;
	argv[2] = buf_cstr(&script);
	sc.argv = argv;
	sc.env = (const char *const *)env;
	sc.timeout_ms = w->cfg->test_timeout_ms;
	sc.output_cap = SETUP_OUTPUT_CAP;
	sc.cancel = w->cancel;
	spw_wlog(w, "status", "setting up: %s", w->req->setup_command);
	rc = sbx_run(box, &sc, &res);
	if (rc < 0)
		goto done;
	{
		size_t keep = res.out.len > SETUP_TAIL_KEEP ? SETUP_TAIL_KEEP : res.out.len;
		json_t *l;

		buf_append(&tail, res.out.data ? res.out.data + res.out.len - keep : "", keep);
		redact_buf(&tail);
		l = json_pack("{s:s, s:I, s:s, s:i, s:s, s:s, s:s}", "type", "setup", "t",
			      (json_int_t)util_wall_ms(), "command", w->req->setup_command, "exit_code",
			      res.exit_code, "output", buf_cstr(&tail), "reason", res.reason, "network",
			      n->desc);
		if (l && n->transcript)
			agent_transcript_append(n->transcript, l);
		json_decref(l);
	}
	rc = res.exit_code == 0 ? 0 : 1;
	if (rc == 1)
		setup_failure(n, &res, buf_cstr(&tail), denied_before, reason, cap);
done:
	sbx_result_free(&res);
	buf_free(&script);
	buf_free(&tail);
	return rc;
}
