#include "spawner/testsum.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts are held to a billion: output may write any number, and sums of
 * such numbers must neither overflow nor turn negative. */
#define COUNT_MAX 1000000000L

/* a + b for counts, held to COUNT_MAX. */
static int add(long a, long b)
{
	a = a < 0 ? 0 : a > COUNT_MAX ? COUNT_MAX : a;
	b = b < 0 ? 0 : b > COUNT_MAX ? COUNT_MAX : b;
	return (int)(a + b > COUNT_MAX ? COUNT_MAX : a + b);
}

/* A line of the output: [s, e). */
typedef struct line {
	const char *s, *e;
} line;

/* Iterates over lines: returns 0 at the end. */
static int next_line(const char **p, const char *end, line *out)
{
	const char *nl;

	if (*p >= end)
		return 0;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	out->s = *p;
	out->e = nl ? nl : end;
	if (out->e > out->s && out->e[-1] == '\r')
		out->e--;
	*p = nl ? nl + 1 : end;
	return 1;
}

static int starts(const line *l, const char *prefix)
{
	size_t n = strlen(prefix);
	return (size_t)(l->e - l->s) >= n && memcmp(l->s, prefix, n) == 0;
}

/* Finds `needle` within the line; NULL when absent. */
static const char *find(const line *l, const char *needle)
{
	size_t n = strlen(needle);

	for (const char *p = l->s; p + n <= l->e; p++)
		if (memcmp(p, needle, n) == 0)
			return p;
	return NULL;
}

/* Copies the line into out[cap] as a C string; 0 when it does not fit. */
static int line_str(const line *l, char *out, size_t cap)
{
	size_t n = (size_t)(l->e - l->s);

	if (n >= cap)
		return 0;
	memcpy(out, l->s, n);
	out[n] = '\0';
	return 1;
}

/* The number after `key` ("failures=") on the line, or 0. */
static int count_after(const line *l, const char *key)
{
	const char *p = find(l, key);
	long v = 0;

	if (!p)
		return 0;
	for (p += strlen(key); p < l->e && isdigit((unsigned char)*p) && v < 2000000000L; p++)
		v = v * 10 + (*p - '0');
	return add(v, 0);
}

/* Reads "N word" items separated by ", " from s (cargo uses "; "), adding
 * each count to the field its word names. Returns the number of items, or
 * -1 when an item is not "N word". */
static int count_items(const char *s, const char *sep, spw_testsum *o, int strict)
{
	int items = 0;

	while (*s) {
		long v;
		char *e;
		const char *w;
		size_t wl;

		while (*s == ' ')
			s++;
		if (!isdigit((unsigned char)*s))
			return strict ? -1 : items;
		v = strtol(s, &e, 10);
		if (*e != ' ' || v < 0 || v > 2000000000L)
			return -1;
		w = e + 1;
		wl = strcspn(w, sep);
		if (wl >= 6 && strncmp(w, "passed", 6) == 0)
			o->passed = add(o->passed, v);
		else if ((wl >= 6 && strncmp(w, "failed", 6) == 0) ||
			 (wl >= 5 && strncmp(w, "error", 5) == 0))
			o->failed = add(o->failed, v);
		else if ((wl >= 7 && strncmp(w, "skipped", 7) == 0) ||
			 (wl >= 7 && strncmp(w, "ignored", 7) == 0))
			o->skipped = add(o->skipped, v);
		else if (!(wl >= 7 && (strncmp(w, "xfailed", 7) == 0 ||
				       strncmp(w, "xpassed", 7) == 0 ||
				       strncmp(w, "warning", 7) == 0 ||
				       strncmp(w, "measured", 8) == 0 ||
				       strncmp(w, "filtered", 8) == 0 ||
				       strncmp(w, "deselect", 8) == 0)) &&
			 !(wl >= 5 && strncmp(w, "rerun", 5) == 0))
			return -1;
		items++;
		s = w + wl;
		while (*s && strchr(sep, *s))
			s++;
	}
	return items;
}

/* Reads a non-negative decimal number at *p (at most 9 digits, so no
 * overflow) and moves *p past it. 0 when there is none. */
static int read_count(const char **p, int *out)
{
	long v = 0;
	int digits = 0;

	while (isdigit((unsigned char)**p) && digits < 9) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0 || isdigit((unsigned char)**p))
		return 0;
	*out = (int)v;
	return 1;
}

/* Moves *p past `word` when the text there starts with it. */
static int skip_word(const char **p, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(*p, word, n) != 0)
		return 0;
	*p += n;
	return 1;
}

static int max0(int v)
{
	return v < 0 ? 0 : v;
}

static int parse_cargo(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int found = 0;

	while (next_line(&p, end, &l)) {
		char b[512];
		const char *items;

		if (!starts(&l, "test result: ") || !line_str(&l, b, sizeof(b)))
			continue;
		items = strstr(b, ". ");
		if (!items)
			continue;
		if (count_items(items + 2, ";", o, 0) > 0)
			found = 1;
	}
	return found;
}

/* pytest's summary line: "=== 1 failed, 2 passed, 1 error in 0.12s ===",
 * "2 passed in 0.05s" (-q), "=== no tests ran in 0.01s ===". The last wins. */
static int parse_pytest(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int found = 0;

	while (next_line(&p, end, &l)) {
		char b[512];
		char *s, *e, *in;
		spw_testsum t;

		if (!line_str(&l, b, sizeof(b)))
			continue;
		s = b;
		while (*s == '=' || *s == ' ')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '=' || e[-1] == ' '))
			e--;
		*e = '\0';
		in = strstr(s, " in ");
		/* " in 0.12s" or " in 61.2s (0:01:01)" */
		if (!in || !isdigit((unsigned char)in[4]) || !strchr(in + 4, 's'))
			continue;
		*in = '\0';
		memset(&t, 0, sizeof(t));
		if (strcmp(s, "no tests ran") != 0 && count_items(s, ",", &t, 1) <= 0)
			continue;
		o->passed = t.passed;
		o->failed = t.failed;
		o->skipped = t.skipped;
		found = 1;
	}
	return found;
}

static int parse_unittest(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int ran = -1, failed = 0, skipped = 0, verdict = 0;

	while (next_line(&p, end, &l)) {
		char b[256];
		int n;

		if (!line_str(&l, b, sizeof(b)))
			continue;
		const char *q = b;

		if (skip_word(&q, "Ran ") && read_count(&q, &n) && skip_word(&q, " test") &&
		    strstr(b, " in ")) {
			ran = n;
			verdict = 0;
			failed = skipped = 0;
		} else if (ran >= 0 && (starts(&l, "OK") || starts(&l, "FAILED"))) {
			verdict = 1;
			failed = add(count_after(&l, "failures="), count_after(&l, "errors="));
			skipped = count_after(&l, "skipped=");
		}
	}
	if (ran < 0 || !verdict)
		return 0;
	o->skipped = skipped;
	o->failed = failed;
	o->passed = max0(ran - failed - skipped);
	return 1;
}

static int parse_go(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int found = 0;

	while (next_line(&p, end, &l)) {
		const char *s = l.s;

		while (s < l.e && (*s == ' ' || *s == '\t'))
			s++;
		if ((size_t)(l.e - s) < 9 || memcmp(s, "--- ", 4) != 0)
			continue;
		if (memcmp(s + 4, "PASS:", 5) == 0) {
			o->passed = add(o->passed, 1);
			found = 1;
		} else if (memcmp(s + 4, "FAIL:", 5) == 0) {
			o->failed = add(o->failed, 1);
			found = 1;
		} else if (memcmp(s + 4, "SKIP:", 5) == 0) {
			o->skipped = add(o->skipped, 1);
			found = 1;
		}
	}
	return found;
}

static int parse_tap(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int found = 0, plan = -1;

	while (next_line(&p, end, &l)) {
		int not_ok = starts(&l, "not ok");
		int ok = !not_ok && starts(&l, "ok");
		const char *after;

		if (starts(&l, "1..")) {
			char tmp[16];
			size_t n = (size_t)(l.e - l.s - 3);
			char *e;
			long v;

			if (n > 0 && n < sizeof(tmp)) {
				memcpy(tmp, l.s + 3, n);
				tmp[n] = '\0';
				v = strtol(tmp, &e, 10);
				if (e != tmp && (*e == '\0' || *e == ' ' || *e == '#') && v >= 0)
					plan = add(v, 0);
			}
			continue;
		}
		if (!ok && !not_ok)
			continue;
		after = l.s + (not_ok ? 6 : 2);
		if (after < l.e && *after != ' ')
			continue; /* "okay", "nothing" */
		found = 1;
		if (find(&l, "# SKIP") || find(&l, "# skip"))
			o->skipped = add(o->skipped, 1);
		else if (not_ok && !find(&l, "# TODO"))
			o->failed = add(o->failed, 1);
		else
			o->passed = add(o->passed, 1);
	}
	if (found && plan > add(add(o->passed, o->failed), o->skipped)) /* tests never reported */
		o->failed = add(o->failed, plan - add(add(o->passed, o->failed), o->skipped));
	return found;
}

/* "N passed, N failed" alone on a line, optionally ", N skipped" and a
 * "word:" before it. The last such line counts. */
static int parse_plain(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	line l;
	int found = 0;

	while (next_line(&p, end, &l)) {
		const char *s = l.s;
		int a, b, c = 0;
		const char *q;
		char buf[160];
		size_t len;

		/* skip "word: " */
		for (const char *r = s; r < l.e && r - s < 40; r++) {
			if (*r == ':' && r + 1 < l.e && r[1] == ' ') {
				int word = 1;
				for (const char *w = s; w < r; w++)
					if (!isalnum((unsigned char)*w) && *w != '_' && *w != '-')
						word = 0;
				if (word && r > s)
					s = r + 2;
				break;
			}
			if (*r == ' ')
				break;
		}
		len = (size_t)(l.e - s);
		if (len == 0 || len >= sizeof(buf))
			continue;
		memcpy(buf, s, len);
		buf[len] = '\0';
		q = buf;
		if (!read_count(&q, &a) || !skip_word(&q, " passed, ") || !read_count(&q, &b) ||
		    !skip_word(&q, " failed"))
			continue;
		if (*q && (!skip_word(&q, ", ") || !read_count(&q, &c) || !skip_word(&q, " skipped") ||
			   *q))
			continue;
		o->passed = a;
		o->failed = b;
		o->skipped = c;
		found = 1;
	}
	return found;
}

/* --- the failing tests' names --- */

/* The name of a failing test on line `l` in `format`, into out[cap]; 0
 * when the line names none. */
static int failing_name(const line *l, const char *format, char *out, size_t cap)
{
	const char *s = l->s, *e = l->e, *m;

	if (strcmp(format, "unittest") == 0 && (starts(l, "FAIL: ") || starts(l, "ERROR: "))) {
		s += starts(l, "FAIL: ") ? 6 : 7;
	} else if (strcmp(format, "pytest") == 0 && (starts(l, "FAILED ") || starts(l, "ERROR "))) {
		s += starts(l, "FAILED ") ? 7 : 6;
		m = find(&(line){s, e}, " - ");
		e = m ? m : e;
	} else if (strcmp(format, "go") == 0) {
		while (s < e && (*s == ' ' || *s == '	'))
			s++;
		if ((size_t)(e - s) < 10 || memcmp(s, "--- FAIL: ", 10) != 0)
			return 0;
		s += 10;
		m = find(&(line){s, e}, " (");
		e = m ? m : e;
	} else if (strcmp(format, "cargo") == 0 && starts(l, "test ") &&
		   (size_t)(e - s) > 16 && memcmp(e - 11, " ... FAILED", 11) == 0) {
		s += 5;
		e -= 11;
	} else if (strcmp(format, "tap") == 0 && starts(l, "not ok") && !find(l, "# TODO") &&
		   !find(l, "# SKIP") && !find(l, "# skip")) {
		s += 6;
		while (s < e && (*s == ' ' || isdigit((unsigned char)*s)))
			s++;
		if (s + 1 < e && *s == '-' && s[1] == ' ')
			s += 2;
	} else {
		return 0;
	}
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e <= s || (size_t)(e - s) >= cap || memchr(s, '\0', (size_t)(e - s)))
		return 0; /* none, too long, or not text */
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return 1;
}

int spw_testsum_named(const char *names, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = names; p && *p;) {
		size_t k = strcspn(p, "\n");
		if (k == n && memcmp(p, name, n) == 0)
			return 1;
		p += k + (p[k] ? 1 : 0);
	}
	return 0;
}

/* Names the failing tests of a parsed run; failing_known when there are
 * as many names (each once) as failures. */
static void collect_failing(const char *text, const char *end, spw_testsum *o)
{
	const char *p = text;
	size_t used = 0;
	int n = 0;
	line l;

	o->failing[0] = '\0';
	while (next_line(&p, end, &l)) {
		char name[512];
		if (!failing_name(&l, o->format, name, sizeof(name)) ||
		    spw_testsum_named(o->failing, name))
			continue;
		if (used + strlen(name) + 2 > sizeof(o->failing)) {
			n = -1; /* more than fit: not all named */
			break;
		}
		used += (size_t)snprintf(o->failing + used, sizeof(o->failing) - used, "%s\n", name);
		n++;
	}
	o->failing_known = o->failed >= 0 && n == o->failed;
}

void spw_testsum_parse(const char *text, size_t len, int exit_code, spw_testsum *out)
{
	const char *end = text + len;
	static const struct {
		const char *name;
		int (*fn)(const char *, const char *, spw_testsum *);
	} formats[] = {
		{"cargo", parse_cargo}, {"pytest", parse_pytest}, {"unittest", parse_unittest},
		{"go", parse_go},       {"tap", parse_tap},       {"plain", parse_plain},
	};

	memset(out, 0, sizeof(*out));
	out->exit_code = exit_code;
	for (size_t i = 0; text && i < sizeof(formats) / sizeof(formats[0]); i++) {
		spw_testsum t;

		memset(&t, 0, sizeof(t));
		if (formats[i].fn(text, end, &t)) {
			t.exit_code = exit_code;
			snprintf(t.format, sizeof(t.format), "%s", formats[i].name);
			t.total = add(t.passed, t.failed);
			t.ok = exit_code == 0 && t.failed == 0;
			collect_failing(text, end, &t);
			*out = t;
			return;
		}
	}
	snprintf(out->format, sizeof(out->format), "exit");
	out->passed = out->failed = out->skipped = out->total = -1;
	out->ok = exit_code == 0;
}
