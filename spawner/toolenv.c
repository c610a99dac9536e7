#include "spawner/toolenv.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

/* eval/README.md, "The sandbox: what a worker can use", explains each */
static const char *const offline[] = {
	"GOPROXY=off",
	"GOTOOLCHAIN=local",
	"GOTELEMETRY=off",
	"npm_config_offline=true",
	"npm_config_update_notifier=false",
	"npm_config_fund=false",
	"npm_config_audit=false",
	"PYTHONDONTWRITEBYTECODE=1",
	NULL,
};

static const char *const networked_env[] = {
	"GOTOOLCHAIN=local",
	"GOTELEMETRY=off",
	"npm_config_update_notifier=false",
	"npm_config_fund=false",
	"npm_config_audit=false",
	"PYTHONDONTWRITEBYTECODE=1",
	NULL,
};

const char *const *spw_toolenv(int networked)
{
	return networked ? networked_env : offline;
}

/* True when `granted` sets the variable of "NAME=value" `kv`. */
static int granted_has(const char *const *granted, const char *kv)
{
	size_t n = (size_t)(strchr(kv, '=') - kv) + 1;

	for (size_t i = 0; granted && granted[i]; i++)
		if (strncmp(granted[i], kv, n) == 0)
			return 1;
	return 0;
}

int spw_toolenv_join(int networked, const char *const *granted, char ***out)
{
	const char *const *table = spw_toolenv(networked);
	size_t nt = 0, ng = 0, k = 0;
	char **env;

	*out = NULL;
	while (table[nt])
		nt++;
	while (granted && granted[ng])
		ng++;
	env = calloc(nt + ng + 1, sizeof(*env));
	if (!env)
		return err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < nt + ng; i++) {
		const char *kv = i < nt ? table[i] : granted[i - nt];

		if (i < nt && granted_has(granted, kv))
			continue;
		env[k] = strdup(kv);
		if (!env[k])
			goto nomem;
		k++;
	}
	*out = env;
	return 0;
nomem:
	spw_toolenv_free(env);
	return err_set(ERR_NOMEM, "out of memory");
}

void spw_toolenv_free(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}
