/* lexer: the tokens of one calculator line. */
#ifndef LEXER_H
#define LEXER_H

#include <stddef.h>

enum tok_kind {
	TOK_END,    /* the end of the line */
	TOK_NUM,    /* a number: value in num */
	TOK_NAME,   /* a name: text in name */
	TOK_OP,     /* one of + - * / % ^ ( ) = , : the character in op */
	TOK_BAD,    /* a character that starts no token: in op */
};

#define NAME_MAX_LEN 63

struct token {
	enum tok_kind kind;
	double num;
	char op;
	char name[NAME_MAX_LEN + 1];
	size_t pos; /* offset of the token in the line */
};

struct lexer {
	const char *src;
	size_t pos;
};

void lex_init(struct lexer *lx, const char *src);
/* The next token of the line into *OUT; returns 0, or -1 for a name longer
 * than NAME_MAX_LEN (then OUT->kind is TOK_BAD). */
int lex_next(struct lexer *lx, struct token *out);

#endif
