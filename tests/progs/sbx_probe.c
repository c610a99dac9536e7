/*
 * sbx_probe — run inside a sandbox by the isolation tests: tries what an
 * attacker would and prints one "name=result" line per attempt, where
 * result is "ok" or the errno name.
 *
 *   sbx_probe syscalls            every denied system call
 *   sbx_probe connect HOST PORT   a TCP connection
 *   sbx_probe udp HOST PORT       a UDP connect (a route lookup, no packet)
 *   sbx_probe euid                the effective uid
 *   sbx_probe kill PID            SIGKILL to PID
 *   sbx_probe mem MIB             allocates and touches MIB MiB
 *   sbx_probe read PATH           reads a file
 *   sbx_probe unix PATH           connects to a unix socket, prints its first line
 *   sbx_probe x32                 an x32-ABI system call (the filter kills the process)
 *   sbx_probe loopback            a TCP connection to a listener of its own on 127.0.0.1
 *
 * It is linked statically (the Makefile), so it runs in any image.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void show(const char *name, long rc)
{
	if (rc >= 0)
		printf("%s=ok\n", name);
	else
		printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	fflush(stdout);
}

static int syscalls(void)
{
	struct perf_event_attr pe;
	char c = 'x';
	int fd;

	show("unshare_user", unshare(CLONE_NEWUSER));
	show("unshare_mount", unshare(CLONE_NEWNS));
	show("unshare_net", unshare(CLONE_NEWNET));
	show("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
	show("clone_newpid", syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0));
	{
		char args[88] = {0};
		show("clone3", syscall(SYS_clone3, args, sizeof(args)));
	}
	show("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
	show("umount", umount2("/workspace", MNT_DETACH));
	fd = open("/proc/self/ns/net", O_RDONLY);
	show("setns", setns(fd, 0));
	show("chroot", chroot("/tmp"));
	show("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
	{
		char params[120] = {0};
		show("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
	}
	{
		char attr[128] = {0};
		show("bpf", syscall(SYS_bpf, 0, attr, sizeof(attr)));
	}
	memset(&pe, 0, sizeof(pe));
	pe.type = PERF_TYPE_SOFTWARE;
	pe.size = sizeof(pe);
	pe.config = PERF_COUNT_SW_CPU_CLOCK;
	show("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
	show("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
	show("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -3));
	show("userfaultfd", syscall(SYS_userfaultfd, 0));
	show("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
	show("ptrace_attach", ptrace(PTRACE_ATTACH, 1, 0, 0));
	show("tiocsti", ioctl(0, TIOCSTI, &c));
	show("tiocsti_high_bits", syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
	show("tioclinux", ioctl(0, TIOCLINUX, &c));
	show("vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
	show("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	show("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	show("init_module", syscall(SYS_init_module, NULL, 0, ""));
	show("sethostname", sethostname("evil", 4));
	/* these may be refused for several reasons; only success matters */
	printf("write_proc_sys=%s\n", (fd = open("/proc/sys/kernel/hostname", O_WRONLY)) < 0 ||
					     write(fd, "x", 1) < 0 ? "denied" : "ok");
	printf("write_sysrq=%s\n", open("/proc/sysrq-trigger", O_WRONLY) < 0 ? "denied" : "ok");
	printf("read_kmsg=%s\n", open("/dev/kmsg", O_RDONLY) < 0 ? "denied" : "ok");
	printf("write_cgroup=%s\n", open("/sys/fs/cgroup/memory/memory.limit_in_bytes", O_WRONLY) < 0 ? "denied" : "ok");
	show("fork", 0); /* a sanity line: the probe ran to the end */
	return 0;
}

static int net(const char *kind, const char *host, const char *port)
{
	struct sockaddr_in a;
	int s = socket(AF_INET, strcmp(kind, "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)strtol(port, NULL, 10));
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return 2;
	show(kind, connect(s, (struct sockaddr *)&a, sizeof(a)));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "syscalls") == 0)
		return syscalls();
	if (argc >= 4 && (strcmp(argv[1], "connect") == 0 || strcmp(argv[1], "udp") == 0))
		return net(argv[1], argv[2], argv[3]);
	if (argc >= 2 && strcmp(argv[1], "euid") == 0) {
		printf("euid=%d\n", (int)geteuid());
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
		show("kill", kill((pid_t)strtol(argv[2], NULL, 10), SIGKILL));
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "mem") == 0) {
		long mib = strtol(argv[2], NULL, 10);
		for (long i = 0; i < mib; i++) {
			char *p = malloc(1 << 20);
			if (!p) {
				show("malloc", -1);
				return 1;
			}
			memset(p, 1, 1 << 20);
		}
		printf("allocated=%ld\n", mib);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "x32") == 0) {
#if defined(__x86_64__)
		/* getpid through the x32 ABI: another architecture to seccomp */
		show("x32", syscall(0x40000000L | SYS_getpid));
#else
		printf("x32=none\n");
#endif
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "unix") == 0) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		char b[128];
		ssize_t n;
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[2]);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			show("unix", -1);
			return 0;
		}
		n = read(s, b, sizeof(b) - 1);
		b[n > 0 ? n : 0] = 0;
		printf("unix=%s", b);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "loopback") == 0) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t al = sizeof(a);
		int ls = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0 ||
		    getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
			show("loopback", -1);
			return 0;
		}
		show("loopback", connect(c, (struct sockaddr *)&a, sizeof(a)));
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "read") == 0) {
		int fd = open(argv[2], O_RDONLY);
		char b[64];
		show("open", fd);
		if (fd >= 0)
			show("read", read(fd, b, sizeof(b)));
		return 0;
	}
	fprintf(stderr, "usage: sbx_probe syscalls|connect H P|udp H P|euid|kill PID|mem MIB|read PATH\n");
	return 2;
}
