/* eval: parses and evaluates calculator lines, keeping variables between them. */
#ifndef EVAL_H
#define EVAL_H

#include <stddef.h>

struct vars;

/* A new set of variables holding pi and e; NULL when out of memory. */
struct vars *vars_new(void);
void vars_free(struct vars *v);

/* Evaluates LINE (an expression or NAME = EXPR) with the variables V into
 * *OUT. Returns 0, or -1 with a message (without 'error:') in ERR. */
int eval_line(struct vars *v, const char *line, double *out, char *err, size_t errlen);

#endif
