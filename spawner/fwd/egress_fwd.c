/* egress-fwd — what a docker sandbox with egress runs before its command:
 * the forwarder of spawner/sbx_fwd.c, as a program of its own.
 *
 *   egress-fwd CMD [ARG...]
 *
 * It listens on 127.0.0.1:SBX_EGRESS_PORT in the container's network
 * namespace, leaves a process that passes each TCP connection to the egress
 * proxy's socket at SBX_EGRESS_INSIDE (detached: the container's init adopts
 * it, and it dies with the container), then becomes CMD (execvp), so the
 * command keeps its place under the init, its pid, its output and its exit
 * status. A command that cannot be run exits 127 (not found) or 126, as a
 * shell does, after "sandbox: cannot run 'CMD': REASON" on stderr; a
 * forwarder that cannot listen exits 125 saying why.
 *
 * Built static (tests/env and images hold none of the host's libraries)
 * and carried inside the orchestrator binary (sbx_fwd_image); the docker
 * backend binds it read-only at SBX_EGRESS_FWD_INSIDE. */
#include "spawner/sbx_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int listen_local(void)
{
	struct sockaddr_in sa;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(SBX_EGRESS_PORT);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The forwarder's process: a grandchild, so that the command is not its
 * parent (a shell's `wait` would wait for it) and the init adopts it. */
static int detach_forwarder(int lfd)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (fork() == 0) {
			int null = open("/dev/null", O_RDWR | O_CLOEXEC);
			setsid();
			if (null >= 0) {
				dup2(null, 0);
				dup2(null, 1);
				dup2(null, 2);
			}
			sbx_fwd_serve(lfd, SBX_EGRESS_INSIDE);
		}
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

int main(int argc, char **argv)
{
	int lfd, e;

	if (argc < 2) {
		fprintf(stderr, "usage: egress-fwd CMD [ARG...]\n");
		return 125;
	}
	lfd = listen_local();
	if (lfd < 0 || detach_forwarder(lfd) < 0) {
		fprintf(stderr, "sandbox: the egress forwarder cannot listen on 127.0.0.1:%d: %s\n",
			SBX_EGRESS_PORT, strerror(errno));
		return 125;
	}
	close(lfd);
	execvp(argv[1], argv + 1);
	e = errno;
	fprintf(stderr, "sandbox: cannot run '%s': %s\n", argv[1], strerror(e));
	return e == ENOENT || e == ENOTDIR ? 127 : 126;
}
