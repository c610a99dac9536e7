/* The chat commands' table (bot/command.h): the setMyCommands list keeps
 * the Bot API's rules, the fake Bot API server takes it and refuses what
 * Telegram refuses, every command the table routes has help and answers in
 * the chat, and both help texts list what the table holds. */
#include "tests/support/support.h"
#include "tests/support/fake_tg.h"

#include "bot/command.h"
#include "bot/route.h"
#include "bot/tg.h"
#include "core/err.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Characters of UTF-8 text. */
static size_t chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* The Bot API's rules for BotCommand, checked here, not by the product. */
static void test_list_valid(void **state)
{
	json_t *list = bot_commands_json(), *c;
	size_t i, n;
	const bot_cmd *t = bot_cmd_table(&n);

	(void)state;
	assert_non_null(list);
	assert_true(json_array_size(list) >= 1 && json_array_size(list) <= 100);
	json_array_foreach(list, i, c) {
		const char *name = json_string_value(json_object_get(c, "command"));
		const char *desc = json_string_value(json_object_get(c, "description"));

		assert_non_null(name);
		assert_non_null(desc);
		assert_true(strlen(name) >= 1 && strlen(name) <= 32);
		assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(name));
		assert_true(chars(desc) >= 1 && chars(desc) <= 256);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(name, json_string_value(json_object_get(
							      json_array_get(list, j), "command")));
		/* only Telegram's commands, and each of them */
		assert_non_null(bot_cmd_find(name, "telegram"));
	}
	for (i = 0; i < n; i++) {
		int listed = 0;

		assert_true(strlen(t[i].name) >= 1 && strlen(t[i].name) <= BOT_CMD_NAME_MAX);
		assert_true(chars(t[i].help) >= 1 && chars(t[i].help) <= BOT_CMD_HELP_MAX);
		for (size_t j = 0; j < json_array_size(list); j++)
			listed |= strcmp(t[i].name, json_string_value(json_object_get(
							    json_array_get(list, j), "command"))) == 0;
		assert_int_equal(listed, (t[i].where & BOT_ON_TG) && !(t[i].where & BOT_HIDDEN));
	}
	json_decref(list);
}

/* Every command of a channel, but the hidden ones, is in that channel's
 * help with its help line. */
static void test_help_lists_table(void **state)
{
	size_t n;
	const bot_cmd *t = bot_cmd_table(&n);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		char slash[48];

		snprintf(slash, sizeof(slash), "/%s", t[i].name);
		if (t[i].where & BOT_HIDDEN)
			continue;
		assert_true(t[i].fn || !(t[i].where & BOT_ON_TG)); /* Telegram has no loop of its own */
		if (t[i].where & BOT_ON_TG) {
			assert_non_null(strstr(bot_help_text("telegram"), slash));
			assert_non_null(strstr(bot_help_text("telegram"), t[i].help));
		} else {
			assert_null(strstr(bot_help_text("telegram"), slash));
		}
		if (t[i].where & BOT_ON_TERM) {
			assert_non_null(strstr(bot_help_text("term"), slash));
			assert_non_null(strstr(bot_help_text("term"), t[i].help));
		}
	}
	assert_null(bot_cmd_find("quit", "telegram"));
	assert_non_null(bot_cmd_find("quit", "term"));
}

/* The fake takes the list (getMyCommands gives it back) and refuses a name
 * or a description Telegram refuses, as a 400 the client maps to
 * ERR_INVALID. */
static void test_publish(void **state)
{
	ts_fake f;
	tg_client *tg = NULL;
	json_t *got = NULL, *want = bot_commands_json();
	tg_reply reply;
	static const char *const bad[] = {
		"[{\"command\": \"Status\", \"description\": \"x\"}]",
		"[{\"command\": \"st-atus\", \"description\": \"x\"}]",
		"[{\"command\": \"\", \"description\": \"x\"}]",
		"[{\"command\": \"abcdefghijklmnopqrstuvwxyz0123456\", \"description\": \"x\"}]",
		"[{\"command\": \"status\", \"description\": \"\"}]",
		"[{\"command\": \"status\", \"description\": \"x\"}, {\"command\": \"status\", "
		"\"description\": \"y\"}]",
		"{\"command\": \"status\"}",
	};

	(void)state;
	ts_fake_start(&f);
	assert_int_equal(tg_client_new(&tg, f.base, TS_TG_TOKEN), 0);
	assert_int_equal(bot_commands_publish(tg), 0);
	assert_int_equal(tg_call(tg, "getMyCommands", NULL, 0, &got, NULL), 0);
	assert_true(json_equal(got, want));
	json_decref(got);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *p = json_pack("{s:o}", "commands", ts_json(bad[i]));

		assert_int_equal(tg_call(tg, "setMyCommands", p, 0, NULL, &reply), ERR_INVALID);
		assert_int_equal(reply.error_code, 400);
		json_decref(p);
	}
	{
		/* 256 characters (not bytes) is the most a description holds */
		char desc[1024];
		size_t len = 0;
		json_t *p;

		for (int i = 0; i < 257; i++, len += 2)
			memcpy(desc + len, "é", 2);
		desc[len - 2] = '\0';
		p = json_pack("{s:[{s:s,s:s}]}", "commands", "command", "a_1", "description", desc);
		assert_int_equal(tg_call(tg, "setMyCommands", p, 0, NULL, NULL), 0);
		json_decref(p);
		desc[len - 2] = "é"[0];
		desc[len] = '\0';
		p = json_pack("{s:[{s:s,s:s}]}", "commands", "command", "a_1", "description", desc);
		assert_int_equal(tg_call(tg, "setMyCommands", p, 0, NULL, NULL), ERR_INVALID);
		json_decref(p);
	}
	json_decref(want);
	tg_client_free(tg);
	ts_fake_stop(&f);
}

/* Each command the table routes answers in the chat (an outbox row), in
 * both channels; one the channel lacks gets the short help. */
static void test_route_each(void **state)
{
	pg_conn *db = ts_conn();
	size_t n;
	const bot_cmd *t = bot_cmd_table(&n);
	static const char *const channels[] = {"telegram", "term"};

	(void)state;
	ts_sql(db, "TRUNCATE bot_chats, outbox, threads CASCADE");
	for (size_t ch = 0; ch < 2; ch++) {
		bot_input in;

		memset(&in, 0, sizeof(in));
		in.channel = channels[ch];
		in.dest = ch == 0 ? "4242" : "tester";
		in.user_name = "Tester";
		for (size_t i = 0; i < n; i++) {
			int64_t before = ts_sql_int(db, "SELECT count(*) FROM outbox");

			if (!bot_cmd_find(t[i].name, in.channel))
				continue;
			assert_int_equal(bot_command(db, "factory", &in, t[i].name, ""), 0);
			assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM outbox"), before + 1);
		}
		assert_int_equal(bot_command(db, "factory", &in, "nosuchcommand", ""), 0);
		assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM outbox WHERE payload->>'text' "
						"LIKE 'I don''t know /nosuchcommand.%'"),
				 (int64_t)ch + 1);
	}
	/* /help <command>: its long help */
	{
		bot_input in;

		memset(&in, 0, sizeof(in));
		in.channel = "telegram";
		in.dest = "4242";
		assert_int_equal(bot_command(db, "factory", &in, "help", "new"), 0);
		assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM outbox WHERE payload->>'text' "
						"LIKE '/new <idea> — %--repo%'"),
				 1);
	}
	/* Telegram has no /quit; the terminal's /approve without a number says
	 * how to use it */
	{
		bot_input in;

		memset(&in, 0, sizeof(in));
		in.channel = "telegram";
		in.dest = "4242";
		assert_int_equal(bot_command(db, "factory", &in, "quit", ""), 0);
		in.channel = "term";
		in.dest = "tester";
		assert_int_equal(bot_command(db, "factory", &in, "approve", "x"), 0);
		assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM outbox WHERE payload->>'text' "
						"LIKE 'Usage: /approve <n> — %'"),
				 2); /* and once without arguments above */
	}
	pg_conn_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_valid),
		cmocka_unit_test(test_help_lists_table),
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_route_each),
	};
	ts_init();
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CMOCKA_TEST_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
