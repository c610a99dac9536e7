/* ini: reads INI files into memory.
 *
 *   ; comment            # comment
 *   name = global        (keys before any header are in section "")
 *   [server]
 *   host = example.org
 *   port = 8080
 *
 * Section names and keys are compared without regard to case; values keep
 * their case. Spaces around keys and values are trimmed. A key set twice in
 * a section keeps the last value. */
#ifndef INI_H
#define INI_H

#include <stddef.h>

typedef struct ini ini;

/* Parses TEXT. NULL on error, with a message "line N: ..." in ERR (ERRLEN
 * bytes, may be 0). Free the result with ini_free. */
ini *ini_parse(const char *text, char *err, size_t errlen);
/* Reads and parses the file at PATH; NULL on error with a message in ERR. */
ini *ini_load(const char *path, char *err, size_t errlen);
/* Frees an ini; NULL is fine. */
void ini_free(ini *f);

/* The value of KEY in SECTION ("" for keys before any header), borrowed
 * until ini_free; NULL when absent. */
const char *ini_get(const ini *f, const char *section, const char *key);
/* The value of KEY in SECTION as a long in *OUT: 0, or -1 when it is absent
 * or not a whole number (*OUT untouched). */
int ini_get_long(const ini *f, const char *section, const char *key, long *out);
/* The value as a boolean (true/yes/on/1 or false/no/off/0): 0, or -1. */
int ini_get_bool(const ini *f, const char *section, const char *key, int *out);

/* The number of sections ("" counts when it has keys) and their names, in
 * the order they first appear. */
size_t ini_section_count(const ini *f);
const char *ini_section_name(const ini *f, size_t i);

#endif
