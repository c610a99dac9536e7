/* Acceptance tests of c-base64. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

static int failures;
#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                \
		}                                                                  \
	} while (0)

static void vector(const char *plain, const char *enc)
{
	char *e = b64_encode((const unsigned char *)plain, strlen(plain));
	if (!e || strcmp(e, enc) != 0) {
		printf("FAIL encode(\"%s\") = \"%s\", want \"%s\"\n", plain, e ? e : "(null)", enc);
		failures++;
	}
	free(e);
	size_t n = 999;
	unsigned char *d = b64_decode(enc, &n);
	if (!d || n != strlen(plain) || memcmp(d, plain, n) != 0) {
		printf("FAIL decode(\"%s\") is not \"%s\"\n", enc, plain);
		failures++;
	}
	free(d);
}

static void test_rfc_vectors(void)
{
	vector("", "");
	vector("f", "Zg==");
	vector("fo", "Zm8=");
	vector("foo", "Zm9v");
	vector("foob", "Zm9vYg==");
	vector("fooba", "Zm9vYmE=");
	vector("foobar", "Zm9vYmFy");
	vector("Many hands make light work.", "TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu");
}

static void test_binary(void)
{
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	char *e = b64_encode(all, 3);
	CHECK(e && strcmp(e, "AAEC") == 0);
	free(e);
	unsigned char hi[] = {0xff, 0xfe, 0xfd, 0xfc};
	e = b64_encode(hi, 4);
	CHECK(e && strcmp(e, "//79/A==") == 0);
	free(e);
	unsigned seed = 99;
	for (size_t len = 0; len < 300; len++) {
		unsigned char buf[300];
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (unsigned char)(seed >> 16);
		}
		char *enc = b64_encode(buf, len);
		size_t n = 12345;
		unsigned char *dec = enc ? b64_decode(enc, &n) : NULL;
		if (!enc || strlen(enc) != (len + 2) / 3 * 4 || !dec || n != len ||
		    (len && memcmp(dec, buf, len) != 0)) {
			printf("FAIL round trip of %zu random bytes\n", len);
			failures++;
		}
		free(enc);
		free(dec);
	}
}

static void test_big(void)
{
	size_t len = 3 * 1000 * 1000 + 1;
	unsigned char *buf = malloc(len);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7);
	char *enc = b64_encode(buf, len);
	size_t n = 0;
	unsigned char *dec = enc ? b64_decode(enc, &n) : NULL;
	CHECK(dec && n == len && memcmp(dec, buf, len) == 0);
	free(enc);
	free(dec);
	free(buf);
}

static void test_invalid(void)
{
	const char *bad[] = {
		"Zg=", "Zg", "Z", "Zm9vY", "Zg=a", "Z===", "====", "Zm9v!mFy", "Zm9v YmFy",
		"Zm9vYmFy\n", "Zm=vYmFy", "Zm9vYg=\n", "Zh==", "Zm9=", "Zm9vYm-y", "Zm9vYm_y",
		"\xc3\xa9\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 0;
		unsigned char *d = b64_decode(bad[i], &n);
		if (d) {
			printf("FAIL decode(\"%s\") accepted invalid base64\n", bad[i]);
			failures++;
			free(d);
		}
	}
}

int main(void)
{
	test_rfc_vectors();
	test_binary();
	test_big();
	test_invalid();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("all base64 checks passed\n");
	return 0;
}
