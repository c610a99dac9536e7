/* Telegram text (bot/text.c): splitting long text into messages, HTML
 * escaping, the plain-text fallback and truncation, over any bytes.
 *
 * Input: one byte of mode, two of limit, then the text.
 *
 * Properties: splitting ends, and joining the parts gives the text back
 * (only the newline or space at a cut is dropped); every part is within
 * the limit as Telegram counts it, is never cut inside a UTF-8 sequence,
 * a tag or an entity, and, when the text's tags are balanced, has its own
 * tags balanced; escaping then unescaping is the identity; the visible
 * length is the length of the plain text; truncation gives a prefix within
 * the limit. */
#include "tests/fuzz/fuzz.h"

#include "bot/text.h"
#include "core/buf.h"

#define MAX_TAG_NAME 24

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

/* Whether `whole` is parts[0] sep parts[1] sep ... where each sep is "",
 * "\n" or " " (what a cut drops). Positions reachable after each part are
 * tracked as a set (at most k + 1 of them after k parts). */
static int joins_to(const char *whole, char **parts, int n)
{
	size_t len = strlen(whole);
	size_t *pos = malloc(sizeof(size_t) * (size_t)(n + 2)), *next;
	size_t npos = 1;
	int ok;

	next = malloc(sizeof(size_t) * (size_t)(n + 2));
	if (!pos || !next)
		abort();
	pos[0] = 0;
	for (int i = 0; i < n && npos > 0; i++) {
		size_t pl = strlen(parts[i]), nn = 0;

		for (size_t k = 0; k < npos; k++) {
			size_t at[2];
			int nat = 0;

			at[nat++] = pos[k];
			if (i > 0 && pos[k] < len && (whole[pos[k]] == '\n' || whole[pos[k]] == ' '))
				at[nat++] = pos[k] + 1;
			for (int a = 0; a < nat; a++) {
				int dup = 0;
				if (at[a] + pl > len || memcmp(whole + at[a], parts[i], pl) != 0)
					continue;
				for (size_t q = 0; q < nn; q++)
					dup |= next[q] == at[a] + pl;
				if (!dup && nn < (size_t)(n + 2))
					next[nn++] = at[a] + pl;
			}
		}
		memcpy(pos, next, nn * sizeof(size_t));
		npos = nn;
	}
	ok = 0;
	for (size_t k = 0; k < npos; k++)
		ok |= pos[k] == len;
	free(pos);
	free(next);
	return ok;
}

/* Tags of `html` as bot/text.c recognises them ('<' up to the next '>'
 * with no '<' between): 1 when every closing tag closes the innermost
 * open one and none is left open, nested at most 32 deep (what the
 * splitter keeps track of; text/h says what happens deeper). */
static int balanced(const char *html)
{
	char stack[32][MAX_TAG_NAME];
	int depth = 0;

	for (const char *p = html; *p; p++) {
		const char *e, *lt;
		char name[MAX_TAG_NAME];
		size_t k = 0;
		int closing;
		const char *q;

		if (*p != '<')
			continue;
		e = strchr(p, '>');
		lt = strchr(p + 1, '<');
		if (!e || (lt && lt < e))
			continue;
		closing = p[1] == '/';
		for (q = p + 1 + closing; q < e && k + 1 < sizeof(name) && !strchr(" />\n\t", *q); q++)
			name[k++] = (char)(*q >= 'A' && *q <= 'Z' ? *q - 'A' + 'a' : *q);
		name[k] = '\0';
		if (closing) {
			if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
				return 0;
			depth--;
		} else {
			if (depth == 32)
				return 0;
			memcpy(stack[depth++], name, sizeof(name));
		}
		p = e;
	}
	return depth == 0;
}

static void check_split(const char *text, int html, size_t limit)
{
	tg_parts parts;
	char **plain;
	char *whole_plain = html ? tg_html_to_plain(text) : strdup(text);
	int rc = tg_split(text, html, limit, &parts);
	int bal = html && balanced(text);

	FZ_CHECK(rc == 0, "tg_split failed: %d", rc);
	FZ_CHECK(whole_plain != NULL, "out of memory");
	FZ_CHECK((parts.n == 0) == (text[0] == '\0'), "%d parts for a text of %zu bytes", parts.n,
		 strlen(text));
	plain = calloc((size_t)parts.n + 1, sizeof(char *));
	if (!plain)
		abort();
	for (int i = 0; i < parts.n; i++) {
		size_t vis = tg_html_visible_len(parts.v[i]);

		plain[i] = tg_html_to_plain(parts.v[i]);
		FZ_CHECK(plain[i] != NULL, "out of memory");
		FZ_CHECK(vis <= limit || vis <= 13, "part %d has %zu characters, the limit is %zu", i,
			 vis, limit);
		FZ_CHECK(plain[i][0] != '\0' || html, "part %d is empty", i);
		if (fz_utf8_valid(text, strlen(text)))
			FZ_CHECK(fz_utf8_valid(parts.v[i], strlen(parts.v[i])),
				 "part %d is not UTF-8 although the text is", i);
		if (bal)
			FZ_CHECK(balanced(parts.v[i]), "part %d's tags are not balanced: %s", i,
				 parts.v[i]);
	}
	FZ_CHECK(joins_to(whole_plain, plain, parts.n),
		 "the %d parts do not join into the text (limit %zu, html %d)", parts.n, limit, html);
	for (int i = 0; i < parts.n; i++)
		free(plain[i]);
	free(plain);
	free(whole_plain);
	tg_parts_free(&parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *plain;
	size_t limit, tl;
	buf b;

	if (size < 3)
		return 0;
	limit = ((size_t)data[1] << 8 | data[2]) % 400 + 1;
	if (data[0] & 2)
		limit = 4096;
	text = fz_str(data + 3, size - 3);
	tl = strlen(text);

	/* escaping, then the plain-text fallback, is the identity */
	buf_init(&b, 0);
	FZ_CHECK(tg_html_escape(&b, text, tl) == 0, "escape failed");
	plain = tg_html_to_plain(buf_cstr(&b));
	FZ_CHECK(plain && strcmp(plain, text) == 0, "unescaping the escaped text changed it");
	FZ_CHECK(tg_html_visible_len(buf_cstr(&b)) == tg_utf16_len(text, tl),
		 "escaping changed the visible length");
	free(plain);
	buf_free(&b);

	/* the visible length is the plain text's length (in UTF-8 text: bytes
	 * that are not UTF-8 may pair up once the tags between them go) */
	plain = tg_html_to_plain(text);
	FZ_CHECK(plain != NULL, "out of memory");
	FZ_CHECK(!fz_utf8_valid(text, tl) ||
			 tg_html_visible_len(text) == tg_utf16_len(plain, strlen(plain)),
		 "visible length %zu, plain text length %zu", tg_html_visible_len(text),
		 tg_utf16_len(plain, strlen(plain)));
	free(plain);

	check_split(text, data[0] & 1, limit);

	/* truncation: the text itself when it fits, else a prefix and "…" */
	buf_init(&b, 0);
	FZ_CHECK(tg_truncate(&b, text, limit) == 0, "truncate failed");
	if (tg_utf16_len(text, tl) <= limit) {
		FZ_CHECK(strcmp(buf_cstr(&b), text) == 0, "a text that fits was changed");
	} else {
		size_t n = b.len - strlen("…");
		FZ_CHECK(b.len >= strlen("…") && strcmp(b.data + n, "…") == 0, "no ellipsis");
		FZ_CHECK(memcmp(b.data, text, n) == 0, "not a prefix");
		FZ_CHECK(tg_utf16_len(b.data, b.len) <= limit || limit < 2,
			 "%zu characters after truncating to %zu", tg_utf16_len(b.data, b.len), limit);
		if (fz_utf8_valid(text, tl))
			FZ_CHECK(fz_utf8_valid(b.data, b.len), "truncation cut a character");
	}
	buf_free(&b);
	free(text);
	return 0;
}
