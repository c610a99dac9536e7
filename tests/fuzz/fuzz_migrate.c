/* A migration file as `orchestrator migrate --dir` reads it
 * (core/migrate.c, mig_file_check): its name gives the version, its text
 * the checksum that says whether an applied migration was edited.
 *
 * Input: the file name, a 0 byte, the file's bytes.
 *
 * Properties: a name is accepted exactly when it is NNN_name.sql (three or
 * more digits, at most 99999), and the version is its number; the
 * checksum is the SHA-256 of every byte of the text, so no edit goes
 * unseen (a text with a NUL byte, which would hide what follows it, is
 * refused); a refusal's message is valid UTF-8. */
#include "tests/fuzz/fuzz.h"

#include "core/err.h"
#include "core/migrate.h"

#include <sodium.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (sodium_init() < 0)
		abort();
	return 0;
}

/* The version `name` stands for, or -1: the documented rule, written
 * again. */
static long version_of(const char *name)
{
	size_t n = strlen(name), digits = 0;
	long v = 0;

	if (n < 6 || strcmp(name + n - 4, ".sql") != 0)
		return -1;
	while (name[digits] >= '0' && name[digits] <= '9') {
		v = v * 10 + (name[digits] - '0');
		if (v > 99999)
			return -1;
		digits++;
	}
	if (digits < 3 || name[digits] != '_')
		return -1;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *name_b, *sql;
	size_t nn, ns;
	char *name, sum[65], want[65];
	unsigned char h[crypto_hash_sha256_BYTES];
	int v = -7, rc;
	long expect;

	fz_split(data, size, 0, &name_b, &nn, &sql, &ns);
	name = fz_str(name_b, nn);
	expect = version_of(name);
	memset(sum, 'x', sizeof(sum));
	rc = mig_file_check(name, (const char *)sql, ns, &v, sum);
	if (expect < 0 || memchr(sql, 0, ns)) {
		FZ_CHECK(rc == ERR_INVALID, "'%s' (%zu bytes) accepted as version %d", name, ns, v);
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "not UTF-8: %s", err_last());
	} else {
		FZ_CHECK(rc == 0, "'%s' refused: %s", name, err_last());
		FZ_CHECK(v == expect, "'%s' is version %d, not %ld", name, v, expect);
		crypto_hash_sha256(h, sql, ns);
		sodium_bin2hex(want, sizeof(want), h, sizeof(h));
		FZ_CHECK(strcmp(sum, want) == 0, "checksum %s, the text's %s", sum, want);
	}
	free(name);
	return 0;
}
