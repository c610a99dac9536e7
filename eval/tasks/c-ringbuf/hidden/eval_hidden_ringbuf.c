/* Acceptance tests of c-ringbuf. */
#include <stdio.h>
#include <stdlib.h>

#include "ringbuf.h"

static int failures;
#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                \
		}                                                                  \
	} while (0)

static void test_empty(void)
{
	CHECK(rb_new(0) == NULL);
	rb_free(NULL);
	ringbuf *rb = rb_new(3);
	CHECK(rb != NULL);
	if (!rb)
		return;
	int v = 42;
	CHECK(rb_len(rb) == 0);
	CHECK(rb_cap(rb) == 3);
	CHECK(rb_pop(rb, &v) == -1);
	CHECK(rb_peek(rb, &v) == -1);
	CHECK(v == 42);
	rb_free(rb);
}

static void test_fifo_and_full(void)
{
	ringbuf *rb = rb_new(3);
	int v = 0;
	CHECK(rb_push(rb, 1) == 0);
	CHECK(rb_push(rb, 2) == 0);
	CHECK(rb_push(rb, 3) == 0);
	CHECK(rb_push(rb, 4) == -1);
	CHECK(rb_len(rb) == 3);
	CHECK(rb_peek(rb, &v) == 0 && v == 1);
	CHECK(rb_len(rb) == 3);
	CHECK(rb_pop(rb, &v) == 0 && v == 1);
	CHECK(rb_push(rb, 5) == 0);
	CHECK(rb_pop(rb, &v) == 0 && v == 2);
	CHECK(rb_pop(rb, &v) == 0 && v == 3);
	CHECK(rb_pop(rb, &v) == 0 && v == 5);
	CHECK(rb_pop(rb, &v) == -1 && v == 5);
	CHECK(rb_len(rb) == 0);
	rb_free(rb);
}

static void test_capacity_one(void)
{
	ringbuf *rb = rb_new(1);
	int v = 0;
	for (int i = 0; i < 10; i++) {
		CHECK(rb_push(rb, i) == 0);
		CHECK(rb_push(rb, -i) == -1);
		CHECK(rb_pop(rb, &v) == 0 && v == i);
	}
	rb_free(rb);
}

static void test_model(void)
{
	enum { CAP = 7 };
	ringbuf *rb = rb_new(CAP);
	int model[CAP], head = 0, n = 0, v;
	unsigned seed = 12345;
	for (int i = 0; i < 100000; i++) {
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 3 != 0) {
			int r = rb_push(rb, i);
			if (n == CAP) {
				CHECK(r == -1);
			} else {
				CHECK(r == 0);
				model[(head + n) % CAP] = i;
				n++;
			}
		} else {
			int r = rb_pop(rb, &v);
			if (n == 0) {
				CHECK(r == -1);
			} else {
				CHECK(r == 0 && v == model[head]);
				head = (head + 1) % CAP;
				n--;
			}
		}
		if (rb_len(rb) != (size_t)n) {
			CHECK(rb_len(rb) == (size_t)n);
			break;
		}
	}
	rb_free(rb);
}

static void test_large(void)
{
	ringbuf *rb = rb_new(100000);
	int v, ok = 1;
	CHECK(rb != NULL);
	for (int i = 0; i < 100000; i++)
		ok &= rb_push(rb, i * 3) == 0;
	CHECK(ok);
	CHECK(rb_push(rb, 1) == -1);
	for (int i = 0; i < 100000; i++)
		ok &= rb_pop(rb, &v) == 0 && v == i * 3;
	CHECK(ok);
	rb_free(rb);
}

int main(void)
{
	test_empty();
	test_fifo_and_full();
	test_capacity_one();
	test_model();
	test_large();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all ringbuf checks passed\n");
	return 0;
}
