/* config — the stored model configuration. See config.h. */
#include "llm/config.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/health.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"
#include "llm/ledger.h"
#include "llm/server.h"

#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MS 3000
#define CHANNEL "orch_llm_config"

static const pg_stmt STMT_HEAD_LOCK = {
	"llm_config_head_lock",
	"SELECT version, stored, coalesce(scheduler::text, ''), coalesce(budgets::text, ''), "
	"coalesce(updated_by, ''), to_char(updated_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM llm_config WHERE id = 1 FOR UPDATE",
	0,
};

static const pg_stmt STMT_HEAD = {
	"llm_config_head",
	"SELECT version, stored, coalesce(scheduler::text, ''), coalesce(budgets::text, ''), "
	"coalesce(updated_by, ''), to_char(updated_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM llm_config WHERE id = 1",
	0,
};

static const pg_stmt STMT_ENDPOINTS = {
	"llm_config_endpoints", "SELECT name, spec::text FROM llm_config_endpoints ORDER BY name", 0,
};

static const pg_stmt STMT_MODELS = {
	"llm_config_models", "SELECT name, spec::text FROM llm_config_models ORDER BY name", 0,
};

static const pg_stmt STMT_ROLES = {
	"llm_config_roles",
	"SELECT name, array_to_json(models)::text FROM llm_config_roles ORDER BY name", 0,
};

static const pg_stmt STMT_SET_ENDPOINT = {
	"llm_config_set_endpoint",
	"INSERT INTO llm_config_endpoints (name, spec, updated_by) VALUES ($1, $2::jsonb, $3) "
	"ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now(), "
	"updated_by = EXCLUDED.updated_by",
	3,
};

static const pg_stmt STMT_SET_MODEL = {
	"llm_config_set_model",
	"INSERT INTO llm_config_models (name, spec, updated_by) VALUES ($1, $2::jsonb, $3) "
	"ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now(), "
	"updated_by = EXCLUDED.updated_by",
	3,
};

static const pg_stmt STMT_SET_ROLE = {
	"llm_config_set_role",
	"INSERT INTO llm_config_roles (name, models, updated_by) SELECT $1, "
	"array(SELECT jsonb_array_elements_text($2::jsonb)), $3 ON CONFLICT (name) DO UPDATE "
	"SET models = EXCLUDED.models, updated_at = now(), updated_by = EXCLUDED.updated_by",
	3,
};

static const pg_stmt STMT_DEL_ENDPOINT = {
	"llm_config_del_endpoint", "DELETE FROM llm_config_endpoints WHERE name = $1", 1,
};
static const pg_stmt STMT_DEL_MODEL = {
	"llm_config_del_model", "DELETE FROM llm_config_models WHERE name = $1", 1,
};
static const pg_stmt STMT_DEL_ROLE = {
	"llm_config_del_role", "DELETE FROM llm_config_roles WHERE name = $1", 1,
};

static const pg_stmt STMT_BUMP = {
	"llm_config_bump",
	"UPDATE llm_config SET version = version + 1, stored = $1::boolean, "
	"scheduler = nullif($2, '')::jsonb, budgets = nullif($3, '')::jsonb, updated_at = now(), "
	"updated_by = $4 WHERE id = 1 RETURNING version",
	4,
};

static const pg_stmt STMT_AUDIT = {
	"llm_config_audit",
	"INSERT INTO llm_config_audit (actor, action, kind, name, old, new, version) VALUES ($1, "
	"$2, $3, $4, nullif($5, '')::jsonb, nullif($6, '')::jsonb, (SELECT version FROM llm_config "
	"WHERE id = 1))",
	6,
};

static const pg_stmt STMT_NOTIFY = {
	"llm_config_notify", "SELECT pg_notify('" CHANNEL "', $1)", 1,
};

static const pg_stmt STMT_AUDIT_LIST = {
	"llm_config_audit_list",
	"SELECT coalesce(json_agg(json_build_object('id', id, 'at', to_char(at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"'), 'actor', actor, 'action', action, 'kind', kind, 'name', "
	"name, 'old', old, 'new', new, 'version', version) ORDER BY id DESC), '[]')::text FROM "
	"(SELECT * FROM llm_config_audit ORDER BY id DESC LIMIT $1) a",
	1,
};

static const pg_stmt STMT_PROMPTS = {
	"llm_config_prompts",
	"SELECT name, body, coalesce(updated_by, ''), to_char(updated_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM prompt_templates ORDER BY name",
	0,
};

static const pg_stmt STMT_SET_PROMPT = {
	"llm_config_set_prompt",
	"INSERT INTO prompt_templates (name, body, updated_by) VALUES ($1, $2, $3) ON CONFLICT "
	"(name) DO UPDATE SET body = EXCLUDED.body, updated_at = now(), updated_by = "
	"EXCLUDED.updated_by",
	3,
};

static const pg_stmt STMT_DEL_PROMPT = {
	"llm_config_del_prompt", "DELETE FROM prompt_templates WHERE name = $1", 1,
};

static const pg_stmt STMT_CLEAR = {
	"llm_config_clear",
	"WITH e AS (DELETE FROM llm_config_endpoints), m AS (DELETE FROM llm_config_models), "
	"r AS (DELETE FROM llm_config_roles) UPDATE llm_config SET version = version + 1, stored = "
	"false, scheduler = NULL, budgets = NULL, updated_at = now(), updated_by = $1 WHERE id = 1 "
	"RETURNING version",
	1,
};

static const pg_stmt STMT_BUDGET_GET = {
	"llm_config_budget_get",
	"SELECT json_build_object('limit_usd', limit_usd::float8, 'period', period)::text FROM "
	"llm_budgets WHERE kind = $1 AND scope = $2",
	2,
};

/* Rows (name, JSON text) into obj[name]. */
static int rows_into(pg_conn *c, const pg_stmt *st, json_t *obj)
{
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, st, NULL);

	for (int i = 0; rc == 0 && i < pg_rows(r); i++) {
		json_t *v = json_loads(pg_val(r, i, 1), 0, NULL);
		if (!v) {
			rc = err_set(ERR_PARSE, "the stored %s '%s' is not JSON", st->name,
				     pg_val(r, i, 0));
			break;
		}
		json_object_set_new(obj, pg_val(r, i, 0), v);
	}
	PQclear(r);
	return rc;
}

/* The stored document from the tables, with the head's row `head`. */
static int doc_from(pg_conn *c, const PGresult *head, json_t **out)
{
	json_t *doc = json_pack("{s:{}, s:{}, s:{}}", "endpoints", "models", "roles");
	int rc;

	*out = NULL;
	if (!doc)
		return err_set(ERR_NOMEM, "out of memory");
	rc = rows_into(c, &STMT_ENDPOINTS, json_object_get(doc, "endpoints"));
	if (rc == 0)
		rc = rows_into(c, &STMT_MODELS, json_object_get(doc, "models"));
	if (rc == 0)
		rc = rows_into(c, &STMT_ROLES, json_object_get(doc, "roles"));
	if (rc == 0 && *pg_val(head, 0, 2))
		json_object_set_new(doc, "scheduler", json_loads(pg_val(head, 0, 2), 0, NULL));
	if (rc == 0 && *pg_val(head, 0, 3))
		json_object_set_new(doc, "budgets", json_loads(pg_val(head, 0, 3), 0, NULL));
	if (rc < 0) {
		json_decref(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

int llm_config_read(pg_conn *c, json_t **out_doc, int64_t *out_version, int *out_stored)
{
	PGresult *head = NULL;
	int rc;

	*out_doc = NULL;
	rc = pg_exec_stmt(c, &head, &STMT_HEAD, NULL);
	if (rc == 0 && pg_rows(head) != 1)
		rc = err_set(ERR_DB, "the llm_config row is missing: run 'orchestrator migrate'");
	if (rc == 0) {
		*out_version = pg_int(head, 0, 0);
		*out_stored = strcmp(pg_val(head, 0, 1), "t") == 0;
		rc = doc_from(c, head, out_doc);
	}
	PQclear(head);
	return rc;
}

int llm_config_load(pg_conn *c, llm_registry **out, int64_t *out_version)
{
	json_t *doc = NULL;
	int stored = 0, rc;
	char origin[64];

	*out = NULL;
	rc = llm_config_read(c, &doc, out_version, &stored);
	if (rc == 0 && stored) {
		snprintf(origin, sizeof(origin), "database (version %lld)", (long long)*out_version);
		rc = llm_registry_load_json(out, doc, origin);
	}
	json_decref(doc);
	return rc;
}

/* --- validating a change --- */

static int name_ok(const char *n, size_t max)
{
	size_t len = n ? strlen(n) : 0;

	if (len == 0 || len > max)
		return 0;
	for (const char *p = n; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') ||
			 (p > n && (*p == '.' || *p == '_' || *p == '-' || *p == ':' || *p == '/'));
		if (!ok)
			return 0;
	}
	return 1;
}

static void note(llm_config_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(llm_config_result *out, const char *fmt, ...)
{
	size_t used = strlen(out->notes);
	va_list ap;

	if (used + 2 >= sizeof(out->notes))
		return;
	va_start(ap, fmt);
	vsnprintf(out->notes + used, sizeof(out->notes) - used, fmt, ap);
	va_end(ap);
	used = strlen(out->notes);
	if (used + 1 < sizeof(out->notes)) {
		out->notes[used] = '\n';
		out->notes[used + 1] = '\0';
	}
}

/* Keys only from the secrets store: an endpoint that names an environment
 * variable is refused (another process does not have it). */
static int keys_from_secrets(const json_t *doc)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)json_object_get(doc, "endpoints"), k, v) {
		const char *env = json_string_value(json_object_get(v, "api_key_env"));
		if (env)
			return err_set(ERR_INVALID,
				       "endpoint '%s' takes its key from the environment variable %s; "
				       "a stored configuration takes keys only from the secrets store, "
				       "so that every process has them: store it with 'printf %%s "
				       "\"$%s\" | orchestrator secrets set %s' and give the endpoint "
				       "\"api_key_secret\": \"%s\"", k, env, env, env, env);
	}
	return 0;
}

/* The seed: a registry's document with keys from the environment turned
 * into secrets of the same name (they must be stored: checked with the
 * other keys). */
static json_t *seed_doc(const llm_registry *seed)
{
	json_t *doc = seed ? llm_registry_to_json(seed)
			   : json_pack("{s:{}, s:{}, s:{}}", "endpoints", "models", "roles");
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(doc, "endpoints"), k, v) {
		json_t *env = json_object_get(v, "api_key_env");
		if (json_is_string(env)) {
			json_object_set(v, "api_key_secret", env);
			json_object_del(v, "api_key_env");
		}
	}
	return doc;
}

/* Every endpoint whose key is a secret can read it. */
static int keys_readable(llm_registry *reg, const char *only)
{
	for (int i = 0; i < llm_registry_n_endpoints(reg); i++) {
		const llm_endpoint *e = llm_registry_endpoint(reg, i);
		buf key;
		int rc;

		if (only && strcmp(e->name, only) != 0)
			continue;
		buf_init(&key, 8192);
		rc = llm_registry_key(reg, i, &key);
		buf_free_wipe(&key);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Probes endpoint `ep` of reg: its server must answer; where it lists
 * model ids, the models of the change (`model`, or every model on the
 * endpoint when NULL) must be among them (a llama.cpp server answers any
 * id: only noted). */
static int probe(llm_registry *reg, int ep, const char *model, llm_config_result *out)
{
	const llm_endpoint *e = llm_registry_endpoint(reg, ep);
	http_client *hc = NULL;
	llm_server_info info;
	const char *hdrs[3] = {"Accept: application/json", NULL, NULL};
	buf key, auth;
	int rc;

	buf_init(&key, 8192);
	buf_init(&auth, 8300);
	rc = llm_registry_key(reg, ep, &key);
	if (rc == 0 && key.len > 0 && buf_printf(&auth, "Authorization: Bearer %s", key.data) == 0)
		hdrs[1] = auth.data;
	if (rc == 0)
		rc = http_client_new(&hc);
	if (rc == 0)
		rc = llm_server_probe(hc, e->base_url, hdrs, PROBE_MS, &info);
	http_client_free(hc);
	buf_free_wipe(&key);
	buf_free_wipe(&auth);
	if (rc == ERR_HTTP)
		return err_set(ERR_HTTP, "endpoint '%s' (%s) does not answer: %s; check base_url and "
					 "that the server runs", e->name, e->base_url, err_last());
	if (rc == ERR_AUTH)
		return rc;
	if (rc < 0) {
		note(out, "endpoint %s answers but has no model list (%s): model ids not checked",
		     e->name, err_last());
		err_clear();
		return 0;
	}
	note(out, "endpoint %s answers%s, %d model id%s listed", e->name,
	     info.llamacpp ? " (llama.cpp)" : "", info.n_models, info.n_models == 1 ? "" : "s");
	for (int k = 0; k < llm_registry_n_models(reg); k++) {
		const llm_model *m = llm_registry_model(reg, k);
		if (m->endpoint != ep || (model && strcmp(m->name, model) != 0))
			continue;
		if (info.n_models == 0 || llm_server_lists(&info, m->id))
			continue;
		if (info.llamacpp) {
			note(out, "model %s: llama-server does not list id '%s' but answers any id with "
				  "the model it has loaded", m->name, m->id);
			continue;
		}
		return err_set(ERR_NOTFOUND,
			       "endpoint '%s' does not serve model id '%s' (model %s); it lists: %s%s",
			       e->name, m->id, m->name, info.models[0],
			       info.n_models > 1 ? ", ..." : "");
	}
	return 0;
}

/* One short call to model `model` of the candidate `doc`, through the
 * provider's quirks, in a service of its own (no ledger). */
static int try_model(const json_t *doc, const char *model, llm_config_result *out)
{
	llm_registry *reg = NULL;
	llm_service *svc = NULL;
	llm_message msg = {"user", "Reply with the single word: ok", NULL, NULL, NULL, 0};
	llm_request rq;
	llm_response resp;
	llm_call call;
	int rc;

	rc = llm_registry_load_json(&reg, doc, "the change");
	if (rc == 0)
		rc = llm_service_new(&svc, reg, NULL);
	if (rc < 0)
		return rc;
	llm_request_init(&rq);
	rq.messages = &msg;
	rq.n_messages = 1;
	rq.max_tokens = 16;
	memset(&call, 0, sizeof(call));
	call.role = model;
	call.priority = LLM_PRIO_INTERACTIVE;
	rc = llm_chat(svc, &call, &rq, &resp);
	if (rc < 0)
		rc = err_set(ERR_HTTP, "a test call to model '%s' failed: %s", model, err_last());
	else
		note(out, "model %s answered a test call in %.0f ms", model, resp.latency_ms);
	llm_response_free(&resp);
	llm_service_free(svc);
	return rc;
}

/* The {{names}} of a prompt text, comma-separated into out. */
static void placeholders(const char *text, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (const char *p = strstr(text, "{{"); p; p = strstr(p + 2, "{{")) {
		const char *close = strstr(p + 2, "}}");
		char name[64];
		if (!close || close - p - 2 <= 0 || close - p - 2 >= (long)sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(close - p - 2), p + 2);
		{
			char pat[70];
			snprintf(pat, sizeof(pat), ",%s,", name);
			/* skip a name listed already */
			if (used) {
				char tmp[1100];
				snprintf(tmp, sizeof(tmp), ",%s,", out);
				if (strstr(tmp, pat))
					continue;
			}
		}
		{
			int n = snprintf(out + used, cap - used, "%s%s", used ? "," : "", name);
			if (n < 0 || (size_t)n >= cap - used)
				break;
			used += (size_t)n;
		}
	}
}

static int prompt_path_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	return n > 3 && strcmp(name + n - 3, ".md") == 0 &&
	       (strncmp(name, "nodes/prompts/", 14) == 0 ||
		strncmp(name, "spawner/prompts/", 16) == 0) &&
	       embed_find(name) != NULL;
}

/* A prompt template: a built-in prompt's path, a text that uses only the
 * built-in one's placeholders. */
static int check_prompt(const char *name, const json_t *value)
{
	const orch_embedded_file *f;
	char known[1024], used[1024];
	const char *p;

	if (!prompt_path_ok(name))
		return err_set(ERR_NOTFOUND,
			       "'%s' is not a built-in prompt: name one of nodes/prompts/*.md or "
			       "spawner/prompts/*.md ('orchestrator models prompts' lists them)",
			       name ? name : "");
	if (!value)
		return 0;
	if (!json_is_string(value) || json_string_length(value) == 0 ||
	    json_string_length(value) > 262144)
		return err_set(ERR_INVALID, "a prompt template is a text of 1 to 262144 bytes");
	f = embed_find(name);
	placeholders(f->data, known, sizeof(known));
	placeholders(json_string_value(value), used, sizeof(used));
	for (p = used; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char pat[80], all[1100];
		snprintf(pat, sizeof(pat), ",%.*s,", (int)len, p);
		snprintf(all, sizeof(all), ",%s,", known);
		if (!strstr(all, pat))
			return err_set(ERR_INVALID,
				       "the template uses {{%.*s}}, which %s does not fill (it fills: "
				       "%s)", (int)len, p, name, known[0] ? known : "nothing");
		p += len + (comma ? 1 : 0);
	}
	return 0;
}

/* The member of `doc` a change addresses: its parent object and key. */
static json_t *section(json_t *doc, const char *kind)
{
	const char *sec = strcmp(kind, "endpoint") == 0 ? "endpoints"
			  : strcmp(kind, "model") == 0  ? "models"
							: "roles";
	json_t *o = json_object_get(doc, sec);

	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(doc, sec, o);
	}
	return o;
}

static char *dump(const json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
}

/* Writes every object of `doc` into the tables (the seed). */
static int store_all(pg_conn *c, const json_t *doc, const char *actor)
{
	static const struct { const char *sec; const pg_stmt *st; } parts[] = {
		{"endpoints", &STMT_SET_ENDPOINT}, {"models", &STMT_SET_MODEL},
		{"roles", &STMT_SET_ROLE},
	};
	int rc = 0;

	for (size_t p = 0; rc == 0 && p < 3; p++) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)json_object_get(doc, parts[p].sec), k, v) {
			char *t = dump(v);
			const char *params[3] = {k, t, actor};
			rc = t ? pg_exec_stmt(c, NULL, parts[p].st, params)
			       : err_set(ERR_NOMEM, "out of memory");
			free(t);
			if (rc < 0)
				break;
		}
	}
	return rc;
}

static int audit_row(pg_conn *c, const char *actor, const char *action, const char *kind,
		     const char *name, const json_t *old, const json_t *new_value)
{
	char *o = dump(old), *n = dump(new_value);
	const char *params[6] = {actor, action, kind, name ? name : "", o ? o : "", n ? n : ""};
	int rc = pg_exec_stmt(c, NULL, &STMT_AUDIT, params);

	free(o);
	free(n);
	return rc;
}

int llm_config_audit(pg_conn *c, const char *actor, const char *action, const char *kind,
		     const char *name, const json_t *old, const json_t *new_value)
{
	return audit_row(c, actor, action, kind, name, old, new_value);
}

/* Stores the change of a prompt template (no registry involved). */
static int apply_prompt(pg_conn *c, const llm_config_change *ch, llm_config_result *out)
{
	PGresult *r = NULL;
	json_t *old = NULL;
	const char *p1[1] = {ch->name};
	int rc;

	rc = check_prompt(ch->name, ch->value);
	if (rc < 0)
		return rc;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = pg_exec_stmt(c, &r, &STMT_HEAD_LOCK, NULL);
	if (rc == 0 && ch->expect_version >= 0 && pg_int(r, 0, 0) != ch->expect_version)
		rc = err_set(ERR_CONFLICT, "the configuration changed meanwhile (now version %lld, by "
					   "%s): reload and make your change again",
			     (long long)pg_int(r, 0, 0), pg_val(r, 0, 4));
	PQclear(r);
	r = NULL;
	if (rc == 0)
		rc = pg_exec(c, &r, "SELECT body FROM prompt_templates WHERE name = $1", 1, p1);
	if (rc == 0 && pg_rows(r) == 1)
		old = json_string(pg_val(r, 0, 0));
	PQclear(r);
	r = NULL;
	if (rc == 0 && !ch->value && !old)
		rc = err_set(ERR_NOTFOUND, "%s has no stored template (it is the built-in one)",
			     ch->name);
	if (rc == 0 && ch->value) {
		const char *params[3] = {ch->name, json_string_value(ch->value), ch->actor};
		rc = pg_exec_stmt(c, NULL, &STMT_SET_PROMPT, params);
	} else if (rc == 0) {
		rc = pg_exec_stmt(c, NULL, &STMT_DEL_PROMPT, p1);
	}
	if (rc == 0) { /* the version moves too, so the watchers reload */
		const char *params[1] = {ch->actor};
		rc = pg_exec(c, &r,
			     "UPDATE llm_config SET version = version + 1, updated_at = now(), "
			     "updated_by = $1 WHERE id = 1 RETURNING version",
			     1, params);
		if (rc == 0)
			out->version = pg_int(r, 0, 0);
		PQclear(r);
	}
	if (rc == 0)
		rc = audit_row(c, ch->actor, ch->value ? "set" : "remove", "prompt", ch->name, old,
			       ch->value);
	if (rc == 0) {
		char v[24];
		const char *params[1] = {v};
		snprintf(v, sizeof(v), "%lld", (long long)out->version);
		rc = pg_exec_stmt(c, NULL, &STMT_NOTIFY, params);
	}
	json_decref(old);
	if (rc < 0)
		return pg_tx_end(c, rc);
	return pg_exec(c, NULL, "COMMIT", 0, NULL);
}

/* What the steps of one change share. */
typedef struct apply_ctx {
	pg_conn *c;
	const llm_config_change *ch;
	const llm_registry *seed;
	llm_config_result *out;
	const char *kind, *name;
	int is_obj, whole;
	json_t *doc;      /* the whole configuration, with the change once edited */
	json_t *old;      /* the object before the change (NULL: none) */
	json_t *value;    /* the object after it (NULL: removed) */
	llm_registry *reg; /* the document loaded */
} apply_ctx;

/* The change on the document: x->old, x->value and x->doc. */
static int edit_doc(apply_ctx *x)
{
	const llm_config_change *ch = x->ch;
	json_t *target;

	if (x->whole) {
		x->old = x->doc;
		x->doc = json_deep_copy(ch->value);
		x->value = json_incref(x->doc);
		x->out->seeded = 0; /* replaced whole: nothing of this process's is copied */
		return 0;
	}
	if (!x->is_obj) {
		x->old = json_incref(json_object_get(x->doc, x->kind));
		x->value = ch->value ? json_deep_copy(ch->value) : NULL;
		if (x->value)
			json_object_set(x->doc, x->kind, x->value);
		else
			json_object_del(x->doc, x->kind);
		return 0;
	}
	target = section(x->doc, x->kind);
	x->old = json_incref(json_object_get(target, x->name));
	if (!ch->value && !x->old)
		return err_set(ERR_NOTFOUND, "there is no %s '%s' to remove", x->kind, x->name);
	if (ch->value && strcmp(x->kind, "role") == 0 && json_is_string(ch->value))
		x->value = json_pack("[O]", ch->value);
	else if (ch->value)
		x->value = json_deep_copy(ch->value);
	if (x->value && strcmp(x->kind, "role") != 0 && !json_is_object(x->value))
		return err_set(ERR_INVALID, "a %s's configuration is a JSON object", x->kind);
	if (x->value && strcmp(x->kind, "role") == 0 && !json_is_array(x->value))
		return err_set(ERR_INVALID, "a role's models are a list of model names, cheapest first");
	if (x->value)
		json_object_set(target, x->name, x->value);
	else
		json_object_del(target, x->name);
	return 0;
}

/* The servers the change sends calls to answer (and the test calls). */
static int check_servers(apply_ctx *x)
{
	const char *kind = x->kind, *name = x->name;
	int rc = 0;

	for (int i = 0; x->whole && rc == 0 && i < llm_registry_n_endpoints(x->reg); i++)
		rc = probe(x->reg, i, NULL, x->out);
	if (x->whole && rc == 0)
		rc = keys_readable(x->reg, NULL);
	if (x->value && (strcmp(kind, "endpoint") == 0 || strcmp(kind, "model") == 0)) {
		const char *ep = json_string_value(json_object_get(x->value, "endpoint"));
		for (int i = 0; i < llm_registry_n_endpoints(x->reg) && rc == 0; i++) {
			const llm_endpoint *e = llm_registry_endpoint(x->reg, i);
			if (strcmp(kind, "endpoint") == 0 && strcmp(e->name, name) == 0)
				rc = probe(x->reg, i, NULL, x->out);
			else if (strcmp(kind, "model") == 0 && ep && strcmp(e->name, ep) == 0)
				rc = probe(x->reg, i, name, x->out);
		}
	}
	if (rc < 0 || !x->ch->try_call || !x->value)
		return rc;
	if (strcmp(kind, "model") == 0)
		return try_model(x->doc, name, x->out);
	if (strcmp(kind, "role") == 0) {
		size_t i;
		json_t *m;
		json_array_foreach(x->value, i, m) {
			rc = try_model(x->doc, json_string_value(m), x->out);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	for (int k = 0; k < llm_registry_n_models(x->reg) && rc == 0; k++) {
		const llm_model *m = llm_registry_model(x->reg, k);
		if (x->whole || (strcmp(kind, "endpoint") == 0 &&
				 strcmp(llm_registry_endpoint(x->reg, m->endpoint)->name, name) == 0))
			rc = try_model(x->doc, m->name, x->out);
	}
	return rc;
}

/* Writes the change: the seed first, the rows, the head, the audit, the
 * notice. Inside the transaction. */
static int store_change(apply_ctx *x)
{
	const char *actor = x->ch->actor;
	char *t = NULL, *sched = NULL, *budg = NULL, v[24];
	PGresult *r = NULL;
	int rc = 0;

	if (x->out->seeded) {
		json_t *before = seed_doc(x->seed);
		rc = store_all(x->c, before, actor);
		json_decref(before);
	}
	if (rc == 0 && x->whole) {
		rc = pg_exec(x->c, NULL, "DELETE FROM llm_config_endpoints", 0, NULL);
		if (rc == 0)
			rc = pg_exec(x->c, NULL, "DELETE FROM llm_config_models", 0, NULL);
		if (rc == 0)
			rc = pg_exec(x->c, NULL, "DELETE FROM llm_config_roles", 0, NULL);
		if (rc == 0)
			rc = store_all(x->c, x->doc, actor);
	}
	if (rc == 0 && x->is_obj) {
		int ep = strcmp(x->kind, "endpoint") == 0, mo = strcmp(x->kind, "model") == 0;
		const pg_stmt *set = ep ? &STMT_SET_ENDPOINT : mo ? &STMT_SET_MODEL : &STMT_SET_ROLE;
		const pg_stmt *del = ep ? &STMT_DEL_ENDPOINT : mo ? &STMT_DEL_MODEL : &STMT_DEL_ROLE;
		const char *params[3] = {x->name, NULL, actor};
		t = dump(x->value);
		params[1] = t;
		rc = pg_exec_stmt(x->c, NULL, x->value ? set : del, params);
	}
	if (rc == 0) {
		const char *params[4] = {"true", NULL, NULL, actor};
		sched = dump(json_object_get(x->doc, "scheduler"));
		budg = dump(json_object_get(x->doc, "budgets"));
		params[1] = sched ? sched : "";
		params[2] = budg ? budg : "";
		rc = pg_exec_stmt(x->c, &r, &STMT_BUMP, params);
		if (rc == 0)
			x->out->version = pg_int(r, 0, 0);
	}
	if (rc == 0 && x->out->seeded) { /* the seed belongs to the version it started */
		json_t *before = seed_doc(x->seed);
		const char *origin = x->seed ? llm_registry_origin(x->seed) : "none";
		rc = audit_row(x->c, actor, "seed", "config", origin, NULL, before);
		json_decref(before);
		note(x->out, "the stored configuration started as a copy of %s",
		     x->seed ? origin : "nothing (no file or environment)");
	}
	if (rc == 0)
		rc = audit_row(x->c, actor, x->whole ? "import" : x->value ? "set" : "remove", x->kind,
			       x->name, x->old, x->value);
	if (rc == 0) {
		const char *params[1] = {v};
		snprintf(v, sizeof(v), "%lld", (long long)x->out->version);
		rc = pg_exec_stmt(x->c, NULL, &STMT_NOTIFY, params);
	}
	PQclear(r);
	free(t);
	free(sched);
	free(budg);
	return rc;
}

/* The kind and name of a change are ones it can have. */
static int check_change(apply_ctx *x)
{
	int model = strcmp(x->kind, "model") == 0;

	x->is_obj = strcmp(x->kind, "endpoint") == 0 || model || strcmp(x->kind, "role") == 0;
	x->whole = strcmp(x->kind, "config") == 0;
	if (!x->ch->actor || !*x->ch->actor)
		return err_set(ERR_INVALID, "a change needs an actor (who makes it)");
	if (!x->is_obj && !x->whole && strcmp(x->kind, "scheduler") != 0 &&
	    strcmp(x->kind, "budgets") != 0)
		return err_set(ERR_INVALID, "unknown kind '%s' (endpoint, model, role, scheduler, "
					    "budgets, config or prompt)", x->kind);
	if (x->whole && !json_is_object(x->ch->value))
		return err_set(ERR_INVALID, "a whole configuration is a JSON object, as a models file");
	if (x->is_obj && !name_ok(x->name, model ? 95 : 63))
		return err_set(ERR_INVALID,
			       "'%s' is not a name for a %s: letters, digits and . _ - : / (not first), "
			       "at most %d characters", x->name, x->kind, model ? 95 : 63);
	return 0;
}

int llm_config_apply(pg_conn *c, const llm_config_change *ch, const llm_registry *seed,
		     llm_config_result *out)
{
	apply_ctx x;
	PGresult *head = NULL;
	int rc, in_tx = 0;

	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.ch = ch;
	x.seed = seed;
	x.out = out;
	x.kind = ch->kind ? ch->kind : "";
	x.name = ch->name ? ch->name : "";
	if (strcmp(x.kind, "prompt") == 0)
		return apply_prompt(c, ch, out);
	rc = check_change(&x);
	if (rc < 0)
		return rc;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	in_tx = rc == 0;
	if (rc == 0)
		rc = pg_exec_stmt(c, &head, &STMT_HEAD_LOCK, NULL);
	if (rc == 0 && pg_rows(head) != 1)
		rc = err_set(ERR_DB, "the llm_config row is missing: run 'orchestrator migrate'");
	if (rc == 0 && ch->expect_version >= 0 && pg_int(head, 0, 0) != ch->expect_version)
		rc = err_set(ERR_CONFLICT, "the configuration changed meanwhile (now version %lld, by "
					   "%s at %s): reload and make your change again",
			     (long long)pg_int(head, 0, 0), pg_val(head, 0, 4), pg_val(head, 0, 5));
	if (rc == 0 && strcmp(pg_val(head, 0, 1), "t") == 0) {
		rc = doc_from(c, head, &x.doc);
	} else if (rc == 0) {
		x.doc = seed_doc(seed);
		out->seeded = 1;
		rc = x.doc ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	if (rc == 0)
		rc = edit_doc(&x);
	/* the whole configuration must load, keys from the secrets store only */
	if (rc == 0)
		rc = keys_from_secrets(x.doc);
	if (rc == 0)
		rc = llm_registry_load_json(&x.reg, x.doc, "the configuration with this change");
	if (rc == 0)
		rc = keys_readable(x.reg, out->seeded ? NULL
					  : strcmp(x.kind, "endpoint") == 0 && x.value ? x.name : "");
	if (rc == 0)
		rc = check_servers(&x);
	if (rc == 0)
		rc = store_change(&x);
	if (rc == 0) {
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
		in_tx = 0;
	}
	if (rc < 0 && in_tx)
		rc = pg_tx_end(c, rc);
	PQclear(head);
	json_decref(x.doc);
	json_decref(x.old);
	json_decref(x.value);
	llm_registry_free(x.reg);
	return rc;
}

int llm_config_clear(pg_conn *c, const char *actor, int64_t *out_version)
{
	PGresult *head = NULL, *r = NULL;
	json_t *doc = NULL;
	int rc;
	const char *params[1] = {actor};

	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &head, &STMT_HEAD_LOCK, NULL);
	if (rc == 0 && strcmp(pg_val(head, 0, 1), "t") != 0)
		rc = err_set(ERR_NOTFOUND, "no model configuration is stored: every process uses its "
					   "file or environment already");
	if (rc == 0)
		rc = doc_from(c, head, &doc);
	if (rc == 0)
		rc = pg_exec_stmt(c, &r, &STMT_CLEAR, params);
	if (rc == 0)
		*out_version = pg_int(r, 0, 0);
	if (rc == 0)
		rc = audit_row(c, actor, "clear", "config", "database", doc, NULL);
	if (rc == 0) {
		char v[24];
		const char *p[1] = {v};
		snprintf(v, sizeof(v), "%lld", (long long)*out_version);
		rc = pg_exec_stmt(c, NULL, &STMT_NOTIFY, p);
	}
	PQclear(head);
	PQclear(r);
	json_decref(doc);
	if (rc < 0)
		return pg_tx_end(c, rc);
	return pg_exec(c, NULL, "COMMIT", 0, NULL);
}

int llm_config_audit_list(pg_conn *c, int limit, json_t **out)
{
	char lim[16];
	const char *params[1] = {lim};
	PGresult *r = NULL;
	int rc;

	*out = NULL;
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 50);
	rc = pg_exec_stmt(c, &r, &STMT_AUDIT_LIST, params);
	if (rc == 0) {
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
		if (!*out)
			rc = err_set(ERR_PARSE, "the audit did not parse");
	}
	PQclear(r);
	return rc;
}

int llm_config_prompts(pg_conn *c, int with_body, json_t **out)
{
	PGresult *r = NULL;
	json_t *list = json_array();
	int rc;

	*out = NULL;
	rc = pg_exec_stmt(c, &r, &STMT_PROMPTS, NULL);
	for (const orch_embedded_file *f = orch_embedded; rc == 0 && f->path; f++) {
		json_t *o;
		char ph[1024];
		int row = -1;

		if (!prompt_path_ok(f->path))
			continue;
		for (int i = 0; i < pg_rows(r); i++)
			if (strcmp(pg_val(r, i, 0), f->path) == 0)
				row = i;
		placeholders(f->data, ph, sizeof(ph));
		o = json_pack("{s:s, s:b, s:s}", "name", f->path, "overridden", row >= 0,
			      "placeholders", ph);
		if (row >= 0) {
			json_object_set_new(o, "updated_by", json_string(pg_val(r, row, 2)));
			json_object_set_new(o, "updated_at", json_string(pg_val(r, row, 3)));
		}
		if (with_body) {
			json_object_set_new(o, "builtin", json_string(f->data));
			if (row >= 0)
				json_object_set_new(o, "body", json_string(pg_val(r, row, 1)));
		}
		json_array_append_new(list, o);
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

int llm_config_prompts_install(pg_conn *c)
{
	PGresult *r = NULL;
	const char **paths = NULL, **texts = NULL;
	int rc, n = 0;

	rc = pg_exec_stmt(c, &r, &STMT_PROMPTS, NULL);
	if (rc < 0)
		return rc;
	paths = calloc((size_t)pg_rows(r) + 1, sizeof(*paths));
	texts = calloc((size_t)pg_rows(r) + 1, sizeof(*texts));
	if (!paths || !texts) {
		rc = err_set(ERR_NOMEM, "out of memory");
	} else {
		for (int i = 0; i < pg_rows(r); i++) {
			if (!prompt_path_ok(pg_val(r, i, 0)))
				continue;
			paths[n] = pg_val(r, i, 0);
			texts[n++] = pg_val(r, i, 1);
		}
		rc = embed_overrides_set(paths, texts, n);
	}
	free(paths);
	free(texts);
	PQclear(r);
	return rc;
}

int llm_config_budget(pg_conn *c, const char *actor, const char *kind, const char *scope,
		      double limit, const char *period, double add, double *out_limit)
{
	PGresult *r = NULL;
	json_t *old = NULL, *now = NULL;
	const char *params[2] = {kind, scope};
	int rc;

	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &r, &STMT_BUDGET_GET, params);
	if (rc == 0 && pg_rows(r) == 1)
		old = json_loads(pg_val(r, 0, 0), 0, NULL);
	PQclear(r);
	r = NULL;
	if (rc == 0 && limit >= 0)
		rc = llm_budget_set(c, kind, scope, limit, period);
	else if (rc == 0 && add > 0)
		rc = llm_budget_extend(c, kind, scope, add, out_limit);
	else if (rc == 0)
		rc = llm_budget_remove(c, kind, scope);
	if (rc == 0)
		rc = pg_exec_stmt(c, &r, &STMT_BUDGET_GET, params);
	if (rc == 0 && pg_rows(r) == 1)
		now = json_loads(pg_val(r, 0, 0), 0, NULL);
	PQclear(r);
	if (rc == 0) {
		char name[200];
		snprintf(name, sizeof(name), "%s:%s", kind, scope);
		rc = audit_row(c, actor, limit >= 0 ? "set" : add > 0 ? "extend" : "remove", "budget",
			       name, old, now);
	}
	json_decref(old);
	json_decref(now);
	if (rc < 0)
		return pg_tx_end(c, rc);
	return pg_exec(c, NULL, "COMMIT", 0, NULL);
}

/* --- the watcher --- */

struct llm_config_watch {
	llm_service *s;
	char url[1024];
	int64_t poll_ms;
	int64_t seen;     /* the version last put in force; -1: none yet */
	int stored;
	atomic_int stopping;
	pthread_t thread;
	int warned;
};

/* Looks at the stored version and puts a new one in force. */
static void check(llm_config_watch *w, pg_conn *c)
{
	PGresult *head = NULL;
	int64_t version;
	int stored, rc;

	rc = pg_exec_stmt(c, &head, &STMT_HEAD, NULL);
	if (rc < 0 || pg_rows(head) != 1) {
		if (!w->warned)
			log_warn("llm", "the stored model configuration cannot be read (%s): run "
					"'orchestrator migrate'; using %s until then",
				 rc < 0 ? err_last() : "no row",
				 w->stored ? "the last version read" : "the file or environment");
		w->warned = 1;
		health_report("llm.config", HEALTH_DEGRADED, "the stored configuration cannot be read");
		PQclear(head);
		err_clear();
		return;
	}
	w->warned = 0;
	version = pg_int(head, 0, 0);
	stored = strcmp(pg_val(head, 0, 1), "t") == 0;
	if (version == w->seen) {
		PQclear(head);
		return;
	}
	/* the prompt templates first: once the service shows the new version,
	 * everything of it is in force */
	rc = llm_config_prompts_install(c);
	if (rc == 0 && stored) {
		llm_registry *reg = NULL;
		int64_t v = 0;
		rc = llm_config_load(c, &reg, &v);
		if (rc == 0 && reg) {
			int nm = llm_registry_n_models(reg), ne = llm_registry_n_endpoints(reg);
			rc = llm_service_set_registry(w->s, reg, v);
			if (rc == 0)
				log_info("llm", "model configuration version %lld from the database in "
						"force: %d models on %d endpoints (changed by %s at %s)",
					 (long long)v, nm, ne, pg_val(head, 0, 4), pg_val(head, 0, 5));
		}
	} else if (rc == 0 && (w->stored || llm_service_version(w->s) != 0)) {
		llm_registry *reg = NULL;
		rc = llm_registry_load(&reg);
		if (rc == 0)
			rc = llm_service_set_registry(w->s, reg, 0);
		if (rc == 0)
			log_info("llm", "the stored model configuration was cleared (by %s): back to %s",
				 pg_val(head, 0, 4), "the file or environment");
	}
	if (rc < 0) {
		log_error("llm", "model configuration version %lld could not be put in force: %s; "
				 "keeping the one in force", (long long)version, err_last());
		health_report("llm.config", HEALTH_DEGRADED, "version %lld not in force: %s",
			      (long long)version, err_last());
		err_clear();
	} else {
		health_report("llm.config", HEALTH_OK, "version %lld (%s)", (long long)version,
			      stored ? "database" : "file or environment");
	}
	w->seen = version; /* a version that failed is not tried again until the next */
	w->stored = stored;
	PQclear(head);
}

static void *watch_main(void *arg)
{
	llm_config_watch *w = arg;
	pg_conn *c = NULL;
	int failures = 0;

	while (!atomic_load(&w->stopping)) {
		if (!c || pg_conn_broken(c)) {
			pg_conn_close(c);
			c = NULL;
			if (pg_conn_open(&c, w->url) < 0 ||
			    pg_exec(c, NULL, "LISTEN " CHANNEL, 0, NULL) < 0) {
				pg_conn_close(c);
				c = NULL;
				err_clear();
				util_sleep_ms(util_backoff_ms(failures++, 200, 5000));
				continue;
			}
			failures = 0;
		}
		check(w, c);
		/* sleep until a notice, the next poll, or stop */
		for (int64_t until = util_mono_ms() + w->poll_ms;
		     !atomic_load(&w->stopping) && util_mono_ms() < until;) {
			struct pollfd pfd = {PQsocket(pg_conn_raw(c)), POLLIN, 0};
			PGnotify *n;
			int got = 0;

			/* a notice read while check() ran its statements waits in libpq's queue */
			for (n = PQnotifies(pg_conn_raw(c)); n; n = PQnotifies(pg_conn_raw(c))) {
				PQfreemem(n);
				got = 1;
			}
			if (got)
				break;
			if (poll(&pfd, 1, 200) <= 0)
				continue;
			if (!PQconsumeInput(pg_conn_raw(c)))
				break;
			for (n = PQnotifies(pg_conn_raw(c)); n; n = PQnotifies(pg_conn_raw(c))) {
				PQfreemem(n);
				got = 1;
			}
			if (got)
				break;
		}
	}
	pg_conn_close(c);
	return NULL;
}

static void watch_stop(void *udata)
{
	llm_config_watch *w = udata;

	atomic_store(&w->stopping, 1);
	pthread_join(w->thread, NULL);
	free(w);
}

int llm_config_watch_start(llm_service *s, const char *db_url, int64_t poll_ms)
{
	llm_config_watch *w = calloc(1, sizeof(*w));
	pg_conn *c = NULL;

	if (!w)
		return err_set(ERR_NOMEM, "out of memory");
	w->s = s;
	snprintf(w->url, sizeof(w->url), "%s", db_url);
	w->poll_ms = poll_ms > 0 ? poll_ms : 5000;
	w->seen = -1;
	/* the stored configuration in force before the first call */
	if (pg_conn_open(&c, db_url) == 0) {
		check(w, c);
		pg_conn_close(c);
	} else {
		log_warn("llm", "the stored model configuration cannot be read now (%s); the watcher "
				"tries again", err_last());
		err_clear();
	}
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		free(w);
		return err_set(ERR_INTERNAL, "cannot start the model configuration watcher");
	}
	llm_service_on_free(s, watch_stop, w);
	return 0;
}
