#include "core/http.h"
#include "core/err.h"
#include "core/util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct http_client {
	CURL *curl;
};

typedef struct xfer {
	const http_request *rq;
	http_response *out;
	size_t max;
	int too_big;
	int cancelled;
	int retry_after_ms_hdr; /* Retry-After-Ms seen: it wins over Retry-After */
	int idle;               /* stopped by the idle timeout */
	int64_t last_ms;        /* monotonic time of the last byte in or out */
	curl_off_t sent;        /* upload progress seen so far */
} xfer;

int http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(ERR_HTTP, "libcurl failed to initialise");
	return 0;
}

int http_client_new(http_client **out)
{
	http_client *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return err_set(ERR_NOMEM, "out of memory");
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return err_set(ERR_HTTP, "libcurl could not create a handle");
	}
	*out = c;
	return 0;
}

void http_client_free(http_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

void http_response_free(http_response *r)
{
	buf_free(&r->body);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	xfer *x = arg;
	size_t len = size * n;

	x->last_ms = util_mono_ms();
	x->out->received += (int64_t)len;
	if (x->rq->cancel && atomic_load(x->rq->cancel)) {
		x->cancelled = 1;
		return 0;
	}
	if (x->rq->on_data) {
		if (x->rq->on_data(data, len, x->rq->udata) != 0) {
			x->cancelled = 1;
			return 0;
		}
		return len;
	}
	if (x->out->body.len + len > x->max) {
		x->too_big = 1;
		return 0;
	}
	if (buf_append(&x->out->body, data, len) < 0) {
		x->too_big = 1;
		return 0;
	}
	return len;
}

/* The longest wait a Retry-After is read as: a year (more is no plan, and
 * would overflow once in milliseconds). */
#define RETRY_AFTER_MAX_MS (365LL * 86400 * 1000)

int64_t http_retry_after_ms(const char *v, int in_ms)
{
	char *end;
	long secs;
	struct tm tm;

	while (*v == ' ' || *v == '\t')
		v++;
	if (in_ms) {
		double ms = strtod(v, &end);
		if (end == v || !(ms >= 0)) /* also NaN */
			return -1;
		return ms < (double)RETRY_AFTER_MAX_MS ? (int64_t)ms : RETRY_AFTER_MAX_MS;
	}
	secs = strtol(v, &end, 10);
	if (end != v && (*end == '\0' || *end == '\r' || *end == '\n' || *end == ' '))
		return secs < 0 ? 0 : secs < RETRY_AFTER_MAX_MS / 1000 ? (int64_t)secs * 1000
									: RETRY_AFTER_MAX_MS;
	memset(&tm, 0, sizeof(tm));
	if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
		time_t at = timegm(&tm), now = time(NULL);
		if (at <= now)
			return 0;
		return at - now < RETRY_AFTER_MAX_MS / 1000 ? (int64_t)(at - now) * 1000
							    : RETRY_AFTER_MAX_MS;
	}
	return -1;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	xfer *x = arg;
	size_t len = size * n;
	char line[256];
	size_t k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;

	x->last_ms = util_mono_ms();
	x->out->received += (int64_t)len;
	memcpy(line, data, k);
	line[k] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {
		/* a new response (after a 100 or a redirect): known before the body */
		const char *sp = strchr(line, ' ');
		x->out->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		x->out->retry_after_ms = -1;
		x->retry_after_ms_hdr = 0;
	} else if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
		int64_t ms = http_retry_after_ms(line + 15, 1);
		if (ms >= 0) {
			x->out->retry_after_ms = ms;
			x->retry_after_ms_hdr = 1;
		}
	} else if (strncasecmp(line, "retry-after:", 12) == 0) {
		if (!x->retry_after_ms_hdr)
			x->out->retry_after_ms = http_retry_after_ms(line + 12, 0);
	}
	if (strncasecmp(line, "content-type:", 13) == 0) {
		char *v = line + 13, *e;
		while (*v == ' ')
			v++;
		e = v + strlen(v);
		while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
			*--e = '\0';
		snprintf(x->out->content_type, sizeof(x->out->content_type), "%s", v);
	}
	return len;
}

/* Called often while bytes move and about once a second when none do:
 * cancellation and the idle timeout. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	xfer *x = arg;
	int64_t now;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (x->rq->cancel && atomic_load(x->rq->cancel)) {
		x->cancelled = 1;
		return 1;
	}
	if (x->rq->idle_timeout_ms <= 0)
		return 0;
	now = util_mono_ms();
	if (ulnow != x->sent) { /* a large request body still going out */
		x->sent = ulnow;
		x->last_ms = now;
	}
	if (x->rq->idle_from_response && x->out->received == 0)
		return 0;
	if (now - x->last_ms >= x->rq->idle_timeout_ms) {
		if (x->out->received == 0 && x->rq->on_idle &&
		    x->rq->on_idle(x->rq->idle_udata) == 0) {
			x->last_ms = util_mono_ms();
			return 0;
		}
		x->idle = 1;
		return 1;
	}
	return 0;
}

int http_do(http_client *c, const http_request *rq, http_response *out)
{
	struct curl_slist *hdrs = NULL;
	curl_mime *mime = NULL;
	xfer x = {.rq = rq, .out = out};
	CURL *h = c->curl;
	CURLcode cc;
	double total = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	buf_init(&out->body, 0);
	out->retry_after_ms = -1;
	x.max = rq->max_response ? rq->max_response : (size_t)16 << 20;
	out->body.max = x.max;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 10000));
	if (rq->timeout_ms >= 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
				 (long)(rq->timeout_ms > 0 ? rq->timeout_ms : 60000));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, rq->cancel || rq->idle_timeout_ms > 0 ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (rq->unix_socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, rq->unix_socket);
	for (const char *const *p = rq->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	/* no "Expect: 100-continue" round trip on large POSTs */
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (rq->file_field) {
		curl_mimepart *part;
		mime = curl_mime_init(h);
		for (const char *const *f = rq->form_fields; f && f[0] && f[1]; f += 2) {
			part = curl_mime_addpart(mime);
			curl_mime_name(part, f[0]);
			curl_mime_data(part, f[1], CURL_ZERO_TERMINATED);
		}
		part = curl_mime_addpart(mime);
		curl_mime_name(part, rq->file_field);
		curl_mime_filename(part, rq->file_name ? rq->file_name : "file");
		curl_mime_data(part, rq->file_data, rq->file_len);
		curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
	} else if (rq->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	}
	if (rq->method && strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	else if (rq->method && strcmp(rq->method, "POST") == 0 && !rq->body && !rq->file_field)
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	if (rq->method && strcmp(rq->method, "POST") == 0 && !rq->body && !rq->file_field)
		curl_easy_setopt(h, CURLOPT_POST, 1L);

	x.last_ms = util_mono_ms();
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &total);
	out->total_ms = total * 1000.0;
	if (cc != CURLE_OK) {
		if (x.cancelled) {
			rc = err_set(ERR_CANCELLED, "request cancelled");
		} else if (x.idle) {
			out->idle = 1;
			rc = err_set(ERR_TIMEOUT, "nothing arrived for %lld ms %s",
				     (long long)rq->idle_timeout_ms,
				     out->received ? "in the middle of the response"
						   : "after the request was sent");
		} else if (x.too_big) {
			rc = err_set(ERR_TOOBIG, "response body larger than %zu bytes", x.max);
		} else if (cc == CURLE_OPERATION_TIMEDOUT) {
			rc = err_set(ERR_TIMEOUT, "request timed out (%s)", curl_easy_strerror(cc));
		} else {
			rc = err_set(ERR_HTTP, "request failed: %s", curl_easy_strerror(cc));
		}
	}
	curl_slist_free_all(hdrs);
	curl_mime_free(mime);
	return rc;
}
