/* sbx_seccomp — the sandbox's system call deny-list, compiled once with
 * libseccomp into a BPF program that the sandbox loads right before exec.
 *
 * Default: allow. Denied with EPERM: everything that creates or enters
 * namespaces or changes mounts, the kernel attack surface sandboxes are
 * usually broken through (io_uring, bpf, perf_event_open, userfaultfd,
 * keyctl), process inspection (ptrace, process_vm_*), terminal injection
 * (TIOCSTI, TIOCLINUX) and host administration. clone3 answers ENOSYS (its
 * flags cannot be inspected), so libc falls back to clone, whose flags are
 * checked. Another architecture's system calls (32-bit int 0x80, x32) kill
 * the process. AF_VSOCK sockets are refused: on a virtual machine they
 * reach the hypervisor's services, past the network namespace. */
#include "spawner/sbx_int.h"

#include "core/err.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *const denied[] = {
	"unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
	"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"bpf", "perf_event_open", "userfaultfd",
	"keyctl", "add_key", "request_key",
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "syslog",
	"iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"vhangup", "nfsservctl", "uselib", "fanotify_init",
	NULL,
};

static struct sock_fprog g_prog;
static int g_rc;
static char g_msg[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
	       const struct scmp_arg_cmp *args)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture */
	return seccomp_rule_add_array(ctx, action, nr, n, args);
}

static void build(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	static const uint64_t ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,
					    CLONE_NEWNET,  CLONE_NEWIPC, CLONE_NEWUTS,
					    CLONE_NEWCGROUP, CLONE_NEWTIME};
	int fd = -1, rc = 0;
	off_t len;

	if (!ctx) {
		rc = -ENOMEM;
		goto done;
	}
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0)
		goto done;
	/* loaded by hand after PR_SET_NO_NEW_PRIVS */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	for (int i = 0; rc == 0 && denied[i]; i++)
		rc = add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0, NULL);
	for (size_t i = 0; rc == 0 && i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &a);
	}
	if (rc == 0)
		rc = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
	/* the kernel reads the ioctl request as 32 bits: compare only those */
	if (rc == 0) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
		rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &a);
	}
	if (rc == 0) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX);
		rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &a);
	}
	if (rc == 0) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK);
		rc = add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &a);
	}
	if (rc < 0)
		goto done;
	fd = memfd_create("sbx-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto done;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		goto done;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 || len > 65536) {
		rc = -EINVAL;
		goto done;
	}
	g_prog.filter = malloc((size_t)len);
	if (!g_prog.filter) {
		rc = -ENOMEM;
		goto done;
	}
	if (pread(fd, g_prog.filter, (size_t)len, 0) != len) {
		rc = -EIO;
		goto done;
	}
	g_prog.len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
done:
	if (fd >= 0)
		close(fd);
	if (ctx)
		seccomp_release(ctx);
	if (rc < 0) {
		free(g_prog.filter);
		g_prog.filter = NULL;
		g_rc = ERR_SANDBOX;
		snprintf(g_msg, sizeof(g_msg),
			 "could not build the seccomp filter with libseccomp: %s (is libseccomp "
			 "2.5 or newer installed?)",
			 strerror(-rc));
	}
}

int sbx_seccomp_prog(const struct sock_fprog **out)
{
	pthread_once(&g_once, build);
	if (g_rc < 0)
		return err_set(g_rc, "%s", g_msg);
	*out = &g_prog;
	return 0;
}

/* The same deny-list as a Docker seccomp profile (the format of
 * `docker run --security-opt seccomp=FILE`): default allow, EPERM for the
 * denied calls and for clone with a namespace flag, ENOSYS for clone3,
 * TIOCSTI/TIOCLINUX ioctls and AF_VSOCK sockets refused; only the native
 * architecture is listed, so another one's system calls get the runtime's
 * action for a foreign architecture. */
char *sbx_seccomp_docker_profile(void)
{
	static const uint64_t ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,
					    CLONE_NEWNET,  CLONE_NEWIPC, CLONE_NEWUTS,
					    CLONE_NEWCGROUP, CLONE_NEWTIME};
	json_t *root = json_object(), *calls = json_array(), *names = json_array();
	char *out = NULL;

	if (!root || !calls || !names)
		goto done;
	for (int i = 0; denied[i]; i++)
		json_array_append_new(names, json_string(denied[i]));
	json_object_set_new(root, "defaultAction", json_string("SCMP_ACT_ALLOW"));
#if defined(__x86_64__)
	json_object_set_new(root, "architectures", json_pack("[s]", "SCMP_ARCH_X86_64"));
#elif defined(__aarch64__)
	json_object_set_new(root, "architectures", json_pack("[s]", "SCMP_ARCH_AARCH64"));
#endif
	json_array_append_new(calls, json_pack("{s:O,s:s,s:i}", "names", names, "action",
					       "SCMP_ACT_ERRNO", "errnoRet", EPERM));
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++)
		json_array_append_new(
			calls, json_pack("{s:[s],s:s,s:i,s:[{s:i,s:I,s:I,s:s}]}", "names", "clone",
					 "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM, "args", "index",
					 0, "value", (json_int_t)ns_flags[i], "valueTwo",
					 (json_int_t)ns_flags[i], "op", "SCMP_CMP_MASKED_EQ"));
	json_array_append_new(calls, json_pack("{s:[s],s:s,s:i}", "names", "clone3", "action",
					       "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
	{
		const uint64_t ioctls[] = {TIOCSTI, TIOCLINUX};
		for (int i = 0; i < 2; i++)
			json_array_append_new(
				calls, json_pack("{s:[s],s:s,s:i,s:[{s:i,s:I,s:I,s:s}]}", "names",
						 "ioctl", "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM,
						 "args", "index", 1, "value", (json_int_t)0xffffffffu,
						 "valueTwo", (json_int_t)ioctls[i], "op",
						 "SCMP_CMP_MASKED_EQ"));
	}
	json_array_append_new(calls,
			      json_pack("{s:[s],s:s,s:i,s:[{s:i,s:I,s:I,s:s}]}", "names", "socket",
					"action", "SCMP_ACT_ERRNO", "errnoRet", EAFNOSUPPORT, "args",
					"index", 0, "value", (json_int_t)0xffffffffu, "valueTwo",
					(json_int_t)AF_VSOCK, "op", "SCMP_CMP_MASKED_EQ"));
	json_object_set(root, "syscalls", calls);
	out = json_dumps(root, JSON_COMPACT);
done:
	json_decref(names);
	json_decref(calls);
	json_decref(root);
	return out;
}
