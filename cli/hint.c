/*
 * hint — what to do when no language model is configured: printed once by
 * `serve` (so `make run` without a model says it) and by `eval run`. It
 * names the two variables, lists the model servers found on their usual
 * local ports (llama-server 8080, Ollama 11434, vLLM 8000; GET /v1/models,
 * half a second each) with the models they serve, and points at the demo.
 */
#include "cli/cli.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct probe {
	int port;
	const char *server;
} probe;

/* The ids of the models `port` serves, into out (", "-separated); 0 when
 * something answered /v1/models as an OpenAI-compatible server. */
static int models_at(int port, buf *out)
{
	http_client *hc = NULL;
	http_request rq;
	http_response resp;
	char url[64];
	json_t *j = NULL;
	size_t i;
	const json_t *m;
	int rc;

	memset(&rq, 0, sizeof(rq));
	memset(&resp, 0, sizeof(resp));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/models", port);
	rq.url = url;
	rq.connect_timeout_ms = 500;
	rq.timeout_ms = 1500;
	rq.max_response = 1 << 20;
	rc = http_client_new(&hc);
	if (rc == 0)
		rc = http_do(hc, &rq, &resp);
	if (rc == 0 && resp.status == 200)
		j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	if (!json_is_array(json_object_get(j, "data")))
		rc = -1;
	json_array_foreach(json_object_get(j, "data"), i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		if (id)
			buf_printf(out, "%s%s", out->len ? ", " : "", id);
	}
	json_decref(j);
	http_response_free(&resp);
	http_client_free(hc);
	err_clear();
	return rc < 0 ? -1 : 0;
}

void cli_model_hint(void)
{
	static const probe usual[] = {{8080, "llama-server"}, {11434, "Ollama"}, {8000, "vLLM"}};
	probe list[8];
	int n = 0, found = 0;
	const char *extra = getenv("ORCH_PROBE_PORTS");

	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++)
		list[n++] = usual[i];
	/* ORCH_PROBE_PORTS: more ports to look at, "18080,9000" */
	for (const char *p = extra; p && *p && n < 8;) {
		char *end;
		long port = strtol(p, &end, 10);
		if (end == p)
			break;
		if (port > 0 && port < 65536) {
			list[n].port = (int)port;
			list[n++].server = "a server";
		}
		p = *end == ',' ? end + 1 : end;
	}
	fprintf(stderr,
		"orchestrator: no language model is configured, so the factory cannot start projects.\n"
		"  Point it at any OpenAI-compatible server (llama.cpp, Ollama, vLLM, OpenAI, ...):\n"
		"    LLM_BASE_URL  the server's API, e.g. http://127.0.0.1:8080/v1\n"
		"    LLM_MODEL     the model's id on that server\n"
		"  (LLM_API_KEY when it needs a key; ORCH_MODELS for a models file with several\n"
		"  endpoints and roles: README.md, \"LLM models and budgets\").\n");
	char looked[200] = "";
	for (int i = 0; i < n; i++) {
		size_t used = strlen(looked);
		snprintf(looked + used, sizeof(looked) - used, "%s%d (%s)", i ? ", " : "",
			 list[i].port, list[i].server);
	}
	for (int i = 0; i < n; i++) {
		buf ids;
		buf_init(&ids, 4096);
		if (models_at(list[i].port, &ids) == 0) {
			const char *first = ids.len ? buf_cstr(&ids) : "MODEL";
			size_t k = strcspn(first, ",");
			if (!found)
				fprintf(stderr, "  Found on this machine (ports looked at: %s):\n",
					looked);
			found = 1;
			fprintf(stderr, "    %s on 127.0.0.1:%d serves %s\n", list[i].server, list[i].port,
				ids.len ? buf_cstr(&ids) : "(no models listed)");
			fprintf(stderr, "      LLM_BASE_URL=http://127.0.0.1:%d/v1 LLM_MODEL=%.*s make run\n",
				list[i].port, (int)k, first);
		}
		buf_free(&ids);
	}
	if (!found)
		fprintf(stderr, "  No model server answers on 127.0.0.1, ports %s.\n", looked);
	fprintf(stderr, "  To see the factory build a project without a model: make demo\n");
}
