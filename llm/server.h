/*
 * server — what an endpoint's server says about itself, beyond chat
 * completions: whether it is up (GET /health), which model ids it serves
 * (GET {base}/models), and on llama.cpp's llama-server its context per
 * slot and number of slots (GET /props, GET /slots) and its tokenizer
 * (POST /tokenize).
 *
 * This module is an edge: every answer is parsed here into typed structs,
 * nothing else walks these bodies. It does blocking calls over a caller's
 * http_client with the caller's timeouts and headers (the Authorization
 * header of a server started with --api-key); it keeps no state. Paths
 * other than {base}/models live at the server's root, the base URL without
 * its trailing "/v1".
 */
#ifndef ORCH_LLM_SERVER_H
#define ORCH_LLM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/http.h"

#define LLM_SERVER_MAX_MODELS 32

/* What GET /health showed. */
typedef enum llm_health {
	LLM_HEALTH_DOWN = 0,    /* no HTTP answer: refused, reset, timed out */
	LLM_HEALTH_LOADING = 1, /* a 5xx (llama-server: 503 "Loading model") */
	LLM_HEALTH_UP = 2,      /* any other HTTP answer: the server is there (a server
				 * without /health answers 404, which counts as up) */
} llm_health;

const char *llm_health_name(int h);

/* What the server told about itself when probed. */
typedef struct llm_server_info {
	int answered;            /* {base}/models answered with a list */
	int llamacpp;            /* the list is llama.cpp's (owned_by "llamacpp") */
	int n_models;            /* ids and aliases listed (at most LLM_SERVER_MAX_MODELS) */
	char models[LLM_SERVER_MAX_MODELS][128];
	int64_t n_ctx;           /* context per slot (llama.cpp); 0: unknown */
	int total_slots;         /* slots (llama.cpp); 0: unknown */
} llm_server_info;

/* The slots of a llama.cpp server now (GET /slots). */
typedef struct llm_server_slots {
	int total;               /* 0: unknown (not llama.cpp, or /slots disabled) */
	int busy;                /* slots processing a request */
	int64_t n_ctx;           /* context of the first slot */
} llm_server_slots;

/* The root of a base URL: "http://h:8080/v1" gives "http://h:8080". */
void llm_server_root(const char *base_url, char *out, size_t cap);

/* GET {root}/health. Returns the state; `why` (may be NULL) receives a short
 * reason ("HTTP 503: Loading model", "connection refused"). Never fails. */
int llm_server_health(http_client *c, const char *base_url, const char *const *headers,
		      int64_t timeout_ms, char *why, size_t cap);

/* Reads {base}/models, and on llama.cpp /props. `out` is zeroed first;
 * returns 0 when the server answered the model list (out->answered), else a
 * negative code with the reason (ERR_HTTP for no answer, ERR_NOTFOUND for a
 * server without the list, ERR_PARSE for a list that does not parse). */
int llm_server_probe(http_client *c, const char *base_url, const char *const *headers,
		     int64_t timeout_ms, llm_server_info *out);

/* 1 when `id` is one of the listed models, else 0. */
int llm_server_lists(const llm_server_info *info, const char *id);

/* GET {root}/slots of a llama.cpp server. ERR_HTTP, ERR_NOTFOUND (slots
 * not offered) or ERR_PARSE. */
int llm_server_slots_get(http_client *c, const char *base_url, const char *const *headers,
			 int64_t timeout_ms, llm_server_slots *out);

/* POST {root}/tokenize of a llama.cpp server: the number of tokens of
 * text[0..len) (no special tokens added). ERR_HTTP, ERR_PARSE. */
int llm_server_tokenize(http_client *c, const char *base_url, const char *const *headers,
			const char *text, size_t len, int64_t timeout_ms, int64_t *out_tokens);

#endif
