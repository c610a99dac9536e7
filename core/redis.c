#include "core/redis.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#define RDS_MAX_ARGS 64
#define RDS_BACKOFF_BASE_MS 100
#define RDS_BACKOFF_MAX_MS 2000

struct rds_conn {
	rds_url url;
	char where[600];       /* "host:port" or the socket path, for messages */
	redisContext *ctx;     /* NULL while down */
	int64_t timeout_ms;
	int attempts;          /* failed connection attempts in a row */
	int64_t next_try_ms;   /* monotonic time of the next attempt */
	const atomic_int *cancel;
	int64_t reconnects;
	int ever_connected;
};

/* --- URLs --- */

/* Copies s[0..n) percent-decoded into out[cap]. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, const char *what)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '%') {
			if (i + 2 >= n || util_hexval(s[i + 1]) < 0 || util_hexval(s[i + 2]) < 0)
				return err_set(ERR_INVALID, "REDIS_URL: a bad %%-escape in the %s", what);
			ch = (char)(util_hexval(s[i + 1]) * 16 + util_hexval(s[i + 2]));
			if (ch == '\0') /* it would end the value there */
				return err_set(ERR_INVALID, "REDIS_URL: %%00 in the %s", what);
			i += 2;
		}
		if (o + 1 >= cap)
			return err_set(ERR_INVALID, "REDIS_URL: the %s is too long", what);
		out[o++] = ch;
	}
	out[o] = '\0';
	return 0;
}

static int parse_db(const char *s, size_t n, int *out)
{
	char tmp[16];
	char *end;
	long v;

	if (n == 0) {
		*out = 0;
		return 0;
	}
	if (n >= sizeof(tmp))
		return err_set(ERR_INVALID, "REDIS_URL: the database number is not a number");
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	v = strtol(tmp, &end, 10);
	/* not quoted: with a '/' in the password, what stands here is part of it */
	if (*end || strspn(tmp, "0123456789") != n || v < 0 || v > 100000)
		return err_set(ERR_INVALID, "REDIS_URL: the database number is not a number from 0 "
					    "up (a '/' or '@' in the password is written %%2F, %%40)");
	*out = (int)v;
	return 0;
}

int rds_url_parse(const char *url, rds_url *out)
{
	const char *p, *at, *hostend, *slash, *q;
	int rc;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (!url || !*url)
		return err_set(ERR_INVALID, "REDIS_URL is empty: set it to redis://host:port/db");
	if (strncmp(url, "rediss://", 9) == 0)
		return err_set(ERR_INVALID, "REDIS_URL: rediss:// (TLS) is not supported by this build; "
					    "use redis:// on a trusted network or a TLS tunnel");
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		q = strchr(p, '?');
		if ((size_t)(q ? q - p : (ptrdiff_t)strlen(p)) >= sizeof(out->path) || *p != '/')
			return err_set(ERR_INVALID, "REDIS_URL: unix:// needs an absolute socket path");
		snprintf(out->path, sizeof(out->path), "%.*s", (int)(q ? q - p : (ptrdiff_t)strlen(p)), p);
		if (q) {
			if (strncmp(q, "?db=", 4) != 0)
				return err_set(ERR_INVALID, "REDIS_URL: unix:// takes only ?db=N");
			return parse_db(q + 4, strlen(q + 4), &out->db);
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return err_set(ERR_INVALID, "REDIS_URL must start with redis:// or unix:// "
					    "(redis://[[user]:password@]host[:port][/db])");
	p = url + 8;
	slash = strchr(p, '/');
	at = NULL;
	for (const char *s = p; *s && (!slash || s < slash); s++)
		if (*s == '@')
			at = s; /* the last '@' before the path */
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon) {
			rc = pct_decode(p, (size_t)(colon - p), out->user, sizeof(out->user), "user name");
			if (rc < 0)
				return rc;
			rc = pct_decode(colon + 1, (size_t)(at - colon - 1), out->password,
					sizeof(out->password), "password");
		} else {
			/* redis://password@host is accepted as a password alone */
			rc = pct_decode(p, (size_t)(at - p), out->password, sizeof(out->password),
					"password");
		}
		if (rc < 0)
			return rc;
		p = at + 1;
	}
	hostend = slash ? slash : p + strlen(p);
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(hostend - p));

		if (!rb)
			return err_set(ERR_INVALID, "REDIS_URL: an IPv6 host lacks its ']'");
		snprintf(out->host, sizeof(out->host), "%.*s", (int)(rb - p - 1), p + 1);
		p = rb + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(hostend - p));
		const char *hend = colon ? colon : hostend;

		if ((size_t)(hend - p) >= sizeof(out->host))
			return err_set(ERR_INVALID, "REDIS_URL: the host name is too long");
		snprintf(out->host, sizeof(out->host), "%.*s", (int)(hend - p), p);
		p = hend;
	}
	if (!out->host[0])
		snprintf(out->host, sizeof(out->host), "127.0.0.1");
	if (*p == ':') {
		char tmp[16], *end;
		long v;
		size_t n = (size_t)(hostend - p - 1);

		if (n == 0 || n >= sizeof(tmp))
			return err_set(ERR_INVALID, "REDIS_URL: the port is not a number");
		memcpy(tmp, p + 1, n);
		tmp[n] = '\0';
		v = strtol(tmp, &end, 10);
		if (*end || strspn(tmp, "0123456789") != n || v < 1 || v > 65535) /* not quoted */
			return err_set(ERR_INVALID, "REDIS_URL: the port is not a number in 1-65535 "
						    "(a '/' or '@' in the password is written %%2F, "
						    "%%40)");
		out->port = (int)v;
	} else if (p != hostend) {
		return err_set(ERR_INVALID, "REDIS_URL: unexpected text after the host");
	}
	if (slash) {
		const char *db = slash + 1;
		size_t n = strcspn(db, "?");

		if (db[n] == '?')
			return err_set(ERR_INVALID, "REDIS_URL: query options are not supported");
		return parse_db(db, n, &out->db);
	}
	return 0;
}

void rds_url_redact(const char *url, char *out, size_t cap)
{
	const char *p, *at = NULL, *colon, *slash;

	if (!url) {
		snprintf(out, cap, "(none)");
		return;
	}
	p = strstr(url, "://");
	p = p ? p + 3 : url;
	slash = strchr(p, '/');
	for (const char *s = p; *s && (!slash || s < slash); s++)
		if (*s == '@')
			at = s;
	if (!at) {
		snprintf(out, cap, "%s", url);
		return;
	}
	colon = memchr(p, ':', (size_t)(at - p));
	if (colon)
		snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
	else
		snprintf(out, cap, "%.*s***%s", (int)(p - url), url, at);
}

/* --- replies --- */

void rds_reply_free(rds_reply *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rds_reply_free(r->elem[i]);
	free(r->elem);
	free(r->str);
	free(r);
}

const rds_reply *rds_at(const rds_reply *r, size_t i)
{
	if (!r || r->type != RDS_ARR || i >= r->n)
		return NULL;
	return r->elem[i];
}

const char *rds_str(const rds_reply *r)
{
	if (!r || (r->type != RDS_STR && r->type != RDS_STATUS) || !r->str)
		return "";
	return r->str;
}

long long rds_int(const rds_reply *r, long long def)
{
	char *end;
	long long v;

	if (!r)
		return def;
	if (r->type == RDS_INT)
		return r->integer;
	if ((r->type == RDS_STR || r->type == RDS_STATUS) && r->str && r->str[0]) {
		v = strtoll(r->str, &end, 10);
		if (!*end)
			return v;
	}
	return def;
}

/* Copies a hiredis reply (not an error reply) into an rds_reply. */
static rds_reply *copy_reply(const redisReply *h)
{
	rds_reply *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	switch (h->type) {
	case REDIS_REPLY_INTEGER:
		r->type = RDS_INT;
		r->integer = h->integer;
		break;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		r->type = h->type == REDIS_REPLY_STRING ? RDS_STR : RDS_STATUS;
		r->str = malloc(h->len + 1);
		if (!r->str)
			goto fail;
		if (h->len)
			memcpy(r->str, h->str, h->len);
		r->str[h->len] = '\0';
		r->len = h->len;
		break;
	case REDIS_REPLY_ARRAY:
		r->type = RDS_ARR;
		if (h->elements) {
			r->elem = calloc(h->elements, sizeof(*r->elem));
			if (!r->elem)
				goto fail;
		}
		for (size_t i = 0; i < h->elements; i++) {
			r->elem[i] = copy_reply(h->element[i]);
			if (!r->elem[i])
				goto fail;
			r->n = i + 1;
		}
		break;
	default:
		r->type = RDS_NIL;
		break;
	}
	return r;
fail:
	rds_reply_free(r);
	return NULL;
}

/* Translates an error reply into a code, with the server's message. */
static int reply_error(const rds_conn *c, const char *msg)
{
	static const struct {
		const char *prefix;
		int code;
	} map[] = {
		{"NOAUTH", ERR_AUTH},     {"WRONGPASS", ERR_AUTH},  {"NOPERM", ERR_DENIED},
		{"NOGROUP", ERR_NOTFOUND}, {"BUSYGROUP", ERR_CONFLICT}, {"WRONGTYPE", ERR_INVALID},
		{"LOADING", ERR_RETRY},   {"BUSY", ERR_RETRY},      {"TRYAGAIN", ERR_RETRY},
		{"MASTERDOWN", ERR_RETRY}, {"READONLY", ERR_RETRY}, {"NOSCRIPT", ERR_NOTFOUND},
	};
	int code = ERR_REDIS;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		size_t n = strlen(map[i].prefix);
		if (strncmp(msg, map[i].prefix, n) == 0 && (msg[n] == ' ' || msg[n] == '\0')) {
			code = map[i].code;
			break;
		}
	}
	if (code == ERR_REDIS) {
		if (strstr(msg, "invalid password") || strstr(msg, "invalid username-password"))
			code = ERR_AUTH;
		else if (strstr(msg, "syntax error") || strstr(msg, "wrong number of arguments") ||
			 strstr(msg, "not an integer") || strstr(msg, "Invalid stream ID") ||
			 strstr(msg, "unknown command"))
			code = ERR_INVALID;
		else if (strstr(msg, "no such key"))
			code = ERR_NOTFOUND;
	}
	return err_set(code, "redis at %s: %.400s", c->where, msg);
}

/* --- connections --- */

static struct timeval tv_of(int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

static void drop(rds_conn *c)
{
	if (c->ctx) {
		redisFree(c->ctx);
		c->ctx = NULL;
	}
}

/* Runs a command on the raw context during the handshake. */
static int handshake_cmd(rds_conn *c, int argc, const char **argv)
{
	redisReply *h = redisCommandArgv(c->ctx, argc, argv, NULL);
	int rc = 0;

	if (!h)
		return err_set(ERR_REDIS, "redis at %s: %s", c->where, c->ctx->errstr);
	if (h->type == REDIS_REPLY_ERROR)
		rc = reply_error(c, h->str);
	freeReplyObject(h);
	return rc;
}

/* One connection attempt, without backoff. */
static int connect_now(rds_conn *c)
{
	struct timeval tv = tv_of(c->timeout_ms);
	int rc;

	drop(c);
	if (c->url.path[0])
		c->ctx = redisConnectUnixWithTimeout(c->url.path, tv);
	else
		c->ctx = redisConnectWithTimeout(c->url.host, c->url.port, tv);
	if (!c->ctx)
		return err_set(ERR_NOMEM, "out of memory connecting to redis");
	if (c->ctx->err) {
		rc = err_set(ERR_REDIS, "cannot reach redis at %s: %s", c->where, c->ctx->errstr);
		drop(c);
		return rc;
	}
	redisSetTimeout(c->ctx, tv);
	if (!c->url.path[0])
		redisEnableKeepAlive(c->ctx);
	if (c->url.password[0]) {
		const char *argv[3] = {"AUTH", c->url.user[0] ? c->url.user : c->url.password,
				       c->url.password};
		rc = handshake_cmd(c, c->url.user[0] ? 3 : 2, argv);
		if (rc < 0) {
			if (rc == ERR_AUTH)
				err_set(ERR_AUTH, "redis at %s refused the password of REDIS_URL",
					c->where);
			drop(c);
			return rc;
		}
	}
	if (c->url.db != 0) {
		char db[16];
		const char *argv[2] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", c->url.db);
		rc = handshake_cmd(c, 2, argv);
		if (rc < 0) {
			drop(c);
			return rc;
		}
	}
	if (c->ever_connected)
		c->reconnects++;
	c->ever_connected = 1;
	return 0;
}

int rds_ensure(rds_conn *c)
{
	int rc;

	if (c->ctx)
		return 0;
	/* wait out the backoff, in slices so a stopping caller is not held */
	for (;;) {
		int64_t left = c->next_try_ms - util_mono_ms();

		if (c->cancel && atomic_load(c->cancel))
			return err_set(ERR_CANCELLED, "stopping: redis at %s is not connected",
				       c->where);
		if (left <= 0)
			break;
		util_sleep_ms(left < 50 ? left : 50);
	}
	rc = connect_now(c);
	if (rc < 0) {
		int64_t delay = util_backoff_ms(c->attempts, RDS_BACKOFF_BASE_MS, RDS_BACKOFF_MAX_MS);

		if (c->attempts < 30)
			c->attempts++;
		c->next_try_ms = util_mono_ms() + delay;
		return rc;
	}
	c->attempts = 0;
	c->next_try_ms = 0;
	return 0;
}

int rds_connect(rds_conn **out, const char *url, int lazy)
{
	rds_conn *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(ERR_NOMEM, "out of memory");
	rc = rds_url_parse(url, &c->url);
	if (rc < 0)
		goto fail;
	if (c->url.path[0])
		snprintf(c->where, sizeof(c->where), "%s", c->url.path);
	else
		snprintf(c->where, sizeof(c->where), "%s:%d", c->url.host, c->url.port);
	c->timeout_ms = 10000;
	rc = connect_now(c);
	if (rc < 0) {
		if (!lazy || rc == ERR_AUTH)
			goto fail;
		c->attempts = 1;
		c->next_try_ms = util_mono_ms() + RDS_BACKOFF_BASE_MS;
	}
	*out = c;
	return 0;
fail:
	memset(c->url.password, 0, sizeof(c->url.password));
	free(c);
	return rc;
}

void rds_free(rds_conn *c)
{
	if (!c)
		return;
	drop(c);
	memset(c->url.password, 0, sizeof(c->url.password));
	free(c);
}

void rds_set_timeout(rds_conn *c, int64_t ms)
{
	c->timeout_ms = ms > 0 ? ms : 10000;
	if (c->ctx)
		redisSetTimeout(c->ctx, tv_of(c->timeout_ms));
}

void rds_set_cancel(rds_conn *c, const atomic_int *flag)
{
	c->cancel = flag;
}

int rds_broken(const rds_conn *c)
{
	return c->ctx == NULL;
}

int64_t rds_reconnects(const rds_conn *c)
{
	return c->reconnects;
}

/* Turns a raw reply (NULL: I/O failure) into the result of a command. */
static int take_reply(rds_conn *c, redisReply *h, rds_reply **out)
{
	int rc = 0;

	if (!h) {
		rc = err_set(ERR_REDIS, "redis at %s: connection lost: %s", c->where,
			     c->ctx && c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
		drop(c);
		c->next_try_ms = util_mono_ms() + RDS_BACKOFF_BASE_MS;
		return rc;
	}
	if (h->type == REDIS_REPLY_ERROR) {
		rc = reply_error(c, h->str ? h->str : "error");
	} else if (out) {
		*out = copy_reply(h);
		if (!*out)
			rc = err_set(ERR_NOMEM, "out of memory copying a redis reply");
	}
	freeReplyObject(h);
	return rc;
}

int rds_cmdv(rds_conn *c, rds_reply **out, int argc, const char *const *argv,
	     const size_t *lens)
{
	redisReply *h;
	int rc;

	if (out)
		*out = NULL;
	if (argc < 1)
		return err_set(ERR_INVALID, "a redis command needs a name");
	rc = rds_ensure(c);
	if (rc < 0)
		return rc;
	h = redisCommandArgv(c->ctx, argc, (const char **)argv, lens);
	return take_reply(c, h, out);
}

int rds_cmd(rds_conn *c, rds_reply **out, ...)
{
	const char *argv[RDS_MAX_ARGS];
	const char *a;
	int argc = 0;
	va_list ap;

	va_start(ap, out);
	for (a = va_arg(ap, const char *); a; a = va_arg(ap, const char *)) {
		if (argc == RDS_MAX_ARGS) {
			va_end(ap);
			if (out)
				*out = NULL;
			return err_set(ERR_TOOBIG, "a redis command has more than %d arguments",
				       RDS_MAX_ARGS);
		}
		argv[argc++] = a;
	}
	va_end(ap);
	return rds_cmdv(c, out, argc, argv, NULL);
}

int rds_pipeline(rds_conn *c, int n, const int *argcs, const char *const *const *argvs,
		 const size_t *const *lens)
{
	int rc, first = 0;

	if (n < 1)
		return 0;
	rc = rds_ensure(c);
	if (rc < 0)
		return rc;
	for (int i = 0; i < n; i++)
		if (redisAppendCommandArgv(c->ctx, argcs[i], (const char **)argvs[i],
					   lens ? lens[i] : NULL) != REDIS_OK)
			return err_set(ERR_NOMEM, "out of memory queueing a redis command");
	for (int i = 0; i < n; i++) {
		void *h = NULL;

		if (redisGetReply(c->ctx, &h) != REDIS_OK)
			return take_reply(c, NULL, NULL);
		rc = take_reply(c, h, NULL);
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first;
}

int rds_read(rds_conn *c, int64_t timeout_ms, rds_reply **out)
{
	void *h = NULL;
	int64_t until;
	int rc;

	*out = NULL;
	rc = rds_ensure(c);
	if (rc < 0)
		return rc;
	if (timeout_ms < 0)
		timeout_ms = c->timeout_ms;
	until = util_mono_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd;
		int64_t left;
		int n;

		if (redisReaderGetReply(c->ctx->reader, &h) != REDIS_OK) {
			rc = err_set(ERR_REDIS, "redis at %s: a malformed reply", c->where);
			drop(c);
			return rc;
		}
		if (h)
			return take_reply(c, h, out);
		left = until - util_mono_ms();
		if (left <= 0)
			return err_set(ERR_TIMEOUT, "redis at %s: nothing arrived in %lld ms", c->where,
				       (long long)timeout_ms);
		pfd.fd = c->ctx->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)(left > 100 ? 100 : left));
		if (n <= 0)
			continue;
		if (redisBufferRead(c->ctx) != REDIS_OK) {
			rc = err_set(ERR_REDIS, "redis at %s: connection lost: %s", c->where,
				     c->ctx->errstr);
			drop(c);
			return rc;
		}
	}
}
