#include "core/log.h"
#include "core/buf.h"
#include "core/redact.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_level = LOG_INFO;
static int g_text;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LOG_WARN;
	if (strcmp(s, "off") == 0)
		return LOG_OFF;
	return -1;
}

void log_configure(int level, int text_format)
{
	g_level = level;
	g_text = text_format;
}

int log_level_get(void)
{
	return g_level;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void log_writev(int level, const char *mod, const char *fmt, va_list ap)
{
	char ts[40];
	struct timespec now;
	struct tm tm;
	buf msg, line;

	if (level < g_level || level < LOG_DEBUG || level > LOG_ERROR)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 now.tv_nsec / 1000000);

	buf_init(&msg, 64 << 10);
	buf_init(&line, 128 << 10);
	if (buf_vprintf(&msg, fmt, ap) < 0) {
		buf_reset(&msg);
		buf_puts(&msg, "(log message too long)");
	}
	redact_buf(&msg);
	if (g_text) {
		buf_printf(&line, "%s %-5s %s: %s\n", ts, level_names[level], mod,
			   buf_cstr(&msg));
	} else {
		buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"", ts,
			   level_names[level]);
		buf_put_json_str(&line, mod);
		buf_printf(&line, "\",\"pid\":%d,\"msg\":\"", (int)getpid());
		buf_put_json_str(&line, buf_cstr(&msg));
		buf_puts(&line, "\"}\n");
	}
	write_all(2, buf_cstr(&line), line.len);
	buf_free_wipe(&msg);
	buf_free_wipe(&line);
}

void log_write(int level, const char *mod, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_writev(level, mod, fmt, ap);
	va_end(ap);
}
