/* hashmap: string keys to string values, open addressing with linear
 * probing and backward-shift deletion. The map owns copies of its keys and
 * values. Not thread-safe. */
#ifndef HASHMAP_H
#define HASHMAP_H

#include <stddef.h>

typedef struct hashmap hashmap;

/* An empty map; NULL when out of memory. Free it with hm_free. */
hashmap *hm_new(void);
/* Frees M and everything in it; NULL is fine. */
void hm_free(hashmap *m);
/* Stores copies of KEY and VALUE (replacing a value): 0, or -1 when out of
 * memory (M unchanged). */
int hm_set(hashmap *m, const char *key, const char *value);
/* The value of KEY, borrowed until KEY changes or M is freed; NULL when absent. */
const char *hm_get(const hashmap *m, const char *key);
/* Removes KEY: 1, or 0 when it was absent. */
int hm_del(hashmap *m, const char *key);
size_t hm_len(const hashmap *m);
/* Calls FN(key, value, ARG) once per entry, in no particular order; FN must
 * not change M. */
void hm_each(const hashmap *m, void (*fn)(const char *key, const char *value, void *arg), void *arg);

#endif
