/* sbx_docker — the sandbox backend on the Docker Engine API (v1.41) over
 * the engine's unix socket.
 *
 * One container per command: create (limits, read-only root, tmpfs /tmp,
 * the workspace bound at /workspace, no capabilities, no_new_privs, user
 * 1000:1000, network "none" or a named gateway network, the configured
 * runtime such as sysbox-runc, a tiny init), start, wait (with the
 * command's timeout: kill, then wait again), logs (the multiplexed stream,
 * split into stdout and stderr under the capture cap), inspect (OOM),
 * remove. The engine's socket is never made visible to a container: a
 * workspace or bind that would expose it is refused. Output reaches
 * cmd.on_output live: the wait follows the container's log stream (a
 * request cut short by a slice or the timeout is resumed by skipping what
 * was already delivered), then asks the engine for the exit status. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define API "http://docker/v1.41"

typedef struct dk_impl {
	http_client *http;
	char id[80];      /* the current container, "" when none */
	int running, exit_code, have_exit, oom;
	/* log demultiplexing */
	unsigned char hdr[8];
	size_t hdr_len, frame_left;
	int frame_stream, stop;
	uint64_t seen[3], skip[3]; /* per stream: delivered; still to skip in a replay */
	int logs_done;
	sbx *b;
} dk_impl;

static atomic_uint g_seq;

/* One request. `body` may be NULL. The response is the caller's to free. */
static int call(dk_impl *d, const char *method, const char *path, const char *body,
		int64_t timeout_ms, const atomic_int *cancel, http_response *out)
{
	char url[1024];
	const char *hdrs[] = {"Content-Type: application/json", NULL};
	http_request rq = {
		.method = method,
		.url = url,
		.headers = hdrs,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.connect_timeout_ms = 5000,
		.timeout_ms = timeout_ms,
		.max_response = 1 << 20,
		.unix_socket = d->b->docker_socket,
		.cancel = cancel,
	};
	int rc;

	snprintf(url, sizeof(url), API "%s", path);
	rc = http_do(d->http, &rq, out);
	if (rc < 0 && rc != ERR_TIMEOUT && rc != ERR_CANCELLED)
		err_wrap("Docker engine at %s (%s %s)", d->b->docker_socket, method, path);
	return rc;
}

/* Changes the current error's code to `code`, keeping its message (which
 * must not be passed to err_set as an argument: it is err_set's buffer). */
static int recode(int code)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s", err_last());
	return err_set(code, "%s", msg);
}

/* The engine's "message" of an error reply, for people. */
static void engine_message(const http_response *r, char *out, size_t cap)
{
	json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;

	snprintf(out, cap, "%s", m ? m : (r->body.len ? buf_cstr(&r->body) : "no message"));
	json_decref(j);
}

/* Refuses a host path that is, or contains, the engine's socket. */
static int exposes_socket(const sbx *b, const char *host)
{
	char real[PATH_MAX];
	size_t n = strlen(host);

	if (!realpath(b->docker_socket, real))
		snprintf(real, sizeof(real), "%s", b->docker_socket);
	if (strcmp(real, host) == 0 || strcmp(b->docker_socket, host) == 0)
		return 1;
	if (strcmp(host, "/") == 0)
		return 1;
	return strncmp(real, host, n) == 0 && real[n] == '/';
}

static int dk_prepare(sbx *b)
{
	dk_impl *d = calloc(1, sizeof(*d));
	http_response r;
	int rc;

	if (!d)
		return err_set(ERR_NOMEM, "out of memory");
	b->impl = d;
	d->b = b;
	if (!b->image || !*b->image)
		return err_set(ERR_INVALID, "the docker backend needs an image (--image or ORCH_SANDBOX_IMAGE)");
	if (b->rootfs)
		return err_set(ERR_INVALID, "the docker backend takes its root from the image, not --rootfs");
	if (b->workspace && exposes_socket(b, b->workspace))
		return err_set(ERR_DENIED, "the workspace %s would expose the Docker engine's socket to "
			       "the sandbox; use another folder", b->workspace);
	for (size_t i = 0; i < b->nbinds; i++)
		if (exposes_socket(b, b->binds[i].host))
			return err_set(ERR_DENIED, "bind %s would expose the Docker engine's socket to the "
				       "sandbox; that is never allowed", b->binds[i].host);
	rc = http_client_new(&d->http);
	if (rc < 0)
		return rc;
	rc = call(d, "GET", "/_ping", NULL, 5000, NULL, &r);
	if (rc == 0 && r.status != 200)
		rc = err_set(ERR_SANDBOX, "the Docker engine answered /_ping with HTTP %ld", r.status);
	else if (rc < 0) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_last());
		rc = err_set(ERR_SANDBOX, "cannot reach the Docker engine: %s (is dockerd running? set "
			     "--docker-socket or DOCKER_HOST=unix://PATH)", why);
	}
	http_response_free(&r);
	if (rc < 0)
		return rc;
	snprintf(b->describe, sizeof(b->describe),
		 "docker: image %s, runtime %s, network %s, read-only root, cap-drop ALL, "
		 "no-new-privileges, user 1000:1000, memory %lld MiB, %lld pids, %.2f cpus",
		 b->image, b->runtime ? b->runtime : "default", b->net,
		 (long long)(b->mem_bytes >> 20), (long long)b->pids, b->cpus);
	return 0;
}

static char *create_body(sbx *b)
{
	sbx_run_state *r = &b->run;
	json_t *root = json_object(), *cmd = json_array(), *env = json_array(), *hc = json_object();
	json_t *binds = json_array(), *tmpfs = json_object(), *ul = json_array();
	char s[PATH_MAX + 64];
	char *out;

	for (char **p = r->argv; *p; p++)
		json_array_append_new(cmd, json_string(*p));
	for (char **p = r->envp; *p; p++)
		json_array_append_new(env, json_string(*p));
	json_object_set_new(root, "Image", json_string(b->image));
	json_object_set_new(root, "Cmd", cmd);
	json_object_set_new(root, "Entrypoint", json_array());
	json_object_set_new(root, "Env", env);
	json_object_set_new(root, "WorkingDir", json_string(r->cwd));
	json_object_set_new(root, "User", json_string("1000:1000"));
	json_object_set_new(root, "Hostname", json_string("sandbox"));
	json_object_set_new(root, "Tty", json_false());
	json_object_set_new(root, "AttachStdout", json_true());
	json_object_set_new(root, "AttachStderr", json_true());
	json_object_set_new(root, "NetworkDisabled", json_boolean(strcmp(b->net, "none") == 0));
	json_object_set_new(root, "Labels", json_pack("{s:s}", "orchestrator.sandbox", "1"));
	json_object_set_new(hc, "Memory", json_integer(b->mem_bytes));
	json_object_set_new(hc, "MemorySwap", json_integer(b->mem_bytes));
	json_object_set_new(hc, "PidsLimit", json_integer(b->pids));
	json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(b->cpus * 1e9 + 0.5)));
	json_object_set_new(hc, "NetworkMode", json_string(b->net));
	json_object_set_new(hc, "ReadonlyRootfs", json_true());
	json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
	json_object_set_new(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges"));
	json_object_set_new(hc, "Init", json_true());
	json_object_set_new(hc, "IpcMode", json_string("private"));
	json_object_set_new(hc, "Privileged", json_false());
	if (b->runtime)
		json_object_set_new(hc, "Runtime", json_string(b->runtime));
	snprintf(s, sizeof(s), "rw,nosuid,nodev,size=%lld", (long long)b->tmp_bytes);
	json_object_set_new(tmpfs, "/tmp", json_string(s));
	json_object_set_new(hc, "Tmpfs", tmpfs);
	if (b->workspace_volume || b->workspace) {
		snprintf(s, sizeof(s), "%s:/workspace:rw",
			 b->workspace_volume ? b->workspace_volume : b->workspace);
		json_array_append_new(binds, json_string(s));
	}
	for (size_t i = 0; i < b->nbinds; i++) {
		snprintf(s, sizeof(s), "%s:%s:%s", b->binds[i].host, b->binds[i].inside,
			 b->binds[i].writable ? "rw" : "ro");
		json_array_append_new(binds, json_string(s));
	}
	json_object_set_new(hc, "Binds", binds);
	json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "nofile", "Soft",
					    (json_int_t)b->nofile, "Hard", (json_int_t)b->nofile));
	json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "fsize", "Soft",
					    (json_int_t)b->fsize_bytes, "Hard", (json_int_t)b->fsize_bytes));
	json_object_set_new(hc, "Ulimits", ul);
	/* the engine keeps logs on the host: bound them */
	json_object_set_new(hc, "LogConfig",
			    json_pack("{s:s,s:{s:s,s:s}}", "Type", "json-file", "Config", "max-size",
				      "16m", "max-file", "1"));
	json_object_set_new(root, "HostConfig", hc);
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

static void dk_remove(dk_impl *d)
{
	http_response r;
	char path[160];

	if (!d->id[0])
		return;
	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", d->id);
	if (call(d, "DELETE", path, NULL, 30000, NULL, &r) < 0 ||
	    (r.status != 204 && r.status != 404))
		log_warn("sandbox", "cannot remove container %.12s: %s (HTTP %ld)", d->id, err_last(),
			 r.status);
	http_response_free(&r);
	d->id[0] = 0;
}

static int dk_start(sbx *b)
{
	dk_impl *d = b->impl;
	http_response r;
	char path[200], msg[300];
	char *body = NULL;
	json_t *j = NULL;
	int rc;

	if (b->run.stdin_data)
		return err_set(ERR_INVALID, "the docker backend does not feed stdin; write the input to "
			       "a file in the workspace instead");
	d->running = d->have_exit = d->oom = d->logs_done = 0;
	memset(d->seen, 0, sizeof(d->seen));
	memset(d->skip, 0, sizeof(d->skip));
	d->exit_code = -1;
	body = create_body(b);
	if (!body)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "/containers/create?name=orch-sbx-%d-%u", (int)getpid(),
		 atomic_fetch_add(&g_seq, 1));
	rc = call(d, "POST", path, body, 60000, NULL, &r);
	if (rc < 0) {
		rc = recode(ERR_SANDBOX);
		goto done;
	}
	if (r.status == 404) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "image %s is not on the engine (%s): pull it first (docker pull %s)",
			     b->image, msg, b->image);
		goto done;
	}
	if (r.status != 201) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "the Docker engine refused the container (HTTP %ld): %s",
			     r.status, msg);
		goto done;
	}
	j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
	if (!j || !json_is_string(json_object_get(j, "Id")) ||
	    strlen(json_string_value(json_object_get(j, "Id"))) >= sizeof(d->id) ||
	    strspn(json_string_value(json_object_get(j, "Id")), "0123456789abcdef") !=
		    strlen(json_string_value(json_object_get(j, "Id")))) {
		rc = err_set(ERR_PARSE, "the Docker engine's create reply has no valid Id");
		goto done;
	}
	snprintf(d->id, sizeof(d->id), "%s", json_string_value(json_object_get(j, "Id")));
	http_response_free(&r);
	snprintf(path, sizeof(path), "/containers/%s/start", d->id);
	rc = call(d, "POST", path, NULL, 60000, NULL, &r);
	if (rc == 0 && r.status != 204 && r.status != 304) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "the Docker engine could not start the container (HTTP %ld): %s",
			     r.status, msg);
	} else if (rc < 0) {
		rc = recode(ERR_SANDBOX);
	}
	if (rc < 0)
		dk_remove(d);
	else
		d->running = 1;
done:
	http_response_free(&r);
	json_decref(j);
	free(body);
	return rc;
}

static int dk_kill(sbx *b)
{
	dk_impl *d = b->impl;
	http_response r;
	char path[200];

	if (!d->id[0] || !d->running)
		return 0;
	snprintf(path, sizeof(path), "/containers/%s/kill?signal=KILL", d->id);
	if (call(d, "POST", path, NULL, 30000, NULL, &r) < 0)
		log_warn("sandbox", "cannot kill container %.12s: %s", d->id, err_last());
	http_response_free(&r);
	return 0;
}

/* Splits the engine's multiplexed log stream: 8-byte headers [stream, 0, 0,
 * 0, size big-endian] each followed by size bytes. */
static int on_logs(const char *data, size_t len, void *udata)
{
	dk_impl *d = udata;

	while (len > 0) {
		if (d->frame_left == 0) {
			size_t k = 8 - d->hdr_len < len ? 8 - d->hdr_len : len;
			memcpy(d->hdr + d->hdr_len, data, k);
			d->hdr_len += k;
			data += k;
			len -= k;
			if (d->hdr_len < 8)
				break;
			d->hdr_len = 0;
			d->frame_stream = d->hdr[0] == 2 ? 2 : 1;
			d->frame_left = (size_t)d->hdr[4] << 24 | (size_t)d->hdr[5] << 16 |
					(size_t)d->hdr[6] << 8 | d->hdr[7];
			continue;
		}
		size_t k = d->frame_left < len ? d->frame_left : len;
		size_t drop = d->skip[d->frame_stream] < k ? (size_t)d->skip[d->frame_stream] : k;
		d->skip[d->frame_stream] -= drop;
		if (k > drop) {
			d->seen[d->frame_stream] += k - drop;
			if (!d->stop && sbx_deliver(d->b, d->frame_stream, data + drop, k - drop))
				d->stop = 1;
		}
		d->frame_left -= k;
		data += k;
		len -= k;
	}
	return 0;
}

/* Reads the container's log stream from where the last read stopped.
 * follow: until the container stops (or timeout_ms). Returns 0 when the
 * stream ended normally, ERR_TIMEOUT/ERR_CANCELLED when cut short. */
static int read_logs(sbx *b, int follow, int64_t timeout_ms, const atomic_int *cancel)
{
	dk_impl *d = b->impl;
	char url[1024];
	http_response r;
	http_request rq = {.method = "GET", .url = url, .timeout_ms = timeout_ms < 1 ? 1 : timeout_ms,
			   .unix_socket = b->docker_socket, .on_data = on_logs, .udata = d,
			   .cancel = cancel};
	int rc;

	d->hdr_len = d->frame_left = 0;
	for (int i = 1; i <= 2; i++)
		d->skip[i] = d->seen[i];
	snprintf(url, sizeof(url), API "/containers/%s/logs?stdout=1&stderr=1%s", d->id,
		 follow ? "&follow=1" : "");
	rc = http_do(d->http, &rq, &r);
	if (rc == 0 && r.status != 200) {
		log_warn("sandbox", "logs of container %.12s: HTTP %ld", d->id, r.status);
		rc = ERR_HTTP;
	}
	http_response_free(&r);
	return rc;
}

static void fetch_end(sbx *b)
{
	dk_impl *d = b->impl;
	char path[200];
	http_response r;
	json_t *j = NULL;

	if (!d->logs_done)
		read_logs(b, 0, 120000, NULL);
	snprintf(path, sizeof(path), "/containers/%s/json", d->id);
	if (call(d, "GET", path, NULL, 30000, NULL, &r) == 0 && r.status == 200 &&
	    (j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL))) {
		json_t *st = json_object_get(j, "State");
		d->oom = json_is_true(json_object_get(st, "OOMKilled"));
		if (!d->have_exit && json_is_integer(json_object_get(st, "ExitCode"))) {
			d->exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
			d->have_exit = 1;
		}
	}
	json_decref(j);
	http_response_free(&r);
}

static int dk_wait(sbx *b, int64_t slice_ms)
{
	dk_impl *d = b->impl;
	sbx_run_state *rs = &b->run;
	int64_t until = slice_ms < 0 ? INT64_MAX : util_mono_ms() + slice_ms;
	char path[200];

	snprintf(path, sizeof(path), "/containers/%s/wait", d->id);
	while (d->running) {
		http_response r;
		int64_t left, ms;
		int rc;
		json_t *j;

		rc = sbx_wait_pass(b, until, &ms, &left);
		if (rc < 0)
			return rc;
		if (!rs->timed_out && !rs->cancelled && left < ms)
			ms = left;
		if (ms > 600000)
			ms = 600000;
		if (!d->logs_done) {
			/* live output: the stream ends when the container stops */
			rc = read_logs(b, 1, ms, rs->timed_out || rs->cancelled ? NULL : rs->cancel);
			if (rc == ERR_TIMEOUT || rc == ERR_CANCELLED)
				continue;
			d->logs_done = rc == 0;
			if (d->logs_done)
				ms = 30000; /* stopped: the wait answers at once */
		}
		rc = call(d, "POST", path, NULL, ms < 1 ? 1 : ms,
			  rs->timed_out || rs->cancelled ? NULL : rs->cancel, &r);
		if (rc == ERR_TIMEOUT || rc == ERR_CANCELLED) {
			http_response_free(&r);
			continue;
		}
		if (rc < 0 || r.status != 200) {
			/* the engine lost it: treat as gone, report what we know */
			log_warn("sandbox", "wait for container %.12s failed: %s (HTTP %ld)", d->id,
				 rc < 0 ? err_last() : "", r.status);
			http_response_free(&r);
			d->running = 0;
			break;
		}
		j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
		if (j && json_is_integer(json_object_get(j, "StatusCode"))) {
			d->exit_code = (int)json_integer_value(json_object_get(j, "StatusCode"));
			d->have_exit = 1;
		}
		json_decref(j);
		http_response_free(&r);
		d->running = 0;
	}
	fetch_end(b);
	rs->finished = 1;
	return 0;
}

static int dk_collect(sbx *b, sbx_result *out)
{
	dk_impl *d = b->impl;

	out->exit_code = d->have_exit && d->exit_code >= 0 ? d->exit_code & 0xff : 125;
	/* the engine reports a signal as 128+N */
	if (out->exit_code > 128 && out->exit_code < 160 && (d->oom || b->run.timed_out || b->run.cancelled))
		out->term_signal = out->exit_code - 128;
	out->oom_killed = d->oom;
	out->mem_peak_bytes = -1;
	if (!d->have_exit)
		snprintf(out->reason, sizeof(out->reason), "the Docker engine lost the container");
	dk_remove(d);
	return 0;
}

static void dk_destroy(sbx *b)
{
	dk_impl *d = b->impl;

	if (!d)
		return;
	if (d->http) {
		dk_kill(b);
		dk_remove(d);
		http_client_free(d->http);
	}
	free(d);
	b->impl = NULL;
}

const sbx_ops sbx_docker_ops = {
	.name = "docker",
	.prepare = dk_prepare,
	.start = dk_start,
	.wait = dk_wait,
	.kill = dk_kill,
	.collect = dk_collect,
	.destroy = dk_destroy,
};
