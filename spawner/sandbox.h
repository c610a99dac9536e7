/*
 * sandbox — run model-written commands where they cannot escape, cannot
 * exhaust the machine and never see credentials.
 *
 * One interface, two backends:
 *   ns      (default) Linux namespaces built in, no daemon: user, pid, mount,
 *           net, ipc and uts namespaces; a host uid range per box; a
 *           read-only root (host /usr and /etc, or an unpacked root
 *           filesystem folder) with /workspace the only persistent writable
 *           place; fresh /proc, minimal /dev, tmpfs /tmp and /dev/shm counted
 *           against memory; loopback-only network; a seccomp deny-list; no
 *           capabilities, no_new_privs; cgroup (v1 or v2) limits on memory,
 *           processes and CPU; RLIMIT_NOFILE and RLIMIT_FSIZE.
 *   docker  the Docker Engine API over its unix socket (libcurl): one
 *           container per command with the same limits, network none or a
 *           named gateway network, runtime sysbox-runc when configured.
 *
 * The life cycle follows the architecture's interface:
 *   prepare  sbx_new()      once per worker: checks the host, creates the
 *                           box's cgroups and uid range, owns the workspace.
 *   start    sbx_start()    one command in a FRESH sandbox over the box's
 *                           persistent workspace (new namespaces, new /tmp).
 *   wait     sbx_wait()     pumps output; kills the whole tree at the
 *                           command's wall-clock timeout (exit status 124).
 *   collect  sbx_collect()  the result: status, captured output, what limit
 *                           ended it, resource use.
 *   destroy  sbx_free()     kills what is left, removes cgroups.
 * sbx_run() does start + wait + collect. When the command exits, whatever
 * it started in the background is killed with it. A worker keeps one box for its
 * whole task and runs each shell action, and finally the project's test
 * command, with sbx_run(): the per-command cost is a few milliseconds.
 *
 * A box runs one command at a time; use one box per concurrent worker.
 * Boxes are independent: different threads may use different boxes.
 *
 * Everything the sandbox may see is granted explicitly: the environment
 * holds PATH, HOME=/tmp, LANG=C.UTF-8 and the request's variables only; the
 * file system holds the root, /workspace and the request's binds only.
 *
 * The ns backend needs root (it writes uid maps and cgroups). When the host
 * lacks a feature (a cgroup controller), sbx_new fails closed with a message
 * saying what is missing, unless opts.allow_degraded is set: then it runs
 * without that limit and every result names it in `degraded`.
 */
#ifndef ORCH_SPAWNER_SANDBOX_H
#define ORCH_SPAWNER_SANDBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct sbx sbx;

typedef enum sbx_backend {
	SBX_NS = 0,
	SBX_DOCKER = 1,
} sbx_backend;

/* The status a command reports when the wall-clock timeout killed it (as
 * timeout(1)); 126 when it cannot be executed, 127 when it is not found. */
#define SBX_EXIT_TIMEOUT 124

/* Where a box with an egress socket finds it, and the forwarder's port. */
#define SBX_EGRESS_INSIDE "/run/orch-egress.sock"
#define SBX_EGRESS_PORT 3128

/* A host path made visible inside the sandbox (read-only unless writable). */
typedef struct sbx_bind {
	const char *host;    /* absolute host path (file or directory) */
	const char *inside;  /* absolute path in the sandbox, outside /workspace, /proc, /dev, /tmp */
	int writable;
} sbx_bind;

/* Settings of a box, fixed for its life. Zero means the default. Strings
 * are copied by sbx_new; the caller keeps ownership of this struct. */
typedef struct sbx_opts {
	sbx_backend backend;
	const char *workspace;  /* host directory mounted at /workspace (read-write);
				   NULL: an empty tmpfs per command */
	const char *rootfs;     /* NULL: host /usr and /etc (plus /bin, /lib... links);
				   else an unpacked root filesystem folder (read-only) */
	int64_t mem_bytes;      /* memory incl. /tmp and /dev/shm; default 512 MiB */
	int64_t pids;           /* processes and threads; default 128 */
	double cpus;            /* CPU time per second of wall time; default 1 */
	int64_t nofile;         /* RLIMIT_NOFILE; default 1024 */
	int64_t fsize_bytes;    /* RLIMIT_FSIZE, the largest file; default 1 GiB */
	int64_t tmp_bytes;      /* size of /tmp (and of /dev/shm); default mem_bytes/2 */
	const char *net;        /* "none" (loopback only, the default); docker may
				   name a gateway network instead */
	uint32_t uid_base;      /* first host uid of the box's 65536-uid range (ns);
				   0: the range of the workspace's current sandbox
				   owner, else one picked at random. The workspace is
				   owned by uid_base+1000. */
	int allow_degraded;     /* run when a limit cannot be enforced (reported) */
	const sbx_bind *binds;  /* extra mounts; may be NULL */
	size_t nbinds;
	const char *egress_socket; /* host path of an egress proxy's unix socket
				      (spawner/egress.h), bound at SBX_EGRESS_INSIDE;
				      a forwarder on 127.0.0.1:SBX_EGRESS_PORT in the
				      box's network namespace passes each TCP
				      connection to it, and every command gets
				      HTTP_PROXY, HTTPS_PROXY, NO_PROXY and the npm,
				      pip and cargo proxy variables (a granted
				      variable wins). docker: the socket and a static
				      forwarder (written beside the socket, which
				      must be in a folder of its own) are bound into
				      every container, whose command starts behind
				      the forwarder. NULL: no network at all */
	/* docker backend */
	const char *docker_socket; /* default DOCKER_HOST (unix://), else /var/run/docker.sock */
	const char *image;         /* required for docker */
	const char *runtime;       /* e.g. "sysbox-runc"; NULL: the engine's default */
	const char *workspace_volume; /* docker: the workspace as seen by the engine
					 (host path or volume name); default workspace */
} sbx_opts;

/* Output of the command as it arrives: stream 1 stdout, 2 stderr. Called
 * from sbx_wait on the calling thread. Return non-zero to kill the command. */
typedef int (*sbx_output_fn)(int stream, const char *data, size_t len, void *udata);

/* One command. Borrowed for the duration of sbx_start (copied). */
typedef struct sbx_cmd {
	const char *const *argv;  /* NULL-terminated; argv[0] is searched in PATH */
	const char *const *env;   /* "NAME=value" granted to the command; may be NULL */
	const char *cwd;          /* absolute path inside; default /workspace */
	int64_t timeout_ms;       /* wall clock; 0: 30 s; < 0: none */
	size_t output_cap;        /* bytes kept per stream (head and tail); 0: 1 MiB */
	const char *stdin_data;   /* fed to stdin, then EOF; NULL: /dev/null */
	size_t stdin_len;
	sbx_output_fn on_output;  /* may be NULL */
	void *udata;
	const atomic_int *cancel; /* non-zero: kill the command (status 130) */
} sbx_cmd;

/* What happened. Initialised by sbx_collect; free with sbx_result_free. */
typedef struct sbx_result {
	int exit_code;       /* 0-255: the command's status, 128+N when signal N
				ended it, 124 on timeout, 126/127 exec failure */
	int term_signal;     /* the signal that ended it, 0 if it exited */
	int timed_out;       /* the wall-clock timeout killed the tree */
	int cancelled;       /* killed through cmd.cancel or on_output */
	int oom_killed;      /* the memory limit was reached and a process killed */
	int pids_limited;    /* a fork or clone failed at the process limit */
	int fsize_limited;   /* a write passed RLIMIT_FSIZE (SIGXFSZ) */
	int disk_full;       /* the workspace's file system has less than 1 MiB
				or 1% left after the command */
	buf out, err;        /* captured stdout/stderr: head, a marker, tail */
	uint64_t out_bytes, err_bytes; /* everything the command wrote */
	int out_truncated, err_truncated;
	int64_t wall_ms;
	int64_t cpu_ms;       /* user + system time of the tree */
	int64_t mem_peak_bytes; /* -1 when the host cannot tell */
	char reason[256];    /* one line for people and for the agent: what ended it */
	char degraded[256];  /* limits NOT enforced on this host ("" when none) */
} sbx_result;

/* Prepares a box: validates `opts`, checks the host (root, namespaces,
 * cgroup controllers), creates the cgroups, makes the workspace owned by
 * the box's sandbox user. ERR_INVALID for bad options, ERR_SANDBOX when the
 * host cannot give the isolation asked for, each with a message saying what
 * to do. The caller owns *out and frees it with sbx_free. */
int sbx_new(sbx **out, const sbx_opts *opts);

/* Destroys a box: kills a command still running (its whole tree), removes
 * the cgroups. Leaves the workspace. NULL is a no-op. */
void sbx_free(sbx *b);

/* Starts `cmd` in a fresh sandbox. ERR_BUSY when a command of this box has
 * not been collected, ERR_INVALID for a bad command, ERR_SANDBOX when the
 * sandbox could not be set up (nothing of the command ran).
 * ns: the sandbox is killed when the THREAD that called sbx_start exits
 * (PR_SET_PDEATHSIG follows the thread), so start and wait from a thread
 * that outlives the command. */
int sbx_start(sbx *b, const sbx_cmd *cmd);

/* Waits up to `slice_ms` (< 0: until the end) for the command to finish,
 * passing output to cmd.on_output and capturing it. Enforces the command's
 * timeout and cancel flag. Returns 0 when it has finished (collect next),
 * ERR_BUSY when still running after the slice, ERR_INVALID when nothing
 * was started. */
int sbx_wait(sbx *b, int64_t slice_ms);

/* Kills the running command's whole tree now (it then counts as cancelled). */
int sbx_kill(sbx *b);

/* Fills `out` with the finished command's result (the caller owns it; free
 * with sbx_result_free) and makes the box ready for the next command.
 * ERR_BUSY when the command still runs. */
int sbx_collect(sbx *b, sbx_result *out);

/* start + wait + collect. A non-zero status of the command is NOT an
 * error: the function returns 0 and out->exit_code says it. */
int sbx_run(sbx *b, const sbx_cmd *cmd, sbx_result *out);

void sbx_result_free(sbx_result *r);

/* Gives every file of the workspace back to the sandbox user (host uid
 * sbx_uid()). Call it after host-side code (git checkout, commit) wrote
 * into the workspace, or the next command may not modify those files.
 * Does not follow links. ERR_BUSY while a command runs. */
int sbx_reown(sbx *b);

/* The host uid that owns what the sandbox writes in the workspace (ns:
 * uid_base + 1000; docker: 1000, or the remapped uid under dockerd
 * --userns-remap). Host tools that refuse files of another owner (git's
 * safe.directory, libgit2's owner validation) need to be told. */
uint32_t sbx_uid(const sbx *b);

/* The backend of a box, and a short description of its isolation. */
sbx_backend sbx_kind(const sbx *b);
const char *sbx_describe(const sbx *b);

/* Parses "ns" or "docker". ERR_INVALID otherwise. */
int sbx_backend_parse(const char *s, sbx_backend *out);

/* Removes cgroups left by sandboxes whose owning process has died (after a
 * crash), killing what still runs in them. Safe to call at start-up and
 * periodically; *out_removed (may be NULL) gets the number removed. */
int sbx_sweep(int *out_removed);

/* The docker backend's leftovers: kills and removes the containers this
 * library made on the engine at `docker_socket` (NULL: sbx_docker_socket)
 * whose owner is known dead (on this host: its pid is gone or reused) or
 * whose command's deadline passed over a minute ago (an owner elsewhere
 * that stopped watching it). *out_removed (may be NULL) gets how many. */
int sbx_sweep_docker(const char *docker_socket, int *out_removed);

/* The engine's socket: `given` when set, else DOCKER_HOST (unix://PATH
 * only: ERR_INVALID for another scheme), else /var/run/docker.sock. */
int sbx_docker_socket(const char *given, char *out, size_t cap);

/*
 * Workspace disk quota. A workspace directory gets a size-capped file
 * system of its own before anything is put in it:
 *   SBX_QUOTA_TMPFS  a tmpfs of `bytes` (memory-backed; fast; lost on reboot)
 *   SBX_QUOTA_LOOP   an ext4 image file `dir`.img of `bytes`, sparse, mounted
 *                    through a loop device (disk-backed; survives restarts)
 * Writes past the cap fail with ENOSPC inside the sandbox and the result
 * says disk_full. The directory must exist and be empty. Needs root.
 */
typedef enum sbx_quota_kind {
	SBX_QUOTA_TMPFS = 1,
	SBX_QUOTA_LOOP = 2,
} sbx_quota_kind;

int sbx_quota_mount(const char *dir, int64_t bytes, sbx_quota_kind kind);

/* Unmounts a quota file system (and for a loop quota deletes its image).
 * The contents are gone afterwards. */
int sbx_quota_unmount(const char *dir);

/* Reads `rel` (a path relative to the workspace `dir`) without following
 * any symbolic link and without leaving `dir`, for host-side code that
 * reads what a sandbox wrote. At most `max` bytes (ERR_TOOBIG past it).
 * ERR_DENIED when the path is a link or escapes. Caller frees out->data. */
int sbx_workspace_read(buf *out, const char *dir, const char *rel, size_t max);

#endif
