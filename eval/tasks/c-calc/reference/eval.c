/* A recursive-descent evaluator:
 *   line    := NAME '=' expr | expr
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '%') unary)*
 *   unary   := ('-' | '+') unary | power
 *   power   := primary ('^' unary)?          right-associative, tighter than unary minus
 *   primary := NUMBER | NAME | NAME '(' expr ')' | '(' expr ')'
 */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"

struct var {
	char name[NAME_MAX_LEN + 1];
	double value;
};

struct vars {
	struct var *items;
	size_t len, cap;
};

struct vars *vars_new(void)
{
	struct vars *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->cap = 8;
	v->items = calloc(v->cap, sizeof(*v->items));
	if (!v->items) {
		free(v);
		return NULL;
	}
	v->len = 2;
	strcpy(v->items[0].name, "pi");
	v->items[0].value = 3.14159265358979323846;
	strcpy(v->items[1].name, "e");
	v->items[1].value = 2.71828182845904523536;
	return v;
}

void vars_free(struct vars *v)
{
	if (!v)
		return;
	free(v->items);
	free(v);
}

static struct var *var_find(struct vars *v, const char *name)
{
	for (size_t i = 0; i < v->len; i++)
		if (strcmp(v->items[i].name, name) == 0)
			return &v->items[i];
	return NULL;
}

static int var_set(struct vars *v, const char *name, double value)
{
	struct var *x = var_find(v, name);
	if (!x) {
		if (v->len == v->cap) {
			struct var *n = realloc(v->items, 2 * v->cap * sizeof(*n));
			if (!n)
				return -1;
			v->items = n;
			v->cap *= 2;
		}
		x = &v->items[v->len++];
		snprintf(x->name, sizeof(x->name), "%s", name);
	}
	x->value = value;
	return 0;
}

struct parser {
	struct lexer lx;
	struct token tok; /* the current token */
	struct vars *vars;
	char *err;
	size_t errlen;
	int failed;
};

static int fail(struct parser *p, const char *fmt, const char *what)
{
	if (!p->failed)
		snprintf(p->err, p->errlen, fmt, what);
	p->failed = 1;
	return -1;
}

static int advance(struct parser *p)
{
	if (lex_next(&p->lx, &p->tok) < 0)
		return fail(p, "a name is longer than %s characters", "63");
	return 0;
}

static int is_op(const struct parser *p, char op)
{
	return p->tok.kind == TOK_OP && p->tok.op == op;
}

static int describe_unexpected(struct parser *p)
{
	char what[96];
	switch (p->tok.kind) {
	case TOK_END:
		return fail(p, "%s", "unexpected end of the expression");
	case TOK_NUM:
		snprintf(what, sizeof(what), "unexpected number at column %zu", p->tok.pos + 1);
		break;
	case TOK_NAME:
		snprintf(what, sizeof(what), "unexpected name '%s' at column %zu", p->tok.name, p->tok.pos + 1);
		break;
	default:
		snprintf(what, sizeof(what), "unexpected '%c' at column %zu", p->tok.op, p->tok.pos + 1);
		break;
	}
	return fail(p, "%s", what);
}

static int expr(struct parser *p, double *out);
static int unary(struct parser *p, double *out);

static int primary(struct parser *p, double *out)
{
	if (p->tok.kind == TOK_NUM) {
		*out = p->tok.num;
		return advance(p);
	}
	if (is_op(p, '(')) {
		if (advance(p) < 0 || expr(p, out) < 0)
			return -1;
		if (!is_op(p, ')'))
			return fail(p, "%s", "missing ')'");
		return advance(p);
	}
	if (p->tok.kind == TOK_NAME) {
		char name[NAME_MAX_LEN + 1];
		memcpy(name, p->tok.name, sizeof(name));
		if (advance(p) < 0)
			return -1;
		if (is_op(p, '(')) {
			double x;
			if (advance(p) < 0 || expr(p, &x) < 0)
				return -1;
			if (!is_op(p, ')'))
				return fail(p, "%s", "missing ')'");
			if (strcmp(name, "sqrt") == 0) {
				if (x < 0)
					return fail(p, "%s", "sqrt of a negative number");
				*out = sqrt(x);
			} else if (strcmp(name, "abs") == 0) {
				*out = fabs(x);
			} else {
				return fail(p, "unknown function '%s'", name);
			}
			return advance(p);
		}
		struct var *v = var_find(p->vars, name);
		if (!v)
			return fail(p, "unknown name '%s'", name);
		*out = v->value;
		return 0;
	}
	return describe_unexpected(p);
}

static int power(struct parser *p, double *out)
{
	if (primary(p, out) < 0)
		return -1;
	if (!is_op(p, '^'))
		return 0;
	double exp;
	if (advance(p) < 0 || unary(p, &exp) < 0)
		return -1;
	*out = pow(*out, exp);
	return 0;
}

static int unary(struct parser *p, double *out)
{
	if (is_op(p, '-') || is_op(p, '+')) {
		int neg = p->tok.op == '-';
		if (advance(p) < 0 || unary(p, out) < 0)
			return -1;
		if (neg)
			*out = -*out;
		return 0;
	}
	return power(p, out);
}

static int term(struct parser *p, double *out)
{
	if (unary(p, out) < 0)
		return -1;
	while (is_op(p, '*') || is_op(p, '/') || is_op(p, '%')) {
		char op = p->tok.op;
		double rhs;
		if (advance(p) < 0 || unary(p, &rhs) < 0)
			return -1;
		if (op == '*') {
			*out *= rhs;
		} else if (rhs == 0) {
			return fail(p, "%s", op == '/' ? "division by zero" : "% by zero");
		} else {
			*out = op == '/' ? *out / rhs : fmod(*out, rhs);
		}
	}
	return 0;
}

static int expr(struct parser *p, double *out)
{
	if (term(p, out) < 0)
		return -1;
	while (is_op(p, '+') || is_op(p, '-')) {
		char op = p->tok.op;
		double rhs;
		if (advance(p) < 0 || term(p, &rhs) < 0)
			return -1;
		*out = op == '+' ? *out + rhs : *out - rhs;
	}
	return 0;
}

int eval_line(struct vars *v, const char *line, double *out, char *err, size_t errlen)
{
	struct parser p = {.vars = v, .err = err, .errlen = errlen};
	err[0] = '\0';
	lex_init(&p.lx, line);
	if (advance(&p) < 0)
		return -1;
	if (p.tok.kind == TOK_END)
		return fail(&p, "%s", "nothing to evaluate");
	/* NAME '=' expr: look ahead one token */
	if (p.tok.kind == TOK_NAME) {
		struct lexer save = p.lx;
		struct token name = p.tok, next;
		if (lex_next(&p.lx, &next) == 0 && next.kind == TOK_OP && next.op == '=') {
			double x;
			if (advance(&p) < 0 || expr(&p, &x) < 0)
				return -1;
			if (p.tok.kind != TOK_END)
				return describe_unexpected(&p);
			if (var_set(v, name.name, x) < 0)
				return fail(&p, "%s", "out of memory");
			*out = x;
			return 0;
		}
		p.lx = save;
	}
	if (expr(&p, out) < 0)
		return -1;
	if (p.tok.kind != TOK_END)
		return describe_unexpected(&p);
	return 0;
}
