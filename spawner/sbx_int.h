/*
 * sbx_int — what the sandbox backends share inside spawner/: the box
 * structure, the backend operations, output capture (head + tail under a
 * cap), the cgroup layer and the seccomp filter. Not for use outside the
 * sandbox module.
 */
#ifndef ORCH_SPAWNER_SBX_INT_H
#define ORCH_SPAWNER_SBX_INT_H

#include <linux/filter.h>
#include <stdint.h>
#include <sys/types.h>

#include "spawner/sandbox.h"

/* Output kept of one stream: the first `cap` bytes and a ring of the last
 * cap/2, so a long output keeps its head and its tail. */
typedef struct sbx_capture {
	char *head;
	size_t head_len, cap;
	char *ring;
	size_t ring_cap, ring_pos; /* ring_pos: total bytes ever put in the ring */
	uint64_t total;
} sbx_capture;

int sbx_capture_init(sbx_capture *c, size_t cap);
void sbx_capture_add(sbx_capture *c, const char *data, size_t n);
/* Writes the kept output into `out` (head, a marker, tail when truncated). */
int sbx_capture_finish(sbx_capture *c, buf *out, int *truncated);
void sbx_capture_free(sbx_capture *c);

typedef struct sbx_ops {
	const char *name;
	int (*prepare)(sbx *b);
	int (*start)(sbx *b);
	/* Returns 0 finished, ERR_BUSY still running after slice_ms. */
	int (*wait)(sbx *b, int64_t slice_ms);
	int (*kill)(sbx *b);
	/* Fills the backend-specific fields of a zeroed, initialised result. */
	int (*collect)(sbx *b, sbx_result *r);
	void (*destroy)(sbx *b);
} sbx_ops;

/* The running command, copied from sbx_cmd by sbx_start. */
typedef struct sbx_run_state {
	char **argv;  /* malloc'd, NULL-terminated */
	char **envp;  /* the full environment given to the command */
	char *cwd;
	int64_t timeout_ms, started_ms, deadline_ms; /* deadline 0: none */
	sbx_output_fn on_output;
	void *udata;
	const atomic_int *cancel;
	char *stdin_data;
	size_t stdin_len, stdin_off;
	sbx_capture out, err;
	int timed_out, cancelled;
	int finished;
} sbx_run_state;

struct sbx {
	sbx_backend kind;
	const sbx_ops *ops;
	/* copied options */
	char *workspace;   /* realpath, or NULL */
	char *rootfs;      /* realpath, or NULL */
	int64_t mem_bytes, pids, nofile, fsize_bytes, tmp_bytes;
	double cpus;
	char *net;
	uint32_t uid_base;
	uint32_t sandbox_uid; /* docker: the host uid the container's user writes as */
	int allow_degraded;
	int nproc_fallback; /* no pids cgroup: cap processes with RLIMIT_NPROC */
	sbx_bind *binds;   /* strings owned */
	size_t nbinds;
	int egress;        /* the last bind is the egress socket (SBX_EGRESS_INSIDE) */
	char *docker_socket, *image, *runtime, *workspace_volume;

	char describe[256];
	char degraded[256];
	int active;        /* started and not collected */
	sbx_run_state run;
	void *impl;        /* the backend's state */
};

extern const sbx_ops sbx_ns_ops;
extern const sbx_ops sbx_docker_ops;

/* Passes output to the callback and the capture; returns non-zero when the
 * callback asked to stop. */
int sbx_deliver(sbx *b, int stream, const char *data, size_t n);

/* Appends "; what" to b->degraded. */
void sbx_degrade(sbx *b, const char *what);

/* Milliseconds until the command's deadline (INT64_MAX when none). */
int64_t sbx_ms_left(const sbx *b);

/* One pass of a backend's wait loop, before it blocks: the command's time
 * limit and the stop flag (run.cancel) are enforced, each killing the
 * command once (ops->kill) and setting run.timed_out or run.cancelled.
 * ERR_BUSY when the caller's slice, ending at `until` (monotonic ms), is
 * over; otherwise 0 with *ms the time to the slice's end and *left the
 * time to the command's deadline, both as they were at the start of the
 * pass (the backend decides how the deadline cuts its wait). */
int sbx_wait_pass(sbx *b, int64_t until, int64_t *ms, int64_t *left);

/* ---- cgroups (sbx_cgroup.c) ---- */

typedef struct sbx_cg sbx_cg;

/* Creates the box's cgroups (v1 memory/pids/cpu where the host mounts them,
 * else v2 with those controllers; a v2 group for tree kill when cgroup2 is
 * mounted) with the limits set. Missing controllers fail closed unless
 * allow_degraded, which records them with sbx_degrade. */
int sbx_cg_new(sbx_cg **out, sbx *b);
void sbx_cg_free(sbx_cg *cg);

/* File descriptors the sandbox's first process writes "0" to in order to
 * join (v1 cgroup.procs, and v2 cgroup.procs when v2 is used). Borrowed;
 * -1 terminates. */
const int *sbx_cg_join_fds(const sbx_cg *cg);

/* Before a command: resets peak counters and records event baselines. */
void sbx_cg_before(sbx_cg *cg);
/* After a command: fills oom_killed, pids_limited, mem_peak_bytes. */
void sbx_cg_after(sbx_cg *cg, sbx_result *r);
/* Kills every process left in the box's cgroups; returns how many remain. */
int sbx_cg_kill(sbx_cg *cg);
/* Human description of what the layer enforces ("cgroup v1 memory,pids,cpu"). */
const char *sbx_cg_describe(const sbx_cg *cg);

/* ---- seccomp (sbx_seccomp.c) ---- */

/* The compiled deny-list for the native architecture, built once
 * (thread-safe). Borrowed. ERR_SANDBOX when libseccomp fails. */
int sbx_seccomp_prog(const struct sock_fprog **out);

/* ---- the egress forwarder (sbx_fwd.c) ---- */

/* Accepts TCP connections on `lfd` and passes each, both ways, to the unix
 * socket at `sock_path` (at most 64 at once). System calls only: it runs in
 * a process forked from the sandbox's init. Never returns. */
__attribute__((noreturn)) void sbx_fwd_serve(int lfd, const char *sock_path);

/* The docker backend's forwarder: spawner/fwd/egress_fwd.c built static
 * (the build's gen/egress-fwd), carried in the binary between these two
 * symbols (gen/fwd_image.S). A container with egress runs it, bound
 * read-only here, with its command as arguments. */
#define SBX_EGRESS_FWD_INSIDE "/run/orch-egress-fwd"
extern const unsigned char sbx_fwd_image[], sbx_fwd_image_end[];
/* The same deny-list as a Docker seccomp profile (JSON text, for
 * SecurityOpt "seccomp=..."). The caller frees it; NULL when out of memory. */
char *sbx_seccomp_docker_profile(void);

/* ---- workspace helpers (sbx_quota.c) ---- */

/* Makes every file under `dir` owned by uid:gid, without following links or
 * crossing into other file systems. */
int sbx_chown_tree(const char *dir, uid_t uid, gid_t gid);

/* 1 when the file system holding `dir` has no room left, 0 otherwise. */
int sbx_fs_full(const char *dir);

#endif
