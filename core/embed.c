#include "core/embed.h"
#include "core/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char **g_paths, **g_texts;
static int g_n;

const orch_embedded_file *embed_find(const char *path)
{
	for (const orch_embedded_file *f = orch_embedded; f->path; f++)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}

int embed_text(const char *path, buf *out)
{
	const orch_embedded_file *f;
	int rc = 1;

	pthread_mutex_lock(&g_mu);
	for (int i = 0; i < g_n; i++)
		if (strcmp(g_paths[i], path) == 0) {
			rc = buf_puts(out, g_texts[i]);
			break;
		}
	pthread_mutex_unlock(&g_mu);
	if (rc <= 0)
		return rc;
	f = embed_find(path);
	if (!f)
		return err_set(ERR_NOTFOUND, "%s is not built in", path);
	return buf_append(out, f->data, f->size);
}

static void free_all(char **paths, char **texts, int n)
{
	for (int i = 0; i < n; i++) {
		free(paths[i]);
		free(texts[i]);
	}
	free(paths);
	free(texts);
}

int embed_overrides_set(const char *const *paths, const char *const *texts, int n)
{
	char **p = calloc((size_t)(n > 0 ? n : 1), sizeof(*p));
	char **t = calloc((size_t)(n > 0 ? n : 1), sizeof(*t));
	char **op, **ot;
	int on;

	if (!p || !t) {
		free(p);
		free(t);
		return err_set(ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		p[i] = strdup(paths[i]);
		t[i] = strdup(texts[i]);
		if (!p[i] || !t[i]) {
			free_all(p, t, i + 1);
			return err_set(ERR_NOMEM, "out of memory");
		}
	}
	pthread_mutex_lock(&g_mu);
	op = g_paths;
	ot = g_texts;
	on = g_n;
	g_paths = p;
	g_texts = t;
	g_n = n;
	pthread_mutex_unlock(&g_mu);
	free_all(op, ot, on);
	return 0;
}

int embed_overridden(const char *path)
{
	int hit = 0;

	pthread_mutex_lock(&g_mu);
	for (int i = 0; i < g_n && !hit; i++)
		hit = strcmp(g_paths[i], path) == 0;
	pthread_mutex_unlock(&g_mu);
	return hit;
}
