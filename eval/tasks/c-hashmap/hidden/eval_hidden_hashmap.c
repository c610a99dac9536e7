/* Acceptance tests of c-hashmap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

static int failures;
#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                \
		}                                                                  \
	} while (0)

static int streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void test_basics(void)
{
	hm_free(NULL);
	hashmap *m = hm_new();
	CHECK(m != NULL);
	CHECK(hm_len(m) == 0);
	CHECK(hm_get(m, "a") == NULL);
	CHECK(hm_set(m, "a", "1") == 0);
	CHECK(hm_set(m, "b", "2") == 0);
	CHECK(streq(hm_get(m, "a"), "1"));
	CHECK(streq(hm_get(m, "b"), "2"));
	CHECK(hm_len(m) == 2);
	CHECK(hm_set(m, "a", "one") == 0);
	CHECK(streq(hm_get(m, "a"), "one"));
	CHECK(hm_len(m) == 2);
	CHECK(hm_del(m, "a") == 1);
	CHECK(hm_del(m, "a") == 0);
	CHECK(hm_get(m, "a") == NULL);
	CHECK(hm_len(m) == 1);
	CHECK(hm_set(m, "", "") == 0);
	CHECK(streq(hm_get(m, ""), ""));
	CHECK(hm_len(m) == 2);
	hm_free(m);
}

static void test_copies(void)
{
	hashmap *m = hm_new();
	char key[16] = "key", val[16] = "value";
	hm_set(m, key, val);
	strcpy(key, "XXX");
	strcpy(val, "YYYYY");
	CHECK(streq(hm_get(m, "key"), "value"));
	CHECK(hm_get(m, "XXX") == NULL);
	hm_free(m);
}

struct seen {
	int count;
	int bad;
};

static void visit(const char *key, const char *value, void *arg)
{
	struct seen *s = arg;
	s->count++;
	/* values are the key with "=v" appended */
	size_t n = strlen(key);
	if (strncmp(value, key, n) != 0 || strcmp(value + n, "=v") != 0)
		s->bad++;
}

/* 900,000 operations: a map that is not O(1) on average runs into the
 * time limit of the hidden command */
static void test_many(void)
{
	enum { N = 300000 };
	hashmap *m = hm_new();
	char k[32], v[40];
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "k%d", i);
		snprintf(v, sizeof v, "%s=v", k);
		if (hm_set(m, k, v) != 0) {
			CHECK(!"hm_set failed");
			break;
		}
	}
	CHECK(hm_len(m) == N);
	int wrong = 0;
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "k%d", i);
		snprintf(v, sizeof v, "%s=v", k);
		wrong += !streq(hm_get(m, k), v);
	}
	CHECK(wrong == 0);
	for (int i = 0; i < N; i += 2) {
		snprintf(k, sizeof k, "k%d", i);
		wrong += hm_del(m, k) != 1;
	}
	CHECK(wrong == 0);
	CHECK(hm_len(m) == N / 2);
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "k%d", i);
		const char *got = hm_get(m, k);
		wrong += (i % 2 == 0) != (got == NULL);
	}
	CHECK(wrong == 0);
	struct seen s = {0, 0};
	hm_each(m, visit, &s);
	CHECK(s.count == N / 2);
	CHECK(s.bad == 0);
	hm_free(m);
}

static void test_reinsert_after_delete(void)
{
	hashmap *m = hm_new();
	char k[32];
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(k, sizeof k, "r%d", i);
			hm_set(m, k, "x");
		}
		for (int i = 0; i < 1000; i++) {
			snprintf(k, sizeof k, "r%d", i);
			hm_del(m, k);
		}
	}
	CHECK(hm_len(m) == 0);
	struct seen s = {0, 0};
	hm_each(m, visit, &s);
	CHECK(s.count == 0);
	hm_set(m, "r5", "r5=v");
	CHECK(streq(hm_get(m, "r5"), "r5=v"));
	hm_free(m);
}

int main(void)
{
	test_basics();
	test_copies();
	test_reinsert_after_delete();
	test_many();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all hashmap checks passed\n");
	return 0;
}
