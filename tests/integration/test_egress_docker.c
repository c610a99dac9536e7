/* The egress proxy on the docker backend, on a real Docker engine (the
 * private dockerd of `make test`, DOCKER_HOST) with the worker image (Debian
 * with Python): containers with an egress socket reach the registry
 * stand-in through the proxy, by HTTP_PROXY and by a CONNECT tunnel, and
 * nothing directly; the phase without network and a host outside the policy
 * are refused with the proxy's reason; many connections at once pass the
 * forwarder; the command keeps its status, signals, input and exec errors
 * behind the forwarder; `sandbox run --backend docker --allow-host`. The
 * stand-in and the proxy live in this program's private network namespace
 * (egress_common.c); a container reaches the proxy only through the socket
 * bound into it. */
#include "egress_common.c"

#include <limits.h>
#include <sys/stat.h>

static const char *g_image;

/* Runs `script` (sh -c) in a fresh container of a box with `a`'s socket
 * (none when NULL), stdout and stderr into out; returns the exit status.
 * The box's reason goes to why[cap] when why is not NULL. */
static int docker_sh(egr_attach *a, const char *script, const char *input, buf *out, char *why,
		     size_t cap)
{
	sbx_opts o;
	sbx *b = NULL;
	sbx_cmd c;
	sbx_result r;
	const char *argv[] = {"sh", "-c", script, NULL};
	int code;

	memset(&o, 0, sizeof(o));
	o.backend = SBX_DOCKER;
	o.image = g_image;
	o.mem_bytes = 256 << 20;
	o.egress_socket = a ? egr_attach_socket(a) : NULL;
	if (sbx_new(&b, &o) < 0)
		fail_msg("sbx_new: %s", err_last());
	memset(&c, 0, sizeof(c));
	c.argv = argv;
	c.timeout_ms = 120000;
	c.stdin_data = input;
	c.stdin_len = input ? strlen(input) : 0;
	if (sbx_run(b, &c, &r) < 0)
		fail_msg("sbx_run: %s", err_last());
	buf_reset(out);
	buf_append(out, r.out.data ? r.out.data : "", r.out.len);
	buf_append(out, r.err.data ? r.err.data : "", r.err.len);
	if (why)
		snprintf(why, cap, "%s", r.reason);
	code = r.exit_code;
	sbx_result_free(&r);
	sbx_free(b);
	return code;
}

static void test_container_reaches_only_the_proxy(void **state)
{
	char pats[100], script[2000];
	seen s;
	egr_attach *a;
	buf out;
	int before = registry_count();
	(void)state;

	buf_init(&out, 0);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:* 127.0.0.1:*");
	a = attach(g_proxy, &s, pats);
	/* urllib honours HTTP_PROXY as curl and pip do; a raw tunnel through
	 * the forwarder; then direct connections, which must all fail */
	snprintf(script, sizeof(script),
		 "echo \"proxy=$HTTP_PROXY npm=$npm_config_https_proxy\"; "
		 "python3 -c '\n"
		 "import socket, urllib.request\n"
		 "print(urllib.request.urlopen(\"http://registry.test:%d/hello\", timeout=30).read().decode(), end=\"\")\n"
		 "s = socket.create_connection((\"127.0.0.1\", 3128))\n"
		 "s.sendall(b\"CONNECT registry.test:%d HTTP/1.1\\r\\n\\r\\n\")\n"
		 "print(s.recv(100).split(b\"\\r\\n\")[0].decode())\n"
		 "s.sendall(b\"tunnel-bytes\"); print(s.recv(100).decode())\n"
		 "for a in ((\"127.0.0.1\", %d), (\"10.11.12.13\", 80), (\"1.2.3.4\", 443)):\n"
		 "    try:\n"
		 "        socket.create_connection(a, timeout=3); print(\"DIRECT-REACHED\", a)\n"
		 "    except OSError as e: print(\"direct\", a[0], \"failed:\", e.strerror)\n"
		 "'",
		 g_http, g_echo, g_http);
	assert_int_equal(docker_sh(a, script, NULL, &out, NULL, 0), 0);
	if (!strstr(out.data, "proxy=http://127.0.0.1:3128 npm=http://127.0.0.1:3128") ||
	    !strstr(out.data, "hello from the registry") ||
	    !strstr(out.data, "HTTP/1.1 200 Connection established") ||
	    !strstr(out.data, "tunnel-bytes") || strstr(out.data, "DIRECT-REACHED") ||
	    !strstr(out.data, "direct 127.0.0.1 failed") || !strstr(out.data, "direct 10.11.12.13 failed") ||
	    !strstr(out.data, "direct 1.2.3.4 failed"))
		fail_msg("inside the container:\n%s", out.data);
	await_seen(&s, 2);
	assert_int_equal(s.allowed, 2);
	assert_int_equal(registry_count(), before + 1);

	/* without egress: no proxy variables, and nothing listens on 3128 */
	assert_int_equal(docker_sh(NULL,
				   "test -z \"$HTTP_PROXY\" || exit 3; python3 -c '\n"
				   "import socket\n"
				   "try:\n"
				   "    socket.create_connection((\"127.0.0.1\", 3128), timeout=3); print(\"REACHED\")\n"
				   "except OSError as e: print(\"no proxy:\", e.strerror)\n"
				   "'",
				   NULL, &out, NULL, 0),
			 0);
	if (!strstr(out.data, "no proxy: Connection refused"))
		fail_msg("without egress:\n%s", out.data);
	egr_detach(a);
	buf_free(&out);
}

/* The proxy's refusals reach the command as HTTP answers with the reason. */
static void test_refusals_inside(void **state)
{
	char pats[100], script[1200];
	seen s;
	egr_attach *a;
	buf out;
	int before = registry_count();
	(void)state;

	buf_init(&out, 0);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	egr_attach_phase(a, "agent", 0);
	snprintf(script, sizeof(script),
		 "python3 -c '\n"
		 "import urllib.request, urllib.error\n"
		 "for u in (\"http://registry.test:%d/hello\", \"http://other.test:%d/hello\"):\n"
		 "    try:\n"
		 "        urllib.request.urlopen(u, timeout=30); print(\"REACHED\", u)\n"
		 "    except urllib.error.HTTPError as e: print(e.code, e.read().decode().strip())\n"
		 "'",
		 g_http, g_http);
	assert_int_equal(docker_sh(a, script, NULL, &out, NULL, 0), 0);
	if (strstr(out.data, "REACHED") || !strstr(out.data, "403 orchestrator egress proxy: the "
							     "agent phase has no network"))
		fail_msg("with the phase off:\n%s", out.data);
	egr_attach_phase(a, "setup", 1);
	assert_int_equal(docker_sh(a, script, NULL, &out, NULL, 0), 0);
	if (!strstr(out.data, "REACHED http://registry.test:"))
		fail_msg("with the phase on:\n%s", out.data);
	if (!strstr(out.data, "403 orchestrator egress proxy: other.test:") ||
	    !strstr(out.data, "is not in the project's network policy"))
		fail_msg("a host outside the policy:\n%s", out.data);
	await_seen(&s, 4);
	assert_int_equal(s.allowed, 1);
	assert_int_equal(s.denied, 3);
	assert_int_equal(registry_count(), before + 1);
	egr_detach(a);
	buf_free(&out);
}

/* Twenty connections at once through the forwarder, each answered. */
static void test_many_connections(void **state)
{
	char pats[100], script[1200];
	seen s;
	egr_attach *a;
	buf out;
	(void)state;

	buf_init(&out, 0);
	seen_init(&s);
	snprintf(pats, sizeof(pats), "registry.test:%d 127.0.0.1:%d", g_http, g_http);
	a = attach(g_proxy, &s, pats);
	snprintf(script, sizeof(script),
		 "python3 -c '\n"
		 "import threading, urllib.request\n"
		 "ok = []\n"
		 "def get():\n"
		 "    r = urllib.request.urlopen(\"http://registry.test:%d/big?n=200000\", timeout=60)\n"
		 "    ok.append(len(r.read()))\n"
		 "ts = [threading.Thread(target=get) for _ in range(20)]\n"
		 "[t.start() for t in ts]; [t.join() for t in ts]\n"
		 "print(\"answers\", len(ok), \"bytes\", sum(ok))\n"
		 "'",
		 g_http);
	assert_int_equal(docker_sh(a, script, NULL, &out, NULL, 0), 0);
	if (!strstr(out.data, "answers 20 bytes 4000000"))
		fail_msg("twenty at once:\n%s", out.data);
	await_seen(&s, 20);
	assert_int_equal(s.allowed, 20);
	egr_detach(a);
	buf_free(&out);
}

/* Behind the forwarder the command is the container's command: its status,
 * its signal, its input, its exec errors in the backend's words, and the
 * forwarder is not its child. */
static void test_command_behind_the_forwarder(void **state)
{
	const char *missing[] = {"no-such-command", NULL};
	seen s;
	egr_attach *a;
	buf out;
	char why[256];
	sbx_opts o;
	sbx *b = NULL;
	sbx_cmd c;
	sbx_result r;
	(void)state;

	buf_init(&out, 0);
	seen_init(&s);
	a = attach(g_proxy, &s, "registry.test");
	assert_int_equal(docker_sh(a, "exit 7", NULL, &out, NULL, 0), 7);
	assert_int_equal(docker_sh(a, "kill -TERM $$", NULL, &out, NULL, 0), 128 + SIGTERM);
	assert_int_equal(docker_sh(a, "cat; sleep 1 & wait; echo \"children: $(jobs -p | wc -l)\"",
				   "from stdin\n", &out, NULL, 0),
			 0);
	assert_string_equal(buf_cstr(&out), "from stdin\nchildren: 0\n");
	/* the forwarder runs beside the command, adopted by the init */
	assert_int_equal(docker_sh(a, "echo \"fwd-parent: $(ps -o ppid= -p \"$(pgrep -f "
				      "'^/run/orch-egress-fwd')\" | tr -d ' ')\"; echo \"sh-parent: "
				      "$(ps -o ppid= -p $$ | tr -d ' ')\"",
				   NULL, &out, NULL, 0),
			 0);
	assert_string_equal(buf_cstr(&out), "fwd-parent: 1\nsh-parent: 1\n");
	memset(&o, 0, sizeof(o));
	o.backend = SBX_DOCKER;
	o.image = g_image;
	o.egress_socket = egr_attach_socket(a);
	if (sbx_new(&b, &o) < 0)
		fail_msg("sbx_new: %s", err_last());
	assert_non_null(strstr(sbx_describe(b), "egress proxy on 127.0.0.1:3128"));
	memset(&c, 0, sizeof(c));
	c.argv = missing;
	assert_int_equal(sbx_run(b, &c, &r), 0);
	assert_int_equal(r.exit_code, 127);
	snprintf(why, sizeof(why), "%s", r.reason);
	if (!strstr(why, "cannot run no-such-command: No such file or directory"))
		fail_msg("reason: %s; stderr: %s", why, buf_cstr(&r.err));
	sbx_result_free(&r);
	sbx_free(b);
	/* the forwarder was written once beside the socket, read-only to all */
	{
		char fwd[PATH_MAX];
		const char *sock = egr_attach_socket(a);
		struct stat st;

		snprintf(fwd, sizeof(fwd), "%.*s/egress-fwd", (int)(strrchr(sock, '/') - sock), sock);
		assert_int_equal(stat(fwd, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0555);
	}
	egr_detach(a);
	buf_free(&out);
}

/* sandbox run --backend docker --allow-host; the proxy's folder goes with it. */
static void test_cli_allow_host_docker(void **state)
{
	char cmd[1500], line[512];
	buf out;
	FILE *f;
	int rc;
	(void)state;

	buf_init(&out, 0);
	snprintf(cmd, sizeof(cmd),
		 "'%s' sandbox run --backend docker --image %s --allow-host registry.test:%d "
		 "--allow-host 127.0.0.1:%d -- python3 -c 'import urllib.request as u; "
		 "print(u.urlopen(\"http://registry.test:%d/hello\").read().decode(), end=\"\")' 2>&1; "
		 "'%s' sandbox run --backend docker --image %s --allow-host registry.test:%d -- "
		 "python3 -c 'import urllib.request as u; u.urlopen(\"http://evil.test:%d/x\")' "
		 ">/dev/null 2>&1; echo \"denied: $?\"; "
		 "'%s' sandbox run --backend docker --image %s --allow-host registry.test:%d -- "
		 "python3 -c 'import urllib.request as u; u.urlopen(\"http://evil.test:%d/x\")' 2>&1 "
		 "| grep '^sandbox: network'",
		 ts_bin(), g_image, g_http, g_http, g_http, ts_bin(), g_image, g_http, g_http, ts_bin(),
		 g_image, g_http, g_http);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
		buf_puts(&out, line);
	rc = f ? pclose(f) : -1;
	if (rc != 0 || !strstr(out.data, "hello from the registry") ||
	    !strstr(out.data, "sandbox: network: allowed GET registry.test") ||
	    !strstr(out.data, "sandbox: network: denied GET evil.test") ||
	    !strstr(out.data, "denied: 1"))
		fail_msg("sandbox run --backend docker --allow-host (status %d):\n%s", rc,
			 out.data ? out.data : "");
	buf_free(&out);
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
		cmocka_unit_test(test_container_reaches_only_the_proxy),
		cmocka_unit_test(test_refusals_inside),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_command_behind_the_forwarder),
		cmocka_unit_test(test_cli_allow_host_docker),
	};
	const char *why = getenv("ORCH_TEST_DOCKER_SKIP");
	int rc;

	g_image = getenv("ORCH_TEST_IMAGE_WORKER");
	if (!getenv("DOCKER_HOST") || !g_image || !*g_image) {
		printf("1..1\nok 1 - egress on docker # SKIP\n");
		printf("skipped: no Docker engine: %s\n",
		       why && *why ? why : "run through `make test`, which starts a private dockerd");
		return 0;
	}
	private_network();
	start_registry();
	ts_init();
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	kill(g_reg, SIGTERM);
	waitpid(g_reg, NULL, 0);
	return rc;
}
