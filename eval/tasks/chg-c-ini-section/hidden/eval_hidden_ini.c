/* Acceptance tests of chg-c-ini-section. */
#include <stdio.h>
#include <string.h>

#include "ini.h"

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

static void test_prefix_sections(void)
{
	ini *f = ini_parse("[db_replica]\nhost = replica\nport = 5433\nro = yes\n"
			   "[db]\nhost = primary\nport = 5432\nro = no\n", NULL, 0);
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(is(ini_get(f, "db", "host"), "primary"));
	CHECK(is(ini_get(f, "DB", "host"), "primary"));
	CHECK(is(ini_get(f, "db_replica", "host"), "replica"));
	CHECK(ini_get(f, "d", "host") == NULL);
	CHECK(ini_get(f, "db_", "host") == NULL);
	CHECK(ini_get(f, "db_replica_2", "host") == NULL);
	long port = 0;
	CHECK(ini_get_long(f, "db", "port", &port) == 0 && port == 5432);
	int ro = -1;
	CHECK(ini_get_bool(f, "db", "ro", &ro) == 0 && ro == 0);
	ini_free(f);
}

static void test_global_section(void)
{
	ini *f = ini_parse("[server]\nname = web\n[client]\ntimeout = 5\n", NULL, 0);
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(ini_get(f, "", "name") == NULL);
	long t = 7;
	CHECK(ini_get_long(f, "", "timeout", &t) == -1 && t == 7);
	ini_free(f);
	f = ini_parse("name = top\n[server]\nname = web\n", NULL, 0);
	CHECK(f && is(ini_get(f, "", "name"), "top"));
	CHECK(f && is(ini_get(f, "server", "name"), "web"));
	ini_free(f);
}

static void test_last_value_wins(void)
{
	ini *f = ini_parse("[ab]\nx = 1\n[a]\nx = 2\n[b]\nx = 9\n[A]\nX = 3\n", NULL, 0);
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(is(ini_get(f, "a", "x"), "3"));
	CHECK(is(ini_get(f, "ab", "x"), "1"));
	CHECK(is(ini_get(f, "b", "x"), "9"));
	CHECK(ini_section_count(f) == 3);
	ini_free(f);
}

int main(void)
{
	test_prefix_sections();
	test_global_section();
	test_last_value_wins();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all section checks passed\n");
	return 0;
}
