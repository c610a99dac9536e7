/*
 * support — helpers shared by the test programs (linked into each of them).
 *
 * Tests run under tests/run.py, which gives each test program its own
 * database (DATABASE_URL, already migrated), a Redis database (REDIS_URL)
 * and a fresh ORCH_DATA_DIR. Test programs use cmocka:
 *
 *   int main(void) {
 *       const struct CMUnitTest tests[] = { cmocka_unit_test(test_x) };
 *       ts_init();
 *       return cmocka_run_group_tests(tests, NULL, NULL);
 *   }
 */
#ifndef ORCH_TESTS_SUPPORT_H
#define ORCH_TESTS_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/pg.h"

/* Initialises libsodium and libcurl, and logging from ORCH_LOG_LEVEL. */
void ts_init(void);

/* DATABASE_URL of this test program (fails the test when unset). */
const char *ts_db_url(void);

/* A new connection / pool to the test database; fails the test on error. */
pg_conn *ts_conn(void);
pg_pool *ts_pool(int size);

/* Runs SQL that returns one value and returns it as an integer. */
int64_t ts_sql_int(pg_conn *c, const char *sql);

/* Runs SQL and fails the test when it errors. */
void ts_sql(pg_conn *c, const char *sql);

/* Path of the orchestrator binary under test (ORCH_BIN) and of helper
 * programs built from tests/progs (ORCH_BUILD/tests/progs/NAME). */
const char *ts_bin(void);
void ts_prog(const char *name, char *out, size_t cap);

/* Parses JSON text, failing the test when it does not parse. */
json_t *ts_json(const char *text);

/* Polls `cond(udata)` every 10 ms until it returns non-zero or timeout_ms
 * passes; returns the last value. */
int ts_wait_for(int (*cond)(void *), void *udata, int64_t timeout_ms);

/* Waits until `sql` (one integer value) returns `want`, polling; fails the
 * test after timeout_ms with the last value seen. */
void ts_await_sql(pg_conn *c, const char *sql, int64_t want, int64_t timeout_ms);

#endif
