/*
 * testsum — what a test command's output says: how many tests passed,
 * failed and were skipped.
 *
 * The spawner verifies a worker's "done" by running the task's test command
 * in a fresh sandbox; this module reads its output. Recognised, in this
 * order (the first format found wins):
 *   cargo test   "test result: ok. 5 passed; 1 failed; 2 ignored; ..." (summed)
 *   pytest       "==== 3 passed, 1 failed, 2 skipped in 0.12s ===="
 *   unittest     "Ran 7 tests in 0.01s" then "OK" or "FAILED (failures=1, errors=2)"
 *   go test -v   "--- PASS: TestX", "--- FAIL: TestY", "--- SKIP: TestZ"
 *   TAP          "ok 1 - x", "not ok 2 - y", "ok 3 # SKIP", plan "1..N"
 *   plain        "N passed, N failed" on a line of its own (", N skipped"
 *                may follow; one word with a colon may stand before it)
 * When none matches, counts are unknown (-1) and the exit status decides.
 * A run passes when the command exited 0 and no test failed. Counts are
 * held to a billion (the output may claim any number).
 *
 * The failing tests are named too where the format names them: unittest's
 * "FAIL: x (m.C.x)" and "ERROR: ...", pytest's "FAILED path::test - ..."
 * summary lines, go's "--- FAIL: TestX", cargo's "test x ... FAILED",
 * TAP's "not ok N - description" (its description). A change's baseline
 * compares them (spawner/request.h: allowed_failing).
 */
#ifndef ORCH_SPAWNER_TESTSUM_H
#define ORCH_SPAWNER_TESTSUM_H

#include <stddef.h>

typedef struct spw_testsum {
	char format[16]; /* "cargo", "pytest", "unittest", "go", "tap", "plain", "exit" */
	int passed;      /* -1 when the output gave no counts */
	int failed;      /* failures and errors */
	int skipped;
	int total;       /* passed + failed (skipped not counted); -1 when unknown */
	int exit_code;
	int ok;          /* exit 0 and nothing failed */
	char failing[4096]; /* the failing tests' names, one a line */
	int failing_known;  /* every failure is named in `failing` */
} spw_testsum;

/* 1 when the failing test `name` is one of `names` (one a line). */
int spw_testsum_named(const char *names, const char *name);

/* Reads `text` (len bytes, need not be NUL-terminated) and the command's
 * exit status into *out. Never fails. */
void spw_testsum_parse(const char *text, size_t len, int exit_code, spw_testsum *out);

#endif
