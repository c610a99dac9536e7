/*
 * pg — PostgreSQL connections, a pool, prepared statements and pipelines.
 *
 * A pg_conn wraps a libpq connection and remembers which pg_stmt it has
 * prepared, so hot statements are parsed and planned once per connection.
 * A pg_pool hands out connections to threads, opens them lazily and replaces
 * broken ones, so a database restart costs a reconnect, not a crash.
 * pg_pipe sends several statements in one network round trip (libpq pipeline
 * mode); the statements up to the sync point run in one transaction, and an
 * error in one aborts all of them.
 *
 * Errors are translated here: a failed statement returns ERR_DB with the
 * server's message and keeps its SQLSTATE for pg_last_sqlstate() and its
 * class (pg_errclass: connection lost, resources exhausted, constraint,
 * serialization, other) for pg_last_errclass(), which tells a caller what
 * to do about it: reconnect, back off, or give up. Counters of statements
 * and round trips (pg_stats) let benchmarks report what a workload costs.
 */
#ifndef ORCH_CORE_PG_H
#define ORCH_CORE_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct pg_conn pg_conn;
typedef struct pg_pool pg_pool;

/* A statement prepared by name on first use on each connection. Define them
 * as static constants next to the code that runs them. nparams is the number
 * of $n parameters; all parameters are sent as text. */
typedef struct pg_stmt {
	const char *name;
	const char *sql;
	int nparams;
} pg_stmt;

/* --- single connections --- */

/* Opens a connection to `url` (a libpq URI or keyword string). ERR_DB with
 * the reason, never the password, when the server cannot be reached. The
 * caller owns *out and closes it with pg_conn_close. */
int pg_conn_open(pg_conn **out, const char *url);
void pg_conn_close(pg_conn *c);

/* The libpq handle, for LISTEN/NOTIFY and socket polling. Borrowed. */
PGconn *pg_conn_raw(pg_conn *c);

/* True when the connection is gone (server restart, network loss). */
int pg_conn_broken(pg_conn *c);

/* Runs one statement with text parameters. When `out` is non-NULL the caller
 * owns *out (PQclear); otherwise the result is discarded. ERR_DB on failure
 * (the SQLSTATE is kept, see pg_last_sqlstate). */
int pg_exec(pg_conn *c, PGresult **out, const char *sql, int nparams,
	    const char *const *params);

/* Runs a prepared statement, preparing it on this connection first if
 * needed. Same contract as pg_exec. */
int pg_exec_stmt(pg_conn *c, PGresult **out, const pg_stmt *st, const char *const *params);

/* Ends the transaction begun on `c`: COMMIT when rc is 0 (and returns
 * COMMIT's result), else ROLLBACK, returning rc with its error message kept
 * (the ROLLBACK's own outcome does not replace it). */
int pg_tx_end(pg_conn *c, int rc);

/* What pg_query_json gives when the statement returns no row or NULL. */
typedef enum pg_json_empty {
	PG_JSON_NULL,  /* *out stays NULL */
	PG_JSON_ARRAY, /* [] */
} pg_json_empty;

/* Runs prepared statement `st`, whose one row and column is a JSON text
 * (json_agg(...)::text, json_build_object(...)::text), and parses it into
 * *out (owned); no row or NULL gives `empty`. ERR_DB as pg_exec_stmt,
 * ERR_PARSE for text that is not JSON. */
struct json_t;
int pg_query_json(pg_conn *c, const pg_stmt *st, const char *const *params, pg_json_empty empty,
		  struct json_t **out);

/* Runs a statement string made of several commands (DDL, migrations) with the
 * simple query protocol. No parameters. */
int pg_exec_script(pg_conn *c, const char *sql);

/* SQLSTATE of the last failed statement on this thread ("" when none):
 * "23505" unique violation, "40001" serialization failure, ... */
const char *pg_last_sqlstate(void);

/* Named SQLSTATEs the code tests for (compare with pg_last_sqlstate_is). */
#define PG_SQLSTATE_UNIQUE_VIOLATION "23505"
#define PG_SQLSTATE_UNDEFINED_TABLE "42P01"

/* True when the last failed statement on this thread had SQLSTATE `code`. */
int pg_last_sqlstate_is(const char *code);

/* What kind of failure a database error is, and what to do about it. */
typedef enum pg_errclass {
	PG_ERRC_NONE = 0,      /* no error */
	PG_ERRC_CONNECTION,    /* the connection broke or could not be made (class 08,
				* 57P01-57P03 shutdown/crash/starting up, any broken
				* connection): reconnect and carry on */
	PG_ERRC_RESOURCES,     /* the server ran out of something (class 53: disk full,
				* out of memory, too many connections; class 58: I/O
				* errors): back off, retry a bounded number of times */
	PG_ERRC_CONSTRAINT,    /* an integrity constraint refused the write (class 23) */
	PG_ERRC_SERIALIZATION, /* a serialization failure or deadlock (class 40, 55P03):
				* the transaction may succeed when run again */
	PG_ERRC_OTHER,         /* anything else: bad data, a trigger's exception, a bug;
				* retrying the same thing fails the same way */
} pg_errclass;

/* The class of SQLSTATE `sqlstate` (NULL or "": PG_ERRC_OTHER). Pure. */
pg_errclass pg_errclass_of(const char *sqlstate);

/* The class of the last failed statement or connection attempt on this
 * thread (PG_ERRC_NONE after a success): PG_ERRC_CONNECTION whenever the
 * connection was lost, whatever the SQLSTATE. */
pg_errclass pg_last_errclass(void);

/* A stable lowercase name: "none", "connection", "resources", "constraint",
 * "serialization", "other". */
const char *pg_errclass_name(pg_errclass cls);

/* The last failure's class and SQLSTATE together, to carry them to another
 * thread (a group commit's leader to the steps it committed). */
typedef struct pg_error {
	pg_errclass cls;
	char sqlstate[6];
} pg_error;
void pg_last_error(pg_error *out);

/* --- pipelines --- */

#define PG_PIPE_MAX 16

typedef struct pg_pipe {
	int n;
	const pg_stmt *stmts[PG_PIPE_MAX];
	const char *const *params[PG_PIPE_MAX];
	PGresult *res[PG_PIPE_MAX]; /* filled by pg_pipe_run; freed by pg_pipe_clear */
} pg_pipe;

void pg_pipe_init(pg_pipe *p);

/* Queues a prepared statement. `params` must stay valid until pg_pipe_run
 * returns. ERR_TOOBIG past PG_PIPE_MAX statements. */
int pg_pipe_add(pg_pipe *p, const pg_stmt *st, const char *const *params);

/* Sends every queued statement and one sync in a single round trip and
 * reads the results into p->res[i]. The statements form one transaction:
 * on the first error the server skips the rest and rolls back; ERR_DB is
 * returned with that statement's message and SQLSTATE. */
int pg_pipe_run(pg_pipe *p, pg_conn *c);

/* Frees the results and empties the pipeline for reuse. */
void pg_pipe_clear(pg_pipe *p);

/* --- the pool --- */

/* Creates a pool of at most `size` connections to `url`. Connections are
 * opened lazily. The caller owns *out; free with pg_pool_free after every
 * connection has been released. */
int pg_pool_new(pg_pool **out, const char *url, int size);
void pg_pool_free(pg_pool *p);

/* Borrows a connection, waiting up to timeout_ms (< 0: forever) for one to
 * be free, opening or re-opening it when needed. ERR_TIMEOUT, or ERR_DB when
 * the server cannot be reached. Thread-safe. */
int pg_pool_acquire(pg_pool *p, int64_t timeout_ms, pg_conn **out);

/* Returns a connection. A broken connection, or one left inside a
 * transaction or pipeline, is closed and reopened on next use. */
void pg_pool_release(pg_pool *p, pg_conn *c);

/* The URL the pool connects to. Borrowed. */
const char *pg_pool_url(const pg_pool *p);

/* --- helpers --- */

/* Copies `url` into out[cap] with any password replaced by "***". */
void pg_url_redact(const char *url, char *out, size_t cap);

/* Appends a PostgreSQL array literal of `n` strings ({"a","b\\"c"}) to `out`,
 * quoting and escaping each item. */
int pg_text_array(buf *out, const char *const *items, size_t n);

/* Result accessors that never fail: "" / 0 for NULL or out-of-range. */
const char *pg_val(const PGresult *r, int row, int col);
int pg_isnull(const PGresult *r, int row, int col);
int64_t pg_int(const PGresult *r, int row, int col);
int pg_rows(const PGresult *r);
int pg_affected(const PGresult *r); /* rows affected by INSERT/UPDATE/DELETE */

/* Process-wide counters (relaxed atomics). */
typedef struct pg_stats {
	int64_t statements;  /* statements executed (each query in a pipeline counts) */
	int64_t round_trips; /* network round trips (a pipeline counts once) */
	int64_t prepares;    /* statements prepared */
	int64_t connects;    /* connections opened */
} pg_stats;
void pg_stats_get(pg_stats *out);

#endif
