/*
 * http — a small blocking HTTP client over libcurl.
 *
 * An http_client owns one curl handle and reuses its connections
 * (keep-alive); it is used by one thread at a time. A request has hard
 * limits (connect and total timeouts, a cap on the response body) and may
 * stream the body to a callback instead of collecting it (server-sent
 * events). Errors never quote the URL, which may hold a token (Telegram's
 * does): callers name the endpoint themselves.
 *
 * http_global_init() must run once before any thread uses the client
 * (cli/main.c and the test support do it).
 */
#ifndef ORCH_CORE_HTTP_H
#define ORCH_CORE_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct http_client http_client;

/* Receives body bytes as they arrive when set on a request. Return 0 to go
 * on, non-zero to abort the transfer (http_do then fails ERR_CANCELLED). */
typedef int (*http_data_fn)(const char *data, size_t len, void *udata);

typedef struct http_request {
	const char *method;          /* "GET" (default), "POST", "DELETE", ... */
	const char *url;
	const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL */
	const char *body;            /* may be NULL */
	size_t body_len;
	int64_t connect_timeout_ms;  /* 0: 10 s */
	int64_t timeout_ms;          /* whole transfer; 0: 60 s; < 0: none */
	int64_t idle_timeout_ms;     /* no byte received (or sent) for this long ends the
				      * transfer with ERR_TIMEOUT and out->idle set; checked
				      * at least once a second; 0: none */
	int idle_from_response;      /* the idle clock starts with the response's first
				      * byte (a server that computes a whole reply before
				      * answering sends nothing meanwhile) */
	int (*on_idle)(void *udata); /* called when the idle timeout passes before any byte
				      * of the response arrived: 0 keeps waiting (the idle
				      * clock starts again; a server that is alive but busy),
				      * non-zero ends the transfer as idle. NULL: ends it.
				      * It may block (the transfer waits meanwhile) */
	void *idle_udata;
	size_t max_response;         /* cap on the collected body; 0: 16 MiB */
	const char *unix_socket;     /* speak HTTP over this unix socket (Docker) */
	http_data_fn on_data;        /* stream the body here instead of collecting it */
	void *udata;
	const atomic_int *cancel;    /* when it becomes non-zero the transfer stops */
	/* multipart/form-data upload of one file (Telegram sendDocument): */
	const char *const *form_fields; /* name, value pairs, NULL-terminated */
	const char *file_field, *file_name, *file_data;
	size_t file_len;
} http_request;

typedef struct http_response {
	long status;            /* HTTP status; 0 when no response arrived. Set as soon as
				 * the status line arrives, so an on_data callback that
				 * holds this response may read it */
	buf body;               /* the body unless streamed; caller frees with http_response_free */
	char content_type[128];
	int64_t retry_after_ms; /* from Retry-After-Ms, else Retry-After (seconds or a date);
				 * -1 if absent */
	double total_ms;
	int idle;               /* ERR_TIMEOUT came from idle_timeout_ms */
	int64_t received;       /* response bytes (headers and body) that arrived */
} http_response;

int http_global_init(void);

int http_client_new(http_client **out);
void http_client_free(http_client *c);

/* Performs a request. Returns 0 when a response arrived, whatever its
 * status (check out->status); ERR_TIMEOUT (total or idle), ERR_HTTP (network, TLS,
 * connection reset), ERR_TOOBIG (body over the cap) or ERR_CANCELLED
 * otherwise, with a message that names no URL. `out` is initialised here
 * and must be freed with http_response_free in every case. */
int http_do(http_client *c, const http_request *rq, http_response *out);

void http_response_free(http_response *r);

/* The wait a Retry-After header's value asks for, in milliseconds: with
 * `in_ms` a number of milliseconds (Retry-After-Ms), else delta-seconds or
 * an HTTP date. At most a year; -1 when the value is neither. */
int64_t http_retry_after_ms(const char *value, int in_ms);

#endif
