/* orchestrator sandbox — run one command in a sandbox (the library the
 * spawner uses), or clean up after crashed sandboxes. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/err.h"
#include "spawner/egress.h"
#include "spawner/sandbox.h"
#include "spawner/toolenv.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator sandbox run [options] -- CMD [ARG...]\n"
	"orchestrator sandbox sweep\n"
	"\n"
	"run: runs CMD in a fresh sandbox, passes its stdout and stderr through and exits\n"
	"with its status (124 on timeout, 125 when the sandbox could not be made, 126/127\n"
	"when CMD cannot be run, 128+N when signal N killed it).\n"
	"  --backend ns|docker   ns: Linux namespaces, built in (default, needs root);\n"
	"                        docker: the Docker Engine API (--image required)\n"
	"  --mem SIZE            memory incl. /tmp (default 512M)\n"
	"  --pids N              processes and threads (default 128)\n"
	"  --cpus N              CPUs (default 1; 0.5 allowed)\n"
	"  --timeout DURATION    wall clock, e.g. 30s, 500ms, 5m (default 30s; 0: none)\n"
	"  --net none|NETWORK    none: loopback only (default); docker may name a network\n"
	"  --allow-host PATTERN  reach PATTERN through the egress proxy (repeatable):\n"
	"                        a host (ports 80, 443), *.domain, host:PORT, host:*, an\n"
	"                        address or CIDR block (needed for private addresses);\n"
	"                        HTTP_PROXY and friends point the command at it, and\n"
	"                        every connection's decision is printed on stderr\n"
	"  --workspace DIR       mounted read-write at /workspace (and made owned by the\n"
	"                        sandbox user); default: an empty one per command\n"
	"  --env NAME=VALUE      grant a variable (repeatable); nothing else is inherited\n"
	"  --toolchain-env       grant what workers get for their toolchains (GOPROXY=off,\n"
	"                        npm_config_offline=true, ...; online ones with\n"
	"                        --allow-host); an --env of the same name wins\n"
	"  --cwd PATH            working directory inside (default /workspace)\n"
	"  --rootfs DIR          an unpacked root file system instead of host /usr,/etc\n"
	"  --bind HOST:INSIDE[:rw]  make a host path visible (read-only unless :rw)\n"
	"  --nofile N            open files (default 1024)\n"
	"  --fsize SIZE          largest file (default 1G)\n"
	"  --tmp SIZE            size of /tmp (default half of --mem)\n"
	"  --uid-base N          first host uid of the sandbox's range (ns)\n"
	"  --allow-degraded      run even if a limit cannot be enforced on this host\n"
	"  --image IMAGE         docker: the image (or ORCH_SANDBOX_IMAGE)\n"
	"  --runtime NAME        docker: e.g. sysbox-runc (or ORCH_SANDBOX_RUNTIME)\n"
	"  --docker-socket PATH  docker: the engine's socket (or DOCKER_HOST=unix://...)\n"
	"  -v, --verbose         print the isolation and the result on stderr\n"
	"sweep: removes cgroups left by sandboxes whose owner died.";

static atomic_int g_cancel;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_cancel, 1);
}

/* Prints one decision of the egress proxy on stderr. */
static void on_decision(void *udata, const egr_decision *d)
{
	(void)udata;
	if (d->allowed)
		fprintf(stderr, "sandbox: network: allowed %s %s:%d (%s): %llu bytes up, %llu down, "
				"%lld ms%s%s\n",
			d->method, d->host, d->port, d->addr, (unsigned long long)d->bytes_up,
			(unsigned long long)d->bytes_down, (long long)d->ms, d->reason[0] ? "; " : "",
			d->reason);
	else
		fprintf(stderr, "sandbox: network: denied %s %s%s%.0d: %s\n", d->method[0] ? d->method : "?",
			d->host[0] ? d->host : "?", d->port ? ":" : "", d->port, d->reason);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int pass_through(int stream, const char *data, size_t len, void *udata)
{
	(void)udata;
	/* a closed stdout of ours must not stop the command */
	write_all(stream == 1 ? 1 : 2, data, len);
	return 0;
}

static int parse_size(const char *flag, const char *v, int64_t *out)
{
	if (cfg_parse_size(v, out) < 0 || *out <= 0) {
		fprintf(stderr, "orchestrator sandbox: %s wants a size like 512M or 2G, not '%s'\n", flag, v);
		return -1;
	}
	return 0;
}

static int parse_count(const char *flag, const char *v, int64_t *out)
{
	if (cfg_parse_int(v, out) < 0 || *out <= 0) {
		fprintf(stderr, "orchestrator sandbox: %s wants a positive number, not '%s'\n", flag, v);
		return -1;
	}
	return 0;
}

static int cmd_sandbox_run(int argc, char **argv)
{
	sbx_opts o;
	sbx_cmd c;
	sbx_result r;
	sbx_bind binds[16];
	const char *envs[257];
	const char *cwd = NULL, *v;
	char *bind_strs[16];
	int nenv = 0, nbind = 0, verbose = 0, toolenv = 0, i, rc, status = 125;
	char **joined = NULL;
	int64_t timeout = 30000, n;
	sbx *b = NULL;
	char *end;
	egr_policy *pol = NULL;
	egr_proxy *proxy = NULL;
	egr_attach *att = NULL;

	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	o.image = getenv("ORCH_SANDBOX_IMAGE");
	o.runtime = getenv("ORCH_SANDBOX_RUNTIME");
	v = getenv("ORCH_SANDBOX_BACKEND");
	if (v && *v && sbx_backend_parse(v, &o.backend) < 0) {
		fprintf(stderr, "orchestrator sandbox: ORCH_SANDBOX_BACKEND: %s\n", err_last());
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
			puts(USAGE);
			return 0;
		}
		if (cli_flag(argv, i, "-v") || cli_flag(argv, i, "--verbose")) {
			verbose = 1;
		} else if (cli_flag(argv, i, "--toolchain-env")) {
			toolenv = 1;
		} else if (cli_flag(argv, i, "--allow-degraded")) {
			o.allow_degraded = 1;
		} else if (cli_opt(argc, argv, &i, "--backend", &v)) {
			if (sbx_backend_parse(v, &o.backend) < 0) {
				fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
				return 2;
			}
		} else if (cli_opt(argc, argv, &i, "--mem", &v)) {
			if (parse_size("--mem", v, &o.mem_bytes) < 0)
				return 2;
		} else if (cli_opt(argc, argv, &i, "--tmp", &v)) {
			if (parse_size("--tmp", v, &o.tmp_bytes) < 0)
				return 2;
		} else if (cli_opt(argc, argv, &i, "--fsize", &v)) {
			if (parse_size("--fsize", v, &o.fsize_bytes) < 0)
				return 2;
		} else if (cli_opt(argc, argv, &i, "--pids", &v)) {
			if (parse_count("--pids", v, &o.pids) < 0)
				return 2;
		} else if (cli_opt(argc, argv, &i, "--nofile", &v)) {
			if (parse_count("--nofile", v, &o.nofile) < 0)
				return 2;
		} else if (cli_opt(argc, argv, &i, "--uid-base", &v)) {
			if (parse_count("--uid-base", v, &n) < 0 || n > 4294967295LL)
				return 2;
			o.uid_base = (uint32_t)n;
		} else if (cli_opt(argc, argv, &i, "--cpus", &v)) {
			errno = 0;
			o.cpus = strtod(v, &end);
			if (errno || end == v || *end || o.cpus <= 0) {
				fprintf(stderr, "orchestrator sandbox: --cpus wants a number like 1 or 0.5, not '%s'\n", v);
				return 2;
			}
		} else if (cli_opt(argc, argv, &i, "--timeout", &v)) {
			if (cfg_parse_duration_ms(v, &timeout) < 0 || timeout < 0) {
				fprintf(stderr, "orchestrator sandbox: --timeout wants a duration like 30s or 500ms, not '%s'\n", v);
				return 2;
			}
		} else if (cli_opt(argc, argv, &i, "--net", &v)) {
			o.net = v;
		} else if (cli_opt(argc, argv, &i, "--allow-host", &v)) {
			if ((!pol && egr_policy_new(&pol) < 0) || egr_policy_add(pol, v) < 0) {
				fprintf(stderr, "orchestrator sandbox: --allow-host: %s\n", err_last());
				goto usage_bind;
			}
		} else if (cli_opt(argc, argv, &i, "--workspace", &v)) {
			o.workspace = v;
		} else if (cli_opt(argc, argv, &i, "--rootfs", &v)) {
			o.rootfs = v;
		} else if (cli_opt(argc, argv, &i, "--cwd", &v)) {
			cwd = v;
		} else if (cli_opt(argc, argv, &i, "--image", &v)) {
			o.image = v;
		} else if (cli_opt(argc, argv, &i, "--runtime", &v)) {
			o.runtime = v;
		} else if (cli_opt(argc, argv, &i, "--docker-socket", &v)) {
			o.docker_socket = v;
		} else if (cli_opt(argc, argv, &i, "--env", &v)) {
			if (nenv >= 256) {
				fprintf(stderr, "orchestrator sandbox: at most 256 --env\n");
				return 2;
			}
			envs[nenv++] = v;
		} else if (cli_opt(argc, argv, &i, "--bind", &v)) {
			char *colon;
			if (nbind >= 16) {
				fprintf(stderr, "orchestrator sandbox: at most 16 --bind\n");
				goto usage_bind;
			}
			bind_strs[nbind] = strdup(v);
			if (!bind_strs[nbind])
				goto usage_bind;
			binds[nbind].host = bind_strs[nbind];
			colon = strchr(bind_strs[nbind], ':');
			if (!colon) {
				free(bind_strs[nbind]);
				fprintf(stderr, "orchestrator sandbox: --bind wants HOST:INSIDE[:rw], not '%s'\n", v);
				goto usage_bind;
			}
			*colon = 0;
			binds[nbind].inside = colon + 1;
			binds[nbind].writable = 0;
			colon = strchr(colon + 1, ':');
			if (colon) {
				*colon = 0;
				if (strcmp(colon + 1, "rw") != 0 && strcmp(colon + 1, "ro") != 0) {
					free(bind_strs[nbind]);
					fprintf(stderr, "orchestrator sandbox: --bind mode must be ro or rw\n");
					goto usage_bind;
				}
				binds[nbind].writable = strcmp(colon + 1, "rw") == 0;
			}
			nbind++;
		} else {
			fprintf(stderr, "orchestrator sandbox: unknown option '%s'\n", argv[i]);
			goto usage_bind;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "orchestrator sandbox: no command given (put it after --)\n");
		goto usage_bind;
	}
	envs[nenv] = NULL;
	o.binds = binds;
	o.nbinds = (size_t)nbind;

	if (pol) {
		rc = egr_new(&proxy, NULL);
		if (rc == 0)
			rc = egr_attach_new(proxy, &att, "sandbox run", pol, on_decision, NULL);
		if (rc < 0) {
			fprintf(stderr, "orchestrator sandbox: the egress proxy: %s\n", err_last());
			goto done;
		}
		egr_attach_phase(att, "run", 1);
		o.egress_socket = egr_attach_socket(att);
	}
	rc = sbx_new(&b, &o);
	if (rc < 0) {
		fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
		status = rc == ERR_INVALID ? 2 : 125;
		goto done;
	}
	if (verbose)
		fprintf(stderr, "sandbox: %s\n", sbx_describe(b));
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
	c.argv = (const char *const *)(argv + i);
	c.env = envs;
	if (toolenv) {
		rc = spw_toolenv_join(pol != NULL, envs, &joined);
		if (rc < 0) {
			fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
			goto done;
		}
		c.env = (const char *const *)joined;
	}
	c.cwd = cwd;
	c.timeout_ms = timeout == 0 ? -1 : timeout;
	c.output_cap = 64 << 10;
	c.on_output = pass_through;
	c.cancel = &g_cancel;
	rc = sbx_run(b, &c, &r);
	if (rc < 0) {
		fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
		status = rc == ERR_INVALID ? 2 : 125;
		goto done;
	}
	status = r.exit_code;
	if (verbose || r.timed_out || r.oom_killed || r.pids_limited || r.disk_full || r.fsize_limited ||
	    r.cancelled)
		fprintf(stderr, "sandbox: %s\n", r.reason);
	if (verbose) {
		char peak[96];
		if (r.mem_peak_bytes >= 0)
			snprintf(peak, sizeof(peak), "peak memory %lld KiB",
				 (long long)(r.mem_peak_bytes >> 10));
		else
			snprintf(peak, sizeof(peak), "peak memory and cpu not reported by this backend");
		fprintf(stderr, "sandbox: exit %d, wall %lld ms, cpu %lld ms, %s%s%s\n", r.exit_code,
			(long long)r.wall_ms, (long long)r.cpu_ms, peak,
			r.degraded[0] ? "; NOT enforced: " : "", r.degraded);
	}
	else if (r.degraded[0])
		fprintf(stderr, "sandbox: warning: NOT enforced on this host: %s\n", r.degraded);
done:
	spw_toolenv_free(joined);
	sbx_result_free(&r);
	sbx_free(b);
	egr_detach(att);
	egr_free(proxy);
	egr_policy_free(pol);
	for (int k = 0; k < nbind; k++)
		free(bind_strs[k]);
	return status;
usage_bind:
	for (int k = 0; k < nbind; k++)
		free(bind_strs[k]);
	egr_policy_free(pol);
	return cli_usage(USAGE);
}

int cmd_sandbox(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_sandbox_run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "sweep") == 0) {
		int n = 0;
		int nd = 0;
		char sock[4096];
		struct stat st;
		if (sbx_sweep(&n) < 0)
			return cli_fail("sandbox sweep");
		printf("removed %d stale sandbox cgroups\n", n);
		/* the docker backend's containers, when an engine is there */
		if (sbx_docker_socket(NULL, sock, sizeof(sock)) < 0)
			return cli_fail("sandbox sweep");
		if (stat(sock, &st) == 0) {
			if (sbx_sweep_docker(sock, &nd) < 0)
				return cli_fail("sandbox sweep (docker)");
			printf("removed %d leftover sandbox containers from the Docker engine at %s\n",
			       nd, sock);
		}
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		puts(USAGE);
		return 0;
	}
	return cli_usage(USAGE);
}
