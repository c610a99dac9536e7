/* sandbox — the backend-independent half: options, commands, capture,
 * results. See sandbox.h. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/metrics.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEF_MEM ((int64_t)512 << 20)
#define DEF_PIDS 128
#define DEF_NOFILE 1024
#define DEF_FSIZE ((int64_t)1 << 30)
#define DEF_TIMEOUT_MS 30000
#define DEF_OUTPUT_CAP ((size_t)1 << 20)
#define MAX_ARGS 4096
#define MAX_ENV 1024

/* ---- capture ---- */

int sbx_capture_init(sbx_capture *c, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
	c->ring_cap = cap / 2;
	c->head = malloc(cap + 1);
	c->ring = malloc(c->ring_cap + 1);
	if (!c->head || !c->ring) {
		sbx_capture_free(c);
		return err_set(ERR_NOMEM, "out of memory for output capture");
	}
	return 0;
}

void sbx_capture_add(sbx_capture *c, const char *data, size_t n)
{
	c->total += n;
	if (c->head_len < c->cap) {
		size_t k = c->cap - c->head_len < n ? c->cap - c->head_len : n;
		memcpy(c->head + c->head_len, data, k);
		c->head_len += k;
	}
	if (c->ring_cap == 0)
		return;
	if (n > c->ring_cap) {
		/* only the last ring_cap bytes can survive */
		data += n - c->ring_cap;
		c->ring_pos += n - c->ring_cap;
		n = c->ring_cap;
	}
	while (n > 0) {
		size_t at = c->ring_pos % c->ring_cap;
		size_t k = c->ring_cap - at < n ? c->ring_cap - at : n;
		memcpy(c->ring + at, data, k);
		c->ring_pos += k;
		data += k;
		n -= k;
	}
}

int sbx_capture_finish(sbx_capture *c, buf *out, int *truncated)
{
	int rc = 0;

	*truncated = c->total > c->cap;
	if (!*truncated) {
		if (c->head_len)
			rc = buf_append(out, c->head, c->head_len);
		return rc;
	}
	size_t headn = c->cap - c->ring_cap;
	size_t at = c->ring_pos % c->ring_cap;
	rc = buf_append(out, c->head, headn);
	if (rc == 0)
		rc = buf_printf(out, "\n[... %llu bytes omitted ...]\n",
				(unsigned long long)(c->total - headn - c->ring_cap));
	/* the ring is full (total > cap >= ring_cap): oldest byte is at `at` */
	if (rc == 0)
		rc = buf_append(out, c->ring + at, c->ring_cap - at);
	if (rc == 0)
		rc = buf_append(out, c->ring, at);
	return rc;
}

void sbx_capture_free(sbx_capture *c)
{
	free(c->head);
	free(c->ring);
	memset(c, 0, sizeof(*c));
}

/* ---- helpers for backends ---- */

int sbx_deliver(sbx *b, int stream, const char *data, size_t n)
{
	sbx_run_state *r = &b->run;

	sbx_capture_add(stream == 1 ? &r->out : &r->err, data, n);
	if (r->on_output && r->on_output(stream, data, n, r->udata) != 0)
		return 1;
	return 0;
}

void sbx_degrade(sbx *b, const char *what)
{
	size_t n = strlen(b->degraded);

	snprintf(b->degraded + n, sizeof(b->degraded) - n, "%s%s", n ? "; " : "", what);
}

int64_t sbx_ms_left(const sbx *b)
{
	if (b->run.deadline_ms == 0)
		return INT64_MAX;
	int64_t left = b->run.deadline_ms - util_mono_ms();
	return left < 0 ? 0 : left;
}

int sbx_wait_pass(sbx *b, int64_t until, int64_t *ms, int64_t *left)
{
	sbx_run_state *r = &b->run;
	int64_t now = util_mono_ms();

	*left = sbx_ms_left(b);
	if (*left == 0 && !r->timed_out) {
		r->timed_out = 1;
		b->ops->kill(b);
	}
	if (r->cancel && atomic_load(r->cancel) && !r->cancelled) {
		r->cancelled = 1;
		b->ops->kill(b);
	}
	if (now >= until)
		return ERR_BUSY;
	*ms = until - now;
	return 0;
}

/* ---- options ---- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int abs_dir(const char *what, const char *path, char **out)
{
	char real[PATH_MAX];
	struct stat st;

	if (!realpath(path, real))
		return err_set(ERR_INVALID, "%s '%s': %s (create it first)", what, path,
			       strerror(errno));
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(ERR_INVALID, "%s '%s' is not a directory", what, path);
	*out = strdup(real);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

/* An inside path must be absolute, normalised and not under a place the
 * sandbox builds itself. */
static int check_inside(const char *p)
{
	static const char *const reserved[] = {"/", "/proc", "/dev", "/tmp", "/workspace", NULL};
	size_t n = strlen(p);

	if (p[0] != '/' || n < 2 || n > 512 || p[n - 1] == '/' || strstr(p, "//") ||
	    strstr(p, "/./") || strstr(p, "/../") || (n >= 3 && strcmp(p + n - 3, "/..") == 0) ||
	    (n >= 2 && strcmp(p + n - 2, "/.") == 0))
		return err_set(ERR_INVALID,
			       "bind target '%s' must be an absolute, normalised path", p);
	for (int i = 0; reserved[i]; i++) {
		size_t k = strlen(reserved[i]);
		if (strcmp(p, reserved[i]) == 0 ||
		    (k > 1 && strncmp(p, reserved[i], k) == 0 && p[k] == '/'))
			return err_set(ERR_INVALID,
				       "bind target '%s' is inside %s, which the sandbox builds "
				       "itself; pick another place (e.g. /opt/...)",
				       p, reserved[i]);
	}
	return 0;
}

static int copy_opts(sbx *b, const sbx_opts *o)
{
	int rc = 0;

	b->kind = o->backend;
	b->mem_bytes = o->mem_bytes ? o->mem_bytes : DEF_MEM;
	b->pids = o->pids ? o->pids : DEF_PIDS;
	b->cpus = o->cpus > 0 ? o->cpus : 1.0;
	b->nofile = o->nofile ? o->nofile : DEF_NOFILE;
	b->fsize_bytes = o->fsize_bytes ? o->fsize_bytes : DEF_FSIZE;
	b->tmp_bytes = o->tmp_bytes ? o->tmp_bytes : b->mem_bytes / 2;
	b->uid_base = o->uid_base;
	b->allow_degraded = o->allow_degraded;
	if (b->mem_bytes < (4 << 20) || b->mem_bytes > ((int64_t)1 << 42))
		return err_set(ERR_INVALID, "memory limit %lld is out of range (4 MiB .. 4 TiB)",
			       (long long)b->mem_bytes);
	if (b->pids < 2 || b->pids > 1000000)
		return err_set(ERR_INVALID, "process limit %lld is out of range (2 .. 1000000)",
			       (long long)b->pids);
	if (o->cpus < 0 || b->cpus < 0.01 || b->cpus > 1024)
		return err_set(ERR_INVALID, "cpus %.2f is out of range (0.01 .. 1024)", o->cpus);
	if (b->nofile < 16 || b->nofile > (1 << 20))
		return err_set(ERR_INVALID, "open file limit %lld is out of range (16 .. 1048576)",
			       (long long)b->nofile);
	if (b->fsize_bytes < 4096)
		return err_set(ERR_INVALID, "file size limit must be at least 4 KiB");
	if (b->tmp_bytes < 4096 || b->tmp_bytes > b->mem_bytes)
		return err_set(ERR_INVALID,
			       "/tmp size must be between 4 KiB and the memory limit (it counts "
			       "against memory)");
	if (b->uid_base != 0 && (b->uid_base < 65536 || b->uid_base > 4294967295u - 65536 * 2))
		return err_set(ERR_INVALID,
			       "uid base %u is out of range: use 65536 .. 4294836223, never the "
			       "host's own users",
			       b->uid_base);
	b->net = strdup(o->net && *o->net ? o->net : "none");
	if (!b->net)
		return err_set(ERR_NOMEM, "out of memory");
	if (o->workspace)
		rc = abs_dir("workspace", o->workspace, &b->workspace);
	if (rc == 0 && o->rootfs)
		rc = abs_dir("root file system folder", o->rootfs, &b->rootfs);
	if (rc < 0)
		return rc;
	if (o->nbinds > 64)
		return err_set(ERR_INVALID, "at most 64 binds");
	if (o->nbinds || o->egress_socket) {
		b->binds = calloc(o->nbinds + 1, sizeof(*b->binds));
		if (!b->binds)
			return err_set(ERR_NOMEM, "out of memory");
		b->nbinds = o->nbinds;
		for (size_t i = 0; i < o->nbinds; i++) {
			if (o->binds[i].inside && (strcmp(o->binds[i].inside, SBX_EGRESS_INSIDE) == 0 ||
						   strcmp(o->binds[i].inside, SBX_EGRESS_FWD_INSIDE) == 0))
				return err_set(ERR_INVALID, "bind target %s is the egress proxy's place",
					       o->binds[i].inside);
			char real[PATH_MAX];
			if (!o->binds[i].host || !o->binds[i].inside)
				return err_set(ERR_INVALID, "bind %zu lacks a host or inside path", i);
			if (!realpath(o->binds[i].host, real))
				return err_set(ERR_INVALID, "bind source '%s': %s", o->binds[i].host,
					       strerror(errno));
			rc = check_inside(o->binds[i].inside);
			if (rc < 0)
				return rc;
			b->binds[i].host = strdup(real);
			b->binds[i].inside = strdup(o->binds[i].inside);
			b->binds[i].writable = o->binds[i].writable;
			if (!b->binds[i].host || !b->binds[i].inside)
				return err_set(ERR_NOMEM, "out of memory");
		}
	}
	if (o->egress_socket) {
		struct stat st;
		sbx_bind *eb = &b->binds[b->nbinds];
		char real[PATH_MAX];

		if (stat(o->egress_socket, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    !realpath(o->egress_socket, real))
			return err_set(ERR_INVALID, "egress socket '%s' is not a unix socket",
				       o->egress_socket);
		eb->host = strdup(real);
		eb->inside = strdup(SBX_EGRESS_INSIDE);
		eb->writable = 0;
		if (!eb->host || !eb->inside)
			return err_set(ERR_NOMEM, "out of memory");
		b->nbinds++;
		b->egress = 1;
	}
	if (b->kind == SBX_DOCKER) {
		char sock[PATH_MAX];
		rc = sbx_docker_socket(o->docker_socket, sock, sizeof(sock));
		if (rc < 0)
			return rc;
		b->docker_socket = strdup(sock);
	} else {
		b->docker_socket = strdup("/var/run/docker.sock");
	}
	b->image = xstrdup(o->image);
	b->runtime = xstrdup(o->runtime);
	b->workspace_volume = xstrdup(o->workspace_volume);
	if (!b->docker_socket || (o->image && !b->image) || (o->runtime && !b->runtime) ||
	    (o->workspace_volume && !b->workspace_volume))
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

int sbx_backend_parse(const char *s, sbx_backend *out)
{
	if (s && strcmp(s, "ns") == 0)
		*out = SBX_NS;
	else if (s && strcmp(s, "docker") == 0)
		*out = SBX_DOCKER;
	else
		return err_set(ERR_INVALID, "unknown sandbox backend '%s' (use ns or docker)",
			       s ? s : "");
	return 0;
}

int sbx_new(sbx **out, const sbx_opts *opts)
{
	sbx *b = NULL;
	int rc;

	*out = NULL;
	if (!opts)
		return err_set(ERR_INVALID, "sbx_new: no options");
	b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ERR_NOMEM, "out of memory");
	if (opts->backend == SBX_NS)
		b->ops = &sbx_ns_ops;
	else if (opts->backend == SBX_DOCKER)
		b->ops = &sbx_docker_ops;
	else {
		rc = err_set(ERR_INVALID, "unknown sandbox backend %d", (int)opts->backend);
		goto done;
	}
	rc = copy_opts(b, opts);
	if (rc < 0)
		goto done;
	rc = b->ops->prepare(b);
	if (rc < 0)
		goto done;
	*out = b;
	b = NULL;
done:
	sbx_free(b);
	return rc;
}

static void run_state_clear(sbx_run_state *r)
{
	if (r->argv)
		for (char **p = r->argv; *p; p++)
			free(*p);
	free(r->argv);
	if (r->envp)
		for (char **p = r->envp; *p; p++)
			free(*p);
	free(r->envp);
	free(r->cwd);
	free(r->stdin_data);
	sbx_capture_free(&r->out);
	sbx_capture_free(&r->err);
	memset(r, 0, sizeof(*r));
}

void sbx_free(sbx *b)
{
	if (!b)
		return;
	if (b->ops && b->ops->destroy)
		b->ops->destroy(b);
	run_state_clear(&b->run);
	free(b->workspace);
	free(b->rootfs);
	free(b->net);
	for (size_t i = 0; i < b->nbinds; i++) {
		free((char *)b->binds[i].host);
		free((char *)b->binds[i].inside);
	}
	free(b->binds);
	free(b->docker_socket);
	free(b->image);
	free(b->runtime);
	free(b->workspace_volume);
	free(b);
}

int sbx_reown(sbx *b)
{
	if (!b->workspace || b->workspace_volume)
		return 0;
	if (b->active)
		return err_set(ERR_BUSY, "a command is running in this box");
	return sbx_chown_tree(b->workspace, sbx_uid(b), sbx_uid(b));
}

uint32_t sbx_uid(const sbx *b)
{
	return b->kind == SBX_NS ? b->uid_base + 1000 : b->sandbox_uid;
}

sbx_backend sbx_kind(const sbx *b)
{
	return b->kind;
}

const char *sbx_describe(const sbx *b)
{
	return b->describe;
}

/* ---- commands ---- */

static int env_name_ok(const char *kv)
{
	const char *eq = strchr(kv, '=');

	if (!eq || eq == kv)
		return 0;
	for (const char *p = kv; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
		      (p > kv && *p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

#define EGRESS_URL "http://127.0.0.1:3128"

/* The environment: defaults first, a granted variable replaces a default.
 * A box with egress gets the proxy variables every common tool reads. */
static int build_env(const sbx *b, const sbx_cmd *c, char ***out)
{
	static const char *const plain[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp",
		"LANG=C.UTF-8",
		NULL,
	};
	static const char *const with_egress[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp",
		"LANG=C.UTF-8",
		"http_proxy=" EGRESS_URL,
		"https_proxy=" EGRESS_URL,
		"HTTP_PROXY=" EGRESS_URL,
		"HTTPS_PROXY=" EGRESS_URL,
		"no_proxy=localhost,127.0.0.1,::1",
		"NO_PROXY=localhost,127.0.0.1,::1",
		"npm_config_proxy=" EGRESS_URL,
		"npm_config_https_proxy=" EGRESS_URL,
		"PIP_PROXY=" EGRESS_URL,
		"CARGO_HTTP_PROXY=" EGRESS_URL,
		NULL,
	};
	const char *const *defaults = b->egress ? with_egress : plain;
	size_t n = 0, k = 0;
	char **env;

	if (c->env)
		while (c->env[n]) {
			if (!env_name_ok(c->env[n]))
				return err_set(ERR_INVALID,
					       "environment entry '%.60s' is not NAME=value", c->env[n]);
			if (++n > MAX_ENV)
				return err_set(ERR_INVALID, "more than %d environment entries", MAX_ENV);
		}
	env = calloc(n + 16, sizeof(*env));
	if (!env)
		return err_set(ERR_NOMEM, "out of memory");
	for (int d = 0; defaults[d]; d++) {
		size_t nl = (size_t)(strchr(defaults[d], '=') - defaults[d]) + 1;
		int overridden = 0;
		for (size_t i = 0; i < n; i++)
			if (strncmp(c->env[i], defaults[d], nl) == 0)
				overridden = 1;
		if (overridden)
			continue;
		env[k] = strdup(defaults[d]);
		if (!env[k++])
			goto nomem;
	}
	for (size_t i = 0; i < n; i++) {
		/* a later duplicate replaces an earlier one */
		size_t nl = (size_t)(strchr(c->env[i], '=') - c->env[i]) + 1;
		int dup = 0;
		for (size_t j = i + 1; j < n; j++)
			if (strncmp(c->env[j], c->env[i], nl) == 0)
				dup = 1;
		if (dup)
			continue;
		env[k] = strdup(c->env[i]);
		if (!env[k++])
			goto nomem;
	}
	*out = env;
	return 0;
nomem:
	for (size_t i = 0; i < k; i++)
		free(env[i]);
	free(env);
	return err_set(ERR_NOMEM, "out of memory");
}

int sbx_start(sbx *b, const sbx_cmd *c)
{
	sbx_run_state *r = &b->run;
	size_t n = 0;
	int rc;

	if (b->active)
		return err_set(ERR_BUSY, "this sandbox box still has a command; collect it first");
	if (!c || !c->argv || !c->argv[0] || !c->argv[0][0])
		return err_set(ERR_INVALID, "no command to run");
	while (c->argv[n])
		if (++n > MAX_ARGS)
			return err_set(ERR_INVALID, "more than %d arguments", MAX_ARGS);
	if (c->cwd && (c->cwd[0] != '/' || strlen(c->cwd) > 1024))
		return err_set(ERR_INVALID, "working directory '%s' must be an absolute path inside the sandbox",
			       c->cwd);
	run_state_clear(r);
	rc = sbx_capture_init(&r->out, c->output_cap ? c->output_cap : DEF_OUTPUT_CAP);
	if (rc == 0)
		rc = sbx_capture_init(&r->err, c->output_cap ? c->output_cap : DEF_OUTPUT_CAP);
	if (rc < 0)
		goto done;
	r->argv = calloc(n + 1, sizeof(*r->argv));
	if (!r->argv) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		r->argv[i] = strdup(c->argv[i]);
		if (!r->argv[i]) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
	}
	rc = build_env(b, c, &r->envp);
	if (rc < 0)
		goto done;
	r->cwd = strdup(c->cwd ? c->cwd : "/workspace");
	if (!r->cwd) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (c->stdin_data) {
		r->stdin_data = malloc(c->stdin_len ? c->stdin_len : 1);
		if (!r->stdin_data) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		memcpy(r->stdin_data, c->stdin_data, c->stdin_len);
		r->stdin_len = c->stdin_len;
	}
	r->timeout_ms = c->timeout_ms == 0 ? DEF_TIMEOUT_MS : c->timeout_ms;
	r->on_output = c->on_output;
	r->udata = c->udata;
	r->cancel = c->cancel;
	r->started_ms = util_mono_ms();
	r->deadline_ms = r->timeout_ms > 0 ? r->started_ms + r->timeout_ms : 0;
	rc = b->ops->start(b);
	met_add(met_with(met_counter(rc < 0 ? "orch_sandbox_failures_total" : "orch_sandbox_starts_total",
				     rc < 0 ? "sandboxes that could not be made, by backend"
					    : "commands started in a sandbox, by backend",
				     "backend"),
			 b->ops->name), 1);
	if (rc < 0)
		goto done;
	b->active = 1;
done:
	if (rc < 0)
		run_state_clear(r);
	return rc;
}

int sbx_wait(sbx *b, int64_t slice_ms)
{
	if (!b->active)
		return err_set(ERR_INVALID, "no command was started in this sandbox box");
	if (b->run.finished)
		return 0;
	return b->ops->wait(b, slice_ms);
}

int sbx_kill(sbx *b)
{
	if (!b->active || b->run.finished)
		return 0;
	b->run.cancelled = 1;
	return b->ops->kill(b);
}

static void describe_end(sbx *b, sbx_result *r)
{
	const char *sig = r->term_signal ? sigabbrev_np(r->term_signal) : NULL;
	char extra[160] = "";

	if (r->oom_killed)
		snprintf(extra, sizeof(extra), "; memory limit (%lld MiB) reached, a process was killed",
			 (long long)(b->mem_bytes >> 20));
	else if (r->pids_limited)
		snprintf(extra, sizeof(extra), "; process limit (%lld) reached, a fork failed",
			 (long long)b->pids);
	if (r->disk_full)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 "; the workspace disk quota is full");
	if (r->fsize_limited)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 "; a file passed the size limit (%lld bytes)", (long long)b->fsize_bytes);
	if (r->timed_out)
		snprintf(r->reason, sizeof(r->reason),
			 "timed out after %lld ms: the whole process tree was killed%s",
			 (long long)b->run.timeout_ms, extra);
	else if (r->cancelled)
		snprintf(r->reason, sizeof(r->reason), "cancelled: the whole process tree was killed%s",
			 extra);
	else if (r->term_signal)
		snprintf(r->reason, sizeof(r->reason), "killed by signal %d (SIG%s)%s", r->term_signal,
			 sig ? sig : "?", extra);
	else if (r->reason[0] == 0)
		snprintf(r->reason, sizeof(r->reason), "exited with status %d%s", r->exit_code, extra);
	if (r->out_truncated || r->err_truncated) {
		size_t n = strlen(r->reason);
		snprintf(r->reason + n, sizeof(r->reason) - n, "; output over %zu bytes was cut",
			 b->run.out.cap);
	}
}

int sbx_collect(sbx *b, sbx_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&out->out, 0);
	buf_init(&out->err, 0);
	out->mem_peak_bytes = -1;
	if (!b->active)
		return err_set(ERR_INVALID, "no command was started in this sandbox box");
	if (!b->run.finished)
		return err_set(ERR_BUSY, "the command is still running; wait for it first");
	out->timed_out = b->run.timed_out;
	out->cancelled = b->run.cancelled && !b->run.timed_out;
	rc = b->ops->collect(b, out);
	if (rc == 0)
		rc = sbx_capture_finish(&b->run.out, &out->out, &out->out_truncated);
	if (rc == 0)
		rc = sbx_capture_finish(&b->run.err, &out->err, &out->err_truncated);
	out->out_bytes = b->run.out.total;
	out->err_bytes = b->run.err.total;
	out->wall_ms = util_mono_ms() - b->run.started_ms;
	met_observe(met_with(met_histogram("orch_sandbox_duration_seconds",
					   "a sandboxed command from start to collect, by backend",
					   "backend", NULL, 0),
			     b->ops->name),
		    (double)out->wall_ms / 1000.0);
	if (out->timed_out) {
		out->exit_code = SBX_EXIT_TIMEOUT;
	} else if (out->cancelled && out->term_signal == SIGKILL) {
		out->exit_code = 130;
	}
	snprintf(out->degraded, sizeof(out->degraded), "%s", b->degraded);
	describe_end(b, out);
	b->active = 0;
	run_state_clear(&b->run);
	if (rc < 0)
		sbx_result_free(out);
	return rc;
}

int sbx_run(sbx *b, const sbx_cmd *cmd, sbx_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = sbx_start(b, cmd);
	if (rc < 0)
		return rc;
	rc = sbx_wait(b, -1);
	if (rc < 0) {
		sbx_kill(b);
		while (sbx_wait(b, 1000) == ERR_BUSY)
			;
	}
	return sbx_collect(b, out);
}

void sbx_result_free(sbx_result *r)
{
	if (!r)
		return;
	buf_free(&r->out);
	buf_free(&r->err);
}
