/* bot without a server: splitting and escaping text, HTML kept balanced,
 * signed buttons and their forgeries, the key file, the rate limiter,
 * parsing updates and the allowed-users list. */
#include "tests/support/support.h"

#include "bot/approval.h"
#include "bot/bot.h"
#include "bot/limit.h"
#include "bot/text.h"
#include "bot/tg.h"
#include "core/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_escape(void **st)
{
	buf b;
	(void)st;
	buf_init(&b, 0);
	assert_int_equal(tg_html_escape(&b, "a<b>&\"c\"", 9), 0);
	assert_string_equal(buf_cstr(&b), "a&lt;b&gt;&amp;&quot;c&quot;");
	buf_free(&b);
	assert_int_equal(tg_utf16_len("aé🚀", strlen("aé🚀")), 4);
	assert_int_equal(tg_html_visible_len("<b>a&amp;b</b> <a href=\"x\">é</a>"), 5);
}

/* Every part must be valid UTF-8 and within the limit once parsed. */
static void check_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
		assert_true(*p < 0x80 || *p >= 0xc0);
		for (int i = 1; i < n; i++)
			assert_true((p[i] & 0xc0) == 0x80);
		p += n;
	}
}

static void test_split_plain(void **st)
{
	tg_parts parts;
	buf t, joined;
	(void)st;

	buf_init(&t, 0);
	for (int i = 0; i < 400; i++)
		buf_printf(&t, "line %d <&> ünï 🚀🚀\n", i);
	assert_int_equal(tg_split(t.data, 0, 1000, &parts), 0);
	assert_true(parts.n > 3);
	buf_init(&joined, 0);
	for (int i = 0; i < parts.n; i++) {
		char *plain = tg_html_to_plain(parts.v[i]);
		check_utf8(parts.v[i]);
		assert_true(tg_html_visible_len(parts.v[i]) <= 1000);
		/* cut at a newline: every part but the last ends a line */
		buf_puts(&joined, plain);
		if (i < parts.n - 1)
			buf_putc(&joined, '\n');
		free(plain);
	}
	assert_string_equal(buf_cstr(&joined), buf_cstr(&t));
	tg_parts_free(&parts);
	buf_free(&joined);

	/* no newline, no space: cut between characters, never inside one */
	buf_reset(&t);
	for (int i = 0; i < 3000; i++)
		buf_puts(&t, i % 3 ? "é" : "🚀");
	assert_int_equal(tg_split(t.data, 0, 999, &parts), 0);
	assert_true(parts.n >= 4);
	for (int i = 0; i < parts.n; i++) {
		check_utf8(parts.v[i]);
		assert_true(tg_utf16_len(parts.v[i], strlen(parts.v[i])) <= 999);
	}
	tg_parts_free(&parts);
	/* an escape is never cut: '&' right at the limit */
	assert_int_equal(tg_split("abc&def", 0, 4, &parts), 0);
	assert_int_equal(parts.n, 2);
	assert_string_equal(parts.v[0], "abc&amp;");
	assert_string_equal(parts.v[1], "def");
	tg_parts_free(&parts);
	assert_int_equal(tg_split("", 0, 0, &parts), 0);
	assert_int_equal(parts.n, 0);
	buf_free(&t);
}

static void test_split_html(void **st)
{
	tg_parts parts;
	buf t;
	(void)st;

	buf_init(&t, 0);
	buf_puts(&t, "<b>title</b>\n<pre>");
	for (int i = 0; i < 200; i++)
		buf_printf(&t, "code line %d &lt;x&gt;\n", i);
	buf_puts(&t, "</pre>\n<i>end <a href=\"https://x.org/?a=1&amp;b=2\">link</a></i>");
	assert_int_equal(tg_split(t.data, 1, 700, &parts), 0);
	assert_true(parts.n > 3);
	for (int i = 0; i < parts.n; i++) {
		const char *p = parts.v[i];
		int opens = 0, closes = 0;
		assert_true(tg_html_visible_len(p) <= 700);
		/* balanced: every part that opened <pre> closes it */
		for (const char *q = p; (q = strstr(q, "<pre>")) != NULL; q++)
			opens++;
		for (const char *q = p; (q = strstr(q, "</pre>")) != NULL; q++)
			closes++;
		assert_int_equal(opens, closes);
		/* never inside a tag or an entity */
		assert_null(strstr(p, "&lt\n"));
		assert_true(p[strlen(p) - 1] != '<');
	}
	/* a part in the middle of the code block reopens it */
	assert_memory_equal(parts.v[1], "<pre>", 5);
	tg_parts_free(&parts);
	buf_free(&t);
	{
		char *plain = tg_html_to_plain("<b>a &amp; b</b> &lt;3 &#128640; &#x41;");
		assert_string_equal(plain, "a & b <3 🚀 A");
		free(plain);
	}
}

static void test_truncate(void **st)
{
	buf b;
	(void)st;
	buf_init(&b, 0);
	tg_truncate(&b, "héllo world", 5);
	assert_string_equal(buf_cstr(&b), "héll…");
	buf_reset(&b);
	tg_truncate(&b, "short", 50);
	assert_string_equal(buf_cstr(&b), "short");
	buf_free(&b);
}

static void test_callback_mac(void **st)
{
	unsigned char key[BOT_KEY_BYTES], other[BOT_KEY_BYTES];
	char data[80], forged[80];
	int64_t id;
	int opt;
	(void)st;

	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	assert_int_equal(bot_cb_sign(key, 1234567890123LL, 3, data, sizeof(data)), 0);
	assert_true(strlen(data) <= TG_CALLBACK_DATA_MAX);
	assert_int_equal(bot_cb_verify(key, data, &id, &opt), 0);
	assert_int_equal(id, 1234567890123LL);
	assert_int_equal(opt, 3);
	/* the largest id still fits in 64 bytes */
	assert_int_equal(bot_cb_sign(key, INT64_MAX, 7, data, sizeof(data)), 0);
	assert_true(strlen(data) <= TG_CALLBACK_DATA_MAX);
	assert_int_equal(bot_cb_sign(key, 42, 1, data, sizeof(data)), 0);
	/* another key */
	assert_int_equal(bot_cb_verify(other, data, &id, &opt), ERR_CRYPTO);
	/* another option, another id, a flipped tag character */
	snprintf(forged, sizeof(forged), "a:42:0%s", strchr(data + 5, ':'));
	assert_int_equal(bot_cb_verify(key, forged, &id, &opt), ERR_CRYPTO);
	snprintf(forged, sizeof(forged), "a:43:1%s", strchr(data + 5, ':'));
	assert_int_equal(bot_cb_verify(key, forged, &id, &opt), ERR_CRYPTO);
	snprintf(forged, sizeof(forged), "%s", data);
	forged[strlen(forged) - 2] ^= 1;
	assert_true(bot_cb_verify(key, forged, &id, &opt) < 0);
	/* malformed */
	assert_int_equal(bot_cb_verify(key, "a:042:1:AAAAAAAAAAAAAAAAAAAAAA", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "a:42:9:AAAAAAAAAAAAAAAAAAAAAA", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "a:42:1:short", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "a:-1:1:AAAAAAAAAAAAAAAAAAAAAA", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "a:42:1:AAAAAAAAAAAAAAAAAAAAAA:x", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "b:42:1:AAAAAAAAAAAAAAAAAAAAAA", &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "a:99999999999999999999:1:AAAAAAAAAAAAAAAAAAAAAA", &id,
				       &opt),
			 ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, NULL, &id, &opt), ERR_INVALID);
	assert_int_equal(bot_cb_verify(key, "", &id, &opt), ERR_INVALID);
}

static void test_key_file(void **st)
{
	char path[1024];
	unsigned char k1[BOT_KEY_BYTES], k2[BOT_KEY_BYTES];
	struct stat sb;
	const char *dd = getenv("ORCH_DATA_DIR");
	(void)st;

	snprintf(path, sizeof(path), "%s/keys/sub/bot.key", dd ? dd : "/tmp");
	unlink(path);
	assert_int_equal(bot_key_load(path, k1), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(bot_key_load(path, k2), 0);
	assert_memory_equal(k1, k2, sizeof(k1));
	chmod(path, 0640);
	assert_int_equal(bot_key_load(path, k2), ERR_DENIED);
	assert_non_null(strstr(err_last(), "chmod 600"));
	chmod(path, 0604);
	assert_int_equal(bot_key_load(path, k2), ERR_DENIED);
	chmod(path, 0600);
	{
		int fd = open(path, O_WRONLY | O_TRUNC);
		assert_true(write(fd, "not hex\n", 8) == 8);
		close(fd);
	}
	assert_int_equal(bot_key_load(path, k2), ERR_INVALID);
	unlink(path);
}

static void test_limiter(void **st)
{
	bot_limits lim;
	bot_limiter *l;
	(void)st;

	/* the scale multiplies the limits (rates): 2 allows twice as many
	 * messages, so the intervals are halved; 0.5 doubles them */
	bot_limits_default(&lim, 2.0);
	assert_int_equal(lim.chat_gap_ms, 500);
	assert_int_equal(lim.group_window_ms, 30000);
	assert_int_equal(lim.global_window_ms, 500);
	bot_limits_default(&lim, 0.5);
	assert_int_equal(lim.chat_gap_ms, 2000);
	assert_int_equal(lim.group_window_ms, 120000);
	bot_limits_default(&lim, 1.0);
	assert_int_equal(lim.chat_gap_ms, 1000);
	assert_int_equal(lim.group_window_ms, 60000);
	assert_int_equal(bot_limiter_new(&l, &lim), 0);
	assert_int_equal(bot_limit_wait(l, 5, 1000), 0);
	bot_limit_note(l, 5, 1000);
	assert_int_equal(bot_limit_wait(l, 5, 1400), 600);
	assert_int_equal(bot_limit_wait(l, 6, 1400), 0);
	assert_int_equal(bot_limit_wait(l, 5, 2000), 0);
	/* a group: 20 per minute, even when spaced by a second */
	for (int i = 0; i < 20; i++) {
		int64_t t = 10000 + i * 1000;
		assert_int_equal(bot_limit_wait(l, -100, t), 0);
		bot_limit_note(l, -100, t);
	}
	assert_int_equal(bot_limit_wait(l, -100, 30000), 40000);
	assert_int_equal(bot_limit_wait(l, -100, 70000), 0);
	/* overall: 30 per second across chats */
	for (int i = 0; i < 30; i++)
		bot_limit_note(l, 1000 + i, 100000);
	assert_int_equal(bot_limit_wait(l, 9999, 100500), 500);
	assert_int_equal(bot_limit_wait(l, 0, 101000), 0);
	/* retry_after blocks a chat, or everything */
	bot_limit_block(l, 77, 200000, 3000);
	assert_int_equal(bot_limit_wait(l, 77, 201000), 2000);
	assert_int_equal(bot_limit_wait(l, 78, 201000), 0);
	bot_limit_block(l, 0, 300000, 1000);
	assert_int_equal(bot_limit_wait(l, 78, 300100), 900);
	/* many chats */
	for (int i = 0; i < 5000; i++)
		bot_limit_note(l, 50000 + i, 400000 + i);
	assert_true(bot_limit_wait(l, 50000 + 4999, 400000 + 4999) >= 999);
	bot_limiter_free(l);
	bot_limiter_free(NULL);
}

static void test_updates_parse(void **st)
{
	json_t *arr = ts_json(
		"[{\"update_id\":1,\"message\":{\"message_id\":5,\"date\":1,\"from\":{\"id\":7,"
		"\"first_name\":\"Ada\",\"last_name\":\"L\",\"username\":\"ada\"},\"chat\":{\"id\":7,"
		"\"type\":\"private\"},\"text\":\"/New@orch_test_bot  my idea\"}},"
		"{\"update_id\":2,\"message\":{\"message_id\":6,\"date\":1,\"from\":{\"id\":7,"
		"\"first_name\":\"Ada\"},\"chat\":{\"id\":-5,\"type\":\"group\"},\"text\":\"/new@other_bot x\"}},"
		"{\"update_id\":3,\"callback_query\":{\"id\":\"q1\",\"from\":{\"id\":7,\"first_name\":\"A\"},"
		"\"data\":\"a:1:0:x\",\"message\":{\"message_id\":9,\"chat\":{\"id\":7,\"type\":\"private\"}}}},"
		"{\"update_id\":4,\"edited_message\":{\"chat\":{\"id\":7}}},"
		"{\"update_id\":5,\"message\":{\"message_id\":1,\"text\":\"no chat\"}},"
		"{\"update_id\":6,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":7},\"text\":\"no from\"}},"
		"{\"no_id\":1}, 42, {\"update_id\":\"7\"},"
		"{\"update_id\":9,\"message\":{\"message_id\":1,\"date\":1,\"from\":{\"id\":7},\"chat\":{\"id\":7},\"text\":\"/\"}}]");
	tg_update *u = NULL;
	int n = 0;
	int64_t max = 0;
	(void)st;

	assert_int_equal(tg_updates_parse(arr, "orch_test_bot", &u, &n, &max), 0);
	assert_int_equal(n, 7);
	assert_int_equal(max, 9);
	assert_int_equal(u[0].kind, TG_UPD_COMMAND);
	assert_string_equal(u[0].command, "new");
	assert_string_equal(u[0].args, "my idea");
	assert_string_equal(u[0].from.name, "Ada L");
	assert_int_equal(u[1].kind, TG_UPD_OTHER); /* for another bot */
	assert_int_equal(u[2].kind, TG_UPD_CALLBACK);
	assert_string_equal(u[2].callback_data, "a:1:0:x");
	assert_int_equal(u[2].chat_id, 7);
	assert_int_equal(u[2].cb_message_id, 9);
	assert_int_equal(u[3].kind, TG_UPD_OTHER);
	assert_string_equal(u[3].what, "edited_message");
	assert_int_equal(u[4].kind, TG_UPD_INVALID);
	assert_int_equal(u[5].kind, TG_UPD_INVALID);
	assert_int_equal(u[6].kind, TG_UPD_TEXT); /* a lone slash is text */
	tg_updates_free(u, n);
	json_decref(arr);
	arr = ts_json("{\"not\":\"an array\"}");
	assert_int_equal(tg_updates_parse(arr, NULL, &u, &n, NULL), ERR_PARSE);
	json_decref(arr);
}

static void test_replies(void **st)
{
	tg_reply r;
	json_t *res = NULL;
	const char *ok = "{\"ok\":true,\"result\":{\"message_id\":3}}";
	const char *flood = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: "
			    "retry after 7\",\"parameters\":{\"retry_after\":7}}";
	const char *bad = "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: x\"}";
	(void)st;

	assert_int_equal(tg_parse_reply(200, ok, strlen(ok), -1, &res, &r), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "message_id")), 3);
	json_decref(res);
	assert_int_equal(tg_parse_reply(429, flood, strlen(flood), -1, NULL, &r), ERR_BUSY);
	assert_int_equal(r.retry_after_ms, 7000);
	assert_int_equal(tg_parse_reply(400, bad, strlen(bad), -1, NULL, &r), ERR_INVALID);
	assert_int_equal(tg_parse_reply(401, "{\"ok\":false,\"error_code\":401}", 29, -1, NULL, &r), ERR_AUTH);
	assert_int_equal(tg_parse_reply(409, "{\"ok\":false,\"error_code\":409}", 29, -1, NULL, &r), ERR_CONFLICT);
	assert_int_equal(tg_parse_reply(502, "<html>bad gateway</html>", 24, -1, NULL, &r), ERR_HTTP);
	assert_int_equal(tg_parse_reply(200, "{\"ok\":tr", 8, -1, NULL, &r), ERR_PARSE);
	assert_int_equal(tg_parse_reply(429, "", 0, 3000, NULL, &r), ERR_BUSY);
	assert_int_equal(r.retry_after_ms, 3000);
	/* the token never reaches an error message */
	{
		tg_client *c = NULL;
		assert_int_equal(tg_client_new(&c, "http://127.0.0.1:1", "123:SECRETTOKEN"), 0);
		assert_true(tg_call(c, "getMe", NULL, 2000, NULL, &r) < 0);
		assert_null(strstr(err_last(), "SECRETTOKEN"));
		tg_client_free(c);
		assert_int_equal(tg_client_new(&c, NULL, "bad token/../x"), ERR_INVALID);
		assert_int_equal(tg_client_new(&c, NULL, ""), ERR_INVALID);
	}
}

static void test_allowed(void **st)
{
	int64_t ids[8];
	int n;
	(void)st;
	assert_int_equal(bot_parse_allowed("12345, 678;9", ids, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[2], 9);
	assert_int_equal(bot_parse_allowed("", ids, 8, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(bot_parse_allowed("123,@alice", ids, 8, &n), ERR_INVALID);
	assert_non_null(strstr(err_last(), "@alice"));
	assert_int_equal(bot_parse_allowed("-5", ids, 8, &n), ERR_INVALID);
	assert_int_equal(bot_parse_allowed("1,2,3", ids, 2, &n), ERR_TOOBIG);
}

/* Telegram's descriptions read once, in tg.c, into what they mean. */
static void test_refusal_reasons(void **state)
{
	static const struct {
		long status;
		const char *body;
		tg_why why;
	} cases[] = {
		{400, "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message is not "
		      "modified: specified new message content and reply markup are exactly the same\"}",
		 TG_WHY_NOT_MODIFIED},
		{400, "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: can't parse "
		      "entities: Unsupported start tag \\\"x\\\" at byte offset 0\"}",
		 TG_WHY_BAD_ENTITIES},
		{409, "{\"ok\":false,\"error_code\":409,\"description\":\"Conflict: can't use getUpdates "
		      "method while webhook is active; use deleteWebhook to delete the webhook first\"}",
		 TG_WHY_WEBHOOK},
		{409, "{\"ok\":false,\"error_code\":409,\"description\":\"Conflict: terminated by other "
		      "getUpdates request; make sure that only one bot instance is running\"}",
		 TG_WHY_OTHER},
		{403, "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was blocked by "
		      "the user\"}",
		 TG_WHY_OTHER},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tg_reply r;

		assert_true(tg_parse_reply(cases[i].status, cases[i].body, strlen(cases[i].body), -1,
					   NULL, &r) < 0);
		assert_int_equal(r.why, cases[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),       cmocka_unit_test(test_split_plain),
		cmocka_unit_test(test_split_html),   cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_callback_mac), cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_limiter),      cmocka_unit_test(test_updates_parse),
		cmocka_unit_test(test_replies),      cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_refusal_reasons),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
