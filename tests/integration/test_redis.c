/* core/redis against real servers: the test Redis (REDIS_URL) and a private
 * one that is restarted and that asks for a password. */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/redis.h"

#include <stdlib.h>
#include <string.h>

static rds_conn *conn(void)
{
	rds_conn *c = NULL;

	if (rds_connect(&c, getenv("REDIS_URL"), 0) < 0)
		fail_msg("cannot reach the test redis: %s", err_last());
	return c;
}

static void test_commands_and_errors(void **state)
{
	rds_conn *c = conn();
	rds_reply *r = NULL;
	const char *bin[] = {"SET", "t:bin", "a\0b"};
	const size_t lens[] = {3, 5, 3};
	(void)state;

	assert_int_equal(rds_cmd(c, NULL, "DEL", "t:s", "t:l", "t:bin", NULL), 0);
	assert_int_equal(rds_cmd(c, &r, "SET", "t:s", "v1", NULL), 0);
	assert_int_equal(r->type, RDS_STATUS);
	assert_string_equal(rds_str(r), "OK");
	rds_reply_free(r);
	assert_int_equal(rds_cmd(c, &r, "GET", "t:s", NULL), 0);
	assert_int_equal(r->type, RDS_STR);
	assert_string_equal(rds_str(r), "v1");
	rds_reply_free(r);
	assert_int_equal(rds_cmd(c, &r, "GET", "t:missing", NULL), 0);
	assert_int_equal(r->type, RDS_NIL);
	assert_string_equal(rds_str(r), "");
	rds_reply_free(r);
	assert_int_equal(rds_cmd(c, &r, "RPUSH", "t:l", "a", "b", "c", NULL), 0);
	assert_int_equal(rds_int(r, -1), 3);
	rds_reply_free(r);
	assert_int_equal(rds_cmd(c, &r, "LRANGE", "t:l", "0", "-1", NULL), 0);
	assert_int_equal(r->n, 3);
	assert_string_equal(rds_str(rds_at(r, 2)), "c");
	assert_null(rds_at(r, 3));
	rds_reply_free(r);
	/* binary-safe arguments and replies */
	assert_int_equal(rds_cmdv(c, NULL, 3, bin, lens), 0);
	assert_int_equal(rds_cmd(c, &r, "GET", "t:bin", NULL), 0);
	assert_int_equal(r->len, 3);
	assert_memory_equal(r->str, "a\0b", 3);
	rds_reply_free(r);

	/* error replies become codes, with the server's words */
	r = (rds_reply *)1;
	assert_int_equal(rds_cmd(c, &r, "LPUSH", "t:s", "x", NULL), ERR_INVALID);
	assert_null(r);
	assert_non_null(strstr(err_last(), "WRONGTYPE"));
	assert_int_equal(rds_cmd(c, NULL, "XGROUP", "CREATE", "t:stream", "g", "0", "MKSTREAM",
				 NULL), 0);
	assert_int_equal(rds_cmd(c, NULL, "XGROUP", "CREATE", "t:stream", "g", "0", "MKSTREAM",
				 NULL), ERR_CONFLICT);
	assert_int_equal(rds_cmd(c, NULL, "XREADGROUP", "GROUP", "nogroup", "me", "STREAMS",
				 "t:stream", ">", NULL), ERR_NOTFOUND);
	assert_int_equal(rds_cmd(c, NULL, "NOSUCHCOMMAND", NULL), ERR_INVALID);
	assert_int_equal(rds_cmd(c, NULL, "XADD", "t:stream", "bad-id", "f", "v", NULL), ERR_INVALID);
	/* the connection is still good after errors */
	assert_int_equal(rds_cmd(c, NULL, "PING", NULL), 0);
	assert_int_equal(rds_cmd(c, NULL, "DEL", "t:s", "t:l", "t:bin", "t:stream", NULL), 0);
	rds_free(c);
	rds_free(NULL);
}

static void test_pubsub_read(void **state)
{
	rds_conn *sub = conn(), *pub = conn();
	rds_reply *r = NULL;
	(void)state;

	assert_int_equal(rds_cmd(sub, &r, "SUBSCRIBE", "t:chan", NULL), 0);
	assert_string_equal(rds_str(rds_at(r, 0)), "subscribe");
	rds_reply_free(r);
	/* nothing yet: a timeout, and the connection stays usable */
	assert_int_equal(rds_read(sub, 50, &r), ERR_TIMEOUT);
	assert_null(r);
	assert_false(rds_broken(sub));
	assert_int_equal(rds_cmd(pub, &r, "PUBLISH", "t:chan", "hello", NULL), 0);
	assert_int_equal(rds_int(r, 0), 1);
	rds_reply_free(r);
	assert_int_equal(rds_read(sub, 5000, &r), 0);
	assert_string_equal(rds_str(rds_at(r, 0)), "message");
	assert_string_equal(rds_str(rds_at(r, 2)), "hello");
	rds_reply_free(r);
	rds_free(sub);
	rds_free(pub);
}

static void test_refused_and_unreachable(void **state)
{
	tss_redis srv;
	rds_conn *c = NULL;
	rds_reply *r = NULL;
	char url[200];
	(void)state;

	memset(&srv, 0, sizeof(srv));
	snprintf(srv.password, sizeof(srv.password), "pw-%d", 4711);
	tss_redis_start(&srv);
	/* the right password */
	assert_int_equal(rds_connect(&c, srv.url, 0), 0);
	assert_int_equal(rds_cmd(c, &r, "PING", NULL), 0);
	rds_reply_free(r);
	rds_free(c);
	/* a wrong one: ERR_AUTH, and the message does not quote it */
	snprintf(url, sizeof(url), "redis://:wrong-pw-xyz@127.0.0.1:%d/0", srv.port);
	assert_int_equal(rds_connect(&c, url, 0), ERR_AUTH);
	assert_null(c);
	assert_null(strstr(err_last(), "wrong-pw-xyz"));
	/* none at all: commands are refused with ERR_AUTH */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", srv.port);
	assert_int_equal(rds_connect(&c, url, 0), 0);
	assert_int_equal(rds_cmd(c, NULL, "GET", "x", NULL), ERR_AUTH);
	rds_free(c);
	tss_redis_stop(&srv);
	/* nothing listens: ERR_REDIS naming where; lazily it connects later */
	assert_int_equal(rds_connect(&c, url, 0), ERR_REDIS);
	assert_non_null(strstr(err_last(), "127.0.0.1"));
	assert_int_equal(rds_connect(&c, url, 1), 0);
	assert_true(rds_broken(c));
	assert_int_equal(rds_cmd(c, NULL, "PING", NULL), ERR_REDIS);
	srv.password[0] = '\0';
	tss_redis_start(&srv);
	assert_int_equal(rds_connect(&(rds_conn *){NULL}, "redis://h:1/x", 1), ERR_INVALID);
	/* the lazy connection reaches the server once it is up (with backoff) */
	for (int i = 0; i < 200 && rds_cmd(c, NULL, "PING", NULL) < 0; i++)
		;
	assert_int_equal(rds_cmd(c, NULL, "PING", NULL), 0);
	rds_free(c);
	tss_redis_stop(&srv);
}

static void test_restart_keeps_data_and_reconnects(void **state)
{
	tss_redis srv;
	rds_conn *c = NULL;
	rds_reply *r = NULL;
	int rc, tries = 0;
	(void)state;

	memset(&srv, 0, sizeof(srv));
	tss_redis_start(&srv);
	assert_int_equal(rds_connect(&c, srv.url, 0), 0);
	assert_int_equal(rds_cmd(c, NULL, "XADD", "s", "*", "k", "before", NULL), 0);
	tss_redis_stop(&srv);
	/* the command in flight when the server is gone fails; it is not retried */
	assert_int_equal(rds_cmd(c, NULL, "XADD", "s", "*", "k", "lost", NULL), ERR_REDIS);
	assert_true(rds_broken(c));
	tss_redis_start(&srv);
	/* the next commands reconnect (after the backoff) */
	do {
		rc = rds_cmd(c, &r, "XLEN", "s", NULL);
	} while (rc < 0 && ++tries < 200);
	assert_int_equal(rc, 0);
	assert_int_equal(rds_int(r, -1), 1); /* appendonly: the entry survived */
	rds_reply_free(r);
	assert_true(rds_reconnects(c) >= 1);
	rds_free(c);
	tss_redis_stop(&srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands_and_errors),
		cmocka_unit_test(test_pubsub_read),
		cmocka_unit_test(test_refused_and_unreachable),
		cmocka_unit_test(test_restart_keeps_data_and_reconnects),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
