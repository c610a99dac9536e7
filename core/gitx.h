/*
 * gitx — what every part that uses libgit2 shares: initialising the
 * library once, for the whole process, with the settings the factory
 * relies on. The host's own git configuration (system, XDG, global,
 * ProgramData) is never read, so it cannot change what the factory or a
 * worker does; repositories owned by another user (a workspace belongs to
 * the sandbox's user, the host reads it as root) are accepted; objects are
 * checked on creation and the git directory is fsynced.
 *
 * The prefix is gitx_ so that no name clashes with libgit2's git_.
 */
#ifndef ORCH_CORE_GITX_H
#define ORCH_CORE_GITX_H

/* Initialises libgit2 with the settings above, once per process; later
 * calls return the first call's outcome. 0, or ERR_GIT ("libgit2 could not
 * be initialised"). Thread-safe. Call before any other libgit2 function. */
int gitx_init(void);

#endif
