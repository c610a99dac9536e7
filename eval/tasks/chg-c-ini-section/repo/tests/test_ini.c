/* Tests of ini.c: make test */
#include <stdio.h>
#include <string.h>

#include "../ini.h"

static int failures;
#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                \
		}                                                                  \
	} while (0)

static int is(const char *got, const char *want)
{
	return got && strcmp(got, want) == 0;
}

static void test_basic(void)
{
	char err[128];
	ini *f = ini_parse("; a comment\nname = demo\n\n[server]\nhost = example.org \n"
			   "  port=8080\n# another\n[Client]\nretries = 3\nverbose = Yes\n",
			   err, sizeof(err));
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(is(ini_get(f, "", "name"), "demo"));
	CHECK(is(ini_get(f, "server", "host"), "example.org"));
	CHECK(is(ini_get(f, "SERVER", "Port"), "8080"));
	CHECK(is(ini_get(f, "client", "retries"), "3"));
	CHECK(ini_get(f, "server", "retries") == NULL);
	CHECK(ini_get(f, "nosuch", "host") == NULL);
	long n = 0;
	CHECK(ini_get_long(f, "server", "port", &n) == 0 && n == 8080);
	CHECK(ini_get_long(f, "server", "host", &n) == -1 && n == 8080);
	int b = -1;
	CHECK(ini_get_bool(f, "client", "verbose", &b) == 0 && b == 1);
	CHECK(ini_get_bool(f, "client", "retries", &b) == -1);
	CHECK(ini_section_count(f) == 3);
	CHECK(is(ini_section_name(f, 0), ""));
	CHECK(is(ini_section_name(f, 1), "server"));
	CHECK(is(ini_section_name(f, 2), "Client"));
	CHECK(ini_section_name(f, 3) == NULL);
	ini_free(f);
}

static void test_last_value_wins(void)
{
	ini *f = ini_parse("[a]\nx = 1\n[b]\ny = 2\n[a]\nX = 3\n", NULL, 0);
	CHECK(f && is(ini_get(f, "a", "x"), "3"));
	CHECK(f && ini_section_count(f) == 2);
	ini_free(f);
}

static void test_errors(void)
{
	char err[128];
	const char *bad[] = {"[ok]\nx = 1\nno equals here\n", "[open\n", "= v\n", "[]\n"};
	const char *where[] = {"line 3", "line 1", "line 1", "line 1"};
	for (int i = 0; i < 4; i++) {
		err[0] = '\0';
		ini *f = ini_parse(bad[i], err, sizeof(err));
		CHECK(f == NULL);
		CHECK(strncmp(err, where[i], strlen(where[i])) == 0);
		ini_free(f);
	}
	CHECK(ini_load("/nonexistent/file.ini", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/file.ini") != NULL);
}

static void test_values(void)
{
	ini *f = ini_parse("[s]\nurl = http://x/?a=b\nempty =\nspaced =   a  b  \n", NULL, 0);
	CHECK(f && is(ini_get(f, "s", "url"), "http://x/?a=b"));
	CHECK(f && is(ini_get(f, "s", "empty"), ""));
	CHECK(f && is(ini_get(f, "s", "spaced"), "a  b"));
	long n;
	CHECK(f && ini_get_long(f, "s", "empty", &n) == -1);
	ini_free(f);
}

int main(void)
{
	test_basic();
	test_last_value_wins();
	test_errors();
	test_values();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all ini checks passed\n");
	return 0;
}
