/*
 * llama — a real llama-server for tests: llama.cpp's server with a tiny
 * random-weight model from ../shared/llama (or ORCH_TEST_LLAMA_DIR), started
 * with its start.sh on a free loopback port and stopped again.
 *
 * A test program without llama-server prints one line "skipped: no
 * llama-server (...)" as its only (passing) case, with ts_llama_skip().
 * A watchdog process kills the server if the test program dies without
 * stopping it (start.sh leaves the server running on its own).
 */
#ifndef ORCH_TESTS_LLAMA_H
#define ORCH_TESTS_LLAMA_H

#include <limits.h>
#include <sys/types.h>

typedef struct ts_llama {
	pid_t pid;           /* the server; 0 when stopped */
	int port;
	char base_url[64];   /* http://127.0.0.1:PORT/v1 */
	char log[PATH_MAX];  /* its log */
	int watch_fd;        /* to the watchdog: the pid to kill when we die */
	pid_t watchdog;
	/* how it was started, for ts_llama_restart */
	char model[64];
	int ctx, np;
	char args[8][32];
	int nargs;
} ts_llama;

/* The directory holding llama-server and start.sh, or NULL with the
 * reason in why[cap]. */
const char *ts_llama_dir(char *why, size_t cap);

/* Prints the TAP of a program whose cases cannot run here: one passing
 * case named `name` with the reason, "skipped: no llama-server (...)".
 * Returns 0 (the program's exit status). */
int ts_llama_skip(const char *name, const char *why);

/* Starts a server: `model` (tiny.gguf, tiny-tools.gguf), total context
 * `ctx` shared by `np` slots, one thread, extra llama-server arguments
 * (NULL-terminated, at most 8; may be NULL). Fails the test when it
 * cannot. */
void ts_llama_start(ts_llama *l, const char *model, int ctx, int np, const char *const *args);

/* Stops it (SIGTERM, then SIGKILL) and the watchdog. */
void ts_llama_stop(ts_llama *l);

/* Kills the server (SIGKILL, as a crash) and waits until it is gone. */
void ts_llama_kill(ts_llama *l);

/* Kills the server (when it runs) and starts it again on the same port after delay_ms, as
 * a crash and restart looks from outside. Blocks until it is up; 0, or -1
 * (with the reason on stderr). Safe from another thread than the test's. */
int ts_llama_restart(ts_llama *l, int delay_ms);

/* Freezes / thaws the server (SIGSTOP / SIGCONT): it keeps its port and
 * accepts connections, and answers nothing. */
void ts_llama_freeze(ts_llama *l, int frozen);

#endif
