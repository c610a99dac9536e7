/* The small readers of values from outside: configuration variables
 * (numbers, durations, sizes, the allowed Telegram users, REDIS_URL, the
 * bot token, the master key), HTTP Retry-After headers, and the JSON
 * string writer of log lines.
 *
 * Input: a mode byte, then the value.
 *
 * Properties, by reader: a number, duration or size is accepted only as
 * written (its digits times its unit, no overflow); the allowed users are
 * exactly the numbers written, each as written; a Retry-After is a wait
 * from 0 to a year or unusable; REDIS_URL's password never shows in the
 * redacted URL nor in an error message; a bot token or master key is
 * accepted only in its alphabet; a log line's JSON string is valid JSON
 * and reads back as the text. */
#include "tests/fuzz/fuzz.h"

#include "bot/bot.h"
#include "bot/tg.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http.h"
#include "core/redis.h"
#include "secrets/key.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (sodium_init() < 0 || http_global_init() < 0)
		abort();
	return 0;
}

/* digits then a unit from `units` (each with its multiplier): the value as
 * documented, or -1. */
static long long with_unit(const char *s, const char *const *units, const long long *mul)
{
	const char *p = s;
	long long n = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		if (n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p++ - '0');
	}
	for (int i = 0; units[i]; i++)
		if (strcmp(p, units[i]) == 0)
			return n <= LLONG_MAX / mul[i] ? n * mul[i] : -1;
	return -1;
}

static void numbers(int mode, const char *s)
{
	static const char *const dur[] = {"", "ms", "s", "m", "min", "h", "d", NULL};
	static const long long dmul[] = {1, 1, 1000, 60000, 60000, 3600000, 86400000};
	static const char *const size[] = {"", "k", "K", "m", "M", "g", "G", "ki", "Ki", "mi",
					   "Mi", "gi", "Gi", "kB", "KB", "mB", "MB", "gB", "GB",
					   "kiB", "KiB", "miB", "MiB", "giB", "GiB", NULL};
	static const long long smul[] = {1, 1LL << 10, 1LL << 10, 1LL << 20, 1LL << 20, 1LL << 30,
					 1LL << 30, 1LL << 10, 1LL << 10, 1LL << 20, 1LL << 20,
					 1LL << 30, 1LL << 30, 1LL << 10, 1LL << 10, 1LL << 20,
					 1LL << 20, 1LL << 30, 1LL << 30, 1LL << 10, 1LL << 10,
					 1LL << 20, 1LL << 20, 1LL << 30, 1LL << 30};
	int64_t v = -5;
	int rc;

	if (mode == 0) {
		char *end;
		long long want;
		errno = 0;
		want = strtoll(s, &end, 10);
		rc = cfg_parse_int(s, &v);
		FZ_CHECK((rc == 0) == (*s && !*end && errno == 0), "'%s': rc %d", s, rc);
		if (rc == 0)
			FZ_CHECK(v == want, "'%s' read as %lld", s, (long long)v);
		return;
	}
	if (mode == 1) {
		long long want = isdigit((unsigned char)s[0]) ? with_unit(s, dur, dmul) : -1;
		rc = cfg_parse_duration_ms(s, &v);
		/* strtoll also skips white space and a '+': those spellings may be taken */
		if (want >= 0)
			FZ_CHECK(rc == 0 && v == want, "duration '%s': rc %d, %lld ms, want %lld", s, rc,
				 (long long)v, want);
		if (rc == 0)
			FZ_CHECK(v >= 0, "duration '%s' is %lld ms", s, (long long)v);
		return;
	}
	{
		long long want = isdigit((unsigned char)s[0]) ? with_unit(s, size, smul) : -1;
		rc = cfg_parse_size(s, &v);
		if (want >= 0)
			FZ_CHECK(rc == 0 && v == want, "size '%s': rc %d, %lld bytes, want %lld", s, rc,
				 (long long)v, want);
		if (rc == 0)
			FZ_CHECK(v >= 0, "size '%s' is %lld", s, (long long)v);
	}
}

static void allowed(const char *s)
{
	int64_t ids[64];
	int n = -1, k = 0;
	int rc = bot_parse_allowed(s, ids, 64, &n);
	const char *p = s;

	if (rc < 0)
		return;
	/* each item between separators is a number, and the id is that number */
	while (*p) {
		char item[64];
		size_t len;
		long long want;
		char *end;

		p += strspn(p, ", \t;");
		if (!*p)
			break;
		len = strcspn(p, ", \t;");
		FZ_CHECK(k < n, "'%s': more items than ids", s);
		FZ_CHECK(len < sizeof(item), "'%s': a %zu-character item was accepted", s, len);
		memcpy(item, p, len);
		item[len] = '\0';
		errno = 0;
		want = strtoll(item, &end, 10);
		FZ_CHECK(!*end && errno == 0 && want == ids[k] && want > 0,
			 "'%s' was read as user %lld", item, (long long)ids[k]);
		k++;
		p += len;
	}
	FZ_CHECK(k == n, "'%s': %d items, %d ids", s, k, n);
}

static void retry_after(const char *s)
{
	for (int ms = 0; ms < 2; ms++) {
		int64_t v = http_retry_after_ms(s, ms);
		FZ_CHECK(v == -1 || (v >= 0 && v <= 365LL * 86400 * 1000), "'%s' (%s): %lld", s,
			 ms ? "ms" : "s", (long long)v);
	}
}

static void redis_url(const char *s)
{
	rds_url u;
	char red[2048];
	const char *scheme = strstr(s, "://"), *at = strrchr(s, '@');
	int rc = rds_url_parse(s, &u);

	rds_url_redact(s, red, sizeof(red));
	if (rc == 0 && u.password[0] && strncmp(s, "redis://", 8) == 0) {
		/* redis://[[user]:password@]host...: the password as written, and only
		 * it, becomes "***" (the '@' is the last one before the path) */
		const char *p = s + 8, *slash = strchr(p, '/'), *pat = NULL, *colon;
		char want[2048];

		for (const char *q = p; *q && (!slash || q < slash); q++)
			if (*q == '@')
				pat = q;
		FZ_CHECK(pat != NULL, "a password without an '@'");
		colon = memchr(p, ':', (size_t)(pat - p));
		if (colon)
			snprintf(want, sizeof(want), "%.*s:***%s", (int)(colon - s), s, pat);
		else
			snprintf(want, sizeof(want), "redis://***%s", pat);
		FZ_CHECK(strlen(s) > 1000 || strcmp(red, want) == 0, "'%s' redacted as '%s'", s, red);
	}
	if (rc < 0 && strncmp(s, "redis://", 8) == 0 && at && at > scheme + 3) {
		/* whatever stands before the last '@' may be a password, so it is
		 * never quoted: written otherwise (each character changed but the
		 * digits, escapes and those that shape a URL) the message is the
		 * same */
		char *other = strdup(s), first[1100];
		rds_url u2;
		int rc2;

		if (!other)
			abort();
		snprintf(first, sizeof(first), "%s", err_last());
		for (size_t i = (size_t)(scheme + 3 - s); i < (size_t)(at - s); i++) {
			if (other[i] == '%') /* an escape stays what it is */
				i += 2;
			else if (!strchr("/@:[]?0123456789", other[i]))
				other[i] = other[i] == 'x' ? 'y' : 'x';
		}
		rc2 = rds_url_parse(other, &u2);
		FZ_CHECK(rc2 == rc && strcmp(first, err_last()) == 0,
			 "the message quotes what stands before '@': '%s', then '%s'", first,
			 err_last());
		free(other);
	}
}

static void token(const char *s)
{
	tg_client *c = NULL;
	int rc = tg_client_new(&c, "http://127.0.0.1:9", s);

	if (rc == 0) {
		static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ:_-";
		FZ_CHECK(s[0] && strspn(s, ok) == strlen(s), "token '%s' accepted", s);
		FZ_CHECK(!strstr(err_last(), s) || !s[0], "the token is in a message");
	} else {
		FZ_CHECK(!s[0] || strlen(s) < 4 || !strstr(err_last(), s), "the token is quoted: %s",
			 err_last());
	}
	tg_client_free(c);
}

static void master_key(const char *s, size_t n)
{
	sec_key *k = NULL;
	size_t a = 0, b = n;
	int rc = sec_key_parse(&k, s, n, "ORCH_MASTER_KEY");

	if (rc == 0) {
		while (a < b && strchr(" \t\r\n", s[a]))
			a++;
		while (b > a && strchr(" \t\r\n", s[b - 1]))
			b--;
		for (size_t i = a; i < b; i++)
			FZ_CHECK(isalnum((unsigned char)s[i]) || strchr("+/=_-", s[i]),
				 "a key with byte 0x%02x was accepted", (unsigned char)s[i]);
	}
	sec_key_free(k);
}

static void json_line(const char *s)
{
	buf b;
	json_t *j;

	buf_init(&b, 0);
	buf_putc(&b, '"');
	FZ_CHECK(buf_put_json_str(&b, s) == 0, "buf_put_json_str failed");
	buf_putc(&b, '"');
	j = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
	FZ_CHECK(json_is_string(j), "not a JSON string: %s", b.data);
	if (fz_utf8_valid(s, strlen(s)))
		FZ_CHECK(strcmp(json_string_value(j), s) == 0, "read back as another text");
	json_decref(j);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0] % 9;
	s = fz_str(data + 1, size - 1);
	err_clear();
	switch (mode) {
	case 0: case 1: case 2: numbers(mode, s); break;
	case 3: allowed(s); break;
	case 4: retry_after(s); break;
	case 5: redis_url(s); break;
	case 6: token(s); break;
	case 7: master_key((const char *)data + 1, size - 1); break;
	default: json_line(s); break;
	}
	free(s);
	return 0;
}
