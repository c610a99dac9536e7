/*
 * fake_docker — a Docker Engine API server (v1.41) on a unix socket for the
 * docker sandbox backend's tests (no Docker engine runs on these machines).
 *
 *   fake_docker --socket PATH --log FILE [--images a:1,b:2]
 *
 * It speaks the real protocol for what the backend uses: GET /_ping,
 * POST /containers/create, POST /containers/{id}/start, POST
 * /containers/{id}/wait (held until the container exits), POST
 * /containers/{id}/kill, GET /containers/{id}/logs (the multiplexed stream:
 * 8-byte headers), GET /containers/{id}/json, DELETE /containers/{id},
 * GET /containers/json. A "container" runs its Cmd as a plain host process
 * (NOT isolated: tests run only harmless commands), in the host folder
 * bound at /workspace when WorkingDir is there. A Cmd of "fake-oom" ends at
 * once as the engine reports an OOM kill. Unknown images get the engine's
 * 404 "No such image". Every request is appended to the log file as one
 * JSON line {"method","path","body"} so tests can check what was asked.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A request held open (a wait, a followed log). libevent frees it when
 * its client goes away, before telling us through the connection's close
 * callback; so we remember the connection and never touch a request that
 * may be gone. */
typedef struct pend {
	struct evhttp_request *rq;
	struct evhttp_connection *conn;
} pend;

typedef struct ctr {
	char id[65];
	json_t *cfg;
	pid_t pid;
	int state; /* 0 created, 1 running, 2 exited */
	int exit_code, oom;
	struct evbuffer *logs;
	int fds[2];
	struct event *evs[2];
	pend waiters[16];
	int nwait;
	pend followers[16];
	int nfollow;
	struct ctr *next;
} ctr;

static struct event_base *g_base;
static ctr *g_ctrs;
static FILE *g_log;
static const char *g_images = "alpine:3";
static unsigned g_seq;

static ctr *find(const char *id)
{
	for (ctr *c = g_ctrs; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static void reply_json(struct evhttp_request *rq, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s)
		evbuffer_add(b, s, strlen(s));
	evhttp_add_header(evhttp_request_get_output_headers(rq), "Content-Type", "application/json");
	evhttp_send_reply(rq, code, code < 300 ? "OK" : "Error", b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

static void reply_msg(struct evhttp_request *rq, int code, const char *msg)
{
	reply_json(rq, code, json_pack("{s:s}", "message", msg));
}

static void finish_waiters(ctr *c)
{
	if (c->state != 2 || c->fds[0] >= 0 || c->fds[1] >= 0)
		return; /* not exited, or output still to read */
	while (c->nfollow > 0) {
		pend p = c->followers[--c->nfollow];
		evhttp_connection_set_closecb(p.conn, NULL, NULL);
		evhttp_send_reply_end(p.rq);
	}
	while (c->nwait > 0) {
		pend p = c->waiters[--c->nwait];
		evhttp_connection_set_closecb(p.conn, NULL, NULL);
		reply_json(p.rq, 200, json_pack("{s:i,s:n}", "StatusCode", c->exit_code, "Error"));
	}
}

/* A client that gave up (its timeout) closed the connection: libevent has
 * freed its held requests, so forget them. */
static void on_close(struct evhttp_connection *conn, void *arg)
{
	(void)arg;
	for (ctr *c = g_ctrs; c; c = c->next) {
		for (int i = 0; i < c->nwait; i++)
			if (c->waiters[i].conn == conn)
				c->waiters[i--] = c->waiters[--c->nwait];
		for (int i = 0; i < c->nfollow; i++)
			if (c->followers[i].conn == conn)
				c->followers[i--] = c->followers[--c->nfollow];
	}
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
	ctr *c = arg;
	int k = fd == c->fds[0] ? 0 : 1;
	char data[16384];
	ssize_t n = read(fd, data, sizeof(data));
	(void)what;

	if (n > 0) {
		unsigned char h[8] = {(unsigned char)(k + 1), 0, 0, 0, (unsigned char)(n >> 24),
				      (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
		/* a real engine bounds its logs too; keep the fake small */
		if (evbuffer_get_length(c->logs) < (8u << 20)) {
			evbuffer_add(c->logs, h, 8);
			evbuffer_add(c->logs, data, (size_t)n);
			for (int i = 0; i < c->nfollow; i++) {
				struct evbuffer *b = evbuffer_new();
				evbuffer_add(b, h, 8);
				evbuffer_add(b, data, (size_t)n);
				evhttp_send_reply_chunk(c->followers[i].rq, b);
				evbuffer_free(b);
			}
		}
		return;
	}
	if (n < 0 && errno == EINTR)
		return;
	event_free(c->evs[k]);
	c->evs[k] = NULL;
	close(fd);
	c->fds[k] = -1;
	finish_waiters(c);
}

static void on_child(evutil_socket_t sig, short what, void *arg)
{
	int st;
	pid_t pid;
	(void)sig;
	(void)what;
	(void)arg;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (ctr *c = g_ctrs; c; c = c->next)
			if (c->pid == pid && c->state == 1) {
				c->state = 2;
				c->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				finish_waiters(c);
			}
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopexit(g_base, NULL);
}

/* The host folder behind /workspace, from HostConfig.Binds. */
static const char *workspace_host(ctr *c, char *out, size_t cap)
{
	json_t *binds = json_object_get(json_object_get(c->cfg, "HostConfig"), "Binds");
	size_t i;
	json_t *v;

	json_array_foreach(binds, i, v) {
		const char *s = json_string_value(v);
		const char *m = s ? strstr(s, ":/workspace:") : NULL;
		if (m) {
			snprintf(out, cap, "%.*s", (int)(m - s), s);
			return out;
		}
	}
	return NULL;
}

static void start(ctr *c)
{
	json_t *cmd = json_object_get(c->cfg, "Cmd"), *env = json_object_get(c->cfg, "Env");
	size_t n = json_array_size(cmd), ne = json_array_size(env);
	int o[2], e[2];
	char ws[4096];
	const char *wd = json_string_value(json_object_get(c->cfg, "WorkingDir"));

	if (n > 0 && strcmp(json_string_value(json_array_get(cmd, 0)), "fake-oom") == 0) {
		c->state = 2;
		c->exit_code = 137;
		c->oom = 1;
		return;
	}
	if (n == 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
		c->state = 2;
		c->exit_code = 127;
		return;
	}
	c->pid = fork();
	if (c->pid == 0) {
		char **argv = calloc(n + 1, sizeof(char *)), **envp = calloc(ne + 1, sizeof(char *));
		const char *host = workspace_host(c, ws, sizeof(ws));
		for (size_t i = 0; i < n; i++)
			argv[i] = (char *)json_string_value(json_array_get(cmd, i));
		for (size_t i = 0; i < ne; i++)
			envp[i] = (char *)json_string_value(json_array_get(env, i));
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		if (host && wd && strncmp(wd, "/workspace", 10) == 0) {
			if (chdir(host) < 0 || (wd[10] == '/' && chdir(wd + 11) < 0))
				_exit(126);
		} else if (chdir("/tmp") < 0) {
			_exit(126);
		}
		setpgid(0, 0);
		execvpe(argv[0], argv, envp);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	c->fds[0] = o[0];
	c->fds[1] = e[0];
	c->state = 1;
	for (int k = 0; k < 2; k++) {
		c->evs[k] = event_new(g_base, c->fds[k], EV_READ | EV_PERSIST, on_output, c);
		event_add(c->evs[k], NULL);
	}
}

static void drop(ctr *c)
{
	ctr **p = &g_ctrs;

	if (c->state == 1 && c->pid > 0)
		kill(-c->pid, SIGKILL);
	for (int k = 0; k < 2; k++) {
		if (c->evs[k])
			event_free(c->evs[k]);
		if (c->fds[k] >= 0)
			close(c->fds[k]);
	}
	while (c->nwait > 0) {
		pend w = c->waiters[--c->nwait];
		evhttp_connection_set_closecb(w.conn, NULL, NULL);
		reply_msg(w.rq, 404, "container removed");
	}
	while (c->nfollow > 0) {
		pend f = c->followers[--c->nfollow];
		evhttp_connection_set_closecb(f.conn, NULL, NULL);
		evhttp_send_reply_end(f.rq);
	}
	while (*p && *p != c)
		p = &(*p)->next;
	if (*p)
		*p = c->next;
	evbuffer_free(c->logs);
	json_decref(c->cfg);
	free(c);
}

static void record(const char *method, const char *path, const char *body, size_t len)
{
	json_t *b = len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *line = json_pack("{s:s,s:s,s:o}", "method", method, "path", path, "body",
				 b ? b : (len ? json_stringn(body, len) : json_null()));
	char *s = json_dumps(line, JSON_COMPACT);

	fprintf(g_log, "%s\n", s);
	fflush(g_log);
	free(s);
	json_decref(line);
}

static int image_known(const char *img)
{
	size_t n = strlen(img);
	for (const char *p = g_images; p && *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && strncmp(p, img, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static void handle(struct evhttp_request *rq, void *arg)
{
	const char *uri = evhttp_request_get_uri(rq);
	struct evbuffer *in = evhttp_request_get_input_buffer(rq);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	char path[1024], id[80], action[32];
	const char *method;
	int cmd = evhttp_request_get_command(rq);
	ctr *c;
	(void)arg;

	evbuffer_remove(in, body, len);
	body[len] = 0;
	method = cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_POST ? "POST" :
		 cmd == EVHTTP_REQ_DELETE ? "DELETE" : "OTHER";
	snprintf(path, sizeof(path), "%s", strncmp(uri, "/v1.41", 6) == 0 ? uri + 6 : uri);
	record(method, path, body, len);

	if (strcmp(path, "/_ping") == 0) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, "OK", 2);
		evhttp_send_reply(rq, 200, "OK", b);
		evbuffer_free(b);
	} else if (strncmp(path, "/containers/create", 18) == 0 && cmd == EVHTTP_REQ_POST) {
		json_t *cfg = json_loadb(body, len, 0, NULL);
		const char *img = cfg ? json_string_value(json_object_get(cfg, "Image")) : NULL;
		if (!cfg || !img) {
			json_decref(cfg);
			reply_msg(rq, 400, "bad create body");
		} else if (!image_known(img)) {
			char m[300];
			snprintf(m, sizeof(m), "No such image: %s", img);
			json_decref(cfg);
			reply_msg(rq, 404, m);
		} else {
			c = calloc(1, sizeof(*c));
			snprintf(c->id, sizeof(c->id), "%064x", ++g_seq * 2654435761u);
			c->cfg = cfg;
			c->fds[0] = c->fds[1] = -1;
			c->logs = evbuffer_new();
			c->next = g_ctrs;
			g_ctrs = c;
			reply_json(rq, 201, json_pack("{s:s,s:[]}", "Id", c->id, "Warnings"));
		}
	} else if (strncmp(path, "/containers/json", 16) == 0) {
		json_t *list = json_array();
		for (c = g_ctrs; c; c = c->next)
			json_array_append_new(list, json_pack("{s:s,s:s}", "Id", c->id, "State",
							      c->state == 1 ? "running" : c->state == 2 ? "exited" : "created"));
		reply_json(rq, 200, list);
	} else if (sscanf(path, "/containers/%79[0-9a-f]/%31[a-z]", id, action) == 2 ||
		   sscanf(path, "/containers/%79[0-9a-f]", id) == 1) {
		if (sscanf(path, "/containers/%79[0-9a-f]/%31[a-z]", id, action) != 2)
			action[0] = 0;
		c = find(id);
		if (!c) {
			reply_msg(rq, 404, "No such container");
		} else if (strcmp(action, "start") == 0) {
			if (c->state == 0)
				start(c);
			evhttp_send_reply(rq, 204, "No Content", NULL);
		} else if (strcmp(action, "wait") == 0) {
			if (c->nwait < 16) {
				c->waiters[c->nwait++] = (pend){rq, evhttp_request_get_connection(rq)};
				evhttp_connection_set_closecb(evhttp_request_get_connection(rq), on_close,
							      NULL);
				finish_waiters(c);
			} else {
				reply_msg(rq, 500, "too many waiters");
			}
		} else if (strcmp(action, "kill") == 0) {
			if (c->state == 1)
				kill(-c->pid, SIGKILL);
			evhttp_send_reply(rq, 204, "No Content", NULL);
		} else if (strcmp(action, "logs") == 0 && strstr(path, "follow=1") &&
			   !(c->state == 2 && c->fds[0] < 0 && c->fds[1] < 0) && c->nfollow < 16) {
			struct evbuffer *b = evbuffer_new();
			evhttp_add_header(evhttp_request_get_output_headers(rq), "Content-Type",
					  "application/vnd.docker.raw-stream");
			evhttp_send_reply_start(rq, 200, "OK");
			evbuffer_add_buffer_reference(b, c->logs);
			evhttp_send_reply_chunk(rq, b);
			evbuffer_free(b);
			c->followers[c->nfollow++] = (pend){rq, evhttp_request_get_connection(rq)};
			evhttp_connection_set_closecb(evhttp_request_get_connection(rq), on_close, NULL);
		} else if (strcmp(action, "logs") == 0) {
			struct evbuffer *b = evbuffer_new();
			evbuffer_add_buffer_reference(b, c->logs);
			evhttp_add_header(evhttp_request_get_output_headers(rq), "Content-Type",
					  "application/vnd.docker.raw-stream");
			evhttp_send_reply(rq, 200, "OK", b);
			evbuffer_free(b);
		} else if (strcmp(action, "json") == 0) {
			reply_json(rq, 200,
				   json_pack("{s:s,s:{s:s,s:b,s:i,s:b}}", "Id", c->id, "State", "Status",
					     c->state == 1 ? "running" : "exited", "Running", c->state == 1,
					     "ExitCode", c->exit_code, "OOMKilled", c->oom));
		} else if (action[0] == 0 && cmd == EVHTTP_REQ_DELETE) {
			if (c->state == 1 && !strstr(path, "force=1")) {
				reply_msg(rq, 409, "container is running: stop it or use force");
			} else {
				drop(c);
				evhttp_send_reply(rq, 204, "No Content", NULL);
			}
		} else {
			reply_msg(rq, 404, "page not found");
		}
	} else {
		reply_msg(rq, 404, "page not found");
	}
	free(body);
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *logf = NULL;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct evhttp *http;
	struct evconnlistener *l;
	struct event *sc, *st, *si;
	int fd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--socket") == 0)
			sock = argv[i + 1];
		else if (strcmp(argv[i], "--log") == 0)
			logf = argv[i + 1];
		else if (strcmp(argv[i], "--images") == 0)
			g_images = argv[i + 1];
	}
	if (!sock || !logf || strlen(sock) >= sizeof(a.sun_path)) {
		fprintf(stderr, "usage: fake_docker --socket PATH --log FILE [--images a:1,b:2]\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	g_log = fopen(logf, "a");
	if (!g_log)
		return 1;
	unlink(sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	memcpy(a.sun_path, sock, strlen(sock) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		perror("fake_docker: socket");
		return 1;
	}
	g_base = event_base_new();
	http = evhttp_new(g_base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(http, handle, NULL);
	l = evconnlistener_new(g_base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l || !evhttp_bind_listener(http, l)) {
		fprintf(stderr, "fake_docker: cannot listen\n");
		return 1;
	}
	sc = evsignal_new(g_base, SIGCHLD, on_child, NULL);
	st = evsignal_new(g_base, SIGTERM, on_term, NULL);
	si = evsignal_new(g_base, SIGINT, on_term, NULL);
	event_add(sc, NULL);
	event_add(st, NULL);
	event_add(si, NULL);
	event_base_dispatch(g_base);
	while (g_ctrs)
		drop(g_ctrs);
	event_free(sc);
	event_free(st);
	event_free(si);
	evhttp_free(http);
	event_base_free(g_base);
	fclose(g_log);
	unlink(sock);
	return 0;
}
