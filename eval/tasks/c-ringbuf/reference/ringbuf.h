/* ringbuf: a bounded FIFO of ints. Not thread-safe. */
#ifndef RINGBUF_H
#define RINGBUF_H

#include <stddef.h>

typedef struct ringbuf ringbuf;

/* A new empty buffer for CAPACITY values; NULL when CAPACITY is 0 or memory
 * runs out. Free it with rb_free. */
ringbuf *rb_new(size_t capacity);
/* Frees RB; NULL is fine. */
void rb_free(ringbuf *rb);
/* Appends VALUE: 0, or -1 when the buffer is full (nothing changes). */
int rb_push(ringbuf *rb, int value);
/* Removes the oldest value into *OUT: 0, or -1 when empty (*OUT untouched). */
int rb_pop(ringbuf *rb, int *out);
/* The oldest value into *OUT without removing it: 0, or -1 when empty. */
int rb_peek(const ringbuf *rb, int *out);
size_t rb_len(const ringbuf *rb);
size_t rb_cap(const ringbuf *rb);

#endif
