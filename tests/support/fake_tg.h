/*
 * fake_tg — starting and scripting tests/fakes/fake_telegram from a test.
 */
#ifndef ORCH_TESTS_FAKE_TG_H
#define ORCH_TESTS_FAKE_TG_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#define TS_TG_TOKEN "123456:TEST-token"

typedef struct ts_fake {
	pid_t pid;
	int port;
	char base[64];    /* http://127.0.0.1:<port> (TELEGRAM_API_BASE) */
} ts_fake;

/* Starts the fake on a free loopback port; fails the test on error. */
void ts_fake_start(ts_fake *f);
void ts_fake_stop(ts_fake *f);

/* A control or API call; returns the parsed reply (owned). `body` may be
 * NULL (GET). */
json_t *ts_fake_call(ts_fake *f, const char *path, const char *body);

/* Queues updates (a JSON array text). */
void ts_fake_updates(ts_fake *f, const char *json_array);

/* A text message update from user `user` in chat `chat`. */
void ts_fake_text(ts_fake *f, int64_t chat, int64_t user, const char *text);

/* Requests of `method` seen so far (new array). */
json_t *ts_fake_requests(ts_fake *f, const char *method);

/* The messages as they are now (new array). */
json_t *ts_fake_messages(ts_fake *f);

/* Waits until a message in `chat` (0: any) contains `needle`; returns
 * the message (owned) or NULL after timeout_ms. */
json_t *ts_fake_wait_message(ts_fake *f, int64_t chat, const char *needle, int64_t timeout_ms);

/* Waits until `n` requests of `method` were seen; returns how many. */
int ts_fake_wait_requests(ts_fake *f, const char *method, int n, int64_t timeout_ms);

#endif
