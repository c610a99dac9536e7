/*
 * log — levelled logging, one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-21T20:01:02.123Z","level":"info","mod":"engine","pid":42,"msg":"run 7 done"}
 *
 * Each line is formatted in memory and written with one write(2), so lines
 * from several threads or processes never interleave. Every message passes
 * redact_buf() (core/redact.h) before it is written: core does not know
 * which values are secret, only that the secrets module does.
 * ORCH_LOG_FORMAT=text gives "ts level mod: msg" lines for people.
 */
#ifndef ORCH_CORE_LOG_H
#define ORCH_CORE_LOG_H

#include <stdarg.h>


enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Parses "debug", "info", "warn", "error" or "off"; -1 when unknown. */
int log_level_parse(const char *s);

/* Sets the minimum level and the format (0 JSON, 1 text). Not thread-safe
 * against concurrent logging; call at start-up. */
void log_configure(int level, int text_format);
int log_level_get(void);

/* Writes one line if `level` is enabled. `mod` names the module ("engine"). */
void log_write(int level, const char *mod, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_writev(int level, const char *mod, const char *fmt, va_list ap);

#define log_debug(mod, ...) log_write(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_write(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write(LOG_ERROR, mod, __VA_ARGS__)

#endif
