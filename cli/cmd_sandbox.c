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

/* A `sandbox run`'s options, as parsed. */
typedef struct sandbox_args {
	sbx_opts o;
	sbx_bind binds[16];
	char *bind_strs[16];
	const char *envs[257];
	const char *cwd;
	int nenv, nbind, verbose, toolenv;
	int cmd;         /* argv index of the command */
	int64_t timeout;
	egr_policy *pol; /* --allow-host, owned */
} sandbox_args;

/* What an option's parse asks for: go on, exit with 2, or the usage. */
enum { SB_OK = 0, SB_EXIT2 = 2, SB_USAGE = 3 };

/* --bind HOST:INSIDE[:ro|rw] */
static int sb_bind(sandbox_args *a, const char *v)
{
	char *colon, *s;
	sbx_bind *bd = &a->binds[a->nbind];

	if (a->nbind >= 16) {
		fprintf(stderr, "orchestrator sandbox: at most 16 --bind\n");
		return SB_USAGE;
	}
	s = strdup(v);
	if (!s)
		return SB_USAGE;
	bd->host = s;
	colon = strchr(s, ':');
	if (!colon) {
		free(s);
		fprintf(stderr, "orchestrator sandbox: --bind wants HOST:INSIDE[:rw], not '%s'\n", v);
		return SB_USAGE;
	}
	*colon = 0;
	bd->inside = colon + 1;
	bd->writable = 0;
	colon = strchr(colon + 1, ':');
	if (colon) {
		*colon = 0;
		if (strcmp(colon + 1, "rw") != 0 && strcmp(colon + 1, "ro") != 0) {
			free(s);
			fprintf(stderr, "orchestrator sandbox: --bind mode must be ro or rw\n");
			return SB_USAGE;
		}
		bd->writable = strcmp(colon + 1, "rw") == 0;
	}
	a->bind_strs[a->nbind++] = s;
	return SB_OK;
}

/* The options that set a sandbox limit; -1 when argv[*i] is none of them. */
static int sb_limit(sandbox_args *a, int argc, char **argv, int *i)
{
	const char *v;
	char *end;
	int64_t n;

	if (cli_opt(argc, argv, i, "--mem", &v))
		return parse_size("--mem", v, &a->o.mem_bytes) < 0 ? SB_EXIT2 : SB_OK;
	if (cli_opt(argc, argv, i, "--tmp", &v))
		return parse_size("--tmp", v, &a->o.tmp_bytes) < 0 ? SB_EXIT2 : SB_OK;
	if (cli_opt(argc, argv, i, "--fsize", &v))
		return parse_size("--fsize", v, &a->o.fsize_bytes) < 0 ? SB_EXIT2 : SB_OK;
	if (cli_opt(argc, argv, i, "--pids", &v))
		return parse_count("--pids", v, &a->o.pids) < 0 ? SB_EXIT2 : SB_OK;
	if (cli_opt(argc, argv, i, "--nofile", &v))
		return parse_count("--nofile", v, &a->o.nofile) < 0 ? SB_EXIT2 : SB_OK;
	if (cli_opt(argc, argv, i, "--uid-base", &v)) {
		if (parse_count("--uid-base", v, &n) < 0 || n > 4294967295LL)
			return SB_EXIT2;
		a->o.uid_base = (uint32_t)n;
		return SB_OK;
	}
	if (cli_opt(argc, argv, i, "--cpus", &v)) {
		errno = 0;
		a->o.cpus = strtod(v, &end);
		if (errno || end == v || *end || a->o.cpus <= 0) {
			fprintf(stderr, "orchestrator sandbox: --cpus wants a number like 1 or 0.5, not '%s'\n", v);
			return SB_EXIT2;
		}
		return SB_OK;
	}
	if (cli_opt(argc, argv, i, "--timeout", &v)) {
		if (cfg_parse_duration_ms(v, &a->timeout) < 0 || a->timeout < 0) {
			fprintf(stderr, "orchestrator sandbox: --timeout wants a duration like 30s or 500ms, not '%s'\n", v);
			return SB_EXIT2;
		}
		return SB_OK;
	}
	return -1;
}

/* One option at argv[*i] (moving *i past its value). */
static int sb_option(sandbox_args *a, int argc, char **argv, int *i)
{
	const char *v;
	int rc = sb_limit(a, argc, argv, i);

	if (rc >= 0)
		return rc;
	if (cli_flag(argv, *i, "-v") || cli_flag(argv, *i, "--verbose")) {
		a->verbose = 1;
	} else if (cli_flag(argv, *i, "--toolchain-env")) {
		a->toolenv = 1;
	} else if (cli_flag(argv, *i, "--allow-degraded")) {
		a->o.allow_degraded = 1;
	} else if (cli_opt(argc, argv, i, "--backend", &v)) {
		if (sbx_backend_parse(v, &a->o.backend) < 0) {
			fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
			return SB_EXIT2;
		}
	} else if (cli_opt(argc, argv, i, "--net", &v)) {
		a->o.net = v;
	} else if (cli_opt(argc, argv, i, "--allow-host", &v)) {
		if ((!a->pol && egr_policy_new(&a->pol) < 0) || egr_policy_add(a->pol, v) < 0) {
			fprintf(stderr, "orchestrator sandbox: --allow-host: %s\n", err_last());
			return SB_USAGE;
		}
	} else if (cli_opt(argc, argv, i, "--workspace", &v)) {
		a->o.workspace = v;
	} else if (cli_opt(argc, argv, i, "--rootfs", &v)) {
		a->o.rootfs = v;
	} else if (cli_opt(argc, argv, i, "--cwd", &v)) {
		a->cwd = v;
	} else if (cli_opt(argc, argv, i, "--image", &v)) {
		a->o.image = v;
	} else if (cli_opt(argc, argv, i, "--runtime", &v)) {
		a->o.runtime = v;
	} else if (cli_opt(argc, argv, i, "--docker-socket", &v)) {
		a->o.docker_socket = v;
	} else if (cli_opt(argc, argv, i, "--env", &v)) {
		if (a->nenv >= 256) {
			fprintf(stderr, "orchestrator sandbox: at most 256 --env\n");
			return SB_EXIT2;
		}
		a->envs[a->nenv++] = v;
	} else if (cli_opt(argc, argv, i, "--bind", &v)) {
		return sb_bind(a, v);
	} else {
		fprintf(stderr, "orchestrator sandbox: unknown option '%s'\n", argv[*i]);
		return SB_USAGE;
	}
	return SB_OK;
}

/* The options before `--` into *a: -1 when there is a command to run at
 * argv[a->cmd], else the status to exit with. */
static int sb_parse(sandbox_args *a, int argc, char **argv)
{
	const char *v;
	int i, rc;

	a->timeout = 30000;
	a->o.image = getenv("ORCH_SANDBOX_IMAGE");
	a->o.runtime = getenv("ORCH_SANDBOX_RUNTIME");
	v = getenv("ORCH_SANDBOX_BACKEND");
	if (v && *v && sbx_backend_parse(v, &a->o.backend) < 0) {
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
		rc = sb_option(a, argc, argv, &i);
		if (rc == SB_EXIT2)
			return 2;
		if (rc == SB_USAGE)
			return cli_usage(USAGE);
	}
	if (i >= argc) {
		fprintf(stderr, "orchestrator sandbox: no command given (put it after --)\n");
		return cli_usage(USAGE);
	}
	a->envs[a->nenv] = NULL;
	a->o.binds = a->binds;
	a->o.nbinds = (size_t)a->nbind;
	a->cmd = i;
	return -1;
}

/* Stops the command on SIGINT, SIGTERM and SIGHUP; ignores SIGPIPE. */
static void sb_signals(void)
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

/* What the run reports on stderr: why it stopped, and with -v its figures. */
static void sb_report(const sbx_result *r, int verbose)
{
	char peak[96];

	if (verbose || r->timed_out || r->oom_killed || r->pids_limited || r->disk_full ||
	    r->fsize_limited || r->cancelled)
		fprintf(stderr, "sandbox: %s\n", r->reason);
	if (!verbose) {
		if (r->degraded[0])
			fprintf(stderr, "sandbox: warning: NOT enforced on this host: %s\n",
				r->degraded);
		return;
	}
	if (r->mem_peak_bytes >= 0)
		snprintf(peak, sizeof(peak), "peak memory %lld KiB", (long long)(r->mem_peak_bytes >> 10));
	else
		snprintf(peak, sizeof(peak), "peak memory and cpu not reported by this backend");
	fprintf(stderr, "sandbox: exit %d, wall %lld ms, cpu %lld ms, %s%s%s\n", r->exit_code,
		(long long)r->wall_ms, (long long)r->cpu_ms, peak,
		r->degraded[0] ? "; NOT enforced: " : "", r->degraded);
}

static int cmd_sandbox_run(int argc, char **argv)
{
	sandbox_args *a = calloc(1, sizeof(*a));
	sbx_cmd c;
	sbx_result r;
	int rc, status = 125;
	char **joined = NULL;
	sbx *b = NULL;
	egr_proxy *proxy = NULL;
	egr_attach *att = NULL;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if (!a) {
		fprintf(stderr, "orchestrator sandbox: out of memory\n");
		return 125;
	}
	status = sb_parse(a, argc, argv);
	if (status >= 0)
		goto done;
	status = 125;
	if (a->pol) {
		rc = egr_new(&proxy, NULL);
		if (rc == 0)
			rc = egr_attach_new(proxy, &att, "sandbox run", a->pol, on_decision, NULL);
		if (rc < 0) {
			fprintf(stderr, "orchestrator sandbox: the egress proxy: %s\n", err_last());
			goto done;
		}
		egr_attach_phase(att, "run", 1);
		a->o.egress_socket = egr_attach_socket(att);
	}
	rc = sbx_new(&b, &a->o);
	if (rc < 0) {
		fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
		status = rc == ERR_INVALID ? 2 : 125;
		goto done;
	}
	if (a->verbose)
		fprintf(stderr, "sandbox: %s\n", sbx_describe(b));
	sb_signals();
	c.argv = (const char *const *)(argv + a->cmd);
	c.env = a->envs;
	if (a->toolenv) {
		rc = spw_toolenv_join(a->pol != NULL, a->envs, &joined);
		if (rc < 0) {
			fprintf(stderr, "orchestrator sandbox: %s\n", err_last());
			goto done;
		}
		c.env = (const char *const *)joined;
	}
	c.cwd = a->cwd;
	c.timeout_ms = a->timeout == 0 ? -1 : a->timeout;
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
	sb_report(&r, a->verbose);
done:
	spw_toolenv_free(joined);
	sbx_result_free(&r);
	sbx_free(b);
	egr_detach(att);
	egr_free(proxy);
	egr_policy_free(a->pol);
	for (int k = 0; k < a->nbind; k++)
		free(a->bind_strs[k]);
	free(a);
	return status;
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
