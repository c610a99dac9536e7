/*
 * orchestrator resources allocate|list|show|revoke|audit — handles that
 * stand for secrets inside a project (secrets/resource.h). Nothing here
 * prints a secret value.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "secrets/redact.h"
#include "secrets/resource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator resources <action> [options]\n"
	"  allocate --scope PROJECT --secret NAME [--kind llm|git|database|generic]\n"
	"           [--env VAR] [--note TEXT] [--json]\n"
	"           hand out a handle (res_...) for a secret to one project; prints the handle.\n"
	"           --env: the variable a worker gets (default: the secret's name in upper case)\n"
	"  list [--scope PROJECT] [--all] [--json]   live handles (--all: revoked ones too)\n"
	"  show HANDLE [--json]                      a handle's metadata and its latest uses\n"
	"  revoke HANDLE... [--reason TEXT]          the handle never resolves again\n"
	"  audit [--handle HANDLE | --secret NAME] [--limit N] [--json]\n"
	"           who resolved, was refused, allocated or revoked what, and when";

static json_t *info_json(const sec_res_info *r)
{
	char cr[32], rv[32], lu[32];

	cli_fmt_time(r->created_ms, cr, sizeof(cr));
	cli_fmt_time(r->revoked_ms, rv, sizeof(rv));
	cli_fmt_time(r->last_used_ms, lu, sizeof(lu));
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:I}",
			 "handle", r->handle, "scope", r->scope, "kind", r->kind, "secret",
			 r->secret, "secret_removed", r->secret_gone, "env", r->env, "note",
			 r->note, "created_by", r->created_by, "created", cr, "revoked",
			 r->revoked_ms ? rv : NULL, "revoke_reason",
			 r->revoked_ms ? r->revoke_reason : NULL, "last_used",
			 r->last_used_ms ? lu : NULL, "uses", (json_int_t)r->uses);
}

static json_t *audit_json(const sec_audit_entry *a)
{
	char at[32];

	cli_fmt_time(a->at_ms, at, sizeof(at));
	return json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:o?, s:s}", "id",
			 (json_int_t)a->id, "at", at, "action", a->action, "handle",
			 a->handle[0] ? a->handle : NULL, "secret", a->secret[0] ? a->secret : NULL,
			 "scope", a->scope[0] ? a->scope : NULL, "actor", a->actor, "run",
			 a->run_id ? json_integer((json_int_t)a->run_id) : NULL, "detail", a->detail);
}

static void print_audit(const sec_audit_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char at[32], run[32] = "";
		cli_fmt_time(v[i].at_ms, at, sizeof(at));
		if (v[i].run_id)
			snprintf(run, sizeof(run), " run %lld", (long long)v[i].run_id);
		printf("  %s  %-8s %-30s %s%s%s%s%s%s\n", at, v[i].action,
		       v[i].handle[0] ? v[i].handle : "-", v[i].actor, run,
		       v[i].secret[0] ? " secret " : "", v[i].secret, v[i].detail[0] ? ": " : "",
		       v[i].detail);
	}
}

static int do_allocate(int argc, char **argv)
{
	static const char U[] = "orchestrator resources allocate --scope PROJECT --secret NAME "
				"[--kind llm|git|database|generic] [--env VAR] [--note TEXT] "
				"[--json]";
	sec_res_spec spec;
	char actor[SEC_ACTOR_MAX + 1], handle[SEC_HANDLE_LEN + 1];
	int as_json = 0, rc;
	pg_conn *c;

	memset(&spec, 0, sizeof(spec));
	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--scope", &spec.scope) ||
		    cli_opt(argc, argv, &i, "--secret", &spec.secret) ||
		    cli_opt(argc, argv, &i, "--kind", &spec.kind) ||
		    cli_opt(argc, argv, &i, "--env", &spec.env) ||
		    cli_opt(argc, argv, &i, "--note", &spec.note))
			continue;
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		return cli_usage(U);
	}
	if (!spec.scope || !spec.secret)
		return cli_usage(U);
	cli_actor(actor, sizeof(actor));
	spec.actor = actor;
	c = cli_db();
	if (!c)
		return 1;
	rc = sec_res_allocate(c, &spec, handle);
	if (rc == 0 && as_json) {
		sec_res_info info;
		rc = sec_res_show(c, handle, &info);
		if (rc == 0) {
			json_t *j = info_json(&info);
			cli_print_json(j);
			json_decref(j);
		}
	} else if (rc == 0) {
		puts(handle);
	}
	pg_conn_close(c);
	return rc < 0 ? cli_fail("resources allocate") : 0;
}

static int do_list(int argc, char **argv)
{
	const char *scope = NULL;
	int all = 0, as_json = 0;
	sec_res_info *v = NULL;
	size_t n = 0;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--scope", &scope))
			continue;
		if (cli_flag(argv, i, "--all")) {
			all = 1;
			continue;
		}
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		return cli_usage("orchestrator resources list [--scope PROJECT] [--all] [--json]");
	}
	c = cli_db();
	if (!c)
		return 1;
	rc = sec_res_list(c, scope, all, &v, &n);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("resources list");
	if (as_json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, info_json(&v[i]));
		cli_print_json(arr);
		json_decref(arr);
	} else if (n == 0) {
		printf("no %shandles%s%s\n", all ? "" : "live ", scope ? " in project " : "",
		       scope ? scope : "");
	} else {
		printf("%-30s %-20s %-8s %-24s %-24s %-20s %s\n", "HANDLE", "PROJECT", "KIND",
		       "SECRET", "VARIABLE", "LAST USED", all ? "STATE" : "");
		for (size_t i = 0; i < n; i++) {
			char lu[32];
			cli_fmt_time(v[i].last_used_ms, lu, sizeof(lu));
			printf("%-30s %-20s %-8s %-24s %-24s %-20s %s\n", v[i].handle, v[i].scope,
			       v[i].kind, v[i].secret, v[i].env, lu,
			       !all ? "" : v[i].revoked_ms ? "revoked" : "live");
		}
	}
	free(v);
	return 0;
}

static int do_show(int argc, char **argv)
{
	const char *handle = NULL;
	int as_json = 0, rc;
	sec_res_info info;
	sec_audit_entry *au = NULL;
	size_t na = 0;
	pg_conn *c;

	rc = cli_name_args(argc, argv, "orchestrator resources show HANDLE [--json]", "--json",
			   &as_json, &handle);
	if (rc >= 0)
		return rc;
	c = cli_db();
	if (!c)
		return 1;
	rc = sec_res_show(c, handle, &info);
	if (rc == 0)
		rc = sec_res_audit(c, handle, NULL, 20, &au, &na);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("resources show");
	if (as_json) {
		json_t *j = info_json(&info), *arr = json_array();
		for (size_t i = 0; i < na; i++)
			json_array_append_new(arr, audit_json(&au[i]));
		json_object_set_new(j, "audit", arr);
		cli_print_json(j);
		json_decref(j);
	} else {
		char cr[32], rv[32], lu[32];
		cli_fmt_time(info.created_ms, cr, sizeof(cr));
		cli_fmt_time(info.revoked_ms, rv, sizeof(rv));
		cli_fmt_time(info.last_used_ms, lu, sizeof(lu));
		printf("handle      %s\n", info.handle);
		printf("project     %s\n", info.scope);
		printf("kind        %s\n", info.kind);
		printf("secret      %s%s\n", info.secret, info.secret_gone ? " (removed)" : "");
		printf("variable    %s\n", info.env);
		if (info.note[0])
			printf("note        %s\n", info.note);
		printf("created     %s by %s\n", cr, info.created_by);
		if (info.revoked_ms)
			printf("revoked     %s (%s)\n", rv, info.revoke_reason);
		else
			printf("state       live\n");
		printf("last used   %s (%lld uses)\n", lu, (long long)info.uses);
		if (na) {
			printf("latest events\n");
			print_audit(au, na);
		}
	}
	free(au);
	return 0;
}

static int do_revoke(int argc, char **argv)
{
	static const char U[] = "orchestrator resources revoke HANDLE... [--reason TEXT]";
	const char *reason = NULL;
	const char **handles = calloc((size_t)argc, sizeof(char *));
	char actor[SEC_ACTOR_MAX + 1];
	int nh = 0, failed = 0;
	pg_conn *c;

	if (!handles) {
		fprintf(stderr, "orchestrator: out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--reason", &reason))
			continue;
		if (argv[i][0] != '-') {
			handles[nh++] = argv[i];
			continue;
		}
		free(handles);
		return cli_usage(U);
	}
	if (nh == 0) {
		free(handles);
		return cli_usage(U);
	}
	c = cli_db();
	if (!c) {
		free(handles);
		return 1;
	}
	cli_actor(actor, sizeof(actor));
	for (int i = 0; i < nh; i++) {
		int already = 0;
		if (sec_res_revoke(c, handles[i], reason, actor, &already) < 0) {
			fprintf(stderr, "orchestrator: resources revoke: %s\n", err_last());
			failed = 1;
		} else {
			printf("%s %s\n", already ? "already revoked:" : "revoked", handles[i]);
		}
	}
	pg_conn_close(c);
	free(handles);
	return failed;
}

static int do_audit(int argc, char **argv)
{
	static const char U[] =
		"orchestrator resources audit [--handle HANDLE | --secret NAME] [--limit N] [--json]";
	const char *handle = NULL, *secret = NULL, *lim = NULL;
	int as_json = 0, rc;
	int64_t limit = 50;
	sec_audit_entry *v = NULL;
	size_t n = 0;
	pg_conn *c;

	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--handle", &handle) ||
		    cli_opt(argc, argv, &i, "--secret", &secret))
			continue;
		if (cli_opt(argc, argv, &i, "--limit", &lim)) {
			limit = cli_int(lim);
			if (limit < 1 || limit > 100000)
				return cli_usage(U);
			continue;
		}
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		return cli_usage(U);
	}
	if (handle && secret)
		return cli_usage(U);
	c = cli_db();
	if (!c)
		return 1;
	rc = sec_res_audit(c, handle, secret, (int)limit, &v, &n);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("resources audit");
	if (as_json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, audit_json(&v[i]));
		cli_print_json(arr);
		json_decref(arr);
	} else if (n == 0) {
		printf("no audit events\n");
	} else {
		print_audit(v, n);
	}
	free(v);
	return 0;
}

int cmd_resources(int argc, char **argv)
{
	static const cli_action actions[] = {
		{"allocate", NULL, do_allocate},
		{"list", "ls", do_list},
		{"show", NULL, do_show},
		{"revoke", NULL, do_revoke},
		{"audit", NULL, do_audit},
		{NULL, NULL, NULL},
	};

	sec_redact_install();
	return cli_actions(argc, argv, "resources", USAGE, actions);
}
