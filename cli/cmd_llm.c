/*
 * orchestrator llm — the model registry, a test call, and budgets.
 *
 *   orchestrator llm models [--json]
 *   orchestrator llm test [--role R] [--stream] [--project P] [--user U]
 *                         [--max-tokens N] [PROMPT...]
 *   orchestrator llm budget [show] [--json]
 *   orchestrator llm budget set --project P|--user U --limit USD [--per total|day|week|month]
 *   orchestrator llm budget extend|remove --project P|--user U [--add USD]
 */
#include "cli/cli.h"
#include "secrets/runtime.h"
#include "core/err.h"
#include "core/util.h"
#include "llm/config.h"
#include "llm/llm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
	"orchestrator llm models [--json]\n"
	"      the model registry (ORCH_MODELS, or LLM_BASE_URL/LLM_MODEL): endpoints, where\n"
	"      their keys come from (never the keys), models with prices, roles\n"
	"  orchestrator llm test [--role R] [--stream] [--project P] [--user U] [--max-tokens N]\n"
	"                        [PROMPT...]\n"
	"      one call through the scheduler and the ledger; prints the reply, tokens, cost\n"
	"  orchestrator llm budget [show] [--json]\n"
	"  orchestrator llm budget set --project P|--user U --limit USD [--per PERIOD]\n"
	"      PERIOD: total (never resets; the default for a new budget), day, week or\n"
	"      month (calendar periods in UTC, weeks from Monday); without --per an\n"
	"      existing budget keeps its period\n"
	"  orchestrator llm budget extend --project P|--user U --add USD\n"
	"  orchestrator llm budget remove --project P|--user U";

/* The configuration a running process would use: the one stored in the
 * database when there is one (unless ORCH_MODEL_CONFIG=file), else the
 * file or environment. */
static int load_registry(llm_registry **out)
{
	char from[16];
	pg_conn *c = NULL;
	int64_t version = 0;

	*out = NULL;
	if (cfg_env_str("ORCH_MODEL_CONFIG", "database", from, sizeof(from)) < 0)
		return cli_fail("configuration");
	if (strcmp(from, "file") != 0 && pg_conn_open(&c, cli_cfg.database_url) == 0) {
		if (llm_config_load(c, out, &version) < 0) {
			*out = NULL;
			err_clear(); /* a database without the table: the file */
		}
	}
	err_clear();
	pg_conn_close(c);
	if (*out)
		return 0;
	if (llm_registry_load(out) < 0)
		return cli_fail("model registry");
	return 0;
}

static int cmd_models(int argc, char **argv)
{
	llm_registry *r = NULL;
	json_t *d = NULL, *v;
	int as_json = 0;
	size_t i;
	const char *k;

	for (int a = 1; a < argc; a++) {
		if (cli_flag(argv, a, "--json"))
			as_json = 1;
		else
			return cli_usage(USAGE);
	}
	if (load_registry(&r) != 0)
		return 1;
	if (llm_registry_describe(r, &d) < 0) {
		llm_registry_free(r);
		return cli_fail("llm models");
	}
	if (as_json) {
		cli_print_json(d);
		goto done;
	}
	printf("registry: %s\n", json_string_value(json_object_get(d, "origin")));
	if (json_array_size(json_object_get(d, "models")) == 0) {
		printf("no models configured: set ORCH_MODELS to a models file, or LLM_BASE_URL and "
		       "LLM_MODEL (README.md, \"LLM models and budgets\")\n");
		goto done;
	}
	printf("\nendpoints\n");
	json_array_foreach(json_object_get(d, "endpoints"), i, v) {
		const char *src = json_string_value(json_object_get(v, "key_source"));
		char key[200];
		if (strcmp(src, "none") == 0)
			snprintf(key, sizeof(key), "no key");
		else
			snprintf(key, sizeof(key), "key from %s%s (%s)",
				 strcmp(src, "env") == 0 ? "$" : "secret ",
				 json_string_value(json_object_get(v, "key_name")),
				 json_is_true(json_object_get(v, "key_present")) ? "present" : "MISSING");
		printf("  %-12s %-40s slots %-3lld %s%s\n",
		       json_string_value(json_object_get(v, "name")),
		       json_string_value(json_object_get(v, "base_url")),
		       (long long)json_integer_value(json_object_get(v, "slots")), key,
		       json_is_true(json_object_get(v, "local")) ? ", local" : "");
	}
	printf("\nmodels                                               context  max out   $/1M in  $/1M out\n");
	json_array_foreach(json_object_get(d, "models"), i, v) {
		char name[128];
		snprintf(name, sizeof(name), "%s (%s @ %s)", json_string_value(json_object_get(v, "name")),
			 json_string_value(json_object_get(v, "id")),
			 json_string_value(json_object_get(v, "endpoint")));
		printf("  %-50s %8lld %8lld %9.3f %9.3f\n", name,
		       (long long)json_integer_value(json_object_get(v, "context")),
		       (long long)json_integer_value(json_object_get(v, "max_output")),
		       json_number_value(json_object_get(v, "price_in")),
		       json_number_value(json_object_get(v, "price_out")));
	}
	printf("\nroles (cheapest first; a failure escalates to the next)\n");
	if (json_object_size(json_object_get(d, "roles")) == 0)
		printf("  (none: every role uses the first model)\n");
	json_object_foreach(json_object_get(d, "roles"), k, v) {
		json_t *m;
		size_t j;
		printf("  %-12s", k);
		json_array_foreach(v, j, m)
			printf("%s%s", j ? " -> " : " ", json_string_value(m));
		printf("\n");
	}
done:
	json_decref(d);
	llm_registry_free(r);
	return 0;
}

static int print_delta(const char *t, size_t n, void *ud)
{
	(void)ud;
	fwrite(t, 1, n, stdout);
	fflush(stdout);
	return 0;
}

/* Sets *out to the number in v; whether it is above 0. */
static int positive(const char *v, int64_t *out)
{
	*out = cli_int(v);
	return *out > 0;
}

static int cmd_test(int argc, char **argv)
{
	llm_call call = {0};
	llm_request rq;
	llm_response out;
	llm_message msgs[2] = {{.role = "system", .content = "You are a helpful assistant. Answer "
							      "briefly."},
			       {.role = "user", .content = "Say hello in five words."}};
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_options opt;
	pg_pool *pool = NULL;
	pg_conn *probe = NULL;
	buf prompt;
	int rc = 1, stream = 0;
	int64_t max_tokens = 0;

	buf_init(&prompt, 1 << 20);
	call.role = "default";
	for (int a = 1; a < argc; a++) {
		const char *v;
		if (cli_opt(argc, argv, &a, "--role", &v) || cli_opt(argc, argv, &a, "--model", &v))
			call.role = v;
		else if (cli_opt(argc, argv, &a, "--project", &v))
			call.project = v;
		else if (cli_opt(argc, argv, &a, "--user", &v))
			call.user = v;
		else if (cli_opt(argc, argv, &a, "--max-tokens", &v) && positive(v, &max_tokens))
			continue;
		else if (cli_flag(argv, a, "--stream"))
			stream = 1;
		else if (argv[a][0] == '-' && argv[a][1])
			return cli_usage(USAGE);
		else
			buf_printf(&prompt, "%s%s", prompt.len ? " " : "", argv[a]);
	}
	if (prompt.len)
		msgs[1].content = buf_cstr(&prompt);
	if (llm_options_from_env(&opt) < 0) {
		buf_free(&prompt);
		return cli_fail("configuration");
	}
	if (load_registry(&r) != 0) {
		buf_free(&prompt);
		return 1;
	}
	/* the ledger when the database is there; the call works without it */
	if (pg_pool_new(&pool, cli_cfg.database_url, 2) == 0 &&
	    pg_pool_acquire(pool, 3000, &probe) == 0) {
		pg_pool_release(pool, probe);
		opt.pool = pool;
		if (cli_start_secrets(pool) < 0) {
			cli_fail("secrets");
			goto done;
		}
	} else {
		fprintf(stderr, "orchestrator: no database (%s): this call is not written to the "
				"ledger and no budget applies\n", err_last());
	}
	opt.stats_interval_ms = -1;
	if (llm_service_new(&s, r, &opt) < 0) {
		cli_fail("llm");
		goto done;
	}
	llm_request_init(&rq);
	rq.messages = msgs;
	rq.n_messages = 2;
	rq.max_tokens = (int)max_tokens;
	rq.stream = stream;
	rq.on_delta = stream ? print_delta : NULL;
	call.priority = LLM_PRIO_INTERACTIVE;
	call.worker = "cli";
	if (llm_chat(s, &call, &rq, &out) < 0) {
		if (stream)
			printf("\n");
		cli_fail("llm test");
		llm_response_free(&out);
		goto done;
	}
	if (stream)
		printf("\n");
	else
		printf("%s\n", out.content);
	for (size_t i = 0; i < out.n_tool_calls; i++)
		printf("tool call %s(%s)\n", out.tool_calls[i].name, out.tool_calls[i].arguments);
	fprintf(stderr, "\nmodel %s at %s (%s): %lld tokens in, %lld out%s, $%.6f, %.0f ms, "
			"%d attempt%s, finish %s\n", out.model, out.endpoint,
		out.provider_model[0] ? out.provider_model : "?", (long long)out.tokens_in,
		(long long)out.tokens_out, out.usage_estimated ? " (estimated)" : "", out.cost_usd,
		out.latency_ms, out.attempts, out.attempts == 1 ? "" : "s",
		llm_finish_name(out.finish));
	llm_response_free(&out);
	rc = 0;
done:
	llm_service_free(s);
	sec_runtime_stop(); /* before the pool its refresher uses */
	pg_pool_free(pool);
	buf_free(&prompt);
	return rc;
}

static int parse_usd(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s[0] == '$' ? s + 1 : s, &end);
	if (errno || *end || !isfinite(*out) || *out < 0) {
		fprintf(stderr, "orchestrator: '%s' is not an amount of USD (e.g. 5 or 12.50)\n", s);
		return -1;
	}
	return 0;
}

static int cmd_budget(int argc, char **argv)
{
	const char *action = "show", *kind = NULL, *scope = NULL, *amount = NULL, *per = NULL;
	int as_json = 0, rc = 0, a = 1;
	json_t *list = NULL, *v;
	pg_conn *c;
	double usd = 0, lim = 0;
	char actor[96];
	size_t i;

	if (argc > 1 && argv[1][0] != '-') {
		action = argv[1];
		a = 2;
	}
	for (; a < argc; a++) {
		const char *val;
		if (cli_opt(argc, argv, &a, "--project", &val)) {
			kind = "project";
			scope = val;
		} else if (cli_opt(argc, argv, &a, "--user", &val)) {
			kind = "user";
			scope = val;
		} else if (cli_opt(argc, argv, &a, "--limit", &val) ||
			   cli_opt(argc, argv, &a, "--add", &val)) {
			amount = val;
		} else if (cli_opt(argc, argv, &a, "--per", &val)) {
			per = val;
		} else if (cli_flag(argv, a, "--json")) {
			as_json = 1;
		} else {
			return cli_usage(USAGE);
		}
	}
	if ((strcmp(action, "show") != 0 && !kind) || (per && strcmp(action, "set") != 0))
		return cli_usage(USAGE);
	if (per && llm_budget_period_check(per) < 0) {
		fprintf(stderr, "orchestrator: --per %s: %s\n", per, err_last());
		return 2;
	}
	if ((strcmp(action, "set") == 0 || strcmp(action, "extend") == 0) &&
	    (!amount || parse_usd(amount, &usd) < 0))
		return amount ? 2 : cli_usage(USAGE);
	c = cli_db();
	if (!c)
		return 1;
	cli_audit_actor(actor, sizeof(actor));
	if (strcmp(action, "show") == 0) {
		rc = llm_budget_list(c, &list);
		if (rc == 0 && as_json) {
			cli_print_json(list);
		} else if (rc == 0) {
			if (json_array_size(list) == 0)
				printf("no budgets: every project and user may spend without limit "
				       "(set ORCH_LLM_PROJECT_BUDGET for a default)\n");
			else
				printf("%-8s %-24s %-6s %12s %12s %12s  %s\n", "kind", "scope", "per",
				       "limit $", "spent $", "reserved $", "resets");
			json_array_foreach(list, i, v) {
				char resets[32];
				cli_fmt_utc(json_string_value(json_object_get(v, "resets_at")), resets,
					    sizeof(resets));
				printf("%-8s %-24s %-6s %12.4f %12.4f %12.4f  %s\n",
				       json_string_value(json_object_get(v, "kind")),
				       json_string_value(json_object_get(v, "scope")),
				       json_string_value(json_object_get(v, "period")),
				       json_number_value(json_object_get(v, "limit_usd")),
				       json_number_value(json_object_get(v, "spent_usd")),
				       json_number_value(json_object_get(v, "reserved_usd")), resets);
			}
		}
		json_decref(list);
	} else if (strcmp(action, "set") == 0) {
		rc = llm_config_budget(c, actor, kind, scope, usd, per, 0, NULL);
		if (rc == 0 && (!per || strcmp(per, "total") == 0))
			printf("the %s '%s' may now spend up to $%.4f%s\n", kind, scope, usd,
			       per ? " in total" : "");
		else if (rc == 0)
			printf("the %s '%s' may now spend up to $%.4f per %s (UTC)\n", kind, scope,
			       usd, per);
	} else if (strcmp(action, "extend") == 0) {
		rc = llm_config_budget(c, actor, kind, scope, -1, NULL, usd, &lim);
		if (rc == 0)
			printf("the budget of %s '%s' is now $%.4f\n", kind, scope, lim);
	} else if (strcmp(action, "remove") == 0) {
		rc = llm_config_budget(c, actor, kind, scope, -1, NULL, 0, NULL);
		if (rc == 0)
			printf("the %s '%s' has no budget now\n", kind, scope);
	} else {
		pg_conn_close(c);
		return cli_usage(USAGE);
	}
	pg_conn_close(c);
	return rc < 0 ? cli_fail("llm budget") : 0;
}

int cmd_llm(int argc, char **argv)
{
	if (argc < 2 || cli_flag(argv, 1, "--help")) {
		puts(USAGE);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "models") == 0)
		return cmd_models(argc - 1, argv + 1);
	if (strcmp(argv[1], "test") == 0)
		return cmd_test(argc - 1, argv + 1);
	if (strcmp(argv[1], "budget") == 0)
		return cmd_budget(argc - 1, argv + 1);
	return cli_usage(USAGE);
}
