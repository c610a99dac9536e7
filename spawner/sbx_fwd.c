/* sbx_fwd — the forwarder inside a sandbox with egress: it listens on
 * 127.0.0.1:SBX_EGRESS_PORT in the box's network namespace and passes every
 * TCP connection, byte for byte, to the egress proxy's unix socket bound at
 * SBX_EGRESS_INSIDE. It decides nothing: the proxy does.
 *
 * It runs in a process forked from a copy of a multi-threaded one (the
 * sandbox's init), so it uses system calls only: no allocation but mmap, no
 * stdio, no locks. */
#include "spawner/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FWD_SLOTS 64
#define FWD_BUF 16384

typedef struct fslot {
	int c, u;                 /* the client, the proxy; -1: free */
	char *cu, *uc;            /* FWD_BUF each */
	size_t cu_len, cu_off, uc_len, uc_off;
	int c_eof, u_eof, u_shut, c_shut;
} fslot;

static void slot_close(fslot *s)
{
	if (s->c >= 0)
		close(s->c);
	if (s->u >= 0)
		close(s->u);
	s->c = s->u = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void refuse(int fd)
{
	static const char msg[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 45\r\n"
				  "Connection: close\r\n\r\n"
				  "the sandbox cannot reach its egress proxy.\r\n\r\n";
	if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
		/* the client left */
	}
}

/* Moves bytes from `from` into buf (when empty) and from buf to `to`. */
static int pump_dir(int from, int to, char *b, size_t *len, size_t *off, int *eof, int *shut,
		    short rev_from, short rev_to)
{
	if (*len == 0 && !*eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = recv(from, b, FWD_BUF, 0);
		if (n > 0) {
			*len = (size_t)n;
			*off = 0;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			*eof = 1;
		}
	}
	if (*len > *off && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
		ssize_t n = send(to, b + *off, *len - *off, MSG_NOSIGNAL);
		if (n > 0) {
			*off += (size_t)n;
			if (*off == *len)
				*len = *off = 0;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return -1;
		}
	}
	if (*eof && *len == 0 && !*shut) {
		shutdown(to, SHUT_WR);
		*shut = 1;
	}
	return 0;
}

void sbx_fwd_serve(int lfd, const char *sock_path)
{
	static fslot slots[FWD_SLOTS];
	struct pollfd pf[1 + 2 * FWD_SLOTS];
	int who[1 + 2 * FWD_SLOTS];
	struct sockaddr_un sa;
	char *mem;
	size_t plen = 0;

	while (sock_path[plen])
		plen++;
	if (plen >= sizeof(sa.sun_path))
		_exit(1);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, sock_path, plen);
	mem = mmap(NULL, (size_t)FWD_SLOTS * 2 * FWD_BUF, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		_exit(1);
	for (int i = 0; i < FWD_SLOTS; i++) {
		slots[i].c = slots[i].u = -1;
		slots[i].cu = mem + (size_t)i * 2 * FWD_BUF;
		slots[i].uc = slots[i].cu + FWD_BUF;
	}
	set_nonblock(lfd);
	for (;;) {
		int n = 0, free_slot = -1;

		for (int i = 0; i < FWD_SLOTS; i++) {
			fslot *s = &slots[i];
			if (s->c < 0) {
				if (free_slot < 0)
					free_slot = i;
				continue;
			}
			pf[n] = (struct pollfd){
				.fd = s->c,
				.events = (short)((s->cu_len == 0 && !s->c_eof ? POLLIN : 0) |
						  (s->uc_len > s->uc_off ? POLLOUT : 0))};
			who[n++] = i;
			pf[n] = (struct pollfd){
				.fd = s->u,
				.events = (short)((s->uc_len == 0 && !s->u_eof ? POLLIN : 0) |
						  (s->cu_len > s->cu_off ? POLLOUT : 0))};
			who[n++] = i;
		}
		if (free_slot >= 0) {
			pf[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
			who[n++] = -1;
		}
		if (poll(pf, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (int k = 0; k < n; k += 2) {
			fslot *s;
			if (who[k] < 0) {
				int c, u;
				if (!pf[k].revents)
					break;
				c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (c < 0)
					break;
				u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
				if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
				    set_nonblock(u) < 0) {
					refuse(c);
					close(c);
					if (u >= 0)
						close(u);
					break;
				}
				s = &slots[free_slot];
				s->c = c;
				s->u = u;
				s->cu_len = s->cu_off = s->uc_len = s->uc_off = 0;
				s->c_eof = s->u_eof = s->u_shut = s->c_shut = 0;
				break;
			}
			s = &slots[who[k]];
			if (!pf[k].revents && !pf[k + 1].revents)
				continue;
			if (pump_dir(s->c, s->u, s->cu, &s->cu_len, &s->cu_off, &s->c_eof, &s->u_shut,
				     pf[k].revents, pf[k + 1].revents) < 0 ||
			    pump_dir(s->u, s->c, s->uc, &s->uc_len, &s->uc_off, &s->u_eof, &s->c_shut,
				     pf[k + 1].revents, pf[k].revents) < 0) {
				slot_close(s);
				continue;
			}
			if (s->c_eof && s->u_eof && s->cu_len == 0 && s->uc_len == 0)
				slot_close(s);
		}
	}
}
