#include "nodes/say.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

int nd_chat_get(const json_t *state, const json_t *input, nd_chat *out)
{
	const json_t *c = json_object_get(state, "chat");
	const char *ch = json_string_value(json_object_get(c, "channel"));
	const char *chat = json_string_value(json_object_get(c, "chat"));

	if (!ch || !chat) {
		ch = json_string_value(json_object_get(input, "channel"));
		chat = json_string_value(json_object_get(input, "chat"));
	}
	memset(out, 0, sizeof(*out));
	if (!ch || !chat || !*ch || !*chat || strlen(ch) >= sizeof(out->channel) ||
	    strlen(chat) >= sizeof(out->chat) || strchr(ch, '.'))
		return err_set(ERR_INVALID, "the project has no chat to talk to");
	snprintf(out->channel, sizeof(out->channel), "%s", ch);
	snprintf(out->chat, sizeof(out->chat), "%s", chat);
	return 0;
}

json_t *nd_chat_json(const nd_chat *c)
{
	return json_pack("{s:s, s:s}", "channel", c->channel, "chat", c->chat);
}

static int emit(eng_ctx *ctx, const nd_chat *c, const char *verb, json_t *payload)
{
	char kind[48];

	if (!payload)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(kind, sizeof(kind), "%s.%s", c->channel, verb);
	return eng_emit(ctx, kind, c->chat, payload);
}

int nd_say(eng_ctx *ctx, const nd_chat *c, const char *text)
{
	return emit(ctx, c, "send", json_pack("{s:s}", "text", text));
}

int nd_say_html(eng_ctx *ctx, const nd_chat *c, const char *html)
{
	return emit(ctx, c, "send", json_pack("{s:s}", "html", html));
}

int nd_say_streamed(eng_ctx *ctx, const nd_chat *c, const char *text, const char *call_id)
{
	return emit(ctx, c, "send",
		    json_pack("{s:s,s:s?}", "text", text, "streamed", call_id && *call_id ? call_id : NULL));
}

int nd_say_html_streamed(eng_ctx *ctx, const nd_chat *c, const char *html, const char *call_id)
{
	return emit(ctx, c, "send",
		    json_pack("{s:s,s:s?}", "html", html, "streamed", call_id && *call_id ? call_id : NULL));
}

int nd_progress(eng_ctx *ctx, const nd_chat *c, const char *ref, const char *html)
{
	return emit(ctx, c, "progress", json_pack("{s:s, s:s}", "ref", ref, "html", html));
}

int nd_document(eng_ctx *ctx, const nd_chat *c, const char *filename, const char *content,
		const char *caption)
{
	return emit(ctx, c, "document", json_pack("{s:s, s:s, s:s?}", "filename", filename,
						  "content", content, "caption", caption));
}

int nd_ask(eng_ctx *ctx, const nd_chat *c, const char *key, const char *question,
	   const nd_option *opts, size_t n)
{
	json_t *o = json_array();

	for (size_t i = 0; o && i < n; i++)
		json_array_append_new(o, json_pack("{s:s, s:s}", "id", opts[i].id, "label",
						   opts[i].label));
	return emit(ctx, c, "approval",
		    o ? json_pack("{s:s, s:s, s:o}", "question", question, "key", key, "options", o)
		      : NULL);
}

void nd_html_escape(buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '&')
			buf_puts(b, "&amp;");
		else if (*s == '<')
			buf_puts(b, "&lt;");
		else if (*s == '>')
			buf_puts(b, "&gt;");
		else
			buf_putc(b, *s);
	}
}

void nd_clip(buf *b, const char *s, size_t max)
{
	size_t chars = 0;
	const char *p = s;

	if (!s)
		return;
	while (*p && chars < max) {
		p++;
		while ((*p & 0xC0) == 0x80) /* the rest of a UTF-8 sequence */
			p++;
		chars++;
	}
	buf_append(b, s, (size_t)(p - s));
	if (*p)
		buf_puts(b, "…");
}
