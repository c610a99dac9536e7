/* A button's callback data and its MAC (bot/approval.c): written by the
 * client, so anything may come back.
 *
 * Input: a mode byte. Mode even: the rest is callback data, verified as
 * it is. Mode odd: 8 bytes of id, a byte of option, a position and a byte:
 * the data signed for (id, option) with that one byte changed.
 *
 * Properties: data is accepted only when it is exactly what the key signed
 * for the id and option it names (no second spelling of a signed button);
 * what is signed fits Telegram's 64 bytes and verifies to the same id and
 * option, under its key only; one changed byte is always refused. */
#include "tests/fuzz/fuzz.h"

#include "bot/approval.h"
#include "bot/tg.h"
#include "core/err.h"

#include <sodium.h>

static unsigned char g_key[BOT_KEY_BYTES], g_other[BOT_KEY_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (sodium_init() < 0)
		abort();
	memset(g_key, 7, sizeof(g_key));
	memset(g_other, 8, sizeof(g_other));
	return 0;
}

/* What verify says of `data`; when it accepts, the data must be the one
 * spelling sign gives. */
static int verify_canonical(const char *data, int64_t *id, int *opt)
{
	char again[80];
	int rc = bot_cb_verify(g_key, data, id, opt);

	FZ_CHECK(rc == 0 || rc == ERR_INVALID || rc == ERR_CRYPTO, "rc %d", rc);
	if (rc < 0) {
		FZ_CHECK(*id == 0 && *opt == -1, "a refused button left id %lld option %d",
			 (long long)*id, *opt);
		return rc;
	}
	FZ_CHECK(*id > 0 && *opt >= 0 && *opt < BOT_MAX_OPTIONS, "id %lld option %d",
		 (long long)*id, *opt);
	FZ_CHECK(bot_cb_sign(g_key, *id, *opt, again, sizeof(again)) == 0, "cannot sign again");
	FZ_CHECK(strcmp(again, data) == 0, "accepted '%s', which is not the signed '%s'", data,
		 again);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t id;
	int opt;

	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		char *s = fz_str(data + 1, size - 1);
		verify_canonical(s, &id, &opt);
		free(s);
		return 0;
	}
	if (size >= 12) {
		char signed_[80], changed[80];
		int64_t want_id;
		int want_opt = data[9] % (BOT_MAX_OPTIONS + 1);
		size_t len, pos;
		int rc;

		memcpy(&want_id, data + 1, 8);
		rc = bot_cb_sign(g_key, want_id, want_opt, signed_, sizeof(signed_));
		if (want_id <= 0 || want_opt >= BOT_MAX_OPTIONS) {
			FZ_CHECK(rc == ERR_INVALID, "signed id %lld option %d", (long long)want_id,
				 want_opt);
			return 0;
		}
		FZ_CHECK(rc == 0, "cannot sign id %lld option %d", (long long)want_id, want_opt);
		len = strlen(signed_);
		FZ_CHECK(len <= TG_CALLBACK_DATA_MAX, "%zu bytes of callback data", len);
		FZ_CHECK(verify_canonical(signed_, &id, &opt) == 0 && id == want_id && opt == want_opt,
			 "'%s' does not verify to what was signed", signed_);
		FZ_CHECK(bot_cb_verify(g_other, signed_, &id, &opt) == ERR_CRYPTO,
			 "another key accepted '%s'", signed_);
		pos = data[10] % len;
		memcpy(changed, signed_, len + 1);
		changed[pos] = (char)data[11];
		if (changed[pos] != signed_[pos] && changed[pos] != '\0')
			FZ_CHECK(verify_canonical(changed, &id, &opt) < 0,
				 "'%s' accepted with byte %zu changed", changed, pos);
	}
	return 0;
}
