/* calc [EXPR]: evaluates EXPR, or the lines of standard input. */
#include <stdio.h>
#include <string.h>

#include "eval.h"

static int run_line(struct vars *v, const char *line)
{
	char err[160];
	double x;
	if (eval_line(v, line, &x, err, sizeof(err)) < 0) {
		fprintf(stderr, "error: %s\n", err);
		return -1;
	}
	printf("%.10g\n", x);
	return 0;
}

int main(int argc, char **argv)
{
	struct vars *v = vars_new();
	int status = 0;
	if (!v) {
		fprintf(stderr, "error: out of memory\n");
		return 1;
	}
	if (argc > 2) {
		fprintf(stderr, "usage: calc [EXPR]   (quote EXPR; without it, lines come from standard input)\n");
		status = 2;
	} else if (argc == 2) {
		status = run_line(v, argv[1]) < 0;
	} else {
		char line[4096];
		while (fgets(line, sizeof(line), stdin)) {
			if (strspn(line, " \t\r\n") == strlen(line))
				continue;
			if (run_line(v, line) < 0)
				status = 1;
			fflush(stdout);
		}
	}
	vars_free(v);
	return status;
}
