/* Acceptance tests of c-strsplit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"

static int failures;
#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                \
		}                                                                  \
	} while (0)

/* splits S at SEP and compares with the N expected parts */
static void split_is(const char *s, const char *sep, size_t n, const char *const *want)
{
	size_t count = 12345;
	char **parts = str_split(s, sep, &count);
	if (!parts) {
		printf("FAIL str_split(\"%s\", \"%s\") returned NULL\n", s, sep);
		failures++;
		return;
	}
	int bad = count != n;
	for (size_t i = 0; !bad && i < n; i++)
		bad = parts[i] == NULL || strcmp(parts[i], want[i]) != 0;
	if (!bad)
		bad = parts[n] != NULL;
	if (bad) {
		printf("FAIL str_split(\"%s\", \"%s\"): got %zu parts:", s, sep, count);
		for (size_t i = 0; i < count && parts[i]; i++)
			printf(" \"%s\"", parts[i]);
		printf("\n");
		failures++;
	}
	str_split_free(parts);
}

static void test_split(void)
{
	split_is("a,b,c", ",", 3, (const char *[]){"a", "b", "c"});
	split_is("a,,b", ",", 3, (const char *[]){"a", "", "b"});
	split_is("", ",", 1, (const char *[]){""});
	split_is(",", ",", 2, (const char *[]){"", ""});
	split_is("no separator", ",", 1, (const char *[]){"no separator"});
	split_is("one::two::::three", "::", 4, (const char *[]){"one", "two", "", "three"});
	split_is("aaa", "aa", 2, (const char *[]){"", "a"});
	split_is("x, y, z", ", ", 3, (const char *[]){"x", "y", "z"});
	CHECK(str_split("a,b", "", NULL) == NULL);
	char **p = str_split("a b", " ", NULL);
	CHECK(p && p[0] && p[1] && !p[2]);
	str_split_free(p);
	str_split_free(NULL);
}

static void test_join(void)
{
	const char *parts[] = {"usr", "local", "bin"};
	char *s = str_join(parts, 3, "/");
	CHECK(s && strcmp(s, "usr/local/bin") == 0);
	free(s);
	s = str_join(parts, 1, ", ");
	CHECK(s && strcmp(s, "usr") == 0);
	free(s);
	s = str_join(parts, 0, ", ");
	CHECK(s && strcmp(s, "") == 0);
	free(s);
	const char *empties[] = {"", "", ""};
	s = str_join(empties, 3, "--");
	CHECK(s && strcmp(s, "----") == 0);
	free(s);
}

static void test_round_trip(void)
{
	const char *texts[] = {"a,b", ",,", "", "x", "lorem,ipsum,,dolor,", ",start"};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		size_t n = 0;
		char **p = str_split(texts[i], ",", &n);
		char *back = p ? str_join((const char *const *)p, n, ",") : NULL;
		CHECK(back && strcmp(back, texts[i]) == 0);
		free(back);
		str_split_free(p);
	}
	/* a long string */
	size_t big = 200000;
	char *s = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		s[i] = i % 7 == 6 ? ';' : 'a' + (char)(i % 7);
	s[big] = '\0';
	size_t n = 0;
	char **p = str_split(s, ";", &n);
	CHECK(p && n == big / 7 + 1);
	char *back = p ? str_join((const char *const *)p, n, ";") : NULL;
	CHECK(back && strcmp(back, s) == 0);
	free(back);
	str_split_free(p);
	free(s);
}

static void trim_is(const char *s, const char *want)
{
	char *t = str_trim(s);
	if (!t || strcmp(t, want) != 0) {
		printf("FAIL str_trim(\"%s\") = \"%s\", want \"%s\"\n", s, t ? t : "(null)", want);
		failures++;
	}
	CHECK(t != s);
	free(t);
}

static void test_trim(void)
{
	trim_is("  hello  ", "hello");
	trim_is("\t\n x y \r\n", "x y");
	trim_is("", "");
	trim_is("   ", "");
	trim_is("plain", "plain");
}

int main(void)
{
	test_split();
	test_join();
	test_round_trip();
	test_trim();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all strutil checks passed\n");
	return 0;
}
