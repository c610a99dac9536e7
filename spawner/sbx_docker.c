/* sbx_docker — the sandbox backend on the Docker Engine API (v1.41) over
 * the engine's unix socket.
 *
 * One container per command, as `docker run -i` makes it:
 *   create   limits, read-only root, tmpfs /tmp (and /workspace when no
 *            workspace is given), the workspace and binds as mounts (any
 *            path, ':' included), no capabilities, no_new_privs, our own
 *            seccomp profile (the ns backend's deny-list), user 1000:1000,
 *            network "none" or an internal network, core files off, no log
 *            kept by the engine, a tiny init, labels naming the owner
 *            (host, pid, start time) and the deadline;
 *   attach   before start, on a raw connection (the engine hijacks it):
 *            stdin goes in, the multiplexed stdout/stderr comes out byte for
 *            byte, captured under our own cap (head and tail) and passed to
 *            cmd.on_output as it arrives;
 *   start, then the wait pumps the attach stream, enforcing the timeout and
 *            the cancel flag (kill, then read to the end);
 *   wait     the exit status; inspect: the OOM flag; remove.
 * A container whose owner died (SIGKILL) is killed and removed by
 * sbx_sweep_docker(): every new box sweeps its engine, the spawner's janitor
 * does it periodically, `orchestrator sandbox sweep` on demand.
 * The engine's socket is never made visible to a container: a workspace or
 * bind that would expose it is refused.
 *
 * Egress: a box with an egress socket gets the socket bound at
 * SBX_EGRESS_INSIDE and the static forwarder (sbx_fwd_image, written once
 * beside the socket) at SBX_EGRESS_FWD_INSIDE, which every command runs
 * through: it listens on 127.0.0.1:SBX_EGRESS_PORT in the container's own
 * network namespace (none: loopback only), leaves the forwarder running and
 * becomes the command. The proxy variables are the same as on ns. */
#include "spawner/sbx_int.h"

#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define API "http://docker/v1.41"
#define LABEL "orchestrator.sandbox"
#define LABEL_OWNER "orchestrator.owner"
#define LABEL_DEADLINE "orchestrator.deadline"
/* a container past its deadline by this much is a leftover whoever owns it */
#define SWEEP_GRACE_MS 60000

typedef struct dk_impl {
	http_client *http;
	char id[80];      /* the current container, "" when none */
	int running, exit_code, have_exit, oom;
	int fd;           /* the attach connection, -1 when none */
	int kill_fd;      /* the kill request's connection, -1 when none */
	int eof, stdin_closed;
	int64_t kill_ms;  /* when the kill was sent (0: not yet) */
	/* stream demultiplexing */
	unsigned char hdr[8];
	size_t hdr_len, frame_left;
	int frame_stream, stop;
	uint32_t uid;     /* the host uid the container's user 1000 writes as */
	char fwd[PATH_MAX]; /* egress: the forwarder's host path ("" without) */
	sbx *b;
} dk_impl;

static atomic_uint g_seq;

/* ---- requests ---- */

/* One request over the engine's socket. `body` may be NULL. The response
 * is the caller's to free. */
static int call_on(http_client *h, const char *sock, const char *method, const char *path,
		   const char *body, int64_t timeout_ms, http_response *out)
{
	char url[2048];
	const char *hdrs[] = {"Content-Type: application/json", NULL};
	http_request rq = {
		.method = method,
		.url = url,
		.headers = hdrs,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.connect_timeout_ms = 5000,
		.timeout_ms = timeout_ms,
		.max_response = 4 << 20,
		.unix_socket = sock,
	};
	int rc;

	snprintf(url, sizeof(url), API "%s", path);
	rc = http_do(h, &rq, out);
	if (rc < 0 && rc != ERR_TIMEOUT && rc != ERR_CANCELLED)
		err_wrap("Docker engine at %s (%s %s)", sock, method, path);
	return rc;
}

static int call(dk_impl *d, const char *method, const char *path, const char *body,
		int64_t timeout_ms, http_response *out)
{
	return call_on(d->http, d->b->docker_socket, method, path, body, timeout_ms, out);
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

/* A reply's body as JSON (owned), NULL when it is not JSON. */
static json_t *body_json(const http_response *r)
{
	return json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
}

/* ---- the owner of a container ---- */

/* This process's start time in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 when unreadable. A reused pid has another one. */
static unsigned long long proc_start(long pid)
{
	char path[64], line[1024];
	FILE *f;
	char *p;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f)) {
		p = strrchr(line, ')'); /* the command name may hold spaces */
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			v = strtoull(p + 1, NULL, 10);
	}
	fclose(f);
	return v;
}

/* "HOST/PID/START": who owns a container, checked by the sweep. */
static void owner_label(char *out, size_t cap)
{
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, cap, "%s/%ld/%llu", host, (long)getpid(), proc_start((long)getpid()));
}

/* 1 when the owner named by `label` is known dead: on this host, its pid
 * is gone or now another process. An owner on another host: 0 (unknown). */
static int owner_dead(const char *label)
{
	char host[256] = "", want[256];
	const char *slash = label ? strchr(label, '/') : NULL;
	long pid;
	unsigned long long start;
	char *end;

	if (!slash)
		return 0;
	gethostname(host, sizeof(host) - 1);
	snprintf(want, sizeof(want), "%.*s", (int)(slash - label), label);
	if (strcmp(want, host) != 0)
		return 0;
	errno = 0;
	pid = strtol(slash + 1, &end, 10);
	if (errno || *end != '/' || pid <= 0)
		return 0;
	start = strtoull(end + 1, NULL, 10);
	return proc_start(pid) != start;
}

/* ---- preparing a box ---- */

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

/* The network: "none", or a user-defined network the engine marks
 * internal. The host's network, the default bridge and another
 * container's namespace would expose the host's interfaces and loopback
 * services. */
static int check_network(dk_impl *d)
{
	const char *net = d->b->net;
	char path[600], msg[300];
	http_response r;
	json_t *j = NULL;
	int rc;

	if (strcmp(net, "none") == 0)
		return 0;
	if (strcmp(net, "host") == 0 || strcmp(net, "bridge") == 0 || strcmp(net, "default") == 0 ||
	    strchr(net, ':') || strchr(net, '/') || strlen(net) > 200)
		return err_set(ERR_INVALID,
			       "network '%s' is refused: it would expose the host's interfaces or "
			       "another container's; use none, or an internal network (docker network "
			       "create --internal NAME)",
			       net);
	snprintf(path, sizeof(path), "/networks/%s", net);
	rc = call(d, "GET", path, NULL, 10000, &r);
	if (rc < 0) {
		rc = recode(ERR_SANDBOX);
		goto done;
	}
	if (r.status == 404) {
		rc = err_set(ERR_INVALID, "network '%s' does not exist on the Docker engine: create it "
					  "with docker network create --internal %s", net, net);
		goto done;
	}
	j = body_json(&r);
	if (r.status != 200 || !j) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "the Docker engine could not show network '%s' (HTTP %ld): %s",
			     net, r.status, msg);
		goto done;
	}
	if (!json_is_true(json_object_get(j, "Internal")))
		rc = err_set(ERR_INVALID,
			     "network '%s' is not internal: its containers reach the host and beyond; "
			     "use none or a network made with docker network create --internal", net);
done:
	json_decref(j);
	http_response_free(&r);
	return rc;
}

/* The first host uid of the engine's remapped range, from /info's
 * DockerRootDir: under --userns-remap the engine keeps its data in
 * <data-root>/<uid>.<gid>. 0 when the name is not that. */
static long long remap_base_from_root(const char *root)
{
	const char *base = root ? strrchr(root, '/') : NULL;
	char *end;
	long long uid;

	if (!base || !base[1])
		return 0;
	base++;
	uid = strtoll(base, &end, 10);
	if (end == base || *end != '.' || uid <= 0 || uid > 4294967295LL - 65536)
		return 0;
	(void)strtoll(end + 1, &end, 10);
	return *end == '\0' ? uid : 0;
}

/* The host uid the container's uid 1000 writes as: 1000, or with the
 * engine's user namespace remapping (dockerd --userns-remap) the remapped
 * range's first uid plus 1000. That first uid is read from the engine's
 * data folder name (/info DockerRootDir ends in "<uid>.<gid>"), so it is
 * right also when this process runs in a container without the host's
 * /etc/subuid; else from the first /etc/subuid entry of the remap user
 * (ORCH_DOCKER_USERNS_USER, "dockremap" by default). */
static int container_uid(dk_impl *d)
{
	http_response r;
	json_t *j = NULL, *v;
	size_t i;
	int remapped = 0, rc;
	long long base = 0;

	d->uid = 1000;
	rc = call(d, "GET", "/info", NULL, 10000, &r);
	if (rc < 0 || r.status != 200) {
		http_response_free(&r);
		return 0; /* /_ping answered: assume no remapping */
	}
	j = body_json(&r);
	json_array_foreach(json_object_get(j, "SecurityOptions"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), "name=userns") == 0)
			remapped = 1;
	if (remapped)
		base = remap_base_from_root(json_string_value(json_object_get(j, "DockerRootDir")));
	json_decref(j);
	http_response_free(&r);
	if (remapped && base <= 0) {
		const char *user = getenv("ORCH_DOCKER_USERNS_USER");
		FILE *f = fopen("/etc/subuid", "r");
		char line[512];
		size_t ul;

		if (!user || !*user)
			user = "dockremap";
		ul = strlen(user);
		while (f && fgets(line, sizeof(line), f))
			if (strncmp(line, user, ul) == 0 && line[ul] == ':') {
				base = strtoll(line + ul + 1, NULL, 10);
				break;
			}
		if (f)
			fclose(f);
		if (base <= 0 || base > 4294967295LL - 65536)
			return err_set(ERR_SANDBOX,
				       "the Docker engine remaps user namespaces but neither its data "
				       "folder nor /etc/subuid names the range of '%s': set "
				       "ORCH_DOCKER_USERNS_USER to the remap user of dockerd "
				       "--userns-remap", user);
	}
	if (remapped)
		d->uid = (uint32_t)base + 1000;
	return 0;
}

/* 1 when the file at `path` holds exactly the forwarder image. */
static int same_image(const char *path)
{
	const unsigned char *img = sbx_fwd_image;
	size_t size = (size_t)(sbx_fwd_image_end - sbx_fwd_image), off = 0;
	char chunk[65536];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), same = 0;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != size ||
	    st.st_uid != geteuid() || (st.st_mode & 07777) != 0555)
		goto done;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || off + (size_t)n > size || memcmp(chunk, img + off, (size_t)n) != 0)
			break;
		off += (size_t)n;
	}
	same = off == size;
done:
	close(fd);
	return same;
}

/* Writes the egress forwarder beside the box's egress socket, as
 * <its folder>/egress-fwd (mode 0555), unless it is there already: written
 * under another name, then renamed, so no box binds a half-written file.
 * Its host path goes to d->fwd. ERR_IO saying why. */
static int install_forwarder(dk_impl *d)
{
	const char *sock = d->b->binds[d->b->nbinds - 1].host;
	const char *slash = strrchr(sock, '/');
	size_t size = (size_t)(sbx_fwd_image_end - sbx_fwd_image), off = 0;
	char tmp[PATH_MAX + 64];
	int fd, rc = 0;

	if (!slash || slash == sock)
		return err_set(ERR_INVALID, "the egress socket %s is not in a folder of its own", sock);
	snprintf(d->fwd, sizeof(d->fwd), "%.*s/egress-fwd", (int)(slash - sock), sock);
	if (same_image(d->fwd))
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.%ld.%u", d->fwd, (long)getpid(), atomic_fetch_add(&g_seq, 1));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555);
	if (fd < 0)
		return err_set(ERR_IO, "cannot write the egress forwarder %s: %s", tmp, strerror(errno));
	while (off < size && rc == 0) {
		ssize_t n = write(fd, sbx_fwd_image + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = err_set(ERR_IO, "cannot write the egress forwarder %s: %s", tmp,
				     n < 0 ? strerror(errno) : "short write");
		else
			off += (size_t)n;
	}
	if (close(fd) < 0 && rc == 0)
		rc = err_set(ERR_IO, "cannot write the egress forwarder %s: %s", tmp, strerror(errno));
	if (rc == 0 && fchmodat(AT_FDCWD, tmp, 0555, 0) < 0)
		rc = err_set(ERR_IO, "cannot make %s executable: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, d->fwd) < 0)
		rc = err_set(ERR_IO, "cannot put the egress forwarder at %s: %s", d->fwd, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int dk_prepare(sbx *b)
{
	dk_impl *d = calloc(1, sizeof(*d));
	http_response r;
	int rc, swept = 0;

	if (!d)
		return err_set(ERR_NOMEM, "out of memory");
	b->impl = d;
	d->b = b;
	d->fd = -1;
	d->kill_fd = -1;
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
	rc = call(d, "GET", "/_ping", NULL, 5000, &r);
	if (rc == 0 && r.status != 200)
		rc = err_set(ERR_SANDBOX, "the Docker engine answered /_ping with HTTP %ld", r.status);
	else if (rc < 0) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_last());
		rc = err_set(ERR_SANDBOX, "cannot reach the Docker engine: %s (is dockerd running? set "
			     "--docker-socket or DOCKER_HOST=unix://PATH)", why);
	}
	http_response_free(&r);
	if (rc == 0)
		rc = check_network(d);
	if (rc == 0)
		rc = container_uid(d);
	if (rc == 0 && b->egress)
		rc = install_forwarder(d);
	b->sandbox_uid = d->uid;
	/* the container's user must own its workspace (spawner workspaces are
	 * root's, mode 0700) */
	if (rc == 0 && b->workspace && sbx_chown_tree(b->workspace, d->uid, d->uid) < 0)
		rc = err_wrap("cannot give the workspace to the sandbox user (uid %u)", d->uid);
	if (rc < 0)
		return rc;
	/* containers of owners that died are this engine's leftovers */
	if (sbx_sweep_docker(b->docker_socket, &swept) == 0 && swept > 0)
		log_info("sandbox", "removed %d containers whose owner died", swept);
	snprintf(b->describe, sizeof(b->describe),
		 "docker: image %s, runtime %s, network %s%s, read-only root, cap-drop ALL, "
		 "no-new-privileges, seccomp deny-list, user 1000:1000 (host uid %u), memory %lld MiB, "
		 "%lld pids, %.2f cpus",
		 b->image, b->runtime ? b->runtime : "default", b->net,
		 b->egress ? " + the egress proxy on 127.0.0.1:3128" : "", d->uid,
		 (long long)(b->mem_bytes >> 20), (long long)b->pids, b->cpus);
	return 0;
}

/* ---- one command ---- */

static json_t *bind_mount(const char *source, const char *target, int writable)
{
	if (source[0] != '/')
		return json_pack("{s:s,s:s,s:s,s:b}", "Type", "volume", "Source", source, "Target",
				 target, "ReadOnly", !writable);
	return json_pack("{s:s,s:s,s:s,s:b,s:{s:s}}", "Type", "bind", "Source", source, "Target",
			 target, "ReadOnly", !writable, "BindOptions", "Propagation", "rprivate");
}

static char *create_body(sbx *b)
{
	sbx_run_state *r = &b->run;
	json_t *root = json_object(), *cmd = json_array(), *env = json_array(), *hc = json_object();
	json_t *mounts = json_array(), *tmpfs = json_object(), *ul = json_array();
	char s[PATH_MAX + 64], owner[400], deadline[32];
	char *profile = sbx_seccomp_docker_profile(), *seccomp = NULL, *out = NULL;

	if (!profile)
		goto done;
	seccomp = malloc(strlen(profile) + 9);
	if (!seccomp)
		goto done;
	memcpy(seccomp, "seccomp=", 8);
	memcpy(seccomp + 8, profile, strlen(profile) + 1);
	if (b->egress) /* the forwarder first; it becomes the command */
		json_array_append_new(cmd, json_string(SBX_EGRESS_FWD_INSIDE));
	for (char **p = r->argv; *p; p++)
		json_array_append_new(cmd, json_string(*p));
	for (char **p = r->envp; *p; p++)
		json_array_append_new(env, json_string(*p));
	owner_label(owner, sizeof(owner));
	snprintf(deadline, sizeof(deadline), "%lld",
		 (long long)(r->deadline_ms ? util_wall_ms() + (r->deadline_ms - util_mono_ms()) : 0));
	json_object_set_new(root, "Image", json_string(b->image));
	json_object_set_new(root, "Cmd", cmd);
	json_object_set_new(root, "Entrypoint", json_array());
	json_object_set_new(root, "Env", env);
	json_object_set_new(root, "WorkingDir", json_string(r->cwd));
	json_object_set_new(root, "User", json_string("1000:1000"));
	json_object_set_new(root, "Hostname", json_string("sandbox"));
	json_object_set_new(root, "Tty", json_false());
	json_object_set_new(root, "OpenStdin", json_true());
	json_object_set_new(root, "StdinOnce", json_true());
	json_object_set_new(root, "AttachStdin", json_true());
	json_object_set_new(root, "AttachStdout", json_true());
	json_object_set_new(root, "AttachStderr", json_true());
	json_object_set_new(root, "NetworkDisabled", json_boolean(strcmp(b->net, "none") == 0));
	json_object_set_new(root, "Labels", json_pack("{s:s,s:s,s:s}", LABEL, "1", LABEL_OWNER, owner,
						      LABEL_DEADLINE, deadline));
	json_object_set_new(hc, "Memory", json_integer(b->mem_bytes));
	json_object_set_new(hc, "MemorySwap", json_integer(b->mem_bytes));
	json_object_set_new(hc, "PidsLimit", json_integer(b->pids));
	json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(b->cpus * 1e9 + 0.5)));
	json_object_set_new(hc, "NetworkMode", json_string(b->net));
	json_object_set_new(hc, "ReadonlyRootfs", json_true());
	json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
	json_object_set_new(hc, "SecurityOpt", json_pack("[s,s]", "no-new-privileges", seccomp));
	json_object_set_new(hc, "Init", json_true());
	json_object_set_new(hc, "IpcMode", json_string("private"));
	json_object_set_new(hc, "Privileged", json_false());
	json_object_set_new(hc, "ShmSize", json_integer(b->tmp_bytes));
	if (b->runtime)
		json_object_set_new(hc, "Runtime", json_string(b->runtime));
	snprintf(s, sizeof(s), "rw,exec,nosuid,nodev,size=%lld,mode=1777", (long long)b->tmp_bytes);
	json_object_set_new(tmpfs, "/tmp", json_string(s));
	if (b->workspace_volume || b->workspace) {
		json_array_append_new(mounts, bind_mount(b->workspace_volume ? b->workspace_volume
									    : b->workspace,
							 "/workspace", 1));
	} else {
		/* an empty workspace per command, as the ns backend gives */
		snprintf(s, sizeof(s), "rw,exec,nosuid,nodev,size=%lld,uid=1000,gid=1000,mode=0755",
			 (long long)b->tmp_bytes);
		json_object_set_new(tmpfs, "/workspace", json_string(s));
	}
	json_object_set_new(hc, "Tmpfs", tmpfs);
	for (size_t i = 0; i < b->nbinds; i++)
		json_array_append_new(mounts, bind_mount(b->binds[i].host, b->binds[i].inside,
							 b->binds[i].writable));
	if (b->egress)
		json_array_append_new(mounts, bind_mount(((dk_impl *)b->impl)->fwd,
							 SBX_EGRESS_FWD_INSIDE, 0));
	json_object_set_new(hc, "Mounts", mounts);
	json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "nofile", "Soft",
					    (json_int_t)b->nofile, "Hard", (json_int_t)b->nofile));
	json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "fsize", "Soft",
					    (json_int_t)b->fsize_bytes, "Hard", (json_int_t)b->fsize_bytes));
	json_array_append_new(ul, json_pack("{s:s,s:i,s:i}", "Name", "core", "Soft", 0, "Hard", 0));
	json_object_set_new(hc, "Ulimits", ul);
	/* the output reaches us through the attach stream; the engine keeps none */
	json_object_set_new(hc, "LogConfig", json_pack("{s:s,s:{}}", "Type", "none", "Config"));
	json_object_set_new(root, "HostConfig", hc);
	out = json_dumps(root, JSON_COMPACT);
done:
	json_decref(root);
	free(profile);
	free(seccomp);
	return out;
}

static void dk_remove(dk_impl *d)
{
	http_response r;
	char path[160];

	if (!d->id[0])
		return;
	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", d->id);
	if (call(d, "DELETE", path, NULL, 30000, &r) < 0 || (r.status != 204 && r.status != 404))
		log_warn("sandbox", "cannot remove container %.12s: %s (HTTP %ld)", d->id, err_last(),
			 r.status);
	http_response_free(&r);
	d->id[0] = 0;
}

/* Splits the engine's multiplexed stream: 8-byte headers [stream, 0, 0, 0,
 * size big-endian] each followed by size bytes. */
static void demux(dk_impl *d, const char *data, size_t len)
{
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
		if (!d->stop && sbx_deliver(d->b, d->frame_stream, data, k))
			d->stop = 1;
		d->frame_left -= k;
		data += k;
		len -= k;
	}
}

static void close_attach(dk_impl *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->kill_fd >= 0)
		close(d->kill_fd);
	d->fd = d->kill_fd = -1;
}

/* A connection to the engine's socket (-1 with the error set). */
static int engine_connect(dk_impl *d)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(d->b->docker_socket) >= sizeof(a.sun_path))
		return err_set(ERR_INVALID, "the Docker socket path %s is too long", d->b->docker_socket);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", d->b->docker_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return err_set(ERR_SANDBOX, "cannot connect to the Docker engine at %s: %s",
			       d->b->docker_socket, strerror(e));
	}
	return fd;
}

/* Attaches to the created container on a connection of its own, as
 * `docker run` does before it starts one: the engine answers 101 (or 200)
 * and the connection becomes the container's stdio. */
static int attach(dk_impl *d)
{
	char rq[512], head[4096];
	size_t n = 0;
	char *end = NULL;
	int64_t until = util_mono_ms() + 30000;
	long status = 0;

	d->fd = engine_connect(d);
	if (d->fd < 0)
		return err_wrap("cannot attach to the container");
	n = (size_t)snprintf(rq, sizeof(rq),
			     "POST /v1.41/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1 "
			     "HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
			     "Content-Length: 0\r\n\r\n",
			     d->id);
	if (write(d->fd, rq, n) != (ssize_t)n) {
		close_attach(d);
		return err_set(ERR_SANDBOX, "cannot attach to the container: %s", strerror(errno));
	}
	n = 0;
	while (!end) {
		struct pollfd p = {.fd = d->fd, .events = POLLIN};
		int64_t left = until - util_mono_ms();
		ssize_t k;

		if (left <= 0 || n >= sizeof(head) - 1) {
			close_attach(d);
			return err_set(ERR_SANDBOX, "the Docker engine did not answer the attach");
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		/* byte by byte up to the blank line: what follows is the stream */
		k = read(d->fd, head + n, 1);
		if (k <= 0) {
			close_attach(d);
			return err_set(ERR_SANDBOX, "the Docker engine closed the attach");
		}
		n += (size_t)k;
		head[n] = 0;
		end = n >= 4 ? strstr(head + n - 4, "\r\n\r\n") : NULL;
	}
	if (sscanf(head, "HTTP/1.%*d %ld", &status) != 1 || (status != 101 && status != 200)) {
		close_attach(d);
		return err_set(ERR_SANDBOX, "the Docker engine refused the attach: %.*s",
			       (int)strcspn(head, "\r\n"), head);
	}
	fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

static int dk_start(sbx *b)
{
	dk_impl *d = b->impl;
	http_response r;
	char path[300], msg[600];
	char *body = NULL;
	json_t *j = NULL;
	const char *id;
	char rnd[9];
	int rc;

	d->running = d->have_exit = d->oom = d->eof = d->stop = d->stdin_closed = 0;
	d->hdr_len = d->frame_left = 0;
	d->kill_ms = 0;
	d->exit_code = -1;
	memset(&r, 0, sizeof(r));
	body = create_body(b);
	if (!body)
		return err_set(ERR_NOMEM, "out of memory");
	util_rand_hex(rnd, 4);
	snprintf(path, sizeof(path), "/containers/create?name=orch-sbx-%d-%u-%s", (int)getpid(),
		 atomic_fetch_add(&g_seq, 1), rnd);
	rc = call(d, "POST", path, body, 60000, &r);
	if (rc < 0) {
		rc = recode(ERR_SANDBOX);
		goto done;
	}
	if (r.status == 404) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "image %s is not on the engine (%s): pull or build it first "
			     "(docker pull %s)", b->image, msg, b->image);
		goto done;
	}
	if (r.status != 201) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "the Docker engine refused the container (HTTP %ld): %s",
			     r.status, msg);
		goto done;
	}
	j = body_json(&r);
	id = json_string_value(json_object_get(j, "Id"));
	if (!id || strlen(id) >= sizeof(d->id) || strspn(id, "0123456789abcdef") != strlen(id)) {
		rc = err_set(ERR_PARSE, "the Docker engine's create reply has no valid Id");
		goto done;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	http_response_free(&r);
	rc = attach(d);
	if (rc < 0) {
		dk_remove(d);
		goto done;
	}
	snprintf(path, sizeof(path), "/containers/%s/start", d->id);
	rc = call(d, "POST", path, NULL, 60000, &r);
	if (rc == 0 && r.status != 204 && r.status != 304) {
		engine_message(&r, msg, sizeof(msg));
		rc = err_set(ERR_SANDBOX, "the Docker engine could not start the container (HTTP %ld): %s",
			     r.status, msg);
	} else if (rc < 0) {
		rc = recode(ERR_SANDBOX);
	}
	if (rc < 0) {
		close_attach(d);
		dk_remove(d);
		goto done;
	}
	d->running = 1;
	if (!b->run.stdin_data) {
		/* no input: the command reads end of file, as from /dev/null */
		shutdown(d->fd, SHUT_WR);
		d->stdin_closed = 1;
	}
done:
	http_response_free(&r);
	json_decref(j);
	free(body);
	return rc;
}

/* Sends the kill without waiting for the answer: the engine may hold it
 * until the container's output is read, which the wait loop goes on doing. */
static int dk_kill(sbx *b)
{
	dk_impl *d = b->impl;
	char rq[300];
	int n;

	if (!d->id[0] || !d->running || d->kill_ms)
		return 0;
	d->kill_ms = util_mono_ms();
	d->kill_fd = engine_connect(d);
	n = snprintf(rq, sizeof(rq),
		     "POST /v1.41/containers/%s/kill?signal=KILL HTTP/1.1\r\nHost: docker\r\n"
		     "Content-Length: 0\r\nConnection: close\r\n\r\n", d->id);
	if (d->kill_fd < 0 || write(d->kill_fd, rq, (size_t)n) != n)
		log_warn("sandbox", "cannot kill container %.12s: %s", d->id, err_last());
	return 0;
}

/* The exit status (wait) and the OOM flag (inspect) of a stopped container. */
static void fetch_end(dk_impl *d)
{
	char path[200];
	http_response r;
	json_t *j = NULL;

	snprintf(path, sizeof(path), "/containers/%s/wait", d->id);
	if (call(d, "POST", path, NULL, 60000, &r) == 0 && r.status == 200)
		j = body_json(&r);
	if (j && json_is_integer(json_object_get(j, "StatusCode"))) {
		d->exit_code = (int)json_integer_value(json_object_get(j, "StatusCode"));
		d->have_exit = 1;
	}
	json_decref(j);
	j = NULL;
	http_response_free(&r);
	snprintf(path, sizeof(path), "/containers/%s/json", d->id);
	if (call(d, "GET", path, NULL, 30000, &r) == 0 && r.status == 200)
		j = body_json(&r);
	if (j) {
		json_t *st = json_object_get(j, "State");
		d->oom = json_is_true(json_object_get(st, "OOMKilled"));
		if (!d->have_exit && json_is_integer(json_object_get(st, "ExitCode")) &&
		    !json_is_true(json_object_get(st, "Running"))) {
			d->exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
			d->have_exit = 1;
		}
	}
	json_decref(j);
	http_response_free(&r);
}

/* Moves what can be moved on the attach connection: input in, output out. */
static void pump(sbx *b, int ms)
{
	dk_impl *d = b->impl;
	sbx_run_state *rs = &b->run;
	struct pollfd p = {.fd = d->fd, .events = POLLIN};
	char chunk[65536];

	if (!d->stdin_closed)
		p.events |= POLLOUT;
	if (poll(&p, 1, ms) <= 0)
		return;
	if (p.revents & POLLOUT) {
		ssize_t w = write(d->fd, rs->stdin_data + rs->stdin_off, rs->stdin_len - rs->stdin_off);
		if (w > 0)
			rs->stdin_off += (size_t)w;
		if ((w < 0 && errno != EAGAIN && errno != EINTR) || rs->stdin_off >= rs->stdin_len) {
			shutdown(d->fd, SHUT_WR);
			d->stdin_closed = 1;
		}
	}
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		for (int i = 0; i < 16; i++) {
			ssize_t k = read(d->fd, chunk, sizeof(chunk));
			if (k > 0) {
				demux(d, chunk, (size_t)k);
				continue;
			}
			if (k == 0 || (errno != EAGAIN && errno != EINTR))
				d->eof = 1;
			break;
		}
	}
}

static int dk_wait(sbx *b, int64_t slice_ms)
{
	dk_impl *d = b->impl;
	sbx_run_state *rs = &b->run;
	int64_t until = slice_ms < 0 ? INT64_MAX : util_mono_ms() + slice_ms;

	while (d->running && !d->eof) {
		int64_t left, ms;
		int rc = sbx_wait_pass(b, until, &ms, &left);

		if (rc < 0)
			return rc;
		if (d->stop && !rs->cancelled) {
			/* on_output asked to stop */
			rs->cancelled = 1;
			dk_kill(b);
		}
		if (!rs->timed_out && !rs->cancelled && left < ms)
			ms = left;
		if (rs->cancel && ms > 100)
			ms = 100;
		if (ms > 1000)
			ms = 1000;
		if (d->kill_ms && util_mono_ms() - d->kill_ms > 60000) {
			log_warn("sandbox", "container %.12s still streams a minute after its kill; "
					    "leaving it to the engine", d->id);
			break;
		}
		pump(b, (int)(ms < 1 ? 1 : ms));
	}
	close_attach(d);
	if (d->running)
		fetch_end(d);
	d->running = 0;
	rs->finished = 1;
	return 0;
}

/* The reason of a command that could not be run, from the first line of
 * its stderr, as the ns backend words it: tini's "[FATAL tini (7)] exec CMD
 * failed: REASON", or the egress forwarder's "sandbox: cannot run 'CMD':
 * REASON" (its own failure too: "sandbox: the egress forwarder ..."). */
static void exec_failure(sbx *b, sbx_result *out)
{
	const sbx_capture *c = &b->run.err;
	const char *p, *f;
	char line[300];
	size_t n = c->head_len < sizeof(line) - 1 ? c->head_len : sizeof(line) - 1;

	memcpy(line, c->head, n);
	line[n] = 0;
	line[strcspn(line, "\n")] = 0;
	if (b->egress && strncmp(line, "sandbox: ", 9) == 0) {
		p = strstr(line, "cannot run '");
		f = p ? strstr(p + 12, "': ") : NULL;
		if (p && f)
			snprintf(out->reason, sizeof(out->reason), "cannot run %.*s: %s",
				 (int)(f - p - 12), p + 12, f + 3);
		else
			snprintf(out->reason, sizeof(out->reason), "%s", line + 9);
		return;
	}
	p = strstr(line, "] exec ");
	f = p ? strstr(p, " failed: ") : NULL;
	if (!p || !f || strncmp(line, "[FATAL tini", 11) != 0)
		return;
	snprintf(out->reason, sizeof(out->reason), "cannot run %.*s: %s", (int)(f - p - 7), p + 7,
		 f + 9);
}

static int dk_collect(sbx *b, sbx_result *out)
{
	dk_impl *d = b->impl;

	out->exit_code = d->have_exit && d->exit_code >= 0 ? d->exit_code & 0xff : 125;
	/* the init reports a command ended by signal N as 128+N */
	if (d->have_exit && out->exit_code > 128 && out->exit_code < 128 + 65)
		out->term_signal = out->exit_code - 128;
	out->oom_killed = d->oom;
	out->fsize_limited = out->term_signal == SIGXFSZ;
	if (b->workspace && !b->workspace_volume)
		out->disk_full = sbx_fs_full(b->workspace);
	out->mem_peak_bytes = -1;
	if (!d->have_exit)
		snprintf(out->reason, sizeof(out->reason), "the Docker engine lost the container");
	else if (out->exit_code == 126 || out->exit_code == 127 || (b->egress && out->exit_code == 125))
		exec_failure(b, out);
	dk_remove(d);
	return 0;
}

static void dk_destroy(sbx *b)
{
	dk_impl *d = b->impl;

	if (!d)
		return;
	close_attach(d);
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

/* ---- the sweep ---- */

int sbx_docker_socket(const char *given, char *out, size_t cap)
{
	const char *v = getenv("DOCKER_HOST");

	if (given && *given) {
		snprintf(out, cap, "%s", given);
		return 0;
	}
	if (v && *v) {
		if (strncmp(v, "unix://", 7) != 0 || v[7] != '/')
			return err_set(ERR_INVALID,
				       "DOCKER_HOST=%s: only a local engine's unix socket is supported "
				       "(unix:///path/to/docker.sock)", v);
		snprintf(out, cap, "%s", v + 7);
		return 0;
	}
	snprintf(out, cap, "/var/run/docker.sock");
	return 0;
}

int sbx_sweep_docker(const char *docker_socket, int *out_removed)
{
	char sock[PATH_MAX], path[512];
	http_client *h = NULL;
	http_response r;
	json_t *list = NULL, *c;
	size_t i;
	int rc, removed = 0;
	int64_t now = util_wall_ms();

	memset(&r, 0, sizeof(r));
	if (out_removed)
		*out_removed = 0;
	rc = sbx_docker_socket(docker_socket, sock, sizeof(sock));
	if (rc < 0)
		return rc;
	rc = http_client_new(&h);
	if (rc < 0)
		return rc;
	/* filters={"label":["orchestrator.sandbox"]}, URL-encoded */
	rc = call_on(h, sock, "GET",
		     "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22" LABEL "%22%5D%7D", NULL,
		     30000, &r);
	if (rc < 0 || r.status != 200) {
		if (rc == 0)
			rc = err_set(ERR_SANDBOX, "the Docker engine could not list containers (HTTP %ld)",
				     r.status);
		goto done;
	}
	list = body_json(&r);
	json_array_foreach(list, i, c) {
		json_t *labels = json_object_get(c, "Labels");
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *dl = json_string_value(json_object_get(labels, LABEL_DEADLINE));
		long long deadline = dl ? strtoll(dl, NULL, 10) : 0;
		http_response dr;

		if (!id || strspn(id, "0123456789abcdef") != strlen(id) || strlen(id) > 80)
			continue;
		if (!owner_dead(json_string_value(json_object_get(labels, LABEL_OWNER))) &&
		    !(deadline > 0 && now > deadline + SWEEP_GRACE_MS))
			continue;
		snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
		if (call_on(h, sock, "DELETE", path, NULL, 30000, &dr) == 0 &&
		    (dr.status == 204 || dr.status == 404))
			removed++;
		else
			log_warn("sandbox", "cannot remove leftover container %.12s: %s (HTTP %ld)", id,
				 err_last(), dr.status);
		http_response_free(&dr);
	}
	if (out_removed)
		*out_removed = removed;
done:
	json_decref(list);
	http_response_free(&r);
	http_client_free(h);
	return rc < 0 ? rc : 0;
}
