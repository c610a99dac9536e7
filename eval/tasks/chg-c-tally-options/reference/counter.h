/* counter: counts strings, optionally without regard to the case of ASCII
 * letters; remembers the order and spelling in which each first came. */
#ifndef COUNTER_H
#define COUNTER_H

#include <stddef.h>

struct item {
	char *text;   /* owned by the counter */
	size_t len;
	long count;
	size_t first; /* the position of its first occurrence */
};

typedef struct counter counter;

/* A new counter; with FOLD, strings that differ only in the case of ASCII
 * letters count as one (kept with the spelling first seen). */
counter *counter_new(int fold);
void counter_free(counter *c);
/* Counts one occurrence of TEXT[0..LEN) (copied on first sight): 0, or -1
 * when out of memory. */
int counter_add(counter *c, const char *text, size_t len);
/* The items, in the order they first came; *N gets their number. Borrowed
 * until the next counter_add or counter_free. */
struct item *counter_items(counter *c, size_t *n);

#endif
