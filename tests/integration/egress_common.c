/* What the egress tests share (included by test_egress.c and
 * test_egress_docker.c, not built alone): a registry stand-in
 * (tests/fakes/pkg_registry.py, Python's http.server) and a TCP echo server on
 * loopback, in a network namespace of the program's own (only loopback) and a
 * mount namespace whose /etc/hosts names test hosts (registry.test is
 * 127.0.0.1, private.test 10.11.12.13, metadata.test 169.254.169.254, ...):
 * the proxy resolves them with the system's resolver, as it resolves any
 * name, and no packet can leave this machine whatever the proxy decides.
 * Then the decisions an attachment's callback saw, and raw clients of the
 * proxy's socket. */
#include "tests/support/support.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "spawner/egress.h"
#include "spawner/sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_http, g_echo;
static pid_t g_reg = -1;
static egr_proxy *g_proxy;

/* --- decisions --- */

typedef struct seen {
	pthread_mutex_t mu;
	int n, allowed, denied;
	char last_reason[400];
	char last_host[300];
	uint64_t last_down;
} seen;

static void on_decision(void *udata, const egr_decision *d)
{
	seen *s = udata;

	pthread_mutex_lock(&s->mu);
	s->n++;
	if (d->allowed)
		s->allowed++;
	else
		s->denied++;
	snprintf(s->last_reason, sizeof(s->last_reason), "%s", d->reason);
	snprintf(s->last_host, sizeof(s->last_host), "%s", d->host);
	s->last_down = d->bytes_down;
	pthread_mutex_unlock(&s->mu);
}

static void seen_init(seen *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
}

static int seen_count(seen *s)
{
	int n;
	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void await_seen(seen *s, int n)
{
	for (int64_t until = util_mono_ms() + 10000; util_mono_ms() < until; util_sleep_ms(5))
		if (seen_count(s) >= n)
			return;
	fail_msg("only %d decisions of %d arrived", seen_count(s), n);
}

static egr_attach *attach(egr_proxy *p, seen *s, const char *patterns)
{
	egr_policy *pol = NULL;
	egr_attach *a = NULL;

	assert_int_equal(egr_policy_new(&pol), 0);
	if (egr_policy_add_list(pol, patterns) < 0)
		fail_msg("%s: %s", patterns, err_last());
	if (egr_attach_new(p, &a, "test", pol, on_decision, s) < 0)
		fail_msg("attach: %s", err_last());
	egr_policy_free(pol);
	egr_attach_phase(a, "test", 1);
	return a;
}

/* --- a raw client of the proxy's socket --- */

static int dial(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	return fd;
}

/* Reads until EOF or `until` (at most cap-1 bytes). */
static size_t read_all(int fd, char *out, size_t cap, int64_t ms)
{
	size_t n = 0;
	int64_t until = util_mono_ms() + ms;

	while (n + 1 < cap) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int64_t left = until - util_mono_ms();
		ssize_t k;
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			break;
		k = read(fd, out + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	return n;
}

/* Sends `len` bytes of `req` and returns the status of the answer; the
 * answer goes to resp[cap]. */
static int ask(egr_attach *a, const char *req, size_t len, char *resp, size_t cap)
{
	int fd = dial(egr_attach_socket(a)), status = 0;

	if (write(fd, req, len) != (ssize_t)len)
		fail_msg("write: %s", strerror(errno));
	read_all(fd, resp, cap, 10000);
	close(fd);
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		return 0;
	return status;
}

__attribute__((unused)) static int get_status(egr_attach *a, const char *host_port,
						const char *path, char *resp, size_t cap)
{
	char req[512];
	int n = snprintf(req, sizeof(req), "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n", host_port,
			 path, host_port);
	return ask(a, req, (size_t)n, resp, cap);
}

/* Requests the stand-in has answered (asked directly, not through the proxy). */
static int registry_count(void)
{
	struct sockaddr_in sa;
	char req[] = "GET /count HTTP/1.0\r\n\r\n", resp[1024];
	int fd = socket(AF_INET, SOCK_STREAM, 0), v = -1;
	char *body;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)g_http);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("the registry stand-in: %s", strerror(errno));
	if (write(fd, req, sizeof(req) - 1) < 0)
		fail_msg("write");
	read_all(fd, resp, sizeof(resp), 5000);
	close(fd);
	body = strstr(resp, "\r\n\r\n");
	if (body)
		v = (int)strtol(body + 4, NULL, 10);
	return v;
}

/* --- the private network and names --- */

static void private_network(void)
{
	char hosts[1024];
	struct ifreq ifr;
	int s;
	FILE *f;

	if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare: %s\n", strerror(errno));
		exit(1);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "mount private: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(hosts, sizeof(hosts), "%s/hosts", getenv("ORCH_DATA_DIR"));
	f = fopen(hosts, "w");
	if (!f)
		exit(1);
	fputs("127.0.0.1 localhost registry.test loopname.test\n"
	      "10.11.12.13 private.test\n"
	      "169.254.169.254 metadata.test\n"
	      "100.100.100.200 cgnat.test\n"
	      "0.0.0.0 zero.test\n"
	      "1.2.3.4 public.test\n"
	      "::1 v6loop.test\n"
	      "fd00::1 ula.test\n",
	      f);
	fclose(f);
	if (mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) < 0) {
		fprintf(stderr, "bind /etc/hosts: %s\n", strerror(errno));
		exit(1);
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	if (s < 0 || ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		fprintf(stderr, "loopback up: %s\n", strerror(errno));
		exit(1);
	}
	close(s);
}

static void start_registry(void)
{
	int p[2];
	char line[128], script[1024];
	ssize_t n;

	snprintf(script, sizeof(script), "tests/fakes/pkg_registry.py");
	if (pipe(p) < 0)
		exit(1);
	g_reg = fork();
	if (g_reg == 0) {
		dup2(p[1], 1);
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	if (n <= 0) {
		fprintf(stderr, "the registry stand-in did not start\n");
		exit(1);
	}
	line[n] = '\0';
	if (sscanf(line, "ports %d %d", &g_http, &g_echo) != 2) {
		fprintf(stderr, "the registry stand-in said: %s\n", line);
		exit(1);
	}
}

