#include "ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct entry {
	char *section;
	char *key;
	char *value;
};

struct ini {
	struct entry *entries;
	size_t len, cap;
	char **sections;
	size_t nsections, capsections;
};

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* S[0..N) without leading and trailing white space: returns the start, sets *N */
static const char *trim(const char *s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)*s)) {
		s++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)s[*n - 1]))
		(*n)--;
	return s;
}

static void set_err(char *err, size_t errlen, int line, const char *msg)
{
	if (errlen > 0)
		snprintf(err, errlen, "line %d: %s", line, msg);
}

static int add_section(ini *f, const char *name)
{
	for (size_t i = 0; i < f->nsections; i++)
		if (strcasecmp(f->sections[i], name) == 0)
			return 0;
	if (f->nsections == f->capsections) {
		size_t cap = f->capsections ? 2 * f->capsections : 8;
		char **s = realloc(f->sections, cap * sizeof(*s));
		if (!s)
			return -1;
		f->sections = s;
		f->capsections = cap;
	}
	f->sections[f->nsections] = dup_n(name, strlen(name));
	if (!f->sections[f->nsections])
		return -1;
	f->nsections++;
	return 0;
}

static struct entry *find(const ini *f, const char *section, const char *key)
{
	size_t want = strlen(section);
	for (size_t i = 0; i < f->len; i++) {
		struct entry *e = &f->entries[i];
		if (strncasecmp(e->section, section, want) == 0 && strcasecmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static int set(ini *f, const char *section, const char *key, size_t keylen, const char *value,
	       size_t valuelen)
{
	char *k = dup_n(key, keylen), *v = dup_n(value, valuelen);
	if (!k || !v)
		goto fail;
	struct entry *e = find(f, section, k);
	if (e && strcasecmp(e->section, section) == 0) {
		free(e->value);
		e->value = v;
		free(k);
		return 0;
	}
	if (f->len == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct entry *n = realloc(f->entries, cap * sizeof(*n));
		if (!n)
			goto fail;
		f->entries = n;
		f->cap = cap;
	}
	char *s = dup_n(section, strlen(section));
	if (!s || add_section(f, section) < 0) {
		free(s);
		goto fail;
	}
	f->entries[f->len++] = (struct entry){s, k, v};
	return 0;
fail:
	free(k);
	free(v);
	return -1;
}

ini *ini_parse(const char *text, char *err, size_t errlen)
{
	ini *f = calloc(1, sizeof(*f));
	char section[256] = "";
	int line = 0;
	if (!f) {
		set_err(err, errlen, 0, "out of memory");
		return NULL;
	}
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		const char *s = trim(p, &n);
		line++;
		p = eol ? eol + 1 : p + strlen(p);
		if (n == 0 || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			if (s[n - 1] != ']') {
				set_err(err, errlen, line, "a section header without ']'");
				goto fail;
			}
			size_t m = n - 2;
			const char *name = trim(s + 1, &m);
			if (m == 0 || m >= sizeof(section)) {
				set_err(err, errlen, line, m ? "a section name too long" : "an empty section name");
				goto fail;
			}
			memcpy(section, name, m);
			section[m] = '\0';
			continue;
		}
		const char *eq = memchr(s, '=', n);
		if (!eq) {
			set_err(err, errlen, line, "expected key = value");
			goto fail;
		}
		size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
		const char *k = trim(s, &klen);
		const char *v = trim(eq + 1, &vlen);
		if (klen == 0) {
			set_err(err, errlen, line, "an empty key");
			goto fail;
		}
		if (set(f, section, k, klen, v, vlen) < 0) {
			set_err(err, errlen, line, "out of memory");
			goto fail;
		}
	}
	return f;
fail:
	ini_free(f);
	return NULL;
}

ini *ini_load(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	ini *f = NULL;
	if (!fp) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 4096;
	buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + len, 1, cap - len - 1, fp);
		len += got;
		if (len + 1 < cap)
			break;
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if (!buf) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: out of memory", path);
	} else if (ferror(fp)) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: read error", path);
	} else {
		buf[len] = '\0';
		f = ini_parse(buf, err, errlen);
	}
	free(buf);
	fclose(fp);
	return f;
}

void ini_free(ini *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->len; i++) {
		free(f->entries[i].section);
		free(f->entries[i].key);
		free(f->entries[i].value);
	}
	for (size_t i = 0; i < f->nsections; i++)
		free(f->sections[i]);
	free(f->entries);
	free(f->sections);
	free(f);
}

const char *ini_get(const ini *f, const char *section, const char *key)
{
	const struct entry *e = find(f, section, key);
	return e ? e->value : NULL;
}

int ini_get_long(const ini *f, const char *section, const char *key, long *out)
{
	const char *v = ini_get(f, section, key);
	if (!v || !*v)
		return -1;
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

int ini_get_bool(const ini *f, const char *section, const char *key, int *out)
{
	static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
	const char *v = ini_get(f, section, key);
	if (!v)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

size_t ini_section_count(const ini *f)
{
	return f->nsections;
}

const char *ini_section_name(const ini *f, size_t i)
{
	return i < f->nsections ? f->sections[i] : NULL;
}
