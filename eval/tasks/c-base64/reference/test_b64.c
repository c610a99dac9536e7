#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

int main(void)
{
	char *e = b64_encode((const unsigned char *)"foob", 4);
	assert(strcmp(e, "Zm9vYg==") == 0);
	size_t n;
	unsigned char *d = b64_decode(e, &n);
	assert(d && n == 4 && memcmp(d, "foob", 4) == 0);
	assert(b64_decode("Zg=", &n) == NULL);
	free(e);
	free(d);
	puts("ok");
	return 0;
}
