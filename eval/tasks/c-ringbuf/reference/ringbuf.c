#include "ringbuf.h"

#include <stdint.h>
#include <stdlib.h>

struct ringbuf {
	size_t cap;
	size_t head; /* index of the oldest value */
	size_t len;
	int vals[];
};

ringbuf *rb_new(size_t capacity)
{
	if (capacity == 0 || capacity > (SIZE_MAX - sizeof(ringbuf)) / sizeof(int))
		return NULL;
	ringbuf *rb = malloc(sizeof(*rb) + capacity * sizeof(int));
	if (!rb)
		return NULL;
	rb->cap = capacity;
	rb->head = 0;
	rb->len = 0;
	return rb;
}

void rb_free(ringbuf *rb)
{
	free(rb);
}

int rb_push(ringbuf *rb, int value)
{
	if (rb->len == rb->cap)
		return -1;
	rb->vals[(rb->head + rb->len) % rb->cap] = value;
	rb->len++;
	return 0;
}

int rb_peek(const ringbuf *rb, int *out)
{
	if (rb->len == 0)
		return -1;
	*out = rb->vals[rb->head];
	return 0;
}

int rb_pop(ringbuf *rb, int *out)
{
	if (rb_peek(rb, out) < 0)
		return -1;
	rb->head = (rb->head + 1) % rb->cap;
	rb->len--;
	return 0;
}

size_t rb_len(const ringbuf *rb)
{
	return rb->len;
}

size_t rb_cap(const ringbuf *rb)
{
	return rb->cap;
}
