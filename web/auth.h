/*
 * web/auth — who is asking: login tokens, sessions and CSRF tokens for the
 * dashboard, and the one function every HTTP part (the dashboard, its JSON
 * API, the MCP endpoint) uses to map a request to an identity.
 *
 * A token is made for a person's NAME by `orchestrator web token --user
 * NAME` (web_token_create): 32 random bytes, shown once, stored only as its
 * BLAKE2b-256 hash, with an expiry; it can be revoked. It acts as one
 * identity that may decide questions — a Telegram approver (its user id) or
 * an operator (a Unix user that ORCH_OPERATORS maps to approvers) — and may
 * change the model configuration only when made with --admin.
 *
 * A request presents either `Authorization: Bearer <token>` (scripts, MCP)
 * or the session cookie a login set (the dashboard): a random value, also
 * stored hashed, HttpOnly, SameSite=Strict, Secure behind TLS, expiring.
 * Every state-changing request of a session carries its CSRF token (the
 * X-CSRF-Token header or a form field `csrf`), compared in constant time;
 * bearer requests need none (a browser never adds that header by itself).
 *
 * Functions take a borrowed connection. Token and cookie values are never
 * logged or stored in the clear.
 */
#ifndef ORCH_WEB_AUTH_H
#define ORCH_WEB_AUTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pg.h"

#define WEB_SECRET_LEN 48 /* "orch_" + 43 base64url characters (32 random bytes) */
#define WEB_SESSION_COOKIE "orch_session"

/* Who a request comes from. */
typedef struct web_identity {
	int64_t token_id;
	int64_t session_id;     /* 0: a bearer request */
	char name[65];          /* the person the token was made for */
	int64_t telegram_id;    /* acts as this Telegram approver; 0: none */
	char op[65];            /* or as this Unix user of ORCH_OPERATORS; "": none */
	int admin;              /* may change models, budgets, prompt templates */
	char csrf[WEB_SECRET_LEN + 1]; /* a session's CSRF token; "" for bearer requests */
} web_identity;

typedef struct web_token_spec {
	const char *name;       /* the person */
	int64_t telegram_id;    /* 0: none */
	const char *op;         /* NULL: none (one of the two is required) */
	int admin;
	int64_t ttl_ms;         /* how long it is valid; 0: 30 days */
	const char *created_by; /* "cli:ada" */
} web_token_spec;

/* Makes a token: its value (shown once) into out[WEB_SECRET_LEN + 1] and
 * its id into *out_id. ERR_INVALID for a bad name, neither or both of
 * telegram_id and op, a bad ttl. */
int web_token_create(pg_conn *c, const web_token_spec *spec, char *out, size_t cap,
		     int64_t *out_id);

/* The tokens (never a value): [{id, name, telegram_id, operator, admin,
 * created_by, created_at, expires_at, revoked_at, last_used_at, state:
 * "valid" | "expired" | "revoked", sessions}]. */
int web_token_list(pg_conn *c, json_t **out);

/* Revokes token `id`, or every valid token of NAME when id is 0, and ends
 * their sessions; *out_n (may be NULL) gets how many. ERR_NOTFOUND when
 * none was valid. */
int web_token_revoke(pg_conn *c, int64_t id, const char *name, int *out_n);

/* The identity of a request from its Authorization and Cookie headers
 * (either may be NULL): a valid bearer token, else a valid session.
 * ERR_DENIED with the reason (no credentials, unknown, expired, revoked)
 * — a reason for the log, not for the answer, which says only "log in". */
int web_auth_request(pg_conn *c, const char *authorization, const char *cookie,
		     web_identity *out);

/* Logs in with a token: a new session for it, its cookie value into
 * cookie[WEB_SECRET_LEN + 1] and *out (the identity, with the session's
 * CSRF token). ttl_ms 0: 12 hours (never past the token's expiry).
 * ERR_DENIED for a token that is not valid. */
int web_session_login(pg_conn *c, const char *token, int64_t ttl_ms, char *cookie, size_t cap,
		      web_identity *out);

/* Ends the session of a cookie value (a logout). */
int web_session_end(pg_conn *c, int64_t session_id);

/* 1 when `presented` is the identity's CSRF token (a bearer request needs
 * none: 1), else 0. Constant time. */
int web_csrf_ok(const web_identity *who, const char *presented);

/* The value of cookie `name` in a Cookie header into out[cap]; 0 when
 * found, ERR_NOTFOUND otherwise. */
int web_cookie_get(const char *header, const char *name, char *out, size_t cap);

#endif
