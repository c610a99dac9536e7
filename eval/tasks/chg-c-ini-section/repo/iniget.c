/* iniget FILE SECTION KEY: prints the value of KEY in SECTION ("" for the
 * keys before any header). Exit status 1 when the key is absent, 2 on a bad
 * file or usage. */
#include <stdio.h>

#include "ini.h"

int main(int argc, char **argv)
{
	char err[256];
	if (argc != 4) {
		fprintf(stderr, "usage: iniget FILE SECTION KEY\n");
		return 2;
	}
	ini *f = ini_load(argv[1], err, sizeof(err));
	if (!f) {
		fprintf(stderr, "iniget: %s\n", err);
		return 2;
	}
	const char *v = ini_get(f, argv[2], argv[3]);
	int status = 0;
	if (v) {
		printf("%s\n", v);
	} else {
		fprintf(stderr, "iniget: no key '%s' in section [%s]\n", argv[3], argv[2]);
		status = 1;
	}
	ini_free(f);
	return status;
}
