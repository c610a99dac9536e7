#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"

int main(void)
{
	size_t n;
	char **p = str_split("a,,b", ",", &n);
	assert(p && n == 3 && strcmp(p[1], "") == 0 && p[3] == NULL);
	char *j = str_join((const char *const *)p, n, ",");
	assert(strcmp(j, "a,,b") == 0);
	free(j);
	str_split_free(p);
	char *t = str_trim("  x ");
	assert(strcmp(t, "x") == 0);
	free(t);
	puts("ok");
	return 0;
}
