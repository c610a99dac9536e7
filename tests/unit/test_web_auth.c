/* web/auth's pieces that need no database: cookies read from a Cookie
 * header, CSRF tokens compared (a bearer request needs none). Tokens and
 * sessions with the database are in tests/integration/test_web.c. */
#include "tests/support/support.h"

#include "core/err.h"
#include "web/auth.h"

#include <string.h>

static void test_cookies(void **state)
{
	char v[64];
	(void)state;

	assert_int_equal(web_cookie_get("orch_session=abc; orch_pre=0123", "orch_session", v,
					sizeof(v)), 0);
	assert_string_equal(v, "abc");
	assert_int_equal(web_cookie_get("a=1;orch_pre=xyz", "orch_pre", v, sizeof(v)), 0);
	assert_string_equal(v, "xyz");
	/* a name that only ends like ours is not ours */
	assert_int_equal(web_cookie_get("xorch_session=evil", "orch_session", v, sizeof(v)),
			 ERR_NOTFOUND);
	assert_int_equal(web_cookie_get(NULL, "orch_session", v, sizeof(v)), ERR_NOTFOUND);
	assert_int_equal(web_cookie_get("orch_session=", "orch_session", v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(web_cookie_get("orch_session=0123456789", "orch_session", v, 5), ERR_TOOBIG);
}

static void test_csrf(void **state)
{
	web_identity who;
	(void)state;

	memset(&who, 0, sizeof(who));
	assert_true(web_csrf_ok(&who, NULL)); /* bearer: no cookie, no CSRF to check */
	who.session_id = 7;
	snprintf(who.csrf, sizeof(who.csrf), "orch_%s", "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d");
	assert_false(web_csrf_ok(&who, NULL));
	assert_false(web_csrf_ok(&who, ""));
	assert_false(web_csrf_ok(&who, "orch_a1b2"));
	assert_false(web_csrf_ok(&who, "orch_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3X"));
	assert_true(web_csrf_ok(&who, who.csrf));
	who.csrf[0] = '\0'; /* a session without its token refuses everything */
	assert_false(web_csrf_ok(&who, ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookies),
		cmocka_unit_test(test_csrf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
