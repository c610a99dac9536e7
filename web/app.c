/* web/app — the dashboard's routes. See app.h. */
#include "web/app.h"

#include "core/config.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/redis.h"
#include "core/util.h"
#include "llm/config.h"
#include "llm/ledger.h"
#include "llm/quirks.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LOGS 64              /* live logs followed at once */
#define LOG_PING_MS 10000        /* a comment line this often keeps proxies from closing */

typedef struct log_follow {
	web_app *app;
	web_stream *st;
	char id[160];
	pthread_t thread;
	atomic_int done;
	int used;
} log_follow;

struct web_app {
	web_app_opts o;
	web_app_backend be;
	char redis_url[512];
	atomic_int stopping;
	pthread_mutex_t mu;          /* guards logs */
	log_follow logs[MAX_LOGS];
};

static const char CSP[] =
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/* `s`, or "" for NULL. */
static const char *nz(const char *s)
{
	return s ? s : "";
}

/* --- answers --- */

static void security_headers(web_request *rq)
{
	web_reply_header(rq, "Content-Security-Policy", CSP);
	web_reply_header(rq, "X-Content-Type-Options", "nosniff");
	web_reply_header(rq, "X-Frame-Options", "DENY");
	web_reply_header(rq, "Referrer-Policy", "no-referrer");
}

/* Every body leaves through the secrets filter. */
static int send_text(web_request *rq, int status, const char *ctype, const char *text, size_t len)
{
	buf b;
	int rc;

	buf_init(&b, 0);
	rc = buf_append(&b, text, len);
	if (rc == 0) {
		redact_buf(&b);
		security_headers(rq);
		rc = web_reply(rq, status, ctype, b.data ? b.data : "", b.len);
	}
	buf_free(&b);
	return rc;
}

static int send_json(web_request *rq, int status, const json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT);
	int rc;

	if (!t)
		return err_set(ERR_NOMEM, "out of memory");
	rc = send_text(rq, status, "application/json", t, strlen(t));
	free(t);
	return rc;
}

/* {"error": msg} with `status`. */
static int send_error(web_request *rq, int status, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg ? msg : "");
	int rc = send_json(rq, status, j);

	json_decref(j);
	return rc;
}

/* The HTTP status of an error code. */
static int status_of(int code)
{
	switch (code) {
	case ERR_NOTFOUND: return 404;
	case ERR_INVALID: case ERR_PARSE: return 422;
	case ERR_CONFLICT: return 409;
	case ERR_DENIED: return 403;
	case ERR_AUTH: case ERR_HTTP: return 422;
	default: return 500;
	}
}

/* --- who is asking --- */

static void free_identity(void *p)
{
	if (p)
		sodium_memzero(p, sizeof(web_identity));
	free(p);
}

static int auth_hook(web_request *rq, void *udata)
{
	web_app *a = udata;
	web_identity *who = calloc(1, sizeof(*who));
	pg_conn *c = NULL;
	int rc;

	if (!who)
		return err_set(ERR_NOMEM, "out of memory");
	rc = pg_pool_acquire(a->o.pool, 5000, &c);
	if (rc == 0)
		rc = web_auth_request(c, web_header(rq, "Authorization"), web_header(rq, "Cookie"),
				      who);
	pg_pool_release(a->o.pool, c);
	if (rc < 0) {
		const char *authz = web_header(rq, "Authorization");

		log_debug("web", "%s %s refused: %s", web_method(rq), web_path(rq), err_last());
		free(who);
		/* RFC 9110: a 401 names its scheme; the reason (unknown, expired,
		 * revoked) stays in the log */
		web_reply_header(rq, "WWW-Authenticate", "Bearer realm=\"orchestrator\"");
		send_error(rq, 401,
			   authz && *authz
				   ? "log in first: the bearer token is not valid (unknown, expired or "
				     "revoked); make a new one with orchestrator web token --user NAME"
				   : "log in first: the login page, or Authorization: Bearer <token> "
				     "made with orchestrator web token --user NAME");
		return rc;
	}
	web_set_user(rq, who, free_identity);
	return 0;
}

static const web_identity *who_of(web_request *rq)
{
	return web_user(rq);
}

/* A state-changing request of a session carries its CSRF token. */
static int csrf_checked(web_request *rq)
{
	if (web_csrf_ok(who_of(rq), web_header(rq, "X-CSRF-Token")))
		return 1;
	send_error(rq, 403, "the form is stale (its CSRF token does not match this session): "
			    "reload the page and try again");
	return 0;
}

static int admin_checked(web_request *rq)
{
	if (who_of(rq)->admin)
		return 1;
	send_error(rq, 403, "changing models, budgets and prompts needs a token made with "
			    "'orchestrator web token --admin'");
	return 0;
}

/* The request's JSON body (owned), or NULL after answering 400. */
static json_t *body_json(web_request *rq)
{
	size_t len;
	const char *b = web_body(rq, &len);
	json_error_t e;
	json_t *j = json_loadb(b, len, 0, &e);

	if (!json_is_object(j)) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the request body is not a JSON object (%s)", e.text);
		send_error(rq, 400, msg);
		json_decref(j);
		return NULL;
	}
	return j;
}

static int secure(web_app *a, web_request *rq)
{
	const char *proto = web_header(rq, "X-Forwarded-Proto");

	return a->o.secure_cookies || (proto && strcasecmp(proto, "https") == 0);
}

/* --- pages --- */

static int static_file(web_request *rq, const char *path, const char *ctype)
{
	buf b;
	int rc;

	buf_init(&b, 0);
	rc = embed_text(path, &b);
	if (rc == 0) {
		security_headers(rq);
		web_reply_header(rq, "Cache-Control", "no-cache");
		rc = web_reply(rq, 200, ctype, b.data ? b.data : "", b.len);
	}
	buf_free(&b);
	return rc;
}

/* The page. A pre-login CSRF value in a cookie and in the page (the login
 * form sends it back: a login from another site cannot). */
static int h_index(web_request *rq, void *udata)
{
	web_app *a = udata;
	const orch_embedded_file *f = embed_find("web/static/index.html");
	char pre[33], cookie[200];
	const char *mark;
	buf b;
	int rc;

	if (!f)
		return err_set(ERR_INTERNAL, "the page is not built in");
	/* another tab's value stays: its form still logs in */
	if (web_cookie_get(web_header(rq, "Cookie"), "orch_pre", pre, sizeof(pre)) < 0 ||
	    strlen(pre) != 32 || strspn(pre, "0123456789abcdef") != 32)
		util_rand_hex(pre, 16);
	buf_init(&b, 0);
	for (const char *p = f->data; *p;) { /* every {{pre}} */
		mark = strstr(p, "{{pre}}");
		if (!mark) {
			buf_puts(&b, p);
			break;
		}
		buf_append(&b, p, (size_t)(mark - p));
		buf_puts(&b, pre);
		p = mark + 7;
	}
	snprintf(cookie, sizeof(cookie), "orch_pre=%s; Path=/; HttpOnly; SameSite=Strict%s", pre,
		 secure(a, rq) ? "; Secure" : "");
	web_reply_header(rq, "Set-Cookie", cookie);
	security_headers(rq);
	rc = web_reply(rq, 200, "text/html; charset=utf-8", b.data, b.len);
	buf_free(&b);
	return rc;
}

static int h_static(web_request *rq, void *udata)
{
	const char *p = web_path(rq);

	(void)udata;
	if (strcmp(p, "/static/app.js") == 0)
		return static_file(rq, "web/static/app.js", "text/javascript; charset=utf-8");
	if (strcmp(p, "/static/app.css") == 0)
		return static_file(rq, "web/static/app.css", "text/css; charset=utf-8");
	return web_reply(rq, 404, "text/plain", "not found\n", 10);
}

/* The fields of a urlencoded form or a JSON object body into token/pre. */
static void login_fields(web_request *rq, char *token, size_t tcap, char *pre, size_t pcap)
{
	size_t len;
	const char *b = web_body(rq, &len);
	const char *ct = web_header(rq, "Content-Type");

	token[0] = pre[0] = '\0';
	if (ct && strncasecmp(ct, "application/json", 16) == 0) {
		json_t *j = json_loadb(b, len, 0, NULL);
		snprintf(token, tcap, "%s", nz(json_string_value(json_object_get(j, "token"))));
		snprintf(pre, pcap, "%s", nz(json_string_value(json_object_get(j, "pre"))));
		json_decref(j);
	} else {
		struct evkeyvalq q;
		char *text = strndup(b, len);
		TAILQ_INIT(&q);
		if (text && evhttp_parse_query_str(text, &q) == 0) {
			snprintf(token, tcap, "%s", nz(evhttp_find_header(&q, "token")));
			snprintf(pre, pcap, "%s", nz(evhttp_find_header(&q, "pre")));
		}
		evhttp_clear_headers(&q);
		free(text);
	}
	/* a token pasted with spaces or a newline around it */
	{
		size_t k = 0;
		for (const char *t = token; *t; t++)
			if (*t != ' ' && *t != '\n' && *t != '\r' && *t != '\t')
				token[k++] = *t;
		token[k] = '\0';
	}
}

static int h_login(web_request *rq, void *udata)
{
	web_app *a = udata;
	char token[128], pre[80], pre_cookie[80], cookie[WEB_SECRET_LEN + 1], set[300];
	web_identity who;
	pg_conn *c = NULL;
	const char *ct = web_header(rq, "Content-Type");
	int form = !ct || strncasecmp(ct, "application/json", 16) != 0, rc;

	login_fields(rq, token, sizeof(token), pre, sizeof(pre));
	if (web_cookie_get(web_header(rq, "Cookie"), "orch_pre", pre_cookie, sizeof(pre_cookie)) <
		    0 ||
	    !pre[0] || strlen(pre) != strlen(pre_cookie) ||
	    sodium_memcmp(pre, pre_cookie, strlen(pre)) != 0) {
		sodium_memzero(token, sizeof(token));
		return send_error(rq, 403, "the login form is stale: reload the page and log in again");
	}
	rc = pg_pool_acquire(a->o.pool, 5000, &c);
	if (rc == 0)
		rc = web_session_login(c, token, 0, cookie, sizeof(cookie), &who);
	pg_pool_release(a->o.pool, c);
	sodium_memzero(token, sizeof(token));
	if (rc < 0) {
		log_info("web", "a login from %s was refused: %s", web_peer(rq), err_last());
		return send_error(rq, 401, "that token is not valid (unknown, expired or revoked): ask "
					   "for a new one ('orchestrator web token --user NAME')");
	}
	log_info("web", "%s logged in from %s", who.name, web_peer(rq));
	snprintf(set, sizeof(set), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200%s",
		 WEB_SESSION_COOKIE, cookie, secure(a, rq) ? "; Secure" : "");
	sodium_memzero(cookie, sizeof(cookie));
	web_reply_header(rq, "Set-Cookie", set);
	if (form) {
		web_reply_header(rq, "Location", "/");
		return send_text(rq, 303, "text/plain; charset=utf-8", "logged in\n", 10);
	}
	{
		json_t *j = json_pack("{s:s}", "name", who.name);
		rc = send_json(rq, 200, j);
		json_decref(j);
	}
	return rc;
}

static int h_logout(web_request *rq, void *udata)
{
	web_app *a = udata;
	pg_conn *c = NULL;
	char set[200];

	if (!csrf_checked(rq))
		return 0;
	if (pg_pool_acquire(a->o.pool, 5000, &c) == 0)
		web_session_end(c, who_of(rq)->session_id);
	pg_pool_release(a->o.pool, c);
	snprintf(set, sizeof(set), "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
		 WEB_SESSION_COOKIE, secure(a, rq) ? "; Secure" : "");
	web_reply_header(rq, "Set-Cookie", set);
	return send_text(rq, 200, "application/json", "{}", 2);
}

/* --- the API --- */

static int h_session(web_request *rq, void *udata)
{
	const web_identity *who = who_of(rq);
	json_t *j;
	int rc;

	(void)udata;
	j = json_pack("{s:s, s:I, s:s, s:b, s:s}", "name", who->name, "telegram_id",
		      (json_int_t)who->telegram_id, "operator", who->op, "admin", who->admin, "csrf",
		      who->csrf);
	rc = send_json(rq, 200, j);
	json_decref(j);
	return rc;
}

/* Runs fn(c, ...) on a pooled connection, answering its JSON or its error. */
static int with_conn(web_app *a, web_request *rq, pg_conn **out)
{
	int rc = pg_pool_acquire(a->o.pool, 10000, out);

	if (rc < 0)
		send_error(rq, 503, "the database is not reachable now");
	return rc;
}

static int h_status(web_request *rq, void *udata)
{
	web_app *a = udata;
	pg_conn *c = NULL;
	json_t *j = NULL;
	int rc;

	if (with_conn(a, rq, &c) < 0)
		return 0;
	rc = a->be.status(c, &j, a->be.udata);
	pg_pool_release(a->o.pool, c);
	if (rc < 0)
		return send_error(rq, status_of(rc), err_last());
	rc = send_json(rq, 200, j);
	json_decref(j);
	return rc;
}

/* /api/projects/KEY and /api/projects/KEY/diff */
static int h_project(web_request *rq, void *udata)
{
	web_app *a = udata;
	const char *rest = web_path(rq) + strlen("/api/projects/");
	char key[200];
	const char *slash = strchr(rest, '/');
	pg_conn *c = NULL;
	json_t *j = NULL, *costs = NULL;
	int rc;

	snprintf(key, sizeof(key), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	if (!key[0])
		return send_error(rq, 404, "no project named");
	if (with_conn(a, rq, &c) < 0)
		return 0;
	if (slash && strcmp(slash, "/diff") == 0) {
		const char *task = web_query(rq, "task");
		buf d;
		buf_init(&d, (size_t)4 << 20);
		rc = task ? a->be.diff(c, key, task, &d, a->be.udata)
			  : err_set(ERR_INVALID, "which task? (?task=ID)");
		pg_pool_release(a->o.pool, c);
		if (rc == 0)
			rc = send_text(rq, 200, "text/plain; charset=utf-8", d.data ? d.data : "",
				       d.len);
		else
			rc = send_error(rq, status_of(rc), err_last());
		buf_free(&d);
		return rc;
	}
	if (slash) {
		pg_pool_release(a->o.pool, c);
		return send_error(rq, 404, "not found");
	}
	rc = a->be.project(c, key, &j, a->be.udata);
	if (rc == 0)
		rc = llm_cost_series(c, json_string_value(json_object_get(j, "key")), &costs);
	pg_pool_release(a->o.pool, c);
	if (rc < 0) {
		json_decref(j);
		return send_error(rq, status_of(rc), err_last());
	}
	json_object_set_new(j, "charts", costs);
	rc = send_json(rq, 200, j);
	json_decref(j);
	return rc;
}

static int h_question(web_request *rq, void *udata)
{
	web_app *a = udata;
	const char *idtext = web_path(rq) + strlen("/api/questions/");
	int64_t id;
	json_t *body, *out = NULL;
	pg_conn *c = NULL;
	int rc;

	if (!csrf_checked(rq))
		return 0;
	if (cfg_parse_int(idtext, &id) < 0 || id <= 0)
		return send_error(rq, 404, "no such question");
	body = body_json(rq);
	if (!body)
		return 0;
	if (!json_is_string(json_object_get(body, "option"))) {
		json_decref(body);
		return send_error(rq, 400, "which answer? {\"option\": \"approve\"}");
	}
	if (with_conn(a, rq, &c) < 0) {
		json_decref(body);
		return 0;
	}
	rc = a->be.decide(c, who_of(rq), id, json_string_value(json_object_get(body, "option")),
			  &out, a->be.udata);
	pg_pool_release(a->o.pool, c);
	json_decref(body);
	if (rc < 0)
		return send_error(rq, status_of(rc), err_last());
	rc = send_json(rq, strcmp(nz(json_string_value(json_object_get(out, "outcome"))),
				  "decided") == 0 ? 200 : 409, out);
	json_decref(out);
	return rc;
}

static json_t *providers_json(void)
{
	json_t *o = json_object();
	const char *const *names = llm_quirks_profiles();

	for (int i = 0; names[i]; i++) {
		llm_quirks q;
		if (llm_quirks_profile(names[i], &q) == 0)
			json_object_set_new(o, names[i], llm_quirks_json(&q));
	}
	return o;
}

static int h_models_get(web_request *rq, void *udata)
{
	web_app *a = udata;
	pg_conn *c = NULL;
	json_t *doc = NULL, *audit = NULL, *prompts = NULL, *j;
	int64_t version = 0;
	int stored = 0, rc;

	if (with_conn(a, rq, &c) < 0)
		return 0;
	rc = llm_config_read(c, &doc, &version, &stored);
	if (rc == 0)
		rc = llm_config_audit_list(c, 50, &audit);
	if (rc == 0)
		rc = llm_config_prompts(c, 0, &prompts);
	pg_pool_release(a->o.pool, c);
	if (rc == 0 && !stored) {
		llm_registry *seed = a->be.seed ? a->be.seed(a->be.udata) : NULL;
		json_decref(doc);
		doc = seed ? llm_registry_to_json(seed) : json_object();
		llm_registry_free(seed);
	}
	if (rc < 0) {
		json_decref(doc);
		json_decref(audit);
		json_decref(prompts);
		return send_error(rq, status_of(rc), err_last());
	}
	j = json_pack("{s:I, s:b, s:o, s:o, s:o, s:o}", "version", (json_int_t)version, "stored",
		      stored, "config", doc, "audit", audit, "prompts", prompts, "providers",
		      providers_json());
	rc = send_json(rq, 200, j);
	json_decref(j);
	return rc;
}

static void actor_of(web_request *rq, char *out, size_t cap)
{
	snprintf(out, cap, "web:%s", who_of(rq)->name);
}

static int h_models_post(web_request *rq, void *udata)
{
	web_app *a = udata;
	llm_config_change ch;
	llm_config_result res;
	llm_registry *seed = NULL;
	pg_conn *c = NULL;
	json_t *body, *j;
	char actor[96];
	int rc;

	if (!csrf_checked(rq) || !admin_checked(rq))
		return 0;
	body = body_json(rq);
	if (!body)
		return 0;
	actor_of(rq, actor, sizeof(actor));
	memset(&ch, 0, sizeof(ch));
	ch.kind = json_string_value(json_object_get(body, "kind"));
	ch.name = json_string_value(json_object_get(body, "name"));
	ch.value = json_object_get(body, "value");
	if (json_is_null(ch.value))
		ch.value = NULL;
	ch.expect_version = json_is_integer(json_object_get(body, "expect_version"))
				    ? json_integer_value(json_object_get(body, "expect_version"))
				    : -1;
	ch.try_call = json_is_true(json_object_get(body, "try"));
	ch.actor = actor;
	if (a->be.seed)
		seed = a->be.seed(a->be.udata);
	rc = with_conn(a, rq, &c);
	if (rc == 0) {
		rc = llm_config_apply(c, &ch, seed, &res);
		pg_pool_release(a->o.pool, c);
		if (rc < 0) {
			log_info("web", "%s: a change of %s %s was refused: %s", actor,
				 ch.kind ? ch.kind : "?", ch.name ? ch.name : "", err_last());
			rc = send_error(rq, status_of(rc), err_last());
		} else {
			log_info("web", "%s changed %s %s: version %lld", actor, ch.kind,
				 ch.name ? ch.name : "", (long long)res.version);
			j = json_pack("{s:I, s:b, s:s}", "version", (json_int_t)res.version, "seeded",
				      res.seeded, "notes", res.notes);
			rc = send_json(rq, 200, j);
			json_decref(j);
		}
	} else {
		rc = 0;
	}
	llm_registry_free(seed);
	json_decref(body);
	return rc;
}

static int h_budgets_get(web_request *rq, void *udata)
{
	web_app *a = udata;
	pg_conn *c = NULL;
	json_t *j = NULL;
	int rc;

	if (with_conn(a, rq, &c) < 0)
		return 0;
	rc = llm_budget_list(c, &j);
	pg_pool_release(a->o.pool, c);
	if (rc < 0)
		return send_error(rq, status_of(rc), err_last());
	rc = send_json(rq, 200, j);
	json_decref(j);
	return rc;
}

static int h_budgets_post(web_request *rq, void *udata)
{
	web_app *a = udata;
	pg_conn *c = NULL;
	json_t *body;
	char actor[96];
	const char *kind, *scope, *period;
	double limit = -1, add = 0;
	int rc;

	if (!csrf_checked(rq) || !admin_checked(rq))
		return 0;
	body = body_json(rq);
	if (!body)
		return 0;
	kind = json_string_value(json_object_get(body, "kind"));
	scope = json_string_value(json_object_get(body, "scope"));
	period = json_string_value(json_object_get(body, "period"));
	if (json_is_number(json_object_get(body, "limit")))
		limit = json_number_value(json_object_get(body, "limit"));
	if (json_is_number(json_object_get(body, "add")))
		add = json_number_value(json_object_get(body, "add"));
	if (!kind || !scope || (limit < 0 && add <= 0 &&
				!json_is_true(json_object_get(body, "remove")))) {
		json_decref(body);
		return send_error(rq, 400, "a budget change is {\"kind\": \"project\"|\"user\", "
					   "\"scope\", and \"limit\" (with \"period\"), \"add\" or "
					   "\"remove\": true}");
	}
	actor_of(rq, actor, sizeof(actor));
	rc = with_conn(a, rq, &c);
	if (rc == 0) {
		rc = llm_config_budget(c, actor, kind, scope, limit, period, add, NULL);
		pg_pool_release(a->o.pool, c);
		rc = rc < 0 ? send_error(rq, status_of(rc), err_last())
			    : send_text(rq, 200, "application/json", "{}", 2);
	} else {
		rc = 0;
	}
	json_decref(body);
	return rc;
}

static int h_prompts_get(web_request *rq, void *udata)
{
	web_app *a = udata;
	const char *name = web_query(rq, "name");
	pg_conn *c = NULL;
	json_t *list = NULL, *v, *hit = NULL;
	size_t i;
	int rc;

	if (with_conn(a, rq, &c) < 0)
		return 0;
	rc = llm_config_prompts(c, 1, &list);
	pg_pool_release(a->o.pool, c);
	if (rc < 0)
		return send_error(rq, status_of(rc), err_last());
	json_array_foreach(list, i, v)
		if (name && strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
			hit = v;
	rc = hit ? send_json(rq, 200, hit) : send_error(rq, 404, "no such built-in prompt");
	json_decref(list);
	return rc;
}

static int h_prompts_post(web_request *rq, void *udata)
{
	web_app *a = udata;
	llm_config_change ch;
	llm_config_result res;
	pg_conn *c = NULL;
	json_t *body;
	char actor[96];
	int rc;

	if (!csrf_checked(rq) || !admin_checked(rq))
		return 0;
	body = body_json(rq);
	if (!body)
		return 0;
	actor_of(rq, actor, sizeof(actor));
	memset(&ch, 0, sizeof(ch));
	ch.kind = "prompt";
	ch.name = json_string_value(json_object_get(body, "name"));
	ch.value = json_is_string(json_object_get(body, "body")) ? json_object_get(body, "body")
								  : NULL;
	ch.expect_version = -1;
	ch.actor = actor;
	rc = with_conn(a, rq, &c);
	if (rc == 0) {
		rc = llm_config_apply(c, &ch, NULL, &res);
		pg_pool_release(a->o.pool, c);
		rc = rc < 0 ? send_error(rq, status_of(rc), err_last())
			    : send_text(rq, 200, "application/json", "{}", 2);
	} else {
		rc = 0;
	}
	json_decref(body);
	return rc;
}

/* --- the live log of a worker (server-sent events) --- */

/* One event; each passes the secrets filter. ERR_IO once the peer went. */
static int sse(web_stream *st, const char *event, const char *data)
{
	buf b;
	int rc;

	buf_init(&b, 0);
	buf_printf(&b, "event: %s\n", event);
	for (const char *p = data; *p;) { /* one data: line per line of the payload */
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		buf_puts(&b, "data: ");
		buf_append(&b, p, n);
		buf_putc(&b, '\n');
		p += n + (nl ? 1 : 0);
	}
	buf_putc(&b, '\n');
	redact_buf(&b);
	rc = web_stream_write(st, b.data, b.len);
	buf_free(&b);
	return rc;
}

/* The worker's row now, as an event; 1 when it has finished. */
static int send_worker_state(log_follow *f)
{
	web_app *a = f->app;
	pg_conn *c = NULL;
	json_t *w = NULL;
	char *t;
	int finished = 0;

	if (pg_pool_acquire(a->o.pool, 5000, &c) == 0 && a->be.worker(c, f->id, &w, a->be.udata) == 0) {
		finished = json_is_true(json_object_get(w, "finished"));
		t = json_dumps(w, JSON_COMPACT);
		if (t)
			sse(f->st, "state", t);
		free(t);
	}
	err_clear();
	pg_pool_release(a->o.pool, c);
	json_decref(w);
	return finished;
}

static void *follow_main(void *arg)
{
	log_follow *f = arg;
	web_app *a = f->app;
	rds_conn *sub = NULL;
	char log_ch[200], result_ch[200];
	int64_t next_ping = util_mono_ms() + LOG_PING_MS, next_state = util_mono_ms() + 3000;

	snprintf(log_ch, sizeof(log_ch), "worker:log:%s", f->id);
	snprintf(result_ch, sizeof(result_ch), "worker:result:%s", f->id);
	/* subscribed before the state is read, so no line falls between */
	if (rds_connect(&sub, a->redis_url, 0) < 0 ||
	    rds_cmd(sub, NULL, "SUBSCRIBE", log_ch, result_ch, NULL) < 0) {
		sse(f->st, "error", "the live lines cannot be read now (Redis)");
		goto done;
	}
	if (send_worker_state(f))
		goto done;
	while (!atomic_load(&a->stopping) && !web_stream_closed(f->st)) {
		rds_reply *m = NULL;
		int rc = rds_read(sub, 500, &m);

		if (rc == ERR_TIMEOUT) {
			err_clear();
			if (util_mono_ms() >= next_ping) {
				if (web_stream_write(f->st, ": ping\n\n", 8) < 0)
					break;
				next_ping = util_mono_ms() + LOG_PING_MS;
			}
			if (util_mono_ms() >= next_state) {
				if (send_worker_state(f))
					break;
				next_state = util_mono_ms() + 3000;
			}
			continue;
		}
		if (rc < 0) {
			sse(f->st, "error", "the live lines broke off (Redis)");
			break;
		}
		if (m->n >= 3 && strcmp(rds_str(rds_at(m, 0)), "message") == 0) {
			int result = strcmp(rds_str(rds_at(m, 1)), result_ch) == 0;
			sse(f->st, result ? "result" : "line", rds_str(rds_at(m, 2)));
			if (result) {
				rds_reply_free(m);
				break;
			}
		}
		rds_reply_free(m);
	}
done:
	err_clear();
	rds_free(sub);
	web_stream_release(f->st);
	atomic_store(&f->done, 1);
	return NULL;
}

static int id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 128)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == ':' || *p == '-'))
			return 0;
	return 1;
}

static int h_worker_log(web_request *rq, void *udata)
{
	web_app *a = udata;
	const char *rest = web_path(rq) + strlen("/api/workers/");
	const char *slash = strchr(rest, '/');
	char id[160];
	log_follow *f = NULL;
	web_stream *st = NULL;
	int rc;

	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : 0, rest);
	if (!slash || strcmp(slash, "/log") != 0 || !id_ok(id))
		return send_error(rq, 404, "not found");
	if (!a->redis_url[0])
		return send_error(rq, 503, "this process has no Redis (REDIS_URL): no live lines");
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < MAX_LOGS; i++) {
		if (a->logs[i].used && atomic_load(&a->logs[i].done)) {
			pthread_join(a->logs[i].thread, NULL);
			a->logs[i].used = 0;
		}
		if (!f && !a->logs[i].used)
			f = &a->logs[i];
	}
	if (f)
		f->used = 1;
	pthread_mutex_unlock(&a->mu);
	if (!f)
		return send_error(rq, 503, "too many live logs are followed now: close one");
	security_headers(rq);
	rc = web_stream_open(rq, "text/event-stream", &st);
	if (rc < 0) {
		pthread_mutex_lock(&a->mu);
		f->used = 0;
		pthread_mutex_unlock(&a->mu);
		return rc;
	}
	f->app = a;
	f->st = st;
	atomic_store(&f->done, 0);
	snprintf(f->id, sizeof(f->id), "%s", id);
	if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
		web_stream_release(st);
		pthread_mutex_lock(&a->mu);
		f->used = 0;
		pthread_mutex_unlock(&a->mu);
	}
	return 0;
}

/* --- wiring --- */

int web_app_attach(web_app **out, web_server *s, const web_app_opts *o)
{
	static const struct {
		const char *method, *path;
		int flags;
		web_handler h;
	} routes[] = {
		{"GET", "/", 0, h_index},
		{"GET", "/static/*", 0, h_static},
		{"POST", "/login", WEB_ROUTE_BODY | WEB_ROUTE_THREAD, h_login},
		{"POST", "/logout", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_logout},
		{"GET", "/api/session", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_session},
		{"GET", "/api/status", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_status},
		{"GET", "/api/projects/*", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_project},
		{"POST", "/api/questions/*", WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_THREAD,
		 h_question},
		{"GET", "/api/models", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_models_get},
		{"POST", "/api/models", WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_THREAD,
		 h_models_post},
		{"GET", "/api/budgets", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_budgets_get},
		{"POST", "/api/budgets", WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_THREAD,
		 h_budgets_post},
		{"GET", "/api/prompts", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_prompts_get},
		{"POST", "/api/prompts", WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_THREAD,
		 h_prompts_post},
		{"GET", "/api/workers/*", WEB_ROUTE_AUTH | WEB_ROUTE_STREAM, h_worker_log},
	};
	web_app *a = calloc(1, sizeof(*a));
	int rc = 0;

	*out = NULL;
	if (!a)
		return err_set(ERR_NOMEM, "out of memory");
	if (!o->pool || !o->be || !o->be->status || !o->be->project || !o->be->decide ||
	    !o->be->diff || !o->be->worker) {
		free(a);
		return err_set(ERR_INVALID, "the dashboard needs a database pool and a full backend");
	}
	a->o = *o;
	a->be = *o->be;
	snprintf(a->redis_url, sizeof(a->redis_url), "%s", o->redis_url ? o->redis_url : "");
	pthread_mutex_init(&a->mu, NULL);
	for (size_t i = 0; rc == 0 && i < sizeof(routes) / sizeof(routes[0]); i++)
		rc = web_route(s, routes[i].method, routes[i].path, routes[i].flags, routes[i].h, a);
	if (rc < 0) {
		web_app_free(a);
		return rc;
	}
	web_server_set_auth(s, auth_hook, a);
	*out = a;
	return 0;
}

void web_app_stop(web_app *a)
{
	if (!a)
		return;
	atomic_store(&a->stopping, 1);
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < MAX_LOGS; i++)
		if (a->logs[i].used) {
			pthread_join(a->logs[i].thread, NULL);
			a->logs[i].used = 0;
		}
	pthread_mutex_unlock(&a->mu);
}

void web_app_free(web_app *a)
{
	if (!a)
		return;
	web_app_stop(a);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
