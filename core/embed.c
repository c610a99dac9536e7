#include "core/embed.h"

#include <string.h>

const orch_embedded_file *embed_find(const char *path)
{
	for (const orch_embedded_file *f = orch_embedded; f->path; f++)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}
