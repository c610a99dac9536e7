/* Resource handles against PostgreSQL: allocation and its checks, listing,
 * revocation, resolving a worker's grant into its environment (all or
 * nothing, audited), the gateway's single resolution, and the process
 * runtime (loading the filter, sec_resolve_name). */
#include "tests/support/support.h"

#include "core/err.h"
#include "core/redact.h"
#include "core/util.h"
#include "secrets/key.h"
#include "secrets/redact.h"
#include "secrets/resource.h"
#include "secrets/runtime.h"
#include "secrets/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define ACTOR "test"
#define GH "ghp_0123456789abcdefGHIJKL"
#define DB "postgresql://app:s3cr3t-pw@db:5432/app"
#define LLM "sk-live-0123456789abcdef"

static pg_conn *g_c;
static sec_store *g_s;
static int g_case;

static int64_t q(const char *sql)
{
	return ts_sql_int(g_c, sql);
}

static int setup(void **st)
{
	const char *dir = getenv("ORCH_DATA_DIR");
	char path[1024];
	sec_keysrc src;
	sec_init_report rep;
	(void)st;
	if (!g_c)
		g_c = ts_conn();
	ts_sql(g_c, "TRUNCATE secret_keys, secrets, resources, secret_audit RESTART IDENTITY");
	unsetenv("ORCH_MASTER_KEY");
	unsetenv("ORCH_MASTER_KEY_FILE");
	sec_redact_clear();
	sec_redact_install();
	snprintf(path, sizeof(path), "%s/case%d/master.key", dir ? dir : "/tmp", ++g_case);
	assert_int_equal(sec_keysrc_file(&src, path), 0);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), 0);
	assert_int_equal(sec_store_open(&g_s, g_c, &src), 0);
	assert_int_equal(sec_store_set(g_s, g_c, "github-token", NULL, GH, strlen(GH), ACTOR, NULL),
			 0);
	assert_int_equal(sec_store_set(g_s, g_c, "app-db", "proj-a", DB, strlen(DB), ACTOR, NULL),
			 0);
	assert_int_equal(sec_store_set(g_s, g_c, "OPENAI_KEY", NULL, LLM, strlen(LLM), ACTOR, NULL),
			 0);
	sec_redact_clear(); /* each test shows what its own calls teach the filter */
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	sec_store_free(g_s);
	g_s = NULL;
	return 0;
}

static void alloc(const char *scope, const char *kind, const char *secret, const char *env,
		  char out[SEC_HANDLE_LEN + 1])
{
	sec_res_spec spec = {scope, kind, secret, env, "for tests", ACTOR};

	if (sec_res_allocate(g_c, &spec, out) < 0)
		fail_msg("allocate %s: %s", secret, err_last());
}

/* --- allocation --- */

static void test_allocate_list_show_revoke(void **st)
{
	char h1[SEC_HANDLE_LEN + 1], h2[SEC_HANDLE_LEN + 1], h3[SEC_HANDLE_LEN + 1];
	sec_res_info *v = NULL, info;
	size_t n = 0;
	int already = -1;
	(void)st;
	alloc("proj-a", "git", "github-token", NULL, h1);
	alloc("proj-a", "database", "app-db", "DATABASE_URL", h2);
	alloc("proj-b", NULL, "github-token", NULL, h3);
	assert_int_equal(sec_handle_check(h1), 0);
	assert_string_not_equal(h1, h3);
	/* the handle is what a prompt may hold: no trace of the value */
	assert_null(strstr(h1, "ghp_"));

	assert_int_equal(sec_res_list(g_c, "proj-a", 0, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].handle, h1);
	assert_string_equal(v[0].env, "GITHUB_TOKEN"); /* derived from github-token */
	assert_string_equal(v[0].kind, "git");
	assert_string_equal(v[1].env, "DATABASE_URL");
	assert_string_equal(v[1].kind, "database");
	free(v);
	assert_int_equal(sec_res_list(g_c, NULL, 0, &v, &n), 0);
	assert_int_equal(n, 3);
	free(v);

	assert_int_equal(sec_res_show(g_c, h3, &info), 0);
	assert_string_equal(info.scope, "proj-b");
	assert_string_equal(info.kind, "generic");
	assert_string_equal(info.secret, "github-token");
	assert_string_equal(info.note, "for tests");
	assert_string_equal(info.created_by, ACTOR);
	assert_int_equal(info.revoked_ms, 0);
	assert_int_equal(info.last_used_ms, 0);

	assert_int_equal(sec_res_revoke(g_c, h3, "project closed", ACTOR, &already), 0);
	assert_int_equal(already, 0);
	assert_int_equal(sec_res_revoke(g_c, h3, NULL, ACTOR, &already), 0);
	assert_int_equal(already, 1);
	assert_int_equal(sec_res_show(g_c, h3, &info), 0);
	assert_true(info.revoked_ms > 0);
	assert_string_equal(info.revoke_reason, "project closed");
	assert_int_equal(sec_res_list(g_c, "proj-b", 0, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(sec_res_list(g_c, "proj-b", 1, &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'allocate'"), 3);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'revoke'"), 1);

	/* unknown and malformed handles */
	assert_int_equal(sec_res_show(g_c, "res_aaaaaaaaaaaaaaaaaaaaaaaaaa", &info), ERR_NOTFOUND);
	assert_int_equal(sec_res_show(g_c, "res_../../etc", &info), ERR_INVALID);
	assert_int_equal(sec_res_revoke(g_c, "res_aaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, ACTOR, NULL),
			 ERR_NOTFOUND);
}

static void test_allocate_refusals(void **st)
{
	char h[SEC_HANDLE_LEN + 1];
	sec_res_spec spec = {"proj-b", "database", "app-db", NULL, NULL, ACTOR};
	(void)st;
	/* a secret reserved for another project */
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_DENIED);
	assert_non_null(strstr(err_last(), "proj-a"));
	spec.scope = "proj-a";
	spec.secret = "nope";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "secrets set nope"));
	spec.secret = "github-token";
	spec.kind = "ssh";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	spec.kind = "git";
	spec.env = "LD_PRELOAD";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	spec.env = "PATH";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	spec.env = "9LIVES";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	spec.env = NULL;
	spec.scope = "two words";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	spec.scope = "proj-a";
	spec.note = "line\nbreak";
	assert_int_equal(sec_res_allocate(g_c, &spec, h), ERR_INVALID);
	assert_int_equal(q("SELECT count(*) FROM resources"), 0);
}

/* --- a worker's environment --- */

static void test_env_resolve_granted(void **st)
{
	char h1[SEC_HANDLE_LEN + 1], h2[SEC_HANDLE_LEN + 1];
	const char *grant[3];
	sec_grant g;
	sec_env *e = NULL;
	char *const *strs;
	(void)st;
	alloc("proj-a", "git", "github-token", NULL, h1);
	alloc("proj-a", "database", "app-db", "DATABASE_URL", h2);
	grant[0] = h1;
	grant[1] = h2;
	grant[2] = h1; /* named twice: counts once */
	g = (sec_grant){"proj-a", grant, 3, "worker:w-1", 42};
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), 0);
	assert_int_equal(sec_env_count(e), 2);
	assert_string_equal(sec_env_name(e, 0), "GITHUB_TOKEN");
	assert_string_equal(sec_env_value(e, 0), GH);
	assert_string_equal(sec_env_handle(e, 0), h1);
	assert_string_equal(sec_env_name(e, 1), "DATABASE_URL");
	assert_string_equal(sec_env_value(e, 1), DB);
	strs = sec_env_strings(e);
	assert_string_equal(strs[0], "GITHUB_TOKEN=" GH);
	assert_string_equal(strs[1], "DATABASE_URL=" DB);
	assert_null(strs[2]);
	assert_null(sec_env_name(e, 2));
	sec_env_free(e);
	sec_env_free(NULL);

	/* one audit row per handle: who, which run, when */
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'resolve' AND actor = "
			   "'worker:w-1' AND run_id = 42 AND at IS NOT NULL"),
			 2);
	assert_int_equal(q("SELECT uses FROM resources ORDER BY created_at LIMIT 1"), 1);
	assert_int_equal(q("SELECT count(*) FROM resources WHERE last_used_at IS NOT NULL"), 2);
	assert_int_equal(q("SELECT uses FROM secrets WHERE name = 'app-db'"), 1);
	/* the values now reach no log line of this process */
	{
		char *r = redact_str("clone with " GH " into " DB);
		assert_string_equal(r, "clone with [redacted:github-token] into [redacted:app-db]");
		free(r);
	}
}

static void test_env_resolve_empty_grant(void **st)
{
	sec_grant g = {"proj-a", NULL, 0, "worker:w-2", 0};
	sec_env *e = NULL;
	(void)st;
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), 0);
	assert_int_equal(sec_env_count(e), 0);
	assert_null(sec_env_strings(e)[0]);
	sec_env_free(e);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'resolve'"), 0);
}

/* Every refusal: the worker gets nothing, the error names the handle, a
 * deny row records it, and no resolve row or use is written. */
static void expect_refused(const char *scope, const char *const *handles, size_t n, int code,
			   const char *must_mention)
{
	sec_grant g = {scope, handles, n, "worker:w-9", 7};
	sec_env *e = NULL;
	int64_t denies = q("SELECT count(*) FROM secret_audit WHERE action = 'deny'");

	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), code);
	assert_null(e);
	if (must_mention && !strstr(err_last(), must_mention))
		fail_msg("error '%s' does not mention '%s'", err_last(), must_mention);
	assert_non_null(strstr(err_last(), "not started"));
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'deny'"), denies + 1);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'deny' AND run_id = 7 "
			   "AND actor = 'worker:w-9' AND detail <> ''"),
			 denies + 1);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'resolve'"), 0);
	assert_int_equal(q("SELECT coalesce(sum(uses), 0) FROM resources"), 0);
}

static void test_env_resolve_refusals(void **st)
{
	char good[SEC_HANDLE_LEN + 1], revoked[SEC_HANDLE_LEN + 1], other[SEC_HANDLE_LEN + 1];
	char llm[SEC_HANDLE_LEN + 1], clash[SEC_HANDLE_LEN + 1];
	const char *unknown = "res_zzzzzzzzzzzzzzzzzzzzzzzzzz";
	(void)st;
	alloc("proj-a", "git", "github-token", NULL, good);
	alloc("proj-a", "git", "github-token", NULL, revoked);
	assert_int_equal(sec_res_revoke(g_c, revoked, "leaked", ACTOR, NULL), 0);
	alloc("proj-b", "git", "github-token", NULL, other);
	alloc("proj-a", "llm", "OPENAI_KEY", NULL, llm);
	alloc("proj-a", "generic", "OPENAI_KEY", "GITHUB_TOKEN", clash);
	{
		const char *h[2] = {good, unknown};
		expect_refused("proj-a", h, 2, ERR_NOTFOUND, unknown);
	}
	{
		const char *h[2] = {good, revoked};
		expect_refused("proj-a", h, 2, ERR_DENIED, "revoked (leaked)");
	}
	{
		const char *h[1] = {other};
		expect_refused("proj-a", h, 1, ERR_DENIED, other);
	}
	{
		const char *h[1] = {llm};
		expect_refused("proj-a", h, 1, ERR_DENIED, "LLM credential");
	}
	{
		const char *h[2] = {good, clash};
		expect_refused("proj-a", h, 2, ERR_CONFLICT, "GITHUB_TOKEN");
	}
	{
		const char *h[1] = {"res_$(rm -rf /)"};
		expect_refused("proj-a", h, 1, ERR_INVALID, "not a resource handle");
	}
	/* the secret removed with its handles */
	assert_int_equal(sec_store_rm(g_c, "github-token", 1, ACTOR, NULL), 0);
	{
		const char *h[1] = {good};
		expect_refused("proj-a", h, 1, ERR_DENIED, "secret removed");
	}
	/* nothing was taught to the filter by refused grants */
	assert_int_equal(sec_redact_count(), 0);
}

static void test_env_resolve_bad_grant(void **st)
{
	const char *many[SEC_GRANT_MAX + 1];
	sec_grant g = {"proj-a", many, SEC_GRANT_MAX + 1, "worker:w", 0};
	sec_env *e = NULL;
	(void)st;
	for (size_t i = 0; i < SEC_GRANT_MAX + 1; i++)
		many[i] = "res_aaaaaaaaaaaaaaaaaaaaaaaaaa";
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), ERR_INVALID);
	g.nhandles = 1;
	g.actor = "";
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), ERR_INVALID);
	g.actor = "worker:w";
	g.scope = "";
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), ERR_INVALID);
	assert_null(e);
}

static void test_env_resolve_tampered(void **st)
{
	char h[SEC_HANDLE_LEN + 1];
	const char *hs[1];
	(void)st;
	alloc("proj-a", "git", "github-token", NULL, h);
	hs[0] = h;
	ts_sql(g_c, "UPDATE secrets SET sealed = set_byte(sealed, 9, get_byte(sealed, 9) # 2) "
		    "WHERE name = 'github-token'");
	expect_refused("proj-a", hs, 1, ERR_CRYPTO, "integrity");
}

static void test_gateway_resolves_llm_handle(void **st)
{
	char h[SEC_HANDLE_LEN + 1], other[SEC_HANDLE_LEN + 1];
	char *v = NULL;
	(void)st;
	alloc("proj-a", "llm", "OPENAI_KEY", NULL, h);
	alloc("proj-b", "llm", "OPENAI_KEY", NULL, other);
	assert_int_equal(sec_res_resolve(g_s, g_c, "proj-a", h, "gateway:w-3", 9, &v), 0);
	assert_string_equal(v, LLM);
	sec_value_free(v);
	v = NULL;
	assert_int_equal(sec_res_resolve(g_s, g_c, "proj-a", other, "gateway:w-3", 9, &v),
			 ERR_DENIED);
	assert_null(v);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'resolve' AND actor = "
			   "'gateway:w-3' AND run_id = 9"),
			 1);
}

static void test_audit_listing(void **st)
{
	char h[SEC_HANDLE_LEN + 1];
	sec_audit_entry *v = NULL;
	size_t n = 0;
	const char *hs[1];
	sec_grant g;
	sec_env *e = NULL;
	(void)st;
	alloc("proj-a", "git", "github-token", NULL, h);
	hs[0] = h;
	g = (sec_grant){"proj-a", hs, 1, "worker:w-5", 11};
	assert_int_equal(sec_env_resolve(g_s, g_c, &g, &e), 0);
	sec_env_free(e);
	assert_int_equal(sec_res_revoke(g_c, h, "done", ACTOR, NULL), 0);
	assert_int_equal(sec_res_audit(g_c, h, NULL, 10, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].action, "allocate");
	assert_string_equal(v[1].action, "resolve");
	assert_string_equal(v[1].actor, "worker:w-5");
	assert_int_equal(v[1].run_id, 11);
	assert_string_equal(v[1].detail, "into variable GITHUB_TOKEN");
	assert_string_equal(v[2].action, "revoke");
	assert_true(v[0].at_ms > 0 && v[0].at_ms <= v[2].at_ms);
	free(v);
	/* by secret, and the newest N overall */
	assert_int_equal(sec_res_audit(g_c, NULL, "app-db", 10, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].action, "set");
	free(v);
	assert_int_equal(sec_res_audit(g_c, NULL, NULL, 2, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[1].action, "revoke");
	free(v);
	/* no audit row holds a value */
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE detail LIKE '%ghp_%' OR "
			   "detail LIKE '%s3cr3t%' OR detail LIKE '%sk-live%'"),
			 0);
}

/* --- the process runtime --- */

#define LATE "late-value-0123456789"
#define LATER "later-value-9876543210"

/* Runs a shell command (another process, as a person's CLI would be);
 * returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Waits (up to 10 s: the refresher runs every 100 ms here) until the
 * process's filter turns `value` into `want`. */
static void await_redacted(const char *value, const char *want)
{
	for (int64_t until = util_mono_ms() + 10000;; util_sleep_ms(20)) {
		char *r = redact_str(value);
		int same = strcmp(r, want) == 0;

		free(r);
		if (same)
			return;
		if (util_mono_ms() > until)
			fail_msg("the redaction filter never learned %s", want);
	}
}

static int store_ready(void *u)
{
	(void)u;
	return sec_runtime_store() != NULL;
}

static void test_runtime(void **st)
{
	pg_pool *pool = ts_pool(2);
	sec_runtime_report rep;
	char *v = NULL, hex[65];
	sec_key *k = NULL;
	(void)st;
	setenv("ORCH_SECRETS_REFRESH", "100ms", 1);
	/* the key comes from ORCH_MASTER_KEY this time: rotate to a known key */
	assert_int_equal(sec_key_parse(&k, "ab", 2, "t"), ERR_INVALID);
	assert_int_equal(sec_key_generate(&k), 0);
	sec_key_hex(k, hex);
	{
		sec_rotate_report rr;
		sec_store *envs = NULL;
		sec_key *copy = NULL;
		assert_int_equal(sec_key_parse(&copy, hex, 64, "t"), 0);
		assert_int_equal(sec_store_open_key(&envs, g_c, copy), ERR_CRYPTO);
		assert_int_equal(sec_store_rotate(g_s, g_c, k, ACTOR, &rr), 0);
	}
	setenv("ORCH_MASTER_KEY", hex, 1);
	sec_redact_clear();
	assert_int_equal(sec_runtime_start(pool, "/nonexistent", &rep), 0);
	assert_true(rep.configured);
	assert_int_equal(rep.loaded, 3);
	assert_int_equal(rep.damaged, 0);
	/* the key is gone from the environment: no child inherits it */
	assert_null(getenv("ORCH_MASTER_KEY"));
	assert_non_null(sec_runtime_store());
	{
		char *r = redact_str("a " GH " b " DB " c " LLM);
		assert_string_equal(r, "a [redacted:github-token] b [redacted:app-db] c "
				       "[redacted:OPENAI_KEY]");
		free(r);
	}
	/* a secret set after start (by `secrets set` in another process) reaches
	 * the filter at the next refresh, without a restart */
	{
		char *r = redact_str(LATE);
		assert_string_equal(r, LATE);
		free(r);
	}
	assert_int_equal(sh("printf '%s' | ORCH_MASTER_KEY=%s '%s' secrets set late-token", LATE, hex,
			    ts_bin()), 0);
	await_redacted("x " LATE " y", "x [redacted:late-token] y");
	/* the LLM layer's resolver */
	assert_int_equal(sec_resolve_name("OPENAI_KEY", &v), 0);
	assert_string_equal(v, LLM);
	sec_value_free(v);
	v = NULL;
	assert_int_equal(sec_resolve_name("MISSING", &v), ERR_NOTFOUND);
	assert_null(v);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'resolve' AND actor = "
			   "'llm' AND secret_name = 'OPENAI_KEY'"),
			 1);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'deny' AND actor = "
			   "'llm' AND secret_name = 'MISSING'"),
			 1);
	sec_runtime_stop();
	sec_runtime_stop();
	assert_null(sec_runtime_store());
	assert_int_equal(sec_resolve_name("OPENAI_KEY", &v), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "not set up"));

	/* a wrong key stops the start */
	setenv("ORCH_MASTER_KEY", "1111111111111111111111111111111111111111111111111111111111111111",
	       1);
	assert_int_equal(sec_runtime_start(pool, "/nonexistent", &rep), ERR_CRYPTO);
	assert_null(sec_runtime_store());
	/* so does a missing key file */
	unsetenv("ORCH_MASTER_KEY");
	assert_int_equal(sec_runtime_start(pool, "/nonexistent", &rep), ERR_NOTFOUND);
	/* without secrets set up a process runs, with the filter installed */
	ts_sql(g_c, "TRUNCATE secret_keys, secrets, resources, secret_audit");
	setenv("ORCH_MASTER_KEY", hex, 1);
	assert_int_equal(sec_runtime_start(pool, "/nonexistent", &rep), 0);
	assert_false(rep.configured);
	assert_null(sec_runtime_store());
	assert_int_equal(sec_resolve_name("OPENAI_KEY", &v), ERR_NOTFOUND);
	/* `secrets init` and `secrets set` afterwards: the running process opens
	 * the store with its key and learns the value */
	assert_int_equal(sh("ORCH_MASTER_KEY=%s '%s' secrets init >/dev/null && printf '%s' | "
			    "ORCH_MASTER_KEY=%s '%s' secrets set later-token",
			    hex, ts_bin(), LATER, hex, ts_bin()), 0);
	await_redacted(LATER, "[redacted:later-token]");
	/* the filter learns the values first, then the store is published */
	assert_true(ts_wait_for(store_ready, NULL, 10000));
	assert_null(getenv("ORCH_MASTER_KEY")); /* wiped once the store was opened */
	assert_int_equal(sec_resolve_name("later-token", &v), 0);
	assert_string_equal(v, LATER);
	sec_value_free(v);
	v = NULL;
	sec_runtime_stop();
	pg_pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allocate_list_show_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocate_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_resolve_granted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_resolve_empty_grant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_resolve_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_resolve_bad_grant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_resolve_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_resolves_llm_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_listing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime, setup, teardown),
	};
	int rc;
	ts_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	pg_conn_close(g_c);
	sec_redact_clear();
	return rc;
}
