/* web/auth — tokens, sessions, CSRF. See auth.h. */
#include "web/auth.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const pg_stmt STMT_TOKEN_NEW = {
	"web_token_new",
	"INSERT INTO web_tokens (name, hash, telegram_id, operator, admin, created_by, expires_at) "
	"VALUES ($1, decode($2, 'hex'), nullif($3, '0')::bigint, nullif($4, ''), $5::boolean, $6, "
	"now() + make_interval(secs => $7::float8 / 1000)) RETURNING id",
	7,
};

static const pg_stmt STMT_TOKEN_LIST = {
	"web_token_list",
	"SELECT coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, 'telegram_id', "
	"t.telegram_id, 'operator', t.operator, 'admin', t.admin, 'created_by', t.created_by, "
	"'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
	"'expires_at', to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
	"'revoked_at', to_char(t.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
	"'last_used_at', to_char(t.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
	"'state', CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' WHEN t.expires_at <= now() "
	"THEN 'expired' ELSE 'valid' END, 'sessions', (SELECT count(*) FROM web_sessions s WHERE "
	"s.token_id = t.id AND s.expires_at > now())) ORDER BY t.id), '[]')::text FROM web_tokens t",
	0,
};

static const pg_stmt STMT_TOKEN_REVOKE = {
	"web_token_revoke",
	"WITH r AS (UPDATE web_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND "
	"expires_at > now() AND (id = $1::bigint OR ($1::bigint = 0 AND name = $2)) RETURNING id), "
	"s AS (DELETE FROM web_sessions WHERE token_id IN (SELECT id FROM r)) SELECT count(*) FROM r",
	2,
};

/* The identity of a valid token by its hash (and touches it). */
static const pg_stmt STMT_BY_TOKEN = {
	"web_by_token",
	"UPDATE web_tokens SET last_used_at = now() WHERE hash = decode($1, 'hex') RETURNING id, "
	"name, coalesce(telegram_id, 0), coalesce(operator, ''), admin, revoked_at IS NOT NULL, "
	"expires_at <= now(), greatest(0, extract(epoch FROM expires_at - now()) * 1000)::bigint",
	1,
};

static const pg_stmt STMT_BY_SESSION = {
	"web_by_session",
	"UPDATE web_sessions s SET last_seen_at = now() FROM web_tokens t WHERE s.hash = "
	"decode($1, 'hex') AND t.id = s.token_id AND s.expires_at > now() AND t.revoked_at IS NULL "
	"AND t.expires_at > now() RETURNING t.id, t.name, coalesce(t.telegram_id, 0), "
	"coalesce(t.operator, ''), t.admin, s.id, s.csrf",
	1,
};

static const pg_stmt STMT_SESSION_NEW = {
	"web_session_new",
	"INSERT INTO web_sessions (hash, token_id, csrf, expires_at) VALUES (decode($1, 'hex'), "
	"$2::bigint, $3, now() + make_interval(secs => $4::float8 / 1000)) RETURNING id",
	4,
};

static const pg_stmt STMT_SESSION_END = {
	"web_session_end", "DELETE FROM web_sessions WHERE id = $1::bigint", 1,
};

/* "orch_" and 43 base64url characters of 32 random bytes. */
static void new_secret(char out[WEB_SECRET_LEN + 1])
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	memcpy(out, "orch_", 5);
	sodium_bin2base64(out + 5, WEB_SECRET_LEN + 1 - 5, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

/* The hex of the BLAKE2b-256 hash of a secret value. */
static void hash_hex(const char *value, char out[65])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)value, strlen(value), NULL, 0);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

static int name_ok(const char *n)
{
	size_t len = n ? strlen(n) : 0;

	if (len == 0 || len > 64)
		return 0;
	for (const char *p = n; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int web_token_create(pg_conn *c, const web_token_spec *spec, char *out, size_t cap,
		     int64_t *out_id)
{
	char hash[65], tg[24], ttl[24], secret[WEB_SECRET_LEN + 1];
	const char *params[7] = {spec->name, hash, tg, spec->op ? spec->op : "",
				 spec->admin ? "true" : "false", spec->created_by, ttl};
	int64_t ttl_ms = spec->ttl_ms ? spec->ttl_ms : (int64_t)30 * 86400 * 1000;
	PGresult *r = NULL;
	int rc;

	*out_id = 0;
	if (cap < WEB_SECRET_LEN + 1)
		return err_set(ERR_INVALID, "no room for the token");
	if (!name_ok(spec->name))
		return err_set(ERR_INVALID, "a token is made for a person's name: 1 to 64 characters");
	if ((spec->telegram_id > 0) == (spec->op && *spec->op))
		return err_set(ERR_INVALID, "a token acts as a Telegram approver (--telegram ID) or as "
					    "an operator of ORCH_OPERATORS (--operator UNIXUSER): give "
					    "one of them");
	if (spec->telegram_id < 0 || ttl_ms <= 0 || ttl_ms > (int64_t)3650 * 86400 * 1000)
		return err_set(ERR_INVALID, "a token's lifetime is up to 10 years, and a Telegram id is "
					    "a positive number");
	if (sodium_init() < 0)
		return err_set(ERR_CRYPTO, "libsodium could not start");
	new_secret(secret);
	hash_hex(secret, hash);
	snprintf(tg, sizeof(tg), "%lld", (long long)spec->telegram_id);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	rc = pg_exec_stmt(c, &r, &STMT_TOKEN_NEW, params);
	if (rc == 0) {
		*out_id = pg_int(r, 0, 0);
		snprintf(out, cap, "%s", secret);
	}
	PQclear(r);
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

int web_token_list(pg_conn *c, json_t **out)
{
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_TOKEN_LIST, NULL);

	*out = NULL;
	if (rc == 0) {
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
		if (!*out)
			rc = err_set(ERR_PARSE, "the token list did not parse");
	}
	PQclear(r);
	return rc;
}

int web_token_revoke(pg_conn *c, int64_t id, const char *name, int *out_n)
{
	char sid[24];
	const char *params[2] = {sid, name ? name : ""};
	PGresult *r = NULL;
	int rc, n = 0;

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, &r, &STMT_TOKEN_REVOKE, params);
	if (rc == 0)
		n = (int)pg_int(r, 0, 0);
	PQclear(r);
	if (out_n)
		*out_n = n;
	if (rc == 0 && n == 0)
		rc = err_set(ERR_NOTFOUND, "no valid token %s%s%s ('orchestrator web tokens' lists them)",
			     id ? "#" : "of ", id ? sid : name ? name : "", "");
	return rc;
}

/* The identity of a token value. */
static int by_token(pg_conn *c, const char *token, web_identity *out, int64_t *left_ms)
{
	char hash[65];
	const char *params[1] = {hash};
	PGresult *r = NULL;
	int rc;

	if (strncmp(token, "orch_", 5) != 0 || strlen(token) != WEB_SECRET_LEN)
		return err_set(ERR_DENIED, "not a token of ours");
	hash_hex(token, hash);
	rc = pg_exec_stmt(c, &r, &STMT_BY_TOKEN, params);
	if (rc == 0 && pg_rows(r) != 1)
		rc = err_set(ERR_DENIED, "an unknown token");
	else if (rc == 0 && strcmp(pg_val(r, 0, 5), "t") == 0)
		rc = err_set(ERR_DENIED, "a revoked token (of %s)", pg_val(r, 0, 1));
	else if (rc == 0 && strcmp(pg_val(r, 0, 6), "t") == 0)
		rc = err_set(ERR_DENIED, "an expired token (of %s)", pg_val(r, 0, 1));
	if (rc == 0) {
		memset(out, 0, sizeof(*out));
		out->token_id = pg_int(r, 0, 0);
		snprintf(out->name, sizeof(out->name), "%s", pg_val(r, 0, 1));
		out->telegram_id = pg_int(r, 0, 2);
		snprintf(out->op, sizeof(out->op), "%s", pg_val(r, 0, 3));
		out->admin = strcmp(pg_val(r, 0, 4), "t") == 0;
		if (left_ms)
			*left_ms = pg_int(r, 0, 7);
	}
	PQclear(r);
	return rc;
}

int web_cookie_get(const char *header, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	for (const char *p = header; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1, *end = strchr(v, ';');
			size_t len = end ? (size_t)(end - v) : strlen(v);
			if (len >= cap)
				return err_set(ERR_TOOBIG, "cookie too long");
			memcpy(out, v, len);
			out[len] = '\0';
			return 0;
		}
		p = strchr(p, ';');
	}
	return ERR_NOTFOUND;
}

int web_auth_request(pg_conn *c, const char *authorization, const char *cookie,
		     web_identity *out)
{
	char value[WEB_SECRET_LEN + 8], hash[65];
	const char *params[1] = {hash};
	PGresult *r = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (sodium_init() < 0)
		return err_set(ERR_CRYPTO, "libsodium could not start");
	if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0)
		return by_token(c, authorization + 7, out, NULL);
	if (!cookie || web_cookie_get(cookie, WEB_SESSION_COOKIE, value, sizeof(value)) < 0)
		return err_set(ERR_DENIED, "no credentials");
	hash_hex(value, hash);
	sodium_memzero(value, sizeof(value));
	rc = pg_exec_stmt(c, &r, &STMT_BY_SESSION, params);
	if (rc == 0 && pg_rows(r) != 1)
		rc = err_set(ERR_DENIED, "no valid session for this cookie (expired, logged out or "
					 "its token revoked)");
	if (rc == 0) {
		out->token_id = pg_int(r, 0, 0);
		snprintf(out->name, sizeof(out->name), "%s", pg_val(r, 0, 1));
		out->telegram_id = pg_int(r, 0, 2);
		snprintf(out->op, sizeof(out->op), "%s", pg_val(r, 0, 3));
		out->admin = strcmp(pg_val(r, 0, 4), "t") == 0;
		out->session_id = pg_int(r, 0, 5);
		snprintf(out->csrf, sizeof(out->csrf), "%s", pg_val(r, 0, 6));
	}
	PQclear(r);
	return rc;
}

int web_session_login(pg_conn *c, const char *token, int64_t ttl_ms, char *cookie, size_t cap,
		      web_identity *out)
{
	char secret[WEB_SECRET_LEN + 1], csrf[WEB_SECRET_LEN + 1], hash[65], tid[24], ttl[24];
	const char *params[4] = {hash, tid, csrf, ttl};
	int64_t left = 0;
	PGresult *r = NULL;
	int rc;

	if (cap < WEB_SECRET_LEN + 1)
		return err_set(ERR_INVALID, "no room for the cookie");
	if (sodium_init() < 0)
		return err_set(ERR_CRYPTO, "libsodium could not start");
	rc = by_token(c, token ? token : "", out, &left);
	if (rc < 0)
		return rc;
	if (ttl_ms <= 0)
		ttl_ms = (int64_t)12 * 3600 * 1000;
	if (ttl_ms > left)
		ttl_ms = left;
	new_secret(secret);
	new_secret(csrf);
	hash_hex(secret, hash);
	snprintf(tid, sizeof(tid), "%lld", (long long)out->token_id);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	rc = pg_exec_stmt(c, &r, &STMT_SESSION_NEW, params);
	if (rc == 0) {
		out->session_id = pg_int(r, 0, 0);
		snprintf(out->csrf, sizeof(out->csrf), "%s", csrf);
		snprintf(cookie, cap, "%s", secret);
	}
	PQclear(r);
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

int web_session_end(pg_conn *c, int64_t session_id)
{
	char sid[24];
	const char *params[1] = {sid};

	snprintf(sid, sizeof(sid), "%lld", (long long)session_id);
	return pg_exec_stmt(c, NULL, &STMT_SESSION_END, params);
}

int web_csrf_ok(const web_identity *who, const char *presented)
{
	size_t n = strlen(who->csrf);

	if (who->session_id == 0)
		return 1;
	if (n == 0 || !presented || strlen(presented) != n)
		return 0;
	return sodium_memcmp(who->csrf, presented, n) == 0;
}
