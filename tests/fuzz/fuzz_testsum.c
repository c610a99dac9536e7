/* A test command's output (spawner/testsum.c), which decides whether a
 * worker's "done" counts. The output is written by the code under test,
 * that is by the worker: anything may be in it.
 *
 * Input: a byte choosing the exit status (0, 1, 2 or 101), then the
 * output, passed without a terminating NUL (so reading past it is caught).
 *
 * Properties: the format is one of those documented; counts are never
 * negative and at most a billion (whatever the numbers written: no
 * overflow), the total is passed + failed, and a run is ok exactly when the command exited 0 and
 * no test failed; output with no recognised summary leaves the counts
 * unknown and the exit status decides. The failing tests' names are a
 * terminated list of non-empty lines, each once, as many as the failures
 * when they are said to be known. */
#include "tests/fuzz/fuzz.h"

#include "spawner/testsum.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int exits[] = {0, 1, 2, 101};
	static const char *const formats[] = {"cargo", "pytest", "unittest", "go", "tap", "plain"};
	spw_testsum s;
	char *copy;
	int exit_code, known = 0;

	if (size < 1)
		return 0;
	exit_code = exits[data[0] % 4];
	/* an exact copy, so ASan sees a read past the end */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		abort();
	memcpy(copy, data + 1, size - 1);
	spw_testsum_parse(copy, size - 1, exit_code, &s);
	free(copy);

	FZ_CHECK(s.exit_code == exit_code, "exit %d, given %d", s.exit_code, exit_code);
	FZ_CHECK(memchr(s.format, '\0', sizeof(s.format)), "format not terminated");
	if (strcmp(s.format, "exit") == 0) {
		FZ_CHECK(s.passed == -1 && s.failed == -1 && s.skipped == -1 && s.total == -1,
			 "unknown counts are %d/%d/%d/%d", s.passed, s.failed, s.skipped, s.total);
		FZ_CHECK(s.ok == (exit_code == 0), "ok %d with exit %d", s.ok, exit_code);
		return 0;
	}
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		known |= strcmp(s.format, formats[i]) == 0;
	FZ_CHECK(known, "format '%s'", s.format);
	FZ_CHECK(s.passed >= 0 && s.failed >= 0 && s.skipped >= 0,
		 "negative counts %d passed, %d failed, %d skipped (%s)", s.passed, s.failed,
		 s.skipped, s.format);
	FZ_CHECK(s.passed <= 1000000000 && s.failed <= 1000000000 && s.skipped <= 1000000000,
		 "counts above a billion");
	FZ_CHECK((long)s.total == ((long)s.passed + s.failed > 1000000000L ? 1000000000L
									    : (long)s.passed + s.failed),
		 "total %d, %d passed, %d failed", s.total, s.passed, s.failed);
	FZ_CHECK(s.ok == (exit_code == 0 && s.failed == 0), "ok %d with exit %d and %d failed",
		 s.ok, exit_code, s.failed);
	FZ_CHECK(memchr(s.failing, '\0', sizeof(s.failing)), "failing names not terminated");
	{
		int names = 0;
		for (const char *p = s.failing; *p;) {
			size_t n = strcspn(p, "\n");
			char name[512];
			FZ_CHECK(n > 0 && n < sizeof(name) && p[n] == '\n', "a bad name line");
			memcpy(name, p, n);
			name[n] = '\0';
			p += n + 1;
			FZ_CHECK(!spw_testsum_named(p, name), "the name '%s' twice", name);
			names++;
		}
		FZ_CHECK(!s.failing_known || names == s.failed, "%d names known for %d failures",
			 names, s.failed);
	}
	return 0;
}
