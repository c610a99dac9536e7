#include "llm/server.h"
#include "core/buf.h"
#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define INFO_MAX ((size_t)1 << 20)

const char *llm_health_name(int h)
{
	switch (h) {
	case LLM_HEALTH_UP: return "up";
	case LLM_HEALTH_LOADING: return "loading";
	default: return "down";
	}
}

void llm_server_root(const char *base_url, char *out, size_t cap)
{
	size_t n = strlen(base_url);

	snprintf(out, cap, "%s", base_url);
	if (n >= 3 && strcmp(base_url + n - 3, "/v1") == 0 && n - 3 < cap)
		out[n - 3] = '\0';
}

/* One GET or POST with a capped body. 0 when a response arrived (any
 * status); its status and body in *resp (freed by the caller). */
static int call(http_client *c, const char *method, const char *url, const char *const *headers,
		const char *body, int64_t timeout_ms, http_response *resp)
{
	http_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = headers;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.connect_timeout_ms = timeout_ms;
	rq.timeout_ms = timeout_ms;
	rq.max_response = INFO_MAX;
	return http_do(c, &rq, resp);
}

/* The "error.message" of a JSON error body, or an excerpt of the body. */
static void error_text(const http_response *r, char *out, size_t cap)
{
	json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

	if (m)
		snprintf(out, cap, "HTTP %ld: %s", r->status, m);
	else
		snprintf(out, cap, "HTTP %ld", r->status);
	json_decref(j);
}

int llm_server_health(http_client *c, const char *base_url, const char *const *headers,
		      int64_t timeout_ms, char *why, size_t cap)
{
	char root[600], url[640], tmp[256];
	http_response resp;
	int rc, h;

	llm_server_root(base_url, root, sizeof(root));
	snprintf(url, sizeof(url), "%s/health", root);
	rc = call(c, "GET", url, headers, NULL, timeout_ms, &resp);
	if (rc < 0) {
		snprintf(tmp, sizeof(tmp), "%s", err_last());
		h = LLM_HEALTH_DOWN;
	} else if (resp.status >= 500) {
		error_text(&resp, tmp, sizeof(tmp));
		h = LLM_HEALTH_LOADING;
	} else {
		snprintf(tmp, sizeof(tmp), "HTTP %ld", resp.status);
		h = LLM_HEALTH_UP;
	}
	if (why)
		snprintf(why, cap, "%s", tmp);
	http_response_free(&resp);
	err_clear();
	return h;
}

static void add_model(llm_server_info *out, const char *id)
{
	if (!id || !*id || out->n_models >= LLM_SERVER_MAX_MODELS || llm_server_lists(out, id))
		return;
	snprintf(out->models[out->n_models++], sizeof(out->models[0]), "%s", id);
}

int llm_server_lists(const llm_server_info *info, const char *id)
{
	for (int i = 0; i < info->n_models; i++)
		if (strcmp(info->models[i], id) == 0)
			return 1;
	return 0;
}

/* Reads llama.cpp's /props: the context per slot and the slot count. */
static void read_props(http_client *c, const char *root, const char *const *headers,
		       int64_t timeout_ms, llm_server_info *out)
{
	char url[640];
	http_response resp;
	json_t *j = NULL, *v;

	snprintf(url, sizeof(url), "%s/props", root);
	if (call(c, "GET", url, headers, NULL, timeout_ms, &resp) == 0 && resp.status == 200)
		j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	v = json_object_get(json_object_get(j, "default_generation_settings"), "n_ctx");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		out->n_ctx = json_integer_value(v);
	v = json_object_get(j, "total_slots");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 100000)
		out->total_slots = (int)json_integer_value(v);
	json_decref(j);
	http_response_free(&resp);
	err_clear();
}

int llm_server_probe(http_client *c, const char *base_url, const char *const *headers,
		     int64_t timeout_ms, llm_server_info *out)
{
	char root[600], url[640];
	http_response resp;
	json_t *j = NULL, *data, *m;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "%s/models", base_url);
	rc = call(c, "GET", url, headers, NULL, timeout_ms, &resp);
	if (rc < 0)
		goto done;
	if (resp.status != 200) {
		char t[256];
		error_text(&resp, t, sizeof(t));
		rc = err_set(resp.status == 404 ? ERR_NOTFOUND : ERR_HTTP, "the model list: %s", t);
		goto done;
	}
	j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	data = json_object_get(j, "data");
	if (!json_is_array(data)) {
		rc = err_set(ERR_PARSE, "the model list is not {\"data\": [...]}");
		goto done;
	}
	out->answered = 1;
	json_array_foreach(data, i, m) {
		json_t *al = json_object_get(m, "aliases"), *a;
		size_t k;
		add_model(out, json_string_value(json_object_get(m, "id")));
		json_array_foreach(al, k, a)
			add_model(out, json_string_value(a));
		if (json_is_string(json_object_get(m, "owned_by")) &&
		    strcmp(json_string_value(json_object_get(m, "owned_by")), "llamacpp") == 0)
			out->llamacpp = 1;
	}
	if (out->llamacpp) {
		llm_server_root(base_url, root, sizeof(root));
		read_props(c, root, headers, timeout_ms, out);
	}
	rc = 0;
done:
	json_decref(j);
	http_response_free(&resp);
	return rc;
}

int llm_server_slots_get(http_client *c, const char *base_url, const char *const *headers,
			 int64_t timeout_ms, llm_server_slots *out)
{
	char root[600], url[640];
	http_response resp;
	json_t *j = NULL, *s;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	llm_server_root(base_url, root, sizeof(root));
	snprintf(url, sizeof(url), "%s/slots", root);
	rc = call(c, "GET", url, headers, NULL, timeout_ms, &resp);
	if (rc < 0)
		goto done;
	if (resp.status != 200) {
		char t[256];
		error_text(&resp, t, sizeof(t));
		rc = err_set(resp.status == 404 || resp.status == 501 ? ERR_NOTFOUND : ERR_HTTP,
			     "the slots: %s", t);
		goto done;
	}
	j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	if (!json_is_array(j)) {
		rc = err_set(ERR_PARSE, "the slots are not a JSON array");
		goto done;
	}
	json_array_foreach(j, i, s) {
		json_t *ctx = json_object_get(s, "n_ctx");
		out->total++;
		if (json_is_true(json_object_get(s, "is_processing")))
			out->busy++;
		if (out->n_ctx == 0 && json_is_integer(ctx))
			out->n_ctx = json_integer_value(ctx);
	}
done:
	json_decref(j);
	http_response_free(&resp);
	return rc;
}

int llm_server_tokenize(http_client *c, const char *base_url, const char *const *headers,
			const char *text, size_t len, int64_t timeout_ms, int64_t *out_tokens)
{
	char root[600], url[640];
	http_response resp;
	json_t *j = NULL, *toks;
	buf body;
	int rc;

	*out_tokens = 0;
	memset(&resp, 0, sizeof(resp));
	buf_init(&body, 0);
	llm_server_root(base_url, root, sizeof(root));
	snprintf(url, sizeof(url), "%s/tokenize", root);
	rc = buf_puts(&body, "{\"add_special\":false,\"content\":\"");
	if (rc == 0) {
		/* buf_put_json_str needs a NUL-terminated string: copy the slice */
		buf tmp;
		buf_init(&tmp, 0);
		rc = buf_append(&tmp, text, len);
		if (rc == 0)
			rc = buf_put_json_str(&body, buf_cstr(&tmp));
		buf_free(&tmp);
	}
	if (rc == 0)
		rc = buf_puts(&body, "\"}");
	if (rc < 0)
		goto done;
	rc = call(c, "POST", url, headers, buf_cstr(&body), timeout_ms, &resp);
	if (rc < 0)
		goto done;
	if (resp.status != 200) {
		char t[256];
		error_text(&resp, t, sizeof(t));
		rc = err_set(ERR_HTTP, "tokenize: %s", t);
		goto done;
	}
	j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	toks = json_object_get(j, "tokens");
	if (!json_is_array(toks)) {
		rc = err_set(ERR_PARSE, "tokenize: the answer has no \"tokens\" array");
		goto done;
	}
	*out_tokens = (int64_t)json_array_size(toks);
done:
	json_decref(j);
	http_response_free(&resp);
	buf_free(&body);
	return rc;
}
