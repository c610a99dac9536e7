/*
 * redis — a Redis connection that survives server restarts.
 *
 * Wraps hiredis (0.14): connects from a REDIS_URL
 * (redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]),
 * authenticates and selects the database, runs commands and translates
 * replies into rds_reply (a copy owned by the caller: no hiredis type leaves
 * this module) and error replies into core/err.h codes:
 *   NOAUTH, WRONGPASS, invalid password      ERR_AUTH
 *   NOGROUP, no such key                     ERR_NOTFOUND
 *   BUSYGROUP                                ERR_CONFLICT
 *   WRONGTYPE, syntax errors, bad arguments  ERR_INVALID
 *   LOADING, BUSY, TRYAGAIN, MASTERDOWN      ERR_RETRY (the server is starting)
 *   anything else, and a lost connection     ERR_REDIS
 * A connection that breaks (the server restarted, the network failed) is
 * dropped; the next command reconnects first, waiting out an exponential
 * backoff with jitter between failed attempts (100 ms doubling to 2 s), so a
 * loop that retries on error neither spins nor gives up. A command that was
 * in flight when the connection broke is NOT retried here: whether it ran
 * is unknown, and only the caller knows whether it is safe to repeat.
 *
 * One rds_conn is used by one thread at a time (hiredis contexts are not
 * thread-safe); give each thread its own. Passwords never appear in a
 * message or a log line.
 */
#ifndef ORCH_CORE_REDIS_H
#define ORCH_CORE_REDIS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rds_conn rds_conn;

/* Where to connect, parsed from a URL. */
typedef struct rds_url {
	char host[256];      /* "" for a unix socket */
	int port;            /* 6379 when not given */
	char path[512];      /* unix socket path, "" for TCP */
	int db;              /* 0 when not given */
	char user[128];      /* ACL user, "" for the default user */
	char password[256];  /* "" for none */
} rds_url;

/* Parses `url`. ERR_INVALID saying what is wrong (never quoting the
 * password) for another scheme (rediss:// needs TLS, which this build
 * lacks), a bad port or database number. */
int rds_url_parse(const char *url, rds_url *out);

/* Copies `url` into out[cap] with any password replaced by "***". */
void rds_url_redact(const char *url, char *out, size_t cap);

typedef enum rds_type {
	RDS_NIL = 0,
	RDS_INT,
	RDS_STR,    /* bulk string (binary-safe: use len) */
	RDS_STATUS, /* simple string ("OK", "QUEUED") */
	RDS_ARR,
} rds_type;

/* A reply, owned by whoever received it (rds_reply_free). */
typedef struct rds_reply {
	rds_type type;
	long long integer;        /* RDS_INT */
	char *str;                /* RDS_STR, RDS_STATUS: NUL-terminated */
	size_t len;
	struct rds_reply **elem;  /* RDS_ARR */
	size_t n;
} rds_reply;

void rds_reply_free(rds_reply *r);

/* Borrowed accessors that never fail: element i or NULL; a string reply's
 * text or "" (also for NULL and non-strings); an integer reply's value or
 * a string reply parsed as an integer, else `def`. */
const rds_reply *rds_at(const rds_reply *r, size_t i);
const char *rds_str(const rds_reply *r);
long long rds_int(const rds_reply *r, long long def);

/* Creates a connection to `url` and connects at once: ERR_INVALID for a
 * bad URL, ERR_AUTH when the password is refused, ERR_REDIS when the server
 * cannot be reached (the message names host and port). With `lazy` set an
 * unreachable server is not an error: the first command connects. The
 * caller owns *out (rds_free). */
int rds_connect(rds_conn **out, const char *url, int lazy);

/* Closes and frees. NULL is a no-op. */
void rds_free(rds_conn *c);

/* Socket timeout for connecting, sending and reading a reply (default
 * 10 s). A blocking command (XREADGROUP BLOCK, BLPOP) needs a timeout above
 * its block time. */
void rds_set_timeout(rds_conn *c, int64_t ms);

/* While waiting out the reconnect backoff, stop early when *flag becomes
 * non-zero (the caller is stopping). NULL: never. Borrowed. */
void rds_set_cancel(rds_conn *c, const atomic_int *flag);

/* True when the connection is currently down (the next command reconnects). */
int rds_broken(const rds_conn *c);

/* Connects now if the connection is down (with the backoff). 0 when up. */
int rds_ensure(rds_conn *c);

/* Runs one command given as `argc` strings (binary-safe when `lens` is
 * non-NULL, else NUL-terminated). *out (may be NULL to discard) gets the
 * reply, owned by the caller; it is left NULL on failure. An error reply is
 * translated as described above, with the server's message. */
int rds_cmdv(rds_conn *c, rds_reply **out, int argc, const char *const *argv,
	     const size_t *lens);

/* rds_cmdv with the arguments as a NULL-terminated list of strings:
 * rds_cmd(c, &r, "XACK", stream, group, id, NULL). */
int rds_cmd(rds_conn *c, rds_reply **out, ...) __attribute__((sentinel));

/* Runs n commands in one round trip (pipelined): command i has argcs[i]
 * arguments argvs[i] (binary-safe with lens[i]; lens may be NULL, and so may
 * lens[i]). The replies are read and discarded; 0 when every command
 * succeeded, else the first error (the later replies are read all the
 * same). A connection lost on the way is ERR_REDIS (which commands ran is
 * unknown). */
int rds_pipeline(rds_conn *c, int n, const int *argcs, const char *const *const *argvs,
		 const size_t *const *lens);

/* Reads the next reply pushed by the server (a SUBSCRIBE message) into *out,
 * waiting up to timeout_ms (< 0: the socket timeout). ERR_TIMEOUT when none
 * came (the connection stays usable), ERR_REDIS when it broke. */
int rds_read(rds_conn *c, int64_t timeout_ms, rds_reply **out);

/* Figures for tests and status (relaxed; per connection). */
int64_t rds_reconnects(const rds_conn *c);

#endif
