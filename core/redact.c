#include "core/redact.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic(redact_fn) g_filter;

void redact_set(redact_fn fn)
{
	atomic_store(&g_filter, fn);
}

void redact_buf(buf *b)
{
	redact_fn fn = atomic_load(&g_filter);

	if (fn && b->len > 0)
		fn(b);
}

char *redact_str(const char *s)
{
	buf b;

	buf_init(&b, 0);
	if (buf_puts(&b, s) < 0) {
		buf_free(&b);
		return NULL;
	}
	redact_buf(&b);
	return buf_steal(&b);
}
