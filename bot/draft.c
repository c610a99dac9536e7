#include "bot/draft.h"
#include "bot/reply.h"
#include "bot/text.h"
#include "bot/tg.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "bot"
#define TICK_MS 100
#define DRAFT_MAX_CHARS 4000 /* under Telegram's 4096, which counts UTF-16 units */
#define MAX_REFUSED 256

struct bot_drafts {
	tg_client *tg;
	bot_limiter *lim;
	eng_stream_hub *hub;
	eng_stream_sub *sub;
	const atomic_int *leader;
	pthread_t thread;
	int started;
	atomic_int stopping;
	bot_replies replies;
	int64_t refused[MAX_REFUSED]; /* chats that refused a draft */
	int nrefused;
	pthread_mutex_t mu;
	bot_drafts_stats st;
};

/* The chat of a Telegram project's thread key "tg:<chat>:<n>", or 0. */
static int64_t chat_of(const char *key)
{
	long long chat = 0;
	int n = 0;

	if (sscanf(key, "tg:%lld:%d", &chat, &n) != 2)
		return 0;
	return (int64_t)chat;
}

static int refused_chat(const bot_drafts *d, int64_t chat)
{
	for (int i = 0; i < d->nrefused; i++)
		if (d->refused[i] == chat)
			return 1;
	return 0;
}

/* A reply's draft id: non-zero, the same for every draft of the reply. */
static int64_t draft_id_of(const char *call)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *p = call; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (int64_t)(h % 2147483646ull) + 1;
}

static void count(bot_drafts *d, int64_t *field)
{
	pthread_mutex_lock(&d->mu);
	(*field)++;
	pthread_mutex_unlock(&d->mu);
}

/* The typing action in `chat`, as the overall limit allows. */
static void typing(bot_drafts *d, int64_t chat)
{
	char id[24];
	tg_reply rep;

	if (bot_limit_wait(d->lim, 0, util_mono_ms()) > 0)
		return;
	bot_limit_note(d->lim, 0, util_mono_ms());
	snprintf(id, sizeof(id), "%lld", (long long)chat);
	if (tg_send_chat_action(d->tg, id, "typing", &rep) == 0)
		count(d, &d->st.typing);
}

/* Sends the reply's text so far as its draft, when the chat may get a
 * message now. */
static void send_draft(bot_drafts *d, bot_reply *r, int64_t chat)
{
	int64_t now = util_mono_ms();
	char id[24], *red = NULL;
	buf text;
	tg_reply rep;
	int rc;

	if (bot_limit_wait(d->lim, chat, now) > 0 || bot_limit_wait(d->lim, 0, now) > 0)
		return; /* what accumulates goes in the next one */
	red = redact_str(buf_cstr(&r->text));
	buf_init(&text, 0);
	if (!red || tg_truncate(&text, red, DRAFT_MAX_CHARS) < 0 || text.len == 0)
		goto done;
	bot_limit_note(d->lim, chat, now);
	bot_limit_note(d->lim, 0, now);
	if (!r->draft_id)
		r->draft_id = draft_id_of(r->call);
	snprintf(id, sizeof(id), "%lld", (long long)chat);
	rc = tg_send_message_draft(d->tg, id, r->draft_id, buf_cstr(&text), &rep);
	if (rc == 0) {
		r->shown = (int64_t)r->text.len;
		count(d, &d->st.drafts);
	} else if (rc == ERR_BUSY && rep.retry_after_ms > 0) {
		bot_limit_block(d->lim, chat, util_mono_ms(), rep.retry_after_ms);
	} else if (rc == ERR_INVALID || rc == ERR_DENIED) {
		/* this chat takes no drafts: typing from now on */
		log_info(MOD, "chat %lld refused a draft (%s): showing the typing action instead",
			 (long long)chat, err_last());
		if (d->nrefused < MAX_REFUSED)
			d->refused[d->nrefused++] = chat;
		count(d, &d->st.refused);
		typing(d, chat);
		r->shown = (int64_t)r->text.len;
	} else {
		log_debug(MOD, "sendMessageDraft: %s", err_last());
	}
done:
	free(red);
	buf_free(&text);
}

/* After events: drafts for the replies that grew. */
static void flush(bot_drafts *d)
{
	if (d->leader && !atomic_load(d->leader))
		return;
	for (int i = 0; i < d->replies.n; i++) {
		bot_reply *r = &d->replies.r[i];
		int64_t chat = chat_of(r->thread_key);

		if (chat == 0 || r->incomplete || r->ended)
			continue;
		if (chat < 0 || refused_chat(d, chat)) {
			/* a group, or a chat that refuses drafts: typing, once per reply */
			if (!r->shown) {
				r->shown = 1;
				typing(d, chat);
			}
			continue;
		}
		if ((int64_t)r->text.len > r->shown)
			send_draft(d, r, chat);
	}
}

static void *drafts_main(void *arg)
{
	bot_drafts *d = arg;

	while (!atomic_load(&d->stopping)) {
		eng_stream_event *ev = NULL;
		int rc = eng_stream_next(d->sub, TICK_MS, &ev);

		if (rc == ERR_CANCELLED)
			break;
		while (ev) {
			int changed = 0;
			bot_reply *r = bot_replies_feed(&d->replies, ev, &changed);

			if (r && changed && r->attempt > 1 && !r->ended)
				r->shown = 0; /* asked again: the draft starts again */
			eng_stream_event_release(ev);
			ev = NULL;
			eng_stream_try_next(d->sub, &ev);
		}
		flush(d);
		for (int i = d->replies.n - 1; i >= 0; i--)
			if (d->replies.r[i].ended || d->replies.r[i].incomplete)
				bot_replies_forget(&d->replies, &d->replies.r[i]);
	}
	return NULL;
}

int bot_drafts_start(bot_drafts **out, const bot_drafts_options *opt)
{
	bot_drafts *d = calloc(1, sizeof(*d));
	eng_stream_filter f = {.modes = ENG_STREAM_MESSAGES, .key_prefix = "tg:"};
	int rc;

	*out = NULL;
	if (!d)
		return err_set(ERR_NOMEM, "out of memory");
	pthread_mutex_init(&d->mu, NULL);
	bot_replies_init(&d->replies);
	d->lim = opt->limiter;
	d->hub = opt->hub;
	d->leader = opt->leader;
	rc = tg_client_new(&d->tg, opt->api_base, opt->token);
	if (rc == 0)
		rc = eng_stream_subscribe(opt->hub, &f, &d->sub);
	if (rc == 0 && pthread_create(&d->thread, NULL, drafts_main, d) != 0)
		rc = err_set(ERR_IO, "cannot start the drafts thread");
	if (rc < 0) {
		bot_drafts_stop(d);
		return rc;
	}
	d->started = 1;
	*out = d;
	return 0;
}

void bot_drafts_stats_get(bot_drafts *d, bot_drafts_stats *out)
{
	pthread_mutex_lock(&d->mu);
	*out = d->st;
	pthread_mutex_unlock(&d->mu);
}

void bot_drafts_stop(bot_drafts *d)
{
	if (!d)
		return;
	atomic_store(&d->stopping, 1);
	if (d->started)
		pthread_join(d->thread, NULL);
	eng_stream_unsubscribe(d->sub);
	tg_client_free(d->tg);
	bot_replies_clear(&d->replies);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
