/*
 * schema — checks a JSON value against a JSON schema, for structured output.
 *
 * Covers what chat models are asked for in practice: type (one or a list),
 * properties, required, additionalProperties (false or a schema), items,
 * enum, const, minimum/maximum, exclusiveMinimum/exclusiveMaximum,
 * minLength/maxLength, pattern, minItems/maxItems, uniqueItems, anyOf, oneOf,
 * allOf, and "$ref" to any place of the same schema ("#/$defs/task", as
 * pydantic and zod write them). A keyword it does not know, a "$ref" to
 * another document, or a pattern POSIX regular expressions cannot express
 * (lookarounds, say) is ignored, never a reason to refuse a reply. The error names the place:
 * "$.tasks[2].title: expected string, got number", which is what a model
 * needs to be told when it is asked again.
 */
#ifndef ORCH_LLM_SCHEMA_H
#define ORCH_LLM_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Returns 0 when `v` matches `schema`, else ERR_INVALID with the first
 * mismatch in the message and in out[cap] (may be NULL). Thread-safe. */
int llm_schema_check(const json_t *schema, const json_t *v, char *out, size_t cap);

/* What is sent to a server in response_format, by level. A server turns
 * the schema into a grammar (llama.cpp, vLLM, Ollama) or checks it against
 * what it supports (OpenAI's strict mode), and refuses a request whose
 * schema it cannot take. The reply is checked against the whole schema
 * here (llm_schema_check) at every level.
 *
 *   LLM_SCHEMA_FULL    the schema, without what a grammar cannot hold:
 *                      minLength, maxLength, minItems and maxItems above
 *                      LLM_SCHEMA_MAX_BOUND, and a pattern with a repetition
 *                      count above it (llama.cpp refuses any repetition of
 *                      2000 or more: "failed to parse grammar"); a pattern
 *                      not anchored with ^...$ (llama.cpp refuses it); a
 *                      minimum above its maximum (llama.cpp builds that
 *                      grammar until its memory runs out); an empty enum
 *   LLM_SCHEMA_SIMPLE  only the structure: types, properties, required,
 *                      items, enum, const, anyOf/oneOf/allOf, $ref; no
 *                      bounds, pattern, format or numeric limits
 *   LLM_SCHEMA_NONE    no response_format: the schema goes into the prompt
 *                      and the reply is checked and re-asked here */
enum llm_schema_level { LLM_SCHEMA_FULL = 0, LLM_SCHEMA_SIMPLE = 1, LLM_SCHEMA_NONE = 2 };

#define LLM_SCHEMA_MAX_BOUND 1000

/* The schema to send at `level` (FULL or SIMPLE) into *out (owned).
 * ERR_NOMEM, or ERR_INVALID for a level without a schema. */
int llm_schema_for_server(const json_t *schema, int level, json_t **out);

const char *llm_schema_level_name(int level);

#endif
