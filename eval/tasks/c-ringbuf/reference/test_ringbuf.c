#include <assert.h>
#include <stdio.h>

#include "ringbuf.h"

int main(void)
{
	ringbuf *rb = rb_new(2);
	int v;
	assert(rb_push(rb, 1) == 0 && rb_push(rb, 2) == 0 && rb_push(rb, 3) == -1);
	assert(rb_pop(rb, &v) == 0 && v == 1);
	rb_free(rb);
	puts("ok");
	return 0;
}
