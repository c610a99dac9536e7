#include "counter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct counter {
	struct item *items;
	size_t len, cap;
	size_t *slots; /* index + 1 into items, 0 = empty; open addressing */
	size_t nslots;
};

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

counter *counter_new(void)
{
	counter *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nslots = 64;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	return c;
}

void counter_free(counter *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->len; i++)
		free(c->items[i].text);
	free(c->items);
	free(c->slots);
	free(c);
}

static size_t *slot_of(counter *c, const char *text, size_t len)
{
	size_t i = (size_t)hash(text, len) & (c->nslots - 1);
	for (;;) {
		size_t *s = &c->slots[i];
		if (*s == 0)
			return s;
		struct item *it = &c->items[*s - 1];
		if (it->len == len && memcmp(it->text, text, len) == 0)
			return s;
		i = (i + 1) & (c->nslots - 1);
	}
}

static int grow(counter *c)
{
	size_t n = c->nslots * 2;
	size_t *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -1;
	free(c->slots);
	c->slots = slots;
	c->nslots = n;
	for (size_t k = 0; k < c->len; k++)
		*slot_of(c, c->items[k].text, c->items[k].len) = k + 1;
	return 0;
}

int counter_add(counter *c, const char *text, size_t len)
{
	size_t *s = slot_of(c, text, len);
	if (*s) {
		c->items[*s - 1].count++;
		return 0;
	}
	if (c->len == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct item *items = realloc(c->items, cap * sizeof(*items));
		if (!items)
			return -1;
		c->items = items;
		c->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	c->items[c->len] = (struct item){copy, len, 1, c->len};
	c->len++;
	*s = c->len;
	if (c->len * 2 > c->nslots && grow(c) < 0)
		return -1;
	return 0;
}

struct item *counter_items(counter *c, size_t *n)
{
	*n = c->len;
	return c->items;
}
