#include "bot/live.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/pubsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bot_live {
	eng_stream_hub *hub;
	ps_pub *pub;
	ps_sub *sub;
	char prefix[96]; /* "orch:<db>:stream:" */
	char gap_channel[128];
};

int bot_live_modes_from_env(unsigned *out)
{
	const char *v = getenv("ORCH_STREAM_MODES");
	int rc;

	*out = ENG_STREAM_DEFAULT;
	if (!v || !*v)
		return 0;
	rc = eng_stream_modes_parse(v, out);
	if (rc < 0)
		return err_set(ERR_INVALID, "ORCH_STREAM_MODES: %s", err_last());
	return 0;
}

/* "<8 hex digits>:" for the host, port and name of a database URL (no
 * password in it), or "" without one. */
static void db_scope(const char *url, char *out, size_t cap)
{
	PQconninfoOption *opts;
	const char *host = "", *port = "", *db = "";
	char key[600];
	uint32_t h = 2166136261u;

	out[0] = '\0';
	if (!url || !*url)
		return;
	opts = PQconninfoParse(url, NULL);
	if (!opts)
		return;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	snprintf(key, sizeof(key), "%s:%s/%s", host, port, db);
	PQconninfoFree(opts);
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(out, cap, "%08x:", h);
}

static void tap(void *udata, const eng_stream_event *ev)
{
	bot_live *l = udata;
	char channel[160];

	snprintf(channel, sizeof(channel), "%s%lld", l->prefix, (long long)ev->thread_id);
	ps_pub_send(l->pub, channel, ev->wire, ev->wire_len);
}

static void gap_text(void *udata, int64_t count, buf *out)
{
	bot_live *l = udata;
	eng_stream_gap_wire(l->hub, count, out);
}

static void on_line(void *udata, const char *channel, const char *line, size_t len)
{
	bot_live *l = udata;
	(void)channel;
	if (eng_stream_inject(l->hub, line, len) < 0)
		log_debug("stream", "an event from another process did not parse: %s", err_last());
}

static void on_gap(void *udata)
{
	bot_live *l = udata;
	eng_stream_inject_gap(l->hub, 0);
}

int bot_live_start(bot_live **out, eng_stream_hub *hub, const bot_live_options *opt)
{
	bot_live *l = calloc(1, sizeof(*l));
	char base[64], scope[16];
	int rc;

	*out = NULL;
	if (!l)
		return err_set(ERR_NOMEM, "out of memory");
	l->hub = hub;
	rc = ps_channel_prefix(opt->redis_url, "orch", base, sizeof(base));
	if (rc < 0)
		goto fail;
	db_scope(opt->database_url, scope, sizeof(scope));
	snprintf(l->prefix, sizeof(l->prefix), "%s%sstream:", base, scope);
	snprintf(l->gap_channel, sizeof(l->gap_channel), "%sgap", l->prefix);
	if (opt->publish) {
		ps_pub_options po = {
			.gap_channel = l->gap_channel,
			.gap_text = gap_text,
			.gap_udata = l,
			.health = "stream.publish",
		};
		rc = ps_pub_new(&l->pub, opt->redis_url, &po);
		if (rc < 0)
			goto fail;
		eng_stream_hub_tap(hub, opt->modes ? opt->modes : ENG_STREAM_DEFAULT, tap, l);
	}
	if (opt->subscribe) {
		char pattern[128], one[160];
		const char *channels[2] = {one, l->gap_channel};
		ps_sub_options so = {
			.on_message = on_line,
			.on_gap = on_gap,
			.udata = l,
			.health = "stream.subscribe",
		};
		if (opt->thread_id) {
			snprintf(one, sizeof(one), "%s%lld", l->prefix, (long long)opt->thread_id);
			so.channels = channels;
			so.nchannels = 2;
		} else {
			snprintf(pattern, sizeof(pattern), "%s*", l->prefix);
			so.pattern = pattern;
		}
		rc = ps_sub_start(&l->sub, opt->redis_url, &so);
		if (rc < 0)
			goto fail;
	}
	*out = l;
	return 0;
fail:
	bot_live_stop(l);
	return rc;
}

int bot_live_wait_ready(bot_live *l, int64_t timeout_ms)
{
	return l->sub ? ps_sub_wait_ready(l->sub, timeout_ms) : 0;
}

int bot_live_flush(bot_live *l, int64_t timeout_ms)
{
	return l->pub ? ps_pub_flush(l->pub, timeout_ms) : 0;
}

void bot_live_stop(bot_live *l)
{
	if (!l)
		return;
	if (l->pub)
		eng_stream_hub_tap(l->hub, 0, NULL, NULL);
	ps_pub_free(l->pub);
	ps_sub_stop(l->sub);
	free(l);
}
