/*
 * text — turning what nodes write into what Telegram accepts.
 *
 * Telegram takes at most 4096 characters per message, counted after entity
 * parsing (tags do not count, "&amp;" counts as one) in UTF-16 code units.
 * Long text is split into several messages: at a newline when there is one
 * in reach, else at a space, else between two characters — never inside a
 * UTF-8 sequence, a surrogate pair, an HTML tag or an entity. HTML that is
 * split has its open tags closed at the end of a part and opened again at
 * the start of the next, so every part parses on its own (tags nested
 * deeper than 32 are not reopened: Telegram refuses such a part, and the
 * relay sends it as plain text).
 *
 * Plain text is split before it is escaped (so an escape is never cut), and
 * each part is escaped for parse_mode=HTML. When Telegram still refuses a
 * part ("can't parse entities"), tg_html_to_plain gives the text to send
 * without a parse mode.
 */
#ifndef ORCH_BOT_TEXT_H
#define ORCH_BOT_TEXT_H

#include <stddef.h>

#include "core/buf.h"

/* Appends `s` (n bytes) escaped for parse_mode=HTML: & < > and ". */
int tg_html_escape(buf *out, const char *s, size_t n);

/* Length of `s` (n bytes of UTF-8) in UTF-16 code units, as Telegram
 * counts. Invalid bytes count as one unit each. */
size_t tg_utf16_len(const char *s, size_t n);

/* Length of HTML text as Telegram counts it after parsing: tags are not
 * counted, an entity counts as the character it stands for. */
size_t tg_html_visible_len(const char *html);

/* The parts of a text; each is a NUL-terminated HTML string (owned). */
typedef struct tg_parts {
	char **v;
	int n;
} tg_parts;

/* Splits `text` into parts of at most `limit` characters (0: 4096) each,
 * as Telegram counts them. `html` says the text is already HTML (else it
 * is plain text, escaped here). An empty text gives no parts. Caller frees
 * *out with tg_parts_free. ERR_NOMEM. */
int tg_split(const char *text, int html, size_t limit, tg_parts *out);
void tg_parts_free(tg_parts *p);

/* The text of an HTML string without its tags and with entities decoded
 * (for the plain-text resend). Caller frees the result; NULL on ENOMEM. */
char *tg_html_to_plain(const char *html);

/* Copies at most `max_chars` characters of `s` into `out` (whole UTF-8
 * sequences only), adding "…" when it was cut. */
int tg_truncate(buf *out, const char *s, size_t max_chars);

#endif
