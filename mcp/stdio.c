/* mcp stdio — the stdio transport: newline-delimited JSON-RPC messages on
 * standard input and output. See mcp.h. */
#include "mcp/mcp_int.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct out_chan {
	int fd;
	int broken;
	pthread_mutex_t mu;
} out_chan;

/* Writes one message and its newline, whole, under the channel's lock:
 * answers (this thread) and notifications (the watcher's) never interleave. */
static int send_line(const char *msg, size_t len, void *udata)
{
	out_chan *o = udata;
	int rc = 0;

	pthread_mutex_lock(&o->mu);
	for (int part = 0; part < 2 && rc == 0 && !o->broken; part++) {
		const char *p = part == 0 ? msg : "\n";
		size_t left = part == 0 ? len : 1;
		while (left > 0) {
			ssize_t w = write(o->fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				o->broken = 1;
				rc = err_set(ERR_IO, "cannot write to the client: %s", strerror(errno));
				break;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	if (o->broken && rc == 0)
		rc = ERR_IO;
	pthread_mutex_unlock(&o->mu);
	return rc;
}

/* Handles the complete lines in `in`, keeping a partial last line. */
static int handle_lines(mcp_session *ss, out_chan *o, buf *in, int *skipping)
{
	char *start = in->data, *end = in->data + in->len, *nl;
	int rc = 0;

	for (;;) {
		size_t n;
		char *reply = NULL;

		nl = rc == 0 && start < end ? memchr(start, '\n', (size_t)(end - start)) : NULL;
		if (!nl)
			break;
		n = (size_t)(nl - start);

		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (*skipping) {
			*skipping = 0; /* the end of a line too long to take */
		} else if (n > 0) {
			rc = mcp_session_handle(ss, start, n, &reply);
			if (rc == 0 && reply)
				rc = send_line(reply, strlen(reply), o);
			free(reply);
		}
		start = nl + 1;
	}
	if (start > in->data) {
		size_t keep = (size_t)(end - start);
		memmove(in->data, start, keep);
		in->len = keep;
		in->data[keep] = 0;
	}
	return rc;
}

int mcp_stdio_run(mcp_server *s, const mcp_identity *who, int in_fd, int out_fd,
		  volatile int *stop)
{
	out_chan o;
	mcp_session *ss = NULL;
	buf in;
	int rc, skipping = 0;
	char chunk[65536];

	memset(&o, 0, sizeof(o));
	o.fd = out_fd;
	pthread_mutex_init(&o.mu, NULL);
	buf_init(&in, MCP_MAX_MESSAGE + sizeof(chunk));
	rc = mcp_session_new(&ss, s, who, send_line, &o);
	while (rc == 0 && !(stop && *stop)) {
		struct pollfd pfd = {in_fd, POLLIN, 0};
		ssize_t n;
		int pr = poll(&pfd, 1, 1000);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			continue;
		n = read(in_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* end of input: the client closed the session */
		if (buf_append(&in, chunk, (size_t)n) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
		if (rc == 0)
			rc = handle_lines(ss, &o, &in, &skipping);
		if (rc == 0 && in.len > MCP_MAX_MESSAGE) {
			char *err = mcp_error_message(NULL, MCP_PARSE_ERROR,
						      "Parse error: a message longer than 4 MiB "
						      "was skipped");
			log_warn("mcp", "a message longer than %zu bytes was skipped",
				 (size_t)MCP_MAX_MESSAGE);
			if (err)
				rc = send_line(err, strlen(err), &o);
			free(err);
			buf_reset(&in);
			skipping = 1;
		}
		if (o.broken)
			rc = ERR_IO;
	}
	mcp_session_free(ss);
	buf_free(&in);
	pthread_mutex_destroy(&o.mu);
	return rc;
}
