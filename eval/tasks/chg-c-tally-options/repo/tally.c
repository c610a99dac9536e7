/* tally [-n N] [-r] [FILE...]: counts identical lines and prints each with
 * its count, the most frequent first (like sort | uniq -c | sort -rn). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counter.h"

static const char usage[] = "usage: tally [-n N] [-r] [FILE...]\n"
			    "  -n N  print only the first N lines\n"
			    "  -r    the least frequent first\n";

static int reverse;

/* most frequent first (or least with -r); equal counts by the line's bytes */
static int compare(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->count != y->count) {
		int more = x->count > y->count ? -1 : 1;
		return reverse ? -more : more;
	}
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->text, y->text, n);
	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int count_stream(counter *c, FILE *fp, const char *name)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int rc = 0;
	while ((got = getline(&line, &cap, fp)) >= 0) {
		size_t len = (size_t)got;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (counter_add(c, line, len) < 0) {
			fprintf(stderr, "tally: out of memory\n");
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		fprintf(stderr, "tally: %s: read error\n", name);
		rc = -1;
	}
	free(line);
	return rc;
}

int main(int argc, char **argv)
{
	long limit = -1;
	int opt, status = 0;
	while ((opt = getopt(argc, argv, "n:r")) != -1) {
		char *end;
		switch (opt) {
		case 'n':
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (errno || *end || limit < 0) {
				fprintf(stderr, "tally: -n needs a number, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'r':
			reverse = 1;
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	counter *c = counter_new();
	if (!c) {
		fprintf(stderr, "tally: out of memory\n");
		return 1;
	}
	if (optind == argc) {
		if (count_stream(c, stdin, "standard input") < 0)
			status = 1;
	}
	for (int i = optind; i < argc; i++) {
		FILE *fp = strcmp(argv[i], "-") == 0 ? stdin : fopen(argv[i], "r");
		if (!fp) {
			fprintf(stderr, "tally: %s: %s\n", argv[i], strerror(errno));
			status = 1;
			continue;
		}
		if (count_stream(c, fp, argv[i]) < 0)
			status = 1;
		if (fp != stdin)
			fclose(fp);
	}
	size_t n;
	struct item *items = counter_items(c, &n);
	if (n > 0)
		qsort(items, n, sizeof(*items), compare);
	for (size_t i = 0; i < n && (limit < 0 || (long)i < limit); i++) {
		printf("%7ld ", items[i].count);
		fwrite(items[i].text, 1, items[i].len, stdout);
		putchar('\n');
	}
	counter_free(c);
	return status;
}
