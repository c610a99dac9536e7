/* Engine processes sharing one database: two engines never run a step twice;
 * engines SIGKILLed at random moments lose nothing — other engines finish
 * every run, each step is checkpointed once, no outbox row is lost or
 * doubled. */
#include "tests/support/support.h"

#include "core/util.h"
#include "engine/control.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pg_conn *db;
static char exec_log[512];

typedef struct worker {
	pid_t pid;
} worker;

/* Starts tests/progs/engine_worker and waits for its "ready" line. */
static pid_t worker_start(int threads, int lease_ms)
{
	char prog[512], th[16], lease[16], line[256];
	int fds[2];
	pid_t pid;
	FILE *out;

	ts_prog("engine_worker", prog, sizeof(prog));
	snprintf(th, sizeof(th), "%d", threads);
	snprintf(lease, sizeof(lease), "%d", lease_ms);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(prog, prog, "--threads", th, "--lease-ms", lease, "--poll-ms", "100",
		      (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	out = fdopen(fds[0], "r");
	if (!fgets(line, sizeof(line), out) || strncmp(line, "ready", 5) != 0)
		fail_msg("engine_worker did not start");
	fclose(out);
	return pid;
}

static void worker_kill(pid_t pid, int sig)
{
	int status;
	kill(pid, sig);
	waitpid(pid, &status, 0);
}

static void await_sql(const char *sql, int64_t want, int64_t timeout_ms)
{
	ts_await_sql(db, sql, want, timeout_ms);
}

/* Loads the exec log into the table exec_log(run, step, node, pid). */
static void load_exec_log(void)
{
	FILE *f = fopen(exec_log, "r");
	char line[256];

	ts_sql(db, "DROP TABLE IF EXISTS exec_log; "
		   "CREATE TABLE exec_log (run bigint, step int, node text, attempt int, pid int)");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		long long run;
		int step, attempt, pid;
		char node[64], sql[256];
		if (sscanf(line, "%lld %d %63s %d %d", &run, &step, node, &attempt, &pid) != 5)
			continue;
		snprintf(sql, sizeof(sql), "INSERT INTO exec_log VALUES (%lld, %d, '%s', %d, %d)", run,
			 step, node, attempt, pid);
		ts_sql(db, sql);
	}
	fclose(f);
}

static int setup(void **st)
{
	(void)st;
	db = ts_conn();
	snprintf(exec_log, sizeof(exec_log), "%s/exec.log", getenv("ORCH_DATA_DIR"));
	setenv("TSG_EXEC_LOG", exec_log, 1);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	pg_conn_close(db);
	return 0;
}

static void start_runs(const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s-%d", prefix, i);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
	}
}

static void test_two_engines_share_one_queue(void **st)
{
	pid_t a, b;
	(void)st;

	unlink(exec_log);
	setenv("TSG_SLEEP_MS", "5", 1);
	a = worker_start(2, 5000);
	b = worker_start(2, 5000);
	start_runs("two", 100);
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
		  "WHERE t.key LIKE 'two-%' AND r.status = 'done'",
		  100, 120000);
	worker_kill(a, SIGTERM);
	worker_kill(b, SIGTERM);
	load_exec_log();
	/* every node of every run executed exactly once, by one of the two */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM exec_log"), 400);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM (SELECT DISTINCT run, step, node "
					"FROM exec_log) x"),
			 400);
	assert_int_equal(ts_sql_int(db, "SELECT count(DISTINCT pid) FROM exec_log"), 2);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM checkpoints c JOIN threads t ON "
					"t.id = c.thread_id WHERE t.key LIKE 'two-%'"),
			 400);
	/* both stopped gracefully and said so */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM engines WHERE stopped_at IS NOT NULL"),
			 2);
}

static void test_engines_killed_at_random(void **st)
{
	enum { RUNS = 50, POOL = 3, KILLS = 12 };
	pid_t workers[POOL];
	int64_t until;
	(void)st;

	unlink(exec_log);
	setenv("TSG_SLEEP_MS", "25", 1);
	for (int i = 0; i < POOL; i++)
		workers[i] = worker_start(2, 1000);
	start_runs("crash", RUNS);
	for (int k = 0; k < KILLS; k++) {
		int victim = (int)util_rand_below(POOL);
		util_sleep_ms(60 + (int64_t)util_rand_below(200));
		worker_kill(workers[victim], SIGKILL);
		workers[victim] = worker_start(2, 1000);
	}
	until = util_mono_ms() + 180000;
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
		  "WHERE t.key LIKE 'crash-%' AND r.status = 'done'",
		  RUNS, until - util_mono_ms());
	for (int i = 0; i < POOL; i++)
		worker_kill(workers[i], SIGTERM);

	/* each step of each run is checkpointed exactly once, in order */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM (SELECT r.id FROM runs r JOIN threads "
					"t ON t.id = r.thread_id JOIN checkpoints c ON c.run_id = "
					"r.id WHERE t.key LIKE 'crash-%' GROUP BY r.id HAVING "
					"count(*) = 4 AND min(c.seq) = 1 AND max(c.seq) = 4 AND "
					"count(DISTINCT c.step) = 4) x"),
			 RUNS);
	/* every thread's state holds the four nodes in order, once */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM checkpoints c JOIN threads t ON "
					"t.id = c.thread_id WHERE t.key LIKE 'crash-%' AND c.seq = 4 "
					"AND c.step = 4 AND c.next = '[]'::jsonb"),
			 RUNS);
	/* no outbox row lost or doubled: one per step */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM outbox WHERE dest LIKE 'crash-%'"),
			 RUNS * 4);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM (SELECT DISTINCT run_id, step FROM "
					"outbox WHERE dest LIKE 'crash-%') x"),
			 RUNS * 4);
	/* the kills did hit running runs, which other engines took over */
	assert_true(ts_sql_int(db, "SELECT sum(takeovers) FROM runs r JOIN threads t ON t.id = "
				   "r.thread_id WHERE t.key LIKE 'crash-%'") >= 1);
	/* a run never taken over ran each node once: no step runs twice past
	 * its checkpoint */
	load_exec_log();
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM (SELECT e.run, e.step FROM exec_log e "
					"JOIN runs r ON r.id = e.run WHERE r.takeovers = 0 GROUP BY "
					"e.run, e.step HAVING count(*) > 1) x"),
			 0);
	unsetenv("TSG_SLEEP_MS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_engines_share_one_queue),
		cmocka_unit_test(test_engines_killed_at_random),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
