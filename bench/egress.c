/* The egress proxy's cost on loopback: connections per second and the time
 * one connection takes (connect, one 64-byte round trip, close) directly to
 * an echo server and through the proxy (unix socket, CONNECT, the same round
 * trip), measured in the same run; then the round trip over an established
 * tunnel beside a direct connection. The name the proxy resolves is
 * "localhost" (the policy names 127.0.0.1, as a private registry's would).
 *
 *   build/bench/egress [--conns N] [--trips N] [--json FILE] */
#include "core/util.h"
#include "spawner/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int g_port;

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char b[4096];
	ssize_t n;

	while ((n = read(fd, b, sizeof(b))) > 0)
		if (write(fd, b, (size_t)n) != n)
			break;
	close(fd);
	return NULL;
}

static void *echo_main(void *arg)
{
	int l = (int)(intptr_t)arg;

	for (;;) {
		int fd = accept(l, NULL, NULL);
		pthread_t t;
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
	return NULL;
}

static int tcp_connect(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)g_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return fd;
}

static int proxy_connect(const char *path)
{
	struct sockaddr_un sa;
	char req[128], resp[256];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), n;
	size_t got = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect proxy");
		exit(1);
	}
	n = snprintf(req, sizeof(req), "CONNECT localhost:%d HTTP/1.1\r\n\r\n", g_port);
	if (write(fd, req, (size_t)n) != n)
		exit(1);
	while (got < 4 || memcmp(resp + got - 4, "\r\n\r\n", 4) != 0) {
		ssize_t k = read(fd, resp + got, 1);
		if (k <= 0 || ++got >= sizeof(resp)) {
			fprintf(stderr, "the proxy refused: %.*s\n", (int)got, resp);
			exit(1);
		}
	}
	if (strncmp(resp, "HTTP/1.1 200", 12) != 0) {
		fprintf(stderr, "the proxy said: %.*s\n", (int)got, resp);
		exit(1);
	}
	return fd;
}

static void trip(int fd)
{
	char b[64];
	size_t got = 0;

	memset(b, 'x', sizeof(b));
	if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
		exit(1);
	while (got < sizeof(b)) {
		ssize_t k = read(fd, b, sizeof(b) - got);
		if (k <= 0)
			exit(1);
		got += (size_t)k;
	}
}

int main(int argc, char **argv)
{
	int conns = 2000, trips = 5000;
	const char *json = NULL;
	egr_proxy *p = NULL;
	egr_policy *pol = NULL;
	egr_attach *a = NULL;
	int64_t t0;
	double direct_ms, proxy_ms, direct_rt_us, proxy_rt_us;
	int l;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	pthread_t t;
	char pat[64];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--conns") == 0)
			conns = (int)strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--trips") == 0)
			trips = (int)strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--json") == 0)
			json = argv[i + 1];
	}
	signal(SIGPIPE, SIG_IGN);
	l = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 512) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) < 0) {
		perror("listen");
		return 1;
	}
	g_port = ntohs(sa.sin_port);
	pthread_create(&t, NULL, echo_main, (void *)(intptr_t)l);
	snprintf(pat, sizeof(pat), "localhost:%d 127.0.0.1:%d", g_port, g_port);
	if (egr_new(&p, NULL) < 0 || egr_policy_new(&pol) < 0 || egr_policy_add_list(pol, pat) < 0 ||
	    egr_attach_new(p, &a, "bench", pol, NULL, NULL) < 0) {
		fprintf(stderr, "the proxy could not start\n");
		return 1;
	}
	egr_attach_phase(a, "bench", 1);

	/* connections: connect, one round trip, close */
	for (int i = 0; i < 50; i++) { /* warm up */
		int fd = proxy_connect(egr_attach_socket(a));
		trip(fd);
		close(fd);
	}
	t0 = util_mono_us();
	for (int i = 0; i < conns; i++) {
		int fd = tcp_connect();
		trip(fd);
		close(fd);
	}
	direct_ms = (double)(util_mono_us() - t0) / 1000.0 / conns;
	t0 = util_mono_us();
	for (int i = 0; i < conns; i++) {
		int fd = proxy_connect(egr_attach_socket(a));
		trip(fd);
		close(fd);
	}
	proxy_ms = (double)(util_mono_us() - t0) / 1000.0 / conns;

	/* round trips over one open connection */
	{
		int fd = tcp_connect();
		t0 = util_mono_us();
		for (int i = 0; i < trips; i++)
			trip(fd);
		direct_rt_us = (double)(util_mono_us() - t0) / trips;
		close(fd);
		fd = proxy_connect(egr_attach_socket(a));
		t0 = util_mono_us();
		for (int i = 0; i < trips; i++)
			trip(fd);
		proxy_rt_us = (double)(util_mono_us() - t0) / trips;
		close(fd);
	}
	printf("egress proxy on loopback (%d connections, %d round trips of 64 bytes)\n", conns, trips);
	printf("  %-44s %10s %12s\n", "", "direct", "through proxy");
	printf("  %-44s %10.0f %12.0f\n", "connections per second (connect, trip, close)",
	       1000.0 / direct_ms, 1000.0 / proxy_ms);
	printf("  %-44s %10.3f %12.3f   (+%.3f ms)\n", "one connection, ms", direct_ms, proxy_ms,
	       proxy_ms - direct_ms);
	printf("  %-44s %10.1f %12.1f   (+%.1f us)\n", "round trip on an open connection, us",
	       direct_rt_us, proxy_rt_us, proxy_rt_us - direct_rt_us);
	printf("  (the proxy resolves localhost, checks the policy and the address, and\n"
	       "   relays through a thread per connection; in a sandbox the forwarder adds\n"
	       "   one more loopback hop)\n");
	if (json) {
		FILE *f = fopen(json, "w");
		if (f) {
			fprintf(f,
				"{\"conns\": %d, \"trips\": %d, \"direct_conns_per_s\": %.1f, "
				"\"proxy_conns_per_s\": %.1f, \"direct_conn_ms\": %.4f, \"proxy_conn_ms\": "
				"%.4f, \"added_conn_ms\": %.4f, \"direct_trip_us\": %.2f, \"proxy_trip_us\": "
				"%.2f, \"added_trip_us\": %.2f}\n",
				conns, trips, 1000.0 / direct_ms, 1000.0 / proxy_ms, direct_ms, proxy_ms,
				proxy_ms - direct_ms, direct_rt_us, proxy_rt_us, proxy_rt_us - direct_rt_us);
			fclose(f);
		}
	}
	egr_detach(a);
	egr_policy_free(pol);
	egr_free(p);
	return 0;
}
