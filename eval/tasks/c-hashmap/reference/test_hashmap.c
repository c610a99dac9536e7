#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "hashmap.h"

int main(void)
{
	hashmap *m = hm_new();
	char k[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof k, "%d", i);
		assert(hm_set(m, k, k) == 0);
	}
	for (int i = 0; i < 1000; i += 3) {
		snprintf(k, sizeof k, "%d", i);
		assert(hm_del(m, k) == 1);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof k, "%d", i);
		const char *v = hm_get(m, k);
		assert(i % 3 == 0 ? v == NULL : strcmp(v, k) == 0);
	}
	hm_free(m);
	puts("ok");
	return 0;
}
