#include "core/err.h"
#include "core/utf8.h"

#include <stdio.h>
#include <string.h>

#define ERR_MSG_MAX 1024

static _Thread_local char t_msg[ERR_MSG_MAX];
static _Thread_local int t_code;

int err_setv(int code, const char *fmt, va_list ap)
{
	/* formatted aside first: the arguments may point into t_msg itself
	 * (err_set(code, "context: %s", err_last())) */
	char msg[ERR_MSG_MAX];

	if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg))
		utf8_fit(msg); /* a cut message still ends on a whole character */
	memcpy(t_msg, msg, sizeof(t_msg));
	t_code = code;
	return code;
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_setv(code, fmt, ap);
	va_end(ap);
	return code;
}

int err_wrap(const char *fmt, ...)
{
	char prefix[256];
	char old[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, t_msg, sizeof(old));
	if (snprintf(t_msg, sizeof(t_msg), "%s: %s", prefix, old) >= (int)sizeof(t_msg))
		utf8_fit(t_msg);
	return t_code;
}

const char *err_last(void)
{
	return t_msg;
}

int err_last_code(void)
{
	return t_code;
}

void err_clear(void)
{
	t_msg[0] = '\0';
	t_code = 0;
}

const char *err_name(int code)
{
	switch (code) {
	case ERR_OK: return "ok";
	case ERR_NOMEM: return "nomem";
	case ERR_INVALID: return "invalid";
	case ERR_IO: return "io";
	case ERR_DB: return "db";
	case ERR_NOTFOUND: return "notfound";
	case ERR_CONFLICT: return "conflict";
	case ERR_TOOBIG: return "toobig";
	case ERR_TIMEOUT: return "timeout";
	case ERR_BUSY: return "busy";
	case ERR_LEASE: return "lease";
	case ERR_WAIT: return "wait";
	case ERR_CANCELLED: return "cancelled";
	case ERR_LIMIT: return "limit";
	case ERR_HTTP: return "http";
	case ERR_PARSE: return "parse";
	case ERR_AUTH: return "auth";
	case ERR_BUDGET: return "budget";
	case ERR_REDIS: return "redis";
	case ERR_GIT: return "git";
	case ERR_SANDBOX: return "sandbox";
	case ERR_DENIED: return "denied";
	case ERR_CRYPTO: return "crypto";
	case ERR_INTERNAL: return "internal";
	case ERR_NODE: return "node";
	case ERR_CONTEXT: return "context";
	case ERR_RETRY: return "retry";
	default: return "unknown";
	}
}
