/*
 * forge_support — starting the fake forge (tests/fakes/forge.py) from a C
 * test and scripting it through its control API.
 *
 * The forge speaks GitHub's REST API under `api` (GitHub Enterprise's
 * layout: a client configured with this base URL calls
 * API/repos/OWNER/NAME/pulls) and serves git over smart HTTP at
 * BASE/OWNER/NAME.git, both on the same tokens. Its docstring lists the
 * endpoints, what it refuses and the control API. Requests to the API need a
 * User-Agent header, as GitHub's do.
 */
#ifndef ORCH_TESTS_FORGE_SUPPORT_H
#define ORCH_TESTS_FORGE_SUPPORT_H

#include <jansson.h>
#include <sys/types.h>

typedef struct ts_forge {
	pid_t pid;
	int port;
	char base[64];  /* http://127.0.0.1:<port> */
	char api[80];   /* http://127.0.0.1:<port>/api/v3 */
} ts_forge;

/* Starts the forge over the bare repositories under `root` (ROOT/OWNER/NAME.git;
 * created when missing) with the tokens in `users`, NULL-terminated strings
 * "login:token" or "login:token:read|write" (write when not said). The
 * forge dies with the test process. Fails the test when it does not start. */
void ts_forge_start(ts_forge *out, const char *root, const char *const *users);

/* Stops it and waits for it; a no-op once stopped. */
void ts_forge_stop(ts_forge *f);

/* POSTs the JSON text `body` to /_control/<what> (repos, users,
 * issue_comment, review_comment, review, status, check_run, merge, close,
 * protect, fail, quota) and returns the parsed answer (caller decrefs).
 * Fails the test unless the forge answers 200. */
json_t *ts_forge_control(const ts_forge *f, const char *what, const char *body);

/* The requests the forge received from sequence number `since` (1: all)
 * on: an array of {seq, kind, method, path, status, user, body_keys}
 * (caller decrefs). */
json_t *ts_forge_log(const ts_forge *f, int since);

#endif
