/* b64: base64 (RFC 4648, standard alphabet, '=' padding). Returned buffers
 * belong to the caller (free()). */
#ifndef B64_H
#define B64_H

#include <stddef.h>

/* DATA as a new NUL-terminated base64 string; NULL when out of memory. */
char *b64_encode(const unsigned char *data, size_t len);
/* The bytes of canonical base64 TEXT as a new buffer, their number in
 * *OUT_LEN; NULL when TEXT is not canonical base64 or memory runs out. */
unsigned char *b64_decode(const char *text, size_t *out_len);

#endif
