/* The Telegram Bot API reply and getUpdates parser (bot/tg.c): a body as
 * the Bot API server writes it, through tg_parse_reply and, when it holds
 * a result, tg_updates_parse — the entry points the poller uses.
 *
 * Properties: a reply is either a result or an error with a usable
 * retry_after (never negative); every update that has an id is returned
 * (none lost, none made up) and the confirmed offset covers them all; each
 * update's typed fields are what its kind promises (text for a message, an
 * id for a callback, a command's arguments inside its text). */
#include "tests/fuzz/fuzz.h"

#include "bot/tg.h"
#include "core/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static void check_reply(long status, const uint8_t *data, size_t size)
{
	tg_reply r;
	json_t *res = NULL;
	int rc = tg_parse_reply(status, (const char *)data, size, status == 429 ? 2000 : -1, &res, &r);

	FZ_CHECK(r.retry_after_ms == -1 || r.retry_after_ms >= 0, "retry_after_ms %lld",
		 (long long)r.retry_after_ms);
	FZ_CHECK(r.retry_after_ms <= 86400LL * 1000, "retry_after_ms %lld is more than a day",
		 (long long)r.retry_after_ms);
	FZ_CHECK(rc <= 0, "rc %d", rc);
	FZ_CHECK((rc == 0) == (res != NULL), "rc %d with result %p", rc, (void *)res);
	FZ_CHECK(rc != ERR_BUSY || r.retry_after_ms > 0, "429 without a wait");
	FZ_CHECK(memchr(r.description, '\0', sizeof(r.description)) != NULL, "description");
	json_decref(res);
}

static void check_updates(const json_t *result)
{
	tg_update *u = NULL;
	int n = 0;
	int64_t max = 5, with_id = 0;
	size_t i;
	const json_t *e;
	int rc = tg_updates_parse(result, "orch_test_bot", &u, &n, &max);

	if (!json_is_array(result)) {
		FZ_CHECK(rc == ERR_PARSE && n == 0 && u == NULL, "not an array: rc %d", rc);
		return;
	}
	FZ_CHECK(rc == 0, "rc %d for an array", rc);
	json_array_foreach(result, i, e) {
		const json_t *id = json_object_get(e, "update_id");
		if (json_is_object(e) && json_is_integer(id) && json_integer_value(id) >= 0) {
			FZ_CHECK(with_id < n, "update %zu lost", i);
			FZ_CHECK(u[with_id].update_id == json_integer_value(id), "update %zu's id", i);
			with_id++;
		}
	}
	FZ_CHECK(with_id == n, "%d updates returned, %lld have an id", n, (long long)with_id);
	FZ_CHECK(max >= 5, "the offset went back");
	for (int k = 0; k < n; k++) {
		const tg_update *x = &u[k];

		FZ_CHECK(x->update_id <= max, "update %lld above the confirmed %lld",
			 (long long)x->update_id, (long long)max);
		FZ_CHECK(x->kind >= TG_UPD_TEXT && x->kind <= TG_UPD_INVALID, "kind %d", x->kind);
		FZ_CHECK(x->raw != NULL, "no raw update");
		FZ_CHECK(memchr(x->what, '\0', sizeof(x->what)) &&
				 memchr(x->chat_type, '\0', sizeof(x->chat_type)) &&
				 memchr(x->from.name, '\0', sizeof(x->from.name)) &&
				 memchr(x->from.username, '\0', sizeof(x->from.username)) &&
				 memchr(x->command, '\0', sizeof(x->command)),
			 "an unterminated field");
		if (x->kind == TG_UPD_TEXT || x->kind == TG_UPD_COMMAND) {
			const json_t *chat =
			    json_object_get(json_object_get(x->raw, "message"), "chat");

			FZ_CHECK(x->text != NULL, "a text update without text");
			FZ_CHECK(x->from.id != 0, "a text update without a sender");
			FZ_CHECK(x->chat_id == json_integer_value(json_object_get(chat, "id")),
				 "chat id %lld lost", (long long)x->chat_id);
		}
		if (x->kind == TG_UPD_COMMAND) {
			size_t tl = strlen(x->text);
			FZ_CHECK(x->text[0] == '/', "a command not starting with /");
			FZ_CHECK(x->args >= x->text && x->args <= x->text + tl, "args outside the text");
			FZ_CHECK(!strpbrk(x->command, "@ \n\t"), "command '%s' holds its bot or args",
				 x->command);
			for (const char *c = x->command; *c; c++)
				FZ_CHECK(!(*c >= 'A' && *c <= 'Z'), "command '%s' not lowercase",
					 x->command);
		}
		if (x->kind == TG_UPD_CALLBACK)
			FZ_CHECK(x->callback_id != NULL, "a callback without its id");
	}
	tg_updates_free(u, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *res = NULL;
	tg_reply r;

	check_reply(429, data, size);
	check_reply(502, data, size);
	if (tg_parse_reply(200, (const char *)data, size, -1, &res, &r) == 0) {
		check_updates(res);
		json_decref(res);
	}
	return 0;
}
