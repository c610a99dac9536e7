/* strutil: split, join and trim C strings. Returned memory belongs to the
 * caller (free(), or str_split_free for str_split's array). */
#ifndef STRUTIL_H
#define STRUTIL_H

#include <stddef.h>

/* The parts of S between occurrences of SEP (non-empty), as a NULL-terminated
 * array of new strings; *COUNT (if COUNT) gets their number. Empty parts are
 * kept. NULL when SEP is empty or memory runs out. */
char **str_split(const char *s, const char *sep, size_t *count);
/* Frees an array from str_split; NULL is fine. */
void str_split_free(char **parts);
/* The N PARTS with SEP between them, as a new string; NULL when out of memory. */
char *str_join(const char *const *parts, size_t n, const char *sep);
/* A new copy of S without leading and trailing whitespace. */
char *str_trim(const char *s);

#endif
