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

#endif
