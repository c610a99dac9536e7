#include "eval/replay.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "eval/task.h"
#include "llm/schema.h"
#include "llm/wire.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX ((size_t)32 << 20)
#define NODE_MAX 48
#define SUBJECT_MAX 96

/* One recorded exchange. */
typedef struct exch {
	char node[NODE_MAX];
	char subject[SUBJECT_MAX];
	int turn;
	int status;
	char content_type[128];
	char schema[128];       /* the schema name the recorded call asked for; "" none */
	char *body;             /* the answer as it is sent (owned) */
	int fitted;             /* it fitted the call when it was recorded (an answer that
				   did not, a model's failure, is replayed as it was) */
	int used;
} exch;

typedef struct tape {
	char task[EV_ID_MAX];
	exch *x;
	size_t n, cap;
} tape;

typedef struct counter {
	char task[EV_ID_MAX];
	char node[NODE_MAX];
	char subject[SUBJECT_MAX];
	int n;
} counter;

typedef struct binding {
	char project[256];
	char task[EV_ID_MAX];
} binding;

typedef struct upstream {
	char name[64];
	char base_url[512];
	int64_t timeout_ms;
} upstream;

typedef struct tstats {
	char task[EV_ID_MAX];
	int calls, mismatches;
	char mismatch[600];
} tstats;

struct ev_proxy {
	ev_proxy_mode mode;
	char dir[1024];
	char url[64];
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int running;
	pthread_mutex_t mu;     /* guards everything below, and the files */
	pthread_cond_t cv;
	int inflight;           /* calls being passed on */
	tape *tapes;
	size_t ntapes, captapes;
	counter *counters;
	size_t ncounters, capcounters;
	binding *bindings;
	size_t nbindings, capbindings;
	upstream *ups;
	size_t nups, capups;
	tstats *stats;
	size_t nstats, capstats;
};

/* Makes room for one more element of `size` bytes in *arr (n used, *cap
 * allocated). ERR_NOMEM. */
static int grow(void **arr, size_t n, size_t *cap, size_t size)
{
	void *more;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	more = realloc(*arr, c * size);
	if (!more)
		return err_set(ERR_NOMEM, "out of memory");
	memset((char *)more + *cap * size, 0, (c - *cap) * size);
	*arr = more;
	*cap = c;
	return 0;
}

/* --- lookups (the caller holds the lock) --- */

static tape *tape_of(ev_proxy *p, const char *task, int create)
{
	for (size_t i = 0; i < p->ntapes; i++)
		if (strcmp(p->tapes[i].task, task) == 0)
			return &p->tapes[i];
	if (!create || grow((void **)&p->tapes, p->ntapes, &p->captapes, sizeof(tape)) < 0)
		return NULL;
	snprintf(p->tapes[p->ntapes].task, EV_ID_MAX, "%s", task);
	return &p->tapes[p->ntapes++];
}

static tstats *stats_of(ev_proxy *p, const char *task)
{
	for (size_t i = 0; i < p->nstats; i++)
		if (strcmp(p->stats[i].task, task) == 0)
			return &p->stats[i];
	if (grow((void **)&p->stats, p->nstats, &p->capstats, sizeof(tstats)) < 0)
		return NULL;
	snprintf(p->stats[p->nstats].task, EV_ID_MAX, "%s", task);
	return &p->stats[p->nstats++];
}

/* The next turn of (task, node, subject); 0 when out of memory. */
static int next_turn(ev_proxy *p, const char *task, const char *node, const char *subject)
{
	counter *c;

	for (size_t i = 0; i < p->ncounters; i++) {
		c = &p->counters[i];
		if (strcmp(c->task, task) == 0 && strcmp(c->node, node) == 0 &&
		    strcmp(c->subject, subject) == 0)
			return ++c->n;
	}
	if (grow((void **)&p->counters, p->ncounters, &p->capcounters, sizeof(counter)) < 0)
		return 0;
	c = &p->counters[p->ncounters++];
	snprintf(c->task, sizeof(c->task), "%s", task);
	snprintf(c->node, sizeof(c->node), "%s", node);
	snprintf(c->subject, sizeof(c->subject), "%s", subject);
	c->n = 1;
	return 1;
}

static const char *task_of(ev_proxy *p, const char *project)
{
	const char *any = NULL;

	for (size_t i = 0; i < p->nbindings; i++) {
		if (strcmp(p->bindings[i].project, project) == 0)
			return p->bindings[i].task;
		if (strcmp(p->bindings[i].project, "*") == 0)
			any = p->bindings[i].task;
	}
	return any;
}

/* --- answers --- */

/* Sends `body` with `status` (in the loop thread). */
static void reply(struct evhttp_request *req, int status, const char *content_type,
		  const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	if (out)
		evbuffer_add(out, body, len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  content_type && *content_type ? content_type : "application/json");
	evhttp_send_reply(req, status, status < 300 ? "OK" : status == 400 ? "Bad Request"
								: status == 404 ? "Not Found"
										: "Error",
			  out);
	if (out)
		evbuffer_free(out);
}

/* An OpenAI-style error answer: {"error": {"message", "type"}}. */
static void reply_error(struct evhttp_request *req, int status, const char *type, const char *msg)
{
	json_t *j = json_pack("{s:{s:s, s:s}}", "error", "message", msg, "type", type);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	reply(req, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
	free(s);
	json_decref(j);
}

/* Counts a mismatch of `task` and answers it. */
static void mismatch(ev_proxy *p, struct evhttp_request *req, const char *task, const char *msg)
{
	char text[700];
	tstats *st;

	snprintf(text, sizeof(text), "replay mismatch: %s", msg);
	pthread_mutex_lock(&p->mu);
	st = stats_of(p, task);
	if (st && st->mismatches++ == 0)
		snprintf(st->mismatch, sizeof(st->mismatch), "%s", msg);
	pthread_mutex_unlock(&p->mu);
	log_warn("eval", "task %s: %s", task, text);
	reply_error(req, 400, "replay_mismatch", text);
}

/* What a request asks for that a recorded answer must fit. */
typedef struct asked {
	const char *schema_name;   /* "" when no schema */
	const json_t *schema;      /* NULL when none */
	const json_t *tools;       /* the tools offered (array) or NULL */
	char tail[400];            /* the end of the last message */
} asked;

static void read_request(const json_t *rq, asked *a)
{
	const json_t *js = json_object_get(json_object_get(rq, "response_format"), "json_schema");
	const json_t *msgs = json_object_get(rq, "messages");
	const char *last = json_string_value(
		json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content"));

	memset(a, 0, sizeof(*a));
	a->schema_name = json_string_value(json_object_get(js, "name"));
	if (!a->schema_name)
		a->schema_name = "";
	a->schema = json_object_get(js, "schema");
	a->tools = json_object_get(rq, "tools");
	if (last) {
		size_t n = strlen(last), from = n > sizeof(a->tail) - 1 ? n - (sizeof(a->tail) - 1) : 0;
		/* not inside a UTF-8 sequence */
		while (from < n && ((unsigned char)last[from] & 0xC0) == 0x80)
			from++;
		snprintf(a->tail, sizeof(a->tail), "%s", last + from);
	}
}

/* The reply's content as JSON, without a Markdown fence (as the client
 * reads it). NULL when it is not JSON. */
static json_t *content_json(const char *content)
{
	const char *p = content, *end;

	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	if (strncmp(p, "```", 3) == 0) {
		const char *nl = strchr(p, '\n'), *close = end;
		while (close > p && isspace((unsigned char)close[-1]))
			close--;
		if (nl && close - p >= 6 && strncmp(close - 3, "```", 3) == 0) {
			p = nl + 1;
			end = close - 3;
		}
	}
	return json_loadb(p, (size_t)(end - p), 0, NULL);
}

static int offers_tool(const json_t *tools, const char *name)
{
	size_t i;
	const json_t *t;

	json_array_foreach(tools, i, t)
		if (strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name"))
				   ? json_string_value(json_object_get(json_object_get(t, "function"),
								      "name"))
				   : "",
			   name) == 0)
			return 1;
	return 0;
}

/* Whether a recorded answer fits what the call asks now: "" when it does,
 * else why not, into why[cap]. */
static void check_fit(const exch *e, const asked *a, char *why, size_t cap)
{
	llm_response r;

	why[0] = '\0';
	if (e->status < 200 || e->status >= 300 || strstr(e->content_type, "event-stream"))
		return; /* an error or a stream is served as it was */
	if (strcmp(e->schema, a->schema_name) != 0) {
		snprintf(why, cap, "the recorded answer of node %s%s%s turn %d was for %s%s%s; the call "
				   "now asks for %s%s%s",
			 e->node, *e->subject ? ", subject " : "", e->subject, e->turn,
			 *e->schema ? "the schema '" : "free text", e->schema, *e->schema ? "'" : "",
			 *a->schema_name ? "the schema '" : "free text", a->schema_name,
			 *a->schema_name ? "'" : "");
		return;
	}
	llm_response_init(&r);
	if (llm_wire_parse_reply(e->body, strlen(e->body), &r) < 0) {
		snprintf(why, cap, "the recorded answer of node %s turn %d is not a chat reply: %s",
			 e->node, e->turn, err_last());
		llm_response_free(&r);
		return;
	}
	/* the texts never say "schema" or "grammar": the LLM client reads a 400
	 * that says so as a server refusing the request's JSON schema, and would
	 * ask again with a simpler one instead of reporting the mismatch */
	if (a->schema && r.n_tool_calls == 0) {
		json_t *v = content_json(r.content ? r.content : "");
		char verr[400];
		if (!v)
			snprintf(why, cap, "the recorded answer of node %s%s%s turn %d is not JSON, and "
					   "the call asks for JSON ('%s')",
				 e->node, *e->subject ? ", subject " : "", e->subject, e->turn,
				 a->schema_name);
		else if (llm_schema_check(a->schema, v, verr, sizeof(verr)) < 0)
			snprintf(why, cap, "the recorded answer of node %s%s%s turn %d no longer fits "
					   "what the call asks for ('%s'): %s",
				 e->node, *e->subject ? ", subject " : "", e->subject, e->turn,
				 a->schema_name, verr);
		json_decref(v);
	}
	for (size_t i = 0; !why[0] && i < r.n_tool_calls; i++)
		if (!offers_tool(a->tools, r.tool_calls[i].name))
			snprintf(why, cap, "the recorded answer of node %s%s%s turn %d calls the tool "
					   "'%s', which the call does not offer",
				 e->node, *e->subject ? ", subject " : "", e->subject, e->turn,
				 r.tool_calls[i].name);
	llm_response_free(&r);
	err_clear();
}

static void answer_replay(ev_proxy *p, struct evhttp_request *req, const char *task,
			  const char *node, const char *subject, int turn, const json_t *rq)
{
	tape *t;
	exch *e = NULL, copy;
	int have = 0;
	asked a;
	char why[600];

	pthread_mutex_lock(&p->mu);
	t = tape_of(p, task, 0);
	for (size_t i = 0; t && i < t->n; i++)
		if (strcmp(t->x[i].node, node) == 0 && strcmp(t->x[i].subject, subject) == 0) {
			have++;
			if (t->x[i].turn == turn)
				e = &t->x[i];
		}
	if (e) {
		copy = *e;
		copy.body = strdup(e->body);
	}
	pthread_mutex_unlock(&p->mu);
	if (!e) {
		snprintf(why, sizeof(why), "no recorded answer for node %s%s%s turn %d (the recording "
					   "of task %s has %d for this node%s)",
			 node, *subject ? ", subject " : "", subject, turn, task, have,
			 *subject ? " and subject" : "");
		mismatch(p, req, task, why);
		return;
	}
	if (!copy.body) {
		reply_error(req, 500, "internal", "out of memory");
		return;
	}
	read_request(rq, &a);
	if (copy.fitted)
		check_fit(&copy, &a, why, sizeof(why));
	else
		why[0] = '\0'; /* it did not fit then either: the model's answer, as it was */
	if (why[0]) {
		mismatch(p, req, task, why);
	} else {
		/* served: no longer unused */
		pthread_mutex_lock(&p->mu);
		t = tape_of(p, task, 0);
		for (size_t i = 0; t && i < t->n; i++)
			if (strcmp(t->x[i].node, node) == 0 && strcmp(t->x[i].subject, subject) == 0 &&
			    t->x[i].turn == turn)
				t->x[i].used = 1;
		pthread_mutex_unlock(&p->mu);
		reply(req, copy.status, copy.content_type, copy.body, strlen(copy.body));
	}
	free(copy.body);
}

/* --- record: one call passed on, in a thread of its own --- */

typedef struct job {
	ev_proxy *p;
	struct evhttp_request *req;
	char task[EV_ID_MAX], node[NODE_MAX], subject[SUBJECT_MAX], endpoint[64];
	int turn;
	char url[700];
	int64_t timeout_ms;
	char *auth;       /* "Authorization: ..." or NULL (wiped when freed) */
	char *accept;     /* "Accept: ..." or NULL */
	char *body;
	size_t len;
	int status;
	char content_type[128];
	buf answer;
} job;

static void job_free(job *j)
{
	if (!j)
		return;
	if (j->auth) {
		memset(j->auth, 0, strlen(j->auth));
		free(j->auth);
	}
	free(j->accept);
	free(j->body);
	buf_free(&j->answer);
	free(j);
}

/* Appends the exchange to DIR/<task>.jsonl (the caller holds the lock). */
static void write_exchange(ev_proxy *p, const job *j)
{
	json_t *rq = json_loadb(j->body, j->len, 0, NULL), *line, *resp;
	char path[1200], *s;
	asked a;
	int fd, fits;

	read_request(rq, &a);
	{
		/* whether the answer fits the call: one that does not (a model's
		 * failure) is replayed as it was, not taken for a changed schema */
		exch e;
		char why[600];
		memset(&e, 0, sizeof(e));
		snprintf(e.node, sizeof(e.node), "%s", j->node);
		snprintf(e.subject, sizeof(e.subject), "%s", j->subject);
		e.turn = j->turn;
		e.status = j->status;
		snprintf(e.content_type, sizeof(e.content_type), "%s", j->content_type);
		snprintf(e.schema, sizeof(e.schema), "%s", a.schema_name);
		e.body = j->answer.data ? j->answer.data : (char *)"";
		check_fit(&e, &a, why, sizeof(why));
		fits = why[0] == '\0';
	}
	resp = json_loadb(j->answer.data ? j->answer.data : "", j->answer.len, 0, NULL);
	line = json_pack("{s:s, s:s, s:i, s:s, s:s?, s:s, s:i, s:s, s:b, s:s}", "node", j->node,
			 "subject", j->subject, "turn", j->turn, "endpoint", j->endpoint, "model",
			 json_string_value(json_object_get(rq, "model")), "schema", a.schema_name,
			 "status", j->status, "content_type", j->content_type, "fits", fits,
			 "prompt_tail", a.tail);
	if (line && resp)
		json_object_set_new(line, "response", resp);
	else if (line)
		json_object_set_new(line, "body", json_stringn(j->answer.data ? j->answer.data : "",
							       j->answer.len));
	else
		json_decref(resp);
	s = line ? json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	snprintf(path, sizeof(path), "%s/%s.jsonl", p->dir, j->task);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || !s)
		log_error("eval", "the exchange of task %s (node %s, turn %d) cannot be recorded in %s: %s",
			  j->task, j->node, j->turn, path, fd < 0 ? strerror(errno) : "out of memory");
	if (fd >= 0 && s) {
		size_t n = strlen(s);
		s[n] = '\n';
		if (write(fd, s, n + 1) != (ssize_t)(n + 1))
			log_error("eval", "writing %s: %s", path, strerror(errno));
		s[n] = '\0';
	}
	if (fd >= 0)
		close(fd);
	free(s);
	json_decref(line);
	json_decref(rq);
}

/* Back in the loop thread: the answer goes to the caller. */
static void job_done(evutil_socket_t fd, short what, void *arg)
{
	job *j = arg;
	ev_proxy *p = j->p;

	(void)fd;
	(void)what;
	reply(j->req, j->status, j->content_type, j->answer.data ? j->answer.data : "",
	      j->answer.len);
	job_free(j);
	pthread_mutex_lock(&p->mu);
	p->inflight--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void *job_main(void *arg)
{
	job *j = arg;
	ev_proxy *p = j->p;
	const char *headers[4] = {"Content-Type: application/json", NULL, NULL, NULL};
	http_client *hc = NULL;
	http_request hr;
	http_response resp;
	int nh = 1, rc;
	struct timeval now = {0, 0};

	memset(&resp, 0, sizeof(resp));
	if (j->auth)
		headers[nh++] = j->auth;
	if (j->accept)
		headers[nh++] = j->accept;
	memset(&hr, 0, sizeof(hr));
	hr.method = "POST";
	hr.url = j->url;
	hr.headers = headers;
	hr.body = j->body;
	hr.body_len = j->len;
	hr.timeout_ms = j->timeout_ms > 0 ? j->timeout_ms : 600000;
	hr.max_response = BODY_MAX;
	rc = http_client_new(&hc);
	if (rc == 0)
		rc = http_do(hc, &hr, &resp);
	if (rc == 0) {
		j->status = (int)resp.status;
		snprintf(j->content_type, sizeof(j->content_type), "%s", resp.content_type);
		buf_append(&j->answer, resp.body.data ? resp.body.data : "", resp.body.len);
	} else {
		json_t *e = json_pack("{s:{s:s, s:s}}", "error", "message", err_last(), "type",
				      "upstream");
		char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
		j->status = rc == ERR_TIMEOUT ? 504 : 502;
		snprintf(j->content_type, sizeof(j->content_type), "application/json");
		buf_puts(&j->answer, s ? s : "{}");
		free(s);
		json_decref(e);
		log_warn("eval", "task %s: the call of node %s (turn %d) to endpoint %s failed: %s",
			 j->task, j->node, j->turn, j->endpoint, err_last());
	}
	http_response_free(&resp);
	http_client_free(hc);
	pthread_mutex_lock(&p->mu);
	write_exchange(p, j);
	pthread_mutex_unlock(&p->mu);
	if (event_base_once(p->base, -1, EV_TIMEOUT, job_done, j, &now) < 0) {
		/* cannot happen with a live base; the caller times out */
		log_error("eval", "the answer of task %s (node %s) cannot be handed back", j->task,
			  j->node);
		job_free(j);
		pthread_mutex_lock(&p->mu);
		p->inflight--;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

static void pass_on(ev_proxy *p, struct evhttp_request *req, const char *task, const char *node,
		    const char *subject, int turn, const char *endpoint, char *body, size_t len)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(in, "Authorization");
	const char *acc = evhttp_find_header(in, "Accept");
	const upstream *u = NULL;
	job *j;
	pthread_t th;
	pthread_attr_t at;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nups; i++)
		if (strcmp(p->ups[i].name, endpoint) == 0)
			u = &p->ups[i];
	j = u ? calloc(1, sizeof(*j)) : NULL;
	if (j) {
		snprintf(j->url, sizeof(j->url), "%s/chat/completions", u->base_url);
		j->timeout_ms = u->timeout_ms;
	}
	pthread_mutex_unlock(&p->mu);
	if (!u) {
		char msg[200];
		snprintf(msg, sizeof(msg), "the recording server knows no endpoint '%s'", endpoint);
		reply_error(req, 404, "not_found", msg);
		free(body);
		return;
	}
	if (!j) {
		reply_error(req, 500, "internal", "out of memory");
		free(body);
		return;
	}
	j->p = p;
	j->req = req;
	snprintf(j->task, sizeof(j->task), "%s", task);
	snprintf(j->node, sizeof(j->node), "%s", node);
	snprintf(j->subject, sizeof(j->subject), "%s", subject);
	snprintf(j->endpoint, sizeof(j->endpoint), "%s", endpoint);
	j->turn = turn;
	j->body = body;
	j->len = len;
	buf_init(&j->answer, BODY_MAX);
	if (auth && asprintf(&j->auth, "Authorization: %s", auth) < 0)
		j->auth = NULL;
	if (acc && asprintf(&j->accept, "Accept: %s", acc) < 0)
		j->accept = NULL;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&p->mu);
	p->inflight++;
	pthread_mutex_unlock(&p->mu);
	if (pthread_create(&th, &at, job_main, j) != 0) {
		pthread_mutex_lock(&p->mu);
		p->inflight--;
		pthread_mutex_unlock(&p->mu);
		reply_error(req, 500, "internal", "cannot start a thread");
		job_free(j);
	}
	pthread_attr_destroy(&at);
}

/* "/e/<endpoint>/chat/completions" → endpoint[cap]; 0 when the path is
 * not that. */
static int parse_path(const char *uri, char *endpoint, size_t cap)
{
	const char *rest;
	size_t n;

	if (strncmp(uri, "/e/", 3) != 0)
		return 0;
	rest = strchr(uri + 3, '/');
	if (!rest || strncmp(rest, "/chat/completions", 17) != 0 ||
	    (rest[17] != '\0' && rest[17] != '?'))
		return 0;
	n = (size_t)(rest - (uri + 3));
	if (n == 0 || n >= cap)
		return 0;
	memcpy(endpoint, uri + 3, n);
	endpoint[n] = '\0';
	return 1;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	ev_proxy *p = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *ib = evhttp_request_get_input_buffer(req);
	const char *project = evhttp_find_header(in, "X-Orch-Project");
	const char *node = evhttp_find_header(in, "X-Orch-Node");
	const char *subject = evhttp_find_header(in, "X-Orch-Subject");
	char endpoint[64], task[EV_ID_MAX], msg[400];
	const char *bound;
	size_t len = evbuffer_get_length(ib);
	char *body;
	json_t *rq;
	int turn = 0;
	tstats *st;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST ||
	    !parse_path(evhttp_request_get_uri(req), endpoint, sizeof(endpoint))) {
		reply_error(req, 404, "not_found",
			    "the eval's recording server answers POST /e/<endpoint>/chat/completions");
		return;
	}
	if (!project || !*project || !node || !*node) {
		reply_error(req, 400, "invalid_request",
			    "a call without X-Orch-Project and X-Orch-Node (the LLM client's "
			    "identity_headers are off)");
		return;
	}
	if (!subject)
		subject = "";
	body = malloc(len + 1);
	if (!body) {
		reply_error(req, 500, "internal", "out of memory");
		return;
	}
	evbuffer_copyout(ib, body, len);
	body[len] = '\0';
	pthread_mutex_lock(&p->mu);
	bound = task_of(p, project);
	if (bound) {
		snprintf(task, sizeof(task), "%s", bound);
		turn = next_turn(p, task, node, subject);
		st = stats_of(p, task);
		if (st)
			st->calls++;
	}
	pthread_mutex_unlock(&p->mu);
	if (!bound) {
		snprintf(msg, sizeof(msg), "replay mismatch: the project %.200s belongs to no eval task "
					   "of this run", project);
		reply_error(req, 400, "replay_mismatch", msg);
		free(body);
		return;
	}
	if (turn == 0) {
		reply_error(req, 500, "internal", "out of memory");
		free(body);
		return;
	}
	if (p->mode == EV_RECORD) {
		pass_on(p, req, task, node, subject, turn, endpoint, body, len);
		return;
	}
	rq = json_loadb(body, len, 0, NULL);
	free(body);
	if (!json_is_object(rq)) {
		reply_error(req, 400, "invalid_request", "the request is not a JSON object");
		json_decref(rq);
		return;
	}
	answer_replay(p, req, task, node, subject, turn, rq);
	json_decref(rq);
}

static void *loop_main(void *arg)
{
	ev_proxy *p = arg;

	event_base_loop(p->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int ev_proxy_start(ev_proxy **out, ev_proxy_mode mode, const char *dir)
{
	ev_proxy *p;
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int rc = 0;

	*out = NULL;
	if (mode == EV_RECORD && (!dir || !*dir))
		return err_set(ERR_INVALID, "recording needs a folder");
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->mode = mode;
	snprintf(p->dir, sizeof(p->dir), "%s", dir ? dir : "");
	if (mode == EV_RECORD && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = err_set(ERR_IO, "cannot create the recording folder %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* answers are handed back to the loop from other threads */
	evthread_use_pthreads();
	p->base = event_base_new();
	p->http = p->base ? evhttp_new(p->base) : NULL;
	if (!p->http) {
		rc = err_set(ERR_IO, "the recording server cannot start (libevent)");
		goto fail;
	}
	evhttp_set_max_body_size(p->http, (ev_ssize_t)BODY_MAX);
	evhttp_set_timeout(p->http, 3600);
	evhttp_set_gencb(p->http, on_request, p);
	bs = evhttp_bind_socket_with_handle(p->http, "127.0.0.1", 0);
	if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) < 0) {
		rc = err_set(ERR_IO, "the recording server cannot listen on 127.0.0.1");
		goto fail;
	}
	snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%d", (int)ntohs(sa.sin_port));
	if (pthread_create(&p->thread, NULL, loop_main, p) != 0) {
		rc = err_set(ERR_IO, "cannot start the recording server's thread");
		goto fail;
	}
	p->running = 1;
	*out = p;
	return 0;
fail:
	ev_proxy_free(p);
	return rc;
}

void ev_proxy_free(ev_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	while (p->inflight > 0)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	if (p->running) {
		event_base_loopbreak(p->base);
		pthread_join(p->thread, NULL);
	}
	if (p->http)
		evhttp_free(p->http);
	if (p->base)
		event_base_free(p->base);
	for (size_t i = 0; i < p->ntapes; i++) {
		for (size_t k = 0; k < p->tapes[i].n; k++)
			free(p->tapes[i].x[k].body);
		free(p->tapes[i].x);
	}
	free(p->tapes);
	free(p->counters);
	free(p->bindings);
	free(p->ups);
	free(p->stats);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

const char *ev_proxy_url(const ev_proxy *p)
{
	return p->url;
}

/* One line of a recording into *e (e->body owned). */
static int parse_line(const char *line, size_t len, exch *e, const char *where)
{
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je), *resp;
	const char *node, *subject, *ct, *schema, *body;
	int rc = 0;

	memset(e, 0, sizeof(*e));
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(ERR_PARSE, "%s: not a JSON object%s%s", where, j ? "" : ": ",
			       j ? "" : je.text);
	}
	node = json_string_value(json_object_get(j, "node"));
	subject = json_string_value(json_object_get(j, "subject"));
	ct = json_string_value(json_object_get(j, "content_type"));
	schema = json_string_value(json_object_get(j, "schema"));
	body = json_string_value(json_object_get(j, "body"));
	resp = json_object_get(j, "response");
	if (!node || !*node || strlen(node) >= NODE_MAX) {
		rc = err_set(ERR_PARSE, "%s: \"node\" is missing or too long", where);
		goto done;
	}
	if (!json_is_integer(json_object_get(j, "turn")) ||
	    json_integer_value(json_object_get(j, "turn")) < 1) {
		rc = err_set(ERR_PARSE, "%s: \"turn\" must be a whole number from 1", where);
		goto done;
	}
	if (!resp && !body) {
		rc = err_set(ERR_PARSE, "%s: neither \"response\" nor \"body\"", where);
		goto done;
	}
	snprintf(e->node, sizeof(e->node), "%s", node);
	snprintf(e->subject, sizeof(e->subject), "%s", subject ? subject : "");
	snprintf(e->content_type, sizeof(e->content_type), "%s", ct ? ct : "application/json");
	snprintf(e->schema, sizeof(e->schema), "%s", schema ? schema : "");
	e->turn = (int)json_integer_value(json_object_get(j, "turn"));
	e->status = json_is_integer(json_object_get(j, "status"))
			    ? (int)json_integer_value(json_object_get(j, "status"))
			    : 200;
	e->fitted = !json_is_false(json_object_get(j, "fits"));
	e->body = resp ? json_dumps(resp, JSON_COMPACT) : strdup(body);
	if (!e->body)
		rc = err_set(ERR_NOMEM, "out of memory");
done:
	json_decref(j);
	return rc;
}

int ev_proxy_load(ev_proxy *p, const char *task, const char *text, const char *origin)
{
	const char *line = text;
	int lineno = 0, rc = 0;
	tape *t;

	pthread_mutex_lock(&p->mu);
	t = tape_of(p, task, 1);
	if (!t) {
		pthread_mutex_unlock(&p->mu);
		return err_set(ERR_NOMEM, "out of memory");
	}
	while (*line && rc == 0) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char where[1200];
		exch e;

		lineno++;
		snprintf(where, sizeof(where), "%s, line %d", origin, lineno);
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			len--;
		if (len > 0) {
			rc = parse_line(line, len, &e, where);
			for (size_t i = 0; rc == 0 && i < t->n; i++)
				if (strcmp(t->x[i].node, e.node) == 0 &&
				    strcmp(t->x[i].subject, e.subject) == 0 && t->x[i].turn == e.turn)
					rc = err_set(ERR_PARSE, "%s: node %s, subject '%s', turn %d is "
								"recorded twice",
						     where, e.node, e.subject, e.turn);
			if (rc == 0)
				rc = grow((void **)&t->x, t->n, &t->cap, sizeof(exch));
			if (rc == 0)
				t->x[t->n++] = e;
			else
				free(e.body);
		}
		line = nl ? nl + 1 : line + strlen(line);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int ev_proxy_has(ev_proxy *p, const char *task)
{
	tape *t;
	int has;

	pthread_mutex_lock(&p->mu);
	t = tape_of(p, task, 0);
	has = t && t->n > 0;
	pthread_mutex_unlock(&p->mu);
	return has;
}

int ev_proxy_upstream(ev_proxy *p, const char *name, const char *base_url, int64_t timeout_ms)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = grow((void **)&p->ups, p->nups, &p->capups, sizeof(upstream));
	if (rc == 0) {
		upstream *u = &p->ups[p->nups++];
		snprintf(u->name, sizeof(u->name), "%s", name);
		snprintf(u->base_url, sizeof(u->base_url), "%s", base_url);
		u->timeout_ms = timeout_ms;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int ev_proxy_bind(ev_proxy *p, const char *project, const char *task)
{
	binding *b = NULL;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nbindings; i++)
		if (strcmp(p->bindings[i].project, project) == 0)
			b = &p->bindings[i];
	if (!b) {
		rc = grow((void **)&p->bindings, p->nbindings, &p->capbindings, sizeof(binding));
		if (rc == 0)
			b = &p->bindings[p->nbindings++];
	}
	if (b) {
		snprintf(b->project, sizeof(b->project), "%s", project);
		snprintf(b->task, sizeof(b->task), "%s", task);
	}
	if (rc == 0 && p->mode == EV_RECORD) {
		char path[1200];
		int fd;
		snprintf(path, sizeof(path), "%s/%s.jsonl", p->dir, task);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			rc = err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
		else
			close(fd);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void ev_proxy_task_stats(ev_proxy *p, const char *task, ev_proxy_stats *out)
{
	tape *t;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nstats; i++)
		if (strcmp(p->stats[i].task, task) == 0) {
			out->calls = p->stats[i].calls;
			out->mismatches = p->stats[i].mismatches;
			snprintf(out->mismatch, sizeof(out->mismatch), "%s", p->stats[i].mismatch);
		}
	t = tape_of(p, task, 0);
	for (size_t i = 0; t && i < t->n; i++) {
		out->recorded++;
		out->unused += !t->x[i].used;
	}
	pthread_mutex_unlock(&p->mu);
}

/* --- the models file --- */

static json_t *dur(int64_t ms)
{
	char s[32];

	snprintf(s, sizeof(s), "%lldms", (long long)ms);
	return json_string(s);
}

int ev_models_rebase(json_t *models, const char *base)
{
	const char *name;
	json_t *e;

	json_object_foreach(json_object_get(models, "endpoints"), name, e) {
		char url[700];
		snprintf(url, sizeof(url), "%s/e/%s", base, name);
		if (!json_is_object(e) || json_object_set_new(e, "base_url", json_string(url)) < 0)
			return err_set(ERR_INVALID, "the models file's endpoint %s is not an object",
				       name);
	}
	return 0;
}

int ev_models_json(llm_registry *reg, const char *base, int keep_keys, json_t **out)
{
	json_t *root = json_object(), *eps = json_object(), *models = json_object();
	json_t *roles = json_object();
	int rc = 0;

	*out = NULL;
	if (!root || !eps || !models || !roles) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto fail;
	}
	json_object_set(root, "endpoints", eps);
	json_object_set(root, "models", models);
	for (int i = 0; i < llm_registry_n_endpoints(reg); i++) {
		const llm_endpoint *e = llm_registry_endpoint(reg, i);
		json_t *o = json_pack("{s:s, s:i, s:o, s:o, s:i, s:o, s:o, s:o, s:b, s:s, s:b}",
				      "base_url", "", "slots", e->slots, "timeout",
				      dur(e->timeout_ms), "connect_timeout",
				      dur(e->connect_timeout_ms), "max_retries", e->max_retries,
				      "retry_base", dur(e->retry_base_ms), "retry_max",
				      dur(e->retry_max_ms), "max_retry_wait",
				      dur(e->max_retry_wait_ms), "stream_usage", e->stream_usage,
				      "max_tokens_field", e->max_tokens_field, "local", e->local);
		if (!o) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto fail;
		}
		if (e->idle_timeout_ms > 0)
			json_object_set_new(o, "idle_timeout", dur(e->idle_timeout_ms));
		if (keep_keys && e->key_env[0])
			json_object_set_new(o, "api_key_env", json_string(e->key_env));
		if (keep_keys && e->key_secret[0])
			json_object_set_new(o, "api_key_secret", json_string(e->key_secret));
		json_object_set_new(eps, e->name, o);
	}
	for (int i = 0; i < llm_registry_n_models(reg); i++) {
		const llm_model *m = llm_registry_model(reg, i);
		json_t *o = json_pack("{s:s, s:s, s:I, s:i, s:f, s:f}", "endpoint",
				      llm_registry_endpoint(reg, m->endpoint)->name, "model", m->id,
				      "context", (json_int_t)m->context, "max_output", m->max_output,
				      "price_in", m->price_in, "price_out", m->price_out);
		if (!o) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto fail;
		}
		json_object_set_new(models, m->name, o);
	}
	for (int i = 0; i < llm_registry_n_roles(reg); i++) {
		const char *role = llm_registry_role_name(reg, i);
		const int *idx;
		int n;
		json_t *list = json_array();

		if (!list || llm_registry_route(reg, role, &idx, &n) < 0) {
			json_decref(list);
			rc = list ? ERR_INTERNAL : err_set(ERR_NOMEM, "out of memory");
			goto fail;
		}
		for (int k = 0; k < n; k++)
			json_array_append_new(list, json_string(llm_registry_model(reg, idx[k])->name));
		json_object_set_new(roles, role, list);
	}
	if (json_object_size(roles) > 0)
		json_object_set(root, "roles", roles);
	{
		int lookahead, starvation;
		llm_registry_sched(reg, &lookahead, &starvation);
		json_object_set_new(root, "scheduler", json_pack("{s:i, s:i}", "lookahead", lookahead,
								 "starvation", starvation));
	}
	rc = ev_models_rebase(root, base);
	if (rc < 0)
		goto fail;
	json_decref(eps);
	json_decref(models);
	json_decref(roles);
	*out = root;
	return 0;
fail:
	json_decref(root);
	json_decref(eps);
	json_decref(models);
	json_decref(roles);
	return rc;
}
