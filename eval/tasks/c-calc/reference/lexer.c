#include "lexer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void lex_init(struct lexer *lx, const char *src)
{
	lx->src = src;
	lx->pos = 0;
}

int lex_next(struct lexer *lx, struct token *out)
{
	const char *s = lx->src;
	while (s[lx->pos] == ' ' || s[lx->pos] == '\t' || s[lx->pos] == '\r')
		lx->pos++;
	memset(out, 0, sizeof(*out));
	out->pos = lx->pos;
	char c = s[lx->pos];
	if (c == '\0' || c == '\n') {
		out->kind = TOK_END;
		return 0;
	}
	if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[lx->pos + 1]))) {
		char *end;
		out->num = strtod(s + lx->pos, &end);
		out->kind = TOK_NUM;
		lx->pos = (size_t)(end - s);
		return 0;
	}
	if (isalpha((unsigned char)c)) {
		size_t n = 0;
		while (isalnum((unsigned char)s[lx->pos + n]) || s[lx->pos + n] == '_')
			n++;
		if (n > NAME_MAX_LEN) {
			out->kind = TOK_BAD;
			out->op = c;
			return -1;
		}
		memcpy(out->name, s + lx->pos, n);
		out->kind = TOK_NAME;
		lx->pos += n;
		return 0;
	}
	out->op = c;
	out->kind = strchr("+-*/%^()=", c) ? TOK_OP : TOK_BAD;
	lx->pos++;
	return 0;
}
