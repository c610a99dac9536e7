/*
 * err — error codes and the per-thread error message.
 *
 * Every fallible function in orchestrator returns an int: 0 on success, a
 * negative err_code on failure. The human-readable reason is kept per thread
 * (as libgit2's git_error_last): the function that detects a failure calls
 * err_set(), callers that only propagate leave the message alone, and the
 * outermost caller prints err_last(). Library errors (libpq, curl, jansson,
 * hiredis, libgit2) are translated into these codes at the module boundary.
 */
#ifndef ORCH_CORE_ERR_H
#define ORCH_CORE_ERR_H

#include <stdarg.h>

typedef enum err_code {
	ERR_OK = 0,
	ERR_NOMEM = -1,      /* allocation failed */
	ERR_INVALID = -2,    /* bad argument, bad input, malformed data */
	ERR_IO = -3,         /* file, socket or process error */
	ERR_DB = -4,         /* PostgreSQL error */
	ERR_NOTFOUND = -5,   /* the named thing does not exist */
	ERR_CONFLICT = -6,   /* exists already, or its state changed under us */
	ERR_TOOBIG = -7,     /* a size cap was reached */
	ERR_TIMEOUT = -8,    /* a deadline passed */
	ERR_BUSY = -9,       /* try again later (a thread's run is active, ...) */
	ERR_LEASE = -10,     /* a run's lease was lost to another engine */
	ERR_WAIT = -11,      /* a node parked waiting for an event (not a failure) */
	ERR_CANCELLED = -12, /* stopped on request */
	ERR_LIMIT = -13,     /* a limit was reached (recursion, steps, cost) */
	ERR_HTTP = -14,      /* HTTP or network error */
	ERR_PARSE = -15,     /* could not parse a reply or a file */
	ERR_AUTH = -16,      /* credentials refused */
	ERR_BUDGET = -17,    /* a spending budget would be exceeded */
	ERR_REDIS = -18,     /* Redis error */
	ERR_GIT = -19,       /* libgit2 error */
	ERR_SANDBOX = -20,   /* sandbox setup or isolation failure */
	ERR_DENIED = -21,    /* not allowed (authorisation, policy) */
	ERR_CRYPTO = -22,    /* decryption or MAC check failed */
	ERR_INTERNAL = -23,  /* a bug: an invariant did not hold */
	ERR_NODE = -24,      /* a graph node reported a failure */
	ERR_CONTEXT = -25,   /* a prompt does not fit a model's context */
	ERR_RETRY = -26,     /* a transient failure the caller may retry */
} err_code;

/* Sets the calling thread's error message (printf format) and returns
 * `code`, so a detector can write `return err_set(ERR_INVALID, "...");`.
 * The message is truncated to 1 KiB (at a character boundary). Thread-safe
 * (per-thread storage). The arguments may include err_last() itself (the
 * current message is formatted aside before it is replaced); err_wrap says
 * the same shorter. */
int err_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int err_setv(int code, const char *fmt, va_list ap);

/* Prefixes the current message with "<prefix>: " keeping the code; used to
 * add context while propagating. Returns the current code. */
int err_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The calling thread's last message ("" when none). Borrowed; valid until
 * the next err_set/err_wrap/err_clear on this thread. */
const char *err_last(void);

/* The code passed with the last err_set on this thread (0 when none). */
int err_last_code(void);

void err_clear(void);

/* A stable lowercase name for a code ("invalid", "db", ...). */
const char *err_name(int code);

#endif
