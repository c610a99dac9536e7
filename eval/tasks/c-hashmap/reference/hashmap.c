#include "hashmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	char *key; /* NULL: empty */
	char *value;
	uint64_t hash;
};

struct hashmap {
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t len;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static char *dup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

hashmap *hm_new(void)
{
	hashmap *m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	m->cap = 16;
	m->len = 0;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void hm_free(hashmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i].key);
		free(m->slots[i].value);
	}
	free(m->slots);
	free(m);
}

/* the slot of KEY, or the empty slot where it would go */
static size_t find(const hashmap *m, const char *key, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);
	while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int grow(hashmap *m)
{
	size_t ncap = m->cap * 2;
	struct slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		size_t j = (size_t)m->slots[i].hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

int hm_set(hashmap *m, const char *key, const char *value)
{
	uint64_t h = fnv1a(key);
	size_t i = find(m, key, h);
	char *v = dup(value);
	if (!v)
		return -1;
	if (m->slots[i].key) {
		free(m->slots[i].value);
		m->slots[i].value = v;
		return 0;
	}
	if ((m->len + 1) * 4 > m->cap * 3) {
		if (grow(m) < 0) {
			free(v);
			return -1;
		}
		i = find(m, key, h);
	}
	char *k = dup(key);
	if (!k) {
		free(v);
		return -1;
	}
	m->slots[i] = (struct slot){k, v, h};
	m->len++;
	return 0;
}

const char *hm_get(const hashmap *m, const char *key)
{
	size_t i = find(m, key, fnv1a(key));
	return m->slots[i].key ? m->slots[i].value : NULL;
}

int hm_del(hashmap *m, const char *key)
{
	size_t i = find(m, key, fnv1a(key));
	if (!m->slots[i].key)
		return 0;
	free(m->slots[i].key);
	free(m->slots[i].value);
	/* backward shift: move later entries of the run into the hole */
	size_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & (m->cap - 1);
		if (!m->slots[j].key)
			break;
		size_t home = (size_t)m->slots[j].hash & (m->cap - 1);
		/* J's entry may fill the hole when its home is not cyclically in (hole, j] */
		int in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!in_between) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole] = (struct slot){NULL, NULL, 0};
	m->len--;
	return 1;
}

size_t hm_len(const hashmap *m)
{
	return m->len;
}

void hm_each(const hashmap *m, void (*fn)(const char *key, const char *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			fn(m->slots[i].key, m->slots[i].value, arg);
}
