/* The egress proxy against real servers on loopback (egress_common.c: a
 * registry stand-in and a TCP echo server, in a private network namespace
 * with test names), reached through the proxy's unix socket directly and
 * from inside real ns sandboxes through their forwarder; every published
 * bypass form; the connection and byte limits; `sandbox run --allow-host`;
 * the proxy's counters on /metrics. */
#include "egress_common.c"
#include "core/metrics.h"

/* --- cases --- */

static void test_allowed_and_denied(void **state)
{
	char hp[64], resp[4096], pats[200];
	seen s;
	egr_attach *a;
	int before = registry_count();
	(void)state;

	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	snprintf(hp, sizeof(hp), "registry.test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	assert_non_null(strstr(resp, "hello from the registry"));
	assert_non_null(strstr(resp, "Connection: close"));
	await_seen(&s, 1);
	assert_int_equal(s.allowed, 1);
	assert_true(s.last_down > 20);

	/* a host outside the policy, and the right host on another port */
	snprintf(hp, sizeof(hp), "other.test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 403);
	assert_non_null(strstr(resp, "not in the project's network policy"));
	snprintf(hp, sizeof(hp), "registry.test:%d", g_echo);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 403);
	/* letters without case */
	snprintf(hp, sizeof(hp), "REGISTRY.Test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	await_seen(&s, 4);
	assert_int_equal(s.allowed, 2);
	assert_int_equal(s.denied, 2);
	assert_int_equal(registry_count(), before + 2);
	egr_detach(a);
}

/* Names that resolve to a loopback, private, link-local or metadata address
 * are refused unless the policy names the address; nothing is connected. */
static void test_private_addresses_refused_unless_named(void **state)
{
	static const struct {
		const char *host, *word;
	} cases[] = {
		{"registry.test", "loopback"},   {"loopname.test", "loopback"},
		{"private.test", "private"},     {"metadata.test", "link-local"},
		{"cgnat.test", "carrier-grade"}, {"v6loop.test", "loopback"},
		{"zero.test", "this network"},   {"ula.test", "private"},
		{"localhost", "loopback"},
	};
	char pats[200], req[300], resp[4096];
	seen s;
	egr_attach *a;
	int before = registry_count();
	(void)state;

	seen_init(&s);
	snprintf(pats, sizeof(pats), "*.test:* localhost:*");
	a = attach(g_proxy, &s, pats);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\n\r\n", cases[i].host,
				 g_http);
		int st = ask(a, req, (size_t)n, resp, sizeof(resp));
		if (st != 403 || !strstr(resp, cases[i].word))
			fail_msg("%s: status %d, wanted 403 naming %s: %s", cases[i].host, st,
				 cases[i].word, resp);
	}
	egr_detach(a);
	assert_int_equal(registry_count(), before);

	/* naming the address lets the name through; a public address is
	 * allowed by name (and, with no route here, fails to connect) */
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d public.test", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	snprintf(req, sizeof(req), "registry.test:%d", g_http);
	assert_int_equal(get_status(a, req, "/hello", resp, sizeof(resp)), 200);
	assert_int_equal(get_status(a, "public.test", "/hello", resp, sizeof(resp)), 502);
	assert_non_null(strstr(resp, "1.2.3.4"));
	egr_detach(a);
}

/* Every malformed request and host form is refused before any resolution
 * or connection: the stand-in sees none of them. */
static void test_bypass_forms_refused(void **state)
{
	const char *targets[] = {
		"registry.test.:%d",          "registry..test:%d",        ".registry.test:%d",
		"2130706433:%d",              "0177.0.0.1:%d",            "0x7f.0.0.1:%d",
		"0x7f000001:%d",              "127.1:%d",                 "127.0.0.01:%d",
		"017700000001:%d",            "127.0.0.1.:%d",            "[::1]:%d",
		"[0:0:0:0:0:0:0:1]:%d",       "[::ffff:127.0.0.1]:%d",    "[::ffff:7f00:1]:%d",
		"[fe80::1%%25lo]:%d",         "[::1:%d",                  "registry.test@evil.test:%d",
		"evil.test:%d@registry.test", "registry.test\\evil.test:%d", "reg\xc4\xb1stry.test:%d",
		"registry_test:%d",           "-registry.test:%d",        "registry.test:0",
		"registry.test:65536",    "registry.test:+%d",        "registry.test:0x50",
		"registry.test",          "*.test:%d",                "registry.test:%d:80",
	};
	/* raw requests (PORT stands for the port): NUL, CR/LF and spaces in the
	 * target, bare line feeds, control bytes, origin-form and https URLs */
#define R(x) {x, sizeof(x) - 1}
	static const struct {
		const char *s;
		size_t n;
	} raw[] = {
		R("CONNECT registry.test\0.evil.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test:PORT\0 HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test\r\n.evil.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test\r.evil.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test\n.evil.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test .evil.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test:PORT  HTTP/1.1\r\n\r\n"),
		R("CONNECT  registry.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT\tregistry.test:PORT HTTP/1.1\r\n\r\n"),
		R("CONNECT registry.test:PORT HTTP/1.1\nHost: x\n\n"),
		R("CONNECT registry.test:PORT HTTP/1.1\r\nX-A: \x01\r\n\r\n"),
		R("CONNECT registry.test:PORT HTTP/2\r\n\r\n"),
		R("connect registry.test:PORT HTTP/1.1\r\n\r\n"),
		R("GET /hello HTTP/1.1\r\nHost: registry.test:PORT\r\n\r\n"),
		R("GET https://registry.test:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET ftp://registry.test:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET http://registry.test:PORT@evil.test/hello HTTP/1.1\r\n\r\n"),
		R("GET http://user@registry.test:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET http://registry.test.:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET http://registry.test:PORT\\@evil.test/hello HTTP/1.1\r\n\r\n"),
		R("GET http://2130706433:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET http://[::ffff:127.0.0.1]:PORT/hello HTTP/1.1\r\n\r\n"),
		R("GET http://registry.test:PORT/hello HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n"),
		R("GET http://registry.test%2ePORT/hello HTTP/1.1\r\n\r\n"),
	};
#undef R
	char pats[200], req[600], resp[4096];
	seen s;
	egr_attach *a;
	int before = registry_count(), expect = 0;
	(void)state;

	seen_init(&s);
	/* the policy names the stand-in by name only (loopback stays closed)
	 * and every other test name */
	snprintf(pats, sizeof(pats), "registry.test:%d *.test:*", g_http);
	a = attach(g_proxy, &s, pats);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char t[200];
		int n, st;
		if (strstr(targets[i], "%d"))
			snprintf(t, sizeof(t), targets[i], g_http);
		else
			snprintf(t, sizeof(t), "%s", targets[i]);
		n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\n\r\n", t);
		st = ask(a, req, (size_t)n, resp, sizeof(resp));
		if (st != 400 && st != 403)
			fail_msg("CONNECT %s: status %d: %s", t, st, resp);
		expect++;
	}
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		const char *at = memmem(raw[i].s, raw[i].n, "PORT", 4);
		size_t k = (size_t)(at - raw[i].s);
		int n, st;
		char num[16];

		n = snprintf(num, sizeof(num), "%d", g_http);
		memcpy(req, raw[i].s, k);
		memcpy(req + k, num, (size_t)n);
		memcpy(req + k + (size_t)n, at + 4, raw[i].n - k - 4);
		st = ask(a, req, raw[i].n - 4 + (size_t)n, resp, sizeof(resp));
		if (st != 400 && st != 403)
			fail_msg("raw request %zu: status %d: %s", i, st, resp);
		expect++;
	}
	await_seen(&s, expect);
	assert_int_equal(s.denied, expect);
	assert_int_equal(s.allowed, 0);
	egr_detach(a);
	assert_int_equal(registry_count(), before);

	/* with the address named, the malformed forms stay refused; an IPv4
	 * mapped IPv6 literal is that address, and is judged as it */
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	{
		const char *still[] = {"2130706433", "0177.0.0.1", "127.1", "registry.test.", "[::1]"};
		for (size_t i = 0; i < sizeof(still) / sizeof(still[0]); i++) {
			int n = snprintf(req, sizeof(req), "GET http://%s:%d/hello HTTP/1.1\r\n\r\n",
					 still[i], g_http);
			int st = ask(a, req, (size_t)n, resp, sizeof(resp));
			if (st != 400 && st != 403)
				fail_msg("%s with 127.0.0.1 named: status %d: %s", still[i], st, resp);
		}
	}
	{
		char hp[64];
		snprintf(hp, sizeof(hp), "[::ffff:127.0.0.1]:%d", g_http);
		assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	}
	egr_detach(a);
	assert_int_equal(registry_count(), before + 1);
}

/* A CONNECT tunnel carries bytes both ways (TLS would pass as it is). */
static void test_connect_tunnel(void **state)
{
	char pats[100], req[200], resp[600];
	seen s;
	egr_attach *a;
	int fd, n;
	(void)state;

	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_echo, g_echo);
	a = attach(g_proxy, &s, pats);
	fd = dial(egr_attach_socket(a));
	n = snprintf(req, sizeof(req), "CONNECT registry.test:%d HTTP/1.1\r\nHost: x\r\n\r\nearly ", g_echo);
	assert_int_equal(write(fd, req, (size_t)n), n);
	assert_int_equal(write(fd, "ping", 4), 4);
	shutdown(fd, SHUT_WR);
	read_all(fd, resp, sizeof(resp), 5000);
	close(fd);
	assert_non_null(strstr(resp, "HTTP/1.1 200"));
	assert_non_null(strstr(resp, "\r\n\r\nearly ping"));
	await_seen(&s, 1);
	assert_int_equal(s.allowed, 1);
	assert_int_equal(s.last_down, 10);
	egr_detach(a);
}

static void test_connection_and_byte_limits(void **state)
{
	egr_proxy *p = NULL;
	egr_config cfg;
	char pats[100], req[200], resp[4096], hp[64];
	seen s;
	egr_attach *a;
	int fds[3];
	(void)state;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = 3;
	cfg.max_bytes = 200000;
	assert_int_equal(egr_new(&p, &cfg), 0);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:* 127.0.0.1:*");
	a = attach(p, &s, pats);
	for (int i = 0; i < 3; i++) {
		int n = snprintf(req, sizeof(req), "CONNECT registry.test:%d HTTP/1.1\r\n\r\n", g_echo);
		char ok[100];
		fds[i] = dial(egr_attach_socket(a));
		assert_int_equal(write(fds[i], req, (size_t)n), n);
		assert_true(read(fds[i], ok, sizeof(ok)) > 0);
		assert_non_null(strstr(ok, " 200 "));
	}
	/* the fourth at once is refused, and says why */
	snprintf(hp, sizeof(hp), "registry.test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 429);
	assert_non_null(strstr(resp, "connection limit (3"));
	close(fds[0]);
	await_seen(&s, 2); /* the refused one and the closed tunnel */
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	close(fds[1]);
	close(fds[2]);
	await_seen(&s, 5);

	/* bytes: a download past the limit is cut, and nothing more goes */
	{
		int fd = dial(egr_attach_socket(a));
		char big[200000];
		size_t got;
		int n = snprintf(req, sizeof(req), "GET http://%s/big?n=1000000 HTTP/1.1\r\n\r\n", hp);
		assert_int_equal(write(fd, req, (size_t)n), n);
		got = 0;
		for (;;) {
			ssize_t k = read(fd, big, sizeof(big));
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		close(fd);
		assert_true(got < 300000);
		await_seen(&s, 6);
		assert_non_null(strstr(s.last_reason, "byte limit"));
	}
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 403);
	assert_non_null(strstr(resp, "byte limit"));
	egr_detach(a);
	egr_free(p);
}

static void test_phase_without_network(void **state)
{
	char pats[100], hp[64], resp[2048];
	seen s;
	egr_attach *a;
	(void)state;

	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	egr_attach_phase(a, "agent", 0);
	snprintf(hp, sizeof(hp), "registry.test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 403);
	assert_non_null(strstr(resp, "the agent phase has no network"));
	egr_attach_phase(a, "setup", 1);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	egr_detach(a);
}

static void test_policy_patterns(void **state)
{
	egr_policy *p = NULL;
	const char *bad[] = {"", "*", "a.*.org", "exa mple.org", "example.org.", "2130706433",
			     "host:0", "host:99999", "10.0.0.0/33", "[::1", "x@y.org", "*.", NULL};
	const char *good[] = {"registry.npmjs.org", "*.pythonhosted.org", "host:8080", "*.x.org:*",
			      "10.1.2.3", "[fd00::1]:443", "10.0.0.0/8:8081", "fd00::/8", "[fd00::]/8:443",
			      NULL};
	(void)state;

	assert_int_equal(egr_policy_new(&p), 0);
	for (int i = 0; bad[i]; i++)
		if (egr_policy_add(p, bad[i]) == 0)
			fail_msg("the pattern '%s' was accepted", bad[i]);
	for (int i = 0; good[i]; i++)
		if (egr_policy_add(p, good[i]) < 0)
			fail_msg("the pattern '%s' was refused: %s", good[i], err_last());
	egr_policy_free(p);
}

/* --- the sandbox side --- */

static int sandbox_sh(egr_attach *a, const char *script, buf *out)
{
	sbx_opts o;
	sbx *b = NULL;
	sbx_cmd c;
	sbx_result r;
	const char *argv[] = {"sh", "-c", script, NULL};
	int code;

	memset(&o, 0, sizeof(o));
	o.egress_socket = a ? egr_attach_socket(a) : NULL;
	if (sbx_new(&b, &o) < 0)
		fail_msg("sbx_new: %s", err_last());
	memset(&c, 0, sizeof(c));
	c.argv = argv;
	c.timeout_ms = 60000;
	if (sbx_run(b, &c, &r) < 0)
		fail_msg("sbx_run: %s", err_last());
	buf_reset(out);
	buf_append(out, r.out.data ? r.out.data : "", r.out.len);
	buf_append(out, r.err.data ? r.err.data : "", r.err.len);
	code = r.exit_code;
	sbx_result_free(&r);
	sbx_free(b);
	return code;
}

static void test_sandbox_reaches_only_the_proxy(void **state)
{
	char pats[100], script[1500];
	seen s;
	egr_attach *a;
	buf out;
	int before = registry_count();
	(void)state;

	buf_init(&out, 0);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:* 127.0.0.1:*");
	a = attach(g_proxy, &s, pats);
	/* through the proxy, as tools do with HTTP_PROXY; a tunnel through the
	 * forwarder; then direct connections, which must all fail */
	snprintf(script, sizeof(script),
		 "echo \"proxy=$HTTP_PROXY npm=$npm_config_https_proxy\"; "
		 "curl -sS http://registry.test:%d/hello || echo VIA-PROXY-FAILED; "
		 "python3 -c '\n"
		 "import socket\n"
		 "s = socket.create_connection((\"127.0.0.1\", 3128))\n"
		 "s.sendall(b\"CONNECT registry.test:%d HTTP/1.1\\r\\n\\r\\n\")\n"
		 "print(s.recv(100).split(b\"\\r\\n\")[0].decode())\n"
		 "s.sendall(b\"tunnel-bytes\"); print(s.recv(100).decode())\n"
		 "'; "
		 "curl -sS -m 5 --noproxy '*' http://registry.test:%d/hello && echo DIRECT-REACHED; "
		 "python3 -c '\n"
		 "import socket\n"
		 "for a in ((\"127.0.0.1\", %d), (\"10.11.12.13\", 80), (\"1.2.3.4\", 443)):\n"
		 "    try:\n"
		 "        socket.create_connection(a, timeout=3); print(\"DIRECT-REACHED\", a)\n"
		 "    except OSError as e: print(\"direct\", a[0], \"failed:\", e.strerror)\n"
		 "'",
		 g_http, g_echo, g_http, g_http);
	assert_int_equal(sandbox_sh(a, script, &out), 0);
	if (!strstr(out.data, "proxy=http://127.0.0.1:3128 npm=http://127.0.0.1:3128") ||
	    !strstr(out.data, "hello from the registry") || strstr(out.data, "VIA-PROXY-FAILED") ||
	    !strstr(out.data, "HTTP/1.1 200 Connection established") ||
	    !strstr(out.data, "tunnel-bytes") || strstr(out.data, "DIRECT-REACHED") ||
	    !strstr(out.data, "direct 127.0.0.1 failed") || !strstr(out.data, "direct 10.11.12.13 failed") ||
	    !strstr(out.data, "direct 1.2.3.4 failed"))
		fail_msg("inside the sandbox:\n%s", out.data);
	await_seen(&s, 2);
	assert_int_equal(s.allowed, 2);
	/* one request through the proxy reached the stand-in; the direct ones none */
	assert_int_equal(registry_count(), before + 1);

	/* without egress nothing is reached, not even the proxy's port */
	assert_int_not_equal(sandbox_sh(NULL, "curl -sS -m 5 http://registry.test:1/ 2>&1; "
					       "test -z \"$HTTP_PROXY\" && exit 3",
					&out),
			     0);
	egr_detach(a);
	buf_free(&out);
}

static void test_cli_allow_host(void **state)
{
	char cmd[1500];
	buf out;
	int rc;
	(void)state;

	buf_init(&out, 0);
	snprintf(cmd, sizeof(cmd),
		 "'%s' sandbox run --allow-host registry.test:%d --allow-host 127.0.0.1:%d -- "
		 "curl -sS http://registry.test:%d/hello 2>&1",
		 ts_bin(), g_http, g_http, g_http);
	{
		FILE *f = popen(cmd, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f))
			buf_puts(&out, line);
		rc = f ? pclose(f) : -1;
	}
	if (rc != 0 || !strstr(out.data, "hello from the registry") ||
	    !strstr(out.data, "sandbox: network: allowed GET registry.test"))
		fail_msg("sandbox run --allow-host (status %d):\n%s", rc, out.data ? out.data : "");
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd),
		 "'%s' sandbox run --allow-host registry.test:%d -- curl -sS http://evil.test:%d/x 2>&1; "
		 "'%s' sandbox run --allow-host 'bad pattern' -- true 2>&1",
		 ts_bin(), g_http, g_http, ts_bin());
	{
		FILE *f = popen(cmd, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f))
			buf_puts(&out, line);
		if (f)
			pclose(f);
	}
	if (!strstr(out.data, "sandbox: network: denied GET evil.test") ||
	    !strstr(out.data, "is not in the project's network policy") ||
	    !strstr(out.data, "--allow-host: host pattern 'bad pattern'"))
		fail_msg("sandbox run, refused:\n%s", out.data ? out.data : "");
	buf_free(&out);
}

/* --- /metrics --- */

/* The value of one series in this process's exposition (0 when absent). */
static double metric(const char *series)
{
	buf out;
	const char *at;
	size_t n = strlen(series);
	double v = 0;

	buf_init(&out, 0);
	assert_int_equal(met_render(&out), 0);
	for (at = buf_cstr(&out); (at = strstr(at, series)) != NULL; at += n)
		if ((at == out.data || at[-1] == '\n') && at[n] == ' ') {
			v = strtod(at + n + 1, NULL);
			break;
		}
	buf_free(&out);
	return v;
}

#define CONNS(d, r) "orch_egress_connections_total{decision=\"" d "\",reason=\"" r "\"}"

/* Each decision counted by its class; bytes both ways; open connections
 * and attached workers as gauges that come back down. */
static void test_metrics(void **state)
{
	static const char *const series[] = {
		CONNS("allowed", "policy"), CONNS("denied", "host"),      CONNS("denied", "address"),
		CONNS("denied", "malformed"), CONNS("denied", "phase"),   CONNS("denied", "resolve"),
		"orch_egress_bytes_total{direction=\"up\"}", "orch_egress_bytes_total{direction=\"down\"}",
		"orch_egress_workers",
	};
	double before[9], after[9];
	char pats[200], hp[64], resp[4096], req[200];
	seen s;
	egr_attach *a;
	int fd, n;
	(void)state;

	for (size_t i = 0; i < 9; i++)
		before[i] = metric(series[i]);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d *.test:* nowhere.invalid", g_http,
		 g_http);
	a = attach(g_proxy, &s, pats);
	assert_int_equal(metric("orch_egress_workers"), before[8] + 1);
	snprintf(hp, sizeof(hp), "registry.test:%d", g_http);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 200);
	assert_int_equal(get_status(a, "elsewhere.org", "/", resp, sizeof(resp)), 403);
	assert_int_equal(get_status(a, "private.test:80", "/", resp, sizeof(resp)), 403);
	assert_int_equal(get_status(a, "2130706433:80", "/", resp, sizeof(resp)), 400);
	assert_int_equal(get_status(a, "nowhere.invalid", "/", resp, sizeof(resp)), 502);
	egr_attach_phase(a, "agent", 0);
	assert_int_equal(get_status(a, hp, "/hello", resp, sizeof(resp)), 403);
	egr_attach_phase(a, "test", 1);
	/* a connection held open is a gauge until it ends */
	fd = dial(egr_attach_socket(a));
	n = snprintf(req, sizeof(req), "CONNECT registry.test:%d HTTP/1.1\r\n\r\n", g_http);
	assert_int_equal(write(fd, req, (size_t)n), n);
	assert_true(read(fd, resp, sizeof(resp)) > 0);
	assert_true(metric("orch_egress_connections_open") >= 1);
	close(fd);
	await_seen(&s, 7);
	egr_detach(a);
	for (size_t i = 0; i < 9; i++)
		after[i] = metric(series[i]);
	assert_int_equal(after[0] - before[0], 2);
	for (size_t i = 1; i < 6; i++)
		if (after[i] - before[i] != 1)
			fail_msg("%s went from %g to %g, not by one", series[i], before[i], after[i]);
	assert_true(after[6] - before[6] >= 40);   /* the GET sent up */
	assert_true(after[7] - before[7] >= 20);   /* the registry's answer */
	assert_int_equal(after[8], before[8]);
	assert_int_equal(metric("orch_egress_connections_open"), 0);
}

static int setup(void **state)
{
	(void)state;
	if (egr_new(&g_proxy, NULL) < 0)
		fail_msg("egr_new: %s", err_last());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	egr_free(g_proxy);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_patterns),
		cmocka_unit_test(test_allowed_and_denied),
		cmocka_unit_test(test_private_addresses_refused_unless_named),
		cmocka_unit_test(test_bypass_forms_refused),
		cmocka_unit_test(test_connect_tunnel),
		cmocka_unit_test(test_connection_and_byte_limits),
		cmocka_unit_test(test_phase_without_network),
		cmocka_unit_test(test_sandbox_reaches_only_the_proxy),
		cmocka_unit_test(test_cli_allow_host),
		cmocka_unit_test(test_metrics),
	};
	int rc;

	private_network();
	start_registry();
	ts_init();
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	kill(g_reg, SIGTERM);
	waitpid(g_reg, NULL, 0);
	return rc;
}
