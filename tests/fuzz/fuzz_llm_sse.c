/* A streamed reply (llm/wire.c, server-sent events) fed as the network
 * cuts it: whole, one byte at a time (split at every byte boundary at
 * once), and in two pieces at every position (inputs up to 400 bytes;
 * else at 32 positions).
 *
 * Input: one byte that says after how many deltas the caller cancels (0:
 * never), then the stream.
 *
 * Property: however the bytes are cut, the outcome is the same: the same
 * error, or the same reply (content, tool calls, finish reason, usage,
 * ids, refusal) delivered through the same deltas. An error's message is
 * valid UTF-8. */
#include "tests/fuzz/fuzz.h"

#include "core/buf.h"
#include "core/err.h"
#include "llm/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

typedef struct run {
	int rc;
	llm_response r;
	buf deltas; /* every delta, each followed by a 0 byte */
	int ndeltas, cancel_after, delivered;
} run;

static int on_delta(const char *text, size_t len, void *udata)
{
	run *x = udata;

	buf_append(&x->deltas, text, len);
	buf_putc(&x->deltas, '\0');
	x->ndeltas++;
	return x->cancel_after && x->ndeltas >= x->cancel_after;
}

/* Feeds data[0..size) in pieces that end at the `ncuts` positions of
 * `cuts` (ascending), then finishes the stream. */
static void feed(run *x, int cancel_after, const char *data, size_t size, const size_t *cuts,
		 size_t ncuts)
{
	llm_sse *s = NULL;
	size_t from = 0;

	memset(x, 0, sizeof(*x));
	llm_response_init(&x->r);
	buf_init(&x->deltas, 0);
	x->cancel_after = cancel_after;
	FZ_CHECK(llm_sse_new(&s, &x->r, on_delta, x) == 0, "llm_sse_new");
	for (size_t k = 0; k <= ncuts && x->rc == 0; k++) {
		size_t to = k < ncuts ? cuts[k] : size;
		if (to > from || k == ncuts)
			x->rc = llm_sse_feed(s, data + from, to - from);
		from = to;
	}
	if (x->rc == 0)
		x->rc = llm_sse_finish(s);
	x->delivered = llm_sse_delivered(s);
	llm_sse_free(s);
}

static void done(run *x)
{
	llm_response_free(&x->r);
	buf_free(&x->deltas);
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void same(const run *a, const run *b, const char *how)
{
	FZ_CHECK(a->rc == b->rc, "%s: rc %d, whole %d", how, b->rc, a->rc);
	FZ_CHECK(a->ndeltas == b->ndeltas && a->deltas.len == b->deltas.len &&
			 (a->deltas.len == 0 || memcmp(a->deltas.data, b->deltas.data, a->deltas.len) == 0),
		 "%s: other deltas (%d, whole %d)", how, b->ndeltas, a->ndeltas);
	FZ_CHECK(a->delivered == b->delivered, "%s: delivered %d, whole %d", how, b->delivered,
		 a->delivered);
	if (a->rc != 0)
		return;
	FZ_CHECK(same_str(a->r.content, b->r.content) && a->r.content_len == b->r.content_len,
		 "%s: other content", how);
	FZ_CHECK(same_str(a->r.refusal, b->r.refusal), "%s: other refusal", how);
	FZ_CHECK(a->r.finish == b->r.finish && strcmp(a->r.finish_raw, b->r.finish_raw) == 0,
		 "%s: finish %d, whole %d", how, b->r.finish, a->r.finish);
	FZ_CHECK(a->r.tokens_in == b->r.tokens_in && a->r.tokens_out == b->r.tokens_out,
		 "%s: other usage", how);
	FZ_CHECK(strcmp(a->r.id, b->r.id) == 0 && strcmp(a->r.provider_model, b->r.provider_model) == 0,
		 "%s: other ids", how);
	FZ_CHECK(a->r.n_tool_calls == b->r.n_tool_calls, "%s: %zu tool calls, whole %zu", how,
		 b->r.n_tool_calls, a->r.n_tool_calls);
	for (size_t i = 0; i < a->r.n_tool_calls; i++)
		FZ_CHECK(same_str(a->r.tool_calls[i].id, b->r.tool_calls[i].id) &&
				 same_str(a->r.tool_calls[i].name, b->r.tool_calls[i].name) &&
				 same_str(a->r.tool_calls[i].arguments, b->r.tool_calls[i].arguments),
			 "%s: tool call %zu differs", how, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s;
	size_t n, *cuts;
	int cancel;
	run whole, part;
	char how[64];

	if (size < 1 || size > 64 * 1024)
		return 0;
	cancel = data[0] % 4;
	s = (const char *)data + 1;
	n = size - 1;
	feed(&whole, cancel, s, n, NULL, 0);
	FZ_CHECK(whole.rc <= 0, "rc %d", whole.rc);
	if (whole.rc < 0)
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())), "the message is not UTF-8: %s",
			 err_last());
	if (whole.rc == 0)
		FZ_CHECK(whole.r.content && strlen(whole.r.content) <= whole.r.content_len,
			 "content_len");

	/* split at every byte boundary */
	cuts = malloc(sizeof(size_t) * (n + 1));
	if (!cuts)
		abort();
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	feed(&part, cancel, s, n, cuts, n ? n - 1 : 0);
	same(&whole, &part, "byte by byte");
	done(&part);

	/* in two pieces */
	for (size_t k = 1; k < n; k++) {
		size_t at = n <= 400 ? k : (size_t)((uint64_t)k * 2654435761u % n);

		if (n > 400 && k > 32)
			break;
		if (at == 0)
			continue;
		feed(&part, cancel, s, n, &at, 1);
		snprintf(how, sizeof(how), "cut at %zu", at);
		same(&whole, &part, how);
		done(&part);
	}
	free(cuts);
	done(&whole);
	return 0;
}
