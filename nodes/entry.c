/*
 * entry — where every run of a project starts (a cancel, the person's new
 * text), and budget_gate, the budget question outside the developer.
 * What follows each is their routers' choice (factory.c).
 */
#include "core/err.h"
#include "nodes/nd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A message to a project that is closed says so. */
static int closed_reply(nd_step *s)
{
	char msg[1600];

	s->p.input.present = 0;
	if (s->p.stage == ND_STAGE_DONE)
		snprintf(msg, sizeof(msg),
			 "This project is finished%s%s. To build something new, send /new <idea>.",
			 s->p.repo.path ? "; its repository is " : "",
			 s->p.repo.path ? s->p.repo.path : "");
	else
		snprintf(msg, sizeof(msg), "This project was %s. Send /new <idea> to start another.",
			 ND_STAGES[s->p.stage].name);
	return s->p.has_chat ? nd_tell(s, msg) : 0;
}

/* The first message of a change to an existing repository: its request
 * opens the conversation, and the repository is copied first. */
static int start_change(nd_step *s)
{
	nd_project *p = &s->p;
	char msg[800];
	int rc = nd_change_from_input(&p->change, json_object_get(s->state, "input"));

	p->input.present = 0;
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "⚠️ %s. Nothing was started; send /new again.", err_last());
		err_clear();
		rc = nd_stage_move(p, ND_STAGE_CANCELLED);
		return rc < 0 ? rc : nd_tell(s, msg);
	}
	nd_converse(s, "user", p->input.text, NULL);
	nd_log(s->up, "change", p->change.source,
	       json_pack("{s:s?, s:b}", "branch", p->change.branch, "pr", p->change.pr));
	return nd_stage_move(p, ND_STAGE_IMPORT);
}

int nd_entry(nd_step *s)
{
	nd_project *p = &s->p;
	json_t *cancels = NULL;
	int rc;

	if (!p->has_chat && p->input.present && p->input.has_chat) {
		p->chat = p->input.chat;
		p->has_chat = 1;
	}
	if (p->input.present && p->input.user.id > 0)
		nd_user_copy(&p->user, &p->input.user);
	p->rest = 0;
	/* a project cancelled while nothing ran */
	rc = eng_take(s->ctx, "cancel", &cancels);
	if (rc == 0 && json_array_size(cancels) > 0 && !nd_stage_closed(p->stage)) {
		rc = nd_stage_move(p, ND_STAGE_CANCELLED);
		nd_log(s->up, "cancelled", "the project was cancelled",
		       json_incref(json_array_get(cancels, 0)));
	}
	json_decref(cancels);
	if (rc < 0)
		return rc;
	if (nd_stage_closed(p->stage))
		return p->input.present ? closed_reply(s) : 0;
	if (!p->input.present)
		return 0;
	if (!p->has_chat)
		return err_set(ERR_INVALID, "the input names no channel and chat");
	if (p->stage == ND_STAGE_NEW && p->input.has_change)
		return start_change(s);
	switch (p->stage) {
	case ND_STAGE_NEW:
	case ND_STAGE_BRAINSTORM:
	case ND_STAGE_SPEC_REVIEW:
		/* a message (or a change to the spec shown) for the conversation; it
		 * supersedes a budget question left open */
		p->input.present = 0;
		p->pending.present = 0;
		nd_converse(s, "user", p->input.text, NULL);
		return nd_stage_move(p, ND_STAGE_BRAINSTORM);
	case ND_STAGE_PLAN_REVIEW:
	case ND_STAGE_ARCHITECT:
		p->input.present = 0;
		nd_str_set(&p->plan_feedback, p->input.text);
		return nd_stage_move(p, ND_STAGE_ARCHITECT);
	default:
		return 0; /* the developer answers messages itself (it clears "input") */
	}
}

int nd_budget_gate(nd_step *s)
{
	nd_pending *pd = &s->p.pending;
	const char *keys[2] = {pd->key, "input"};
	char key[sizeof(pd->key)], msg[400];
	json_t *v = NULL;
	nd_decision d;
	double limit = 0;
	int which, rc;

	if (!pd->present || !pd->key[0] || !pd->resume[0]) {
		pd->present = 0; /* no question: go on by the stage */
		return 0;
	}
	rc = nd_need_chat(s);
	if (rc == 0)
		rc = nd_gate(s->ctx, keys, 2, &v, &which);
	if (rc < 0)
		return rc;
	if (which == 1) {
		json_decref(v);
		return nd_tell(s, "The budget question above waits for your answer: extend the "
				  "budget, or stop.");
	}
	nd_decision_read(v, &d);
	snprintf(key, sizeof(key), "%s", pd->key);
	pd->present = 0;
	if (d.opt == ND_OPT_NONE) { /* expired or cancelled: the project rests here */
		s->p.rest = 1;
		rc = nd_tell(s, "The budget question expired. Send a message when you want to go "
				"on; the question will be asked again.");
	} else if (d.opt == ND_OPT_EXTEND) {
		rc = nd_budget_extend(s->ctx, key, pd->budget_kind, pd->scope, &limit);
		snprintf(msg, sizeof(msg), "💰 Budget extended: the limit is now $%.2f. Going on.",
			 limit);
		if (rc == 0) {
			nd_log(s->up, "decision", msg, json_pack("{s:s}", "key", key));
			rc = nd_tell(s, msg);
		}
	} else {
		rc = nd_stage_move(&s->p, ND_STAGE_STOPPED);
		nd_log(s->up, "decision", "stopped at the budget", json_pack("{s:s}", "key", key));
		if (rc == 0)
			rc = nd_tell(s, "🛑 Stopped. Nothing more is spent on this project. Send /new "
					"<idea> to start another.");
	}
	json_decref(v);
	return rc;
}
