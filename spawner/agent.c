#include "spawner/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/utf8.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIVE_OUTPUT_MAX (64 * 1024) /* output bytes per command sent to the live log */

const char *agent_exit_name(int exit)
{
	static const char *const names[] = {
		"submitted",   "step_limit", "cost_limit", "time_limit", "format_errors", "loop",
		"no_progress", "budget",     "context",    "llm_error",  "sandbox",       "cancelled",
	};
	if (exit < 0 || (size_t)exit >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[exit];
}

void agent_result_free(agent_result *r)
{
	if (!r)
		return;
	free(r->summary);
	r->summary = NULL;
}

/* --- transcript --- */

int agent_transcript_append(const char *path, const json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
	buf b;
	int fd = -1, rc = 0;
	size_t off = 0;

	buf_init(&b, 0);
	if (!s)
		return err_set(ERR_NOMEM, "out of memory writing the transcript");
	rc = buf_puts(&b, s);
	free(s);
	if (rc < 0)
		goto done;
	redact_buf(&b);
	rc = buf_putc(&b, '\n');
	if (rc < 0)
		goto done;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = err_set(ERR_IO, "cannot write the transcript %s: %s", path, strerror(errno));
		goto done;
	}
	while (off < b.len) {
		ssize_t n = write(fd, b.data + off, b.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = err_set(ERR_IO, "cannot write the transcript %s: %s", path,
				     strerror(errno));
			goto done;
		}
		off += (size_t)n;
	}
	if (fdatasync(fd) < 0)
		rc = err_set(ERR_IO, "cannot flush the transcript %s: %s", path, strerror(errno));
done:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return rc;
}

int agent_render(buf *out, const char *tmpl, const char *const *vars)
{
	const char *p = tmpl;
	int rc = 0;

	while (*p && rc == 0) {
		const char *open = strstr(p, "{{");
		const char *close;
		int found = 0;

		if (!open) {
			rc = buf_puts(out, p);
			break;
		}
		close = strstr(open + 2, "}}");
		if (!close) {
			rc = buf_puts(out, p);
			break;
		}
		rc = buf_append(out, p, (size_t)(open - p));
		for (size_t i = 0; rc == 0 && vars && vars[i] && vars[i + 1]; i += 2) {
			size_t n = strlen(vars[i]);
			if (n == (size_t)(close - open - 2) && memcmp(open + 2, vars[i], n) == 0) {
				rc = buf_puts(out, vars[i + 1]);
				found = 1;
				break;
			}
		}
		if (rc == 0 && !found)
			rc = buf_append(out, open, (size_t)(close + 2 - open));
		p = close + 2;
	}
	return rc;
}

/* --- the conversation --- */

typedef struct amsg {
	const char *role;     /* static */
	char *content;        /* owned; NULL for an assistant message with tool calls only */
	llm_tool_call *calls; /* owned copies */
	size_t ncalls;
	char *tool_call_id;   /* owned */
} amsg;

typedef struct conv {
	amsg *m;
	size_t n, cap;
	llm_message *wire; /* borrowed views for llm_request, rebuilt per call */
} conv;

static void conv_free(conv *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->m[i].content);
		for (size_t k = 0; k < c->m[i].ncalls; k++) {
			free(c->m[i].calls[k].id);
			free(c->m[i].calls[k].name);
			free(c->m[i].calls[k].arguments);
		}
		free(c->m[i].calls);
		free(c->m[i].tool_call_id);
	}
	free(c->m);
	free(c->wire);
	memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Appends a message; copies everything. */
static int conv_add(conv *c, const char *role, const char *content, const llm_tool_call *calls,
		    size_t ncalls, const char *tool_call_id)
{
	amsg *m;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		amsg *nm = realloc(c->m, cap * sizeof(*nm));
		llm_message *nw = realloc(c->wire, cap * sizeof(*nw));

		if (nm)
			c->m = nm;
		if (nw)
			c->wire = nw;
		if (!nm || !nw)
			return err_set(ERR_NOMEM, "out of memory");
		c->cap = cap;
	}
	m = &c->m[c->n];
	memset(m, 0, sizeof(*m));
	m->role = role;
	m->content = dup_or_null(content);
	m->tool_call_id = dup_or_null(tool_call_id);
	if (ncalls) {
		m->calls = calloc(ncalls, sizeof(*m->calls));
		if (!m->calls)
			goto nomem;
		m->ncalls = ncalls;
		for (size_t i = 0; i < ncalls; i++) {
			m->calls[i].id = dup_or_null(calls[i].id ? calls[i].id : "call");
			m->calls[i].name = dup_or_null(calls[i].name ? calls[i].name : "");
			m->calls[i].arguments =
				dup_or_null(calls[i].arguments ? calls[i].arguments : "{}");
			if (!m->calls[i].id || !m->calls[i].name || !m->calls[i].arguments)
				goto nomem;
		}
	}
	if ((content && !m->content) || (tool_call_id && !m->tool_call_id))
		goto nomem;
	c->n++;
	return 0;
nomem:
	c->n++; /* let conv_free release the partial message */
	return err_set(ERR_NOMEM, "out of memory");
}

static const llm_message *conv_wire(conv *c)
{
	for (size_t i = 0; i < c->n; i++) {
		llm_message *w = &c->wire[i];

		memset(w, 0, sizeof(*w));
		w->role = c->m[i].role;
		w->content = c->m[i].content;
		w->tool_calls = c->m[i].calls;
		w->n_tool_calls = c->m[i].ncalls;
		w->tool_call_id = c->m[i].tool_call_id;
	}
	return c->wire;
}

/* --- parsing one reply into one action --- */

void agent_action_free(agent_action *a)
{
	free(a->cmd);
	free(a->summary);
	memset(a, 0, sizeof(*a));
}

static int is_shell_lang(const char *s, size_t n)
{
	return (n == 4 && memcmp(s, "bash", 4) == 0) || (n == 2 && memcmp(s, "sh", 2) == 0) ||
	       (n == 5 && memcmp(s, "shell", 5) == 0);
}

/* Finds the ```bash blocks of `text`: returns their number and copies the
 * first one's body into *out (owned). */
static int find_blocks(const char *text, char **out)
{
	const char *p = text;
	int count = 0;

	*out = NULL;
	for (p = strstr(p, "```"); p; p = strstr(p, "```")) {
		const char *lang, *eol, *body, *end;
		size_t ln;

		/* a fence starts a line (after optional spaces) */
		const char *ls = p;
		while (ls > text && (ls[-1] == ' ' || ls[-1] == '\t'))
			ls--;
		if (ls != text && ls[-1] != '\n') {
			p += 3;
			continue;
		}
		lang = p + 3;
		eol = strchr(lang, '\n');
		if (!eol)
			break;
		ln = strcspn(lang, " \t\r\n");
		body = eol + 1;
		/* the closing fence: a line starting with ``` */
		end = body;
		for (;;) {
			const char *f = strstr(end, "```");
			const char *b;

			if (!f) {
				end = NULL;
				break;
			}
			b = f;
			while (b > body && (b[-1] == ' ' || b[-1] == '\t'))
				b--;
			if (b == body || b[-1] == '\n') {
				end = f;
				break;
			}
			end = f + 3;
		}
		if (!end)
			break; /* an unclosed fence: not an action */
		if (is_shell_lang(lang, ln)) {
			if (count == 0) {
				size_t n = (size_t)(end - body);
				while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == ' ' ||
						 body[n - 1] == '\t' || body[n - 1] == '\r'))
					n--;
				*out = strndup(body, n);
			}
			count++;
		}
		p = end + 3;
	}
	return count;
}

/* Recognises a submission: the first line is `submit` (the rest is the
 * summary) or mini-swe-agent's sentinel. */
static int check_submit(agent_action *a)
{
	const char *s = a->cmd;
	size_t n;

	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	n = strcspn(s, "\n");
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if ((n == 6 && memcmp(s, "submit", 6) == 0) ||
	    (n == 41 && memcmp(s, "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", 41) == 0)) {
		const char *rest = s + strcspn(s, "\n");
		a->kind = AGENT_ACT_SUBMIT;
		if (*rest == '\n' && rest[1])
			a->summary = strdup(rest + 1);
		return 1;
	}
	return 0;
}

void agent_parse_reply(const llm_response *r, agent_action *a)
{
	memset(a, 0, sizeof(*a));
	if (r->n_tool_calls > 0) {
		const llm_tool_call *tc = &r->tool_calls[0];
		json_t *args = NULL;

		if (r->n_tool_calls > 1) {
			snprintf(a->reason, sizeof(a->reason),
				 "it made %zu tool calls; make one at a time", r->n_tool_calls);
			return;
		}
		if (!tc->name || (strcmp(tc->name, "bash") != 0 && strcmp(tc->name, "submit") != 0)) {
			char q[64]; /* whole characters: the reason goes back to the model */
			utf8_excerpt(q, sizeof(q), tc->name ? tc->name : "",
				     tc->name ? strlen(tc->name) : 0, 60);
			snprintf(a->reason, sizeof(a->reason),
				 "it called the tool '%s'; the tools are bash and submit", q);
			return;
		}
		if (llm_tool_call_args(tc, &args) < 0) {
			snprintf(a->reason, sizeof(a->reason),
				 "the arguments of the %s call are not a JSON object", tc->name);
			return;
		}
		if (strcmp(tc->name, "submit") == 0) {
			const char *s = json_string_value(json_object_get(args, "summary"));
			a->kind = AGENT_ACT_SUBMIT;
			a->summary = s ? strdup(s) : NULL;
		} else {
			const char *cmd = json_string_value(json_object_get(args, "command"));
			if (!cmd || !*cmd) {
				snprintf(a->reason, sizeof(a->reason),
					 "the bash call lacks its \"command\" string");
			} else {
				a->kind = AGENT_ACT_BASH;
				a->cmd = strdup(cmd);
				check_submit(a);
			}
		}
		json_decref(args);
		return;
	}
	{
		int n = find_blocks(r->content ? r->content : "", &a->cmd);

		if (n == 1 && a->cmd && a->cmd[0]) {
			a->kind = AGENT_ACT_BASH;
			if (check_submit(a) && !a->summary) {
				/* the text around the block is the summary */
				const char *fence = strstr(r->content, "```");
				if (fence && fence > r->content)
					a->summary = strndup(r->content, (size_t)(fence - r->content));
			}
			return;
		}
		free(a->cmd);
		a->cmd = NULL;
		if (n == 0 && r->finish == LLM_FINISH_LENGTH)
			snprintf(a->reason, sizeof(a->reason),
				 "it was cut off at the length limit before a complete ```bash block");
		else if (n == 0)
			snprintf(a->reason, sizeof(a->reason),
				 "it holds no ```bash block and no tool call");
		else if (n > 1)
			snprintf(a->reason, sizeof(a->reason),
				 "it holds %d ```bash blocks; give one command per reply", n);
		else
			snprintf(a->reason, sizeof(a->reason), "its ```bash block is empty");
	}
}

/* --- running one action --- */

typedef struct live {
	const agent_config *cfg;
	size_t sent;
} live;

static int on_output(int stream, const char *data, size_t len, void *udata)
{
	live *l = udata;
	buf b;

	(void)stream;
	if (!l->cfg->log || l->sent >= LIVE_OUTPUT_MAX)
		return 0;
	if (len > LIVE_OUTPUT_MAX - l->sent)
		len = LIVE_OUTPUT_MAX - l->sent;
	l->sent += len;
	buf_init(&b, 0);
	if (buf_append(&b, data, len) == 0) {
		redact_buf(&b);
		l->cfg->log(l->cfg->log_udata, "output", buf_cstr(&b));
	}
	buf_free(&b);
	return 0;
}

/* Runs `cmd`; fills *obs with the observation for the model and *exit_code.
 * Returns ERR_SANDBOX when no sandbox could be started. */
static int run_action(const agent_config *cfg, const char *cmd, int64_t timeout_ms, buf *obs,
		      int *exit_code, buf *output_only)
{
	buf script;
	sbx_cmd sc;
	sbx_result res;
	live l = {cfg, 0};
	const char *argv[4] = {"bash", "-c", NULL, NULL};
	int rc;

	buf_init(&script, 0);
	memset(&sc, 0, sizeof(sc));
	memset(&res, 0, sizeof(res));
	rc = buf_puts(&script, "exec 2>&1\n");
	if (rc == 0)
		rc = buf_puts(&script, cmd);
	if (rc < 0)
		goto done;
	argv[2] = buf_cstr(&script);
	sc.argv = argv;
	sc.env = cfg->env;
	sc.timeout_ms = timeout_ms;
	sc.output_cap = cfg->output_cap;
	sc.on_output = on_output;
	sc.udata = &l;
	sc.cancel = cfg->cancel;
	rc = sbx_run(cfg->box, &sc, &res);
	if (rc < 0)
		goto done;
	*exit_code = res.exit_code;
	buf_printf(obs, "<returncode>%d</returncode>\n", res.exit_code);
	if (res.timed_out)
		buf_printf(obs, "<warning>The command was stopped after %lld s, its time limit. "
				"Run long commands with a smaller input, or in the background of a "
				"single command with a timeout.</warning>\n",
			   (long long)(timeout_ms / 1000));
	else if (res.oom_killed || res.pids_limited || res.disk_full || res.fsize_limited ||
		 res.cancelled)
		buf_printf(obs, "<warning>%s</warning>\n", res.reason);
	buf_puts(obs, "<output>\n");
	buf_append(obs, res.out.data ? res.out.data : "", res.out.len);
	if (res.err.len) /* what bash wrote before its redirection took effect */
		buf_append(obs, res.err.data, res.err.len);
	if (res.out.len + res.err.len > 0 && obs->data[obs->len - 1] != '\n')
		buf_putc(obs, '\n');
	buf_puts(obs, "</output>");
	if (res.out_truncated || res.err_truncated)
		buf_printf(obs, "\n<note>The output had %llu bytes; only its beginning and end are "
				"shown.</note>",
			   (unsigned long long)(res.out_bytes + res.err_bytes));
	buf_append(output_only, res.out.data ? res.out.data : "", res.out.len);
done:
	sbx_result_free(&res);
	buf_free(&script);
	return rc;
}

/* --- loop detection --- */

typedef struct seen {
	unsigned char h[16];
	int count;
} seen;

static int seen_add(seen **list, size_t *n, size_t *cap, const unsigned char h[16])
{
	for (size_t i = 0; i < *n; i++)
		if (memcmp((*list)[i].h, h, 16) == 0)
			return ++(*list)[i].count;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		seen *nl = realloc(*list, nc * sizeof(*nl));
		if (!nl)
			return 1;
		*list = nl;
		*cap = nc;
	}
	memcpy((*list)[*n].h, h, 16);
	(*list)[*n].count = 1;
	(*n)++;
	return 1;
}

/* --- the loop --- */

static json_t *tool_schema(const char *json_text)
{
	return json_loads(json_text, 0, NULL);
}

static void finish(agent_result *out, int exit, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish(agent_result *out, int exit, const char *fmt, ...)
{
	va_list ap;

	out->exit = exit;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

static void logline(const agent_config *cfg, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void logline(const agent_config *cfg, const char *kind, const char *fmt, ...)
{
	va_list ap;
	buf b;

	if (!cfg->log)
		return;
	buf_init(&b, 1 << 20);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	redact_buf(&b);
	cfg->log(cfg->log_udata, kind, buf_cstr(&b));
	buf_free(&b);
}

/* One agent's session: what its steps share. */
typedef struct agent_loop {
	const agent_config *cfg;
	agent_result *out;
	conv cv;
	json_t *bash_params, *submit_params;
	llm_tool tools[2];
	seen *reps;
	size_t nreps, capreps;
	unsigned char fp[32];
	int have_fp, format_streak, since_change;
	char last_reason[200];
	int64_t t0;
} agent_loop;

/* Appends `line` to the transcript and frees it; NULL is out of memory. */
static int al_line(const agent_loop *a, json_t *line)
{
	int rc = line ? agent_transcript_append(a->cfg->transcript, line)
		      : err_set(ERR_NOMEM, "out of memory");

	json_decref(line);
	return rc;
}

/* The tools, the first two messages, the transcript's "start" line and the
 * work's first fingerprint. */
static int al_start(agent_loop *a)
{
	const agent_config *cfg = a->cfg;
	int rc;

	a->bash_params = tool_schema(
		"{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\","
		"\"description\":\"the shell command to run in /workspace\"}},"
		"\"required\":[\"command\"]}");
	a->submit_params = tool_schema(
		"{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\","
		"\"description\":\"what was changed and why\"}}}");
	if (!a->bash_params || !a->submit_params)
		return err_set(ERR_NOMEM, "out of memory");
	a->tools[0].name = "bash";
	a->tools[0].description = "Run one shell command in a fresh sandbox over /workspace and "
				  "see its exit status and output.";
	a->tools[0].parameters = a->bash_params;
	a->tools[1].name = "submit";
	a->tools[1].description = "Submit the work when the task is done and the tests pass. "
				  "Ends the session.";
	a->tools[1].parameters = a->submit_params;
	rc = conv_add(&a->cv, "system", cfg->system_prompt, NULL, 0, NULL);
	if (rc == 0)
		rc = conv_add(&a->cv, "user", cfg->task_prompt, NULL, 0, NULL);
	if (rc == 0)
		rc = al_line(a, json_pack("{s:s, s:I, s:s, s:s, s:{s:i, s:f, s:I, s:I, s:i, s:i, "
					  "s:i}}", "type", "start", "t", (json_int_t)util_wall_ms(),
					  "system", cfg->system_prompt, "task", cfg->task_prompt,
					  "limits", "steps", cfg->max_steps, "cost_usd",
					  cfg->max_cost_usd, "wall_ms", (json_int_t)cfg->wall_ms,
					  "cmd_timeout_ms", (json_int_t)cfg->cmd_timeout_ms,
					  "format_errors", cfg->max_format_errors, "repeats",
					  cfg->max_repeats, "stall_steps", cfg->stall_steps));
	if (rc == 0 && cfg->fingerprint && cfg->fingerprint(cfg->fp_udata, a->fp) == 0)
		a->have_fp = 1;
	return rc;
}

/* 1 (and the exit set) when a limit ends the session before the next step. */
static int al_limits(agent_loop *a)
{
	const agent_config *cfg = a->cfg;
	agent_result *out = a->out;

	if (cfg->cancel && atomic_load(cfg->cancel))
		finish(out, AGENT_CANCELLED, "the worker was stopped");
	else if (out->steps >= cfg->max_steps)
		finish(out, AGENT_STEP_LIMIT, "the step limit (%d model replies) was reached "
					      "before the agent submitted", cfg->max_steps);
	else if (cfg->max_cost_usd > 0 && out->cost_usd >= cfg->max_cost_usd)
		finish(out, AGENT_COST_LIMIT, "the cost limit ($%.4f) was reached ($%.4f spent)",
		       cfg->max_cost_usd, out->cost_usd);
	else if (util_mono_ms() - a->t0 >= cfg->wall_ms)
		finish(out, AGENT_TIME_LIMIT, "the time limit (%lld s) was reached",
		       (long long)(cfg->wall_ms / 1000));
	else
		return 0;
	return 1;
}

/* The model's next reply into *resp: 0, or 1 when the call failed (the
 * exit set). */
static int al_call(agent_loop *a, llm_response *resp)
{
	const agent_config *cfg = a->cfg;
	agent_result *out = a->out;
	llm_request rq;
	int crc;

	llm_request_init(&rq);
	rq.messages = conv_wire(&a->cv);
	rq.n_messages = a->cv.n;
	if (cfg->use_tools) {
		rq.tools = a->tools;
		rq.n_tools = 2;
		rq.tool_choice = "auto";
	}
	crc = llm_chat(cfg->llm, &cfg->call, &rq, resp);
	out->cost_usd += resp->cost_usd;
	out->tokens_in += resp->tokens_in;
	out->tokens_out += resp->tokens_out;
	if (crc >= 0)
		return 0;
	if (crc == ERR_BUDGET)
		finish(out, AGENT_BUDGET, "the %s budget of %s is used up ($%.2f of $%.2f): extend "
					  "it to continue", resp->budget.kind, resp->budget.scope,
		       resp->budget.spent_usd, resp->budget.limit_usd);
	else if (crc == ERR_CANCELLED)
		finish(out, AGENT_CANCELLED, "the worker was stopped");
	else if (crc == ERR_CONTEXT)
		finish(out, AGENT_CONTEXT, "the conversation no longer fits the model's context: %s",
		       err_last());
	else
		finish(out, AGENT_LLM_ERROR, "the model call failed: %s", err_last());
	return 1;
}

/* The reply as the assistant's message of the conversation. */
static int al_assistant(agent_loop *a, const llm_response *resp)
{
	return conv_add(&a->cv, "assistant", resp->content && resp->content[0] ? resp->content
				    : (resp->n_tool_calls ? NULL : ""),
			resp->tool_calls, resp->n_tool_calls, NULL);
}

/* A reply with no single command: the model is told why. 0 to go on, 1
 * when too many came in a row, <0 on an error. */
static int al_format_error(agent_loop *a, const llm_response *resp, const agent_action *act)
{
	const agent_config *cfg = a->cfg;
	agent_result *out = a->out;
	const char *vars[] = {"reason", act->reason, NULL, NULL};
	buf msg;
	int rc;

	out->format_errors++;
	a->format_streak++;
	buf_init(&msg, 0);
	agent_render(&msg, cfg->format_error_prompt ? cfg->format_error_prompt
						    : "Your reply was not run: {{reason}}.",
		     vars);
	rc = al_assistant(a, resp);
	for (size_t k = 0; rc == 0 && k < resp->n_tool_calls; k++)
		rc = conv_add(&a->cv, "tool", buf_cstr(&msg), NULL, 0,
			      resp->tool_calls[k].id ? resp->tool_calls[k].id : "call");
	if (rc == 0 && resp->n_tool_calls == 0)
		rc = conv_add(&a->cv, "user", buf_cstr(&msg), NULL, 0, NULL);
	buf_free(&msg);
	snprintf(a->last_reason, sizeof(a->last_reason), "%s", act->reason);
	if (rc == 0)
		rc = al_line(a, json_pack("{s:s, s:i, s:I, s:s, s:s, s:f, s:I, s:I, s:s}", "type",
					  "format_error", "step", out->steps, "t",
					  (json_int_t)util_wall_ms(), "assistant",
					  resp->content ? resp->content : "", "reason", act->reason,
					  "cost_usd", resp->cost_usd, "tokens_in",
					  (json_int_t)resp->tokens_in, "tokens_out",
					  (json_int_t)resp->tokens_out, "model", resp->model));
	if (rc < 0)
		return rc;
	if (a->format_streak < cfg->max_format_errors)
		return 0;
	finish(out, AGENT_FORMAT_ERRORS, "%d replies in a row held no single command (last: %s)",
	       a->format_streak, a->last_reason);
	return 1;
}

/* The agent submitted: 1, or <0 on an error. */
static int al_submit(agent_loop *a, const llm_response *resp, agent_action *act)
{
	agent_result *out = a->out;
	int rc;

	out->summary = act->summary;
	act->summary = NULL;
	rc = al_line(a, json_pack("{s:s, s:i, s:I, s:s, s:s, s:f, s:I, s:I, s:s}", "type", "step",
				  "step", out->steps, "t", (json_int_t)util_wall_ms(), "assistant",
				  resp->content ? resp->content : "", "action", "submit", "cost_usd",
				  resp->cost_usd, "tokens_in", (json_int_t)resp->tokens_in,
				  "tokens_out", (json_int_t)resp->tokens_out, "model", resp->model));
	if (rc < 0)
		return rc;
	finish(out, AGENT_SUBMITTED, "the agent submitted after %d steps", out->steps);
	return 1;
}

/* After a command: a loop (the same action, exit status and output, `h`,
 * with the work unchanged) or no progress ends the session (1). */
static int al_progress(agent_loop *a, const agent_action *act, const unsigned char h[16])
{
	const agent_config *cfg = a->cfg;
	unsigned char fp_new[32];
	int repeats;

	if (a->have_fp && cfg->fingerprint(cfg->fp_udata, fp_new) == 0 &&
	    memcmp(a->fp, fp_new, sizeof(a->fp)) != 0) {
		memcpy(a->fp, fp_new, sizeof(a->fp));
		a->since_change = 0;
		a->nreps = 0;
	} else {
		a->since_change++;
	}
	repeats = seen_add(&a->reps, &a->nreps, &a->capreps, h);
	if (cfg->max_repeats > 0 && repeats >= cfg->max_repeats) {
		finish(a->out, AGENT_LOOP, "the agent is in a loop: it ran `%.120s` %d times with the "
					   "same output and no change to its work", act->cmd, repeats);
		return 1;
	}
	if (a->have_fp && cfg->stall_steps > 0 && a->since_change >= cfg->stall_steps) {
		finish(a->out, AGENT_NO_PROGRESS, "no change to the work in the last %d commands",
		       a->since_change);
		return 1;
	}
	return 0;
}

/* A command, run in a fresh sandbox; its observation goes back to the
 * model. 0 to go on, 1 when the session ends, <0 on an error. */
static int al_command(agent_loop *a, const llm_response *resp, const agent_action *act)
{
	const agent_config *cfg = a->cfg;
	agent_result *out = a->out;
	buf obs, output;
	int exit_code = -1, rc;
	unsigned char h[16];
	crypto_generichash_state hs;
	int64_t timeout = cfg->cmd_timeout_ms, left = cfg->wall_ms - (util_mono_ms() - a->t0);

	buf_init(&obs, 0);
	buf_init(&output, 0);
	if (timeout > left)
		timeout = left;
	if (timeout < 1000)
		timeout = 1000;
	logline(cfg, "action", "$ %s", act->cmd);
	rc = run_action(cfg, act->cmd, timeout, &obs, &exit_code, &output);
	if (rc < 0) {
		finish(out, AGENT_SANDBOX, "a command could not be run: %s", err_last());
		rc = 1;
		goto done;
	}
	out->actions++;
	logline(cfg, "status", "exit %d", exit_code);
	rc = al_assistant(a, resp);
	if (rc == 0 && resp->n_tool_calls)
		rc = conv_add(&a->cv, "tool", buf_cstr(&obs), NULL, 0,
			      resp->tool_calls[0].id ? resp->tool_calls[0].id : "call");
	else if (rc == 0)
		rc = conv_add(&a->cv, "user", buf_cstr(&obs), NULL, 0, NULL);
	if (rc == 0)
		rc = al_line(a, json_pack("{s:s, s:i, s:I, s:s, s:s, s:i, s:s, s:f, s:I, s:I, s:s}",
					  "type", "step", "step", out->steps, "t",
					  (json_int_t)util_wall_ms(), "assistant",
					  resp->content ? resp->content : "", "action", act->cmd,
					  "exit_code", exit_code, "observation", buf_cstr(&obs),
					  "cost_usd", resp->cost_usd, "tokens_in",
					  (json_int_t)resp->tokens_in, "tokens_out",
					  (json_int_t)resp->tokens_out, "model", resp->model));
	if (rc < 0)
		goto done;
	/* loops: the same action, exit status and output, diff unchanged */
	crypto_generichash_init(&hs, NULL, 0, sizeof(h));
	crypto_generichash_update(&hs, (const unsigned char *)act->cmd, strlen(act->cmd) + 1);
	crypto_generichash_update(&hs, (const unsigned char *)&exit_code, sizeof(exit_code));
	crypto_generichash_update(&hs, (const unsigned char *)buf_cstr(&output), output.len);
	crypto_generichash_final(&hs, h, sizeof(h));
	rc = al_progress(a, act, h);
done:
	buf_free(&obs);
	buf_free(&output);
	return rc;
}

/* One step: the limits, the model's reply and what it asks. 0 to go on, 1
 * when the session ends, <0 on an error. */
static int al_step(agent_loop *a)
{
	const agent_config *cfg = a->cfg;
	llm_response resp;
	agent_action act;
	int rc;

	if (al_limits(a))
		return 1;
	llm_response_init(&resp);
	memset(&act, 0, sizeof(act));
	rc = al_call(a, &resp);
	if (rc != 0)
		goto done;
	a->out->steps++;
	agent_parse_reply(&resp, &act);
	logline(cfg, "model", "step %d: %s", a->out->steps,
		act.kind == AGENT_ACT_BASH     ? act.cmd
		: act.kind == AGENT_ACT_SUBMIT ? "submit"
					       : act.reason);
	if (act.kind == AGENT_ACT_NONE) {
		rc = al_format_error(a, &resp, &act);
		goto done;
	}
	a->format_streak = 0;
	if (act.kind == AGENT_ACT_SUBMIT)
		rc = al_submit(a, &resp, &act);
	else
		rc = al_command(a, &resp, &act);
done:
	llm_response_free(&resp);
	agent_action_free(&act);
	return rc;
}

int agent_run(const agent_config *cfg, agent_result *out)
{
	agent_loop a;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.out = out;
	a.t0 = util_mono_ms();
	if (!cfg || !cfg->llm || !cfg->box || !cfg->system_prompt || !cfg->task_prompt ||
	    !cfg->transcript || cfg->max_steps <= 0 || cfg->wall_ms <= 0 ||
	    cfg->cmd_timeout_ms <= 0)
		return err_set(ERR_INVALID, "the agent needs a model, a sandbox, prompts, a "
					    "transcript and positive limits");
	rc = al_start(&a);
	while (rc == 0)
		rc = al_step(&a);
	if (rc < 0)
		goto done;
	out->wall_ms = util_mono_ms() - a.t0;
	rc = al_line(&a, json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:f, s:I, s:I, s:I, s:s?}",
				   "type", "end", "t", (json_int_t)util_wall_ms(), "exit",
				   agent_exit_name(out->exit), "reason", out->reason, "steps", out->steps,
				   "format_errors", out->format_errors, "cost_usd", out->cost_usd,
				   "tokens_in", (json_int_t)out->tokens_in, "tokens_out",
				   (json_int_t)out->tokens_out, "wall_ms", (json_int_t)out->wall_ms,
				   "summary", out->summary));
	logline(cfg, "status", "agent ended: %s: %s", agent_exit_name(out->exit), out->reason);
done:
	json_decref(a.bash_params);
	json_decref(a.submit_params);
	free(a.reps);
	conv_free(&a.cv);
	return rc;
}
