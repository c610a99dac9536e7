/*
 * orchestrator models — the model configuration stored in the database,
 * changed while the factory runs (llm/config.h): every running process
 * puts a change in force within seconds, after it was validated (the
 * endpoint probed, optionally a test call) and with its audit row.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "llm/config.h"
#include "llm/quirks.h"
#include "secrets/runtime.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator models <action> ...\n"
	"  The model configuration stored in the database. Until the first change every\n"
	"  process uses its own ORCH_MODELS file or LLM_* variables; the first change copies\n"
	"  this process's file or environment in, then applies itself. Every change is\n"
	"  checked first (the whole configuration must load, keys come from the secrets\n"
	"  store, a changed endpoint must answer and list the model), audited, and in force\n"
	"  in every running process within seconds.\n"
	"\n"
	"  list [--json]                      what is stored (or the file/environment in use)\n"
	"  export                             the stored configuration as a models file\n"
	"  import FILE [--try]                replaces the stored configuration by a models file\n"
	"  set endpoint NAME JSON [--try]     e.g. '{\"base_url\": \"https://api.openai.com/v1\",\n"
	"                                       \"api_key_secret\": \"openai\", \"slots\": 8}'\n"
	"  set model NAME JSON [--try]        e.g. '{\"endpoint\": \"openai\", \"model\": \"gpt-5\",\n"
	"                                       \"provider\": \"openai-reasoning\",\n"
	"                                       \"reasoning_effort\": \"high\", \"context\": 400000}'\n"
	"  set role NAME MODEL [MODEL...]     the role's models, cheapest first\n"
	"  set budgets JSON                   {\"project\": 20, \"user\": 5, \"period\": \"month\"}\n"
	"  set scheduler JSON                 {\"lookahead\": 64, \"starvation\": 16}\n"
	"  rm endpoint|model|role NAME        (rm budgets, rm scheduler: back to the defaults)\n"
	"  providers                          the known providers and their quirks\n"
	"  audit [--limit N] [--json]         who changed what, when, old -> new\n"
	"  clear                              drop the stored configuration (back to files)\n"
	"  prompts                            the prompt templates, built-in or stored\n"
	"  prompt show|set|rm PATH            a template (set reads it from standard input)\n"
	"\n"
	"  --try makes one short call to each model the change touches; --expect VERSION\n"
	"  refuses the change when the stored version moved meanwhile.";

/* "cli:NAME" of the real uid: who changes the configuration. */
void cli_audit_actor(char *out, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw && pw->pw_name)
		snprintf(out, cap, "cli:%s", pw->pw_name);
	else
		snprintf(out, cap, "cli:uid %d", (int)getuid());
}

/* The database, the secrets (to check keys) and this process's own
 * file or environment configuration (the seed). */
static int open_all(pg_pool **pool, pg_conn **c, llm_registry **seed)
{
	*pool = NULL;
	*c = NULL;
	*seed = NULL;
	if (pg_pool_new(pool, cli_cfg.database_url, 2) < 0)
		return cli_fail("database");
	if (cli_start_secrets(*pool) < 0)
		return cli_fail("secrets");
	if (pg_pool_acquire(*pool, 10000, c) < 0)
		return cli_fail("database");
	if (llm_registry_load(seed) < 0) {
		fprintf(stderr, "orchestrator: this process's own configuration does not load (%s); "
				"it is not copied in\n", err_last());
		err_clear();
		*seed = NULL;
	}
	return 0;
}

static void close_all(pg_pool *pool, pg_conn *c, llm_registry *seed)
{
	if (c)
		pg_pool_release(pool, c);
	llm_registry_free(seed);
	sec_runtime_stop();
	pg_pool_free(pool);
}

static json_t *parse_value(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);

	if (!v)
		fprintf(stderr, "orchestrator: not valid JSON: %s (column %d)\n", e.text, e.column);
	return v;
}

static int apply(const char *kind, const char *name, json_t *value, int try_call, int64_t expect)
{
	pg_pool *pool;
	pg_conn *c;
	llm_registry *seed;
	llm_config_change ch;
	llm_config_result res;
	char actor[96];
	int rc = open_all(&pool, &c, &seed);

	if (rc == 0) {
		cli_audit_actor(actor, sizeof(actor));
		memset(&ch, 0, sizeof(ch));
		ch.kind = kind;
		ch.name = name;
		ch.value = value;
		ch.actor = actor;
		ch.try_call = try_call;
		ch.expect_version = expect;
		if (llm_config_apply(c, &ch, seed, &res) < 0) {
			fprintf(stderr, "orchestrator: the change was not stored: %s\n", err_last());
			rc = 1;
		} else {
			fputs(res.notes, stdout);
			printf("stored as version %lld; running processes use it within seconds\n",
			       (long long)res.version);
		}
	}
	close_all(pool, c, seed);
	json_decref(value);
	return rc;
}

static void print_list(const json_t *doc, int64_t version, int stored)
{
	const char *k;
	json_t *v;

	if (stored)
		printf("stored configuration, version %lld\n", (long long)version);
	else
		printf("nothing stored: every process uses its ORCH_MODELS file or LLM_* variables "
		       "(this one's below)\n");
	printf("endpoints\n");
	json_object_foreach(json_object_get(doc, "endpoints"), k, v)
		printf("  %-16s %-40s slots %lld%s%s\n", k, jx_str(v, "base_url"), jx_int(v, "slots"),
		       *jx_str(v, "api_key_secret") ? ", key from secret " : "",
		       jx_str(v, "api_key_secret"));
	printf("models\n");
	json_object_foreach(json_object_get(doc, "models"), k, v) {
		printf("  %-20s %-28s at %-12s provider %s", k, jx_str(v, "model"), jx_str(v, "endpoint"),
		       *jx_str(v, "provider") ? jx_str(v, "provider") : "generic");
		if (json_is_number(json_object_get(v, "temperature")))
			printf(", temperature %g", json_number_value(json_object_get(v, "temperature")));
		if (*jx_str(v, "reasoning_effort"))
			printf(", reasoning %s", jx_str(v, "reasoning_effort"));
		printf("\n");
	}
	printf("roles\n");
	json_object_foreach(json_object_get(doc, "roles"), k, v) {
		size_t i;
		json_t *m;
		printf("  %-16s", k);
		json_array_foreach(v, i, m)
			printf("%s%s", i ? " -> " : " ", json_string_value(m));
		printf("\n");
	}
	if (json_object_get(doc, "budgets")) {
		char *b = json_dumps(json_object_get(doc, "budgets"), JSON_COMPACT);
		printf("default budgets %s\n", b ? b : "");
		free(b);
	}
}

static int do_list(int argc, char **argv, int export_only)
{
	pg_pool *pool;
	pg_conn *c;
	llm_registry *seed;
	json_t *doc = NULL;
	int64_t version = 0;
	int stored = 0, as_json = export_only, rc;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--json"))
			as_json = 1;
		else
			return cli_usage(USAGE);
	}
	rc = open_all(&pool, &c, &seed);
	if (rc == 0 && llm_config_read(c, &doc, &version, &stored) < 0)
		rc = cli_fail("models");
	if (rc == 0 && !stored) {
		json_decref(doc);
		doc = seed ? llm_registry_to_json(seed) : json_object();
	}
	if (rc == 0 && export_only) {
		cli_print_json(doc);
	} else if (rc == 0 && as_json) {
		json_t *o = json_pack("{s:I, s:b, s:O}", "version", (json_int_t)version, "stored",
				      stored, "config", doc);
		cli_print_json(o);
		json_decref(o);
	} else if (rc == 0) {
		print_list(doc, version, stored);
	}
	json_decref(doc);
	close_all(pool, c, seed);
	return rc;
}

static int do_set(int argc, char **argv, int remove)
{
	const char *kind = argc > 1 ? argv[1] : NULL, *name = NULL;
	int try_call = 0, nvals = 0;
	int64_t expect = -1;
	const char *vals[20];
	json_t *value = NULL;

	for (int i = 2; i < argc; i++) {
		const char *v;
		if (cli_flag(argv, i, "--try"))
			try_call = 1;
		else if (cli_opt(argc, argv, &i, "--expect", &v)) {
			expect = cli_int(v);
			if (expect < 0)
				return cli_usage(USAGE);
		}
		else if (nvals < 20)
			vals[nvals++] = argv[i];
		else
			return cli_usage(USAGE);
	}
	if (!kind)
		return cli_usage(USAGE);
	if (strcmp(kind, "budgets") == 0 || strcmp(kind, "scheduler") == 0) {
		if (remove ? nvals != 0 : nvals != 1)
			return cli_usage(USAGE);
		value = remove ? NULL : parse_value(vals[0]);
		if (!remove && !value)
			return 2;
		return apply(kind, NULL, value, try_call, expect);
	}
	if (strcmp(kind, "endpoint") != 0 && strcmp(kind, "model") != 0 &&
	    strcmp(kind, "role") != 0)
		return cli_usage(USAGE);
	if (nvals < 1 || (remove && nvals != 1) || (!remove && nvals < 2))
		return cli_usage(USAGE);
	name = vals[0];
	if (!remove && strcmp(kind, "role") == 0) {
		value = json_array();
		for (int i = 1; i < nvals; i++)
			json_array_append_new(value, json_string(vals[i]));
	} else if (!remove) {
		if (nvals != 2)
			return cli_usage(USAGE);
		value = parse_value(vals[1]);
		if (!value)
			return 2;
	}
	return apply(kind, name, value, try_call, expect);
}

static int do_import(int argc, char **argv)
{
	json_error_t e;
	json_t *doc;
	int try_call = 0;
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--try"))
			try_call = 1;
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else
			return cli_usage(USAGE);
	}
	if (!path)
		return cli_usage(USAGE);
	doc = json_load_file(path, 0, &e);
	if (!doc) {
		fprintf(stderr, "orchestrator: %s: %s (line %d)\n", path, e.text, e.line);
		return 1;
	}
	return apply("config", path, doc, try_call, -1);
}

static int do_providers(int argc, char **argv)
{
	const char *const *names = llm_quirks_profiles();

	(void)argc;
	(void)argv;
	printf("%-18s %-22s %-6s %-6s %-6s %-5s %-17s %s\n", "provider", "max tokens field",
	       "temp", "max", "top_p", "stop", "reasoning", "efforts");
	for (int i = 0; names[i]; i++) {
		llm_quirks q;
		json_t *j, *e;
		size_t k;
		llm_quirks_profile(names[i], &q);
		j = llm_quirks_json(&q);
		printf("%-18s %-22s %-6s %-6g %-6s %-5s %-17s ", names[i],
		       q.max_tokens_field[0] ? q.max_tokens_field : "(the endpoint's)",
		       jx_str(j, "temperature"), q.temperature_max, jx_str(j, "top_p"),
		       jx_str(j, "stop"), jx_str(j, "reasoning"));
		json_array_foreach(json_object_get(j, "efforts"), k, e)
			printf("%s%s", k ? "," : "", json_string_value(e));
		printf("%s\n", json_array_size(json_object_get(j, "efforts")) ? "" : "any");
		json_decref(j);
	}
	printf("\n\"send\": sent as asked; \"omit\": never sent (the model takes only its default);\n"
	       "\"alone\": top_p not sent together with a temperature. A model may override any\n"
	       "of them with \"quirks\": {...}.\n");
	return 0;
}

static int do_audit(int argc, char **argv)
{
	pg_conn *c;
	json_t *list = NULL, *v;
	int as_json = 0;
	int64_t limit = 30;
	size_t i;

	for (int a = 1; a < argc; a++) {
		const char *val;
		if (cli_flag(argv, a, "--json"))
			as_json = 1;
		else if (cli_opt(argc, argv, &a, "--limit", &val)) {
			limit = cli_int(val);
			if (limit <= 0)
				return cli_usage(USAGE);
		}
		else
			return cli_usage(USAGE);
	}
	c = cli_db();
	if (!c)
		return 1;
	if (llm_config_audit_list(c, (int)limit, &list) < 0) {
		pg_conn_close(c);
		return cli_fail("models audit");
	}
	pg_conn_close(c);
	if (as_json) {
		cli_print_json(list);
	} else {
		json_array_foreach(list, i, v) {
			char *o = json_dumps(json_object_get(v, "old"), JSON_COMPACT | JSON_ENCODE_ANY);
			char *n = json_dumps(json_object_get(v, "new"), JSON_COMPACT | JSON_ENCODE_ANY);
			printf("%s  v%-4lld %-14s %-7s %-9s %s\n      %.300s\n   -> %.300s\n",
			       jx_str(v, "at"), jx_int(v, "version"), jx_str(v, "actor"),
			       jx_str(v, "action"), jx_str(v, "kind"), jx_str(v, "name"),
			       o ? o : "(none)", n ? n : "(none)");
			free(o);
			free(n);
		}
	}
	json_decref(list);
	return 0;
}

static int do_clear(int argc, char **argv)
{
	pg_conn *c;
	char actor[96];
	int64_t v = 0;

	(void)argv;
	if (argc != 1)
		return cli_usage(USAGE);
	c = cli_db();
	if (!c)
		return 1;
	cli_audit_actor(actor, sizeof(actor));
	if (llm_config_clear(c, actor, &v) < 0) {
		pg_conn_close(c);
		return cli_fail("models clear");
	}
	pg_conn_close(c);
	printf("the stored configuration is gone (version %lld): running processes go back to "
	       "their files or environment within seconds\n", (long long)v);
	return 0;
}

static int do_prompts(int argc, char **argv)
{
	pg_conn *c;
	json_t *list = NULL, *v;
	size_t i;

	(void)argv;
	if (argc != 1)
		return cli_usage(USAGE);
	c = cli_db();
	if (!c)
		return 1;
	if (llm_config_prompts(c, 0, &list) < 0) {
		pg_conn_close(c);
		return cli_fail("models prompts");
	}
	pg_conn_close(c);
	json_array_foreach(list, i, v)
		printf("%-42s %-9s %s%s%s\n", jx_str(v, "name"),
		       json_is_true(json_object_get(v, "overridden")) ? "stored" : "built-in",
		       *jx_str(v, "placeholders") ? "fills " : "", jx_str(v, "placeholders"),
		       json_is_true(json_object_get(v, "overridden")) ? "" : "");
	json_decref(list);
	return 0;
}

static int do_prompt(int argc, char **argv)
{
	const char *action = argc > 1 ? argv[1] : "", *path = argc > 2 ? argv[2] : NULL;

	if (argc != 3)
		return cli_usage(USAGE);
	if (strcmp(action, "show") == 0) {
		pg_conn *c = cli_db();
		json_t *list = NULL, *v;
		size_t i;
		int found = 0;
		if (!c)
			return 1;
		if (llm_config_prompts(c, 1, &list) < 0) {
			pg_conn_close(c);
			return cli_fail("models prompt");
		}
		pg_conn_close(c);
		json_array_foreach(list, i, v) {
			if (strcmp(jx_str(v, "name"), path) != 0)
				continue;
			found = 1;
			fputs(json_is_true(json_object_get(v, "overridden")) ? jx_str(v, "body")
									    : jx_str(v, "builtin"),
			      stdout);
		}
		json_decref(list);
		if (!found) {
			fprintf(stderr, "orchestrator: '%s' is not a built-in prompt ('orchestrator "
					"models prompts' lists them)\n", path);
			return 1;
		}
		return 0;
	}
	if (strcmp(action, "set") == 0) {
		buf b;
		char chunk[8192];
		size_t n;
		json_t *v;
		buf_init(&b, 262145);
		for (n = fread(chunk, 1, sizeof(chunk), stdin); n > 0;
		     n = fread(chunk, 1, sizeof(chunk), stdin))
			if (buf_append(&b, chunk, n) < 0) {
				buf_free(&b);
				fprintf(stderr, "orchestrator: a template is at most 256 KiB\n");
				return 1;
			}
		v = json_stringn(b.data ? b.data : "", b.len);
		buf_free(&b);
		if (!v) {
			fprintf(stderr, "orchestrator: the template is not UTF-8 text\n");
			return 1;
		}
		return apply("prompt", path, v, 0, -1);
	}
	if (strcmp(action, "rm") == 0)
		return apply("prompt", path, NULL, 0, -1);
	return cli_usage(USAGE);
}

static int do_set_cmd(int argc, char **argv)
{
	return do_set(argc, argv, 0);
}

static int do_rm_cmd(int argc, char **argv)
{
	return do_set(argc, argv, 1);
}

static int do_list_cmd(int argc, char **argv)
{
	return do_list(argc, argv, 0);
}

static int do_export_cmd(int argc, char **argv)
{
	return do_list(argc, argv, 1);
}

int cmd_modelcfg(int argc, char **argv)
{
	static const cli_action actions[] = {
		{"list", "ls", do_list_cmd},    {"export", NULL, do_export_cmd},
		{"import", NULL, do_import},     {"set", NULL, do_set_cmd},
		{"rm", "remove", do_rm_cmd},     {"providers", NULL, do_providers},
		{"audit", NULL, do_audit},       {"clear", NULL, do_clear},
		{"prompts", NULL, do_prompts},   {"prompt", NULL, do_prompt},
		{NULL, NULL, NULL},
	};

	if (argc == 1)
		return do_list(1, argv, 0);
	return cli_actions(argc, argv, "models", USAGE, actions);
}
