#include "strutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static char *copy_n(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

char **str_split(const char *s, const char *sep, size_t *count)
{
	size_t seplen = strlen(sep);
	if (seplen == 0)
		return NULL;
	size_t n = 1;
	for (const char *p = strstr(s, sep); p; p = strstr(p + seplen, sep))
		n++;
	char **parts = calloc(n + 1, sizeof(*parts));
	if (!parts)
		return NULL;
	const char *start = s;
	for (size_t i = 0; i < n; i++) {
		const char *end = i + 1 < n ? strstr(start, sep) : start + strlen(start);
		parts[i] = copy_n(start, (size_t)(end - start));
		if (!parts[i]) {
			str_split_free(parts);
			return NULL;
		}
		start = end + seplen;
	}
	if (count)
		*count = n;
	return parts;
}

void str_split_free(char **parts)
{
	if (!parts)
		return;
	for (char **p = parts; *p; p++)
		free(*p);
	free(parts);
}

char *str_join(const char *const *parts, size_t n, const char *sep)
{
	size_t seplen = strlen(sep), total = 1;
	for (size_t i = 0; i < n; i++)
		total += strlen(parts[i]) + (i ? seplen : 0);
	char *out = malloc(total), *w = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (i) {
			memcpy(w, sep, seplen);
			w += seplen;
		}
		size_t len = strlen(parts[i]);
		memcpy(w, parts[i], len);
		w += len;
	}
	*w = '\0';
	return out;
}

char *str_trim(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return copy_n(s, n);
}
