/*
 * buf — the one growable byte buffer, with a hard size cap.
 *
 * Used for HTTP bodies, messages, log lines and SQL parameters. The contents
 * are always NUL-terminated (the terminator is not counted in len), so a
 * buffer holding text can be passed as a C string. Appending past the cap
 * fails with ERR_TOOBIG and leaves the buffer unchanged, so a hostile peer
 * cannot make the process allocate without bound.
 */
#ifndef ORCH_CORE_BUF_H
#define ORCH_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
	char *data;  /* NUL-terminated; NULL until the first append */
	size_t len;  /* bytes used, without the terminator */
	size_t cap;  /* bytes allocated */
	size_t max;  /* hard cap on len; 0 means BUF_DEFAULT_MAX */
} buf;

#define BUF_DEFAULT_MAX ((size_t)64 << 20) /* 64 MiB */

/* Initialises an empty buffer whose length may never exceed `max` bytes
 * (0: BUF_DEFAULT_MAX). Allocates nothing. */
void buf_init(buf *b, size_t max);

/* Frees the storage and returns the buffer to the empty state. The memory
 * is wiped first when `wipe` is set (for buffers that held secrets). */
void buf_free(buf *b);
void buf_free_wipe(buf *b);

/* Sets len to 0 and keeps the storage. */
void buf_reset(buf *b);

/* Makes room for `extra` more bytes. ERR_TOOBIG past the cap, ERR_NOMEM. */
int buf_reserve(buf *b, size_t extra);

int buf_append(buf *b, const void *data, size_t n);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);

/* Appends `s` as the body of a JSON string (quotes not included), escaping
 * control characters, quotes and backslashes. A byte that does not begin a
 * well-formed UTF-8 sequence becomes \ufffd (U+FFFD), so the result is valid
 * JSON whatever `s` holds (a command's binary output, say). */
int buf_put_json_str(buf *b, const char *s);

/* Returns the contents as a NUL-terminated string ("" when empty). Borrowed. */
const char *buf_cstr(const buf *b);

/* Hands the storage to the caller (who frees it with free()) and leaves the
 * buffer empty. Returns NULL only on allocation failure of an empty buffer. */
char *buf_steal(buf *b);

#endif
