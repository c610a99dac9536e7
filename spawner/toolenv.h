/*
 * toolenv — the variables every sandboxed command of a worker gets besides
 * the sandbox's own PATH, HOME=/tmp and LANG=C.UTF-8: what the toolchains
 * (npm, go, python3) need to behave well in a sandbox, most of all without
 * a network. One table for the workers (setup, agent, tests, merges), the
 * eval's hidden tests (eval/) and `orchestrator sandbox run
 * --toolchain-env` (which eval/check_tasks.py uses); eval/README.md says
 * why each is there.
 *
 * Offline (no network at all), a missing package or module fails at once
 * (npm_config_offline=true, GOPROXY=off) instead of retrying an unreachable
 * registry for a minute; with a network (an egress policy) those two are
 * left out, so npm and go reach the registries the policy allows.
 */
#ifndef ORCH_SPAWNER_TOOLENV_H
#define ORCH_SPAWNER_TOOLENV_H

/* The table, "NAME=value" strings ending with NULL: for a command without
 * a network (networked 0) or with one. Static. */
const char *const *spw_toolenv(int networked);

/* A new NULL-terminated array: the table for `networked`, then `granted`
 * (may be NULL; a granted variable replaces the table's of the same name).
 * The caller owns *out and frees it with spw_toolenv_free. ERR_NOMEM. */
int spw_toolenv_join(int networked, const char *const *granted, char ***out);

/* Frees what spw_toolenv_join made. NULL is a no-op. */
void spw_toolenv_free(char **env);

#endif
