/*
 * fuzz — what the libFuzzer targets share: a property check that stops the
 * run with a message (libFuzzer then saves the input), quiet logging, and
 * small readers for splitting one input into several values.
 *
 * Each target defines LLVMFuzzerTestOneInput and checks properties of the
 * parser it drives (a round trip, the same result split or whole, a
 * secret never left), not only that it does not crash; ASan and UBSan
 * catch the memory and undefined-behaviour errors on the way.
 */
#ifndef ORCH_TESTS_FUZZ_H
#define ORCH_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the run when a property does not hold: the message, then abort()
 * (libFuzzer reports a deadly signal and writes the input out). */
#define FZ_CHECK(cond, ...)                                                                    \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "FUZZ CHECK failed at %s:%d: %s\n    ", __FILE__,      \
				__LINE__, #cond);                                              \
			fprintf(stderr, __VA_ARGS__);                                          \
			fputc('\n', stderr);                                                   \
			abort();                                                               \
		}                                                                              \
	} while (0)

/* Logging off: the parsers log what they skip, and a line per input would
 * slow the run to a crawl. */
static inline void fz_quiet(void)
{
	log_configure(LOG_OFF, 1);
}

/* A copy of data[0..n) with a NUL after it (caller frees); the parsers that
 * take C strings get exactly the bytes up to the first NUL. */
static inline char *fz_str(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* Splits data at the first occurrence of `sep` (one byte): the part before
 * into *a (n_a bytes), the rest into *b. Without the separator, everything
 * is *a and *b is empty. */
static inline void fz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **a,
			    size_t *na, const uint8_t **b, size_t *nb)
{
	const uint8_t *p = memchr(data, sep, size);

	*a = data;
	if (!p) {
		*na = size;
		*b = data + size;
		*nb = 0;
		return;
	}
	*na = (size_t)(p - data);
	*b = p + 1;
	*nb = size - *na - 1;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF), else 0. */
static inline int fz_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t k;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + k >= n)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

#endif
