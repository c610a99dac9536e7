/* The model registry file (llm/registry.c, llm_registry_load_text): the
 * operator's models.json, read at start-up.
 *
 * Properties: a file is loaded or refused with a message naming its place;
 * a loaded registry holds only what it promises: every model on a defined
 * endpoint, every role's models defined, slots and timeouts positive,
 * prices and contexts not negative, base URLs http(s) without a trailing
 * slash; describing it for `orchestrator llm models` works and names no
 * key. */
#include "tests/fuzz/fuzz.h"

#include "core/err.h"
#include "llm/registry.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	llm_registry *r = NULL;
	char *text = fz_str(data, size);
	json_t *desc = NULL;
	int rc = llm_registry_load_text(&r, text, "models.json");
	int ne, nm;

	free(text);
	if (rc < 0) {
		FZ_CHECK(r == NULL, "a refused file left a registry");
		FZ_CHECK(strncmp(err_last(), "models.json", 11) == 0, "the message names no place: %s",
			 err_last());
		return 0;
	}
	ne = llm_registry_n_endpoints(r);
	nm = llm_registry_n_models(r);
	for (int i = 0; i < ne; i++) {
		const llm_endpoint *e = llm_registry_endpoint(r, i);
		size_t n = strlen(e->base_url);
		FZ_CHECK(e->name[0] && (strncmp(e->base_url, "http://", 7) == 0 ||
					strncmp(e->base_url, "https://", 8) == 0),
			 "endpoint '%s' at '%s'", e->name, e->base_url);
		FZ_CHECK(n > 0 && e->base_url[n - 1] != '/', "base_url '%s' ends in '/'", e->base_url);
		FZ_CHECK(e->slots >= 1 && e->timeout_ms > 0 && e->connect_timeout_ms > 0 &&
				 e->max_retries >= 0 && e->retry_base_ms >= 0 &&
				 e->retry_max_ms >= e->retry_base_ms && e->idle_timeout_ms >= 0,
			 "endpoint '%s': slots %d, timeout %lld, retries %d", e->name, e->slots,
			 (long long)e->timeout_ms, e->max_retries);
	}
	for (int i = 0; i < nm; i++) {
		const llm_model *m = llm_registry_model(r, i);
		FZ_CHECK(m->name[0] && m->id[0], "a model without a name or id");
		FZ_CHECK(m->endpoint >= 0 && m->endpoint < ne, "model '%s' on endpoint %d", m->name,
			 m->endpoint);
		FZ_CHECK(m->context >= 0 && m->max_output >= 0 && m->price_in >= 0 && m->price_out >= 0,
			 "model '%s': negative figures", m->name);
	}
	for (int i = 0; i < llm_registry_n_roles(r); i++) {
		const int *models;
		int n;
		const char *role = llm_registry_role_name(r, i);
		FZ_CHECK(role && llm_registry_route(r, role, &models, &n) == 0, "role %d", i);
		for (int k = 0; k < n; k++)
			FZ_CHECK(models[k] >= 0 && models[k] < nm, "role '%s' routes to model %d", role,
				 models[k]);
	}
	FZ_CHECK(llm_registry_describe(r, &desc) == 0 && desc, "describe failed: %s", err_last());
	json_decref(desc);
	llm_registry_free(r);
	return 0;
}
