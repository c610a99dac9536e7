#include "bot/reply.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

void bot_replies_init(bot_replies *t)
{
	memset(t, 0, sizeof(*t));
}

void bot_replies_clear(bot_replies *t)
{
	for (int i = 0; i < t->n; i++)
		buf_free(&t->r[i].text);
	t->n = 0;
}

bot_reply *bot_replies_find(bot_replies *t, const char *call)
{
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->r[i].call, call) == 0)
			return &t->r[i];
	return NULL;
}

void bot_replies_forget(bot_replies *t, bot_reply *r)
{
	int i = (int)(r - t->r);

	if (i < 0 || i >= t->n)
		return;
	buf_free(&r->text);
	t->r[i] = t->r[--t->n];
}

/* A new reply slot (the least recently touched one goes when full). */
static bot_reply *reply_new(bot_replies *t)
{
	bot_reply *r;

	if (t->n == BOT_REPLY_MAX) {
		int old = 0;
		for (int i = 1; i < t->n; i++)
			if (t->r[i].touched_ms < t->r[old].touched_ms)
				old = i;
		bot_replies_forget(t, &t->r[old]);
	}
	r = &t->r[t->n++];
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, 1 << 20);
	return r;
}

bot_reply *bot_replies_feed(bot_replies *t, const eng_stream_event *ev, int *changed)
{
	json_t *d;
	const char *call, *phase, *text;
	bot_reply *r;

	*changed = 0;
	if (ev->mode == ENG_STREAM_DROPPED) {
		for (int i = 0; i < t->n; i++)
			t->r[i].incomplete = 1;
		return NULL;
	}
	if (ev->mode != ENG_STREAM_MESSAGES)
		return NULL;
	d = eng_stream_event_data(ev);
	call = json_string_value(json_object_get(d, "call"));
	phase = json_string_value(json_object_get(d, "phase"));
	text = json_string_value(json_object_get(d, "text"));
	r = call ? bot_replies_find(t, call) : NULL;
	if (call && phase && strcmp(phase, "start") == 0) {
		const char *display = json_string_value(json_object_get(d, "display"));
		if (!display) {
			r = NULL; /* not meant to be read as it is written */
			goto done;
		}
		if (!r) {
			r = reply_new(t);
			snprintf(r->call, sizeof(r->call), "%s", call);
			r->thread_id = ev->thread_id;
			r->run_id = ev->run_id;
			snprintf(r->thread_key, sizeof(r->thread_key), "%s", ev->thread_key);
			snprintf(r->node, sizeof(r->node), "%s", ev->node);
		}
		jx_pick_init(&r->pick, display);
		buf_reset(&r->text);
		r->attempt++;
		r->ended = r->ok = 0;
		*changed = 1;
	} else if (r && phase && strcmp(phase, "end") == 0) {
		r->ended = 1;
		r->ok = json_is_true(json_object_get(d, "ok"));
		*changed = 1;
	} else if (r && text) {
		*changed = jx_pick_feed(&r->pick, text, strlen(text), &r->text) > 0;
	}
	if (r)
		r->touched_ms = util_mono_ms();
done:
	json_decref(d);
	return r;
}
