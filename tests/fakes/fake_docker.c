/*
 * fake_docker — the Docker Engine API errors a real engine will not produce
 * on demand, for the docker sandbox backend's tests (everything else is
 * tested against a real dockerd: tests/integration/test_sandbox_docker.c).
 *
 *   fake_docker --socket PATH [--ping-status N]
 *
 * One request per connection (Connection: close), HTTP/1.1 with
 * Content-Length bodies, as the engine speaks it on its unix socket. The image named in a create picks
 * the failure:
 *   fake/create-500  create answers 500 (a storage driver out of space)
 *   fake/bad-id      create answers 201 with an Id that is not one
 *   fake/lost        the container is created, the attach answers 101 and
 *                    closes, start answers 204, and from then on the engine
 *                    knows no such container (it lost it: a daemon restart)
 * /_ping answers --ping-status (200). Other requests get 404 as from the
 * engine.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void reply(int fd, int status, const char *text, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 status, text, strlen(body));
	if (write(fd, head, (size_t)n) != n || write(fd, body, strlen(body)) < 0)
		perror("fake_docker: write");
}

/* Reads one request (head and Content-Length body) into buf; 0 at end. */
static size_t read_request(int fd, char *buf, size_t cap)
{
	size_t n = 0, want = 0;
	char *end = NULL;

	while (n < cap - 1) {
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k <= 0)
			return 0;
		n += (size_t)k;
		buf[n] = 0;
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strcasestr(buf, "Content-Length:");
			want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
		}
		if (end && n >= want)
			return n;
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int ping = 200, ls;
	int lost = 0;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	static char rq[1 << 20];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--socket") == 0)
			path = argv[i + 1];
		else if (strcmp(argv[i], "--ping-status") == 0)
			ping = atoi(argv[i + 1]);
	}
	if (!path) {
		fprintf(stderr, "usage: fake_docker --socket PATH [--ping-status N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 16) < 0) {
		perror("fake_docker");
		return 1;
	}
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		while (read_request(fd, rq, sizeof(rq)) > 0) {
			int close_after = 0; /* every reply ends its connection */
			if (strncmp(rq, "GET /v1.41/_ping ", 17) == 0)
				reply(fd, ping, ping == 200 ? "OK" : "Error",
				      ping == 200 ? "OK" : "{\"message\":\"the engine is shutting down\"}");
			else if (strncmp(rq, "GET /v1.41/info ", 16) == 0)
				reply(fd, 200, "OK", "{\"SecurityOptions\":[\"name=seccomp\"]}");
			else if (strncmp(rq, "GET /v1.41/containers/json", 26) == 0)
				reply(fd, 200, "OK", "[]");
			else if (strncmp(rq, "POST /v1.41/containers/create", 29) == 0) {
				if (strstr(rq, "\"fake/create-500\""))
					reply(fd, 500, "Internal Server Error",
					      "{\"message\":\"devmapper: Thin Pool has 0 free data blocks\"}");
				else if (strstr(rq, "\"fake/bad-id\""))
					reply(fd, 201, "Created", "{\"Id\":\"../../etc\",\"Warnings\":[]}");
				else if (strstr(rq, "\"fake/lost\"")) {
					lost = 0;
					reply(fd, 201, "Created", "{\"Id\":\"0123456789ab\",\"Warnings\":[]}");
				} else
					reply(fd, 404, "Not Found", "{\"message\":\"No such image\"}");
			} else if (strstr(rq, "/attach?") && !lost) {
				const char *up = "HTTP/1.1 101 UPGRADED\r\nContent-Type: "
						 "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
						 "Upgrade: tcp\r\n\r\n";
				if (write(fd, up, strlen(up)) < 0)
					perror("fake_docker: write");
				close_after = 1; /* and closes: the engine lost it */
			} else if (strstr(rq, "/start ") && !lost) {
				lost = 1;
				reply(fd, 204, "No Content", "");
			} else
				reply(fd, 404, "Not Found", "{\"message\":\"No such container: 0123456789ab\"}");
			(void)close_after;
			break;
		}
		close(fd);
	}
}
