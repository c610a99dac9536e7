#include "b64.h"

#include <stdlib.h>
#include <string.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const unsigned char *data, size_t len)
{
	size_t outlen = (len + 2) / 3 * 4;
	char *out = malloc(outlen + 1), *w = out;
	if (!out)
		return NULL;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
		*w++ = ALPHABET[v >> 18 & 63];
		*w++ = ALPHABET[v >> 12 & 63];
		*w++ = ALPHABET[v >> 6 & 63];
		*w++ = ALPHABET[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)data[i] << 16;
		*w++ = ALPHABET[v >> 18 & 63];
		*w++ = ALPHABET[v >> 12 & 63];
		*w++ = '=';
		*w++ = '=';
	} else if (len - i == 2) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
		*w++ = ALPHABET[v >> 18 & 63];
		*w++ = ALPHABET[v >> 12 & 63];
		*w++ = ALPHABET[v >> 6 & 63];
		*w++ = '=';
	}
	*w = '\0';
	return out;
}

static int value(char c)
{
	const char *p = c ? strchr(ALPHABET, c) : NULL;
	return p ? (int)(p - ALPHABET) : -1;
}

unsigned char *b64_decode(const char *text, size_t *out_len)
{
	size_t len = strlen(text);
	if (len % 4 != 0)
		return NULL;
	size_t pad = 0;
	if (len >= 1 && text[len - 1] == '=')
		pad++;
	if (len >= 2 && text[len - 2] == '=')
		pad++;
	unsigned char *out = malloc(len / 4 * 3 + 1), *w = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 4) {
		int last = i + 4 == len;
		int v[4];
		for (int k = 0; k < 4; k++) {
			if (last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = value(text[i + k]);
			if (v[k] < 0)
				goto bad;
		}
		unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		*w++ = (unsigned char)(x >> 16);
		if (!last || pad < 2)
			*w++ = (unsigned char)(x >> 8);
		if (!last || pad < 1)
			*w++ = (unsigned char)x;
		/* the bits of the last character that fall outside the bytes must be zero */
		if (last && pad == 1 && (v[2] & 3))
			goto bad;
		if (last && pad == 2 && (v[1] & 15))
			goto bad;
	}
	*out_len = (size_t)(w - out);
	return out;
bad:
	free(out);
	return NULL;
}
