#include "core/gitx.h"
#include "core/err.h"

#include <git2.h>
#include <pthread.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;

static void global_init(void)
{
	if (git_libgit2_init() < 0) {
		g_init_rc = ERR_GIT;
		return;
	}
	/* the host's own git configuration must not change what the factory does */
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, "");
	/* workspaces belong to the sandbox's user; the host reads them as root */
	git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
}

int gitx_init(void)
{
	pthread_once(&g_once, global_init);
	if (g_init_rc < 0)
		return err_set(ERR_GIT, "libgit2 could not be initialised");
	return 0;
}
