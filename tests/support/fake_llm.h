/*
 * fake_llm — drives tests/fakes/fake_openai from a test: starts it on a free
 * loopback port, scripts its replies, reads what it received, stops it.
 */
#ifndef ORCH_TESTS_FAKE_LLM_H
#define ORCH_TESTS_FAKE_LLM_H

#include <jansson.h>
#include <sys/types.h>

typedef struct fake_llm {
	pid_t pid;
	int port;
	char base_url[64]; /* http://127.0.0.1:PORT/v1 */
} fake_llm;

/* Starts the fake; fails the test when it cannot. */
void fake_llm_start(fake_llm *f);
void fake_llm_stop(fake_llm *f);

/* POSTs JSON text to the control API path ("/__script", "/__reset"). */
void fake_llm_post(fake_llm *f, const char *path, const char *json_text);

/* Appends replies (a JSON array text) to the fake's queue. */
void fake_llm_script(fake_llm *f, const char *replies_json);

/* Empties the queue, the records and the counters. */
void fake_llm_reset(fake_llm *f);

/* GETs a control path ("/__requests", "/__stats") as JSON (owned). */
json_t *fake_llm_get(fake_llm *f, const char *path);

/* The recorded requests (owned) and their number. */
json_t *fake_llm_requests(fake_llm *f);
int fake_llm_count(fake_llm *f);

/* Writes a models file for the fake into ORCH_DATA_DIR and returns its
 * path (static storage): `body` is the JSON with every "%s" replaced by the
 * fake's base URL. */
const char *fake_llm_models_file(fake_llm *f, const char *name, const char *body);

#endif
