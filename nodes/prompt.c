#include "nodes/prompt.h"
#include "core/embed.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

int nd_prompt(const char *name, const char *const *vars, buf *out)
{
	char path[256];
	const char *p;
	buf text;
	int rc;

	snprintf(path, sizeof(path), "nodes/prompts/%s", name);
	/* a template stored in the database wins over the built-in one */
	buf_init(&text, 0);
	rc = embed_text(path, &text);
	if (rc < 0) {
		buf_free(&text);
		return err_set(ERR_INTERNAL, "the prompt %s is not built in", path);
	}
	for (p = buf_cstr(&text); *p;) {
		const char *open = strstr(p, "{{"), *close;

		if (!open) {
			buf_puts(out, p);
			break;
		}
		close = strstr(open + 2, "}}");
		if (!close) {
			buf_puts(out, p);
			break;
		}
		buf_append(out, p, (size_t)(open - p));
		for (size_t i = 0; vars && vars[i]; i += 2) {
			size_t n = strlen(vars[i]);
			if (n == (size_t)(close - open - 2) && strncmp(open + 2, vars[i], n) == 0) {
				buf_puts(out, vars[i + 1] ? vars[i + 1] : "");
				break;
			}
		}
		p = close + 2;
	}
	rc = out->len > 0 || text.len == 0 ? 0 : err_set(ERR_NOMEM, "out of memory");
	buf_free(&text);
	return rc;
}
