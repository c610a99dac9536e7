/*
 * brainstorm — the conversation that turns an idea into a spec: the
 * brainstorm node (one model turn), listen (waits for the person's next
 * message) and spec_gate (waits for the decision on a proposed spec).
 */
#include "core/err.h"
#include "core/log.h"
#include "nodes/nd_int.h"
#include "nodes/prompt.h"
#include "nodes/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TURNS_BEFORE_SPEC "4"

/* The model's messages for the conversation, keeping the first message and
 * the last `keep` turns when keep > 0. Strings are borrowed from `conv`
 * and `sys`/`note`; the caller frees the array. */
static llm_message *build_messages(const json_t *conv, const char *sys, const char *note,
				   size_t keep, size_t *n)
{
	size_t total = json_array_size(conv), from = 1, k = 0;
	llm_message *m = calloc(total + 3, sizeof(llm_message));

	*n = 0;
	if (!m)
		return NULL;
	m[k].role = "system";
	m[k++].content = sys;
	if (keep > 0 && total > keep + 1)
		from = total - keep;
	for (size_t i = 0; i < total; i++) {
		const json_t *e = json_array_get(conv, i);
		const char *role = json_string_value(json_object_get(e, "role"));
		const char *text = json_string_value(json_object_get(e, "reply"));

		if (i > 0 && i < from)
			continue;
		if (i == from && from > 1 && note) {
			m[k].role = "user";
			m[k++].content = note;
		}
		if (!text)
			text = json_string_value(json_object_get(e, "text"));
		m[k].role = role && strcmp(role, "assistant") == 0 ? "assistant" : "user";
		m[k++].content = text ? text : "";
	}
	*n = k;
	return m;
}

int nd_brainstorm(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *conv = json_object_get(state, "conversation");
	const json_t *schema = nd_schema("brainstorm");
	llm_response resp;
	llm_call call;
	llm_message *msgs = NULL;
	nd_spec spec;
	nd_chat chat;
	buf sys, note, html;
	json_t *up = json_object(), *spec_json = NULL;
	char user[32], turn[16];
	const char *message;
	size_t nmsgs, keep = 0;
	int rc;

	(void)in;
	memset(&spec, 0, sizeof(spec));
	llm_response_init(&resp);
	buf_init(&sys, 0);
	buf_init(&note, 0);
	buf_init(&html, 0);
	*update = up;
	if (!up || !schema) {
		rc = up ? ERR_INTERNAL : err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd_chat_get(state, NULL, &chat)) < 0)
		goto done;
	snprintf(turn, sizeof(turn), "%zu", json_array_size(conv) / 2 + 1);
	{
		const char *vars[] = {"max_turns", MAX_TURNS_BEFORE_SPEC, "turn", turn, NULL};
		if ((rc = nd_prompt("brainstorm_system.md", vars, &sys)) < 0 ||
		    (rc = nd_prompt("brainstorm_trimmed.md", NULL, &note)) < 0)
			goto done;
	}
	nd_llm_call(&call, ctx, state, "brainstorm", user);
	for (;;) {
		free(msgs);
		msgs = build_messages(conv, buf_cstr(&sys), buf_cstr(&note), keep, &nmsgs);
		if (!msgs) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		rc = nd_llm_json(ctx, &call, msgs, nmsgs, schema, "brainstorm_reply", &resp);
		if (rc != ERR_CONTEXT)
			break;
		/* too long: keep the first message and fewer of the latest turns */
		keep = keep == 0 ? (nmsgs > 8 ? 8 : nmsgs / 2) : keep / 2;
		if (keep < 2 || json_array_size(conv) <= 3)
			break;
		log_info("factory", "thread %s: the conversation does not fit; keeping the last %zu "
				    "turns", eng_ctx_thread_key(ctx), keep);
	}
	if (rc == ERR_BUDGET) {
		rc = nd_ask_budget(ctx, state, &chat, up, &resp.budget, "brainstorm");
		goto done;
	}
	if (rc < 0) {
		rc = nd_llm_failed(ctx, &chat, up, rc, "Talking with the model");
		if (rc == 0)
			rc = eng_goto(ctx, ENG_END);
		goto done;
	}
	message = json_string_value(json_object_get(resp.json, "message"));
	if (!message) {
		rc = nd_llm_failed(ctx, &chat, up, err_set(ERR_PARSE, "the model's reply has no "
								      "message"),
				   "Reading the model's reply");
		if (rc == 0)
			rc = eng_goto(ctx, ENG_END);
		goto done;
	}
	{
		/* the conversation remembers the reply as the model wrote it */
		char *raw = json_dumps(resp.json, JSON_COMPACT);
		json_t *turn_json = json_pack("{s:s, s:s, s:s?}", "role", "assistant", "text", message,
					      "reply", raw);
		free(raw);
		json_object_set_new(up, "conversation", json_pack("[o]", turn_json));
	}
	if (json_is_null(json_object_get(resp.json, "spec"))) {
		/* a question: wait for the answer */
		rc = nd_say(ctx, &chat, message);
		if (rc == 0)
			rc = eng_goto(ctx, "listen");
		goto done;
	}
	rc = nd_spec_from_json(json_object_get(resp.json, "spec"), &spec);
	if (rc == 0)
		spec_json = nd_spec_to_json(&spec);
	if (rc < 0 || !spec_json) {
		rc = nd_llm_failed(ctx, &chat, up, rc < 0 ? rc : err_set(ERR_NOMEM, "out of memory"),
				   "Reading the proposed spec");
		if (rc == 0)
			rc = eng_goto(ctx, ENG_END);
		goto done;
	}
	{
		int v = (int)json_integer_value(json_object_get(state, "spec_version")) + 1;
		char key[32], q[160];
		nd_option opts[3] = {{"approve", "✅ Approve"}, {"change", "✏️ Change"},
				     {"cancel", "🛑 Cancel"}};

		nd_html_escape(&html, message);
		buf_printf(&html, "\n\n<b>Spec, version %d</b>\n\n", v);
		nd_spec_html(spec_json, &html);
		snprintf(key, sizeof(key), "spec:%d", v);
		snprintf(q, sizeof(q), "Build %s as specified (version %d)?", spec.name, v);
		if ((rc = nd_say_html(ctx, &chat, buf_cstr(&html))) < 0 ||
		    (rc = nd_ask(ctx, &chat, key, q, opts, 3)) < 0)
			goto done;
		json_object_set_new(up, "spec", spec_json);
		spec_json = NULL;
		json_object_set_new(up, "spec_version", json_integer(v));
		json_object_set_new(up, "stage", json_string("spec_review"));
		nd_log(up, "spec_proposed", spec.name, json_pack("{s:i}", "version", v));
		rc = eng_goto(ctx, "spec_gate");
	}
done:
	json_decref(spec_json);
	nd_spec_free(&spec);
	free(msgs);
	llm_response_free(&resp);
	buf_free(&sys);
	buf_free(&note);
	buf_free(&html);
	return rc;
}

int nd_listen(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const char *keys[1] = {"input"};
	const char *st = nd_stage(state), *text;
	json_t *v = NULL, *up;
	int which, rc;

	(void)in;
	rc = nd_gate_start(ctx, state, keys, 1, NULL, &v, &which, update);
	if (rc < 0)
		return rc;
	up = *update;
	text = json_string_value(json_object_get(v, "text"));
	if (json_integer_value(json_object_get(json_object_get(v, "user"), "id")) > 0)
		json_object_set(up, "user", json_object_get(v, "user"));
	if (strcmp(st, "plan_review") == 0 || strcmp(st, "architect") == 0) {
		json_object_set_new(up, "plan_feedback", json_string(text ? text : ""));
		json_object_set_new(up, "stage", json_string("architect"));
		json_decref(v);
		return eng_goto(ctx, "architect");
	}
	json_object_set_new(up, "stage", json_string("brainstorm"));
	json_object_set_new(up, "conversation",
			    json_pack("[{s:s, s:s}]", "role", "user", "text", text ? text : ""));
	json_decref(v);
	return eng_goto(ctx, "brainstorm");
}

int nd_spec_gate(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	char key[32];
	const char *opt;
	json_t *v = NULL, *up;
	nd_chat chat;
	int which, rc;

	(void)in;
	rc = nd_proposal_gate(ctx, state, "spec", key, sizeof(key), &chat, &v, &which, update);
	if (rc < 0)
		return rc;
	up = *update;
	if (which == 1) {
		/* a message instead of a click: a change to the spec */
		const char *text = json_string_value(json_object_get(v, "text"));
		json_object_set_new(up, "stage", json_string("brainstorm"));
		json_object_set_new(up, "conversation",
				    json_pack("[{s:s, s:s}]", "role", "user", "text",
					      text ? text : ""));
		json_decref(v);
		return eng_goto(ctx, "brainstorm");
	}
	opt = nd_decision(up, key, v);
	json_decref(v);
	if (!opt) {
		rc = nd_say(ctx, &chat, "The spec is still waiting for your approval. Send a message "
					"when you are back (a change, or \"approve\" to see the buttons "
					"again), or /cancel.");
		return rc < 0 ? rc : eng_goto(ctx, ENG_END);
	}
	if (strcmp(opt, "approve") == 0) {
		json_object_set_new(up, "stage", json_string("architect"));
		rc = nd_say(ctx, &chat, "👍 Spec approved. Creating the repository and planning "
					"the work…");
		return rc < 0 ? rc : eng_goto(ctx, "architect");
	}
	if (strcmp(opt, "change") == 0) {
		json_object_set_new(up, "stage", json_string("brainstorm"));
		json_object_set_new(up, "conversation",
				    json_pack("[{s:s, s:s}]", "role", "assistant", "text",
					      "What would you like to change?"));
		rc = nd_say(ctx, &chat, "What would you like to change?");
		return rc < 0 ? rc : eng_goto(ctx, "listen");
	}
	json_object_set_new(up, "stage", json_string("cancelled"));
	rc = nd_say(ctx, &chat, "🛑 Cancelled: nothing was built. Send /new <idea> to start "
				"another project.");
	return rc < 0 ? rc : eng_goto(ctx, ENG_END);
}
