/*
 * brainstorm — the conversation that turns an idea into a spec: the
 * brainstorm node (one model turn), listen (waits for the person's next
 * message) and spec_gate (waits for the decision on a proposed spec).
 * Each leaves the stage (and the conversation) for its router to read.
 */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "nodes/nd_int.h"
#include "nodes/netspec.h"
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

/* The person's "network:" and "setup command:" lines, in the order they
 * were said, applied to the proposed spec: they win over the model's. A
 * line that cannot be used is named in `note`. */
static void person_settings(const nd_step *s, json_t *spec, buf *note)
{
	const json_t *turn;
	size_t i;

	json_array_foreach(json_object_get(s->state, "conversation"), i, turn) {
		const char *role = json_string_value(json_object_get(turn, "role"));

		if (role && strcmp(role, "user") == 0 &&
		    nd_netspec_said(json_string_value(json_object_get(turn, "text")), spec, NULL) < 0)
			buf_printf(note, "\n\n⚠️ Not applied: %s", err_last());
	}
}

/* Shows the spec the model proposed (after `message`, which the model's
 * call `call_id` streamed) and asks for the decision. */
static int propose(nd_step *s, const char *message, const json_t *proposed, const char *call_id)
{
	nd_spec spec;
	json_t *spec_json = NULL;
	buf html, note;
	char key[32], q[160];
	int v = s->p.spec_version + 1, rc;

	buf_init(&html, 0);
	buf_init(&note, 0);
	rc = nd_spec_from_json(proposed, &spec);
	if (rc == 0)
		spec_json = nd_spec_to_json(&spec);
	if (rc < 0 || !spec_json) {
		rc = nd_llm_failed(s, rc < 0 ? rc : err_set(ERR_NOMEM, "out of memory"),
				   "Reading the proposed spec");
		goto done;
	}
	person_settings(s, spec_json, &note);
	nd_html_escape(&html, message);
	nd_html_escape(&html, buf_cstr(&note));
	buf_printf(&html, "\n\n<b>Spec, version %d</b>\n\n", v);
	nd_spec_html(spec_json, &html);
	snprintf(key, sizeof(key), "spec:%d", v);
	if (s->p.change.present)
		snprintf(q, sizeof(q), "Make this change to %s (version %d)?", spec.name, v);
	else
		snprintf(q, sizeof(q), "Build %s as specified (version %d)?", spec.name, v);
	rc = nd_say_html_streamed(s->ctx, &s->p.chat, buf_cstr(&html), call_id);
	if (rc == 0)
		rc = nd_ask(s->ctx, &s->p.chat, key, q, ND_PROPOSAL_OPTS, 3);
	if (rc == 0)
		rc = nd_stage_move(&s->p, ND_STAGE_SPEC_REVIEW);
	if (rc < 0)
		goto done;
	json_object_set_new(s->up, "spec", spec_json);
	spec_json = NULL;
	s->p.spec_version = v;
	nd_log(s->up, "spec_proposed", spec.name, json_pack("{s:i}", "version", v));
done:
	json_decref(spec_json);
	nd_spec_free(&spec);
	buf_free(&html);
	buf_free(&note);
	return rc;
}

/* One model turn over the conversation: too long a conversation is cut
 * to its first message and fewer of the latest turns. */
static int converse(nd_step *s, const llm_call *call, const char *sys, const char *note,
		    llm_response *resp)
{
	const json_t *conv = json_object_get(s->state, "conversation");
	llm_message *msgs = NULL;
	size_t nmsgs, keep = 0;
	int rc;

	for (;;) {
		free(msgs);
		msgs = build_messages(conv, sys, note, keep, &nmsgs);
		if (!msgs)
			return err_set(ERR_NOMEM, "out of memory");
		rc = nd_llm_json(s, call, msgs, nmsgs, nd_schema("brainstorm"), "brainstorm_reply",
				 resp);
		if (rc != ERR_CONTEXT)
			break;
		keep = keep == 0 ? (nmsgs > 8 ? 8 : nmsgs / 2) : keep / 2;
		if (keep < 2 || json_array_size(conv) <= 3)
			break;
		log_info("factory", "thread %s: the conversation does not fit; keeping the last %zu "
				    "turns", eng_ctx_thread_key(s->ctx), keep);
	}
	free(msgs);
	return rc;
}

/* What the person said so far: what a change's context is selected for. */
static void person_said(const nd_step *s, buf *out)
{
	const json_t *conv = json_object_get(s->state, "conversation"), *e;
	size_t i;

	json_array_foreach(conv, i, e)
		if (strcmp(jx_str(e, "role"), "user") == 0)
			buf_printf(out, "%s\n", jx_str(e, "text"));
}

/* The system prompt: a new project's, or a change's with the repository. */
static int system_prompt(nd_step *s, const char *turn, buf *sys)
{
	buf query, ctx;
	int rc;

	if (!s->p.change.present) {
		const char *vars[] = {"max_turns", MAX_TURNS_BEFORE_SPEC, "turn", turn, NULL};
		return nd_prompt("brainstorm_system.md", vars, sys);
	}
	buf_init(&query, 0);
	buf_init(&ctx, 0);
	person_said(s, &query);
	nd_change_context(s, buf_cstr(&query), &ctx);
	{
		const char *vars[] = {"max_turns", MAX_TURNS_BEFORE_SPEC, "turn", turn,
				      "source", s->p.change.source, "branch",
				      nd_project_branch(&s->p), "context", buf_cstr(&ctx), NULL};
		rc = nd_prompt("brainstorm_change.md", vars, sys);
	}
	buf_free(&query);
	buf_free(&ctx);
	return rc;
}

int nd_brainstorm(nd_step *s)
{
	llm_response resp;
	llm_call call;
	buf sys, note;
	char user[32], turn[16];
	const char *message;
	int rc;

	llm_response_init(&resp);
	buf_init(&sys, 0);
	buf_init(&note, 0);
	rc = nd_need_chat(s);
	if (rc == 0 && !nd_schema("brainstorm"))
		rc = ERR_INTERNAL;
	snprintf(turn, sizeof(turn), "%zu", s->p.conv_len / 2 + 1);
	if (rc == 0)
		rc = system_prompt(s, turn, &sys);
	if (rc == 0)
		rc = nd_prompt("brainstorm_trimmed.md", NULL, &note);
	if (rc < 0)
		goto done;
	nd_llm_call(&call, s, "brainstorm", user);
	s->tap.display = "message"; /* the chat shows the reply's message as it is written */
	rc = converse(s, &call, buf_cstr(&sys), buf_cstr(&note), &resp);
	if (rc == ERR_BUDGET) {
		rc = nd_ask_budget(s, &resp.budget, "brainstorm");
		goto done;
	}
	if (rc < 0) {
		rc = nd_llm_failed(s, rc, "Talking with the model");
		goto done;
	}
	message = json_string_value(json_object_get(resp.json, "message"));
	if (!message) {
		rc = nd_llm_failed(s, err_set(ERR_PARSE, "the model's reply has no message"),
				   "Reading the model's reply");
		goto done;
	}
	{
		/* the conversation remembers the reply as the model wrote it */
		char *raw = json_dumps(resp.json, JSON_COMPACT);
		nd_converse(s, "assistant", message, raw);
		free(raw);
	}
	if (json_is_null(json_object_get(resp.json, "spec")))
		/* a question: listen for the answer */
		rc = nd_say_streamed(s->ctx, &s->p.chat, message, resp.call_id);
	else
		rc = propose(s, message, json_object_get(resp.json, "spec"), resp.call_id);
done:
	llm_response_free(&resp);
	buf_free(&sys);
	buf_free(&note);
	return rc;
}

int nd_listen(nd_step *s)
{
	const char *keys[1] = {"input"};
	json_t *v = NULL;
	nd_input in;
	int which, rc = nd_gate(s->ctx, keys, 1, &v, &which);

	if (rc < 0)
		return rc;
	nd_input_read(v, &in);
	json_decref(v);
	if (in.user.id > 0)
		nd_user_copy(&s->p.user, &in.user);
	if (s->p.stage == ND_STAGE_PLAN_REVIEW || s->p.stage == ND_STAGE_ARCHITECT) {
		nd_str_set(&s->p.plan_feedback, in.text ? in.text : "");
		rc = nd_stage_move(&s->p, ND_STAGE_ARCHITECT);
	} else {
		nd_converse(s, "user", in.text, NULL);
		rc = nd_stage_move(&s->p, ND_STAGE_BRAINSTORM);
	}
	nd_input_free(&in);
	return rc;
}

int nd_spec_gate(nd_step *s)
{
	char key[32];
	json_t *v = NULL;
	nd_decision d;
	int which, rc = nd_proposal_gate(s, "spec", s->p.spec_version, key, sizeof(key), &v, &which);

	if (rc < 0)
		return rc;
	if (which == 1) {
		/* a message instead of a click: a change to the spec */
		nd_converse(s, "user", jx_str(v, "text"), NULL);
		json_decref(v);
		return nd_stage_move(&s->p, ND_STAGE_BRAINSTORM);
	}
	nd_decide(s, key, v, &d);
	json_decref(v);
	switch (d.opt) {
	case ND_OPT_NONE:
		s->p.rest = 1;
		return nd_tell(s, "The spec is still waiting for your approval. Send a message when "
				  "you are back (a change, or \"approve\" to see the buttons again), "
				  "or /cancel.");
	case ND_OPT_APPROVE:
		if (s->p.change.present)
			return nd_stage_move(&s->p, ND_STAGE_BASELINE); /* it says what it does */
		rc = nd_stage_move(&s->p, ND_STAGE_ARCHITECT);
		return rc < 0 ? rc : nd_tell(s, "👍 Spec approved. Creating the repository and "
					       "planning the work…");
	case ND_OPT_CHANGE:
		nd_converse(s, "assistant", "What would you like to change?", NULL);
		rc = nd_stage_move(&s->p, ND_STAGE_BRAINSTORM);
		return rc < 0 ? rc : nd_tell(s, "What would you like to change?");
	default:
		rc = nd_stage_move(&s->p, ND_STAGE_CANCELLED);
		return rc < 0 ? rc : nd_tell(s, "🛑 Cancelled: nothing was built. Send /new <idea> "
					       "to start another project.");
	}
}
