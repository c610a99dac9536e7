#include "core/utf8.h"

#include <string.h>

size_t utf8_seq(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len;

	if (n == 0)
		return 0;
	len = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
	    : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return len;
}

void utf8_excerpt(char *out, size_t cap, const char *s, size_t n, size_t max)
{
	size_t k = 0, i = 0;

	if (cap == 0)
		return;
	while (i < n && k + 1 < cap && k < max) {
		size_t len = utf8_seq(s + i, n - i);
		unsigned char c = (unsigned char)s[i];

		if (len > 1) {
			if (k + len + 1 > cap || k + len > max)
				break;
			memcpy(out + k, s + i, len);
			k += len;
			i += len;
			continue;
		}
		out[k++] = len == 0 ? '?' : (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
		i++;
	}
	out[k] = '\0';
}

void utf8_fit(char *s)
{
	size_t n = strlen(s), i = n, back = 0;

	while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i > 0 && (unsigned char)s[i - 1] >= 0xc0 && utf8_seq(s + i - 1, n - i + 1) == 0)
		s[i - 1] = '\0';
}
